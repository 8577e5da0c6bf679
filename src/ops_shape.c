/*
 * ops_shape.c -- views and copies that change shape, not values: view,
 * reshape, transpose, permute, narrow, select, squeeze, unsqueeze, expand
 * (all views sharing storage), and cat, stack, contiguous, clone, to.
 *
 * Dims here are 0-based; negative dims count from the end. A view whose
 * input is already what was asked for is still a fresh header, so that the
 * autograd tape can give it a record of its own.
 */
#include <string.h>

#include "autograd.h"
#include "iter.h"
#include "op.h"
#include "vjp.h"

static int same_header(lv_tensor **out, const lv_tensor *x)
{
    out[0] = lv_tensor_view_of(x, x->ndim, x->shape, x->stride, x->offset);
    return out[0] ? 1 : -1;
}

static lv_tensor *copy_of(const lv_tensor *x, lv_dtype dtype)
{
    lv_tensor *y = lv_tensor_empty(dtype, x->ndim, x->shape);
    if (y)
        lv_copy_strided(y, x);
    return y;
}

/* Resolves one -1 in a requested shape against numel; checks the count. */
static int infer_shape(const char *what, const lv_tensor *x, int ndim,
                       const int64_t *req, int64_t *shape)
{
    int infer = -1;
    int64_t known = 1, n = lv_tensor_numel(x);
    for (int i = 0; i < ndim; i++) {
        if (req[i] == -1) {
            if (infer >= 0)
                return lv_error_set(2, "only one size may be -1");
            infer = i;
        } else if (req[i] < 0) {
            return lv_error_set(2, "size %lld is negative", (long long)req[i]);
        } else if (__builtin_mul_overflow(known, req[i], &known)) {
            goto mismatch;          /* no tensor has that many elements */
        }
        shape[i] = req[i];
    }
    if (infer >= 0) {
        if (known == 0 || n % known != 0)
            goto mismatch;
        shape[infer] = n / known;
    } else if (known != n) {
        goto mismatch;
    }
    /* sizes whose product overflows can still multiply to n (and a zero
     * size hides any other): the result must be a shape a tensor can have */
    return lv_shape_check(what, ndim, shape);
mismatch:;
    char buf[128];
    return lv_error_set(2, "%s: shape %s is invalid for a tensor of %lld "
                        "elements", what, lv_shape_format(buf, sizeof buf, ndim, req),
                        (long long)n);
}

/* Strides that let `shape` view x's elements in row-major order without a
 * copy, if they exist (PyTorch's computeStride: match the new dims
 * against runs of x's dims that are contiguous with each other). */
static int view_strides(const lv_tensor *x, int ndim, const int64_t *shape,
                        int64_t *stride)
{
    if (lv_tensor_numel(x) == 0 || x->ndim == 0) {
        int64_t s = 1;
        for (int i = ndim - 1; i >= 0; i--) {
            stride[i] = s;
            s *= shape[i] > 0 ? shape[i] : 1;
        }
        return 1;
    }
    int view_d = ndim - 1;
    int64_t chunk_base = x->stride[x->ndim - 1];
    int64_t tensor_numel = 1, view_numel = 1;
    for (int d = x->ndim - 1; d >= 0; d--) {
        tensor_numel *= x->shape[d];
        if (d == 0 || (x->shape[d - 1] != 1 &&
                       x->stride[d - 1] != tensor_numel * chunk_base)) {
            while (view_d >= 0 &&
                   (view_numel < tensor_numel || shape[view_d] == 1)) {
                stride[view_d] = view_numel * chunk_base;
                view_numel *= shape[view_d];
                view_d--;
            }
            if (view_numel != tensor_numel)
                return 0;
            if (d > 0) {
                chunk_base = x->stride[d - 1];
                tensor_numel = view_numel = 1;
            }
        }
    }
    return view_d == -1;
}

