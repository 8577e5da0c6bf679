-- linalg_spec.lua -- cholesky, logdet, solve, inverse, eigh (src/linalg.c):
-- values against hand-computed closed forms and defining identities, in
-- both dtypes; batched results against per-matrix ones; strided views
-- against their contiguous copies; and the wording of every error.

local lv = require "lvae"

local function max_abs_diff(a, b)
  return (a - b):abs():max():item()
end

-- M M^T + n I for a random M: symmetric positive definite, well conditioned.
local function random_spd(n, dtype)
  local m = lv.randn({n, n}, dtype)
  return m:matmul(m:transpose(1, 2)) + lv.eye(n, dtype) * lv.tensor(n, dtype)
end

-- A random non-symmetric matrix, kept well conditioned by n I.
local function random_general(n, dtype)
  return lv.randn({n, n}, dtype) + lv.eye(n, dtype) * lv.tensor(n, dtype)
end

-- The same matrix with its upper triangle overwritten by garbage: cholesky
-- and eigh must read only the lower one.
local function spoil_upper(a)
  local n = a:size()[1]
  local t = a:totable()
  for i = 1, n do
    for j = i + 1, n do t[i][j] = 1000 + i * j end
  end
  return lv.tensor(t, a:dtype())
end

for _, dtype in ipairs({"f32", "f64"}) do
  local tol = dtype == "f32" and 1e-4 or 1e-10
  local function T(t) return lv.tensor(t, dtype) end

  describe("linalg (" .. dtype .. ")", function()
    before_each(function() lv.manual_seed(1) end)

    describe("cholesky", function()
      it("matches a hand-computed factor", function()
        -- [[4,2],[2,3]] = L L^T with L = [[2,0],[1,sqrt 2]]
        local l = lv.cholesky(T{{4, 2}, {2, 3}})
        assert.are.equal(dtype, l:dtype())
        assert.is_true(max_abs_diff(l, T{{2, 0}, {1, math.sqrt(2)}}) < tol)
      end)

      it("reconstructs A = L L^T with L lower triangular", function()
        local a = random_spd(5, dtype)
        local l = a:cholesky()
        assert.are.same({5, 5}, l:size())
        assert.is_true(max_abs_diff(l:matmul(l:transpose(1, 2)), a) < tol * 10)
        for i = 1, 5 do
          assert.is_true(l[i][i]:item() > 0)
          for j = i + 1, 5 do assert.are.equal(0, l[i][j]:item()) end
        end
      end)

      it("reads only the lower triangle", function()
        local a = random_spd(4, dtype)
        assert.are.equal(0, max_abs_diff(lv.cholesky(spoil_upper(a)), lv.cholesky(a)))
      end)

      it("takes a 0 x 0 matrix", function()
        assert.are.same({0, 0}, lv.cholesky(lv.zeros({0, 0}, dtype)):size())
      end)
    end)

    describe("logdet", function()
      it("is log|det| and sign of a 2 x 2", function()
        local logabs, sign = lv.logdet(T{{3, 1}, {2, 4}})    -- det 10
        assert.are.same({}, logabs:size())
        assert.are.same({}, sign:size())
        assert.is_true(math.abs(logabs:item() - math.log(10)) < tol)
        assert.are.equal(1, sign:item())
      end)

      it("has sign -1 for a negative determinant", function()
        local logabs, sign = T{{2, 1, 0}, {1, 3, 1}, {0, 1, -4}}:logdet() -- det -22
        assert.is_true(math.abs(logabs:item() - math.log(22)) < tol)
        assert.are.equal(-1, sign:item())
        -- a row swap alone flips the sign
        logabs, sign = T{{0, 1}, {1, 0}}:logdet()
        assert.are.equal(0, logabs:item())
        assert.are.equal(-1, sign:item())
      end)

      it("is -inf with sign 0 for singular matrices", function()
        for _, a in ipairs({T{{1, 2}, {2, 4}}, T{{1, 2, 3}, {2, 4, 6}, {1, 0, 1}},
                            lv.zeros({3, 3}, dtype)}) do
          local logabs, sign = lv.logdet(a)
          assert.are.equal(-math.huge, logabs:item())
          assert.are.equal(0, sign:item())
        end
      end)

      it("equals 2 sum log diag(cholesky) on SPD matrices", function()
        local a = random_spd(6, dtype)
        local l = lv.cholesky(a)
        local expected = 0
        for i = 1, 6 do expected = expected + 2 * math.log(l[i][i]:item()) end
        local logabs, sign = lv.logdet(a)
        assert.is_true(math.abs(logabs:item() - expected) < tol * 10)
        assert.are.equal(1, sign:item())
      end)

      it("is 0 with sign 1 for a 0 x 0 matrix", function()
        local logabs, sign = lv.logdet(lv.zeros({0, 0}, dtype))
        assert.are.equal(0, logabs:item())
        assert.are.equal(1, sign:item())
      end)
    end)

    describe("solve", function()
      it("solves a hand-computed system", function()
        -- [[4,2],[2,3]] x = [1,1] has x = [1/8, 1/4]
        local x = lv.solve(T{{4, 2}, {2, 3}}, T{1, 1})
        assert.are.same({2}, x:size())
        assert.is_true(max_abs_diff(x, T{0.125, 0.25}) < tol)
      end)

      it("gives A X = B for a matrix right-hand side", function()
        local a, b = random_general(5, dtype), lv.randn({5, 3}, dtype)
        local x = a:solve(b)
        assert.are.same({5, 3}, x:size())
        assert.are.equal(dtype, x:dtype())
        assert.is_true(max_abs_diff(a:matmul(x), b) < tol * 10)
      end)

      it("gives A x = b for a vector right-hand side", function()
        local a, b = random_general(5, dtype), lv.randn({5}, dtype)
        local x = lv.solve(a, b)
        assert.are.same({5}, x:size())
        assert.is_true(max_abs_diff(a:matmul(x), b) < tol * 10)
      end)
    end)

    describe("inverse", function()
      it("matches a hand-computed inverse", function()
        -- [[4,2],[2,3]]^-1 = [[3,-2],[-2,4]] / 8
        local inv = lv.inverse(T{{4, 2}, {2, 3}})
        assert.is_true(max_abs_diff(inv, T{{0.375, -0.25}, {-0.25, 0.5}}) < tol)
      end)

      it("gives A A^-1 = A^-1 A = I", function()
        local a = random_general(6, dtype)
        local inv = a:inverse()
        assert.are.same({6, 6}, inv:size())
        assert.is_true(max_abs_diff(a:matmul(inv), lv.eye(6, dtype)) < tol * 10)
        assert.is_true(max_abs_diff(inv:matmul(a), lv.eye(6, dtype)) < tol * 10)
      end)
    end)

    describe("eigh", function()
      it("matches hand-computed eigenvalues", function()
        local w, v = lv.eigh(T{{2, 1}, {1, 2}})      -- eigenvalues 1 and 3
        assert.is_true(max_abs_diff(w, T{1, 3}) < tol)
        -- eigenvectors (1,-1)/sqrt 2 and (1,1)/sqrt 2, up to sign
        local s = math.sqrt(0.5)
        assert.is_true(math.abs(math.abs(v[1][1]:item()) - s) < tol)
        assert.is_true(math.abs(v[1][1]:item() + v[2][1]:item()) < tol)
        assert.is_true(math.abs(v[1][2]:item() - v[2][2]:item()) < tol)
      end)

      it("gives A V = V diag(w), ascending w, orthonormal V", function()
        local n = 6
        local a = random_spd(n, dtype) - lv.eye(n, dtype) * lv.tensor(2 * n, dtype)
        local w, v = a:eigh()
        assert.are.same({n}, w:size())
        assert.are.same({n, n}, v:size())
        for i = 1, n - 1 do assert.is_true(w[i]:item() <= w[i + 1]:item()) end
        -- V * w scales column j of V by w_j: that is V diag(w)
        assert.is_true(max_abs_diff(a:matmul(v), v * w) < tol * 100)
        assert.is_true(max_abs_diff(v:transpose(1, 2):matmul(v), lv.eye(n, dtype)) < tol * 10)
      end)

      it("reads only the lower triangle", function()
        local a = random_spd(4, dtype)
        local w1, v1 = lv.eigh(spoil_upper(a))
        local w2, v2 = lv.eigh(a)
        assert.are.equal(0, max_abs_diff(w1, w2))
        assert.are.equal(0, max_abs_diff(v1, v2))
      end)
    end)

    describe("batched", function()
      local B, n = 4, 3

      local function spd_batch()
        local m = lv.randn({B, n, n}, dtype)
        return m:matmul(m:transpose(2, 3)) + lv.eye(n, dtype) * lv.tensor(n, dtype)
      end

      it("cholesky, inverse: each matrix as if alone", function()
        local a = spd_batch()
        local l, inv = lv.cholesky(a), lv.inverse(a)
        assert.are.same({B, n, n}, l:size())
        assert.are.same({B, n, n}, inv:size())
        for i = 1, B do
          assert.is_true(max_abs_diff(l[i], lv.cholesky(a[i])) < tol)
          assert.is_true(max_abs_diff(inv[i], lv.inverse(a[i])) < tol)
        end
      end)

      it("logdet: batch-shaped outputs, each as if alone", function()
        local a = lv.randn({B, n, n}, dtype)
        local logabs, sign = lv.logdet(a)
        assert.are.same({B}, logabs:size())
        assert.are.same({B}, sign:size())
        for i = 1, B do
          local la, s = lv.logdet(a[i])
          assert.is_true(math.abs(logabs[i]:item() - la:item()) < tol)
          assert.are.equal(s:item(), sign[i]:item())
        end
        -- two batch dims
        local a2 = lv.randn({2, 3, n, n}, dtype)
        assert.are.same({2, 3}, lv.logdet(a2):size())
        local la = lv.logdet(a2[2][3])
        assert.is_true(math.abs(lv.logdet(a2)[2][3]:item() - la:item()) < tol)
      end)

      it("solve: matrix and vector right-hand sides", function()
        local a = spd_batch()
        local bm, bv = lv.randn({B, n, 2}, dtype), lv.randn({B, n}, dtype)
        local xm, xv = lv.solve(a, bm), lv.solve(a, bv)
        assert.are.same({B, n, 2}, xm:size())
        assert.are.same({B, n}, xv:size())
        for i = 1, B do
          assert.is_true(max_abs_diff(xm[i], lv.solve(a[i], bm[i])) < tol)
          assert.is_true(max_abs_diff(xv[i], lv.solve(a[i], bv[i])) < tol)
        end
      end)

      it("eigh: each matrix as if alone", function()
        local a = spd_batch()
        local w, v = lv.eigh(a)
        assert.are.same({B, n}, w:size())
        assert.are.same({B, n, n}, v:size())
        for i = 1, B do
          local wi, vi = lv.eigh(a[i])
          assert.is_true(max_abs_diff(w[i], wi) < tol)
          assert.is_true(max_abs_diff(v[i], vi) < tol)
        end
      end)

      it("takes an empty batch", function()
        local logabs = lv.logdet(lv.zeros({0, n, n}, dtype))
        assert.are.same({0}, logabs:size())
        assert.are.same({0, n, n}, lv.inverse(lv.zeros({0, n, n}, dtype)):size())
      end)
    end)

    describe("non-contiguous input", function()
      it("transposed: same as its contiguous copy", function()
        local t = random_general(5, dtype):transpose(1, 2)
        assert.is_false(t:is_contiguous())
        local c = t:contiguous()
        local b = lv.randn({5, 2}, dtype)
        assert.is_true(max_abs_diff(lv.inverse(t), lv.inverse(c)) < tol)
        assert.is_true(max_abs_diff(lv.solve(t, b), lv.solve(c, b)) < tol)
        -- a column-major right-hand side
        local bt = b:transpose(1, 2):contiguous():transpose(1, 2)
        assert.is_false(bt:is_contiguous())
        assert.is_true(max_abs_diff(lv.solve(c, bt), lv.solve(c, b)) < tol)
        local l1, s1 = lv.logdet(t)
        local l2, s2 = lv.logdet(c)
        assert.is_true(math.abs(l1:item() - l2:item()) < tol)
        assert.are.equal(s2:item(), s1:item())
      end)

      it("narrowed: same as its contiguous copy", function()
        local big = lv.zeros({7, 9}, dtype)
        local view = big:narrow(1, 2, 5):narrow(2, 3, 5)    -- row stride 9
        view:copy_(random_spd(5, dtype))
        assert.is_false(view:is_contiguous())
        local c = view:contiguous()
        assert.is_true(max_abs_diff(lv.cholesky(view), lv.cholesky(c)) < tol)
        assert.is_true(max_abs_diff(lv.inverse(view), lv.inverse(c)) < tol)
        local w1, v1 = lv.eigh(view)
        local w2, v2 = lv.eigh(c)
        assert.is_true(max_abs_diff(w1, w2) < tol)
        assert.is_true(max_abs_diff(v1, v2) < tol)
        local b = lv.randn({7, 2}, dtype):select(2, 2):narrow(1, 2, 5)  -- stride 2
        assert.is_false(b:is_contiguous())
        assert.is_true(max_abs_diff(lv.solve(view, b), lv.solve(c, b:contiguous())) < tol)
      end)

      it("strided batch dims: same as the contiguous copy", function()
        -- [n, B, n] memory seen as [B, n, n]: the batch dim is the middle one
        local m = lv.randn({4, 3, 3}, dtype)
        local spd = m:matmul(m:transpose(2, 3)) + lv.eye(3, dtype) * lv.tensor(3, dtype)
        local big = lv.zeros({3, 4, 3}, dtype)
        local a = big:transpose(1, 2)
        a:copy_(spd)
        assert.is_false(a:is_contiguous())
        local c = a:contiguous()
        assert.is_true(max_abs_diff(lv.cholesky(a), lv.cholesky(c)) < tol)
        assert.is_true(max_abs_diff(lv.inverse(a), lv.inverse(c)) < tol)
        local l1, s1 = lv.logdet(a)
        local l2, s2 = lv.logdet(c)
        assert.is_true(max_abs_diff(l1, l2) < tol)
        assert.are.equal(0, max_abs_diff(s1, s2))
        local w1, v1 = lv.eigh(a)
        local w2, v2 = lv.eigh(c)
        assert.is_true(max_abs_diff(w1, w2) < tol)
        assert.is_true(max_abs_diff(v1, v2) < tol)
        local b = lv.randn({4, 3}, dtype)
        assert.is_true(max_abs_diff(lv.solve(a, b), lv.solve(c, b)) < tol)
      end)
    end)

    describe("errors", function()
      it("not positive definite", function()
        assert.error_matches(function() lv.cholesky(T{{1, 2}, {2, 1}}) end,
          "bad argument #1 to 'cholesky' (matrix is not positive definite)", 1, true)
        local a = lv.zeros({3, 2, 2}, dtype) + lv.eye(2, dtype)
        a[2][1][1] = -1
        assert.error_matches(function() lv.cholesky(a) end,
          "matrix 2 of the batch is not positive definite", 1, true)
      end)

      it("singular", function()
        local s = T{{1, 2, 3}, {2, 4, 6}, {1, 0, 1}}
        assert.error_matches(function() lv.inverse(s) end,
          "bad argument #1 to 'inverse' (matrix is singular)", 1, true)
        assert.error_matches(function() lv.solve(s, T{1, 2, 3}) end,
          "matrix is singular", 1, true)
        assert.error_matches(function() s:solve(lv.zeros({3, 2}, dtype)) end,
          "singular", 1, true)
      end)

      it("not a square matrix", function()
        assert.error_matches(function() lv.cholesky(lv.zeros({3, 4}, dtype)) end,
          "expected a square matrix or a batch of them, got shape [3,4]", 1, true)
        assert.error_matches(function() lv.logdet(lv.zeros({3}, dtype)) end,
          "square matrix", 1, true)
        assert.error_matches(function() lv.eigh(lv.zeros({2, 3, 2}, dtype)) end,
          "got shape [2,3,2]", 1, true)
        assert.error_matches(function() lv.inverse(lv.tensor(1, dtype)) end,
          "square matrix", 1, true)
        assert.error_matches(function() lv.solve(lv.zeros({2, 3}, dtype), lv.zeros({2}, dtype)) end,
          "square matrix", 1, true)
      end)

      it("non-finite entries", function()
        for _, bad in ipairs({0 / 0, math.huge, -math.huge}) do
          local a = T{{1, 0}, {bad, 1}}
          for _, f in ipairs({lv.cholesky, lv.logdet, lv.inverse, lv.eigh}) do
            assert.error_matches(function() f(a) end, "matrix has non-finite entries", 1, true)
          end
          assert.error_matches(function() lv.solve(a, T{1, 1}) end, "non-finite", 1, true)
        end
        local batch = lv.zeros({2, 2, 2}, dtype) + lv.eye(2, dtype)
        batch[2][1][2] = 0 / 0
        assert.error_matches(function() lv.inverse(batch) end,
          "matrix 2 of the batch has non-finite entries", 1, true)
      end)

      it("solve: shapes that do not match", function()
        assert.error_matches(function() lv.solve(lv.zeros({2, 3, 3}, dtype), lv.zeros({4, 3}, dtype)) end,
          "bad argument #2 to 'solve' (shapes [2,3,3] and [4,3] do not match", 1, true)
        assert.error_matches(function() lv.solve(lv.eye(3, dtype), lv.zeros({2}, dtype)) end,
          "shapes [3,3] and [2] do not match", 1, true)
        assert.error_matches(function() lv.solve(lv.eye(3, dtype), lv.zeros({1, 3, 1}, dtype)) end,
          "do not match", 1, true)
      end)

      it("arguments that are not tensors", function()
        assert.has_error(function() lv.cholesky({{1, 0}, {0, 1}}) end)
        assert.has_error(function() lv.solve(lv.eye(2, dtype)) end)
      end)
    end)
  end)
end

describe("linalg mixed dtypes", function()
  it("solve computes in f64 when one operand is f64", function()
    local a32 = lv.tensor({{4, 2}, {2, 3}}, "f32")
    local b64 = lv.tensor({1, 1}, "f64")
    for _, x in ipairs({lv.solve(a32, b64), lv.solve(a32:to("f64"), lv.tensor({1, 1}, "f32"))}) do
      assert.are.equal("f64", x:dtype())
      assert.is_true(max_abs_diff(x, lv.tensor({0.125, 0.25}, "f64")) < 1e-12)
    end
  end)
end)
