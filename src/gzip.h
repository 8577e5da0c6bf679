/*
 * gzip.h -- gzip streams through zlib, in memory: inflating a file
 * image into a writer up to a cap, and deflating a buffer into one gzip
 * member. Data sets come gzip'ed (MNIST's IDX files, .amat text
 * matrices), and lv.save_idx writes them so.
 *
 * The input is trusted in nothing: a few bytes of deflate can claim
 * gigabytes, so the output grows progressively up to the caller's limit,
 * never to a size read from the data. Errors: -1 with a message in
 * lv_error ("corrupt gzip data (...)", "truncated: ..."); the caller
 * puts the file's name in front.
 *
 * Not here: zlib's raw deflate and zlib-wrapped streams (PNG's, which
 * libpng inflates itself), what the inflated bytes are (idx.h, amat.h).
 */
#ifndef LV_GZIP_H
#define LV_GZIP_H

#include <stddef.h>
#include <stdint.h>

#include "bytes.h"

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

#endif
