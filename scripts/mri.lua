--- Brain MRI patches: VAE, HVAE and L-VAE (qsl) on real clinical image data.
--
--   ./lvae run scripts/mri.lua --model vae
--   ./lvae run scripts/mri.lua --model hvae --K 5
--   ./lvae run scripts/mri.lua --model qsl --K 5
--
-- Data: the Colin27 single-subject T1 brain MRI (Holmes et al. 1998) as
-- Debian's mricron-data ships it, /usr/share/mricron/templates/
-- ch2better.nii.gz: 301 x 370 x 316 voxels of 0.5 mm, uint8, read with
-- lv.load_nifti (nifticlib). --file reads any other 3-D NIfTI image.
--
-- Preparation, in this order:
--   1. optionally average --downsample f voxels along each axis (f = 2:
--      1 mm, the usual clinical resolution);
--   2. min-max scale the whole volume to [0, 1];
--   3. split the axial slices (the volume's first index, [nz, ny, nx]) by
--      slice, never by patch: consecutive slices form blocks of --block
--      slices; block b goes to test when b % E == E - 1 (E = --test-every,
--      so 1 block in E), to validation when b % 2E == 1, else to training;
--      a training slice closer than --gap slices to a test or validation
--      slice is dropped, so that no test patch has a near-copy (the
--      adjacent slice, 0.5 mm away) in training. No slice is in two sets;
--   4. cut every slice into non-overlapping --patch x --patch patches (the
--      slice centre-cropped to a whole number of patches) and drop the
--      background: a patch is kept when at least --min-fraction (1%) of
--      its pixels exceed --threshold (0.05);
--   5. dequantise (default, for integer data): a stored level v becomes
--      (v + u) / L with u ~ U(0, 1) and L the number of levels, fresh noise
--      for every training batch, drawn once with a fixed seed for
--      validation and test. A density on [0, 1]^D is then a density of
--      the data, not of a finite set of points, and -log P(levels) <=
--      NLL + D log L (Theis et al. 2016), which is reported too.
--
-- Model: mlp encoder D-500-500 (softplus) -> GaussianHead(d), decoder the
-- mirror d-500-500-D giving the Gaussian means, FlowVAE's Gaussian
-- likelihood with a learned per-pixel log standard deviation (started at
-- log of the data's standard deviation; the output bias at the mean
-- training patch). --model vae (no flow), hvae (leapfrog, fixed
-- tempering) or qsl (quasi-symplectic Langevin, friction 0.5), K steps
-- from step size --step (0.02: the Gaussian potential is far stiffer than
-- the Bernoulli one of SPEC §6.2). Adamax (lr 1e-3, eps 1e-7): SPEC
-- §6.2's 5e-4 leaves the learned log standard deviations, which Adamax
-- moves by at most about lr per step, far from converged in 50 epochs.
--
-- Results: test NLL in nats per patch (importance sampling, S = 1000
-- samples by default, --nll-runs runs, with the standard error and the
-- ESS) on --test-subset patches spread over the test slices (500 by
-- default: S = 1000 through a K = 5 flow costs about half a millisecond
-- per sample on 2 cores, 0 takes every test patch), test ELBO, the
-- discrete bound above, and pictures: the middle axial slice (anterior
-- up), decoder means at z ~ N(0, I), reconstructions of test patches
-- (inputs above, decoder means at the flowed encoder mean below). A
-- density of continuous data: the NLL may be negative.
--
-- The patch cutting and the split are exported as module functions
-- (patches, split_slices, prepare) for tests and other scripts.

local lv = require "lvae"
local nn = require "lvae.nn"
local optim = require "lvae.optim"

local COLIN27 = "/usr/share/mricron/templates/ch2better.nii.gz"

local M = {}

local function fail(fmt, ...) error(string.format("mri: " .. fmt, ...), 0) end

---- data --------------------------------------------------------------------------------

--- Averages f x f x f voxels of a volume [nz, ny, nx] (the sizes cropped
-- down to multiples of f).
function M.downsample(volume, f)
  if f == 1 then return volume end
  local nz, ny, nx = table.unpack(volume:size())
  local cz, cy, cx = nz // f, ny // f, nx // f
  if cz < 1 or cy < 1 or cx < 1 then
    fail("--downsample %d is larger than the volume [%d,%d,%d]", f, nz, ny, nx)
  end
  local v = volume:narrow(1, 1, cz * f):narrow(2, 1, cy * f):narrow(3, 1, cx * f)
  return v:reshape({ cz, f, cy, f, cx, f }):mean(6):mean(4):mean(2)
end

--- Assigns the slices 1..nz to training, validation and test (header
-- comment, step 3). opts: block (10), test_every (5, at least 3), gap (2).
-- Returns {train = {...}, validation = {...}, test = {...}} of slice
-- indices (1-based, ascending), and the label of each slice ("train",
-- "validation", "test" or "gap").
function M.split_slices(nz, opts)
  opts = opts or {}
  local block, every, gap = opts.block or 10, opts.test_every or 5, opts.gap or 2
  if math.type(nz) ~= "integer" or nz < 1 then fail("the volume has no slice") end
  if math.type(block) ~= "integer" or block < 1 then fail("--block must be an integer >= 1") end
  if math.type(every) ~= "integer" or every < 3 then
    fail("--test-every must be an integer >= 3 (test and validation blocks must not touch)")
  end
  if math.type(gap) ~= "integer" or gap < 0 then fail("--gap must be an integer >= 0") end
  local label = {}
  for k = 1, nz do
    local b = (k - 1) // block
    if b % every == every - 1 then
      label[k] = "test"
    elseif b % (2 * every) == 1 then
      label[k] = "validation"
    else
      label[k] = "train"
    end
  end
  -- training slices within `gap` of a held-out slice are used by no set
  local held = {}
  for k = 1, nz do held[k] = label[k] ~= "train" end
  for k = 1, nz do
    if label[k] == "train" then
      for j = math.max(1, k - gap), math.min(nz, k + gap) do
        if held[j] then label[k] = "gap"; break end
      end
    end
  end
  local sets = { train = {}, validation = {}, test = {} }
  for k = 1, nz do
    local s = sets[label[k]]
    if s then s[#s + 1] = k end
  end
  return sets, label
end

--- lv.cat over dim 1 of any number of tensors (lv.cat takes at most 256).
local function cat_rows(parts)
  while #parts > 1 do
    local merged = {}
    for i = 1, #parts, 256 do
      local group = { table.unpack(parts, i, math.min(#parts, i + 255)) }
      merged[#merged + 1] = #group == 1 and group[1] or lv.cat(group, 1)
    end
    parts = merged
  end
  return parts[1]:contiguous()
end

--- Rows `rows` (a list of 1-based indices, any order) of x [N, ...] as a
-- new tensor, gathered by runs of consecutive rows.
local function gather_rows(x, rows)
  local parts, i = {}, 1
  while i <= #rows do
    local j = i
    while j < #rows and rows[j + 1] == rows[j] + 1 do j = j + 1 end
    parts[#parts + 1] = x:narrow(1, rows[i], j - i + 1)
    i = j + 1
  end
  if #parts == 0 then return nil end
  return cat_rows(parts)
end
M.gather_rows = gather_rows

--- Cuts the slices of volume [nz, ny, nx] into non-overlapping P x P
-- patches and drops the background. opts: size (P, 32), slices (a list
-- of 1-based slice indices; default all), threshold (0.05), min_fraction
-- (0.01: a patch is kept when at least this fraction of its pixels exceed
-- threshold). Each slice is centre-cropped to gy P x gx P (gy = ny // P,
-- gx = nx // P); patches are numbered slice by slice, then row by row of
-- the grid. Returns x [N, P*P] (or nil when every patch is background),
-- the slice of each kept patch (a list), and {grid = {gy, gx}, total =
-- patches before dropping, kept = N}.
function M.patches(volume, opts)
  opts = opts or {}
  local P = opts.size or 32
  local threshold = opts.threshold or 0.05
  local min_fraction = opts.min_fraction or 0.01
  if not lv.is_tensor(volume) or volume:dim() ~= 3 then
    fail("patches: the volume must be a tensor [nz, ny, nx]")
  end
  local nz, ny, nx = table.unpack(volume:size())
  local gy, gx = ny // P, nx // P
  if gy < 1 or gx < 1 then
    fail("patches: slices of %dx%d are smaller than one %dx%d patch", ny, nx, P, P)
  end
  local slices = opts.slices
  if slices == nil then
    slices = {}
    for k = 1, nz do slices[k] = k end
  end
  -- [nz, gy P, gx P] -> [nz, gy, P, gx, P] -> [nz, gy, gx, P, P] -> [nz gy gx, P P]
  local crop = volume:narrow(2, (ny - gy * P) // 2 + 1, gy * P):narrow(3, (nx - gx * P) // 2 + 1, gx * P)
  local per_slice = gy * gx
  local rows, slice_of = {}, {}
  local wanted = {}
  for _, k in ipairs(slices) do
    if math.type(k) ~= "integer" or k < 1 or k > nz then
      fail("patches: slice %s is not in 1..%d", tostring(k), nz)
    end
    wanted[k] = true
  end
  local total = 0
  -- one run of consecutive wanted slices at a time, so that only the
  -- slices asked for are cut
  local k = 1
  while k <= nz do
    if not wanted[k] then
      k = k + 1
    else
      local k1 = k
      while k1 < nz and wanted[k1 + 1] do k1 = k1 + 1 end
      local n = k1 - k + 1
      local all = crop:narrow(1, k, n):reshape({ n, gy, P, gx, P }):permute({ 1, 2, 4, 3, 5 })
                      :reshape({ n * per_slice, P * P })
      local keep = all:gt(threshold):mean(2):ge(min_fraction):totable()
      local part = {}
      for i, flag in ipairs(keep) do
        if flag ~= 0 then
          part[#part + 1] = i
          slice_of[#slice_of + 1] = k + (i - 1) // per_slice
        end
      end
      local got = gather_rows(all, part)
      if got then rows[#rows + 1] = got end
      total = total + n * per_slice
      k = k1 + 1
    end
  end
  local x = #rows > 0 and cat_rows(rows) or nil
  return x, slice_of, { grid = { gy, gx }, total = total, kept = x and x:size(1) or 0 }
end

--- Loads and prepares the data (header comment, steps 1-4). c holds the
-- options (file, downsample, patch, block, test-every, gap, threshold,
-- min-fraction). Returns {train, validation, test} (each {x [N, P*P]
-- in [0, 1], slices}), the volume (scaled), the split, and facts about
-- the image.
function M.prepare(c)
  local file = c.file or COLIN27
  local f = io.open(file, "rb")
  if not f then
    if file == COLIN27 then
      fail("%s is missing: install Debian's mricron-data (./scripts/setup.sh does)", file)
    end
    fail("cannot open %s", file)
  end
  f:close()
  local raw, info = lv.load_nifti(file, "f32")
  local volume = M.downsample(raw, c.downsample or 1)
  local lo, hi = volume:min():item(), volume:max():item()
  if not (hi > lo) then fail("%s is constant (every voxel is %g)", file, lo) end
  volume = (volume - lo) / (hi - lo)
  -- integer data not averaged and not rescaled: `hi - lo + 1` levels
  local levels = nil
  if info.datatype:find("int") and not info.scaled and (c.downsample or 1) == 1 then
    levels = math.floor(hi - lo + 0.5) + 1
  end
  local nz = volume:size(1)
  local split = M.split_slices(nz, { block = c.block or 10, test_every = c["test-every"] or 5,
                                     gap = c.gap or 2 })
  local sets = {}
  for _, name in ipairs({ "train", "validation", "test" }) do
    local x, slice_of = M.patches(volume, { size = c.patch or 32, slices = split[name],
      threshold = c.threshold or 0.05, min_fraction = c["min-fraction"] or 0.01 })
    if not x then fail("the %s slices hold no patch above the background", name) end
    sets[name] = { x = x, slices = slice_of }
  end
  return sets, volume, split, { info = info, levels = levels, file = file }
end

---- dequantisation ------------------------------------------------------------------------

--- x in [0, 1] on the grid k / (L - 1) -> (k + u) / L, u ~ U(0, 1).
local function dequantize(x, levels, gen)
  if not levels then return x end
  local u = gen and lv.rand(x:size(), x:dtype(), gen) or lv.rand(x:size(), x:dtype())
  return (x * (levels - 1) + u) / levels
end

--- n rows of x spread evenly over it (so over the slices, which come in
-- order); all of x when n is 0 or at least its size.
local function spread(x, n)
  local N = x:size(1)
  if not n or n <= 0 or n >= N then return x end
  local rows = {}
  for i = 1, n do rows[i] = (i - 1) * N // n + 1 end
  return gather_rows(x, rows)
end
M.spread = spread

---- the model -------------------------------------------------------------------------

local function make_flow(c)
  if c.model == "vae" then return nil end
  if c.model == "hvae" then
    return lv.integrators.leapfrog{ dim = c.d, K = c.K, step = c.step, tempering = "fixed" }
  end
  if c.model == "qsl" then
    return lv.integrators.qsl{ dim = c.d, K = c.K, step = c.step, friction = 0.5 }
  end
  fail("unknown model '%s' (vae, hvae, qsl)", tostring(c.model))
end

local function make_model(c, D, train_x)
  local d = c.d
  local enc = nn.Sequential(nn.Linear(D, 500), nn.Softplus(), nn.Linear(500, 500), nn.Softplus(),
                            nn.GaussianHead(500, d))
  local out = nn.Linear(500, D)
  local dec = nn.Sequential(nn.Linear(d, 500), nn.Softplus(), nn.Linear(500, 500), nn.Softplus(), out)
  lv.no_grad(function() out.bias:copy_(train_x:mean(1)) end)
  local sd = lv.no_grad(function() return train_x:var(1, false, 0):mean():sqrt():item() end)
  local flow = make_flow(c)
  local model = lv.models.FlowVAE{ encoder = enc, decoder = dec, likelihood = "gaussian",
                                   x_dim = D, log_sigma_x = math.log(math.max(sd, 1e-3)),
                                   flow = flow, K = flow and c.K or nil, dim = d }
  return model, flow
end

---- the experiment file ---------------------------------------------------------------

M.name = "mri"
M.options = {
  { "--model", "vae, hvae (leapfrog, fixed tempering) or qsl", "qsl",
    choices = { "vae", "hvae", "qsl" } },
  { "--K", "flow steps", 5, min = 1 },
  { "--step", "the flow's initial step size", 0.02, min = 0 },
  { "--d", "latent dimension", 16, min = 1 },
  { "--epochs", "training epochs", 50 },
  { "--batch", "batch size", 100, min = 1 },
  { "--lr", "Adamax learning rate", 1e-3, min = 0 },
  { "--file", "the NIfTI image (default: Colin27 from mricron-data)", COLIN27 },
  { "--downsample", "average f x f x f voxels first (1: native 0.5 mm)", 1, min = 1 },
  { "--patch", "patch side in pixels", 32, min = 1 },
  { "--threshold", "a pixel is foreground above this (intensities in [0, 1])", 0.05 },
  { "--min-fraction", "keep a patch with at least this fraction of foreground pixels", 0.01,
    min = 0 },
  { "--block", "slices per block of the split", 10, min = 1 },
  { "--test-every", "one block in N goes to test (N >= 3)", 5, min = 3 },
  { "--gap", "training slices dropped next to held-out ones", 2, min = 0 },
  { "--dequantize", "uniform dequantisation of integer intensities", true },
  { "--subset", "train on N training patches spread over the slices (0: all)", 0, min = 0 },
  { "--test-subset", "evaluate on N test patches spread over the slices (0: all)", 500, min = 0 },
  { "--nll-samples", "importance samples for the test NLL", 1000, min = 1, resume = "keep" },
  { "--nll-runs", "repeated NLL estimates (standard error over them)", 3, min = 1, resume = "keep" },
}

function M.setup(run)
  local c = run.config
  local sets, volume, split, facts = M.prepare(c)
  local levels = c.dequantize and facts.levels or nil
  local train = sets.train.x
  train = spread(train, c.subset)
  local D = train:size(2)
  -- validation and test are dequantised once, with fixed seeds
  local validation = dequantize(spread(sets.validation.x, 2000), levels, lv.Generator(1234))
  local test = dequantize(spread(sets.test.x, c["test-subset"]), levels, lv.Generator(4321))
  local model, flow = make_model(c, D, train)
  local opt = optim.Adamax(model:parameters(), { lr = c.lr, eps = 1e-7 })
  local info = facts.info
  run:print(string.format("%s: %s voxels of %s mm (%s), %d axial slices after --downsample %d",
    facts.file, table.concat(info.dims, "x"), table.concat(info.pixdim, "x", 1, 3), info.datatype,
    volume:size(1), c.downsample))
  run:print(string.format("slices: %d train, %d validation, %d test, %d dropped as gaps " ..
    "(blocks of %d, 1 in %d to test); patches %dx%d: %d train, %d validation, %d test%s",
    #split.train, #split.validation, #split.test,
    volume:size(1) - #split.train - #split.validation - #split.test, c.block, c["test-every"],
    c.patch, c.patch, train:size(1), validation:size(1), test:size(1),
    levels and string.format("; dequantised over %d levels", levels) or ""))
  run:print(string.format("%s, d = %d%s, Gaussian likelihood with a learned per-pixel variance",
    c.model, c.d, flow and (", K = " .. c.K) or ""))
  return { train = train, validation = validation, test = test, model = model, opt = opt,
           flow = flow, levels = levels, volume = volume, split = split, grad_evals = 0,
           orientation = info.orientation }
end

function M.batches(run, state, epoch)
  local x, B = state.train, run.config.batch
  local N = x:size(1)
  -- a permutation from Lua's generator, which the runner seeds per epoch
  local order = {}
  for i = 1, N do order[i] = i end
  for i = N, 2, -1 do
    local j = math.random(i)
    order[i], order[j] = order[j], order[i]
  end
  local gen = run.generator and run:generator() or nil
  local start = 1
  local function next_batch()
    if start > N then return nil end
    local rows = {}
    for i = start, math.min(N, start + B - 1) do rows[#rows + 1] = order[i] end
    start = start + B
    table.sort(rows)              -- longer runs for gather_rows; a batch is a set
    return dequantize(gather_rows(x, rows), state.levels, gen)
  end
  return next_batch, (N + B - 1) // B
end

function M.step(run, state, batch)
  local loss = state.opt:step(-state.model:elbo(batch):mean())
  state.grad_evals, state.trained = state.model.grad_evals or 0, true
  return loss, { elbo = -loss:item() }
end

--- The mean ELBO of x, in chunks, off the tape.
function M.validate(run, state)
  return { elbo = lv.estimators.mean_elbo(state.model, state.validation, { batch = 500 }) }
end

function M.checkpoint(run, state)
  local params = {}
  for i, p in ipairs(state.model:parameters()) do params[i] = p:detach() end
  return { params = params, optim = state.opt:state_dict() }
end

function M.restore(run, state, saved)
  lv.no_grad(function()
    for i, p in ipairs(state.model:parameters()) do p:copy_(saved.params[i]) end
  end)
  state.opt:load_state_dict(saved.optim)
end

function M.finish(run, state)
  local c, model, x = run.config, state.model, state.test
  local D = x:size(2)
  -- the peak so far is training's (data, the tape of a step, validation),
  -- unless this process took no step (--resume of a finished run)
  local train_peak = state.trained and lv.memory_stats().peak_bytes or nil
  lv.memory_reset_peak()
  local t0 = lv.clock()
  local nll, se, ess, info = lv.estimators.nll(model, x, {
    samples = c["nll-samples"], chunk = math.min(100, c["nll-samples"]), runs = c["nll-runs"],
    batch = 50, progress = run:task("test NLL") })
  local elbo = lv.estimators.mean_elbo(model, x, { batch = 500 })
  -- a step is one ELBO, so one ELBO's count is a step's, trained here or not
  state.grad_evals = model.grad_evals or state.grad_evals
  local results = {
    model = c.model, K = state.flow and c.K or 0, d = c.d, patch = c.patch,
    test_patches = x:size(1), train_patches = state.train:size(1),
    test_nll = nll, test_nll_se = se, test_nll_sd = info and info.sd or nil, ess = ess,
    nll_samples = c["nll-samples"], test_elbo = elbo,
    grad_evals_per_step = state.grad_evals, evaluation_seconds = lv.clock() - t0,
    peak_tensor_bytes = lv.memory_stats().peak_bytes,
    peak_train_bytes = train_peak,
    sigma_x_mean = lv.no_grad(function() return model.log_sigma_x:exp():mean():item() end),
    -- which patches: the same volume, options and count give the same ones
    test_set = { file = c.file, sha256 = lv.sha256_file(c.file), patch = c.patch, downsample = c.downsample,
                 threshold = c.threshold, block = c.block, test_every = c["test-every"], images = x:size(1) },
    nll_per_datapoint = "nll_per_datapoint.npy",
  }
  -- each test patch's NLL (mean over the runs), for paired comparisons;
  -- under MPI rank 0 writes the files
  if run.main then lv.save_npy(run.dir .. "/nll_per_datapoint.npy", info.per_datapoint) end
  if state.levels then
    -- -log P(levels) <= NLL + D log L, in nats per patch and bits per pixel
    results.levels = state.levels
    results.test_nll_discrete = nll + D * math.log(state.levels)
    results.test_bits_per_pixel = results.test_nll_discrete / (D * math.log(2))
  end
  local ok, plot = pcall(require, "lvae.plot")
  if run.main and ok and plot.sample_grid then
    local P = c.patch
    local nz, ny, nx = table.unpack(state.volume:size())
    local mid = state.volume:select(1, (nz + 1) // 2)
    if state.orientation and state.orientation[2] == "Posterior-to-Anterior" then
      local rows = {}                       -- anterior up, as radiology shows it
      for i = 1, ny do rows[i] = ny + 1 - i end
      mid = gather_rows(mid, rows)
    end
    mid = mid:reshape({ 1, ny * nx })
    plot.sample_grid(run:picture_path("slice.png"), mid, { shape = { ny, nx }, nrow = 1 })
    local _, means = model:sample(64)
    plot.sample_grid(run:picture_path("samples.png"), means:clamp(0, 1), { shape = { P, P }, nrow = 8 })
    local inputs = spread(x, 16)
    local recon = model:reconstruct(inputs)
    plot.reconstructions(run:picture_path("reconstructions.png"), inputs, recon:clamp(0, 1),
                         { shape = { P, P } })
    results.pictures = { "slice.png", "samples.png", "reconstructions.png" }
  end
  run:print(string.format("test NLL %.2f ± %.2f nats per patch (ESS %.1f of %d), test ELBO %.2f%s",
    nll, se == se and se or 0, ess, c["nll-samples"], elbo,
    results.test_bits_per_pixel and string.format("; %.3f bits per pixel on the stored levels",
                                                  results.test_bits_per_pixel) or ""))
  return results
end

return M
