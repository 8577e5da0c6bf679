--- bench/peers/options.lua -- bench/peer.lua's command line. Pure Lua.
--
--   local o, err = require("bench.peers.options").parse(arg)
--
-- Options:
--   --quick              a development run: short rounds, 3 of them, a
--                        small time budget per row
--   --rows LIST          only these rows (bench/peers/rows.lua: ARCH:MODEL,
--                        ARCH or MODEL, comma-separated)
--   --lvae-threads LIST  lvae's thread counts to time (default: its own,
--                        lv.num_threads()); the first is the one reported
--   --budget SECONDS     timing rounds' time per row (default 20, quick 4)
--   --keep DIR           keep the check's and workers' files in DIR
--   --render             measure nothing: write BENCHMARKS.md again from
--                        bench/results/peer.json (after a change of the report)
--   --help
-- A run of every row without --quick writes BENCHMARKS.md and
-- bench/results/peer.json; any other run writes
-- bench/results/peer-partial.json only, so that a development run never
-- replaces the full run's report.

local M = {}

M.USAGE = "usage: ./lvae bench/peer.lua [--quick] [--rows ARCH:MODEL,...] [--lvae-threads N,...] "
  .. "[--budget SECONDS] [--keep DIR] [--render] [--help]"

local function positive_integers(s)
  local out = {}
  for item in (s .. ","):gmatch("([^,]*),") do
    local n = math.tointeger(tonumber(item))
    if not n or n < 1 then return nil end
    out[#out + 1] = n
  end
  return #out > 0 and out or nil
end

--- Parses a list of words. Returns the options {quick, rows (a string or
-- nil), lvae_threads (a list or nil), budget (seconds), keep (a path or
-- nil), render, help} or nil and a message.
function M.parse(args)
  local o, i = { quick = false, help = false }, 1
  local function value(name)
    local v = args[i + 1]
    if v == nil or v:sub(1, 2) == "--" then return nil, name .. " needs a value" end
    i = i + 1
    return v
  end
  while i <= #args do
    local a, err = args[i], nil
    if a == "--quick" then
      o.quick = true
    elseif a == "--help" or a == "-h" then
      o.help = true
    elseif a == "--render" then
      o.render = true
    elseif a == "--rows" then
      o.rows, err = value(a)
    elseif a == "--keep" then
      o.keep, err = value(a)
    elseif a == "--lvae-threads" then
      local v
      v, err = value(a)
      if v then
        o.lvae_threads = positive_integers(v)
        if not o.lvae_threads then err = "--lvae-threads takes positive integers, e.g. 2,1 (got '" .. v .. "')" end
      end
    elseif a == "--budget" then
      local v
      v, err = value(a)
      if v then
        o.budget = tonumber(v)
        if not o.budget or o.budget <= 0 then err = "--budget takes a number of seconds above 0 (got '" .. v .. "')" end
      end
    else
      err = "unknown option '" .. tostring(a) .. "'"
    end
    if err then return nil, err end
    i = i + 1
  end
  o.budget = o.budget or (o.quick and 4 or 20)
  o.full = not o.quick and (o.rows == nil or o.rows == "")
  return o
end

return M
