/*
 * profile.c -- the per-op time table of profile.h.
 */
#include <string.h>

#include "clock.h"
#include "profile.h"

int lv_profile_on;

static lv_profile_row rows[LV_OP_COUNT];
/* Time of the ops applied inside the one now running, per nesting level,
 * so that an op's self time excludes them. */
#define MAX_DEPTH 64
static double inner[MAX_DEPTH];
static int depth;


void lv_profile_enable(int on)
{
    if (on) {
        memset(rows, 0, sizeof rows);
        depth = 0;
    }
    lv_profile_on = on;
}

lv_profile_row lv_profile_get(lv_op_id op)
{
    return rows[op];
}

double lv_profile_begin(void)
{
    if (depth < MAX_DEPTH)
        inner[depth] = 0.0;
    depth++;
    return lv_clock_seconds();
}

/* The flops of a product op, from its operands' shapes. */
static double product_flops(lv_op_id op, lv_tensor *const *in, int n_in,
                            const lv_tensor *out)
{
    if (!out || n_in < 2)
        return 0.0;
    double n = (double)lv_tensor_numel(out);
    const lv_tensor *a = in[0], *b = in[1];
    switch (op) {
    case LV_OP_MATMUL:          /* [..., n, k] x [..., k, m] */
        return 2.0 * n * (double)(a->ndim ? a->shape[a->ndim - 1] : 1);
    case LV_OP_LINEAR:          /* x [..., in] W [out, in] */
        return 2.0 * n * (double)b->shape[1];
    case LV_OP_CONV2D:          /* out [N, O, Ho, Wo] from C kh kw each */
        return 2.0 * n * (double)(b->shape[1] * b->shape[2] * b->shape[3]);
    case LV_OP_CONV_TRANSPOSE2D:    /* in [N, O, Ho, Wo], w [O, C, kh, kw] */
        return 2.0 * (double)lv_tensor_numel(a) *
               (double)(b->shape[1] * b->shape[2] * b->shape[3]);
    case LV_OP_CONV_WEIGHT_GRAD:    /* y [N, O, Ho, Wo] x C kh kw */
        return 2.0 * (double)lv_tensor_numel(b) *
               (double)(out->shape[1] * out->shape[2] * out->shape[3]);
    default:
        return 0.0;
    }
}

void lv_profile_end(lv_op_id op, double started, lv_tensor *const *in,
                    int n_in, const lv_tensor *out)
{
    int64_t elements = out ? lv_tensor_numel(out) : 0;
    double took = lv_clock_seconds() - started;
    depth--;
    double nested = depth < MAX_DEPTH ? inner[depth] : 0.0;
    if (depth > 0 && depth - 1 < MAX_DEPTH)
        inner[depth - 1] += took;
    lv_profile_row *r = &rows[op];
    r->calls++;
    r->seconds += took;
    r->self_seconds += took - nested;
    r->elements += elements;
    r->flops += product_flops(op, in, n_in, out);
}
