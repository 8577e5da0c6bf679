-- conv_layout_spec.lua -- the two column layouts of lv.im2col / lv.col2im
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
