/*
 * linalg.c -- dense linear algebra on LAPACKE: Cholesky factor, LU
 * log-determinant, linear solve, inverse and symmetric eigendecomposition,
 * each batched over leading dimensions, in f32 (s-routines) and f64
 * (d-routines).
 *
 * Shapes: ... = batch dims (any number, possibly none), n = matrix size,
 * k = right-hand sides.
 *
 *     cholesky  A [..., n, n]                    -> L [..., n, n]
 *     logdet    A [..., n, n]                    -> log|det A| [...], sign [...]
 *     solve     A [..., n, n], B [..., n, k]     -> X [..., n, k]
 *               A [..., n, n], b [..., n]        -> x [..., n]
 *     inverse   A [..., n, n]                    -> A^-1 [..., n, n]
 *     eigh      A [..., n, n]                    -> w [..., n], V [..., n, n]
 *
 * How: each matrix of the batch is copied, from whatever strides its view
 * has, into a column-major work buffer (LAPACK's own layout, so LAPACKE
 * does no transposing copies of its own), factorised there, and written
 * row-major into a fresh contiguous output. The copy is O(n^2) against the
 * factorisation's O(n^3), and it is also where non-finite entries are
 * caught, before LAPACK sees them.
 *
 * The kernels are written once with a type T in linalg_impl.h, included
 * twice (T = float with LAPACK's s-routines, then T = double with its
 * d-routines), the way Torch7's TH generic files are included;
 * lv_forward_linalg checks shapes and dispatches on dtype.
 *
 * Not here: gradients (the tape's backward formulas for these ops are
 * written with ops, elsewhere); broadcasting between the batch dims of
 * solve's two operands (they must match exactly); pivoted or
 * semi-definite Cholesky; detecting nearly singular matrices (only an
 * exactly zero pivot of the LU factorisation counts as singular, as in
 * LAPACK and NumPy); complex numbers.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include <lapacke.h>

#include "alloc.h"
#include "autograd.h"
#include "generic.h"
#include "op.h"
#include "vjp.h"

/* One matrix of a batch, as a strided view: element (i, j) is at
 * data[i * rs + j * cs], read as dtype. */
typedef struct strided_matrix {
    const void *data;
    lv_dtype dtype;
    int64_t rows, cols;
    int64_t rs, cs;                 /* strides in elements */
} strided_matrix;

/* What every kernel needs to know about its batch. */
typedef struct batch_info {
    int nbatch_dims;                /* the leading "..." dims */
    int64_t count;                  /* number of matrices */
    int64_t n;                      /* each is n x n */
} batch_info;

/* Matrix number b (row-major over the batch dims) of t, whose last one or
 * two dims are the matrix. For a vector (t has nbatch_dims + 1 dims) the
 * matrix is rows x 1. */
static strided_matrix matrix_of(const lv_tensor *t, int nbatch_dims, int64_t b)
{
    int64_t at = 0;
    for (int d = nbatch_dims - 1; d >= 0; d--) {
        at += (b % t->shape[d]) * t->stride[d];
        b /= t->shape[d];
    }
    strided_matrix m;
    m.data = (const char *)lv_tensor_data(t) + at * (int64_t)lv_dtype_size(t->dtype);
    m.dtype = t->dtype;
    m.rows = t->shape[nbatch_dims];
    m.rs = t->stride[nbatch_dims];
    if (t->ndim == nbatch_dims + 2) {
        m.cols = t->shape[nbatch_dims + 1];
        m.cs = t->stride[nbatch_dims + 1];
    } else {
        m.cols = 1;
        m.cs = 0;
    }
    return m;
}

/* A work buffer of count elements of size bytes; never a zero-byte
 * malloc, so that NULL always means out of memory. */
static void *work_alloc(int64_t count, size_t size)
{
    void *p = lv_malloc((size_t)(count > 0 ? count : 1) * size);
    if (!p)
        lv_error_set(0, "out of memory (allocating a %lld-element work buffer)",
                     (long long)count);
    return p;
}

/* Words an error about matrix b; in a batch, says which one (1-based, as
 * the Lua user counts). */
static int matrix_error(const batch_info *g, int64_t b, const char *what)
{
    if (g->nbatch_dims == 0)
        return lv_error_set(1, "matrix %s", what);
    return lv_error_set(1, "matrix %lld of the batch %s", (long long)(b + 1),
                        what);
}

/* A negative info from LAPACKE: its own allocation failed, or (a bug
 * here) an argument was rejected. */
static int lapack_failure(const char *routine, lapack_int info)
{
    if (info == LAPACK_WORK_MEMORY_ERROR || info == LAPACK_TRANSPOSE_MEMORY_ERROR)
        return lv_error_set(0, "out of memory (in LAPACK %s)", routine);
    return lv_error_set(0, "internal error: LAPACK %s rejected argument %d",
                        routine, (int)-info);
}

