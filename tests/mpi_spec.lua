-- mpi_spec.lua -- lv.mpi (src/lua_mpi.c over src/distributed.c): the
-- processes of one job and their collectives (issue 15).
--
-- Two halves. Without mpirun (in this busted process, and in a child
-- ./lvae for abort) the job is one process of one and every collective is
-- the identity. Under mpirun -np 1, 2 and 4, one small script (JOB below)
-- runs its checks on every rank and writes each check's outcome to a file
-- per rank; an `it` here reads a check's line from every rank's file. The
-- values are chosen so that every sum is exact in f32 (small integers and
-- quarters), so that the results do not depend on the order in which MPI
-- adds them. A last launch has rank 1 abort while rank 0 waits in a
-- barrier. Every launch runs under `timeout`: a collective that hangs
-- becomes a failure, not a stuck suite.
--
-- Without mpirun on the PATH, or in a build without Open MPI, the mpirun
-- half is pending with the reason.

local lv = require "lvae"
local H = require "helpers"

local sh_quote = H.sh_quote

local dir = H.make_dir("lvae_mpi_spec")
local LAUNCH_TIMEOUT = 60           -- seconds; a launch takes about 0.5 s

local have_mpirun = os.execute("command -v mpirun >/dev/null 2>&1") == true
local why_pending = not lv.mpi.compiled() and "this build has no Open MPI (install libopenmpi-dev, then make)"
  or not have_mpirun and "mpirun is not installed (Debian's openmpi-bin)"
  or nil

--- Runs a shell command; returns its output (stdout and stderr), its exit
-- status and the seconds it took.
local function run(cmd)
  local started = lv.clock()
  local p = assert(io.popen("( " .. cmd .. " ) 2>&1; echo \"status $?\""))
  local out = p:read("a")
  p:close()
  local status = tonumber(out:match("status (%d+)\n?$"))
  return out:gsub("status %d+\n?$", ""), status, lv.clock() - started
end

local function mpirun(np, script, ...)
  local args = { ... }
  for i, a in ipairs(args) do args[i] = sh_quote(tostring(a)) end
  return run(string.format("timeout %d mpirun --allow-run-as-root --oversubscribe -np %d ./lvae %s %s",
    LAUNCH_TIMEOUT, np, sh_quote(script), table.concat(args, " ")))
end

teardown(function() os.execute("rm -rf " .. sh_quote(dir)) end)

---- one process of one -------------------------------------------------------------------

