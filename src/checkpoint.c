/*
 * checkpoint.c -- writing and reading checkpoints (the format is laid out
 * in checkpoint.h): the header with its length and CRC-32, then the
 * tagged tree -- writers, the reader of one value, the validating walk.
 *
 * Trust: nothing read from a payload is believed before it is checked
 * against the bytes left: a string's length, a table's count (against
 * the smallest pair, CKPT_MIN_PAIR), a tensor's data; shapes go through
 * lv_shape_check (ndim, negative sizes, overflow); nesting is capped at
 * LV_CKPT_MAX_DEPTH, so the validating recursion is bounded too.
 *
 * Not here: Lua values (lua_checkpoint.c walks them), files (files.c).
 */
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "checkpoint.h"
#include "digest.h"
#include "npy.h"

/* ---- checkpoints: the header ----------------------------------------- */

int lv_ckpt_begin(lv_io_writer *w)
{
    if (lv_io_put_bytes(w, LV_CKPT_MAGIC, 8) < 0 ||
        lv_io_put_u32(w, LV_CKPT_VERSION) < 0 ||
        lv_io_put_u32(w, 0) < 0 ||              /* flags */
        lv_io_put_u64(w, 0) < 0 ||              /* length, by lv_ckpt_end */
        lv_io_put_u32(w, 0) < 0)                /* CRC, by lv_ckpt_end */
        return -1;
    return 0;
}

int lv_ckpt_end(lv_io_writer *w)
{
    if (w->len < LV_CKPT_HEADER_SIZE)
        return lv_error_set(0, "checkpoint writer has no header");
    size_t n = w->len - LV_CKPT_HEADER_SIZE;
    lv_io_store_uint(w->data + 16, n, 8, 0);
    uint32_t crc = lv_crc32_update(0, w->data + LV_CKPT_HEADER_SIZE, n);
    lv_io_store_uint(w->data + 24, crc, 4, 0);
    return 0;
}

int lv_ckpt_open(const uint8_t *data, size_t len, const uint8_t **payload,
                 size_t *payload_len)
{
    if (len == 0)
        return lv_error_set(0, "empty file (not an lvae checkpoint)");
    size_t m = len < 8 ? len : 8;
    if (memcmp(data, LV_CKPT_MAGIC, m) != 0) {
        if (len >= 6 && memcmp(data, LV_NPY_MAGIC, 6) == 0)
            return lv_error_set(0, "not an lvae checkpoint (bad magic; the "
                                "file looks like a NumPy .npy array)");
        return lv_error_set(0, "not an lvae checkpoint (bad magic)");
    }
    if (len < LV_CKPT_HEADER_SIZE)
        return lv_error_set(0, "truncated: the file has %zu bytes, less than "
                            "the %d-byte header", len, LV_CKPT_HEADER_SIZE);
    lv_io_reader r;
    uint32_t version, flags, crc;
    uint64_t n;
    lv_io_reader_init(&r, data, len);
    r.pos = 8;
    /* cannot fail: the header's 28 bytes are there */
    (void)lv_io_get_u32(&r, &version);
    (void)lv_io_get_u32(&r, &flags);
    (void)lv_io_get_u64(&r, &n);
    (void)lv_io_get_u32(&r, &crc);
    if (version != LV_CKPT_VERSION)
        return lv_error_set(0, "unsupported checkpoint version %" PRIu32
                            " (this lvae reads version %d)", version,
                            LV_CKPT_VERSION);
    if (flags != 0)
        return lv_error_set(0, "unsupported checkpoint flags 0x%08" PRIx32
                            " (this lvae knows none)", flags);
    size_t have = len - LV_CKPT_HEADER_SIZE;
    if (n > have)
        return lv_error_set(0, "truncated: header says %" PRIu64 " payload "
                            "bytes, file has %zu", n, have);
    if (n < have)
        return lv_error_set(0, "%zu bytes of unexpected data after the "
                            "payload (header says %" PRIu64 " payload bytes; "
                            "the file is damaged)", have - (size_t)n, n);
    if (lv_crc32_update(0, data + LV_CKPT_HEADER_SIZE, have) != crc)
        return lv_error_set(0, "checksum mismatch: the file is damaged");
    *payload = data + LV_CKPT_HEADER_SIZE;
    *payload_len = have;
    return 0;
}

/* ---- checkpoints: the tree ------------------------------------------- */

/* On-disk dtype codes, fixed by the format (not lv_dtype's values). */
enum { CKPT_DTYPE_F32 = 0, CKPT_DTYPE_F64 = 1 };

