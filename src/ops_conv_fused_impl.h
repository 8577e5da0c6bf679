/*
 * ops_conv_fused_impl.h -- the chunk loops of the fused convolutions
 * (ops_conv_fused.c), written once with T. Included once per dtype
 * (generic.h): the includer defines T (float or double), SUFFIX (f32 or
 * f64) and DTYPE (LV_DTYPE_F32 or LV_DTYPE_F64, for lv_gemm); this file
 * #undefs all three at its end.
 */

/* [n, O, P] images (rows of O*P) <-> [O, n P] columns of a chunk */
static void FN(gather)(T *dst, const T *src, int64_t n, int64_t O, int64_t P)
{
    for (int64_t o = 0; o < O; o++)
        for (int64_t i = 0; i < n; i++)
            memcpy(dst + (o * n + i) * P, src + (i * O + o) * P,
                   sizeof(T) * (size_t)P);
}

static void FN(scatter)(T *dst, const T *src, int64_t n, int64_t O, int64_t P)
{
    for (int64_t i = 0; i < n; i++)
        for (int64_t o = 0; o < O; o++)
            memcpy(dst + (i * O + o) * P, src + (o * n + i) * P,
                   sizeof(T) * (size_t)P);
}

static void FN(unfold)(T *cols, const T *x, int64_t n, const conv_shape *s,
                       const lv_conv_geometry *g)
{
    #pragma omp parallel for if (s->C > 1 && n * s->K * s->P >= (1 << 18))
    for (int64_t c = 0; c < s->C; c++)
        FN(im2col_channel)(cols, n * s->P, s->P, x, s->C * s->H * s->W, n, c,
                           s->H, s->W, g, s->Ho, s->Wo);
}

static void FN(fold)(T *x, const T *cols, int64_t n, const conv_shape *s,
                     const lv_conv_geometry *g)
{
    #pragma omp parallel for if (s->C > 1 && n * s->K * s->P >= (1 << 18))
    for (int64_t c = 0; c < s->C; c++)
        FN(col2im_channel)(x, s->C * s->H * s->W, cols, n * s->P, s->P, n, c,
                           s->H, s->W, g, s->Ho, s->Wo);
}

/* One chunk of n images from image n0: y = conv2d(x, w) */
static void FN(conv)(T *y, const T *x, const T *w, T *cols, T *tmp,
                     const conv_shape *s, const lv_conv_geometry *g,
                     int64_t n0, int64_t n)
{
    FN(unfold)(cols, x + n0 * s->C * s->H * s->W, n, s, g);
    lv_gemm(DTYPE, CblasNoTrans, CblasNoTrans, s->O, n * s->P, s->K, w,
            s->K, cols, n * s->P, 0.0, tmp, n * s->P);
    FN(scatter)(y + n0 * s->O * s->P, tmp, n, s->O, s->P);
}

/* x = conv_transpose2d(y, w) */
static void FN(convt)(T *x, const T *y, const T *w, T *cols, T *tmp,
                      const conv_shape *s, const lv_conv_geometry *g,
                      int64_t n0, int64_t n)
{
    FN(gather)(tmp, y + n0 * s->O * s->P, n, s->O, s->P);
    lv_gemm(DTYPE, CblasTrans, CblasNoTrans, s->K, n * s->P, s->O, w,
            s->K, tmp, n * s->P, 0.0, cols, n * s->P);
    FN(fold)(x + n0 * s->C * s->H * s->W, cols, n, s, g);
}

/* this chunk's part of conv_weight_grad(x, y): Σ_i y_i cols_iᵀ */
static void FN(wgrad)(T *dw, const T *x, const T *y, T *cols, T *tmp,
                      const conv_shape *s, const lv_conv_geometry *g,
                      int64_t n0, int64_t n)
{
    FN(unfold)(cols, x + n0 * s->C * s->H * s->W, n, s, g);
    FN(gather)(tmp, y + n0 * s->O * s->P, n, s->O, s->P);
    lv_gemm(DTYPE, CblasNoTrans, CblasTrans, s->O, s->K, n * s->P, tmp,
            n * s->P, cols, n * s->P, 0.0, dw, s->K);
}

/* One chunk of op: into y (conv2d, its transpose) or dw (the weight
 * gradient's part), from the operands a and b. A chunk_fn. */
static void FN(chunk)(lv_op_id op, void *y, void *dw, const void *a,
                      const void *b, void *cols, void *tmp,
                      const conv_shape *s, const lv_conv_geometry *g,
                      int64_t n0, int64_t n)
{
    switch (op) {
    case LV_OP_CONV2D:
        FN(conv)(y, a, b, cols, tmp, s, g, n0, n);
        break;
    case LV_OP_CONV_TRANSPOSE2D:
        FN(convt)(y, a, b, cols, tmp, s, g, n0, n);
        break;
    default:
        FN(wgrad)(dw, a, b, cols, tmp, s, g, n0, n);
        break;
    }
}

#undef T
#undef SUFFIX
#undef DTYPE
