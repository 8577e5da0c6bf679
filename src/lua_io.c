/*
 * lua_io.c -- the Lua face of io.c:
 *
 *   lv.save(path, value)          a checkpoint of a Lua value
 *   lv.load(path) -> value
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
 *   lv.gather_rows(x, rows) -> tensor       (also x:gather_rows(rows))
 *                                 rows of x by 1-based indices (a list or
 *                                 a 1-d tensor), into a new contiguous
 *                                 tensor: how data batches are made
 *
 * A checkpoint holds false/true, integers, floats, strings, tensors and
 * tables of those (keys: strings, integers, floats), nested at most
 * LV_CKPT_MAX_DEPTH deep. Integers come back integers and floats floats
 * (NaN, infinities and -0.0 included); tensors come back contiguous with
 * their dtype, shape and bits. A table is saved by its raw contents:
 * metatables are not saved, and a table met twice (not a cycle) is saved
 * twice and comes back as two tables.
 *
 * Errors name the function and the file, then what is wrong:
 * "lv.load: runs/x.ckpt: checksum mismatch: the file is damaged",
 * "lv.load_idx: t.idx: unsupported IDX type 0x07 (lvae reads ...)",
 * "lv.save: runs/x.ckpt: cannot save a function (at model.layers[2].fn)".
 *
 * Memory: the file image (read or being written) lives in a "bytes"
 * userdata marked to-be-closed, so it is freed when the function returns
 * or raises. Not here: the formats themselves (io.c).
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "amat.h"
#include "io.h"
#include "lua_common.h"

#define BYTES_MT "lvae.io.bytes"
/* The metatable name of lua_rng.c's generators (private to that file). */


/* ---- a buffer owned by Lua ------------------------------------------- */

static int bytes_free(lua_State *L)
{
    lv_io_writer_free(luaL_checkudata(L, 1, BYTES_MT));
    return 0;
}

/* Pushes an empty buffer that is freed when the calling C function
 * returns or raises (a to-be-closed slot). */
static lv_io_writer *push_bytes(lua_State *L)
{
    lv_io_writer *w = lua_newuserdatauv(L, sizeof *w, 0);
    lv_io_writer_init(w);
    luaL_setmetatable(L, BYTES_MT);
    lua_toclose(L, -1);
    return w;
}

/* The path argument at idx: a string without zero bytes (the C library
 * would silently stop at the first one). */
static const char *check_path(lua_State *L, int idx)
{
    size_t len;
    const char *path = luaL_checklstring(L, idx, &len);
    luaL_argcheck(L, strlen(path) == len, idx, "path contains a zero byte");
    luaL_argcheck(L, len > 0, idx, "path is empty");
    return path;
}

/* "fname: path: <the core's message>" */
static int raise_core(lua_State *L, const char *fname, const char *path)
{
    return luaL_error(L, "%s: %s: %s", fname, path, lv_error_message());
}

/* ---- lv.save ---------------------------------------------------------- */

typedef struct save_state {
    lua_State *L;
    lv_io_writer *w;
    const char *path;
    int seen;                           /* stack index: tables being walked */
    int keys[LV_CKPT_MAX_DEPTH];        /* stack index of the key per level */
} save_state;

static int is_identifier(const char *s, size_t n)
{
    static const char *const keywords[] = {
        "and", "break", "do", "else", "elseif", "end", "false", "for",
        "function", "goto", "if", "in", "local", "nil", "not", "or",
        "repeat", "return", "then", "true", "until", "while", NULL};
    if (n == 0 || (s[0] >= '0' && s[0] <= '9'))
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!(c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9')))
            return 0;
    }
    for (int k = 0; keywords[k]; k++)
        if (strlen(keywords[k]) == n && memcmp(keywords[k], s, n) == 0)
            return 0;
    return 1;
}

/* Pushes where the value at `depth` sits, as Lua would index it:
 * model.layers[2].fn, config["learning rate"], [0.5]. */
