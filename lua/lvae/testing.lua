--- Derivative checks against central finite differences in float64.
--
--   lv.testing.gradcheck(f, inputs [, opts])     first derivatives
--   lv.testing.gradgradcheck(f, inputs [, opts]) second derivatives
--
-- f takes the tensors of `inputs` (a list of f64 tensors) and returns one
-- tensor. gradcheck compares the whole Jacobian from the tape (one reverse
-- pass per output element) with (f(x + eps e_j) - f(x - eps e_j)) / 2 eps.
-- The error of an entry is |tape - numeric| / (1 + |numeric|). Both return
-- the worst error and a table saying where: {input, element, output,
-- tape, numeric} (elements counted in row-major order from 1).
-- gradgradcheck applies gradcheck to x -> grad(<f(x), u>, x) with a fixed
-- random u, built with create_graph.

local lv = require "lvae.base"
local check = require "lvae.check"

local M = {}

local function flat(t) return t:contiguous():view({ -1 }) end

local function check_inputs(inputs, what)
  if type(inputs) ~= "table" or lv.is_tensor(inputs) or #inputs == 0 then
    error(what .. ": inputs must be a non-empty list of tensors", 3)
  end
  for i, x in ipairs(inputs) do
    if not lv.is_tensor(x) or check.typename(x) == "a freed tensor" then
      error(string.format("%s: input %d is not a tensor (got %s)", what, i, check.typename(x)), 3)
    end
    if x:dtype() ~= "f64" then
      error(string.format("%s: input %d is %s; finite differences need f64 (use :to(\"f64\"))",
        what, i, x:dtype()), 3)
    end
  end
end

local function evaluate(f, xs)
  local y = f(table.unpack(xs))
  if not lv.is_tensor(y) then error("f must return a tensor", 3) end
  return y
end

function M.gradcheck(f, inputs, opts)
  check.fn("gradcheck", "f", f)
  opts = check.options("gradcheck", opts, { "eps", "seed" })
  check_inputs(inputs, "gradcheck")
  local eps = opts.eps or 1e-6
  if math.type(eps) == nil or not (eps > 0) or eps == math.huge then
    check.fail("gradcheck", "eps must be a positive number (got %s)", tostring(eps))
  end
  local leaves = {}
  for i, x in ipairs(inputs) do leaves[i] = lv.param(x:detach():clone()) end
  local y = lv.enable_grad(evaluate, f, leaves)
  local m = y:numel()

  -- Jacobian rows from the tape: row k = d y_k / d inputs.
  local tape = {}
  for k = 1, m do
    local e = lv.zeros({ m }, y:dtype())
    e[k] = 1
    local gs = y.needs_grad
      and lv.grad(y, leaves, { grad_outputs = e:view(y:size()), retain_graph = true,
                                 allow_unused = true })
      or {}
    tape[k] = {}
    for i, x in ipairs(leaves) do
      tape[k][i] = gs[i] and flat(gs[i]):totable() or nil
    end
  end

  local worst, where = 0, nil
  lv.no_grad(function()
    for i, x in ipairs(inputs) do
      local n = x:numel()
      for j = 1, n do
        local function shifted(delta)
          local xs = {}
          for q, other in ipairs(inputs) do xs[q] = other end
          local moved = x:clone()
          local view = moved:view({ -1 })
          view[j] = view[j]:item() + delta
          xs[i] = moved
          return flat(evaluate(f, xs)):totable()
        end
        local plus, minus = shifted(eps), shifted(-eps)
        for k = 1, m do
          local numeric = (plus[k] - minus[k]) / (2 * eps)
          local analytic = tape[k][i] and tape[k][i][j] or 0
          local err = math.abs(analytic - numeric) / (1 + math.abs(numeric))
          if err ~= err then err = math.huge end
          if err > worst or where == nil then
            if err > worst then worst = err end
            if err >= worst then
              where = { input = i, element = j, output = k, tape = analytic, numeric = numeric }
            end
          end
        end
      end
    end
  end)
  return worst, where
end

function M.gradgradcheck(f, inputs, opts)
  check.fn("gradgradcheck", "f", f)
  opts = check.options("gradgradcheck", opts, { "eps", "seed" })
  check_inputs(inputs, "gradgradcheck")
  local probe = lv.enable_grad(evaluate, f, inputs)
  local u = lv.randn(probe:size(), "f64", lv.Generator(opts.seed or 7))
  local function first_derivatives(...)
    local xs = { ... }
    local y = f(table.unpack(xs))
    -- f constant in its inputs: its derivatives are all zero
    local gs = y.needs_grad
      and lv.grad(y, xs, { grad_outputs = u, create_graph = true, allow_unused = true }) or {}
    local parts = {}
    for i, x in ipairs(xs) do parts[i] = flat(gs[i] or lv.zeros_like(x)) end
    return lv.cat(parts, 1)
  end
  local function wrapped(...)
    local xs = { ... }
    -- Inside gradcheck's finite differences the inputs are plain tensors:
    -- make them leaves so that grad can be taken.
    for i, x in ipairs(xs) do
      if not x.needs_grad then xs[i] = lv.param(x:detach()) end
    end
    return lv.enable_grad(first_derivatives, table.unpack(xs))
  end
  return M.gradcheck(wrapped, inputs, opts)
end

return M
