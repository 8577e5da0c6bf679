-- flows_spec.lua -- every flow of SPEC §3 inside SPEC §5's linear-Gaussian
-- model (d = 3 latents, D = 5 values, three datapoints), in f64, against
-- the exact log-evidence and posterior:
--
--   * per flow (leapfrog with tempering none / fixed / free, qsl, qsl2,
--     obabo, euler underdamped and overdamped, planar; and the plain VAE): the
--     ELBO lies below log p(x) (Monte-Carlo tolerance from the standard
--     error of the mean of log w); IWAE_S rises with S and reaches
--     log p(x); nll with S = 20,000 is within 0.1 nats of -log p(x), and
--     within three standard errors wherever the weights have finite
--     variance; its ESS is reported beside it (printed at the end);
--   * AIS within 0.05 nats of log p(x);
--   * maximising the ELBO over the step sizes and friction (Adam) moves the
--     flowed samples toward the exact posterior: the KL of a Gaussian
--     fitted to zK (moment matching) from the posterior falls;
--   * first and second derivatives (gradcheck / gradgradcheck) of the
--     log-determinant and of the ELBO with respect to the step sizes,
--     friction, tempering parameters and the decoder weights W, through
--     each integrator.
--
-- The affine-flow analysis. On this model U is quadratic, so every flow
-- but planar is, for a fixed noise draw ξ, an affine map of u = (z0, ρ0):
-- T_ξ(u) = A u + c(ξ), A not depending on ξ (the noise is additive, SPEC
-- §2), c(ξ) Gaussian with mean c0 (the flow run with noise = false) and
-- covariance Σc. With q0 = N(u0, Σ0) and the target π = N(a, P) (the
-- posterior, times N(0, I) for the momentum), the proposal given ξ is
-- q_ξ = N(A u0 + c(ξ), Q), Q = A Σ0 Aᵀ, and
--   ELBO = log p(x) - KL(N(m̄, Q) ‖ π) - ½ tr(P⁻¹ Σc),   m̄ = A u0 + c0,
--   E[w²] / p(x)² = |Q| |P|^-½ |F|^-½ exp(δᵀ F⁻¹ δ),      δ = a - m̄,
-- with F = 2Q - P - 2Σc; the second moment is finite iff F is positive
-- definite (SPEC §5's 2Σ_target⁻¹ - Σ_proposal⁻¹ condition, extended by
-- the noise's random shift of q_ξ). A and c0 are computed here by pushing
-- unit vectors through the noise-free twin of the flow (exact for an
-- affine map), Σc from 20,000 noise draws. The ELBO is then checked
-- against its exact value, the 3-standard-error test is applied exactly
-- where F > 0, and the ESS against S p(x)² / E[w²] where the fourth moment
-- is finite too (deterministic flows with 4Q - 3P > 0). Planar is not
-- affine: its weights' variance is not known, only its ESS is reported.
--
-- With the default h = 0.2 and γ = 0.5, K = 2 steps: at K = 3 and more the
-- stochastic flows' weights are so heavy-tailed (ESS ~ 100 for overdamped
-- Euler) that an S = 20,000 estimate misses log p(x) by more than 0.1
-- nats for some seeds. Overdamped Euler uses h = 0.05 (unstable at 0.2).

local lv = require "lvae"
local optim = require "lvae.optim"

local E = lv.estimators

local function f64(t) return lv.tensor(t, "f64") end

---- the model ----------------------------------------------------------------------------

local d, D, B = 3, 5, 3
local K = 2                    -- flow steps in the estimator tests (see above)
local S = 20000                -- importance samples (pool and nll)
local RUNS = 10                -- nll runs (the standard error is over runs)

-- W [5, 3] with singular values 1.0 .. 1.6; posterior variances 0.17 .. 0.45.
local W = f64({ { 1.0, 0.4, -0.3 }, { -0.5, 0.9, 0.2 }, { 0.3, -0.6, 0.8 },
                { 0.7, 0.2, 0.5 }, { -0.2, 0.5, -0.9 } })
