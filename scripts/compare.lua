--- Runs a list of configurations of an experiment and gathers their
-- results.json into one markdown table and a plain-language reading of it
-- (also the `make demo` job).
--
--   ./lvae run scripts/compare.lua --configs="--model vae; --model hvae --K 5; --model qsl --K 5" \
--                                  --common="--epochs 20 --subset 10000"
--   (values that begin with "--" follow an "=", as the argument parser wants)
--   ./lvae run scripts/compare.lua --demo
--
-- Each configuration K is one run of --experiment (scripts/images.lua by
-- default) with --common options in front, named configK, in the runs/
-- folder of this run's own (lvae.sweep makes the command line). Three ways
-- to run them:
--
-- * here, one after another, in this process (the default);
-- * --slurm: as a Slurm job array, one task per configuration. The sbatch
--   script is written to this run's folder (sweep.sbatch, each task's
--   output beside it) and submitted; the job id, the script and the
--   --gather command that tabulates the runs once the array has ended are
--   printed and kept in results.json (`slurm`). --slurm-wait waits for the
--   array (sbatch --wait) and tabulates at once, as a run here would;
-- * under `mpirun -np N ./lvae run scripts/compare.lua ...`: rank r runs
--   configurations r+1, r+1+N, ... as child processes outside the MPI job
--   (each a plain one-process run: lvae.sweep.run_outside_mpi says why),
--   and rank 0, whose run folder is the sweep's, tabulates them all.
--
-- --gather="DIR; DIR" tabulates finished run folders instead (runs made
-- one by one or in parallel; a DIR whose last part has * or ? stands for
-- every folder it matches), each row named by the options its command
-- line does not share with the others. The reading (lvae.reading) pairs
-- the models' per-image NLLs when they met the same test images.
--
-- --demo is the main job on its defaults, a few minutes on 2 cores: the
-- first 500 Fashion-MNIST test images binarised once into one fixed file
-- (test-fixed.npy, its SHA-256 printed: the file another implementation
-- evaluates on), then the VAE, HVAE and the quasi-symplectic flow with
-- matched and with unit initial temperature trained briefly on 10,000
-- training images (mlp) and evaluated on that file, and the toy 2-D
-- posterior of leapfrog and qsl side by side (toy2d-posterior.png).

local runner = require "lvae.run"
local reading = require "lvae.reading"
local files = require "lvae.files"
local slurm = require "lvae.slurm"
local sweep = require "lvae.sweep"
local lv = require "lvae"

local DEMO_COMMON = "--data fashion --arch mlp --d 32 --subset 10000 --epochs 5 "
  .. "--nll-samples 200 --nll-runs 2 --patience 0"
local DEMO_CONFIGS = "--model vae; --model hvae --K 5 --tempering fixed; "
  .. "--model qsl --K 5 --init-temperature matched; --model qsl --K 5 --init-temperature unit"
--- The demo's fixed test set: the first DEMO_TEST_IMAGES test images,
-- in DEMO_TEST_FILE in the run folder.
local DEMO_TEST_IMAGES = 500
local DEMO_TEST_FILE = "test-fixed.npy"

local read_json = files.read_json    -- nil when the file is missing or not JSON

local function fmt(v, pattern)
  if type(v) ~= "number" or v ~= v then return "–" end
  return string.format(pattern or "%.2f", v)
end

--- The demo's fixed test set, written once into the run folder.
local function write_demo_test_set(run, c)
  local experiment = dofile(c.experiment)
  if type(experiment) ~= "table" or type(experiment.test_set) ~= "function" then
    error(string.format("--demo: %s has no test_set function to write a fixed test set with", c.experiment), 0)
  end
  local set, source = experiment.test_set({ data = "fashion", ["test-subset"] = DEMO_TEST_IMAGES })
  local path = run.dir .. "/" .. DEMO_TEST_FILE
  local sha = lv.data.save_binarized(path, set)
  run:print(string.format("fixed test set: %d Fashion-MNIST test images binarised with seed %d -> %s "
    .. "(SHA-256 %s)", set.x:size(1), source.binarized_with_seed, path, sha))
