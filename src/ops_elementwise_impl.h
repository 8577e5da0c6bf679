/*
 * ops_elementwise_impl.h -- the elementwise kernels, written once with T
 * and included by ops_elementwise.c for T = float and T = double (SUFFIX
 * names the symbols). <tgmath.h> picks expf or exp from T.
 *
 * Each op's formula sits in one switch; LOOP expands it into a contiguous
 * loop (which GCC vectorises) and a strided one.
 */

#define CAT_(a, b) a##_##b
#define CAT(a, b) CAT_(a, b)

/* Stable forms: softplus(x) = max(x,0) + log1p(exp(-|x|)) never
 * overflows; logsigmoid(x) = min(x,0) - log1p(exp(-|x|)); sigmoid takes
 * exp of a non-positive number only. NaN propagates through every op. */
static inline T CAT(softplus, SUFFIX)(T x)
{
    return (x > 0 ? x : (T)0) + log1p(exp(-fabs(x)));
}

static inline T CAT(logsigmoid, SUFFIX)(T x)
{
    return (x < 0 ? x : (T)0) - log1p(exp(-fabs(x)));
}

static inline T CAT(sigmoid, SUFFIX)(T x)
{
    T e = exp(-fabs(x));              /* never overflows */
    T r = (T)1 / ((T)1 + e);
    return x >= 0 ? r : e * r;
}

static inline T CAT(sign, SUFFIX)(T x)
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

static void CAT(unary_block, SUFFIX)(T *restrict out, const T *restrict x,
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
    case LV_OP_SIGMOID:    BLOCK_LOOP(CAT(sigmoid, SUFFIX)(v)); break;
    case LV_OP_SOFTPLUS:   BLOCK_LOOP(CAT(softplus, SUFFIX)(v)); break;
    case LV_OP_SOFTPLUS_SLOPE: BLOCK_LOOP(-expm1(-v)); break;
    case LV_OP_LOGSIGMOID: BLOCK_LOOP(CAT(logsigmoid, SUFFIX)(v)); break;
    case LV_OP_RELU:       BLOCK_LOOP(v < 0 ? (T)0 : v); break;
    case LV_OP_ABS:        BLOCK_LOOP(fabs(v)); break;
    case LV_OP_SIGN:       BLOCK_LOOP(CAT(sign, SUFFIX)(v)); break;
    /* A NaN bound means "no bound"; NaN inputs stay NaN. */
    case LV_OP_CLAMP:      BLOCK_LOOP(v < lo ? lo : v > hi ? hi : v); break;
    default: break;
    }
}

static void CAT(unary_loop, SUFFIX)(int64_t n, char **ptr, const int64_t *step,
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
            CAT(unary_block, SUFFIX)(out + b, x + b, c);
            continue;
        }
        for (int64_t i = 0; i < m; i++)
            in_buf[i] = x[(b + i) * sx];
        for (int64_t i = m; i < BLOCK; i++)
            in_buf[i] = (T)1;          /* padding: harmless for every op */
        CAT(unary_block, SUFFIX)(out_buf, in_buf, c);
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

static void CAT(binary_loop, SUFFIX)(int64_t n, char **ptr,
                                     const int64_t *step, void *ctx)
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
    case LV_OP_BERNOULLI_LOGIT: LOOP2(v * u - CAT(softplus, SUFFIX)(u)); break;
    case LV_OP_BERNOULLI_LOGIT_SLOPE: LOOP2(v - CAT(sigmoid, SUFFIX)(u)); break;
    default: break;
    }
}

#undef BLOCK_LOOP
#undef LOOP2
#undef CAT
#undef CAT_
