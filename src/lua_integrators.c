/*
 * lua_integrators.c -- integrators as Lua userdata ("lvae.Integrator"):
 *
 *   lv.integrators.leapfrog{...}  .qsl{...}  .qsl2{...}  .euler{...}
 *   lv.flows.planar{...}
 *   it:flow(z0, rho0, potential, K [, {create_graph}])
 *       -> zK, rhoK (nil without momentum), logdet [B], n_grad_evals, stats
 *       (stats.potential = U(zK) [B] when the flow has it: integrators.h)
 *   it:init_momentum(B [, K] [, gen])   it:temperature0([K])
 *   it:step_size([k])   it:friction()   it:parameters()
 *   it:state_dict()     it:load_state_dict(t)   it:kind()   it:dim()
 *   it:has_momentum()   tostring(it)
 *
 * The potential is a Lua function z [B, d] -> U [B]; it is called through
 * lua_pcall so that an error inside it unwinds the C flow cleanly, and its
 * gradient is taken here with the tape. Not here: the steps
 * (integrators.c).
 */
#include <math.h>
#include <string.h>

#include "autograd.h"
#include "integrators.h"
#include "iter.h"
#include "lua_common.h"
#include "rng.h"

#define INTEGRATOR_MT "lvae.Integrator"

static const char *const kind_names[] = {"leapfrog", "qsl", "qsl2", "euler",
                                         "planar"};

static lv_integrator *check_integrator(lua_State *L, int idx)
{
    lv_integrator **box = luaL_checkudata(L, idx, INTEGRATOR_MT);
    if (!*box)
        luaL_argerror(L, idx, "integrator has been freed");
    return *box;
}

static int integrator_gc(lua_State *L)
{
    lv_integrator **box = luaL_checkudata(L, 1, INTEGRATOR_MT);
    lv_integrator_free(*box);
    *box = NULL;
    return 0;
}

/* ---- options ------------------------------------------------------------- */

static const char *const common_options[] = {
    "dim", "step", "max_step", "friction", "learn", "per_step", "K", "noise",
    "dtype", "clip_force", NULL};

static int is_known(const char *key, const char *const *lists[])
{
    for (int l = 0; lists[l]; l++)
        for (const char *const *k = lists[l]; *k; k++)
            if (strcmp(key, *k) == 0)
                return 1;
    return 0;
}

/* Refuses an unknown option, naming the valid ones. */
static void check_option_names(lua_State *L, const char *kind,
                               const char *const *lists[])
{
    lua_pushnil(L);
    while (lua_next(L, 1)) {
        if (lua_type(L, -2) != LUA_TSTRING || !is_known(lua_tostring(L, -2), lists)) {
            const char *key = luaL_tolstring(L, -2, NULL);
            luaL_Buffer b;
            luaL_buffinit(L, &b);
            int first = 1;
            for (int l = 0; lists[l]; l++)
                for (const char *const *k = lists[l]; *k; k++) {
                    luaL_addstring(&b, first ? "" : ", ");
                    luaL_addstring(&b, *k);
                    first = 0;
                }
            luaL_pushresult(&b);
            luaL_error(L, "%s: unknown option '%s' (valid: %s)", kind, key,
                       lua_tostring(L, -1));
        }
        lua_pop(L, 1);
    }
}

/* The opt_* readers take the options table at index 1 (opt_bool: at idx)
 * and name `where` (the constructor, or "flow") in their errors. */
static double opt_number(lua_State *L, const char *where, const char *key,
                         double def)
{
    lua_getfield(L, 1, key);
    double v = def;
    if (!lua_isnil(L, -1)) {
        if (lua_type(L, -1) != LUA_TNUMBER)
            luaL_error(L, "%s: option '%s' must be a number, got %s", where,
                       key, luaL_typename(L, -1));
        v = lua_tonumber(L, -1);
    }
    lua_pop(L, 1);
    return v;
}

static int opt_bool(lua_State *L, const char *where, int idx, const char *key,
                    int def)
{
    lua_getfield(L, idx, key);
    if (!lua_isnil(L, -1) && !lua_isboolean(L, -1))
        luaL_error(L, "%s: option '%s' must be a boolean, got %s", where, key,
                   luaL_typename(L, -1));
    int v = lua_isnil(L, -1) ? def : lua_toboolean(L, -1);
    lua_pop(L, 1);
    return v;
}

