--- Runs a list of configurations of an experiment and gathers their
-- results.json into one markdown table (also the `make demo` job).
--
--   ./lvae run scripts/compare.lua --configs="--model vae; --model hvae --K 5; --model qsl --K 5" \
--                                  --common="--epochs 20 --subset 10000"
--   (values that begin with "--" follow an "=", as the argument parser wants)
--   ./lvae run scripts/compare.lua --demo
--
-- Each configuration is one run of --experiment (scripts/images.lua by
-- default) with --common options in front, in a folder under this run's
-- own. --demo is the main job on its defaults: VAE, HVAE and the
-- quasi-symplectic flow trained briefly on a Fashion-MNIST subset (mlp),
-- a few minutes on 2 cores. --gather="DIR; DIR" tabulates finished run
-- folders instead (runs made one by one or in parallel), each row named by
-- the options its command line does not share with the others.

local runner = require "lvae.run"
local cjson = require "cjson"

local DEMO_COMMON = "--data fashion --arch mlp --d 32 --subset 3000 --epochs 3 "
  .. "--test-subset 200 --nll-samples 100 --nll-runs 2 --patience 0"
local DEMO_CONFIGS = "--model vae; --model hvae --K 5 --tempering fixed; --model qsl --K 5"

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

--- Runs each configuration as a run of c.experiment in this run's folder.
local function run_configs(run, c)
  local common = c.demo and DEMO_COMMON or c.common
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
    local lines = {
      "| configuration | test NLL | ± s.e. | ESS | test ELBO | s / epoch | grad evals / step | train peak MiB | eval peak MiB |",
      "|---|---|---|---|---|---|---|---|---|",
    }
    local summary = {}
    for _, r in ipairs(rows) do
      local res = r.results or {}
      -- training time per epoch: the run's seconds less the final evaluation
      local per_epoch = (res.seconds and res.epochs and res.epochs > 0)
        and (res.seconds - (res.evaluation_seconds or 0)) / res.epochs or nil
      lines[#lines + 1] = string.format("| %s | %s | %s | %s | %s | %s | %s | %s | %s |",
        r.config:gsub("^%s+", ""):gsub("%s+$", ""),
        fmt(res.test_nll), fmt(res.test_nll_se), fmt(res.ess, "%.1f"), fmt(res.test_elbo),
        fmt(per_epoch, "%.1f"), fmt(res.grad_evals_per_step, "%d"),
        fmt(res.peak_train_bytes and res.peak_train_bytes / 2 ^ 20, "%.0f"),
        fmt(res.peak_tensor_bytes and res.peak_tensor_bytes / 2 ^ 20, "%.0f"))
      summary[#summary + 1] = { config = r.config, status = r.status, dir = r.dir, results = res }
    end
    local markdown = table.concat(lines, "\n")
    run:print("\n" .. markdown)
    local f = assert(io.open(run.dir .. "/table.md", "w"))
    f:write(markdown, "\n")
    f:close()
    for _, r in ipairs(rows) do
      if r.results and r.results.pictures then
        run:print(string.format("pictures of %s: %s/pictures/", r.config, r.dir))
      end
    end
    local failed = 0
    for _, r in ipairs(rows) do if r.status ~= 0 then failed = failed + 1 end end
    if failed > 0 then run:print(string.format("%d configuration(s) did not finish", failed)) end
    return { table = "table.md", runs = summary }
  end,
}
