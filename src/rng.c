/*
 * rng.c -- Philox4x32-10 and the uniform, normal and Bernoulli fills built
 * on it (see rng.h for the contract).
 *
 * The story of a fill, top to bottom:
 *   1. the public function (lv_rng_uniform, ...) packs its arguments into a
 *      fill_job and picks the block kernel for its kind and dtype;
 *   2. run_fill cuts the blocks [0, nblocks) into chunks -- across OpenMP
 *      threads when built with -fopenmp and n is large, else in one go;
 *   3. a block kernel turns block b (Philox of counter offset + b) into
 *      elements [b k, b k + k) of the output.
 * Because step 3 depends only on (seed, offset, b), step 2's cutting cannot
 * change a single value: the same seed gives the same numbers whatever the
 * thread count.
 *
 * Not here: Lua, tensors, argument checking (lua_rng.c does those).
 */
#include <inttypes.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "rng.h"

/* ---- Philox4x32-10 ---------------------------------------------------- */

/* The round multipliers and the Weyl key increments (golden ratio and
 * sqrt(3) - 1, as 32-bit fractions), as published by Salmon et al. */
#define PHILOX_M0 UINT32_C(0xD2511F53)
#define PHILOX_M1 UINT32_C(0xCD9E8D57)
#define PHILOX_W0 UINT32_C(0x9E3779B9)
#define PHILOX_W1 UINT32_C(0xBB67AE85)

/* One round: two 32x32->64 multiplies; their high halves are mixed with
 * the other two words and the key, and the words are permuted. */
static inline void philox_round(uint32_t c[4], uint32_t k0, uint32_t k1)
{
    uint64_t p0 = (uint64_t)PHILOX_M0 * c[0];
    uint64_t p1 = (uint64_t)PHILOX_M1 * c[2];
    uint32_t hi0 = (uint32_t)(p0 >> 32), lo0 = (uint32_t)p0;
    uint32_t hi1 = (uint32_t)(p1 >> 32), lo1 = (uint32_t)p1;
    uint32_t c1 = c[1], c3 = c[3];
    c[0] = hi1 ^ c1 ^ k0;
    c[1] = lo1;
    c[2] = hi0 ^ c3 ^ k1;
    c[3] = lo0;
}

void lv_philox4x32_10(uint32_t out[4], const uint32_t ctr[4],
                      const uint32_t key[2])
{
    uint32_t c[4] = {ctr[0], ctr[1], ctr[2], ctr[3]};
    uint32_t k0 = key[0], k1 = key[1];
    /* Ten rounds; the key is bumped between rounds (nine bumps). */
    for (int r = 0; r < 10; r++) {
        if (r > 0) {
            k0 += PHILOX_W0;
            k1 += PHILOX_W1;
        }
        philox_round(c, k0, k1);
    }
    out[0] = c[0];
    out[1] = c[1];
    out[2] = c[2];
    out[3] = c[3];
}

/* ---- generators ------------------------------------------------------- */

static lv_generator default_generator = {.seed = LV_GENERATOR_DEFAULT_SEED};

void lv_generator_seed(lv_generator *g, uint64_t seed)
{
    g->seed = seed;
    g->offset = 0;
}

lv_generator *lv_generator_default(void) { return &default_generator; }

void lv_generator_get_state(const lv_generator *g, uint64_t *seed,
                            uint64_t *offset)
{
    *seed = g->seed;
    *offset = g->offset;
}

void lv_generator_set_state(lv_generator *g, uint64_t seed, uint64_t offset)
{
    g->seed = seed;
    g->offset = offset;
}

/* ---- from random words to numbers ------------------------------------- */

/* [0, 1) with 24 random bits: exactly the floats k 2^-24. */
static inline float unit_f32(uint32_t w)
{
    return (float)(w >> 8) * 0x1p-24f;
}

/* [0, 1) with 53 random bits (27 from a, 26 from b): exactly the doubles
 * k 2^-53, as many as a double's mantissa can hold uniformly. */
static inline uint64_t bits53(uint32_t a, uint32_t b)
{
    return ((uint64_t)(a >> 5) << 26) | (uint64_t)(b >> 6);
}

static inline double unit_f64(uint32_t a, uint32_t b)
{
    return (double)bits53(a, b) * 0x1p-53;
}

