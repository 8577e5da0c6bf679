/*
 * lua_image.c -- the Lua face of image.c:
 *
 *   lv.save_png(path, img)            img [H, W] or [H, W, 3], values in [0, 1]
 *   lv.load_png(path) -> img          f32 [H, W] (gray) or [H, W, 3]
 *   lv.image_grid(images [, opts])    tiles; opts nrow, padding, pad_value, shape
 *   lv.image_scatter(points [, opts]) -> counts [H, W], n_outside
 *   lv.image_extent(points [, margin]) -> {xmin, xmax, ymin, ymax}
 *   core._write_atomic(path, s)       for plot.lua's text files (not in lv)
 *
 * File errors name the function and the file, then the fault:
 * "lv.load_png: x.png: truncated PNG: the file ends before the image does".
 * Bad arguments are luaL_argerror's: "bad argument #2 to 'image_grid'
 * (unknown option 'nrows' (known: nrow, padding, pad_value, shape))".
 *
 * No Lua error is raised while a C buffer is held: load_png reads, decodes
 * and frees before it pushes or raises. Not here: the pictures themselves
 * (image.c), plots (lua/lvae/plot.lua).
 */
#include <math.h>
#include <stdlib.h>

#include "image.h"
#include "files.h"
#include "lua_common.h"

/* Pushes opts[key] (nil when opts is absent) and returns its type. */
static int get_option(lua_State *L, int idx, const char *key)
{
    if (lua_isnoneornil(L, idx)) {
        lua_pushnil(L);
        return LUA_TNIL;
    }
    return lua_getfield(L, idx, key);
}

/* opts[key] as an integer, def when absent. */
static lua_Integer opt_integer(lua_State *L, int idx, const char *key,
                               lua_Integer def)
{
    get_option(L, idx, key);
    lua_Integer v = def;
    if (!lua_isnil(L, -1)) {
        int ok;
        v = lua_tointegerx(L, -1, &ok);
        if (!ok)
            luaL_argerror(L, idx, lua_pushfstring(L,
                "option '%s' must be an integer", key));
    }
    lua_pop(L, 1);
    return v;
}

/* opts[key] as a number, def when absent. */
static lua_Number opt_number(lua_State *L, int idx, const char *key,
                             lua_Number def)
{
    get_option(L, idx, key);
    lua_Number v = def;
    if (!lua_isnil(L, -1)) {
        int ok;
        v = lua_tonumberx(L, -1, &ok);
        if (!ok)
            luaL_argerror(L, idx, lua_pushfstring(L,
                "option '%s' must be a number", key));
    }
    lua_pop(L, 1);
    return v;
}

/* Reads a list of n numbers at opts[key] into out; returns 0 when the
 * option is absent, 1 when read. */
