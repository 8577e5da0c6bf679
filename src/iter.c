/*
 * iter.c -- the strided multi-operand walker of iter.h, and the strided
 * copy built on it.
 */
#include <string.h>

#include "generic.h"
#include "iter.h"

/* Long contiguous rows are cut into pieces so that two threads can share
 * them; the piece is large enough that the cut costs nothing. Below
 * PARALLEL_MIN elements waking a second thread costs more than it saves
 * (measured on 2 cores: a [100, 784] op gains nothing and, on a busy
 * machine, can lose a scheduler tick). */
#define PIECE 32768
#define PARALLEL_MIN (1 << 18)

typedef struct walk {
    int ndim;                            /* after coalescing, >= 1 */
    int nops;
    int64_t shape[LV_MAX_DIMS];
    int64_t stride[LV_ITER_MAX_OPS][LV_MAX_DIMS];   /* in elements */
    char *data[LV_ITER_MAX_OPS];
    size_t elsize[LV_ITER_MAX_OPS];
} walk;

static void walk_build(walk *w, int ndim, const int64_t *shape, int nops,
                       const lv_iter_operand *ops)
{
    w->nops = nops;
    w->ndim = 0;
    for (int k = 0; k < nops; k++) {
        w->data[k] = ops[k].data;
        w->elsize[k] = ops[k].elsize;
    }
    for (int i = 0; i < ndim; i++) {
        if (shape[i] == 1)
            continue;
        int d = w->ndim;
        /* Merge into the previous dim when that one steps exactly over
         * this one for every operand. */
        if (d > 0) {
            int mergeable = 1;
            for (int k = 0; k < nops; k++)
                if (w->stride[k][d - 1] != ops[k].stride[i] * shape[i])
                    mergeable = 0;
            if (mergeable) {
                w->shape[d - 1] *= shape[i];
                for (int k = 0; k < nops; k++)
                    w->stride[k][d - 1] = ops[k].stride[i];
                continue;
            }
        }
        w->shape[d] = shape[i];
        for (int k = 0; k < nops; k++)
            w->stride[k][d] = ops[k].stride[i];
        w->ndim++;
    }
    if (w->ndim == 0) {
        w->ndim = 1;
        w->shape[0] = 1;
        for (int k = 0; k < nops; k++)
            w->stride[k][0] = 0;
    }
}

/* Runs rows [first, last) of the walk, each cut into pieces of the inner
 * dim; task t is piece (t % pieces) of row (t / pieces). */
static void walk_tasks(const walk *w, int64_t first, int64_t last,
                       int64_t pieces, int64_t piece_len, lv_loop_fn fn,
                       void *ctx)
{
    int inner = w->ndim - 1;
    int64_t n_inner = w->shape[inner];
    int64_t step[LV_ITER_MAX_OPS];
    for (int k = 0; k < w->nops; k++)
        step[k] = w->stride[k][inner];
    for (int64_t t = first; t < last; t++) {
        int64_t row = t / pieces, piece = t % pieces;
        int64_t begin = piece * piece_len;
        int64_t n = n_inner - begin < piece_len ? n_inner - begin : piece_len;
        char *ptr[LV_ITER_MAX_OPS];
        for (int k = 0; k < w->nops; k++) {
            int64_t pos = begin * step[k];
            int64_t r = row;
            for (int i = inner - 1; i >= 0; i--) {
                pos += (r % w->shape[i]) * w->stride[k][i];
                r /= w->shape[i];
            }
            ptr[k] = w->data[k] + pos * (int64_t)w->elsize[k];
        }
        fn(n, ptr, step, ctx);
    }
}

