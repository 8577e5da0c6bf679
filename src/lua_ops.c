/*
 * lua_ops.c -- Lua bindings of the op table: elementwise, reductions,
 * shape ops and products, each both lv.f(x, ...) and x:f(...), plus the
 * arithmetic metamethods. Each binding reads its Lua arguments into
 * lv_op_params (converting 1-based dims and indices) and calls
 * lv_lua_apply; the core does the checking of shapes.
 */
#include <math.h>
#include <string.h>

#include "lua_common.h"

/* ---- operands -------------------------------------------------------- */

/* The tensor at idx, or a number there made into a 0-dim tensor of dtype
 * (left on the stack, so it is owned). */
static lv_tensor *check_operand(lua_State *L, int idx, lv_dtype dtype)
{
    lv_tensor *t = lv_lua_test_tensor(L, idx);
    if (t)
        return t;
    if (lua_type(L, idx) != LUA_TNUMBER)
        luaL_typeerror(L, idx, "tensor or number");
    lv_lua_push_tensor(L, lv_tensor_full(dtype, 0, NULL, lua_tonumber(L, idx)),
                       "operand");
    lua_replace(L, idx);
    return lv_lua_check_tensor(L, idx);
}

/* ---- elementwise ------------------------------------------------------ */

static int unary(lua_State *L, lv_op_id op)
{
    lv_tensor *x = lv_lua_check_tensor(L, 1);
    return lv_lua_apply(L, op, 1, &x, NULL);
}

#define UNARY_BINDING(fname, OP) \
    static int op_##fname(lua_State *L) { return unary(L, OP); }

UNARY_BINDING(neg, LV_OP_NEG)
UNARY_BINDING(exp, LV_OP_EXP)
UNARY_BINDING(log, LV_OP_LOG)
UNARY_BINDING(log1p, LV_OP_LOG1P)
UNARY_BINDING(expm1, LV_OP_EXPM1)
UNARY_BINDING(sqrt, LV_OP_SQRT)
UNARY_BINDING(square, LV_OP_SQUARE)
UNARY_BINDING(tanh, LV_OP_TANH)
UNARY_BINDING(sigmoid, LV_OP_SIGMOID)
UNARY_BINDING(softplus, LV_OP_SOFTPLUS)
UNARY_BINDING(logsigmoid, LV_OP_LOGSIGMOID)
UNARY_BINDING(relu, LV_OP_RELU)
UNARY_BINDING(abs, LV_OP_ABS)
UNARY_BINDING(sign, LV_OP_SIGN)

/* clamp(x, lo, hi): either bound may be nil. */
static int op_clamp(lua_State *L)
{
    lv_tensor *x = lv_lua_check_tensor(L, 1);
    lv_op_params p = {.lo = NAN, .hi = NAN};
    if (!lua_isnoneornil(L, 2)) {
        p.lo = luaL_checknumber(L, 2);
        luaL_argcheck(L, !isnan(p.lo), 2, "bound is NaN");
    }
    if (!lua_isnoneornil(L, 3)) {
        p.hi = luaL_checknumber(L, 3);
        luaL_argcheck(L, !isnan(p.hi), 3, "bound is NaN");
    }
    return lv_lua_apply(L, LV_OP_CLAMP, 1, &x, &p);
}

static int binary(lua_State *L, lv_op_id op)
{
    lv_tensor *ta = lv_lua_test_tensor(L, 1), *tb = lv_lua_test_tensor(L, 2);
    if (!ta && !tb) {
        if (lua_type(L, 1) != LUA_TNUMBER)
            luaL_typeerror(L, 1, "tensor or number");
        luaL_typeerror(L, 2, "tensor");
    }
    lv_dtype dtype = ta ? ta->dtype : tb->dtype;
    lv_tensor *in[2] = {check_operand(L, 1, dtype), check_operand(L, 2, dtype)};
    return lv_lua_apply(L, op, 2, in, NULL);
}

#define BINARY_BINDING(fname, OP) \
    static int op_##fname(lua_State *L) { return binary(L, OP); }

