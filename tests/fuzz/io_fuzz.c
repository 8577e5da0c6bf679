/*
 * io_fuzz.c -- libFuzzer target for the file parsers of src/io.c: the
 * checkpoint header, the checkpoint payload (validated, then every value
 * read and every tensor built), and .npy (decoded, then encoded again).
 * The first byte of an input chooses the parser. Run by `make fuzz`.
 */
#include <stddef.h>
#include <stdint.h>

#include "io.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len);

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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
    if (len < 1)
        return 0;
    uint8_t mode = data[0];
    data++, len--;
    switch (mode % 3) {
    case 0: {                       /* a whole checkpoint file */
        const uint8_t *payload;
        size_t n;
        if (lv_ckpt_open(data, len, &payload, &n) == 0)
            read_payload(payload, n);
        break;
    }
    case 1:                         /* a payload alone (no checksum) */
        read_payload(data, len);
        break;
    default: {                      /* a .npy file */
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
