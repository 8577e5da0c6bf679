/*
 * ops_conv_kernels.h -- the window kernels that ops_conv.c (im2col,
 * col2im) and ops_conv_fused.c (conv2d, its transpose and its weight
 * gradient) share: one image's columns in either layout, and their
 * adjoint. Internal to those two files.
 */
#ifndef LV_OPS_CONV_KERNELS_H
#define LV_OPS_CONV_KERNELS_H
#include <string.h>

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
 * quarter of the speed. */
#define CONV_KERNELS(T, SUFFIX)                                               \
    static inline void gather_row_##SUFFIX(T *restrict dst,                   \
                                           const T *restrict src, int64_t n,  \
                                           int64_t stride)                    \
    {                                                                         \
        if (stride == 1)                                                      \
            memcpy(dst, src, sizeof(T) * (size_t)n);                          \
        else if (stride == 2)                                                 \
            for (int64_t k = 0; k < n; k++)                                   \
                dst[k] = src[2 * k];                                          \
        else                                                                  \
            for (int64_t k = 0; k < n; k++)                                   \
                dst[k] = src[k * stride];                                     \
    }                                                                         \
    static inline void add_row_##SUFFIX(T *restrict dst,                      \
                                        const T *restrict src, int64_t n,     \
                                        int64_t stride)                       \
    {                                                                         \
        if (stride == 1)                                                      \
            for (int64_t k = 0; k < n; k++)                                   \
                dst[k] += src[k];                                             \
        else if (stride == 2)                                                 \
            for (int64_t k = 0; k < n; k++)                                   \
                dst[2 * k] += src[k];                                         \
        else                                                                  \
            for (int64_t k = 0; k < n; k++)                                   \
                dst[k * stride] += src[k];                                    \
    }                                                                         \
    static inline void im2col_channel_##SUFFIX(                               \
        T *cols, int64_t row_stride, int64_t image_step, const T *x,          \
        int64_t image_size, int64_t n, int64_t c, int64_t H, int64_t W,       \
        const lv_conv_geometry *g, int64_t Ho, int64_t Wo)                    \
    {                                                                         \
        const int64_t kh = g->kh, kw = g->kw, sh = g->sh, sw = g->sw;         \
        const int64_t top = g->pad_top, left = g->pad_left, P = Ho * Wo;      \
        for (int64_t i = 0; i < kh; i++) {                                    \
            int64_t y_lo, y_hi;                                               \
            valid_range(H, Ho, sh, top, i, &y_lo, &y_hi);                     \
            for (int64_t j = 0; j < kw; j++) {                                \
                T *row = cols + ((c * kh + i) * kw + j) * row_stride;         \
                int64_t lo, hi;                                               \
                valid_range(W, Wo, sw, left, j, &lo, &hi);                    \
                const int64_t x0 = lo * sw - left + j;                        \
                int whole = y_lo == 0 && y_hi == Ho && lo == 0 && hi == Wo;   \
                /* zeros first, where a window leaves the image: one      \
                 * memset over the images' segments when they abut */      \
                if (!whole) {                                                 \
                    if (image_step == P)                                      \
                        memset(row, 0, sizeof(T) * (size_t)(n * P));          \
                    else                                                      \
                        for (int64_t m = 0; m < n; m++)                       \
                            memset(row + m * image_step, 0,                   \
                                   sizeof(T) * (size_t)P);                    \
                }                                                             \
                for (int64_t m = 0; m < n; m++) {                             \
                    const T *plane = x + m * image_size + c * H * W;          \
                    T *out = row + m * image_step;                            \
                    for (int64_t oy = y_lo; oy < y_hi; oy++)                  \
                        gather_row_##SUFFIX(out + oy * Wo + lo,               \
                                            plane + (oy * sh - top + i) * W + x0, \
                                            hi - lo, sw);                     \
                }                                                             \
            }                                                                 \
        }                                                                     \
    }                                                                         \
                                                                              \
    static inline void col2im_channel_##SUFFIX(                               \
        T *x, int64_t image_size, const T *cols, int64_t row_stride,          \
        int64_t image_step, int64_t n, int64_t c, int64_t H, int64_t W,       \
        const lv_conv_geometry *g, int64_t Ho, int64_t Wo)                    \
    {                                                                         \
        const int64_t kh = g->kh, kw = g->kw, sh = g->sh, sw = g->sw;         \
        const int64_t top = g->pad_top, left = g->pad_left;                   \
        for (int64_t m = 0; m < n; m++)                                       \
            memset(x + m * image_size + c * H * W, 0, sizeof(T) * (size_t)(H * W)); \
        for (int64_t i = 0; i < kh; i++) {                                    \
            int64_t y_lo, y_hi;                                               \
            valid_range(H, Ho, sh, top, i, &y_lo, &y_hi);                     \
            for (int64_t j = 0; j < kw; j++) {                                \
                const T *row = cols + ((c * kh + i) * kw + j) * row_stride;   \
                int64_t lo, hi;                                               \
                valid_range(W, Wo, sw, left, j, &lo, &hi);                    \
                const int64_t x0 = lo * sw - left + j;                        \
                for (int64_t m = 0; m < n; m++) {                             \
                    T *plane = x + m * image_size + c * H * W;                \
                    const T *in = row + m * image_step;                       \
                    for (int64_t oy = y_lo; oy < y_hi; oy++)                  \
                        add_row_##SUFFIX(plane + (oy * sh - top + i) * W + x0, \
                                         in + oy * Wo + lo, hi - lo, sw);     \
                }                                                             \
            }                                                                 \
        }                                                                     \
    }

CONV_KERNELS(float, f32)
CONV_KERNELS(double, f64)

#endif
