/*
 * ops_elementwise.c -- unary and binary elementwise ops with NumPy
 * broadcasting, for f32 and f64 (kernels in ops_elementwise_impl.h).
 *
 * Operands of different dtypes are computed in the wider one. The result
 * is always a new contiguous tensor. Not here: reductions, in-place fills.
 */
#include <math.h>
#include <tgmath.h>

#include "autograd.h"
#include "generic.h"
#include "iter.h"
#include "op.h"
#include "vjp.h"

#define BLOCK 256

typedef struct elementwise_ctx {
    lv_op_id op;
    double lo, hi;
} elementwise_ctx;

/* f32 only: let the vectoriser call glibc's vector math (libmvec, within
 * 4 ulp) in the contiguous loops. f64 keeps the scalar, correctly rounded
 * in practice, libm calls: its results are compared to the last digit. */
#pragma omp declare simd notinbranch
float expf(float);
#pragma omp declare simd notinbranch
float logf(float);
#pragma omp declare simd notinbranch
float log1pf(float);
#pragma omp declare simd notinbranch
float expm1f(float);
#pragma omp declare simd notinbranch
float tanhf(float);

#define T float
#define SUFFIX f32
#include "ops_elementwise_impl.h"
#define T double
#define SUFFIX f64
#include "ops_elementwise_impl.h"

int lv_forward_unary(lv_tensor **out, lv_op_id op, lv_tensor *const *in,
                     int n_in, const lv_op_params *p)
{
    (void)n_in;
    const lv_tensor *x = in[0];
    elementwise_ctx ctx = {op, -INFINITY, INFINITY};
    if (op == LV_OP_CLAMP) {
        if (!isnan(p->lo))
            ctx.lo = p->lo;
        if (!isnan(p->hi))
            ctx.hi = p->hi;
        if (ctx.lo > ctx.hi)
            return lv_error_set(2, "lower bound %g exceeds upper bound %g",
                                ctx.lo, ctx.hi);
    }
    lv_tensor *y = lv_tensor_empty(x->dtype, x->ndim, x->shape);
    if (!y)
        return -1;
    lv_iter_operand ops[2] = {lv_iter_operand_of(y, NULL),
                              lv_iter_operand_of(x, NULL)};
    lv_iter_run(x->ndim, x->shape, 2, ops,
                x->dtype == LV_DTYPE_F64 ? unary_loop_f64 : unary_loop_f32,
                &ctx);
    out[0] = y;
    return 1;
}

int lv_forward_binary(lv_tensor **out, lv_op_id op, lv_tensor *const *in,
                      int n_in, const lv_op_params *p)
{
    (void)n_in;
    (void)p;
    lv_tensor *a = in[0], *b = in[1];
    int64_t shape[LV_MAX_DIMS];
    int ndim = lv_broadcast_shape(lv_op_get(op)->name, a, b, shape);
    if (ndim < 0)
        return -1;
    if (a->dtype != b->dtype)
        return lv_forward_widened(out, op, in, p, lv_forward_binary);
    lv_tensor *y = lv_tensor_empty(a->dtype, ndim, shape);
    if (!y)
        return -1;
    int64_t sa[LV_MAX_DIMS], sb[LV_MAX_DIMS];
    lv_broadcast_strides(a, ndim, sa);
    lv_broadcast_strides(b, ndim, sb);
    lv_iter_operand ops[3] = {lv_iter_operand_of(y, NULL),
                              lv_iter_operand_of(a, sa),
                              lv_iter_operand_of(b, sb)};
    elementwise_ctx ctx = {op, 0, 0};
    lv_iter_run(ndim, shape, 3, ops,
                a->dtype == LV_DTYPE_F64 ? binary_loop_f64 : binary_loop_f32,
                &ctx);
    out[0] = y;
    return 1;
}

/* ---- the integrators' fused step: out = a x + b y [+ c w] --------------
 * One pass over [B, d] instead of five temporaries; the coefficients are
 * usually [d] vectors (step sizes, e^{-gamma h}) broadcast over the batch. */

