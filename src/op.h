/*
 * op.h -- every differentiable operation of the core as a record.
 *
 * An op is {name, arity, forward}: the binding never calls a kernel
 * directly but applies an op by id through lv_apply. That single entry is
 * where the autograd tape hooks in (it records the op, its inputs and
 * params when an input requires grad), and the tape's backward formulas
 * are themselves written with lv_apply, so they are recorded too and can
 * be differentiated again (ggml's op-record idea, without its *_back ops
 * that have no backward of their own).
 *
 * Not here: the kernels (ops_elementwise.c, ops_reduce.c, ops_shape.c,
 * ops_matmul.c, linalg.c) and creation routines that record nothing.
 */
#ifndef LV_OP_H
#define LV_OP_H

#include "tensor.h"

typedef enum lv_op_id {
    /* unary elementwise (ops_elementwise.c) */
    LV_OP_NEG, LV_OP_EXP, LV_OP_LOG, LV_OP_LOG1P, LV_OP_EXPM1, LV_OP_SQRT,
    LV_OP_SQUARE, LV_OP_TANH, LV_OP_SIGMOID, LV_OP_SOFTPLUS,
    LV_OP_LOGSIGMOID, LV_OP_RELU, LV_OP_ABS, LV_OP_SIGN,
    LV_OP_CLAMP,                    /* params: lo, hi (NaN = no bound) */
    LV_OP_SOFTPLUS_SLOPE,           /* 1 - e^{-y}: softplus' from its output */
    /* binary elementwise with broadcasting (ops_elementwise.c) */
    LV_OP_ADD, LV_OP_SUB, LV_OP_MUL, LV_OP_DIV, LV_OP_POW,
    LV_OP_MAXIMUM, LV_OP_MINIMUM,
    LV_OP_EQ, LV_OP_NE, LV_OP_LT, LV_OP_LE, LV_OP_GT, LV_OP_GE,
    /* the Bernoulli log-likelihood of x (b) under logits l (a), x l -
     * softplus(l), and its slope in l, x - sigmoid(l): one pass each */
    LV_OP_BERNOULLI_LOGIT, LV_OP_BERNOULLI_LOGIT_SLOPE,
    /* a fused step of the integrators (ops_elementwise.c):
     * out = a x + b y [+ c w], every operand broadcast; inputs a, x, b, y
     * [, c, w] */
    LV_OP_LINCOMB,
    /* reductions (ops_reduce.c); params: dim_mask, keepdim, correction */
    LV_OP_SUM, LV_OP_MEAN, LV_OP_MAX, LV_OP_MIN, LV_OP_LOGSUMEXP,
    LV_OP_VAR, LV_OP_ARGMAX, LV_OP_ARGMIN,
    /* shape and copies (ops_shape.c) */
    LV_OP_VIEW,                     /* params: shape (-1 allowed once) */
    LV_OP_RESHAPE,                  /* like VIEW, copying when it must */
    LV_OP_TRANSPOSE,                /* params: dim, dim2 */
    LV_OP_PERMUTE,                  /* params: shape holds the order */
    LV_OP_NARROW,                   /* params: dim, start, length */
    LV_OP_SELECT,                   /* params: dim, start (the index) */
    LV_OP_SQUEEZE,                  /* params: dim (-1000 = all size-1) */
    LV_OP_UNSQUEEZE,                /* params: dim */
    LV_OP_EXPAND,                   /* params: shape (-1 keeps a size) */
    LV_OP_CAT,                      /* n inputs; params: dim */
    LV_OP_STACK,                    /* n inputs; params: dim */
    LV_OP_CONTIGUOUS,
    LV_OP_CLONE,
    LV_OP_TO,                       /* params: dtype */
    /* products (ops_matmul.c) */
    LV_OP_MATMUL, LV_OP_OUTER, LV_OP_DOT,
    LV_OP_LINEAR,                   /* x Wᵀ + b (ops_matmul.c) */
    /* linear algebra (linalg.c); batched over leading dims */
    LV_OP_CHOLESKY,
    LV_OP_LOGDET,                   /* outputs: log|det|, sign */
    LV_OP_SOLVE,
    LV_OP_INVERSE,
    LV_OP_EIGH,                     /* outputs: eigenvalues, eigenvectors */
    /* convolution as unfold + GEMM (ops_conv.c); params: conv */
    LV_OP_IM2COL,                   /* [N,C,H,W] -> [N, C*kh*kw, Ho*Wo]
                                       (or [C*kh*kw, N, Ho*Wo]) */
    LV_OP_COL2IM,                   /* its adjoint: sums patches back */
    /* convolution as one op each way (ops_conv_fused.c); params: conv */
    LV_OP_CONV2D,                   /* x [N,C,H,W], w [O,C,kh,kw] -> [N,O,Ho,Wo] */
    LV_OP_CONV_TRANSPOSE2D,         /* y [N,O,Ho,Wo], w -> [N,C,H,W] (conv.height/width) */
    LV_OP_CONV_WEIGHT_GRAD,         /* x, y [N,O,Ho,Wo] -> [O,C,kh,kw] */
    LV_OP_COUNT
} lv_op_id;

