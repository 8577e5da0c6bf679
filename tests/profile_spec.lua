-- profile_spec.lua -- lv.profile (lua/lvae/profile.lua over
-- src/profile.c): per-op calls, output elements and times of a function's
-- ops, per call of the function; the backward pass shows as the ops its
-- VJPs apply; errors are named; profiling stops when fn raises.

local lv = require "lvae"

local function row(report, op)
  for _, r in ipairs(report.rows) do
    if r.op == op then return r end
  end
end

describe("lv.profile", function()
  it("counts each op's calls and output elements, per call of fn", function()
    local a, b = lv.randn({ 30, 20 }), lv.randn({ 20, 10 })
    local report = lv.profile(function() return (a:matmul(b) + 1):exp() end, { repeats = 4 })
    local mm, add, exp = row(report, "matmul"), row(report, "add"), row(report, "exp")
    assert.are.equal(1, mm.calls)
    assert.are.equal(300, mm.elements)
    assert.are.equal(2 * 30 * 10 * 20, mm.flops)     -- 2 n m k
    assert.are.equal(0, add.flops)
    assert.are.equal(1, add.calls)
    assert.are.equal(1, exp.calls)
    assert.is_nil(row(report, "softplus"))
    for _, r in ipairs(report.rows) do
      assert.is_true(r.self_seconds >= 0 and r.self_seconds <= r.seconds + 1e-12)
    end
    assert.is_true(report.ops <= report.total)
    -- slowest first
    for i = 2, #report.rows do
      assert.is_true(report.rows[i - 1].self_seconds >= report.rows[i].self_seconds)
    end
    assert.truthy(tostring(report):find("matmul", 1, true))
    assert.truthy(tostring(report):find("ms per call", 1, true))
  end)

  it("shows the backward pass as the ops its VJPs apply", function()
    local w = lv.param(lv.randn({ 5, 4 }))
    local x = lv.randn({ 3, 5 })
    local report = lv.profile(function() return lv.grad(x:matmul(w):sum(), { w }) end)
    -- forward matmul, and x^T g for the weight's gradient
    assert.are.equal(2, row(report, "matmul").calls)
  end)

  it("stops profiling when fn raises, and passes the error on", function()
    local ok, err = pcall(lv.profile, function() error("inside") end)
    assert.is_false(ok)
    assert.truthy(tostring(err):find("inside", 1, true))
    -- profiling is off again: a later profile starts from zero
    local report = lv.profile(function() return lv.randn({ 2 }):exp() end)
    assert.are.equal(1, row(report, "exp").calls)
  end)

  it("refuses bad arguments by name", function()
    local ok, err = pcall(lv.profile, 3)
    assert.is_false(ok)
    assert.truthy(tostring(err):find("lv.profile: expected a function", 1, true))
    ok, err = pcall(lv.profile, function() end, { repeats = 0 })
    assert.truthy(tostring(err):find("'repeats' must be a positive integer", 1, true))
    ok, err = pcall(lv.profile, function() end, { repeat_count = 2 })
    assert.truthy(tostring(err):find("unknown option 'repeat_count'", 1, true))
  end)
end)
