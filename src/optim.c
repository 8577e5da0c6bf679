/*
 * optim.c -- the optimizers' in-place update kernels (optim.h).
 *
 * One loop per kind, written once for float and double storage by
 * OPTIM_KERNELS; each element's arithmetic is in double. The loop over
 * elements runs on the OpenMP threads when a parameter is large enough to
 * repay them; every element is independent, so results do not depend on
 * the thread count.
 */
#include <math.h>

#include "optim.h"

#define PARALLEL_MIN (1 << 16)

/* max that keeps a NaN (fmax would drop it). */
static inline double max_nan(double a, double b)
{
    return (a != a || b != b) ? a + b : (a > b ? a : b);
}

#define OPTIM_KERNELS(T, SUFFIX)                                               \
    static void sgd_##SUFFIX(const lv_optim_hyper *h, int64_t n, T *p,         \
                             const T *g, T *buf, int first)                    \
    {                                                                          \
        const double lr = h->lr, wd = h->weight_decay, mu = h->momentum;       \
        const double keep = 1.0 - h->dampening, scale = h->grad_scale;         \
        _Pragma("omp parallel for if (n >= PARALLEL_MIN)")                     \
        for (int64_t i = 0; i < n; i++) {                                      \
            double gi = scale * (double)g[i] + wd * (double)p[i];              \
            if (buf) {                                                         \
                double b = first ? gi : mu * (double)buf[i] + keep * gi;       \
                buf[i] = (T)b;                                                 \
                gi = h->nesterov ? gi + mu * (double)buf[i] : (double)buf[i];  \
            }                                                                  \
            p[i] = (T)((double)p[i] - lr * gi);                                \
        }                                                                      \
    }                                                                          \
                                                                               \
    static void adam_##SUFFIX(const lv_optim_hyper *h, int64_t n, T *p,        \
                              const T *g, T *m, T *v, T *vmax)                 \
    {                                                                          \
        const double b1 = h->beta1, b2 = h->beta2, wd = h->weight_decay;       \
        const double step = h->lr / (1.0 - pow(b1, (double)h->step));          \
        const double root_bc2 = sqrt(1.0 - pow(b2, (double)h->step));          \
        const double eps = h->eps, scale = h->grad_scale;                      \
        _Pragma("omp parallel for if (n >= PARALLEL_MIN)")                     \
        for (int64_t i = 0; i < n; i++) {                                      \
            double gi = scale * (double)g[i] + wd * (double)p[i];              \
            double mi = b1 * (double)m[i] + (1.0 - b1) * gi;                   \
            double vi = b2 * (double)v[i] + (1.0 - b2) * gi * gi;              \
            m[i] = (T)mi;                                                      \
            v[i] = (T)vi;                                                      \
            double used = (double)v[i];                                        \
            if (vmax) {                                                        \
                vmax[i] = (T)max_nan((double)vmax[i], used);                   \
                used = (double)vmax[i];                                        \
            }                                                                  \
            double denom = sqrt(used) / root_bc2 + eps;                        \
            p[i] = (T)((double)p[i] - step * (double)m[i] / denom);            \
        }                                                                      \
    }                                                                          \
                                                                               \
    static void adamax_##SUFFIX(const lv_optim_hyper *h, int64_t n, T *p,      \
                                const T *g, T *m, T *u)                        \
    {                                                                          \
        const double b1 = h->beta1, b2 = h->beta2, wd = h->weight_decay;       \
        const double step = h->lr / (1.0 - pow(b1, (double)h->step));          \
        const double eps = h->eps, scale = h->grad_scale;                      \
        _Pragma("omp parallel for if (n >= PARALLEL_MIN)")                     \
        for (int64_t i = 0; i < n; i++) {                                      \
            double gi = scale * (double)g[i] + wd * (double)p[i];              \
            m[i] = (T)(b1 * (double)m[i] + (1.0 - b1) * gi);                   \
            u[i] = (T)max_nan(b2 * (double)u[i], fabs(gi));                    \
            p[i] = (T)((double)p[i] - step * (double)m[i] / ((double)u[i] + eps)); \
        }                                                                      \
    }                                                                          \
                                                                               \
    static void rmsprop_##SUFFIX(const lv_optim_hyper *h, int64_t n, T *p,     \
                                 const T *g, T *v, T *c, T *buf)               \
    {                                                                          \
        const double a = h->alpha, wd = h->weight_decay, mu = h->momentum;     \
        const double lr = h->lr, eps = h->eps, scale = h->grad_scale;          \
        _Pragma("omp parallel for if (n >= PARALLEL_MIN)")                     \
        for (int64_t i = 0; i < n; i++) {                                      \
            double gi = scale * (double)g[i] + wd * (double)p[i];              \
            v[i] = (T)(a * (double)v[i] + (1.0 - a) * gi * gi);                \
            double vi = (double)v[i];                                          \
            if (c) {                                                           \
                c[i] = (T)(a * (double)c[i] + (1.0 - a) * gi);                 \
                vi -= (double)c[i] * (double)c[i];                             \
            }                                                                  \
            /* TensorFlow 1: lr inside the momentum, eps inside the root */   \
            double s = h->tf_style ? lr * gi / sqrt(vi + eps)                  \
                                   : gi / (sqrt(vi) + eps);                    \
            if (buf) {                                                         \
                buf[i] = (T)(mu * (double)buf[i] + s);                         \
                s = (double)buf[i];                                            \
            }                                                                  \
            p[i] = (T)((double)p[i] - (h->tf_style ? s : lr * s));             \
        }                                                                      \
    }

