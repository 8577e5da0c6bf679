-- autograd_spec.lua -- the tape (src/autograd.c, src/lua_autograd.c,
-- lua/lvae/autograd.lua) and every VJP (the bottoms of src/ops_*.c and
-- src/linalg.c), in float64:
--
--   * gradcheck and gradgradcheck (lv.testing) of every differentiable op,
--     with broadcasting and on non-contiguous views (transposed, narrowed,
--     expanded, strided), worst error below 1e-6 (STYLE point 11);
--   * a third derivative of a small softplus MLP against central finite
--     differences of its second derivative;
--   * lv.hessian and lv.hvp against closed forms and each other;
--   * the tape's behaviour: .grad accumulation, detach, grad mode, lists,
--     allow_unused, ties, mixed dtypes, views of leaves;
--   * the error messages of the reverse pass (STYLE point 12);
--   * a training-like loop with double backward that keeps the resident
--     size flat.
--
-- Non-contiguous views are made inside the checked function (gradcheck
-- clones its inputs, which makes them contiguous): f(x) = op(x:t()), etc.
-- Inputs stay away from kinks and domain edges (log and sqrt positive,
-- relu/abs/sign/clamp off 0 and the bounds, max/min/maximum/minimum with
-- well separated values), where finite differences would be meaningless.
--
-- Not here: values of the ops themselves (ops_spec.lua, linalg_spec.lua).

local lv = require "lvae"
local H = require "helpers"

local TOL = 1e-6

---- inputs ------------------------------------------------------------------

local rnd = H.generator(20240611)

--- An f64 tensor of the given shape filled by fill().
local function tensor_of(shape, fill)
  local data = {}
  for i = 1, H.numel(shape) do data[i] = fill() end
  return lv.tensor(H.nest(shape, data), "f64")
end

local function uniform(shape, lo, hi)
  return tensor_of(shape, function() return rnd(lo, hi) end)
end

--- |x| in [lo, hi] with a random sign: away from 0.
local function away(shape, lo, hi)
  return tensor_of(shape, function()
    local v = rnd(lo, hi)
    return rnd(0, 1) < 0.5 and -v or v
  end)
end

--- Values 0.2 k + offset + [0, 0.05) for integers k in [-5, 4]: a tensor
-- made with offset 0 and one made with offset 0.1 differ by at least 0.05
-- at every pair of elements (for maximum and minimum).
local function grid(shape, offset)
  return tensor_of(shape, function()
    return 0.2 * math.floor(rnd(-5, 5)) + offset + rnd(0, 0.05)
  end)
end

--- Distinct values, at least 0.08 apart, in shuffled order (for max/min).
local function distinct(shape)
  local n = H.numel(shape)
  local perm = {}
  for i = 1, n do perm[i] = i end
  for i = n, 2, -1 do
    local j = math.floor(rnd(0, i)) + 1
    perm[i], perm[j] = perm[j], perm[i]
  end
  local data = {}
  for i = 1, n do data[i] = 0.1 * (perm[i] - n / 2) + rnd(0, 0.02) end
  return lv.tensor(H.nest(shape, data), "f64")
end

--- Values in [lo, hi] at least `margin` away from every point of `bad`.
local function avoiding(shape, lo, hi, bad, margin)
  return tensor_of(shape, function()
    while true do
      local v = rnd(lo, hi)
      local ok = true
      for _, b in ipairs(bad) do
        if math.abs(v - b) < margin then ok = false end
      end
      if ok then return v end
    end
  end)
end

--- A well-conditioned n x n matrix (or a batch of them): s I + noise.
local function well_conditioned(shape, s)
  local n = shape[#shape]
  local a = uniform(shape, -0.5, 0.5)
  return a + lv.eye(n, "f64") * (s or 3)
end

---- checks --------------------------------------------------------------------

local function where_text(w)
  if not w then return "" end
  return string.format(" at input %d, element %d, output %d (tape %.12g, numeric %.12g)",
    w.input, w.element, w.output, w.tape, w.numeric)
end

local function gradcheck(f, inputs, what)
  local worst, where = lv.testing.gradcheck(f, inputs)
  assert(worst < TOL, string.format("%s: gradcheck error %.3g%s", what, worst, where_text(where)))
end

local function gradgradcheck(f, inputs, what)
  local worst, where = lv.testing.gradgradcheck(f, inputs)
  assert(worst < TOL, string.format("%s: gradgradcheck error %.3g%s", what, worst,
    where_text(where)))
end

--- square(f(...)): a nonlinear use of f's result, so that second
-- derivatives run through f's VJP (a linear op's own second derivative is
-- zero and checks nothing).
local function squared(f)
  return function(...) return f(...):square() end
end

--- Registers two specs for a case: gradcheck of f, and gradgradcheck of
-- f and of square(f). The inputs are made when the case is declared, so
-- the order of the random stream is fixed.
local function case(name, f, inputs)
  it(name .. ": gradcheck", function()
    gradcheck(f, inputs, name)
  end)
  it(name .. ": gradgradcheck", function()
    gradgradcheck(f, inputs, name)
    gradgradcheck(squared(f), inputs, name .. " (squared)")
  end)
end

--- The largest |a - b| relative to the largest |b|.
local function rel_diff(a, b)
  local scale = H.max_abs_diff(b, H.map(b, function() return 0 end))
  return H.max_abs_diff(a, b) / math.max(scale, 1e-300)
end

--- Asserts that fn raises an error mentioning every given piece.
local function raises(fn, ...)
  local ok, msg = pcall(fn)
  assert(not ok, "expected an error")
  msg = tostring(msg)
  for _, piece in ipairs({ ... }) do
    assert(msg:find(piece, 1, true),
      string.format("error %q does not mention %q", msg, piece))
  end
  return msg
end

---- elementwise unary -----------------------------------------------------------

-- name, input maker for a shape, extra arguments.
local unary_ops = {
  { "neg", function(s) return uniform(s, -2, 2) end },
  { "exp", function(s) return uniform(s, -2, 2) end },
  { "log", function(s) return uniform(s, 0.5, 3) end },
  { "log1p", function(s) return uniform(s, -0.5, 2) end },
  { "expm1", function(s) return uniform(s, -2, 2) end },
  { "sqrt", function(s) return uniform(s, 0.5, 3) end },
  { "square", function(s) return uniform(s, -2, 2) end },
  { "tanh", function(s) return uniform(s, -2, 2) end },
  { "sigmoid", function(s) return uniform(s, -3, 3) end },
  { "softplus", function(s) return uniform(s, -3, 3) end },
  { "logsigmoid", function(s) return uniform(s, -3, 3) end },
  { "relu", function(s) return away(s, 0.1, 2) end },
  { "abs", function(s) return away(s, 0.1, 2) end },
  { "sign", function(s) return away(s, 0.1, 2) end },
  { "clamp", function(s) return avoiding(s, -1, 1, { -0.5, 0.5 }, 0.05) end, { -0.5, 0.5 } },
  { "clamp", function(s) return avoiding(s, -1, 1, { -0.5 }, 0.05) end, { -0.5, nil } },
  { "clamp", function(s) return avoiding(s, -1, 1, { 0.5 }, 0.05) end, { nil, 0.5 } },
}

