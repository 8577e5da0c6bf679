/*
 * estimators.c -- importance-sampling arithmetic whose memory does not
 * grow with the number of samples (SPEC §4): a streaming log-mean-exp
 * per datapoint, the effective sample size of the normalised weights
 * kept the same way, the chunked NLL driver over a log-weight callback,
 * and the row selection an AIS Metropolis step needs.
 *
 * Shape legend: S = importance samples, n = samples in one chunk,
 * B = datapoints, R = repeated runs.
 *
 * The stream, per datapoint b (w = exp(log w)):
 *
 *     max  = max_s log w_s          sum  = Σ_s exp(log w_s - max)
 *     sum2 = Σ_s exp(2 (log w_s - max))
 *
 * A chunk first finds its own max; if it beats the running one, the sums
 * so far are rescaled by exp(old - new) (and its square), then the
 * chunk's terms are added. Every exponent is <= 0, so nothing overflows;
 * log weights of -1e4 or +1e4 are as exact as those near 0. Then
 *
 *     log (1/S Σ w) = max + log sum - log S,    ESS = sum² / sum2
 *
 * (the ESS is scale-free, so the common factor exp(max) cancels). Sums
 * accumulate in double for both dtypes.
 *
 * Not here: the bounds used for training (ELBO, IWAE: tensor ops on the
 * tape, lua/lvae/estimators.lua), AIS itself (Lua over tensor ops), any
 * Lua (the callback comes from the binding, lua_estimators.c).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "estimators.h"

/* ---- the stream --------------------------------------------------------- */

int lv_lse_stream_init(lv_lse_stream *s, int64_t n)
{
    memset(s, 0, sizeof *s);
    if (n < 0)
        return lv_error_set(0, "the number of datapoints must be >= 0 (got %lld)",
                            (long long)n);
    size_t m = n > 0 ? (size_t)n : 1;
    s->n = n;
    s->max = lv_malloc(m * sizeof *s->max);
    s->sum = lv_malloc(m * sizeof *s->sum);
    s->sum2 = lv_malloc(m * sizeof *s->sum2);
    s->bad = lv_malloc(m * sizeof *s->bad);
    if (!s->max || !s->sum || !s->sum2 || !s->bad) {
        lv_lse_stream_free(s);
        return lv_error_set(0, "out of memory (a log-mean-exp stream of %lld datapoints)",
                            (long long)n);
    }
    lv_lse_stream_reset(s);
    return 0;
}

void lv_lse_stream_reset(lv_lse_stream *s)
{
    s->count = 0;
    for (int64_t b = 0; b < s->n; b++) {
        s->max[b] = -HUGE_VAL;
        s->sum[b] = 0.0;
        s->sum2[b] = 0.0;
        s->bad[b] = 0;
    }
}

void lv_lse_stream_free(lv_lse_stream *s)
{
    free(s->max);
    free(s->sum);
    free(s->sum2);
    free(s->bad);
    free(s->column);
    memset(s, 0, sizeof *s);
}

/* Column b of x ([n, B], or [n] read as B = 1) into out [n] as doubles,
 * from whatever strides the view has. */
static void gather_column(double *out, const lv_tensor *x, int64_t b)
{
    int64_t n = x->shape[0];
    int64_t rs = x->stride[0];
    int64_t off = x->ndim == 2 ? b * x->stride[1] : 0;
    for (int64_t i = 0; i < n; i++)
        out[i] = lv_load_double(lv_tensor_data(x), x->dtype, off + i * rs);
}

/* Adds the n log weights v of datapoint b. */
static void stream_add(lv_lse_stream *s, int64_t b, const double *v, int64_t n)
{
    double m = s->max[b];
    for (int64_t i = 0; i < n; i++) {
        if (isnan(v[i]))
            s->bad[b] |= 1;
        else if (v[i] == HUGE_VAL)
            s->bad[b] |= 2;
        else if (v[i] > m)
            m = v[i];
    }
    if (m > s->max[b]) {
        /* A new max: bring what was summed to its scale. */
        if (s->max[b] > -HUGE_VAL) {
            double r = exp(s->max[b] - m);
            s->sum[b] *= r;
            s->sum2[b] *= r * r;
        }
        s->max[b] = m;
    }
    if (m == -HUGE_VAL)
        return;                       /* every weight so far is 0 */
    double sum = 0.0, sum2 = 0.0;
    for (int64_t i = 0; i < n; i++) {
        if (isnan(v[i]) || v[i] == HUGE_VAL)
            continue;
        double e = exp(v[i] - m);     /* exp(-inf) = 0 */
        sum += e;
        sum2 += e * e;
    }
    s->sum[b] += sum;
    s->sum2[b] += sum2;
}

int lv_lse_stream_update(lv_lse_stream *s, const lv_tensor *log_w)
{
    int64_t B = log_w->ndim == 2 ? log_w->shape[1] : 1;
    if ((log_w->ndim != 1 && log_w->ndim != 2) || B != s->n) {
        char buf[96];
        return lv_error_set(1, "log weights must have shape [S,%lld] (got %s)",
                            (long long)s->n,
                            lv_shape_format(buf, sizeof buf, log_w->ndim, log_w->shape));
    }
    int64_t n = log_w->shape[0];
    if (n > s->column_size) {
        double *col = lv_realloc(s->column, (size_t)n * sizeof *col);
        if (!col)
            return lv_error_set(0, "out of memory (a chunk of %lld log weights)",
                                (long long)n);
        s->column = col;
        s->column_size = n;
    }
    for (int64_t b = 0; b < B; b++) {
        gather_column(s->column, log_w, b);
        stream_add(s, b, s->column, n);
    }
    s->count += n;
    return 0;
}

