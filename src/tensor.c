/*
 * tensor.c -- storage, the size-class allocator, and tensor geometry.
 *
 * The allocator counts every byte it hands out so that the Lua binding can
 * drive the collector (Lua cannot see these bytes), and it keeps freed
 * blocks in a size-class cache: a training loop that makes the same
 * temporaries every step then stops calling malloc after the first step.
 *
 * Size classes: multiples of 64 bytes up to 4 KiB, then four classes per
 * power of two (so at most 25% slack). The cache holds at most
 * CACHE_LIMIT_BYTES; beyond that freed blocks go back to the system.
 *
 * Not here: arithmetic (ops_*.c), random numbers (rng.c), autograd.
 */
#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "tensor.h"

/* ---- dtypes ---------------------------------------------------------- */

size_t lv_dtype_size(lv_dtype dtype)
{
    return dtype == LV_DTYPE_F64 ? sizeof(double) : sizeof(float);
}

const char *lv_dtype_name(lv_dtype dtype)
{
    return dtype == LV_DTYPE_F64 ? "f64" : "f32";
}

int lv_dtype_from_name(const char *name)
{
    if (strcmp(name, "f32") == 0 || strcmp(name, "float") == 0)
        return LV_DTYPE_F32;
    if (strcmp(name, "f64") == 0 || strcmp(name, "double") == 0)
        return LV_DTYPE_F64;
    return -1;
}

lv_dtype lv_dtype_promote(lv_dtype a, lv_dtype b)
{
    return (a == LV_DTYPE_F64 || b == LV_DTYPE_F64) ? LV_DTYPE_F64
                                                    : LV_DTYPE_F32;
}

/* ---- the size-class allocator ----------------------------------------- */

#define SMALL_LIMIT 4096
#define SMALL_CLASSES (SMALL_LIMIT / LV_ALIGNMENT)          /* 64 */
#define LARGE_CLASSES (4 * 52)      /* four per power of two, 2^12 .. 2^64 */
#define CLASS_COUNT (SMALL_CLASSES + LARGE_CLASSES + 1)
#define CACHE_LIMIT_BYTES ((size_t)512 << 20)

typedef struct cached_block {
    struct cached_block *next;
    lv_storage *storage;
} cached_block;

static lv_storage *cache_heads[CLASS_COUNT];
static size_t live_bytes;     /* bytes of storages in use */
static size_t peak_bytes;     /* the most live_bytes has been since reset */
static size_t cached_bytes;   /* bytes of storages waiting in the cache */

/* Rounds nbytes up to its class; writes the class index. */
static size_t size_class(size_t nbytes, int *index)
{
    if (nbytes == 0)
        nbytes = 1;
    if (nbytes <= SMALL_LIMIT) {
        size_t units = (nbytes + LV_ALIGNMENT - 1) / LV_ALIGNMENT;
        *index = (int)units - 1;
        return units * LV_ALIGNMENT;
    }
    /* 2^p < nbytes <= 2^(p+1); classes 2^p + j 2^(p-2), j = 1..4 */
    int p = 63 - __builtin_clzll((unsigned long long)(nbytes - 1));
    size_t base = (size_t)1 << p, quarter = base >> 2;
    size_t j = (nbytes - base + quarter - 1) / quarter;
    *index = SMALL_CLASSES + (p - 12) * 4 + (int)(j - 1);
    return base + j * quarter;
}

size_t lv_alloc_live_bytes(void) { return live_bytes; }

size_t lv_alloc_peak_bytes(void) { return peak_bytes; }

void lv_alloc_reset_peak(void) { peak_bytes = live_bytes; }

size_t lv_alloc_cached_bytes(void) { return cached_bytes; }

void lv_alloc_trim(void)
{
    for (int i = 0; i < CLASS_COUNT; i++) {
        lv_storage *s = cache_heads[i];
        while (s) {
            lv_storage *next = *(lv_storage **)s->data;  /* list lives in the block */
            cached_bytes -= s->nbytes;
            free(s->data);
            free(s);
            s = next;
        }
        cache_heads[i] = NULL;
    }
}

