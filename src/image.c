/*
 * image.c -- PNG through libpng, grids of tiles, point clouds rasterised
 * (the contracts are in image.h).
 *
 * The file reads top to bottom as: reading any tensor's elements in
 * row-major order, libpng's callbacks, encoding, decoding, then the
 * grid and the scatter.
 *
 * libpng and setjmp. libpng reports an error by calling our on_error,
 * which records the message and longjmps back to the setjmp of the
 * function that called libpng (write_with_libpng, read_with_libpng below).
 * Those two functions keep everything they change after setjmp in a
 * png_state reached through a pointer, never in their own locals (C leaves
 * such locals indeterminate after a longjmp), and call nothing but libpng
 * and the C library between setjmp and return: the jump never crosses a
 * Lua frame or any frame of ours that holds a resource. Buffers allocated
 * inside are owned by the png_state and freed by the caller on every path.
 *
 * Not here: files (files.c writes them atomically), Lua (lua_image.c).
 */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <png.h>

#include "alloc.h"
#include "files.h"
#include "image.h"

/* ---- elements in row-major order -------------------------------------- */

/* The elements of t (any strides, f32 or f64) as a malloc'd array of
 * doubles in row-major order, or NULL with lv_error set. */
static double *gather(const lv_tensor *t)
{
    int64_t n = lv_tensor_numel(t);
    double *out = lv_malloc((size_t)(n > 0 ? n : 1) * sizeof *out);
    if (!out) {
        lv_error_set(0, "out of memory");
        return NULL;
    }
    int64_t idx[LV_MAX_DIMS] = {0};
    for (int64_t k = 0; k < n; k++) {
        int64_t off = 0;
        for (int d = 0; d < t->ndim; d++)
            off += idx[d] * t->stride[d];
        out[k] = lv_load_double(lv_tensor_data(t), t->dtype, off);
        for (int d = t->ndim - 1; d >= 0; d--) {
            if (++idx[d] < t->shape[d])
                break;
            idx[d] = 0;
        }
    }
    return out;
}

int lv_image_channels(const lv_tensor *img)
{
    if (img->ndim == 2)
        return 1;
    if (img->ndim == 3 && img->shape[2] == 3)
        return 3;
    return 0;
}

/* ---- libpng's callbacks ---------------------------------------------- */

typedef struct png_state {
    char msg[256];              /* the error libpng (or a callback) raised */
    int truncated;              /* on_read ran out of bytes */
    lv_io_writer *w;            /* encoding: where the bytes go */
    const uint8_t *data;        /* decoding: the file image */
    size_t len, pos;
    uint32_t width, height;     /* decoding: the header's */
    int channels;               /* 1 or 3 after the transformations */
    uint8_t *pixels;            /* 8-bit rows, height x rowbytes; owned */
    png_bytep *rows;            /* row pointers into pixels; owned */
} png_state;

static void on_error(png_structp png, png_const_charp msg)
{
    png_state *s = png_get_error_ptr(png);
    snprintf(s->msg, sizeof s->msg, "%s", msg);
    png_longjmp(png, 1);
}

/* Warnings (an ancillary chunk with a bad CRC, say) are not errors: the
 * core never prints, so they are dropped. */
static void on_warning(png_structp png, png_const_charp msg)
{
    (void)png;
    (void)msg;
}

static void on_write(png_structp png, png_bytep p, size_t n)
{
    png_state *s = png_get_io_ptr(png);
    if (lv_io_put_bytes(s->w, p, n) < 0)
        png_error(png, "out of memory");
}

static void on_flush(png_structp png)
{
    (void)png;
}

static void on_read(png_structp png, png_bytep out, size_t n)
{
    png_state *s = png_get_io_ptr(png);
    if (n > s->len - s->pos) {
        s->truncated = 1;
        png_error(png, "the data ends early");
    }
    memcpy(out, s->data + s->pos, n);
    s->pos += n;
}

/* ---- encoding ---------------------------------------------------------- */

/* round(255 v) after clamping to [0, 1]; NaN gives 0. */
static uint8_t to_byte(double v)
{
    if (!(v > 0.0))
        return 0;
    if (v >= 1.0)
        return 255;
    return (uint8_t)(v * 255.0 + 0.5);
}

/* Writes s->rows (height rows of width * channels bytes) as a PNG to
 * s->w. The only setjmp of encoding. */
