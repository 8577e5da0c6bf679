--- misuse_cases.lua -- the one table tests/misuse_spec.lua runs: every
-- public function of the toolkit, called with bad arguments (issue 14).
--
-- A case is one line:
--
--   { "lv.narrow", "x(), 1, 1, 2", { "tensor", "dim", "index", "length" } },
--
-- the call as a user writes it ("lv.f", "nn.Linear", or "obj:method" with
-- obj the first argument), the source of good arguments (evaluated afresh
-- for every call in the environment `env` below makes), and a role per
-- argument position (nil or "-" leaves it alone; a role past the good
-- arguments tries an optional argument that was left out). A role lists
-- the kinds of bad input to put there, one call each, and the kinds it
-- accepts (with the reason). Per case:
--
--   more = { ["3:wrong shape"] = "lv.zeros({5})" }   extra bad inputs (a
--                                  key "*:what" replaces the whole argument
--                                  list with the source's values)
--   ok   = { ["2:nil"] = "reason" }  accepted in this case (a kind the
--                                  roles do not try is added, accepted)
--   bad  = { ["2:NaN"] = true }      refused in this case although the
--                                  role accepts it (or added, refused)
--   names = { "transpose" }          other names the message may give
--   good = false                     the good arguments are not called
--                                  on their own (by default they are,
--                                  and must succeed)
--
-- The kinds of bad input and their sources are M.kinds, the roles M.roles.
--
-- A refusal must be a Lua error naming the function (its last name
-- component, as a word, or one of `names`) and must not be one of Lua's
-- own raw errors. An accepted input must not raise. The spec runs each
-- group (LVAE_MISUSE_GROUP selects one) and counts the calls.
--
-- The file is plain data: loading it needs nothing (the Makefile lists
-- the groups with a bare lua5.4); `env(lv, dir)` builds the values.

local M = {}

---- kinds of bad input: name -> Lua source -----------------------------------------

M.kinds = {
  ["string"] = '"x"',
  ["table"] = '{}',
  ["list"] = '{1, 2}',
  ["boolean"] = 'true',
  ["function"] = 'print',
  ["nil"] = 'nil',
  ["number"] = '3',
  ["tensor"] = 'v()',
  ["generator"] = 'lv.Generator(1)',
  ["NaN"] = '0/0',
  ["inf"] = 'math.huge',
  ["-inf"] = '-math.huge',
  ["empty tensor"] = 'lv.zeros({0})',
  ["empty matrix"] = 'lv.zeros({0, 3})',
  ["0-dim tensor"] = 'lv.tensor(2)',
  ["freed tensor"] = 'freed()',
  ["f64 tensor"] = 'x():to("f64")',
  ["NaN tensor"] = 'lv.tensor({0/0, 1, 2})',
  ["inf tensor"] = 'lv.tensor({math.huge, 1, 2})',
  ["negative"] = '-5',
  ["zero"] = '0',
  ["2^40"] = '1 << 40',
  ["2^62"] = '1 << 62',
  ["2^63-1"] = 'math.maxinteger',
  ["-2^63"] = 'math.mininteger',
  ["2.5"] = '2.5',
  ["2^70"] = '2.0 ^ 70',
  ["2.0"] = '2.0',
  ["bad dtype"] = '"f16"',
  ["bad name"] = '"nosuch"',
  ["unknown option"] = '{ bogus = 1 }',
  ["shape {2, 2.5}"] = '{2, 2.5}',
  ["shape {2, -5}"] = '{2, -5}',
  ["shape {2, 'x'}"] = '{2, "x"}',
  ["shape {NaN}"] = '{0/0}',
  ["shape {inf}"] = '{math.huge}',
  ["shape {2^40}"] = '{1 << 40}',
  ["shape {2^40, 2^40}"] = '{1 << 40, 1 << 40}',
  ["shape {2^62, 4}"] = '{1 << 62, 4}',
  ["shape {2^63-1}"] = '{math.maxinteger}',
  ["shape {0, 2^62, 2^62}"] = '{0, 1 << 62, 1 << 62}',
  ["9 dims"] = '{1, 1, 1, 1, 1, 1, 1, 1, 1}',
  ["missing file"] = '"/nonexistent/lvae/file"',
  ["path with a zero byte"] = 'tmp("a\\0b")',
  ["empty path"] = '""',
  ["a folder"] = '"/tmp"',
  ["unwritable path"] = '"/nonexistent/lvae/out"',
  ["not a file of this kind"] = 'tmp("garbage.bin")',
}

---- roles: what to try at one argument -----------------------------------------------

local TYPES = { "string", "table", "boolean", "function" }
local function join(...)
  local out = {}
  for _, list in ipairs({ ... }) do
    for _, k in ipairs(list) do out[#out + 1] = k end
  end
  return out
end
local INTEGRAL = { ["2.0"] = "an integral float is an integer (Lua's luaL_checkinteger rule)" }
local BAD_INTEGERS = { "NaN", "inf", "-inf", "2.5", "2^70", "2^40", "2^62", "2^63-1", "-2^63" }

-- bad: refused kinds; ok: accepted kind -> why
M.roles = {
  -- a tensor argument (required)
  tensor = { bad = join(TYPES, { "nil", "number", "freed tensor" }) },
  -- a tensor or a number (the operands of elementwise ops)
  operand = { bad = join(TYPES, { "nil", "freed tensor", "empty tensor" }),
              ok = { number = "a number is a 0-dim operand" } },
  -- a tensor whose values may be anything (NaN and inf compute through)
  values = { bad = join(TYPES, { "nil", "number", "freed tensor" }),
             ok = { ["NaN tensor"] = "NaN propagates, as IEEE arithmetic has it",
                    ["inf tensor"] = "inf computes, as IEEE arithmetic has it",
                    ["empty tensor"] = "an empty tensor gives an empty result",
                    ["f64 tensor"] = "every op works for both dtypes" } },
  -- a required 1-based dim (negative counts from the end)
  dim = { bad = join({ "string", "table", "boolean", "nil", "zero", "negative" }, BAD_INTEGERS), ok = INTEGRAL },
  -- an optional dim or list of dims (nil: all of them)
  dims = { bad = join({ "string", "boolean", "function", "table", "zero", "negative" }, BAD_INTEGERS),
           ok = { ["nil"] = "nil reduces every dim", ["2.0"] = INTEGRAL["2.0"],
                  list = "{1, 2}: both dims of a matrix" } },
  -- a required 1-based index
  index = { bad = join({ "string", "table", "boolean", "nil", "zero", "negative" }, BAD_INTEGERS), ok = INTEGRAL },
  -- a count or length (>= 0)
  length = { bad = join({ "string", "table", "boolean", "nil", "negative" }, BAD_INTEGERS),
             ok = { ["2.0"] = INTEGRAL["2.0"], zero = "an empty range is a range" } },
  -- a count (>= 1)
  count = { bad = join({ "string", "table", "boolean", "function", "nil", "zero", "negative" }, BAD_INTEGERS),
            ok = INTEGRAL },
  -- an optional count (nil: the default)
  optcount = { bad = join({ "string", "table", "boolean", "function", "zero", "negative" }, BAD_INTEGERS),
               ok = { ["2.0"] = INTEGRAL["2.0"], ["nil"] = "nil takes the default" } },
  -- a shape: a table of sizes, or one size for a vector
  shape = { bad = join({ "string", "boolean", "function", "nil", "NaN", "inf", "-inf", "2.5", "2^70",
                         "negative", "2^40", "2^63-1", "-2^63", "shape {2, 2.5}", "shape {2, -5}",
                         "shape {2, 'x'}", "shape {NaN}", "shape {inf}", "shape {2^40}",
                         "shape {2^40, 2^40}", "shape {2^62, 4}", "shape {2^63-1}",
                         "shape {0, 2^62, 2^62}", "9 dims" }),
            ok = { ["2.0"] = INTEGRAL["2.0"], table = "{} is the shape of a 0-dim tensor",
                   zero = "a size 0 makes an empty tensor" } },
  -- a number value (NaN and inf are values)
  number = { bad = join(TYPES, { "nil" }),
             ok = { NaN = "NaN is a value", inf = "inf is a value", ["-inf"] = "-inf is a value" } },
  -- a finite number
  finite = { bad = join(TYPES, { "nil", "NaN", "inf", "-inf" }) },
  -- an optional dtype
  dtype = { bad = { "bad dtype", "table", "boolean", "function", "number" },
            ok = { ["nil"] = "nil takes the default dtype" } },
  -- an optional options table
  opts = { bad = { "string", "number", "boolean", "function", "unknown option" },
           ok = { ["nil"] = "no options", table = "empty options" } },
  -- a required options table
  reqopts = { bad = { "string", "number", "boolean", "function", "nil", "unknown option" } },
  -- an optional boolean flag
  flag = { bad = { "string", "number", "table", "function" }, ok = { ["nil"] = "nil takes the default" } },
  -- a required boolean
  boolean = { bad = { "string", "number", "table", "function", "nil" } },
  -- a list of tensors
  tensors = { bad = { "string", "number", "boolean", "function", "nil", "table", "list" } },
  -- a function to call
  fn = { bad = { "string", "number", "table", "boolean", "nil" } },
  -- an optional generator
  gen = { bad = { "string", "number", "table", "boolean", "function", "tensor" },
          ok = { ["nil"] = "nil draws from the default generator" } },
  -- a file to read
  path = { bad = { "table", "boolean", "function", "nil", "missing file", "path with a zero byte",
                   "empty path", "a folder", "not a file of this kind" } },
  -- a file to write
  outpath = { bad = { "table", "boolean", "function", "nil", "path with a zero byte", "empty path",
                      "a folder", "unwritable path" } },
  -- a run folder (plot.*): a folder that exists
  rundir = { bad = { "table", "boolean", "function", "nil", "missing file", "path with a zero byte",
                     "empty path" } },
  -- a seed: any 64-bit integer
  seed = { bad = { "string", "table", "boolean", "function", "nil", "NaN", "inf", "-inf", "2.5", "2^70" },
           ok = { negative = "a seed keeps its 64 bits", ["2^63-1"] = "a seed keeps its 64 bits",
                  ["-2^63"] = "a seed keeps its 64 bits", ["2.0"] = INTEGRAL["2.0"], zero = "0 is a seed",
                  ["2^40"] = "a seed keeps its 64 bits", ["2^62"] = "a seed keeps its 64 bits" } },
  -- an object whose methods are called (a module, a model, an optimizer)
  object = { bad = join(TYPES, { "nil", "number", "tensor" }) },
  -- a name from a fixed list
  name = { bad = { "bad name", "number", "table", "boolean", "function" } },
}

---- the values the argument sources use ---------------------------------------------

--- The environment of the sources: lv, the modules, and makers of fresh
-- good values. dir: a temporary folder for files.
function M.env(lv, dir)
  local nn = require "lvae.nn"
  local E = setmetatable({}, { __index = _G })
  E.lv, E.nn, E.optim, E.D = lv, nn, require "lvae.optim", require "lvae.distributions"
  E.plot = lv.plot
  local function tmp(name) return dir .. "/" .. name end
  E.tmp = tmp
  -- tensors
  E.x = function() return lv.tensor({ { 1, 2, 3 }, { 4, 5, 6 } }) end          -- [2, 3]
  E.v = function() return lv.tensor({ 1, 2, 3 }) end                           -- [3]
  E.s = function() return lv.tensor(2) end                                     -- 0-dim
  E.spd = function() return lv.tensor({ { 2, 1 }, { 1, 2 } }, "f64") end       -- [2, 2]
  E.img = function() return lv.ones({ 1, 1, 4, 4 }) end                        -- [N, C, H, W]
  E.w = function() return lv.ones({ 1, 1, 3, 3 }) end                          -- [O, C, kh, kw]
  E.conv = function() return { kernel = 3 } end
  E.p = function() return lv.param(lv.tensor({ 1, 2, 3 }, "f64")) end        -- a leaf
  E.freed = function()
    local t <close> = lv.zeros({ 2 })
    return t
  end
  E.gen = function() return lv.Generator(1) end
  E.probs = function() return lv.tensor({ 0.2, 0.5, 0.9 }) end
  E.points = function() return lv.tensor({ { 0, 0 }, { 1, 1 }, { -1, 2 } }) end
  E.images = function() return lv.rand({ 4, 5, 6 }) end                      -- [N, H, W]
  -- a sum that needs a gradient, and its leaf
  E.loss = function()
    local a = lv.param(lv.tensor({ 1, 2, 3 }, "f64"))
    return (a * a):sum(), a
  end
  E.leaf_and_loss = function()
    local a = lv.param(lv.tensor({ 1, 2, 3 }, "f64"))
    return (a * a):sum(), { a }
  end
  E.sq = function(t) return (t * t):sum() end
  -- flows
  E.qsl = function() return lv.integrators.qsl({ dim = 2 }) end
  E.leapfrog = function() return lv.integrators.leapfrog({ dim = 2 }) end
  E.planar = function() return lv.flows.planar({ dim = 2, K = 2 }) end
  E.z0 = function() return lv.zeros({ 3, 2 }) end
  E.rho0 = function() return lv.zeros({ 3, 2 }) end
  E.U = function(z) return (z * z):sum(2) * 0.5 end
  -- layers, optimizers, models
  E.lin = function() return nn.Linear(3, 2) end
  E.params = function() return { lv.param(lv.zeros({ 3 })) } end
  E.adam = function() return E.optim.Adam(E.params()) end
  E.sgd = function() return E.optim.SGD(E.params(), { lr = 0.1 }) end
  E.normal = function() return E.D.Normal(lv.zeros({ 3 }), lv.ones({ 3 })) end
  E.bern = function() return E.D.Bernoulli({ logits = lv.zeros({ 3 }) }) end
  E.vae = function()
    return lv.models.FlowVAE({ encoder = nn.GaussianHead(4, 2), decoder = nn.Linear(2, 4),
                               likelihood = "bernoulli", dim = 2 })
  end
  E.lg = function()
    return lv.models.LinearGaussian({ W = lv.ones({ 4, 2 }, "f64"), b = lv.zeros({ 4 }, "f64"), sigma = 1 })
  end
  E.xb = function() return lv.bernoulli(lv.full({ 3, 4 }, 0.5), lv.Generator(3)) end   -- [B, D] of 0/1
  E.xg = function() return lv.zeros({ 3, 4 }, "f64") end
  E.set = function() return { x = lv.rand({ 10, 4 }, "f32", lv.Generator(2)), y = lv.zeros({ 10 }) } end
  E.binset = function() return { x = lv.bernoulli(lv.full({ 10, 784 }, 0.5), lv.Generator(2)) } end
  -- files: one good file of each kind, and one of garbage
  lv.save(tmp("good.ckpt"), { a = 1 })
  lv.save_npy(tmp("good.npy"), lv.ones({ 2, 3 }))
  lv.save_idx(tmp("good.idx"), lv.ones({ 2, 3 }), "u8")
  lv.save_png(tmp("good.png"), lv.ones({ 4, 5 }))
  local f = assert(io.open(tmp("good.amat"), "w"))
  f:write("1 0 1\n0 1 0\n")
  f:close()
  f = assert(io.open(tmp("garbage.bin"), "wb"))
  f:write(string.rep("\1\2\3 garbage ", 20))
  f:close()
  f = assert(io.open(tmp("log.csv"), "w"))
  f:write("step,epoch,loss,elbo,val_elbo\n1,1,3,-3,\n2,1,2,-2,-2.5\n")
  f:close()
  -- a NIfTI-1 image of 2 x 2 x 1 int16 values (348-byte header, data at 352)
  local dims = { 3, 2, 2, 1, 1, 1, 1, 1 }
  local h = string.pack("<i4", 348) .. string.rep("\0", 36) .. string.pack("<" .. string.rep("i2", 8), table.unpack(dims))
    .. string.pack("<fff", 0, 0, 0) .. string.pack("<i2i2i2i2", 0, 4, 16, 0)
    .. string.pack("<" .. string.rep("f", 8), 1, 1, 1, 1, 1, 1, 1, 1) .. string.pack("<fff", 352, 0, 0)
    .. string.rep("\0", 344 - 120) .. "n+1\0"
  assert(#h == 348)
  f = assert(io.open(tmp("good.nii"), "wb"))
  f:write(h .. "\0\0\0\0" .. string.pack("<i2i2i2i2", 1, 2, 3, 4))
  f:close()
  -- a binarised set, and tiny Fashion-MNIST and MNIST folders (2 images each)
  lv.data.save_binarized(tmp("bin.npy"), E.binset())
  os.execute("mkdir -p " .. tmp("fm") .. " " .. tmp("mnist"))
  local images, labels = lv.zeros({ 2, 28, 28 }), lv.tensor({ 3, 7 })
  for _, part in ipairs({ "train", "t10k" }) do
    lv.save_idx(tmp("fm/" .. part .. "-images-idx3-ubyte"), images, "u8")
    lv.save_idx(tmp("fm/" .. part .. "-labels-idx1-ubyte"), labels, "u8")
  end
  lv.save_idx(tmp("mnist/mnist-images.idx"), images, "u8")
  lv.save_idx(tmp("mnist/mnist-labels.idx"), labels, "u8")
  E.dir = dir
  return E
end

---- the cases, in groups ----------------------------------------------------------------

M.groups = {
  { name = "creation", cases = {
    { "lv.zeros", "{2, 3}", { "shape", "dtype" } },
    { "lv.ones", "{2, 3}", { "shape", "dtype" } },
    { "lv.full", "{2, 3}, 1.5", { "shape", "number", "dtype" } },
    { "lv.eye", "3", { "count", "optcount", "dtype" },
      ok = { ["1:zero"] = "a 0 x 0 identity is empty", ["2:zero"] = "a 3 x 0 identity is empty" } },
    { "lv.arange", "0, 5, 1", { "finite", "finite", "finite", "dtype" },
      more = { ["3:zero"] = "0", ["2:2^40"] = "1 << 40" },
      ok = { ["3:nil"] = "arange(start, stop) steps by 1" } },
    { "lv.linspace", "0, 1, 5", { "finite", "finite", "length", "dtype" } },
    { "lv.tensor", "{{1, 2}, {3, 4}}", { "-", "dtype" },
      more = { ["1:string"] = '"x"', ["1:boolean"] = "true", ["1:nil"] = "nil", ["1:function"] = "print",
               ["1:ragged"] = "{{1, 2}, {3}}", ["1:a string entry"] = '{1, "x"}',
               ["1:9 levels"] = "{{{{{{{{{1}}}}}}}}}", ["1:freed tensor"] = "freed()", ["1:NaN entry"] = "{0/0, 1}" },
      ok = { ["1:NaN entry"] = "NaN is a value" } },
    { "lv.zeros_like", "x()", { "tensor", "dtype" } },
    { "lv.ones_like", "x()", { "tensor", "dtype" } },
    { "lv.full_like", "x(), 2", { "tensor", "number", "dtype" } },
    { "lv.empty_like", "x()", { "tensor", "dtype" } },
    { "lv.rand_like", "x()", { "tensor", "gen" } },
    { "lv.randn_like", "x()", { "tensor", "gen" } },
    { "lv.to", 'x(), "f64"', { "tensor", "dtype" }, bad = { ["2:nil"] = true } },
    { "lv.totable", "x()", { "tensor" } },
    { "lv.item", "s()", { "tensor" }, more = { ["1:two elements"] = "v()", ["1:empty tensor"] = "lv.zeros({0})" } },
    { "lv.is_tensor", "x()", { "-" },
      ok = { ["1:string"] = "is_tensor answers false for anything else", ["1:nil"] = "false for nil",
             ["1:freed tensor"] = "a freed tensor is still a tensor box" } },
  } },

  { name = "methods", cases = {
    -- the tensor methods written in Lua (lvae/init.lua); the others are
    -- the C functions above
    { "t:float", "x()", {} },
    { "t:double", "x()", {} },
    { "t:type", "x()", {} },
  } },

  { name = "shape", cases = {
    { "lv.cat", "{x(), x()}, 1", { "tensors", "dim" }, ok = { ["2:nil"] = "dim defaults to 1" },
      more = { ["1:a freed entry"] = "{x(), freed()}", ["1:mismatched"] = "{x(), v()}",
               ["1:0-dim entries"] = "{s(), s()}" } },
    { "lv.stack", "{x(), x()}, 1", { "tensors", "dim" }, ok = { ["2:nil"] = "dim defaults to 1" },
      more = { ["1:mismatched"] = "{x(), v()}" } },
    { "lv.clone", "x()", { "tensor" } },
    { "lv.contiguous", "x()", { "tensor" } },
    { "lv.expand", "lv.zeros({1, 3}), {2, 3}", { "tensor", "shape" },
      bad = { ["2:nil"] = true, ["2:table"] = true, ["2:zero"] = true, ["2:2.0"] = true },
      more = { ["2:incompatible"] = "{4, 4}" } },
    { "lv.expand_as", "lv.zeros({1, 3}), x()", { "tensor", "tensor" }, more = { ["2:incompatible"] = "lv.zeros({4, 4})" } },
    { "lv.narrow", "x(), 2, 1, 2", { "tensor", "dim", "index", "length" },
      ok = { ["3:2.0"] = "start 2 fits with length 2" },
      more = { ["4:too long"] = "4", ["3:past the end"] = "4" } },
    { "lv.permute", "x(), {2, 1}", { "tensor", "-" },
      more = { ["2:string"] = '"x"', ["2:nil"] = "nil", ["2:too few"] = "{1}", ["2:repeated"] = "{1, 1}",
               ["2:out of range"] = "{1, 3}", ["2:2.5"] = "{1, 2.5}", ["2:2^63-1"] = "{1, math.maxinteger}",
               ["2:-2^63"] = "{math.mininteger, 1}", ["2:NaN"] = "{0/0, 1}" } },
    { "lv.reshape", "x(), {3, 2}", { "tensor", "shape" },
      bad = { ["2:zero"] = true, ["2:2.0"] = true, ["2:table"] = true },
      more = { ["2:wrong count"] = "{4, 2}", ["2:two -1"] = "{-1, -1}", ["2:wraps to 6"] = "{4611686018427387907, 4}" } },
    { "lv.view", "x(), {3, 2}", { "tensor", "shape" },
      bad = { ["2:zero"] = true, ["2:2.0"] = true, ["2:table"] = true },
      more = { ["2:wrong count"] = "{4, 2}", ["*:a transposed view"] = "x():t(), {6}" } },
    { "lv.select", "x(), 1, 2", { "tensor", "dim", "index" } },
    { "lv.squeeze", "lv.zeros({1, 3})", { "tensor", "dims" }, bad = { ["2:list"] = true } },
    { "lv.t", "x()", { "tensor" }, names = { "transpose" }, more = { ["1:a vector"] = "v()" } },
    { "lv.transpose", "x(), 1, 2", { "tensor", "dim", "dim" } },
    { "lv.unsqueeze", "x(), 1", { "tensor", "dim" } },
  } },

  { name = "queries", cases = {
    { "lv.dim", "x()", { "tensor" } },
    { "lv.dtype", "x()", { "tensor" } },
    { "lv.is_contiguous", "x()", { "tensor" } },
    { "lv.numel", "x()", { "tensor" } },
    { "lv.size", "x(), 1", { "tensor", "dim" }, ok = { ["2:nil"] = "size() gives the shape" } },
    { "lv.stride", "x(), 1", { "tensor", "dim" }, ok = { ["2:nil"] = "stride() gives every stride" } },
    { "lv.copy_", "x(), x()", { "tensor", "tensor" },
      more = { ["2:wrong shape"] = "lv.zeros({4})", ["1:an expanded view"] = "lv.zeros({1, 3}):expand(2, 3)" },
      ok = { ["2:f64 tensor"] = "copy_ converts dtypes" } },
    { "lv.fill_", "x(), 1", { "tensor", "number" }, more = { ["1:a leaf"] = "p()" } },
    { "lv.zero_", "x()", { "tensor" } },
  } },

  { name = "elementwise", cases = {
    { "lv.abs", "x()", { "values" } },
    { "lv.neg", "x()", { "values" } },
    { "lv.exp", "x()", { "values" } },
    { "lv.expm1", "x()", { "values" } },
    { "lv.log", "x()", { "values" } },
    { "lv.log1p", "x()", { "values" } },
    { "lv.sqrt", "x()", { "values" } },
    { "lv.square", "x()", { "values" } },
    { "lv.tanh", "x()", { "values" } },
    { "lv.sigmoid", "x()", { "values" } },
    { "lv.softplus", "x()", { "values" } },
    { "lv.logsigmoid", "x()", { "values" } },
    { "lv.relu", "x()", { "values" } },
    { "lv.sign", "x()", { "values" } },
    { "lv.clamp", "x(), 0, 1", { "values", "number", "number" },
      ok = { ["2:nil"] = "either bound may be nil", ["3:nil"] = "either bound may be nil",
             ["2:-inf"] = "a bound may be infinite", ["3:inf"] = "a bound may be infinite" },
      bad = { ["2:NaN"] = true, ["3:NaN"] = true, ["2:inf"] = true, ["3:-inf"] = true } },
    { "lv.add", "x(), x()", { "operand", "operand" }, more = { ["2:wrong shape"] = "lv.zeros({4})" } },
    { "lv.sub", "x(), x()", { "operand", "operand" } },
    { "lv.mul", "x(), x()", { "operand", "operand" } },
    { "lv.div", "x(), x()", { "operand", "operand" } },
    { "lv.pow", "x(), x()", { "operand", "operand" } },
    { "lv.maximum", "x(), x()", { "operand", "operand" } },
    { "lv.minimum", "x(), x()", { "operand", "operand" } },
    { "lv.eq", "x(), x()", { "operand", "operand" } },
    { "lv.ne", "x(), x()", { "operand", "operand" } },
    { "lv.lt", "x(), x()", { "operand", "operand" } },
    { "lv.le", "x(), x()", { "operand", "operand" } },
    { "lv.gt", "x(), x()", { "operand", "operand" } },
    { "lv.ge", "x(), x()", { "operand", "operand" } },
    { "lv.bernoulli_logit", "x(), x()", { "operand", "operand" } },
  } },

  { name = "reductions", cases = {
    { "lv.sum", "x(), 1, true", { "values", "dims", "flag" } },
    { "lv.mean", "x(), 1, true", { "values", "dims", "flag" } },
    { "lv.logsumexp", "x(), 1, true", { "values", "dims", "flag" } },
    { "lv.max", "x(), 1, true", { "tensor", "dims", "flag" }, more = { ["1:empty tensor"] = "lv.zeros({0})" } },
    { "lv.min", "x(), 1, true", { "tensor", "dims", "flag" }, more = { ["1:empty tensor"] = "lv.zeros({0})" } },
    { "lv.argmax", "x(), 1, true", { "tensor", "dims", "flag" },
      ok = { ["2:list"] = "{1, 2}: every dim of a matrix, the one argmax of all" },
      more = { ["*:two of three dims"] = "lv.zeros({2, 2, 2}), {1, 3}" } },
    { "lv.argmin", "x(), 1, true", { "tensor", "dims", "flag" },
      ok = { ["2:list"] = "{1, 2}: every dim of a matrix, the one argmin of all" } },
    { "lv.var", "x(), 1, true, 1", { "values", "dims", "flag", "length" },
      ok = { ["4:nil"] = "the correction defaults to 1" } },
  } },

  { name = "products", cases = {
    { "lv.dot", "v(), v()", { "tensor", "tensor" }, more = { ["2:wrong shape"] = "lv.zeros({4})", ["1:a matrix"] = "x()" },
 },
    { "lv.outer", "v(), v()", { "tensor", "tensor" }, more = { ["1:a matrix"] = "x()" } },
    { "lv.matmul", "x(), x():t()", { "tensor", "tensor" },
      more = { ["2:wrong shape"] = "lv.zeros({4, 2})", ["1:0-dim tensor"] = "s()" } },
    { "lv.linear", "x(), lv.ones({4, 3}), lv.zeros({4})", { "tensor", "tensor", "tensor" },
      ok = { ["3:nil"] = "the bias is optional" },
      more = { ["2:wrong shape"] = "lv.ones({4, 5})", ["3:wrong shape"] = "lv.zeros({5})" } },
    { "lv.conv2d", "img(), w(), conv()", { "tensor", "tensor", "reqopts" },
      more = { ["3:no kernel"] = "{}", ["3:kernel 2.5"] = "{kernel = 2.5}", ["3:kernel 0"] = "{kernel = 0}",
               ["3:kernel -3"] = "{kernel = -3}", ["3:kernel 2^62"] = "{kernel = 1 << 62}",
               ["3:stride 0"] = "{kernel = 3, stride = 0}", ["3:stride -1"] = "{kernel = 3, stride = -1}",
               ["3:stride 2^63-1"] = "{kernel = 3, stride = math.maxinteger}",
               ["3:padding -1"] = "{kernel = 3, padding = -1}",
               ["3:padding 2^62"] = "{kernel = 3, padding = 1 << 62}",
               ["3:padding of 3"] = "{kernel = 3, padding = {1, 1, 1}}",
               ["3:kernel 'x'"] = '{kernel = "x"}', ["3:layout"] = '{kernel = 3, layout = "nosuch"}',
               ["2:wrong shape"] = "lv.ones({1, 2, 3, 3})", ["1:a matrix"] = "x()",
               ["3:unknown with a kernel"] = "{kernel = 3, bogus = 1}" } },
    { "lv.conv_transpose2d", "lv.ones({1, 1, 2, 2}), w(), {kernel = 3, size = {4, 4}}",
      { "tensor", "tensor", "reqopts" },
      more = { ["3:no size"] = "{kernel = 3}", ["3:size -1"] = "{kernel = 3, size = {-1, 4}}",
               ["3:size 2^40"] = "{kernel = 3, size = {1 << 40, 1 << 40}}",
               ["3:size 2^62"] = "{kernel = 3, size = {1 << 62, 4}}" } },
    { "lv.conv_weight_grad", "img(), lv.ones({1, 1, 2, 2}), conv()", { "tensor", "tensor", "reqopts" },
      more = { ["2:wrong shape"] = "lv.ones({1, 1, 3, 3})" } },
    { "lv.im2col", "img(), conv()", { "tensor", "reqopts" },
      more = { ["2:kernel 2^62"] = "{kernel = 1 << 62}", ["2:stride 0"] = "{kernel = 3, stride = 0}",
               ["2:padding 2^62"] = "{kernel = 1, padding = 1 << 62}",
               ["2:kernel {3, 2^63-1}"] = "{kernel = {3, math.maxinteger}}" } },
    { "lv.col2im", "lv.ones({1, 9, 4}), {kernel = 3, size = {4, 4}}", { "tensor", "reqopts" },
      more = { ["2:no size"] = "{kernel = 3}", ["2:size 2^62"] = "{kernel = 3, size = {1 << 62, 4}}",
               ["1:wrong shape"] = "lv.ones({1, 8, 4})" } },
  } },

  { name = "linalg", cases = {
    { "lv.cholesky", "spd()", { "tensor" },
      more = { ["1:not square"] = "x()", ["1:not positive definite"] = "-spd()", ["1:a vector"] = "v()",
               ["1:NaN matrix"] = "lv.full({2, 2}, 0/0)" } },
    { "lv.eigh", "spd()", { "tensor" }, more = { ["1:not square"] = "x()", ["1:a vector"] = "v()" } },
    { "lv.inverse", "spd()", { "tensor" }, more = { ["1:not square"] = "x()", ["1:singular"] = "lv.zeros({2, 2})" } },
    { "lv.logdet", "spd()", { "tensor" }, more = { ["1:not square"] = "x()" } },
    { "lv.solve", "spd(), lv.ones({2}, 'f64')", { "tensor", "tensor" },
      more = { ["2:wrong shape"] = "lv.ones({3})", ["1:not square"] = "x()",
               ["1:singular"] = "lv.zeros({2, 2}, 'f64')" } },
  } },

  { name = "random", cases = {
    { "lv.Generator", "1", { "seed" }, ok = { ["1:nil"] = "no seed: the default generator's" } },
    { "g:manual_seed", "gen(), 1", { "-", "seed" } },
    { "g:seed", "gen()", {} },
    { "g:get_state", "gen()", {} },
    { "g:set_state", "gen(), {seed = 1, offset = 0}", { "-", "-" },
      more = { ["2:nil"] = "nil", ["2:string"] = '"x"', ["2:no seed"] = "{offset = 0}",
               ["2:seed 2.5"] = "{seed = 2.5, offset = 0}", ["2:offset NaN"] = "{seed = 1, offset = 0/0}",
               ["2:offset 'x'"] = '{seed = 1, offset = "x"}' } },
    { "lv.manual_seed", "1", { "seed" } },
    { "lv.seed", "", {} },
    { "lv.get_rng_state", "", {} },
    { "lv.set_rng_state", "{seed = 1, offset = 0}", { "-" },
      more = { ["1:nil"] = "nil", ["1:string"] = '"x"', ["1:empty"] = "{}",
               ["1:seed inf"] = "{seed = math.huge, offset = 0}" } },
    { "lv.rand", "{2, 3}", { "shape", "dtype", "gen" }, ok = { ["2:generator"] = "rand(shape, gen)" } },
    { "lv.randn", "{2, 3}", { "shape", "dtype", "gen" } },
    { "lv.randn_batch", "{2, 3}", { "shape", "dtype", "gen" },
      bad = { ["1:2.0"] = true, ["1:zero"] = true, ["1:table"] = true },
      more = { ["1:one dim"] = "{3}" } },
    { "lv.rand_batch", "{2, 3}", { "shape", "dtype", "gen" },
      bad = { ["1:2.0"] = true, ["1:zero"] = true, ["1:table"] = true },
      more = { ["1:one dim"] = "{3}" } },
    -- the good call removes the shard, so that no case leaves one behind
    { "lv.set_shard", "", {},
      more = { ["*:negative first"] = "-1, 2, 4", ["*:no rows"] = "0, 0, 4", ["*:past the end"] = "3, 2, 4",
               ["*:rows 2.5"] = "0, 2.5, 4", ["*:first 'x'"] = '"x", 2, 4', ["*:total missing"] = "0, 2",
               ["*:rows missing"] = "0", ["*:total NaN"] = "0, 2, 0/0", ["*:rows 2^63-1"] = "0, math.maxinteger, 4" } },
    { "lv.shard", "", {} },
    { "g:set_shard", "gen()", { "-" },
      more = { ["*:negative first"] = "gen(), -1, 2, 4", ["*:past the end"] = "gen(), 3, 2, 4",
               ["*:total missing"] = "gen(), 0, 2" } },
    { "g:shard", "gen()", {} },
    { "lv.bernoulli", "probs()", { "-", "gen" },
      more = { ["1:string"] = '"x"', ["1:nil"] = "nil", ["1:boolean"] = "true", ["1:NaN tensor"] = "lv.tensor({0/0})",
               ["1:above 1"] = "lv.tensor({1.5})", ["1:negative"] = "lv.tensor({-0.5})",
               ["1:freed tensor"] = "freed()" } },
    { "lv.bernoulli", "{2, 3}, 0.5", { "shape", "-", "dtype", "gen" },
      more = { ["2:NaN"] = "0/0", ["2:above 1"] = "1.5", ["2:string"] = '"x"', ["2:nil"] = "nil" } },
  } },

  { name = "autograd", cases = {
    { "lv.backward", "(loss())", { "tensor", "-", "opts" },
      more = { ["1:no grad"] = "lv.ones({1}):sum()", ["2:string"] = '"x"',
               ["2:wrong shape"] = "lv.ones({4})", ["3:retain_graph 'x'"] = "{retain_graph = 'x'}" } },
    { "lv.detach", "p()", { "tensor" } },
    { "lv.grad", "leaf_and_loss()", { "-", "-", "opts" },
      more = { ["1:string"] = '"x"', ["1:nil"] = "nil", ["1:number"] = "3", ["1:a list with a string"] = '{"x"}',
               ["2:string"] = '"x"', ["2:nil"] = "nil", ["2:number"] = "3",
               ["2:a list with a string"] = '{"x"}', ["2:an unused leaf"] = "{p()}",
               ["2:2000 inputs"] = "(function() local t = {} for i = 1, 2000 do t[i] = p() end return t end)()",
               ["*:non-scalar"] = "(function() local a = p() return a * 2, {a} end)()",
               ["*:grad_outputs 'x'"] = "(function() local l, a = loss() return l, {a}, {grad_outputs = 'x'} end)()",
               ["*:grad_outputs of the wrong shape"] = "(function() local a = p() return a * 2, {a}, {grad_outputs = lv.ones({4}, 'f64')} end)()" } },
    { "lv.is_grad_enabled", "", {} },
    { "lv.param", "x()", { "tensor" } },
    { "lv.requires_grad", "x(), true", { "tensor", "flag" },
      more = { ["1:a computed tensor"] = "p() * 2" } },
    { "lv.set_grad_enabled", "true", { "boolean" } },
    { "lv.no_grad", "function() end", { "-" },
      more = { ["1:string"] = '"x"', ["1:number"] = "3", ["1:table"] = "{}" },
      ok = { ["1:nil"] = "no function: a scope for <close>" } },
    { "lv.enable_grad", "function() end", { "-" },
      more = { ["1:string"] = '"x"', ["1:number"] = "3" } },
    { "lv.hvp", "sq, p(), v():to('f64')", { "fn", "tensor", "tensor", "opts" },
      more = { ["3:wrong shape"] = "lv.ones({4}, 'f64')" } },
    { "lv.hessian", "sq, p()", { "fn", "tensor", "opts" }, more = { ["2:3-dim"] = "lv.ones({2, 2, 2})" } },
    { "lv.testing.gradcheck", "sq, {lv.tensor({1, 2}, 'f64')}", { "fn", "tensors", "opts" } },
    { "lv.testing.gradgradcheck", "sq, {lv.tensor({1, 2}, 'f64')}", { "fn", "tensors", "opts" } },
  } },

  { name = "files", cases = {
    { "lv.save", 'tmp("out.ckpt"), {a = 1}', { "outpath", "-" },
      more = { ["2:a function"] = "print", ["2:a userdata"] = "gen()", ["2:a cycle"] = "(function() local t = {} t.t = t return t end)()",
               ["2:nil"] = "nil" } },
    { "lv.load", 'tmp("good.ckpt")', { "path" } },
    { "lv.save_npy", 'tmp("out.npy"), x()', { "outpath", "tensor" } },
    { "lv.load_npy", 'tmp("good.npy")', { "path", "dtype" } },
    { "lv.load_amat", 'tmp("good.amat")', { "path", "dtype" } },
    { "lv.save_idx", 'tmp("out.idx"), x(), "u8"', { "outpath", "tensor", "name", "opts" },
      ok = { ["3:nil"] = "the tensor's own dtype", ["3:table"] = "a table in the type's place is the options" } },
    { "lv.load_idx", 'tmp("good.idx")', { "path", "dtype", "opts" },
      more = { ["3:scale NaN"] = "{scale = 0/0}", ["3:scale 'x'"] = "{scale = 'x'}" },
      ok = { ["2:table"] = "a table in the dtype's place is the options" } },
    { "lv.load_nifti", 'tmp("good.nii")', { "path", "dtype", "optcount" }, bad = { ["3:2.0"] = true } },
    { "lv.load_png", 'tmp("good.png")', { "path" } },
    { "lv.save_png", 'tmp("out.png"), lv.ones({4, 5})', { "outpath", "tensor" },
      more = { ["2:wrong shape"] = "lv.ones({2, 2, 2})", ["2:empty"] = "lv.zeros({0, 3})",
               ["2:huge"] = "lv.zeros({1, 20000})" } },
    { "lv.sha256_file", 'tmp("good.npy")', { "path" }, ok = { ["1:not a file of this kind"] = "any file has a digest" } },
    { "lv.crc32", "x()", { "tensor" }, more = { ["1:not contiguous"] = "x():t()" } },
    { "lv.gather_rows", "x(), {2, 1}", { "tensor", "-" },
      more = { ["2:string"] = '"x"', ["2:nil"] = "nil", ["2:zero"] = "{0}", ["2:past the end"] = "{3}",
               ["2:2.5"] = "{2.5}", ["2:2^63-1"] = "{math.maxinteger}", ["2:-2^63"] = "{math.mininteger}",
               ["2:NaN"] = "{0/0}", ["2:a matrix"] = "x()", ["2:a tensor of 2.5"] = "lv.tensor({2.5})",
               ["2:a NaN tensor"] = "lv.tensor({0/0})", ["1:0-dim tensor"] = "s()" } },
  } },

  { name = "pictures", cases = {
    { "lv.image_extent", "points()", { "tensor", "number" },
      ok = { ["2:nil"] = "margin 0.05" }, bad = { ["2:NaN"] = true, ["2:inf"] = true, ["2:-inf"] = true },
      more = { ["1:wrong shape"] = "v()", ["2:negative"] = "-5" } },
    { "lv.image_grid", "images()", { "tensor", "opts" },
      ok = { ["2:nrow 2^62"] = "nrow at least N: every image in one row" },
      more = { ["2:nrow 0"] = "{nrow = 0}", ["2:nrow 2^62"] = "{nrow = 1 << 62}",
               ["2:padding -1"] = "{padding = -1}", ["2:padding 2^40"] = "{padding = 1 << 40}",
               ["2:shape 'x'"] = "{shape = 'x'}", ["1:wrong shape"] = "v()" } },
    { "lv.image_scatter", "points()", { "tensor", "opts" },
      more = { ["2:size 0"] = "{size = 0}", ["2:size 2^40"] = "{size = 1 << 40}",
               ["2:size 2.5"] = "{size = 2.5}", ["2:range NaN"] = "{range = {0/0, 1, 0, 1}}",
               ["2:range empty"] = "{range = {1, 1, 0, 1}}", ["2:range 'x'"] = "{range = 'x'}",
               ["1:wrong shape"] = "v()" } },
    { "plot.sample_grid", 'tmp("s.png"), images()', { "outpath", "tensor", "opts" } },
    { "plot.reconstructions", 'tmp("r.png"), images(), images()', { "outpath", "tensor", "tensor", "opts" },
      more = { ["3:wrong shape"] = "lv.rand({3, 5, 6})" } },
    { "plot.flow_2d", 'tmp("f.png"), {points(), points()}', { "outpath", "tensors", "opts" } },
    { "plot.gnuplot", 'dir, "g", {data = {{1, 2}, {2, 3}}, columns = {"a", "b"}, script = "plot 1"}',
      { "rundir", "-", "reqopts" },
      more = { ["2:nil"] = 'nil', ["2:a slash"] = '"a/b"', ["2:number"] = "3" } },
    { "plot.training_curves", 'dir, "log.csv"', { "rundir", "-", "opts" },
      more = { ["2:missing"] = '"nosuch.csv"', ["2:number"] = "3" } },
    { "plot.error_vs_dim", 'dir, {{d = 1, error = 0.1}, {d = 2, error = 0.2}}', { "rundir", "-", "opts" },
      more = { ["2:rows without error"] = "{{d = 1}}", ["2:empty"] = "{}", ["2:string"] = '"x"' } },
    { "plot.has_gnuplot", "", {} },
    { "lv.profile", "function() end", { "fn", "opts" }, more = { ["2:repeats 0"] = "{repeats = 0}",
                                                               ["2:repeats 2.5"] = "{repeats = 2.5}" } },
  } },

  { name = "utilities", cases = {
    { "lv.clock", "", {} },
    { "lv.memory_stats", "", {} },
    { "lv.memory_trim", "", {} },
    { "lv.memory_reset_peak", "", {} },
    { "lv.num_threads", "", {} },
    { "lv.set_num_threads", "2", { "count" } },
    { "lv.help", "lv.narrow", { "-" }, ok = { ["1:nil"] = "help() describes nil", ["1:number"] = "help(3)" } },
  } },

  { name = "integrators", cases = {
    { "lv.integrators.qsl", "{dim = 2}", { "reqopts" } },
    { "lv.integrators.qsl", "{dim = 2}", { "-" },
      more = { ["1:dim 0"] = "{dim = 0}", ["1:dim 2.5"] = "{dim = 2.5}", ["1:dim 2^40"] = "{dim = 1 << 40}",
               ["1:dim 'x'"] = "{dim = 'x'}", ["1:no dim"] = "{}", ["1:step NaN"] = "{dim = 2, step = 0/0}",
               ["1:step 'x'"] = "{dim = 2, step = 'x'}", ["1:step -1"] = "{dim = 2, step = -1}",
               ["1:max_step inf"] = "{dim = 2, max_step = math.huge}",
               ["1:friction NaN"] = "{dim = 2, friction = 0/0}", ["1:friction -1"] = "{dim = 2, friction = -1}",
               ["1:K 0"] = "{dim = 2, K = 0}", ["1:K 2^40"] = "{dim = 2, K = 1 << 40}",
               ["1:K 2.5"] = "{dim = 2, K = 2.5}", ["1:learn 'x'"] = "{dim = 2, learn = 'x'}",
               ["1:learn bogus"] = "{dim = 2, learn = {bogus = true}}",
               ["1:init_temperature 'x'"] = "{dim = 2, init_temperature = 'x'}",
               ["1:init_temperature NaN"] = "{dim = 2, init_temperature = 0/0}",
               ["1:init_temperature -1"] = "{dim = 2, init_temperature = -1}",
               ["1:dtype"] = "{dim = 2, dtype = 'f16'}", ["1:clip_force NaN"] = "{dim = 2, clip_force = 0/0}",
               ["1:noise 'x'"] = "{dim = 2, noise = 'x'}", ["1:per_step 'x'"] = "{dim = 2, per_step = 'x'}" } },
    { "lv.integrators.qsl2", "{dim = 2}", { "reqopts" } },
    { "lv.integrators.obabo", "{dim = 2}", { "reqopts" },
      more = { ["1:friction -1"] = "{dim = 2, friction = -1}", ["1:init_temperature 'x'"] = "{dim = 2, init_temperature = 'x'}" } },
    { "lv.integrator_kinds", "", {} },
    { "lv.integrators.leapfrog", "{dim = 2}", { "reqopts" } },
    { "lv.integrators.leapfrog", "{dim = 2}", { "-" },
      more = { ["1:tempering"] = "{dim = 2, tempering = 'nosuch'}",
               ["1:T0 NaN"] = "{dim = 2, tempering = 'fixed', T0 = 0/0}",
               ["1:T0 -1"] = "{dim = 2, tempering = 'fixed', T0 = -1}",
               ["1:T0 inf"] = "{dim = 2, tempering = 'fixed', T0 = math.huge}",
               ["1:alpha NaN"] = "{dim = 2, tempering = 'free', alpha = 0/0}",
               ["1:alpha 2"] = "{dim = 2, tempering = 'free', alpha = 2}",
               ["1:alpha 0"] = "{dim = 2, tempering = 'free', alpha = 0}",
               ["1:cache 'x'"] = "{dim = 2, cache = 'x'}" } },
    { "lv.integrators.euler", "{dim = 2}", { "reqopts" },
      more = { ["1:kind"] = "{dim = 2, kind = 'nosuch'}", ["1:clip_force"] = "{dim = 2, clip_force = 1}" } },
    { "lv.flows.planar", "{dim = 2, K = 2}", { "reqopts" },
      more = { ["1:K 0"] = "{dim = 2, K = 0}", ["1:dim 0"] = "{dim = 0, K = 2}",
               ["1:amortized 'x'"] = "{dim = 2, K = 2, amortized = 'x'}", ["1:step"] = "{dim = 2, K = 2, step = 1}" } },
    { "flow:flow", "qsl(), z0(), rho0(), U, 2", { "-", "tensor", "tensor", "fn", "count", "opts" },
      more = { ["2:wrong shape"] = "lv.zeros({3, 5})", ["3:wrong shape"] = "lv.zeros({4, 2})",
               ["6:gen 'x'"] = "{gen = 'x'}", ["6:create_graph 'x'"] = "{create_graph = 'x'}",
               ["4:returns a string"] = "function() return 'x' end",
               ["4:returns the wrong shape"] = "function(z) return z end",
               ["4:raises"] = "function() error('boom') end" } },
    { "flow:flow", "planar(), z0(), nil, U, 2", { "-", "tensor", "-", "fn", "count", "opts" },
      more = { ["6:params 'x'"] = "{params = 'x'}", ["6:params.u 'x'"] = "{params = {u = 'x'}}" },
      ok = { ["5:2.0"] = "an integral float is an integer" } },
    { "flow:init_momentum", "qsl(), 3", { "-", "length", "optcount", "gen" },
      ok = { ["3:zero"] = "the temperature before any step", ["3:generator"] = "init_momentum(B, gen)" } },
    { "flow:temperature0", "qsl(), 2", { "-", "optcount" }, ok = { ["2:zero"] = "the temperature before any step" } },
    { "flow:step_size", "qsl(), 1", { "-", "optcount" } },
    { "flow:friction", "qsl()", {}, more = { ["1:leapfrog"] = "leapfrog()" } },
    { "flow:parameters", "qsl()", {} },
    { "flow:state_dict", "qsl()", {} },
    { "flow:load_state_dict", "qsl(), qsl():state_dict()", { "-", "-" },
      more = { ["2:string"] = '"x"', ["2:nil"] = "nil", ["2:empty"] = "{}",
               ["2:wrong shapes"] = "lv.integrators.qsl({dim = 3}):state_dict()",
               ["2:strings"] = "(function() local t = qsl():state_dict() for k in pairs(t) do t[k] = 'x' end return t end)()" } },
    { "flow:kind", "qsl()", {} },
    { "flow:dim", "qsl()", {} },
    { "flow:has_momentum", "qsl()", {} },
    { "flow:amortized", "qsl()", {} },
  } },

  { name = "nn", cases = {
    { "nn.Linear", "3, 2", { "count", "count", "opts" },
      more = { ["3:dtype"] = "{dtype = 'f16'}", ["3:init"] = "{init = 'nosuch'}", ["3:init 3"] = "{init = 3}",
               ["1:2^62"] = "1 << 62" } },
    { "nn.Conv2d", "1, 2, 3", { "count", "count", "count", "opts" },
      more = { ["3:{3, 0}"] = "{3, 0}", ["3:{3}"] = "{3}", ["4:stride 0"] = "{stride = 0}",
               ["4:padding 'x'"] = "{padding = 'x'}", ["4:padding -1"] = "{padding = -1}",
               ["4:padding {1, 2.5}"] = "{padding = {1, 2.5}}", ["3:2^40"] = "1 << 40" } },
    { "nn.ConvTranspose2d", "1, 2, 3", { "count", "count", "count", "opts" },
      more = { ["4:output_padding 'x'"] = "{output_padding = 'x'}" } },
    { "nn.Softplus", "", {} },
    { "nn.ReLU", "", {} },
    { "nn.Tanh", "", {} },
    { "nn.Sigmoid", "", {} },
    { "nn.class", '"MyLayer"', { "-", "object" },
      more = { ["1:number"] = "3", ["1:nil"] = "nil", ["1:table"] = "{}", ["1:empty"] = '""' },
      ok = { ["2:nil"] = "no parent: the module base" } },
    { "m:train", "lin(), true", { "-", "flag" } },
    { "m:evaluate", "lin()", {} },
    { "m:parameters", "lin()", {} },
    { "m:named_parameters", "lin()", {} },
    { "m:n_parameters", "lin()", {} },
    { "m:state_dict", "lin()", {} },
    { "m:add", "nn.Sequential(), nn.ReLU()", { "-", "object" } },
    { "nn.Sequential", "nn.ReLU()", { "object" } },
    { "nn.Reshape", "3, 2", { "count", "count" },
      ok = { ["1:2^40"] = "sizes meet the input at forward",
             ["1:2^62"] = "sizes meet the input at forward", ["1:2^63-1"] = "sizes meet the input at forward",
             ["2:2^40"] = "sizes meet the input at forward", ["2:2^62"] = "sizes meet the input at forward",
             ["2:2^63-1"] = "sizes meet the input at forward" },
      more = { ["1:a table of sizes"] = "{3, 2.5}" } },
    { "nn.Flatten", "", {} },
    { "nn.GaussianHead", "3, 2", { "count", "count", "opts" } },
    { "m:forward", "lin(), x()", { "-", "tensor" }, more = { ["2:wrong shape"] = "lv.zeros({2, 4})" },
      names = { "Linear", "linear" } },
    { "nn.Linear(3, 2)", "x()", { "tensor" }, more = { ["1:wrong shape"] = "lv.zeros({2, 4})" },
      names = { "Linear", "linear" } },
    { "nn.Conv2d(1, 2, 3)", "img()", { "tensor" },
      more = { ["1:a matrix"] = "x()", ["1:wrong channels"] = "lv.ones({1, 2, 4, 4})",
               ["1:too small"] = "lv.ones({1, 1, 2, 2})" }, names = { "Conv2d", "conv2d" } },
    { "nn.ConvTranspose2d(1, 2, 3)", "img()", { "tensor", "-" },
      more = { ["2:output_size 'x'"] = "'x'", ["2:output_size unreachable"] = "{40, 40}" },
      names = { "ConvTranspose2d", "conv_transpose2d" } },
    { "nn.Softplus()", "x()", { "tensor" }, names = { "Softplus" } },
    { "nn.ReLU()", "x()", { "tensor" }, names = { "ReLU" } },
    { "nn.Tanh()", "x()", { "tensor" }, names = { "Tanh" } },
    { "nn.Sigmoid()", "x()", { "tensor" }, names = { "Sigmoid" } },
    { "nn.Flatten()", "x()", { "tensor" }, more = { ["1:0-dim"] = "s()" }, names = { "Flatten" } },
    { "nn.Reshape(3)", "x()", { "tensor" }, more = { ["1:wrong count"] = "lv.zeros({2, 4})" },
      names = { "Reshape", "reshape" } },
    { "nn.GaussianHead(3, 2)", "x()", { "tensor" }, names = { "GaussianHead", "Linear", "linear" } },
    { "nn.Sequential(nn.Linear(3, 2))", "x()", { "tensor" }, names = { "Linear", "Sequential" } },
    { "m:load_state_dict", "lin(), lin():state_dict()", { "-", "-", "opts" },
      more = { ["2:string"] = '"x"', ["2:nil"] = "nil", ["2:missing"] = "{}",
               ["2:wrong shape"] = "nn.Linear(4, 2):state_dict()", ["2:a string value"] = "{weight = 'x', bias = 'y'}" },
      more = { ["3:strict 'x'"] = "{strict = 'x'}" } },
    { "nn.init.glorot_normal", "lv.zeros({2, 3})", { "tensor", "-" } },
    { "nn.init.glorot_uniform", "lv.zeros({2, 3})", { "tensor", "-" } },
    { "nn.init.hvae_normal", "lv.zeros({2, 3})", { "tensor" } },
    { "nn.init.zeros", "lv.zeros({2, 3})", { "tensor" } },
    { "nn.init.constant", "lv.zeros({2, 3}), 1", { "tensor", "number" } },
    { "nn.F.linear", "x(), lv.ones({2, 3})", { "tensor", "tensor", "tensor" }, ok = { ["3:nil"] = "no bias" },
      names = { "linear" } },
    { "nn.F.conv2d", "img(), w()", { "tensor", "tensor", "tensor", "opts" }, ok = { ["3:nil"] = "no bias" } },
    { "nn.F.conv_transpose2d", "img(), w()", { "tensor", "tensor", "tensor", "opts" }, ok = { ["3:nil"] = "no bias" } },
    { "nn.F.same_padding", "28, 5, 2", { "length", "count", "count" } },
    -- pair names the value it reads as its caller calls it (here "kernel")
    { "nn.F.pair", '3, "kernel", true', { "-", "-", "-" }, names = { "kernel" },
      more = { ["1:string"] = '"x"', ["1:nil"] = "nil", ["1:{1, 2.5}"] = "{1, 2.5}", ["1:{1}"] = "{1}",
               ["1:0, positive"] = "0", ["1:{2, -1}, positive"] = "{2, -1}" } },
    { "nn.F.pair", "3", { "-", "-" }, more = { ["1:string"] = '"x"' }, ok = { ["2:nil"] = "the value unnamed" } },
  } },

  { name = "optim", cases = {
    { "optim.SGD", "params(), {lr = 0.1}", { "tensors", "opts" },
      more = { ["1:a non-leaf"] = "{p() * 2}", ["1:twice"] = "(function() local a = p() return {a, a} end)()",
               ["2:lr NaN"] = "{lr = 0/0}", ["2:lr -1"] = "{lr = -1}", ["2:lr 'x'"] = "{lr = 'x'}",
               ["2:lr inf"] = "{lr = math.huge}", ["2:momentum NaN"] = "{momentum = 0/0}",
               ["2:nesterov 'x'"] = "{nesterov = 'x'}", ["2:clip_norm 0"] = "{clip_norm = 0}" },
 },
    { "optim.Adam", "params()", { "tensors", "opts" },
      more = { ["2:betas 'x'"] = "{betas = 'x'}", ["2:betas {1, 0.9}"] = "{betas = {1, 0.9}}",
               ["2:eps NaN"] = "{eps = 0/0}", ["2:amsgrad 3"] = "{amsgrad = 3}" } },
    { "optim.Adamax", "params()", { "tensors", "opts" }, more = { ["2:betas NaN"] = "{betas = {0/0, 0.9}}" } },
    { "optim.RMSProp", "params()", { "tensors", "opts" }, more = { ["2:alpha 1"] = "{alpha = 1}" } },
    { "opt:step", "adam(), (function() local l = loss() return l end)()", { "-", "-" },
      more = { ["2:string"] = '"x"', ["2:nil"] = "nil", ["2:non-scalar"] = "p()",
               ["2:no grad"] = "lv.ones({1}):sum()", ["2:a function returning a string"] = "function() return 'x' end" } },
    { "opt:update", "adam()", {} },
    { "opt:zero_grad", "adam()", {} },
    { "opt:state_dict", "adam()", {} },
    { "opt:load_state_dict", "adam(), adam():state_dict()", { "-", "-" },
      more = { ["2:string"] = '"x"', ["2:nil"] = "nil", ["2:empty"] = "{}", ["2:SGD's"] = "sgd():state_dict()" } },
    { "optim.clip_grad_norm", "{lv.ones({3})}, 1", { "tensors", "finite" },
      more = { ["2:zero"] = "0", ["2:negative"] = "-1" },
      ok = { ["2:inf"] = "no clipping", ["1:table"] = "an empty list has norm 0" } },
    { "optim.schedules.step", "sgd(), {step_size = 2}", { "object", "reqopts" },
      more = { ["2:step_size 0"] = "{step_size = 0}", ["2:step_size 2.5"] = "{step_size = 2.5}",
               ["2:gamma NaN"] = "{step_size = 2, gamma = 0/0}", ["2:table"] = "{}" } },
    { "optim.schedules.cosine", "sgd(), {T_max = 10}", { "object", "reqopts" },
      more = { ["2:T_max 0"] = "{T_max = 0}", ["2:T_max NaN"] = "{T_max = 0/0}", ["2:table"] = "{}" } },
    { "s:step", "optim.schedules.step(sgd(), {step_size = 2})", {} },
    { "s:get_last_lr", "optim.schedules.step(sgd(), {step_size = 2})", {} },
    { "s:load_state_dict", "optim.schedules.step(sgd(), {step_size = 2}), optim.schedules.step(sgd(), {step_size = 3}):state_dict()", { "-", "-" },
      more = { ["2:string"] = '"x"', ["2:nil"] = "nil", ["2:empty"] = "{}",
               ["2:cosine's"] = "optim.schedules.cosine(sgd(), {T_max = 3}):state_dict()" } },
  } },

  { name = "distributions", cases = {
    { "D.Normal", "lv.zeros({3}), lv.ones({3})", { "values", "values", "opts" },
      ok = { ["1:number"] = "a number mu", ["2:number"] = "a number sigma",
             ["1:inf tensor"] = "an infinite mean is a (degenerate) value" },
      bad = { ["2:NaN tensor"] = true, ["2:inf tensor"] = true, ["1:NaN tensor"] = true,
              ["1:empty tensor"] = true, ["2:empty tensor"] = true },
      more = { ["2:negative"] = "-lv.ones({3})", ["2:zero"] = "lv.zeros({3})" } },
    { "D.StandardNormal", "{2, 3}", { "shape", "dtype" }, ok = { ["1:tensor"] = "the shape of a tensor" } },
    { "D.standard_normal_log_prob", "x()", { "values" } },
    { "D.Bernoulli", "{logits = x()}", { "-" },
      more = { ["1:string"] = '"x"', ["1:nil"] = "nil", ["1:both"] = "{logits = x(), probs = x()}",
               ["1:neither"] = "{}", ["1:probs 2"] = "{probs = lv.full({2}, 2)}",
               ["1:probs NaN"] = "{probs = lv.full({2}, 0/0)}", ["1:logits 'x'"] = "{logits = 'x'}",
               ["1:unknown"] = "{logits = x(), bogus = 1}" } },
    { "d:log_prob", "normal(), v()", { "-", "values" }, ok = { ["2:number"] = "a number broadcasts" },
      bad = { ["2:empty tensor"] = true },
      more = { ["2:wrong shape"] = "lv.zeros({4})" } },
    { "d:rsample", "normal(), 2", { "-", "optcount", "gen" },
      ok = { ["2:zero"] = "zero samples: an empty draw", ["2:table"] = "{} adds no sample dims" },
      more = { ["2:{2.5}"] = "{2.5}", ["2:{-1}"] = "{-1}", ["2:{2^40, 2^40}"] = "{1 << 40, 1 << 40}" } },
    { "d:sample", "normal(), 2", { "-", "optcount", "gen" },
      ok = { ["2:zero"] = "zero samples: an empty draw", ["2:table"] = "{} adds no sample dims" } },
    { "d:entropy", "normal()", {} },
    { "d:kl", "normal(), normal()", { "-", "object" }, more = { ["2:a Bernoulli"] = "bern()" } },
    { "d:log_prob", "bern(), v()", { "-", "values" }, ok = { ["2:number"] = "a number broadcasts" },
      bad = { ["2:empty tensor"] = true },
      more = { ["2:wrong shape"] = "lv.zeros({4})" } },
    { "d:sample", "bern(), 2", { "-", "optcount", "gen" },
      ok = { ["2:zero"] = "zero samples: an empty draw", ["2:table"] = "{} adds no sample dims" } },
    { "d:kl", "bern(), bern()", { "-", "object" }, more = { ["2:a Normal"] = "normal()" } },
  } },

  { name = "models", cases = {
    { "lv.models.FlowVAE", "{encoder = nn.GaussianHead(4, 2), decoder = nn.Linear(2, 4)}", { "-" },
      more = { ["1:string"] = '"x"', ["1:nil"] = "nil", ["1:no encoder"] = "{decoder = nn.Linear(2, 4)}",
               ["1:encoder 3"] = "{encoder = 3, decoder = nn.Linear(2, 4)}",
               ["1:likelihood"] = "{encoder = nn.GaussianHead(4, 2), decoder = nn.Linear(2, 4), likelihood = 'x'}",
               ["1:K without flow"] = "{encoder = nn.GaussianHead(4, 2), decoder = nn.Linear(2, 4), K = 3}",
               ["1:flow without K"] = "{encoder = nn.GaussianHead(4, 2), decoder = nn.Linear(2, 4), flow = qsl()}",
               ["1:K 2.5"] = "{encoder = nn.GaussianHead(4, 2), decoder = nn.Linear(2, 4), flow = qsl(), K = 2.5}",
               ["1:flow 'x'"] = "{encoder = nn.GaussianHead(4, 2), decoder = nn.Linear(2, 4), flow = 'x', K = 2}",
               ["1:unknown"] = "{encoder = nn.GaussianHead(4, 2), decoder = nn.Linear(2, 4), bogus = 1}",
               ["1:dim 2.5"] = "{encoder = nn.GaussianHead(4, 2), decoder = nn.Linear(2, 4), dim = 2.5}" } },
    { "m:log_weight", "vae(), xb(), 2", { "-", "tensor", "count", "opts" }, ok = { ["3:nil"] = "S defaults to 1" },
      -- x of the wrong width meets the encoder first: its layer's error (linear) says so
      names = { "linear" },
      more = { ["2:wrong width"] = "lv.zeros({3, 5})", ["2:a vector"] = "v()" } },
    { "m:elbo", "vae(), xb()", { "-", "tensor", "opts" } },
    { "m:sample", "vae(), 2", { "-", "count", "gen" } },
    { "m:reconstruct", "vae(), xb()", { "-", "tensor", "opts" } },
    { "m:log_likelihood", "vae(), xb(), lv.zeros({1, 3, 2})", { "-", "tensor", "tensor" },
      more = { ["3:wrong batch"] = "lv.zeros({1, 4, 2})" } },
    { "lv.models.LinearGaussian", "{W = lv.ones({4, 2}, 'f64'), b = lv.zeros({4}, 'f64'), sigma = 1}", { "-" },
      more = { ["1:nil"] = "nil", ["1:W 'x'"] = "{W = 'x', b = lv.zeros({4}), sigma = 1}",
               ["1:sigma 0"] = "{W = lv.ones({4, 2}), b = lv.zeros({4}), sigma = 0}",
               ["1:sigma NaN"] = "{W = lv.ones({4, 2}), b = lv.zeros({4}), sigma = 0/0}",
               ["1:b wrong"] = "{W = lv.ones({4, 2}), b = lv.zeros({5}), sigma = 1}",
               ["1:proposal"] = "{W = lv.ones({4, 2}), b = lv.zeros({4}), sigma = 1, proposal = 'x'}" } },
    { "m:log_evidence", "lg(), xg()", { "-", "tensor" }, more = { ["2:wrong width"] = "lv.zeros({3, 5}, 'f64')" } },
    { "m:posterior", "lg(), xg()", { "-", "tensor" } },
    { "m:sample", "lg(), 2", { "-", "count", "gen" } },
  } },

  { name = "estimators", cases = {
    { "lv.estimators.elbo", "vae(), xb(), 2", { "object", "tensor", "optcount" } },
    { "lv.estimators.iwae", "vae(), xb(), 2", { "object", "tensor", "optcount" } },
    { "lv.estimators.mean_elbo", "vae(), xb(), {batch = 2}", { "object", "tensor", "opts" },
      more = { ["3:batch 0"] = "{batch = 0}", ["3:batch 2.5"] = "{batch = 2.5}", ["3:batch 'x'"] = "{batch = 'x'}" } },
    { "lv.estimators.nll", "vae(), xb(), {samples = 4, chunk = 2, runs = 2}", { "object", "tensor", "opts" },
      more = { ["3:samples 0"] = "{samples = 0}", ["3:samples 2^40"] = "{samples = 1 << 40}",
               ["3:chunk 2.5"] = "{samples = 4, chunk = 2.5}", ["3:runs 'x'"] = "{samples = 4, runs = 'x'}",
               ["3:progress 3"] = "{samples = 4, progress = 3}", ["3:batch 0"] = "{samples = 4, batch = 0}",
               ["3:samples 2^63-1"] = "{samples = math.maxinteger}" } },
    { "lv.estimators.ais", "lg(), xg(), {steps = 2, chains = 2, leapfrog_steps = 1}", { "object", "tensor", "opts" },
      more = { ["3:steps 0"] = "{steps = 0}", ["3:steps 2^40"] = "{steps = 1 << 40}",
               ["3:step_size NaN"] = "{steps = 2, step_size = 0/0}", ["3:schedule"] = "{steps = 2, schedule = 'x'}",
               ["3:step_size inf"] = "{steps = 2, step_size = math.huge}",
               ["3:target_accept 2"] = "{steps = 2, target_accept = 2}",
               ["3:gen 'x'"] = "{steps = 2, chains = 2, leapfrog_steps = 1, gen = 'x'}",
               ["3:chains 2^62"] = "{steps = 2, chains = 1 << 62}" } },
    { "lv.estimators.ess", "lv.zeros({4, 3})", { "values" }, more = { ["1:3-dim"] = "lv.zeros({2, 2, 2})" },
      bad = { ["1:empty tensor"] = true } },
  } },

  { name = "data", cases = {
    { "lv.data.split", "set(), {validation = 2}", { "-", "opts" },
      more = { ["1:string"] = '"x"', ["1:nil"] = "nil", ["1:no x"] = "{}",
               ["2:validation -1"] = "{validation = -1}", ["2:validation 2.5"] = "{validation = 2.5}",
               ["2:validation 20"] = "{validation = 20}", ["2:test 2^63-1"] = "{validation = 2, test = math.maxinteger}",
               ["2:validation 2^63-1"] = "{validation = math.maxinteger}", ["2:seed 'x'"] = "{validation = 2, seed = 'x'}",
               ["2:gen 'x'"] = "{validation = 2, gen = 'x'}" },
      -- without options 10,000 rows are held out: more than this set has
      bad = { ["2:nil"] = true, ["2:table"] = true } },
    { "lv.data.binarize", "set()", { "-", "opts" },
      more = { ["1:string"] = '"x"', ["1:nil"] = "nil", ["1:intensities above 1"] = "lv.full({2, 2}, 2)",
               ["2:seed 'x'"] = "{seed = 'x'}", ["2:gen 'x'"] = "{gen = 'x'}" } },
    { "lv.data.batches", "set(), 4", { "-", "count", "opts" },
      more = { ["1:string"] = '"x"', ["1:nil"] = "nil", ["3:binarize 'x'"] = "{binarize = 'x'}",
               ["3:gen 'x'"] = "{gen = 'x'}", ["3:seed 2.5"] = "{seed = 2.5}", ["3:shuffle 'x'"] = "{shuffle = 'x'}",
               ["3:drop_last 3"] = "{drop_last = 3}", ["3:static_seed 'x'"] = "{binarize = 'static', static_seed = 'x'}" },
      ok = { ["2:2^40"] = "one batch of every row", ["2:2^62"] = "one batch of every row",
             ["2:2^63-1"] = "one batch of every row" } },
    { "lv.data.output_bias", "set()", { "-" },
      more = { ["1:string"] = '"x"', ["1:nil"] = "nil", ["1:0-dim"] = "{x = s()}" } },
    { "lv.data.load_binarized", 'tmp("bin.npy")', { "path", "opts" },
      more = { ["2:width 0"] = "{width = 0}", ["2:width 2.5"] = "{width = 2.5}", ["1:not binary"] = 'tmp("good.npy")' } },
    { "lv.data.save_binarized", 'tmp("bin.npy"), binset()', { "outpath", "-" },
      more = { ["2:string"] = '"x"', ["2:nil"] = "nil", ["2:not binary"] = "set()", ["2:3-dim"] = "{x = lv.zeros({2, 2, 2})}" } },
    { "lv.data.load_idx_pair", 'tmp("good.idx")', { "path", "-", "opts" },
      more = { ["2:missing"] = '"/nonexistent/x"', ["2:number"] = "3", ["3:dtype"] = '{dtype = "f16"}' } },
    { "lv.data.fashion_mnist", "{root = tmp('fm')}", { "-" },
      more = { ["1:string"] = '"x"', ["1:root 3"] = "{root = 3}", ["1:root missing"] = "{root = '/nonexistent'}",
               ["1:unknown"] = "{bogus = 1}" } },
    { "lv.data.mnist_cache", "", {} },
    { "lv.data.repo_root", "", {} },
    { "lv.data.mnist", "{cache = tmp('mnist')}", { "-" },
      more = { ["1:string"] = '"x"', ["1:cache 3"] = "{cache = 3}", ["1:cache missing"] = "{cache = '/nonexistent'}",
               ["1:unknown"] = "{bogus = 1}" } },
  } },

  -- lv.distributed in this one process (several: tests/distributed_spec.lua)
  { name = "distributed", cases = {
    { "lv.distributed.active", "", {} },
    { "lv.distributed.rank", "", {} },
    { "lv.distributed.size", "", {} },
    { "lv.distributed.rows", "10, 1, 3", { "length", "length", "count" },
      ok = { ["2:nil"] = "nil: this process's rank" },
      more = { ["2:rank = size"] = "3", ["1:NaN"] = "0/0" } },
    { "lv.distributed.batch_rows", "x()", { "tensor" },
      more = { ["1:a table whose x is a string"] = "{x = 'x'}", ["1:0-dim"] = "lv.tensor(2)" } },
    { "lv.distributed.take", "x(), 0, 1, 2", { "-", "length", "length", "length" },
      bad = { ["2:2.0"] = true, ["4:zero"] = true },
      more = { ["1:string"] = '"x"', ["1:nil"] = "nil", ["1:wrong rows"] = "v()",
               ["*:past the end"] = "x(), 1, 2, 2" } },
    { "lv.distributed.with_shard", "0, 1, 2, function() return 1 end", { "length", "length", "length", "fn", "gen" },
      bad = { ["2:zero"] = true, ["1:2.0"] = true, ["3:zero"] = true },
      more = { ["*:past the end"] = "1, 2, 2, function() end" } },
    { "lv.distributed.reduce_gradients", "{v()}, {lv.param(v())}, 0.5", { "-", "tensors", "finite" },
      ok = { ["2:table"] = "no parameters: nothing to combine" },
      more = { ["1:string"] = '"x"', ["1:a list with a string"] = '{"x"}', ["3:negative"] = "-0.5",
               ["3:above 1"] = "1.5", ["2:a list with a string"] = '{"x"}' } },
    { "lv.distributed.broadcast_parameters", "{lv.param(v())}", { "tensors" },
      ok = { ["1:table"] = "an empty list broadcasts nothing" },
      more = { ["1:a list with a freed tensor"] = "{freed()}" } },
    { "lv.distributed.checksum", "{v()}", { "tensors" },
      ok = { ["1:table"] = "an empty list has an empty checksum" },
      more = { ["1:a list with a number"] = "{3}" } },
    { "lv.distributed.agree", '"options", "a=1"', { "-", "-" },
      more = { ["1:number"] = "3", ["2:table"] = "{}", ["2:nil"] = "nil" } },
    { "lv.distributed.sync_generator", "", { "gen" } },
    { "lv.distributed.map_rows", "x(), 1, function(r) return r end", { "tensor", "count", "fn", "opts" },
      more = { ["3:returns a number"] = "function() return 3 end", ["1:empty matrix"] = "lv.zeros({0, 3})" } },
  } },

  -- lv.mpi in this one process (mpirun's side is tests/mpi_spec.lua): every
  -- collective is the identity, init and finalize are harmless
  { name = "mpi", cases = {
    { "lv.mpi.compiled", "", {} },
    { "lv.mpi.launched", "", {} },
    { "lv.mpi.init", "", {} },
    { "lv.mpi.active", "", {} },
    { "lv.mpi.rank", "", {} },
    { "lv.mpi.size", "", {} },
    { "lv.mpi.Reducer", "{p()}, {bucket_bytes = 8}", { "tensors", "opts" },
      ok = { ["1:table"] = "no parameters: a reducer of nothing" },
      more = { ["1:a list with a string"] = '{p(), "x"}', ["2:bucket_bytes -1"] = "{bucket_bytes = -1}",
               ["2:bucket_bytes 2.5"] = "{bucket_bytes = 2.5}", ["1:tensor"] = "p()" } },
    { "r:begin", "lv.mpi.Reducer({p()}), 0.5", { "-", "finite" },
      ok = { ["2:nil"] = "weight 1" }, more = { ["2:above 1"] = "2", ["2:negative"] = "-1" } },
    { "r:ready", "lv.mpi.Reducer({p()}), 1, v()", { "-", "index", "tensor" },
      bad = { ["2:2.0"] = true },
      more = { ["2:past the end"] = "2" } },
    { "r:finish", "lv.mpi.Reducer({p()})", {} },
    { "r:buckets", "lv.mpi.Reducer({p()})", {} },
    { "lv.distributed.Reducer", "{p()}, {bucket_bytes = 8}", { "tensors", "opts" },
      ok = { ["1:table"] = "no parameters: a reducer of nothing" },
      more = { ["1:a list with a string"] = '{p(), "x"}', ["2:bucket_bytes -1"] = "{bucket_bytes = -1}" } },
    { "lv.mpi.allreduce", 'v(), "sum", {bucket_bytes = 8}', { "tensors", "name", "opts" },
      ok = { ["1:table"] = "an empty list reduces nothing", ["2:nil"] = "nil is \"sum\"" },
      more = { ["1:freed tensor"] = "freed()", ["1:a list with a string"] = '{v(), "x"}',
               ["1:a list with a freed tensor"] = "{v(), freed()}", ["1:not contiguous"] = "x():t()",
               ["1:requires grad"] = "p()", ["3:bucket_bytes 2.5"] = "{bucket_bytes = 2.5}",
               ["3:bucket_bytes -1"] = "{bucket_bytes = -1}", ["3:bucket_bytes 'x'"] = "{bucket_bytes = 'x'}",
               ["3:bucket_bytes NaN"] = "{bucket_bytes = 0/0}" } },
    { "lv.mpi.broadcast", "v(), 0", { "tensors", "length" },
      ok = { ["1:table"] = "an empty list broadcasts nothing", ["2:nil"] = "root 0 by default" },
      -- the one process is rank 0: root 2 is no rank of this job
      bad = { ["2:2.0"] = true },
      more = { ["1:freed tensor"] = "freed()", ["1:a list with a string"] = '{v(), "x"}',
               ["1:not contiguous"] = "x():t()", ["1:requires grad"] = "p()", ["2:rank 1"] = "1" } },
    { "lv.mpi.allgather", "x()", { "tensor" },
      more = { ["1:0-dim"] = "s()", ["1:not contiguous"] = "x():t()" } },
    { "lv.mpi.allreduce_number", "2.5", { "number", "name" },
      ok = { ["1:table"] = "{} is an empty list of numbers" },
      more = { ["1:a list with a string"] = '{1, "x"}', ["1:a list with a table"] = "{1, {}}" } },
    { "lv.mpi.allgather_string", '"a\\0b"', {},
      more = { ["1:nil"] = "nil", ["1:table"] = "{}", ["1:boolean"] = "true", ["1:function"] = "print",
               ["1:tensor"] = "v()" } },
    { "lv.mpi.barrier", "", {} },
    { "lv.mpi.comm_stats", "", {} },
    { "lv.mpi.reset_comm_stats", "", {} },
    -- never called with a good code (it would end this process): only the
    -- codes refused before anything stops
    { "lv.mpi.abort", "3", {}, good = false,
      more = { ["1:string"] = '"x"', ["1:table"] = "{}", ["1:boolean"] = "true", ["1:function"] = "print",
               ["1:negative"] = "-5", ["1:256"] = "256", ["1:2.5"] = "2.5", ["1:NaN"] = "0/0",
               ["1:inf"] = "math.huge", ["1:2^63-1"] = "math.maxinteger", ["1:-2^63"] = "math.mininteger" } },
    { "lv.mpi.finalize", "", {} },
  } },
}

return M
