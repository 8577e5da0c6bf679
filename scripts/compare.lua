--- Runs a list of configurations of an experiment and gathers their
-- results.json into one markdown table and a plain-language reading of it
-- (also the `make demo` job).
--
--   ./lvae run scripts/compare.lua --configs="--model vae; --model hvae --K 5; --model qsl --K 5" \
--                                  --common="--epochs 20 --subset 10000"
--   (values that begin with "--" follow an "=", as the argument parser wants)
--   ./lvae run scripts/compare.lua --demo
--
-- Each configuration is one run of --experiment (scripts/images.lua by
-- default) with --common options in front, in a folder under this run's
-- own. --gather="DIR; DIR" tabulates finished run folders instead (runs
-- made one by one or in parallel), each row named by the options its
-- command line does not share with the others. The reading (lvae.reading)
-- pairs the models' per-image NLLs when they met the same test images.
--
-- --demo is the main job on its defaults, a few minutes on 2 cores: the
-- first 500 Fashion-MNIST test images binarised once into one fixed file
-- (test-fixed.npy, its SHA-256 printed: the file another implementation
-- evaluates on), then the VAE, HVAE and the quasi-symplectic flow with
-- matched and with unit initial temperature trained briefly on 10,000
-- training images (mlp) and evaluated on that file, and the toy 2-D
-- posterior of leapfrog and qsl side by side (toy2d-posterior.png).

local runner = require "lvae.run"
local reading = require "lvae.reading"
local lv = require "lvae"
local cjson = require "cjson"

local DEMO_COMMON = "--data fashion --arch mlp --d 32 --subset 10000 --epochs 5 "
  .. "--nll-samples 200 --nll-runs 2 --patience 0"
local DEMO_CONFIGS = "--model vae; --model hvae --K 5 --tempering fixed; "
  .. "--model qsl --K 5 --init-temperature matched; --model qsl --K 5 --init-temperature unit"
--- The demo's fixed test set: the first DEMO_TEST_IMAGES test images.
local DEMO_TEST_IMAGES = 500

