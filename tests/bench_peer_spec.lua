-- bench/peer.lua's pieces that need no PyTorch: the rows and the command
-- line, the agreement check's arithmetic, the timing schedule, the GEMM
-- count of the roofline (against torch.profiler's counts, recorded here),
-- the report's formatting, the worker protocol (with a stand-in worker, so
-- that a dying worker's error is seen too), and lvae's side of the noise
-- hand-over.
package.path = "./?.lua;" .. package.path
local lv = require "lvae"
local cjson = require "cjson"
local rows = require "bench.peers.rows"
local options = require "bench.peers.options"
local agreement = require "bench.peers.agreement"
local timing = require "bench.peers.timing"
local flops = require "bench.peers.flops"
local report = require "bench.peers.report"
local workers = require "bench.peers.workers"

local function ids(list)
  local out = {}
  for i, r in ipairs(list) do out[i] = r.id end
  return table.concat(out, ",")
end

describe("bench.peers.rows", function()
  it("has every SPEC §6.2 model on both architectures", function()
    local all = rows.all()
    assert.are.equal(18, #all)
    local euler_mlp, euler_conv = rows.find("mlp:euler"), rows.find("conv:euler")
    assert.are.same({ 8, 5, 1 }, { euler_mlp.d, euler_mlp.K, euler_conv.K })
    local iwae = rows.find("mlp:iwae")
    assert.are.same({ 5, 0, 64, 100 }, { iwae.samples, iwae.K, iwae.d, iwae.batch })
    assert.are.equal("fixed", rows.find("conv:hvae-fixed").tempering)
    assert.are.equal("HVAE leapfrog, tempering free, K = 5", rows.find("mlp:hvae-free").title)
    assert.are.equal("Euler, K = 1, d = 8", euler_conv.title)
  end)

  it("selects ARCH:MODEL, ARCH or MODEL items, in report order, each once", function()
    assert.are.equal("mlp:vae,conv:qsl", ids(rows.select("conv:qsl, mlp:vae")))
    assert.are.equal("mlp:qsl,conv:qsl", ids(rows.select("qsl,mlp:qsl")))
    assert.are.equal(9, #rows.select("conv"))
    assert.are.equal(18, #rows.select(nil))
    assert.are.equal(18, #rows.select(""))
  end)

  it("names the item that matches nothing", function()
    local r, err = rows.select("mlp:vae,mlp:hvae")
    assert.is_nil(r)
    assert.truthy(err:find("'mlp:hvae' names no row", 1, true), err)
    local _, err2 = rows.find("gpu:vae")
    assert.truthy(err2:find("unknown row 'gpu:vae'", 1, true), err2)
  end)

  it("gives images.lua's make_flow its options", function()
    assert.are.same({ model = "hvae", d = 64, K = 5, tempering = "free", friction = 0.5, init_temperature = "unit" },
      rows.images_config(rows.find("mlp:hvae-free")))
  end)
end)

describe("bench.peers.options", function()
  it("parses every option", function()
    local o = assert(options.parse({ "--quick", "--rows", "mlp:vae", "--lvae-threads", "2,1", "--budget", "7.5",
                                     "--keep", "/tmp/x", "--render" }))
    assert.are.same({ true, "mlp:vae", { 2, 1 }, 7.5, "/tmp/x", false, true },
      { o.quick, o.rows, o.lvae_threads, o.budget, o.keep, o.full, o.render })
  end)

  it("is a full run only without --quick and --rows, with the budget by mode", function()
    local o = assert(options.parse({}))
    assert.are.same({ true, 20, false }, { o.full, o.budget, o.quick })
    o = assert(options.parse({ "--quick" }))
    assert.are.same({ false, 4 }, { o.full, o.budget })
    assert.is_false(assert(options.parse({ "--rows", "conv" })).full)
  end)

  it("refuses what it does not know, a missing value and bad numbers", function()
    local cases = {
      { { "--fast" }, "unknown option '--fast'" },
      { { "--rows" }, "--rows needs a value" },
      { { "--rows", "--quick" }, "--rows needs a value" },
      { { "--lvae-threads", "2,x" }, "--lvae-threads takes positive integers" },
      { { "--lvae-threads", "0" }, "--lvae-threads takes positive integers" },
      { { "--budget", "-1" }, "--budget takes a number of seconds above 0" },
    }
    for _, c in ipairs(cases) do
      local o, err = options.parse(c[1])
      assert.is_nil(o)
      assert.truthy(err:find(c[2], 1, true), err)
    end
  end)
end)

describe("bench/peer.lua", function()
  local function run(cmd)
    local p = io.popen(cmd .. " 2>&1; echo status $?")
    local out = p:read("a")
    p:close()
    return out
  end

  it("names scripts/setup.sh bench when PyTorch cannot be imported", function()
    local out = run("BENCH_PEER_PYTHON=/nonexistent/python3 ./lvae bench/peer.lua --rows mlp:vae")
    assert.truthy(out:find("PyTorch is not usable from /nonexistent/python3", 1, true), out)
    assert.truthy(out:find("`scripts/setup.sh bench` installs", 1, true), out)
    assert.truthy(out:find("status 1", 1, true), out)
  end)

  it("refuses a bad command line before doing anything", function()
    local out = run("./lvae bench/peer.lua --rows gpu:vae")
    assert.truthy(out:find("'gpu:vae' names no row", 1, true), out)
    assert.truthy(out:find("status 1", 1, true), out)
    out = run("./lvae bench/peer.lua --fast")
    assert.truthy(out:find("unknown option '--fast'\nusage: ./lvae bench/peer.lua", 1, true), out)
  end)
end)

describe("bench.peers.agreement", function()
  local function s(max_diff, max_ref, norm_diff, norm_ref)
    return { max_diff = max_diff, max_ref = max_ref, norm_diff = norm_diff, norm_ref = norm_ref, n = 4 }
  end

  it("measures max-relative errors for objectives and gradients, norm-relative for updates", function()
    assert.are.equal(0.5, agreement.error("gradient", s(1, 2, 30, 40)))
    assert.are.equal(0.5, agreement.error("objective", s(1, 2, 30, 40)))
    assert.are.equal(0.75, agreement.error("update", s(1, 2, 30, 40)))
    assert.are.equal(0, agreement.error("gradient", s(0, 0, 0, 0)))          -- both exactly zero
    assert.are.equal(math.huge, agreement.error("gradient", s(1e-30, 0, 1e-30, 0)))
    local nan = agreement.error("gradient", s(0 / 0, 1, 0 / 0, 1))
    assert.is_true(nan ~= nan)
  end)

  it("computes the statistics from two tensors, in f64", function()
    local a = lv.tensor({ 1, 2, 3, 4 }, "f32")
    local b = lv.tensor({ 1, 2, 3, 2 }, "f64")
    local st = agreement.stats(a, b)
    assert.are.same({ 2, 3, 2, 4 }, { st.max_diff, st.max_ref, st.norm_diff, st.n })
    assert.is_true(math.abs(st.norm_ref - math.sqrt(1 + 4 + 9 + 4)) < 1e-12)
    assert.has_error(function() agreement.stats(lv.zeros({ 2, 2 }), lv.zeros({ 4 })) end,
      "shapes differ: lvae [2,2], PyTorch [4]")
  end)

  it("passes within the tolerances and names every quantity outside them", function()
    local ok = agreement.verdict({
      { kind = "objective", what = "at the start", stats = s(1e-6, 500, 0, 1) },
      { kind = "gradient", what = "decoder.1.weight", stats = s(3e-5, 1, 0, 1) },
      { kind = "update", what = "w (step 1)", stats = s(1, 1, 5e-5, 1) },
      { kind = "adamax", what = "lvae's w (step 2)", stats = s(1, 1, 5e-4, 1) },
      { kind = "grad_evals", lvae = 6, torch = 6 },
    }, "f32")
    assert.is_true(ok.ok)
    assert.are.equal("decoder.1.weight", ok.worst.gradient.what)
    local bad = agreement.verdict({
      { kind = "gradient", what = "a", stats = s(1e-5, 1, 0, 1) },
      { kind = "gradient", what = "b", stats = s(2e-3, 1, 0, 1) },
      { kind = "update", what = "c", stats = s(0, 1, 0 / 0, 1) },
      { kind = "grad_evals", lvae = 6, torch = 11 },
    }, "f32")
    assert.is_false(bad.ok)
    assert.are.equal(3, #bad.failures)
    assert.are.equal("b", bad.worst.gradient.what)
    assert.truthy(bad.failures[1]:find("gradient b: relative error 0.002 > 1e-04", 1, true), bad.failures[1])
    assert.truthy(bad.failures[2]:find("update c", 1, true), bad.failures[2])          -- NaN fails
    assert.truthy(bad.failures[3]:find("lvae 6, PyTorch 11", 1, true), bad.failures[3])
  end)

  it("leaves masked elements out of the statistics and counts them", function()
    local a = lv.tensor({ 1, 5, 3 }, "f32")
    local b = lv.tensor({ 1, 2, 4 }, "f32")
    local st = agreement.stats(a, b, lv.tensor({ 1, 0, 1 }))
    assert.are.same({ 1, 4, 1, 2, 1 }, { st.max_diff, st.max_ref, st.norm_diff, st.n, st.excluded })
  end)

  it("applies SPEC's Adamax to two gradients", function()
    local hyper = { lr = 0.1, eps = 0.5, betas = { 0.5, 0.75 } }
    local g1, g2 = lv.tensor({ 2, -1 }, "f64"), lv.tensor({ 1, 4 }, "f64")
    local s1, s2 = agreement.adamax_updates(g1, g2, hyper)
    -- step 1: m = (1, -0.5), u = (2, 1): -0.1/0.5 m/(u + 0.5) = (-0.08, 0.0667)
    -- step 2: m = (1, 1.75), u = max(0.75 u, |g2|) = (1.5, 4): -0.1/0.75 m/(u + 0.5)
    local want1, want2 = { -0.08, 0.1 / 1.5 }, { -0.2 / 1.5 * 0.5, -0.2 / 1.5 * 1.75 / 4.5 }
    for i = 1, 2 do
      assert.is_true(math.abs(s1[i]:item() - want1[i]) < 1e-15, "step 1, " .. i)
      assert.is_true(math.abs(s2[i]:item() - want2[i]) < 1e-15, "step 2, " .. i)
    end
  end)

  it("holds f64 to rounding and f32 to float32's precision", function()
    local st = s(1e-9, 1, 0, 1)
    assert.is_true(agreement.verdict({ { kind = "gradient", what = "w", stats = st } }, "f32").ok)
    assert.is_false(agreement.verdict({ { kind = "gradient", what = "w", stats = st } }, "f64").ok)
    assert.has_error(function() agreement.verdict({}, "f16") end)
  end)
end)

describe("bench.peers.timing", function()
  it("sizes a round's sample and its settling", function()
    assert.are.equal(34, timing.steps_per_round(0.012, 0.4))
    assert.are.equal(4, timing.steps_per_round(0.1, 0.4))         -- exactly, despite rounding
    assert.are.equal(1, timing.steps_per_round(3.0, 0.4))
    assert.are.equal(1, timing.steps_per_round(0, 0.4))
    -- about 0.15 s of untimed steps, at least one
    assert.are.same({ 3, 1, 15 }, { timing.settle_steps(0.05), timing.settle_steps(0.3), timing.settle_steps(0.01) })
  end)

  it("goes on while the budget lasts, within the bounds", function()
    local limits = { budget = 10, min = 3, max = 9 }
    assert.is_true(timing.another_round(0, 0, limits))
    assert.is_true(timing.another_round(2, 50, limits))        -- the minimum, budget or not
    assert.is_true(timing.another_round(5, 9.9, limits))
    assert.is_false(timing.another_round(5, 10, limits))
    assert.is_false(timing.another_round(9, 1, limits))        -- the maximum
  end)

  it("keeps the settings within a factor of the best median", function()
    local keep = timing.keep({ { 10, 11, 12 }, { 30, 25, 21 }, { 19, 20, 40 }, {} }, 2)
    assert.are.same({ [1] = true, [3] = true, [4] = true }, keep)   -- 22 > 2 x 11; no samples: kept
  end)

  it("alternates the order of the settings from round to round", function()
    assert.are.same({ 1, 2, 3 }, timing.order(1, 3))
    assert.are.same({ 3, 2, 1 }, timing.order(2, 3))
    assert.are.same({ 1, 2, 3 }, timing.order(3, 3))
  end)

  it("summarises samples and picks the best median", function()
    assert.are.same({ median = 2, min = 1, max = 5, n = 3 }, timing.summary({ 5, 1, 2 }))
    assert.are.equal(2.5, timing.summary({ 4, 1, 3, 2 }).median)
    assert.is_nil(timing.summary({}))
    assert.are.equal(2, timing.best({ { median = 3 }, { median = 1 }, { median = 1 }, {} }))
  end)
end)

describe("bench.peers.flops", function()
  -- torch.profiler's mm/addmm flops of one PyTorch step of each mlp row
  -- (torch 1.13, bench/peers/torch_models.py): the count must match them
  local PROFILED = { vae = 749600000, iwae = 2367200000, planar = 749600000, ["hvae-fixed"] = 5198000000,
                     qsl = 4389200000, qsl2 = 5198000000, euler = 35551200000 }
  local EVALS = { vae = 0, iwae = 0, planar = 0, ["hvae-fixed"] = 6, qsl = 5, qsl2 = 6, euler = 5 }

  it("counts the GEMM flops of every mlp row as torch.profiler does", function()
    for name, expected in pairs(PROFILED) do
      local c = flops.count(rows.find("mlp:" .. name), EVALS[name])
      assert.are.equal(expected, c.total, name)
    end
  end)

  it("counts the VAE's step by hand", function()
    -- encoder fwd + wgt on every layer, bwd on all but the first; decoder one of each
    local B = 100
    local enc = 2 * B * (784 * 500 + 500 * 500 + 2 * 500 * 64)
    local first = 2 * B * 784 * 500
    local dec = 2 * B * (64 * 500 + 500 * 500 + 500 * 784)
    assert.are.equal(3 * enc - first + 3 * dec, flops.count(rows.find("mlp:vae"), 0).total)
    assert.has_error(function() flops.count(rows.find("conv:vae"), 0) end)
  end)

  it("lists the shapes to time and adds up the roof", function()
    local c = flops.count(rows.find("mlp:vae"), 0)
    local shapes = flops.shapes(c, c)
    local keys = {}
    for i, sh in ipairs(shapes) do keys[i] = sh.key end
    -- 3 per layer size, less the first layer's bwd; mu and sigma share theirs, the encoder's and decoder's 500 -> 500 too
    assert.are.equal(14, #shapes)
    assert.truthy(table.concat(keys, ";"):find("nt 100 784 500", 1, true))
    assert.truthy(table.concat(keys, ";"):find("tn 500 100 784", 1, true))
    local secs = {}
    for _, sh in ipairs(shapes) do secs[sh.key] = 1e-3 end
    local gemms = 0
    for _, g in ipairs(c.gemms) do gemms = gemms + g.count end
    assert.is_true(math.abs(gemms * 1e-3 - flops.roof_seconds(c, secs)) < 1e-15)
    secs["nt 100 784 500"] = nil
    local none, missing = flops.roof_seconds(c, secs)
    assert.is_nil(none)
    assert.are.equal("nt 100 784 500", missing)
    local r = flops.roofline({ total = 2e9 }, 0.01, 0.04)
    assert.are.same({ 2, 50, 200, 0.25 }, { r.gflop, r.gflops, r.roof_gflops, r.fraction })
  end)
end)

describe("bench.peers.report", function()
  it("formats numbers to three digits and errors in scientific notation", function()
    assert.are.same({ "12.3", "0.123", "1235", "7.00", "0", "–" },
      { report.num(12.345), report.num(0.12345), report.num(1234.6), report.num(7), report.num(0), report.num(nil) })
    assert.are.same({ "3.2e-07", "0", "–" }, { report.sci(3.21e-7), report.sci(0), report.sci(0 / 0) })
  end)

  local function doc()
    local setting = { label = "lvae, 2 threads", median_ms = 10, min_ms = 9 }
    local tsetting = { label = "torch 1, OpenBLAS 2", median_ms = 25, min_ms = 20 }
    local check = { worst = { objective = { error = 2e-7, what = "at the start" },
                              gradient = { error = 3e-7, what = "decoder.1.weight" },
                              adamax = { error = 1e-4, what = "lvae's b (step 2)" },
                              update = { error = 2e-5, what = "w (step 1)" } },
                    update_left_out = 0.001, grad_evals = { lvae = 6, torch = 6 }, ok = true }
    return {
      command = "make bench-peer", full = true, date = "2026-01-01T00:00:00Z", seconds = 600,
      tolerances = agreement.TOLERANCES,
      settings = { f64_check_batch = 20, lvae_threads = { 2 }, torch_threads = { 1, 2 }, openblas_threads = { 1, 2 } },
      rows = { { id = "mlp:hvae-fixed", arch = "mlp", title = "HVAE leapfrog, tempering fixed, K = 5", lvae_ms = 10,
                 lvae_min_ms = 9, torch_ms = 25, torch_min_ms = 20, speedup = 2.5, grad_evals = 6, lvae_rss_mib = 50,
                 torch_rss_mib = 300, torch_threads = { torch = 1, openblas = 2 }, rounds = 7, cpu_wait_share = 0.12,
                 lvae_import_rss_mib = 7, torch_import_rss_mib = 227,
                 lvae_settings = { setting }, torch_settings = { tsetting },
                 check = { f64 = check, f32 = check },
                 roofline = { counted_gflop = 5.198, torch_profiled_gflop = 5.198,
                              lvae = { gflops = 520, roof_gflops = 100, fraction = 0.4 },
                              torch = { gflops = 200, roof_gflops = 100, fraction = 0.16 } } } },
      environment = { machine = { cpu = "AMD EPYC", cores = 2, simd = "avx2", lua = "Lua 5.4", os = "Linux" },
                      git = { commit = "abc", dirty = false }, openblas_env = { OPENBLAS_CORETYPE = "Haswell" },
                      packages = {}, blas_ref = { openblas_corename = "Haswell" }, workers = {} },
    }
  end

  it("writes the table, the roofline, the agreement and the environment", function()
    local md = report.markdown(doc())
    assert.truthy(md:find("| HVAE leapfrog, tempering fixed, K = 5 | mlp | 10.0 | 9.00 | 25.0 | 20.0 | 2.50 | 6 | "
      .. "50.0 | 300 | torch 1, OpenBLAS 2 |", 1, true), md)
    assert.truthy(md:find("| 5.20 | 5.20 | 100 | 520 | 40% | 200 | 16% |", 1, true), md)
    assert.truthy(md:find("| 2.0e-07 | 3.0e-07 | 1.0e-04 | 2.0e-05 | 2.0e-07 | 3.0e-07 | 1.0e-04 | 2.0e-05 | "
      .. "0.10% | 6 / 6 |", 1, true), md)
    assert.truthy(md:find("`OPENBLAS_CORETYPE=Haswell`", 1, true), md)
    assert.truthy(md:find("Generated by `make bench-peer`", 1, true), md)
    assert.truthy(md:find("waiting for a CPU 12%–12% of the time", 1, true), md)
  end)

  it("says in one line what the check found", function()
    local c = doc().rows[1].check.f32
    assert.are.equal("agree: objective 2.0e-07 (at the start); gradient 3.0e-07 (decoder.1.weight); "
      .. "adamax 1.0e-04 (lvae's b (step 2)); update 2.0e-05 (w (step 1)); update over all but 0.10% of the "
      .. "elements; force evals 6 / 6", report.check_line(c))
  end)
end)

describe("bench.peers.workers", function()
  it("parses reply lines and nothing else", function()
    assert.are.same({ seconds = 1.5 }, workers.parse_reply('@peer {"seconds": 1.5}', cjson.decode))
    assert.is_nil(workers.parse_reply("a warning", cjson.decode))
    assert.is_nil(workers.parse_reply("@peer {not json", cjson.decode))
    assert.is_nil(workers.parse_reply("@peer 3", cjson.decode))
    assert.is_nil(workers.parse_reply(nil, cjson.decode))
  end)

  it("says how a worker ended", function()
    assert.truthy(workers.describe_exit(nil, "exit", 124, 60):find("killed after its 60 s time limit", 1, true))
    assert.are.equal("exited with status 3", workers.describe_exit(nil, "exit", 3, 60))
    assert.are.equal("was killed by signal 9", workers.describe_exit(nil, "signal", 9, 60))
    assert.are.equal("b\nc", workers.tail("a\nb\nc\n", 2))
  end)

  -- A stand-in worker speaking the protocol: it echoes `echo N` as
  -- {n = N}, dies with a message on `die`, hangs on `hang`.
  local STAND_IN = [[
local fifo = arg[1]
io.stdout:write("some chatter\n@peer {\"ready\": true}\n"); io.stdout:flush()
local f = assert(io.open(fifo, "r"))
for line in f:lines() do
  local n = line:match("^echo (%d+)$")
  if n then io.stdout:write('@peer {"n": ' .. n .. '}\n'); io.stdout:flush()
  elseif line == "die" then io.stderr:write("stand-in: dying on purpose\n"); os.exit(7)
  elseif line == "hang" then while true do end
  elseif line == "quit" then io.stdout:write('@peer {"bye": true}\n'); io.stdout:flush(); return end
end
]]

  local dir, script
  setup(function()
    dir = io.popen("mktemp -d"):read("l")
    script = dir .. "/stand_in.lua"
    local f = assert(io.open(script, "w"))
    f:write(STAND_IN)
    f:close()
  end)
  teardown(function() os.execute("rm -rf '" .. dir .. "'") end)

  local function start(name, timeout)
    return workers.start{ name = name, command = "lua5.4 " .. workers.shell_quote(script), dir = dir,
                          timeout = timeout or 30, decode = cjson.decode }
  end

  it("talks to a worker through its FIFO and its stdout", function()
    local w = start("echo")
    assert.is_true(w.ready.ready)
    assert.are.equal(3, w:request("echo 3").n)
    assert.are.equal(42, w:request("echo 42").n)
    assert.are.same({ "some chatter" }, w.chatter)
    w:stop()
    assert.has_error(function() w:request("echo 1") end, "bench-peer: the echo worker has stopped")
  end)

  it("shows a dying worker's status and stderr instead of waiting", function()
    local w = start("dying")
    local ok, err = pcall(w.request, w, "die")
    assert.is_false(ok)
    assert.truthy(err:find("the dying worker exited with status 7 (while answering 'die')", 1, true), err)
    assert.truthy(err:find("stand-in: dying on purpose", 1, true), err)
  end)

  it("ends a hanging worker at its time limit", function()
    local w = start("hanging", 1)
    local t0 = lv.clock()
    local ok, err = pcall(w.request, w, "hang")
    assert.is_false(ok)
    assert.truthy(err:find("killed after its 1 s time limit", 1, true), err)
    assert.is_true(lv.clock() - t0 < 15)
  end)

  it("reports a worker that cannot start", function()
    local ok, err = pcall(workers.start, { name = "missing", command = "lua5.4 /nonexistent/worker.lua", dir = dir,
                                           timeout = 30, decode = cjson.decode })
    assert.is_false(ok)
    assert.truthy(err:find("the missing worker exited with status 1 (while starting)", 1, true), err)
    assert.truthy(err:find("cannot open /nonexistent/worker.lua", 1, true), err)
  end)
end)

describe("bench.peers.lvae_models", function()
  local models = require "bench.peers.lvae_models"

  it("builds images.lua's models, names their parameters and states the flow's parametrisation", function()
    local m = models.build(rows.find("mlp:hvae-free"), "f32", 1, ".")
    assert.are.equal(16, #m.params)
    assert.are.equal("encoder.5.mu.weight", m.names[5])
    assert.are.same({ "flow.step_logit", "flow.temper" }, { m.names[15], m.names[16] })
    assert.are.same({ "leapfrog", 0.5, true, false }, { m.flow_desc.kind, m.flow_desc.max_step,
      m.flow_desc.has_momentum, m.flow_desc.noise })
    local m64 = models.build(rows.find("conv:qsl"), "f64", 1, ".")
    for _, p in ipairs(m64.params) do assert.are.equal("f64", p:dtype()) end
    assert.are.equal("softplus", m64.flow_desc.friction)
    -- the wrapped constructors are restored
    assert.are.equal("f32", require("lvae.nn").Linear(2, 3).weight:dtype())
  end)

  it("hands over the noise the objective draws, as many as it draws", function()
    local row = setmetatable({ batch = 4 }, { __index = rows.find("mlp:qsl2") })
    local m = models.build(row, "f64", 1, ".")
    local x = models.batch(row, "f64", 2)
    local draws = models.noise(m, 3)
    local names = {}
    for i, d in ipairs(draws) do names[i] = d[1] end
    assert.are.same({ "eps_z", "eps_rho", "xi_1", "xi_2", "xi_3", "xi_4", "xi_5" }, names)
    local after = lv.get_rng_state().offset
    lv.manual_seed(3)
    local objective = models.objective(m, x)
    assert.are.equal(after, lv.get_rng_state().offset)
    -- the same draws through a generator passed as gen
    assert.is_true(models.generator_agrees(m, x, 3, objective, after).same)
    local planar = models.build(setmetatable({ batch = 4 }, { __index = rows.find("mlp:planar") }), "f32", 1, ".")
    assert.are.equal(1, #models.noise(planar, 3))             -- eps_z only: no momentum, no noise
  end)

  it("names the rows that miss issue 12's targets", function()
    local doc = { rows = {
      { title = "VAE", arch = "mlp", model = "vae", speedup = 1.8, lvae_rss_mib = 40, torch_rss_mib = 270,
        roofline = { lvae = { fraction = 0.55 } } },
      { title = "IWAE", arch = "mlp", model = "iwae", speedup = 1.49, lvae_rss_mib = 40, torch_rss_mib = 270 },
      { title = "VAE", arch = "conv", model = "vae", speedup = 1.31, lvae_rss_mib = 300, torch_rss_mib = 280 },
    } }
    local missed = report.missed_targets(doc)
    assert.are.equal(3, #missed)
    assert.truthy(missed[1]:find("VAE, mlp: 55% of the GEMM roof (target 60%)", 1, true), missed[1])
    assert.truthy(missed[2]:find("IWAE, mlp: PyTorch / lvae 1.49 (target 1.5)", 1, true), missed[2])
    assert.truthy(missed[3]:find("above PyTorch's", 1, true), missed[3])
    doc.rows[1].roofline.lvae.fraction, doc.rows[2].speedup, doc.rows[3].lvae_rss_mib = 0.61, 1.5, 100
    assert.are.same({}, report.missed_targets(doc))
    -- the notes go into the markdown (a recorded run's JSON, re-rendered)
    local f = assert(io.open("bench/results/peer.json"))
    local recorded = cjson.decode(f:read("a"))
    f:close()
    recorded.notes = "hand-written"
    assert.truthy(report.markdown(recorded):find("## Notes\n\nhand-written", 1, true))
  end)
end)
