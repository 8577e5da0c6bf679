--- lvae.run.options: the command line of `./lvae run FILE.lua` -- the
-- runner's own options (RUNNER_OPTIONS), an experiment's declared
-- options in a normal form (converters, min, choices), the argparse
-- parser made of both, run.config, and what --resume may change.
--
--   local options = require "lvae.run.options"
--   local own, runner, by_target = options.declared(exp, file)
--   local parser = options.parser(file, exp, own, runner)
--   local config = options.config(parsed, by_target)
--   local merged, why = options.resumed(checkpoint.config, config, by_target, args)
--
-- It does not load the experiment, make the run folder or read the
-- checkpoint (lvae.run does).

local argparse = require "argparse"

local M = {}

-- The runner's own options: {flag, help, default, converter}. An
-- experiment that declares the same flag replaces the help and default.
-- On --resume the run keeps the values it started with: an option marked
-- resume = "keep" may be given again to change it, one marked "process"
-- belongs to the process (its value is this command line's, or the
-- default), and any other must not change. `training` ones are left out
-- for an experiment without step.
local RUNNER_OPTIONS = {
  { "--seed", "random seed (every random stream derives from it)", 1 },
  { "--epochs", "training epochs (0: evaluate the starting parameters)", 10, min = 0,
    resume = "keep", training = true },
  { "--out", "folder the run folders are made in", "runs" },
  { "--name", "run name (the folder is <out>/<name>-<timestamp>)" },
  { "--resume", "continue the run in RUN_DIR from its last checkpoint", argname = "RUN_DIR",
    resume = "process", training = true },
  { "--patience", "stop when the validation ELBO has not improved for N epochs (0: never)", 0,
    min = 0, resume = "keep", training = true },
  { "--finish-with", "parameters finish evaluates: best (validation) or last", "best",
    choices = { "best", "last" }, resume = "keep", training = true },
  { "--keep-checkpoints", "keep the last N epoch checkpoints, and the best (0: all)", 3,
    min = 0, resume = "keep", training = true },
  { "--log-every", "a log line every N batches when not on a terminal (0: per epoch)", 100,
    min = 0, resume = "process", training = true },
  { "--max-steps", "stop after N steps in all (0: no limit; for smoke runs and tests)", 0,
    min = 0, resume = "process", training = true },
  { "--stop-after-epoch", "stop after epoch N's checkpoint, as an interruption would (0: no)", 0,
    min = 0, resume = "process", training = true },
  { "--threads", "threads for OpenMP and BLAS (0: leave as they are)", 0, min = 0,
    resume = "process" },
  { "--quiet", "nothing on the terminal but errors (messages.log keeps the messages)", false, resume = "process" },
  { "--distributed", "data-parallel training over the MPI processes of this job (on by itself under mpirun)",
    false, resume = "process" },
}

