/*
 * ops_elementwise_impl.h -- the elementwise kernels of ops_elementwise.c,
 * written once with T. Included once per dtype (generic.h): the includer
 * defines T (float or double) and SUFFIX (f32 or f64, naming the
 * symbols); this file #undefs both at its end. <tgmath.h> picks expf or
 * exp from T.
 *
 * Each op's formula sits in one switch; LOOP expands it into a contiguous
 * loop (which GCC vectorises) and a strided one.
 */

/* Stable forms: softplus(x) = max(x,0) + log1p(exp(-|x|)) never
 * overflows; logsigmoid(x) = min(x,0) - log1p(exp(-|x|)); sigmoid takes
 * exp of a non-positive number only. NaN propagates through every op. */
static inline T FN(softplus)(T x)
{
    return (x > 0 ? x : (T)0) + log1p(exp(-fabs(x)));
}

static inline T FN(logsigmoid)(T x)
{
    return (x < 0 ? x : (T)0) - log1p(exp(-fabs(x)));
}

static inline T FN(sigmoid)(T x)
{
    T e = exp(-fabs(x));              /* never overflows */
    T r = (T)1 / ((T)1 + e);
    return x >= 0 ? r : e * r;
}

static inline T FN(sign)(T x)
{
    return x > 0 ? (T)1 : x < 0 ? (T)-1 : x;   /* keeps 0, -0 and NaN */
}

/* Unary ops run over blocks of exactly BLOCK contiguous elements: a
 * strided row or a row's tail is gathered into a buffer first. The loop
 * count is then always the constant BLOCK, so the vectoriser leaves no
 * scalar remainder and every element goes through the same (vector) code
 * whatever the layout: a view gives bit-for-bit the values of its
 * contiguous copy. */
#define BLOCK_LOOP(expr)                                                   \
    do {                                                                   \
        _Pragma("omp simd")                                                \
        for (int64_t i = 0; i < BLOCK; i++) {                              \
            T v = x[i];                                                    \
            out[i] = (expr);                                               \
        }                                                                  \
    } while (0)

static void FN(unary_block)(T *restrict out, const T *restrict x,
                            const elementwise_ctx *c)
{
    const T lo = (T)c->lo, hi = (T)c->hi;
    switch (c->op) {
    case LV_OP_NEG:        BLOCK_LOOP(-v); break;
    case LV_OP_EXP:        BLOCK_LOOP(exp(v)); break;
    case LV_OP_LOG:        BLOCK_LOOP(log(v)); break;
    case LV_OP_LOG1P:      BLOCK_LOOP(log1p(v)); break;
    case LV_OP_EXPM1:      BLOCK_LOOP(expm1(v)); break;
    case LV_OP_SQRT:       BLOCK_LOOP(sqrt(v)); break;
    case LV_OP_SQUARE:     BLOCK_LOOP(v * v); break;
    case LV_OP_TANH:       BLOCK_LOOP(tanh(v)); break;
    case LV_OP_SIGMOID:    BLOCK_LOOP(FN(sigmoid)(v)); break;
    case LV_OP_SOFTPLUS:   BLOCK_LOOP(FN(softplus)(v)); break;
    case LV_OP_SOFTPLUS_SLOPE: BLOCK_LOOP(-expm1(-v)); break;
    case LV_OP_LOGSIGMOID: BLOCK_LOOP(FN(logsigmoid)(v)); break;
    case LV_OP_RELU:       BLOCK_LOOP(v < 0 ? (T)0 : v); break;
    case LV_OP_ABS:        BLOCK_LOOP(fabs(v)); break;
    case LV_OP_SIGN:       BLOCK_LOOP(FN(sign)(v)); break;
    /* A NaN bound means "no bound"; NaN inputs stay NaN. */
    case LV_OP_CLAMP:      BLOCK_LOOP(v < lo ? lo : v > hi ? hi : v); break;
    default: break;
    }
}

static void FN(unary_loop)(int64_t n, char **ptr, const int64_t *step,
                           void *ctx)
{
    const elementwise_ctx *c = ctx;
    T *out = (T *)ptr[0];
    const T *x = (const T *)ptr[1];
    int64_t so = step[0], sx = step[1];
    _Alignas(64) T in_buf[BLOCK];
    _Alignas(64) T out_buf[BLOCK];
    for (int64_t b = 0; b < n; b += BLOCK) {
        int64_t m = n - b < BLOCK ? n - b : BLOCK;
        if (m == BLOCK && so == 1 && sx == 1) {
            FN(unary_block)(out + b, x + b, c);
            continue;
        }
        for (int64_t i = 0; i < m; i++)
            in_buf[i] = x[(b + i) * sx];
        for (int64_t i = m; i < BLOCK; i++)
            in_buf[i] = (T)1;          /* padding: harmless for every op */
        FN(unary_block)(out_buf, in_buf, c);
        for (int64_t i = 0; i < m; i++)
            out[(b + i) * so] = out_buf[i];
    }
}