local function words(text)
  local out = {}
  for w in tostring(text or ""):gmatch("%S+") do out[#out + 1] = w end
  return out
end

local function read_json(path)
  local f = io.open(path, "r")
  if not f then return nil end
  local text = f:read("a")
  f:close()
  local ok, value = pcall(cjson.decode, text)
  return ok and value or nil
end

local function fmt(v, pattern)
  if type(v) ~= "number" or v ~= v then return "–" end
  return string.format(pattern or "%.2f", v)
end

--- The demo's fixed test set, written once into the run folder: its path.
local function write_demo_test_set(run, c)
  local experiment = dofile(c.experiment)
  if type(experiment) ~= "table" or type(experiment.test_set) ~= "function" then
    error(string.format("--demo: %s has no test_set function to write a fixed test set with", c.experiment), 0)
  end
  local set, source = experiment.test_set({ data = "fashion", ["test-subset"] = DEMO_TEST_IMAGES })
  local path = run.dir .. "/test-fixed.npy"
  local sha = lv.data.save_binarized(path, set)
  run:print(string.format("fixed test set: %d Fashion-MNIST test images binarised with seed %d -> %s "
    .. "(SHA-256 %s)", set.x:size(1), source.binarized_with_seed, path, sha))
  return path
end

--- Runs each configuration as a run of c.experiment in this run's folder.
local function run_configs(run, c)
  local common = c.demo and (DEMO_COMMON .. " --test-file " .. write_demo_test_set(run, c)) or c.common
  local configs = {}
  for part in tostring(c.demo and DEMO_CONFIGS or c.configs):gmatch("[^;]+") do
    if part:match("%S") then configs[#configs + 1] = part end
  end
  local rows = {}
  for i, config in ipairs(configs) do
    local args = { c.experiment }
    for _, w in ipairs(words(common)) do args[#args + 1] = w end
    for _, w in ipairs(words(config)) do args[#args + 1] = w end
    for _, w in ipairs({ "--out", run.dir .. "/runs", "--seed", tostring(run.seed),
                         "--name", "config" .. i }) do
      args[#args + 1] = w
    end
    run:print(string.format("[%d/%d] %s", i, #configs, config))
    local status, sub = runner.main(args)
    local results = type(sub) == "table" and read_json(sub.dir .. "/results.json") or nil
    rows[#rows + 1] = { config = config, status = status, results = results,
                        dir = type(sub) == "table" and sub.dir or nil }
  end
  return rows
end

-- Options that say where a run went, not what it was.
local PLACE_OPTIONS = { ["--out"] = true, ["--name"] = true, ["--resume"] = true }

--- Rows from finished run folders (runs made separately, e.g. in
-- parallel). Each is labelled by the options of its command line that
-- not every gathered run shares.
local function gather(run, list)
  local runs = {}
  for dir in tostring(list):gmatch("[^;]+") do
    dir = dir:match("^%s*(.-)/*%s*$")
    local config = read_json(dir .. "/config.json")
    if not config then error(string.format("--gather: %s/config.json is missing or not JSON", dir), 0) end
    local pairs_, i = {}, 1
    local argv = config.argv or {}
    while i <= #argv do
      local flag, value = argv[i], argv[i + 1]
      if value ~= nil and not tostring(value):match("^%-%-") then i = i + 2 else value, i = nil, i + 1 end
      if not PLACE_OPTIONS[flag] then pairs_[#pairs_ + 1] = value and (flag .. " " .. value) or flag end
    end
    runs[#runs + 1] = { dir = dir, pairs = pairs_, results = read_json(dir .. "/results.json") }
  end
  local count = {}
  for _, r in ipairs(runs) do
    for _, p in ipairs(r.pairs) do count[p] = (count[p] or 0) + 1 end
  end
  local rows = {}
  for _, r in ipairs(runs) do
    local own = {}
    for _, p in ipairs(r.pairs) do if count[p] < #runs then own[#own + 1] = p end end
    local res = r.results
    rows[#rows + 1] = { config = #own > 0 and table.concat(own, " ") or r.dir, dir = r.dir, results = res,
                        status = res and res.status == "completed" and 0 or 1 }
    run:print(string.format("%s: %s", r.dir, res and res.status or "no results.json"))
  end
  return rows
end

return {
  name = "compare",
  options = {
    { "--experiment", "the experiment file each configuration runs", "scripts/images.lua" },
    { "--configs", "configurations, separated by ';'", DEMO_CONFIGS },
    { "--common", "options given to every configuration", "" },
    { "--demo", "the main job on its defaults (a Fashion-MNIST subset, mlp)", false },
    { "--gather", "finished run folders, separated by ';': tabulate them instead of running", "" },
  },

  finish = function(run)
    local c = run.config
    local rows = c.gather ~= "" and gather(run, c.gather) or run_configs(run, c)
    for _, r in ipairs(rows) do
      r.label = r.config:gsub("^%s+", ""):gsub("%s+$", "")
      local file = r.dir and r.results and r.results.nll_per_datapoint
      local ok, nll = false, nil
      if file then ok, nll = pcall(lv.load_npy, r.dir .. "/" .. file, "f64") end
      r.per_datapoint = ok and nll:totable() or nil
    end
    local best
    for _, r in ipairs(rows) do
      local nll = r.results and r.results.test_nll
      if type(nll) == "number" and nll == nll and (not best or nll < best.results.test_nll) then best = r end
    end
    local lines = {
      "| configuration | test NLL | ± s.e. | Δ vs best (paired) | ESS | test ELBO | ms / step | grad evals / step "
        .. "| s / epoch | train peak MiB | eval peak MiB |",
      "|---|---|---|---|---|---|---|---|---|---|---|",
    }
    local summary = {}
    for _, r in ipairs(rows) do
      local res = r.results or {}
      -- training time per epoch: the run's seconds less the final evaluation
      local per_epoch = (res.seconds and res.epochs and res.epochs > 0)
        and (res.seconds - (res.evaluation_seconds or 0)) / res.epochs or nil
      local delta = "–"
      if r == best then
        delta = "best"
      elseif best and r.per_datapoint and best.per_datapoint and #r.per_datapoint == #best.per_datapoint then
        local p = reading.paired(best.per_datapoint, r.per_datapoint)
        delta = string.format("%+.2f ± %.2f%s", p.diff, p.se, p.significant and "" or " (n.s.)")
      end
      local ess = fmt(res.ess, "%.1f")
      if res.nll_samples and ess ~= "–" then ess = string.format("%s / %d", ess, math.floor(res.nll_samples)) end
      lines[#lines + 1] = string.format("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |",
        r.label, fmt(res.test_nll), fmt(res.test_nll_se), delta, ess, fmt(res.test_elbo),
        fmt(res.ms_per_step, "%.1f"), fmt(res.grad_evals_per_step, "%d"), fmt(per_epoch, "%.1f"),
        fmt(res.peak_train_bytes and res.peak_train_bytes / 2 ^ 20, "%.0f"),
        fmt(res.peak_tensor_bytes and res.peak_tensor_bytes / 2 ^ 20, "%.0f"))
      summary[#summary + 1] = { config = r.config, status = r.status, dir = r.dir, results = res }
    end
    local read = reading.read(rows)
    local text = { table.concat(lines, "\n"), "" }
    for _, sentence in ipairs(read) do text[#text + 1] = "- " .. sentence end
    local markdown = table.concat(text, "\n")
    run:print("\n" .. markdown)
    local back = { table = "table.md", runs = summary, reading = read }

    if c.demo then
      -- the toy 2-D posterior of leapfrog and qsl, beside the table
      local status, toy = runner.main({ "scripts/toy2d.lua", "--flow", "leapfrog,qsl", "--out", run.dir .. "/runs",
                                        "--seed", tostring(run.seed), "--name", "toy2d", "--quiet" })
      local res = status == 0 and read_json(toy.dir .. "/results.json") or nil
      if res and res.picture then
        local from = assert(io.open(toy.dir .. "/pictures/" .. res.picture, "rb"))
        runner.write_atomic(run.dir .. "/toy2d-posterior.png", from:read("a"))
        from:close()
        back.toy2d = res.flows
        local parts = {}
        for _, f in ipairs(res.flows) do
          parts[#parts + 1] = string.format("%s %.3f nats (%.0f%% of its samples inside the target's 90%% contour)",
            f.flow, f.kl, 100 * f.inside[2])
        end
        local toy_line = string.format("- The toy 2-D posterior (toy2d-posterior.png, exact log Z = %.3f): the "
          .. "gap log Z − ELBO after K = %d steps is %s.", res.log_z, res.K, table.concat(parts, "; "))
        markdown = markdown .. "\n" .. toy_line .. "\n\n![leapfrog and qsl on the toy 2-D posterior](toy2d-posterior.png)"
        run:print(toy_line)
        run:print("the toy 2-D posterior of leapfrog and qsl: " .. run.dir .. "/toy2d-posterior.png")
      else
        run:print("the toy 2-D posterior was not drawn (toy2d.lua failed, or gnuplot is missing)")
      end
    end

    runner.write_atomic(run.dir .. "/table.md", markdown .. "\n")
    for _, r in ipairs(rows) do
      if r.results and r.results.pictures then
        run:print(string.format("pictures of %s: %s/pictures/", r.label, r.dir))
      end
    end
    local failed = 0
    for _, r in ipairs(rows) do if r.status ~= 0 then failed = failed + 1 end end
    if failed > 0 then run:print(string.format("%d configuration(s) did not finish", failed)) end
    return back
  end,
}
