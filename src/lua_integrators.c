/*
 * lua_integrators.c -- integrators as Lua userdata ("lvae.Integrator"),
 * one constructor per record of integrator_kinds.c:
 *
 *   lv.integrators.leapfrog{...}  .qsl{...}  .qsl2{...}  .euler{...}
 *   .obabo{...}   lv.flows.planar{...}   lv.integrator_kinds()
 *   it:flow(z0, rho0, potential, K [, {create_graph}])
 *       -> zK, rhoK (nil without momentum), logdet [B], n_grad_evals, stats
 *       (stats.potential = U(zK) [B] when the flow has it: integrators.h)
 *   it:init_momentum(B [, K] [, gen])   it:temperature0([K])
 *   it:step_size([k])   it:friction()   it:parameters()
 *   it:state_dict()     it:load_state_dict(t)   it:kind()   it:dim()
 *   it:has_momentum()   tostring(it)
 *
 * Nothing here knows one kind from another: a constructor reads the
 * options its record lists (checking their Lua types here, their values
 * in the core), and the methods ask the record what the kind has.
 *
 * The potential is a Lua function z [B, d] -> U [B]; it is called through
 * lua_pcall so that an error inside it unwinds the C flow cleanly, and its
 * gradient is taken here with the tape. Not here: the steps
 * (integrator_kinds.c) and the flow (integrators.c).
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "autograd.h"
#include "integrators.h"
#include "iter.h"
#include "lua_common.h"
#include "rng.h"

#define INTEGRATOR_MT "lvae.Integrator"

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

/* The most options a kind may list, and the largest K a method takes
 * (the core's counts are int). */
#define MAX_OPTIONS 32
#define MAX_STEPS 100000

/* Refuses a key of the table at idx that is not in names (NULL-
 * terminated): "<where>: unknown <what> (known: a, b, c)", what a format
 * taking the key ("option '%s'"). The error names where (the integrator
 * or its method), as every other message of this file does. */
