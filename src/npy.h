/*
 * npy.h -- NumPy's .npy array files, read and written, so that weights and
 * data pass between lvae and Python (the PyTorch benchmarks exchange
 * them this way) with every bit kept.
 *
 * The parser takes a buffer and a length and trusts nothing in it: the
 * header dict is parsed by a strict little grammar (npy.c) without
 * allocating, shapes are checked for overflow, and the data must be
 * exactly as long as the header says. Errors: -1 (or NULL) with a
 * message in lv_error ("malformed .npy header at byte K: ..."); the
 * caller puts the file's name in front.
 *
 * Not here: NumPy's pickled object arrays, structured dtypes and .npz
 * archives (refused or not read), the file itself (files.h).
 */
#ifndef LV_NPY_H
#define LV_NPY_H

#include <stddef.h>
#include <stdint.h>

#include "bytes.h"
#include "tensor.h"

/*
 * NumPy's format (numpy/lib/format.py): "\x93NUMPY", u8 major, u8 minor,
 * header length (u16 in version 1.0, u32 in 2.0 and 3.0), a header that is
 * a Python dict literal {'descr': ..., 'fortran_order': ..., 'shape': ...},
 * then the elements. Read: versions 1.0 to 3.0, floats f4/f8, ints i1-i8,
 * u1-u8, bools b1, either byte order, C or Fortran order. Written: version
 * 1.0, '<f4' or '<f8', C order, header padded to a multiple of 64 bytes.
 */
#define LV_NPY_MAGIC "\x93NUMPY"

typedef struct lv_npy_header {
    int major, minor;
    lv_io_kind kind;            /* descr's f, i, u or b */
    int itemsize;               /* bytes per element */
    int big_endian;             /* the data's byte order */
    int fortran_order;
    int ndim;
    int64_t shape[LV_MAX_DIMS];
    size_t data_offset;         /* where the elements start */
} lv_npy_header;

/* Parses the preamble and the header dict of a .npy image. */
int lv_npy_parse_header(const uint8_t *data, size_t len, lv_npy_header *h);
/* A new contiguous row-major tensor from a .npy image. dtype is the
 * tensor's dtype, or -1 for the file's own (f4 -> f32, f8 -> f64, ints and
 * bools -> f64). Returns a new reference, or NULL. */
lv_tensor *lv_npy_decode(const uint8_t *data, size_t len, int dtype);
/* Appends t (any strides) as a version 1.0 .npy image. */
int lv_npy_encode(lv_io_writer *w, const lv_tensor *t);

#endif
