--- lvae: tensors, autograd and integrator flows for variational inference.
--
-- `local lv = require "lvae"` gives every function of the C core
-- (lvae.core) and the autograd helpers as `lv.name` -- the table of
-- lvae.base, which the toolkit's own modules build on; the tensor methods
-- are the same functions, so `lv.softplus(x)` and `x:softplus()` are one.
-- This file adds what is easier said in Lua: printing, `help`, small
-- conveniences, and the submodules (lv.models, lv.data, ...).

local core = require "lvae.core"       -- core._Tensor, core._methods
local print_tensor = require "lvae.tensor_print"

local lv = {}

for name, value in pairs(require "lvae.base") do lv[name] = value end

local Tensor = core._Tensor
local methods = core._methods

Tensor.__tostring = print_tensor.tostring
Tensor.__name = "lvae.Tensor"

--- Methods that are only convenient spellings of others.
function methods.float(x) return x:to("f32") end
function methods.double(x) return x:to("f64") end
function methods.type(x) return "lvae.Tensor" end

lv.Tensor = methods

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