describe("gradients of unary ops", function()
  for _, op in ipairs(unary_ops) do
    local name, make, args = op[1], op[2], op[3] or {}
    local label = name
    if name == "clamp" then
      label = string.format("clamp(x, %s, %s)", tostring(args[1]), tostring(args[2]))
    end
    local function apply(x) return x[name](x, args[1], args[2]) end
    case(label .. " [3,4]", apply, { make({ 3, 4 }) })
    case(label .. " of a transposed view", function(x) return apply(x:t()) end, { make({ 4, 3 }) })
    case(label .. " of a narrowed view", function(x) return apply(x:narrow(2, 2, 4)) end,
      { make({ 3, 6 }) })
    case(label .. " of an expanded view", function(x) return apply(x:expand(3, 4)) end,
      { make({ 3, 1 }) })
  end
  case("lv.exp(x) of a 0-dim tensor", function(x) return lv.exp(x) end, { uniform({}, -1, 1) })
end)

---- elementwise binary -----------------------------------------------------------

-- name, maker of the left and right operands for two shapes, and Lua
-- numbers to stand as a left or a right operand (left goes with the
-- right maker, right with the left maker).
local binary_ops = {
  { "add", function(s) return uniform(s, -2, 2) end, function(s) return uniform(s, -2, 2) end,
    0.7, -0.7 },
  { "sub", function(s) return uniform(s, -2, 2) end, function(s) return uniform(s, -2, 2) end,
    0.7, -0.7 },
  { "mul", function(s) return uniform(s, -2, 2) end, function(s) return uniform(s, -2, 2) end,
    1.3, -1.3 },
  { "div", function(s) return uniform(s, -2, 2) end, function(s) return away(s, 0.5, 2) end,
    1.5, 1.5 },
  { "pow", function(s) return uniform(s, 0.5, 2) end, function(s) return uniform(s, -1.5, 1.5) end,
    1.7, 1.7 },
  { "maximum", function(s) return grid(s, 0) end, function(s) return grid(s, 0.1) end,
    0.025, 0.125 },
  { "minimum", function(s) return grid(s, 0) end, function(s) return grid(s, 0.1) end,
    0.025, 0.125 },
}

describe("gradients of binary ops", function()
  for _, op in ipairs(binary_ops) do
    local name, left, right, lnum, rnum = op[1], op[2], op[3], op[4], op[5]
    local function apply(a, b) return lv[name](a, b) end
    case(name .. " [2,3] and [2,3]", apply, { left({ 2, 3 }), right({ 2, 3 }) })
    case(name .. " broadcasting [3,1] and [1,4]", apply, { left({ 3, 1 }), right({ 1, 4 }) })
    case(name .. " broadcasting [2,3] and [3]", apply, { left({ 2, 3 }), right({ 3 }) })
    case(name .. " broadcasting [3] and [2,3]", apply, { left({ 3 }), right({ 2, 3 }) })
    case(name .. " broadcasting [2,3] and a 0-dim tensor", apply, { left({ 2, 3 }), right({}) })
    case(name .. " with a number on the right", function(a) return lv[name](a, rnum) end,
      { left({ 2, 3 }) })
    case(name .. " with a number on the left", function(b) return lv[name](lnum, b) end,
      { right({ 2, 3 }) })
    case(name .. " of a transposed and a narrowed view",
      function(a, b) return apply(a:t(), b:narrow(2, 2, 4)) end, { left({ 4, 3 }), right({ 3, 6 }) })
    case(name .. " of an expanded view and a strided view",
      function(a, b) return apply(a:expand(3, 4), b:view(3, 4, 2):select(3, 2)) end,
      { left({ 3, 1 }), right({ 3, 8 }) })
  end
  case("metamethods a + b * c - a / c ^ 2 and -a",
    function(a, b, c) return -(a + b * c - a / c ^ 2) end,
    { uniform({ 2, 3 }, -1, 1), uniform({ 3 }, -1, 1), away({ 2, 1 }, 0.5, 1.5) })
  case("mul of a tensor with itself", function(x) return x * x end, { uniform({ 3 }, -2, 2) })
  case("div of a tensor by itself plus one", function(x) return x / (x + 3) end,
    { uniform({ 3 }, -1, 1) })
  case("pow of a tensor to itself", function(x) return x ^ x end, { uniform({ 3 }, 0.5, 2) })
end)

---- reductions -----------------------------------------------------------------

-- name, maker, and extra arguments after dims and keepdim.
local reduce_ops = {
  { "sum", function(s) return uniform(s, -2, 2) end },
  { "mean", function(s) return uniform(s, -2, 2) end },
  { "max", distinct },
  { "min", distinct },
  { "logsumexp", function(s) return uniform(s, -2, 2) end },
  { "var", function(s) return uniform(s, -2, 2) end },
  { "var", function(s) return uniform(s, -2, 2) end, 0 },
}

local reduce_dims = {
  { "over all dims", nil, false },
  { "over all dims, keepdim", nil, true },
  { "over dim 2", 2, false },
  { "over dim -1", -1, false },
  { "over dim 2, keepdim", 2, true },
  { "over dims {1,3}", { 1, 3 }, false },
  { "over dims {1,3}, keepdim", { 1, 3 }, true },
}

describe("gradients of reductions", function()
  for _, op in ipairs(reduce_ops) do
    local name, make, extra = op[1], op[2], op[3]
    local label = extra and string.format("%s (correction %d)", name, extra) or name
    for _, dims in ipairs(reduce_dims) do
      local d, keep = dims[2], dims[3]
      case(label .. " " .. dims[1], function(x) return x[name](x, d, keep, extra) end,
        { make({ 2, 3, 4 }) })
    end
    case(label .. " over dim 1 of a transposed view",
      function(x) return x:t()[name](x:t(), 1, false, extra) end, { make({ 4, 3 }) })
    case(label .. " over dims {1,3} of a narrowed view",
      function(x)
        local v = x:narrow(3, 2, 4)
        return v[name](v, { 1, 3 }, false, extra)
      end, { make({ 2, 3, 6 }) })
    case(label .. " over dim 3 of an expanded view",
      function(x)
        local v = x:expand(2, 3, 4)
        return v[name](v, 3, false, extra)
      end, { make({ 2, 1, 4 }) })
  end
end)

---- views and shape ops ----------------------------------------------------------

