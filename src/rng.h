/*
 * rng.h -- lvae's random numbers: a counter-based generator (Philox4x32-10,
 * Salmon, Moraes, Dror & Shaw, "Parallel random numbers: as easy as 1, 2,
 * 3", SC 2011) and the fills built on it (uniform, normal, Bernoulli).
 *
 * Why counter-based: a generator here is just (seed, offset). Block b of
 * the stream is Philox(counter = b, key = seed), computed on its own, so
 * element i of a draw is a pure function of (seed, offset at the start of
 * the draw, i). A fill may therefore be cut into pieces and run on any
 * number of threads (or processes) and give the same numbers; saving a
 * generator is saving two integers.
 *
 * Layout of one Philox call: counter words 0-1 hold the 64-bit block index
 * (offset + b), words 2-3 are zero (kept free for a future stream id, e.g.
 * an MPI rank); the 64-bit seed is the 2-word key.
 *
 * Not here: Lua (see lua_rng.c), argument checking (the binding validates
 * probabilities and shapes), tensors (the fills take flat buffers).
 */
#ifndef LV_RNG_H
#define LV_RNG_H

#include <stdint.h>

#include "tensor.h"

typedef struct lv_generator {
    uint64_t seed;      /* the Philox key */
    uint64_t offset;    /* 128-bit Philox blocks consumed so far */
    /* A data-parallel process's share of each batch (lv_rng_*_rows):
     * rows [shard_first, shard_first + shard_rows) of shard_total; all
     * zero when the generator is not sharded. Not part of the state: it
     * says where the process sits, not where the stream is. */
    int64_t shard_first, shard_rows, shard_total;
} lv_generator;

/* ---- the block function ------------------------------------------------ */

/* One Philox4x32-10 evaluation: 4 random words from a 4-word counter and a
 * 2-word key. Exposed so the tests can check the published known answers. */
void lv_philox4x32_10(uint32_t out[4], const uint32_t ctr[4],
                      const uint32_t key[2]);

/* ---- generators -------------------------------------------------------- */

/* Restarts g at the beginning of the stream of `seed` (offset 0). */
void lv_generator_seed(lv_generator *g, uint64_t seed);
/* The process-wide generator behind lv.manual_seed and friends. It starts
 * from a fixed seed, so a script that never seeds is still reproducible. */
lv_generator *lv_generator_default(void);
/* The seed it starts from (and the default of lv.Generator()). */
#define LV_GENERATOR_DEFAULT_SEED UINT64_C(0x853c49e6748fea9b)

/* Checkpointing: the whole state is these two integers. */
void lv_generator_get_state(const lv_generator *g, uint64_t *seed,
                            uint64_t *offset);
void lv_generator_set_state(lv_generator *g, uint64_t seed, uint64_t offset);

/* ---- fills ------------------------------------------------------------- */

/*
 * Each fill writes n contiguous values of `dtype` (f32 or f64) to out and
 * advances g->offset by the number of blocks it used, ceil(n / k), where k
 * values come from one block:
 *
 *   kind        f32                          f64
 *   uniform     k = 4, 24 random bits        k = 2, 53 random bits
 *   normal      k = 4 (two Box-Muller pairs) k = 2 (one pair)
 *   bernoulli   k = 4, 32-bit uniform < p    k = 2, 53-bit uniform < p
 *
 * A partial last block is still consumed whole, so consecutive draws never
 * share a block. n <= 0 draws nothing and leaves the offset alone.
 */

/* Uniform on [0, 1). */
void lv_rng_uniform(lv_generator *g, lv_dtype dtype, void *out, int64_t n);

/* Normal(mean, std^2) by Box-Muller, computed in double. The uniform fed to
 * the logarithm lies in (0, 1], never 0, so no -inf/NaN; the largest
 * possible |z| is thus about 6.7 (f32) or 8.6 (f64) standard deviations. */
void lv_rng_normal(lv_generator *g, lv_dtype dtype, void *out, int64_t n,
                   double mean, double std);

/* out[i] = 1 with probability p_i, else 0, where p_i = p[i] when p is not
 * NULL (n contiguous values of `dtype`; p may be out itself, for an
 * in-place draw) and p_scalar otherwise. Probabilities are trusted: the
 * binding checks they lie in [0, 1]. (p <= 0 gives 0, p >= 1 gives 1, NaN
 * gives 0.) */
void lv_rng_bernoulli(lv_generator *g, lv_dtype dtype, void *out, int64_t n,
                      const void *p, double p_scalar);

/* ---- shards: one process's rows of a global batch's noise ------------- */

/*
 * Data-parallel training splits each global batch of total_rows
 * datapoints across processes; a process holds rows [first_row,
 * first_row + rows). For its results to equal one process's, each
 * datapoint must meet the noise it would meet there. A sharded generator
 * therefore draws, in lv_rng_normal_rows, only this process's part of the
 * draw the whole batch would make, and advances as that whole draw does.
 * lv_generator_set_shard(g, 0, 0, 0) removes the shard. Returns -1 with
 * lv_error set on rows < 1 or rows outside the global batch.
 */
int lv_generator_set_shard(lv_generator *g, int64_t first_row, int64_t rows,
                           int64_t total_rows);

/*
 * Normal draws for a batch: out is `rows` rows of row_len values,
 * sample-major (rows = outer x batch, the batch index fastest, as the
 * models' z [S B, d]). Unsharded it is lv_rng_normal of rows x row_len
 * values. Sharded, batch must be the shard's rows: out[o, b, :] gets
 * row o total_rows + first_row + b of the draw of outer x total_rows
 * rows, and g advances past that whole draw; with one process (first 0,
 * rows = total) the numbers are the unsharded ones. Returns -1 with
 * lv_error set when rows is not a multiple of the shard's rows.
 */
int lv_rng_normal_rows(lv_generator *g, lv_dtype dtype, void *out,
                       int64_t rows, int64_t row_len, double mean,
                       double std);
/* Uniform draws on [0, 1) for a batch, laid out and sharded as above
 * (AIS's accept tests: one per chain and datapoint). */
int lv_rng_uniform_rows(lv_generator *g, lv_dtype dtype, void *out,
                        int64_t rows, int64_t row_len);

#endif
