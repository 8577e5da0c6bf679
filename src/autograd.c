/*
 * autograd.c -- recording nodes, freeing them, and the reverse pass.
 *
 * The reverse pass (lv_backward):
 *   1. walk the graph from the outputs' nodes, holding a reference to each
 *      node reached and counting the edges into it;
 *   2. mark which nodes' VJPs lead to a wanted input (leaves to roots);
 *   3. deliver gradients in topological order (Kahn): a node runs when
 *      every node that uses its outputs has delivered; gradients reaching
 *      one output are summed;
 *   4. unless retain_graph, drop each node's saved tensors once it ran.
 * With create_graph the VJPs run with grad mode on and are recorded.
 *
 * Not here: the VJP formulas, which sit beside their forwards in the
 * ops_*.c files, linalg.c and integrators.c, and the helpers they are
 * written with (vjp.c).
 */
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "autograd.h"
#include "iter.h"

/* ---- grad mode ---------------------------------------------------------- */

static int grad_mode = 1;

int lv_grad_enabled(void) { return grad_mode; }

int lv_grad_set_enabled(int enabled)
{
    int previous = grad_mode;
    grad_mode = enabled != 0;
    return previous;
}

/* ---- nodes -------------------------------------------------------------- */

void lv_node_retain(lv_node *node) { node->refcount++; }

/* Drops the tensors a node saved for its VJP (not its edges). */
static void node_free_saved(lv_node *node)
{
    if (node->inputs) {
        for (int i = 0; i < node->n_inputs; i++)
            lv_tensor_release(node->inputs[i]);
        free(node->inputs);
        node->inputs = NULL;
    }
    for (int k = 0; k < node->n_outputs; k++) {
        lv_tensor_release(node->outputs[k]);
        node->outputs[k] = NULL;
    }
    node->freed = 1;
}

static void node_destroy(lv_node *node)
{
    node_free_saved(node);
    /* A node whose recording ran out of memory may lack its edge arrays. */
    for (int i = 0; i < node->n_inputs; i++) {
        if (node->edge_fn && node->edge_fn[i])
            lv_node_release(node->edge_fn[i]);
        if (node->edge_leaf)
            lv_tensor_release(node->edge_leaf[i]);
    }
    free(node->edge_fn);
    free(node->edge_index);
    free(node->edge_leaf);
    free(node->input_versions);
    free(node);
}

/* Releasing a long chain recursively could exhaust the C stack (each
 * node's inputs release the next node), so dead nodes queue here and one
 * loop destroys them. */
static lv_node **graveyard;
static size_t graveyard_len, graveyard_cap;
static int burying;

void lv_node_release(lv_node *node)
{
    if (!node || --node->refcount > 0)
        return;
    if (graveyard_len == graveyard_cap) {
        size_t cap = graveyard_cap ? 2 * graveyard_cap : 256;
        lv_node **grown = lv_realloc(graveyard, cap * sizeof *grown);
        if (!grown) {               /* no room to queue: recurse instead */
            node_destroy(node);
            return;
        }
        graveyard = grown;
        graveyard_cap = cap;
    }
    graveyard[graveyard_len++] = node;
    if (burying)
        return;
    burying = 1;
    while (graveyard_len > 0)
        node_destroy(graveyard[--graveyard_len]);
    burying = 0;
}

/* Makes t output k of node on the tape (t takes a reference to node). */
static void attach(lv_tensor *t, lv_node *node, int k)
{
    t->requires_grad = 1;
    t->grad_fn = node;
    t->output_index = k;
    lv_node_retain(node);
}

lv_tensor *lv_tensor_detach(const lv_tensor *x)
{
    return lv_tensor_view_of(x, x->ndim, x->shape, x->stride, x->offset);
}

/* Which inputs and outputs a node keeps with their values (op.h's
 * lv_saves); the others it keeps as shape-only headers. Inputs beyond
 * LV_OP_MAX_INPUTS_SAVED (cat and stack take any number) are kept whole,
 * which is always safe. */
