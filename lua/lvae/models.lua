--- lvae.models: the latent-variable models whose bounds the estimators
-- compute -- SPEC §2's flow ELBO over a VAE, and SPEC §5's exact
-- linear-Gaussian reference.
--
--   local model = models.FlowVAE{encoder = enc, decoder = dec,
--                                likelihood = "bernoulli", flow = it, K = 5}
--   local lw = model:log_weight(x, S)   -- [S, B] per-sample log w
--   local elbo = model:elbo(x)          -- [B], differentiable
--   local lg = models.LinearGaussian{W = W, b = b, sigma = 0.5}
--   lg:log_evidence(x)                  -- [B], exact
--
-- Shape legend: B = datapoints, S = samples per datapoint, N = S B,
-- d = latent dim, D = values per datapoint (x is [B, ...] with D values
-- after the batch dim; the decoder's output is read the same way).
--
-- One log weight (SPEC §2): with z0 = mu + sigma eps_z from the proposal
-- q0, rho0 = sqrt(T0) eps_rho from the flow, and the flow's
-- (zK, rhoK, L = Σ_k log|det|),
--
--   log w = log p(x|zK) + log N(zK; 0, I) + log N(rhoK; 0, I)
--           - log q0(z0) - log N(rho0; 0, T0 I) + L.
--
-- Without a flow zK = z0 and the rho terms and L vanish (the plain VAE);
-- a flow without momentum (planar, overdamped Euler) drops the rho terms.
-- With analytic_entropy the two subtracted densities are replaced by
-- their expectations, Σ_j log sigma_j + d/2 log(2 pi e) + 1/2 Σ_j
-- log(2 pi e T0_j): a lower-variance training objective with the same
-- mean, but no longer an importance weight.
--
-- Samples are laid out sample-major: row s B + b of a [N, ...] tensor is
-- sample s of datapoint b, so a [N] result reshapes to [S, B]. The flow
-- sees z [N, d] and the potential U(z) = -log p(x|z) - log N(z; 0, I) [N]
-- (x repeated S times by broadcasting, never copied). Its noise xi is its
-- own business, drawn afresh for every row.
--
-- A flow is anything with the integrator interface of lv.integrators:
-- flow(z0, rho0, U, K, {create_graph}) -> zK, rhoK, L, n_grad_evals,
-- stats; init_momentum(N, K [, gen]); temperature0(K); dim();
-- has_momentum(); parameters().
--
-- Not here: the estimators (lvae.estimators), training loops, other
-- priors than N(0, I), amortised flow parameters.

local lv = require "lvae.base"

local M = {}

local LOG_2PI = math.log(2 * math.pi)
local HALF_LOG_2PI = 0.5 * LOG_2PI
local HALF_LOG_2PIE = 0.5 * (LOG_2PI + 1)

---- argument checks ---------------------------------------------------------------

local check = require "lvae.check"
local fail, typename, shape_string = check.fail, check.typename, check.shape
local callable, check_count = check.callable, check.count

local FLOW_METHODS = { "flow", "init_momentum", "temperature0", "has_momentum", "parameters" }

local function check_flow(where, flow, K)
  if flow == nil then
    if K ~= nil and K ~= 0 then fail(where, "K is given without a flow (K counts the flow's steps)") end
    return nil, 0
  end
  for _, name in ipairs(FLOW_METHODS) do
    if not check.method(flow, name) then
      fail(where, "flow must be an integrator (lv.integrators.*, lv.flows.*): it has no method '%s'",
           name)
    end
  end
  if K == nil then fail(where, "K (the number of flow steps) is required with a flow") end
  if math.type(K) == "float" and K == math.floor(K) then K = math.tointeger(K) end
  if math.type(K) ~= "integer" or K < 1 then
    fail(where, "K must be an integer >= 1 (got %s)", tostring(K))
  end
  return flow, K
end

--- The latent dim of a flow, when it says (integrators have :dim()).
local function flow_dim(flow)
  local get = check.method(flow, "dim")
  if get then
    local d = get(flow)
    if math.type(d) == "integer" then return d end
  end
  local ok, d = pcall(function() return flow.dim end)
  if ok and math.type(d) == "integer" then return d end
  return nil
end

---- densities ------------------------------------------------------------------------

--- Σ_j log N(z_j; 0, 1) over the last dim.
local function std_normal_log_prob(z)
  return (-0.5 * z:square() - HALF_LOG_2PI):sum(-1)
end

--- Σ_j log N(rho_j; 0, T0_j) over the last dim of rho [N, d], with T0
-- [d] or one value; and its expectation's negative (the entropy),
-- 1/2 Σ_j log(2 pi e T0_j).
local function momentum_log_prob(rho, T0, d)
  local log_T = T0:log()
  local sum_log_T = log_T:numel() == 1 and log_T:reshape({}) * d or log_T:sum()
  local lp = -0.5 * (rho:square() / T0):sum(-1) - 0.5 * sum_log_T - d * HALF_LOG_2PI
  local h = 0.5 * sum_log_T + d * HALF_LOG_2PIE
  return lp, h
end

---- the shared machinery ---------------------------------------------------------------

-- Every model below is a table whose class (FlowVAE, LinearGaussian)
-- holds Latent's methods and its own. A class supplies
--   self:_decode_log_lik(x2, z, S, B, where) -> log p(x|z) [N]
--        (x2 is x viewed [B, D], z is [N, d])
--   self:_propose(x, S, gen, where)          -> z0 [N, d], log q0(z0) [N],
--        and the expectation of -log q0 ([B] or a number)
local Latent = {}

local function class(name)
  -- Latent's methods are copied in (they are all defined above the first
  -- class), so that lv.help(model) lists them with the class's own.
  local C = {}
  for k, v in pairs(Latent) do C[k] = v end
  C.__index = C
  C.__name = "lvae.models." .. name
  C._name = name
  C.__tostring = function(self) return self:_describe() end
  return C
