/*
 * digest.c -- SHA-256 of a file through libcrypto's EVP interface, read
 * in blocks so that a file of any size takes constant memory.
 */
#include "digest.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>

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
