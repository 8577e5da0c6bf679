-- signals_spec.lua -- a run stopped by a signal, in its own process
-- (./lvae run in the background): SIGINT, SIGTERM and SIGHUP during
-- training and during the evaluation of a flow model (whose potential, a
-- Lua function called from C, is where the interrupt lands) each end with
-- "status": "interrupted" in results.json, the signal named, the last
-- checkpoint named, and the exit status 128 + the signal's number; a run
-- stopped in training then resumes to completion.

local H = require "helpers"

local sh_quote, read_json = H.sh_quote, H.read_json

local function sleep(seconds) os.execute("sleep " .. seconds) end

--- Polls pred every 0.1 s for at most `seconds`; true when it held.
local function wait_for(pred, seconds)
  for _ = 1, seconds * 10 do
    if pred() then return true end
    sleep(0.1)
  end
  return pred()
end

local NUMBERS = { INT = 2, TERM = 15, HUP = 1 }

describe("a run stopped by a signal", function()
  local dir
  setup(function() dir = H.make_dir("lvae_signals_spec") end)
  teardown(function() os.execute("rm -rf " .. sh_quote(dir)) end)

  --- Starts the fixture in the background; returns the pid and the files
  -- where its exit status and the marker appear.
  local function start(name, phase, epochs)
    local out = dir .. "/" .. name
    local files = { out = out, marker = out .. ".marker", status = out .. ".status", pid = out .. ".pid",
                    log = out .. ".log" }
    local cmd = string.format("./lvae run tests/fixtures/signal_experiment.lua --phase %s --epochs %d "
      .. "--marker %s --out %s --name run --quiet", phase, epochs, sh_quote(files.marker), sh_quote(out))
    -- the shell waits for lvae, so that its exit status can be read
    os.execute(string.format("sh -c %s >/dev/null 2>&1 &", sh_quote(string.format(
      "%s > %s 2>&1 & echo $! > %s; wait $!; echo $? > %s", cmd, sh_quote(files.log), sh_quote(files.pid),
      sh_quote(files.status)))))
    assert.is_true(wait_for(function() return H.exists(files.pid) end, 10), "no pid file")
    local f = io.open(files.pid)
    files.pid_number = f:read("n")
    f:close()
    return files
  end

  local function run_dir(files)
    local p = io.popen("ls -d " .. sh_quote(files.out) .. "/run-* 2>/dev/null")
    local d = p:read("l")
    p:close()
    return d
  end

  local function stop(files, signal)
    assert.is_true(wait_for(function() return H.exists(files.marker) end, 30), "the run never reached its phase")
    os.execute(string.format("kill -s %s %d", signal, files.pid_number))
    assert.is_true(wait_for(function() return H.exists(files.status) end, 30), "the run did not stop")
    local f = io.open(files.status)
    local status = f:read("n")
    f:close()
    return status
  end

  for _, case in ipairs({ { "TERM", "train" }, { "HUP", "train" }, { "INT", "train" },
                          { "INT", "evaluate" }, { "TERM", "evaluate" } }) do
    local signal, phase = case[1], case[2]
    it(string.format("SIG%s during %s is an interruption, written down", signal, phase == "train"
      and "training" or "a flow model's evaluation"), function()
      local files = start(signal .. "-" .. phase, phase, phase == "train" and 3 or 1)
      local status = stop(files, signal)
      local log = H.read_bytes(files.log)
      assert.are.equal(128 + NUMBERS[signal], status, log)
      local d = run_dir(files)
      local res = read_json(d .. "/results.json")
      assert.are.equal("interrupted", res.status, log)
      assert.are.equal("SIG" .. signal, res.signal)
      assert.truthy(res.message:find("interrupted (SIG" .. signal .. ")", 1, true), res.message)
      assert.truthy(res.message:find("--resume " .. d, 1, true), res.message)
      assert.truthy(res.last_good_checkpoint and H.exists(d .. "/" .. res.last_good_checkpoint),
        tostring(res.last_good_checkpoint))
      assert.truthy(log:find("interrupted (SIG" .. signal .. ")", 1, true), log)
      assert.is_nil(log:find("traceback", 1, true), log)
      if phase == "train" then
        -- and the run goes on from its checkpoint to the end
        local ok = os.execute(string.format("./lvae run tests/fixtures/signal_experiment.lua --resume %s "
          .. "--step-seconds 0 --quiet > /dev/null 2>&1", sh_quote(d)))
        assert.is_true(ok == true or ok == 0)
        assert.are.equal("completed", read_json(d .. "/results.json").status)
      end
    end)
  end
end)