end

--- log p(x|z) for z [S, B, d] ([S, B]) or [B, d] ([B]).
function Latent:log_likelihood(x, z)
  local where = self._name .. ":log_likelihood"
  local B, D
  x, B, D = check.batch(where, x)
  if not lv.is_tensor(z) or typename(z) == "a freed tensor" or (z:dim() ~= 2 and z:dim() ~= 3) then
    fail(where, "z must be a tensor [S, B, d] or [B, d] (got %s)",
         typename(z) == "a tensor" and shape_string(z:size()) or typename(z))
  end
  local S = z:dim() == 3 and z:size(1) or 1
  local zb, d = z:size(z:dim() - 1), z:size(z:dim())
  if zb ~= B then fail(where, "z has %d datapoints, x has %d", zb, B) end
  self:_check_dim(where, d, "z")
  local ll = self:_decode_log_lik(x:reshape({ B, D }), z:reshape({ S * B, d }), S, B, where)
  return z:dim() == 3 and ll:reshape({ S, B }) or ll
end

--- Remembers the latent dim the first time it is seen, and checks it after.
function Latent:_check_dim(where, d, what)
  if self.dim == nil then
    self.dim = d
  elseif d ~= self.dim then
    if self.flow then
      fail(where, "%s has latent dim %d but the flow has dim %d", what, d, self.dim)
    end
    fail(where, "%s has latent dim %d but the model has dim %d", what, d, self.dim)
  end
end

--- U(z) = -log p(x|z) - log N(z; 0, I) for z [N, d]: the flow's potential.
function Latent:_potential(x2, z, S, B, where)
  return -(self:_decode_log_lik(x2, z, S, B, where) + std_normal_log_prob(z))
end

