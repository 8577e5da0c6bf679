/*
 * lua_autograd.c -- the tape as Lua sees it: lv.param, x:requires_grad(),
 * x:detach(), lv.grad, y:backward(), grad mode, and the tensor properties
 * x.grad, x.grad_fn, x.is_leaf, x.needs_grad. The Lua side
 * (lua/lvae/autograd.lua) adds no_grad, hvp, hessian on top.
 */
#include <stdlib.h>
#include <string.h>

#include "autograd.h"
#include "lua_common.h"

#define MAX_GRAD_TENSORS 1024

/* param(t): t as a leaf that requires grad. A tensor already on the tape
 * gives a fresh leaf sharing its storage (the tape is cut there). */
static int autograd_param(lua_State *L)
{
    lv_tensor *t = lv_lua_check_tensor(L, 1);
    if (t->grad_fn) {
        lv_tensor *leaf = lv_tensor_detach(t);
        if (leaf)
            leaf->requires_grad = 1;
        lv_lua_push_tensor(L, leaf, "param");
        return 1;
    }
    t->requires_grad = 1;
    lua_settop(L, 1);
    return 1;
}

/* x:requires_grad([flag]): sets the flag of a leaf; returns x. */
static int autograd_requires_grad(lua_State *L)
{
    lv_tensor *t = lv_lua_check_tensor(L, 1);
    if (!lua_isnoneornil(L, 2))
        luaL_checktype(L, 2, LUA_TBOOLEAN);
    int flag = lua_isnoneornil(L, 2) ? 1 : lua_toboolean(L, 2);
    if (t->grad_fn)
        return luaL_error(L, "bad argument #1 to 'requires_grad' (only a leaf's "
                          "flag can be set; this tensor was computed by %s -- "
                          "use :detach() for a leaf)",
                          lv_op_get(t->grad_fn->op)->name);
    t->requires_grad = flag;
    lua_settop(L, 1);
    return 1;
}

static int autograd_detach(lua_State *L)
{
    lv_tensor *t = lv_lua_check_tensor(L, 1);
    lv_lua_push_tensor(L, lv_tensor_detach(t), "detach");
    return 1;
}

/* A tensor, or a list of tensors, at idx into list; returns the count. */
static int check_tensor_list(lua_State *L, int idx, lv_tensor **list,
                             const char *what)
{
    lv_tensor *t = lv_lua_test_tensor(L, idx);
    if (t) {
        list[0] = lv_lua_check_tensor(L, idx);
        return 1;
    }
    if (!lua_istable(L, idx))
        luaL_argerror(L, idx, lua_pushfstring(L, "expected a tensor or a list "
                                              "of tensors as %s", what));
    int n = (int)luaL_len(L, idx);
    if (n > MAX_GRAD_TENSORS)
        luaL_argerror(L, idx, "more than 1024 tensors");
    for (int i = 1; i <= n; i++) {
        lua_geti(L, idx, i);
        list[i - 1] = lv_lua_test_tensor(L, -1);
        if (!list[i - 1])
            luaL_argerror(L, idx, lua_pushfstring(L, "%s entry %d is not a "
                                                  "tensor", what, i));
        lua_pop(L, 1);            /* the list keeps it alive */
    }
    return n;
}

static int opt_flag(lua_State *L, int idx, const char *name, int def)
{
    if (lua_isnoneornil(L, idx))
        return def;
    lua_getfield(L, idx, name);
    if (!lua_isnil(L, -1) && !lua_isboolean(L, -1))
        luaL_argerror(L, idx, lua_pushfstring(L, "option '%s' must be a "
                                              "boolean, got %s", name,
                                              luaL_typename(L, -1)));
    int v = lua_isnil(L, -1) ? def : lua_toboolean(L, -1);
    lua_pop(L, 1);
    return v;
}


/* Runs the reverse pass; pushes the gradient list (or nothing when
 * accumulating). Arrays are heap-held only for the call. */
