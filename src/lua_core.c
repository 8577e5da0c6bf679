/*
 * lua_core.c -- luaopen_lvae_core: builds the module table and the tensor
 * method table, and lets each binding file register into them. The Lua
 * side (lua/lvae/init.lua) turns this into the public `lv` table.
 */
#include "lua_common.h"

int luaopen_lvae_core(lua_State *L);

int luaopen_lvae_core(lua_State *L)
{
    lua_newtable(L);                 /* the module */
    lua_newtable(L);                 /* tensor methods */
    lv_open_tensor(L);
    lv_open_ops(L);
    lv_open_linalg(L);
    lv_open_rng(L);
    lua_setfield(L, -2, "_methods");
    luaL_getmetatable(L, LV_TENSOR_MT);
    lua_setfield(L, -2, "_Tensor");
    return 1;
}
