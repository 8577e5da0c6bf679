--- lvae.estimators: SPEC §4's bounds and estimates of log p(x) for any
-- model with `model:log_weight(x, S) -> [S, B]` (lvae.models), and AIS for
-- any model with `model:log_likelihood(x, z)` and a N(0, I) prior.
--
--   local E = lv.estimators
--   E.elbo(model, x, S)        -- [B]  mean of log w         (differentiable)
--   E.iwae(model, x, S)        -- [B]  log (1/S Σ w)         (differentiable)
--   E.mean_elbo(model, x, {batch = 500})   -- the mean ELBO over a data set (a number)
--   local nll, se, ess = E.nll(model, x, {samples = 1000, chunk = 100, runs = 3})
--   local logpx, accept = E.ais(model, x, {steps = 500, chains = 16})
--   E.ess(log_w)               -- [B]  (Σ w)² / Σ w² over dim 1 of [S, B]
--
-- Shape legend: B = datapoints, S = importance samples, R = runs,
-- C = AIS chains, d = latent dim.
--
-- nll draws its samples in chunks through a C loop (src/estimators.c)
-- that keeps, per datapoint, a running max and the sums of w and w²
-- relative to it: memory is bounded by one chunk whatever S is, and the
-- ESS comes with it. The NLL of a run is the mean over datapoints of
-- -log (1/S Σ_s w_s); the standard error is that of the mean over runs
-- (sd / sqrt(R)). When the weights have infinite variance (SPEC §2) the
-- estimate still converges but the standard error means nothing: read it
-- with the ESS.
--
-- Not here: the models and their log weights (lvae.models), training.

local lv = require "lvae.base"
local C = require("lvae.core")._estimators

local M = {}

local check = require "lvae.check"
local D = require "lvae.distributed"
local fail, typename, check_count, check_options = check.fail, check.typename, check.count, check.options

local function positive(v) return v > 0 end

--- The method `name` of model, or an error naming what is missing.
local function check_model(where, model, name)
  if not check.method(model, name) then
    fail(where, "the model must have a method %s (lvae.models objects do; got %s)", name, typename(model))
  end
end

--- The estimators' one message for data x that is not a batch [B, ...].
local NOT_A_BATCH = "x must be a tensor [B, ...] with B >= 1 (got %s)"

---- bounds (differentiable) --------------------------------------------------------------

--- ELBO per datapoint [B]: (1/S) Σ_s log w_s.
function M.elbo(model, x, S)
  local where = "estimators.elbo"
  check_model(where, model, "log_weight")
  S = check_count(where, "S", S == nil and 1 or S)
  return model:log_weight((check.batch(where, x, NOT_A_BATCH)), S):mean(1)
end

--- IWAE bound per datapoint [B]: log (1/S Σ_s w_s), as a log-sum-exp.
function M.iwae(model, x, S)
  local where = "estimators.iwae"
  check_model(where, model, "log_weight")
  S = check_count(where, "S", S == nil and 1 or S)
  return model:log_weight((check.batch(where, x, NOT_A_BATCH)), S):logsumexp(1) - math.log(S)
end

--- mean_elbo(model, x [, {batch = 500}]) -> number: the ELBO averaged over
-- x's datapoints (model:elbo on `batch` of them at a time, off the tape),
-- summed in double. Under MPI the datapoints are split across the
-- processes and gathered: the same number as one process.
function M.mean_elbo(model, x, opts)
  local where = "estimators.mean_elbo"
  check_model(where, model, "elbo")
  x = check.batch(where, x, NOT_A_BATCH)
  opts = check_options(where, opts, { "batch" })
  local batch = check_count(where, "batch", opts.batch or 500)
  return lv.no_grad(function()
    local per_datapoint = D.map_rows(x, batch, function(rows) return model:elbo(rows) end)
    return per_datapoint:to("f64"):sum():item() / x:size(1)
  end)
end

---- diagnostics ------------------------------------------------------------------------

--- ESS of the normalised weights over dim 1: log_w [S, B] -> [B], [S] ->
-- 0-dim; S for equal weights, near 1 when one weight dominates.
function M.ess(log_w)
  if not lv.is_tensor(log_w) then
    fail("estimators.ess", "log_w must be a tensor [S] or [S, B] (got %s)", typename(log_w))
  end
  return C.ess(log_w)
end

---- importance-sampled NLL --------------------------------------------------------------

local NLL_ROWS = 1 << 14

