--- lvae: tensors, autograd and integrator flows for variational inference.
--
-- `local lv = require "lvae"` gives every function of the C core
-- (lvae.core) as `lv.name`; the tensor methods are the same functions, so
-- `lv.softplus(x)` and `x:softplus()` are one. This file adds what is
-- easier said in Lua: printing, `help`, and small conveniences.

local core = require "lvae.core"
local print_tensor = require "lvae.tensor_print"
local autograd = require "lvae.autograd"

local lv = {}

for name, value in pairs(core) do
  if type(name) == "string" and name:sub(1, 1) ~= "_" then
    lv[name] = value
  end
end

local Tensor = core._Tensor
local methods = core._methods

Tensor.__tostring = print_tensor.tostring
Tensor.__name = "lvae.Tensor"

--- Methods that are only convenient spellings of others.
function methods.float(x) return x:to("f32") end
function methods.double(x) return x:to("f64") end
function methods.type(x) return "lvae.Tensor" end

lv.Tensor = methods

for name, fn in pairs(autograd) do lv[name] = fn end
lv.testing = require "lvae.testing"
lv.print_options = print_tensor.options

--- help(obj): what an object is, and the methods it offers.
function lv.help(obj)
  local lines = {}
  local function sorted_names(t)
    local names = {}
    for k, v in pairs(t) do
      if type(k) == "string" and k:sub(1, 1) ~= "_" and type(v) == "function" then
        names[#names + 1] = k
      end
    end
    table.sort(names)
    return names
  end
  if lv.is_tensor(obj) then
    local shape = table.concat(obj:size(), ",")
    lines[#lines + 1] = string.format("lvae.Tensor: %s, shape [%s], %d elements%s",
      obj:dtype(), shape, obj:numel(), obj:is_contiguous() and "" or ", a strided view")
    lines[#lines + 1] = "methods: " .. table.concat(sorted_names(methods), " ")
  elseif obj == lv or obj == nil then
    lines[#lines + 1] = "lvae: the toolkit table. Functions:"
    lines[#lines + 1] = table.concat(sorted_names(lv), " ")
  elseif type(obj) == "table" or type(obj) == "userdata" then
    local mt = getmetatable(obj)
    local name = (mt and mt.__name) or type(obj)
    lines[#lines + 1] = string.format("%s", name)
    local index = mt and type(mt.__index) == "table" and mt.__index or obj
    if type(index) == "table" then
      lines[#lines + 1] = "methods: " .. table.concat(sorted_names(index), " ")
    end
  elseif type(obj) == "function" then
    for name, fn in pairs(lv) do
      if fn == obj then
        lines[#lines + 1] = string.format("lv.%s: a function of the toolkit%s", name,
          methods[name] and string.format(" (also the method x:%s())", name) or "")
      end
    end
    if #lines == 0 then lines[1] = "a Lua function" end
  else
    lines[1] = string.format("a %s: %s", type(obj), tostring(obj))
  end
  return table.concat(lines, "\n")
end

lv.models = require "lvae.models"
lv.estimators = require "lvae.estimators"
lv.data = require "lvae.data"
lv.plot = require "lvae.plot"

return lv
