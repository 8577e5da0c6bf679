--- A short tour of the toolkit: `./lvae scripts/tour.lua`.
--
-- Fits a two-layer softplus network to a noisy tanh with plain gradient
-- descent written in Lua over lv.grad, then shows the two things the
-- integrator flows are built on: the gradient of a potential U(z) taken
-- through the tape, and its Hessian (second order) for a batch of points.
-- The experiments themselves are scripts/images.lua and scripts/gaussian.lua.

local lv = require "lvae"

lv.manual_seed(1)
local n, hidden = 256, 32
local x = lv.linspace(-3, 3, n, "f64"):view(n, 1)
local y = (x * 1.5):tanh() + lv.randn({ n, 1 }, "f64") * 0.05

local W1 = lv.param(lv.randn({ 1, hidden }, "f64") * 1.0)
local b1 = lv.param(lv.zeros({ hidden }, "f64"))
local W2 = lv.param(lv.randn({ hidden, 1 }, "f64") * (1 / math.sqrt(hidden)))
local b2 = lv.param(lv.zeros({ 1 }, "f64"))
local params = { W1, b1, W2, b2 }

local function predict(input)
  return (input:matmul(W1) + b1):softplus():matmul(W2) + b2
end

print("fitting y = tanh(1.5 x) + noise with a 1-32-1 softplus network")
local lr = 0.01
local t0 = lv.clock()
for step = 1, 2000 do
  local loss = (predict(x) - y):square():mean()
  local grads = lv.grad(loss, params)
  lv.no_grad(function()
    for i, p in ipairs(params) do p:copy_(p - grads[i] * lr) end
  end)
  if step == 1 or step % 500 == 0 then
    print(string.format("  step %4d  mse %.5f", step, loss:item()))
  end
end
print(string.format("  %.2f s", lv.clock() - t0))

-- A potential U(z) = 0.5 |z|^2 + sum softplus(z W) for a batch of z: its
-- gradient and per-sample Hessian through the tape.
local d = 3
local W = lv.randn({ d, d }, "f64")
local function U(z) return (z:square():sum(2) * 0.5) + z:matmul(W):softplus():sum(2) end
local z = lv.randn({ 2, d }, "f64")
local zp = lv.param(z:clone())
local g = lv.grad(U(zp):sum(), { zp })[1]
print("\ngradient of U at two points:")
print(g)
print("per-sample Hessians (2 x 3 x 3):")
print(lv.hessian(U, z))