#define LOOP2(expr)                                                        \
    do {                                                                   \
        if (so == 1 && sa == 1 && sb == 1) {                               \
            _Pragma("omp simd")                                            \
            for (int64_t i = 0; i < n; i++) {                              \
                T u = a[i], v = b[i];                                      \
                out[i] = (expr);                                           \
            }                                                              \
        } else if (so == 1 && sa == 1 && sb == 0) {                        \
            const T v = b[0];                                              \
            for (int64_t i = 0; i < n; i++) {                              \
                T u = a[i];                                                \
                out[i] = (expr);                                           \
            }                                                              \
        } else if (so == 1 && sa == 0 && sb == 1) {                        \
            const T u = a[0];                                              \
            for (int64_t i = 0; i < n; i++) {                              \
                T v = b[i];                                                \
                out[i] = (expr);                                           \
            }                                                              \
        } else {                                                           \
            for (int64_t i = 0; i < n; i++) {                              \
                T u = a[i * sa], v = b[i * sb];                            \
                out[i * so] = (expr);                                      \
            }                                                              \
        }                                                                  \
    } while (0)

static void FN(binary_loop)(int64_t n, char **ptr, const int64_t *step,
                            void *ctx)
{
    const elementwise_ctx *c = ctx;
    T *out = (T *)ptr[0];
    const T *a = (const T *)ptr[1], *b = (const T *)ptr[2];
    int64_t so = step[0], sa = step[1], sb = step[2];
    switch (c->op) {
    case LV_OP_ADD: LOOP2(u + v); break;
    case LV_OP_SUB: LOOP2(u - v); break;
    case LV_OP_MUL: LOOP2(u * v); break;
    case LV_OP_DIV: LOOP2(u / v); break;
    case LV_OP_POW: LOOP2(pow(u, v)); break;
    /* NaN in either operand gives NaN, as in NumPy's maximum. */
    case LV_OP_MAXIMUM: LOOP2(u != u || u > v ? u : v); break;
    case LV_OP_MINIMUM: LOOP2(u != u || u < v ? u : v); break;
    case LV_OP_EQ: LOOP2(u == v ? (T)1 : (T)0); break;
    case LV_OP_NE: LOOP2(u != v ? (T)1 : (T)0); break;
    case LV_OP_LT: LOOP2(u < v ? (T)1 : (T)0); break;
    case LV_OP_LE: LOOP2(u <= v ? (T)1 : (T)0); break;
    case LV_OP_GT: LOOP2(u > v ? (T)1 : (T)0); break;
    case LV_OP_GE: LOOP2(u >= v ? (T)1 : (T)0); break;
    /* u the logit, v the observation (stable forms, as softplus) */
    case LV_OP_BERNOULLI_LOGIT: LOOP2(v * u - FN(softplus)(u)); break;
    case LV_OP_BERNOULLI_LOGIT_SLOPE: LOOP2(v - FN(sigmoid)(u)); break;
    default: break;
    }
}

/* ---- the integrators' fused step: out = a x + b y [+ c w] ----------- */

static void FN(lincomb_loop)(int64_t n, char **ptr, const int64_t *st,
                             void *ctx)
{
    int terms = *(const int *)ctx;
    T *out = (T *)ptr[0];
    const T *a = (const T *)ptr[1], *x = (const T *)ptr[2];
    const T *b = (const T *)ptr[3], *y = (const T *)ptr[4];
    if (terms == 2) {
        for (int64_t i = 0; i < n; i++)
            out[i * st[0]] = a[i * st[1]] * x[i * st[2]] +
                             b[i * st[3]] * y[i * st[4]];
    } else {
        const T *c = (const T *)ptr[5], *w = (const T *)ptr[6];
        for (int64_t i = 0; i < n; i++)
            out[i * st[0]] = a[i * st[1]] * x[i * st[2]] +
                             b[i * st[3]] * y[i * st[4]] +
                             c[i * st[5]] * w[i * st[6]];
    }
}

/* ---- in place, over n contiguous elements ------------------------------ */

/* a += b (lv_add_into) */
static void FN(add_into)(T *a, const T *b, int64_t n)
{
    #pragma omp parallel for simd if (n >= (1 << 18))
    for (int64_t i = 0; i < n; i++)
        a[i] += b[i];
}

/* a *= w, in T's own arithmetic (lv_scale_in_place) */
static void FN(scale_in_place)(T *a, T w, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        a[i] *= w;
}

#undef BLOCK_LOOP
#undef LOOP2
#undef T
#undef SUFFIX