static void saved_values(lv_saves saves, int n_in, lv_tensor *const *in,
                         int *keep_in, int *keep_out)
{
    int n = n_in < LV_OP_MAX_INPUTS_SAVED ? n_in : LV_OP_MAX_INPUTS_SAVED;
    for (int i = 0; i < n; i++) {
        switch (saves) {
        case LV_SAVES_NOTHING:
        case LV_SAVES_OUTPUTS:
            keep_in[i] = 0;
            break;
        case LV_SAVES_PARTNERS:
            keep_in[i] = (i ^ 1) < n_in && in[i ^ 1]->requires_grad;
            break;
        case LV_SAVES_DIVISOR:
            keep_in[i] = i == 1;        /* both gradients divide by b */
            break;
        default:
            keep_in[i] = 1;
        }
    }
    for (int k = 0; k < LV_OP_MAX_OUTPUTS; k++)
        keep_out[k] = saves == LV_SAVES_ALL || saves == LV_SAVES_OUTPUTS ||
                      (saves == LV_SAVES_DIVISOR && n_in == 2 && in[1]->requires_grad);
}

int lv_autograd_record(lv_op_id op, int n_in, lv_tensor *const *in,
                       const lv_op_params *p, int n_out, lv_tensor **out)
{
    const lv_op_def *def = lv_op_get(op);
    if (!grad_mode || !def->vjp)
        return 0;
    int any = 0;
    for (int i = 0; i < n_in; i++)
        any |= in[i]->requires_grad;
    if (!any)
        return 0;

    lv_node *node = lv_calloc(1, sizeof *node);
    if (!node)
        return lv_error_set(0, "out of memory recording %s", def->name);
    node->refcount = 0;
    node->op = op;
    node->params = *p;
    node->n_inputs = n_in;
    node->n_outputs = n_out;
    node->inputs = lv_calloc((size_t)n_in, sizeof *node->inputs);
    node->input_versions = lv_calloc((size_t)n_in, sizeof *node->input_versions);
    node->edge_fn = lv_calloc((size_t)n_in, sizeof *node->edge_fn);
    node->edge_index = lv_calloc((size_t)n_in, sizeof *node->edge_index);
    node->edge_leaf = lv_calloc((size_t)n_in, sizeof *node->edge_leaf);
    int keep_in[LV_OP_MAX_INPUTS_SAVED], keep_out[LV_OP_MAX_OUTPUTS];
    saved_values(def->saves, n_in, in, keep_in, keep_out);
    for (int k = 0; k < n_out; k++)
        node->outputs[k] = keep_out[k] ? lv_tensor_detach(out[k])
                                       : lv_tensor_shape_only(out[k]);
    int ok = node->inputs && node->input_versions && node->edge_fn &&
             node->edge_index && node->edge_leaf;
    for (int k = 0; k < n_out; k++)
        ok = ok && node->outputs[k];
    if (!ok) {
        node->refcount = 1;
        lv_node_release(node);
        return lv_error_set(0, "out of memory recording %s", def->name);
    }
    for (int i = 0; i < n_in && ok; i++) {
        lv_tensor *x = in[i];
        if (i >= LV_OP_MAX_INPUTS_SAVED || keep_in[i]) {
            lv_tensor_retain(x);
            node->inputs[i] = x;
        } else {
            node->inputs[i] = lv_tensor_shape_only(x);
            ok = node->inputs[i] != NULL;
        }
        node->input_versions[i] = x->storage->version;
        if (x->grad_fn) {
            node->edge_fn[i] = x->grad_fn;
            lv_node_retain(x->grad_fn);
            node->edge_index[i] = x->output_index;
        } else if (x->requires_grad) {
            node->edge_leaf[i] = x;
            lv_tensor_retain(x);
        }
    }
    if (!ok) {
        node->refcount = 1;
        lv_node_release(node);
        return lv_error_set(0, "out of memory recording %s", def->name);
    }
    /* From here on tensors hold nodes: the tensor core must know how to
     * drop one (tensor.h's hook; it cannot call up into the tape). */
    lv_tensor_set_node_release(lv_node_release);
    for (int k = 0; k < n_out; k++) {
        node->output_versions[k] = out[k]->storage->version;
        attach(out[k], node, k);
    }
    return 0;
}

