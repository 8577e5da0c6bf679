--- The posterior flow of a 2-D toy: samples of q0 = N(0, I) and after each
-- step of a flow trained to maximise the ELBO of an unnormalised 2-D
-- target, drawn as density panels (pictures/flow.png), and, for several
-- flows, their final samples side by side over the target's contours
-- (pictures/posterior.png).
--
--   ./lvae run scripts/toy2d.lua --flow qsl --K 5
--   ./lvae run scripts/toy2d.lua --flow leapfrog,qsl      (the side-by-side picture)
--
-- Target: a banana, U(z) = (z1 / 2)² / 2 + (z2 - z1² / 4)² / (2 · 0.3²).
-- The map (z1, z2) -> (z1 / 2, (z2 - z1² / 4) / 0.3) whitens it, so its
-- answers are exact: log Z = log(2π · 2 · 0.3), so log Z - ELBO is the
-- bound's gap (the KL from the flow's q to the target, on the space of z
-- and momentum for the momentum flows), and the region {U <= -log(1 - p)} holds
-- exactly the fraction p of the target's mass (the chi-square law of a
-- 2-D standard normal). The flow's step sizes and friction (and
-- tempering) are learned with Adam.

local lv = require "lvae"
local optim = require "lvae.optim"
local plot = require "lvae.plot"

local LOG_2PI = math.log(2 * math.pi)
local SIGMA1, SIGMA2 = 2, 0.3
--- log ∫ exp(-U): the normaliser of the banana.
local LOG_Z = math.log(2 * math.pi * SIGMA1 * SIGMA2)
--- The target mass inside each contour drawn and counted.
local MASSES = { 0.5, 0.9, 0.99 }
--- Samples drawn per flow in the side-by-side picture.
local SHOWN = 1500

local function U(z)
  local a, b = z:select(2, 1), z:select(2, 2)
  return (a * 0.5):square() * 0.5 + (b - a:square() * 0.25):square() * (0.5 / 0.09)
end

local function log_std_normal(z)
  return -(z:square():sum(2) * 0.5) - z:size(2) * 0.5 * LOG_2PI
end

local FLOWS = { qsl = "qsl", qsl2 = "qsl2", leapfrog = "leapfrog", planar = "planar" }
--- What a flow is called in the picture.
local TITLES = { qsl = "quasi-symplectic Langevin (L-VAE)", qsl2 = "quasi-symplectic Langevin, 2nd order",
                 leapfrog = "leapfrog (HVAE)", planar = "planar flow" }

