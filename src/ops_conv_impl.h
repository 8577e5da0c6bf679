/*
 * ops_conv_impl.h -- im2col and col2im over a whole batch (ops_conv.c),
 * written once with T over the window kernels of ops_conv_kernels.h.
 * Included once per dtype (generic.h): the includer defines T (float or
 * double) and SUFFIX (f32 or f64); this file #undefs both at its end.
 *
 * Shapes as in ops_conv.c: x [N, C, H, W]; cols [K, N, P] in the batch
 * layout (g->batch_inner), else [N, K, P]; K = C kh kw, P = Ho Wo.
 */

/* cols = im2col(x) */
static void FN(im2col)(T *cols, const T *x, int64_t N, int64_t C, int64_t H,
                       int64_t W, int64_t K, const lv_conv_geometry *g,
                       int64_t Ho, int64_t Wo)
{
    int64_t P = Ho * Wo;
    if (g->batch_inner) {
        /* channels in parallel, each over the whole batch */
        #pragma omp parallel for if (C > 1 && K * P * N >= (1 << 18))
        for (int64_t c = 0; c < C; c++)
            FN(im2col_channel)(cols, N * P, P, x, C * H * W, N, c, H, W, g,
                               Ho, Wo);
    } else {
        #pragma omp parallel for if (N > 1 && K * P * N >= (1 << 18))
        for (int64_t n = 0; n < N; n++) {
            const T *xn = x + n * C * H * W;
            T *cn = cols + n * K * P;
            for (int64_t c = 0; c < C; c++)
                FN(im2col_channel)(cn, P, 0, xn, 0, 1, c, H, W, g, Ho, Wo);
        }
    }
}

/* x = col2im(cols), khw = kh kw */
static void FN(col2im)(T *x, const T *cols, int64_t N, int64_t C, int64_t H,
                       int64_t W, int64_t khw, const lv_conv_geometry *g,
                       int64_t Ho, int64_t Wo)
{
    int64_t P = Ho * Wo;
    if (g->batch_inner) {
        #pragma omp parallel for if (C > 1 && C * khw * P * N >= (1 << 18))
        for (int64_t c = 0; c < C; c++)
            FN(col2im_channel)(x, C * H * W, cols, N * P, P, N, c, H, W, g,
                               Ho, Wo);
    } else {
        #pragma omp parallel for if (N > 1 && C * khw * P * N >= (1 << 18))
        for (int64_t n = 0; n < N; n++) {
            const T *cn = cols + n * C * khw * P;
            T *xn = x + n * C * H * W;
            for (int64_t c = 0; c < C; c++)
                FN(col2im_channel)(xn, 0, cn, P, 0, 1, c, H, W, g, Ho, Wo);
        }
    }
}

#undef T
#undef SUFFIX
