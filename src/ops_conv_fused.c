/*
 * ops_conv_fused.c -- 2-D convolution as three ops that are closed under
 * differentiation, so that the tape saves images, never their columns:
 *
 *     conv2d(x [N,C,H,W], w [O,C,kh,kw])       -> y [N,O,Ho,Wo]
 *     conv_transpose2d(g [N,O,Ho,Wo], w)       -> [N,C,H,W]  (its adjoint in x)
 *     conv_weight_grad(x, g [N,O,Ho,Wo])       -> [O,C,kh,kw] (its adjoint in w)
 *
 * y = conv2d(x, w) is bilinear, so with G the gradient reaching y:
 *     dx = conv_transpose2d(G, w),   dw = conv_weight_grad(x, G);
 * and each of the other two is bilinear in the same pair of spaces, so
 * their VJPs are again these three ops (listed beside each VJP below).
 * That is what lets HVAE and L-VAE differentiate through a decoder's
 * gradient to any order while each node keeps only its two inputs.
 *
 * Each op runs over the batch in chunks of images: the chunk's windows
 * are unfolded (im2col, batch layout: [K, n P], K = C kh kw, P = Ho Wo)
 * into a buffer that stays in cache, and one GEMM per chunk does the
 * arithmetic: [O, K] x [K, n P] for conv2d, [K, O] x [O, n P] followed by
 * col2im for the transpose, and [O, n P] x [n P, K] accumulated over the
 * chunks for the weight gradient. The images stay NCHW; a chunk of g or
 * y is moved between [n, O, P] and [O, n P] by a copy.
 *
 * The chunk loops are in ops_conv_fused_impl.h. Not here: the window
 * kernels (ops_conv_kernels.h, shared with ops_conv.c's im2col/col2im)
 * and the layers (lua/lvae/nn.lua).
 */
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "autograd.h"
#include "gemm.h"
#include "generic.h"
#include "op.h"
#include "ops_conv_kernels.h"

/* Floats of column buffer per chunk: small enough to stay in L2/L3,
 * large enough that each GEMM has a long inner dimension. */
#define CHUNK_ELEMENTS ((int64_t)1 << 19)

typedef struct conv_shape {
    int64_t N, C, H, W, O, kh, kw, Ho, Wo, K, P;
} conv_shape;

static int64_t chunk_images(const conv_shape *s)
{
    int64_t per_image = s->K * s->P > s->O * s->P ? s->K * s->P : s->O * s->P;
    int64_t n = CHUNK_ELEMENTS / (per_image > 0 ? per_image : 1);
    return n < 1 ? 1 : n > s->N ? s->N : n;
}

/* Fills the shape of a convolution from image [N,C,H,W], its windows
 * (Ho, Wo from the geometry) and O output channels; checks the geometry.
 * `what` names the op in errors. */
static int conv_shape_of(conv_shape *s, const lv_conv_geometry *g, int64_t N,
                         int64_t C, int64_t H, int64_t W, int64_t O)
{
    if (lv_conv_check_geometry(g) < 0)
        return -1;
    s->N = N;
    s->C = C;
    s->H = H;
    s->W = W;
    s->O = O;
    s->kh = g->kh;
    s->kw = g->kw;
    if (lv_conv_windows(g, C, H, W, &s->K, &s->Ho, &s->Wo) < 0)
        return -1;
    s->P = s->Ho * s->Wo;
    int64_t cols[2] = {s->K, s->P};
    return lv_shape_check("conv", 2, cols);
}

/* ---- the chunk loops, once per dtype (ops_conv_fused_impl.h) ---------- */

typedef void chunk_fn(lv_op_id op, void *y, void *dw, const void *a,
                      const void *b, void *cols, void *tmp,
                      const conv_shape *s, const lv_conv_geometry *g,
                      int64_t n0, int64_t n);

#define T float
#define SUFFIX f32
#define DTYPE LV_DTYPE_F32
#include "ops_conv_fused_impl.h"
#define T double
#define SUFFIX f64
#define DTYPE LV_DTYPE_F64
#include "ops_conv_fused_impl.h"

/* ---- the chunks, over the threads ------------------------------------ */

/* Runs op over the chunks of the batch. Chunks go to the OpenMP threads,
 * each with its own buffers and OpenBLAS held to one thread inside (the
 * chunks' GEMMs are small: threading each of them costs more than it
 * gains, and two thread pools fighting over two cores cost more still).
 * The weight gradient sums per-chunk parts in chunk order afterwards, so
 * the result does not depend on the thread count. Chunks are handed out
 * one at a time (dynamic): a thread whose core is shared with another
 * process takes fewer of them instead of holding up the rest. */
