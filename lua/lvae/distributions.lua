--- lvae.distributions: the diagonal Normal and the Bernoulli that the
-- models need, written with the toolkit's ops so that every density,
-- entropy and KL is differentiable on the tape (to any order).
--
--   local D = require "lvae.distributions"
--   local q = D.Normal(mu, sigma)           -- sigma > 0, shapes broadcast
--   local z = q:rsample()                   -- mu + sigma * eps, on the tape
--   local lq = q:log_prob(z):sum(-1)        -- elementwise; sum it yourself
--   local px = D.Bernoulli{logits = l}      -- or {probs = p}
--   local lp = px:log_prob(x):sum(-1)       -- x l - softplus(l), stable
--
-- Densities are elementwise (not summed over any dim): a "diagonal"
-- Normal is just independent coordinates, and the caller sums the event
-- dims it means. Parameters are broadcast to one batch shape when made
-- (expanded views, so gradients flow back to the originals). `n` in
-- sample/rsample adds a leading sample dim (a number) or dims (a list).
--
-- Not here: other families, transforms, event-shape bookkeeping.

local lv = require "lvae.base"
local check = require "lvae.check"

local M = {}

local HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)

---- shared helpers --------------------------------------------------------------

local fail, shape_string, broadcast_shape = check.fail, check.shape, check.broadcast_shape

local function same_shape(a, b)
  if #a ~= #b then return false end
  for i = 1, #a do if a[i] ~= b[i] then return false end end
  return true
end

