-- nifti_spec.lua -- lv.load_nifti (src/nifti.c over nifticlib) and the
-- data preparation of scripts/mri.lua.
--
-- NIfTI files are built by hand here with string.pack (NIfTI-1 and
-- NIfTI-2 headers, every datatype, both byte orders, scaling, 4-D), so
-- that exact values are known without any other NIfTI software. Damaged
-- and foreign files must give errors that name the file and say what is
-- wrong, without nifticlib printing anything. The Colin27 brain of
-- Debian's mricron-data is checked against its header read independently
-- (gzip -dc and string.unpack); those tests are pending when the package
-- is missing (scripts/setup.sh installs it).

local lv = require "lvae"
local H = require "helpers"

local COLIN27 = "/usr/share/mricron/templates/ch2better.nii.gz"

---- files -----------------------------------------------------------------------

local sh_quote = H.sh_quote

local function make_dir() return H.make_dir("lvae_nifti_spec") end

local dir = make_dir()
local n_files = 0

--- Writes bytes to a new file in the spec's folder; returns its path.
local function write(bytes, ext)
  n_files = n_files + 1
  local path = string.format("%s/f%d%s", dir, n_files, ext or ".nii")
  local f = assert(io.open(path, "wb"))
  f:write(bytes)
  f:close()
  return path
end

--- gzip -c of a file into path .. ".gz"; returns that path.
local function gzip(path)
  local out = path .. ".gz"
  assert(os.execute("gzip -c " .. sh_quote(path) .. " > " .. sh_quote(out)))
  return out
end

local exists = H.exists

---- NIfTI by hand -----------------------------------------------------------------

-- datatype code, string.pack format, bytes per value, values to store
-- (the extremes each type holds exactly in f64)
local TYPES = {
  uint8 = { 2, "B", 1, { 0, 1, 17, 128, 200, 255 } },
  int8 = { 256, "b", 1, { -128, -1, 0, 1, 64, 127 } },
  int16 = { 4, "i2", 2, { -32768, -300, -1, 0, 1234, 32767 } },
  uint16 = { 512, "I2", 2, { 0, 1, 300, 40000, 65534, 65535 } },
  int32 = { 8, "i4", 4, { -2147483648, -70000, -1, 0, 123456, 2147483647 } },
  uint32 = { 768, "I4", 4, { 0, 1, 70000, 3000000000, 4294967294, 4294967295 } },
  int64 = { 1024, "i8", 8, { -(1 << 53), -5, 0, 7, 1 << 40, 1 << 53 } },
  uint64 = { 1280, "I8", 8, { 0, 3, 1 << 33, 1 << 52, 1 << 53, (1 << 62) } },
  float32 = { 16, "f", 4, { -1.5, -0.0, 0.25, 3.0, 1e30, -1e-30 } },
  float64 = { 64, "d", 8, { -1.5, 1e300, 0.1, -7.25, 1e-300, 2.0 } },
}