/* The largest latent dimension and step count the core's int fields take
 * (opt_positive_int's bound for K as well). */
#define MAX_DIM (1 << 24)
#define MAX_STEPS 100000

static int opt_positive_int(lua_State *L, const char *where, const char *key,
                            int def)
{
    lua_getfield(L, 1, key);
    int v = def;
    if (!lua_isnil(L, -1)) {
        int isint;
        lua_Integer n = lua_tointegerx(L, -1, &isint);
        if (!isint || n < 1 || n > 100000)
            luaL_error(L, "%s: option '%s' must be a positive integer up to "
                       "100000, got %s", where, key, luaL_tolstring(L, -1, NULL));
        v = (int)n;
    }
    lua_pop(L, 1);
    return v;
}

static const char *opt_string(lua_State *L, const char *where, const char *key,
                              const char *def)
{
    lua_getfield(L, 1, key);
    const char *v = def;
    if (!lua_isnil(L, -1)) {
        if (lua_type(L, -1) != LUA_TSTRING)
            luaL_error(L, "%s: option '%s' must be a string, got %s", where,
                       key, luaL_typename(L, -1));
        v = lua_tostring(L, -1);    /* the options table keeps it alive */
    }
    lua_pop(L, 1);
    return v;
}

static const char *const leapfrog_options[] = {"tempering", "T0", "alpha", "cache",
                                               NULL};
static const char *const qsl_options[] = {"init_temperature", NULL};
static const char *const euler_options[] = {"kind", NULL};
static const char *const planar_options[] = {"dim", "K", "amortized", "dtype", NULL};
static const char *const learn_keys[] = {"step", "friction", "temperature", NULL};

