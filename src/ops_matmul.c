/*
 * ops_matmul.c -- matrix products on OpenBLAS: matmul (1-D, 2-D, and
 * batched with broadcast leading dims), outer, dot.
 *
 * Shape legend: a is [..., n, k], b is [..., k, m], the result
 * [..., n, m]. Transposed views go to BLAS as transposed operands, not
 * copies; only a matrix with no unit stride is copied first. When b has
 * no batch dims and a's batch is one block of rows, the whole batch is one
 * GEMM (an [S, B, d] x [d, h] product is a single call).
 */
#include <string.h>

#include "autograd.h"
#include "gemm.h"
#include "iter.h"
#include "op.h"
#include "vjp.h"

/* One operand matrix as BLAS sees it. */
typedef struct blas_matrix {
    CBLAS_TRANSPOSE trans;
    int64_t ld;
} blas_matrix;

/* Can a rows x cols matrix with strides (s0, s1) go to BLAS as is? */
static int blas_layout(int64_t rows, int64_t cols, int64_t s0, int64_t s1,
                       blas_matrix *m)
{
    if (cols == 1)
        s1 = 1;
    if (rows == 1)
        s0 = cols > 1 ? cols : 1;
    if (s1 == 1 && s0 >= (cols > 1 ? cols : 1)) {
        m->trans = CblasNoTrans;
        m->ld = s0;
        return 1;
    }
    if (s0 == 1 && s1 >= (rows > 1 ? rows : 1)) {
        m->trans = CblasTrans;
        m->ld = s1;
        return 1;
    }
    return 0;
}

static void gemm(lv_dtype dtype, blas_matrix ma, blas_matrix mb, int64_t n,
                 int64_t m, int64_t k, const void *a, const void *b, void *c,
                 int64_t ldc)
{
    lv_gemm(dtype, ma.trans, mb.trans, n, m, k, a, ma.ld, b, mb.ld, 0.0, c, ldc);
}

/* A view of x (borrowed) that BLAS can take, or a contiguous copy: writes a
 * new reference to *use. */
static int blas_ready(const lv_tensor *x, lv_tensor **use)
{
    int r = x->ndim - 2;
    blas_matrix m;
    if (blas_layout(x->shape[r], x->shape[r + 1], x->stride[r],
                    x->stride[r + 1], &m)) {
        *use = lv_tensor_view_of(x, x->ndim, x->shape, x->stride, x->offset);
    } else {
        *use = lv_tensor_empty(x->dtype, x->ndim, x->shape);
        if (*use)
            lv_copy_strided(*use, x);
    }
    return *use ? 0 : -1;
}

