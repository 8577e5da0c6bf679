-- nn_spec.lua -- the layers of lua/lvae/nn.lua (and, through them, the
-- im2col/col2im maps of src/ops_conv.c):
--
--   * each layer's output on fixed weights against a direct computation in
--     plain Lua: Linear against x Wᵀ + b, the activations against their
--     closed forms, conv2d against a naive loop over output pixels and
--     conv_transpose2d against a naive scatter (each input pixel adds its
--     kernel-weighted contributions to the output), in f64 (and f32), with
--     TensorFlow's SAME padding, stride 1 and 2, odd and even sizes,
--     rectangular kernels, numeric padding and output_padding;
--   * conv_transpose2d as the exact adjoint of conv2d: <conv(x), z> =
--     <x, convT(z)>;
--   * the module machinery: Sequential passing several results,
--     Reshape/Flatten, parameter names and counts, shared modules,
--     train/evaluate, tostring, state_dict round trips and errors;
--   * the initialisers' statistics;
--   * the SPEC §6.2 conv encoder and its mirror decoder, built from layers;
--   * error text for bad input (STYLE point 12);
--   * gradcheck and gradgradcheck (f64, STYLE point 11) through Conv2d,
--     ConvTranspose2d (also on a non-contiguous input) and a small conv
--     decoder w.r.t. its input z: the HVAE case, second order through the
--     decoder.
--
-- The references below never call the layer under test: they loop over
-- :totable() values. SAME padding is TensorFlow's (tf.nn.conv2d docs):
-- out = ceil(in / s), total = max((out - 1) s + k - in, 0), before =
-- floor(total / 2), after = total - before.
--
-- Not here: the ops themselves (ops_spec.lua), the tape (autograd_spec.lua).

local lv = require "lvae"
local nn = require "lvae.nn"
local H = require "helpers"

local TOL = 1e-6   -- gradcheck / gradgradcheck worst error

---- inputs -------------------------------------------------------------------

local rnd = H.generator(4242)

--- A nested table of the given shape, uniform on [lo, hi).
local function rand_table(shape, lo, hi)
  return H.random_table(shape, rnd, lo or -1, hi or 1)
end

--- An f64 (or given dtype) tensor of uniform values on [lo, hi).
local function rand_tensor(shape, dtype, lo, hi)
  return lv.tensor(rand_table(shape, lo, hi), dtype or "f64")
end

--- Writes the values of `values` into parameter p (outside the tape).
local function set(p, values)
  lv.no_grad(function() p:copy_(values) end)
  return p
end

local function shape_of(t) return H.shape_string(t:size()) end

local function expect_error(fn, ...)
  assert.has_error(fn)
  return H.expect_error(fn, ...)
end

---- reference kernels (plain Lua over nested tables) -------------------------

--- TensorFlow's SAME padding of one direction: before, after.
local function tf_same(size, k, s)
  local out = (size + s - 1) // s
  local total = math.max((out - 1) * s + k - size, 0)
  return total // 2, total - total // 2
end

--- y[n][o][oy][ox] = b[o] + sum_{c,i,j} w[o][c][i][j] x[n][c][oy sh - t + i][ox sw - l + j]
-- (0-based positions, zero outside the image). x [N][C][H][W], w [O][C][kh][kw],
-- pad {t, b, l, r}.
local function ref_conv2d(x, w, b, sh, sw, pad)
  local N, C, Hh, W = #x, #x[1], #x[1][1], #x[1][1][1]
  local O, kh, kw = #w, #w[1][1], #w[1][1][1]
  local Ho = (Hh + pad[1] + pad[2] - kh) // sh + 1
  local Wo = (W + pad[3] + pad[4] - kw) // sw + 1
  local y = {}
  for n = 1, N do
    y[n] = {}
    for o = 1, O do
      y[n][o] = {}
      for oy = 0, Ho - 1 do
        local row = {}
        for ox = 0, Wo - 1 do
          local s = b and b[o] or 0
          for c = 1, C do
            for i = 0, kh - 1 do
              local yy = oy * sh - pad[1] + i
              if yy >= 0 and yy < Hh then
                for j = 0, kw - 1 do
                  local xx = ox * sw - pad[3] + j
                  if xx >= 0 and xx < W then
                    s = s + w[o][c][i + 1][j + 1] * x[n][c][yy + 1][xx + 1]
                  end
                end
              end
            end
          end
          row[ox + 1] = s
        end
        y[n][o][oy + 1] = row
      end
    end
  end
  return y
end

--- The scatter form of a transposed convolution: input pixel (iy, ix) of
-- channel c adds x * w[c][o][i][j] to output pixel (iy sh - t + i, ix sw - l + j)
-- when it lies inside Hout x Wout. x [N][C][H][W], w [C][O][kh][kw].
local function ref_conv_transpose2d(x, w, b, sh, sw, pad, Hout, Wout)
  local N, C, Hh, W = #x, #x[1], #x[1][1], #x[1][1][1]
  local O, kh, kw = #w[1], #w[1][1], #w[1][1][1]
  local y = {}
  for n = 1, N do
    y[n] = {}
    for o = 1, O do
      y[n][o] = {}
      for r = 1, Hout do
        y[n][o][r] = {}
        for q = 1, Wout do y[n][o][r][q] = b and b[o] or 0 end
      end
    end
    for c = 1, C do
      for iy = 0, Hh - 1 do
        for ix = 0, W - 1 do
          local v = x[n][c][iy + 1][ix + 1]
          for o = 1, O do
            for i = 0, kh - 1 do
              local oy = iy * sh - pad[1] + i
              if oy >= 0 and oy < Hout then
                for j = 0, kw - 1 do
                  local ox = ix * sw - pad[3] + j
                  if ox >= 0 and ox < Wout then
                    y[n][o][oy + 1][ox + 1] = y[n][o][oy + 1][ox + 1] + v * w[c][o][i + 1][j + 1]
                  end
                end
              end
            end
          end
        end
      end
    end
  end
  return y
end

