/*
 * vjp.c -- the helpers VJPs are written with (vjp.h): a scope that owns a
 * formula's temporaries, ops applied into it, and the undoing of
 * broadcasts and reductions. All of it is lv_apply underneath, so it is
 * recorded when grad mode is on.
 *
 * Not here: the tape and the reverse pass (autograd.c), the VJP formulas
 * (beside their forwards in ops_*.c, linalg.c, integrators.c).
 */
#include <string.h>

#include "vjp.h"

/* ---- the scope ------------------------------------------------------- */

lv_tensor *lv_keep(lv_scope *s, lv_tensor *t)
{
    if (!t)
        return NULL;
    if (s->n == (int)(sizeof s->items / sizeof s->items[0])) {
        lv_tensor_release(t);
        lv_error_set(0, "internal: a VJP scope is full");
        return NULL;
    }
    s->items[s->n++] = t;
    return t;
}

void lv_scope_end(lv_scope *s)
{
    while (s->n > 0)
        lv_tensor_release(s->items[--s->n]);
}

lv_tensor *lv_share(lv_tensor *t)
{
    if (t)
        lv_tensor_retain(t);
    return t;
}

/* ---- ops into a scope ------------------------------------------------ */

lv_tensor *ag_op(lv_scope *s, lv_op_id op, lv_tensor *x)
{
    return x ? lv_keep(s, lv_unary(op, x)) : NULL;
}

lv_tensor *ag_opp(lv_scope *s, lv_op_id op, lv_tensor *x,
                  const lv_op_params *p)
{
    return x ? lv_keep(s, lv_apply1(op, 1, &x, p)) : NULL;
}

lv_tensor *ag_op2(lv_scope *s, lv_op_id op, lv_tensor *a, lv_tensor *b)
{
    return a && b ? lv_keep(s, lv_binary(op, a, b)) : NULL;
}

lv_tensor *ag_mul(lv_scope *s, lv_tensor *a, lv_tensor *b)
{
    return ag_op2(s, LV_OP_MUL, a, b);
}

lv_tensor *ag_div(lv_scope *s, lv_tensor *a, lv_tensor *b)
{
    return ag_op2(s, LV_OP_DIV, a, b);
}

lv_tensor *ag_add(lv_scope *s, lv_tensor *a, lv_tensor *b)
{
    return ag_op2(s, LV_OP_ADD, a, b);
}

lv_tensor *ag_sub(lv_scope *s, lv_tensor *a, lv_tensor *b)
{
    return ag_op2(s, LV_OP_SUB, a, b);
}

lv_tensor *ag_matmul(lv_scope *s, lv_tensor *a, lv_tensor *b)
{
    return ag_op2(s, LV_OP_MATMUL, a, b);
}

lv_tensor *ag_scale(lv_scope *s, lv_tensor *x, double v)
{
    return x ? ag_mul(s, x, lv_keep(s, lv_scalar(x->dtype, v))) : NULL;
}

lv_tensor *ag_add_scalar(lv_scope *s, lv_tensor *x, double v)
{
    return x ? ag_add(s, x, lv_keep(s, lv_scalar(x->dtype, v))) : NULL;
}

lv_tensor *ag_transpose(lv_scope *s, lv_tensor *x, int d1, int d2)
{
    lv_op_params p = {.dim = d1, .dim2 = d2};
    return ag_opp(s, LV_OP_TRANSPOSE, x, &p);
}

lv_tensor *ag_unsqueeze(lv_scope *s, lv_tensor *x, int dim)
{
    lv_op_params p = {.dim = dim};
    return ag_opp(s, LV_OP_UNSQUEEZE, x, &p);
}

lv_tensor *ag_reshape(lv_scope *s, lv_tensor *x, int ndim,
                      const int64_t *shape)
{
    return x ? lv_keep(s, lv_reshape_to(x, ndim, shape)) : NULL;
}

lv_tensor *ag_sum_to(lv_scope *s, lv_tensor *g, const lv_tensor *like)
{
    return g ? lv_keep(s, lv_sum_to(g, like)) : NULL;
}

lv_tensor *ag_unreduce(lv_scope *s, lv_tensor *g, const lv_tensor *x,
                       unsigned mask, int keepdim)
{
    return g ? lv_keep(s, lv_unreduce(g, x, mask, keepdim)) : NULL;
}

lv_tensor *ag_output(lv_scope *s, const lv_node *node, int k)
{
    return lv_keep(s, lv_node_output(node, k));
}

/* ---- without a scope ------------------------------------------------- */

lv_tensor *lv_scalar(lv_dtype dtype, double v)
{
    return lv_tensor_full(dtype, 0, NULL, v);
}

lv_tensor *lv_reshape_to(lv_tensor *x, int ndim, const int64_t *shape)
{
    /* Already that shape: no op, and no node on the tape. */
    if (x->ndim == ndim &&
        memcmp(x->shape, shape, sizeof(int64_t) * (size_t)ndim) == 0) {
        lv_tensor_retain(x);
        return x;
    }
    lv_op_params p = {.ndim = ndim};
    memcpy(p.shape, shape, sizeof(int64_t) * (size_t)ndim);
    return lv_apply1(LV_OP_RESHAPE, 1, &x, &p);
}

lv_tensor *lv_sum_to(lv_tensor *g, const lv_tensor *like)
{
    /* Dims g has in front of like's, and dims where like has size 1 but
     * g does not, were broadcast: sum them, then take like's shape. */
    unsigned mask = 0;
    int lead = g->ndim - like->ndim;
    for (int i = 0; i < g->ndim; i++) {
        int il = i - lead;
        if (il < 0 || (like->shape[il] == 1 && g->shape[i] != 1))
            mask |= 1u << i;
    }
    lv_tensor *summed;
    if (mask) {
        lv_op_params p = {.dim_mask = mask, .keepdim = 1};
        summed = lv_apply1(LV_OP_SUM, 1, &g, &p);
    } else {
        summed = g;
        lv_tensor_retain(g);
    }
    if (!summed)
        return NULL;
    lv_tensor *shaped = summed;
    if (summed->ndim != like->ndim) {
        shaped = lv_reshape_to(summed, like->ndim, like->shape);
        lv_tensor_release(summed);
        if (!shaped)
            return NULL;
    }
    if (shaped->dtype != like->dtype) {
        lv_op_params p = {.dtype = like->dtype};
        lv_tensor *converted = lv_apply1(LV_OP_TO, 1, &shaped, &p);
        lv_tensor_release(shaped);
        shaped = converted;
    }
    return shaped;
}

lv_tensor *lv_unreduce(lv_tensor *g, const lv_tensor *x, unsigned mask,
                       int keepdim)
{
    if (mask == 0)
        mask = x->ndim ? (1u << x->ndim) - 1 : 0;
    lv_tensor *kept = g;
    lv_tensor_retain(g);
    if (!keepdim) {
        int64_t shape[LV_MAX_DIMS];
        for (int i = 0; i < x->ndim; i++)
            shape[i] = (mask & (1u << i)) ? 1 : x->shape[i];
        lv_tensor_release(kept);
        kept = lv_reshape_to(g, x->ndim, shape);
        if (!kept)
            return NULL;
    }
    lv_op_params p = {.ndim = x->ndim};
    memcpy(p.shape, x->shape, sizeof(int64_t) * (size_t)x->ndim);
    lv_tensor *wide = lv_apply1(LV_OP_EXPAND, 1, &kept, &p);
    lv_tensor_release(kept);
    return wide;
}
