--- bench/integrators.lua -- what one training step costs with each flow.
--
--   ./lvae bench/integrators.lua [--quick] [--threads N]
--
-- The mlp model of SPEC §6.2: encoder 784-500-500 softplus with a
-- Gaussian head (nn.GaussianHead(500, d)), the mirror decoder d-500-500
-- softplus ending in nn.Linear(500, 784) Bernoulli logits, batch 100, f32,
-- lv.models.FlowVAE with likelihood "bernoulli". Data: random binary
-- x = lv.bernoulli({100, 784}, 0.3) (the time does not depend on it).
-- One step is what training does:
--
--   elbo  = model:elbo(x)                        -- create_graph: grad mode is on
--   grads = lv.grad(-elbo:mean(), model:parameters())
--
-- Part 1, d = 64, K in {1, 5, 10}: VAE (no flow; the baseline), leapfrog
-- (tempering none, force cached: K + 1 force evaluations), leapfrog with
-- cache = false (2K: what a naive implementation costs), qsl (K), qsl2
-- (K + 1), planar (0), each with the integrator's default options; euler
-- at K = 1 only (its Hessian takes d reverse passes per step). Per row:
-- the median step time, force evaluations (model.grad_evals), peak tensor
-- memory and the bytes the ELBO's tape holds. The rows of one K are
-- sampled interleaved (sample r of each in turn), so that a slow drift of
-- a shared machine's load falls on all of them. qsl/leapfrog and
-- qsl2/leapfrog are given three ways: the ratio of the medians, of the
-- fastest samples, and the median of the per-round ratios (at K = 10 a
-- sample is one call, and a burst of other work that hits one call of a
-- round moves that round's ratio). The verdict (does qsl cost more than
-- leapfrog?) takes the middle of the three, and a warning is printed when
-- they differ by more than 0.1 -- on this 2-core shared machine bursts of
-- other work have thrown the ratio of the medians by 30% in either
-- direction while the other two stayed put.
--
-- Part 2, euler against d in {4, 8, 16, 24, 32, 64} beside qsl at the
-- same d, K = 1, and K = 5 at d <= 24 (--quick: neither K = 5 nor
-- d = 24), the same mlp architecture at each d; lib.time for each (after
-- settling), three samples of one call when a call takes 0.25 s or more,
-- a single call (after one warm call) when it takes a second or more.
-- Both the full step and the forward alone (model:elbo(x) with
-- create_graph, which already builds the Hessian) are timed. Should a
-- step fail (once, euler's did from d = 25 on, before the STACK backward
-- took a scope per input), the benchmark reports the failure and times
-- the forward, a lower bound of the step, there.
--
-- Memory: lv.memory_stats() counts tensor bytes. "peak" is
-- lv.memory_reset_peak() after a full collection, one step, then
-- peak_bytes - live bytes before the step: what the step added at its
-- highest, intermediates included until the collector frees them (the
-- toolkit collects when live bytes pass a threshold of at least 64 MB).
-- "tape" is the live bytes, after a full collection, while the ELBO (and
-- so its graph) is held: what the forward keeps for the backward.
--
-- Warm-up: each function is run until the collector has run twice (the
-- allocator's first calls take fresh pages from the system and cost
-- several times the steady state; see bench/autograd.lua), then lib.time's
-- own warm-up. The CPU wait share (Linux PSI, as bench/autograd.lua) is
-- recorded per group; the pressure at start and end is printed. Writes
-- bench/results/integrators.json; prints markdown tables.

local lv = require "lvae"
local nn = require "lvae.nn"
local lib = require "bench.lib"

local quick = lib.options("bench/integrators.lua").quick

local B, D, DTYPE = 100, 784, "f32"
local D_MAIN = 64
local KS = {1, 5, 10}
-- 24: the largest d whose euler step runs (see the header); not with --quick
local EULER_DS = quick and {4, 8, 16, 32, 64} or {4, 8, 16, 24, 32, 64}
local EULER_K5_DS = quick and {} or {4, 8, 16, 24}     -- euler (and qsl) at K = 5 too

-- Timing. Part 1: interleaved samples; part 2: lib.time.
local opts1 = quick and {warmup = 0.02, min_time = 0.02, repeats = 5}
                     or {warmup = 0.05, min_time = 0.1, repeats = 11}
