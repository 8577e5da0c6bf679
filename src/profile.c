/*
 * profile.c -- the per-op time table of profile.h.
 */
#include <string.h>
#include <time.h>

#include "profile.h"

int lv_profile_on;

static lv_profile_row rows[LV_OP_COUNT];
/* Time of the ops applied inside the one now running, per nesting level,
 * so that an op's self time excludes them. */
#define MAX_DEPTH 64
static double inner[MAX_DEPTH];
static int depth;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void lv_profile_enable(int on)
{
    if (on) {
        memset(rows, 0, sizeof rows);
        depth = 0;
    }
    lv_profile_on = on;
}

lv_profile_row lv_profile_get(lv_op_id op)
{
    return rows[op];
}

double lv_profile_begin(void)
{
    if (depth < MAX_DEPTH)
        inner[depth] = 0.0;
    depth++;
    return now();
}

void lv_profile_end(lv_op_id op, double started, int64_t elements)
{
    double took = now() - started;
    depth--;
    double nested = depth < MAX_DEPTH ? inner[depth] : 0.0;
    if (depth > 0 && depth - 1 < MAX_DEPTH)
        inner[depth - 1] += took;
    lv_profile_row *r = &rows[op];
    r->calls++;
    r->seconds += took;
    r->self_seconds += took - nested;
    r->elements += elements;
}