static int run_backward(lua_State *L, const char *fname, int n_out,
                        lv_tensor **outs, lv_tensor **gouts, int n_in,
                        lv_tensor **ins, const lv_backward_opts *opts)
{
    lv_tensor **grads = n_in ? calloc((size_t)n_in, sizeof *grads) : NULL;
    if (n_in && !grads)
        return luaL_error(L, "%s: out of memory", fname);
    int status = lv_backward(n_out, outs, gouts, n_in, ins, grads, opts);
    if (status < 0) {
        free(grads);
        return lv_lua_raise(L, fname);
    }
    if (opts->accumulate) {
        free(grads);
        return 0;
    }
    /* Box every gradient before anything can raise. */
    lua_createtable(L, n_in, 0);
    lv_tensor **box[MAX_GRAD_TENSORS];
    for (int j = 0; j < n_in; j++) {
        box[j] = lv_lua_push_box(L);
        lua_seti(L, -2, j + 1);
    }
    for (int j = 0; j < n_in; j++)
        *box[j] = grads[j];
    free(grads);
    /* An unused input (allow_unused) is nil in the list. */
    for (int j = 0; j < n_in; j++)
        if (!*box[j]) {
            lua_pushnil(L);
            lua_seti(L, -2, j + 1);
        }
    return 1;
}

/* The on_ready option at table idx: a userdata whose metatable says it
 * takes gradients as they become final (lua_common.h), or nil. */
static const lv_lua_ready_hook *opt_ready_hook(lua_State *L, int idx)
{
    if (lua_isnoneornil(L, idx))
        return NULL;
    lua_getfield(L, idx, "on_ready");
    const lv_lua_ready_hook *hook = NULL;
    if (!lua_isnil(L, -1)) {
        int ok = lua_type(L, -1) == LUA_TUSERDATA && lua_getmetatable(L, -1);
        if (ok) {
            ok = lua_getfield(L, -1, LV_READY_HOOK) == LUA_TBOOLEAN && lua_toboolean(L, -1);
            lua_pop(L, 2);
        }
        if (!ok)
            luaL_argerror(L, idx, "option 'on_ready' must be an lv.mpi.Reducer");
        hook = lua_touserdata(L, -1);
    }
    lua_pop(L, 1);           /* the caller's options table keeps it alive */
    return hook;
}

/* The gradient buffers for ins[0..n_in): the option `into` at table idx
 * (a tensor or a list, one per input), else the on_ready hook's own
 * buffers where they fit their inputs (a reducer's bucket slots), else
 * none. Returns into, or NULL for none; the tensors stay borrowed. */
static lv_tensor *const *opt_buffers(lua_State *L, int idx, int n_in,
                                     lv_tensor *const *ins,
                                     const lv_lua_ready_hook *hook,
                                     int create_graph, lv_tensor **into)
{
    if (!lua_isnoneornil(L, idx)) {
        lua_getfield(L, idx, "into");
        if (!lua_isnil(L, -1)) {
            if (create_graph)
                luaL_argerror(L, idx, "option 'into' cannot go with create_graph "
                              "(a gradient on the tape is a new tensor)");
            int n = check_tensor_list(L, lua_gettop(L), into, "into");
            if (n != n_in)
                luaL_error(L, "bad argument #%d to 'grad' (%d tensors in "
                           "option 'into' for %d inputs)", idx, n, n_in);
            return into;   /* the list stays on the stack, keeping them alive */
        }
        lua_pop(L, 1);
    }
    if (!hook || !hook->buffer)
        return NULL;
    for (int j = 0; j < n_in; j++) {
        lv_tensor *buf = hook->buffer(hook->ctx, j);
        const lv_tensor *x = ins[j];
        into[j] = buf && buf->dtype == x->dtype && lv_same_shape(buf, x) ? buf : NULL;
    }
    return into;
}

/* lv.grad(outputs, inputs [, {grad_outputs, create_graph, retain_graph,
 * allow_unused, on_ready, into}]) -> list of gradients. */
static int autograd_grad(lua_State *L)
{
    static const char *const known[] = {"grad_outputs", "create_graph",
                                        "retain_graph", "allow_unused",
                                        "on_ready", "into", NULL};
    lv_tensor *outs[MAX_GRAD_TENSORS], *ins[MAX_GRAD_TENSORS];
    lv_tensor *gouts[MAX_GRAD_TENSORS], *into[MAX_GRAD_TENSORS];
    int n_out = check_tensor_list(L, 1, outs, "outputs");
    int n_in = check_tensor_list(L, 2, ins, "inputs");
    luaL_argcheck(L, n_out > 0, 1, "no outputs");
    lv_lua_check_options(L, 3, known);
    lv_backward_opts opts = {0};
    opts.create_graph = opt_flag(L, 3, "create_graph", 0);
    opts.retain_graph = opt_flag(L, 3, "retain_graph", opts.create_graph);
    opts.allow_unused = opt_flag(L, 3, "allow_unused", 0);
    const lv_lua_ready_hook *hook = opt_ready_hook(L, 3);
    if (hook) {
        opts.on_ready = hook->fn;
        opts.ready_ctx = hook->ctx;
    }
    opts.into = opt_buffers(L, 3, n_in, ins, hook, opts.create_graph, into);
    lv_tensor **gptr = NULL;
    if (!lua_isnoneornil(L, 3)) {
        lua_getfield(L, 3, "grad_outputs");
        if (!lua_isnil(L, -1)) {
            int idx = lua_gettop(L);
            int n = check_tensor_list(L, idx, gouts, "grad_outputs");
            if (n != n_out)
                return luaL_error(L, "bad argument #3 to 'grad' (%d "
                                  "grad_outputs for %d outputs)", n, n_out);
            gptr = gouts;
        }
        /* left on the stack: it keeps the list alive */
    }
    return run_backward(L, "grad", n_out, outs, gptr, n_in, ins, &opts);
}