int lv_forward_lincomb(lv_tensor **out, lv_op_id op, lv_tensor *const *in,
                       int n_in, const lv_op_params *p)
{
    (void)op;
    (void)p;
    if (n_in != 4 && n_in != 6)
        return lv_error_set(0, "lincomb takes 4 or 6 inputs (a, x, b, y [, c, "
                            "w]), got %d", n_in);
    lv_dtype dtype = in[0]->dtype;
    for (int i = 1; i < n_in; i++)
        if (in[i]->dtype != dtype)
            return lv_error_set(i + 1, "lincomb: inputs must share one dtype");
    /* The broadcast shape of all the inputs, pairwise. */
    int64_t shape[LV_MAX_DIMS];
    int ndim = 0;
    lv_tensor *acc = lv_tensor_view_of(in[0], in[0]->ndim, in[0]->shape,
                                       in[0]->stride, in[0]->offset);
    if (!acc)
        return -1;
    for (int i = 1; i < n_in; i++) {
        ndim = lv_broadcast_shape("lincomb", acc, in[i], shape);
        lv_tensor_release(acc);
        if (ndim < 0)
            return -1;
        int64_t zero[LV_MAX_DIMS] = {0};
        acc = lv_tensor_view_of(in[0], ndim, shape, zero, in[0]->offset);
        if (!acc)
            return -1;
    }
    lv_tensor_release(acc);
    lv_tensor *y = lv_tensor_empty(dtype, ndim, shape);
    if (!y)
        return -1;
    int64_t strides[6][LV_MAX_DIMS];
    lv_iter_operand ops[7];
    ops[0] = lv_iter_operand_of(y, NULL);
    for (int i = 0; i < n_in; i++) {
        lv_broadcast_strides(in[i], ndim, strides[i]);
        ops[i + 1] = lv_iter_operand_of(in[i], strides[i]);
    }
    int terms = n_in / 2;
    lv_iter_run(ndim, shape, n_in + 1, ops,
                dtype == LV_DTYPE_F64 ? lincomb_loop_f64 : lincomb_loop_f32,
                &terms);
    out[0] = y;
    return 1;
}

/* d/da = g x, d/dx = g a, ... each summed back to its operand's shape. */
int lv_vjp_lincomb(lv_tensor **din, const lv_node *node, lv_tensor *const *dout,
                   const int *needs)
{
    lv_scope S = {0};
    lv_tensor *g = dout[0];
    int status = 0;
    for (int i = 0; i < node->n_inputs; i++) {
        din[i] = NULL;
        if (!needs[i])
            continue;
        lv_tensor *partner = node->inputs[i ^ 1];   /* a <-> x, b <-> y, ... */
        din[i] = lv_share(ag_sum_to(&S, ag_mul(&S, g, partner), node->inputs[i]));
        if (!din[i])
            status = -1;
    }
    lv_scope_end(&S);
    return status;
}

/* ---- backward ---------------------------------------------------------
 * x the input, y the output, g the gradient reaching y. Every formula is
 * made of recorded ops, so it can be differentiated again. */