lv_tensor *lv_node_output(const lv_node *node, int k)
{
    lv_tensor *y = lv_tensor_detach(node->outputs[k]);
    if (y)
        attach(y, (lv_node *)node, k);
    return y;
}

/* ---- the reverse pass ---------------------------------------------------- */

typedef struct node_list {
    lv_node **items;
    size_t len, cap;
} node_list;

static int list_push(node_list *l, lv_node *node)
{
    if (l->len == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 64;
        lv_node **grown = lv_realloc(l->items, cap * sizeof *grown);
        if (!grown)
            return lv_error_set(0, "out of memory in backward");
        l->items = grown;
        l->cap = cap;
    }
    l->items[l->len++] = node;
    return 0;
}

/* A gradient sum the reverse pass alone holds: no other reference to it
 * or its storage, off the tape. Only such a sum may be added into. */
static int owned_alone(const lv_tensor *acc)
{
    return acc && acc->refcount == 1 && acc->storage &&
           acc->storage->refcount == 1 && !acc->requires_grad && !acc->grad_fn;
}

/* Adds g (stolen) into *slot: the sum is recorded when grad mode is on.
 * Otherwise, a sum this pass alone holds (owned_alone) takes g in place:
 * a weight used K times gets one buffer, not K. */
static int accumulate(lv_tensor **slot, lv_tensor *g)
{
    if (!*slot) {
        *slot = g;
        return 0;
    }
    lv_tensor *acc = *slot;
    if (!lv_grad_enabled() && owned_alone(acc) && lv_add_into(acc, g)) {
        lv_tensor_release(g);
        return 0;
    }
    lv_tensor *sum = lv_binary(LV_OP_ADD, *slot, g);
    lv_tensor_release(g);
    if (!sum)
        return -1;
    lv_tensor_release(*slot);
    *slot = sum;
    return 0;
}

/* The caller's buffer for input j's gradient (opts->into), or NULL. */
static lv_tensor *input_buffer(const lv_backward_opts *opts, int j)
{
    return opts->into ? opts->into[j] : NULL;
}

/* Adds g (stolen) into input j's gradient: in place into the caller's
 * buffer when there is one (its first term overwrites what it held),
 * else as accumulate does. */
static int accumulate_input(lv_tensor **grads, int j, lv_tensor *g,
                            const lv_backward_opts *opts)
{
    lv_tensor *buf = input_buffer(opts, j);
    if (!buf)
        return accumulate(&grads[j], g);
    int status = 0;
    if (!lv_same_shape(g, buf)) {
        char a[128], b[128];
        status = lv_error_set(0, "the gradient of input %d has shape %s, its "
                              "buffer (into) %s", j + 1,
                              lv_shape_format(a, sizeof a, g->ndim, g->shape),
                              lv_shape_format(b, sizeof b, buf->ndim, buf->shape));
    } else if (!grads[j]) {
        lv_copy_strided(buf, g);
        lv_tensor_retain(buf);
        grads[j] = buf;
    } else if (!lv_add_into(buf, g)) {
        /* a term add_into does not take (strided, say): summed aside */
        lv_tensor *sum = lv_binary(LV_OP_ADD, buf, g);
        if (sum)
            lv_copy_strided(buf, sum);
        else
            status = -1;
        lv_tensor_release(sum);
    }
    if (status == 0)
        buf->storage->version++;
    lv_tensor_release(g);
    return status;
}

/* A gradient g that reaches the leaf `leaf` (an output that is a leaf, or
 * a node's input): summed into grads[j] for every requested input j that
 * is this leaf, and into leaf->grad when the pass accumulates. Steals g. */
static int accumulate_leaf(lv_tensor *leaf, lv_tensor *g,
                           lv_tensor *const *inputs, int n_inputs,
                           lv_tensor **grads, const lv_backward_opts *opts)
{
    int status = 0;
    for (int j = 0; j < n_inputs && status == 0; j++)
        if (inputs[j] == leaf) {
            lv_tensor_retain(g);
            status = accumulate_input(grads, j, g, opts);
        }
    if (opts->accumulate && status == 0) {
        lv_tensor_retain(g);
        status = accumulate(&leaf->grad, g);
    }
    lv_tensor_release(g);
    return status;
}

