/*
 * distributed.c -- see distributed.h. With LV_HAVE_MPI the collectives are
 * Open MPI's on MPI_COMM_WORLD, whose errors are returned (not fatal) and
 * become lv_error messages; without it, the one-process job.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "distributed.h"
#include "error.h"

#ifdef LV_HAVE_MPI
#include <dlfcn.h>
#include <mpi.h>
#endif

#define DEFAULT_BUCKET_BYTES ((size_t)4 << 20)

static int joined;                 /* lv_dist_init succeeded */
#ifdef LV_HAVE_MPI
static int mpi_started;            /* and this process called MPI_Init */
#endif
static int job_rank, job_size = 1;
static double comm_seconds, reduced_bytes;


int lv_dist_compiled(void)
{
#ifdef LV_HAVE_MPI
    return 1;
#else
    return 0;
#endif
}

int lv_dist_launched(void)
{
    /* Open MPI's mpirun sets OMPI_COMM_WORLD_SIZE; srun --mpi=pmix sets
     * PMIX_RANK (and Slurm's SLURM_NTASKS, which alone is no MPI job). */
    const char *n = getenv("OMPI_COMM_WORLD_SIZE");
    if (n && atoi(n) > 1)
        return 1;
    return getenv("PMIX_RANK") != NULL && getenv("SLURM_NTASKS") != NULL
           && atoi(getenv("SLURM_NTASKS")) > 1;
}

int lv_dist_active(void) { return joined && job_size > 1; }
int lv_dist_rank(void) { return job_rank; }
int lv_dist_size(void) { return job_size; }
double lv_dist_comm_seconds(void) { return comm_seconds; }
double lv_dist_allreduce_bytes(void) { return reduced_bytes; }

void lv_dist_reset_counters(void)
{
    comm_seconds = 0;
    reduced_bytes = 0;
}

/* A contiguous copy of a contiguous t: the one-process allgather. */
static lv_tensor *copy_of(const lv_tensor *t)
{
    lv_tensor *c = lv_tensor_empty(t->dtype, t->ndim, t->shape);
    if (c)
        memcpy(lv_tensor_data(c), lv_tensor_data(t),
               (size_t)lv_tensor_numel(t) * lv_dtype_size(t->dtype));
    return c;
}

static int check_tensors(lv_tensor *const *ts, int n, const char *what)
{
    for (int i = 0; i < n; i++) {
        if (!ts[i])
            return lv_error_set(0, "%s: tensor %d is missing", what, i + 1);
        if (!lv_tensor_is_contiguous(ts[i]))
            return lv_error_set(0, "%s: tensor %d is not contiguous", what, i + 1);
    }
    return 0;
}

#ifdef LV_HAVE_MPI

static int mpi_fail(int code, const char *what)
{
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(code, msg, &len);
    return lv_error_set(0, "%s failed on rank %d of %d: %.*s", what, job_rank,
                        job_size, len, msg);
}

#define MPI_CHECK(call, what)                       \
    do {                                            \
        int rc_ = (call);                           \
        if (rc_ != MPI_SUCCESS)                     \
            return mpi_fail(rc_, what);             \
    } while (0)

static MPI_Datatype mpi_type(lv_dtype dtype)
{
    return dtype == LV_DTYPE_F64 ? MPI_DOUBLE : MPI_FLOAT;
}

static MPI_Op mpi_op(lv_dist_op op)
{
    return op == LV_DIST_MAX ? MPI_MAX : op == LV_DIST_MIN ? MPI_MIN : MPI_SUM;
}
#endif

