--- lvae.slurm: a list of commands as one Slurm job array -- the sbatch
-- script, in which array task k runs command k + 1 and nothing else, and
-- its submission with sbatch.
--
--   local slurm = require "lvae.slurm"
--   local text = slurm.script({ { "/abs/lvae", "run", ... }, ... },
--     { job_name = "compare", cpus = 1, log_dir = "/abs/dir", chdir = "/abs/cwd" })
--   local job, status = slurm.submit("/abs/dir/sweep.sbatch", { wait = true })
--
-- A task's threads (OpenMP, OpenBLAS) are the cores it asked for: Slurm
-- gives a task --cpus-per-task cores, and more threads than that would
-- only take turns on them. It does not watch, cancel or account for jobs:
-- sbatch --wait is the one way it waits.

local files = require "lvae.files"

local M = {}

--- The value of an #SBATCH line: sbatch reads such a line as words, so a
-- value with a space (or none at all) would not reach it whole.
local function directive_value(what, v)
  v = tostring(v)
  if v == "" or v:find("%s") then
    error(string.format("slurm: the %s %q cannot go on an #SBATCH line (it is empty or has a space)", what, v), 0)
  end
  return v
end

--- The sbatch script of a job array running `commands` (each a list of
-- words), one per array task. o: job_name, cpus (per task), log_dir (the
-- folder of each task's output, slurm-<job>_<task>.out), chdir (the tasks'
-- working folder), and optionally partition and time ("" or nil: the
-- cluster's defaults).
function M.script(commands, o)
  if #commands == 0 then error("slurm: no commands to run", 0) end
  if math.type(o.cpus) ~= "integer" or o.cpus < 1 then
    error(string.format("slurm: cpus per task must be a whole number, at least 1 (got %s)", tostring(o.cpus)), 0)
  end
  if tostring(o.log_dir):find("%", 1, true) then
    -- sbatch reads %A, %a, %j ... in an output path as the job's numbers
    error(string.format("slurm: the log folder %s has a %%, which sbatch would read as a job number", o.log_dir), 0)
  end
  local lines = {
    "#!/bin/sh",
    string.format("# A job array of %d tasks: task k runs command k + 1 below, and nothing else.", #commands),
    "#SBATCH --job-name=" .. directive_value("job name", o.job_name),
    string.format("#SBATCH --array=0-%d", #commands - 1),
    "#SBATCH --ntasks=1",
    string.format("#SBATCH --cpus-per-task=%d", o.cpus),
    "#SBATCH --output=" .. directive_value("log folder", o.log_dir) .. "/slurm-%A_%a.out",
    "#SBATCH --chdir=" .. directive_value("working folder", o.chdir),
  }
  if o.partition and o.partition ~= "" then
    lines[#lines + 1] = "#SBATCH --partition=" .. directive_value("partition", o.partition)
  end
  if o.time and o.time ~= "" then lines[#lines + 1] = "#SBATCH --time=" .. directive_value("time limit", o.time) end
  lines[#lines + 1] = ""
  lines[#lines + 1] = "# as many threads as the task has cores"
  lines[#lines + 1] = string.format("export OMP_NUM_THREADS=%d OPENBLAS_NUM_THREADS=%d", o.cpus, o.cpus)
  lines[#lines + 1] = 'case "$SLURM_ARRAY_TASK_ID" in'
  for k, command in ipairs(commands) do
    lines[#lines + 1] = string.format("  %d) exec %s ;;", k - 1, files.command(command))
  end
  lines[#lines + 1] = string.format('  *) echo "no command for array task \'$SLURM_ARRAY_TASK_ID\' (tasks are 0 to %d)" >&2; '
    .. "exit 1 ;;", #commands - 1)
  lines[#lines + 1] = "esac"
  return table.concat(lines, "\n") .. "\n"
end

--- Submits the script at `path` with sbatch. o.wait: `sbatch --wait`,
-- which returns when every task has ended; o.submitted(job_id), when
-- given, is called as soon as sbatch names the job (before the wait).
-- Returns the job id, sbatch's exit status (with --wait, non-zero when a
-- task failed) and the other lines it printed. Raises, with what sbatch
-- said, when it is missing or names no job.
function M.submit(path, o)
  o = o or {}
  if not files.found("sbatch") then
    error("sbatch is not on PATH: submitting needs Slurm's client commands (Debian's slurm-client) "
      .. "on a machine of the cluster", 0)
  end
  local argv = { "sbatch", "--parsable" }
  if o.wait then argv[#argv + 1] = "--wait" end
  argv[#argv + 1] = path
  local p = assert(io.popen(files.command(argv) .. " 2>&1"))
  local job, said = nil, {}
  for line in p:lines() do
    -- --parsable prints the job id alone, or "id;cluster"
    local id = not job and line:match("^(%d+);?%S*$")
    if id then
      job = id
      if o.submitted then o.submitted(job) end
    elseif line:match("%S") then
      said[#said + 1] = line
    end
  end
  local _, how, code = p:close()
  local status = how == "signal" and 128 + code or code
  if not job then
    error(string.format("sbatch refused %s (exit status %d): %s", path, status,
      #said > 0 and table.concat(said, " / ") or "it printed nothing"), 0)
  end
  return job, status, said
end

return M
