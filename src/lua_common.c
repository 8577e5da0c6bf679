/*
 * lua_common.c -- what every binding file shares (declared in
 * lua_common.h): the tensor box and the collector drive, turning a core
 * error into a Lua error, argument checks, files, and registration.
 *
 * Collector drive: Lua sees an 8-byte box per tensor, not the megabytes
 * behind it, so on its own it would let dead tensors pile up. After each
 * push we compare the allocator's live bytes with a threshold and run a
 * full collection when they have grown by 16 MiB (Torch7's heap tracking,
 * with a smaller step; see drive_collector).
 *
 * Not here: the tensor type's own functions and metatable (lua_tensor.c),
 * the tape's (lua_autograd.c). This file calls no other binding file.
 */
#include <string.h>

#include "clock.h"
#include "files.h"
#include "lua_common.h"

/* A collection runs once the live bytes have grown by GC_MIN_GROWTH since
 * the last one: a training step's temporaries go back to the allocator's
 * reuse cache, and later steps take them from there instead of from the
 * system. Only when a collection found what grew mostly alive and was
 * itself slow (more than GC_SLOW_SECONDS: a Lua heap of many megabytes,
 * say a million small tables) does the next wait for a quarter of the
 * live bytes, so that building a large set among them does not pay a
 * slow collection every 16 MiB. Growth in proportion to the live bytes
 * (Torch7 doubled them; a quarter here before) let the first cycle after
 * a data set was loaded run on fresh pages, each faulted in by the
 * virtual machine: with Fashion-MNIST resident (250 MB live) the first
 * 60 MB of a run's temporaries, its first 16-30 steps, took 16-20 ms a
 * step instead of 9-11. A full collection of the runner's Lua heap
 * (about 2 MB) takes about 1 ms: a qsl step (7 MB of temporaries) pays
 * 0.4 ms, under 1%. */
#define GC_MIN_GROWTH ((size_t)16 << 20)
#define GC_SLOW_SECONDS 0.005

static size_t gc_threshold = GC_MIN_GROWTH;
static size_t live_after_gc;       /* the live bytes the last collection left */

/* ---- the box and the collector drive --------------------------------- */

lv_tensor *lv_lua_test_tensor(lua_State *L, int idx)
{
    lv_tensor **box = luaL_testudata(L, idx, LV_TENSOR_MT);
    if (box && !*box) {
        if (idx > 0)
            luaL_argerror(L, idx, "tensor has been freed (closed)");
        /* an entry of a list: name the function as luaL_argerror would */
        lua_Debug ar;
        if (lua_getstack(L, 0, &ar) && lua_getinfo(L, "n", &ar) && ar.name)
            luaL_error(L, "bad argument to '%s' (a tensor in the list has "
                       "been freed (closed))", ar.name);
        luaL_error(L, "a tensor that has been freed (closed) was used");
    }
    return box ? *box : NULL;
}

lv_tensor *lv_lua_check_tensor(lua_State *L, int idx)
{
    lv_tensor **box = luaL_testudata(L, idx, LV_TENSOR_MT);
    if (!box)
        luaL_typeerror(L, idx, "tensor");
    if (!*box)
        luaL_argerror(L, idx, "tensor has been freed (closed)");
    return *box;
}

lv_tensor **lv_lua_push_box(lua_State *L)
{
    lv_tensor **box = lua_newuserdatauv(L, sizeof *box, 1);
    *box = NULL;
    luaL_setmetatable(L, LV_TENSOR_MT);
    return box;
}

static void drive_collector(lua_State *L)
{
    size_t live = lv_alloc_live_bytes();
    if (live > gc_threshold) {
        size_t grew = live > live_after_gc ? live - live_after_gc : 0;
        double t0 = lv_clock_seconds();
        lua_gc(L, LUA_GCCOLLECT);
        double seconds = lv_clock_seconds() - t0;
        size_t kept = lv_alloc_live_bytes();
        size_t freed = live > kept ? live - kept : 0;
        size_t growth = GC_MIN_GROWTH;
        if (freed < grew / 2 && seconds > GC_SLOW_SECONDS && kept / 4 > growth)
            growth = kept / 4;
        live_after_gc = kept;
        gc_threshold = kept + growth;
    }
}

size_t lv_lua_gc_threshold(void) { return gc_threshold; }

void lv_lua_push_tensor(lua_State *L, lv_tensor *t, const char *fname)
{
    if (!t)
        lv_lua_raise(L, fname);
    lv_tensor **box = lv_lua_push_box(L);
    *box = t;
    drive_collector(L);
}

