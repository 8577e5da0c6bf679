-- rng_spec.lua -- the counter-based generator (src/rng.c) and its binding
-- (src/lua_rng.c): Philox against its published answers, the exact bit
-- recipes of the fills, reproducibility, independent streams, state
-- round trips, thread-count independence, distributions, and error text.
--
-- Statistics are computed here in plain Lua from :totable(), so these specs
-- test the generator and nothing of the reduction ops.

local lv = require "lvae"
local core = require "lvae.core"

-- lv._philox may be hidden by init.lua (names starting with "_" are
-- private); the core module always has it.
local philox = lv._philox or core._philox

local N = 1000000  -- draws for the statistical checks

-- pcall fn and check the error message contains every given piece.
local function expect_error(fn, ...)
  local ok, msg = pcall(fn)
  assert.is_false(ok, "expected an error")
  msg = tostring(msg)
  for _, piece in ipairs{...} do
    assert(msg:find(piece, 1, true),
           string.format("error %q does not mention %q", msg, piece))
  end
end

local function same(a, b)
  assert.are.equal(#a, #b)
  for i = 1, #a do
    if a[i] ~= b[i] then return false end
  end
  return true
end

local function moments(t)
  local s, s2 = 0, 0
  for i = 1, #t do
    local v = t[i]
    s = s + v
    s2 = s2 + v * v
  end
  local mean = s / #t
  return mean, s2 / #t - mean * mean
end

local function concat(a, b)
  local c = {}
  for i = 1, #a do c[#c + 1] = a[i] end
  for i = 1, #b do c[#c + 1] = b[i] end
  return c
end

local function slice(t, i, j)
  return table.move(t, i, j, 1, {})
end

describe("philox4x32-10", function()
  -- Known-answer vectors of Random123 (kat_vectors, philox4x32_10).
  it("matches the Random123 known answers", function()
    assert.are.same({0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8},
      {philox({0, 0, 0, 0}, {0, 0})})
    assert.are.same({0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd},
      {philox({0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff},
              {0xffffffff, 0xffffffff})})
    assert.are.same({0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1},
      {philox({0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344},
              {0xa4093822, 0x299f31d0})})
  end)

  it("rejects words outside [0, 2^32)", function()
    expect_error(function() philox({0, 0, 0, 2^32}, {0, 0}) end,
                 "bad argument #1", "[0, 2^32)")
    expect_error(function() philox({0, 0, 0, 0}, {-1, 0}) end,
                 "bad argument #2")
    expect_error(function() philox({0, 0, 0}, {0, 0}) end, "bad argument #1")
  end)
end)

describe("fills are exact functions of Philox blocks", function()
  -- Seed s is the key (low word first); block b is counter {offset+b, 0}.
  local seed = 0x0123456789abcdef
  local key = {seed & 0xffffffff, (seed >> 32) & 0xffffffff}

  it("f32 uniforms are the top 24 bits of each word", function()
    lv.manual_seed(seed)
    local x = lv.rand{8}:totable()
    local expect = {}
    for b = 0, 1 do
      local w = {philox({b, 0, 0, 0}, key)}
      for j = 1, 4 do expect[#expect + 1] = (w[j] >> 8) * 2.0^-24 end
    end
    assert.are.same(expect, x)
  end)

  it("f64 uniforms take 27 + 26 bits of two words", function()
    lv.manual_seed(seed)
    local x = lv.rand({4}, "f64"):totable()
    local expect = {}
    for b = 0, 1 do
      local w = {philox({b, 0, 0, 0}, key)}
      for j = 1, 3, 2 do
        expect[#expect + 1] = ((w[j] >> 5) * 2.0^26 + (w[j + 1] >> 6)) * 2.0^-53
      end
    end
    assert.are.same(expect, x)
  end)

  it("f64 bernoulli is exactly (f64 uniform < p)", function()
    lv.manual_seed(5)
    local u = lv.rand({1001}, "f64"):totable()
    lv.manual_seed(5)
    local b = lv.bernoulli({1001}, 0.37, "f64"):totable()
    for i = 1, #u do
      assert.are.equal(u[i] < 0.37 and 1 or 0, b[i])
    end
  end)
end)

describe("seeding", function()
  it("the same seed gives the same numbers, another seed others", function()
    lv.manual_seed(42)
    local a = lv.randn{100}:totable()
    lv.manual_seed(42)
    local b = lv.randn{100}:totable()
    lv.manual_seed(43)
    local c = lv.randn{100}:totable()
    assert.is_true(same(a, b))
    assert.is_false(same(a, c))
  end)

  it("lv.seed() reports the seed, keeping all 64 bits", function()
    for _, s in ipairs{0, 1, 42, math.maxinteger, -1, math.mininteger} do
      lv.manual_seed(s)
      assert.are.equal(s, lv.seed())
    end
    -- a float seed with an integral value beyond 2^63 - 1 keeps its bits
    lv.manual_seed(2^63)
    assert.are.equal(math.mininteger, lv.seed())
    lv.manual_seed(3.0)
    assert.are.equal(3, lv.seed())
  end)

  it("rejects seeds that are not integers", function()
    expect_error(function() lv.manual_seed(1.5) end,
                 "bad argument #1", "manual_seed", "seed must be an integer")
    expect_error(function() lv.manual_seed(0 / 0) end, "seed must be an integer")
    expect_error(function() lv.manual_seed(2^64) end, "seed must be an integer")
    expect_error(function() lv.manual_seed("7") end, "integer expected")
    expect_error(function() lv.manual_seed() end, "integer expected")
    expect_error(function() lv.Generator(0.5) end, "seed must be an integer")
  end)
end)

describe("generators", function()
  it("a Generator is a stream of its own", function()
    lv.manual_seed(7)
    local a = lv.rand{10}:totable()
    lv.manual_seed(7)
    local g = lv.Generator(99)
    lv.rand({5}, g)
    lv.randn({3}, "f64", g)
    lv.bernoulli({4}, 0.5, g)
    local b = lv.rand{10}:totable()
    assert.is_true(same(a, b))  -- the default stream did not move
  end)

  it("Generator(s) draws what the default generator seeded with s draws", function()
    local g = lv.Generator(1234)
    local a = lv.randn({50}, "f64", g):totable()
    lv.manual_seed(1234)
    local b = lv.randn({50}, "f64"):totable()
    assert.is_true(same(a, b))
  end)

  it("accepts the generator after the shape or after the dtype", function()
    local a = lv.rand({6}, lv.Generator(3)):totable()
    local b = lv.rand({6}, "f32", lv.Generator(3)):totable()
    local c = lv.rand({6}, nil, lv.Generator(3)):totable()
    assert.is_true(same(a, b))
    assert.is_true(same(a, c))
  end)

  it("has manual_seed, seed, state and a printable form", function()
    local g = lv.Generator(5)
    assert.are.equal("Generator(seed=5, offset=0)", tostring(g))
    lv.rand({5}, g)  -- f32: 4 values a block, so 2 blocks
    assert.are.equal("Generator(seed=5, offset=2)", tostring(g))
    assert.are.equal(g, g:manual_seed(8))
    assert.are.equal(8, g:seed())
    assert.are.same({seed = 8, offset = 0}, g:get_state())
    assert.are.equal("Generator(seed=18446744073709551615, offset=0)",
                     tostring(lv.Generator(-1)))
  end)

  it("rejects something else where a generator belongs", function()
    expect_error(function() lv.rand({3}, "f32", {}) end,
                 "bad argument #3", "lvae.Generator expected")
    expect_error(function() lv.randn_like(lv.zeros{2}, 5) end,
                 "bad argument #2", "lvae.Generator expected")
  end)
end)

describe("state", function()
  it("get_rng_state / set_rng_state reproduce the continuation", function()
    lv.manual_seed(11)
    lv.rand{13}
    local s = lv.get_rng_state()
    local a = lv.randn({21}, "f64"):totable()
    local a2 = lv.bernoulli({9}, 0.5):totable()
    lv.manual_seed(0)  -- wander off
    lv.rand{100}
    lv.set_rng_state(s)
    local b = lv.randn({21}, "f64"):totable()
    local b2 = lv.bernoulli({9}, 0.5):totable()
    assert.is_true(same(a, b))
    assert.is_true(same(a2, b2))
  end)

  it("a Generator's state round-trips too", function()
    local g = lv.Generator(17)
    lv.rand({10}, g)
    local s = g:get_state()
    local a = lv.rand({10}, g):totable()
    g:set_state(s)
    local b = lv.rand({10}, g):totable()
    assert.is_true(same(a, b))
    -- and a state moves between generators
    local h = lv.Generator(0)
    h:set_state(s)
    assert.is_true(same(a, lv.rand({10}, h):totable()))
  end)

  it("counts blocks: ceil(n / k), k = 4 (f32) or 2 (f64)", function()
    lv.manual_seed(1)
    lv.rand{5}                   -- 2 blocks
    assert.are.equal(2, lv.get_rng_state().offset)
    lv.rand({5}, "f64")          -- 3 blocks
    assert.are.equal(5, lv.get_rng_state().offset)
    lv.randn{1}                  -- 1 block
    lv.randn({4}, "f64")         -- 2 blocks
    lv.bernoulli({8}, 0.5)       -- 2 blocks
    lv.rand{0}                   -- nothing
    assert.are.equal(10, lv.get_rng_state().offset)
    assert.are.equal(1, lv.get_rng_state().seed)
  end)

  it("rejects malformed states", function()
    expect_error(function() lv.set_rng_state(3) end, "bad argument #1",
                 "table expected")
    expect_error(function() lv.set_rng_state{seed = 1} end,
                 "field 'offset' must be an integer")
    expect_error(function() lv.set_rng_state{seed = 0.5, offset = 0} end,
                 "field 'seed' must be an integer")
  end)
end)

describe("consecutive draws", function()
  it("continue the stream block by block", function()
    lv.manual_seed(21)
    local a = concat(lv.rand{8}:totable(), lv.rand{12}:totable())
    lv.manual_seed(21)
    assert.is_true(same(a, lv.rand{20}:totable()))

    lv.manual_seed(21)
    local b = concat(lv.randn({6}, "f64"):totable(), lv.randn({4}, "f64"):totable())
    lv.manual_seed(21)
    assert.is_true(same(b, lv.randn({10}, "f64"):totable()))
  end)

  it("never reuse a partly used block", function()
    lv.manual_seed(22)
    local a = lv.rand{3}:totable()
    local b = lv.rand{3}:totable()
    assert.is_false(same(a, b))
    lv.manual_seed(22)
    local whole = lv.rand{8}:totable()
    assert.is_true(same(a, slice(whole, 1, 3)))
    assert.is_true(same(b, slice(whole, 5, 7)))  -- block 2, not value 4
  end)

  it("value i of a draw does not depend on the draw's length", function()
    -- the long draws go through the threaded path (n >= 2^16)
    for _, kind in ipairs{"rand", "randn"} do
      for _, dtype in ipairs{"f32", "f64"} do
        lv.manual_seed(23)
        local long = lv[kind]({200001}, dtype):totable()
        lv.manual_seed(23)
        local short = lv[kind]({1001}, dtype):totable()
        assert.is_true(same(short, slice(long, 1, 1001)), kind .. " " .. dtype)
      end
    end
  end)
end)

describe("thread count", function()
  -- Runs a child interpreter with OMP_NUM_THREADS set and returns a digest
  -- of a large draw (two order-fixed sums, printed exactly with %a).
  local function digest(threads)
    local script = [[
      package.path = %q
      package.cpath = %q
      local lv = require "lvae"
      lv.manual_seed(2024)
      local t = lv.randn({300001}, "f64"):totable()
      local u = lv.rand({300001}):totable()
      local s1, s2 = 0, 0
      for i = 1, #t do s1 = s1 + t[i] * i; s2 = s2 + u[i] * i end
      io.write(string.format("%%a %%a", s1, s2))
      io.flush()
      lv.rand{1 << 17}  -- and exit while the thread pool is still warm
    ]]
    script = string.format(script, package.path, package.cpath)
    local name = os.tmpname()
    local f = assert(io.open(name, "w"))
    f:write(script)
    f:close()
    local p = assert(io.popen(string.format(
      "OMP_NUM_THREADS=%d lua5.4 %s 2>&1", threads, name)))
    local out = p:read("a")
    local ok, how, code = p:close()
    os.remove(name)
    -- A crash at exit after threads ran is the classic sign of libgomp
    -- being unloaded under its idle workers (core.so wants -z nodelete).
    assert(ok, string.format("child with %d threads: %s %s, output %q",
                             threads, how, tostring(code), out))
    return out
  end

  it("does not change a single value", function()
    local one, two, three = digest(1), digest(2), digest(3)
    assert.is_truthy(one:match("^%S+ %S+$"), "child failed: " .. one)
    assert.are.equal(one, two)
    assert.are.equal(one, three)
  end)
end)

describe("uniform", function()
  for _, dtype in ipairs{"f32", "f64"} do
    it("is uniform on [0, 1) (" .. dtype .. ")", function()
      lv.manual_seed(100)
      local t = lv.rand({N}, dtype):totable()
      local lo, hi = math.huge, -math.huge
      for i = 1, #t do
        if t[i] < lo then lo = t[i] end
        if t[i] > hi then hi = t[i] end
      end
      assert.is_true(lo >= 0 and hi < 1)
      local mean, var = moments(t)
      -- standard errors: 2.9e-4 (mean), 7.5e-5 (variance)
      assert.is_true(math.abs(mean - 0.5) < 3e-3, "mean " .. mean)
      assert.is_true(math.abs(var - 1 / 12) < 1e-3, "var " .. var)
      -- ten equal bins, each 0.1 +- 6 standard errors
      local bins = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
      for i = 1, #t do
        local k = math.floor(t[i] * 10) + 1
        bins[k] = bins[k] + 1
      end
      for k = 1, 10 do
        assert.is_true(math.abs(bins[k] / N - 0.1) < 2e-3, "bin " .. k)
      end
    end)
  end

  it("f32 carries 24 bits, f64 more", function()
    lv.manual_seed(101)
    local f = lv.rand({1000}, "f32"):totable()
    for i = 1, #f do
      local s = f[i] * 2^24
      assert.are.equal(math.floor(s), s)
    end
    local d = lv.rand({1000}, "f64"):totable()
    local fine = 0
    for i = 1, #d do
      local s = d[i] * 2^24
      if s ~= math.floor(s) then fine = fine + 1 end
      local s53 = d[i] * 2^53
      assert.are.equal(math.floor(s53), s53)
    end
    assert.is_true(fine > 990)
  end)
end)

describe("normal", function()
  for _, dtype in ipairs{"f32", "f64"} do
    it("is standard normal (" .. dtype .. ")", function()
      lv.manual_seed(200)
      local t = lv.randn({N}, dtype):totable()
      local mean, var = moments(t)
      assert.is_true(math.abs(mean) < 5e-3, "mean " .. mean)
      assert.is_true(math.abs(math.sqrt(var) - 1) < 5e-3, "std " .. math.sqrt(var))
      local within1, beyond3, corr = 0, 0, 0
      for i = 1, #t do
        local a = math.abs(t[i])
        if a < 1 then within1 = within1 + 1 end
        if a > 3 then beyond3 = beyond3 + 1 end
        if i > 1 then corr = corr + t[i] * t[i - 1] end
      end
      -- P(|z| < 1) = 0.682689, P(|z| > 3) = 0.002700
      assert.is_true(math.abs(within1 / N - 0.682689) < 3e-3)
      assert.is_true(math.abs(beyond3 / N - 0.002700) < 4e-4)
      -- neighbours (the cos and sin of one Box-Muller pair) are uncorrelated
      assert.is_true(math.abs(corr / (N - 1)) < 5e-3)
    end)
  end

  it("randn_like and rand_like take shape and dtype from x", function()
    local x = lv.zeros({3, 4}, "f64")
    for _, f in ipairs{"rand_like", "randn_like"} do
      local y = x[f](x)
      assert.are.same({3, 4}, y:size())
      assert.are.equal("f64", y:dtype())
      assert.are.equal("f32", lv[f](lv.zeros{2}):dtype())
    end
    local a = x:randn_like(lv.Generator(9)):totable()
    local b = lv.randn({3, 4}, "f64", lv.Generator(9)):totable()
    assert.are.same(b, a)
  end)
end)

describe("bernoulli", function()
  for _, dtype in ipairs{"f32", "f64"} do
    it("with a number p has mean p and values 0/1 (" .. dtype .. ")", function()
      lv.manual_seed(300)
      local x = lv.bernoulli({N}, 0.3, dtype)
      assert.are.equal(dtype, x:dtype())
      local t = x:totable()
      local ones = 0
      for i = 1, #t do
        assert(t[i] == 0 or t[i] == 1, "value " .. t[i])
        ones = ones + t[i]
      end
      -- standard error 4.6e-4
      assert.is_true(math.abs(ones / N - 0.3) < 3e-3, "mean " .. ones / N)
    end)
  end

  it("p = 0 never fires and p = 1 always does", function()
    lv.manual_seed(301)
    for _, dtype in ipairs{"f32", "f64"} do
      for _, v in ipairs(lv.bernoulli({10000}, 0, dtype):totable()) do
        assert.are.equal(0, v)
      end
      for _, v in ipairs(lv.bernoulli({10000}, 1, dtype):totable()) do
        assert.are.equal(1, v)
      end
    end
  end)

  it("with a tensor p follows each element's probability", function()
    lv.manual_seed(302)
    local n = 200000
    local probs = {}
    for i = 1, n do probs[i] = i <= n / 2 and 0.2 or 0.9 end
    for _, dtype in ipairs{"f32", "f64"} do
      local x = lv.bernoulli(lv.tensor(probs, dtype))
      assert.are.equal(dtype, x:dtype())
      assert.are.same({n}, x:size())
      local t = x:totable()
      local a = moments(slice(t, 1, n / 2))
      local b = moments(slice(t, n / 2 + 1, n))
      assert.is_true(math.abs(a - 0.2) < 6e-3, "first half " .. a)
      assert.is_true(math.abs(b - 0.9) < 6e-3, "second half " .. b)
    end
  end)

  it("reads a non-contiguous p in its logical order", function()
    -- rows of p are all 0 and all 1; transposed, columns are.
    local p = lv.tensor({{0, 0, 0, 0, 0}, {1, 1, 1, 1, 1}}, "f64"):t()
    assert.is_false(p:is_contiguous())
    local x = lv.bernoulli(p)
    assert.are.same({5, 2}, x:size())
    assert.are.same(p:totable(), x:totable())
  end)

  it("with a tensor p uses the generator given", function()
    local p = lv.full({40}, 0.5)
    local a = lv.bernoulli(p, lv.Generator(4)):totable()
    local b = lv.bernoulli({40}, 0.5, lv.Generator(4)):totable()
    assert.are.same(b, a)
  end)

  it("rejects probabilities outside [0, 1]", function()
    local msg = "probabilities must lie in [0, 1]"
    expect_error(function() lv.bernoulli({3}, 1.5) end, "bad argument #2", msg)
    expect_error(function() lv.bernoulli({3}, -0.1) end, "bad argument #2", msg)
    expect_error(function() lv.bernoulli({3}, 0 / 0) end, "bad argument #2", msg)
    expect_error(function() lv.bernoulli(lv.tensor{0.5, 1.01}) end,
                 "bad argument #1", "bernoulli", msg)
    expect_error(function() lv.bernoulli(lv.tensor{0.5, 0 / 0}) end,
                 "bad argument #1", msg)
    expect_error(function() lv.bernoulli(lv.tensor{{0.5, -1}, {0, 0}}:t()) end,
                 "bad argument #1", msg)
    expect_error(function() lv.bernoulli("x") end, "bad argument #1",
                 "tensor or shape table expected")
  end)

  it("leaves the generator alone when an argument is bad", function()
    lv.manual_seed(303)
    pcall(lv.bernoulli, lv.tensor{0.5, 2})
    pcall(lv.rand, {3}, "f16")
    assert.are.equal(0, lv.get_rng_state().offset)
  end)
end)

describe("argument errors", function()
  it("name the function, the argument and the problem", function()
    expect_error(function() lv.rand({3}, "f16") end,
                 "bad argument #2", "rand", "f16")
    expect_error(function() lv.randn({2}, "double precision") end,
                 "bad argument #2", "randn")
    expect_error(function() lv.rand{-1} end, "bad argument #1", "rand", "negative")
    expect_error(function() lv.randn{2, -3} end, "bad argument #1", "negative")
    expect_error(function() lv.rand{1.5} end, "bad argument #1", "not an integer")
    expect_error(function() lv.bernoulli({-2}, 0.5) end, "bad argument #1",
                 "negative")
    expect_error(function() lv.rand_like({1, 2}) end, "bad argument #1")
  end)
end)
