-- faults_spec.lua -- a run in its own process (./lvae run in the
-- background) meeting the faults of a long night: SIGKILL during training
-- and in the middle of writing a checkpoint, after which --resume ends
-- with the same bits as a run never stopped; a disk that fills up (a
-- small tmpfs), which stops the run with the system's message and leaves
-- the last checkpoint intact; and a folder it cannot write (a read-only
-- tmpfs). The mounts need root; without it those tests are pending.

local lv = require "lvae"
local H = require "helpers"

local sh_quote, read_json = H.sh_quote, H.read_json
local FIXTURE = "tests/fixtures/signal_experiment.lua"

local function sh(cmd)
  local ok = os.execute(cmd)
  return ok == true or ok == 0
end

local function capture(cmd)
  local p = io.popen(cmd)
  local out = p:read("a")
  p:close()
  return out
end

local function wait_for(pred, seconds)
  for _ = 1, seconds * 20 do
    if pred() then return true end
    os.execute("sleep 0.05")
  end
  return pred()
end

--- The only run folder under out.
local function run_dir(out) return capture("ls -d " .. sh_quote(out) .. "/run-* 2>/dev/null"):match("[^\n]+") end

local function params(dir, epoch)
  return lv.load(string.format("%s/checkpoints/epoch-%d.ckpt", dir, epoch)).experiment.model
end

local function same_state(a, b)
  for name, t in pairs(a) do
    local u = b[name]
    if not lv.is_tensor(t) or not lv.is_tensor(u) or #t ~= #u or (t - u):abs():max():item() ~= 0 then
      return false, name
    end
  end
  return true
end

describe("faults", function()
  local dir
  setup(function() dir = H.make_dir("lvae_faults_spec") end)
  teardown(function() os.execute("rm -rf " .. sh_quote(dir)) end)

  local COMMON = "--epochs 3 --seed 7 --quiet --name run"

  local reference
  local function reference_run()
    if reference then return reference end
    local out = dir .. "/reference"
    assert(sh(string.format("./lvae run %s %s --step-seconds 0 --out %s > /dev/null 2>&1", FIXTURE, COMMON,
      sh_quote(out))))
    local d = run_dir(out)
    reference = { dir = d, results = read_json(d .. "/results.json") }
    return reference
  end

  --- Starts the fixture in the background with extra options; its pid.
  local function start(out, extra)
    local pidfile = out .. ".pid"
    sh(string.format("sh -c %s > /dev/null 2>&1 &", sh_quote(string.format(
      "./lvae run %s %s --out %s %s > %s 2>&1 & echo $! > %s; wait", FIXTURE, COMMON, sh_quote(out), extra,
      sh_quote(out .. ".log"), sh_quote(pidfile)))))
    assert.is_true(wait_for(function() return H.exists(pidfile) end, 10))
    local f = io.open(pidfile)
    local pid = f:read("n")
    f:close()
    return pid
  end

  local function gone(pid) return not sh(string.format("kill -0 %d 2>/dev/null", pid)) end

  local function resume_and_compare(d)
    local log = d .. ".resume.log"
    assert.is_true(sh(string.format("./lvae run %s --resume %s --step-seconds 0 --quiet > %s 2>&1", FIXTURE,
      sh_quote(d), sh_quote(log))), H.read_bytes(log))
    local res = read_json(d .. "/results.json")
    assert.are.equal("completed", res.status)
    local ref = reference_run()
    assert.are.equal(ref.results.test_mse, res.test_mse)
    for epoch = 1, 3 do
      local same, which = same_state(params(ref.dir, epoch), params(d, epoch))
      assert.is_true(same, string.format("epoch %d: %s differs", epoch, tostring(which)))
    end
    return H.read_bytes(log), H.read_bytes(d .. "/messages.log")
  end

  it("SIGKILL during training, then --resume: the same bits as a run never stopped", function()
    local out = dir .. "/kill-train"
    local pid = start(out, "--marker " .. sh_quote(out .. ".marker"))
    assert.is_true(wait_for(function() return H.exists(out .. ".marker") end, 30))
    sh(string.format("kill -KILL %d", pid))
    assert.is_true(wait_for(function() return gone(pid) end, 10))
    local d = run_dir(out)
    resume_and_compare(d)
  end)

  it("SIGKILL in the middle of writing a checkpoint, then --resume: the partial file removed, the same bits", function()
    local out = dir .. "/kill-save"
    -- a 100 MiB checkpoint takes a while to write; a shell loop waits for
    -- the temporary file of epoch 2's to appear and kills the run at once
    local pid = start(out, "--ballast-mb 100 --step-seconds 0")
    assert.is_true(sh(string.format("timeout 60 sh -c %s", sh_quote(string.format(
      "while ! ls %s/run-*/checkpoints/epoch-2.ckpt.tmp.* > /dev/null 2>&1; do :; done; kill -KILL %d",
      sh_quote(out), pid)))))
    assert.is_true(wait_for(function() return gone(pid) end, 10))
    local d = run_dir(out)
    local partial = capture("ls " .. sh_quote(d) .. "/checkpoints/ | grep '\\.tmp\\.'")
    assert.truthy(partial:match("%S"), "the kill came after the write")
    local _, messages = resume_and_compare(d)
    assert.truthy(messages:find("left by a save stopped mid-write", 1, true), messages)
    assert.are.equal("", capture("ls " .. sh_quote(d) .. "/checkpoints/ | grep '\\.tmp\\.'"))
  end)

  --- A tmpfs mounted at path (nil when this process may not mount).
  local function mount(path, options)
    sh("mkdir -p " .. sh_quote(path))
    if not sh(string.format("mount -t tmpfs -o %s tmpfs %s 2>/dev/null", options, sh_quote(path))) then return nil end
    return path
  end
  local function umount(path) sh("umount " .. sh_quote(path) .. " 2>/dev/null") end

  it("a disk that fills up stops the run with the system's message; the last checkpoint stays intact", function()
    local full = mount(dir .. "/small-disk", "size=3m")
    if not full then return pending("mounting a tmpfs needs root") end
    local out = full .. "/runs"
    local ok = sh(string.format("./lvae run %s %s --ballast-mb 1 --step-seconds 0 --keep-checkpoints 0 --out %s "
      .. "> %s 2>&1", FIXTURE, COMMON, sh_quote(out), sh_quote(dir .. "/full.log")))
    local log = H.read_bytes(dir .. "/full.log")
    local d = run_dir(out)
    local latest = H.read_bytes(d .. "/checkpoints/latest"):match("%S+")
    local intact = pcall(lv.load, d .. "/checkpoints/" .. latest)
    local leftovers = capture("ls " .. sh_quote(d) .. "/checkpoints/ | grep '\\.tmp\\.'")
    umount(full)
    assert.is_false(ok)
    assert.truthy(log:find("No space left on device", 1, true), log)
    assert.is_true(intact, "checkpoints/" .. latest .. " does not load")
    assert.are.equal("", leftovers)
  end)

  it("a folder it cannot write is refused with the folder named", function()
    local ro = mount(dir .. "/read-only", "ro,size=1m")
    if not ro then return pending("mounting a tmpfs needs root") end
    local ok = sh(string.format("./lvae run %s %s --out %s > %s 2>&1", FIXTURE, COMMON, sh_quote(ro .. "/runs"),
      sh_quote(dir .. "/ro.log")))
    umount(ro)
    local log = H.read_bytes(dir .. "/ro.log")
    assert.is_false(ok)
    assert.truthy(log:find(ro .. "/runs", 1, true), log)
    assert.is_nil(log:find("traceback", 1, true), log)
  end)
end)
