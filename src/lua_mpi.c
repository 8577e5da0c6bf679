/*
 * lua_mpi.c -- lv.mpi: the processes of one job and their collectives
 * (src/distributed.c). Without Open MPI in the build, or before
 * lv.mpi.init(), the job is one process and every collective is the
 * identity, so that a script written for N ranks runs unchanged on one.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "distributed.h"
#include "error.h"
#include "lua_common.h"
#include "reducer.h"

static lv_dist_op check_op(lua_State *L, int idx)
{
    static const char *const names[] = {"sum", "max", "min", NULL};
    static const lv_dist_op ops[] = {LV_DIST_SUM, LV_DIST_MAX, LV_DIST_MIN};
    return ops[luaL_checkoption(L, idx, "sum", names)];
}

/* A tensor or a list of tensors at idx, into ts (up to max); returns n. */
static int check_tensor_list(lua_State *L, int idx, lv_tensor **ts, int max,
                             const char *fname)
{
    lv_tensor *t = lv_lua_test_tensor(L, idx);
    if (t) {
        ts[0] = t;
        return 1;
    }
    luaL_argexpected(L, lua_istable(L, idx), idx, "a tensor or a list of tensors");
    int n = (int)luaL_len(L, idx);
    if (n > max)
        luaL_error(L, "%s: at most %d tensors in one call (got %d)", fname, max, n);
    for (int i = 0; i < n; i++) {
        lua_geti(L, idx, i + 1);
        ts[i] = lv_lua_test_tensor(L, -1);
        lua_pop(L, 1);
        if (!ts[i])
            luaL_error(L, "%s: element %d of the list is not a tensor", fname, i + 1);
    }
    return n;
}

#define MAX_TENSORS 4096

/* Runs fn on the tensors at argument 1 (each writable), raising on error. */
static int in_place(lua_State *L, const char *fname, int (*fn)(lua_State *, lv_tensor **, int))
{
    lua_settop(L, 3);            /* the options stay at 2 and 3 */
    lv_tensor **ts = lua_newuserdatauv(L, sizeof(lv_tensor *) * MAX_TENSORS, 0);
    int n = check_tensor_list(L, 1, ts, MAX_TENSORS, fname);
    for (int i = 0; i < n; i++)
        lv_lua_check_writable(L, ts[i], fname);
    if (fn(L, ts, n) != 0)
        return lv_lua_raise(L, fname);
    lua_settop(L, 1);
    return 1;
}

static int do_allreduce(lua_State *L, lv_tensor **ts, int n)
{
    lv_dist_op op = check_op(L, 2);
    lua_Integer bucket = 0;
    static const char *const known[] = {"bucket_bytes", NULL};
    lv_lua_check_options(L, 3, known);
    if (!lua_isnoneornil(L, 3)) {
        if (lua_getfield(L, 3, "bucket_bytes") != LUA_TNIL) {
            int ok;
            bucket = lua_tointegerx(L, -1, &ok);
            luaL_argcheck(L, ok && bucket >= 0, 3,
                          "option 'bucket_bytes' must be an integer >= 0");
        }
        lua_pop(L, 1);
    }
    return lv_dist_allreduce(ts, n, op, (size_t)bucket);
}

static int do_broadcast(lua_State *L, lv_tensor **ts, int n)
{
    lua_Integer root = luaL_optinteger(L, 2, 0);
    luaL_argcheck(L, root >= 0 && root < INT32_MAX, 2, "root must be a rank");
    return lv_dist_broadcast(ts, n, (int)root);
}

/* lv.mpi.allreduce(t or {t...} [, op] [, {bucket_bytes}]) -> the argument */
static int mpi_allreduce(lua_State *L) { return in_place(L, "allreduce", do_allreduce); }
/* lv.mpi.broadcast(t or {t...} [, root]) -> the argument */
static int mpi_broadcast(lua_State *L) { return in_place(L, "broadcast", do_broadcast); }

