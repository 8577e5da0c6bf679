/*
 * ops_conv_kernels_impl.h -- the window kernels (ops_conv_kernels.h says
 * what they compute), written once with T. Included once per dtype by
 * ops_conv_kernels.h, which defines T (float or double) and SUFFIX (f32
 * or f64); this file #undefs both at its end.
 */

static inline void FN(gather_row)(T *restrict dst, const T *restrict src,
                                  int64_t n, int64_t stride)
{
    if (stride == 1)
        memcpy(dst, src, sizeof(T) * (size_t)n);
    else if (stride == 2)
        for (int64_t k = 0; k < n; k++)
            dst[k] = src[2 * k];
    else
        for (int64_t k = 0; k < n; k++)
            dst[k] = src[k * stride];
}

static inline void FN(add_row)(T *restrict dst, const T *restrict src,
                               int64_t n, int64_t stride)
{
    if (stride == 1)
        for (int64_t k = 0; k < n; k++)
            dst[k] += src[k];
    else if (stride == 2)
        for (int64_t k = 0; k < n; k++)
            dst[2 * k] += src[k];
    else
        for (int64_t k = 0; k < n; k++)
            dst[k * stride] += src[k];
}
static inline void FN(im2col_channel)(
    T *cols, int64_t row_stride, int64_t image_step, const T *x,
    int64_t image_size, int64_t n, int64_t c, int64_t H, int64_t W,
    const lv_conv_geometry *g, int64_t Ho, int64_t Wo)
{
    const int64_t kh = g->kh, kw = g->kw, sh = g->sh, sw = g->sw;
    const int64_t top = g->pad_top, left = g->pad_left, P = Ho * Wo;
    for (int64_t i = 0; i < kh; i++) {
        int64_t y_lo, y_hi;
        valid_range(H, Ho, sh, top, i, &y_lo, &y_hi);
        for (int64_t j = 0; j < kw; j++) {
            T *row = cols + ((c * kh + i) * kw + j) * row_stride;
            int64_t lo, hi;
            valid_range(W, Wo, sw, left, j, &lo, &hi);
            const int64_t x0 = lo * sw - left + j;
            int whole = y_lo == 0 && y_hi == Ho && lo == 0 && hi == Wo;
            /* zeros first, where a window leaves the image: one memset
             * over the images' segments when they abut */
            if (!whole) {
                if (image_step == P)
                    memset(row, 0, sizeof(T) * (size_t)(n * P));
                else
                    for (int64_t m = 0; m < n; m++)
                        memset(row + m * image_step, 0,
                               sizeof(T) * (size_t)P);
            }
            for (int64_t m = 0; m < n; m++) {
                const T *plane = x + m * image_size + c * H * W;
                T *out = row + m * image_step;
                for (int64_t oy = y_lo; oy < y_hi; oy++)
                    FN(gather_row)(out + oy * Wo + lo,
                                   plane + (oy * sh - top + i) * W + x0,
                                   hi - lo, sw);
            }
        }
    }
}

static inline void FN(col2im_channel)(
    T *x, int64_t image_size, const T *cols, int64_t row_stride,
    int64_t image_step, int64_t n, int64_t c, int64_t H, int64_t W,
    const lv_conv_geometry *g, int64_t Ho, int64_t Wo)
{
    const int64_t kh = g->kh, kw = g->kw, sh = g->sh, sw = g->sw;
    const int64_t top = g->pad_top, left = g->pad_left;
    for (int64_t m = 0; m < n; m++)
        memset(x + m * image_size + c * H * W, 0, sizeof(T) * (size_t)(H * W));
    for (int64_t i = 0; i < kh; i++) {
        int64_t y_lo, y_hi;
        valid_range(H, Ho, sh, top, i, &y_lo, &y_hi);
        for (int64_t j = 0; j < kw; j++) {
            const T *row = cols + ((c * kh + i) * kw + j) * row_stride;
            int64_t lo, hi;
            valid_range(W, Wo, sw, left, j, &lo, &hi);
            const int64_t x0 = lo * sw - left + j;
            for (int64_t m = 0; m < n; m++) {
                T *plane = x + m * image_size + c * H * W;
                const T *in = row + m * image_step;
                for (int64_t oy = y_lo; oy < y_hi; oy++)
                    FN(add_row)(plane + (oy * sh - top + i) * W + x0,
                                in + oy * Wo + lo, hi - lo, sw);
            }
        }
    }
}

#undef T
#undef SUFFIX