/* Smallest encoding of a table pair: a key (tag + 8 bytes: an INT, a FLOAT
 * or an empty STRING's length) and a value (a tag alone). */
#define CKPT_MIN_PAIR 10

int lv_ckpt_put_bool(lv_io_writer *w, int b)
{
    return lv_io_put_u8(w, b ? LV_CKPT_TRUE : LV_CKPT_FALSE);
}

int lv_ckpt_put_int(lv_io_writer *w, int64_t v)
{
    if (lv_io_put_u8(w, LV_CKPT_INT) < 0)
        return -1;
    return lv_io_put_u64(w, (uint64_t)v);
}

int lv_ckpt_put_float(lv_io_writer *w, double v)
{
    uint64_t bits;
    memcpy(&bits, &v, sizeof bits);
    if (lv_io_put_u8(w, LV_CKPT_FLOAT) < 0)
        return -1;
    return lv_io_put_u64(w, bits);
}

int lv_ckpt_put_string(lv_io_writer *w, const char *s, size_t len)
{
    if (lv_io_put_u8(w, LV_CKPT_STRING) < 0 || lv_io_put_u64(w, len) < 0)
        return -1;
    return lv_io_put_bytes(w, s, len);
}

int lv_ckpt_put_table(lv_io_writer *w, uint64_t n_pairs)
{
    if (lv_io_put_u8(w, LV_CKPT_TABLE) < 0)
        return -1;
    return lv_io_put_u64(w, n_pairs);
}

int lv_ckpt_put_tensor(lv_io_writer *w, const lv_tensor *t)
{
    uint8_t code = t->dtype == LV_DTYPE_F64 ? CKPT_DTYPE_F64 : CKPT_DTYPE_F32;
    if (lv_io_put_u8(w, LV_CKPT_TENSOR) < 0 || lv_io_put_u8(w, code) < 0 ||
        lv_io_put_u8(w, (uint8_t)t->ndim) < 0)
        return -1;
    for (int d = 0; d < t->ndim; d++)
        if (lv_io_put_u64(w, (uint64_t)t->shape[d]) < 0)
            return -1;
    return lv_io_put_tensor_data(w, t);
}

void lv_ckpt_reader_init(lv_ckpt_reader *cr, const uint8_t *payload,
                         size_t len, size_t base)
{
    lv_io_reader_init(&cr->r, payload, len);
    cr->base = base;
}

#define MALFORMED(at, ...) malformed(cr, (at), __VA_ARGS__)