void lv_lse_stream_log_mean(const lv_lse_stream *s, double *out)
{
    for (int64_t b = 0; b < s->n; b++) {
        if (s->count == 0 || (s->bad[b] & 1))
            out[b] = NAN;
        else if (s->bad[b] & 2)
            out[b] = HUGE_VAL;
        else if (s->max[b] == -HUGE_VAL)
            out[b] = -HUGE_VAL;
        else
            out[b] = s->max[b] + log(s->sum[b]) - log((double)s->count);
    }
}

void lv_lse_stream_ess(const lv_lse_stream *s, double *out)
{
    for (int64_t b = 0; b < s->n; b++) {
        if (s->count == 0 || s->bad[b] || s->max[b] == -HUGE_VAL)
            out[b] = NAN;
        else
            out[b] = s->sum[b] * s->sum[b] / s->sum2[b];
    }
}

/* ---- the chunked NLL ------------------------------------------------------ */

int lv_estimators_nll(double *nll, double *ess, lv_log_weight_fn fn,
                      void *ctx, int64_t B, int64_t S, int64_t chunk, int R)
{
    if (B < 1)
        return lv_error_set(0, "the batch must hold at least one datapoint");
    if (S < 1)
        return lv_error_set(0, "samples must be >= 1 (got %lld)", (long long)S);
    if (chunk < 1)
        return lv_error_set(0, "chunk must be >= 1 (got %lld)", (long long)chunk);
    if (R < 1)
        return lv_error_set(0, "runs must be >= 1 (got %d)", R);

    lv_lse_stream s;
    if (lv_lse_stream_init(&s, B) != 0)
        return -1;
    for (int r = 0; r < R; r++) {
        lv_lse_stream_reset(&s);
        for (int64_t done = 0; done < S;) {
            int64_t n = S - done < chunk ? S - done : chunk;
            lv_tensor *lw = NULL;
            if (fn(ctx, n, &lw) != 0)
                goto fail;
            if (lw->ndim != 2 || lw->shape[0] != n || lw->shape[1] != B) {
                char buf[96];
                lv_error_set(0, "log_weight(x, %lld) must return shape [%lld,%lld] (got %s)",
                             (long long)n, (long long)n, (long long)B,
                             lv_shape_format(buf, sizeof buf, lw->ndim, lw->shape));
                lv_tensor_release(lw);
                goto fail;
            }
            int status = lv_lse_stream_update(&s, lw);
            lv_tensor_release(lw);      /* the chunk goes before the next */
            if (status != 0)
                goto fail;
            done += n;
        }
        lv_lse_stream_log_mean(&s, nll + (int64_t)r * B);
        for (int64_t b = 0; b < B; b++)
            nll[(int64_t)r * B + b] = -nll[(int64_t)r * B + b];
        lv_lse_stream_ess(&s, ess + (int64_t)r * B);
    }
    lv_lse_stream_free(&s);
    return 0;
fail:
    lv_lse_stream_free(&s);
    return -1;
}

int lv_estimators_ess(double *out, const lv_tensor *log_w)
{
    if (log_w->ndim != 1 && log_w->ndim != 2) {
        char buf[96];
        return lv_error_set(1, "log weights must be [S] or [S, B] (got %s)",
                            lv_shape_format(buf, sizeof buf, log_w->ndim, log_w->shape));
    }
    if (log_w->shape[0] < 1)
        return lv_error_set(1, "log weights hold no sample (dim 1 has size 0)");
    lv_lse_stream s;
    if (lv_lse_stream_init(&s, log_w->ndim == 2 ? log_w->shape[1] : 1) != 0)
        return -1;
    int status = lv_lse_stream_update(&s, log_w);
    if (status == 0)
        lv_lse_stream_ess(&s, out);
    lv_lse_stream_free(&s);
    return status;
}

/* ---- Metropolis selection --------------------------------------------------- */

lv_tensor *lv_estimators_select(const lv_tensor *mask, const lv_tensor *a,
                                const lv_tensor *b)
{
    char sa[96], sb[96];
    if (a->dtype != b->dtype) {
        lv_error_set(3, "dtypes differ: %s and %s", lv_dtype_name(a->dtype),
                     lv_dtype_name(b->dtype));
        return NULL;
    }
    int same = a->ndim == b->ndim;
    for (int i = 0; same && i < a->ndim; i++)
        same = a->shape[i] == b->shape[i];
    if (!same) {
        lv_error_set(3, "shapes differ: %s and %s",
                     lv_shape_format(sa, sizeof sa, a->ndim, a->shape),
                     lv_shape_format(sb, sizeof sb, b->ndim, b->shape));
        return NULL;
    }
    int lead = mask->ndim <= a->ndim;
    for (int i = 0; lead && i < mask->ndim; i++)
        lead = mask->shape[i] == a->shape[i];
    if (!lead) {
        lv_error_set(1, "the mask %s must have the leading dims of %s",
                     lv_shape_format(sa, sizeof sa, mask->ndim, mask->shape),
                     lv_shape_format(sb, sizeof sb, a->ndim, a->shape));
        return NULL;
    }
    lv_tensor *out = lv_tensor_empty(a->dtype, a->ndim, a->shape);
    if (!out)
        return NULL;
    int64_t rows = lv_tensor_numel(mask);
    int64_t inner = 1;
    for (int i = mask->ndim; i < a->ndim; i++)
        inner *= a->shape[i];
    for (int64_t k = 0; k < rows; k++) {
        double m = lv_tensor_get_linear(mask, k);
        const lv_tensor *src = (m != 0.0 && m == m) ? a : b;   /* NaN = 0 */
        int64_t first = k * inner;
        for (int64_t j = first; j < first + inner; j++)
            lv_store_double(lv_tensor_data(out), out->dtype, j,
                            lv_tensor_get_linear(src, j));
    }
    return out;
}