local BIAS = f64({ 0.3, -0.5, 0.1, 0.0, 0.4 })
local SIGMA = f64({ 0.7, 0.9, 0.6, 0.8, 1.0 })
local X = f64({ { 1.1, -0.8, 0.9, 1.4, -0.6 },
                { -0.9, 0.6, -1.3, -0.2, 1.0 },
                { 0.5, -1.6, 0.2, 0.8, -0.3 } })

local reference = lv.models.LinearGaussian{ W = W, b = BIAS, sigma = SIGMA }
local LOGP = reference:log_evidence(X)                    -- [B]
local EXACT_NLL = -LOGP:mean():item()
local POST_MEAN, POST_COV = reference:posterior(X)       -- [B, d], [d, d]
local POST_SD = (POST_COV * lv.eye(d, d, "f64")):sum(2):sqrt()

-- "A proposal wider than the posterior": the exact posterior mean with a
-- diagonal standard deviation 1.3 times the posterior's.
local Q_SD = POST_SD * 1.3
local function wide_encoder(x)
  local n = x:size(1)
  return POST_MEAN:narrow(1, 1, n), Q_SD:view(1, d):expand({ n, d })
end

--- U(z) = -log p(x|z) - log N(z; 0, I) up to a constant, for one datapoint
-- (xrow [D], broadcast over the rows of z): the model's potential.
local function potential(xrow, Wm)
  Wm = Wm or W
  return function(z)
    local r = (xrow - z:matmul(Wm:t()) - BIAS) / SIGMA
    return 0.5 * r:square():sum(2) + 0.5 * z:square():sum(2)
  end
end

---- small linear algebra -----------------------------------------------------------------

local function sym(A) return 0.5 * (A + A:t()) end
local function min_eig(A) return (lv.eigh(sym(A))):min():item() end
local function blockdiag(A, Bm)
  local n, m = A:size(1), Bm:size(1)
  return lv.cat({ lv.cat({ A, lv.zeros({ n, m }, "f64") }, 2),
                  lv.cat({ lv.zeros({ m, n }, "f64"), Bm }, 2) }, 1)
end
local function quad(v, M) -- vᵀ M⁻¹ v for v [n]
  local c = v:view(-1, 1)
  return (c:t():matmul(lv.solve(M, c))):item()
end

--- KL(N(m, C) ‖ N(a, P)), closed form.
local function kl_gauss(m, C, a, P)
  local n = C:size(1)
  local tr = (lv.inverse(P) * C):sum():item()
  return 0.5 * (tr + quad(a - m, P) - n + lv.logdet(P):item() - lv.logdet(C):item())
end

---- the flows ----------------------------------------------------------------------------

local FLOWS = {
  { name = "none (plain VAE)" },
  { name = "leapfrog", kind = "leapfrog", opts = { tempering = "none" } },
  { name = "leapfrog fixed", kind = "leapfrog", opts = { tempering = "fixed", K = K } },
  { name = "leapfrog free", kind = "leapfrog", opts = { tempering = "free", K = K } },
  { name = "qsl", kind = "qsl", noisy = true },
  { name = "qsl2", kind = "qsl2", noisy = true },
  { name = "euler", kind = "euler", noisy = true },
  { name = "euler overdamped", kind = "euler", opts = { kind = "overdamped", step = 0.05 }, noisy = true },
  { name = "planar", planar = true },
  { name = "obabo", kind = "obabo", noisy = true },     -- last: the others keep their seeds
}

local function make_flow(spec, extra)
  if spec.planar then
    lv.manual_seed(31)                          -- u, w ~ N(0, 0.1²)
    return lv.flows.planar{ dim = d, K = K, dtype = "f64" }
  end
  local o = { dim = d, dtype = "f64" }
  for k, v in pairs(spec.opts or {}) do o[k] = v end
  for k, v in pairs(extra or {}) do o[k] = v end
  return lv.integrators[spec.kind](o)
