--- Argument checks shared by the Lua modules (models, estimators): each
-- raises a Lua error "where: what was wrong" without a position, so that
-- the message reads the same whichever module raised it.

local core = require "lvae.core"

local M = {}

function M.fail(where, fmt, ...)
  error(string.format("%s: " .. fmt, where, ...), 0)
end

--- "a tensor", "nil", or the Lua type: for messages.
function M.typename(v)
  if core.is_tensor(v) then return "a tensor" end
  return v == nil and "nil" or type(v)
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

--- An integer >= 1 (an integral float is accepted).
function M.count(where, what, v)
  v = M.integral(v) or v
  if math.type(v) ~= "integer" or v < 1 then
    M.fail(where, "%s must be an integer >= 1 (got %s)", what, tostring(v))
  end
  return v
end

return M