#define LV_SQUEEZE_ALL (-1000)

/* The geometry of a 2-D convolution window: kernel, stride, padding
 * before/after in each direction (TensorFlow's SAME pads asymmetrically),
 * and the image size (for col2im, which cannot infer it). */
typedef struct lv_conv_geometry {
    int64_t kh, kw, sh, sw;
    int64_t pad_top, pad_bottom, pad_left, pad_right;
    int64_t height, width;
    /* Columns as [C*kh*kw, N, Ho*Wo] instead of [N, C*kh*kw, Ho*Wo]: the
     * whole batch's windows side by side, so that a convolution is one
     * GEMM over the batch rather than one small GEMM per image. */
    int batch_inner;
} lv_conv_geometry;

typedef struct lv_op_params {
    double lo, hi;                  /* clamp bounds */
    int dim, dim2;                  /* 0-based, may be negative */
    int64_t start, length;          /* narrow / select */
    int ndim;                       /* view / expand / permute */
    int64_t shape[LV_MAX_DIMS];
    unsigned dim_mask;              /* reductions: bit i = reduce dim i;
                                       0 = every dim */
    int keepdim;
    int correction;                 /* var: divide by n - correction */
    lv_dtype dtype;                 /* to */
    lv_conv_geometry conv;          /* im2col, col2im */
} lv_op_params;

#define LV_OP_MAX_OUTPUTS 2
/* lv_saves decides for this many inputs; any further ones (cat, stack)
 * are kept whole. */
#define LV_OP_MAX_INPUTS_SAVED 8

struct lv_node;

/* Computes an op's outputs from its inputs; returns the number of outputs
 * (each a new reference) or -1 with lv_error set. The inputs are borrowed
 * and already checked for count. */
typedef int (*lv_forward_fn)(lv_tensor **out, lv_op_id op,
                             lv_tensor *const *in, int n_in,
                             const lv_op_params *p);

/* The gradient of a node's outputs flows back to its inputs: writes
 * din[i] (a new reference, or NULL meaning zero) for every i with needs[i]
 * set. dout[k] is NULL where output k got no gradient (zero); at least one
 * is not NULL. Written with lv_apply, so that with grad mode on it is
 * recorded too. Returns 0, or -1 with lv_error set. */
typedef int (*lv_vjp_fn)(lv_tensor **din, const struct lv_node *node,
                         lv_tensor *const *dout, const int *needs);

/* Which values an op's VJP reads, so that the tape keeps only those (the
 * rest as shape-only headers): a training step's memory is mostly what
 * the tape saves. */
typedef enum lv_saves {
    LV_SAVES_ALL = 0,       /* inputs and outputs (the default) */
    LV_SAVES_NOTHING,       /* shapes and dtypes only (add, sum, views) */
    LV_SAVES_INPUTS,        /* log, square, abs, ... */
    LV_SAVES_OUTPUTS,       /* exp, sigmoid, tanh, softplus, ... */
    LV_SAVES_PARTNERS,      /* input i when input i^1 needs a gradient:
                               mul, lincomb, matmul (d(ab)/da = b) */
    LV_SAVES_DIVISOR,       /* div: b, and y = a/b when b needs a gradient */
} lv_saves;

/* Adds input i's gradient straight into acc, a contiguous gradient sum
 * that the reverse pass owns alone while recording nothing: returns 1, or
 * 0 to leave it to the VJP (a layout it does not take). */
typedef int (*lv_vjp_into_fn)(lv_tensor *acc, const struct lv_node *node,
                              lv_tensor *const *dout, int i);

typedef struct lv_op_def {
    const char *name;
    int n_inputs;                   /* -1: any number >= 1 (cat, stack) */
    lv_forward_fn forward;
    lv_vjp_fn vjp;                  /* NULL: outputs carry no gradient */
    lv_saves saves;
    lv_vjp_into_fn vjp_into;        /* optional: see lv_vjp_into_fn */
} lv_op_def;

const lv_op_def *lv_op_get(lv_op_id op);

