/*
 * lua_io.c -- the Lua face of the array files (npy.c, amat.c, idx.c, with
 * gzip.c under the last two):
 *
 *   lv.save_npy(path, tensor)     NumPy's .npy, version 1.0, '<f4'/'<f8'
 *   lv.load_npy(path [, dtype]) -> tensor
 *   lv.load_amat(path [, dtype]) -> tensor [rows, columns]
 *                                 a whitespace-separated text matrix
 *                                 (amat.c), raw or gzip
 *   lv.save_idx(path, tensor [, type] [, {gzip = bool}])
 *                                 IDX of type "u8", "i8", "i16", "i32",
 *                                 "f32" or "f64" (default: the tensor's
 *                                 dtype); gzip by default when the path
 *                                 ends in ".gz"
 *   lv.load_idx(path [, dtype] [, {scale = s}]) -> tensor, type
 *                                 raw or gzip, values as stored (times s),
 *                                 and the file's element type
 *
 * Errors name the function and the file, then what is wrong:
 * "lv.load_idx: t.idx: unsupported IDX type 0x07 (lvae reads ...)",
 * "lv.load_npy: w.npy: truncated: the .npy data of shape [3] needs 24
 * bytes, the file has 8".
 *
 * Memory: a file image (read or being written) lives in a "bytes"
 * userdata marked to-be-closed (lua_common.c), so it is freed when the
 * function returns or raises. Not here: the formats themselves (npy.c,
 * amat.c, idx.c, gzip.c), checkpoints (lua_checkpoint.c), gather_rows
 * (lua_gather.c).
 */
#include <math.h>
#include <string.h>

#include "amat.h"
#include "files.h"
#include "gzip.h"
#include "idx.h"
#include "lua_common.h"
#include "npy.h"

/* ---- .npy ------------------------------------------------------------- */

/* lv.save_npy(path, tensor): version 1.0, C order, '<f4' or '<f8' */
static int io_save_npy(lua_State *L)
{
    const char *path = lv_lua_check_path(L, 1);
    lv_tensor *t = lv_lua_check_tensor(L, 2);
    lv_io_writer *w = lv_lua_push_bytes(L);
    if (lv_npy_encode(w, t) < 0 ||
        lv_io_write_file_atomic(path, w->data, w->len) < 0)
        lv_lua_raise_file(L, "lv.save_npy", path);
    lv_io_writer_free(w);
    return 0;
}

/* lv.load_npy(path [, dtype]): f4 -> f32, f8 -> f64, ints and bools ->
 * f64, unless dtype says otherwise. */
static int io_load_npy(lua_State *L)
{
    const char *path = lv_lua_check_path(L, 1);
    int dtype = lua_isnoneornil(L, 2) ? -1
                                      : (int)lv_lua_opt_dtype(L, 2, LV_DTYPE_F32);
    lua_settop(L, 2);
    lv_io_writer *buf = lv_lua_read_file(L, "lv.load_npy", path);
    lv_tensor *t = lv_npy_decode(buf->data, buf->len, dtype);
    if (!t)
        lv_lua_raise_file(L, "lv.load_npy", path);
    lv_lua_push_tensor(L, t, "lv.load_npy");
    return 1;
}

/* The bytes of the file at path, gunzipped when they are gzip (told by
 * the magic, not the name), kept alive on the stack: *data and *len point
 * at them. Returns whether they were gzip. */
static int read_file_gunzipped(lua_State *L, const char *fname, const char *path,
                               const uint8_t **data, size_t *len)
{
    lv_io_writer *file = lv_lua_read_file(L, fname, path);
    *data = file->data;
    *len = file->len;
    if (!lv_io_is_gzip(*data, *len))
        return 0;
    lv_io_writer *raw = lv_lua_push_bytes(L);
    if (lv_io_gunzip(*data, *len, LV_GUNZIP_LIMIT, raw) < 0)
        lv_lua_raise_file(L, fname, path);
    lv_io_writer_free(file);
    *data = raw->data;
    *len = raw->len;
    return 1;
}

/* Raises the decoder's error, saying when it was in gunzipped data. */
static int raise_decoded(lua_State *L, const char *fname, const char *path, int gz)
{
    if (gz)
        return luaL_error(L, "%s: %s: %s (in the gunzipped data)", fname, path,
                          lv_error_message());
    return lv_lua_raise_file(L, fname, path);
}

/* ---- .amat ------------------------------------------------------------- */

/* lv.load_amat(path [, dtype]) -> tensor [rows, columns]: a text matrix,
 * raw or gzip (by its magic), in f32 unless dtype says f64. */
static int io_load_amat(lua_State *L)
{
    const char *path = lv_lua_check_path(L, 1);
    int dtype = (int)lv_lua_opt_dtype(L, 2, LV_DTYPE_F32);
    lua_settop(L, 2);
    const uint8_t *data;
    size_t len;
    int gz = read_file_gunzipped(L, "lv.load_amat", path, &data, &len);
    lv_tensor *t = lv_amat_decode(data, len, dtype);
    if (!t)
        return raise_decoded(L, "lv.load_amat", path, gz);
    lv_lua_push_tensor(L, t, "lv.load_amat");
    return 1;
}