describe("gradients of views and shape ops", function()
  local function u(shape) return uniform(shape, -2, 2) end
  case("view [2,3,4] -> [6,4]", function(x) return x:view(6, 4) end, { u({ 2, 3, 4 }) })
  case("view to {-1}", function(x) return x:view({ -1 }) end, { u({ 2, 3 }) })
  case("reshape [2,3,4] -> [4,6]", function(x) return x:reshape(4, 6) end, { u({ 2, 3, 4 }) })
  case("reshape of a transposed view", function(x) return x:t():reshape(12) end, { u({ 3, 4 }) })
  case("transpose(1, 3)", function(x) return x:transpose(1, 3) end, { u({ 2, 3, 4 }) })
  case("t()", function(x) return x:t() end, { u({ 3, 4 }) })
  case("permute(3, 1, 2)", function(x) return x:permute(3, 1, 2) end, { u({ 2, 3, 4 }) })
  case("permute of a narrowed view", function(x) return x:narrow(1, 2, 2):permute({ 2, 1 }) end,
    { u({ 4, 3 }) })
  case("narrow(2, 2, 2) in the middle", function(x) return x:narrow(2, 2, 2) end, { u({ 2, 4, 3 }) })
  case("narrow at the start", function(x) return x:narrow(1, 1, 1) end, { u({ 3, 4 }) })
  case("narrow at the end", function(x) return x:narrow(2, 3, 2) end, { u({ 3, 4 }) })
  case("narrow of a transposed view", function(x) return x:t():narrow(1, 2, 2) end, { u({ 3, 4 }) })
  case("select(2, 2)", function(x) return x:select(2, 2) end, { u({ 2, 3, 4 }) })
  case("select(-1, 1)", function(x) return x:select(-1, 1) end, { u({ 2, 3 }) })
  case("select of a transposed view", function(x) return x:t():select(1, 3) end, { u({ 3, 4 }) })
  case("squeeze(2)", function(x) return x:squeeze(2) end, { u({ 3, 1, 4 }) })
  case("squeeze()", function(x) return x:squeeze() end, { u({ 1, 3, 1 }) })
  case("unsqueeze(1)", function(x) return x:unsqueeze(1) end, { u({ 3, 4 }) })
  case("unsqueeze(-1) of a transposed view", function(x) return x:t():unsqueeze(-1) end,
    { u({ 3, 4 }) })
  case("expand [3,1] -> [3,4]", function(x) return x:expand(3, 4) end, { u({ 3, 1 }) })
  case("expand [4] -> [2,3,4]", function(x) return x:expand(2, 3, 4) end, { u({ 4 }) })
  case("expand_as", function(x, y) return x:expand_as(y) * y end, { u({ 1, 3 }), u({ 2, 3 }) })
  case("cat along dim 1", function(a, b) return lv.cat({ a, b }, 1) end, { u({ 2, 3 }), u({ 1, 3 }) })
  case("cat along dim 2", function(a, b) return lv.cat({ a, b }, 2) end, { u({ 2, 3 }), u({ 2, 2 }) })
  case("cat of three, one transposed", function(a, b, c) return lv.cat({ a:t(), b, c }, -1) end,
    { u({ 2, 3 }), u({ 3, 1 }), u({ 3, 2 }) })
  case("cat of a tensor with itself", function(a) return lv.cat({ a, a }) end, { u({ 2, 3 }) })
  case("stack along dim 1", function(a, b) return lv.stack({ a, b }) end, { u({ 2, 3 }), u({ 2, 3 }) })
  case("stack along dim 3", function(a, b) return lv.stack({ a, b }, 3) end,
    { u({ 2, 3 }), u({ 2, 3 }) })
  case("stack of a transposed and a narrowed view",
    function(a, b) return lv.stack({ a:t(), b:narrow(2, 1, 3) }, 2) end, { u({ 3, 2 }), u({ 2, 5 }) })
  case("contiguous of a contiguous tensor", function(x) return x:contiguous() end, { u({ 2, 3 }) })
  case("contiguous of a transposed view", function(x) return x:t():contiguous() end, { u({ 2, 3 }) })
  case("clone", function(x) return x:clone() end, { u({ 2, 3 }) })
  case("clone of a narrowed view", function(x) return x:narrow(2, 2, 2):clone() end, { u({ 2, 4 }) })
  case("to the same dtype", function(x) return x:to("f64") end, { u({ 2, 3 }) })
  case("indexing x[2]", function(x) return x[2] end, { u({ 3, 4 }) })
  case("indexing x[-1]", function(x) return x[-1] end, { u({ 3, 4 }) })
  case("indexing x[2][3] (0-dim)", function(x) return x[2][3] end, { u({ 3, 4 }) })
  case("indexing a transposed view", function(x) return x:t()[2] end, { u({ 3, 4 }) })
end)

---- products -------------------------------------------------------------------

describe("gradients of products", function()
  local function u(shape) return uniform(shape, -1, 1) end
  local mm = function(a, b) return a:matmul(b) end
  case("matmul 2-D [3,4] @ [4,2]", mm, { u({ 3, 4 }), u({ 4, 2 }) })
  case("matmul batched [2,3,4] @ [2,4,2]", mm, { u({ 2, 3, 4 }), u({ 2, 4, 2 }) })
  case("matmul broadcast [2,3,4] @ [4,2]", mm, { u({ 2, 3, 4 }), u({ 4, 2 }) })
  case("matmul broadcast [3,4] @ [2,4,2]", mm, { u({ 3, 4 }), u({ 2, 4, 2 }) })
  case("matmul broadcast [2,1,3,4] @ [3,4,2]", mm, { u({ 2, 1, 3, 4 }), u({ 3, 4, 2 }) })
  case("matmul [4] @ [4,2]", mm, { u({ 4 }), u({ 4, 2 }) })
  case("matmul [3,4] @ [4]", mm, { u({ 3, 4 }), u({ 4 }) })
  case("matmul [4] @ [4]", mm, { u({ 4 }), u({ 4 }) })
  case("matmul [2,3,4] @ [4]", mm, { u({ 2, 3, 4 }), u({ 4 }) })
  case("matmul [4] @ [2,4,3]", mm, { u({ 4 }), u({ 2, 4, 3 }) })
  case("matmul of transposed views", function(a, b) return a:t():matmul(b:t()) end,
    { u({ 4, 3 }), u({ 2, 4 }) })
  case("matmul of a narrowed view", function(a, b) return a:narrow(2, 2, 4):matmul(b) end,
    { u({ 3, 6 }), u({ 4, 2 }) })
  case("matmul of an expanded batch", function(a, b) return a:expand(2, 3, 4):matmul(b) end,
    { u({ 1, 3, 4 }), u({ 2, 4, 2 }) })
  case("matmul batched, transposed last dims",
    function(a, b) return a:transpose(2, 3):matmul(b) end, { u({ 2, 4, 3 }), u({ 2, 4, 2 }) })
  case("matmul of a matrix with itself", function(a) return a:matmul(a) end, { u({ 3, 3 }) })
  case("outer [3] x [4]", function(a, b) return lv.outer(a, b) end, { u({ 3 }), u({ 4 }) })
  case("outer of strided vectors",
    function(a, b) return a:view(3, 2):select(2, 1):outer(b:narrow(1, 2, 4)) end,
    { u({ 6 }), u({ 6 }) })
  case("dot [4] . [4]", function(a, b) return lv.dot(a, b) end, { u({ 4 }), u({ 4 }) })
  case("dot of strided vectors",
    function(a, b) return a:view(4, 2):select(2, 2):dot(b:t():select(2, 1)) end,
    { u({ 8 }), u({ 3, 4 }) })
  case("dot of a vector with itself", function(a) return a:dot(a) end, { u({ 4 }) })
end)

---- linear algebra -------------------------------------------------------------

