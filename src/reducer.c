/*
 * reducer.c -- see reducer.h.
 */
#include "reducer.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "distributed.h"
#include "error.h"
#include "iter.h"
#include "op.h"

#define DEFAULT_BUCKET_BYTES ((size_t)4 << 20)

typedef struct slot {
    lv_tensor *view;                /* the parameter's shape over its place */
    int bucket;
    int64_t offset;                 /* in the bucket, in elements */
    int64_t numel;
    lv_dtype dtype;
} slot;

static size_t slot_bytes(const slot *s) { return (size_t)s->numel * lv_dtype_size(s->dtype); }

typedef struct bucket {
    lv_tensor *flat;                /* [count] of the bucket's dtype */
    int params;                     /* how many parameters it holds */
    int waiting;                    /* of them, not yet ready this step */
    lv_dist_request req;
} bucket;

struct lv_reducer {
    int n, nbuckets;
    int next;                       /* the next bucket to start, in order */
    slot *slots;
    bucket *buckets;
    double weight;
    unsigned char *ready;           /* [n]: gradient j arrived this step */
    double *had;                    /* [n]: 1 where this process had it */
    int failed;
    char error[256];
};

int lv_reducer_buckets(const lv_reducer *r) { return r->nbuckets; }

void lv_reducer_free(lv_reducer *r)
{
    if (!r)
        return;
    for (int b = 0; b < r->nbuckets; b++) {
        lv_dist_wait(&r->buckets[b].req);     /* never free a buffer in flight */
        lv_tensor_release(r->buckets[b].flat);
    }
    for (int j = 0; r->slots && j < r->n; j++)
        lv_tensor_release(r->slots[j].view);
    free(r->buckets);
    free(r->slots);
    free(r->ready);
    free(r->had);
    free(r);
}

lv_reducer *lv_reducer_new(lv_tensor *const *params, int n, size_t bucket_bytes)
{
    if (n < 0) {
        lv_error_set(0, "a negative count of parameters");
        return NULL;
    }
    if (bucket_bytes == 0)
        bucket_bytes = DEFAULT_BUCKET_BYTES;
    lv_reducer *r = lv_calloc(1, sizeof *r);
    if (!r) {
        lv_error_set(0, "out of memory");
        return NULL;
    }
    r->n = n;
    r->weight = 1;
    size_t m = n > 0 ? (size_t)n : 1;
    r->slots = lv_calloc(m, sizeof *r->slots);
    r->buckets = lv_calloc(m, sizeof *r->buckets);
    r->ready = lv_calloc(m, 1);
    r->had = lv_calloc(m, sizeof *r->had);
    if (!r->slots || !r->buckets || !r->ready || !r->had) {
        lv_reducer_free(r);
        lv_error_set(0, "out of memory");
        return NULL;
    }
    /* Buckets from the last parameter back: its gradient is finished
     * first. counts[b]: bucket b's size in elements. */
    int64_t *counts = lv_calloc(m, sizeof *counts);
    lv_dtype *dtypes = lv_calloc(m, sizeof *dtypes);
    if (!counts || !dtypes) {
        free(counts);
        free(dtypes);
        lv_reducer_free(r);
        lv_error_set(0, "out of memory");
        return NULL;
    }
    for (int j = n - 1; j >= 0; j--) {
        const lv_tensor *p = params[j];
        slot *s = &r->slots[j];
        s->numel = lv_tensor_numel(p);
        s->dtype = p->dtype;
        size_t esize = lv_dtype_size(p->dtype);
        if (s->numel > INT32_MAX) {
            free(counts);
            free(dtypes);
            lv_reducer_free(r);
            lv_error_set(0, "parameter %d has %lld values, more than one reduction takes",
                         j + 1, (long long)s->numel);
            return NULL;
        }
        int b = r->nbuckets - 1;
        if (b < 0 || dtypes[b] != s->dtype
            || (size_t)(counts[b] + s->numel) * esize > bucket_bytes
            || counts[b] + s->numel > INT32_MAX) {
            b = r->nbuckets++;
            dtypes[b] = s->dtype;
        }
        s->bucket = b;
        s->offset = counts[b];
        counts[b] += s->numel;
        r->buckets[b].params++;
    }
    for (int b = 0; b < r->nbuckets; b++) {
        r->buckets[b].flat = lv_tensor_zeros(dtypes[b], 1, &counts[b]);
        if (!r->buckets[b].flat) {
            free(counts);
            free(dtypes);
            lv_reducer_free(r);
            return NULL;
        }
    }
    free(counts);
    free(dtypes);
    for (int j = 0; j < n; j++) {
        slot *s = &r->slots[j];
        const lv_tensor *flat = r->buckets[s->bucket].flat;
        s->view = lv_tensor_view_of(flat, params[j]->ndim, params[j]->shape, NULL,
                                    flat->offset + s->offset);
        if (!s->view) {
            lv_reducer_free(r);
            return NULL;
        }
    }
    return r;
}

lv_tensor *lv_reducer_buffer(void *ctx, int j)
{
    lv_reducer *r = ctx;
    return j >= 0 && j < r->n ? r->slots[j].view : NULL;
}