local function make_flow(name, K)
  if name == "leapfrog" then
    return lv.integrators.leapfrog{ dim = 2, K = K, dtype = "f64", step = 0.2,
                                    tempering = "fixed", T0 = 2, per_step = true }
  elseif name == "planar" then
    return lv.flows.planar{ dim = 2, K = K, dtype = "f64" }
  end
  return lv.integrators[name]{ dim = 2, K = K, dtype = "f64", step = 0.2, friction = 0.3,
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

--- The flow names of --flow ("qsl" or "leapfrog,qsl"), checked.
local function flow_names(text)
  local names, seen = {}, {}
  for name in tostring(text):gmatch("[^,%s]+") do
    if not FLOWS[name] then
      error(string.format("--flow: unknown flow '%s' (qsl, qsl2, leapfrog, planar, or a list: leapfrog,qsl)",
        name), 0)
    end
    if seen[name] then error(string.format("--flow: '%s' is listed twice", name), 0) end
    seen[name], names[#names + 1] = true, name
  end
  if #names == 0 then error("--flow: name at least one flow (qsl, qsl2, leapfrog, planar)", 0) end
  return names
end

--- The closed contour {U = -log(1 - p)} as a list of {z1, z2}.
local function contour(p, n)
  local r = math.sqrt(-2 * math.log(1 - p))
  local points = {}
  for i = 0, n do
    local t = 2 * math.pi * i / n
    local a, u = SIGMA1 * r * math.cos(t), SIGMA2 * r * math.sin(t)
    points[#points + 1] = { a, u + a * a / 4 }
  end
  return points
end

--- The fraction of samples z [S, 2] inside each contour of MASSES.
local function coverage(z)
  local u, out = U(z), {}
  for i, p in ipairs(MASSES) do
    out[i] = u:le(-math.log(1 - p)):mean():item()
  end
  return out
end

--- Trains one flow, draws its stages, and returns its record.
local function train_and_draw(run, name, c, picture)
  local flow = make_flow(name, c.K)
  local opt = optim.Adam(flow:parameters(), { lr = c.lr })
  local first, last
  for it = 1, c.iterations do
    local elbo = log_weight(flow, c.K, c.samples):mean()
    opt:step(-elbo)
    if it == 1 then first = elbo:item() end
    last = elbo:item()
  end
  -- the trained flow's ELBO, and its samples, from many draws
  lv.manual_seed(run.seed)
  local stages = {}
  local lw = lv.no_grad(function() return log_weight(flow, c.K, 4000, stages) end)
  local elbo = lw:mean():item()
  local final = stages[#stages]
  plot.flow_2d(run:picture_path(picture), stages)
  local inside = coverage(final)
  local shares = {}
  for i, f in ipairs(inside) do shares[i] = string.format("%.3f", f) end
  run:print(string.format("%s, K = %d: training ELBO %.3f -> %.3f over %d iterations; ELBO %.3f of log Z = %.3f "
    .. "(KL %.3f); inside the %s contours: %s", name, c.K, first or 0 / 0, last or 0 / 0, c.iterations, elbo,
    LOG_Z, LOG_Z - elbo, table.concat(MASSES, "/"), table.concat(shares, "/")))
  run:print(tostring(flow))
  return { flow = name, K = c.K, elbo_first = first, elbo_last = last, elbo = elbo, kl = LOG_Z - elbo,
           inside = inside, picture = picture, samples = final:narrow(1, 1, SHOWN) }
end

--- pictures/posterior.png: each flow's final samples over the target's
-- contours, one panel per flow, titled with its KL (gnuplot).
local function side_by_side(run, records)
  local blocks = {}
  for _, p in ipairs(MASSES) do
    blocks[#blocks + 1] = { title = string.format("contour holding %g of the target's mass", p),
                            rows = contour(p, 200) }
  end
  for _, r in ipairs(records) do
    local rows = {}
    for i, v in ipairs(r.samples:totable()) do rows[i] = v end
    blocks[#blocks + 1] = { title = r.flow .. " samples", rows = rows }
  end
  local script = { string.format("set multiplot layout 1,%d title \"%s\" font \",13\"", #records,
    "The banana target (contours: 50, 90, 99% of its mass) and each flow's samples after K steps"),
    "set size ratio -1", "set xrange [-6:6]", "set yrange [-2.5:8]", "unset key", "set tics out nomirror",
    "set border 3", "set xlabel 'z_1'", "set ylabel 'z_2'" }
  for i, r in ipairs(records) do
    local contours = {}
    for k = 1, #MASSES do
      contours[k] = string.format("datafile index %d using 1:2 with lines lw 1.5 lc rgb '#%s'", k - 1,
        ({ "1b6ca8", "5b9bd5", "a9c8e8" })[k])
    end
    script[#script + 1] = string.format("set title \"%s, K = %d\\nlog Z - ELBO = %.3f nats; inside 50/90/99%%: "
      .. "%.0f/%.0f/%.0f%%\"", TITLES[r.flow], r.K, r.kl, 100 * r.inside[1], 100 * r.inside[2], 100 * r.inside[3])
    script[#script + 1] = string.format("plot datafile index %d using 1:2 with points pt 7 ps 0.25 lc rgb '#40c0392b', %s",
      #MASSES + i - 1, table.concat(contours, ", "))
  end
  script[#script + 1] = "unset multiplot"
  local path = plot.gnuplot(run.dir .. "/pictures", "posterior", {
    blocks = blocks, columns = { "z1", "z2" }, script = table.concat(script, "\n"), size = { 520 * #records, 560 } })
  return path
end

return {
  name = "toy2d",
  -- the target and its exact answers, for whoever checks them
  -- (tests/experiments_spec.lua): U, log_z, the masses and coverage(z)
  target = { U = U, log_z = LOG_Z, masses = MASSES, coverage = coverage },
  options = {
    { "--flow", "qsl, qsl2, leapfrog or planar, or a comma-separated list of them", "qsl" },
    { "--K", "flow steps", 5, min = 1 },
    { "--iterations", "Adam iterations", 400, min = 0 },
    { "--samples", "samples per ELBO estimate", 64, min = 1 },
    { "--lr", "Adam learning rate", 0.02, min = 0 },
  },

  finish = function(run)
    local c = run.config
    local names = flow_names(c.flow)
    local records = {}
    for i, name in ipairs(names) do
      records[i] = train_and_draw(run, name, c, #names == 1 and "flow.png" or ("flow-" .. name .. ".png"))
    end
    local results = { log_z = LOG_Z, masses = MASSES, K = c.K }
    if #records > 1 and plot.has_gnuplot() then
      results.picture = side_by_side(run, records):match("[^/]+$")
    end
    -- the samples stay out of results.json
    for _, r in ipairs(records) do r.samples = nil end
    if #records == 1 then
      for k, v in pairs(records[1]) do results[k] = v end
    else
      results.flows = records
    end
    return results
  end,
}
