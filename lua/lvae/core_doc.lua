--- lvae.core_doc: the signature and a one-line description of every
-- function of the C core, for `help(f)` (lua/lvae/help.lua). C functions
-- carry no comments at run time; this table is where they are written down.
--
-- Each entry is { signature as a user writes it, description }. The groups:
--   functions    lv.NAME: every public function of lvae.core. A tensor method
--                is the same C function as lv.NAME, so its entry is written
--                in function form with the tensor first (`lv.narrow(x, dim,
--                start, length)`); help derives the method, `x:narrow(dim,
--                start, length)`
--   Generator    methods of lv.Generator objects
--   Integrator   methods of the flows lv.integrators.* and lv.flows.* make
--   integrators  lv.integrators.NAME, the constructors
--   flows        lv.flows.NAME
--   mpi          lv.mpi.NAME, the processes of one job (src/lua_mpi.c)
--
-- Within a group the entries are sorted by name under topic headings (the
-- README's subsections). tests/help_spec.lua checks that every C function
-- has exactly one entry here and that README.md mentions each of them. Not
-- here: the Lua functions of lv (their `---` comments document them).
--
-- The constructors of integrators and flows are written down once, in
-- their records (src/integrator_kinds.c): their entries are made from
-- lv.integrator_kinds(), and help() lists their options from it too.

local core = require "lvae.core"

--- The entries of the constructors in group ("integrators", "flows"),
-- and the names of every kind ("\"leapfrog\", ... or \"obabo\"").
local function kinds(group)
  local entries, names = {}, {}
  for _, kind in ipairs(core.integrator_kinds()) do
    names[#names + 1] = string.format("%q", kind.name)
    if kind.group == group then
      entries[kind.name] = { string.format("lv.%s.%s{dim, ...} -> Integrator", group, kind.name),
                             kind.summary }
    end
  end
  return entries, table.concat(names, ", ", 1, #names - 1) .. " or " .. names[#names]
end

return {
  functions = {
    -- creation and conversion
    arange = { "lv.arange([start,] stop [, step] [, dtype]) -> Tensor",
               "start, start + step, ... up to stop exclusive (as NumPy); start 0 and step 1 by default" },
    empty_like = { "lv.empty_like(x [, dtype]) -> Tensor", "a tensor of x's shape (and dtype unless given), zero-filled" },
    eye = { "lv.eye(n [, m] [, dtype]) -> Tensor", "the n x m identity matrix (m = n by default)" },
    full = { "lv.full(shape, v [, dtype]) -> Tensor", "a tensor of the shape filled with v (f32 by default)" },
    full_like = { "lv.full_like(x, v [, dtype]) -> Tensor", "a tensor of x's shape (and dtype unless given) filled with v" },
    is_tensor = { "lv.is_tensor(v) -> boolean", "whether v is a tensor" },
    item = { "lv.item(x) -> number", "the value of a tensor of one element" },
    linspace = { "lv.linspace(a, b, n [, dtype]) -> Tensor", "n evenly spaced points from a to b, both included" },
    ones = { "lv.ones(shape [, dtype]) -> Tensor", "a tensor of ones (shape a table, or an integer for a vector; f32 by default)" },
    ones_like = { "lv.ones_like(x [, dtype]) -> Tensor", "ones of x's shape (and dtype unless given)" },
    tensor = { "lv.tensor(value [, dtype]) -> Tensor",
               "a new tensor from a nested table of numbers, a number (0-dim) or a tensor (a copy)" },
    to = { "lv.to(x, dtype) -> Tensor", "x converted to dtype \"f32\" or \"f64\" (on the tape)" },
    totable = { "lv.totable(x) -> table", "x's values as nested Lua tables (a number for a 0-dim tensor)" },
    zeros = { "lv.zeros(shape [, dtype]) -> Tensor", "a tensor of zeros (shape a table, or an integer for a vector; f32 by default)" },
    zeros_like = { "lv.zeros_like(x [, dtype]) -> Tensor", "zeros of x's shape (and dtype unless given)" },

    -- shape: views unless said
    cat = { "lv.cat(list [, dim]) -> Tensor", "the tensors of list joined along an existing dim (1 by default), copied" },
    clone = { "lv.clone(x) -> Tensor", "a contiguous copy of x (on the tape)" },
    contiguous = { "lv.contiguous(x) -> Tensor", "x in row-major layout: x's values, copied when x is a strided view" },
    expand = { "lv.expand(x, shape) -> Tensor", "a broadcast view of x to shape (-1 keeps a size; no copy)" },
    expand_as = { "lv.expand_as(x, y) -> Tensor", "x expanded to y's shape" },
    narrow = { "lv.narrow(x, dim, start, length) -> Tensor",
               "the view of length entries of dim from start (1-based; a negative start counts from the end)" },
    permute = { "lv.permute(x, order) -> Tensor", "a view with the dims reordered (order a list of 1-based dims)" },
    reshape = { "lv.reshape(x, shape) -> Tensor", "x with a new shape (one size may be -1): a view when the strides allow, else a copy" },
    select = { "lv.select(x, dim, i) -> Tensor", "the slice at index i of dim, without that dim (negative i counts from the end)" },
    squeeze = { "lv.squeeze(x [, dim]) -> Tensor", "x without its dims of size 1 (or only dim)" },
    stack = { "lv.stack(list [, dim]) -> Tensor", "the tensors of list (one shape) joined along a new dim (1 by default)" },
    t = { "lv.t(x) -> Tensor", "the transpose of a matrix (the same function as lv.transpose)" },
    transpose = { "lv.transpose(x [, d1, d2]) -> Tensor", "a view with dims d1 and d2 swapped (a matrix's two without them)" },
    unsqueeze = { "lv.unsqueeze(x, dim) -> Tensor", "a view with a new dim of size 1 at position dim" },
    view = { "lv.view(x, shape) -> Tensor", "a view of x's values with a new shape (one size may be -1; needs compatible strides)" },

    -- queries
    dim = { "lv.dim(x) -> integer", "the number of dims of x" },
    dtype = { "lv.dtype(x) -> string", "x's dtype, \"f32\" or \"f64\"" },
    is_contiguous = { "lv.is_contiguous(x) -> boolean", "whether x is laid out row-major without gaps" },
    numel = { "lv.numel(x) -> integer", "the number of elements of x" },
    size = { "lv.size(x [, d]) -> table or integer", "x's shape as a table, or the size of dim d" },
    stride = { "lv.stride(x [, d]) -> table or integer", "x's strides in elements as a table, or the stride of dim d" },

    -- in place (each returns x)
    copy_ = { "lv.copy_(x, src) -> x", "writes src's values (any dtype, broadcastable to x's shape) into x" },
    fill_ = { "lv.fill_(x, v) -> x", "writes the number v into every element of x" },
    zero_ = { "lv.zero_(x) -> x", "writes zeros into every element of x" },

    -- elementwise, with broadcasting (a number is allowed on either side of a binary op)
    abs = { "lv.abs(x) -> Tensor", "|x| (derivative 0 at 0)" },
    add = { "lv.add(a, b) -> Tensor", "a + b" },
    bernoulli_logit = { "lv.bernoulli_logit(l, x) -> Tensor",
                        "the Bernoulli log-likelihood x l - softplus(l) of observations x under logits l, in one stable pass" },
    clamp = { "lv.clamp(x, lo, hi) -> Tensor", "x limited to [lo, hi]; either bound may be nil" },
    div = { "lv.div(a, b) -> Tensor", "a / b" },
    eq = { "lv.eq(a, b) -> Tensor", "1 where a == b, else 0 (no gradient)" },
    exp = { "lv.exp(x) -> Tensor", "e^x" },
    expm1 = { "lv.expm1(x) -> Tensor", "e^x - 1, accurate near 0" },
    ge = { "lv.ge(a, b) -> Tensor", "1 where a >= b, else 0 (no gradient)" },
    gt = { "lv.gt(a, b) -> Tensor", "1 where a > b, else 0 (no gradient)" },
    le = { "lv.le(a, b) -> Tensor", "1 where a <= b, else 0 (no gradient)" },
    log = { "lv.log(x) -> Tensor", "the natural logarithm" },
    log1p = { "lv.log1p(x) -> Tensor", "log(1 + x), accurate near 0" },
    logsigmoid = { "lv.logsigmoid(x) -> Tensor", "log(sigmoid(x)) = -softplus(-x), in its stable form" },
    lt = { "lv.lt(a, b) -> Tensor", "1 where a < b, else 0 (no gradient)" },
    maximum = { "lv.maximum(a, b) -> Tensor", "the larger of a and b (NaN propagates; ties split the gradient)" },
    minimum = { "lv.minimum(a, b) -> Tensor", "the smaller of a and b (NaN propagates; ties split the gradient)" },
    mul = { "lv.mul(a, b) -> Tensor", "a * b, elementwise (matrix products are lv.matmul)" },
    ne = { "lv.ne(a, b) -> Tensor", "1 where a ~= b, else 0 (no gradient)" },
    neg = { "lv.neg(x) -> Tensor", "-x" },
    pow = { "lv.pow(a, b) -> Tensor", "a ^ b" },
    relu = { "lv.relu(x) -> Tensor", "max(x, 0) (derivative 0 at 0)" },
    sigmoid = { "lv.sigmoid(x) -> Tensor", "1 / (1 + e^-x), in its stable form" },
    sign = { "lv.sign(x) -> Tensor", "-1, 0 or 1 (no gradient)" },
    softplus = { "lv.softplus(x) -> Tensor", "log(1 + e^x), in its stable form" },
    sqrt = { "lv.sqrt(x) -> Tensor", "the square root" },
    square = { "lv.square(x) -> Tensor", "x * x" },
    sub = { "lv.sub(a, b) -> Tensor", "a - b" },
    tanh = { "lv.tanh(x) -> Tensor", "the hyperbolic tangent" },

    -- reductions: dims nil (all), one dim or a list; keepdim keeps them as size 1
    argmax = { "lv.argmax(x [, dim] [, keepdim]) -> Tensor",
               "1-based positions of the largest values over dim or all (f64; ties take the first; no gradient)" },
    argmin = { "lv.argmin(x [, dim] [, keepdim]) -> Tensor",
               "1-based positions of the smallest values over dim or all (f64; ties take the first; no gradient)" },
    logsumexp = { "lv.logsumexp(x [, dims] [, keepdim]) -> Tensor", "log of the sum of e^x over dims, in its stable form" },
    max = { "lv.max(x [, dims] [, keepdim]) -> Tensor", "the largest values over dims (NaN propagates; ties split the gradient)" },
    mean = { "lv.mean(x [, dims] [, keepdim]) -> Tensor", "the mean over dims (accumulated in double)" },
    min = { "lv.min(x [, dims] [, keepdim]) -> Tensor", "the smallest values over dims (NaN propagates; ties split the gradient)" },
    sum = { "lv.sum(x [, dims] [, keepdim]) -> Tensor", "the sum over dims (accumulated in double)" },
    var = { "lv.var(x [, dims] [, keepdim] [, correction]) -> Tensor",
            "the variance over dims, dividing by n - correction (1 by default: unbiased)" },

    -- products (OpenBLAS)
    dot = { "lv.dot(a, b) -> Tensor", "the inner product of two vectors (0-dim)" },
    linear = { "lv.linear(x, W [, b]) -> Tensor", "x W^T + b as one op (x [..., in], W [out, in], b [out])" },
    matmul = { "lv.matmul(a, b) -> Tensor",
               "the matrix product of 1-D or 2-D operands, or batches with broadcast leading dims" },
    outer = { "lv.outer(a, b) -> Tensor", "the outer product a b^T of two vectors" },

    -- convolutions: opts = {kernel, stride = 1, padding = 0, size = {H, W}, layout = "image"}
    col2im = { "lv.col2im(cols, opts) -> Tensor", "folds columns back into images [N, C, H, W] (im2col's adjoint; opts.size = {H, W})" },
    conv2d = { "lv.conv2d(x, w, opts) -> Tensor", "the 2-D convolution of x [N, C, H, W] with w [O, C, kh, kw]" },
    conv_transpose2d = { "lv.conv_transpose2d(y, w, opts) -> Tensor",
                         "the transposed convolution: conv2d's adjoint in x (opts.size = {H, W} of the result)" },
    conv_weight_grad = { "lv.conv_weight_grad(x, y, opts) -> Tensor", "conv2d's adjoint in w: [O, C, kh, kw] from images x and y" },
    im2col = { "lv.im2col(x, opts) -> Tensor",
               "unfolds x [N, C, H, W] into columns [N, C kh kw, Ho Wo] ([C kh kw, N, Ho Wo] with layout = \"batch\")" },

    -- linear algebra (LAPACKE), batched over leading dims [..., n, n]
    cholesky = { "lv.cholesky(A) -> Tensor", "the lower Cholesky factor L, L L^T = A (reads the lower triangle)" },
    eigh = { "lv.eigh(A) -> Tensor, Tensor", "the eigenvalues (ascending) and eigenvectors (columns) of a symmetric A; no gradient" },
    inverse = { "lv.inverse(A) -> Tensor", "A^-1" },
    logdet = { "lv.logdet(A) -> Tensor, Tensor", "log|det A| and the sign of det A (-inf and 0 for a singular A)" },
    solve = { "lv.solve(A, B) -> Tensor", "X with A X = B (B [..., n, k] or [..., n])" },

    -- random numbers (Philox4x32-10); gen is an lv.Generator, else the default one
    Generator = { "lv.Generator([seed]) -> Generator", "a random stream of its own (without a seed, seeded as the default generator is at start-up)" },
    bernoulli = { "lv.bernoulli(p [, gen]) or lv.bernoulli(shape, p [, dtype] [, gen]) -> Tensor",
                  "0/1 draws with probabilities p (a tensor, or one number for the whole shape)" },
    get_rng_state = { "lv.get_rng_state() -> {seed, offset}", "the default generator's state, for lv.set_rng_state" },
    manual_seed = { "lv.manual_seed(n)", "seeds the default generator: every later draw is reproducible" },
    rand = { "lv.rand(shape [, dtype] [, gen]) -> Tensor", "uniform draws on [0, 1)" },
    rand_like = { "lv.rand_like(x [, gen]) -> Tensor", "uniform draws on [0, 1) of x's shape and dtype" },
    randn = { "lv.randn(shape [, dtype] [, gen]) -> Tensor", "standard normal draws" },
    randn_batch = { "lv.randn_batch(shape [, dtype] [, gen]) -> Tensor",
                    "standard normal noise for a batch: sample-major rows of the last dimension; a sharded generator's share" },
    randn_like = { "lv.randn_like(x [, gen]) -> Tensor", "standard normal draws of x's shape and dtype" },
    rand_batch = { "lv.rand_batch(shape [, dtype] [, gen]) -> Tensor",
                   "uniform [0, 1) noise for a batch, laid out and sharded as randn_batch's" },
    seed = { "lv.seed() -> integer", "the default generator's seed" },
    set_rng_state = { "lv.set_rng_state(s)", "restores the default generator to a state from lv.get_rng_state" },
    set_shard = { "lv.set_shard([first, rows, total])", "gives the default generator this process's rows of each global batch (none: removes it)" },
    shard = { "lv.shard() -> first, rows, total", "the default generator's shard, or nothing" },

    -- autograd
    backward = { "lv.backward(y [, grad_output] [, {retain_graph, create_graph}])",
                 "adds the gradient of y into .grad of every leaf that requires grad" },
    detach = { "lv.detach(x) -> Tensor", "x's values, shared, off the tape" },
    grad = { "lv.grad(outputs, inputs [, {grad_outputs, create_graph, retain_graph, allow_unused, on_ready, into}]) -> list",
             "the gradients of outputs with respect to inputs (each a tensor or a list); on_ready, an lv.mpi.Reducer, gets each as soon as it is final; into, one buffer per input, is where each is summed in place" },
    is_grad_enabled = { "lv.is_grad_enabled() -> boolean", "whether ops are recorded on the tape" },
    param = { "lv.param(t) -> Tensor", "t as a leaf that requires grad (a computed t gives a new leaf sharing its values)" },
    requires_grad = { "lv.requires_grad(x [, flag]) -> x", "sets whether the leaf x requires grad (true by default)" },
    set_grad_enabled = { "lv.set_grad_enabled(b) -> boolean", "turns recording on the tape on or off; returns the previous mode" },

    -- files: checkpoints, .npy, .amat, IDX, NIfTI, PNG, digests
    gather_rows = { "lv.gather_rows(x, rows) -> Tensor",
                    "the rows of x at 1-based indices (a list or a 1-d tensor), into a new contiguous tensor" },
    load = { "lv.load(path) -> value", "the value saved by lv.save, checked against its checksum" },
    load_amat = { "lv.load_amat(path [, dtype]) -> Tensor",
                  "a whitespace-separated text matrix (.amat, raw or gzip) as [rows, columns] (f32 by default)" },
    load_idx = { "lv.load_idx(path [, dtype] [, {scale}]) -> Tensor, string",
                 "an IDX file (raw or gzip) as a tensor (values times scale) and the file's element type" },
    load_nifti = { "lv.load_nifti(path [, dtype [, volume]]) -> Tensor, table",
                   "a NIfTI-1/2 image as [nz, ny, nx] (f32 by default) and its header fields" },
    load_npy = { "lv.load_npy(path [, dtype]) -> Tensor", "a NumPy .npy file (f4 as f32, f8 as f64, ints and bools as f64)" },
    load_png = { "lv.load_png(path) -> Tensor", "a PNG as f32 [H, W] (gray) or [H, W, 3], values k/255" },
    save = { "lv.save(path, value)", "writes a checkpoint of booleans, numbers, strings, tensors and tables of them, atomically" },
    save_idx = { "lv.save_idx(path, t [, type] [, {gzip}])",
                 "writes t as an IDX file of type u8, i8, i16, i32, f32 or f64, atomically (gzip when the path ends in .gz)" },
    save_npy = { "lv.save_npy(path, t)", "writes t as a NumPy .npy file (version 1.0, '<f4' or '<f8', C order), atomically" },
    save_png = { "lv.save_png(path, img)", "writes img [H, W] or [H, W, 3] (values in [0, 1], clamped) as an 8-bit PNG, atomically" },
    sha256_file = { "lv.sha256_file(path) -> string", "the SHA-256 of a file's bytes, as 64 hex digits" },
    crc32 = { "lv.crc32(t) -> integer", "the CRC-32 of a contiguous tensor's dtype, shape and values (processes compare parameters with it)" },

    -- pictures
    image_extent = { "lv.image_extent(points [, margin]) -> {xmin, xmax, ymin, ymax}",
                     "the extent of the finite points [S, 2], widened by margin (0.05) of each side's width" },
    image_grid = { "lv.image_grid(images [, {nrow, padding, pad_value, shape}]) -> Tensor",
                   "the images [N, H, W] or [N, H, W, 3] tiled into one picture, as torchvision's make_grid" },
    image_scatter = { "lv.image_scatter(points [, {size, height, width, range}]) -> Tensor, integer",
                      "counts of the points [S, 2] per pixel [H, W] (y up), and the number outside the range" },

    -- integrators
    integrator_kinds = { "lv.integrator_kinds() -> list",
                         "one table per kind of flow: name, group, summary, what it has, options with their defaults" },
    -- utilities
    clock = { "lv.clock() -> number", "monotonic wall-clock seconds" },
    memory_reset_peak = { "lv.memory_reset_peak()", "starts lv.memory_stats().peak_bytes again from the live bytes" },
    memory_stats = { "lv.memory_stats() -> {live_bytes, cached_bytes, gc_threshold, peak_bytes}",
                     "the tensor allocator's counters" },
    memory_trim = { "lv.memory_trim()", "frees the storages held in the allocator's reuse cache" },
    num_threads = { "lv.num_threads() -> integer", "the threads of the OpenMP kernels" },
    set_num_threads = { "lv.set_num_threads(n)", "sets the threads of the OpenMP kernels and of BLAS (1 to 1024)" },
  },

  Generator = {
    get_state = { "g:get_state() -> {seed, offset}", "the generator's state, for g:set_state" },
    manual_seed = { "g:manual_seed(n) -> g", "seeds the generator from the start of its stream" },
    seed = { "g:seed() -> integer", "the generator's seed" },
    set_shard = { "g:set_shard([first, rows, total])", "this process's rows of each global batch, for randn_batch and the flows' noise (none: removes it)" },
    set_state = { "g:set_state(s)", "restores a state from g:get_state" },
    shard = { "g:shard() -> first, rows, total", "the generator's shard, or nothing" },
  },

  Integrator = {
    amortized = { "flow:amortized() -> boolean", "whether a planar flow takes u, w, b per sample (opts.params of flow:flow)" },
    dim = { "flow:dim() -> integer", "the latent dimension d" },
    flow = { "flow:flow(z0, rho0, U, K [, {create_graph, params, gen}]) -> zK, rhoK, logdet, n_grad_evals, stats",
             "K steps from z0 [B, d] (and momentum rho0) under the potential U: z [B, d] -> [B]" },
    friction = { "flow:friction() -> Tensor", "the friction gamma [d]" },
    has_momentum = { "flow:has_momentum() -> boolean", "whether the flow carries a momentum rho (not planar, not overdamped euler)" },
    init_momentum = { "flow:init_momentum(B [, K] [, gen]) -> Tensor", "a starting momentum sqrt(T0) N(0, I) [B, d]" },
    kind = { "flow:kind() -> string", select(2, kinds("integrators")) },
    load_state_dict = { "flow:load_state_dict(t) -> flow", "copies the named tensors of t (as from flow:state_dict) into the flow" },
    parameters = { "flow:parameters() -> list", "the flow's learned tensors" },
    state_dict = { "flow:state_dict() -> table", "copies of the flow's named tensors, learned or not" },
    step_size = { "flow:step_size([k]) -> Tensor", "the step sizes h [d] (of step k with per_step)" },
    temperature0 = { "flow:temperature0([K]) -> Tensor", "the initial temperature T0 of rho0 ~ N(0, T0 I)" },
  },

  integrators = kinds("integrators"),

  flows = kinds("flows"),

  mpi = {
    active = { "lv.mpi.active() -> boolean", "whether this process has joined a job of several MPI ranks" },
    allgather = { "lv.mpi.allgather(t) -> Tensor", "every rank's t concatenated along dimension 1, in rank order, on every rank" },
    allgather_string = { "lv.mpi.allgather_string(s) -> list", "every rank's string, in rank order" },
    allreduce = { "lv.mpi.allreduce(t or {t, ...} [, op] [, {bucket_bytes}]) -> the argument",
                  "in place: the sum (or \"max\", \"min\") over ranks, one flat buffer reduced in buckets" },
    allreduce_number = { "lv.mpi.allreduce_number(x or {x, ...} [, op]) -> number or list", "the sum (or max, min) of numbers over ranks" },
    abort = { "lv.mpi.abort([code])", "stops every rank of the job with exit status code (1)" },
    barrier = { "lv.mpi.barrier()", "waits until every rank gets here" },
    broadcast = { "lv.mpi.broadcast(t or {t, ...} [, root]) -> the argument", "in place: every rank's tensors become rank root's (0)" },
    comm_stats = { "lv.mpi.comm_stats() -> {seconds, allreduce_bytes}", "time spent in collectives and bytes allreduced since the last reset" },
    compiled = { "lv.mpi.compiled() -> boolean", "whether this build has Open MPI" },
    finalize = { "lv.mpi.finalize()", "leaves the job (later collectives act as with one process; under mpirun init cannot join again)" },
    init = { "lv.mpi.init() -> rank, size", "joins the job (once; one process of one without mpirun)" },
    launched = { "lv.mpi.launched() -> boolean", "whether the environment says mpirun started this process as one of several" },
    rank = { "lv.mpi.rank() -> integer", "this process's rank, 0 to size - 1" },
    Reducer = { "lv.mpi.Reducer(params [, {bucket_bytes}]) -> reducer",
                "combines gradients across ranks in buckets started while lv.grad runs (r:begin([w]), lv.grad's on_ready = r, r:ready(j, g), r:finish([views]), r:buckets())" },
    reset_comm_stats = { "lv.mpi.reset_comm_stats()", "zeroes the counters of comm_stats" },
    size = { "lv.mpi.size() -> integer", "the number of ranks in the job (1 before init)" },
  },
}
