/*
 * io.c -- checkpoints, .npy, gzip, IDX, and the byte buffers and files
 * under them (formats described in io.h).
 *
 * The file reads top to bottom as: byte order and element codecs, the
 * writer and the reader, files (read whole, write atomically), the
 * checkpoint header and its tagged tree, .npy (preamble, a strict little
 * parser for the header's Python dict, the data), gzip (zlib's inflate
 * into a buffer that grows up to a cap), IDX, and last the row gathering
 * that data batches are made with.
 *
 * Trust: nothing read from a buffer is believed before it is checked
 * against the bytes left. Counts are compared with what the remaining
 * bytes could hold before anything is allocated for them; shapes go
 * through lv_shape_check (ndim, negative sizes, overflow); nesting is
 * capped at LV_CKPT_MAX_DEPTH, so the recursion is bounded too.
 *
 * Byte order: every multi-byte integer is assembled from bytes with
 * shifts, so the code means the same on any host. Tensor elements are
 * copied as raw bytes when the file's order is the host's, and reversed
 * per element otherwise (big-endian .npy files on this little-endian
 * machine exercise that path; a big-endian host would take it for
 * checkpoints).
 *
 * Not here: Lua values (lua_io.c walks them), where data sets live and how
 * they are split (lua/lvae/data.lua), memory-mapping.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zlib.h>

#include "alloc.h"
#include "io.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#define HOST_BIG_ENDIAN 1
#elif defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define HOST_BIG_ENDIAN 0
#else
#error "io.c needs to know the host's byte order (__BYTE_ORDER__)"
#endif

_Static_assert(sizeof(double) == 8 && sizeof(float) == 4,
               "IEEE-754 binary32 and binary64 are assumed");

/* ---- element codecs ------------------------------------------------- */

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

/* The unsigned integer in the `size` bytes at p, in the given order. */
static uint64_t load_uint(const uint8_t *p, int size, int big_endian)
{
    uint64_t u = 0;
    for (int k = 0; k < size; k++)
        u |= (uint64_t)p[k] << (8 * (big_endian ? size - 1 - k : k));
    return u;
}

static int64_t int64_of_bits(uint64_t u)
{
    int64_t i;
    memcpy(&i, &u, sizeof i);   /* two's complement, without UB */
    return i;
}

/* One element of a .npy (or checkpoint) array as a double. */
static double load_element(const uint8_t *p, lv_npy_kind kind, int size,
                           int big_endian)
{
    uint64_t u = load_uint(p, size, big_endian);
    switch (kind) {
    case LV_NPY_FLOAT:
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
    case LV_NPY_INT:
        if (size < 8 && (u >> (8 * size - 1)) & 1)
            u |= ~UINT64_C(0) << (8 * size);      /* sign-extend */
        return (double)int64_of_bits(u);
    case LV_NPY_UINT:
        return (double)u;
    case LV_NPY_BOOL:
        return u != 0 ? 1.0 : 0.0;
    }
    return 0.0;
}

/*
 * Fills the contiguous tensor out from n = numel(out) elements at src, of
 * the given kind, size and byte order. With fortran, src holds the array
 * column-major (the first index varies fastest): element idx of out is
 * src element sum_d idx[d] * cstride[d], cstride[d] = prod_{e<d} shape[e].
 * Floats of the tensor's own width are copied bit for bit (NaN payloads,
 * -0.0); everything else goes through a double.
 */
