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
lv.profile = require("lvae.profile").profile

--- help(obj): what an object is, its documentation, what it offers
-- (lvae.help).
function lv.help(obj) return require("lvae.help").describe(lv, methods, obj) end

lv.models = require "lvae.models"
lv.estimators = require "lvae.estimators"
lv.data = require "lvae.data"
lv.distributed = require "lvae.distributed"
lv.plot = require "lvae.plot"

return lv
