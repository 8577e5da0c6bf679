-- conv_ops_spec.lua -- the convolution ops of the core.
--
-- The fused ops (src/ops_conv_fused.c): lv.conv2d(x, w), its adjoint in x
-- lv.conv_transpose2d(y, w) and its adjoint in w lv.conv_weight_grad(x,
-- y), against im2col + matmul (a different computation of the same
-- numbers), the adjoint identities <conv2d(x, w), y> = <x, convT(y, w)> =
-- <w, wgrad(x, y)>, first and second derivatives in both operands
-- (gradcheck, gradgradcheck: the VJPs are the other two ops), batches
-- that span several chunks, and errors.
--
-- The two column layouts of lv.im2col / lv.col2im
-- (src/ops_conv.c): "image" gives [N, C kh kw, P], "batch" gives
-- [C kh kw, N, P], the batch's windows side by side so that a convolution
-- is one GEMM. The batch layout must hold exactly the image layout's
-- numbers, permuted; col2im must be im2col's adjoint in both layouts
-- (<im2col(x), c> = <x, col2im(c)>), with its gradient to second order;
-- and a bad layout is refused by name.
--
-- Geometries: TensorFlow's SAME padding at stride 2 (asymmetric, the SPEC
-- §6.2 encoder), stride 1 with symmetric padding, and a rectangular kernel
-- with rectangular stride: each puts windows partly outside the image on
-- some sides, which is where the kernels' window ranges are computed.

local lv = require "lvae"
local H = require "helpers"

local geometries = {
  { name = "5x5 stride 2 SAME (1 before, 2 after) on 7x7", C = 3, Hh = 7, W = 7,
    o = { kernel = 5, stride = 2, padding = { 1, 2, 1, 2 } } },
  { name = "3x3 stride 1 padding 1 on 5x6", C = 2, Hh = 5, W = 6, o = { kernel = 3, stride = 1, padding = 1 } },
  { name = "2x3 kernel, stride 2x1, padding {0, 1, 2, 0} on 6x5", C = 2, Hh = 6, W = 5,
    o = { kernel = { 2, 3 }, stride = { 2, 1 }, padding = { 0, 1, 2, 0 } } },
}

local function with(o, extra)
  local t = {}
  for k, v in pairs(o) do t[k] = v end
  for k, v in pairs(extra) do t[k] = v end
  return t
end

local function dot(a, b) return (a * b):sum():item() end

describe("conv2d, conv_transpose2d, conv_weight_grad", function()
  for _, g in ipairs(geometries) do
    describe(g.name, function()
      local N, O = 3, 4
      local kh = type(g.o.kernel) == "table" and g.o.kernel[1] or g.o.kernel
      local kw = type(g.o.kernel) == "table" and g.o.kernel[2] or g.o.kernel
      local x = lv.randn({ N, g.C, g.Hh, g.W }, "f64")
      local w = lv.randn({ O, g.C, kh, kw }, "f64")
      local y = lv.conv2d(x, w, g.o)
      local Ho, Wo = y:size(3), y:size(4)
      local G = lv.randn(y:size(), "f64")
      local sized = with(g.o, { size = { g.Hh, g.W } })

      it("conv2d equals W @ im2col(x)", function()
        local cols = lv.im2col(x, g.o)                       -- [N, K, P]
        local ref = w:reshape(O, g.C * kh * kw):matmul(cols):view(N, O, Ho, Wo)
        H.assert_close(y, ref, 1e-12, 1e-12)
      end)

      it("the adjoint identities hold", function()
        local a = dot(y, G)
        local b = dot(x, lv.conv_transpose2d(G, w, sized))
        local c = dot(w, lv.conv_weight_grad(x, G, g.o))
        assert.is_true(math.abs(a - b) <= 1e-11 * math.max(1, math.abs(a)), string.format("%.17g %.17g", a, b))
        assert.is_true(math.abs(a - c) <= 1e-11 * math.max(1, math.abs(a)), string.format("%.17g %.17g", a, c))
      end)

      it("first and second derivatives of each op in both operands", function()
        local fs = {
          conv2d = { function(a, b) return lv.conv2d(a, b, g.o):square() end, { x, w } },
          conv_transpose2d = { function(a, b) return lv.conv_transpose2d(a, b, sized):square() end, { G, w } },
          conv_weight_grad = { function(a, b) return lv.conv_weight_grad(a, b, g.o):square() end, { x, G } },
        }
        for name, f in pairs(fs) do
          local e1 = lv.testing.gradcheck(f[1], f[2])
          local e2 = lv.testing.gradgradcheck(f[1], f[2])
          assert(e1 < 1e-6, name .. " gradcheck " .. e1)
          assert(e2 < 1e-6, name .. " gradgradcheck " .. e2)
        end
      end)
    end)
  end

  it("a batch of many chunks (f32) gives the same as one image at a time", function()
    local x = lv.randn({ 37, 16, 14, 14 })
    local w = lv.randn({ 32, 16, 5, 5 })
    local o = { kernel = 5, stride = 2, padding = { 1, 2, 1, 2 } }
    local y = lv.conv2d(x, w, o)
    local G = lv.randn(y:size())
    local dw = lv.conv_weight_grad(x, G, o)
    local back = lv.conv_transpose2d(G, w, with(o, { size = { 14, 14 } }))
    local dw_sum = lv.zeros(w:size(), "f64")
    -- An output is a sum of 400 products of unit normals (size about 20):
    -- f32 rounding of a different summation order reaches 2e-5 in an
    -- output that cancels to near zero, so the absolute tolerance follows
    -- the terms' size, not the result's. A wrong chunk is off by O(1).
    for n = 1, 37 do
      local xn, Gn = x:narrow(1, n, 1), G:narrow(1, n, 1)
      H.assert_close(y:narrow(1, n, 1), lv.conv2d(xn, w, o), 1e-4, 2e-4)
      H.assert_close(back:narrow(1, n, 1), lv.conv_transpose2d(Gn, w, with(o, { size = { 14, 14 } })), 1e-4, 2e-4)
      dw_sum = dw_sum + lv.conv_weight_grad(xn, Gn, o):to("f64")
    end
    -- each weight gradient sums 37 x 49 products (size about 40)
    H.assert_close(dw:to("f64"), dw_sum, 1e-3, 1e-3)
  end)

  it("the weight gradient agrees across thread counts (to OpenBLAS's rounding)", function()
    local x, o = lv.randn({ 50, 8, 14, 14 }), { kernel = 5, stride = 2, padding = 2 }
    local G = lv.randn(lv.conv2d(x, lv.zeros({ 16, 8, 5, 5 }), o):size())
    local threads = lv.num_threads()
    lv.set_num_threads(1)
    local one = lv.conv_weight_grad(x, G, o)
    lv.set_num_threads(2)
    local two = lv.conv_weight_grad(x, G, o)
    lv.set_num_threads(threads)
    -- chunks are summed in a fixed order; only OpenBLAS's own GEMMs may
    -- round differently with another thread count
    H.assert_close(one, two, 1e-5, 1e-4)
  end)

  it("errors name the operand and the shapes", function()
    local x, w = lv.randn({ 2, 3, 8, 8 }), lv.randn({ 4, 3, 3, 3 })
    local fails = H.expect_error
    fails(function() lv.conv2d(x, lv.randn({ 4, 2, 3, 3 }), { kernel = 3 }) end, "the image has 3 channels")
    fails(function() lv.conv2d(x, w, { kernel = 5 }) end, "expected a weight [O, C, 5, 5]")
    fails(function() lv.conv2d(lv.randn({ 3, 8, 8 }), w, { kernel = 3 }) end, "expected an image [N, C, H, W]")
    fails(function() lv.conv2d(x, w:to("f64"), { kernel = 3 }) end, "one dtype")
    fails(function() lv.conv2d(lv.randn({ 1, 3, 2, 2 }), w, { kernel = 3 }) end, "smaller than the kernel")
    fails(function() lv.conv_transpose2d(lv.randn({ 2, 4, 6, 6 }), w, { kernel = 3 }) end, "output size must be given")
    fails(function() lv.conv_transpose2d(lv.randn({ 2, 4, 5, 6 }), w, { kernel = 3, size = { 8, 8 } }) end, "windows")
    fails(function() lv.conv_weight_grad(x, lv.randn({ 2, 4, 5, 5 }), { kernel = 3 }) end, "the gradient is [2,4,5,5]")
  end)
end)

