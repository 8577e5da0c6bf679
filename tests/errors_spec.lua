-- errors_spec.lua -- bad input raises a Lua error that names the function
-- and says what was wrong (STYLE points 7 and 12), and no error leaves the
-- interpreter unusable or leaks memory.
--
-- Messages are matched by fragments (H.expect_error: plain string.find on
-- the pcall message), since the full text carries a position and, for
-- argument errors, a numbering that depends on the call style.

local lv = require "lvae"
local H = require "helpers"

local function expect_error(fn, ...)
  assert.has_error(fn)
  return H.expect_error(fn, ...)
end

describe("errors", function()
  local x = lv.zeros({ 2, 3 })
  local v = lv.zeros({ 3 })

  describe("wrong types and dtypes", function()
    it("a string where a tensor is expected", function()
      expect_error(function() return lv.exp("a") end, "exp", "tensor expected", "string")
      expect_error(function() return lv.sum({ 1, 2 }) end, "sum", "tensor expected", "table")
      expect_error(function() return lv.add("a", x) end, "add", "tensor or number expected")
      expect_error(function() return x + "a" end, "add", "tensor or number expected")
      expect_error(function() return lv.add(1, 2) end, "add", "tensor expected")
      expect_error(function() return lv.matmul(x, 2) end, "matmul", "tensor expected")
      expect_error(function() return lv.cat({ x, 1 }) end, "cat", "entry 2 is not a tensor")
    end)

    it("a string where a shape is expected", function()
      expect_error(function() return lv.zeros("x") end, "zeros", "shape table expected")
      expect_error(function() return lv.ones({ 2, "a" }) end, "ones", "size 2 is not an integer")
      expect_error(function() return lv.zeros({ 2.5 }) end, "zeros", "not an integer")
      expect_error(function() return x:view({ 3, "a" }) end, "view", "not an integer")
      expect_error(function() return lv.full({ 2 }, "a") end, "full", "number expected")
    end)

    it("an unknown dtype name", function()
      expect_error(function() return lv.zeros({ 2 }, "f16") end, "zeros", "unknown dtype 'f16'", "f32", "f64")
      expect_error(function() return lv.tensor({ 1 }, "f16") end, "tensor", "unknown dtype 'f16'")
      expect_error(function() return lv.arange(3, "int") end, "arange", "unknown dtype 'int'")
      expect_error(function() return x:to("f16") end, "to", "unknown dtype 'f16'")
      expect_error(function() return x:to() end, "to", "string expected")
      expect_error(function() return x:zeros_like("f16") end, "zeros_like", "unknown dtype")
    end)

    it("a tensor argument that is not a number table", function()
      expect_error(function() return lv.tensor(true) end, "tensor", "table of numbers expected")
      expect_error(function() return lv.tensor({ 1, "a" }) end, "tensor", "expected a number", "string")
    end)
  end)

  describe("sizes and shapes", function()
    it("a negative size", function()
      expect_error(function() return lv.zeros({ -1 }) end, "zeros", "negative")
      expect_error(function() return lv.ones({ 2, -3 }) end, "ones", "size 2 is negative")
      expect_error(function() return lv.full(-2, 1) end, "full", "negative")
      expect_error(function() return lv.eye(-1) end, "eye", "negative")
      expect_error(function() return lv.eye(2, -1) end, "eye", "negative")
      expect_error(function() return lv.linspace(0, 1, -1) end, "linspace", "negative")
      expect_error(function() return x:view(-2, 3) end, "view", "negative")
      expect_error(function() return x:narrow(1, 1, -1) end, "narrow", "length is negative")
    end)

    it("shapes that cannot be broadcast in add, naming both", function()
      local msg = expect_error(function() return lv.zeros({ 3, 4 }) + lv.zeros({ 5, 2 }) end,
                               "add", "cannot be broadcast", "[3,4]", "[5,2]")
      assert.truthy(msg:find("dimension", 1, true))
      expect_error(function() return lv.mul(lv.zeros({ 2, 3 }), lv.zeros({ 2 })) end,
                   "mul", "cannot be broadcast", "[2,3]", "[2]")
      expect_error(function() return lv.maximum(lv.zeros({ 4 }), lv.zeros({ 3 }, "f64")) end,
                   "maximum", "cannot be broadcast", "[4]", "[3]")
      expect_error(function() return lv.ge(x:t(), x) end, "ge", "cannot be broadcast", "[3,2]", "[2,3]")
    end)

    it("matmul shapes that do not align, naming both", function()
      expect_error(function() return lv.matmul(lv.zeros({ 3, 4 }), lv.zeros({ 5, 2 })) end,
                   "matmul", "do not align", "[3,4]", "[5,2]")
      expect_error(function() return lv.zeros({ 4 }):matmul(lv.zeros({ 3, 2 })) end,
                   "matmul", "do not align", "[4]", "[3,2]")
      expect_error(function() return lv.zeros({ 3, 4 }):matmul(lv.zeros({ 3 })) end,
                   "matmul", "do not align", "[3,4]", "[3]")
      expect_error(function() return lv.zeros({ 3 }):matmul(lv.zeros({ 4 })) end,
                   "matmul", "[3]", "[4]")
      expect_error(function() return lv.matmul(lv.zeros({ 2, 3, 4 }), lv.zeros({ 3, 4, 5 })) end,
                   "matmul", "cannot be broadcast", "[2,3,4]", "[3,4,5]")
      expect_error(function() return lv.matmul(lv.tensor(1), v) end, "matmul", "scalar")
      expect_error(function() return lv.dot(v, lv.zeros({ 4 })) end, "dot", "[3]", "[4]")
      expect_error(function() return lv.dot(x, x) end, "dot", "[2,3]")
      expect_error(function() return lv.outer(x, v) end, "outer", "[2,3]")
    end)

    it("view with the wrong element count", function()
      expect_error(function() return x:view(5) end, "view", "is invalid for a tensor of", "6")
      expect_error(function() return x:view(4, -1) end, "view", "is invalid for a tensor of 6")
      expect_error(function() return x:reshape(7) end, "reshape", "is invalid for a tensor of 6")
      expect_error(function() return x:view(-1, -1) end, "view", "only one size may be -1")
    end)

    it("view of a layout that needs a copy", function()
      expect_error(function() return x:t():view(6) end, "view", "use reshape")
      expect_error(function() return lv.zeros({ 4, 4 }):narrow(2, 1, 2):view(8) end, "view", "use reshape")
      expect_error(function() return lv.zeros({ 1, 3 }):expand(2, 3):view(6) end, "view", "use reshape")
    end)

    it("expand to an incompatible shape", function()
      expect_error(function() return x:expand(3, 4) end, "expand", "[2,3]", "[3,4]")
      expect_error(function() return x:expand(3) end, "expand", "[2,3]")
      expect_error(function() return x:expand(4, 3) end, "expand", "[4,3]")
      expect_error(function() return x:expand_as(lv.zeros({ 5, 5 })) end, "expand", "[5,5]")
    end)

    it("cat and stack of mismatched shapes", function()
      expect_error(function() return lv.cat({ x, lv.zeros({ 3, 2 }) }) end, "cat", "[3,2]", "[2,3]")
      expect_error(function() return lv.cat({ x, lv.zeros({ 3 }) }, 1) end, "cat", "[3]")
      expect_error(function() return lv.cat({ x, lv.zeros({ 2, 3, 1 }) }, 2) end, "cat", "[2,3,1]")
      expect_error(function() return lv.cat({}) end, "cat", "empty")
      expect_error(function() return lv.cat({ lv.tensor(1), lv.tensor(2) }) end, "cat", "0-dim")
      expect_error(function() return lv.stack({ x, v }) end, "stack", "[3]", "[2,3]")
      expect_error(function() return lv.stack({ x, x:t() }) end, "stack", "[3,2]")
      expect_error(function() return lv.cat({ x, x }, 3) end, "cat", "out of range")
      expect_error(function() return lv.stack({ x, x }, 4) end, "stack", "out of range")
    end)

    it("copy_ from a source that does not fit", function()
      expect_error(function() return x:copy_(lv.zeros({ 4 })) end, "copy_", "[4]", "[2,3]")
      expect_error(function() return x:copy_(lv.zeros({ 2, 2, 3 })) end, "copy_", "[2,2,3]")
      expect_error(function() x[1] = lv.zeros({ 5 }) end, "copy_", "[5]", "[3]")
    end)

    it("more than 8 dims", function()
      local eight = lv.zeros({ 1, 1, 1, 1, 1, 1, 1, 1 })
      expect_error(function() return lv.zeros({ 1, 1, 1, 1, 1, 1, 1, 1, 1 }) end, "zeros", "at most 8")
      expect_error(function() return lv.tensor({ { { { { { { { { 1 } } } } } } } } }) end, "tensor", "at most 8")
      expect_error(function() return eight:unsqueeze(1) end, "unsqueeze", "8")
      expect_error(function() return lv.stack({ eight, eight }) end, "stack", "8")
      expect_error(function() return x:view(1, 1, 1, 1, 1, 1, 1, 2, 3) end, "view", "more than 8")
      expect_error(function() return x:reshape({ 1, 1, 1, 1, 1, 1, 1, 2, 3 }) end, "reshape", "more than 8")
      expect_error(function() return x:expand(1, 1, 1, 1, 1, 1, 1, 2, 3) end, "expand", "more than 8")
    end)
  end)

  describe("dims and indices out of range", function()
    it("select", function()
      expect_error(function() return x:select(3, 1) end, "select", "dimension 3 out of range")
      expect_error(function() return x:select(-3, 1) end, "select", "out of range")
      expect_error(function() return x:select(1, 3) end, "select", "index 3 out of range", "size 2")
      expect_error(function() return x:select(2, 0) end, "select", "index 0 out of range")
      expect_error(function() return x:select(2, -4) end, "select", "index -4 out of range")
      expect_error(function() return lv.select(x, 1, 1.5) end, "select", "integer")
    end)

    it("narrow", function()
      expect_error(function() return x:narrow(3, 1, 1) end, "narrow", "dimension 3 out of range")
      expect_error(function() return x:narrow(2, 2, 5) end, "narrow", "2..6 out of range", "size 3")
      expect_error(function() return x:narrow(2, 0, 1) end, "narrow", "out of range")
      expect_error(function() return x:narrow(1, 3, 1) end, "narrow", "out of range")
    end)

    it("transpose and permute", function()
      expect_error(function() return x:transpose(1, 3) end, "transpose", "dimension 3 out of range")
      expect_error(function() return x:transpose(0, 1) end, "transpose", "dimension 0 out of range")
      expect_error(function() return lv.zeros({ 3 }):transpose() end, "transpose", "matrix")
      expect_error(function() return x:permute(1) end, "permute", "one entry per dimension")
      expect_error(function() return x:permute(1, 3) end, "permute", "out of range")
      expect_error(function() return x:permute(1, 1) end, "permute", "repeated")
    end)

    it("squeeze and unsqueeze", function()
      expect_error(function() return x:squeeze(3) end, "squeeze", "dimension 3 out of range")
      expect_error(function() return x:squeeze(-3) end, "squeeze", "out of range")
      expect_error(function() return lv.tensor(1):squeeze(1) end, "squeeze", "no dimensions")
      expect_error(function() return x:unsqueeze(4) end, "unsqueeze", "dimension 4 out of range")
      expect_error(function() return x:unsqueeze(-4) end, "unsqueeze", "out of range")
      expect_error(function() return x:unsqueeze(0) end, "unsqueeze", "out of range")
    end)

    it("size, stride and reductions", function()
      expect_error(function() return x:size(3) end, "size", "dimension 3 out of range")
      expect_error(function() return x:size(0) end, "size", "out of range")
      expect_error(function() return x:stride(-3) end, "stride", "out of range")
      expect_error(function() return x:sum(3) end, "sum", "dimension 3 out of range")
      expect_error(function() return x:mean({ 1, 3 }) end, "mean", "out of range")
      expect_error(function() return x:max({ 1, 1 }) end, "max", "repeated")
      expect_error(function() return x:sum({}) end, "sum", "empty list")
      expect_error(function() return lv.tensor(1):sum(1) end, "sum", "no dimensions")
    end)

    it("x[i] out of range, and x[0]", function()
      expect_error(function() return x[10] end, "index 10 out of range", "size 2")
      expect_error(function() return x[0] end, "index 0 out of range")
      expect_error(function() return x[-3] end, "index -3 out of range")
      expect_error(function() x[3] = 1 end, "index 3 out of range")
      expect_error(function() x[0] = lv.zeros({ 3 }) end, "index 0 out of range")
      expect_error(function() return lv.tensor(1)[1] end, "0-dim", "item")
      expect_error(function() x.foo = 1 end, "cannot set field 'foo'")
    end)

    it("x[i] with a non-integer index says so", function()
      local msg = expect_error(function() return v[1.5] end)
      assert(msg:find("1.5", 1, true) or msg:find("integer", 1, true),
             "message " .. msg .. " does not mention the non-integer index")
    end)
  end)

  describe("values", function()
    it("item of a tensor with more than one element", function()
      expect_error(function() return x:item() end, "item", "one element", "[2,3]")
      expect_error(function() return lv.zeros({ 0 }):item() end, "item", "[0]")
    end)

    it("non-finite arange and linspace arguments", function()
      local inf, nan = 1 / 0, 0 / 0
      expect_error(function() return lv.arange(inf) end, "arange", "finite")
      expect_error(function() return lv.arange(nan) end, "arange", "finite")
      expect_error(function() return lv.arange(0, inf) end, "arange", "finite")
      expect_error(function() return lv.arange(0, 1, nan) end, "arange", "finite")
      expect_error(function() return lv.arange(-inf, 0, 1) end, "arange", "finite")
      expect_error(function() return lv.arange(0, 1, 0) end, "arange", "step must not be zero")
      expect_error(function() return lv.arange(0, 1e15, 1e-3) end, "arange", "too large")
      expect_error(function() return lv.linspace(0, inf, 3) end, "linspace", "finite")
      expect_error(function() return lv.linspace(nan, 1, 3) end, "linspace", "finite")
    end)

    it("clamp with lo > hi or a NaN bound", function()
      expect_error(function() return x:clamp(2, 1) end, "clamp", "lower bound 2 exceeds upper bound 1")
      expect_error(function() return lv.clamp(x, 0 / 0) end, "clamp", "NaN")
      expect_error(function() return lv.clamp(x, nil, 0 / 0) end, "clamp", "NaN")
    end)

    it("argmax and argmin over two dims", function()
      local t = lv.zeros({ 2, 3, 4 })
      expect_error(function() return t:argmax({ 1, 3 }) end, "argmax", "one dimension or all")
      expect_error(function() return lv.argmin(t, { 2, 3 }) end, "argmin", "one dimension or all")
    end)

    it("max, min, argmax of an empty tensor", function()
      expect_error(function() return lv.zeros({ 0 }):max() end, "max", "empty")
      expect_error(function() return lv.zeros({ 0, 3 }):min(1) end, "min", "empty")
      expect_error(function() return lv.zeros({ 0 }):argmax() end, "argmax", "empty")
    end)

    it("a ragged nested table", function()
      expect_error(function() return lv.tensor({ { 1, 2 }, { 3 } }) end, "tensor", "ragged")
      expect_error(function() return lv.tensor({ { 1 }, { 2, 3 } }) end, "tensor", "ragged")
      expect_error(function() return lv.tensor({ { 1, 2 }, 3 }) end, "tensor", "table")
      expect_error(function() return lv.tensor({ 1, { 2 } }) end, "tensor", "number")
      expect_error(function() return lv.tensor({ { { 1 } }, { 2 } }) end, "tensor")
      expect_error(function() return lv.tensor({ { 1 }, {} }) end, "tensor", "ragged")
    end)

    it("a ragged nested table whose first row is empty", function()
      expect_error(function() return lv.tensor({ {}, { 1 } }) end, "tensor", "ragged")
    end)

    it("a closed tensor", function()
      local keep
      do
        local t <close> = lv.ones({ 4 })
        keep = t
      end
      expect_error(function() return keep:sum() end, "freed")
      expect_error(function() return keep + 1 end, "freed")
      expect_error(function() return keep[1] end, "freed")
      expect_error(function() return tostring(keep) end, "freed")
      expect_error(function() return lv.zeros({ 4 }) * keep end, "freed")
      expect_error(function() return lv.cat({ lv.zeros({ 4 }), keep }) end, "freed")
      expect_error(function() return lv.tensor(keep) end, "freed")
      expect_error(function() lv.zeros({ 2, 4 })[1] = keep end, "freed")
    end)
  end)

  it("leave the interpreter usable", function()
    local bad = {
      function() return lv.exp("a") end,
      function() return lv.zeros({ 3, 4 }) + lv.zeros({ 5, 2 }) end,
      function() return lv.matmul(lv.zeros({ 3, 4 }), lv.zeros({ 5, 2 })) end,
      function() return x:t():view(6) end,
      function() return lv.tensor({ { 1, 2 }, { 3 } }) end,
      function() return x[10] end,
      function() x[1] = lv.zeros({ 7 }) end,
      function() return lv.stack({ x, v }) end,
    }
    for _ = 1, 3 do
      for _, f in ipairs(bad) do assert.is_false(pcall(f)) end
      local y = lv.tensor({ { 1, 2 }, { 3, 4 } }, "f64")
      H.assert_same((y + 1):matmul(y:t()):sum(2), { 26, 46 })
      H.assert_same(lv.stack({ y, y }):size(), { 2, 2, 2 })
      assert.are.equal(" 1  2\n 3  4\n[f64 tensor of size 2x2]", tostring(y))
    end
    H.assert_same(x, { { 0, 0, 0 }, { 0, 0, 0 } })
  end)

  it("free what they allocated", function()
    local f64 = lv.zeros({ 5, 2 }, "f64")
    local bad = {
      function() return x + f64 end,
      function() return lv.matmul(x, f64) end,
      function() return 2 + lv.zeros({ 3 }) + lv.zeros({ 4 }) end,
      function() return lv.tensor({ { 1, 2 }, { 3, "a" } }) end,
      function() x[1] = lv.zeros({ 5 }) end,
      function() return lv.cat({ x, x:to("f64"), lv.zeros({ 3 }) }) end,
      function() return lv.stack({ x, x, lv.zeros({ 3 }) }) end,
      function() return x:t():view(6) end,
      function() return lv.dot(x:select(1, 1), f64:select(2, 1)) end,
    }
    local function live()
      collectgarbage()
      collectgarbage()
      return lv.memory_stats().live_bytes
    end
    for i, f in ipairs(bad) do
      local before = live()
      for _ = 1, 200 do assert.is_false(pcall(f)) end
      assert.are.equal(before, live(), "bad call " .. i)
    end
  end)
end)

