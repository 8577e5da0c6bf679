/*
 * idx.c -- IDX files (idx.h): one table of the element types (code, name,
 * kind, size, the integers an integer type holds) that the header parser,
 * the decoder and the encoder all read.
 *
 * u8 files (images, labels) are decoded by a plain loop; the other types
 * go through bytes.h's element codecs, big-endian. The encoder refuses a
 * value its type cannot hold rather than wrap or clamp it.
 *
 * Not here: gzip (gzip.c), files (files.c).
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "gzip.h"
#include "idx.h"
#include "npy.h"

typedef struct idx_type_info {
    uint8_t code;
    const char *name;
    lv_io_kind kind;
    int size;
    double lo, hi;          /* the integers an integer type holds */
} idx_type_info;

static const idx_type_info idx_types[] = {
    {LV_IDX_U8, "u8", LV_IO_UINT, 1, 0.0, 255.0},
    {LV_IDX_I8, "i8", LV_IO_INT, 1, -128.0, 127.0},
    {LV_IDX_I16, "i16", LV_IO_INT, 2, -32768.0, 32767.0},
    {LV_IDX_I32, "i32", LV_IO_INT, 4, -2147483648.0, 2147483647.0},
    {LV_IDX_F32, "f32", LV_IO_FLOAT, 4, 0.0, 0.0},
    {LV_IDX_F64, "f64", LV_IO_FLOAT, 8, 0.0, 0.0},
};
#define N_IDX_TYPES (sizeof idx_types / sizeof idx_types[0])

static const idx_type_info *idx_type(int code)
{
    for (size_t k = 0; k < N_IDX_TYPES; k++)
        if (idx_types[k].code == code)
            return &idx_types[k];
    return NULL;
}

int lv_idx_type_from_name(const char *name)
{
    for (size_t k = 0; k < N_IDX_TYPES; k++)
        if (strcmp(idx_types[k].name, name) == 0)
            return idx_types[k].code;
    return -1;
}

const char *lv_idx_type_name(int type)
{
    const idx_type_info *ti = idx_type(type);
    return ti ? ti->name : NULL;
}

/* "60000x28x28" (or "scalar") into buf. */
static const char *idx_shape_text(char *buf, size_t size, int ndim,
                                  const int64_t *shape)
{
    size_t used = 0;
    buf[0] = '\0';
    if (ndim == 0)
        snprintf(buf, size, "scalar");
    for (int d = 0; d < ndim && used < size; d++)
        used += (size_t)snprintf(buf + used, size - used, "%s%" PRId64,
                                 d ? "x" : "", shape[d]);
    return buf;
}

int lv_idx_parse_header(const uint8_t *data, size_t len, lv_idx_header *h)
{
    memset(h, 0, sizeof *h);
    if (len == 0)
        return lv_error_set(0, "empty file (not an IDX file)");
    if (len < 4 || data[0] != 0 || data[1] != 0) {
        char hex[16] = "";
        for (size_t k = 0; k < len && k < 4; k++)
            snprintf(hex + 2 * k, sizeof hex - 2 * k, "%02x", data[k]);
        if (len < 4 && data[0] == 0 && (len < 2 || data[1] == 0))
            return lv_error_set(0, "truncated: the file has %zu bytes, less "
                                "than an IDX file's 4-byte magic", len);
        return lv_error_set(0, "not an IDX file (bad magic 0x%s; an IDX file "
                            "starts with two zero bytes, a type byte and the "
                            "number of dimensions)%s", hex,
                            len >= 6 && memcmp(data, LV_NPY_MAGIC, 6) == 0
                                ? "; the file looks like a NumPy .npy array"
                            : lv_io_is_gzip(data, len)
                                ? "; the file looks like gzip data" : "");
    }
    const idx_type_info *ti = idx_type(data[2]);
    if (!ti)
        return lv_error_set(0, "unsupported IDX type 0x%02x (lvae reads 0x08 "
                            "u8, 0x09 i8, 0x0B i16, 0x0C i32, 0x0D f32, 0x0E "
                            "f64)", data[2]);
    int ndim = data[3];
    if (ndim > LV_MAX_DIMS)
        return lv_error_set(0, "an IDX file of %d dimensions (lvae tensors "
                            "have at most %d)", ndim, LV_MAX_DIMS);
    size_t hsize = 4 + 4 * (size_t)ndim;
    if (len < hsize)
        return lv_error_set(0, "truncated: the file ends inside the IDX "
                            "header (%d dimensions need %zu bytes, the file "
                            "has %zu)", ndim, hsize, len);
    for (int d = 0; d < ndim; d++)
        h->shape[d] = (int64_t)lv_io_load_uint(data + 4 + 4 * d, 4, 1);
    if (lv_shape_check("IDX shape", ndim, h->shape) < 0)
        return -1;
    h->type = ti->code;
    h->ndim = ndim;
    h->data_offset = hsize;
    return 0;
}