static void decode_elements(lv_tensor *out, const uint8_t *src,
                            lv_npy_kind kind, int size, int big_endian,
                            int fortran)
{
    int64_t n = lv_tensor_numel(out);
    size_t osize = lv_dtype_size(out->dtype);
    uint8_t *dst = lv_tensor_data(out);
    int raw = kind == LV_NPY_FLOAT && (size_t)size == osize;
    int swap = big_endian != HOST_BIG_ENDIAN;
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
            double v = load_element(s, kind, size, big_endian);
            if (out->dtype == LV_DTYPE_F32) {
                float f = (float)v;
                memcpy(o, &f, sizeof f);
            } else {
                memcpy(o, &v, sizeof v);
            }
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

/* Makes room for n more bytes. */
static int writer_reserve(lv_io_writer *w, size_t n)
{
    if (n <= w->cap - w->len)
        return 0;
    if (n > SIZE_MAX / 2 - w->len)
        return lv_error_set(0, "out of memory (a buffer of %zu + %zu bytes)",
                            w->len, n);
    size_t cap = w->cap ? w->cap : 256;
    while (cap < w->len + n)
        cap *= 2;
    uint8_t *p = lv_realloc(w->data, cap);
    if (!p)
        return lv_error_set(0, "out of memory (a buffer of %zu bytes)", cap);
    w->data = p;
    w->cap = cap;
    return 0;
}

int lv_io_put_bytes(lv_io_writer *w, const void *p, size_t n)
{
    if (writer_reserve(w, n) < 0)
        return -1;
    if (n)
        memcpy(w->data + w->len, p, n);
    w->len += n;
    return 0;
}

/* v as `size` little-endian bytes. */
static int put_uint(lv_io_writer *w, uint64_t v, int size)
{
    uint8_t b[8];
    for (int k = 0; k < size; k++)
        b[k] = (uint8_t)(v >> (8 * k));
    return lv_io_put_bytes(w, b, (size_t)size);
}

int lv_io_put_u8(lv_io_writer *w, uint8_t v) { return put_uint(w, v, 1); }
int lv_io_put_u32(lv_io_writer *w, uint32_t v) { return put_uint(w, v, 4); }
int lv_io_put_u64(lv_io_writer *w, uint64_t v) { return put_uint(w, v, 8); }

/* Overwrites `size` bytes at pos (already written) with v, little-endian. */
static void patch_uint(lv_io_writer *w, size_t pos, uint64_t v, int size)
{
    for (int k = 0; k < size; k++)
        w->data[pos + (size_t)k] = (uint8_t)(v >> (8 * k));
}

/*
 * Copies the elements of a strided block (ndim, shape, stride in elements,
 * element 0 at base) to out in row-major order, reversing the bytes of each
 * when swap. Walks row by row over the last dim, the leading dims counted
 * by idx.
 */
static void copy_strided(uint8_t *out, const uint8_t *base, int ndim,
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

int lv_io_put_tensor_data(lv_io_writer *w, const lv_tensor *t)
{
    int64_t n = lv_tensor_numel(t);
    size_t es = lv_dtype_size(t->dtype);
    int swap = HOST_BIG_ENDIAN;                 /* the file is little-endian */
    if (n == 0)
        return 0;
    if ((uint64_t)n > SIZE_MAX / es)
        return lv_error_set(0, "tensor too large to write");
    size_t nbytes = (size_t)n * es;
    if (writer_reserve(w, nbytes) < 0)
        return -1;
    uint8_t *out = w->data + w->len;
    const uint8_t *base = lv_tensor_data(t);
    w->len += nbytes;

    if (t->ndim == 0 || lv_tensor_is_contiguous(t))
        copy_elements(out, base, (size_t)n, es, swap);
    else
        copy_strided(out, base, t->ndim, t->shape, t->stride, es, swap);
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

static int get_uint(lv_io_reader *r, uint64_t *v, int size)
{
    const uint8_t *p;
    if (lv_io_get_bytes(r, &p, (size_t)size) < 0)
        return -1;
    *v = load_uint(p, size, 0);
    return 0;
}

int lv_io_get_u8(lv_io_reader *r, uint8_t *v)
{
    uint64_t u;
    if (get_uint(r, &u, 1) < 0)
        return -1;
    *v = (uint8_t)u;
    return 0;
}

int lv_io_get_u32(lv_io_reader *r, uint32_t *v)
{
    uint64_t u;
    if (get_uint(r, &u, 4) < 0)
        return -1;
    *v = (uint32_t)u;
    return 0;
}

int lv_io_get_u64(lv_io_reader *r, uint64_t *v) { return get_uint(r, v, 8); }

/* ---- files ----------------------------------------------------------- */

int lv_io_read_file(const char *path, uint8_t **data, size_t *len)
{
    *data = NULL;
    *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return lv_error_set(0, "cannot open: %s", strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return lv_error_set(0, "cannot stat: %s", strerror(e));
    }
    if (S_ISDIR(st.st_mode)) {
        close(fd);
        return lv_error_set(0, "is a directory, not a file");
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return lv_error_set(0, "not a regular file");
    }
    /* The size from fstat is a first guess: read to the end whatever it
     * said, growing the buffer if the file grew. */
    size_t cap = (uint64_t)st.st_size < SIZE_MAX / 2 ? (size_t)st.st_size + 1
                                                     : SIZE_MAX / 2;
    uint8_t *buf = lv_malloc(cap);
    size_t n = 0;
    if (!buf) {
        close(fd);
        return lv_error_set(0, "out of memory (%zu bytes)", cap);
    }
    for (;;) {
        if (n == cap) {
            uint8_t *p = cap < SIZE_MAX / 4 ? lv_realloc(buf, 2 * cap) : NULL;
            if (!p) {
                free(buf);
                close(fd);
                return lv_error_set(0, "out of memory (%zu bytes)", 2 * cap);
            }
            buf = p;
            cap *= 2;
        }
        ssize_t got = read(fd, buf + n, cap - n);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            int e = errno;
            free(buf);
            close(fd);
            return lv_error_set(0, "read error: %s", strerror(e));
        }
        if (got == 0)
            break;
        n += (size_t)got;
    }
    close(fd);
    *data = buf;
    *len = n;
    return 0;
}

/* After a rename, the directory entry itself is made durable (best
 * effort: some file systems refuse to fsync a directory). */
static void sync_parent_dir(const char *path)
{
    const char *slash = strrchr(path, '/');
    char *dir;
    if (!slash) {
        dir = strdup(".");
    } else {
        size_t n = slash == path ? 1 : (size_t)(slash - path);
        dir = lv_malloc(n + 1);
        if (dir) {
            memcpy(dir, path, n);
            dir[n] = '\0';
        }
    }
    if (!dir)
        return;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
    free(dir);
}

int lv_io_write_file_atomic(const char *path, const void *data, size_t len)
{
    static unsigned long counter;
    unsigned long k = __atomic_add_fetch(&counter, 1, __ATOMIC_RELAXED);
    size_t size = strlen(path) + 64;
    char *tmp = lv_malloc(size);
    if (!tmp)
        return lv_error_set(0, "out of memory");
    snprintf(tmp, size, "%s.tmp.%ld.%lu", path, (long)getpid(), k);

    /* "x": fail rather than write through an existing file or link */
    FILE *f = fopen(tmp, "wbx");
    if (!f) {
        int e = errno;
        free(tmp);
        return lv_error_set(0, "cannot create the file: %s", strerror(e));
    }
    const char *what = "write error";
    if (len && fwrite(data, 1, len, f) != len)
        goto fail;
    if (fflush(f) != 0)
        goto fail;
    /* EINVAL: this file system does not do fsync; nothing more to do */
    if (fsync(fileno(f)) != 0 && errno != EINVAL)
        goto fail;
    int closed = fclose(f);
    f = NULL;
    if (closed != 0)
        goto fail;
    what = "cannot replace it";
    if (rename(tmp, path) != 0)
        goto fail;
    sync_parent_dir(path);
    free(tmp);
    return 0;

fail:;
    int e = errno;
    if (f)
        fclose(f);
    remove(tmp);
    free(tmp);
    return lv_error_set(0, "%s: %s", what, strerror(e));
}

/* ---- checkpoints: the header ----------------------------------------- */

/* zlib's CRC-32, in pieces that fit its `uInt` length. */
static uint32_t crc32_of(const uint8_t *p, size_t n)
{
    uLong c = crc32(0L, Z_NULL, 0);
    while (n > 0) {
        uInt k = n > (1u << 30) ? (1u << 30) : (uInt)n;
        c = crc32(c, p, k);
        p += k;
        n -= k;
    }
    return (uint32_t)c;
}

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
    patch_uint(w, 16, n, 8);
    patch_uint(w, 24, crc32_of(w->data + LV_CKPT_HEADER_SIZE, n), 4);
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
    if (crc32_of(data + LV_CKPT_HEADER_SIZE, have) != crc)
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
        v->shape[d] = int64_of_bits(u);
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
            v->i = int64_of_bits(u);
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
    decode_elements(t, v->bytes, LV_NPY_FLOAT, (int)lv_dtype_size(v->dtype),
                    0, 0);
    return t;
}

/* ---- .npy: the header dict ------------------------------------------- */

/*
 * The header is a Python literal that NumPy writes as
 *
 *     {'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }
 *
 * The parser accepts exactly that grammar, with any whitespace, either
 * quote, keys in any order, optional trailing commas:
 *
 *     dict  := '{' [ entry { ',' entry } [ ',' ] ] '}'
 *     entry := string ':' value
 *     value := string | 'True' | 'False' | tuple
 *     tuple := '(' ')' | '(' int ',' { int ',' } [ int ] ')'
 *
 * Strings have no escapes; ints are decimal (an 'L' suffix, as Python 2
 * wrote, is allowed). Nothing is allocated: strings are slices.
 */
typedef struct npy_parser {
    const char *s;
    size_t len, pos;
    size_t base;            /* file offset of s[0], for messages */
} npy_parser;

typedef struct npy_slice {
    const char *p;
    size_t n;
} npy_slice;

__attribute__((format(printf, 2, 3)))
static int npy_bad(const npy_parser *ps, const char *fmt, ...)
{
    char what[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return lv_error_set(0, "malformed .npy header at byte %zu: %s",
                        ps->base + ps->pos, what);
}

static void npy_skip_space(npy_parser *ps)
{
    while (ps->pos < ps->len && (ps->s[ps->pos] == ' ' ||
           ps->s[ps->pos] == '\t' || ps->s[ps->pos] == '\n' ||
           ps->s[ps->pos] == '\r'))
        ps->pos++;
}

/* The next non-space character, or -1 at the end of the header. */
static int npy_peek(npy_parser *ps)
{
    npy_skip_space(ps);
    return ps->pos < ps->len ? (unsigned char)ps->s[ps->pos] : -1;
}

static int npy_expect(npy_parser *ps, char c, const char *where)
{
    int got = npy_peek(ps);
    if (got != c) {
        if (got < 0)
            return npy_bad(ps, "the header ends where '%c' was expected %s",
                           c, where);
        return npy_bad(ps, "expected '%c' %s", c, where);
    }
    ps->pos++;
    return 0;
}

static int npy_string(npy_parser *ps, npy_slice *out)
{
    int q = npy_peek(ps);
    if (q != '\'' && q != '"')
        return npy_bad(ps, "expected a quoted string");
    size_t start = ++ps->pos;
    while (ps->pos < ps->len && ps->s[ps->pos] != q) {
        if (ps->s[ps->pos] == '\\')
            return npy_bad(ps, "escape sequences are not supported");
        if (ps->s[ps->pos] == '\n')
            return npy_bad(ps, "a string runs past the end of the line");
        ps->pos++;
    }
    if (ps->pos >= ps->len)
        return npy_bad(ps, "a string is not closed");
    out->p = ps->s + start;
    out->n = ps->pos - start;
    ps->pos++;
    return 0;
}

static int npy_word(npy_parser *ps, const char *w)
{
    size_t n = strlen(w);
    if (ps->len - ps->pos >= n && memcmp(ps->s + ps->pos, w, n) == 0) {
        ps->pos += n;
        return 1;
    }
    return 0;
}

static int npy_bool(npy_parser *ps, int *out)
{
    npy_skip_space(ps);
    if (npy_word(ps, "True"))
        *out = 1;
    else if (npy_word(ps, "False"))
        *out = 0;
    else
        return npy_bad(ps, "'fortran_order' must be True or False");
    return 0;
}

static int npy_int(npy_parser *ps, int64_t *out)
{
    npy_skip_space(ps);
    size_t start = ps->pos;
    int64_t v = 0;
    while (ps->pos < ps->len && ps->s[ps->pos] >= '0' && ps->s[ps->pos] <= '9') {
        int digit = ps->s[ps->pos] - '0';
        if (v > (INT64_MAX - digit) / 10)
            return npy_bad(ps, "a dimension of the shape is too large");
        v = 10 * v + digit;
        ps->pos++;
    }
    if (ps->pos == start)
        return npy_bad(ps, "expected a non-negative integer in the shape");
    if (ps->pos < ps->len && ps->s[ps->pos] == 'L')
        ps->pos++;
    *out = v;
    return 0;
}

static int npy_shape(npy_parser *ps, int *ndim, int64_t *shape)
{
    if (npy_peek(ps) != '(')
        return npy_bad(ps, "'shape' must be a tuple");
    ps->pos++;
    int n = 0, comma = 0;
    while (npy_peek(ps) != ')') {
        if (n > 0 && !comma)
            return npy_bad(ps, "expected ',' or ')' in the shape");
        if (n == LV_MAX_DIMS)
            return npy_bad(ps, "the array has more than %d dimensions (lvae "
                           "tensors have at most %d)", LV_MAX_DIMS,
                           LV_MAX_DIMS);
        if (npy_int(ps, &shape[n]) < 0)
            return -1;
        n++;
        comma = npy_peek(ps) == ',';
        if (comma)
            ps->pos++;
    }
    /* (3) is the int 3 in Python, not a tuple */
    if (n == 1 && !comma)
        return npy_bad(ps, "a one-dimensional shape needs a trailing comma, "
                       "as in (3,)");
    ps->pos++;
    *ndim = n;
    return 0;
}

/* Quotes up to 24 characters of s for a message, non-printables as '?'. */
static void printable(char *buf, size_t size, const char *s, size_t n)
{
    size_t k = 0;
    for (; k < n && k < 24 && k + 4 < size; k++)
        buf[k] = s[k] >= 0x20 && s[k] < 0x7f ? s[k] : '?';
    if (k < n && k + 4 < size)
        buf[k++] = '.', buf[k++] = '.', buf[k++] = '.';
    buf[k] = '\0';
}

/* descr: a byte-order character, a kind, a size ("<f4", "|b1", ">i8"). */
static int npy_descr(npy_slice d, lv_npy_header *h)
{
    const char *p = d.p;
    int ok = d.n == 3 && (p[0] == '<' || p[0] == '>' || p[0] == '|' ||
                          p[0] == '=') && p[2] >= '1' && p[2] <= '8';
    int size = ok ? p[2] - '0' : 0;
    if (ok) {
        switch (p[1]) {
        case 'f': h->kind = LV_NPY_FLOAT; ok = size == 4 || size == 8; break;
        case 'i': h->kind = LV_NPY_INT; break;
        case 'u': h->kind = LV_NPY_UINT; break;
        case 'b': h->kind = LV_NPY_BOOL; ok = size == 1; break;
        default: ok = 0;
        }
        ok = ok && (size == 1 || size == 2 || size == 4 || size == 8);
        /* "|" (not applicable) only makes sense for one-byte types */
        ok = ok && (p[0] != '|' || size == 1);
    }
    if (!ok) {
        char buf[32];
        printable(buf, sizeof buf, d.p, d.n);
        return lv_error_set(0, "unsupported .npy dtype '%s' (lvae reads "
                            "floats, ints and bools)", buf);
    }
    h->itemsize = size;
    /* '=' is "native": the writer's, which NumPy never leaves in a file;
     * read as this host's */
    h->big_endian = p[0] == '>' || (p[0] == '=' && HOST_BIG_ENDIAN);
    return 0;
}

static int npy_dict(npy_parser *ps, lv_npy_header *h)
{
    int seen_descr = 0, seen_fortran = 0, seen_shape = 0;
    if (npy_expect(ps, '{', "at the start of the header") < 0)
        return -1;
    while (npy_peek(ps) != '}') {
        npy_slice key;
        if (npy_string(ps, &key) < 0 ||
            npy_expect(ps, ':', "after a key") < 0)
            return -1;
        int *seen;
        if (key.n == 5 && memcmp(key.p, "descr", 5) == 0) {
            seen = &seen_descr;
            npy_slice d;
            int c = npy_peek(ps);
            if (c == '[' || c == '{')
                return lv_error_set(0, "unsupported .npy dtype (a structured "
                                    "dtype; lvae reads floats, ints and "
                                    "bools)");
            if (npy_string(ps, &d) < 0 || npy_descr(d, h) < 0)
                return -1;
        } else if (key.n == 13 && memcmp(key.p, "fortran_order", 13) == 0) {
            seen = &seen_fortran;
            if (npy_bool(ps, &h->fortran_order) < 0)
                return -1;
        } else if (key.n == 5 && memcmp(key.p, "shape", 5) == 0) {
            seen = &seen_shape;
            if (npy_shape(ps, &h->ndim, h->shape) < 0)
                return -1;
        } else {
            char buf[32];
            printable(buf, sizeof buf, key.p, key.n);
            return npy_bad(ps, "unknown key '%s'", buf);
        }
        if (*seen)
            return npy_bad(ps, "a key appears twice");
        *seen = 1;
        int c = npy_peek(ps);
        if (c == ',')
            ps->pos++;
        else if (c != '}')
            return c >= 0 ? npy_bad(ps, "expected ',' or '}' after a value")
                     : npy_bad(ps, "the header ends inside the dict");
    }
    ps->pos++;
    if (npy_peek(ps) >= 0)
        return npy_bad(ps, "unexpected text after the dict");
    if (!seen_descr || !seen_fortran || !seen_shape)
        return lv_error_set(0, "malformed .npy header: the key '%s' is "
                            "missing", !seen_descr ? "descr"
                            : !seen_fortran ? "fortran_order" : "shape");
    return 0;
}

/* ---- .npy: files ----------------------------------------------------- */

int lv_npy_parse_header(const uint8_t *data, size_t len, lv_npy_header *h)
{
    memset(h, 0, sizeof *h);
    if (len == 0)
        return lv_error_set(0, "empty file (not a .npy file)");
    size_t m = len < 6 ? len : 6;
    if (memcmp(data, LV_NPY_MAGIC, m) != 0) {
        if (len >= 8 && memcmp(data, LV_CKPT_MAGIC, 8) == 0)
            return lv_error_set(0, "not a .npy file (bad magic; the file "
                                "looks like an lvae checkpoint)");
        return lv_error_set(0, "not a .npy file (bad magic)");
    }
    lv_io_reader r;
    lv_io_reader_init(&r, data, len);
    r.pos = m;
    uint8_t major, minor;
    if (m < 6 || lv_io_get_u8(&r, &major) < 0 || lv_io_get_u8(&r, &minor) < 0)
        return lv_error_set(0, "truncated: the file ends inside the .npy "
                            "preamble");
    if (major < 1 || major > 3 || minor != 0)
        return lv_error_set(0, "unsupported .npy version %u.%u (lvae reads "
                            "1.0, 2.0 and 3.0)", major, minor);
    uint64_t hlen;
    if (get_uint(&r, &hlen, major == 1 ? 2 : 4) < 0)
        return lv_error_set(0, "truncated: the file ends inside the .npy "
                            "preamble");
    if (hlen > lv_io_left(&r))
        return lv_error_set(0, "truncated: the .npy header says %" PRIu64
                            " bytes, the file has %zu after the preamble",
                            hlen, lv_io_left(&r));
    h->major = major;
    h->minor = minor;
    npy_parser ps = {(const char *)data + r.pos, (size_t)hlen, 0, r.pos};
    if (npy_dict(&ps, h) < 0)
        return -1;
    if (lv_shape_check(".npy shape", h->ndim, h->shape) < 0)
        return -1;
    h->data_offset = r.pos + (size_t)hlen;
    return 0;
}

lv_tensor *lv_npy_decode(const uint8_t *data, size_t len, int dtype)
{
    lv_npy_header h;
    if (lv_npy_parse_header(data, len, &h) < 0)
        return NULL;
    /* numel <= 2^48, itemsize <= 8: no overflow in 64 bits */
    uint64_t need = (uint64_t)lv_shape_numel(h.ndim, h.shape) *
                    (uint64_t)h.itemsize;
    size_t have = len - h.data_offset;
    if (need != have) {
        char buf[200];
        lv_shape_format(buf, sizeof buf, h.ndim, h.shape);
        if (need > have)
            lv_error_set(0, "truncated: the .npy data of shape %s needs %"
                         PRIu64 " bytes, the file has %zu", buf, need, have);
        else
            lv_error_set(0, "%zu bytes of unexpected data after the .npy "
                         "array of shape %s", have - (size_t)need, buf);
        return NULL;
    }
    lv_dtype out = dtype >= 0 ? (lv_dtype)dtype
                   : h.kind == LV_NPY_FLOAT && h.itemsize == 4 ? LV_DTYPE_F32
                                                               : LV_DTYPE_F64;
    lv_tensor *t = lv_tensor_empty(out, h.ndim, h.shape);
    if (!t)
        return NULL;
    decode_elements(t, data + h.data_offset, h.kind, h.itemsize,
                    h.big_endian, h.fortran_order && h.ndim > 1);
    return t;
}

int lv_npy_encode(lv_io_writer *w, const lv_tensor *t)
{
    /* The dict, as numpy.lib.format writes it. */
    char dict[400];
    int n = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': "
                     "False, 'shape': (", t->dtype == LV_DTYPE_F64 ? "<f8"
                                                                   : "<f4");
    for (int d = 0; d < t->ndim; d++)
        n += snprintf(dict + n, sizeof dict - (size_t)n, "%s%" PRId64,
                      d ? ", " : "", t->shape[d]);
    n += snprintf(dict + n, sizeof dict - (size_t)n, "%s), }",
                  t->ndim == 1 ? "," : "");
    /* Spaces, then '\n', so that preamble + header is a multiple of 64. */
    size_t preamble = 10, hlen = (size_t)n + 1;
    hlen += (64 - (preamble + hlen) % 64) % 64;
    if (lv_io_put_bytes(w, LV_NPY_MAGIC, 6) < 0 || lv_io_put_u8(w, 1) < 0 ||
        lv_io_put_u8(w, 0) < 0 || put_uint(w, hlen, 2) < 0 ||
        lv_io_put_bytes(w, dict, (size_t)n) < 0)
        return -1;
    for (size_t k = (size_t)n; k + 1 < hlen; k++)
        if (lv_io_put_u8(w, ' ') < 0)
            return -1;
    if (lv_io_put_u8(w, '\n') < 0)
        return -1;
    return lv_io_put_tensor_data(w, t);
}

/* ---- gzip ------------------------------------------------------------- */

int lv_io_is_gzip(const uint8_t *data, size_t len)
{
    return len >= 2 && data[0] == 0x1f && data[1] == 0x8b;
}

/* Grows w's allocation to exactly cap bytes (cap > w->cap). */
static int writer_grow_to(lv_io_writer *w, size_t cap)
{
    uint8_t *p = lv_realloc(w->data, cap);
    if (!p)
        return lv_error_set(0, "out of memory (a buffer of %zu bytes)", cap);
    w->data = p;
    w->cap = cap;
    return 0;
}

/*
 * The output is never sized from the data alone: the trailer's ISIZE (the
 * last member's length mod 2^32) is only a first guess, bounded by what
 * deflate could possibly make of len bytes (at most 1032 bytes out per
 * byte in) and by the limit; the buffer then doubles as needed, up to the
 * limit. A file of several gzip members (as `cat a.gz b.gz` makes) inflates
 * to their concatenation, as gzip -d does; anything else after a member is
 * an error.
 */
int lv_io_gunzip(const uint8_t *data, size_t len, size_t limit,
                 lv_io_writer *out)
{
    if (!lv_io_is_gzip(data, len))
        return lv_error_set(0, "not gzip data (bad magic)");
    size_t guess = 64 * 1024;
    if (len >= 18) {
        size_t isize = (size_t)load_uint(data + len - 4, 4, 0);
        size_t most = len < SIZE_MAX / 1032 - 64 ? len * 1032 + 64 : SIZE_MAX;
        guess = isize < most ? isize : most;
        if (guess < 64)
            guess = 64;
    }
    if (guess > limit)
        guess = limit;
    if (guess == 0)
        guess = 1;

    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK)
        return lv_error_set(0, "out of memory (zlib's inflate state)");
    size_t fed = 0;                 /* input bytes handed to zlib so far */
    int rc = 0;
    if (out->cap - out->len < guess &&
        writer_grow_to(out, out->len + guess) < 0) {
        rc = -1;
        goto done;
    }
    for (;;) {
        if (zs.avail_in == 0 && fed < len) {
            size_t k = len - fed < (1u << 30) ? len - fed : (1u << 30);
            zs.next_in = (Bytef *)(uintptr_t)(data + fed);
            zs.avail_in = (uInt)k;
            fed += k;
        }
        if (out->len == out->cap) {
            if (out->cap >= limit) {
                rc = lv_error_set(0, "the gzip data inflate to more than %zu "
                                  "bytes (the limit)", limit);
                goto done;
            }
            size_t cap = out->cap < limit / 2 ? 2 * out->cap : limit;
            if (cap < 64)
                cap = 64;
            if (writer_grow_to(out, cap) < 0) {
                rc = -1;
                goto done;
            }
        }
        size_t room = out->cap - out->len;
        if (room > (1u << 30))
            room = 1u << 30;
        zs.next_out = out->data + out->len;
        zs.avail_out = (uInt)room;
        int z = inflate(&zs, Z_NO_FLUSH);
        out->len += room - zs.avail_out;
        if (z == Z_OK)
            continue;
        if (z == Z_STREAM_END) {
            size_t pos = fed - zs.avail_in;         /* next unread byte */
            if (pos == len)
                break;
            if (!lv_io_is_gzip(data + pos, len - pos)) {
                rc = lv_error_set(0, "%zu bytes of unexpected data after the "
                                  "gzip stream", len - pos);
                goto done;
            }
            inflateReset(&zs);
            continue;
        }
        if (z == Z_BUF_ERROR && zs.avail_out == 0)
            continue;                               /* needs more room */
        if (z == Z_BUF_ERROR) {                     /* needs more input */
            rc = lv_error_set(0, "truncated: the gzip stream ends before its "
                              "end (%zu bytes inflated)", out->len);
            goto done;
        }
        if (z == Z_MEM_ERROR) {
            rc = lv_error_set(0, "out of memory (inflating gzip data)");
            goto done;
        }
        rc = lv_error_set(0, "corrupt gzip data (%s)",
                          zs.msg ? zs.msg : "zlib could not inflate it");
        goto done;
    }
done:
    inflateEnd(&zs);
    return rc;
}