end

--- The flow's output (z, ρ) [N, n] for inputs u [N, n], datapoint xrow.
local function push(flow, u, xrow)
  local zK, rK = flow:flow(u:narrow(2, 1, d), flow:has_momentum() and u:narrow(2, d + 1, d) or nil,
                           potential(xrow), K)
  return rK and lv.cat({ zK, rK }, 2) or zK
end

--- The affine-flow analysis of the header, for a flow (nil: the plain VAE).
local function affine_analysis(spec, flow)
  local mom = flow ~= nil and flow:has_momentum()
  local n = mom and 2 * d or d
  local res = { n = n }
  local A, c0 = lv.eye(n, n, "f64"), {}
  local Sc = lv.zeros({ n, n }, "f64")
  lv.no_grad(function()
    if flow then
      -- unit vectors through the noise-free twin: exact for an affine map
      local twin = spec.noisy and make_flow(spec, { noise = false }) or flow
      local basis = lv.cat({ lv.zeros({ 1, n }, "f64"), lv.eye(n, n, "f64") }, 1)
      res.A_spread = 0
      for b = 1, B do
        local out = push(twin, basis, X[b])
        c0[b] = out[1]
        local Ab = (out:narrow(1, 2, n) - out[1]):t()
        if b == 1 then A = Ab else res.A_spread = math.max(res.A_spread, (Ab - A):abs():max():item()) end
      end
      if spec.noisy then
        -- the noisy flow has the same Jacobian for a fixed draw (one row per call, one seed)
        local function F(u)
          lv.manual_seed(808)
          return push(flow, u:view(1, n), X[1]):view(n)
        end
        local F0 = F(lv.zeros({ n }, "f64"))
        local cols = {}
        for j = 1, n do cols[j] = F(lv.eye(n, n, "f64")[j]) - F0 end
        res.noisy_A_error = (lv.stack(cols, 2) - A):abs():max():item()
        -- the noise offsets c(ξ) - c0 at u = 0: mean 0, covariance Σc
        lv.manual_seed(909)
        local N = 20000
        local off = push(flow, lv.zeros({ N, n }, "f64"), X[1]) - c0[1]
        Sc = off:t():matmul(off) / N
        res.offset_mean_z = (off:mean(1) / (Sc * lv.eye(n, n, "f64")):sum(2):sqrt() * math.sqrt(N))
          :abs():max():item()                    -- in standard errors
      end
    else
      for b = 1, B do c0[b] = lv.zeros({ n }, "f64") end
    end
    local Sigma0 = lv.eye(d, d, "f64") * Q_SD:square()
    local P = POST_COV
    if mom then
      Sigma0 = blockdiag(Sigma0, lv.eye(d, d, "f64") * flow:temperature0(K):detach())
      P = blockdiag(POST_COV, lv.eye(d, d, "f64"))
    end
    local Q = sym(A:matmul(Sigma0):matmul(A:t()))
    local F = sym(2 * Q - P - 2 * Sc)
    res.F_min_eig = min_eig(F)
    res.finite = res.F_min_eig > 0
    res.deterministic = not spec.noisy
    res.fourth_finite = res.deterministic and min_eig(4 * Q - 3 * P) > 0
    res.noise_term = 0.5 * (lv.inverse(P) * Sc):sum():item()
    res.elbo_exact, res.r2 = {}, {}
    for b = 1, B do
      local a = mom and lv.cat({ POST_MEAN[b], lv.zeros({ d }, "f64") }, 1) or POST_MEAN[b]
      local u0 = mom and lv.cat({ POST_MEAN[b], lv.zeros({ d }, "f64") }, 1) or POST_MEAN[b]
      local mbar = A:matmul(u0:view(n, 1)):view(n) + c0[b]
      res.elbo_exact[b] = LOGP[b]:item() - kl_gauss(mbar, Q, a, P) - res.noise_term
      if res.finite then
        res.r2[b] = math.exp(lv.logdet(Q):item() - 0.5 * lv.logdet(P):item() - 0.5 * lv.logdet(F):item()
                             + quad(a - mbar, F))
      end
    end
  end)
  return res
