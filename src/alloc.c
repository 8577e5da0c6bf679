/*
 * alloc.c -- the core's allocation door, with its failure injection: a
 * counter (atomic, as OpenMP threads may allocate too) and the index of
 * the allocation to refuse.
 */
#include "alloc.h"

#include <stdlib.h>

static long long fail_at;            /* 0: never */
static long long counted;
static int failed;

/* True when this allocation is the one to refuse. */
static int refuse(void)
{
    long long k = __atomic_add_fetch(&counted, 1, __ATOMIC_RELAXED);
    if (fail_at > 0 && k == fail_at) {
        __atomic_store_n(&failed, 1, __ATOMIC_RELAXED);
        return 1;
    }
    return 0;
}

void *lv_malloc(size_t n) { return refuse() ? NULL : malloc(n); }
void *lv_calloc(size_t count, size_t size) { return refuse() ? NULL : calloc(count, size); }
void *lv_realloc(void *p, size_t n) { return refuse() ? NULL : realloc(p, n); }
void *lv_aligned_alloc(size_t alignment, size_t n) { return refuse() ? NULL : aligned_alloc(alignment, n); }

void lv_alloc_fail_at(long long n)
{
    fail_at = n > 0 ? n : 0;
    counted = 0;
    failed = 0;
}

long long lv_alloc_count(void) { return __atomic_load_n(&counted, __ATOMIC_RELAXED); }
int lv_alloc_failed(void) { return __atomic_load_n(&failed, __ATOMIC_RELAXED); }
