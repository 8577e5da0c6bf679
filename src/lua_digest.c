/*
 * lua_digest.c -- binds digest.h:
 *
 *   lv.sha256_file(path) -> "9f86d081..." (64 lower-case hex digits)
 *   lv.crc32(t) -> integer in [0, 2^32): of t's dtype, shape and values
 */
#include "digest.h"
#include "lua_common.h"

static int digest_sha256_file(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    char hex[LV_SHA256_HEX];
    if (lv_sha256_file(path, hex) != 0)
        return luaL_error(L, "lv.sha256_file: %s: %s", path, lv_error_message());
    lua_pushstring(L, hex);
    return 1;
}

static int digest_crc32(lua_State *L)
{
    lv_tensor *t = lv_lua_check_tensor(L, 1);
    uint32_t crc;
    if (lv_crc32_tensor(t, &crc) != 0)
        return lv_lua_raise(L, "crc32");
    lua_pushinteger(L, (lua_Integer)crc);
    return 1;
}

void lv_open_digest(lua_State *L)
{
    static const luaL_Reg fns[] = {
        {"sha256_file", digest_sha256_file},
        {"crc32", digest_crc32},
        {NULL, NULL},
    };
    lv_lua_register(L, fns, 0);
}