/* The gradient sum input i of node feeds, when this pass alone holds it
 * (see accumulate): the child's output slot, or the wanted leaf's entry
 * in grads. NULL when there is none yet, or it is shared, or the leaf's
 * .grad is accumulated too. */
static lv_tensor *owned_sum(lv_node *node, int i, lv_tensor *const *inputs,
                            int n_inputs, lv_tensor **grads,
                            const lv_backward_opts *opts)
{
    lv_tensor *acc = NULL;
    if (node->edge_fn[i]) {
        acc = node->edge_fn[i]->grad[node->edge_index[i]];
    } else if (node->edge_leaf[i] && !opts->accumulate) {
        int found = 0, at = 0;
        for (int j = 0; j < n_inputs; j++)
            if (inputs[j] == node->edge_leaf[i]) {
                acc = grads[j];
                at = j;
                found++;
            }
        if (found != 1)
            return NULL;
        lv_tensor *buf = input_buffer(opts, at);
        if (buf) {
            /* the caller's buffer is the sum, zeroed for its first term */
            if (!grads[at]) {
                memset(lv_tensor_data(buf), 0,
                       (size_t)lv_tensor_numel(buf) * lv_dtype_size(buf->dtype));
                buf->storage->version++;
                lv_tensor_retain(buf);
                grads[at] = buf;
            }
            return buf;
        }
    }
    return owned_alone(acc) ? acc : NULL;
}

/* Lets an op add its inputs' gradients straight into the sums they feed
 * (a GEMM with beta = 1), clearing needs[i] for each one it took. */
static void vjp_into_sums(lv_node *node, const lv_op_def *def, int *needs,
                          lv_tensor *const *inputs, int n_inputs,
                          lv_tensor **grads, const lv_backward_opts *opts)
{
    for (int i = 0; i < node->n_inputs; i++) {
        if (!needs[i])
            continue;
        lv_tensor *acc = owned_sum(node, i, inputs, n_inputs, grads, opts);
        if (acc && def->vjp_into(acc, node, node->grad, i))
            needs[i] = 0;
    }
}

static const char *freed_graph_message =
    "trying to backward through the graph a second time, after its saved "
    "tensors were freed (pass retain_graph = true to the first lv.grad or "
    "backward if you need to go through it again)";

static unsigned pass_counter;

/* Finds every node reachable from the roots (each retained once) and
 * counts, for each, the edges into it from reachable nodes. */
static int discover(node_list *all, int n_roots, lv_tensor *const *roots,
                    unsigned pass)
{
    node_list stack = {0};
    int status = 0;
    for (int k = 0; k < n_roots && status == 0; k++) {
        lv_node *root = roots[k]->grad_fn;
        if (root && root->pass != pass) {
            root->pass = pass;
            root->pending = 0;
            /* retained once it is in `all`, whose cleanup releases it: a
             * retain before a push that fails would never be undone */
            status = list_push(all, root);
            if (status == 0) {
                lv_node_retain(root);
                status = list_push(&stack, root);
            }
        }
    }
    while (status == 0 && stack.len > 0) {
        lv_node *node = stack.items[--stack.len];
        node->needed = 0;
        memset(node->wanted, 0, sizeof node->wanted);
        memset(node->grad, 0, sizeof node->grad);
        /* A freed node is fine to pass through: only running its VJP
         * needs the saved tensors, and that is checked where it runs. */
        for (int i = 0; i < node->n_inputs && status == 0; i++) {
            lv_node *child = node->edge_fn[i];
            if (!child)
                continue;
            if (child->pass != pass) {
                child->pass = pass;
                child->pending = 0;
                status = list_push(all, child);
                if (status == 0) {
                    lv_node_retain(child);
                    status = list_push(&stack, child);
                }
            }
            child->pending++;
        }
    }
    free(stack.items);
    return status;
}

/* The caller's gradient buffers fit their inputs, and writing them
 * cannot touch what the pass reads (an input's storage) or another
 * buffer's sum. */
