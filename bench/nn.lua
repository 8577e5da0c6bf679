--- bench/nn.lua -- how fast the conv architecture of SPEC §6.2 runs, and
-- how much of its time is GEMM.
--
--   ./lvae bench/nn.lua [--quick] [--threads N]
--
-- f32, batch B = 100, the layers of lua/lvae/nn.lua:
--
--   encoder  [B,1,28,28] -> three 5x5 stride-2 SAME convs (16, 32, 32
--            channels; 28 -> 14 -> 7 -> 4) with softplus -> 512 -> 450
--            softplus -> GaussianHead (mu, sigma = softplus) of d = 64
--   decoder  the mirror: z [B,64] -> 450 -> 512 -> [32,4,4] -> transposed
--            convs 4 -> 7 -> 14 -> 28 (32, 16, 1 channels) -> logits
--
-- Rows timed (each a median, bench/lib.lua):
--
--   models   encoder and decoder forward (recorded on the tape) and
--            forward+backward (lv.grad of a scalar loss w.r.t. every
--            parameter: sum(mu) + sum(sigma) for the encoder, the Bernoulli
--            negative log-likelihood sum(softplus(l) - x l) for the
--            decoder), and a whole VAE step (encoder, z = mu + sigma eps,
--            decoder, the loss, gradients of all parameters).
--   layers   each conv layer alone on its input shape in the model, forward
--            and forward+backward (gradients of weight and bias, and of the
--            input except for the first encoder conv, whose input is data).
--
-- GEMM share. A convolution here is im2col + one GEMM per image (weight
-- [O, K] @ cols [N, K, P], K = C kh kw, P = Ho Wo); a transposed one is
-- weight^T [O kh kw, C] @ x [N, C, H W] + col2im. Their backward passes are
-- the matmul VJP (src/ops_matmul.c): dweight = sum_n G @ cols^T and dcols =
-- weight^T @ G, plus the other of im2col/col2im. This file times each of
-- those matmuls standalone -- the same shapes and the same transposed views
-- as the tape passes, under no_grad, on pre-made inputs -- and sums them
-- with their counts in a step; so do the Linear layers' GEMMs (x @ W^T,
-- G @ W, x^T @ G). GEMM share = that sum / the step's time. im2col and
-- col2im are timed the same way (column "i2c"); "other" is what is left:
-- the elementwise ops (softplus, bias adds, the batch sum of dweight), the
-- tape, allocation. GFLOP/s counts GEMM FLOPs only (2 m n k each), divided
-- by the step's whole time.
--
-- Prints the machine (CPU model, cores from nproc, threads used), three
-- tables (models, conv layers, the GEMMs), and writes bench/results/nn.json.
-- "stall" is the share of a row's timing in which some runnable task waited
-- for a CPU (Linux PSI): above a few percent, another process competed and
-- the row is not to be trusted. On 2 cores with one busy neighbour, the
-- 2-thread conv steps ran 5-6x slower than --threads 1 while OpenMP's idle
-- workers spun for the cores OpenBLAS's threads needed; the launcher's
-- GOMP_SPINCOUNT (printed in the header) brings that to 1.5-2x. Compare with
-- --threads 1 before reading anything into a 2-thread figure with a high
-- stall.
-- Takes about 30-60 s (--quick: a smoke run of a few seconds).
--
-- Not here: f64, other batch sizes, the MLP architecture (bench/autograd.lua
-- times an MLP), second order through the decoder.

local lv = require "lvae"
local nn = require "lvae.nn"
local lib = require "bench.lib"

local quick = lib.options("bench/nn.lua").quick

local step_opts = quick and { warmup = 0.02, min_time = 0.02, repeats = 3 }
                         or { warmup = 0.2, warmup_calls = 3, min_time = 0.05, repeats = 5 }
local kernel_opts = quick and { warmup = 0.005, min_time = 0.005, repeats = 3 }
                           or { warmup = 0.03, min_time = 0.02, repeats = 5 }

local B, D, DTYPE = 100, 64, "f32"
local t_start, stall_start = lib.clock(), lib.cpu_stall()
lv.manual_seed(1)

-- ---- the models -------------------------------------------------------------