lv_storage *lv_storage_new(size_t nbytes, int zero)
{
    int index;
    size_t class_bytes = size_class(nbytes, &index);
    lv_storage *s = cache_heads[index];
    if (s) {
        cache_heads[index] = *(lv_storage **)s->data;
        cached_bytes -= s->nbytes;
    } else {
        s = lv_malloc(sizeof *s);
        if (!s) {
            lv_error_set(0, "out of memory (allocating %zu bytes)", nbytes);
            return NULL;
        }
        s->data = lv_aligned_alloc(LV_ALIGNMENT, class_bytes);
        if (!s->data) {
            free(s);
            lv_alloc_trim();
            lv_error_set(0, "out of memory (allocating %zu bytes)", nbytes);
            return NULL;
        }
        s->nbytes = class_bytes;
    }
    s->refcount = 1;
    s->version = 0;
    live_bytes += s->nbytes;
    if (live_bytes > peak_bytes)
        peak_bytes = live_bytes;
    if (zero)
        memset(s->data, 0, nbytes);
    return s;
}

/* NULL passes: a view of a shape-only header is shape-only too. */
void lv_storage_retain(lv_storage *s)
{
    if (s)
        s->refcount++;
}

void lv_storage_release(lv_storage *s)
{
    if (!s || --s->refcount > 0)
        return;
    live_bytes -= s->nbytes;
    int index;
    size_class(s->nbytes, &index);
    if (cached_bytes + s->nbytes <= CACHE_LIMIT_BYTES) {
        *(lv_storage **)s->data = cache_heads[index];
        cache_heads[index] = s;
        cached_bytes += s->nbytes;
    } else {
        free(s->data);
        free(s);
    }
}

/* ---- shapes ---------------------------------------------------------- */

int64_t lv_shape_numel(int ndim, const int64_t *shape)
{
    int64_t n = 1;
    for (int i = 0; i < ndim; i++)
        n *= shape[i];
    return n;
}

int lv_shape_check(const char *what, int ndim, const int64_t *shape)
{
    if (ndim < 0 || ndim > LV_MAX_DIMS)
        return lv_error_set(0, "%s: %d dimensions (at most %d)", what, ndim,
                            LV_MAX_DIMS);
    /* The product of the non-zero sizes is bounded too: a zero-size tensor
     * with huge other dims would still overflow its strides. */
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0)
            return lv_error_set(0, "%s: size %lld of dimension %d is negative",
                                what, (long long)shape[i], i + 1);
        if (shape[i] > 0 && n > ((int64_t)1 << 48) / shape[i])
            return lv_error_set(0, "%s: shape is too large", what);
        if (shape[i] > 0)
            n *= shape[i];
    }
    return 0;
}

char *lv_shape_format(char *buf, size_t size, int ndim, const int64_t *shape)
{
    size_t used = (size_t)snprintf(buf, size, "[");
    for (int i = 0; i < ndim && used < size; i++)
        used += (size_t)snprintf(buf + used, size - used, "%s%lld",
                                 i ? "," : "", (long long)shape[i]);
    if (used < size)
        snprintf(buf + used, size - used, "]");
    return buf;
}

int lv_dim_normalize(const char *what, int dim, int ndim)
{
    int d = dim < 0 ? dim + ndim : dim;
    if (d < 0 || d >= ndim) {
        if (ndim == 0)
            return lv_error_set(0, "%s: dimension %d out of range (tensor has "
                                "no dimensions)", what, dim + 1);
        return lv_error_set(0, "%s: dimension %d out of range (expected 1 to "
                            "%d, or -%d to -1)", what, dim >= 0 ? dim + 1 : dim,
                            ndim, ndim);
    }
    return d;
}

/* ---- tensors --------------------------------------------------------- */

static lv_tensor *tensor_header(lv_dtype dtype, int ndim, const int64_t *shape)
{
    lv_tensor *t = lv_calloc(1, sizeof *t);
    if (!t) {
        lv_error_set(0, "out of memory");
        return NULL;
    }
    live_bytes += sizeof *t;   /* headers count too: 10^5 views are not free */
    t->refcount = 1;
    t->dtype = dtype;
    t->ndim = ndim;
    int64_t stride = 1;
    for (int i = ndim - 1; i >= 0; i--) {
        t->shape[i] = shape[i];
        t->stride[i] = stride;
        stride *= shape[i] > 0 ? shape[i] : 1;
    }
    return t;
}