describe("gradients of linear algebra", function()
  local I3 = lv.eye(3, "f64")
  -- cholesky reads only the lower triangle, so it is applied to a
  -- symmetric positive definite function of the input.
  case("cholesky of X Xt + 3 I", function(x) return lv.cholesky(x:matmul(x:t()) + I3 * 3) end,
    { uniform({ 3, 3 }, -1, 1) })
  case("cholesky of Xt X + 3 I (transposed view)",
    function(x) return x:t():matmul(x):add(I3 * 3):cholesky() end, { uniform({ 3, 3 }, -1, 1) })
  case("cholesky batched [2,3,3]",
    function(x) return lv.cholesky(x:matmul(x:transpose(2, 3)) + I3 * 3) end,
    { uniform({ 2, 3, 3 }, -1, 1) })
  local function logdet(a) return (lv.logdet(a)) end
  local positive = well_conditioned({ 3, 3 })
  local negative = lv.tensor({ { -3, 0, 0 }, { 0, 2, 0 }, { 0, 0, 2.5 } }, "f64")
    + uniform({ 3, 3 }, -0.3, 0.3)
  it("the matrices for logdet have the determinant signs intended", function()
    local _, s1 = lv.logdet(positive)
    local _, s2 = lv.logdet(negative)
    assert.are.equal(1, s1:item())
    assert.are.equal(-1, s2:item())
  end)
  case("logdet, positive determinant", logdet, { positive })
  case("logdet, negative determinant", logdet, { negative })
  case("logdet of a transposed view", function(a) return logdet(a:t()) end,
    { well_conditioned({ 3, 3 }) })
  case("logdet batched [2,3,3]", logdet, { well_conditioned({ 2, 3, 3 }) })
  case("solve, matrix right-hand side", function(a, b) return lv.solve(a, b) end,
    { well_conditioned({ 3, 3 }), uniform({ 3, 2 }, -1, 1) })
  case("solve, vector right-hand side", function(a, b) return lv.solve(a, b) end,
    { well_conditioned({ 3, 3 }), uniform({ 3 }, -1, 1) })
  case("solve batched [2,3,3], [2,3,2]", function(a, b) return lv.solve(a, b) end,
    { well_conditioned({ 2, 3, 3 }), uniform({ 2, 3, 2 }, -1, 1) })
  case("solve batched [2,3,3], [2,3]", function(a, b) return lv.solve(a, b) end,
    { well_conditioned({ 2, 3, 3 }), uniform({ 2, 3 }, -1, 1) })
  case("solve of transposed views", function(a, b) return lv.solve(a:t(), b:t()) end,
    { well_conditioned({ 3, 3 }), uniform({ 2, 3 }, -1, 1) })
  case("inverse", function(a) return lv.inverse(a) end, { well_conditioned({ 3, 3 }) })
  case("inverse of a transposed view", function(a) return a:t():inverse() end,
    { well_conditioned({ 3, 3 }) })
  case("inverse batched [2,3,3]", function(a) return lv.inverse(a) end,
    { well_conditioned({ 2, 3, 3 }) })
end)

---- higher order -----------------------------------------------------------------

describe("higher-order derivatives", function()
  -- f(x) = sum(softplus(W2 softplus(W1 x + b1) + b2)), x [3], hidden 5, out 2.
  local W1 = uniform({ 5, 3 }, -1.5, 1.5)
  local b1 = uniform({ 5 }, -0.5, 0.5)
  local W2 = uniform({ 2, 5 }, -1.5, 1.5)
  local b2 = uniform({ 2 }, -0.5, 0.5)
  local function mlp(x)
    local h = (W1:matmul(x) + b1):softplus()
    return (W2:matmul(h) + b2):softplus():sum()
  end
  local x0 = uniform({ 3 }, -1, 1)
  local v = uniform({ 3 }, -1, 1)
  local w = uniform({ 3 }, -1, 1)

  --- H(x) v by two reverse passes, no graph kept.
  local function hessian_times(x, dir)
    local xi = lv.param(x:clone())
    local g = lv.grad(mlp(xi), { xi }, { create_graph = true })[1]
    return lv.grad(g:dot(dir), { xi })[1]
  end

  it("third derivative of a softplus MLP against finite differences of its second", function()
    local eps = 1e-4
    local function check(a, b)
      -- T(a, b, .) by three reverse passes, each on the graph of the last
      local xi = lv.param(x0:clone())
      local g1 = lv.grad(mlp(xi), { xi }, { create_graph = true })[1]
      local g2 = lv.grad(g1:dot(a), { xi }, { create_graph = true })[1]
      assert.is_true(g2.needs_grad)
      local g3 = lv.grad(g2:dot(b), { xi })[1]
      assert.are.same({ 3 }, g3:size())
      -- d/dt H(x + t b) a at t = 0, central differences
      local fd = (hessian_times(x0 + b * eps, a) - hessian_times(x0 - b * eps, a)) / (2 * eps)
      local r = rel_diff(g3, fd)
      assert(r < 1e-6, string.format("relative difference %.3g", r))
      assert.is_true(H.max_abs_diff(g3, lv.zeros({ 3 }, "f64")) > 1e-3)  -- not trivially 0
    end
    check(v, v)
    check(v, w)
    check(w, v)
  end)

  it("the third derivative is symmetric in its directions", function()
    local xi = lv.param(x0:clone())
    local g1 = lv.grad(mlp(xi), { xi }, { create_graph = true })[1]
    local hv = lv.grad(g1:dot(v), { xi }, { create_graph = true, retain_graph = true })[1]
    local hw = lv.grad(g1:dot(w), { xi }, { create_graph = true })[1]
    local tvw = lv.grad(hv:dot(w), { xi }, { retain_graph = true })[1]
    local twv = lv.grad(hw:dot(v), { xi })[1]
    assert(rel_diff(tvw, twv) < 1e-12)
  end)

  it("gradgradcheck of the MLP in its input and weights", function()
    local function f(x, a, c)
      local h = (a:matmul(x) + b1):softplus()
      return (c:matmul(h) + b2):softplus():sum()
    end
    gradgradcheck(f, { x0, W1, W2 }, "mlp")
  end)

  it("lv.hvp equals lv.hessian times the vector for the MLP", function()
    local Hm = lv.hessian(mlp, x0)
    assert.are.same({ 3, 3 }, Hm:size())
    local y, hv = lv.hvp(mlp, x0, v)
    H.assert_close(y, mlp(x0), 1e-14, 0, "hvp value")
    H.assert_close(hv, Hm:matmul(v), 1e-12, 1e-14, "hvp")
    H.assert_close(hv, hessian_times(x0, v), 1e-12, 1e-14, "hvp by two passes")
    -- the Hessian is symmetric
    H.assert_close(Hm, Hm:t(), 1e-12, 1e-14, "symmetry")
  end)
end)

