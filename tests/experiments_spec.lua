-- The experiment files of SPEC §6 run end to end through the runner, on
-- tiny settings: every file they promise is written and the numbers they
-- report are finite.
local lv = require "lvae"
local data = lv.data
local runner = require "lvae.run"
local H = require "helpers"

local read_json = H.read_json

local exists = H.exists

local function finite(v) return type(v) == "number" and v == v and v ~= math.huge and v ~= -math.huge end

local out
setup(function()
  local p = io.popen("mktemp -d")
  out = p:read("l")
  p:close()
end)
teardown(function() os.execute("rm -rf '" .. out .. "'") end)

local function run(args)
  local full = {}
  for _, a in ipairs(args) do full[#full + 1] = a end
  for _, a in ipairs({ "--out", out, "--quiet" }) do full[#full + 1] = a end
  local status, r = runner.main(full)
  assert.are.equal(0, status, type(r) == "string" and r or "status " .. tostring(status))
  return r.dir
end

--- The shape of the tensor in a .npy file.
local function data_size(path) return lv.load_npy(path):size() end

local have_fashion = exists("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")
  or exists("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte")

describe("experiments", function()
  local tiny = { "--subset", "200", "--epochs", "1", "--test-subset", "20", "--nll-samples", "5",
                 "--nll-runs", "2", "--d", "4", "--K", "1" }

  for _, model in ipairs({ "vae", "iwae", "hvae", "qsl", "qsl2", "planar" }) do
    it("images.lua trains and evaluates " .. model .. " (mlp)", function()
      if not have_fashion then return pending("dataset-fashion-mnist is not installed (scripts/setup.sh)") end
      local args = { "scripts/images.lua", "--model", model }
      for _, a in ipairs(tiny) do args[#args + 1] = a end
      local dir = run(args)
      local res = read_json(dir .. "/results.json")
      assert.are.equal("completed", res.status)
      assert.is_true(finite(res.test_nll) and finite(res.test_elbo) and finite(res.ess))
      assert.is_true(res.test_nll > 0 and res.test_nll <= -res.test_elbo + 1e-6 + 50)
      -- training's peak holds at least the training images (200 x 784 f32)
      assert.is_true(res.peak_train_bytes >= 200 * 784 * 4 and res.peak_tensor_bytes > 0)
      -- two steps of 100 rows: their median is their mean
      assert.is_true(res.ms_per_step > 0 and finite(res.ms_per_step_median))
      assert.is_true(math.abs(res.ms_per_step_median - res.ms_per_step) <= 1e-9 * res.ms_per_step,
        res.ms_per_step_median .. " vs " .. res.ms_per_step)
      assert.is_true(exists(dir .. "/pictures/samples.png") and exists(dir .. "/pictures/reconstructions.png"))
      assert.is_true(exists(dir .. "/config.json") and exists(dir .. "/log.csv"))
      assert.is_true(exists(dir .. "/checkpoints/epoch-1.ckpt"))
    end)
  end

  it("images.lua re-evaluates a finished run on --resume with the counts training had", function()
    if not have_fashion then return pending("dataset-fashion-mnist is not installed (scripts/setup.sh)") end
    local args = { "scripts/images.lua", "--model", "hvae" }
    for _, a in ipairs(tiny) do args[#args + 1] = a end
    local dir = run(args)
    local trained = read_json(dir .. "/results.json")
    assert.are.equal(2, trained.grad_evals_per_step)         -- K + 1 with the force cached
    -- the evaluation's options may change on resume
    local status, r = runner.main({ "scripts/images.lua", "--resume", dir, "--nll-samples", "7", "--quiet" })
    assert.are.equal(0, status, type(r) == "string" and r or "status " .. tostring(status))
    local again = read_json(dir .. "/results.json")
    assert.are.equal(5, trained.nll_samples)
    assert.are.equal(7, again.nll_samples)
    assert.are.equal(trained.grad_evals_per_step, again.grad_evals_per_step)
    assert.is_true(finite(again.test_nll) and finite(again.test_elbo))
    -- no step was taken in the resumed process: no training peak to report
    assert.is_nil(again.peak_train_bytes)
  end)

  it("images.lua evaluates the starting parameters with --epochs 0, on fewer than 16 test images", function()
    if not have_fashion then return pending("dataset-fashion-mnist is not installed (scripts/setup.sh)") end
    local args = { "scripts/images.lua", "--model", "qsl" }
    for _, a in ipairs(tiny) do args[#args + 1] = a end
    for _, a in ipairs({ "--epochs", "0", "--test-subset", "5" }) do args[#args + 1] = a end
    local dir = run(args)
    local res = read_json(dir .. "/results.json")
    assert.are.equal("completed", res.status)
    assert.is_true(finite(res.test_nll) and finite(res.test_elbo))
    assert.is_true(exists(dir .. "/pictures/reconstructions.png"))
  end)

  it("images.lua saves its binarised test set and evaluates on it again from the file (--save-test, --test-file)", function()
    if not have_fashion then return pending("dataset-fashion-mnist is not installed (scripts/setup.sh)") end
    local saved = out .. "/test20.npy"
    local args = { "scripts/images.lua", "--model", "vae", "--save-test", saved }
    for _, a in ipairs(tiny) do args[#args + 1] = a end
    local first = read_json(run(args) .. "/results.json")
    assert.are.equal(4321, first.test_set.binarized_with_seed)
    assert.are.equal(20, first.test_images)
    assert.are.equal(saved, first.saved_test.file)
    assert.are.equal(lv.sha256_file(saved), first.saved_test.sha256)
    assert.are.same({ 20, 784 }, data_size(saved))
    -- the same model on the file: the same pixels, so the same estimate
    args = { "scripts/images.lua", "--model", "vae", "--test-file", saved }
    for _, a in ipairs(tiny) do args[#args + 1] = a end
    local again = read_json(run(args) .. "/results.json")
    assert.are.same({ file = saved, sha256 = first.saved_test.sha256, images = 20 }, again.test_set)
    assert.are.equal(20, again.test_images)
    assert.are.equal(first.test_nll, again.test_nll)
    assert.are.equal(first.test_elbo, again.test_elbo)
    -- a fixed validation set is recorded the same way
    args[#args + 1] = "--valid-file"
    args[#args + 1] = saved
    local valid = read_json(run(args) .. "/results.json")
    assert.are.same({ file = saved, sha256 = first.saved_test.sha256, images = 20 }, valid.validation_set)
  end)

  it("images.lua refuses a test file that is not a binarised set, naming it, before training", function()
    if not have_fashion then return pending("dataset-fashion-mnist is not installed (scripts/setup.sh)") end
    local bad = out .. "/bad.amat"
    local f = assert(io.open(bad, "w"))
    f:write("0 1 0.5\n")
    f:close()
    local args = { "scripts/images.lua", "--model", "vae", "--test-file", bad, "--out", out, "--quiet" }
    for _, a in ipairs(tiny) do args[#args + 1] = a end
    local status, r = runner.main(args)
    assert.are.equal(1, status)
    local res = read_json(r.dir .. "/results.json")
    assert.are.equal("failed", res.status)
    assert.is_truthy(res.error:find(bad .. ": a binarised set is a matrix [N, 784], this file holds [1, 3]", 1, true))
    assert.are.equal(0, res.step)
  end)

  it("images.lua runs the conv architecture", function()
    if not have_fashion then return pending("dataset-fashion-mnist is not installed (scripts/setup.sh)") end
    local args = { "scripts/images.lua", "--model", "qsl", "--arch", "conv" }
    for _, a in ipairs(tiny) do args[#args + 1] = a end
    local res = read_json(run(args) .. "/results.json")
    assert.is_true(finite(res.test_nll))
  end)

  it("gaussian.lua recovers parameters and writes its table", function()
    local dir = run({ "scripts/gaussian.lua", "--dims", "1,2", "--datasets", "2", "--iterations", "30",
                      "--methods", "vb,qsl1,hvae1,planar1", "--n", "500" })
    local res = read_json(dir .. "/results.json")
    assert.are.equal("completed", res.status)
    assert.is_true(#res.table >= 2 * 5)        -- ml + 4 methods per dimension
    for _, row in ipairs(res.table) do
      assert.is_true(finite(row.delta_error) and finite(row.sigma_error), row.method)
      -- each data set's errors, their mean and its standard error
      assert.are.equal(2, #row.delta_errors)
      local a, b = row.sigma_errors[1], row.sigma_errors[2]
      assert.is_true(math.abs(row.sigma_error - (a + b) / 2) <= 1e-12 * math.abs(a + b))
      assert.is_true(math.abs(row.sigma_error_se - math.abs(a - b) / 2) <= 1e-9 * math.abs(a - b) + 1e-300)
    end
    local f = assert(io.open(dir .. "/table.md"))
    assert.truthy(f:read("a"):find(" ± ", 1, true))
    f:close()
    assert.is_true(exists(dir .. "/table.md"))
    if require("lvae.plot").has_gnuplot() then
      assert.is_true(exists(dir .. "/error_vs_dim_delta.png") and exists(dir .. "/error_vs_dim_sigma.png"))
    end
  end)

  it("compare.lua gathers the runs into one table", function()
    if not have_fashion then return pending("dataset-fashion-mnist is not installed (scripts/setup.sh)") end
    -- values that begin with "--" go after "=", as argparse wants
    local dir = run({ "scripts/compare.lua", "--configs=--model vae; --model qsl",
                      "--common=" .. table.concat(tiny, " ") })
    local f = assert(io.open(dir .. "/table.md"))
    local text = f:read("a")
    f:close()
    assert.truthy(text:find("--model vae", 1, true))
    assert.truthy(text:find("--model qsl", 1, true))
    local res = read_json(dir .. "/results.json")
    assert.are.equal(2, #res.runs)

    -- --gather tabulates finished run folders, each named by its own options
    local table_text = text
    local gathered = run({ "scripts/compare.lua", "--gather=" .. res.runs[2].dir .. "; " .. res.runs[1].dir .. "/" })
    f = assert(io.open(gathered .. "/table.md"))
    text = f:read("a")
    f:close()
    local rows, sentences = {}, {}
    for line in text:gmatch("[^\n]+") do
      if line:match("^|") then rows[#rows + 1] = line else sentences[#sentences + 1] = line end
    end
    assert.are.equal(4, #rows, text)
    -- the reading below the table: the best, the paired difference, the cost
    assert.truthy(sentences[1]:find("^%- Lowest test NLL: `%-%-model"), sentences[1])
    assert.truthy(text:find("paired over the same 20 test images", 1, true), text)
    assert.truthy(text:find("Cost of a training step", 1, true), text)
    assert.are.same(read_json(gathered .. "/results.json").reading[1], sentences[1]:sub(3))
    assert.truthy(rows[3]:find("^| %-%-model qsl |"), rows[3])
    assert.truthy(rows[4]:find("^| %-%-model vae |"), rows[4])
    -- the same numbers as the table made while running
    local function cells(line) return line:match("^| [^|]+ (|.*)$") end
    local made = {}
    for line in table_text:gmatch("[^\n]+") do if line:match("^|") then made[#made + 1] = line end end
    assert.are.equal(cells(made[3]), cells(rows[4]))
    assert.are.equal(cells(made[4]), cells(rows[3]))
    local status, failed = runner.main({ "scripts/compare.lua", "--gather=" .. out .. "/nothing-here",
                                         "--out", out, "--quiet" }, { stdout = io.open("/dev/null", "w"),
                                                                      stderr = io.open("/dev/null", "w") })
    assert.are_not.equal(0, status)
    local why = read_json(failed.dir .. "/results.json").error
    assert.truthy(why:find("nothing-here/config.json is missing", 1, true), why)
  end)

  it("toy2d.lua draws the posterior flow of a 2-D toy, q0 and each step", function()
    for _, flow in ipairs({ "qsl", "leapfrog", "planar" }) do
      local dir = run({ "scripts/toy2d.lua", "--flow", flow, "--K", "2", "--iterations", "3",
                        "--samples", "8" })
      local res = read_json(dir .. "/results.json")
      assert.is_true(finite(res.elbo_last), flow)
      local img = lv.load_png(dir .. "/pictures/flow.png")
      -- three panels side by side: q0 and the two steps
      assert.is_true(img:size(2) > 2 * img:size(1), flow)
    end
  end)

  it("toy2d.lua trains several flows and draws them side by side, with the target's exact answers", function()
    local dir = run({ "scripts/toy2d.lua", "--flow", "leapfrog,qsl", "--K", "2", "--iterations", "20" })
    local res = read_json(dir .. "/results.json")
    assert.are.equal(math.log(2 * math.pi * 2 * 0.3), res.log_z)
    assert.are.equal(2, #res.flows)
    for i, name in ipairs({ "leapfrog", "qsl" }) do
      local r = res.flows[i]
      assert.are.equal(name, r.flow)
      -- an ELBO is a lower bound on log Z: the gap is positive
      assert.is_true(finite(r.elbo) and r.kl > 0 and math.abs(r.kl - (res.log_z - r.elbo)) < 1e-12, name)
      -- the samples inside each contour: a fraction, growing with the mass the contour holds
      assert.is_true(r.inside[1] > 0 and r.inside[1] <= r.inside[2] and r.inside[2] <= r.inside[3]
        and r.inside[3] <= 1, name)
      assert.is_true(exists(dir .. "/pictures/flow-" .. name .. ".png"), name)
    end
    if (require "lvae.plot").has_gnuplot() then
      assert.are.equal("posterior.png", res.picture)
      local img = lv.load_png(dir .. "/pictures/posterior.png")
      assert.is_true(img:size(2) > img:size(1), "two panels side by side")
    end
    local status = runner.main({ "scripts/toy2d.lua", "--flow", "qsl,euler", "--out", out, "--quiet" },
      { stdout = io.open("/dev/null", "w"), stderr = io.open("/dev/null", "w") })
    assert.are.equal(1, status)
  end)

  it("toy2d.lua's contours hold the mass they claim: samples of the target itself", function()
    -- the target drawn exactly (its whitening map inverted): each contour
    -- holds its share of 200,000 samples to within 4 standard errors
    local target = dofile("scripts/toy2d.lua").target
    local g = lv.Generator(7)
    local w = lv.randn({ 200000, 2 }, "f64", g)
    local a = w:select(2, 1) * 2
    local z = lv.stack({ a, w:select(2, 2) * 0.3 + a:square() * 0.25 }, 2)
    local shares = target.coverage(z)
    for i, p in ipairs(target.masses) do
      assert.is_true(math.abs(shares[i] - p) < 4 * math.sqrt(p * (1 - p) / 200000), tostring(p))
    end
    -- and U is the banana's energy: its mean under the target is 1 (2-D chi-square / 2)
    assert.is_true(math.abs(target.U(z):mean():item() - 1) < 0.02)
  end)
end)
