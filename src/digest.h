/*
 * digest.h -- the SHA-256 of a file, so that a result can name exactly
 * which data it was computed on (OpenSSL's libcrypto does the hashing),
 * and the CRC-32 of a tensor's bytes (zlib's), so that processes of one
 * job can check cheaply that they hold the same parameters and data.
 */
#ifndef LV_DIGEST_H
#define LV_DIGEST_H

#include <stddef.h>
#include <stdint.h>

#include "tensor.h"

#define LV_SHA256_HEX 65 /* 64 hex digits and the terminating zero */

/* Writes the SHA-256 of the bytes of the file at path into hex (lower-case
 * hex digits). Returns 0, or -1 with lv_error set to the fault (the caller names the
 * file). */
int lv_sha256_file(const char *path, char hex[LV_SHA256_HEX]);

/* zlib's CRC-32 of the n bytes at data, continued from crc (0 to start
 * one): lv_crc32_update(lv_crc32_update(0, a, n), b, m) is the CRC of a
 * then b. Any n: zlib's own length is a uInt, so it is fed in pieces. */
uint32_t lv_crc32_update(uint32_t crc, const void *data, size_t n);

/* The CRC-32 of a contiguous tensor's bytes, its dtype and shape mixed in
 * first (so that equal bytes of another shape differ). Returns 0, or -1
 * with lv_error set when t is not contiguous. */
int lv_crc32_tensor(const lv_tensor *t, uint32_t *crc);

#endif
