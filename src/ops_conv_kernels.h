/*
 * ops_conv_kernels.h -- the window kernels that ops_conv.c (im2col,
 * col2im) and ops_conv_fused.c (conv2d, its transpose and its weight
 * gradient) share: one image's columns in either layout, and their
 * adjoint. Internal to those two files.
 */
#ifndef LV_OPS_CONV_KERNELS_H
#define LV_OPS_CONV_KERNELS_H
#include <string.h>

#include "generic.h"
#include "op.h"

/* Windows along one axis of an image of `size`: kernel k, stride s,
 * padding before/after (0 when the kernel does not fit). */
static inline int64_t lv_conv_out_size(int64_t size, int64_t k, int64_t s,
                                       int64_t before, int64_t after)
{
    int64_t span = size + before + after - k;
    return span < 0 ? 0 : span / s + 1;
}

/* Kernel, stride and padding in range; 0, or -1 with lv_error. */
int lv_conv_check_geometry(const lv_conv_geometry *g);
/* The windows of a C x H x W image: *K = C kh kw values each, *Ho x *Wo
 * of them; -1 with lv_error (naming argument 1) when the padded image is
 * smaller than the kernel or C kh kw overflows. */
int lv_conv_windows(const lv_conv_geometry *g, int64_t C, int64_t H, int64_t W,
                    int64_t *K, int64_t *Ho, int64_t *Wo);

/* The window columns ox whose pixel ox*s - pad + j lies inside [0, size):
 * [*lo, *hi). Computing the range once per kernel offset keeps the inner
 * loops free of bounds tests. */
static inline void valid_range(int64_t size, int64_t out, int64_t s, int64_t pad,
                        int64_t j, int64_t *lo, int64_t *hi)
{
    int64_t first = pad - j;            /* ox*s >= pad - j */
    int64_t a = first <= 0 ? 0 : (first + s - 1) / s;
    int64_t last = size - 1 + pad - j;  /* ox*s <= size - 1 + pad - j */
    int64_t b = last < 0 ? 0 : last / s + 1;
    *lo = a < out ? a : out;
    *hi = b < out ? b : out;
    if (*hi < *lo)
        *hi = *lo;
}

/* Columns of n images, one channel c at a time. Row (c, i, j), column
 * (oy, ox) of image m holds its pixel (c, oy*sh - pad_top + i, ox*sw -
 * pad_left + j), zero outside. Row r of image m starts at cols +
 * r*row_stride + m*image_step: the image layout has row_stride P (one
 * image per call), the batch layout row_stride n P and image_step P, so
 * that the inner loop over images walks each row in order. Images are
 * image_size apart in x. col2im adds each column back into its window (the
 * exact adjoint), after zeroing channel c of the n images. Channels are
 * independent: callers may run them in parallel.
 *
 * The innermost copies are their own functions with restrict pointers and
 * the common strides 1 and 2 spelled out: in one loop nest with the
 * geometry the compiler kept every index in memory and ran them at a
 * quarter of the speed.
 *
 * Written once in ops_conv_kernels_impl.h, whose two inclusions give
 * im2col_channel_f32/_f64 and col2im_channel_f32/_f64. */
#define T float
#define SUFFIX f32
#include "ops_conv_kernels_impl.h"
#define T double
#define SUFFIX f64
#include "ops_conv_kernels_impl.h"

#endif
