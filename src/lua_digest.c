/*
 * lua_digest.c -- binds digest.h:
 *
 *   lv.sha256_file(path) -> "9f86d081..." (64 lower-case hex digits)
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

void lv_open_digest(lua_State *L)
{
    static const luaL_Reg fns[] = {
        {"sha256_file", digest_sha256_file},
        {NULL, NULL},
    };
    lv_lua_register(L, fns, 0);
}
