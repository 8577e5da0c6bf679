/*
 * autograd.h -- the dynamic tape: records of applied ops, and the reverse
 * pass over them.
 *
 * lv_apply (op.c) records a node for every op one of whose inputs
 * requires grad while grad mode is on. A node keeps the op, its params,
 * its inputs (retained: a VJP may need them) and plain copies of its
 * outputs' headers; each output tensor owns a reference to the node.
 * Nothing points back from a node to the tensors it made, so the graph
 * has no cycles and goes away with the last tensor that reaches it.
 *
 * A VJP is written with lv_apply like any forward computation: run with
 * grad mode on (create_graph), it is recorded in turn, which is what makes
 * gradients of gradients work to any order.
 */
#ifndef LV_AUTOGRAD_H
#define LV_AUTOGRAD_H

#include "op.h"

typedef struct lv_node {
    int refcount;
    lv_op_id op;
    lv_op_params params;
    int n_inputs;
    lv_tensor **inputs;               /* saved, retained; NULL once freed */
    unsigned *input_versions;         /* storage versions when saved */
    /* Where each input's gradient goes: the node that made it (retained)
     * and which of its outputs, or a leaf that requires grad (retained),
     * or neither (a constant). Kept when the saved tensors are freed. */
    struct lv_node **edge_fn;
    int *edge_index;
    lv_tensor **edge_leaf;
    int n_outputs;
    lv_tensor *outputs[LV_OP_MAX_OUTPUTS];  /* plain headers (no grad_fn) */
    unsigned output_versions[LV_OP_MAX_OUTPUTS];
    int freed;                        /* saved tensors released */
    /* The backward pass's scratch, valid during one lv_backward call. */
    unsigned pass;                    /* which pass last visited it */
    int pending;                      /* edges still to deliver */
    int needed;                       /* its VJP leads to a wanted input */
    int wanted[LV_OP_MAX_OUTPUTS];    /* 1 + index in inputs[], or 0 */
    lv_tensor *grad[LV_OP_MAX_OUTPUTS];
} lv_node;

/* ---- grad mode ---------------------------------------------------------- */

int lv_grad_enabled(void);
/* Sets grad mode; returns the previous one. */
int lv_grad_set_enabled(int enabled);

/* ---- tensors on the tape ---------------------------------------------- */

void lv_node_retain(lv_node *node);
void lv_node_release(lv_node *node);

/* Records op (already computed into out[0..n_out)) if grad mode is on and
 * some input requires grad; returns 0, or -1 with lv_error (out untouched
 * then: the caller still owns them). */
int lv_autograd_record(lv_op_id op, int n_in, lv_tensor *const *in,
                       const lv_op_params *p, int n_out, lv_tensor **out);

/* Output k of node as a tensor on the tape (for VJPs that use their op's
 * result, like exp's): a new reference. */
lv_tensor *lv_node_output(const lv_node *node, int k);

/* A view of x sharing its storage but off the tape. New reference. */
lv_tensor *lv_tensor_detach(const lv_tensor *x);

/* ---- the reverse pass -------------------------------------------------- */

/* Told, during the pass, that inputs[j]'s gradient is final: every node
 * that feeds it has run. A data-parallel reducer starts sending it while
 * the rest of the pass computes (distributed.h). grad is borrowed. */
typedef void (*lv_grad_ready_fn)(void *ctx, int j, const lv_tensor *grad);

typedef struct lv_backward_opts {
    int create_graph;       /* record the VJPs (gradients of gradients) */
    int retain_graph;       /* keep saved tensors for another pass */
    int allow_unused;       /* an input not reached gets NULL, not an error */
    int accumulate;         /* add into leaves' .grad (y:backward()) */
    lv_grad_ready_fn on_ready;  /* optional: each non-NULL grads[j] once final */
    void *ready_ctx;
} lv_backward_opts;

/* Gradients of sum_k <outputs[k], grad_outputs[k]> with respect to each of
 * inputs[0..n_inputs) into grads (new references; NULL where unused and
 * allowed). grad_outputs[k] may be NULL for a one-element output (taken as
 * 1). With opts->accumulate, inputs may be NULL/0: every leaf reached gets
 * its gradient added to its .grad instead. Returns 0 or -1 with lv_error. */
int lv_backward(int n_outputs, lv_tensor *const *outputs,
                lv_tensor *const *grad_outputs, int n_inputs,
                lv_tensor *const *inputs, lv_tensor **grads,
                const lv_backward_opts *opts);

/* ---- helpers for VJPs, all recorded when grad mode is on ---------------- */

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

lv_tensor *ag_op(lv_scope *s, lv_op_id op, lv_tensor *x);
lv_tensor *ag_op2(lv_scope *s, lv_op_id op, lv_tensor *a, lv_tensor *b);
lv_tensor *ag_opp(lv_scope *s, lv_op_id op, lv_tensor *x,
                  const lv_op_params *p);
lv_tensor *ag_mul(lv_scope *s, lv_tensor *a, lv_tensor *b);
lv_tensor *ag_div(lv_scope *s, lv_tensor *a, lv_tensor *b);
lv_tensor *ag_add(lv_scope *s, lv_tensor *a, lv_tensor *b);
lv_tensor *ag_sub(lv_scope *s, lv_tensor *a, lv_tensor *b);
lv_tensor *ag_scale(lv_scope *s, lv_tensor *x, double v);
lv_tensor *ag_add_scalar(lv_scope *s, lv_tensor *x, double v);
lv_tensor *ag_transpose(lv_scope *s, lv_tensor *x, int d1, int d2);
lv_tensor *ag_sum_to(lv_scope *s, lv_tensor *g, const lv_tensor *like);
lv_tensor *ag_reshape(lv_scope *s, lv_tensor *x, int ndim,
                      const int64_t *shape);
lv_tensor *ag_output(lv_scope *s, const lv_node *node, int k);

/* Sums g over the dims that broadcasting added or stretched so that the
 * result has `like`'s shape (and dtype). New reference or NULL. */
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
