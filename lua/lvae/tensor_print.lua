--- Printing tensors the Torch7 way: the values, then a footer with dtype
-- and shape. A tensor with more than `options.threshold` elements shows
-- only `options.edge` entries at each end of every dimension, with "...".
-- Tensors of three or more dims print as 2-D slices headed (i,j,.,.).

local lv = require "lvae.base"

local M = {}

M.options = { threshold = 1000, edge = 3, precision = 4 }

local function footer(x)
  if x:dim() == 0 then
    return string.format("[%s tensor, 0-dim]", x:dtype())
  end
  return string.format("[%s tensor of size %s]", x:dtype(), table.concat(x:size(), "x"))
end

--- The part of x that will be shown, and which dims were cut.
local function shrink(x, edge)
  local cut = {}
  for d = 1, x:dim() do
    local n = x:size(d)
    if n > 2 * edge then
      x = lv.cat({ x:narrow(d, 1, edge), x:narrow(d, n - edge + 1, edge) }, d)
      cut[d] = true
    end
  end
  return x, cut
end

local function flatten(t, out)
  if type(t) ~= "table" then
    out[#out + 1] = t
  else
    for _, v in ipairs(t) do flatten(v, out) end
  end
  return out
end

--- One format for every shown value, so that columns line up.
local function number_format(values, precision)
  local max_abs, integral = 0, true
  for _, v in ipairs(values) do
    if v == v and v ~= math.huge and v ~= -math.huge then
      max_abs = math.max(max_abs, math.abs(v))
      if v ~= math.floor(v) then integral = false end
    end
  end
  local fmt
  if integral and max_abs < 1e9 then
    fmt = "%.0f"
  else
    local e = max_abs > 0 and math.floor(math.log(max_abs, 10)) or 0
    if e >= -4 and e < 5 then
      fmt = "%." .. precision .. "f"
    else
      fmt = "%." .. precision .. "e"
    end
  end
  local function render(v)
    if v ~= v then return "nan" end
    if v == math.huge then return "inf" end
    if v == -math.huge then return "-inf" end
    local s = string.format(fmt, v)
    if tonumber(s) == 0 then s = s:gsub("^%-", "") end   -- no "-0.0000"
    return s
  end
  local width = 0
  for _, v in ipairs(values) do width = math.max(width, #render(v)) end
  return function(v) return string.rep(" ", width - #render(v)) .. render(v) end, width
end

--- Rows of a 2-D (or 1-D, as a column) table of shown values.
local function matrix_lines(rows, render, width, cut_rows, cut_cols, edge, lines)
  for i, row in ipairs(rows) do
    if cut_rows and i == edge + 1 then
      lines[#lines + 1] = " " .. string.rep(" ", width - 3) .. "..."
    end
    if type(row) ~= "table" then
      lines[#lines + 1] = " " .. render(row)
    else
      local cells = {}
      for j, v in ipairs(row) do
        if cut_cols and j == edge + 1 then cells[#cells + 1] = "..." end
        cells[#cells + 1] = render(v)
      end
      lines[#lines + 1] = " " .. table.concat(cells, "  ")
    end
  end
end

function M.tostring(x)
  local opts = M.options
  local n = x:numel()
  if x:dim() == 0 then
    local render = number_format({ x:item() }, opts.precision)
    return render(x:item()) .. "\n" .. footer(x)
  end
  if n == 0 then
    return "[empty " .. x:dtype() .. " tensor of size " .. table.concat(x:size(), "x") .. "]"
  end
  local edge = opts.edge
  local shown, cut = x, {}
  if n > opts.threshold then shown, cut = shrink(x, edge) end
  local values = shown:totable()
  local render, width = number_format(flatten(values, {}), opts.precision)
  local lines = {}
  local dims = x:dim()
  if dims <= 2 then
    matrix_lines(values, render, width, cut[1], cut[2], edge, lines)
  else
    -- Walk the leading dims; print each trailing matrix under its index.
    local sizes = shown:size()
    local function original_index(d, i)
      if cut[d] and i > edge then return x:size(d) - 2 * edge + i end
      return i
    end
    local function walk(t, d, prefix)
      if d == dims - 1 then
        lines[#lines + 1] = "(" .. table.concat(prefix, ",") .. ",.,.) = "
        matrix_lines(t, render, width, cut[dims - 1], cut[dims], edge, lines)
        lines[#lines + 1] = ""
        return
      end
      for i = 1, sizes[d] do
        if cut[d] and i == edge + 1 then
          lines[#lines + 1] = "..."
          lines[#lines + 1] = ""
        end
        prefix[d] = original_index(d, i)
        walk(t[i], d + 1, prefix)
        prefix[d] = nil
      end
    end
    walk(values, 1, {})
  end
  lines[#lines + 1] = footer(x)
  return table.concat(lines, "\n")
end

return M