/* Box-Muller: two independent N(0, 1) from u1 in (0, 1] and u2 in [0, 1).
 * u1 excludes 0 so that log(u1) is finite. */
static inline void box_muller(double *z0, double *z1, double u1, double u2)
{
    const double two_pi = 6.283185307179586476925286766559;
    double r = sqrt(-2.0 * log(u1));
    double theta = two_pi * u2;
    *z0 = r * cos(theta);
    *z1 = r * sin(theta);
}

/* ---- block kernels ---------------------------------------------------- */

/* What every block kernel needs; read-only while the kernels run. */
typedef struct fill_job {
    void *out;
    int64_t first;        /* the draw's element that out[0] holds */
    int64_t n;            /* values to write: elements [first, first + n) */
    uint64_t seed;        /* generator's key */
    uint64_t base;        /* generator's offset at the start of the draw */
    const void *p;        /* Bernoulli: per-element probabilities or NULL */
    double p_scalar;      /* Bernoulli: probability when p is NULL */
    double mean, std;     /* normal */
} fill_job;

/* Fills the elements of blocks [b0, b1). */
typedef void (*fill_blocks_fn)(const fill_job *job, int64_t b0, int64_t b1);

/* The 4 words of block b of this draw. */
static inline void block_words(uint32_t w[4], const fill_job *job, int64_t b)
{
    uint64_t counter = job->base + (uint64_t)b;   /* wraps mod 2^64 */
    uint32_t ctr[4] = {(uint32_t)counter, (uint32_t)(counter >> 32), 0, 0};
    uint32_t key[2] = {(uint32_t)job->seed, (uint32_t)(job->seed >> 32)};
    lv_philox4x32_10(w, ctr, key);
}

/* The two f64 uniforms of block b (53 bits each, words 0-1 and 2-3): the
 * draws of uniform_f64 and of bernoulli_f64. */
static inline void block_units_f64(double u[2], const fill_job *job, int64_t b)
{
    uint32_t w[4];
    block_words(w, job, b);
    u[0] = unit_f64(w[0], w[1]);
    u[1] = unit_f64(w[2], w[3]);
}

/* Which of block b's k values land in the output: lanes [*t0, *t1) of the
 * block (the window's first and last blocks may be cut short). Returns
 * where lane 0 would go: lane t goes to out[returned + t], that is
 * out[b k + t - first]. */
static inline int64_t block_lanes(const fill_job *job, int64_t b, int k,
                                  int *t0, int *t1)
{
    int64_t lo = job->first - b * k, hi = job->first + job->n - b * k;
    *t0 = lo > 0 ? (int)lo : 0;
    *t1 = hi < k ? (int)hi : k;
    return -lo;
}

static void uniform_f32_blocks(const fill_job *job, int64_t b0, int64_t b1)
{
    float *out = job->out;
    for (int64_t b = b0; b < b1; b++) {
        uint32_t w[4];
        block_words(w, job, b);
        int t0, t1;
        int64_t i = block_lanes(job, b, 4, &t0, &t1);
        for (int t = t0; t < t1; t++)
            out[i + t] = unit_f32(w[t]);
    }
}

static void uniform_f64_blocks(const fill_job *job, int64_t b0, int64_t b1)
{
    double *out = job->out;
    for (int64_t b = b0; b < b1; b++) {
        double v[2];
        block_units_f64(v, job, b);
        int t0, t1;
        int64_t i = block_lanes(job, b, 2, &t0, &t1);
        for (int t = t0; t < t1; t++)
            out[i + t] = v[t];
    }
}

/* f32 normals: each pair of 32-bit words is one Box-Muller pair. 32 bits
 * (not 24) feed the logarithm so the tails reach ~6.7 sigma. */
static void normal_f32_blocks(const fill_job *job, int64_t b0, int64_t b1)
{
    float *out = job->out;
    for (int64_t b = b0; b < b1; b++) {
        uint32_t w[4];
        block_words(w, job, b);
        double z[4];
        for (int h = 0; h < 2; h++) {
            double u1 = ((double)w[2 * h] + 1.0) * 0x1p-32;    /* (0, 1] */
            double u2 = (double)w[2 * h + 1] * 0x1p-32;        /* [0, 1) */
            box_muller(&z[2 * h], &z[2 * h + 1], u1, u2);
        }
        int t0, t1;
        int64_t i = block_lanes(job, b, 4, &t0, &t1);
        for (int t = t0; t < t1; t++)
            out[i + t] = (float)(job->mean + job->std * z[t]);
    }
}

