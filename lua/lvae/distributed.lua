--- lvae.distributed: data parallelism over the processes of one job
-- (lv.mpi, Open MPI). Each global batch is split by rows across the
-- processes; each process's rows meet the noise they would meet in one
-- process (a sharded generator draws that process's rows of the whole
-- batch's draw); gradients are combined with one all-reduce over a flat
-- buffer; evaluation over a data set is split the same way and gathered.
-- The result equals one process's at equal global batch, to float
-- summation order.
--
--   local D = lv.distributed
--   D.active(), D.rank(), D.size()       -- this process in the job (0 of 1 alone)
--   local first, count = D.rows(n)       -- this process's rows [first, first + count) of n
--   D.take(batch, first, count, n)       -- those rows of a batch (tensor, or a table of them)
--   D.with_shard(first, count, n, fn [, gen])   -- fn() with the noise of those rows
--   D.reduce_gradients(grads, params, weight)   -- Σ over processes of weight × grads
--   D.Reducer(params)                    -- the same, started while the backward pass runs
--   D.map_rows(x, batch, fn [, {gen}])   -- fn over x's rows, split and gathered
--   D.broadcast_parameters(params)       -- every process takes rank 0's values
--   D.checksum(tensors) -> string        -- CRC-32s of the tensors' bytes
--   D.agree(what, text)                  -- an error on every process unless all texts match
--   D.sync_generator([gen])              -- every process takes rank 0's generator state
--
-- With one process (no mpirun, or lv.mpi.init not called) each is what it
-- is with one rank: the whole batch, the gradients as they are, fn over
-- every row. Every function that communicates is collective: all
-- processes call it, in the same order.
--
-- Not here: the collectives themselves (src/distributed.c), the training
-- loop that uses these (lvae.run).

local lv = require "lvae.base"
local check = require "lvae.check"

local mpi = lv.mpi
local fail = check.fail

local M = {}

--- v as an integer >= 0 (an integral float too), else an error.
local function natural(where, what, v)
  local i = check.integral(v)
  if not i or i < 0 or i > check.MAX_COUNT then
    fail(where, "%s must be an integer from 0 to 2^31 - 1 (got %s)", what, check.typename(v) == "number"
      and tostring(v) or check.typename(v))
  end
  return i
end

--- A list of tensors, else an error naming the first that is not one.
local function tensor_list(where, what, list)
  if type(list) ~= "table" or lv.is_tensor(list) then
    fail(where, "%s must be a list of tensors (got %s)", what, check.typename(list))
  end
  for i = 1, #list do check.tensor(where, string.format("%s[%d]", what, i), list[i]) end
  return list
end

function M.active() return mpi.active() end
function M.rank() return mpi.rank() end
function M.size() return mpi.size() end

--- rows(n [, rank, size]) -> first, count: a balanced split of n rows,
-- rank r taking rows [first, first + count) (0-based), the first n % size
-- ranks one more than the others; rank 0 always has a row when n >= 1.
function M.rows(n, rank, size)
  local where = "distributed.rows"
  n = natural(where, "n", n)
  size = size == nil and mpi.size() or check.count(where, "size", size)
  rank = rank == nil and mpi.rank() or natural(where, "rank", rank)
  if rank >= size then fail(where, "rank must lie in [0, %d) (got %d)", size, rank) end
  local base, extra = n // size, n % size
  return rank * base + math.min(rank, extra), base + (rank < extra and 1 or 0)
end

--- The number of rows of a batch: a tensor's first size, or that of the
-- table's .x (else [1]).
function M.batch_rows(batch)
  local t = batch
  if type(batch) == "table" and not lv.is_tensor(batch) then t = batch.x or batch[1] end
  if not lv.is_tensor(t) or (check.typename(t) == "a tensor" and t:dim() < 1) or check.typename(t) ~= "a tensor" then
    fail("distributed.batch_rows", "a batch must be a tensor [B, ...] or a table whose x (or [1]) is one, "
      .. "to be split across processes (got %s)", check.typename(t))
  end
  return t:size(1)
end

--- take(batch, first, count, n): rows [first, first + count) of a batch
-- of n rows: of the tensor, or of every tensor field of the table whose
-- first size is n (other fields as they are).
function M.take(batch, first, count, n)
  local where = "distributed.take"
  n = natural(where, "n", n)
  first, count = natural(where, "first", first), natural(where, "count", count)
  if first + count > n then
    fail(where, "rows [%d, %d) lie outside the batch's %d rows", first, first + count, n)
  end
  if type(batch) ~= "table" and not lv.is_tensor(batch) then
    fail(where, "batch must be a tensor or a table of tensors (got %s)", check.typename(batch))
  end
  if lv.is_tensor(batch) then
    if M.batch_rows(batch) ~= n then
      fail(where, "the batch has %d rows, not n = %d", batch:size(1), n)
    end return batch:narrow(1, first + 1, count) end
  local out = {}
  for k, v in pairs(batch) do
    if lv.is_tensor(v) and v:dim() > 0 and v:size(1) == n then
      out[k] = v:narrow(1, first + 1, count)
    else
      out[k] = v
    end
  end
  return setmetatable(out, getmetatable(batch))
end

--- A to-be-closed value that gives the generators (the default one, and
-- gen when given) the shard (first, count, total) and puts their former
-- shards back when it goes out of scope, on an error too.
local function sharded(first, count, total, gen)
  local gens = { { set = lv.set_shard, get = lv.shard } }
  if gen then
    gens[2] = { set = function(...) return gen:set_shard(...) end, get = function() return gen:shard() end }
  end
  local before = {}
  for i, g in ipairs(gens) do before[i] = table.pack(g.get()) end
  for _, g in ipairs(gens) do g.set(first, count, total) end
  return setmetatable({}, { __close = function()
    for i, g in ipairs(gens) do g.set(table.unpack(before[i], 1, before[i].n)) end
  end })
end

--- with_shard(first, count, total, fn [, gen]) -> fn's results: fn run
-- while the default generator (and gen) draw batch noise as rows [first,
-- first + count) of a batch of total rows (lv.set_shard).
function M.with_shard(first, count, total, fn, gen)
  local where = "distributed.with_shard"
  check.fn(where, "fn", fn)
  check.generator(where, "gen", gen)
  first, count, total = natural(where, "first", first), natural(where, "count", count), natural(where, "total", total)
  if count < 1 or first + count > total then
    fail(where, "rows [%d, %d) must be at least one and lie within the batch's %d rows", first, first + count, total)
  end
  local _ <close> = sharded(first, count, total, gen)
  return fn()
end

--- The generator's state as text, exact (64-bit integers).
local function state_text(gen)
  local s = gen and gen:get_state() or lv.get_rng_state()
  return string.format("%d %d", s.seed, s.offset)
end

--- sync_generator([gen]): every process takes rank 0's state of the
-- default generator (or gen): after a step in which some processes drew
-- nothing (a batch smaller than the job).
function M.sync_generator(gen)
  check.generator("distributed.sync_generator", "gen", gen)
  if not mpi.active() then return end
  local seed, offset = mpi.allgather_string(state_text(gen))[1]:match("^(%-?%d+) (%-?%d+)$")
  local state = { seed = math.tointeger(seed), offset = math.tointeger(offset) }
  if gen then gen:set_state(state) else lv.set_rng_state(state) end
end

--- Reducer(params [, {bucket_bytes}]) -> reducer: combines the gradients
-- of params across the processes of a job (src/reducer.c): the
-- parameters, last first, in buckets of one dtype of at most bucket_bytes
-- (4 MiB); a bucket's all-reduce starts as soon as its last gradient is
-- final. In a step: reducer:begin(); lv.grad(loss, params, {on_ready =
-- reducer.hook}) hands it each gradient as the pass finishes it;
-- reducer:finish(grads [, views]) -> the gradients, each the sum over
-- processes of weight x this process's gradient (nil where no process had
-- one); with views, views of the buckets, valid until the next step. The
-- pass sums each gradient straight into its place in the bucket (the
-- reducer's buffers, lv.grad's into). Set
-- reducer.weight to this process's share of the rows (1 by default);
-- reducer.steps counts the steps finished. An optimizer whose `reducer`
-- field is one uses it in every update (lvae.optim).
local Reducer = {}
Reducer.__index = Reducer

