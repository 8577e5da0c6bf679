--- bench/pytorch.lua -- lvae against PyTorch on the same model, same CPU.
--
--   ./lvae bench/pytorch.lua [--quick] [--threads N]
--
-- The model is bench/integrators.lua's: SPEC §6.2's mlp FlowVAE (encoder
-- 784-500-500 softplus with a GaussianHead, decoder d-500-500-784
-- Bernoulli logits), d = 64, batch 100, f32. One training step: the ELBO
-- with create_graph, then the gradient of -mean(ELBO) with respect to
-- every parameter. Rows: the VAE, HVAE's leapfrog (tempering fixed, K + 1
-- force evaluations) and the quasi-symplectic flow qsl (K), at K = 1 and
-- 5 (--quick: K = 1). bench/pytorch_flows.py is the same step in PyTorch
-- (Debian's python3-torch, installed by `scripts/setup.sh bench`), timed
-- as bench/lib.lua's lib.time times lvae's: warm-up, then the median of
-- repeated samples.
--
-- First, a check that both compute the same thing: the decoder's weights,
-- x, z0 and rho0 go to PyTorch as .npy, both run leapfrog and qsl (noise
-- off) from that start in f64, and zK, rhoK, the log-determinant, U(zK)
-- and the gradient of Σ U(zK) with respect to the decoder's first weight
-- (second order: it passes through every force) must agree to 1e-9
-- relative. A disagreement stops the benchmark: timing two different
-- computations would mean nothing.
--
-- PyTorch's threads: Debian's build runs its own OpenMP pool beside
-- OpenBLAS's, and on 2 cores the two pools fight (steps vary by 3x from
-- one sample to the next). It is timed three ways -- torch.set_num_threads
-- at lvae's thread count with OpenBLAS left as it is, the same with
-- OPENBLAS_NUM_THREADS=1, and everything on one thread -- and each row
-- keeps PyTorch's fastest median, and says which. lvae runs at its own
-- thread count. Writes bench/results/pytorch.json; prints a markdown table.

local script_path = arg and arg[0] or "bench/pytorch.lua"
local bench_dir = script_path:match("^(.*)/[^/]*$") or "."
package.path = bench_dir .. "/../?.lua;" .. package.path

local lv = require "lvae"
local nn = require "lvae.nn"
local lib = require "bench.lib"

local quick = lib.options("bench/pytorch.lua").quick

local D, B, d = 784, 100, 64
local Ks = quick and { 1 } or { 1, 5 }
local PYTHON = "/usr/bin/python3"     -- Debian's, where python3-torch is installed
local script = bench_dir .. "/pytorch_flows.py"
local quote = lib.shell_quote