static int make_integrator(lua_State *L, lv_integrator_kind kind)
{
    const char *name = kind_names[kind];
    luaL_checktype(L, 1, LUA_TTABLE);
    const char *const *extra = kind == LV_INTEGRATOR_LEAPFROG ? leapfrog_options
                             : kind == LV_INTEGRATOR_EULER ? euler_options
                             : kind == LV_INTEGRATOR_PLANAR ? NULL : qsl_options;
    const char *const *lists[3] = {kind == LV_INTEGRATOR_PLANAR ? planar_options
                                                                 : common_options,
                                   extra, NULL};
    check_option_names(L, name, lists);

    lua_getfield(L, 1, "dim");
    int isint;
    lua_Integer dim = lua_tointegerx(L, -1, &isint);
    /* the core keeps dims as int: refuse rather than truncate */
    if (!isint || dim < 1 || dim > MAX_DIM)
        return luaL_error(L, "%s: option 'dim' (the latent dimension) must be a "
                          "positive integer up to %d", name, MAX_DIM);
    lua_pop(L, 1);
    lua_getfield(L, 1, "dtype");
    lv_dtype dtype = lv_lua_opt_dtype(L, -1, LV_DTYPE_F32);
    lua_pop(L, 1);

    /* The box first, so that the integrator is owned before anything can
     * raise. */
    lv_integrator **box = lua_newuserdatauv(L, sizeof *box, 0);
    *box = NULL;
    luaL_setmetatable(L, INTEGRATOR_MT);
    lv_integrator *it = lv_integrator_new(kind, (int)dim, dtype);
    if (!it)
        return lv_lua_raise(L, name);
    *box = it;

    it->amortized = kind == LV_INTEGRATOR_PLANAR && opt_bool(L, name, 1, "amortized", 0);
    int per_step = opt_bool(L, name, 1, "per_step", 0);
    int K = opt_positive_int(L, name, "K", 1);
    it->per_step = per_step;
    it->steps = K;
    it->max_step = opt_number(L, name, "max_step", 0.5);
    double h0 = opt_number(L, name, "step", 0.2);
    double gamma0 = opt_number(L, name, "friction", 0.5);
    if (!(it->max_step > 0) || !isfinite(it->max_step))
        return luaL_error(L, "%s: max_step must be a positive number", name);
    if (kind != LV_INTEGRATOR_PLANAR) {
        if (!(h0 > 0))
            return luaL_error(L, "%s: step must be > 0, got %f", name, h0);
        if (h0 >= it->max_step)
            return luaL_error(L, "%s: step %f must be below max_step %f (h = "
                              "max_step * sigmoid(a))", name, h0, it->max_step);
        if (gamma0 < 0 || !isfinite(gamma0))
            return luaL_error(L, "%s: friction must be finite and >= 0, got %f",
                              name, gamma0);
    }
    int learn_step = 1, learn_temperature = 0;
    it->learn_friction = kind == LV_INTEGRATOR_QSL || kind == LV_INTEGRATOR_QSL2 ||
                         kind == LV_INTEGRATOR_EULER;
    lua_getfield(L, 1, "learn");
    if (!lua_isnil(L, -1)) {
        if (!lua_istable(L, -1))
            return luaL_error(L, "%s: option 'learn' must be a table like "
                              "{step = true, friction = false}", name);
        int idx = lua_gettop(L);
        lua_pushnil(L);
        while (lua_next(L, idx)) {
            const char *const *lk[2] = {learn_keys, NULL};
            if (lua_type(L, -2) != LUA_TSTRING || !is_known(lua_tostring(L, -2), lk))
                return luaL_error(L, "%s: unknown key '%s' in learn (valid: "
                                  "step, friction, temperature)", name,
                                  luaL_tolstring(L, -2, NULL));
            lua_pop(L, 1);
        }
        learn_step = opt_bool(L, name, idx, "step", 1);
        it->learn_friction = opt_bool(L, name, idx, "friction", it->learn_friction);
        learn_temperature = opt_bool(L, name, idx, "temperature", 0);
    }
    lua_pop(L, 1);
    if (kind == LV_INTEGRATOR_LEAPFROG)
        it->learn_friction = 0;     /* leapfrog has no friction */
    if (it->learn_friction && gamma0 == 0)
        return luaL_error(L, "%s: a learned friction is softplus(c) > 0; give "
                          "friction > 0 or learn = {friction = false}", name);
    it->noise = opt_bool(L, name, 1, "noise", it->noise);
    double clip = opt_number(L, name, "clip_force", 0);
    if (clip < 0 || !isfinite(clip))
        return luaL_error(L, "%s: clip_force must be a positive number", name);
    if (clip > 0 && kind == LV_INTEGRATOR_EULER)
        return luaL_error(L, "euler: clip_force is refused: a clipped force "
                          "has no Hessian where the clip bites, and the "
                          "log-determinant needs one");
    it->clip_force = clip;

    double t0 = 1;
    if (kind == LV_INTEGRATOR_LEAPFROG) {
        const char *tempering = opt_string(L, name, "tempering", "none");
        it->cache = opt_bool(L, name, 1, "cache", 1);
        if (strcmp(tempering, "none") == 0) {
            it->tempering = LV_TEMPERING_NONE;
        } else if (strcmp(tempering, "fixed") == 0) {
            it->tempering = LV_TEMPERING_FIXED;
            t0 = opt_number(L, name, "T0", 1.5);
        } else if (strcmp(tempering, "free") == 0) {
            it->tempering = LV_TEMPERING_FREE;
            t0 = opt_number(L, name, "alpha", 0.9);
        } else {
            return luaL_error(L, "leapfrog: unknown tempering '%s' (valid: none, "
                              "fixed, free)", tempering);
        }
    } else if (kind == LV_INTEGRATOR_QSL || kind == LV_INTEGRATOR_QSL2) {
        lua_getfield(L, 1, "init_temperature");
        if (lua_type(L, -1) == LUA_TNUMBER) {
            it->init_temperature = LV_INIT_TEMPERATURE_VALUE;
            t0 = lua_tonumber(L, -1);
        } else if (!lua_isnil(L, -1)) {
            const char *v = lua_tostring(L, -1);
            if (v && strcmp(v, "unit") == 0)
                it->init_temperature = LV_INIT_TEMPERATURE_UNIT;
            else if (v && strcmp(v, "matched") == 0)
                it->init_temperature = LV_INIT_TEMPERATURE_MATCHED;
            else
                return luaL_error(L, "%s: init_temperature must be \"unit\", "
                                  "\"matched\" or a number", name);
        }
        lua_pop(L, 1);
    } else if (kind == LV_INTEGRATOR_EULER) {
        const char *k = opt_string(L, name, "kind", "underdamped");
        if (strcmp(k, "overdamped") == 0) {
            it->overdamped = 1;
            it->learn_friction = 0;   /* no momentum: the friction is unused */
        }
        else if (strcmp(k, "underdamped") != 0)
            return luaL_error(L, "euler: kind must be \"underdamped\" or "
                              "\"overdamped\", got '%s'", k);
    }
    if (lv_integrator_init_params(it, h0, gamma0, t0, learn_step) < 0)
        return lv_lua_raise(L, name);
    if (it->temper && it->init_temperature == LV_INIT_TEMPERATURE_VALUE)
        it->temper->requires_grad = learn_temperature;
    return 1;
}