OPTIM_KERNELS(float, f32)
OPTIM_KERNELS(double, f64)

/* Which state slots each kind uses, by option. */
static int uses_momentum_buffer(lv_optim_kind kind, const lv_optim_hyper *h)
{
    return (kind == LV_OPTIM_SGD || kind == LV_OPTIM_RMSPROP) && h->momentum != 0;
}

int lv_optim_state_count(lv_optim_kind kind, const lv_optim_hyper *h)
{
    switch (kind) {
    case LV_OPTIM_SGD:
        return uses_momentum_buffer(kind, h);
    case LV_OPTIM_ADAM:
        return h->amsgrad ? 3 : 2;
    case LV_OPTIM_ADAMAX:
        return 2;
    case LV_OPTIM_RMSPROP:
        return 3;           /* square_avg, grad_avg, momentum_buffer (unused: NULL) */
    default:
        return 0;
    }
}

const char *lv_optim_state_name(lv_optim_kind kind, const lv_optim_hyper *h,
                                int i)
{
    switch (kind) {
    case LV_OPTIM_SGD:
        return "momentum_buffer";
    case LV_OPTIM_ADAM:
        return i == 0 ? "exp_avg" : i == 1 ? "exp_avg_sq" : "max_exp_avg_sq";
    case LV_OPTIM_ADAMAX:
        return i == 0 ? "exp_avg" : "exp_inf";
    case LV_OPTIM_RMSPROP:
        if (i == 1 && !h->centered)
            return NULL;
        if (i == 2 && !uses_momentum_buffer(kind, h))
            return NULL;
        return i == 0 ? "square_avg" : i == 1 ? "grad_avg" : "momentum_buffer";
    default:
        return NULL;
    }
}

double lv_optim_state_init(lv_optim_kind kind, const lv_optim_hyper *h, int i)
{
    return kind == LV_OPTIM_RMSPROP && i == 0 && h->tf_style ? 1.0 : 0.0;
}

static int check_like(const lv_tensor *p, const lv_tensor *t, const char *what)
{
    if (!t)
        return 0;
    if (t->dtype != p->dtype || lv_tensor_numel(t) != lv_tensor_numel(p) ||
        !lv_tensor_is_contiguous(t))
        return lv_error_set(0, "optimizer %s must be a contiguous %s tensor "
                            "of the parameter's %lld elements", what,
                            lv_dtype_name(p->dtype),
                            (long long)lv_tensor_numel(p));
    return 0;
}

int lv_optim_update(lv_optim_kind kind, const lv_optim_hyper *h,
                    lv_tensor *p, const lv_tensor *g, lv_tensor *const *state,
                    int first_momentum)
{
    if (!lv_tensor_is_contiguous(p))
        return lv_error_set(0, "an optimizer's parameter must be contiguous");
    if (check_like(p, g, "gradient") < 0)
        return -1;
    int count = lv_optim_state_count(kind, h);
    for (int i = 0; i < count; i++) {
        if (lv_optim_state_name(kind, h, i) && !state[i])
            return lv_error_set(0, "optimizer state '%s' is missing",
                                lv_optim_state_name(kind, h, i));
        if (check_like(p, state[i], "state") < 0)
            return -1;
    }
    int64_t n = lv_tensor_numel(p);
    int f64 = p->dtype == LV_DTYPE_F64;
#define DATA(t) ((t) ? lv_tensor_data(t) : NULL)
#define S(i) (i < count ? DATA(state[i]) : NULL)
    switch (kind) {
    case LV_OPTIM_SGD:
        if (f64)
            sgd_f64(h, n, DATA(p), DATA(g), S(0), first_momentum);
        else
            sgd_f32(h, n, DATA(p), DATA(g), S(0), first_momentum);
        break;
    case LV_OPTIM_ADAM:
        if (f64)
            adam_f64(h, n, DATA(p), DATA(g), S(0), S(1), S(2));
        else
            adam_f32(h, n, DATA(p), DATA(g), S(0), S(1), S(2));
        break;
    case LV_OPTIM_ADAMAX:
        if (f64)
            adamax_f64(h, n, DATA(p), DATA(g), S(0), S(1));
        else
            adamax_f32(h, n, DATA(p), DATA(g), S(0), S(1));
        break;
    case LV_OPTIM_RMSPROP:
        if (f64)
            rmsprop_f64(h, n, DATA(p), DATA(g), S(0), S(1), S(2));
        else
            rmsprop_f32(h, n, DATA(p), DATA(g), S(0), S(1), S(2));
        break;
    default:
        return lv_error_set(0, "unknown optimizer kind %d", (int)kind);
    }
#undef S
#undef DATA
    p->storage->version++;
    for (int i = 0; i < count; i++)
        if (state[i])
            state[i]->storage->version++;
    return 0;
}