static int matmul_nd(lv_tensor **out, lv_tensor *a_in, lv_tensor *b_in)
{
    /* Matrices as [..., n, k] and [..., k, m]; vectors become a 1-row or
     * 1-column matrix and the extra dim is dropped from the result. */
    int a_vec = a_in->ndim == 1, b_vec = b_in->ndim == 1;
    int64_t one = 1;
    lv_tensor *a = a_vec ? lv_tensor_view_of(a_in, 2, (int64_t[]){1, a_in->shape[0]},
                                             (int64_t[]){one, a_in->stride[0]},
                                             a_in->offset)
                         : NULL;
    lv_tensor *b = b_vec ? lv_tensor_view_of(b_in, 2, (int64_t[]){b_in->shape[0], 1},
                                             (int64_t[]){b_in->stride[0], one},
                                             b_in->offset)
                         : NULL;
    const lv_tensor *A = a ? a : a_in, *B = b ? b : b_in;
    lv_tensor *ua = NULL, *ub = NULL, *y = NULL;
    int status = -1;
    if ((a_vec && !a) || (b_vec && !b))
        goto done;

    int64_t n = A->shape[A->ndim - 2], k = A->shape[A->ndim - 1];
    int64_t m = B->shape[B->ndim - 1];
    if (B->shape[B->ndim - 2] != k) {
        char fa[128], fb[128];
        lv_error_set(0, "matmul: shapes %s and %s do not align",
                     lv_shape_format(fa, sizeof fa, a_in->ndim, a_in->shape),
                     lv_shape_format(fb, sizeof fb, b_in->ndim, b_in->shape));
        goto done;
    }
    /* Broadcast the batch dims. */
    int bda = A->ndim - 2, bdb = B->ndim - 2;
    int bd = bda > bdb ? bda : bdb;
    int64_t batch[LV_MAX_DIMS], sa[LV_MAX_DIMS], sb[LV_MAX_DIMS];
    for (int i = 0; i < bd; i++) {
        int ia = i - (bd - bda), ib = i - (bd - bdb);
        int64_t na = ia >= 0 ? A->shape[ia] : 1, nb = ib >= 0 ? B->shape[ib] : 1;
        if (na != nb && na != 1 && nb != 1) {
            char fa[128], fb[128];
            lv_error_set(0, "matmul: batch dims of %s and %s cannot be "
                         "broadcast",
                         lv_shape_format(fa, sizeof fa, a_in->ndim, a_in->shape),
                         lv_shape_format(fb, sizeof fb, b_in->ndim, b_in->shape));
            goto done;
        }
        batch[i] = na == 1 ? nb : na;
    }
    int64_t shape[LV_MAX_DIMS];
    memcpy(shape, batch, sizeof(int64_t) * (size_t)bd);
    shape[bd] = n;
    shape[bd + 1] = m;
    if (lv_shape_check("matmul", bd + 2, shape) < 0)
        goto done;
    if (blas_ready(A, &ua) < 0 || blas_ready(B, &ub) < 0)
        goto done;
    y = k == 0 ? lv_tensor_zeros(A->dtype, bd + 2, shape)
               : lv_tensor_empty(A->dtype, bd + 2, shape);
    if (!y)
        goto done;
    lv_broadcast_strides(ua, bd, sa);   /* batch strides (trailing dims   */
    lv_broadcast_strides(ub, bd, sb);   /* are ignored by the loop below) */
    for (int i = 0; i < bd; i++) {
        int ia = i - (bd - bda), ib = i - (bd - bdb);
        sa[i] = ia >= 0 && ua->shape[ia] != 1 ? ua->stride[ia] : 0;
        sb[i] = ib >= 0 && ub->shape[ib] != 1 ? ub->stride[ib] : 0;
    }
    blas_matrix ma = {CblasNoTrans, 1}, mb = {CblasNoTrans, 1};
    blas_layout(n, k, ua->stride[ua->ndim - 2], ua->stride[ua->ndim - 1], &ma);
    blas_layout(k, m, ub->stride[ub->ndim - 2], ub->stride[ub->ndim - 1], &mb);
    size_t el = lv_dtype_size(A->dtype);
    const char *pa = lv_tensor_data(ua), *pb = lv_tensor_data(ub);
    char *pc = lv_tensor_data(y);
    int64_t nbatch = lv_shape_numel(bd, batch);
    if (k > 0 && n > 0 && m > 0) {
        /* Rows of all batches stacked in one matrix: one GEMM. */
        int one_block = bd == 1 && sb[0] == 0 && ma.trans == CblasNoTrans &&
                        sa[0] == n * ma.ld;
        if (one_block || nbatch == 1) {
            gemm(A->dtype, ma, mb, one_block ? n * nbatch : n, m, k, pa, pb, pc, m);
        } else {
            for (int64_t t = 0; t < nbatch; t++) {
                int64_t oa = 0, ob = 0, rem = t;
                for (int i = bd - 1; i >= 0; i--) {
                    int64_t idx = rem % batch[i];
                    rem /= batch[i];
                    oa += idx * sa[i];
                    ob += idx * sb[i];
                }
                gemm(A->dtype, ma, mb, n, m, k, pa + oa * (int64_t)el,
                     pb + ob * (int64_t)el, pc + t * n * m * (int64_t)el, m);
            }
        }
    }
    /* Drop the dims that stood for vectors. */
    if (a_vec || b_vec) {
        int64_t rs[LV_MAX_DIMS], rst[LV_MAX_DIMS];
        int r = 0;
        for (int i = 0; i < bd + 2; i++) {
            if ((a_vec && i == bd) || (b_vec && i == bd + 1))
                continue;
            rs[r] = y->shape[i];
            rst[r] = y->stride[i];
            r++;
        }
        lv_tensor *v = lv_tensor_view_of(y, r, rs, rst, 0);
        lv_tensor_release(y);
        y = v;
        if (!y)
            goto done;
    }
    out[0] = y;
    y = NULL;
    status = 1;
done:
    lv_tensor_release(a);
    lv_tensor_release(b);
    lv_tensor_release(ua);
    lv_tensor_release(ub);
    lv_tensor_release(y);
    return status;
}