static int new_leapfrog(lua_State *L) { return make_integrator(L, LV_INTEGRATOR_LEAPFROG); }
static int new_qsl(lua_State *L) { return make_integrator(L, LV_INTEGRATOR_QSL); }
static int new_qsl2(lua_State *L) { return make_integrator(L, LV_INTEGRATOR_QSL2); }
static int new_euler(lua_State *L) { return make_integrator(L, LV_INTEGRATOR_EULER); }
static int new_planar(lua_State *L) { return make_integrator(L, LV_INTEGRATOR_PLANAR); }

/* ---- the potential, called from C -------------------------------------- */

typedef struct lua_potential {
    lua_State *L;
    int fn_idx;                       /* the Lua function's stack index */
    int error_ref;                    /* what the function raised (registry), or LUA_NOREF */
} lua_potential;

/* Runs at the top of the Lua stack under lua_pcall: U = potential(z). */
static int call_potential(lua_State *L)
{
    lua_pushvalue(L, 1);              /* the function */
    lua_pushvalue(L, 2);              /* z */
    lua_call(L, 1, 1);
    return 1;
}

static int potential_bridge(void *ctx, lv_tensor *z, int create_graph,
                            lv_tensor **U_out, lv_tensor **g_out)
{
    lua_potential *p = ctx;
    lua_State *L = p->L;
    int top = lua_gettop(L);
    lua_pushcfunction(L, call_potential);
    lua_pushvalue(L, p->fn_idx);
    lv_tensor **box = lv_lua_push_box(L);
    *box = z;
    lv_tensor_retain(z);
    if (lua_pcall(L, 2, 1, 0) != LUA_OK) {
        lv_error_set(3, "the potential raised an error");
        /* Kept to be raised again once the flow has unwound: an interrupt
         * (Ctrl-C) or an error object must reach the caller as it was. */
        if (p->error_ref == LUA_NOREF)
            p->error_ref = luaL_ref(L, LUA_REGISTRYINDEX);
        lua_settop(L, top);
        return -1;
    }
    lv_tensor *U = lv_lua_test_tensor(L, -1);
    char buf[128];
    if (!U || U->ndim != 1 || U->shape[0] != z->shape[0]) {
        lv_error_set(3, "the potential must return U of shape [%lld] (one "
                     "value per sample), got %s", (long long)z->shape[0],
                     U ? lv_shape_format(buf, sizeof buf, U->ndim, U->shape)
                       : luaL_typename(L, -1));
        lua_settop(L, top);
        return -1;
    }
    lv_tensor_retain(U);
    lua_settop(L, top);
    lv_tensor *g = NULL;
    if (U->requires_grad) {
        lv_tensor *ones = lv_tensor_full(U->dtype, 1, U->shape, 1.0);
        lv_backward_opts opts = {.create_graph = create_graph,
                                 .retain_graph = create_graph, .allow_unused = 1};
        int status = ones ? lv_backward(1, &U, &ones, 1, &z, &g, &opts) : -1;
        lv_tensor_release(ones);
        if (status < 0) {
            lv_tensor_release(U);
            return -1;
        }
    }
    if (!g)                           /* U does not depend on z */
        g = lv_tensor_zeros(z->dtype, z->ndim, z->shape);
    if (!g) {
        lv_tensor_release(U);
        return -1;
    }
    *U_out = U;
    *g_out = g;
    return 0;
}

/* ---- methods --------------------------------------------------------------- */

static int has_momentum(const lv_integrator *it)
{
    return it->kind != LV_INTEGRATOR_PLANAR &&
           !(it->kind == LV_INTEGRATOR_EULER && it->overdamped);
}