/* f64 normals: 53-bit u1 (shifted to (0, 1]) and u2 make one pair. */
static void normal_f64_blocks(const fill_job *job, int64_t b0, int64_t b1)
{
    double *out = job->out;
    for (int64_t b = b0; b < b1; b++) {
        uint32_t w[4];
        block_words(w, job, b);
        double u1 = (double)(bits53(w[0], w[1]) + 1) * 0x1p-53;  /* (0, 1] */
        double u2 = unit_f64(w[2], w[3]);                        /* [0, 1) */
        double z[2];
        box_muller(&z[0], &z[1], u1, u2);
        int t0, t1;
        int64_t i = block_lanes(job, b, 2, &t0, &t1);
        for (int t = t0; t < t1; t++)
            out[i + t] = job->mean + job->std * z[t];
    }
}

/* Bernoulli: 1 when u < p. u takes all 2^32 (f32) or 2^53 (f64) values of
 * [0, 1), so p = 0 never fires, p = 1 always does, and the bias on any
 * other p is below 2^-32 (resp. 2^-53). For f32 the comparison is done in
 * double: a 24-bit uniform would turn p = 1e-9 into p = 2^-24. Each p[i]
 * is read before out[i] is written, which is what makes p == out safe. */
static void bernoulli_f32_blocks(const fill_job *job, int64_t b0, int64_t b1)
{
    float *out = job->out;
    const float *p = job->p;
    for (int64_t b = b0; b < b1; b++) {
        uint32_t w[4];
        block_words(w, job, b);
        int t0, t1;
        int64_t i = block_lanes(job, b, 4, &t0, &t1);
        for (int t = t0; t < t1; t++) {
            double pi = p ? (double)p[i + t] : job->p_scalar;
            out[i + t] = (double)w[t] * 0x1p-32 < pi ? 1.0f : 0.0f;
        }
    }
}

static void bernoulli_f64_blocks(const fill_job *job, int64_t b0, int64_t b1)
{
    double *out = job->out;
    const double *p = job->p;
    for (int64_t b = b0; b < b1; b++) {
        double u[2];
        block_units_f64(u, job, b);
        int t0, t1;
        int64_t i = block_lanes(job, b, 2, &t0, &t1);
        for (int t = t0; t < t1; t++) {
            double pi = p ? p[i + t] : job->p_scalar;
            out[i + t] = u[t] < pi ? 1.0 : 0.0;
        }
    }
}

/* ---- the driver ------------------------------------------------------- */

/* Below this many values threads cost more than they save. */
#define PARALLEL_MIN_VALUES ((int64_t)1 << 16)
/* Blocks per unit of work handed to a thread. */
#define CHUNK_BLOCKS ((int64_t)1024)

/* Runs fn over the blocks that hold the job's window [first, first + n)
 * of a draw whose seed and base offset the job carries. */
static void run_window(const fill_job *job, fill_blocks_fn fn, int k)
{
    if (job->n <= 0)
        return;
    int64_t b0 = job->first / k;
    int64_t b1 = (job->first + job->n + k - 1) / k;
#ifdef _OPENMP
    if (job->n >= PARALLEL_MIN_VALUES) {
        int64_t nchunks = (b1 - b0 + CHUNK_BLOCKS - 1) / CHUNK_BLOCKS;
#pragma omp parallel for schedule(static)
        for (int64_t c = 0; c < nchunks; c++) {
            int64_t c0 = b0 + c * CHUNK_BLOCKS;
            int64_t c1 = c0 + CHUNK_BLOCKS < b1 ? c0 + CHUNK_BLOCKS : b1;
            fn(job, c0, c1);
        }
    } else
#endif
        fn(job, b0, b1);
}

/* The blocks a draw of n values uses, k values a block. */
static uint64_t draw_blocks(int64_t n, int k)
{
    return n > 0 ? (uint64_t)(n / k + (n % k != 0)) : 0;
}

/* Runs fn over all blocks of a draw of job->n values, k values a block,
 * starting at g's offset, then advances the offset past them. */
static void run_fill(lv_generator *g, fill_job *job, fill_blocks_fn fn, int k)
{
    job->first = 0;
    job->seed = g->seed;
    job->base = g->offset;
    run_window(job, fn, k);
    g->offset += draw_blocks(job->n, k);
}

