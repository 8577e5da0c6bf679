/*
 * ops_conv.c -- the two linear maps a 2-D convolution is made of:
 * im2col (unfold every kh x kw window of a padded image into a column) and
 * col2im (its exact adjoint: add every column back into its window).
 *
 * Shape legend: N batch, C channels, H x W image, kh x kw kernel,
 * Ho x Wo windows, K = C kh kw, P = Ho Wo.
 *     im2col: x [N, C, H, W]  ->  cols [N, K, P]   (layout "image")
 *                                    or  [K, N, P]   (layout "batch")
 *     col2im: cols (either layout)  ->  x [N, C, H, W]
 * A convolution is then W[O, K] @ cols (lua/lvae/nn.lua), a transposed
 * convolution col2im(Wᵀ @ x); in the batch layout either is one GEMM over
 * the whole batch, [O, K] x [K, N P]. Since each map's VJP is the other, both
 * are differentiable to any order, and so are the convolutions built on
 * them. Padding is given per side (TensorFlow's SAME pads 1 before and 2
 * after for 28 -> 14 at kernel 5, stride 2).
 *
 * The batch loops are in ops_conv_impl.h, the window kernels in
 * ops_conv_kernels.h. Not here: the GEMM (ops_matmul.c) and the layers
 * (nn.lua).
 */
#include <string.h>

#include "autograd.h"
#include "op.h"
#include "ops_conv_kernels.h"

#define T float
#define SUFFIX f32
#include "ops_conv_impl.h"
#define T double
#define SUFFIX f64
#include "ops_conv_impl.h"

/* The largest kernel, stride, padding and image side: with these bounds
 * no sum or product of two of them (a padded side, kh kw, Ho Wo) can
 * overflow, so the shape arithmetic of the kernels stays exact. */
#define CONV_MAX_SIZE ((int64_t)1 << 24)

int lv_conv_check_geometry(const lv_conv_geometry *g)
{
    if (g->kh > CONV_MAX_SIZE || g->kw > CONV_MAX_SIZE || g->sh > CONV_MAX_SIZE ||
        g->sw > CONV_MAX_SIZE || g->pad_top > CONV_MAX_SIZE ||
        g->pad_bottom > CONV_MAX_SIZE || g->pad_left > CONV_MAX_SIZE ||
        g->pad_right > CONV_MAX_SIZE || g->height > CONV_MAX_SIZE ||
        g->width > CONV_MAX_SIZE)
        return lv_error_set(2, "kernel, stride, padding and size must be at "
                            "most %lld", (long long)CONV_MAX_SIZE);
    if (g->height < 0 || g->width < 0)
        return lv_error_set(2, "size must not be negative, got %lldx%lld",
                            (long long)g->height, (long long)g->width);
    if (g->kh < 1 || g->kw < 1)
        return lv_error_set(2, "kernel size must be at least 1, got %lldx%lld",
                            (long long)g->kh, (long long)g->kw);
    if (g->sh < 1 || g->sw < 1)
        return lv_error_set(2, "stride must be at least 1, got %lldx%lld",
                            (long long)g->sh, (long long)g->sw);
    if (g->pad_top < 0 || g->pad_bottom < 0 || g->pad_left < 0 ||
        g->pad_right < 0)
        return lv_error_set(2, "padding must not be negative");
    return 0;
}

int lv_conv_windows(const lv_conv_geometry *g, int64_t C, int64_t H, int64_t W,
                    int64_t *K, int64_t *Ho, int64_t *Wo)
{
    if (__builtin_mul_overflow(C, g->kh * g->kw, K))
        return lv_error_set(1, "%lld channels times a %lldx%lld kernel is too "
                            "large", (long long)C, (long long)g->kh,
                            (long long)g->kw);
    *Ho = lv_conv_out_size(H, g->kh, g->sh, g->pad_top, g->pad_bottom);
    *Wo = lv_conv_out_size(W, g->kw, g->sw, g->pad_left, g->pad_right);
    if (*Ho == 0 || *Wo == 0)
        return lv_error_set(1, "image %lldx%lld (padded %lldx%lld) is "
                            "smaller than the kernel %lldx%lld",
                            (long long)H, (long long)W,
                            (long long)(H + g->pad_top + g->pad_bottom),
                            (long long)(W + g->pad_left + g->pad_right),
                            (long long)g->kh, (long long)g->kw);
    return 0;
}

