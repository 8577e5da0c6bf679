/*
 * estimators.h -- the parts of SPEC §4's estimators that must not grow
 * with the number of importance samples: a streaming log-mean-exp of the
 * weights per datapoint (with the effective sample size of the normalised
 * weights, also streaming), the chunked NLL driver over a log-weight
 * callback, and the row selection of a Metropolis step (AIS).
 *
 * Shape legend: S = importance samples, n = samples in one chunk,
 * B = datapoints, R = repeated runs, ... = trailing dims.
 *
 * The log weights come from the caller through lv_log_weight_fn (the Lua
 * binding calls model:log_weight), so this file knows nothing of Lua or
 * of models. Nothing here records on the tape: the NLL and the ESS are
 * reported numbers, not losses (the differentiable ELBO and IWAE bounds
 * are tensor ops in lua/lvae/estimators.lua).
 */
#ifndef LV_ESTIMATORS_H
#define LV_ESTIMATORS_H

#include <stdint.h>

#include "tensor.h"

/* Per datapoint b, over the samples seen so far (w = exp(log w)):
 *
 *     max[b]  = max_s log w_sb                     (-inf before any)
 *     sum[b]  = Σ_s exp(log w_sb - max[b])
 *     sum2[b] = Σ_s exp(2 (log w_sb - max[b]))
 *
 * so log mean w = max + log(sum / count) and ESS = sum² / sum2, with no
 * exp of a large number and memory O(B) whatever S is. A NaN weight makes
 * its datapoint's results NaN; +inf makes log mean +inf (and ESS NaN). */
typedef struct lv_lse_stream {
    int64_t n;                  /* datapoints B */
    int64_t count;              /* samples seen per datapoint */
    double *max, *sum, *sum2;   /* [B] each */
    unsigned char *bad;         /* [B]: 1 = saw NaN, 2 = saw +inf */
    double *column;             /* scratch: one chunk's column */
    int64_t column_size;
} lv_lse_stream;

/* Makes an empty stream for n datapoints. Returns 0, or -1 with lv_error
 * (out of memory). */
int lv_lse_stream_init(lv_lse_stream *s, int64_t n);
/* Forgets the samples seen (keeps the memory). */
void lv_lse_stream_reset(lv_lse_stream *s);
/* Frees what init allocated; tolerates a zeroed or freed stream. */
void lv_lse_stream_free(lv_lse_stream *s);
/* Adds a chunk log_w [n, B] (any dtype and strides; borrowed). Returns 0,
 * or -1 with lv_error (wrong shape, out of memory). */
int lv_lse_stream_update(lv_lse_stream *s, const lv_tensor *log_w);
/* log (1/count Σ_s w_sb) into out [B]; NaN for every b before any sample. */
void lv_lse_stream_log_mean(const lv_lse_stream *s, double *out);
/* (Σ_s w_sb)² / Σ_s w_sb² into out [B]: count for equal weights, 1 for
 * one dominant weight; NaN before any sample or when every weight is 0. */
void lv_lse_stream_ess(const lv_lse_stream *s, double *out);

/* Fills *log_w with a new reference to a tensor [n, B] of log weights of
 * n fresh importance samples for each of the B datapoints. Returns 0, or
 * -1 with lv_error set (the callback's own error is the caller's to keep). */
typedef int (*lv_log_weight_fn)(void *ctx, int64_t n, lv_tensor **log_w);

/* SPEC §4 nll: R runs; in each, S importance samples per datapoint are
 * drawn in chunks of at most `chunk` (fn is called with n <= chunk and
 * the chunk is released before the next call), so memory is bounded by
 * the chunk whatever S is. Writes, for run r and datapoint b,
 *
 *     nll[r * B + b] = -log (1/S Σ_s w_sb)      [R, B]
 *     ess[r * B + b] = (Σ_s w_sb)² / Σ_s w_sb²  [R, B]
 *
 * Returns 0, or -1 with lv_error (bad sizes, a failing callback, a chunk
 * of the wrong shape). */
int lv_estimators_nll(double *nll, double *ess, lv_log_weight_fn fn,
                      void *ctx, int64_t B, int64_t S, int64_t chunk,
                      int R);

/* ESS over dim 0 of log_w [S] or [S, B] (borrowed), into out [B] (one
 * value for [S]). Returns 0, or -1 with lv_error. */
int lv_estimators_ess(double *out, const lv_tensor *log_w);

/* The rows of a where mask is non-zero, those of b elsewhere: mask has
 * the leading dims of a (mask [...lead], a and b [...lead, ...]); a and b
 * share shape and dtype. The unselected operand's values never reach the
 * result (a NaN or inf proposal that is rejected stays out, which an
 * arithmetic blend m a + (1 - m) b cannot promise). Off the tape. Borrows
 * its inputs; returns a new contiguous reference, or NULL with lv_error. */
lv_tensor *lv_estimators_select(const lv_tensor *mask, const lv_tensor *a,
                                const lv_tensor *b);

#endif
