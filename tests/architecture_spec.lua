-- architecture_spec.lua -- docs/ARCHITECTURE.md stays true: every file it
-- names exists, and the core (src/ but src/lua_*.c) includes no Lua
-- header (issue 16).
local H = require "helpers"

local function lines_of(cmd)
  local p = assert(io.popen(cmd))
  local out = {}
  for line in p:lines() do out[#out + 1] = line end
  p:close()
  return out
end

describe("docs/ARCHITECTURE.md", function()
  local text = H.read_bytes("docs/ARCHITECTURE.md")

  it("names only files that exist", function()
    local named, missing = 0, {}
    for path in text:gmatch("`([%w_./%-]+%.%a+)`") do
      if path:match("^src/") or path:match("^lua/") or path:match("^scripts/") or path:match("^tests/") then
        named = named + 1
        if not H.exists(path) then missing[#missing + 1] = path end
      end
    end
    assert.is_true(named >= 20, "the page names " .. named .. " files")
    assert.same({}, missing)
  end)

  it("names every file of the core and the binding", function()
    local unnamed = {}
    for _, path in ipairs(lines_of("ls src/*.c")) do
      -- a file is named itself, or (the ops, the bindings) by its family
      local family = path:match("^src/ops_") and "src/ops_" or path:match("^src/lua_") and "src/lua_" or nil
      if not text:find(path, 1, true) and not (family and text:find(family, 1, true)) then
        unnamed[#unnamed + 1] = path
      end
    end
    -- the page is a map, not an index: it may leave out files a step
    -- does not pass through, but not most of them
    assert.is_true(#unnamed <= #lines_of("ls src/*.c") // 2, "not on the map: " .. table.concat(unnamed, " "))
  end)
end)

describe("the core", function()
  it("includes no Lua header (only src/lua_*.c bind)", function()
    local offenders = {}
    for _, path in ipairs(lines_of("ls src/*.c src/*.h")) do
      if not path:match("^src/lua_") then
        local source = H.read_bytes(path)
        for header in source:gmatch('#%s*include%s*[<"]([^>"]+)[>"]') do
          if header:match("^lua") or header:match("^lauxlib") or header:match("^lualib") then
            offenders[#offenders + 1] = path .. " includes " .. header
          end
        end
      end
    end
    assert.same({}, offenders)
  end)

  it("has a tensor layer that calls nothing above it", function()
    local source = H.read_bytes("src/tensor.c")
    for _, above in ipairs({ "autograd.h", "op.h", "vjp.h", "lv_node_release(" }) do
      assert.is_nil(source:find(above, 1, true), "src/tensor.c uses " .. above)
    end
  end)
end)