describe("lv.mpi without mpirun", function()
  teardown(function() lv.mpi.finalize() end)

  it("is one process of one, before and after init", function()
    assert.is_boolean(lv.mpi.compiled())
    assert.is_false(lv.mpi.launched())
    assert.is_false(lv.mpi.active())
    assert.equal(0, lv.mpi.rank())
    assert.equal(1, lv.mpi.size())
    local rank, size = lv.mpi.init()
    assert.equal(0, rank)
    assert.equal(1, size)
    assert.equal(0, lv.mpi.rank())
    assert.equal(1, lv.mpi.size())
    assert.is_false(lv.mpi.active())
    -- a second init is a no-op
    rank, size = lv.mpi.init()
    assert.same({ 0, 1 }, { rank, size })
  end)

  it("finalize then init again is fine", function()
    lv.mpi.init()
    lv.mpi.finalize()
    lv.mpi.finalize()
    assert.equal(1, lv.mpi.size())
    local rank, size = lv.mpi.init()
    assert.same({ 0, 1 }, { rank, size })
    assert.equal(3, lv.mpi.allreduce_number(3))
  end)

  it("allreduce leaves the values, returns its argument, and sends no bytes", function()
    lv.mpi.reset_comm_stats()
    for _, dtype in ipairs(H.dtypes) do
      local t = lv.tensor({ { 1.5, -2 }, { 3, 0.25 } }, dtype)
      for _, op in ipairs({ "sum", "max", "min" }) do
        assert.equal(t, lv.mpi.allreduce(t, op))
        assert.same({ { 1.5, -2 }, { 3, 0.25 } }, t:totable())
      end
      assert.equal(t, lv.mpi.allreduce(t))
      assert.equal(t, lv.mpi.allreduce(t, "sum", { bucket_bytes = 8 }))
      assert.same({ { 1.5, -2 }, { 3, 0.25 } }, t:totable())
    end
    local list = { lv.tensor({ 1, 2, 3 }), lv.tensor({ 4, 5 }, "f64"), lv.tensor(7) }
    assert.equal(list, lv.mpi.allreduce(list, "max", { bucket_bytes = 8 }))
    assert.same({ 1, 2, 3 }, list[1]:totable())
    assert.same({ 4, 5 }, list[2]:totable())
    assert.equal(7, list[3]:totable())
    local empty = {}
    assert.equal(empty, lv.mpi.allreduce(empty))
    local stats = lv.mpi.comm_stats()
    assert.same({ seconds = 0, allreduce_bytes = 0 }, stats)
  end)

  it("allreduce refuses a non-contiguous tensor, a bad op and a bad bucket_bytes", function()
    local t = lv.zeros({ 2, 3 }):t()
    H.expect_error(function() lv.mpi.allreduce(t) end, "allreduce", "tensor 1 is not contiguous")
    H.expect_error(function() lv.mpi.allreduce({ lv.zeros({ 2 }), t }) end, "allreduce", "tensor 2 is not contiguous")
    H.expect_error(function() lv.mpi.broadcast({ lv.zeros({ 2 }), t }) end, "broadcast", "tensor 2 is not contiguous")
    H.expect_error(function() lv.mpi.allreduce(lv.zeros({ 2 }), "mean") end, "allreduce", "invalid option 'mean'")
    for _, bad in ipairs({ 2.5, "x", -1, true, 0 / 0 }) do
      H.expect_error(function() lv.mpi.allreduce(lv.zeros({ 2 }), "sum", { bucket_bytes = bad }) end,
        "bad argument #3 to 'allreduce'", "option 'bucket_bytes' must be an integer >= 0")
    end
    H.expect_error(function() lv.mpi.allreduce(lv.zeros({ 2 }), "sum", { bucket = 8 }) end, "unknown option 'bucket'")
  end)

  it("broadcast from root 0 is the identity; root 1 is an error naming broadcast", function()
    local t = lv.tensor({ 1, 2, 3 }, "f64")
    assert.equal(t, lv.mpi.broadcast(t))
    assert.equal(t, lv.mpi.broadcast(t, 0))
    assert.same({ 1, 2, 3 }, t:totable())
    H.expect_error(function() lv.mpi.broadcast(t, 1) end, "broadcast", "root 1 is not a rank of this job (0 to 0)")
    H.expect_error(function() lv.mpi.broadcast(t, -1) end, "broadcast", "root must be a rank")
  end)

  it("allgather copies", function()
    for _, dtype in ipairs(H.dtypes) do
      local t = lv.tensor({ { 1, 2 }, { 3, 4 } }, dtype)
      local g = lv.mpi.allgather(t)
      assert.is_false(rawequal(t, g))
      assert.equal(dtype, g:dtype())
      assert.same({ { 1, 2 }, { 3, 4 } }, g:totable())
      g:fill_(0)
      assert.same({ { 1, 2 }, { 3, 4 } }, t:totable())
    end
    assert.same({ 0 }, lv.mpi.allgather(lv.zeros({ 0 })):size())
    H.expect_error(function() lv.mpi.allgather(lv.tensor(2)) end, "allgather", "at least one dimension")
    H.expect_error(function() lv.mpi.allgather(lv.zeros({ 2, 3 }):t()) end, "allgather", "not contiguous")
  end)

  it("allreduce_number, allgather_string and barrier act on one process", function()
    assert.equal(2.5, lv.mpi.allreduce_number(2.5))
    assert.equal(-1, lv.mpi.allreduce_number(-1, "min"))
    assert.same({ 1, -2, 0.5 }, lv.mpi.allreduce_number({ 1, -2, 0.5 }, "max"))
    assert.same({}, lv.mpi.allreduce_number({}))
    assert.same({ "a\0b" }, lv.mpi.allgather_string("a\0b"))
    assert.same({ "" }, lv.mpi.allgather_string(""))
    assert.equal(0, select("#", lv.mpi.barrier()))
  end)

  it("abort(code) exits with the code, keeping what was written first", function()
    local script, log = dir .. "/abort1.lua", dir .. "/abort1.log"
    H.write_bytes(script, string.format([[
      local lv = require "lvae"
      io.output(%q)
      io.write("written before abort\n")
      lv.mpi.abort(5)
      io.stderr:write("abort returned\n")
    ]], log))
    local out, status = run("./lvae " .. sh_quote(script))
    assert.equal(5, status, out)
    assert.equal("written before abort\n", H.read_bytes(log))
    assert.is_nil(out:find("abort returned", 1, true), out)
  end)
end)

