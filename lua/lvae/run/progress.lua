--- lvae.run.progress: what a run shows on the terminal while it trains
-- or evaluates. On a terminal, one line rewritten in place,
--   epoch 2/10 [########............] 120/600 1830 it/s ETA 0:42 loss 187.3
-- elsewhere (a log file, a batch job) a plain line every --log-every
-- batches; both give a summary line per epoch. run:task(label)'s
-- progress(done, total) shows the same way: a bar with an ETA, or a line
-- every 10%, and a closing line with the time.
--
--   local progress = require "lvae.run.progress"
--   local p = progress.new(io.stdout, tty, quiet, log_every)
--   p:start_epoch(epoch, epochs, n_batches); p:update(batch, items, loss)
--   p:line(text); p:epoch_summary(extra)
--
-- It does not keep anything (messages.log is lvae.run.log's) or decide
-- when a run stops.

local lv = require "lvae.base"

local M = {}

--- Seconds as M:SS, or H:MM:SS from an hour on.
function M.duration(s)
  s = math.max(0, math.floor(s + 0.5))
  local h, m = s // 3600, (s % 3600) // 60
  if h > 0 then return string.format("%d:%02d:%02d", h, m, s % 60) end
  return string.format("%d:%02d", m, s % 60)
end

local Progress = {}
Progress.__index = Progress

--- The progress of a run writing to `out`: tty draws a bar, quiet shows
-- nothing, log_every is the lines' spacing in batches (0: none).
function M.new(out, tty, quiet, log_every)
  return setmetatable({ out = out, tty = tty, quiet = quiet, log_every = log_every,
                        shown = false, last_draw = -1 }, Progress)
end

function Progress:clear()
  if self.shown then
    self.out:write("\r\27[K")
    self.out:flush()
    self.shown = false
  end
end

function Progress:line(text)
  if self.quiet then return end
  self:clear()
  self.out:write(text, "\n")
  self.out:flush()
end

function Progress:start_epoch(epoch, epochs, n_batches)
  self.epoch, self.epochs, self.n_batches = epoch, epochs, n_batches
  self.t0, self.items, self.loss_sum, self.batches = lv.clock(), 0, 0, 0
end

function Progress:rate()
  local dt = lv.clock() - self.t0
  return dt > 0 and self.items / dt or 0, dt > 0 and self.batches / dt or 0
end

function Progress:update(batch, items, loss)
  self.batches, self.items, self.loss_sum = batch, self.items + items, self.loss_sum + loss
  if self.quiet then return end
  local items_rate, batch_rate = self:rate()
  local mean = self.loss_sum / self.batches
  if self.tty then
    local now = lv.clock()
    if now - self.last_draw < 0.1 and batch ~= self.n_batches then return end
    self.last_draw = now
    local text
    if self.n_batches then
      local width = 20
      local filled = math.min(width, math.floor(width * batch / self.n_batches))
      local left = (self.n_batches - batch) + (self.epochs - self.epoch) * self.n_batches
      text = string.format("epoch %d/%d [%s%s] %d/%d %.0f it/s ETA %s loss %.4g", self.epoch,
        self.epochs, string.rep("#", filled), string.rep(".", width - filled), batch, self.n_batches,
        items_rate, batch_rate > 0 and M.duration(left / batch_rate) or "?", mean)
    else
      text = string.format("epoch %d/%d %d batches %.0f it/s loss %.4g", self.epoch, self.epochs,
        batch, items_rate, mean)
    end
    self.out:write("\r\27[K", text)
    self.out:flush()
    self.shown = true
  elseif self.log_every > 0 and batch % self.log_every == 0 then
    self:line(string.format("epoch %d/%d batch %d%s %.0f it/s loss %.6g", self.epoch, self.epochs,
      batch, self.n_batches and ("/" .. self.n_batches) or "", items_rate, mean))
  end
end

--- A task outside the epochs (an evaluation): done of total units since t0.
function Progress:task(label, done, total, t0)
  if self.quiet then return end
  local now = lv.clock()
  local fraction = total > 0 and math.min(1, done / total) or 1
  local elapsed = now - t0
  if fraction >= 1 then
    self:line(string.format("%s: done in %s", label, M.duration(elapsed)))
    return
  end
  local eta = fraction > 0 and M.duration(elapsed * (1 - fraction) / fraction) or "?"
  if self.tty then
    if now - self.last_draw < 0.1 then return end
    self.last_draw = now
    local width = 20
    local filled = math.floor(width * fraction)
    self.out:write("\r\27[K", string.format("%s [%s%s] %d%% ETA %s", label, string.rep("#", filled),
      string.rep(".", width - filled), math.floor(100 * fraction), eta))
    self.out:flush()
    self.shown = true
  else
    local tenth = math.floor(10 * fraction)
    if self.task_t0 ~= t0 then self.task_t0, self.task_tenth = t0, 0 end
    if tenth > self.task_tenth then
      self.task_tenth = tenth
      self:line(string.format("%s: %d%% ETA %s", label, 10 * tenth, eta))
    end
  end
end

--- The epoch's summary line (the run prints it and keeps it in messages.log).
function Progress:epoch_summary(extra)
  local items_rate = self:rate()
  local mean = self.batches > 0 and self.loss_sum / self.batches or 0 / 0
  return string.format("epoch %d/%d: %d batches in %.1f s (%.0f it/s), loss %.6g%s", self.epoch,
    self.epochs, self.batches, lv.clock() - self.t0, items_rate, mean, extra or "")
end

return M