static void push_key_path(save_state *s, int depth)
{
    lua_State *L = s->L;
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (int d = 0; d < depth; d++) {
        int k = s->keys[d];
        if (lua_type(L, k) == LUA_TSTRING) {
            size_t n;
            const char *str = lua_tolstring(L, k, &n);
            if (is_identifier(str, n)) {
                if (d > 0)
                    luaL_addchar(&b, '.');
                luaL_addlstring(&b, str, n);
                continue;
            }
            luaL_addstring(&b, "[\"");
            for (size_t i = 0; i < n && i < 64; i++) {
                unsigned char c = (unsigned char)str[i];
                if (c == '"' || c == '\\') {
                    luaL_addchar(&b, '\\');
                    luaL_addchar(&b, (char)c);
                } else if (c < 0x20 || c >= 0x7f) {
                    char esc[8];
                    snprintf(esc, sizeof esc, "\\%u", c);
                    luaL_addstring(&b, esc);
                } else {
                    luaL_addchar(&b, (char)c);
                }
            }
            luaL_addstring(&b, n > 64 ? "...\"]" : "\"]");
        } else if (lua_isinteger(L, k)) {
            lua_pushfstring(L, "[%I]", (LUAI_UACINT)lua_tointeger(L, k));
            luaL_addvalue(&b);
        } else {
            lua_pushfstring(L, "[%f]", (LUAI_UACNUMBER)lua_tonumber(L, k));
            luaL_addvalue(&b);
        }
    }
    luaL_pushresult(&b);
}

/* Raises "lv.save: path: <what> (at <key path>)<hint>". */
static int save_fail(save_state *s, int depth, const char *what,
                     const char *hint)
{
    lua_State *L = s->L;
    if (depth == 0)
        return luaL_error(L, "lv.save: %s: %s%s", s->path, what, hint);
    push_key_path(s, depth);
    return luaL_error(L, "lv.save: %s: %s (at %s)%s", s->path, what,
                      lua_tostring(L, -1), hint);
}

static void save_check(save_state *s, int status)
{
    if (status < 0)
        raise_core(s->L, "lv.save", s->path);
}

static void save_value(save_state *s, int idx, int depth);

static void save_table(save_state *s, int idx, int depth)
{
    lua_State *L = s->L;
    if (depth >= LV_CKPT_MAX_DEPTH)
        save_fail(s, depth, "cannot save tables nested more than 64 deep",
                  "");
    luaL_checkstack(L, 8, "lv.save: tables nested too deep");
    lua_pushvalue(L, idx);
    if (lua_rawget(L, s->seen) != LUA_TNIL)
        save_fail(s, depth, "cannot save a table that contains itself", "");
    lua_pop(L, 1);
    lua_pushvalue(L, idx);
    lua_pushboolean(L, 1);
    lua_rawset(L, s->seen);

    uint64_t n = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        n++;
    }
    save_check(s, lv_ckpt_put_table(s->w, n));

    uint64_t written = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        int key = lua_absindex(L, -2), value = lua_absindex(L, -1);
        s->keys[depth] = key;
        /* Never lua_tolstring a number key: that would change it under
         * lua_next. */
        switch (lua_type(L, key)) {
        case LUA_TSTRING: {
            size_t len;
            const char *str = lua_tolstring(L, key, &len);
            save_check(s, lv_ckpt_put_string(s->w, str, len));
            break;
        }
        case LUA_TNUMBER:
            if (lua_isinteger(L, key))
                save_check(s, lv_ckpt_put_int(s->w, lua_tointeger(L, key)));
            else
                save_check(s, lv_ckpt_put_float(s->w, lua_tonumber(L, key)));
            break;
        default:
            lua_pushfstring(L, "cannot save a table key of type %s",
                            luaL_typename(L, key));
            save_fail(s, depth, lua_tostring(L, -1),
                      "; keys must be strings or numbers");
        }
        save_value(s, value, depth + 1);
        lua_pop(L, 1);
        written++;
    }
    /* Only a finalizer run mid-save could change the table; refuse a
     * checkpoint whose count would lie. */
    if (written != n)
        save_fail(s, depth, "a table changed while it was being saved", "");

    lua_pushvalue(L, idx);
    lua_pushnil(L);
    lua_rawset(L, s->seen);
}

