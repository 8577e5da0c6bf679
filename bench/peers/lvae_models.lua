--- bench/peers/lvae_models.lua -- lvae's side of a bench-peer row: the
-- model scripts/images.lua trains, its training step, and what the
-- PyTorch side needs to rebuild it (parameter names, the flow's
-- parametrisation, the noise in the order lvae draws it).
--
--   local models = require "bench.peers.lvae_models"
--   local m = models.build(row, "f32")       -- m.model, m.params, m.names, m.flow
--   local objective = models.objective(m, x) -- [B], as images.lua's step
--   local opt = models.optimizer(m)          -- images.lua's Adamax
--
-- The architectures and flows are images.lua's own functions (mlp, conv,
-- make_flow), which it exports (`architectures`, `make_flow`): a copy here
-- could drift from what the experiment trains. An f64 copy for the exact check is built by the same functions
-- with dtype = "f64" given to every layer and integrator they make (the
-- constructors are wrapped while they run; nothing of lvae is changed).

local lv = require "lvae"
local nn = require "lvae.nn"
local optim = require "lvae.optim"
local rows = require "bench.peers.rows"

local M = {}

-- SPEC §6.2's output bias (mean logit of the image means on Fashion-MNIST),
-- which images.lua computes from the data; the benchmark has no data set.
M.OUTPUT_BIAS = -1.013
M.LR, M.EPS, M.BETAS = 5e-4, 1e-7, { 0.9, 0.999 }

local images

--- images.lua's mlp, conv and make_flow.
function M.images_functions(root)
  if images then return images end
  local path = (root or ".") .. "/scripts/images.lua"
  local experiment = dofile(path)
  local archs = experiment.architectures or {}
  local found = { mlp = archs.mlp, conv = archs.conv, make_flow = experiment.make_flow }
  for _, name in ipairs({ "mlp", "conv", "make_flow" }) do
    if type(found[name]) ~= "function" then
      error(string.format("bench-peer: %s no longer exports '%s' (architectures.mlp, "
        .. "architectures.conv, make_flow); bench/peers/lvae_models.lua builds its models "
        .. "with them", path, name), 0)
    end
  end
  images = { mlp = found.mlp, conv = found.conv, make_flow = found.make_flow }
  return images
end

-- Runs fn() with opts.dtype = dtype given to every nn layer and integrator
-- constructed meanwhile.
local function with_dtype(dtype, fn)
  if dtype == "f32" then return fn() end
  local saved_init, saved_flows = {}, {}
  local layers = { [nn.Linear] = 3, [nn.Conv2d] = 4, [nn.ConvTranspose2d] = 4 }
  for class, n_args in pairs(layers) do
    local init = class.init
    saved_init[class] = init
    class.init = function(self, ...)
      local args = table.pack(...)
      local opts = {}
      for k, v in pairs(args[n_args] or {}) do opts[k] = v end
      opts.dtype = dtype
      args[n_args] = opts
      return init(self, table.unpack(args, 1, n_args))
    end
  end
  local makers = { { lv.integrators, "leapfrog" }, { lv.integrators, "qsl" },
                   { lv.integrators, "qsl2" }, { lv.integrators, "euler" }, { lv.flows, "planar" } }
  for i, m in ipairs(makers) do
    local tbl, key = m[1], m[2]
    local make = tbl[key]
    saved_flows[i] = make
    tbl[key] = function(opts)
      local o = {}
      for k, v in pairs(opts) do o[k] = v end
      o.dtype = dtype
      return make(o)
    end
  end
  local results = table.pack(pcall(fn))
  for class, init in pairs(saved_init) do class.init = init end
  for i, m in ipairs(makers) do m[1][m[2]] = saved_flows[i] end
  if not results[1] then error(results[2], 0) end
  return table.unpack(results, 2, results.n)
end

-- The flow's tensors, by name, in the order flow:parameters() lists the
-- learned ones (src/lua_integrators.c: named_tensors).
local FLOW_TENSORS = { "step_logit", "friction", "temper", "planar_u", "planar_w", "planar_b" }

-- Names of flow:parameters(), matched by value against flow:state_dict()
-- (which names every tensor, learned or not).
local function flow_parameter_names(flow)
  local state, names, next_name = flow:state_dict(), {}, 1
  for i, p in ipairs(flow:parameters()) do
    local found
    while next_name <= #FLOW_TENSORS and not found do
      local name = FLOW_TENSORS[next_name]
      local t = state[name]
      next_name = next_name + 1
      if t and table.concat(t:size(), ",") == table.concat(p:size(), ",")
          and lv.no_grad(function() return (t - p):abs():max():item() end) == 0 then
        found = name
      end
    end
    if not found then error("bench-peer: cannot name the flow's parameter " .. i, 0) end
    names[i] = found
  end
  return names
end

