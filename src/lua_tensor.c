/*
 * lua_tensor.c -- the tensor type's binding: its metatable (__index,
 * __newindex, __len, __gc/__close), creation from shapes and Lua tables,
 * conversion back to Lua, geometry queries, element access, in-place
 * fills, and the allocator's numbers (lv.memory_stats). Not here: the box
 * and argument helpers every binding shares (lua_common.c), the tape's
 * properties x.grad, x.grad_fn, ... (lua_autograd.c), arithmetic
 * (lua_ops.c), linear algebra, random numbers.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "iter.h"
#include "lua_common.h"

/* One function serves __gc and __close: release exactly once. */
static int tensor_release(lua_State *L)
{
    lv_tensor **box = luaL_checkudata(L, 1, LV_TENSOR_MT);
    if (*box) {
        lv_tensor_release(*box);
        *box = NULL;
    }
    return 0;
}

/* ---- creation -------------------------------------------------------- */

static int tensor_filled(lua_State *L, double value, int dtype_idx,
                         const char *fname)
{
    int64_t shape[LV_MAX_DIMS];
    int ndim = lv_lua_check_shape(L, 1, shape);
    lv_dtype dtype = lv_lua_opt_dtype(L, dtype_idx, LV_DTYPE_F32);
    lv_lua_push_tensor(L, lv_tensor_full(dtype, ndim, shape, value), fname);
    return 1;
}

static int tensor_zeros(lua_State *L) { return tensor_filled(L, 0.0, 2, "zeros"); }
static int tensor_ones(lua_State *L) { return tensor_filled(L, 1.0, 2, "ones"); }

static int tensor_full(lua_State *L)
{
    return tensor_filled(L, luaL_checknumber(L, 2), 3, "full");
}

static int tensor_filled_like(lua_State *L, double value, int dtype_idx,
                              const char *fname)
{
    lv_tensor *x = lv_lua_check_tensor(L, 1);
    lv_dtype dtype = lv_lua_opt_dtype(L, dtype_idx, x->dtype);
    lv_lua_push_tensor(L, lv_tensor_full(dtype, x->ndim, x->shape, value),
                       fname);
    return 1;
}

static int tensor_zeros_like(lua_State *L) { return tensor_filled_like(L, 0, 2, "zeros_like"); }
static int tensor_ones_like(lua_State *L) { return tensor_filled_like(L, 1, 2, "ones_like"); }

static int tensor_full_like(lua_State *L)
{
    return tensor_filled_like(L, luaL_checknumber(L, 2), 3, "full_like");
}

static int tensor_empty_like(lua_State *L) { return tensor_filled_like(L, 0, 2, "empty_like"); }

static int tensor_eye(lua_State *L)
{
    lua_Integer n = luaL_checkinteger(L, 1);
    lua_Integer m = n;
    int dtype_idx = 2;
    if (lua_type(L, 2) == LUA_TNUMBER) {
        m = luaL_checkinteger(L, 2);
        dtype_idx = 3;
    } else if (lua_isnil(L, 2) && !lua_isnone(L, 3)) {
        dtype_idx = 3;            /* eye(n, nil, dtype): m left out */
    }
    luaL_argcheck(L, n >= 0, 1, "size is negative");
    luaL_argcheck(L, m >= 0, 2, "size is negative");
    lv_dtype dtype = lv_lua_opt_dtype(L, dtype_idx, LV_DTYPE_F32);
    int64_t shape[2] = {n, m};
    lv_tensor *t = lv_tensor_zeros(dtype, 2, shape);
    lv_lua_push_tensor(L, t, "eye");
    for (int64_t i = 0; i < n && i < m; i++)
        lv_tensor_set_index(t, (int64_t[]){i, i}, 1.0);
    return 1;
}

static double check_finite(lua_State *L, int idx)
{
    double v = luaL_checknumber(L, idx);
    luaL_argcheck(L, isfinite(v), idx, "must be finite");
    return v;
}

/* arange(stop) or arange(start, stop [, step]) [, dtype]: start, start +
 * step, ... while below stop (above, for a negative step), as NumPy. */