local machine = lib.machine()
lib.print_machine(machine)
local version, ok = lib.run(PYTHON .. " -c 'import torch, numpy; print(torch.__version__)' 2>&1")
if not ok then
  io.stderr:write("bench/pytorch.lua: PyTorch is not installed for " .. PYTHON .. " ("
    .. (version[#version] or "no output") .. "); `scripts/setup.sh bench` installs Debian's "
    .. "python3-torch and python3-numpy\n")
  os.exit(1)
end
print("PyTorch " .. version[1] .. " (" .. PYTHON .. ")")

-- ---- the check: the same flows, in f64, from the same start ----------------

local function max_rel_diff(a, b)
  local scale = math.max(a:abs():max():item(), 1e-300)
  return (a - b):abs():max():item() / scale
end

local function check(dir)
  lv.manual_seed(99)
  local dec = nn.Sequential(nn.Linear(d, 500, { dtype = "f64" }), nn.Softplus(),
                            nn.Linear(500, 500, { dtype = "f64" }), nn.Softplus(),
                            nn.Linear(500, D, { dtype = "f64" }))
  local layers = { dec._children[1].module, dec._children[3].module, dec._children[5].module }
  local x = lv.bernoulli({ B, D }, 0.3):to("f64")
  local z0, rho0 = lv.randn({ B, d }, "f64"), lv.randn({ B, d }, "f64")
  for i, layer in ipairs(layers) do
    lv.save_npy(dir .. "/dec_w" .. i .. ".npy", layer.weight:detach())
    lv.save_npy(dir .. "/dec_b" .. i .. ".npy", layer.bias:detach())
  end
  lv.save_npy(dir .. "/x.npy", x)
  lv.save_npy(dir .. "/z0.npy", z0)
  lv.save_npy(dir .. "/rho0.npy", rho0)
  local K = 5
  local flows = {
    leapfrog = lv.integrators.leapfrog{ dim = d, K = K, tempering = "fixed", dtype = "f64" },
    qsl = lv.integrators.qsl{ dim = d, noise = false, dtype = "f64" },
  }
  local function U(z)
    local logits = dec(z)
    local log_lik = (x * logits - logits:softplus()):sum(2)
    return -(log_lik - 0.5 * z:square():sum(2) - d * 0.5 * math.log(2 * math.pi))
  end
  local mine = {}
  for name, flow in pairs(flows) do
    lv.save_npy(dir .. "/" .. name .. "_K.npy", lv.tensor({ K }, "f64"))
    lv.save_npy(dir .. "/" .. name .. "_h.npy", flow:step_size():detach())
    if name == "qsl" then lv.save_npy(dir .. "/qsl_gamma.npy", flow:friction():detach()) end
    if name == "leapfrog" then
      lv.save_npy(dir .. "/leapfrog_T0.npy", flow:temperature0(K):detach():reshape({}))
    end
    local z = lv.param(z0:clone())
    local zK, rhoK, logdet, evals, stats = flow:flow(z, rho0:clone(), U, K, { create_graph = true })
    local U_end = stats.potential or U(zK)
    local g_w1 = lv.grad(U_end:sum(), { layers[1].weight })[1]
    mine[name] = { zK = zK, rhoK = rhoK, logdet = logdet, U = U_end, grad_w1 = g_w1, evals = evals }
  end
  local out, ok_run = lib.run(PYTHON .. " " .. quote(script) .. " check " .. quote(dir) .. " 2>&1")
  if not ok_run then
    error("bench/pytorch.lua: the PyTorch check failed:\n" .. table.concat(out, "\n"), 0)
  end
  local worst, rows = 0, {}
  for _, name in ipairs({ "leapfrog", "qsl" }) do
    local row = { flow = name }
    for _, key in ipairs({ "zK", "rhoK", "logdet", "U", "grad_w1" }) do
      local theirs = lv.load_npy(dir .. "/torch_" .. name .. "_" .. key .. ".npy")
      local diff = max_rel_diff(mine[name][key]:detach(), theirs)
      row[key] = diff
      worst = math.max(worst, diff)
    end
    row.evals = mine[name].evals
    row.torch_evals = lv.load_npy(dir .. "/torch_" .. name .. "_evals.npy"):item()
    rows[#rows + 1] = row
  end
  print("\n## the same computation: largest |lvae - PyTorch| / max|lvae|, f64, K = 5, noise off\n")
  print("| flow | zK | ρK | log-det | U(zK) | ∂ΣU(zK)/∂W1 | force evals (lvae / PyTorch) |")
  print("|---|---:|---:|---:|---:|---:|---:|")
  for _, r in ipairs(rows) do
    print(string.format("| %s | %.1e | %.1e | %.1e | %.1e | %.1e | %d / %d |", r.flow, r.zK, r.rhoK,
      r.logdet, r.U, r.grad_w1, r.evals, r.torch_evals))
    if r.evals ~= r.torch_evals then
      error(string.format("bench/pytorch.lua: %s makes %d force evaluations in lvae, %d in PyTorch",
        r.flow, r.evals, r.torch_evals), 0)
    end
  end
  if worst > 1e-9 then
    error(string.format("bench/pytorch.lua: lvae and PyTorch disagree (%.2e relative): the timings "
      .. "would compare different computations", worst), 0)
  end
  return rows, worst
end

local tmp = lib.run("mktemp -d")[1]
local check_ok, check_rows, worst = pcall(check, tmp)
os.execute("rm -rf " .. quote(tmp))
if not check_ok then
  io.stderr:write(tostring(check_rows), "\n")
  os.exit(1)
end

-- ---- lvae's step ------------------------------------------------------------

local x = lv.bernoulli({ B, D }, 0.3)
local function build(kind, K)
  lv.manual_seed(1234)
  local enc = nn.Sequential(nn.Linear(D, 500), nn.Softplus(), nn.Linear(500, 500),
                            nn.Softplus(), nn.GaussianHead(500, d))
  local dec = nn.Sequential(nn.Linear(d, 500), nn.Softplus(), nn.Linear(500, 500),
                            nn.Softplus(), nn.Linear(500, D))
  local flow
  if kind == "leapfrog" then flow = lv.integrators.leapfrog{ dim = d, K = K, tempering = "fixed" } end
  if kind == "qsl" then flow = lv.integrators.qsl{ dim = d } end
  local model = lv.models.FlowVAE{ encoder = enc, decoder = dec, likelihood = "bernoulli",
                                   flow = flow, K = flow and K or nil }
  local params = model:parameters()
  return model, function()
    local elbo = model:elbo(x)
    return lv.grad(-elbo:mean(), params)
  end
end

local configs = { { model = "vae", K = 0 } }
for _, K in ipairs(Ks) do
  configs[#configs + 1] = { model = "leapfrog", K = K }
  configs[#configs + 1] = { model = "qsl", K = K }
end
local repeats = quick and 3 or 7
local lvae_rows = {}
for i, c in ipairs(configs) do
  local model, step = build(c.model, c.K)
  local r = lib.time(step, { repeats = repeats, warmup = 0.5, warmup_calls = 5, min_time = 0.2 })
  lvae_rows[i] = { median = r.median, min = r.min, grad_evals = model.grad_evals or 0 }
end

-- ---- PyTorch's step, two thread settings -----------------------------------

local n_threads = lv.num_threads()
local cjson = require "cjson"
local function torch_times(env, torch_threads)
  local cmd = string.format("%s %s %s time --threads %d --d %d --batch %d --K %s --repeats %d 2>&1",
    env, PYTHON, quote(script), torch_threads, d, B, table.concat(Ks, ","), repeats)
  local out, ran = lib.run(cmd)
  local decoded_ok, r = pcall(cjson.decode, out[#out] or "")
  if not ran or not decoded_ok then
    io.stderr:write("bench/pytorch.lua: the PyTorch timing failed:\n", table.concat(out, "\n"), "\n")
    os.exit(1)
  end
  return r
end
local settings = {
  { name = string.format("%d, OpenBLAS's own", n_threads), env = "", threads = n_threads },
  { name = string.format("%d, OpenBLAS 1", n_threads), env = "OPENBLAS_NUM_THREADS=1", threads = n_threads },
  { name = "1, OpenBLAS 1", env = "OPENBLAS_NUM_THREADS=1", threads = 1 },
}
if n_threads == 1 then table.remove(settings, 2) end
for _, s in ipairs(settings) do s.result = torch_times(s.env, s.threads) end

local function title(c)
  if c.model == "vae" then return "VAE" end
  return string.format("%s K = %d", c.model == "leapfrog" and "HVAE leapfrog (fixed)" or "qsl", c.K)
end

print(string.format("\n## one training step, d = %d, batch %d, f32, %d threads: lvae against PyTorch %s\n",
  d, B, n_threads, version[1]))
local setting_names = {}
for _, s in ipairs(settings) do setting_names[#setting_names + 1] = s.name end
print("PyTorch's threads (torch, OpenBLAS) were tried as: " .. table.concat(setting_names, "; ")
  .. "; each row shows its fastest\n")
print("| model | force evals | lvae ms | PyTorch ms | PyTorch / lvae | PyTorch threads | PyTorch ms, each setting |")
print("|---|---:|---:|---:|---:|---|---:|")
local rows = {}
for i, c in ipairs(configs) do
  local best, others = nil, {}
  for _, s in ipairs(settings) do
    local t = s.result.rows[i]
    assert(t.model == c.model and t.K == c.K, "the PyTorch rows are out of order")
    if t.grad_evals ~= lvae_rows[i].grad_evals then
      io.stderr:write(string.format("bench/pytorch.lua: %s makes %d force evaluations in lvae, "
        .. "%d in PyTorch\n", title(c), lvae_rows[i].grad_evals, t.grad_evals))
      os.exit(1)
    end
    local entry = { setting = s.name, median = t.median, min = t.min }
    if not best or t.median < best.median then best = entry end
    others[#others + 1] = entry
  end
  local row = { model = c.model, K = c.K, grad_evals = lvae_rows[i].grad_evals,
                lvae_ms = lvae_rows[i].median * 1e3, lvae_min_ms = lvae_rows[i].min * 1e3,
                torch_ms = best.median * 1e3, torch_min_ms = best.min * 1e3,
                torch_setting = best.setting, torch_settings = others,
                torch_over_lvae = best.median / lvae_rows[i].median }
  rows[i] = row
  local all = {}
  for _, e in ipairs(others) do all[#all + 1] = string.format("%.1f", e.median * 1e3) end
  print(string.format("| %s | %d | %.1f | %.1f | %.2f | %s | %s |", title(c), row.grad_evals,
    row.lvae_ms, row.torch_ms, row.torch_over_lvae, row.torch_setting, table.concat(all, " / ")))
end

local path = lib.write_json("pytorch", { machine = machine, torch = version[1], d = d, batch = B,
  threads = n_threads, check = check_rows, check_worst = worst, rows = rows })
print("\nwrote " .. path)
