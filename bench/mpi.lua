--- bench/mpi.lua -- data-parallel training (MPI) on this machine, and what
-- it predicts for 8 to 64 nodes.
--
--   ./lvae bench/mpi.lua [--quick]          (make bench-mpi)
--
-- What it measures, all in one invocation:
--
-- 1. Training throughput through the runner, as a user trains: one epoch
--    of scripts/images.lua (mlp, d = 32; vae, hvae K = 5 with fixed
--    tempering, qsl K = 5; global batch 100) as 1 process × 1 thread,
--    2 and 4 MPI ranks × 1 thread, 1 process × 2 and × 4 threads, and 2
--    and 4 ranks with the other binding (mpirun's default binds 2 ranks to
--    a core each and leaves 4 oversubscribed ranks unbound). Each run is a
--    fresh `./lvae run` (or `mpirun ... ./lvae run`) in a temporary folder;
--    the figures are its results.json's: ms_per_step (rank 0's mean wall
--    time of a whole step: objective, gradient, all-reduce, Adamax),
--    communication_seconds and allreduce_bytes; and its log.csv's step
--    times (the median interval between two steps: the whole loop,
--    batch preparation and the runner's per-step collective included).
--    Validation reads a 100-image file (written here from images.lua's
--    validation set) so that evaluation stays small beside training.
--    Runs are made round-robin (every configuration once, then again), and
--    the median over the repeats is reported.
-- 2. The parts of a step (bench/mpi_step.lua parts): compute (the
--    gradients summed into their buckets and their all-reduces started
--    meanwhile),
--    finishing the all-reduces, the update, the time inside MPI, at 1, 2
--    and 4 ranks.
-- 3. This machine's all-reduce at a few sizes (bench/mpi_step.lua
--    allreduce), and one process's step time against its batch size
--    (bench/mpi_step.lua sweep), from which, with a stated bandwidth and
--    latency, the step time and efficiency at 8, 16, 32 and 64 nodes are
--    predicted (the formula is in the section it writes).
--
-- The machine is shared: each run starts after a second in which some
-- task waited for a CPU at most 5% of the time (Linux PSI; waiting up to
-- 2 min, half an hour in all), its own CPU wait (the share of the run in which some task
-- waited) is recorded, and a run of a configuration that needs at most 2
-- cores is made again (up to 3 tries) when it was kept waiting more than
-- 15% of the time. The environment is recorded as found
-- (OPENBLAS_CORETYPE is never changed).
--
-- Writes bench/results/mpi.json; a full run (not --quick) also writes the
-- section "Data-parallel training (MPI)" of BENCHMARKS.md (replacing it,
-- other sections untouched), with bench/mpi_notes.md, written by hand,
-- at its end.
--
-- Not here: more than one machine (the 8-64 node figures are a model, not
-- a measurement), the conv architecture, convergence (the runs are one
-- epoch; tests/distributed_spec.lua checks that the ranks compute what one
-- process does).

local lv = require "lvae"
local lib = require "bench.lib"
local root = lib.root
local environment = require "bench.peers.environment"

local o = lib.options("bench/mpi.lua")
local q = lib.shell_quote
local LVAE = root .. "/lvae"
local started = lib.clock()

local tmp
local function die(msg)
  io.stderr:write("bench/mpi.lua: ", msg, "\n")
  if tmp then os.execute("rm -rf " .. q(tmp)) end
  os.exit(1)
end

if not lv.mpi.compiled() then
  die("this build of lvae has no Open MPI (lv.mpi.compiled() is false); `make` with libopenmpi-dev installed")
end
local mpirun_version = lib.run("mpirun --version 2>&1")[1]
if not (mpirun_version and mpirun_version:find("Open MPI", 1, true)) then
  die("`mpirun --version` does not name Open MPI (" .. tostring(mpirun_version) .. ")")
end

---- what is measured ----------------------------------------------------------------------

local SECTION = "Data-parallel training (MPI)"
local BATCH, D, K = 100, 32, 5
local SUBSET = o.quick and 1000 or 3000               -- training images: SUBSET / BATCH steps
local REPEATS = o.quick and 1 or 3
local VALID_IMAGES = 100
local STALL_LIMIT, TRIES = 0.15, o.quick and 1 or 3
-- before each run: wait (up to QUIET_MAX_WAIT s, QUIET_BUDGET s in all)
-- for a second in which some task waited for a CPU at most QUIET_LIMIT of
-- the time. On a machine others keep busy in bursts, a run then falls
-- between bursts: slower, but figures of this machine rather than of its load.
local QUIET_LIMIT, QUIET_MAX_WAIT, QUIET_BUDGET = 0.05, o.quick and 5 or 120, o.quick and 30 or 1800
local MPIRUN = "mpirun --allow-run-as-root --oversubscribe"

local MODELS = {
  { name = "vae", label = "VAE", K = 0 },
  { name = "hvae", label = "HVAE leapfrog, K = 5 (tempering fixed)", K = K },
  { name = "qsl", label = "qsl, K = 5", K = K },
}

-- cores: how many cores the configuration keeps busy (its runs are retried
-- when others kept them waiting; a configuration wanting more than the
-- machine has waits by itself)
local CONFIGS = {
  { id = "p1t1", label = "1 process × 1 thread", ranks = 1, threads = 1, cores = 1 },
  { id = "r2t1", label = "2 ranks × 1 thread", ranks = 2, threads = 1, cores = 2,
    binding = "bound to a core each (mpirun's default at 2 ranks)" },
  { id = "r4t1", label = "4 ranks × 1 thread", ranks = 4, threads = 1, cores = 4,
    binding = "not bound (mpirun's default when oversubscribed)" },
  { id = "p1t2", label = "1 process × 2 threads", ranks = 1, threads = 2, cores = 2 },
  { id = "p1t4", label = "1 process × 4 threads", ranks = 1, threads = 4, cores = 4 },
  { id = "r2t1-none", label = "2 ranks × 1 thread, --bind-to none", ranks = 2, threads = 1, cores = 2,
    mpi = "--bind-to none", binding = "not bound" },
  { id = "r4t1-core", label = "4 ranks × 1 thread, --bind-to core:overload-allowed", ranks = 4, threads = 1,
    cores = 4, mpi = "--bind-to core:overload-allowed", binding = "two ranks bound to each core" },
  -- weak scaling: each rank keeps one process's 100 rows (a global batch
  -- of 200, which changes the optimisation); its × 1p1t compares images/s
  { id = "r2t1-weak", label = "2 ranks × 1 thread, 100 rows each (global batch 200)", ranks = 2, threads = 1,
    cores = 2, batch = 2 * BATCH, binding = "bound to a core each (mpirun's default at 2 ranks)" },
}