static void push_stats(lua_State *L, const lv_flow_stats *st, int n_evals)
{
    lua_createtable(L, 0, 5);
    lua_createtable(L, st->steps + 1, 0);
    for (int k = 0; k <= st->steps; k++) {
        lua_pushnumber(L, st->max_grad[k]);
        lua_seti(L, -2, k + 1);
    }
    lua_setfield(L, -2, "max_grad");
    lua_pushnumber(L, st->delta_hamiltonian);
    lua_setfield(L, -2, "delta_hamiltonian");
    if (st->nonfinite_step) {
        lua_pushinteger(L, st->nonfinite_step);
        lua_setfield(L, -2, "nonfinite_step");
        lua_pushinteger(L, st->nonfinite_sample);
        lua_setfield(L, -2, "nonfinite_sample");
    }
    lua_pushinteger(L, n_evals);
    lua_setfield(L, -2, "grad_evals");
}

/* it:flow(z0, rho0, potential, K [, {create_graph, params, gen}]) */
static int integrator_flow(lua_State *L)
{
    lv_integrator *it = check_integrator(L, 1);
    lv_tensor *z0 = lv_lua_check_tensor(L, 2);
    lv_tensor *rho0 = lua_isnil(L, 3) ? NULL : lv_lua_check_tensor(L, 3);
    luaL_checktype(L, 4, LUA_TFUNCTION);
    lua_Integer K = luaL_checkinteger(L, 5);
    luaL_argcheck(L, K >= 1, 5, "K must be at least 1");
    luaL_argcheck(L, K <= MAX_STEPS, 5, "K must be at most 100000");
    int create_graph = 0;
    lv_tensor *planar[3] = {NULL, NULL, NULL};
    int have_planar = 0;
    lv_generator *gen = NULL;
    if (!lua_isnoneornil(L, 6)) {
        luaL_checktype(L, 6, LUA_TTABLE);
        lua_pushnil(L);
        while (lua_next(L, 6)) {
            static const char *const flow_options[] = {"create_graph", "params",
                                                       "gen", NULL};
            const char *const *lists[2] = {flow_options, NULL};
            if (lua_type(L, -2) != LUA_TSTRING || !is_known(lua_tostring(L, -2), lists))
                return luaL_error(L, "flow: unknown option '%s' (valid: "
                                  "create_graph, params, gen)",
                                  luaL_tolstring(L, -2, NULL));
            lua_pop(L, 1);
        }
        create_graph = opt_bool(L, "flow", 6, "create_graph", 0);
        if (lua_getfield(L, 6, "gen") != LUA_TNIL) {
            gen = luaL_testudata(L, -1, LV_GENERATOR_MT);
            if (!gen)
                return luaL_error(L, "flow: option 'gen' must be a generator "
                                  "(lv.Generator(seed)), got %s", luaL_typename(L, -1));
        }
        lua_pop(L, 1);          /* argument 6 keeps the generator alive */
        if (lua_getfield(L, 6, "params") != LUA_TNIL) {
            static const char *const keys[3] = {"u", "w", "b"};
            luaL_argcheck(L, lua_istable(L, -1), 6, "params must be {u = ..., w = ..., b = ...}");
            for (int i = 0; i < 3; i++) {
                lua_getfield(L, -1, keys[i]);
                planar[i] = lv_lua_test_tensor(L, -1);
                if (!planar[i])
                    return luaL_error(L, "flow: params.%s must be a tensor", keys[i]);
                lua_pop(L, 1);        /* the params table keeps it alive */
            }
            have_planar = 1;
        }
        lua_pop(L, 1);
    }
    /* Boxes for the results before the flow runs. */
    lv_tensor **boxes[3];
    for (int i = 0; i < 3; i++)
        boxes[i] = lv_lua_push_box(L);
    lua_potential ctx = {L, 4, LUA_NOREF};
    lv_flow_result res;
    if (lv_integrator_flow(it, z0, rho0, (int)K, potential_bridge, &ctx,
                           create_graph, have_planar ? planar : NULL, gen,
                           &res) < 0) {
        if (ctx.error_ref == LUA_NOREF)
            return lv_lua_raise(L, "flow");
        /* The potential's own error: a message keeps its text at the end
         * (the runner knows "interrupted!" by it), any other value is
         * raised unchanged. */
        lua_rawgeti(L, LUA_REGISTRYINDEX, ctx.error_ref);
        luaL_unref(L, LUA_REGISTRYINDEX, ctx.error_ref);
        if (lua_type(L, -1) == LUA_TSTRING)
            lua_pushfstring(L, "flow: the potential U raised an error: %s", lua_tostring(L, -1));
        return lua_error(L);
    }
    *boxes[0] = res.z;
    *boxes[1] = res.rho;
    *boxes[2] = res.logdet;
    res.z = res.rho = res.logdet = NULL;
    if (!*boxes[1]) {
        lua_pushnil(L);
        lua_replace(L, -3);
    }
    lua_pushinteger(L, res.n_grad_evals);
    push_stats(L, &res.stats, res.n_grad_evals);
    if (res.U_end) {
        lv_lua_push_tensor(L, res.U_end, "flow");
        res.U_end = NULL;
        lua_setfield(L, -2, "potential");
    }
    lv_flow_result_clear(&res);
    return 5;
}