static void fail(lv_reducer *r, const char *msg)
{
    if (!r->failed) {
        r->failed = 1;
        snprintf(r->error, sizeof r->error, "%s", msg);
    }
}

void lv_reducer_begin(lv_reducer *r, double weight)
{
    r->weight = weight;
    r->failed = 0;
    r->error[0] = 0;
    memset(r->ready, 0, (size_t)(r->n > 0 ? r->n : 1));
    for (int j = 0; j < r->n; j++)
        r->had[j] = 0;
    for (int b = 0; b < r->nbuckets; b++) {
        lv_dist_wait(&r->buckets[b].req);
        r->buckets[b].waiting = r->buckets[b].params;
    }
    r->next = 0;
}

static void start(lv_reducer *r, int b)
{
    bucket *k = &r->buckets[b];
    if (lv_dist_iallreduce(lv_tensor_data(k->flat), (size_t)lv_tensor_numel(k->flat),
                           k->flat->dtype, LV_DIST_SUM, &k->req) != 0)
        fail(r, lv_error_message());
}

/* Lets the reductions in flight move on (MPI progresses inside its calls). */
static void progress(lv_reducer *r)
{
    for (int b = 0; b < r->nbuckets; b++)
        if (r->buckets[b].req.active && lv_dist_test(&r->buckets[b].req) != 0)
            fail(r, lv_error_message());
}

/* weight x grad into slot j of its bucket (where the backward pass summed
 * it already when it took lv_reducer_buffer's view). */
static int place(lv_reducer *r, int j, const lv_tensor *grad)
{
    const slot *s = &r->slots[j];
    if (lv_tensor_data(grad) != lv_tensor_data(s->view)) {
        /* grad's values in row-major order over the place (the same
         * count, perhaps in another shape) */
        const lv_tensor *flat = r->buckets[s->bucket].flat;
        lv_tensor *view = lv_tensor_view_of(flat, grad->ndim, grad->shape, NULL,
                                            flat->offset + s->offset);
        if (!view)
            return -1;
        lv_copy_strided(view, grad);
        lv_tensor_release(view);
    }
    if (r->weight != 1)
        lv_scale_in_place(lv_tensor_data(s->view), s->dtype, s->numel, r->weight);
    return 0;
}

/* Slot j is complete (a gradient placed, or zeros). Complete buckets
 * start in bucket order, never out of it: MPI needs every process to
 * start its collectives in one order, and a process whose pass finishes
 * the buckets in another order (a gradient it lacks) must not send first
 * what the others send second. */
static void settle(lv_reducer *r, int j)
{
    r->ready[j] = 1;
    r->buckets[r->slots[j].bucket].waiting--;
    while (r->next < r->nbuckets && r->buckets[r->next].waiting == 0)
        start(r, r->next++);
}

void lv_reducer_ready(void *ctx, int j, const lv_tensor *grad)
{
    lv_reducer *r = ctx;
    if (r->failed || j < 0 || j >= r->n || r->ready[j])
        return;
    const slot *s = &r->slots[j];
    char msg[160];
    if (grad->dtype != s->dtype || lv_tensor_numel(grad) != s->numel) {
        snprintf(msg, sizeof msg, "the gradient of parameter %d has %lld %s values, "
                 "the parameter %lld %s", j + 1, (long long)lv_tensor_numel(grad),
                 lv_dtype_name(grad->dtype), (long long)s->numel, lv_dtype_name(s->dtype));
        fail(r, msg);
        return;
    }
    if (place(r, j, grad) != 0) {
        fail(r, lv_error_message());
        return;
    }
    r->had[j] = 1;
    settle(r, j);
    progress(r);
}

int lv_reducer_finish(lv_reducer *r, lv_tensor **out, int views)
{
    for (int j = 0; j < r->n; j++)
        out[j] = NULL;
    /* what this process lacks counts as zero; every bucket must be sent,
     * or the other processes would wait for it */
    for (int j = 0; j < r->n; j++)
        if (!r->ready[j]) {
            memset(lv_tensor_data(r->slots[j].view), 0, slot_bytes(&r->slots[j]));
            settle(r, j);
        }
    for (int b = 0; b < r->nbuckets; b++)
        if (lv_dist_wait(&r->buckets[b].req) != 0)
            fail(r, lv_error_message());
    if (lv_dist_allreduce_doubles(r->had, r->n, LV_DIST_SUM) != 0)
        fail(r, lv_error_message());
    if (r->failed)
        return lv_error_set(0, "%s", r->error);
    for (int j = 0; j < r->n; j++) {
        if (r->had[j] <= 0)
            continue;
        const slot *s = &r->slots[j];
        if (views) {
            lv_tensor_retain(s->view);
            out[j] = s->view;
            continue;
        }
        lv_tensor *g = lv_tensor_empty(s->dtype, s->view->ndim, s->view->shape);
        if (!g) {
            for (int i = 0; i < j; i++) {
                lv_tensor_release(out[i]);
                out[i] = NULL;
            }
            return -1;
        }
        memcpy(lv_tensor_data(g), lv_tensor_data(s->view), slot_bytes(s));
        out[j] = g;
    }
    return 0;
}
