/*
 * bytes.c -- the writer, the reader, and the codecs of integers and tensor
 * elements that the file formats share (bytes.h says what each does).
 *
 * The file reads top to bottom as: integers, element codecs (from the
 * bytes of a file into a tensor, and a strided block out to bytes), the
 * writer, the reader.
 *
 * Not here: any format (checkpoint.c, npy.c, idx.c, gzip.c, image.c),
 * files (files.c).
 */
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "bytes.h"

_Static_assert(sizeof(double) == 8 && sizeof(float) == 4,
               "IEEE-754 binary32 and binary64 are assumed");

/* ---- integers -------------------------------------------------------- */

uint64_t lv_io_load_uint(const uint8_t *p, int size, int big_endian)
{
    uint64_t u = 0;
    for (int k = 0; k < size; k++)
        u |= (uint64_t)p[k] << (8 * (big_endian ? size - 1 - k : k));
    return u;
}

void lv_io_store_uint(uint8_t *p, uint64_t v, int size, int big_endian)
{
    for (int k = 0; k < size; k++)
        p[k] = (uint8_t)(v >> (8 * (big_endian ? size - 1 - k : k)));
}

int64_t lv_io_int64_of_bits(uint64_t u)
{
    int64_t i;
    memcpy(&i, &u, sizeof i);   /* two's complement, without UB */
    return i;
}

/* ---- element codecs -------------------------------------------------- */

/* Copies n elements of `size` bytes from src to dst, reversing the bytes
 * of each when swap. */
static void copy_elements(uint8_t *dst, const uint8_t *src, size_t n,
                          size_t size, int swap)
{
    if (!swap) {
        memcpy(dst, src, n * size);
        return;
    }
    for (size_t i = 0; i < n; i++, dst += size, src += size)
        for (size_t k = 0; k < size; k++)
            dst[k] = src[size - 1 - k];
}

/* One element of a file's array as a double. */
static double load_element(const uint8_t *p, lv_io_kind kind, int size,
                           int big_endian)
{
    uint64_t u = lv_io_load_uint(p, size, big_endian);
    switch (kind) {
    case LV_IO_FLOAT:
        if (size == 4) {
            uint32_t b = (uint32_t)u;
            float f;
            memcpy(&f, &b, sizeof f);
            return (double)f;
        } else {
            double d;
            memcpy(&d, &u, sizeof d);
            return d;
        }
    case LV_IO_INT:
        if (size < 8 && (u >> (8 * size - 1)) & 1)
            u |= ~UINT64_C(0) << (8 * size);      /* sign-extend */
        return (double)lv_io_int64_of_bits(u);
    case LV_IO_UINT:
        return (double)u;
    case LV_IO_BOOL:
        return u != 0 ? 1.0 : 0.0;
    }
    return 0.0;
}

/*
 * With fortran, element idx of out is src element sum_d idx[d] *
 * cstride[d], cstride[d] = prod_{e<d} shape[e]: the loop walks out in
 * row-major order and carries the column-major source index j along.
 */
void lv_io_decode_elements(lv_tensor *out, const uint8_t *src,
                           lv_io_kind kind, int size, int big_endian,
                           int fortran)
{
    int64_t n = lv_tensor_numel(out);
    size_t osize = lv_dtype_size(out->dtype);
    uint8_t *dst = lv_tensor_data(out);
    int raw = kind == LV_IO_FLOAT && (size_t)size == osize;
    int swap = big_endian != LV_HOST_BIG_ENDIAN;
    int nd = out->ndim;
    if (n == 0)
        return;
    if (raw && !fortran) {
        copy_elements(dst, src, (size_t)n, osize, swap);
        return;
    }

    int64_t idx[LV_MAX_DIMS] = {0}, cstride[LV_MAX_DIMS];
    for (int d = 0; d < nd; d++)
        cstride[d] = fortran ? (d ? cstride[d - 1] * out->shape[d - 1] : 1)
                             : 0;
    int64_t j = 0;                          /* the source element */
    for (int64_t i = 0; i < n; i++) {
        const uint8_t *s = src + (size_t)(fortran ? j : i) * (size_t)size;
        uint8_t *o = dst + (size_t)i * osize;
        if (raw) {
            copy_elements(o, s, 1, osize, swap);
        } else {
            lv_store_double(dst, out->dtype, i,
                            load_element(s, kind, size, big_endian));
        }
        if (!fortran)
            continue;
        /* next row-major index of out, and its column-major source */
        for (int d = nd - 1; d >= 0; d--) {
            j += cstride[d];
            if (++idx[d] < out->shape[d])
                break;
            j -= out->shape[d] * cstride[d];
            idx[d] = 0;
        }
    }
}