describe("lv.hessian and lv.hvp of a quadratic form", function()
  local d, B = 4, 3
  local A = uniform({ d, d }, -1, 1)                  -- not symmetric
  local S = (A + A:t()) * 0.5
  -- 0.5 x^T A x per sample of a batch [B, d]: values [B]
  local function quad_batch(x) return (x:matmul(A) * x):sum(2) * 0.5 end
  local function quad(x) return x:dot(A:matmul(x)) * 0.5 end

  it("per-sample Hessians of a batch [B, d] are [B, d, d], each sym(A)", function()
    local x = uniform({ B, d }, -1, 1)
    local Hs = lv.hessian(quad_batch, x)
    assert.are.same({ B, d, d }, Hs:size())
    for b = 1, B do
      H.assert_close(Hs[b], S, 1e-14, 1e-15, "sample " .. b)
    end
  end)

  it("the Hessian of a non-batched [d] input is [d, d], sym(A)", function()
    local x = uniform({ d }, -1, 1)
    local Hm = lv.hessian(quad, x)
    assert.are.same({ d, d }, Hm:size())
    H.assert_close(Hm, S, 1e-14, 1e-15)
    -- x is left as it was: not turned into a tape tensor
    assert.is_false(x.needs_grad)
  end)

  it("hvp equals the Hessian times the vector", function()
    local x, v = uniform({ d }, -1, 1), uniform({ d }, -1, 1)
    local y, hv = lv.hvp(quad, x, v)
    H.assert_close(y, quad(x), 1e-14, 0, "value")
    H.assert_close(hv, lv.hessian(quad, x):matmul(v), 1e-13, 1e-15, "non-batched")
    H.assert_close(hv, S:matmul(v), 1e-13, 1e-15, "closed form")
    -- batched: sample by sample
    local xb, vb = uniform({ B, d }, -1, 1), uniform({ B, d }, -1, 1)
    local _, hvb = lv.hvp(quad_batch, xb, vb)
    local Hs = lv.hessian(quad_batch, xb)
    H.assert_close(hvb, Hs:matmul(vb:unsqueeze(3)):squeeze(3), 1e-13, 1e-15, "batched")
  end)

  it("a function with a zero Hessian gives zeros", function()
    -- f linear in x: its gradient is a constant, off the tape; the
    -- Hessian and H v are zero, not an error.
    local x, v = uniform({ d }, -1, 1), uniform({ d }, -1, 1)
    local c = uniform({ d }, -1, 1)
    local function linear(z) return z:dot(c) + 2 end
    H.assert_same(lv.hessian(linear, x), lv.zeros({ d, d }, "f64"))
    local y, hv = lv.hvp(linear, x, v)
    H.assert_close(y, linear(x), 1e-15)
    H.assert_same(hv, lv.zeros({ d }, "f64"))
    H.assert_same(lv.hessian(function(z) return z:sum(2) end, uniform({ B, d }, -1, 1)),
      lv.zeros({ B, d, d }, "f64"))
  end)

  it("hvp with create_graph stays on the tape", function()
    local x = lv.param(uniform({ d }, -1, 1))
    local v = uniform({ d }, -1, 1)
    local M = lv.param(A:clone())
    local _, hv = lv.hvp(function(z) return z:dot(M:matmul(z)) * 0.5 end, x, v,
      { create_graph = true })
    assert.is_true(hv.needs_grad)
    -- hv = (M + Mt) v / 2: d/dM sum(hv) = (1 vt + v 1t) / 2
    local gM = lv.grad(hv:sum(), { M })[1]
    local one = lv.ones({ d }, "f64")
    H.assert_close(gM, (lv.outer(one, v) + lv.outer(v, one)) * 0.5, 1e-14, 1e-15)
  end)

  it("with create_graph the Hessian stays on the tape", function()
    local x = lv.param(uniform({ d }, -1, 1))
    local M = lv.param(A:clone())
    local Hm = lv.hessian(function(z) return z:dot(M:matmul(z)) * 0.5 end, x,
      { create_graph = true })
    assert.is_true(Hm.needs_grad)
    -- d/dM sum(H) with H = (M + Mt)/2: all ones
    local gM = lv.grad(Hm:sum(), { M })[1]
    H.assert_close(gM, lv.ones({ d, d }, "f64"), 1e-14, 1e-15)
  end)
end)

---- the tape's behaviour ---------------------------------------------------------