--- `--nll-samples` -> "nll_samples" (argparse's target); the first long
-- alias names the option.
local function target_of(flag)
  local long = flag:match("%-%-([%w][%w_%-]*)") or flag:match("%-([%w][%w_%-]*)")
  return long and long:gsub("%-", "_")
end

local function integer_converter(flag)
  return function(s)
    local v = math.tointeger(tonumber(s))
    if v == nil then return nil, string.format("option '%s' takes an integer (got '%s')", flag, s) end
    return v
  end
end

local function number_converter(flag)
  return function(s)
    local v = tonumber(s)
    if v == nil then return nil, string.format("option '%s' takes a number (got '%s')", flag, s) end
    return v
  end
end

--- convert, then a check that the value is at least `min`.
local function at_least(flag, convert, min)
  return function(s)
    local v, err = convert(s)
    if v == nil then return nil, err end
    if type(v) ~= "number" or v < min then
      return nil, string.format("option '%s' must be at least %s (got '%s')", flag, tostring(min), s)
    end
    return v
  end
end

--- Gives a normal option its min: values below it are refused when parsed.
local function set_min(o, min)
  o.min = min
  o.convert = at_least(o.flag, o.convert or number_converter(o.flag), min)
end

local function boolean_converter(flag)
  local values = { ["true"] = true, yes = true, ["1"] = true, ["false"] = false, no = false, ["0"] = false }
  return function(s)
    local v = values[s:lower()]
    if v == nil then return nil, string.format("option '%s' takes true or false (got '%s')", flag, s) end
    return v
  end
end

--- Checks one declared option and gives it a normal form.
local function normal_option(o, where)
  if type(o) ~= "table" or type(o[1]) ~= "string" or not o[1]:match("^%-") then
    error(string.format("%s: expected {flag, help, default [, converter]} with a flag like '--name'", where), 0)
  end
  local flag, default, convert = o[1], o[3], o[4]
  local target = target_of(flag)
  if not target then error(string.format("%s: cannot name the option '%s'", where, flag), 0) end
  if convert ~= nil and type(convert) ~= "function" then
    error(string.format("%s (%s): the converter must be a function", where, flag), 0)
  end
  local kind = "option"
  if default == false and convert == nil then
    kind = "flag"
  elseif type(default) == "boolean" and convert == nil then
    convert = boolean_converter(flag)
  elseif type(default) == "number" and convert == nil then
    convert = math.type(default) == "integer" and integer_converter(flag) or number_converter(flag)
  end
  if o.min ~= nil and (type(o.min) ~= "number" or kind == "flag") then
    error(string.format("%s (%s): min must be a number, on an option that takes one", where, flag), 0)
  end
  local n = { flag = flag, help = o[2] or "", default = default, convert = convert, kind = kind,
              target = target, choices = o.choices, argname = o.argname, resume = o.resume,
              training = o.training }
  if o.min ~= nil then set_min(n, o.min) end
  return n
end

--- The declared options, runner's and experiment's, in help order:
-- the experiment's own (normal form), the runner's it does not replace,
-- and all of them by target.
function M.declared(exp, exp_name)
  local runner, own, by_target = {}, {}, {}
  for i, o in ipairs(exp.options or {}) do
    local n = normal_option(o, string.format("%s: options[%d]", exp_name, i))
    own[#own + 1] = n
    by_target[n.target] = n
  end
  for _, o in ipairs(RUNNER_OPTIONS) do
    local n = normal_option(o, "runner option")
    if n.target == "name" then n.default = exp.name end
    local mine = by_target[n.target]
    if n.training and not exp.step then
      -- an experiment without a loop has nothing to resume, stop or keep
    elseif mine then
      mine.resume = n.resume     -- the runner still gives it its meaning
      if n.min ~= nil and mine.min == nil and mine.kind ~= "flag" then set_min(mine, n.min) end
    else
      runner[#runner + 1] = n
      by_target[n.target] = n
    end
  end
  return own, runner, by_target
end

--- The argparse parser of the declared options (help text grouped as
-- the experiment's and the runner's); it never exits the process.
function M.parser(file, exp, own, runner)
  local parser = argparse("lvae run " .. file)
    :add_help(false)
    :description(exp.description or exp.name and ("experiment " .. exp.name) or nil)
  local function add(list)
    local elements = {}
    for _, o in ipairs(list) do
      local e
      if o.kind == "flag" then
        e = parser:flag(o.flag):description(o.help):target(o.target)
      else
        local help = (o.min and o.min ~= 0) and string.format("%s; at least %s", o.help, tostring(o.min)) or o.help
        e = parser:option(o.flag):description(help):target(o.target)
        if o.argname then e:argname("<" .. o.argname .. ">") end
        if o.default ~= nil then e:default(tostring(o.default)) end
        if o.convert then e:convert(o.convert) end
        if o.choices then e:choices(o.choices) end
      end
      elements[#elements + 1] = e
    end
    return elements
  end
  local own_elements = add(own)
  local runner_elements = add(runner)
  local help = parser:flag("-h --help"):description("show this help message and exit")
  runner_elements[#runner_elements + 1] = help
  if #own_elements > 0 then
    parser:group("Options of " .. (exp.name or file), table.unpack(own_elements))
  end
  parser:group("Runner options", table.unpack(runner_elements))
  return parser
end

--- True when the command line names the option (so --resume may compare it).
local function given(args, o)
  for alias in o.flag:gmatch("%S+") do
    for _, a in ipairs(args) do
      if a == alias or a:sub(1, #alias + 1) == alias .. "=" then return true end
    end
  end
  return false
end

-- run.config reads `nll-samples` as `nll_samples`.
local config_mt = {
  __index = function(t, k)
    if type(k) == "string" and k:find("-", 1, true) then return rawget(t, (k:gsub("%-", "_"))) end
  end,
}


--- run.config from argparse's result: every declared option by target
-- (a flag not given is false), without --resume and --help.
function M.config(parsed, by_target)
  local config = setmetatable({}, config_mt)
  for target, o in pairs(by_target) do
    local v = parsed[target]
    if o.kind == "flag" then v = v or false end
    if target ~= "resume" and target ~= "help" then config[target] = v end
  end
  return config
end

--- The config of a resumed run: its own values (`saved`, from its
-- checkpoint), except for what may change on resume (this command line's
-- `config`). Returns it, or nil and the message when the command line
-- changes an option that must stay.
function M.resumed(saved, config, by_target, args)
  local merged = setmetatable(saved, config_mt)
  for target, o in pairs(by_target) do
    if o.resume == "process" then
      merged[target] = config[target]
    elseif given(args, o) then
      if o.resume == "keep" then
        merged[target] = config[target]
      elseif config[target] ~= merged[target] then
        return nil, string.format("%s cannot change on --resume (the run used %s, not %s); "
          .. "start a new run instead", o.flag:match("%-%-%S+") or o.flag, tostring(merged[target]),
          tostring(config[target]))
      end
    end
  end
  for target, _ in pairs(by_target) do     -- options the run's experiment did not have yet
    if merged[target] == nil and target ~= "resume" then merged[target] = config[target] end
  end
  return merged
end

--- A config as a plain table (for config.json and checkpoints).
function M.plain(config)
  local t = {}
  for k, v in pairs(config) do t[k] = v end
  return t
end

--- The value a raw command line gives `flag` (`--flag v` or `--flag=v`),
-- before any parsing, or nil.
function M.value(args, flag)
  for i, a in ipairs(args) do
    if type(a) ~= "string" then a = "" end
    if a == flag then return args[i + 1] end
    if a:sub(1, #flag + 1) == flag .. "=" then return a:sub(#flag + 2) end
  end
end

--- Whether the raw command line asks for --distributed.
function M.asks_distributed(args)
  for _, a in ipairs(args) do
    if a == "--distributed" then return true end
  end
  return false
end

M.RUNNER_OPTIONS = RUNNER_OPTIONS

return M