BINARY_BINDING(add, LV_OP_ADD)
BINARY_BINDING(sub, LV_OP_SUB)
BINARY_BINDING(mul, LV_OP_MUL)
BINARY_BINDING(div, LV_OP_DIV)
BINARY_BINDING(pow, LV_OP_POW)
BINARY_BINDING(maximum, LV_OP_MAXIMUM)
BINARY_BINDING(minimum, LV_OP_MINIMUM)
BINARY_BINDING(eq, LV_OP_EQ)
BINARY_BINDING(ne, LV_OP_NE)
BINARY_BINDING(lt, LV_OP_LT)
BINARY_BINDING(le, LV_OP_LE)
BINARY_BINDING(gt, LV_OP_GT)
BINARY_BINDING(ge, LV_OP_GE)
BINARY_BINDING(bernoulli_logit, LV_OP_BERNOULLI_LOGIT)

/* ---- reductions: f(x [, dims] [, keepdim]) ----------------------------- */

/* dims: nil (all), an integer, or a table of integers. */
static unsigned check_dims(lua_State *L, int idx, int ndim)
{
    if (lua_isnoneornil(L, idx))
        return 0;
    if (!lua_istable(L, idx))
        return 1u << lv_lua_check_dim(L, idx, ndim);
    unsigned mask = 0;
    int n = (int)luaL_len(L, idx);
    luaL_argcheck(L, n > 0, idx, "empty list of dimensions");
    for (int i = 1; i <= n; i++) {
        lua_geti(L, idx, i);
        int d = lv_lua_check_dim(L, lua_gettop(L), ndim);
        lua_pop(L, 1);
        if (mask & (1u << d))
            luaL_argerror(L, idx, lua_pushfstring(L, "dimension %d repeated",
                                                  d + 1));
        mask |= 1u << d;
    }
    return mask;
}

static int reduce(lua_State *L, lv_op_id op)
{
    lv_tensor *x = lv_lua_check_tensor(L, 1);
    lv_op_params p = {.dim_mask = check_dims(L, 2, x->ndim)};
    if (!lua_isnoneornil(L, 3))
        luaL_checktype(L, 3, LUA_TBOOLEAN);
    p.keepdim = lua_toboolean(L, 3);
    if (op == LV_OP_VAR) {
        lua_Integer correction = luaL_optinteger(L, 4, 1);
        /* n - correction must count samples: a negative one would divide
         * by more than n */
        luaL_argcheck(L, correction >= 0 && correction <= 1000000, 4,
                      "correction must be an integer >= 0");
        p.correction = (int)correction;
    }
    return lv_lua_apply(L, op, 1, &x, &p);
}

#define REDUCE_BINDING(fname, OP) \
    static int op_##fname(lua_State *L) { return reduce(L, OP); }

REDUCE_BINDING(sum, LV_OP_SUM)
REDUCE_BINDING(mean, LV_OP_MEAN)
REDUCE_BINDING(max, LV_OP_MAX)
REDUCE_BINDING(min, LV_OP_MIN)
REDUCE_BINDING(logsumexp, LV_OP_LOGSUMEXP)
REDUCE_BINDING(var, LV_OP_VAR)
REDUCE_BINDING(argmax, LV_OP_ARGMAX)
REDUCE_BINDING(argmin, LV_OP_ARGMIN)

/* ---- shape ops --------------------------------------------------------- */

/* A shape given either as one table or as integers from idx on. */
static int check_shape_args(lua_State *L, int idx, int64_t *shape,
                            int allow_minus_one)
{
    int n = 0;
    if (lua_istable(L, idx)) {
        n = (int)luaL_len(L, idx);
        luaL_argcheck(L, n <= LV_MAX_DIMS, idx, "more than 8 dimensions");
        for (int i = 1; i <= n; i++) {
            lua_geti(L, idx, i);
            int isnum;
            shape[i - 1] = lua_tointegerx(L, -1, &isnum);
            if (!isnum)
                luaL_argerror(L, idx, lua_pushfstring(L, "size %d is not an "
                                                      "integer", i));
            lua_pop(L, 1);
        }
    } else {
        int top = lua_gettop(L);
        luaL_argcheck(L, top - idx + 1 <= LV_MAX_DIMS, idx,
                      "more than 8 dimensions");
        for (int i = idx; i <= top; i++)
            shape[n++] = luaL_checkinteger(L, i);
    }
    for (int i = 0; i < n; i++)
        if (shape[i] < 0 && !(allow_minus_one && shape[i] == -1))
            luaL_argerror(L, idx, lua_pushfstring(L, "size %d is negative",
                                                  i + 1));
    return n;
}

