--- lvae.sweep: what compare.lua's three ways of running a list of
-- configurations share -- in its own process, one Slurm array task each,
-- or spread over MPI ranks. Each configuration K is one run of the
-- experiment, named configK, in the sweep's runs/ folder, made by the same
-- command line whichever way runs it:
--
--   <lvae> run <experiment> <common> <config> --out <runs> --seed S --name configK
--
-- with every path from the root, so that it means the same in a batch job
-- or a child process. It also finds a configuration's run folder
-- afterwards (the runner adds a timestamp to the name) and runs one
-- configuration as a plain one-process child of an MPI rank. It does not
-- tabulate (compare.lua) or talk to Slurm (lvae.slurm).

local files = require "lvae.files"

local M = {}

--- The configurations of a list separated by ';', trimmed (blank ones
-- dropped).
function M.configs(text)
  local list = {}
  for part in tostring(text):gmatch("[^;]+") do
    if part:match("%S") then list[#list + 1] = part:match("^%s*(.-)%s*$") end
  end
  return list
end

local function words(text, into)
  for w in tostring(text or ""):gmatch("%S+") do into[#into + 1] = w end
  return into
end

--- The runner's arguments for configuration `index` of a sweep:
-- s = {experiment, common, config, runs, seed, index}. The experiment
-- file comes first, as runner.main wants.
function M.arguments(s)
  local args = words(s.config, words(s.common, { files.absolute(s.experiment) }))
  for _, w in ipairs({ "--out", files.absolute(s.runs), "--seed", tostring(s.seed),
                       "--name", "config" .. s.index }) do
    args[#args + 1] = w
  end
  return args
end

--- The `lvae` launcher of this checkout (beside lua/, where lvae.run was
-- found), from the root.
function M.launcher()
  local module = package.searchpath("lvae.run", package.path)
  local root = module and files.absolute(module):match("^(.*)/lua/lvae/run%.lua$")
  local launcher = root and root .. "/lvae"
  if not launcher or not files.readable(launcher) then
    error(string.format("cannot find the lvae launcher beside lua/lvae/run.lua (found the module at %s)",
      tostring(module)), 0)
  end
  return launcher
end

--- The command line, as a list, that runs the runner's arguments `args`
-- in a process of its own.
function M.command(args)
  return { M.launcher(), "run", table.unpack(args) }
end

--- A glob's characters as a Lua pattern: `*` any run of characters, `?`
-- one, everything else itself.
local function glob_pattern(glob)
  return "^" .. glob:gsub("[%^%$%(%)%%%.%[%]%+%-]", "%%%0"):gsub("%*", ".*"):gsub("%?", ".") .. "$"
end

--- The folders a path names: itself, or, when its last part has a `*` or
-- a `?`, every entry of its folder that matches, sorted (none: an empty
-- list).
function M.folders(path)
  local parent, last = path:match("^(.*)/([^/]*)$")
  if not parent then parent, last = ".", path end
  if not last:find("[%*%?]") then return { path } end
  if parent:find("[%*%?]") then
    error(string.format("%s: only the last part of a path may have * or ?", path), 0)
  end
  local pattern, found = glob_pattern(last), {}
  for _, name in ipairs(files.list(parent == "" and "/" or parent) or {}) do
    if name:match(pattern) then found[#found + 1] = parent .. "/" .. name end
  end
  return found
end

--- Where configuration `index`'s run folders land in `runs`, as a pattern
-- M.folders expands (configK-<timestamp>[-n]).
function M.folder_pattern(runs, index)
  return string.format("%s/config%d-*", files.absolute(runs), index)
end

--- Configuration `index`'s newest run folder in `runs` (a requeued Slurm
-- task makes a second one), or nil when it made none.
function M.folder_of(runs, index)
  local found = M.folders(M.folder_pattern(runs, index))
  return found[#found]
end

-- How mpirun (Open MPI, PMIx) tells a process that it is one rank of a
-- job: variables with these prefixes.
local MPI_PREFIXES = { "OMPI_", "PMIX_", "PMI_", "OPAL_", "PRTE_", "ORTE_" }

--- The names of this process's variables that say it is an MPI rank.
local function mpi_variables()
  local f = io.open("/proc/self/environ", "rb")
  if not f then return {} end
  local names = {}
  for entry in f:read("a"):gmatch("[^\0]+") do
    local name = entry:match("^([^=]+)=")
    for _, prefix in ipairs(MPI_PREFIXES) do
      if name and name:sub(1, #prefix) == prefix then names[#names + 1] = name end
    end
  end
  f:close()
  return names
end

--- Runs the runner's arguments `args` as a child process that is not part
-- of this process's MPI job; returns its exit status. `quiet`: its
-- standard output goes to /dev/null (errors still show). A rank of a
-- sweep runs whole configurations: with mpirun's variables in its
-- environment the child would take itself for one rank of a data-parallel
-- run of its configuration (lv.mpi.launched() reads them, and the runner
-- then joins the job), try to start MPI as a rank the job already has and
-- fail or hang; with them removed (`env -u`) it is a plain one-process
-- run.
function M.run_outside_mpi(args, quiet)
  local argv = { "env" }
  for _, name in ipairs(mpi_variables()) do
    argv[#argv + 1] = "-u"
    argv[#argv + 1] = name
  end
  for _, w in ipairs(M.command(args)) do argv[#argv + 1] = w end
  return files.status(files.command(argv) .. (quiet and " >/dev/null" or ""))
end

return M