int lv_io_gzip(lv_io_writer *out, const uint8_t *data, size_t len)
{
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (deflateInit2(&zs, 6, Z_DEFLATED, 16 + MAX_WBITS, 8,
                     Z_DEFAULT_STRATEGY) != Z_OK)
        return lv_error_set(0, "out of memory (zlib's deflate state)");
    size_t fed = 0;
    int rc = 0;
    for (;;) {
        if (zs.avail_in == 0 && fed < len) {
            size_t k = len - fed < (1u << 30) ? len - fed : (1u << 30);
            zs.next_in = (Bytef *)(uintptr_t)(data + fed);
            zs.avail_in = (uInt)k;
            fed += k;
        }
        if (writer_reserve(out, 64 * 1024) < 0) {
            rc = -1;
            break;
        }
        size_t room = out->cap - out->len;
        if (room > (1u << 30))
            room = 1u << 30;
        zs.next_out = out->data + out->len;
        zs.avail_out = (uInt)room;
        int z = deflate(&zs, fed == len && zs.avail_in == 0 ? Z_FINISH
                                                              : Z_NO_FLUSH);
        out->len += room - zs.avail_out;
        if (z == Z_STREAM_END)
            break;
        if (z != Z_OK && z != Z_BUF_ERROR) {
            rc = lv_error_set(0, "gzip compression failed (%s)",
                              zs.msg ? zs.msg : "zlib error");
            break;
        }
    }
    deflateEnd(&zs);
    return rc;
}

