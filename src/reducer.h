/*
 * reducer.h -- the gradients of data-parallel training, combined across
 * the processes of a job while the backward pass is still running.
 *
 * A reducer is made once for a list of parameters. Taken last first (the
 * order in which a backward pass finishes their gradients), they are
 * grouped into buckets of one dtype and at most bucket_bytes each (a
 * larger parameter has a bucket of its own), each bucket one flat buffer.
 * In a step, lv_reducer_ready(r, j, g) -- an lv_grad_ready_fn for
 * lv_backward's on_ready -- puts weight x g in parameter j's place in its
 * bucket (where g already is when the pass summed it there:
 * lv_reducer_buffer); the call that completes a bucket starts its all-reduce (a sum,
 * lv_dist_iallreduce), and every later call lets the ones in flight
 * progress, so that sending overlaps the rest of the pass.
 * lv_reducer_finish starts what is left (a gradient this process lacks
 * counts as zero), waits, and gives each parameter's combined gradient:
 * the sum over processes of weight x gradient, or NULL when no process had
 * one (a parameter no loss used). With one process: weight x g.
 *
 * weight is the process's share of the batch's rows, so that losses that
 * are means over rows combine into the mean over the whole batch.
 *
 * Not here: MPI itself (distributed.c), which rows a process holds
 * (lua/lvae/distributed.lua).
 */
#ifndef LV_REDUCER_H
#define LV_REDUCER_H

#include <stddef.h>

#include "tensor.h"

typedef struct lv_reducer lv_reducer;

/* params[0..n) (f32 or f64, any shapes; only their dtypes and shapes are
 * kept); bucket_bytes 0 takes 4 MiB. NULL with lv_error set on bad input
 * or no memory. */
lv_reducer *lv_reducer_new(lv_tensor *const *params, int n, size_t bucket_bytes);
void lv_reducer_free(lv_reducer *r);

/* Starts a step whose gradients are scaled by weight. */
void lv_reducer_begin(lv_reducer *r, double weight);
/* Gradient j (0-based) of this step is final: grad is borrowed. A second
 * call for the same j in a step is ignored. A failure (a gradient of the
 * wrong dtype or size, MPI's error) is kept for lv_reducer_finish. */
void lv_reducer_ready(void *r, int j, const lv_tensor *grad);
/* Waits for every bucket; out[j] is a new reference to parameter j's
 * combined gradient or NULL: a tensor of its own, or with views, a view
 * of its place in the bucket, which the next step overwrites (for an
 * optimizer that uses it at once). Returns 0, or -1 with lv_error set
 * (the step's first failure). Every process must call it once per step. */
int lv_reducer_finish(lv_reducer *r, lv_tensor **out, int views);

/* Parameter j's place in its bucket, in the parameter's shape (borrowed;
 * NULL for no such j): an lv_backward_opts.into buffer, so that the pass
 * sums the gradient where it is sent from and lv_reducer_ready only
 * weights it. void *ctx: the reducer, as lv_reducer_ready takes it. */
lv_tensor *lv_reducer_buffer(void *ctx, int j);

int lv_reducer_buckets(const lv_reducer *r);

#endif