static int dot(lv_tensor **out, const lv_tensor *a, const lv_tensor *b)
{
    if (a->ndim != 1 || b->ndim != 1 || a->shape[0] != b->shape[0]) {
        char fa[128], fb[128];
        return lv_error_set(0, "dot: expected two vectors of one length, got "
                            "shapes %s and %s",
                            lv_shape_format(fa, sizeof fa, a->ndim, a->shape),
                            lv_shape_format(fb, sizeof fb, b->ndim, b->shape));
    }
    lv_tensor *y = lv_tensor_empty(a->dtype, 0, NULL);
    if (!y)
        return -1;
    int n = (int)a->shape[0];
    if (a->dtype == LV_DTYPE_F64)
        *(double *)lv_tensor_data(y) =
            cblas_ddot(n, lv_tensor_data(a), (int)a->stride[0],
                       lv_tensor_data(b), (int)b->stride[0]);
    else    /* accumulated in double: dsdot */
        *(float *)lv_tensor_data(y) =
            (float)cblas_dsdot(n, lv_tensor_data(a), (int)a->stride[0],
                               lv_tensor_data(b), (int)b->stride[0]);
    out[0] = y;
    return 1;
}

static int outer(lv_tensor **out, lv_tensor *a, lv_tensor *b)
{
    if (a->ndim != 1 || b->ndim != 1) {
        char fa[128], fb[128];
        return lv_error_set(0, "outer: expected two vectors, got shapes %s and "
                            "%s",
                            lv_shape_format(fa, sizeof fa, a->ndim, a->shape),
                            lv_shape_format(fb, sizeof fb, b->ndim, b->shape));
    }
    /* [n, 1] times [1, m], broadcast: the multiply kernel does the rest. */
    lv_tensor *col = lv_tensor_view_of(a, 2, (int64_t[]){a->shape[0], 1},
                                       (int64_t[]){a->stride[0], 1}, a->offset);
    lv_tensor *row = lv_tensor_view_of(b, 2, (int64_t[]){1, b->shape[0]},
                                       (int64_t[]){1, b->stride[0]}, b->offset);
    int status = -1;
    if (col && row) {
        lv_tensor *pair[2] = {col, row};
        status = lv_forward_binary(out, LV_OP_MUL, pair, 2, NULL);
    }
    lv_tensor_release(col);
    lv_tensor_release(row);
    return status;
}

int lv_forward_matmul(lv_tensor **out, lv_op_id op, lv_tensor *const *in,
                      int n_in, const lv_op_params *p)
{
    (void)n_in;
    lv_tensor *a = in[0], *b = in[1];
    if (a->ndim == 0 || b->ndim == 0)
        return lv_error_set(a->ndim == 0 ? 1 : 2, "%s: expected a tensor with "
                            "at least one dimension, got a scalar",
                            lv_op_get(op)->name);
    if (a->dtype != b->dtype)
        return lv_forward_widened(out, op, in, p, lv_forward_matmul);
    switch (op) {
    case LV_OP_DOT:
        return dot(out, a, b);
    case LV_OP_OUTER:
        return outer(out, a, b);
    default:
        if (a->ndim == 1 && b->ndim == 1)
            return dot(out, a, b);
        return matmul_nd(out, a, b);
    }
}