--- log w [S, B] of S samples per datapoint (SPEC §2).
-- opts: analytic_entropy (false), create_graph (default: whether grad
-- mode is on: the flow keeps its gradients on the tape so that the
-- bound can be trained through them), gen (a generator for eps_z, eps_rho
-- and the flow's noise: the same generator state gives the same bound).
function Latent:log_weight(x, S, opts)
  local where = self._name .. ":log_weight"
  local B, D
  x, B, D = check.batch(where, x)
  S = check_count(where, "S", S == nil and 1 or S)
  opts = check.options(where, opts, { "analytic_entropy", "create_graph", "gen" })
  local create_graph = opts.create_graph
  if create_graph == nil then create_graph = lv.is_grad_enabled() end
  local N, x2 = S * B, x:reshape({ B, D })

  local z0, log_q0, h_q0, flow_params = self:_propose(x, S, opts.gen, where)
  local d = z0:size(2)
  local zK, rhoK, logdet, log_r0, h_r0 = z0, nil, nil, nil, nil
  local flow, K = self.flow, self.K
  if flow then
    local rho0
    if flow:has_momentum() then
      if opts.gen then rho0 = flow:init_momentum(N, K, opts.gen) else rho0 = flow:init_momentum(N, K) end
      log_r0, h_r0 = momentum_log_prob(rho0, flow:temperature0(K), d)
    end
    local potential = function(z) return self:_potential(x2, z, S, B, where) end
    local n_grad, stats
    zK, rhoK, logdet, n_grad, stats = flow:flow(z0, rho0, potential, K, {
      create_graph = create_graph, params = self:_flow_params(flow_params, S, where), gen = opts.gen })
    self.grad_evals, self.flow_stats = n_grad, stats
  end

  -- -U(zK) = log p(x|zK) + log N(zK): the flow's last force evaluation
  -- already computed it when it ended at zK (flow stats.potential)
  local U_end = flow and self.flow_stats and self.flow_stats.potential
  local lw = U_end and -U_end or self:_decode_log_lik(x2, zK, S, B, where) + std_normal_log_prob(zK)
  if rhoK then lw = lw + std_normal_log_prob(rhoK) end
  if logdet then lw = lw + logdet end
  if opts.analytic_entropy then
    lw = lw:reshape({ S, B }) + h_q0
    if h_r0 then lw = lw + h_r0 end
    return lw
  end
  lw = lw - log_q0
  if log_r0 then lw = lw - log_r0 end
  return lw:reshape({ S, B })
end

--- The ELBO per datapoint [B]: the mean of log w over opts.samples
-- samples (1 by default); the other options are log_weight's.
function Latent:elbo(x, opts)
  local where = self._name .. ":elbo"
  opts = check.options(where, opts, { "samples", "analytic_entropy", "create_graph", "gen" })
  local S = check_count(where, "samples", opts.samples == nil and 1 or opts.samples)
  check.batch(where, x)
  return self:log_weight(x, S, { analytic_entropy = opts.analytic_entropy,
                                 create_graph = opts.create_graph, gen = opts.gen }):mean(1)
end

--- z0 = mu + sigma eps for an encoder's mu, sigma [B, d].
function Latent:_propose_encoder(x, S, gen, where)
  local mu, sigma, flow_params = self.encoder(x)
  if not lv.is_tensor(mu) or not lv.is_tensor(sigma) then
    fail(where, "the encoder must return two tensors mu, sigma [B, d] (got %s, %s)",
         typename(mu), typename(sigma))
  end
  local B = x:size(1)
  if mu:dim() ~= 2 or mu:size(1) ~= B or shape_string(mu:size()) ~= shape_string(sigma:size()) then
    fail(where, "the encoder must return mu and sigma of shape [%d, d] (got %s and %s)",
         B, shape_string(mu:size()), shape_string(sigma:size()))
  end
  local d = mu:size(2)
  self:_check_dim(where, d, "the encoder's mu")
  local eps = gen and lv.randn_batch({ S, B, d }, mu:dtype(), gen) or lv.randn_batch({ S, B, d }, mu:dtype())
  local z0 = (mu + sigma * eps):reshape({ S * B, d })
  local log_sigma = sigma:log()
  -- log N(z0; mu, sigma^2) with (z0 - mu) / sigma = eps exactly.
  local log_q0 = (-0.5 * eps:square() - log_sigma - HALF_LOG_2PI):sum(3):reshape({ S * B })
  local h_q0 = log_sigma:sum(2) + d * HALF_LOG_2PIE
  return z0, log_q0, h_q0, flow_params
end

--- An amortized flow's parameters from the encoder's third result
-- {u [B, K, d], w [B, K, d], b [B, K]}, repeated for S samples per
-- datapoint (sample-major rows, like z0); nil for other flows.
function Latent:_flow_params(params, S, where)
  local flow = self.flow
  if not (flow and flow.amortized and flow:amortized()) then return nil end
  if type(params) ~= "table" or not lv.is_tensor(params.u) or not lv.is_tensor(params.w)
      or not lv.is_tensor(params.b) then
    fail(where, "an amortized planar flow needs the encoder to return a third result "
         .. "{u = [B, K, d], w = [B, K, d], b = [B, K]} (got %s)", typename(params))
  end
  local function repeat_rows(t)
    local size = t:size()
    local wide = { S }
    for i = 1, #size do wide[i + 1] = size[i] end
    local rows = { S * size[1] }
    for i = 2, #size do rows[i] = size[i] end
    return t:unsqueeze(1):expand(wide):reshape(rows)
  end
  return { u = repeat_rows(params.u), w = repeat_rows(params.w), b = repeat_rows(params.b) }
end

--- The flow applied to z0 [B, d] (for sample/reconstruct): zK.
function Latent:_flow_only(x2, z0, B, where, flow_params)
  local flow, K = self.flow, self.K
  if not flow then return z0 end
  local rho0 = flow:has_momentum() and flow:init_momentum(B, K) or nil
  local potential = function(z) return self:_potential(x2, z, 1, B, where) end
  local zK = flow:flow(z0, rho0, potential, K, {
    create_graph = false, params = self:_flow_params(flow_params, 1, where) })
  return zK
end

--- The model's own parameters, then the encoder's, decoder's and flow's,
-- each once.
function Latent:parameters()
  local list, seen = {}, {}
  local function add(p)
    if lv.is_tensor(p) and p.is_leaf and p.needs_grad and not seen[p] then
      seen[p] = true
      list[#list + 1] = p
    end
  end
  for _, p in ipairs(self:_own_parameters()) do add(p) end
  local parts = { self.encoder, self.decoder, self.flow }     -- any may be nil
  for i = 1, 3 do
    local m = parts[i]
    local get = m ~= nil and check.method(m, "parameters")
    if get then
      for _, p in ipairs(get(m)) do add(p) end
    end
  end
  return list
end

---- FlowVAE --------------------------------------------------------------------------

local FlowVAE = class("FlowVAE")

local LIKELIHOODS = { bernoulli = true, gaussian = true }

--- FlowVAE{encoder, decoder, likelihood = "bernoulli" | "gaussian",
-- flow = nil, K, prior = "normal", x_dim, log_sigma_x = 0, dim, dtype}.
-- encoder(x) returns mu, sigma [B, d]; decoder(z) [N, d] returns
-- Bernoulli logits or a Gaussian mean with D values per row. The
-- Gaussian likelihood has a learned per-value log standard deviation
-- log_sigma_x [D] (x_dim = D is then required), owned by the model.
function M.FlowVAE(args)
  local where = "FlowVAE"
  args = check.table(where, "the argument", args)
  check.options(where, args, { "encoder", "decoder", "likelihood", "flow", "K", "prior",
                            "x_dim", "log_sigma_x", "dim", "dtype" })
  if not callable(args.encoder) then
    fail(where, "encoder must be a module or a function x -> mu, sigma (got %s)", typename(args.encoder))
  end
  if not callable(args.decoder) then
    fail(where, "decoder must be a module or a function z -> logits or mean (got %s)",
         typename(args.decoder))
  end
  local likelihood = args.likelihood or "bernoulli"
  if not LIKELIHOODS[likelihood] then
    fail(where, "unknown likelihood '%s' (known: bernoulli, gaussian)", tostring(likelihood))
  end
  local prior = args.prior or "normal"
  if prior ~= "normal" then fail(where, "unknown prior '%s' (known: normal)", tostring(prior)) end
  local flow, K = check_flow(where, args.flow, args.K)
  local self = setmetatable({ encoder = args.encoder, decoder = args.decoder,
                              likelihood = likelihood, prior = prior, flow = flow, K = K,
                              dtype = args.dtype or "f32" }, FlowVAE)
  if args.dim ~= nil then self.dim = check_count(where, "dim", args.dim) end
  if flow then
    local d = flow_dim(flow)
    if d and self.dim and d ~= self.dim then
      fail(where, "dim is %d but the flow has dim %d", self.dim, d)
    end
    self.dim = self.dim or d
  end
  if likelihood == "gaussian" then
    if args.x_dim == nil then
      fail(where, "the gaussian likelihood needs x_dim (the values per datapoint) for its log_sigma_x")
    end
    local D = check_count(where, "x_dim", args.x_dim)
    local init = args.log_sigma_x == nil and 0 or args.log_sigma_x
    if math.type(init) == nil then fail(where, "log_sigma_x must be a number (got %s)", typename(init)) end
    self.x_dim = D
    self.log_sigma_x = lv.param(lv.full({ D }, init, self.dtype))
  elseif args.x_dim ~= nil then
    self.x_dim = check_count(where, "x_dim", args.x_dim)
  end
  if args.log_sigma_x ~= nil and likelihood ~= "gaussian" then
    fail(where, "log_sigma_x belongs to the gaussian likelihood")
  end
  return self
end

function FlowVAE:_describe()
  return string.format("FlowVAE(%s likelihood, %s, latent dim %s)", self.likelihood,
    self.flow and string.format("flow %s, K = %d", tostring(self.flow):match("^[^\n]*"), self.K)
              or "no flow", self.dim and tostring(self.dim) or "unknown")
end

function FlowVAE:_own_parameters()
  return self.log_sigma_x and { self.log_sigma_x } or {}
end

function FlowVAE:_propose(x, S, gen, where)
  return self:_propose_encoder(x, S, gen, where)
end

--- The decoder's output for z [N, d], checked to hold D values per row.
function FlowVAE:_decode(z, D, where)
  local out = self.decoder(z)
  local N = z:size(1)
  if not lv.is_tensor(out) then
    fail(where, "the decoder must return a tensor (got %s)", typename(out))
  end
  if out:dim() < 1 or out:size(1) ~= N or out:numel() ~= N * D then
    fail(where, "the decoder returned shape %s for z %s; expected [%d, ...] with %d values per row (as x)",
         shape_string(out:size()), shape_string(z:size()), N, D)
  end
  if self.x_dim and D ~= self.x_dim then
    fail(where, "x has %d values per datapoint but x_dim is %d", D, self.x_dim)
  end
  return out
end

function FlowVAE:_decode_log_lik(x2, z, S, B, where)
  local D = x2:size(2)
  local out = self:_decode(z, D, where):reshape({ S, B, D })
  local ll
  if self.likelihood == "bernoulli" then
    ll = lv.bernoulli_logit(out, x2)             -- x l - softplus(l), stable, one op
  else
    local ls = self.log_sigma_x
    ll = -0.5 * ((x2 - out) * (-ls):exp()):square() - ls - HALF_LOG_2PI
  end
  return ll:sum(3):reshape({ S * B })
end

--- n draws from the model: x ~ p(x|z), z ~ N(0, I). Returns x [n, ...],
-- the decoder's mean (probabilities, or the Gaussian mean) and z [n, d];
-- off the tape.
function FlowVAE:sample(n, gen)
  local where = "FlowVAE:sample"
  n = check_count(where, "n", n)
  check.generator(where, "gen", gen)
  if not self.dim then
    fail(where, "the latent dim is unknown: give dim = d when making the model (or call elbo once)")
  end
  return lv.no_grad(function()
    local z = gen and lv.randn({ n, self.dim }, self.dtype, gen) or lv.randn({ n, self.dim }, self.dtype)
    local out = self.decoder(z)
    if not lv.is_tensor(out) or out:size(1) ~= n then
      fail(where, "the decoder must return a tensor [%d, ...] (got %s)", n,
           lv.is_tensor(out) and shape_string(out:size()) or typename(out))
    end
    if self.likelihood == "bernoulli" then
      local p = out:sigmoid()
      return gen and lv.bernoulli(p, gen) or lv.bernoulli(p), p, z
    end
    local scale = self.log_sigma_x:exp():reshape({ table.unpack(out:size(), 2) })
    local eps = gen and lv.randn(out:size(), out:dtype(), gen) or lv.randn(out:size(), out:dtype())
    return out + scale * eps, out, z
  end)
end

--- The decoder's mean at the flowed encoder mean: z0 = mu(x) (or a draw
-- z0 ~ q(z|x) with {sample = true}), then the flow when there is one.
-- Returns the mean, shaped as the decoder returns it, and zK [B, d];
-- off the tape.
function FlowVAE:reconstruct(x, opts)
  local where = "FlowVAE:reconstruct"
  local B, D
  x, B, D = check.batch(where, x)
  opts = check.options(where, opts, { "sample" })
  return lv.no_grad(function()
    local z0, flow_params, _
    if opts.sample then
      z0, _, _, flow_params = self:_propose_encoder(x, 1, nil, where)
    else
      local mu
      mu, _, flow_params = self.encoder(x)
      if not lv.is_tensor(mu) or mu:dim() ~= 2 or mu:size(1) ~= B then
        fail(where, "the encoder must return mu [%d, d] (got %s)", B,
             lv.is_tensor(mu) and shape_string(mu:size()) or typename(mu))
      end
      self:_check_dim(where, mu:size(2), "the encoder's mu")
      z0 = mu
    end
    local zK = self:_flow_only(x:reshape({ B, D }), z0, B, where, flow_params)
    local out = self:_decode(zK, D, where)
    if self.likelihood == "bernoulli" then out = out:sigmoid() end
    return out, zK
  end)
end

---- LinearGaussian ----------------------------------------------------------------------

local LinearGaussian = class("LinearGaussian")

local PROPOSALS = { prior = true, posterior = true }

--- LinearGaussian{W, b, sigma, proposal = "prior" | "posterior",
-- encoder, flow, K}: SPEC §5's p(z) = N(0, I_d), p(x|z) = N(W z + b,
-- diag sigma^2) with W [D, d], b [D] (zeros by default), sigma [D] or a
-- number. Its proposal q0 is the prior (default), the exact posterior, or
-- an encoder's N(mu, diag sigma^2) (give encoder instead of proposal); a
-- flow may follow any of them. W, b and sigma may be leaves made with
-- lv.param: parameters() then lists them (with the encoder's and flow's),
-- and every result is differentiable in them.
function M.LinearGaussian(args)
  local where = "LinearGaussian"
  args = check.table(where, "the argument", args)
  check.options(where, args, { "W", "b", "sigma", "proposal", "encoder", "flow", "K" })
  local W = args.W
  if not lv.is_tensor(W) or W:dim() ~= 2 then
    fail(where, "W must be a tensor [D, d] (got %s)",
         lv.is_tensor(W) and shape_string(W:size()) or typename(W))
  end
  local D, d = W:size(1), W:size(2)
  local dtype = W:dtype()
  local b = args.b == nil and lv.zeros({ D }, dtype) or args.b
  if not lv.is_tensor(b) or shape_string(b:size()) ~= shape_string({ D }) then
    fail(where, "b must be a tensor [%d] (got %s)", D,
         lv.is_tensor(b) and shape_string(b:size()) or typename(b))
  end
  local sigma = args.sigma
  if math.type(sigma) ~= nil then
    if not (sigma > 0) then fail(where, "sigma must be positive (got %s)", tostring(sigma)) end
    sigma = lv.full({ D }, sigma, dtype)
  elseif not lv.is_tensor(sigma) or (sigma:numel() ~= D and sigma:numel() ~= 1) then
    fail(where, "sigma must be a number or a tensor [%d] (got %s)", D,
         lv.is_tensor(sigma) and shape_string(sigma:size()) or typename(sigma))
  elseif lv.no_grad(function() return sigma:le(0):sum():item() end) > 0 then
    fail(where, "sigma must be positive")
  end
  if sigma:numel() ~= D then sigma = sigma:reshape({}):expand({ D }) end
  if args.encoder ~= nil and args.proposal ~= nil then
    fail(where, "give either proposal or encoder, not both")
  end
  if args.encoder ~= nil and not callable(args.encoder) then
    fail(where, "encoder must be a module or a function x -> mu, sigma (got %s)", typename(args.encoder))
  end
  local proposal = args.encoder and "encoder" or (args.proposal or "prior")
  if proposal ~= "encoder" and not PROPOSALS[proposal] then
    fail(where, "unknown proposal '%s' (known: prior, posterior; or give an encoder)", tostring(proposal))
  end
  local flow, K = check_flow(where, args.flow, args.K)
  if flow then
    local fd = flow_dim(flow)
    if fd and fd ~= d then fail(where, "W has latent dim %d but the flow has dim %d", d, fd) end
  end
  return setmetatable({ W = W, b = b, sigma = sigma, proposal = proposal, encoder = args.encoder,
                        flow = flow, K = K, dim = d, x_dim = D, dtype = dtype,
                        likelihood = "gaussian", prior = "normal" }, LinearGaussian)