int lv_vjp_unary(lv_tensor **din, const lv_node *node, lv_tensor *const *dout,
                 const int *needs)
{
    (void)needs;
    lv_scope S = {0};
    lv_tensor *g = dout[0], *x = node->inputs[0], *dx = NULL;
    switch (node->op) {
    case LV_OP_NEG:
        dx = ag_op(&S, LV_OP_NEG, g);
        break;
    case LV_OP_EXP:                     /* y = e^x: g y */
        dx = ag_mul(&S, g, ag_output(&S, node, 0));
        break;
    case LV_OP_LOG:
        dx = ag_div(&S, g, x);
        break;
    case LV_OP_LOG1P:
        dx = ag_div(&S, g, ag_add_scalar(&S, x, 1.0));
        break;
    case LV_OP_EXPM1:                   /* y = e^x - 1: g (y + 1) */
        dx = ag_mul(&S, g, ag_add_scalar(&S, ag_output(&S, node, 0), 1.0));
        break;
    case LV_OP_SQRT:                    /* g / (2 y) */
        dx = ag_div(&S, ag_scale(&S, g, 0.5), ag_output(&S, node, 0));
        break;
    case LV_OP_SQUARE:
        dx = ag_mul(&S, ag_scale(&S, g, 2.0), x);
        break;
    case LV_OP_TANH: {                  /* g (1 - y^2) */
        lv_tensor *y = ag_output(&S, node, 0);
        dx = ag_mul(&S, g, ag_add_scalar(&S, ag_op(&S, LV_OP_NEG,
                                              ag_op(&S, LV_OP_SQUARE, y)), 1.0));
        break;
    }
    case LV_OP_SIGMOID: {               /* g y (1 - y) */
        lv_tensor *y = ag_output(&S, node, 0);
        dx = ag_mul(&S, ag_mul(&S, g, y),
                    ag_add_scalar(&S, ag_op(&S, LV_OP_NEG, y), 1.0));
        break;
    }
    case LV_OP_SOFTPLUS: {              /* g sigmoid(x) = g (1 - e^{-y}) */
        /* From the output, so that the tape need not keep x: with y =
         * softplus(x), 1 - e^{-y} = -expm1(-y) is sigmoid(x) to rounding
         * at either end (y ~ e^x for x << 0, y ~ x for x >> 0). */
        dx = ag_mul(&S, g, ag_op(&S, LV_OP_SOFTPLUS_SLOPE, ag_output(&S, node, 0)));
        break;
    }
    case LV_OP_SOFTPLUS_SLOPE: {        /* s = 1 - e^{-y}: g e^{-y} = g (1 - s) */
        lv_tensor *s = ag_output(&S, node, 0);
        dx = ag_sub(&S, g, ag_mul(&S, g, s));
        break;
    }
    case LV_OP_LOGSIGMOID:              /* g sigmoid(-x) */
        dx = ag_mul(&S, g, ag_op(&S, LV_OP_SIGMOID, ag_op(&S, LV_OP_NEG, x)));
        break;
    case LV_OP_RELU:                    /* g [x > 0]; 0 at x = 0 */
        dx = ag_mul(&S, g, ag_op2(&S, LV_OP_GT, x,
                                  lv_keep(&S, lv_scalar(x->dtype, 0))));
        break;
    case LV_OP_ABS:                     /* g sign(x); 0 at x = 0 */
        dx = ag_mul(&S, g, ag_op(&S, LV_OP_SIGN, x));
        break;
    case LV_OP_SIGN:                    /* zero almost everywhere */
        dx = ag_scale(&S, g, 0.0);
        break;
    case LV_OP_CLAMP: {                 /* g where lo <= x <= hi */
        lv_tensor *inside = ag_op2(&S, LV_OP_EQ, ag_output(&S, node, 0), x);
        dx = ag_mul(&S, g, inside);
        break;
    }
    default:
        break;
    }
    din[0] = lv_share(dx);
    lv_scope_end(&S);
    return din[0] ? 0 : -1;
}

