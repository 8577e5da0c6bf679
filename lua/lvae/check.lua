--- Argument checks shared by the Lua modules (nn, optim, distributions,
-- models, estimators, data, plot, distributed, ...): each raises a Lua
-- error "where: what was wrong" without a position, so that the message
-- reads the same whichever module raised it. Where two modules word one
-- check differently, the check takes the module's wording as a parameter
-- and every message stays as it was.
--
-- Not here: checks of one module's own objects (an optimizer's betas, a
-- flow's methods), nor the C bindings' checks (luaL_argcheck in src/).

-- The core directly, not lvae.base: lvae.base loads lvae.autograd, which
-- loads this.
local core = require "lvae.core"

local M = {}

function M.fail(where, fmt, ...)
  error(string.format("%s: " .. fmt, where, ...), 0)
end

--- fail for a module whose messages name its functions under a prefix:
-- check.failer("plot.")("grid", ...) raises "plot.grid: ...".
function M.failer(prefix)
  return function(where, fmt, ...) M.fail(prefix .. where, fmt, ...) end
end

--- A shape as messages show it: "[3,4]".
function M.shape(shape) return "[" .. table.concat(shape, ",") .. "]" end

--- NumPy broadcast of two shapes (Lua lists), or nil when they do not fit:
-- whether two arguments' shapes go together, and the shape they make.
function M.broadcast_shape(sa, sb)
  local n = math.max(#sa, #sb)
  local out = {}
  for i = 1, n do
    local a = sa[i - (n - #sa)] or 1
    local b = sb[i - (n - #sb)] or 1
    if a ~= b and a ~= 1 and b ~= 1 then return nil end
    out[i] = a == 1 and b or a
  end
  return out
end

--- True for a tensor that has been freed (closed): still a tensor, but
-- any use of it raises.
local function freed(v) return core.is_tensor(v) and not pcall(core.dim, v) end

--- "a tensor", "a freed tensor", "nil", or the Lua type: for messages.
function M.typename(v)
  if core.is_tensor(v) then return freed(v) and "a freed tensor" or "a tensor" end
  return v == nil and "nil" or type(v)
end

--- v when it is a tensor that has not been freed, else an error naming
-- where and what.
function M.tensor(where, what, v)
  if not core.is_tensor(v) or freed(v) then
    M.fail(where, "%s must be a tensor (got %s)", what, M.typename(v))
  end
  return v
end

--- v when it is nil or an lv.Generator, else an error.
function M.generator(where, what, v)
  if v ~= nil then
    local mt = getmetatable(v)
    if type(mt) ~= "table" or mt.__name ~= "lvae.Generator" then
      M.fail(where, "%s must be a generator (lv.Generator(seed); got %s)", what, M.typename(v))
    end
  end
  return v
end

--- nil or a boolean, else an error.
function M.flag(where, what, v)
  if v ~= nil and type(v) ~= "boolean" then
    M.fail(where, "%s must be true or false (got %s)", what, M.typename(v))
  end
  return v
end

--- A function or a callable object, else an error.
function M.fn(where, what, v)
  if not M.callable(v) then M.fail(where, "%s must be a function (got %s)", what, M.typename(v)) end
  return v
end

--- A file name: a non-empty string.
function M.path(where, what, v)
  if type(v) ~= "string" or v == "" then
    M.fail(where, "%s must be a file name (got %s)", what, type(v) == "string" and "an empty string"
      or M.typename(v))
  end
  return v
end

--- fn(...) with an error it raises reworded as an error of where (its
-- position and a leading "lv.f: " dropped): for a call into the core
-- whose failure is the caller's, e.g. writing a picture to a bad path.
function M.call(where, fn, ...)
  local results = table.pack(pcall(fn, ...))
  if not results[1] then
    local err = results[2]
    if type(err) ~= "string" then error(err, 0) end
    err = err:gsub("^[^\n]-:%d+: ", ""):gsub("^lv%.[%w_]+: ", "")
    M.fail(where, "%s", err)
  end
  return table.unpack(results, 2, results.n)
end

--- True when v can be called: a function, or an object with __call.
function M.callable(v)
  if type(v) == "function" then return true end
  local mt = getmetatable(v)
  return type(mt) == "table" and mt.__call ~= nil
end

--- A table (nil gives {}) that is not a tensor, else an error.
function M.table(where, what, t)
  if t == nil then return {} end
  if type(t) ~= "table" or core.is_tensor(t) then
    M.fail(where, "%s must be a table (got %s)", what, M.typename(t))
  end
  return t
end

--- Raises on a key of t that is in neither the list `known` nor the list
-- `extra`: "unknown option 'k' (known: a, b, c)", the names of both lists
-- in order.
function M.keys(where, t, known, extra)
  local names = table.move(known, 1, #known, 1, {})
  table.move(extra or {}, 1, #(extra or {}), #names + 1, names)
  local set = {}
  for _, k in ipairs(names) do set[k] = true end
  for k in pairs(t) do
    if not set[k] then
      M.fail(where, "unknown option '%s' (known: %s)", tostring(k), table.concat(names, ", "))
    end
  end
end

--- An options table (nil gives {}), refusing keys not in `known`.
-- `words` (optional) is a module's own wording: words.got(v) gives what
-- follows "options must be a table" for a value that is not one.
function M.options(where, opts, known, words)
  if opts == nil then return {} end
  if words and words.got and (type(opts) ~= "table" or core.is_tensor(opts)) then
    M.fail(where, "options must be a table%s", words.got(opts))
  end
  M.table(where, "options", opts)
  M.keys(where, opts, known)
  return opts
end

--- v when it is a number, not NaN, finite, and ok(v) holds (ok: nil for
-- any number); else "<what> must be <expected> (got v)", or "<what> must
-- be finite (got v)" for an infinity that ok lets through.
function M.number(where, what, v, expected, ok)
  if math.type(v) == nil or v ~= v or (ok and not ok(v)) then
    M.fail(where, "%s must be %s (got %s)", what, expected, tostring(v))
  end
  if v == math.huge or v == -math.huge then M.fail(where, "%s must be finite (got %s)", what, tostring(v)) end
  return v
end

--- v when it is true or false (nil refused; check.flag lets it through).
function M.boolean(where, what, v)
  if type(v) ~= "boolean" then M.fail(where, "%s must be a boolean (got %s)", what, tostring(v)) end
  return v
end

--- The method `name` of v (a table or a userdata), or nil -- also when
-- indexing v raises.
function M.method(v, name)
  local ok, fn = pcall(function() return v[name] end)
  if ok and type(fn) == "function" then return fn end
  return nil
end

--- A batch of data x [B, ...] with B >= 1 and at least one data dim:
-- returns x, B and D (the elements of one datapoint). Each way x can be
-- wrong has its message; `worded` is a module's one message for all of
-- them instead, a format whose %s gets x's shape or type.
function M.batch(where, x, worded)
  local live = M.typename(x) == "a tensor"
  if not live or x:dim() < 2 or x:size(1) < 1 then
    if worded then M.fail(where, worded, live and M.shape(x:size()) or M.typename(x)) end
    if not live then M.fail(where, "x must be a tensor [B, ...] (got %s)", M.typename(x)) end
    if x:dim() < 2 then
      M.fail(where, "x must have a batch dim and at least one data dim (got shape %s)", M.shape(x:size()))
    end
    M.fail(where, "x holds no datapoint (shape %s)", M.shape(x:size()))
  end
  local B = x:size(1)
  return x, B, x:numel() // B
end

--- v as an integer when it is a whole number (3 or 3.0: the rule of
-- Lua's own luaL_checkinteger), else nil.
function M.integral(v)
  if math.type(v) == "integer" then return v end
  if math.type(v) == "float" then return math.tointeger(v) end
  return nil
end

--- A dtype option: "f32" (the default, for nil) or "f64".
function M.dtype(where, v)
  if v == nil then return "f32" end
  if v ~= "f32" and v ~= "f64" then
    M.fail(where, "dtype must be \"f32\" or \"f64\" (got %s)", type(v) == "string" and string.format("%q", v)
      or M.typename(v))
  end
  return v
end

--- The largest count check.count takes: 2^31 - 1 (a count of samples,
-- steps or chains beyond it is a mistake that would run for days).
M.MAX_COUNT = (1 << 31) - 1

--- v as an integer when it is a whole number >= 1 (3.0 taken as 3), else
-- an error "<what> must be a positive integer, got v" raised at `level`
-- (3 by default: the caller's caller), as lvae.nn's constructors report
-- their sizes: with the position of the user's line.
function M.positive(what, v, level)
  local n = M.integral(v)
  if not n or n < 1 then
    error(string.format("%s must be a positive integer, got %s", what, tostring(v)), level or 3)
  end
  return n
end

--- An integer from 1 to MAX_COUNT (an integral float is accepted).
function M.count(where, what, v)
  v = M.integral(v) or v
  if math.type(v) ~= "integer" or v < 1 then
    M.fail(where, "%s must be an integer >= 1 (got %s)", what, tostring(v))
  end
  if v > M.MAX_COUNT then M.fail(where, "%s must be at most 2^31 - 1 (got %s)", what, tostring(v)) end
  return v
end

return M