static int do_view(lv_tensor **out, const lv_tensor *x, const lv_op_params *p,
                   int copy_if_needed)
{
    int64_t shape[LV_MAX_DIMS], stride[LV_MAX_DIMS];
    const char *what = copy_if_needed ? "reshape" : "view";
    if (p->ndim > LV_MAX_DIMS)
        return lv_error_set(2, "at most %d dimensions", LV_MAX_DIMS);
    if (infer_shape(what, x, p->ndim, p->shape, shape) < 0)
        return -1;
    if (view_strides(x, p->ndim, shape, stride)) {
        out[0] = lv_tensor_view_of(x, p->ndim, shape, stride, x->offset);
        return out[0] ? 1 : -1;
    }
    if (!copy_if_needed)
        return lv_error_set(1, "view: the tensor's strides do not allow this "
                            "shape without a copy (use reshape, or "
                            "contiguous first)");
    lv_tensor *c = copy_of(x, x->dtype);
    if (!c)
        return -1;
    view_strides(c, p->ndim, shape, stride);
    out[0] = lv_tensor_view_of(c, p->ndim, shape, stride, 0);
    lv_tensor_release(c);
    return out[0] ? 1 : -1;
}

static int do_permute(lv_tensor **out, const lv_tensor *x, const int64_t *order,
                      int n)
{
    if (n != x->ndim)
        return lv_error_set(2, "permute: %d dims given for a %d-dim tensor",
                            n, x->ndim);
    int64_t shape[LV_MAX_DIMS], stride[LV_MAX_DIMS];
    int seen[LV_MAX_DIMS] = {0};
    for (int i = 0; i < n; i++) {
        int d = lv_dim_normalize("permute", (int)order[i], x->ndim);
        if (d < 0)
            return -1;
        if (seen[d]++)
            return lv_error_set(2, "permute: dimension %d repeated", d + 1);
        shape[i] = x->shape[d];
        stride[i] = x->stride[d];
    }
    out[0] = lv_tensor_view_of(x, n, shape, stride, x->offset);
    return out[0] ? 1 : -1;
}

static int do_expand(lv_tensor **out, const lv_tensor *x, const lv_op_params *p)
{
    int n = p->ndim;
    if (n < x->ndim || n > LV_MAX_DIMS)
        goto bad;
    int64_t shape[LV_MAX_DIMS], stride[LV_MAX_DIMS];
    for (int i = 0; i < n; i++) {
        int ix = i - (n - x->ndim);
        int64_t want = p->shape[i];
        if (ix < 0) {
            if (want < 0)
                goto bad;
            shape[i] = want;
            stride[i] = 0;
        } else if (want == -1 || want == x->shape[ix]) {
            shape[i] = x->shape[ix];
            stride[i] = x->stride[ix];
        } else if (x->shape[ix] == 1 && want >= 0) {
            shape[i] = want;
            stride[i] = 0;
        } else {
            goto bad;
        }
    }
    /* a view obeys the bound on element counts too: past it, numel and
     * the loops over the view would overflow */
    if (lv_shape_check("expand", n, shape) < 0)
        return -1;
    out[0] = lv_tensor_view_of(x, n, shape, stride, x->offset);
    return out[0] ? 1 : -1;
bad:;
    char a[128], b[128];
    return lv_error_set(2, "expand: cannot expand shape %s to %s",
                        lv_shape_format(a, sizeof a, x->ndim, x->shape),
                        lv_shape_format(b, sizeof b, n, p->shape));
}

/* cat along dim (0-based, possibly negative, against the inputs' ndim);
 * stack is cat of the inputs each viewed with a new size-1 dim. */