static int opt_numbers(lua_State *L, int idx, const char *key, int n,
                       double *out, const char *what)
{
    if (get_option(L, idx, key) == LUA_TNIL) {
        lua_pop(L, 1);
        return 0;
    }
    if (!lua_istable(L, -1) || luaL_len(L, -1) != n)
        luaL_argerror(L, idx, lua_pushfstring(L, "option '%s' must be %s",
                                              key, what));
    for (int k = 0; k < n; k++) {
        int ok;
        lua_geti(L, -1, k + 1);
        out[k] = lua_tonumberx(L, -1, &ok);
        if (!ok)
            luaL_argerror(L, idx, lua_pushfstring(L,
                "option '%s' must be %s", key, what));
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    return 1;
}

/* ---- PNG files ---------------------------------------------------------- */

/* lv.save_png(path, img): 8-bit gray or RGB, written atomically */
static int image_save_png(lua_State *L)
{
    const char *path = lv_lua_check_path(L, 1);
    lv_tensor *img = lv_lua_check_tensor(L, 2);
    if (lv_image_channels(img) == 0 || img->shape[0] < 1 ||
        img->shape[1] < 1 || img->shape[0] > LV_PNG_MAX_SIDE ||
        img->shape[1] > LV_PNG_MAX_SIDE) {
        char buf[128];
        lv_shape_format(buf, sizeof buf, img->ndim, img->shape);
        return luaL_argerror(L, 2, lua_pushfstring(L,
            "expected an image [H, W] or [H, W, 3] with sides 1 to %d, "
            "got %s", LV_PNG_MAX_SIDE, buf));
    }
    if (lv_png_save(path, img) < 0)
        return lv_lua_raise_file(L, "lv.save_png", path);
    return 0;
}

/* lv.load_png(path) -> f32 [H, W] or [H, W, 3], values k/255 */
static int image_load_png(lua_State *L)
{
    const char *path = lv_lua_check_path(L, 1);
    uint8_t *data = NULL;
    size_t len = 0;
    if (lv_io_read_file(path, &data, &len) < 0)
        return lv_lua_raise_file(L, "lv.load_png", path);
    lv_tensor *t = lv_png_decode(data, len);
    free(data);
    if (!t)
        return lv_lua_raise_file(L, "lv.load_png", path);
    lv_lua_push_tensor(L, t, "load_png");
    return 1;
}

/* ---- grids and point clouds --------------------------------------------- */

/* lv.image_grid(images [, {nrow = 8, padding = 2, pad_value = 0,
 * shape = {H, W} or {H, W, 3}}]): images [N, H, W], [N, H, W, 3], or
 * [N, ...] holding H*W(*3) values per image with shape given. */
static int image_grid(lua_State *L)
{
    static const char *const known[] = {"nrow", "padding", "pad_value",
                                        "shape", NULL};
    lv_tensor *images = lv_lua_check_tensor(L, 1);
    lv_lua_check_options(L, 2, known);
    lua_Integer nrow = opt_integer(L, 2, "nrow", 8);
    lua_Integer padding = opt_integer(L, 2, "padding", 2);
    lua_Number pad_value = opt_number(L, 2, "pad_value", 0.0);
    luaL_argcheck(L, nrow >= 1, 2, "nrow must be at least 1");
    luaL_argcheck(L, padding >= 0 && padding <= 4096, 2,
                  "padding must be 0 to 4096");

    int64_t h, w, c = 1;
    char buf[128];
    lv_shape_format(buf, sizeof buf, images->ndim, images->shape);
    if (get_option(L, 2, "shape") != LUA_TNIL) {
        /* {H, W} or {H, W, 3}: positive integers */
        static const char bad[] = "option 'shape' must be {H, W} or {H, W, 3}";
        int n = lua_istable(L, -1) ? (int)luaL_len(L, -1) : 0;
        luaL_argcheck(L, n == 2 || n == 3, 2, bad);
        int64_t shape[3] = {0, 0, 1};
        for (int k = 0; k < n; k++) {
            int ok;
            lua_geti(L, -1, k + 1);
            lua_Integer v = lua_tointegerx(L, -1, &ok);
            luaL_argcheck(L, ok && v >= 1 && v <= ((lua_Integer)1 << 31), 2, bad);
            shape[k] = (int64_t)v;
            lua_pop(L, 1);
        }
        lua_pop(L, 1);
        h = shape[0];
        w = shape[1];
        c = shape[2];
        luaL_argcheck(L, c == 1 || c == 3, 2, bad);
        luaL_argcheck(L, images->ndim >= 2, 1, lua_pushfstring(L,
            "expected images [N, ...] with option 'shape', got %s", buf));
    } else {
        lua_pop(L, 1);
        if (images->ndim == 3) {
            h = images->shape[1];
            w = images->shape[2];
        } else if (images->ndim == 4 && images->shape[3] == 3) {
            h = images->shape[1];
            w = images->shape[2];
            c = 3;
        } else {
            return luaL_argerror(L, 1, lua_pushfstring(L,
                "expected images [N, H, W] or [N, H, W, 3] (or [N, D] with "
                "{shape = {H, W}}), got %s", buf));
        }
    }
    lv_tensor *out = lv_image_grid(images, h, w, c, nrow, padding, pad_value);
    lv_lua_push_tensor(L, out, "image_grid");
    return 1;
}

/* The range at opts.range, or the points' extent padded by 5%. */
static void check_range(lua_State *L, lv_tensor *points, int idx,
                        double range[4])
{
    static const char what[] = "{xmin, xmax, ymin, ymax} (finite, "
                               "xmin < xmax, ymin < ymax)";
    if (!opt_numbers(L, idx, "range", 4, range, what)) {
        if (lv_image_extent(points, 0.05, range) < 0)
            lv_lua_raise(L, "image_scatter");
        return;
    }
    luaL_argcheck(L, isfinite(range[0]) && isfinite(range[1]) &&
                  isfinite(range[2]) && isfinite(range[3]) &&
                  range[0] < range[1] && range[2] < range[3], idx,
                  lua_pushfstring(L, "option 'range' must be %s", what));
}

/* lv.image_scatter(points [S, 2] [, {size = 128 or height =, width =,
 * range = {xmin, xmax, ymin, ymax}}]) -> counts [H, W] f32, n_outside */
static int image_scatter(lua_State *L)
{
    static const char *const known[] = {"size", "height", "width", "range",
                                        NULL};
    lv_tensor *points = lv_lua_check_tensor(L, 1);
    lv_lua_check_options(L, 2, known);
    lua_Integer size = opt_integer(L, 2, "size", 128);
    lua_Integer h = opt_integer(L, 2, "height", size);
    lua_Integer w = opt_integer(L, 2, "width", size);
    luaL_argcheck(L, h >= 1 && w >= 1 && h <= LV_PNG_MAX_SIDE &&
                  w <= LV_PNG_MAX_SIDE, 2, "sizes must be 1 to 16384");
    if (points->ndim != 2 || points->shape[1] != 2) {
        char buf[128];
        lv_shape_format(buf, sizeof buf, points->ndim, points->shape);
        return luaL_argerror(L, 1, lua_pushfstring(L,
            "expected points [S, 2], got %s", buf));
    }
    double range[4];
    check_range(L, points, 2, range);
    int64_t outside = 0;
    lv_tensor *out = lv_image_scatter(points, h, w, range, &outside);
    lv_lua_push_tensor(L, out, "image_scatter");
    lua_pushinteger(L, outside);
    return 2;
}

/* lv.image_extent(points [S, 2] [, margin = 0.05]) -> {xmin, xmax, ymin,
 * ymax} of the finite points, widened by margin times the width */
static int image_extent(lua_State *L)
{
    lv_tensor *points = lv_lua_check_tensor(L, 1);
    lua_Number margin = luaL_optnumber(L, 2, 0.05);
    double range[4];
    if (lv_image_extent(points, margin, range) < 0)
        return lv_lua_raise(L, "image_extent");
    lua_createtable(L, 4, 0);
    for (int k = 0; k < 4; k++) {
        lua_pushnumber(L, range[k]);
        lua_rawseti(L, -2, k + 1);
    }
    return 1;
}

/* core._write_atomic(path, bytes): files.c's atomic write (temporary, fsync,
 * rename) for the text files of lua/lvae/plot.lua; raises "path: fault". */
static int image_write_atomic(lua_State *L)
{
    const char *path = lv_lua_check_path(L, 1);
    size_t len;
    const char *data = luaL_checklstring(L, 2, &len);
    if (lv_io_write_file_atomic(path, data, len) < 0)
        return luaL_error(L, "%s: %s", path, lv_error_message());
    return 0;
}

void lv_open_image(lua_State *L)
{
    static const luaL_Reg fns[] = {
        {"save_png", image_save_png},
        {"load_png", image_load_png},
        {"image_grid", image_grid},
        {"image_scatter", image_scatter},
        {"image_extent", image_extent},
        {"_write_atomic", image_write_atomic},
        {NULL, NULL},
    };
    lv_lua_register(L, fns, 0);
}
