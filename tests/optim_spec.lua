-- optim_spec.lua -- lua/lvae/optim.lua: SGD, Adam, Adamax (SPEC §6.2),
-- RMSProp (PyTorch's and TensorFlow 1's form, SPEC §6.1), gradient
-- clipping, learning-rate schedules, state dicts.
--
--   * the first three updates of each optimizer on a small f64 parameter
--     with a known gradient (loss_t = sum(w * c_t), so the gradient at step
--     t is c_t, or c_t + wd w with weight decay), against the textbook
--     formulas written out below element by element in plain Lua;
--   * clipping by global norm, schedules' learning rates over epochs;
--   * a state dict taken after two steps, copied through plain Lua values
--     (and lv.save/lv.load when they exist), continues exactly as the
--     uninterrupted optimizer;
--   * every optimizer minimises 0.5 x'Ax - b'x (A SPD 3x3) to A^-1 b;
--   * the .grad route (backward, update, zero_grad), f32 parameters,
--     parameter groups, unused parameters and the error messages.

local lv = require "lvae"
local optim = require "lvae.optim"
local H = require "helpers"

local W0 = { 1.0, -2.0, 0.5 }
-- The gradient of step t (without weight decay).
local C = {
  { 0.5, -1.5, 2.0 },
  { -0.25, 1.0, 0.125 },
  { 1.0, 0.5, -3.0 },
}

local function f64(t) return lv.tensor(t, "f64") end

