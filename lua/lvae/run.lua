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
-- --stop-after-epoch, --threads, --quiet (RUNNER_OPTIONS below).
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

local lv = require "lvae"
local D = require "lvae.distributed"
local argparse = require "argparse"
local cjson = require "cjson"

local M = {}

local LOG_BASE = { "step", "epoch", "loss", "elbo", "val_elbo", "seconds", "lr" }
local RESERVED_METRICS = { n = true, elbo = true, lr = true, loss = true }

---- files ----------------------------------------------------------------------------

local function quote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

local function exists(path) return os.rename(path, path) ~= nil end

local function mkdir_p(path)
  if not exists(path) and not os.execute("mkdir -p " .. quote(path)) then
    error(string.format("cannot make the folder %s", path), 0)
  end
end

local function read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

local tmp_count = 0
--- Writes text to path through a temporary file in the same folder and a
-- rename: readers see the old file or the new one, never half of one.
local function write_atomic(path, text)
  tmp_count = tmp_count + 1
  local tmp = string.format("%s.tmp.%d", path, tmp_count)
  local f, err = io.open(tmp, "wb")
  if not f then error(string.format("cannot write %s: %s", path, err), 0) end
  local ok, werr = f:write(text)
  if ok then ok, werr = f:flush() end
  f:close()
  if ok then ok, werr = os.rename(tmp, path) end
  if not ok then
    os.remove(tmp)
    error(string.format("cannot write %s: %s", path, werr), 0)
  end
end

local function command_output(cmd)
  local p = io.popen(cmd .. " 2>/dev/null")
  if not p then return nil end
  local out = p:read("a")
  p:close()
  return out
end

local function dirname(path) return path:match("^(.*)/[^/]*$") or "." end

---- JSON -------------------------------------------------------------------------------

-- Strings go through cjson; numbers are written here so that integers stay
-- exact and floats keep every bit (cjson rounds to 14 digits). NaN and Inf,
-- which JSON lacks, become the strings "nan", "inf", "-inf". Keys are
-- sorted and nested values indented, so files diff well.

local function number_text(v)
  if math.type(v) == "integer" then return string.format("%d", v) end
  if v ~= v then return '"nan"' end
  if v == math.huge then return '"inf"' end
  if v == -math.huge then return '"-inf"' end
  for _, fmt in ipairs({ "%.15g", "%.16g", "%.17g" }) do
    local s = string.format(fmt, v)
    if tonumber(s) == v then return s end
  end
end

local function is_list(t)
  local n = #t
  if n == 0 then return next(t) == nil end
  local count = 0
  for _ in pairs(t) do count = count + 1 end
  return count == n
end