static int tensor_arange(lua_State *L)
{
    int nnum = 0;
    while (nnum < 3 && lua_type(L, nnum + 1) == LUA_TNUMBER)
        nnum++;
    luaL_argcheck(L, nnum >= 1, 1, "number expected");
    /* After the numbers comes at most the dtype: arange(0, nil, 1) has a
     * hole where stop belongs, not a dtype nil. */
    if (lua_gettop(L) > nnum + 1)
        luaL_typeerror(L, nnum + 1, "number");
    double start = 0, stop, step = 1;
    if (nnum == 1) {
        stop = check_finite(L, 1);
    } else {
        start = check_finite(L, 1);
        stop = check_finite(L, 2);
        if (nnum == 3)
            step = check_finite(L, 3);
    }
    luaL_argcheck(L, step != 0, 3, "step must not be zero");
    lv_dtype dtype = lv_lua_opt_dtype(L, nnum + 1, LV_DTYPE_F32);
    double count = ceil((stop - start) / step);
    luaL_argcheck(L, count < 1e12, 2, "range is too large");
    int64_t n = count > 0 ? (int64_t)count : 0;
    lv_tensor *t = lv_tensor_empty(dtype, 1, &n);
    lv_lua_push_tensor(L, t, "arange");
    for (int64_t i = 0; i < n; i++)
        lv_tensor_set_index(t, &i, start + (double)i * step);
    return 1;
}

static int tensor_linspace(lua_State *L)
{
    double a = check_finite(L, 1), b = check_finite(L, 2);
    lua_Integer n = luaL_checkinteger(L, 3);
    luaL_argcheck(L, n >= 0, 3, "number of points is negative");
    lv_dtype dtype = lv_lua_opt_dtype(L, 4, LV_DTYPE_F32);
    int64_t size = n;
    lv_tensor *t = lv_tensor_empty(dtype, 1, &size);
    lv_lua_push_tensor(L, t, "linspace");
    for (int64_t i = 0; i < n; i++) {
        /* the last point is exactly b */
        double v = n == 1 ? a : i == n - 1 ? b
                 : a + (b - a) * (double)i / (double)(n - 1);
        lv_tensor_set_index(t, &i, v);
    }
    return 1;
}

/* Walks a nested table to find its shape (the first element at each
 * level), then fills, checking every row has that shape. */
static void nested_shape(lua_State *L, int idx, int *ndim, int64_t *shape)
{
    *ndim = 0;
    lua_pushvalue(L, idx);
    while (lua_istable(L, -1)) {
        if (*ndim == LV_MAX_DIMS)
            luaL_argerror(L, 1, "too deeply nested (at most 8 dimensions)");
        shape[(*ndim)++] = (int64_t)luaL_len(L, -1);
        if (shape[*ndim - 1] == 0)
            break;
        lua_geti(L, -1, 1);
        lua_remove(L, -2);
    }
    lua_pop(L, 1);
}

static void nested_fill(lua_State *L, lv_tensor *t, int level, int64_t *index)
{
    int64_t n = (int64_t)luaL_len(L, -1);
    if (n != t->shape[level]) {
        char buf[128];
        luaL_error(L, "bad argument #1 to 'tensor' (ragged nesting: a row at "
                   "depth %d has %d entries where the shape %s wants %d)",
                   level + 1, (int)n,
                   lv_shape_format(buf, sizeof buf, t->ndim, t->shape),
                   (int)t->shape[level]);
    }
    for (int64_t i = 0; i < n; i++) {
        lua_geti(L, -1, i + 1);
        index[level] = i;
        if (level + 1 < t->ndim) {
            if (!lua_istable(L, -1))
                luaL_error(L, "bad argument #1 to 'tensor' (expected a table "
                           "at depth %d, got %s)", level + 2, luaL_typename(L, -1));
            nested_fill(L, t, level + 1, index);
        } else {
            int isnum;
            double v = lua_tonumberx(L, -1, &isnum);
            if (!isnum)
                luaL_error(L, "bad argument #1 to 'tensor' (expected a number "
                           "at depth %d, got %s)", level + 1, luaL_typename(L, -1));
            lv_tensor_set_index(t, index, v);
        }
        lua_pop(L, 1);
    }
}

