--- bench/peers/agreement.lua -- do lvae and PyTorch compute the same
-- training step? The arithmetic of bench-peer's check, before any timing.
--
--   local agreement = require "bench.peers.agreement"
--   local s = agreement.stats(lvae_tensor, torch_tensor [, mask])   -- plain numbers
--   local u1, u2 = agreement.adamax_updates(g1, g2, theta1, hyper)    -- SPEC's steps
--   local v = agreement.verdict(checks, "f32")             -- {ok, worst, failures}
--
-- Both sides start from the same weights and the same noise (lvae's draws,
-- handed to PyTorch) and take two training steps. Compared, per dtype:
--
--   objective  the objective per datapoint [B], at the start and after the
--              two steps: max_b |lvae - torch| / max_b |torch|
--   gradient   the gradient of the loss, per parameter tensor: max_i |lvae
--              - torch| / max_i |torch| (each tensor on its own scale, so
--              that a small tensor's error is not hidden)
--   adamax     each side's update of each parameter tensor at each of the
--              two steps against SPEC §6.2's formula applied, in f64, to
--              that side's own gradients (m = b1 m + (1 - b1) g, u =
--              max(b2 u, |g|), theta -= lr / (1 - b1^t) m / (u + eps)):
--              |side - formula|_2 / |formula|_2. The parameter's own
--              rounding weighs: half an ulp of theta = 1.013 (the output
--              bias) is 1.2e-4 of an update of lr = 5e-4 in f32, 2.2e-13
--              in f64 (4.4e-13 for free tempering's logit 2.2).
--   update     the two sides' updates theta_t - theta_0 against each other:
--              |lvae - torch|_2 / |torch|_2. In f32 only over the elements
--              whose gradient is at least 100 eps on both sides: near |g| =
--              eps the update lr g / (|g| + eps) turns float32 rounding of
--              g into a change of order lr (one such element of IWAE's
--              decoder moves its tensor's error to 3e-3), in both programs
--              alike. The adamax check holds those elements to the formula;
--              the share left out is recorded.
--   The gradient and the update are compared across the sides at both
--   steps in f64, at the first in f32 (CROSS_STEPS): in f32 those
--   ill-conditioned elements leave the two sides' parameters after one step
--   apart by up to lr in a few places, and the second gradients, taken at
--   these different points, differ by more than rounding (4.5e-4 in IWAE's
--   decoder). The objective after the two steps is not that sensitive, and
--   is compared in both.
--   grad_evals the force evaluations of one step, which must be equal.
--
-- The tolerances: f64 shows the two compute the same mathematics (the
-- errors are rounding, 1e-16 to 1e-13); f32, the dtype timed, that they
-- do so in the configuration timed. Pure Lua on numbers except stats and
-- adamax_updates, which work on tensors through their methods.

local M = {}

M.TOLERANCES = {
  f64 = { objective = 1e-12, gradient = 1e-10, adamax = 1e-11, update = 1e-10 },
  f32 = { objective = 1e-5, gradient = 1e-4, adamax = 1e-3, update = 1e-4 },
}

--- The steps whose gradient and update are compared across the sides.
M.CROSS_STEPS = { f64 = 2, f32 = 1 }

--- In f32 the update is compared where |g| >= UPDATE_MIN_GRAD (100 eps).
M.UPDATE_MIN_GRAD = { f64 = 0, f32 = 1e-5 }

--- The differences of a (lvae's) from b (PyTorch's, or the reference),
-- both tensors of one shape, over the elements where mask (0/1, the same
-- shape) is 1: {max_diff, max_ref, norm_diff, norm_ref, n, excluded}
-- (computed in f64).
function M.stats(a, b, mask)
  local sa, sb = table.concat(a:size(), ","), table.concat(b:size(), ",")
  if sa ~= sb then error(string.format("shapes differ: lvae [%s], PyTorch [%s]", sa, sb), 0) end
  a, b = a:to("f64"), b:to("f64")
  local n, excluded = a:numel(), 0
  if mask then
    mask = mask:to("f64")
    a, b = a * mask, b * mask
    local kept = mask:sum():item()
    n, excluded = math.tointeger(kept) or kept, a:numel() - kept
  end
  local d = a - b
  return { max_diff = d:abs():max():item(), max_ref = b:abs():max():item(),
           norm_diff = d:square():sum():sqrt():item(), norm_ref = b:square():sum():sqrt():item(),
           n = n, excluded = math.tointeger(excluded) or excluded }
end

--- SPEC §6.2's first two Adamax updates of a parameter from its gradients
-- g1, g2 (f64 tensors), m and u starting at 0: the change at step 1 and at
-- step 2. hyper = {lr, eps, betas = {b1, b2}}.
function M.adamax_updates(g1, g2, hyper)
  local b1, b2 = hyper.betas[1], hyper.betas[2]
  local m1 = g1 * (1 - b1)
  local u1 = g1:abs()
  local step1 = m1 / (u1 + hyper.eps) * (-hyper.lr / (1 - b1))
  local m2 = m1 * b1 + g2 * (1 - b1)
  local u2 = (u1 * b2):maximum(g2:abs())
  local step2 = m2 / (u2 + hyper.eps) * (-hyper.lr / (1 - b1 ^ 2))
  return step1, step2
end

-- diff / ref, where 0 / 0 is agreement and x / 0 (x > 0) is not; NaN stays NaN.
local function ratio(diff, ref)
  if diff ~= diff or ref ~= ref then return 0 / 0 end
  if diff == 0 then return 0 end
  if ref == 0 then return math.huge end
  return diff / ref
end

--- The relative error of one comparison: max-relative for "objective" and
-- "gradient", norm-relative for "update" and "adamax".
function M.error(kind, s)
  if kind == "update" or kind == "adamax" then return ratio(s.norm_diff, s.norm_ref) end
  return ratio(s.max_diff, s.max_ref)
end

--- checks: a list of {kind = "objective" | "gradient" | "adamax" | "update", what =
-- "decoder.1.weight", stats = M.stats(...)} and {kind = "grad_evals", lvae
-- = n, torch = m}. Returns {ok, worst = {[kind] = {error, what}},
-- failures = {"message", ...}} against M.TOLERANCES[dtype] (or tol).
function M.verdict(checks, dtype, tol)
  tol = tol or M.TOLERANCES[dtype]
  if not tol then error("no tolerances for dtype " .. tostring(dtype), 2) end
  local worst, failures = {}, {}
  for _, c in ipairs(checks) do
    if c.kind == "grad_evals" then
      if c.lvae ~= c.torch then
        failures[#failures + 1] = string.format("force evaluations per step: lvae %s, PyTorch %s",
          tostring(c.lvae), tostring(c.torch))
      end
    else
      local limit = tol[c.kind]
      if not limit then error("unknown check kind " .. tostring(c.kind), 2) end
      local e = M.error(c.kind, c.stats)
      local w = worst[c.kind]
      -- NaN compares false: it must count as the worst, and fail
      if not w or e ~= e or e > w.error then worst[c.kind] = { error = e, what = c.what } end
      if not (e <= limit) then
        failures[#failures + 1] = string.format("%s %s: relative error %.3g > %.0e (%s)", c.kind, c.what, e,
          limit, c.kind == "update" and "|lvae - torch|_2 / |torch|_2"
            or c.kind == "adamax" and "|update - SPEC's formula|_2 / |formula|_2"
            or "max |lvae - torch| / max |torch|")
      end
    end
  end
  return { ok = #failures == 0, worst = worst, failures = failures }
end

return M
