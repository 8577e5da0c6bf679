--- bench/peers/flops.lua -- the roofline of an mlp training step: the flops
-- of its GEMMs, counted from the shapes, and the time OpenBLAS would take
-- for them. Pure Lua.
--
--   local flops = require "bench.peers.flops"
--   local c = flops.count(row, grad_evals)     -- {total, gemms = {{op, m, k, n, count}}}
--   local keys = flops.shapes(c)               -- the GEMMs to time with bench/blas_ref
--   local roof = flops.roof_seconds(c, secs)   -- secs["nt 100 784 500"] = s per call
--
-- How the GEMMs are counted. A Linear layer of sizes in -> out on N rows
-- runs three kinds of GEMM, each 2 N in out flops:
--   fwd  y = x W^T     (m = N,   k = in, n = out; OpenBLAS NT)
--   bwd  dx = dy W     (m = N,   k = out, n = in; NN)
--   wgt  dW = dy^T x   (m = out, k = N,  n = in; TN)
-- Every GEMM the objective runs is recorded (the flows train through their
-- forces, create_graph), and the loss's reverse pass runs one GEMM for each
-- of its operands that needs a gradient. So, per decoder layer:
--   a point decoded for its value only (the VAE's z0, planar's and Euler's
--   zK): fwd, then in the reverse pass bwd + wgt: one of each kind;
--   a force g(z) = dU/dz (a forward and one backward to z, fwd + bwd), and
--   in the loss's reverse pass through both: two of each kind;
--   a Hessian-vector product of Euler's log-determinant (one GEMM back
--   through the force's backward chain and one through its forward chain)
--   and its reverse: two of each kind, like a force, less one bwd of the
--   first layer (the product's first GEMM takes the constant e_j, whose
--   gradient the reverse pass does not need).
-- The decoder runs on N = S B rows (S = 5 for IWAE); the flows that end on
-- a force (leapfrog, qsl, qsl2) take U(zK) from it, so decode no point
-- for its value; the others decode zK (or z0 without a flow) once. Euler
-- takes d Hessian-vector products per step. The encoder (B rows) runs fwd
-- and, in the reverse pass, wgt for every layer and bwd for all but the
-- first (x needs no gradient). Biases, activations and the flows' [N, d]
-- arithmetic are not GEMMs and are not counted. bench/peer.lua checks the
-- count against torch.profiler's own for the PyTorch step.
--
-- The roof: each counted GEMM at the speed OpenBLAS's sgemm reaches on its
-- shape alone, in a loop (bench/blas_ref, the same machine and run) -- the
-- time the step would take if it did nothing but its GEMMs at OpenBLAS's
-- speed. The fraction of the roof is that time over the measured step.

local M = {}

M.PIXELS, M.HIDDEN = 784, 500

--- The mlp's layers: {encoder = {{in, out}, ...}, decoder = {...}}.
function M.mlp_layers(d)
  local P, H = M.PIXELS, M.HIDDEN
  return { encoder = { { P, H }, { H, H }, { H, d }, { H, d } },     -- the last two: mu, sigma
           decoder = { { d, H }, { H, H }, { H, P } } }
end

-- Points of the decoder per step, by what they cost (see the header).
local function decoder_points(row, grad_evals)
  local value_only = (row.model == "hvae" or row.model == "qsl" or row.model == "qsl2") and 0 or 1
  local hvps = row.model == "euler" and row.K * row.d or 0
  return value_only, grad_evals or 0, hvps
end

local function add(list, op, m, k, n, count)
  if count > 0 then list[#list + 1] = { op = op, m = m, k = k, n = n, count = count } end
end

-- The three GEMMs of a layer (in -> out) on N rows, `count` of each
-- (bwd: `bwd_count`).
local function layer_gemms(list, N, n_in, n_out, count, bwd_count)
  add(list, "nt", N, n_in, n_out, count)              -- fwd
  add(list, "nn", N, n_out, n_in, bwd_count)          -- bwd
  add(list, "tn", n_out, N, n_in, count)              -- wgt
end

--- The GEMMs of one training step of an mlp row with grad_evals force
-- evaluations: {total = flops, gemms = {{op = "nt" | "nn" | "tn", m, k, n,
-- count}}, points = {value_only, forces, hvps}}.
function M.count(row, grad_evals)
  if row.arch ~= "mlp" then error("flops.count: only the mlp rows are counted", 2) end
  local layers = M.mlp_layers(row.d)
  local B, N = row.batch, row.samples * row.batch
  local gemms = {}
  for i, l in ipairs(layers.encoder) do layer_gemms(gemms, B, l[1], l[2], 1, i == 1 and 0 or 1) end
  local value_only, forces, hvps = decoder_points(row, grad_evals)
  local per_kind = value_only + 2 * forces + 2 * hvps
  for i, l in ipairs(layers.decoder) do
    layer_gemms(gemms, N, l[1], l[2], per_kind, i == 1 and per_kind - hvps or per_kind)
  end
  local total = 0
  for _, g in ipairs(gemms) do total = total + g.count * 2 * g.m * g.k * g.n end
  return { total = total, gemms = gemms, points = { value_only = value_only, forces = forces, hvps = hvps } }
end

--- The key of a GEMM shape: "nt 100 784 500".
function M.key(g) return string.format("%s %d %d %d", g.op, g.m, g.k, g.n) end

--- The distinct shapes of one or more counts, as {op, m, k, n} (sorted by key).
function M.shapes(...)
  local seen, out = {}, {}
  for _, c in ipairs({ ... }) do
    for _, g in ipairs(c.gemms) do
      local k = M.key(g)
      if not seen[k] then
        seen[k] = true
        out[#out + 1] = { op = g.op, m = g.m, k = g.k, n = g.n, key = k }
      end
    end
  end
  table.sort(out, function(a, b) return a.key < b.key end)
  return out
end

--- Seconds the counted GEMMs take at OpenBLAS's speed: seconds[key] is one
-- call's median time from bench/blas_ref. nil and the missing key when a
-- shape was not timed.
function M.roof_seconds(c, seconds)
  local total = 0
  for _, g in ipairs(c.gemms) do
    local s = seconds[M.key(g)]
    if not s then return nil, M.key(g) end
    total = total + g.count * s
  end
  return total
end

--- The roofline of one step: {gflop, gflops (achieved), roof_gflops,
-- fraction (of the roof)} for a measured step of step_seconds.
function M.roofline(c, roof_seconds, step_seconds)
  return { gflop = c.total * 1e-9, gflops = c.total * 1e-9 / step_seconds,
           roof_gflops = c.total * 1e-9 / roof_seconds, fraction = roof_seconds / step_seconds }
end

return M
