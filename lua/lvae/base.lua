--- lvae.base: the toolkit's functions as its own Lua modules reach them --
-- every public function of the C core (lvae.core: tensors, ops, lv.grad,
-- integrators, I/O, lv.mpi, ...) and the autograd helpers written in Lua
-- (lvae.autograd: no_grad, enable_grad, hvp, hessian), in one table.
--
-- The rule, for every module under lua/lvae/:
--
--   local lv = require "lvae.base"     -- lv.zeros, lv.no_grad, lv.mpi, ...
--   local core = require "lvae.core"   -- only for a private core._xxx entry
--
-- and never `require "lvae"`: init.lua (the `lv` a user gets) builds on
-- this table and then loads models, estimators, data, distributed and
-- plot, so a module it loads cannot require it back, and a module it does
-- not load need not pull in the rest. Two modules sit below this one and
-- take lvae.core directly: autograd.lua (part of it) and check.lua (which
-- autograd uses). The front-ends that hand the whole toolkit to a person
-- -- the REPL (repl.lua), experiment files, scripts -- take `require
-- "lvae"`.
--
-- It adds nothing of its own: no printing, help or submodules (init.lua).

local core = require "lvae.core"
local autograd = require "lvae.autograd"

local base = {}

for name, value in pairs(core) do
  if type(name) == "string" and name:sub(1, 1) ~= "_" then base[name] = value end
end
for name, fn in pairs(autograd) do base[name] = fn end

return base
