/*
 * op.c -- the op table and lv_apply, the one door every differentiable
 * computation goes through (see op.h for why).
 */
#include <assert.h>
#include <stddef.h>

#include "autograd.h"
#include "op.h"
#include "profile.h"

/* The last field says what the VJP reads (op.h's lv_saves); each must
 * agree with the VJP beside the op's forward. */
#define UNARY(name, saves)  {name, 1, lv_forward_unary, lv_vjp_unary, saves}
#define BINARY(name, saves) {name, 2, lv_forward_binary, lv_vjp_binary, saves}
#define COMPARE(name)  {name, 2, lv_forward_binary, NULL, LV_SAVES_NOTHING}
#define REDUCE(name, saves) {name, 1, lv_forward_reduce, lv_vjp_reduce, saves}
#define ARGREDUCE(name) {name, 1, lv_forward_reduce, NULL, LV_SAVES_NOTHING}
#define SHAPE(name)    {name, 1, lv_forward_shape, lv_vjp_shape, LV_SAVES_NOTHING}
#define MATMUL(name)   {name, 2, lv_forward_matmul, lv_vjp_matmul, LV_SAVES_PARTNERS, \
                        lv_vjp_into_products}

#define IN LV_SAVES_INPUTS
#define OUT LV_SAVES_OUTPUTS
#define NONE LV_SAVES_NOTHING
#define ALL LV_SAVES_ALL

static const lv_op_def op_table[] = {
    [LV_OP_NEG] = UNARY("neg", NONE),
    [LV_OP_EXP] = UNARY("exp", OUT),
    [LV_OP_LOG] = UNARY("log", IN),
    [LV_OP_LOG1P] = UNARY("log1p", IN),
    [LV_OP_EXPM1] = UNARY("expm1", OUT),
    [LV_OP_SQRT] = UNARY("sqrt", OUT),
    [LV_OP_SQUARE] = UNARY("square", IN),
    [LV_OP_TANH] = UNARY("tanh", OUT),
    [LV_OP_SIGMOID] = UNARY("sigmoid", OUT),
    [LV_OP_SOFTPLUS] = UNARY("softplus", OUT),
    [LV_OP_LOGSIGMOID] = UNARY("logsigmoid", IN),
    [LV_OP_RELU] = UNARY("relu", IN),
    [LV_OP_ABS] = UNARY("abs", IN),
    [LV_OP_SIGN] = UNARY("sign", NONE),
    [LV_OP_CLAMP] = UNARY("clamp", ALL),
    [LV_OP_SOFTPLUS_SLOPE] = UNARY("softplus_slope", OUT),

    [LV_OP_ADD] = BINARY("add", NONE),
    [LV_OP_SUB] = BINARY("sub", NONE),
    [LV_OP_MUL] = BINARY("mul", LV_SAVES_PARTNERS),
    [LV_OP_DIV] = BINARY("div", LV_SAVES_DIVISOR),
    [LV_OP_POW] = BINARY("pow", ALL),
    [LV_OP_MAXIMUM] = BINARY("maximum", IN),
    [LV_OP_MINIMUM] = BINARY("minimum", IN),
    [LV_OP_EQ] = COMPARE("eq"),
    [LV_OP_NE] = COMPARE("ne"),
    [LV_OP_LT] = COMPARE("lt"),
    [LV_OP_LE] = COMPARE("le"),
    [LV_OP_GT] = COMPARE("gt"),
    [LV_OP_GE] = COMPARE("ge"),
    [LV_OP_BERNOULLI_LOGIT] = BINARY("bernoulli_logit", IN),
    [LV_OP_BERNOULLI_LOGIT_SLOPE] = BINARY("bernoulli_logit_slope", IN),

    [LV_OP_LINCOMB] = {"lincomb", -1, lv_forward_lincomb, lv_vjp_lincomb, LV_SAVES_PARTNERS},

    [LV_OP_SUM] = REDUCE("sum", NONE),
    [LV_OP_MEAN] = REDUCE("mean", NONE),
    [LV_OP_MAX] = REDUCE("max", ALL),
    [LV_OP_MIN] = REDUCE("min", ALL),
    [LV_OP_LOGSUMEXP] = REDUCE("logsumexp", ALL),
    [LV_OP_VAR] = REDUCE("var", IN),
    [LV_OP_ARGMAX] = ARGREDUCE("argmax"),
    [LV_OP_ARGMIN] = ARGREDUCE("argmin"),

    [LV_OP_VIEW] = SHAPE("view"),
    [LV_OP_RESHAPE] = SHAPE("reshape"),
    [LV_OP_TRANSPOSE] = SHAPE("transpose"),
    [LV_OP_PERMUTE] = SHAPE("permute"),
    [LV_OP_NARROW] = SHAPE("narrow"),
    [LV_OP_SELECT] = SHAPE("select"),
    [LV_OP_SQUEEZE] = SHAPE("squeeze"),
    [LV_OP_UNSQUEEZE] = SHAPE("unsqueeze"),
    [LV_OP_EXPAND] = SHAPE("expand"),
    [LV_OP_CAT] = {"cat", -1, lv_forward_shape, lv_vjp_shape, NONE},
    [LV_OP_STACK] = {"stack", -1, lv_forward_shape, lv_vjp_shape, NONE},
    [LV_OP_CONTIGUOUS] = SHAPE("contiguous"),
    [LV_OP_CLONE] = SHAPE("clone"),
    [LV_OP_TO] = SHAPE("to"),

    [LV_OP_MATMUL] = MATMUL("matmul"),
    [LV_OP_LINEAR] = {"linear", -1, lv_forward_linear, lv_vjp_linear, LV_SAVES_PARTNERS,
                      lv_vjp_into_products},
    [LV_OP_OUTER] = MATMUL("outer"),
    [LV_OP_DOT] = MATMUL("dot"),

    [LV_OP_CHOLESKY] = {"cholesky", 1, lv_forward_linalg, lv_vjp_linalg},
    [LV_OP_LOGDET] = {"logdet", 1, lv_forward_linalg, lv_vjp_linalg},
    [LV_OP_SOLVE] = {"solve", 2, lv_forward_linalg, lv_vjp_linalg},
    [LV_OP_INVERSE] = {"inverse", 1, lv_forward_linalg, lv_vjp_linalg},
    [LV_OP_EIGH] = {"eigh", 1, lv_forward_linalg, lv_vjp_linalg},

    [LV_OP_IM2COL] = {"im2col", 1, lv_forward_conv, lv_vjp_conv, NONE},
    [LV_OP_COL2IM] = {"col2im", 1, lv_forward_conv, lv_vjp_conv, NONE},
    [LV_OP_CONV2D] = {"conv2d", 2, lv_forward_conv_fused, lv_vjp_conv_fused,
                      LV_SAVES_PARTNERS},
    [LV_OP_CONV_TRANSPOSE2D] = {"conv_transpose2d", 2, lv_forward_conv_fused,
                                lv_vjp_conv_fused, LV_SAVES_PARTNERS},
    [LV_OP_CONV_WEIGHT_GRAD] = {"conv_weight_grad", 2, lv_forward_conv_fused,
                                lv_vjp_conv_fused, LV_SAVES_PARTNERS},
};