static int tensor_from_table(lua_State *L)
{
    lv_dtype dtype = lv_lua_opt_dtype(L, 2, LV_DTYPE_F32);
    if (lua_type(L, 1) == LUA_TNUMBER) {
        lv_lua_push_tensor(L, lv_tensor_full(dtype, 0, NULL, lua_tonumber(L, 1)),
                           "tensor");
        return 1;
    }
    if (lv_lua_test_tensor(L, 1)) {    /* a copy in the given dtype */
        lv_tensor *x = lv_lua_check_tensor(L, 1);
        lv_tensor *y = lv_tensor_empty(lv_lua_opt_dtype(L, 2, x->dtype),
                                       x->ndim, x->shape);
        if (y)
            lv_copy_strided(y, x);
        lv_lua_push_tensor(L, y, "tensor");
        return 1;
    }
    luaL_argexpected(L, lua_istable(L, 1), 1, "table of numbers");
    int ndim;
    int64_t shape[LV_MAX_DIMS], index[LV_MAX_DIMS];
    nested_shape(L, 1, &ndim, shape);
    lv_tensor *t = lv_tensor_empty(dtype, ndim, shape);
    lv_lua_push_tensor(L, t, "tensor");
    lua_pushvalue(L, 1);
    if (ndim > 0)
        nested_fill(L, t, 0, index);
    lua_pop(L, 1);
    return 1;
}

/* ---- conversion back to Lua ------------------------------------------ */

static void push_nested(lua_State *L, const lv_tensor *t, int level,
                        int64_t *linear)
{
    if (level == t->ndim) {
        lua_pushnumber(L, lv_tensor_get_linear(t, (*linear)++));
        return;
    }
    lua_createtable(L, (int)t->shape[level], 0);
    for (int64_t i = 0; i < t->shape[level]; i++) {
        push_nested(L, t, level + 1, linear);
        lua_seti(L, -2, i + 1);
    }
}

static int tensor_totable(lua_State *L)
{
    lv_tensor *t = lv_lua_check_tensor(L, 1);
    int64_t linear = 0;
    push_nested(L, t, 0, &linear);
    return 1;
}

static int tensor_item(lua_State *L)
{
    lv_tensor *t = lv_lua_check_tensor(L, 1);
    if (lv_tensor_numel(t) != 1) {
        char buf[128];
        return luaL_error(L, "bad argument #1 to 'item' (expected a tensor of "
                          "one element, got shape %s)",
                          lv_shape_format(buf, sizeof buf, t->ndim, t->shape));
    }
    lua_pushnumber(L, lv_tensor_get_linear(t, 0));
    return 1;
}

/* ---- geometry queries ------------------------------------------------ */

/* x:size() and x:stride(): per_dim[d] for the dim given as argument 2,
 * else all of per_dim (t->shape or t->stride) as a list. */
static int push_per_dim(lua_State *L, const lv_tensor *t, const int64_t *per_dim)
{
    if (!lua_isnoneornil(L, 2)) {
        int d = lv_lua_check_dim(L, 2, t->ndim);
        lua_pushinteger(L, per_dim[d]);
        return 1;
    }
    lua_createtable(L, t->ndim, 0);
    for (int i = 0; i < t->ndim; i++) {
        lua_pushinteger(L, per_dim[i]);
        lua_seti(L, -2, i + 1);
    }
    return 1;
}

static int tensor_size(lua_State *L)
{
    lv_tensor *t = lv_lua_check_tensor(L, 1);
    return push_per_dim(L, t, t->shape);
}

static int tensor_stride(lua_State *L)
{
    lv_tensor *t = lv_lua_check_tensor(L, 1);
    return push_per_dim(L, t, t->stride);
}

static int tensor_dim(lua_State *L)
{
    lua_pushinteger(L, lv_lua_check_tensor(L, 1)->ndim);
    return 1;
}

static int tensor_numel(lua_State *L)
{
    lua_pushinteger(L, lv_tensor_numel(lv_lua_check_tensor(L, 1)));
    return 1;
}