end

---- per-flow results, computed once -------------------------------------------------------

local REPORT = {}               -- rows of the table printed at the end
local cache = {}

local function iwae_of_groups(lw, size)
  local G = lw:size(1) // size
  return (lw:reshape({ G, size, B }):logsumexp(2) - math.log(size)):mean(1)    -- [B]
end

local function evaluate(index)
  if cache[index] then return cache[index] end
  local spec = FLOWS[index]
  local flow = spec.name:find("^none") == nil and make_flow(spec) or nil
  local model = lv.models.LinearGaussian{ W = W, b = BIAS, sigma = SIGMA, encoder = wide_encoder,
                                          flow = flow, K = flow and K or nil }
  local r = { spec = spec, flow = flow, model = model }
  lv.manual_seed(1000 + index)
  local lw = lv.no_grad(function() return model:log_weight(X, S) end)          -- [S, B]
  r.elbo = lw:mean(1)
  r.elbo_se = lw:var(1):sqrt() / math.sqrt(S)
  r.iwae = {}
  for _, size in ipairs({ 1, 10, 100, 1000, S }) do r.iwae[#r.iwae + 1] = { size, iwae_of_groups(lw, size) } end
  r.pool_ess = E.ess(lw)
  if not spec.planar then r.affine = affine_analysis(spec, flow) end
  lv.manual_seed(2000 + index)
  r.nll, r.se, r.ess, r.info = E.nll(model, X, { samples = S, chunk = 5000, runs = RUNS })
  local variance = spec.planar and "unknown" or (r.affine.finite and "finite" or "infinite")
  if r.affine and r.affine.finite then
    local pred = 0
    for b = 1, B do pred = pred + S / r.affine.r2[b] / B end
    variance = string.format("finite (ESS %.0f predicted)", pred)
  end
  REPORT[#REPORT + 1] = string.format("%-17s %8.3f %8.3f %+8.4f %7.4f %7.0f  %s",
    spec.name, (r.elbo - LOGP):mean():item(), (r.iwae[#r.iwae][2] - LOGP):mean():item(),
    r.nll - EXACT_NLL, r.se, r.ess, variance)
  cache[index] = r
  return r
end

---- derivative checks with respect to an integrator's own tensors -------------------------

--- Like lv.testing.gradcheck, for tensors the integrator owns (they cannot
-- be replaced by fresh leaves): the Jacobian of f() (any shape) with
-- respect to params from the tape, against central differences made by
-- changing the parameters in place. Returns the worst error
-- |tape - numeric| / (1 + |numeric|), where, and per parameter the
-- largest |numeric|.
local function param_gradcheck(params, f, eps)
  eps = eps or 1e-6
  local y = lv.enable_grad(f)
  local m = y:numel()
  local tape = {}
  for k = 1, m do
    local e = lv.zeros({ m }, "f64")
    e[k] = 1
    local gs = y.needs_grad and lv.grad(y, params, { grad_outputs = e:view(y:size()), retain_graph = true,
                                                      allow_unused = true }) or {}
    tape[k] = {}
    for i = 1, #params do tape[k][i] = gs[i] and gs[i]:contiguous():view(-1):totable() or nil end
  end
  local worst, where, scale = 0, nil, {}
  for i, p in ipairs(params) do
    local flat = p:view(-1)
    scale[i] = 0
    for j = 1, flat:numel() do
      local old = flat[j]:item()
      lv.no_grad(function() flat[j] = old + eps end)
      local plus = lv.enable_grad(f):contiguous():view(-1):totable()
      lv.no_grad(function() flat[j] = old - eps end)
      local minus = lv.enable_grad(f):contiguous():view(-1):totable()
      lv.no_grad(function() flat[j] = old end)
      for k = 1, m do
        local numeric = (plus[k] - minus[k]) / (2 * eps)
        local analytic = tape[k][i] and tape[k][i][j] or 0
        local err = math.abs(analytic - numeric) / (1 + math.abs(numeric))
        if err ~= err then err = math.huge end
        scale[i] = math.max(scale[i], math.abs(numeric))
        if err >= worst then
          worst, where = err, string.format("parameter %d element %d output %d: tape %.10g, numeric %.10g",
                                            i, j, k, analytic, numeric)
        end
      end
    end
  end
  return worst, where, scale
end

--- Like lv.testing.gradgradcheck: param_gradcheck of params -> ∂<f, u>/∂params
-- (built with create_graph) for a fixed random u.
local function param_gradgradcheck(params, f)
  local u = lv.randn(lv.enable_grad(f):size(), "f64", lv.Generator(7))
  local function first()
    local y = f()
    local gs = y.needs_grad and lv.grad(y, params, { grad_outputs = u, create_graph = true, allow_unused = true })
               or {}
    local parts = {}
    for i, p in ipairs(params) do parts[i] = (gs[i] or lv.zeros_like(p)):contiguous():view(-1) end
    return lv.cat(parts, 1)
  end
  return param_gradcheck(params, first)
end

---- the specs -------------------------------------------------------------------------------

describe("flows on the linear-Gaussian model", function()
  teardown(function()
    if #REPORT == 0 then return end
    print(string.format("\nflows_spec: d = %d, D = %d, K = %d, wide encoder; S = %d, %d nll runs; "
      .. "gaps = estimate - log p(x), mean over %d datapoints", d, D, K, S, RUNS, B))
    print(string.format("%-17s %8s %8s %8s %7s %7s  %s", "flow", "ELBO", "IWAE_S", "NLL-ex", "s.e.", "ESS",
                        "Var w"))
    for _, row in ipairs(REPORT) do print(row) end
  end)

  it("the model is moderately conditioned and the encoder is wider than the posterior", function()
    local sv = lv.eigh(W:t():matmul(W)):sqrt()
    assert(sv:max():item() / sv:min():item() < 2, "W's condition number")
    local pv = lv.eigh(POST_COV)
    assert(pv:min():item() > 0.1 and pv:max():item() < 0.6, "posterior variances")
    -- SPEC §5: the plain VAE's weights have finite variance iff 2 Σ_post⁻¹ - Σ_q⁻¹ > 0
    local q_cov = lv.eye(d, d, "f64") * Q_SD:square()
    assert(min_eig(2 * lv.inverse(POST_COV) - lv.inverse(q_cov)) > 0)
    assert(lv.cholesky(sym(2 * lv.inverse(POST_COV) - lv.inverse(q_cov))) ~= nil)
  end)

  for index, spec in ipairs(FLOWS) do
    describe(spec.name, function()
      if not spec.planar then
        it("is affine in (z0, ρ0) with additive noise (the analysis' premise)", function()
          local r = evaluate(index)
          local a = r.affine
          if r.flow then
            assert(a.A_spread < 1e-12, "the Jacobian differs between datapoints by " .. a.A_spread)
          end
          if spec.noisy then
            assert(a.noisy_A_error < 1e-10,
                   "the Jacobian of the noisy flow differs from the noise-free one by " .. a.noisy_A_error)
            assert(a.offset_mean_z < 4.5, "the noise offsets have mean 0 (max |mean| / s.e. "
                   .. a.offset_mean_z .. ")")
          end
          if not spec.noisy then
            assert(a.finite, spec.name .. ": this deterministic flow's weights have finite variance here")
          end
        end)
      end

      it("ELBO <= log p(x) within Monte-Carlo error" .. (spec.planar and "" or
         ", and equals log p(x) - E KL(q_ξ ‖ π) exactly"), function()
        local r = evaluate(index)
        for b = 1, B do
          local elbo, se, logp = r.elbo[b]:item(), r.elbo_se[b]:item(), LOGP[b]:item()
          assert(elbo <= logp + 3 * se,
                 string.format("datapoint %d: ELBO %.5f above log p(x) %.5f (se %.5f)", b, elbo, logp, se))
          if r.affine then
            local want = r.affine.elbo_exact[b]
            local tol = 4 * se + 0.03 * r.affine.noise_term      -- Σc is estimated (~1% error)
            assert(math.abs(elbo - want) < tol,
                   string.format("datapoint %d: ELBO %.5f, exact %.5f, tolerance %.5f", b, elbo, want, tol))
          end
        end
      end)

      it("IWAE_S rises with S and reaches log p(x) within 0.1 nats at S = 20,000", function()
        local r = evaluate(index)
        -- IWAE_S as the mean over disjoint groups of one pool of log weights:
        -- the groups nest, so by Jensen it cannot fall as S grows.
        for i = 2, #r.iwae do
          for b = 1, B do
            local lo, hi = r.iwae[i - 1][2][b]:item(), r.iwae[i][2][b]:item()
            assert(hi >= lo - 1e-12, string.format("datapoint %d: IWAE_%d %.5f < IWAE_%d %.5f",
                                                   b, r.iwae[i][1], hi, r.iwae[i - 1][1], lo))
          end
        end
        local first, last = r.iwae[1][2], r.iwae[#r.iwae][2]
        -- it starts at the ELBO and climbs most of the gap
        assert((first - r.elbo):abs():max():item() < 1e-9)
        local gap = (last - LOGP):abs()
        assert(gap:mean():item() < 0.1 and gap:max():item() < 0.15,
               string.format("IWAE_%d - log p(x): %s", S, table.concat((last - LOGP):totable(), ", ")))
        assert(gap:mean():item() < 0.25 * (LOGP - first):mean():item(), "IWAE closes most of the ELBO's gap")
      end)

      it("nll (S = 20,000) is within 0.1 nats of -log p(x); within 3 s.e. where Var w is finite", function()
        local r = evaluate(index)
        assert(math.abs(r.nll - EXACT_NLL) < 0.1,
               string.format("nll %.5f, exact %.5f (ESS %.0f)", r.nll, EXACT_NLL, r.ess))
        assert(r.ess > 1 and r.ess <= S)
        if r.affine and r.affine.finite then
          assert(r.se > 0, "a standard error from " .. RUNS .. " runs")
          assert(math.abs(r.nll - EXACT_NLL) < 3 * r.se,
                 string.format("nll %.5f, exact %.5f, se %.5f", r.nll, EXACT_NLL, r.se))
          if r.affine.fourth_finite then
            -- ESS / S -> p(x)² / E[w²], known in closed form here
            for b = 1, B do
              local want = S / r.affine.r2[b]
              local got = r.info.ess_per_datapoint[b]:item()
              assert(math.abs(got / want - 1) < 0.05,
                     string.format("datapoint %d: ESS %.1f, predicted %.1f", b, got, want))
            end
          end
        end
      end)
    end)
  end

  describe("AIS", function()
    it("is within 0.05 nats of log p(x) with 2000 steps", function()
      lv.manual_seed(4242)
      local model = lv.models.LinearGaussian{ W = W, b = BIAS, sigma = SIGMA }
      local logpx, accept, info = E.ais(model, X, { steps = 2000, chains = 128, leapfrog_steps = 5 })
      local err = (logpx - LOGP):abs()
      assert(err:max():item() < 0.05, "AIS - log p(x): " .. table.concat((logpx - LOGP):totable(), ", "))
      assert(accept > 0.5 and accept < 0.9, "acceptance " .. accept)
      assert(info.ess:min():item() > 64, "the chains' weights are nearly equal")
    end)
  end)

  describe("learning the step sizes and friction by maximising the ELBO", function()
    local Kl = 5

    --- KL(N_fit ‖ posterior) averaged over the datapoints, N_fit the
    -- Gaussian with the mean and covariance of 20,000 flowed samples.
    local function kl_moment_matched(flow)
      return lv.no_grad(function()
        lv.manual_seed(555)
        local N, total = 20000, 0
        for b = 1, B do
          local z0 = lv.randn({ N, d }, "f64")                 -- the prior proposal
          local zK = flow:flow(z0, flow:init_momentum(N, Kl), potential(X[b]), Kl)
          local mu = zK:mean(1)
          local c = zK - mu
          total = total + kl_gauss(mu, sym(c:t():matmul(c) / (N - 1)), POST_MEAN[b], POST_COV)
        end
        return total / B
      end)
    end

    local function elbo_of(model)
      return lv.no_grad(function()
        lv.manual_seed(777)
        local lw = model:log_weight(X, 20000)
        return lw:mean():item(), (lw:var(1):sum() / 20000):sqrt():item() / B
      end)
    end

    local function learn(flow, steps)
      local model = lv.models.LinearGaussian{ W = W, b = BIAS, sigma = SIGMA, flow = flow, K = Kl }
      local kl0, elbo0 = kl_moment_matched(flow), elbo_of(model)
      local opt = optim.Adam(flow:parameters(), { lr = 0.05 })
      for t = 1, steps do
        lv.manual_seed(10000 + t)                -- fresh noise: stochastic gradients
        opt:step(function() return -model:elbo(X, { samples = 32 }):mean() end)
      end
      local kl1 = kl_moment_matched(flow)
      local elbo1, se = elbo_of(model)
      return kl0, kl1, elbo0, elbo1, se
    end

    it("leapfrog (h from 0.05, K = 5, from the prior): KL(N_fit ‖ posterior) falls, the ELBO rises", function()
      local flow = lv.integrators.leapfrog{ dim = d, dtype = "f64", step = 0.05 }
      local kl0, kl1, elbo0, elbo1, se = learn(flow, 200)
      assert(kl1 < 0.4 * kl0, string.format("KL %.4f -> %.4f", kl0, kl1))
      assert(elbo1 > elbo0 + 0.1 and elbo1 - elbo0 > 5 * se, string.format("ELBO %.4f -> %.4f", elbo0, elbo1))
      assert(flow:step_size():min():item() > 0.1, "the steps grew")
    end)

    it("qsl (h from 0.35, γ 0.5, K = 5, from the prior): KL(N_fit ‖ posterior) falls, the ELBO rises", function()
      local flow = lv.integrators.qsl{ dim = d, dtype = "f64", step = 0.35 }
      local gamma0 = flow:friction():clone()
      local kl0, kl1, elbo0, elbo1, se = learn(flow, 200)
      assert(kl1 < 0.6 * kl0, string.format("KL %.4f -> %.4f", kl0, kl1))
      assert(elbo1 > elbo0 + 1 and elbo1 - elbo0 > 5 * se, string.format("ELBO %.4f -> %.4f", elbo0, elbo1))
      assert((flow:friction() - gamma0):abs():max():item() > 0.05, "the friction moved")
    end)
  end)

  describe("derivatives through each integrator (B = 2, K = 2)", function()
    local X2 = X:narrow(1, 1, 2)
    local Z0 = f64({ { 0.3, -0.7, 1.1 }, { -0.2, 0.5, 0.4 } })
    local RHO0 = f64({ { 0.9, 0.1, -0.4 }, { 0.3, -1.2, 0.6 } })
    local TOL = 1e-6

    local cases = {
      { "leapfrog, per-step step sizes", function()
        return lv.integrators.leapfrog{ dim = d, dtype = "f64", per_step = true, K = 2 } end },
      { "leapfrog, fixed tempering (τ)", function()
        return lv.integrators.leapfrog{ dim = d, dtype = "f64", tempering = "fixed", T0 = 1.8, K = 2 } end },
      { "leapfrog, free tempering (α_k)", function()
        return lv.integrators.leapfrog{ dim = d, dtype = "f64", tempering = "free", alpha = 0.8, K = 2 } end },
      { "qsl, step and friction", function()
        return lv.integrators.qsl{ dim = d, dtype = "f64", friction = 0.7 } end },
      { "qsl, learned T0", function()
        return lv.integrators.qsl{ dim = d, dtype = "f64", init_temperature = 1.5, learn = { temperature = true } } end },
      { "qsl, matched T0", function()
        return lv.integrators.qsl{ dim = d, dtype = "f64", init_temperature = "matched" } end },
      { "qsl2, step and friction", function()
        return lv.integrators.qsl2{ dim = d, dtype = "f64", friction = 0.7 } end },
      { "obabo, step and friction", function()
        return lv.integrators.obabo{ dim = d, dtype = "f64", friction = 0.7 } end },
      { "euler, step and friction (Hessian log-det)", function()
        return lv.integrators.euler{ dim = d, dtype = "f64", friction = 0.7, step = 0.1 } end },
      { "euler overdamped", function()
        return lv.integrators.euler{ dim = d, dtype = "f64", kind = "overdamped", step = 0.05 } end },
      { "planar u, w, b", function()
        lv.manual_seed(3)
        return lv.flows.planar{ dim = d, K = 2, dtype = "f64" } end },
    }

    for _, case in ipairs(cases) do
      local name, make = case[1], case[2]
      it(name .. ": logdet and ELBO, first and second derivatives in its parameters and in W", function()
        local flow = make()
        local params = flow:parameters()
        assert(#params > 0)
        local rho0 = flow:has_momentum() and RHO0 or nil
        local function logdet_with(Wm)
          lv.manual_seed(43)
          local _, _, ld = flow:flow(Z0, rho0, potential(X2, Wm), 2, { create_graph = true })
          return ld
        end
        local function elbo_with(Wm)
          local model = lv.models.LinearGaussian{ W = Wm, b = BIAS, sigma = SIGMA, flow = flow, K = 2 }
          lv.manual_seed(42)                    -- the same noise at every evaluation
          return model:elbo(X2, { samples = 2 })
        end
        local function ok(err, where, what)
          assert(err < TOL, string.format("%s: %s: worst error %.3g at %s", name, what, err, tostring(where)))
        end
        -- in the integrator's own tensors (step-size logits, friction, tempering, planar)
        local e, where, scale = param_gradcheck(params, function() return logdet_with(W) end)
        ok(e, where, "d logdet / d params")
        e, where = param_gradgradcheck(params, function() return logdet_with(W) end)
        ok(e, where, "d² logdet / d params²")
        e, where, scale = param_gradcheck(params, function() return elbo_with(W) end)
        ok(e, where, "d ELBO / d params")
        assert(scale[1] > 1e-3, name .. ": the ELBO depends on the first parameter")
        e, where = param_gradgradcheck(params, function() return elbo_with(W) end)
        ok(e, where, "d² ELBO / d params²")
        -- in the decoder weights, through the force (and the Hessian for euler)
        e, where = lv.testing.gradcheck(logdet_with, { W })
        ok(e, where and where.element, "d logdet / d W")
        if flow:kind() == "euler" then
          e, where = lv.testing.gradgradcheck(logdet_with, { W })
          ok(e, where and where.element, "d² logdet / d W²")
        end
        e, where = lv.testing.gradcheck(elbo_with, { W })
        ok(e, where and where.element, "d ELBO / d W")
        e, where = lv.testing.gradgradcheck(elbo_with, { W })
        ok(e, where and where.element, "d² ELBO / d W²")
      end)
    end
  end)
end)