/* ---- backward ---------------------------------------------------------
 * y = a b: da = g bᵀ, db = aᵀ g, with vectors seen as one-row (a) or
 * one-column (b) matrices and broadcast batch dims summed back. */

int lv_vjp_matmul(lv_tensor **din, const lv_node *node, lv_tensor *const *dout,
                  const int *needs)
{
    lv_scope S = {0};
    lv_tensor *g = dout[0], *a = node->inputs[0], *b = node->inputs[1];
    lv_tensor *da = NULL, *db = NULL;
    int is_dot = node->op == LV_OP_DOT ||
                 (node->op == LV_OP_MATMUL && a->ndim == 1 && b->ndim == 1);
    if (is_dot) {
        da = needs[0] ? ag_mul(&S, g, b) : NULL;
        db = needs[1] ? ag_mul(&S, g, a) : NULL;
    } else if (node->op == LV_OP_OUTER) {       /* g [n, m] */
        da = needs[0] ? ag_matmul(&S, g, b) : NULL;
        db = needs[1] ? ag_matmul(&S, ag_transpose(&S, g, 0, 1), a) : NULL;
    } else {
        lv_tensor *A = a->ndim == 1 ? ag_unsqueeze(&S, a, 0) : a;
        lv_tensor *B = b->ndim == 1 ? ag_unsqueeze(&S, b, 1) : b;
        lv_tensor *G = g;
        if (a->ndim == 1)
            G = ag_unsqueeze(&S, G, G ? G->ndim - 1 : 0);
        if (b->ndim == 1)
            G = ag_unsqueeze(&S, G, G ? G->ndim : 0);
        if (needs[0])
            da = ag_reshape(&S, ag_sum_to(&S, ag_matmul(&S, G,
                                ag_transpose(&S, B, -1, -2)), A),
                            a->ndim, a->shape);
        if (needs[1])
            db = ag_reshape(&S, ag_sum_to(&S, ag_matmul(&S,
                                ag_transpose(&S, A, -1, -2), G), B),
                            b->ndim, b->shape);
    }
    din[0] = needs[0] ? lv_share(ag_sum_to(&S, da, a)) : NULL;
    din[1] = needs[1] ? lv_share(ag_sum_to(&S, db, b)) : NULL;
    lv_scope_end(&S);
    return (needs[0] && !din[0]) || (needs[1] && !din[1]) ? -1 : 0;
}

/* ---- linear: x Wᵀ + b in one op -----------------------------------------
 * x [..., in], W [out, in], b [out] (optional) -> [..., out]. The bias is
 * copied into every row and the GEMM adds x Wᵀ onto it (beta = 1), so the
 * bias costs no extra pass. The VJP gives W's gradient as Gᵀ x, already in
 * W's [out, in] layout: contiguous, so that a weight used many times (a
 * flow's force evaluations) sums its gradients in place. */