static int run_chunks(lv_op_id op, lv_tensor *y, const lv_tensor *a,
                      const lv_tensor *b, const conv_shape *s,
                      const lv_conv_geometry *g, int64_t chunk)
{
    int64_t n_chunks = (s->N + chunk - 1) / chunk;
    int threads = 1;
#ifdef _OPENMP
    threads = omp_get_max_threads();
#endif
    int64_t workers = threads < n_chunks ? threads : n_chunks;
    lv_dtype dt = y->dtype;
    size_t el = lv_dtype_size(dt);
    int64_t cols_n = s->K * chunk * s->P, tmp_n = s->O * chunk * s->P;
    int64_t part_n = op == LV_OP_CONV_WEIGHT_GRAD && n_chunks > 1 ? s->O * s->K : 0;
    int64_t shape[1] = {workers * (cols_n + tmp_n) + n_chunks * part_n};
    lv_tensor *scratch = lv_tensor_empty(dt, 1, shape);
    if (!scratch)
        return -1;
    char *base = lv_tensor_data(scratch);
    char *parts = base + workers * (cols_n + tmp_n) * (int64_t)el;
    const void *pa = lv_tensor_data(a), *pb = lv_tensor_data(b);
    char *py = lv_tensor_data(y);
    chunk_fn *run = dt == LV_DTYPE_F64 ? chunk_f64 : chunk_f32;
    int blas_threads = openblas_get_num_threads();
    if (workers > 1)
        openblas_set_num_threads(1);
    #pragma omp parallel for schedule(dynamic, 1) num_threads(workers) if (workers > 1)
    for (int64_t ci = 0; ci < n_chunks; ci++) {
        int t = 0;
#ifdef _OPENMP
        t = omp_get_thread_num();
#endif
        void *cols = base + t * (cols_n + tmp_n) * (int64_t)el;
        void *tmp = (char *)cols + cols_n * (int64_t)el;
        int64_t n0 = ci * chunk, n = s->N - n0 < chunk ? s->N - n0 : chunk;
        void *dw = part_n ? parts + ci * part_n * (int64_t)el : (void *)py;
        run(op, py, dw, pa, pb, cols, tmp, s, g, n0, n);
    }
    if (workers > 1)
        openblas_set_num_threads(blas_threads);
    if (part_n) {
        int64_t m = s->O * s->K;
        for (int64_t i = 0; i < m; i++) {
            double sum = 0;
            for (int64_t ci = 0; ci < n_chunks; ci++)
                sum += lv_load_double(parts, dt, ci * part_n + i);
            lv_store_double(py, dt, i, sum);
        }
    }
    lv_tensor_release(scratch);
    return 1;
}

/* ---- the ops ----------------------------------------------------------- */

static int check_image(const lv_tensor *t, int arg, const char *what)
{
    char buf[128];
    if (t->ndim != 4)
        return lv_error_set(arg, "expected %s [N, C, H, W], got shape %s", what,
                            lv_shape_format(buf, sizeof buf, t->ndim, t->shape));
    return 0;
}