local opts2 = quick and {warmup = 0.02, warmup_calls = 2, warmup_max = 0.5,
                         min_time = 0.02, repeats = 3}
                     or {warmup = 0.05, warmup_calls = 2, warmup_max = 1.0,
                         min_time = 0.05, repeats = 5}
local SINGLE = 1.0           -- s: a call this slow is timed once (after one warm call)
local SLOW = 0.25            -- s: a call this slow gets 3 samples of one call, no settling
local settle_max = quick and 0.5 or 1.5
local STALL_LIMIT = 0.10    -- one thread: remeasure a group when a task waited this long
local TRIES = quick and 1 or 3
local RETRY_UNTIL = 60      -- seconds into the run; no remeasuring after that

local clock = lib.clock
local stall = lib.cpu_stall or function() return nil end
local t_start = clock()
local pressure_start = lib.cpu_pressure and lib.cpu_pressure() or nil
local machine = lib.machine()
machine.omp_wait_policy = os.getenv("OMP_WAIT_POLICY")
machine.gomp_spincount = os.getenv("GOMP_SPINCOUNT")

local median = lib.median

-- ---- the model -------------------------------------------------------------

local x = lv.bernoulli({B, D}, 0.3)
assert(x:dtype() == DTYPE)

local FLOWS = {
  vae = {title = "VAE", make = nil},
  leapfrog = {title = "leapfrog",
              make = function(d, K) return lv.integrators.leapfrog{dim = d, K = K} end},
  leapfrog_nocache = {title = "leapfrog cache=false",
              make = function(d, K) return lv.integrators.leapfrog{dim = d, K = K, cache = false} end},
  qsl = {title = "qsl", make = function(d) return lv.integrators.qsl{dim = d} end},
  qsl2 = {title = "qsl2", make = function(d) return lv.integrators.qsl2{dim = d} end},
  planar = {title = "planar", make = function(d, K) return lv.flows.planar{dim = d, K = K} end},
  euler = {title = "euler", make = function(d) return lv.integrators.euler{dim = d} end},
}

--- The mlp FlowVAE at latent dim d with flow `id` and K steps, and its
-- step and forward closures.
local function build(id, d, K)
  lv.manual_seed(1234)
  local enc = nn.Sequential(nn.Linear(D, 500), nn.Softplus(), nn.Linear(500, 500),
                            nn.Softplus(), nn.GaussianHead(500, d))
  local dec = nn.Sequential(nn.Linear(d, 500), nn.Softplus(), nn.Linear(500, 500),
                            nn.Softplus(), nn.Linear(500, D))
  local spec = FLOWS[id]
  local flow = spec.make and spec.make(d, K) or nil
  local model = lv.models.FlowVAE{encoder = enc, decoder = dec, likelihood = "bernoulli",
                                  flow = flow, K = flow and K or nil}
  local params = model:parameters()
  local m = {id = id, title = spec.title, d = d, K = flow and K or nil, model = model,
             params = params, flow = flow}
  m.step = function()
    local elbo = model:elbo(x)
    return lv.grad(-elbo:mean(), params)
  end
  m.forward = function() return model:elbo(x) end
  return m
end

local function settle(fn) lib.settle(fn, settle_max) end

--- The step's memory: peak (added over the live bytes before it) and the
-- bytes the forward's tape holds; with the gradient evaluations it made.
local function memory(m)
  collectgarbage("collect")
  local base = lv.memory_stats().live_bytes
  lv.memory_reset_peak()
  local g = m.step()
  local peak = lv.memory_stats().peak_bytes - base
  g = nil
  collectgarbage("collect")
  base = lv.memory_stats().live_bytes
  local elbo = m.forward()
  collectgarbage("collect")
  local tape = lv.memory_stats().live_bytes - base
  local evals = m.model.grad_evals or 0
  elbo = nil
  collectgarbage("collect")
  return {peak = peak, tape = tape, base = base, grad_evals = evals}
end