static int shape_op(lua_State *L, lv_op_id op)
{
    lv_tensor *x = lv_lua_check_tensor(L, 1);
    lv_op_params p = {0};
    p.ndim = check_shape_args(L, 2, p.shape, 1);
    return lv_lua_apply(L, op, 1, &x, &p);
}

static int op_view(lua_State *L) { return shape_op(L, LV_OP_VIEW); }
static int op_reshape(lua_State *L) { return shape_op(L, LV_OP_RESHAPE); }
static int op_expand(lua_State *L) { return shape_op(L, LV_OP_EXPAND); }

static int op_expand_as(lua_State *L)
{
    lv_tensor *x = lv_lua_check_tensor(L, 1), *y = lv_lua_check_tensor(L, 2);
    lv_op_params p = {.ndim = y->ndim};
    memcpy(p.shape, y->shape, sizeof p.shape);
    return lv_lua_apply(L, LV_OP_EXPAND, 1, &x, &p);
}

static int op_permute(lua_State *L)
{
    lv_tensor *x = lv_lua_check_tensor(L, 1);
    lv_op_params p = {0};
    p.ndim = check_shape_args(L, 2, p.shape, 0);
    luaL_argcheck(L, p.ndim == x->ndim, 2, "one entry per dimension expected");
    for (int i = 0; i < p.ndim; i++) {
        luaL_argcheck(L, p.shape[i] >= 1 && p.shape[i] <= x->ndim, 2,
                      "entry out of range");
        p.shape[i] -= 1;
    }
    return lv_lua_apply(L, LV_OP_PERMUTE, 1, &x, &p);
}

static int op_transpose(lua_State *L)
{
    lv_tensor *x = lv_lua_check_tensor(L, 1);
    lv_op_params p = {0};
    if (lua_isnoneornil(L, 2)) {
        luaL_argcheck(L, lua_isnoneornil(L, 3), 2, "give both dims to swap, "
                      "or neither (a matrix)");
        luaL_argcheck(L, x->ndim == 2, 1, "transpose without dims needs a "
                      "matrix (give the two dims to swap)");
        p.dim = 0;
        p.dim2 = 1;
    } else {
        p.dim = lv_lua_check_dim(L, 2, x->ndim);
        p.dim2 = lv_lua_check_dim(L, 3, x->ndim);
    }
    return lv_lua_apply(L, LV_OP_TRANSPOSE, 1, &x, &p);
}

/* narrow(x, dim, start, length), start 1-based. */
static int op_narrow(lua_State *L)
{
    lv_tensor *x = lv_lua_check_tensor(L, 1);
    lv_op_params p = {.dim = lv_lua_check_dim(L, 2, x->ndim)};
    lua_Integer start = luaL_checkinteger(L, 3);
    lua_Integer length = luaL_checkinteger(L, 4);
    if (start < 0)
        start += x->shape[p.dim] + 1;
    luaL_argcheck(L, length >= 0, 4, "length is negative");
    /* start - 1 + length <= n, written so that it cannot overflow */
    lua_Integer n = x->shape[p.dim], last;
    if (!(start >= 1 && start <= n + 1 && length <= n - (start - 1))) {
        if (__builtin_add_overflow(start, length - 1, &last))
            return luaL_argerror(L, 3, lua_pushfstring(L, "start %I and length "
                                 "%I out of range for dimension %d of size %I",
                                 start, length, p.dim + 1, n));
        return luaL_argerror(L, 3, lua_pushfstring(L, "range %I..%I out of "
                             "range for dimension %d of size %I", start, last,
                             p.dim + 1, n));
    }
    p.start = start - 1;
    p.length = length;
    return lv_lua_apply(L, LV_OP_NARROW, 1, &x, &p);
}

