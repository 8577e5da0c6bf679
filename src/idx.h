/*
 * idx.h -- the IDX files of MNIST and Fashion-MNIST (LeCun's format: a
 * tiny big-endian header of sizes, then the elements), read and written,
 * since the image experiments train on them and lv.save_idx makes test
 * files and subsets in the same form.
 *
 * The parser takes a (decompressed) buffer and a length and trusts
 * nothing in it: the type byte and the number of dimensions are checked,
 * the sizes are checked for overflow, and the data must be exactly as
 * long as they say. Errors: -1 (or NULL) with a message in lv_error
 * ("not an IDX file (bad magic 0x...)", "truncated: ..."); the caller
 * puts the file's name in front.
 *
 * Not here: gzip (gzip.h: the files usually come compressed, and
 * lv.load_idx inflates them first), scaling pixels to [0, 1] (the
 * binding's scale option), where the data sets live (lua/lvae/data.lua).
 */
#ifndef LV_IDX_H
#define LV_IDX_H

#include <stddef.h>
#include <stdint.h>

#include "bytes.h"
#include "tensor.h"

/*
 * The IDX format of MNIST (and Fashion-MNIST), big-endian throughout:
 *
 *     offset   size  field
 *          0      2  zero
 *          2      1  element type (below)
 *          3      1  number of dimensions n (lvae: at most LV_MAX_DIMS)
 *          4    4 n  the sizes, u32 each
 *      4 + 4n        the elements, row-major, big-endian
 *
 * The data must be exactly as long as the sizes say: a shorter file is
 * truncated, a longer one has mismatched sizes, and both are errors.
 */
typedef enum lv_idx_type {
    LV_IDX_U8 = 0x08,
    LV_IDX_I8 = 0x09,
    LV_IDX_I16 = 0x0B,
    LV_IDX_I32 = 0x0C,
    LV_IDX_F32 = 0x0D,
    LV_IDX_F64 = 0x0E
} lv_idx_type;

typedef struct lv_idx_header {
    int type;                   /* an lv_idx_type */
    int ndim;
    int64_t shape[LV_MAX_DIMS];
    size_t data_offset;         /* 4 + 4 ndim */
} lv_idx_header;

/* "u8", "i8", "i16", "i32", "f32", "f64" <-> the type code; -1 / NULL
 * when unknown. */
int lv_idx_type_from_name(const char *name);
const char *lv_idx_type_name(int type);
/* Parses and checks the header of a (decompressed) IDX image. */
int lv_idx_parse_header(const uint8_t *data, size_t len, lv_idx_header *h);
/* A new contiguous tensor from a (decompressed) IDX image, the values as
 * stored (u8 pixels stay 0..255). dtype is the tensor's, or -1 for f32
 * (u8, i8, i16, f32) or f64 (i32, f64). Returns a new reference, or NULL. */
lv_tensor *lv_idx_decode(const uint8_t *data, size_t len, int dtype);
/* Appends t (any strides) as an IDX image of the given type. An integer
 * type refuses a value that is not an integer in its range (naming the
 * element); f32 rounds f64 values. */
int lv_idx_encode(lv_io_writer *w, const lv_tensor *t, int type);

#endif