int lv_lua_apply(lua_State *L, lv_op_id op, int n_in, lv_tensor *const *in,
                 const lv_op_params *p)
{
    /* Boxes first, so that the outputs are owned as soon as they exist. */
    lv_tensor **box[LV_OP_MAX_OUTPUTS];
    for (int i = 0; i < LV_OP_MAX_OUTPUTS; i++)
        box[i] = lv_lua_push_box(L);
    lv_tensor *out[LV_OP_MAX_OUTPUTS] = {NULL, NULL};
    int n = lv_apply(out, op, n_in, in, p);
    if (n < 0)
        return lv_lua_raise(L, lv_op_get(op)->name);
    for (int i = 0; i < n; i++)
        *box[i] = out[i];
    lua_pop(L, LV_OP_MAX_OUTPUTS - n);
    drive_collector(L);
    return n;
}

/* ---- errors ---------------------------------------------------------- */

int lv_lua_raise(lua_State *L, const char *fname)
{
    int arg = lv_error_arg();
    /* As luaL_argerror does: in x:f(...) the arguments count from the
     * first after the colon, and "argument 0" is x itself. */
    lua_Debug ar;
    if (arg > 0 && lua_getstack(L, 0, &ar) && lua_getinfo(L, "n", &ar) &&
        ar.namewhat && strcmp(ar.namewhat, "method") == 0) {
        if (--arg == 0)
            return luaL_error(L, "calling '%s' on bad self (%s)", fname,
                              lv_error_message());
    }
    const char *msg = lv_error_message();
    /* Messages of shared helpers start with "what: "; drop a prefix that
     * repeats the function's own name. */
    size_t len = strlen(fname);
    if (strncmp(msg, fname, len) == 0 && msg[len] == ':' && msg[len + 1] == ' ')
        msg += len + 2;
    if (arg > 0)
        return luaL_error(L, "bad argument #%d to '%s' (%s)", arg, fname, msg);
    return luaL_error(L, "%s: %s", fname, msg);
}

/* ---- argument helpers ------------------------------------------------ */

int lv_lua_unknown_key(lua_State *L, int idx, const char *const *known,
                       const char *what)
{
    idx = lua_absindex(L, idx);
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        int ok = 0;
        if (lua_type(L, -2) == LUA_TSTRING)
            for (const char *const *k = known; *k && !ok; k++)
                ok = strcmp(lua_tostring(L, -2), *k) == 0;
        if (!ok) {
            const char *key = luaL_tolstring(L, -2, NULL);
            luaL_Buffer b;
            luaL_buffinit(L, &b);
            luaL_addstring(&b, "unknown ");
            lua_pushfstring(L, what, key);
            luaL_addvalue(&b);
            luaL_addstring(&b, " (known: ");
            for (const char *const *k = known; *k; k++) {
                luaL_addstring(&b, k == known ? "" : ", ");
                luaL_addstring(&b, *k);
            }
            luaL_addstring(&b, ")");
            luaL_pushresult(&b);
            return 1;
        }
        lua_pop(L, 1);
    }
    return 0;
}

void lv_lua_check_options(lua_State *L, int idx, const char *const *known)
{
    if (lua_isnoneornil(L, idx))
        return;
    luaL_checktype(L, idx, LUA_TTABLE);
    if (lv_lua_unknown_key(L, idx, known, "option '%s'"))
        luaL_argerror(L, idx, lua_tostring(L, -1));
}

lv_dtype lv_lua_opt_dtype(lua_State *L, int idx, lv_dtype def)
{
    if (lua_isnoneornil(L, idx))
        return def;
    const char *name = luaL_checkstring(L, idx);
    int d = lv_dtype_from_name(name);
    if (d < 0)
        luaL_argerror(L, idx, lua_pushfstring(L, "unknown dtype '%s' "
                                              "(expected \"f32\" or \"f64\")",
                                              name));
    return (lv_dtype)d;
}

static int64_t check_size(lua_State *L, int idx, int value_idx, int i)
{
    int isnum;
    lua_Integer v = lua_tointegerx(L, value_idx, &isnum);
    if (!isnum)
        luaL_argerror(L, idx, lua_pushfstring(L, "size %d is not an integer",
                                              i));
    if (v < 0)
        luaL_argerror(L, idx, lua_pushfstring(L, "size %d is negative (%I)",
                                              i, v));
    return (int64_t)v;
}