int lv_forward_linear(lv_tensor **out, lv_op_id op, lv_tensor *const *in,
                      int n_in, const lv_op_params *p)
{
    if (n_in < 2 || n_in > 3)
        return lv_error_set(0, "linear expects x, weight and an optional bias, "
                            "got %d inputs", n_in);
    lv_tensor *x = in[0], *w = in[1], *b = n_in > 2 ? in[2] : NULL;
    char fx[128], fw[128];
    if (x->ndim < 1 || w->ndim != 2 || x->shape[x->ndim - 1] != w->shape[1])
        return lv_error_set(2, "linear: input %s and weight %s do not align "
                            "(expected a weight [out, %lld])",
                            lv_shape_format(fx, sizeof fx, x->ndim, x->shape),
                            lv_shape_format(fw, sizeof fw, w->ndim, w->shape),
                            (long long)(x->ndim ? x->shape[x->ndim - 1] : 0));
    if (b && (b->ndim != 1 || b->shape[0] != w->shape[0]))
        return lv_error_set(3, "linear: bias must be [%lld], got %s",
                            (long long)w->shape[0],
                            lv_shape_format(fx, sizeof fx, b->ndim, b->shape));
    if (x->dtype != w->dtype || (b && b->dtype != x->dtype)) {
        /* mixed dtypes are computed in f64, as matmul does */
        lv_op_params to = {.dtype = LV_DTYPE_F64};
        lv_tensor *wide[3] = {NULL, NULL, NULL};
        int ok = 1;
        for (int i = 0; i < n_in; i++) {
            wide[i] = in[i]->dtype == LV_DTYPE_F64 ? lv_share(in[i])
                                                   : lv_apply1(LV_OP_TO, 1, &in[i], &to);
            ok = ok && wide[i];
        }
        int status = ok ? lv_forward_linear(out, op, wide, n_in, p) : -1;
        for (int i = 0; i < n_in; i++)
            lv_tensor_release(wide[i]);
        return status;
    }
    int64_t n_out = w->shape[0], n_in_features = w->shape[1];
    int64_t rows = lv_shape_numel(x->ndim - 1, x->shape);
    int64_t shape[LV_MAX_DIMS];
    memcpy(shape, x->shape, sizeof(int64_t) * (size_t)x->ndim);
    shape[x->ndim - 1] = n_out;
    lv_tensor *cx = lv_apply1(LV_OP_CONTIGUOUS, 1, &x, NULL);
    lv_tensor *cw = cx ? lv_apply1(LV_OP_CONTIGUOUS, 1, &w, NULL) : NULL;
    lv_tensor *y = cw ? lv_tensor_empty(x->dtype, x->ndim, shape) : NULL;
    if (!y) {
        lv_tensor_release(cx);
        lv_tensor_release(cw);
        return -1;
    }
    size_t el = lv_dtype_size(x->dtype);
    char *py = lv_tensor_data(y);
    double beta = 0.0;
    if (b) {
        lv_tensor *cb = lv_apply1(LV_OP_CONTIGUOUS, 1, &b, NULL);
        if (!cb) {
            lv_tensor_release(cx);
            lv_tensor_release(cw);
            lv_tensor_release(y);
            return -1;
        }
        for (int64_t r = 0; r < rows; r++)
            memcpy(py + r * n_out * (int64_t)el, lv_tensor_data(cb),
                   el * (size_t)n_out);
        lv_tensor_release(cb);
        beta = 1.0;
    }
    if (rows > 0 && n_out > 0) {
        if (n_in_features > 0)
            lv_gemm(x->dtype, CblasNoTrans, CblasTrans, rows, n_out,
                    n_in_features, lv_tensor_data(cx), n_in_features,
                    lv_tensor_data(cw), n_in_features, beta, py, n_out);
        else if (!b)
            memset(py, 0, el * (size_t)(rows * n_out));
    }
    lv_tensor_release(cx);
    lv_tensor_release(cw);
    out[0] = y;
    return 1;
}

/* y = x Wᵀ + b: dx = G W, dW = Gᵀ x (rows of every batch dim together),
 * db = Σ_rows G. */
