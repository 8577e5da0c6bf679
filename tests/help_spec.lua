-- help() for the C core: lua/lvae/core_doc.lua against the functions the
-- core really has, README.md's API sections against core_doc, and what
-- help(f) prints from it.
--
-- The README rule (part b), over the inline code spans and fenced code
-- blocks of the sections from "## Using it" up to "## Results":
--   * a function lv.NAME (core_doc.functions) is mentioned when NAME occurs
--     there as a whole identifier that is not a field of another table:
--     `lv.narrow(...)`, `x:narrow(...)`, `narrow(dim, start, length)` and a
--     name list like `neg exp log` count; `nn.F.linear` and `x.grad` do not;
--   * a Generator or flow method NAME is mentioned as `:NAME(`
--     (`gen:get_state()`, `flow:kind()`);
--   * a constructor is mentioned by its full name, `lv.integrators.qsl`,
--     `lv.flows.planar`.
-- And the other way: every `lv.NAME(` written there names something lv
-- has, and a C function among them has a core_doc entry (likewise every
-- `lv.integrators.NAME` and `lv.flows.NAME`).
local lv = require "lvae"
local core = require "lvae.core"
local doc = require "lvae.core_doc"
local H = require "helpers"

local registry = debug.getregistry()

local function is_c_function(v)
  return type(v) == "function" and debug.getinfo(v, "S").what == "C"
end

local function is_public(name)
  return type(name) == "string" and name:sub(1, 1) ~= "_"
end

--- The public C functions of a table, by name.
local function c_functions(t)
  local out = {}
  for name, v in pairs(t) do
    if is_public(name) and is_c_function(v) then out[name] = v end
  end
  return out
end

-- Where each group of core_doc lives at run time, and how its signatures
-- start.
local groups = {
  functions = { where = core, prefix = function(n) return "lv." .. n .. "(" end },
  Generator = { where = registry["lvae.Generator"].__index, prefix = function(n) return "g:" .. n .. "(" end },
  Integrator = { where = registry["lvae.Integrator"].__index, prefix = function(n) return "flow:" .. n .. "(" end },
  integrators = { where = core.integrators, prefix = function(n) return "lv.integrators." .. n .. "{" end },
  flows = { where = core.flows, prefix = function(n) return "lv.flows." .. n .. "{" end },
  mpi = { where = core.mpi, prefix = function(n) return "lv.mpi." .. n .. "(" end },
}

local function sorted_keys(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys)
  return keys
end

local read_file = H.read_bytes

