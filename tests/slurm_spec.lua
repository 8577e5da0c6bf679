-- compare.lua's sweeps beyond one process: a Slurm job array on a
-- one-node cluster started here for the test (munged, slurmctld and
-- slurmd on localhost, everything in a temporary folder, all stopped at
-- the end whatever happens), the configurations spread over the ranks of
-- an MPI job, and the errors when sbatch is missing or refuses (a fake
-- sbatch on PATH: no cluster needed).
local runner = require "lvae.run"
local files = require "lvae.files"
local H = require "helpers"

local exists = H.exists

local have_fashion = exists("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")
  or exists("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte")

-- Two configurations of a run that takes about a second.
local CONFIGS = "--configs=--model vae; --model hvae"
local COMMON = "--common=--data fashion --subset 200 --epochs 1 --nll-samples 5 --nll-runs 1 "
  .. "--test-subset 20 --batch 100 --d 4 --K 1"

local read_json = H.read_json

local read_text, write_text = H.read_bytes, H.write_bytes

--- The exit status of a command line and what it printed on stdout.
local function status_and_output(cmdline)
  local p = assert(io.popen(cmdline))
  local text = p:read("a")
  local _, _, code = p:close()
  return code, text
end

local function output_of(cmdline) return select(2, status_and_output(cmdline)) end