static int mpi_allgather(lua_State *L)
{
    lv_tensor *t = lv_lua_check_tensor(L, 1);
    lv_lua_push_tensor(L, lv_dist_allgather(t), "allgather");
    return 1;
}

/* lv.mpi.allreduce_number(x [, op]) -> number; x may be a list of numbers,
 * giving a list. */
static int mpi_allreduce_number(lua_State *L)
{
    lv_dist_op op = check_op(L, 2);
    if (lua_isnumber(L, 1)) {
        double v = lua_tonumber(L, 1);
        if (lv_dist_allreduce_doubles(&v, 1, op) != 0)
            return lv_lua_raise(L, "allreduce_number");
        lua_pushnumber(L, v);
        return 1;
    }
    luaL_argexpected(L, lua_istable(L, 1), 1, "a number or a list of numbers");
    lua_Integer n = luaL_len(L, 1);
    luaL_argcheck(L, n <= 1 << 20, 1, "at most 2^20 numbers");
    double *v = lua_newuserdatauv(L, sizeof(double) * (size_t)(n ? n : 1), 0);
    for (lua_Integer i = 0; i < n; i++) {
        lua_geti(L, 1, i + 1);
        int ok;
        v[i] = lua_tonumberx(L, -1, &ok);
        if (!ok)
            return luaL_error(L, "allreduce_number: element %d is not a number", (int)i + 1);
        lua_pop(L, 1);
    }
    if (lv_dist_allreduce_doubles(v, (int)n, op) != 0)
        return lv_lua_raise(L, "allreduce_number");
    lua_createtable(L, (int)n, 0);
    for (lua_Integer i = 0; i < n; i++) {
        lua_pushnumber(L, v[i]);
        lua_seti(L, -2, i + 1);
    }
    return 1;
}

/* lv.mpi.allgather_string(s) -> {rank 0's s, rank 1's s, ...} */
static int mpi_allgather_string(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    int size = lv_dist_size();
    double *lens = lua_newuserdatauv(L, sizeof(double) * (size_t)size, 0);
    double mine = (double)len, longest = mine;
    if (lv_dist_allreduce_doubles(&longest, 1, LV_DIST_MAX) != 0
        || lv_dist_allgather_bytes(&mine, sizeof mine, lens) != 0)
        return lv_lua_raise(L, "allgather_string");
    size_t width = (size_t)longest;
    char *pad = lua_newuserdatauv(L, width + 1, 0);
    char *all = lua_newuserdatauv(L, (width + 1) * (size_t)size, 0);
    memset(pad, 0, width + 1);
    memcpy(pad, s, len);
    if (lv_dist_allgather_bytes(pad, width + 1, all) != 0)
        return lv_lua_raise(L, "allgather_string");
    lua_createtable(L, size, 0);
    for (int r = 0; r < size; r++) {
        lua_pushlstring(L, all + (size_t)r * (width + 1), (size_t)lens[r]);
        lua_seti(L, -2, r + 1);
    }
    return 1;
}

static int mpi_init(lua_State *L)
{
    if (lv_dist_init() != 0)
        return lv_lua_raise(L, "init");
    lua_pushinteger(L, lv_dist_rank());
    lua_pushinteger(L, lv_dist_size());
    return 2;
}

static int mpi_finalize(lua_State *L)
{
    if (lv_dist_finalize() != 0)
        return lv_lua_raise(L, "finalize");
    return 0;
}

static int mpi_barrier(lua_State *L)
{
    if (lv_dist_barrier() != 0)
        return lv_lua_raise(L, "barrier");
    return 0;
}

/* lv.mpi.abort([code]): stops every rank; the message is the caller's to
 * print first. */
static int mpi_abort(lua_State *L)
{
    lua_Integer code = luaL_optinteger(L, 1, 1);
    luaL_argcheck(L, code >= 0 && code <= 255, 1, "exit status must be 0 to 255");
    lv_dist_abort((int)code);
    return 0;
}

static int mpi_rank(lua_State *L)
{
    lua_pushinteger(L, lv_dist_rank());
    return 1;
}

