/*
 * io_fuzz.c -- libFuzzer target for the file parsers: the checkpoint
 * header and the checkpoint payload (src/checkpoint.c: validated, then
 * every value read and every tensor built), .npy (src/npy.c: decoded,
 * then encoded again), and IDX, raw or gzip-compressed (src/idx.c,
 * src/gzip.c: decoded, encoded again and compared, rows gathered
 * (src/gather.c), recompressed and inflated again).
 * .amat text matrices (amat.c) are parsed and every value checked finite.
 * The first byte of an input chooses the parser: 0x80 and above IDX,
 * 0x40-0x7f .amat, else (byte mod 3) checkpoint, payload, .npy. Run by
 * `make fuzz`.
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "amat.h"
#include "bytes.h"
#include "checkpoint.h"
#include "gather.h"
#include "gzip.h"
#include "idx.h"
#include "npy.h"
#include "tensor.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* Inputs each parser was given, printed at exit (ROBUSTNESS.md quotes
 * them). */
enum { FUZZ_CKPT, FUZZ_PAYLOAD, FUZZ_NPY, FUZZ_IDX, FUZZ_AMAT, FUZZ_PARSERS };
static const char *const parser_names[FUZZ_PARSERS] = {
    "checkpoint", "payload", ".npy", "IDX (raw and gzip)", ".amat"};
static unsigned long long fed[FUZZ_PARSERS];

static void print_counts(void)
{
    fprintf(stderr, "io_fuzz: inputs per parser:");
    for (int i = 0; i < FUZZ_PARSERS; i++)
        fprintf(stderr, " %s %llu%s", parser_names[i], fed[i], i + 1 < FUZZ_PARSERS ? "," : "\n");
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    atexit(print_counts);
    return 0;
}

static void read_payload(const uint8_t *payload, size_t len)
{
    if (lv_ckpt_validate(payload, len, 0) < 0)
        return;
    lv_ckpt_reader cr;
    lv_ckpt_reader_init(&cr, payload, len, 0);
    lv_ckpt_value v;
    while (lv_io_left(&cr.r) > 0 && lv_ckpt_read(&cr, 0, 0, &v) == 0) {
        if (v.tag == LV_CKPT_TENSOR) {
            lv_tensor *t = lv_ckpt_tensor(&v);
            lv_tensor_release(t);
        }
    }
}

/* What a gzip input may inflate to here: enough for any real corpus
 * entry, small enough that a deflate bomb costs little. */
#define FUZZ_GUNZIP_LIMIT ((size_t)1 << 24)

/* An IDX image, decoded in the file's own dtype (which holds every IDX
 * value exactly), must encode back to the same bytes. */
static void read_idx(const uint8_t *data, size_t len, int as_f32)
{
    lv_tensor *t = lv_idx_decode(data, len, as_f32 ? LV_DTYPE_F32 : -1);
    if (!t)
        return;
    if (!as_f32) {
        lv_io_writer w;
        lv_io_writer_init(&w);
        if (lv_idx_encode(&w, t, data[2]) != 0 || w.len != len ||
            memcmp(w.data, data, len) != 0)
            __builtin_trap();
        lv_io_writer_free(&w);
    }
    if (t->ndim >= 1 && t->shape[0] > 0) {
        int64_t rows[2] = {t->shape[0] - 1, 0};
        lv_tensor_release(lv_gather_rows(t, rows, 2));
    }
    lv_tensor_release(t);
}

static void read_idx_file(const uint8_t *data, size_t len, int as_f32)
{
    if (!lv_io_is_gzip(data, len)) {
        read_idx(data, len, as_f32);
        return;
    }
    lv_io_writer raw, z, again;
    lv_io_writer_init(&raw);
    lv_io_writer_init(&z);
    lv_io_writer_init(&again);
    if (lv_io_gunzip(data, len, FUZZ_GUNZIP_LIMIT, &raw) == 0) {
        read_idx(raw.data, raw.len, as_f32);
        /* gzip then gunzip is the identity */
        if (lv_io_gzip(&z, raw.data, raw.len) != 0 ||
            lv_io_gunzip(z.data, z.len, FUZZ_GUNZIP_LIMIT, &again) != 0 ||
            again.len != raw.len ||
            (raw.len && memcmp(again.data, raw.data, raw.len) != 0))
            __builtin_trap();
    }
    lv_io_writer_free(&raw);
    lv_io_writer_free(&z);
    lv_io_writer_free(&again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
    if (len < 1)
        return 0;
    uint8_t mode = data[0];
    data++, len--;
    if (mode >= 0x80) {             /* an IDX file, raw or gzip */
        fed[FUZZ_IDX]++;
        read_idx_file(data, len, mode & 1);
        return 0;
    }
    if (mode >= 0x40) {             /* a text matrix */
        fed[FUZZ_AMAT]++;
        lv_tensor *t = lv_amat_decode(data, len, (mode & 1) ? LV_DTYPE_F64 : LV_DTYPE_F32);
        if (t) {
            int64_t n = lv_tensor_numel(t);
            if (t->dtype == LV_DTYPE_F32) {
                const float *p = lv_tensor_data(t);
                for (int64_t i = 0; i < n; i++)
                    if (!isfinite(p[i])) __builtin_trap();
            } else {
                const double *p = lv_tensor_data(t);
                for (int64_t i = 0; i < n; i++)
                    if (!isfinite(p[i])) __builtin_trap();
            }
            lv_tensor_release(t);
        }
        return 0;
    }
    switch (mode % 3) {
    case 0: {                       /* a whole checkpoint file */
        fed[FUZZ_CKPT]++;
        const uint8_t *payload;
        size_t n;
        if (lv_ckpt_open(data, len, &payload, &n) == 0)
            read_payload(payload, n);
        break;
    }
    case 1:                         /* a payload alone (no checksum) */
        fed[FUZZ_PAYLOAD]++;
        read_payload(data, len);
        break;
    default: {                      /* a .npy file */
        fed[FUZZ_NPY]++;
        lv_tensor *t = lv_npy_decode(data, len, (mode & 4) ? LV_DTYPE_F32 : -1);
        if (t) {
            lv_io_writer w;
            lv_io_writer_init(&w);
            lv_npy_encode(&w, t);
            lv_io_writer_free(&w);
            lv_tensor_release(t);
        }
        break;
    }
    }
    return 0;
}
