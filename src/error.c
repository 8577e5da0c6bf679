/*
 * error.c -- the last-error slot of the numerical core (see error.h).
 * Thread-local, so that kernels run from several threads cannot garble
 * each other's message.
 */
#include <stdarg.h>
#include <stdio.h>

#include "error.h"

static _Thread_local char error_message[512];
static _Thread_local int error_argument;

int lv_error_arg(void) { return error_argument; }

const char *lv_error_message(void) { return error_message; }

int lv_error_set(int arg, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(error_message, sizeof error_message, fmt, ap);
    va_end(ap);
    error_argument = arg;
    return -1;
}

void lv_error_clear(void)
{
    error_message[0] = '\0';
    error_argument = 0;
}
