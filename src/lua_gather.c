/*
 * lua_gather.c -- the Lua face of gather.c:
 *
 *   lv.gather_rows(x, rows) -> tensor       (also x:gather_rows(rows))
 *                                 rows of x by 1-based indices (negative
 *                                 count from the end; a list or a 1-d
 *                                 tensor), into a new contiguous tensor:
 *                                 how data batches are made
 *
 * Every index is checked, and converted to 0-based, here: a bad one is
 * an argument error naming its position in the list. Not here: the copy
 * (gather.c), which rows make a batch (lua/lvae/data.lua).
 */
#include <math.h>
#include <stdio.h>

#include "gather.h"
#include "lua_common.h"

/* One 1-based row index (negative counts from the end) as 0-based, or a
 * Lua error naming its position in the list. */
static int64_t check_row(lua_State *L, double v, int is_number, int64_t pos,
                         int64_t rows)
{
    if (!is_number || v != floor(v))
        return luaL_argerror(L, 2, lua_pushfstring(L, "row index at position "
                             "%I is not an integer", (LUAI_UACINT)pos));
    if (v >= 1 && v <= (double)rows)
        return (int64_t)v - 1;
    if (v < 0 && v >= -(double)rows)
        return rows + (int64_t)v;
    char text[64];
    snprintf(text, sizeof text, "%.17g", v);
    return luaL_argerror(L, 2, lua_pushfstring(L, "row index %s at position %I "
                         "is out of range (the tensor has %I rows)", text,
                         (LUAI_UACINT)pos, (LUAI_UACINT)rows));
}

/* lv.gather_rows(x, rows): rows a list of indices or a 1-d tensor. */
static int gather_rows(lua_State *L)
{
    lv_tensor *x = lv_lua_check_tensor(L, 1);
    luaL_argcheck(L, x->ndim >= 1, 1, "expected a tensor of at least 1 "
                  "dimension");
    luaL_argcheck(L, !x->requires_grad && !x->grad_fn, 1, "gather_rows is "
                  "not differentiable (use x:detach())");
    lv_tensor *idx = lv_lua_test_tensor(L, 2);
    int64_t n;
    if (idx) {
        luaL_argcheck(L, idx->ndim == 1, 2, "expected a 1-d tensor of row "
                      "indices");
        n = idx->shape[0];
    } else {
        luaL_checktype(L, 2, LUA_TTABLE);
        n = (int64_t)lua_rawlen(L, 2);
    }
    lua_settop(L, 2);
    int64_t *rows = lua_newuserdatauv(L, (size_t)(n > 0 ? n : 1) *
                                      sizeof *rows, 0);
    for (int64_t i = 0; i < n; i++) {
        int isnum = 1;
        double v;
        if (idx) {
            v = lv_tensor_get_linear(idx, i);
        } else {
            lua_rawgeti(L, 2, (lua_Integer)(i + 1));
            isnum = lua_type(L, -1) == LUA_TNUMBER;
            v = isnum ? (double)lua_tonumber(L, -1) : 0.0;
            lua_pop(L, 1);
        }
        rows[i] = check_row(L, v, isnum, i + 1, x->shape[0]);
    }
    lv_lua_push_tensor(L, lv_gather_rows(x, rows, n), "gather_rows");
    return 1;
}

void lv_open_gather(lua_State *L)
{
    static const luaL_Reg fns[] = {
        {"gather_rows", gather_rows},
        {NULL, NULL},
    };
    lv_lua_register(L, fns, 1);
}
