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
 * A VJP is written with lv_apply like any forward computation (vjp.h has
 * the helpers): run with grad mode on (create_graph), it is recorded in
 * turn, which is what makes gradients of gradients work to any order.
 *
 * The tensor core (tensor.c) does not call up into the tape: it drops a
 * tensor's grad_fn through the hook lv_autograd_record installs
 * (lv_tensor_set_node_release, tensor.h).
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
    /* Optional, [n_inputs] with NULL entries allowed: where into[j] is a
     * contiguous tensor of inputs[j]'s dtype and shape, input j's gradient
     * is summed into it in place (whatever it held is overwritten by the
     * first term) and grads[j] is a new reference to it: a caller's
     * persistent buffer, say an optimizer's or a reducer's bucket, so that
     * a step allocates no gradient and a weight's GEMMs add into memory
     * already in cache. Ignored with create_graph or accumulate (their
     * sums must be recorded or go to .grad). */
    lv_tensor *const *into;
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

#endif
