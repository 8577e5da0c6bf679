/*
 * io.h -- lvae's file formats, without Lua: checkpoints (a tagged tree of
 * values with a checksummed header), NumPy's .npy, and the byte buffers
 * and files under them.
 *
 * Every parser here takes a buffer and a length and trusts nothing in it:
 * each read checks the bytes left, each count or size read from the data is
 * checked against the bytes left before anything is allocated for it,
 * nesting is capped, shapes are checked for overflow. The parsers are meant
 * to be fuzzed (libFuzzer) and run under AddressSanitizer:
 *
 *     lv_ckpt_open(data, len, &payload, &plen)    header, version, checksum
 *     lv_ckpt_validate(payload, plen, 0)           the whole tree, no Lua
 *     lv_npy_decode(data, len, -1)                 a tensor, or NULL
 *     lv_io_gunzip(data, len, limit, &out)         bytes, at most limit
 *     lv_idx_decode(data, len, -1)                 a tensor, or NULL
 *
 * All integers and all tensor data are little-endian in checkpoints and
 * written .npy files (.npy may also be big-endian on reading); IDX is
 * big-endian. The code does not depend on the host's byte order.
 *
 * Errors: a function that fails returns -1 (or NULL) with a message in
 * lv_error (error.h). Messages say what is wrong with the data
 * ("checksum mismatch: the file is damaged"); they do not name the file,
 * which the caller (src/lua_io.c) puts in front.
 *
 * Not here: walking Lua values (the binding does that with the
 * lv_ckpt_put_* and lv_ckpt_read functions); where the data sets live
 * and how they are split and batched (lua/lvae/data.lua).
 */
#ifndef LV_IO_H
#define LV_IO_H

#include <stddef.h>
#include <stdint.h>

#include "tensor.h"

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
/* Appends; each returns 0, or -1 with lv_error set (out of memory). The
 * integers are written little-endian. */
int lv_io_put_bytes(lv_io_writer *w, const void *p, size_t n);
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
 * knows what was being read. */
int lv_io_get_u8(lv_io_reader *r, uint8_t *v);
int lv_io_get_u32(lv_io_reader *r, uint32_t *v);
int lv_io_get_u64(lv_io_reader *r, uint64_t *v);
/* Points *p at the next n bytes (inside the buffer) and skips them. */
int lv_io_get_bytes(lv_io_reader *r, const uint8_t **p, size_t n);

/* ---- files ----------------------------------------------------------- */

/* Reads a whole regular file into a malloc'd buffer (*data, *len; the
 * caller frees *data, which is non-NULL on success even for an empty
 * file). Fails on a directory or a special file. */
int lv_io_read_file(const char *path, uint8_t **data, size_t *len);
/* Writes data to path atomically: to "<path>.tmp.<pid>.<n>" in the same
 * directory, flushed and fsync'ed, then renamed over path. On failure the
 * temporary is removed and path is left as it was. */
int lv_io_write_file_atomic(const char *path, const void *data, size_t len);

/* ---- checkpoints ----------------------------------------------------- */

/*
 * A checkpoint file:
 *
 *     offset  size  field
 *          0     8  magic "LVAECKPT"
 *          8     4  format version (1)
 *         12     4  flags (0)
 *         16     8  payload length P
 *         24     4  CRC-32 (zlib's) of the payload
 *         28     P  payload: one value, encoded as below
 *
 * A value is a tag byte and what the tag says follows:
 *
 *     FALSE, TRUE      nothing
 *     INT              i64
 *     FLOAT            f64 (the IEEE-754 bits, as a u64)
 *     STRING           u64 length, then the bytes
 *     TABLE            u64 n, then n (key, value) pairs; a key is a STRING,
 *                      an INT or a FLOAT (not NaN)
 *     TENSOR           u8 dtype (0 f32, 1 f64), u8 ndim (0..8),
 *                      i64 shape[ndim], then the elements row-major
 *
 * Tables nest at most LV_CKPT_MAX_DEPTH deep; the payload holds exactly
 * one value and nothing after it.
 */
#define LV_CKPT_MAGIC "LVAECKPT"
#define LV_CKPT_VERSION 1
#define LV_CKPT_HEADER_SIZE 28
#define LV_CKPT_MAX_DEPTH 64

typedef enum lv_ckpt_tag {
    LV_CKPT_FALSE = 1,          /* 0 is not a tag: zeroed bytes are caught */
    LV_CKPT_TRUE = 2,
    LV_CKPT_INT = 3,
    LV_CKPT_FLOAT = 4,
    LV_CKPT_STRING = 5,
    LV_CKPT_TABLE = 6,
    LV_CKPT_TENSOR = 7
} lv_ckpt_tag;

/* Writing: lv_ckpt_begin reserves the header in an empty writer, the
 * lv_ckpt_put_* calls append the payload (a table's n pairs follow its
 * put_table), lv_ckpt_end fills in the payload length and checksum. */
