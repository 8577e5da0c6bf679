-- tensor_spec.lua -- the tensor itself (src/tensor.c, src/lua_tensor.c,
-- src/ops_shape.c, lua/lvae/tensor_print.lua): creation, dtypes, queries,
-- views sharing storage, shape ops, copies and fills, indexing, printing.
-- Every value check runs in both dtypes; shape ops are also checked on
-- non-contiguous inputs. Arithmetic lives in ops_spec.lua.

local lv = require "lvae"
local H = require "helpers"

local same, close = H.assert_same, H.assert_close

describe("creation", function()
  for _, dt in ipairs(H.dtypes) do
    describe(dt, function()
      it("zeros, ones, full", function()
        local z = lv.zeros({ 2, 3 }, dt)
        assert.are.equal(dt, z:dtype())
        assert.are.same({ 2, 3 }, z:size())
        same(z, { { 0, 0, 0 }, { 0, 0, 0 } })
        same(lv.ones({ 3 }, dt), { 1, 1, 1 })
        same(lv.full({ 2, 1 }, 2.5, dt), { { 2.5 }, { 2.5 } })
        assert.are.equal(dt, lv.full({ 1 }, 7, dt):dtype())
        -- a plain number is a 1-D shape; {} is 0-dim
        assert.are.same({ 4 }, lv.zeros(4, dt):size())
        assert.are.equal(0, lv.ones({}, dt):dim())
        assert.are.equal(1, lv.ones({}, dt):item())
        -- empty
        assert.are.equal(0, lv.zeros({ 0, 3 }, dt):numel())
        same(lv.full({ 3 }, 0.1, dt), { H.round(0.1, dt), H.round(0.1, dt), H.round(0.1, dt) })
      end)

      it("eye, square and n x m", function()
        same(lv.eye(3, dt), { { 1, 0, 0 }, { 0, 1, 0 }, { 0, 0, 1 } })
        same(lv.eye(2, 3, dt), { { 1, 0, 0 }, { 0, 1, 0 } })
        same(lv.eye(3, 2, dt), { { 1, 0 }, { 0, 1 }, { 0, 0 } })
        assert.are.equal(dt, lv.eye(2, dt):dtype())
        assert.are.equal(dt, lv.eye(2, 3, dt):dtype())
        assert.are.same({ 0, 0 }, lv.eye(0, dt):size())
      end)

      it("eye takes integral floats as sizes", function()
        -- as luaL_checkinteger does: 3.0 is the integer 3
        same(lv.eye(2.0, dt), { { 1, 0 }, { 0, 1 } })
        same(lv.eye(2, 3.0, dt), { { 1, 0, 0 }, { 0, 1, 0 } })
      end)

      it("arange with 1, 2 and 3 arguments, end excluded as in NumPy", function()
        same(lv.arange(5, dt), { 0, 1, 2, 3, 4 })
        same(lv.arange(2, 5, dt), { 2, 3, 4 })
        same(lv.arange(0, 1, 0.25, dt), { 0, 0.25, 0.5, 0.75 })
        same(lv.arange(1, 2.1, 0.5, dt), { 1, 1.5, 2 })
        assert.are.equal(dt, lv.arange(3, dt):dtype())
        -- fractional steps: start + i * step, count ceil((stop - start) / step)
        close(lv.arange(1, 2, 0.3, dt), { 1, H.round(1.3, dt), H.round(1.6, dt), H.round(1.9, dt) }, dt)
        -- negative step
        same(lv.arange(5, 1, -1, dt), { 5, 4, 3, 2 })
        same(lv.arange(0, -2, -0.5, dt), { 0, -0.5, -1, -1.5 })
        -- empty ranges
        assert.are.same({ 0 }, lv.arange(3, 3, dt):size())
        assert.are.same({ 0 }, lv.arange(5, 1, dt):size())
        assert.are.same({ 0 }, lv.arange(1, 5, -1, dt):size())
      end)

      it("linspace, endpoints exact", function()
        local x = lv.linspace(0, 1, 5, dt)
        same(x, { 0, 0.25, 0.5, 0.75, 1 })
        local y = lv.linspace(-1.3, 0.7, 7, dt):totable()
        assert.are.equal(7, #y)
        assert.are.equal(H.round(-1.3, dt), y[1])
        assert.are.equal(H.round(0.7, dt), y[7])
        for i = 1, 7 do
          close({ y[i] }, { H.round(-1.3 + 2 * (i - 1) / 6, dt) }, dt, 1e-15)
        end
        same(lv.linspace(3, 9, 1, dt), { 3 })
        assert.are.same({ 0 }, lv.linspace(0, 1, 0, dt):size())
        -- decreasing
        same(lv.linspace(1, -1, 3, dt), { 1, 0, -1 })
      end)

      it("tensor{} from nested tables, a number, and 3-D", function()
        local v = lv.tensor({ 1, 2, 3 }, dt)
        assert.are.same({ 3 }, v:size())
        same(v, { 1, 2, 3 })
        local m = lv.tensor({ { 1, 2 }, { 3, 4 }, { 5, 6 } }, dt)
        assert.are.same({ 3, 2 }, m:size())
        same(m, { { 1, 2 }, { 3, 4 }, { 5, 6 } })
        local s = lv.tensor(2.5, dt)
        assert.are.equal(0, s:dim())
        assert.are.same({}, s:size())
        assert.are.equal(2.5, s:item())
        local c = { { { 1, 2, 3, 4 }, { 5, 6, 7, 8 }, { 9, 10, 11, 12 } },
                    { { 13, 14, 15, 16 }, { 17, 18, 19, 20 }, { 21, 22, 23, 24 } } }
        local t = lv.tensor(c, dt)
        assert.are.same({ 2, 3, 4 }, t:size())
        assert.are.equal(dt, t:dtype())
        same(t, c)
        assert.are.same({ 0 }, lv.tensor({}, dt):size())
        -- from a tensor: a copy, in the given dtype
        local other = dt == "f32" and "f64" or "f32"
        local copy = lv.tensor(m, other)
        assert.are.equal(other, copy:dtype())
        same(copy, m:totable())
        copy:fill_(0)
        same(m, { { 1, 2 }, { 3, 4 }, { 5, 6 } })
      end)

      it("*_like keep shape and dtype unless told", function()
        local x = lv.tensor({ { 1, 2, 3 }, { 4, 5, 6 } }, dt)
        local other = dt == "f32" and "f64" or "f32"
        same(x:zeros_like(), { { 0, 0, 0 }, { 0, 0, 0 } })
        same(lv.ones_like(x), { { 1, 1, 1 }, { 1, 1, 1 } })
        same(x:full_like(-2), { { -2, -2, -2 }, { -2, -2, -2 } })
        assert.are.same({ 2, 3 }, x:empty_like():size())
        for _, y in ipairs({ x:zeros_like(), x:ones_like(), x:full_like(3), x:empty_like() }) do
          assert.are.equal(dt, y:dtype())
        end
        assert.are.equal(other, x:zeros_like(other):dtype())
        assert.are.equal(other, x:full_like(1, other):dtype())
        -- of a non-contiguous tensor: its shape
        assert.are.same({ 3, 2 }, x:t():ones_like():size())
      end)
    end)
  end
end)

describe("dtypes", function()
  it("default to f32", function()
    assert.are.equal("f32", lv.zeros({ 2 }):dtype())
    assert.are.equal("f32", lv.tensor({ 1, 2 }):dtype())
    assert.are.equal("f32", lv.arange(3):dtype())
    assert.are.equal("f32", lv.linspace(0, 1, 3):dtype())
    assert.are.equal("f32", lv.eye(2):dtype())
    assert.are.equal("f32", lv.tensor(1):dtype())
  end)

  it("f32 rounds 0.1, f64 keeps it", function()
    local r = lv.tensor({ 0.1 }):totable()[1]
    assert.are_not.equal(0.1, r)
    assert.are.equal(H.round(0.1, "f32"), r)
    assert.is_true(math.abs(r - 0.1) < 1e-8)
    assert.are.equal(0.1, lv.tensor({ 0.1 }, "f64"):totable()[1])
  end)

  it(":to converts values both ways", function()
    local x = lv.tensor({ 0.1, -2.5, 1e30 }, "f64")
    local y = x:to("f32")
    assert.are.equal("f32", y:dtype())
    same(y, { H.round(0.1, "f32"), -2.5, H.round(1e30, "f32") })
    local z = y:to("f64")
    assert.are.equal("f64", z:dtype())
    same(z, y:totable())
    assert.are.equal("f64", x:float():double():dtype())
    assert.are.equal("f32", x:float():dtype())
    -- non-contiguous source
    local m = lv.tensor({ { 1.5, 2 }, { 3, 4 } }, "f64")
    same(m:t():to("f32"), { { 1.5, 3 }, { 2, 4 } })
    -- the same dtype: same values
    same(m:to("f64"), m:totable())
  end)
end)

describe("queries", function()
  for _, dt in ipairs(H.dtypes) do
    it("totable, item, size, dim, numel, stride, # (" .. dt .. ")", function()
      local x = lv.zeros({ 2, 3, 4 }, dt)
      assert.are.same({ 2, 3, 4 }, x:size())
      assert.are.equal(2, x:size(1))
      assert.are.equal(4, x:size(3))
      assert.are.equal(4, x:size(-1))
      assert.are.equal(2, x:size(-3))
      assert.are.equal(3, x:dim())
      assert.are.equal(24, x:numel())
      assert.are.same({ 12, 4, 1 }, x:stride())
      assert.are.equal(4, x:stride(2))
      assert.are.equal(1, x:stride(-1))
      assert.are.equal(2, #x)
      assert.is_true(x:is_contiguous())
      local t = lv.tensor({ { 1, 2 }, { 3, 4 } }, dt)
      assert.are.same({ { 1, 2 }, { 3, 4 } }, t:totable())
      assert.are.same({ { 1, 3 }, { 2, 4 } }, t:t():totable())
      assert.are.equal(3.5, lv.tensor({ { 3.5 } }, dt):item())
      assert.are.equal(-1, lv.tensor(-1, dt):item())
      local s = lv.tensor(7, dt)
      assert.are.equal(0, s:dim())
      assert.are.equal(1, s:numel())
      assert.are.same({}, s:size())
      assert.are.same({}, s:stride())
      assert.are.equal(0, #s)
      assert.are.equal(7, s:totable())
      assert.is_true(lv.is_tensor(s))
      assert.is_false(lv.is_tensor({}))
      assert.is_false(lv.is_tensor(3))
    end)
  end
end)

describe("views share storage", function()
  for _, dt in ipairs(H.dtypes) do
    describe(dt, function()
      local function base()
        return lv.tensor({ { 1, 2, 3 }, { 4, 5, 6 } }, dt)
      end

      it("fill_ through narrow and select", function()
        local x = base()
        x:narrow(2, 2, 2):fill_(0)
        same(x, { { 1, 0, 0 }, { 4, 0, 0 } })
        x:select(1, 2):fill_(9)
        same(x, { { 1, 0, 0 }, { 9, 9, 9 } })
        x:t():select(1, 1):fill_(-1)
        same(x, { { -1, 0, 0 }, { -1, 9, 9 } })
      end)

      it("copy_ through a transposed view", function()
        local x = base()
        x:t():copy_(lv.tensor({ { 10, 40 }, { 20, 50 }, { 30, 60 } }, dt))
        same(x, { { 10, 20, 30 }, { 40, 50, 60 } })
      end)

      it("x[i] = v and x[i][j] = v", function()
        local x = base()
        x[2] = 0
        same(x, { { 1, 2, 3 }, { 0, 0, 0 } })
        x[1][3] = 7
        same(x, { { 1, 2, 7 }, { 0, 0, 0 } })
        local v = x:view(6)
        v[1] = 100
        same(x, { { 100, 2, 7 }, { 0, 0, 0 } })
        local t = x:t()
        t[2] = lv.tensor({ -2, -5 }, dt)
        same(x, { { 100, -2, 7 }, { 0, -5, 0 } })
      end)

      it("every shape op returns a view", function()
        local x = lv.arange(24, dt):view(2, 3, 4)
        local views = {
          x:view(6, 4), x:reshape(4, 6), x:transpose(1, 3), x:permute(2, 3, 1),
          x:narrow(2, 2, 1), x:select(3, 4), x:unsqueeze(2), x:view(2, 1, 12):squeeze(),
          x:select(1, 1):unsqueeze(1):expand(5, 3, 4), x:contiguous(),
        }
        x:fill_(3)
        for i, v in ipairs(views) do
          same(v, H.map(v, function() return 3 end), "view " .. i)
        end
      end)
    end)
  end
end)

describe("shape ops", function()
  for _, dt in ipairs(H.dtypes) do
    describe(dt, function()
      local c = { { { 1, 2, 3, 4 }, { 5, 6, 7, 8 }, { 9, 10, 11, 12 } },
                  { { 13, 14, 15, 16 }, { 17, 18, 19, 20 }, { 21, 22, 23, 24 } } }
      local function x3() return lv.tensor(c, dt) end

      it("view and reshape, with -1", function()
        local x = lv.arange(1, 13, dt)
        local v = x:view(3, 4)
        assert.are.same({ 3, 4 }, v:size())
        same(v, { { 1, 2, 3, 4 }, { 5, 6, 7, 8 }, { 9, 10, 11, 12 } })
        assert.are.same({ 2, 6 }, x:view(2, -1):size())
        assert.are.same({ 4, 3 }, x:view({ -1, 3 }):size())
        assert.are.same({ 2, 2, 3 }, x:view(2, -1, 3):size())
        assert.are.same({ 12 }, x:view(3, 4):view(-1):size())
        assert.are.same({ 6, 2 }, x:reshape(-1, 2):size())
        same(x:reshape({ 2, 6 }), { { 1, 2, 3, 4, 5, 6 }, { 7, 8, 9, 10, 11, 12 } })
        -- 0-dim round trip
        assert.are.same({}, lv.tensor({ 5 }, dt):view({}):size())
        assert.are.same({ 1, 1 }, lv.tensor(5, dt):view(1, 1):size())
      end)

      it("view of a non-contiguous tensor that is still viewable", function()
        local x = x3()
        local n = x:narrow(3, 2, 2)      -- [2,3,2], strides [12,4,1]
        assert.is_false(n:is_contiguous())
        local v = n:view(6, 2)
        same(v, { { 2, 3 }, { 6, 7 }, { 10, 11 }, { 14, 15 }, { 18, 19 }, { 22, 23 } })
        v:fill_(0)
        same(x:select(3, 2), { { 0, 0, 0 }, { 0, 0, 0 } })
        same(x:select(3, 1), { { 1, 5, 9 }, { 13, 17, 21 } })
        -- a transposed matrix gains unit dims as a view
        local m = lv.tensor({ { 1, 2, 3 }, { 4, 5, 6 } }, dt)
        local tv = m:t():view(3, 1, 2)
        same(tv, { { { 1, 4 } }, { { 2, 5 } }, { { 3, 6 } } })
        tv[1][1][2] = 40
        same(m, { { 1, 2, 3 }, { 40, 5, 6 } })
        -- expanded dims stay expanded
        local e = lv.tensor({ 1, 2 }, dt):expand(3, 2):view(3, 1, 2)
        assert.are.equal(0, e:stride(1))
      end)

      it("reshape copies when it must", function()
        local m = lv.tensor({ { 1, 2, 3 }, { 4, 5, 6 } }, dt)
        local r = m:t():reshape(6)
        same(r, { 1, 4, 2, 5, 3, 6 })
        r:fill_(0)
        same(m, { { 1, 2, 3 }, { 4, 5, 6 } })
        -- and shares when it can
        local s = m:reshape(3, 2)
        s:fill_(1)
        same(m, { { 1, 1, 1 }, { 1, 1, 1 } })
        -- a copy of an expanded tensor
        same(lv.tensor({ 1, 2 }, dt):expand(2, 2):reshape(4), { 1, 2, 1, 2 })
      end)

      it("transpose, t, permute", function()
        local m = lv.tensor({ { 1, 2, 3 }, { 4, 5, 6 } }, dt)
        same(m:t(), { { 1, 4 }, { 2, 5 }, { 3, 6 } })
        same(m:transpose(1, 2), { { 1, 4 }, { 2, 5 }, { 3, 6 } })
        same(m:transpose(-1, -2), { { 1, 4 }, { 2, 5 }, { 3, 6 } })
        same(m:transpose(1, 1), m:totable())
        assert.are.same({ 1, 3 }, m:t():stride())
        local x = x3()
        local t13 = x:transpose(1, 3)
        assert.are.same({ 4, 3, 2 }, t13:size())
        local p = x:permute(3, 1, 2)
        assert.are.same({ 4, 2, 3 }, p:size())
        assert.are.same({ 1, 12, 4 }, p:stride())
        local pt = lv.permute(x, { 2, 3, 1 })
        assert.are.same({ 3, 4, 2 }, pt:size())
        for i = 1, 2 do for j = 1, 3 do for k = 1, 4 do
          assert.are.equal(c[i][j][k], t13:totable()[k][j][i])
          assert.are.equal(c[i][j][k], p:totable()[k][i][j])
          assert.are.equal(c[i][j][k], pt:totable()[j][k][i])
        end end end
        -- a transpose of a non-contiguous input
        same(x:narrow(3, 2, 2):transpose(1, 3),
             x:narrow(3, 2, 2):contiguous():transpose(1, 3):totable())
      end)

      it("narrow and select, with negative indices", function()
        local x = x3()
        same(x:narrow(1, 2, 1), { c[2] })
        same(x:narrow(3, 3, 2), { { { 3, 4 }, { 7, 8 }, { 11, 12 } },
                                  { { 15, 16 }, { 19, 20 }, { 23, 24 } } })
        same(x:narrow(-1, -2, 2), x:narrow(3, 3, 2):totable())   -- start -2: last two
        assert.are.same({ 2, 0, 4 }, x:narrow(2, 4, 0):size())
        same(x:select(1, 2), c[2])
        same(x:select(2, 3), { { 9, 10, 11, 12 }, { 21, 22, 23, 24 } })
        same(x:select(-1, -1), { { 4, 8, 12 }, { 16, 20, 24 } })
        same(x:select(3, -4), x:select(3, 1):totable())
        assert.are.same({ 3, 4 }, x:select(1, 1):size())
        assert.are.equal(0, lv.tensor({ 1, 2 }, dt):select(1, 2):dim())
        assert.are.equal(2, lv.tensor({ 1, 2 }, dt):select(1, 2):item())
        -- on a transposed input
        same(x:transpose(1, 3):select(1, 2), { { 2, 14 }, { 6, 18 }, { 10, 22 } })
        same(x:transpose(1, 3):narrow(2, 2, 2):select(3, 2),
             { { 17, 21 }, { 18, 22 }, { 19, 23 }, { 20, 24 } })
      end)

      it("squeeze all or one dim, unsqueeze anywhere", function()
        local x = lv.zeros({ 1, 3, 1, 2 }, dt)
        assert.are.same({ 3, 2 }, x:squeeze():size())
        assert.are.same({ 3, 1, 2 }, x:squeeze(1):size())
        assert.are.same({ 1, 3, 2 }, x:squeeze(3):size())
        assert.are.same({ 1, 3, 2 }, x:squeeze(-2):size())
        assert.are.same({ 1, 3, 1, 2 }, x:squeeze(2):size())   -- size 3 stays
        assert.are.same({}, lv.zeros({ 1, 1 }, dt):squeeze():size())
        local m = lv.tensor({ { 1, 2, 3 }, { 4, 5, 6 } }, dt)
        assert.are.same({ 1, 2, 3 }, m:unsqueeze(1):size())
        assert.are.same({ 2, 1, 3 }, m:unsqueeze(2):size())
        assert.are.same({ 2, 3, 1 }, m:unsqueeze(3):size())
        assert.are.same({ 2, 3, 1 }, m:unsqueeze(-1):size())
        assert.are.same({ 2, 1, 3 }, m:unsqueeze(-2):size())
        assert.are.same({ 1, 2, 3 }, m:unsqueeze(-3):size())
        same(m:unsqueeze(3), { { { 1 }, { 2 }, { 3 } }, { { 4 }, { 5 }, { 6 } } })
        same(m:t():unsqueeze(2), { { { 1, 4 } }, { { 2, 5 } }, { { 3, 6 } } })
        same(m:t():unsqueeze(2):squeeze(2), m:t():totable())
        assert.are.same({ 1 }, lv.tensor(3, dt):unsqueeze(1):size())
      end)

      it("expand and expand_as give stride 0", function()
        local r = lv.tensor({ { 1, 2, 3 } }, dt)
        local e = r:expand(4, 3)
        assert.are.same({ 4, 3 }, e:size())
        assert.are.same({ 0, 1 }, e:stride())
        same(e, { { 1, 2, 3 }, { 1, 2, 3 }, { 1, 2, 3 }, { 1, 2, 3 } })
        assert.are.same({ 2, 4, 3 }, r:expand(2, 4, 3):size())
        assert.are.same({ 0, 0, 1 }, r:expand({ 2, 4, 3 }):stride())
        assert.are.same({ 5, 3 }, r:expand(5, -1):size())
        local col = lv.tensor({ 1, 2 }, dt):view(2, 1)
        same(col:expand_as(lv.zeros({ 2, 3 })), { { 1, 1, 1 }, { 2, 2, 2 } })
        same(lv.tensor(7, dt):expand(2), { 7, 7 })
        -- writes to the base show in every row
        r[1][2] = 20
        same(e, { { 1, 20, 3 }, { 1, 20, 3 }, { 1, 20, 3 }, { 1, 20, 3 } })
        -- expanding a transposed view
        local m = lv.tensor({ { 1, 2 }, { 3, 4 } }, dt)
        same(m:t():expand(2, 2, 2), { { { 1, 3 }, { 2, 4 } }, { { 1, 3 }, { 2, 4 } } })
      end)

      it("cat along any dim", function()
        local a = lv.tensor({ { 1, 2 }, { 3, 4 } }, dt)
        local b = lv.tensor({ { 5, 6 } }, dt)
        same(lv.cat({ a, b }), { { 1, 2 }, { 3, 4 }, { 5, 6 } })
        same(lv.cat({ a, b }, 1), { { 1, 2 }, { 3, 4 }, { 5, 6 } })
        same(lv.cat({ a, b:t() }, 2), { { 1, 2, 5 }, { 3, 4, 6 } })
        same(lv.cat({ a, a:t(), b:t() }, -1), { { 1, 2, 1, 3, 5 }, { 3, 4, 2, 4, 6 } })
        same(lv.cat({ a }), a:totable())
        same(lv.cat({ lv.tensor({ 1 }, dt), lv.tensor({}, dt), lv.tensor({ 2, 3 }, dt) }), { 1, 2, 3 })
        assert.are.equal(dt, lv.cat({ a, b }):dtype())
        -- a result is a copy
        local r = lv.cat({ a, b })
        r:fill_(0)
        same(a, { { 1, 2 }, { 3, 4 } })
        -- expanded inputs
        same(lv.cat({ b:expand(2, 2), a }, 2), { { 5, 6, 1, 2 }, { 5, 6, 3, 4 } })
      end)

      it("stack, including the last and negative dims", function()
        local a = lv.tensor({ 1, 2, 3 }, dt)
        local b = lv.tensor({ 4, 5, 6 }, dt)
        same(lv.stack({ a, b }), { { 1, 2, 3 }, { 4, 5, 6 } })
        same(lv.stack({ a, b }, 1), { { 1, 2, 3 }, { 4, 5, 6 } })
        same(lv.stack({ a, b }, 2), { { 1, 4 }, { 2, 5 }, { 3, 6 } })
        same(lv.stack({ a, b }, -1), { { 1, 4 }, { 2, 5 }, { 3, 6 } })
        same(lv.stack({ a, b }, -2), { { 1, 2, 3 }, { 4, 5, 6 } })
        local m = lv.tensor({ { 1, 2 }, { 3, 4 } }, dt)
        local s = lv.stack({ m, m:t() }, 3)
        assert.are.same({ 2, 2, 2 }, s:size())
        same(s, { { { 1, 1 }, { 2, 3 } }, { { 3, 2 }, { 4, 4 } } })
        same(lv.stack({ m, m:t() }, -1), s:totable())
        same(lv.stack({ lv.tensor(1, dt), lv.tensor(2, dt) }), { 1, 2 })
      end)

      it("mixed dtypes promote to f64 in cat and stack", function()
        local a = lv.tensor({ 0.1 }, dt)
        local b = lv.tensor({ 0.1 }, dt == "f32" and "f64" or "f32")
        local s = lv.stack({ a, b })
        assert.are.equal("f64", s:dtype())
        same(s:view(2), { a:item(), b:item() })
        assert.are.equal("f64", lv.cat({ a, b }):dtype())
        same(lv.cat({ a, b }), { a:item(), b:item() })
      end)

      it("contiguous, clone", function()
        local m = lv.tensor({ { 1, 2, 3 }, { 4, 5, 6 } }, dt)
        local t = m:t()
        assert.is_false(t:is_contiguous())
        local tc = t:contiguous()
        assert.is_true(tc:is_contiguous())
        assert.are.same({ 2, 1 }, tc:stride())
        same(tc, { { 1, 4 }, { 2, 5 }, { 3, 6 } })
        tc:fill_(0)
        same(m, { { 1, 2, 3 }, { 4, 5, 6 } })
        local e = lv.tensor({ 1, 2 }, dt):expand(3, 2):contiguous()
        assert.are.same({ 2, 1 }, e:stride())
        same(e, { { 1, 2 }, { 1, 2 }, { 1, 2 } })
        local c = m:clone()
        assert.are.equal(dt, c:dtype())
        same(c, m:totable())
        c[1][1] = 100
        m[2][2] = -5
        same(c, { { 100, 2, 3 }, { 4, 5, 6 } })
        same(m, { { 1, 2, 3 }, { 4, -5, 6 } })
        local ct = t:clone()
        assert.is_true(ct:is_contiguous())
        same(ct, { { 1, 4 }, { 2, -5 }, { 3, 6 } })
      end)

      it("copy_ across dtypes and from a broadcast source", function()
        local other = dt == "f32" and "f64" or "f32"
        local x = lv.zeros({ 2, 3 }, dt)
        local r = x:copy_(lv.tensor({ { 0.1, 2, 3 }, { 4, 5, 6 } }, other))
        assert.are.equal(x, r)      -- returns self
        assert.are.equal(dt, x:dtype())
        same(x, { { H.round(H.round(0.1, other), dt), 2, 3 }, { 4, 5, 6 } })
        x:copy_(lv.tensor({ 7, 8, 9 }, other))
        same(x, { { 7, 8, 9 }, { 7, 8, 9 } })
        x:copy_(lv.tensor({ { -1 }, { -2 } }, dt))
        same(x, { { -1, -1, -1 }, { -2, -2, -2 } })
        x:copy_(lv.tensor(3, other))
        same(x, { { 3, 3, 3 }, { 3, 3, 3 } })
        -- into a non-contiguous destination from a non-contiguous source
        local y = lv.zeros({ 3, 2 }, dt)
        y:t():copy_(lv.tensor({ { 1, 2 }, { 3, 4 }, { 5, 6 } }, other):t())
        same(y, { { 1, 2 }, { 3, 4 }, { 5, 6 } })
      end)

      it("zero_ and fill_ return self and fill every element", function()
        local x = lv.tensor({ { 1, 2 }, { 3, 4 } }, dt)
        assert.are.equal(x, x:fill_(0.1))
        same(x, { { H.round(0.1, dt), H.round(0.1, dt) }, { H.round(0.1, dt), H.round(0.1, dt) } })
        assert.are.equal(x, x:zero_())
        same(x, { { 0, 0 }, { 0, 0 } })
        x:t():narrow(1, 2, 1):fill_(5)
        same(x, { { 0, 5 }, { 0, 5 } })
        lv.fill_(x, 1/0)
        same(x, { { 1/0, 1/0 }, { 1/0, 1/0 } })
        lv.zero_(x)
        same(x, { { 0, 0 }, { 0, 0 } })
      end)

      it("x[i] reads a slice, x[i][j] an element", function()
        local m = lv.tensor({ { 1, 2, 3 }, { 4, 5, 6 } }, dt)
        same(m[1], { 1, 2, 3 })
        same(m[2], { 4, 5, 6 })
        same(m[-1], { 4, 5, 6 })
        same(m[-2], { 1, 2, 3 })
        assert.are.equal(2, m[1][2]:item())
        assert.are.equal(6, m[2][3]:item())
        assert.are.equal(6, m[-1][-1]:item())
        assert.are.equal(0, m[1][2]:dim())
        same(m:t()[3], { 3, 6 })
        assert.are.equal(4, m:t()[1][2]:item())
        same(lv.tensor(c, dt)[2][3], { 21, 22, 23, 24 })
        -- methods are still found
        assert.are.equal("function", type(m.size))
      end)

      it("x[i] = number and x[i] = tensor", function()
        local m = lv.zeros({ 3, 2 }, dt)
        m[1] = 1
        m[-1] = lv.tensor({ 5, 6 }, dt)
        m[2] = lv.tensor({ 0.5 }, dt == "f32" and "f64" or "f32")    -- broadcast, other dtype
        same(m, { { 1, 1 }, { 0.5, 0.5 }, { 5, 6 } })
        m[2][1] = -3
        same(m, { { 1, 1 }, { -3, 0.5 }, { 5, 6 } })
        local v = lv.zeros({ 3 }, dt)
        v[2] = 4.25
        v[-1] = lv.tensor(2, dt)
        same(v, { 0, 4.25, 2 })
      end)
    end)
  end
end)

describe("shape ops on non-contiguous input", function()
  for _, dt in ipairs(H.dtypes) do
    it("give what they give on a contiguous copy (" .. dt .. ")", function()
      local other = dt == "f32" and "f64" or "f32"
      local x = lv.tensor(H.random_table({ 2, 3, 4 }, H.generator(21), -5, 5, true), dt)
      local ops = {
        transpose = function(t) return t:transpose(1, 2) end,
        t_last = function(t) return t:transpose(-1, 1) end,
        permute = function(t) return t:permute(3, 1, 2) end,
        narrow = function(t) return t:narrow(2, 2, 2) end,
        narrow_last = function(t) return t:narrow(-1, 2, 3) end,
        select = function(t) return t:select(3, 2) end,
        select_first = function(t) return t[2] end,
        index = function(t) return t[-1][2] end,
        unsqueeze = function(t) return t:unsqueeze(2) end,
        squeeze = function(t) return t:unsqueeze(4):unsqueeze(1):squeeze() end,
        squeeze_one = function(t) return t:narrow(2, 1, 1):squeeze(2) end,
        expand = function(t) return t:narrow(2, 2, 1):expand(2, 5, 4) end,
        expand_new = function(t) return t:expand(3, 2, 3, 4) end,
        reshape = function(t) return t:reshape(4, 6) end,
        reshape_infer = function(t) return t:reshape(-1) end,
        view_split = function(t) return t:select(1, 1):unsqueeze(1) end,
        cat = function(t) return lv.cat({ t, t:narrow(3, 1, 1) }, 3) end,
        stack = function(t) return lv.stack({ t, t }, 2) end,
        contiguous = function(t) return t:contiguous() end,
        clone = function(t) return t:clone() end,
        to = function(t) return t:to(other) end,
        copy_ = function(t) return lv.zeros({ 2, 3, 4 }, other):copy_(t) end,
        tensor = function(t) return lv.tensor(t) end,
      }
      for name, f in pairs(ops) do
        local want = f(x:contiguous())
        for _, pair in ipairs(H.layouts(x)) do
          local got = f(pair[2])
          assert.are.same(want:size(), got:size(), name .. " on " .. pair[1])
          assert.are.equal(want:dtype(), got:dtype(), name .. " on " .. pair[1])
          same(got, want, name .. " on " .. pair[1])
        end
      end
    end)
  end
end)

describe("printing", function()
  it("a 2x2 f64 tensor prints exactly", function()
    assert.are.equal(" 1  2\n 3  4\n[f64 tensor of size 2x2]",
                     tostring(lv.tensor({ { 1, 2 }, { 3, 4 } }, "f64")))
    assert.are.equal("  1.5000  -2.0000\n  3.2500   4.0000\n[f64 tensor of size 2x2]",
                     tostring(lv.tensor({ { 1.5, -2 }, { 3.25, 4 } }, "f64")))
  end)

  it("f32 and 1-D footers", function()
    assert.are.equal(" 1\n 2\n 3\n[f32 tensor of size 3]", tostring(lv.tensor({ 1, 2, 3 })))
    assert.are.equal(" 1  2\n 3  4\n[f32 tensor of size 2x2]",
                     tostring(lv.tensor({ { 1, 2 }, { 3, 4 } }, "f32")))
  end)

  it("a 0-dim tensor", function()
    for _, dt in ipairs(H.dtypes) do
      local s = tostring(lv.tensor(2.5, dt))
      assert.are.equal("2.5000\n[" .. dt .. " tensor, 0-dim]", s)
    end
    assert.are.equal("3\n[f32 tensor, 0-dim]", tostring(lv.tensor(3)))
  end)

  it("a 3-D tensor in 2-D slices", function()
    local s = tostring(lv.arange(8, "f64"):view(2, 2, 2))
    assert.truthy(s:find("(1,.,.) =", 1, true))
    assert.truthy(s:find("(2,.,.) =", 1, true))
    assert.truthy(s:find(" 4  5\n 6  7", 1, true))
    assert.truthy(s:find("[f64 tensor of size 2x2x2]", 1, true))
  end)

  it("a 100x100 tensor is abbreviated", function()
    local s = tostring(lv.arange(10000):view(100, 100))
    assert.truthy(s:find("...", 1, true))
    assert.truthy(s:find("[f32 tensor of size 100x100]", 1, true))
    local _, lines = s:gsub("\n", "")
    assert.is_true(lines < 20)
    assert.is_true(#s < 1000)
    assert.truthy(s:find("9999", 1, true))
    assert.falsy(s:find("5050", 1, true))
  end)

  it("NaN and inf", function()
    local s = tostring(lv.tensor({ 0 / 0, 1 / 0, -1 / 0, 1 }, "f64"))
    assert.truthy(s:find("nan", 1, true))
    assert.truthy(s:find(" inf", 1, true))
    assert.truthy(s:find("-inf", 1, true))
    assert.falsy(s:find("-nan", 1, true))
    assert.truthy(tostring(lv.tensor(0 / 0)):find("nan", 1, true))
  end)

  it("a non-contiguous view prints its own values", function()
    assert.are.equal(" 1  3\n 2  4\n[f64 tensor of size 2x2]",
                     tostring(lv.tensor({ { 1, 2 }, { 3, 4 } }, "f64"):t()))
  end)

  it("up to 8 dims works, 9 is an error", function()
    local x = lv.ones({ 1, 1, 1, 1, 1, 1, 2, 2 })
    assert.are.equal(8, x:dim())
    local s = tostring(x)
    assert.truthy(s:find("(1,1,1,1,1,1,.,.) =", 1, true))
    assert.truthy(s:find("[f32 tensor of size 1x1x1x1x1x1x2x2]", 1, true))
    assert.are.equal(8, x:squeeze(1):unsqueeze(1):dim())
    assert.has_error(function() lv.ones({ 1, 1, 1, 1, 1, 1, 1, 1, 1 }) end)
    assert.has_error(function() x:unsqueeze(1) end)
  end)
end)