static int do_cat(lv_tensor **out, lv_tensor *const *in, int n, int dim,
                  const char *what)
{
    const lv_tensor *first = in[0];
    if (first->ndim == 0)
        return lv_error_set(1, "%s: cannot concatenate 0-dim tensors", what);
    int d = lv_dim_normalize(what, dim, first->ndim);
    if (d < 0)
        return -1;
    lv_dtype dtype = first->dtype;
    int64_t shape[LV_MAX_DIMS];
    memcpy(shape, first->shape, sizeof shape);
    shape[d] = 0;
    for (int k = 0; k < n; k++) {
        const lv_tensor *t = in[k];
        int same = t->ndim == first->ndim;
        for (int i = 0; same && i < t->ndim; i++)
            if (i != d && t->shape[i] != first->shape[i])
                same = 0;
        if (!same) {
            char a[128], b[128];
            return lv_error_set(1, "%s: tensor %d has shape %s, which does not "
                                "match %s outside dimension %d", what, k + 1,
                                lv_shape_format(a, sizeof a, t->ndim, t->shape),
                                lv_shape_format(b, sizeof b, first->ndim,
                                                first->shape), d + 1);
        }
        shape[d] += t->shape[d];
        dtype = lv_dtype_promote(dtype, t->dtype);
    }
    lv_tensor *y = lv_tensor_empty(dtype, first->ndim, shape);
    if (!y)
        return -1;
    int64_t at = 0;
    for (int k = 0; k < n; k++) {
        lv_tensor *slot = lv_tensor_view_of(y, y->ndim, in[k]->shape, y->stride,
                                            y->offset + at * y->stride[d]);
        if (!slot) {
            lv_tensor_release(y);
            return -1;
        }
        lv_copy_strided(slot, in[k]);
        lv_tensor_release(slot);
        at += in[k]->shape[d];
    }
    out[0] = y;
    return 1;
}

static int do_stack(lv_tensor **out, lv_tensor *const *in, int n, int dim)
{
    const lv_tensor *first = in[0];
    int d = lv_dim_normalize("stack", dim, first->ndim + 1);
    if (d < 0)
        return -1;
    if (first->ndim + 1 > LV_MAX_DIMS)
        return lv_error_set(1, "stack: result would exceed %d dims",
                            LV_MAX_DIMS);
    lv_tensor *views[256];
    if (n > 256)
        return lv_error_set(1, "stack: at most 256 tensors");
    int made = 0, status = 0;
    for (int k = 0; k < n && status == 0; k++) {
        const lv_tensor *t = in[k];
        if (!lv_same_shape(t, first)) {
            char a[128], b[128];
            status = lv_error_set(1, "stack: tensor %d has shape %s, expected "
                                  "%s", k + 1,
                                  lv_shape_format(a, sizeof a, t->ndim, t->shape),
                                  lv_shape_format(b, sizeof b, first->ndim,
                                                  first->shape));
            break;
        }
        int64_t shape[LV_MAX_DIMS], stride[LV_MAX_DIMS];
        for (int i = 0, j = 0; i <= t->ndim; i++) {
            if (i == d) {
                shape[i] = 1;
                stride[i] = 0;
            } else {
                shape[i] = t->shape[j];
                stride[i] = t->stride[j];
                j++;
            }
        }
        views[made] = lv_tensor_view_of(t, t->ndim + 1, shape, stride, t->offset);
        if (!views[made])
            status = -1;
        else
            made++;
    }
    if (status == 0)
        status = do_cat(out, views, n, d, "stack");
    for (int k = 0; k < made; k++)
        lv_tensor_release(views[k]);
    return status;
}

