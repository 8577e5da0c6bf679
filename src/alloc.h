/*
 * alloc.h -- every allocation of the core goes through these, so that a
 * test can make one of them fail on purpose and check that its caller
 * recovers: a worded error up to Lua, nothing leaked, the process alive.
 *
 *   lv_alloc_fail_at(n)   the n-th allocation from now fails (n >= 1);
 *                         0 turns the injection off
 *
 * Otherwise they are malloc, calloc, realloc and aligned_alloc: memory
 * they give is released with free.
 */
#ifndef LV_ALLOC_H
#define LV_ALLOC_H

#include <stddef.h>

void *lv_malloc(size_t n);
void *lv_calloc(size_t count, size_t size);
void *lv_realloc(void *p, size_t n);
void *lv_aligned_alloc(size_t alignment, size_t n);

/* Arms (n >= 1) or disarms (0) the injected failure and restarts the
 * count. */
void lv_alloc_fail_at(long long n);
/* Allocations counted since lv_alloc_fail_at, and whether the injected
 * failure has happened. */
long long lv_alloc_count(void);
int lv_alloc_failed(void);

#endif
