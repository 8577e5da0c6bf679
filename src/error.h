/*
 * error.h -- how the numerical core reports a failure without Lua.
 *
 * A core function that fails returns NULL or a negative status and leaves a
 * message here; the binding (src/lua_*.c) turns it into a Lua error naming
 * the function and argument. The core never aborts and never prints.
 */
#ifndef LV_ERROR_H
#define LV_ERROR_H

/* Which argument (1-based, as Lua counts) the last error is about, or 0
 * when it is about the call as a whole. */
int lv_error_arg(void);
/* The message of the last error (never NULL). */
const char *lv_error_message(void);

/* Sets the last error; printf-style. Always returns -1, so that a failing
 * function can `return lv_error_set(...)`. */
int lv_error_set(int arg, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void lv_error_clear(void);

#endif
