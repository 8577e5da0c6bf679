-- bench/lib.lua's command line (lib.options) and its median, which every
-- benchmark suite relies on; the error path (usage, exit 2) is checked
-- through the launcher.
package.path = "./?.lua;" .. package.path
local lv = require "lvae"
local lib = require "bench.lib"

describe("bench.lib", function()
  it("parses --quick, --threads N and the suite's own flags", function()
    local saved_arg, saved_threads = _G.arg, lv.num_threads()
    _G.arg = { "--quick", "--threads", "1", "--f32-only" }
    local o = lib.options("bench/x.lua", { "--f32-only", "--list-kernels" })
    assert.is_true(o.quick)
    assert.are.equal(1, o.threads)
    assert.are.equal(1, lv.num_threads())
    assert.is_true(o["--f32-only"])
    assert.is_nil(o["--list-kernels"])
    _G.arg = {}
    o = lib.options("bench/x.lua")
    assert.is_false(o.quick)
    assert.is_nil(o.threads)
    _G.arg = saved_arg
    lv.set_num_threads(saved_threads)
  end)

  it("prints the usage and exits 2 on anything else", function()
    local p = io.popen("./lvae bench/nn.lua --threads two 2>&1; echo status $?")
    local out = p:read("a")
    p:close()
    assert.truthy(out:find("usage: ./lvae bench/nn.lua [--quick] [--threads N]", 1, true), out)
    assert.truthy(out:find("status 2", 1, true), out)
  end)

  it("finds bench.lib and the checkout root from any folder, through the launcher", function()
    local pwd = io.popen("pwd")
    local root = pwd:read("l")
    pwd:close()
    local p = io.popen("cd /tmp && " .. lib.shell_quote(root .. "/lvae")
      .. " -e 'print(require(\"bench.lib\").root)' 2>&1; echo status $?")
    local out = p:read("a")
    p:close()
    assert.are.equal(root .. "\nstatus 0\n", out)
    assert.are.equal(".", lib.root)                 -- found as ./bench/lib.lua here
  end)

  it("settles a function: runs it until two collections or the time limit, threads restored", function()
    local threads, calls = lv.num_threads(), 0
    lib.settle(function()
      calls = calls + 1
      assert.are.equal(1, lv.num_threads())
      return lv.zeros({ 1000 })
    end, 0.05, true)
    assert.is_true(calls >= 1)
    assert.are.equal(threads, lv.num_threads())
  end)

  it("takes the median of an odd or even list", function()
    assert.are.equal(2, lib.median({ 3, 1, 2 }))
    assert.are.equal(2.5, lib.median({ 4, 1, 3, 2 }))
    assert.is_nil(lib.median({}))
  end)

  it("decodes JSON with integral numbers as integers, at any depth, others as they are", function()
    local t = lib.decode_json('{"steps": 30, "ms": 2.5, "rows": [{"rank": 1, "share": 0.5}], "big": 1e3}')
    assert.are.equal("integer", math.type(t.steps))
    assert.are.equal(30, t.steps)
    assert.are.equal("float", math.type(t.ms))
    assert.are.equal("integer", math.type(t.rows[1].rank))
    assert.are.equal(0.5, t.rows[1].share)
    assert.are.equal("integer", math.type(t.big))
    assert.are.equal("integer", math.type(lib.decode_json("7")))
  end)
end)
