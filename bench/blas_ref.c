/*
 * blas_ref.c -- the plain-C references that bench/ops.lua compares lvae
 * against: OpenBLAS's cblas_sgemm called directly, and plain C loops over
 * contiguous float arrays (the bandwidth a C programmer gets for the same
 * bytes moved). It does not link lvae and knows nothing of Lua.
 *
 *   bench/blas_ref [--min-time S] [--repeats R] [CASE ...]
 *
 * CASE is one of (n = element count; m, k, n = GEMM sizes, C[m,n] =
 * A[m,k] B[k,n]):
 *   add n | mul n     y = a + b, y = a * b         (read 2 arrays, write 1)
 *   copy n            y = x                        (read 1, write 1)
 *   sum n             sum of x, double accumulator (read 1)
 *   exp n | softplus n          scalar libm, one call per element
 *   exp_simd n | softplus_simd n  the same through glibc's vector libm
 *   gemm m k n        cblas_sgemm, row major, no transposes
 *   gemm_nt m k n     C = A B^T, B stored [n, k] (a Linear layer's forward)
 *   gemm_tn m k n     C = A^T B, A stored [k, m] (its weight gradient)
 * With no CASE it runs a default set (the sizes of bench/ops.lua).
 *
 * Output, one line per case, fields separated by spaces:
 *   CASE SIZES... SECONDS          median seconds per call
 * plus `info KEY VALUE...` lines (threads, OpenBLAS configuration) and `#`
 * comment lines. Every buffer, GEMM's C included, is allocated once
 * outside the timed loop (lvae allocates a fresh output per call).
 *
 * Timing, the same as bench/lib.lua: CLOCK_MONOTONIC; warm-up, then the
 * number of calls per sample chosen so that a sample lasts at least
 * --min-time; the median of --repeats samples is reported.
 *
 * Elementwise loops run on all OpenMP threads (lvae's kernels do too, for
 * 10^6 elements); OpenBLAS uses its own threads.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#include <cblas.h>

/* OpenBLAS extensions; declared here since cblas.h differs by version. */
char *openblas_get_config(void);
char *openblas_get_corename(void);
int openblas_get_num_threads(void);

/* glibc's libmvec offers vector expf and log1pf; <math.h> only declares
 * them under -ffast-math. Declaring the simd variants by hand lets the
 * *_simd loops below use them while every other loop stays plain C. */
__attribute__((__simd__("notinbranch"))) float expf(float);
__attribute__((__simd__("notinbranch"))) float log1pf(float);

static double min_time = 0.05;     /* seconds per sample */
static int repeats = 7;            /* samples; the median is reported */

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---- the timed kernels ------------------------------------------------- */

typedef struct job {
    int64_t n;                 /* elements (elementwise) */
    int m, k, nn;              /* GEMM sizes */
    float *a, *b, *y;          /* inputs and the output, allocated once */
    double sink;               /* keeps sum's result alive */
} job;

typedef void (*kernel_fn)(job *j);

static void k_add(job *j)
{
    const float *a = j->a, *b = j->b;
    float *y = j->y;
    #pragma omp parallel for simd schedule(static)
    for (int64_t i = 0; i < j->n; i++)
        y[i] = a[i] + b[i];
}

static void k_mul(job *j)
{
    const float *a = j->a, *b = j->b;
    float *y = j->y;
    #pragma omp parallel for simd schedule(static)
    for (int64_t i = 0; i < j->n; i++)
        y[i] = a[i] * b[i];
}

static void k_copy(job *j)
{
    const float *a = j->a;
    float *y = j->y;
    #pragma omp parallel for simd schedule(static)
    for (int64_t i = 0; i < j->n; i++)
        y[i] = a[i];
}

static void k_sum(job *j)
{
    const float *a = j->a;
    double acc = 0;
    #pragma omp parallel for simd schedule(static) reduction(+:acc)
    for (int64_t i = 0; i < j->n; i++)
        acc += (double)a[i];
    j->sink += acc;
}

/* Plain loops that call libm once per element, as a loop compiles when
 * the compiler may not vectorise the call (errno-setting libm, the
 * default). The call goes through a function pointer read once, so that
 * the loops stay scalar whatever the flags (-fno-math-errno included). */
static float (*volatile scalar_expf)(float) = expf;
static float (*volatile scalar_log1pf)(float) = log1pf;

static void k_exp(job *j)
{
    const float *a = j->a;
    float *y = j->y;
    float (*f)(float) = scalar_expf;
    #pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < j->n; i++)
        y[i] = f(a[i]);
}

/* softplus(x) = max(x, 0) + log1p(exp(-|x|)), lvae's stable form. */
static void k_softplus(job *j)
{
    const float *a = j->a;
    float *y = j->y;
    float (*e)(float) = scalar_expf, (*l)(float) = scalar_log1pf;
    #pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < j->n; i++) {
        float v = a[i];
        y[i] = (v > 0 ? v : 0.0f) + l(e(-fabsf(v)));
    }
}

