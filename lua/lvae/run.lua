--- run.lua -- the experiment runner behind `./lvae run FILE.lua [--option value ...]`.
--
-- It parses the options an experiment file declares (Debian's
-- lua-argparse), makes a run folder, owns the training loop (seeding,
-- progress, log, checkpoints, early stopping, NaN guard, resume) and
-- writes the results. It does not build models or read data: the
-- experiment file does, through the functions it returns.
--
-- The experiment-file contract. A file returns a table:
--
--   return {
--     name = "fashion",                     -- default run name (else the file's base name)
--     description = "...",                  -- optional, heads --help
--     options = {                           -- {flag, help, default [, converter]}
--       { "--flow", "integrator", "qsl", choices = { "qsl", "leapfrog" } },
--       { "--K", "flow steps", 5, min = 1 },  -- an integer, at least 1
--       { "--epochs", "training epochs", 100 },   -- overrides a runner option's default
--       { "--quick", "a short run", false },      -- default false: a flag
--     },
--     setup = function(run) return state end,                 -- data, model, optimizer
--     batches = function(run, state, epoch) return iter [, n_batches] end,
--     step = function(run, state, batch) return loss [, metrics] end,
--     validate = function(run, state) return { elbo = ... } end,   -- optional
--     finish = function(run, state) return results end,            -- optional
--     checkpoint = function(run, state) return tbl end,             -- optional,
--     restore = function(run, state, tbl) end,                      -- as a pair
--   }
--
-- * options: the value is `run.config.<name>`, name the long flag without
--   its dashes, inner dashes as underscores (`--nll-samples` ->
--   `run.config.nll_samples`; `run.config["nll-samples"]` reads the same).
--   A number default without a converter converts with tonumber (an
--   integer default accepts integers only); `false` makes a flag; `true`
--   takes true/false. `choices = {...}` lists the values allowed, `min =
--   m` rejects a number below m; either is an error naming the option
--   before any run folder is made. --help shows every option with its
--   default.
-- * setup runs after lv.manual_seed(seed); whatever it draws from the
--   default generator is drawn again, identically, on --resume (before the
--   checkpoint overwrites it). Without setup the state is {}.
-- * batches returns an iterator (a closure called until it gives nil,
--   anything a generic `for` takes, or a list of batches); a number as its
--   second value is the batch count, for the progress bar. Per-epoch
--   randomness comes from `run:generator()`, seeded by (seed, epoch).
-- * step takes one optimizer step and returns the loss (a 0-dim tensor or
--   a number) and optionally metrics (numbers or 0-dim tensors): `elbo`
--   goes to log.csv's elbo column, `lr` to its lr column (else
--   state.optimizer.lr or state.opt.lr), `n` is the batch's item count
--   (else the size of the batch tensor, or of batch.x / batch[1]); the
--   other names found in the first step become extra log columns. A loss
--   or metric that is NaN or Inf stops the run (`diverged`).
-- * validate, after each epoch: `elbo` (higher is better) drives early
--   stopping (--patience) and the best checkpoint; a non-finite one is a
--   divergence too.
-- * finish, once training ends (with the best validation epoch's parameters
--   restored unless --finish-with last): what it returns goes into
--   results.json, beside the runner's status, seconds, steps, epochs and
--   best_epoch. A file without step is only setup + finish (no loop, no
--   checkpoints).
-- * checkpoint/restore say what a checkpoint holds besides the runner's
--   own (epoch and step counters, default generator state, early-stopping
--   state, log position). Without them the runner saves state.model's
--   parameters() and the state_dict() of state.optimizer (or state.opt)
--   and of state.schedule.
--
-- `run` offers run.config, run.seed, run.dir, run.epoch, run.step (the
-- step being taken, from 1), run.batch, run.n_batches, run.resumed,
-- run:print(...), run:log(fmt, ...) (both also append to messages.log),
-- run:picture_path(name) (pictures/name, ".png" added when there is no
-- extension), run:path(name), run:generator([k]) and run:task(label), a
-- progress(done, total) function for a long step outside training (such
-- as lv.estimators.nll's progress option): a bar with an ETA on a
-- terminal, a line every 10% elsewhere, a closing line with the time.
--
-- The runner adds --seed, --epochs, --out, --name, --resume RUN_DIR,
-- --patience, --finish-with, --keep-checkpoints, --log-every, --max-steps,
-- --stop-after-epoch, --threads, --quiet, --distributed (RUNNER_OPTIONS in
-- lvae.run.options).
--
-- A run folder <out>/<name>-<YYYYmmdd-HHMMSS>/ holds config.json (every
-- option, the git commit and whether the tree was dirty, the seed, the
-- start time, one entry per resume), log.csv (step, epoch, loss, elbo,
-- val_elbo, seconds, lr, extra metrics: a row per step, val_elbo on each
-- epoch's last), checkpoints/epoch-<n>.ckpt (lv.save's format; epoch 0 is
-- the state before training) with checkpoints/latest naming the newest,
-- results.json, messages.log and pictures/ (training_curves.png when
-- lvae.plot can draw). Files are written to a temporary name and renamed.
--
-- Seeding and resume: lv.manual_seed(seed) before setup; each checkpoint
-- holds the default generator's state, so a run resumed with --resume
-- (setup again, then the latest checkpoint restored, log.csv cut back to
-- the checkpoint's rows) ends with the same bits as an uninterrupted one.
-- A resumed run keeps its options; --epochs, --patience, --finish-with and
-- --keep-checkpoints may be given again to change them, and --quiet,
-- --threads, --log-every, --max-steps, --stop-after-epoch belong to each
-- process.
--
-- M.main(args [, streams]) runs `lvae run`'s command line (args[1] the
-- file, or an experiment table) and returns an exit status: 0 done (also
-- early stopping, --max-steps, --stop-after-epoch), 1 bad options or an
-- error in the experiment (results.json says "failed"), 2 diverged, 128 +
-- n interrupted by signal n (130 Ctrl-C, 143 SIGTERM, 129 SIGHUP); and the
-- run (or the error message) as a second
-- value. streams = {stdout = f, stderr = f} redirects the output.
--
-- This file is the Run object, its loop and its checkpoints, and main.
-- Beside it, under lua/lvae/run/: options.lua (the command line and what
-- --resume may change), log.lua (log.csv, messages.log, read_log),
-- progress.lua (the bar and the lines), parallel.lua (data-parallel
-- training over an MPI job); files, quoting and JSON are lvae.files.

local lv = require "lvae.base"
local D = require "lvae.distributed"
local files = require "lvae.files"
local log = require "lvae.run.log"
local options = require "lvae.run.options"
local parallel = require "lvae.run.parallel"
local progress = require "lvae.run.progress"

local M = {}

local as_number, is_finite = log.as_number, log.is_finite
local mkdir_p, quote, read_file, read_json = files.mkdir_p, files.quote, files.read_file, files.read_json
local write_atomic, write_json = files.write_atomic, files.write_json

--- The rows of a log.csv (lvae.run.log); JSON as the run writes it and a
-- file written whole (lvae.files), for the scripts that write beside a run.
M.read_log = log.read
M.json_encode = files.json_encode
M.write_atomic = files.write_atomic

---- the run object ---------------------------------------------------------------------

local Run = {}
Run.__index = Run

--- Training seconds so far, over every process of the run.
function Run:seconds() return self.seconds_before + (lv.clock() - self.t0) end

function Run:path(name) return self.dir .. "/" .. name end

function Run:picture_path(name)
  if not name:match("%.%w+$") then name = name .. ".png" end
  if self.main then mkdir_p(self.dir .. "/pictures") end
  return self.dir .. "/pictures/" .. name
end

--- A generator seeded from (seed, epoch, k): an epoch replayed after
-- --resume draws the same numbers.
function Run:generator(k)
  return lv.Generator((self.seed * 1000003 + self.epoch) * 1009 + (k or 0))
end

function Run:_message(text)
  if not self.main then return end
  log.message(self.dir, text)
  self.progress:line(text)
end

function Run:print(...)
  local parts = table.pack(...)
  for i = 1, parts.n do parts[i] = tostring(parts[i]) end
  self:_message(table.concat(parts, "\t", 1, parts.n))
end

function Run:log(fmt, ...) self:_message(string.format(fmt, ...)) end

--- progress(done, total) for a long task outside training, shown as `label`.
function Run:task(label)
  local t0, shown = lv.clock(), self.progress
  return function(done, total) shown:task(label, done, total, t0) end
end

--- A warning or the message a run ends with: on stderr, and in
-- messages.log with the rest of the run's story.
function Run:_warn(text)
  self.progress:clear()
  local who = self.ranks > 1 and string.format("rank %d of %d: ", self.rank, self.ranks) or ""
  self.err:write("lvae run: ", who, text, "\n")
  self.err:flush()
  if self.main and self.dir then log.message(self.dir, "lvae run: " .. text) end
end

--- The newest checkpoint on disk, relative to the run folder (what
-- --resume would take), or nil.
function Run:_latest()
  local name = read_file(self.dir .. "/checkpoints/latest")
  name = name and name:match("^%s*(.-)%s*$")
  if name and name ~= "" then return "checkpoints/" .. name end
  return self.last_good
end

--- The checkpoint path relative to the run folder.
local function ckpt_name(epoch) return string.format("checkpoints/epoch-%d.ckpt", epoch) end

---- checkpoints ------------------------------------------------------------------------

local function default_checkpoint(state)
  local t = {}
  if type(state.model) == "table" and state.model.parameters then
    t.params = {}
    for i, p in ipairs(state.model:parameters()) do t.params[i] = p:detach() end
  end
  for _, k in ipairs({ "optimizer", "opt", "schedule" }) do
    if type(state[k]) == "table" and state[k].state_dict then t[k] = state[k]:state_dict() end
  end
  if next(t) == nil then
    error("the experiment has no checkpoint function and its state has no model, optimizer or "
          .. "schedule to save (return state.model / state.optimizer from setup, or give "
          .. "checkpoint and restore)", 0)
  end
  return t
end

local function default_restore(state, t)
  if t.params then
    local params = state.model:parameters()
    if #params ~= #t.params then
      error(string.format("the checkpoint has %d parameters, the model %d", #t.params, #params), 0)
    end
    lv.no_grad(function()
      for i, p in ipairs(params) do
        local a, b = table.concat(p:size(), ","), table.concat(t.params[i]:size(), ",")
        if a ~= b then
          error(string.format("parameter %d has shape [%s], the checkpoint [%s]", i, a, b), 0)
        end
        p:copy_(t.params[i])
      end
    end)
  end
  for _, k in ipairs({ "optimizer", "opt", "schedule" }) do
    if t[k] then state[k]:load_state_dict(t[k]) end
  end
end

function Run:_save_checkpoint(epoch)
  local exp = self.experiment
  local saved
  if exp.checkpoint then saved = exp.checkpoint(self, self.state) or {} else saved = default_checkpoint(self.state) end
  local name = ckpt_name(epoch)
  self.kept[#self.kept + 1] = epoch
  if not self.main then      -- rank 0 writes it; the others know its name
    self.last_good = name
    return
  end
  lv.save(self.dir .. "/" .. name, {
    format = "lvae.run", version = 1,
    epoch = epoch, step = self.step, seconds = self:seconds(),
    config = options.plain(self.config),
    rng = lv.get_rng_state(),
    experiment = saved,
    early = { best = self.best, best_epoch = self.best_epoch, bad_epochs = self.bad_epochs,
              stopped = self.early_stopped or false },
    validation = self.validation,
    log_bytes = self.log_bytes,
    kept = self.kept,
  })
  write_atomic(self.dir .. "/checkpoints/latest", string.format("epoch-%d.ckpt\n", epoch))
  self.last_good = name
  -- Keep the last N and the best; never the one just written.
  local keep = self.config.keep_checkpoints
  if keep > 0 then
    local others = {}
    for _, e in ipairs(self.kept) do
      if e ~= self.best_epoch then others[#others + 1] = e end
    end
    local drop = {}
    for i = 1, #others - keep do drop[others[i]] = true end
    local kept = {}
    for _, e in ipairs(self.kept) do
      if drop[e] and e ~= epoch then os.remove(self.dir .. "/" .. ckpt_name(e)) else kept[#kept + 1] = e end
    end
    self.kept = kept
  end
end

local function load_checkpoint(path)
  local ok, ck = pcall(lv.load, path)
  if not ok then error(ck, 0) end
  if type(ck) ~= "table" or ck.format ~= "lvae.run" then
    error(string.format("%s is not a checkpoint of the runner", path), 0)
  end
  if ck.version ~= 1 then error(string.format("%s: unknown runner checkpoint version %s", path, tostring(ck.version)), 0) end
  return ck
end

--- The names in a run's checkpoints folder.
local function checkpoint_files(dir)
  return files.list(dir .. "/checkpoints") or {}
end

--- The newest checkpoint of a run folder. checkpoints/latest must name a
-- checkpoint inside the folder (epoch-N.ckpt): a name that leads
-- elsewhere is refused, not followed.
local function latest_checkpoint(dir)
  local name = read_file(dir .. "/checkpoints/latest")
  name = name and name:match("^%s*(.-)%s*$")
  if not name or name == "" then
    error(string.format("%s has no checkpoint to resume from (no checkpoints/latest)", dir), 0)
  end
  if not name:match("^epoch%-%d+%.ckpt$") then
    error(string.format("%s/checkpoints/latest names %q, not a checkpoint of this run folder (epoch-N.ckpt); "
      .. "it is not followed", dir, name), 0)
  end
  return "checkpoints/" .. name
end

--- The checkpoint to resume from: the latest, or, when it is damaged, the
-- newest intact one before it (with a message saying so). Returns the
-- checkpoint, its name and the message (nil when the latest was used).
local function resumable_checkpoint(dir)
  local rel = latest_checkpoint(dir)
  local ok, ck = pcall(load_checkpoint, dir .. "/" .. rel)
  if ok then return ck, rel, nil end
  local newest = tonumber(rel:match("epoch%-(%d+)"))
  local earlier = {}
  for _, name in ipairs(checkpoint_files(dir)) do
    local e = tonumber(name:match("^epoch%-(%d+)%.ckpt$"))
    if e and e < newest then earlier[#earlier + 1] = e end
  end
  table.sort(earlier, function(a, b) return a > b end)
  for _, e in ipairs(earlier) do
    local older = ckpt_name(e)
    local fine, back = pcall(load_checkpoint, dir .. "/" .. older)
    if fine then
      return back, older, string.format("%s is damaged (%s); resuming from %s, the newest intact checkpoint "
        .. "before it", rel, tostring(ck), older)
    end
  end
  error(string.format("%s (and no intact checkpoint before it to resume from)", tostring(ck)), 0)
end

--- Removes what a save stopped mid-write left in the checkpoints folder
-- (NAME.tmp.PID.N); returns the names removed.
local function remove_partial_saves(dir)
  local removed = {}
  for _, name in ipairs(checkpoint_files(dir)) do
    if name:match("%.tmp%.%d+%.%d+$") or name:match("%.tmp%.%d+$") then
      if os.remove(dir .. "/checkpoints/" .. name) then removed[#removed + 1] = name end
    end
  end
  return removed
end

function Run:_restore(ck)
  if self.experiment.restore then
    self.experiment.restore(self, self.state, ck.experiment)
  else
    default_restore(self.state, ck.experiment)
  end
end

---- results ----------------------------------------------------------------------------

function Run:_write_results(status, extra)
  self.status = status
  if not self.main then return end
  local r = {}
  for k, v in pairs(extra or {}) do r[k] = v end
  r.status = status
  r.seconds = self:seconds()
  r.steps = self.step
  r.epochs = self.epochs_done
  r.best_epoch = self.best_epoch
  r.best_val_elbo = self.best
  r.finished = os.date("!%Y-%m-%dT%H:%M:%SZ")
  if self.ranks > 1 then
    -- rank 0's time in collectives and bytes all-reduced (the benchmarks
    -- divide them by the steps)
    local comm = lv.mpi.comm_stats()
    r.processes, r.communication_seconds, r.allreduce_bytes = self.ranks, comm.seconds, comm.allreduce_bytes
  end
  write_json(self.dir .. "/results.json", r)
end

--- pictures/training_curves.png from log.csv, when lvae.plot can draw it.
function Run:_plot()
  if not self.main then return end
  local ok, plot = pcall(require, "lvae.plot")
  if not ok or type(plot) ~= "table" or type(plot.training_curves) ~= "function" then return end
  local rows, columns = log.read(self.dir .. "/log.csv")
  if not rows or #rows == 0 then return end     -- no loop, or no step yet
  -- the training ELBO (else the loss) and the validation values on one
  -- scale: the loss mirrors the ELBO, and counts such as grad_evals are
  -- not curves
  local ys, points = {}, {}
  local has = {}
  for _, c in ipairs(columns) do has[c] = true end
  ys[1] = has.elbo and "elbo" or "loss"
  for _, c in ipairs(columns) do
    if c:match("^val_") then ys[#ys + 1], points[#points + 1] = c, c end
  end
  local done, err = pcall(plot.training_curves, self.dir .. "/pictures", rows,
                          { columns = columns, y = ys, points = points })
  if not done then self:_warn("training curves not drawn: " .. tostring(err)) end
end

---- the loop -----------------------------------------------------------------------------

local Diverged = {}

--- Stops the run: the value is not finite.
function Run:_diverge(what, value)
  error(setmetatable({ what = what, value = value }, Diverged), 0)
end

--- The item count of a batch, for the rate.
local function batch_items(batch, metrics)
  if metrics and metrics.n then return as_number(metrics.n, "metrics.n") end
  local t = batch
  if type(t) == "table" then t = t.x or t[1] end
  if lv.is_tensor(t) and t:dim() > 0 then return t:size(1) end
  return 1
end

local function iterate(batches, a, b, c)
  if type(a) == "table" and getmetatable(a) == nil then
    local i = 0
    return function()
      i = i + 1
      return a[i]
    end, #a
  end
  if type(a) ~= "function" then
    error(string.format("%s: batches must return an iterator or a list (got a %s)", batches, type(a)), 0)
  end
  if math.type(b) ~= nil then return a, b end   -- a closure and the batch count
  local state, control = b, c
  return function()
    local v = a(state, control)
    control = v
    return v
  end, nil
end

function Run:_lr(metrics)
  if metrics and metrics.lr then return as_number(metrics.lr, "metrics.lr") end
  local opt = self.state.optimizer or self.state.opt
  if type(opt) == "table" then
    local ok, lr = pcall(function() return opt.lr end)
    if ok and type(lr) == "number" then return lr end
  end
  return nil
end

--- One epoch: steps, validation, checkpoint. Returns "max_steps" when the
-- step limit is reached in the middle.
function Run:_epoch(epoch)
  local exp, c = self.experiment, self.config
  self.epoch, self.batch = epoch, 0
  math.randomseed(self.seed, epoch)
  local iter, n_batches = iterate("batches", exp.batches(self, self.state, epoch))
  self.n_batches = n_batches
  self.progress:start_epoch(epoch, c.epochs, n_batches)
  local stopped
  while true do
    local batch = iter()
    if batch == nil then break end
    self.step, self.batch = self.step + 1, self.batch + 1
    local loss_value, metrics
    if self.ranks > 1 then
      loss_value, metrics = parallel.step(self, batch)
    else
      loss_value, metrics = exp.step(self, self.state, batch)
    end
    if loss_value == nil then error("step must return the loss", 0) end
    local loss = as_number(loss_value, "the loss")
    local row = { step = self.step, epoch = epoch, loss = loss, seconds = self:seconds() }
    local bad
    if not is_finite(loss) then bad = { "loss", loss } end
    if metrics then
      if type(metrics) ~= "table" then error("step's second result must be a table of metrics", 0) end
      if not self.extras then
        self.extras = {}
        for k in pairs(metrics) do
          if type(k) == "string" and not log.RESERVED[k] then self.extras[#self.extras + 1] = k end
        end
        table.sort(self.extras)
      end
      for k, v in pairs(metrics) do
        local x = as_number(v, "metric '" .. tostring(k) .. "'")
        if k ~= "n" and k ~= "lr" and k ~= "loss" then
          row[k] = x
          if not bad and not is_finite(x) then bad = { "metric '" .. tostring(k) .. "'", x } end
        end
      end
    end
    row.lr = self:_lr(metrics)
    self.csv:row(row, self.extras)
    if bad then self:_diverge(bad[1], bad[2]) end
    self.progress:update(self.batch, batch_items(batch, metrics), loss)
    if c.max_steps > 0 and self.step >= c.max_steps then
      stopped = "max_steps"
      break
    end
  end
  if stopped then
    self.log_bytes = self.csv:flush()
    return stopped
  end

  local extra, val = "", nil
  if exp.validate then
    local v = exp.validate(self, self.state)
    if type(v) ~= "table" then error("validate must return a table such as { elbo = ... }", 0) end
    local record = { epoch = epoch }
    for k, x in pairs(v) do record[k] = as_number(x, "validation '" .. tostring(k) .. "'") end
    self.validation[#self.validation + 1] = record
    val = record.elbo
    if val ~= nil then
      if not is_finite(val) then
        self.log_bytes = self.csv:flush(val)
        self:_diverge("validation ELBO", val)
      end
      if self.best == nil or val > self.best then
        self.best, self.best_epoch, self.bad_epochs = val, epoch, 0
        extra = string.format(", val elbo %.6g (best)", val)
      else
        self.bad_epochs = self.bad_epochs + 1
        extra = string.format(", val elbo %.6g (best %.6g at epoch %d)", val, self.best, self.best_epoch)
      end
      if c.patience > 0 and self.bad_epochs >= c.patience then self.early_stopped = true end
    end
  end
  self.log_bytes = self.csv:flush(val)
  self.epochs_done = epoch
  if self.ranks > 1 then
    D.agree(string.format("parameters after epoch %d (CRC-32 of each)", epoch), D.checksum(self.parallel.params))
  end
  self:_save_checkpoint(epoch)
  self:_message(self.progress:epoch_summary(extra))
  if self.early_stopped then return "early_stopped" end
end

---- main ---------------------------------------------------------------------------------

--- The commit of the repository holding dir, and whether its tracked files
-- differ from it ("unknown" outside a repository).
local function git_info(dir, with_status)
  local out = files.output("git -C " .. quote(dir) .. " rev-parse --show-toplevel HEAD")
  local top, commit = (out or ""):match("^([^\n]+)\n(%x+)")
  if not commit then return { commit = "unknown" } end
  local info = { commit = commit, top = top }
  if with_status ~= false then
    local status = files.output("git -C " .. quote(dir) .. " status --porcelain --untracked-files=no")
    info.dirty = status ~= nil and status:match("%S") ~= nil
  end
  return info
end

--- The experiment of a file (or a table given in its place), checked.
local function load_experiment(file)
  local exp = file
  if type(file) == "string" then
    local chunk, err = loadfile(file)
    if not chunk then error(err, 0) end
    exp = chunk(file)
    if type(exp) ~= "table" then
      error(string.format("%s must return a table (the experiment), not a %s", file, type(exp)), 0)
    end
  else
    file = "the experiment"
  end
  for _, k in ipairs({ "setup", "batches", "step", "validate", "finish", "checkpoint", "restore" }) do
    if exp[k] ~= nil and type(exp[k]) ~= "function" then
      error(string.format("%s: '%s' must be a function", file, k), 0)
    end
  end
  if exp.step and not exp.batches then error(string.format("%s: 'step' needs 'batches'", file), 0) end
  if not exp.step and not exp.finish then
    error(string.format("%s: the experiment needs step (and batches) or finish", file), 0)
  end
  if (exp.checkpoint == nil) ~= (exp.restore == nil) then
    error(string.format("%s: give checkpoint and restore together", file), 0)
  end
  if exp.options ~= nil and type(exp.options) ~= "table" then
    error(string.format("%s: 'options' must be a list", file), 0)
  end
  return exp
end

local USAGE = "usage: lvae run FILE.lua [--option value ...]   (FILE.lua --help lists the options)\n"
           .. "       lvae run [FILE.lua] --resume RUN_DIR [--epochs N ...]\n"

--- Makes <out>/<name>-<timestamp>, with -2, -3, ... when that exists.
local function new_run_dir(out, name)
  mkdir_p(out)
  local base = string.format("%s/%s-%s", out, name, os.date("%Y%m%d-%H%M%S"))
  local dir = base
  for i = 2, 1000 do
    if os.execute("mkdir " .. quote(dir) .. " 2>/dev/null") then return dir end
    dir = string.format("%s-%d", base, i)
  end
  error("cannot make a run folder under " .. out, 0)
end

--- Parses the command line, loads the experiment and makes (or reopens) the
-- run. Returns the run, or nil, an exit status and a message.
local function prepare(args, out, err, rank)
  args = { table.unpack(args) }
  -- `lvae run --resume DIR` finds the file in DIR/config.json.
  if (args[1] == nil or type(args[1]) == "string" and args[1]:match("^%-"))
     and options.value(args, "--resume") then
    local saved = read_json(options.value(args, "--resume") .. "/config.json")
    if saved and type(saved.file) == "string" then table.insert(args, 1, saved.file) end
  end
  local file = args[1]
  if type(file) == "table" then                -- an experiment table instead of a file
    file = nil
  elseif file == nil or file == "-h" or file == "--help" then
    (file and out or err):write(USAGE)
    return nil, file and 0 or 1, file == nil and "no experiment file given" or nil
  end
  if file and file:match("^%-") then
    err:write(USAGE)
    return nil, 1, "the experiment file comes first (got '" .. file .. "')"
  end
  local exp = load_experiment(table.remove(args, 1))
  file = file or "(table)"
  local exp_name = exp.name or file:match("([^/]+)%.lua$") or file
  exp.name = exp_name
  local own, runner, by_target = options.declared(exp, file)
  local parser = options.parser(file, exp, own, runner)
  for _, a in ipairs(args) do
    if a == "-h" or a == "--help" then
      out:write(parser:get_help(), "\n")
      return nil, 0
    end
  end
  local ok, parsed = parser:pparse(args)
  if not ok then
    err:write(parser:get_usage(), "\n\nError: ", parsed, "\n")
    return nil, 1, parsed, true
  end
  local config = options.config(parsed, by_target)

  local run = setmetatable({ experiment = exp, file = file, out = out, err = err, args = args,
                             step = 0, epoch = 0, batch = 0, epochs_done = 0,
                             validation = {}, kept = {}, bad_epochs = 0, seconds_before = 0,
                             t0 = lv.clock(), resumed = false, log_bytes = 0,
                             rank = 0, ranks = 1, main = true }, Run)
  if parsed.resume then
    local dir = parsed.resume:gsub("/+$", "")
    local ck, rel, fallback = resumable_checkpoint(dir)
    run.resume_notes = { fallback }
    -- The run's own values, except for what may change on resume.
    local merged, why = options.resumed(ck.config, config, by_target, args)
    if not merged then return nil, 1, why end
    run.config, run.dir, run.resumed, run.resume_from = merged, dir, true, ck
    run.checkpoint_name = rel
  else
    run.config = config
    -- rank 0 makes the folder; the other processes of a job learn its name
    if (rank or 0) == 0 then run.dir = new_run_dir(config.out, config.name or exp_name) end
  end
  run.option_kinds = by_target
  run.seed = run.config.seed
  return run
end

function Run:_write_config()
  local path = self.dir .. "/config.json"
  local cfg
  local git = git_info(files.dirname(self.file))
  git.top = nil
  if self.resumed then
    cfg = read_json(path) or {}
    cfg.resumes = type(cfg.resumes) == "table" and cfg.resumes or {}
    cfg.resumes[#cfg.resumes + 1] = {
      time = os.date("!%Y-%m-%dT%H:%M:%SZ"), from = self.checkpoint_name,
      argv = self.args, options = options.plain(self.config), git = git,
    }
  else
    local host = read_file("/proc/sys/kernel/hostname")
    local mine = git_info(files.dirname(debug.getinfo(1, "S").source:sub(2)), false)
    local lvae = { version = lv.version, commit = mine.commit ~= git.commit and mine.commit or nil }
    cfg = {
      name = self.experiment.name, file = self.file, dir = self.dir, argv = self.args,
      options = options.plain(self.config), seed = self.seed,
      git = git,
      lvae = next(lvae) and lvae or nil,
      started = os.date("!%Y-%m-%dT%H:%M:%SZ"),
      host = host and host:match("^%s*(.-)%s*$") or nil,
      threads = lv.num_threads(),
    }
  end
  write_json(path, cfg)
end

--- Training, from setup to finish. Returns the exit status.
function Run:_go()
  local exp, c = self.experiment, self.config
  if c.threads > 0 then
    lv.set_num_threads(c.threads)
  elseif self.ranks > 1 then
    -- the processes on one machine share its cores
    local here = tonumber(os.getenv("OMPI_COMM_WORLD_LOCAL_SIZE") or "") or 1
    lv.set_num_threads(math.max(1, lv.num_threads() // math.max(1, here)))
  end
  -- lv.memory_stats().peak_bytes counts from here: runs made one after
  -- another in one process (compare.lua) each report their own peak
  collectgarbage()
  collectgarbage()
  lv.memory_reset_peak()
  local ck = self.resume_from
  self.resume_from = nil      -- its tensors are not kept for the whole run
  if self.main then
    mkdir_p(self.dir .. "/pictures")
    self:_write_config()
    if exp.step then
      mkdir_p(self.dir .. "/checkpoints")
      self.csv = log.open(self.dir .. "/log.csv", ck and ck.log_bytes or nil)
    end
  elseif exp.step then
    self.csv = log.NullLog
  end
  if not self.resumed then self:_message("run folder: " .. self.dir) end

  lv.manual_seed(self.seed)
  math.randomseed(self.seed, 0)
  self.state = exp.setup and exp.setup(self) or {}
  if type(self.state) ~= "table" then error("setup must return a table (the state)", 0) end

  local start = 1
  if ck then
    self:_restore(ck)
    lv.set_rng_state(ck.rng)
    self.step, self.epoch, self.epochs_done = ck.step, ck.epoch, ck.epoch
    self.seconds_before, self.t0 = ck.seconds, lv.clock()
    self.best, self.best_epoch = ck.early.best, ck.early.best_epoch
    self.bad_epochs, self.early_stopped = ck.early.bad_epochs, ck.early.stopped
    self.validation, self.kept, self.log_bytes = ck.validation or {}, ck.kept or {}, ck.log_bytes
    self.last_good = self.checkpoint_name
    start = ck.epoch + 1
    self:_message(string.format("resumed %s from %s (step %d)", self.dir, self.checkpoint_name, self.step))
    for _, note in ipairs(self.resume_notes or {}) do self:_warn(note) end
    for _, name in ipairs(self.main and remove_partial_saves(self.dir) or {}) do
      self:_message(string.format("removed checkpoints/%s, left by a save stopped mid-write", name))
    end
  end
  if exp.step and self.ranks > 1 then parallel.join(self) end
  if not ck and exp.step then self:_save_checkpoint(0) end

  local status = "completed"
  if exp.step then
    if self.early_stopped then status = "early_stopped" end
    if status == "completed" then
      for epoch = start, c.epochs do
        local stop = self:_epoch(epoch)
        if stop then
          status = stop
          break
        end
        if c.stop_after_epoch > 0 and epoch == c.stop_after_epoch and epoch < c.epochs then
          self:_write_results("interrupted", { epoch = epoch, last_good_checkpoint = self.last_good })
          self:_message(string.format("stopped after epoch %d (--stop-after-epoch); continue with "
            .. "./lvae run %s --resume %s", epoch, self.file, self.dir))
          self.csv:close()
          return 0
        end
      end
    end
    self.csv:close()
    if status == "early_stopped" then
      self:_message(string.format("early stopping: no better validation ELBO for %d epochs (best %.6g at epoch %d)",
        self.bad_epochs, self.best, self.best_epoch))
    end
    if exp.finish and c.finish_with == "best" and self.best_epoch and self.best_epoch ~= self.epochs_done
       and status ~= "max_steps" then
      local best = load_checkpoint(self.dir .. "/" .. ckpt_name(self.best_epoch))
      self:_restore(best)
      self:_message(string.format("finish: the parameters of epoch %d (best validation ELBO)", self.best_epoch))
    end
  end

  local results = {}
  if exp.finish then
    local r = exp.finish(self, self.state)
    if r ~= nil and type(r) ~= "table" then error("finish must return a table (the results) or nothing", 0) end
    results = r or {}
  end
  self:_write_results(status, results)
  self:_plot()
  self:_message(string.format("%s: %s/results.json", status, self.dir))
  return 0
end

--- Runs an experiment: args are the command line after `lvae run`
-- ({"FILE.lua", "--K", "5", ...}); streams (optional) = {stdout = f,
-- stderr = f, tty = bool (default: whether stdout is a terminal)}.
-- Returns the exit status and the run (or the error message).
local run_locked   -- below main

function M.main(args, streams)
  local out = streams and streams.stdout or io.stdout
  local err = streams and streams.stderr or io.stderr
  local rank, ranks = parallel.join_job(args or {}, err)
  if not rank then return 1, ranks end
  -- the other processes of a job print nothing but their own errors
  if rank > 0 then out = parallel.NullStream end
  local ok, run, status, message, told = pcall(prepare, args or {}, out, err, rank)
  if ranks > 1 then
    ok, run, status, message, told = parallel.agree_on_start(ok, run, status, message, told)
  end
  if not ok then
    err:write("lvae run: ", tostring(run), "\n")
    return 1, tostring(run)
  end
  if not run then
    if message and status ~= 0 and not told then err:write("lvae run: ", message, "\n") end
    return status, message
  end
  run.rank, run.ranks, run.main = rank, ranks, rank == 0

  local c = run.config
  local tty = streams and streams.tty
  if tty == nil then tty = out == io.stdout and os.execute("[ -t 1 ]") == true end
  run.progress = progress.new(out, tty, c.quiet, c.log_every or 0)

  -- One process at a time in a run folder: a second --resume of it would
  -- append to the same log and write the same checkpoints. The kernel
  -- drops the lock when the holder exits, however it ends.
  local lock, holder, why = true, nil, nil
  if run.main then lock, holder, why = require("lvae.core")._lock(run.dir .. "/lock") end
  if not lock then
    local msg = holder > 0
      and string.format("%s is in use by process %d (another run or --resume of it); "
        .. "wait for it to finish or stop it first", run.dir, holder)
      or string.format("cannot lock %s: %s", run.dir, why)
    err:write("lvae run: ", msg, "\n")
    return 1, msg
  end
  local status_code, back = run_locked(run)
  if run.main then lock:release() end
  if ranks > 1 and status_code ~= 0 and status_code ~= 2 then parallel.stop_job(run, status_code) end
  return status_code, back
end

--- main's part that holds the run folder's lock: the run, and what is
-- written when it stops early. Returns main's results.
run_locked = function(run)
  local traceback
  -- SIGTERM (a scheduler's stop) and SIGHUP (a closed terminal) end the
  -- run as Ctrl-C does: written down, with the checkpoint to resume from
  local core = require "lvae.core"
  local trap = core._trap_termination()
  local done, result = xpcall(function() return run:_go() end, function(e)
    if getmetatable(e) ~= Diverged then traceback = debug.traceback(tostring(e), 2) end
    return e
  end)
  trap:restore()
  if done then return result, run end

  if run.csv then pcall(function() run.csv:close() end) end
  run.last_good = run:_latest()
  if getmetatable(result) == Diverged then
    local msg = string.format("step %d: the %s is %s; the last good checkpoint is %s", run.step, result.what,
      log.number_name(result.value), run.last_good or "none")
    run:_warn(msg)
    pcall(run._write_results, run, "diverged", { step = run.step, epoch = run.epoch, message = msg,
      value = result.value, last_good_checkpoint = run.last_good })
    pcall(run._plot, run)
    return 2, run
  end
  local text = tostring(result)
  local signal = text:match("interrupted by (SIG%u+)!$") or (text:match("interrupted!$") and "SIGINT")
  if signal then
    local msg = string.format("interrupted (%s) at step %d; the last checkpoint is %s (continue with "
      .. "./lvae run %s --resume %s)", signal, run.step, run.last_good or "none", run.file, run.dir)
    run:_warn(msg)
    pcall(run._write_results, run, "interrupted", { step = run.step, epoch = run.epoch, message = msg,
      signal = signal, last_good_checkpoint = run.last_good })
    return 128 + ({ SIGINT = 2, SIGTERM = 15, SIGHUP = 1 })[signal], run
  end
  -- A worded error (raised at level 0: no "file.lua:12:" in front) says
  -- what was wrong with the input; a traceback is for the code's faults.
  local worded = not text:match("^[^%s:]+:%d+:")
  run:_warn(worded and text or traceback or text)
  if run.dir then
    pcall(run._write_results, run, "failed", { error = text, step = run.step, epoch = run.epoch,
      last_good_checkpoint = run.last_good })
  end
  return 1, run
end

-- `lua5.4 lua/lvae/run.lua FILE.lua ...` (what `./lvae run` does) runs main;
-- `require "lvae.run"` passes the module name here instead.
if ... ~= "lvae.run" and arg and arg[0] and arg[0]:match("run%.lua$") then
  local status = M.main({ table.unpack(arg, 1, #arg) })
  -- an MPI process that ends without leaving the job counts as failed
  lv.mpi.finalize()
  os.exit(status, true)
end

return M