/* Encodes the value at stack index idx (absolute), found at `depth`. */
static void save_value(save_state *s, int idx, int depth)
{
    lua_State *L = s->L;
    switch (lua_type(L, idx)) {
    case LUA_TBOOLEAN:
        save_check(s, lv_ckpt_put_bool(s->w, lua_toboolean(L, idx)));
        return;
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx))
            save_check(s, lv_ckpt_put_int(s->w, lua_tointeger(L, idx)));
        else
            save_check(s, lv_ckpt_put_float(s->w, lua_tonumber(L, idx)));
        return;
    case LUA_TSTRING: {
        size_t len;
        const char *str = lua_tolstring(L, idx, &len);
        save_check(s, lv_ckpt_put_string(s->w, str, len));
        return;
    }
    case LUA_TTABLE:
        save_table(s, idx, depth);
        return;
    case LUA_TUSERDATA: {
        lv_tensor **box = luaL_testudata(L, idx, LV_TENSOR_MT);
        if (box && !*box)
            save_fail(s, depth, "cannot save a tensor that has been freed "
                      "(closed)", "");
        if (box) {
            save_check(s, lv_ckpt_put_tensor(s->w, *box));
            return;
        }
        if (luaL_testudata(L, idx, LV_GENERATOR_MT))
            save_fail(s, depth, "cannot save a Generator",
                      "; save g:get_state() and restore it with "
                      "g:set_state(state)");
        break;
    }
    case LUA_TNIL:
        save_fail(s, depth, "cannot save nil", "");
        return;
    default:
        break;
    }
    lua_pushfstring(L, "cannot save a %s", luaL_typename(L, idx));
    save_fail(s, depth, lua_tostring(L, -1), "");
}

/* lv.save(path, value): writes value as a checkpoint, atomically. */
static int io_save(lua_State *L)
{
    const char *path = check_path(L, 1);
    luaL_checkany(L, 2);
    lua_settop(L, 2);
    save_state s = {L, NULL, path, 0, {0}};
    s.w = push_bytes(L);                        /* 3 */
    lua_newtable(L);                            /* 4: tables being walked */
    s.seen = 4;
    save_check(&s, lv_ckpt_begin(s.w));
    save_value(&s, 2, 0);
    save_check(&s, lv_ckpt_end(s.w));
    save_check(&s, lv_io_write_file_atomic(path, s.w->data, s.w->len));
    lv_io_writer_free(s.w);
    return 0;
}

/* ---- lv.load ---------------------------------------------------------- */

/* Reads the whole file at path into a to-be-closed buffer. */
static lv_io_writer *read_file(lua_State *L, const char *fname,
                               const char *path)
{
    lv_io_writer *buf = push_bytes(L);
    if (lv_io_read_file(path, &buf->data, &buf->len) < 0)
        raise_core(L, fname, path);
    buf->cap = buf->len;
    return buf;
}

/* Pushes the next value of a validated payload. */
static void load_value(lua_State *L, lv_ckpt_reader *cr, int depth,
                       int is_key, const char *path)
{
    lv_ckpt_value v;
    if (lv_ckpt_read(cr, depth, is_key, &v) < 0)
        raise_core(L, "lv.load", path);
    luaL_checkstack(L, 4, "lv.load: tables nested too deep");
    switch (v.tag) {
    case LV_CKPT_FALSE:
    case LV_CKPT_TRUE:
        lua_pushboolean(L, v.tag == LV_CKPT_TRUE);
        break;
    case LV_CKPT_INT:
        lua_pushinteger(L, (lua_Integer)v.i);
        break;
    case LV_CKPT_FLOAT:
        lua_pushnumber(L, (lua_Number)v.f);
        break;
    case LV_CKPT_STRING:
        lua_pushlstring(L, (const char *)v.bytes, v.size);
        break;
    case LV_CKPT_TABLE:
        lua_newtable(L);
        for (uint64_t k = 0; k < v.n_pairs; k++) {
            load_value(L, cr, depth + 1, 1, path);
            load_value(L, cr, depth + 1, 0, path);
            lua_rawset(L, -3);
        }
        break;
    case LV_CKPT_TENSOR: {
        lv_tensor *t = lv_ckpt_tensor(&v);
        if (!t)
            raise_core(L, "lv.load", path);
        lv_lua_push_tensor(L, t, "lv.load");
        break;
    }
    }
}