static int mpi_size(lua_State *L)
{
    lua_pushinteger(L, lv_dist_size());
    return 1;
}

static int mpi_compiled(lua_State *L)
{
    lua_pushboolean(L, lv_dist_compiled());
    return 1;
}

static int mpi_launched(lua_State *L)
{
    lua_pushboolean(L, lv_dist_launched());
    return 1;
}

static int mpi_active(lua_State *L)
{
    lua_pushboolean(L, lv_dist_active());
    return 1;
}

/* lv.mpi.comm_stats() -> {seconds, allreduce_bytes} */
static int mpi_comm_stats(lua_State *L)
{
    lua_createtable(L, 0, 2);
    lua_pushnumber(L, lv_dist_comm_seconds());
    lua_setfield(L, -2, "seconds");
    lua_pushnumber(L, lv_dist_allreduce_bytes());
    lua_setfield(L, -2, "allreduce_bytes");
    return 1;
}

static int mpi_reset_comm_stats(lua_State *L)
{
    lv_dist_reset_counters();
    return 0;
}

/* ---- the gradient reducer ----------------------------------------------- */

#define REDUCER_MT "lvae.mpi.Reducer"

/* The userdata: the ready hook first (lua_common.h), so that lv.grad's
 * on_ready finds the callback; r is NULL once freed. */
typedef struct reducer_box {
    lv_lua_ready_hook hook;
    lv_reducer *r;
    int n;
} reducer_box;

static reducer_box *check_reducer(lua_State *L, int idx)
{
    reducer_box *box = luaL_checkudata(L, idx, REDUCER_MT);
    if (!box->r)
        luaL_argerror(L, idx, "the reducer has been freed");
    return box;
}

static int reducer_gc(lua_State *L)
{
    reducer_box *box = luaL_checkudata(L, 1, REDUCER_MT);
    lv_reducer_free(box->r);
    box->r = NULL;
    return 0;
}

/* lv.mpi.Reducer(params [, {bucket_bytes}]) -> reducer */
static int mpi_reducer_new(lua_State *L)
{
    static const char *const known[] = {"bucket_bytes", NULL};
    luaL_argexpected(L, lua_istable(L, 1) && !lv_lua_test_tensor(L, 1), 1, "a list of tensors");
    lv_lua_check_options(L, 2, known);
    lua_Integer bucket = 0;
    if (!lua_isnoneornil(L, 2)) {
        lua_getfield(L, 2, "bucket_bytes");
        if (!lua_isnil(L, -1)) {
            int ok;
            bucket = lua_tointegerx(L, -1, &ok);
            luaL_argcheck(L, ok && bucket >= 0, 2, "option 'bucket_bytes' must be an integer >= 0");
        }
        lua_pop(L, 1);
    }
    lua_Integer n = luaL_len(L, 1);
    luaL_argcheck(L, n <= 1 << 20, 1, "at most 2^20 parameters");
    lv_tensor **ps = lua_newuserdatauv(L, sizeof *ps * (size_t)(n ? n : 1), 0);
    for (lua_Integer i = 0; i < n; i++) {
        lua_geti(L, 1, i + 1);
        ps[i] = lv_lua_test_tensor(L, -1);
        lua_pop(L, 1);
        if (!ps[i])
            return luaL_error(L, "Reducer: element %d of the list is not a tensor", (int)i + 1);
    }
    reducer_box *box = lua_newuserdatauv(L, sizeof *box, 0);
    box->r = NULL;
    box->n = (int)n;
    luaL_setmetatable(L, REDUCER_MT);
    box->r = lv_reducer_new(ps, (int)n, (size_t)bucket);
    if (!box->r)
        return lv_lua_raise(L, "Reducer");
    box->hook.fn = lv_reducer_ready;
    box->hook.ctx = box->r;
    box->hook.buffer = lv_reducer_buffer;
    return 1;
}

