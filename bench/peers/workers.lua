--- bench/peers/workers.lua -- long-lived worker processes that bench/peer.lua
-- talks to, one command at a time.
--
--   local workers = require "bench.peers.workers"
--   local w = workers.start{name = "lvae", command = "./lvae bench/peers/lvae_worker.lua serve mlp:vae",
--                           dir = tmp, timeout = 300, env = {OPENBLAS_NUM_THREADS = "1"}}
--   -- or workers.spawn{...} now and w:wait_ready() later
--   local reply = w:request("round 10 2 1")    -- a table: the worker's JSON answer
--   w:stop()
--
-- A worker reads commands, one a line, from a named FIFO (made here with
-- mkfifo; its path is the command's last argument) and answers each on
-- its stdout with one line "@peer {json}"; its first line announces it is
-- ready. Other stdout lines are kept and shown if it fails; stderr goes to
-- a file, shown if it fails.
--
-- Nothing here can hang for ever. The answers come through io.popen's pipe,
-- which ends when the worker does, however it ends; the FIFO is opened
-- read-write here, which never blocks, and a worker that died leaves
-- nothing waiting on it; the worker runs under coreutils' timeout, which
-- kills it after `timeout` seconds, so a worker that hangs ends too. When
-- a worker ends without answering, request raises an error with its exit
-- status and the tail of its stderr.

local shell_quote = require("lvae.files").quote

local M = {}

M.shell_quote = shell_quote

--- The table of a reply line "@peer {json}", or nil for any other line.
-- decode: a JSON decoder (cjson.decode).
function M.parse_reply(line, decode)
  local body = line and line:match("^@peer (.*)$")
  if not body then return nil end
  local ok, t = pcall(decode, body)
  if not ok or type(t) ~= "table" then return nil end
  return t
end

--- The last n lines of a text.
function M.tail(text, n)
  local lines = {}
  for l in (text or ""):gmatch("[^\n]+") do lines[#lines + 1] = l end
  return table.concat(lines, "\n", math.max(1, #lines - n + 1))
end

--- What an exit status means, in words: io.popen's close gives ok, "exit"
-- or "signal", and a code; coreutils' timeout exits 124 when it killed
-- the command with TERM, 137 when with KILL.
function M.describe_exit(ok, how, code, timeout)
  if ok then return "exited with status 0 without answering" end
  if how == "signal" then return "was killed by signal " .. tostring(code) end
  if code == 124 or code == 137 then
    return string.format("was killed after its %s s time limit (coreutils timeout)", tostring(timeout))
  end
  return "exited with status " .. tostring(code)
end

local Worker = {}
Worker.__index = Worker

local function read_file(path)
  local f = io.open(path, "r")
  if not f then return "" end
  local s = f:read("a")
  f:close()
  return s
end

--- Starts a worker without waiting for it: opts.name (for messages and
-- file names: letters, digits, -_), opts.command (a shell command, the
-- FIFO's path appended), opts.dir (an existing directory for the FIFO and
-- stderr), opts.timeout (seconds), opts.env (a table of environment
-- variables), opts.decode (a JSON decoder). w:wait_ready() reads its ready
-- line; several workers may start side by side (PyTorch takes seconds to
-- import).
function M.spawn(opts)
  local self = setmetatable({ name = opts.name, decode = opts.decode, timeout = opts.timeout,
                              chatter = {} }, Worker)
  local base = opts.dir .. "/" .. opts.name:gsub("[^%w_-]", "_")
  self.fifo, self.stderr_path = base .. ".cmd", base .. ".err"
  os.remove(self.fifo)
  if not os.execute("mkfifo " .. shell_quote(self.fifo)) then
    error(string.format("bench-peer: cannot make the FIFO %s (mkfifo)", self.fifo), 0)
  end
  local env = {}
  for k, v in pairs(opts.env or {}) do env[#env + 1] = k .. "=" .. shell_quote(v) end
  table.sort(env)
  local cmd = string.format("exec timeout -k 5 %d env %s %s %s 2> %s", math.ceil(opts.timeout),
    table.concat(env, " "), opts.command, shell_quote(self.fifo), shell_quote(self.stderr_path))
  self.pipe = assert(io.popen(cmd, "r"))
  -- read-write: opening never blocks, whether or not the worker got this far
  self.commands = io.open(self.fifo, "r+")
  if not self.commands then error("bench-peer: cannot open the FIFO " .. self.fifo, 0) end
  return self
end

--- Waits for the worker's ready line; returns it (also in w.ready).
function Worker:wait_ready()
  if not self.ready then
    self.ready = self:receive("starting")
    self.pid = self.ready.pid
  end
  return self.ready
end

--- M.spawn, then wait_ready: the worker, ready.
function M.start(opts)
  local w = M.spawn(opts)
  w:wait_ready()
  return w
end

--- The next reply (a table); raises if the worker ends first.
function Worker:receive(what)
  while true do
    local line = self.pipe:read("l")
    if line == nil then self:_died(what) end
    local t = M.parse_reply(line, self.decode)
    if t then return t end
    self.chatter[#self.chatter + 1] = line
  end
end

function Worker:_died(what)
  local ok, how, code = self.pipe:close()
  self.pipe = nil
  self:_close_commands()
  local stderr = M.tail(read_file(self.stderr_path), 30)
  local out = M.tail(table.concat(self.chatter, "\n"), 10)
  error(string.format("bench-peer: the %s worker %s (while %s).%s%s", self.name,
    M.describe_exit(ok, how, code, self.timeout), what or "working",
    stderr ~= "" and ("\nits stderr:\n" .. stderr) or "\nits stderr was empty",
    out ~= "" and ("\nits other output:\n" .. out) or ""), 0)
end

function Worker:_close_commands()
  if self.commands then
    self.commands:close()
    self.commands = nil
  end
end

--- Sends one command line and returns the reply.
function Worker:request(line)
  if not self.pipe then error("bench-peer: the " .. self.name .. " worker has stopped", 0) end
  self.commands:write(line, "\n")
  self.commands:flush()
  return self:receive("answering '" .. line .. "'")
end

--- Asks the worker to quit and waits for it; returns its exit status.
function Worker:stop()
  if not self.pipe then return end
  self.commands:write("quit\n")
  self.commands:flush()
  self:receive("quitting")
  self:_close_commands()
  local ok = self.pipe:close()
  self.pipe = nil
  return ok
end

--- Ends a worker that may be busy: kills its process (the pid it
-- announced; only this worker's own process) and reaps it. For cleaning up
-- after an error; never raises.
function Worker:kill()
  if not self.pipe then return end
  if self.pid then os.execute("kill " .. math.tointeger(self.pid) .. " 2>/dev/null") end
  self:_close_commands()
  pcall(self.pipe.close, self.pipe)
  self.pipe = nil
end

return M
