--- image_spec.lua -- PNG through libpng (src/image.c), grids and scatter
-- images, and the figures of lvae.plot (images and gnuplot).
--
-- PNG files are checked from their bytes (signature, IHDR read with
-- string.unpack) and decoded again. The decoder is fed files built by hand
-- below (stored deflate blocks, so no compressor is needed): palette,
-- 16-bit, alpha, 1-bit and interlaced images, and damaged, truncated and
-- forged ones.

local lv = require "lvae"
local H = require "helpers"
local plot = require "lvae.plot"

---- files and directories --------------------------------------------------

local function make_dir() return H.make_dir("lvae_image_spec") end

---- PNG by hand ----------------------------------------------------------------

local SIGNATURE = "\137PNG\r\n\26\n"

local crc32 = H.crc32

local function adler32(s)
  local a, b = 1, 0
  for i = 1, #s do
    a = (a + s:byte(i)) % 65521
    b = (b + a) % 65521
  end
  return (b << 16) | a
end

local function chunk(kind, data)
  return string.pack(">I4", #data) .. kind .. data .. string.pack(">I4", crc32(kind .. data))
end

--- A zlib stream of stored (uncompressed) deflate blocks.
local function zlib_stored(s)
  local out, pos = { "\x78\x01" }, 1
  repeat
    local piece = s:sub(pos, pos + 65534)
    pos = pos + #piece
    out[#out + 1] = string.char(pos > #s and 1 or 0)
      .. string.pack("<I2I2", #piece, (~#piece) & 0xFFFF) .. piece
  until pos > #s
  out[#out + 1] = string.pack(">I4", adler32(s))
  return table.concat(out)
end

--- Scanlines with filter 0: rows is a list of byte strings.
local function scanlines(rows)
  local out = {}
  for i, r in ipairs(rows) do out[i] = "\0" .. r end
  return table.concat(out)
end

local function ihdr(w, h, depth, color, interlace)
  return chunk("IHDR", string.pack(">I4I4BBBBB", w, h, depth, color, 0, 0, interlace or 0))
end

local function png_file(w, h, depth, color, raw, opts)
  opts = opts or {}
  return SIGNATURE .. ihdr(w, h, depth, color, opts.interlace) .. (opts.before_idat or "")
    .. chunk("IDAT", zlib_stored(raw)) .. chunk("IEND", "")
end

--- The filtered passes of an Adam7-interlaced 8-bit gray image
-- (pixels[r][c], 0-based rows and columns).
local function adam7(pixels, w, h)
  local passes = { { 0, 0, 8, 8 }, { 0, 4, 8, 8 }, { 4, 0, 8, 4 }, { 0, 2, 4, 4 },
                   { 2, 0, 4, 2 }, { 0, 1, 2, 2 }, { 1, 0, 2, 1 } }
  local out = {}
  for _, p in ipairs(passes) do
    for r = p[1], h - 1, p[3] do
      local row = {}
      for c = p[2], w - 1, p[4] do row[#row + 1] = string.char(pixels[r][c]) end
      if #row > 0 then out[#out + 1] = "\0" .. table.concat(row) end
    end
  end
  return table.concat(out)
end

--- The IHDR fields of a PNG image's bytes.
local function header(s)
  local len, kind, w, h, depth, color, _, _, interlace = string.unpack(">I4c4I4I4BBBBB", s, 9)
  return { len = len, kind = kind, width = w, height = h, depth = depth, color = color,
           interlace = interlace }
end

--- A copy of a PNG image with its IHDR size replaced (checksum made good).
local function forge_size(s, w, h)
  local fields = s:sub(25, 29)
  local data = "IHDR" .. string.pack(">I4I4", w, h) .. fields
  return s:sub(1, 12) .. data .. string.pack(">I4", crc32(data)) .. s:sub(34)
end

---- values -------------------------------------------------------------------------

--- The values of a tensor, flat, scaled by 255 (exact small integers when
-- the values are k/255 in f32).
local function bytes_of(t)
  local _, data = H.flat(t:totable())
  for i, v in ipairs(data) do data[i] = math.floor(v * 255 + 0.5) end
  return data
end

local function seq(n, f)
  local t = {}
  for i = 1, n do t[i] = f(i) end
  return t
end

describe("image", function()
  local dir

  setup(function() dir = make_dir() end)
  teardown(function() os.execute("rm -rf " .. H.sh_quote(dir)) end)

  local function path_of(name) return dir .. "/" .. name end

  describe("PNG", function()
    it("round-trips gray images exactly at 8 bits, with a right IHDR", function()
      local values = {}
      for i = 1, 16 do
        values[i] = {}
        for j = 1, 16 do values[i][j] = ((i - 1) * 16 + j - 1) / 255 end
      end
      for _, dtype in ipairs(H.dtypes) do
        local img = lv.tensor(values, dtype)
        local p = path_of("gray_" .. dtype .. ".png")
        lv.save_png(p, img)
        local s = H.read_bytes(p)
        assert.are.equal(SIGNATURE, s:sub(1, 8))
        assert.are.same({ len = 13, kind = "IHDR", width = 16, height = 16, depth = 8, color = 0,
                          interlace = 0 }, header(s))
        local back = lv.load_png(p)
        assert.are.equal("f32", back:dtype())
        assert.are.same({ 16, 16 }, back:size())
        assert.are.same(seq(256, function(k) return k - 1 end), bytes_of(back))
        -- the values are k/255 in f32, exactly what the image held
        local _, want = H.flat(lv.tensor(values, "f32"):totable())
        local _, got = H.flat(back:totable())
        assert.are.same(want, got)
      end
    end)

    it("round-trips RGB images [H, W, 3], also from a strided view", function()
      local img = lv.arange(5 * 7 * 3):reshape({ 5, 7, 3 }):div(104)   -- 0 .. 1
      local k = bytes_of(img)
      local p = path_of("rgb.png")
      lv.save_png(p, img)
      local s = H.read_bytes(p)
      assert.are.same({ len = 13, kind = "IHDR", width = 7, height = 5, depth = 8, color = 2,
                        interlace = 0 }, header(s))
      local back = lv.load_png(p)
      assert.are.same({ 5, 7, 3 }, back:size())
      assert.are.same(k, bytes_of(back))
      -- a transposed view is written as the image it shows
      local t = img:transpose(1, 2)                 -- [7, 5, 3], not contiguous
      assert.is_false(t:is_contiguous())
      lv.save_png(p, t)
      back = lv.load_png(p)
      assert.are.same({ 7, 5, 3 }, back:size())
      assert.are.same(bytes_of(t:contiguous()), bytes_of(back))
    end)

    it("clamps to [0, 1] and writes NaN as 0", function()
      local p = path_of("clamp.png")
      lv.save_png(p, lv.tensor({ { -1, 0.5, 2, 0 / 0, 1 / 0, -1 / 0 } }))
      assert.are.same({ 0, 128, 255, 0, 255, 0 }, bytes_of(lv.load_png(p)))
    end)

    it("decodes palette, 16-bit, alpha, 1-bit and interlaced files", function()
      local function decode(name, bytes)
        local p = path_of(name)
        H.write_bytes(p, bytes)
        return lv.load_png(p)
      end
      -- palette -> RGB
      local plte = chunk("PLTE", "\255\0\0" .. "\0\255\0" .. "\0\0\255")
      local t = decode("palette.png", png_file(2, 2, 8, 3, scanlines({ "\0\1", "\2\1" }),
                                               { before_idat = plte }))
      assert.are.same({ 2, 2, 3 }, t:size())
      assert.are.same({ 255, 0, 0, 0, 255, 0, 0, 0, 255, 0, 255, 0 }, bytes_of(t))
      -- 16-bit gray, scaled to 8 bits (257 k -> k)
      t = decode("gray16.png", png_file(3, 1, 16, 0,
                                        scanlines({ string.pack(">I2I2I2", 0, 65535, 257 * 100) })))
      assert.are.same({ 1, 3 }, t:size())
      assert.are.same({ 0, 255, 100 }, bytes_of(t))
      -- gray + alpha: the alpha is dropped
      t = decode("ga.png", png_file(2, 1, 8, 4, scanlines({ "\10\255\200\0" })))
      assert.are.same({ 1, 2 }, t:size())
      assert.are.same({ 10, 200 }, bytes_of(t))
      -- RGBA -> RGB
      t = decode("rgba.png", png_file(1, 1, 8, 6, scanlines({ "\1\2\3\4" })))
      assert.are.same({ 1, 1, 3 }, t:size())
      assert.are.same({ 1, 2, 3 }, bytes_of(t))
      -- 1-bit gray: 1011001110 -> 0 or 1
      t = decode("bits.png", png_file(10, 1, 1, 0, scanlines({ "\179\128" })))
      assert.are.same({ 1, 10 }, t:size())
      assert.are.same({ 255, 0, 255, 255, 0, 0, 255, 255, 255, 0 }, bytes_of(t))
      -- Adam7 interlacing gives the same image as the plain layout
      local px, rows = {}, {}
      for r = 0, 4 do
        px[r] = {}
        local row = {}
        for c = 0, 5 do
          px[r][c] = r * 6 + c + 1
          row[#row + 1] = string.char(px[r][c])
        end
        rows[#rows + 1] = table.concat(row)
      end
      local plain = decode("plain.png", png_file(6, 5, 8, 0, scanlines(rows)))
      local laced = decode("adam7.png", png_file(6, 5, 8, 0, adam7(px, 6, 5), { interlace = 1 }))
      assert.are.same({ 5, 6 }, laced:size())
      assert.are.same(seq(30, function(k) return k end), bytes_of(plain))
      assert.are.same(bytes_of(plain), bytes_of(laced))
    end)

    it("refuses what is not a PNG, naming the file", function()
      local p = path_of("not.png")
      H.write_bytes(p, "GIF89a, not a PNG at all")
      H.expect_error(function() lv.load_png(p) end, "lv.load_png: " .. p .. ": not a PNG file (bad signature)")
      H.write_bytes(p, "")
      H.expect_error(function() lv.load_png(p) end, p, "not a PNG file")
      H.expect_error(function() lv.load_png(path_of("missing.png")) end,
        "lv.load_png: " .. path_of("missing.png") .. ": cannot open")
      H.expect_error(function() lv.load_png(dir) end, "lv.load_png: " .. dir)
      H.expect_error(function() lv.load_png("") end, "bad argument #1 to 'load_png' (path is empty)")
    end)

    it("refuses truncated files at every length, and damaged ones", function()
      local good = path_of("good.png")
      lv.save_png(good, lv.rand({ 6, 5, 3 }))
      local s = H.read_bytes(good)
      local p = path_of("cut.png")
      for n = 0, #s - 1 do
        H.write_bytes(p, s:sub(1, n))
        local msg = H.expect_error(function() lv.load_png(p) end, "lv.load_png: " .. p .. ": ")
        assert.is_truthy(msg:find("truncated", 1, true) or msg:find("not a PNG", 1, true), msg)
      end
      -- a flipped byte anywhere in a critical chunk is caught by its CRC
      for _, at in ipairs({ 20, 30, 45, #s - 20 }) do
        H.write_bytes(p, s:sub(1, at - 1) .. string.char(s:byte(at) ~ 0x10) .. s:sub(at + 1))
        H.expect_error(function() lv.load_png(p) end, "lv.load_png: " .. p .. ": damaged PNG (libpng: ")
      end
      -- a valid zlib wrapper around data that is not the image's
      H.write_bytes(p, png_file(4, 4, 8, 0, "\0\1\2"))
      H.expect_error(function() lv.load_png(p) end, p, "damaged PNG")
    end)

    it("checks forged sizes before allocating for them", function()
      local good = path_of("small.png")
      lv.save_png(good, lv.rand({ 4, 4 }))
      local s = H.read_bytes(good)
      local p = path_of("forged.png")
      H.write_bytes(p, forge_size(s, 16000, 16000))
      H.expect_error(function() lv.load_png(p) end, p, "image is 16000x16000: more than 2^26 pixels")
      H.write_bytes(p, forge_size(s, 4000, 4000))
      H.expect_error(function() lv.load_png(p) end, p, "truncated PNG: a 4000x4000 image cannot fit in")
      H.write_bytes(p, forge_size(s, 20000, 1))
      H.expect_error(function() lv.load_png(p) end, p, "damaged PNG (libpng: ")
      H.write_bytes(p, forge_size(s, 0, 4))
      H.expect_error(function() lv.load_png(p) end, p, "damaged PNG (libpng: ")
    end)

    it("refuses bad images and leaves nothing when a save fails", function()
      local p = path_of("bad.png")
      H.expect_error(function() lv.save_png(p, lv.zeros({ 2, 2, 2 })) end,
        "bad argument #2 to 'save_png' (expected an image [H, W] or [H, W, 3] with sides 1 to 16384, got [2,2,2])")
      H.expect_error(function() lv.save_png(p, lv.zeros({ 4 })) end, "bad argument #2 to 'save_png'")
      H.expect_error(function() lv.save_png(p, lv.zeros({ 0, 3 })) end, "got [0,3]")
      H.expect_error(function() lv.save_png(p, lv.zeros({ 20000, 1 })) end, "got [20000,1]")
      H.expect_error(function() lv.save_png(p, "x") end, "bad argument #2 to 'save_png'")
      H.expect_error(function() lv.save_png(p .. "\0x", lv.zeros({ 2, 2 })) end,
        "bad argument #1 to 'save_png' (path contains a zero byte)")

      local sub = path_of("keep")
      os.execute("mkdir " .. H.sh_quote(sub))
      local missing = sub .. "/no/such/dir/x.png"
      H.expect_error(function() lv.save_png(missing, lv.zeros({ 2, 2 })) end,
        "lv.save_png: " .. missing .. ": cannot create the file: No such file or directory")
      assert.are.same({}, H.list_dir(sub))
      -- a failed save keeps the earlier file whole
      local q = sub .. "/a.png"
      lv.save_png(q, lv.ones({ 3, 3 }))
      local before = H.read_bytes(q)
      os.execute("mkdir " .. H.sh_quote(sub .. "/d.png"))
      H.expect_error(function() lv.save_png(sub .. "/d.png", lv.zeros({ 2, 2 })) end, "cannot replace it")
      assert.are.equal(before, H.read_bytes(q))
      assert.are.same({ "a.png", "d.png" }, H.list_dir(sub))
    end)
  end)

  describe("image_grid", function()
    it("tiles [N, H, W] like make_grid: padding, placement, empty cells", function()
      local imgs = lv.arange(12):reshape({ 3, 2, 2 })
      local g = lv.image_grid(imgs, { nrow = 2, padding = 1, pad_value = -1 })
      assert.are.same({
        { -1, -1, -1, -1, -1, -1, -1 },
        { -1,  0,  1, -1,  4,  5, -1 },
        { -1,  2,  3, -1,  6,  7, -1 },
        { -1, -1, -1, -1, -1, -1, -1 },
        { -1,  8,  9, -1, -1, -1, -1 },
        { -1, 10, 11, -1, -1, -1, -1 },
        { -1, -1, -1, -1, -1, -1, -1 },
      }, g:totable())
      -- defaults: nrow 8 (here all 3 in a row), padding 2, pad_value 0
      g = lv.image_grid(imgs)
      assert.are.same({ 2 + 1 * (2 + 2), 2 + 3 * (2 + 2) }, g:size())
      assert.are.equal(0, g:sum():item() - (0 + 1 + 2 + 3 + 4 + 5 + 6 + 7 + 8 + 9 + 10 + 11))
      -- no padding: the tiles touch
      g = lv.image_grid(imgs, { nrow = 3, padding = 0 })
      assert.are.same({ { 0, 1, 4, 5, 8, 9 }, { 2, 3, 6, 7, 10, 11 } }, g:totable())
    end)

    it("takes flat images with a shape, RGB images, and strided views", function()
      local flat = lv.arange(12):reshape({ 3, 4 })
      local a = lv.image_grid(flat, { shape = { 2, 2 }, nrow = 2, padding = 1 })
      local b = lv.image_grid(flat:reshape({ 3, 2, 2 }), { nrow = 2, padding = 1 })
      assert.are.same(b:totable(), a:totable())
      -- a transposed [N, D] view: each row of the view is one image
      local v = lv.arange(12):reshape({ 4, 3 }):t()           -- [3, 4], strided
      local g = lv.image_grid(v, { shape = { 2, 2 }, nrow = 3, padding = 0 })
      assert.are.same({ { 0, 3, 1, 4, 2, 5 }, { 6, 9, 7, 10, 8, 11 } }, g:totable())
      -- RGB: [N, H, W, 3], channels stay together
      local rgb = lv.arange(2 * 1 * 1 * 3):reshape({ 2, 1, 1, 3 })
      g = lv.image_grid(rgb, { nrow = 2, padding = 1, pad_value = 9 })
      assert.are.same({ 3, 5, 3 }, g:size())
      assert.are.same({ 0, 1, 2 }, g:select(1, 2):select(1, 2):totable())
      assert.are.same({ 3, 4, 5 }, g:select(1, 2):select(1, 4):totable())
      assert.are.same({ 9, 9, 9 }, g:select(1, 2):select(1, 3):totable())
      -- flat RGB with shape {H, W, 3}
      g = lv.image_grid(rgb:reshape({ 2, 3 }), { shape = { 1, 1, 3 }, nrow = 2, padding = 1, pad_value = 9 })
      assert.are.same({ 3, 5, 3 }, g:size())
      assert.are.equal("f64", lv.image_grid(lv.zeros({ 1, 2, 2 }, "f64")):dtype())
    end)

    it("names what is wrong", function()
      H.expect_error(function() lv.image_grid(lv.zeros({ 2, 3 })) end,
        "bad argument #1 to 'image_grid' (expected images [N, H, W] or [N, H, W, 3]")
      H.expect_error(function() lv.image_grid(lv.zeros({ 3, 5 }), { shape = { 2, 2 } }) end,
        "bad argument #1 to 'image_grid' ([3,5] does not hold 3 images of 2x2)")
      H.expect_error(function() lv.image_grid(lv.zeros({ 3, 2, 2 }), { nrows = 2 }) end,
        "unknown option 'nrows' (known: nrow, padding, pad_value, shape)")
      H.expect_error(function() lv.image_grid(lv.zeros({ 3, 2, 2 }), { nrow = 0 }) end, "nrow must be at least 1")
      H.expect_error(function() lv.image_grid(lv.zeros({ 3, 2, 2 }), { padding = -1 }) end, "padding")
      H.expect_error(function() lv.image_grid(lv.zeros({ 3, 2, 2 }), { nrow = 1.5 }) end,
        "option 'nrow' must be an integer")
      H.expect_error(function() lv.image_grid(lv.zeros({ 3, 4 }), { shape = { 2, 2, 2 } }) end,
        "option 'shape' must be {H, W} or {H, W, 3}")
      H.expect_error(function() lv.image_grid(lv.zeros({ 0, 2, 2 })) end, "no images to tile")
    end)
  end)

  describe("image_scatter", function()
    it("counts points into the right pixels (y up, edges inside)", function()
      local pts = lv.tensor({
        { 0.1, 0.1 }, { 0.1, 0.1 },       -- lower left pixel, twice
        { 0.9, 0.9 },                     -- upper right
        { 1.0, 1.0 }, { 0.0, 0.0 },       -- the edges belong to the corner pixels
        { 0.6, 0.2 },                     -- column 3 (0-based 2), row 4 (bottom)
        { 1.5, 0.5 }, { 0.5, -0.1 }, { 0 / 0, 0.5 }, { 0.5, 1 / 0 },   -- dropped
      })
      local c, outside = lv.image_scatter(pts, { size = 4, range = { 0, 1, 0, 1 } })
      assert.are.equal(4, outside)
      assert.are.same({
        { 0, 0, 0, 2 },
        { 0, 0, 0, 0 },
        { 0, 0, 0, 0 },
        { 3, 0, 1, 0 },
      }, c:totable())
      -- height and width apart, f64 points, a strided view
      local p2 = lv.tensor({ { 0.5, 2.5 }, { 0.2, 0.2 } }, "f64"):t():t()
      c = lv.image_scatter(p2, { height = 3, width = 2, range = { 0, 1, 0, 3 } })
      assert.are.same({ { 0, 1 }, { 0, 0 }, { 1, 0 } }, c:totable())
    end)

    it("defaults the range to the extent plus 5%, and checks its arguments", function()
      local pts = lv.tensor({ { 0, 0 }, { 10, 20 }, { 0 / 0, 5 } })
      local r = lv.image_extent(pts)
      assert.are.same({ -0.5, 10.5, -1, 21 }, r)
      assert.are.same({ 0, 10, 0, 20 }, lv.image_extent(pts, 0))
      assert.are.same({ -1, 1, -1, 1 }, lv.image_extent(lv.tensor({ { 0 / 0, 1 } })))
      assert.are.same({ 2, 4, -1, 1 }, lv.image_extent(lv.tensor({ { 3, 0 } }), 0))
      local c, outside = lv.image_scatter(pts, { size = 8 })
      assert.are.equal(1, outside)
      assert.are.equal(2, c:sum():item())
      H.expect_error(function() lv.image_scatter(lv.zeros({ 3 })) end,
        "bad argument #1 to 'image_scatter' (expected points [S, 2], got [3])")
      H.expect_error(function() lv.image_scatter(pts, { range = { 1, 0, 0, 1 } }) end,
        "bad argument #2 to 'image_scatter' (option 'range' must be {xmin, xmax, ymin, ymax}")
      H.expect_error(function() lv.image_scatter(pts, { range = { 0, 1, 0 } }) end, "option 'range' must be")
      H.expect_error(function() lv.image_scatter(pts, { size = 0 }) end, "sizes must be 1 to 16384")
      H.expect_error(function() lv.image_scatter(pts, { bins = 3 }) end,
        "unknown option 'bins' (known: size, height, width, range)")
    end)
  end)

  describe("plot images", function()
    it("sample_grid writes a decodable PNG of the grid's size", function()
      local imgs = lv.arange(20 * 784):reshape({ 20, 784 }):div(20 * 784)
      local p = path_of("samples.png")
      assert.are.equal(p, plot.sample_grid(p, imgs, { shape = { 28, 28 }, nrow = 5 }))
      local back = lv.load_png(p)
      assert.are.same({ 2 + 4 * 30, 2 + 5 * 30 }, back:size())
      -- default shape (a square D) and nrow (ceil(sqrt(N)))
      plot.sample_grid(p, imgs)
      assert.are.same({ 2 + 4 * 30, 2 + 5 * 30 }, lv.load_png(p):size())
      plot.sample_grid(p, imgs:reshape({ 20, 28, 28 }), { nrow = 10, padding = 0 })
      assert.are.same({ 56, 280 }, lv.load_png(p):size())
      H.expect_error(function() plot.sample_grid(p, lv.zeros({ 4, 10 })) end,
        "plot.sample_grid: images is a tensor [4,10]: give {shape = {H, W}} for flat images")
      H.expect_error(function() plot.sample_grid(p, imgs, { shape = { 28, 28 }, rows = 2 }) end,
        "plot.sample_grid: unknown option 'rows' (known: ")
    end)

    it("reconstructions puts each input over its reconstruction", function()
      -- inputs k/255 (k = 1..13), reconstructions 200 + k: exact in 8 bits
      local x = lv.arange(13):add(1):div(255):reshape({ 13, 1 }):expand({ 13, 4 })
      local r = lv.arange(13):add(201):div(255):reshape({ 13, 1 }):expand({ 13, 4 })
      local p = path_of("recon.png")
      plot.reconstructions(p, x, r, { shape = { 2, 2 }, nrow = 5, padding = 1, pad_value = 0 })
      local back = lv.load_png(p)
      -- 3 groups of (input row, reconstruction row), 5 columns
      assert.are.same({ 1 + 6 * 3, 1 + 5 * 3 }, back:size())
      local px = back:totable()
      for k = 1, 13 do
        local group, col = (k - 1) // 5, (k - 1) % 5
        local y, xx = 1 + group * 6 + 1, 1 + col * 3 + 1     -- 1-based top-left of the input tile
        assert.are.equal(k, math.floor(px[y][xx] * 255 + 0.5))
        assert.are.equal(200 + k, math.floor(px[y + 3][xx] * 255 + 0.5))
      end
      -- the last group's empty cells are pad_value
      assert.are.equal(0, px[1 + 2 * 6 + 1][1 + 4 * 3 + 1])
      H.expect_error(function() plot.reconstructions(p, x, r:narrow(1, 1, 12), { shape = { 2, 2 } }) end,
        "plot.reconstructions: 13 inputs but 12 reconstructions")
    end)

    it("flow_2d draws one panel per stage on a shared range", function()
      lv.manual_seed(3)
      local stages = { lv.randn({ 500, 2 }), lv.randn({ 500, 2 }):mul(0.5):add(1),
                       lv.randn({ 500, 2 }, "f64"):mul(0.1):add(1.5) }
      local p = path_of("flow.png")
      local out, range = plot.flow_2d(p, stages, { size = 50 })
      assert.are.equal(p, out)
      local back = lv.load_png(p)
      assert.are.same({ 54, 2 + 3 * 52 }, back:size())
      assert.are.equal(4, #range)
      -- the last stage is concentrated: its panel has the darkest pixels
      local function panel(i) return back:narrow(1, 3, 50):narrow(2, 3 + (i - 1) * 52, 50) end
      assert.is_true(panel(3):min():item() < panel(1):min():item())
      -- a given range is used as it is; points outside it are dropped
      plot.flow_2d(p, { lv.tensor({ { 0.5, 0.5 } }) }, { size = 10, range = { 0, 1, 0, 1 }, padding = 0 })
      back = lv.load_png(p)
      assert.are.same({ 10, 10 }, back:size())
      assert.is_true(back:min():item() < 0.7)
      H.expect_error(function() plot.flow_2d(p, {}) end, "plot.flow_2d: stages must be a non-empty list")
      H.expect_error(function() plot.flow_2d(p, { lv.zeros({ 3, 3 }) }) end,
        "plot.flow_2d: stages[1] must be a tensor [S, 2], got a tensor [3,3]")
    end)
  end)

  describe("gnuplot", function()
    it("names the package when gnuplot is missing", function()
      local run = path_of("run_missing")
      os.execute("mkdir " .. H.sh_quote(run))
      local saved = plot.gnuplot_program
      plot.gnuplot_program = "lvae-no-such-gnuplot"
      local ok, msg = pcall(plot.gnuplot, run, "curve", { data = { { 1, 2 } }, script = "plot datafile" })
      plot.gnuplot_program = saved
      assert.is_false(ok)
      for _, piece in ipairs({ "plot.gnuplot: gnuplot is not installed", "gnuplot-nox", "scripts/setup.sh" }) do
        assert.is_truthy(msg:find(piece, 1, true), msg)
      end
      -- the data and the script are there to render later
      assert.are.same({ "curve.dat", "curve.gp" }, H.list_dir(run))
    end)

    it("refuses a missing run folder and bad arguments, writing nothing", function()
      local run = path_of("no_such_run")
      H.expect_error(function() plot.gnuplot(run, "c", { data = { { 1, 2 } }, script = "plot datafile" }) end,
        "plot.gnuplot: run folder " .. run .. " does not exist")
      assert.is_nil(io.open(run, "r"))
      H.expect_error(function() plot.gnuplot(dir, "../c", { data = {}, script = "" }) end, "name must be a file name")
      H.expect_error(function() plot.gnuplot(dir, "c", { data = {} }) end, "option 'script'")
      H.expect_error(function() plot.gnuplot(dir, "c", { script = "" }) end, "exactly one of the options 'data' and 'blocks'")
      H.expect_error(function() plot.gnuplot(dir, "c", { data = "nope.csv", script = "" }) end,
        "data file " .. dir .. "/nope.csv does not exist")
      H.expect_error(function() plot.gnuplot(dir, "c", { data = {}, script = "", style = 1 }) end,
        "unknown option 'style' (known: ")
    end)

    if not plot.has_gnuplot() then
      pending("gnuplot is not installed: scripts/setup.sh installs Debian's gnuplot-nox")
      return
    end

    it("writes NAME.dat and NAME.gp in the run folder and renders NAME.png", function()
      local run = path_of("run1")
      os.execute("mkdir " .. H.sh_quote(run))
      local png = plot.gnuplot(run, "curve", {
        data = { { 1, 0.5 }, { 2, 0.25 }, { 3, 0 / 0 }, { 4, 0.125 } },
        columns = { "step", "loss" },
        script = "plot datafile using 1:2 with lines title 'loss'",
        size = { 320, 200 },
      })
      assert.are.equal(run .. "/curve.png", png)
      assert.are.same({ "curve.dat", "curve.gp", "curve.png" }, H.list_dir(run))
      local s = H.read_bytes(png)
      assert.are.equal(SIGNATURE, s:sub(1, 8))
      local h = header(s)
      assert.are.same({ 320, 200 }, { h.width, h.height })
      local img = lv.load_png(png)
      assert.are.same({ 200, 320 }, { img:size()[1], img:size()[2] })
      local dat = H.read_bytes(run .. "/curve.dat")
      assert.is_truthy(dat:find("# step\tloss\n1\t0.5\n2\t0.25\n3\tNaN\n4\t0.125\n", 1, true), dat)
      local gp = H.read_bytes(run .. "/curve.gp")
      assert.is_truthy(gp:find("set output outfile", 1, true))
      assert.is_truthy(gp:find("datafile = 'curve.dat'", 1, true))
      -- the kept script redraws the figure on its own
      os.remove(png)
      assert.is_true(os.execute("cd " .. H.sh_quote(run) .. " && gnuplot curve.gp 2>/dev/null"))
      assert.are.equal(SIGNATURE, H.read_bytes(png):sub(1, 8))
    end)

    it("reports gnuplot's error and leaves no PNG or temporary", function()
      local run = path_of("run2")
      os.execute("mkdir " .. H.sh_quote(run))
      H.expect_error(function()
        plot.gnuplot(run, "broken", { data = { { 1, 2 } }, script = "plot datafile using 1:2 with nonsense" })
      end, "plot.gnuplot: gnuplot failed on " .. run .. "/broken.gp: ")
      assert.are.same({ "broken.dat", "broken.gp" }, H.list_dir(run))
    end)

    it("training_curves plots a log.csv in place, or rows", function()
      local run = path_of("run3")
      os.execute("mkdir " .. H.sh_quote(run))
      local lines = { "step,epoch,loss,test_elbo" }
      for s = 1, 50 do
        lines[#lines + 1] = string.format("%d,%d,%g,%s", s, s // 10, 100 / s + 5,
          s % 10 == 0 and tostring(-100 / s - 5) or "")
      end
      H.write_bytes(run .. "/log.csv", table.concat(lines, "\n") .. "\n")
      local png = plot.training_curves(run, "log.csv", { size = { 400, 300 }, points = { "test_elbo" } })
      assert.are.equal(run .. "/training_curves.png", png)
      assert.are.same({ 300, 400, 3 }, lv.load_png(png):size())
      local gp = H.read_bytes(run .. "/training_curves.gp")
      assert.is_truthy(gp:find("datafile = 'log.csv'", 1, true))
      assert.is_truthy(gp:find("using 1:3 with lines lw 1.5 title 'loss'", 1, true), gp)
      assert.is_truthy(gp:find("using 1:4 with linespoints lw 2 pt 7 ps 0.8 title 'test_elbo'", 1, true), gp)
      assert.is_falsy(gp:find("title 'epoch'", 1, true))
      -- rows keyed by column name
      local rows = {}
      for s = 1, 20 do rows[s] = { step = s, loss = 1 / s, elbo = s % 5 == 0 and -1 / s or nil } end
      png = plot.training_curves(run, rows, { name = "rows", columns = { "step", "loss", "elbo" }, logy = true })
      assert.are.equal(run .. "/rows.png", png)
      assert.are.equal(SIGNATURE, H.read_bytes(png):sub(1, 8))
      local dat = H.read_bytes(run .. "/rows.dat")
      assert.is_truthy(dat:find("\n4\t0.25\tNaN\n5\t0.20000000000000001\t-0.20000000000000001\n", 1, true), dat)
      H.expect_error(function() plot.training_curves(run, "log.csv", { y = "nope" }) end,
        "plot.training_curves: the log has no column 'nope' (columns: step, epoch, loss, test_elbo)")
      H.expect_error(function() plot.training_curves(run, "missing.csv") end, "cannot open the log")
    end)

    it("error_vs_dim draws one line per method on log axes", function()
      local run = path_of("run4")
      os.execute("mkdir " .. H.sh_quote(run))
      local rows = {}
      for _, m in ipairs({ "qsl", "leapfrog", "euler's" }) do
        for _, d in ipairs({ 128, 2, 32, 8 }) do
          rows[#rows + 1] = { d = d, method = m, error = math.sqrt(d) * #m, se = 0.1 }
        end
      end
      local png = plot.error_vs_dim(run, rows, { err = "se" })
      assert.are.equal(run .. "/error_vs_dim.png", png)
      assert.are.equal(SIGNATURE, H.read_bytes(png):sub(1, 8))
      local dat = H.read_bytes(run .. "/error_vs_dim.dat")
      -- three data sets, methods in order of appearance, d ascending
      assert.is_truthy(dat:find("# qsl\n2\t", 1, true), dat)
      assert.is_truthy(dat:find("\n\n\n# leapfrog\n2\t", 1, true), dat)
      assert.is_truthy(dat:find("\n\n\n# euler's\n2\t", 1, true), dat)
      local gp = H.read_bytes(run .. "/error_vs_dim.gp")
      assert.is_truthy(gp:find("set logscale xy", 1, true))
      assert.is_truthy(gp:find("set format xy '%g'", 1, true), gp)     -- 1e-05, not 0.0000100
      assert.is_truthy(gp:find("index 2 using 1:2:3 with yerrorlines", 1, true), gp)
      assert.is_truthy(gp:find("title 'euler''s'", 1, true), gp)
      H.expect_error(function() plot.error_vs_dim(run, { { d = 2 } }) end,
        "plot.error_vs_dim: row 1 must have numbers 'd' and 'error'")
    end)
  end)
end)
