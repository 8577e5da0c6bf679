--- bench/peers/timing.lua -- how bench-peer splits its time between the
-- workers of a row, and what it makes of the rounds. Pure Lua.
--
--   local timing = require "bench.peers.timing"
--   local n = timing.steps_per_round(0.012, 0.4)        -- 34 steps
--   while timing.another_round(r, elapsed, {budget = 20, min = 5, max = 11}) do
--     for _, i in ipairs(timing.order(r, #settings)) do ... end
--   end
--   local active = timing.keep(samples_so_far, 2)        -- {[i] = true}
--   local s = timing.summary({0.013, 0.012, 0.015})     -- {median, min, max, n}
--
-- A round gives each setting (lvae at its threads, PyTorch at each thread
-- setting) one sample: the mean time per step over N steps, N chosen so
-- that a sample lasts about a round's time -- the mean, so that what a
-- training loop pays for its allocator and collector is in it. The settings
-- take their turns forward in odd rounds and backward in even ones, so that
-- neither side always follows the other (and inherits its idle threads'
-- spinning, or a warmer cache). Rounds go on until a time budget is spent
-- (within a minimum and a maximum count); after the first few, a PyTorch
-- setting whose median is over twice the best one's drops out (on 2 cores
-- shared with other work, two OpenMP threads can make a step several times
-- slower, and timing it further only takes time from the others). The
-- figures are the median and the minimum over rounds.

local M = {}

--- Steps in one sample: about round_seconds' worth, at least 1.
function M.steps_per_round(step_seconds, round_seconds)
  if not (step_seconds > 0) then return 1 end
  return math.max(1, math.ceil(round_seconds / step_seconds - 1e-9))
end

--- Untimed steps before a sample: enough to last SETTLE_SECONDS, so that
-- the previous worker's thread pools have gone to sleep before the timed
-- steps begin. OpenBLAS's pthread workers spin (sched_yield) for up to
-- 2^28 cycles, about 0.1 s, after their last call: on 2 cores a worker
-- that starts right after another shares a core with those spinners, and
-- a step that runs on both cores then waits for the slower one. Both sides
-- settle alike. At least one step.
M.SETTLE_SECONDS = 0.15
function M.settle_steps(step_seconds)
  if not (step_seconds > 0) then return 1 end
  return math.max(1, math.ceil(M.SETTLE_SECONDS / step_seconds - 1e-9))
end

--- Whether to run round r + 1 after r rounds in `elapsed` seconds:
-- at least opts.min rounds, at most opts.max, and no new round once
-- opts.budget seconds are spent.
function M.another_round(r, elapsed, opts)
  if r < opts.min then return true end
  return r < opts.max and elapsed < opts.budget
end

--- The settings still worth timing, from each one's samples so far (a
-- list of lists): those whose median is within `factor` of the best
-- median. A setting that slow after a few rounds cannot have the best
-- median; it keeps the samples it has. Returns a set {[i] = true}.
function M.keep(samples, factor)
  local medians, best = {}, nil
  for i, list in ipairs(samples) do
    local s = M.summary(list)
    medians[i] = s and s.median
    if medians[i] and (not best or medians[i] < best) then best = medians[i] end
  end
  local out = {}
  for i = 1, #samples do
    if not medians[i] or medians[i] <= factor * best then out[i] = true end
  end
  return out
end

--- The order of the settings 1..n in round r: forward when r is odd,
-- backward when even.
function M.order(r, n)
  local out = {}
  for i = 1, n do out[i] = (r % 2 == 1) and i or n + 1 - i end
  return out
end

--- {median, min, max, n} of a list of samples (nil when empty).
function M.summary(samples)
  local n = #samples
  if n == 0 then return nil end
  local s = table.move(samples, 1, n, 1, {})
  table.sort(s)
  local median = n % 2 == 1 and s[(n + 1) // 2] or 0.5 * (s[n // 2] + s[n // 2 + 1])
  return { median = median, min = s[1], max = s[n], n = n }
end

--- The setting with the smallest median among a list of {median = ...}:
-- its index (the first on a tie).
function M.best(list)
  local best
  for i, t in ipairs(list) do
    if t.median and (not best or t.median < list[best].median) then best = i end
  end
  return best
end

return M
