/*
 * lua_common.h -- what every binding file (src/lua_*.c) shares: the tensor
 * userdata, argument checking, and turning a core error into a Lua error.
 *
 * A tensor userdata is a box holding one lv_tensor reference (or NULL while
 * it is being made: "safe empty" first, then filled, as Lua's own liolib
 * does with files). __gc and __close release the reference exactly once.
 *
 * Every lv_open_* function is called with the module table (lvae.core) at
 * stack index -2 and the tensor method table at -1; it registers its
 * functions with lv_lua_register and leaves the stack as it was.
 *
 * Which file provides what (the binding files call each other only
 * downwards, never both ways):
 *   lua_common.c    the box, the collector drive, lv_lua_raise, the
 *                   argument helpers, the file helpers (a path argument,
 *                   a byte buffer freed on return or error, a whole file
 *                   read, a file's error), lv_lua_register and
 *                   lv_lua_handle_metatable; it calls no other binding file
 *   lua_autograd.c  the tape's tensor properties (x.grad, x.grad_fn, ...),
 *                   which lua_tensor.c's __index and __newindex consult
 *   lua_core.c      luaopen_lvae_core, which calls every lv_open_*
 *   lua_<name>.c    lv_open_<name>, and nothing else that another file calls
 * So: lua_core -> every lua_<name>; lua_tensor -> lua_autograd; every
 * binding file -> lua_common.
 */
#ifndef LV_LUA_COMMON_H
#define LV_LUA_COMMON_H

#include <lauxlib.h>
#include <lua.h>

#include "autograd.h"
#include "bytes.h"
#include "op.h"
#include "tensor.h"

#define LV_TENSOR_MT "lvae.Tensor"
#define LV_GENERATOR_MT "lvae.Generator"

/* ---- lua_common.c ---------------------------------------------------- */

/* The tensor at idx, or a Lua error naming the argument. */
lv_tensor *lv_lua_check_tensor(lua_State *L, int idx);
/* The tensor at idx, or NULL if the value there is not a tensor. */
lv_tensor *lv_lua_test_tensor(lua_State *L, int idx);

/* Pushes a safe-empty tensor box and returns its slot. */
lv_tensor **lv_lua_push_box(lua_State *L);
/* Pushes t (stealing the reference). When t is NULL, raises the core's
 * last error as an error of function fname. May run the collector. */
void lv_lua_push_tensor(lua_State *L, lv_tensor *t, const char *fname);
/* The live bytes at which the next push runs a full collection. */
size_t lv_lua_gc_threshold(void);
/* Raises the core's last error (lv_error_message) as an error of fname:
 * "bad argument #k to 'fname' (msg)" when the core named an argument,
 * else "fname: msg". Never returns. */
int lv_lua_raise(lua_State *L, const char *fname);

/* Raises unless the value at idx is nil, absent, or a table whose keys
 * are all in known (NULL-terminated): "unknown option 'k' (known: ...)". */
void lv_lua_check_options(lua_State *L, int idx, const char *const *known);
/* The check behind it, for a table that is not an argument of its own (a
 * subtable) or an error worded "<where>: ...": when the table at idx has
 * a key not in known, pushes "unknown <what> (known: a, b)", what a
 * format taking the key ("option '%s'"), and returns 1 for the caller to
 * raise; else returns 0, the stack as it was. */
int lv_lua_unknown_key(lua_State *L, int idx, const char *const *known,
                       const char *what);

/* An optional dtype name at idx ("f32", "f64"); def when nil or absent. */
lv_dtype lv_lua_opt_dtype(lua_State *L, int idx, lv_dtype def);
/* A shape given as a table of sizes at idx; returns ndim. Raises on a
 * non-integer or negative size, or more than LV_MAX_DIMS entries. */
int lv_lua_check_shape(lua_State *L, int idx, int64_t *shape);
/* A Lua dim (1-based, negative counts from the end) at idx, converted to
 * 0-based against ndim; raises when out of range. */
int lv_lua_check_dim(lua_State *L, int idx, int ndim);

/* Raises unless t may be written in place: not an expanded view (several
 * elements on one memory location), and not, while grad mode is on, a
 * tensor that requires grad. */
void lv_lua_check_writable(lua_State *L, lv_tensor *t, const char *fname);

/* The path argument at idx: a non-empty string without zero bytes (the C
 * library would silently stop at the first zero). */
const char *lv_lua_check_path(lua_State *L, int idx);
/* Pushes an empty byte buffer that is freed when the calling C function
 * returns or raises (a to-be-closed slot). */
lv_io_writer *lv_lua_push_bytes(lua_State *L);
/* Reads the whole file at path into a pushed buffer (lv_lua_push_bytes);
 * raises lv_lua_raise_file's error when it cannot. */
lv_io_writer *lv_lua_read_file(lua_State *L, const char *fname,
                               const char *path);
/* Raises the core's last error about a file: "fname: path: message".
 * Never returns. */
int lv_lua_raise_file(lua_State *L, const char *fname, const char *path);

/* Applies an op and pushes its outputs; returns how many were pushed. */
int lv_lua_apply(lua_State *L, lv_op_id op, int n_in, lv_tensor *const *in,
                 const lv_op_params *p);

/* Registers fns into the module table (-2) and, when as_methods, into the
 * tensor method table (-1) too, so that lv.f(x) and x:f() are one
 * function. */
void lv_lua_register(lua_State *L, const luaL_Reg *fns, int as_methods);

/* Makes the metatable `name` (once) of a handle that holds a resource:
 * `release` runs at __gc and __close and, when `method` is not NULL, as
 * handle:method() too. Leaves the stack as it was. */
void lv_lua_handle_metatable(lua_State *L, const char *name, lua_CFunction release,
                             const char *method);

/* ---- lua_autograd.c -------------------------------------------------- */

/* Tensor properties kept by the tape: pushes the value
 * of x.key and returns 1, or returns 0 when key is not a property. */
int lv_lua_tensor_property(lua_State *L, lv_tensor *t, const char *key);
/* x.key = value at value_idx; returns 0 when key is not settable. */
int lv_lua_tensor_set_property(lua_State *L, lv_tensor *t, const char *key,
                               int value_idx);

/* A userdata that takes lv.grad's gradients as each becomes final
 * (lv.grad's on_ready option; lv.mpi.Reducer is one) begins with this
 * header, and its metatable has the field LV_READY_HOOK set to true. */
typedef struct lv_lua_ready_hook {
    lv_grad_ready_fn fn;
    void *ctx;
    /* Optional: where input j's gradient may be summed (borrowed; NULL for
     * none), so that fn gets it already in place (lv_backward_opts.into). */
    lv_tensor *(*buffer)(void *ctx, int j);
} lv_lua_ready_hook;
#define LV_READY_HOOK "__lv_ready_hook"

/* ---- lua_core.c calls one of these per binding file ------------------ */

void lv_open_tensor(lua_State *L);
void lv_open_ops(lua_State *L);
void lv_open_linalg(lua_State *L);
void lv_open_rng(lua_State *L);
void lv_open_autograd(lua_State *L);
void lv_open_integrators(lua_State *L);
void lv_open_io(lua_State *L);
void lv_open_checkpoint(lua_State *L);
void lv_open_gather(lua_State *L);
void lv_open_estimators(lua_State *L);
void lv_open_nifti(lua_State *L);
void lv_open_image(lua_State *L);
void lv_open_optim(lua_State *L);
void lv_open_lockfile(lua_State *L);
void lv_open_digest(lua_State *L);
void lv_open_signals(lua_State *L);
void lv_open_mpi(lua_State *L);

#endif
