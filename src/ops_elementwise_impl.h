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
    if (x >= 0)
        return (T)1 / ((T)1 + exp(-x));
    T e = exp(x);
    return e / ((T)1 + e);
}

static inline T CAT(sign, SUFFIX)(T x)
{
    return x > 0 ? (T)1 : x < 0 ? (T)-1 : x;   /* keeps 0, -0 and NaN */
}

#define LOOP1(expr)                                                        \
    do {                                                                   \
        if (so == 1 && sx == 1) {                                          \
            for (int64_t i = 0; i < n; i++) {                              \
                T v = x[i];                                                \
                out[i] = (expr);                                           \
            }                                                              \
        } else {                                                           \
            for (int64_t i = 0; i < n; i++) {                              \
                T v = x[i * sx];                                           \
                out[i * so] = (expr);                                      \
            }                                                              \
        }                                                                  \
    } while (0)

static void CAT(unary_loop, SUFFIX)(int64_t n, char **ptr, const int64_t *step,
                                    void *ctx)
{
    const elementwise_ctx *c = ctx;
    T *out = (T *)ptr[0];
    const T *x = (const T *)ptr[1];
    int64_t so = step[0], sx = step[1];
    const T lo = (T)c->lo, hi = (T)c->hi;
    switch (c->op) {
    case LV_OP_NEG:        LOOP1(-v); break;
    case LV_OP_EXP:        LOOP1(exp(v)); break;
    case LV_OP_LOG:        LOOP1(log(v)); break;
    case LV_OP_LOG1P:      LOOP1(log1p(v)); break;
    case LV_OP_EXPM1:      LOOP1(expm1(v)); break;
    case LV_OP_SQRT:       LOOP1(sqrt(v)); break;
    case LV_OP_SQUARE:     LOOP1(v * v); break;
    case LV_OP_TANH:       LOOP1(tanh(v)); break;
    case LV_OP_SIGMOID:    LOOP1(CAT(sigmoid, SUFFIX)(v)); break;
    case LV_OP_SOFTPLUS:   LOOP1(CAT(softplus, SUFFIX)(v)); break;
    case LV_OP_LOGSIGMOID: LOOP1(CAT(logsigmoid, SUFFIX)(v)); break;
    case LV_OP_RELU:       LOOP1(v < 0 ? (T)0 : v); break;
    case LV_OP_ABS:        LOOP1(fabs(v)); break;
    case LV_OP_SIGN:       LOOP1(CAT(sign, SUFFIX)(v)); break;
    /* A NaN bound means "no bound"; NaN inputs stay NaN. */
    case LV_OP_CLAMP:
        LOOP1(v < lo ? lo : v > hi ? hi : v);
        break;
    default: break;
    }
}

#define LOOP2(expr)                                                        \
    do {                                                                   \
        if (so == 1 && sa == 1 && sb == 1) {                               \
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
    default: break;
    }
}

#undef LOOP1
#undef LOOP2
#undef CAT
#undef CAT_
