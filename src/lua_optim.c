/*
 * lua_optim.c -- binds the in-place optimizer kernels (optim.h) for
 * lua/lvae/optim.lua:
 *
 *   core._optim_update(kind, group, grads, states, offset [, grad_scale])
 *
 * updates every parameter j of group.params whose gradient
 * grads[offset + j] is not nil, with states[offset + j] its state table:
 * step is counted up, missing state tensors are made (zeros, or ones for
 * TensorFlow's RMSProp accumulator) and stored there, and then updated in
 * place with the parameter. One Lua call per group and step; no
 * temporaries. The options are read from the group table as optim.lua
 * checked them.
 */
#include <string.h>

#include "autograd.h"
#include "lua_common.h"
#include "optim.h"

static const char *const kind_names[] = {"SGD", "Adam", "Adamax", "RMSProp", NULL};

static double field_number(lua_State *L, int idx, const char *key, double def)
{
    lua_getfield(L, idx, key);
    double v = lua_isnumber(L, -1) ? lua_tonumber(L, -1) : def;
    lua_pop(L, 1);
    return v;
}

static int field_bool(lua_State *L, int idx, const char *key)
{
    lua_getfield(L, idx, key);
    int v = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return v;
}

static lv_optim_hyper read_hyper(lua_State *L, int idx)
{
    lv_optim_hyper h = {0};
    h.lr = field_number(L, idx, "lr", 0);
    h.weight_decay = field_number(L, idx, "weight_decay", 0);
    h.eps = field_number(L, idx, "eps", 0);
    h.momentum = field_number(L, idx, "momentum", 0);
    h.dampening = field_number(L, idx, "dampening", 0);
    h.alpha = field_number(L, idx, "alpha", 0);
    h.nesterov = field_bool(L, idx, "nesterov");
    h.amsgrad = field_bool(L, idx, "amsgrad");
    h.centered = field_bool(L, idx, "centered");
    h.tf_style = field_bool(L, idx, "tf_style");
    if (lua_getfield(L, idx, "betas") == LUA_TTABLE) {
        lua_geti(L, -1, 1);
        lua_geti(L, -2, 2);
        h.beta1 = lua_tonumber(L, -2);
        h.beta2 = lua_tonumber(L, -1);
        lua_pop(L, 2);
    }
    lua_pop(L, 1);
    return h;
}

/* g as the kernel takes it: contiguous, of p's dtype (a new reference). */
static lv_tensor *gradient_like(lv_tensor *g, const lv_tensor *p)
{
    lv_tensor *use = g;
    lv_tensor_retain(use);
    if (use->dtype != p->dtype) {
        lv_op_params to = {.dtype = p->dtype};
        lv_tensor *c = lv_apply1(LV_OP_TO, 1, &use, &to);
        lv_tensor_release(use);
        use = c;
    }
    if (use && !lv_tensor_is_contiguous(use)) {
        lv_tensor *c = lv_apply1(LV_OP_CONTIGUOUS, 1, &use, NULL);
        lv_tensor_release(use);
        use = c;
    }
    return use;
}

static int optim_update(lua_State *L)
{
    lv_optim_kind kind = (lv_optim_kind)luaL_checkoption(L, 1, NULL, kind_names);
    luaL_checktype(L, 2, LUA_TTABLE);
    luaL_checktype(L, 3, LUA_TTABLE);
    luaL_checktype(L, 4, LUA_TTABLE);
    lua_Integer offset = luaL_checkinteger(L, 5);
    lv_optim_hyper h = read_hyper(L, 2);
    h.grad_scale = luaL_optnumber(L, 6, 1.0);
    int count = lv_optim_state_count(kind, &h);
    lua_getfield(L, 2, "params");
    int params = lua_gettop(L);
    lua_Integer n = luaL_len(L, params);
    for (lua_Integer j = 1; j <= n; j++) {
        lua_geti(L, 3, offset + j);
        lv_tensor *g = lv_lua_test_tensor(L, -1);
        lua_pop(L, 1);               /* grads keeps it alive */
        if (!g)
            continue;
        lua_geti(L, params, j);
        lv_tensor *p = lv_lua_check_tensor(L, -1);
        lua_pop(L, 1);
        lua_geti(L, 4, offset + j);
        int st = lua_gettop(L);
        luaL_checktype(L, st, LUA_TTABLE);
        h.step = (long long)field_number(L, st, "step", 0) + 1;
        lua_pushinteger(L, (lua_Integer)h.step);
        lua_setfield(L, st, "step");
        lv_tensor *state[3] = {NULL, NULL, NULL};
        int first_momentum = 0;
        for (int i = 0; i < count; i++) {
            const char *name = lv_optim_state_name(kind, &h, i);
            if (!name)
                continue;
            lua_getfield(L, st, name);
            state[i] = lv_lua_test_tensor(L, -1);
            lua_pop(L, 1);           /* the state table keeps it alive */
            if (state[i])
                continue;
            /* SGD's buffer starts as the gradient itself; the kernel
             * writes it, so its initial value is never read. */
            if (kind == LV_OPTIM_SGD)
                first_momentum = 1;
            lv_tensor *fresh = lv_tensor_full(p->dtype, p->ndim, p->shape,
                                              lv_optim_state_init(kind, &h, i));
            lv_lua_push_tensor(L, fresh, "optim");
            state[i] = fresh;
            lua_setfield(L, st, name);
        }
        lua_pop(L, 1);               /* the state table */
        int mode = lv_grad_set_enabled(0);
        lv_tensor *use = gradient_like(g, p);
        int status = use ? lv_optim_update(kind, &h, p, use, state, first_momentum) : -1;
        lv_tensor_release(use);
        lv_grad_set_enabled(mode);
        if (status < 0)
            return lv_lua_raise(L, "optim");
    }
    return 0;
}

static const luaL_Reg optim_functions[] = {
    {"_optim_update", optim_update},
    {NULL, NULL}
};

void lv_open_optim(lua_State *L)
{
    lv_lua_register(L, optim_functions, 0);
}
