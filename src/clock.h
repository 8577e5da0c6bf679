/*
 * clock.h -- monotonic wall-clock seconds, for the timings the core keeps
 * (communication, profiling, the collector's) and lv.clock().
 */
#ifndef LV_CLOCK_H
#define LV_CLOCK_H
#include <time.h>

static inline double lv_clock_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

#endif
