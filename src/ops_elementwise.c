/*
 * ops_elementwise.c -- unary and binary elementwise ops with NumPy
 * broadcasting, for f32 and f64 (kernels in ops_elementwise_impl.h).
 *
 * Operands of different dtypes are computed in the wider one. The result
 * is always a new contiguous tensor. Not here: reductions, in-place fills.
 */
#include <math.h>
#include <tgmath.h>

#include "iter.h"
#include "op.h"

typedef struct elementwise_ctx {
    lv_op_id op;
    double lo, hi;
} elementwise_ctx;

#define T float
#define SUFFIX f32
#include "ops_elementwise_impl.h"
#undef T
#undef SUFFIX

#define T double
#define SUFFIX f64
#include "ops_elementwise_impl.h"
#undef T
#undef SUFFIX

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
    if (a->dtype != b->dtype) {
        /* Widen the f32 operand through the op table, so that the
         * conversion is recorded like any other op. */
        lv_op_params to = {.dtype = LV_DTYPE_F64};
        lv_tensor *wide = lv_apply1(LV_OP_TO, 1, a->dtype == LV_DTYPE_F32
                                                     ? &in[0] : &in[1], &to);
        if (!wide)
            return -1;
        lv_tensor *pair[2] = {a->dtype == LV_DTYPE_F32 ? wide : a,
                              b->dtype == LV_DTYPE_F32 ? wide : b};
        int n = lv_apply(out, op, 2, pair, p);
        lv_tensor_release(wide);
        return n;
    }
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