/* ---- IDX -------------------------------------------------------------- */

/* lv.load_idx(path [, dtype] [, {scale = s}]) -> tensor, type: raw or
 * gzip (recognised by its magic, not by the name); the values as stored,
 * in f32 (u8, i8, i16, f32 files) or f64 (i32, f64) unless dtype says
 * otherwise, and multiplied by scale when given (1/255 for pixels in
 * [0, 1]: done here, it spares a second copy of a large data set); type
 * is the file's element type ("u8", ...). */
static int io_load_idx(lua_State *L)
{
    const char *path = lv_lua_check_path(L, 1);
    int opts = 3;
    if (lua_type(L, 2) == LUA_TTABLE)
        opts = 2;
    int dtype = opts == 2 || lua_isnoneornil(L, 2)
                    ? -1 : (int)lv_lua_opt_dtype(L, 2, LV_DTYPE_F32);
    double scale = 1.0;
    if (opts == 2 && !lua_isnoneornil(L, 3))
        luaL_typeerror(L, 2, "dtype name");   /* load_idx(path, {..}, more) */
    if (!lua_isnoneornil(L, opts)) {
        static const char *const known[] = {"scale", NULL};
        lv_lua_check_options(L, opts, known);
        if (lua_getfield(L, opts, "scale") != LUA_TNIL) {
            int isnum;
            scale = (double)lua_tonumberx(L, -1, &isnum);
            luaL_argcheck(L, isnum && isfinite(scale), opts,
                          "scale must be a finite number");
        }
        lua_pop(L, 1);
    }
    lua_settop(L, 3);
    const uint8_t *data;
    size_t len;
    int gz = read_file_gunzipped(L, "lv.load_idx", path, &data, &len);
    lv_idx_header h;
    const char *type = lv_idx_parse_header(data, len, &h) == 0
                           ? lv_idx_type_name(h.type) : NULL;
    lv_tensor *t = lv_idx_decode(data, len, dtype);
    if (!t)
        return raise_decoded(L, "lv.load_idx", path, gz);
    if (scale != 1.0) {
        int64_t n = lv_tensor_numel(t);
        void *p = lv_tensor_data(t);
        for (int64_t i = 0; i < n; i++)         /* in double, rounded once */
            lv_store_double(p, t->dtype, i, lv_load_double(p, t->dtype, i) * scale);
    }
    lv_lua_push_tensor(L, t, "lv.load_idx");
    lua_pushstring(L, type);
    return 2;
}

/* Does path end in ".gz"? */
static int ends_in_gz(const char *path)
{
    size_t n = strlen(path);
    return n >= 3 && strcmp(path + n - 3, ".gz") == 0;
}

/* lv.save_idx(path, tensor [, type] [, opts]) */
static int io_save_idx(lua_State *L)
{
    const char *path = lv_lua_check_path(L, 1);
    lv_tensor *t = lv_lua_check_tensor(L, 2);
    int type = t->dtype == LV_DTYPE_F64 ? LV_IDX_F64 : LV_IDX_F32;
    int opts = 4;
    if (lua_type(L, 3) == LUA_TTABLE) {
        opts = 3;
    } else if (!lua_isnoneornil(L, 3)) {
        const char *name = luaL_checkstring(L, 3);
        type = lv_idx_type_from_name(name);
        if (type < 0)
            return luaL_argerror(L, 3, lua_pushfstring(L, "unknown IDX type "
                                 "'%s' (expected u8, i8, i16, i32, f32 or "
                                 "f64)", name));
    }
    int gzip = ends_in_gz(path);
    if (!lua_isnoneornil(L, opts)) {
        static const char *const known[] = {"gzip", NULL};
        lv_lua_check_options(L, opts, known);
        if (lua_getfield(L, opts, "gzip") != LUA_TNIL) {
            luaL_argcheck(L, lua_isboolean(L, -1), opts, "option 'gzip' must "
                          "be a boolean");
            gzip = lua_toboolean(L, -1);
        }
        lua_pop(L, 1);
    }
    lua_settop(L, 4);
    lv_io_writer *w = lv_lua_push_bytes(L);
    if (lv_idx_encode(w, t, type) < 0)
        lv_lua_raise_file(L, "lv.save_idx", path);
    if (gzip) {
        lv_io_writer *z = lv_lua_push_bytes(L);
        if (lv_io_gzip(z, w->data, w->len) < 0)
            lv_lua_raise_file(L, "lv.save_idx", path);
        lv_io_writer_free(w);
        w = z;
    }
    if (lv_io_write_file_atomic(path, w->data, w->len) < 0)
        lv_lua_raise_file(L, "lv.save_idx", path);
    lv_io_writer_free(w);
    return 0;
}

void lv_open_io(lua_State *L)
{
    static const luaL_Reg fns[] = {
        {"save_npy", io_save_npy},
        {"load_npy", io_load_npy},
        {"load_amat", io_load_amat},
        {"save_idx", io_save_idx},
        {"load_idx", io_load_idx},
        {NULL, NULL},
    };
    lv_lua_register(L, fns, 0);
}
