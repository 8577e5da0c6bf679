/*
 * vjp.h -- what a VJP is written with: ops applied through a scope that
 * owns the temporaries, and the undoing of broadcasts and reductions.
 * Every helper here goes through lv_apply, so it is recorded when grad
 * mode is on (create_graph) and the VJP it builds can be differentiated
 * again.
 *
 * The VJPs themselves sit beside their forwards (ops_*.c, linalg.c,
 * integrators.c); the tape that calls them is autograd.c.
 */
#ifndef LV_VJP_H
#define LV_VJP_H

#include "autograd.h"

/* A VJP composes many ops; a scope owns the temporaries and drops them
 * all at the end, and every helper passes a NULL (a failure, with lv_error
 * set) through, so a formula reads as one expression and is checked once:
 *
 *     lv_scope S = {0};
 *     din[0] = lv_share(ag_mul(&S, g, ag_op(&S, LV_OP_SIGMOID, x)));
 *     lv_scope_end(&S);
 *     return din[0] ? 0 : -1;
 */
typedef struct lv_scope {
    lv_tensor *items[48];
    int n;
} lv_scope;

/* Hands t to the scope (NULL passes through); returns t. */
lv_tensor *lv_keep(lv_scope *s, lv_tensor *t);
void lv_scope_end(lv_scope *s);
/* A new reference to t, for a result that outlives its scope. */
lv_tensor *lv_share(lv_tensor *t);

/* ---- ops into a scope: results borrowed from s; NULL in, NULL out ------- */

lv_tensor *ag_op(lv_scope *s, lv_op_id op, lv_tensor *x);
lv_tensor *ag_op2(lv_scope *s, lv_op_id op, lv_tensor *a, lv_tensor *b);
lv_tensor *ag_opp(lv_scope *s, lv_op_id op, lv_tensor *x,
                  const lv_op_params *p);
lv_tensor *ag_mul(lv_scope *s, lv_tensor *a, lv_tensor *b);
lv_tensor *ag_div(lv_scope *s, lv_tensor *a, lv_tensor *b);
lv_tensor *ag_add(lv_scope *s, lv_tensor *a, lv_tensor *b);
lv_tensor *ag_sub(lv_scope *s, lv_tensor *a, lv_tensor *b);
lv_tensor *ag_matmul(lv_scope *s, lv_tensor *a, lv_tensor *b);
lv_tensor *ag_scale(lv_scope *s, lv_tensor *x, double v);
lv_tensor *ag_add_scalar(lv_scope *s, lv_tensor *x, double v);
lv_tensor *ag_transpose(lv_scope *s, lv_tensor *x, int d1, int d2);
lv_tensor *ag_unsqueeze(lv_scope *s, lv_tensor *x, int dim);
lv_tensor *ag_reshape(lv_scope *s, lv_tensor *x, int ndim,
                      const int64_t *shape);
lv_tensor *ag_sum_to(lv_scope *s, lv_tensor *g, const lv_tensor *like);
lv_tensor *ag_unreduce(lv_scope *s, lv_tensor *g, const lv_tensor *x,
                       unsigned mask, int keepdim);
/* Output k of node on the tape (lv_node_output), for a VJP that uses its
 * op's result. */
lv_tensor *ag_output(lv_scope *s, const lv_node *node, int k);

/* ---- the same without a scope: each returns a new reference or NULL ----- */

/* Sums g over the dims that broadcasting added or stretched so that the
 * result has `like`'s shape (and dtype). */
lv_tensor *lv_sum_to(lv_tensor *g, const lv_tensor *like);
/* x viewed as shape (reshape; recorded). */
lv_tensor *lv_reshape_to(lv_tensor *x, int ndim, const int64_t *shape);
/* g (shaped like a reduction's output) stretched back over x's shape. */
lv_tensor *lv_unreduce(lv_tensor *g, const lv_tensor *x, unsigned mask,
                       int keepdim);
/* A scalar as a 0-dim tensor of dtype (not on the tape). */
lv_tensor *lv_scalar(lv_dtype dtype, double v);
lv_tensor *lv_mul_scalar(lv_tensor *x, double v);

#endif
