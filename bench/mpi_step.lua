--- bench/mpi_step.lua -- the parts of one data-parallel training step, for
-- bench/mpi.lua (which runs it; it is not a benchmark of its own).
--
--   ./lvae bench/mpi_step.lua sweep --model qsl --batches 1,2,4,100 --threads 1
--   mpirun -np 2 ./lvae bench/mpi_step.lua parts --model qsl --batch 100 --threads 1
--   mpirun -np 2 ./lvae bench/mpi_step.lua allreduce --sizes 8,1024,5339776
--
-- The model is scripts/images.lua's (bench/peers/lvae_models.lua builds it
-- with images.lua's own functions): mlp, d = --d (32), K = --K (5), hvae
-- with fixed tempering (images.lua's default), and its step: objective,
-- gradient, Adamax. The batch is random binary pixels (a step's cost does
-- not depend on their values); no data set is read.
--
-- sweep (one process): a whole step at each batch size, lib.time's
--   samples (median and fastest) after a warm-up: the compute a rank of a
--   larger job would spend on that many rows; and the step at --batch
--   rows with the runner's reducer and without, interleaved: its own work
--   (weighting, the counts, the views) apart from MPI.
-- parts (any number of ranks): steps of a global batch --batch split by
--   rows as the runner splits it (lvae.distributed.rows, the rows' share
--   of the noise through with_shard, the runner's Reducer with the rows'
--   weight), each step cut in parts on rank 0's clock: compute (objective
--   and gradient, up to the reducer's finish; the gradients are summed
--   into buckets and their all-reduces started while the backward pass
--   runs), compute_mpi (of it, the time inside MPI: starting and testing
--   the buckets' all-reduces), finish (waiting for them, which includes
--   waiting for the slowest rank, the counts' all-reduce),
--   finish_mpi (of it, inside MPI), update (Adamax and loss:item()), and
--   metrics (the runner's second collective of a step,
--   lv.mpi.allreduce_number of the loss). Each part's median over the
--   steps, and `quiet`: each part's mean over the fastest quarter of the
--   steps (the undisturbed ones on a shared machine).
-- allreduce (any number of ranks): lv.mpi.allreduce of one f32 tensor of
--   each size in bytes, after a barrier, median over repeats: this
--   machine's all-reduce (shared memory between processes).
--
-- Prints one line of JSON (rank 0), nothing else.

local lv = require "lvae"
local cjson = require "cjson"
local lib = require "bench.lib"
local root = lib.root
local rows = require "bench.peers.rows"
local models = require "bench.peers.lvae_models"

local USAGE = "usage: ./lvae bench/mpi_step.lua {sweep|parts|allreduce} [--model M] [--K K] [--d D] "
  .. "[--batch B] [--batches B,B,...] [--steps N] [--warmup N] [--threads T] [--sizes BYTES,...]"

local function die(msg)
  io.stderr:write("bench/mpi_step.lua: ", msg, "\n", USAGE, "\n")
  os.exit(2)
end

local function integers(text)
  local out = {}
  for item in tostring(text):gmatch("[^,]+") do
    out[#out + 1] = math.tointeger(tonumber(item)) or die("not an integer: " .. item)
  end
  return out
end

local o = { mode = arg[1], model = "qsl", K = 5, d = 32, batch = 100, steps = 30, warmup = 5, threads = 1,
            batches = "1,2,4,8,16,32,64,100", sizes = "8,1024,65536,1048576,5339776", repeats = 7 }
do
  local numeric = { K = true, d = true, batch = true, steps = true, warmup = true, threads = true, repeats = true }
  local i = 2
  while i <= #arg do
    local key = arg[i]:match("^%-%-([%w-]+)$")
    if not key or o[key] == nil or key == "mode" or arg[i + 1] == nil then die("bad argument: " .. arg[i]) end
    local v = arg[i + 1]
    o[key] = numeric[key] and (math.tointeger(tonumber(v)) or die("--" .. key .. " wants an integer")) or v
    i = i + 2
  end
  if o.mode ~= "sweep" and o.mode ~= "parts" and o.mode ~= "allreduce" then die("no mode") end
end

lv.set_num_threads(o.threads)
local rank, size = lv.mpi.init()
local D = lv.distributed

--- images.lua's mlp model of this name at d, K (hvae: fixed tempering).
local function build()
  local row, err = rows.find("mlp:" .. (o.model == "hvae" and "hvae-fixed" or o.model))
  if not row then die(err) end
  local r = {}
  for k, v in pairs(row) do r[k] = v end
  r.d, r.K = o.d, (o.model == "vae" or o.model == "iwae") and 0 or o.K
  local m = models.build(r, "f32", 1, root)
  return m, models.optimizer(m)
end

local function pixels(n) return lv.bernoulli({ n, 784 }, 0.3, "f32") end

local function param_bytes(params)
  local bytes, count = 0, 0
  for _, p in ipairs(params) do
    bytes, count = bytes + p:numel() * 4, count + 1
  end
  return bytes, count
end

local out = { mode = o.mode, model = o.model, d = o.d, K = o.K, threads = lv.num_threads(), ranks = size }

if o.mode == "sweep" then
  -- one process: a whole step (objective, gradient, Adamax) at each batch size
  local m, opt = build()
  out.param_bytes, out.param_tensors = param_bytes(m.params)
  out.batches = {}
  for _, b in ipairs(integers(o.batches)) do
    local x = pixels(b)
    -- at least 3 samples of at least one call, a few for the small ones
    local r = lib.time(function() return models.step(m, opt, x):item() end,
      { warmup = 0.2, warmup_calls = 3, min_time = 0.05, repeats = o.repeats })
    out.batches[#out.batches + 1] = { batch = b, ms = 1e3 * r.median, min_ms = 1e3 * r.min, max_ms = 1e3 * r.max,
                                      iters = r.iters, repeats = r.repeats }
  end
  -- the reducer's own work in one process (weighting each gradient in its
  -- bucket, the counts, the views; no MPI): the step at
  -- --batch rows with the runner's reducer and without, interleaved
  local x = pixels(o.batch)
  local reducer = D.Reducer(opt.params)
  reducer.weight = 0.5
  local r = lib.time_interleaved({
    function() opt.reducer = nil; return models.step(m, opt, x):item() end,
    function() opt.reducer = reducer; return models.step(m, opt, x):item() end,
  }, { warmup = 0.2, min_time = 0.05, repeats = o.repeats })
  opt.reducer = nil
  out.reducer = { batch = o.batch, buckets = reducer:buckets(), without_ms = 1e3 * r[1].median,
                  without_min_ms = 1e3 * r[1].min, with_ms = 1e3 * r[2].median, with_min_ms = 1e3 * r[2].min }

elseif o.mode == "parts" then
  local m, opt = build()
  out.param_bytes, out.param_tensors = param_bytes(m.params)
  local n = o.batch
  local first, count = D.rows(n)
  local clock = lv.clock
  local function mpi_seconds() return lv.mpi.comm_stats().seconds end
  local t = {}
  if D.active() then
    -- the runner's reducer (lvae.run: D.Reducer(opt.params), weight = the
    -- rank's share of the rows), its finish timed
    local reducer = D.Reducer(opt.params)
    reducer.weight = count / n
    local finish = reducer.finish
    reducer.finish = function(self, grads)
      t.grads, t.c_grads = clock(), mpi_seconds()
      local reduced = finish(self, grads)
      t.reduced, t.c_reduced = clock(), mpi_seconds()
      return reduced
    end
    opt.reducer = reducer
    out.buckets = reducer:buckets()
  end
  local parts = { "step", "compute", "compute_mpi", "finish", "finish_mpi", "update", "metrics" }
  local samples, totals = {}, {}
  for _, p in ipairs(parts) do samples[p] = {} end
  lv.mpi.reset_comm_stats()
  local bytes0 = 0
  for s = 1, o.warmup + o.steps do
    local x = pixels(n):narrow(1, first + 1, count)
    if D.active() then lv.mpi.barrier() end     -- every step starts together
    if s == o.warmup + 1 then bytes0 = lv.mpi.comm_stats().allreduce_bytes end
    local c0 = mpi_seconds()
    local t0 = clock()
    t.grads, t.reduced = nil, nil
    local loss = D.with_shard(first, count, n, function() return models.step(m, opt, x) end)
    local value = loss:item()
    local t1 = clock()
    lv.mpi.allreduce_number({ count / n * value })
    local t2 = clock()
    if s > o.warmup then
      local tg, tr = t.grads or t1, t.reduced or t1
      samples.step[#samples.step + 1] = t1 - t0
      samples.compute[#samples.compute + 1] = tg - t0
      samples.compute_mpi[#samples.compute_mpi + 1] = t.grads and t.c_grads - c0 or 0
      samples.finish[#samples.finish + 1] = tr - tg
      samples.finish_mpi[#samples.finish_mpi + 1] = t.grads and t.c_reduced - t.c_grads or 0
      samples.update[#samples.update + 1] = t1 - tr
      samples.metrics[#samples.metrics + 1] = t2 - t1
      totals[#totals + 1] = t2 - t0
    end
  end
  out.batch, out.rows, out.steps, out.warmup = n, count, o.steps, o.warmup
  out.allreduce_bytes_per_step = (lv.mpi.comm_stats().allreduce_bytes - bytes0) / o.steps
  local mine = {}
  for _, p in ipairs(parts) do mine[p] = 1e3 * lib.median(samples[p]) end
  -- the quietest quarter: the parts' means over the steps (whole, with
  -- the metrics) at or below the 25th percentile, those that nothing else
  -- on the machine disturbed (a step is as fast on rank 0 only when every
  -- rank was: they meet in the all-reduce)
  local sorted = table.move(totals, 1, #totals, 1, {})
  table.sort(sorted)
  local cut = sorted[math.max(1, math.floor(0.25 * #sorted))]
  mine.quiet = { steps = 0 }
  for _, p in ipairs(parts) do mine.quiet[p] = 0 end
  for i, total in ipairs(totals) do
    if total <= cut then
      mine.quiet.steps = mine.quiet.steps + 1
      for _, p in ipairs(parts) do mine.quiet[p] = mine.quiet[p] + samples[p][i] end
    end
  end
  for _, p in ipairs(parts) do mine.quiet[p] = 1e3 * mine.quiet[p] / mine.quiet.steps end
  mine.rank, mine.rows = rank, count
  -- every rank's medians, so that rank 0 can show the imbalance
  local all = D.active() and lv.mpi.allgather_string(cjson.encode(mine)) or { cjson.encode(mine) }
  out.ms = mine
  out.per_rank = {}
  for i, s in ipairs(all) do out.per_rank[i] = cjson.decode(s) end
elseif o.mode == "allreduce" then
  out.sizes = {}
  for _, bytes in ipairs(integers(o.sizes)) do
    local buf = lv.zeros({ math.max(1, bytes // 4) }, "f32")
    local samples = {}
    for r = 1, 3 + o.repeats do
      lv.mpi.barrier()
      local t0 = lv.clock()
      lv.mpi.allreduce(buf)
      if r > 3 then samples[#samples + 1] = lv.clock() - t0 end
    end
    out.sizes[#out.sizes + 1] = { bytes = buf:numel() * 4, ms = 1e3 * lib.median(samples),
                                  min_ms = 1e3 * math.min(table.unpack(samples)) }
  end
end

if rank == 0 then print(cjson.encode(out)) end
if D.active() then lv.mpi.finalize() end