--- Interleaved timing (bench/autograd.lua's pattern): sample r of each
-- function in turn. Returns {stall =, [i] = {median, min, max, iters,
-- samples}}, seconds per call.
local function time_interleaved_once(fns) return lib.time_interleaved(fns, opts1) end

--- time_interleaved_once up to TRIES times while some task kept a CPU
-- waiting (with several threads the benchmark's own threads wait for each
-- other's cores too, so only a larger share counts); keeps the least
-- disturbed result.
local function time_interleaved(fns)
  return lib.quietest(function() return time_interleaved_once(fns) end, {
    tries = TRIES, deadline = t_start + RETRY_UNTIL,
    limit = lv.num_threads() == 1 and STALL_LIMIT or 0.3 })
end

--- fn's time per call: one call first (the warm-up when calls are slow),
-- then lib.time after settling; three single calls when the first took
-- SLOW seconds or more; one when it took SINGLE or more. With the CPU
-- wait share. Errors are caught: returns nil, message.
local function time_one(fn)
  local ok, err = pcall(function()
    local t0 = clock()
    fn()
    return clock() - t0
  end)
  if not ok then return nil, err end
  local first = err
  local r
  ok, err = pcall(function()
    local t0, s0 = clock(), stall()
    if first >= SINGLE then
      collectgarbage("collect")
      local t1 = clock()
      fn()
      local t = clock() - t1
      r = {median = t, min = t, max = t, iters = 1, repeats = 1, samples = {t}, single = true}
    elseif first >= SLOW then      -- the first call was the warm-up
      collectgarbage("collect")
      local samples = {}
      for i = 1, 3 do
        local t1 = clock()
        fn()
        samples[i] = clock() - t1
      end
      r = {median = median(samples), min = math.min(table.unpack(samples)),
           max = math.max(table.unpack(samples)), iters = 1, repeats = 3, samples = samples}
    else
      settle(fn)
      r = lib.time(fn, opts2)
    end
    local s1 = stall()
    r.stall = s0 and s1 and (s1 - s0) / (clock() - t0) or nil
  end)
  if not ok then return nil, err end
  r.first = first
  return r
end

--- time_one again (up to TRIES times, cheap calls only) while some task
-- kept a CPU waiting; the least disturbed result.
local function time_quiet(fn)
  local limit = lv.num_threads() == 1 and STALL_LIMIT or 0.3
  local best, err = time_one(fn)
  if not best then return nil, err end
  best.tries = 1
  for try = 2, TRIES do
    if (best.stall or 0) <= limit or best.first >= SLOW or clock() - t_start > RETRY_UNTIL then
      break
    end
    local r = time_one(fn)
    if r and (r.stall or 0) < (best.stall or 0) then best = r end
    best.tries = try
  end
  return best
end

local function ms(s) return s and s * 1e3 or nil end
local function mb(bytes) return bytes and bytes / 2^20 or nil end

--- Median over samples of a / b.
local function paired_ratio(a, b)
  local q = {}
  for r = 1, #a.samples do q[r] = a.samples[r] / b.samples[r] end
  return median(q)
end

-- ---- part 1: every integrator at d = 64 ------------------------------------

local rows, ratios = {}, {}
local t_part1 = clock()
local main_ids = {"leapfrog", "leapfrog_nocache", "qsl", "qsl2", "planar"}

for ki, K in ipairs(KS) do
  local ids = {}
  if ki == 1 then ids[1] = "vae" end
  for _, id in ipairs(main_ids) do ids[#ids + 1] = id end
  local ms_, fns = {}, {}
  for i, id in ipairs(ids) do
    ms_[i] = build(id, D_MAIN, K)
    fns[i] = ms_[i].step
  end
  local mem = {}
  for i, m in ipairs(ms_) do
    mem[i] = memory(m)
    settle(m.step)
  end
  local res = time_interleaved(fns)
  local by_id = {}
  for i, m in ipairs(ms_) do
    local r = res[i]
    local row = {
      part = "main", integrator = m.id, title = m.title, d = D_MAIN, K = m.K,
      step_ms = ms(r.median), min_ms = ms(r.min), max_ms = ms(r.max), iters = r.iters,
      grad_evals = mem[i].grad_evals, peak_mb = mb(mem[i].peak), tape_mb = mb(mem[i].tape),
      base_mb = mb(mem[i].base), stall = res.stall, tries = res.tries, samples_ms = {},
    }
    for s = 1, #r.samples do row.samples_ms[s] = r.samples[s] * 1e3 end
    rows[#rows + 1] = row
    by_id[m.id] = {row = row, res = r}
  end
  local lf = by_id.leapfrog
  for _, id in ipairs({"leapfrog", "qsl", "qsl2", "leapfrog_nocache", "planar"}) do
    local r = by_id[id]
    r.row.vs_leapfrog = r.res.median / lf.res.median
    r.row.vs_leapfrog_min = r.res.min / lf.res.min
    r.row.vs_leapfrog_paired = paired_ratio(r.res, lf.res)
  end
  ratios[#ratios + 1] = {
    K = K, qsl_over_leapfrog = by_id.qsl.row.vs_leapfrog,
    qsl_over_leapfrog_min = by_id.qsl.row.vs_leapfrog_min,
    qsl_over_leapfrog_paired = by_id.qsl.row.vs_leapfrog_paired,
    qsl2_over_leapfrog = by_id.qsl2.row.vs_leapfrog,
    qsl2_over_leapfrog_min = by_id.qsl2.row.vs_leapfrog_min,
    qsl2_over_leapfrog_paired = by_id.qsl2.row.vs_leapfrog_paired,
    nocache_over_leapfrog = by_id.leapfrog_nocache.row.vs_leapfrog,
    stall = res.stall,
    qsl_ms = by_id.qsl.row.step_ms, qsl2_ms = by_id.qsl2.row.step_ms,
    leapfrog_ms = lf.row.step_ms,
    qsl_peak_mb = by_id.qsl.row.peak_mb, leapfrog_peak_mb = lf.row.peak_mb,
    qsl_evals = by_id.qsl.row.grad_evals, leapfrog_evals = lf.row.grad_evals,
  }
  ms_, fns, res, by_id = nil, nil, nil, nil
  collectgarbage("collect")
end

local part1_s = clock() - t_part1

-- ---- part 2: euler against d, beside qsl --------------------------------

--- Times model m's step and forward; a row.
local function measure_d(m, part)
  local mem_ok, mem = pcall(memory, m)
  local step, step_err = time_quiet(m.step)
  local fwd, fwd_err = time_quiet(m.forward)
  local evals = m.model.grad_evals or 0
  local row = {
    part = part, integrator = m.id, title = m.title, d = m.d, K = m.K,
    step_ms = step and ms(step.median), min_ms = step and ms(step.min),
    max_ms = step and ms(step.max), step_single = step and step.single or nil,
    step_first_ms = step and ms(step.first),
    fwd_ms = fwd and ms(fwd.median), fwd_single = fwd and fwd.single or nil,
    grad_evals = evals,
    hvps = m.id == "euler" and m.d * (m.K or 0) or nil,
    peak_mb = mem_ok and mb(mem.peak) or nil, tape_mb = mem_ok and mb(mem.tape) or nil,
    stall = step and step.stall or (fwd and fwd.stall) or nil,
    error = step_err or fwd_err or (not mem_ok and mem) or nil,
  }
  if row.error then row.error = tostring(row.error):gsub("^.-:%d+: ", "") end
  return row
end

local euler_rows = {}
local function euler_pair(d, K)
  local q = build("qsl", d, K)
  local qrow = measure_d(q, "euler_vs_d")
  q = nil
  collectgarbage("collect")
  local e = build("euler", d, K)
  local erow = measure_d(e, "euler_vs_d")
  e = nil
  collectgarbage("collect")
  erow.step_over_qsl = erow.step_ms and qrow.step_ms and erow.step_ms / qrow.step_ms or nil
  erow.fwd_over_qsl = erow.fwd_ms and qrow.fwd_ms and erow.fwd_ms / qrow.fwd_ms or nil
  rows[#rows + 1] = qrow
  rows[#rows + 1] = erow
  euler_rows[#euler_rows + 1] = {d = d, K = K, qsl = qrow, euler = erow}
  return erow
end

local t_part2 = clock()
for _, d in ipairs(EULER_DS) do euler_pair(d, 1) end
for _, d in ipairs(EULER_K5_DS) do euler_pair(d, 5) end
local part2_s = clock() - t_part2

-- The euler row of part 1 (d = 64, K = 1) is part 2's.
for _, p in ipairs(euler_rows) do
  if p.d == D_MAIN and p.K == 1 then
    local e = {}
    for k, v in pairs(p.euler) do e[k] = v end
    e.part = "main"
    rows[#rows + 1] = e
  end
end

local elapsed = clock() - t_start
local pressure_end = lib.cpu_pressure and lib.cpu_pressure() or nil

-- ---- report ---------------------------------------------------------------

--- A markdown table: columns {key, title, fmt (string or function)}.
local function md_table(columns, list)
  local head, rule = {}, {}
  for c, col in ipairs(columns) do
    head[c] = col.title
    rule[c] = col.left and "---" or "---:"
  end
  print("| " .. table.concat(head, " | ") .. " |")
  print("|" .. table.concat(rule, "|") .. "|")
  for _, row in ipairs(list) do
    local cells = {}
    for c, col in ipairs(columns) do
      local v = row[col.key]
      if type(col.fmt) == "function" then cells[c] = col.fmt(v, row)
      elseif v == nil then cells[c] = "–"
      elseif col.fmt then cells[c] = string.format(col.fmt, v)
      else cells[c] = tostring(v) end
    end
    print("| " .. table.concat(cells, " | ") .. " |")
  end
end

local function f1(v) return v and string.format("%.1f", v) or "–" end
local function pct(v) return v and string.format("%.0f%%", 100 * v) or "–" end
local function time_cell(v, row)
  if v == nil then return row.error and "fails" or "–" end
  local s = v >= 100 and string.format("%.0f", v) or string.format("%.1f", v)
  return row.step_single and s .. " (1 call)" or s
end

lib.print_machine(machine)
print(string.format("OMP_WAIT_POLICY=%s  GOMP_SPINCOUNT=%s", machine.omp_wait_policy or "(unset)",
  machine.gomp_spincount or "(unset)"))
print(string.format("mlp FlowVAE (784-500-500 softplus, Gaussian head, mirror decoder, "
  .. "Bernoulli), batch %d, %s, %d thread%s; %s run", B, DTYPE, machine.threads or 0,
  machine.threads == 1 and "" or "s", quick and "QUICK" or "full"))
print("step = model:elbo(x) (create_graph) + lv.grad(-elbo:mean(), params); ms: median of "
  .. string.format("%d interleaved samples of >= %g s per K", opts1.repeats, opts1.min_time))
print("peak: tensor bytes the step added at its highest (intermediates count until "
  .. "collected); tape: live bytes the ELBO's graph holds")
print()
print(string.format("## Every integrator, d = %d", D_MAIN))
print()
local main_rows = {}
for _, row in ipairs(rows) do
  if row.part == "main" then main_rows[#main_rows + 1] = row end
end
md_table({
  {key = "title", title = "integrator", left = true},
  {key = "K", title = "K", fmt = function(v) return v and tostring(v) or "–" end},
  {key = "step_ms", title = "ms / step", fmt = time_cell},
  {key = "min_ms", title = "min", fmt = function(v) return v and string.format("%.1f", v) or "–" end},
  {key = "grad_evals", title = "grad evals", fmt = function(v, row)
    if row.hvps then return string.format("%d + %d HVP", v, row.hvps) end
    return tostring(v) end},
  {key = "vs_leapfrog", title = "/ leapfrog", fmt = function(v) return v and string.format("%.2f", v) or "–" end},
  {key = "peak_mb", title = "peak MB", fmt = f1},
  {key = "tape_mb", title = "tape MB", fmt = f1},
  {key = "stall", title = "wait", fmt = pct},
}, main_rows)
for _, row in ipairs(main_rows) do
  if row.error then
    print(string.format("\n%s K = %d at d = %d: the step fails: %s (forward alone, "
      .. "model:elbo(x) with create_graph: %s ms)", row.title, row.K, row.d, row.error,
      row.fwd_ms and string.format("%.0f", row.fwd_ms) or "–"))
  end
end
print()
print("## qsl against leapfrog (same K): ratio of the medians; min: of the fastest samples; "
  .. "paired: median of the per-round ratios")
print()
md_table({
  {key = "K", title = "K", fmt = "%d"},
  {key = "leapfrog_ms", title = "leapfrog ms", fmt = "%.1f"},
  {key = "qsl_ms", title = "qsl ms", fmt = "%.1f"},
  {key = "qsl_over_leapfrog", title = "qsl / leapfrog", fmt = "%.3f"},
  {key = "qsl_over_leapfrog", title = "qsl saves", fmt = function(v)
    return string.format("%+.1f%%", 100 * (1 - v)) end},
  {key = "qsl_over_leapfrog_min", title = "(min)", fmt = "%.3f"},
  {key = "qsl_over_leapfrog_paired", title = "(paired)", fmt = "%.3f"},
  {key = "qsl2_ms", title = "qsl2 ms", fmt = "%.1f"},
  {key = "qsl2_over_leapfrog", title = "qsl2 / leapfrog", fmt = "%.3f"},
  {key = "qsl2_over_leapfrog_min", title = "(min)", fmt = "%.3f"},
  {key = "nocache_over_leapfrog", title = "cache=false / leapfrog", fmt = "%.3f"},
  {key = "qsl_evals", title = "evals qsl / lf", fmt = function(v, r)
    return string.format("%d / %d", v, r.leapfrog_evals) end},
  {key = "stall", title = "wait", fmt = pct},
}, ratios)
print()
-- The verdict: the middle of the three estimates (medians, fastest
-- samples, paired rounds), so that one estimate thrown by a burst of
-- other work does not decide it; a warning when they disagree.
local function mid3(a, b, c)
  local t = {a, b, c}
  table.sort(t)
  return t[2]
end
local worse, noisy = {}, {}
for _, r in ipairs(ratios) do
  r.qsl_over_leapfrog_verdict = mid3(r.qsl_over_leapfrog, r.qsl_over_leapfrog_min,
                                     r.qsl_over_leapfrog_paired)
  r.qsl2_over_leapfrog_verdict = mid3(r.qsl2_over_leapfrog, r.qsl2_over_leapfrog_min,
                                      r.qsl2_over_leapfrog_paired)
  local lo = math.min(r.qsl_over_leapfrog, r.qsl_over_leapfrog_min, r.qsl_over_leapfrog_paired)
  local hi = math.max(r.qsl_over_leapfrog, r.qsl_over_leapfrog_min, r.qsl_over_leapfrog_paired)
  if hi - lo > 0.1 then
    noisy[#noisy + 1] = string.format("K = %d (%.2f to %.2f, wait %.0f%%)", r.K, lo, hi,
      100 * (r.stall or 0))
  end
  if r.qsl_over_leapfrog_verdict > 1 then
    worse[#worse + 1] = string.format("K = %d: qsl %.1f ms, leapfrog %.1f ms (medians x%.3f, "
      .. "fastest x%.3f, paired x%.3f)", r.K, r.qsl_ms, r.leapfrog_ms, r.qsl_over_leapfrog,
      r.qsl_over_leapfrog_min, r.qsl_over_leapfrog_paired)
  end
end
if #worse > 0 then
  print("NOTE: qsl costs MORE than leapfrog at " .. table.concat(worse, "; "))
else
  local parts = {}
  for _, r in ipairs(ratios) do
    parts[#parts + 1] = string.format("K = %d: %.0f%% less", r.K,
      100 * (1 - r.qsl_over_leapfrog_verdict))
  end
  print("qsl costs no more than leapfrog at any K (middle of the three estimates: "
    .. table.concat(parts, ", ") .. ")")
end
if #noisy > 0 then
  print("warning: the three estimates of qsl / leapfrog disagree at " .. table.concat(noisy, ", ")
    .. ": other work disturbed the run; rerun on a quiet machine")
end
print()
print("## euler against d, beside qsl (same d and K)")
print()
local scan = {}
for _, p in ipairs(euler_rows) do
  scan[#scan + 1] = {
    d = p.d, K = p.K, qsl_ms = p.qsl.step_ms, qsl_fwd_ms = p.qsl.fwd_ms,
    euler_ms = p.euler.step_ms, euler_fwd_ms = p.euler.fwd_ms,
    step_single = p.euler.step_single, error = p.euler.error,
    step_ratio = p.euler.step_over_qsl, fwd_ratio = p.euler.fwd_over_qsl,
    hvps = p.euler.hvps, euler_peak_mb = p.euler.peak_mb, qsl_peak_mb = p.qsl.peak_mb,
    euler_tape_mb = p.euler.tape_mb, stall = math.max(p.euler.stall or 0, p.qsl.stall or 0),
  }
end
local function ratio_cell(v) return v and string.format("%.1f", v) or "–" end
md_table({
  {key = "d", title = "d", fmt = "%d"},
  {key = "K", title = "K", fmt = "%d"},
  {key = "qsl_ms", title = "qsl ms", fmt = "%.1f"},
  {key = "euler_ms", title = "euler ms", fmt = time_cell},
  {key = "step_ratio", title = "euler / qsl", fmt = ratio_cell},
  {key = "qsl_fwd_ms", title = "qsl fwd ms", fmt = "%.1f"},
  {key = "euler_fwd_ms", title = "euler fwd ms", fmt = function(v, row)
    if not v then return "–" end
    return string.format(v >= 100 and "%.0f" or "%.1f", v) end},
  {key = "fwd_ratio", title = "fwd euler / qsl", fmt = ratio_cell},
  {key = "hvps", title = "HVPs", fmt = "%d"},
  {key = "qsl_peak_mb", title = "qsl peak MB", fmt = f1},
  {key = "euler_peak_mb", title = "euler peak MB", fmt = f1},
  {key = "stall", title = "wait", fmt = pct},
}, scan)
local errs = {}
for _, s in ipairs(scan) do
  if s.error then errs[#errs + 1] = string.format("d = %d K = %d", s.d, s.K) end
end
if #errs > 0 then
  print(string.format("\neuler's step fails at %s: %s. The forward alone (fwd: model:elbo(x) "
    .. "with create_graph, which builds the Hessian) is timed there.", table.concat(errs, ", "),
    scan[1] and (function()
      for _, s in ipairs(scan) do if s.error then return s.error end end
    end)() or ""))
end
print()
local stalls = {}
for _, row in ipairs(rows) do
  if row.stall and row.stall > STALL_LIMIT and (machine.threads or 1) == 1 then
    stalls[#stalls + 1] = string.format("%s d=%d K=%s", row.title, row.d, tostring(row.K))
  end
end
if #stalls > 0 then
  print(string.format("warning: another task kept a CPU waiting for over %.0f%% of %d rows "
    .. "(%s...): rerun before drawing conclusions", 100 * STALL_LIMIT, #stalls, stalls[1]))
end
lib.print_pressure(pressure_start, pressure_end)
print(string.format("elapsed %.1f s (every integrator %.1f s, euler against d %.1f s)", elapsed,
  part1_s, part2_s))

local path = lib.write_json("integrators", {
  benchmark = "integrators",
  model = {arch = "mlp", encoder = "784-500-500 softplus, GaussianHead(500, d)",
           decoder = "d-500-500 softplus, Linear(500, 784) logits",
           likelihood = "bernoulli", batch = B, dtype = DTYPE, data = "lv.bernoulli({100, 784}, 0.3)"},
  machine = machine,
  timing = {main = opts1, euler_vs_d = opts2, single_call_at_s = SINGLE, quick = quick,
            clock = lib.clock_name, elapsed = elapsed, part1_s = part1_s, part2_s = part2_s,
            cpu_pressure_start = pressure_start, cpu_pressure_end = pressure_end},
  definitions = {
    step_ms = "model:elbo(x) with create_graph, then lv.grad(-elbo:mean(), params); median ms",
    fwd_ms = "model:elbo(x) with create_graph alone; median ms",
    vs_leapfrog = "median step / median leapfrog step at the same K",
    vs_leapfrog_min = "fastest sample / fastest leapfrog sample at the same K",
    vs_leapfrog_paired = "median over interleaved rounds of step / leapfrog step at the same K",
    verdict = "qsl_over_leapfrog_verdict: the middle of the three estimates (medians, fastest, paired)",
    peak_mb = "lv.memory_stats().peak_bytes after one step minus live bytes before it (after a full collection), MiB",
    tape_mb = "live bytes while the ELBO is held, after a full collection, minus before, MiB",
    grad_evals = "model.grad_evals: force evaluations of the flow",
    hvps = "euler: Hessian-vector products (d per step)",
    stall = lib.STALL,
  },
  ratios = ratios,
  euler_vs_d = scan,
  rows = rows,
})
print("wrote " .. path)
