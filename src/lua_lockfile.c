/*
 * lua_lockfile.c -- binds lockfile.h for the runner (lua/lvae/run.lua):
 *
 *   local lock, holder, message = core._lock(path)
 *
 * gives a lock object (released by lock:release(), at garbage collection,
 * with <close>, or when the process ends) or nil, the holder's pid (0 if
 * unknown) and a message.
 */
#include "lockfile.h"
#include "lua_common.h"

#define LOCK_MT "lvae.Lock"

static int lock_release(lua_State *L)
{
    int *fd = luaL_checkudata(L, 1, LOCK_MT);
    lv_unlock_file(*fd);
    *fd = -1;
    return 0;
}

static int lock_take(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    int *box = lua_newuserdatauv(L, sizeof *box, 0);
    *box = -1;
    luaL_setmetatable(L, LOCK_MT);
    long holder = 0;
    int fd = lv_lock_file(path, &holder);
    if (fd < 0) {
        lua_pushnil(L);
        lua_pushinteger(L, (lua_Integer)holder);
        lua_pushstring(L, lv_error_message());
        return 3;
    }
    *box = fd;
    return 1;
}

void lv_open_lockfile(lua_State *L)
{
    static const luaL_Reg fns[] = {
        {"_lock", lock_take},
        {NULL, NULL},
    };
    lv_lua_handle_metatable(L, LOCK_MT, lock_release, "release");
    lv_lua_register(L, fns, 0);
}
