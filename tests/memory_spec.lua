-- memory_spec.lua -- lifetimes (STYLE point 12): temporaries are freed
-- (the collector drive of src/lua_common.c keeps the resident size flat),
-- live bytes return to their baseline, views keep their base's storage
-- alive, and `<close>` frees at scope exit without leaving a dangling
-- tensor behind.

local lv = require "lvae"
local H = require "helpers"

local rss, live_bytes = H.rss, H.live_bytes

describe("memory", function()
  it("100,000 temporaries keep the resident size flat", function()
    local x = lv.ones({ 100, 100 })
    local last
    for _ = 1, 10000 do           -- warm-up: reach the steady state
      local y = (x + 1):exp()
      last = y
    end
    local before = rss()
    for _ = 1, 100000 do
      local y = (x + 1):exp()
      last = y
    end
    local after = rss()
    H.assert_close(last:max(), math.exp(2), "f32")
    assert.is_true(H.sanitized or after - before < 64 * 2 ^ 20,
                   string.format("resident size grew by %.1f MiB", (after - before) / 2 ^ 20))
  end)

  it("collects temporaries every 16 MiB beside a large resident set, as soon as it is loaded", function()
    -- in a process of its own, whose Lua heap is a toolkit's (busted's,
    -- with every spec loaded, makes collections slow enough to back off)
    local dir = H.make_dir()
    local script = dir .. "/resident.lua"
    local f = assert(io.open(script, "w"))
    f:write([[
local lv = require "lvae"
local MiB = 2 ^ 20
local resident = lv.zeros({ 160 * MiB // 4 })     -- a data set: 160 MiB alive throughout
local x = lv.zeros({ MiB // 4 })
local base = lv.memory_stats().live_bytes
lv.memory_reset_peak()
for _ = 1, 200 do local _ = x + 1 end             -- 200 MiB of 1 MiB temporaries
print(string.format("piled %.1f sum %g", (lv.memory_stats().peak_bytes - base) / MiB, resident:sum():item()))
]])
    f:close()
    local p = assert(io.popen("./lvae " .. H.sh_quote(script) .. " 2>&1"))
    local out = p:read("a")
    p:close()
    os.execute("rm -rf " .. H.sh_quote(dir))
    local piled = tonumber(out:match("piled ([%d.]+) sum 0"))
    assert.is_not_nil(piled, out)
    -- dead temporaries never pile up much past 16 MiB, not even in the
    -- first cycle after the set was loaded (a quarter of the live bytes,
    -- 40 MiB, would take that much fresh memory from the system first)
    assert.is_true(piled <= 20, string.format("%.1f MiB of temporaries piled up", piled))
  end)

  it("waits for a quarter of the live bytes after a slow collection that found them alive", function()
    -- a Lua heap of a million small tables makes every full collection
    -- slow; tensors made among them stay alive: the collector backs off
    local MiB = 2 ^ 20
    local tables = {}
    for i = 1, 1000000 do tables[i] = { i } end
    local kept, headroom = {}, 0
    for i = 1, 120 do                                       -- 120 MiB, all alive
      kept[i] = lv.zeros({ MiB // 4 })
      local stats = lv.memory_stats()
      headroom = math.max(headroom, stats.gc_threshold - stats.live_bytes)
    end
    assert.is_true(headroom > 20 * MiB, string.format("the threshold was at most %.1f MiB above the live bytes",
      headroom / MiB))
    assert.are.equal(1000000, #tables)
  end)

  it("live bytes return to the baseline once tensors are collected", function()
    local base = live_bytes()
    local keep = {}
    for i = 1, 10000 do
      local t = lv.zeros({ 32 }, i % 2 == 0 and "f64" or "f32")
      local v = t:view(4, 8):t()
      if i % 10 == 0 then keep[#keep + 1] = v end
    end
    assert.is_true(live_bytes() > base)
    keep = nil
    assert.are.equal(base, live_bytes())
    -- and after ops of every kind
    local a = lv.ones({ 20, 30 }, "f64")
    local b = lv.ones({ 30, 10 })
    local base2 = live_bytes()
    for _ = 1, 2000 do
      local _ = { a:matmul(b), a:sum(1), a:t():contiguous(), lv.cat({ a, a }), lv.stack({ b, b }),
                  a:exp():max(2, true), a + b:t():narrow(1, 1, 10):sum(1, true), a:reshape(600),
                  a:t():reshape(600), a[1], a:argmax(), lv.outer(a[1], b[1]) }
    end
    assert.are.equal(base2, live_bytes())
  end)

  it("lv.memory_stats counts a tensor's bytes while it lives", function()
    local base = live_bytes()
    local t = lv.zeros({ 1024, 1024 }, "f64")
    local during = live_bytes()
    assert.is_true(during - base >= 8 * 2 ^ 20)
    assert.is_true(during - base < 8 * 2 ^ 20 + 2 ^ 16)
    local stats = lv.memory_stats()
    assert.are.equal("number", type(stats.cached_bytes))
    assert.are.equal("number", type(stats.gc_threshold))
    t = nil
    assert.are.equal(base, live_bytes())
    lv.memory_trim()
    assert.are.equal(0, lv.memory_stats().cached_bytes)
  end)

  for _, dt in ipairs(H.dtypes) do
    it("a view keeps its base's storage alive (" .. dt .. ")", function()
      local base = live_bytes()
      local row, col, e
      do
        local x = lv.tensor({ { 1, 2, 3 }, { 4, 5, 6 } }, dt)
        row = x[2]
        col = x:t():narrow(1, 3, 1)
        e = x:select(2, 1):view(2, 1):expand(2, 4)
      end
      collectgarbage()
      collectgarbage()
      -- the base's buffer is still there, values intact, and shared
      H.assert_same(row, { 4, 5, 6 })
      H.assert_same(col, { { 3, 6 } })
      H.assert_same(e, { { 1, 1, 1, 1 }, { 4, 4, 4, 4 } })
      row[1] = 40
      H.assert_same(e, { { 1, 1, 1, 1 }, { 40, 40, 40, 40 } })
      H.assert_same(row:exp():log(), { 40, 5, 6 })
      -- dropping the last view frees it
      row, col, e = nil, nil, nil
      assert.are.equal(base, live_bytes())
    end)
  end

  it("<close> frees at scope exit; a closed tensor errors 'freed'", function()
    local base = live_bytes()
    local kept
    do
      local t <close> = lv.zeros({ 10 })
      t:fill_(2)
      H.assert_same(t:sum(), 20)
      kept = t
      assert.is_true(live_bytes() > base)
    end
    -- freed at once, though a Lua reference to the box remains
    assert.are.equal(base, lv.memory_stats().live_bytes)
    for _, use in ipairs({
      function() return kept:sum() end,
      function() return kept:size() end,
      function() return kept:item() end,
      function() return kept:view(5, 2) end,
      function() return lv.exp(kept) end,
      function() return kept:totable() end,
      function() kept:fill_(1) end,
    }) do
      local ok, msg = pcall(use)
      assert.is_false(ok)
      assert.truthy(tostring(msg):find("freed", 1, true), tostring(msg))
    end
    -- the collector and a second close find nothing to free twice
    local mt = getmetatable(kept)
    mt.__close(kept)
    kept = nil
    collectgarbage()
    collectgarbage()
    assert.are.equal(base, live_bytes())
  end)

  it("<close> on a base leaves its views valid", function()
    local v
    do
      local t <close> = lv.arange(6, "f64")
      v = t:narrow(1, 4, 3)
    end
    H.assert_same(v, { 3, 4, 5 })
    H.assert_same(v + 1, { 4, 5, 6 })
  end)

  it("peak_bytes records the most live bytes since the last reset", function()
    collectgarbage()
    lv.memory_reset_peak()
    local base = lv.memory_stats().peak_bytes
    do
      local big = lv.zeros({ 1000, 1000 }, "f64")     -- 8 MB
      assert.is_true(big:numel() == 1e6)
    end
    collectgarbage()
    collectgarbage()
    local peak = lv.memory_stats().peak_bytes
    assert.is_true(peak - base >= 8e6, "peak grew by " .. (peak - base))
    lv.memory_reset_peak()
    assert.is_true(lv.memory_stats().peak_bytes < peak)
  end)
end)
