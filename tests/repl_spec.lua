-- The launcher, the REPL's evaluation and completion, and help().
local lv = require "lvae"
local repl = require "lvae.repl"

local function capture(fn)
  local lines = {}
  local saved = _G.print
  _G.print = function(...)
    local parts = {}
    for i = 1, select("#", ...) do parts[i] = tostring((select(i, ...))) end
    lines[#lines + 1] = table.concat(parts, "\t")
  end
  local ok, err = pcall(fn)
  _G.print = saved
  assert(ok, err)
  return table.concat(lines, "\n")
end

local function run(cmd)
  local p = io.popen(cmd .. " 2>&1")
  local out = p:read("a")
  local ok = p:close()
  return out, ok
end

describe("the REPL", function()
  it("prints an expression's values, tensors Torch7-style", function()
    _G.lv = lv
    local out = capture(function() repl.eval("lv.tensor({{1, 2}, {3, 4}}, 'f64')") end)
    assert.are.equal(" 1  2\n 3  4\n[f64 tensor of size 2x2]", out)
    out = capture(function() repl.eval("1 + 1, 'two'") end)
    assert.are.equal("2\ntwo", out)
  end)

  it("asks for more input on an unfinished chunk and runs statements", function()
    assert.is_false(repl.eval("for i = 1, 2 do"))
    local out = capture(function() repl.eval("for i = 1, 2 do\nprint(i)\nend") end)
    assert.are.equal("1\n2", out)
  end)

  it("prints errors instead of dying", function()
    local out = capture(function() repl.eval("lv.zeros({2}) + lv.zeros({3})") end)
    assert.truthy(out:find("cannot be broadcast", 1, true))
  end)

  it("completes toolkit names, tensor methods and globals", function()
    _G.lv = lv
    _G.completion_probe = lv.ones({2})
    local c = repl.completions("lv.sof")
    assert.are.same({ "lv.softplus" }, c)
    c = repl.completions("completion_probe:su")
    assert.are.same({ "completion_probe:sub", "completion_probe:sum" }, c)
    c = repl.completions("completion_pro")
    assert.are.same({ "completion_probe" }, c)
    assert.are.same({}, repl.completions("no_such_thing.x"))
    _G.completion_probe = nil
  end)

  it("help says what an object is and lists its methods", function()
    local h = lv.help(lv.zeros({2, 3}, "f64"))
    assert.truthy(h:find("lvae.Tensor: f64, shape [2,3], 6 elements", 1, true))
    assert.truthy(h:find("softplus", 1, true))
    assert.truthy(lv.help(lv.exp):find("x:exp()", 1, true))
    assert.truthy(lv.help(lv):find("randn", 1, true))
    assert.truthy(lv.help(lv.Generator(1)):find("lvae.Generator", 1, true))
  end)

  it("help shows a Lua function's comment and where it is defined", function()
    local h = lv.help(lv.estimators.nll)
    assert.truthy(h:find("^lv%.estimators%.nll %(.*lua/lvae/estimators%.lua:%d+%)\n"), h)
    assert.truthy(h:find("nll(model, x, {samples = 1000", 1, true), h)
    -- a module: the comment its file opens with, and its functions
    h = lv.help(lv.estimators)
    assert.truthy(h:find("lvae.estimators: SPEC", 1, true), h)
    assert.truthy(h:find("methods: ais elbo ess iwae mean_elbo nll", 1, true), h)
    -- a C function shows its signature (lua/lvae/core_doc.lua; tests/help_spec.lua
    -- checks the rest); an object lists inherited methods too
    assert.truthy(lv.help(lv.randn):find("^lv%.randn%(shape %[, dtype%] %[, gen%]%) %-> Tensor\n"))
    h = lv.help(require("lvae.optim"))
    assert.truthy(h:find("^a module %(.*lua/lvae/optim%.lua%)\n"), h)
    h = lv.help(require("lvae.nn").Linear(2, 3))
    assert.truthy(h:find("forward", 1, true) and h:find("parameters", 1, true), h)
    local f = load("return function() end", "=nowhere")()
    assert.are.equal("a Lua function, defined in nowhere (no source file to read its comment from)",
                     lv.help(f))
    assert.are.equal("a C function", lv.help(string.format))
  end)

  it("shows an error with the traceback of the user's code, not the REPL's", function()
    _G.lv = lv
    local out = capture(function() repl.eval("lv.ones({2}) + lv.ones({3})") end)
    assert.truthy(out:find("cannot be broadcast", 1, true), out)
    assert.truthy(out:find("stack traceback:", 1, true), out)
    assert.falsy(out:find("repl.lua", 1, true), out)
    assert.falsy(out:find("xpcall", 1, true), out)
  end)
end)

describe("the launcher", function()
  it("runs a script with its arguments", function()
    local path = os.tmpname()
    local f = assert(io.open(path, "w"))
    f:write('local lv = require "lvae"\nprint(arg[1], arg[2], lv.ones({3}):sum():item())\n')
    f:close()
    local out, ok = run("./lvae " .. path .. " a b")
    os.remove(path)
    assert.is_true(ok)
    assert.are.equal("a\tb\t3.0\n", out)
  end)

  it("opens the REPL with lv loaded when given no script", function()
    local out, ok = run("printf 'lv.ones({2}):sum()\\nhelp(lv.zeros({1}))\\n' | ./lvae")
    assert.is_true(ok)
    assert.truthy(out:find("2\n[f32 tensor, 0-dim]", 1, true))
    assert.truthy(out:find("lvae.Tensor: f32", 1, true))
  end)
end)
