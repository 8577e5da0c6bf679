-- distributed_spec.lua -- data-parallel training and sharded evaluation
-- (lua/lvae/distributed.lua, the runner under MPI; issue 15).
--
-- In this process (one of one): the row split, the batch slicing, and
-- that every helper is the identity. Under `mpirun --oversubscribe` (real
-- Open MPI processes on this machine): a run of images.lua on 1, 2, 3 and
-- 4 processes reaches the same parameters after an epoch and the same
-- test NLL; a run stopped after an epoch and resumed under MPI ends with
-- the bits of one never stopped; a rank that raises an error or dies ends
-- the job with its message and leaves the checkpoint intact; processes
-- started with different options stop before training; estimators.nll
-- and ais split over 3 processes give one process's estimates.
--
-- Children run without LD_PRELOAD (the sanitized suite preloads ASan,
-- which Open MPI's own programs are not built for) and with one thread.

local lv = require "lvae"
local H = require "helpers"
local D = lv.distributed

local sh_quote = H.sh_quote
local dir = H.make_dir("lvae_distributed_spec")
teardown(function() os.execute("rm -rf " .. sh_quote(dir)) end)

local have_mpirun = os.execute("command -v mpirun >/dev/null 2>&1") == true
local why_pending = not lv.mpi.compiled() and "this build has no Open MPI (install libopenmpi-dev, then make)"
  or not have_mpirun and "mpirun is not installed (Debian's openmpi-bin)"
  or nil
local have_fashion = H.exists("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")
  or H.exists("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte")

--- Runs a shell command; its output (stdout and stderr) and exit status.
local function sh(cmd)
  local p = assert(io.popen("( " .. cmd .. " ) 2>&1; echo \"status $?\""))
  local out = p:read("a")
  p:close()
  local status = tonumber(out:match("status (%d+)\n?$"))
  return out:gsub("status %d+\n?$", ""), status
end

local ENV = "env -u LD_PRELOAD -u ASAN_OPTIONS OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 "

--- `mpirun -np np ./lvae args...` (a timeout turns a hang into a failure).
local function mpirun(np, args)
  local quoted = {}
  for i, a in ipairs(args) do quoted[i] = sh_quote(tostring(a)) end
  return sh(string.format("%s timeout 300 mpirun --allow-run-as-root --oversubscribe -np %d ./lvae %s",
    ENV, np, table.concat(quoted, " ")))
end

local read_json = H.read_json

--- The one run folder under out.
local function run_dir(out)
  local listing = sh("ls -d " .. sh_quote(out) .. "/*/")
  local found = {}
  for d in listing:gmatch("[^\n]+") do found[#found + 1] = (d:gsub("/$", "")) end
  assert(#found == 1, "expected one run folder under " .. out .. ", found: " .. listing)
  return found[1]
end

---- one process --------------------------------------------------------------------------

describe("lvae.distributed in one process", function()
  it("splits n rows into balanced contiguous parts, rank 0 never empty", function()
    for _, case in ipairs({ { 10, 3 }, { 100, 4 }, { 2, 4 }, { 1, 3 }, { 7, 7 } }) do
      local n, size = case[1], case[2]
      local next_row = 0
      for r = 0, size - 1 do
        local first, count = D.rows(n, r, size)
        assert.equal(next_row, first)
        assert.is_true(count == n // size or count == n // size + 1)
        next_row = first + count
      end
      assert.equal(n, next_row)
      assert.is_true(select(2, D.rows(n, 0, size)) >= 1)
    end
    assert.same({ 0, 5 }, { D.rows(5) })         -- one process: all of it
  end)

  it("takes a process's rows of a tensor batch and of a table's tensor fields", function()
    local x = lv.arange(12):reshape({ 6, 2 })
    H.assert_same(D.take(x, 2, 3, 6), x:narrow(1, 3, 3))
    local b = D.take({ x = x, y = lv.arange(6), label = "train", w = lv.ones({ 2 }) }, 4, 2, 6)
    H.assert_same(b.x, x:narrow(1, 5, 2))
    H.assert_same(b.y, lv.arange(6):narrow(1, 5, 2))
    assert.equal("train", b.label)
    assert.same({ 2 }, b.w:size())                -- not the batch's rows: kept whole
    assert.equal(6, D.batch_rows({ x = x }))
    H.expect_error(function() D.batch_rows("x") end)
  end)

  it("scales gradients by the weight, and is the identity for parameters, agreement and the generator", function()
    local g = { lv.tensor({ 1, 2 }), nil, lv.tensor({ 3 }) }
    local params = { lv.param(lv.zeros({ 2 })), lv.param(lv.zeros({ 4 })), lv.param(lv.zeros({ 1 })) }
    local out = D.reduce_gradients(g, params, 0.5)
    H.assert_same(out[1], lv.tensor({ 0.5, 1 }))
    assert.is_nil(out[2])
    H.assert_same(out[3], lv.tensor({ 1.5 }))
    H.expect_error(function() D.reduce_gradients({ lv.tensor({ 1, 2, 3 }) }, { params[1] }, 1) end)
    D.agree("anything", "text")
    D.broadcast_parameters(params)
    local before = lv.get_rng_state()
    D.sync_generator()
    assert.same(before, lv.get_rng_state())
  end)

  it("takes lv.grad's gradients as the pass finishes them (on_ready), in buckets", function()
    local w1, b1 = lv.param(lv.randn({ 3, 4 })), lv.param(lv.randn({ 3 }))
    local w2, unused = lv.param(lv.randn({ 2, 3 })), lv.param(lv.zeros({ 5 }))
    local params = { w1, b1, w2, unused }
    local r = D.Reducer(params, { bucket_bytes = 48 })
    assert.is_true(r:buckets() >= 3)              -- 8 + 24 bytes, 12 floats, 6 floats, 5 floats
    local x = lv.randn({ 7, 4 })
    local loss = ((x:matmul(w1:t()) + b1):tanh():matmul(w2:t())):square():sum()
    r.weight = 0.25
    r:begin()
    local direct = lv.grad(loss, params, { allow_unused = true, retain_graph = true })
    lv.grad(loss, params, { allow_unused = true, on_ready = r.hook })
    local out = r:finish({})                      -- every gradient came through on_ready
    for i = 1, 3 do H.assert_close(out[i], direct[i] * 0.25, 1e-6, 1e-6, "parameter " .. i) end
    assert.is_nil(out[4])
    assert.equal(1, r.steps)
    -- the pass sums each gradient in its place in a bucket: lv.grad's list
    -- holds views of them, weighted and combined in place; finish(_, true)
    -- gives the same views, which the next step overwrites
    r:begin()
    local loss2 = ((x:matmul(w1:t()) + b1):tanh():matmul(w2:t())):square():sum()
    local placed = lv.grad(loss2, params, { allow_unused = true, on_ready = r.hook })
    local views = r:finish(placed, true)
    for i = 1, 3 do
      H.assert_same(views[i], out[i], "view " .. i)
      H.assert_same(placed[i], out[i], "lv.grad's gradient " .. i)
    end
    assert.is_nil(views[4])
    r.weight = 0.5
    r:begin()
    local copies = r:finish({ direct[1], direct[2], direct[3] })
    H.assert_same(views[1], direct[1] * 0.5)      -- overwritten
    r.weight = 1
    r:begin()
    local latest = r:finish({ direct[1], direct[2], direct[3] }, true)
    H.assert_same(latest[1], direct[1])
    H.assert_same(copies[1], direct[1] * 0.5)     -- a copy of its own: kept
    -- the .grad route: everything handed over at finish
    r.weight = 1
    r:begin()
    out = r:finish({ direct[1], direct[2], direct[3] })
    for i = 1, 3 do H.assert_same(out[i], direct[i]) end
    -- a gradient of the wrong size is refused at finish, in words
    r:begin()
    local ok, err = pcall(r.finish, r, { lv.zeros({ 2 }) })
    assert.is_false(ok)
    assert.truthy(tostring(err):find("the gradient of parameter 1 has 2 f32 values, the parameter 12 f32", 1, true), err)
    H.expect_error(function() lv.grad(loss, params, { on_ready = {} }) end)
  end)

  it("maps a function over rows in batches and concatenates, as one loop would", function()
    local x = lv.randn({ 11, 3 })
    local firsts = {}
    local a, b = D.map_rows(x, 4, function(rows, first)
      firsts[#firsts + 1] = first
      return rows * 2, rows:sum(2)
    end)
    assert.same({ 1, 5, 9 }, firsts)
    H.assert_close(a, x * 2, 1e-6, 0)
    H.assert_close(b, x:sum(2), 1e-6, 1e-6)
    H.expect_error(function() D.map_rows(x, 4, function() return 3 end) end)
    H.expect_error(function() D.map_rows(x, 0, function(r) return r end) end)
  end)

  it("gives the rows' noise of the whole batch's draw under a shard", function()
    lv.manual_seed(5)
    local whole = lv.randn_batch({ 3, 6, 2 })
    local after = lv.get_rng_state()
    lv.manual_seed(5)
    local part = D.with_shard(2, 3, 6, function() return lv.randn_batch({ 3, 3, 2 }) end)
    H.assert_same(part, whole:narrow(2, 3, 3))
    assert.same(after, lv.get_rng_state())
    assert.is_nil(lv.shard())                    -- the shard is gone afterwards
    -- and on an error too
    pcall(D.with_shard, 0, 1, 2, function() error("boom") end)
    assert.is_nil(lv.shard())
  end)

  it("changes the checksum with any bit of a tensor, its dtype or shape", function()
    local t = lv.tensor({ 1, 2, 3, 4 })
    local c = D.checksum({ t })
    assert.equal(c, D.checksum({ t:clone() }))
    assert.are_not.equal(c, D.checksum({ t + 1.2e-7 * lv.tensor({ 1, 0, 0, 0 }) }))   -- one ulp
    assert.are_not.equal(c, D.checksum({ t:reshape({ 2, 2 }) }))
    assert.are_not.equal(c, D.checksum({ t:to("f64") }))
    assert.equal(2, #D.checksum({ t, t }):gsub("%S+", "x"):gsub("%s", ""))
  end)
end)

---- under mpirun -------------------------------------------------------------------------

describe("data-parallel training under mpirun", function()
  local tiny = { "scripts/images.lua", "--model", "qsl", "--K", "1", "--d", "4", "--subset", "150",
                 "--batch", "50", "--test-subset", "20", "--nll-samples", "5", "--nll-runs", "2",
                 "--quiet", "--threads", "1", "--keep-checkpoints", "0" }
  local function params_of(ckpt) return lv.load(ckpt).experiment.params end

  local runs = {}
  --- A tiny images.lua run on np processes: its --out folder, output, status.
  local function train(np, epochs, extra)
    local out = string.format("%s/np%d-e%d%s", dir, np, epochs, extra and "-stopped" or "")
    local args = { "run" }
    for _, v in ipairs(tiny) do args[#args + 1] = v end
    for _, v in ipairs({ "--epochs", tostring(epochs), "--out", out }) do args[#args + 1] = v end
    for _, v in ipairs(extra or {}) do args[#args + 1] = v end
    local output, status = mpirun(np, args)
    return out, output, status
  end

  it("reaches one process's parameters and test NLL after an epoch on 2, 3 and 4 processes", function()
    if why_pending then return pending(why_pending) end
    if not have_fashion then return pending("dataset-fashion-mnist is not installed (scripts/setup.sh)") end
    for _, np in ipairs({ 1, 2, 3, 4 }) do
      local out, output, status = train(np, 1)
      assert.equal(0, status, output)
      runs[np] = run_dir(out)
    end
    local start = params_of(runs[1] .. "/checkpoints/epoch-0.ckpt")
    local one = params_of(runs[1] .. "/checkpoints/epoch-1.ckpt")
    local one_results = read_json(runs[1] .. "/results.json")
    for _, np in ipairs({ 2, 3, 4 }) do
      local res = read_json(runs[np] .. "/results.json")
      assert.equal("completed", res.status)
      assert.equal(np, res.processes)
      local p = params_of(runs[np] .. "/checkpoints/epoch-1.ckpt")
      assert.equal(#one, #p)
      for i = 1, #one do
        -- The gradients differ by float32 summation order only. Adamax
        -- divides by max |g|: an element whose gradient is at rounding
        -- level moves by up to the learning rate whatever its size, so a
        -- few elements differ by a fraction of one update; on average the
        -- difference is rounding's. A wrong share of rows or of noise
        -- would differ by whole updates.
        local update, diff = (one[i] - start[i]):abs(), (p[i] - one[i]):abs()
        local what = string.format("%d processes, parameter %d: ", np, i)
        assert.is_true(diff:mean():item() <= 1e-4 * update:mean():item(),
          what .. string.format("mean difference %.3g, mean update %.3g", diff:mean():item(), update:mean():item()))
        assert.is_true(diff:max():item() <= 0.1 * update:max():item(),
          what .. string.format("largest difference %.3g, largest update %.3g", diff:max():item(), update:max():item()))
      end
      assert.is_true(math.abs(res.test_nll - one_results.test_nll) < 1e-3,
        string.format("%d processes: test NLL %.6f, one process %.6f", np, res.test_nll, one_results.test_nll))
      assert.is_true(math.abs(res.test_elbo - one_results.test_elbo) < 1e-3)
      -- only rank 0 wrote: one log row per step, one messages.log
      local log = H.read_bytes(runs[np] .. "/log.csv")
      assert.equal(1 + 3, select(2, log:gsub("\n", "")))
    end
  end)

  it("resumes under MPI to the bits of a run never stopped", function()
    if why_pending then return pending(why_pending) end
    if not have_fashion then return pending("dataset-fashion-mnist is not installed (scripts/setup.sh)") end
    local whole_out, output, status = train(2, 2)
    assert.equal(0, status, output)
    local stopped_out
    stopped_out, output, status = train(2, 2, { "--stop-after-epoch", "1" })
    assert.equal(0, status, output)
    local stopped = run_dir(stopped_out)
    assert.equal("interrupted", read_json(stopped .. "/results.json").status)
    output, status = mpirun(2, { "run", "--resume", stopped, "--quiet", "--threads", "1" })
    assert.equal(0, status, output)
    local whole = run_dir(whole_out)
    local a, b = params_of(whole .. "/checkpoints/epoch-2.ckpt"), params_of(stopped .. "/checkpoints/epoch-2.ckpt")
    for i = 1, #a do H.assert_same(b[i], a[i], "parameter " .. i) end
    assert.equal(read_json(whole .. "/results.json").test_nll, read_json(stopped .. "/results.json").test_nll)
  end)

  -- A small regression experiment whose rank 1 fails at step 3 in the way
  -- FAIL says: an error, or death by SIGKILL.
  local EXPERIMENT = [[
local lv = require "lvae"
local nn, optim = require "lvae.nn", require "lvae.optim"
return {
  name = "toy",
  options = { { "--fail", "how rank 1 fails at step 3: none, error or kill", "none" },
              { "--lr", "learning rate", 0.1 } },
  setup = function(run)
    local x = lv.randn({ 64, 3 })
    local y = x:sum(2, true) * 0.5
    local model = nn.Linear(3, 1)
    return { x = x, y = y, model = model, opt = optim.SGD(model:parameters(), { lr = run.config.lr }) }
  end,
  batches = function(run, state) return { { x = state.x, y = state.y }, { x = state.x, y = state.y } } end,
  step = function(run, state, b)
    if run.step == 3 and lv.mpi.rank() == 1 then
      if run.config.fail == "error" then error("the toy step failed on purpose", 0) end
      if run.config.fail == "kill" then
        local pid = io.open("/proc/self/stat"):read("n")
        os.execute("kill -KILL " .. pid)
      end
    end
    return state.opt:step((state.model:forward(b.x) - b.y):square():mean())
  end,
}
]]

  local function toy_file()
    local path = dir .. "/toy.lua"
    H.write_bytes(path, EXPERIMENT)
    return path
  end

  for _, how in ipairs({ "error", "kill" }) do
    it("stops the whole job when a rank " .. (how == "error" and "raises an error" or "dies")
       .. ", leaving the last checkpoint intact", function()
      if why_pending then return pending(why_pending) end
      local out = dir .. "/fail-" .. how
      local output, status = mpirun(2, { "run", toy_file(), "--epochs", "3", "--fail", how, "--out", out,
                                         "--quiet" })
      assert.are_not.equal(0, status, output)
      assert.are_not.equal(124, status, "the job hung: " .. output)
      if how == "error" then
        assert.truthy(output:find("rank 1 of 2: the toy step failed on purpose", 1, true), output)
      end
      local run = run_dir(out)
      -- epoch 1 (steps 1-2) ended with a checkpoint; step 3 failed
      local ck = lv.load(run .. "/checkpoints/epoch-1.ckpt")
      assert.equal(1, ck.epoch)
      assert.equal("epoch-1.ckpt\n", H.read_bytes(run .. "/checkpoints/latest"))
      assert.equal("", (sh("ls " .. sh_quote(run .. "/checkpoints") .. " | grep tmp || true")))
    end)
  end

  it("stops before training when the processes were started with different options", function()
    if why_pending then return pending(why_pending) end
    local out = dir .. "/mixed"
    local file = toy_file()
    local output, status = sh(string.format("%s timeout 120 mpirun --allow-run-as-root --oversubscribe "
      .. "-np 1 ./lvae run %s --out %s --lr 0.1 --quiet : -np 1 ./lvae run %s --out %s --lr 0.2 --quiet",
      ENV, sh_quote(file), sh_quote(out), sh_quote(file), sh_quote(out)))
    assert.are_not.equal(0, status, output)
    assert.truthy(output:find("rank 1's options differ from rank 0's", 1, true), output)
    assert.truthy(output:find("lr=0.2", 1, true), output)
    local run = run_dir(out)
    assert.is_false(H.exists(run .. "/log.csv") and #H.read_bytes(run .. "/log.csv") > 0
      and select(2, H.read_bytes(run .. "/log.csv"):gsub("\n", "")) > 1)
  end)

  it("refuses a batch smaller than the job, naming both", function()
    if why_pending then return pending(why_pending) end
    local out = dir .. "/small"
    local file = dir .. "/tiny_batches.lua"
    H.write_bytes(file, (EXPERIMENT:gsub("x = state.x, y = state.y }, { x = state.x, y = state.y",
      "x = state.x:narrow(1, 1, 2), y = state.y:narrow(1, 1, 2) }, { x = state.x, y = state.y")))
    local output, status = mpirun(3, { "run", file, "--epochs", "1", "--out", out, "--quiet" })
    assert.are_not.equal(0, status, output)
    assert.truthy(output:find("a batch of 2 rows cannot be split over 3 processes", 1, true), output)
  end)
end)

describe("the gradient reducer under mpirun", function()
  -- each rank computes a gradient whose sum over ranks is known; the
  -- reducer (tiny buckets, weights) must give it on every rank
  local SCRIPT = [[
local lv = require "lvae"
local rank, size = lv.mpi.init()
local D = lv.distributed
local a, b = lv.param(lv.zeros({ 5, 3 })), lv.param(lv.zeros({ 7 }, "f64"))
local c, only0 = lv.param(lv.zeros({ 4 })), lv.param(lv.zeros({ 2 }))
local params = { a, b, c, only0 }
local r = D.Reducer(params, { bucket_bytes = 16 })
r.weight = (rank + 1) / (size * (size + 1) / 2)          -- the weights sum to 1
local failures = {}
for step = 1, 3 do
  r:begin()
  local loss = (a * (rank + step)):sum() + (b * (rank + 1)):sum() + (c * c):sum()
  if rank == 0 then loss = loss + (only0 * 3):sum() end
  lv.grad(loss, params, { allow_unused = true, on_ready = r.hook })
  local g = r:finish({})
  -- Σ_r w_r (r + step) for a, Σ_r w_r (r + 1) for b, 0 for c, w_0 3 for only0
  local wa, wb = 0, 0
  for q = 0, size - 1 do
    local w = (q + 1) / (size * (size + 1) / 2)
    wa, wb = wa + w * (q + step), wb + w * (q + 1)
  end
  local expect = { wa, wb, 0, 3 / (size * (size + 1) / 2) }
  for i = 1, 4 do
    local got = g[i]
    if not got then failures[#failures + 1] = "step " .. step .. " parameter " .. i .. " is nil"
    -- a ring all-reduce sums each segment of a bucket in its own order,
    -- so elements of one gradient may differ in the last bits
    elseif math.abs(got:mean():item() - expect[i]) > 1e-5 or got:max():item() - got:min():item() > 1e-5 then
      failures[#failures + 1] = string.format("step %d parameter %d: %.7g, expected %.7g", step, i,
        got:mean():item(), expect[i])
    end
  end
end
print(string.format("rank %d: %s; %d buckets", rank, #failures == 0 and "ok" or table.concat(failures, "; "),
  r:buckets()))
lv.mpi.finalize()
]]

  it("gives every rank the weighted sum of the ranks' gradients, bucket by bucket, step after step", function()
    if why_pending then return pending(why_pending) end
    local path = dir .. "/reducer.lua"
    H.write_bytes(path, SCRIPT)
    for _, np in ipairs({ 2, 3 }) do
      local output, status = mpirun(np, { path })
      assert.equal(0, status, output)
      for rank = 0, np - 1 do
        assert.truthy(output:find(string.format("rank %d: ok; 4 buckets", rank), 1, true), output)
      end
    end
  end)
end)

describe("the Gaussian study under mpirun", function()
  it("deals its fits to 3 processes and gives one process's table, number for number", function()
    if why_pending then return pending(why_pending) end
    local args = { "run", "scripts/gaussian.lua", "--dims", "1,3", "--datasets", "2", "--iterations", "100",
                   "--methods", "vb,hvae1,qsl1", "--quiet", "--threads", "1" }
    local function with_out(out)
      local a = { table.unpack(args) }
      a[#a + 1], a[#a + 2] = "--out", out
      return a
    end
    local quoted = {}
    for i, a in ipairs(with_out(dir .. "/gauss1")) do quoted[i] = sh_quote(a) end
    local output, status = sh(ENV .. "./lvae " .. table.concat(quoted, " "))
    assert.equal(0, status, output)
    output, status = mpirun(3, with_out(dir .. "/gauss3"))
    assert.equal(0, status, output)
    local one, three = run_dir(dir .. "/gauss1"), run_dir(dir .. "/gauss3")
    assert.equal(H.read_bytes(one .. "/table.md"), H.read_bytes(three .. "/table.md"))
    local a, b = read_json(one .. "/results.json").table, read_json(three .. "/results.json").table
    assert.same(a, b)
  end)
end)

describe("sharded evaluation under mpirun", function()
  -- every rank prints the estimates; rank 0's line is compared with one
  -- process's
  local SCRIPT = [[
local lv = require "lvae"
lv.mpi.init()
lv.manual_seed(3)
local flow = lv.integrators.qsl{ dim = 2, dtype = "f64" }
local model = lv.models.LinearGaussian{ W = lv.randn({ 3, 2 }, "f64"), sigma = 0.7, flow = flow, K = 2 }
local x = lv.randn({ 7, 3 }, "f64")
local nll, se, ess, info = lv.estimators.nll(model, x, { samples = 12, chunk = 5, runs = 2, batch = 3 })
local logpx, accept = lv.estimators.ais(model, x, { steps = 5, chains = 4, leapfrog_steps = 2 })
local per = {}
for i = 1, 7 do per[i] = string.format("%.12g", info.per_datapoint[i]:item()) end
local lp = {}
for i = 1, 7 do lp[i] = string.format("%.12g", logpx[i]:item()) end
if lv.mpi.rank() == 0 then
  print(string.format("nll %.12g se %.12g ess %.12g", nll, se, ess))
  print("per " .. table.concat(per, " "))
  print(string.format("ais %s accept %.12g", table.concat(lp, " "), accept))
  print(string.format("rng %d", lv.get_rng_state().offset))
end
lv.mpi.finalize()
]]

  it("gives one process's NLL, per-datapoint NLLs and AIS estimates on 3 processes", function()
    if why_pending then return pending(why_pending) end
    local path = dir .. "/eval.lua"
    H.write_bytes(path, SCRIPT)
    local one, s1 = sh(ENV .. "./lvae " .. sh_quote(path))
    assert.equal(0, s1, one)
    local three, s3 = mpirun(3, { path })
    assert.equal(0, s3, three)
    local function field(text, name) return text:match("\n?" .. name .. " ([^\n]*)") end
    for _, name in ipairs({ "nll", "per", "ais" }) do
      local a, b = field(one, name), field(three, name)
      assert.truthy(a, one)
      assert.truthy(b, three)
      local xs, ys = {}, {}
      for v in a:gmatch("[-%d.e+]+") do xs[#xs + 1] = tonumber(v) end
      for v in b:gmatch("[-%d.e+]+") do ys[#ys + 1] = tonumber(v) end
      assert.equal(#xs, #ys)
      for i = 1, #xs do
        assert.is_true(math.abs(xs[i] - ys[i]) <= 1e-9 * math.max(1, math.abs(xs[i])),
          string.format("%s value %d: one process %.12g, three %.12g", name, i, xs[i], ys[i]))
      end
    end
    -- and the generator is where one process leaves it
    assert.equal(field(one, "rng"), field(three, "rng"))
  end)
end)