__attribute__((format(printf, 3, 4)))
static int malformed(const lv_ckpt_reader *cr, size_t at, const char *fmt, ...)
{
    char what[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return lv_error_set(0, "malformed payload at byte %zu: %s",
                        cr->base + at, what);
}

static int read_tensor_header(lv_ckpt_reader *cr, lv_ckpt_value *v)
{
    lv_io_reader *r = &cr->r;
    size_t at = r->pos;
    uint8_t code, ndim;
    if (lv_io_get_u8(r, &code) < 0 || lv_io_get_u8(r, &ndim) < 0)
        return MALFORMED(at, "the payload ends inside a tensor's header");
    if (code != CKPT_DTYPE_F32 && code != CKPT_DTYPE_F64)
        return MALFORMED(at, "unknown tensor dtype code %u", code);
    if (ndim > LV_MAX_DIMS)
        return MALFORMED(at + 1, "a tensor of %u dimensions (at most %d)",
                         ndim, LV_MAX_DIMS);
    v->dtype = code == CKPT_DTYPE_F64 ? LV_DTYPE_F64 : LV_DTYPE_F32;
    v->ndim = ndim;
    for (int d = 0; d < ndim; d++) {
        uint64_t u;
        if (lv_io_get_u64(r, &u) < 0)
            return MALFORMED(r->pos, "the payload ends inside a tensor's "
                             "shape");
        v->shape[d] = lv_io_int64_of_bits(u);
        if (v->shape[d] < 0)
            return MALFORMED(r->pos - 8, "dimension %d of a tensor has "
                             "negative size %" PRId64, d + 1, v->shape[d]);
    }
    char buf[200];
    lv_shape_format(buf, sizeof buf, v->ndim, v->shape);
    if (lv_shape_check("checkpoint", v->ndim, v->shape) < 0)
        return MALFORMED(at, "tensor shape %s is too large", buf);
    /* numel <= 2^48 (lv_shape_check), so numel * 8 fits in 64 bits */
    uint64_t nbytes = (uint64_t)lv_shape_numel(v->ndim, v->shape) *
                      lv_dtype_size(v->dtype);
    if (nbytes > lv_io_left(r))
        return MALFORMED(r->pos, "a %s tensor of shape %s needs %" PRIu64
                         " bytes of data, %zu are left",
                         lv_dtype_name(v->dtype), buf, nbytes, lv_io_left(r));
    v->size = (size_t)nbytes;
    (void)lv_io_get_bytes(r, &v->bytes, v->size);
    return 0;
}

int lv_ckpt_read(lv_ckpt_reader *cr, int depth, int is_key, lv_ckpt_value *v)
{
    lv_io_reader *r = &cr->r;
    size_t at = r->pos;
    uint8_t tag;
    uint64_t u;
    memset(v, 0, sizeof *v);
    if (lv_io_get_u8(r, &tag) < 0)
        return MALFORMED(at, "the payload ends where a value should start");
    v->tag = (lv_ckpt_tag)tag;
    switch (tag) {
    case LV_CKPT_FALSE:
    case LV_CKPT_TRUE:
        if (is_key)
            return MALFORMED(at, "a boolean as a table key");
        return 0;
    case LV_CKPT_INT:
    case LV_CKPT_FLOAT:
        if (lv_io_get_u64(r, &u) < 0)
            return MALFORMED(at, "the payload ends inside a number");
        if (tag == LV_CKPT_INT) {
            v->i = lv_io_int64_of_bits(u);
        } else {
            memcpy(&v->f, &u, sizeof v->f);
            if (is_key && isnan(v->f))
                return MALFORMED(at, "NaN as a table key");
        }
        return 0;
    case LV_CKPT_STRING:
        if (lv_io_get_u64(r, &u) < 0)
            return MALFORMED(at, "the payload ends inside a string's length");
        if (u > lv_io_left(r))
            return MALFORMED(at, "a string of %" PRIu64 " bytes, but %zu "
                             "bytes are left", u, lv_io_left(r));
        v->size = (size_t)u;
        (void)lv_io_get_bytes(r, &v->bytes, v->size);
        return 0;
    case LV_CKPT_TABLE:
        if (is_key)
            return MALFORMED(at, "a table as a table key");
        if (depth >= LV_CKPT_MAX_DEPTH)
            return MALFORMED(at, "tables nested more than %d deep",
                             LV_CKPT_MAX_DEPTH);
        if (lv_io_get_u64(r, &u) < 0)
            return MALFORMED(at, "the payload ends inside a table's count");
        if (u > lv_io_left(r) / CKPT_MIN_PAIR)
            return MALFORMED(at, "a table of %" PRIu64 " entries cannot fit "
                             "in the %zu bytes left", u, lv_io_left(r));
        v->n_pairs = u;
        return 0;
    case LV_CKPT_TENSOR:
        if (is_key)
            return MALFORMED(at, "a tensor as a table key");
        return read_tensor_header(cr, v);
    default:
        return MALFORMED(at, "unknown value tag 0x%02x", tag);
    }
}

/* One value and everything inside it; recursion depth <= MAX_DEPTH + 1. */
static int validate_value(lv_ckpt_reader *cr, int depth, int is_key)
{
    lv_ckpt_value v;
    if (lv_ckpt_read(cr, depth, is_key, &v) < 0)
        return -1;
    if (v.tag == LV_CKPT_TABLE)
        for (uint64_t k = 0; k < v.n_pairs; k++)
            if (validate_value(cr, depth + 1, 1) < 0 ||
                validate_value(cr, depth + 1, 0) < 0)
                return -1;
    return 0;
}

int lv_ckpt_validate(const uint8_t *payload, size_t len, size_t base)
{
    lv_ckpt_reader reader, *cr = &reader;
    lv_ckpt_reader_init(cr, payload, len, base);
    if (validate_value(cr, 0, 0) < 0)
        return -1;
    if (lv_io_left(&cr->r) != 0)
        return MALFORMED(cr->r.pos, "%zu bytes after the checkpoint's value",
                         lv_io_left(&cr->r));
    return 0;
}

lv_tensor *lv_ckpt_tensor(const lv_ckpt_value *v)
{
    lv_tensor *t = lv_tensor_empty(v->dtype, v->ndim, v->shape);
    if (!t)
        return NULL;
    lv_io_decode_elements(t, v->bytes, LV_IO_FLOAT,
                          (int)lv_dtype_size(v->dtype), 0, 0);
    return t;
}