---- under mpirun ----------------------------------------------------------------------------

-- The job: arg[1] the folder for the outcome files, arg[2] the expected
-- number of ranks. Each check runs its collectives on every rank before it
-- asserts anything (a rank that stopped early would leave the others in a
-- collective), and records "ok" or its error.
local JOB = [==[
local lv = require "lvae"
local out_dir, expected_size = arg[1], tonumber(arg[2])
local rank, size = lv.mpi.init()
local S, r = size, rank
-- written line by line, so that a check that kills the process leaves the
-- earlier ones' outcomes
local results = assert(io.open(out_dir .. "/rank." .. rank, "w"))
results:setvbuf("line")

local function check(name, fn)
  local ok, err = pcall(fn)
  results:write(name, "\t", ok and "ok" or (tostring(err):gsub("[\t\n]", " ")), "\n")
end

-- numbers as text that tells 1 from 1.25 but not 1 from 1.0 (nor 0 from -0)
local function show(v)
  if type(v) == "number" then return v == 0 and "0" or string.format("%.17g", v) end
  if type(v) ~= "table" then return string.format("%q", v) end
  local parts = {}
  for i = 1, #v do parts[i] = show(v[i]) end
  return "{" .. table.concat(parts, ", ") .. "}"
end

local function same(want, got, what)
  if show(want) ~= show(got) then
    error(string.format("%s: expected %s, got %s", what, show(want), show(got)), 2)
  end
end

local function raises(fn, ...)
  local ok, err = pcall(fn)
  if ok then error("expected an error", 2) end
  for _, piece in ipairs({ ... }) do
    if not tostring(err):find(piece, 1, true) then
      error(string.format("error %q does not mention %q", tostring(err), piece), 2)
    end
  end
end

-- over every rank q: fn(q) combined with op
local function over_ranks(fn, op)
  local acc = fn(0)
  for q = 1, S - 1 do
    local v = fn(q)
    acc = op == "max" and math.max(acc, v) or op == "min" and math.min(acc, v) or acc + v
  end
  return acc
end

-- element i of rank q's tensor k: small integers and quarters, exact in f32
local function value(q, k, i) return ((i * 7 + k * 3 + q * 5) % 17 - 8) * (q + 1) + 0.25 * q end

local function filled(q, k, shape, dtype)
  local n = 1
  for _, d in ipairs(shape) do n = n * d end
  if n == 0 then return lv.zeros(shape, dtype) end
  if #shape == 0 then return lv.tensor(value(q, k, 1), dtype) end
  local flat = {}
  for i = 1, n do flat[i] = value(q, k, i) end
  return lv.tensor(flat, dtype):reshape(shape)
end

local function flat_values(t)
  local v = t:reshape({ -1 }):totable()
  return type(v) == "table" and v or { v }
end

local function expected(k, n, op)
  local v = {}
  for i = 1, n do v[i] = over_ranks(function(q) return value(q, k, i) end, op) end
  return v
end

check("init", function()
  same(expected_size, size, "size")
  same(tonumber(os.getenv("OMPI_COMM_WORLD_RANK")), rank, "rank")
  same(rank, lv.mpi.rank(), "lv.mpi.rank()")
  same(size, lv.mpi.size(), "lv.mpi.size()")
  same(S > 1, lv.mpi.active(), "active")
  same(S > 1, lv.mpi.launched(), "launched")
  same({ rank, size }, { lv.mpi.init() }, "a second init")
end)

check("allreduce sum, max, min of f32 and f64", function()
  for _, dtype in ipairs({ "f32", "f64" }) do
    for k, op in ipairs({ "sum", "max", "min" }) do
      local t = filled(r, k, { 2, 3 }, dtype)
      local back = lv.mpi.allreduce(t, op)
      same(true, rawequal(back, t), "allreduce returns its argument")
      same(expected(k, 6, op), flat_values(t), dtype .. " " .. op)
    end
    local t = filled(r, 9, { 5 }, dtype)
    lv.mpi.allreduce(t)
    same(expected(9, 5, "sum"), flat_values(t), dtype .. " default op")
  end
end)

check("allreduce of a list of both dtypes", function()
  local shapes = { { 2, 3 }, { 4 }, { 1 }, {}, { 3, 1, 2 } }
  local dtypes = { "f32", "f64", "f32", "f64", "f64" }
  for _, op in ipairs({ "sum", "max", "min" }) do
    local list = {}
    for k = 1, #shapes do list[k] = filled(r, k, shapes[k], dtypes[k]) end
    same(true, rawequal(lv.mpi.allreduce(list, op), list), "allreduce returns its argument")
    for k = 1, #shapes do
      same(expected(k, list[k]:numel(), op), flat_values(list[k]), op .. " tensor " .. k)
      same(dtypes[k], list[k]:dtype(), "dtype " .. k)
    end
  end
end)

check("bucketed allreduce equals the default", function()
  -- odd sizes, both dtypes interleaved; bucket_bytes 4 makes 156 buckets
  -- (more than the 64 requests allreduce keeps in flight)
  local shapes = { { 7 }, { 3, 5 }, { 11 }, { 1 }, { 13 }, { 100 }, { 5 }, { 0 } }
  local dtypes = { "f32", "f32", "f64", "f32", "f32", "f32", "f64", "f64" }
  for _, op in ipairs({ "sum", "max" }) do
    local function make()
      local list = {}
      for k = 1, #shapes do list[k] = filled(r, k, shapes[k], dtypes[k]) end
      return list
    end
    local default = lv.mpi.allreduce(make(), op)
    for _, bucket in ipairs({ 0, 1, 4, 8, 12, 20, 1 << 40 }) do
      local list = lv.mpi.allreduce(make(), op, { bucket_bytes = bucket })
      for k = 1, #shapes do
        same(flat_values(default[k]), flat_values(list[k]), op .. " bucket_bytes " .. bucket .. " tensor " .. k)
        same(expected(k, list[k]:numel(), op), flat_values(list[k]), op .. " tensor " .. k)
      end
    end
  end
end)

check("a non-contiguous tensor is refused on every rank", function()
  local good = filled(r, 1, { 3 }, "f32")
  local t = lv.zeros({ 2, 3 }):t()
  raises(function() lv.mpi.allreduce(t) end, "allreduce", "tensor 1 is not contiguous")
  raises(function() lv.mpi.allreduce({ good, t }) end, "allreduce", "tensor 2 is not contiguous")
  raises(function() lv.mpi.broadcast({ good, t }, 0) end, "broadcast", "tensor 2 is not contiguous")
  same({ value(r, 1, 1), value(r, 1, 2), value(r, 1, 3) }, flat_values(good), "the good tensor is untouched")
  -- and the job goes on
  same(S, lv.mpi.allreduce_number(1), "a collective after the refusals")
end)

check("broadcast from root 0 and from root 1", function()
  for _, root in ipairs({ 0, 1 }) do
    if root < S then
      local list = { filled(r, 1, { 2, 3 }, "f32"), filled(r, 2, { 4 }, "f64") }
      same(true, rawequal(lv.mpi.broadcast(list, root), list), "broadcast returns its argument")
      same(flat_values(filled(root, 1, { 2, 3 }, "f32")), flat_values(list[1]), "root " .. root .. " f32")
      same(flat_values(filled(root, 2, { 4 }, "f64")), flat_values(list[2]), "root " .. root .. " f64")
    end
  end
  local t = filled(r, 3, { 5 }, "f64")
  lv.mpi.broadcast(t)
  same(flat_values(filled(0, 3, { 5 }, "f64")), flat_values(t), "default root 0")
  raises(function() lv.mpi.broadcast(t, S) end, "broadcast", "root " .. S .. " is not a rank of this job")
end)

check("allgather of r + 1 rows per rank, in rank order", function()
  for _, dtype in ipairs({ "f32", "f64" }) do
    local rows = {}
    for j = 1, r + 1 do rows[j] = { 100 * r + 10 * j + 1, 100 * r + 10 * j + 2, 100 * r + 10 * j + 3 } end
    local mine = lv.tensor(rows, dtype)
    local all = lv.mpi.allgather(mine)
    local want = {}
    for q = 0, S - 1 do
      for j = 1, q + 1 do want[#want + 1] = { 100 * q + 10 * j + 1, 100 * q + 10 * j + 2, 100 * q + 10 * j + 3 } end
    end
    same({ S * (S + 1) // 2, 3 }, all:size(), dtype .. " shape")
    same(dtype, all:dtype(), "dtype")
    same(want, all:totable(), dtype .. " values")
  end
  -- a vector of r values: rank 0 gives none
  local v = lv.mpi.allgather(lv.full({ r }, r, "f64"))
  local want = {}
  for q = 0, S - 1 do for _ = 1, q do want[#want + 1] = q end end
  same({ #want }, v:size(), "ragged vector shape")
  same(want, #want > 0 and v:totable() or {}, "ragged vector values")
end)

check("allgather of mismatched tensors fails on every rank", function()
  if S == 1 then return end
  local last = S - 1
  raises(function() lv.mpi.allgather(r == last and lv.zeros({ 2, 4 }) or lv.zeros({ 2, 3 })) end,
    "allgather", "differs from rank", "in dtype or in a dimension after the first")
  raises(function() lv.mpi.allgather(r == last and lv.zeros({ 2, 3 }, "f64") or lv.zeros({ 2, 3 })) end,
    "allgather", "differs from rank")
  raises(function() lv.mpi.allgather(r == last and lv.zeros({ 2, 3, 1 }) or lv.zeros({ 2, 3 })) end,
    "allgather", "differs from rank")
  same(S, lv.mpi.allreduce_number(1), "a collective after the failures")
end)

check("allreduce_number of a number and of a list", function()
  same(S * (S + 1) / 2, lv.mpi.allreduce_number(r + 1), "sum")
  same(S, lv.mpi.allreduce_number(r + 1, "max"), "max")
  same(1, lv.mpi.allreduce_number(r + 1, "min"), "min")
  same({ S * (S - 1) / 2, -S * (S - 1) / 2, 0.5 * S }, lv.mpi.allreduce_number({ r, -r, 0.5 }), "list sum")
  same({ S - 1, 0 }, lv.mpi.allreduce_number({ r, -r }, "max"), "list max")
  same({}, lv.mpi.allreduce_number({}), "empty list")
end)

check("allgather_string of different lengths, empty and with a zero byte", function()
  local function str(q)
    if q == 0 then return "" end
    if q == 1 then return "a\0b" end
    return string.rep("rank", 10 * q) .. "\0" .. q .. "\0"
  end
  local all = lv.mpi.allgather_string(str(r))
  same(S, #all, "one string per rank")
  for q = 0, S - 1 do same(str(q), all[q + 1], "rank " .. q .. "'s string") end
end)

check("barrier", function()
  local f = assert(io.open(out_dir .. "/barrier." .. r, "w"))
  f:close()
  same(0, select("#", lv.mpi.barrier()), "barrier returns nothing")
  for q = 0, S - 1 do
    local g = io.open(out_dir .. "/barrier." .. q, "r")
    if not g then error("rank " .. q .. " had not reached the barrier") end
    g:close()
  end
end)

check("comm_stats counts seconds and allreduce bytes; reset zeroes them", function()
  lv.mpi.reset_comm_stats()
  same({ 0, 0 }, { lv.mpi.comm_stats().seconds, lv.mpi.comm_stats().allreduce_bytes }, "after reset")
  lv.mpi.allreduce({ lv.zeros({ 3, 5 }), lv.zeros({ 7 }, "f64"), lv.zeros({ 2 }) }, "sum")   -- 17 * 4 + 7 * 8
  lv.mpi.allreduce(lv.zeros({ 10 }), "max", { bucket_bytes = 8 })                             -- 10 * 4
  lv.mpi.allreduce({ lv.zeros({ 3 }, "f64") }, "min", { bucket_bytes = 4 })                    -- 3 * 8
  local stats = lv.mpi.comm_stats()
  same(S > 1 and 17 * 4 + 7 * 8 + 10 * 4 + 3 * 8 or 0, stats.allreduce_bytes, "allreduce bytes")
  if S > 1 and not (stats.seconds > 0 and stats.seconds < 60) then
    error("seconds " .. stats.seconds .. " is not a time spent")
  end
  lv.mpi.reset_comm_stats()
  stats = lv.mpi.comm_stats()
  same({ 0, 0 }, { stats.seconds, stats.allreduce_bytes }, "after the second reset")
end)

check("finalize leaves the job; init cannot join again", function()
  lv.mpi.finalize()
  same(false, lv.mpi.active(), "active after finalize")
  same({ 0, 1 }, { lv.mpi.rank(), lv.mpi.size() }, "rank and size after finalize")
  same(5, lv.mpi.allreduce_number(5), "a collective after finalize")
  if S > 1 then
    raises(function() lv.mpi.init() end, "init", "cannot be joined twice")
  else
    same({ 0, 1 }, { lv.mpi.init() }, "init after finalize")
  end
  lv.mpi.finalize()
end)

results:write("end\tok\n")
results:close()
]==]

-- the checks of JOB, in order (each is an `it` per launch)
local CHECKS = {}
for name in JOB:gmatch('\ncheck%("([^"]+)"') do CHECKS[#CHECKS + 1] = name end

--- Runs JOB on np ranks once; returns {output, status, seconds, ranks =
-- {[rank] = {[check] = "ok" or the error}}}.
local launches = {}
local function launch(np)
  if launches[np] then return launches[np] end
  local sub = dir .. "/np" .. np
  os.execute("mkdir -p " .. sh_quote(sub))
  local script = dir .. "/job.lua"
  H.write_bytes(script, JOB)
  local out, status, seconds = mpirun(np, script, sub, np)
  local ranks = {}
  for rank = 0, np - 1 do
    local f = io.open(sub .. "/rank." .. rank, "r")
    if f then
      ranks[rank] = {}
      for line in f:lines() do
        local name, result = line:match("^([^\t]+)\t(.*)$")
        if name then ranks[rank][name] = result end
      end
      f:close()
    end
  end
  launches[np] = { output = out, status = status, seconds = seconds, ranks = ranks }
  return launches[np]
end

for _, np in ipairs({ 1, 2, 4 }) do
  describe("lv.mpi under mpirun -np " .. np, function()
    it("runs the job to the end on every rank", function()
      if why_pending then return pending(why_pending) end
      local l = launch(np)
      assert(l.status == 0, string.format("mpirun -np %d exited with status %s after %.1f s:\n%s",
        np, tostring(l.status), l.seconds, l.output))
      for rank = 0, np - 1 do
        assert(l.ranks[rank] and l.ranks[rank]["end"], "rank " .. rank .. " did not finish:\n" .. l.output)
      end
    end)

    for _, name in ipairs(CHECKS) do
      it(name, function()
        if why_pending then return pending(why_pending) end
        local l = launch(np)
        local problems = {}
        for rank = 0, np - 1 do
          local result = l.ranks[rank] and l.ranks[rank][name]
          if result ~= "ok" then
            problems[#problems + 1] = string.format("rank %d: %s", rank, result or "no result")
          end
        end
        if #problems > 0 then
          error(string.format("%s (mpirun -np %d):\n  %s%s", name, np, table.concat(problems, "\n  "),
            l.status ~= 0 and "\nmpirun's output:\n" .. l.output or ""), 0)
        end
      end)
    end
  end)
end

describe("lv.mpi.abort under mpirun", function()
  it("ends the whole job quickly with a non-zero status, keeping what was written first", function()
    if why_pending then return pending(why_pending) end
    local sub = dir .. "/abort"
    os.execute("mkdir -p " .. sh_quote(sub))
    local script = sub .. "/abort.lua"
    -- rank 1 writes its log through a buffered Lua file, then aborts;
    -- rank 0 waits in a barrier that rank 1 never reaches
    H.write_bytes(script, [[
      local lv = require "lvae"
      local out_dir = arg[1]
      local rank = lv.mpi.init()
      if rank == 1 then
        io.output(out_dir .. "/log.1")
        io.write("rank 1 stops the job\n")
        lv.mpi.abort(3)
      end
      lv.mpi.barrier()
      local f = io.open(out_dir .. "/passed." .. rank, "w")
      f:write("past the barrier\n")
      f:close()
      lv.mpi.finalize()
    ]])
    local out, status, seconds = mpirun(2, script, sub)
    assert(status ~= 0, "the job exited with status 0:\n" .. out)
    assert(status ~= 124, string.format("the job hung until timeout killed it (%.1f s):\n%s", seconds, out))
    assert(seconds < 20, string.format("the job took %.1f s to stop:\n%s", seconds, out))
    -- (mpirun's "MPI_ABORT was invoked" notice is not asserted: Open MPI
    -- 4.1 sometimes loses it in a race of its own show_help)
    assert.is_false(H.exists(sub .. "/passed.0"))
    assert.is_false(H.exists(sub .. "/passed.1"))
    assert.equal("rank 1 stops the job\n", H.exists(sub .. "/log.1") and H.read_bytes(sub .. "/log.1"))
  end)
end)
