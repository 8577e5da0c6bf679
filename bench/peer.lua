--- bench/peer.lua -- lvae against an independent PyTorch implementation of
-- every SPEC §6.2 model, one full training step each (`make bench-peer`).
--
--   ./lvae bench/peer.lua [--quick] [--rows mlp:vae,conv:qsl] [--lvae-threads 2,1]
--                         [--budget SECONDS] [--keep DIR]
--
-- Rows (bench/peers/rows.lua): VAE, IWAE (k = 5), planar, HVAE leapfrog
-- with tempering none / fixed / free, qsl, qsl2 (K = 5, d = 64) and Euler
-- (K = 5, d = 8), each on the mlp and the conv architecture, batch 100,
-- f32. A step is scripts/images.lua's: the objective (model:elbo(x), or
-- lv.estimators.iwae(model, x, 5)), its gradient and the Adamax update,
-- `opt:step(-objective:mean())`; PyTorch's (bench/peers/torch_models.py) is
-- the same objective, loss.backward() and Adamax in SPEC §6.2's form (eps
-- outside the max) written with torch._foreach ops.
--
-- For each row, in fresh processes:
--
-- 1. The check (bench/peers/agreement.lua says what is compared and how
--    strictly): lvae's worker writes its weights and the noise its
--    objective draws (eps_z, eps_rho, each step's xi, in lvae's order) and
--    takes two training steps; PyTorch's loads them and takes the same two
--    steps. The objective per datapoint, the gradients, both Adamax
--    updates and the force evaluations per step must agree, in f64
--    (batch 20: the same mathematics) and in f32 (batch 100: the
--    configuration timed). A disagreement stops the benchmark, naming the
--    row and the quantity. (PyTorch's checker imports torch while lvae's
--    check runs, and the timing workers start while PyTorch's runs: nothing
--    is timed then.)
-- 2. The timing: an lvae worker and two PyTorch workers (OPENBLAS_NUM_THREADS
--    = 1 and 2, which OpenBLAS reads when it loads) stay alive, and this
--    script alternates short rounds between them through FIFOs
--    (bench/peers/workers.lua, bench/peers/timing.lua) -- lvae at its own
--    thread count, PyTorch at torch.set_num_threads 1 and 2 in each worker
--    -- so that a change of the machine's load falls on both sides alike.
--    Each round is one sample per setting: the mean ms per step over about
--    0.5 s of steps after about 0.15 s of untimed ones (at least one), so
--    that the previous worker's spinning BLAS threads have gone to sleep
--    (bench/peers/timing.lua's settle_steps). Rounds go on
--    for --budget seconds (5 to 11 of them; --quick: 3); after 3, a PyTorch
--    setting over twice the best one's median drops out. The median and
--    the minimum over the rounds are reported, and PyTorch's setting with
--    the best median.
-- 3. Memory: the peak resident set (VmHWM) of each worker, after its
--    rounds, and the resident set just after `require "lvae"` / `import
--    torch` (each side's baseline).
--
-- Then the roofline of the mlp rows (bench/peers/flops.lua): the flops of
-- the step's GEMMs, counted from the shapes (and checked against
-- torch.profiler's count), over the step time, against OpenBLAS's sgemm
-- at each of those shapes (bench/blas_ref, 1 and 2 threads, the faster).
--
-- Writes bench/results/peer.json and BENCHMARKS.md (a full run; any other
-- writes bench/results/peer-partial.json only), each to a temporary name
-- first and then renamed; --render writes BENCHMARKS.md again from
-- peer.json without measuring. The file's sections written by other
-- suites (bench/mpi.lua's "Data-parallel training (MPI)") are kept.

local lv = require "lvae"
local cjson = require "cjson"
local lib = require "bench.lib"
local root = lib.root
local rows_mod = require "bench.peers.rows"
local options = require "bench.peers.options"
local agreement = require "bench.peers.agreement"
local timing = require "bench.peers.timing"
local workers = require "bench.peers.workers"
local flops = require "bench.peers.flops"
local environment = require "bench.peers.environment"
local report = require "bench.peers.report"

-- Debian's, where python3-torch is installed; BENCH_PEER_PYTHON names another
local PYTHON = os.getenv("BENCH_PEER_PYTHON") or "/usr/bin/python3"
local BLAS_REF = root .. "/bench/blas_ref"
local LVAE = root .. "/lvae"
local LVAE_WORKER = root .. "/bench/peers/lvae_worker.lua"
local TORCH_WORKER = root .. "/bench/peers/torch_worker.py"
local F64_CHECK_BATCH = 20
local TORCH_THREADS, OPENBLAS_THREADS = { 1, 2 }, { 1, 2 }
local q = lib.shell_quote

local function die(msg)
  io.stderr:write(msg, "\n")
  os.exit(1)
end

-- The sections of BENCHMARKS.md other suites write (bench/mpi.lua's),
-- kept from the file as it is, after this suite's markdown.
local OTHER_SECTIONS = { "Data-parallel training (MPI)" }
local function with_other_sections(path, markdown)
  local f = io.open(path, "r")
  local old = f and f:read("a") or ""
  if f then f:close() end
  for _, title in ipairs(OTHER_SECTIONS) do
    local section = lib.markdown_section(old, title)
    if section then markdown = lib.replace_markdown_section(markdown, title, section) end
  end
  return markdown
end

local o, err = options.parse(arg or {})
if not o then die("bench/peer.lua: " .. err .. "\n" .. options.USAGE) end
if o.help then
  print(options.USAGE)
  os.exit(0)
end
if o.render then
  -- BENCHMARKS.md again from the last full run's figures, nothing measured
  local json = root .. "/bench/results/peer.json"
  local f = io.open(json, "r")
  if not f then die("bench/peer.lua --render: no " .. json .. " (a full run writes it)") end
  local doc = cjson.decode(f:read("a"))
  f:close()
  doc.notes = report.read_notes(root)
  local path = root .. "/BENCHMARKS.md"
  lib.write_text(path, with_other_sections(path, report.markdown(doc)))
  print("wrote " .. path .. " from " .. json)
  os.exit(0)
end
local selected, row_err = rows_mod.select(o.rows)
if not selected then die("bench/peer.lua: " .. row_err) end
local lvae_threads = o.lvae_threads or { lv.num_threads() }

local ROUND_SECONDS = o.quick and 0.2 or 0.5
local WARMUP_SECONDS = o.quick and 0.5 or 1
local ROUNDS = o.quick and { min = 3, max = 3 } or { min = 5, max = 11 }
-- after this many rounds a PyTorch setting over PRUNE_FACTOR times the best
-- median drops out (bench/peers/timing.lua)
local PRUNE_AFTER, PRUNE_FACTOR = 3, 2
local CHECK_TIMEOUT = 900

---- before anything: PyTorch and bench/blas_ref are there ----------------------------

local torch_version, torch_ok = lib.run(PYTHON .. " -c 'import torch, numpy; print(torch.__version__)' 2>&1")
if not torch_ok then
  die("bench/peer.lua: PyTorch is not usable from " .. PYTHON .. " (" .. (torch_version[#torch_version] or "no output")
    .. "); `scripts/setup.sh bench` installs Debian's python3-torch and python3-numpy "
    .. "(`make bench-peer` runs it)")
end
local blas_ref_file = io.open(BLAS_REF, "r")
if not blas_ref_file then
  die("bench/peer.lua: " .. BLAS_REF .. " is missing: `make bench/blas_ref` builds it (`make bench-peer` does)")
end
blas_ref_file:close()

local env = environment.collect(lib, root, BLAS_REF)
lib.print_machine(env.machine)
print(string.format("PyTorch %s (%s); lvae at %s; OpenBLAS %s (kernel %s)", torch_version[1], PYTHON,
  table.concat(lvae_threads, ", ") .. " thread(s)", env.packages.libopenblas or "?",
  env.blas_ref and env.blas_ref.openblas_corename or "?"))

local tmp = o.keep or lib.run("mktemp -d /tmp/bench-peer.XXXXXX")[1]
os.execute("mkdir -p " .. q(tmp))
local live_workers = {}

local function cleanup()
  for w in pairs(live_workers) do w:kill() end
  live_workers = {}
  if not o.keep then os.execute("rm -rf " .. q(tmp)) end
end

---- the check ----------------------------------------------------------------------

--- Runs a one-shot command under a time limit; raises with its exit status
-- and the tail of its output when it fails.
local function run_command(what, cmd, timeout)
  local p = assert(io.popen(string.format("timeout -k 5 %d %s 2>&1", timeout, cmd), "r"))
  local out = p:read("a")
  local ok, how, code = p:close()
  if not ok then
    error(string.format("bench-peer: %s %s:\n%s", what, workers.describe_exit(ok, how, code, timeout),
      workers.tail(out, 40)), 0)
  end
end

local decode = lib.decode_json

local function read_json(path)
  local f = assert(io.open(path, "r"), "bench-peer: missing " .. path)
  local t = decode(f:read("a"))
  f:close()
  return t
end

--- Compares both sides' check of one row at one dtype (DIR/DTYPE, written
-- by the workers); returns the verdict and the workers' result.json
-- (force evaluations, step times).
local function compare(dir, dtype)
  dir = dir .. "/" .. dtype
  local manifest = read_json(dir .. "/manifest.json")
  local mine, theirs = read_json(dir .. "/lvae/result.json"), read_json(dir .. "/torch/result.json")
  local function load(side, name) return lv.load_npy(dir .. "/" .. side .. "/" .. name) end
  local checks = { { kind = "grad_evals", lvae = mine.grad_evals, torch = theirs.grad_evals } }
  for step = 1, 2 do
    local name = "objective" .. step .. ".npy"
    checks[#checks + 1] = { kind = "objective", what = step == 1 and "at the start" or "after two steps",
                            stats = agreement.stats(load("lvae", name), load("torch", name)) }
  end
  local min_grad, cross = agreement.UPDATE_MIN_GRAD[dtype], agreement.CROSS_STEPS[dtype]
  local left_out, compared = 0, 0
  for i, p in ipairs(manifest.params) do
    local function f64(side, fmt, ...) return load(side, string.format(fmt, ...)):to("f64") end
    local start = lv.load_npy(dir .. "/" .. p.file):to("f64")      -- both sides start here
    local theta = { lvae = { [0] = start }, torch = { [0] = start } }
    local grads, well_conditioned = { lvae = {}, torch = {} }, nil
    for _, side in ipairs({ "lvae", "torch" }) do
      for step = 1, 2 do
        grads[side][step] = f64(side, "grad%d_%03d.npy", step, i)
        theta[side][step] = f64(side, "param%d_%03d.npy", step, i)
        if step <= cross then
          local ok_here = grads[side][step]:abs():ge(min_grad)
          well_conditioned = well_conditioned and well_conditioned * ok_here or ok_here
        end
      end
      local expected = { agreement.adamax_updates(grads[side][1], grads[side][2], manifest) }
      for step = 1, 2 do
        checks[#checks + 1] = { kind = "adamax", what = string.format("%s's %s (step %d)", side, p.name, step),
                                stats = agreement.stats(theta[side][step] - theta[side][step - 1], expected[step]) }
      end
    end
    for step = 1, cross do
      checks[#checks + 1] = { kind = "gradient", what = string.format("%s (step %d)", p.name, step),
                              stats = agreement.stats(grads.lvae[step], grads.torch[step]) }
      local st = agreement.stats(theta.lvae[step] - start, theta.torch[step] - start,
                                 min_grad > 0 and well_conditioned or nil)
      checks[#checks + 1] = { kind = "update", what = string.format("%s (step %d)", p.name, step), stats = st }
      left_out, compared = left_out + st.excluded, compared + st.n + st.excluded
    end
  end
  local verdict = agreement.verdict(checks, dtype)
  verdict.update_left_out = compared > 0 and left_out / compared or 0
  return verdict, mine, theirs
end

local CHECKS = { { dtype = "f64", batch = F64_CHECK_BATCH }, { dtype = "f32" } }

--- Judges the row's check at each dtype; stops the run on a disagreement.
local function judge(row, dir)
  local out = { tolerances = agreement.TOLERANCES }
  for _, c in ipairs(CHECKS) do
    local dtype = c.dtype
    local v, mine, theirs = compare(dir, dtype)
    local e = {}
    for kind, w in pairs(v.worst) do e[kind] = { error = w.error, what = w.what } end
    out[dtype] = { ok = v.ok, batch = c.batch or row.batch, worst = e, update_left_out = v.update_left_out,
                   grad_evals = { lvae = mine.grad_evals, torch = theirs.grad_evals },
                   lvae_step_seconds = mine.step2_seconds, torch_step_seconds = theirs.step2_seconds,
                   generator = mine.generator }
    print(string.format("  check %s (batch %d): %s", dtype, out[dtype].batch, report.check_line(out[dtype])))
    if mine.generator and not mine.generator.same then
      print(string.format("  note: lvae's objective with its noise from lv.Generator(seed) passed as gen differs "
        .. "from the default generator's with the same seed (max |diff| %g, offsets %s and %s)",
        mine.generator.max_diff, tostring(mine.generator.offset_gen), tostring(mine.generator.offset_default)))
    end
    if not v.ok then
      error(string.format("bench-peer: %s: lvae and PyTorch disagree in %s -- the timings would compare "
        .. "different computations:\n  %s", row.id, dtype, table.concat(v.failures, "\n  ")), 0)
    end
  end
  out.grad_evals = out.f32.grad_evals.lvae
  return out
end

---- the workers ----------------------------------------------------------------------

local function spawn_worker(name, command, timeout, extra_env)
  local w = workers.spawn{ name = name, command = command, dir = tmp, timeout = timeout,
                           env = extra_env, decode = decode }
  live_workers[w] = true
  return w
end

local function stop_worker(w)
  w:stop()
  live_workers[w] = nil
end

local function kib_to_mib(k) return k and k / 1024 or nil end

--- The timing workers of a row, started (not yet ready): lvae's, and
-- PyTorch's at each OPENBLAS_NUM_THREADS, with the settings they serve.
local function spawn_timing_workers(row, dir, step_guess)
  local settings_count = #lvae_threads + #TORCH_THREADS * #OPENBLAS_THREADS
  -- a bound for a hang, not a budget: PyTorch's step may be slower than
  -- lvae's, whose step is the guess
  local timeout = 120 + 4 * (o.budget + settings_count * (WARMUP_SECONDS + (ROUNDS.max + 4) * 3 * step_guess))
  local lw = spawn_worker("lvae", string.format("%s %s serve %s", q(LVAE), q(LVAE_WORKER), q(row.id)), timeout)
  local settings, torch_workers = {}, {}
  for _, t in ipairs(lvae_threads) do
    settings[#settings + 1] = { side = "lvae", worker = lw, threads = t, label = string.format("lvae, %d thread%s", t, t == 1 and "" or "s") }
  end
  for _, ob in ipairs(OPENBLAS_THREADS) do
    local tw = spawn_worker("torch-openblas" .. ob, string.format("%s %s serve %s", PYTHON, q(TORCH_WORKER),
      q(dir .. "/f32")), timeout, { OPENBLAS_NUM_THREADS = tostring(ob) })
    torch_workers[#torch_workers + 1] = { worker = tw, openblas = ob }
    for _, t in ipairs(TORCH_THREADS) do
      settings[#settings + 1] = { side = "torch", worker = tw, threads = t, openblas = ob,
                                  label = string.format("torch %d, OpenBLAS %d", t, ob) }
    end
  end
  return { lvae = lw, torch = torch_workers, settings = settings }
end

---- the timing -----------------------------------------------------------------------

local function time_row(row, w)
  local lw, torch_workers, settings = w.lvae, w.torch, w.settings
  local all = { lw }
  for _, tw in ipairs(torch_workers) do all[#all + 1] = tw.worker end
  for _, worker in ipairs(all) do worker:wait_ready() end
  environment.add_worker(env, "lvae", lw.ready)
  environment.add_worker(env, "torch", torch_workers[1].worker.ready)
  -- warm-up: each worker, then each setting on its own
  local warm = {}
  for _, worker in ipairs(all) do
    local r = worker:request(string.format("warmup %g", WARMUP_SECONDS))
    warm[worker] = r.seconds / r.steps
  end
  for _, s in ipairs(settings) do
    local n = timing.steps_per_round(warm[s.worker], ROUND_SECONDS)
    local r = s.worker:request(string.format("round %d %d 0", n, s.threads))
    s.estimate = r.seconds / n
    s.steps = timing.steps_per_round(s.estimate, ROUND_SECONDS)
    s.settle = timing.settle_steps(s.estimate)
    s.samples, s.active = {}, true
  end
  local stall0, t0, rounds = lib.cpu_stall(), lib.clock(), 0
  local limits = { budget = o.budget, min = ROUNDS.min, max = ROUNDS.max }
  while timing.another_round(rounds, lib.clock() - t0, limits) do
    rounds = rounds + 1
    for _, i in ipairs(timing.order(rounds, #settings)) do
      local s = settings[i]
      if s.active then
        local reply = s.worker:request(string.format("round %d %d %d", s.steps, s.threads, s.settle))
        s.samples[#s.samples + 1] = reply.seconds / s.steps
      end
    end
    if rounds == PRUNE_AFTER then
      local torch_samples, torch_settings = {}, {}
      for _, s in ipairs(settings) do
        if s.side == "torch" then
          torch_samples[#torch_samples + 1], torch_settings[#torch_settings + 1] = s.samples, s
        end
      end
      local keep = timing.keep(torch_samples, PRUNE_FACTOR)
      for i, s in ipairs(torch_settings) do
        if not keep[i] then s.active, s.dropped_after = false, rounds end
      end
    end
  end
  local stall1 = lib.cpu_stall()
  local result = { rounds = rounds, seconds = lib.clock() - t0,
                   cpu_wait_share = stall0 and stall1 and (stall1 - stall0) / (lib.clock() - t0) or nil }
  local lvae_stats = lw:request("stats")
  result.lvae_rss_mib = kib_to_mib(lvae_stats.vmhwm_kib)
  result.lvae_import_rss_mib = kib_to_mib(lw.ready.rss_after_import_kib)
  result.lvae_grad_evals = lvae_stats.grad_evals
  for _, tw in ipairs(torch_workers) do
    local st = tw.worker:request("stats")
    tw.rss_mib, tw.grad_evals = kib_to_mib(st.vmhwm_kib), st.grad_evals
    tw.import_rss_mib = kib_to_mib(tw.worker.ready.rss_after_import_kib)
    tw.openblas_info = tw.worker.ready.openblas
  end
  -- after the peaks were read: the profiler's own memory is not the step's
  if row.arch == "mlp" then result.torch_gemm_flops = torch_workers[1].worker:request("flops").gemm_flops end
  for _, worker in ipairs(all) do stop_worker(worker) end

  local function summarise(s)
    local m = timing.summary(s.samples)
    local samples_ms = {}
    for k, v in ipairs(s.samples) do samples_ms[k] = v * 1e3 end
    return { side = s.side, threads = s.threads, openblas_threads = s.openblas, label = s.label,
             median_ms = m.median * 1e3, min_ms = m.min * 1e3, max_ms = m.max * 1e3,
             steps_per_round = s.steps, settle_steps = s.settle, samples_ms = samples_ms,
             dropped_after_round = s.dropped_after }
  end
  result.lvae_settings, result.torch_settings = {}, {}
  local medians = {}
  for _, s in ipairs(settings) do
    local sum = summarise(s)
    if s.side == "lvae" then
      result.lvae_settings[#result.lvae_settings + 1] = sum
    else
      for _, tw in ipairs(torch_workers) do
        if tw.worker == s.worker then
          sum.rss_mib, sum.import_rss_mib, sum.openblas = tw.rss_mib, tw.import_rss_mib, tw.openblas_info
        end
      end
      result.torch_settings[#result.torch_settings + 1] = sum
      medians[#medians + 1] = { median = sum.median_ms }
    end
  end
  result.torch_best = result.torch_settings[timing.best(medians)]
  result.torch_grad_evals = torch_workers[1].grad_evals
  return result
end

---- one row ------------------------------------------------------------------------

--- The row's check, then its timing. The processes overlap where nothing
-- is timed: PyTorch's checker imports torch while lvae's check runs, and the
-- timing workers start while PyTorch's check runs.
local function run_row(row)
  local dir = tmp .. "/" .. row.id:gsub(":", "-")
  local phases, t0 = {}, lib.clock()
  local checker = spawn_worker("torch-check", string.format("%s %s checker", PYTHON, q(TORCH_WORKER)), CHECK_TIMEOUT)
  local dtypes = {}
  for _, c in ipairs(CHECKS) do dtypes[#dtypes + 1] = string.format("%s:%d", c.dtype, c.batch or row.batch) end
  run_command("lvae's check of " .. row.id, string.format("%s %s check %s %s %s", q(LVAE), q(LVAE_WORKER),
    q(row.id), q(dir), table.concat(dtypes, " ")), CHECK_TIMEOUT)
  phases.lvae_check = lib.clock() - t0
  local step_guess = read_json(dir .. "/f32/lvae/result.json").step2_seconds
  local timing_workers = spawn_timing_workers(row, dir, step_guess)
  checker:wait_ready()
  for _, c in ipairs(CHECKS) do checker:request("check " .. dir .. "/" .. c.dtype) end
  stop_worker(checker)
  phases.check = lib.clock() - t0
  local checked = judge(row, dir)
  local t1 = lib.clock()
  local t = time_row(row, timing_workers)
  phases.timing = lib.clock() - t1
  phases.total = lib.clock() - t0
  return checked, t, phases
end

---- the roofline ---------------------------------------------------------------------

local BLAS_OP = { nt = "gemm_nt", nn = "gemm", tn = "gemm_tn" }

--- Seconds per call of every shape, at OpenBLAS 1 and 2 threads: {[key] =
-- faster}, and both runs' figures.
local function time_gemms(shapes)
  local args = {}
  for _, s in ipairs(shapes) do args[#args + 1] = string.format("%s %d %d %d", BLAS_OP[s.op], s.m, s.k, s.n) end
  local by_threads, best = {}, {}
  for _, threads in ipairs(OPENBLAS_THREADS) do
    local cmd = string.format("OPENBLAS_NUM_THREADS=%d %s --min-time %g --repeats %d %s 2>&1",
      threads, q(BLAS_REF), o.quick and 0.02 or 0.05, o.quick and 3 or 7, table.concat(args, " "))
    local lines, ok = lib.run(cmd)
    if not ok then error("bench-peer: bench/blas_ref failed:\n" .. table.concat(lines, "\n"), 0) end
    local seconds = {}
    for _, l in ipairs(lines) do
      local name, m, k, n, sec = l:match("^(gemm%S*) (%d+) (%d+) (%d+) (%S+)$")
      if name then
        local op = name == "gemm" and "nn" or name:sub(6)
        local key = string.format("%s %s %s %s", op, m, k, n)
        seconds[key] = tonumber(sec)
        if not best[key] or seconds[key] < best[key] then best[key] = seconds[key] end
      end
    end
    by_threads[threads] = seconds
  end
  return best, by_threads
end

local function roofline(results)
  local counts, mlp = {}, {}
  for _, r in ipairs(results) do
    if r.arch == "mlp" then
      local c = flops.count(rows_mod.find(r.id), r.grad_evals)
      counts[#counts + 1], mlp[#mlp + 1] = c, { row = r, count = c }
    end
  end
  if #counts == 0 then return nil end
  local shapes = flops.shapes(table.unpack(counts))
  local best, by_threads = time_gemms(shapes)
  local out = { gemm_seconds = best, gemm_seconds_by_openblas_threads = by_threads }
  for _, e in ipairs(mlp) do
    local roof = assert(flops.roof_seconds(e.count, best))
    local r = e.row
    r.roofline = { counted_gflop = e.count.total * 1e-9, torch_profiled_gflop = r.torch_gemm_flops and r.torch_gemm_flops * 1e-9,
                   roof_seconds = roof, points = e.count.points,
                   lvae = flops.roofline(e.count, roof, r.lvae_ms * 1e-3),
                   torch = flops.roofline(e.count, roof, r.torch_ms * 1e-3) }
  end
  return out
end

---- the run ----------------------------------------------------------------------

local function run_rows()
  local results = {}
  for n, row in ipairs(selected) do
    print(string.format("\n[%d/%d] %s -- %s", n, #selected, row.id, row.title))
    local checked, t, phases = run_row(row)
    local default = t.lvae_settings[1]
    local best = t.torch_best
    if t.lvae_grad_evals ~= checked.grad_evals or t.torch_grad_evals ~= checked.grad_evals then
      error(string.format("bench-peer: %s: the timed steps made %s (lvae) and %s (PyTorch) force evaluations, "
        .. "the check %s", row.id, tostring(t.lvae_grad_evals), tostring(t.torch_grad_evals),
        tostring(checked.grad_evals)), 0)
    end
    local r = {
      id = row.id, arch = row.arch, model = row.name, title = row.title, d = row.d, K = row.K,
      batch = row.batch, samples = row.samples, grad_evals = checked.grad_evals,
      lvae_ms = default.median_ms, lvae_min_ms = default.min_ms, lvae_threads = default.threads,
      torch_ms = best.median_ms, torch_min_ms = best.min_ms,
      torch_threads = { torch = best.threads, openblas = best.openblas_threads },
      speedup = best.median_ms / default.median_ms,
      lvae_rss_mib = t.lvae_rss_mib, torch_rss_mib = best.rss_mib,
      lvae_import_rss_mib = t.lvae_import_rss_mib, torch_import_rss_mib = best.import_rss_mib,
      rounds = t.rounds, timing_seconds = t.seconds, cpu_wait_share = t.cpu_wait_share,
      lvae_settings = t.lvae_settings, torch_settings = t.torch_settings,
      torch_gemm_flops = t.torch_gemm_flops, check = checked, phase_seconds = phases,
    }
    results[#results + 1] = r
    print("  " .. report.timing_line(r))
  end
  return results
end

local started = lib.clock()
local ok, results = xpcall(run_rows, function(e)
  return type(e) == "string" and e:match("^bench%-peer: ") and e or debug.traceback(tostring(e), 2)
end)
if not ok then
  cleanup()
  die(results)
end
local roof_ok, roof = pcall(roofline, results)
cleanup()
if not roof_ok then die(roof) end

env.cpu_pressure_end = lib.cpu_pressure()
local command = o.full and "make bench-peer" or "./lvae bench/peer.lua " .. table.concat(arg, " ")
local doc = { benchmark = "bench-peer", command = command, full = o.full, quick = o.quick,
              date = os.date("!%Y-%m-%dT%H:%M:%SZ"), seconds = lib.clock() - started,
              environment = env, tolerances = agreement.TOLERANCES, rows = results, roofline = roof,
              settings = { round_seconds = ROUND_SECONDS, warmup_seconds = WARMUP_SECONDS, rounds = ROUNDS,
                           budget_seconds = o.budget, f64_check_batch = F64_CHECK_BATCH,
                           lvae_threads = lvae_threads, torch_threads = TORCH_THREADS,
                           openblas_threads = OPENBLAS_THREADS } }
doc.notes = report.read_notes(root)
local markdown = report.markdown(doc)
doc.notes = nil
print("\n" .. markdown)
local json_path = lib.write_json(o.full and "peer" or "peer-partial", doc)
print("wrote " .. json_path)
if o.full then
  local path = root .. "/BENCHMARKS.md"
  lib.write_text(path, with_other_sections(path, markdown))
  print("wrote " .. path)
else
  print("(a partial or --quick run: BENCHMARKS.md and bench/results/peer.json are left as they are)")
end