describe("sizes whose product overflows", function()
  local nn = require "lvae.nn"
  it("view, reshape and nn.Reshape refuse a shape whose product wraps around to the element count", function()
    -- 4611686018427387907 * 4 wraps to 12 in 64 bits: accepted once, then read out of bounds
    local x = lv.arange(0, 12)
    expect_error(function() return x:view({ 4611686018427387907, 4 }) end, "is invalid for a tensor of 12 elements")
    expect_error(function() return x:reshape({ 4611686018427387907, 4 }) end, "is invalid for a tensor of 12 elements")
    expect_error(function() return x:view({ -1, 4611686018427387907 }) end, "is invalid")
    expect_error(function() return nn.Reshape(4611686018427387907, 4)(lv.zeros({ 1, 12 })) end, "is invalid")
    assert.are.same({ 3, 4 }, x:view({ 3, -1 }):size())
  end)
  it("a zero-size tensor may not have dims whose other sizes overflow its strides", function()
    expect_error(function() return lv.zeros({ 0, 2 ^ 62, 2 ^ 62 }) end, "shape is too large")
    expect_error(function() return lv.zeros({ 0 }):view({ 0, 2 ^ 40, 2 ^ 40 }) end, "shape is too large")
    assert.are.same({ 0, 5 }, lv.zeros({ 0, 5 }):size())
    assert.are.same({ 5, 0 }, lv.zeros({ 0, 5 }):view({ 5, 0 }):size())
  end)
end)