/* ---- IDX -------------------------------------------------------------- */

typedef struct idx_type_info {
    uint8_t code;
    const char *name;
    lv_npy_kind kind;
    int size;
    double lo, hi;          /* the integers an integer type holds */
} idx_type_info;

static const idx_type_info idx_types[] = {
    {LV_IDX_U8, "u8", LV_NPY_UINT, 1, 0.0, 255.0},
    {LV_IDX_I8, "i8", LV_NPY_INT, 1, -128.0, 127.0},
    {LV_IDX_I16, "i16", LV_NPY_INT, 2, -32768.0, 32767.0},
    {LV_IDX_I32, "i32", LV_NPY_INT, 4, -2147483648.0, 2147483647.0},
    {LV_IDX_F32, "f32", LV_NPY_FLOAT, 4, 0.0, 0.0},
    {LV_IDX_F64, "f64", LV_NPY_FLOAT, 8, 0.0, 0.0},
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
        h->shape[d] = (int64_t)load_uint(data + 4 + 4 * d, 4, 1);
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
        decode_elements(t, src, ti->kind, ti->size, 1, 0);
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
        copy_strided(copy, src, t->ndim, t->shape, t->stride, es, 0);
        src = copy;
    }

    int rc = 0;
    uint8_t head[4] = {0, 0, ti->code, (uint8_t)t->ndim};
    if (lv_io_put_bytes(w, head, 4) < 0)
        rc = -1;
    for (int d = 0; d < t->ndim && rc == 0; d++) {
        uint8_t b[4];
        for (int k = 0; k < 4; k++)
            b[k] = (uint8_t)((uint64_t)t->shape[d] >> (8 * (3 - k)));
        rc = lv_io_put_bytes(w, b, 4);
    }
    if (rc == 0 && writer_reserve(w, (size_t)n * (size_t)ti->size) < 0)
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
        if (ti->kind != LV_NPY_FLOAT) {
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
        uint8_t *o = w->data + w->len;
        for (int k = 0; k < ti->size; k++)
            o[k] = (uint8_t)(bits >> (8 * (ti->size - 1 - k)));
        w->len += (size_t)ti->size;
    }
    free(copy);
    return rc;
}