--- A NIfTI-1 single file: 348-byte header, 4 bytes of extension flag,
-- then the data at vox_offset 352 (unless o.vox_offset says otherwise).
-- o: dims {nx, ny, nz, ...}, type (a TYPES name) or datatype (a code),
-- values, slope, inter, endian ("<" or ">"), magic, pixdim, sform (a
-- 3x4 table: sform_code 1), descrip, dim0 (overrides #dims), raw_dims
-- (the 8 dim fields as given), data (raw bytes instead of values).
local function nifti1(o)
  local e = o.endian or "<"
  local t = TYPES[o.type or "int16"]
  local datatype = o.datatype or t[1]
  local dim = o.raw_dims or { o.dim0 or #o.dims }
  if not o.raw_dims then
    for i = 1, 7 do dim[i + 1] = o.dims[i] or 1 end
  end
  local pixdim = { 1 }
  for i = 1, 7 do pixdim[i + 1] = (o.pixdim or {})[i] or 1 end
  local srow = o.sform or { { 0, 0, 0, 0 }, { 0, 0, 0, 0 }, { 0, 0, 0, 0 } }
  local descrip = (o.descrip or "lvae test"):sub(1, 79)
  local h = string.pack(e .. "i4", 348) .. string.rep("\0", 36)
    .. string.pack(e .. string.rep("i2", 8), table.unpack(dim))
    .. string.pack(e .. "fff", 0, 0, 0)
    .. string.pack(e .. "i2i2i2i2", 0, datatype, 8 * t[3], 0)
    .. string.pack(e .. string.rep("f", 8), table.unpack(pixdim))
    .. string.pack(e .. "fff", o.vox_offset or 352, o.slope or 0, o.inter or 0)
    .. string.pack(e .. "i2", 0) .. "\0" .. "\0"
    .. string.pack(e .. "ffff", 0, 0, 0, 0)
    .. string.pack(e .. "i4i4", 0, 0)
    .. descrip .. string.rep("\0", 80 - #descrip)
    .. string.rep("\0", 24)
    .. string.pack(e .. "i2i2", 0, o.sform and 1 or 0)
    .. string.pack(e .. string.rep("f", 6), 0, 0, 0, 0, 0, 0)
    .. string.pack(e .. string.rep("f", 12), srow[1][1], srow[1][2], srow[1][3], srow[1][4],
                   srow[2][1], srow[2][2], srow[2][3], srow[2][4],
                   srow[3][1], srow[3][2], srow[3][3], srow[3][4])
    .. string.rep("\0", 16)
    .. (o.magic or "n+1\0")
  assert(#h == 348)
  local data = o.data
  if not data then
    local parts = {}
    for i, v in ipairs(o.values) do parts[i] = string.pack(e .. t[2], v) end
    data = table.concat(parts)
  end
  local pad = math.floor((o.vox_offset or 352) - 348)
  return h .. string.rep("\0", math.max(pad, 0)) .. data
end

--- A NIfTI-2 single file: 540-byte header, 4 bytes, data at 544.
local function nifti2(o)
  local e = o.endian or "<"
  local t = TYPES[o.type]
  local dim = { #o.dims }
  for i = 1, 7 do dim[i + 1] = o.dims[i] or 1 end
  local h = string.pack(e .. "i4", 540) .. "n+2\0\r\n\26\n"
    .. string.pack(e .. "i2i2", t[1], 8 * t[3])
    .. string.pack(e .. string.rep("i8", 8), table.unpack(dim))
    .. string.pack(e .. "ddd", 0, 0, 0)
    .. string.pack(e .. string.rep("d", 8), 1, 2, 3, 4, 1, 1, 1, 1)
    .. string.pack(e .. "i8", 544)
    .. string.pack(e .. "dddddd", o.slope or 0, o.inter or 0, 0, 0, 0, 0)
    .. string.pack(e .. "i8i8", 0, 0)
    .. string.rep("\0", 80 + 24)
    .. string.pack(e .. "i4i4", 0, 0)
  h = h .. string.rep("\0", 540 - #h)
  assert(#h == 540)
  local parts = {}
  for i, v in ipairs(o.values) do parts[i] = string.pack(e .. t[2], v) end
  return h .. "\0\0\0\0" .. table.concat(parts)
end

--- The nested table [nz][ny][nx] of values stored x fastest.
local function as_volume(values, nx, ny, nz, f)
  local out = {}
  for k = 1, nz do
    out[k] = {}
    for j = 1, ny do
      out[k][j] = {}
      for i = 1, nx do
        local v = values[i + nx * (j - 1) + nx * ny * (k - 1)]
        out[k][j][i] = f and f(v) or v
      end
    end
  end
  return out
end

local function f32(v) return (string.unpack("f", string.pack("f", v))) end

--- pcall's error, which must be there.
local function error_of(fn, ...)
  local ok, err = pcall(fn, ...)
  assert.is_false(ok, "expected an error")
  return tostring(err)
end

local function assert_error(path, needle, ...)
  local err = error_of(lv.load_nifti, path, ...)
  assert.truthy(err:find("lv.load_nifti: " .. path .. ": ", 1, true), err)
  assert.truthy(err:find(needle, 1, true), err)
  return err
end

---- reading ---------------------------------------------------------------------------

describe("lv.load_nifti reads", function()
  it("every integer and float datatype exactly, as [nz, ny, nx] (x fastest in the file)", function()
    for name, t in pairs(TYPES) do
      local values = t[4]
      local path = write(nifti1({ dims = { 3, 1, 2 }, type = name, values = values }))
      local x, info = lv.load_nifti(path, "f64")
      assert.same({ 2, 1, 3 }, x:size(), name)
      assert.equal("f64", x:dtype())
      local exact = name == "float32" and f32 or nil         -- stored as f32
      assert.same(as_volume(values, 3, 1, 2, exact), x:totable(), name)
      assert.equal(name, info.datatype)
      assert.equal(t[1], info.datatype_code)
      -- f32 by default: each value rounded once
      local y = lv.load_nifti(path)
      assert.equal("f32", y:dtype())
      assert.same(as_volume(values, 3, 1, 2, f32), y:totable(), name)
    end
  end)

  it("in both byte orders, and NIfTI-2 as NIfTI-1", function()
    local values = { 1, -2, 300, -32768, 32767, 5 }
    for _, endian in ipairs({ "<", ">" }) do
      local x = lv.load_nifti(write(nifti1({ dims = { 2, 3 }, type = "int16", values = values,
                                              endian = endian })), "f64")
      assert.same(as_volume(values, 2, 3, 1), x:totable())
      local info
      x, info = lv.load_nifti(write(nifti2({ dims = { 2, 3 }, type = "int16", values = values,
                                             endian = endian })), "f64")
      assert.same(as_volume(values, 2, 3, 1), x:totable())
      assert.equal(2, info.version)
      assert.same({ 2, 3 }, info.dims)
      assert.same({ 2, 3 }, info.pixdim)
    end
  end)

  it("applies scl_slope and scl_inter when the slope is set, and not when it is 0", function()
    local values = { -3, 0, 1, 100, 2000, -32768, 32767, 7 }
    local path = write(nifti1({ dims = { 2, 2, 2 }, type = "int16", values = values,
                                slope = 0.5, inter = -10 }))
    local x, info = lv.load_nifti(path, "f64")
    assert.same(as_volume(values, 2, 2, 2, function(v) return 0.5 * v - 10 end), x:totable())
    assert.is_true(info.scaled)
    assert.equal(0.5, info.scl_slope)
    assert.equal(-10, info.scl_inter)
    -- float data is scaled too (NIfTI-1: every type but RGB)
    x = lv.load_nifti(write(nifti1({ dims = { 2 }, type = "float32", values = { 1.5, -2 },
                                     slope = 4, inter = 1 })), "f64")
    assert.same({ { { 7, -7 } } }, x:totable())
    -- slope 0: stored values as they are
    x, info = lv.load_nifti(write(nifti1({ dims = { 2 }, type = "uint8", values = { 3, 250 },
                                           inter = 5 })), "f64")
    assert.same({ { { 3, 250 } } }, x:totable())
    assert.is_false(info.scaled)
    -- NIfTI-2's double slope
    x = lv.load_nifti(write(nifti2({ dims = { 2 }, type = "int32", values = { 3, -4 },
                                     slope = 0.25, inter = 1 })), "f64")
    assert.same({ { { 1.75, 0 } } }, x:totable())
  end)

  it("one volume of a 4-D image, the first by default", function()
    local values = {}
    for i = 1, 2 * 2 * 1 * 3 do values[i] = i * 10 end
    local path = write(nifti1({ dims = { 2, 2, 1, 3 }, type = "int16", values = values }))
    local x, info = lv.load_nifti(path, "f64")
    assert.same({ 1, 2, 2 }, x:size())
    assert.same({ { { 10, 20 }, { 30, 40 } } }, x:totable())
    assert.equal(1, info.volume)
    assert.equal(3, info.volumes)
    assert.same({ 2, 2, 1, 3 }, info.dims)
    x, info = lv.load_nifti(path, "f64", 3)
    assert.same({ { { 90, 100 }, { 110, 120 } } }, x:totable())
    assert.equal(3, info.volume)
    assert_error(path, "volume 4 is out of range: the image holds 3 volumes of 2x2x1", "f64", 4)
    assert.truthy(error_of(lv.load_nifti, path, "f64", 0):find("volume must be >= 1", 1, true))
  end)

  it("the header's voxel sizes, description and orientation", function()
    local path = write(nifti1({ dims = { 2, 1, 1 }, type = "uint8", values = { 1, 2 },
                                pixdim = { 0.5, 0.75, 2 }, descrip = "a test image",
                                sform = { { -1, 0, 0, 10 }, { 0, 1, 0, 0 }, { 0, 0, 1, 0 } } }))
    local _, info = lv.load_nifti(path)
    assert.same({ 2, 1, 1 }, info.dims)
    assert.same({ 0.5, 0.75, 2 }, info.pixdim)
    assert.equal("a test image", info.descrip)
    assert.equal(1, info.version)
    assert.equal(1, info.sform_code)
    assert.same({ "Right-to-Left", "Posterior-to-Anterior", "Inferior-to-Superior" }, info.orientation)
    -- neither sform nor qform: no orientation
    _, info = lv.load_nifti(write(nifti1({ dims = { 1 }, type = "uint8", values = { 1 } })))
    assert.is_nil(info.orientation)
  end)

  it("gzip-compressed files (.nii.gz) as the plain ones", function()
    local values = {}
    for i = 1, 4 * 5 * 6 do values[i] = (i * 37) % 1000 - 500 end
    local path = write(nifti1({ dims = { 4, 5, 6 }, type = "int16", values = values, slope = 2 }))
    local plain = lv.load_nifti(path, "f64")
    local packed = lv.load_nifti(gzip(path), "f64")
    assert.same(plain:totable(), packed:totable())
    assert.same(as_volume(values, 4, 5, 6, function(v) return 2 * v end), packed:totable())
  end)
end)

---- errors ---------------------------------------------------------------------------

describe("lv.load_nifti refuses", function()
  local good = { dims = { 2, 2, 2 }, type = "int16", values = { 1, 2, 3, 4, 5, 6, 7, 8 } }
  local function with(changes)
    local o = {}
    for k, v in pairs(good) do o[k] = v end
    for k, v in pairs(changes) do o[k] = v end
    return o
  end

  it("a missing file, a directory, an empty path", function()
    assert_error(dir .. "/missing.nii", "cannot open: No such file or directory")
    assert_error(dir, "is a directory")
    assert.truthy(error_of(lv.load_nifti, ""):find("path is empty", 1, true))
    assert.truthy(error_of(lv.load_nifti, write(nifti1(good)), "f16"):find("unknown dtype", 1, true))
  end)

  it("files that are not NIfTI", function()
    assert_error(write("hello, this is a text file and not an image\n"), "shorter than a 348-byte header")
    assert_error(write(string.rep("plain text, not an image. ", 40)),
                 "not a NIfTI file (header size field")
    assert_error(write(""), "not a NIfTI file (0 bytes")
    assert_error(write(nifti1(with({ magic = "\0\0\0\0" }))), "no \"n+1\" or \"ni1\" magic")
  end)

  it("malformed headers, saying what is wrong", function()
    assert_error(write(nifti1(with({ dim0 = 0 }))), "dim[0] = 0 (the number of dims must be 1 to 7)")
    assert_error(write(nifti1(with({ dim0 = 9 }))), "dim[0] = 9")
    assert_error(write(nifti1(with({ raw_dims = { 3, 2, 0, 2, 1, 1, 1, 1 } }))), "dim[2] = 0 (must be >= 1)")
    assert_error(write(nifti1(with({ raw_dims = { 3, -4, 2, 2, 1, 1, 1, 1 } }))), "dim[1] = -4")
    assert_error(write(nifti1(with({ datatype = 3 }))), "unknown datatype code 3")
    assert_error(write(nifti1(with({ datatype = 32 }))), "unsupported datatype complex64 (code 32)")
    assert_error(write(nifti1(with({ datatype = 128 }))), "unsupported datatype rgb24")
    assert_error(write(nifti1(with({ vox_offset = 100 }))), "vox_offset 100 lies inside the 348-byte header")
    assert_error(write(nifti1(with({ vox_offset = 352.5 }))), "vox_offset 352.5 is not a byte offset")
  end)

  it("truncated files", function()
    local full = nifti1(good)
    assert_error(write(full:sub(1, 200)), "shorter than a 348-byte header")
    assert_error(write(full:sub(1, #full - 3)),
                 "truncated: the header promises 16 bytes of data from byte 352, the file holds 365 bytes")
    -- a 4-D file missing its last volume is truncated, whichever volume is asked for
    local four = nifti1({ dims = { 2, 2, 1, 2 }, type = "int16", values = { 1, 2, 3, 4, 5, 6, 7, 8 } })
    assert_error(write(four:sub(1, #four - 8)), "truncated", "f32", 1)
    -- a gzip stream cut short: the header reads, the data does not
    local values = {}
    for i = 1, 64 * 64 * 8 do values[i] = (i * 7919) % 65536 - 32768 end
    local path = write(nifti1({ dims = { 64, 64, 8 }, type = "int16", values = values }))
    local f = assert(io.open(gzip(path), "rb"))
    local gz = f:read("a")
    f:close()
    assert_error(write(gz:sub(1, #gz // 2), ".nii.gz"), "cannot read the image data")
    -- a header promising far more than a gzip file can hold
    local huge = nifti1({ dims = { 32767, 32767, 100 }, type = "float64", data = "" })
    assert_error(gzip(write(huge)), "more than a gzip file of")
  end)

  it("a gzip file whose name does not say so", function()
    local gz = gzip(write(nifti1(good)))
    local f = assert(io.open(gz, "rb"))
    local bytes = f:read("a")
    f:close()
    assert_error(write(bytes, ".nii"), "gzip-compressed but its name does not end in .gz")
  end)

  it("without nifticlib printing anything", function()
    local bad = {
      write("not an image at all, just text, long enough to be read as a header " .. string.rep("x", 400)),
      write(nifti1(good):sub(1, 360)),
      dir .. "/missing.nii",
      write(nifti1(with({ datatype = 32 }))),
    }
    -- the paths go through the environment (lua5.4 -e takes no arguments)
    local errfile = dir .. "/stderr.txt"
    local script = "local lv = require 'lvae' for p in os.getenv('NIFTI_BAD'):gmatch('[^|]+') do " ..
                   "assert(not pcall(lv.load_nifti, p)) end io.stdout:write('done')"
    local cmd = "NIFTI_BAD=" .. sh_quote(table.concat(bad, "|")) .. " ./lvae -e " .. sh_quote(script) ..
          " 2> " .. sh_quote(errfile)
    local p = assert(io.popen(cmd))
    local out = p:read("a")
    p:close()
    assert.equal("done", out)
    local f = assert(io.open(errfile, "rb"))
    local err = f:read("a")
    f:close()
    assert.equal("", err)
  end)

  it("damaged headers without crashing: 400 random byte changes", function()
    local values = {}
    for i = 1, 4 * 3 * 2 do values[i] = i end
    local base = nifti1({ dims = { 4, 3, 2 }, type = "int16", values = values })
    local rng = lv.Generator(7)
    local picks = lv.rand({ 400, 3 }, "f64", rng):totable()
    local loaded, refused = 0, 0
    for _, r in ipairs(picks) do
      local pos = 1 + math.floor(r[1] * 352)
      local byte = math.floor(r[2] * 256)
      local bytes = base:sub(1, pos - 1) .. string.char(byte) .. base:sub(pos + 1)
      local path = write(bytes)
      local ok, x = pcall(lv.load_nifti, path)
      if ok then
        loaded = loaded + 1
        assert.equal(3, x:dim())
      else
        refused = refused + 1
        assert.truthy(tostring(x):find("lv.load_nifti: " .. path .. ": ", 1, true), tostring(x))
      end
      os.remove(path)
    end
    assert.equal(400, loaded + refused)
    assert.truthy(refused > 0)
  end)
end)

---- Colin27 ------------------------------------------------------------------------------

local function have_colin27() return exists(COLIN27) end
local MISSING = "mricron-data is not installed (" .. COLIN27 ..
                "): scripts/setup.sh installs Debian's mricron-data"

--- The header and the whole gunzipped file, through gzip, not nifticlib.
local colin_raw
local function colin27_raw()
  if not colin_raw then
    local p = assert(io.popen("gzip -dc " .. sh_quote(COLIN27)))
    colin_raw = p:read("a")
    p:close()
  end
  return colin_raw
end

local colin_volume, colin_info
local function colin27()
  if not colin_volume then colin_volume, colin_info = lv.load_nifti(COLIN27) end
  return colin_volume, colin_info
end

describe("the Colin27 brain (mricron-data's ch2better.nii.gz)", function()
  it("loads with the dims, voxel sizes and datatype of its header", function()
    if not have_colin27() then return pending(MISSING) end
    local raw = colin27_raw()
    local sizeof_hdr = string.unpack("<i4", raw, 1)
    assert.equal(348, sizeof_hdr)
    local dim = { string.unpack("<i2i2i2i2i2i2i2i2", raw, 41) }
    local datatype = string.unpack("<i2", raw, 71)
    local pixdim = { string.unpack("<ffff", raw, 77) }
    local vox_offset = string.unpack("<f", raw, 109)
    assert.equal("n+1\0", raw:sub(345, 348))

    local x, info = colin27()
    assert.equal(3, dim[1])
    assert.same({ dim[2], dim[3], dim[4] }, info.dims)
    assert.same({ 301, 370, 316 }, info.dims)         -- 0.5 mm: not the 1 mm ch2's 181x217x181
    assert.same({ dim[4], dim[3], dim[2] }, x:size())
    assert.equal(2, datatype)
    assert.equal("uint8", info.datatype)
    assert.same({ pixdim[2], pixdim[3], pixdim[4] }, info.pixdim)
    assert.same({ 0.5, 0.5, 0.5 }, info.pixdim)
    assert.same({ "Left-to-Right", "Posterior-to-Anterior", "Inferior-to-Superior" }, info.orientation)
    assert.equal(#raw, vox_offset + 301 * 370 * 316)
  end)

  it("holds finite intensities equal to the stored bytes", function()
    if not have_colin27() then return pending(MISSING) end
    local x = colin27()
    assert.equal(1, x:eq(x):min():item())              -- no NaN
    assert.equal(0, x:min():item())
    assert.equal(130, x:max():item())
    local raw = colin27_raw()
    local vox_offset = math.tointeger(string.unpack("<f", raw, 109))
    local nx, ny = 301, 370
    for _, k in ipairs({ 1, 100, 158, 316 }) do
      local start = vox_offset + (k - 1) * nx * ny
      local rows = {}
      for j = 1, ny do
        rows[j] = { raw:byte(start + (j - 1) * nx + 1, start + j * nx) }
      end
      assert.same(rows, x:select(1, k):totable(), "slice " .. k)
    end
  end)

  it("cut short (the first 200 kB of the .gz) is an error naming the file", function()
    if not have_colin27() then return pending(MISSING) end
    local f = assert(io.open(COLIN27, "rb"))
    local head = f:read(200000)
    f:close()
    assert_error(write(head, ".nii.gz"), "cannot read the image data")
  end)
end)

---- scripts/mri.lua: patches and the split ----------------------------------------------------

local mri = dofile("scripts/mri.lua")

describe("mri.patches", function()
  -- [3, 70, 100] -> a 2 x 3 grid of 32 x 32 patches per slice, the slice
  -- centre-cropped to rows 4..67 and columns 3..98
  local function volume()
    return lv.zeros({ 3, 70, 100 })
  end
  --- The region of patch (gy, gx) of slice k.
  local function region(v, k, gy, gx)
    return v:select(1, k):narrow(1, 4 + 32 * (gy - 1), 32):narrow(2, 3 + 32 * (gx - 1), 32)
  end

  it("cuts non-overlapping patches, row-major, and keeps their pixels in order", function()
    local v = volume()
    local values, rows = {}, {}
    for i = 1, 32 do
      rows[i] = {}
      for j = 1, 32 do
        local val = (i * 32 + j) / 2048
        rows[i][j] = val
        values[#values + 1] = f32(val)
      end
    end
    region(v, 2, 2, 3):copy_(lv.tensor(rows))              -- slice 2, last patch
    region(v, 1, 1, 2):fill_(0.5)                          -- slice 1, second patch
    local x, slices, info = mri.patches(v, { size = 32 })
    assert.same({ 2, 3 }, info.grid)
    assert.equal(18, info.total)
    assert.equal(2, info.kept)
    assert.same({ 2, 1024 }, x:size())
    assert.same({ 1, 2 }, slices)
    assert.same(values, x:select(1, 2):totable())
    assert.equal(1024 * 0.5, x:select(1, 1):sum():item())
    -- the crop: a bright border outside it changes nothing
    v:select(1, 3):narrow(1, 1, 3):fill_(1)
    v:select(1, 3):narrow(2, 99, 2):fill_(1)
    local y = mri.patches(v, { size = 32 })
    assert.same(x:totable(), y:totable())
  end)

  it("drops background-only patches: below 1% of pixels above the threshold", function()
    local v = volume()
    region(v, 1, 1, 1):narrow(1, 1, 1):narrow(2, 1, 10):fill_(0.9)   -- 10 pixels: < 1%
    region(v, 1, 1, 2):narrow(1, 1, 1):narrow(2, 1, 11):fill_(0.9)   -- 11 pixels: >= 1%
    region(v, 1, 2, 1):fill_(0.04)                                 -- everywhere, below 0.05
    region(v, 3, 2, 2):fill_(0.06)
    local x, slices, info = mri.patches(v)
    assert.equal(2, info.kept)
    assert.same({ 1, 3 }, slices)
    assert.near(11 * 0.9, x:select(1, 1):sum():item(), 1e-5)
    -- other settings
    local _, _, info2 = mri.patches(v, { threshold = 0.03 })
    assert.equal(3, info2.kept)
    local _, _, info3 = mri.patches(v, { min_fraction = 0.005 })
    assert.equal(3, info3.kept)
    -- nothing above the background at all
    local none, none_slices, info4 = mri.patches(lv.zeros({ 2, 64, 64 }))
    assert.is_nil(none)
    assert.same({}, none_slices)
    assert.equal(8, info4.total)
  end)

  it("cuts only the slices asked for", function()
    local v = volume() + 0.5
    local x, slices, info = mri.patches(v, { slices = { 3, 1 } })
    assert.equal(12, info.kept)
    assert.same({ 12, 1024 }, x:size())
    assert.same({ 1, 1, 1, 1, 1, 1, 3, 3, 3, 3, 3, 3 }, slices)
    assert.truthy(error_of(mri.patches, v, { slices = { 4 } }):find("slice 4 is not in 1..3", 1, true))
    assert.truthy(error_of(mri.patches, lv.zeros({ 2, 20, 64 })):find("smaller than one 32x32 patch", 1, true))
  end)
end)

describe("mri.split_slices", function()
  it("puts no slice in two sets, and keeps training slices away from held-out ones", function()
    for _, case in ipairs({ { 316, {} }, { 158, { block = 4, test_every = 3, gap = 1 } },
                            { 37, { block = 1, test_every = 5, gap = 0 } } }) do
      local nz, opts = case[1], case[2]
      local sets, label = mri.split_slices(nz, opts)
      local owner = {}
      for _, name in ipairs({ "train", "validation", "test" }) do
        for _, k in ipairs(sets[name]) do
          assert.is_nil(owner[k], "slice " .. k .. " in two sets")
          owner[k] = name
          assert.equal(name, label[k])
        end
        assert.truthy(#sets[name] > 0, name)
      end
      local gap = opts.gap or 2
      for k = 1, nz do
        if owner[k] == nil then assert.equal("gap", label[k]) end
        if owner[k] == "train" then
          for j = math.max(1, k - gap), math.min(nz, k + gap) do
            assert.truthy(owner[j] ~= "test" and owner[j] ~= "validation",
                          string.format("train slice %d is %d from held-out slice %d", k, math.abs(j - k), j))
          end
        end
      end
    end
    -- the default split of 316 slices: blocks of 10, one in 5 to test
    local sets = mri.split_slices(316)
    assert.equal(60, #sets.test)
    assert.same({ 41, 42, 43, 44, 45, 46, 47, 48, 49, 50 }, { table.unpack(sets.test, 1, 10) })
    assert.equal(36, #sets.validation)
    assert.equal(182, #sets.train)
  end)

  it("refuses a split where test and validation blocks would touch", function()
    assert.truthy(error_of(mri.split_slices, 100, { test_every = 2 }):find("--test-every must be", 1, true))
  end)

  it("on the Colin27 brain: disjoint patch sets, every patch above the background", function()
    if not have_colin27() then return pending(MISSING) end
    -- the intensities are 0..130: thresholds in stored units, scaling the
    -- patches only (the whole volume is 35 M voxels)
    local x = colin27()
    local lo, hi = x:min():item(), x:max():item()
    local sets = mri.split_slices(x:size(1))
    local seen = {}
    local total = 0
    -- all the test slices, and the training slices around the first test block
    local near = {}
    for _, k in ipairs(sets.train) do if k <= 70 then near[#near + 1] = k end end
    sets.train = near
    for _, name in ipairs({ "train", "test" }) do
      local p, slices, info = mri.patches(x, { slices = sets[name], threshold = lo + 0.05 * (hi - lo) })
      p = (p - lo) / (hi - lo)
      assert.equal(1024, p:size(2))
      assert.equal(#slices, p:size(1))
      assert.equal(#sets[name] * 11 * 9, info.total)
      assert.truthy(info.kept > 0.3 * info.total and info.kept < info.total)
      assert.truthy(p:gt(0.05):mean(2):min():item() >= 0.01)
      assert.truthy(p:min():item() >= 0 and p:max():item() <= 1)
      for _, k in ipairs(slices) do
        assert.truthy(seen[k] == nil or seen[k] == name)
        seen[k] = name
      end
      total = total + info.kept
    end
    assert.truthy(total > 2000)
  end)
end)

---- scripts/mri.lua end to end, on a small synthetic brain ----------------------------------------

describe("scripts/mri.lua", function()
  -- an int16 ellipsoid "brain" of [24, 64, 64] with some texture
  local function phantom()
    local nx, ny, nz = 64, 64, 24
    local parts = {}
    for k = 1, nz do
      for j = 1, ny do
        for i = 1, nx do
          local r = ((i - 32.5) / 28) ^ 2 + ((j - 32.5) / 30) ^ 2 + ((k - 12.5) / 11) ^ 2
          local v = r < 1 and math.floor(60 + 40 * math.sin(i / 3) * math.cos(j / 4) + k) or 0
          parts[#parts + 1] = string.pack("<i2", v)
        end
      end
    end
    return write(nifti1({ dims = { nx, ny, nz }, type = "int16", data = table.concat(parts),
                          pixdim = { 1, 1, 1 } }))
  end

  local function fake_run(overrides)
    local c = {}
    for _, o in ipairs(mri.options) do c[o[1]:sub(3)] = o[3] end
    for k, v in pairs(overrides) do c[k] = v end
    local run_dir = make_dir()
    return {
      config = c, dir = run_dir, seed = 1, printed = {},
      print = function(self, s) self.printed[#self.printed + 1] = s end,
      picture_path = function(_, name) return run_dir .. "/" .. name end,
      generator = function() return lv.Generator(11) end,
      task = function(self, label)
        return function(done, total) self.progress = { label = label, done = done, total = total } end
      end,
    }
  end

  it("trains and evaluates vae, hvae and qsl for a few steps", function()
    local file = phantom()
    for _, model in ipairs({ "vae", "hvae", "qsl" }) do
      lv.manual_seed(3)
      math.randomseed(3)
      local run = fake_run({ file = file, model = model, K = 2, d = 4, block = 3, gap = 1,
                             batch = 16, ["nll-samples"] = 4, ["nll-runs"] = 2,
                             ["test-subset"] = 10 })
      local state = mri.setup(run)
      assert.equal(1024, state.train:size(2))
      assert.equal(math.type(state.levels), "integer")       -- int16 data: dequantised
      assert.truthy(state.levels > 100)
      local next_batch, n = mri.batches(run, state, 1)
      assert.equal((state.train:size(1) + 15) // 16, n)
      for _ = 1, 2 do
        local batch = next_batch()
        assert.same({ 16, 1024 }, batch:size())
        assert.truthy(batch:min():item() >= 0 and batch:max():item() < 1)
        local loss = mri.step(run, state, batch)
        assert.truthy(loss:item() == loss:item())
      end
      local val = mri.validate(run, state)
      assert.truthy(val.elbo == val.elbo)
      local results = mri.finish(run, state)
      assert.truthy(results.test_nll == results.test_nll, model)
      assert.equal(10, results.test_patches)
      assert.truthy(results.test_nll_discrete > results.test_nll)
      assert.same({ label = "test NLL", done = 10 * 4 * 2, total = 10 * 4 * 2 }, run.progress)
      assert.truthy(results.peak_train_bytes > 0 and results.peak_tensor_bytes > 0)
      if results.pictures then
        for _, name in ipairs(results.pictures) do assert.truthy(exists(run.dir .. "/" .. name), name) end
      end
      os.execute("rm -rf " .. sh_quote(run.dir))
    end
  end)

  it("says what is missing when the image is not there", function()
    local run = fake_run({ file = dir .. "/none.nii.gz" })
    os.execute("rm -rf " .. sh_quote(run.dir))
    assert.truthy(error_of(mri.setup, run):find("cannot open " .. dir .. "/none.nii.gz", 1, true))
  end)
end)

teardown(function()
  os.execute("rm -rf " .. sh_quote(dir))
end)