/* r:begin([weight]): a new step, its gradients scaled by weight (1). */
static int reducer_begin(lua_State *L)
{
    reducer_box *box = check_reducer(L, 1);
    lua_Number w = luaL_optnumber(L, 2, 1);
    luaL_argcheck(L, w >= 0 && w <= 1, 2, "weight must lie in [0, 1] (this process's share of the rows)");
    lv_reducer_begin(box->r, (double)w);
    return 0;
}

/* r:ready(j, grad): gradient j (1-based) of this step is final. */
static int reducer_ready(lua_State *L)
{
    reducer_box *box = check_reducer(L, 1);
    lua_Integer j = luaL_checkinteger(L, 2);
    luaL_argcheck(L, j >= 1 && j <= box->n, 2, "not a parameter of this reducer");
    lv_reducer_ready(box->r, (int)j - 1, lv_lua_check_tensor(L, 3));
    return 0;
}

/* r:finish([views]) -> list of the combined gradients (nil where no
 * process had one): tensors of their own, or with views true, views of
 * the buckets that the next step overwrites. Every process calls it once
 * per step. */
static int reducer_finish(lua_State *L)
{
    reducer_box *box = check_reducer(L, 1);
    if (!lua_isnoneornil(L, 2))
        luaL_checktype(L, 2, LUA_TBOOLEAN);
    int views = lua_toboolean(L, 2);
    lua_settop(L, 1);
    lua_createtable(L, box->n, 0);
    lv_tensor ***slots = lua_newuserdatauv(L, sizeof *slots * (size_t)(box->n ? box->n : 1), 0);
    for (int j = 0; j < box->n; j++) {
        slots[j] = lv_lua_push_box(L);      /* boxed before anything can raise */
        lua_seti(L, -3, j + 1);
    }
    lv_tensor **out = lua_newuserdatauv(L, sizeof *out * (size_t)(box->n ? box->n : 1), 0);
    if (lv_reducer_finish(box->r, out, views) != 0)
        return lv_lua_raise(L, "finish");
    for (int j = 0; j < box->n; j++) {
        *slots[j] = out[j];
        if (!out[j]) {
            lua_pushnil(L);
            lua_seti(L, -4, j + 1);
        }
    }
    lua_pop(L, 2);
    return 1;
}

static int reducer_buckets(lua_State *L)
{
    lua_pushinteger(L, lv_reducer_buckets(check_reducer(L, 1)->r));
    return 1;
}

static void reducer_metatable(lua_State *L)
{
    static const luaL_Reg methods[] = {
        {"begin", reducer_begin}, {"ready", reducer_ready}, {"finish", reducer_finish},
        {"buckets", reducer_buckets}, {NULL, NULL}};
    if (luaL_newmetatable(L, REDUCER_MT)) {
        lua_pushcfunction(L, reducer_gc);
        lua_setfield(L, -2, "__gc");
        lua_pushboolean(L, 1);
        lua_setfield(L, -2, LV_READY_HOOK);
        luaL_newlib(L, methods);
        lua_setfield(L, -2, "__index");
        lua_pushstring(L, "lvae.mpi.Reducer");
        lua_setfield(L, -2, "__name");
    }
    lua_pop(L, 1);
}

static const luaL_Reg mpi_functions[] = {
    {"Reducer", mpi_reducer_new},
    {"compiled", mpi_compiled},
    {"launched", mpi_launched},
    {"init", mpi_init},
    {"active", mpi_active},
    {"finalize", mpi_finalize},
    {"rank", mpi_rank},
    {"size", mpi_size},
    {"allreduce", mpi_allreduce},
    {"broadcast", mpi_broadcast},
    {"allgather", mpi_allgather},
    {"allreduce_number", mpi_allreduce_number},
    {"allgather_string", mpi_allgather_string},
    {"barrier", mpi_barrier},
    {"abort", mpi_abort},
    {"comm_stats", mpi_comm_stats},
    {"reset_comm_stats", mpi_reset_comm_stats},
    {NULL, NULL}
};

void lv_open_mpi(lua_State *L)
{
    reducer_metatable(L);
    lua_newtable(L);
    luaL_setfuncs(L, mpi_functions, 0);
    lua_setfield(L, -3, "mpi");
}