--- Runs n steps of opt on w with loss_t = sum(w * c_t); returns w's
-- values after each step (a list of Lua lists).
local function run(opt, w, n, first)
  local out = {}
  for t = first or 1, (first or 1) + n - 1 do
    local c = f64(C[(t - 1) % #C + 1])
    opt:step((w * c):sum())
    out[#out + 1] = w:totable()
  end
  return out
end

local function check_steps(got, expected, tol)
  for t = 1, #expected do
    H.assert_close(got[t], expected[t], tol or 1e-13, tol or 1e-15, "step " .. t)
  end
end

local function copy(list)
  local out = {}
  for i, v in ipairs(list) do out[i] = v end
  return out
end

--- The gradient of step t at w: c_t + wd w.
local function grad(t, w, wd)
  local g = {}
  for i = 1, #w do g[i] = C[t][i] + (wd or 0) * w[i] end
  return g
end

describe("optim", function()
  ---- SGD ----------------------------------------------------------------------

  describe("SGD", function()
    -- Reference: g = c + wd w; b_1 = g, b_t = mu b_{t-1} + (1 - damp) g;
    -- d = g + mu b (Nesterov) or b (momentum) or g (plain); w -= lr d.
    local function reference(o)
      local w, b, out = copy(W0), nil, {}
      for t = 1, 3 do
        local g = grad(t, w, o.weight_decay)
        local d = {}
        if (o.momentum or 0) ~= 0 then
          local nb = {}
          for i = 1, 3 do
            nb[i] = b and (o.momentum * b[i] + (1 - (o.dampening or 0)) * g[i]) or g[i]
          end
          b = nb
          for i = 1, 3 do d[i] = o.nesterov and (g[i] + o.momentum * b[i]) or b[i] end
        else
          d = g
        end
        for i = 1, 3 do w[i] = w[i] - o.lr * d[i] end
        out[t] = copy(w)
      end
      return out
    end

    local cases = {
      { name = "plain", o = { lr = 0.1 } },
      { name = "momentum", o = { lr = 0.1, momentum = 0.9 } },
      { name = "momentum with dampening", o = { lr = 0.1, momentum = 0.9, dampening = 0.3 } },
      { name = "nesterov", o = { lr = 0.1, momentum = 0.9, nesterov = true } },
      { name = "weight decay", o = { lr = 0.1, weight_decay = 0.05 } },
      { name = "weight decay, nesterov", o = { lr = 0.05, momentum = 0.5, nesterov = true,
                                               weight_decay = 0.2 } },
    }
    for _, case in ipairs(cases) do
      it(case.name .. ": three steps equal the formula", function()
        local w = lv.param(f64(W0))
        check_steps(run(optim.SGD({ w }, case.o), w, 3), reference(case.o))
      end)
    end

    it("a plain step by hand", function()
      local w = lv.param(f64(W0))
      optim.SGD({ w }, { lr = 0.5 }):step((w * f64(C[1])):sum())
      -- 1 - 0.5*0.5, -2 - 0.5*(-1.5), 0.5 - 0.5*2
      H.assert_close(w, { 0.75, -1.25, -0.5 }, 1e-15)
    end)
  end)

  ---- Adam -----------------------------------------------------------------------

  describe("Adam", function()
    -- Reference: m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2; vhat = max
    -- (amsgrad) or v; w -= lr/(1-b1^t) * m / (sqrt(vhat)/sqrt(1-b2^t) + eps).
    local function reference(o)
      local b1, b2 = o.betas and o.betas[1] or 0.9, o.betas and o.betas[2] or 0.999
      local eps = o.eps or 1e-8
      local w, m, v, vmax, out = copy(W0), { 0, 0, 0 }, { 0, 0, 0 }, { 0, 0, 0 }, {}
      for t = 1, 3 do
        local g = grad(t, w, o.weight_decay)
        for i = 1, 3 do
          m[i] = b1 * m[i] + (1 - b1) * g[i]
          v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i]
          vmax[i] = math.max(vmax[i], v[i])
          local vhat = o.amsgrad and vmax[i] or v[i]
          local denom = math.sqrt(vhat) / math.sqrt(1 - b2 ^ t) + eps
          w[i] = w[i] - o.lr / (1 - b1 ^ t) * m[i] / denom
        end
        out[t] = copy(w)
      end
      return out
    end

    local cases = {
      { name = "defaults", o = { lr = 0.1 } },
      { name = "betas and eps", o = { lr = 0.05, betas = { 0.5, 0.9 }, eps = 1e-3 } },
      { name = "weight decay", o = { lr = 0.1, weight_decay = 0.1 } },
      { name = "amsgrad", o = { lr = 0.1, betas = { 0.8, 0.5 }, amsgrad = true } },
    }
    for _, case in ipairs(cases) do
      it(case.name .. ": three steps equal the formula (with bias correction)", function()
        local w = lv.param(f64(W0))
        check_steps(run(optim.Adam({ w }, case.o), w, 3), reference(case.o))
      end)
    end

    it("the first step moves each coordinate by lr against the gradient's sign", function()
      -- m_1 / (1 - b1) = g and sqrt(v_1 / (1 - b2)) = |g|: a step of lr.
      local w = lv.param(f64(W0))
      optim.Adam({ w }, { lr = 0.01, eps = 0 }):step((w * f64(C[1])):sum())
      H.assert_close(w, { 1 - 0.01, -2 + 0.01, 0.5 - 0.01 }, 1e-14)
    end)
  end)

  ---- Adamax -------------------------------------------------------------------

  describe("Adamax (SPEC §6.2)", function()
    -- m = b1 m + (1-b1) g; u = max(b2 u, |g|) (u_0 = 0);
    -- w -= lr/(1-b1^t) * m/(u + eps)  -- eps outside the max.
    local function reference(o)
      local b1, b2 = o.betas and o.betas[1] or 0.9, o.betas and o.betas[2] or 0.999
      local eps = o.eps or 1e-8
      local w, m, u, out = copy(W0), { 0, 0, 0 }, { 0, 0, 0 }, {}
      for t = 1, 3 do
        local g = grad(t, w, o.weight_decay)
        for i = 1, 3 do
          m[i] = b1 * m[i] + (1 - b1) * g[i]
          u[i] = math.max(b2 * u[i], math.abs(g[i]))
          w[i] = w[i] - o.lr / (1 - b1 ^ t) * m[i] / (u[i] + eps)
        end
        out[t] = copy(w)
      end
      return out
    end

    it("three steps equal the formula (defaults)", function()
      local w = lv.param(f64(W0))
      check_steps(run(optim.Adamax({ w }, { lr = 0.1 }), w, 3), reference({ lr = 0.1 }))
    end)

    it("three steps equal the formula (the experiments' eps, large eps visible)", function()
      for _, o in ipairs({ { lr = 5e-4, eps = 1e-7 }, { lr = 0.1, eps = 0.5, betas = { 0.7, 0.6 } } }) do
        local w = lv.param(f64(W0))
        check_steps(run(optim.Adamax({ w }, o), w, 3), reference(o))
      end
    end)

    it("eps is added to u, not inside the max (differs from PyTorch's form)", function()
      -- One step with g = c_1, eps = 0.5: w -= lr * g / (|g| + 0.5);
      -- PyTorch's max(b2 u, |g| + eps) would give the same here, so take
      -- a second step where b2 u_1 > |g_2| + eps decides: coordinate 3
      -- (u_1 = 2, b2 = 0.999, |g_2| = 0.125).
      local w = lv.param(f64(W0))
      local out = run(optim.Adamax({ w }, { lr = 0.1, eps = 0.5 }), w, 2)
      local m3 = 0.9 * (0.1 * 2.0) + 0.1 * 0.125
      local u3 = math.max(0.999 * 2.0, 0.125)
      local w3 = 0.5 - 0.1 * 2.0 / (2.0 + 0.5)
      w3 = w3 - 0.1 / (1 - 0.9 ^ 2) * m3 / (u3 + 0.5)
      H.assert_close(out[2][3], w3, 1e-14)
    end)
  end)

  ---- RMSProp ------------------------------------------------------------------

  describe("RMSProp", function()
    -- PyTorch: v = a v + (1-a) g^2 (v_0 = 0); c = a c + (1-a) g;
    -- d = sqrt(v - c^2 [centered] or v) + eps; b = mu b + g/d; w -= lr b.
    local function reference_torch(o)
      local a, eps, mu = o.alpha or 0.99, o.eps or 1e-8, o.momentum or 0
      local w, v, c, b, out = copy(W0), { 0, 0, 0 }, { 0, 0, 0 }, { 0, 0, 0 }, {}
      for t = 1, 3 do
        local g = grad(t, w, o.weight_decay)
        for i = 1, 3 do
          v[i] = a * v[i] + (1 - a) * g[i] * g[i]
          c[i] = a * c[i] + (1 - a) * g[i]
          local d = math.sqrt(o.centered and (v[i] - c[i] * c[i]) or v[i]) + eps
          if mu ~= 0 then
            b[i] = mu * b[i] + g[i] / d
            w[i] = w[i] - o.lr * b[i]
          else
            w[i] = w[i] - o.lr * g[i] / d
          end
        end
        out[t] = copy(w)
      end
      return out
    end

    -- TensorFlow 1: v_0 = 1; v = a v + (1-a) g^2 (a = 0.9 by default);
    -- b = mu b + lr g / sqrt(v + eps) (eps = 1e-10 by default, inside the
    -- root); w -= b.
    local function reference_tf(o)
      local a, eps, mu = o.alpha or 0.9, o.eps or 1e-10, o.momentum or 0
      local w, v, b, out = copy(W0), { 1, 1, 1 }, { 0, 0, 0 }, {}
      for t = 1, 3 do
        local g = grad(t, w, o.weight_decay)
        for i = 1, 3 do
          v[i] = a * v[i] + (1 - a) * g[i] * g[i]
          b[i] = mu * b[i] + o.lr * g[i] / math.sqrt(v[i] + eps)
          w[i] = w[i] - b[i]
        end
        out[t] = copy(w)
      end
      return out
    end

    local torch_cases = {
      { name = "defaults", o = { lr = 0.01 } },
      { name = "alpha and eps", o = { lr = 0.1, alpha = 0.5, eps = 0.25 } },
      { name = "centered", o = { lr = 0.1, alpha = 0.8, centered = true } },
      { name = "momentum and weight decay", o = { lr = 0.1, momentum = 0.7, weight_decay = 0.1 } },
    }
    for _, case in ipairs(torch_cases) do
      it("PyTorch form, " .. case.name .. ": three steps equal the formula", function()
        local w = lv.param(f64(W0))
        check_steps(run(optim.RMSProp({ w }, case.o), w, 3), reference_torch(case.o))
      end)
    end

    local tf_cases = {
      { name = "SPEC §6.1 settings", o = { lr = 1e-3, tf_style = true, eps = 1e-10 } },
      { name = "defaults (decay 0.9, eps 1e-10)", o = { lr = 0.1, tf_style = true } },
      { name = "large eps inside the root", o = { lr = 0.1, tf_style = true, eps = 3, alpha = 0.5 } },
      { name = "momentum", o = { lr = 0.1, tf_style = true, momentum = 0.9 } },
    }
    for _, case in ipairs(tf_cases) do
      it("TensorFlow 1 form, " .. case.name .. ": three steps equal the formula", function()
        local w = lv.param(f64(W0))
        check_steps(run(optim.RMSProp({ w }, case.o), w, 3), reference_tf(case.o))
      end)
    end

    it("TensorFlow 1 form: the accumulator starts at 1 (a first step by hand)", function()
      local w = lv.param(f64(W0))
      optim.RMSProp({ w }, { lr = 0.1, tf_style = true, eps = 0 }):step((w * f64(C[1])):sum())
      -- v_1 = 0.9 + 0.1 g^2; coordinate 3: g = 2, v = 1.3.
      H.assert_close(w:totable()[3], 0.5 - 0.1 * 2 / math.sqrt(1.3), 1e-15)
      local opt = optim.RMSProp({ w }, { tf_style = true })
      assert.are.equal(0.9, opt.groups[1].alpha)
      assert.are.equal(1e-10, opt.groups[1].eps)
    end)
  end)

  ---- clipping ------------------------------------------------------------------

  describe("gradient clipping", function()
    local norm1 = math.sqrt(0.5 ^ 2 + 1.5 ^ 2 + 2 ^ 2)

    it("clip_norm scales the gradient to the given global norm", function()
      local w = lv.param(f64(W0))
      local v = lv.param(f64({ 3.0 }))
      local opt = optim.SGD({ w, v }, { lr = 1, clip_norm = 1 })
      opt:step((w * f64(C[1])):sum() + (v * 4):sum())
      local norm = math.sqrt(norm1 ^ 2 + 16)
      H.assert_close(opt.grad_norm, norm, 1e-15)
      local s = 1 / (norm + 1e-6)
      local expected = {}
      for i = 1, 3 do expected[i] = W0[i] - C[1][i] * s end
      H.assert_close(w, expected, 1e-14)
      H.assert_close(v, { 3 - 4 * s }, 1e-14)
    end)

    it("clip_norm leaves a small gradient alone", function()
      local w = lv.param(f64(W0))
      local opt = optim.SGD({ w }, { lr = 1, clip_norm = 10 })
      opt:step((w * f64(C[1])):sum())
      H.assert_close(opt.grad_norm, norm1, 1e-15)
      H.assert_close(w, { 0.5, -0.5, -1.5 }, 1e-15)
    end)

    it("clip_norm works with Adam (the clipped gradient goes into the moments)", function()
      local w = lv.param(f64(W0))
      run(optim.Adam({ w }, { lr = 0.1, clip_norm = 0.5 }), w, 2)
      -- Reference: Adam on g_t scaled by 0.5 / (|g_t| + 1e-6).
      local m, v, x = { 0, 0, 0 }, { 0, 0, 0 }, copy(W0)
      for t = 1, 2 do
        local n = 0
        for i = 1, 3 do n = n + C[t][i] ^ 2 end
        local s = 0.5 / (math.sqrt(n) + 1e-6)
        for i = 1, 3 do
          local g = C[t][i] * (s < 1 and s or 1)
          m[i] = 0.9 * m[i] + 0.1 * g
          v[i] = 0.999 * v[i] + 0.001 * g * g
          x[i] = x[i] - 0.1 / (1 - 0.9 ^ t) * m[i] / (math.sqrt(v[i]) / math.sqrt(1 - 0.999 ^ t) + 1e-8)
        end
      end
      H.assert_close(w, x, 1e-13)
    end)

    it("clip_grad_norm on parameters replaces .grad and returns the norm before", function()
      local w = lv.param(f64(W0))
      local unused = lv.param(f64({ 1.0 }))
      ;(w * f64(C[1])):sum():backward()
      local n = optim.clip_grad_norm({ w, unused }, 1)
      H.assert_close(n, norm1, 1e-15)
      local s = 1 / (norm1 + 1e-6)
      H.assert_close(w.grad, { 0.5 * s, -1.5 * s, 2 * s }, 1e-15)
      assert.is_nil(unused.grad)
      local grad_norm = math.sqrt(w.grad:square():sum():item())
      assert.is_true(grad_norm <= 1)
    end)

    it("clip_grad_norm on a list of gradients replaces the entries", function()
      local grads = { f64({ 3, 4 }), f64({ { 12 } }) }
      local n, out = optim.clip_grad_norm(grads, 6.5)
      H.assert_close(n, 13, 1e-15)
      assert.are.equal(grads, out)
      local s = 6.5 / (13 + 1e-6)
      H.assert_close(grads[1], { 3 * s, 4 * s }, 1e-15)
      H.assert_close(grads[2], { { 12 * s } }, 1e-15)
      local n2, single = optim.clip_grad_norm(f64({ 0.3, 0.4 }), 1)
      H.assert_close(n2, 0.5, 1e-15)
      H.assert_close(single, { 0.3, 0.4 }, 0)
    end)

    it("a non-finite gradient gives a non-finite norm (PyTorch's behaviour)", function()
      local n, out = optim.clip_grad_norm({ f64({ 1, 0 / 0 }) }, 1)
      assert.is_true(n ~= n)
      local v = out[1]:totable()
      assert.is_true(v[1] ~= v[1])
    end)
  end)

  ---- schedules -----------------------------------------------------------------

  describe("schedules", function()
    local function make(lr)
      return optim.SGD({ lv.param(f64({ 0 })) }, { lr = lr })
    end

    it("step: lr = base gamma^floor(epoch / step_size)", function()
      local opt = make(0.1)
      local s = optim.schedules.step(opt, { step_size = 3, gamma = 0.5 })
      assert.are.equal(0.1, opt.lr)
      for epoch = 1, 10 do
        s:step()
        H.assert_close(opt.lr, 0.1 * 0.5 ^ (epoch // 3), 1e-15, 0, "epoch " .. epoch)
      end
      -- by hand: epochs 0-2 0.1, 3-5 0.05, 6-8 0.025, 9-10 0.0125
      H.assert_close(opt.lr, 0.0125, 1e-15)
    end)

    it("step: gamma defaults to 0.1", function()
      local opt = make(1)
      local s = optim.schedules.step(opt, { step_size = 2 })
      s:step(); s:step()
      H.assert_close(opt.lr, 0.1, 1e-15)
    end)

    it("cosine: lr = eta_min + (base - eta_min)(1 + cos(pi epoch / T_max)) / 2", function()
      local opt = make(0.2)
      local s = optim.schedules.cosine(opt, { T_max = 8, eta_min = 0.01 })
      assert.are.equal(0.2, opt.lr)
      for epoch = 1, 12 do
        local lr = s:step()
        local expected = 0.01 + (0.2 - 0.01) * (1 + math.cos(math.pi * epoch / 8)) / 2
        H.assert_close(lr, expected, 1e-14, 0, "epoch " .. epoch)
        H.assert_close(opt.lr, expected, 1e-14, 0, "epoch " .. epoch)
      end
    end)

    it("cosine: eta_min defaults to 0; half way is base/2, the end is 0", function()
      local opt = make(0.4)
      local s = optim.schedules.cosine(opt, { T_max = 4 })
      s:step(); s:step()
      H.assert_close(opt.lr, 0.2, 1e-15)
      s:step(); s:step()
      H.assert_close(opt.lr, 0, 0, 1e-17)
    end)

    it("each group keeps its own base lr", function()
      local a, b = lv.param(f64({ 0 })), lv.param(f64({ 0 }))
      local opt = optim.SGD({ { params = { a }, lr = 1 }, { params = { b }, lr = 0.1 } })
      local s = optim.schedules.step(opt, { step_size = 1, gamma = 0.5 })
      s:step()
      local lrs = s:get_last_lr()
      H.assert_close(lrs, { 0.5, 0.05 }, 1e-15)
    end)

    it("state_dict round trip continues the schedule", function()
      local opt = make(0.3)
      local s = optim.schedules.cosine(opt, { T_max = 10, eta_min = 0.001 })
      for _ = 1, 4 do s:step() end
      local saved = s:state_dict()
      local opt2 = make(99)
      local s2 = optim.schedules.cosine(opt2, { T_max = 1 })
      s2:load_state_dict(saved)
      assert.are.equal(opt.lr, opt2.lr)
      assert.are.equal(s:step(), s2:step())
      local wrong = optim.schedules.step(make(1), { step_size = 1 })
      H.expect_error(function() wrong:load_state_dict(saved) end, "'cosine' schedule")
    end)

    it("errors", function()
      H.expect_error(function() optim.schedules.step(make(1), {}) end, "step_size")
      H.expect_error(function() optim.schedules.step(make(1), { step_size = 1.5 }) end,
                     "positive integer")
      H.expect_error(function() optim.schedules.cosine(make(1), { T_max = 0 }) end, "T_max")
      H.expect_error(function() optim.schedules.cosine({}, { T_max = 1 }) end, "optimizer")
      H.expect_error(function() optim.schedules.cosine(make(1), { T_max = 1, Tmax = 2 }) end,
                     "unknown option 'Tmax'")
    end)
  end)

  ---- state dicts ----------------------------------------------------------------

  describe("state_dict", function()
    --- A deep copy made of plain Lua values only (tensors rebuilt from
    -- :totable()), failing on anything lv.save could not write.
    local function plain_copy(v, path)
      path = path or "state"
      if lv.is_tensor(v) then
        return lv.tensor(v:totable(), v:dtype())
      elseif type(v) == "table" then
        local out = {}
        for k, x in pairs(v) do
          assert(type(k) == "string" or math.type(k) == "integer",
                 path .. ": a key of type " .. type(k))
          out[k] = plain_copy(x, path .. "." .. tostring(k))
        end
        return out
      else
        assert(type(v) == "number" or type(v) == "string" or type(v) == "boolean",
               path .. " is a " .. type(v))
        return v
      end
    end

    local configs = {
      { "SGD", { lr = 0.1, momentum = 0.9, nesterov = true } },
      { "Adam", { lr = 0.1, amsgrad = true } },
      { "Adamax", { lr = 0.1 } },
      { "RMSProp", { lr = 0.1, centered = true, momentum = 0.5 } },
      { "RMSProp", { lr = 0.1, tf_style = true, momentum = 0.5 } },
    }
    for _, cfg in ipairs(configs) do
      local name, o = cfg[1], cfg[2]
      it(name .. (o.tf_style and " (tf_style)" or "") ..
         ": continuing from a saved state equals the uninterrupted run", function()
        local w = lv.param(f64(W0))
        local opt = optim[name]({ w }, o)
        run(opt, w, 2)
        local saved = plain_copy(opt:state_dict())
        local w_saved = w:totable()
        local after = run(opt, w, 1, 3)[1]

        local w2 = lv.param(f64(w_saved))
        local opt2 = optim[name]({ w2 }, { lr = 123 })   -- options come from the state
        opt2:load_state_dict(saved)
        assert.are.equal(0.1, opt2.lr)
        assert.are.equal(2, opt2.steps)
        local after2 = run(opt2, w2, 1, 3)[1]
        H.assert_same(after2, after)
      end)
    end

    it("survives lv.save / lv.load", function()
      if not (lv.save and lv.load) then
        pending("lv.save and lv.load are not there yet")
        return
      end
      local w = lv.param(f64(W0))
      local opt = optim.Adam({ w }, { lr = 0.1 })
      run(opt, w, 2)
      local path = os.tmpname()
      lv.save(path, opt:state_dict())
      local loaded = lv.load(path)
      os.remove(path)
      local w_saved = w:totable()
      local after = run(opt, w, 1, 3)[1]
      local w2 = lv.param(f64(w_saved))
      local opt2 = optim.Adam({ w2 })
      opt2:load_state_dict(loaded)
      H.assert_same(run(opt2, w2, 1, 3)[1], after)
    end)

    it("the saved tensors are a snapshot (later steps do not change them)", function()
      local w = lv.param(f64(W0))
      local opt = optim.Adam({ w }, { lr = 0.1 })
      run(opt, w, 1)
      local sd = opt:state_dict()
      local m = sd.state[1].exp_avg:totable()
      run(opt, w, 2, 2)
      H.assert_same(sd.state[1].exp_avg, m)
      assert.are.equal(1, sd.state[1].step)
    end)

    it("loading an f64 state into f32 parameters converts it", function()
      local w = lv.param(f64(W0))
      local opt = optim.Adam({ w }, { lr = 0.1 })
      run(opt, w, 1)
      local w32 = lv.param(lv.tensor(W0, "f32"))
      local opt32 = optim.Adam({ w32 })
      opt32:load_state_dict(opt:state_dict())
      assert.are.equal("f32", opt32.state[1].exp_avg:dtype())
    end)

    it("refuses a state of another kind, size or shape", function()
      local w = lv.param(f64(W0))
      local adam = optim.Adam({ w }, { lr = 0.1 })
      run(adam, w, 1)
      local sd = adam:state_dict()
      H.expect_error(function() optim.Adamax({ w }):load_state_dict(sd) end,
                     "load_state_dict", "from Adam, not Adamax")
      local v = lv.param(f64({ 1 }))
      H.expect_error(function() optim.Adam({ w, v }):load_state_dict(sd) end,
                     "1 parameters, the optimizer 2")
      local u = lv.param(f64({ 1, 2 }))
      H.expect_error(function() optim.Adam({ u }):load_state_dict(sd) end,
                     "shape [3], the parameter [2]")
      H.expect_error(function() optim.Adam({ w }):load_state_dict({}) end, "state_dict()")
    end)
  end)

  ---- convergence ------------------------------------------------------------------

  describe("minimises 0.5 x'Ax - b'x", function()
    local A = f64({ { 4.0, 1.0, 0.5 }, { 1.0, 3.0, -0.5 }, { 0.5, -0.5, 2.0 } })
    local b = f64({ 1.0, -2.0, 0.5 })
    local solution = lv.solve(A, b):totable()

    local function quadratic(x)
      return 0.5 * x:dot(A:matmul(x)) - b:dot(x)
    end

    local configs = {
      { "SGD", { lr = 0.1 }, 500 },
      { "SGD", { lr = 0.05, momentum = 0.9 }, 500 },
      { "SGD", { lr = 0.05, momentum = 0.9, nesterov = true }, 500 },
      { "Adam", { lr = 0.05 }, 2000, true },
      { "Adam", { lr = 0.05, amsgrad = true }, 2000, true },
      { "Adamax", { lr = 0.05 }, 2000, true },
      { "RMSProp", { lr = 0.01 }, 2000, true },
      { "RMSProp", { lr = 0.01, centered = true, momentum = 0.5 }, 2000, true },
      { "RMSProp", { lr = 0.01, tf_style = true }, 2000, true },
    }
    for _, cfg in ipairs(configs) do
      local name, o, iters, anneal = cfg[1], cfg[2], cfg[3], cfg[4]
      local label = name
      for _, k in ipairs({ "momentum", "nesterov", "amsgrad", "centered", "tf_style" }) do
        if o[k] then label = label .. " " .. k end
      end
      it(label .. " reaches A^-1 b", function()
        local x = lv.param(lv.zeros({ 3 }, "f64"))
        local opt = optim[name]({ x }, o)
        -- Adaptive methods take steps of about lr whatever the gradient:
        -- a cosine schedule anneals lr to 0 for a tight answer.
        local s = anneal and optim.schedules.cosine(opt, { T_max = iters }) or nil
        for _ = 1, iters do
          opt:step(quadratic(x))
          if s then s:step() end
        end
        H.assert_close(x, solution, 0, 1e-8)
      end)
    end

    it("an f32 parameter converges too (state in f32)", function()
      local x = lv.param(lv.zeros({ 3 }, "f32"))
      local opt = optim.Adam({ x }, { lr = 0.05 })
      local s = optim.schedules.cosine(opt, { T_max = 1500 })
      for _ = 1, 1500 do
        opt:step(quadratic(x))
        s:step()
      end
      assert.are.equal("f32", x:dtype())
      assert.are.equal("f32", opt.state[1].exp_avg:dtype())
      assert.are.equal("f32", opt.state[1].exp_avg_sq:dtype())
      H.assert_close(x, solution, 0, 1e-4)
    end)
  end)

  ---- the .grad route, groups, dtypes, errors ---------------------------------------------

  describe("usage", function()
    it("backward + update equals step; zero_grad clears .grad", function()
      local w1, w2 = lv.param(f64(W0)), lv.param(f64(W0))
      local o1 = optim.Adam({ w1 }, { lr = 0.1 })
      local o2 = optim.Adam({ w2 }, { lr = 0.1 })
      for t = 1, 3 do
        o1:step((w1 * f64(C[t])):sum())
        ;(w2 * f64(C[t])):sum():backward()
        H.assert_close(w2.grad, C[t], 0)
        o2:update()
        o2:zero_grad()
        assert.is_nil(w2.grad)
        H.assert_same(w2, w1:totable())
      end
    end)

    it("step neither reads nor writes .grad", function()
      local w = lv.param(f64(W0))
      w.grad = f64({ 100, 100, 100 })
      optim.SGD({ w }, { lr = 1 }):step((w * f64(C[1])):sum())
      H.assert_close(w, { 0.5, -0.5, -1.5 }, 0)
      H.assert_close(w.grad, { 100, 100, 100 }, 0)
    end)

    it("step returns the loss and accepts a closure", function()
      local w = lv.param(f64(W0))
      local opt = optim.SGD({ w }, { lr = 0.1 })
      local loss = (w * f64(C[1])):sum()
      assert.are.equal(loss, opt:step(loss))
      local l2 = opt:step(function() return (w * f64(C[1])):sum() end)
      H.assert_close(l2:item(), (0.95 * 0.5) + (-1.85 * -1.5) + (0.3 * 2), 1e-15)
    end)

    it("a NaN gradient is applied (PyTorch's behaviour); step returns the NaN loss", function()
      local w = lv.param(f64(W0))
      local opt = optim.SGD({ w }, { lr = 0.1 })
      local loss = opt:step((w * f64({ 1, 0 / 0, 1 })):sum())
      assert.is_true(loss:item() ~= loss:item())
      local v = w:totable()
      H.assert_close({ v[1], v[3] }, { 0.9, 0.4 }, 1e-15)
      assert.is_true(v[2] ~= v[2])
    end)

    it("a parameter the loss does not use is left alone (its step count too)", function()
      local w, unused = lv.param(f64(W0)), lv.param(f64({ 7 }))
      local opt = optim.Adam({ w, unused }, { lr = 0.1 })
      opt:step((w * f64(C[1])):sum())
      H.assert_same(unused, { 7 })
      assert.are.equal(0, opt.state[2].step)
      assert.are.equal(1, opt.state[1].step)
      -- update() with no .grad on a parameter skips it
      ;(w * f64(C[1])):sum():backward()
      opt:update()
      H.assert_same(unused, { 7 })
    end)

    it("step sums the gradients into buffers of its own, step after step, unused ones included", function()
      -- one step uses a and b, the next only b, the next both: a's buffer
      -- holds a stale gradient in between, which must not reach a's update
      local a1, b1 = lv.param(f64(W0)), lv.param(f64({ 2, -1 }))
      local a2, b2 = lv.param(f64(W0)), lv.param(f64({ 2, -1 }))
      local o1 = optim.Adam({ a1, b1 }, { lr = 0.1 })
      local o2 = optim.Adam({ a2, b2 }, { lr = 0.1 })
      local uses_a = { true, false, true, true }
      for t = 1, 4 do
        local c = f64(C[(t - 1) % 3 + 1])
        local function loss(a, b)
          local l = (b * b):sum() * (t + 1)
          if uses_a[t] then l = l + (a * c):sum() * (b:sum() + 3) end
          return l
        end
        o1:step(loss(a1, b1))
        -- the same update from gradients lv.grad allocates
        local g = lv.grad(loss(a2, b2), { a2, b2 }, { allow_unused = true })
        a2.grad, b2.grad = g[1], g[2]
        o2:update()
        o2:zero_grad()
        H.assert_same(a1, a2:totable(), "a at step " .. t)
        H.assert_same(b1, b2:totable(), "b at step " .. t)
      end
      assert.are.equal(3, o1.state[1].step)
      assert.are.equal(4, o1.state[2].step)
    end)

    it("f32 parameters: the update matches the f64 formula to f32 accuracy", function()
      local w32, w64 = lv.param(lv.tensor(W0, "f32")), lv.param(f64(W0))
      local o32 = optim.Adamax({ w32 }, { lr = 0.1 })
      local o64 = optim.Adamax({ w64 }, { lr = 0.1 })
      for t = 1, 3 do
        o32:step((w32 * lv.tensor(C[t], "f32")):sum())
        o64:step((w64 * f64(C[t])):sum())
      end
      assert.are.equal("f32", w32:dtype())
      assert.are.equal("f32", o32.state[1].exp_inf:dtype())
      H.assert_close(w32, w64:totable(), 1e-6, 1e-6)
    end)

    it("parameter groups take their own options; opt.lr sets every group", function()
      local a, b = lv.param(f64({ 1 })), lv.param(f64({ 1 }))
      local opt = optim.SGD({ { params = { a } }, { params = { b }, lr = 0.5, momentum = 0.9 } },
                            { lr = 0.1 })
      assert.are.equal(0.1, opt.lr)
      opt:step((a * 2):sum() + (b * 2):sum())
      H.assert_close(a, { 1 - 0.1 * 2 }, 1e-15)
      H.assert_close(b, { 1 - 0.5 * 2 }, 1e-15)
      opt.lr = 0.01
      assert.are.equal(0.01, opt.groups[1].lr)
      assert.are.equal(0.01, opt.groups[2].lr)
      opt:step((a * 2):sum() + (b * 2):sum())
      H.assert_close(a, { 0.8 - 0.01 * 2 }, 1e-15)
      H.assert_close(b, { 0 - 0.01 * (0.9 * 2 + 2) }, 1e-15)
      assert.truthy(tostring(opt):find("optim.SGD (2 parameters in 2 groups", 1, true))
    end)

    it("errors name the problem", function()
      do
        local ok, err = pcall(optim.SGD, { lv.param(lv.zeros({ 2 })) }, { lr = math.huge })
        assert.is_false(ok)
        assert.truthy(tostring(err):find("option 'lr' must be finite", 1, true), tostring(err))
      end
      local w = lv.param(f64(W0))
      H.expect_error(function() optim.Adam({}) end, "optim.Adam", "non-empty list")
      H.expect_error(function() optim.Adam({ w, f64({ 1 }) }) end,
                     "parameter 2 is not a leaf that requires grad", "lv.param")
      H.expect_error(function() optim.Adam({ w, w * 2 }) end, "parameter 2")
      H.expect_error(function() optim.Adam({ w, "x" }) end, "parameter 2 is not a tensor")
      H.expect_error(function() optim.Adam({ w, w }) end, "parameter 2 appears twice")
      H.expect_error(function() optim.Adam({ w }, { lr = -1 }) end, "'lr'", "non-negative")
      H.expect_error(function() optim.Adam({ w }, { beta = 0.9 }) end,
                     "unknown option 'beta'", "betas")
      H.expect_error(function() optim.Adam({ w }, { betas = { 0.9, 1 } }) end, "betas")
      H.expect_error(function() optim.SGD({ w }, { nesterov = true }) end,
                     "nesterov needs momentum")
      H.expect_error(function() optim.RMSProp({ w }, { alpha = 1.5 }) end, "'alpha'")
      H.expect_error(function() optim.SGD({ w }, { clip_norm = 0 }) end, "clip_norm")
      local opt = optim.SGD({ w }, { lr = 0.1 })
      H.expect_error(function() opt:step(w * 2) end, "scalar", "shape [3]")
      H.expect_error(function() opt:step(lv.no_grad(function() return w:sum() end)) end,
                     "does not depend")
      H.expect_error(function() opt:step(3) end, "expected the loss")
      H.expect_error(function() opt.lr = "fast" end, "learning rate")
      H.expect_error(function() optim.clip_grad_norm({ w }, -1) end, "max_norm")
      H.expect_error(function() optim.clip_grad_norm({ 3 }, 1) end, "entry 1 is not a tensor")
    end)
  end)
end)
