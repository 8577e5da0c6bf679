/*
 * optim.c -- the optimizers' in-place update kernels (optim.h).
 *
 * One loop per kind, written once for float and double storage in
 * optim_impl.h; each element's arithmetic is in double. The loop over
 * elements runs on the OpenMP threads when a parameter is large enough to
 * repay them; every element is independent, so results do not depend on
 * the thread count.
 */
#include <math.h>

#include "generic.h"
#include "optim.h"

#define PARALLEL_MIN (1 << 16)

/* max that keeps a NaN (fmax would drop it). */
static inline double max_nan(double a, double b)
{
    return (a != a || b != b) ? a + b : (a > b ? a : b);
}

#define T float
#define SUFFIX f32
#include "optim_impl.h"
#define T double
#define SUFFIX f64
#include "optim_impl.h"

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
#define DATA(t) ((t) ? lv_tensor_data(t) : NULL)
#define S(i) (i < count ? DATA(state[i]) : NULL)
    int status = p->dtype == LV_DTYPE_F64
        ? update_f64(kind, h, n, DATA(p), DATA(g), S(0), S(1), S(2), first_momentum)
        : update_f32(kind, h, n, DATA(p), DATA(g), S(0), S(1), S(2), first_momentum);
#undef S
#undef DATA
    if (status < 0)
        return lv_error_set(0, "unknown optimizer kind %d", (int)kind);
    p->storage->version++;
    for (int i = 0; i < count; i++)
        if (state[i])
            state[i]->storage->version++;
    return 0;
}
