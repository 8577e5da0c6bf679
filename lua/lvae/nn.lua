--- lvae.nn: layers as modules, the vocabulary of architectures.
--
--   local nn = require "lvae.nn"
--   local enc = nn.Sequential(nn.Linear(784, 500), nn.Softplus(),
--                             nn.GaussianHead(500, 64))
--   local mu, sigma = enc(x)
--
-- A module is called like a function (its forward); `:parameters()` lists
-- its leaf tensors (each requires grad), `:named_parameters()` pairs them
-- with dotted names ("1.weight"), `:train()` / `:evaluate()` set the mode,
-- `tostring(m)` lists the layers with their parameter counts,
-- `:state_dict()` / `:load_state_dict(t)` exchange values by name.
--
-- Layers: Linear, Conv2d, ConvTranspose2d (NCHW, stride, padding as a
-- number, {vertical, horizontal}, {top, bottom, left, right}, "valid", or
-- TensorFlow's "same"), Softplus, ReLU, Tanh, Sigmoid, Sequential, Reshape,
-- Flatten, GaussianHead. Weights use PyTorch's layouts: Linear [out, in],
-- Conv2d [out, in, kh, kw], ConvTranspose2d [in, out, kh, kw].

-- Convolutions are single ops of the C core (lv.conv2d, lv.conv_transpose2d,
-- whose VJPs are each other and lv.conv_weight_grad), so they are
-- differentiable to any order. Not here: optimizers (lvae.optim).

local lv = require "lvae.base"
local check = require "lvae.check"

local nn = { init = {}, F = {} }

-- ---- initialisers --------------------------------------------------------
-- Each fills a tensor in place (under no_grad) and returns it. fan_in and
-- fan_out of a weight: Linear [out, in]; Conv [out, in, kh, kw] counts the
-- receptive field (in kh kw, out kh kw).

local function fans(t, where)
  check.tensor(where, "the tensor to fill", t)
  local size = t:size()
  if #size < 2 then return size[1], size[1] end
  local receptive = 1
  for i = 3, #size do receptive = receptive * size[i] end
  return size[2] * receptive, size[1] * receptive
end

local function fill_with(t, values)
  lv.no_grad(function() t:copy_(values) end)
  return t
end

--- Normal with std = gain * sqrt(2 / (fan_in + fan_out)).
function nn.init.glorot_normal(t, gain)
  local fan_in, fan_out = fans(t, "nn.init.glorot_normal")
  local std = (gain or 1) * math.sqrt(2 / (fan_in + fan_out))
  return fill_with(t, lv.randn(t:size(), t:dtype()) * std)
end

--- Uniform on ±gain * sqrt(6 / (fan_in + fan_out)).
function nn.init.glorot_uniform(t, gain)
  local fan_in, fan_out = fans(t, "nn.init.glorot_uniform")
  local a = (gain or 1) * math.sqrt(6 / (fan_in + fan_out))
  return fill_with(t, lv.rand(t:size(), t:dtype()) * (2 * a) - a)
end

--- HVAE's initialiser: normal with std = 1 / sqrt(fan_in + fan_out).
function nn.init.hvae_normal(t)
  local fan_in, fan_out = fans(t, "nn.init.hvae_normal")
  return fill_with(t, lv.randn(t:size(), t:dtype()) * (1 / math.sqrt(fan_in + fan_out)))
end

function nn.init.zeros(t)
  check.tensor("nn.init.zeros", "the tensor to fill", t)
  return fill_with(t, lv.zeros_like(t))
end

function nn.init.constant(t, value)
  check.tensor("nn.init.constant", "the tensor to fill", t)
  if math.type(value) == nil then
    check.fail("nn.init.constant", "the value must be a number (got %s)", check.typename(value))
  end
  return fill_with(t, lv.full_like(t, value))
end

local initialisers = {
  glorot_normal = nn.init.glorot_normal,
  glorot_uniform = nn.init.glorot_uniform,
  hvae_normal = nn.init.hvae_normal,
  zeros = nn.init.zeros,
}

local function initialise(t, init)
  init = init or "hvae_normal"
  if type(init) == "function" then return init(t) end
  local fn = initialisers[init]
  if not fn then
    local names = {}
    for k in pairs(initialisers) do names[#names + 1] = k end
    table.sort(names)
    error(string.format("unknown initialiser '%s' (known: %s, or a function)",
      tostring(init), table.concat(names, ", ")), 3)
  end
  return fn(t)
end

-- ---- the module base -------------------------------------------------------

local Module = {}
Module.__index = Module
Module.__name = "nn.Module"

--- Makes a module class; `Class(...)` builds an instance through
-- Class.init(self, ...).
local function class(name, parent)
  if type(name) ~= "string" or name == "" then
    error(string.format("nn.class: the class name must be a string (got %s)", check.typename(name)), 2)
  end
  if parent ~= nil and (type(parent) ~= "table" or getmetatable(parent) == nil) then
    error(string.format("nn.class: the parent must be a module class (got %s)", check.typename(parent)), 2)
  end
  local C = setmetatable({}, {
    __index = parent or Module,
    __call = function(cls, ...)
      local self = setmetatable({ _params = {}, _children = {}, training = true }, cls)
      -- A bad argument is the caller's mistake: report it at the caller's
      -- line, not inside this file.
      local ok, err = pcall(cls.init, self, ...)
      if not ok then
        if type(err) == "string" then
          err = err:gsub("^[^\n]-%.lua:%d+: ", "")
          -- an error from deeper down (an initialiser, an allocation) is
          -- still this layer's: say which
          if not err:find("%f[%w_]" .. name .. "%f[^%w_]") then err = name .. ": " .. err end
        end
        error(err, 2)
      end
      return self
    end,
  })
  C.__index = C
  C.__name = "nn." .. name
  C.__call = function(self, ...) return self:forward(...) end
  C.__tostring = Module.__tostring
  C.name = name
  return C
end
nn.class = class

function Module.init() end

--- Registers a parameter (a leaf that requires grad) under a name.
function Module:register_parameter(name, t)
  local p = lv.param(t)
  self._params[#self._params + 1] = { name = name, tensor = p }
  self[name] = p
  return p
end

function Module:add_module(name, m)
  self._children[#self._children + 1] = { name = name, module = m }
  return m
end

function Module:named_parameters(prefix, out, seen)
  out, seen = out or {}, seen or {}
  prefix = prefix or ""
  for _, p in ipairs(self._params) do
    if not seen[p.tensor] then
      seen[p.tensor] = true
      out[#out + 1] = { name = prefix .. p.name, tensor = p.tensor }
    end
  end
  for _, c in ipairs(self._children) do
    c.module:named_parameters(prefix .. c.name .. ".", out, seen)
  end
  return out
end

function Module:parameters()
  local list = {}
  for i, np in ipairs(self:named_parameters()) do list[i] = np.tensor end
  return list
end

function Module:n_parameters()
  local n = 0
  for _, p in ipairs(self:parameters()) do n = n + p:numel() end
  return n
end

function Module:train(flag)
  if flag == nil then flag = true end
  if type(flag) ~= "boolean" then
    error(string.format("train: the flag must be true or false (got %s)", check.typename(flag)), 2)
  end
  self.training = flag
  for _, c in ipairs(self._children) do c.module:train(flag) end
  return self
end

function Module:evaluate() return self:train(false) end

--- Name -> tensor. The tensors share storage with the parameters (as in
-- PyTorch): clone them for a snapshot that training must not change.
function Module:state_dict()
  local state = {}
  for _, np in ipairs(self:named_parameters()) do state[np.name] = np.tensor:detach() end
  return state
end

--- Copies values by name into the parameters (shapes must match). Every
-- name and shape is checked before anything is copied, so a failed load
-- leaves the module as it was.
function Module:load_state_dict(state, opts)
  if type(state) ~= "table" or lv.is_tensor(state) then
    error(string.format("load_state_dict: the state must be a table of tensors by name (got %s)",
      check.typename(state)), 2)
  end
  opts = check.options("load_state_dict", opts, { "strict" })
  check.flag("load_state_dict", "strict", opts.strict)
  local strict = opts.strict ~= false
  local known = {}
  for _, np in ipairs(self:named_parameters()) do
    known[np.name] = true
    local v = state[np.name]
    if v == nil then
      if strict then error(string.format("load_state_dict: missing parameter '%s'", np.name), 2) end
    elseif not lv.is_tensor(v) then
      error(string.format("load_state_dict: the value for parameter '%s' is a %s, not a tensor",
        np.name, type(v)), 2)
    else
      local want, got = table.concat(np.tensor:size(), ","), table.concat(v:size(), ",")
      if want ~= got then
        error(string.format("load_state_dict: parameter '%s' has shape [%s], the state gives [%s]",
          np.name, want, got), 2)
      end
    end
  end
  if strict then
    for k in pairs(state) do
      if not known[k] then error(string.format("load_state_dict: unexpected parameter '%s'", k), 2) end
    end
  end
  lv.no_grad(function()
    for _, np in ipairs(self:named_parameters()) do
      local v = state[np.name]
      if v ~= nil then np.tensor:copy_(v) end
    end
  end)
  return self
end

function Module:extra_repr() return "" end

local function describe(m, indent)
  local own = 0
  for _, p in ipairs(m._params) do own = own + p.tensor:numel() end
  local line = m.name .. "(" .. m:extra_repr() .. ")"
  if own > 0 then line = line .. string.format("  [%d parameters]", own) end
  local lines = { line }
  for _, c in ipairs(m._children) do
    lines[#lines + 1] = indent .. "  (" .. c.name .. "): " .. describe(c.module, indent .. "  ")
  end
  return table.concat(lines, "\n")
end

function Module:__tostring()
  return describe(self, "") .. string.format("\n%d parameters in all", self:n_parameters())
end

-- ---- functional forms -------------------------------------------------------

--- linear(x [..., in], weight [out, in], bias [out] or nil): x weightᵀ +
-- bias as one op of the core (lv.linear).
function nn.F.linear(x, weight, bias)
  return lv.linear(x, weight, bias)
end

--- TensorFlow's SAME padding for one direction: {before, after}.
local SAME_MAX = (1 << 31) - 1   -- sizes beyond: the sum below would lose exactness

local function same_padding(size, kernel, stride)
  size, kernel, stride = check.integral(size) or size, check.integral(kernel) or kernel,
    check.integral(stride) or stride
  for _, v in ipairs({ { size, "size", 0 }, { kernel, "kernel", 1 }, { stride, "stride", 1 } }) do
    if math.type(v[1]) ~= "integer" or v[1] < v[3] then
      error(string.format("same_padding: %s must be an integer >= %d (got %s)", v[2], v[3],
        tostring(v[1])), 3)
    end
    if v[1] > SAME_MAX then
      error(string.format("same_padding: %s must be at most 2^31 - 1 (got %s)", v[2], tostring(v[1])), 3)
    end
  end
  local out = (size + stride - 1) // stride        -- ceil(size / stride), in integers
  local total = math.max((out - 1) * stride + kernel - size, 0)
  local before = total // 2
  return before, total - before
end
nn.F.same_padding = same_padding

--- Padding {top, bottom, left, right} from a layer's `padding` option;
-- where names the layer or function in errors.
local function resolve_padding(padding, h, w, kh, kw, sh, sw, where)
  if padding == nil or padding == "valid" then return { 0, 0, 0, 0 } end
  if padding == "same" then
    local t, b = same_padding(h, kh, sh)
    local l, r = same_padding(w, kw, sw)
    return { t, b, l, r }
  end
  local function amount(v)
    v = check.integral(v) or v
    if math.type(v) ~= "integer" then
      error(where .. ": padding must be made of integers, got " .. tostring(v), 4)
    end
    if v < 0 then error(where .. ": padding must not be negative, got " .. tostring(v), 4) end
    return v
  end
  if check.integral(padding) then
    local p = amount(padding)
    return { p, p, p, p }
  end
  if type(padding) == "table" and #padding == 2 then
    return { amount(padding[1]), amount(padding[1]), amount(padding[2]), amount(padding[2]) }
  end
  if type(padding) == "table" and #padding == 4 then
    return { amount(padding[1]), amount(padding[2]), amount(padding[3]), amount(padding[4]) }
  end
  error(where .. ": padding must be a number, {vertical, horizontal}, {top, bottom, left, right}, "
    .. "'valid' or 'same', got " .. tostring(padding), 3)
end

local function pair(v, what, positive)
  if type(what) ~= "string" then what = "nn.F.pair: the value" end
  local a, b
  if check.integral(v) then
    a = check.integral(v)
    b = a
  elseif type(v) == "table" and #v == 2 and check.integral(v[1]) and check.integral(v[2]) then
    a, b = check.integral(v[1]), check.integral(v[2])
  else
    local shown = type(v) == "table" and "{" .. table.concat(v, ", ") .. "}" or tostring(v)
    error(string.format("%s must be an integer or {h, w} of integers, got %s", what, shown), 3)
  end
  if positive and (a < 1 or b < 1) then
    error(string.format("%s must be positive, got %dx%d", what, a, b), 3)
  end
  return a, b
end
nn.F.pair = pair

--- conv2d(x [N, C, H, W], weight [O, C, kh, kw], bias [O] or nil, opts
-- {stride, padding}) -> [N, O, Ho, Wo].
--- The tensors and options of a functional convolution, checked.
local function conv_args(where, x, weight, bias, opts, known)
  check.tensor(where, "the input", x)
  check.tensor(where, "the weight", weight)
  if bias ~= nil then check.tensor(where, "the bias", bias) end
  if weight:dim() ~= 4 then
    check.fail(where, "expected a weight [out, in, kh, kw] (got shape [%s])", table.concat(weight:size(), ","))
  end
  return check.options(where, opts, known)
end

function nn.F.conv2d(x, weight, bias, opts)
  opts = conv_args("conv2d", x, weight, bias, opts, { "stride", "padding" })
  local size = weight:size()
  local O, kh, kw = size[1], size[3], size[4]
  local sh, sw = pair(opts.stride or 1, "conv2d: stride", true)
  local xs = x:size()
  if #xs ~= 4 then error("conv2d: expected input [N, C, H, W], got shape [" .. table.concat(xs, ",") .. "]", 2) end
  if xs[2] ~= size[2] then
    error(string.format("conv2d: input has %d channels, the weight expects %d", xs[2], size[2]), 2)
  end
  local pad = resolve_padding(opts.padding, xs[3], xs[4], kh, kw, sh, sw, "conv2d")
  -- One op (src/ops_conv_fused.c): im2col and GEMM over chunks of the
  -- batch, and a backward that saves x and the weight, not the columns.
  local y = lv.conv2d(x, weight, { kernel = { kh, kw }, stride = { sh, sw }, padding = pad })
  if bias then y = y + bias:view(1, O, 1, 1) end
  return y
end

--- conv_transpose2d(x [N, C, H, W], weight [C, O, kh, kw], bias, opts
-- {stride, padding, output_padding, output_size}) -> [N, O, Hout, Wout],
-- the exact adjoint of conv2d from Hout x Wout to H x W with the same
-- stride and padding. With padding "same", Hout = H * stride (TensorFlow).
function nn.F.conv_transpose2d(x, weight, bias, opts)
  opts = conv_args("conv_transpose2d", x, weight, bias, opts,
                   { "stride", "padding", "output_padding", "output_size" })
  local size = weight:size()
  local C, O, kh, kw = size[1], size[2], size[3], size[4]
  local sh, sw = pair(opts.stride or 1, "conv_transpose2d: stride", true)
  local xs = x:size()
  if #xs ~= 4 then
    error("conv_transpose2d: expected input [N, C, H, W], got shape [" .. table.concat(xs, ",") .. "]", 2)
  end
  if xs[2] ~= C then
    error(string.format("conv_transpose2d: input has %d channels, the weight expects %d", xs[2], C), 2)
  end
  local H, W = xs[3], xs[4]
  local Hout, Wout, pad
  if opts.padding == "same" then
    if opts.output_padding and opts.output_padding ~= 0 then
      error("conv_transpose2d: output_padding does not combine with padding \"same\" "
        .. "(give output_size instead)", 2)
    end
    Hout, Wout = H * sh, W * sw
    if opts.output_size then Hout, Wout = pair(opts.output_size, "conv_transpose2d: output_size", true) end
    pad = resolve_padding("same", Hout, Wout, kh, kw, sh, sw, "conv_transpose2d")
  else
    pad = resolve_padding(opts.padding, 0, 0, kh, kw, sh, sw, "conv_transpose2d")
    local oph, opw = pair(opts.output_padding or 0, "conv_transpose2d: output_padding")
    if oph >= sh or opw >= sw then
      error("conv_transpose2d: output_padding must be smaller than the stride", 2)
    end
    Hout = (H - 1) * sh - pad[1] - pad[2] + kh + oph
    Wout = (W - 1) * sw - pad[3] - pad[4] + kw + opw
    if opts.output_size then
      local wh, ww = pair(opts.output_size, "conv_transpose2d: output_size", true)
      if wh < Hout - oph or wh >= Hout - oph + sh or ww < Wout - opw or ww >= Wout - opw + sw then
        error(string.format("conv_transpose2d: output_size %dx%d is not reachable from %dx%d", wh, ww, H, W), 2)
      end
      Hout, Wout = wh, ww
    end
  end
  local windows_h = (Hout + pad[1] + pad[2] - kh) // sh + 1
  local windows_w = (Wout + pad[3] + pad[4] - kw) // sw + 1
  if windows_h ~= H or windows_w ~= W then
    error(string.format("conv_transpose2d: a %dx%d output does not give back %dx%d windows "
      .. "with this padding", Hout, Wout, H, W), 2)
  end
  -- The adjoint of conv2d with this weight (as [C, O, kh, kw]: C = this
  -- layer's input channels), one op like conv2d.
  local y = lv.conv_transpose2d(x, weight, { kernel = { kh, kw }, stride = { sh, sw }, padding = pad,
                                             size = { Hout, Wout } })
  if bias then y = y + bias:view(1, O, 1, 1) end
  return y
end

-- ---- layers -------------------------------------------------------------------

nn.Linear = class("Linear")
function nn.Linear:init(n_in, n_out, opts)
  opts = check.options("Linear", opts, { "bias", "dtype", "init" })
  n_in = check.positive("Linear: n_in", n_in, 4)
  n_out = check.positive("Linear: n_out", n_out, 4)
  local dtype = check.dtype("Linear", opts.dtype)
  self.n_in, self.n_out = n_in, n_out
  initialise(self:register_parameter("weight", lv.zeros({ n_out, n_in }, dtype)), opts.init)
  if opts.bias ~= false then
    self:register_parameter("bias", lv.zeros({ n_out }, dtype))
  end
end
function nn.Linear:forward(x) return nn.F.linear(x, self.weight, self.bias) end
function nn.Linear:extra_repr()
  return string.format("%d -> %d%s", self.n_in, self.n_out, self.bias and "" or ", no bias")
end

--- What Conv2d and ConvTranspose2d share: checked sizes, stride and
-- padding, and a weight of `weight_shape(kh, kw, c_in, c_out)` with a
-- bias [c_out].
local function init_conv(self, name, c_in, c_out, kernel, opts, weight_shape)
  c_in = check.positive(name .. ": c_in", c_in, 5)
  c_out = check.positive(name .. ": c_out", c_out, 5)
  local kh, kw = pair(kernel, name .. ": kernel", true)
  self.c_in, self.c_out, self.kernel = c_in, c_out, { kh, kw }
  self.stride, self.padding = opts.stride or 1, opts.padding or 0
  pair(self.stride, name .. ": stride", true)
  resolve_padding(self.padding, 1, 1, kh, kw, 1, 1, name)     -- validates the option
  local dtype = check.dtype(name, opts.dtype)
  initialise(self:register_parameter("weight", lv.zeros(weight_shape(kh, kw, c_in, c_out), dtype)), opts.init)
  if opts.bias ~= false then self:register_parameter("bias", lv.zeros({ c_out }, dtype)) end
end

nn.Conv2d = class("Conv2d")
function nn.Conv2d:init(c_in, c_out, kernel, opts)
  opts = check.options("Conv2d", opts, { "stride", "padding", "bias", "dtype", "init" })
  init_conv(self, "Conv2d", c_in, c_out, kernel, opts,
            function(kh, kw, i, o) return { o, i, kh, kw } end)
end
function nn.Conv2d:forward(x)
  return nn.F.conv2d(x, self.weight, self.bias, { stride = self.stride, padding = self.padding })
end
function nn.Conv2d:extra_repr()
  return string.format("%d -> %d, kernel %dx%d, stride %s, padding %s", self.c_in, self.c_out,
    self.kernel[1], self.kernel[2], type(self.stride) == "table" and table.concat(self.stride, "x")
    or tostring(self.stride), type(self.padding) == "table" and "{" .. table.concat(self.padding, ",") .. "}"
    or tostring(self.padding))
end

nn.ConvTranspose2d = class("ConvTranspose2d")
function nn.ConvTranspose2d:init(c_in, c_out, kernel, opts)
  opts = check.options("ConvTranspose2d", opts,
                       { "stride", "padding", "output_padding", "bias", "dtype", "init" })
  self.output_padding = opts.output_padding
  if opts.output_padding ~= nil then
    local oph, opw = pair(opts.output_padding, "ConvTranspose2d: output_padding")
    if oph < 0 or opw < 0 then
      error(string.format("ConvTranspose2d: output_padding must not be negative, got %dx%d", oph, opw), 3)
    end
  end
  -- [c_in, c_out, kh, kw]: fans as the adjoint convolution sees them
  init_conv(self, "ConvTranspose2d", c_in, c_out, kernel, opts,
            function(kh, kw, i, o) return { i, o, kh, kw } end)
end
function nn.ConvTranspose2d:forward(x, output_size)
  return nn.F.conv_transpose2d(x, self.weight, self.bias, {
    stride = self.stride, padding = self.padding,
    output_padding = self.output_padding, output_size = output_size })
end
nn.ConvTranspose2d.extra_repr = nn.Conv2d.extra_repr

local function activation(name, op)
  local C = class(name)
  function C:forward(x) return x[op](x) end
  return C
end
nn.Softplus = activation("Softplus", "softplus")
nn.ReLU = activation("ReLU", "relu")
nn.Tanh = activation("Tanh", "tanh")
nn.Sigmoid = activation("Sigmoid", "sigmoid")

--- The built-in layers take a tensor: anything else is refused in words,
-- naming the layer, before it reaches an op.
local function takes_tensor(C)
  C.__call = function(self, x, ...)
    if not lv.is_tensor(x) or check.typename(x) == "a freed tensor" then
      error(string.format("%s: the input must be a tensor (got %s)", C.name, check.typename(x)), 2)
    end
    return self:forward(x, ...)
  end
end
for _, C in ipairs({ nn.Linear, nn.Conv2d, nn.ConvTranspose2d, nn.Softplus, nn.ReLU, nn.Tanh, nn.Sigmoid }) do
  takes_tensor(C)
end

--- Sequential(m1, m2, ...): each module's results are the next one's
-- arguments (so a GaussianHead may end it with two results).
nn.Sequential = class("Sequential")
function nn.Sequential:init(...)
  for i = 1, select("#", ...) do
    local m = select(i, ...)
    if type(m) ~= "table" or getmetatable(m) == nil or m.forward == nil then
      error(string.format("Sequential: argument %d is not a module", i), 4)
    end
    self:add_module(tostring(i), m)
  end
end
function nn.Sequential:forward(...)
  local values = table.pack(...)
  for _, c in ipairs(self._children) do
    values = table.pack(c.module(table.unpack(values, 1, values.n)))
  end
  return table.unpack(values, 1, values.n)
end
function nn.Sequential:add(m)
  if type(m) ~= "table" or getmetatable(m) == nil or m.forward == nil then
    error(string.format("Sequential:add: expected a module (got %s)", check.typename(m)), 2)
  end
  return self:add_module(tostring(#self._children + 1), m)
end
function nn.Sequential:__len() return #self._children end

--- Reshape(d1, d2, ...): each sample to the given shape (the batch dim is
-- kept). Flatten(): each sample to a vector.
nn.Reshape = class("Reshape")
takes_tensor(nn.Reshape)
function nn.Reshape:init(...)
  local sizes = table.pack(...)
  if type(sizes[1]) == "table" and sizes.n == 1 then sizes = table.pack(table.unpack(sizes[1])) end
  if sizes.n == 0 then error("Reshape: give the sizes of a sample, e.g. Reshape(1, 28, 28)", 4) end
  self.shape = {}
  for i = 1, sizes.n do
    local s = sizes[i]
    local n = check.integral(s)
    if not n or (n < 1 and n ~= -1) then
      error(string.format("Reshape: size %d must be a positive integer or -1", i), 4)
    end
    self.shape[i] = n
  end
end
function nn.Reshape:forward(x)
  return x:reshape(x:size(1), table.unpack(self.shape))
end
function nn.Reshape:extra_repr() return table.concat(self.shape, "x") end

nn.Flatten = class("Flatten")
takes_tensor(nn.Flatten)
function nn.Flatten:forward(x)
  if x:dim() < 1 then error("Flatten: the input must have a batch dim (got a 0-dim tensor)", 2) end
  return x:reshape(x:size(1), -1)
end

--- GaussianHead(n_in, d): returns mu [B, d] and sigma = softplus(.) [B, d].
nn.GaussianHead = class("GaussianHead")
takes_tensor(nn.GaussianHead)
function nn.GaussianHead:init(n_in, d, opts)
  check.options("GaussianHead", opts, { "bias", "dtype", "init" })
  d = check.positive("GaussianHead: d", d, 4)
  self.d = d
  self:add_module("mu", nn.Linear(n_in, d, opts))
  self:add_module("sigma", nn.Linear(n_in, d, opts))
  self.mu_layer, self.sigma_layer = self._children[1].module, self._children[2].module
end
function nn.GaussianHead:forward(h)
  return self.mu_layer(h), self.sigma_layer(h):softplus()
end
function nn.GaussianHead:extra_repr() return string.format("-> mu, sigma of %d dims", self.d) end

nn.Module = Module
return nn