/* lv.load(path) -> the value saved by lv.save */
static int io_load(lua_State *L)
{
    const char *path = check_path(L, 1);
    lv_io_writer *buf = read_file(L, "lv.load", path);
    const uint8_t *payload;
    size_t plen;
    /* The whole tree is checked before anything is built. */
    if (lv_ckpt_open(buf->data, buf->len, &payload, &plen) < 0 ||
        lv_ckpt_validate(payload, plen, LV_CKPT_HEADER_SIZE) < 0)
        raise_core(L, "lv.load", path);
    lv_ckpt_reader cr;
    lv_ckpt_reader_init(&cr, payload, plen, LV_CKPT_HEADER_SIZE);
    load_value(L, &cr, 0, 0, path);
    return 1;
}

/* ---- .npy ------------------------------------------------------------- */

/* lv.save_npy(path, tensor): version 1.0, C order, '<f4' or '<f8' */
static int io_save_npy(lua_State *L)
{
    const char *path = check_path(L, 1);
    lv_tensor *t = lv_lua_check_tensor(L, 2);
    lv_io_writer *w = push_bytes(L);
    if (lv_npy_encode(w, t) < 0 ||
        lv_io_write_file_atomic(path, w->data, w->len) < 0)
        raise_core(L, "lv.save_npy", path);
    lv_io_writer_free(w);
    return 0;
}

/* lv.load_npy(path [, dtype]): f4 -> f32, f8 -> f64, ints and bools ->
 * f64, unless dtype says otherwise. */
static int io_load_npy(lua_State *L)
{
    const char *path = check_path(L, 1);
    int dtype = lua_isnoneornil(L, 2) ? -1
                                      : (int)lv_lua_opt_dtype(L, 2, LV_DTYPE_F32);
    lua_settop(L, 2);
    lv_io_writer *buf = read_file(L, "lv.load_npy", path);
    lv_tensor *t = lv_npy_decode(buf->data, buf->len, dtype);
    if (!t)
        raise_core(L, "lv.load_npy", path);
    lv_lua_push_tensor(L, t, "lv.load_npy");
    return 1;
}

/* The bytes of the file at path, gunzipped when they are gzip (told by
 * the magic, not the name), kept alive on the stack: *data and *len point
 * at them. Returns whether they were gzip. */
static int read_file_gunzipped(lua_State *L, const char *fname, const char *path,
                               const uint8_t **data, size_t *len)
{
    lv_io_writer *file = read_file(L, fname, path);
    *data = file->data;
    *len = file->len;
    if (!lv_io_is_gzip(*data, *len))
        return 0;
    lv_io_writer *raw = push_bytes(L);
    if (lv_io_gunzip(*data, *len, LV_GUNZIP_LIMIT, raw) < 0)
        raise_core(L, fname, path);
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
    return raise_core(L, fname, path);
}

/* ---- .amat ------------------------------------------------------------- */

/* lv.load_amat(path [, dtype]) -> tensor [rows, columns]: a text matrix,
 * raw or gzip (by its magic), in f32 unless dtype says f64. */
