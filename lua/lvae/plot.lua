--- lvae.plot -- the pictures of an experiment.
--
-- Images are drawn by the C core and saved as PNG through libpng (atomic
-- writes): grids of samples, reconstructions under their inputs, and the
-- flow of a 2-D posterior as density panels (q0, then after each step).
-- Line plots go through gnuplot (Debian's gnuplot-nox): a data file
-- NAME.dat and a script NAME.gp are written into the run folder and kept
-- there, so `gnuplot NAME.gp` in that folder redraws (or, edited, restyles)
-- NAME.png later.
--
--   plot.sample_grid(path, images, {shape = {28, 28}, nrow, padding, pad_value})
--   plot.reconstructions(path, inputs, recons, {shape, nrow, padding, pad_value})
--   plot.flow_2d(path, stages, {size, range, ncol, padding})
--   plot.gnuplot(run_dir, name, {data | blocks, columns, script, size})
--   plot.training_curves(run_dir, log, {x, y, name, title, logy, ...})
--   plot.error_vs_dim(run_dir, rows, {x, y, by, err, name, title, ...})
--   plot.has_gnuplot()
--
-- Not here: text or axes inside the PNG images (the core draws pixels,
-- not glyphs: titled figures are gnuplot's), interactive windows.

local lv = require "lvae.base"
local core = require "lvae.core"       -- core._write_atomic

local plot = {}

--- The gnuplot program run by plot.gnuplot (a name on PATH or a path).
plot.gnuplot_program = "gnuplot"

local PNG_SIGNATURE = "\137PNG\r\n\26\n"

---- argument checks ---------------------------------------------------------------

local check = require "lvae.check"
local files = require "lvae.files"
local fail = check.fail

local function describe(v)
  if lv.is_tensor(v) then
    if not pcall(lv.dim, v) then return "a freed tensor" end
    return "a tensor [" .. table.concat(v:size(), ",") .. "]"
  end
  return "a " .. type(v)
end

--- How this module words check.options' messages: "options must be a
-- table, got a number", "unknown option 'x' (known: a, b)".
local OPTION_WORDS = { got = function(v) return ", got " .. describe(v) end }

--- Writes the picture to path through lv.save_png, its errors (a bad
-- path, a folder that does not exist) worded as where's.
local function save(where, path, img)
  if type(path) ~= "string" or path == "" then
    fail(where, "path must be a file name, got %s", type(path) == "string" and "an empty string" or describe(path))
  end
  local ok, err = pcall(lv.save_png, path, img)
  if not ok then fail(where, "%s", (tostring(err):gsub("^[^\n]-:%d+: ", ""):gsub("^lv%.save_png: ", ""))) end
end

--- The images as f32 [N, h*w*c] off the tape, and their tile shape: the
-- `shape` given ({h, w} or {h, w, 3}), else the tensor's own [N, H, W] or
-- [N, H, W, 3], else a square gray image for [N, D] with D a square.
local function tiles(where, what, images, shape)
  if not lv.is_tensor(images) or not pcall(lv.dim, images) then
    fail(where, "%s must be a tensor [N, D] or [N, H, W], got %s", what,
         lv.is_tensor(images) and "a freed tensor" or describe(images))
  end
  local size = images:size()
  if shape == nil then
    if #size == 3 then
      shape = {size[2], size[3]}
    elseif #size == 4 and size[4] == 3 then
      shape = {size[2], size[3], 3}
    elseif #size == 2 and math.tointeger(math.sqrt(size[2]) // 1) ^ 2 == size[2] then
      local s = math.tointeger(math.sqrt(size[2]) // 1)
      shape = {s, s}
    else
      fail(where, "%s is %s: give {shape = {H, W}} for flat images", what, describe(images))
    end
  end
  if type(shape) ~= "table" or (#shape ~= 2 and #shape ~= 3) or (#shape == 3 and shape[3] ~= 3) then
    fail(where, "shape must be {H, W} or {H, W, 3}")
  end
  local per = shape[1] * shape[2] * (shape[3] or 1)
  if #size < 1 or size[1] < 1 or images:numel() ~= size[1] * per then
    fail(where, "%s is %s: not N images of %s", what, describe(images), table.concat(shape, "x"))
  end
  return images:detach():to("f32"):reshape({size[1], per}), shape
end

---- images --------------------------------------------------------------------------

--- plot.sample_grid(path, images [N, D] or [N, H, W] [, opts]) -> path
-- Tiles the images (values in [0, 1]; e.g. the decoder's Bernoulli means
-- of prior samples) into one PNG. Options: shape ({28, 28}), nrow (images
-- per row; default ceil(sqrt(N))), padding (2), pad_value (0.5, a gray
-- that stands apart from both black and white tiles).
function plot.sample_grid(path, images, opts)
  local where = "plot.sample_grid"
  opts = check.options(where, opts, {"shape", "nrow", "padding", "pad_value"}, OPTION_WORDS)
  local flat, shape = tiles(where, "images", images, opts.shape)
  local n = flat:size()[1]
  local grid = lv.image_grid(flat, {
    shape = shape, nrow = opts.nrow or math.ceil(math.sqrt(n)),
    padding = opts.padding or 2, pad_value = opts.pad_value or 0.5,
  })
  save(where, path, grid)
  return path
end

--- plot.reconstructions(path, inputs, recons [, opts]) -> path
-- Each row of inputs with the row of their reconstructions under it:
-- input k and reconstruction k are in the same column. Rows hold nrow
-- (10) images; a last, shorter row is filled with pad_value. Options as
-- sample_grid's.
function plot.reconstructions(path, inputs, recons, opts)
  local where = "plot.reconstructions"
  opts = check.options(where, opts, {"shape", "nrow", "padding", "pad_value"}, OPTION_WORDS)
  local x, shape = tiles(where, "inputs", inputs, opts.shape)
  local r = tiles(where, "reconstructions", recons, shape)
  local n, per = x:size()[1], x:size()[2]
  if r:size()[1] ~= n then
    fail(where, "%d inputs but %d reconstructions", n, r:size()[1])
  end
  local ncol = math.min(opts.nrow or 10, n)
  local pad_value = opts.pad_value or 0.5
  local parts = {}
  for first = 1, n, ncol do
    local k = math.min(ncol, n - first + 1)
    for _, t in ipairs({x, r}) do
      parts[#parts + 1] = t:narrow(1, first, k)
      if k < ncol then parts[#parts + 1] = lv.full({ncol - k, per}, pad_value) end
    end
  end
  local grid = lv.image_grid(lv.cat(parts, 1), {
    shape = shape, nrow = ncol, padding = opts.padding or 2, pad_value = pad_value,
  })
  save(where, path, grid)
  return path
end

--- plot.flow_2d(path, stages [, opts]) -> path, range
-- stages: a list of [S, 2] samples (q0, then after each flow step), drawn
-- as density panels side by side, dark where samples are dense (log scale
-- shared by all panels, so concentration compares across steps), with
-- light axes through the origin. All panels cover one range {xmin, xmax,
-- ymin, ymax}: opts.range, else the extent of every stage's finite
-- samples plus 5%. Options: size (pixels per panel side, 160), ncol
-- (panels per row, all of them), padding (2, black).
function plot.flow_2d(path, stages, opts)
  local where = "plot.flow_2d"
  opts = check.options(where, opts, {"size", "range", "ncol", "padding"}, OPTION_WORDS)
  if type(stages) ~= "table" or #stages == 0 then
    fail(where, "stages must be a non-empty list of [S, 2] tensors, got %s", describe(stages))
  end
  local points = {}
  for i, s in ipairs(stages) do
    if not lv.is_tensor(s) or not pcall(lv.dim, s) or s:dim() ~= 2 or s:size()[2] ~= 2 then
      fail(where, "stages[%d] must be a tensor [S, 2], got %s", i, describe(s))
    end
    points[i] = s:detach():to("f64")
  end
  local range = opts.range or lv.image_extent(lv.cat(points, 1), 0.05)
  local size = opts.size or 160
  local counts, max = {}, 0
  for i, p in ipairs(points) do
    counts[i] = lv.image_scatter(p, {size = size, range = range})
    max = math.max(max, counts[i]:max():item())
  end

  -- The background: white, with the axes x = 0 and y = 0 in light gray.
  local base = lv.ones({size, size})
  local function pixel(f) return math.min(size, math.floor(f * size) + 1) end
  if range[1] < 0 and range[2] > 0 then
    base:narrow(2, pixel(-range[1] / (range[2] - range[1])), 1):fill_(0.85)
  end
  if range[3] < 0 and range[4] > 0 then
    base:narrow(1, pixel(range[4] / (range[4] - range[3])), 1):fill_(0.85)
  end

  -- Ink: 0.35 for one sample, growing with log(1 + count) to 1 at the
  -- densest pixel of all the panels.
  local panels = {}
  for i, c in ipairs(counts) do
    local ink = c:gt(0):mul(0.35)
    if max > 1 then
      ink = ink:add(c:log1p():sub(math.log(2)):clamp(0, math.huge):mul(0.65 / math.log((1 + max) / 2)))
    end
    panels[i] = lv.minimum(base, ink:neg():add(1))
  end
  local grid = lv.image_grid(lv.stack(panels, 1), {
    nrow = opts.ncol or #panels, padding = opts.padding or 2, pad_value = 0,
  })
  save(where, path, grid)
  return path, range
end

---- gnuplot -------------------------------------------------------------------------

--- s as a gnuplot single-quoted string (a quote is doubled; no newlines).
local function gp_string(s)
  return "'" .. tostring(s):gsub("[\r\n]", " "):gsub("'", "''") .. "'"
end

local function join(dir, name)
  if dir:sub(-1) == "/" then return dir .. name end
  return dir .. "/" .. name
end

--- A string unique to this process and call, for temporary file names.
local counter = 0
local function unique()
  counter = counter + 1
  local pid
  local f = io.open("/proc/self/stat", "r")
  if f then
    pid = f:read("n")
    f:close()
  end
  return string.format("%s.%d", pid or tostring({}):match("0x(%x+)") or "0", counter)
end

--- Raises unless run_dir names a folder that exists.
local function check_run_dir(where, run_dir)
  if type(run_dir) ~= "string" or run_dir == "" then
    fail(where, "run_dir must be a folder name, got %s", type(run_dir) == "string" and "an empty string"
      or describe(run_dir))
  end
  if not files.is_dir(run_dir) then fail(where, "run folder %s does not exist", run_dir) end
end

--- True when the gnuplot program can be run.
function plot.has_gnuplot() return files.found(plot.gnuplot_program) end

--- One value of a data file: numbers in full precision (a missing value,
-- NaN and the infinities as gnuplot reads them), strings double-quoted.
local function format_value(v)
  if v == nil then return "NaN" end
  if math.type(v) == "integer" then return string.format("%d", v) end
  if type(v) == "number" then
    if v ~= v then return "NaN" end
    if v == math.huge then return "Inf" end
    if v == -math.huge then return "-Inf" end
    return string.format("%.17g", v)
  end
  if type(v) == "boolean" then return v and "1" or "0" end
  return '"' .. tostring(v):gsub('[\r\n"]', " ") .. '"'
end

--- The lines of rows: each row a list, or a table keyed by the names in
-- columns; as many values per line as columns (or as the row has).
local function format_rows(where, rows, columns, out)
  if type(rows) ~= "table" then fail(where, "data rows must be a list, got %s", describe(rows)) end
  for i, row in ipairs(rows) do
    if type(row) ~= "table" then
      fail(where, "data row %d must be a table, got %s", i, describe(row))
    end
    local values = {}
    local named = columns and row[1] == nil and next(row) ~= nil
    local n = columns and #columns or #row
    for j = 1, n do
      values[j] = format_value(named and row[columns[j]] or row[j])
    end
    out[#out + 1] = table.concat(values, "\t")
  end
end

--- plot.gnuplot(run_dir, name, opts) -> png_path, gnuplot_output
-- Writes run_dir/NAME.dat (unless the data is already a file) and
-- run_dir/NAME.gp, runs gnuplot on the script in run_dir, and leaves
-- run_dir/NAME.png (written under a temporary name, then renamed). The
-- script opens with the terminal (pngcairo, opts.size = {800, 500}), the
-- output and `datafile`, the data file's name; opts.script follows and
-- plots from `datafile`. Options:
--   data     rows (a list of lists, or of tables keyed by `columns`), or
--            the name of a file in run_dir (or an absolute path)
--   blocks   instead of data: {{title = ..., rows = {...}}, ...}, written
--            as gnuplot data sets (`index 0`, `index 1`, ...)
--   columns  the column names (a comment line atop NAME.dat)
--   script   gnuplot commands (required)
-- Missing values are written NaN (`set datafile missing "NaN"` is set).
-- Fails naming the package when gnuplot is not installed (the .dat and
-- .gp are then written already), and with gnuplot's message when the
-- script fails.
function plot.gnuplot(run_dir, name, opts)
  local where = "plot.gnuplot"
  opts = check.options(where, opts, {"data", "blocks", "columns", "script", "size"}, OPTION_WORDS)
  if type(run_dir) ~= "string" or run_dir == "" then
    fail(where, "run_dir must be a folder name, got %s", describe(run_dir))
  end
  if type(name) ~= "string" or not name:match("^[%w_%-][%w_%-%.]*$") then
    fail(where, "name must be a file name of letters, digits, '_', '-' and '.', got %s",
         type(name) == "string" and string.format("%q", name) or describe(name))
  end
  if type(opts.script) ~= "string" then fail(where, "option 'script' (gnuplot commands) is required") end
  if (opts.data == nil) == (opts.blocks == nil) then
    fail(where, "give exactly one of the options 'data' and 'blocks'")
  end
  if not files.is_dir(run_dir) then fail(where, "run folder %s does not exist", run_dir) end
  local columns = opts.columns
  local size = opts.size or {800, 500}

  -- The data file.
  local datafile
  if type(opts.data) == "string" then
    datafile = opts.data
    local path = datafile:sub(1, 1) == "/" and datafile or join(run_dir, datafile)
    local f = io.open(path, "r")
    if not f then fail(where, "data file %s does not exist", path) end
    f:close()
  else
    datafile = name .. ".dat"
    local lines = {string.format("# %s -- data of %s.gp (lvae.plot)", datafile, name)}
    if columns then lines[#lines + 1] = "# " .. table.concat(columns, "\t") end
    if opts.data then
      format_rows(where, opts.data, columns, lines)
    else
      if type(opts.blocks) ~= "table" then fail(where, "option 'blocks' must be a list") end
      for i, block in ipairs(opts.blocks) do
        if i > 1 then lines[#lines + 1] = "\n" end          -- two blank lines
        lines[#lines + 1] = "# " .. tostring(block.title or ("block " .. i))
        format_rows(where, block.rows or {}, columns, lines)
      end
    end
    core._write_atomic(join(run_dir, datafile), table.concat(lines, "\n") .. "\n")
  end

  -- The script.
  local png = name .. ".png"
  local script = table.concat({
    string.format("# %s.gp -- written by lvae.plot; `gnuplot %s.gp` in this folder redraws %s",
                  name, name, png),
    string.format("if (!exists('outfile')) outfile = %s", gp_string(png)),
    string.format("set terminal pngcairo size %d,%d noenhanced font ',10'", size[1], size[2]),
    "set output outfile",
    "datafile = " .. gp_string(datafile),
    'set datafile missing "NaN"',
    "",
    opts.script,
    "",
    "unset output",
    "",
  }, "\n")
  core._write_atomic(join(run_dir, name .. ".gp"), script)

  if not plot.has_gnuplot() then
    fail(where, "gnuplot is not installed (%s.dat and %s.gp are written in %s): install " ..
         "Debian's gnuplot-nox with scripts/setup.sh (or apt-get install gnuplot-nox)",
         name, name, run_dir)
  end
  local tmp = string.format("%s.tmp.%s", png, unique())
  local cmd = string.format("cd %s && %s -e %s %s 2>&1", files.quote(run_dir),
                            files.quote(plot.gnuplot_program),
                            files.quote("outfile='" .. tmp .. "'"),
                            files.quote(name .. ".gp"))
  local p = io.popen(cmd)
  local output = p:read("a")
  local ok = p:close()
  local tmp_path, png_path = join(run_dir, tmp), join(run_dir, png)
  local f = io.open(tmp_path, "rb")
  local head = f and f:read(8)
  if f then f:close() end
  if not ok or head ~= PNG_SIGNATURE then
    os.remove(tmp_path)
    fail(where, "gnuplot failed on %s: %s", join(run_dir, name .. ".gp"),
         output:match("^%s*(.-)%s*$") ~= "" and output:match("^%s*(.-)%s*$") or "no PNG written")
  end
  local renamed, err = os.rename(tmp_path, png_path)
  if not renamed then
    os.remove(tmp_path)
    fail(where, "cannot rename the PNG to %s: %s", png_path, err)
  end
  return png_path, output
end

---- the experiments' figures ----------------------------------------------------------

--- The fields of a CSV header line (quotes and spaces around names dropped).
local function csv_fields(line)
  local fields = {}
  for field in (line:gsub("\r$", "") .. ","):gmatch("([^,]*),") do
    fields[#fields + 1] = field:match('^%s*"?(.-)"?%s*$')
  end
  return fields
end

-- Columns of a log that are not curves unless asked for.
local NOT_CURVES = {epoch = true, lr = true, time = true, seconds = true, elapsed = true}

--- plot.training_curves(run_dir, log [, opts]) -> png_path
-- Curves of a training log against the step, one line per column, in
-- run_dir/training_curves.png (with its .gp, and a .dat for rows).
-- log: the name of a CSV file in run_dir with a header row (the run's
-- "log.csv"; the script reads it in place), or a list of rows keyed by
-- column name (written to training_curves.dat). Options: x ("step"), y
-- (a column or a list; default every column but x, epoch, lr, time,
-- seconds, elapsed), points (columns drawn as points joined by lines:
-- sparse ones such as a per-epoch validation value), columns (the order of
-- a rows log; default x, then the first row's other keys sorted), name,
-- title, xlabel, ylabel, logy, size. Empty CSV fields and NaN are gaps.
function plot.training_curves(run_dir, log, opts)
  local where = "plot.training_curves"
  opts = check.options(where, opts, {"x", "y", "points", "columns", "name", "title", "xlabel",
                                     "ylabel", "logy", "size"}, OPTION_WORDS)
  check_run_dir(where, run_dir)
  local x = opts.x or "step"
  local columns, data, csv
  if type(log) == "string" then
    local path = log:sub(1, 1) == "/" and log or join(run_dir, log)
    local f = io.open(path, "r")
    if not f then fail(where, "cannot open the log %s", path) end
    local header = f:read("l")
    f:close()
    if not header then fail(where, "the log %s is empty", path) end
    columns, data, csv = csv_fields(header), log, true
  elseif type(log) == "table" then
    if #log == 0 then fail(where, "the log has no rows") end
    columns = opts.columns
    if not columns then
      columns = {x}
      local rest = {}
      for k in pairs(log[1]) do
        if k ~= x and type(k) == "string" then rest[#rest + 1] = k end
      end
      table.sort(rest)
      table.move(rest, 1, #rest, 2, columns)
    end
    data = log
  else
    fail(where, "log must be a CSV file name or a list of rows, got %s", describe(log))
  end

  local index = {}
  for i, c in ipairs(columns) do index[c] = index[c] or i end
  if not index[x] then
    fail(where, "the log has no column '%s' (columns: %s)", x, table.concat(columns, ", "))
  end
  local ys = opts.y
  if type(ys) == "string" then ys = {ys} end
  if ys == nil then
    ys = {}
    for _, c in ipairs(columns) do
      if c ~= x and not NOT_CURVES[c] then ys[#ys + 1] = c end
    end
  end
  if #ys == 0 then fail(where, "no columns to plot") end
  local as_points = {}
  for _, c in ipairs(opts.points or {}) do as_points[c] = true end
  local plots = {}
  for i, y in ipairs(ys) do
    if not index[y] then
      fail(where, "the log has no column '%s' (columns: %s)", tostring(y), table.concat(columns, ", "))
    end
    -- a sparse column's points have gaps between them: lines alone would not show
    plots[i] = string.format("datafile using %d:%d with %s title %s", index[x], index[y],
                             as_points[y] and "linespoints lw 2 pt 7 ps 0.8" or "lines lw 1.5",
                             gp_string(y))
  end

  local script = {}
  if csv then
    script[#script + 1] = "set datafile separator ','"
    script[#script + 1] = "set datafile columnheaders"
  end
  script[#script + 1] = "set title " .. gp_string(opts.title or "training curves")
  script[#script + 1] = "set xlabel " .. gp_string(opts.xlabel or x)
  if opts.ylabel then script[#script + 1] = "set ylabel " .. gp_string(opts.ylabel) end
  if opts.logy then
    script[#script + 1] = "set logscale y"
    script[#script + 1] = "set format y '%g'"
  end
  script[#script + 1] = "set grid"
  script[#script + 1] = "set key outside right top"
  script[#script + 1] = "plot " .. table.concat(plots, ", \\\n     ")
  return plot.gnuplot(run_dir, opts.name or "training_curves", {
    data = data, columns = columns, script = table.concat(script, "\n"), size = opts.size,
  })
end

--- plot.error_vs_dim(run_dir, rows [, opts]) -> png_path
-- The Gaussian experiment's figure: error against the dimension d, both
-- on log scales, one line per method, in run_dir/error_vs_dim.png (with
-- .dat and .gp). rows: a list of tables such as {d = 8, method = "qsl",
-- error = 0.12}. Options: x ("d"), y ("error"), by ("method"), err (a
-- column of standard errors: error bars), name, title, xlabel, ylabel,
-- size. Methods keep the order they first appear in; points are sorted
-- by x within each.
function plot.error_vs_dim(run_dir, rows, opts)
  local where = "plot.error_vs_dim"
  opts = check.options(where, opts, {"x", "y", "by", "err", "name", "title", "xlabel",
                                     "ylabel", "size"}, OPTION_WORDS)
  check_run_dir(where, run_dir)
  local x, y, by, err = opts.x or "d", opts.y or "error", opts.by or "method", opts.err
  if type(rows) ~= "table" or #rows == 0 then
    fail(where, "rows must be a non-empty list of tables, got %s", describe(rows))
  end
  local order, groups = {}, {}
  for i, row in ipairs(rows) do
    if type(row) ~= "table" or type(row[x]) ~= "number" or type(row[y]) ~= "number" then
      fail(where, "row %d must have numbers '%s' and '%s'", i, x, y)
    end
    local key = tostring(row[by] or "")
    if not groups[key] then
      groups[key] = {}
      order[#order + 1] = key
    end
    local g = groups[key]
    g[#g + 1] = {row[x], row[y], err and row[err] or nil}
  end
  local blocks, plots = {}, {}
  for i, key in ipairs(order) do
    local g = groups[key]
    table.sort(g, function(a, b) return a[1] < b[1] end)
    blocks[i] = {title = key, rows = g}
    plots[i] = string.format("datafile index %d using 1:2%s with %s lw 1.5 pt 7 ps 0.6 title %s",
                             i - 1, err and ":3" or "", err and "yerrorlines" or "linespoints",
                             gp_string(key))
  end
  local columns = {x, y}
  if err then columns[3] = err end
  local script = table.concat({
    "set title " .. gp_string(opts.title or (y .. " against " .. x)),
    "set xlabel " .. gp_string(opts.xlabel or x),
    "set ylabel " .. gp_string(opts.ylabel or y),
    "set logscale xy",
    "set format xy '%g'",              -- 1e-05, not 0.0000100
    "set grid",
    "set key outside right top",
    "plot " .. table.concat(plots, ", \\\n     "),
  }, "\n")
  return plot.gnuplot(run_dir, opts.name or "error_vs_dim", {
    blocks = blocks, columns = columns, script = script, size = opts.size,
  })
end

return plot