static void check_keys(lua_State *L, int idx, const char *where,
                       const char *const *names, const char *what)
{
    if (lv_lua_unknown_key(L, idx, names, what))
        luaL_error(L, "%s: %s", where, lua_tostring(L, -1));
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

/* The index of s in choices (NULL-terminated), or -1. */
static int choice_index(const char *s, const char *const *choices)
{
    for (int i = 0; s && choices[i]; i++)
        if (strcmp(s, choices[i]) == 0)
            return i;
    return -1;
}

/* learn = {step, friction, temperature}: which parameters are learned. */
static void read_learn(lua_State *L, const char *where, lv_integrator_options *o)
{
    static const char *const keys[] = {"step", "friction", "temperature", NULL};
    if (!lua_istable(L, -1))
        luaL_error(L, "%s: option 'learn' must be a table like {step = true, "
                   "friction = false}", where);
    int idx = lua_gettop(L);
    check_keys(L, idx, where, keys, "key '%s' in learn");
    o->learn_step = opt_bool(L, where, idx, "step", o->learn_step);
    o->learn_friction = opt_bool(L, where, idx, "friction", o->learn_friction);
    o->learn_temperature = opt_bool(L, where, idx, "temperature", o->learn_temperature);
}

/* Reads option opt from the table at index 1 into o, checking its Lua
 * type (its value is the core's to check). */
static void read_option(lua_State *L, const char *where,
                        const lv_integrator_option *opt, lv_integrator_options *o)
{
    char *slot = (char *)o + opt->offset;
    int present = lua_getfield(L, 1, opt->name) != LUA_TNIL;
    int isint, index;
    lua_Integer n;
    if (!present && !(opt->type == LV_OPTION_COUNT && opt->def == 0)) {
        lua_pop(L, 1);            /* the default stays */
        return;
    }
    switch (opt->type) {
    case LV_OPTION_COUNT:
        /* the core keeps counts as int: refuse rather than truncate */
        n = lua_tointegerx(L, -1, &isint);
        if (opt->def == 0 && (!isint || n < 1 || n > opt->max))
            luaL_error(L, "%s: option '%s' (%s) must be a positive integer up "
                       "to %d", where, opt->name, opt->doc, opt->max);
        if (!isint || n < 1 || n > opt->max)
            luaL_error(L, "%s: option '%s' must be a positive integer up to %d, "
                       "got %s", where, opt->name, opt->max, luaL_tolstring(L, -1, NULL));
        *(int *)slot = (int)n;
        break;
    case LV_OPTION_NUMBER:
        if (lua_type(L, -1) != LUA_TNUMBER)
            luaL_error(L, "%s: option '%s' must be a number, got %s", where,
                       opt->name, luaL_typename(L, -1));
        *(double *)slot = lua_tonumber(L, -1);
        break;
    case LV_OPTION_BOOLEAN:
        if (!lua_isboolean(L, -1))
            luaL_error(L, "%s: option '%s' must be a boolean, got %s", where,
                       opt->name, luaL_typename(L, -1));
        *(int *)slot = lua_toboolean(L, -1);
        break;
    case LV_OPTION_CHOICE:
        if (lua_type(L, -1) != LUA_TSTRING)
            luaL_error(L, "%s: option '%s' must be a string, got %s", where,
                       opt->name, luaL_typename(L, -1));
        /* fall through */
    case LV_OPTION_CHOICE_OR_NUMBER:
        if (opt->type == LV_OPTION_CHOICE_OR_NUMBER && lua_type(L, -1) == LUA_TNUMBER) {
            for (index = 0; opt->choices[index]; index++)
                ;                 /* after the names: "a number" */
            *(double *)(void *)((char *)o + opt->number_offset) = lua_tonumber(L, -1);
        } else {
            index = lua_type(L, -1) == LUA_TSTRING
                  ? choice_index(lua_tostring(L, -1), opt->choices) : -1;
            if (index < 0) {
                const char *s = lua_tostring(L, -1);
                luaL_error(L, "%s: %s", where, lua_pushfstring(L, opt->choice_error,
                                                               s ? s : luaL_typename(L, -1)));
            }
        }
        *(int *)slot = index;
        break;
    case LV_OPTION_DTYPE:
        *(lv_dtype *)slot = lv_lua_opt_dtype(L, -1, *(lv_dtype *)slot);
        break;
    case LV_OPTION_LEARN:
        read_learn(L, where, o);
        break;
    }
    lua_pop(L, 1);
}

/* lv.integrators.NAME{...} (lv.flows.NAME): the record is upvalue 1. */
static int integrator_new(lua_State *L)
{
    const lv_integrator_kind *kind = lua_touserdata(L, lua_upvalueindex(1));
    const char *name = kind->name;
    luaL_checktype(L, 1, LUA_TTABLE);
    const char *names[MAX_OPTIONS + 1];
    int n = 0;
    for (const lv_integrator_option *const *p = kind->options; *p; p++) {
        if (n == MAX_OPTIONS)
            return luaL_error(L, "%s: its record lists more than %d options "
                              "(MAX_OPTIONS, lua_integrators.c)", name, MAX_OPTIONS);
        names[n++] = (*p)->name;
    }
    names[n] = NULL;
    check_keys(L, 1, name, names, "option '%s'");
    lv_integrator_options o;
    lv_integrator_options_init(&o, kind);
    for (const lv_integrator_option *const *p = kind->options; *p; p++)
        read_option(L, name, *p, &o);

    /* Every option read: a box holding NULL, then the integrator in it. */
    lv_integrator **box = lua_newuserdatauv(L, sizeof *box, 0);
    *box = NULL;
    luaL_setmetatable(L, INTEGRATOR_MT);
    *box = lv_integrator_make(kind, &o);
    if (!*box)
        return lv_lua_raise(L, name);
    return 1;
}

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
        static const char *const flow_options[] = {"create_graph", "params", "gen",
                                                   NULL};
        luaL_checktype(L, 6, LUA_TTABLE);
        check_keys(L, 6, "flow", flow_options, "option '%s'");
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
        return luaL_error(L, "step_size: %s has no step size", it->kind->name);
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
    if (!it->friction || !it->kind->has_friction)
        return luaL_error(L, "friction: %s has no friction", it->kind->name);
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
        if (!lv_same_shape(v, ts[i])) {
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
    lua_pushstring(L, check_integrator(L, 1)->kind->name);
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
    lua_pushboolean(L, check_integrator(L, 1)->momentum);
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
    const lv_integrator_kind *kind = it->kind;
    lua_pushfstring(L, "%s integrator, dim %d, %s", kind->name, it->dim,
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
    if (it->friction && kind->has_friction) {
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
    if (lv_integrator_kind_option(kind, "tempering")) {
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
    if (kind->has_momentum) {
        lv_tensor *T0 = lv_integrator_temperature0(it, it->steps);
        if (T0) {
            luaL_addstring(&b, "\n  T0: ");
            add_values(&b, L, T0);
            lv_tensor_release(T0);
        }
    }
    if (it->amortized || it->planar_u) {
        lua_pushfstring(L, it->amortized ? "\n  amortized planar layers (u, w, b "
                        "from the encoder)" : "\n  %d planar layers", it->steps);
        luaL_addvalue(&b);
    }
    lv_grad_set_enabled(mode);
    luaL_pushresult(&b);
    return 1;
}

/* ---- the records, as Lua sees them ------------------------------------------ */

/* t[key] = value (a boolean), t at the top of the stack. */
static void set_flag(lua_State *L, const char *key, int value)
{
    lua_pushboolean(L, value);
    lua_setfield(L, -2, key);
}

/* The default of opt, as a constructor's table writes it (nil: required). */
static void push_default(lua_State *L, const lv_integrator_option *opt,
                         const lv_integrator_options *o)
{
    const char *slot = (const char *)o + opt->offset;
    switch (opt->type) {
    case LV_OPTION_COUNT:
        if (opt->def == 0)
            lua_pushnil(L);
        else
            lua_pushinteger(L, *(const int *)(const void *)slot);
        break;
    case LV_OPTION_NUMBER:
        lua_pushnumber(L, *(const double *)(const void *)slot);
        break;
    case LV_OPTION_BOOLEAN:
        lua_pushboolean(L, *(const int *)(const void *)slot);
        break;
    case LV_OPTION_CHOICE:
    case LV_OPTION_CHOICE_OR_NUMBER:
        lua_pushstring(L, opt->choices[*(const int *)(const void *)slot]);
        break;
    case LV_OPTION_DTYPE:
        lua_pushstring(L, lv_dtype_name(*(const lv_dtype *)(const void *)slot));
        break;
    case LV_OPTION_LEARN:
        lua_createtable(L, 0, 3);
        set_flag(L, "step", o->learn_step);
        set_flag(L, "friction", o->learn_friction);
        set_flag(L, "temperature", o->learn_temperature);
        break;
    }
}

/* lv.integrator_kinds() -> a list, one table per record: name, group,
 * summary, the flags, and options = {{name, type, default, doc
 * [, choices]}, ...} in the record's order. */
static int integrator_kinds(lua_State *L)
{
    static const char *const type_names[] = {"count", "number", "boolean", "choice",
                                             "choice or number", "dtype", "learn"};
    lua_newtable(L);
    for (int i = 0; lv_integrator_kinds[i]; i++) {
        const lv_integrator_kind *kind = lv_integrator_kinds[i];
        lv_integrator_options o;
        lv_integrator_options_init(&o, kind);
        lua_createtable(L, 0, 10);
        lua_pushstring(L, kind->name);
        lua_setfield(L, -2, "name");
        lua_pushstring(L, kind->group);
        lua_setfield(L, -2, "group");
        lua_pushstring(L, kind->summary);
        lua_setfield(L, -2, "summary");
        set_flag(L, "has_momentum", kind->has_momentum);
        set_flag(L, "has_noise", kind->has_noise);
        set_flag(L, "learnable_friction", kind->learnable_friction);
        set_flag(L, "has_friction", kind->has_friction);
        set_flag(L, "logdet_friction", kind->logdet_friction);
        set_flag(L, "needs_hessian", kind->needs_hessian);
        lua_newtable(L);
        for (int j = 0; kind->options[j]; j++) {
            const lv_integrator_option *opt = kind->options[j];
            lua_createtable(L, 0, 5);
            lua_pushstring(L, opt->name);
            lua_setfield(L, -2, "name");
            lua_pushstring(L, type_names[opt->type]);
            lua_setfield(L, -2, "type");
            push_default(L, opt, &o);
            lua_setfield(L, -2, "default");
            lua_pushstring(L, opt->doc);
            lua_setfield(L, -2, "doc");
            if (opt->choices) {
                lua_newtable(L);
                for (int c = 0; opt->choices[c]; c++) {
                    lua_pushstring(L, opt->choices[c]);
                    lua_seti(L, -2, c + 1);
                }
                lua_setfield(L, -2, "choices");
            }
            lua_seti(L, -2, j + 1);
        }
        lua_setfield(L, -2, "options");
        lua_seti(L, -2, i + 1);
    }
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

    /* One constructor per record, in the table its group names
     * (lv.integrators, lv.flows), with the record as its upvalue. */
    for (int i = 0; lv_integrator_kinds[i]; i++) {
        const lv_integrator_kind *kind = lv_integrator_kinds[i];
        if (lua_getfield(L, -2, kind->group) != LUA_TTABLE) {
            lua_pop(L, 1);
            lua_newtable(L);
            lua_pushvalue(L, -1);
            lua_setfield(L, -4, kind->group);
        }
        lua_pushlightuserdata(L, (void *)(uintptr_t)kind);
        lua_pushcclosure(L, integrator_new, 1);
        lua_setfield(L, -2, kind->name);
        lua_pop(L, 1);
    }
    lua_pushcfunction(L, integrator_kinds);
    lua_setfield(L, -3, "integrator_kinds");
}
