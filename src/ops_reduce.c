/*
 * ops_reduce.c -- reductions over all or some dims, with keepdim:
 * sum mean max min logsumexp var argmax argmin, for f32 and f64.
 *
 * The reduced dims are walked as rows (coalesced like iter.c does) for
 * each output element; logsumexp and var take two passes over the same
 * rows (max, then sum of exp(x - max); mean, then squared deviations) --
 * the stable forms. max/min propagate NaN; at ties they and argmax/argmin
 * take the first occurrence. argmax/argmin give 1-based positions (Lua's
 * convention, as values) in an f64 tensor, over one dim or all of them.
 */
#include <math.h>
#include <stdlib.h>

#include "alloc.h"
#include "autograd.h"
#include "generic.h"
#include "op.h"
#include "vjp.h"

typedef struct reduce_state {
    lv_op_id kind;
    double acc, acc2;     /* sums */
    double center;        /* pass 2: the max (logsumexp) or mean (var) */
    double best;          /* max/min so far */
    int64_t arg;          /* position of best in the reduced order, or -1 */
    int64_t seen;         /* elements visited in this pass */
} reduce_state;

#define T float
#define SUFFIX f32
#include "ops_reduce_impl.h"
#define T double
#define SUFFIX f64
#include "ops_reduce_impl.h"

/* The reduced dims, coalesced: rows of n_inner elements at stride s. */
typedef struct reduce_plan {
    int nred;
    int64_t red_shape[LV_MAX_DIMS], red_stride[LV_MAX_DIMS];
    int nkeep;
    int64_t keep_shape[LV_MAX_DIMS], keep_stride[LV_MAX_DIMS];
    int64_t count;        /* elements reduced into each output */
} reduce_plan;

static void plan_build(reduce_plan *pl, const lv_tensor *x, unsigned mask)
{
    pl->nred = pl->nkeep = 0;
    pl->count = 1;
    for (int i = 0; i < x->ndim; i++) {
        if (mask & (1u << i)) {
            pl->count *= x->shape[i];
            if (x->shape[i] == 1)
                continue;
            int d = pl->nred;
            if (d > 0 && pl->red_stride[d - 1] == x->stride[i] * x->shape[i]) {
                pl->red_shape[d - 1] *= x->shape[i];
                pl->red_stride[d - 1] = x->stride[i];
                continue;
            }
            pl->red_shape[d] = x->shape[i];
            pl->red_stride[d] = x->stride[i];
            pl->nred++;
        } else {
            pl->keep_shape[pl->nkeep] = x->shape[i];
            pl->keep_stride[pl->nkeep] = x->stride[i];
            pl->nkeep++;
        }
    }
    if (pl->nred == 0) {        /* nothing to walk but one element */
        pl->red_shape[0] = 1;
        pl->red_stride[0] = 0;
        pl->nred = 1;
    }
}

/* One pass over the reduced rows starting at base. */
static void reduce_pass(reduce_state *st, int pass, const reduce_plan *pl,
                        const char *base, lv_dtype dtype)
{
    size_t el = lv_dtype_size(dtype);
    int inner = pl->nred - 1;
    int64_t rows = 1;
    for (int i = 0; i < inner; i++)
        rows *= pl->red_shape[i];
    st->seen = 0;
    for (int64_t r = 0; r < rows; r++) {
        int64_t pos = 0, rem = r;
        for (int i = inner - 1; i >= 0; i--) {
            pos += (rem % pl->red_shape[i]) * pl->red_stride[i];
            rem /= pl->red_shape[i];
        }
        const char *row = base + pos * (int64_t)el;
        if (dtype == LV_DTYPE_F64)
            reduce_row_f64(st, pass, pl->red_shape[inner], (const double *)row,
                           pl->red_stride[inner]);
        else
            reduce_row_f32(st, pass, pl->red_shape[inner], (const float *)row,
                           pl->red_stride[inner]);
    }
}