int lv_lua_check_shape(lua_State *L, int idx, int64_t *shape)
{
    if (lua_isinteger(L, idx) || (lua_type(L, idx) == LUA_TNUMBER)) {
        shape[0] = check_size(L, idx, idx, 1);
        return 1;
    }
    luaL_argexpected(L, lua_istable(L, idx), idx, "shape table");
    int n = (int)luaL_len(L, idx);
    if (n > LV_MAX_DIMS)
        luaL_argerror(L, idx, lua_pushfstring(L, "%d dimensions (at most %d)",
                                              n, LV_MAX_DIMS));
    for (int i = 1; i <= n; i++) {
        lua_geti(L, idx, i);
        shape[i - 1] = check_size(L, idx, -1, i);
        lua_pop(L, 1);
    }
    if (lv_shape_check("shape", n, shape) < 0)
        luaL_argerror(L, idx, lv_error_message());
    return n;
}

int lv_lua_check_dim(lua_State *L, int idx, int ndim)
{
    lua_Integer d = luaL_checkinteger(L, idx);
    if (d >= 1 && d <= ndim)
        return (int)d - 1;
    if (d < 0 && d >= -ndim)
        return (int)(ndim + d);
    if (ndim == 0)
        return luaL_argerror(L, idx, "dimension out of range (tensor has no "
                             "dimensions)");
    return luaL_argerror(L, idx, lua_pushfstring(L, "dimension %I out of range "
                                                 "(expected 1 to %d, or -%d to "
                                                 "-1)", d, ndim, ndim));
}

void lv_lua_check_writable(lua_State *L, lv_tensor *t, const char *fname)
{
    for (int i = 0; i < t->ndim; i++)
        if (t->stride[i] == 0 && t->shape[i] > 1)
            luaL_error(L, "%s: cannot write into an expanded view (several "
                       "of its elements share one memory location): clone "
                       "it first", fname);
    if (t->requires_grad && lv_grad_enabled())
        luaL_error(L, "%s: cannot write in place into a tensor that requires "
                   "grad while grad mode is on (the tape does not record "
                   "in-place writes): use lv.no_grad, or write into a "
                   ":detach()ed or :clone()d tensor", fname);
}

/* ---- files ----------------------------------------------------------- */

/* A file image, read or being written, lives in one of these: the "bytes"
 * userdata (an lv_io_writer), marked to-be-closed, so that it is freed
 * when the C function that pushed it returns or raises. */
#define BYTES_MT "lvae.io.bytes"

static int bytes_free(lua_State *L)
{
    lv_io_writer_free(luaL_checkudata(L, 1, BYTES_MT));
    return 0;
}

lv_io_writer *lv_lua_push_bytes(lua_State *L)
{
    lv_io_writer *w = lua_newuserdatauv(L, sizeof *w, 0);
    lv_io_writer_init(w);
    lv_lua_handle_metatable(L, BYTES_MT, bytes_free, NULL);   /* made once */
    luaL_setmetatable(L, BYTES_MT);
    lua_toclose(L, -1);
    return w;
}

const char *lv_lua_check_path(lua_State *L, int idx)
{
    size_t len;
    const char *path = luaL_checklstring(L, idx, &len);
    luaL_argcheck(L, strlen(path) == len, idx, "path contains a zero byte");
    luaL_argcheck(L, len > 0, idx, "path is empty");
    return path;
}

int lv_lua_raise_file(lua_State *L, const char *fname, const char *path)
{
    return luaL_error(L, "%s: %s: %s", fname, path, lv_error_message());
}

lv_io_writer *lv_lua_read_file(lua_State *L, const char *fname,
                               const char *path)
{
    lv_io_writer *buf = lv_lua_push_bytes(L);
    if (lv_io_read_file(path, &buf->data, &buf->len) < 0)
        lv_lua_raise_file(L, fname, path);
    buf->cap = buf->len;
    return buf;
}

/* ---- registration ---------------------------------------------------- */

void lv_lua_register(lua_State *L, const luaL_Reg *fns, int as_methods)
{
    for (; fns->name; fns++) {
        lua_pushcfunction(L, fns->func);
        lua_setfield(L, -3, fns->name);
        if (as_methods) {
            lua_pushcfunction(L, fns->func);
            lua_setfield(L, -2, fns->name);
        }
    }
}

void lv_lua_handle_metatable(lua_State *L, const char *name, lua_CFunction release,
                             const char *method)
{
    if (luaL_newmetatable(L, name)) {
        lua_pushcfunction(L, release);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, release);
        lua_setfield(L, -2, "__close");
        if (method) {
            lua_newtable(L);
            lua_pushcfunction(L, release);
            lua_setfield(L, -2, method);
            lua_setfield(L, -2, "__index");
        }
    }
    lua_pop(L, 1);
}
