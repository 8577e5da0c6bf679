--- bench/lib.lua -- timing and reporting helpers shared by the benchmarks.
--
-- A benchmark script, run by ./lvae (which puts the checkout root on the
-- path), does
--
--   local lib = require "bench.lib"                     -- lib.root: the checkout
--   local r = lib.time(function() return a + b end)     -- r.median seconds
--   lib.print_table(columns, rows)
--   lib.write_json("ops", {machine = lib.machine(), rows = rows})
--
-- What it measures: wall time on a monotonic clock (lv.clock, from
-- clock_gettime(CLOCK_MONOTONIC)); each figure is the median, over
-- `repeats` samples, of the time per call, a sample being as many calls
-- as last at least `min_time` seconds, after a warm-up. The median, not
-- the mean, so that one sample disturbed by another process does not move
-- the figure. What it does not do: assert anything about speed (tests
-- never time), or compare runs made on different days.

local files = require "lvae.files"

local lib = {}

--- lib.root: the checkout this file is in (absolute when ./lvae found it),
-- from this file's own path, so that a benchmark finds the launcher, its
-- helpers and its results folder from any working directory.
lib.root = debug.getinfo(1, "S").source:match("^@(.*)/bench/lib%.lua$") or "."

local lv_ok, lv = pcall(require, "lvae")

