--- bench/peers/rows.lua -- the rows of `make bench-peer`: which models, with
-- which settings, and the --rows selection of a development run.
--
--   local rows = require "bench.peers.rows"
--   for _, r in ipairs(rows.select("mlp:vae,conv:qsl")) do ... end
--   local r = rows.find("conv:hvae-free")
--
-- A row is {id = "mlp:qsl", arch = "mlp", model = "qsl", title, d, K,
-- tempering, friction, init_temperature, samples, batch}: SPEC §6.2's
-- models at scripts/images.lua's defaults (d = 64, batch 100, friction
-- 0.5, unit initial temperature) with K = 5, and IWAE's k = 5 importance
-- samples. Euler runs at d = 8, SPEC's "small d": its Hessian costs d
-- reverse passes per step (and training through it third derivatives of
-- the decoder). On the conv architecture Euler runs at K = 1: at K = 5 a
-- step takes 6-9 s on either side here, and its rounds alone would take
-- about five minutes of the run. Pure Lua: no toolkit needed (the spec
-- tests it).

local M = {}

M.ARCHS = { "mlp", "conv" }
M.BATCH = 100
M.D = 64
M.K = 5

-- In table order: the order of the report.
-- K: the flow steps (0: no flow), a number or {arch = K}.
M.MODELS = {
  { name = "vae", model = "vae", label = "VAE" },
  { name = "iwae", model = "iwae", label = "IWAE (k = 5)", samples = 5 },
  { name = "planar", model = "planar", label = "planar NF", K = M.K },
  { name = "hvae-none", model = "hvae", tempering = "none", label = "HVAE leapfrog, tempering none", K = M.K },
  { name = "hvae-fixed", model = "hvae", tempering = "fixed", label = "HVAE leapfrog, tempering fixed", K = M.K },
  { name = "hvae-free", model = "hvae", tempering = "free", label = "HVAE leapfrog, tempering free", K = M.K },
  { name = "qsl", model = "qsl", label = "qsl", K = M.K },
  { name = "qsl2", model = "qsl2", label = "qsl2", K = M.K },
  { name = "euler", model = "euler", label = "Euler", K = { mlp = M.K, conv = 1 }, d = 8 },
}

local function make_row(arch, m)
  local K = type(m.K) == "table" and m.K[arch] or m.K or 0
  local d = m.d or M.D
  local title = m.label .. (K > 0 and ", K = " .. K or "") .. (d ~= M.D and ", d = " .. d or "")
  return {
    id = arch .. ":" .. m.name, arch = arch, name = m.name, model = m.model, title = title,
    d = d, K = K, tempering = m.tempering or "none", friction = 0.5,
    init_temperature = "unit", samples = m.samples or 1, batch = M.BATCH,
  }
end

--- Every row: each arch, each model, arch by arch.
function M.all()
  local out = {}
  for _, arch in ipairs(M.ARCHS) do
    for _, m in ipairs(M.MODELS) do out[#out + 1] = make_row(arch, m) end
  end
  return out
end

--- The row with this id ("mlp:qsl"), or nil and a message listing the ids.
function M.find(id)
  for _, r in ipairs(M.all()) do
    if r.id == id then return r end
  end
  return nil, string.format("unknown row '%s' (rows are ARCH:MODEL with ARCH %s and MODEL %s)",
    tostring(id), table.concat(M.ARCHS, " or "), M.model_names())
end

function M.model_names()
  local names = {}
  for _, m in ipairs(M.MODELS) do names[#names + 1] = m.name end
  return table.concat(names, ", ")
end

--- The rows a --rows list names, in report order, each once. An item is
-- ARCH:MODEL, ARCH (every model of it) or MODEL (both archs); nil or ""
-- is every row. Returns the rows, or nil and a message naming the item
-- that matched nothing.
function M.select(spec)
  local all = M.all()
  if spec == nil or spec == "" then return all end
  local wanted = {}
  for item in (spec .. ","):gmatch("([^,]*),") do
    item = item:match("^%s*(.-)%s*$")
    if item ~= "" then
      local hit = false
      for _, r in ipairs(all) do
        if r.id == item or r.arch == item or r.name == item then
          wanted[r.id], hit = true, true
        end
      end
      if not hit then
        return nil, string.format("--rows: '%s' names no row (give ARCH:MODEL, ARCH or MODEL; ARCH is %s, MODEL one of %s)",
          item, table.concat(M.ARCHS, " or "), M.model_names())
      end
    end
  end
  local out = {}
  for _, r in ipairs(all) do
    if wanted[r.id] then out[#out + 1] = r end
  end
  return out
end

--- scripts/images.lua's options for this row, as make_flow reads them.
function M.images_config(row)
  return { model = row.model, d = row.d, K = row.K, tempering = row.tempering,
           friction = row.friction, init_temperature = row.init_temperature }
end

return M