/* Walks row by row over the last dim, the leading dims counted by idx. */
void lv_io_copy_strided(uint8_t *out, const uint8_t *base, int ndim,
                        const int64_t *shape, const int64_t *stride,
                        size_t es, int swap)
{
    int64_t n = lv_shape_numel(ndim, shape);
    if (n == 0)
        return;
    if (ndim == 0) {
        copy_elements(out, base, 1, es, swap);
        return;
    }
    int last = ndim - 1;
    int64_t idx[LV_MAX_DIMS] = {0};
    int64_t rows = n / shape[last];
    for (int64_t r = 0; r < rows; r++) {
        int64_t off = 0;
        for (int d = 0; d < last; d++)
            off += idx[d] * stride[d];
        for (int64_t k = 0; k < shape[last]; k++, out += es)
            copy_elements(out, base + (off + k * stride[last]) * (int64_t)es,
                          1, es, swap);
        for (int d = last - 1; d >= 0; d--) {
            if (++idx[d] < shape[d])
                break;
            idx[d] = 0;
        }
    }
}

/* ---- the writer ------------------------------------------------------ */

void lv_io_writer_init(lv_io_writer *w)
{
    w->data = NULL;
    w->len = 0;
    w->cap = 0;
}

void lv_io_writer_free(lv_io_writer *w)
{
    free(w->data);
    lv_io_writer_init(w);
}

int lv_io_writer_resize(lv_io_writer *w, size_t cap)
{
    uint8_t *p = lv_realloc(w->data, cap);
    if (!p)
        return lv_error_set(0, "out of memory (a buffer of %zu bytes)", cap);
    w->data = p;
    w->cap = cap;
    return 0;
}

int lv_io_reserve(lv_io_writer *w, size_t n)
{
    if (n <= w->cap - w->len)
        return 0;
    if (n > SIZE_MAX / 2 - w->len)
        return lv_error_set(0, "out of memory (a buffer of %zu + %zu bytes)",
                            w->len, n);
    size_t cap = w->cap ? w->cap : 256;
    while (cap < w->len + n)
        cap *= 2;
    return lv_io_writer_resize(w, cap);
}

int lv_io_put_bytes(lv_io_writer *w, const void *p, size_t n)
{
    if (lv_io_reserve(w, n) < 0)
        return -1;
    if (n)
        memcpy(w->data + w->len, p, n);
    w->len += n;
    return 0;
}

int lv_io_put_uint(lv_io_writer *w, uint64_t v, int size)
{
    uint8_t b[8];
    lv_io_store_uint(b, v, size, 0);
    return lv_io_put_bytes(w, b, (size_t)size);
}

int lv_io_put_u8(lv_io_writer *w, uint8_t v) { return lv_io_put_uint(w, v, 1); }
int lv_io_put_u32(lv_io_writer *w, uint32_t v) { return lv_io_put_uint(w, v, 4); }
int lv_io_put_u64(lv_io_writer *w, uint64_t v) { return lv_io_put_uint(w, v, 8); }

int lv_io_put_tensor_data(lv_io_writer *w, const lv_tensor *t)
{
    int64_t n = lv_tensor_numel(t);
    size_t es = lv_dtype_size(t->dtype);
    int swap = LV_HOST_BIG_ENDIAN;              /* the file is little-endian */
    if (n == 0)
        return 0;
    if ((uint64_t)n > SIZE_MAX / es)
        return lv_error_set(0, "tensor too large to write");
    size_t nbytes = (size_t)n * es;
    if (lv_io_reserve(w, nbytes) < 0)
        return -1;
    uint8_t *out = w->data + w->len;
    const uint8_t *base = lv_tensor_data(t);
    w->len += nbytes;

    if (t->ndim == 0 || lv_tensor_is_contiguous(t))
        copy_elements(out, base, (size_t)n, es, swap);
    else
        lv_io_copy_strided(out, base, t->ndim, t->shape, t->stride, es, swap);
    return 0;
}

/* ---- the reader ------------------------------------------------------ */

void lv_io_reader_init(lv_io_reader *r, const void *data, size_t len)
{
    r->data = data;
    r->len = data ? len : 0;
    r->pos = 0;
}

size_t lv_io_left(const lv_io_reader *r) { return r->len - r->pos; }

int lv_io_get_bytes(lv_io_reader *r, const uint8_t **p, size_t n)
{
    if (n > lv_io_left(r))
        return -1;
    *p = r->data + r->pos;
    r->pos += n;
    return 0;
}

int lv_io_get_uint(lv_io_reader *r, uint64_t *v, int size)
{
    const uint8_t *p;
    if (lv_io_get_bytes(r, &p, (size_t)size) < 0)
        return -1;
    *v = lv_io_load_uint(p, size, 0);
    return 0;
}

int lv_io_get_u8(lv_io_reader *r, uint8_t *v)
{
    uint64_t u;
    if (lv_io_get_uint(r, &u, 1) < 0)
        return -1;
    *v = (uint8_t)u;
    return 0;
}

int lv_io_get_u32(lv_io_reader *r, uint32_t *v)
{
    uint64_t u;
    if (lv_io_get_uint(r, &u, 4) < 0)
        return -1;
    *v = (uint32_t)u;
    return 0;
}

int lv_io_get_u64(lv_io_reader *r, uint64_t *v) { return lv_io_get_uint(r, v, 8); }
