/*
 * lua_signals.c -- SIGTERM and SIGHUP stop a run the way Ctrl-C does.
 *
 *   local trap = core._trap_termination()   -- until trap:restore()
 *
 * The standalone interpreter turns SIGINT into the error "interrupted!"
 * (a hook set from the signal handler, raised at the next Lua
 * instruction). A cluster's scheduler or a closed terminal sends SIGTERM
 * or SIGHUP instead, which would kill the process with no word and no
 * results.json; with the trap they raise "interrupted by SIGTERM!" the
 * same way, so that the runner writes the interruption down, names the
 * last checkpoint and exits with 128 + the signal's number. Only the hook
 * is set in the handler (as lua.c does): nothing else is safe there.
 */
#include <signal.h>
#include <string.h>

#include "lua_common.h"

#define TRAP_MT "lvae.SignalTrap"

static lua_State *trap_state;
static volatile sig_atomic_t trap_signal;

static void stop_hook(lua_State *L, lua_Debug *ar)
{
    (void)ar;
    lua_sethook(L, NULL, 0, 0);
    luaL_error(L, "interrupted by %s!", trap_signal == SIGHUP ? "SIGHUP" : "SIGTERM");
}

static void on_signal(int sig)
{
    trap_signal = sig;
    lua_sethook(trap_state, stop_hook, LUA_MASKCALL | LUA_MASKRET | LUA_MASKCOUNT, 1);
}

typedef struct trap {
    int active;
    struct sigaction old_term, old_hup;
} trap;

static int trap_restore(lua_State *L)
{
    trap *t = luaL_checkudata(L, 1, TRAP_MT);
    if (t->active) {
        sigaction(SIGTERM, &t->old_term, NULL);
        sigaction(SIGHUP, &t->old_hup, NULL);
        t->active = 0;
    }
    return 0;
}

static int trap_termination(lua_State *L)
{
    trap *t = lua_newuserdatauv(L, sizeof *t, 0);
    t->active = 0;
    luaL_setmetatable(L, TRAP_MT);
    lua_State *main_thread;
    lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
    main_thread = lua_tothread(L, -1);
    lua_pop(L, 1);
    trap_state = main_thread;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGTERM, &sa, &t->old_term) != 0 || sigaction(SIGHUP, &sa, &t->old_hup) != 0)
        return luaL_error(L, "cannot install the SIGTERM and SIGHUP handlers");
    t->active = 1;
    return 1;
}

void lv_open_signals(lua_State *L)
{
    static const luaL_Reg fns[] = {
        {"_trap_termination", trap_termination},
        {NULL, NULL},
    };
    lv_lua_handle_metatable(L, TRAP_MT, trap_restore, "restore");
    lv_lua_register(L, fns, 0);
}
