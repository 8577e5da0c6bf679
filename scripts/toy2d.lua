--- The posterior flow of a 2-D toy: samples of q0 = N(0, I) and after each
-- step of a flow trained to maximise the ELBO of an unnormalised 2-D
-- target, drawn as density panels (pictures/flow.png).
--
--   ./lvae run scripts/toy2d.lua --flow qsl --K 5
--
-- Target: a banana, U(z) = (z1 / 2)² / 2 + (z2 - z1² / 4)² / (2 · 0.3²).
-- The flow's step sizes and friction (and tempering) are learned with
-- Adam; the picture shows q0 and the samples after steps 1..K.

local lv = require "lvae"
local optim = require "lvae.optim"
local plot = require "lvae.plot"

local LOG_2PI = math.log(2 * math.pi)

local function U(z)
  local a, b = z:select(2, 1), z:select(2, 2)
  return (a * 0.5):square() * 0.5 + (b - a:square() * 0.25):square() * (0.5 / 0.09)
end

local function log_std_normal(z)
  return -(z:square():sum(2) * 0.5) - z:size(2) * 0.5 * LOG_2PI
end

local function make_flow(c)
  if c.flow == "leapfrog" then
    return lv.integrators.leapfrog{ dim = 2, K = c.K, dtype = "f64", step = 0.2,
                                    tempering = "fixed", T0 = 2, per_step = true }
  elseif c.flow == "planar" then
    return lv.flows.planar{ dim = 2, K = c.K, dtype = "f64" }
  end
  return lv.integrators[c.flow]{ dim = 2, K = c.K, dtype = "f64", step = 0.2, friction = 0.3,
                                 per_step = true }
end

--- log w per sample (SPEC §2) for q0 = N(0, I) through the flow; also the
-- samples after each step when `stages` is given.
local function log_weight(flow, K, S, stages)
  local z = lv.randn({ S, 2 }, "f64")
  local log_q0 = log_std_normal(z)
  local momentum = flow:has_momentum()
  local rho = momentum and flow:init_momentum(S, K) or nil
  local log_r0 = 0
  if momentum then
    local T0 = flow:temperature0(K)
    log_r0 = -((rho:square() / T0):sum(2) * 0.5) - (T0:log() * 0.5):expand({ 2 }):sum() - LOG_2PI
  end
  local state = lv.get_rng_state()
  local zK, rhoK, ld = flow:flow(z, rho, U, K, { create_graph = stages == nil })
  if stages then
    -- the first k steps again for each k, from the same noise draws (the
    -- generator restarted), so that the stages are one trajectory
    stages[1] = z:detach()
    for k = 1, K do
      lv.set_rng_state(state)
      stages[k + 1] = lv.no_grad(function() return (flow:flow(z, rho, U, k)) end)
    end
  end
  local lw = -U(zK) - log_q0 + ld
  if momentum then lw = lw + log_std_normal(rhoK) - log_r0 end
  return lw
end

return {
  name = "toy2d",
  options = {
    { "--flow", "qsl, qsl2, leapfrog or planar", "qsl",
      choices = { "qsl", "qsl2", "leapfrog", "planar" } },
    { "--K", "flow steps", 5, min = 1 },
    { "--iterations", "Adam iterations", 400, min = 0 },
    { "--samples", "samples per ELBO estimate", 64, min = 1 },
    { "--lr", "Adam learning rate", 0.02, min = 0 },
  },

  finish = function(run)
    local c = run.config
    local flow = make_flow(c)
    local opt = optim.Adam(flow:parameters(), { lr = c.lr })
    local first, last
    for it = 1, c.iterations do
      local elbo = log_weight(flow, c.K, c.samples):mean()
      opt:step(-elbo)
      if it == 1 then first = elbo:item() end
      last = elbo:item()
    end
    local stages = {}
    lv.manual_seed(run.seed)
    lv.no_grad(function() return log_weight(flow, c.K, 4000, stages) end)
    local path = plot.flow_2d(run:picture_path("flow.png"), stages)
    run:print(string.format("%s, K = %d: ELBO %.3f -> %.3f over %d iterations; %s",
      c.flow, c.K, first, last, c.iterations, path))
    run:print(tostring(flow))
    return { flow = c.flow, K = c.K, elbo_first = first, elbo_last = last, picture = "flow.png" }
  end,
}