int lv_forward_conv_fused(lv_tensor **out, lv_op_id op, lv_tensor *const *in,
                          int n_in, const lv_op_params *p)
{
    (void)n_in;
    const lv_conv_geometry *g = &p->conv;
    lv_tensor *a = in[0], *b = in[1];
    char buf[128], buf2[128];
    if (a->dtype != b->dtype)
        return lv_error_set(2, "the two operands must have one dtype (%s and %s)",
                            lv_dtype_name(a->dtype), lv_dtype_name(b->dtype));
    if (check_image(a, 1, op == LV_OP_CONV_TRANSPOSE2D ? "an input" : "an image") < 0)
        return -1;
    conv_shape s;
    int64_t out_shape[4];
    if (op == LV_OP_CONV2D || op == LV_OP_CONV_TRANSPOSE2D) {
        /* b is the weight [O, C, kh, kw] */
        if (b->ndim != 4 || b->shape[2] != g->kh || b->shape[3] != g->kw)
            return lv_error_set(2, "expected a weight [O, C, %lld, %lld], got "
                                "shape %s", (long long)g->kh, (long long)g->kw,
                                lv_shape_format(buf, sizeof buf, b->ndim, b->shape));
        if (op == LV_OP_CONV2D) {
            if (a->shape[1] != b->shape[1])
                return lv_error_set(1, "the image has %lld channels, the weight "
                                    "%s expects %lld", (long long)a->shape[1],
                                    lv_shape_format(buf, sizeof buf, 4, b->shape),
                                    (long long)b->shape[1]);
            if (conv_shape_of(&s, g, a->shape[0], a->shape[1], a->shape[2],
                              a->shape[3], b->shape[0]) < 0)
                return -1;
            int64_t sh[4] = {s.N, s.O, s.Ho, s.Wo};
            memcpy(out_shape, sh, sizeof sh);
        } else {
            if (g->height < 1 || g->width < 1)
                return lv_error_set(3, "the output size must be given (height "
                                    "and width at least 1)");
            if (a->shape[1] != b->shape[0])
                return lv_error_set(1, "the input has %lld channels, the weight "
                                    "%s expects %lld", (long long)a->shape[1],
                                    lv_shape_format(buf, sizeof buf, 4, b->shape),
                                    (long long)b->shape[0]);
            if (conv_shape_of(&s, g, a->shape[0], b->shape[1], g->height,
                              g->width, b->shape[0]) < 0)
                return -1;
            if (a->shape[2] != s.Ho || a->shape[3] != s.Wo)
                return lv_error_set(1, "a %lldx%lld output has %lldx%lld "
                                    "windows at this stride and padding, the "
                                    "input is %s", (long long)s.H, (long long)s.W,
                                    (long long)s.Ho, (long long)s.Wo,
                                    lv_shape_format(buf, sizeof buf, 4, a->shape));
            int64_t sh[4] = {s.N, s.C, s.H, s.W};
            memcpy(out_shape, sh, sizeof sh);
        }
    } else {
        /* conv_weight_grad(x [N,C,H,W], y [N,O,Ho,Wo]) */
        if (check_image(b, 2, "an output gradient") < 0)
            return -1;
        if (conv_shape_of(&s, g, a->shape[0], a->shape[1], a->shape[2],
                          a->shape[3], b->shape[1]) < 0)
            return -1;
        if (b->shape[0] != s.N || b->shape[2] != s.Ho || b->shape[3] != s.Wo)
            return lv_error_set(2, "the image %s has windows [%lld, O, %lld, "
                                "%lld], the gradient is %s",
                                lv_shape_format(buf, sizeof buf, 4, a->shape),
                                (long long)s.N, (long long)s.Ho, (long long)s.Wo,
                                lv_shape_format(buf2, sizeof buf2, 4, b->shape));
        int64_t sh[4] = {s.O, s.C, s.kh, s.kw};
        memcpy(out_shape, sh, sizeof sh);
    }
    if (lv_shape_check(lv_op_get(op)->name, 4, out_shape) < 0)
        return -1;

    int64_t chunk = chunk_images(&s);
    lv_tensor *ca = lv_apply1(LV_OP_CONTIGUOUS, 1, &a, NULL);
    lv_tensor *cb = ca ? lv_apply1(LV_OP_CONTIGUOUS, 1, &b, NULL) : NULL;
    int empty = s.N == 0 || s.O == 0 || s.K == 0;
    lv_tensor *y = cb ? (empty ? lv_tensor_zeros(a->dtype, 4, out_shape)
                               : lv_tensor_empty(a->dtype, 4, out_shape))
                      : NULL;
    int status = y ? 1 : -1;
    if (status > 0 && !empty)
        status = run_chunks(op, y, ca, cb, &s, g, chunk);
    lv_tensor_release(ca);
    lv_tensor_release(cb);
    if (status < 0) {
        lv_tensor_release(y);
        return -1;
    }
    out[0] = y;
    return 1;
}

/* The VJPs, with G the gradient reaching the op's output:
 *   y = conv2d(x, w):            dx = convT(G, w),        dw = wgrad(x, G)
 *   x = convT(y, w):             dy = conv2d(G, w),       dw = wgrad(G, y)
 *   w = wgrad(x, y):             dx = convT(y, G),        dy = conv2d(x, G)
 * (each from <op(a, b), G> being one trilinear form). The geometry stays;
 * convT needs the image size, which is x's (or G's). */
int lv_vjp_conv_fused(lv_tensor **din, const lv_node *node,
                      lv_tensor *const *dout, const int *needs)
{
    lv_tensor *G = dout[0], *a = node->inputs[0], *b = node->inputs[1];
    lv_op_params p = node->params;
    din[0] = din[1] = NULL;
    lv_tensor *pair[2];
    switch (node->op) {
    case LV_OP_CONV2D:
        p.conv.height = a->shape[2];
        p.conv.width = a->shape[3];
        if (needs[0]) {
            pair[0] = G; pair[1] = b;
            din[0] = lv_apply1(LV_OP_CONV_TRANSPOSE2D, 2, pair, &p);
        }
        if (needs[1]) {
            pair[0] = a; pair[1] = G;
            din[1] = lv_apply1(LV_OP_CONV_WEIGHT_GRAD, 2, pair, &p);
        }
        break;
    case LV_OP_CONV_TRANSPOSE2D:
        if (needs[0]) {
            pair[0] = G; pair[1] = b;
            din[0] = lv_apply1(LV_OP_CONV2D, 2, pair, &p);
        }
        if (needs[1]) {
            pair[0] = G; pair[1] = a;
            din[1] = lv_apply1(LV_OP_CONV_WEIGHT_GRAD, 2, pair, &p);
        }
        break;
    default:        /* LV_OP_CONV_WEIGHT_GRAD */
        p.conv.height = a->shape[2];
        p.conv.width = a->shape[3];
        if (needs[0]) {
            pair[0] = b; pair[1] = G;
            din[0] = lv_apply1(LV_OP_CONV_TRANSPOSE2D, 2, pair, &p);
        }
        if (needs[1]) {
            pair[0] = a; pair[1] = G;
            din[1] = lv_apply1(LV_OP_CONV2D, 2, pair, &p);
        }
        break;
    }
    if ((needs[0] && !din[0]) || (needs[1] && !din[1])) {
        lv_tensor_release(din[0]);
        lv_tensor_release(din[1]);
        din[0] = din[1] = NULL;
        return -1;
    }
    return 0;
}