local same = { stride = 2, padding = "same" }
local enc = nn.Sequential(
  nn.Conv2d(1, 16, 5, same), nn.Softplus(),
  nn.Conv2d(16, 32, 5, same), nn.Softplus(),
  nn.Conv2d(32, 32, 5, same), nn.Softplus(),
  nn.Flatten(), nn.Linear(512, 450), nn.Softplus(),
  nn.GaussianHead(450, D))
local dec = nn.Sequential(
  nn.Linear(D, 450), nn.Softplus(), nn.Linear(450, 512), nn.Softplus(),
  nn.Reshape(32, 4, 4),
  nn.ConvTranspose2d(32, 32, 5, { stride = 2, padding = 2 }), nn.Softplus(),   -- 4 -> 7
  nn.ConvTranspose2d(32, 16, 5, same), nn.Softplus(),                          -- 7 -> 14
  nn.ConvTranspose2d(16, 1, 5, same))                                          -- 14 -> 28
local enc_params, dec_params, all_params = enc:parameters(), dec:parameters(), {}
for _, p in ipairs(enc_params) do all_params[#all_params + 1] = p end
for _, p in ipairs(dec_params) do all_params[#all_params + 1] = p end

local x_data = lv.bernoulli({ B, 1, 28, 28 }, 0.3, DTYPE)
local z_in = lv.randn({ B, D }, DTYPE)
local eps = lv.randn({ B, D }, DTYPE)

local function bernoulli_nll(logits, x)
  return (logits:softplus() - x * logits):sum()
end

-- ---- GEMMs standalone ---------------------------------------------------------
-- Each distinct matmul (by its shapes and layouts) is timed once; a step's
-- GEMM time is the sum over its list of {key, count}.

local gemm_table = {}   -- key -> {key, fn, flops, ms, gflops}
local gemm_order = {}

--- Registers a matmul a @ b (a, b: tensors or views, made now); returns its key.
local function gemm(label, a, b, flops)
  local key = label
  if not gemm_table[key] then
    local g = { key = key, flops = flops }
    g.fn = function() return a:matmul(b) end
    gemm_table[key] = g
    gemm_order[#gemm_order + 1] = key
  end
  return key
end

local function sh(t) return "[" .. table.concat(t:size(), ",") .. "]" end
local function tag(t) return sh(t) .. (t:is_contiguous() and "" or "*") end

--- The GEMMs of Linear(n_in, n_out) at batch B: forward, dW, and dx.
local function linear_gemms(n_in, n_out)
  local x = lv.randn({ B, n_in }, DTYPE)
  local W = lv.randn({ n_out, n_in }, DTYPE)
  local G = lv.randn({ B, n_out }, DTYPE)
  local f = 2 * B * n_in * n_out
  return {
    fwd = gemm("x " .. tag(x) .. " @ W^T " .. tag(W:t()), x, W:t(), f),
    dw = gemm("x^T " .. tag(x:t()) .. " @ G " .. tag(G), x:t(), G, f),
    dx = gemm("G " .. tag(G) .. " @ W " .. tag(W), G, W, f),
  }
end

local function pads_of(padding, h, w, k, s)
  if padding == "same" then
    local t, b = nn.F.same_padding(h, k, s)
    local l, r = nn.F.same_padding(w, k, s)
    return { t, b, l, r }
  end
  return { padding, padding, padding, padding }
end

-- ---- the conv layers alone ---------------------------------------------------

local conv_specs = {
  { name = "enc conv1  1->16  28->14", kind = "conv", C = 1, O = 16, H = 28, padding = "same", dx = false,
    module = enc._children[1].module },
  { name = "enc conv2 16->32  14->7", kind = "conv", C = 16, O = 32, H = 14, padding = "same", dx = true,
    module = enc._children[3].module },
  { name = "enc conv3 32->32   7->4", kind = "conv", C = 32, O = 32, H = 7, padding = "same", dx = true,
    module = enc._children[5].module },
  { name = "dec convT 32->32   4->7", kind = "convT", C = 32, O = 32, H = 4, padding = 2, dx = true,
    module = dec._children[6].module },
  { name = "dec convT 32->16  7->14", kind = "convT", C = 32, O = 16, H = 7, padding = "same", dx = true,
    module = dec._children[8].module },
  { name = "dec convT 16->1  14->28", kind = "convT", C = 16, O = 1, H = 14, padding = "same", dx = true,
    module = dec._children[10].module },
}

local K5 = 5
for _, L in ipairs(conv_specs) do
  local N, C, O, Hh = B, L.C, L.O, L.H
  local x = lv.rand({ N, C, Hh, Hh }, DTYPE)
  local y = lv.no_grad(function() return L.module(x) end)
  local Ho, Wo = y:size(3), y:size(4)
  L.out = { Ho, Wo }
  L.x = x
  L.grad_out = lv.randn(y:size(), DTYPE)
  local w = L.module.weight:detach()
  if L.kind == "conv" then
    local pad = pads_of(L.padding, Hh, Hh, K5, 2)
    local geo = { kernel = { K5, K5 }, stride = { 2, 2 }, padding = pad }
    local K, P = C * K5 * K5, Ho * Wo
    local cols = lv.im2col(x, geo)
    local Wm = w:reshape(O, K)
    local G = lv.randn({ N, O, P }, DTYPE)
    local f = 2 * N * O * K * P
    L.flops_fwd = f
    L.gemm = {
      fwd = gemm("W " .. tag(Wm) .. " @ cols " .. tag(cols), Wm, cols, f),
      dw = gemm("G " .. tag(G) .. " @ cols^T " .. tag(cols:transpose(2, 3)), G, cols:transpose(2, 3), f),
      dx = gemm("W^T " .. tag(Wm:t()) .. " @ G " .. tag(G), Wm:t(), G, f),
    }
    local dcols = lv.randn(cols:size(), DTYPE)
    geo.size = { Hh, Hh }
    L.i2c_fwd = { "im2col", function() return lv.im2col(x, geo) end }
    L.i2c_bwd = { "col2im", function() return lv.col2im(dcols, geo) end }
  else
    local pad = L.padding == "same" and pads_of("same", Ho, Wo, K5, 2) or pads_of(L.padding)
    local geo = { kernel = { K5, K5 }, stride = { 2, 2 }, padding = pad, size = { Ho, Wo } }
    local OKK, HW = O * K5 * K5, Hh * Hh
    local Wr = w:reshape(C, OKK)
    local xr = x:reshape(N, C, HW)
    local Gc = lv.randn({ N, OKK, HW }, DTYPE)
    local f = 2 * N * C * OKK * HW
    L.flops_fwd = f
    L.gemm = {
      fwd = gemm("W^T " .. tag(Wr:t()) .. " @ x " .. tag(xr), Wr:t(), xr, f),
      dw = gemm("Gc " .. tag(Gc) .. " @ x^T " .. tag(xr:transpose(2, 3)), Gc, xr:transpose(2, 3), f),
      dx = gemm("W " .. tag(Wr) .. " @ Gc " .. tag(Gc), Wr, Gc, f),
    }
    local cols = lv.randn({ N, OKK, HW }, DTYPE)
    local gy = L.grad_out
    L.i2c_fwd = { "col2im", function() return lv.col2im(cols, geo) end }
    L.i2c_bwd = { "im2col", function() return lv.im2col(gy, geo) end }
  end
end

local lin = {
  enc = linear_gemms(512, 450), head = linear_gemms(450, D),
  dec1 = linear_gemms(D, 450), dec2 = linear_gemms(450, 512),
}

-- GEMM lists {key, count} of each step.
local function add(list, key, count) list[#list + 1] = { key, count or 1 } end

local function conv_list(L, backward, with_dx, list)
  list = list or {}
  add(list, L.gemm.fwd)
  if backward then
    add(list, L.gemm.dw)
    if with_dx then add(list, L.gemm.dx) end
  end
  return list
end

local function linear_list(g, backward, with_dx, count, list)
  add(list, g.fwd, count)
  if backward then
    add(list, g.dw, count)
    if with_dx then add(list, g.dx, count) end
  end
  return list
end

local function encoder_list(backward, list)
  list = list or {}
  for i = 1, 3 do conv_list(conv_specs[i], backward, i > 1, list) end
  linear_list(lin.enc, backward, true, 1, list)
  linear_list(lin.head, backward, true, 2, list)
  return list
end

local function decoder_list(backward, z_needs_grad, list)
  list = list or {}
  linear_list(lin.dec1, backward, z_needs_grad, 1, list)
  linear_list(lin.dec2, backward, true, 1, list)
  for i = 4, 6 do conv_list(conv_specs[i], backward, true, list) end
  return list
end

-- ---- timing --------------------------------------------------------------------

local function ms(seconds) return seconds * 1e3 end

--- lib.time, and the share of its duration in which some runnable task
-- waited for a CPU (Linux PSI; nil where unsupported): near 0 on an idle
-- machine, large when other work competes with the benchmark.
--
-- Warm-up: lvae's allocator takes fresh pages from the system until its
-- first collections (bench/ops.lua), so a kernel making a 10 MB result is
-- several times dearer in its first calls. A kernel is therefore warmed up
-- for as many calls as make about 200 MiB of results (at most 1 s), a step
-- for at least step_opts.warmup seconds.
local function timed(fn, opts)
  local first = fn()
  if lv.is_tensor(first) and not quick then
    local bytes = first:numel() * 4
    opts = setmetatable({ warmup_calls = math.min(2000, math.ceil(200 * 2 ^ 20 / bytes)),
                          warmup_max = 1.0 }, { __index = opts })
  end
  first = nil
  local s0, t0 = lib.cpu_stall(), lib.clock()
  local r = lib.time(fn, opts)
  local s1, t1 = lib.cpu_stall(), lib.clock()
  r.stall = s0 and s1 and (s1 - s0) / (t1 - t0) or nil
  return r
end

local gemm_rows = {}
for _, key in ipairs(gemm_order) do
  local g = gemm_table[key]
  local r = lv.no_grad(function() return timed(g.fn, kernel_opts) end)
  g.ms = ms(r.median)
  g.gflops = g.flops / r.median * 1e-9
  gemm_rows[#gemm_rows + 1] = { gemm = key, ms = g.ms, gflops = g.gflops, mflop = g.flops * 1e-6,
                                stall = r.stall }
end

local function gemm_sum(list)
  local t, f = 0, 0
  for _, e in ipairs(list) do
    local g = gemm_table[e[1]]
    t = t + g.ms * e[2]
    f = f + g.flops * e[2]
  end
  return t, f
end

local function kernel_ms(entry)
  return ms(lv.no_grad(function() return timed(entry[2], kernel_opts) end).median)
end

-- Models.
local model_steps = {
  { name = "encoder fwd", list = encoder_list(false), fn = function()
      local mu, sigma = enc(x_data)
      return mu, sigma
    end },
  { name = "encoder fwd+bwd", list = encoder_list(true), fn = function()
      local mu, sigma = enc(x_data)
      return lv.grad(mu:sum() + sigma:sum(), enc_params)
    end },
  { name = "decoder fwd", list = decoder_list(false, false), fn = function()
      return bernoulli_nll(dec(z_in), x_data)
    end },
  { name = "decoder fwd+bwd", list = decoder_list(true, false), fn = function()
      return lv.grad(bernoulli_nll(dec(z_in), x_data), dec_params)
    end },
  { name = "VAE step (enc+dec fwd+bwd)", list = decoder_list(true, true, encoder_list(true)), fn = function()
      local mu, sigma = enc(x_data)
      local z = mu + sigma * eps
      return lv.grad(bernoulli_nll(dec(z), x_data), all_params)
    end },
}

local model_rows = {}
for _, s in ipairs(model_steps) do
  local r = timed(s.fn, step_opts)
  local g_ms, g_flops = gemm_sum(s.list)
  local t = ms(r.median)
  model_rows[#model_rows + 1] = {
    step = s.name, ms = t, min_ms = ms(r.min), max_ms = ms(r.max), gemm_ms = g_ms,
    gemm_share = g_ms / t, gflop = g_flops * 1e-9, gflops = g_flops * 1e-9 / (t * 1e-3),
    stall = r.stall,
  }
end

-- Conv layers alone.
local layer_rows = {}
for _, L in ipairs(conv_specs) do
  local x = L.dx and lv.param(L.x) or L.x
  local inputs = { L.module.weight, L.module.bias }
  if L.dx then inputs[3] = x end
  local i2c_f = kernel_ms(L.i2c_fwd)
  local i2c_b = L.dx and kernel_ms(L.i2c_bwd) or 0
  local geometry = string.format("[%d,%d,%d,%d] -> [%d,%d,%d,%d]", B, L.C, L.H, L.H, B, L.O,
    L.out[1], L.out[2])
  for _, pass in ipairs({ "fwd", "fwd+bwd" }) do
    local backward = pass == "fwd+bwd"
    local fn
    if backward then
      fn = function()
        local y = L.module(x)
        return lv.grad(y, inputs, { grad_outputs = L.grad_out })
      end
    else
      fn = function() return L.module(x) end
    end
    local r = timed(fn, step_opts)
    local t = ms(r.median)
    local g_ms, g_flops = gemm_sum(conv_list(L, backward, L.dx))
    local i2c = backward and (i2c_f + i2c_b) or i2c_f
    layer_rows[#layer_rows + 1] = {
      layer = L.name, pass = pass, geometry = geometry, input_grad = backward and L.dx or nil,
      ms = t, min_ms = ms(r.min), max_ms = ms(r.max), gemm_ms = g_ms, gemm_share = g_ms / t,
      gflops = g_flops * 1e-9 / (t * 1e-3), i2c_ms = i2c, other_ms = t - g_ms - i2c,
      stall = r.stall,
      i2c_kernels = backward and (L.i2c_fwd[1] .. (L.dx and ("+" .. L.i2c_bwd[1]) or "")) or L.i2c_fwd[1],
    }
  end
end

-- ---- report ---------------------------------------------------------------------

local machine = lib.machine()
machine.omp_wait_policy = os.getenv("OMP_WAIT_POLICY")
machine.gomp_spincount = os.getenv("GOMP_SPINCOUNT")
print("bench/nn.lua -- SPEC §6.2 conv encoder/decoder, f32, batch " .. B)
lib.print_machine(machine)
print("GOMP_SPINCOUNT=" .. (machine.gomp_spincount or "(unset)") .. "  OMP_WAIT_POLICY="
  .. (machine.omp_wait_policy or "(unset)"))
print()

local pct = function(v) return string.format("%.0f%%", 100 * v) end
print("models (GEMM share: the step's matmuls timed standalone / the step)")
lib.print_table({
  { key = "step", title = "step", left = true },
  { key = "ms", title = "ms", fmt = "%.2f" },
  { key = "gflop", title = "GFLOP", fmt = "%.3f" },
  { key = "gflops", title = "GFLOP/s", fmt = "%.1f" },
  { key = "gemm_ms", title = "GEMM ms", fmt = "%.2f" },
  { key = "gemm_share", title = "GEMM", fmt = pct },
  { key = "stall", title = "stall", fmt = pct },
}, model_rows)
print()

print("conv layers alone (i2c: im2col/col2im standalone; other: the rest)")
lib.print_table({
  { key = "layer", title = "layer", left = true },
  { key = "pass", title = "pass", left = true },
  { key = "ms", title = "ms", fmt = "%.3f" },
  { key = "gflops", title = "GFLOP/s", fmt = "%.1f" },
  { key = "gemm_ms", title = "GEMM ms", fmt = "%.3f" },
  { key = "gemm_share", title = "GEMM", fmt = pct },
  { key = "i2c_ms", title = "i2c ms", fmt = "%.3f" },
  { key = "other_ms", title = "other ms", fmt = "%.3f" },
  { key = "stall", title = "stall", fmt = pct },
}, layer_rows)
print()

print("GEMMs standalone (*: a transposed view, as the tape passes it)")
lib.print_table({
  { key = "gemm", title = "matmul", left = true },
  { key = "mflop", title = "MFLOP", fmt = "%.1f" },
  { key = "ms", title = "ms", fmt = "%.3f" },
  { key = "gflops", title = "GFLOP/s", fmt = "%.1f" },
  { key = "stall", title = "stall", fmt = pct },
}, gemm_rows)

local elapsed = lib.clock() - t_start
local stall_all = stall_start and lib.cpu_stall() and (lib.cpu_stall() - stall_start) / elapsed or nil
print(string.format("\n(%.1f s in all; stall %s of it%s)", elapsed,
  stall_all and pct(stall_all) or "unknown",
  stall_all and stall_all > 0.05 and ": other work competed for the CPUs, rerun on a quiet machine" or ""))

local path = lib.write_json("nn", {
  machine = machine, dtype = DTYPE, batch = B, latent = D, quick = quick,
  models = model_rows, layers = layer_rows, gemms = gemm_rows, seconds = elapsed, stall = stall_all,
})
print("wrote " .. path)
