--- bench/autograd.lua -- what the tape costs on a small MLP step.
--
--   ./lvae bench/autograd.lua [--quick] [--threads N] [--f32-only]
--                             [--list-kernels]
--
-- Two three-layer softplus networks at batch B = 100, in f32 and f64 on
-- the toolkit's thread count (or --threads N), and in f32 on one thread:
--
--   mlp      784-500-500-64 on x = lv.rand({100, 784}); loss = sum(out^2)
--   decoder  64-500-500-784 on z [100, 64] (the HVAE decoder); U = the
--            Bernoulli log-likelihood sum(data * logits - softplus(logits))
--
-- Each layer is h = softplus(h @ W + b) (no softplus on the last); the
-- weights are lv.param, Glorot-normal. Steps timed on each network:
--
--   fwd            the loss, recorded on the tape
--   fwd no_grad    the same under lv.no_grad (recording nothing)
--   fwd+grad       lv.grad(loss, params)
--   fwd+backward   p.grad = nil for every p, then loss:backward()
--   hvae 1st       U, then g = lv.grad(U, {input}, {create_graph = true})
--   hvae           that, then S = sum(g * g) and lv.grad(S, params): the
--                  HVAE pattern (a gradient of a gradient)
--
-- (hvae on the mlp differentiates through x made a param.)
--
-- Where the time goes. For each step this file lists the kernels the tape
-- runs -- every GEMM and every elementwise or reduction kernel, in the
-- order src/autograd.c and the VJPs in src/ops_*.c issue them (the view
-- ops reshape/transpose/expand are left out: they move no data) -- and
-- measures them two ways, with no tape at all:
--
--   kernels    each distinct kernel timed standalone on detached tensors
--              of the same shapes and layouts (transposed operands as
--              transposed views, broadcast operands as expanded views),
--              times how often the step runs it, summed; "BLAS" is the
--              GEMM part of that sum, "elementwise" the rest.
--   replay     the whole list run in order once per call, under no_grad,
--              on pre-made inputs (kernels of one shape share theirs).
--
--   tape overhead    = (step - replay) / step: what recording nodes,
--                      walking the graph, the view ops, scalars made in
--                      VJPs and the Lua calls cost beyond the kernels.
--   vs kernels       = (step - kernels) / step: the same against the
--                      standalone sum; the gap between the two is the
--                      kernels slowing each other down (threads handing
--                      the cores between OpenMP and OpenBLAS, caches).
--   BLAS share       = BLAS / step.
--
-- The replay's inputs are not the previous kernel's outputs (as they are
-- in the step), but kernels of one shape share them, so the replay's
-- data sits warmer in cache than the step's: if anything it errs fast,
-- and the tape overhead it gives errs high. Either can be a little
-- negative when the figures are within noise of each other.
-- `--list-kernels` prints each step's kernel list (checked against a gdb
-- trace of lv_apply on a -g build: the lists match the tape's kernels one
-- for one). Every figure is a median after a warm-up that runs past two
-- collections; steps are sampled interleaved with their replay (a busy
-- moment falls on both) and remeasured, early in the run, when another
-- task kept a CPU waiting. The whole run takes about a minute on an idle
-- 2-core machine (--quick: a smoke run). Writes
-- bench/results/autograd.json (every sample, both statistics, the
-- kernel table, the machine).
--
-- Threads: on few cores the toolkit's OpenMP threads (elementwise kernels
-- from 65536 elements) and OpenBLAS's own threads share the cores; idle
-- threads of either pool spin a while before sleeping, and a GEMM that
-- follows a parallel elementwise kernel (or the reverse) can wait for a
-- core. Compare the 1-thread rows; the header prints OMP_WAIT_POLICY and
-- GOMP_SPINCOUNT (./lvae sets the latter unless it is set).

local lv = require "lvae"
local lib = require "bench.lib"

local options = lib.options("bench/autograd.lua", {"--f32-only", "--list-kernels"})
local quick, threads = options.quick, options.threads
local list_kernels, f32_only = options["--list-kernels"] or false, options["--f32-only"] or false

