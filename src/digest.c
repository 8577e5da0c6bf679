/*
 * digest.c -- SHA-256 of a file through libcrypto's EVP interface, read
 * in blocks so that a file of any size takes constant memory; CRC-32
 * through zlib, of any number of bytes (checkpoint.c's checksum) and of a
 * tensor.
 */
#include "digest.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>
#include <zlib.h>

#include "error.h"

int lv_sha256_file(const char *path, char hex[LV_SHA256_HEX])
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        lv_error_set(1, "%s", strerror(errno));
        return -1;
    }
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(ctx);
        fclose(f);
        lv_error_set(0, "libcrypto could not start a SHA-256");
        return -1;
    }
    unsigned char block[1 << 16];
    size_t n;
    int failed = 0;
    while ((n = fread(block, 1, sizeof block, f)) > 0) {
        if (EVP_DigestUpdate(ctx, block, n) != 1) { failed = 1; break; }
    }
    if (!failed && ferror(f)) {
        lv_error_set(1, "read error: %s", strerror(errno));
        EVP_MD_CTX_free(ctx);
        fclose(f);
        return -1;
    }
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (failed || EVP_DigestFinal_ex(ctx, md, &len) != 1 || len != 32) {
        EVP_MD_CTX_free(ctx);
        fclose(f);
        lv_error_set(0, "libcrypto failed computing the SHA-256");
        return -1;
    }
    EVP_MD_CTX_free(ctx);
    fclose(f);
    static const char digits[] = "0123456789abcdef";
    for (unsigned int i = 0; i < len; i++) {
        hex[2 * i] = digits[md[i] >> 4];
        hex[2 * i + 1] = digits[md[i] & 15];
    }
    hex[64] = '\0';
    return 0;
}

uint32_t lv_crc32_update(uint32_t crc, const void *data, size_t n)
{
    /* zlib takes at most 4 GiB - 1 at a time */
    const unsigned char *p = data;
    uLong c = crc;
    while (n > 0) {
        uInt k = n > (1u << 30) ? (1u << 30) : (uInt)n;
        c = crc32(c, p, k);
        p += k;
        n -= k;
    }
    return (uint32_t)c;
}

int lv_crc32_tensor(const lv_tensor *t, uint32_t *crc)
{
    if (!lv_tensor_is_contiguous(t))
        return lv_error_set(0, "the tensor is not contiguous");
    int64_t header[1 + LV_MAX_DIMS] = {t->dtype};
    for (int d = 0; d < t->ndim; d++)
        header[1 + d] = t->shape[d];
    uint32_t c = lv_crc32_update(0, header, sizeof(int64_t) * (size_t)(1 + t->ndim));
    *crc = lv_crc32_update(c, lv_tensor_data(t),
                           (size_t)lv_tensor_numel(t) * lv_dtype_size(t->dtype));
    return 0;
}
