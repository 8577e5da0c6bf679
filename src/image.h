/*
 * image.h -- pictures without Lua: PNG encoding and decoding through
 * libpng, grids of tiles (torchvision's make_grid), and the rasterising
 * of 2-D point clouds into density images.
 *
 * An image is a tensor [H, W] (gray) or [H, W, 3] (RGB, channels last),
 * f32 or f64, any strides, with values in [0, 1]. Encoding clamps to
 * [0, 1] (NaN becomes 0) and stores round(255 v) in 8 bits, so the values
 * k/255 survive a round trip exactly. Decoding gives f32 values k/255 (or
 * k/65535 scaled down to 8 bits for 16-bit files).
 *
 * libpng reports errors by longjmp from its error callback. Every setjmp
 * sits in image.c, in a function that calls nothing but libpng and plain
 * C between setjmp and its return, so no Lua frame is ever jumped over;
 * libpng's messages come back as lv_error (error.h) like any other
 * failure. Decoding takes a buffer and a length and trusts nothing in it:
 * sizes are capped (LV_PNG_MAX_SIDE per side, LV_PNG_MAX_PIXELS in all)
 * and compared with what the compressed bytes could hold (deflate expands
 * at most 1032 times) before the pixels are allocated.
 *
 * Messages say what is wrong with the data or the image ("not a PNG file
 * (bad signature)"); they do not name the file: the binding
 * (src/lua_image.c) puts it in front.
 *
 * Not here: text, axes and line plots (lua/lvae/plot.lua hands those to
 * gnuplot), other formats.
 */
#ifndef LV_IMAGE_H
#define LV_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "bytes.h"
#include "tensor.h"

#define LV_PNG_MAX_SIDE (1 << 14)
#define LV_PNG_MAX_PIXELS ((int64_t)1 << 26)

/* 1 for [H, W], 3 for [H, W, 3], 0 (no error set) for anything else. */
int lv_image_channels(const lv_tensor *img);

/* Appends img ([H, W] or [H, W, 3], 1 <= H, W <= LV_PNG_MAX_SIDE) as an
 * 8-bit PNG to w. Borrows img. Returns 0, or -1 with lv_error set. */
int lv_png_encode(lv_io_writer *w, const lv_tensor *img);
/* Encodes img and writes it to path atomically (files.h's temporary, fsync,
 * rename: a failure leaves nothing new at path). */
int lv_png_save(const char *path, const lv_tensor *img);

/* Decodes a PNG image held in data[0..len). Gray (with or without alpha,
 * any bit depth) becomes [H, W]; palette and RGB(A) become [H, W, 3];
 * alpha is dropped, 16-bit samples are scaled to 8 bits. Returns a new f32
 * reference, or NULL with lv_error set. */
lv_tensor *lv_png_decode(const uint8_t *data, size_t len);

/*
 * Tiles N images into one, as torchvision's make_grid: ncol = min(nrow, N)
 * images per row, ceil(N / ncol) rows, `padding` pixels of pad_value
 * between tiles and around the border, empty cells pad_value too.
 *
 *     images  [N, ...]: each image is the next h*w*c elements in row-major
 *             order ([N, h, w], [N, h, w, 3], or [N, h*w*c] flattened)
 *     out     [P + rows (h + P), P + ncol (w + P)] (c = 1), with a
 *             trailing 3 when c = 3; the dtype of images
 *
 * Tile k (0-based) goes to row k / ncol, column k % ncol. Borrows images;
 * returns a new reference, or NULL with lv_error set.
 */
lv_tensor *lv_image_grid(const lv_tensor *images, int64_t h, int64_t w,
                         int64_t c, int64_t nrow, int64_t padding,
                         double pad_value);

/*
 * A 2-D histogram of points [S, 2] (x, y) on an h x w pixel grid covering
 * range = {xmin, xmax, ymin, ymax}: x grows to the right, y upwards (row 0
 * is ymax). A point with xmin <= x <= xmax and ymin <= y <= ymax adds 1 to
 * its pixel (the right and top edges belong to the last pixel); points
 * outside or not finite are dropped and counted in *n_outside (may be
 * NULL). Returns a new f32 reference [h, w] of counts, or NULL.
 */
lv_tensor *lv_image_scatter(const lv_tensor *points, int64_t h, int64_t w,
                            const double range[4], int64_t *n_outside);

/* The finite points' extent, widened by `margin` (a fraction of the
 * width, e.g. 0.05) on each side; a zero-width side is widened by 1.
 * range = {xmin, xmax, ymin, ymax}; {-1, 1, -1, 1} when no point is
 * finite. points [S, 2]. Returns 0, or -1 with lv_error set. */
int lv_image_extent(const lv_tensor *points, double margin, double range[4]);

#endif