#undef IN
#undef OUT
#undef NONE
#undef ALL

_Static_assert(sizeof op_table / sizeof op_table[0] == LV_OP_COUNT,
               "op_table must have one record per lv_op_id");

const lv_op_def *lv_op_get(lv_op_id op)
{
    return &op_table[op];
}

int lv_apply(lv_tensor **out, lv_op_id op, int n_in, lv_tensor *const *in,
             const lv_op_params *p)
{
    const lv_op_def *def = &op_table[op];
    assert(def->forward != NULL);
    if (def->n_inputs >= 0 && n_in != def->n_inputs)
        return lv_error_set(0, "%s expects %d input(s), got %d", def->name,
                            def->n_inputs, n_in);
    if (n_in < 1)
        return lv_error_set(0, "%s expects at least one input", def->name);
    for (int i = 0; i < n_in; i++)
        if (!in[i])
            return -1;          /* an earlier step failed; its error stands */
    static const lv_op_params no_params;
    if (!p)
        p = &no_params;
    /* A forward may apply other ops inside (a dtype widening, say); only
     * the op itself goes on the tape. */
    int recording = lv_grad_set_enabled(0);
    double started = lv_profile_on ? lv_profile_begin() : 0.0;
    int n = def->forward(out, op, in, n_in, p);
    if (lv_profile_on)
        lv_profile_end(op, started, in, n_in, n > 0 ? out[0] : NULL);
    lv_grad_set_enabled(recording);
    if (n > 0 && recording && lv_autograd_record(op, n_in, in, p, n, out) < 0) {
        for (int i = 0; i < n; i++)
            lv_tensor_release(out[i]);
        return -1;
    }
    return n;
}

int lv_forward_widened(lv_tensor **out, lv_op_id op, lv_tensor *const *in,
                       const lv_op_params *p, lv_forward_fn fwd)
{
    int narrow = in[0]->dtype == LV_DTYPE_F32 ? 0 : 1;
    lv_op_params to = {.dtype = LV_DTYPE_F64};
    lv_tensor *wide = lv_apply1(LV_OP_TO, 1, &in[narrow], &to);
    if (!wide)
        return -1;
    lv_tensor *pair[2] = {in[0], in[1]};
    pair[narrow] = wide;
    int n = fwd(out, op, pair, 2, p);
    lv_tensor_release(wide);
    return n;
}

lv_tensor *lv_apply1(lv_op_id op, int n_in, lv_tensor *const *in,
                     const lv_op_params *p)
{
    lv_tensor *out[LV_OP_MAX_OUTPUTS] = {NULL, NULL};
    int n = lv_apply(out, op, n_in, in, p);
    if (n < 0)
        return NULL;
    for (int i = 1; i < n; i++)
        lv_tensor_release(out[i]);
    return out[0];
}

lv_tensor *lv_unary(lv_op_id op, lv_tensor *x)
{
    return lv_apply1(op, 1, &x, NULL);
}

lv_tensor *lv_binary(lv_op_id op, lv_tensor *a, lv_tensor *b)
{
    lv_tensor *in[2] = {a, b};
    return lv_apply1(op, 2, in, NULL);
}