static int write_with_libpng(png_state *s)
{
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, s,
                                              on_error, on_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!info) {
        png_destroy_write_struct(&png, NULL);
        return lv_error_set(0, "out of memory");
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        return lv_error_set(0, "PNG encoding failed: %s", s->msg);
    }
    png_set_write_fn(png, s, on_write, on_flush);
    png_set_IHDR(png, info, s->width, s->height, 8,
                 s->channels == 1 ? PNG_COLOR_TYPE_GRAY : PNG_COLOR_TYPE_RGB,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    png_write_image(png, s->rows);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    return 0;
}

int lv_png_encode(lv_io_writer *w, const lv_tensor *img)
{
    char buf[128];
    int c = lv_image_channels(img);
    if (c == 0)
        return lv_error_set(2, "expected an image [H, W] or [H, W, 3], got %s",
                            lv_shape_format(buf, sizeof buf, img->ndim,
                                            img->shape));
    int64_t h = img->shape[0], wd = img->shape[1];
    if (h < 1 || wd < 1 || h > LV_PNG_MAX_SIDE || wd > LV_PNG_MAX_SIDE)
        return lv_error_set(2, "image is %s: PNG sides must be 1 to %d",
                            lv_shape_format(buf, sizeof buf, img->ndim,
                                            img->shape), LV_PNG_MAX_SIDE);

    png_state s = {.w = w, .width = (uint32_t)wd, .height = (uint32_t)h,
                   .channels = c};
    double *v = gather(img);
    if (!v)
        return -1;
    size_t rowbytes = (size_t)wd * (size_t)c;
    s.pixels = lv_malloc((size_t)h * rowbytes);
    s.rows = lv_malloc((size_t)h * sizeof *s.rows);
    int rc = -1;
    if (!s.pixels || !s.rows) {
        lv_error_set(0, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < (size_t)h * rowbytes; i++)
        s.pixels[i] = to_byte(v[i]);
    for (int64_t i = 0; i < h; i++)
        s.rows[i] = s.pixels + (size_t)i * rowbytes;
    size_t start = w->len;
    rc = write_with_libpng(&s);
    if (rc < 0)
        w->len = start;         /* nothing half-written stays behind */
done:
    free(v);
    free(s.pixels);
    free(s.rows);
    return rc;
}

int lv_png_save(const char *path, const lv_tensor *img)
{
    lv_io_writer w;
    lv_io_writer_init(&w);
    int rc = lv_png_encode(&w, img);
    if (rc == 0)
        rc = lv_io_write_file_atomic(path, w.data, w.len);
    lv_io_writer_free(&w);
    return rc;
}

/* ---- decoding ---------------------------------------------------------- */

/* Samples per pixel of a PNG colour type as stored in the file. */
static int file_samples(int color)
{
    switch (color) {
    case PNG_COLOR_TYPE_GRAY: return 1;
    case PNG_COLOR_TYPE_GRAY_ALPHA: return 2;
    case PNG_COLOR_TYPE_RGB: return 3;
    case PNG_COLOR_TYPE_RGB_ALPHA: return 4;
    default: return 1;          /* palette: one index per pixel */
    }
}

/* Reads the PNG in s->data into s->pixels (8-bit gray or RGB rows). The
 * only setjmp of decoding; size checks happen before any allocation. */
static int read_with_libpng(png_state *s)
{
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, s,
                                             on_error, on_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!info) {
        png_destroy_read_struct(&png, NULL, NULL);
        return lv_error_set(0, "out of memory");
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_read_struct(&png, &info, NULL);
        if (s->truncated)
            return lv_error_set(0, "truncated PNG: the file ends before "
                                "the image does");
        if (s->msg[0] == '\0')
            return -1;          /* our own check below set lv_error */
        return lv_error_set(0, "damaged PNG (libpng: %s)", s->msg);
    }
    png_set_read_fn(png, s, on_read);
#ifdef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
    /* Let a fuzzer's mutations past the checksums, into the parsing. */
    png_set_crc_action(png, PNG_CRC_QUIET_USE, PNG_CRC_QUIET_USE);
#ifdef PNG_IGNORE_ADLER32
    png_set_option(png, PNG_IGNORE_ADLER32, PNG_OPTION_ON);
#endif
#endif
    png_set_user_limits(png, LV_PNG_MAX_SIDE, LV_PNG_MAX_SIDE);
    png_set_chunk_malloc_max(png, 8u << 20);
    png_read_info(png, info);

    s->width = png_get_image_width(png, info);
    s->height = png_get_image_height(png, info);
    int depth = png_get_bit_depth(png, info);
    int color = png_get_color_type(png, info);
    if ((int64_t)s->width * s->height > LV_PNG_MAX_PIXELS) {
        lv_error_set(0, "image is %ux%u: more than 2^26 pixels",
                     (unsigned)s->width, (unsigned)s->height);
        png_longjmp(png, 1);
    }
    /* Deflate expands at most 1032 times, so the file must be big enough
     * to hold the filtered rows it claims; a short file is refused here
     * instead of after allocating for a forged size. */
    uint64_t raw = (uint64_t)s->height *
                   (((uint64_t)s->width * (uint64_t)file_samples(color) *
                     (uint64_t)depth + 7) / 8);
    if (raw > 1032u * (uint64_t)s->len + 4096u) {
        lv_error_set(0, "truncated PNG: a %ux%u image cannot fit in %zu "
                     "bytes", (unsigned)s->width, (unsigned)s->height,
                     s->len);
        png_longjmp(png, 1);
    }

    if (color == PNG_COLOR_TYPE_PALETTE)
        png_set_palette_to_rgb(png);
    if (color == PNG_COLOR_TYPE_GRAY && depth < 8)
        png_set_expand_gray_1_2_4_to_8(png);
    if (depth == 16)
        png_set_scale_16(png);
    if (color & PNG_COLOR_MASK_ALPHA)
        png_set_strip_alpha(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    s->channels = png_get_channels(png, info);
    size_t rowbytes = png_get_rowbytes(png, info);
    if ((s->channels != 1 && s->channels != 3) ||
        rowbytes != (size_t)s->width * (size_t)s->channels)
        png_error(png, "unexpected pixel layout after conversion");

    s->pixels = lv_malloc((size_t)s->height * rowbytes);
    s->rows = lv_malloc((size_t)s->height * sizeof *s->rows);
    if (!s->pixels || !s->rows)
        png_error(png, "out of memory");
    for (uint32_t i = 0; i < s->height; i++)
        s->rows[i] = s->pixels + (size_t)i * rowbytes;
    png_read_image(png, s->rows);
    png_read_end(png, NULL);
    png_destroy_read_struct(&png, &info, NULL);
    return 0;
}

lv_tensor *lv_png_decode(const uint8_t *data, size_t len)
{
    if (len < 8 || png_sig_cmp(data, 0, 8) != 0) {
        lv_error_set(0, "not a PNG file (bad signature)");
        return NULL;
    }
    png_state s = {.data = data, .len = len};
    lv_tensor *out = NULL;
    if (read_with_libpng(&s) == 0) {
        int64_t shape[3] = {s.height, s.width, 3};
        out = lv_tensor_empty(LV_DTYPE_F32, s.channels == 1 ? 2 : 3, shape);
        if (out) {
            float *o = lv_tensor_data(out);
            size_t n = (size_t)s.height * s.width * (size_t)s.channels;
            for (size_t i = 0; i < n; i++)
                o[i] = (float)s.pixels[i] / 255.0f;
        }
    }
    free(s.pixels);
    free(s.rows);
    return out;
}

/* ---- grids ------------------------------------------------------------- */

lv_tensor *lv_image_grid(const lv_tensor *images, int64_t h, int64_t w,
                         int64_t c, int64_t nrow, int64_t padding,
                         double pad_value)
{
    char buf[128];
    int64_t numel = lv_tensor_numel(images);
    int64_t n = images->ndim >= 1 ? images->shape[0] : 0;
    int64_t per = 0;
    if (n < 1) {
        lv_error_set(1, "no images to tile");
        return NULL;
    }
    if (h < 1 || w < 1 || (c != 1 && c != 3) ||
        __builtin_mul_overflow(h, w, &per) ||
        __builtin_mul_overflow(per, c, &per) || per * n != numel) {
        lv_error_set(1, "%s does not hold %lld images of %lldx%lld%s",
                     lv_shape_format(buf, sizeof buf, images->ndim,
                                     images->shape),
                     (long long)n, (long long)h, (long long)w,
                     c == 3 ? "x3" : "");
        return NULL;
    }
    if (nrow < 1 || padding < 0 || padding > 4096) {
        lv_error_set(0, nrow < 1 ? "nrow must be at least 1"
                                 : "padding must be 0 to 4096");
        return NULL;
    }
    int64_t ncol = nrow < n ? nrow : n;
    int64_t rows = (n + ncol - 1) / ncol;
    int64_t shape[3] = {padding + rows * (h + padding),
                        padding + ncol * (w + padding), 3};
    lv_tensor *out = lv_tensor_full(images->dtype, c == 1 ? 2 : 3, shape,
                                    pad_value);
    double *src = out ? gather(images) : NULL;
    if (!src) {
        lv_tensor_release(out);
        return NULL;
    }
    int64_t out_w = shape[1];
    for (int64_t k = 0; k < n; k++) {
        int64_t y0 = padding + (k / ncol) * (h + padding);
        int64_t x0 = padding + (k % ncol) * (w + padding);
        const double *tile = src + k * per;
        for (int64_t i = 0; i < h; i++)
            for (int64_t j = 0; j < w; j++)
                for (int64_t ch = 0; ch < c; ch++)
                    lv_store_double(lv_tensor_data(out), out->dtype,
                                    ((y0 + i) * out_w + x0 + j) * c + ch,
                                    tile[(i * w + j) * c + ch]);
    }
    free(src);
    return out;
}

/* ---- point clouds ------------------------------------------------------ */

static int check_points(const lv_tensor *points)
{
    char buf[128];
    if (points->ndim != 2 || points->shape[1] != 2)
        return lv_error_set(1, "expected points [S, 2], got %s",
                            lv_shape_format(buf, sizeof buf, points->ndim,
                                            points->shape));
    return 0;
}

/* The pixel of a fraction f in [0, 1] of n pixels; the edge f = 1 goes
 * to the last one (and an overflowed f, inf or NaN, to an end). */
static int64_t cell(double f, int64_t n)
{
    double v = f * (double)n;
    if (v >= 0.0 && v < (double)n)
        return (int64_t)v;
    return v >= (double)n ? n - 1 : 0;
}

lv_tensor *lv_image_scatter(const lv_tensor *points, int64_t h, int64_t w,
                            const double range[4], int64_t *n_outside)
{
    if (check_points(points) < 0)
        return NULL;
    if (h < 1 || w < 1 || h > LV_PNG_MAX_SIDE || w > LV_PNG_MAX_SIDE) {
        lv_error_set(0, "image size must be 1 to %d per side",
                     LV_PNG_MAX_SIDE);
        return NULL;
    }
    double xmin = range[0], xmax = range[1], ymin = range[2], ymax = range[3];
    if (!(isfinite(xmin) && isfinite(xmax) && isfinite(ymin) &&
          isfinite(ymax) && xmin < xmax && ymin < ymax)) {
        lv_error_set(0, "range must be finite {xmin, xmax, ymin, ymax} with "
                     "xmin < xmax and ymin < ymax");
        return NULL;
    }
    int64_t shape[2] = {h, w};
    lv_tensor *out = lv_tensor_zeros(LV_DTYPE_F32, 2, shape);
    double *p = out ? gather(points) : NULL;
    if (!p) {
        lv_tensor_release(out);
        return NULL;
    }
    float *o = lv_tensor_data(out);
    int64_t outside = 0;
    for (int64_t s = 0; s < points->shape[0]; s++) {
        double x = p[2 * s], y = p[2 * s + 1];
        /* also false for NaN */
        if (!(x >= xmin && x <= xmax && y >= ymin && y <= ymax)) {
            outside++;
            continue;
        }
        o[cell((ymax - y) / (ymax - ymin), h) * w +
          cell((x - xmin) / (xmax - xmin), w)] += 1.0f;
    }
    free(p);
    if (n_outside)
        *n_outside = outside;
    return out;
}

int lv_image_extent(const lv_tensor *points, double margin, double range[4])
{
    if (check_points(points) < 0)
        return -1;
    if (!(margin >= 0.0 && margin <= 100.0))
        return lv_error_set(0, "margin must be 0 to 100");
    double *p = gather(points);
    if (!p)
        return -1;
    double lo[2] = {INFINITY, INFINITY}, hi[2] = {-INFINITY, -INFINITY};
    for (int64_t s = 0; s < points->shape[0]; s++) {
        double x = p[2 * s], y = p[2 * s + 1];
        if (!isfinite(x) || !isfinite(y))
            continue;
        lo[0] = fmin(lo[0], x);
        hi[0] = fmax(hi[0], x);
        lo[1] = fmin(lo[1], y);
        hi[1] = fmax(hi[1], y);
    }
    free(p);
    for (int a = 0; a < 2; a++) {
        if (lo[a] > hi[a]) {            /* no finite point */
            lo[a] = -1.0;
            hi[a] = 1.0;
        } else {
            double pad = margin * (hi[a] - lo[a]);
            if (!(hi[a] > lo[a]))       /* one value: a window around it */
                pad = fmax(1.0, fabs(lo[a]) * 0x1p-20);
            if (!isfinite(pad))
                pad = DBL_MAX;
            lo[a] = fmax(lo[a] - pad, -DBL_MAX);
            hi[a] = fmin(hi[a] + pad, DBL_MAX);
        }
        range[2 * a] = lo[a];
        range[2 * a + 1] = hi[a];
    }
    return 0;
}