lv_tensor *lv_idx_decode(const uint8_t *data, size_t len, int dtype)
{
    lv_idx_header h;
    if (lv_idx_parse_header(data, len, &h) < 0)
        return NULL;
    const idx_type_info *ti = idx_type(h.type);
    /* numel <= 2^48, size <= 8: no overflow in 64 bits */
    uint64_t need = (uint64_t)lv_shape_numel(h.ndim, h.shape) *
                    (uint64_t)ti->size;
    size_t have = len - h.data_offset;
    if (need != have) {
        char buf[200];
        idx_shape_text(buf, sizeof buf, h.ndim, h.shape);
        if (need > have)
            lv_error_set(0, "truncated: the header says %s %s = %" PRIu64
                         " bytes of data, the file has %zu", buf, ti->name,
                         need, have);
        else
            lv_error_set(0, "sizes do not match: the header says %s %s = %"
                         PRIu64 " bytes of data, the file has %zu (%" PRIu64
                         " bytes too many)", buf, ti->name, need, have,
                         (uint64_t)have - need);
        return NULL;
    }
    lv_dtype out = dtype >= 0 ? (lv_dtype)dtype
                   : ti->code == LV_IDX_I32 || ti->code == LV_IDX_F64
                       ? LV_DTYPE_F64 : LV_DTYPE_F32;
    lv_tensor *t = lv_tensor_empty(out, h.ndim, h.shape);
    if (!t)
        return NULL;
    const uint8_t *src = data + h.data_offset;
    if (ti->code == LV_IDX_U8) {
        /* the common case (images, labels), without a double per byte */
        int64_t n = lv_tensor_numel(t);
        if (out == LV_DTYPE_F32) {
            float *o = lv_tensor_data(t);
            for (int64_t i = 0; i < n; i++)
                o[i] = (float)src[i];
        } else {
            double *o = lv_tensor_data(t);
            for (int64_t i = 0; i < n; i++)
                o[i] = (double)src[i];
        }
    } else {
        lv_io_decode_elements(t, src, ti->kind, ti->size, 1, 0);
    }
    return t;
}

int lv_idx_encode(lv_io_writer *w, const lv_tensor *t, int type)
{
    const idx_type_info *ti = idx_type(type);
    if (!ti)
        return lv_error_set(0, "unsupported IDX type 0x%02x", (unsigned)type);
    for (int d = 0; d < t->ndim; d++)
        if ((uint64_t)t->shape[d] > UINT32_MAX)
            return lv_error_set(0, "dimension %d has size %" PRId64 ", more "
                                "than an IDX file can hold (2^32 - 1)", d + 1,
                                t->shape[d]);
    int64_t n = lv_tensor_numel(t);
    size_t es = lv_dtype_size(t->dtype);
    if ((uint64_t)n > SIZE_MAX / 8)
        return lv_error_set(0, "tensor too large to write");

    /* The elements row-major, in a contiguous copy when t is a view. */
    const uint8_t *src = lv_tensor_data(t);
    uint8_t *copy = NULL;
    if (n > 0 && t->ndim > 0 && !lv_tensor_is_contiguous(t)) {
        copy = lv_malloc((size_t)n * es);
        if (!copy)
            return lv_error_set(0, "out of memory (%zu bytes)", (size_t)n * es);
        lv_io_copy_strided(copy, src, t->ndim, t->shape, t->stride, es, 0);
        src = copy;
    }

    int rc = 0;
    uint8_t head[4] = {0, 0, ti->code, (uint8_t)t->ndim};
    if (lv_io_put_bytes(w, head, 4) < 0)
        rc = -1;
    for (int d = 0; d < t->ndim && rc == 0; d++) {
        uint8_t b[4];
        lv_io_store_uint(b, (uint64_t)t->shape[d], 4, 1);
        rc = lv_io_put_bytes(w, b, 4);
    }
    if (rc == 0 && lv_io_reserve(w, (size_t)n * (size_t)ti->size) < 0)
        rc = -1;
    for (int64_t i = 0; i < n && rc == 0; i++) {
        double v;
        float f = 0.0f;
        if (t->dtype == LV_DTYPE_F32) {
            memcpy(&f, src + (size_t)i * 4, 4);
            v = (double)f;
        } else {
            memcpy(&v, src + (size_t)i * 8, 8);
            f = (float)v;
        }
        uint64_t bits;
        if (ti->kind != LV_IO_FLOAT) {
            if (!(v == floor(v) && v >= ti->lo && v <= ti->hi)) {
                rc = lv_error_set(0, "element %" PRId64 " is %.9g: a %s IDX "
                                  "file holds integers %.0f to %.0f (round, "
                                  "scale or clamp first, or save as f32)",
                                  i + 1, v, ti->name, ti->lo, ti->hi);
                break;
            }
            bits = (uint64_t)(int64_t)v;     /* two's complement, truncated */
        } else if (ti->size == 4) {
            uint32_t b32;
            memcpy(&b32, &f, 4);
            bits = b32;
        } else {
            memcpy(&bits, &v, 8);
        }
        lv_io_store_uint(w->data + w->len, bits, ti->size, 1);
        w->len += (size_t)ti->size;
    }
    free(copy);
    return rc;
}