/* select(x, dim, index), index 1-based, negative from the end. */
static int op_select(lua_State *L)
{
    lv_tensor *x = lv_lua_check_tensor(L, 1);
    lv_op_params p = {.dim = lv_lua_check_dim(L, 2, x->ndim)};
    lua_Integer i = luaL_checkinteger(L, 3), n = x->shape[p.dim];
    if (i < 0)
        i += n + 1;
    luaL_argcheck(L, i >= 1 && i <= n, 3,
                  lua_pushfstring(L, "index %I out of range for dimension %d "
                                  "of size %I", lua_tointeger(L, 3), p.dim + 1,
                                  n));
    p.start = i - 1;
    return lv_lua_apply(L, LV_OP_SELECT, 1, &x, &p);
}

static int op_squeeze(lua_State *L)
{
    lv_tensor *x = lv_lua_check_tensor(L, 1);
    lv_op_params p = {.dim = LV_SQUEEZE_ALL};
    if (!lua_isnoneornil(L, 2))
        p.dim = lv_lua_check_dim(L, 2, x->ndim);
    return lv_lua_apply(L, LV_OP_SQUEEZE, 1, &x, &p);
}

static int op_unsqueeze(lua_State *L)
{
    lv_tensor *x = lv_lua_check_tensor(L, 1);
    lv_op_params p = {.dim = lv_lua_check_dim(L, 2, x->ndim + 1)};
    return lv_lua_apply(L, LV_OP_UNSQUEEZE, 1, &x, &p);
}

/* cat({tensors}, dim) and stack({tensors}, dim); dim defaults to 1. */
static int join(lua_State *L, lv_op_id op)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    int n = (int)luaL_len(L, 1);
    luaL_argcheck(L, n >= 1, 1, "empty list of tensors");
    luaL_argcheck(L, n <= 256, 1, "more than 256 tensors");
    lv_tensor *in[256];
    for (int i = 1; i <= n; i++) {
        lua_geti(L, 1, i);
        in[i - 1] = lv_lua_test_tensor(L, -1);
        if (!in[i - 1])
            luaL_argerror(L, 1, lua_pushfstring(L, "entry %d is not a tensor",
                                                i));
        lua_pop(L, 1);     /* the table keeps it alive */
    }
    int ndim = op == LV_OP_STACK ? in[0]->ndim + 1 : in[0]->ndim;
    lv_op_params p = {0};
    if (!lua_isnoneornil(L, 2))
        p.dim = lv_lua_check_dim(L, 2, ndim);
    return lv_lua_apply(L, op, n, in, &p);
}

static int op_cat(lua_State *L) { return join(L, LV_OP_CAT); }
static int op_stack(lua_State *L) { return join(L, LV_OP_STACK); }

static int op_contiguous(lua_State *L) { return unary(L, LV_OP_CONTIGUOUS); }
static int op_clone(lua_State *L) { return unary(L, LV_OP_CLONE); }

static int op_to(lua_State *L)
{
    lv_tensor *x = lv_lua_check_tensor(L, 1);
    luaL_checkstring(L, 2);
    lv_op_params p = {.dtype = lv_lua_opt_dtype(L, 2, x->dtype)};
    return lv_lua_apply(L, LV_OP_TO, 1, &x, &p);
}

/* ---- products ---------------------------------------------------------- */

static int product(lua_State *L, lv_op_id op)
{
    lv_tensor *in[2] = {lv_lua_check_tensor(L, 1), lv_lua_check_tensor(L, 2)};
    return lv_lua_apply(L, op, 2, in, NULL);
}

static int op_matmul(lua_State *L) { return product(L, LV_OP_MATMUL); }
static int op_outer(lua_State *L) { return product(L, LV_OP_OUTER); }
static int op_dot(lua_State *L) { return product(L, LV_OP_DOT); }

/* ---- convolution windows ------------------------------------------------ */

