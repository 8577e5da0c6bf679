/*
 * lua_core.c -- luaopen_lvae_core: builds the module table and the tensor
 * method table, and lets each binding file register into them. The Lua
 * side (lua/lvae/init.lua) turns this into the public `lv` table. Also the
 * few process-wide utilities: a monotonic clock and the thread count.
 */
#ifdef _OPENMP
#include <omp.h>
#endif
#include <cblas.h>

#include "alloc.h"
#include "clock.h"
#include "lua_common.h"
#include "op.h"
#include "profile.h"

int luaopen_lvae_core(lua_State *L);

/* core._fail_allocation(n): the n-th allocation of the core from now
 * fails (0: none), for the tests that check every caller recovers;
 * core._allocations() -> count since then, whether it failed. */
static int util_fail_allocation(lua_State *L)
{
    lua_Integer n = luaL_checkinteger(L, 1);
    luaL_argcheck(L, n >= 0, 1, "n must be >= 0");
    lv_alloc_fail_at((long long)n);
    return 0;
}

static int util_allocations(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)lv_alloc_count());
    lua_pushboolean(L, lv_alloc_failed());
    return 2;
}

/* lv.clock(): monotonic seconds, for timing (os.clock is CPU time). */
static int util_clock(lua_State *L)
{
    lua_pushnumber(L, (lua_Number)lv_clock_seconds());
    return 1;
}

/* lv.num_threads() / lv.set_num_threads(n): the threads of the
 * elementwise kernels (OpenMP) and of BLAS. Elementwise results do not
 * depend on it; OpenBLAS's GEMMs may round differently at another count
 * (they split the work differently), as PyTorch's do. */
static int util_num_threads(lua_State *L)
{
#ifdef _OPENMP
    lua_pushinteger(L, omp_get_max_threads());
#else
    lua_pushinteger(L, 1);
#endif
    return 1;
}

static int util_set_num_threads(lua_State *L)
{
    lua_Integer n = luaL_checkinteger(L, 1);
    luaL_argcheck(L, n >= 1 && n <= 1024, 1, "thread count must be 1 to 1024");
#ifdef _OPENMP
    omp_set_num_threads((int)n);
#endif
    openblas_set_num_threads((int)n);
    return 0;
}

/* lv._profile_start(): counts every op from zero (profile.h).
 * lv._profile_stop() -> {op name = {calls, seconds, self_seconds,
 * elements, flops}} for the ops that ran. */
static int util_profile_start(lua_State *L)
{
    (void)L;
    lv_profile_enable(1);
    return 0;
}

static int util_profile_stop(lua_State *L)
{
    lv_profile_enable(0);
    lua_newtable(L);
    for (int op = 0; op < LV_OP_COUNT; op++) {
        lv_profile_row r = lv_profile_get((lv_op_id)op);
        if (r.calls == 0)
            continue;
        lua_createtable(L, 0, 4);
        lua_pushinteger(L, r.calls);
        lua_setfield(L, -2, "calls");
        lua_pushnumber(L, r.seconds);
        lua_setfield(L, -2, "seconds");
        lua_pushnumber(L, r.self_seconds);
        lua_setfield(L, -2, "self_seconds");
        lua_pushinteger(L, r.elements);
        lua_setfield(L, -2, "elements");
        lua_pushnumber(L, r.flops);
        lua_setfield(L, -2, "flops");
        lua_setfield(L, -2, lv_op_get((lv_op_id)op)->name);
    }
    return 1;
}

static const luaL_Reg util_functions[] = {
    {"_profile_start", util_profile_start},
    {"_profile_stop", util_profile_stop},
    {"clock", util_clock},
    {"_fail_allocation", util_fail_allocation},
    {"_allocations", util_allocations},
    {"num_threads", util_num_threads},
    {"set_num_threads", util_set_num_threads},
    {NULL, NULL}
};

int luaopen_lvae_core(lua_State *L)
{
    lua_newtable(L);                 /* the module */
    lua_newtable(L);                 /* tensor methods */
    lv_lua_register(L, util_functions, 0);
    lv_open_tensor(L);
    lv_open_ops(L);
    lv_open_linalg(L);
    lv_open_rng(L);
    lv_open_autograd(L);
    lv_open_integrators(L);
    lv_open_io(L);
    lv_open_checkpoint(L);
    lv_open_gather(L);
    lv_open_estimators(L);
    lv_open_nifti(L);
    lv_open_image(L);
    lv_open_optim(L);
    lv_open_lockfile(L);
    lv_open_digest(L);
    lv_open_signals(L);
    lv_open_mpi(L);
    lua_setfield(L, -2, "_methods");
    luaL_getmetatable(L, LV_TENSOR_MT);
    lua_setfield(L, -2, "_Tensor");
    return 1;
}