int lv_forward_conv(lv_tensor **out, lv_op_id op, lv_tensor *const *in,
                    int n_in, const lv_op_params *p)
{
    (void)n_in;
    const lv_conv_geometry *g = &p->conv;
    const lv_tensor *x = in[0];
    char buf[128];
    if (lv_conv_check_geometry(g) < 0)
        return -1;
    lv_tensor *src = NULL, *y = NULL;
    if (op == LV_OP_IM2COL) {
        if (x->ndim != 4)
            return lv_error_set(1, "expected an image batch [N, C, H, W], got "
                                "shape %s", lv_shape_format(buf, sizeof buf,
                                                           x->ndim, x->shape));
        int64_t N = x->shape[0], C = x->shape[1], H = x->shape[2], W = x->shape[3];
        int64_t K, Ho, Wo;
        if (lv_conv_windows(g, C, H, W, &K, &Ho, &Wo) < 0)
            return -1;
        src = lv_apply1(LV_OP_CONTIGUOUS, 1, (lv_tensor *const *)&in[0], NULL);
        int64_t P = Ho * Wo;
        int64_t shape[3] = {N, K, P};
        if (g->batch_inner) {
            shape[0] = K;
            shape[1] = N;
        }
        y = src && lv_shape_check("im2col", 3, shape) == 0
                ? lv_tensor_empty(x->dtype, 3, shape) : NULL;
        if (!y) {
            lv_tensor_release(src);
            return -1;
        }
        if (x->dtype == LV_DTYPE_F64)
            im2col_f64(lv_tensor_data(y), lv_tensor_data(src), N, C, H, W, K,
                       g, Ho, Wo);
        else
            im2col_f32(lv_tensor_data(y), lv_tensor_data(src), N, C, H, W, K,
                       g, Ho, Wo);
    } else {
        int64_t H = g->height, W = g->width;
        int64_t Ho = lv_conv_out_size(H, g->kh, g->sh, g->pad_top, g->pad_bottom);
        int64_t Wo = lv_conv_out_size(W, g->kw, g->sw, g->pad_left, g->pad_right);
        int64_t khw = g->kh * g->kw;
        if (H < 1 || W < 1)
            return lv_error_set(2, "image size must be given (height and "
                                "width at least 1)");
        int kdim = g->batch_inner ? 0 : 1;
        if (x->ndim != 3 || x->shape[kdim] % khw != 0 ||
            x->shape[2] != Ho * Wo || Ho == 0 || Wo == 0)
            return lv_error_set(1, g->batch_inner
                                ? "expected columns [C*%lld, N, %lld] for a "
                                  "%lldx%lld image, got shape %s"
                                : "expected columns [N, C*%lld, %lld] for a "
                                  "%lldx%lld image, got shape %s",
                                (long long)khw, (long long)(Ho * Wo),
                                (long long)H, (long long)W,
                                lv_shape_format(buf, sizeof buf, x->ndim,
                                                x->shape));
        int64_t N = x->shape[1 - kdim], C = x->shape[kdim] / khw;
        src = lv_apply1(LV_OP_CONTIGUOUS, 1, (lv_tensor *const *)&in[0], NULL);
        int64_t shape[4] = {N, C, H, W};
        y = src ? lv_tensor_empty(x->dtype, 4, shape) : NULL;
        if (!y) {
            lv_tensor_release(src);
            return -1;
        }
        if (x->dtype == LV_DTYPE_F64)
            col2im_f64(lv_tensor_data(y), lv_tensor_data(src), N, C, H, W, khw,
                       g, Ho, Wo);
        else
            col2im_f32(lv_tensor_data(y), lv_tensor_data(src), N, C, H, W, khw,
                       g, Ho, Wo);
    }
    lv_tensor_release(src);
    out[0] = y;
    return 1;
}

/* Each map's VJP is the other, at the same geometry and image size. */
int lv_vjp_conv(lv_tensor **din, const lv_node *node, lv_tensor *const *dout,
                const int *needs)
{
    (void)needs;
    lv_op_params p = node->params;
    lv_tensor *g = dout[0];
    if (node->op == LV_OP_IM2COL) {
        const lv_tensor *x = node->inputs[0];
        p.conv.height = x->shape[2];
        p.conv.width = x->shape[3];
        din[0] = lv_apply1(LV_OP_COL2IM, 1, &g, &p);
    } else {
        din[0] = lv_apply1(LV_OP_IM2COL, 1, &g, &p);
    }
    return din[0] ? 0 : -1;
}