end

--- The sweep's run folder (from the root), its configurations and the
-- options they share. `writer`: this process writes the demo's fixed test
-- set into the folder (one process of an MPI job does).
local function start_sweep(run, c, writer)
  local dir = files.absolute(run.dir)
  if not c.demo then return dir, sweep.configs(c.configs), c.common end
  if writer then write_demo_test_set(run, c) end
  return dir, sweep.configs(DEMO_CONFIGS), DEMO_COMMON .. " --test-file " .. dir .. "/" .. DEMO_TEST_FILE
end

--- The runner's arguments of configuration i of the sweep in dir.
local function arguments_of(c, seed, dir, common, config, i)
  return sweep.arguments({ experiment = c.experiment, common = common, config = config,
                           runs = dir .. "/runs", seed = seed, index = i })
end

-- A run's statuses that mean it finished (lvae.run's exit status 0).
local FINISHED = { completed = true, early_stopped = true, max_steps = true }

--- A row of the table: a configuration, its run folder (nil when it made
-- none) and results, and its exit status (else read from its results).
local function row_of(config, dir, status)
  local results = dir and read_json(dir .. "/results.json") or nil
  if status == nil then status = results and FINISHED[results.status] and 0 or 1 end
  return { config = config, dir = dir, results = results, status = status }
end