describe("tape behaviour", function()
  it("backward accumulates into the .grad of leaves; x.grad = nil clears", function()
    local x = lv.param(lv.tensor({ 1, -2, 3 }, "f64"))
    assert.is_nil(x.grad)
    assert.is_true(x.is_leaf)
    assert.is_true(x.needs_grad)
    assert.is_nil(x.grad_fn)
    ;(x * x):sum():backward()
    H.assert_same(x.grad, { 2, -4, 6 })
    ;(x * x):sum():backward()
    H.assert_same(x.grad, { 4, -8, 12 })
    -- one graph twice, with retain_graph
    local y = (x * 3):sum()
    y:backward({ retain_graph = true })
    y:backward()
    H.assert_same(x.grad, { 10, -2, 18 })
    x.grad = nil
    assert.is_nil(x.grad)
    ;(x * x):sum():backward()
    H.assert_same(x.grad, { 2, -4, 6 })
    -- an explicit grad_output for a non-scalar output
    x.grad = nil
    ;(x * 2):backward(lv.tensor({ 1, 10, 100 }, "f64"))
    H.assert_same(x.grad, { 2, 20, 200 })
  end)

  it("backward reaches every leaf; lv.grad does not touch .grad", function()
    local a = lv.param(lv.tensor({ 1, 2 }, "f64"))
    local b = lv.param(lv.tensor({ 3, 4 }, "f64"))
    local y = (a * b):sum()
    assert.are.equal("sum", y.grad_fn)
    assert.is_false(y.is_leaf)
    local g = lv.grad(y, { a }, { retain_graph = true })
    H.assert_same(g[1], { 3, 4 })
    assert.is_nil(a.grad)
    assert.is_nil(b.grad)
    y:backward()
    H.assert_same(a.grad, { 3, 4 })
    H.assert_same(b.grad, { 1, 2 })
  end)

  it("detach cuts the graph", function()
    local x = lv.param(lv.tensor({ 1, 2, 3 }, "f64"))
    local d = x:detach()
    assert.is_false(d.needs_grad)
    assert.is_true(d.is_leaf)
    -- x * detach(x): only the first factor carries a gradient
    local g = lv.grad((x:detach() * x):sum(), { x })[1]
    H.assert_same(g, { 1, 2, 3 })
    -- a detached intermediate: nothing flows through it
    local h = x:exp()
    local z = (h:detach() * 2):sum()
    assert.is_false(z.needs_grad)
    raises(function() lv.grad(z, { x }) end, "does not require grad")
  end)

  it("no_grad records nothing (function form) and passes results through", function()
    local x = lv.param(lv.tensor({ 1, 2 }, "f64"))
    local y, n = lv.no_grad(function(a, k) return a * 2, k + 1 end, x, 41)
    assert.is_false(y.needs_grad)
    assert.is_nil(y.grad_fn)
    assert.are.equal(42, n)
    assert.is_true(lv.is_grad_enabled())
    assert.is_true((x * 2).needs_grad)
  end)

  it("no_grad records nothing (<close> form) until the scope ends", function()
    local x = lv.param(lv.tensor({ 1, 2 }, "f64"))
    do
      local _ <close> = lv.no_grad()
      assert.is_false(lv.is_grad_enabled())
      local y = x:exp():sum()
      assert.is_false(y.needs_grad)
      -- enable_grad inside a no_grad region records again
      local z = lv.enable_grad(function() return x:exp() end)
      assert.is_true(z.needs_grad)
      assert.is_false(lv.is_grad_enabled())
    end
    assert.is_true(lv.is_grad_enabled())
    assert.is_true(x:exp().needs_grad)
  end)

  it("no_grad restores grad mode after an error inside", function()
    local ok, msg = pcall(lv.no_grad, function() error("boom", 0) end)
    assert.is_false(ok)
    assert.are.equal("boom", msg)
    assert.is_true(lv.is_grad_enabled())
    ok = pcall(function()
      local _ <close> = lv.no_grad()
      error("boom")
    end)
    assert.is_false(ok)
    assert.is_true(lv.is_grad_enabled())
    -- nested: the inner scope restores the outer's mode
    lv.no_grad(function()
      pcall(lv.enable_grad, function() error("inner") end)
      assert.is_false(lv.is_grad_enabled())
    end)
    assert.is_true(lv.is_grad_enabled())
    -- set_grad_enabled returns the previous mode
    assert.is_true(lv.set_grad_enabled(false))
    assert.is_false(lv.set_grad_enabled(true))
  end)

  it("lv.grad returns a list, one gradient per input", function()
    local a = lv.param(lv.tensor({ 1, 2 }, "f64"))
    local b = lv.param(lv.tensor(3, "f64"))
    local gs = lv.grad((a * b):sum(), { a, b })
    assert.are.equal("table", type(gs))
    assert.are.equal(2, #gs)
    H.assert_same(gs[1], { 3, 3 })
    H.assert_same(gs[2], 3)
    -- a single tensor for inputs still gives a list
    local one = lv.grad((a * a):sum(), a)
    assert.are.equal("table", type(one))
    H.assert_same(one[1], { 2, 4 })
    -- without create_graph the gradient is off the tape
    assert.is_false(one[1].needs_grad)
  end)

  it("lv.grad with grad_outputs and several outputs sums the contributions", function()
    local x = lv.param(lv.tensor({ 1, 2, 3 }, "f64"))
    local y1, y2 = x * x, x * 3
    local g = lv.grad({ y1, y2 }, { x }, {
      grad_outputs = { lv.tensor({ 1, 0, 2 }, "f64"), lv.tensor({ 1, 1, 1 }, "f64") },
    })[1]
    H.assert_same(g, { 2 * 1 + 3, 3, 2 * 3 * 2 + 3 })
  end)

  it("allow_unused gives nil for an unused input", function()
    local a = lv.param(lv.tensor({ 1, 2 }, "f64"))
    local unused = lv.param(lv.tensor({ 5 }, "f64"))
    local plain = lv.tensor({ 7 }, "f64")
    local gs = lv.grad((a * a):sum(), { a, unused, plain }, { allow_unused = true })
    H.assert_same(gs[1], { 2, 4 })
    assert.is_nil(gs[2])
    assert.is_nil(gs[3])
  end)

  it("lv.grad's into sums each gradient into the caller's buffer, overwriting it", function()
    for _, dtype in ipairs(H.dtypes) do
      local w = lv.param(lv.randn({ 3, 4 }, dtype))       -- used twice, through GEMMs
      local b = lv.param(lv.randn({ 3 }, dtype))          -- summed over rows
      local s = lv.param(lv.tensor(0.5, dtype))           -- a scalar, elementwise only
      local unused = lv.param(lv.zeros({ 2 }, dtype))
      local x = lv.randn({ 5, 4 }, dtype)
      local function loss()
        local h = (x:matmul(w:t()) + b):tanh()
        return (h:matmul(w) * s):square():sum()
      end
      local params = { w, b, s, unused }
      local direct = lv.grad(loss(), params, { allow_unused = true })
      local into = { lv.full({ 3, 4 }, 99, dtype), lv.full({ 3 }, 99, dtype), lv.full({}, 99, dtype),
                     lv.full({ 2 }, 99, dtype) }
      for round = 1, 2 do                                  -- a second step overwrites the first
        local gs = lv.grad(loss(), params, { allow_unused = true, into = into })
        for i = 1, 3 do
          H.assert_same(gs[i], direct[i], dtype .. " parameter " .. i .. " round " .. round)
          H.assert_same(into[i], direct[i], dtype .. " buffer " .. i .. " round " .. round)
        end
        assert.is_nil(gs[4])                               -- unused: nil, its buffer untouched
        H.assert_same(into[4], { 99, 99 })
        -- the gradient returned is the buffer itself
        lv.fill_(into[2], 7)
        H.assert_same(gs[2], { 7, 7, 7 })
      end
      -- an intermediate as an input: its gradient lands in its buffer too
      local h = x:matmul(w:t())
      local out = (h:tanh() * s):sum()
      local want = lv.grad(out, { h, w }, { retain_graph = true })
      local bufs = { lv.full({ 5, 3 }, -1, dtype), lv.full({ 3, 4 }, -1, dtype) }
      local got = lv.grad(out, { h, w }, { into = bufs })
      H.assert_same(bufs[1], want[1], dtype .. " intermediate")
      H.assert_same(bufs[2], want[2], dtype .. " weight beside it")
      H.assert_same(got[1], want[1])
      -- a single tensor for into with a single input
      local g1 = lv.zeros({ 3 }, dtype)
      H.assert_same(lv.grad((b * b):sum(), b, { into = g1 })[1], b:detach() * 2)
      H.assert_same(g1, b:detach() * 2)
    end
  end)

  it("lv.grad's into is checked before the pass, and refused with create_graph", function()
    local w = lv.param(lv.randn({ 2, 3 }))
    local v = lv.param(lv.randn({ 3 }))
    local loss = (w:matmul(v)):sum()
    local function grad_into(into, extra)
      local opts = { into = into, retain_graph = true }
      for k, val in pairs(extra or {}) do opts[k] = val end
      return function() return lv.grad(loss, { w, v }, opts) end
    end
    H.expect_error(grad_into({ lv.zeros({ 2, 3 }) }), "1 tensors in option 'into' for 2 inputs")
    H.expect_error(grad_into({ lv.zeros({ 3, 2 }), lv.zeros({ 3 }) }), "into[1] is f32 [3,2], input 1 f32 [2,3]")
    H.expect_error(grad_into({ lv.zeros({ 2, 3 }, "f64"), lv.zeros({ 3 }) }), "into[1] is f64")
    H.expect_error(grad_into({ lv.zeros({ 3, 2 }):t(), lv.zeros({ 3 }) }), "into[1] must be contiguous")
    H.expect_error(grad_into({ lv.param(lv.zeros({ 2, 3 })), lv.zeros({ 3 }) }), "into[1] requires grad")
    H.expect_error(grad_into({ lv.zeros({ 2, 3 }), v:detach() }), "into[2] shares its storage with input 2")
    local same = lv.zeros({ 3 })
    H.expect_error(function()
      return lv.grad(loss, { v, v }, { into = { same, same }, retain_graph = true })
    end, "into[1] and into[2] are the same buffer")
    H.expect_error(grad_into({ lv.zeros({ 2, 3 }), lv.zeros({ 3 }) }, { create_graph = true }),
      "option 'into' cannot go with create_graph")
    H.expect_error(grad_into({ lv.zeros({ 2, 3 }), "no" }), "into entry 2 is not a tensor")
    -- nothing was written by a refused call, and the graph is still there
    local ok = lv.zeros({ 3 })
    H.assert_same(lv.grad(loss, v, { into = ok })[1], ok)
  end)

  it("ties share the gradient evenly (max, min, maximum, minimum)", function()
    -- The rule: at a tie, each of the k tied elements gets 1/k of the
    -- gradient (torch's amax rule), so the total is conserved.
    local x = lv.param(lv.tensor({ 1, 3, 3, 2 }, "f64"))
    H.assert_same(lv.grad(x:max(), { x })[1], { 0, 0.5, 0.5, 0 })
    local m = lv.param(lv.tensor({ { 3, 3, 3 }, { 1, 2, 0 }, { -1, 4, -1 } }, "f64"))
    H.assert_close(lv.grad(m:max(2):sum(), { m })[1],
      { { 1 / 3, 1 / 3, 1 / 3 }, { 0, 1, 0 }, { 0, 1, 0 } }, 1e-15)
    H.assert_same(lv.grad(m:min(2):sum(), { m })[1],
      { { 1 / 3, 1 / 3, 1 / 3 }, { 0, 0, 1 }, { 0.5, 0, 0.5 } })
    local a = lv.param(lv.tensor({ 1, 2, 3 }, "f64"))
    local b = lv.param(lv.tensor({ 1, 5, 0 }, "f64"))
    local ga = lv.grad(lv.maximum(a, b):sum(), { a, b })
    H.assert_same(ga[1], { 0.5, 0, 1 })
    H.assert_same(ga[2], { 0.5, 1, 0 })
    local gi = lv.grad(lv.minimum(a, b):sum(), { a, b })
    H.assert_same(gi[1], { 0.5, 1, 0 })
    H.assert_same(gi[2], { 0.5, 0, 1 })
  end)

  it("mixed f32/f64 inputs give gradients in each input's own dtype", function()
    local a = lv.param(lv.tensor({ 1, 2, 3 }, "f32"))
    local b = lv.param(lv.tensor({ 4, 5, 6 }, "f64"))
    local y = (a * b):sum()
    assert.are.equal("f64", y:dtype())
    local g = lv.grad(y, { a, b })
    assert.are.equal("f32", g[1]:dtype())
    assert.are.equal("f64", g[2]:dtype())
    H.assert_same(g[1], { 4, 5, 6 })
    H.assert_same(g[2], { 1, 2, 3 })
    -- broadcasting across dtypes
    local c = lv.param(lv.tensor({ { 1 }, { 2 } }, "f32"))
    local gc = lv.grad((c + b):sum(), { c, b })
    assert.are.equal("f32", gc[1]:dtype())
    assert.are.equal("f64", gc[2]:dtype())
    H.assert_same(gc[1], { { 3 }, { 3 } })
    H.assert_same(gc[2], { 2, 2, 2 })
    -- matmul across dtypes
    local p = lv.param(lv.tensor({ { 1, 2 }, { 3, 4 } }, "f32"))
    local q = lv.param(lv.tensor({ { 1, 0 }, { 0, 2 } }, "f64"))
    local gm = lv.grad(p:matmul(q):sum(), { p, q })
    assert.are.equal("f32", gm[1]:dtype())
    assert.are.equal("f64", gm[2]:dtype())
    H.assert_same(gm[1], { { 1, 2 }, { 1, 2 } })
    H.assert_same(gm[2], { { 4, 4 }, { 6, 6 } })
    -- a dtype conversion on the tape: the gradient comes back as f64
    local x = lv.param(lv.tensor({ 1.5, 2.5 }, "f64"))
    local gx = lv.grad((x:to("f32") * x:to("f32")):sum(), { x })[1]
    assert.are.equal("f64", gx:dtype())
    H.assert_same(gx, { 3, 5 })
    -- backward accumulates in the leaf's dtype
    ;(a * b):sum():backward()
    assert.are.equal("f32", a.grad:dtype())
    assert.are.equal("f64", b.grad:dtype())
  end)

  it("the gradient of a view of a leaf reaches the leaf", function()
    local x = lv.param(lv.tensor({ { 1, 2, 3 }, { 4, 5, 6 } }, "f64"))
    local c = lv.tensor({ { 1, 2 }, { 3, 4 }, { 5, 6 } }, "f64")
    ;(x:t() * c):sum():backward()
    H.assert_same(x.grad, { { 1, 3, 5 }, { 2, 4, 6 } })
    x.grad = nil
    ;(x:narrow(2, 2, 2):square()):sum():backward()
    H.assert_same(x.grad, { { 0, 4, 6 }, { 0, 10, 12 } })
    x.grad = nil
    ;(x[2] * 10):sum():backward()
    H.assert_same(x.grad, { { 0, 0, 0 }, { 10, 10, 10 } })
    local g = lv.grad(x:view(6):sum() + x:permute(2, 1):select(1, 1):sum(), { x })[1]
    H.assert_same(g, { { 2, 1, 1 }, { 2, 1, 1 } })
  end)

  it("lv.param of a tape tensor gives a fresh leaf; requires_grad(false) stops recording", function()
    local x = lv.param(lv.tensor({ 1, 2 }, "f64"))
    local h = x * 2
    local leaf = lv.param(h)
    assert.is_true(leaf.is_leaf)
    assert.is_true(leaf.needs_grad)
    local g = lv.grad((leaf * leaf):sum(), { leaf })[1]
    H.assert_same(g, { 4, 8 })
    local t = lv.tensor({ 1, 2 }, "f64"):requires_grad()
    assert.is_true(t.needs_grad)
    t:requires_grad(false)
    assert.is_false((t * 2).needs_grad)
  end)

  it("x.grad = g sets the gradient, and backward adds to it", function()
    local x = lv.param(lv.tensor({ 1, 2 }, "f64"))
    x.grad = lv.tensor({ 10, 20 }, "f64")
    ;(x * 3):sum():backward()
    H.assert_same(x.grad, { 13, 23 })
  end)

  it("backward with create_graph leaves a .grad on the tape", function()
    local x = lv.param(lv.tensor({ 1, 2 }, "f64"))
    ;(x * x * x):sum():backward({ create_graph = true })
    assert.is_true(x.grad.needs_grad)
    H.assert_same(x.grad, { 3, 12 })
    local gg = lv.grad(x.grad:sum(), { x })[1]
    H.assert_same(gg, { 6, 12 })
  end)

  it("lv.grad with respect to an intermediate and to the output itself", function()
    local x = lv.param(lv.tensor({ -1, 0, 2 }, "f64"))
    local h = x * 2
    local g = lv.grad((h * h):sum(), { h, x }, { retain_graph = true })
    H.assert_same(g[1], { -4, 0, 8 })
    H.assert_same(g[2], { -8, 0, 16 })
    local u = lv.tensor({ 1, 2, 3 }, "f64")
    H.assert_same(lv.grad(x, { x }, { grad_outputs = u })[1], u)
    H.assert_same(lv.grad(h, { h }, { grad_outputs = u })[1], u)
  end)

  it("a pass that needs no freed node is not refused", function()
    -- The first pass frees the nodes below h; the second stops at h and
    -- runs none of them, so it needs none of their saved tensors.
    local x = lv.param(lv.tensor({ -1, 0, 2 }, "f64"))
    local h = x:exp()
    local y = (h * h):sum()
    lv.grad(h:sum(), { x })
    H.assert_same(lv.grad(y, { h })[1], h:detach() * 2)
  end)

  it("relu and abs have gradient 0 at 0 (the documented subgradient)", function()
    local x = lv.param(lv.tensor({ -1, 0, 2 }, "f64"))
    H.assert_same(lv.grad(x:relu():sum(), { x })[1], { 0, 0, 1 })
    H.assert_same(lv.grad(x:abs():sum(), { x })[1], { -1, 0, 1 })
  end)

  it("the sign output of logdet carries no gradient", function()
    local A = lv.param(lv.tensor({ { 2, 1 }, { 1, 3 } }, "f64"))
    local _, s = lv.logdet(A)
    H.assert_same(lv.grad(s, { A })[1], lv.zeros({ 2, 2 }, "f64"))
    local l2, s2 = lv.logdet(A)
    local g = lv.grad({ l2, s2 }, { A })[1]
    -- d log det A = A^-T = [[3, -1], [-1, 2]] / 5
    H.assert_close(g, { { 0.6, -0.2 }, { -0.2, 0.4 } }, 1e-14, 1e-15)
  end)

  it("a chain of 20,000 ops goes backward without exhausting the C stack", function()
    local x = lv.param(lv.tensor({ 1 }, "f64"))
    local y = x
    for _ = 1, 20000 do y = y * 1 + 0 end
    y = y:sum()
    H.assert_same(lv.grad(y, { x })[1], { 1 })
    y = nil
    collectgarbage()
  end)

  it("create_graph makes the gradient differentiable again", function()
    local x = lv.param(lv.tensor({ 0.5, -1 }, "f64"))
    local g = lv.grad((x * x * x):sum(), { x }, { create_graph = true })[1]
    assert.is_true(g.needs_grad)
    H.assert_same(g, { 0.75, 3 })
    local gg = lv.grad(g:sum(), { x })[1]
    H.assert_same(gg, { 3, -6 })
  end)
end)

---- errors of the reverse pass ----------------------------------------------------

describe("autograd errors", function()
  local function leaf() return lv.param(lv.tensor({ 1, 2, 3 }, "f64")) end

  it("a non-scalar output without grad_outputs", function()
    local x = leaf()
    raises(function() lv.grad(x * 2, { x }) end, "grad_outputs", "[3]")
    raises(function() (x * 2):backward() end, "grad_outputs")
  end)

  it("grad_outputs of the wrong shape or count", function()
    local x = leaf()
    raises(function() lv.grad(x * 2, { x }, { grad_outputs = lv.ones({ 2 }, "f64") }) end,
      "grad_outputs", "[2]", "[3]")
    raises(function() lv.grad(x * 2, { x }, { grad_outputs = { lv.ones({ 3 }, "f64"), x } }) end,
      "grad_outputs")
  end)

  it("an input that does not require grad", function()
    local x = leaf()
    local plain = lv.tensor({ 1, 2, 3 }, "f64")
    raises(function() lv.grad((x * plain):sum(), { plain }) end, "does not require grad")
    -- an output that no input requiring grad went into
    raises(function() lv.grad((plain * 2):sum(), { x }) end, "does not require grad")
  end)

  it("an unused input without allow_unused", function()
    local x, w = leaf(), leaf()
    raises(function() lv.grad((x * 2):sum(), { x, w }) end, "allow_unused", "input 2")
  end)

  it("a second backward through a freed graph, and retain_graph = true", function()
    local x = leaf()
    local y = x:exp():sum()
    lv.grad(y, { x })
    raises(function() lv.grad(y, { x }) end, "second time", "retain_graph")
    local z = (x * x):sum()
    z:backward()
    raises(function() z:backward() end, "second time", "retain_graph")
    -- retain_graph keeps the saved tensors for another pass
    local u = x:exp():sum()
    local g1 = lv.grad(u, { x }, { retain_graph = true })[1]
    local g2 = lv.grad(u, { x })[1]
    H.assert_same(g1, g2)
    H.assert_close(g1, H.map({ 1, 2, 3 }, math.exp), 1e-15)
  end)

  it("an in-place modification of a saved tensor", function()
    local x = leaf()
    -- an input saved by log (its VJP reads x), modified in place afterwards
    local h = x * 2
    local y = h:log()
    lv.no_grad(function() h:fill_(1) end)
    raises(function() y:sum():backward() end, "modified in place")
    -- an input of a later op modified under no_grad
    local h2 = x * 2
    local y2 = h2:exp()
    local z2 = (y2 * h2):sum()
    do
      local _ <close> = lv.no_grad()
      y2:fill_(0)
    end
    raises(function() lv.grad(z2, { x }) end, "modified in place")
    -- a leaf's storage modified after it was used
    local w = leaf()
    local s = (w * w):sum()
    lv.no_grad(function() w:fill_(5) end)
    raises(function() lv.grad(s, { w }) end, "modified in place")
  end)

  it("an in-place write into a tensor that requires grad while grad mode is on", function()
    local x = leaf()
    raises(function() x:fill_(0) end, "requires grad")
    raises(function() x:zero_() end, "requires grad")
    raises(function() x:copy_(lv.zeros({ 3 }, "f64")) end, "requires grad")
    raises(function() x[1] = 5 end, "requires grad")
    raises(function() (x * 2):fill_(0) end, "requires grad")
    H.assert_same(x, { 1, 2, 3 })
    -- allowed under no_grad (an optimizer step)
    lv.no_grad(function() x:fill_(0) end)
    H.assert_same(x, { 0, 0, 0 })
  end)

  it("setting .grad to a tensor of another shape", function()
    local x = leaf()
    raises(function() x.grad = lv.ones({ 2 }, "f64") end, "cannot set .grad", "[2]", "[3]")
  end)

  it("requires_grad on a non-leaf", function()
    local x = leaf()
    raises(function() (x * 2):requires_grad() end, "leaf", "mul")
  end)

  it("an unknown option name", function()
    local x = leaf()
    raises(function() lv.grad((x * 2):sum(), { x }, { retain = true }) end,
      "unknown option", "retain")
    raises(function() (x * 2):sum():backward({ allow_unused = true }) end, "unknown option")
  end)

  it("the gradient of eigh", function()
    local A = lv.param(lv.tensor({ { 2, 1 }, { 1, 3 } }, "f64"))
    local wv = lv.eigh(A)
    raises(function() lv.grad(wv:sum(), { A }) end, "no gradient", "eigh")
    local _, V = lv.eigh(A)
    raises(function() V:sum():backward() end, "no gradient")
  end)

  it("an error in the reverse pass leaves the tape usable", function()
    local x = leaf()
    raises(function() lv.grad((x * 2):sum(), { x }, { bogus = 1 }) end, "unknown option")
    assert.is_true(lv.is_grad_enabled())
    H.assert_same(lv.grad((x * 2):sum(), { x })[1], { 2, 2, 2 })
  end)
end)

---- memory ------------------------------------------------------------------------

describe("autograd memory", function()
  local rss, live_bytes = H.rss, H.live_bytes

  it("10,000 double-backward training steps keep the resident size flat", function()
    local x = uniform({ 16, 8 }, -1, 1)
    local W1 = lv.param(uniform({ 8, 16 }, -0.5, 0.5))
    local b1 = lv.param(uniform({ 16 }, -0.1, 0.1))
    local W2 = lv.param(uniform({ 16, 1 }, -0.5, 0.5))
    local function step()
      local xi = lv.param(x:clone())
      local out = (xi:matmul(W1) + b1):softplus():matmul(W2):sum()
      local gx = lv.grad(out, { xi }, { create_graph = true })[1]
      local gs = lv.grad(gx:sum(), { W1, b1, W2 })
      lv.no_grad(function()
        W1:copy_(W1 - gs[1] * 1e-6)
        b1:copy_(b1 - gs[2] * 1e-6)
        W2:copy_(W2 - gs[3] * 1e-6)
      end)
      return gs
    end
    for _ = 1, 500 do step() end              -- warm-up: reach the steady state
    local base = live_bytes()
    local before = rss()
    local gs
    for _ = 1, 10000 do gs = step() end
    collectgarbage()
    local after = rss()
    assert.are.same({ 8, 16 }, gs[1]:size())
    assert.is_false(gs[1].needs_grad)
    local sanitized = (os.getenv("LD_PRELOAD") or ""):find("asan", 1, true)
    assert(sanitized or after - before < 64 * 2 ^ 20,
      string.format("resident size grew by %.1f MiB", (after - before) / 2 ^ 20))
    -- nothing of the tapes outlives them: tensor bytes back to the baseline
    gs = nil
    assert.are.equal(base, live_bytes())
  end)
end)
