--- The lvae REPL: Lua 5.4 with the toolkit loaded as `lv`.
--
-- Each line is tried first as an expression (its values are printed,
-- tensors Torch7-style), then as a statement; an unfinished chunk asks for
-- more lines. On a terminal, Debian's lua-readline gives line editing,
-- history (~/.lvae_history) and tab completion of names (`lv.sof<TAB>`,
-- `x:su<TAB>`). `help(obj)` says what an object is and lists its methods.

local lv = require "lvae"

local M = {}

--- Completions of a word: the names reachable from the expression before
-- its last '.' or ':' (globals when there is none), each as a whole word.
function M.completions(word)
  local prefix, sep, partial = word:match("^(.-)([.:]?)([%w_]*)$")
  local scope
  if sep == "" then
    scope = _G
  else
    local ok, value = pcall(load("return " .. prefix, "=completion", "t", _G))
    if not ok then return {} end
    if lv.is_tensor(value) then
      scope = lv.Tensor
    elseif type(value) == "table" then
      scope = value
    else
      local mt = getmetatable(value)
      scope = mt and type(mt.__index) == "table" and mt.__index or {}
    end
  end
  local matches = {}
  local seen = {}
  local function add(tbl)
    for k in pairs(tbl) do
      if type(k) == "string" and k:sub(1, #partial) == partial and not seen[k] then
        seen[k] = true
        matches[#matches + 1] = prefix .. sep .. k
      end
    end
  end
  add(scope)
  if scope == _G then
    for _, kw in ipairs { "and", "break", "else", "elseif", "end", "false", "for",
                          "function", "goto", "if", "local", "nil", "not", "repeat",
                          "return", "then", "true", "until", "while" } do
      if kw:sub(1, #partial) == partial then matches[#matches + 1] = kw end
    end
  end
  table.sort(matches)
  return matches
end

--- Compiles a chunk as an expression if it is one, else as statements.
local function compile(chunk)
  local fn = load("return " .. chunk, "=stdin", "t", _G)
  if fn then return fn end
  return load(chunk, "=stdin", "t", _G)
end

local function show(...)
  for i = 1, select("#", ...) do
    print(tostring((select(i, ...))))
  end
end

--- The error with the traceback of the user's code: the REPL's own frames
-- (from its xpcall down) say nothing about what went wrong.
local function user_traceback(err)
  local tb = debug.traceback(tostring(err), 2)
  local cut = tb:find("\n%s*%[C%]: in function 'xpcall'")
  return cut and tb:sub(1, cut - 1) or tb
end

--- Evaluates one complete chunk: prints its values or its error. Returns
-- false when the chunk is unfinished (more lines are needed).
function M.eval(chunk)
  local fn, err = compile(chunk)
  if not fn then
    if err:match("<eof>$") then return false end
    print(err)
    return true
  end
  local results = table.pack(xpcall(fn, user_traceback))
  if results[1] then
    show(table.unpack(results, 2, results.n))
  else
    print(results[2])
  end
  return true
end

--- The read-eval-print loop, with `lv` and `help` as globals.
function M.run()
  _G.lv = lv
  _G.help = function(obj) print(lv.help(obj)) end
  local on_terminal = os.execute("[ -t 0 ]") == true
  local readline
  if on_terminal then
    local ok, rl = pcall(require, "readline")
    if ok then readline = rl end
  end
  if readline then
    readline.set_options { histfile = "~/.lvae_history", keeplines = 1000 }
    readline.set_readline_name("lvae")
    readline.set_complete_function(function(text, from, to)
      return M.completions(text:sub(from, to))
    end)
    readline.set_completion_append_character("")
  end

  local function read_line(prompt)
    if readline then return readline.readline(prompt) end
    if on_terminal then io.write(prompt) io.flush() end
    return io.read("l")
  end
  if on_terminal then
    print(string.format("lvae on %s -- help(obj) describes an object; Ctrl-D quits", _VERSION))
  end
  local pending = nil
  while true do
    local line = read_line(pending and ">> " or "> ")
    if not line then break end
    local chunk = pending and (pending .. "\n" .. line) or line
    pending = (not M.eval(chunk)) and chunk or nil
  end
  if readline then readline.save_history() end
  if on_terminal then print() end
end

return M
