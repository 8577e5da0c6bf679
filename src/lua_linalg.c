/*
 * lua_linalg.c -- the Lua face of linalg.c: cholesky, logdet, solve,
 * inverse, eigh, each both lv.f(A) and A:f().
 *
 * Thin on purpose: check that the arguments are tensors, apply the op
 * (lv_apply, so the tape sees it), push what it returns. Shape, dtype and
 * numerical errors are worded by the core and raised by lv_lua_apply, e.g.
 * "bad argument #1 to 'cholesky' (matrix is not positive definite)". Not
 * here: any arithmetic.
 */
#include "lua_common.h"

/* One-input ops: A -> outputs. */
static int apply_unary(lua_State *L, lv_op_id op)
{
    lv_tensor *a = lv_lua_check_tensor(L, 1);
    lv_op_params params = {0};
    return lv_lua_apply(L, op, 1, &a, &params);
}

/* lv.cholesky(A) -> L, lower triangular, L L^T = A */
static int linalg_cholesky(lua_State *L)
{
    return apply_unary(L, LV_OP_CHOLESKY);
}

/* lv.logdet(A) -> log|det A|, sign(det A) */
static int linalg_logdet(lua_State *L)
{
    return apply_unary(L, LV_OP_LOGDET);
}

/* lv.inverse(A) -> A^-1 */
static int linalg_inverse(lua_State *L)
{
    return apply_unary(L, LV_OP_INVERSE);
}

/* lv.eigh(A) -> eigenvalues (ascending), eigenvectors (as columns) */
static int linalg_eigh(lua_State *L)
{
    return apply_unary(L, LV_OP_EIGH);
}

/* lv.solve(A, B) -> X with A X = B; B is [..., n, k] or [..., n] */
static int linalg_solve(lua_State *L)
{
    lv_tensor *in[2] = {lv_lua_check_tensor(L, 1), lv_lua_check_tensor(L, 2)};
    lv_op_params params = {0};
    return lv_lua_apply(L, LV_OP_SOLVE, 2, in, &params);
}

void lv_open_linalg(lua_State *L)
{
    static const luaL_Reg fns[] = {
        {"cholesky", linalg_cholesky},
        {"logdet", linalg_logdet},
        {"solve", linalg_solve},
        {"inverse", linalg_inverse},
        {"eigh", linalg_eigh},
        {NULL, NULL},
    };
    lv_lua_register(L, fns, 1);
}