local function json_encode(v, indent)
  indent = indent or ""
  local kind = type(v)
  if kind == "number" then return number_text(v) end
  if kind == "string" then return (cjson.encode(v):gsub("\\/", "/")) end
  if kind == "boolean" then return tostring(v) end
  if v == nil or v == cjson.null then return "null" end
  if lv.is_tensor(v) then return json_encode(v:totable(), indent) end
  if kind ~= "table" then return cjson.encode(tostring(v)) end
  local inner = indent .. "  "
  if is_list(v) then
    if #v == 0 then return "[]" end
    local flat, parts = true, {}
    for i, x in ipairs(v) do
      parts[i] = json_encode(x, inner)
      if type(x) == "table" then flat = false end
    end
    if flat then return "[" .. table.concat(parts, ", ") .. "]" end
    return "[\n" .. inner .. table.concat(parts, ",\n" .. inner) .. "\n" .. indent .. "]"
  end
  local keys = {}
  for k in pairs(v) do keys[#keys + 1] = tostring(k) end
  table.sort(keys)
  local parts = {}
  for i, k in ipairs(keys) do
    local x = v[k]
    if x == nil then x = v[tonumber(k)] end
    parts[i] = json_encode(k) .. ": " .. json_encode(x, inner)
  end
  return "{\n" .. inner .. table.concat(parts, ",\n" .. inner) .. "\n" .. indent .. "}"
end

M.json_encode = json_encode
M.write_atomic = write_atomic

local function write_json(path, value) write_atomic(path, json_encode(value) .. "\n") end

local function read_json(path)
  local text = read_file(path)
  if not text then return nil, "cannot read " .. path end
  local ok, value = pcall(cjson.decode, text)
  if not ok then return nil, string.format("%s: %s", path, value) end
  return value
end

---- numbers ----------------------------------------------------------------------------

local function is_finite(v) return v == v and v ~= math.huge and v ~= -math.huge end

local function number_name(v)
  if v ~= v then return "nan" end
  if v == math.huge then return "inf" end
  if v == -math.huge then return "-inf" end
  return string.format("%.6g", v)
end

--- A metric as a number: a 0-dim (or one-element) tensor gives its value.
local function as_number(v, what)
  if type(v) == "number" then return v end
  if lv.is_tensor(v) then
    if v:numel() ~= 1 then
      error(string.format("%s is a tensor of %d elements (expected one)", what, v:numel()), 0)
    end
    return v:detach():item()
  end
  error(string.format("%s is a %s (expected a number or a 0-dim tensor)", what, type(v)), 0)
end

local function duration(s)
  s = math.max(0, math.floor(s + 0.5))
  local h, m = s // 3600, (s % 3600) // 60
  if h > 0 then return string.format("%d:%02d:%02d", h, m, s % 60) end
  return string.format("%d:%02d", m, s % 60)
end

---- options ----------------------------------------------------------------------------

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

--- The declared options, runner's and experiment's, in help order.
local function declared_options(exp, exp_name)
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

local function build_parser(file, exp, own, runner)
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

---- the log (log.csv) -----------------------------------------------------------------

-- One row per step: step, epoch, loss, elbo (the step's metric), val_elbo
-- (on the epoch's last step, after validation), seconds (training time so
-- far, summed over resumed processes), lr, then the extra metrics. A row
-- is held back until the next step (or validation) fills it.

local Log = {}
Log.__index = Log

local function csv_number(v)
  if v == nil then return "" end
  if math.type(v) == "integer" then return string.format("%d", v) end
  if not is_finite(v) then return number_name(v) end
  return string.format("%.10g", v)
end

local function open_log(path, keep_bytes)
  local self = setmetatable({ path = path, pending = nil, last_flush = lv.clock() }, Log)
  local text = read_file(path)
  if keep_bytes and text then
    if #text > keep_bytes then write_atomic(path, text:sub(1, keep_bytes)) end
    text = text:sub(1, keep_bytes)
  elseif not keep_bytes then
    text = nil
    os.remove(path)
  end
  local header = text and text:match("^([^\n]*)\n")
  if header then
    self.columns = {}
    for c in header:gmatch("[^,]+") do self.columns[#self.columns + 1] = c end
  end
  self.file = assert(io.open(path, "ab"))
  return self
end

function Log:_header(extras)
  if self.columns then return end
  self.columns = {}
  for _, c in ipairs(LOG_BASE) do self.columns[#self.columns + 1] = c end
  for _, c in ipairs(extras or {}) do self.columns[#self.columns + 1] = c end
  self.file:write(table.concat(self.columns, ","), "\n")
end

function Log:_write(row)
  local cells = {}
  for i, c in ipairs(self.columns) do cells[i] = csv_number(row[c]) end
  self.file:write(table.concat(cells, ","), "\n")
end

--- Queues a step's row (writing the one before).
function Log:row(row, extras)
  self:_header(extras)
  if self.pending then self:_write(self.pending) end
  self.pending = row
  if lv.clock() - self.last_flush > 1 then
    self.file:flush()
    self.last_flush = lv.clock()
  end
end

--- Writes what is pending (with its val_elbo, if any) and flushes; returns
-- the file's size, the position a checkpoint records.
function Log:flush(val_elbo)
  self:_header()
  if self.pending then
    if val_elbo ~= nil then self.pending.val_elbo = val_elbo end
    self:_write(self.pending)
    self.pending = nil
  end
  self.file:flush()
  self.last_flush = lv.clock()
  return self.file:seek("end")
end

function Log:close()
  if self.file then
    self:flush()
    self.file:close()
    self.file = nil
  end
end

--- The log of a process that writes no files (a data-parallel rank other
-- than 0): it takes the rows and keeps nothing.
local NullLog = { row = function() end, flush = function() end, close = function() end }

--- The rows of a log.csv as tables of numbers by column name (empty cells
-- absent; "nan"/"inf" cells as numbers).
function M.read_log(path)
  local text = read_file(path)
  if not text then return nil end
  local columns, rows = nil, {}
  for line in text:gmatch("[^\n]+") do
    local cells = {}
    for c in (line .. ","):gmatch("([^,]*),") do cells[#cells + 1] = c end
    if not columns then
      columns = cells
    else
      local row = {}
      for i, c in ipairs(columns) do
        local v = cells[i]
        if v and v ~= "" then
          row[c] = (v == "nan" and 0 / 0) or (v == "inf" and math.huge) or (v == "-inf" and -math.huge)
                   or tonumber(v) or v
        end
      end
      rows[#rows + 1] = row
    end
  end
  return rows, columns
end

---- progress ----------------------------------------------------------------------------

-- On a terminal: one line rewritten in place,
--   epoch 2/10 [########............] 120/600 1830 it/s ETA 0:42 loss 187.3
-- Elsewhere: a plain line every --log-every batches. Both print a summary
-- line per epoch.

local Progress = {}
Progress.__index = Progress

local function new_progress(out, tty, quiet, log_every)
  return setmetatable({ out = out, tty = tty, quiet = quiet, log_every = log_every,
                        shown = false, last_draw = -1 }, Progress)
end

function Progress:clear()
  if self.shown then
    self.out:write("\r\27[K")
    self.out:flush()
    self.shown = false
  end
end

function Progress:line(text)
  if self.quiet then return end
  self:clear()
  self.out:write(text, "\n")
  self.out:flush()
end

function Progress:start_epoch(epoch, epochs, n_batches)
  self.epoch, self.epochs, self.n_batches = epoch, epochs, n_batches
  self.t0, self.items, self.loss_sum, self.batches = lv.clock(), 0, 0, 0
end

function Progress:rate()
  local dt = lv.clock() - self.t0
  return dt > 0 and self.items / dt or 0, dt > 0 and self.batches / dt or 0
end

function Progress:update(batch, items, loss)
  self.batches, self.items, self.loss_sum = batch, self.items + items, self.loss_sum + loss
  if self.quiet then return end
  local items_rate, batch_rate = self:rate()
  local mean = self.loss_sum / self.batches
  if self.tty then
    local now = lv.clock()
    if now - self.last_draw < 0.1 and batch ~= self.n_batches then return end
    self.last_draw = now
    local text
    if self.n_batches then
      local width = 20
      local filled = math.min(width, math.floor(width * batch / self.n_batches))
      local left = (self.n_batches - batch) + (self.epochs - self.epoch) * self.n_batches
      text = string.format("epoch %d/%d [%s%s] %d/%d %.0f it/s ETA %s loss %.4g", self.epoch,
        self.epochs, string.rep("#", filled), string.rep(".", width - filled), batch, self.n_batches,
        items_rate, batch_rate > 0 and duration(left / batch_rate) or "?", mean)
    else
      text = string.format("epoch %d/%d %d batches %.0f it/s loss %.4g", self.epoch, self.epochs,
        batch, items_rate, mean)
    end
    self.out:write("\r\27[K", text)
    self.out:flush()
    self.shown = true
  elseif self.log_every > 0 and batch % self.log_every == 0 then
    self:line(string.format("epoch %d/%d batch %d%s %.0f it/s loss %.6g", self.epoch, self.epochs,
      batch, self.n_batches and ("/" .. self.n_batches) or "", items_rate, mean))
  end
end

--- A task outside the epochs (an evaluation): done of total units since t0.
function Progress:task(label, done, total, t0)
  if self.quiet then return end
  local now = lv.clock()
  local fraction = total > 0 and math.min(1, done / total) or 1
  local elapsed = now - t0
  if fraction >= 1 then
    self:line(string.format("%s: done in %s", label, duration(elapsed)))
    return
  end
  local eta = fraction > 0 and duration(elapsed * (1 - fraction) / fraction) or "?"
  if self.tty then
    if now - self.last_draw < 0.1 then return end
    self.last_draw = now
    local width = 20
    local filled = math.floor(width * fraction)
    self.out:write("\r\27[K", string.format("%s [%s%s] %d%% ETA %s", label, string.rep("#", filled),
      string.rep(".", width - filled), math.floor(100 * fraction), eta))
    self.out:flush()
    self.shown = true
  else
    local tenth = math.floor(10 * fraction)
    if self.task_t0 ~= t0 then self.task_t0, self.task_tenth = t0, 0 end
    if tenth > self.task_tenth then
      self.task_tenth = tenth
      self:line(string.format("%s: %d%% ETA %s", label, 10 * tenth, eta))
    end
  end
end

--- The epoch's summary line (the run prints it and keeps it in messages.log).
function Progress:epoch_summary(extra)
  local items_rate = self:rate()
  local mean = self.batches > 0 and self.loss_sum / self.batches or 0 / 0
  return string.format("epoch %d/%d: %d batches in %.1f s (%.0f it/s), loss %.6g%s", self.epoch,
    self.epochs, self.batches, lv.clock() - self.t0, items_rate, mean, extra or "")
end

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
  local f = io.open(self.dir .. "/messages.log", "ab")
  if f then
    f:write(text, "\n")
    f:close()
  end
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
  local t0, progress = lv.clock(), self.progress
  return function(done, total) progress:task(label, done, total, t0) end
end

--- A warning or the message a run ends with: on stderr, and in
-- messages.log with the rest of the run's story.
function Run:_warn(text)
  self.progress:clear()
  local who = self.ranks > 1 and string.format("rank %d of %d: ", self.rank, self.ranks) or ""
  self.err:write("lvae run: ", who, text, "\n")
  self.err:flush()
  local f = self.main and self.dir and io.open(self.dir .. "/messages.log", "ab")
  if f then
    f:write("lvae run: ", text, "\n")
    f:close()
  end
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

local function plain_config(config)
  local t = {}
  for k, v in pairs(config) do t[k] = v end
  return t
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
    config = plain_config(self.config),
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
  local names = {}
  local listing = command_output("ls -1A " .. quote(dir .. "/checkpoints")) or ""
  for name in listing:gmatch("[^\n]+") do names[#names + 1] = name end
  return names
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
  local rows, columns = M.read_log(self.dir .. "/log.csv")
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

---- data-parallel training ---------------------------------------------------------------

--- The metrics' names in a fixed order (every process combines them alike).
local function sorted_keys(t)
  local keys = {}
  for k in pairs(t or {}) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  return keys
end

--- Joins the processes of an MPI job in one run: checks that they were
-- started alike, gives them rank 0's parameters, and has the optimizer
-- combine their gradients. Called after setup (and a checkpoint's
-- restore), before the first step.
function Run:_join_parallel()
  local state = self.state
  local opt = state.optimizer or state.opt
  if type(opt) ~= "table" or type(opt.params) ~= "table" or type(opt._apply) ~= "function" then
    error("data-parallel training (MPI) needs the state's optimizer (state.optimizer or state.opt, an "
      .. "lvae.optim optimizer): its gradients are what the processes combine", 0)
  end
  local params, seen = {}, {}
  local function add(p)
    if lv.is_tensor(p) and not seen[p] then params[#params + 1], seen[p] = p, true end
  end
  if type(state.model) == "table" and state.model.parameters then
    for _, p in ipairs(state.model:parameters()) do add(p) end
  end
  for _, p in ipairs(opt.params) do add(p) end
  local shapes = {}
  for i, p in ipairs(params) do shapes[i] = p:dtype() .. "[" .. table.concat(p:size(), ",") .. "]" end
  local options = {}
  for _, k in ipairs(sorted_keys(self.config)) do
    local o = self.option_kinds[k]
    if not (o and o.resume == "process") then options[#options + 1] = k .. "=" .. tostring(self.config[k]) end
  end
  D.agree("options", table.concat(options, " "))
  D.agree("parameter shapes", table.concat(shapes, " "))
  lv.no_grad(function() D.broadcast_parameters(params) end)
  -- the optimizer combines the processes' gradients in every update, the
  -- sending started while its backward pass still runs
  opt.reducer = D.Reducer(opt.params)
  self.parallel = { params = params, reducer = opt.reducer }
end

--- One step on this process's rows of the batch: the experiment's step
-- with the rows' noise, its optimizer combining the gradients of all
-- processes; the loss and metrics returned are the batch's (each process's
-- weighted by its share of the rows; `n` summed).
function Run:_parallel_step(batch)
  local n = D.batch_rows(batch)
  if n < self.ranks then
    error(string.format("a batch of %d rows cannot be split over %d processes: every process needs at "
      .. "least one row (use a larger batch or fewer processes)", n, self.ranks), 0)
  end
  local first, count = D.rows(n, self.rank, self.ranks)
  local mine = D.take(batch, first, count, n)
  if self.batch == 1 then
    local t = lv.is_tensor(batch) and batch or batch.x or batch[1]
    D.agree(string.format("first batch of epoch %d (CRC-32; were the processes given the same data?)",
      self.epoch), D.checksum({ t }))
  end
  local reducer = self.parallel.reducer
  local steps_before = reducer.steps
  reducer.weight = count / n
  local loss, metrics = D.with_shard(first, count, n, function()
    return self.experiment.step(self, self.state, mine)
  end)
  if loss == nil then error("step must return the loss", 0) end
  if reducer.steps - steps_before ~= 1 then
    error(string.format("under data-parallel training a step must update the parameters through its "
      .. "optimizer exactly once (opt:step(loss), or backward then opt:update()); this one did %d times",
      reducer.steps - steps_before), 0)
  end
  if metrics ~= nil and type(metrics) ~= "table" then error("step's second result must be a table of metrics", 0) end
  local w = count / n
  local keys = sorted_keys(metrics)
  local values = { w * as_number(loss, "the loss") }
  for i, k in ipairs(keys) do
    local x = as_number(metrics[k], "metric '" .. tostring(k) .. "'")
    values[i + 1] = (k == "n") and x or w * x
  end
  values = lv.mpi.allreduce_number(values)
  local combined = metrics and {} or nil
  for i, k in ipairs(keys) do combined[k] = values[i + 1] end
  -- the learning rate is every process's own (the same), not a sum
  if combined and combined.lr ~= nil then combined.lr = as_number(metrics.lr, "metrics.lr") end
  return values[1], combined
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
      loss_value, metrics = self:_parallel_step(batch)
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
          if type(k) == "string" and not RESERVED_METRICS[k] then self.extras[#self.extras + 1] = k end
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
  local out = command_output("git -C " .. quote(dir) .. " rev-parse --show-toplevel HEAD")
  local top, commit = (out or ""):match("^([^\n]+)\n(%x+)")
  if not commit then return { commit = "unknown" } end
  local info = { commit = commit, top = top }
  if with_status ~= false then
    local status = command_output("git -C " .. quote(dir) .. " status --porcelain --untracked-files=no")
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

local function option_value(args, flag)
  for i, a in ipairs(args) do
    if type(a) ~= "string" then a = "" end
    if a == flag then return args[i + 1] end
    if a:sub(1, #flag + 1) == flag .. "=" then return a:sub(#flag + 2) end
  end
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
     and option_value(args, "--resume") then
    local saved = read_json(option_value(args, "--resume") .. "/config.json")
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
  local own, runner, by_target = declared_options(exp, file)
  local parser = build_parser(file, exp, own, runner)
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
  local config = setmetatable({}, config_mt)
  for target, o in pairs(by_target) do
    local v = parsed[target]
    if o.kind == "flag" then v = v or false end
    if target ~= "resume" and target ~= "help" then config[target] = v end
  end

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
    local merged = setmetatable(ck.config, config_mt)
    for target, o in pairs(by_target) do
      if o.resume == "process" then
        merged[target] = config[target]
      elseif given(args, o) then
        if o.resume == "keep" then
          merged[target] = config[target]
        elseif config[target] ~= merged[target] then
          return nil, 1, string.format("%s cannot change on --resume (the run used %s, not %s); "
            .. "start a new run instead", o.flag:match("%-%-%S+") or o.flag, tostring(merged[target]),
            tostring(config[target]))
        end
      end
    end
    for target, o in pairs(by_target) do     -- options the run's experiment did not have yet
      if merged[target] == nil and target ~= "resume" then merged[target] = config[target] end
    end
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
  local git = git_info(dirname(self.file))
  git.top = nil
  if self.resumed then
    cfg = read_json(path) or {}
    cfg.resumes = type(cfg.resumes) == "table" and cfg.resumes or {}
    cfg.resumes[#cfg.resumes + 1] = {
      time = os.date("!%Y-%m-%dT%H:%M:%SZ"), from = self.checkpoint_name,
      argv = self.args, options = plain_config(self.config), git = git,
    }
  else
    local host = read_file("/proc/sys/kernel/hostname")
    local mine = git_info(dirname(debug.getinfo(1, "S").source:sub(2)), false)
    local lvae = { version = lv.version, commit = mine.commit ~= git.commit and mine.commit or nil }
    cfg = {
      name = self.experiment.name, file = self.file, dir = self.dir, argv = self.args,
      options = plain_config(self.config), seed = self.seed,
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
      self.csv = open_log(self.dir .. "/log.csv", ck and ck.log_bytes or nil)
    end
  elseif exp.step then
    self.csv = NullLog
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
  if exp.step and self.ranks > 1 then self:_join_parallel() end
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

--- A stream that keeps nothing: the terminal of a process other than rank 0.
local NullStream = { write = function(self) return self end, flush = function() end }

--- Ends every process of the job after this one failed or was
-- interrupted (an error on one process leaves the others waiting in a
-- collective). Rank 0 has written results.json by now; another process
-- first gives rank 0 a moment to write it, in case rank 0 is stopping
-- too. Checkpoints are whole files (written, then renamed): the last one
-- stays intact.
local function stop_job(run, code)
  if not run.main then
    local t = lv.clock()
    while lv.clock() - t < 2 do end
  end
  lv.mpi.abort(code)
end

--- Whether the command line asks for --distributed.
local function asks_distributed(args)
  for _, a in ipairs(args) do
    if a == "--distributed" then return true end
  end
  return false
end

--- Joins the MPI job this process was started in (by mpirun, or with
-- --distributed): returns rank and size (0, 1 alone), or nil and the
-- message.
local function join_job(args, err)
  if not (lv.mpi.launched() or asks_distributed(args)) then return 0, 1 end
  local ok, rank, size = pcall(lv.mpi.init)
  if not ok then
    err:write("lvae run: ", tostring(rank), "\n")
    return nil, tostring(rank)
  end
  return rank, size
end

--- The processes' start, compared: when one could not start (it says
-- why itself), every process stops; otherwise the others take rank 0's
-- run folder. Returns prepare's results as this process should act on them.
local function agree_on_start(ok, run, status, message, told)
  local mine = not ok and "error" or not run and "stop" or "go"
  local all = lv.mpi.allgather_string(mine .. "\n" .. (mine == "go" and run.dir or ""))
  if mine ~= "go" then return ok, run, status, message, told end
  for r, text in ipairs(all) do
    if not text:match("^go\n") then
      return true, nil, 1, string.format("process %d of the job could not start", r - 1)
    end
  end
  if lv.mpi.rank() > 0 then run.dir = all[1]:match("^go\n(.*)$") end
  return ok, run, status, message, told
end

--- Runs an experiment: args are the command line after `lvae run`
-- ({"FILE.lua", "--K", "5", ...}); streams (optional) = {stdout = f,
-- stderr = f, tty = bool (default: whether stdout is a terminal)}.
-- Returns the exit status and the run (or the error message).
local run_locked   -- below main

function M.main(args, streams)
  local out = streams and streams.stdout or io.stdout
  local err = streams and streams.stderr or io.stderr
  local rank, ranks = join_job(args or {}, err)
  if not rank then return 1, ranks end
  -- the other processes of a job print nothing but their own errors
  if rank > 0 then out = NullStream end
  local ok, run, status, message, told = pcall(prepare, args or {}, out, err, rank)
  if ranks > 1 then
    ok, run, status, message, told = agree_on_start(ok, run, status, message, told)
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
  run.progress = new_progress(out, tty, c.quiet, c.log_every or 0)

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
  if ranks > 1 and status_code ~= 0 and status_code ~= 2 then stop_job(run, status_code) end
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
      number_name(result.value), run.last_good or "none")
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
