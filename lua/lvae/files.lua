--- lvae.files: files, folders and command lines from Lua, and the JSON
-- the runner, the sweeps and the benchmarks write and read.
--
--   local files = require "lvae.files"
--   files.write_atomic(path, text)        -- readers see the old file or the new one
--   files.write_json(path, value)         -- sorted keys, every bit of every number
--   files.read_json(path)                 -- value, or nil and why
--   files.command({ "ls", "-1A", dir })   -- "ls -1A '/some dir'"
--   files.status("make all")              -- 0, or the exit status
--
-- io.popen and os.execute take one string, so every word put into one is
-- quoted here: a path with a space, a quote or a `*` stays one word and
-- is never expanded. Plain Lua (and lua-cjson): it loads without the C
-- core, so bench/lib.lua can use it too.
--
-- It does not start anything in the background or stop anything, and it
-- is not the C core's writer (lv.save, lv.save_npy and plot's text files
-- go through src/io.c, which also syncs to disk).

local cjson = require "cjson"

local M = {}

---- command lines --------------------------------------------------------------------

--- A word as the shell reads it back unchanged: as it is when the shell
-- gives none of its characters a meaning (easier to read; not `=`, which
-- makes a first word an assignment), else in single quotes.
function M.quote(word)
  word = tostring(word)
  if word:match("^[%w_%-%.,/:+@%%]+$") then return word end
  return "'" .. word:gsub("'", "'\\''") .. "'"
end

--- An argument list as one command line, every word quoted.
function M.command(argv)
  local words = {}
  for i, w in ipairs(argv) do words[i] = M.quote(w) end
  return table.concat(words, " ")
end

--- The exit status of a command line (128 + n when signal n stopped it, as
-- the shell reports it).
function M.status(cmdline)
  local _, how, code = os.execute(cmdline)
  if how == "signal" then return 128 + code end
  return code
end

--- What a command line prints on its standard output (its errors go to
-- /dev/null), or nil when it cannot be started.
function M.output(cmdline)
  local p = io.popen(cmdline .. " 2>/dev/null")
  if not p then return nil end
  local out = p:read("a")
  p:close()
  return out
end

--- Whether the shell finds `name` as a command (on PATH, or a builtin).
function M.found(name)
  return os.execute("command -v " .. M.quote(name) .. " >/dev/null 2>&1") == true
end

---- paths and folders ------------------------------------------------------------------

--- The folder this process runs in.
function M.cwd()
  local p = assert(io.popen("pwd"))
  local dir = p:read("l")
  p:close()
  if not dir or dir == "" then error("cannot tell the current folder (pwd printed nothing)", 0) end
  return dir
end

--- path from the root: relative paths are taken from the current folder.
function M.absolute(path)
  if path:sub(1, 1) == "/" then return path end
  return M.cwd() .. "/" .. path:gsub("^%./", "")
end

--- The folder part of a path ("." when it has none).
function M.dirname(path) return path:match("^(.*)/[^/]*$") or "." end

--- Whether a file or folder is at path (os.rename of a path onto itself
-- succeeds exactly when it exists).
function M.exists(path) return os.rename(path, path) ~= nil end

--- Whether the file at path can be opened for reading.
function M.readable(path)
  local f = io.open(path, "r")
  if f then f:close() end
  return f ~= nil
end

--- Whether path names a folder.
function M.is_dir(path)
  local f = io.open(path:sub(-1) == "/" and path .. "." or path .. "/.", "r")
  if f then f:close() return true end
  return false
end

--- Makes the folder and the ones above it, as needed.
function M.mkdir_p(path)
  if not M.exists(path) and not os.execute("mkdir -p " .. M.quote(path)) then
    error(string.format("cannot make the folder %s", path), 0)
  end
end

--- The names in a folder, sorted (nil when it cannot be listed).
function M.list(dir)
  local p = io.popen("ls -1A " .. M.quote(dir) .. " 2>/dev/null")
  if not p then return nil end
  local names = {}
  for name in p:lines() do names[#names + 1] = name end
  if not p:close() then return nil end
  table.sort(names)
  return names
end

---- reading and writing -----------------------------------------------------------------

--- The bytes of a file, or nil when it cannot be opened.
function M.read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

local tmp_count = 0
--- Writes text to path through a temporary file in the same folder
-- (path.tmp.N) and a rename: readers see the old file or the new one,
-- never half of one.
function M.write_atomic(path, text)
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

---- JSON ---------------------------------------------------------------------------------

-- Strings go through cjson; numbers are written here so that integers stay
-- exact and floats keep every bit (cjson rounds to 14 digits). NaN and Inf,
-- which JSON lacks, become the strings "nan", "inf", "-inf" (or null, with
-- {nonfinite = "null"}). Keys are sorted and nested values indented, so
-- files diff well. A tensor is written as its nested list of numbers.

local function number_text(v, nonfinite_null)
  if math.type(v) == "integer" then return string.format("%d", v) end
  if v ~= v or v == math.huge or v == -math.huge then
    if nonfinite_null then return "null" end
    if v ~= v then return '"nan"' end
    return v > 0 and '"inf"' or '"-inf"'
  end
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

-- A tensor can exist only once the C core is loaded; this file does not
-- load it.
local function is_tensor(v)
  local core = package.loaded["lvae.core"]
  return type(core) == "table" and core.is_tensor(v)
end

local function encode(v, indent, null)
  local kind = type(v)
  if kind == "number" then return number_text(v, null) end
  if kind == "string" then return (cjson.encode(v):gsub("\\/", "/")) end
  if kind == "boolean" then return tostring(v) end
  if v == nil or v == cjson.null then return "null" end
  if is_tensor(v) then return encode(v:totable(), indent, null) end
  if kind ~= "table" then return cjson.encode(tostring(v)) end
  local inner = indent .. "  "
  if is_list(v) then
    if #v == 0 then return "[]" end
    local flat, parts = true, {}
    for i, x in ipairs(v) do
      parts[i] = encode(x, inner, null)
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
    parts[i] = encode(k, "", null) .. ": " .. encode(x, inner, null)
  end
  return "{\n" .. inner .. table.concat(parts, ",\n" .. inner) .. "\n" .. indent .. "}"
end

--- value as JSON text. indent: the indentation of the line it starts on
-- (""); o.nonfinite = "null" writes NaN and Inf as null.
function M.json_encode(value, indent, o)
  return encode(value, indent or "", o ~= nil and o.nonfinite == "null")
end

--- Writes value as JSON (and a newline) to path, atomically.
function M.write_json(path, value, o) M.write_atomic(path, M.json_encode(value, "", o) .. "\n") end

--- The value of the JSON file at path, or nil and why (it cannot be read,
-- or is not JSON).
function M.read_json(path)
  local text = M.read_file(path)
  if not text then return nil, "cannot read " .. path end
  local ok, value = pcall(cjson.decode, text)
  if not ok then return nil, string.format("%s: %s", path, value) end
  return value
end

return M
