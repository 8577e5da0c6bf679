-- models_spec.lua -- lua/lvae/models.lua: SPEC §5's LinearGaussian and
-- SPEC §2's FlowVAE, in f64.
--
--   * LinearGaussian: log_evidence against log N(x; b, W Wᵀ + diag σ²)
--     written out here with lv.logdet and lv.solve (the model uses the
--     Cholesky factor); the posterior against the closed form through the
--     marginal covariance (cov = I - Wᵀ C⁻¹ W, mean = Wᵀ C⁻¹ (x - b));
--     with the posterior as proposal every log w equals log p(x); with the
--     prior as proposal the ELBO equals log p(x) - KL(N(0, I) ‖ posterior)
--     (closed form) within Monte-Carlo error, so it is below log p(x);
--     the IWAE bound rises with S toward log p(x);
--   * the flow ELBO of SPEC §2 through a stand-in integrator written below
--     (a tempered symplectic-Euler step with a known log-determinant and
--     initial temperature): log w against the formula computed by hand
--     from the flow's own inputs and outputs, and the IWAE bound of the
--     flowed posterior still converging to log p(x) (which a wrong sign of
--     L or of the T0 term would shift);
--   * analytic_entropy replaces -log q0 - log r0 by their expectations
--     exactly (checked sample by sample);
--   * FlowVAE with a tiny MLP: log w against a hand computation for the
--     Bernoulli and the Gaussian likelihood (same generator draws), shapes
--     of log_weight / elbo / sample / reconstruct, gradients reaching the
--     encoder, decoder, flow and log_sigma_x, create_graph following grad
--     mode;
--   * the error messages.
--
-- The stand-in follows the interface of lv.integrators exactly, so the
-- same model code runs the real integrators; a last block runs them when
-- they are built.

local lv = require "lvae"
local nn = require "lvae.nn"
local H = require "helpers"

local models = lv.models
local estimators = lv.estimators

local LOG_2PI = math.log(2 * math.pi)

local function f64(t) return lv.tensor(t, "f64") end

---- a stand-in integrator ---------------------------------------------------------------