--- nll(model, x, {samples = 1000, chunk = 100, runs = 3, batch, progress})
-- -> nll, se, ess, info. nll is the mean over runs of the mean over
-- datapoints of -log (1/S Σ w); se = sd / sqrt(runs) (NaN for one run);
-- ess the mean ESS over datapoints and runs. `batch` datapoints go to
-- log_weight at a time (by default as many as keep batch x chunk within
-- 2^14 rows); each call asks for at most `chunk` samples. info: sd,
-- run_nll [R], per_datapoint [B] (mean over runs), ess_per_datapoint [B],
-- nll_runs [R, B], ess_runs [R, B], samples, chunk, runs. Runs off the
-- tape. progress, a function, is called as progress(done, total) after
-- every chunk, counting weights drawn (total = N samples runs): a long
-- evaluation can show how far it is.
function M.nll(model, x, opts)
  local where = "estimators.nll"
  check_model(where, model, "log_weight")
  x = check.batch(where, x, NOT_A_BATCH)
  opts = check_options(where, opts, { "samples", "chunk", "runs", "batch", "progress" })
  local S = check_count(where, "samples", opts.samples or 1000)
  local chunk = check_count(where, "chunk", opts.chunk or math.min(S, 100))
  local R = check_count(where, "runs", opts.runs or 3)
  local N = x:size(1)
  -- by default at most NLL_ROWS rows (batch x chunk) per log_weight call:
  -- activations stay tens of MB, reused by the allocator's cache, rather
  -- than hundreds fetched from the system and faulted in on every call
  local batch = check_count(where, "batch", opts.batch or math.min(N, math.max(1, NLL_ROWS // chunk)))
  local progress = opts.progress
  if progress ~= nil and type(progress) ~= "function" then
    fail(where, "progress must be a function(done, total) (got %s)", typename(progress))
  end
  local done, total, ranks = 0, N * S * R, D.size()

  -- global batches of `batch` datapoints, each split across the processes
  -- of an MPI job (one process: all of it), gathered as [N, R]
  local nll_rows, ess_rows = lv.no_grad(function()
    return D.map_rows(x, batch, function(xb)
      local nb = xb:size(1)
      local function log_weight(n)
        local lw = model:log_weight(xb, n)
        if progress then
          done = done + n * nb * ranks        -- the job's pace, as this process sees it
          progress(math.min(done, total), total)
        end
        return lw
      end
      local nll_b, ess_b = C.nll(log_weight, nb, S, chunk, R)          -- [R, nb]
      return nll_b:t(), ess_b:t()
    end)
  end)
  local nll_runs = nll_rows:t():contiguous()                               -- [R, N]
  local ess_runs = ess_rows:t():contiguous()
  local run_nll = nll_runs:mean(2)                                            -- [R]
  local nll = run_nll:mean():item()
  local sd = R > 1 and run_nll:var(1, false, 1):sqrt():item() or 0 / 0
  local info = {
    sd = sd, run_nll = run_nll, per_datapoint = nll_runs:mean(1),
    ess_per_datapoint = ess_runs:mean(1), nll_runs = nll_runs, ess_runs = ess_runs,
    samples = S, chunk = chunk, runs = R,
  }
  return nll, sd / math.sqrt(R), ess_runs:mean():item(), info
end

---- annealed importance sampling ----------------------------------------------------------

--- β_0 = 0 < ... < β_T = 1. "sigmoid" is Grosse et al.'s (2015) schedule
-- used by Wu et al. (2017): σ(δ (2t/T - 1)) rescaled to [0, 1], δ = 4;
-- "linear" is t/T.
local function schedule(kind, T)
  local betas = {}
  if kind == "linear" then
    for t = 0, T do betas[t] = t / T end
  else
    local delta = 4
    local function s(t) return 1 / (1 + math.exp(-delta * (2 * t / T - 1))) end
    local lo, hi = s(0), s(T)
    for t = 0, T do betas[t] = (s(t) - lo) / (hi - lo) end
  end
  betas[0], betas[T] = 0, 1
  return betas
end

--- ais(model, x, {steps = 500, chains = 16, leapfrog_steps = 10,
-- step_size = 0.1, schedule = "sigmoid", adapt = true, target_accept =
-- 0.65}) -> log p(x) [B], acceptance rate, info.
--
-- SPEC §4: C chains per datapoint start from the prior and follow
-- p_t(z) ∝ N(z; 0, I) p(x|z)^β_t; log W_c += (β_t - β_{t-1}) log p(x|z_c)
-- before each transition, an HMC move (fresh momentum, leapfrog_steps
-- leapfrog steps, Metropolis accept/reject) that leaves p_t invariant.
-- log p(x) ≈ log (1/C Σ_c W_c). With adapt, each datapoint's step size
-- is multiplied by 1.02 after a transition whose acceptance over its
-- chains beat target_accept, and by 0.98 otherwise (Wu et al.). info:
-- log_w [C, B], ess [B] of the chain weights, step_size [B].
-- Gradients of log p(x|z) come from the tape (lv.grad), nothing else is
-- recorded.
function M.ais(model, x, opts)
  local where = "estimators.ais"
  check_model(where, model, "log_likelihood")
  x = check.batch(where, x, NOT_A_BATCH)
  opts = check_options(where, opts, { "steps", "chains", "leapfrog_steps", "step_size",
                                      "schedule", "adapt", "target_accept", "gen" })
  local T = check_count(where, "steps", opts.steps or 500)
  local nc = check_count(where, "chains", opts.chains or 16)
  local L = check_count(where, "leapfrog_steps", opts.leapfrog_steps or 10)
  local eps0 = check.number(where, "step_size", opts.step_size or 0.1, "a positive number", positive)
  local target = check.number(where, "target_accept", opts.target_accept or 0.65, "a positive number", positive)
  if target >= 1 then fail(where, "target_accept must lie in (0, 1) (got %s)", tostring(target)) end
  local kind = opts.schedule or "sigmoid"
  if kind ~= "sigmoid" and kind ~= "linear" then
    fail(where, "unknown schedule '%s' (known: sigmoid, linear)", tostring(kind))
  end
  local adapt = opts.adapt ~= false
  if model.prior ~= nil and model.prior ~= "normal" then
    fail(where, "AIS starts from a N(0, I) prior (the model's is '%s')", tostring(model.prior))
  end
  local d = model.dim
  if math.type(d) ~= "integer" then
    fail(where, "the model's latent dim is unknown (model.dim; call model:elbo once, or give dim)")
  end
  local gen = check.generator(where, "option 'gen'", opts.gen)
  local dtype = model.dtype or x:dtype()
  local betas = schedule(kind, T)
  -- batch noise (lv.randn_batch): under MPI each process draws its
  -- datapoints' part of the whole draw
  local function randn(shape)
    return gen and lv.randn_batch(shape, dtype, gen) or lv.randn_batch(shape, dtype)
  end
  local function rand(shape)
    return gen and lv.rand_batch(shape, dtype, gen) or lv.rand_batch(shape, dtype)
  end

  -- AIS on the datapoints x [B, ...] (all, or one process's share):
  -- log p(x) [B], log_w [B, C], ess [B], step size [B], and each
  -- datapoint's acceptance summed over the transitions [B].
  local function ais_rows(x)
    local B = x:size(1)
    -- log p(x|z) [C, B] and its gradient [C, B, d] at z, off the tape.
    local function loglik_and_grad(z)
      return lv.enable_grad(function()
        local zl = lv.param(z)
        local ll = model:log_likelihood(x, zl)
        local g = lv.grad(ll:sum(), { zl })[1]
        return ll:detach(), g
      end)
    end

    local z = randn({ nc, B, d })
    local ll, gll = loglik_and_grad(z)
    local log_w = lv.zeros({ nc, B }, dtype)
    local eps = lv.full({ 1, B, 1 }, eps0, dtype)
    local accepted = lv.zeros({ B }, "f64")

    for t = 1, T do
      local beta = betas[t]
      log_w = log_w + (beta - betas[t - 1]) * ll
      -- One HMC transition for E(z) = |z|²/2 - β log p(x|z).
      local function energy(zz, l) return 0.5 * zz:square():sum(3) - beta * l end
      local function force(zz, g) return beta * g - zz end          -- -∇E
      local p = randn({ nc, B, d })
      local H0 = energy(z, ll) + 0.5 * p:square():sum(3)
      local zn, lln, glln = z, ll, gll
      p = p + (0.5 * eps) * force(zn, glln)
      for l = 1, L do
        zn = zn + eps * p
        lln, glln = loglik_and_grad(zn)
        if l < L then p = p + eps * force(zn, glln) end
      end
      p = p + (0.5 * eps) * force(zn, glln)
      local H1 = energy(zn, lln) + 0.5 * p:square():sum(3)
      local accept = rand({ nc, B, 1 }):view({ nc, B }):log():lt(H0 - H1)   -- NaN H1 rejects
      z = C.select(accept, zn, z)
      ll = C.select(accept, lln, ll)
      gll = C.select(accept, glln, gll)
      local rate = accept:mean(1)                                    -- [B]
      accepted = accepted + rate:to("f64")
      if adapt then
        eps = eps * (0.98 + 0.04 * rate:gt(target)):reshape({ 1, B, 1 })
      end
    end

    local logpx = log_w:logsumexp(1) - math.log(nc)
    return logpx, log_w:t(), C.ess(log_w), eps:reshape({ B }), accepted
  end

  -- the datapoints split across the processes of an MPI job, gathered
  local logpx, log_w, ess, step_size, accepted = lv.no_grad(function()
    return D.map_rows(x, x:size(1), ais_rows, { gen = gen })
  end)
  return logpx, accepted:sum():item() / (x:size(1) * T),
    { log_w = log_w:t():contiguous(), ess = ess, step_size = step_size }
end

return M
