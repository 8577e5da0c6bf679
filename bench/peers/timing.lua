--- bench/peers/timing.lua -- how bench-peer splits its time between the
-- workers of a row, and what it makes of the rounds. Pure Lua.
--
--   local timing = require "bench.peers.timing"
--   local n = timing.steps_per_round(0.012, 0.4)        -- 34 steps
--   local R = timing.rounds(costs, {budget = 20, min = 3, max = 9})
--   for _, i in ipairs(timing.order(r, #settings)) do ... end
--   local s = timing.summary({0.013, 0.012, 0.015})     -- {median, min, max, n}
--
-- A round gives each setting (lvae at its threads, PyTorch at each thread
-- setting) one sample: the mean time per step over N steps, N chosen so
-- that a sample lasts about a round's time -- the mean, so that what a
-- training loop pays for its allocator and collector is in it. The settings
-- take their turns forward in odd rounds and backward in even ones, so that
-- neither side always follows the other (and inherits its idle threads'
-- spinning, or a warmer cache). The figures are the median and the minimum
-- over rounds.

local M = {}

--- Steps in one sample: about round_seconds' worth, at least 1.
function M.steps_per_round(step_seconds, round_seconds)
  if not (step_seconds > 0) then return 1 end
  return math.max(1, math.ceil(round_seconds / step_seconds - 1e-9))
end

--- Untimed steps before a sample: one when a step is short enough for the
-- previous worker's threads, still spinning down, to weigh on it.
function M.settle_steps(step_seconds)
  return step_seconds < 0.25 and 1 or 0
end

--- Rounds that fit opts.budget seconds, within [opts.min, opts.max];
-- costs[i] is the seconds one round costs setting i (steps x step time,
-- settling included).
function M.rounds(costs, opts)
  local per_round = 0
  for _, c in ipairs(costs) do per_round = per_round + c end
  local n = per_round > 0 and math.floor(opts.budget / per_round) or opts.max
  return math.max(opts.min, math.min(opts.max, n))
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