static int io_load_amat(lua_State *L)
{
    const char *path = check_path(L, 1);
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
    const char *path = check_path(L, 1);
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
        if (t->dtype == LV_DTYPE_F32) {
            float *p = lv_tensor_data(t);
            for (int64_t i = 0; i < n; i++)     /* in double, rounded once */
                p[i] = (float)((double)p[i] * scale);
        } else {
            double *p = lv_tensor_data(t);
            for (int64_t i = 0; i < n; i++)
                p[i] *= scale;
        }
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
    const char *path = check_path(L, 1);
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
    lv_io_writer *w = push_bytes(L);
    if (lv_idx_encode(w, t, type) < 0)
        raise_core(L, "lv.save_idx", path);
    if (gzip) {
        lv_io_writer *z = push_bytes(L);
        if (lv_io_gzip(z, w->data, w->len) < 0)
            raise_core(L, "lv.save_idx", path);
        lv_io_writer_free(w);
        w = z;
    }
    if (lv_io_write_file_atomic(path, w->data, w->len) < 0)
        raise_core(L, "lv.save_idx", path);
    lv_io_writer_free(w);
    return 0;
}

/* ---- gather_rows -------------------------------------------------------- */

/* One 1-based row index (negative counts from the end) as 0-based, or a
 * Lua error naming its position in the list. */
static int64_t check_row(lua_State *L, double v, int is_number, int64_t pos,
                         int64_t rows)
{
    if (!is_number || v != floor(v))
        return luaL_argerror(L, 2, lua_pushfstring(L, "row index at position "
                             "%I is not an integer", (LUAI_UACINT)pos));
    if (v >= 1 && v <= (double)rows)
        return (int64_t)v - 1;
    if (v < 0 && v >= -(double)rows)
        return rows + (int64_t)v;
    char text[64];
    snprintf(text, sizeof text, "%.17g", v);
    return luaL_argerror(L, 2, lua_pushfstring(L, "row index %s at position %I "
                         "is out of range (the tensor has %I rows)", text,
                         (LUAI_UACINT)pos, (LUAI_UACINT)rows));
}

/* lv.gather_rows(x, rows): rows a list of indices or a 1-d tensor. */
static int io_gather_rows(lua_State *L)
{
    lv_tensor *x = lv_lua_check_tensor(L, 1);
    luaL_argcheck(L, x->ndim >= 1, 1, "expected a tensor of at least 1 "
                  "dimension");
    luaL_argcheck(L, !x->requires_grad && !x->grad_fn, 1, "gather_rows is "
                  "not differentiable (use x:detach())");
    lv_tensor *idx = lv_lua_test_tensor(L, 2);
    int64_t n;
    if (idx) {
        luaL_argcheck(L, idx->ndim == 1, 2, "expected a 1-d tensor of row "
                      "indices");
        n = idx->shape[0];
    } else {
        luaL_checktype(L, 2, LUA_TTABLE);
        n = (int64_t)lua_rawlen(L, 2);
    }
    lua_settop(L, 2);
    int64_t *rows = lua_newuserdatauv(L, (size_t)(n > 0 ? n : 1) *
                                      sizeof *rows, 0);
    for (int64_t i = 0; i < n; i++) {
        int isnum = 1;
        double v;
        if (idx) {
            v = lv_tensor_get_linear(idx, i);
        } else {
            lua_rawgeti(L, 2, (lua_Integer)(i + 1));
            isnum = lua_type(L, -1) == LUA_TNUMBER;
            v = isnum ? (double)lua_tonumber(L, -1) : 0.0;
            lua_pop(L, 1);
        }
        rows[i] = check_row(L, v, isnum, i + 1, x->shape[0]);
    }
    lv_lua_push_tensor(L, lv_io_gather_rows(x, rows, n), "gather_rows");
    return 1;
}

void lv_open_io(lua_State *L)
{
    static const luaL_Reg fns[] = {
        {"save", io_save},
        {"load", io_load},
        {"save_npy", io_save_npy},
        {"load_npy", io_load_npy},
        {"load_amat", io_load_amat},
        {"save_idx", io_save_idx},
        {"load_idx", io_load_idx},
        {NULL, NULL},
    };
    static const luaL_Reg methods[] = {
        {"gather_rows", io_gather_rows},
        {NULL, NULL},
    };
    lv_lua_handle_metatable(L, BYTES_MT, bytes_free, NULL);
    lv_lua_register(L, fns, 0);
    lv_lua_register(L, methods, 1);
}