-- How the flow turns its raw tensors into h, gamma, T0: read off the public
-- API and checked, so that PyTorch is told, not left to assume.
local function flow_description(flow, row, param_names)
  local state = flow:state_dict()
  local learned = {}
  for _, name in ipairs(param_names) do learned[name] = true end
  local desc = { kind = flow:kind(), tempering = row.tempering, K = row.K, dim = flow:dim(),
                 has_momentum = flow:has_momentum(), learned = learned }
  local text = tostring(flow)
  desc.noise = text:find("noise: on", 1, true) ~= nil
  if state.step_logit then
    local h = flow:step_size():detach()
    local a = state.step_logit
    -- h = max_step * sigmoid(a): max_step from one entry, then checked on all
    local max_step = h:reshape({ -1 })[1]:item() / a:sigmoid():reshape({ -1 })[1]:item()
    max_step = tonumber(string.format("%.6g", max_step))
    local err = (h - a:sigmoid() * max_step):abs():max():item()
    if err > 1e-6 then error("bench-peer: the step size is not max_step * sigmoid(step_logit)", 0) end
    desc.max_step = max_step
  end
  if state.friction and desc.kind ~= "leapfrog" then
    local gamma = flow:friction():detach()
    local softplus = learned.friction
    local expect = softplus and state.friction:softplus() or state.friction
    if (gamma - expect):abs():max():item() > 1e-6 then
      error("bench-peer: the friction is not " .. (softplus and "softplus(c)" or "c"), 0)
    end
    desc.friction = softplus and "softplus" or "fixed"
  end
  desc.init_temperature = row.init_temperature
  return desc
end

--- The row's model at dtype "f32" (what images.lua trains) or "f64":
-- {model, flow, params (model:parameters()), names (one per param:
-- "encoder.1.weight", "decoder.5.bias", "flow.step_logit"), flow_desc,
-- row}. Weights come from lv.manual_seed(seed) (default 1).
function M.build(row, dtype, seed, root)
  local fns = M.images_functions(root)
  lv.manual_seed(seed or 1)
  local enc, dec, out, flow = with_dtype(dtype, function()
    local e, d, o = (row.arch == "conv" and fns.conv or fns.mlp)(row.d)
    return e, d, o, fns.make_flow(rows.images_config(row))
  end)
  lv.no_grad(function() out.bias:fill_(M.OUTPUT_BIAS) end)
  local model = lv.models.FlowVAE{ encoder = enc, decoder = dec, likelihood = "bernoulli",
                                   flow = flow, K = flow and row.K or nil }
  local params, names = model:parameters(), {}
  for _, np in ipairs(enc:named_parameters()) do names[#names + 1] = "encoder." .. np.name end
  for _, np in ipairs(dec:named_parameters()) do names[#names + 1] = "decoder." .. np.name end
  local flow_names = flow and flow_parameter_names(flow) or {}
  for _, name in ipairs(flow_names) do names[#names + 1] = "flow." .. name end
  if #names ~= #params then
    error(string.format("bench-peer: %s: %d named parameters, model:parameters() has %d",
      row.id, #names, #params), 0)
  end
  for i, p in ipairs(params) do
    if p:dtype() ~= dtype then
      error(string.format("bench-peer: %s: parameter %s is %s, not %s", row.id, names[i], p:dtype(), dtype), 0)
    end
  end
  return { model = model, flow = flow, params = params, names = names, row = row, dtype = dtype,
           flow_desc = flow and flow_description(flow, row, flow_names) or nil }
end

--- The objective per datapoint [B], as images.lua's step computes it.
function M.objective(m, x)
  if m.row.model == "iwae" then return lv.estimators.iwae(m.model, x, m.row.samples) end
  return m.model:elbo(x)
end

--- images.lua's optimizer (its betas are Adamax's defaults, given here so
-- that the check can state them).
function M.optimizer(m)
  return optim.Adamax(m.model:parameters(), { lr = M.LR, eps = M.EPS, betas = M.BETAS })
end

--- One training step, images.lua's: returns the loss.
function M.step(m, opt, x)
  return opt:step(-M.objective(m, x):mean())
end

--- The training batch: binary x [B, 784] (the step's cost does not depend
-- on the values), from lv.manual_seed(seed).
function M.batch(row, dtype, seed)
  lv.manual_seed(seed or 2)
  return lv.bernoulli({ row.batch, 784 }, 0.3, dtype)
end

--- The standard normal draws one objective takes from the default
-- generator, in lvae's order (models.lua, integrators.c): eps_z [S, B, d]
-- for z0; then, with momentum, eps_rho [S B, d] for rho0 = sqrt(T0)
-- eps_rho; then each step's xi_k [S B, d] when the flow is stochastic.
-- Returns a list of {name, tensor}.
function M.noise(m, seed)
  local row, dt = m.row, m.dtype
  local N = row.samples * row.batch
  lv.manual_seed(seed)
  local draws = { { "eps_z", lv.randn({ row.samples, row.batch, row.d }, dt) } }
  local desc = m.flow_desc
  if desc and desc.has_momentum then draws[#draws + 1] = { "eps_rho", lv.randn({ N, row.d }, dt) } end
  if desc and desc.noise then
    for k = 1, row.K do draws[#draws + 1] = { "xi_" .. k, lv.randn({ N, row.d }, dt) } end
  end
  return draws
end

--- Does the objective with its noise from lv.Generator(seed), passed as
-- `gen` (the route for the encoder's eps, rho0 and the flow's xi), give
-- the numbers the default generator seeded with seed gave (`expected`),
-- drawing as many (`offset`)? {same = bool, max_diff, offset_gen,
-- offset_default}. IWAE through log_weight: lv.estimators.iwae takes no
-- generator.
function M.generator_agrees(m, x, seed, expected, offset)
  local gen = lv.Generator(seed)
  local got
  if m.row.model == "iwae" then
    got = m.model:log_weight(x, m.row.samples, { gen = gen }):logsumexp(1) - math.log(m.row.samples)
  else
    got = m.model:elbo(x, { gen = gen })
  end
  local diff = lv.no_grad(function() return (got - expected):abs():max():item() end)
  local used = gen:get_state().offset
  return { same = diff == 0 and used == offset, max_diff = diff, offset_gen = used, offset_default = offset }
end

return M
