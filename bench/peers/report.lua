--- bench/peers/report.lua -- bench-peer's results as text: the progress
-- lines and BENCHMARKS.md. Pure Lua on the result table bench/peer.lua
-- builds (the same that goes to bench/results/peer.json).
--
--   print(report.check_line(row.check.f32))
--   print(report.timing_line(row))
--   local text = report.markdown(doc)

local M = {}

-- The check's quantities, in the order shown (bench/peers/agreement.lua).
M.KINDS = { "objective", "gradient", "adamax", "update" }

--- A number to about 3 significant digits, or "–" for nil/NaN.
function M.num(v, digits)
  if v == nil or v ~= v then return "–" end
  digits = digits or 3
  local a = math.abs(v)
  if a >= 10 ^ digits then return string.format("%.0f", v) end
  if a == 0 then return "0" end
  local decimals = math.max(0, digits - 1 - math.floor(math.log(a, 10)))
  return string.format("%." .. decimals .. "f", v)
end

--- An error in scientific notation with 1 decimal: "3.2e-07"; "0" for 0.
function M.sci(v)
  if v == nil or v ~= v then return "–" end
  if v == 0 then return "0" end
  return string.format("%.1e", v)
end

-- A count as an integer (JSON gives floats back).
local function int(v) return tostring(math.type(v) == "float" and math.tointeger(v) or v) end

local function list(t, sep)
  local out = {}
  for i, v in ipairs(t) do out[i] = int(v) end
  return table.concat(out, sep)
end

local function pct(v) return v and v == v and string.format("%.0f%%", 100 * v) or "–" end