--- The code of README.md's API sections: inline code spans and fenced
-- blocks, joined by newlines.
local function readme_api_code()
  local text = read_file("README.md")
  local first = assert(text:find("\n## Using it\n", 1, true), "README.md has no '## Using it'")
  local last = assert(text:find("\n## Results\n", first, true), "README.md has no '## Results'")
  local section = text:sub(first, last)
  local code, prose, in_block = {}, {}, false
  for line in (section .. "\n"):gmatch("(.-)\n") do
    if line:match("^```") then
      in_block = not in_block
    elseif in_block then
      code[#code + 1] = line
    else
      prose[#prose + 1] = line
    end
  end
  -- a code span may run over a line break
  for span in table.concat(prose, "\n"):gmatch("`([^`]+)`") do code[#code + 1] = span end
  return table.concat(code, "\n")
end

--- Does NAME occur in code as a whole identifier that is not a field of
-- another table (only `lv.` may stand before it)?
local function mentions_function(code, name)
  local from = 1
  while true do
    local s, e = code:find(name, from, true)
    if not s then return false end
    local before, after = code:sub(s - 1, s - 1), code:sub(e + 1, e + 1)
    if not before:match("[%w_]") and not after:match("[%w_]") then
      if before ~= "." then return true end
      if code:sub(s - 3, s - 1) == "lv." and not code:sub(s - 4, s - 4):match("[%w_.]") then
        return true
      end
    end
    from = e + 1
  end
end

describe("core_doc", function()
  it("has an entry for every public C function of lvae.core and its userdata, and no other", function()
    local missing, extra = {}, {}
    for _, group in ipairs(sorted_keys(groups)) do
      local entries = assert(doc[group], "core_doc has no group " .. group)
      local present = c_functions(groups[group].where)
      for _, name in ipairs(sorted_keys(present)) do
        if not entries[name] then missing[#missing + 1] = group .. "." .. name end
      end
      for _, name in ipairs(sorted_keys(entries)) do
        if not present[name] then extra[#extra + 1] = group .. "." .. name end
      end
    end
    -- missing: C functions without an entry in lua/lvae/core_doc.lua;
    -- extra: entries for functions the core does not have
    assert.are.same({ missing = {}, extra = {} }, { missing = missing, extra = extra })
    for _, group in ipairs(sorted_keys(doc)) do
      assert.truthy(groups[group], "core_doc group " .. group .. " is not checked here")
    end
  end)

  it("covers every tensor method: each is the C function of lv.NAME", function()
    local methods = core._methods
    assert.are.equal(methods, lv.Tensor)
    local n = 0
    for _, name in ipairs(sorted_keys(c_functions(methods))) do
      assert.truthy(doc.functions[name], "tensor method " .. name .. " has no entry")
      assert.are.equal(core[name], methods[name], "x:" .. name .. " is not lv." .. name)
      n = n + 1
    end
    assert.is_true(n > 50)
  end)

  it("knows every public table of C functions in lvae.core", function()
    for name, v in pairs(core) do
      if is_public(name) and type(v) == "table" then
        assert.truthy(doc[name], "lvae.core." .. name .. " is not a core_doc group")
      end
    end
  end)

  it("gives each entry a signature as written and a one-line description", function()
    for group, spec in pairs(groups) do
      for name, entry in pairs(doc[group]) do
        local where = group .. "." .. name
        assert.are.equal("table", type(entry), where)
        assert.are.equal(2, #entry, where)
        local signature, description = entry[1], entry[2]
        assert.are.equal("string", type(signature), where)
        assert.are.equal("string", type(description), where)
        local prefix = spec.prefix(name)
        assert.are.equal(prefix, signature:sub(1, #prefix), where .. ": signature " .. signature)
        assert.truthy(#description > 0 and not description:find("\n"), where)
        assert.falsy(signature:find("\n"), where)
      end
    end
  end)

  it("names no function twice within a group in its source", function()
    -- A Lua table constructor silently keeps the last of two equal keys.
    local group, seen = nil, {}
    for line in io.lines("lua/lvae/core_doc.lua") do
      local g = line:match("^  ([%w_]+) = {$")
      if g then group, seen = g, {} end
      local name = line:match("^    ([%w_]+) = {")
      if name then
        assert.falsy(seen[name], "core_doc." .. tostring(group) .. "." .. name .. " appears twice")
        seen[name] = true
      end
    end
  end)
end)

describe("README.md's API sections", function()
  local code = readme_api_code()

  it("mention every function core_doc documents", function()
    local unmentioned = {}
    for _, name in ipairs(sorted_keys(doc.functions)) do
      if not mentions_function(code, name) then unmentioned[#unmentioned + 1] = "lv." .. name end
    end
    for _, group in ipairs({ "Generator", "Integrator" }) do
      for _, name in ipairs(sorted_keys(doc[group])) do
        if not code:find(":" .. name .. "(", 1, true) then
          unmentioned[#unmentioned + 1] = group .. ":" .. name .. "("
        end
      end
    end
    for _, group in ipairs({ "integrators", "flows", "mpi" }) do
      for _, name in ipairs(sorted_keys(doc[group])) do
        local full = "lv." .. group .. "." .. name
        if not code:find(full, 1, true) then unmentioned[#unmentioned + 1] = full end
      end
    end
    assert.are.same({}, unmentioned, "functions README.md's API sections do not mention")
  end)

  it("use only lv.NAME( that exist, with core_doc entries for the C ones", function()
    local unknown, undocumented, n = {}, {}, 0
    for pos, name in code:gmatch("()lv%.([%w_]+)%(") do
      if not code:sub(pos - 1, pos - 1):match("[%w_.]") then
        n = n + 1
        if lv[name] == nil then
          unknown[#unknown + 1] = "lv." .. name
        elseif is_c_function(lv[name]) and not doc.functions[name] then
          undocumented[#undocumented + 1] = "lv." .. name
        end
      end
    end
    for group, name in code:gmatch("lv%.(integrators)%.([%w_]+)") do
      if not doc[group][name] then undocumented[#undocumented + 1] = "lv." .. group .. "." .. name end
    end
    for group, name in code:gmatch("lv%.(flows)%.([%w_]+)") do
      if not doc[group][name] then undocumented[#undocumented + 1] = "lv." .. group .. "." .. name end
    end
    for group, name in code:gmatch("lv%.(mpi)%.([%w_]+)") do
      if not doc[group][name] then undocumented[#undocumented + 1] = "lv." .. group .. "." .. name end
    end
    assert.is_true(n > 50, "found only " .. n .. " lv.NAME( in the API sections")
    assert.are.same({}, unknown, "README.md uses functions lv does not have")
    assert.are.same({}, undocumented, "README.md uses C functions core_doc does not document")
  end)
end)

describe("help(f) for a C function", function()
  local function assert_shows(f, group, name)
    local h = lv.help(f)
    local entry = doc[group][name]
    assert.truthy(h:find(entry[1], 1, true), h)
    assert.truthy(h:find(entry[2], 1, true), h)
    return h
  end

  it("prints its signature and description from core_doc", function()
    local h = assert_shows(lv.zeros, "functions", "zeros")
    assert.are.equal("lv.zeros(shape [, dtype]) -> Tensor\n  " .. doc.functions.zeros[2], h)
    assert.falsy(h:find("also the method", 1, true), h)
    assert_shows(lv.grad, "functions", "grad")
    assert_shows(lv.Generator, "functions", "Generator")
    assert_shows(lv.load_nifti, "functions", "load_nifti")
  end)

  it("adds the method spelling of a tensor method, reached either way", function()
    local h = assert_shows(lv.narrow, "functions", "narrow")
    assert.truthy(h:find("(also the method x:narrow(dim, start, length))", 1, true), h)
    assert.are.equal(h, lv.help(lv.zeros({2}).narrow))
    h = assert_shows(lv.exp, "functions", "exp")
    assert.truthy(h:find("(also the method x:exp())", 1, true), h)
    h = assert_shows(lv.size, "functions", "size")
    assert.truthy(h:find("(also the method x:size([d]))", 1, true), h)
    h = assert_shows(lv.solve, "functions", "solve")
    assert.truthy(h:find("(also the method A:solve(B))", 1, true), h)
    -- every tensor method gets one
    for name, fn in pairs(c_functions(core._methods)) do
      assert.truthy(lv.help(fn):find("(also the method ", 1, true), name)
    end
  end)

  it("shows every name of a function that has several (lv.t is lv.transpose)", function()
    local h = assert_shows(lv.t, "functions", "t")
    assert.truthy(h:find(doc.functions.transpose[1], 1, true), h)
  end)

  it("documents Generator and flow methods and the flow constructors", function()
    assert_shows(lv.Generator(1).get_state, "Generator", "get_state")
    local flow = lv.integrators.qsl { dim = 2 }
    local h = assert_shows(flow.flow, "Integrator", "flow")
    assert.falsy(h:find("also the method", 1, true), h)
    assert_shows(flow.init_momentum, "Integrator", "init_momentum")
    assert_shows(lv.integrators.leapfrog, "integrators", "leapfrog")
    assert_shows(lv.flows.planar, "flows", "planar")
  end)
end)