end

function LinearGaussian:_describe()
  return string.format("LinearGaussian(D = %d, d = %d, %s proposal%s)", self.x_dim, self.dim,
    self.proposal, self.flow and string.format(", a flow with K = %d", self.K) or "")
end

function LinearGaussian:_own_parameters() return { self.W, self.b, self.sigma } end

function LinearGaussian:_check_x(where, x)
  local B, D
  x, B, D = check.batch(where, x)
  if D ~= self.x_dim then
    fail(where, "x has %d values per datapoint, the model %d", D, self.x_dim)
  end
  return x:reshape({ B, D }), B
end

function LinearGaussian:_decode_log_lik(x2, z, S, B, where)
  if x2:size(2) ~= self.x_dim then
    fail(where, "x has %d values per datapoint, the model %d", x2:size(2), self.x_dim)
  end
  local mean = (z:matmul(self.W:t()) + self.b):reshape({ S, B, self.x_dim })
  local ll = -0.5 * ((x2 - mean) / self.sigma):square() - self.sigma:log() - HALF_LOG_2PI
  return ll:sum(3):reshape({ S * B })
end

function LinearGaussian:_propose(x, S, gen, where)
  local B, d = x:size(1), self.dim
  if self.proposal == "encoder" then return self:_propose_encoder(x, S, gen, where) end
  local eps = gen and lv.randn_batch({ S, B, d }, self.dtype, gen) or lv.randn_batch({ S, B, d }, self.dtype)
  local sq = (-0.5 * eps:square() - HALF_LOG_2PI):sum(3):reshape({ S * B })
  if self.proposal == "prior" then
    return eps:reshape({ S * B, d }), sq, d * HALF_LOG_2PIE
  end
  -- The exact posterior N(m, Sigma): z0 = m + L eps with L L^T = Sigma,
  -- log q0 = log N(eps; 0, I) - 1/2 log det Sigma.
  local mean, cov = self:posterior(x)
  local L = lv.cholesky(cov)
  local half_logdet = 0.5 * lv.logdet(cov)
  local z0 = (mean + eps:matmul(L:t())):reshape({ S * B, d })
  return z0, sq - half_logdet, half_logdet + d * HALF_LOG_2PIE
