/*
 * distributed.h -- processes working on one job: Open MPI's collectives
 * over tensors, for data-parallel training and sharded evaluation.
 *
 * The toolkit builds with or without Open MPI (the Makefile defines
 * LV_HAVE_MPI when Debian's libopenmpi-dev is installed). Without it, or
 * before lv_dist_init, the job is one process: rank 0 of 1, and every
 * collective is what it would be with one rank (a sum of one term, a
 * broadcast to oneself, a gather of one piece).
 *
 * Why a core file: the collectives are the communication of a training
 * step, timed here (lv_dist_comm_seconds) and kept out of Lua's hands, so
 * the binding (lua_mpi.c) only converts arguments.
 *
 * Tensors passed here must be contiguous, f32 or f64, and alike across
 * ranks (same dtypes and sizes in the same order): MPI cannot check that,
 * so callers agree on it first (the runner compares its options and the
 * parameter shapes before training). Every function returns 0, or -1 with
 * lv_error set.
 *
 * Not here: Lua, deciding what is split how (lua/lvae/distributed.lua).
 */
#ifndef LV_DISTRIBUTED_H
#define LV_DISTRIBUTED_H

#include <stddef.h>

#include "tensor.h"

typedef enum lv_dist_op { LV_DIST_SUM, LV_DIST_MAX, LV_DIST_MIN } lv_dist_op;

/* Whether this build has Open MPI. */
int lv_dist_compiled(void);
/* Whether the environment says this process was started by mpirun (or by
 * Slurm's srun with PMIx) as one of several. */
int lv_dist_launched(void);
/* Joins the job (MPI_Init_thread); a no-op after the first call. After
 * lv_dist_finalize under mpirun it is an error: MPI cannot be joined twice. */
int lv_dist_init(void);
/* Whether lv_dist_init has joined a job of MPI processes. */
int lv_dist_active(void);
int lv_dist_rank(void);
int lv_dist_size(void);

/* Each tensor becomes the elementwise op over all ranks' copies, in
 * place. The tensors are packed into one flat buffer per dtype and
 * reduced in buckets of at most bucket_bytes (0: a default of 4 MiB), each
 * bucket's reduction started while the next is packed. */
int lv_dist_allreduce(lv_tensor *const *ts, int n, lv_dist_op op,
                      size_t bucket_bytes);
/* Every rank's tensors become root's. */
int lv_dist_broadcast(lv_tensor *const *ts, int n, int root);
/* Every rank's t, concatenated in rank order along dimension 0, on every
 * rank (the other dimensions must agree; checked). New reference. */
lv_tensor *lv_dist_allgather(const lv_tensor *t);
/* v[0..n) becomes the op over all ranks' v, in place. */
int lv_dist_allreduce_doubles(double *v, int n, lv_dist_op op);
/* all[r len .. (r + 1) len) = rank r's `mine`, on every rank. */
int lv_dist_allgather_bytes(const void *mine, size_t len, void *all);
int lv_dist_barrier(void);
/* Stops every process of the job with exit status code (exit(code) with
 * one process). Does not return. */
void lv_dist_abort(int code);
/* Leaves the job; later collectives act as with one process. */
int lv_dist_finalize(void);

/* A reduction in flight (lv_dist_iallreduce): MPI's request, opaque here
 * so that callers need not see mpi.h. */
typedef struct lv_dist_request {
    unsigned char handle[16];
    int active;             /* started and not yet complete */
} lv_dist_request;

/* Starts the in-place op over all ranks' buf[0..n) (n <= INT32_MAX) of
 * dtype; req->active stays 0 when there is nothing to wait for (one
 * process). lv_dist_test progresses it and clears active once complete;
 * lv_dist_wait blocks until then. */
int lv_dist_iallreduce(void *buf, size_t n, lv_dtype dtype, lv_dist_op op,
                       lv_dist_request *req);
int lv_dist_test(lv_dist_request *req);
int lv_dist_wait(lv_dist_request *req);

/* Seconds spent in collectives since the start (or the last reset), and
 * the bytes this rank sent to allreduce; the benchmarks read them. */
double lv_dist_comm_seconds(void);
double lv_dist_allreduce_bytes(void);
void lv_dist_reset_counters(void);

#endif