int lv_forward_shape(lv_tensor **out, lv_op_id op, lv_tensor *const *in,
                     int n_in, const lv_op_params *p)
{
    const lv_tensor *x = in[0];
    int64_t shape[LV_MAX_DIMS], stride[LV_MAX_DIMS];
    switch (op) {
    case LV_OP_VIEW:
        return do_view(out, x, p, 0);
    case LV_OP_RESHAPE:
        return do_view(out, x, p, 1);
    case LV_OP_TRANSPOSE: {
        int a = lv_dim_normalize("transpose", p->dim, x->ndim);
        int b = a < 0 ? -1 : lv_dim_normalize("transpose", p->dim2, x->ndim);
        if (b < 0)
            return -1;
        int64_t order[LV_MAX_DIMS];
        for (int i = 0; i < x->ndim; i++)
            order[i] = i;
        order[a] = b;
        order[b] = a;
        return do_permute(out, x, order, x->ndim);
    }
    case LV_OP_PERMUTE:
        return do_permute(out, x, p->shape, p->ndim);
    case LV_OP_NARROW:
    case LV_OP_SELECT: {
        const char *what = op == LV_OP_NARROW ? "narrow" : "select";
        int d = lv_dim_normalize(what, p->dim, x->ndim);
        if (d < 0)
            return -1;
        int64_t size = x->shape[d];
        int64_t length = op == LV_OP_NARROW ? p->length : 1;
        if (p->start < 0 || length < 0 || p->start + length > size ||
            (op == LV_OP_SELECT && p->start >= size))
            return op == LV_OP_SELECT
                ? lv_error_set(3, "index %lld out of range for dimension %d "
                               "of size %lld", (long long)p->start + 1, d + 1,
                               (long long)size)
                : lv_error_set(3, "range %lld..%lld out of range for dimension "
                               "%d of size %lld", (long long)p->start + 1,
                               (long long)(p->start + length), d + 1,
                               (long long)size);
        int64_t offset = x->offset + p->start * x->stride[d];
        int n = 0;
        for (int i = 0; i < x->ndim; i++) {
            if (i == d && op == LV_OP_SELECT)
                continue;
            shape[n] = i == d ? length : x->shape[i];
            stride[n] = x->stride[i];
            n++;
        }
        out[0] = lv_tensor_view_of(x, n, shape, stride, offset);
        return out[0] ? 1 : -1;
    }
    case LV_OP_SQUEEZE: {
        int d = -1;
        if (p->dim != LV_SQUEEZE_ALL &&
            (d = lv_dim_normalize("squeeze", p->dim, x->ndim)) < 0)
            return -1;
        int n = 0;
        for (int i = 0; i < x->ndim; i++) {
            if (x->shape[i] == 1 && (d < 0 || i == d))
                continue;
            shape[n] = x->shape[i];
            stride[n] = x->stride[i];
            n++;
        }
        out[0] = lv_tensor_view_of(x, n, shape, stride, x->offset);
        return out[0] ? 1 : -1;
    }
    case LV_OP_UNSQUEEZE: {
        if (x->ndim + 1 > LV_MAX_DIMS)
            return lv_error_set(1, "unsqueeze: result would exceed %d dims",
                                LV_MAX_DIMS);
        int d = lv_dim_normalize("unsqueeze", p->dim, x->ndim + 1);
        if (d < 0)
            return -1;
        for (int i = 0, j = 0; i <= x->ndim; i++) {
            if (i == d) {
                shape[i] = 1;
                stride[i] = j < x->ndim ? x->stride[j] * x->shape[j] : 1;
            } else {
                shape[i] = x->shape[j];
                stride[i] = x->stride[j];
                j++;
            }
        }
        out[0] = lv_tensor_view_of(x, x->ndim + 1, shape, stride, x->offset);
        return out[0] ? 1 : -1;
    }
    case LV_OP_EXPAND:
        return do_expand(out, x, p);
    case LV_OP_CAT:
        return do_cat(out, in, n_in, p->dim, "cat");
    case LV_OP_STACK:
        return do_stack(out, in, n_in, p->dim);
    case LV_OP_CONTIGUOUS:
        if (lv_tensor_is_contiguous(x))
            return same_header(out, x);
        out[0] = copy_of(x, x->dtype);
        return out[0] ? 1 : -1;
    case LV_OP_CLONE:
        out[0] = copy_of(x, x->dtype);
        return out[0] ? 1 : -1;
    case LV_OP_TO:
        if (p->dtype == x->dtype)
            return same_header(out, x);
        out[0] = copy_of(x, p->dtype);
        return out[0] ? 1 : -1;
    default:
        return lv_error_set(0, "not a shape op");
    }
}

/* ---- backward ---------------------------------------------------------
 * A view's gradient is the inverse view of g; a slice's gradient is g
 * placed among zeros (a cat, itself differentiable); a copy's is g. */

/* g shaped like x except that dim d has g's own length, starting at
 * `start` of x's: zeros around it, by cat. */
