/*
 * amat.h -- the text matrices of the standard binarised MNIST
 * (Larochelle and Murray's binarized_mnist_{train,valid,test}.amat): one
 * row per line, values separated by spaces or tabs.
 *
 * Like the parsers of npy.h and idx.h it takes a buffer and a length and
 * trusts nothing in it; its messages name the line and column at fault,
 * not the file (the caller puts that in front).
 */
#ifndef LV_AMAT_H
#define LV_AMAT_H

#include <stddef.h>
#include <stdint.h>

#include "tensor.h"

/* The matrix [rows, columns] in dtype (LV_DTYPE_F32 or LV_DTYPE_F64).
 * Blank lines (a trailing one, CR of CRLF endings) are skipped; every
 * other line must hold as many finite numbers as the first (within the
 * range of f32 when dtype is f32). NULL with
 * lv_error set: no rows, a ragged row ("line 3 has 783 values, line 1
 * has 784"), a value that is not a finite number ("line 2, value 17:
 * 'x'"), or a shape too large. */
lv_tensor *lv_amat_decode(const uint8_t *data, size_t len, int dtype);

#endif
