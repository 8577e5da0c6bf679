-- distributions_spec.lua -- lua/lvae/distributions.lua: the diagonal
-- Normal and the Bernoulli.
--
--   * log_prob, entropy and KL against closed forms computed in plain Lua
--     (math.log, math.pi), with broadcasting of the parameters;
--   * rsample's sample mean and standard deviation over many draws, and
--     its reparameterisation (the same draws as lv.randn, gradients through
--     mu and sigma); sample is off the tape;
--   * first and second derivatives of log_prob, entropy and KL by
--     lv.testing.gradcheck / gradgradcheck in f64;
--   * the Bernoulli log-likelihood equals x log p + (1 - x) log(1 - p) for
--     moderate logits and stays exact and finite at logits of +-1000;
--     sample means approach p;
--   * the error messages.

local lv = require "lvae"
local D = require "lvae.distributions"
local H = require "helpers"

local LOG_2PI = math.log(2 * math.pi)
local TOL = 1e-6   -- gradcheck's worst |tape - fd| / (1 + |fd|)

local function f64(t) return lv.tensor(t, "f64") end

local function gradcheck(f, inputs, what)
  local worst, where = lv.testing.gradcheck(f, inputs)
  assert(worst < TOL, string.format("%s: gradcheck error %.3g at input %s element %s",
    what, worst, where and where.input, where and where.element))
  worst, where = lv.testing.gradgradcheck(f, inputs)
  assert(worst < TOL, string.format("%s: gradgradcheck error %.3g at input %s element %s",
    what, worst, where and where.input, where and where.element))
end

-- Parameters of shape [2, 3] (mu) and [3] (sigma), values of shape [2, 3].
local MU = { { 0.5, -1.0, 2.0 }, { 0.0, 0.25, -3.0 } }
local SIGMA = { 0.5, 1.5, 2.0 }
local X = { { 1.0, -0.5, 0.0 }, { -2.0, 0.25, 1.0 } }

local function normal_log_prob(x, m, s)
  return -0.5 * ((x - m) / s) ^ 2 - math.log(s) - 0.5 * LOG_2PI
end

local function normal_kl(m1, s1, m2, s2)
  return math.log(s2 / s1) + (s1 ^ 2 + (m1 - m2) ^ 2) / (2 * s2 ^ 2) - 0.5
end

--- A [2][3] table of f(i, j).
local function grid(f)
  local out = {}
  for i = 1, 2 do
    out[i] = {}
    for j = 1, 3 do out[i][j] = f(i, j) end
  end
  return out
end

