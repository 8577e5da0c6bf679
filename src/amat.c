/*
 * amat.c -- whitespace-separated text matrices (.amat). Two passes over
 * the text: the first counts rows and checks that each is as wide as the
 * first, so that the tensor is allocated once at its final size; the
 * second parses the numbers into it.
 */
#include "amat.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

/* Longer than any number written in full precision ("-1.2345678901234567e-308"). */
#define AMAT_TOKEN_MAX 64

static int is_blank(uint8_t c) { return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f'; }

/* The end of the line starting at pos (the index of its '\n', or len). */
static size_t line_end(const uint8_t *data, size_t len, size_t pos)
{
    const uint8_t *nl = memchr(data + pos, '\n', len - pos);
    return nl ? (size_t)(nl - data) : len;
}

/* Values on data[pos, end): whitespace-separated tokens. */
static int64_t count_tokens(const uint8_t *data, size_t pos, size_t end)
{
    int64_t n = 0;
    while (pos < end) {
        while (pos < end && is_blank(data[pos])) pos++;
        if (pos == end) break;
        n++;
        while (pos < end && !is_blank(data[pos])) pos++;
    }
    return n;
}

lv_tensor *lv_amat_decode(const uint8_t *data, size_t len, int dtype)
{
    if (dtype != LV_DTYPE_F32 && dtype != LV_DTYPE_F64) {
        lv_error_set(0, "an .amat matrix is read as f32 or f64");
        return NULL;
    }
    int64_t rows = 0, width = 0, line = 0, first_line = 0;
    for (size_t pos = 0; pos < len;) {
        size_t end = line_end(data, len, pos);
        line++;
        int64_t n = count_tokens(data, pos, end);
        if (n > 0) {
            if (rows == 0) {
                width = n;
                first_line = line;
            } else if (n != width) {
                lv_error_set(0, "ragged rows: line %lld has %lld values, line %lld has %lld",
                             (long long)line, (long long)n, (long long)first_line,
                             (long long)width);
                return NULL;
            }
            rows++;
        }
        pos = end + 1;
    }
    if (rows == 0) {
        lv_error_set(0, "no rows: the file holds no numbers");
        return NULL;
    }
    int64_t shape[2] = {rows, width};
    lv_tensor *t = lv_tensor_empty((lv_dtype)dtype, 2, shape);
    if (!t)
        return NULL;
    int64_t k = 0;
    line = 0;
    for (size_t pos = 0; pos < len;) {
        size_t end = line_end(data, len, pos);
        line++;
        int64_t column = 0;
        while (pos < end) {
            while (pos < end && is_blank(data[pos])) pos++;
            if (pos == end) break;
            size_t start = pos;
            while (pos < end && !is_blank(data[pos])) pos++;
            size_t n = pos - start;
            char token[AMAT_TOKEN_MAX + 1];
            column++;
            if (n > AMAT_TOKEN_MAX) {
                lv_error_set(0, "line %lld, value %lld: not a number (%zu characters)",
                             (long long)line, (long long)column, n);
                lv_tensor_release(t);
                return NULL;
            }
            memcpy(token, data + start, n);
            token[n] = '\0';
            char *stop;
            double v = strtod(token, &stop);
            if (stop != token + n || !isfinite(v)) {
                lv_error_set(0, "line %lld, value %lld: '%s' is not a finite number",
                             (long long)line, (long long)column, token);
                lv_tensor_release(t);
                return NULL;
            }
            if (dtype == LV_DTYPE_F32 && fabs(v) > (double)FLT_MAX) {
                lv_error_set(0, "line %lld, value %lld: '%s' is beyond the range of f32",
                             (long long)line, (long long)column, token);
                lv_tensor_release(t);
                return NULL;
            }
            lv_store_double(lv_tensor_data(t), (lv_dtype)dtype, k++, v);
        }
        pos = end + 1;
    }
    return t;
}
