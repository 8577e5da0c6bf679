--- bench/peers/lvae_worker.lua -- the lvae worker of bench/peer.lua.
--
--   ./lvae bench/peers/lvae_worker.lua check ROW DIR DTYPE:BATCH...
--   ./lvae bench/peers/lvae_worker.lua serve ROW COMMAND_FIFO
--
-- ROW is a row id of bench/peers/rows.lua ("mlp:qsl").
--
-- `check` builds the row's model (bench/peers/lvae_models.lua: images.lua's
-- own architecture and flow) at each DTYPE with a batch of BATCH ("f64:20
-- f32:100") and writes into DIR/DTYPE what PyTorch needs to rebuild it:
-- manifest.json, every parameter as .npy in model:parameters() order,
-- every tensor of the flow, the batch x, and the standard normal draws one
-- objective takes, drawn from the default generator in lvae's order. Then
-- it takes two training steps, images.lua's, with the default generator
-- re-seeded so that the objective draws exactly those numbers (checked
-- through the generator's offset). The objective [B], the gradient of the
-- loss (lv.grad on the retained graph; opt:step then takes its own) and the
-- parameters after each Adamax step go to DIR/DTYPE/lvae/*.npy; the force
-- evaluations (model.grad_evals), the step times and whether the objective
-- with the same draws from a generator passed as `gen` gives the same
-- numbers (lvae_models.generator_agrees) to DIR/DTYPE/lvae/result.json.
--
-- `serve` times training steps on command, one command a line from
-- COMMAND_FIFO, one answer a line on stdout, "@peer {json}":
--
--   warmup SECONDS      steps for at least SECONDS (at least one)
--   round N THREADS S   lv.set_num_threads(THREADS), S untimed steps, then
--                       N timed ones: {"seconds": total}
--   stats               peak and current resident memory (VmHWM, VmRSS)
--   quit
--
-- The first answer is {ready = true, ...} with the thread count and the
-- resident memory just after require "lvae".

local script = arg and arg[0] or "bench/peers/lvae_worker.lua"
local root = (script:match("^(.*)/bench/peers/[^/]*$") or ".")
package.path = root .. "/?.lua;" .. package.path

local function memory_kib()
  local out = {}
  local f = io.open("/proc/self/status", "r")
  if f then
    for line in f:lines() do
      local key, kib = line:match("^(Vm%u%u%u?%u?):%s*(%d+)")
      if key then out[key] = tonumber(kib) end
    end
    f:close()
  end
  return out
end

--- The OpenBLAS library this process mapped (the Makefile may link either
-- Debian build, pthread or OpenMP), from /proc/self/maps.
local function openblas_library()
  local f = io.open("/proc/self/maps", "r")
  if not f then return nil end
  local path
  for line in f:lines() do
    path = path or line:match("(/%S*libopenblas[^/%s]*)$")
  end
  f:close()
  return path
end

local rss_before = memory_kib().VmRSS
local lv = require "lvae"
local rss_after = memory_kib().VmRSS
local cjson = require "cjson"
local files = require "lvae.files"
local rows = require "bench.peers.rows"
local models = require "bench.peers.lvae_models"

local WEIGHT_SEED, BATCH_SEED, NOISE_SEED = 1, 2, 3

local function fail(fmt, ...)
  io.stderr:write("lvae_worker.lua: ", string.format(fmt, ...), "\n")
  os.exit(1)
end

local function save(dir, name, t)
  lv.save_npy(dir .. "/" .. name, t:detach():contiguous())
  return name
end

local function check(row, dir, dtype, batch)
  files.mkdir_p(dir)
  row = setmetatable({ batch = batch }, { __index = row })
  local m = models.build(row, dtype, WEIGHT_SEED, root)
  local x = models.batch(row, dtype, BATCH_SEED)
  local manifest = { dtype = dtype, lr = models.LR, eps = models.EPS, betas = models.BETAS, x = save(dir, "x.npy", x),
                     row = { id = row.id, arch = row.arch, model = row.model, d = row.d, K = row.K,
                             tempering = row.tempering, samples = row.samples, batch = batch },
                     params = {}, noise = {} }
  for i, p in ipairs(m.params) do
    manifest.params[i] = { name = m.names[i], file = save(dir, string.format("param0_%03d.npy", i), p),
                           shape = p:size() }
  end
  if m.flow then
    manifest.flow, manifest.flow_tensors = m.flow_desc, {}
    for name, t in pairs(m.flow:state_dict()) do
      manifest.flow_tensors[name] = save(dir, "flow_" .. name .. ".npy", t)
    end
  end
  for i, draw in ipairs(models.noise(m, NOISE_SEED)) do
    manifest.noise[i] = { name = draw[1], file = save(dir, "noise_" .. draw[1] .. ".npy", draw[2]) }
  end
  local after_draws = lv.get_rng_state().offset
  files.write_atomic(dir .. "/manifest.json", cjson.encode(manifest))

  local out = dir .. "/lvae"
  files.mkdir_p(out)
  local opt = models.optimizer(m)
  local result = {}
  for step = 1, 2 do
    lv.manual_seed(NOISE_SEED)
    local t0 = lv.clock()
    local objective = models.objective(m, x)
    local used = lv.get_rng_state().offset
    if used ~= after_draws then
      fail("%s: the objective took the default generator to offset %d, the noise dump to %d: "
        .. "lvae draws its noise in another order or amount than bench/peers/lvae_models.lua's "
        .. "noise() says", row.id, used, after_draws)
    end
    local loss = -objective:mean()
    local grads = lv.grad(loss, m.params, { retain_graph = true })
    for i, g in ipairs(grads) do save(out, string.format("grad%d_%03d.npy", step, i), g) end
    if step == 1 then result.generator = models.generator_agrees(m, x, NOISE_SEED, objective, after_draws) end
    opt:step(loss)
    result["step" .. step .. "_seconds"] = lv.clock() - t0
    save(out, "objective" .. step .. ".npy", objective)
    for i, p in ipairs(m.params) do save(out, string.format("param%d_%03d.npy", step, i), p) end
    result.grad_evals = m.model.grad_evals or 0
  end
  files.write_atomic(out .. "/result.json", cjson.encode(result))
end

local function reply(t)
  io.stdout:write("@peer ", cjson.encode(t), "\n")
  io.stdout:flush()
end

local function serve(row, fifo)
  local m = models.build(row, "f32", WEIGHT_SEED, root)
  local x = models.batch(row, "f32", BATCH_SEED)
  local opt = models.optimizer(m)
  local function step() models.step(m, opt, x) end
  reply({ ready = true, pid = tonumber(io.open("/proc/self/stat"):read("l"):match("^(%d+)")),
          default_threads = lv.num_threads(), lua = _VERSION, openblas_library = openblas_library(),
          rss_before_import_kib = rss_before, rss_after_import_kib = rss_after })
  local commands = io.open(fifo, "r")
  if not commands then fail("cannot open the command FIFO %s", fifo) end
  for line in commands:lines() do
    local words = {}
    for w in line:gmatch("%S+") do words[#words + 1] = w end
    local cmd = words[1]
    if cmd == "warmup" then
      local seconds, steps, t0 = tonumber(words[2]), 0, lv.clock()
      repeat
        step()
        steps = steps + 1
      until lv.clock() - t0 >= seconds
      reply({ steps = steps, seconds = lv.clock() - t0 })
    elseif cmd == "round" then
      local n, threads, settle = tonumber(words[2]), tonumber(words[3]), tonumber(words[4])
      if threads ~= lv.num_threads() then lv.set_num_threads(threads) end
      for _ = 1, settle do step() end
      local t0 = lv.clock()
      for _ = 1, n do step() end
      reply({ seconds = lv.clock() - t0, steps = n, threads = lv.num_threads() })
    elseif cmd == "stats" then
      local mem = memory_kib()
      reply({ vmhwm_kib = mem.VmHWM, vmrss_kib = mem.VmRSS, grad_evals = m.model.grad_evals or 0 })
    elseif cmd == "quit" then
      reply({ bye = true })
      commands:close()
      return
    elseif cmd then
      fail("unknown command '%s'", line)
    end
  end
end

local mode = arg[1]
local row = arg[2] and rows.find(arg[2])
if arg[2] and not row then fail("%s", select(2, rows.find(arg[2]))) end
local function usage()
  io.stderr:write("usage: ./lvae bench/peers/lvae_worker.lua check ROW DIR DTYPE:BATCH... | serve ROW COMMAND_FIFO\n")
  os.exit(2)
end

if mode == "check" and row and arg[3] and arg[4] then
  for i = 4, #arg do
    local dtype, batch = arg[i]:match("^(f%d%d):(%d+)$")
    if not dtype then usage() end
    check(row, arg[3] .. "/" .. dtype, dtype, math.tointeger(tonumber(batch)))
  end
elseif mode == "serve" and row and arg[3] then
  serve(row, arg[3])
else
  usage()
end
