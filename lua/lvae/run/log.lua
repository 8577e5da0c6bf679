--- lvae.run.log: what a run writes down as it goes -- log.csv (a row
-- per step) and messages.log (what the run printed, and its warnings) --
-- and reads back (log.read), with the numbers of both: a metric as a
-- number, NaN and Inf by name.
--
--   local log = require "lvae.run.log"
--   local csv = log.open(dir .. "/log.csv" [, keep_bytes])
--   csv:row({ step = 1, epoch = 1, loss = 187.3 }, extras); csv:flush(val_elbo); csv:close()
--   log.message(dir, text)               -- a line of messages.log
--   local rows, columns = log.read(dir .. "/log.csv")
--
-- It does not decide what goes in a row or when (lvae.run's loop does),
-- nor print anything.

local lv = require "lvae.base"
local files = require "lvae.files"

local M = {}

--- log.csv's first columns; the extra metrics of the first step follow.
M.COLUMNS = { "step", "epoch", "loss", "elbo", "val_elbo", "seconds", "lr" }
--- The metrics of a step that have their own meaning, not a column each.
M.RESERVED = { n = true, elbo = true, lr = true, loss = true }

---- numbers ----------------------------------------------------------------------------

--- Neither NaN nor an infinity.
function M.is_finite(v) return v == v and v ~= math.huge and v ~= -math.huge end

--- A number for a message: NaN and Inf by name, else 6 digits.
function M.number_name(v)
  if v ~= v then return "nan" end
  if v == math.huge then return "inf" end
  if v == -math.huge then return "-inf" end
  return string.format("%.6g", v)
end

--- A metric as a number: a 0-dim (or one-element) tensor gives its value.
function M.as_number(v, what)
  if type(v) == "number" then return v end
  if lv.is_tensor(v) then
    if v:numel() ~= 1 then
      error(string.format("%s is a tensor of %d elements (expected one)", what, v:numel()), 0)
    end
    return v:detach():item()
  end
  error(string.format("%s is a %s (expected a number or a 0-dim tensor)", what, type(v)), 0)
end

---- log.csv ----------------------------------------------------------------------------

-- One row per step: step, epoch, loss, elbo (the step's metric), val_elbo
-- (on the epoch's last step, after validation), seconds (training time so
-- far, summed over resumed processes), lr, then the extra metrics. A row
-- is held back until the next step (or validation) fills it.

local Log = {}
Log.__index = Log

local function csv_number(v)
  if v == nil then return "" end
  if math.type(v) == "integer" then return string.format("%d", v) end
  if not M.is_finite(v) then return M.number_name(v) end
  return string.format("%.10g", v)
end

--- Opens log.csv for appending; keep_bytes: keep that much of an existing
-- file (a resumed run's rows up to its checkpoint), else start afresh.
function M.open(path, keep_bytes)
  local self = setmetatable({ path = path, pending = nil, last_flush = lv.clock() }, Log)
  local text = files.read_file(path)
  if keep_bytes and text then
    if #text > keep_bytes then files.write_atomic(path, text:sub(1, keep_bytes)) end
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
  for _, c in ipairs(M.COLUMNS) do self.columns[#self.columns + 1] = c end
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
M.NullLog = { row = function() end, flush = function() end, close = function() end }

--- The rows of a log.csv as tables of numbers by column name (empty cells
-- absent; "nan"/"inf" cells as numbers).
function M.read(path)
  local text = files.read_file(path)
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

---- messages.log -----------------------------------------------------------------------

--- Appends a line to the run folder's messages.log (nothing when it
-- cannot be opened: a message is never worth stopping the run for).
function M.message(dir, text)
  local f = io.open(dir .. "/messages.log", "ab")
  if f then
    f:write(text, "\n")
    f:close()
  end
end

return M