/* The same two loops vectorised: `omp simd` with the libmvec
 * declarations above makes GCC call _ZGV*_expf on 8 or 16 lanes. */
static void k_exp_simd(job *j)
{
    const float *a = j->a;
    float *y = j->y;
    #pragma omp parallel for simd schedule(static)
    for (int64_t i = 0; i < j->n; i++)
        y[i] = expf(a[i]);
}

/* GCC does not if-convert a loop that calls a simd clone, so the ?: of
 * max(x, 0) would stop vectorisation: blocks of BLOCK elements take the
 * vector libm part into a buffer, then add max(x, 0) in a second loop. */
#define BLOCK 512

static void k_softplus_simd(job *j)
{
    const float *a = j->a;
    float *y = j->y;
    int64_t blocks = (j->n + BLOCK - 1) / BLOCK;
    #pragma omp parallel for schedule(static)
    for (int64_t blk = 0; blk < blocks; blk++) {
        float tmp[BLOCK];
        int64_t first = blk * BLOCK;
        int64_t len = j->n - first < BLOCK ? j->n - first : BLOCK;
        const float *x = a + first;
        float *out = y + first;
        #pragma omp simd
        for (int64_t i = 0; i < len; i++)
            tmp[i] = log1pf(expf(-fabsf(x[i])));
        for (int64_t i = 0; i < len; i++)
            out[i] = (x[i] > 0 ? x[i] : 0.0f) + tmp[i];
    }
}

static void k_gemm(job *j)
{
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, j->m, j->nn, j->k,
                1.0f, j->a, j->k, j->b, j->nn, 0.0f, j->y, j->nn);
}

static void k_gemm_nt(job *j)
{
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, j->m, j->nn, j->k,
                1.0f, j->a, j->k, j->b, j->k, 0.0f, j->y, j->nn);
}

static void k_gemm_tn(job *j)
{
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, j->m, j->nn, j->k,
                1.0f, j->a, j->m, j->b, j->nn, 0.0f, j->y, j->nn);
}

/* ---- timing ------------------------------------------------------------ */

static int cmp_double(const void *p, const void *q)
{
    double a = *(const double *)p, b = *(const double *)q;
    return (a > b) - (a < b);
}

/* Median seconds per call of fn(j). */
static double time_kernel(kernel_fn fn, job *j)
{
    /* Warm-up: at least two calls and a fifth of a sample's time; it also
     * gives the first estimate of one call's cost. */
    int64_t calls = 0;
    double t0 = now(), t;
    do {
        fn(j);
        calls++;
        t = now() - t0;
    } while (calls < 2 || t < min_time / 5);
    double per_call = t / (double)calls;
    int64_t iters = (int64_t)ceil(min_time / (per_call > 1e-9 ? per_call : 1e-9));
    if (iters < 1)
        iters = 1;

    double *sample = malloc(sizeof *sample * (size_t)repeats);
    if (!sample) {
        fprintf(stderr, "blas_ref: out of memory\n");
        exit(1);
    }
    for (int r = 0; r < repeats; r++) {
        t0 = now();
        for (int64_t i = 0; i < iters; i++)
            fn(j);
        sample[r] = (now() - t0) / (double)iters;
    }
    qsort(sample, (size_t)repeats, sizeof *sample, cmp_double);
    double median = repeats % 2 ? sample[repeats / 2]
                                : 0.5 * (sample[repeats / 2 - 1] + sample[repeats / 2]);
    free(sample);
    return median;
}

/* ---- data -------------------------------------------------------------- */

/* 64-byte aligned floats, uniform in [lo, hi) from a fixed LCG: the same
 * inputs every run (exp and softplus cost depends a little on the range). */
static float *make_floats(int64_t n, float lo, float hi, uint64_t seed)
{
    size_t bytes = ((size_t)n * sizeof(float) + 63) / 64 * 64;
    float *p = aligned_alloc(64, bytes ? bytes : 64);
    if (!p) {
        fprintf(stderr, "blas_ref: out of memory (%zu bytes)\n", bytes);
        exit(1);
    }
    uint64_t s = seed * 6364136223846793005ULL + 1442695040888963407ULL;
    for (int64_t i = 0; i < n; i++) {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        float u = (float)(s >> 40) * (1.0f / 16777216.0f);
        p[i] = lo + (hi - lo) * u;
    }
    return p;
}

/* ---- cases ------------------------------------------------------------- */

typedef struct kase {
    const char *name;
    int nsizes;              /* 1: n; 3: m k n */
    kernel_fn fn;
    int inputs;              /* arrays read */
} kase;

