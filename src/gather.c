/*
 * gather.c -- lv_gather_rows (gather.h): a row that is one contiguous
 * block of x is copied with one memcpy; a strided row goes through
 * bytes.h's strided copy.
 */
#include <inttypes.h>
#include <string.h>

#include "bytes.h"
#include "gather.h"

lv_tensor *lv_gather_rows(const lv_tensor *x, const int64_t *rows, int64_t n)
{
    if (x->ndim < 1) {
        lv_error_set(0, "gather_rows needs a tensor of at least 1 dimension");
        return NULL;
    }
    for (int64_t i = 0; i < n; i++)
        if (rows[i] < 0 || rows[i] >= x->shape[0]) {
            lv_error_set(0, "row index %" PRId64 " out of range (the tensor "
                         "has %" PRId64 " rows)", rows[i] + 1, x->shape[0]);
            return NULL;
        }
    int64_t shape[LV_MAX_DIMS];
    shape[0] = n;
    for (int d = 1; d < x->ndim; d++)
        shape[d] = x->shape[d];
    lv_tensor *t = lv_tensor_empty(x->dtype, x->ndim, shape);
    if (!t)
        return NULL;
    size_t es = lv_dtype_size(x->dtype);
    int64_t row_len = lv_shape_numel(x->ndim - 1, x->shape + 1);
    /* Is one row of x a contiguous block? */
    int dense = 1;
    int64_t expect = 1;
    for (int d = x->ndim - 1; d >= 1; d--) {
        if (x->shape[d] != 1 && x->stride[d] != expect)
            dense = 0;
        expect *= x->shape[d];
    }
    const uint8_t *base = lv_tensor_data(x);
    uint8_t *out = lv_tensor_data(t);
    size_t row_bytes = (size_t)row_len * es;
    for (int64_t i = 0; i < n; i++, out += row_bytes) {
        const uint8_t *row = base + rows[i] * x->stride[0] * (int64_t)es;
        if (dense)
            memcpy(out, row, row_bytes);
        else
            lv_io_copy_strided(out, row, x->ndim - 1, x->shape + 1,
                               x->stride + 1, es, 0);
    }
    return t;
}
