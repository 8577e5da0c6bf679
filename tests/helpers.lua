--- helpers.lua -- what the tensor, ops, error and memory specs share:
-- tolerances per dtype, comparison of tensors with expected values, naive
-- reference kernels in plain Lua over :totable() (broadcasting, reductions,
-- the matmul triple loop), non-contiguous layouts of given values, and
-- error-text checks. Nothing here calls an op under test to compute an
-- expected value.
--
-- Values are handled "flat": a shape (a Lua list) and the elements in
-- row-major order. A 0-dim tensor's :totable() is a plain number.

local lv = require "lvae"

local H = {}

--- True under `make sanitize`: ASan keeps freed memory in quarantine, so
-- resident-size bounds do not apply there (live-byte checks still do).
H.sanitized = (os.getenv("LD_PRELOAD") or ""):find("asan", 1, true) ~= nil

H.dtypes = { "f32", "f64" }

-- Relative tolerance of a value check per dtype (STYLE point 11).
H.rtol = { f32 = 1e-6, f64 = 1e-14 }

--- v rounded to the nearest value the dtype holds.
function H.round(v, dtype)
  if dtype == "f32" then
    return (string.unpack("f", string.pack("f", v)))
  end
  return v
end

---- flat values ----------------------------------------------------------

--- The shape and row-major elements of a nested table (or a number).
function H.flat(t)
  local shape, data = {}, {}
  local probe = t
  while type(probe) == "table" do
    shape[#shape + 1] = #probe
    probe = probe[1]
  end
  local function walk(v)
    if type(v) == "table" then
      for i = 1, #v do walk(v[i]) end
    else
      data[#data + 1] = v
    end
  end
  walk(t)
  return shape, data
end

--- A nested table of the given shape from row-major elements; a number
-- for the empty shape.
function H.nest(shape, data)
  if #shape == 0 then return data[1] end
  local pos = 0
  local function build(d)
    local out = {}
    for i = 1, shape[d] do
      if d == #shape then
        pos = pos + 1
        out[i] = data[pos]
      else
        out[i] = build(d + 1)
      end
    end
    return out
  end
  return build(1)
end

--- The shape and elements of a tensor, a nested table or a number.
function H.values(x)
  if lv.is_tensor(x) then
    return x:size(), select(2, H.flat(x:totable()))
  end
  return H.flat(x)
end

local function numel(shape)
  local n = 1
  for _, s in ipairs(shape) do n = n * s end
  return n
end
H.numel = numel

--- Row-major multi-index (1-based) of linear position k (1-based).
local function unravel(shape, k)
  local idx, r = {}, k - 1
  for d = #shape, 1, -1 do
    idx[d] = r % shape[d] + 1
    r = r // shape[d]
  end
  return idx
end
H.unravel = unravel

local function ravel(shape, idx)
  local k = 0
  for d = 1, #shape do k = k * shape[d] + (idx[d] - 1) end
  return k + 1
end
H.ravel = ravel

function H.shape_string(shape)
  return "[" .. table.concat(shape, ",") .. "]"
end

---- comparison -----------------------------------------------------------

local function same_number(a, b)
  return a == b or (a ~= a and b ~= b)
end

--- Largest |a - b| over the elements (a, b: tensors, tables or numbers of
-- one shape). NaN against NaN and inf against the same inf count as 0,
-- NaN against a number as inf. Errors if the shapes differ.
function H.max_abs_diff(a, b)
  local sa, da = H.values(a)
  local sb, db = H.values(b)
  assert(H.shape_string(sa) == H.shape_string(sb),
         "shapes differ: " .. H.shape_string(sa) .. " vs " .. H.shape_string(sb))
  local worst = 0
  for i = 1, #da do
    local d
    if same_number(da[i], db[i]) then
      d = 0
    elseif da[i] ~= da[i] or db[i] ~= db[i] then
      d = math.huge
    else
      d = math.abs(da[i] - db[i])
      if d ~= d then d = math.huge end
    end
    if d > worst then worst = d end
  end
  return worst
end

--- Asserts got (a tensor or values) equals expected elementwise within
-- |g - e| <= rtol |e| + atol; rtol is a number or a dtype name (then
-- H.rtol of it). Shapes must match; NaN must meet NaN.
function H.assert_close(got, expected, rtol, atol, what)
  if type(rtol) == "string" then rtol = H.rtol[rtol] end
  rtol, atol = rtol or 0, atol or 0
  local sg, dg = H.values(got)
  local se, de = H.values(expected)
  local label = what and (what .. ": ") or ""
  assert(H.shape_string(sg) == H.shape_string(se),
         label .. "shape " .. H.shape_string(sg) .. ", expected " .. H.shape_string(se))
  for i = 1, #de do
    local g, e = dg[i], de[i]
    local ok = same_number(g, e) or
      (e == e and g == g and math.abs(g - e) <= rtol * math.abs(e) + atol)
    if not ok then
      error(string.format("%selement %d (index %s): got %.17g, expected %.17g (rtol %g, atol %g)",
        label, i, H.shape_string(unravel(se, i)), g, e, rtol, atol), 2)
    end
  end
end

--- Asserts identical shapes and elements (NaN meets NaN).
function H.assert_same(got, expected, what)
  H.assert_close(got, expected, 0, 0, what)
end

---- naive reference kernels ----------------------------------------------

--- Elementwise f over the values of x (tensor, table or number).
function H.map(x, f)
  local shape, data = H.values(x)
  local out = {}
  for i = 1, #data do out[i] = f(data[i]) end
  return H.nest(shape, out)
end

--- NumPy broadcasting of two shapes, or nil when they do not fit: the
-- library's own shape arithmetic (lvae.check), plain Lua on lists, not
-- the core's broadcasting that the op specs test.
H.broadcast_shape = require("lvae.check").broadcast_shape

--- f(a_elem, b_elem) with broadcasting; a and b are tensors, tables or
-- numbers (a number is 0-dim).
function H.zip(a, b, f)
  local sa, da = H.values(a)
  local sb, db = H.values(b)
  local shape = assert(H.broadcast_shape(sa, sb), "shapes do not broadcast")
  local out = {}
  local function pick(s, data, idx)
    local sub = {}
    for d = 1, #s do
      local i = idx[d + (#shape - #s)]
      sub[d] = s[d] == 1 and 1 or i
    end
    return data[ravel(s, sub)]
  end
  for k = 1, numel(shape) do
    local idx = unravel(shape, k)
    out[k] = f(pick(sa, da, idx), pick(sb, db, idx))
  end
  return H.nest(shape, out)
end

--- A reduction: fn(list of the reduced values in row-major order) over
-- dims (nil = all, a number, or a list; negative counts from the end).
function H.reduce(x, dims, keepdim, fn)
  local shape, data = H.values(x)
  local nd = #shape
  local red = {}
  if dims == nil then
    for d = 1, nd do red[d] = true end
  else
    if type(dims) == "number" then dims = { dims } end
    for _, d in ipairs(dims) do
      if d < 0 then d = d + nd + 1 end
      red[d] = true
    end
  end
  local out_shape, kept = {}, {}
  for d = 1, nd do
    if not red[d] then
      out_shape[#out_shape + 1] = shape[d]
      kept[#kept + 1] = d
    elseif keepdim then
      out_shape[#out_shape + 1] = 1
    end
  end
  local kept_shape = {}
  for i, d in ipairs(kept) do kept_shape[i] = shape[d] end
  local groups = {}
  for k = 1, #data do
    local idx = unravel(shape, k)
    local key = {}
    for i, d in ipairs(kept) do key[i] = idx[d] end
    local g = ravel(kept_shape, key)
    groups[g] = groups[g] or {}
    table.insert(groups[g], data[k])
  end
  local out = {}
  for g = 1, numel(kept_shape) do out[g] = fn(groups[g] or {}) end
  return H.nest(out_shape, out)
end

-- The reductions of the toolkit as functions of a list.
H.reducers = {
  sum = function(v)
    local s = 0
    for _, x in ipairs(v) do s = s + x end
    return s
  end,
  max = function(v)
    local m = -math.huge
    for _, x in ipairs(v) do
      if x ~= x then return x end
      if x > m then m = x end
    end
    return m
  end,
  min = function(v)
    local m = math.huge
    for _, x in ipairs(v) do
      if x ~= x then return x end
      if x < m then m = x end
    end
    return m
  end,
  argmax = function(v)
    local best = 1
    for i = 2, #v do if v[i] > v[best] then best = i end end
    return best
  end,
  argmin = function(v)
    local best = 1
    for i = 2, #v do if v[i] < v[best] then best = i end end
    return best
  end,
}
H.reducers.mean = function(v) return H.reducers.sum(v) / #v end
H.reducers.logsumexp = function(v)
  local m = H.reducers.max(v)
  local s = 0
  for _, x in ipairs(v) do s = s + math.exp(x - m) end
  return m + math.log(s)
end
--- Variance dividing by n - correction.
function H.variance(correction)
  return function(v)
    local m = H.reducers.mean(v)
    local s = 0
    for _, x in ipairs(v) do s = s + (x - m) ^ 2 end
    return s / (#v - correction)
  end
end

--- The naive triple loop over 2-D tables: a [n][k] times b [k][m].
function H.matmul2(a, b)
  local n, k = #a, #b
  local m = k > 0 and #b[1] or 0
  local c = {}
  for i = 1, n do
    c[i] = {}
    for j = 1, m do
      local s = 0
      for p = 1, k do s = s + a[i][p] * b[p][j] end
      c[i][j] = s
    end
  end
  return c
end

--- Sum over k of |a_ik| |b_kj|, the scale of matmul's rounding error.
function H.matmul2_abs(a, b)
  local abs = function(t) return H.map(t, math.abs) end
  return H.matmul2(abs(a), abs(b))
end

---- accurate closed forms missing from Lua's math --------------------------

--- log(1 + x), accurate for small x (Goldberg's trick).
function H.log1p(x)
  local u = 1 + x
  if u == 1 then return x end
  if u == math.huge then return math.log(u) end
  return math.log(u) * x / (u - 1)
end

--- exp(x) - 1, accurate for small x (Kahan's trick).
function H.expm1(x)
  local u = math.exp(x)
  if u == 1 then return x end
  if u == math.huge then return u end
  if u - 1 == -1 then return -1 end
  return (u - 1) * x / math.log(u)
end

function H.tanh(x)
  if x ~= x then return x end
  if math.abs(x) > 20 then return x > 0 and 1 or -1 end
  local e = H.expm1(2 * x)
  return e / (e + 2)
end

function H.sigmoid(x)
  if x >= 0 then return 1 / (1 + math.exp(-x)) end
  local e = math.exp(x)
  return e / (1 + e)
end

function H.softplus(x)
  return math.max(x, 0) + H.log1p(math.exp(-math.abs(x)))
end

function H.logsigmoid(x)
  return -H.softplus(-x)
end

---- inputs and layouts ----------------------------------------------------

--- A deterministic generator of numbers in [lo, hi) (an LCG); with
-- `quarters`, multiples of 1/4 (exact in both dtypes).
function H.generator(seed)
  local state = seed or 12345
  return function(lo, hi, quarters)
    state = (state * 1103515245 + 12345) % 2147483648
    local u = state / 2147483648
    local v = lo + (hi - lo) * u
    if quarters then v = math.floor(v * 4) / 4 end
    return v
  end
end

--- A nested table of the given shape filled by gen(lo, hi, quarters).
function H.random_table(shape, gen, lo, hi, quarters)
  local data = {}
  for i = 1, numel(shape) do data[i] = gen(lo, hi, quarters) end
  return H.nest(shape, data)
end

--- Tensors holding the values of x (a tensor of at least one dim) in
-- other layouts: {name, tensor} pairs. "transposed" stores the first and
-- last dims swapped, "strided" has a step of 2 in the last dim,
-- "narrowed" starts at an offset with a gap after each row.
function H.layouts(x)
  local out = {}
  local nd = x:dim()
  if nd >= 2 then
    out[#out + 1] = { "transposed", x:transpose(1, nd):contiguous():transpose(1, nd) }
  end
  out[#out + 1] = { "strided", lv.stack({ x, x:zeros_like() }, -1):select(-1, 1) }
  local n = x:size(-1)
  out[#out + 1] = { "narrowed", lv.cat({ x:zeros_like(), x, x:zeros_like() }, -1):narrow(-1, n + 1, n) }
  for _, pair in ipairs(out) do
    assert(H.max_abs_diff(pair[2], x) == 0, "layout " .. pair[1] .. " changed values")
  end
  return out
end

---- errors ----------------------------------------------------------------

--- Asserts fn raises, and that the message contains every given piece
-- (plain text). Returns the message. (Busted's assert.has_error is not
-- visible from this module; the specs call it before this.)
function H.expect_error(fn, ...)
  local ok, msg = pcall(fn)
  if ok then error("expected an error", 2) end
  msg = tostring(msg)
  for _, piece in ipairs({ ... }) do
    if not msg:find(piece, 1, true) then
      error(string.format("error %q does not mention %q", msg, piece), 2)
    end
  end
  return msg
end

---- memory, for the specs of lifetimes ---------------------------------------------

--- Resident set size of this process, in bytes (VmRSS of /proc).
function H.rss()
  local kb = assert(H.read_bytes("/proc/self/status"):match("VmRSS:%s*(%d+)%s*kB"), "no VmRSS line")
  return tonumber(kb) * 1024
end

--- The core's live bytes after two full collections (the second frees
-- what the first one's finalizers released).
function H.live_bytes()
  collectgarbage()
  collectgarbage()
  return lv.memory_stats().live_bytes
end

---- files for the specs that write and read them ----------------------------------

function H.sh_quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

--- A fresh temporary folder (the caller removes it).
function H.make_dir(prefix)
  local p = assert(io.popen("mktemp -d /tmp/" .. (prefix or "lvae_spec") .. ".XXXXXX"))
  local dir = p:read("l")
  p:close()
  return dir
end

--- The names in a folder, sorted (hidden ones too).
function H.list_dir(dir)
  local p = assert(io.popen("ls -A " .. H.sh_quote(dir)))
  local names = {}
  for line in p:lines() do names[#names + 1] = line end
  p:close()
  table.sort(names)
  return names
end

--- The bytes of a file, or nil when it cannot be opened (lvae.files').
H.read_file = require("lvae.files").read_file

--- The bytes of a file that must be there.
function H.read_bytes(path) return (assert(H.read_file(path), "missing " .. path)) end

--- The value of a JSON file that must be there.
function H.read_json(path) return require("cjson").decode(H.read_bytes(path)) end

function H.write_bytes(path, s)
  local f = assert(io.open(path, "wb"))
  f:write(s)
  f:close()
end

function H.exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

--- CRC-32 (zlib's, as PNG and the checkpoint format use it) of a string,
-- in plain Lua: the specs that forge files by hand compute it without the
-- code under test (lv.crc32).
local crc_table = {}
for i = 0, 255 do
  local c = i
  for _ = 1, 8 do
    c = (c & 1 == 1) and (0xEDB88320 ~ (c >> 1)) or (c >> 1)
  end
  crc_table[i] = c
end

function H.crc32(s)
  local c = 0xFFFFFFFF
  for i = 1, #s do c = crc_table[(c ~ s:byte(i)) & 0xFF] ~ (c >> 8) end
  return c ~ 0xFFFFFFFF
end

return H