--- StandIn{dim, h = 0.1, alpha = 1, T0 = 1}: K steps of
--   z' = z + h ρ,   ρ' = α (ρ − h ∇U(z')),   log|det| = d log α per step,
-- with ρ0 = sqrt(T0) ε. h is a learnable [d] leaf. Records its last call
-- in self.last (z0, rho0, zK, rhoK, logdet, create_graph).
local function StandIn(opts)
  local d, dtype = opts.dim, opts.dtype or "f64"
  local self = { h = lv.param(lv.full({ d }, opts.h or 0.1, dtype)), alpha = opts.alpha or 1,
                 T0 = opts.T0 or 1 }
  function self:dim() return d end
  function self:has_momentum() return true end
  function self:parameters() return { self.h } end
  function self:temperature0(_) return lv.tensor(self.T0, dtype) end
  function self:init_momentum(B, _, gen)
    local eps = gen and lv.randn({ B, d }, dtype, gen) or lv.randn({ B, d }, dtype)
    return eps * math.sqrt(self.T0)
  end
  function self:flow(z0, rho0, potential, K, fopts)
    local create = fopts and fopts.create_graph or false
    local B = z0:size(1)
    local function grad_U(z)
      return lv.enable_grad(function()
        local zi = (create and z.needs_grad) and z or lv.param(z:detach())
        local U = potential(zi)
        assert(lv.is_tensor(U) and U:dim() == 1 and U:size(1) == B,
               "potential must return shape [" .. B .. "]")
        return lv.grad(U:sum(), { zi }, { create_graph = create })[1]
      end)
    end
    local z, rho = z0, rho0
    for _ = 1, K do
      z = z + self.h * rho
      rho = self.alpha * (rho - self.h * grad_U(z))
    end
    local logdet = lv.full({ B }, K * d * math.log(self.alpha), dtype)
    self.last = { z0 = z0, rho0 = rho0, zK = z, rhoK = rho, logdet = logdet, create_graph = create }
    return z, rho, logdet, K, {}
  end
  return self
end

---- the reference model ----------------------------------------------------------------------

-- D = 4 observed values, d = 2 latents; 3 datapoints.
local W_VALUES = { { 1.0, 0.5 }, { -0.5, 1.2 }, { 0.3, -0.8 }, { 0.9, 0.1 } }
local B_VALUES = { 0.5, -1.0, 0.25, 0.0 }
local SIGMA_VALUES = { 0.8, 1.1, 0.6, 1.0 }
local X_VALUES = { { 1.2, -0.3, 0.8, 1.5 }, { -0.7, -2.0, 1.1, -0.4 }, { 0.4, 0.9, -0.6, 0.2 } }

local function reference(extra)
  local args = { W = f64(W_VALUES), b = f64(B_VALUES), sigma = f64(SIGMA_VALUES) }
  for k, v in pairs(extra or {}) do args[k] = v end
  return models.LinearGaussian(args)
end

--- log N(x; b, C) per row, C = W Wᵀ + diag σ², through lv.logdet / lv.solve.
local function direct_log_evidence(x)
  local W, b, s = f64(W_VALUES), f64(B_VALUES), f64(SIGMA_VALUES)
  local C = W:matmul(W:t()) + lv.eye(4, 4, "f64") * s:square()
  local r = (x - b):t()                                  -- [D, B]
  local quad = (r * lv.solve(C, r)):sum(1)
  return -0.5 * quad - 0.5 * lv.logdet(C) - 2 * LOG_2PI
end

--- log p(x|z) for x [B, D], z [S, B, d], by hand: Σ log N(x; W z + b, σ²).
local function direct_log_lik(x, z)
  local W, b, s = f64(W_VALUES), f64(B_VALUES), f64(SIGMA_VALUES)
  local m = z:matmul(W:t()) + b
  return (-0.5 * ((x - m) / s):square() - s:log() - 0.5 * LOG_2PI):sum(-1)
end

local function std_normal(z) return (-0.5 * z:square() - 0.5 * LOG_2PI):sum(-1) end

local function sd_of(lw) return lw:var(1):sqrt() end

describe("models", function()
  before_each(function() lv.manual_seed(2024) end)

  ---- LinearGaussian --------------------------------------------------------------------

  describe("LinearGaussian", function()
    local x = f64(X_VALUES)

    it("log_evidence equals log N(x; b, W Wᵀ + diag σ²) written out with logdet and solve", function()
      local m = reference()
      H.assert_close(m:log_evidence(x), direct_log_evidence(x), 1e-13, 1e-13)
      assert.are.same({ 3 }, m:log_evidence(x):size())
      -- a scalar sigma is the same as a vector of equal values
      local m1 = models.LinearGaussian{ W = f64(W_VALUES), b = f64(B_VALUES), sigma = 0.7 }
      local m2 = models.LinearGaussian{ W = f64(W_VALUES), b = f64(B_VALUES), sigma = lv.full({ 4 }, 0.7, "f64") }
      H.assert_close(m1:log_evidence(x), m2:log_evidence(x), 1e-14, 0)
    end)

    it("posterior mean and covariance match the closed form through the marginal covariance", function()
      local m = reference()
      local mean, cov = m:posterior(x)
      assert.are.same({ 3, 2 }, mean:size())
      assert.are.same({ 2, 2 }, cov:size())
      local W = f64(W_VALUES)
      local C = m:marginal_covariance()
      local cov_ref = lv.eye(2, 2, "f64") - W:t():matmul(lv.solve(C, W))
      local mean_ref = W:t():matmul(lv.solve(C, (x - f64(B_VALUES)):t())):t()
      H.assert_close(cov, cov_ref, 1e-13, 1e-14)
      H.assert_close(mean, mean_ref, 1e-13, 1e-14)
    end)

    it("with the posterior as proposal, every log w equals log p(x)", function()
      local m = reference({ proposal = "posterior" })
      local lw = m:log_weight(x, 50)
      assert.are.same({ 50, 3 }, lw:size())
      local exact = m:log_evidence(x)
      H.assert_close(lw, exact:expand({ 50, 3 }), 1e-12, 1e-12)
      H.assert_close(estimators.iwae(m, x, 50), exact, 1e-12, 1e-12)
      H.assert_close(estimators.elbo(m, x, 50), exact, 1e-12, 1e-12)
    end)

    it("with the prior as proposal, ELBO = log p(x) - KL(N(0, I) ‖ posterior) <= log p(x)", function()
      local m = reference()
      local S = 20000
      local lw = lv.no_grad(function() return m:log_weight(x, S) end)
      local elbo = lw:mean(1)
      local se = sd_of(lw) / math.sqrt(S)
      local mean, cov = m:posterior(x)
      -- KL(N(0, I) ‖ N(m, Σ)) = (tr Σ⁻¹ + mᵀ Σ⁻¹ m - d + log det Σ) / 2
      local P = lv.inverse(cov)
      local kl = 0.5 * ((P * lv.eye(2, 2, "f64")):sum() + (mean:matmul(P) * mean):sum(2) - 2 + lv.logdet(cov))
      local exact = m:log_evidence(x)
      local expected = exact - kl
      for b = 1, 3 do
        local e, g, s = expected[b]:item(), elbo[b]:item(), se[b]:item()
        assert(math.abs(g - e) < 4 * s, string.format("datapoint %d: ELBO %.5f, exact %.5f, se %.5f", b, g, e, s))
        assert(g + 4 * s < exact[b]:item(), "the ELBO must lie below log p(x)")
      end
      -- the model's own elbo is the mean of log_weight
      lv.manual_seed(7)
      local a = m:elbo(x, { samples = 10 })
      lv.manual_seed(7)
      H.assert_close(a, m:log_weight(x, 10):mean(1), 1e-15, 0)
    end)

    it("the IWAE bound rises with S toward log p(x)", function()
      local m = reference()
      local exact = m:log_evidence(x):mean():item()
      -- E[IWAE_S] estimated from R independent groups of S samples each.
      local gaps = {}
      local sizes = { { 1, 4000 }, { 10, 1000 }, { 100, 200 }, { 1000, 40 } }
      lv.no_grad(function()
        for i, sr in ipairs(sizes) do
          local S, R = sr[1], sr[2]
          local lw = m:log_weight(x, S * R):reshape({ R, S, 3 })
          local iw = lw:logsumexp(2) - math.log(S)             -- [R, B]
          gaps[i] = exact - iw:mean():item()
        end
      end)
      for i = 2, #gaps do
        assert(gaps[i] < gaps[i - 1], string.format("gap at S = %d (%.4f) is not below that at S = %d (%.4f)",
          sizes[i][1], gaps[i], sizes[i - 1][1], gaps[i - 1]))
      end
      assert(gaps[1] > 1, "the ELBO gap of the prior proposal is large here")
      assert(gaps[#gaps] > -0.02 and gaps[#gaps] < 0.05,
             string.format("IWAE_1000 is %.4f below log p(x)", gaps[#gaps]))
    end)

    it("log_likelihood takes z [S, B, d] or [B, d]", function()
      local m = reference()
      local z = lv.randn({ 5, 3, 2 }, "f64")
      H.assert_close(m:log_likelihood(x, z), direct_log_lik(x, z), 1e-13, 1e-13)
      assert.are.same({ 3 }, m:log_likelihood(x, z[1]):size())
      H.assert_close(m:log_likelihood(x, z[1]), direct_log_lik(x, z[1]), 1e-13, 1e-13)
    end)

    it("an encoder proposal: log w = log p(x, z) - log N(z; mu, sigma²) by hand", function()
      local mu0 = f64({ { 0.1, -0.2 }, { 0.3, 0.0 }, { -0.5, 0.4 } })
      local s0 = f64({ { 0.9, 0.7 }, { 1.1, 0.5 }, { 0.8, 0.8 } })
      local m = reference({ encoder = function() return mu0, s0 end })
      local lw = m:log_weight(x, 6, { gen = lv.Generator(5) })
      local eps = lv.randn({ 6, 3, 2 }, "f64", lv.Generator(5))
      local z = mu0 + s0 * eps
      local lq = (-0.5 * eps:square() - s0:log() - 0.5 * LOG_2PI):sum(-1)
      H.assert_close(lw, direct_log_lik(x, z) + std_normal(z) - lq, 1e-12, 1e-12)
      -- parameters: an encoder module's and a flow's (no decoder here)
      local head = nn.GaussianHead(4, 2, { dtype = "f64" })
      local flow = StandIn{ dim = 2 }
      local mf = reference({ encoder = head, flow = flow, K = 1 })
      local params = mf:parameters()
      assert.are.equal(#head:parameters() + 1, #params)
      assert.are.equal(flow.h, params[#params])
    end)

    it("a generator passed to log_weight also drives the flow's noise", function()
      local m = reference({ flow = lv.integrators.qsl{ dim = 2, dtype = "f64" }, K = 3 })
      local a = m:log_weight(x, 4, { gen = lv.Generator(21) })
      lv.manual_seed(1)
      local b = m:log_weight(x, 4, { gen = lv.Generator(21) })
      lv.manual_seed(2)
      local c = m:log_weight(x, 4, { gen = lv.Generator(21) })
      H.assert_close(a, b, 0, 0)
      H.assert_close(a, c, 0, 0)
      local other = m:log_weight(x, 4, { gen = lv.Generator(22) })
      assert.is_true((a - other):abs():max():item() > 1e-6)
    end)

    it("sample draws x = W z + b + σ ε", function()
      local m = reference()
      local xs, z = m:sample(20000)
      assert.are.same({ 20000, 4 }, xs:size())
      assert.are.same({ 20000, 2 }, z:size())
      local resid = xs - z:matmul(f64(W_VALUES):t()) - f64(B_VALUES)
      H.assert_close(resid:mean(1), { 0, 0, 0, 0 }, 0, 0.03)
      H.assert_close(resid:var(1):sqrt(), SIGMA_VALUES, 0.03, 0)
    end)

    it("log_evidence is differentiable in W", function()
      local W = lv.param(f64(W_VALUES))
      local m = models.LinearGaussian{ W = W, b = f64(B_VALUES), sigma = f64(SIGMA_VALUES) }
      local g = lv.grad(m:log_evidence(x):sum(), { W })[1]
      -- d/dW log N(x; b, C) = (C⁻¹ r rᵀ C⁻¹ - n C⁻¹) W summed over datapoints
      local C = m:marginal_covariance():detach()
      local Cinv = lv.inverse(C)
      local a = lv.solve(C, (x - f64(B_VALUES)):t())        -- [D, B]
      local expected = (a:matmul(a:t()) - 3 * Cinv):matmul(f64(W_VALUES))
      H.assert_close(g, expected, 1e-12, 1e-12)
      assert.are.same({ W }, m:parameters())
    end)
  end)

  ---- the flow ELBO ----------------------------------------------------------------------------

  describe("flow ELBO (SPEC §2) through a stand-in integrator", function()
    local x = f64(X_VALUES)

    it("log w = log p(x|zK) + log N(zK) + log N(ρK) - log q0(z0) - log N(ρ0; 0, T0) + L", function()
      local flow = StandIn{ dim = 2, h = 0.15, alpha = 0.9, T0 = 1.7 }
      local m = reference({ flow = flow, K = 3 })
      local S = 4
      local lw = m:log_weight(x, S)
      assert.are.same({ S, 3 }, lw:size())
      local r = flow.last
      local zK = r.zK:reshape({ S, 3, 2 })
      local expected = direct_log_lik(x, zK) + std_normal(zK) + std_normal(r.rhoK):reshape({ S, 3 })
        - std_normal(r.z0):reshape({ S, 3 })                                  -- prior proposal
        - ((-0.5 * r.rho0:square() / 1.7 - 0.5 * math.log(2 * math.pi * 1.7)):sum(-1)):reshape({ S, 3 })
        + 3 * 2 * math.log(0.9)
      H.assert_close(lw, expected, 1e-12, 1e-12)
      assert.are.equal(3, m.grad_evals)
    end)

    it("the flowed posterior still gives IWAE -> log p(x) (L and T0 enter with the right signs)", function()
      local flow = StandIn{ dim = 2, h = 0.2, alpha = 0.8, T0 = 1 / 0.8 ^ 4 }
      local m = reference({ proposal = "posterior", flow = flow, K = 2 })
      local exact = m:log_evidence(x)
      local lw = lv.no_grad(function() return m:log_weight(x, 20000) end)
      local iw = lw:logsumexp(1) - math.log(20000)
      local elbo = lw:mean(1)
      -- |L| = 2 K log(1/0.8) = 0.89 nats: a wrong sign would show
      H.assert_close(iw, exact, 0, 0.03)
      for b = 1, 3 do assert(elbo[b]:item() < exact[b]:item(), "ELBO above log p(x)") end
      assert(estimators.ess(lw):min():item() > 2000, "these weights are well behaved")
    end)

    it("analytic_entropy replaces -log q0 - log r0 by d/2 log 2πe + Σ log σ + 1/2 Σ log(2πe T0)", function()
      local flow = StandIn{ dim = 2, T0 = 2.5 }
      local mu0 = f64({ { 0.1, -0.2 }, { 0.3, 0.0 }, { -0.5, 0.4 } })
      local s0 = f64({ { 0.9, 0.7 }, { 1.1, 0.5 }, { 0.8, 0.8 } })
      local m = reference({ encoder = function() return mu0, s0 end, flow = flow, K = 2 })
      local lw = m:log_weight(x, 5, { gen = lv.Generator(9) })
      local lw_a = m:log_weight(x, 5, { gen = lv.Generator(9), analytic_entropy = true })
      local r = flow.last
      local eps_z = ((r.z0:reshape({ 5, 3, 2 }) - mu0) / s0)
      -- (expectation - sample) of -log q0 is d/2 - |ε_z|²/2; of -log r0, d/2 - |ρ0|²/(2 T0)
      local expected = 2 - 0.5 * eps_z:square():sum(-1) - 0.5 * (r.rho0:square() / 2.5):sum(-1):reshape({ 5, 3 })
      H.assert_close(lw_a - lw, expected, 1e-12, 1e-12)
      -- same mean: the elbo with many samples agrees within Monte-Carlo error
      local e1 = m:elbo(x, { samples = 4000 })
      local e2 = m:elbo(x, { samples = 4000, analytic_entropy = true })
      H.assert_close(e2, e1, 0, 0.1)
    end)
  end)

  ---- FlowVAE ------------------------------------------------------------------------------

  describe("FlowVAE", function()
    local D, d, B = 6, 2, 3

    local function mlp()
      local enc = nn.Sequential(nn.Linear(D, 8, { dtype = "f64" }), nn.Softplus(),
                                nn.GaussianHead(8, d, { dtype = "f64" }))
      local dec = nn.Sequential(nn.Linear(d, 8, { dtype = "f64" }), nn.Softplus(),
                                nn.Linear(8, D, { dtype = "f64" }))
      return enc, dec
    end

    local function binary_x()
      return lv.bernoulli({ B, D }, 0.5, "f64")
    end

    it("the plain VAE's log w (Bernoulli) equals a hand computation with the same draws", function()
      local enc, dec = mlp()
      local m = models.FlowVAE{ encoder = enc, decoder = dec, likelihood = "bernoulli" }
      local x = binary_x()
      local S = 4
      local lw = m:log_weight(x, S, { gen = lv.Generator(3) })
      assert.are.same({ S, B }, lw:size())
      local mu, sigma = enc(x)
      local eps = lv.randn({ S, B, d }, "f64", lv.Generator(3))
      local z = mu + sigma * eps
      local l = dec(z:reshape({ S * B, d })):reshape({ S, B, D })
      local ll = (x * l - l:softplus()):sum(-1)
      local lq = (-0.5 * eps:square() - sigma:log() - 0.5 * LOG_2PI):sum(-1)
      H.assert_close(lw, ll + std_normal(z) - lq, 1e-12, 1e-12)
      assert.are.equal(d, m.dim)
    end)

    it("the Gaussian likelihood has a learned log_sigma_x [D] among the parameters", function()
      local enc, dec = mlp()
      local m = models.FlowVAE{ encoder = enc, decoder = dec, likelihood = "gaussian", x_dim = D,
                                log_sigma_x = -0.5, dtype = "f64" }
      assert.are.same({ D }, m.log_sigma_x:size())
      local x = lv.randn({ B, D }, "f64")
      local lw = m:log_weight(x, 2, { gen = lv.Generator(4) })
      local mu, sigma = enc(x)
      local eps = lv.randn({ 2, B, d }, "f64", lv.Generator(4))
      local z = mu + sigma * eps
      local mean = dec(z:reshape({ 2 * B, d })):reshape({ 2, B, D })
      local ll = (-0.5 * ((x - mean) / math.exp(-0.5)):square() + 0.5 - 0.5 * LOG_2PI):sum(-1)
      local lq = (-0.5 * eps:square() - sigma:log() - 0.5 * LOG_2PI):sum(-1)
      H.assert_close(lw, ll + std_normal(z) - lq, 1e-12, 1e-12)
      local params = m:parameters()
      assert.are.equal(m.log_sigma_x, params[1])
      assert.are.equal(1 + #enc:parameters() + #dec:parameters(), #params)
      local g = lv.grad(-m:elbo(x):mean(), { m.log_sigma_x })[1]
      assert(g:abs():sum():item() > 0, "the gradient reaches log_sigma_x")
      local xs, mean_s, zs = m:sample(7)
      assert.are.same({ 7, D }, xs:size())
      assert.are.same({ 7, D }, mean_s:size())
      assert.are.same({ 7, d }, zs:size())
    end)

    it("shapes of log_weight, elbo, sample and reconstruct, with and without a flow", function()
      for _, with_flow in ipairs({ false, true }) do
        local enc, dec = mlp()
        local m = models.FlowVAE{ encoder = enc, decoder = dec, flow = with_flow and StandIn{ dim = d } or nil,
                                  K = with_flow and 2 or nil }
        local x = binary_x()
        assert.are.same({ 5, B }, m:log_weight(x, 5):size())
        assert.are.same({ B }, m:elbo(x):size())
        assert.are.same({ B }, m:elbo(x, { samples = 3, analytic_entropy = true }):size())
        local xs, p, z = m:sample(4)
        assert.are.same({ 4, D }, xs:size())
        assert.are.same({ 4, d }, z:size())
        assert.are.equal(0, xs:mul(1 - xs):abs():sum():item())        -- binary
        assert(p:min():item() > 0 and p:max():item() < 1)
        assert(not xs.needs_grad and not p.needs_grad)
        local r, zK = m:reconstruct(x)
        assert.are.same({ B, D }, r:size())
        assert.are.same({ B, d }, zK:size())
        assert.are.same({ B, D }, m:reconstruct(x, { sample = true }):size())
        -- images: x [B, 1, 2, 3] and a decoder giving [N, 1, 2, 3]
        local dec_img = function(zz) return dec(zz):reshape({ zz:size(1), 1, 2, 3 }) end
        local enc_img = function(xx) return enc(xx:reshape({ xx:size(1), D })) end
        local mi = models.FlowVAE{ encoder = enc_img, decoder = dec_img, dim = d }
        local xi = x:reshape({ B, 1, 2, 3 })
        H.assert_close(mi:log_weight(xi, 2, { gen = lv.Generator(1) }),
                       models.FlowVAE{ encoder = enc, decoder = dec }:log_weight(x, 2, { gen = lv.Generator(1) }),
                       1e-14, 1e-14)
        assert.are.same({ 3, 1, 2, 3 }, mi:sample(3):size())
        assert.are.same({ B, 1, 2, 3 }, mi:reconstruct(xi):size())
      end
    end)

    it("gradients of the ELBO reach the encoder, the decoder and the flow", function()
      local enc, dec = mlp()
      local flow = StandIn{ dim = d }
      local m = models.FlowVAE{ encoder = enc, decoder = dec, flow = flow, K = 2 }
      local x = binary_x()
      local params = m:parameters()
      assert.are.equal(#enc:parameters() + #dec:parameters() + 1, #params)
      local grads = lv.grad(-m:elbo(x, { samples = 2 }):mean(), params)
      assert.is_true(flow.last.create_graph, "grad mode on: the flow keeps its graph")
      for i, g in ipairs(grads) do
        assert(g ~= nil and g:abs():sum():item() > 0, "parameter " .. i .. " got no gradient")
      end
      -- the flow's h gets its gradient also through ∇U (second order)
      local gh = lv.grad(m:elbo(x, { gen = lv.Generator(2) }):sum(), { flow.h })[1]
      local dh = 1e-6
      local function at(hv)
        lv.no_grad(function() flow.h:fill_(hv) end)
        return lv.no_grad(function() return m:elbo(x, { gen = lv.Generator(2) }):sum():item() end)
      end
      local fd = (at(0.1 + dh) - at(0.1 - dh)) / (2 * dh)
      lv.no_grad(function() flow.h:fill_(0.1) end)
      assert(math.abs(gh:sum():item() - fd) < 1e-5 * (1 + math.abs(fd)),
             string.format("d elbo / dh: tape %.8g, finite differences %.8g", gh:sum():item(), fd))
      -- under no_grad the flow is asked for no graph
      lv.no_grad(function() m:elbo(x) end)
      assert.is_false(flow.last.create_graph)
    end)

    it("errors", function()
      local enc, dec = mlp()
      local x = binary_x()
      H.expect_error(function() models.FlowVAE{ encoder = enc, decoder = dec, flow = StandIn{ dim = d }, K = 0 } end,
        "FlowVAE", "K must be an integer >= 1", "got 0")
      H.expect_error(function() models.FlowVAE{ encoder = enc, decoder = dec, flow = StandIn{ dim = d } } end,
        "K (the number of flow steps) is required")
      H.expect_error(function() models.FlowVAE{ encoder = enc, decoder = dec, flow = {}, K = 1 } end,
        "flow must be an integrator", "no method 'flow'")
      H.expect_error(function() models.FlowVAE{ encoder = enc, decoder = dec, likelihood = "poisson" } end,
        "unknown likelihood 'poisson' (known: bernoulli, gaussian)")
      H.expect_error(function() models.FlowVAE{ encoder = enc, decoder = dec, prior = "vamp" } end,
        "unknown prior 'vamp'")
      H.expect_error(function() models.FlowVAE{ encoder = enc, decoder = dec, likelihood = "gaussian" } end,
        "needs x_dim")
      H.expect_error(function() models.FlowVAE{ encoder = enc, decoder = dec, steps = 3 } end,
        "unknown option 'steps'")
      H.expect_error(function() models.FlowVAE{ encoder = 3, decoder = dec } end, "encoder must be")
      -- the encoder's dim against the flow's
      local m = models.FlowVAE{ encoder = enc, decoder = dec, flow = StandIn{ dim = 3 }, K = 1 }
      H.expect_error(function() m:elbo(x) end, "FlowVAE:log_weight", "latent dim 2 but the flow has dim 3")
      H.expect_error(function() models.FlowVAE{ encoder = enc, decoder = dec, dim = 2, flow = StandIn{ dim = 3 }, K = 1 } end,
        "dim is 2 but the flow has dim 3")
      -- a decoder of the wrong output size
      local bad = models.FlowVAE{ encoder = enc, decoder = function(z) return lv.zeros({ z:size(1), D + 1 }, "f64") end }
      H.expect_error(function() bad:log_weight(x, 2) end, "the decoder returned shape [6,7]", "6 values per row")
      local m0 = models.FlowVAE{ encoder = enc, decoder = dec }
      H.expect_error(function() m0:log_weight("x", 2) end, "x must be a tensor")
      H.expect_error(function() m0:log_weight(x, 0) end, "S must be an integer >= 1")
      H.expect_error(function() m0:elbo(x, { sample = 3 }) end, "unknown option 'sample'")
      H.expect_error(function() models.FlowVAE{ encoder = function() return 1, 2 end, decoder = dec }:elbo(x) end,
        "the encoder must return two tensors")
      H.expect_error(function() m0:sample(0) end, "n must be an integer >= 1")
      H.expect_error(function() models.LinearGaussian{ W = f64(W_VALUES), sigma = -1 } end, "sigma must be positive")
      H.expect_error(function() models.LinearGaussian{ W = f64(W_VALUES), sigma = 1, proposal = "mode" } end,
        "unknown proposal 'mode'")
      H.expect_error(function() reference():log_evidence(lv.zeros({ 2, 3 }, "f64")) end,
        "x has 3 values per datapoint, the model 4")
      H.expect_error(function() reference({ flow = StandIn{ dim = 3 }, K = 1 }) end,
        "W has latent dim 2 but the flow has dim 3")
    end)
  end)

  ---- the real integrators, once built ------------------------------------------------------

  local have_integrators = lv.integrators ~= nil and lv.integrators.qsl ~= nil

  describe("with lv.integrators", function()
    local x = f64(X_VALUES)

    it("each integrator runs in a FlowVAE and in the LinearGaussian; gradients reach its parameters", function()
      if not have_integrators then return pending("lv.integrators is not built yet") end
      local makers = {
        qsl = function() return lv.integrators.qsl{ dim = 2, dtype = "f64" } end,
        qsl2 = function() return lv.integrators.qsl2{ dim = 2, dtype = "f64" } end,
        leapfrog = function() return lv.integrators.leapfrog{ dim = 2, dtype = "f64", tempering = "fixed" } end,
        euler = function() return lv.integrators.euler{ dim = 2, dtype = "f64" } end,
        planar = function() return lv.flows.planar{ dim = 2, K = 2, dtype = "f64" } end,
      }
      for name, make in pairs(makers) do
        local flow = make()
        local m = reference({ flow = flow, K = 2 })
        local lw = m:log_weight(x, 3)
        assert.are.same({ 3, 3 }, lw:size(), name)
        local fp = flow:parameters()
        assert(#fp > 0, name .. " has parameters")
        local grads = lv.grad(m:elbo(x):sum(), fp, { allow_unused = true })
        local reached = false
        for _, g in ipairs(grads) do reached = reached or (g ~= nil and g:abs():sum():item() > 0) end
        assert(reached, name .. ": no gradient reached the flow's parameters")
      end
    end)

    it("log w from the flow's U(zK) equals decoding zK again, in value and gradient", function()
      for _, make in ipairs({
        function() return lv.integrators.qsl{ dim = 2, dtype = "f64" } end,
        function() return lv.integrators.leapfrog{ dim = 2, dtype = "f64", tempering = "fixed" } end,
        function() return lv.integrators.qsl2{ dim = 2, dtype = "f64" } end,
      }) do
        local flow = make()
        -- the same flow, with stats.potential taken away: the model decodes zK
        local decoding = setmetatable({ flow = function(_, ...)
          local zK, rK, ld, n, stats = flow:flow(...)
          assert.is_true(lv.is_tensor(stats.potential))
          stats.potential = nil
          return zK, rK, ld, n, stats
        end }, { __index = function(_, k) return function(_, ...) return flow[k](flow, ...) end end })
        local a, b = reference({ flow = flow, K = 2 }), reference({ flow = decoding, K = 2 })
        local params = flow:parameters()
        for _, m in ipairs({ a, b }) do for _, p in ipairs(m:parameters()) do params[#params + 1] = p end end
        local function run(m)
          lv.manual_seed(9)                              -- the flow's noise
          local lw = m:log_weight(x, 3, { gen = lv.Generator(9) })
          return lw, lv.grad(lw:sum(), params, { allow_unused = true })
        end
        local lw_a, g_a = run(a)
        local lw_b, g_b = run(b)
        H.assert_close(lw_a, lw_b, 1e-13, 0, flow:kind())
        for i = 1, #flow:parameters() do H.assert_close(g_a[i], g_b[i], 1e-12, 1e-14, flow:kind()) end
        local nll_a = lv.estimators.nll(a, x, { samples = 20, runs = 1 })
        assert(nll_a == nll_a, flow:kind() .. ": the no-grad path gives a number")
      end
    end)

    it("untempered leapfrog from the posterior: IWAE -> log p(x)", function()
      if not have_integrators then return pending("lv.integrators is not built yet") end
      local flow = lv.integrators.leapfrog{ dim = 2, dtype = "f64", tempering = "none" }
      local m = reference({ proposal = "posterior", flow = flow, K = 3 })
      local lw = lv.no_grad(function() return m:log_weight(x, 20000) end)
      H.assert_close(lw:logsumexp(1) - math.log(20000), m:log_evidence(x), 0, 0.02)
    end)

    it("errors: a potential not of shape [B], an encoder of the wrong dim, a failing decoder", function()
      if not have_integrators then return pending("lv.integrators is not built yet") end
      local flow = lv.integrators.qsl{ dim = 2, dtype = "f64" }
      local z = lv.randn({ 4, 2 }, "f64")
      H.expect_error(function() flow:flow(z, flow:init_momentum(4, 1), function(zz) return zz:sum() end, 1) end,
        "potential must return U of shape [4]")
      local enc = function(xx) return lv.zeros({ xx:size(1), 3 }, "f64"), lv.ones({ xx:size(1), 3 }, "f64") end
      local m = models.FlowVAE{ encoder = enc, decoder = function(zz) return zz end, flow = flow, K = 1 }
      H.expect_error(function() m:elbo(x) end, "latent dim 3 but the flow has dim 2")
      local failing = models.FlowVAE{ encoder = function(xx) return lv.zeros({ xx:size(1), 2 }, "f64"),
                                                                  lv.ones({ xx:size(1), 2 }, "f64") end,
                                      decoder = function() error("decoder exploded") end, flow = flow, K = 1 }
      H.expect_error(function() failing:elbo(x) end, "decoder exploded")
    end)
  end)
end)