void lv_iter_run(int ndim, const int64_t *shape, int nops,
                 const lv_iter_operand *ops, lv_loop_fn fn, void *ctx)
{
    if (lv_shape_numel(ndim, shape) == 0)
        return;
    walk w;
    walk_build(&w, ndim, shape, nops, ops);
    int64_t n_inner = w.shape[w.ndim - 1];
    int64_t rows = 1;
    for (int i = 0; i < w.ndim - 1; i++)
        rows *= w.shape[i];
    int64_t pieces = (n_inner + PIECE - 1) / PIECE;
    int64_t piece_len = pieces > 1 ? PIECE : n_inner;
    int64_t tasks = rows * pieces;
#ifdef _OPENMP
    if (rows * n_inner >= PARALLEL_MIN && tasks > 1) {
        #pragma omp parallel for schedule(static)
        for (int64_t t = 0; t < tasks; t++)
            walk_tasks(&w, t, t + 1, pieces, piece_len, fn, ctx);
        return;
    }
#endif
    walk_tasks(&w, 0, tasks, pieces, piece_len, fn, ctx);
}

lv_iter_operand lv_iter_operand_of(const lv_tensor *t, const int64_t *stride)
{
    lv_iter_operand op = {lv_tensor_data(t), lv_dtype_size(t->dtype),
                          stride ? stride : t->stride};
    return op;
}

int lv_broadcast_shape(const char *what, const lv_tensor *a,
                       const lv_tensor *b, int64_t *shape)
{
    int ndim = a->ndim > b->ndim ? a->ndim : b->ndim;
    for (int i = 0; i < ndim; i++) {
        int ia = i - (ndim - a->ndim), ib = i - (ndim - b->ndim);
        int64_t sa = ia >= 0 ? a->shape[ia] : 1;
        int64_t sb = ib >= 0 ? b->shape[ib] : 1;
        if (sa != sb && sa != 1 && sb != 1) {
            char fa[128], fb[128];
            return lv_error_set(0, "%s: shapes %s and %s cannot be broadcast "
                                "(dimension %d: %lld against %lld)", what,
                                lv_shape_format(fa, sizeof fa, a->ndim, a->shape),
                                lv_shape_format(fb, sizeof fb, b->ndim, b->shape),
                                i + 1, (long long)sa, (long long)sb);
        }
        shape[i] = sa == 1 ? sb : sa;
    }
    return ndim;
}

void lv_broadcast_strides(const lv_tensor *t, int ndim, int64_t *stride)
{
    for (int i = 0; i < ndim; i++) {
        int it = i - (ndim - t->ndim);
        stride[i] = (it >= 0 && t->shape[it] != 1) ? t->stride[it] : 0;
    }
}

/* ---- copy with conversion ------------------------------------------- */

/* copy_<to>_<from> for the four pairs of dtypes */
#define T float
#define SUFFIX f32
#define FROM float
#define FROM_SUFFIX f32
#include "iter_copy_impl.h"
#define T float
#define SUFFIX f32
#define FROM double
#define FROM_SUFFIX f64
#include "iter_copy_impl.h"
#define T double
#define SUFFIX f64
#define FROM float
#define FROM_SUFFIX f32
#include "iter_copy_impl.h"
#define T double
#define SUFFIX f64
#define FROM double
#define FROM_SUFFIX f64
#include "iter_copy_impl.h"

void lv_copy_strided(lv_tensor *dst, const lv_tensor *src)
{
    static const lv_loop_fn loops[2][2] = {
        [LV_DTYPE_F32] = {[LV_DTYPE_F32] = copy_f32_f32,
                          [LV_DTYPE_F64] = copy_f32_f64},
        [LV_DTYPE_F64] = {[LV_DTYPE_F32] = copy_f64_f32,
                          [LV_DTYPE_F64] = copy_f64_f64},
    };
    int64_t src_stride[LV_MAX_DIMS];
    lv_broadcast_strides(src, dst->ndim, src_stride);
    lv_iter_operand ops[2] = {lv_iter_operand_of(dst, NULL),
                              lv_iter_operand_of(src, src_stride)};
    lv_iter_run(dst->ndim, dst->shape, 2, ops, loops[dst->dtype][src->dtype],
                NULL);
}