int lv_vjp_linear(lv_tensor **din, const lv_node *node, lv_tensor *const *dout,
                  const int *needs)
{
    lv_scope S = {0};
    lv_tensor *g = dout[0], *x = node->inputs[0], *w = node->inputs[1];
    int n = node->n_inputs;
    din[0] = din[1] = NULL;
    if (n > 2)
        din[2] = NULL;
    int64_t rows = lv_shape_numel(g->ndim - 1, g->shape);
    int64_t g2[2] = {rows, g->shape[g->ndim - 1]};
    lv_tensor *G = (needs[1] || (n > 2 && needs[2])) ? ag_reshape(&S, g, 2, g2) : NULL;
    /* ag_sum_to gives each gradient its input's dtype (mixed inputs were
     * computed in f64). */
    if (needs[0])
        din[0] = lv_share(ag_sum_to(&S, ag_matmul(&S, g, w), x));
    if (needs[1]) {
        int64_t x2[2] = {rows, x->shape[x->ndim - 1]};
        din[1] = lv_share(ag_sum_to(&S, ag_matmul(&S, ag_transpose(&S, G, 0, 1),
                                                  ag_reshape(&S, x, 2, x2)), w));
    }
    if (n > 2 && needs[2]) {
        lv_op_params p = {.dim_mask = 1u};
        din[2] = lv_share(ag_sum_to(&S, ag_opp(&S, LV_OP_SUM, G, &p), node->inputs[2]));
    }
    lv_scope_end(&S);
    for (int i = 0; i < n; i++)
        if (needs[i] && !din[i])
            return -1;
    return 0;
}

/* ---- gradients summed by the GEMM itself ---------------------------------
 * When the reverse pass records nothing and already holds a gradient for
 * a weight, the next contribution (Gᵀ x for linear, Aᵀ G for a matmul's
 * right operand) is added by the GEMM into that buffer (beta = 1), with
 * no temporary and no separate sum. */

/* acc += op(a) op(b) for 2-D BLAS-ready operands; 1 if done, else 0. */
static int gemm_accumulate(lv_tensor *acc, const lv_tensor *a, int ta,
                           const lv_tensor *b, int tb)
{
    if (acc->ndim != 2 || a->ndim != 2 || b->ndim != 2 ||
        !lv_tensor_is_contiguous(acc) || a->dtype != acc->dtype ||
        b->dtype != acc->dtype || !a->storage || !b->storage)
        return 0;
    blas_matrix ma, mb;
    if (!blas_layout(a->shape[0], a->shape[1], a->stride[0], a->stride[1], &ma) ||
        !blas_layout(b->shape[0], b->shape[1], b->stride[0], b->stride[1], &mb))
        return 0;
    int64_t m = ta ? a->shape[1] : a->shape[0], k = ta ? a->shape[0] : a->shape[1];
    int64_t n = tb ? b->shape[0] : b->shape[1];
    if ((tb ? b->shape[1] : b->shape[0]) != k || acc->shape[0] != m ||
        acc->shape[1] != n || m == 0 || n == 0)
        return 0;
    if (k > 0) {
        CBLAS_TRANSPOSE opa = ta ? (ma.trans == CblasNoTrans ? CblasTrans : CblasNoTrans)
                                 : ma.trans;
        CBLAS_TRANSPOSE opb = tb ? (mb.trans == CblasNoTrans ? CblasTrans : CblasNoTrans)
                                 : mb.trans;
        lv_gemm(acc->dtype, opa, opb, m, n, k, lv_tensor_data(a), ma.ld,
                lv_tensor_data(b), mb.ld, 1.0, lv_tensor_data(acc), n);
    }
    acc->storage->version++;
    return 1;
}

int lv_vjp_into_products(lv_tensor *acc, const lv_node *node,
                         lv_tensor *const *dout, int i)
{
    const lv_tensor *g = dout[0];
    if (node->op == LV_OP_LINEAR && i == 1) {
        /* dW += Gᵀ x, G [rows, out], x [rows, in] */
        const lv_tensor *x = node->inputs[0];
        if (g->ndim != 2 || x->ndim != 2)
            return 0;
        return gemm_accumulate(acc, g, 1, x, 0);
    }
    if (node->op == LV_OP_MATMUL && i == 1) {
        /* y = a b: db += aᵀ G, for 2-D a and b */
        const lv_tensor *a = node->inputs[0], *b = node->inputs[1];
        if (a->ndim != 2 || b->ndim != 2 || g->ndim != 2)
            return 0;
        return gemm_accumulate(acc, a, 1, g, 0);
    }
    return 0;
}
