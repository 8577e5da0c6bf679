--- Argument checks shared by the Lua modules (models, estimators): each
-- raises a Lua error "where: what was wrong" without a position, so that
-- the message reads the same whichever module raised it.

local core = require "lvae.core"

local M = {}

function M.fail(where, fmt, ...)
  error(string.format("%s: " .. fmt, where, ...), 0)
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

--- An options table (nil gives {}), refusing keys not in `known`.
function M.options(where, opts, known)
  if opts == nil then return {} end
  if type(opts) ~= "table" or core.is_tensor(opts) then
    M.fail(where, "options must be a table (got %s)", M.typename(opts))
  end
  local set = {}
  for _, k in ipairs(known) do set[k] = true end
  for k in pairs(opts) do
    if not set[k] then
      M.fail(where, "unknown option '%s' (known: %s)", tostring(k), table.concat(known, ", "))
    end
  end
  return opts
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