static double reduce_one(lv_op_id kind, const reduce_plan *pl,
                         const char *base, lv_dtype dtype, int correction)
{
    reduce_state st = {kind, 0, 0, 0, kind == LV_OP_MIN || kind == LV_OP_ARGMIN
                                      ? HUGE_VAL : -HUGE_VAL, -1, 0};
    if (pl->count == 0) {
        switch (kind) {
        case LV_OP_SUM: return 0;
        case LV_OP_LOGSUMEXP: return -INFINITY;
        default: return NAN;
        }
    }
    reduce_pass(&st, 0, pl, base, dtype);
    switch (kind) {
    case LV_OP_SUM:
        return st.acc;
    case LV_OP_MEAN:
        return st.acc / (double)pl->count;
    case LV_OP_MAX:
    case LV_OP_MIN:
        return st.best;
    case LV_OP_ARGMAX:
    case LV_OP_ARGMIN:
        return (double)(st.arg + 1);
    case LV_OP_LOGSUMEXP:
        if (isinf(st.best) || isnan(st.best))
            return st.best;          /* all -inf, some +inf, or NaN */
        st.center = st.best;
        st.acc = 0;
        reduce_pass(&st, 1, pl, base, dtype);
        return st.center + log(st.acc);
    case LV_OP_VAR: {
        st.center = st.acc / (double)pl->count;
        reduce_pass(&st, 1, pl, base, dtype);
        double dof = (double)(pl->count - correction);
        return dof > 0 ? st.acc2 / dof : (double)NAN;
    }
    default:
        return NAN;
    }
}

/* Sums over leading dims onto a contiguous trailing block -- the shape of
 * every bias gradient and broadcast sum ([B, d] -> [d], [N, O, K] ->
 * [O, K]) -- as whole rows added into a double accumulator: a contiguous
 * inner loop instead of one strided walk per output. Returns 0 when the
 * layout is not of that kind (the general path then runs). */
static int sum_leading_dims(lv_tensor *y, const lv_tensor *x, unsigned mask,
                            lv_op_id op)
{
    int lead = 0;
    while (lead < x->ndim && (mask & (1u << lead)))
        lead++;
    if (lead == 0 || lead == x->ndim || (mask >> lead) != 0)
        return 0;
    int64_t n_out = 1, expect = 1;
    for (int i = x->ndim - 1; i >= lead; i--) {
        if (x->shape[i] != 1 && x->stride[i] != expect)
            return 0;
        expect *= x->shape[i];
        n_out *= x->shape[i];
    }
    int64_t rows = 1;
    for (int i = 0; i < lead; i++)
        rows *= x->shape[i];
    if (rows < 2 || n_out < 8)
        return 0;
    double *acc = lv_calloc((size_t)n_out, sizeof *acc);
    if (!acc)
        return 0;
    size_t el = lv_dtype_size(x->dtype);
    const char *base = lv_tensor_data(x);
    for (int64_t r = 0; r < rows; r++) {
        int64_t pos = 0, rem = r;
        for (int i = lead - 1; i >= 0; i--) {
            pos += (rem % x->shape[i]) * x->stride[i];
            rem /= x->shape[i];
        }
        const char *row = base + pos * (int64_t)el;
        if (x->dtype == LV_DTYPE_F64)
            accumulate_row_f64(acc, (const double *)row, n_out);
        else
            accumulate_row_f32(acc, (const float *)row, n_out);
    }
    double scale = op == LV_OP_MEAN ? 1.0 / (double)rows : 1.0;
    for (int64_t j = 0; j < n_out; j++)
        lv_store_double(lv_tensor_data(y), y->dtype, j, acc[j] * scale);
    free(acc);
    return 1;
}

