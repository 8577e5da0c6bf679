--- lvae.run.parallel: the runner's data-parallel training over the
-- processes of an MPI job (`mpirun -np N ./lvae run FILE.lua`, or
-- --distributed). Every process runs the same run: rank 0 makes the run
-- folder and writes in it, the others take its name and print nothing but
-- their errors. They check that they were started alike, take rank 0's
-- parameters, and each step splits the batch's rows between them, their
-- optimizer combining the gradients; the loss and metrics are the whole
-- batch's.
--
--   local rank, size = parallel.join_job(args, err)       -- before the run is prepared
--   ok, run, ... = parallel.agree_on_start(ok, run, ...)   -- after
--   parallel.join(run)                                     -- after setup, before the first step
--   local loss, metrics = parallel.step(run, batch)        -- in place of the experiment's step
--   parallel.stop_job(run, code)                           -- one process failed: end them all
--
-- Not here: the collectives and the row split themselves
-- (lvae.distributed, src/distributed.c), the loop (lvae.run).

local lv = require "lvae.base"
local D = require "lvae.distributed"
local log = require "lvae.run.log"
local options = require "lvae.run.options"

local M = {}

local as_number = log.as_number

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
function M.join(run)
  local state = run.state
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
  local settings = {}
  for _, k in ipairs(sorted_keys(run.config)) do
    local o = run.option_kinds[k]
    if not (o and o.resume == "process") then settings[#settings + 1] = k .. "=" .. tostring(run.config[k]) end
  end
  D.agree("options", table.concat(settings, " "))
  D.agree("parameter shapes", table.concat(shapes, " "))
  lv.no_grad(function() D.broadcast_parameters(params) end)
  -- the optimizer combines the processes' gradients in every update, the
  -- sending started while its backward pass still runs
  opt.reducer = D.Reducer(opt.params)
  run.parallel = { params = params, reducer = opt.reducer }
end

--- One step on this process's rows of the batch: the experiment's step
-- with the rows' noise, its optimizer combining the gradients of all
-- processes; the loss and metrics returned are the batch's (each process's
-- weighted by its share of the rows; `n` summed).
function M.step(run, batch)
  local n = D.batch_rows(batch)
  if n < run.ranks then
    error(string.format("a batch of %d rows cannot be split over %d processes: every process needs at "
      .. "least one row (use a larger batch or fewer processes)", n, run.ranks), 0)
  end
  local first, count = D.rows(n, run.rank, run.ranks)
  local mine = D.take(batch, first, count, n)
  if run.batch == 1 then
    local t = lv.is_tensor(batch) and batch or batch.x or batch[1]
    D.agree(string.format("first batch of epoch %d (CRC-32; were the processes given the same data?)",
      run.epoch), D.checksum({ t }))
  end
  local reducer = run.parallel.reducer
  local steps_before = reducer.steps
  reducer.weight = count / n
  local loss, metrics = D.with_shard(first, count, n, function()
    return run.experiment.step(run, run.state, mine)
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

--- A stream that keeps nothing: the terminal of a process other than rank 0.
M.NullStream = { write = function(self) return self end, flush = function() end }

--- Ends every process of the job after this one failed or was
-- interrupted (an error on one process leaves the others waiting in a
-- collective). Rank 0 has written results.json by now; another process
-- first gives rank 0 a moment to write it, in case rank 0 is stopping
-- too. Checkpoints are whole files (written, then renamed): the last one
-- stays intact.
function M.stop_job(run, code)
  if not run.main then
    local t = lv.clock()
    while lv.clock() - t < 2 do end
  end
  lv.mpi.abort(code)
end

--- Joins the MPI job this process was started in (by mpirun, or with
-- --distributed): returns rank and size (0, 1 alone), or nil and the
-- message.
function M.join_job(args, err)
  if not (lv.mpi.launched() or options.asks_distributed(args)) then return 0, 1 end
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
function M.agree_on_start(ok, run, status, message, told)
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

return M