-- What is measured: each dtype at the toolkit's thread count (or
-- --threads N), and f32 once more on one thread -- on a machine with few
-- cores, OpenMP's elementwise threads and OpenBLAS's threads take turns
-- on the same cores, and one thread can be the faster.
local B = 100
local default_threads = threads or lv.num_threads()
local CONFIGS = {{dtype = "f32", threads = default_threads}}
if not f32_only then CONFIGS[#CONFIGS + 1] = {dtype = "f64", threads = default_threads} end
if default_threads > 1 then CONFIGS[#CONFIGS + 1] = {dtype = "f32", threads = 1} end
local NETS = {
  {name = "mlp", sizes = {784, 500, 500, 64}, head = "square"},
  {name = "decoder", sizes = {64, 500, 500, 784}, head = "bernoulli"},
}

-- Timing of whole steps, and of single kernels (shorter samples: there
-- are many of them).
local step_opts = quick and {warmup = 0.02, min_time = 0.02, repeats = 3}
                         or {warmup = 0.05, min_time = 0.03, repeats = 7}
local kernel_opts = quick and {warmup = 0.005, min_time = 0.005, repeats = 3}
                           or {warmup = 0.01, min_time = 0.01, repeats = 5}
local settle_max = quick and 0.5 or 1.5     -- seconds, at most, per settle
local STALL_LIMIT = 0.10    -- remeasure when a task waited for a CPU this long
local TRIES = quick and 1 or 3
local RETRY_UNTIL = 30      -- seconds into the run; no remeasuring after that

local clock = lib.clock
local stall = lib.cpu_stall or function() return nil end

local function settle(fn, single_thread) lib.settle(fn, settle_max, single_thread) end

local median = lib.median

--- Calls measure() (which returns a result with .stall, the share of its
-- time in which some task waited for a CPU) up to TRIES times while the
-- machine is busy; keeps the least disturbed result. With several threads
-- the benchmark's own threads wait for each other's cores too, so only a
-- much larger share counts as busy.
local t_start = clock()
local function quietest(measure)
  return lib.quietest(measure, { tries = TRIES, deadline = t_start + RETRY_UNTIL,
                                 limit = lv.num_threads() == 1 and STALL_LIMIT or 0.5 })
end

--- A kernel's standalone time: lib.time, and the CPU-wait share.
local function time_kernel(fn)
  return quietest(function()
    local t0, s0 = clock(), stall()
    local r = lib.time(fn, kernel_opts)
    local s1 = stall()
    r.stall = s0 and s1 and (s1 - s0) / (clock() - t0) or nil
    return r
  end)
end

--- Interleaved timing of several functions: sample r of each is taken
-- one after the other, so that a busy moment of the machine falls on all
-- of them alike and ratios can be taken sample by sample. (bench/lib.lua's
-- lib.time times one function; this is its interleaved cousin, written
-- here.) Returns {stall =, [i] = {median =, min =, max =, iters =,
-- samples = {...}}}, seconds per call.
local function time_interleaved(fns)
  return quietest(function()
    return lib.time_interleaved(fns, step_opts)
  end)
end

--- Median over samples of (a - b) / b, in percent.
local function paired_pct(a, b)
  local d = {}
  for r = 1, #a.samples do d[r] = 100 * (a.samples[r] - b.samples[r]) / b.samples[r] end
  return median(d)
end

-- ---- kernels: what a step runs, as closures over pre-made inputs -------
--
-- Each constructor returns {key =, kind = "gemm" | "elementwise",
-- flops =, make = function(dtype) -> fn}; fn runs the kernel once on
-- detached inputs of the step's shapes and layouts.

local function shape_str(s) return "[" .. table.concat(s, ",") .. "]" end

local function rnd(shape, dt) return lv.randn(shape, dt) end

--- A GEMM [n,k] x [k,m]; ta/tb: that operand is a transposed view (as
-- the matmul VJP passes W^T and A^T).
local function mm(n, k, m, ta, tb)
  return {
    key = string.format("matmul %dx%dx%d%s%s", n, k, m, ta and " A^T" or "",
                        tb and " B^T" or ""),
    kind = "gemm", flops = 2 * n * k * m,
    make = function(dt)
      local a = ta and rnd({k, n}, dt):t() or rnd({n, k}, dt)
      local b = tb and rnd({m, k}, dt):t() or rnd({k, m}, dt)
      return function() return a:matmul(b) end
    end,
  }
end

local function ew(key, make) return {key = key, kind = "elementwise", flops = 0, make = make} end

--- fn(x) on a contiguous [n, m].
local function unary(name, n, m)
  return ew(string.format("%s %s", name, shape_str{n, m}), function(dt)
    local x = rnd({n, m}, dt)
    local f = lv[name]
    return function() return f(x) end
  end)
end

--- a op b, both contiguous [n, m].
local function binary(name, n, m)
  return ew(string.format("%s %s,%s", name, shape_str{n, m}, shape_str{n, m}), function(dt)
    local a, b = rnd({n, m}, dt), rnd({n, m}, dt)
    local f = lv[name]
    return function() return f(a, b) end
  end)
end

--- [n, m] + [m] (the bias).
local function bias_add(n, m)
  return ew(string.format("add %s,%s", shape_str{n, m}, shape_str{m}), function(dt)
    local a, b = rnd({n, m}, dt), rnd({m}, dt)
    return function() return a + b end
  end)
end

--- [n, m] + a 0-dim scalar (1 - y in the sigmoid VJP).
local function add_scalar(n, m)
  return ew(string.format("add %s,[]", shape_str{n, m}), function(dt)
    local a, s = rnd({n, m}, dt), lv.tensor(1.0, dt)
    return function() return a + s end
  end)
end

--- The seed of a reverse pass expanded to [n, m] (strides 0), times a
-- 0-dim scalar (other = "scalar"), times a contiguous [n, m] ("full"), or
-- negated ("neg").
local function expanded(other, n, m)
  local key = other == "neg" and string.format("neg %s(expanded)", shape_str{n, m})
    or string.format("mul %s(expanded),%s", shape_str{n, m},
                     other == "scalar" and "[]" or shape_str{n, m})
  return ew(key, function(dt)
    local e = lv.ones({1, 1}, dt):expand({n, m})
    if other == "neg" then return function() return -e end end
    local b = other == "scalar" and lv.tensor(2.0, dt) or rnd({n, m}, dt)
    return function() return e * b end
  end)
end

--- [n, m] seen through a transpose (strides 1, n) plus a contiguous
-- [n, m]: the two contributions to a weight's gradient in a second-order
-- pass (one arrives through W^T).
local function add_transposed(n, m)
  return ew(string.format("add %s(transposed),%s", shape_str{n, m}, shape_str{n, m}),
    function(dt)
      local a, b = rnd({m, n}, dt):t(), rnd({n, m}, dt)
      return function() return a + b end
    end)
end

local function sum_all(n, m)
  return ew(string.format("sum %s", shape_str{n, m}), function(dt)
    local x = rnd({n, m}, dt)
    return function() return x:sum() end
  end)
end

--- Sum over the batch, keepdim (a bias's gradient).
local function sum_rows(n, m)
  return ew(string.format("sum %s dim 1", shape_str{n, m}), function(dt)
    local x = rnd({n, m}, dt)
    return function() return x:sum(1, true) end
  end)
end

-- ---- the kernel lists ---------------------------------------------------
-- s: sizes {s1, s2, s3, s4}; layer l maps [B, s_l] to [B, s_{l+1}]; a_l
-- is its pre-activation. The order follows the tape's.

local function push(list, k) list[#list + 1] = k end

local function forward_kernels(list, s, head)
  for l = 1, 3 do
    push(list, mm(B, s[l], s[l + 1]))
    push(list, bias_add(B, s[l + 1]))
    if l < 3 then push(list, unary("softplus", B, s[l + 1])) end
  end
  if head == "square" then
    push(list, unary("square", B, s[4]))
  else
    push(list, binary("mul", B, s[4]))
    push(list, unary("softplus", B, s[4]))
    push(list, binary("sub", B, s[4]))
  end
  push(list, sum_all(B, s[4]))
end

--- The first reverse pass: to the params (want_params) and/or to the
-- network's input (want_input).
local function backward_kernels(list, s, head, want_params, want_input)
  if head == "square" then          -- d sum(out^2) = 2 g out
    push(list, expanded("scalar", B, s[4]))
    push(list, binary("mul", B, s[4]))
  else                              -- g data - g sigmoid(logits)
    push(list, expanded("neg", B, s[4]))
    push(list, unary("sigmoid", B, s[4]))
    push(list, binary("mul", B, s[4]))
    push(list, expanded("full", B, s[4]))
    push(list, binary("add", B, s[4]))
  end
  for l = 3, 1, -1 do
    if want_params then push(list, sum_rows(B, s[l + 1])) end
    if l > 1 or want_input then push(list, mm(B, s[l + 1], s[l], false, true)) end
    if want_params then push(list, mm(s[l], B, s[l + 1], true, false)) end
    if l > 1 then
      push(list, unary("sigmoid", B, s[l]))
      push(list, binary("mul", B, s[l]))
    end
  end
end

--- S = sum(g * g) of the input gradient g [B, s1].
local function gnorm_kernels(list, s)
  push(list, binary("mul", B, s[1]))
  push(list, sum_all(B, s[1]))
end

--- The second reverse pass, lv.grad(S, params): back through the first
-- pass's recorded graph (layers 1 to 3), then through the forward graph.
local function second_kernels(list, s, head)
  push(list, expanded("full", B, s[1]))     -- d (g * g): 2 products, summed
  push(list, expanded("full", B, s[1]))
  push(list, binary("add", B, s[1]))
  for l = 1, 3 do
    -- dh_l = G_l W_l^T: to G_l, and to W_l^T (a transposed gradient)
    push(list, mm(B, s[l], s[l + 1]))
    push(list, mm(s[l + 1], B, s[l], true, false))
    if l < 3 then
      -- G_l = dh_{l+1} * sigmoid(a_l): both factors, then sigmoid's VJP
      push(list, binary("mul", B, s[l + 1]))
      push(list, binary("mul", B, s[l + 1]))
    elseif head == "square" then
      push(list, binary("mul", B, s[4]))      -- G_3 = (2 g) * out
    else
      push(list, binary("mul", B, s[4]))      -- G_3 = -g * sigmoid(logits) + ...
    end
    if l < 3 or head ~= "square" then        -- g y (1 - y)
      push(list, unary("neg", B, s[l + 1]))
      push(list, add_scalar(B, s[l + 1]))
      push(list, binary("mul", B, s[l + 1]))
      push(list, binary("mul", B, s[l + 1]))
    end
  end
  for l = 3, 1, -1 do
    push(list, sum_rows(B, s[l + 1]))
    if l > 1 then push(list, mm(B, s[l + 1], s[l], false, true)) end
    push(list, mm(s[l], B, s[l + 1], true, false))
    push(list, add_transposed(s[l], s[l + 1]))   -- the two W_l contributions
    if l > 1 then
      push(list, unary("sigmoid", B, s[l]))
      push(list, binary("mul", B, s[l]))
      push(list, binary("add", B, s[l]))         -- the two a_{l-1} contributions
    end
  end
end

local function kernel_list(net, pattern)
  local s, head, list = net.sizes, net.head, {}
  if pattern == "fwd" or pattern == "fwd_nograd" then
    forward_kernels(list, s, head)
  elseif pattern == "fwd_grad" or pattern == "fwd_backward" then
    forward_kernels(list, s, head)
    backward_kernels(list, s, head, true, false)
  elseif pattern == "hvae1" then
    forward_kernels(list, s, head)
    backward_kernels(list, s, head, false, true)
  elseif pattern == "hvae" then
    forward_kernels(list, s, head)
    backward_kernels(list, s, head, false, true)
    gnorm_kernels(list, s)
    second_kernels(list, s, head)
  end
  return list
end

-- ---- the networks and their steps -------------------------------------

local function build(net, dt)
  local s = net.sizes
  local W, b, params = {}, {}, {}
  for l = 1, 3 do
    local std = math.sqrt(2 / (s[l] + s[l + 1]))     -- Glorot normal
    W[l] = lv.param(lv.randn({s[l], s[l + 1]}, dt) * std)
    b[l] = lv.param(lv.randn({s[l + 1]}, dt) * 0.01)
    params[#params + 1] = W[l]
    params[#params + 1] = b[l]
  end
  local x = net.head == "square" and lv.rand({B, s[1]}, dt) or lv.randn({B, s[1]}, dt)
  local data = lv.rand({B, s[4]}, dt)     -- Bernoulli means, for the decoder
  local xin = lv.param(x:clone())         -- the same input, requiring grad

  local function forward(h)
    for l = 1, 3 do
      h = h:matmul(W[l]) + b[l]
      if l < 3 then h = h:softplus() end
    end
    return h
  end
  local function loss(h)
    local out = forward(h)
    if net.head == "square" then return out:square():sum() end
    return (data * out - out:softplus()):sum()
  end

  local steps = {}
  steps.fwd = function() return loss(x) end
  steps.fwd_nograd = function() return lv.no_grad(loss, x) end
  steps.fwd_grad = function() return lv.grad(loss(x), params) end
  steps.fwd_backward = function()
    for i = 1, #params do params[i].grad = nil end
    loss(x):backward()
  end
  steps.hvae1 = function()
    return lv.grad(loss(xin), {xin}, {create_graph = true})[1]
  end
  steps.hvae = function()
    local g = lv.grad(loss(xin), {xin}, {create_graph = true})[1]
    return lv.grad((g * g):sum(), params)
  end
  return steps
end

local PATTERNS = {
  {id = "fwd", title = "fwd"},
  {id = "fwd_nograd", title = "fwd no_grad"},
  {id = "fwd_grad", title = "fwd+grad"},
  {id = "fwd_backward", title = "fwd+backward"},
  {id = "hvae1", title = "hvae 1st"},
  {id = "hvae", title = "hvae"},
}

if list_kernels then
  for _, net in ipairs(NETS) do
    for _, p in ipairs(PATTERNS) do
      print(string.format("# %s %s", net.name, p.id))
      for i, k in ipairs(kernel_list(net, p.id)) do print(i, k.key) end
    end
  end
  os.exit(0)
end

-- ---- measuring -----------------------------------------------------------

local function kernel_stats(list, ktimes)
  local gemm, elem, flops, n_gemm = 0, 0, 0, 0
  for _, k in ipairs(list) do
    if k.kind == "gemm" then
      gemm = gemm + ktimes[k.key]
      flops = flops + k.flops
      n_gemm = n_gemm + 1
    else
      elem = elem + ktimes[k.key]
    end
  end
  return {gemm = gemm, elem = elem, sum = gemm + elem, flops = flops,
          n_gemm = n_gemm, n_kernels = #list}
end

--- The list run in order under no_grad. Kernels with the same key share
-- their inputs (and so does a standalone kernel's repeated calls): data
-- sits warmer in cache than in the step, where most inputs are the
-- outputs of a kernel a few calls back -- the replay errs fast, and the
-- tape overhead it gives errs high.
local function replay_fn(list, dt)
  local fns, made = {}, {}
  for i, k in ipairs(list) do
    made[k.key] = made[k.key] or k.make(dt)
    fns[i] = made[k.key]
  end
  return function()
    local _ <close> = lv.no_grad()
    for i = 1, #fns do fns[i]() end
  end
end

-- Steps timed together (interleaved), each group with the replay of its
-- kernel list; the replay of fwd serves fwd no_grad, that of fwd+grad
-- serves fwd+backward (same kernels).
local GROUPS = {
  {replay = "fwd", steps = {"fwd", "fwd_nograd"}},
  {replay = "fwd_grad", steps = {"fwd_grad", "fwd_backward"}},
  {replay = "hvae1", steps = {"hvae1"}},
  {replay = "hvae", steps = {"hvae"}},
}
local TITLE = {}
for _, p in ipairs(PATTERNS) do TITLE[p.id] = p.title end

local pressure_start = lib.cpu_pressure and lib.cpu_pressure() or nil
local machine = lib.machine()       -- before the thread count changes
-- How idle OpenMP threads wait (spinning or asleep) decides how they share
-- few cores with OpenBLAS's threads; lib.machine does not record it.
machine.omp_wait_policy = os.getenv("OMP_WAIT_POLICY")
machine.gomp_spincount = os.getenv("GOMP_SPINCOUNT")
local rows, kernel_rows = {}, {}

for _, cfg in ipairs(CONFIGS) do
  local dt, nthreads = cfg.dtype, cfg.threads
  lv.set_num_threads(nthreads)
  for _, net in ipairs(NETS) do
    lv.manual_seed(1234)
    local steps = build(net, dt)
    -- Standalone times of every distinct kernel of every step.
    local ktimes, kinfo, keys = {}, {}, {}
    for _, p in ipairs(PATTERNS) do
      for _, k in ipairs(kernel_list(net, p.id)) do
        if not kinfo[k.key] then
          kinfo[k.key] = {k = k, count = {}}
          keys[#keys + 1] = k.key
        end
        kinfo[k.key].count[p.id] = (kinfo[k.key].count[p.id] or 0) + 1
      end
    end
    for _, key in ipairs(keys) do
      local k = kinfo[key].k
      local fn = k.make(dt)
      settle(fn, true)
      local r = time_kernel(fn)
      ktimes[key] = r.median
      kernel_rows[#kernel_rows + 1] = {
        dtype = dt, threads = nthreads, net = net.name, kernel = key, kind = k.kind,
        ms = r.median * 1e3, min_ms = r.min * 1e3, max_ms = r.max * 1e3,
        gflops = k.kind == "gemm" and k.flops / r.median * 1e-9 or nil,
        count = kinfo[key].count, stall = r.stall,
      }
    end
    collectgarbage("collect")
    -- The steps, each group interleaved with its replay.
    local by_id = {}
    for _, g in ipairs(GROUPS) do
      local list = kernel_list(net, g.replay)
      local replay = replay_fn(list, dt)
      local fns = {}
      for i, id in ipairs(g.steps) do
        fns[i] = steps[id]
        settle(steps[id])
      end
      settle(replay)
      fns[#fns + 1] = replay
      local res = time_interleaved(fns)
      local rp = res[#fns]
      local st = kernel_stats(list, ktimes)
      for i, id in ipairs(g.steps) do
        local r = res[i]
        local row = {
          dtype = dt, threads = nthreads, net = net.name, step = TITLE[id], id = id,
          step_ms = r.median * 1e3, step_min_ms = r.min * 1e3, step_max_ms = r.max * 1e3,
          replay_ms = rp.median * 1e3, replay_min_ms = rp.min * 1e3,
          kernels_ms = st.sum * 1e3, blas_ms = st.gemm * 1e3, elem_ms = st.elem * 1e3,
          n_kernels = st.n_kernels, n_gemm = st.n_gemm, gflop = st.flops * 1e-9,
          blas_share = 100 * st.gemm / r.median,
          elem_share = 100 * st.elem / r.median,
          -- (step - replay) / step, sample by sample
          overhead = -paired_pct(rp, r),
          overhead_min = 100 * (r.min - rp.min) / r.min,
          overhead_vs_kernels = 100 * (r.median - st.sum) / r.median,
          gflops = st.flops / r.median * 1e-9,
          stall = res.stall, samples_ms = {}, replay_samples_ms = {},
        }
        for s = 1, #r.samples do
          row.samples_ms[s] = r.samples[s] * 1e3
          row.replay_samples_ms[s] = rp.samples[s] * 1e3
        end
        rows[#rows + 1] = row
        by_id[id] = {row = row, res = r}
      end
      replay = nil
      collectgarbage("collect")
    end
    -- The cost of recording: fwd against fwd no_grad, sample by sample.
    by_id.fwd.row.recording = paired_pct(by_id.fwd.res, by_id.fwd_nograd.res)
    by_id.fwd_backward.row.vs_grad = paired_pct(by_id.fwd_backward.res, by_id.fwd_grad.res)
  end
end

lv.set_num_threads(default_threads)
local elapsed = clock() - t_start
local pressure_end = lib.cpu_pressure and lib.cpu_pressure() or nil

-- ---- report ---------------------------------------------------------------

lib.print_machine(machine)
print(string.format("OMP_WAIT_POLICY=%s  GOMP_SPINCOUNT=%s", machine.omp_wait_policy or "(unset)",
  machine.gomp_spincount or "(unset)"))
print(string.format("batch %d; %s; steps: median of %d samples of >= %g s, interleaved "
  .. "with their replay; kernels: median of %d samples of >= %g s", B,
  quick and "QUICK run" or "full run", step_opts.repeats, step_opts.min_time,
  kernel_opts.repeats, kernel_opts.min_time))
print("ms: the step; replay: its kernels in order without the tape; kernels: the sum of "
  .. "their standalone times (BLAS: the GEMMs; elementw: the rest);")
print("tape ovh: (step - replay) / step, median of paired samples (min: from the fastest "
  .. "samples); vs kernels: (step - kernels) / step;")
print("wait: share of the time some task waited for a CPU (Linux PSI) -- other processes, "
  .. "or this one's own threads when they outnumber the cores")
print()

local function pct(v) return string.format("%+.1f%%", v) end
local function share(v) return string.format("%.0f%%", v) end
local function ms(v) return string.format("%.3f", v) end

for _, cfg in ipairs(CONFIGS) do
  local dt = cfg.dtype
  for _, net in ipairs(NETS) do
    local s = net.sizes
    print(string.format("%s %s %d-%d-%d-%d, batch %d (%s), %d thread%s", dt, net.name,
      s[1], s[2], s[3], s[4], B, net.head == "square" and "loss sum(out^2)"
      or "U = Bernoulli log-likelihood", cfg.threads, cfg.threads == 1 and "" or "s"))
    local sel = {}
    for _, row in ipairs(rows) do
      if row.dtype == dt and row.threads == cfg.threads and row.net == net.name then
        sel[#sel + 1] = row
      end
    end
    lib.print_table({
      {key = "step", title = "step", left = true},
      {key = "step_ms", title = "ms", fmt = ms},
      {key = "replay_ms", title = "replay", fmt = ms},
      {key = "kernels_ms", title = "kernels", fmt = ms},
      {key = "blas_ms", title = "BLAS", fmt = ms},
      {key = "elem_ms", title = "elementw", fmt = ms},
      {key = "blas_share", title = "BLAS%", fmt = share},
      {key = "elem_share", title = "elem%", fmt = share},
      {key = "overhead", title = "tape ovh", fmt = pct},
      {key = "overhead_min", title = "(min)", fmt = pct},
      {key = "overhead_vs_kernels", title = "vs kernels", fmt = pct},
      {key = "n_gemm", title = "GEMMs", fmt = "%d"},
      {key = "n_kernels", title = "kernels#", fmt = "%d"},
      {key = "gflops", title = "GFLOP/s", fmt = "%.1f"},
      {key = "stall", title = "wait", fmt = function(v) return string.format("%.0f%%", 100 * v) end},
    }, sel)
    for _, row in ipairs(sel) do
      if row.recording then
        print(string.format("  recording the forward on the tape costs %+.1f%% over the "
          .. "same forward under no_grad", row.recording))
      end
      if row.vs_grad then
        print(string.format("  loss:backward() (into .grad) against lv.grad(loss, params): "
          .. "%+.1f%%", row.vs_grad))
      end
    end
    print()
  end
end

local TOP = 12
print(string.format("Standalone kernels, the %d that weigh most in the hvae step (ms per "
  .. "call; count: calls in fwd+grad / hvae; all in the JSON):", TOP))
for _, cfg in ipairs(CONFIGS) do
  local dt = cfg.dtype
  for _, net in ipairs(NETS) do
    local sel = {}
    for _, k in ipairs(kernel_rows) do
      if k.dtype == dt and k.threads == cfg.threads and k.net == net.name then
        k.label = string.format("%s %s %dt", dt, net.name, cfg.threads)
        k.counts = string.format("%d / %d", k.count.fwd_grad or 0, k.count.hvae or 0)
        sel[#sel + 1] = k
      end
    end
    table.sort(sel, function(a, b) return a.ms * (a.count.hvae or 0) > b.ms * (b.count.hvae or 0) end)
    for i = #sel, TOP + 1, -1 do sel[i] = nil end
    lib.print_table({
      {key = "label", title = "", left = true},
      {key = "kernel", title = "kernel", left = true},
      {key = "ms", title = "ms", fmt = "%.4f"},
      {key = "gflops", title = "GFLOP/s", fmt = "%.1f"},
      {key = "counts", title = "count"},
    }, sel)
  end
end
print()

local worst, taped = nil, {}
for _, row in ipairs(rows) do
  if row.id ~= "fwd_nograd" then
    taped[#taped + 1] = row.overhead
    if not worst or row.overhead > worst.overhead then worst = row end
  end
end
print(string.format("tape overhead (step - replay) / step over the %d steps that record: "
  .. "median %+.1f%%, highest %+.1f%% (%s %s %s, %d thread%s); target under 10%%", #taped,
  median(taped), worst.overhead, worst.dtype, worst.net, worst.step, worst.threads,
  worst.threads == 1 and "" or "s"))
for _, row in ipairs(rows) do
  if row.dtype == "f32" and row.net == "mlp" and (row.id == "fwd_grad" or row.id == "hvae") then
    print(string.format("f32 mlp %s, %d thread%s: %.2f ms, BLAS %.0f%% (standalone GEMMs), "
      .. "elementwise %.0f%%, tape %+.1f%%", row.step, row.threads,
      row.threads == 1 and "" or "s", row.step_ms, row.blas_share, row.elem_share,
      row.overhead))
  end
end
local stalls = {}
for _, row in ipairs(rows) do
  if row.stall and row.stall > STALL_LIMIT then
    stalls[#stalls + 1] = string.format("%s %s %s (%dt)", row.dtype, row.net, row.step, row.threads)
  end
end
if #stalls > 0 then
  print(string.format("warning: some task waited for a CPU during more than %.0f%% of %d of "
    .. "%d rows (%s%s) -- on one thread that is another process: rerun before drawing "
    .. "conclusions; on several it may also be this one's threads crowding each other",
    100 * STALL_LIMIT, #stalls, #rows, table.concat(stalls, ", ", 1, math.min(#stalls, 4)),
    #stalls > 4 and ", ..." or ""))
end
lib.print_pressure(pressure_start, pressure_end)
print(string.format("elapsed %.1f s", elapsed))

for _, k in ipairs(kernel_rows) do k.label = nil; k.counts = nil end
local path = lib.write_json("autograd", {
  benchmark = "autograd",
  batch = B,
  nets = NETS,
  machine = machine,
  configs = CONFIGS,
  timing = {steps = step_opts, kernels = kernel_opts, quick = quick,
            clock = lib.clock_name, elapsed = elapsed,
            cpu_pressure_start = pressure_start, cpu_pressure_end = pressure_end},
  definitions = {
    replay = "the step's kernel list run in order under no_grad, on pre-made inputs shared by kernels of one shape",
    kernels = "sum over the step's kernel list of each kernel's standalone median",
    overhead = "(step - replay) / step, percent: median over interleaved sample pairs",
    overhead_min = "(fastest step sample - fastest replay sample) / fastest step sample, percent",
    vs_grad = "(fwd+backward - fwd+grad) / fwd+grad, percent, median over sample pairs",
    stall = lib.STALL,
    overhead_vs_kernels = "(step - kernels) / step, percent",
    blas_share = "standalone GEMM time / step, percent",
    recording = "(fwd - fwd no_grad) / fwd no_grad, percent, median over sample pairs",
  },
  rows = rows,
  kernels = kernel_rows,
})
print("wrote " .. path)
