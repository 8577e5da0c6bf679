/*
 * ops_reduce_impl.h -- the row kernels of the reductions (ops_reduce.c),
 * written once with T. Included once per dtype (generic.h): the includer
 * defines T (float or double) and SUFFIX (f32 or f64); this file #undefs
 * both at its end. Accumulation is always in double, so an f32 sum of
 * 10^7 terms keeps its digits.
 */

static void FN(reduce_row)(reduce_state *st, int pass, int64_t n,
                           const T *x, int64_t s)
{
    switch (st->kind) {
    case LV_OP_SUM:
    case LV_OP_MEAN: {
        double acc = 0;
        if (s == 1) {
            #pragma omp simd reduction(+:acc)
            for (int64_t i = 0; i < n; i++)
                acc += (double)x[i];
        } else {
            for (int64_t i = 0; i < n; i++)
                acc += (double)x[i * s];
        }
        st->acc += acc;
        break;
    }
    case LV_OP_VAR:
        if (pass == 0) {
            double acc = 0;
            for (int64_t i = 0; i < n; i++)
                acc += (double)x[i * s];
            st->acc += acc;
        } else {
            double acc = 0, m = st->center;
            for (int64_t i = 0; i < n; i++) {
                double d = (double)x[i * s] - m;
                acc += d * d;
            }
            st->acc2 += acc;
        }
        break;
    case LV_OP_LOGSUMEXP:
        if (pass == 1) {
            double acc = 0, m = st->center;
            for (int64_t i = 0; i < n; i++)
                acc += exp((double)x[i * s] - m);
            st->acc += acc;
            break;
        }
        /* pass 0 finds the maximum, like max */
        /* fall through */
    case LV_OP_MAX:
    case LV_OP_ARGMAX:
        for (int64_t i = 0; i < n; i++) {
            double v = (double)x[i * s];
            if (st->best != st->best)
                break;                      /* a NaN already won */
            if (v > st->best || v != v || st->arg < 0) {
                st->best = v;
                st->arg = st->seen + i;
            }
        }
        break;
    case LV_OP_MIN:
    case LV_OP_ARGMIN:
        for (int64_t i = 0; i < n; i++) {
            double v = (double)x[i * s];
            if (st->best != st->best)
                break;
            if (v < st->best || v != v || st->arg < 0) {
                st->best = v;
                st->arg = st->seen + i;
            }
        }
        break;
    default:
        break;
    }
    st->seen += n;
}

/* acc[j] += v[j] over a contiguous row of n: sum_leading_dims' inner
 * loop, one output per element. */
static void FN(accumulate_row)(double *acc, const T *v, int64_t n)
{
    #pragma omp simd
    for (int64_t j = 0; j < n; j++)
        acc[j] += (double)v[j];
}

#undef T
#undef SUFFIX