describe("non-finite values and raw Lua errors (issue 14, defects 6 and 9)", function()
  local D = require "lvae.distributions"
  it("Normal and Bernoulli refuse NaN and infinite parameters", function()
    expect_error(function() return D.Normal(lv.zeros({ 2 }), lv.tensor({ 0 / 0, 1 })) end, "sigma must be finite (1 NaN")
    expect_error(function() return D.Normal(lv.zeros({ 2 }), lv.tensor({ math.huge, 1 })) end, "1 infinite")
    expect_error(function() return D.Normal(lv.tensor({ 0 / 0, 1 }), lv.ones({ 2 })) end, "mu must not be NaN")
    expect_error(function() return D.Bernoulli({ probs = lv.tensor({ 0 / 0, 0.5 }) }) end, "probs must lie in [0, 1]")
    expect_error(function() return D.Bernoulli({ logits = lv.tensor({ 0 / 0, 0.5 }) }) end, "logits must not be NaN")
    assert.truthy(D.Normal(lv.zeros({ 2 }), lv.ones({ 2 })))
  end)
  it("var refuses a negative correction; no_grad a non-function; split a non-table", function()
    expect_error(function() return lv.ones({ 3 }):var(1, false, -1) end, "correction must be an integer >= 0")
    expect_error(function() return lv.no_grad("notfn") end, "lv.no_grad: expected a function")
    expect_error(function() return lv.data.split({ x = lv.zeros({ 4, 2 }) }, true) end, "data.split: options must be a table")
    assert.are.equal(2, lv.no_grad(function() return 2 end))
  end)
end)
