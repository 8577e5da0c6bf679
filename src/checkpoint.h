/*
 * checkpoint.h -- lvae's checkpoint file: one value (booleans, integers,
 * floats, strings, tensors, and tables of those) as a tagged tree behind
 * a header with a length and a CRC-32, so that lv.save / lv.load can keep
 * a whole training state bit for bit and refuse a damaged or foreign
 * file with a message that says what is wrong.
 *
 * Reading is two steps over a file image (a buffer and a length, trusted
 * in nothing): lv_ckpt_open checks the header and the checksum,
 * lv_ckpt_validate walks the whole tree without allocating; only then
 * does a caller build values, one lv_ckpt_read at a time. Every count and
 * size is checked against the bytes left before it is believed, and
 * tables nest at most LV_CKPT_MAX_DEPTH deep, so that the walk's
 * recursion is bounded. Errors: -1 with a message in lv_error
 * ("checksum mismatch: the file is damaged", "malformed payload at byte
 * K: ..."); the caller puts the file's name in front.
 *
 * Not here: walking Lua values (lua_checkpoint.c does that with the
 * lv_ckpt_put_* and lv_ckpt_read functions), the file itself
 * (files.h: read whole, written atomically).
 */
#ifndef LV_CHECKPOINT_H
#define LV_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "bytes.h"
#include "tensor.h"

/*
 * A checkpoint file, every integer and tensor element little-endian:
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

#endif