/* Reads opts.name as one integer (both directions) or a list of n. */
static int opt_ints(lua_State *L, int idx, const char *name, int64_t *v,
                    int max_n, int64_t def)
{
    lua_getfield(L, idx, name);
    int n = 0;
    if (lua_isnil(L, -1)) {
        v[0] = def;
        n = 1;
    } else if (lua_type(L, -1) == LUA_TNUMBER) {
        int isint;
        v[0] = lua_tointegerx(L, -1, &isint);
        if (!isint)
            luaL_argerror(L, idx, lua_pushfstring(L, "option '%s' must be an "
                                                  "integer", name));
        n = 1;
    } else if (lua_istable(L, -1)) {
        n = (int)luaL_len(L, -1);
        if (n < 1 || n > max_n)
            luaL_argerror(L, idx, lua_pushfstring(L, "option '%s' must have 1 "
                                                  "to %d entries", name, max_n));
        for (int i = 0; i < n; i++) {
            lua_geti(L, -1, i + 1);
            int isint;
            v[i] = lua_tointegerx(L, -1, &isint);
            if (!isint)
                luaL_argerror(L, idx, lua_pushfstring(L, "option '%s' entry %d "
                                                      "must be an integer",
                                                      name, i + 1));
            lua_pop(L, 1);
        }
    } else {
        luaL_argerror(L, idx, lua_pushfstring(L, "option '%s' must be an "
                                              "integer or a list", name));
    }
    lua_pop(L, 1);
    return n;
}

/* {kernel, stride = 1, padding = 0, size = {H, W}, layout = "image"}:
 * padding is one number, {vertical, horizontal}, or {top, bottom, left,
 * right}; layout "batch" puts the batch inside the columns. */
static lv_conv_geometry check_geometry_opts(lua_State *L, int idx)
{
    static const char *const known[] = {"kernel", "stride", "padding", "size",
                                        "layout", NULL};
    luaL_checktype(L, idx, LUA_TTABLE);
    lv_lua_check_options(L, idx, known);
    lv_conv_geometry g = {0};
    int64_t v[4];
    lua_getfield(L, idx, "kernel");
    luaL_argcheck(L, !lua_isnil(L, -1), idx, "option 'kernel' is required");
    lua_pop(L, 1);
    int n = opt_ints(L, idx, "kernel", v, 2, 1);
    g.kh = v[0];
    g.kw = n == 2 ? v[1] : v[0];
    n = opt_ints(L, idx, "stride", v, 2, 1);
    g.sh = v[0];
    g.sw = n == 2 ? v[1] : v[0];
    n = opt_ints(L, idx, "padding", v, 4, 0);
    luaL_argcheck(L, n != 3, idx, "padding takes 1, 2 or 4 numbers");
    if (n == 4) {
        g.pad_top = v[0];
        g.pad_bottom = v[1];
        g.pad_left = v[2];
        g.pad_right = v[3];
    } else {
        g.pad_top = g.pad_bottom = v[0];
        g.pad_left = g.pad_right = n == 2 ? v[1] : v[0];
    }
    n = opt_ints(L, idx, "size", v, 2, 0);
    g.height = v[0];
    g.width = n == 2 ? v[1] : v[0];
    lua_getfield(L, idx, "layout");
    const char *layout = lua_isnil(L, -1) ? "image" : lua_tostring(L, -1);
    if (!layout || (strcmp(layout, "image") != 0 && strcmp(layout, "batch") != 0))
        luaL_argerror(L, idx, "option 'layout' must be \"image\" (columns [N, "
                      "C*kh*kw, P]) or \"batch\" ([C*kh*kw, N, P])");
    g.batch_inner = strcmp(layout, "batch") == 0;
    lua_pop(L, 1);
    return g;
}

static int op_im2col(lua_State *L)
{
    lv_tensor *x = lv_lua_check_tensor(L, 1);
    lv_op_params p = {.conv = check_geometry_opts(L, 2)};
    return lv_lua_apply(L, LV_OP_IM2COL, 1, &x, &p);
}

static int op_col2im(lua_State *L)
{
    lv_tensor *x = lv_lua_check_tensor(L, 1);
    lv_op_params p = {.conv = check_geometry_opts(L, 2)};
    return lv_lua_apply(L, LV_OP_COL2IM, 1, &x, &p);
}