int lv_vjp_binary(lv_tensor **din, const lv_node *node, lv_tensor *const *dout,
                  const int *needs)
{
    lv_scope S = {0};
    lv_tensor *g = dout[0], *a = node->inputs[0], *b = node->inputs[1];
    lv_tensor *da = NULL, *db = NULL;
    switch (node->op) {
    case LV_OP_ADD:
        da = g;
        db = g;
        break;
    case LV_OP_SUB:
        da = g;
        db = needs[1] ? ag_op(&S, LV_OP_NEG, g) : NULL;
        break;
    case LV_OP_MUL:
        da = needs[0] ? ag_mul(&S, g, b) : NULL;
        db = needs[1] ? ag_mul(&S, g, a) : NULL;
        break;
    case LV_OP_DIV:                     /* y = a/b: g/b, -g y / b */
        da = ag_div(&S, g, b);
        db = needs[1] ? ag_op(&S, LV_OP_NEG, ag_div(&S, ag_mul(&S, g,
                                  ag_output(&S, node, 0)), b)) : NULL;
        break;
    case LV_OP_POW: {                   /* y = a^b: g b a^(b-1), g y log a */
        if (needs[0])
            da = ag_mul(&S, ag_mul(&S, g, b),
                        ag_op2(&S, LV_OP_POW, a, ag_add_scalar(&S, b, -1.0)));
        if (needs[1])
            db = ag_mul(&S, ag_mul(&S, g, ag_output(&S, node, 0)),
                        ag_op(&S, LV_OP_LOG, a));
        break;
    }
    case LV_OP_MAXIMUM:
    case LV_OP_MINIMUM: {
        /* The gradient goes to the larger (smaller) operand; at a tie it
         * is split evenly between the two. */
        lv_op_id wins = node->op == LV_OP_MAXIMUM ? LV_OP_GT : LV_OP_LT;
        lv_tensor *half_tie = ag_scale(&S, ag_op2(&S, LV_OP_EQ, a, b), 0.5);
        if (needs[0])
            da = ag_mul(&S, g, ag_add(&S, ag_op2(&S, wins, a, b), half_tie));
        if (needs[1])
            db = ag_mul(&S, g, ag_add(&S, ag_op2(&S, wins, b, a), half_tie));
        break;
    }
    case LV_OP_BERNOULLI_LOGIT:         /* y = b a - softplus(a) */
        if (needs[0])                   /* g (b - sigmoid(a)) */
            da = ag_mul(&S, g, ag_op2(&S, LV_OP_BERNOULLI_LOGIT_SLOPE, a, b));
        if (needs[1])
            db = ag_mul(&S, g, a);
        break;
    case LV_OP_BERNOULLI_LOGIT_SLOPE: { /* y = b - sigmoid(a) */
        if (needs[0]) {                 /* -g s (1 - s), s = sigmoid(a) */
            lv_tensor *sig = ag_op(&S, LV_OP_SIGMOID, a);
            da = ag_mul(&S, ag_op(&S, LV_OP_NEG, ag_mul(&S, g, sig)),
                        ag_add_scalar(&S, ag_op(&S, LV_OP_NEG, sig), 1.0));
        }
        db = g;
        break;
    }
    default:
        break;
    }
    /* Broadcast operands get their gradient summed back to their shape. */
    din[0] = needs[0] ? lv_share(ag_sum_to(&S, da, a)) : NULL;
    din[1] = needs[1] ? lv_share(ag_sum_to(&S, db, b)) : NULL;
    lv_scope_end(&S);
    return (needs[0] && !din[0]) || (needs[1] && !din[1]) ? -1 : 0;
}

/* ---- accumulation in place ---------------------------------------------
 * The reverse pass sums the gradients that reach one tensor; when it
 * records nothing and owns the sum alone, it adds into it in place
 * instead of making a new tensor per contribution. */

int lv_add_into(lv_tensor *dst, const lv_tensor *src)
{
    int64_t n = lv_tensor_numel(dst);
    if (dst->dtype != src->dtype || n != lv_tensor_numel(src) ||
        dst->ndim != src->ndim || !lv_tensor_is_contiguous(dst) ||
        !lv_tensor_is_contiguous(src))
        return 0;
    for (int i = 0; i < dst->ndim; i++)
        if (dst->shape[i] != src->shape[i])
            return 0;
    if (dst->dtype == LV_DTYPE_F64)
        add_into_f64(lv_tensor_data(dst), lv_tensor_data(src), n);
    else
        add_into_f32(lv_tensor_data(dst), lv_tensor_data(src), n);
    dst->storage->version++;
    return 1;
}

/* The reducer's weighting of a gradient it places in a bucket (f32 data
 * scaled by the f32 weight, as the data's own arithmetic would). */
void lv_scale_in_place(void *data, lv_dtype dtype, int64_t n, double w)
{
    if (dtype == LV_DTYPE_F64)
        scale_in_place_f64(data, w, n);
    else
        scale_in_place_f32(data, (float)w, n);
}
