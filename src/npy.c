/*
 * npy.c -- .npy files (npy.h): a strict little parser for the header's
 * Python dict, the preamble around it, and the data through bytes.h's
 * element codecs (either byte order, C or Fortran order, any of the
 * kinds and sizes npy.h lists).
 *
 * Not here: the byte codecs themselves (bytes.c), files (files.c).
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "checkpoint.h"
#include "npy.h"

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
        case 'f': h->kind = LV_IO_FLOAT; ok = size == 4 || size == 8; break;
        case 'i': h->kind = LV_IO_INT; break;
        case 'u': h->kind = LV_IO_UINT; break;
        case 'b': h->kind = LV_IO_BOOL; ok = size == 1; break;
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
    h->big_endian = p[0] == '>' || (p[0] == '=' && LV_HOST_BIG_ENDIAN);
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
    if (lv_io_get_uint(&r, &hlen, major == 1 ? 2 : 4) < 0)
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
                   : h.kind == LV_IO_FLOAT && h.itemsize == 4 ? LV_DTYPE_F32
                                                              : LV_DTYPE_F64;
    lv_tensor *t = lv_tensor_empty(out, h.ndim, h.shape);
    if (!t)
        return NULL;
    lv_io_decode_elements(t, data + h.data_offset, h.kind, h.itemsize,
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
        lv_io_put_u8(w, 0) < 0 || lv_io_put_uint(w, hlen, 2) < 0 ||
        lv_io_put_bytes(w, dict, (size_t)n) < 0)
        return -1;
    for (size_t k = (size_t)n; k + 1 < hlen; k++)
        if (lv_io_put_u8(w, ' ') < 0)
            return -1;
    if (lv_io_put_u8(w, '\n') < 0)
        return -1;
    return lv_io_put_tensor_data(w, t);
}