/* conv2d(x, w, {kernel, stride, padding}); conv_transpose2d(y, w, {...,
 * size = {H, W}}); conv_weight_grad(x, y, {...}): the fused convolution
 * ops (ops_conv_fused.c). */
static int conv_fused(lua_State *L, lv_op_id op)
{
    lv_tensor *in[2] = {lv_lua_check_tensor(L, 1), lv_lua_check_tensor(L, 2)};
    lv_op_params p = {.conv = check_geometry_opts(L, 3)};
    return lv_lua_apply(L, op, 2, in, &p);
}

static int op_conv2d(lua_State *L) { return conv_fused(L, LV_OP_CONV2D); }
static int op_conv_transpose2d(lua_State *L) { return conv_fused(L, LV_OP_CONV_TRANSPOSE2D); }
static int op_conv_weight_grad(lua_State *L) { return conv_fused(L, LV_OP_CONV_WEIGHT_GRAD); }

/* linear(x, weight [, bias]): x weightᵀ + bias as one op. */
static int op_linear(lua_State *L)
{
    lv_tensor *in[3] = {lv_lua_check_tensor(L, 1), lv_lua_check_tensor(L, 2), NULL};
    int n = 2;
    if (!lua_isnoneornil(L, 3)) {
        in[2] = lv_lua_check_tensor(L, 3);
        n = 3;
    }
    return lv_lua_apply(L, LV_OP_LINEAR, n, in, NULL);
}

/* ---- registration ------------------------------------------------------ */

static const luaL_Reg op_methods[] = {
    {"neg", op_neg}, {"exp", op_exp}, {"log", op_log}, {"log1p", op_log1p},
    {"expm1", op_expm1}, {"sqrt", op_sqrt}, {"square", op_square},
    {"tanh", op_tanh}, {"sigmoid", op_sigmoid}, {"softplus", op_softplus},
    {"logsigmoid", op_logsigmoid}, {"relu", op_relu}, {"abs", op_abs},
    {"sign", op_sign}, {"clamp", op_clamp},
    {"add", op_add}, {"sub", op_sub}, {"mul", op_mul}, {"div", op_div},
    {"pow", op_pow}, {"maximum", op_maximum}, {"minimum", op_minimum},
    {"bernoulli_logit", op_bernoulli_logit},
    {"eq", op_eq}, {"ne", op_ne}, {"lt", op_lt}, {"le", op_le},
    {"gt", op_gt}, {"ge", op_ge},
    {"sum", op_sum}, {"mean", op_mean}, {"max", op_max}, {"min", op_min},
    {"logsumexp", op_logsumexp}, {"var", op_var}, {"argmax", op_argmax},
    {"argmin", op_argmin},
    {"view", op_view}, {"reshape", op_reshape}, {"expand", op_expand},
    {"expand_as", op_expand_as}, {"permute", op_permute},
    {"transpose", op_transpose}, {"t", op_transpose}, {"narrow", op_narrow},
    {"select", op_select}, {"squeeze", op_squeeze},
    {"unsqueeze", op_unsqueeze}, {"contiguous", op_contiguous},
    {"clone", op_clone}, {"to", op_to},
    {"matmul", op_matmul}, {"outer", op_outer}, {"dot", op_dot},
    {"im2col", op_im2col}, {"col2im", op_col2im},
    {"conv2d", op_conv2d}, {"conv_transpose2d", op_conv_transpose2d},
    {"conv_weight_grad", op_conv_weight_grad}, {"linear", op_linear},
    {NULL, NULL}
};

static const luaL_Reg op_functions[] = {
    {"cat", op_cat}, {"stack", op_stack},
    {NULL, NULL}
};

void lv_open_ops(lua_State *L)
{
    lv_lua_register(L, op_methods, 1);
    lv_lua_register(L, op_functions, 0);
    luaL_getmetatable(L, LV_TENSOR_MT);
    static const luaL_Reg arith[] = {
        {"__add", op_add}, {"__sub", op_sub}, {"__mul", op_mul},
        {"__div", op_div}, {"__pow", op_pow}, {"__unm", op_neg},
        {NULL, NULL}
    };
    luaL_setfuncs(L, arith, 0);
    lua_pop(L, 1);
}
