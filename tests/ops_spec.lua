-- ops_spec.lua -- the arithmetic of the core (src/ops_elementwise*.{c,h},
-- src/ops_reduce*.{c,h}, src/ops_matmul.c, src/lua_ops.c): unary and
-- binary elementwise ops with broadcasting, reductions, products.
--
-- Each op is checked in f32 and f64 against a closed form or a naive
-- reference in plain Lua (tests/helpers.lua), and again on non-contiguous
-- inputs (transposed, strided, narrowed, expanded) against its result on
-- a contiguous copy. Expected values are computed in double from the
-- inputs as the dtype holds them (H.round), then compared with a relative
-- tolerance of H.rtol[dtype].

local lv = require "lvae"
local H = require "helpers"

local same, close = H.assert_same, H.assert_close

--- op(x) on each layout of x equals op(x:contiguous()) exactly.
local function check_layouts(x, op, what)
  local ref = op(x:contiguous())
  for _, pair in ipairs(H.layouts(x)) do
    same(op(pair[2]), ref, (what or "") .. " on a " .. pair[1] .. " input")
  end
end

---- unary -----------------------------------------------------------------

-- Inputs: moderate values, tiny ones, and large |x|.
local grid = { -1000, -90, -30, -20, -5, -1.5, -1, -0.5, -1e-3, -1e-8, 0,
               1e-8, 1e-3, 0.5, 1, 1.5, 5, 20, 30, 90, 1000 }
local positive = { 1e-30, 1e-8, 1e-3, 0.1, 0.5, 1, 1.5, 2, 10, 1e3, 1e20 }