static const kase cases[] = {
    {"add", 1, k_add, 2},
    {"mul", 1, k_mul, 2},
    {"copy", 1, k_copy, 1},
    {"sum", 1, k_sum, 1},
    {"exp", 1, k_exp, 1},
    {"softplus", 1, k_softplus, 1},
    {"exp_simd", 1, k_exp_simd, 1},
    {"softplus_simd", 1, k_softplus_simd, 1},
    {"gemm", 3, k_gemm, 2},
    {"gemm_nt", 3, k_gemm_nt, 2},
    {"gemm_tn", 3, k_gemm_tn, 2},
};

static const kase *find_case(const char *name)
{
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        if (strcmp(cases[i].name, name) == 0)
            return &cases[i];
    return NULL;
}

static int64_t parse_size(const char *s, const char *what)
{
    char *end;
    double v = strtod(s, &end);      /* accepts 1e6 */
    if (*end != '\0' || !(v >= 1) || v > 1e10 || v != floor(v)) {
        fprintf(stderr, "blas_ref: bad %s '%s' (expected a positive integer)\n",
                what, s);
        exit(2);
    }
    return (int64_t)v;
}

static void run_case(const kase *c, const int64_t *size)
{
    job j = {0};
    if (c->nsizes == 1) {
        j.n = size[0];
        j.a = make_floats(j.n, -4, 4, 1);
        j.b = make_floats(j.n, -4, 4, 2);
        j.y = make_floats(j.n, 0, 0, 3);
    } else {
        if (size[0] > 1 << 20 || size[1] > 1 << 20 || size[2] > 1 << 20) {
            fprintf(stderr, "blas_ref: gemm sizes too large\n");
            exit(2);
        }
        j.m = (int)size[0];
        j.k = (int)size[1];
        j.nn = (int)size[2];
        j.a = make_floats((int64_t)j.m * j.k, -1, 1, 1);
        j.b = make_floats((int64_t)j.k * j.nn, -1, 1, 2);
        j.y = make_floats((int64_t)j.m * j.nn, 0, 0, 3);
    }
    double seconds = time_kernel(c->fn, &j);
    if (c->nsizes == 1)
        printf("%s %lld %.9e\n", c->name, (long long)size[0], seconds);
    else
        printf("%s %lld %lld %lld %.9e\n", c->name, (long long)size[0],
               (long long)size[1], (long long)size[2], seconds);
    fflush(stdout);
    free(j.a);
    free(j.b);
    free(j.y);
}

static void usage(void)
{
    fprintf(stderr,
            "usage: blas_ref [--min-time S] [--repeats R] [CASE SIZES...]...\n"
            "cases: add n, mul n, copy n, sum n, exp n, softplus n,\n"
            "       exp_simd n, softplus_simd n, gemm m k n, gemm_nt m k n,\n"
            "       gemm_tn m k n\n");
    exit(2);
}

int main(int argc, char **argv)
{
    int i = 1;
    for (; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
        if (strcmp(argv[i], "--min-time") == 0 && i + 1 < argc) {
            min_time = atof(argv[++i]);
            if (!(min_time > 0) || min_time > 60)
                usage();
        } else if (strcmp(argv[i], "--repeats") == 0 && i + 1 < argc) {
            repeats = atoi(argv[++i]);
            if (repeats < 1 || repeats > 1000)
                usage();
        } else {
            usage();
        }
    }

    int threads = 1;
#ifdef _OPENMP
    threads = omp_get_max_threads();
#endif
    printf("# blas_ref: median of %d samples of >= %g s each\n", repeats,
           min_time);
    printf("info omp_threads %d\n", threads);
    printf("info openblas_threads %d\n", openblas_get_num_threads());
    printf("info openblas_corename %s\n", openblas_get_corename());
    printf("info openblas_config %s\n", openblas_get_config());
    fflush(stdout);

    if (i == argc) {
        static const char *defaults[] = {
            "add", "mul", "copy", "sum", "exp", "softplus", "exp_simd",
            "softplus_simd"};
        for (size_t d = 0; d < sizeof defaults / sizeof defaults[0]; d++)
            run_case(find_case(defaults[d]), (int64_t[]){1000000});
        run_case(find_case("gemm"), (int64_t[]){100, 784, 500});
        run_case(find_case("gemm"), (int64_t[]){1024, 1024, 1024});
        return 0;
    }
    while (i < argc) {
        const kase *c = find_case(argv[i]);
        if (!c) {
            fprintf(stderr, "blas_ref: unknown case '%s'\n", argv[i]);
            usage();
        }
        if (i + c->nsizes >= argc)
            usage();
        int64_t size[3];
        for (int s = 0; s < c->nsizes; s++)
            size[s] = parse_size(argv[i + 1 + s], "size");
        run_case(c, size);
        i += 1 + c->nsizes;
    }
    return 0;
}