int lv_dist_init(void)
{
    if (joined)
        return 0;
#ifndef LV_HAVE_MPI
    if (lv_dist_launched())
        return lv_error_set(0, "this process was started as one of several MPI "
                            "ranks, but lvae was built without Open MPI "
                            "(install libopenmpi-dev, then rebuild with make)");
    joined = 1;
    return 0;
#else
    /* Not started by mpirun (or started as its only rank): a one-process
     * job, without MPI_Init's singleton start-up. */
    if (!lv_dist_launched()) {
        joined = 1;
        return 0;
    }
    /* MPI starts once per process: after MPI_Finalize even
     * MPI_Comm_set_errhandler aborts the job. */
    int already = 0, finalized = 0;
    MPI_Finalized(&finalized);
    if (finalized)
        return lv_error_set(0, "this process has left the job (lv.mpi.finalize), "
                            "and MPI cannot be joined twice in one process");
    MPI_Initialized(&already);
    if (!already) {
        /* The module is dlopen'ed by Lua with local symbols; Open MPI's
         * components, loaded later, need libmpi's symbols global. */
        if (!dlopen("libmpi.so.40", RTLD_NOW | RTLD_GLOBAL | RTLD_NOLOAD))
            dlopen("libmpi.so", RTLD_NOW | RTLD_GLOBAL | RTLD_NOLOAD);
        /* Open MPI 4.1's non-blocking all-reduce (libnbc) picks a binomial
         * tree below 4 ranks and for every in-place call, which moves each
         * byte log2(N) times through one rank: a 5 MB gradient took
         * 11 ms between 2 ranks here, 1.9 ms with the ring (see
         * BENCHMARKS.md, "Data-parallel training"). The ring is the
         * default for our buckets; a value the user set wins (no
         * overwrite), and an MPI other than Open MPI ignores it. */
        setenv("OMPI_MCA_coll_libnbc_iallreduce_algorithm", "1", 0);
        int provided;
        if (MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
            return lv_error_set(0, "MPI_Init failed (is this process started by mpirun?)");
        mpi_started = 1;
    }
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &job_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &job_size);
    joined = 1;
    return 0;
#endif
}

int lv_dist_finalize(void)
{
    if (!joined)
        return 0;
    joined = 0;
    job_rank = 0;
    job_size = 1;
#ifdef LV_HAVE_MPI
    if (!mpi_started)
        return 0;
    mpi_started = 0;
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized)
        MPI_CHECK(MPI_Finalize(), "MPI_Finalize");
#endif
    return 0;
}

void lv_dist_abort(int code)
{
    /* exit flushes stdio, MPI_Abort kills without it: what the caller
     * wrote first (its reason for stopping, its log) must not be lost */
    fflush(NULL);
#ifdef LV_HAVE_MPI
    int finalized = 1;
    MPI_Finalized(&finalized);
    if (lv_dist_active() && !finalized)
        MPI_Abort(MPI_COMM_WORLD, code);
#endif
    exit(code);
}

#ifdef LV_HAVE_MPI
/* The flat buffer of lv_dist_allreduce, kept between calls (a training
 * step reduces the same gradients every time). */
static void *flat;
static size_t flat_bytes;

static void *flat_buffer(size_t bytes)
{
    if (bytes > flat_bytes) {
        void *p = realloc(flat, bytes);
        if (!p)
            return NULL;
        flat = p;
        flat_bytes = bytes;
    }
    return flat;
}

/* Reduces the tensors ts[0..n) (all of one dtype) through the flat
 * buffer, bucket by bucket: bucket b's reduction runs while bucket b + 1
 * is packed; each bucket is unpacked once it is done. */
static int allreduce_dtype(lv_tensor *const *ts, int n, lv_dtype dtype,
                           lv_dist_op op, size_t bucket_bytes)
{
    size_t esize = lv_dtype_size(dtype), total = 0;
    for (int i = 0; i < n; i++)
        if (ts[i]->dtype == dtype)
            total += (size_t)lv_tensor_numel(ts[i]);
    if (total == 0)
        return 0;
    char *buf = flat_buffer(total * esize);
    if (!buf)
        return lv_error_set(0, "allreduce: out of memory for a %zu-byte buffer",
                            total * esize);
    size_t per_bucket = bucket_bytes / esize ? bucket_bytes / esize : 1;
    if (per_bucket > INT32_MAX)          /* MPI counts are ints */
        per_bucket = INT32_MAX;
    size_t nbuckets = (total + per_bucket - 1) / per_bucket;
    MPI_Request req[64];
    int pending = 0;
    size_t packed = 0;                   /* elements in the buffer so far */
    int ti = 0;
    int64_t tpos = 0;                    /* within tensor ti */
    for (size_t b = 0; b < nbuckets; b++) {
        size_t lo = b * per_bucket;
        size_t hi = lo + per_bucket < total ? lo + per_bucket : total;
        while (packed < hi) {            /* copy tensor pieces in */
            while (ts[ti]->dtype != dtype || tpos == lv_tensor_numel(ts[ti])) {
                ti++;
                tpos = 0;
            }
            size_t take = (size_t)(lv_tensor_numel(ts[ti]) - tpos);
            if (take > hi - packed)
                take = hi - packed;
            memcpy(buf + packed * esize,
                   (char *)lv_tensor_data(ts[ti]) + (size_t)tpos * esize,
                   take * esize);
            packed += take;
            tpos += (int64_t)take;
        }
        if (pending == 64) {
            MPI_CHECK(MPI_Waitall(pending, req, MPI_STATUSES_IGNORE), "allreduce");
            pending = 0;
        }
        MPI_CHECK(MPI_Iallreduce(MPI_IN_PLACE, buf + lo * esize, (int)(hi - lo),
                                 mpi_type(dtype), mpi_op(op), MPI_COMM_WORLD,
                                 &req[pending]),
                  "allreduce");
        pending++;
    }
    MPI_CHECK(MPI_Waitall(pending, req, MPI_STATUSES_IGNORE), "allreduce");
    size_t at = 0;
    for (int i = 0; i < n; i++) {
        if (ts[i]->dtype != dtype)
            continue;
        size_t m = (size_t)lv_tensor_numel(ts[i]);
        memcpy(lv_tensor_data(ts[i]), buf + at * esize, m * esize);
        at += m;
    }
    reduced_bytes += (double)(total * esize);
    return 0;
}
#endif

