-- estimators_spec.lua -- lua/lvae/estimators.lua over src/estimators.c
-- (SPEC §4), against exact answers.
--
--   * ess: S for equal weights, ~1 for one dominant weight, the direct
--     (Σw)²/Σw² on random weights, exact at log weights of -1e4, NaN kept
--     to its own datapoint;
--   * the streaming log-mean-exp: nll on a scripted model (log weights read
--     from a fixed table, in chunks that do not divide S, from strided
--     views, in f32 and f64) equals the one-shot -log mean exp and ESS of
--     every run; each call asks for at most `chunk` samples; the live
--     tensor memory during nll does not grow with S;
--   * on SPEC §5's LinearGaussian: elbo and iwae are the mean and the
--     log-mean-exp of log_weight, iwae of the exact posterior proposal is
--     log p(x) and so is its gradient; nll with S = 20,000 lies within
--     three standard errors of -log p(x) for proposals whose weights have
--     finite variance (2 Σ_post⁻¹ - Σ_q⁻¹ positive definite, asserted);
--     AIS within 0.05 nats of log p(x);
--   * the Metropolis row selection never lets a rejected NaN through;
--   * the error messages, and an error raised inside log_weight coming out
--     unchanged.

local lv = require "lvae"
local H = require "helpers"

local E = lv.estimators
local C = require("lvae.core")._estimators

local function f64(t) return lv.tensor(t, "f64") end

--- ESS of a list of log weights, computed directly in plain Lua.
local function direct_ess(lw)
  local m = -math.huge
  for _, v in ipairs(lw) do m = math.max(m, v) end
  local s, s2 = 0, 0
  for _, v in ipairs(lw) do
    local w = math.exp(v - m)
    s, s2 = s + w, s2 + w * w
  end
  return s * s / s2
end

--- A model whose log_weight returns the next rows of a fixed [T, B]
-- table of log weights (as a view of `source`, which may be strided).
local function scripted(source)
  local self = { pos = 0, calls = 0, max_n = 0 }
  function self:log_weight(_, n)
    self.calls = self.calls + 1
    self.max_n = math.max(self.max_n, n)
    local out = source:narrow(1, self.pos + 1, n)
    self.pos = self.pos + n
    return out
  end
  return self
end

-- SPEC §5's reference: D = 4, d = 2, three datapoints.
local function reference(extra)
  local args = { W = f64({ { 1.0, 0.5 }, { -0.5, 1.2 }, { 0.3, -0.8 }, { 0.9, 0.1 } }),
                 b = f64({ 0.5, -1.0, 0.25, 0.0 }), sigma = f64({ 0.8, 1.1, 0.6, 1.0 }) }
  for k, v in pairs(extra or {}) do args[k] = v end
  return lv.models.LinearGaussian(args)
end
local X = f64({ { 1.2, -0.3, 0.8, 1.5 }, { -0.7, -2.0, 1.1, -0.4 }, { 0.4, 0.9, -0.6, 0.2 } })

--- Smallest eigenvalue of a symmetric matrix.
local function min_eig(A) return lv.eigh(A)[1]:item() end

