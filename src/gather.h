/*
 * gather.h -- copying chosen rows of a tensor into a new one: how data
 * batches are made (lua/lvae/data.lua draws the row indices, this copies
 * the rows), in one pass of memcpy per row instead of a Lua loop over
 * elements.
 *
 * Not an op of the op table: it records nothing on the autograd tape (the
 * binding refuses an input that requires grad), since a batch of data is
 * never differentiated.
 */
#ifndef LV_GATHER_H
#define LV_GATHER_H

#include <stdint.h>

#include "tensor.h"

/* A new contiguous tensor [n, x's other sizes] whose row i is row rows[i]
 * (0-based) of x (any strides, at least 1 dim). Borrows x; returns a new
 * reference, or NULL with lv_error set (a row out of range, or out of
 * memory). */
lv_tensor *lv_gather_rows(const lv_tensor *x, const int64_t *rows, int64_t n);

#endif
