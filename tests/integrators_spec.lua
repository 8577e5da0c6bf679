-- The integrators of SPEC §3 against exact answers: each step's
-- log-determinant against the log|det| of a finite-difference Jacobian
-- (LAPACK), each step against one computed by hand from the formulas,
-- gradient-evaluation counts, reversibility, tempering identities, the
-- limits where flows coincide, gradients through the flows, and errors.
local lv = require "lvae"

local d = 3
-- A non-linear potential (a linear model's constant Hessian could not tell
-- a Hessian taken at the wrong point).
local A = lv.tensor({ { 2, 0.3, 0 }, { 0.3, 1, 0.2 }, { 0, 0.2, 1.5 } }, "f64")
local W = lv.tensor({ { 0.5, -0.3 }, { 0.2, 0.8 }, { -0.6, 0.1 } }, "f64")
local function U(z)
  return (z:matmul(A) * z):sum(2) * 0.5 + z:matmul(W):softplus():sum(2)
end
-- Its gradient, by hand: A z + W sigmoid(Wᵀ z).
local function grad_U(z)
  return z:matmul(A) + z:matmul(W):sigmoid():matmul(W:t())
end

local function max_abs(a, b) return (a - b):abs():max():item() end

--- Runs one flow with the noise fixed by the seed; returns z, rho, logdet.
local function run(it, z, rho, K, seed)
  lv.manual_seed(seed or 11)
  local zK, rK, ld, n = it:flow(z, rho, U, K)
  return zK, rK, ld, n
end

--- log|det| of the finite-difference Jacobian of (z, rho) -> flow, for
-- one sample.
local function fd_logdet(it, z, rho, K)
  local has_rho = rho ~= nil
  local n = has_rho and 2 * d or d
  local x = has_rho and lv.cat({ z, rho }, 2):view(n) or z:view(n)
  local eps = 1e-6
  local function F(v)
    local zz = v:narrow(1, 1, d):view(1, d)
    local rr = has_rho and v:narrow(1, d + 1, d):view(1, d) or nil
    local zK, rK = run(it, zz, rr, K)
    return has_rho and lv.cat({ zK, rK }, 2):view(n) or zK:view(n)
  end
  local cols = {}
  for j = 1, n do
    local e = lv.zeros({ n }, "f64")
    e[j] = eps
    cols[j] = (F(x + e) - F(x - e)) / (2 * eps)
  end
  local J = lv.stack(cols, 2)
  return lv.logdet(J):item()
end

local makers = {
  leapfrog = function(o) return lv.integrators.leapfrog(o) end,
  ["leapfrog fixed"] = function(o) o.tempering = "fixed"; o.T0 = 2.0; return lv.integrators.leapfrog(o) end,
  ["leapfrog free"] = function(o) o.tempering = "free"; o.K = 3; return lv.integrators.leapfrog(o) end,
  qsl = function(o) return lv.integrators.qsl(o) end,
  qsl2 = function(o) return lv.integrators.qsl2(o) end,
  euler = function(o) return lv.integrators.euler(o) end,
  ["euler overdamped"] = function(o) o.kind = "overdamped"; return lv.integrators.euler(o) end,
  planar = function(o) return lv.flows.planar({ dim = o.dim, K = 3, dtype = "f64" }) end,
  obabo = function(o) return lv.integrators.obabo(o) end,
}

