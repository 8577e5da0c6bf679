--- lvae.optim: first-order optimizers, gradient clipping and learning-rate
-- schedules, over lists of leaf tensors that require grad.
--
--   local optim = require "lvae.optim"
--   local opt = optim.Adamax(params, {lr = 5e-4, eps = 1e-7})
--   opt:step(loss)                  gradients by lv.grad (into buffers kept across steps), clip, update
--   loss:backward(); opt:update(); opt:zero_grad()   the .grad route
--
-- Optimizers: SGD (momentum, dampening, Nesterov, weight decay), Adam
-- (bias-corrected, optional AMSGrad), Adamax in SPEC §6.2's form (eps
-- outside the max, as TensorFlow's), RMSProp in PyTorch's form or, with
-- tf_style = true, TensorFlow 1's (SPEC §6.1). Every other formula follows
-- PyTorch (torch.optim), including its parameter groups: `params` is a
-- list of tensors or a list of groups {params = {...}, lr = ..., ...}
-- whose fields override the options for that group.
--
-- An update is one C call per parameter group (src/optim.c, bound in
-- src/lua_optim.c): each parameter and its state tensors (moments,
-- buffers, in the parameter's dtype) are updated in place in one pass,
-- every element computed in double, with no temporaries; clipping enters
-- as a scale on the gradient. state_dict() copies the state, so a saved
-- state is a snapshot that later steps do not change. A
-- parameter whose gradient is nil (unused by the loss) is left alone and
-- its step count does not advance, as in PyTorch. A non-finite gradient is
-- not caught here (PyTorch's behaviour): step returns the loss so that the
-- caller (the runner) can stop on a NaN.
--
-- opt.reducer, when set, combines the gradients of the processes of an MPI
-- job before every update (lvae.distributed.Reducer; the runner sets it
-- for data-parallel training, so an experiment's own step needs no
-- change): opt:step hands it each gradient as soon as the backward pass
-- has finished it (lv.grad's on_ready), so that sending overlaps the rest
-- of the pass; opt:update() hands it the .grad fields at once.
--
-- Not here: second-order methods, line searches, sparse gradients.

local lv = require "lvae.base"
local core = require "lvae.core"       -- core._optim_update
local check = require "lvae.check"

local M = {}

local unpack = table.unpack

---- checks ------------------------------------------------------------------

local fail = check.fail

local function is_number(v) return math.type(v) ~= nil end

--- Option `key` of the group h: a finite number for which ok holds.
local function check_number(where, h, key, ok, what)
  check.number(where, "option '" .. key .. "'", h[key], what, ok)
end

local function nonneg(v) return v >= 0 end
local function positive(v) return v > 0 end
local function unit(v) return v >= 0 and v < 1 end

local function check_boolean(where, h, key) check.boolean(where, "option '" .. key .. "'", h[key]) end

local function check_betas(where, h)
  local b = h.betas
  if type(b) ~= "table" or not is_number(b[1]) or not is_number(b[2])
     or not unit(b[1]) or not unit(b[2]) then
    fail(where, "option 'betas' must be a pair {beta1, beta2} of numbers in [0, 1)")
  end
end

local function shape_string(t) return "[" .. table.concat(t:size(), ",") .. "]" end

local function same_shape(a, b)
  if a:dim() ~= b:dim() then return false end
  for d = 1, a:dim() do
    if a:size(d) ~= b:size(d) then return false end
  end
  return true
end

---- the optimizers' formulas --------------------------------------------------
--
-- Each kind: the option names, a function filling the defaults of a group
-- and one checking it. The formula above each is what src/optim.c's
-- kernel of that name computes, element by element.

local kinds = {}

-- SGD (PyTorch): g += wd p; b = g at the first step, then
-- b = mu b + (1 - dampening) g; g = g + mu b (Nesterov) or b; p -= lr g.
kinds.SGD = {
  options = { "lr", "momentum", "dampening", "nesterov", "weight_decay" },
  defaults = function(h)
    if h.lr == nil then h.lr = 1e-3 end
    if h.momentum == nil then h.momentum = 0 end
    if h.dampening == nil then h.dampening = 0 end
    if h.nesterov == nil then h.nesterov = false end
    if h.weight_decay == nil then h.weight_decay = 0 end
  end,
  check = function(where, h)
    check_number(where, h, "lr", nonneg, "a non-negative number")
    check_number(where, h, "momentum", nonneg, "a non-negative number")
    check_number(where, h, "dampening", function(v) return v >= 0 and v <= 1 end,
                 "a number in [0, 1]")
    check_number(where, h, "weight_decay", nonneg, "a non-negative number")
    check_boolean(where, h, "nesterov")
    if h.nesterov and (h.momentum <= 0 or h.dampening ~= 0) then
      fail(where, "nesterov needs momentum > 0 and dampening = 0")
    end
  end,
}

-- Adam (Kingma & Ba, PyTorch's arrangement): g += wd p;
-- m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2 (v_max = max(v_max, v)
-- with amsgrad); p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps).
kinds.Adam = {
  options = { "lr", "betas", "eps", "weight_decay", "amsgrad" },
  defaults = function(h)
    if h.lr == nil then h.lr = 1e-3 end
    if h.betas == nil then h.betas = { 0.9, 0.999 } end
    if h.eps == nil then h.eps = 1e-8 end
    if h.weight_decay == nil then h.weight_decay = 0 end
    if h.amsgrad == nil then h.amsgrad = false end
  end,
  check = function(where, h)
    check_number(where, h, "lr", nonneg, "a non-negative number")
    check_betas(where, h)
    check_number(where, h, "eps", nonneg, "a non-negative number")
    check_number(where, h, "weight_decay", nonneg, "a non-negative number")
    check_boolean(where, h, "amsgrad")
  end,
}

-- Adamax, SPEC §6.2 (TensorFlow's form): m = b1 m + (1 - b1) g;
-- u = max(b2 u, |g|) with u_0 = 0; p -= lr / (1 - b1^t) * m / (u + eps).
-- (PyTorch puts eps inside the max instead: u = max(b2 u, |g| + eps).)
kinds.Adamax = {
  options = { "lr", "betas", "eps", "weight_decay" },
  defaults = function(h)
    if h.lr == nil then h.lr = 2e-3 end
    if h.betas == nil then h.betas = { 0.9, 0.999 } end
    if h.eps == nil then h.eps = 1e-8 end
    if h.weight_decay == nil then h.weight_decay = 0 end
  end,
  check = function(where, h)
    check_number(where, h, "lr", nonneg, "a non-negative number")
    check_betas(where, h)
    check_number(where, h, "eps", nonneg, "a non-negative number")
    check_number(where, h, "weight_decay", nonneg, "a non-negative number")
  end,
}

-- RMSProp.
-- PyTorch (tf_style = false): v = a v + (1 - a) g^2 with v_0 = 0; centered:
--   c = a c + (1 - a) g, d = sqrt(v - c^2) + eps, else d = sqrt(v) + eps;
--   momentum: b = mu b + g / d, p -= lr b; else p -= lr g / d.
-- TensorFlow 1 (tf_style = true, SPEC §6.1): v_0 = 1 (ones), decay a = 0.9
--   and eps = 1e-10 by default, eps inside the square root:
--   d = sqrt(v + eps) (centered: sqrt(v - c^2 + eps));
--   b = mu b + lr g / d; p -= b  (lr inside the momentum, as TF's kernel).
kinds.RMSProp = {
  options = { "lr", "alpha", "eps", "weight_decay", "momentum", "centered", "tf_style" },
  defaults = function(h)
    if h.tf_style == nil then h.tf_style = false end
    if h.lr == nil then h.lr = 1e-2 end
    if h.alpha == nil then h.alpha = h.tf_style and 0.9 or 0.99 end
    if h.eps == nil then h.eps = h.tf_style and 1e-10 or 1e-8 end
    if h.weight_decay == nil then h.weight_decay = 0 end
    if h.momentum == nil then h.momentum = 0 end
    if h.centered == nil then h.centered = false end
  end,
  check = function(where, h)
    check_number(where, h, "lr", nonneg, "a non-negative number")
    check_number(where, h, "alpha", unit, "a number in [0, 1)")
    check_number(where, h, "eps", nonneg, "a non-negative number")
    check_number(where, h, "weight_decay", nonneg, "a non-negative number")
    check_number(where, h, "momentum", nonneg, "a non-negative number")
    check_boolean(where, h, "centered")
    check_boolean(where, h, "tf_style")
  end,
}

---- gradients and clipping ----------------------------------------------------

local MAX_GRAD_LIST = 1024   -- lv.grad's limit on one call's inputs

--- Gradients of a scalar loss w.r.t. params (nil where unused), summed
-- into the buffers `into` when given (on_ready's own, a reducer's
-- buckets, otherwise); more than lv.grad takes at once go in chunks over
-- a retained graph.
local function gradients_of(loss, params, on_ready, into)
  local n = #params
  if n <= MAX_GRAD_LIST then
    return lv.grad(loss, params, { allow_unused = true, on_ready = on_ready, into = into })
  end
  local out = {}
  for first = 1, n, MAX_GRAD_LIST do
    local last = math.min(n, first + MAX_GRAD_LIST - 1)
    local chunk = { unpack(params, first, last) }
    local gs = lv.grad(loss, chunk, { allow_unused = true, retain_graph = last < n,
                                      into = into and { unpack(into, first, last) } })
    for j = 1, last - first + 1 do out[first + j - 1] = gs[j] end
  end
  return out
end

--- The global 2-norm of the non-nil tensors grads[1..n] (sums in double).
local function global_norm(grads, n)
  local total = 0
  for i = 1, n do
    local g = grads[i]
    if g then total = total + g:square():sum():item() end
  end
  return math.sqrt(total)
end

--- PyTorch's coefficient: max_norm / (norm + 1e-6), clamped to at most 1;
-- a NaN norm gives NaN (the gradients become NaN, as in PyTorch).
local function clip_coefficient(norm, max_norm)
  local coef = max_norm / (norm + 1e-6)
  if coef >= 1 then return nil end
  return coef
end

--- clip_grad_norm(params_or_grads, max_norm) -> total_norm, clipped
-- Scales gradients so that their global 2-norm is at most max_norm
-- (PyTorch's clip_grad_norm_). The argument is a tensor or a list: a
-- tensor that requires grad is a parameter, its .grad is replaced by the
-- scaled gradient (nil stays nil); any other tensor is a gradient, replaced
-- in the list by its scaled copy. Returns the norm before clipping and the
-- list (or the tensor) after. Nothing is written in place.
function M.clip_grad_norm(list, max_norm)
  local where = "optim.clip_grad_norm"
  local single = lv.is_tensor(list)
  if single then list = { list } end
  if type(list) ~= "table" then
    fail(where, "expected a tensor or a list of tensors (got %s)", type(list))
  end
  if not is_number(max_norm) or not (max_norm > 0) then
    fail(where, "max_norm must be a positive number (got %s)", tostring(max_norm))
  end
  local n = #list
  local grads = {}
  for i = 1, n do
    local t = list[i]
    if not lv.is_tensor(t) then fail(where, "entry %d is not a tensor", i) end
    if t.needs_grad and t.is_leaf then grads[i] = t.grad else grads[i] = t end
  end
  return lv.no_grad(function()
    local norm = global_norm(grads, n)
    local coef = clip_coefficient(norm, max_norm)
    if coef then
      for i = 1, n do
        local t, g = list[i], grads[i]
        if g then
          if t.needs_grad and t.is_leaf then t.grad = g * coef else list[i] = g * coef end
        end
      end
    end
    return norm, single and list[1] or list
  end)
end

---- the optimizer object -----------------------------------------------------

local Optimizer = {}

local function optimizer_index(self, key)
  if key == "lr" then return rawget(self, "groups")[1].lr end
  return Optimizer[key]
end

--- opt.lr = x sets the learning rate of every group.
local function optimizer_newindex(self, key, value)
  if key == "lr" then
    local where = "optim." .. rawget(self, "kind") .. ".lr"
    if not is_number(value) or value ~= value or value < 0 then
      fail(where, "the learning rate must be a non-negative number (got %s)", tostring(value))
    end
    for _, g in ipairs(rawget(self, "groups")) do g.lr = value end
    return
  end
  rawset(self, key, value)
end

local function optimizer_tostring(self)
  return string.format("optim.%s (%d parameters in %d group%s, lr %g, %d steps)",
    self.kind, #self.params, #self.groups, #self.groups == 1 and "" or "s",
    self.lr, self.steps)
end

local function new_optimizer(kind_name, params, opts)
  local kind = kinds[kind_name]
  local where = "optim." .. kind_name
  opts = opts or {}
  if type(opts) ~= "table" then fail(where, "options must be a table (got %s)", type(opts)) end
  check.keys(where, opts, kind.options, { "clip_norm" })
  if opts.clip_norm ~= nil and (not is_number(opts.clip_norm) or not (opts.clip_norm > 0)) then
    fail(where, "option 'clip_norm' must be a positive number (got %s)", tostring(opts.clip_norm))
  end

  if lv.is_tensor(params) then params = { params } end
  if type(params) ~= "table" or #params == 0 then
    fail(where, "params must be a non-empty list of tensors or of groups {params = {...}}")
  end
  local raw_groups
  if lv.is_tensor(params[1]) then
    raw_groups = { { params = params } }
  else
    raw_groups = params
  end

  local self = { kind = kind_name, groups = {}, params = {}, state = {},
                 steps = 0, clip_norm = opts.clip_norm }
  local seen = {}
  for gi, raw in ipairs(raw_groups) do
    local gwhere = #raw_groups > 1 and string.format("%s: group %d", where, gi) or where
    if type(raw) ~= "table" or lv.is_tensor(raw) or type(raw.params) ~= "table" then
      fail(where, "params entry %d must be a tensor or a group {params = {...}}", gi)
    end
    check.keys(gwhere, raw, kind.options, { "params" })
    local h = {}
    for _, k in ipairs(kind.options) do
      if raw[k] ~= nil then h[k] = raw[k] else h[k] = opts[k] end
    end
    if type(h.betas) == "table" then h.betas = { h.betas[1], h.betas[2] } end
    kind.defaults(h)
    kind.check(gwhere, h)
    h.params = {}
    local plist = lv.is_tensor(raw.params) and { raw.params } or raw.params
    if #plist == 0 then fail(gwhere, "a group with no parameters") end
    for _, p in ipairs(plist) do
      local i = #self.params + 1
      if not lv.is_tensor(p) then
        fail(where, "parameter %d is not a tensor (got %s)", i, type(p))
      end
      if not p.needs_grad or not p.is_leaf then
        fail(where, "parameter %d is not a leaf that requires grad (use lv.param)", i)
      end
      if seen[p] then fail(where, "parameter %d appears twice", i) end
      seen[p] = true
      self.params[i] = p
      self.state[i] = { step = 0 }
      h.params[#h.params + 1] = p
    end
    self.groups[gi] = h
  end
  return setmetatable(self, {
    __index = optimizer_index, __newindex = optimizer_newindex,
    __tostring = optimizer_tostring, __name = "lvae.optim." .. kind_name,
  })
end

--- Applies one update from grads[i] (the gradient of params[i], or nil).
function Optimizer:_apply(grads)
  local _ <close> = lv.no_grad()
  local scale
  if self.clip_norm then
    self.grad_norm = global_norm(grads, #self.params)
    scale = clip_coefficient(self.grad_norm, self.clip_norm)
  end
  self.steps = self.steps + 1
  local offset = 0
  for _, h in ipairs(self.groups) do
    core._optim_update(self.kind, h, grads, self.state, offset, scale)
    offset = offset + #h.params
  end
end

--- opt:step(loss) -> loss
-- loss is a scalar tensor on the tape (or a function returning one, run
-- with grad enabled). Its gradients w.r.t. the parameters come from
-- lv.grad (the .grad fields are neither read nor written); clipping and
-- the update follow.
function Optimizer:step(loss)
  local where = "optim." .. self.kind .. ":step"
  if type(loss) == "function" then loss = lv.enable_grad(loss) end
  if not lv.is_tensor(loss) then
    fail(where, "expected the loss, a scalar tensor (got %s)", type(loss))
  end
  if loss:numel() ~= 1 then
    fail(where, "the loss must be a scalar, got shape %s (reduce it, e.g. with :mean())",
         shape_string(loss))
  end
  if not loss.needs_grad then
    fail(where, "the loss does not depend on any parameter that requires grad " ..
         "(was it computed under lv.no_grad?)")
  end
  if loss:dim() > 0 then loss = loss:view({}) end
  local reducer = self.reducer
  if reducer then
    reducer:begin()
    self:_apply(reducer:finish(gradients_of(loss, self.params, reducer.hook), true))
  else
    self:_apply(gradients_of(loss, self.params, nil, self:_gradient_buffers()))
  end
  return loss
end

--- The tensors opt:step sums the gradients into, one per parameter, made
-- at the first step and overwritten by every later one: a step allocates
-- no gradient, and a weight's GEMMs add into memory already in cache.
function Optimizer:_gradient_buffers()
  local buffers = rawget(self, "_grads")
  if not buffers then
    buffers = {}
    for i, p in ipairs(self.params) do buffers[i] = lv.empty_like(p) end
    rawset(self, "_grads", buffers)
  end
  return buffers
end

--- opt:update(): one update from the parameters' .grad (filled by
-- loss:backward()); parameters whose .grad is nil are left alone.
function Optimizer:update()
  local grads = {}
  for i, p in ipairs(self.params) do grads[i] = p.grad end
  if self.reducer then
    self.reducer:begin()
    grads = self.reducer:finish(grads)
  end
  self:_apply(grads)
end

--- opt:zero_grad(): p.grad = nil for every parameter.
function Optimizer:zero_grad()
  for _, p in ipairs(self.params) do p.grad = nil end
end

--- opt:state_dict(): a plain table (strings, numbers, booleans, tensors,
-- tables of these) that lv.save can write. Tensors are copies of the
-- optimizer's (which later steps update in place): a snapshot.
function Optimizer:state_dict()
  local kind = kinds[self.kind]
  local groups = {}
  for gi, h in ipairs(self.groups) do
    local g = { n_params = #h.params }
    for _, k in ipairs(kind.options) do
      g[k] = type(h[k]) == "table" and { h[k][1], h[k][2] } or h[k]
    end
    groups[gi] = g
  end
  local state = {}
  lv.no_grad(function()
    for i, st in ipairs(self.state) do
      local s = {}
      for k, v in pairs(st) do s[k] = lv.is_tensor(v) and v:clone() or v end
      state[i] = s
    end
  end)
  return { format = "lvae.optim", version = 1, kind = self.kind, steps = self.steps,
           groups = groups, state = state }
end

--- opt:load_state_dict(t): restores the options of every group, the step
-- counts and the state tensors (converted to each parameter's dtype).
function Optimizer:load_state_dict(t)
  local kind = kinds[self.kind]
  local where = "optim." .. self.kind .. ":load_state_dict"
  if type(t) ~= "table" or t.format ~= "lvae.optim" then
    fail(where, "expected a table made by state_dict()")
  end
  if t.version ~= 1 then fail(where, "unknown state version %s", tostring(t.version)) end
  if t.kind ~= self.kind then
    fail(where, "the state is from %s, not %s", tostring(t.kind), self.kind)
  end
  if type(t.groups) ~= "table" or #t.groups ~= #self.groups then
    fail(where, "the state has %d parameter groups, the optimizer %d",
         type(t.groups) == "table" and #t.groups or 0, #self.groups)
  end
  if type(t.state) ~= "table" or #t.state ~= #self.params then
    fail(where, "the state has %d parameters, the optimizer %d",
         type(t.state) == "table" and #t.state or 0, #self.params)
  end
  -- Check everything before changing anything.
  local new_groups, new_state = {}, {}
  for gi, g in ipairs(t.groups) do
    if g.n_params ~= #self.groups[gi].params then
      fail(where, "group %d has %s parameters in the state, %d in the optimizer",
           gi, tostring(g.n_params), #self.groups[gi].params)
    end
    local h = {}
    for _, k in ipairs(kind.options) do
      h[k] = type(g[k]) == "table" and { g[k][1], g[k][2] } or g[k]
    end
    kind.defaults(h)
    kind.check(string.format("%s: group %d", where, gi), h)
    new_groups[gi] = h
  end
  for i, s in ipairs(t.state) do
    local p = self.params[i]
    if type(s) ~= "table" or math.type(s.step) == nil or s.step < 0 then
      fail(where, "state of parameter %d has no step count", i)
    end
    local st = {}
    for k, v in pairs(s) do
      if lv.is_tensor(v) then
        if not same_shape(v, p) then
          fail(where, "state '%s' of parameter %d has shape %s, the parameter %s",
               tostring(k), i, shape_string(v), shape_string(p))
        end
        st[k] = lv.no_grad(function()
          return v:dtype() == p:dtype() and v:detach():clone() or v:detach():to(p:dtype())
        end)
      else
        st[k] = v
      end
    end
    st.step = math.tointeger(s.step) or s.step
    new_state[i] = st
  end
  for gi, h in ipairs(new_groups) do
    for _, k in ipairs(kind.options) do self.groups[gi][k] = h[k] end
  end
  rawset(self, "state", new_state)
  rawset(self, "steps", math.tointeger(t.steps) or 0)
end

for name in pairs(kinds) do
  M[name] = function(params, opts) return new_optimizer(name, params, opts) end
end

---- learning-rate schedules ---------------------------------------------------
--
-- PyTorch's schedulers in closed form, per group from the learning rates
-- the groups had when the schedule was made (base_lrs). Creating one is
-- epoch 0; each :step() advances one epoch (call it once per epoch, after
-- the epoch's optimizer steps) and sets every group's lr:
--   step:   lr = base * gamma ^ floor(epoch / step_size)
--   cosine: lr = eta_min + (base - eta_min) (1 + cos(pi epoch / T_max)) / 2
--           (periodic beyond T_max, as PyTorch's CosineAnnealingLR)

M.schedules = {}

local schedule_kinds = {
  step = {
    options = { "step_size", "gamma" },
    defaults = function(h) if h.gamma == nil then h.gamma = 0.1 end end,
    check = function(where, h)
      if math.type(h.step_size) ~= "integer" or h.step_size < 1 then
        fail(where, "option 'step_size' must be a positive integer (got %s)", tostring(h.step_size))
      end
      check_number(where, h, "gamma", positive, "a positive number")
    end,
    lr = function(h, base, epoch) return base * h.gamma ^ (epoch // h.step_size) end,
  },
  cosine = {
    options = { "T_max", "eta_min" },
    defaults = function(h) if h.eta_min == nil then h.eta_min = 0 end end,
    check = function(where, h)
      check_number(where, h, "T_max", positive, "a positive number")
      check_number(where, h, "eta_min", nonneg, "a non-negative number")
    end,
    lr = function(h, base, epoch)
      return h.eta_min + (base - h.eta_min) * (1 + math.cos(math.pi * epoch / h.T_max)) / 2
    end,
  },
}

local Schedule = {}
Schedule.__index = Schedule

function Schedule:_apply()
  local kind = schedule_kinds[self.kind]
  for gi, h in ipairs(self.optimizer.groups) do
    h.lr = kind.lr(self.options, self.base_lrs[gi], self.last_epoch)
  end
end

--- sched:step(): the next epoch; returns the new lr (of the first group).
function Schedule:step()
  self.last_epoch = self.last_epoch + 1
  self:_apply()
  return self.optimizer.lr
end

--- sched:get_last_lr(): the list of every group's current lr.
function Schedule:get_last_lr()
  local out = {}
  for gi, h in ipairs(self.optimizer.groups) do out[gi] = h.lr end
  return out
end

function Schedule:state_dict()
  local t = { format = "lvae.schedule", version = 1, kind = self.kind,
              last_epoch = self.last_epoch, base_lrs = { unpack(self.base_lrs) } }
  for _, k in ipairs(schedule_kinds[self.kind].options) do t[k] = self.options[k] end
  return t
end

--- sched:load_state_dict(t): restores the epoch, base lrs and options, and
-- sets the optimizer's lr accordingly.
function Schedule:load_state_dict(t)
  local where = "optim.schedules." .. self.kind .. ":load_state_dict"
  local kind = schedule_kinds[self.kind]
  if type(t) ~= "table" or t.format ~= "lvae.schedule" then
    fail(where, "expected a table made by state_dict()")
  end
  if t.kind ~= self.kind then
    fail(where, "the state is from a '%s' schedule, not '%s'", tostring(t.kind), self.kind)
  end
  if type(t.base_lrs) ~= "table" or #t.base_lrs ~= #self.optimizer.groups then
    fail(where, "the state has %d base learning rates for %d groups",
         type(t.base_lrs) == "table" and #t.base_lrs or 0, #self.optimizer.groups)
  end
  if math.type(t.last_epoch) ~= "integer" then
    fail(where, "the state has no integer last_epoch")
  end
  local h = {}
  for _, k in ipairs(kind.options) do h[k] = t[k] end
  kind.defaults(h)
  kind.check(where, h)
  self.options = h
  self.base_lrs = { unpack(t.base_lrs) }
  self.last_epoch = t.last_epoch
  self:_apply()
end

local function new_schedule(kind_name, opt, opts)
  local kind = schedule_kinds[kind_name]
  local where = "optim.schedules." .. kind_name
  if type(opt) ~= "table" or type(rawget(opt, "groups")) ~= "table" then
    fail(where, "the first argument must be an optimizer")
  end
  opts = opts or {}
  if type(opts) ~= "table" then fail(where, "options must be a table (got %s)", type(opts)) end
  check.keys(where, opts, kind.options)
  local h = {}
  for _, k in ipairs(kind.options) do h[k] = opts[k] end
  kind.defaults(h)
  kind.check(where, h)
  local base = {}
  for gi, g in ipairs(opt.groups) do base[gi] = g.lr end
  local self = setmetatable({ kind = kind_name, optimizer = opt, options = h,
                              base_lrs = base, last_epoch = 0 }, Schedule)
  self:_apply()
  return self
end

for name in pairs(schedule_kinds) do
  M.schedules[name] = function(opt, opts) return new_schedule(name, opt, opts) end
end

return M