/* Checks LAPACKE's info for matrix b of the batch: 0 is success; a
 * positive info is the matrix's own fault, worded `what` ("is singular"),
 * or, where what is NULL, LAPACK's like a negative one (lapack_failure).
 * Returns 1 on success, else 0 with the error set. */
static int lapack_ok(const char *routine, lapack_int info, const batch_info *g,
                     int64_t b, const char *what)
{
    if (info == 0)
        return 1;
    if (info > 0 && what)
        matrix_error(g, b, what);
    else
        lapack_failure(routine, info);
    return 0;
}

/* The one way a kernel ends, so that there is one cleanup path to get
 * right: on success (ok) the nres results go to out and their count is
 * returned; on failure they are released (NULL-tolerant) and -1 returned.
 * The kernel frees its own work buffers first. */
static int kernel_end(lv_tensor **out, lv_tensor **res, int nres, int ok)
{
    for (int i = 0; i < nres; i++) {
        if (ok)
            out[i] = res[i];
        else
            lv_tensor_release(res[i]);
    }
    return ok ? nres : -1;
}

/* ---- the kernels, once per dtype ------------------------------------- */

#define T float
#define SUFFIX f32
#define DTYPE LV_DTYPE_F32
#define LAPACK(name) LAPACKE_s##name
#include "linalg_impl.h"
#define T double
#define SUFFIX f64
#define DTYPE LV_DTYPE_F64
#define LAPACK(name) LAPACKE_d##name
#include "linalg_impl.h"

/* ---- checks and dispatch ---------------------------------------------- */

/* A must be [..., n, n]; fills g. */
static int check_square(const lv_tensor *a, batch_info *g)
{
    if (a->ndim < 2 || a->shape[a->ndim - 1] != a->shape[a->ndim - 2]) {
        char buf[128];
        return lv_error_set(1, "expected a square matrix or a batch of them, "
                            "got shape %s",
                            lv_shape_format(buf, sizeof buf, a->ndim, a->shape));
    }
    g->nbatch_dims = a->ndim - 2;
    g->count = lv_shape_numel(g->nbatch_dims, a->shape);
    g->n = a->shape[a->ndim - 1];
    return 0;
}

/* B must be [..., n, k] or [..., n] with A's batch dims; returns k. */
static int64_t check_rhs(const lv_tensor *a, const lv_tensor *b,
                         const batch_info *g)
{
    int ok = b->ndim == a->ndim || b->ndim == a->ndim - 1;
    for (int d = 0; ok && d < g->nbatch_dims; d++)
        ok = b->shape[d] == a->shape[d];
    if (ok)
        ok = b->shape[g->nbatch_dims] == g->n;
    if (!ok) {
        char sa[128], sb[128];
        return lv_error_set(2, "shapes %s and %s do not match: for A of shape "
                            "[..., n, n], B must be [..., n, k] or [..., n] "
                            "with the same batch dims",
                            lv_shape_format(sa, sizeof sa, a->ndim, a->shape),
                            lv_shape_format(sb, sizeof sb, b->ndim, b->shape));
    }
    int64_t k = b->ndim == a->ndim ? b->shape[b->ndim - 1] : 1;
    if (k > INT32_MAX)
        return lv_error_set(2, "too many right-hand sides (%lld)", (long long)k);
    return k;
}

int lv_forward_linalg(lv_tensor **out, lv_op_id op, lv_tensor *const *in,
                      int n_in, const lv_op_params *p)
{
    (void)n_in;
    (void)p;
    const lv_tensor *a = in[0];
    batch_info g;
    if (check_square(a, &g) < 0)
        return -1;
    int f64 = a->dtype == LV_DTYPE_F64;

    switch (op) {
    case LV_OP_CHOLESKY:
        return f64 ? cholesky_f64(out, a, &g) : cholesky_f32(out, a, &g);
    case LV_OP_LOGDET:
        return f64 ? logdet_f64(out, a, &g) : logdet_f32(out, a, &g);
    case LV_OP_INVERSE:
        return f64 ? inverse_f64(out, a, &g) : inverse_f32(out, a, &g);
    case LV_OP_EIGH:
        return f64 ? eigh_f64(out, a, &g) : eigh_f32(out, a, &g);
    case LV_OP_SOLVE: {
        const lv_tensor *b = in[1];
        int64_t k = check_rhs(a, b, &g);
        if (k < 0)
            return -1;
        /* mixed dtypes are computed in f64; the load converts */
        f64 = lv_dtype_promote(a->dtype, b->dtype) == LV_DTYPE_F64;
        return f64 ? solve_f64(out, a, b, k, &g) : solve_f32(out, a, b, k, &g);
    }
    default:
        return lv_error_set(0, "internal error: op %d is not a linalg op",
                            (int)op);
    }
}

/* ---- backward ---------------------------------------------------------
 * Matrix calculus with the toolkit's own ops (inverse, solve, matmul), so
 * that every gradient here can be differentiated again. Shape legend:
 * A is [..., n, n]; g the gradient of the op's output. */