describe("integrators", function()
  describe("log-determinant equals log|det| of the finite-difference Jacobian", function()
    for name, make in pairs(makers) do
      for _, K in ipairs({ 1, 3 }) do
        it(string.format("%s, %d step%s", name, K, K > 1 and "s" or ""), function()
          lv.manual_seed(5)
          local integ = make({ dim = d, dtype = "f64", step = 0.15, friction = 0.4 })
          local z = lv.randn({ 1, d }, "f64")
          local rho = integ:has_momentum() and lv.randn({ 1, d }, "f64") or nil
          local _, _, ld = run(integ, z, rho, K)
          local want = fd_logdet(integ, z, rho, K)
          local got = ld:item()
          assert(math.abs(got - want) <= 1e-6 * math.max(1, math.abs(want)),
            string.format("%s K=%d: logdet %.12g, finite differences %.12g", name, K, got, want))
        end)
      end
    end
  end)

  describe("one step equals the formulas computed by hand", function()
    local h, gamma = 0.15, 0.4
    local z = lv.tensor({ { 0.3, -0.7, 1.1 }, { -0.2, 0.5, 0.4 } }, "f64")
    local rho = lv.tensor({ { 0.9, 0.1, -0.4 }, { 0.3, -1.2, 0.6 } }, "f64")

    it("leapfrog kicks with g(z) then g(z')", function()
      local integ = lv.integrators.leapfrog{ dim = d, dtype = "f64", step = h }
      local zK, rK = run(integ, z, rho, 1)
      local half = rho - grad_U(z) * (h / 2)
      local z1 = z + half * h
      local r1 = half - grad_U(z1) * (h / 2)
      assert.is_true(max_abs(zK, z1) < 1e-12 and max_abs(rK, r1) < 1e-12)
    end)

    it("qsl drifts, then kicks with g(z') under friction and noise", function()
      local integ = lv.integrators.qsl{ dim = d, dtype = "f64", step = h, friction = gamma }
      local zK, rK = run(integ, z, rho, 1, 99)
      lv.manual_seed(99)
      local xi = lv.randn({ 2, d }, "f64")
      local z1 = z + rho * h
      local decay = math.exp(-gamma * h)
      local r1 = rho * decay - grad_U(z1) * h + xi * math.sqrt(1 - decay * decay)
      assert.is_true(max_abs(zK, z1) < 1e-12 and max_abs(rK, r1) < 1e-12)
    end)

    it("qsl2 is the symmetric splitting", function()
      local integ = lv.integrators.qsl2{ dim = d, dtype = "f64", step = h, friction = gamma }
      local zK, rK = run(integ, z, rho, 1, 99)
      lv.manual_seed(99)
      local xi = lv.randn({ 2, d }, "f64")
      local decay = math.exp(-gamma * h)
      local r = rho - grad_U(z) * (h / 2)
      local zz = z + r * (h / 2)
      r = r * decay + xi * math.sqrt(1 - decay * decay)
      zz = zz + r * (h / 2)
      r = r - grad_U(zz) * (h / 2)
      assert.is_true(max_abs(zK, zz) < 1e-12 and max_abs(rK, r) < 1e-12)
    end)

    -- README.md, "Adding an integrator": the test of the worked example.
    it("obabo: half the friction and noise, leapfrog, the other half", function()
      local integ = lv.integrators.obabo{ dim = d, dtype = "f64", step = h, friction = gamma }
      local zK, rK = run(integ, z, rho, 1, 99)
      lv.manual_seed(99)
      local xi1, xi2 = lv.randn({ 2, d }, "f64"), lv.randn({ 2, d }, "f64")
      local decay = math.exp(-gamma * h / 2)
      local s = math.sqrt(1 - decay * decay)
      local r = rho * decay + xi1 * s - grad_U(z) * (h / 2)
      local z1 = z + r * h
      r = (r - grad_U(z1) * (h / 2)) * decay + xi2 * s
      assert.is_true(max_abs(zK, z1) < 1e-12 and max_abs(rK, r) < 1e-12)
    end)

    it("euler uses g(z) at the old point", function()
      local integ = lv.integrators.euler{ dim = d, dtype = "f64", step = h, friction = gamma }
      local zK, rK = run(integ, z, rho, 1, 99)
      lv.manual_seed(99)
      local xi = lv.randn({ 2, d }, "f64")
      local z1 = z + rho * h
      local r1 = rho * (1 - gamma * h) - grad_U(z) * h + xi * math.sqrt(2 * gamma * h)
      assert.is_true(max_abs(zK, z1) < 1e-12 and max_abs(rK, r1) < 1e-12)
    end)
  end)

  describe("gradient evaluations", function()
    local z = lv.randn({ 2, d }, "f64")
    local rho = lv.randn({ 2, d }, "f64")
    for _, K in ipairs({ 1, 5 }) do
      it("K+1 / 2K uncached / K / K+1 / K / K+1, K = " .. K, function()
        local function count(integ) return select(4, integ:flow(z, rho, U, K)) end
        assert.are.equal(K + 1, count(lv.integrators.leapfrog{ dim = d, dtype = "f64" }))
        assert.are.equal(2 * K, count(lv.integrators.leapfrog{ dim = d, dtype = "f64", cache = false }))
        assert.are.equal(K, count(lv.integrators.qsl{ dim = d, dtype = "f64" }))
        assert.are.equal(K + 1, count(lv.integrators.qsl2{ dim = d, dtype = "f64" }))
        assert.are.equal(K, count(lv.integrators.euler{ dim = d, dtype = "f64" }))
        assert.are.equal(K + 1, count(lv.integrators.obabo{ dim = d, dtype = "f64" }))
      end)
    end
  end)

  describe("U(zK) handed back as stats.potential", function()
    local z = lv.randn({ 2, d }, "f64")
    local rho = lv.randn({ 2, d }, "f64")
    it("where the last force was taken at zK: on the tape with create_graph, values under no_grad", function()
      for _, name in ipairs({ "leapfrog", "leapfrog fixed", "qsl", "qsl2", "obabo" }) do
        local integ = makers[name]({ dim = d, dtype = "f64" })
        local zK, _, _, _, stats = integ:flow(z, rho, U, 3, { create_graph = true })
        assert.is_true(lv.is_tensor(stats.potential), name)
        assert(max_abs(stats.potential, U(zK:detach())) < 1e-14, name)
        assert.is_true(stats.potential.needs_grad, name .. ": on the tape")
        -- d U(zK) / d h through the tape equals finite differences in h
        local h = integ:parameters()[1]
        local base = h:detach():clone()
        local function at(delta)
          lv.no_grad(function() h:copy_(base + delta) end)
          lv.manual_seed(5)
          local _, _, _, _, st = lv.no_grad(function() return integ:flow(z, rho, U, 3) end)
          return st.potential:sum():item()
        end
        local e = 1e-6
        local fd = 0
        for j = 1, d do
          local dv = lv.zeros({ d }, "f64")
          dv[j] = e
          fd = fd + (at(dv) - at(-dv)) / (2 * e)
        end
        lv.no_grad(function() h:copy_(base) end)
        lv.manual_seed(5)
        local _, _, _, _, st = integ:flow(z, rho, U, 3, { create_graph = true })
        local gh = lv.grad(st.potential:sum(), { h })[1]:sum():item()
        assert(math.abs(gh - fd) < 1e-6 * (1 + math.abs(fd)),
               string.format("%s: tape %.10g, finite differences %.10g", name, gh, fd))
        local zN, _, _, _, plain = lv.no_grad(function() return integ:flow(z, rho, U, 3) end)
        assert(max_abs(plain.potential, U(zN)) < 1e-14, name)
        assert.is_false(plain.potential.needs_grad, name)
      end
    end)
    it("absent where the flow ends elsewhere or the graph is gone", function()
      for _, name in ipairs({ "euler", "euler overdamped", "planar" }) do
        local integ = makers[name]({ dim = d, dtype = "f64" })
        local momentum = integ:has_momentum() and rho or nil
        local stats = select(5, integ:flow(z, momentum, U, 2, { create_graph = true }))
        assert.is_nil(stats.potential, name)
      end
      -- grad mode on without create_graph: the potential's graph was freed
      local stats = select(5, lv.integrators.qsl{ dim = d, dtype = "f64" }:flow(z, rho, U, 2))
      assert.is_nil(stats.potential)
    end)
  end)

  describe("identities", function()
    it("without friction and noise, qsl2 and obabo are leapfrog and qsl preserves volume", function()
      lv.manual_seed(3)
      local z, rho = lv.randn({ 4, d }, "f64"), lv.randn({ 4, d }, "f64")
      local lf = lv.integrators.leapfrog{ dim = d, dtype = "f64", step = 0.2 }
      local still = { dim = d, dtype = "f64", step = 0.2, friction = 0, learn = { friction = false },
                      noise = false }
      local z1, r1, ld1 = lf:flow(z, rho, U, 4)
      local z2, r2, ld2 = lv.integrators.qsl2(still):flow(z, rho, U, 4)
      assert.is_true(max_abs(z1, z2) < 1e-12 and max_abs(r1, r2) < 1e-12)
      assert.are.equal(0, ld2:abs():max():item())
      -- obabo's half steps are then products with 1: leapfrog to the last bit
      local z3, r3, ld3 = lv.integrators.obabo(still):flow(z, rho, U, 4)
      assert.are.equal(0, max_abs(z1, z3))
      assert.are.equal(0, max_abs(r1, r3))
      assert.are.equal(0, max_abs(ld1, ld3))
      local q = lv.integrators.qsl(still)
      local _, _, ld = q:flow(z, rho, U, 4)
      assert.are.equal(0, ld:abs():max():item())
      assert.is_true(math.abs(fd_logdet(q, z:narrow(1, 1, 1), rho:narrow(1, 1, 1), 4)) < 1e-6)
    end)

    it("obabo's log-determinant is -K sum_j gamma_j h_j, matched T0 cancels it", function()
      local ob = lv.integrators.obabo{ dim = d, dtype = "f64", step = 0.1, friction = 0.5,
                                       init_temperature = "matched" }
      local _, _, ld = ob:flow(lv.randn({ 2, d }, "f64"), lv.randn({ 2, d }, "f64"), U, 4)
      assert.is_true(max_abs(ld, lv.full({ 2 }, -4 * d * 0.5 * 0.1, "f64")) < 1e-12)
      assert.is_true(max_abs(ob:temperature0(4), lv.full({ d }, math.exp(2 * 0.5 * 0.1 * 4), "f64")) < 1e-12)
    end)

    it("leapfrog is reversible: negate the momentum and integrate back", function()
      lv.manual_seed(4)
      local z, rho = lv.randn({ 3, d }, "f64"), lv.randn({ 3, d }, "f64")
      local lf = lv.integrators.leapfrog{ dim = d, dtype = "f64", step = 0.1 }
      local z1, r1 = lf:flow(z, rho, U, 6)
      local z2, r2 = lf:flow(z1, -r1, U, 6)
      assert.is_true(max_abs(z2, z) < 1e-10 and max_abs(-r2, rho) < 1e-10)
    end)

    it("fixed tempering: T_K = 1 and the product of alphas is T0^(-1/2)", function()
      local K, T0 = 5, 2.7
      local lf = lv.integrators.leapfrog{ dim = d, dtype = "f64", tempering = "fixed", T0 = T0, K = K }
      assert.is_true(math.abs(lf:temperature0(K):item() - T0) < 1e-12)
      local z, rho = lv.zeros({ 1, d }, "f64"), lv.zeros({ 1, d }, "f64")
      local _, _, ld = lf:flow(z, rho, U, K)
      -- log|det| = d sum log alpha_k = d log(T0^(-1/2))
      assert.is_true(math.abs(ld:item() - d * math.log(T0 ^ -0.5)) < 1e-12)
    end)

    it("free tempering: T0 is the product of alpha_k^-2", function()
      local lf = lv.integrators.leapfrog{ dim = d, dtype = "f64", tempering = "free", alpha = 0.8, K = 4 }
      assert.is_true(math.abs(lf:temperature0(4):item() - 0.8 ^ -8) < 1e-9)
    end)

    it("matched temperature is exp(2 sum gamma h) and cancels the friction", function()
      local q = lv.integrators.qsl{ dim = d, dtype = "f64", step = 0.1, friction = 0.5,
                                    init_temperature = "matched" }
      local T0 = q:temperature0(4)
      assert.is_true(max_abs(T0, lv.full({ d }, math.exp(2 * 0.5 * 0.1 * 4), "f64")) < 1e-12)
    end)

    it("a clipped force keeps the log-determinant exact", function()
      lv.manual_seed(8)
      local integ = lv.integrators.leapfrog{ dim = d, dtype = "f64", step = 0.15, clip_force = 0.5 }
      local z = lv.randn({ 1, d }, "f64") * 3
      local rho = lv.randn({ 1, d }, "f64")
      local _, _, ld = run(integ, z, rho, 2)
      assert.is_true(math.abs(ld:item() - fd_logdet(integ, z, rho, 2)) < 1e-6)
      local _, _, _, _, stats = integ:flow(z, rho, U, 2)
      assert.is_true(stats.max_grad[1] > 0.5)      -- the raw force, before clipping
    end)
  end)

  describe("gradients through the flows", function()
    local function check(name, make, K)
      it(name, function()
        lv.manual_seed(21)
        local integ = make()
        local params = integ:parameters()
        assert.is_true(#params > 0)
        local z0 = lv.randn({ 2, d }, "f64")
        local rho0 = integ:has_momentum() and lv.randn({ 2, d }, "f64") or nil
        local function objective(...)
          local values = { ... }
          local state = integ:state_dict()
          -- gradcheck perturbs copies: load them, run, restore.
          local names = {}
          for k in pairs(state) do names[#names + 1] = k end
          table.sort(names)
          lv.manual_seed(77)
          local zK, rK, ld = integ:flow(z0, rho0, U, K, { create_graph = true })
          local out = U(zK):sum() + ld:sum()
          if rK then out = out + rK:square():sum() end
          return out
        end
        local value = objective()
        local grads = lv.grad(value, params)
        -- central differences on each parameter tensor, in place
        for i, p in ipairs(params) do
          local flat = p:view(-1)
          for j = 1, math.min(flat:numel(), 3) do
            local old = flat[j]:item()
            local eps = 1e-6
            lv.no_grad(function() flat[j] = old + eps end)
            local plus = objective():item()
            lv.no_grad(function() flat[j] = old - eps end)
            local minus = objective():item()
            lv.no_grad(function() flat[j] = old end)
            local numeric = (plus - minus) / (2 * eps)
            local tape = grads[i]:view(-1)[j]:item()
            assert(math.abs(tape - numeric) <= 1e-6 * (1 + math.abs(numeric)),
              string.format("%s parameter %d element %d: tape %.10g, numeric %.10g", name, i, j, tape, numeric))
          end
        end
      end)
    end
    check("leapfrog step sizes (per step)", function()
      return lv.integrators.leapfrog{ dim = d, dtype = "f64", per_step = true, K = 3 } end, 3)
    check("leapfrog fixed tempering", function()
      return lv.integrators.leapfrog{ dim = d, dtype = "f64", tempering = "fixed", T0 = 1.8, K = 3 } end, 3)
    check("leapfrog free tempering", function()
      return lv.integrators.leapfrog{ dim = d, dtype = "f64", tempering = "free", K = 3 } end, 3)
    check("qsl step and friction", function()
      return lv.integrators.qsl{ dim = d, dtype = "f64", friction = 0.7 } end, 3)
    check("qsl2 step and friction", function()
      return lv.integrators.qsl2{ dim = d, dtype = "f64", friction = 0.7 } end, 2)
    check("obabo step and friction", function()
      return lv.integrators.obabo{ dim = d, dtype = "f64", friction = 0.7 } end, 3)
    check("euler step and friction (third derivatives)", function()
      return lv.integrators.euler{ dim = d, dtype = "f64", friction = 0.7, step = 0.1 } end, 2)
    check("planar u, w, b", function() return lv.flows.planar{ dim = d, K = 2, dtype = "f64" } end, 2)

    it("reach what the potential depends on (second order through g)", function()
      lv.manual_seed(2)
      local Wp = lv.param(W:clone())
      local function Up(z) return (z:matmul(A) * z):sum(2) * 0.5 + z:matmul(Wp):softplus():sum(2) end
      local integ = lv.integrators.qsl{ dim = d, dtype = "f64" }
      local z0, rho0 = lv.randn({ 2, d }, "f64"), lv.randn({ 2, d }, "f64")
      local function objective(w)
        lv.manual_seed(5)
        local zK, rK = integ:flow(z0, rho0, function(z)
          return (z:matmul(A) * z):sum(2) * 0.5 + z:matmul(w):softplus():sum(2)
        end, 2, { create_graph = true })
        return (zK:square():sum() + rK:square():sum())
      end
      local err = lv.testing.gradcheck(objective, { W })
      assert.is_true(err < 1e-6, "worst error " .. err)
      local _ = Up
    end)
  end)

  describe("noise from the caller's generator", function()
    for _, name in ipairs({ "qsl", "qsl2", "euler", "euler overdamped", "obabo" }) do
      it(name .. ": the same generator state gives the same flow, the default generator untouched", function()
        local integ = makers[name]({ dim = d, dtype = "f64" })
        local z, rho = lv.randn({ 4, d }, "f64"), lv.randn({ 4, d }, "f64")
        if not integ:has_momentum() then rho = nil end
        lv.manual_seed(5)
        local before = lv.randn({ 3 }, "f64")
        lv.manual_seed(5)
        local a = integ:flow(z, rho, U, 3, { gen = lv.Generator(77) })
        local b = integ:flow(z, rho, U, 3, { gen = lv.Generator(77) })
        local c = integ:flow(z, rho, U, 3, { gen = lv.Generator(78) })
        assert.are.equal(0, max_abs(a, b))
        assert.is_true(max_abs(a, c) > 1e-3)
        -- the flows drew nothing from the default generator
        assert.are.equal(0, max_abs(lv.randn({ 3 }, "f64"), before))
      end)
    end
    it("refuses a gen that is not a generator", function()
      local integ = lv.integrators.qsl{ dim = d, dtype = "f64" }
      local ok, err = pcall(integ.flow, integ, lv.zeros({ 2, d }, "f64"), lv.zeros({ 2, d }, "f64"), U, 1,
        { gen = 3 })
      assert.is_false(ok)
      assert.truthy(tostring(err):find("option 'gen' must be a generator", 1, true))
    end)
  end)

  describe("the records (src/integrator_kinds.c)", function()
    it("each kind's constructor makes what its record says, with the record's defaults", function()
      local seen = {}
      for _, kind in ipairs(lv.integrator_kinds()) do
        seen[#seen + 1] = kind.name
        local make = lv[kind.group][kind.name]
        assert.is_function(make, kind.name)
        local integ = make({ dim = 2 })
        assert.are.equal(kind.name, integ:kind())
        assert.are.equal(kind.has_momentum, integ:has_momentum(), kind.name)
        assert.is_true(#kind.options > 0)
        local defaults = {}
        for _, o in ipairs(kind.options) do defaults[o.name] = o.default end
        assert.is_nil(defaults.dim)
        assert.are.equal(1, defaults.K)
        assert.are.equal("f32", defaults.dtype)
        if defaults.step then
          assert.is_true(math.abs(integ:step_size():max():item() - defaults.step) < 1e-6, kind.name)
          assert.are.equal(kind.has_noise, defaults.noise, kind.name)
          assert.are.equal(kind.learnable_friction, defaults.learn.friction, kind.name)
        end
        if kind.has_friction then
          assert.is_true(math.abs(integ:friction():max():item() - defaults.friction) < 1e-6, kind.name)
        else
          assert.has_error(function() integ:friction() end)
        end
        -- an unknown option names every option of the record
        local ok, err = pcall(make, { dim = 2, nosuch = 1 })
        assert.is_false(ok)
        for _, o in ipairs(kind.options) do assert.truthy(tostring(err):find(o.name, 1, true), o.name) end
      end
      assert.are.same({ "leapfrog", "qsl", "qsl2", "euler", "planar", "obabo" }, seen)
    end)

    it("a flow computes the same numbers recorded or not (coefficients once per flow off the tape)", function()
      for name, make in pairs(makers) do
        for _, dtype in ipairs({ "f64", "f32" }) do
          for _, per_step in ipairs({ false, true }) do
            if name ~= "planar" or (dtype == "f64" and not per_step) then
              local o = { dim = d, dtype = dtype, step = 0.15, friction = 0.4 }
              if per_step then o.per_step, o.K = true, 3 end
              local integ = make(o)
              lv.manual_seed(6)
              local z = lv.randn({ 4, d }, dtype)
              local rho = integ:has_momentum() and lv.randn({ 4, d }, dtype) or nil
              local Ud = function(q) return U(q:to("f64")):to(dtype) end
              local a = { integ:flow(z, rho, Ud, 3, { gen = lv.Generator(9) }) }
              local b = { integ:flow(z, rho, Ud, 3, { gen = lv.Generator(9), create_graph = true }) }
              for i = 1, 3 do
                if a[i] then assert.are.equal(0, max_abs(a[i], b[i]:detach()), name .. " " .. dtype) end
              end
            end
          end
        end
      end
    end)
  end)

  it("README.md's 'Adding an integrator' shows the code that runs, line for line", function()
    local read = require("helpers").read_bytes
    local function lines_of(text)
      local out = {}
      for line in (text .. "\n"):gmatch("(.-)\n") do out[#out + 1] = line:match("^%s*(.-)%s*$") end
      return out
    end
    --- Do the lines of block stand, in order and one after another, in
    -- text (leading indentation aside)?
    local function contains(text, block)
      local t, b = lines_of(text), lines_of(block)
      for i = 1, #t - #b + 1 do
        local j = 1
        while j <= #b and t[i + j - 1] == b[j] do j = j + 1 end
        if j > #b then return true end
      end
      return false
    end
    local readme = read("README.md")
    local first = assert(readme:find("\n### Adding an integrator\n", 1, true))
    local last = assert(readme:find("\n### ", first + 1, true))
    local section = readme:sub(first, last)
    local sources = { c = read("src/integrator_kinds.c"), lua = read("tests/integrators_spec.lua") }
    local n = 0
    for lang, block in section:gmatch("\n```(%a+)\n(.-)\n```") do
      n = n + 1
      assert(sources[lang], "a ```" .. lang .. " block")
      assert(contains(sources[lang], block), "not in the source:\n" .. block)
    end
    assert.are.equal(5, n)
  end)

  describe("errors", function()
    local function fails(fn, fragment)
      local ok, err = pcall(fn)
      assert.is_false(ok)
      assert(tostring(err):find(fragment, 1, true), "message: " .. tostring(err))
    end
    it("say what is wrong", function()
      -- sizes beyond the core's int fields are refused, not truncated (2^32 + 4 became 4)
      fails(function() lv.integrators.qsl{ dim = 2 ^ 32 + 4 } end, "up to 16777216")
      fails(function() lv.integrators.leapfrog{ dim = 1e12 } end, "up to 16777216")
      fails(function() lv.flows.planar{ dim = 2 ^ 32 + 4, K = 2 } end, "up to 16777216")
      fails(function()
        lv.integrators.qsl{ dim = 2 }:flow(lv.zeros({ 1, 2 }), lv.zeros({ 1, 2 }), U, 2 ^ 32 + 1)
      end, "K must be at most 100000")
      fails(function() lv.integrators.qsl{ dim = 2 }:temperature0(2 ^ 32 + 1) end, "K must be 0 to 100000")
      fails(function() lv.integrators.qsl{ dim = 2, stepp = 0.1 } end, "unknown option 'stepp'")
      fails(function() lv.integrators.qsl{ dim = 2, stepp = 0.1 } end, "max_step")
      fails(function() lv.integrators.qsl{ step = 0.1 } end, "dim")
      fails(function() lv.integrators.qsl{ dim = 2, step = 0 } end, "step must be > 0")
      fails(function() lv.integrators.qsl{ dim = 2, step = 0.6 } end, "below max_step")
      fails(function() lv.integrators.qsl{ dim = 2, friction = -1 } end, "friction")
      fails(function() lv.integrators.leapfrog{ dim = 2, tempering = "warm" } end, "unknown tempering")
      fails(function() lv.integrators.euler{ dim = 2, clip_force = 1 } end, "clip_force is refused")
      fails(function() lv.integrators.euler{ dim = 2, kind = "sideways" } end, "underdamped")
      -- a mistyped option is refused even where its value would not be used
      fails(function() lv.integrators.leapfrog{ dim = 2, T0 = "x" } end, "option 'T0' must be a number")
      fails(function() lv.integrators.obabo{ dim = 2, friction = 0 } end, "a learned friction")
      local integ = lv.integrators.qsl{ dim = 2, dtype = "f64" }
      local z, rho = lv.zeros({ 3, 2 }, "f64"), lv.zeros({ 3, 2 }, "f64")
      fails(function() integ:flow(z, rho, U, 0) end, "K must be at least 1")
      fails(function() integ:flow(lv.zeros({ 3, 4 }, "f64"), rho, U, 1) end, "z0 must be [B, 2]")
      fails(function() integ:flow(z, lv.zeros({ 2, 2 }, "f64"), U, 1) end, "rho0 must be [B, 2]")
      fails(function() integ:flow(z, rho, function(zz) return zz:sum() end, 1) end,
        "must return U of shape [3]")
      fails(function() integ:flow(z, rho, function() error("boom") end, 1) end, "boom")
      local per = lv.integrators.qsl{ dim = 2, dtype = "f64", per_step = true, K = 2 }
      fails(function() per:flow(z, rho, U, 3) end, "parameters for 2 steps")
    end)
  end)

  it("euler trains at d above the old 24-input limit of stack's backward", function()
    local dd = 30
    local e = lv.integrators.euler{ dim = dd, dtype = "f64", step = 0.05 }
    local z = lv.param(lv.randn({ 2, dd }, "f64"))
    local rho = lv.randn({ 2, dd }, "f64")
    local zK, _, ld = e:flow(z, rho, function(q) return q:square():sum(2) * 0.5 + q:softplus():sum(2) end,
                             1, { create_graph = true })
    local g = lv.grad(ld:sum() + zK:sum(), { z })[1]
    assert.are.same({ 2, dd }, g:size())
    -- and a stack of 40 tensors differentiates
    local ps = {}
    for i = 1, 40 do ps[i] = lv.param(lv.full({ 3 }, i, "f64")) end
    local grads = lv.grad(lv.stack(ps, 1):square():sum(), ps)
    assert.are.equal(80, grads[40][1]:item())
  end)

  it("amortized planar: per-sample u, w, b; log-det against finite differences; FlowVAE passes them", function()
    lv.manual_seed(12)
    local flow = lv.flows.planar{ dim = d, amortized = true, dtype = "f64" }
    assert.are.equal(0, #flow:parameters())
    local params = { u = lv.randn({ 1, 2, d }, "f64"), w = lv.randn({ 1, 2, d }, "f64"),
                     b = lv.randn({ 1, 2 }, "f64") }
    local z = lv.randn({ 1, d }, "f64")
    local function F(zz) return (flow:flow(zz, nil, U, 2, { params = params })) end
    local _, rho, ld = flow:flow(z, nil, U, 2, { params = params })
    assert.is_nil(rho)
    local cols = {}
    for j = 1, d do
      local e = lv.zeros({ 1, d }, "f64")
      e[1][j] = 1e-6
      cols[j] = ((F(z + e) - F(z - e)) / 2e-6):view(d)
    end
    local want = lv.logdet(lv.stack(cols, 2)):item()
    assert.is_true(math.abs(ld:item() - want) < 1e-6 * math.max(1, math.abs(want)))
    -- errors: missing parameters, wrong shapes, parameters for a global flow
    assert.has_error(function() flow:flow(z, nil, U, 1) end)
    assert.has_error(function() flow:flow(z, nil, U, 3, { params = params }) end)
    local global = lv.flows.planar{ dim = d, K = 2, dtype = "f64" }
    assert.has_error(function() global:flow(z, nil, U, 1, { params = params }) end)
    -- through a FlowVAE whose encoder returns the parameters
    local D = 4
    local Wd = lv.param(lv.randn({ D, d }, "f64") * 0.3)
    local Wu = lv.param(lv.randn({ D, 2 * d }, "f64") * 0.1)
    local function enc(x)
      local B = x:size(1)
      return x:matmul(lv.randn({ D, d }, "f64") * 0), lv.ones({ B, d }, "f64"),
             { u = x:matmul(Wu):view(B, 2, d), w = x:matmul(Wu):view(B, 2, d) + 0.5,
               b = lv.zeros({ B, 2 }, "f64") }
    end
    local m = lv.models.FlowVAE{ encoder = enc, decoder = function(q) return q:matmul(Wd:t()) end,
                                 flow = flow, K = 2 }
    local x = lv.bernoulli({ 3, D }, 0.5, "f64")
    assert.are.same({ 5, 3 }, m:log_weight(x, 5):size())
    local g = lv.grad(m:elbo(x):sum(), { Wu })[1]
    assert.is_true(g:abs():sum():item() > 0)
  end)
end)

describe("an error raised by the potential", function()
  it("reaches the caller: a message with its text kept at the end, any other value unchanged", function()
    local flow = lv.integrators.qsl{ dim = 2, K = 2 }
    local z = lv.randn({ 3, 2 })
    local function run_with(U) return pcall(function() return flow:flow(z, flow:init_momentum(3, 2), U, 2) end) end
    local ok, msg = run_with(function() error("interrupted!", 0) end)
    assert.is_false(ok)
    assert.are.equal("flow: the potential U raised an error: interrupted!", msg)
    local object = setmetatable({ what = "diverged" }, {})
    local ok2, raised = run_with(function() error(object) end)
    assert.is_false(ok2)
    assert.are.equal(object, raised)
    -- the flow is usable afterwards
    local zK = flow:flow(z, flow:init_momentum(3, 2), function(x) return x:square():sum(2) * 0.5 end, 2)
    assert.are.same({ 3, 2 }, zK:size())
  end)
end)