function M.Reducer(params, opts)
  local where = "distributed.Reducer"
  tensor_list(where, "params", params)
  opts = check.options(where, opts, { "bucket_bytes" })
  if opts.bucket_bytes ~= nil then
    local b = check.integral(opts.bucket_bytes)
    if not b or b < 0 then
      fail(where, "option 'bucket_bytes' must be an integer >= 0 (got %s)", tostring(opts.bucket_bytes))
    end
  end
  return setmetatable({ hook = check.call(where, mpi.Reducer, params, opts), weight = 1, steps = 0,
                        n = #params }, Reducer)
end

function Reducer:begin() self.hook:begin(self.weight) end

--- The gradients the pass did not hand over yet (all of them, for the
-- .grad route) go in now; then the combined ones come back: tensors of
-- their own, or with views, views of the buckets that the next step
-- overwrites (for an optimizer that uses them at once).
function Reducer:finish(grads, views)
  for j = 1, self.n do
    if grads[j] ~= nil then self.hook:ready(j, grads[j]) end
  end
  self.steps = self.steps + 1
  return self.hook:finish(views and true or false)
end

function Reducer:buckets() return self.hook:buckets() end

--- reduce_gradients(grads, params, weight) -> grads: each gradient
-- becomes Σ over processes of weight × this process's gradient (weight:
-- this process's share of the batch's rows, so that a loss that is a mean
-- over rows gives the gradient of the mean over the whole batch), at once
-- (a Reducer made for the call). A gradient that no process had stays
-- nil. grads[i] belongs to params[i].
function M.reduce_gradients(grads, params, weight)
  local where = "distributed.reduce_gradients"
  tensor_list(where, "params", params)
  if type(grads) ~= "table" or lv.is_tensor(grads) then
    fail(where, "grads must be a list of tensors (nil where unused; got %s)", check.typename(grads))
  end
  for i = 1, #params do
    if grads[i] ~= nil then check.tensor(where, string.format("grads[%d]", i), grads[i]) end
  end
  if math.type(weight) == nil or not (weight >= 0 and weight <= 1) then
    fail(where, "weight must be a number in [0, 1], this process's share of the rows (got %s)", tostring(weight))
  end
  local reducer = M.Reducer(params)
  reducer.weight = weight
  reducer:begin()
  return reducer:finish(grads)
end

--- broadcast_parameters(params): every process's parameters take rank
-- 0's values (at the start, so that all begin from one initialisation).
function M.broadcast_parameters(params)
  tensor_list("distributed.broadcast_parameters", "params", params)
  if not mpi.active() then return end
  local list = {}
  for i, p in ipairs(params) do
    if not p:is_contiguous() then
      fail("distributed.broadcast_parameters", "parameter %d is not contiguous", i)
    end
    list[i] = p:detach()
  end
  mpi.broadcast(list, 0)
end

--- checksum(tensors) -> text: the CRC-32 of each tensor's dtype, shape
-- and bytes, in order: equal on two processes when they hold the same
-- values, bit for bit.
function M.checksum(tensors)
  tensor_list("distributed.checksum", "tensors", tensors)
  local parts = {}
  for i, t in ipairs(tensors) do parts[i] = string.format("%08x", lv.crc32(t:contiguous())) end
  return table.concat(parts, " ")
end

--- agree(what, text): returns when every process passed the same text;
-- otherwise raises, on every process, an error naming the first rank
-- whose `what` differs from rank 0's.
function M.agree(what, text)
  if type(what) ~= "string" then fail("distributed.agree", "what must be a string (got %s)", check.typename(what)) end
  if type(text) ~= "string" then fail("distributed.agree", "text must be a string (got %s)", check.typename(text)) end
  if not mpi.active() then return end
  local all = mpi.allgather_string(text)
  for r = 2, #all do
    if all[r] ~= all[1] then
      local a, b = all[1], all[r]
      local i = 1
      while i <= #a and a:sub(i, i) == b:sub(i, i) do i = i + 1 end
      local from = math.max(1, i - 20)
      error(string.format("rank %d's %s differ from rank 0's (rank 0: ...%s..., rank %d: ...%s...)",
        r - 1, what, a:sub(from, i + 40), r - 1, b:sub(from, i + 40)), 0)
    end
  end
end

--- The outputs of fn as a list of tensors, each with the batch's rows first.
local function outputs(where, ...)
  local outs = table.pack(...)
  for i = 1, outs.n do
    if not lv.is_tensor(outs[i]) or outs[i]:dim() < 1 then
      fail(where, "fn's result %d must be a tensor whose first dimension is the rows "
        .. "(got %s)", i, check.typename(outs[i]))
    end
  end
  return outs
end

--- "dtype:d2,d3;dtype:..." of the outputs after their first dimension.
local function layout(outs)
  local parts = {}
  for i = 1, outs.n do
    local size = outs[i]:size()
    table.remove(size, 1)
    parts[i] = outs[i]:dtype() .. ":" .. table.concat(size, ",")
  end
  return table.concat(parts, ";")
end

--- Empty tensors of a layout's dtypes and trailing sizes.
local function empties(text)
  local outs = { n = 0 }
  for dtype, dims in text:gmatch("(%w+):([%d,]*)") do
    local shape = { 0 }
    for d in dims:gmatch("%d+") do shape[#shape + 1] = tonumber(d) end
    outs.n = outs.n + 1
    outs[outs.n] = lv.zeros(shape, dtype)
  end
  return outs
end

--- map_rows(x, batch, fn [, {gen}]) -> results of fn over all rows of x:
-- x's rows go in global batches of `batch`; each batch is split across the
-- processes (D.rows), each calls fn(rows_of_x, first_row) with its rows
-- (first_row 1-based in x) while its generators draw those rows' part of
-- the whole batch's noise, and the results (tensors whose first dimension
-- is the rows, one or several) are gathered in row order on every
-- process. With one process it is fn over x in batches, concatenated;
-- with several, the same numbers.
function M.map_rows(x, batch, fn, opts)
  local where = "distributed.map_rows"
  check.tensor(where, "x", x)
  if x:dim() < 1 or x:size(1) < 1 then fail(where, "x must have at least one row") end
  batch = check.count(where, "batch", batch)
  check.fn(where, "fn", fn)
  opts = check.options(where, opts, { "gen" })
  local gen = check.generator(where, "option 'gen'", opts.gen)
  local N, size = x:size(1), mpi.size()
  local parts = {}
  for start = 1, N, batch do
    local nb = math.min(batch, N - start + 1)
    local first, count = M.rows(nb)
    local outs
    if count > 0 then
      local rows = x:narrow(1, start + first, count)
      if mpi.active() then
        outs = outputs(where, M.with_shard(first, count, nb, function() return fn(rows, start + first) end, gen))
      else
        outs = outputs(where, fn(rows, start))
      end
    end
    if nb < size and mpi.active() then
      -- processes without rows drew nothing: they take rank 0's generator
      -- and the shapes of its results
      local shape = mpi.allgather_string(outs and layout(outs) or "")[1]
      outs = outs or empties(shape)
      M.sync_generator()
      if gen then M.sync_generator(gen) end
    end
    for i = 1, outs.n do
      parts[i] = parts[i] or {}
      parts[i][#parts[i] + 1] = mpi.active() and mpi.allgather(outs[i]:contiguous()) or outs[i]
    end
  end
  local results = {}
  for i, list in ipairs(parts) do results[i] = #list == 1 and list[1] or lv.cat(list, 1) end
  return table.unpack(results)
end

return M