static lv_tensor *ag_mt(lv_scope *S, lv_tensor *x)   /* last two dims swapped */
{
    return ag_transpose(S, x, -1, -2);
}

/* A constant n x n mask: 1 below the diagonal, `diag` on it, 0 above. */
static lv_tensor *lower_mask(lv_scope *S, lv_dtype dtype, int64_t n,
                             double diag)
{
    int64_t shape[2] = {n, n};
    lv_tensor *m = lv_keep(S, lv_tensor_zeros(dtype, 2, shape));
    for (int64_t i = 0; m && i < n; i++)
        for (int64_t j = 0; j <= i; j++)
            lv_tensor_set_index(m, (int64_t[]){i, j}, i == j ? diag : 1.0);
    return m;
}

/* g with two size-1 dims appended: a per-matrix scalar against [..., n, n]. */
static lv_tensor *per_matrix(lv_scope *S, lv_tensor *g)
{
    if (!g)
        return NULL;
    int64_t shape[LV_MAX_DIMS];
    for (int i = 0; i < g->ndim; i++)
        shape[i] = g->shape[i];
    shape[g->ndim] = shape[g->ndim + 1] = 1;
    return ag_reshape(S, g, g->ndim + 2, shape);
}

int lv_vjp_linalg(lv_tensor **din, const lv_node *node, lv_tensor *const *dout,
                  const int *needs)
{
    lv_scope S = {0};
    lv_tensor *a = node->inputs[0], *g = dout[0];
    int64_t n = a->shape[a->ndim - 1];
    switch (node->op) {
    case LV_OP_CHOLESKY: {
        /* A = L Lᵀ (Murray 2016): P = Φ(Lᵀ tril(g)), Φ keeping the lower
         * triangle with the diagonal halved; S = L⁻ᵀ P L⁻¹; dA = (S + Sᵀ)/2.
         * The result is symmetric: the gradient of a function of a
         * symmetric matrix. */
        lv_tensor *L = ag_output(&S, node, 0);
        lv_tensor *gl = ag_mul(&S, g, lower_mask(&S, a->dtype, n, 1.0));
        lv_tensor *P = ag_mul(&S, ag_matmul(&S, ag_mt(&S, L), gl),
                              lower_mask(&S, a->dtype, n, 0.5));
        lv_tensor *Linv = ag_op(&S, LV_OP_INVERSE, L);
        lv_tensor *Sm = ag_matmul(&S, ag_matmul(&S, ag_mt(&S, Linv), P), Linv);
        din[0] = lv_share(ag_scale(&S, ag_add(&S, Sm, ag_mt(&S, Sm)), 0.5));
        break;
    }
    case LV_OP_LOGDET:
        /* d log|det A| = tr(A⁻¹ dA): dA = g A⁻ᵀ. The sign output has no
         * gradient. */
        if (!g) {
            din[0] = lv_tensor_zeros(a->dtype, a->ndim, a->shape);
            break;
        }
        din[0] = lv_share(ag_mul(&S, per_matrix(&S, g),
                                 ag_mt(&S, ag_op(&S, LV_OP_INVERSE, a))));
        break;
    case LV_OP_SOLVE: {
        /* X = A⁻¹ B: dB = A⁻ᵀ g, dA = -dB Xᵀ. */
        lv_tensor *b = node->inputs[1];
        int vec = b->ndim == a->ndim - 1;
        lv_tensor *db = ag_op2(&S, LV_OP_SOLVE, ag_mt(&S, a), g);
        lv_tensor *x = ag_output(&S, node, 0);
        if (needs[0]) {
            lv_tensor *da;
            if (vec) {
                da = ag_matmul(&S, ag_unsqueeze(&S, db, db ? db->ndim : 0),
                               ag_unsqueeze(&S, x, x ? x->ndim - 1 : 0));
            } else {
                da = ag_matmul(&S, db, ag_mt(&S, x));
            }
            din[0] = lv_share(ag_sum_to(&S, ag_op(&S, LV_OP_NEG, da), a));
        }
        if (needs[1])
            din[1] = lv_share(ag_sum_to(&S, db, b));
        lv_scope_end(&S);
        return (needs[0] && !din[0]) || (needs[1] && !din[1]) ? -1 : 0;
    }
    case LV_OP_INVERSE: {
        /* Y = A⁻¹: dA = -Yᵀ g Yᵀ. */
        lv_tensor *Yt = ag_mt(&S, ag_output(&S, node, 0));
        din[0] = lv_share(ag_op(&S, LV_OP_NEG, ag_matmul(&S, ag_matmul(&S, Yt, g), Yt)));
        break;
    }
    case LV_OP_EIGH:
        lv_error_set(0, "eigh has no gradient in lvae (use cholesky, logdet, "
                     "solve or inverse, which do)");
        break;
    default:
        break;
    }
    lv_scope_end(&S);
    return din[0] ? 0 : -1;
}