--- Sum of a[k] b[k] over two tensors' values (in plain Lua, f64).
local function inner(a, b)
  local _, da = H.values(a)
  local _, db = H.values(b)
  assert(#da == #db)
  local s, scale = 0, 0
  for k = 1, #da do
    s = s + da[k] * db[k]
    scale = scale + math.abs(da[k] * db[k])
  end
  return s, scale
end

local function mean_std(t)
  local _, d = H.values(t)
  local s = 0
  for _, v in ipairs(d) do s = s + v end
  local m = s / #d
  local q = 0
  for _, v in ipairs(d) do q = q + (v - m) ^ 2 end
  return m, math.sqrt(q / (#d - 1)), #d
end

local function min_max(t)
  local _, d = H.values(t)
  local lo, hi = math.huge, -math.huge
  for _, v in ipairs(d) do
    if v < lo then lo = v end
    if v > hi then hi = v end
  end
  return lo, hi
end

local function names_of(m)
  local out = {}
  for i, np in ipairs(m:named_parameters()) do out[i] = np.name end
  return out
end

---- the SPEC §6.2 conv architecture -------------------------------------------
-- Encoder: three 5x5 stride-2 SAME convolutions (16, 32, 32 channels) with
-- softplus, 28 -> 14 -> 7 -> 4, a 450-unit softplus layer, then mu and
-- sigma = softplus. Decoder: the mirror image with transposed
-- convolutions, 4 -> 7 -> 14 -> 28. The first transposed convolution
-- undoes the SAME 7 -> 4 convolution (pads 2 and 2): numeric padding 2
-- gives (4 - 1) 2 - 4 + 5 = 7 exactly (a Sequential cannot pass an
-- output_size).

local function spec_encoder(d, dtype)
  local o = { stride = 2, padding = "same", dtype = dtype }
  return nn.Sequential(
    nn.Conv2d(1, 16, 5, o), nn.Softplus(),
    nn.Conv2d(16, 32, 5, o), nn.Softplus(),
    nn.Conv2d(32, 32, 5, o), nn.Softplus(),
    nn.Flatten(),
    nn.Linear(32 * 4 * 4, 450, { dtype = dtype }), nn.Softplus(),
    nn.GaussianHead(450, d, { dtype = dtype }))
end

local function spec_decoder(d, dtype)
  local o = { stride = 2, padding = "same", dtype = dtype }
  return nn.Sequential(
    nn.Linear(d, 450, { dtype = dtype }), nn.Softplus(),
    nn.Linear(450, 32 * 4 * 4, { dtype = dtype }), nn.Softplus(),
    nn.Reshape(32, 4, 4),
    nn.ConvTranspose2d(32, 32, 5, { stride = 2, padding = 2, dtype = dtype }), nn.Softplus(),
    nn.ConvTranspose2d(32, 16, 5, o), nn.Softplus(),
    nn.ConvTranspose2d(16, 1, 5, o))
end

---- the specs ---------------------------------------------------------------------

describe("nn", function()
  lv.manual_seed(20240611)

  describe("Linear", function()
    it("is x Wᵀ + b (f64 and f32)", function()
      for _, dtype in ipairs(H.dtypes) do
        local lin = nn.Linear(5, 3, { dtype = dtype })
        set(lin.weight, lv.tensor(rand_table({ 3, 5 }), dtype))
        set(lin.bias, lv.tensor(rand_table({ 3 }), dtype))
        local x = lv.tensor(rand_table({ 4, 5 }), dtype)
        local W, b, xv = lin.weight:totable(), lin.bias:totable(), x:totable()
        local expected = {}
        for n = 1, 4 do
          expected[n] = {}
          for o = 1, 3 do
            local s = b[o]
            for i = 1, 5 do s = s + xv[n][i] * W[o][i] end
            expected[n][o] = s
          end
        end
        local y = lin(x)
        assert.are.equal(dtype, y:dtype())
        H.assert_close(y, expected, dtype == "f64" and 1e-14 or 1e-6,
          dtype == "f64" and 1e-15 or 1e-6, "Linear " .. dtype)
      end
    end)

    it("without bias, and on a batch of batches", function()
      local lin = nn.Linear(3, 2, { dtype = "f64", bias = false })
      assert.is_nil(lin.bias)
      assert.are.equal(1, #lin:parameters())
      set(lin.weight, lv.tensor({ { 1, 2, 3 }, { -1, 0.5, 0 } }, "f64"))
      local x = lv.tensor({ { { 1, 1, 1 } }, { { 2, 0, -1 } } }, "f64")   -- [2, 1, 3]
      H.assert_close(lin(x), { { { 6, -0.5 } }, { { -1, -2 } } }, 1e-15, 0, "no bias")
      assert.truthy(tostring(lin):find("3 -> 2, no bias", 1, true))
    end)
  end)

  describe("activations", function()
    it("Softplus, ReLU, Tanh, Sigmoid against their closed forms", function()
      local x = lv.tensor({ { -30, -2.5, -0.1, 0 }, { 0.1, 1, 3.5, 40 } }, "f64")
      local cases = {
        { nn.Softplus(), H.softplus }, { nn.ReLU(), function(v) return math.max(v, 0) end },
        { nn.Tanh(), H.tanh }, { nn.Sigmoid(), H.sigmoid },
      }
      for _, c in ipairs(cases) do
        H.assert_close(c[1](x), H.map(x, c[2]), 1e-14, 1e-300, c[1].name)
        assert.are.equal(0, c[1]:n_parameters())
      end
    end)
  end)

  describe("Sequential", function()
    it("feeds each module's results to the next", function()
      local l1 = nn.Linear(4, 3, { dtype = "f64" })
      local l2 = nn.Linear(3, 2, { dtype = "f64" })
      set(l1.bias, rand_tensor({ 3 }))
      local seq = nn.Sequential(l1, nn.Tanh(), l2)
      local x = rand_tensor({ 5, 4 })
      H.assert_same(seq(x), l2(l1(x):tanh()), "chain")
      assert.are.equal(3, #seq)
    end)

    it("ends with a GaussianHead: mu and sigma = softplus", function()
      local body = nn.Linear(4, 6, { dtype = "f64" })
      local head = nn.GaussianHead(6, 3, { dtype = "f64" })
      set(head.mu_layer.bias, rand_tensor({ 3 }))
      set(head.sigma_layer.bias, rand_tensor({ 3 }))
      local seq = nn.Sequential(body, nn.Softplus(), head)
      local x = rand_tensor({ 2, 4 })
      local mu, sigma, extra = seq(x)
      assert.is_nil(extra)
      assert.are.equal("[2,3]", shape_of(mu))
      assert.are.equal("[2,3]", shape_of(sigma))
      -- the head's parts, by hand: h Wᵀ + b in plain Lua, then softplus
      local h = body(x):softplus():totable()
      local function affine(lin)
        local W, b = lin.weight:totable(), lin.bias:totable()
        local out = {}
        for n = 1, 2 do
          out[n] = {}
          for o = 1, 3 do
            local s = b[o]
            for i = 1, 6 do s = s + h[n][i] * W[o][i] end
            out[n][o] = s
          end
        end
        return out
      end
      H.assert_close(mu, affine(head.mu_layer), 1e-14, 1e-15, "mu")
      H.assert_close(sigma, H.map(affine(head.sigma_layer), H.softplus), 1e-14, 1e-15, "sigma")
      local lo = min_max(sigma)
      assert.is_true(lo > 0)
    end)

    it("passes several results into a module taking several arguments", function()
      local Sum2 = nn.class("Sum2")
      function Sum2:forward(a, b) return a + b end
      local head = nn.GaussianHead(3, 2, { dtype = "f64" })
      local seq = nn.Sequential(head, Sum2())
      local x = rand_tensor({ 4, 3 })
      local mu, sigma = head(x)
      local y, extra = seq(x)
      assert.is_nil(extra)
      H.assert_same(y, mu + sigma, "sum of mu and sigma")
      -- several inputs into a Sequential reach its first module
      local two = nn.Sequential(Sum2(), nn.Tanh())
      H.assert_same(two(mu, sigma), (mu + sigma):tanh(), "two inputs")
    end)

    it("add appends a numbered module", function()
      local seq = nn.Sequential(nn.Linear(2, 2))
      seq:add(nn.Softplus())
      seq:add(nn.Linear(2, 1))
      assert.are.same({ "1.weight", "1.bias", "3.weight", "3.bias" }, names_of(seq))
      assert.are.equal(3, #seq)
    end)
  end)

  describe("Reshape and Flatten", function()
    it("keep the batch dim and the values", function()
      local x = rand_tensor({ 3, 2, 4, 5 })
      local flat = nn.Flatten()(x)
      assert.are.equal("[3,40]", shape_of(flat))
      local _, dx = H.values(x)
      local _, df = H.values(flat)
      assert.are.same(dx, df)
      assert.are.equal("[3,5,8]", shape_of(nn.Reshape(5, 8)(flat)))
      assert.are.equal("[3,5,8]", shape_of(nn.Reshape({ 5, -1 })(flat)))
      assert.are.equal("[3,2,4,5]", shape_of(nn.Reshape(2, 4, 5)(flat)))
      H.assert_same(nn.Reshape(2, 4, 5)(flat), x, "round trip")
      assert.truthy(tostring(nn.Reshape(2, 4, 5)):find("2x4x5", 1, true))
    end)

    it("work on a non-contiguous input", function()
      local x = rand_tensor({ 3, 4 })
      local xt = x:t()                       -- [4, 3], transposed strides
      local expected = {}
      local xv = x:totable()
      for i = 1, 4 do expected[i] = { { xv[1][i], xv[2][i], xv[3][i] } } end
      H.assert_same(nn.Reshape(1, 3)(xt), expected, "reshape of a transpose")
      H.assert_same(nn.Flatten()(xt:reshape(4, 3, 1)), xt, "flatten")
    end)
  end)

  describe("parameters", function()
    it("names and counts of the SPEC encoder", function()
      local enc = spec_encoder(64)
      assert.are.same({
        "1.weight", "1.bias", "3.weight", "3.bias", "5.weight", "5.bias",
        "8.weight", "8.bias", "10.mu.weight", "10.mu.bias", "10.sigma.weight", "10.sigma.bias",
      }, names_of(enc))
      local expected = (16 * 1 * 25 + 16) + (32 * 16 * 25 + 32) + (32 * 32 * 25 + 32)
        + (512 * 450 + 450) + 2 * (450 * 64 + 64)
      assert.are.equal(expected, enc:n_parameters())
      local params = enc:parameters()
      assert.are.equal(12, #params)
      for i, np in ipairs(enc:named_parameters()) do
        assert.are.equal(np.tensor, params[i])
        assert.is_true(np.tensor.is_leaf)
        assert.is_true(np.tensor.needs_grad)
      end
    end)

    it("nested names: a head at position 8", function()
      local seq = nn.Sequential(nn.Linear(4, 4), nn.Softplus(), nn.Linear(4, 4), nn.Softplus(),
        nn.Linear(4, 4), nn.Tanh(), nn.Flatten(), nn.GaussianHead(4, 2))
      local names = names_of(seq)
      assert.are.same({ "1.weight", "1.bias", "3.weight", "3.bias", "5.weight", "5.bias",
        "8.mu.weight", "8.mu.bias", "8.sigma.weight", "8.sigma.bias" }, names)
      assert.are.equal(3 * 20 + 2 * 10, seq:n_parameters())
    end)

    it("a shared module's parameters appear once", function()
      local lin = nn.Linear(3, 3)
      local seq = nn.Sequential(lin, nn.Softplus(), lin, nn.Sequential(lin, nn.Linear(3, 1)))
      assert.are.same({ "1.weight", "1.bias", "4.2.weight", "4.2.bias" }, names_of(seq))
      assert.are.equal(12 + 4, seq:n_parameters())
      assert.are.equal(4, #seq:parameters())
      local seen = {}
      for _, p in ipairs(seq:parameters()) do
        assert.is_nil(seen[p])
        seen[p] = true
      end
      assert.truthy(tostring(seq):find("16 parameters in all", 1, true))
    end)
  end)

  describe("train and evaluate", function()
    it("set the flag on every module, recursively", function()
      local enc = spec_encoder(4)
      local function all(flag)
        local function walk(m)
          assert.are.equal(flag, m.training)
          for _, c in ipairs(m._children) do walk(c.module) end
        end
        walk(enc)
      end
      all(true)
      assert.are.equal(enc, enc:evaluate())
      all(false)
      enc:train()
      all(true)
      enc:train(false)
      all(false)
      enc:train(true)
      all(true)
    end)
  end)

  describe("tostring", function()
    it("lists the layers and their parameter counts", function()
      local s = tostring(spec_encoder(64))
      for _, piece in ipairs({
        "Sequential", "(1): Conv2d(1 -> 16, kernel 5x5, stride 2, padding same)  [416 parameters]",
        "(2): Softplus()", "(3): Conv2d(16 -> 32, kernel 5x5, stride 2, padding same)  [12832 parameters]",
        "(7): Flatten()", "(8): Linear(512 -> 450)  [230850 parameters]",
        "(10): GaussianHead(-> mu, sigma of 64 dims)", "(mu): Linear(450 -> 64)  [28864 parameters]",
        "(sigma): Linear(450 -> 64)  [28864 parameters]", "327458 parameters in all",
      }) do
        assert(s:find(piece, 1, true), "tostring lacks '" .. piece .. "':\n" .. s)
      end
      local d = tostring(spec_decoder(64))
      for _, piece in ipairs({
        "ConvTranspose2d(32 -> 32, kernel 5x5, stride 2, padding 2)  [25632 parameters]",
        "ConvTranspose2d(16 -> 1, kernel 5x5, stride 2, padding same)  [401 parameters]",
        "Reshape(32x4x4)",
      }) do
        assert(d:find(piece, 1, true), "tostring lacks '" .. piece .. "':\n" .. d)
      end
      local c = tostring(nn.Conv2d(2, 3, { 2, 3 }, { stride = { 1, 2 }, padding = { 1, 0, 2, 1 } }))
      assert(c:find("kernel 2x3, stride 1x2, padding {1,0,2,1}", 1, true), c)
    end)
  end)

  describe("state_dict", function()
    it("round trip: a module loaded from another's state computes the same", function()
      lv.manual_seed(1)
      local a = spec_encoder(8, "f64")
      lv.manual_seed(2)
      local b = spec_encoder(8, "f64")
      local x = rand_tensor({ 2, 1, 28, 28 }, "f64", 0, 1)
      local mu_a, sigma_a = a(x)
      local mu_b = b(x)
      assert.is_true(H.max_abs_diff(mu_a, mu_b) > 0)
      local state = a:state_dict()
      local keys = {}
      for k, v in pairs(state) do
        keys[#keys + 1] = k
        assert.is_false(v.needs_grad)
      end
      table.sort(keys)
      local want = names_of(a)
      table.sort(want)
      assert.are.same(want, keys)
      local before = b:parameters()
      assert.are.equal(b, b:load_state_dict(state))
      local mu_b2, sigma_b2 = b(x)
      H.assert_same(mu_b2, mu_a, "mu after load")
      H.assert_same(sigma_b2, sigma_a, "sigma after load")
      -- the same leaves, still requiring grad (an optimizer holds them)
      for i, p in ipairs(b:parameters()) do
        assert.are.equal(before[i], p)
        assert.is_true(p.is_leaf and p.needs_grad)
      end
    end)

    it("copies values across dtypes, and strict = false allows missing entries", function()
      local a = nn.Linear(3, 2, { dtype = "f64" })
      local b = nn.Linear(3, 2)
      set(a.bias, lv.tensor({ 0.25, -0.5 }, "f64"))
      b:load_state_dict(a:state_dict())
      assert.are.equal("f32", b.weight:dtype())
      H.assert_close(b.weight, a.weight:totable(), 1e-7, 0, "weight")
      H.assert_same(b.bias, { 0.25, -0.5 }, "bias")
      b:load_state_dict({ bias = lv.tensor({ 1, 2 }) }, { strict = false })
      H.assert_same(b.bias, { 1, 2 }, "partial")
    end)

    it("errors: missing, unexpected, wrong shape", function()
      local m = nn.Sequential(nn.Linear(2, 3), nn.Softplus(), nn.Linear(3, 1))
      local s = m:state_dict()
      s["3.bias"] = nil
      expect_error(function() m:load_state_dict(s) end, "load_state_dict", "missing", "3.bias")
      s = m:state_dict()
      s["2.weight"] = lv.zeros({ 1 })
      expect_error(function() m:load_state_dict(s) end, "load_state_dict", "unexpected", "2.weight")
      s = m:state_dict()
      s["1.weight"] = lv.zeros({ 2, 3 })
      expect_error(function() m:load_state_dict(s) end, "load_state_dict", "1.weight",
        "[3,2]", "[2,3]")
    end)

    it("errors point at the caller, not into the toolkit", function()
      local m = nn.Linear(2, 2)
      local function msg_of(state)
        local ok, msg = pcall(function() local r = m:load_state_dict(state); return r end)
        assert.is_false(ok)
        return tostring(msg)
      end
      local s = m:state_dict()
      s.bias = nil
      local msg = msg_of(s)
      assert(msg:find("nn_spec.lua", 1, true), "missing: error position: " .. msg)
      s = m:state_dict()
      s.weight = lv.zeros({ 3, 2 })
      msg = msg_of(s)
      assert(msg:find("nn_spec.lua", 1, true), "wrong shape: error position: " .. msg)
    end)

    it("error: a value that is not a tensor names the parameter", function()
      local m = nn.Linear(2, 2)
      local s = m:state_dict()
      s.weight = 5
      expect_error(function() m:load_state_dict(s) end, "load_state_dict", "weight")
    end)
  end)

  describe("initialisers", function()
    -- Tolerances: the sample std of n normal draws has a relative error of
    -- about 1/sqrt(2n) (0.15% at n = 240000, 0.6% at n = 12800); the
    -- checks allow five times that.
    local function check_normal(t, std, what)
      local m, s, n = mean_std(t)
      local rel = 5 / math.sqrt(2 * n)
      assert(math.abs(s / std - 1) < rel,
        string.format("%s: std %.6g, expected %.6g (±%.2g%%)", what, s, std, 100 * rel))
      assert(math.abs(m) < 5 * std / math.sqrt(n), string.format("%s: mean %.3g", what, m))
    end

    it("glorot_normal: std = sqrt(2 / (fan_in + fan_out))", function()
      lv.manual_seed(11)
      check_normal(nn.Linear(400, 600, { init = "glorot_normal" }).weight,
        math.sqrt(2 / 1000), "Linear 400 -> 600")
      check_normal(nn.Conv2d(16, 32, 5, { init = "glorot_normal" }).weight,
        math.sqrt(2 / ((16 + 32) * 25)), "Conv2d 16 -> 32, 5x5")
      local t = lv.zeros({ 300, 200 }, "f64")
      assert.are.equal(t, nn.init.glorot_normal(t, 2))
      check_normal(t, 2 * math.sqrt(2 / 500), "gain 2")
    end)

    it("glorot_uniform: on ±sqrt(6 / (fan_in + fan_out)), variance a²/3", function()
      lv.manual_seed(12)
      local w = nn.Linear(400, 600, { init = "glorot_uniform" }).weight
      local a = math.sqrt(6 / 1000)
      local lo, hi = min_max(w)
      assert.is_true(lo >= -a and hi <= a)
      assert.is_true(lo < -0.99 * a and hi > 0.99 * a)
      local m, s, n = mean_std(w)
      assert(math.abs(s / (a / math.sqrt(3)) - 1) < 0.01, "uniform std " .. s)
      assert(math.abs(m) < 5 * a / math.sqrt(3 * n), "uniform mean " .. m)
      local c = nn.ConvTranspose2d(32, 16, 5, { init = "glorot_uniform" }).weight
      local ac = math.sqrt(6 / ((16 + 32) * 25))
      lo, hi = min_max(c)
      assert.is_true(lo >= -ac and hi <= ac and hi > 0.95 * ac and lo < -0.95 * ac)
    end)

    it("hvae_normal (the default): std = 1 / sqrt(fan_in + fan_out)", function()
      lv.manual_seed(13)
      check_normal(nn.Linear(400, 600).weight, 1 / math.sqrt(1000), "default Linear")
      check_normal(nn.Linear(400, 600, { init = "hvae_normal" }).weight, 1 / math.sqrt(1000), "Linear")
      check_normal(nn.Conv2d(16, 32, 5).weight, 1 / math.sqrt(48 * 25), "Conv2d")
      check_normal(nn.ConvTranspose2d(32, 16, 5).weight, 1 / math.sqrt(48 * 25), "ConvTranspose2d")
    end)

    it("zeros, constant, a function; biases start at zero; the parameter stays a leaf", function()
      local l = nn.Linear(3, 4, { init = "zeros" })
      H.assert_same(l.weight, H.nest({ 4, 3 }, { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 }))
      local c = nn.Conv2d(2, 3, 3, { init = function(t) return nn.init.constant(t, 0.25) end })
      local lo, hi = min_max(c.weight)
      assert.are.equal(0.25, lo)
      assert.are.equal(0.25, hi)
      lo, hi = min_max(c.bias)
      assert.are.equal(0, lo)
      assert.are.equal(0, hi)
      assert.are.equal(c.weight, nn.init.constant(c.weight, -1.5))
      lo, hi = min_max(c.weight)
      assert.are.same({ -1.5, -1.5 }, { lo, hi })
      assert.are.equal(c.weight, nn.init.zeros(c.weight))
      lo, hi = min_max(c.weight)
      assert.are.same({ 0, 0 }, { lo, hi })
      assert.is_true(c.weight.is_leaf and c.weight.needs_grad)
    end)
  end)

  describe("conv2d", function()
    it("SAME padding is TensorFlow's: 28 -> 14 and 14 -> 7 pad 1 and 2", function()
      local cases = {   -- size, kernel, stride, before, after
        { 28, 5, 2, 1, 2 }, { 14, 5, 2, 1, 2 }, { 7, 5, 2, 2, 2 }, { 8, 5, 2, 1, 2 },
        { 7, 3, 1, 1, 1 }, { 6, 4, 1, 1, 2 }, { 9, 4, 2, 1, 2 }, { 28, 1, 2, 0, 0 }, { 3, 5, 2, 2, 2 },
      }
      for _, c in ipairs(cases) do
        local b, a = nn.F.same_padding(c[1], c[2], c[3])
        assert.are.same({ c[4], c[5] }, { b, a })
        assert.are.same({ c[4], c[5] }, { tf_same(c[1], c[2], c[3]) })
      end
    end)

    -- N, C, O, H, W, kh, kw, stride, padding, expected Ho, Wo
    local cases = {
      { 1, 1, 2, 28, 28, 5, 5, 2, "same", 14, 14 },
      { 2, 2, 3, 14, 14, 5, 5, 2, "same", 7, 7 },
      { 2, 2, 2, 7, 8, 5, 5, 2, "same", 4, 4 },
      { 1, 3, 2, 7, 8, 3, 3, 1, "same", 7, 8 },
      { 2, 2, 2, 9, 6, 4, 4, 2, "same", 5, 3 },
      { 1, 2, 3, 6, 7, 2, 3, { 2, 1 }, "same", 3, 7 },
      { 2, 2, 3, 5, 6, 3, 2, 2, "valid", 2, 3 },
      { 1, 2, 2, 5, 6, 3, 3, 1, nil, 3, 4 },
      { 2, 1, 2, 5, 5, 3, 3, 1, 1, 5, 5 },
      { 1, 2, 2, 5, 7, 3, 3, 2, { 1, 2 }, 3, 5 },
      { 2, 2, 3, 6, 5, 2, 3, { 2, 1 }, { 1, 0, 2, 1 }, 3, 6 },
      { 1, 1, 1, 4, 4, 5, 5, 2, "same", 2, 2 },            -- image smaller than the kernel
    }

    local function case_name(c)
      return string.format("%dx%d kernel %dx%d stride %s padding %s", c[4], c[5], c[6], c[7],
        type(c[8]) == "table" and table.concat(c[8], "x") or tostring(c[8]),
        type(c[9]) == "table" and "{" .. table.concat(c[9], ",") .. "}" or tostring(c[9]))
    end

    local function pad_of(c)
      local p = c[9]
      local sh, sw = c[8], c[8]
      if type(sh) == "table" then sh, sw = c[8][1], c[8][2] end
      if p == "same" then
        local t, b = tf_same(c[4], c[6], sh)
        local l, r = tf_same(c[5], c[7], sw)
        return { t, b, l, r }, sh, sw
      elseif p == nil or p == "valid" then return { 0, 0, 0, 0 }, sh, sw
      elseif type(p) == "number" then return { p, p, p, p }, sh, sw
      elseif #p == 2 then return { p[1], p[1], p[2], p[2] }, sh, sw
      end
      return p, sh, sw
    end

    for _, c in ipairs(cases) do
      it("against a naive loop: " .. case_name(c), function()
        local N, C, O = c[1], c[2], c[3]
        local xt, wt, bt = rand_table({ N, C, c[4], c[5] }), rand_table({ O, C, c[6], c[7] }),
          rand_table({ O })
        local pad, sh, sw = pad_of(c)
        for _, dtype in ipairs(H.dtypes) do
          local x, w, b = lv.tensor(xt, dtype), lv.tensor(wt, dtype), lv.tensor(bt, dtype)
          local expected = ref_conv2d(x:totable(), w:totable(), b:totable(), sh, sw, pad)
          local y = nn.F.conv2d(x, w, b, { stride = c[8], padding = c[9] })
          assert.are.equal(H.shape_string({ N, O, c[10], c[11] }), shape_of(y))
          local rtol, atol = 1e-13, 1e-14
          if dtype == "f32" then rtol, atol = 1e-5, 1e-5 end
          H.assert_close(y, expected, rtol, atol, case_name(c) .. " " .. dtype)
          -- the layer computes the same as the functional form
          local layer = nn.Conv2d(C, O, { c[6], c[7] }, { stride = c[8], padding = c[9], dtype = dtype })
          set(layer.weight, w)
          set(layer.bias, b)
          H.assert_same(layer(x), y, "layer")
          -- without bias
          local y0 = nn.F.conv2d(x, w, nil, { stride = c[8], padding = c[9] })
          H.assert_close(y0, ref_conv2d(x:totable(), w:totable(), nil, sh, sw, pad), rtol, atol, "no bias")
        end
      end)
    end

    it("on non-contiguous inputs and weights", function()
      local x = rand_tensor({ 2, 2, 7, 6 })
      local w = rand_tensor({ 3, 2, 3, 3 })
      local expected = nn.F.conv2d(x, w, nil, { stride = 2, padding = "same" })
      for _, lx in ipairs(H.layouts(x)) do
        for _, lw in ipairs(H.layouts(w)) do
          H.assert_same(nn.F.conv2d(lx[2], lw[2], nil, { stride = 2, padding = "same" }), expected,
            lx[1] .. " x, " .. lw[1] .. " w")
        end
      end
    end)
  end)

  describe("conv_transpose2d", function()
    -- N, C, O, H, W, kh, kw, stride, opts, expected Hout, Wout, pad {t,b,l,r}
    local cases = {
      { 1, 2, 1, 14, 14, 5, 5, 2, { padding = "same" }, 28, 28, { 1, 2, 1, 2 } },
      { 2, 2, 3, 7, 7, 5, 5, 2, { padding = "same" }, 14, 14, { 1, 2, 1, 2 } },
      { 1, 2, 2, 4, 4, 5, 5, 2, { padding = "same", output_size = 7 }, 7, 7, { 2, 2, 2, 2 } },
      { 2, 2, 2, 4, 4, 5, 5, 2, { padding = "same", output_size = { 7, 8 } }, 7, 8, { 2, 2, 1, 2 } },
      { 2, 2, 2, 4, 4, 5, 5, 2, { padding = 2 }, 7, 7, { 2, 2, 2, 2 } },
      { 1, 2, 2, 5, 3, 3, 3, 2, { padding = { 1, 2, 0, 1 }, output_padding = { 0, 1 } }, 8, 7, { 1, 2, 0, 1 } },
      { 2, 1, 2, 5, 5, 3, 3, 1, { padding = 1 }, 5, 5, { 1, 1, 1, 1 } },
      { 1, 2, 2, 3, 4, 2, 3, 2, { padding = "valid" }, 6, 9, { 0, 0, 0, 0 } },
      { 1, 2, 2, 3, 4, 2, 3, 2, { padding = "valid", output_padding = 1 }, 7, 10, { 0, 0, 0, 0 } },
      { 2, 2, 2, 3, 4, 3, 2, { 2, 1 }, { padding = "same" }, 6, 4, { 0, 1, 0, 1 } },
      { 1, 2, 1, 3, 3, 3, 3, 2, { padding = 0, output_size = 8 }, 8, 8, { 0, 0, 0, 0 } },
    }

    local function case_name(c)
      local o = c[9]
      local p = o.padding
      return string.format("%dx%d -> %dx%d kernel %dx%d stride %s padding %s%s%s", c[4], c[5], c[10],
        c[11], c[6], c[7], type(c[8]) == "table" and table.concat(c[8], "x") or tostring(c[8]),
        type(p) == "table" and "{" .. table.concat(p, ",") .. "}" or tostring(p),
        o.output_padding and " output_padding" or "", o.output_size and " output_size" or "")
    end

    for _, c in ipairs(cases) do
      it("against a naive scatter: " .. case_name(c), function()
        local N, C, O = c[1], c[2], c[3]
        local xt, wt, bt = rand_table({ N, C, c[4], c[5] }), rand_table({ C, O, c[6], c[7] }),
          rand_table({ O })
        local sh, sw = c[8], c[8]
        if type(sh) == "table" then sh, sw = c[8][1], c[8][2] end
        if c[9].padding == "same" then     -- the pads of the SAME conv it undoes
          local t, b = tf_same(c[10], c[6], sh)
          local l, r = tf_same(c[11], c[7], sw)
          assert.are.same(c[12], { t, b, l, r })
        end
        for _, dtype in ipairs(H.dtypes) do
          local x, w, b = lv.tensor(xt, dtype), lv.tensor(wt, dtype), lv.tensor(bt, dtype)
          local o = { stride = c[8], padding = c[9].padding, output_padding = c[9].output_padding,
                      output_size = c[9].output_size }
          local y = nn.F.conv_transpose2d(x, w, b, o)
          assert.are.equal(H.shape_string({ N, O, c[10], c[11] }), shape_of(y))
          local expected = ref_conv_transpose2d(x:totable(), w:totable(), b:totable(), sh, sw, c[12],
            c[10], c[11])
          local rtol, atol = 1e-13, 1e-14
          if dtype == "f32" then rtol, atol = 1e-5, 1e-5 end
          H.assert_close(y, expected, rtol, atol, case_name(c) .. " " .. dtype)
          local layer = nn.ConvTranspose2d(C, O, { c[6], c[7] }, { stride = c[8], padding = c[9].padding,
            output_padding = c[9].output_padding, dtype = dtype })
          set(layer.weight, w)
          set(layer.bias, b)
          H.assert_same(layer(x, c[9].output_size), y, "layer")
        end
      end)
    end

    --- <conv(x), z> = <x, convT(z)> with one weight [O, C, kh, kw].
    local function check_adjoint(N, C, O, Hh, W, k, stride, padding, convT_opts)
      local x = rand_tensor({ N, C, Hh, W })
      local w = rand_tensor({ O, C, k[1], k[2] })
      local y = nn.F.conv2d(x, w, nil, { stride = stride, padding = padding })
      local z = rand_tensor(y:size())
      convT_opts.stride = stride
      local xt = nn.F.conv_transpose2d(z, w, nil, convT_opts)
      assert.are.equal(shape_of(x), shape_of(xt))
      local lhs, s1 = inner(y, z)
      local rhs, s2 = inner(x, xt)
      assert(math.abs(lhs - rhs) <= 1e-13 * (s1 + s2),
        string.format("<conv x, z> = %.17g, <x, convT z> = %.17g", lhs, rhs))
    end

    it("is the exact adjoint of SAME stride-2 conv2d: 28 -> 14 -> 7 -> 4", function()
      check_adjoint(2, 2, 3, 28, 28, { 5, 5 }, 2, "same", { padding = "same" })
      check_adjoint(2, 3, 2, 14, 14, { 5, 5 }, 2, "same", { padding = "same" })
      check_adjoint(2, 2, 2, 7, 7, { 5, 5 }, 2, "same", { padding = "same", output_size = 7 })
      check_adjoint(1, 2, 2, 7, 8, { 5, 5 }, 2, "same", { padding = "same", output_size = { 7, 8 } })
      check_adjoint(1, 2, 2, 9, 6, { 4, 3 }, { 2, 1 }, "same", { padding = "same", output_size = { 9, 6 } })
    end)

    it("is the exact adjoint with numeric padding and output_padding", function()
      check_adjoint(2, 2, 3, 8, 7, { 3, 3 }, 2, { 1, 2, 0, 1 },
        { padding = { 1, 2, 0, 1 }, output_padding = { 0, 1 } })
      check_adjoint(1, 2, 2, 7, 7, { 5, 5 }, 2, 2, { padding = 2 })
      check_adjoint(1, 2, 2, 6, 9, { 2, 3 }, { 2, 3 }, "valid", { padding = "valid" })
      check_adjoint(1, 2, 2, 7, 10, { 2, 3 }, 2, "valid", { padding = "valid", output_padding = 1 })
      check_adjoint(2, 1, 2, 5, 5, { 3, 3 }, 1, 1, { padding = 1 })
    end)
  end)

  describe("the SPEC §6.2 conv architecture", function()
    it("encoder 28x28 -> 14 -> 7 -> 4 -> 450 -> 64, decoder back to 28x28", function()
      local enc, dec = spec_encoder(64), spec_decoder(64)
      local x = lv.rand({ 3, 1, 28, 28 })
      local shapes = {}
      local h = x
      for i, c in ipairs(enc._children) do
        if i < #enc._children then
          h = c.module(h)
          shapes[i] = shape_of(h)
        end
      end
      assert.are.same({ "[3,16,14,14]", "[3,16,14,14]", "[3,32,7,7]", "[3,32,7,7]", "[3,32,4,4]",
        "[3,32,4,4]", "[3,512]", "[3,450]", "[3,450]" }, shapes)
      local mu, sigma = enc(x)
      assert.are.equal("[3,64]", shape_of(mu))
      assert.are.equal("[3,64]", shape_of(sigma))
      assert.is_true(min_max(sigma) > 0)
      local z = mu + sigma * lv.randn({ 3, 64 })
      h = z
      shapes = {}
      for i, c in ipairs(dec._children) do
        h = c.module(h)
        shapes[i] = shape_of(h)
      end
      assert.are.same({ "[3,450]", "[3,450]", "[3,512]", "[3,512]", "[3,32,4,4]", "[3,32,7,7]",
        "[3,32,7,7]", "[3,16,14,14]", "[3,16,14,14]", "[3,1,28,28]" }, shapes)
      H.assert_same(dec(z), h, "decoder as a whole")
      assert.are.equal((64 * 450 + 450) + (450 * 512 + 512) + (32 * 32 * 25 + 32)
        + (32 * 16 * 25 + 16) + (16 * 25 + 1), dec:n_parameters())
      -- a gradient reaches every parameter of both
      local loss = dec(z):softplus():sum()
      local params = {}
      for _, p in ipairs(enc:parameters()) do params[#params + 1] = p end
      for _, p in ipairs(dec:parameters()) do params[#params + 1] = p end
      local gs = lv.grad(loss, params)
      for i, g in ipairs(gs) do assert.are.equal(shape_of(params[i]), shape_of(g)) end
    end)

    it("the decoder's transposed convolutions are the adjoints of the encoder's", function()
      local enc, dec = spec_encoder(64, "f64"), spec_decoder(64, "f64")
      -- encoder conv (module 1, 3, 5) <-> decoder convT (module 10, 8, 6)
      for _, p in ipairs({ { 1, 10, 28 }, { 3, 8, 14 }, { 5, 6, 7 } }) do
        local conv = enc._children[p[1]].module
        local convT = dec._children[p[2]].module
        assert.are.equal(shape_of(conv.weight), shape_of(convT.weight))
        set(convT.weight, conv.weight)
        local x = rand_tensor({ 2, conv.c_in, p[3], p[3] })
        local y = nn.F.conv2d(x, conv.weight, nil, { stride = 2, padding = "same" })
        local zz = rand_tensor(y:size())
        local xt = nn.F.conv_transpose2d(zz, convT.weight, nil,
          { stride = convT.stride, padding = convT.padding })
        assert.are.equal(shape_of(x), shape_of(xt))
        local lhs, s1 = inner(y, zz)
        local rhs, s2 = inner(x, xt)
        assert(math.abs(lhs - rhs) <= 1e-13 * (s1 + s2), string.format("%d: %.17g vs %.17g", p[1], lhs, rhs))
      end
    end)
  end)

  describe("bad input", function()
    it("wrong channel count", function()
      local conv = nn.Conv2d(2, 3, 3)
      expect_error(function() return conv(lv.zeros({ 1, 3, 5, 5 })) end, "conv2d", "3 channels", "expects 2")
      local ct = nn.ConvTranspose2d(3, 2, 3)
      expect_error(function() return ct(lv.zeros({ 1, 2, 5, 5 })) end, "conv_transpose2d",
        "2 channels", "expects 3")
    end)

    it("wrong number of dims", function()
      local conv = nn.Conv2d(2, 3, 3)
      expect_error(function() return conv(lv.zeros({ 2, 5, 5 })) end, "conv2d",
        "expected input [N, C, H, W]", "[2,5,5]")
      expect_error(function() return conv(lv.zeros({ 1, 1, 2, 5, 5 })) end, "conv2d", "[1,1,2,5,5]")
      local ct = nn.ConvTranspose2d(2, 3, 3)
      expect_error(function() return ct(lv.zeros({ 2, 5, 5 })) end, "conv_transpose2d",
        "expected input [N, C, H, W]")
    end)

    it("an image smaller than the kernel, a mismatched Linear", function()
      expect_error(function() return nn.Conv2d(1, 1, 5)(lv.zeros({ 1, 1, 3, 3 })) end,
        "smaller than the kernel")
      expect_error(function() return nn.Linear(3, 2)(lv.zeros({ 4, 5 })) end, "do not align")
    end)

    it("a bad padding option", function()
      for _, p in ipairs({ "foo", "SAME", 1.5, { 1, 2, 3 }, true }) do
        expect_error(function() return nn.Conv2d(1, 1, 3, { padding = p }) end, "padding must be")
        expect_error(function()
          return nn.F.conv2d(lv.zeros({ 1, 1, 5, 5 }), lv.zeros({ 1, 1, 3, 3 }), nil, { padding = p })
        end, "padding")
        expect_error(function()
          return nn.F.conv_transpose2d(lv.zeros({ 1, 1, 5, 5 }), lv.zeros({ 1, 1, 3, 3 }), nil, { padding = p })
        end, "padding")
      end
      -- refused when the layer is made, not only when it is called
      expect_error(function() return nn.Conv2d(1, 1, 3, { padding = -1 }) end, "padding must not be negative")
      expect_error(function() return nn.Conv2d(1, 1, 3, { padding = { 1, -2 } }) end, "padding must not be negative")
      expect_error(function() return nn.F.same_padding(28, 5, 0) end, "stride must be an integer >= 1")
      -- misspelt options are errors, as everywhere else
      expect_error(function() return nn.Linear(3, 4, { biass = false }) end, "unknown option 'biass'")
      expect_error(function() return nn.Conv2d(1, 1, 3, { strid = 2 }) end, "unknown option 'strid'")
      expect_error(function() return nn.ConvTranspose2d(1, 1, 3, { paddin = 1 }) end, "unknown option 'paddin'")
      expect_error(function() return nn.GaussianHead(3, 2, { dtyp = "f64" }) end, "unknown option 'dtyp'")
      expect_error(function()
        return nn.ConvTranspose2d(1, 1, 3, { stride = 2, output_padding = 2 })(lv.zeros({ 1, 1, 3, 3 }))
      end, "output_padding must be smaller than the stride")
      expect_error(function()
        return nn.F.conv_transpose2d(lv.zeros({ 1, 1, 4, 4 }), lv.zeros({ 1, 1, 5, 5 }), nil,
          { stride = 2, padding = "same", output_size = 9 })
      end, "9x9", "4x4")
      expect_error(function()
        return nn.F.conv_transpose2d(lv.zeros({ 1, 1, 4, 4 }), lv.zeros({ 1, 1, 3, 3 }), nil,
          { stride = 2, padding = 0, output_size = 12 })
      end, "output_size", "not reachable")
    end)

    it("a bad padding option is refused when a ConvTranspose2d is made (as Conv2d does)", function()
      expect_error(function() return nn.ConvTranspose2d(1, 1, 3, { padding = "foo" }) end, "padding must be")
    end)

    it("an unknown initialiser", function()
      expect_error(function() return nn.Linear(2, 2, { init = "he" }) end, "unknown initialiser 'he'",
        "glorot_normal", "glorot_uniform", "hvae_normal", "zeros")
      expect_error(function() return nn.Conv2d(1, 2, 3, { init = "orthogonal" }) end,
        "unknown initialiser 'orthogonal'")
      expect_error(function() return nn.ConvTranspose2d(1, 2, 3, { init = 5 }) end, "unknown initialiser '5'")
    end)

    it("non-integer and non-positive sizes", function()
      expect_error(function() return nn.Linear(2.5, 3) end, "Linear", "n_in", "positive integer", "2.5")
      expect_error(function() return nn.Linear(3, 0) end, "Linear", "n_out", "positive integer")
      expect_error(function() return nn.Linear("3", 2) end, "Linear", "n_in")
      expect_error(function() return nn.Conv2d(1.5, 2, 3) end, "Conv2d", "c_in")
      expect_error(function() return nn.Conv2d(1, -2, 3) end, "Conv2d", "c_out")
      expect_error(function() return nn.ConvTranspose2d(1, 2.5, 3) end, "ConvTranspose2d", "c_out")
      expect_error(function() return nn.Conv2d(1, 2, 2.5) end, "Conv2d", "kernel", "2.5")
      expect_error(function() return nn.Conv2d(1, 2, 3, { stride = 1.5 }) end, "stride", "1.5")
      expect_error(function() return nn.Conv2d(1, 2, 3, { stride = 0 })(lv.zeros({ 1, 1, 5, 5 })) end,
        "stride", "0")
      expect_error(function() return nn.ConvTranspose2d(1, 2, 3, { stride = { 2, 0 } })(lv.zeros({ 1, 1, 5, 5 })) end,
        "stride", "0")
      expect_error(function() return nn.Reshape(2.5, 3) end, "Reshape", "positive integer")
      expect_error(function() return nn.Reshape(0) end, "Reshape")
      expect_error(function() return nn.GaussianHead(3, 2.5) end, "positive integer")
      expect_error(function() return nn.Sequential(nn.Linear(2, 2), 5) end, "Sequential", "argument 2",
        "not a module")
    end)

    it("a kernel size that is not a positive integer is refused when the layer is made", function()
      for _, k in ipairs({ 0, -1, { 2.5, 3 }, { 3, 0 } }) do
        expect_error(function() return nn.Conv2d(1, 2, k) end, "Conv2d", "kernel")
        expect_error(function() return nn.ConvTranspose2d(1, 2, k) end, "ConvTranspose2d", "kernel")
      end
    end)

    it("constructor errors point at the caller, not into nn.lua", function()
      local function where(fn)
        local ok, msg = pcall(fn)
        assert.is_false(ok)
        return tostring(msg)
      end
      -- non-tail calls, so that the caller's line is on the stack
      local cases = {
        function() local m = nn.Linear(2.5, 3); return m end,
        function() local m = nn.Conv2d(1, 1, 3, { padding = "foo" }); return m end,
        function() local m = nn.Linear(2, 2, { init = "he" }); return m end,
      }
      for _, fn in ipairs(cases) do
        local msg = where(fn)
        assert(msg:find("nn_spec.lua", 1, true), "error position: " .. msg)
      end
    end)
  end)

  describe("gradients (f64)", function()
    local function gradcheck(f, inputs, what)
      local worst, w = lv.testing.gradcheck(f, inputs)
      assert(worst < TOL, string.format("%s: gradcheck error %.3g at input %s element %s output %s "
        .. "(tape %.17g, numeric %.17g)", what, worst, w.input, w.element, w.output, w.tape, w.numeric))
    end
    local function gradgradcheck(f, inputs, what)
      local worst, w = lv.testing.gradgradcheck(f, inputs)
      assert(worst < TOL, string.format("%s: gradgradcheck error %.3g at input %s element %s output %s "
        .. "(tape %.17g, numeric %.17g)", what, worst, w.input, w.element, w.output, w.tape, w.numeric))
    end

    --- f(x, w, b) through a layer: its weight and bias swapped for w and b
    -- for one forward.
    local function through(layer, ...)
      local extra = table.pack(...)
      return function(x, w, b)
        local ow, ob = layer.weight, layer.bias
        layer.weight, layer.bias = w, b
        local ok, y = pcall(layer.forward, layer, x, table.unpack(extra, 1, extra.n))
        layer.weight, layer.bias = ow, ob
        if not ok then error(y, 0) end
        return y
      end
    end

    it("Conv2d, SAME stride 2, w.r.t. input, weight and bias", function()
      local conv = nn.Conv2d(2, 3, 3, { stride = 2, padding = "same", dtype = "f64" })
      local f = through(conv)
      local inputs = { rand_tensor({ 2, 2, 5, 6 }), conv.weight:detach():clone(), rand_tensor({ 3 }) }
      gradcheck(f, inputs, "Conv2d")
      gradgradcheck(f, inputs, "Conv2d")
    end)

    it("Conv2d, rectangular kernel, stride {2, 1}, padding {1, 0, 2, 1}", function()
      local conv = nn.Conv2d(2, 2, { 2, 3 }, { stride = { 2, 1 }, padding = { 1, 0, 2, 1 }, dtype = "f64" })
      local f = through(conv)
      local inputs = { rand_tensor({ 2, 2, 5, 4 }), rand_tensor({ 2, 2, 2, 3 }), rand_tensor({ 2 }) }
      gradcheck(f, inputs, "Conv2d rect")
      gradgradcheck(f, inputs, "Conv2d rect")
    end)

    it("conv2d on a non-contiguous (transposed) input", function()
      local w = rand_tensor({ 2, 2, 3, 3 })
      local f = function(x) return nn.F.conv2d(x:transpose(3, 4), w, nil, { stride = 2, padding = "same" }) end
      gradcheck(f, { rand_tensor({ 2, 2, 6, 5 }) }, "conv2d transposed input")
      gradgradcheck(function(x, ww)
        return nn.F.conv2d(x:transpose(3, 4), ww, nil, { stride = 2, padding = "same" }):softplus()
      end, { rand_tensor({ 1, 2, 6, 5 }), rand_tensor({ 2, 2, 3, 3 }) }, "conv2d transposed input")
    end)

    it("ConvTranspose2d, SAME stride 2, w.r.t. input, weight and bias", function()
      local ct = nn.ConvTranspose2d(2, 3, 3, { stride = 2, padding = "same", dtype = "f64" })
      local f = through(ct)
      local inputs = { rand_tensor({ 2, 2, 3, 3 }), ct.weight:detach():clone(), rand_tensor({ 3 }) }
      gradcheck(f, inputs, "ConvTranspose2d")
      gradgradcheck(f, inputs, "ConvTranspose2d")
      -- an odd output size: 3x3 -> 5x6
      local g = through(ct, { 5, 6 })
      gradcheck(g, inputs, "ConvTranspose2d 5x6")
      gradgradcheck(g, inputs, "ConvTranspose2d 5x6")
    end)

    it("ConvTranspose2d with numeric padding and output_padding", function()
      local ct = nn.ConvTranspose2d(2, 2, 3, { stride = 2, padding = { 1, 2, 0, 1 }, output_padding = { 0, 1 },
        dtype = "f64" })
      local f = through(ct)
      local inputs = { rand_tensor({ 1, 2, 3, 3 }), rand_tensor({ 2, 2, 3, 3 }), rand_tensor({ 2 }) }
      gradcheck(f, inputs, "ConvTranspose2d numeric padding")
      gradgradcheck(f, inputs, "ConvTranspose2d numeric padding")
    end)

    it("a small conv decoder w.r.t. z (second order: the HVAE case)", function()
      local ct1 = nn.ConvTranspose2d(2, 2, 3, { stride = 2, padding = "same", dtype = "f64" })
      local dec = nn.Sequential(
        nn.Linear(3, 2 * 3 * 3, { dtype = "f64" }), nn.Reshape(2, 3, 3),
        ct1, nn.Softplus(),                                                -- 3x3 -> 6x6
        nn.ConvTranspose2d(2, 1, 3, { stride = 2, padding = "same", dtype = "f64" }))   -- -> 12x12
      set(dec._children[1].module.bias, rand_tensor({ 18 }))
      set(ct1.bias, rand_tensor({ 2 }))
      local z = rand_tensor({ 2, 3 })
      assert.are.equal("[2,1,12,12]", shape_of(dec(z)))
      gradcheck(function(zz) return dec(zz) end, { z }, "decoder")
      gradgradcheck(function(zz) return dec(zz) end, { z }, "decoder")
      -- the HVAE potential U(z) = -log p(x | z) per sample, differentiated
      -- twice w.r.t. z and, through its gradient, w.r.t. a decoder weight
      local data = lv.tensor(H.map(rand_table({ 2, 1, 12, 12 }, 0, 1), function(v) return v < 0.5 and 0 or 1 end),
        "f64")
      local function U(zz, w)
        local ow = ct1.weight
        ct1.weight = w
        local ok, logits = pcall(dec.forward, dec, zz)
        ct1.weight = ow
        if not ok then error(logits, 0) end
        return (logits:softplus() - data * logits):sum({ 2, 3, 4 })
      end
      local inputs = { z, ct1.weight:detach():clone() }
      gradcheck(U, inputs, "decoder U")
      gradgradcheck(U, inputs, "decoder U")
    end)
  end)
end)

describe("nn arguments (issue 14: whole-number floats, worded refusals)", function()
  it("takes whole-number floats wherever an integer is asked for, as luaL_checkinteger does", function()
    local l = nn.Linear(784.0, 2.0)
    assert.are.same({ 2, 784 }, l.weight:size())
    assert.are.equal("integer", math.type(l.n_in))
    local c = nn.Conv2d(1, 2.0, 3.0, { stride = 2.0, padding = 1.0 })
    assert.are.same({ 2, 1, 3, 3 }, c.weight:size())
    assert.are.same({ 1, 2, 3, 3 }, c(lv.zeros({ 1, 1, 5, 5 })):size())
    local same = nn.Conv2d(1, 1, 3.0, { stride = 2.0, padding = "same" })
    assert.are.same({ 1, 1, 3, 3 }, same(lv.zeros({ 1, 1, 5, 5 })):size())
    assert.are.same({ 3, 2, 2 }, nn.Reshape(2.0, 2)(lv.zeros({ 3, 4 })):size())
    assert.are.same({ 1, 2 }, { nn.F.same_padding(28.0, 5.0, 2.0) })
    -- padding {1, 2}: 3 + 2 - 3 + 1 rows, 3 + 4 - 3 + 1 columns
    assert.are.same({ 1, 1, 3, 5 }, nn.Conv2d(1, 1, 3, { padding = { 1.0, 2.0 } })(lv.zeros({ 1, 1, 3, 3 })):size())
    assert.are.equal(3, nn.GaussianHead(4, 3.0).d)
  end)

  it("refuses fractions, a dtype it does not know and non-tensor inputs, naming the layer", function()
    H.expect_error(function() nn.Linear(3.5, 4) end, "Linear: n_in must be a positive integer, got 3.5")
    H.expect_error(function() nn.Conv2d(1, 1, 2.5) end, "Conv2d: kernel must be an integer or {h, w} of integers")
    H.expect_error(function() nn.Linear(3, 4, { dtype = "f16" }) end, 'Linear: dtype must be "f32" or "f64" (got "f16")')
    H.expect_error(function() nn.Conv2d(1, 1, 3, { dtype = 64 }) end, 'Conv2d: dtype must be "f32" or "f64" (got number)')
    for name, layer in pairs({ Linear = nn.Linear(4, 2), Conv2d = nn.Conv2d(1, 1, 3),
                               ConvTranspose2d = nn.ConvTranspose2d(1, 1, 3), Softplus = nn.Softplus(),
                               Tanh = nn.Tanh(), Reshape = nn.Reshape(2, 2), Flatten = nn.Flatten(),
                               GaussianHead = nn.GaussianHead(2, 2) }) do
      H.expect_error(function() layer("str") end, name .. ": the input must be a tensor (got string)")
      H.expect_error(function() layer(nil) end, name .. ": the input must be a tensor (got nil)")
    end
    H.expect_error(function() nn.Sequential(nn.Linear(2, 2))({}) end, "Linear: the input must be a tensor (got table)")
  end)
end)
