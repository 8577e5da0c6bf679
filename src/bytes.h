/*
 * bytes.h -- the byte layer that every file format of lvae is written
 * over: a growable writer, a bounds-checked reader, integers in either
 * byte order, and tensor elements to and from the bytes of a file.
 *
 * Why one layer: checkpoints (checkpoint.h), .npy (npy.h), IDX (idx.h),
 * gzip (gzip.h) and PNG (image.h) all append to an lv_io_writer and parse
 * through an lv_io_reader or the codecs below, so that the bounds checks
 * and the byte order are written once. A format's own layout, magic and
 * messages are in its own file.
 *
 * Trust: the reader never reads past its length; a failed get returns -1
 * without moving and sets no message (the caller knows what it was
 * reading, and says so).
 *
 * Byte order: every multi-byte integer is assembled from bytes with
 * shifts, so the code means the same on any host. Tensor elements are
 * copied as raw bytes when the file's order is the host's, and reversed
 * per element otherwise (big-endian .npy files on a little-endian machine
 * take that path; a big-endian host would take it for checkpoints).
 *
 * Errors: a function that can fail returns 0, or -1 with a message in
 * lv_error (error.h); writing fails only when memory runs out.
 *
 * Not here: files on disk (files.h), compression (gzip.h), any format's
 * layout.
 */
#ifndef LV_BYTES_H
#define LV_BYTES_H

#include <stddef.h>
#include <stdint.h>

#include "tensor.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#define LV_HOST_BIG_ENDIAN 1
#elif defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define LV_HOST_BIG_ENDIAN 0
#else
#error "bytes.h needs to know the host's byte order (__BYTE_ORDER__)"
#endif

/* ---- a growable byte buffer ------------------------------------------ */

typedef struct lv_io_writer {
    uint8_t *data;      /* malloc'd; NULL while empty */
    size_t len;         /* bytes written */
    size_t cap;         /* bytes allocated */
} lv_io_writer;

/* An empty writer (no allocation). */
void lv_io_writer_init(lv_io_writer *w);
/* Frees the bytes and leaves w empty; safe to call twice. */
void lv_io_writer_free(lv_io_writer *w);
/* Makes room for n more bytes (the allocation at least doubles). */
int lv_io_reserve(lv_io_writer *w, size_t n);
/* Reallocates to exactly cap bytes (cap >= w->len): for a caller that
 * sizes the buffer itself, as gunzip does against its limit. */
int lv_io_writer_resize(lv_io_writer *w, size_t cap);
/* Appends; each returns 0, or -1 with lv_error set (out of memory). The
 * integers are written little-endian; lv_io_put_uint writes the low
 * `size` (1..8) bytes of v. */
int lv_io_put_bytes(lv_io_writer *w, const void *p, size_t n);
int lv_io_put_uint(lv_io_writer *w, uint64_t v, int size);
int lv_io_put_u8(lv_io_writer *w, uint8_t v);
int lv_io_put_u32(lv_io_writer *w, uint32_t v);
int lv_io_put_u64(lv_io_writer *w, uint64_t v);
/* The elements of t (any strides) in row-major order, little-endian. */
int lv_io_put_tensor_data(lv_io_writer *w, const lv_tensor *t);

/* ---- a bounds-checked reader ----------------------------------------- */

typedef struct lv_io_reader {
    const uint8_t *data;
    size_t len;
    size_t pos;         /* next byte to read; never above len */
} lv_io_reader;

void lv_io_reader_init(lv_io_reader *r, const void *data, size_t len);
/* Bytes left to read. */
size_t lv_io_left(const lv_io_reader *r);
/* Each returns 0 and advances, or returns -1 without moving when fewer
 * bytes are left than the value needs. They set no message: the caller
 * knows what was being read. Little-endian; lv_io_get_uint reads `size`
 * (1..8) bytes. */
int lv_io_get_uint(lv_io_reader *r, uint64_t *v, int size);
int lv_io_get_u8(lv_io_reader *r, uint8_t *v);
int lv_io_get_u32(lv_io_reader *r, uint32_t *v);
int lv_io_get_u64(lv_io_reader *r, uint64_t *v);
/* Points *p at the next n bytes (inside the buffer) and skips them. */
int lv_io_get_bytes(lv_io_reader *r, const uint8_t **p, size_t n);

/* ---- integers in either byte order ----------------------------------- */

/* The unsigned integer in the `size` (1..8) bytes at p. */
uint64_t lv_io_load_uint(const uint8_t *p, int size, int big_endian);
/* The low `size` bytes of v into p. */
void lv_io_store_uint(uint8_t *p, uint64_t v, int size, int big_endian);
/* The bits of u as a two's complement integer (without undefined
 * behaviour). */
int64_t lv_io_int64_of_bits(uint64_t u);

/* ---- tensor elements ------------------------------------------------- */

/* What the elements stored in a file are: the kinds of .npy's descr
 * ('f', 'i', 'u', 'b'), which IDX's types and checkpoints' floats are
 * special cases of. */
typedef enum lv_io_kind {
    LV_IO_FLOAT,                /* IEEE-754, 4 or 8 bytes */
    LV_IO_INT,                  /* two's complement, 1 to 8 bytes */
    LV_IO_UINT,
    LV_IO_BOOL                  /* 1 byte, zero or not */
} lv_io_kind;

/*
 * Fills the contiguous tensor out from numel(out) elements at src, of the
 * given kind, size and byte order. With fortran, src holds the array
 * column-major (the first index varies fastest). Floats of the tensor's
 * own width are copied bit for bit (NaN payloads, -0.0); everything else
 * goes through a double, rounded once to f32 if out is f32. The caller
 * has checked that src holds the elements.
 */
void lv_io_decode_elements(lv_tensor *out, const uint8_t *src,
                           lv_io_kind kind, int size, int big_endian,
                           int fortran);
/* Copies the elements of a strided block (ndim, shape, stride in
 * elements, element 0 at base, es bytes each) to out in row-major order,
 * reversing the bytes of each when swap. */
void lv_io_copy_strided(uint8_t *out, const uint8_t *base, int ndim,
                        const int64_t *shape, const int64_t *stride,
                        size_t es, int swap);

#endif
