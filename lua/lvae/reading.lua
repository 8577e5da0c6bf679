--- lvae.reading: the plain-language reading of a comparison of trained
-- models, generated from their numbers -- which differences in test NLL
-- the standard errors can tell apart, and what each model costs.
--
--   local reading = require "lvae.reading"
--   local p = reading.paired(nll_a, nll_b)   -- {diff, se, z, n, significant}
--   for _, line in ipairs(reading.read(rows)) do print(line) end
--
-- A difference is read from the models' per-image NLLs on the same test
-- images, paired: the mean of b - a over the images, with the standard
-- error of that mean. Pairing takes out what the images share (an image
-- hard for one model is hard for all), so it sees differences far smaller
-- than the spread of the NLL over images. It counts the test sample and
-- the importance sampling as noise, not training: a trained model is
-- compared with a trained model, not a method with a method.

local M = {}

--- Differences beyond Z standard errors (about 95%, two-sided) are called
-- significant.
M.Z = 2

local function values(v)
  if type(v) == "table" then return v end
  return v:to("f64"):contiguous():view({ -1 }):totable()
end

--- reading.paired(a, b) -> {diff, se, z, n, significant}: b - a per image
-- (lists or 1-d tensors of the same length, at least 2), its mean, the
-- standard error of the mean, their ratio and whether |z| >= M.Z.
function M.paired(a, b)
  a, b = values(a), values(b)
  if #a ~= #b then
    error(string.format("lvae.reading.paired: %d values against %d: not the same test images", #a, #b), 0)
  end
  local n = #a
  if n < 2 then error("lvae.reading.paired: at least 2 images are needed for a standard error", 0) end
  local sum = 0
  for i = 1, n do sum = sum + (b[i] - a[i]) end
  local mean, ss = sum / n, 0
  for i = 1, n do ss = ss + (b[i] - a[i] - mean) ^ 2 end
  local se = math.sqrt(ss / (n - 1) / n)
  local z = se > 0 and mean / se or (mean == 0 and 0 or math.huge * mean)
  return { diff = mean, se = se, z = z, n = n, significant = math.abs(z) >= M.Z }
end

local function num(v) return type(v) == "number" and v == v end

--- A count as written (JSON gives 200 back as 200.0).
local function int(v)
  if not num(v) then return "?" end
  return string.format("%d", math.floor(v + 0.5))
end

--- How the test set of a run's results is named, for telling whether two
-- runs met the same images.
local function test_identity(res)
  local t = res.test_set
  if type(t) ~= "table" then return nil end
  local n = t.images or res.test_images
  if t.binarized_with_seed then return string.format("seed %s %s %s", tostring(t.binarized_with_seed),
    tostring(res.data), tostring(n)) end
  -- any other description: its fields in order, but for where a file
  -- lies (the same bytes elsewhere are the same images: sha256 says so)
  local keys, parts = {}, {}
  for k, v in pairs(t) do
    if k ~= "file" and (type(v) == "string" or type(v) == "number") then keys[#keys + 1] = k end
  end
  table.sort(keys)
  for i, k in ipairs(keys) do parts[i] = k .. "=" .. tostring(t[k]) end
  return #parts > 0 and table.concat(parts, " ") or nil
end

local function sentence_for(p, name_b, name_a)
  local worse = p.diff > 0 and "worse" or "better"
  if p.significant then
    return string.format("%s is %.2f ± %.2f nats per image %s than %s (paired over the same %d test images, "
      .. "%.1f s.e.): a real difference between these two trained models.", name_b, math.abs(p.diff), p.se,
      worse, name_a, p.n, math.abs(p.z))
  end
  return string.format("%s and %s differ by %.2f ± %.2f nats per image (paired over the same %d test images, %.1f s.e.): "
    .. "within %g standard errors, so this test set cannot tell them apart.", name_b, name_a, math.abs(p.diff),
    p.se, p.n, math.abs(p.z), M.Z)
end

--- reading.read(rows) -> list of sentences. rows: {label = "...",
-- results = a run's results.json table (test_nll, test_nll_se, ess,
-- nll_samples, ms_per_step, grad_evals_per_step, test_set, epochs,
-- train_images), per_datapoint = its per-image NLLs or nil}. Rows without
-- a test NLL are left out.
function M.read(rows)
  local done = {}
  for _, r in ipairs(rows) do
    if type(r.results) == "table" and num(r.results.test_nll) then done[#done + 1] = r end
  end
  if #done == 0 then return { "No configuration finished with a test NLL: nothing to read." } end
  table.sort(done, function(a, b) return a.results.test_nll < b.results.test_nll end)
  local lines = {}
  local best = done[1]
  local name = function(r) return "`" .. r.label .. "`" end
  lines[#lines + 1] = string.format("Lowest test NLL: %s, %.2f nats (± %.2f over repeated importance-sampling "
    .. "estimates).", name(best), best.results.test_nll, num(best.results.test_nll_se) and best.results.test_nll_se or 0)

  -- differences: each against the best, and runs of the same model
  -- (e.g. two initial temperatures) against each other
  local function compare(a, b)
    if not (a.per_datapoint and b.per_datapoint) then
      return string.format("%s against %s: no per-image NLLs, so no paired comparison.", name(b), name(a))
    end
    local ia, ib = test_identity(a.results), test_identity(b.results)
    if not ia or ia ~= ib then
      return string.format("%s and %s were not evaluated on the same test images: no paired comparison.",
        name(b), name(a))
    end
    return sentence_for(M.paired(a.per_datapoint, b.per_datapoint), name(b), name(a))
  end
  for i = 2, #done do lines[#lines + 1] = compare(best, done[i]) end
  for i = 1, #done do
    for j = i + 1, #done do
      local a, b = done[i], done[j]
      if a ~= best and a.results.model ~= nil and a.results.model == b.results.model then
        lines[#lines + 1] = compare(a, b)
      end
    end
  end

  -- costs, against the cheapest step
  local cheapest
  for _, r in ipairs(done) do
    if num(r.results.ms_per_step) and (not cheapest or r.results.ms_per_step < cheapest.results.ms_per_step) then
      cheapest = r
    end
  end
  if cheapest then
    local parts = {}
    for _, r in ipairs(rows) do
      local ms = r.results and r.results.ms_per_step
      if r ~= cheapest and num(ms) then
        parts[#parts + 1] = string.format("%s %.1f× (%s gradient evaluations)", name(r),
          ms / cheapest.results.ms_per_step, int(r.results.grad_evals_per_step))
      end
    end
    lines[#lines + 1] = string.format("Cost of a training step (the update included), against the cheapest, %s at "
      .. "%.1f ms with %s gradient evaluations: %s.", name(cheapest), cheapest.results.ms_per_step,
      int(cheapest.results.grad_evals_per_step), #parts > 0 and table.concat(parts, "; ") or "no other step timed")
  end

  -- estimates resting on few samples
  local few = {}
  for _, r in ipairs(rows) do
    local ess, S = r.results and r.results.ess, r.results and r.results.nll_samples
    if num(ess) and num(S) and ess < 0.1 * S then
      few[#few + 1] = string.format("%s %.1f", name(r), ess)
    end
  end
  if #few > 0 then
    lines[#lines + 1] = string.format("An ESS under a tenth of the %s importance samples (%s) says the weights are "
      .. "heavy-tailed: such an estimate rests on a few samples, sits above the true NLL by more (the log of a "
      .. "mean of weights is biased low), and its standard errors understate its spread.",
      int(done[1].results.nll_samples), table.concat(few, ", "))
  end

  -- what the standard errors do not cover
  local res = best.results
  lines[#lines + 1] = string.format("Each model was trained once%s. These standard errors count the test images "
    .. "and the importance sampling, not training: they say which of these trained models is better, not which "
    .. "method is, for which SPEC §6.2 trains each model three times to convergence.",
    num(res.epochs) and string.format(" (%s epochs on %s training images)", int(res.epochs),
      (res.train_images or res.train_patches) and int(res.train_images or res.train_patches) or "the") or "")
  return lines
end

return M