/* Applies op to inputs. Writes up to LV_OP_MAX_OUTPUTS new references to
 * out and returns their number, or -1 with lv_error set (nothing to
 * release then). Borrows the inputs. */
int lv_apply(lv_tensor **out, lv_op_id op, int n_in, lv_tensor *const *in,
             const lv_op_params *p);

/* For a forward of two inputs whose dtypes differ: runs fwd again with the
 * f32 input widened to f64 (NumPy's promotion). Returns fwd's result. */
int lv_forward_widened(lv_tensor **out, lv_op_id op, lv_tensor *const *in,
                       const lv_op_params *p, lv_forward_fn fwd);

/* Shorthands for single-output ops; return a new reference or NULL. */
lv_tensor *lv_apply1(lv_op_id op, int n_in, lv_tensor *const *in,
                     const lv_op_params *p);
lv_tensor *lv_unary(lv_op_id op, lv_tensor *x);
lv_tensor *lv_binary(lv_op_id op, lv_tensor *a, lv_tensor *b);

/* Forward kernels, defined in the ops_*.c files and linalg.c. */
int lv_forward_unary(lv_tensor **out, lv_op_id op, lv_tensor *const *in,
        int n_in, const lv_op_params *p);
int lv_forward_binary(lv_tensor **out, lv_op_id op, lv_tensor *const *in,
        int n_in, const lv_op_params *p);
/* dst += src, elementwise, when both are contiguous with one shape and
 * dtype: returns 1; otherwise does nothing and returns 0. Not an op: the
 * caller owns dst alone and records nothing (autograd.c's accumulate). */
int lv_add_into(lv_tensor *dst, const lv_tensor *src);
/* data[i] *= w over n contiguous elements of dtype, in the dtype's own
 * arithmetic (w is rounded to f32 first for f32 data). Raw data, not a
 * tensor: the storage version is the caller's (reducer.c's weighting). */
void lv_scale_in_place(void *data, lv_dtype dtype, int64_t n, double w);
int lv_forward_lincomb(lv_tensor **out, lv_op_id op, lv_tensor *const *in,
        int n_in, const lv_op_params *p);
int lv_vjp_lincomb(lv_tensor **din, const struct lv_node *node,
                   lv_tensor *const *dout, const int *needs);
int lv_forward_reduce(lv_tensor **out, lv_op_id op, lv_tensor *const *in,
        int n_in, const lv_op_params *p);
int lv_forward_shape(lv_tensor **out, lv_op_id op, lv_tensor *const *in,
        int n_in, const lv_op_params *p);
int lv_forward_matmul(lv_tensor **out, lv_op_id op, lv_tensor *const *in,
        int n_in, const lv_op_params *p);
int lv_forward_linalg(lv_tensor **out, lv_op_id op, lv_tensor *const *in,
        int n_in, const lv_op_params *p);


/* Backward of each family, next to its forward in the same file; each
 * switches on node->op. */
int lv_vjp_unary(lv_tensor **din, const struct lv_node *node,
                 lv_tensor *const *dout, const int *needs);
int lv_vjp_binary(lv_tensor **din, const struct lv_node *node,
                  lv_tensor *const *dout, const int *needs);
int lv_vjp_reduce(lv_tensor **din, const struct lv_node *node,
                  lv_tensor *const *dout, const int *needs);
int lv_vjp_shape(lv_tensor **din, const struct lv_node *node,
                 lv_tensor *const *dout, const int *needs);
int lv_vjp_matmul(lv_tensor **din, const struct lv_node *node,
                  lv_tensor *const *dout, const int *needs);
int lv_forward_conv(lv_tensor **out, lv_op_id op, lv_tensor *const *in,
        int n_in, const lv_op_params *p);
int lv_vjp_into_products(lv_tensor *acc, const struct lv_node *node,
                         lv_tensor *const *dout, int i);
int lv_forward_linear(lv_tensor **out, lv_op_id op, lv_tensor *const *in,
                      int n_in, const lv_op_params *p);
int lv_vjp_linear(lv_tensor **din, const struct lv_node *node,
                  lv_tensor *const *dout, const int *needs);
int lv_forward_conv_fused(lv_tensor **out, lv_op_id op, lv_tensor *const *in,
                          int n_in, const lv_op_params *p);
int lv_vjp_conv_fused(lv_tensor **din, const struct lv_node *node,
                      lv_tensor *const *dout, const int *needs);
int lv_vjp_conv(lv_tensor **din, const struct lv_node *node,
                lv_tensor *const *dout, const int *needs);
int lv_vjp_linalg(lv_tensor **din, const struct lv_node *node,
                  lv_tensor *const *dout, const int *needs);

#endif