static lv_tensor *pad_into(lv_scope *S, lv_tensor *g, const lv_tensor *x,
                           int d, int64_t start)
{
    if (!g)
        return NULL;
    int64_t shape[LV_MAX_DIMS];
    memcpy(shape, x->shape, sizeof shape);
    lv_tensor *parts[3];
    int n = 0;
    int64_t after = x->shape[d] - start - g->shape[d];
    if (start > 0) {
        shape[d] = start;
        parts[n++] = lv_keep(S, lv_tensor_zeros(g->dtype, x->ndim, shape));
    }
    parts[n++] = g;
    if (after > 0) {
        shape[d] = after;
        parts[n++] = lv_keep(S, lv_tensor_zeros(g->dtype, x->ndim, shape));
    }
    for (int i = 0; i < n; i++)
        if (!parts[i])
            return NULL;
    if (n == 1)
        return g;
    lv_op_params p = {.dim = d};
    return lv_keep(S, lv_apply1(LV_OP_CAT, n, parts, &p));
}

int lv_vjp_shape(lv_tensor **din, const lv_node *node, lv_tensor *const *dout,
                 const int *needs)
{
    lv_scope S = {0};
    lv_tensor *g = dout[0], *x = node->inputs[0];
    const lv_op_params *p = &node->params;
    int status = 0;
    switch (node->op) {
    case LV_OP_VIEW:
    case LV_OP_RESHAPE:
    case LV_OP_SQUEEZE:
    case LV_OP_UNSQUEEZE:
        din[0] = lv_share(ag_reshape(&S, g, x->ndim, x->shape));
        break;
    case LV_OP_TRANSPOSE:
        din[0] = lv_share(ag_transpose(&S, g, p->dim, p->dim2));
        break;
    case LV_OP_PERMUTE: {
        lv_op_params inverse = {.ndim = p->ndim};
        for (int i = 0; i < p->ndim; i++) {
            int d = (int)(p->shape[i] < 0 ? p->shape[i] + p->ndim : p->shape[i]);
            inverse.shape[d] = i;
        }
        din[0] = lv_share(ag_opp(&S, LV_OP_PERMUTE, g, &inverse));
        break;
    }
    case LV_OP_NARROW:
    case LV_OP_SELECT: {
        int d = p->dim < 0 ? p->dim + x->ndim : p->dim;
        lv_tensor *slab = g;
        if (node->op == LV_OP_SELECT) {
            lv_op_params u = {.dim = d};
            slab = ag_opp(&S, LV_OP_UNSQUEEZE, g, &u);
        }
        din[0] = lv_share(pad_into(&S, slab, x, d, p->start));
        break;
    }
    case LV_OP_EXPAND:
        din[0] = lv_share(ag_sum_to(&S, g, x));
        break;
    case LV_OP_CAT:
    case LV_OP_STACK: {
        const lv_tensor *first = node->inputs[0];
        int nd = node->op == LV_OP_CAT ? first->ndim : first->ndim + 1;
        int d = p->dim < 0 ? p->dim + nd : p->dim;
        int64_t at = 0;
        for (int i = 0; i < node->n_inputs; i++) {
            lv_tensor *xi = node->inputs[i];
            lv_op_params q = {.dim = d, .start = at,
                              .length = node->op == LV_OP_CAT ? xi->shape[d] : 1};
            at += q.length;
            if (!needs[i])
                continue;
            /* a scope per input: cat and stack take any number of them */
            lv_scope T = {0};
            lv_op_id slice = node->op == LV_OP_CAT ? LV_OP_NARROW : LV_OP_SELECT;
            din[i] = lv_share(ag_sum_to(&T, ag_opp(&T, slice, g, &q), xi));
            lv_scope_end(&T);
            if (!din[i])
                status = -1;
        }
        lv_scope_end(&S);
        return status;
    }
    case LV_OP_CONTIGUOUS:
    case LV_OP_CLONE:
    case LV_OP_TO:
        din[0] = lv_share(ag_sum_to(&S, g, x));   /* back to x's dtype */
        break;
    default:
        break;
    }
    lv_scope_end(&S);
    return din[0] ? 0 : -1;
}