--- The sample shape n (nil, a number or a list) followed by shape.
local function sample_shape(where, n, shape)
  local out = {}
  if n ~= nil then
    if math.type(n) ~= nil then
      out[1] = check.integral(n) or n
    elseif type(n) == "table" and not lv.is_tensor(n) then
      for i, s in ipairs(n) do out[i] = check.integral(s) or s end
    else
      fail(where, "the sample count must be an integer or a list of sizes (got %s)", check.typename(n))
    end
    for _, s in ipairs(out) do
      if math.type(s) ~= "integer" or s < 0 then
        fail(where, "sample sizes must be non-negative integers (got %s)", tostring(s))
      end
    end
  end
  for _, s in ipairs(shape) do out[#out + 1] = s end
  return out
end

--- A tensor from a tensor or a number (then of the given dtype).
local function as_tensor(where, name, v, dtype)
  if lv.is_tensor(v) then return check.tensor(where, name, v) end
  if math.type(v) ~= nil then return lv.tensor(v, dtype or "f32") end
  fail(where, "%s must be a tensor or a number (got %s)", name, v == nil and "nil" or type(v))
end

--- The values of a comparison counted (no gradient, no tape).
local function count(mask)
  return lv.no_grad(function() return mask:sum():item() end)
end

--- How many entries of t are NaN, and how many are +-inf.
local function nonfinite(t)
  return lv.no_grad(function() return count(t:ne(t)), count(t:abs():eq(math.huge)) end)
end

local function make_class(name, lazy)
  local class = {}
  local mt = {
    __name = "lvae.distributions." .. name,
    __index = function(self, key)
      local make = lazy[key]
      if make then
        local v = make(self)
        rawset(self, key, v)
        return v
      end
      return class[key]
    end,
    __tostring = function(self)
      return string.format("%s(batch shape %s, %s)", name,
                           shape_string(self.batch_shape), self.dtype)
    end,
  }
  return class, mt
end

--- Refuses, for d:kl(other), an other that is not of d's own kind (mt).
local function check_kind(name, mt, other)
  if getmetatable(other) ~= mt then
    fail("distributions." .. name .. ":kl", "the other distribution must be a %s (got %s)", name,
         type(other) == "table" and tostring(other) or type(other))
  end
end

---- Normal ---------------------------------------------------------------------

local Normal, NormalMT = make_class("Normal", {
  variance = function(self) return self.stddev:square() end,
})

--- Normal(mu, sigma [, {validate = true}]): independent N(mu_i, sigma_i^2).
-- mu and sigma are tensors (or one of them a number) of broadcastable
-- shapes; sigma must be positive (checked unless validate = false).
-- Fields: mean (= loc = mu), stddev (= scale = sigma), variance,
-- batch_shape, dtype.
function M.Normal(mu, sigma, opts)
  local where = "distributions.Normal"
  if lv.is_tensor(mu) then check.tensor(where, "mu (argument 1)", mu) end
  if lv.is_tensor(sigma) then check.tensor(where, "sigma (argument 2)", sigma) end
  opts = check.options(where, opts, { "validate" })
  check.flag(where, "validate", opts.validate)
  local dtype = (lv.is_tensor(mu) and mu:dtype()) or (lv.is_tensor(sigma) and sigma:dtype()) or nil
  mu = as_tensor(where, "mu (argument 1)", mu, dtype)
  sigma = as_tensor(where, "sigma (argument 2)", sigma, dtype)
  local shape = broadcast_shape(mu:size(), sigma:size())
  if not shape then
    fail(where, "shapes of mu %s and sigma %s cannot be broadcast",
         shape_string(mu:size()), shape_string(sigma:size()))
  end
  if opts.validate ~= false then
    local bad = count(sigma:le(0))
    if bad > 0 then
      fail(where, "sigma must be positive (%d entr%s <= 0)", bad, bad == 1 and "y is" or "ies are")
    end
    local nan, inf = nonfinite(sigma)
    if nan + inf > 0 then
      fail(where, "sigma must be finite (%d NaN, %d infinite)", nan, inf)
    end
    nan = nonfinite(mu)
    if nan > 0 then fail(where, "mu must not be NaN (%d NaN)", nan) end
  end
  if not same_shape(mu:size(), shape) then mu = mu:expand(shape) end
  if not same_shape(sigma:size(), shape) then sigma = sigma:expand(shape) end
  local d = (mu:dtype() == "f64" or sigma:dtype() == "f64") and "f64" or "f32"
  return setmetatable({ mean = mu, stddev = sigma, loc = mu, scale = sigma,
                        batch_shape = shape, dtype = d }, NormalMT)
end

--- log N(x; mu, sigma^2) elementwise:
-- -((x - mu) / sigma)^2 / 2 - log sigma - log(2 pi) / 2.
--- x, a tensor or a number, checked to broadcast with the batch shape.
local function observation(where, x, d)
  x = as_tensor(where, "x", x, d.dtype)
  if not broadcast_shape(x:size(), d.batch_shape) then
    fail(where, "x of shape %s does not broadcast with the batch shape %s", shape_string(x:size()),
         shape_string(d.batch_shape))
  end
  return x
end

function Normal:log_prob(x)
  x = observation("distributions.Normal:log_prob", x, self)
  if self.standard then return M.standard_normal_log_prob(x) end
  return -0.5 * ((x - self.mean) / self.stddev):square() - self.stddev:log() - HALF_LOG_2PI
end

-- rsample and sample, where naming the one called.
local function normal_draw(self, n, gen, where)
  local shape = sample_shape(where, n, self.batch_shape)
  check.generator(where, "gen", gen)
  local eps = check.call(where, lv.randn, shape, self.dtype, gen)
  if self.standard then return eps end
  return self.mean + self.stddev * eps
end

--- mu + sigma * eps, eps ~ N(0, I) from lv.randn (or the generator gen):
-- differentiable w.r.t. mu and sigma (the reparameterisation trick).
function Normal:rsample(n, gen) return normal_draw(self, n, gen, "distributions.Normal:rsample") end

--- rsample's values off the tape.
function Normal:sample(n, gen)
  return lv.no_grad(function() return normal_draw(self, n, gen, "distributions.Normal:sample") end)
end

--- Elementwise entropy: 1/2 + log(2 pi)/2 + log sigma.
function Normal:entropy()
  return self.stddev:log() + (0.5 + HALF_LOG_2PI)
end

--- KL(self || other) elementwise, closed form:
-- log(s2/s1) + (s1^2 + (m1 - m2)^2) / (2 s2^2) - 1/2, written as
-- ((s1/s2)^2 + ((m1 - m2)/s2)^2 - 1 - log (s1/s2)^2) / 2.
function Normal:kl(other)
  check_kind("Normal", NormalMT, other)
  local ratio = (self.stddev / other.stddev):square()
  local t = ((self.mean - other.mean) / other.stddev):square()
  return 0.5 * (ratio + t - 1 - ratio:log())
end

--- log N(x; 0, I) elementwise: -x^2 / 2 - log(2 pi) / 2.
function M.standard_normal_log_prob(x)
  check.tensor("distributions.standard_normal_log_prob", "x", x)
  return -0.5 * x:square() - HALF_LOG_2PI
end

--- StandardNormal(shape [, dtype]) or StandardNormal(like): N(0, I) with
-- the given batch shape (a list, or a size for a vector) or that of the
-- tensor `like` (and its dtype). A Normal whose log_prob and rsample skip
-- the arithmetic with mu = 0 and sigma = 1.
function M.StandardNormal(shape, dtype)
  local where = "distributions.StandardNormal"
  if lv.is_tensor(shape) then
    dtype = dtype or shape:dtype()
    shape = shape:size()
  elseif check.integral(shape) then
    shape = { check.integral(shape) }
  elseif type(shape) ~= "table" then
    fail(where, "expected a shape or a tensor (got %s)", shape == nil and "nil" or type(shape))
  end
  dtype = dtype or "f32"
  local zeros = check.call(where, lv.zeros, shape, dtype)
  local d = M.Normal(zeros, lv.ones(shape, dtype), { validate = false })
  rawset(d, "standard", true)
  return d
end

---- Bernoulli ------------------------------------------------------------------

local Bernoulli, BernoulliMT = make_class("Bernoulli", {
  probs = function(self) return self.logits:sigmoid() end,
  mean = function(self) return self.probs end,
  variance = function(self) return self.probs * (1 - self.probs) end,
})

-- The smallest probability a probs-made Bernoulli's logits stand for
-- (PyTorch clamps to the dtype's epsilon too): p = 0 or 1 would give
-- infinite logits, and x l - softplus(l) would be inf - inf.
local PROB_EPS = { f32 = 2 ^ -23, f64 = 2 ^ -52 }

--- Bernoulli{logits = l} or Bernoulli{probs = p} (p in [0, 1]; checked
-- unless validate = false). Fields: logits, probs, mean, variance,
-- batch_shape, dtype.
function M.Bernoulli(args)
  local where = "distributions.Bernoulli"
  if type(args) ~= "table" or lv.is_tensor(args) then
    fail(where, "expected a table {logits = l} or {probs = p} (got %s)",
         lv.is_tensor(args) and "a tensor" or type(args))
  end
  for k in pairs(args) do
    if k ~= "logits" and k ~= "probs" and k ~= "validate" then
      fail(where, "unknown option '%s' (known: logits, probs, validate)", tostring(k))
    end
  end
  if (args.logits == nil) == (args.probs == nil) then
    fail(where, "give exactly one of logits and probs")
  end
  local self = {}
  if args.logits ~= nil then
    local l = args.logits
    if not lv.is_tensor(l) then fail(where, "logits must be a tensor (got %s)", type(l)) end
    if args.validate ~= false then
      local nan = nonfinite(l)
      if nan > 0 then fail(where, "logits must not be NaN (%d NaN)", nan) end
    end
    self.logits = l
  else
    local p = args.probs
    if not lv.is_tensor(p) then fail(where, "probs must be a tensor (got %s)", type(p)) end
    if args.validate ~= false then
      local bad = count(p:lt(0)) + count(p:gt(1)) + nonfinite(p)
      if bad > 0 then
        fail(where, "probs must lie in [0, 1] (%d entr%s outside)", bad, bad == 1 and "y is" or "ies are")
      end
    end
    local eps = PROB_EPS[p:dtype()]
    local pc = p:clamp(eps, 1 - eps)
    self.probs = p
    self.logits = pc:log() - (-pc):log1p()
  end
  self.batch_shape = self.logits:size()
  self.dtype = self.logits:dtype()
  return setmetatable(self, BernoulliMT)
end

--- log p(x) elementwise in the stable form x l - softplus(l)
-- (= x log p + (1 - x) log(1 - p)); x may be any value in [0, 1].
function Bernoulli:log_prob(x)
  x = observation("distributions.Bernoulli:log_prob", x, self)
  return x * self.logits - self.logits:softplus()
end

--- 0/1 draws with probability sigmoid(l) (lv.bernoulli), off the tape.
function Bernoulli:sample(n, gen)
  local where = "distributions.Bernoulli:sample"
  local shape = sample_shape(where, n, self.batch_shape)
  check.generator(where, "gen", gen)
  return lv.no_grad(function()
    local p = self.probs
    if not same_shape(p:size(), shape) then p = check.call(where, lv.expand, p, shape) end
    return check.call(where, lv.bernoulli, p, gen)
  end)
end

--- Elementwise entropy -p log p - (1 - p) log(1 - p) = softplus(l) - p l.
function Bernoulli:entropy()
  return self.logits:softplus() - self.probs * self.logits
end

--- KL(self || other) elementwise:
-- p (log p - log q) + (1 - p) (log(1 - p) - log(1 - q)), with
-- log p = logsigmoid(l) and log(1 - p) = logsigmoid(-l).
function Bernoulli:kl(other)
  check_kind("Bernoulli", BernoulliMT, other)
  local l1, l2 = self.logits, other.logits
  local p = self.probs
  return p * (l1:logsigmoid() - l2:logsigmoid())
         + (1 - p) * ((-l1):logsigmoid() - (-l2):logsigmoid())
end

return M