int lv_forward_reduce(lv_tensor **out, lv_op_id op, lv_tensor *const *in,
                      int n_in, const lv_op_params *p)
{
    (void)n_in;
    const lv_tensor *x = in[0];
    const char *name = lv_op_get(op)->name;
    unsigned all = x->ndim ? (1u << x->ndim) - 1 : 0;
    unsigned mask = p->dim_mask ? p->dim_mask : all;
    if (mask & ~all)
        return lv_error_set(2, "dimension out of range for a %d-dim tensor",
                            x->ndim);
    if ((op == LV_OP_ARGMAX || op == LV_OP_ARGMIN) && mask != all &&
        __builtin_popcount(mask) != 1)
        return lv_error_set(2, "%s reduces over one dimension or all of them",
                            name);

    int64_t shape[LV_MAX_DIMS];
    int ndim = 0;
    for (int i = 0; i < x->ndim; i++) {
        if (!(mask & (1u << i)))
            shape[ndim++] = x->shape[i];
        else if (p->keepdim)
            shape[ndim++] = 1;
    }
    /* An empty reduction has no max; an empty result needs none. */
    if ((op == LV_OP_MAX || op == LV_OP_MIN || op == LV_OP_ARGMAX ||
         op == LV_OP_ARGMIN) && lv_tensor_numel(x) == 0 &&
        lv_shape_numel(ndim, shape) > 0)
        return lv_error_set(1, "%s over an empty dimension", name);
    lv_dtype out_dtype = (op == LV_OP_ARGMAX || op == LV_OP_ARGMIN)
                         ? LV_DTYPE_F64 : x->dtype;
    lv_tensor *y = lv_tensor_empty(out_dtype, ndim, shape);
    if (!y)
        return -1;

    if ((op == LV_OP_SUM || op == LV_OP_MEAN) && sum_leading_dims(y, x, mask, op)) {
        out[0] = y;
        return 1;
    }
    reduce_plan pl;
    plan_build(&pl, x, mask);
    int64_t n_out = lv_tensor_numel(y);
    const char *base = lv_tensor_data(x);
    size_t el = lv_dtype_size(x->dtype);
    #pragma omp parallel for if (n_out * pl.count >= (1 << 18) && n_out > 1)
    for (int64_t o = 0; o < n_out; o++) {
        int64_t pos = 0, rem = o;
        for (int i = pl.nkeep - 1; i >= 0; i--) {
            pos += (rem % pl.keep_shape[i]) * pl.keep_stride[i];
            rem /= pl.keep_shape[i];
        }
        double v = reduce_one(op, &pl, base + pos * (int64_t)el, x->dtype,
                              p->correction);
        lv_store_double(lv_tensor_data(y), out_dtype, o, v);
    }
    out[0] = y;
    return 1;
}

/* ---- backward ---------------------------------------------------------
 * g has the reduction's output shape; it is stretched back over x. */

int lv_vjp_reduce(lv_tensor **din, const lv_node *node, lv_tensor *const *dout,
                  const int *needs)
{
    (void)needs;
    lv_scope S = {0};
    lv_tensor *x = node->inputs[0], *dx = NULL;
    const lv_op_params *p = &node->params;
    unsigned mask = p->dim_mask ? p->dim_mask
                                : (x->ndim ? (1u << x->ndim) - 1 : 0);
    int64_t count = 1;
    for (int i = 0; i < x->ndim; i++)
        if (mask & (1u << i))
            count *= x->shape[i];
    lv_tensor *g = ag_unreduce(&S, dout[0], x, mask, p->keepdim);
    switch (node->op) {
    case LV_OP_SUM:
        dx = g;
        break;
    case LV_OP_MEAN:
        dx = ag_scale(&S, g, 1.0 / (double)count);
        break;
    case LV_OP_MAX:
    case LV_OP_MIN: {
        /* Ties share the gradient evenly. */
        lv_tensor *y = ag_unreduce(&S, ag_output(&S, node, 0), x, mask,
                                   p->keepdim);
        lv_tensor *hit = ag_op2(&S, LV_OP_EQ, x, y);
        lv_op_params keep = {.dim_mask = mask, .keepdim = 1};
        lv_tensor *ties = ag_unreduce(&S, ag_opp(&S, LV_OP_SUM, hit, &keep), x,
                                      mask, 1);
        dx = ag_div(&S, ag_mul(&S, g, hit), ties);
        break;
    }
    case LV_OP_LOGSUMEXP: {             /* g softmax(x) */
        lv_tensor *y = ag_unreduce(&S, ag_output(&S, node, 0), x, mask,
                                   p->keepdim);
        dx = ag_mul(&S, g, ag_op(&S, LV_OP_EXP, ag_sub(&S, x, y)));
        break;
    }
    case LV_OP_VAR: {                   /* g 2 (x - mean) / (n - c) */
        lv_op_params keep = {.dim_mask = mask, .keepdim = 1};
        lv_tensor *centered = ag_sub(&S, x, ag_opp(&S, LV_OP_MEAN, x, &keep));
        dx = ag_mul(&S, g, ag_scale(&S, centered,
                                    2.0 / (double)(count - p->correction)));
        break;
    }
    default:
        break;
    }
    din[0] = lv_share(dx);
    lv_scope_end(&S);
    return din[0] ? 0 : -1;
}