--- Runs each configuration as a run of c.experiment, here, one after another.
local function run_here(run, c)
  local dir, configs, common = start_sweep(run, c, true)
  local rows = {}
  for i, config in ipairs(configs) do
    run:print(string.format("[%d/%d] %s", i, #configs, config))
    local status, sub = runner.main(arguments_of(c, run.seed, dir, common, config, i))
    rows[#rows + 1] = row_of(config, type(sub) == "table" and sub.dir or nil, status)
  end
  return rows
end

--- Under `mpirun -np N`: rank r runs configurations r+1, r+1+N, ... and
-- rank 0 tabulates them all. The runner has joined the ranks in one run
-- (lvae.run): run.dir is rank 0's folder on every rank, only rank 0 writes
-- in it and only rank 0 prints, so every configuration lands under it,
-- whichever rank runs it. Returns the rows on rank 0, nil elsewhere.
local function run_across_ranks(run, c)
  local rank, size = lv.mpi.rank(), lv.mpi.size()
  local dir, configs, common = start_sweep(run, c, rank == 0)
  lv.mpi.barrier()            -- the demo's test set is written before any configuration reads it
  for i, config in ipairs(configs) do
    run:print(string.format("[%d/%d] rank %d of %d: %s", i, #configs, (i - 1) % size, size, config))
  end
  local mine = {}
  for i = rank + 1, #configs, size do
    -- rank 0's runs show on the terminal; the others' print nothing but
    -- errors, as the runner's other ranks do (messages.log keeps the rest)
    local status = sweep.run_outside_mpi(arguments_of(c, run.seed, dir, common, configs[i], i), rank > 0)
    mine[#mine + 1] = string.format("%d=%d", i, status)
  end
  -- every rank's exit statuses: this returns once all ranks have run
  -- their configurations, so rank 0 finds every run folder finished
  local statuses = {}
  for _, part in ipairs(lv.mpi.allgather_string(table.concat(mine, ","))) do
    for i, status in part:gmatch("(%d+)=(%d+)") do statuses[tonumber(i)] = tonumber(status) end
  end
  if rank ~= 0 then return nil end
  local rows = {}
  for i, config in ipairs(configs) do
    rows[i] = row_of(config, sweep.folder_of(dir .. "/runs", i), statuses[i])
  end
  return rows
end

--- Submits the configurations as a Slurm job array (lvae.slurm), one task
-- each; with --slurm-wait, waits for it to end. Returns what results.json
-- keeps of the job, and with --slurm-wait the rows.
local function submit_to_slurm(run, c)
  local dir, configs, common = start_sweep(run, c, true)
  local commands, patterns = {}, {}
  for i, config in ipairs(configs) do
    commands[i] = sweep.command(arguments_of(c, run.seed, dir, common, config, i))
    patterns[i] = sweep.folder_pattern(dir .. "/runs", i)
  end
  local job = {
    script = dir .. "/sweep.sbatch",
    gather = files.command({ sweep.launcher(), "run", files.absolute(run.file),
                             "--gather=" .. table.concat(patterns, "; ") }),
    waited = c.slurm_wait,
  }
  files.write_atomic(job.script, slurm.script(commands, {
    job_name = c.name or "compare", cpus = c.slurm_cpus, partition = c.slurm_partition,
    time = c.slurm_time, log_dir = dir, chdir = files.cwd() }))
  local status, said
  job.job_id, status, said = slurm.submit(job.script, { wait = c.slurm_wait, submitted = function(id)
    run:print(string.format("submitted Slurm job %s: %d array tasks, one per configuration", id, #configs))
    run:print("script: " .. job.script)
    run:print("tabulate the runs once the array has ended:\n  " .. job.gather)
    if c.slurm_wait then run:print("waiting for it to end (sbatch --wait) ...") end
  end })
  for _, line in ipairs(said) do run:print(line) end
  if not c.slurm_wait then return job end
  job.sbatch_status = status
  if status ~= 0 then
    run:print(string.format("sbatch --wait ended with status %d: a task failed (task k runs configuration k + 1; "
      .. "its output is %s/slurm-%s_k.out)", status, dir, job.job_id))
  end
  local rows = {}
  for i, config in ipairs(configs) do rows[i] = row_of(config, sweep.folder_of(dir .. "/runs", i)) end
  return job, rows
end

-- Options that say where a run went, not what it was.
local PLACE_OPTIONS = { ["--out"] = true, ["--name"] = true, ["--resume"] = true }

--- Rows from finished run folders (runs made separately, e.g. in
-- parallel). Each is labelled by the options of its command line that
-- not every gathered run shares.
local function gather(run, list)
  local dirs = {}
  for item in tostring(list):gmatch("[^;]+") do
    item = item:match("^%s*(.-)/*%s*$")
    local found = sweep.folders(item)
    if #found == 0 then error(string.format("--gather: no run folder matches %s", item), 0) end
    for _, dir in ipairs(found) do dirs[#dirs + 1] = dir end
  end
  local runs = {}
  for _, dir in ipairs(dirs) do
    local config = read_json(dir .. "/config.json")
    if not config then error(string.format("--gather: %s/config.json is missing or not JSON", dir), 0) end
    local pairs_, i = {}, 1
    local argv = config.argv or {}
    while i <= #argv do
      local flag, value = argv[i], argv[i + 1]
      if value ~= nil and not tostring(value):match("^%-%-") then i = i + 2 else value, i = nil, i + 1 end
      if not PLACE_OPTIONS[flag] then pairs_[#pairs_ + 1] = value and (flag .. " " .. value) or flag end
    end
    runs[#runs + 1] = { dir = dir, pairs = pairs_ }
  end
  local count = {}
  for _, r in ipairs(runs) do
    for _, p in ipairs(r.pairs) do count[p] = (count[p] or 0) + 1 end
  end
  local rows = {}
  for _, r in ipairs(runs) do
    local own = {}
    for _, p in ipairs(r.pairs) do if count[p] < #runs then own[#own + 1] = p end end
    local row = row_of(#own > 0 and table.concat(own, " ") or r.dir, r.dir)
    rows[#rows + 1] = row
    run:print(string.format("%s: %s", r.dir, row.results and row.results.status or "no results.json"))
  end
  return rows
end

--- --slurm-time: one of Slurm's time formats (minutes, M:S, H:M:S, D-H,
-- D-H:M, D-H:M:S; "" for the partition's limit), checked before any run
-- folder is made.
local function slurm_time(s)
  for _, form in ipairs({ "^$", "^%d+$", "^%d+:%d+$", "^%d+:%d+:%d+$", "^%d+%-%d+$", "^%d+%-%d+:%d+$",
                          "^%d+%-%d+:%d+:%d+$" }) do
    if s:match(form) then return s end
  end
  return nil, string.format("option '--slurm-time' takes minutes, H:MM:SS or D-HH:MM:SS (got '%s')", s)
end

--- --slurm-partition: a partition name, or several separated by commas.
local function slurm_partition(s)
  if s:match("^[%w_%.,%-]*$") then return s end
  return nil, string.format("option '--slurm-partition' takes a partition name (got '%s')", s)
end

--- Options that contradict each other, refused before anything runs.
local function check_combination(c)
  for _, o in ipairs({ { "--slurm-partition", c.slurm_partition ~= "" }, { "--slurm-time", c.slurm_time ~= "" },
                       { "--slurm-cpus", c.slurm_cpus ~= 1 }, { "--slurm-wait", c.slurm_wait } }) do
    if o[2] and not c.slurm then error(o[1] .. " goes with --slurm", 0) end
  end
  if c.slurm and c.gather ~= "" then
    error("--gather tabulates finished runs; it does not go with --slurm, which runs configurations", 0)
  end
  if c.gather == "" and not files.readable(c.experiment) then
    error(string.format("--experiment: cannot open %s (a path from %s, the folder compare.lua runs in)",
      c.experiment, files.cwd()), 0)
  end
  if lv.mpi.active() and (c.slurm or c.gather ~= "") then
    error("under mpirun compare.lua runs the configurations across the ranks; start it without mpirun "
      .. "for --slurm or --gather", 0)
  end
end

--- The table of the rows (table.md), the reading below it and, for the
-- demo, the toy 2-D posterior: what results.json keeps.
local function tabulate(run, c, rows)
  for _, r in ipairs(rows) do
    r.label = r.config:gsub("^%s+", ""):gsub("%s+$", "")
    local file = r.dir and r.results and r.results.nll_per_datapoint
    local ok, nll = false, nil
    if file then ok, nll = pcall(lv.load_npy, r.dir .. "/" .. file, "f64") end
    r.per_datapoint = ok and nll:totable() or nil
  end
  local best
  for _, r in ipairs(rows) do
    local nll = r.results and r.results.test_nll
    if type(nll) == "number" and nll == nll and (not best or nll < best.results.test_nll) then best = r end
  end
  local lines = {
    "| configuration | test NLL | ± s.e. | Δ vs best (paired) | ESS | test ELBO | ms / step | grad evals / step "
      .. "| s / epoch | train peak MiB | eval peak MiB |",
    "|---|---|---|---|---|---|---|---|---|---|---|",
  }
  local summary = {}
  for _, r in ipairs(rows) do
    local res = r.results or {}
    -- training time per epoch: the run's seconds less the final evaluation
    local per_epoch = (res.seconds and res.epochs and res.epochs > 0)
      and (res.seconds - (res.evaluation_seconds or 0)) / res.epochs or nil
    local delta = "–"
    if r == best then
      delta = "best"
    elseif best and r.per_datapoint and best.per_datapoint and #r.per_datapoint == #best.per_datapoint then
      local p = reading.paired(best.per_datapoint, r.per_datapoint)
      delta = string.format("%+.2f ± %.2f%s", p.diff, p.se, p.significant and "" or " (n.s.)")
    end
    local ess = fmt(res.ess, "%.1f")
    if res.nll_samples and ess ~= "–" then ess = string.format("%s / %d", ess, math.floor(res.nll_samples)) end
    lines[#lines + 1] = string.format("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |",
      r.label, fmt(res.test_nll), fmt(res.test_nll_se), delta, ess, fmt(res.test_elbo),
      fmt(res.ms_per_step, "%.1f"), fmt(res.grad_evals_per_step, "%d"), fmt(per_epoch, "%.1f"),
      fmt(res.peak_train_bytes and res.peak_train_bytes / 2 ^ 20, "%.0f"),
      fmt(res.peak_tensor_bytes and res.peak_tensor_bytes / 2 ^ 20, "%.0f"))
    summary[#summary + 1] = { config = r.config, status = r.status, dir = r.dir, results = res }
  end
  local read = reading.read(rows)
  local text = { table.concat(lines, "\n"), "" }
  for _, sentence in ipairs(read) do text[#text + 1] = "- " .. sentence end
  local markdown = table.concat(text, "\n")
  run:print("\n" .. markdown)
  local back = { table = "table.md", runs = summary, reading = read }

  if c.demo then
    -- the toy 2-D posterior of leapfrog and qsl, beside the table
    local status, toy = runner.main({ "scripts/toy2d.lua", "--flow", "leapfrog,qsl", "--out", run.dir .. "/runs",
                                      "--seed", tostring(run.seed), "--name", "toy2d", "--quiet" })
    local res = status == 0 and read_json(toy.dir .. "/results.json") or nil
    if res and res.picture then
      local from = assert(io.open(toy.dir .. "/pictures/" .. res.picture, "rb"))
      files.write_atomic(run.dir .. "/toy2d-posterior.png", from:read("a"))
      from:close()
      back.toy2d = res.flows
      local parts = {}
      for _, f in ipairs(res.flows) do
        parts[#parts + 1] = string.format("%s %.3f nats (%.0f%% of its samples inside the target's 90%% contour)",
          f.flow, f.kl, 100 * f.inside[2])
      end
      local toy_line = string.format("- The toy 2-D posterior (toy2d-posterior.png, exact log Z = %.3f): the "
        .. "gap log Z − ELBO after K = %d steps is %s.", res.log_z, res.K, table.concat(parts, "; "))
      markdown = markdown .. "\n" .. toy_line .. "\n\n![leapfrog and qsl on the toy 2-D posterior](toy2d-posterior.png)"
      run:print(toy_line)
      run:print("the toy 2-D posterior of leapfrog and qsl: " .. run.dir .. "/toy2d-posterior.png")
    else
      run:print("the toy 2-D posterior was not drawn (toy2d.lua failed, or gnuplot is missing)")
    end
  end

  files.write_atomic(run.dir .. "/table.md", markdown .. "\n")
  for _, r in ipairs(rows) do
    if r.results and r.results.pictures then
      run:print(string.format("pictures of %s: %s/pictures/", r.label, r.dir))
    end
  end
  local failed = 0
  for _, r in ipairs(rows) do if r.status ~= 0 then failed = failed + 1 end end
  if failed > 0 then run:print(string.format("%d configuration(s) did not finish", failed)) end
  return back
end

return {
  name = "compare",
  options = {
    { "--experiment", "the experiment file each configuration runs", "scripts/images.lua" },
    { "--configs", "configurations, separated by ';'", DEMO_CONFIGS },
    { "--common", "options given to every configuration", "" },
    { "--demo", "the main job on its defaults (a Fashion-MNIST subset, mlp)", false },
    { "--gather", "finished run folders, separated by ';' (* and ? in a last part match folders): "
      .. "tabulate them instead of running", "" },
    { "--slurm", "submit the configurations as a Slurm job array, one task (and run folder) each", false },
    { "--slurm-partition", "with --slurm: the partition; empty for the cluster's default", "", slurm_partition },
    { "--slurm-time", "with --slurm: each task's time limit, minutes or D-HH:MM:SS; empty for the partition's",
      "", slurm_time },
    { "--slurm-cpus", "with --slurm: cores per task (its OMP_NUM_THREADS and OPENBLAS_NUM_THREADS)", 1, min = 1 },
    { "--slurm-wait", "with --slurm: wait until the job array has ended (sbatch --wait), then tabulate", false },
  },

  finish = function(run)
    local c = run.config
    check_combination(c)
    local rows, job
    if c.slurm then
      job, rows = submit_to_slurm(run, c)
      if not rows then return { slurm = job } end
    elseif c.gather ~= "" then
      rows = gather(run, c.gather)
    elseif lv.mpi.active() then
      rows = run_across_ranks(run, c)
      if not rows then return nil end     -- a rank other than 0: rank 0 tabulates
    else
      rows = run_here(run, c)
    end
    local back = tabulate(run, c, rows)
    back.slurm = job
    return back
  end,
}