describe("estimators", function()
  before_each(function() lv.manual_seed(77) end)

  ---- ess ---------------------------------------------------------------------------------

  describe("ess", function()
    it("is S for equal weights and about 1 for one dominant weight", function()
      local equal = lv.full({ 500, 3 }, -12.5, "f64")
      H.assert_close(E.ess(equal), { 500, 500, 500 }, 1e-13, 0)
      local lw = lv.full({ 1000 }, -60, "f64")
      lw[17] = 0
      local e = E.ess(lw)
      assert.are.equal(0, e:dim())
      assert(math.abs(e:item() - 1) < 1e-20 * 1000 + 1e-15, "one dominant weight: ESS " .. e:item())
      assert.are.equal("f32", E.ess(lv.zeros({ 4, 2 })):dtype())
    end)

    it("equals (Σw)²/Σw² on random weights, stays exact far from 0, keeps NaN to its column", function()
      local lw = lv.randn({ 200, 4 }, "f64") * 2
      local rows = lw:t():totable()
      local expected = {}
      for b = 1, 4 do expected[b] = direct_ess(rows[b]) end
      H.assert_close(E.ess(lw), expected, 1e-12, 0)
      H.assert_close(E.ess(lw - 1e4), expected, 1e-9, 0)
      H.assert_close(E.ess(lw + 1e4), expected, 1e-9, 0)
      H.assert_close(E.ess(lw:t():contiguous():t()), expected, 1e-12, 0)     -- strided
      local with_nan = lw:clone()
      with_nan[5][2] = 0 / 0
      local got = E.ess(with_nan):totable()
      assert(got[2] ~= got[2], "NaN in column 2")
      H.assert_close({ got[1], got[3], got[4] }, { expected[1], expected[3], expected[4] }, 1e-12, 0)
    end)

    it("errors", function()
      H.expect_error(function() E.ess({ 1, 2 }) end, "estimators.ess", "must be a tensor")
      H.expect_error(function() E.ess(lv.zeros({ 2, 2, 2 })) end, "log weights must be [S] or [S, B]", "[2,2,2]")
      H.expect_error(function() E.ess(lv.zeros({ 0, 2 })) end, "no sample")
    end)
  end)

  ---- the streaming NLL ------------------------------------------------------------------------

  describe("nll", function()
    it("streams to the one-shot -log mean exp and ESS of each run, in chunks that need not divide S", function()
      local S, R, B = 1000, 3, 4
      for _, case in ipairs({
        { chunk = 300, dtype = "f64", shift = 0 },
        { chunk = 7, dtype = "f64", shift = -1e4 },     -- exp would underflow
        { chunk = 1000, dtype = "f64", shift = 800 },   -- exp would overflow
        { chunk = 1, dtype = "f32", shift = 0 },
        { chunk = 4096, dtype = "f64", shift = 0, strided = true },
      }) do
        local values = (lv.randn({ R * S, B }, "f64") * 3 + case.shift):to(case.dtype)
        local source = case.strided and values:t():contiguous():t() or values
        local model = scripted(source)
        local nll, se, ess, info = E.nll(model, lv.zeros({ B, 1 }), { samples = S, chunk = case.chunk, runs = R })
        assert.are.equal(math.min(case.chunk, S), model.max_n)
        assert.are.equal(R * math.ceil(S / math.min(case.chunk, S)), model.calls)
        assert.are.same({ R, B }, info.nll_runs:size())
        local v64 = values:to("f64")
        for r = 1, R do
          local run = v64:narrow(1, (r - 1) * S + 1, S)
          local expected = -(run:logsumexp(1) - math.log(S))
          H.assert_close(info.nll_runs[r], expected, 1e-13, 0, "run " .. r)
          local rows = run:t():totable()
          local ess_expected = {}
          for b = 1, B do ess_expected[b] = direct_ess(rows[b]) end
          H.assert_close(info.ess_runs[r], ess_expected, 1e-11, 0, "ess of run " .. r)
        end
        local run_means = info.nll_runs:mean(2):totable()
        local m = (run_means[1] + run_means[2] + run_means[3]) / 3
        local sd = math.sqrt(((run_means[1] - m) ^ 2 + (run_means[2] - m) ^ 2 + (run_means[3] - m) ^ 2) / 2)
        H.assert_close(nll, m, 1e-14, 0)
        H.assert_close(info.sd, sd, 1e-10, 0)
        H.assert_close(se, sd / math.sqrt(3), 1e-10, 0)
        H.assert_close(ess, info.ess_runs:mean():item(), 1e-14, 0)
        assert.are.same({ B }, info.per_datapoint:size())
      end
    end)

    it("one run has no standard error; batches of datapoints give the same per-datapoint answers", function()
      local values = lv.randn({ 50, 5 }, "f64")
      local _, se = E.nll(scripted(values), lv.zeros({ 5, 1 }), { samples = 50, runs = 1 })
      assert(se ~= se, "NaN standard error for one run")
      -- two batches: datapoints 1-3 then 4-5, each reading its own columns
      local cols = { values:narrow(2, 1, 3), values:narrow(2, 4, 2) }
      local k = 0
      local model = { log_weight = function(_, xb, n)
        k = k + 1
        assert.are.equal(k == 1 and 3 or 2, xb:size(1))
        return cols[k]:narrow(1, 1, n)
      end }
      local _, _, _, info = E.nll(model, lv.zeros({ 5, 1 }), { samples = 50, runs = 1, batch = 3 })
      H.assert_close(info.per_datapoint, -(values:logsumexp(1) - math.log(50)), 1e-13, 0)
    end)

    it("by default gives log_weight at most 2^14 rows (batch x chunk) at a time", function()
      local sizes = {}
      local model = { log_weight = function(_, xb, n)
        sizes[#sizes + 1] = { xb:size(1), n }
        return lv.zeros({ n, xb:size(1) }, "f64")
      end }
      E.nll(model, lv.zeros({ 200, 1 }), { samples = 100, chunk = 100, runs = 1 })
      assert.are.same({ { 163, 100 }, { 37, 100 } }, sizes)      -- 163 = 16384 // 100
      sizes = {}
      E.nll(model, lv.zeros({ 3, 1 }), { samples = 20000, chunk = 20000, runs = 1 })
      assert.are.same({ { 1, 20000 }, { 1, 20000 }, { 1, 20000 } }, sizes)
    end)

    it("reports its progress after every chunk, counting weights drawn", function()
      local values = lv.randn({ 30, 5 }, "f64")
      local model = { log_weight = function(_, xb, n) return values:narrow(1, 1, n):narrow(2, 1, xb:size(1)) end }
      local seen = {}
      local plain = E.nll(model, lv.zeros({ 5, 1 }), { samples = 30, chunk = 7, runs = 2, batch = 3 })
      local nll = E.nll(model, lv.zeros({ 5, 1 }), { samples = 30, chunk = 7, runs = 2, batch = 3,
        progress = function(done, total) seen[#seen + 1] = { done, total } end })
      assert.are.equal(plain, nll)
      -- batch 1 (3 points) then batch 2 (2 points); 2 runs of chunks 7, 7, 7, 7, 2
      local expected, done = {}, 0
      for _, nb in ipairs({ 3, 2 }) do
        for _ = 1, 2 do
          for _, n in ipairs({ 7, 7, 7, 7, 2 }) do
            done = done + n * nb
            expected[#expected + 1] = { done, 300 }
          end
        end
      end
      assert.are.same(expected, seen)
      H.expect_error(function() E.nll(model, lv.zeros({ 5, 1 }), { progress = 1 }) end,
                     "estimators.nll", "progress must be a function(done, total) (got number)")
    end)

    it("does not hold more tensor memory for S = 20,000 than for S = 2,000 (chunked)", function()
      local m = reference()
      local function peak(S)
        local worst = 0
        local probe = { log_weight = function(_, x, n)
          local lw = m:log_weight(x, n)
          collectgarbage()
          collectgarbage()
          local st = lv.memory_stats()
          worst = math.max(worst, st.live_bytes - st.cached_bytes)
          return lw
        end }
        E.nll(probe, X, { samples = S, chunk = 500, runs = 1 })
        return worst
      end
      peak(500)                                                  -- warm the cache
      local small, large = peak(2000), peak(20000)
      -- all 20,000 samples at once would hold [20000, 3, 2] f64 tensors (960 KB each)
      assert(large - small < 16 * 1024,
             string.format("in-use bytes grew from %d to %d with S", small, large))
    end)

    it("is within three standard errors of -log p(x) where the weights have finite variance", function()
      local exact = -reference():log_evidence(X):mean():item()
      local _, post_cov = reference():posterior(X)
      local post_mean = reference():posterior(X)
      local post_prec = lv.inverse(post_cov)
      local post_sd = (post_cov * lv.eye(2, 2, "f64")):sum(2):sqrt()      -- [d]
      local cases = {
        { "the prior", nil, lv.eye(2, 2, "f64") },
        { "a wide diagonal encoder", function() return post_mean, (1.3 * post_sd):expand({ 3, 2 }) end,
          lv.eye(2, 2, "f64") * (1.3 * post_sd):square() },
      }
      for _, case in ipairs(cases) do
        local name, encoder, q_cov = case[1], case[2], case[3]
        -- SPEC §5: the variance of w is finite iff 2 Σ_post⁻¹ - Σ_q⁻¹ is positive definite
        assert(min_eig(2 * post_prec - lv.inverse(q_cov)) > 0, name .. ": weights of infinite variance")
        local model = reference(encoder and { encoder = encoder } or nil)
        local nll, se, ess, info = E.nll(model, X, { samples = 20000, chunk = 2500, runs = 10 })
        assert(se > 0 and se < 0.02, name .. ": standard error " .. se)
        assert(math.abs(nll - exact) < 3 * se,
               string.format("%s: nll %.5f, exact %.5f, se %.5f", name, nll, exact, se))
        assert(ess > 100 and ess <= 20000, name .. ": ESS " .. ess)
        assert.are.same({ 10 }, info.run_nll:size())
      end
      -- a narrow proposal fails the condition: its standard error would mean nothing
      local narrow = lv.eye(2, 2, "f64") * (0.6 * post_sd):square()
      assert(min_eig(2 * post_prec - lv.inverse(narrow)) < 0)
    end)

    it("errors, and an error inside log_weight comes out unchanged", function()
      local x = lv.zeros({ 3, 1 })
      H.expect_error(function() E.nll({}, x) end, "estimators.nll", "must have a method log_weight")
      H.expect_error(function() E.nll(reference(), X, { samples = 0 }) end, "samples must be an integer >= 1")
      H.expect_error(function() E.nll(reference(), X, { sample = 10 }) end, "unknown option 'sample'")
      H.expect_error(function() E.nll(reference(), "x") end, "x must be a tensor")
      local wrong = { log_weight = function(_, _, n) return lv.zeros({ n }) end }
      H.expect_error(function() E.nll(wrong, x, { samples = 10 }) end,
        "log_weight(x, 10) must return shape [10,3] (got [10])")
      local not_tensor = { log_weight = function() return 1 end }
      H.expect_error(function() E.nll(not_tensor, x, { samples = 10 }) end, "must return a tensor [n, B] (got number)")
      local raising = { log_weight = function() error("boom in log_weight") end }
      H.expect_error(function() E.nll(raising, x, { samples = 10 }) end, "boom in log_weight")
    end)
  end)

  ---- bounds ----------------------------------------------------------------------------------

  describe("elbo and iwae", function()
    it("are the mean and the log-mean-exp of log_weight", function()
      local m = reference()
      lv.manual_seed(5)
      local lw = m:log_weight(X, 64)
      lv.manual_seed(5)
      H.assert_close(E.elbo(m, X, 64), lw:mean(1), 1e-15, 0)
      lv.manual_seed(5)
      H.assert_close(E.iwae(m, X, 64), lw:logsumexp(1) - math.log(64), 1e-15, 1e-15)
      assert.are.same({ 3 }, E.elbo(m, X):size())
    end)

    it("iwae of the exact posterior is log p(x), and so is its gradient", function()
      local W = lv.param(f64({ { 1.0, 0.5 }, { -0.5, 1.2 }, { 0.3, -0.8 }, { 0.9, 0.1 } }))
      local m = reference({ W = W, proposal = "posterior" })
      local iw = E.iwae(m, X, 16)
      H.assert_close(iw, m:log_evidence(X), 1e-12, 1e-12)
      local g = lv.grad(iw:sum(), { W })[1]
      local g_exact = lv.grad(m:log_evidence(X):sum(), { W })[1]
      H.assert_close(g, g_exact, 1e-10, 1e-10)
    end)

    it("errors", function()
      H.expect_error(function() E.elbo(nil, X) end, "estimators.elbo", "must have a method log_weight")
      H.expect_error(function() E.iwae(reference(), X, 0) end, "estimators.iwae", "S must be an integer >= 1")
    end)
  end)

  ---- AIS ----------------------------------------------------------------------------------------

  describe("ais", function()
    it("is within 0.05 nats of log p(x) with enough steps", function()
      local m = reference()
      local logpx, accept, info = E.ais(m, X, { steps = 2000, chains = 64, leapfrog_steps = 5 })
      H.assert_close(logpx, m:log_evidence(X), 0, 0.05)
      assert(accept > 0.5 and accept < 0.9, "acceptance rate " .. accept)
      assert.are.same({ 64, 3 }, info.log_w:size())
      assert.are.same({ 3 }, info.ess:size())
      assert.are.same({ 3 }, info.step_size:size())
      assert(info.ess:min():item() > 40, "the chains' weights are nearly equal after 2000 steps")
      assert(not logpx.needs_grad)
    end)

    it("few steps give a noisier estimate; the linear schedule and fixed steps work too", function()
      local m = reference()
      local exact = m:log_evidence(X)
      local _, _, few = E.ais(m, X, { steps = 20, chains = 64, leapfrog_steps = 2 })
      local _, _, many = E.ais(m, X, { steps = 400, chains = 64, leapfrog_steps = 2 })
      assert(few.log_w:var(1):mean():item() > 3 * many.log_w:var(1):mean():item(),
             "the variance of log W falls with the number of steps")
      local lp, accept = E.ais(m, X, { steps = 400, chains = 64, schedule = "linear", adapt = false,
                                       step_size = 0.3, leapfrog_steps = 3 })
      H.assert_close(lp, exact, 0, 0.15)
      assert(accept > 0.5)
    end)

    it("errors", function()
      H.expect_error(function() E.ais({}, X) end, "estimators.ais", "must have a method log_likelihood")
      H.expect_error(function() E.ais(reference(), X, { schedule = "cosine" }) end, "unknown schedule 'cosine'")
      H.expect_error(function() E.ais(reference(), X, { step_size = -1 }) end, "step_size must be a positive number")
      H.expect_error(function() E.ais(reference(), X, { chain = 3 }) end, "unknown option 'chain'")
    end)
  end)

  ---- Metropolis selection ------------------------------------------------------------------

  describe("select", function()
    it("takes a's rows where the mask is set and b's elsewhere, NaN in a rejected row stays out", function()
      local mask = f64({ { 1, 0, 1 }, { 0, 0, 1 } })
      local a = lv.full({ 2, 3, 2 }, 0 / 0, "f64")
      a[1][1] = f64({ 1, 2 })
      a[1][3] = f64({ 3, 4 })
      a[2][3] = f64({ 5, 6 })
      local b = lv.full({ 2, 3, 2 }, -1, "f64")
      H.assert_same(C.select(mask, a, b), { { { 1, 2 }, { -1, -1 }, { 3, 4 } },
                                              { { -1, -1 }, { -1, -1 }, { 5, 6 } } })
      H.assert_same(C.select(mask, a:select(3, 1), b:select(3, 1)), { { 1, -1, 3 }, { -1, -1, 5 } })
      H.expect_error(function() C.select(mask, a, b:narrow(3, 1, 1)) end, "shapes differ")
      H.expect_error(function() C.select(f64({ 1, 0, 1 }), a, b) end, "must have the leading dims")
      H.assert_same(C.select(f64({ 0, 1 }), a:narrow(1, 2, 1):expand({ 2, 3, 2 }), b)[2], a[2])
      H.expect_error(function() C.select(mask, a, b:to("f32")) end, "dtypes differ")
    end)
  end)
end)
