/*
 * iter.h -- walking several strided operands of one shape together.
 *
 * Every elementwise kernel, copy and conversion runs through lv_iter_run:
 * it drops size-1 dims, merges dims that are contiguous for every operand,
 * and calls an inner-loop function once per row of the innermost remaining
 * dim. A row of contiguous operands is one long call, which the kernels
 * turn into a vectorisable loop; broadcast operands have stride 0.
 * Rows (and pieces of long rows) may run on several threads; a loop
 * function must therefore depend only on its arguments.
 */
#ifndef LV_ITER_H
#define LV_ITER_H

#include "tensor.h"

#define LV_ITER_MAX_OPS 8

/* n elements; ptr[k] the first element of operand k; step[k] its stride in
 * elements of its own dtype; ctx is passed through. */
typedef void (*lv_loop_fn)(int64_t n, char **ptr, const int64_t *step,
                           void *ctx);

typedef struct lv_iter_operand {
    char *data;                     /* element 0 */
    size_t elsize;                  /* bytes per element */
    const int64_t *stride;          /* ndim strides, in elements */
} lv_iter_operand;

void lv_iter_run(int ndim, const int64_t *shape, int nops,
                 const lv_iter_operand *ops, lv_loop_fn fn, void *ctx);

/* Shorthand for a tensor (or a stride-adjusted view of one) as operand. */
lv_iter_operand lv_iter_operand_of(const lv_tensor *t, const int64_t *stride);

/* Computes the broadcast shape of a and b into shape (returns its ndim),
 * or -1 with lv_error naming both shapes. */
int lv_broadcast_shape(const char *what, const lv_tensor *a,
                       const lv_tensor *b, int64_t *shape);
/* Strides of t as seen through the broadcast shape (ndim dims): 0 where t
 * has size 1 or no dim. */
void lv_broadcast_strides(const lv_tensor *t, int ndim, int64_t *stride);

/* Copies src into dst element by element (same shape; any strides; either
 * dtype on either side). */
void lv_copy_strided(lv_tensor *dst, const lv_tensor *src);

#endif
