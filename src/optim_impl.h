/*
 * optim_impl.h -- the optimizers' update loops (optim.c), written once
 * with T, the storage type; each element's arithmetic is in double.
 * Included once per dtype (generic.h): the includer defines T (float or
 * double) and SUFFIX (f32 or f64); this file #undefs both at its end.
 */

static void FN(sgd)(const lv_optim_hyper *h, int64_t n, T *p, const T *g,
                    T *buf, int first)
{
    const double lr = h->lr, wd = h->weight_decay, mu = h->momentum;
    const double keep = 1.0 - h->dampening, scale = h->grad_scale;
    #pragma omp parallel for if (n >= PARALLEL_MIN)
    for (int64_t i = 0; i < n; i++) {
        double gi = scale * (double)g[i] + wd * (double)p[i];
        if (buf) {
            double b = first ? gi : mu * (double)buf[i] + keep * gi;
            buf[i] = (T)b;
            gi = h->nesterov ? gi + mu * (double)buf[i] : (double)buf[i];
        }
        p[i] = (T)((double)p[i] - lr * gi);
    }
}

static void FN(adam)(const lv_optim_hyper *h, int64_t n, T *p, const T *g,
                     T *m, T *v, T *vmax)
{
    const double b1 = h->beta1, b2 = h->beta2, wd = h->weight_decay;
    const double step = h->lr / (1.0 - pow(b1, (double)h->step));
    const double root_bc2 = sqrt(1.0 - pow(b2, (double)h->step));
    const double eps = h->eps, scale = h->grad_scale;
    #pragma omp parallel for if (n >= PARALLEL_MIN)
    for (int64_t i = 0; i < n; i++) {
        double gi = scale * (double)g[i] + wd * (double)p[i];
        double mi = b1 * (double)m[i] + (1.0 - b1) * gi;
        double vi = b2 * (double)v[i] + (1.0 - b2) * gi * gi;
        m[i] = (T)mi;
        v[i] = (T)vi;
        double used = (double)v[i];
        if (vmax) {
            vmax[i] = (T)max_nan((double)vmax[i], used);
            used = (double)vmax[i];
        }
        double denom = sqrt(used) / root_bc2 + eps;
        p[i] = (T)((double)p[i] - step * (double)m[i] / denom);
    }
}

static void FN(adamax)(const lv_optim_hyper *h, int64_t n, T *p, const T *g,
                       T *m, T *u)
{
    const double b1 = h->beta1, b2 = h->beta2, wd = h->weight_decay;
    const double step = h->lr / (1.0 - pow(b1, (double)h->step));
    const double eps = h->eps, scale = h->grad_scale;
    #pragma omp parallel for if (n >= PARALLEL_MIN)
    for (int64_t i = 0; i < n; i++) {
        double gi = scale * (double)g[i] + wd * (double)p[i];
        m[i] = (T)(b1 * (double)m[i] + (1.0 - b1) * gi);
        u[i] = (T)max_nan(b2 * (double)u[i], fabs(gi));
        p[i] = (T)((double)p[i] - step * (double)m[i] / ((double)u[i] + eps));
    }
}

static void FN(rmsprop)(const lv_optim_hyper *h, int64_t n, T *p, const T *g,
                        T *v, T *c, T *buf)
{
    const double a = h->alpha, wd = h->weight_decay, mu = h->momentum;
    const double lr = h->lr, eps = h->eps, scale = h->grad_scale;
    #pragma omp parallel for if (n >= PARALLEL_MIN)
    for (int64_t i = 0; i < n; i++) {
        double gi = scale * (double)g[i] + wd * (double)p[i];
        v[i] = (T)(a * (double)v[i] + (1.0 - a) * gi * gi);
        double vi = (double)v[i];
        if (c) {
            c[i] = (T)(a * (double)c[i] + (1.0 - a) * gi);
            vi -= (double)c[i] * (double)c[i];
        }
        /* TensorFlow 1: lr inside the momentum, eps inside the root */
        double s = h->tf_style ? lr * gi / sqrt(vi + eps)
                               : gi / (sqrt(vi) + eps);
        if (buf) {
            buf[i] = (T)(mu * (double)buf[i] + s);
            s = (double)buf[i];
        }
        p[i] = (T)((double)p[i] - (h->tf_style ? s : lr * s));
    }
}

/* kind's update over the n elements of p; s0..s2 the state slots in
 * lv_optim_state_name's order (NULL where unused). -1 for an unknown kind,
 * before anything is written. */
static int FN(update)(lv_optim_kind kind, const lv_optim_hyper *h, int64_t n,
                      T *p, const T *g, T *s0, T *s1, T *s2, int first)
{
    switch (kind) {
    case LV_OPTIM_SGD:
        FN(sgd)(h, n, p, g, s0, first);
        return 0;
    case LV_OPTIM_ADAM:
        FN(adam)(h, n, p, g, s0, s1, s2);
        return 0;
    case LV_OPTIM_ADAMAX:
        FN(adamax)(h, n, p, g, s0, s1);
        return 0;
    case LV_OPTIM_RMSPROP:
        FN(rmsprop)(h, n, p, g, s0, s1, s2);
        return 0;
    default:
        return -1;
    }
}

#undef T
#undef SUFFIX