/* it:init_momentum(B [, K] [, gen]): sqrt(T0) * N(0, I) [B, d]. */
static int integrator_init_momentum(lua_State *L)
{
    lv_integrator *it = check_integrator(L, 1);
    lua_Integer B = luaL_checkinteger(L, 2);
    luaL_argcheck(L, B >= 0, 2, "batch size is negative");
    lua_Integer K = luaL_testudata(L, 3, LV_GENERATOR_MT) ? it->steps
                                                          : luaL_optinteger(L, 3, it->steps);
    luaL_argcheck(L, K >= 0 && K <= MAX_STEPS, 3, "K must be 0 to 100000");
    lv_generator *gen = lua_isnoneornil(L, 4) ? NULL
                                              : luaL_checkudata(L, 4, LV_GENERATOR_MT);
    if (!gen)
        gen = luaL_testudata(L, 3, LV_GENERATOR_MT);
    if (!gen)
        gen = lv_generator_default();
    int64_t shape[2] = {B, it->dim};
    lv_tensor *eps = lv_tensor_empty(it->dtype, 2, shape);
    lv_lua_push_tensor(L, eps, "init_momentum");
    if (B > 0 && lv_rng_normal_rows(gen, it->dtype, lv_tensor_data(eps), B, it->dim,
                                    0.0, 1.0) != 0)
        return lv_lua_raise(L, "init_momentum");
    lv_tensor *T0 = lv_integrator_temperature0(it, (int)K);
    if (!T0)
        return lv_lua_raise(L, "init_momentum");
    lv_tensor *scale = lv_unary(LV_OP_SQRT, T0);
    lv_tensor_release(T0);
    lv_tensor *rho = scale ? lv_binary(LV_OP_MUL, eps, scale) : NULL;
    lv_tensor_release(scale);
    lv_lua_push_tensor(L, rho, "init_momentum");
    return 1;
}

static int integrator_temperature0(lua_State *L)
{
    lv_integrator *it = check_integrator(L, 1);
    lua_Integer K = luaL_optinteger(L, 2, it->steps);
    luaL_argcheck(L, K >= 0 && K <= MAX_STEPS, 2, "K must be 0 to 100000");
    lv_lua_push_tensor(L, lv_integrator_temperature0(it, (int)K), "temperature0");
    return 1;
}

static int integrator_step_size(lua_State *L)
{
    lv_integrator *it = check_integrator(L, 1);
    if (!it->step_logit)
        return luaL_error(L, "step_size: %s has no step size",
                          kind_names[it->kind]);
    lua_Integer k = luaL_optinteger(L, 2, 1);
    luaL_argcheck(L, k >= 1 && k <= MAX_STEPS && (!it->per_step || k <= it->steps),
                  2, "step index out of range");
    lv_lua_push_tensor(L, lv_integrator_step_size(it, (int)k - 1), "step_size");
    return 1;
}

static int integrator_friction(lua_State *L)
{
    lv_integrator *it = check_integrator(L, 1);
    /* leapfrog keeps a friction tensor it never uses (HVAE's flow is
     * frictionless): asking for it is a mistake */
    if (!it->friction || it->kind == LV_INTEGRATOR_LEAPFROG)
        return luaL_error(L, "friction: %s has no friction", kind_names[it->kind]);
    lv_lua_push_tensor(L, lv_integrator_gamma(it), "friction");
    return 1;
}