static int tensor_dtype(lua_State *L)
{
    lua_pushstring(L, lv_dtype_name(lv_lua_check_tensor(L, 1)->dtype));
    return 1;
}

static int tensor_is_contiguous(lua_State *L)
{
    lua_pushboolean(L, lv_tensor_is_contiguous(lv_lua_check_tensor(L, 1)));
    return 1;
}

static int tensor_len(lua_State *L)
{
    lv_tensor *t = lv_lua_check_tensor(L, 1);
    lua_pushinteger(L, t->ndim ? t->shape[0] : 0);
    return 1;
}

/* A freed (closed) tensor is still a tensor: what is done with it raises. */
static int tensor_is_tensor(lua_State *L)
{
    lua_pushboolean(L, luaL_testudata(L, 1, LV_TENSOR_MT) != NULL);
    return 1;
}

/* ---- in-place writes -------------------------------------------------- */

static void bump_version(lv_tensor *t) { t->storage->version++; }

static int tensor_fill_(lua_State *L)
{
    lv_tensor *t = lv_lua_check_tensor(L, 1);
    double v = luaL_checknumber(L, 2);
    lv_lua_check_writable(L, t, "fill_");
    lv_tensor *src = lv_tensor_full(t->dtype, 0, NULL, v);
    if (!src)
        return lv_lua_raise(L, "fill_");
    lv_copy_strided(t, src);
    lv_tensor_release(src);
    bump_version(t);
    lua_settop(L, 1);
    return 1;
}

static int tensor_zero_(lua_State *L)
{
    lua_settop(L, 1);
    lua_pushnumber(L, 0);
    return tensor_fill_(L);
}

/* copy_(src): values of src (any dtype, broadcastable to self's shape). */
static int tensor_copy_(lua_State *L)
{
    lv_tensor *t = lv_lua_check_tensor(L, 1);
    lv_tensor *src = lv_lua_check_tensor(L, 2);
    lv_lua_check_writable(L, t, "copy_");
    int64_t shape[LV_MAX_DIMS];
    int ndim = lv_broadcast_shape("copy_", t, src, shape);
    if (ndim < 0 || ndim != t->ndim ||
        memcmp(shape, t->shape, sizeof(int64_t) * (size_t)ndim) != 0) {
        char a[128], b[128];
        return luaL_error(L, "bad argument #1 to 'copy_' (source shape %s does "
                          "not fit destination shape %s)",
                          lv_shape_format(a, sizeof a, src->ndim, src->shape),
                          lv_shape_format(b, sizeof b, t->ndim, t->shape));
    }
    lv_copy_strided(t, src);
    bump_version(t);
    lua_settop(L, 1);
    return 1;
}

/* ---- indexing: x[i] reads a slice; x[i] = v writes one --------------- */

static lv_tensor *select_first(lua_State *L, lv_tensor *t, int key_idx)
{
    int isint;
    lua_Integer i = lua_tointegerx(L, key_idx, &isint);
    if (!isint)
        luaL_error(L, "index %s is not an integer",
                   luaL_tolstring(L, key_idx, NULL));
    if (t->ndim == 0)
        luaL_error(L, "cannot index a 0-dim tensor (use :item())");
    int64_t n = t->shape[0];
    if (i < 0)
        i += n + 1;
    if (i < 1 || i > n)
        luaL_error(L, "index %I out of range for dimension 1 of size %I",
                   lua_tointeger(L, key_idx), (lua_Integer)n);
    lv_op_params p = {.dim = 0, .start = i - 1};
    return lv_apply1(LV_OP_SELECT, 1, &t, &p);
}

static int tensor_index(lua_State *L)
{
    if (lua_type(L, 2) == LUA_TNUMBER) {
        lv_tensor *t = lv_lua_check_tensor(L, 1);
        lv_lua_push_tensor(L, select_first(L, t, 2), "index");
        return 1;
    }
    lua_pushvalue(L, 2);
    if (lua_gettable(L, lua_upvalueindex(1)) != LUA_TNIL)   /* a method */
        return 1;
    if (lua_type(L, 2) == LUA_TSTRING) {
        lv_tensor *t = lv_lua_check_tensor(L, 1);
        if (lv_lua_tensor_property(L, t, lua_tostring(L, 2)))
            return 1;
    }
    lua_pushnil(L);
    return 1;
}