describe("im2col and col2im layouts", function()
  for _, g in ipairs(geometries) do
    describe(g.name, function()
      local N = 3
      local x = lv.randn({ N, g.C, g.Hh, g.W }, "f64")

      it("the batch layout is the image layout with its first two dims swapped", function()
        local image = lv.im2col(x, g.o)
        local batch = lv.im2col(x, with(g.o, { layout = "batch" }))
        assert.are.same({ image:size(2), N, image:size(3) }, batch:size())
        H.assert_close(batch, image:transpose(1, 2), 0, 0)
      end)

      it("col2im is im2col's adjoint in the batch layout, and agrees with the image layout", function()
        local cols = lv.im2col(x, with(g.o, { layout = "batch" }))
        local c = lv.randn(cols:size(), "f64")
        local back = lv.col2im(c, with(g.o, { layout = "batch", size = { g.Hh, g.W } }))
        assert.are.same(x:size(), back:size())
        local lhs, rhs = (cols * c):sum():item(), (x * back):sum():item()
        assert.is_true(math.abs(lhs - rhs) <= 1e-12 * math.max(1, math.abs(lhs)),
          string.format("<im2col x, c> = %.17g but <x, col2im c> = %.17g", lhs, rhs))
        local via_image = lv.col2im(c:transpose(1, 2):contiguous(), with(g.o, { size = { g.Hh, g.W } }))
        H.assert_close(back, via_image, 1e-15, 1e-15)
      end)

      it("gradients to second order (gradcheck, gradgradcheck)", function()
        local o = with(g.o, { layout = "batch" })
        local f = function(v) return lv.im2col(v, o):square() end
        assert.is_true(lv.testing.gradcheck(f, { x }) < 1e-6)
        assert.is_true(lv.testing.gradgradcheck(f, { x }) < 1e-6)
      end)
    end)
  end

  it("f32 batch layout equals f32 image layout", function()
    local x = lv.randn({ 2, 4, 9, 9 })
    local o = { kernel = 5, stride = 2, padding = { 2, 2, 2, 2 } }
    H.assert_close(lv.im2col(x, with(o, { layout = "batch" })), lv.im2col(x, o):transpose(1, 2), 0, 0)
  end)

  it("refuses an unknown layout and columns of the wrong shape", function()
    local x = lv.randn({ 1, 1, 4, 4 })
    local ok, err = pcall(lv.im2col, x, { kernel = 2, layout = "nchw" })
    assert.is_false(ok)
    assert.truthy(tostring(err):find("option 'layout'", 1, true), tostring(err))
    ok, err = pcall(lv.col2im, lv.zeros({ 4, 2, 5 }), { kernel = 2, size = { 4, 4 }, layout = "batch" })
    assert.is_false(ok)
    assert.truthy(tostring(err):find("expected columns [C*4, N, 9]", 1, true), tostring(err))
  end)
end)
