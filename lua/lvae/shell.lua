--- lvae.shell: commands through /bin/sh from Lua, and the few facts about
-- files plain Lua cannot tell (the current folder, a folder's names,
-- whether a file can be read). io.popen and os.execute take one string,
-- so every word put into one is quoted here: a path with a space, a quote
-- or a `*` stays one word and is never expanded.
--
--   local shell = require "lvae.shell"
--   shell.command({ "ls", "-1A", dir })   -- "ls -1A '/some dir'"
--   shell.status("make all")              -- 0, or the exit status
--
-- It does not start anything in the background or stop anything.

local M = {}

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

--- Whether the shell finds `name` as a command (on PATH, or a builtin).
function M.found(name)
  return os.execute("command -v " .. M.quote(name) .. " >/dev/null 2>&1") == true
end

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

--- Whether the file at path can be opened for reading.
function M.readable(path)
  local f = io.open(path, "r")
  if f then f:close() end
  return f ~= nil
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

return M