--- One line for a check at one dtype: the worst error of each kind.
function M.check_line(c)
  local parts = {}
  for _, kind in ipairs(M.KINDS) do
    local w = c.worst[kind]
    if w then parts[#parts + 1] = string.format("%s %s (%s)", kind, M.sci(w.error), w.what) end
  end
  if c.update_left_out and c.update_left_out > 0 then
    parts[#parts + 1] = string.format("update over all but %s%% of the elements", M.num(100 * c.update_left_out, 2))
  end
  parts[#parts + 1] = string.format("force evals %s / %s", int(c.grad_evals.lvae), int(c.grad_evals.torch))
  return (c.ok and "agree: " or "DISAGREE: ") .. table.concat(parts, "; ")
end

local function threads_label(t)
  return string.format("torch %s, OpenBLAS %s", int(t.torch), int(t.openblas))
end

--- One line for a timed row.
function M.timing_line(r)
  return string.format("lvae %s ms (min %s), PyTorch %s ms (min %s, %s): PyTorch / lvae = %s; "
    .. "RSS lvae %s MiB, PyTorch %s MiB; %s rounds", M.num(r.lvae_ms), M.num(r.lvae_min_ms), M.num(r.torch_ms),
    M.num(r.torch_min_ms), threads_label(r.torch_threads), M.num(r.speedup), M.num(r.lvae_rss_mib),
    M.num(r.torch_rss_mib), int(r.rounds))
end

local function line(out, s) out[#out + 1] = s or "" end

local function env_lines(out, doc)
  local env = doc.environment
  local m, g = env.machine, env.git
  line(out, "## Environment")
  line(out)
  line(out, string.format("- Machine: %s (family %s, model %s; %s), %s cores, %s; %s.", m.cpu, int(m.cpu_family),
    int(m.cpu_model), m.simd ~= "" and m.simd or "no avx2", int(m.cores), m.os or "?", m.lua))
  line(out, string.format("- Date %s; commit `%s`%s.", doc.date, g.commit or "?",
    g.dirty and (g.core_modified and " with uncommitted changes in the core (src/, lua/): the figures are of the "
      .. "working tree, not of the commit" or " (uncommitted changes outside src/ and lua/)") or ""))
  local e = env.openblas_env
  local keys = {}
  for k in pairs(e) do keys[#keys + 1] = k end
  table.sort(keys)
  local vars = {}
  for _, k in ipairs(keys) do vars[#vars + 1] = string.format("`%s=%s`", k, e[k]) end
  line(out, "- Environment as found (never changed by the benchmark): " .. (#vars > 0 and table.concat(vars, ", ")
    or "no OPENBLAS_* or OMP_* variable set") .. (e.OPENBLAS_CORETYPE and "" or "; OPENBLAS_CORETYPE unset") .. ".")
  local b = env.blas_ref or {}
  local tw = env.workers and env.workers.torch or {}
  local tob = tw.openblas or {}
  local lw = env.workers and env.workers.lvae or {}
  local same = lw.openblas_library and lw.openblas_library == tob.library
  line(out, string.format("- OpenBLAS %s (Debian %s): lvae loads `%s`, PyTorch `%s`%s; kernel `%s` (bench/blas_ref, "
    .. "which links the pthread build and gives the roof), `%s` (PyTorch's, through ctypes); configuration `%s`.",
    tostring(b.openblas_config):match("OpenBLAS (%S+)") or "?", env.packages.libopenblas or "?",
    lw.openblas_library or "(not recorded)", tob.library or "(not recorded)", same and " (the same library)" or "",
    tostring(b.openblas_corename), tostring(tob.corename), tostring(b.openblas_config)))
  line(out, string.format("- Threads: lvae %s (`lv.num_threads()`, its default; timed at %s); PyTorch's default "
    .. "`torch.get_num_threads()` %s, timed at torch.set_num_threads %s × OPENBLAS_NUM_THREADS %s (the best median "
    .. "per row is reported); OpenBLAS's own default %s threads.", int(lw.default_threads),
    list(doc.settings.lvae_threads, ", "), int(tw.default_threads),
    list(doc.settings.torch_threads, " and "), list(doc.settings.openblas_threads, " and "),
    int(b.openblas_threads)))
  line(out, string.format("- PyTorch %s (Debian python3-torch %s), NumPy %s, Python %s; %s (Debian %s).",
    tostring(tw.torch), tostring(env.packages.python3_torch), tostring(tw.numpy), tostring(tw.python),
    tostring(lw.lua), tostring(env.packages.lua)))
  line(out, string.format("- CPU pressure (Linux PSI, share of the last 10 s some task waited for a CPU): %s%% "
    .. "at the start, %s%% at the end; the machine is shared.", M.num(env.cpu_pressure_start),
    M.num(env.cpu_pressure_end)))
  line(out)
end

local function main_table(out, doc)
  line(out, "| model | arch | lvae ms | (min) | PyTorch ms | (min) | PyTorch / lvae | force evals | "
    .. "lvae RSS MiB | PyTorch RSS MiB | PyTorch's best threads |")
  line(out, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
  for _, r in ipairs(doc.rows) do
    line(out, string.format("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |", r.title, r.arch,
      M.num(r.lvae_ms), M.num(r.lvae_min_ms), M.num(r.torch_ms), M.num(r.torch_min_ms), M.num(r.speedup),
      int(r.grad_evals), M.num(r.lvae_rss_mib), M.num(r.torch_rss_mib), threads_label(r.torch_threads)))
  end
  line(out)
end

local function settings_table(out, doc)
  line(out, "Every setting's median ms per step (the minimum in brackets):")
  line(out)
  local first = doc.rows[1]
  local head, rule = { "| model | arch" }, { "|---|---" }
  for _, s in ipairs(first.lvae_settings) do head[#head + 1] = s.label; rule[#rule + 1] = "---:" end
  for _, s in ipairs(first.torch_settings) do head[#head + 1] = s.label; rule[#rule + 1] = "---:" end
  line(out, table.concat(head, " | ") .. " |")
  line(out, table.concat(rule, "|") .. "|")
  for _, r in ipairs(doc.rows) do
    local cells = { "| " .. r.title .. " | " .. r.arch }
    for _, list in ipairs({ r.lvae_settings, r.torch_settings }) do
      for _, s in ipairs(list) do
        cells[#cells + 1] = string.format("%s (%s)%s", M.num(s.median_ms), M.num(s.min_ms),
          s.dropped_after_round and " †" or "")
      end
    end
    line(out, table.concat(cells, " | ") .. " |")
  end
  line(out)
  line(out, "† dropped after a few rounds, its median over twice the best PyTorch setting's (its figures are "
    .. "from those rounds).")
  line(out)
end

--- Issue 12's targets: PyTorch / lvae at least 1.5 on every mlp row and
-- 1.3 on every conv row, the mlp VAE step at 60% of the GEMM roof or
-- more, and lvae's peak memory at most PyTorch's on every row.
M.TARGET_SPEEDUP = { mlp = 1.5, conv = 1.3 }
M.TARGET_VAE_ROOF = 0.6

--- The rows and checks that miss a target: a list of strings.
function M.missed_targets(doc)
  local missed = {}
  for _, r in ipairs(doc.rows) do
    local want = M.TARGET_SPEEDUP[r.arch]
    if want and r.speedup and r.speedup < want then
      missed[#missed + 1] = string.format("%s, %s: PyTorch / lvae %s (target %s)", r.title, r.arch,
        M.num(r.speedup), string.format("%g", want))
    end
    if r.lvae_rss_mib and r.torch_rss_mib and r.lvae_rss_mib > r.torch_rss_mib then
      missed[#missed + 1] = string.format("%s, %s: lvae's peak memory %s MiB above PyTorch's %s MiB",
        r.title, r.arch, M.num(r.lvae_rss_mib), M.num(r.torch_rss_mib))
    end
    if r.arch == "mlp" and r.model == "vae" and r.roofline and r.roofline.lvae.fraction
       and r.roofline.lvae.fraction < M.TARGET_VAE_ROOF then
      missed[#missed + 1] = string.format("VAE, mlp: %s of the GEMM roof (target %s)",
        pct(r.roofline.lvae.fraction), pct(M.TARGET_VAE_ROOF))
    end
  end
  return missed
end

local function targets_section(out, doc)
  line(out, "## Against the targets")
  line(out)
  line(out, "Issue 12 asks for every mlp row at least 1.5× PyTorch's throughput and every conv row 1.3×, "
    .. "the mlp VAE step at 60% of the GEMM roof or more, and lvae's peak memory at most PyTorch's on every row.")
  line(out)
  local missed = M.missed_targets(doc)
  if #missed == 0 then
    line(out, "In this run every row meets its target.")
  else
    line(out, "In this run these miss it:")
    line(out)
    for _, m in ipairs(missed) do line(out, "- " .. m) end
  end
  line(out)
end

local function roofline_table(out, doc)
  local any = false
  for _, r in ipairs(doc.rows) do any = any or r.roofline ~= nil end
  if not any then return end
  line(out, "## Roofline (mlp rows)")
  line(out)
  line(out, "| model | GEMM GFLOP / step | (torch.profiler) | roof GFLOP/s | lvae GFLOP/s | lvae % of roof | "
    .. "PyTorch GFLOP/s | PyTorch % of roof |")
  line(out, "|---|---:|---:|---:|---:|---:|---:|---:|")
  for _, r in ipairs(doc.rows) do
    local f = r.roofline
    if f then
      line(out, string.format("| %s | %s | %s | %s | %s | %s | %s | %s |", r.title, M.num(f.counted_gflop),
        M.num(f.torch_profiled_gflop), M.num(f.lvae.roof_gflops), M.num(f.lvae.gflops), pct(f.lvae.fraction),
        M.num(f.torch.gflops), pct(f.torch.fraction)))
    end
  end
  line(out)
  line(out, "The GEMM flops of a step are counted from the shapes (bench/peers/flops.lua): a Linear layer "
    .. "in → out on N rows runs GEMMs of 2·N·in·out flops of three shapes (forward y = x Wᵀ, the input's "
    .. "gradient dy W, the weight's gradient dyᵀ x). A decoder point used for its value only costs one of each; "
    .. "a force evaluation (forward, backward to z, and the loss's reverse pass through both) two of each; "
    .. "each of Euler's d Hessian-vector products per step two of each less one; the encoder one of each (no "
    .. "input gradient for its first layer). The column torch.profiler is PyTorch's own count of its "
    .. "mm/addmm flops in one step, a check of the count. The roof is the time those GEMMs take in "
    .. "OpenBLAS's sgemm at each shape on its own (bench/blas_ref in the same run, the faster of 1 and 2 "
    .. "threads); % of roof is that time over the measured step: the share of the step that GEMMs at "
    .. "OpenBLAS's speed would fill. The rest is everything else (elementwise work, the tape, allocation, "
    .. "the GEMMs' own slowdown on cold caches).")
  line(out)
end

local function agreement_table(out, doc)
  line(out, "## Agreement, checked before timing")
  line(out)
  local t = doc.tolerances
  local function tol(dtype)
    local parts = {}
    for _, kind in ipairs(M.KINDS) do parts[#parts + 1] = M.sci(t[dtype][kind]) end
    return table.concat(parts, " / ")
  end
  line(out, string.format("Both sides start from the same weights and the same noise (lvae's draws of ε_z, "
    .. "ε_ρ and every step's ξ, in lvae's order, handed to PyTorch) and take two training steps, in f64 (batch "
    .. "%d: the same mathematics) and in f32 (batch 100, as timed). The worst relative error over the row of: "
    .. "the objective per datapoint, at the start and after the two steps (max |Δ| / max |PyTorch|); the "
    .. "gradient of every parameter tensor (max |Δ| / max |PyTorch| per tensor); each side's two Adamax "
    .. "updates against SPEC §6.2's formula applied in f64 to that side's own gradients (‖Δ‖₂ / ‖formula‖₂ "
    .. "per tensor; in f32 the parameters' own rounding weighs, half an ulp of the output bias −1.013 being "
    .. "1.2e-4 of an update of lr); the two sides' updates θ_t − θ_0 against each other (‖Δ‖₂ / ‖PyTorch‖₂ "
    .. "per tensor). In f32 the last is taken over the elements whose gradient is at least 100 ε = 1e-5 on "
    .. "both sides: near |g| = ε the update lr·g/(|g| + ε) turns the rounding of g into a change of order lr "
    .. "(the formula check covers those elements); and the gradients and updates are compared across the "
    .. "sides at the first step only, since those few elements leave the parameters apart by up to lr and the "
    .. "second gradients are then taken at different points (f64 compares both steps). Tolerances "
    .. "(objective / gradient / adamax / update): f64 %s, f32 %s; the force evaluations per step must be "
    .. "equal. A row outside them stops the run.",
    doc.settings.f64_check_batch, tol("f64"), tol("f32")))
  line(out)
  local head, rule = { "| model | arch" }, { "|---|---" }
  for _, dtype in ipairs({ "f64", "f32" }) do
    for _, kind in ipairs(M.KINDS) do head[#head + 1] = dtype .. " " .. kind; rule[#rule + 1] = "---:" end
  end
  head[#head + 1] = "f32 update: elements left out"
  rule[#rule + 1] = "---:"
  head[#head + 1] = "force evals (lvae / PyTorch)"
  rule[#rule + 1] = "---:"
  line(out, table.concat(head, " | ") .. " |")
  line(out, table.concat(rule, "|") .. "|")
  for _, r in ipairs(doc.rows) do
    local c = r.check
    local cells = { "| " .. r.title .. " | " .. r.arch }
    for _, dtype in ipairs({ "f64", "f32" }) do
      for _, kind in ipairs(M.KINDS) do
        local w = c[dtype].worst[kind]
        cells[#cells + 1] = M.sci(w and w.error)
      end
    end
    cells[#cells + 1] = string.format("%s%%", M.num(100 * (c.f32.update_left_out or 0), 2))
    cells[#cells + 1] = string.format("%s / %s", int(c.f32.grad_evals.lvae), int(c.f32.grad_evals.torch))
    line(out, table.concat(cells, " | ") .. " |")
  end
  line(out)
end

--- BENCHMARKS.md.
--- bench/peers/NOTES.md's text (trimmed), or nil when there is none.
function M.read_notes(root)
  local f = io.open((root or ".") .. "/bench/peers/NOTES.md", "r")
  if not f then return nil end
  local text = f:read("a"):gsub("^%s+", ""):gsub("%s+$", "")
  f:close()
  return text ~= "" and text or nil
end

function M.markdown(doc)
  local out = {}
  line(out, "# lvae against PyTorch: one training step of every SPEC §6.2 model")
  line(out)
  line(out, string.format("Generated by `%s`%s on %s in %.0f s; the figures are also in "
    .. "`bench/results/%s.json`.%s", doc.command, doc.full and " (which runs `./lvae bench/peer.lua`)" or "",
    doc.date, doc.seconds, doc.full and "peer" or "peer-partial",
    doc.quick and " **A --quick run: short rounds, not figures to quote.**" or ""))
  line(out)
  line(out, "A step is scripts/images.lua's: the objective (`model:elbo(x)`, or `lv.estimators.iwae(model, x, 5)` "
    .. "for IWAE), its gradient and the Adamax update (lr 5e-4, ε 1e-7 outside the max, SPEC §6.2), batch 100, "
    .. "f32, d = 64, K = 5 (Euler d = 8). PyTorch's (bench/peers/torch_models.py) is written independently: "
    .. "the same objective, `loss.backward()`, and the same Adamax in `torch._foreach` ops; forces by "
    .. "`torch.autograd.grad(U.sum(), z, create_graph=True)`. Times are ms per step: the median (and the "
    .. "minimum) over rounds that alternate between an lvae worker and PyTorch workers kept alive side by "
    .. "side, each round's sample the mean over about 0.5 s of steps, so that a change of the machine's load "
    .. "falls on both; each sample starts after about 0.15 s of untimed steps, by which time the previous "
    .. "worker's spinning OpenBLAS threads have gone to sleep. PyTorch / lvae above 1: lvae is faster. RSS is each worker's peak resident memory "
    .. "(VmHWM) for that row alone (fresh processes per row).")
  line(out)
  line(out, "## One training step")
  line(out)
  main_table(out, doc)
  local lo, hi
  for _, r in ipairs(doc.rows) do
    local w = r.cpu_wait_share
    if w then lo, hi = math.min(lo or w, w), math.max(hi or w, w) end
  end
  if lo then
    line(out, string.format("While the rounds ran, some task was kept waiting for a CPU %s%%–%s%% of the time, "
      .. "depending on the row (Linux PSI; `cpu_wait_share` per row in the JSON): the benchmark's own "
      .. "threads (one worker's pools spinning down while the next one runs) and whatever else shared the machine.",
      M.num(100 * lo, 2), M.num(100 * hi, 2)))
    line(out)
  end
  local r1 = doc.rows[1]
  if r1 then
    line(out, string.format("Resident memory just after loading, before any model: lvae %s MiB (`require \"lvae\"`), "
      .. "PyTorch %s MiB (`import torch`); the RSS columns include it.", M.num(r1.lvae_import_rss_mib),
      M.num(r1.torch_import_rss_mib)))
    line(out)
    settings_table(out, doc)
  end
  roofline_table(out, doc)
  targets_section(out, doc)
  if doc.notes then
    -- bench/peers/NOTES.md: what the figures alone do not say (profiles of
    -- rows below target, measurements made by hand), kept beside the code
    line(out, "## Notes")
    line(out)
    line(out, doc.notes)
    line(out)
  end
  agreement_table(out, doc)
  env_lines(out, doc)
  return table.concat(out, "\n")
end

return M