static lv_tensor *tensor_alloc(lv_dtype dtype, int ndim, const int64_t *shape,
                               int zero)
{
    if (lv_shape_check("tensor", ndim, shape) < 0)
        return NULL;
    lv_tensor *t = tensor_header(dtype, ndim, shape);
    if (!t)
        return NULL;
    size_t nbytes = (size_t)lv_shape_numel(ndim, shape) * lv_dtype_size(dtype);
    t->storage = lv_storage_new(nbytes, zero);
    if (!t->storage) {
        live_bytes -= sizeof *t;
        free(t);
        return NULL;
    }
    return t;
}

lv_tensor *lv_tensor_empty(lv_dtype dtype, int ndim, const int64_t *shape)
{
    return tensor_alloc(dtype, ndim, shape, 0);
}

lv_tensor *lv_tensor_zeros(lv_dtype dtype, int ndim, const int64_t *shape)
{
    return tensor_alloc(dtype, ndim, shape, 1);
}

lv_tensor *lv_tensor_full(lv_dtype dtype, int ndim, const int64_t *shape,
                          double value)
{
    lv_tensor *t = tensor_alloc(dtype, ndim, shape, 0);
    if (!t)
        return NULL;
    int64_t n = lv_tensor_numel(t);
    for (int64_t i = 0; i < n; i++)
        lv_store_double(t->storage->data, dtype, i, value);
    return t;
}

lv_tensor *lv_tensor_view_of(const lv_tensor *x, int ndim,
                             const int64_t *shape, const int64_t *stride,
                             int64_t offset)
{
    lv_tensor *t = tensor_header(x->dtype, ndim, shape);
    if (!t)
        return NULL;
    for (int i = 0; stride && i < ndim; i++)
        t->stride[i] = stride[i];
    t->offset = offset;
    t->storage = x->storage;
    lv_storage_retain(x->storage);
    return t;
}

lv_tensor *lv_tensor_shape_only(const lv_tensor *x)
{
    lv_tensor *t = tensor_header(x->dtype, x->ndim, x->shape);
    if (!t)
        return NULL;
    for (int i = 0; i < x->ndim; i++)
        t->stride[i] = x->stride[i];
    t->offset = x->offset;
    return t;
}

void lv_tensor_retain(lv_tensor *t) { t->refcount++; }

/* Set by the tape before any tensor holds a node, so never called unset. */
static lv_node_release_fn node_release;

void lv_tensor_set_node_release(lv_node_release_fn release)
{
    node_release = release;
}

void lv_tensor_release(lv_tensor *t)
{
    if (!t || --t->refcount > 0)
        return;
    lv_storage_release(t->storage);
    if (t->grad_fn) {
        assert(node_release);
        node_release(t->grad_fn);
    }
    lv_tensor_release(t->grad);
    live_bytes -= sizeof *t;
    free(t);
}

int64_t lv_tensor_numel(const lv_tensor *t)
{
    return lv_shape_numel(t->ndim, t->shape);
}

int lv_same_shape(const lv_tensor *a, const lv_tensor *b)
{
    return a->ndim == b->ndim &&
           memcmp(a->shape, b->shape, sizeof(int64_t) * (size_t)a->ndim) == 0;
}

int lv_tensor_is_contiguous(const lv_tensor *t)
{
    if (lv_tensor_numel(t) == 0)
        return 1;                 /* no element is out of place */
    int64_t expected = 1;
    for (int i = t->ndim - 1; i >= 0; i--) {
        if (t->shape[i] == 1)
            continue;
        if (t->stride[i] != expected)
            return 0;
        expected *= t->shape[i];
    }
    return 1;
}

void *lv_tensor_data(const lv_tensor *t)
{
    return (char *)t->storage->data + t->offset * (int64_t)lv_dtype_size(t->dtype);
}

/* Storage position of the element with row-major number `linear`. */
static int64_t linear_to_position(const lv_tensor *t, int64_t linear)
{
    int64_t pos = 0;
    for (int i = t->ndim - 1; i >= 0; i--) {
        int64_t n = t->shape[i];
        pos += (linear % n) * t->stride[i];
        linear /= n;
    }
    return pos;
}

double lv_tensor_get_linear(const lv_tensor *t, int64_t linear)
{
    return lv_load_double(lv_tensor_data(t), t->dtype,
                          linear_to_position(t, linear));
}

void lv_tensor_set_index(lv_tensor *t, const int64_t *index, double v)
{
    int64_t pos = 0;
    for (int i = 0; i < t->ndim; i++)
        pos += index[i] * t->stride[i];
    lv_store_double(lv_tensor_data(t), t->dtype, pos, v);
}
