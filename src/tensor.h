/*
 * tensor.h -- the n-dimensional tensor of lvae: dtype, shape, strides,
 * refcounted storage, views, and the byte-counting allocator behind them.
 *
 * This header is the numerical core's only notion of "object". It includes
 * no Lua header; the binding (src/lua_common.c) wraps an lv_tensor pointer
 * in a userdata. Errors are reported by return value (NULL or a status) and
 * a message kept in lv_error (see error.h); nothing here aborts or prints.
 *
 * Dimensions and indices are 0-based in C. The binding converts from Lua's
 * 1-based convention and nowhere else.
 *
 * Ownership: every lv_tensor is refcounted. A function documented "returns
 * a new reference" hands the caller one reference to drop with
 * lv_tensor_release; "borrows" means the callee keeps nothing.
 */
#ifndef LV_TENSOR_H
#define LV_TENSOR_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

#define LV_MAX_DIMS 8
#define LV_ALIGNMENT 64

typedef enum lv_dtype {
    LV_DTYPE_F32 = 0,
    LV_DTYPE_F64 = 1,
    LV_DTYPE_COUNT
} lv_dtype;

/* The bytes behind one or more tensors; views share it. */
typedef struct lv_storage {
    void *data;           /* 64-byte aligned */
    size_t nbytes;        /* usable bytes (at least what was asked for) */
    int refcount;
    /* Counts in-place writes (through any view), so that an autograd tape
     * can refuse a backward through a tensor modified after it was saved. */
    unsigned version;
} lv_storage;

struct lv_node;

typedef struct lv_tensor {
    int refcount;
    lv_dtype dtype;
    int ndim;                         /* 0 (a scalar) .. LV_MAX_DIMS */
    int64_t shape[LV_MAX_DIMS];
    int64_t stride[LV_MAX_DIMS];      /* in elements; 0 on expanded dims */
    int64_t offset;                   /* in elements, into storage */
    lv_storage *storage;

    /* The autograd tape's fields (autograd.h); the tensor core only
     * releases them, grad_fn through the tape's hook (below). */
    int requires_grad;
    int output_index;                 /* which output of grad_fn this is */
    struct lv_node *grad_fn;          /* owned reference, or NULL (a leaf) */
    struct lv_tensor *grad;           /* owned reference, or NULL */
} lv_tensor;

/* ---- dtypes ---------------------------------------------------------- */

size_t lv_dtype_size(lv_dtype dtype);
const char *lv_dtype_name(lv_dtype dtype);
/* Parses "f32"/"f64" (and the aliases "float"/"double"); -1 if unknown. */
int lv_dtype_from_name(const char *name);
/* The dtype two operands are computed in: f64 if either is f64. */
lv_dtype lv_dtype_promote(lv_dtype a, lv_dtype b);

/* ---- the allocator --------------------------------------------------- */

/* Live bytes held by storages (including the reuse cache's). */
size_t lv_alloc_live_bytes(void);
/* The most live bytes since the last reset (peak memory of a step). */
size_t lv_alloc_peak_bytes(void);
void lv_alloc_reset_peak(void);
/* Bytes sitting in the size-class cache, ready for reuse. */
size_t lv_alloc_cached_bytes(void);
/* Frees every cached block. */
void lv_alloc_trim(void);

/* Returns a new storage of at least nbytes, zero-filled if zero != 0;
 * NULL (with lv_error set) when out of memory. */
lv_storage *lv_storage_new(size_t nbytes, int zero);
void lv_storage_retain(lv_storage *s);
void lv_storage_release(lv_storage *s);

/* ---- construction ---------------------------------------------------- */

/* Checks a shape (ndim <= LV_MAX_DIMS, sizes >= 0, no overflow) and
 * returns 0, or -1 with lv_error set. `what` names the caller. */
int lv_shape_check(const char *what, int ndim, const int64_t *shape);
int64_t lv_shape_numel(int ndim, const int64_t *shape);

/* A fresh contiguous tensor; uninitialised unless zero. Returns a new
 * reference, or NULL. */
lv_tensor *lv_tensor_empty(lv_dtype dtype, int ndim, const int64_t *shape);
lv_tensor *lv_tensor_zeros(lv_dtype dtype, int ndim, const int64_t *shape);
lv_tensor *lv_tensor_full(lv_dtype dtype, int ndim, const int64_t *shape,
                          double value);
/* A view: shares x's storage with the given geometry (stride NULL: the
 * row-major strides of shape). Borrows x; returns a new reference. The
 * geometry is trusted (callers check it). */
lv_tensor *lv_tensor_view_of(const lv_tensor *x, int ndim,
                             const int64_t *shape, const int64_t *stride,
                             int64_t offset);

/* x's dtype and geometry with no storage (storage == NULL): what a tape
 * node keeps of a tensor whose values its VJP never reads. Its data must
 * not be touched. New reference. */
lv_tensor *lv_tensor_shape_only(const lv_tensor *x);
void lv_tensor_retain(lv_tensor *t);
/* Drops one reference; the last one frees t and drops its storage, its
 * .grad, and its grad_fn through the hook below. NULL passes. */
void lv_tensor_release(lv_tensor *t);

/* How a tensor's grad_fn is dropped when the tensor is freed. This layer
 * knows nothing of the tape above it: the tape (autograd.c) sets the hook
 * before it hangs its first node on a tensor. */
typedef void (*lv_node_release_fn)(struct lv_node *node);
void lv_tensor_set_node_release(lv_node_release_fn release);

/* ---- geometry -------------------------------------------------------- */

int64_t lv_tensor_numel(const lv_tensor *t);
int lv_tensor_is_contiguous(const lv_tensor *t);
/* Whether a and b have the same shape. */
int lv_same_shape(const lv_tensor *a, const lv_tensor *b);
/* Pointer to element 0 of the view (storage data + offset). */
void *lv_tensor_data(const lv_tensor *t);
/* Formats a shape as "[2,3]" into buf; returns buf. */
char *lv_shape_format(char *buf, size_t size, int ndim, const int64_t *shape);
/* Normalises a 0-based dim that may be negative (-1 = last) against
 * ndim; returns the dim, or -1 with lv_error set. */
int lv_dim_normalize(const char *what, int dim, int ndim);

/* Element i of data holding dtype, as a double; and v, rounded to dtype,
 * stored into element i. Where scalar code meets typed storage it goes
 * through these two, instead of a dtype branch of its own. */
static inline double lv_load_double(const void *data, lv_dtype dtype, int64_t i)
{
    return dtype == LV_DTYPE_F64 ? ((const double *)data)[i]
                                 : (double)((const float *)data)[i];
}

static inline void lv_store_double(void *data, lv_dtype dtype, int64_t i,
                                   double v)
{
    if (dtype == LV_DTYPE_F64)
        ((double *)data)[i] = v;
    else
        ((float *)data)[i] = (float)v;
}

/* Reads element `linear` (row-major order over the view) as a double. */
double lv_tensor_get_linear(const lv_tensor *t, int64_t linear);
/* Writes element at a multi-index as a double. */
void lv_tensor_set_index(lv_tensor *t, const int64_t *index, double v);

#endif