static int check_buffers(int n_inputs, lv_tensor *const *inputs,
                         lv_tensor *const *into)
{
    for (int j = 0; into && j < n_inputs; j++) {
        const lv_tensor *buf = into[j];
        if (!buf)
            continue;
        const lv_tensor *x = inputs[j];
        char a[128], b[128];
        if (buf->dtype != x->dtype || !lv_same_shape(buf, x))
            return lv_error_set(3, "into[%d] is %s %s, input %d %s %s", j + 1,
                                lv_dtype_name(buf->dtype),
                                lv_shape_format(a, sizeof a, buf->ndim, buf->shape),
                                j + 1, lv_dtype_name(x->dtype),
                                lv_shape_format(b, sizeof b, x->ndim, x->shape));
        if (!lv_tensor_is_contiguous(buf) || !buf->storage)
            return lv_error_set(3, "into[%d] must be contiguous", j + 1);
        if (buf->requires_grad || buf->grad_fn)
            return lv_error_set(3, "into[%d] requires grad: a gradient buffer "
                                "must be off the tape", j + 1);
        for (int k = 0; k < n_inputs; k++)
            if (inputs[k]->storage == buf->storage)
                return lv_error_set(3, "into[%d] shares its storage with input "
                                    "%d: the pass would overwrite what it "
                                    "reads", j + 1, k + 1);
        for (int k = 0; k < j; k++)
            if (into[k] && into[k]->storage == buf->storage &&
                into[k]->offset == buf->offset)
                return lv_error_set(3, "into[%d] and into[%d] are the same "
                                    "buffer", k + 1, j + 1);
    }
    return 0;
}