end

--- The marginal covariance W W^T + diag sigma^2 [D, D].
function LinearGaussian:marginal_covariance()
  return self.W:matmul(self.W:t()) + lv.eye(self.x_dim, self.x_dim, self.dtype) * self.sigma:square()
end

--- log p(x) = log N(x; b, W W^T + diag sigma^2) [B], exact: through the
-- Cholesky factor L of the covariance C, log det C = 2 Σ_i log L_ii and
-- (x - b)^T C^-1 (x - b) = |L^-1 (x - b)|^2. Differentiable.
function LinearGaussian:log_evidence(x)
  local x2 = self:_check_x("LinearGaussian:log_evidence", x)
  local D = self.x_dim
  local L = lv.cholesky(self:marginal_covariance())
  local y = lv.solve(L, (x2 - self.b):t())                   -- [D, B]
  local log_diag = (L * lv.eye(D, D, self.dtype)):sum(2):log()
  return -0.5 * y:square():sum(1) - log_diag:sum() - D * HALF_LOG_2PI
end

--- The exact posterior p(z|x) = N(mean, cov): cov = (I + W^T diag
-- sigma^-2 W)^-1 [d, d] (the same for every x), mean = cov W^T diag
-- sigma^-2 (x - b) [B, d]. Differentiable.
function LinearGaussian:posterior(x)
  local x2 = self:_check_x("LinearGaussian:posterior", x)
  local d = self.dim
  local Wt_prec = self.W:t() / self.sigma:square()           -- [d, D]
  local P = lv.eye(d, d, self.dtype) + Wt_prec:matmul(self.W)
  local cov = lv.inverse(P)
  cov = 0.5 * (cov + cov:t())
  local mean = (x2 - self.b):matmul(Wt_prec:t()):matmul(cov)
  return mean, cov
end

--- n draws x = W z + b + sigma eps, z ~ N(0, I): x [n, D] and z [n, d];
-- off the tape.
function LinearGaussian:sample(n, gen)
  n = check_count("LinearGaussian:sample", "n", n)
  check.generator("LinearGaussian:sample", "gen", gen)
  return lv.no_grad(function()
    local function randn(shape)
      return gen and lv.randn(shape, self.dtype, gen) or lv.randn(shape, self.dtype)
    end
    local z = randn({ n, self.dim })
    return z:matmul(self.W:t()) + self.b + self.sigma * randn({ n, self.x_dim }), z
  end)
end

return M
