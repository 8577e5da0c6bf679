/*
 * lua_estimators.c -- the Lua face of estimators.c, as the table
 * lvae.core._estimators (lua/lvae/estimators.lua builds the public
 * lv.estimators on it):
 *
 *   _estimators.nll(fn, B, S, chunk, runs) -> nll [R, B], ess [R, B] (f64)
 *       fn(n) must return the log weights [n, B] of n fresh samples; it is
 *       called with n <= chunk, and each chunk is dropped before the next
 *   _estimators.ess(log_w) -> ESS over dim 1 of log_w [S, B] ([B]) or
 *       [S] (0-dim), in log_w's dtype
 *   _estimators.select(mask, a, b) -> rows of a where mask ~= 0, else b
 *
 * An error raised inside fn propagates unchanged (with its own position),
 * after the core has freed its stream: fn runs under lua_pcall, so no
 * error ever jumps over a C frame that owns memory. Not here: any
 * arithmetic (estimators.c), the models (lua/lvae/models.lua).
 */
#include "estimators.h"
#include "lua_common.h"

/* ---- nll ------------------------------------------------------------------- */

typedef struct callback_ctx {
    lua_State *L;
    int fn;                 /* stack index of the Lua function */
    int lua_failed;         /* fn raised: its error object is on top */
} callback_ctx;

/* lv_log_weight_fn over a Lua function: fn(n) -> tensor (a new reference
 * is taken before the value leaves the stack). */
static int call_log_weight(void *vctx, int64_t n, lv_tensor **log_w)
{
    callback_ctx *ctx = vctx;
    lua_State *L = ctx->L;
    lua_pushvalue(L, ctx->fn);
    lua_pushinteger(L, (lua_Integer)n);
    if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
        ctx->lua_failed = 1;          /* leave the error object on top */
        return lv_error_set(0, "the log-weight function raised an error");
    }
    lv_tensor *t = lv_lua_test_tensor(L, -1);
    if (!t) {
        const char *got = luaL_typename(L, -1);
        lv_error_set(0, "log_weight must return a tensor [n, B] (got %s)", got);
        lua_pop(L, 1);
        return -1;
    }
    lv_tensor_retain(t);
    lua_pop(L, 1);
    *log_w = t;
    return 0;
}

static int64_t check_count(lua_State *L, int idx, const char *what)
{
    lua_Integer v = luaL_checkinteger(L, idx);
    if (v < 1)
        luaL_argerror(L, idx, lua_pushfstring(L, "%s must be >= 1", what));
    return (int64_t)v;
}

/* _estimators.nll(fn, B, S, chunk, runs) -> nll [R, B], ess [R, B] */
static int estimators_nll(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TFUNCTION);
    int64_t B = check_count(L, 2, "the batch size");
    int64_t S = check_count(L, 3, "samples");
    int64_t chunk = check_count(L, 4, "chunk");
    int64_t R = check_count(L, 5, "runs");
    luaL_argcheck(L, R <= 1000000, 5, "runs must be <= 1000000");
    lua_settop(L, 5);

    /* The outputs are owned by the stack before the core runs. */
    int64_t shape[2] = {R, B};
    lv_tensor **nll_box = lv_lua_push_box(L);
    lv_tensor **ess_box = lv_lua_push_box(L);
    *nll_box = lv_tensor_empty(LV_DTYPE_F64, 2, shape);
    *ess_box = lv_tensor_empty(LV_DTYPE_F64, 2, shape);
    if (!*nll_box || !*ess_box)
        return lv_lua_raise(L, "nll");

    callback_ctx ctx = {L, 1, 0};
    if (lv_estimators_nll(lv_tensor_data(*nll_box), lv_tensor_data(*ess_box),
                          call_log_weight, &ctx, B, S, chunk, (int)R) != 0) {
        if (ctx.lua_failed)
            return lua_error(L);
        return lv_lua_raise(L, "nll");
    }
    return 2;
}

/* _estimators.ess(log_w) -> [B] (or 0-dim for [S]) */
static int estimators_ess(lua_State *L)
{
    lv_tensor *lw = lv_lua_check_tensor(L, 1);
    int64_t B = lw->ndim == 2 ? lw->shape[1] : 1;
    lv_tensor **box = lv_lua_push_box(L);
    *box = lv_tensor_empty(lw->dtype, lw->ndim == 2 ? 1 : 0, &B);
    lv_tensor **tmp = lv_lua_push_box(L);
    *tmp = lv_tensor_empty(LV_DTYPE_F64, 1, &B);
    if (!*box || !*tmp)
        return lv_lua_raise(L, "ess");
    double *v = lv_tensor_data(*tmp);
    if (lv_estimators_ess(v, lw) != 0)
        return lv_lua_raise(L, "ess");
    for (int64_t b = 0; b < B; b++)
        lv_tensor_set_index(*box, &b, v[b]);
    lua_pop(L, 1);
    return 1;
}

/* _estimators.select(mask, a, b) -> a where mask ~= 0, else b (rows) */
static int estimators_select(lua_State *L)
{
    lv_tensor *mask = lv_lua_check_tensor(L, 1);
    lv_tensor *a = lv_lua_check_tensor(L, 2);
    lv_tensor *b = lv_lua_check_tensor(L, 3);
    lv_lua_push_tensor(L, lv_estimators_select(mask, a, b), "select");
    return 1;
}

void lv_open_estimators(lua_State *L)
{
    static const luaL_Reg fns[] = {
        {"nll", estimators_nll},
        {"ess", estimators_ess},
        {"select", estimators_select},
        {NULL, NULL},
    };
    luaL_newlib(L, fns);
    lua_setfield(L, -3, "_estimators");
}
