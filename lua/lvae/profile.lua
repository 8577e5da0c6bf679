--- lv.profile: where the time of a computation goes, op by op.
--
--   local report = lv.profile(function() opt:step(-model:elbo(x):mean()) end, {repeats = 10})
--   print(report)            -- a table, slowest op first
--   report.rows[1]           -- {op = "matmul", calls =, seconds =, self_seconds =, elements =, flops =}
--
-- Every op goes through one door in the core (lv_apply); while profiling
-- is on, each call adds its wall time and output size to its op's row.
-- The backward pass shows as the ops its VJPs apply (matmul, mul, ...),
-- since a VJP is made of ops. `self_seconds` excludes the ops an op
-- applies inside itself. `total` is fn's wall time, `ops` the time inside
-- ops; the difference is what the ops do not see: Lua, the tape's
-- bookkeeping, the allocator. Figures are per call of fn. The products
-- (matmul, linear, the convolutions) also count their flops (2 per
-- multiply-add), printed as the GFLOP/s they reached.

local lv = require "lvae.base"
local core = require "lvae.core"       -- core._profile_start, core._profile_stop
local check = require "lvae.check"

local M = {}

local Report = {}
Report.__index = Report

function Report:__tostring()
  local lines = { string.format("%-16s %8s %10s %10s %7s %12s %8s", "op", "calls", "ms", "self ms",
    "self %", "elements", "GFLOP/s") }
  for _, r in ipairs(self.rows) do
    local rate = r.flops > 0 and string.format("%8.1f", r.flops / r.self_seconds / 1e9) or ""
    lines[#lines + 1] = string.format("%-16s %8.1f %10.3f %10.3f %6.1f%% %12.0f %s", r.op, r.calls,
      r.seconds * 1e3, r.self_seconds * 1e3, 100 * r.self_seconds / self.total, r.elements, rate)
  end
  lines[#lines + 1] = string.format("total %.3f ms per call, %.3f ms in ops (%.1f%%), %.3f ms outside them",
    self.total * 1e3, self.ops * 1e3, 100 * self.ops / self.total, (self.total - self.ops) * 1e3)
  return table.concat(lines, "\n")
end

--- lv.profile(fn [, {repeats = n}]) -> report
-- Runs fn n times (1 by default) with the op profiler on; the report's
-- figures are per call, its rows sorted by self time, slowest first.
function M.profile(fn, opts)
  local where = "lv.profile"
  if type(fn) ~= "function" then
    error(string.format("%s: expected a function to run (got %s)", where, type(fn)), 2)
  end
  opts = opts or {}
  check.options(where, opts, { "repeats" })
  local repeats = opts.repeats or 1
  if math.type(repeats) == nil or repeats < 1 or repeats ~= math.floor(repeats) then
    error(string.format("%s: option 'repeats' must be a positive integer (got %s)", where,
      tostring(repeats)), 2)
  end
  core._profile_start()
  local started = lv.clock()
  local ok, err = pcall(function() for _ = 1, repeats do fn() end end)
  local total = lv.clock() - started
  local raw = core._profile_stop()
  if not ok then error(err, 0) end
  local rows, ops = {}, 0
  for name, r in pairs(raw) do
    rows[#rows + 1] = { op = name, calls = r.calls / repeats, seconds = r.seconds / repeats,
                        self_seconds = r.self_seconds / repeats, elements = r.elements / repeats,
                        flops = r.flops / repeats }
    ops = ops + r.self_seconds / repeats
  end
  table.sort(rows, function(a, b) return a.self_seconds > b.self_seconds end)
  return setmetatable({ rows = rows, total = total / repeats, ops = ops }, Report)
end

return M