static int tensor_newindex(lua_State *L)
{
    lv_tensor *t = lv_lua_check_tensor(L, 1);
    if (lua_type(L, 2) == LUA_TSTRING &&
        lv_lua_tensor_set_property(L, t, lua_tostring(L, 2), 3))
        return 0;
    if (lua_type(L, 2) != LUA_TNUMBER)
        return luaL_error(L, "cannot set field '%s' of a tensor (only .grad "
                          "and numeric indices can be set)",
                          luaL_tolstring(L, 2, NULL));
    lv_tensor *slot = select_first(L, t, 2);
    lv_lua_push_tensor(L, slot, "index");
    lua_replace(L, 1);
    lua_remove(L, 2);     /* stack: slot, value */
    return lv_lua_test_tensor(L, 2) ? tensor_copy_(L) : tensor_fill_(L);
}

/* ---- registration ---------------------------------------------------- */

static const luaL_Reg tensor_functions[] = {
    {"zeros", tensor_zeros},
    {"ones", tensor_ones},
    {"full", tensor_full},
    {"eye", tensor_eye},
    {"arange", tensor_arange},
    {"linspace", tensor_linspace},
    {"tensor", tensor_from_table},
    {"is_tensor", tensor_is_tensor},
    {NULL, NULL}
};

static const luaL_Reg tensor_methods[] = {
    {"zeros_like", tensor_zeros_like},
    {"ones_like", tensor_ones_like},
    {"full_like", tensor_full_like},
    {"empty_like", tensor_empty_like},
    {"totable", tensor_totable},
    {"item", tensor_item},
    {"size", tensor_size},
    {"stride", tensor_stride},
    {"dim", tensor_dim},
    {"numel", tensor_numel},
    {"dtype", tensor_dtype},
    {"is_contiguous", tensor_is_contiguous},
    {"fill_", tensor_fill_},
    {"zero_", tensor_zero_},
    {"copy_", tensor_copy_},
    {NULL, NULL}
};

static int memory_stats(lua_State *L)
{
    lua_createtable(L, 0, 3);
    lua_pushinteger(L, (lua_Integer)lv_alloc_live_bytes());
    lua_setfield(L, -2, "live_bytes");
    lua_pushinteger(L, (lua_Integer)lv_alloc_cached_bytes());
    lua_setfield(L, -2, "cached_bytes");
    lua_pushinteger(L, (lua_Integer)lv_lua_gc_threshold());
    lua_setfield(L, -2, "gc_threshold");
    lua_pushinteger(L, (lua_Integer)lv_alloc_peak_bytes());
    lua_setfield(L, -2, "peak_bytes");
    return 1;
}

static int memory_trim(lua_State *L)
{
    (void)L;
    lv_alloc_trim();
    return 0;
}

static int memory_reset_peak(lua_State *L)
{
    (void)L;
    lv_alloc_reset_peak();
    return 0;
}

void lv_open_tensor(lua_State *L)
{
    lv_lua_register(L, tensor_functions, 0);
    lv_lua_register(L, tensor_methods, 1);
    static const luaL_Reg memory[] = {
        {"memory_stats", memory_stats},
        {"memory_trim", memory_trim},
        {"memory_reset_peak", memory_reset_peak},
        {NULL, NULL}
    };
    lv_lua_register(L, memory, 0);

    /* The metatable: __index looks up methods (upvalue), or selects. */
    luaL_newmetatable(L, LV_TENSOR_MT);
    lua_pushvalue(L, -2);
    lua_pushcclosure(L, tensor_index, 1);
    lua_setfield(L, -2, "__index");
    static const luaL_Reg meta[] = {
        {"__newindex", tensor_newindex},
        {"__len", tensor_len},
        {"__gc", tensor_release},
        {"__close", tensor_release},
        {NULL, NULL}
    };
    luaL_setfuncs(L, meta, 0);
    lua_pop(L, 1);
}
