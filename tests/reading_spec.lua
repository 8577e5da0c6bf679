-- reading_spec.lua -- lvae.reading: the paired difference of per-image
-- NLLs (mean, standard error, significance) against values worked by hand,
-- and the sentences read from a comparison: significant or not, the same
-- test images or not, the cost of a step, heavy-tailed weights.

local lv = require "lvae"
local reading = require "lvae.reading"
local H = require "helpers"

local function close(a, b, tol) return math.abs(a - b) <= (tol or 1e-12) * math.max(1, math.abs(b)) end

describe("reading.paired", function()
  it("gives the mean of b - a and its standard error, as worked by hand", function()
    -- differences 1, 0, 2, 0: mean 0.75, sample variance 2.75 / 3, s.e. sqrt(2.75 / 3 / 4)
    local p = reading.paired({ 1, 2, 3, 4 }, { 2, 2, 5, 4 })
    assert.is_true(close(p.diff, 0.75))
    assert.is_true(close(p.se, math.sqrt(2.75 / 3 / 4)))
    assert.is_true(close(p.z, 0.75 / math.sqrt(2.75 / 3 / 4)))
    assert.are.equal(4, p.n)
    assert.is_false(p.significant)            -- 1.57 standard errors
  end)

  it("calls a difference significant from 2 standard errors, either sign, and takes tensors", function()
    local a, b = {}, {}
    for i = 1, 100 do a[i], b[i] = 300 + i % 7, 300 + i % 7 - 0.5 + 0.01 * (i % 3) end
    local p = reading.paired(lv.tensor(a, "f64"), lv.tensor(b))
    assert.is_true(p.diff < 0 and p.significant and p.z < -2)
    local same = reading.paired(a, a)
    assert.are.equal(0, same.diff)
    assert.are.equal(0, same.se)
    assert.is_false(same.significant)
  end)

  it("refuses lists of different lengths and fewer than two images", function()
    H.expect_error(function() reading.paired({ 1, 2, 3 }, { 1, 2 }) end, "lvae.reading.paired",
      "3 values against 2", "not the same test images")
    H.expect_error(function() reading.paired({ 1 }, { 2 }) end, "at least 2 images")
  end)
end)

describe("reading.read", function()
  local SAME = { sha256 = "ab12", images = 4 }
  local function row(label, model, nll, per, extra)
    local results = { model = model, test_nll = nll, test_nll_se = 0.01, ess = 50, nll_samples = 100,
                      ms_per_step = 10, grad_evals_per_step = 0, test_set = SAME, epochs = 3, train_images = 1000 }
    for k, v in pairs(extra or {}) do results[k] = v end
    return { label = label, results = results, per_datapoint = per }
  end

  it("names the best, reads each difference against it, and says what the errors do not cover", function()
    local lines = reading.read({
      row("--model vae", "vae", 102, { 101, 102, 103, 102 }),
      row("--model hvae", "hvae", 100, { 100, 100, 101, 99 }, { ms_per_step = 50, grad_evals_per_step = 6 }),
      row("--model qsl", "qsl", 100.1, { 100.5, 99.5, 101, 99.4 }, { ms_per_step = 40, grad_evals_per_step = 5 }),
    })
    assert.truthy(lines[1]:find("Lowest test NLL: `--model hvae`, 100.00 nats", 1, true), lines[1])
    local text = table.concat(lines, "\n")
    -- vae: differences 1, 2, 2, 3 -- mean 2, s.e. sqrt(2/3/4) = 0.41: significant
    assert.truthy(text:find("`--model vae` is 2.00 ± 0.41 nats per image worse than `--model hvae` "
      .. "(paired over the same 4 test images, 4.9 s.e.): a real difference", 1, true), text)
    -- qsl: differences 0.5, -0.5, 0, 0.4: within 2 s.e.
    assert.truthy(text:find("`--model qsl` and `--model hvae` differ by 0.10", 1, true), text)
    assert.truthy(text:find("cannot tell them apart", 1, true), text)
    assert.truthy(text:find("against the cheapest, `--model vae` at 10.0 ms with 0 gradient evaluations: "
      .. "`--model hvae` 5.0× (6 gradient evaluations); `--model qsl` 4.0× (5 gradient evaluations)", 1, true), text)
    assert.truthy(text:find("trained once (3 epochs on 1000 training images)", 1, true), text)
    assert.is_nil(text:find("heavy-tailed", 1, true))
  end)

  it("pairs runs of the same model with each other, and flags heavy-tailed weights", function()
    local lines = reading.read({
      row("matched", "qsl", 100, { 100, 100, 100, 100 }, { ess = 3 }),
      row("unit", "qsl", 101, { 101, 101.1, 100.9, 101 }),
      row("vae", "vae", 99, { 99, 99, 99, 99 }),
    })
    local text = table.concat(lines, "\n")
    assert.truthy(text:find("`unit` is 1.00 ± 0.04 nats per image worse than `matched`", 1, true), text)
    assert.truthy(text:find("under a tenth of the 100 importance samples (`matched` 3.0)", 1, true), text)
  end)

  it("does not pair runs evaluated on different images or without per-image NLLs", function()
    local lines = reading.read({
      row("a", "vae", 100, { 1, 2, 3, 4 }),
      row("b", "qsl", 101, { 1, 2, 3, 4 }, { test_set = { sha256 = "ffff", images = 4 } }),
      row("c", "hvae", 102, nil),
      { label = "failed", results = { status = "failed" } },
    })
    local text = table.concat(lines, "\n")
    assert.truthy(text:find("`b` and `a` were not evaluated on the same test images", 1, true), text)
    assert.truthy(text:find("`c` against `a`: no per-image NLLs", 1, true), text)
    assert.is_nil(text:find("failed", 1, true))
    assert.are.same({ "No configuration finished with a test NLL: nothing to read." },
      reading.read({ { label = "x", results = { status = "failed" } } }))
  end)
end)
