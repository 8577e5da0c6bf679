--- SPEC §6.1 (HVAE §4.1): Gaussian parameter recovery.
--
--   ./lvae run scripts/gaussian.lua [--quick] [--dims 1,2,3] [--datasets 10]
--                                   [--iterations 30000] [--methods vb,hvae,...]
--
-- x_i = z + Δ + ε_i (i = 1..N), one shared z ~ N(0, I_d), ε_i ~ N(0, diag
-- σ²). Every method learns Δ and log σ jointly with its variational
-- parameters by maximising the ELBO with RMSProp in TensorFlow 1's form
-- (lr 1e-3, decay 0.9, ε 1e-10 inside the root, accumulator from 1), 10
-- samples per estimate. The potential and its gradient are closed-form
-- sums over the data through the sufficient statistics Σx_i and Σx_i², so
-- each step is O(d). Reported: ||Δ̂ − Δ||² and ||σ̂ − σ||² against d,
-- averaged over datasets (± the standard error over them when there are
-- two or more; results.json keeps each data set's errors), with the
-- maximum-likelihood floor (Δ̂ = x̄, σ̂
-- the sample standard deviation): one shared z means ||Δ̂ − Δ||² cannot
-- fall much below ||z||² ≈ d.
--
-- Methods: vb (diagonal Gaussian q(z), closed-form ELBO), planar1,
-- planar30, hvae1 / hvae10 (tempered: starting momentum std 5, T0 = 25
-- learned) and hvae1-untempered / hvae10-untempered, qsl1 / qsl10
-- (friction 0.5), euler1 (small d only); each flow from the fixed
-- q0 = N(0, I) as HVAE's code, and with --learned-q0 also from a learned
-- q0 started at VB's values. Flow step sizes start at h = 0.005.
-- Writes table.md and error_vs_dim_delta.png / error_vs_dim_sigma.png
-- (with their gnuplot data and scripts) into the run folder.
--
-- Every fit is seeded on its own, so under MPI (`mpirun -np N ./lvae run
-- scripts/gaussian.lua ...`) the fits are dealt to the processes in turn
-- and their results summed back exactly: the table is one process's, in
-- about 1/N of the time.

local lv = require "lvae"
local optim = require "lvae.optim"

local LOG_2PI = math.log(2 * math.pi)

---- the data set and its exact quantities --------------------------------------------

--- True Δ and σ for dimension d (SPEC §6.1).
local function truth(d)
  local r = lv.arange(d, "f64") - (d - 1) / 2
  local delta = r / 5
  local sigma = d == 1 and lv.ones({ 1 }, "f64")
                or r:square() * (36 / (10 * (d - 1) ^ 2)) + 0.1
  return delta, sigma
end

--- One data set: the sufficient statistics and the ML estimates.
local function dataset(d, n, gen)
  local delta, sigma = truth(d)
  local z = lv.randn({ d }, "f64", gen)
  local x = lv.randn({ n, d }, "f64", gen) * sigma + (z + delta)
  local mean = x:mean(1)
  return {
    d = d, n = n, delta = delta, sigma = sigma,
    s1 = x:sum(1), s2 = x:square():sum(1),
    ml_delta = mean, ml_sigma = x:var(1, false, 0):sqrt(),
  }
end

--- log p(x_1..N | z) for z [S, d] -> [S], through the statistics.
local function log_likelihood(data, z, delta, log_sigma)
  local n = data.n
  local shift = z + delta                                  -- [S, d]
  local var = (log_sigma * 2):exp()
  local quad = (data.s2 - shift * data.s1 * 2 + shift:square() * n) / var
  return -(quad:sum(2) * 0.5) - log_sigma:sum() * n - n * data.d * 0.5 * LOG_2PI
end

--- The mean of a list and its standard error (sd / sqrt(n), NaN below
-- two values): the spread over repeated data sets.
local function mean_and_se(values)
  local n = #values
  if n == 0 then return 0 / 0, 0 / 0 end
  local sum = 0
  for _, v in ipairs(values) do sum = sum + v end
  local mean = sum / n
  if n < 2 then return mean, 0 / 0 end
  local ss = 0
  for _, v in ipairs(values) do ss = ss + (v - mean) ^ 2 end
  return mean, math.sqrt(ss / (n - 1) / n)
end

local function log_normal(z, mean, log_std)           -- per row, summed
  local t = (z - mean) / log_std:exp()
  return -(t:square():sum(2) * 0.5) - log_std:sum() - z:size(2) * 0.5 * LOG_2PI
end

local function log_std_normal(z)
  return -(z:square():sum(2) * 0.5) - z:size(2) * 0.5 * LOG_2PI
end

---- the methods ---------------------------------------------------------------------------

--- A method: its parameters, and an ELBO estimate given (Δ, log σ).
local function make_method(name, d, learned_q0)
  local m = { name = name, params = {} }
  local q_mean = lv.zeros({ d }, "f64")
  local q_log_std = lv.zeros({ d }, "f64")
  if name == "vb" or learned_q0 then
    -- VB's q(z): mean 0, log-std 1 initially (SPEC §6.1)
    q_mean = lv.param(lv.zeros({ d }, "f64"))
    q_log_std = lv.param(lv.ones({ d }, "f64"))
    m.params = { q_mean, q_log_std }
  end
  if name == "vb" then
    -- closed form: E_q log p(x|z) + E_q log N(z) + H(q)
    function m.elbo(data, delta, log_sigma)
      local n = data.n
      local s2q = (q_log_std * 2):exp()
      local shift = q_mean + delta
      local var = (log_sigma * 2):exp()
      local quad = ((data.s2 - shift * data.s1 * 2 + (shift:square() + s2q) * n) / var):sum()
      local ell = -quad * 0.5 - log_sigma:sum() * n - n * d * 0.5 * LOG_2PI
      local prior = -((q_mean:square() + s2q):sum() * 0.5) - d * 0.5 * LOG_2PI
      local entropy = q_log_std:sum() + d * 0.5 * (LOG_2PI + 1)
      return ell + prior + entropy
    end
    return m
  end

  local kind, K = name:match("^(%a+)(%d+)")
  K = tonumber(K)
  local flow
  if kind == "planar" then
    flow = lv.flows.planar{ dim = d, K = K, dtype = "f64" }
  elseif kind == "hvae" then
    if name:find("untempered") then
      flow = lv.integrators.leapfrog{ dim = d, K = K, dtype = "f64", step = 0.005 }
    else
      flow = lv.integrators.leapfrog{ dim = d, K = K, dtype = "f64", step = 0.005,
                                      tempering = "fixed", T0 = 25 }
    end
  elseif kind == "qsl" then
    flow = lv.integrators.qsl{ dim = d, K = K, dtype = "f64", step = 0.005, friction = 0.5 }
  elseif kind == "euler" then
    flow = lv.integrators.euler{ dim = d, K = K, dtype = "f64", step = 0.005, friction = 0.5 }
  else
    error("unknown method '" .. name .. "'")
  end
  for _, p in ipairs(flow:parameters()) do m.params[#m.params + 1] = p end
  m.flow = flow

  --- SPEC §2's log w, S samples, for the whole data set as one datapoint.
  function m.elbo(data, delta, log_sigma, S)
    local z0 = lv.randn({ S, d }, "f64") * q_log_std:exp() + q_mean
    local log_q0 = log_normal(z0, q_mean, q_log_std)
    local function U(z) return -log_likelihood(data, z, delta, log_sigma) - log_std_normal(z) end
    local rho0, log_r0
    if flow:has_momentum() then
      rho0 = flow:init_momentum(S, K)
      local T0 = flow:temperature0(K)
      log_r0 = log_normal(rho0, lv.zeros({ d }, "f64"), (T0:log() * 0.5):expand({ d }))
    end
    local zK, rhoK, logdet = flow:flow(z0, rho0, U, K, { create_graph = true })
    local log_w = log_likelihood(data, zK, delta, log_sigma) + log_std_normal(zK) - log_q0 + logdet
    if rhoK then log_w = log_w + log_std_normal(rhoK) - log_r0 end
    return log_w:mean()
  end
  return m
end

---- one training run --------------------------------------------------------------------

local function fit(method_name, data, opts)
  local d = data.d
  local delta = lv.param(lv.zeros({ d }, "f64"))
  local log_sigma = lv.param(lv.full({ d }, opts.initial_log_sigma, "f64"))
  local method = make_method(method_name, d, opts.learned_q0)
  local params = { delta, log_sigma }
  for _, p in ipairs(method.params) do params[#params + 1] = p end
  local opt = optim.RMSProp(params, { lr = opts.lr, tf_style = true })
  local last
  for it = 1, opts.iterations do
    local loss = -method.elbo(data, delta, log_sigma, opts.samples)
    local value = opt:step(loss)
    last = value:item()
    if last ~= last or last == math.huge or last == -math.huge then
      return { diverged = it }
    end
  end
  local sigma_hat = log_sigma:detach():exp()
  return {
    delta_error = (delta:detach() - data.delta):square():sum():item(),
    sigma_error = (sigma_hat - data.sigma):square():sum():item(),
    final_loss = last,
  }
end

---- the study's fits, spread over the processes of a job --------------------------------

local FIT_FIELDS = 4    -- ||Δ̂ − Δ||², ||σ̂ − σ||², the iteration it diverged at (0: no), seconds

--- Runs the fits jobs[i] = {d, set, name} dealt to this process (job i to
-- rank (i - 1) mod size) and gathers every job's outcome on every process:
-- a list of {delta_error, sigma_error, diverged, seconds}. The values are
-- summed over processes with zeros where a process did not run the job,
-- which is exact.
local function run_fits(jobs, c, opts)
  local rank, size = lv.distributed.rank(), lv.distributed.size()
  local values, data_of = {}, {}
  for i, job in ipairs(jobs) do
    local base = (i - 1) * FIT_FIELDS
    for k = 1, FIT_FIELDS do values[base + k] = 0 end
    if (i - 1) % size == rank then
      local key = job.d .. ":" .. job.set
      data_of[key] = data_of[key] or dataset(job.d, c.n, lv.Generator(c.seed * 7919 + job.d * 101 + job.set))
      lv.manual_seed(c.seed * 104729 + job.d * 31 + job.set)
      local t0 = lv.clock()
      local r = fit(job.name, data_of[key], opts)
      values[base + 1], values[base + 2] = r.delta_error or 0, r.sigma_error or 0
      values[base + 3], values[base + 4] = r.diverged or 0, lv.clock() - t0
    end
  end
  if size > 1 then values = lv.mpi.allreduce_number(values) end
  local outcomes = {}
  for i = 1, #jobs do
    local base = (i - 1) * FIT_FIELDS
    local diverged = values[base + 3] > 0 and math.tointeger(values[base + 3]) or nil
    outcomes[i] = { delta_error = not diverged and values[base + 1] or nil,
                    sigma_error = not diverged and values[base + 2] or nil,
                    diverged = diverged, seconds = values[base + 4] }
  end
  return outcomes
end

---- the experiment file ------------------------------------------------------------------

local function list_of(text, convert)
  local out = {}
  for item in tostring(text):gmatch("[^,%s]+") do out[#out + 1] = convert and convert(item) or item end
  return out
end

local ALL_METHODS = "vb,planar1,planar30,hvae1,hvae10,hvae1-untempered,hvae10-untempered,qsl1,qsl10,euler1"

return {
  name = "gaussian",
  options = {
    { "--quick", "a reduced run of a few minutes (d 1,3,11; 1 data set; 3000 iterations at lr 1e-2)", false },
    { "--lr", "RMSProp learning rate", 1e-3, min = 0 },
    { "--dims", "dimensions, comma-separated", "1,2,3,5,11,25,51,101,201,301" },
    { "--datasets", "data sets per dimension", 10, min = 1 },
    { "--iterations", "RMSProp iterations per fit", 30000, min = 1 },
    { "--methods", "methods, comma-separated", ALL_METHODS },
    { "--samples", "samples per ELBO estimate", 10, min = 1 },
    { "--n", "data points per data set", 10000, min = 2 },
    { "--learned-q0", "start the flows from a learned q0 (VB's initial values)", false },
    { "--euler-max-dim", "largest d for the Euler flow (its cost grows with d)", 11, min = 0 },
  },

  finish = function(run)
    local c = run.config
    local dims = list_of(c.dims, tonumber)
    local methods = list_of(c.methods)
    local datasets, iterations = c.datasets, c.iterations
    local lr = c.lr
    if c.quick then
      -- 30,000 iterations at 1e-3 do not fit in minutes; 3,000 at 1e-2
      -- reach the same region (log sigma starts at 3)
      dims, datasets, iterations, lr = { 1, 3, 11 }, 1, 3000, 1e-2
      methods = { "vb", "planar1", "hvae1", "hvae1-untempered", "qsl1", "euler1" }
    end
    local opts = { iterations = iterations, samples = c.samples, lr = lr,
                   initial_log_sigma = 3, learned_q0 = c["learned-q0"] or c.learned_q0 }
    local rows, results = {}, { dims = dims, methods = methods, table = {} }
    local jobs = {}
    for _, d in ipairs(dims) do
      for set = 1, datasets do
        for _, name in ipairs(methods) do
          if not (name:match("^euler") and d > c["euler-max-dim"]) then
            jobs[#jobs + 1] = { d = d, set = set, name = name }
          end
        end
      end
    end
    local outcomes = run_fits(jobs, c, opts)
    local next_job = 1
    for _, d in ipairs(dims) do
      -- per method: the errors of each data set, and the diverged fits
      local sets = {}
      local function entry(name)
        sets[name] = sets[name] or { delta = {}, sigma = {}, diverged = 0 }
        return sets[name]
      end
      local function record(name, delta_error, sigma_error)
        local e = entry(name)
        e.delta[#e.delta + 1], e.sigma[#e.sigma + 1] = delta_error, sigma_error
      end
      for set = 1, datasets do
        local gen = lv.Generator(c.seed * 7919 + d * 101 + set)
        local data = dataset(d, c.n, gen)
        record("ml", (data.ml_delta - data.delta):square():sum():item(),
               (data.ml_sigma - data.sigma):square():sum():item())
        for _, name in ipairs(methods) do
          if not (name:match("^euler") and d > c["euler-max-dim"]) then
            local r = outcomes[next_job]
            next_job = next_job + 1
            if r.diverged then
              run:print(string.format("d=%d set %d %s: diverged at iteration %d", d, set, name, r.diverged))
              entry(name).diverged = entry(name).diverged + 1
            else
              record(name, r.delta_error, r.sigma_error)
            end
            run:print(string.format("d=%d set %d %-18s |Δ̂-Δ|² %.4g  |σ̂-σ|² %.4g  (%.1f s)", d, set, name,
              r.delta_error or 0 / 0, r.sigma_error or 0 / 0, r.seconds))
          end
        end
      end
      local names = { "ml" }
      for _, m in ipairs(methods) do names[#names + 1] = m end
      for _, name in ipairs(names) do
        local e = sets[name]
        if e then
          local delta_mean, delta_se = mean_and_se(e.delta)
          local sigma_mean, sigma_se = mean_and_se(e.sigma)
          local row = { d = d, method = name, runs = #e.delta,
                        delta_error = delta_mean, delta_error_se = delta_se, delta_errors = e.delta,
                        sigma_error = sigma_mean, sigma_error_se = sigma_se, sigma_errors = e.sigma,
                        diverged = e.diverged }
          rows[#rows + 1] = row
          results.table[#results.table + 1] = row
        end
      end
    end

    -- A markdown table: rows are methods, columns dimensions.
    local order = { "ml" }
    for _, m in ipairs(methods) do order[#order + 1] = m end
    local lines = { "| method | " .. table.concat(dims, " | ") .. " |",
                    "|---" .. string.rep("|---", #dims) .. "|" }
    for _, which in ipairs({ "delta_error", "sigma_error" }) do
      lines[#lines + 1] = string.format("| **%s** |%s", which == "delta_error" and "‖Δ̂−Δ‖²" or "‖σ̂−σ‖²",
        string.rep(" |", #dims))
      for _, name in ipairs(order) do
        local cells = {}
        for i, d in ipairs(dims) do
          cells[i] = "–"
          for _, r in ipairs(rows) do
            if r.method == name and r.d == d and r.runs > 0 then
              local se = r[which .. "_se"]
              cells[i] = se == se and string.format("%.3g ± %.2g", r[which], se)
                or string.format("%.3g", r[which])
            end
          end
        end
        lines[#lines + 1] = "| " .. name .. " | " .. table.concat(cells, " | ") .. " |"
      end
    end
    local markdown = table.concat(lines, "\n")
    run:print("\n" .. markdown)
    results.markdown = "table.md"
    if not run.main then return results end     -- rank 0 writes the files
    require("lvae.files").write_atomic(run.dir .. "/table.md", markdown .. "\n")

    -- One figure per error, ML floor included; a failure to plot (no
    -- gnuplot) is reported, not fatal: the table is the result.
    local plot = require "lvae.plot"
    results.plots = {}
    for _, which in ipairs({ { "delta_error", "error_vs_dim_delta", "‖Δ̂−Δ‖²" },
                             { "sigma_error", "error_vs_dim_sigma", "‖σ̂−σ‖²" } }) do
      local points = {}
      for _, r in ipairs(rows) do
        if r.runs > 0 and r[which[1]] > 0 then points[#points + 1] = r end
      end
      if #points > 0 then
        local ok, err = pcall(plot.error_vs_dim, run.dir, points,
          { y = which[1], name = which[2], ylabel = which[3], title = which[3] .. " against d" })
        if ok then
          results.plots[#results.plots + 1] = which[2] .. ".png"
        else
          run:print("no plot: " .. tostring(err))
        end
      end
    end
    return results
  end,
}
