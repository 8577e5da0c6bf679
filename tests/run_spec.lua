-- run_spec.lua -- lua/lvae/run.lua, the experiment runner, on the tiny
-- experiment of tests/fixtures/tiny_experiment.lua (3 steps an epoch):
--
--   * a run writes config.json (options, commit, seed), log.csv (a row per
--     step, val_elbo on each epoch's last), checkpoints/epoch-<n>.ckpt for
--     every epoch with checkpoints/latest, results.json and pictures/;
--   * --help lists every option with its default; an unknown option, a
--     bad value or a number below the option's min fails with argparse's
--     message, before a run folder is made;
--   * --resume after --stop-after-epoch ends with the same parameters, bit
--     for bit, as an uninterrupted run (with the experiment's checkpoint
--     functions and with the runner's default ones), and so does extending
--     a finished run with --epochs;
--   * a NaN loss stops the run (status 2, "diverged") and leaves the last
--     good checkpoint as it was; an error in the experiment gives "failed";
--   * early stopping, --keep-checkpoints, --max-steps, an experiment with
--     only finish;
--   * the same through the launcher, `./lvae run FILE ...`.
--
-- Runs go to a temporary folder removed at the end.

local lv = require "lvae"
local run_mod = require "lvae.run"
local H = require "helpers"

local FILE = "tests/fixtures/tiny_experiment.lua"

local tmp
local q = H.sh_quote

setup(function()
  local p = io.popen("mktemp -d")
  tmp = p:read("l")
  p:close()
end)

teardown(function()
  if tmp and tmp:match("^/tmp/") then os.execute("rm -rf " .. q(tmp)) end
end)

---- helpers --------------------------------------------------------------------------

--- A stream that keeps what is written to it.
local function sink()
  local s = { parts = {} }
  function s:write(...)
    for _, v in ipairs({ ... }) do self.parts[#self.parts + 1] = tostring(v) end
    return self
  end
  function s:flush() return self end
  function s:text() return table.concat(self.parts) end
  return s
end

--- Runs main in this process: the status, the run (or message), stdout, stderr.
local function main(args, with_file)
  local out, err = sink(), sink()
  local full = {}
  if with_file ~= false then full[1] = FILE end
  for _, a in ipairs(args) do full[#full + 1] = a end
  local status, run = run_mod.main(full, { stdout = out, stderr = err })
  return status, run, out:text(), err:text()
end

local read, json, exists = H.read_file, H.read_json, H.exists

--- A value made comparable: tensors become nested tables of numbers.
local function plain(v)
  if lv.is_tensor(v) then return v:totable() end
  if type(v) == "table" then
    local t = {}
    for k, x in pairs(v) do t[k] = plain(x) end
    return t
  end
  return v
end

--- True when a and b hold the same keys and bit-identical numbers (==).
local function same(a, b, where)
  where = where or "value"
  if type(a) ~= type(b) then return false, where .. ": " .. type(a) .. " against " .. type(b) end
  if type(a) ~= "table" then
    if a == b then return true end
    return false, string.format("%s: %s against %s", where, tostring(a), tostring(b))
  end
  for k, x in pairs(a) do
    local ok, why = same(x, b[k], where .. "." .. tostring(k))
    if not ok then return false, why end
  end
  for k in pairs(b) do
    if a[k] == nil then return false, where .. "." .. tostring(k) .. " missing" end
  end
  return true
end

local function assert_same(a, b)
  local ok, why = same(plain(a), plain(b))
  assert(ok, why)
end

local function checkpoint(dir, epoch)
  return lv.load(string.format("%s/checkpoints/epoch-%d.ckpt", dir, epoch))
end

local function params_of(run)
  local t = {}
  for i, p in ipairs(run.state.model:parameters()) do t[i] = p:totable() end
  return t
end

--- The fixture without its checkpoint functions: the runner's default ones.
local function default_checkpoint_experiment()
  local exp = dofile(FILE)
  exp.checkpoint, exp.restore, exp.name = nil, nil, "tiny-default"
  return exp
end

---- specs --------------------------------------------------------------------------------

describe("run", function()
  it("writes config.json, log.csv, a checkpoint per epoch, results.json and pictures/", function()
    local status, run = main({ "--out", tmp, "--epochs", "3", "--seed", "7", "--quiet" })
    assert.are.equal(0, status)
    local dir = run.dir
    assert.are.equal(tmp .. "/", dir:sub(1, #tmp + 1))
    assert.truthy(dir:sub(#tmp + 2):match("^tiny%-%d+%-%d+$"), dir)

    local config = json(dir .. "/config.json")
    assert.are.equal(7, config.seed)
    assert.are.equal("tiny", config.name)
    assert.are.equal(FILE, config.file)
    assert.is_string(config.git.commit)
    local head = io.popen("git rev-parse HEAD 2>/dev/null"):read("l")
    if head then
      assert.are.equal(head, config.git.commit)
      assert.is_boolean(config.git.dirty)
    else
      assert.are.equal("unknown", config.git.commit)
    end
    for k, v in pairs({ epochs = 3, lr = 0.05, batch_size = 16, hidden = 8, val = "real", seed = 7,
                        patience = 0, quiet = true, keep_checkpoints = 3 }) do
      assert.are.equal(v, config.options[k], k)
    end
    assert.are.equal(16, run.config["batch-size"])        -- the flag's spelling reads too

    local rows, columns = run_mod.read_log(dir .. "/log.csv")
    assert.are.same({ "step", "epoch", "loss", "elbo", "val_elbo", "seconds", "lr", "grad_norm" }, columns)
    assert.are.equal(9, #rows)
    for i, r in ipairs(rows) do
      assert.are.equal(i, r.step)
      assert.are.equal((i - 1) // 3 + 1, r.epoch)
      assert.are.equal(-r.loss, r.elbo)
      assert.are.equal(0.05, r.lr)
      assert.is_true(r.seconds >= 0)
      assert.are.equal(i % 3 == 0, r.val_elbo ~= nil)
    end

    for epoch = 0, 3 do
      local ck = checkpoint(dir, epoch)
      assert.are.equal("lvae.run", ck.format)
      assert.are.equal(epoch, ck.epoch)
      assert.are.equal(epoch * 3, ck.step)
      assert.is_table(ck.experiment.model)
      assert.is_table(ck.rng)
    end
    assert.are.equal("epoch-3.ckpt\n", read(dir .. "/checkpoints/latest"))
    -- The last checkpoint holds the final parameters.
    local final = checkpoint(dir, 3).experiment.model
    local named = {}
    for _, np in ipairs(run.state.model:named_parameters()) do named[np.name] = np.tensor end
    assert_same(final, named)

    local results = json(dir .. "/results.json")
    assert.are.equal("completed", results.status)
    assert.are.equal(9, results.steps)
    assert.are.equal(3, results.epochs)
    assert.is_number(results.seconds)
    assert.is_number(results.test_mse)
    assert.are.equal(41, results.n_parameters)
    assert.is_true(exists(dir .. "/pictures"))
    local ok, plot = pcall(require, "lvae.plot")
    if ok and type(plot) == "table" and plot.training_curves then
      assert.is_true(exists(dir .. "/pictures/training_curves.png"), "no pictures/training_curves.png")
      -- the ELBO and the per-epoch validation ELBO as points; not the
      -- loss (its mirror) nor grad_norm
      local gp = read(dir .. "/pictures/training_curves.gp")
      assert.truthy(gp:find("with lines lw 1.5 title 'elbo'", 1, true), gp)
      assert.truthy(gp:find("with linespoints lw 2 pt 7 ps 0.8 title 'val_elbo'", 1, true), gp)
      assert.is_nil(gp:find("title 'loss'", 1, true), gp)
      assert.is_nil(gp:find("title 'grad_norm'", 1, true), gp)
    end
    assert.truthy(read(dir .. "/messages.log"):find("test mse", 1, true))
  end)

  it("lists every option with its default under --help", function()
    local status, _, out = main({ "--help" })
    assert.are.equal(0, status)
    for _, s in ipairs({ "A 3-8-1 network", "Options of tiny:", "Runner options:",
                         "--lr <lr>", "Adam learning rate (default: 0.05)", "(default: 16)",
                         "--val {real,worsening}", "(default: real)", "training epochs (default: 3)",
                         "--seed <seed>", "(default: 1)", "--out <out>", "(default: runs)",
                         "hidden units; at least 1 (default: 8)",
                         "--resume <RUN_DIR>", "--patience", "--max-steps", "--stop-after-epoch",
                         "--quiet", "--help" }) do
      assert.truthy(out:find(s, 1, true), "help lacks " .. s .. "\n" .. out)
    end
  end)

  it("refuses an unknown option or a bad value with argparse's message", function()
    local status, msg, _, err = main({ "--out", tmp, "--bogus", "1" })
    assert.are.equal(1, status)
    assert.are.equal("unknown option '--bogus'", msg)
    assert.truthy(err:find("Usage: lvae run " .. FILE, 1, true))
    assert.truthy(err:find("Error: unknown option '--bogus'", 1, true))
    status, msg = main({ "--out", tmp, "--epochs", "2.5" })
    assert.are.equal(1, status)
    assert.are.equal("option '--epochs' takes an integer (got '2.5')", msg)
    status, msg = main({ "--out", tmp, "--val", "sideways" })
    assert.are.equal(1, status)
    assert.truthy(msg:find("must be one of 'real', 'worsening'", 1, true))
    status, msg = main({}, false)
    assert.are.equal(1, status)
    assert.are.equal("no experiment file given", msg)
  end)

  it("refuses a number below an option's min before any run folder is made", function()
    local out = tmp .. "/below-min"
    local status, msg = main({ "--out", out, "--hidden", "0" })
    assert.are.equal(1, status)
    assert.are.equal("option '--hidden' must be at least 1 (got '0')", msg)
    -- the fixture declares --epochs again; the runner's min (0) still holds
    status, msg = main({ "--out", out, "--epochs=-2" })
    assert.are.equal(1, status)
    assert.are.equal("option '--epochs' must be at least 0 (got '-2')", msg)
    status, msg = main({ "--out", out, "--threads=-1" })
    assert.are.equal(1, status)
    assert.are.equal("option '--threads' must be at least 0 (got '-1')", msg)
    assert.is_false(exists(out))
    -- a declared min must be a number, on an option that takes a value
    local exp = dofile(FILE)
    exp.options[#exp.options + 1] = { "--flag", "a flag", false, min = 1 }
    status, msg = run_mod.main({ exp, "--out", out }, { stdout = sink(), stderr = sink() })
    assert.are.equal(1, status)
    assert.truthy(tostring(msg):find("min must be a number, on an option that takes one", 1, true), msg)
  end)

  for _, variant in ipairs({ "the experiment's checkpoint functions", "the runner's default checkpoint" }) do
    it("resumes after an interruption to the same parameters, bit for bit (" .. variant .. ")", function()
      local first = variant:find("default") and default_checkpoint_experiment() or FILE
      local function go(args)
        local full = { first }
        for _, a in ipairs(args) do full[#full + 1] = a end
        local out, err = sink(), sink()
        local status, run = run_mod.main(full, { stdout = out, stderr = err })
        assert(status == 0, err:text())
        return run
      end
      local common = { "--out", tmp, "--epochs", "3", "--seed", "11", "--quiet" }
      local whole = go(common)
      local cut_args = { table.unpack(common) }
      for _, a in ipairs({ "--stop-after-epoch", "1" }) do cut_args[#cut_args + 1] = a end
      local cut = go(cut_args)
      assert.are.equal("interrupted", json(cut.dir .. "/results.json").status)
      assert.is_false(exists(cut.dir .. "/checkpoints/epoch-2.ckpt"))
      assert.are.equal("epoch-1.ckpt\n", read(cut.dir .. "/checkpoints/latest"))
      -- Rows a killed process wrote after its last checkpoint are dropped on resume.
      local f = io.open(cut.dir .. "/log.csv", "ab")
      f:write("4,2,123,-123,,9,0.05,0\n")
      f:close()

      local resumed = go({ "--resume", cut.dir, "--quiet" })
      assert.is_true(resumed.resumed)
      assert.are.equal(cut.dir, resumed.dir)
      assert.are.equal("completed", json(cut.dir .. "/results.json").status)
      assert_same(params_of(whole), params_of(resumed))
      for epoch = 1, 3 do
        assert_same(checkpoint(whole.dir, epoch).experiment, checkpoint(cut.dir, epoch).experiment)
        assert_same(checkpoint(whole.dir, epoch).rng, checkpoint(cut.dir, epoch).rng)
      end
      local a, b = run_mod.read_log(whole.dir .. "/log.csv"), run_mod.read_log(cut.dir .. "/log.csv")
      assert.are.equal(#a, #b)
      for i = 1, #a do
        a[i].seconds, b[i].seconds = nil, nil
        assert.are.same(a[i], b[i])
      end
      assert.are.same(json(whole.dir .. "/results.json").test_mse, json(cut.dir .. "/results.json").test_mse)
      local config = json(cut.dir .. "/config.json")
      assert.are.equal(1, #config.resumes)
      assert.are.equal("checkpoints/epoch-1.ckpt", config.resumes[1].from)
    end)
  end

  it("extends a finished run with --resume --epochs, as if it had run longer", function()
    local _, three = main({ "--out", tmp, "--epochs", "3", "--seed", "5", "--quiet" })
    local _, two = main({ "--out", tmp, "--epochs", "2", "--seed", "5", "--quiet" })
    local status, more = main({ "--resume", two.dir, "--epochs", "3", "--quiet" }, false)
    assert.are.equal(0, status)
    assert.are.equal(3, more.config.epochs)
    assert_same(checkpoint(three.dir, 3).experiment, checkpoint(two.dir, 3).experiment)
  end)

  it("refuses to change an experiment option on --resume", function()
    local _, cut = main({ "--out", tmp, "--epochs", "2", "--stop-after-epoch", "1", "--quiet" })
    local status, msg = main({ "--resume", cut.dir, "--lr", "0.1" })
    assert.are.equal(1, status)
    assert.are.equal("--lr cannot change on --resume (the run used 0.05, not 0.1); start a new run instead", msg)
    status = main({ "--resume", cut.dir, "--lr", "0.05", "--quiet" })     -- the same value is fine
    assert.are.equal(0, status)
  end)

  it("stops at a NaN loss with the step number, keeping the last good checkpoint", function()
    local _, clean = main({ "--out", tmp, "--epochs", "3", "--seed", "3", "--quiet" })
    local status, run, _, err = main({ "--out", tmp, "--epochs", "3", "--seed", "3", "--quiet",
                                       "--nan-at-step", "5" })
    assert.are.equal(2, status)
    local msg = "step 5: the loss is nan; the last good checkpoint is checkpoints/epoch-1.ckpt"
    assert.truthy(err:find(msg, 1, true), err)
    local results = json(run.dir .. "/results.json")
    assert.are.equal("diverged", results.status)
    assert.are.equal(5, results.step)
    assert.are.equal("nan", results.value)
    assert.are.equal(msg, results.message)
    assert.are.equal("checkpoints/epoch-1.ckpt", results.last_good_checkpoint)
    -- The parameters in memory are spoilt; the checkpoint is not.
    local spoilt = run.state.model:parameters()[1]:totable()
    assert.is_true(spoilt[1][1] ~= spoilt[1][1])
    assert.is_false(exists(run.dir .. "/checkpoints/epoch-2.ckpt"))
    assert.are.equal("epoch-1.ckpt\n", read(run.dir .. "/checkpoints/latest"))
    assert_same(checkpoint(clean.dir, 1).experiment, checkpoint(run.dir, 1).experiment)
    local rows = run_mod.read_log(run.dir .. "/log.csv")
    assert.are.equal(5, #rows)
    assert.is_true(rows[5].loss ~= rows[5].loss)
  end)

  it("stops early when the validation ELBO has not improved for --patience epochs", function()
    local status, run = main({ "--out", tmp, "--epochs", "10", "--val", "worsening", "--patience", "2",
                               "--quiet" })
    assert.are.equal(0, status)
    local results = json(run.dir .. "/results.json")
    assert.are.equal("early_stopped", results.status)
    assert.are.equal(3, results.epochs)
    assert.are.equal(1, results.best_epoch)
    assert.are.equal(-1, results.best_val_elbo)
    assert.is_false(exists(run.dir .. "/checkpoints/epoch-4.ckpt"))
    -- finish saw the best epoch's parameters (--finish-with best)
    assert_same(checkpoint(run.dir, 1).experiment.model, run.state.model:state_dict())
  end)

  it("keeps the last --keep-checkpoints epochs and the best", function()
    local _, run = main({ "--out", tmp, "--epochs", "4", "--val", "worsening", "--keep-checkpoints", "1",
                          "--quiet" })
    for epoch = 0, 4 do
      assert.are.equal(epoch == 1 or epoch == 4, exists(run.dir .. "/checkpoints/epoch-" .. epoch .. ".ckpt"),
        "epoch " .. epoch)
    end
  end)

  it("stops after --max-steps steps and still runs finish", function()
    local status, run = main({ "--out", tmp, "--epochs", "3", "--max-steps", "4", "--quiet" })
    assert.are.equal(0, status)
    local results = json(run.dir .. "/results.json")
    assert.are.equal("max_steps", results.status)
    assert.are.equal(4, results.steps)
    assert.is_number(results.test_mse)
    assert.are.equal(4, #run_mod.read_log(run.dir .. "/log.csv"))
  end)

  it("reports an error in the experiment as a failed run", function()
    local exp = dofile(FILE)
    local step = exp.step
    exp.step = function(run, state, batch)
      if run.step == 2 then error("the batch is bad") end
      return step(run, state, batch)
    end
    local status, run, _, err = main({ exp, "--out", tmp, "--quiet" }, false)
    assert.are.equal(1, status)
    assert.truthy(err:find("the batch is bad", 1, true))
    local results = json(run.dir .. "/results.json")
    assert.are.equal("failed", results.status)
    assert.truthy(results.error:find("the batch is bad", 1, true))
    assert.are.equal(2, results.step)
  end)

  it("runs an experiment that gives only finish, with flags and any JSON value", function()
    local exp = {
      name = "only",
      options = { { "--quick", "a short run", false }, { "--dims", "dimensions", "1,2" } },
      finish = function(run)
        return { quick = run.config.quick, dims = run.config.dims, nan = 0 / 0, big = (1 << 53) + 1,
                 third = 1 / 3, rows = { { d = 1 }, { d = 2 } } }
      end,
    }
    local status, run = main({ exp, "--out", tmp, "--quick", "--quiet" }, false)
    assert.are.equal(0, status)
    local text = read(run.dir .. "/results.json")
    local results = require("cjson").decode(text)
    assert.are.equal("completed", results.status)
    assert.is_true(results.quick)
    assert.are.equal("1,2", results.dims)
    assert.are.equal("nan", results.nan)
    assert.truthy(text:find('"big": 9007199254740993', 1, true))
    assert.are.equal(1 / 3, results.third)
    assert.are.equal(2, results.rows[2].d)
    assert.is_false(exists(run.dir .. "/checkpoints"))
    assert.is_false(exists(run.dir .. "/log.csv"))
  end)

  it("shows a task's progress: a line every 10% elsewhere, a bar on a terminal", function()
    local exp = {
      name = "task",
      finish = function(run)
        local progress = run:task("test NLL")
        for done = 1, 40 do progress(done * 25, 1000) end
        return {}
      end,
    }
    local status, _, out = main({ exp, "--out", tmp }, false)
    assert.are.equal(0, status)
    local tenths = {}
    for pct in out:gmatch("test NLL: (%d+)%% ETA %d+:%d%d\n") do tenths[#tenths + 1] = tonumber(pct) end
    assert.are.same({ 10, 20, 30, 40, 50, 60, 70, 80, 90 }, tenths)
    assert.truthy(out:find("test NLL: done in 0:00\n", 1, true), out)
    assert.is_nil(out:find("\r", 1, true))

    local term = sink()
    run_mod.main({ exp, "--out", tmp }, { stdout = term, stderr = sink(), tty = true })
    local text = term:text()
    assert.truthy(text:find("\r\27%[Ktest NLL %[#*%.*%] %d+%% ETA"), text)
    assert.truthy(text:find("test NLL: done in", 1, true), text)
    _, _, out = main({ exp, "--out", tmp, "--quiet" }, false)
    assert.is_nil(out:find("test NLL", 1, true))
  end)

  it("counts each run's peak tensor memory from its own start", function()
    local function exp(big)
      return { name = "peak", finish = function()
        if big then
          local t = lv.zeros({ 1 << 22 }, "f32")        -- 16 MiB, garbage once finish returns
          assert(t:size(1) > 0)
        end
        return { peak = lv.memory_stats().peak_bytes }
      end }
    end
    local _, first = main({ exp(true), "--out", tmp, "--quiet" }, false)
    local _, second = main({ exp(false), "--out", tmp, "--quiet" }, false)
    local p1, p2 = json(first.dir .. "/results.json").peak, json(second.dir .. "/results.json").peak
    assert(p1 >= 16 * 2 ^ 20, "the first run's peak holds its tensor: " .. p1)
    assert(p2 < p1 - 8 * 2 ^ 20, string.format("the second run's peak %d still holds the first's (%d)", p2, p1))
  end)

  it("takes a list of batches and plain-number losses", function()
    local exp = {
      name = "list",
      batches = function() return { 1, 2, 3 } end,
      step = function(run, state, b) return b * 1.5 end,
      checkpoint = function() return { nothing = true } end,
      restore = function() end,
    }
    local status, run = main({ exp, "--out", tmp, "--epochs", "2", "--quiet" }, false)
    assert.are.equal(0, status)
    local rows = run_mod.read_log(run.dir .. "/log.csv")
    assert.are.equal(6, #rows)
    assert.are.equal(4.5, rows[6].loss)
    assert.is_true(checkpoint(run.dir, 2).experiment.nothing)
    -- Without checkpoint functions the state must hold something to save.
    exp.checkpoint, exp.restore = nil, nil
    local _, failed, _, err = main({ exp, "--out", tmp, "--quiet" }, false)
    assert.truthy(err:find("has no checkpoint function", 1, true), err)
    assert.are.equal("failed", json(failed.dir .. "/results.json").status)
  end)

  describe("through the launcher", function()
    local function launch(args)
      local p = io.popen("./lvae run " .. FILE .. " " .. args .. " 2>&1")
      local out = p:read("a")
      local _, _, code = p:close()
      return code, out
    end

    it("trains, prints plain lines when not on a terminal, and exits 0", function()
      local code, out = launch("--out " .. q(tmp) .. " --epochs 2 --name launched")
      assert.are.equal(0, code, out)
      assert.truthy(out:find("epoch 1/2: 3 batches", 1, true), out)
      assert.truthy(out:find("epoch 2/2: 3 batches", 1, true), out)
      assert.is_nil(out:find("\r", 1, true))
      local dir = out:match("run folder: (%S+)")
      assert.are.equal("completed", json(dir .. "/results.json").status)
      assert.is_true(exists(dir .. "/checkpoints/epoch-2.ckpt"))
      assert.are.equal(6, #run_mod.read_log(dir .. "/log.csv"))
    end)

    it("exits 1 on an unknown option and 2 on a NaN loss", function()
      local code, out = launch("--out " .. q(tmp) .. " --bogus 1")
      assert.are.equal(1, code)
      assert.truthy(out:find("Error: unknown option '--bogus'", 1, true), out)
      code, out = launch("--out " .. q(tmp) .. " --nan-at-step 2 --quiet")
      assert.are.equal(2, code)
      assert.truthy(out:find("step 2: the loss is nan; the last good checkpoint is checkpoints/epoch-0.ckpt",
        1, true), out)
    end)

    it("lists the options under --help", function()
      local code, out = launch("--help")
      assert.are.equal(0, code)
      assert.truthy(out:find("Adam learning rate (default: 0.05)", 1, true), out)
    end)
  end)

  it("refuses a second process in a run folder that another holds, naming the holder", function()
    local status, cut = main({ "--out", tmp, "--epochs", "3", "--seed", "5", "--quiet", "--stop-after-epoch", "1" })
    assert.are.equal(0, status)
    local before = read(cut.dir .. "/log.csv")
    -- another process takes the folder's lock and keeps it for 3 s
    local holder = tmp .. "/holder.lua"
    local f = assert(io.open(holder, "w"))
    f:write('local l = assert(require("lvae.core")._lock(arg[1])); io.open(arg[2], "w"):close(); ',
            'os.execute("sleep 3")\n')
    f:close()
    os.execute(string.format("./lvae %s %s %s >/dev/null 2>&1 &", q(holder), q(cut.dir .. "/lock"),
      q(tmp .. "/holding")))
    for _ = 1, 100 do
      if exists(tmp .. "/holding") then break end
      os.execute("sleep 0.05")
    end
    local refused, msg, _, err = main({ "--resume", cut.dir, "--quiet" }, false)
    assert.are.equal(1, refused)
    assert.truthy(tostring(msg):find("is in use by process %d+"), tostring(msg))
    assert.truthy(err:find("in use by process", 1, true), err)
    assert.are.equal(before, read(cut.dir .. "/log.csv"))          -- nothing written
    -- once the holder is gone, the resume runs
    os.execute("sleep 3.2")
    local again = main({ "--resume", cut.dir, "--quiet" }, false)
    assert.are.equal(0, again)
  end)

  it("keeps the run's story in messages.log: epoch lines, the resume and how a run ended", function()
    local status, cut = main({ "--out", tmp, "--epochs", "3", "--seed", "5", "--quiet", "--stop-after-epoch", "1" })
    assert.are.equal(0, status)
    local log = read(cut.dir .. "/messages.log")
    assert.truthy(log:find("epoch 1/3: 3 batches in", 1, true), log)
    assert.truthy(log:find("stopped after epoch 1", 1, true), log)
    local diverged, run = main({ "--out", tmp, "--epochs", "2", "--nan-at-step", "4", "--quiet" })
    assert.are.equal(2, diverged)
    log = read(run.dir .. "/messages.log")
    assert.truthy(log:find("lvae run: step 4: the loss is nan; the last good checkpoint is checkpoints/epoch-1.ckpt",
      1, true), log)
  end)

  it("on --resume removes what a save stopped mid-write left, saying so", function()
    local status, cut = main({ "--out", tmp, "--epochs", "2", "--seed", "5", "--quiet", "--stop-after-epoch", "1" })
    assert.are.equal(0, status)
    local partial = cut.dir .. "/checkpoints/epoch-2.ckpt.tmp.4242.1"
    local f = assert(io.open(partial, "wb"))
    f:write("LVAECKPT half a file")
    f:close()
    local resumed = main({ "--resume", cut.dir, "--quiet" }, false)
    assert.are.equal(0, resumed)
    assert.is_false(exists(partial))
    assert.truthy(read(cut.dir .. "/messages.log"):find(
      "removed checkpoints/epoch-2.ckpt.tmp.4242.1, left by a save stopped mid-write", 1, true))
  end)

  it("resumes from the newest intact checkpoint when the latest is damaged, saying so", function()
    local status, cut = main({ "--out", tmp, "--epochs", "3", "--seed", "5", "--quiet", "--stop-after-epoch", "2" })
    assert.are.equal(0, status)
    local whole_status, whole = main({ "--out", tmp, "--epochs", "3", "--seed", "5", "--quiet" })
    assert.are.equal(0, whole_status)
    -- a flipped byte in the latest checkpoint's payload
    local path = cut.dir .. "/checkpoints/epoch-2.ckpt"
    local bytes = read(path)
    local f = assert(io.open(path, "wb"))
    f:write(bytes:sub(1, 40), string.char((bytes:byte(41) + 1) % 256), bytes:sub(42))
    f:close()
    local resumed, run, _, err = main({ "--resume", cut.dir, "--quiet" }, false)
    assert.are.equal(0, resumed, err)
    assert.truthy(err:find("checkpoints/epoch-2.ckpt is damaged (", 1, true), err)
    assert.truthy(err:find("resuming from checkpoints/epoch-1.ckpt, the newest intact checkpoint before it", 1, true), err)
    assert.are.equal("checkpoints/epoch-1.ckpt", json(cut.dir .. "/config.json").resumes[1].from)
    -- epoch 2 trained again from epoch 1: the same run as one never stopped
    assert.are.same(json(whole.dir .. "/results.json").test_mse, json(run.dir .. "/results.json").test_mse)
    -- with no intact checkpoint before it, the resume is refused
    for _, e in ipairs({ 0, 1, 2, 3 }) do
      local p = cut.dir .. "/checkpoints/epoch-" .. e .. ".ckpt"
      if exists(p) then
        local g = assert(io.open(p, "wb"))
        g:write("damaged")
        g:close()
      end
    end
    local refused, msg = main({ "--resume", cut.dir, "--quiet" }, false)
    assert.are.equal(1, refused)
    assert.truthy(tostring(msg):find("no intact checkpoint before it", 1, true), tostring(msg))
  end)

  it("refuses a checkpoints/latest that leads outside the run folder", function()
    local status, cut = main({ "--out", tmp, "--epochs", "2", "--seed", "5", "--quiet", "--stop-after-epoch", "1" })
    assert.are.equal(0, status)
    for _, name in ipairs({ "../../outside.ckpt", "/etc/passwd", "epoch-1.ckpt/../../x" }) do
      local f = assert(io.open(cut.dir .. "/checkpoints/latest", "wb"))
      f:write(name, "\n")
      f:close()
      local refused, msg = main({ "--resume", cut.dir, "--quiet" }, false)
      assert.are.equal(1, refused)
      assert.truthy(tostring(msg):find("not a checkpoint of this run folder", 1, true), tostring(msg))
    end
  end)
end)