--- `./lvae run ARGS` in a process of its own, under a time limit, with
-- `env` (a list of NAME=value) and `prefix` (a command list such as
-- mpirun's) in front. Returns the exit status and everything it printed.
local function lvae_run(args, env, seconds, prefix)
  local argv = { "env" }
  for _, setting in ipairs(env or {}) do argv[#argv + 1] = setting end
  for _, w in ipairs({ "timeout", tostring(seconds) }) do argv[#argv + 1] = w end
  for _, w in ipairs(prefix or {}) do argv[#argv + 1] = w end
  for _, w in ipairs({ "./lvae", "run" }) do argv[#argv + 1] = w end
  for _, a in ipairs(args) do argv[#argv + 1] = a end
  return status_and_output(files.command(argv) .. " 2>&1")
end

--- The one folder in `dir` whose name matches `pattern` (a Lua pattern).
local function only_folder(dir, pattern)
  local found = {}
  for _, name in ipairs(H.list_dir(dir)) do
    if name:match(pattern) then found[#found + 1] = dir .. "/" .. name end
  end
  assert.are.equal(1, #found, string.format("%s: %d entries match %s", dir, #found, pattern))
  return found[1]
end

--- The table's rows (lines starting with "| "), header and rule included.
local function table_rows(markdown)
  local rows = {}
  for line in markdown:gmatch("[^\n]+") do if line:match("^|") then rows[#rows + 1] = line end end
  return rows
end

--- Checks a finished sweep in `dir`: a table with one row per
-- configuration, and each configuration run once, to completion.
local function check_sweep(dir, labels)
  local rows = table_rows(read_text(dir .. "/table.md"))
  assert.are.equal(2 + #labels, #rows, table.concat(rows, "\n"))
  local res = read_json(dir .. "/results.json")
  assert.are.equal(#labels, #res.runs)
  for i, label in ipairs(labels) do
    assert.truthy(rows[2 + i]:find("| " .. label .. " |", 1, true), rows[2 + i])
    local run_dir = only_folder(dir .. "/runs", "^config" .. i .. "%-")
    local sub = read_json(run_dir .. "/results.json")
    assert.are.equal("completed", sub.status, run_dir)
    -- a plain one-process run, not a part of a data-parallel one
    assert.is_nil(sub.processes, run_dir)
    assert.are.equal(run_dir, res.runs[i].dir)
    assert.are.equal(0, res.runs[i].status)
  end
  return res
end

---- a one-node Slurm cluster ----------------------------------------------------------

--- The TCP ports something listens on (from /proc/net/tcp and tcp6).
local function ports_in_use()
  local used = {}
  for _, file in ipairs({ "/proc/net/tcp", "/proc/net/tcp6" }) do
    local f = io.open(file, "r")
    if f then
      for line in f:lines() do
        local port = line:match("^%s*%d+:%s+%x+:(%x+)%s+%x+:%x+%s+0A")
        if port then used[tonumber(port, 16)] = true end
      end
      f:close()
    end
  end
  return used
end

--- Two free ports side by side, for slurmctld and slurmd (not Slurm's
-- defaults, so that a cluster already on this machine is left alone).
local function free_ports()
  local used = ports_in_use()
  math.randomseed(os.time(), tonumber(tostring({}):match("0x(%x+)"), 16) or 0)
  for _ = 1, 100 do
    local port = math.random(20000, 39998)
    if not used[port] and not used[port + 1] then return port, port + 1 end
  end
  error("no two free TCP ports side by side between 20000 and 39999")
end

local function pid_in(path)
  local f = io.open(path, "r")
  if not f then return nil end
  local pid = tonumber(f:read("a"):match("%d+"))
  f:close()
  return pid
end

local function alive(pid) return os.execute("kill -0 " .. pid .. " 2>/dev/null") == true end

--- Waits until check() is true, up to `seconds`; returns whether it was.
local function wait_for(check, seconds)
  local deadline = os.time() + seconds
  while os.time() <= deadline do
    if check() then return true end
    os.execute("sleep 0.2")
  end
  return check()
end

local function slurm_conf(c)
  local nproc = tonumber(output_of("nproc"):match("%d+")) or 1
  return table.concat({
    "ClusterName=lvaetest",
    "SlurmctldHost=localhost",
    "SlurmctldPort=" .. c.ctld_port,
    "SlurmdPort=" .. c.d_port,
    "AuthType=auth/munge",
    "CredType=cred/munge",
    "AuthInfo=socket=" .. c.dir .. "/munge.sock",
    "SlurmUser=root",
    "SlurmdUser=root",
    "StateSaveLocation=" .. c.dir .. "/state",
    "SlurmdSpoolDir=" .. c.dir .. "/spool",
    "SlurmctldPidFile=" .. c.dir .. "/slurmctld.pid",
    "SlurmdPidFile=" .. c.dir .. "/slurmd.pid",
    "SlurmctldLogFile=" .. c.dir .. "/slurmctld.log",
    "SlurmdLogFile=" .. c.dir .. "/slurmd.log",
    "ProctrackType=proctrack/linuxproc",
    "TaskPlugin=task/none",
    "SelectType=select/cons_tres",
    "SelectTypeParameters=CR_Core",
    "SchedulerType=sched/backfill",
    "MpiDefault=none",
    "ReturnToService=2",
    -- fast timers: a node answers, a job starts and ends within seconds
    "SlurmctldTimeout=10",
    "SlurmdTimeout=10",
    "MessageTimeout=5",
    "KillWait=2",
    "InactiveLimit=0",
    string.format("NodeName=localhost CPUs=%d RealMemory=100 State=UNKNOWN", nproc),
    "PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP",
  }, "\n") .. "\n"
end

--- Starts munged (its own key and socket in c.dir: the machine's munge is
-- not touched), slurmctld and slurmd, and waits until the node is idle.
local function start_cluster(c)
  c.ctld_port, c.d_port = free_ports()
  c.conf = c.dir .. "/slurm.conf"
  -- munged wants its socket's folder reachable by every user
  assert(os.execute("chmod 755 " .. files.quote(c.dir)))
  assert(os.execute("mkdir -p " .. files.quote(c.dir .. "/state") .. " " .. files.quote(c.dir .. "/spool")))
  local random = assert(io.open("/dev/urandom", "rb"))
  write_text(c.dir .. "/munge.key", random:read(128))
  random:close()
  assert(os.execute("chmod 600 " .. files.quote(c.dir .. "/munge.key")))
  local munged = files.command({ "munged", "--socket=" .. c.dir .. "/munge.sock", "--key-file=" .. c.dir .. "/munge.key",
    "--log-file=" .. c.dir .. "/munged.log", "--pid-file=" .. c.dir .. "/munged.pid",
    "--seed-file=" .. c.dir .. "/munged.seed" })
  assert(os.execute(munged), "munged did not start; see " .. c.dir .. "/munged.log")
  write_text(c.conf, slurm_conf(c))
  assert(os.execute(files.command({ "slurmctld", "-f", c.conf })), "slurmctld did not start")
  assert(os.execute(files.command({ "slurmd", "-f", c.conf, "-N", "localhost" })), "slurmd did not start")
  local sinfo = files.command({ "env", "SLURM_CONF=" .. c.conf, "sinfo", "-h", "-n", "localhost", "-o", "%T" })
  local state
  local idle = wait_for(function()
    state = output_of(sinfo .. " 2>&1")
    return state:match("^idle") ~= nil
  end, 30)
  assert(idle, "the node is not idle after 30 s (sinfo: " .. tostring(state) .. "); see " .. c.dir)
end

--- Cancels what is left of the cluster's jobs and stops the daemons this
-- test started (by the ids in their pid files), munged last.
local function stop_cluster(c)
  local survivors = {}
  if c.conf then
    local env = "SLURM_CONF=" .. c.conf
    os.execute(files.command({ "env", env, "scancel", "--user=" .. output_of("id -un"):match("%S+") })
      .. " >/dev/null 2>&1")
    wait_for(function()
      return not output_of(files.command({ "env", env, "squeue", "-h" }) .. " 2>/dev/null"):match("%S")
    end, 10)
  end
  for _, daemon in ipairs({ "slurmd", "slurmctld", "munged" }) do
    local pid = pid_in(c.dir .. "/" .. daemon .. ".pid")
    if pid and alive(pid) then
      os.execute("kill " .. pid)
      if not wait_for(function() return not alive(pid) end, 10) then
        os.execute("kill -9 " .. pid)
        if not wait_for(function() return not alive(pid) end, 5) then survivors[#survivors + 1] = daemon end
      end
    end
  end
  os.execute("rm -rf " .. files.quote(c.dir))
  assert(#survivors == 0, "still running after SIGKILL: " .. table.concat(survivors, ", "))
end

local function is_root() return output_of("id -u"):match("^%s*0%s*$") ~= nil end

describe("compare.lua on Slurm", function()
  it("runs the configurations as a job array on a one-node cluster and tabulates them", function()
    if not is_root() then return pending("starting slurmctld and slurmd needs root (id -u is not 0)") end
    for _, daemon in ipairs({ "munged", "slurmctld", "slurmd", "sbatch", "sinfo" }) do
      if not files.found(daemon) then return pending(daemon .. " is not installed (scripts/setup.sh)") end
    end
    if not have_fashion then return pending("dataset-fashion-mnist is not installed (scripts/setup.sh)") end
    local cluster = { dir = H.make_dir() }
    local out = H.make_dir()
    finally(function()
      os.execute("rm -rf " .. files.quote(out))
      stop_cluster(cluster)
    end)
    start_cluster(cluster)

    local status, text = lvae_run({ "scripts/compare.lua", CONFIGS, COMMON, "--slurm", "--slurm-wait",
                                    "--out", out }, { "SLURM_CONF=" .. cluster.conf }, 80)
    assert.are.equal(0, status, text)
    local dir = only_folder(out, "^compare%-")
    local res = check_sweep(dir, { "--model vae", "--model hvae" })
    -- the job: its id, its script, and the command that tabulates it again
    local job = res.slurm
    assert.truthy(tostring(job.job_id):match("^%d+$"), tostring(job.job_id))
    assert.is_true(job.waited)
    assert.are.equal(0, job.sbatch_status)
    assert.are.equal(dir .. "/sweep.sbatch", job.script)
    assert.truthy(read_text(job.script):find("#SBATCH --array=0-1", 1, true))
    assert.truthy(text:find("submitted Slurm job " .. job.job_id, 1, true), text)
    assert.truthy(text:find(job.script, 1, true), text)
    assert.truthy(text:find(job.gather, 1, true), text)
    for i = 0, 1 do assert.is_true(exists(string.format("%s/slurm-%s_%d.out", dir, job.job_id, i))) end
    -- each task ran with the threads of its one core
    assert.are.equal(1, read_json(only_folder(dir .. "/runs", "^config1%-") .. "/config.json").threads)

    -- the printed --gather command, run as printed, tabulates the same runs
    local gathered_out = H.make_dir()
    local gather_status, gather_text = status_and_output(job.gather .. " --out " .. files.quote(gathered_out) .. " 2>&1")
    assert.are.equal(0, gather_status, gather_text)
    local gathered = table_rows(read_text(only_folder(gathered_out, "^compare%-") .. "/table.md"))
    os.execute("rm -rf " .. files.quote(gathered_out))
    assert.are.equal(4, #gathered)
    assert.truthy(gathered[3]:find("^| %-%-model vae |"), gathered[3])
    assert.truthy(gathered[4]:find("^| %-%-model hvae |"), gathered[4])
  end)
end)

--- A folder of commands for PATH: links to the named ones found on this
-- machine's PATH, and `sbatch` as given (a shell script) when given.
local function bin_folder(links, fake_sbatch)
  local dir = H.make_dir()
  for _, name in ipairs(links) do
    local path = output_of("command -v " .. files.quote(name)):match("^%s*(.-)%s*$")
    assert(path ~= "", name .. " is not on PATH")
    assert(os.execute(files.command({ "ln", "-s", path, dir .. "/" .. name })))
  end
  if fake_sbatch then
    write_text(dir .. "/sbatch", "#!/bin/sh\n" .. fake_sbatch)
    assert(os.execute("chmod +x " .. files.quote(dir .. "/sbatch")))
  end
  return dir
end

describe("compare.lua --slurm without a cluster", function()
  local out
  before_each(function() out = H.make_dir() end)
  after_each(function() os.execute("rm -rf " .. files.quote(out)) end)

  it("writes the job array's script, submits it and prints the job, the script and the --gather command", function()
    local bin = bin_folder({}, 'printf "%s\\n" "$@" > "$(dirname "$0")/arguments"\necho 4242\n')
    finally(function() os.execute("rm -rf " .. files.quote(bin)) end)
    local status, text = lvae_run({ "scripts/compare.lua", CONFIGS, COMMON, "--slurm", "--slurm-partition", "debug",
                                    "--slurm-time", "0:05:00", "--slurm-cpus", "2", "--out", out },
                                  { "PATH=" .. bin .. ":" .. os.getenv("PATH") }, 30)
    assert.are.equal(0, status, text)
    local dir = only_folder(out, "^compare%-")
    local job = read_json(dir .. "/results.json").slurm
    assert.are.equal("4242", job.job_id)
    assert.is_false(job.waited)
    assert.are.equal(dir .. "/sweep.sbatch", job.script)
    for _, said in ipairs({ "submitted Slurm job 4242: 2 array tasks", job.script, job.gather }) do
      assert.truthy(text:find(said, 1, true), text)
    end
    -- --parsable, no --wait, the script
    assert.are.equal("--parsable\n" .. job.script .. "\n", read_text(bin .. "/arguments"))
    local script = read_text(job.script)
    for _, line in ipairs({ "#SBATCH --array=0-1", "#SBATCH --cpus-per-task=2", "#SBATCH --partition=debug",
                            "#SBATCH --time=0:05:00", "#SBATCH --output=" .. dir .. "/slurm-%A_%a.out",
                            "#SBATCH --chdir=" .. files.cwd(), "export OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=2" }) do
      assert.truthy(script:find("\n" .. line .. "\n", 1, true), line .. " is not in\n" .. script)
    end
    -- task k runs configuration k + 1 as the runs here do, every path from the root
    local launcher = files.cwd() .. "/lvae"
    local experiment = files.cwd() .. "/scripts/images.lua"
    for k, model in ipairs({ "vae", "hvae" }) do
      local command = files.command({ launcher, "run", experiment, "--data", "fashion", "--subset", "200", "--epochs",
        "1", "--nll-samples", "5", "--nll-runs", "1", "--test-subset", "20", "--batch", "100", "--d", "4", "--K", "1",
        "--model", model, "--out", dir .. "/runs", "--seed", "1", "--name", "config" .. k })
      assert.truthy(script:find(string.format("\n  %d) exec %s ;;\n", k - 1, command), 1, true), script)
    end
    assert.truthy(job.gather:find(files.quote("--gather=" .. dir .. "/runs/config1-*; " .. dir .. "/runs/config2-*"),
      1, true), job.gather)
    -- a task the array does not have says so
    local bad_status, bad_text = status_and_output("SLURM_ARRAY_TASK_ID=7 sh " .. files.quote(job.script) .. " 2>&1")
    assert.are.equal(1, bad_status)
    assert.truthy(bad_text:find("no command for array task '7' (tasks are 0 to 1)", 1, true), bad_text)
  end)

  it("says so when sbatch is not on PATH", function()
    -- a PATH with what this test, ./lvae and the runner use, and no sbatch
    local bin = bin_folder({ "timeout", "lua5.4", "dirname", "mkdir", "ls", "git" })
    finally(function() os.execute("rm -rf " .. files.quote(bin)) end)
    local status, text = lvae_run({ "scripts/compare.lua", CONFIGS, "--slurm", "--out", out }, { "PATH=" .. bin }, 30)
    assert.are.equal(1, status, text)
    assert.truthy(text:find("sbatch is not on PATH: submitting needs Slurm's client commands", 1, true), text)
    local why = read_json(only_folder(out, "^compare%-") .. "/results.json").error
    assert.truthy(why:find("sbatch is not on PATH", 1, true), why)
  end)

  it("passes on what sbatch said when it refuses the job", function()
    local bin = bin_folder({}, 'echo "sbatch: error: Batch job submission failed: Invalid partition name specified" >&2\n'
      .. "exit 1\n")
    finally(function() os.execute("rm -rf " .. files.quote(bin)) end)
    local status, text = lvae_run({ "scripts/compare.lua", CONFIGS, "--slurm", "--slurm-partition", "nosuch",
                                    "--out", out }, { "PATH=" .. bin .. ":" .. os.getenv("PATH") }, 30)
    assert.are.equal(1, status, text)
    local dir = only_folder(out, "^compare%-")
    local expected = "sbatch refused " .. dir .. "/sweep.sbatch (exit status 1): sbatch: error: Batch job submission "
      .. "failed: Invalid partition name specified"
    assert.truthy(text:find(expected, 1, true), text)
  end)

  it("refuses --slurm-* options without --slurm, --slurm with --gather, and values it cannot pass on", function()
    local quiet = { stdout = io.open("/dev/null", "w"), stderr = io.open("/dev/null", "w") }
    local function refused(args, message, where)
      local full = { "scripts/compare.lua", "--out", where or out, "--quiet" }
      for _, a in ipairs(args) do full[#full + 1] = a end
      local status, run = runner.main(full, quiet)
      assert.are.equal(1, status)
      local why = type(run) == "table" and read_json(run.dir .. "/results.json").error or run
      assert.truthy(why:find(message, 1, true), why)
    end
    refused({ "--slurm-wait" }, "--slurm-wait goes with --slurm")
    refused({ "--slurm-cpus", "4" }, "--slurm-cpus goes with --slurm")
    refused({ "--slurm", "--gather=" .. out }, "--gather tabulates finished runs; it does not go with --slurm")
    refused({ "--slurm", "--slurm-time", "5 min" }, "option '--slurm-time' takes minutes, H:MM:SS or D-HH:MM:SS (got '5 min')")
    refused({ "--slurm", "--slurm-partition", "a b" }, "option '--slurm-partition' takes a partition name (got 'a b')")
    refused({ "--slurm", "--slurm-cpus", "0" }, "option '--slurm-cpus' must be at least 1 (got '0')")
    refused({ "--gather=" .. out .. "/nothing-*" }, "--gather: no run folder matches " .. out .. "/nothing-*")
    refused({ "--slurm", "--experiment", out .. "/nothing.lua" }, "--experiment: cannot open " .. out .. "/nothing.lua")
    -- sbatch would read only the part of an #SBATCH line before a space
    refused({ "--slurm" }, "has a space)", out .. "/with space")
  end)
end)

describe("compare.lua under mpirun", function()
  it("spreads the configurations over the ranks, each run once, and rank 0 tabulates them", function()
    if not files.found("mpirun") or not require("lvae").mpi.compiled() then
      return pending("needs Open MPI: mpirun, and lvae built with it (libopenmpi-dev, then make)")
    end
    if not have_fashion then return pending("dataset-fashion-mnist is not installed (scripts/setup.sh)") end
    local out = H.make_dir()
    finally(function() os.execute("rm -rf " .. files.quote(out)) end)
    local status, text = lvae_run({ "scripts/compare.lua", CONFIGS, COMMON, "--out", out }, {}, 60,
                                  { "mpirun", "--allow-run-as-root", "--oversubscribe", "-np", "2" })
    assert.are.equal(0, status, text)
    -- one run folder, rank 0's: the other rank wrote only its configuration's
    local dir = only_folder(out, "")
    check_sweep(dir, { "--model vae", "--model hvae" })
    assert.truthy(text:find("[2/2] rank 1 of 2: --model hvae", 1, true), text)
  end)
end)
