/*
 * gzip.c -- gzip through zlib's inflate and deflate (gzip.h), over a
 * writer that the stream fills as it goes.
 *
 * zlib counts in `uInt`: input is handed over, and output room offered,
 * in pieces of at most 1 GiB, so that buffers larger than 4 GiB work.
 *
 * Not here: the formats inside (idx.c, amat.c), files (files.c).
 */
#include <stdint.h>
#include <string.h>

#include <zlib.h>

#include "gzip.h"

int lv_io_is_gzip(const uint8_t *data, size_t len)
{
    return len >= 2 && data[0] == 0x1f && data[1] == 0x8b;
}

/* zlib counts in uInt: at most this many bytes go in or out per call. */
#define ZLIB_PIECE ((size_t)1 << 30)

/* Hands zlib the next piece of data[0, len) once it has taken the last
 * one; *fed counts the bytes handed over so far. */
static void feed(z_stream *zs, const uint8_t *data, size_t len, size_t *fed)
{
    if (zs->avail_in != 0 || *fed == len)
        return;
    size_t k = len - *fed < ZLIB_PIECE ? len - *fed : ZLIB_PIECE;
    zs->next_in = (Bytef *)(uintptr_t)(data + *fed);
    zs->avail_in = (uInt)k;
    *fed += k;
}

/* Offers zlib the free room at the end of out (at most a piece) and
 * returns its size: after the call, out->len grows by room - avail_out. */
static size_t offer_room(z_stream *zs, lv_io_writer *out)
{
    size_t room = out->cap - out->len;
    if (room > ZLIB_PIECE)
        room = ZLIB_PIECE;
    zs->next_out = out->data + out->len;
    zs->avail_out = (uInt)room;
    return room;
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
        size_t isize = (size_t)lv_io_load_uint(data + len - 4, 4, 0);
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
        lv_io_writer_resize(out, out->len + guess) < 0) {
        rc = -1;
        goto done;
    }
    for (;;) {
        feed(&zs, data, len, &fed);
        if (out->len == out->cap) {
            if (out->cap >= limit) {
                rc = lv_error_set(0, "the gzip data inflate to more than %zu "
                                  "bytes (the limit)", limit);
                goto done;
            }
            size_t cap = out->cap < limit / 2 ? 2 * out->cap : limit;
            if (cap < 64)
                cap = 64;
            if (lv_io_writer_resize(out, cap) < 0) {
                rc = -1;
                goto done;
            }
        }
        size_t room = offer_room(&zs, out);
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
        feed(&zs, data, len, &fed);
        if (lv_io_reserve(out, 64 * 1024) < 0) {
            rc = -1;
            break;
        }
        size_t room = offer_room(&zs, out);
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
