-- misuse_spec.lua -- every public function called with bad arguments, from
-- the one table of tests/misuse_cases.lua (issue 14: tests that keep the
-- defects out). Each bad call must raise a worded Lua error: one that
-- names the function and is none of Lua's raw errors (an index of nil, a
-- call of nil, arithmetic on a string, "bad argument to '?'"). Never a
-- crash (make misuse runs this under ASan and UBSan, fatal), a hang, or a
-- bad value accepted in silence; the inputs that are fine are listed as
-- accepted in the table, with the reason, and must not raise.
--
-- LVAE_MISUSE_GROUP=name[,name...] runs only those groups of the table
-- (make misuse runs each in its own process); LVAE_MISUSE_SHOW=1 prints
-- every call with its message, to read them.

local lv = require "lvae"
local H = require "helpers"
local cases = require "misuse_cases"

local dir = H.make_dir("lvae_misuse_spec")
local env = cases.env(lv, dir)

local show = (os.getenv("LVAE_MISUSE_SHOW") or "") ~= ""
local selected = nil
if (os.getenv("LVAE_MISUSE_GROUP") or "") ~= "" then
  selected = {}
  for name in os.getenv("LVAE_MISUSE_GROUP"):gmatch("[^,%s]+") do selected[name] = true end
end

-- Lua's own words for a fault in code, never an answer to bad input.
local RAW = {
  "attempt to index", "attempt to call", "attempt to perform arithmetic", "attempt to compare",
  "attempt to concatenate", "attempt to get length", "bad argument #%d+ to '%?'", "stack traceback",
  "number has no integer representation$", "C stack overflow",
}

-- The longest a bad call may take: not a speed target, a guard against
-- a count taken as given that would run for billions of iterations (a
-- hang). Generous, so that sanitizers and a loaded machine stay inside.
local SLOW_SECONDS = 30

local function compile(src, what)
  local fn, err = load(src, "=" .. what, "t", env)
  if not fn then error("misuse_cases: " .. what .. ": " .. err, 0) end
  return fn
end

--- The caller of a case: "lv.f" and "a.b.C" call the function, "obj:m"
-- calls method m of the first argument, "expr(...)" calls what expr makes.
local function caller(call)
  local method = call:match("^[%w_]+:([%w_]+)$")
  if method then
    return compile("local a = ... return a[1]:" .. method .. "(table.unpack(a, 2, a.n))", call)
  end
  return compile("local a = ... return (" .. call .. ")(table.unpack(a, 1, a.n))", call)
end

--- The name a message must give: the call's last name.
local function default_name(call)
  local base = call:gsub("%b()$", "")
  return base:match("([%w_]+)$")
end

local function names_in(msg, names)
  for _, n in ipairs(names) do
    if msg:find("%f[%w_]" .. n:gsub("%p", "%%%0") .. "%f[^%w_]") then return true end
  end
  return false
end

local function shown(msg)
  msg = tostring(msg):gsub("[%z\1-\8\11-\31]", function(c) return "\\" .. c:byte() end)
  return #msg > 300 and msg:sub(1, 300) .. "..." or msg
end

