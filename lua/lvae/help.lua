--- lvae.help: `help(obj)` in the REPL -- what an object is, its
-- documentation and what it offers.
--
--   help(x)                    -- a tensor: dtype, shape, and its methods
--   help(lv.estimators.nll)    -- a Lua function: its `---` comment and where it is defined
--   help(lv.estimators)        -- a module: its heading comment and its functions
--   help(lv.exp)               -- a C function of the core: its signature and
--                                 description, and the method (x:exp())
--   help(g.get_state)          -- a method of a Generator or a flow: the same
--
-- The documentation of a Lua function is the comment block written above
-- it (or at the top of a module's file), read from the source when asked:
-- what the code says is what help says. C functions carry no comments at
-- run time; lua/lvae/core_doc.lua holds their signatures and one-line
-- descriptions (tests/help_spec.lua keeps it complete).

local M = {}

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

--- The functions obj offers: its own, then those its metatables' __index
-- tables give it (a class and the classes it inherits from).
local function method_names(obj)
  local seen, names = {}, {}
  local t, depth = obj, 0
  while type(t) == "table" or (type(t) == "userdata" and depth == 0) do
    if type(t) == "table" then
      for _, name in ipairs(sorted_names(t)) do
        if not seen[name] then seen[name], names[#names + 1] = true, name end
      end
    end
    local mt = getmetatable(t)
    t, depth = mt and mt.__index, depth + 1
    if depth > 16 then break end
  end
  table.sort(names)
  return names
end

local function read_lines(path)
  local f = io.open(path, "r")
  if not f then return nil end
  local lines = {}
  for line in f:lines() do lines[#lines + 1] = line end
  f:close()
  return lines
end

--- The comment block ending just above line `before` (exclusive), with its
-- dashes taken off; nil when there is none.
local function comment_above(lines, before)
  local first = before
  while first > 1 and lines[first - 1]:match("^%s*%-%-") do first = first - 1 end
  if first == before then return nil end
  local out = {}
  for i = first, before - 1 do out[#out + 1] = (lines[i]:gsub("^%s*%-%-%-? ?", "")) end
  return table.concat(out, "\n")
end

--- The comment block a file opens with.
local function heading_comment(lines)
  local out = {}
  for _, line in ipairs(lines) do
    if not line:match("^%-%-") then break end
    out[#out + 1] = (line:gsub("^%-%-%-? ?", ""))
  end
  return #out > 0 and table.concat(out, "\n") or nil
end

--- Where a Lua function is defined: the file, the line, or nil for C.
local function lua_source(fn)
  local info = debug.getinfo(fn, "S")
  if info.what ~= "Lua" or info.source:sub(1, 1) ~= "@" then return nil end
  return info.source:sub(2), info.linedefined
end

--- The name `lv.<...>` under which fn is found (modules one level down).
local function name_in(lv, obj)
  for name, v in pairs(lv) do
    if v == obj then return "lv." .. name end
  end
  for modname, mod in pairs(lv) do
    if type(mod) == "table" and mod ~= lv and type(modname) == "string" then
      for name, v in pairs(mod) do
        if v == obj then return string.format("lv.%s.%s", modname, name) end
      end
    end
  end
  return nil
end

--- The file a module table's functions are defined in, if they share one.
local function module_file(mod)
  for _, name in ipairs(sorted_names(mod)) do
    local path = lua_source(mod[name])
    if path then return path end
  end
  return nil
end

--- The method spelling of a function-form signature: "lv.narrow(x, dim,
-- start, length) -> Tensor" gives "x:narrow(dim, start, length)".
local function method_form(signature, name)
  local args = signature:match("^lv%.[%w_]+%((.*)%)%s*%->") or signature:match("^lv%.[%w_]+%((.*)%)$")
  local receiver, rest = (args or ""):match("^([%a_][%w_]*)(.*)$")
  if not receiver then return nil end
  rest = rest:gsub("^,%s*", ""):gsub("^%s*%[,%s*", "[")
  return string.format("%s:%s(%s)", receiver, name, rest)
end

--- The entries of lvae.core_doc by the C function they document (a
-- function may have several names: lv.t is lv.transpose), built once.
local core_entries
local function core_doc_entries(methods)
  if core_entries then return core_entries end
  local doc = require "lvae.core_doc"
  local core = require "lvae.core"      -- the core itself is what is documented
  local registry = debug.getregistry()
  local where = {
    functions = core, integrators = core.integrators, flows = core.flows, mpi = core.mpi,
    Generator = registry["lvae.Generator"].__index,
    Integrator = registry["lvae.Integrator"].__index,
  }
  core_entries = {}
  for group, entries in pairs(doc) do
    for name, entry in pairs(entries) do
      local fn = where[group] and where[group][name]
      if type(fn) == "function" then
        local list = core_entries[fn] or {}
        list[#list + 1] = { signature = entry[1], description = entry[2],
                            method = group == "functions" and methods[name] == fn
                                     and method_form(entry[1], name) or nil }
        core_entries[fn] = list
      end
    end
  end
  for _, list in pairs(core_entries) do
    table.sort(list, function(a, b) return a.signature < b.signature end)
  end
  return core_entries
end

--- The options of a constructor of lv.integrators or lv.flows, one line
-- each with its default, from the kind's record (lv.integrator_kinds());
-- nil for any other function.
local function kind_options(fn)
  local core = require "lvae.core"
  for _, kind in ipairs(core.integrator_kinds()) do
    if core[kind.group] and core[kind.group][kind.name] == fn then
      local lines = { "  options:" }
      for _, o in ipairs(kind.options) do
        local default = o.default
        if default == nil then
          default = "(required)"
        elseif type(default) == "table" then
          default = string.format("= {step = %s, friction = %s, temperature = %s}",
                                  default.step, default.friction, default.temperature)
        elseif type(default) == "string" then
          default = string.format("= %q", default)
        else
          default = "= " .. tostring(default)
        end
        lines[#lines + 1] = string.format("    %s %s: %s", o.name, default, o.doc)
      end
      return table.concat(lines, "\n")
    end
  end
end

--- help(lv, methods, obj) -> text.
function M.describe(lv, methods, obj)
  local lines = {}
  if lv.is_tensor(obj) then
    local shape = table.concat(obj:size(), ",")
    lines[#lines + 1] = string.format("lvae.Tensor: %s, shape [%s], %d elements%s",
      obj:dtype(), shape, obj:numel(), obj:is_contiguous() and "" or ", a strided view")
    lines[#lines + 1] = "methods: " .. table.concat(sorted_names(methods), " ")
  elseif obj == lv or obj == nil then
    lines[#lines + 1] = "lvae: the toolkit table. Functions:"
    lines[#lines + 1] = table.concat(sorted_names(lv), " ")
    lines[#lines + 1] = "modules: lv.models, lv.estimators, lv.integrators, lv.flows, lv.mpi, lv.data, "
      .. "lv.plot, require 'lvae.nn', require 'lvae.optim'; help(f) shows a function's documentation"
  elseif type(obj) == "function" then
    local name = name_in(lv, obj)
    local path, line = lua_source(obj)
    if path then
      lines[#lines + 1] = string.format("%s (%s:%d)", name or "a Lua function", path, line)
      local source = read_lines(path)
      local doc = source and comment_above(source, line)
      lines[#lines + 1] = doc or "(no comment above its definition)"
    elseif debug.getinfo(obj, "S").what ~= "C" then
      lines[#lines + 1] = string.format("%s, defined in %s (no source file to read its comment from)",
        name or "a Lua function", debug.getinfo(obj, "S").short_src)
    elseif core_doc_entries(methods)[obj] then
      for _, e in ipairs(core_doc_entries(methods)[obj]) do
        lines[#lines + 1] = e.signature
        lines[#lines + 1] = "  " .. e.description
        if e.method then lines[#lines + 1] = string.format("  (also the method %s)", e.method) end
      end
      lines[#lines + 1] = kind_options(obj)
    elseif name then
      lines[#lines + 1] = string.format("%s: a function of the C core, not yet in lua/lvae/core_doc.lua", name)
    else
      lines[#lines + 1] = "a C function"
    end
  elseif type(obj) == "table" or type(obj) == "userdata" then
    local mt = getmetatable(obj)
    local path = type(obj) == "table" and module_file(obj)
    local source = path and read_lines(path)
    local doc = source and heading_comment(source)
    lines[#lines + 1] = name_in(lv, obj) or (mt and mt.__name)
      or (path and string.format("a module (%s)", path)) or type(obj)
    if doc then lines[#lines + 1] = doc end
    local names = method_names(obj)
    if #names > 0 then lines[#lines + 1] = "methods: " .. table.concat(names, " ") end
  else
    lines[1] = string.format("a %s: %s", type(obj), tostring(obj))
  end
  return table.concat(lines, "\n")
end

return M