describe("distributions", function()
  ---- Normal -----------------------------------------------------------------------

  describe("Normal", function()
    it("log_prob is elementwise -((x-mu)/sigma)^2/2 - log sigma - log(2 pi)/2, broadcast", function()
      local q = D.Normal(f64(MU), f64(SIGMA))
      local got = q:log_prob(f64(X))
      H.assert_close(got, grid(function(i, j)
        return normal_log_prob(X[i][j], MU[i][j], SIGMA[j])
      end), 1e-14, 1e-15)
      -- a leading sample dim on x broadcasts against the batch shape
      local xs = lv.stack({ f64(X), f64(X) * 2 })
      local lp = q:log_prob(xs)
      assert.are.same({ 2, 2, 3 }, lp:size())
      H.assert_close(lp[2], grid(function(i, j)
        return normal_log_prob(2 * X[i][j], MU[i][j], SIGMA[j])
      end), 1e-14, 1e-15)
    end)

    it("fields: mean, stddev, variance, batch shape, dtype", function()
      local q = D.Normal(f64(MU), f64(SIGMA))
      assert.are.same({ 2, 3 }, q.batch_shape)
      assert.are.equal("f64", q.dtype)
      H.assert_same(q.mean, MU)
      H.assert_same(q.stddev, grid(function(_, j) return SIGMA[j] end))
      H.assert_close(q.variance, grid(function(_, j) return SIGMA[j] ^ 2 end), 1e-15)
      assert.are.equal(q.mean, q.loc)
      assert.are.equal(q.stddev, q.scale)
      assert.truthy(tostring(q):find("Normal(batch shape [2,3], f64)", 1, true))
    end)

    it("a number for mu or sigma", function()
      local q = D.Normal(0, f64({ 1, 2 }))
      H.assert_close(q:log_prob(f64({ 1, 1 })),
        { normal_log_prob(1, 0, 1), normal_log_prob(1, 0, 2) }, 1e-15)
      local r = D.Normal(f64({ 1, 2 }), 0.5)
      assert.are.equal("f64", r.stddev:dtype())
      H.assert_close(r:log_prob(f64({ 1, 1 })),
        { normal_log_prob(1, 1, 0.5), normal_log_prob(1, 2, 0.5) }, 1e-15)
    end)

    it("entropy is 1/2 + log(2 pi)/2 + log sigma", function()
      local q = D.Normal(f64(MU), f64(SIGMA))
      H.assert_close(q:entropy(), grid(function(_, j)
        return 0.5 + 0.5 * LOG_2PI + math.log(SIGMA[j])
      end), 1e-14, 1e-15)
    end)

    it("kl is the closed form, zero against itself, and matches a Monte Carlo estimate", function()
      local m2 = { { 0.0, 0.0, 1.0 }, { 1.0, -1.0, 0.0 } }
      local s2 = { { 1.0, 0.5, 3.0 }, { 2.0, 1.0, 0.25 } }
      local q = D.Normal(f64(MU), f64(SIGMA))
      local p = D.Normal(f64(m2), f64(s2))
      H.assert_close(q:kl(p), grid(function(i, j)
        return normal_kl(MU[i][j], SIGMA[j], m2[i][j], s2[i][j])
      end), 1e-13, 1e-14)
      H.assert_close(q:kl(q), grid(function() return 0 end), 0, 1e-15)
      -- E_q[log q - log p] over 200,000 draws, per element: within 5 standard errors.
      lv.manual_seed(11)
      local z = q:sample(200000)
      local diff = q:log_prob(z) - p:log_prob(z)
      local mc, se = diff:mean(1), (diff:var(1) / 200000):sqrt()
      local err = ((mc - q:kl(p)):abs() / se):max():item()
      assert.is_true(err < 5, "Monte Carlo KL off by " .. err .. " standard errors")
    end)

    it("rsample: mean and standard deviation over many draws", function()
      lv.manual_seed(3)
      local mu, sigma = f64({ -1.0, 0.5, 3.0 }), f64({ 0.1, 1.0, 2.5 })
      local n = 40000
      local z = D.Normal(mu, sigma):rsample(n)
      assert.are.same({ n, 3 }, z:size())
      local mean, sd = z:mean(1):totable(), z:var(1):sqrt():totable()
      local m, s = mu:totable(), sigma:totable()
      for j = 1, 3 do
        -- standard errors: sigma / sqrt(n) for the mean, ~ sigma / sqrt(2n) for the sd
        assert.is_true(math.abs(mean[j] - m[j]) < 5 * s[j] / math.sqrt(n), "mean " .. j)
        assert.is_true(math.abs(sd[j] - s[j]) < 5 * s[j] / math.sqrt(2 * n), "sd " .. j)
      end
    end)

    it("rsample is mu + sigma * randn, differentiable in mu and sigma", function()
      local mu, sigma = lv.param(f64({ 1.0, -2.0 })), lv.param(f64({ 0.5, 2.0 }))
      lv.manual_seed(5)
      local z = D.Normal(mu, sigma):rsample(4)
      lv.manual_seed(5)
      local eps = lv.randn({ 4, 2 }, "f64")
      H.assert_close(z, (f64({ 1.0, -2.0 }) + f64({ 0.5, 2.0 }) * eps):totable(), 1e-15)
      assert.is_true(z.needs_grad)
      local g = lv.grad(z:sum(), { mu, sigma })
      H.assert_close(g[1], { 4, 4 }, 1e-15)
      H.assert_close(g[2], eps:sum(1):totable(), 1e-14)
      -- shapes: no n, a list of sizes
      assert.are.same({ 2 }, D.Normal(mu, sigma):rsample():size())
      assert.are.same({ 2, 3, 2 }, D.Normal(mu, sigma):rsample({ 2, 3 }):size())
    end)

    it("sample is off the tape; a generator gives a reproducible stream", function()
      local mu = lv.param(f64({ 1.0, -2.0 }))
      local q = D.Normal(mu, f64({ 1, 1 }))
      local s = q:sample(3)
      assert.is_false(s.needs_grad)
      local a = q:sample(5, lv.Generator(9))
      local b = q:sample(5, lv.Generator(9))
      H.assert_same(a, b:totable())
    end)

    it("f32 parameters give f32 draws and densities", function()
      local q = D.Normal(lv.zeros({ 3 }), lv.ones({ 3 }))
      assert.are.equal("f32", q:rsample(2):dtype())
      assert.are.equal("f32", q:log_prob(lv.zeros({ 3 })):dtype())
      H.assert_close(q:log_prob(lv.zeros({ 3 })), { -0.5 * LOG_2PI, -0.5 * LOG_2PI, -0.5 * LOG_2PI },
                     1e-6)
    end)

    it("gradients of log_prob, entropy and kl (gradcheck and gradgradcheck)", function()
      gradcheck(function(x, mu, sigma) return D.Normal(mu, sigma):log_prob(x) end,
                { f64(X), f64(MU), f64(SIGMA) }, "log_prob")
      gradcheck(function(mu, sigma) return D.Normal(mu, sigma):entropy() end,
                { f64(MU), f64(SIGMA) }, "entropy")
      gradcheck(function(m1, s1, m2, s2) return D.Normal(m1, s1):kl(D.Normal(m2, s2)) end,
                { f64({ 0.5, -1 }), f64({ 0.7, 1.3 }), f64({ 0, 1 }), f64({ 1.1, 0.4 }) }, "kl")
    end)

    it("gradients of log_prob by hand: (x-mu)/sigma^2 and ((x-mu)^2 - sigma^2)/sigma^3", function()
      local mu, sigma = lv.param(f64({ 0.5 })), lv.param(f64({ 2.0 }))
      local g = lv.grad(D.Normal(mu, sigma):log_prob(f64({ 1.5 })):sum(), { mu, sigma })
      H.assert_close(g[1], { 1 / 4 }, 1e-15)
      H.assert_close(g[2], { (1 - 4) / 8 }, 1e-15)
    end)
  end)

  ---- StandardNormal ---------------------------------------------------------------

  describe("StandardNormal", function()
    it("log_prob equals Normal(0, 1)'s and standard_normal_log_prob", function()
      local x = f64(X)
      local sn = D.StandardNormal({ 2, 3 }, "f64")
      local expected = grid(function(i, j) return normal_log_prob(X[i][j], 0, 1) end)
      H.assert_close(sn:log_prob(x), expected, 1e-15, 1e-15)
      H.assert_close(D.standard_normal_log_prob(x), expected, 1e-15, 1e-15)
      H.assert_close(D.Normal(lv.zeros({ 3 }, "f64"), lv.ones({ 3 }, "f64")):log_prob(x),
                     expected, 1e-15, 1e-15)
      H.assert_close(sn:entropy(), grid(function() return 0.5 + 0.5 * LOG_2PI end), 1e-15)
    end)

    it("shape and dtype from a tensor; rsample draws randn", function()
      local like = lv.zeros({ 4, 2 }, "f64")
      local sn = D.StandardNormal(like)
      assert.are.same({ 4, 2 }, sn.batch_shape)
      lv.manual_seed(2)
      local z = sn:rsample(3)
      lv.manual_seed(2)
      H.assert_same(z, lv.randn({ 3, 4, 2 }, "f64"):totable())
      assert.are.equal("f32", D.StandardNormal(5).dtype)
      assert.are.same({ 5 }, D.StandardNormal(5).batch_shape)
    end)

    it("kl of a Normal against it is the VAE's closed form", function()
      local mu, sigma = f64({ 0.5, -1 }), f64({ 0.7, 1.3 })
      local kl = D.Normal(mu, sigma):kl(D.StandardNormal({ 2 }, "f64"))
      local m, s = mu:totable(), sigma:totable()
      H.assert_close(kl, {
        0.5 * (m[1] ^ 2 + s[1] ^ 2 - 1) - math.log(s[1]),
        0.5 * (m[2] ^ 2 + s[2] ^ 2 - 1) - math.log(s[2]),
      }, 1e-14)
    end)
  end)

  ---- Bernoulli --------------------------------------------------------------------

  describe("Bernoulli", function()
    local L = { -4.0, -1.0, -0.1, 0.0, 0.3, 2.0, 5.0 }
    local function sigmoid(l) return 1 / (1 + math.exp(-l)) end

    it("log_prob equals x log p + (1 - x) log(1 - p) for moderate logits", function()
      local b = D.Bernoulli{ logits = f64(L) }
      for _, xv in ipairs({ 0, 1, 0.3 }) do
        local x = lv.full({ #L }, xv, "f64")
        local expected = {}
        for i, l in ipairs(L) do
          local p = sigmoid(l)
          expected[i] = xv * math.log(p) + (1 - xv) * math.log(1 - p)
        end
        H.assert_close(b:log_prob(x), expected, 1e-13, 1e-15, "x = " .. xv)
      end
    end)

    it("log_prob is exact and finite at logits of +-1000, and so is its gradient", function()
      local l = lv.param(f64({ 1000, 1000, -1000, -1000 }))
      local b = D.Bernoulli{ logits = l }
      local lp = b:log_prob(f64({ 1, 0, 1, 0 }))
      H.assert_same(lp, { 0, -1000, -1000, 0 })
      -- d/dl = x - sigmoid(l)
      local g = lv.grad(lp:sum(), { l })[1]
      H.assert_same(g, { 0, -1, 1, 0 })
      for _, v in ipairs(b:entropy():totable()) do
        assert.is_true(v == v and math.abs(v) < 1e-300 or v == 0)
      end
      -- f32 too
      local b32 = D.Bernoulli{ logits = lv.tensor({ 1000, -1000 }) }
      H.assert_same(b32:log_prob(lv.tensor({ 0, 1 })), { -1000, -1000 })
    end)

    it("probs and logits describe the same distribution", function()
      local p = { 0.1, 0.5, 0.75, 0.999 }
      local bp = D.Bernoulli{ probs = f64(p) }
      local expected_logits = {}
      for i, v in ipairs(p) do expected_logits[i] = math.log(v / (1 - v)) end
      H.assert_close(bp.logits, expected_logits, 1e-12, 1e-15)
      H.assert_same(bp.probs, p)
      local bl = D.Bernoulli{ logits = f64(expected_logits) }
      H.assert_close(bl.probs, p, 1e-14)
      local x = f64({ 1, 0, 1, 0 })
      H.assert_close(bp:log_prob(x), bl:log_prob(x):totable(), 1e-12, 1e-15)
      H.assert_close(bp.mean, p, 0)
      H.assert_close(bp.variance, { 0.1 * 0.9, 0.25, 0.75 * 0.25, 0.999 * 0.001 }, 1e-13)
    end)

    it("probs of exactly 0 and 1 give finite log_probs", function()
      local b = D.Bernoulli{ probs = f64({ 0, 1 }) }
      for _, v in ipairs(b:log_prob(f64({ 0, 1 })):totable()) do
        assert.is_true(v == v and v > -1e-10 and v <= 0)
      end
      for _, v in ipairs(b:log_prob(f64({ 1, 0 })):totable()) do
        assert.is_true(v == v and v > -100 and v < -30)
      end
    end)

    it("entropy and kl against closed forms", function()
      local l2 = { 1.0, -2.0, 0.5, 3.0, -0.3, 0.0, -5.0 }
      local b, c = D.Bernoulli{ logits = f64(L) }, D.Bernoulli{ logits = f64(l2) }
      local ent, kl = {}, {}
      for i, l in ipairs(L) do
        local p, q = sigmoid(l), sigmoid(l2[i])
        ent[i] = -p * math.log(p) - (1 - p) * math.log(1 - p)
        kl[i] = p * math.log(p / q) + (1 - p) * math.log((1 - p) / (1 - q))
      end
      H.assert_close(b:entropy(), ent, 1e-12, 1e-15)
      H.assert_close(b:kl(c), kl, 1e-12, 1e-15)
    end)

    it("gradients of log_prob, entropy and kl w.r.t. the logits", function()
      local x = f64({ 1, 0, 0.3, 1, 0, 1, 0 })
      gradcheck(function(l) return D.Bernoulli{ logits = l }:log_prob(x) end, { f64(L) }, "log_prob")
      gradcheck(function(l) return D.Bernoulli{ logits = l }:entropy() end, { f64(L) }, "entropy")
      gradcheck(function(l, m) return D.Bernoulli{ logits = l }:kl(D.Bernoulli{ logits = m }) end,
                { f64({ 0.5, -1 }), f64({ -0.2, 2 }) }, "kl")
      gradcheck(function(p) return D.Bernoulli{ probs = p }:log_prob(f64({ 1, 0 })) end,
                { f64({ 0.3, 0.8 }) }, "log_prob from probs")
    end)

    it("sample: 0/1 values whose mean approaches p", function()
      lv.manual_seed(17)
      local p = { 0.05, 0.5, 0.9 }
      local b = D.Bernoulli{ probs = f64(p) }
      local n = 40000
      local s = b:sample(n)
      assert.are.same({ n, 3 }, s:size())
      assert.is_false(s.needs_grad)
      assert.are.equal(0, (s:ne(0) * s:ne(1)):sum():item())
      local mean = s:mean(1):totable()
      for j = 1, 3 do
        local se = math.sqrt(p[j] * (1 - p[j]) / n)
        assert.is_true(math.abs(mean[j] - p[j]) < 5 * se, "mean " .. j)
      end
      local bl = D.Bernoulli{ logits = lv.param(f64({ 0, 2 })) }
      assert.are.same({ 2 }, bl:sample():size())
      assert.is_false(bl:sample().needs_grad)
      H.assert_same(bl:sample(4, lv.Generator(1)), bl:sample(4, lv.Generator(1)):totable())
    end)
  end)

  ---- errors ---------------------------------------------------------------------------

  describe("errors", function()
    it("Normal", function()
      H.expect_error(function() D.Normal() end, "distributions.Normal", "mu (argument 1)", "nil")
      H.expect_error(function() D.Normal(f64({ 0 })) end, "sigma (argument 2)", "nil")
      H.expect_error(function() D.Normal(f64({ 0 }), "one") end, "sigma", "string")
      H.expect_error(function() D.Normal(f64({ 0, 0 }), f64({ 1, 0 })) end,
                     "sigma must be positive", "1 entry")
      H.expect_error(function() D.Normal(f64({ 0, 0 }), f64({ -1, -2 })) end, "2 entries")
      H.expect_error(function() D.Normal(f64({ 0, 0 }), f64({ 1, 1, 1 })) end,
                     "[2] and sigma [3] cannot be broadcast")
      -- validate = false skips the check
      D.Normal(f64({ 0 }), f64({ -1 }), { validate = false })
      local q = D.Normal(f64({ 0 }), f64({ 1 }))
      H.expect_error(function() q:kl(D.Bernoulli{ logits = f64({ 0 }) }) end, "must be a Normal")
      H.expect_error(function() q:rsample("many") end, "sample count")
      H.expect_error(function() q:log_prob() end, "log_prob", "x")
      H.expect_error(function() D.standard_normal_log_prob(1) end, "x must be a tensor")
      H.expect_error(function() D.StandardNormal() end, "expected a shape or a tensor")
    end)

    it("Bernoulli", function()
      H.expect_error(function() D.Bernoulli(f64({ 0 })) end, "{logits = l}", "a tensor")
      H.expect_error(function() D.Bernoulli{} end, "exactly one of logits and probs")
      H.expect_error(function() D.Bernoulli{ logits = f64({ 0 }), probs = f64({ 0.5 }) } end,
                     "exactly one")
      H.expect_error(function() D.Bernoulli{ logit = f64({ 0 }) } end, "unknown option 'logit'")
      H.expect_error(function() D.Bernoulli{ logits = 0.5 } end, "logits must be a tensor")
      H.expect_error(function() D.Bernoulli{ probs = f64({ 0.5, 1.5, -0.1 }) } end,
                     "probs must lie in [0, 1]", "2 entries")
      H.expect_error(function() D.Bernoulli{ logits = f64({ 0 }) }:kl(3) end, "must be a Bernoulli")
    end)
  end)
end)