--- A configuration's global batch, and its training images (the same
-- number of steps as the others).
local function batch_of(config) return config.batch or BATCH end
local function subset_of(config) return SUBSET * batch_of(config) // BATCH end

-- the networks of the scaling model: nominal bandwidth (bytes/s) and
-- MPI's small-message latency α (s)
local NETWORKS = {
  { id = "10GbE", label = "10 Gb/s Ethernet", bandwidth = 10e9 / 8, latency = 30e-6 },
  { id = "IB100", label = "100 Gb/s InfiniBand", bandwidth = 100e9 / 8, latency = 2e-6 },
}
local NODES = { 8, 16, 32, 64 }
local SWEEP_REPEATS = o.quick and 3 or 5
local SWEEP = o.quick and { 2, 4, 7, 13, 25, 50, 100 } or { 1, 2, 4, 7, 13, 25, 50, 100, 200, 400 }

---- helpers --------------------------------------------------------------------------------

local read_file = require("lvae.files").read_file

local function mean(list)
  local s = 0
  for _, v in ipairs(list) do s = s + v end
  return #list > 0 and s / #list or nil
end

local function values(list, key)
  local out = {}
  for _, r in ipairs(list) do
    if r[key] ~= nil then out[#out + 1] = r[key] end
  end
  return out
end

--- A number with 3 significant figures (an integer when large).
local function num(x, digits)
  if x == nil or x ~= x then return "–" end
  digits = digits or 3
  local a = math.abs(x)
  if a >= 10 ^ digits then return string.format("%.0f", x) end
  local s = string.format("%." .. digits .. "g", x)
  if s:find("e") then s = string.format("%.0f", x) end
  return s
end

--- The q-quantile of a list (nearest rank), or nil when empty.
local function quantile(list, q)
  if #list == 0 then return nil end
  local sorted = table.move(list, 1, #list, 1, {})
  table.sort(sorted)
  return sorted[math.max(1, math.ceil(q * #sorted))]
end

local function pct(x) return x and string.format("%.0f%%", 100 * x) or "–" end

--- Runs a shell command while measuring wall time and the CPU wait
-- (Linux PSI) over it: lines, ok, seconds, stall share.
local waited = { seconds = 0, runs = 0, gave_up = 0 }
local function timed_run(cmd)
  -- on a shared machine: start when others leave the cores alone
  local w, share = lib.wait_quiet({ limit = QUIET_LIMIT,
                                    max_wait = math.max(0, math.min(QUIET_MAX_WAIT, QUIET_BUDGET - waited.seconds)) })
  waited.seconds, waited.runs = waited.seconds + w, waited.runs + 1
  if share and share > QUIET_LIMIT then waited.gave_up = waited.gave_up + 1 end
  local s0, t0 = lib.cpu_stall(), lib.clock()
  local lines, ok = lib.run(cmd .. " 2>&1")
  local t = lib.clock() - t0
  local s1 = lib.cpu_stall()
  return lines, ok, t, s0 and s1 and (s1 - s0) / t or nil
end

tmp = lib.run("mktemp -d /tmp/lvae-bench-mpi.XXXXXX")[1] or die("mktemp failed")
local function cleanup() os.execute("rm -rf " .. q(tmp)) end

---- the environment ------------------------------------------------------------------------

local env = { machine = lib.machine(), git = environment.git(lib, root), mpirun = mpirun_version,
              cpu_pressure_start = lib.cpu_pressure() }
env.variables = {}
for _, k in ipairs({ "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
                     "GOMP_SPINCOUNT", "OMP_WAIT_POLICY" }) do
  env.variables[k] = os.getenv(k)
end
for _, l in ipairs(lib.run("env")) do
  local k, v = l:match("^(OMPI_MCA_[%w_]+)=(.*)$")
  if k then env.variables[k] = v end
end
lib.print_machine(env.machine)
print(string.format("%s; commit %s%s; CPU pressure %s%% (last 10 s)", mpirun_version, env.git.short or "?",
  env.git.dirty and " (tree modified)" or "", tostring(env.cpu_pressure_start)))
local command = "./lvae bench/mpi.lua" .. (#(arg or {}) > 0 and " " .. table.concat(arg, " ") or "")

---- the validation file --------------------------------------------------------------------

-- images.lua's validation set (the last 10,000 training images, binarised
-- with its seed 1234), its first VALID_IMAGES: small, so that an epoch's
-- time is its training
local VALID_FILE = tmp .. "/valid.npy"
do
  local data = require "lvae.data"
  local _, validation = data.split(data.fashion_mnist().train, { validation = 10000 })
  local head = { x = validation.x:narrow(1, 1, VALID_IMAGES) }
  data.save_binarized(VALID_FILE, data.binarize(head, { seed = 1234 }))
end

---- 1. the runner ---------------------------------------------------------------------------

local function images_command(model, config, out, valid)
  local args = {
    "run", "scripts/images.lua", "--model", model.name, "--K", K, "--d", D, "--arch", "mlp",
    "--subset", subset_of(config), "--epochs", 1, "--batch", batch_of(config), "--threads", config.threads, "--quiet",
    "--out", out, "--nll-samples", 5, "--nll-runs", 1, "--test-subset", 20, "--patience", 0,
    "--valid-file", valid or VALID_FILE,
  }
  for i, a in ipairs(args) do args[i] = tostring(a) end
  local words = {}
  for i, a in ipairs(args) do words[i] = a:find("^[%w%.%-_/=:]+$") and a or q(a) end
  local cmd = "./lvae " .. table.concat(words, " ")
  if config.ranks > 1 then
    cmd = string.format("%s%s -np %d %s", MPIRUN, config.mpi and " " .. config.mpi or "", config.ranks, cmd)
  end
  return cmd
end

--- The step times of log.csv (seconds since the run began, per step):
-- the intervals between consecutive steps, in seconds.
local function step_intervals(path)
  local text = read_file(path)
  if not text then return {} end
  local col, last, out = nil, nil, {}
  for line in text:gmatch("[^\n]+") do
    local fields = {}
    for f in (line .. ","):gmatch("([^,]*),") do fields[#fields + 1] = f end
    if not col then
      for i, f in ipairs(fields) do if f == "seconds" then col = i end end
    else
      local t = tonumber(fields[col])
      if t and last then out[#out + 1] = t - last end
      last = t or last
    end
  end
  return out
end

local function run_images(model, config, rep)
  local out = string.format("%s/%s-%s-%d", tmp, model.name, config.id, rep)
  local cmd = images_command(model, config, out)
  local function measure()
    os.execute("rm -rf " .. q(out))
    local lines, ok, seconds, stall = timed_run("cd " .. q(root) .. " && " .. cmd)
    local dir = lib.run("ls -d " .. q(out) .. "/*/ 2>/dev/null")[1]
    local results = dir and read_file(dir .. "results.json")
    if not ok or not results then
      die(string.format("this run failed:\n  %s\n%s", cmd, table.concat(lines, "\n")))
    end
    local r = lib.decode_json(results)
    local intervals = step_intervals(dir .. "log.csv")
    local messages = read_file(dir .. "messages.log") or ""
    local run = {
      ms_per_step = r.ms_per_step, steps = r.steps, seconds = r.seconds, processes = r.processes or 1,
      communication_seconds = r.communication_seconds, allreduce_bytes = r.allreduce_bytes,
      log_ms_per_step = intervals[1] and 1e3 * lib.median(intervals) or nil,
      log_ms_p10 = intervals[1] and 1e3 * quantile(intervals, 0.1) or nil,
      intervals_ms = (function() local t = {}; for i, v in ipairs(intervals) do t[i] = 1e3 * v end; return t end)(),
      epoch_images_per_second = tonumber(messages:match("batches in [%d.]+ s %((%d+) it/s%)")),
      wall_seconds = seconds, stall = stall,
    }
    if run.communication_seconds and run.steps > 0 then
      run.comm_ms_per_step = 1e3 * run.communication_seconds / run.steps
      run.allreduce_bytes_per_step = run.allreduce_bytes / run.steps
    end
    return run
  end
  local limit = config.cores <= env.machine.cores and STALL_LIMIT or math.huge
  local r = lib.quietest(measure, { tries = TRIES, limit = limit })
  r.command = cmd
  return r
end

print(string.format("\n1. runner: %d training images (%d steps of %d), %d repeat(s) of %d configurations × %d models",
  SUBSET, SUBSET // BATCH, BATCH, REPEATS, #CONFIGS, #MODELS))
local runs = {}             -- runs[model][config] = list of runs
for _, m in ipairs(MODELS) do
  runs[m.name] = {}
  for _, c in ipairs(CONFIGS) do runs[m.name][c.id] = {} end
end
for rep = 1, REPEATS do
  for _, m in ipairs(MODELS) do
    for _, c in ipairs(CONFIGS) do
      local r = run_images(m, c, rep)
      table.insert(runs[m.name][c.id], r)
      print(string.format("  %-5s %-52s %7.1f ms/step  (log %6.1f, p10 %6.1f)  comm %6s ms/step  CPU wait %3.0f%%%s",
        m.name, c.label, r.ms_per_step, r.log_ms_per_step or 0 / 0, r.log_ms_p10 or 0 / 0,
        r.comm_ms_per_step and string.format("%.1f", r.comm_ms_per_step) or "-", 100 * (r.stall or 0),
        r.tries > 1 and string.format(" (%d tries)", r.tries) or ""))
    end
  end
end

-- medians over the repeats
local throughput = {}
for _, m in ipairs(MODELS) do
  for _, c in ipairs(CONFIGS) do
    local list = runs[m.name][c.id]
    local ms = lib.median(values(list, "ms_per_step"))
    local row = {
      model = m.name, model_label = m.label, config = c.id, config_label = c.label, ranks = c.ranks,
      threads = c.threads, binding = c.binding, mpi_options = c.mpi, repeats = #list,
      ms_per_step = ms, ms_min = math.min(table.unpack(values(list, "ms_per_step"))),
      ms_max = math.max(table.unpack(values(list, "ms_per_step"))),
      batch = batch_of(c), images_per_second = batch_of(c) * 1000 / ms,
      log_ms_per_step = lib.median(values(list, "log_ms_per_step")),
      -- the 10th percentile of every step of every repeat: a step nothing
      -- else on the machine slowed
      log_ms_p10 = (function()
        local all = {}
        for _, run in ipairs(list) do table.move(run.intervals_ms, 1, #run.intervals_ms, #all + 1, all) end
        return quantile(all, 0.1)
      end)(),
      epoch_images_per_second = lib.median(values(list, "epoch_images_per_second")),
      comm_ms_per_step = lib.median(values(list, "comm_ms_per_step")),
      allreduce_bytes_per_step = lib.median(values(list, "allreduce_bytes_per_step")),
      stall = lib.median(values(list, "stall")), command = list[1].command, runs = list,
    }
    if row.comm_ms_per_step then row.comm_share = row.comm_ms_per_step / ms end
    throughput[#throughput + 1] = row
  end
end
local function find(model, config)
  for _, r in ipairs(throughput) do
    if r.model == model and r.config == config then return r end
  end
end
for _, r in ipairs(throughput) do
  local base = find(r.model, "p1t1")
  -- images per second over one process's (the ratio of step times at equal batch)
  local rows = r.batch / base.batch
  r.speedup = rows * base.ms_per_step / r.ms_per_step
  r.log_speedup = base.log_ms_per_step and r.log_ms_per_step and rows * base.log_ms_per_step / r.log_ms_per_step
  r.p10_speedup = base.log_ms_p10 and r.log_ms_p10 and rows * base.log_ms_p10 / r.log_ms_p10
end

print()
lib.print_table({
  { key = "model", title = "model", left = true },
  { key = "config_label", title = "configuration", left = true },
  { key = "ms_per_step", title = "ms/step", fmt = "%.1f" },
  { key = "images_per_second", title = "images/s", fmt = "%.0f" },
  { key = "speedup", title = "× 1p1t", fmt = "%.2f" },
  { key = "log_ms_per_step", title = "log ms/step", fmt = "%.1f" },
  { key = "log_ms_p10", title = "p10", fmt = "%.1f" },
  { key = "p10_speedup", title = "× 1p1t", fmt = "%.2f" },
  { key = "epoch_images_per_second", title = "epoch img/s", fmt = "%.0f" },
  { key = "comm_ms_per_step", title = "comm ms/step", fmt = "%.2f" },
  { key = "stall", title = "CPU wait", fmt = function(v) return pct(v) end },
}, throughput)

---- 2. the parts of a step, and this machine's all-reduce -------------------------------

local function step_tool(mode, ranks, args, mpi)
  local cmd = string.format("%s bench/mpi_step.lua %s %s", LVAE, mode, args)
  if ranks > 1 then cmd = string.format("%s%s -np %d %s", MPIRUN, mpi and " " .. mpi or "", ranks, cmd) end
  local function measure()
    local lines, ok, seconds, stall = timed_run("cd " .. q(root) .. " && " .. cmd)
    local json = ok and lines[#lines] and lines[#lines]:match("^{.*}$")
    if not json then die(string.format("this run failed:\n  %s\n%s", cmd, table.concat(lines, "\n"))) end
    local r = lib.decode_json(json)
    r.stall, r.seconds = stall, seconds
    return r
  end
  local r = lib.quietest(measure, { tries = TRIES, limit = ranks <= env.machine.cores and STALL_LIMIT or math.huge })
  r.command = cmd
  return r
end

print("\n2. the parts of a step (bench/mpi_step.lua parts; global batch 100, 1 thread per rank)")
local STEPS = o.quick and 10 or 30
local parts = {}
for _, m in ipairs(MODELS) do
  for _, ranks in ipairs({ 1, 2, 4 }) do
    local r = step_tool("parts", ranks, string.format("--model %s --K %d --d %d --batch %d --steps %d --threads 1",
      m.name, K, D, BATCH, STEPS))
    -- the parts of the quietest quarter of the steps; the median step beside
    local ms = r.ms.quiet
    local row = { model = m.name, model_label = m.label, ranks = ranks, rows = r.rows, buckets = r.buckets,
                  compute = ms.compute, compute_mpi = ms.compute_mpi, finish = ms.finish,
                  finish_mpi = ms.finish_mpi, update = ranks > 1 and ms.update or nil, metrics = ms.metrics,
                  quiet_steps = ms.steps, step_median = r.ms.step + r.ms.metrics, param_bytes = r.param_bytes,
                  param_tensors = r.param_tensors, allreduce_bytes_per_step = r.allreduce_bytes_per_step,
                  stall = r.stall, per_rank = r.per_rank, command = r.command }
    -- the slowest rank's compute: what the others wait for
    local slowest = 0
    for _, pr in ipairs(r.per_rank) do slowest = math.max(slowest, pr.quiet.compute) end
    row.compute_slowest = slowest
    row.whole = ms.step + ms.metrics
    row.mpi = ms.compute_mpi + ms.finish_mpi + ms.metrics
    row.comm_share = row.mpi / row.whole
    parts[#parts + 1] = row
  end
end
lib.print_table({
  { key = "model", title = "model", left = true },
  { key = "ranks", title = "ranks" },
  { key = "rows", title = "rows/rank" },
  { key = "compute", title = "compute", fmt = "%.2f" },
  { key = "compute_slowest", title = "(slowest)", fmt = "%.2f" },
  { key = "compute_mpi", title = "in MPI", fmt = "%.2f" },
  { key = "finish", title = "finish", fmt = "%.2f" },
  { key = "finish_mpi", title = "in MPI", fmt = "%.2f" },
  { key = "update", title = "update", fmt = "%.2f" },
  { key = "metrics", title = "metrics", fmt = "%.2f" },
  { key = "whole", title = "step ms", fmt = "%.2f" },
  { key = "step_median", title = "(median)", fmt = "%.2f" },
  { key = "comm_share", title = "MPI share", fmt = function(v) return pct(v) end },
  { key = "stall", title = "CPU wait", fmt = function(v) return pct(v) end },
}, parts)

local param_bytes, param_tensors = parts[1].param_bytes, parts[1].param_tensors
local bytes_by_model = {}
for _, p in ipairs(parts) do bytes_by_model[p.model] = { param_bytes = p.param_bytes, param_tensors = p.param_tensors } end

print("\n   this machine's all-reduce, 2 ranks (bench/mpi_step.lua allreduce)")
local sizes = {}
do
  local biggest = 0
  for _, b in pairs(bytes_by_model) do biggest = math.max(biggest, b.param_bytes + 8 * b.param_tensors) end
  local list = { 8, 1024, 65536, 1048576, biggest }
  local r = step_tool("allreduce", 2, "--sizes " .. table.concat(list, ",") .. " --repeats 15")
  sizes = r.sizes
  lib.print_table({
    { key = "bytes", title = "bytes", fmt = "%d" },
    { key = "ms", title = "median ms", fmt = "%.3f" },
    { key = "min_ms", title = "min ms", fmt = "%.3f" },
  }, sizes)
end

---- 3. one process against its batch, and the model ---------------------------------------

print("\n3. one process, 1 thread: a whole step against the batch (bench/mpi_step.lua sweep)")
local sweep = {}
for _, m in ipairs(MODELS) do
  local r = step_tool("sweep", 1, string.format("--model %s --K %d --d %d --threads 1 --repeats %d --batches %s",
    m.name, K, D, SWEEP_REPEATS, table.concat(SWEEP, ",")))
  sweep[m.name] = r
  local row = { model = m.name }
  for _, b in ipairs(r.batches) do row["b" .. b.batch] = b.min_ms end
  sweep[m.name].row = row
end
do
  local cols = { { key = "model", title = "fastest ms/step at batch", left = true } }
  for _, b in ipairs(SWEEP) do cols[#cols + 1] = { key = "b" .. b, title = tostring(b), fmt = "%.2f" } end
  local rows = {}
  for _, m in ipairs(MODELS) do rows[#rows + 1] = sweep[m.name].row end
  lib.print_table(cols, rows)
end

--- One process's step at b rows (ms): the fastest sample measured (each
-- the mean over at least 0.05 s of steps: the machine undisturbed), or
-- interpolated linearly between the batch sizes around b.
local function step_ms(model, b)
  local pts = sweep[model].batches
  for i, p in ipairs(pts) do
    if p.batch == b then return p.min_ms end
    if p.batch > b and i > 1 then
      local a = pts[i - 1]
      return a.min_ms + (p.min_ms - a.min_ms) * (b - a.batch) / (p.batch - a.batch)
    end
  end
  error("no step time at batch " .. b)
end

--- The 2-rank step's measured parts (the quietest quarter's).
local function two_ranks(model)
  for _, p in ipairs(parts) do
    if p.model == model and p.ranks == 2 then return p end
  end
end

--- The reducer's own work per step (ms, at least 0): one process's step
-- with the runner's reducer less without (fastest samples, interleaved).
local function reducer_ms(model)
  local r = sweep[model].reducer
  return math.max(0, r.with_min_ms - r.without_min_ms)
end

--- What a step at 2 ranks on this machine costs beyond one process's step
-- at its rows, the reducer's work and the time inside MPI (ms): two
-- processes sharing one machine's caches and memory, and what else
-- disturbed them. Reported, not part of the model (nodes share nothing).
local function sharing_ms(model)
  local p = two_ranks(model)
  return p.whole - step_ms(model, p.rows) - reducer_ms(model) - p.mpi
end

--- The predicted step at N ranks of b rows each (ms), and its parts:
-- T = t(b) + r + B·2(N-1)α + 2(N-1)/N · S/β + 2⌈log2 N⌉α
-- S bytes in B buckets, each a ring all-reduce of 2(N-1) messages; two
-- small collectives (the reducer's counts, the runner's allreduce_number
-- of the loss) by recursive doubling; no overlap with the backward pass.
local function predict(model, net, N, b)
  local p = two_ranks(model)
  local bytes, nb = p.allreduce_bytes_per_step, p.buckets or 1
  local compute = step_ms(model, b)
  local ring = 1e3 * (nb * 2 * (N - 1) * net.latency + 2 * (N - 1) / N * bytes / net.bandwidth)
  local small = 1e3 * 2 * math.ceil(math.log(N, 2)) * net.latency
  local r = reducer_ms(model)
  return compute + r + ring + small,
         { compute = compute, reducer = r, ring = ring, small = small, bytes = bytes, buckets = nb }
end

local scaling = {}
for _, m in ipairs(MODELS) do
  local t1 = step_ms(m.name, BATCH)
  for _, net in ipairs(NETWORKS) do
    for _, kind in ipairs({ "strong", "weak" }) do
      local row = { model = m.name, model_label = m.label, network = net.id, network_label = net.label,
                    kind = kind, one_process_ms = t1, nodes = {} }
      for _, N in ipairs(NODES) do
        local b = kind == "strong" and math.ceil(BATCH / N) or BATCH
        local T, p = predict(m.name, net, N, b)
        local e = kind == "strong" and t1 / (N * T) or t1 / T
        row.nodes[#row.nodes + 1] = { N = N, rows_per_rank = b, step_ms = T, efficiency = e,
                                      images_per_second = (kind == "strong" and BATCH or BATCH * N) * 1000 / T,
                                      speedup = kind == "strong" and t1 / T or N * t1 / T, parts = p }
        row["N" .. N] = string.format("%s ms, %s", num(T), pct(e))
      end
      scaling[#scaling + 1] = row
    end
  end
end
print("\n   predicted step (ms) and efficiency, 1 rank per node at 1 thread")
do
  local cols = { { key = "model", title = "model", left = true }, { key = "network", title = "network", left = true },
                 { key = "kind", title = "scaling", left = true } }
  for _, N in ipairs(NODES) do cols[#cols + 1] = { key = "N" .. N, title = "N = " .. N } end
  lib.print_table(cols, scaling)
end

---- the report ------------------------------------------------------------------------------

env.cpu_pressure_end = lib.cpu_pressure()
local doc = {
  benchmark = "bench-mpi", command = command, quick = o.quick, date = os.date("!%Y-%m-%dT%H:%M:%SZ"),
  seconds = lib.clock() - started, environment = env,
  settings = { batch = BATCH, d = D, K = K, subset = SUBSET, steps = SUBSET // BATCH, repeats = REPEATS,
               valid_images = VALID_IMAGES, stall_limit = STALL_LIMIT, tries = TRIES, parts_steps = STEPS,
               quiet_limit = QUIET_LIMIT, quiet_max_wait = QUIET_MAX_WAIT, quiet_budget = QUIET_BUDGET,
               waited = waited,
               networks = NETWORKS, nodes = NODES, sweep_batches = SWEEP,
               template = images_command({ name = "M" }, { ranks = 1, threads = "T" }, "DIR", "VALID.npy") },
  throughput = throughput, parts = parts, allreduce = sizes, sweep = sweep, scaling = scaling,
  parameters = bytes_by_model,
}

local function line(out, s) out[#out + 1] = s or "" end

local function markdown()
  local out = {}
  local m = env.machine
  line(out, "## " .. SECTION)
  line(out)
  line(out, string.format("Generated by `make bench-mpi` (which runs `%s`) on %s in %.0f s; the figures are also "
    .. "in `bench/results/mpi.json`. Machine: %s (family %s, model %s), **%d cores**: 2 ranks or 2 threads "
    .. "fill it, **4 ranks or 4 threads oversubscribe it** (two runnable tasks per core). "
    .. "OPENBLAS_CORETYPE=%s (as found), %s, commit `%s`%s. CPU pressure (PSI, last 10 s) %s%% at the start, "
    .. "%s%% at the end: the machine is shared.",
    command, doc.date, doc.seconds, m.cpu, tostring(m.cpu_family), tostring(m.cpu_model), m.cores,
    tostring(env.variables.OPENBLAS_CORETYPE or "(unset)"), mpirun_version, env.git.commit or "?",
    env.git.dirty and " (with uncommitted changes in the tree)" or "",
    tostring(env.cpu_pressure_start), tostring(env.cpu_pressure_end)))
  line(out)
  line(out, string.format("Each run is one epoch of scripts/images.lua on %d Fashion-MNIST images (%d steps of "
    .. "global batch %d), mlp, d = %d, f32, 1 thread per process, validated on a %d-image file:",
    SUBSET, SUBSET // BATCH, BATCH, D, VALID_IMAGES))
  line(out)
  line(out, "```")
  line(out, "[mpirun --allow-run-as-root --oversubscribe [--bind-to ...] -np N] " .. doc.settings.template)
  line(out, "```")
  line(out)
  line(out, string.format("with M = vae, hvae, qsl, T = 1 (2 and 4 for one process), DIR a fresh folder and "
    .. "VALID.npy the first %d images of images.lua's validation set binarised with its seed (1234), "
    .. "written by bench/mpi.lua. ", VALID_IMAGES) .. string.format("**ms/step** is "
    .. "results.json's `ms_per_step`, rank 0's mean over the run of a whole step (objective, gradient, "
    .. "all-reduce, Adamax), the median over %d runs made round-robin (their minimum and maximum beside "
    .. "it); **images/s** = global batch × 1000 / ms/step; **× 1p1t** is the speedup in images/s over one "
    .. "process with one thread; **log ms/step** is the median interval between two steps in log.csv (the whole loop: the "
    .. "batch's binarisation and the runner's second collective of a step included), **log p10** the 10th "
    .. "percentile of those intervals over every repeat (the steps nothing else on the machine slowed) and "
    .. "**× 1p1t at p10** the speedup it gives; **epoch images/s** is "
    .. "the epoch line's rate (validation included); **comm ms/step** is `communication_seconds` / `steps`: "
    .. "rank 0's time inside every collective of the run, the start's agreements (which absorb the ranks' "
    .. "different start-up times), evaluation and the end included, over the training steps, so an upper "
    .. "bound for training's; **CPU wait** the share of the run in which some task waited for a CPU "
    .. "(at 4 tasks on 2 cores, the run's own). Each run started after a second in which some task waited "
    .. "for a CPU at most %s of the time (%d runs waited %.0f s in all; %d started without such a second after "
    .. "up to %d s), and a run needing at most 2 cores was made again (up to %d tries) when kept waiting more than "
    .. "%s of its time.", REPEATS, pct(QUIET_LIMIT), waited.runs, waited.seconds, waited.gave_up, QUIET_MAX_WAIT,
    TRIES, pct(STALL_LIMIT)))
  line(out)
  line(out, "### Training throughput")
  line(out)
  line(out, "| model | configuration | ms/step | (min–max) | images/s | × 1p1t | log ms/step | log p10 | × 1p1t at p10 | epoch images/s | comm ms/step | CPU wait |")
  line(out, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
  for _, r in ipairs(throughput) do
    line(out, string.format("| %s | %s | %s | %s–%s | %s | %s | %s | %s | %s | %s | %s | %s |", r.model_label,
      r.config_label, num(r.ms_per_step), num(r.ms_min), num(r.ms_max), num(r.images_per_second),
      string.format("%.2f", r.speedup), num(r.log_ms_per_step), num(r.log_ms_p10),
      r.p10_speedup and string.format("%.2f", r.p10_speedup) or "–", num(r.epoch_images_per_second),
      r.comm_ms_per_step and num(r.comm_ms_per_step) or "–", pct(r.stall)))
  end
  line(out)
  local verdict, median, quiet = {}, {}, {}
  for _, mm in ipairs(MODELS) do
    local r = find(mm.name, "r2t1")
    -- the median interval leaves out the first steps' set-up, which the mean of a 30-step run carries
    verdict[#verdict + 1] = string.format("%s %.2f×", mm.label, r.speedup)
    median[#median + 1] = string.format("%s %.2f×", mm.name, r.log_speedup or 0 / 0)
    quiet[#quiet + 1] = string.format("%s %.2f×", mm.name, r.p10_speedup or 0 / 0)
  end
  local function met(key) return find("hvae", "r2t1")[key] >= 1.8 and find("qsl", "r2t1")[key] >= 1.8 end
  line(out, string.format("**2 ranks × 1 thread over 1 process × 1 thread (issue 15's target: ≥ 1.8× on the mlp "
    .. "flows), from ms/step: %s — %s.** From the median step time in log.csv (what a long run sees): %s — %s. "
    .. "From the 10th percentile of the step times (undisturbed steps): %s — "
    .. "%s. The same total threads in one process (1 process × 2 threads), from ms/step: %s.",
    table.concat(verdict, ", "), met("speedup") and "met" or "not met", table.concat(median, ", "),
    met("log_speedup") and "met" or "not met", table.concat(quiet, ", "),
    met("p10_speedup") and "met" or "not met",
    (function()
      local t = {}
      for _, mm in ipairs(MODELS) do t[#t + 1] = string.format("%s %.2f×", mm.name, find(mm.name, "p1t2").speedup) end
      return table.concat(t, ", ")
    end)()))
  line(out)
  local weak = {}
  for _, mm in ipairs(MODELS) do
    local r = find(mm.name, "r2t1-weak")
    weak[#weak + 1] = string.format("%s %.2f× (median step %.2f×, p10 %.2f×)", mm.name, r.speedup,
      r.log_speedup or 0 / 0, r.p10_speedup or 0 / 0)
  end
  line(out, string.format("Weak scaling, not the target: with 100 rows on each rank (global batch 200, which "
    .. "changes the optimisation; %d images, the same %d steps), 2 ranks × 1 thread give over 1 process × 1 "
    .. "thread, in images/s from ms/step: %s.", subset_of(CONFIGS[#CONFIGS]), SUBSET // BATCH,
    table.concat(weak, ", ")))
  line(out)
  local ceiling = {}
  for _, mm in ipairs(MODELS) do
    ceiling[#ceiling + 1] = string.format("%s %.2f× (%s / %s ms)", mm.name, step_ms(mm.name, 100) / step_ms(mm.name, 50),
      num(step_ms(mm.name, 100)), num(step_ms(mm.name, 50)))
  end
  line(out, "Even with communication free and the ranks alone on their cores, 2 ranks could give at most one "
    .. "process's step at 100 rows over its step at 50 (the fastest samples of the sweep below): "
    .. table.concat(ceiling, ", ") .. ".")
  line(out)
  line(out, "### Inside a step")
  line(out)
  line(out, string.format("`bench/mpi_step.lua parts` (run by bench/mpi.lua) times %d steps of the same model "
    .. "and global batch after 5 untimed ones, on random binary pixels, the rows split and the gradients "
    .. "combined as the runner does it (lvae.distributed.Reducer: the backward pass sums each gradient in its "
    .. "place in a 4 MiB bucket, last parameter first, which weights it by the rank's share of the rows as soon "
    .. "as the pass has finished it, and a bucket's MPI_Iallreduce starts as soon as it is full), and cuts each on rank 0's clock, each "
    .. "part the mean over the fastest quarter of the steps (those nothing else on the machine disturbed; the "
    .. "median whole step in brackets), in ms: **compute** (objective and gradient up to the reducer's finish, "
    .. "the weighting and the buckets' starts included; the slowest rank's in brackets; at 1 rank, with no "
    .. "reducer, the update too), **in MPI** (of it, inside MPI calls), **finish** (waiting for the buckets, "
    .. "which includes waiting for the slowest rank, the all-reduce of the counts of ranks that had each "
    .. "gradient), **in MPI** (of it), **update** (Adamax and loss:item()), **metrics** (the "
    .. "runner's second collective of a step, the loss's allreduce_number). **step** = all of them; "
    .. "**MPI share** = the time inside MPI / step.", STEPS))
  line(out)
  line(out, "| model | ranks | rows/rank | compute | (slowest) | in MPI | finish | in MPI | update | metrics | step | (median) | MPI share | CPU wait |")
  line(out, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
  for _, p in ipairs(parts) do
    line(out, string.format("| %s | %d | %d | %s | (%s) | %s | %s | %s | %s | %s | %s | (%s) | %s | %s |", p.model_label,
      p.ranks, p.rows, num(p.compute), num(p.compute_slowest), num(p.compute_mpi), num(p.finish), num(p.finish_mpi),
      num(p.update), num(p.metrics), num(p.whole), num(p.step_median), pct(p.comm_share), pct(p.stall)))
  end
  line(out)
  local share = {}
  for _, mm in ipairs(MODELS) do
    local p = two_ranks(mm.name)
    share[#share + 1] = string.format("%s %s ms (step %s = t(%d) %s + reducer %s + MPI %s + %s)", mm.name,
      num(sharing_ms(mm.name)), num(p.whole), p.rows, num(step_ms(mm.name, p.rows)), num(reducer_ms(mm.name)),
      num(p.mpi), num(sharing_ms(mm.name)))
  end
  line(out, "What the 2-rank step costs beyond one process's step at 50 rows, the reducer's own work (below) "
    .. "and the time inside MPI — two processes sharing this machine's caches and memory bandwidth, and "
    .. "whatever else disturbed them: " .. table.concat(share, "; ") .. ".")
  line(out)
  local vol = {}
  for _, mm in ipairs(MODELS) do
    local b = bytes_by_model[mm.name]
    local r2 = find(mm.name, "r2t1")
    local p2 = two_ranks(mm.name)
    vol[#vol + 1] = string.format("%s: %d parameter tensors of %d bytes (f32) in all, + 8 × %d bytes of counts "
      .. "= %d bytes; measured `allreduce_bytes` / `steps`: %s bytes per step in the runner's 2-rank run, %s in "
      .. "%d bucket%s in `mpi_step.lua parts`", mm.label, b.param_tensors, b.param_bytes, b.param_tensors,
      b.param_bytes + 8 * b.param_tensors,
      r2.allreduce_bytes_per_step and string.format("%.0f", r2.allreduce_bytes_per_step) or "?",
      string.format("%.0f", p2.allreduce_bytes_per_step), p2.buckets or 0, (p2.buckets or 0) == 1 and "" or "s")
  end
  line(out, "All-reduce volume per step (what rank 0 hands to MPI_Iallreduce; `allreduce_bytes` counts the "
    .. "gradients' buckets, not the counts, which go in their own small all-reduce of doubles, nor the "
    .. "runner's allreduce_number):")
  line(out)
  for _, v in ipairs(vol) do line(out, "- " .. v .. ".") end
  line(out)
  local sz = {}
  for _, s in ipairs(sizes) do sz[#sz + 1] = string.format("%d B %s ms", s.bytes, num(s.ms)) end
  line(out, "This machine's all-reduce between 2 ranks (shared memory; median after a barrier): "
    .. table.concat(sz, ", ") .. ".")
  line(out)
  line(out, "### Expected scaling to 8–64 nodes (a model, not a measurement)")
  line(out)
  local sw = {}
  for _, mm in ipairs(MODELS) do
    local t = {}
    for _, b in ipairs(sweep[mm.name].batches) do t[#t + 1] = string.format("%d: %s", b.batch, num(b.min_ms)) end
    sw[#sw + 1] = string.format("%s — %s", mm.name, table.concat(t, ", "))
  end
  line(out, "One process, 1 thread, ms per whole step (objective, gradient, Adamax) against its batch "
    .. "(`bench/mpi_step.lua sweep`: the fastest of " .. SWEEP_REPEATS .. " samples, each the mean over at "
    .. "least 0.05 s of steps, after a warm-up; the medians are in the JSON): " .. table.concat(sw, "; ") .. ".")
  line(out)
  line(out, "A node is one rank at 1 thread, as measured here. A step at N nodes of b rows each is predicted as")
  line(out)
  line(out, "```")
  line(out, "T(N) = t(b) + r + B·2(N−1)·α + 2(N−1)/N · S/β + 2·⌈log2 N⌉·α")
  line(out, "```")
  line(out)
  local ov = {}
  for _, mm in ipairs(MODELS) do
    local r = sweep[mm.name].reducer
    ov[#ov + 1] = string.format("%s %s ms (%s with, %s without, fastest samples)", mm.name,
      num(reducer_ms(mm.name)), num(r.with_min_ms), num(r.without_min_ms))
  end
  line(out, "t(b): one process's step at b rows (above; linear between measured sizes); r: the reducer's "
    .. "own work (weighting each gradient in its bucket by the rank's share, the counts, the views handed to the "
    .. "optimizer), one process's "
    .. "step at 100 rows with the runner's reducer less without it, interleaved (" .. table.concat(ov, "; ")
    .. "); S: the "
    .. "bytes all-reduced per step, in B buckets (above), each a ring all-reduce moving 2(N−1)/N of its bytes "
    .. "per rank in 2(N−1) messages of latency α; two small collectives of a step, ⌈log2 N⌉·α each "
    .. "(recursive doubling): the counts of ranks that had each gradient and the runner's allreduce_number "
    .. "of the loss. Not counted: the reduction's arithmetic, contention, and any overlap of the buckets' "
    .. "all-reduces with the backward pass (Open MPI 4.1 moves a non-blocking collective on only inside "
    .. "MPI calls, which the reducer makes between the pass's ops), so T is an upper bound in that respect. "
    .. "Networks, nominal: "
    .. (function()
      local t = {}
      for _, n in ipairs(NETWORKS) do
        t[#t + 1] = string.format("%s, β = %s GB/s, α = %s µs", n.label, num(n.bandwidth / 1e9), num(n.latency * 1e6))
      end
      return table.concat(t, "; ")
    end)() .. ".")
  line(out)
  line(out, string.format("**Strong scaling** keeps SPEC §6.2's global batch of %d: the question is whether more "
    .. "nodes train the same model, step for step, faster. A rank takes ⌈100/N⌉ rows (13, 7, 4, 2), the "
    .. "slowest rank sets the pace; efficiency = t(100) / (N · T(N)). **Weak scaling** keeps 100 rows per rank "
    .. "(global batch 100·N): throughput grows, but the optimisation changes with the batch (learning rate, "
    .. "steps per epoch), so it is not the same training; efficiency = t(100) / T(N). Each cell: predicted "
    .. "ms per step, efficiency.", BATCH))
  line(out)
  for _, kind in ipairs({ "strong", "weak" }) do
    local head = "| " .. (kind == "strong" and "strong (global batch 100)" or "weak (100 rows per rank)")
      .. " | network | t(100), 1 node |"
    local rule = "|---|---|---:|"
    for _, N in ipairs(NODES) do
      head, rule = head .. " N = " .. N .. " |", rule .. "---:|"
    end
    line(out, head)
    line(out, rule)
    for _, r in ipairs(scaling) do
      if r.kind == kind then
        local cells = {}
        for _, n in ipairs(r.nodes) do
          cells[#cells + 1] = string.format("%s ms, %s%s", num(n.step_ms), pct(n.efficiency),
            kind == "weak" and string.format(" (%s img/s)", num(n.images_per_second)) or "")
        end
        line(out, string.format("| %s | %s | %s ms | %s |", r.model_label, r.network_label, num(r.one_process_ms),
          table.concat(cells, " | ")))
      end
    end
    line(out)
  end
  local notes = read_file(root .. "/bench/mpi_notes.md")
  if notes and notes:match("%S") then
    line(out, "### Notes")
    line(out)
    line(out, (notes:gsub("^%s+", ""):gsub("%s+$", "")))
    line(out)
  end
  return table.concat(out, "\n")
end

local md = markdown()
print("\n" .. md)
local json_path = lib.write_json(o.quick and "mpi-quick" or "mpi", doc)
print("wrote " .. json_path)
if not o.quick then
  local path = root .. "/BENCHMARKS.md"
  local text = read_file(path) or ""
  lib.write_text(path, lib.replace_markdown_section(text, SECTION, md))
  print("wrote the section '" .. SECTION .. "' of " .. path)
else
  print("(a --quick run: BENCHMARKS.md and bench/results/mpi.json are left as they are)")
end
cleanup()