int lv_ckpt_begin(lv_io_writer *w);
int lv_ckpt_put_bool(lv_io_writer *w, int b);
int lv_ckpt_put_int(lv_io_writer *w, int64_t v);
int lv_ckpt_put_float(lv_io_writer *w, double v);
int lv_ckpt_put_string(lv_io_writer *w, const char *s, size_t len);
int lv_ckpt_put_table(lv_io_writer *w, uint64_t n_pairs);
int lv_ckpt_put_tensor(lv_io_writer *w, const lv_tensor *t);
int lv_ckpt_end(lv_io_writer *w);

/* Reading, step 1: checks the header of a file image (magic, version,
 * flags, length, checksum) and points *payload at the payload. */
int lv_ckpt_open(const uint8_t *data, size_t len, const uint8_t **payload,
                 size_t *payload_len);

/* One decoded value. Strings and tensor data point into the buffer. */
typedef struct lv_ckpt_value {
    lv_ckpt_tag tag;
    int64_t i;                  /* INT */
    double f;                   /* FLOAT */
    const uint8_t *bytes;       /* STRING: the bytes; TENSOR: the data */
    size_t size;                /* their length */
    uint64_t n_pairs;           /* TABLE */
    lv_dtype dtype;             /* TENSOR */
    int ndim;
    int64_t shape[LV_MAX_DIMS];
} lv_ckpt_value;

/* A reader over a payload; `base` is added to positions in messages (the
 * header's size, so that they are file offsets). */
typedef struct lv_ckpt_reader {
    lv_io_reader r;
    size_t base;
} lv_ckpt_reader;

void lv_ckpt_reader_init(lv_ckpt_reader *cr, const uint8_t *payload,
                         size_t len, size_t base);
/* Reads one value's tag and fixed part at nesting depth `depth` (0 for the
 * payload's value; a table's keys and values are one deeper). A TABLE
 * leaves its pairs to the caller; a TENSOR skips its data (v->bytes).
 * With is_key, only a key's kinds are accepted. Errors read
 * "malformed payload at byte K: ...". */
int lv_ckpt_read(lv_ckpt_reader *cr, int depth, int is_key,
                 lv_ckpt_value *v);
/* Reading, step 2: walks the whole payload without allocating, and
 * checks that it is exactly one well-formed value. */
int lv_ckpt_validate(const uint8_t *payload, size_t len, size_t base);
/* A new contiguous tensor holding a TENSOR value's data. Returns a new
 * reference, or NULL (out of memory). */
lv_tensor *lv_ckpt_tensor(const lv_ckpt_value *v);

/* ---- .npy ------------------------------------------------------------ */

/*
 * NumPy's format (numpy/lib/format.py): "\x93NUMPY", u8 major, u8 minor,
 * header length (u16 in version 1.0, u32 in 2.0 and 3.0), a header that is
 * a Python dict literal {'descr': ..., 'fortran_order': ..., 'shape': ...},
 * then the elements. Read: versions 1.0 to 3.0, floats f4/f8, ints i1-i8,
 * u1-u8, bools b1, either byte order, C or Fortran order. Written: version
 * 1.0, '<f4' or '<f8', C order, header padded to a multiple of 64 bytes.
 */
#define LV_NPY_MAGIC "\x93NUMPY"

typedef enum lv_npy_kind {
    LV_NPY_FLOAT,
    LV_NPY_INT,
    LV_NPY_UINT,
    LV_NPY_BOOL
} lv_npy_kind;

typedef struct lv_npy_header {
    int major, minor;
    lv_npy_kind kind;
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

/* ---- gzip ------------------------------------------------------------ */

/* The default cap on what a gzip file may inflate to (2 GiB): a few bytes
 * of deflate can claim gigabytes, so a reader says how much it accepts. */
#define LV_GUNZIP_LIMIT ((size_t)1 << 31)

/* Whether data starts with gzip's magic bytes 1f 8b. */
int lv_io_is_gzip(const uint8_t *data, size_t len);
/* Inflates gzip data (one member or several, concatenated) into the
 * empty writer out, growing it progressively up to limit bytes. Fails on
 * bad magic, corrupt or truncated data, bytes after the last member, or
 * output above limit; out then holds a partial result the caller frees. */
int lv_io_gunzip(const uint8_t *data, size_t len, size_t limit,
                 lv_io_writer *out);
/* Appends data compressed as one gzip member (zlib level 6). */
int lv_io_gzip(lv_io_writer *out, const uint8_t *data, size_t len);

/* ---- IDX --------------------------------------------------------------- */

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

/* ---- gathering rows ---------------------------------------------------- */

/* A new contiguous tensor [n, x's other sizes] whose row i is row rows[i]
 * (0-based) of x (any strides, at least 1 dim). Borrows x; returns a new
 * reference, or NULL (a row out of range, or out of memory). */
lv_tensor *lv_io_gather_rows(const lv_tensor *x, const int64_t *rows,
                             int64_t n);

#endif