int lv_dist_allreduce(lv_tensor *const *ts, int n, lv_dist_op op,
                      size_t bucket_bytes)
{
    if (check_tensors(ts, n, "allreduce") != 0)
        return -1;
    if (!lv_dist_active())
        return 0;
    int rc = 0;
#ifdef LV_HAVE_MPI
    if (bucket_bytes == 0)
        bucket_bytes = DEFAULT_BUCKET_BYTES;
    double t0 = lv_clock_seconds();
    for (int d = 0; d < LV_DTYPE_COUNT && rc == 0; d++)
        rc = allreduce_dtype(ts, n, (lv_dtype)d, op, bucket_bytes);
    comm_seconds += lv_clock_seconds() - t0;
#endif
    return rc;
}

int lv_dist_broadcast(lv_tensor *const *ts, int n, int root)
{
    if (check_tensors(ts, n, "broadcast") != 0)
        return -1;
    if (root < 0 || root >= job_size)
        return lv_error_set(0, "broadcast: root %d is not a rank of this job "
                            "(0 to %d)", root, job_size - 1);
    if (!lv_dist_active())
        return 0;
#ifdef LV_HAVE_MPI
    double t0 = lv_clock_seconds();
    for (int i = 0; i < n; i++) {
        int64_t m = lv_tensor_numel(ts[i]);
        if (m > INT32_MAX)
            return lv_error_set(0, "broadcast: tensor %d is too large", i + 1);
        MPI_CHECK(MPI_Bcast(lv_tensor_data(ts[i]), (int)m, mpi_type(ts[i]->dtype),
                            root, MPI_COMM_WORLD),
                  "broadcast");
    }
    comm_seconds += lv_clock_seconds() - t0;
#endif
    return 0;
}

lv_tensor *lv_dist_allgather(const lv_tensor *t)
{
    lv_tensor *const one[1] = {(lv_tensor *)t};
    if (check_tensors(one, 1, "allgather") != 0)
        return NULL;
    if (t->ndim < 1) {
        lv_error_set(0, "allgather: needs a tensor of at least one dimension");
        return NULL;
    }
    if (!lv_dist_active())
        return copy_of(t);
#ifdef LV_HAVE_MPI
    double t0 = lv_clock_seconds();
    /* every rank's leading size, and a check that the rest agree */
    int64_t mine[2 + LV_MAX_DIMS] = {t->shape[0], t->dtype, t->ndim};
    for (int d = 1; d < t->ndim; d++)
        mine[2 + d] = t->shape[d];
    int64_t *all = calloc((size_t)job_size, sizeof mine);
    int *counts = calloc((size_t)job_size, sizeof *counts);
    int *displs = calloc((size_t)job_size, sizeof *displs);
    lv_tensor *out = NULL;
    if (!all || !counts || !displs) {
        lv_error_set(0, "allgather: out of memory");
        goto done;
    }
    int rc = MPI_Allgather(mine, (int)sizeof mine, MPI_BYTE, all, (int)sizeof mine,
                           MPI_BYTE, MPI_COMM_WORLD);
    if (rc != MPI_SUCCESS) {
        mpi_fail(rc, "allgather");
        goto done;
    }
    int64_t rows = 0, row_len = lv_tensor_numel(t) / (t->shape[0] ? t->shape[0] : 1);
    if (t->shape[0] == 0) {
        row_len = 1;
        for (int d = 1; d < t->ndim; d++)
            row_len *= t->shape[d];
    }
    for (int r = 0; r < job_size; r++) {
        int64_t *a = all + (size_t)r * (2 + LV_MAX_DIMS);
        if (memcmp(a + 1, mine + 1, sizeof mine - sizeof mine[0]) != 0) {
            lv_error_set(0, "allgather: rank %d's tensor differs from rank %d's "
                         "in dtype or in a dimension after the first", r, job_rank);
            goto done;
        }
        if ((a[0] + rows) * row_len > INT32_MAX) {
            lv_error_set(0, "allgather: the gathered tensor is too large");
            goto done;
        }
        counts[r] = (int)(a[0] * row_len);
        displs[r] = (int)(rows * row_len);
        rows += a[0];
    }
    int64_t shape[LV_MAX_DIMS];
    memcpy(shape, t->shape, sizeof(int64_t) * (size_t)t->ndim);
    shape[0] = rows;
    out = lv_tensor_empty(t->dtype, t->ndim, shape);
    if (!out)
        goto done;
    rc = MPI_Allgatherv(lv_tensor_data(t), counts[job_rank], mpi_type(t->dtype),
                        lv_tensor_data(out), counts, displs, mpi_type(t->dtype),
                        MPI_COMM_WORLD);
    if (rc != MPI_SUCCESS) {
        mpi_fail(rc, "allgather");
        lv_tensor_release(out);
        out = NULL;
    }
done:
    free(all);
    free(counts);
    free(displs);
    comm_seconds += lv_clock_seconds() - t0;
    return out;
#else
    return NULL;
#endif
}