int lv_backward(int n_outputs, lv_tensor *const *outputs,
                lv_tensor *const *grad_outputs, int n_inputs,
                lv_tensor *const *inputs, lv_tensor **grads,
                const lv_backward_opts *opts)
{
    for (int j = 0; j < n_inputs; j++)
        grads[j] = NULL;
    /* Check the request before touching the graph. */
    for (int k = 0; k < n_outputs; k++) {
        const lv_tensor *y = outputs[k];
        if (!y->requires_grad)
            return lv_error_set(1, "output %d does not require grad: no "
                                "input that requires grad was used to "
                                "compute it", k + 1);
        const lv_tensor *g = grad_outputs ? grad_outputs[k] : NULL;
        if (!g && lv_tensor_numel(y) != 1) {
            char buf[128];
            return lv_error_set(1, "output %d has shape %s: a gradient can "
                                "be implied only for a one-element output "
                                "(pass grad_outputs)", k + 1,
                                lv_shape_format(buf, sizeof buf, y->ndim,
                                                y->shape));
        }
        if (g && !lv_same_shape(g, y)) {
            char a[128], b[128];
            return lv_error_set(3, "grad_outputs[%d] has shape %s but output "
                                "%d has shape %s", k + 1,
                                lv_shape_format(a, sizeof a, g->ndim, g->shape),
                                k + 1, lv_shape_format(b, sizeof b, y->ndim,
                                                       y->shape));
        }
    }
    for (int j = 0; j < n_inputs; j++)
        if (!inputs[j]->requires_grad && !opts->allow_unused)
            return lv_error_set(2, "input %d does not require grad (make it "
                                "with lv.param or :requires_grad(), or pass "
                                "allow_unused = true to get nil)", j + 1);
    lv_backward_opts sums_opts = *opts;
    if (opts->create_graph || opts->accumulate)
        sums_opts.into = NULL;
    opts = &sums_opts;
    if (check_buffers(n_inputs, inputs, opts->into) < 0)
        return -1;

    int saved_mode = lv_grad_set_enabled(opts->create_graph);
    unsigned pass = ++pass_counter;
    node_list all = {0}, ready = {0}, order = {0};
    lv_tensor *seed = NULL;
    int status = discover(&all, n_outputs, outputs, pass);
    if (status < 0)
        goto done;

    /* Which outputs of which nodes are wanted inputs. */
    for (int j = 0; j < n_inputs; j++) {
        lv_node *fn = inputs[j]->grad_fn;
        if (fn && fn->pass == pass)
            fn->wanted[inputs[j]->output_index] = j + 1;
    }
    /* Topological order (Kahn): a node comes after every reachable node
     * that uses its outputs. Then, from the leaves back: a node is needed
     * when an edge leads to a wanted leaf, or to a node that is needed or
     * has a wanted output. */
    for (size_t t = 0; t < all.len && status == 0; t++)
        if (all.items[t]->pending == 0)
            status = list_push(&ready, all.items[t]);
    while (status == 0 && ready.len > 0) {
        lv_node *node = ready.items[--ready.len];
        status = list_push(&order, node);
        for (int i = 0; i < node->n_inputs && status == 0; i++) {
            lv_node *child = node->edge_fn[i];
            if (child && --child->pending == 0)
                status = list_push(&ready, child);
        }
    }
    for (size_t t = order.len; t-- > 0 && status == 0;) {
        lv_node *node = order.items[t];
        for (int i = 0; i < node->n_inputs && !node->needed; i++) {
            lv_node *child = node->edge_fn[i];
            lv_tensor *leaf = node->edge_leaf[i];
            if (child && (child->needed || child->wanted[node->edge_index[i]]))
                node->needed = 1;
            if (leaf && opts->accumulate)
                node->needed = 1;
            for (int j = 0; leaf && j < n_inputs && !node->needed; j++)
                if (inputs[j] == leaf)
                    node->needed = 1;
        }
    }

    /* For on_ready: how many edges of the ordered nodes still lead into
     * each input that is a leaf (its gradient is final at zero). */
    int *edges_left = NULL;
    unsigned char *told = NULL;
    if (opts->on_ready && n_inputs > 0 && status == 0) {
        edges_left = lv_calloc((size_t)n_inputs, sizeof *edges_left);
        told = lv_calloc((size_t)n_inputs, sizeof *told);
        if (!edges_left || !told)
            status = lv_error_set(0, "out of memory in backward");
        for (size_t t = 0; t < order.len && status == 0; t++) {
            lv_node *node = order.items[t];
            for (int i = 0; i < node->n_inputs; i++)
                for (int j = 0; node->edge_leaf[i] && j < n_inputs; j++)
                    edges_left[j] += inputs[j] == node->edge_leaf[i];
        }
    }

    /* Seed the outputs' gradients. */
    for (int k = 0; k < n_outputs && status == 0; k++) {
        lv_tensor *y = outputs[k];
        lv_tensor *g = grad_outputs ? grad_outputs[k] : NULL;
        if (g) {
            lv_tensor_retain(g);
            seed = g;
        } else {
            seed = lv_tensor_full(y->dtype, y->ndim, y->shape, 1.0);
            if (!seed) {
                status = -1;
                break;
            }
        }
        if (y->grad_fn) {
            status = accumulate(&y->grad_fn->grad[y->output_index], seed);
        } else {
            /* A leaf output: its own gradient is the seed. */
            status = accumulate_leaf(y, seed, inputs, n_inputs, grads, opts);
        }
        seed = NULL;
    }

    for (size_t t = 0; t < order.len && status == 0; t++) {
        lv_node *node = order.items[t];
        const lv_op_def *def = lv_op_get(node->op);
        int has_grad = 0;
        for (int k = 0; k < node->n_outputs; k++) {
            if (node->wanted[k] && node->grad[k]) {
                lv_tensor_retain(node->grad[k]);
                status = accumulate_input(grads, node->wanted[k] - 1, node->grad[k], opts);
            }
            has_grad |= node->grad[k] != NULL;
        }
        if (status == 0 && node->needed && has_grad) {
            if (node->freed) {
                status = lv_error_set(0, "%s", freed_graph_message);
                break;
            }
            /* In-place writes since the record make the saved values
             * stale: refuse rather than return a wrong gradient. */
            for (int i = 0; i < node->n_inputs && status == 0; i++)
                if (node->inputs[i]->storage &&
                    node->inputs[i]->storage->version != node->input_versions[i])
                    status = lv_error_set(0, "an input of %s (input %d) was "
                                          "modified in place after it was "
                                          "used; its gradient would be wrong "
                                          "(clone it before modifying it)",
                                          def->name, i + 1);
            for (int k = 0; k < node->n_outputs && status == 0; k++)
                if (node->outputs[k]->storage &&
                    node->outputs[k]->storage->version != node->output_versions[k])
                    status = lv_error_set(0, "the result of %s was modified "
                                          "in place after it was computed; "
                                          "its gradient would be wrong (clone "
                                          "it before modifying it)", def->name);
            if (status < 0)
                break;
            int needs[256];
            lv_tensor *din_small[8];
            lv_tensor **din = node->n_inputs <= 8 ? din_small
                              : lv_calloc((size_t)node->n_inputs, sizeof *din);
            if (!din || node->n_inputs > 256) {
                status = lv_error_set(0, "out of memory in backward");
                break;
            }
            for (int i = 0; i < node->n_inputs; i++) {
                lv_node *child = node->edge_fn[i];
                lv_tensor *leaf = node->edge_leaf[i];
                int want_leaf = leaf && opts->accumulate;
                for (int j = 0; leaf && j < n_inputs; j++)
                    want_leaf |= inputs[j] == leaf;
                needs[i] = want_leaf ||
                           (child && (child->needed ||
                                      child->wanted[node->edge_index[i]]));
                din[i] = NULL;
            }
            if (def->vjp_into && !lv_grad_enabled())
                vjp_into_sums(node, def, needs, inputs, n_inputs, grads, opts);
            status = def->vjp(din, node, node->grad, needs);
            for (int i = 0; i < node->n_inputs; i++) {
                lv_tensor *g = din[i];
                if (!g)
                    continue;
                if (status < 0 || !needs[i]) {
                    lv_tensor_release(g);
                    continue;
                }
                lv_node *child = node->edge_fn[i];
                lv_tensor *leaf = node->edge_leaf[i];
                if (child) {
                    status = accumulate(&child->grad[node->edge_index[i]], g);
                } else if (leaf) {
                    status = accumulate_leaf(leaf, g, inputs, n_inputs, grads,
                                             opts);
                } else {
                    lv_tensor_release(g);
                }
            }
            if (din != din_small)
                free(din);
        }
        for (int k = 0; k < node->n_outputs; k++) {
            lv_tensor_release(node->grad[k]);
            node->grad[k] = NULL;
        }
        if (status < 0)
            break;
        if (!opts->retain_graph && node->needed)
            node_free_saved(node);
        for (int i = 0; edges_left && i < node->n_inputs; i++)
            for (int j = 0; node->edge_leaf[i] && j < n_inputs; j++)
                if (inputs[j] == node->edge_leaf[i] && --edges_left[j] == 0
                    && grads[j] && !told[j]) {
                    told[j] = 1;
                    opts->on_ready(opts->ready_ctx, j, grads[j]);
                }
    }
    /* the rest (a leaf output's seed, a wanted non-leaf) once the pass is done */
    for (int j = 0; told && status == 0 && j < n_inputs; j++)
        if (grads[j] && !told[j]) {
            told[j] = 1;
            opts->on_ready(opts->ready_ctx, j, grads[j]);
        }
    free(edges_left);
    free(told);
    edges_left = NULL;
    told = NULL;

    if (status == 0) {
        for (int j = 0; j < n_inputs; j++) {
            if (!grads[j] && !opts->allow_unused) {
                status = lv_error_set(2, "input %d was not used to compute "
                                      "the outputs (pass allow_unused = true "
                                      "to get nil for it)", j + 1);
                break;
            }
        }
    }

done:
    for (size_t t = 0; t < all.len; t++) {
        lv_node *node = all.items[t];
        for (int k = 0; k < node->n_outputs; k++) {
            lv_tensor_release(node->grad[k]);
            node->grad[k] = NULL;
        }
        lv_node_release(node);
    }
    free(all.items);
    free(ready.items);
    free(order.items);
    if (status < 0)
        for (int j = 0; j < n_inputs; j++) {
            lv_tensor_release(grads[j]);
            grads[j] = NULL;
        }
    lv_grad_set_enabled(saved_mode);
    return status;
}
