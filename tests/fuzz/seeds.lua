--- Writes a seed corpus for tests/fuzz/io_fuzz.c into the folder arg[1]:
-- a checkpoint with every value kind, its payload alone, and .npy files
-- (little- and big-endian, C and Fortran order, version 2.0), IDX files
-- and .amat text matrices.
local lv = require "lvae"
local dir = assert(arg[1], "usage: seeds.lua DIR")

local function slurp(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

local function put(name, bytes)
  local f = assert(io.open(dir .. "/" .. name, "wb"))
  f:write(bytes)
  f:close()
end

local tmp = os.tmpname()
lv.save(tmp, { w = lv.randn({ 3, 2 }), b = { 1, 2.5, "x", true, [0.5] = lv.zeros({ 0, 2 }, "f64") },
               s = lv.tensor(1) })
local ckpt = slurp(tmp)
put("ckpt", "\0" .. ckpt)
put("payload", "\1" .. ckpt:sub(29))
lv.save_npy(tmp, lv.randn({ 2, 3, 2 }, "f64"))
put("npy", "\2" .. slurp(tmp))
for _, ty in ipairs({ "u8", "i8", "i16", "i32", "f32", "f64" }) do
  lv.save_idx(tmp, lv.tensor({ { 0, 1, 127 }, { 7, 8, 9 } }), ty)
  put("idx-" .. ty, "\x80" .. slurp(tmp))
end
lv.save_idx(tmp, lv.randn({ 2, 2, 3 }), "f32", { gzip = true })
put("idx-gz", "\x81" .. slurp(tmp))
os.remove(tmp)
local function npy(version, header, data)
  local size = version == 1 and string.pack("<I2", #header) or string.pack("<I4", #header)
  return "\x93NUMPY" .. string.char(version, 0) .. size .. header .. data
end
put("npy-big-fortran", "\5" .. npy(2, "{'descr': '>i2', 'fortran_order': True, 'shape': (2, 3), }",
  string.rep("\1\2", 6)))
put("npy-bool", "\2" .. npy(1, "{'descr': '|b1', 'fortran_order': False, 'shape': (4,), }", "\0\1\1\0"))
put("amat", "\x40" .. "0 1 1 0\n1 0 0 1\n")
put("amat-f64-crlf", "\x41" .. "0.5 -2e3\r\n7\t1e-3\r\n\r\n")
