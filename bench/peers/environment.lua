--- bench/peers/environment.lua -- what bench-peer's figures were measured
-- on and with: the machine (bench/lib.lua's lib.machine), the commit, the
-- OpenBLAS both sides load (its kernel, configuration, version and thread
-- counts, as bench/blas_ref and PyTorch's worker report them), the Debian
-- package versions, PyTorch's.
--
--   local environment = require "bench.peers.environment"
--   local env = environment.collect(lib, root)
--   environment.add_worker(env, "torch", ready_reply)
--
-- OPENBLAS_CORETYPE and the other OPENBLAS_* variables are recorded as
-- found and never changed: they pick the BLAS kernel, so figures measured
-- with other values do not compare.

local M = {}

local function first_line(lib, cmd) return (lib.run(cmd)[1]) end

--- dpkg's version of a package, or nil.
local function package_version(lib, name)
  local v = first_line(lib, "dpkg-query -W -f='${Version}' " .. name .. " 2>/dev/null")
  return v ~= "" and v or nil
end

--- bench/blas_ref's `info` lines: {omp_threads, openblas_threads,
-- openblas_corename, openblas_config}, or nil and why.
function M.blas_ref_info(lib, blas_ref)
  local lines, ok = lib.run(lib.shell_quote(blas_ref) .. " --min-time 0.001 --repeats 1 gemm 1 1 1 2>&1")
  if not ok then return nil, table.concat(lines, "\n") end
  local info = {}
  for _, l in ipairs(lines) do
    local key, value = l:match("^info (%S+) (.*)$")
    if key then info[key] = tonumber(value) or value end
  end
  return info
end

--- The commit and whether the tree differs from it, overall and in the
-- core (src/, lua/): figures from a modified core are not the commit's.
function M.git(lib, root)
  local q = lib.shell_quote(root)
  local commit = first_line(lib, "git -C " .. q .. " rev-parse HEAD 2>/dev/null")
  local short = first_line(lib, "git -C " .. q .. " rev-parse --short HEAD 2>/dev/null")
  local dirty = lib.run("git -C " .. q .. " status --porcelain --untracked-files=no 2>/dev/null")
  local core = lib.run("git -C " .. q .. " status --porcelain -- src lua 2>/dev/null")
  return { commit = commit, short = short, dirty = #dirty > 0, core_modified = #core > 0 }
end

function M.collect(lib, root, blas_ref)
  local env = { machine = lib.machine(), git = M.git(lib, root) }
  env.openblas_env = {}
  for _, k in ipairs({ "OPENBLAS_CORETYPE", "OPENBLAS_NUM_THREADS", "OPENBLAS_L2_SIZE",
                       "OPENBLAS_VERBOSE", "OMP_NUM_THREADS", "GOMP_SPINCOUNT", "OMP_WAIT_POLICY" }) do
    env.openblas_env[k] = os.getenv(k)
  end
  env.blas_ref = M.blas_ref_info(lib, blas_ref)
  env.packages = {
    libopenblas = package_version(lib, "libopenblas0-pthread") or package_version(lib, "libopenblas0"),
    python3_torch = package_version(lib, "python3-torch"),
    python3_numpy = package_version(lib, "python3-numpy"),
    lua = package_version(lib, "lua5.4"),
  }
  env.cpu_pressure_start = lib.cpu_pressure()
  return env
end

--- Records what a worker's ready line says (versions, threads, the
-- OpenBLAS it loaded), once per side.
function M.add_worker(env, side, ready)
  env.workers = env.workers or {}
  if env.workers[side] then return end
  local w = {}
  for k, v in pairs(ready) do
    if k ~= "ready" and k ~= "pid" and k ~= "rss_before_import_kib" and k ~= "rss_after_import_kib"
        and k ~= "openblas_num_threads_env" then
      w[k] = v
    end
  end
  env.workers[side] = w
end

return M