/* ---- gathering rows --------------------------------------------------- */

lv_tensor *lv_io_gather_rows(const lv_tensor *x, const int64_t *rows,
                             int64_t n)
{
    if (x->ndim < 1) {
        lv_error_set(0, "gather_rows needs a tensor of at least 1 dimension");
        return NULL;
    }
    for (int64_t i = 0; i < n; i++)
        if (rows[i] < 0 || rows[i] >= x->shape[0]) {
            lv_error_set(0, "row index %" PRId64 " out of range (the tensor "
                         "has %" PRId64 " rows)", rows[i] + 1, x->shape[0]);
            return NULL;
        }
    int64_t shape[LV_MAX_DIMS];
    shape[0] = n;
    for (int d = 1; d < x->ndim; d++)
        shape[d] = x->shape[d];
    lv_tensor *t = lv_tensor_empty(x->dtype, x->ndim, shape);
    if (!t)
        return NULL;
    size_t es = lv_dtype_size(x->dtype);
    int64_t row_len = lv_shape_numel(x->ndim - 1, x->shape + 1);
    /* Is one row of x a contiguous block? */
    int dense = 1;
    int64_t expect = 1;
    for (int d = x->ndim - 1; d >= 1; d--) {
        if (x->shape[d] != 1 && x->stride[d] != expect)
            dense = 0;
        expect *= x->shape[d];
    }
    const uint8_t *base = lv_tensor_data(x);
    uint8_t *out = lv_tensor_data(t);
    size_t row_bytes = (size_t)row_len * es;
    for (int64_t i = 0; i < n; i++, out += row_bytes) {
        const uint8_t *row = base + rows[i] * x->stride[0] * (int64_t)es;
        if (dense)
            memcpy(out, row, row_bytes);
        else
            copy_strided(out, row, x->ndim - 1, x->shape + 1, x->stride + 1,
                         es, 0);
    }
    return t;
}