void lv_rng_uniform(lv_generator *g, lv_dtype dtype, void *out, int64_t n)
{
    fill_job job = {.out = out, .n = n};
    if (dtype == LV_DTYPE_F64)
        run_fill(g, &job, uniform_f64_blocks, 2);
    else
        run_fill(g, &job, uniform_f32_blocks, 4);
}

void lv_rng_normal(lv_generator *g, lv_dtype dtype, void *out, int64_t n,
                   double mean, double std)
{
    fill_job job = {.out = out, .n = n, .mean = mean, .std = std};
    if (dtype == LV_DTYPE_F64)
        run_fill(g, &job, normal_f64_blocks, 2);
    else
        run_fill(g, &job, normal_f32_blocks, 4);
}

void lv_rng_bernoulli(lv_generator *g, lv_dtype dtype, void *out, int64_t n,
                      const void *p, double p_scalar)
{
    fill_job job = {.out = out, .n = n, .p = p, .p_scalar = p_scalar};
    if (dtype == LV_DTYPE_F64)
        run_fill(g, &job, bernoulli_f64_blocks, 2);
    else
        run_fill(g, &job, bernoulli_f32_blocks, 4);
}

/* ---- shards ------------------------------------------------------------ */

int lv_generator_set_shard(lv_generator *g, int64_t first_row, int64_t rows,
                           int64_t total_rows)
{
    if (rows == 0 && first_row == 0 && total_rows == 0) {
        g->shard_first = g->shard_rows = g->shard_total = 0;
        return 0;
    }
    if (rows < 1 || first_row < 0 || total_rows < rows
        || first_row > total_rows - rows)
        return lv_error_set(0, "shard rows [%" PRId64 ", %" PRId64 ") must lie "
                            "within the %" PRId64 " rows of the global batch "
                            "and be at least one", first_row,
                            first_row + rows, total_rows);
    g->shard_first = first_row;
    g->shard_rows = rows;
    g->shard_total = total_rows;
    return 0;
}

/* Fills out [rows, row_len] with fn (k values a block); under a shard,
 * with this process's windows of the global draw (rng.h). */
static int fill_rows(lv_generator *g, fill_job *job, fill_blocks_fn fn, int k,
                     size_t esize, int64_t rows, int64_t row_len)
{
    if (g->shard_rows == 0) {
        job->n = rows * row_len;
        run_fill(g, job, fn, k);
        return 0;
    }
    if (rows % g->shard_rows != 0)
        return lv_error_set(0, "a sharded draw of %" PRId64 " rows is not a "
                            "whole number of this process's %" PRId64
                            " batch rows", rows, g->shard_rows);
    /* out is [outer, shard_rows, row_len]: window o of the global draw
     * [outer, shard_total, row_len] starts at row o total + shard_first. */
    void *out = job->out;
    int64_t outer = rows / g->shard_rows;
    job->seed = g->seed;
    job->base = g->offset;
    job->n = g->shard_rows * row_len;
    for (int64_t o = 0; o < outer; o++) {
        job->out = (char *)out + (size_t)(o * job->n) * esize;
        job->first = (o * g->shard_total + g->shard_first) * row_len;
        run_window(job, fn, k);
    }
    g->offset += draw_blocks(outer * g->shard_total * row_len, k);
    return 0;
}

int lv_rng_normal_rows(lv_generator *g, lv_dtype dtype, void *out,
                       int64_t rows, int64_t row_len, double mean, double std)
{
    fill_job job = {.out = out, .mean = mean, .std = std};
    if (dtype == LV_DTYPE_F64)
        return fill_rows(g, &job, normal_f64_blocks, 2, sizeof(double), rows, row_len);
    return fill_rows(g, &job, normal_f32_blocks, 4, sizeof(float), rows, row_len);
}

int lv_rng_uniform_rows(lv_generator *g, lv_dtype dtype, void *out,
                        int64_t rows, int64_t row_len)
{
    fill_job job = {.out = out};
    if (dtype == LV_DTYPE_F64)
        return fill_rows(g, &job, uniform_f64_blocks, 2, sizeof(double), rows, row_len);
    return fill_rows(g, &job, uniform_f32_blocks, 4, sizeof(float), rows, row_len);
}
