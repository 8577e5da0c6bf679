/*
 * lua_checkpoint.c -- the Lua face of checkpoint.c:
 *
 *   lv.save(path, value)          a checkpoint of a Lua value, written
 *                                 atomically
 *   lv.load(path) -> value
 *
 * A checkpoint holds false/true, integers, floats, strings, tensors and
 * tables of those (keys: strings, integers, floats), nested at most
 * LV_CKPT_MAX_DEPTH deep. Integers come back integers and floats floats
 * (NaN, infinities and -0.0 included); tensors come back contiguous with
 * their dtype, shape and bits. A table is saved by its raw contents:
 * metatables are not saved, and a table met twice (not a cycle) is saved
 * twice and comes back as two tables.
 *
 * Saving walks the value depth first, keeping the key at each level on
 * the stack so that a refusal names the place, as Lua would index it;
 * loading checks the whole file (header, checksum, every value) before
 * it builds anything.
 *
 * Errors name the function and the file, then what is wrong:
 * "lv.load: runs/x.ckpt: checksum mismatch: the file is damaged",
 * "lv.save: runs/x.ckpt: cannot save a function (at model.layers[2].fn)".
 *
 * Memory: the file image (read or being written) lives in a "bytes"
 * userdata marked to-be-closed (lua_common.c), so it is freed when the
 * function returns or raises. Not here: the format itself (checkpoint.c).
 */
#include <stdio.h>
#include <string.h>

#include "checkpoint.h"
#include "files.h"
#include "lua_common.h"

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
        lv_lua_raise_file(s->L, "lv.save", s->path);
}

/* Encodes the number or string at idx (a value, or a table's key) and
 * returns 1; returns 0, writing nothing, for any other type. A number is
 * never passed to lua_tolstring: that would change a key under
 * lua_next. */
static int save_scalar(save_state *s, int idx)
{
    lua_State *L = s->L;
    switch (lua_type(L, idx)) {
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx))
            save_check(s, lv_ckpt_put_int(s->w, lua_tointeger(L, idx)));
        else
            save_check(s, lv_ckpt_put_float(s->w, lua_tonumber(L, idx)));
        return 1;
    case LUA_TSTRING: {
        size_t len;
        const char *str = lua_tolstring(L, idx, &len);
        save_check(s, lv_ckpt_put_string(s->w, str, len));
        return 1;
    }
    default:
        return 0;
    }
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
        if (!save_scalar(s, key)) {
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
    case LUA_TSTRING:
        save_scalar(s, idx);
        return;
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
static int checkpoint_save(lua_State *L)
{
    const char *path = lv_lua_check_path(L, 1);
    luaL_checkany(L, 2);
    lua_settop(L, 2);
    save_state s = {L, NULL, path, 0, {0}};
    s.w = lv_lua_push_bytes(L);                 /* 3 */
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

/* Pushes the next value of a validated payload. */
static void load_value(lua_State *L, lv_ckpt_reader *cr, int depth,
                       int is_key, const char *path)
{
    lv_ckpt_value v;
    if (lv_ckpt_read(cr, depth, is_key, &v) < 0)
        lv_lua_raise_file(L, "lv.load", path);
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
            lv_lua_raise_file(L, "lv.load", path);
        lv_lua_push_tensor(L, t, "lv.load");
        break;
    }
    }
}

/* lv.load(path) -> the value saved by lv.save */
static int checkpoint_load(lua_State *L)
{
    const char *path = lv_lua_check_path(L, 1);
    lv_io_writer *buf = lv_lua_read_file(L, "lv.load", path);
    const uint8_t *payload;
    size_t plen;
    /* The whole tree is checked before anything is built. */
    if (lv_ckpt_open(buf->data, buf->len, &payload, &plen) < 0 ||
        lv_ckpt_validate(payload, plen, LV_CKPT_HEADER_SIZE) < 0)
        lv_lua_raise_file(L, "lv.load", path);
    lv_ckpt_reader cr;
    lv_ckpt_reader_init(&cr, payload, plen, LV_CKPT_HEADER_SIZE);
    load_value(L, &cr, 0, 0, path);
    return 1;
}

void lv_open_checkpoint(lua_State *L)
{
    static const luaL_Reg fns[] = {
        {"save", checkpoint_save},
        {"load", checkpoint_load},
        {NULL, NULL},
    };
    lv_lua_register(L, fns, 0);
}