local function within(lo, hi)
  local out = {}
  for _, v in ipairs(grid) do
    if v >= lo and v <= hi then out[#out + 1] = v end
  end
  return out
end

local function sign(v)
  if v > 0 then return 1 elseif v < 0 then return -1 else return v end
end

-- name, closed form (in double), inputs. exp and expm1 stay where f32 does
-- not overflow; log1p above -1.
local unary_cases = {
  { "neg", function(v) return -v end, grid },
  { "exp", math.exp, within(-1000, 80) },
  { "log", math.log, positive },
  { "log1p", H.log1p, { -0.5, -1e-3, -1e-8, 0, 1e-8, 1e-3, 0.5, 1, 5, 1e3, 1e20 } },
  { "expm1", H.expm1, within(-1000, 80) },
  { "sqrt", math.sqrt, positive },
  { "square", function(v) return v * v end, grid },
  { "tanh", H.tanh, grid },
  { "sigmoid", H.sigmoid, grid },
  { "softplus", H.softplus, grid },
  { "logsigmoid", H.logsigmoid, grid },
  { "relu", function(v) return math.max(v, 0) end, grid },
  { "abs", math.abs, grid },
  { "sign", sign, grid },
}

describe("unary ops", function()
  for _, dt in ipairs(H.dtypes) do
    describe(dt, function()
      for _, case in ipairs(unary_cases) do
        local name, f, inputs = case[1], case[2], case[3]
        it(name .. " against its closed form", function()
          local x = lv.tensor(inputs, dt)
          local expected = H.map(x, function(v) return H.round(f(v), dt) end)
          -- lv.f(x) and x:f() are one function
          local y = lv[name](x)
          assert.are.equal(dt, y:dtype())
          close(y, expected, dt, 0, name)
          same(x[name](x), y:totable())
        end)

        it(name .. " on non-contiguous input", function()
          local v = lv.tensor(inputs, dt)
          local n = #inputs
          -- a [4, n] matrix of the inputs (rows shifted) in several layouts
          local rows = {}
          for r = 1, 4 do
            rows[r] = {}
            for i = 1, n do rows[r][i] = inputs[(i + r - 2) % n + 1] end
          end
          local m = lv.tensor(rows, dt)
          check_layouts(m, lv[name], name)
          -- 3-D, permuted
          local m3 = lv.stack({ m, m }, 1):permute(3, 1, 2)
          same(lv[name](m3), lv[name](m3:contiguous()):totable(), name .. " permuted")
          -- expanded (stride 0)
          local e = v:view(1, n):expand(3, n)
          same(lv[name](e), lv[name](e:contiguous()):totable(), name .. " expanded")
          -- a 0-dim input
          same(lv[name](lv.tensor(inputs[1], dt)), lv[name](v):totable()[1], name .. " 0-dim")
        end)
      end

      it("large |x| without overflow or NaN", function()
        local x = lv.tensor({ -1000, 1000 }, dt)
        same(x:softplus(), { 0, 1000 })
        same(x:logsigmoid(), { -1000, 0 })
        same(x:sigmoid(), { 0, 1 })
        same(x:tanh(), { -1, 1 })
        -- softplus(-1000) is exp(-1000): 0 in both dtypes, and not NaN
        local s = lv.softplus(lv.tensor({ -1000 }, dt)):item()
        assert.is_true(s == s and s >= 0 and s < 1e-300)
        close(lv.tensor({ -50 }, dt):softplus(), { H.round(math.exp(-50), dt) }, dt)
        close(lv.tensor({ 50 }, dt):logsigmoid(), { -H.round(math.exp(-50), dt) }, dt)
        close(lv.tensor({ -50 }, dt):sigmoid(), { H.round(math.exp(-50), dt) }, dt)
        close(lv.tensor({ 0 }, dt):softplus(), { H.round(math.log(2), dt) }, dt)
        close(lv.tensor({ 0 }, dt):logsigmoid(), { -H.round(math.log(2), dt) }, dt)
        same(lv.tensor({ 0 }, dt):sigmoid(), { 0.5 })
        local tiny = H.round(1e-10, dt)
        close(lv.tensor({ 1e-10 }, dt):expm1(), { H.round(tiny + tiny * tiny / 2, dt) }, dt)
        close(lv.tensor({ 1e-10 }, dt):log1p(), { H.round(tiny - tiny * tiny / 2, dt) }, dt)
      end)

      it("special values", function()
        local inf, nan = 1 / 0, 0 / 0
        local x = lv.tensor({ -inf, inf, nan }, dt)
        same(x:exp(), { 0, inf, nan })
        same(x:softplus(), { 0, inf, nan })
        same(x:sigmoid(), { 0, 1, nan })
        same(x:logsigmoid(), { -inf, 0, nan })
        same(x:tanh(), { -1, 1, nan })
        same(x:relu(), { 0, inf, nan })
        same(x:abs(), { inf, inf, nan })
        same(x:sign(), { -1, 1, nan })
        same(x:neg(), { inf, -inf, nan })
        same(lv.tensor({ 0, -1 }, dt):log(), { -inf, nan })
        same(lv.tensor({ -1 }, dt):sqrt(), { nan })
        same(lv.tensor({ -1 }, dt):log1p(), { -inf })
      end)

      it("clamp with both bounds, or either nil", function()
        local x = lv.tensor({ -3, -1, 0, 0.5, 2, 7 }, dt)
        same(x:clamp(-1, 2), { -1, -1, 0, 0.5, 2, 2 })
        same(x:clamp(0, nil), { 0, 0, 0, 0.5, 2, 7 })
        same(x:clamp(0), { 0, 0, 0, 0.5, 2, 7 })
        same(x:clamp(nil, 1), { -3, -1, 0, 0.5, 1, 1 })
        same(x:clamp(), x:totable())
        same(lv.clamp(x, 0.5, 0.5), { 0.5, 0.5, 0.5, 0.5, 0.5, 0.5 })
        same(x:clamp(-0.1, 0.1), { H.round(-0.1, dt), H.round(-0.1, dt), 0, H.round(0.1, dt),
                                   H.round(0.1, dt), H.round(0.1, dt) })
        check_layouts(lv.tensor({ { -3, -1, 0 }, { 0.5, 2, 7 } }, dt),
                      function(t) return t:clamp(-1, 2) end, "clamp")
        local e = x:view(1, 6):expand(2, 6)
        same(e:clamp(nil, 1), { { -3, -1, 0, 0.5, 1, 1 }, { -3, -1, 0, 0.5, 1, 1 } })
      end)

      it("NaN propagates through clamp", function()
        local nan = 0 / 0
        same(lv.tensor({ nan, 5, -5 }, dt):clamp(-1, 1), { nan, 1, -1 })
        same(lv.tensor({ nan }, dt):clamp(nil, 1), { nan })
        same(lv.tensor({ nan }, dt):clamp(0, nil), { nan })
      end)
    end)
  end
end)

---- binary ----------------------------------------------------------------

local binary_cases = {
  { "add", function(a, b) return a + b end },
  { "sub", function(a, b) return a - b end },
  { "mul", function(a, b) return a * b end },
  { "div", function(a, b) return a / b end },
  { "pow", function(a, b) return a ^ b end },
  { "maximum", function(a, b) return math.max(a, b) end },
  { "minimum", function(a, b) return math.min(a, b) end },
  { "eq", function(a, b) return a == b and 1 or 0 end },
  { "ne", function(a, b) return a ~= b and 1 or 0 end },
  { "lt", function(a, b) return a < b and 1 or 0 end },
  { "le", function(a, b) return a <= b and 1 or 0 end },
  { "gt", function(a, b) return a > b and 1 or 0 end },
  { "ge", function(a, b) return a >= b and 1 or 0 end },
}

describe("binary ops", function()
  for _, dt in ipairs(H.dtypes) do
    describe(dt, function()
      local gen = H.generator(7)
      -- positive values (pow needs them); equal values appear for the
      -- comparisons.
      local function pos(shape) return H.random_table(shape, gen, 0.25, 3, true) end
      local function rnd(shape) return H.random_table(shape, gen, 0.1, 3) end

      --- op(a, b) against the naive broadcast reference, in dtype dt.
      local function check(name, f, a, b)
        local ta, tb = lv.tensor(a, dt), lv.tensor(b, dt)
        local expected = H.zip(ta, tb, function(u, v) return H.round(f(u, v), dt) end)
        local y = lv[name](ta, tb)
        assert.are.equal(dt, y:dtype())
        close(y, expected, dt, 0, name)
        return ta, tb, y
      end

      for _, case in ipairs(binary_cases) do
        local name, f = case[1], case[2]
        it(name .. " with broadcasting", function()
          local shapes = {
            { { 3, 4 }, { 3, 4 } }, { { 3, 1 }, { 1, 4 } }, { { 2, 3, 4 }, { 4 } },
            { { 4 }, { 2, 3, 4 } }, { { 2, 1, 4 }, { 3, 1 } }, { { 5 }, {} }, { {}, { 5 } },
            { {}, {} },
          }
          for _, s in ipairs(shapes) do
            check(name, f, pos(s[1]), pos(s[2]))
            check(name, f, rnd(s[1]), rnd(s[2]))
          end
          -- equal operands
          local a = pos({ 6 })
          check(name, f, a, a)
          -- empty operands
          assert.are.same({ 0, 3 }, lv[name](lv.zeros({ 0, 3 }, dt), lv.ones({ 3 }, dt)):size())
          assert.are.same({ 2, 0 }, lv[name](lv.zeros({ 2, 1 }, dt), lv.ones({ 0 }, dt)):size())
        end)

        it(name .. " on non-contiguous inputs", function()
          local a = lv.tensor(pos({ 3, 4 }), dt)
          local b = lv.tensor(pos({ 3, 4 }), dt)
          local ref = lv[name](a, b)
          for _, la in ipairs(H.layouts(a)) do
            for _, lb in ipairs(H.layouts(b)) do
              same(lv[name](la[2], lb[2]), ref, name .. " " .. la[1] .. " with " .. lb[1])
            end
            same(lv[name](la[2], b), ref, name .. " " .. la[1] .. " with contiguous")
          end
          -- expanded operands against their copies
          local r = lv.tensor(pos({ 1, 4 }), dt):expand(3, 4)
          local c = lv.tensor(pos({ 3, 1 }), dt):expand(3, 4)
          same(lv[name](r, c), lv[name](r:contiguous(), c:contiguous()), name .. " expanded")
          same(lv[name](a:t(), c:t()), lv[name](a:t():contiguous(), c:t():contiguous()),
               name .. " transposed with expanded")
          -- a broadcast of a transposed operand
          local row = lv.tensor(pos({ 4, 1 }), dt):t()
          same(lv[name](a, row), lv[name](a, row:contiguous()), name .. " with a transposed row")
        end)
      end

      it("metamethods and scalars on either side", function()
        local x = lv.tensor({ { 1, 2 }, { 4, 0.5 } }, dt)
        local y = lv.tensor({ 10, 20 }, dt)
        same(x + y, { { 11, 22 }, { 14, 20.5 } })
        same(x - y, { { -9, -18 }, { -6, -19.5 } })
        same(x * y, { { 10, 40 }, { 40, 10 } })
        same(y / x, { { 10, 10 }, { 2.5, 40 } })
        same(x ^ 2, { { 1, 4 }, { 16, 0.25 } })
        same(-x, { { -1, -2 }, { -4, -0.5 } })
        same(2 - x, { { 1, 0 }, { -2, 1.5 } })
        same(x - 2, { { -1, 0 }, { 2, -1.5 } })
        same(x / 2, { { 0.5, 1 }, { 2, 0.25 } })
        same(2 / x, { { 2, 1 }, { 0.5, 4 } })
        same(2 ^ x, { { 2, 4 }, { 16, H.round(math.sqrt(2), dt) } })
        same(x * 3, { { 3, 6 }, { 12, 1.5 } })
        same(3 * x, { { 3, 6 }, { 12, 1.5 } })
        same(1 + x, { { 2, 3 }, { 5, 1.5 } })
        same(lv.add(2, x), { { 3, 4 }, { 6, 2.5 } })
        same(lv.add(x, 2), { { 3, 4 }, { 6, 2.5 } })
        same(x:add(2), { { 3, 4 }, { 6, 2.5 } })
        same(lv.maximum(x, 1.5), { { 1.5, 2 }, { 4, 1.5 } })
        same(lv.minimum(1.5, x), { { 1, 1.5 }, { 1.5, 0.5 } })
        same(lv.lt(x, 2), { { 1, 0 }, { 0, 1 } })
        same(lv.ge(2, x), { { 1, 1 }, { 0, 1 } })
        assert.are.equal(dt, (2 - x):dtype())
        assert.are.equal(dt, (x + 0.1):dtype())
        same(x + 0.1, H.zip(x, H.round(0.1, dt), function(u, v) return H.round(u + v, dt) end))
        -- a 0-dim tensor as an operand
        same(x * lv.tensor(2, dt), { { 2, 4 }, { 8, 1 } })
        same(lv.tensor(2, dt) + lv.tensor(3, dt), 5)
        -- scalar ops on non-contiguous input
        same(2 - x:t(), { { 1, -2 }, { 0, 1.5 } })
        same(x:t() / 2, { { 0.5, 2 }, { 1, 0.25 } })
      end)

      it("mixed f32 and f64 promote to f64", function()
        local other = dt == "f32" and "f64" or "f32"
        local a = lv.tensor({ 0.1, 0.2, 3 }, dt)
        local b = lv.tensor({ { 0.3 }, { 0.7 } }, other)
        for _, case in ipairs(binary_cases) do
          local name, f = case[1], case[2]
          local y = lv[name](a, b)
          assert.are.equal("f64", y:dtype(), name)
          same(y, H.zip(a, b, f), name)
          assert.are.equal("f64", lv[name](b, a):dtype(), name)
          same(lv[name](b, a), H.zip(b, a, f), name)
        end
        assert.are.equal("f64", (a:view(3, 1) + b:t()):dtype())
        same(a:view(3, 1) + b:t(), H.zip(a:view(3, 1), b:t(), function(u, v) return u + v end))
      end)

      it("NaN propagates through maximum and minimum", function()
        local nan = 0 / 0
        local a = lv.tensor({ nan, 1, nan, 2 }, dt)
        local b = lv.tensor({ 1, nan, nan, 3 }, dt)
        same(lv.maximum(a, b), { nan, nan, nan, 3 })
        same(lv.minimum(a, b), { nan, nan, nan, 2 })
        same(lv.maximum(b, a), { nan, nan, nan, 3 })
        same(lv.minimum(b, a), { nan, nan, nan, 2 })
        same(lv.maximum(a, 0), { nan, 1, nan, 2 })
        same(lv.minimum(0, a), { nan, 0, nan, 0 })
        -- comparisons with NaN are false, ne is true
        same(lv.eq(a, a), { 0, 1, 0, 1 })
        same(lv.ne(a, a), { 1, 0, 1, 0 })
        same(lv.lt(a, b), { 0, 0, 0, 1 })
        same(lv.ge(a, b), { 0, 0, 0, 0 })
      end)
    end)
  end
end)

---- reductions ------------------------------------------------------------

describe("reductions", function()
  for _, dt in ipairs(H.dtypes) do
    describe(dt, function()
      local gen = H.generator(11)
      local values = H.random_table({ 2, 3, 4 }, gen, -2, 2)   -- distinct: no ties
      local x = lv.tensor(values, dt)
      local dim_sets = { false, 1, 2, 3, -1, -3, { 1, 3 }, { 3, 1 }, { 2, 3 }, { 1, 2 }, { 1, 2, 3 }, { -1, 2 } }

      local reducers = {
        sum = H.reducers.sum, mean = H.reducers.mean, max = H.reducers.max,
        min = H.reducers.min, logsumexp = H.reducers.logsumexp,
        var = H.variance(1),
      }

      --- reduction `name` of t over dims against the reference, rounded to
      -- the result's dtype.
      local function check(name, fn, t, dims, keepdim, out_dt, correction)
        local d = dims or nil
        local y = lv[name](t, d, keepdim, correction)
        local expected = H.map(H.reduce(t, d, keepdim, fn), function(v) return H.round(v, out_dt) end)
        assert.are.equal(out_dt, y:dtype(), name)
        close(y, expected, out_dt, 4 * H.rtol[out_dt],
              string.format("%s dims %s keepdim %s", name,
                            type(d) == "table" and H.shape_string(d) or tostring(d), tostring(keepdim)))
        return y
      end

      for name, fn in pairs(reducers) do
        it(name .. " over all, one and several dims, keepdim or not", function()
          for _, dims in ipairs(dim_sets) do
            check(name, fn, x, dims, false, dt)
            check(name, fn, x, dims, true, dt)
          end
          -- shapes
          assert.are.same({}, lv[name](x):size())
          assert.are.same({ 1, 1, 1 }, lv[name](x, nil, true):size())
          assert.are.same({ 2, 4 }, lv[name](x, 2):size())
          assert.are.same({ 2, 1, 4 }, lv[name](x, 2, true):size())
          assert.are.same({ 3 }, lv[name](x, { 1, 3 }):size())
          assert.are.same({ 1, 3, 1 }, lv[name](x, { 1, 3 }, true):size())
          assert.are.same({ 2, 3 }, x[name](x, -1):size())
        end)

        it(name .. " on non-contiguous input", function()
          for _, dims in ipairs({ false, 1, 2, -1, { 1, 3 } }) do
            local d = dims or nil
            local p = x:permute(3, 1, 2)
            local ref = lv[name](p:contiguous(), d)
            close(lv[name](p, d), ref, dt, 4 * H.rtol[dt], name .. " permuted")
            check(name, fn, p, dims, false, dt)
            for _, pair in ipairs(H.layouts(x)) do
              close(lv[name](pair[2], d, true), lv[name](x, d, true), dt, 4 * H.rtol[dt],
                    name .. " " .. pair[1])
            end
          end
          -- expanded: [2,1,4] to [2,3,4]
          local e = x:narrow(2, 2, 1):expand(2, 3, 4)
          for _, dims in ipairs({ false, 1, 2, 3, { 1, 2 } }) do
            local d = dims or nil
            close(lv[name](e, d), lv[name](e:contiguous(), d), dt, 4 * H.rtol[dt], name .. " expanded")
            check(name, fn, e, dims, true, dt)
          end
          -- a narrowed row of a matrix
          local m = x:view(6, 4):narrow(2, 2, 2)
          check(name, fn, m, 2, false, dt)
          check(name, fn, m, 1, true, dt)
        end)
      end

      it("argmax and argmin: 1-based, over all or one dim, first of ties", function()
        for _, name in ipairs({ "argmax", "argmin" }) do
          local fn = H.reducers[name]
          for _, dims in ipairs({ false, 1, 2, 3, -1, -2 }) do
            check(name, fn, x, dims, false, "f64")
            check(name, fn, x, dims, true, "f64")
            local p = x:permute(2, 3, 1)
            check(name, fn, p, dims, false, "f64")
            for _, pair in ipairs(H.layouts(x)) do
              same(lv[name](pair[2], dims or nil), lv[name](x, dims or nil), name .. " " .. pair[1])
            end
          end
        end
        local t = lv.tensor({ 1, 3, 3, 2, 3 }, dt)
        assert.are.equal(2, t:argmax():item())
        assert.are.equal(1, lv.tensor({ 2, 1, 1, 2 }, dt):argmax():item())
        assert.are.equal(2, lv.tensor({ 2, 1, 1, 2 }, dt):argmin():item())
        same(lv.tensor({ { 5, 5 }, { 1, 7 } }, dt):argmax(2), { 1, 2 })
        same(lv.tensor({ { 5, 5 }, { 1, 7 } }, dt):argmin(1), { 2, 1 })
        same(lv.tensor({ { 5, 5 }, { 1, 7 } }, dt):argmax(1, true), { { 1, 2 } })
        -- over all dims: the row-major position
        assert.are.equal(4, lv.tensor({ { 5, 5 }, { 1, 7 } }, dt):argmax():item())
        assert.are.equal(4, lv.tensor({ { 5, 5 }, { 1, 7 } }, dt):t():argmax():item())
        assert.are.equal(2, lv.tensor({ { 5, 5 }, { 1, 7 } }, dt):t():argmin():item())
        -- an expanded input ties everywhere: the first
        same(lv.tensor({ { 4 }, { 9 } }, dt):expand(2, 3):argmax(2), { 1, 1 })
        -- 0-dim and single-element
        assert.are.equal(1, lv.tensor(5, dt):argmax():item())
        assert.are.equal(1, lv.tensor({ -2 }, dt):argmin():item())
      end)

      it("max and min propagate NaN; argmax points at it", function()
        local nan = 0 / 0
        local t = lv.tensor({ { 1, nan, 3 }, { 4, 5, 6 } }, dt)
        same(t:max(), nan)
        same(t:min(), nan)
        same(t:max(2), { nan, 6 })
        same(t:min(1), { 1, nan, 3 })
        same(t:logsumexp(2), { nan, H.round(H.reducers.logsumexp({ 4, 5, 6 }), dt) })
        same(t:sum(2), { nan, 15 })
        assert.are.equal(2, t:argmax():item())
        assert.are.equal(2, t:argmin():item())
        same(lv.tensor({ nan, 9, nan }, dt):argmax(), 1)
      end)

      it("var: unbiased by default, correction 0 on request", function()
        local t = lv.tensor({ 1, 2, 3, 4 }, dt)
        close(t:var(), H.round(5 / 3, dt), dt)
        close(t:var(nil, false, 1), H.round(5 / 3, dt), dt)
        same(t:var(nil, false, 0), 1.25)
        same(lv.var(t, 1, false, 0), 1.25)
        local m = lv.tensor({ { 1, 2, 3, 4 }, { 2, 2, 2, 2 } }, dt)
        close(m:var(2), { H.round(5 / 3, dt), 0 }, dt)
        same(m:var(2, true, 0), { { 1.25 }, { 0 } })
        same(m:var(1, false, 0), { 0.25, 0, 0.25, 1 })
        for _, dims in ipairs(dim_sets) do
          check("var", H.variance(0), x, dims, false, dt, 0)
          check("var", H.variance(0), x:permute(3, 1, 2), dims, true, dt, 0)
        end
        -- a single value with correction 1 has no variance
        same(lv.tensor({ 3 }, dt):var(), 0 / 0)
        same(lv.tensor({ 3 }, dt):var(nil, false, 0), 0)
        -- constant large values: the two-pass form gives exactly 0
        same(lv.full({ 10 }, 1e4 + 0.25, dt):var(), 0)
      end)

      it("logsumexp is stable", function()
        close(lv.tensor({ 1000, 1000 }, dt):logsumexp(), H.round(1000 + math.log(2), dt), dt)
        close(lv.tensor({ -1000, -1000 }, dt):logsumexp(), H.round(-1000 + math.log(2), dt), dt)
        close(lv.tensor({ 1000, 0 }, dt):logsumexp(), 1000, dt)
        same(lv.tensor({ -1 / 0, -1 / 0 }, dt):logsumexp(), -1 / 0)
        same(lv.tensor({ 1 / 0, 0 }, dt):logsumexp(), 1 / 0)
        close(lv.tensor({ { 1000, 1000 }, { 0, 0 } }, dt):logsumexp(2, true),
              { { H.round(1000 + math.log(2), dt) }, { H.round(math.log(2), dt) } }, dt)
      end)

      it("sums of empty tensors", function()
        same(lv.zeros({ 0 }, dt):sum(), 0)
        same(lv.zeros({ 0, 3 }, dt):sum(1), { 0, 0, 0 })
        same(lv.zeros({ 0 }, dt):logsumexp(), -1 / 0)
        assert.are.same({ 1, 0 }, lv.zeros({ 3, 0 }, dt):sum(1, true):size())
      end)

      it("0-dim input", function()
        local s = lv.tensor(2.5, dt)
        same(s:sum(), 2.5)
        same(s:mean(), 2.5)
        same(s:max(), 2.5)
        same(s:logsumexp(), 2.5)
      end)
    end)
  end

  it("an f32 sum of 10^6 values of 0.1 accumulates in double", function()
    local x = lv.full({ 1000000 }, 0.1)
    local s = x:sum():item()
    assert.is_true(math.abs(s - 1e5) < 1e-2, "sum " .. s)
    assert.is_true(math.abs(x:mean():item() - 0.1) < 1e-7)
    -- and the same over a strided view
    local v = lv.full({ 1000, 2000 }, 0.1):narrow(2, 1, 1000)
    assert.is_true(math.abs(v:sum():item() - 1e5) < 1e-2)
    local rows = v:sum(2)
    close(rows:max(), H.round(100, "f32"), 1e-6)
  end)
end)

---- large inputs: the threaded paths of the walker and the reductions ------

describe("large inputs", function()
  for _, dt in ipairs(H.dtypes) do
    it("elementwise and reductions over 360,000 elements, transposed (" .. dt .. ")", function()
      local n = 600
      local x = (lv.arange(n * n, dt):view(n, n) / (n * n)):t()     -- values in [0, 1)
      assert.is_false(x:is_contiguous())
      local c = x:contiguous()
      same(x:exp(), c:exp(), "exp")
      same(x:softplus(), c:softplus(), "softplus")
      same(x + c:t(), c + c:t(), "add")
      same(x * x:narrow(1, 1, 1), c * c:narrow(1, 1, 1), "mul broadcast")
      close(x:sum(1), c:sum(1), dt, 4 * H.rtol[dt], "sum 1")
      close(x:sum(2), H.reduce(x, 2, false, H.reducers.sum), dt, 4 * H.rtol[dt], "sum 2")
      same(x:max(1), c:max(1), "max")
      same(x:argmin(2), c:argmin(2), "argmin")
      close(x:logsumexp(2), c:logsumexp(2), dt, 4 * H.rtol[dt], "logsumexp")
      close(x:var(1), c:var(1), dt, 4 * H.rtol[dt], "var")
      -- elements are where they belong
      local t = x:exp():totable()
      for _, ij in ipairs({ { 1, 1 }, { 1, n }, { n, 1 }, { 17, 250 }, { n, n } }) do
        local i, j = ij[1], ij[2]
        local v = H.round(((j - 1) * n + (i - 1)) / (n * n), dt)
        close({ t[i][j] }, { H.round(math.exp(v), dt) }, dt)
      end
      -- a long contiguous row, cut in pieces
      local long = lv.arange(400000, dt) / 400000
      local e = long:exp():totable()
      for _, k in ipairs({ 1, 32768, 32769, 65536, 100000, 400000 }) do
        close({ e[k] }, { H.round(math.exp(H.round((k - 1) / 400000, dt)), dt) }, dt)
      end
      same(lv.zeros({ 2, 200000 }, dt):copy_(long:view(2, 200000):t():contiguous():t()), long:view(2, 200000))
    end)
  end
end)

---- products --------------------------------------------------------------

describe("products", function()
  for _, dt in ipairs(H.dtypes) do
    describe(dt, function()
      local gen = H.generator(3)
      -- Multiples of 1/4 in [-2, 2): products and short sums are exact in
      -- both dtypes, so results equal the triple loop exactly.
      local function q(shape) return H.random_table(shape, gen, -2, 2, true) end

      --- matmul of tables a (..., n, k) and b (..., k, m) by the triple loop,
      -- with NumPy's batch broadcasting and vector promotion.
      local function ref(a, b)
        local sa, da = H.flat(a)
        local sb, db = H.flat(b)
        local av, bv = #sa == 1, #sb == 1
        if av then sa = { 1, sa[1] } end
        if bv then sb = { sb[1], 1 } end
        local n, k, m = sa[#sa - 1], sa[#sa], sb[#sb]
        assert(sb[#sb - 1] == k)
        local ba, bb = table.move(sa, 1, #sa - 2, 1, {}), table.move(sb, 1, #sb - 2, 1, {})
        local bs = assert(H.broadcast_shape(ba, bb))
        local function pick(batch, idx)     -- the operand's batch index
          local out = {}
          for d = 1, #batch do
            out[d] = batch[d] == 1 and 1 or idx[d + #bs - #batch]
          end
          return out
        end
        local out = {}
        for t = 1, H.numel(bs) do
          local bi = H.unravel(bs, t)
          local ia, ib = pick(ba, bi), pick(bb, bi)
          for i = 1, n do
            for j = 1, m do
              local s = 0
              for p = 1, k do
                local ai = table.move(ia, 1, #ia, 1, {})
                ai[#ai + 1], ai[#ai + 2] = i, p
                local bj = table.move(ib, 1, #ib, 1, {})
                bj[#bj + 1], bj[#bj + 2] = p, j
                s = s + da[H.ravel(sa, ai)] * db[H.ravel(sb, bj)]
              end
              out[#out + 1] = s
            end
          end
        end
        local shape = table.move(bs, 1, #bs, 1, {})
        if not av then shape[#shape + 1] = n end
        if not bv then shape[#shape + 1] = m end
        return H.nest(shape, out)
      end

      local function check(a, b, what)
        local ta, tb = lv.tensor(a, dt), lv.tensor(b, dt)
        local y = ta:matmul(tb)
        assert.are.equal(dt, y:dtype())
        same(y, ref(a, b), what)
        same(lv.matmul(ta, tb), y:totable(), what)
        return ta, tb
      end

      it("matmul 2-D, vectors, batched, broadcast batch", function()
        check(q({ 3, 4 }), q({ 4, 5 }), "2-D")
        check(q({ 1, 1 }), q({ 1, 1 }), "1x1")
        check(q({ 4 }), q({ 4, 5 }), "1-D @ 2-D")
        check(q({ 3, 4 }), q({ 4 }), "2-D @ 1-D")
        check(q({ 4 }), q({ 4 }), "1-D @ 1-D")
        assert.are.same({}, lv.tensor(q({ 4 }), dt):matmul(lv.tensor(q({ 4 }), dt)):size())
        check(q({ 2, 3, 4 }), q({ 2, 4, 5 }), "3-D @ 3-D")
        check(q({ 2, 3, 4 }), q({ 4, 5 }), "3-D @ 2-D")
        check(q({ 3, 4 }), q({ 2, 4, 5 }), "2-D @ 3-D")
        check(q({ 1, 3, 4 }), q({ 5, 4, 2 }), "[1,3,4] @ [5,4,2]")
        check(q({ 5, 3, 4 }), q({ 1, 4, 2 }), "[5,3,4] @ [1,4,2]")
        check(q({ 2, 3, 4 }), q({ 4 }), "3-D @ 1-D")
        check(q({ 4 }), q({ 2, 4, 3 }), "1-D @ 3-D")
        check(q({ 2, 1, 3, 4 }), q({ 3, 4, 2 }), "4-D @ 3-D")
        assert.are.same({ 5, 3, 2 }, lv.zeros({ 1, 3, 4 }, dt):matmul(lv.zeros({ 5, 4, 2 }, dt)):size())
      end)

      it("matmul against the naive loop with general values", function()
        local g = H.generator(99)
        local a, b = H.random_table({ 7, 13 }, g, -1, 1), H.random_table({ 13, 6 }, g, -1, 1)
        local ta, tb = lv.tensor(a, dt), lv.tensor(b, dt)
        local ra, rb = ta:totable(), tb:totable()
        local want, scale = H.matmul2(ra, rb), H.matmul2_abs(ra, rb)
        local got = ta:matmul(tb):totable()
        local eps = dt == "f32" and 2 ^ -24 or 2 ^ -53
        for i = 1, 7 do
          for j = 1, 6 do
            assert.is_true(math.abs(got[i][j] - want[i][j]) <= 14 * eps * scale[i][j],
                           string.format("[%d,%d] got %.17g want %.17g", i, j, got[i][j], want[i][j]))
          end
        end
      end)

      it("matmul on transposed operands equals the triple loop", function()
        local a, b = q({ 4, 3 }), q({ 4, 5 })
        local ta, tb = lv.tensor(a, dt), lv.tensor(b, dt)
        same(ta:t():matmul(tb), H.matmul2(ta:t():totable(), b), "a:t() @ b")
        local c = q({ 5, 4 })
        local tc = lv.tensor(c, dt)
        same(ta:t():matmul(tc:t()), H.matmul2(ta:t():totable(), tc:t():totable()), "a:t() @ c:t()")
        same(tb:t():matmul(ta), H.matmul2(tb:t():totable(), a), "b:t() @ a")
        -- batched and transposed
        local x = lv.tensor(q({ 2, 4, 3 }), dt)
        local y = lv.tensor(q({ 2, 4, 5 }), dt)
        same(x:transpose(2, 3):matmul(y), x:transpose(2, 3):contiguous():matmul(y), "batched transposed")
        same(y:transpose(2, 3):matmul(x), y:transpose(2, 3):contiguous():matmul(x), "batched transposed 2")
        -- batch dim last in memory
        local z = lv.tensor(q({ 3, 4, 2 }), dt):permute(3, 1, 2)
        same(z:matmul(tb), z:contiguous():matmul(tb), "permuted batch")
        local w = lv.tensor(q({ 5, 4 }), dt)
        same(w:matmul(z:transpose(2, 3)), w:matmul(z:transpose(2, 3):contiguous()), "permuted batch right")
      end)

      it("matmul on narrowed, strided and expanded operands", function()
        local a = lv.tensor(q({ 3, 4 }), dt)
        local b = lv.tensor(q({ 4, 5 }), dt)
        local want = a:matmul(b)
        for _, la in ipairs(H.layouts(a)) do
          for _, lb in ipairs(H.layouts(b)) do
            same(la[2]:matmul(lb[2]), want, la[1] .. " @ " .. lb[1])
          end
        end
        -- columns and strided vectors
        local m = lv.tensor(q({ 4, 3 }), dt)
        local col = m:select(2, 2)
        same(a:matmul(col), a:matmul(col:contiguous()), "2-D @ column")
        same(col:matmul(b), col:contiguous():matmul(b), "column @ 2-D")
        same(col:matmul(col), col:contiguous():matmul(col:contiguous()), "column @ column")
        -- stride 0
        local e = lv.tensor(q({ 1, 4 }), dt):expand(3, 4)
        same(e:matmul(b), e:contiguous():matmul(b), "expanded rows @ b")
        local f = lv.tensor(q({ 4, 1 }), dt):expand(4, 5)
        same(a:matmul(f), a:matmul(f:contiguous()), "a @ expanded columns")
        local v = lv.tensor(q({ 1 }), dt):expand(4)
        same(a:matmul(v), a:matmul(v:contiguous()), "a @ expanded vector")
        same(v:matmul(b), v:contiguous():matmul(b), "expanded vector @ b")
        local eb = lv.tensor(q({ 1, 3, 4 }), dt):expand(2, 3, 4)
        same(eb:matmul(b), eb:contiguous():matmul(b), "expanded batch @ b")
      end)

      it("batched matmul on non-contiguous operands", function()
        local a = lv.tensor(q({ 2, 3, 4 }), dt)
        local b = lv.tensor(q({ 2, 4, 5 }), dt)
        local b2 = lv.tensor(q({ 4, 5 }), dt)
        local want, want2 = ref(a:totable(), b:totable()), ref(a:totable(), b2:totable())
        for _, la in ipairs(H.layouts(a)) do
          same(la[2]:matmul(b2), want2, la[1] .. " batch @ 2-D")
          for _, lb in ipairs(H.layouts(b)) do
            same(la[2]:matmul(lb[2]), want, la[1] .. " @ " .. lb[1])
          end
        end
        -- a batch of row blocks that are not adjacent in memory
        local gap = lv.tensor(q({ 2, 5, 4 }), dt):narrow(2, 2, 3)
        same(gap:matmul(b2), ref(gap:totable(), b2:totable()), "gapped batch @ 2-D")
        same(gap:matmul(b), ref(gap:totable(), b:totable()), "gapped batch @ 3-D")
      end)

      it("k = 0 gives zeros; empty n or m", function()
        same(lv.zeros({ 3, 0 }, dt):matmul(lv.zeros({ 0, 4 }, dt)), lv.zeros({ 3, 4 }):totable())
        same(lv.zeros({ 2, 3, 0 }, dt):matmul(lv.zeros({ 0, 2 }, dt)), lv.zeros({ 2, 3, 2 }):totable())
        same(lv.zeros({ 0 }, dt):matmul(lv.zeros({ 0 }, dt)), 0)
        assert.are.same({ 0, 4 }, lv.zeros({ 0, 2 }, dt):matmul(lv.zeros({ 2, 4 }, dt)):size())
        assert.are.same({ 3, 0 }, lv.zeros({ 3, 2 }, dt):matmul(lv.zeros({ 2, 0 }, dt)):size())
        assert.are.same({ 0, 3, 5 }, lv.zeros({ 0, 3, 4 }, dt):matmul(lv.zeros({ 4, 5 }, dt)):size())
      end)

      it("mixed dtypes promote to f64", function()
        local other = dt == "f32" and "f64" or "f32"
        local a, b = lv.tensor({ { 0.1, 0.2 } }, dt), lv.tensor({ { 0.3 }, { 0.7 } }, other)
        local y = a:matmul(b)
        assert.are.equal("f64", y:dtype())
        close(y, H.matmul2(a:totable(), b:totable()), 1e-15)
        assert.are.equal("f64", a:select(1, 1):dot(b:select(2, 1)):dtype())
        assert.are.equal("f64", a:select(1, 1):outer(b:select(2, 1)):dtype())
      end)

      it("outer and dot", function()
        local u = lv.tensor({ 1, 2, 3 }, dt)
        local w = lv.tensor({ 0.5, -1 }, dt)
        same(u:outer(w), { { 0.5, -1 }, { 1, -2 }, { 1.5, -3 } })
        same(lv.outer(w, u), { { 0.5, 1, 1.5 }, { -1, -2, -3 } })
        same(u:dot(u), 14)
        same(lv.dot(u, lv.tensor({ 0.25, 0.5, -1 }, dt)), -1.75)
        assert.are.equal(0, u:dot(u):dim())
        -- non-contiguous vectors: a matrix column, a strided view, stride 0
        local m = lv.tensor({ { 1, 2 }, { 3, 4 }, { 5, 6 } }, dt)
        same(m:select(2, 2):dot(u), 28)
        same(u:outer(m:select(2, 1)), { { 1, 3, 5 }, { 2, 6, 10 }, { 3, 9, 15 } })
        same(lv.tensor({ 2 }, dt):expand(3):dot(u), 12)
        same(u:dot(lv.tensor({ 2 }, dt):expand(3)), 12)
        same(lv.tensor({ 2 }, dt):expand(3):outer(w), { { 1, -2 }, { 1, -2 }, { 1, -2 } })
        for _, l in ipairs(H.layouts(u)) do
          same(l[2]:dot(u), 14, "dot " .. l[1])
          same(u:outer(l[2]), u:outer(u), "outer " .. l[1])
        end
        -- general values against the naive sum
        local g = H.generator(5)
        local a = lv.tensor(H.random_table({ 100 }, g, -1, 1), dt)
        local b = lv.tensor(H.random_table({ 100 }, g, -1, 1), dt)
        local s, sabs = 0, 0
        local ra, rb = a:totable(), b:totable()
        for i = 1, 100 do s = s + ra[i] * rb[i]; sabs = sabs + math.abs(ra[i] * rb[i]) end
        local eps = dt == "f32" and 2 ^ -24 or 2 ^ -53
        assert.is_true(math.abs(a:dot(b):item() - s) <= 4 * eps * sabs + eps * math.abs(s))
        -- f32 dot accumulates in double: no drift over 10^5 terms
        if dt == "f32" then
          local big = lv.full({ 100000 }, 0.1)
          assert.is_true(math.abs(big:dot(lv.ones({ 100000 })):item() - 1e4) < 1e-2)
        end
      end)
    end)
  end
end)

describe("linear (x Wᵀ + b as one op)", function()
  local H = require "helpers"
  local x = lv.randn({ 2, 3, 5 }, "f64")
  local w, b = lv.randn({ 4, 5 }, "f64"), lv.randn({ 4 }, "f64")
  it("equals matmul with the transposed weight plus the bias, with and without a bias", function()
    H.assert_close(lv.linear(x, w, b), x:matmul(w:t()) + b, 1e-14, 1e-14)
    H.assert_close(lv.linear(x, w), x:matmul(w:t()), 1e-14, 1e-14)
    H.assert_close(lv.linear(x:transpose(1, 2):contiguous():transpose(1, 2), w, b), x:matmul(w:t()) + b, 1e-14, 1e-14)
  end)
  it("first and second derivatives in x, W and b", function()
    local f = function(a, c, d) return lv.linear(a, c, d):square() end
    assert.is_true(lv.testing.gradcheck(f, { x, w, b }) < 1e-7)
    assert.is_true(lv.testing.gradgradcheck(f, { x, w, b }) < 1e-7)
  end)
  it("gives W's gradient contiguous, in W's layout", function()
    local wp = lv.param(w:clone())
    local gw = lv.grad(lv.linear(x, wp, b):sum(), { wp })[1]
    assert.is_true(gw:is_contiguous())
    H.assert_close(gw, lv.ones({ 2, 3, 4 }, "f64"):reshape(6, 4):t():matmul(x:reshape(6, 5)), 1e-13, 1e-13)
  end)
  it("a weight used many times: the sums the GEMM adds in place equal the recorded ones", function()
    -- W enters three linears and a matmul as its right operand; without
    -- create_graph the reverse pass adds each contribution into W's sum by
    -- the GEMM itself, with create_graph it records adds: both must agree
    local wp = lv.param(lv.randn({ 5, 5 }, "f64"))
    local x0 = lv.randn({ 4, 5 }, "f64")
    local function f()
      local h1 = lv.linear(x0, wp):tanh()
      local h2 = lv.linear(h1, wp):tanh()
      local h3 = h2:matmul(wp):tanh()
      return lv.linear(h3, wp):square():sum()
    end
    local plain = lv.grad(f(), { wp })[1]
    local recorded = lv.grad(f(), { wp }, { create_graph = true })[1]
    H.assert_close(plain, recorded:detach(), 1e-14, 1e-14)
    -- and against finite differences
    assert.is_true(lv.testing.gradcheck(function(w)
      local h1 = lv.linear(x0, w):tanh()
      local h2 = lv.linear(h1, w):tanh()
      return lv.linear(h2:matmul(w):tanh(), w):square():sum()
    end, { wp:detach() }) < 1e-7)
  end)

  it("mixed dtypes compute in f64; gradients take each input's dtype", function()
    local xf = lv.param(lv.randn({ 3, 5 }))
    local wd = lv.param(lv.randn({ 4, 5 }, "f64"))
    local y = lv.linear(xf, wd)
    assert.are.equal("f64", y:dtype())
    local gx, gw = table.unpack(lv.grad(y:sum(), { xf, wd }))
    assert.are.equal("f32", gx:dtype())
    assert.are.equal("f64", gw:dtype())
  end)
  it("errors name the shapes", function()
    local ok, err = pcall(lv.linear, x, lv.randn({ 4, 6 }, "f64"))
    assert.is_false(ok)
    assert.truthy(tostring(err):find("do not align", 1, true), tostring(err))
    ok, err = pcall(lv.linear, x, w, lv.randn({ 3 }, "f64"))
    assert.truthy(tostring(err):find("bias must be [4]", 1, true), tostring(err))
  end)
end)

describe("bernoulli_logit (x l - softplus(l) as one op)", function()
  local H = require "helpers"
  local l = lv.tensor({ { -40, -3, 0, 2.5 }, { 30, 0.1, -0.7, 60 } }, "f64")
  local x = lv.tensor({ 1, 0, 1, 0 }, "f64")
  it("equals the composed stable form, broadcasting x over rows, without overflow", function()
    H.assert_close(lv.bernoulli_logit(l, x), x * l - l:softplus(), 0, 0)
    assert.is_true(lv.bernoulli_logit(l, x):abs():max():item() < math.huge)
    H.assert_close(lv.bernoulli_logit(l:to("f32"), x:to("f32")), (x * l - l:softplus()):to("f32"), 1e-6, 1e-6)
  end)
  it("derivatives to third order in the logits (what training through a force needs) and in x", function()
    local lo = lv.randn({ 3, 4 }, "f64") * 2
    local xs = lv.bernoulli({ 3, 4 }, 0.5):to("f64")
    local f = function(a, b) return lv.bernoulli_logit(a, b):square() end
    assert.is_true(lv.testing.gradcheck(f, { lo, xs }) < 1e-7)
    assert.is_true(lv.testing.gradgradcheck(f, { lo, xs }) < 1e-7)
    -- the force of U = -ll is x - sigmoid(l); its own second derivatives
    local force = function(a)
      local z = a.needs_grad and a or lv.param(a:detach())   -- finite differences pass plain tensors
      return lv.grad(lv.bernoulli_logit(z, xs):sum(), { z }, { create_graph = true })[1]:square()
    end
    assert.is_true(lv.testing.gradgradcheck(force, { lo }) < 1e-6)
  end)
end)