--- lib.options(script [, flags]): the command line of a benchmark:
-- `--quick`, `--threads N` (applied here through lv.set_num_threads) and
-- the extra boolean flags listed (e.g. {"--f32-only"}). Anything else
-- prints the usage and exits with status 2. Returns {quick =, threads =
-- (nil when not given), [flag] = true for each flag given}.
function lib.options(script, flags)
  local known, usage = {}, {"[--quick]", "[--threads N]"}
  for _, f in ipairs(flags or {}) do known[f] = true; usage[#usage + 1] = "[" .. f .. "]" end
  local o, args, i = {quick = false}, arg or {}, 1
  while i <= #args do
    local a = args[i]
    if a == "--quick" then
      o.quick = true
    elseif a == "--threads" and math.tointeger(tonumber(args[i + 1])) then
      o.threads = math.tointeger(tonumber(args[i + 1]))
      i = i + 1
    elseif known[a] then
      o[a] = true
    else
      io.stderr:write("usage: ./lvae " .. script .. " " .. table.concat(usage, " ") .. "\n")
      os.exit(2)
    end
    i = i + 1
  end
  if o.threads and lv_ok then lv.set_num_threads(o.threads) end
  return o
end

--- lib.shell_quote(s): s as one word of a POSIX shell command (lvae.files.quote).
lib.shell_quote = files.quote

--- lib.clock(): seconds on a monotonic clock, as a float.
-- lv.clock when the toolkit has it; otherwise os.clock, which counts the
-- CPU time of every thread of the process -- wrong for threaded kernels,
-- so a warning is printed once.
if lv_ok and type(lv.clock) == "function" then
  lib.clock = lv.clock
  lib.clock_name = "lv.clock (CLOCK_MONOTONIC)"
else
  lib.clock = os.clock
  lib.clock_name = "os.clock (CPU time)"
  io.stderr:write("bench: lv.clock is missing; timing with os.clock, which is CPU "
    .. "time summed over threads: threaded figures will look slower than they are\n")
end

lib.defaults = {
  warmup = 0.05,       -- seconds of calls before measuring, at least
  warmup_calls = 2,    -- calls before measuring, at least
  warmup_max = 2.0,    -- seconds: warmup_calls gives way after this long
  min_time = 0.05,     -- seconds per sample, at least
  repeats = 7,         -- samples; the median is reported
}

local function median(sorted)
  local n = #sorted
  if n % 2 == 1 then return sorted[(n + 1) // 2] end
  return 0.5 * (sorted[n // 2] + sorted[n // 2 + 1])
end

--- lib.time(fn [, opts]): times fn(), called with no arguments.
-- opts: warmup, warmup_calls, warmup_max, min_time, repeats (lib.defaults
-- otherwise). Returns {median =, min =, max =, iters =, repeats =,
-- warmup_calls =, samples = {...}}, times in seconds per call.
-- Garbage is collected once before the warm-up, not between samples: the
-- collector's share of a loop that allocates is part of what a user pays.
-- warmup_calls is for code whose first calls are dearer than the steady
-- state (lvae's allocator takes fresh pages from the system until its
-- first collection; see bench/ops.lua).
function lib.time(fn, opts)
  opts = opts or {}
  local d = lib.defaults
  local warmup = opts.warmup or d.warmup
  local warmup_calls = math.max(2, opts.warmup_calls or d.warmup_calls)
  local warmup_max = math.max(warmup, opts.warmup_max or d.warmup_max)
  local min_time = opts.min_time or d.min_time
  local repeats = opts.repeats or d.repeats
  local clock = lib.clock

  collectgarbage("collect")
  local calls, t0, t = 0, clock(), 0
  repeat
    fn()
    calls = calls + 1
    t = clock() - t0
  until t >= warmup and (calls >= warmup_calls or t >= warmup_max)
  local per_call = t / calls    -- an overestimate if the first calls are dear
  local iters = math.max(1, math.ceil(min_time / math.max(per_call, 1e-9)))

  local samples = {}
  for r = 1, repeats do
    t0 = clock()
    for _ = 1, iters do fn() end
    samples[r] = (clock() - t0) / iters
  end
  local sorted = table.move(samples, 1, #samples, 1, {})
  table.sort(sorted)
  return {median = median(sorted), min = sorted[1], max = sorted[#sorted],
          iters = iters, repeats = repeats, warmup_calls = calls,
          samples = samples}
end

--- lib.settle(fn, max_seconds [, single_thread]): runs fn until the
-- collector has run twice (live bytes fell twice), or max_seconds, so
-- that the allocator's cache holds the blocks fn's results need. Until
-- then every result takes fresh pages from the system: a [100,784] f32
-- result costs ~1 ms of page faults instead of 0.02 ms of arithmetic
-- (several ms with two threads), and lib.time's short warm-up would time
-- that. single_thread: settle on one thread (fewer, cheaper faults; the
-- cache it fills is the same).
function lib.settle(fn, max_seconds, single_thread)
  local clock = lib.clock
  local threads_before = single_thread and lv.num_threads()
  if single_thread then lv.set_num_threads(1) end
  local last, drops, t0 = lv.memory_stats().live_bytes, 0, clock()
  repeat
    fn()
    local live = lv.memory_stats().live_bytes
    if live < last then drops = drops + 1 end
    last = live
  until drops >= 2 or clock() - t0 > max_seconds
  if single_thread then lv.set_num_threads(threads_before) end
end

--- lib.decode_json(text): the JSON value of text, every integral number an
-- integer (cjson decodes 100 as 100.0; counts, sizes and ranks read back
-- from a worker's or a run's JSON are integers again).
local function integral(v)
  if type(v) == "table" then
    for k, x in pairs(v) do v[k] = integral(x) end
    return v
  end
  return math.type(v) == "float" and math.tointeger(v) or v
end

function lib.decode_json(text) return integral(require("cjson").decode(text)) end

--- lib.run(cmd): runs a shell command, returns its output lines (a list)
-- and whether it succeeded.
function lib.run(cmd)
  local p = io.popen(cmd, "r")
  if not p then return {}, false end
  local lines = {}
  for line in p:lines() do lines[#lines + 1] = line end
  local ok = p:close()
  return lines, ok == true
end

local read_file = files.read_file

--- lib.cpu_pressure(): the share of the last 10 s (in %) in which some
-- runnable task waited for a CPU (Linux PSI), or nil where unsupported.
-- Above a few percent, other work competes with the benchmark.
function lib.cpu_pressure()
  local s = read_file("/proc/pressure/cpu")
  return s and tonumber(s:match("some avg10=([%d.]+)")) or nil
end

--- lib.print_pressure(start, finish): lib.cpu_pressure at a suite's start
-- and end, in one line, where the system reports it.
function lib.print_pressure(start, finish)
  if start or finish then
    print(string.format("CPU pressure (PSI some avg10): %s%% at start, %s%% at end",
      tostring(start), tostring(finish)))
  end
end

--- lib.STALL: what a row's `stall` is, for the definitions of a suite's JSON.
lib.STALL = "share of the measurement in which some task waited for a CPU (Linux PSI)"

--- lib.cpu_stall(): seconds, since boot, during which some runnable task
-- waited for a CPU (Linux PSI's "some total"), or nil where unsupported.
-- Its growth over a measurement, divided by the measurement's length, is
-- the share of that time in which something was kept waiting: near 0 on
-- an otherwise idle machine.
function lib.cpu_stall()
  local s = read_file("/proc/pressure/cpu")
  local us = s and tonumber(s:match("some[^\n]*total=(%d+)"))
  return us and us * 1e-6 or nil
end

--- lib.machine(): what the figures were measured on.
-- {cpu =, cores =, threads =, openblas_coretype =, openblas_l2_size =,
--  openblas_num_threads =, omp_num_threads =, os =, lua =, date =}
-- (threads: lv.num_threads(), the toolkit's thread count.)
function lib.machine()
  local m = {}
  local cpuinfo = read_file("/proc/cpuinfo") or ""
  m.cpu = cpuinfo:match("model name%s*:%s*([^\n]+)") or "unknown"
  -- A VM may show only "AMD EPYC": family and model tell the generation.
  m.cpu_family = tonumber(cpuinfo:match("cpu family%s*:%s*(%d+)"))
  m.cpu_model = tonumber(cpuinfo:match("\nmodel%s*:%s*(%d+)"))
  local flags = " " .. (cpuinfo:match("\nflags%s*:%s*([^\n]+)") or "") .. " "
  local simd = {}
  for _, f in ipairs({"avx2", "fma", "avx512f"}) do
    if flags:find(" " .. f .. " ", 1, true) then simd[#simd + 1] = f end
  end
  m.simd = table.concat(simd, " ")
  local cores = 0
  for _ in cpuinfo:gmatch("\nprocessor%s*:") do cores = cores + 1 end
  if cpuinfo:match("^processor%s*:") then cores = cores + 1 end
  local nproc = lib.run("nproc 2>/dev/null")[1]
  m.cores = tonumber(nproc) or (cores > 0 and cores or nil)
  m.cpus_in_cpuinfo = cores
  m.threads = lv_ok and lv.num_threads and lv.num_threads() or nil
  m.openblas_coretype = os.getenv("OPENBLAS_CORETYPE")
  m.openblas_l2_size = os.getenv("OPENBLAS_L2_SIZE")
  m.openblas_num_threads = os.getenv("OPENBLAS_NUM_THREADS")
  m.omp_num_threads = os.getenv("OMP_NUM_THREADS")
  m.os = lib.run("uname -srm 2>/dev/null")[1]
  m.lua = _VERSION
  m.clock = lib.clock_name
  m.date = os.date("!%Y-%m-%dT%H:%M:%SZ")
  return m
end

--- lib.print_machine(m): the machine, in a few lines.
function lib.print_machine(m)
  print(string.format("machine: %s (family %s model %s; %s), %s cores (%s threads "
    .. "used), %s", m.cpu, tostring(m.cpu_family), tostring(m.cpu_model),
    m.simd ~= "" and m.simd or "no avx2", tostring(m.cores), tostring(m.threads),
    m.os or "?"))
  print(string.format("OPENBLAS_CORETYPE=%s  OPENBLAS_L2_SIZE=%s  OPENBLAS_NUM_THREADS=%s"
    .. "  OMP_NUM_THREADS=%s", m.openblas_coretype or "(unset)",
    m.openblas_l2_size or "(unset)", m.openblas_num_threads or "(unset)",
    m.omp_num_threads or "(unset)"))
  print(string.format("clock: %s; %s", m.clock, m.date))
end

--- lib.print_table(columns, rows [, out]): a plain text table.
-- columns: list of {key =, title =, fmt = "%.3f" or a function(v, row),
-- left = true}; rows: list of tables. A nil cell prints "-".
function lib.print_table(columns, rows, out)
  out = out or io.stdout
  local cells, width = {}, {}
  for c, col in ipairs(columns) do width[c] = #col.title end
  for r, row in ipairs(rows) do
    cells[r] = {}
    for c, col in ipairs(columns) do
      local v = row[col.key]
      local s
      if v == nil then
        s = "-"
      elseif type(col.fmt) == "function" then
        s = col.fmt(v, row)
      elseif col.fmt then
        s = string.format(col.fmt, v)
      else
        s = tostring(v)
      end
      cells[r][c] = s
      width[c] = math.max(width[c], #s)
    end
  end
  local function line(texts)
    local parts = {}
    for c, col in ipairs(columns) do
      local fmt = col.left and "%-" .. width[c] .. "s" or "%" .. width[c] .. "s"
      parts[c] = string.format(fmt, texts[c])
    end
    out:write((table.concat(parts, "  "):gsub("%s+$", "")), "\n")
  end
  local titles, rules = {}, {}
  for c, col in ipairs(columns) do
    titles[c] = col.title
    rules[c] = string.rep("-", width[c])
  end
  line(titles)
  line(rules)
  for r = 1, #rows do line(cells[r]) end
end

-- "bench/../bench" -> "bench": drops each "name/.." pair.
local function tidy_path(path)
  local parts = {}
  for part in path:gmatch("[^/]+") do
    if part == ".." and #parts > 0 and parts[#parts] ~= ".." then
      parts[#parts] = nil
    elseif part ~= "." or #parts == 0 then
      parts[#parts + 1] = part
    end
  end
  local s = table.concat(parts, "/")
  if path:sub(1, 1) == "/" then s = "/" .. s end
  return s ~= "" and s or "."
end

--- lib.results_dir(): bench/results beside this file, created if missing.
function lib.results_dir()
  local src = debug.getinfo(1, "S").source
  local dir = src:sub(1, 1) == "@" and src:sub(2):match("^(.*)/[^/]*$") or "bench"
  dir = tidy_path(dir)
  local results = dir .. "/results"
  files.mkdir_p(results)
  return results
end

--- lib.write_json(name, data): writes data to bench/results/NAME.json
-- as the runner writes its JSON (lvae.files: sorted keys, every bit of a
-- number), to a temporary name first and then renamed, so a reader never
-- sees half a file. NaN and infinities become null. Returns the path.
function lib.write_json(name, data)
  local path = lib.results_dir() .. "/" .. name .. ".json"
  files.write_json(path, data, { nonfinite = "null" })
  return path
end

--- lib.wait_quiet(opts): waits, in windows of opts.window seconds (1),
-- until one window in which some task waited for a CPU at most opts.limit
-- of the time (0.05), or opts.max_wait seconds (60) have passed. Returns
-- the seconds waited and the last window's share (nil where Linux does
-- not say: then it returns at once). For a benchmark on a shared
-- machine, before a measurement that other work would disturb.
function lib.wait_quiet(opts)
  opts = opts or {}
  local window, limit, max_wait = opts.window or 1, opts.limit or 0.05, opts.max_wait or 60
  if not lib.cpu_stall() then return 0, nil end
  local t0 = lib.clock()
  local share
  repeat
    local s0, w0 = lib.cpu_stall(), lib.clock()
    os.execute("sleep " .. window)
    share = (lib.cpu_stall() - s0) / (lib.clock() - w0)
  until share <= limit or lib.clock() - t0 >= max_wait
  return lib.clock() - t0, share
end

--- lib.write_text(path, text): writes text to path through a temporary
-- name, then renamed, so a reader never sees half a file.
function lib.write_text(path, text)
  local tmp = path .. ".tmp"
  local f = assert(io.open(tmp, "w"))
  f:write(text)
  assert(f:close())
  assert(os.rename(tmp, path))
end

-- Where the section "## title" of markdown text starts (the position of
-- its heading) and where the next "## " heading starts (or #text + 1).
local function section_bounds(text, title)
  local heading = "## " .. title
  local pos = 1
  while pos <= #text do
    local eol = text:find("\n", pos, true) or #text + 1
    if text:sub(pos, eol - 1):gsub("%s+$", "") == heading then
      local rest = eol + 1
      while rest <= #text do
        local e = text:find("\n", rest, true) or #text + 1
        if text:sub(rest, rest + 2) == "## " then return pos, rest end
        rest = e + 1
      end
      return pos, #text + 1
    end
    pos = eol + 1
  end
end

--- lib.markdown_section(text, title): the section of markdown text that
-- begins with the line "## title" and runs to the next "## " heading or
-- the end (with its final newline), or nil when there is none.
function lib.markdown_section(text, title)
  local a, b = section_bounds(text, title)
  if not a then return nil end
  return (text:sub(a, b - 1):gsub("%s+$", "")) .. "\n"
end

--- lib.replace_markdown_section(text, title, section): text with its
-- section "## title" replaced by section (which begins with that
-- heading), or section appended after a blank line when text has none.
function lib.replace_markdown_section(text, title, section)
  section = section:gsub("%s+$", "") .. "\n"
  local a, b = section_bounds(text, title)
  if not a then
    local body = text:gsub("%s+$", "")
    return (body ~= "" and body .. "\n\n" or "") .. section
  end
  local after = text:sub(b)
  return text:sub(1, a - 1) .. section .. (after ~= "" and "\n" .. after or "")
end

--- lib.quietest(measure, opts): calls measure() -- whose result has
-- .stall, the share of its time in which some task waited for a CPU -- up
-- to opts.tries times while that share is above opts.limit, and keeps the
-- least disturbed result (with .tries set). No retry once opts.deadline
-- (a lib.clock() time) has passed.
function lib.quietest(measure, opts)
  local best
  for try = 1, opts.tries do
    if try > 1 and opts.deadline and lib.clock() > opts.deadline then break end
    local r = measure()
    r.tries = try
    if not best or (r.stall or 0) < (best.stall or 0) then best = r end
    if (best.stall or 0) <= opts.limit then break end
  end
  return best
end

--- lib.median(list): the median of an unsorted list (nil when empty).
function lib.median(list)
  local s = table.move(list, 1, #list, 1, {})
  table.sort(s)
  local n = #s
  if n == 0 then return nil end
  if n % 2 == 1 then return s[(n + 1) // 2] end
  return 0.5 * (s[n // 2] + s[n // 2 + 1])
end

--- lib.time_interleaved(fns, opts): sample r of every function in turn, so
-- that a burst of other work hits them all alike. opts: warmup, min_time,
-- repeats. Returns {stall =, [i] = {median =, min =, max =, iters =,
-- samples = {...}}}, seconds per call; stall is the share of the time some
-- task waited for a CPU (nil where Linux does not say).
function lib.time_interleaved(fns, opts)
  local clock = lib.clock
  local stall = lib.cpu_stall or function() return nil end
  collectgarbage("collect")
  local iters = {}
  for i, fn in ipairs(fns) do
    local calls, t0 = 0, clock()
    repeat fn(); calls = calls + 1
    until clock() - t0 >= opts.warmup and calls >= 2
    iters[i] = math.max(1, math.ceil(opts.min_time / ((clock() - t0) / calls)))
  end
  local samples = {}
  for i = 1, #fns do samples[i] = {} end
  local t0, s0 = clock(), stall()
  for r = 1, opts.repeats do
    for i, fn in ipairs(fns) do
      local n, ts = iters[i], clock()
      for _ = 1, n do fn() end
      samples[i][r] = (clock() - ts) / n
    end
  end
  local s1 = stall()
  local out = {stall = s0 and s1 and (s1 - s0) / (clock() - t0) or nil}
  for i = 1, #fns do
    local sm = samples[i]
    out[i] = {median = lib.median(sm), min = math.min(table.unpack(sm)),
              max = math.max(table.unpack(sm)), iters = iters[i], samples = sm}
  end
  return out
end

return lib