/* The named tensors of an integrator, learned or not. */
static int named_tensors(const lv_integrator *it, const char **names,
                         lv_tensor **tensors)
{
    int n = 0;
    const char *all[] = {"step_logit", "friction", "temper", "planar_u",
                         "planar_w", "planar_b"};
    lv_tensor *ts[] = {it->step_logit, it->friction, it->temper, it->planar_u,
                       it->planar_w, it->planar_b};
    for (int i = 0; i < 6; i++)
        if (ts[i]) {
            names[n] = all[i];
            tensors[n++] = ts[i];
        }
    return n;
}

static int integrator_parameters(lua_State *L)
{
    lv_integrator *it = check_integrator(L, 1);
    const char *names[6];
    lv_tensor *ts[6];
    int n = named_tensors(it, names, ts);
    lua_newtable(L);
    int j = 0;
    for (int i = 0; i < n; i++) {
        if (!ts[i]->requires_grad)
            continue;
        lv_tensor_retain(ts[i]);
        lv_lua_push_tensor(L, ts[i], "parameters");
        lua_seti(L, -2, ++j);
    }
    return 1;
}

static int integrator_state_dict(lua_State *L)
{
    lv_integrator *it = check_integrator(L, 1);
    const char *names[6];
    lv_tensor *ts[6];
    int n = named_tensors(it, names, ts);
    lua_newtable(L);
    for (int i = 0; i < n; i++) {
        lv_lua_push_tensor(L, lv_tensor_detach(ts[i]), "state_dict");
        lua_setfield(L, -2, names[i]);
    }
    return 1;
}

