--- Autograd conveniences over the C tape (src/autograd.c): grad-mode
-- scopes, Hessian-vector products and per-sample Hessians.
--
--   lv.no_grad(fn, ...)           runs fn recording nothing; returns its results
--   local _ <close> = lv.no_grad() records nothing until the scope ends
--   lv.enable_grad(fn, ...)       the opposite, inside a no_grad region
--   lv.hvp(f, x, v [, opts])      f(x), and H v with H the Hessian of f at x
--   lv.hessian(f, x [, opts])     per-sample d x d Hessians of f at x [B, d]
--
-- For hvp and hessian, f returns a scalar or per-sample values [B] (which
-- are summed: samples must not interact). With opts.create_graph the
-- results stay on the tape (to train through them); x is then used as
-- given when it requires grad, so gradients also reach what made it.

-- The core directly, not lvae.base: lvae.base is made of the core and this.
local core = require "lvae.core"
local check = require "lvae.check"

local M = {}

local function grad_scope(enabled, fn, ...)
  if fn ~= nil and not check.callable(fn) then
    error(string.format("lv.%s: expected a function to run, or nothing for a scope (got %s)",
      enabled and "enable_grad" or "no_grad", check.typename(fn)), 3)
  end
  local previous = core.set_grad_enabled(enabled)
  if fn == nil then
    return setmetatable({}, {
      __close = function() core.set_grad_enabled(previous) end,
      __name = enabled and "lvae.enable_grad" or "lvae.no_grad",
    })
  end
  local results = table.pack(pcall(fn, ...))
  core.set_grad_enabled(previous)
  if not results[1] then error(results[2], 0) end
  return table.unpack(results, 2, results.n)
end

function M.no_grad(fn, ...) return grad_scope(false, fn, ...) end
function M.enable_grad(fn, ...) return grad_scope(true, fn, ...) end

--- x itself when it is on the tape (and the caller wants a graph), else a
-- fresh leaf that requires grad.
local function differentiable_input(x, create_graph)
  if create_graph and x.needs_grad then return x end
  return core.param(x:detach())
end

local function scalar_of(y, what)
  if not core.is_tensor(y) then
    error(string.format("%s: f must return a tensor, got %s", what, type(y)), 3)
  end
  if y:numel() == 1 then return y end
  if y:dim() == 1 then return y:sum() end
  error(string.format("%s: f must return a scalar or per-sample values [B], got shape [%s]",
    what, table.concat(y:size(), ",")), 3)
end

function M.hvp(f, x, v, opts)
  local where = "lv.hvp"
  check.fn(where, "f", f)
  check.tensor(where, "x", x)
  check.tensor(where, "v", v)
  if table.concat(v:size(), ",") ~= table.concat(x:size(), ",") then
    check.fail(where, "v must have x's shape [%s] (got [%s])", table.concat(x:size(), ","),
      table.concat(v:size(), ","))
  end
  opts = check.options(where, opts, { "create_graph" })
  local create = check.flag(where, "create_graph", opts.create_graph) or false
  local xi = differentiable_input(x, create)
  local y = grad_scope(true, f, xi)
  local g = core.grad(scalar_of(y, "hvp"), { xi }, { create_graph = true })[1]
  if not g.needs_grad then return y, core.zeros_like(x) end   -- f is linear
  local hv = core.grad(g, { xi }, { grad_outputs = v, create_graph = create,
                                    allow_unused = true })[1]
  return y, hv or core.zeros_like(x)
end

function M.hessian(f, x, opts)
  local where = "lv.hessian"
  check.fn(where, "f", f)
  check.tensor(where, "x", x)
  opts = check.options(where, opts, { "create_graph" })
  local create = check.flag(where, "create_graph", opts.create_graph) or false
  local batched = x:dim() == 2
  if not batched and x:dim() ~= 1 then
    error("hessian: x must be [d] or a batch [B, d], got shape [" ..
      table.concat(x:size(), ",") .. "]", 2)
  end
  local xi = differentiable_input(x, create)
  local y = grad_scope(true, f, xi)
  local g = core.grad(scalar_of(y, "hessian"), { xi }, { create_graph = true })[1]
  local d = x:size(x:dim())
  if not g.needs_grad then                                   -- f is linear
    local shape = x:size()
    shape[#shape + 1] = d
    return core.zeros(shape, x:dtype())
  end
  local rows = {}
  for j = 1, d do
    -- The j-th unit vector in every sample at once: one reverse pass
    -- gives row j of every sample's Hessian (samples do not interact).
    local e = core.zeros_like(x)
    if batched then e:select(2, j):fill_(1) else e[j] = 1 end
    rows[j] = core.grad(g, { xi }, { grad_outputs = e, retain_graph = true,
                                     create_graph = create, allow_unused = true })[1]
              or core.zeros_like(x)
  end
  return core.stack(rows, batched and 2 or 1)
end

return M