/* y:backward([grad_output] [, {retain_graph, create_graph}]): adds the
 * gradient into the .grad of every leaf that requires grad. */
static int autograd_backward(lua_State *L)
{
    static const char *const known[] = {"create_graph", "retain_graph", NULL};
    lv_tensor *y = lv_lua_check_tensor(L, 1);
    int opts_idx = 2;
    lv_tensor *g = lv_lua_test_tensor(L, 2);
    if (g || lua_isnil(L, 2))
        opts_idx = 3;
    lv_lua_check_options(L, opts_idx, known);
    lv_backward_opts opts = {0};
    opts.accumulate = 1;
    opts.create_graph = opt_flag(L, opts_idx, "create_graph", 0);
    opts.retain_graph = opt_flag(L, opts_idx, "retain_graph", opts.create_graph);
    lv_tensor *gouts[1] = {g};
    return run_backward(L, "backward", 1, &y, g ? gouts : NULL, 0, NULL, &opts);
}

static int autograd_set_grad_enabled(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TBOOLEAN);
    lua_pushboolean(L, lv_grad_set_enabled(lua_toboolean(L, 1)));
    return 1;
}

static int autograd_is_grad_enabled(lua_State *L)
{
    lua_pushboolean(L, lv_grad_enabled());
    return 1;
}

/* ---- properties: x.grad, x.grad_fn, x.is_leaf, x.needs_grad ------------ */

int lv_lua_tensor_property(lua_State *L, lv_tensor *t, const char *key)
{
    if (strcmp(key, "grad") == 0) {
        if (t->grad) {
            lv_tensor_retain(t->grad);
            lv_lua_push_tensor(L, t->grad, "grad");
        } else {
            lua_pushnil(L);
        }
        return 1;
    }
    if (strcmp(key, "grad_fn") == 0) {
        if (t->grad_fn)
            lua_pushstring(L, lv_op_get(t->grad_fn->op)->name);
        else
            lua_pushnil(L);
        return 1;
    }
    if (strcmp(key, "is_leaf") == 0) {
        lua_pushboolean(L, t->grad_fn == NULL);
        return 1;
    }
    if (strcmp(key, "needs_grad") == 0) {
        lua_pushboolean(L, t->requires_grad);
        return 1;
    }
    return 0;
}

/* x.grad = nil clears the gradient; x.grad = g sets it (same shape). */
int lv_lua_tensor_set_property(lua_State *L, lv_tensor *t, const char *key,
                               int value_idx)
{
    if (strcmp(key, "grad") != 0)
        return 0;
    lv_tensor *g = NULL;
    if (!lua_isnil(L, value_idx)) {
        g = lv_lua_check_tensor(L, value_idx);
        if (!lv_same_shape(g, t)) {
            char a[128], b[128];
            return luaL_error(L, "cannot set .grad: shape %s differs from the "
                              "tensor's shape %s",
                              lv_shape_format(a, sizeof a, g->ndim, g->shape),
                              lv_shape_format(b, sizeof b, t->ndim, t->shape));
        }
        lv_tensor_retain(g);
    }
    lv_tensor_release(t->grad);
    t->grad = g;
    return 1;
}

static const luaL_Reg autograd_functions[] = {
    {"param", autograd_param},
    {"grad", autograd_grad},
    {"set_grad_enabled", autograd_set_grad_enabled},
    {"is_grad_enabled", autograd_is_grad_enabled},
    {NULL, NULL}
};

static const luaL_Reg autograd_methods[] = {
    {"requires_grad", autograd_requires_grad},
    {"detach", autograd_detach},
    {"backward", autograd_backward},
    {NULL, NULL}
};

void lv_open_autograd(lua_State *L)
{
    lv_lua_register(L, autograd_functions, 0);
    lv_lua_register(L, autograd_methods, 1);
}