static int integrator_load_state_dict(lua_State *L)
{
    lv_integrator *it = check_integrator(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    const char *names[6];
    lv_tensor *ts[6];
    int n = named_tensors(it, names, ts);
    for (int i = 0; i < n; i++) {       /* check everything first */
        lua_getfield(L, 2, names[i]);
        lv_tensor *v = lv_lua_test_tensor(L, -1);
        if (!v)
            return luaL_error(L, "load_state_dict: '%s' is missing or not a "
                              "tensor", names[i]);
        if (v->ndim != ts[i]->ndim ||
            memcmp(v->shape, ts[i]->shape, sizeof(int64_t) * (size_t)v->ndim)) {
            char a[128], b[128];
            return luaL_error(L, "load_state_dict: '%s' has shape %s, the "
                              "integrator's is %s", names[i],
                              lv_shape_format(a, sizeof a, v->ndim, v->shape),
                              lv_shape_format(b, sizeof b, ts[i]->ndim, ts[i]->shape));
        }
        lua_pop(L, 1);
    }
    for (int i = 0; i < n; i++) {
        lua_getfield(L, 2, names[i]);
        lv_copy_strided(ts[i], lv_lua_test_tensor(L, -1));
        ts[i]->storage->version++;
        lua_pop(L, 1);
    }
    lua_settop(L, 1);
    return 1;
}

static int integrator_kind(lua_State *L)
{
    lua_pushstring(L, kind_names[check_integrator(L, 1)->kind]);
    return 1;
}

static int integrator_dim(lua_State *L)
{
    lua_pushinteger(L, check_integrator(L, 1)->dim);
    return 1;
}

static int integrator_amortized(lua_State *L)
{
    lua_pushboolean(L, check_integrator(L, 1)->amortized);
    return 1;
}

static int integrator_has_momentum(lua_State *L)
{
    lua_pushboolean(L, has_momentum(check_integrator(L, 1)));
    return 1;
}

/* A [d] (or [K, d]) tensor's values, abbreviated: "0.2, 0.2, ... (64)". */
static void add_values(luaL_Buffer *b, lua_State *L, lv_tensor *t)
{
    int64_t n = lv_tensor_numel(t);
    for (int64_t i = 0; i < n && i < 4; i++) {
        lua_pushfstring(L, "%s%f", i ? ", " : "", lv_tensor_get_linear(t, i));
        luaL_addvalue(b);
    }
    if (n > 4) {
        lua_pushfstring(L, ", ... (%d values)", (int)n);
        luaL_addvalue(b);
    }
}

static int integrator_tostring(lua_State *L)
{
    lv_integrator *it = check_integrator(L, 1);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    lua_pushfstring(L, "%s integrator, dim %d, %s", kind_names[it->kind], it->dim,
                    lv_dtype_name(it->dtype));
    luaL_addvalue(&b);
    int mode = lv_grad_set_enabled(0);
    if (it->step_logit) {
        luaL_addstring(&b, "\n  step sizes h: ");
        for (int k = 0; k < (it->per_step ? it->steps : 1); k++) {
            lv_tensor *h = lv_integrator_step_size(it, k);
            if (h) {
                if (it->per_step) {
                    lua_pushfstring(L, "%s[step %d] ", k ? "; " : "", k + 1);
                    luaL_addvalue(&b);
                }
                add_values(&b, L, h);
                lv_tensor_release(h);
            }
        }
        lua_pushfstring(L, " (max %f%s)", it->max_step,
                        it->step_logit->requires_grad ? ", learned" : "");
        luaL_addvalue(&b);
    }
    if (it->friction && it->kind != LV_INTEGRATOR_LEAPFROG) {
        lv_tensor *gamma = lv_integrator_gamma(it);
        luaL_addstring(&b, "\n  friction gamma: ");
        if (gamma) {
            add_values(&b, L, gamma);
            lv_tensor_release(gamma);
        }
        luaL_addstring(&b, it->learn_friction ? " (learned)" : " (fixed)");
        lua_pushfstring(L, "\n  noise: %s", it->noise ? "on" : "off");
        luaL_addvalue(&b);
    }
    if (it->kind == LV_INTEGRATOR_LEAPFROG) {
        static const char *const t[] = {"none", "fixed", "free"};
        lua_pushfstring(L, "\n  tempering: %s; force cached: %s", t[it->tempering],
                        it->cache ? "yes" : "no");
        luaL_addvalue(&b);
        if (it->tempering != LV_TEMPERING_NONE) {
            luaL_addstring(&b, "\n  alpha_k: ");
            for (int k = 1; k <= it->steps; k++) {
                lv_tensor *a = lv_integrator_alpha(it, k, it->steps);
                if (a) {
                    lua_pushfstring(L, "%s%f", k > 1 ? ", " : "", lv_tensor_get_linear(a, 0));
                    luaL_addvalue(&b);
                }
                lv_tensor_release(a);
            }
        }
    }
    if (it->kind != LV_INTEGRATOR_PLANAR) {
        lv_tensor *T0 = lv_integrator_temperature0(it, it->steps);
        if (T0) {
            luaL_addstring(&b, "\n  T0: ");
            add_values(&b, L, T0);
            lv_tensor_release(T0);
        }
    } else {
        lua_pushfstring(L, it->amortized ? "\n  amortized planar layers (u, w, b "
                        "from the encoder)" : "\n  %d planar layers", it->steps);
        luaL_addvalue(&b);
    }
    lv_grad_set_enabled(mode);
    luaL_pushresult(&b);
    return 1;
}

/* ---- registration ------------------------------------------------------------ */

void lv_open_integrators(lua_State *L)
{
    luaL_newmetatable(L, INTEGRATOR_MT);
    static const luaL_Reg methods[] = {
        {"flow", integrator_flow},
        {"init_momentum", integrator_init_momentum},
        {"temperature0", integrator_temperature0},
        {"step_size", integrator_step_size},
        {"friction", integrator_friction},
        {"parameters", integrator_parameters},
        {"state_dict", integrator_state_dict},
        {"load_state_dict", integrator_load_state_dict},
        {"kind", integrator_kind},
        {"dim", integrator_dim},
        {"has_momentum", integrator_has_momentum},
        {"amortized", integrator_amortized},
        {NULL, NULL}
    };
    luaL_newlib(L, methods);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, integrator_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, integrator_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pop(L, 1);

    static const luaL_Reg makers[] = {
        {"leapfrog", new_leapfrog},
        {"qsl", new_qsl},
        {"qsl2", new_qsl2},
        {"euler", new_euler},
        {NULL, NULL}
    };
    luaL_newlib(L, makers);
    lua_setfield(L, -3, "integrators");
    lua_newtable(L);
    lua_pushcfunction(L, new_planar);
    lua_setfield(L, -2, "planar");
    lua_setfield(L, -3, "flows");
}