int lv_dist_allreduce_doubles(double *v, int n, lv_dist_op op)
{
    if (!lv_dist_active() || n <= 0)
        return 0;
#ifdef LV_HAVE_MPI
    double t0 = lv_clock_seconds();
    MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, v, n, MPI_DOUBLE, mpi_op(op), MPI_COMM_WORLD),
              "allreduce");
    comm_seconds += lv_clock_seconds() - t0;
#endif
    return 0;
}

int lv_dist_allgather_bytes(const void *mine, size_t len, void *all)
{
    if (!lv_dist_active()) {
        memcpy(all, mine, len);
        return 0;
    }
#ifdef LV_HAVE_MPI
    if (len > INT32_MAX)
        return lv_error_set(0, "allgather: %zu bytes is too many", len);
    MPI_CHECK(MPI_Allgather(mine, (int)len, MPI_BYTE, all, (int)len, MPI_BYTE,
                            MPI_COMM_WORLD),
              "allgather");
#endif
    return 0;
}

#ifdef LV_HAVE_MPI
_Static_assert(sizeof(MPI_Request) <= sizeof(((lv_dist_request *)0)->handle),
               "lv_dist_request holds an MPI_Request");
#endif

int lv_dist_iallreduce(void *buf, size_t n, lv_dtype dtype, lv_dist_op op,
                       lv_dist_request *req)
{
    req->active = 0;
    if (!lv_dist_active() || n == 0)
        return 0;
    if (n > INT32_MAX)
        return lv_error_set(0, "allreduce: %zu values in one reduction is too many", n);
#ifdef LV_HAVE_MPI
    double t0 = lv_clock_seconds();
    MPI_Request r;
    MPI_CHECK(MPI_Iallreduce(MPI_IN_PLACE, buf, (int)n, mpi_type(dtype), mpi_op(op),
                             MPI_COMM_WORLD, &r),
              "allreduce");
    memcpy(req->handle, &r, sizeof r);
    req->active = 1;
    reduced_bytes += (double)(n * lv_dtype_size(dtype));
    comm_seconds += lv_clock_seconds() - t0;
#endif
    return 0;
}

/* MPI_Test (block = 0) or MPI_Wait on a request in flight. */
static int complete(lv_dist_request *req, int block)
{
    if (!req->active)
        return 0;
#ifdef LV_HAVE_MPI
    double t0 = lv_clock_seconds();
    MPI_Request r;
    memcpy(&r, req->handle, sizeof r);
    int done = 1;
    if (block)
        MPI_CHECK(MPI_Wait(&r, MPI_STATUS_IGNORE), "allreduce");
    else
        MPI_CHECK(MPI_Test(&r, &done, MPI_STATUS_IGNORE), "allreduce");
    memcpy(req->handle, &r, sizeof r);
    req->active = !done;
    comm_seconds += lv_clock_seconds() - t0;
#else
    (void)block;
#endif
    return 0;
}

int lv_dist_test(lv_dist_request *req) { return complete(req, 0); }

int lv_dist_wait(lv_dist_request *req) { return complete(req, 1); }

int lv_dist_barrier(void)
{
    if (!lv_dist_active())
        return 0;
#ifdef LV_HAVE_MPI
    MPI_CHECK(MPI_Barrier(MPI_COMM_WORLD), "barrier");
#endif
    return 0;
}