--- The calls of one case: a list of {label, args (a function returning
-- the packed arguments), accepted (a reason, or nil)}.
local function calls_of(case)
  local call, args_src, roles = case[1], case[2], case[3] or {}
  local good = compile("return table.pack(" .. args_src .. ")", call .. " arguments")
  local used = {}
  local list = {}
  local function add(key, value_src, accepted_by_role)
    local reason = accepted_by_role
    if case.ok and case.ok[key] then reason, used["ok:" .. key] = case.ok[key], true end
    if case.bad and case.bad[key] then reason, used["bad:" .. key] = nil, true end
    local pos, kind = key:match("^([^:]+):(.*)$")
    local args
    if pos == "*" then
      local whole = compile("return table.pack(" .. value_src .. ")", call .. " " .. key)
      args = whole
    else
      local i = tonumber(pos)
      local value = compile("return " .. value_src, call .. " " .. key)
      args = function()
        local a = good()
        a[i] = value()
        if i > a.n then a.n = i end
        return a
      end
    end
    list[#list + 1] = { label = string.format("argument %s = %s", pos, kind), args = args, accepted = reason,
                        call = call }
  end
  for i = 1, #roles do
    local rname = roles[i]
    if rname and rname ~= "-" then
      local role = cases.roles[rname] or error("misuse_cases: " .. call .. ": unknown role " .. rname, 0)
      for _, kind in ipairs(role.bad or {}) do
        add(i .. ":" .. kind, cases.kinds[kind] or error("misuse_cases: unknown kind " .. kind, 0), nil)
      end
      local kinds = {}
      for kind in pairs(role.ok or {}) do kinds[#kinds + 1] = kind end
      table.sort(kinds)
      for _, kind in ipairs(kinds) do
        add(i .. ":" .. kind, cases.kinds[kind] or error("misuse_cases: unknown kind " .. kind, 0), role.ok[kind])
      end
    end
  end
  local extra = {}
  for key in pairs(case.more or {}) do extra[#extra + 1] = key end
  table.sort(extra)
  for _, key in ipairs(extra) do add(key, case.more[key], nil) end
  -- an override of a kind the roles do not try adds that call (accepted
  -- for ok, refused for bad); one naming no kind is a typo
  for _, which in ipairs({ "ok", "bad" }) do
    local keys = {}
    for key in pairs(case[which] or {}) do
      if not used[which .. ":" .. key] then keys[#keys + 1] = key end
    end
    table.sort(keys)
    for _, key in ipairs(keys) do
      local kind = key:match("^%d+:(.*)$")
      if not (kind and cases.kinds[kind]) then
        error(string.format("misuse_cases: %s: %s[%q] matches no call", call, which, key), 0)
      end
      add(key, cases.kinds[kind], nil)
    end
  end
  return list, good
end

local totals = { calls = 0, accepted = 0, cases = 0 }

--- Runs one call; returns nil when it behaved, else what went wrong.
local function check_call(run, c, names)
  local started = lv.clock()
  local ok, args = pcall(c.args)
  if not ok then return "its arguments could not be made: " .. shown(args) end
  local fine, err = pcall(run, args)
  local took = lv.clock() - started
  lv.set_grad_enabled(true)
  if show then print(string.format("%s | %s | %s", c.call, c.label, fine and "accepted" or shown(err))) end
  totals.calls = totals.calls + 1
  if c.accepted then totals.accepted = totals.accepted + 1 end
  if took > SLOW_SECONDS then return string.format("took %.1f s", took) end
  if c.accepted then
    if not fine then return "is accepted (" .. c.accepted .. ") but raised: " .. shown(err) end
    return nil
  end
  if fine then return "was accepted in silence" end
  if type(err) ~= "string" then return "raised a " .. type(err) .. ", not a message" end
  for _, pattern in ipairs(RAW) do
    if err:find(pattern) then return "raised a raw Lua error: " .. shown(err) end
  end
  if not names_in(err, names) then
    return string.format("raised an error that does not name %s: %s", table.concat(names, " or "), shown(err))
  end
  return nil
end

describe("misuse", function()
  for _, group in ipairs(cases.groups) do
    if not selected or selected[group.name] then
      describe(group.name, function()
        for _, case in ipairs(group.cases) do
          local call = case[1]
          it(call .. " refuses bad arguments in words", function()
            local list, good = calls_of(case)
            local run = caller(call)
            local names = { default_name(call) }
            for _, n in ipairs(case.names or {}) do names[#names + 1] = n end
            totals.cases = totals.cases + 1
            local problems = {}
            if case.good ~= false then
              local ok, err = pcall(function() return run(good()) end)
              lv.set_grad_enabled(true)
              if not ok then problems[#problems + 1] = "the good call raised: " .. shown(err) end
            end
            for _, c in ipairs(list) do
              local problem = check_call(run, c, names)
              if problem then problems[#problems + 1] = c.label .. " " .. problem end
            end
            assert.is_true(lv.is_grad_enabled())
            if #problems > 0 then
              error(string.format("%s: %d of %d calls misbehaved:\n  %s", call, #problems, #list,
                table.concat(problems, "\n  ")), 0)
            end
          end)
        end
      end)
    end
  end

  -- Covering a new public function is one line of the table: this finds
  -- the functions that have none.
  it("has a case for every public function", function()
    local have = {}
    for _, group in ipairs(cases.groups) do
      for _, case in ipairs(group.cases) do have[case[1]:gsub("%b()$", "")] = true end
    end
    local function callable(v)
      return type(v) == "function" or (type(v) == "table" and getmetatable(v) and getmetatable(v).__call)
    end
    local missing = {}
    local function scan(prefix, t, skip)
      for name, v in pairs(t) do
        if type(name) == "string" and name:sub(1, 1) ~= "_" and callable(v) and not (skip or {})[name]
           and not have[prefix .. name] then
          missing[#missing + 1] = prefix .. name
        end
      end
    end
    local core = require "lvae.core"
    scan("lv.", core)
    scan("lv.integrators.", core.integrators)
    scan("lv.flows.", core.flows)
    scan("lv.mpi.", core.mpi)
    for _, name in ipairs({ "no_grad", "enable_grad", "hvp", "hessian", "help", "profile" }) do
      if not have["lv." .. name] then missing[#missing + 1] = "lv." .. name end
    end
    for _, mod in ipairs({ "models", "estimators", "data", "testing", "distributed" }) do
      scan("lv." .. mod .. ".", lv[mod])
    end
    scan("plot.", lv.plot)
    -- nn.Module is the base class: its methods are tried on a Linear (m:train, ...)
    scan("nn.", env.nn, { Module = true })
    scan("nn.F.", env.nn.F)
    scan("nn.init.", env.nn.init)
    scan("optim.", env.optim)
    scan("optim.schedules.", env.optim.schedules)
    scan("D.", env.D)
    table.sort(missing)
    assert(#missing == 0, "functions without a case in tests/misuse_cases.lua: " .. table.concat(missing, ", "))
  end)

  teardown(function()
    os.execute("rm -rf " .. H.sh_quote(dir))
    print(string.format("\nmisuse: %d calls in %d cases, %d of them accepted inputs",
      totals.calls, totals.cases, totals.accepted))
  end)
end)
