/*
 * integrators.c -- the flows of SPEC §3, step by step.
 *
 * B = batch, d = latent dim, K = steps; h [d] step sizes (per step when
 * per_step), gamma [d] friction, xi [B, d] fresh N(0, I) noise per step.
 *
 * Every step's [B, d] arithmetic is one fused op (LV_OP_LINCOMB: a x + b y
 * + c w); its coefficients are [d] vectors made with ordinary ops, so the
 * step is on the tape whenever its inputs or parameters are, and can be
 * differentiated again. The force g = ∇U comes from the caller's
 * lv_potential_fn; each integrator evaluates it once per distinct point
 * and counts the evaluations.
 *
 * Without create_graph the arithmetic runs off the tape (grad mode off)
 * and only the force is taken with the tape, on a fresh leaf copy of z.
 *
 * Not here: the ELBO (lua/lvae/models.lua) and the Lua binding.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "autograd.h"
#include "integrators.h"
#include "rng.h"
#include "vjp.h"

/* ---- construction ------------------------------------------------------ */

lv_integrator *lv_integrator_new(lv_integrator_kind kind, int dim,
                                 lv_dtype dtype)
{
    lv_integrator *it = lv_calloc(1, sizeof *it);
    if (!it) {
        lv_error_set(0, "out of memory");
        return NULL;
    }
    it->kind = kind;
    it->dim = dim;
    it->dtype = dtype;
    it->steps = 1;
    it->max_step = 0.5;
    it->noise = kind == LV_INTEGRATOR_QSL || kind == LV_INTEGRATOR_QSL2 ||
                kind == LV_INTEGRATOR_EULER;
    it->cache = 1;
    return it;
}

void lv_integrator_free(lv_integrator *it)
{
    if (!it)
        return;
    lv_tensor_release(it->step_logit);
    lv_tensor_release(it->friction);
    lv_tensor_release(it->temper);
    lv_tensor_release(it->planar_u);
    lv_tensor_release(it->planar_w);
    lv_tensor_release(it->planar_b);
    free(it);
}

static lv_tensor *leaf(lv_tensor *t, int learn)
{
    if (t)
        t->requires_grad = learn;
    return t;
}

static double logit(double p) { return log(p / (1 - p)); }

int lv_integrator_init_params(lv_integrator *it, double h0, double gamma0,
                              double t0, int learn_step)
{
    int64_t d = it->dim, K = it->steps;
    if (it->kind == LV_INTEGRATOR_PLANAR && it->amortized)
        return 0;                 /* u, w, b come with each flow call */
    if (it->kind == LV_INTEGRATOR_PLANAR) {
        /* u, w ~ N(0, 0.1^2), b = 0 (SPEC §3.5) */
        int64_t shape[2] = {K, d};
        it->planar_u = leaf(lv_tensor_empty(it->dtype, 2, shape), 1);
        it->planar_w = leaf(lv_tensor_empty(it->dtype, 2, shape), 1);
        it->planar_b = leaf(lv_tensor_zeros(it->dtype, 1, &K), 1);
        if (!it->planar_u || !it->planar_w || !it->planar_b)
            return -1;
        lv_rng_normal(lv_generator_default(), it->dtype,
                      lv_tensor_data(it->planar_u), K * d, 0.0, 0.1);
        lv_rng_normal(lv_generator_default(), it->dtype,
                      lv_tensor_data(it->planar_w), K * d, 0.0, 0.1);
        return 0;
    }
    if (!(h0 > 0 && h0 < it->max_step))
        return lv_error_set(0, "step %g must lie in (0, max_step = %g)", h0,
                            it->max_step);
    if (!(gamma0 >= 0) || !isfinite(gamma0))
        return lv_error_set(0, "friction %g must be finite and >= 0", gamma0);
    if (it->learn_friction && gamma0 == 0)
        return lv_error_set(0, "a learned friction is softplus(c) > 0: give "
                            "an initial friction above 0, or learn = "
                            "{friction = false}");
    int64_t shape[2] = {K, d};
    it->step_logit = it->per_step ? lv_tensor_full(it->dtype, 2, shape,
                                                   logit(h0 / it->max_step))
                                  : lv_tensor_full(it->dtype, 1, &d,
                                                   logit(h0 / it->max_step));
    leaf(it->step_logit, learn_step);
    /* softplus^{-1}(g) = log(e^g - 1) */
    double raw = it->learn_friction ? log(expm1(gamma0)) : gamma0;
    it->friction = leaf(lv_tensor_full(it->dtype, 1, &d, raw), it->learn_friction);
    if (!it->step_logit || !it->friction)
        return -1;
    switch (it->tempering) {
    case LV_TEMPERING_FIXED:
        if (!(t0 > 1) || !isfinite(t0))
            return lv_error_set(0, "fixed tempering needs a finite T0 > 1, got %g", t0);
        it->temper = leaf(lv_tensor_full(it->dtype, 0, NULL, log(t0 - 1)), 1);
        break;
    case LV_TEMPERING_FREE:
        if (!(t0 > 0 && t0 < 1))
            return lv_error_set(0, "free tempering needs alpha in (0, 1), got %g",
                                t0);
        it->temper = leaf(lv_tensor_full(it->dtype, 1, &K, logit(t0)), 1);
        break;
    default:
        if (it->init_temperature == LV_INIT_TEMPERATURE_VALUE) {
            if (!(t0 > 0) || !isfinite(t0))
                return lv_error_set(0, "init_temperature %g must be > 0", t0);
            it->temper = leaf(lv_tensor_full(it->dtype, 0, NULL, log(t0)), 0);
        }
        break;
    }
    if ((it->tempering != LV_TEMPERING_NONE ||
         it->init_temperature == LV_INIT_TEMPERATURE_VALUE) && !it->temper)
        return -1;
    return 0;
}

/* ---- the quantities the steps use -------------------------------------- */

lv_tensor *lv_integrator_step_size(const lv_integrator *it, int k)
{
    lv_scope S = {0};
    lv_tensor *a = it->step_logit;
    if (it->per_step) {
        lv_op_params p = {.dim = 0, .start = k};
        a = ag_opp(&S, LV_OP_SELECT, a, &p);
    }
    lv_tensor *h = lv_share(ag_scale(&S, ag_op(&S, LV_OP_SIGMOID, a), it->max_step));
    lv_scope_end(&S);
    return h;
}

lv_tensor *lv_integrator_gamma(const lv_integrator *it)
{
    if (it->learn_friction)
        return lv_unary(LV_OP_SOFTPLUS, it->friction);
    return lv_apply1(LV_OP_CONTIGUOUS, 1, (lv_tensor *const *)&it->friction, NULL);
}

/* alpha_k of tempered leapfrog, k = 1..K (0-dim tensors). */
static lv_tensor *tempering_alpha(lv_scope *S, const lv_integrator *it, int k,
                                  int K)
{
    if (it->tempering == LV_TEMPERING_FREE) {
        lv_op_params p = {.dim = 0, .start = k - 1};
        return ag_op(S, LV_OP_SIGMOID, ag_opp(S, LV_OP_SELECT, it->temper, &p));
    }
    /* fixed: T0 = 1 + e^tau, T_k = (1 - T0) k²/K² + T0,
     * alpha_k = sqrt(T_k / T_{k-1}) */
    lv_tensor *T0 = ag_add_scalar(S, ag_op(S, LV_OP_EXP, it->temper), 1.0);
    lv_tensor *one_minus = ag_op(S, LV_OP_NEG, ag_add_scalar(S, T0, -1.0));
    double fk = (double)k * k / ((double)K * K);
    double fk1 = (double)(k - 1) * (k - 1) / ((double)K * K);
    lv_tensor *Tk = ag_add(S, ag_scale(S, one_minus, fk), T0);
    lv_tensor *Tk1 = ag_add(S, ag_scale(S, one_minus, fk1), T0);
    return ag_op(S, LV_OP_SQRT, ag_div(S, Tk, Tk1));
}

lv_tensor *lv_integrator_alpha(const lv_integrator *it, int k, int K)
{
    if (it->tempering == LV_TEMPERING_NONE)
        return lv_scalar(it->dtype, 1.0);
    lv_scope S = {0};
    lv_tensor *a = lv_share(tempering_alpha(&S, it, k, K));
    lv_scope_end(&S);
    return a;
}

/* sum_k h_k [d], for the matched temperature and the log-determinant. */
static lv_tensor *gamma_h_total(lv_scope *S, const lv_integrator *it, int K,
                                lv_tensor *gamma)
{
    lv_tensor *total = NULL;
    for (int k = 0; k < K; k++) {
        lv_tensor *gh = ag_mul(S, gamma, lv_keep(S, lv_integrator_step_size(it, k)));
        total = total ? ag_add(S, total, gh) : gh;
        if (!it->per_step) {          /* the same h every step */
            total = ag_scale(S, gh, (double)K);
            break;
        }
    }
    return total;
}

lv_tensor *lv_integrator_temperature0(const lv_integrator *it, int K)
{
    lv_scope S = {0};
    lv_tensor *T0 = NULL;
    int unit = 0;
    if (it->kind == LV_INTEGRATOR_LEAPFROG) {
        if (it->tempering == LV_TEMPERING_FIXED) {
            T0 = ag_add_scalar(&S, ag_op(&S, LV_OP_EXP, it->temper), 1.0);
        } else if (it->tempering == LV_TEMPERING_FREE) {
            /* T0 = prod_k alpha_k^{-2} = exp(-2 sum_k log alpha_k) */
            lv_tensor *log_alpha = ag_op(&S, LV_OP_LOGSIGMOID, it->temper);
            T0 = ag_op(&S, LV_OP_EXP, ag_scale(&S, ag_opp(&S, LV_OP_SUM, log_alpha,
                                                          NULL), -2.0));
        }
    } else if (it->init_temperature == LV_INIT_TEMPERATURE_MATCHED) {
        lv_tensor *gamma = lv_keep(&S, lv_integrator_gamma(it));
        T0 = ag_op(&S, LV_OP_EXP, ag_scale(&S, gamma_h_total(&S, it, K, gamma), 2.0));
    } else if (it->init_temperature == LV_INIT_TEMPERATURE_VALUE) {
        T0 = ag_op(&S, LV_OP_EXP, it->temper);
    } else {
        unit = 1;
    }
    if (it->kind == LV_INTEGRATOR_LEAPFROG && it->tempering == LV_TEMPERING_NONE)
        unit = 1;
    if (unit)
        T0 = lv_keep(&S, lv_scalar(it->dtype, 1.0));
    lv_tensor *result = lv_share(T0);
    lv_scope_end(&S);
    return result;
}

/* ---- the force ------------------------------------------------------------ */

typedef struct force_ctx {
    const lv_integrator *it;
    lv_potential_fn potential;
    void *ctx;
    int create_graph;
    int n_evals;
    lv_flow_stats *stats;
    int step;                     /* for the statistics */
    int keep_graph;               /* euler: the force must be differentiable */
    lv_tensor *last_U;            /* owned */
    lv_tensor *z_used;            /* owned: the tensor g was taken at */
    lv_tensor *z_arg;             /* owned: the state force() was given */
} force_ctx;

/* Row norms of g [B]: |g_b|. */
static lv_tensor *row_norms(lv_scope *S, lv_tensor *g)
{
    lv_op_params p = {.dim_mask = 2};
    return ag_op(S, LV_OP_SQRT, ag_opp(S, LV_OP_SUM, ag_op(S, LV_OP_SQUARE, g), &p));
}

/* g(z), with z made a leaf that requires grad if it is not on the tape. */
static lv_tensor *force(force_ctx *f, lv_tensor *z)
{
    lv_tensor *zin = z;
    int on_tape = f->create_graph || f->keep_graph;
    if (!z->requires_grad || !on_tape) {
        zin = lv_tensor_detach(z);
        if (!zin)
            return NULL;
        zin->requires_grad = 1;
    } else {
        lv_tensor_retain(zin);
    }
    lv_tensor *U = NULL, *g = NULL;
    int mode = lv_grad_set_enabled(1);
    int status = f->potential(f->ctx, zin, on_tape, &U, &g);
    lv_grad_set_enabled(mode);
    if (status < 0) {
        lv_tensor_release(zin);
        return NULL;
    }
    f->n_evals++;
    lv_tensor_release(f->last_U);
    f->last_U = U;
    lv_tensor_release(f->z_used);
    f->z_used = zin;
    lv_tensor_retain(z);
    lv_tensor_release(f->z_arg);
    f->z_arg = z;

    const lv_integrator *it = f->it;
    lv_scope S = {0};
    int grad_mode = lv_grad_set_enabled(0);
    lv_tensor *norms = row_norms(&S, g);
    lv_tensor *max = ag_opp(&S, LV_OP_MAX, norms, NULL);
    if (max && f->step < f->stats->steps + 1 && f->stats->max_grad)
        f->stats->max_grad[f->step] = lv_tensor_get_linear(max, 0);
    lv_grad_set_enabled(grad_mode);
    if (it->clip_force > 0 && status == 0) {
        /* g * min(1, c / |g|) per sample: still a function of z alone, so
         * the flows' log-determinants stay exact. */
        lv_op_params col = {.dim = 1};
        lv_tensor *n = ag_opp(&S, LV_OP_UNSQUEEZE, row_norms(&S, g), &col);
        lv_tensor *scale = ag_op2(&S, LV_OP_MINIMUM,
                                  ag_div(&S, lv_keep(&S, lv_scalar(g->dtype,
                                                                   it->clip_force)), n),
                                  lv_keep(&S, lv_scalar(g->dtype, 1.0)));
        lv_tensor *clipped = lv_share(ag_mul(&S, g, scale));
        lv_tensor_release(g);
        g = clipped;
    }
    lv_scope_end(&S);
    return g;
}

/* ---- steps ----------------------------------------------------------------- */

/* Fresh N(0, I) noise shaped like x [S B, d] (sample-major rows), from the
 * caller's generator: under a shard, this process's rows (rng.h). */
static lv_tensor *noise_like(lv_generator *gen, const lv_tensor *x)
{
    lv_tensor *xi = lv_tensor_empty(x->dtype, x->ndim, x->shape);
    int64_t rows = x->shape[0], numel = xi ? lv_tensor_numel(xi) : 0;
    if (xi && numel > 0
        && lv_rng_normal_rows(gen, x->dtype, lv_tensor_data(xi), rows,
                              numel / rows, 0.0, 1.0) != 0) {
        lv_tensor_release(xi);
        return NULL;
    }
    return xi;
}

/* a x + b y [+ c w] */
static lv_tensor *lincomb_n(lv_scope *S, int n, lv_tensor **in)
{
    for (int i = 0; i < n; i++)
        if (!in[i])
            return NULL;              /* an operand failed: so does the sum */
    return lv_keep(S, lv_apply1(LV_OP_LINCOMB, n, in, NULL));
}

/* a x + b y. */
static lv_tensor *lincomb(lv_scope *S, lv_tensor *a, lv_tensor *x, lv_tensor *b, lv_tensor *y)
{
    lv_tensor *in[4] = {a, x, b, y};
    return lincomb_n(S, 4, in);
}

/* a x + b y + c w: a separate function, so that a third term that failed
 * (NULL) can never pass for one left out. */
static lv_tensor *lincomb3(lv_scope *S, lv_tensor *a, lv_tensor *x, lv_tensor *b,
                           lv_tensor *y, lv_tensor *c, lv_tensor *w)
{
    lv_tensor *in[6] = {a, x, b, y, c, w};
    return lincomb_n(S, 6, in);
}

static lv_tensor *one(lv_scope *S, lv_dtype dtype) { return lv_keep(S, lv_scalar(dtype, 1.0)); }

/* Per-sample log|det M| of [B, d, d] matrices. */
static lv_tensor *batched_logdet(lv_scope *S, lv_tensor *M)
{
    if (!M)
        return NULL;
    lv_tensor *out[LV_OP_MAX_OUTPUTS] = {NULL, NULL};
    if (lv_apply(out, LV_OP_LOGDET, 1, &M, NULL) < 0)
        return NULL;
    lv_tensor_release(out[1]);
    return lv_keep(S, out[0]);
}

/* The Hessian of U at the point of the last force evaluation, [B, d, d],
 * by d reverse passes through g (SPEC §3.4). */
static lv_tensor *hessian(lv_scope *S, force_ctx *f, lv_tensor *g)
{
    int d = f->it->dim;
    lv_tensor *zin = f->z_used;
    lv_tensor **rows = lv_calloc((size_t)d, sizeof *rows);
    if (!rows) {
        lv_error_set(0, "out of memory");
        return NULL;
    }
    lv_tensor *H = NULL;
    int ok = 1;
    for (int j = 0; j < d && ok; j++) {
        lv_tensor *e = lv_tensor_zeros(g->dtype, g->ndim, g->shape);
        if (!e) {
            ok = 0;
            break;
        }
        for (int64_t b = 0; b < g->shape[0]; b++)
            lv_tensor_set_index(e, (int64_t[]){b, j}, 1.0);
        lv_backward_opts opts = {.create_graph = f->create_graph,
                                 .retain_graph = 1, .allow_unused = 1};
        lv_tensor *row = NULL;
        ok = lv_backward(1, &g, &e, 1, &zin, &row, &opts) == 0;
        lv_tensor_release(e);
        if (ok && !row)
            row = lv_tensor_zeros(g->dtype, g->ndim, g->shape);
        rows[j] = row;
        ok = ok && row;
    }
    if (ok) {
        lv_op_params p = {.dim = 1};
        H = lv_keep(S, lv_apply1(LV_OP_STACK, d, rows, &p));
    }
    for (int j = 0; j < d; j++)
        lv_tensor_release(rows[j]);
    free(rows);
    return H;
}

/* A [d] vector as a [d, d] diagonal matrix: diag(v) = I * v. */
static lv_tensor *diag(lv_scope *S, lv_tensor *v, int d)
{
    if (!v)
        return NULL;
    int64_t shape[2] = {d, d};
    lv_tensor *I = lv_keep(S, lv_tensor_zeros(v->dtype, 2, shape));
    for (int i = 0; I && i < d; i++)
        lv_tensor_set_index(I, (int64_t[]){i, i}, 1.0);
    return ag_mul(S, I, v);
}

/* ---- the flow --------------------------------------------------------------- */

static int check_nonfinite(lv_flow_stats *stats, int step, lv_tensor *z,
                           lv_tensor *rho)
{
    if (stats->nonfinite_step)
        return 0;
    lv_tensor *pair[2] = {z, rho};
    for (int t = 0; t < 2; t++) {
        lv_tensor *x = pair[t];
        if (!x)
            continue;
        int64_t B = x->shape[0], d = x->shape[1];
        for (int64_t b = 0; b < B; b++)
            for (int64_t j = 0; j < d; j++) {
                double v = lv_tensor_get_linear(x, b * d + j);
                if (!isfinite(v)) {
                    stats->nonfinite_step = step;
                    stats->nonfinite_sample = (int)b + 1;
                    return 0;
                }
            }
    }
    return 0;
}

/* Mean over samples of U + ½|rho|². */
static double hamiltonian(lv_tensor *U, lv_tensor *rho)
{
    if (!U)
        return NAN;
    int mode = lv_grad_set_enabled(0);
    lv_scope S = {0};
    lv_tensor *H = U;
    if (rho) {
        lv_op_params p = {.dim_mask = 2};
        H = ag_add(&S, U, ag_scale(&S, ag_opp(&S, LV_OP_SUM,
                                              ag_op(&S, LV_OP_SQUARE, rho), &p), 0.5));
    }
    lv_tensor *m = ag_opp(&S, LV_OP_MEAN, H, NULL);
    double v = m ? lv_tensor_get_linear(m, 0) : (double)NAN;
    lv_scope_end(&S);
    lv_grad_set_enabled(mode);
    return v;
}

void lv_flow_result_clear(lv_flow_result *res)
{
    lv_tensor_release(res->z);
    lv_tensor_release(res->rho);
    lv_tensor_release(res->logdet);
    lv_tensor_release(res->U_end);
    free(res->stats.max_grad);
    memset(res, 0, sizeof *res);
}

/* Moves the state variable *slot on to v (a scope's tensor, or NULL after
 * a failure): *slot keeps its own reference. */
static int carry(lv_tensor **slot, lv_tensor *v)
{
    lv_tensor *next = lv_share(v);
    lv_tensor_release(*slot);
    *slot = next;
    return next ? 0 : -1;
}

int lv_integrator_flow(const lv_integrator *it, lv_tensor *z0, lv_tensor *rho0,
                       int K, lv_potential_fn potential, void *ctx,
                       int create_graph, lv_tensor *const *planar,
                       lv_generator *gen, lv_flow_result *res)
{
    memset(res, 0, sizeof *res);
    if (!gen)
        gen = lv_generator_default();
    char buf[128];
    if (K < 1)
        return lv_error_set(4, "K must be at least 1, got %d", K);
    if (it->amortized) {
        if (!planar)
            return lv_error_set(5, "an amortized planar flow needs its "
                                "parameters: {params = {u = [B, K, d], w = "
                                "[B, K, d], b = [B, K]}}");
        int64_t B = z0->ndim == 2 ? z0->shape[0] : -1;
        const lv_tensor *u = planar[0], *w = planar[1], *b = planar[2];
        if (u->ndim != 3 || w->ndim != 3 || b->ndim != 2 || u->shape[0] != B ||
            w->shape[0] != B || b->shape[0] != B || u->shape[1] < K ||
            w->shape[1] < K || b->shape[1] < K || u->shape[2] != it->dim ||
            w->shape[2] != it->dim || u->dtype != it->dtype ||
            w->dtype != it->dtype || b->dtype != it->dtype)
            return lv_error_set(5, "amortized planar parameters must be u, w "
                                "[B, K, %d] and b [B, K] of dtype %s, for B "
                                "samples and at least K steps", it->dim,
                                lv_dtype_name(it->dtype));
    } else if (planar) {
        return lv_error_set(5, "params are for an amortized planar flow only");
    }
    if (z0->ndim != 2 || z0->shape[1] != it->dim)
        return lv_error_set(1, "z0 must be [B, %d], got %s", it->dim,
                            lv_shape_format(buf, sizeof buf, z0->ndim, z0->shape));
    int momentum = it->kind != LV_INTEGRATOR_PLANAR &&
                   !(it->kind == LV_INTEGRATOR_EULER && it->overdamped);
    if (momentum && (!rho0 || rho0->ndim != 2 ||
                     rho0->shape[0] != z0->shape[0] || rho0->shape[1] != it->dim))
        return lv_error_set(2, "rho0 must be [B, %d] like z0, got %s", it->dim,
                            rho0 ? lv_shape_format(buf, sizeof buf, rho0->ndim,
                                                   rho0->shape) : "nil");
    if ((it->per_step || it->tempering == LV_TEMPERING_FREE ||
         (it->kind == LV_INTEGRATOR_PLANAR && !it->amortized)) && K > it->steps)
        return lv_error_set(4, "this integrator has parameters for %d steps "
                            "(per-step sizes, free tempering or planar "
                            "layers); K = %d", it->steps, K);
    if (z0->dtype != it->dtype || (momentum && rho0->dtype != it->dtype))
        return lv_error_set(1, "z0 and rho0 must be %s like the integrator",
                            lv_dtype_name(it->dtype));

    res->stats.steps = K;
    res->stats.max_grad = lv_calloc((size_t)K + 1, sizeof(double));
    if (!res->stats.max_grad)
        return lv_error_set(0, "out of memory");
    for (int k = 0; k <= K; k++)
        res->stats.max_grad[k] = NAN;

    int mode = lv_grad_set_enabled(create_graph);
    force_ctx f = {it, potential, ctx, create_graph, 0, &res->stats, 0,
                   it->kind == LV_INTEGRATOR_EULER, NULL, NULL, NULL};
    int64_t B = z0->shape[0];
    lv_dtype dt = it->dtype;
    /* The state, each an owned reference carried from step to step. */
    lv_tensor *z = lv_share(z0), *rho = momentum ? lv_share(rho0) : NULL;
    lv_tensor *g = NULL, *logdet = lv_tensor_zeros(dt, 1, &B);
    lv_tensor *gamma = it->friction ? lv_integrator_gamma(it) : NULL;
    double H_start = NAN;
    int status = logdet && (!it->friction || gamma) ? 0 : -1;

    for (int k = 1; k <= K && status == 0; k++) {
        lv_scope S = {0};
        f.step = k - 1;
        lv_tensor *h = it->step_logit ? lv_keep(&S, lv_integrator_step_size(it, k - 1))
                                      : NULL;
        lv_tensor *z_new = NULL, *rho_new = NULL, *g_new = NULL;
        lv_tensor *ld_new = logdet;
        if (it->step_logit && !h) {
            status = -1;
            goto step_done;
        }
        switch (it->kind) {
        case LV_INTEGRATOR_LEAPFROG: {
            /* SPEC §3.1: rho½ = rho - ½h g(z); z' = z + h rho½;
             * rho' = alpha_k (rho½ - ½h g(z')) */
            lv_tensor *g_here = g;
            if (!g || !it->cache) {
                g_here = lv_keep(&S, force(&f, z));
                if (k == 1)
                    H_start = hamiltonian(f.last_U, rho);
            }
            lv_tensor *half = ag_scale(&S, h, -0.5);
            lv_tensor *rho_half = lincomb(&S, one(&S, dt), rho, half, g_here);
            z_new = lincomb(&S, one(&S, dt), z, h, rho_half);
            f.step = k;
            g_new = z_new ? lv_keep(&S, force(&f, z_new)) : NULL;
            rho_new = lincomb(&S, one(&S, dt), rho_half, half, g_new);
            if (it->tempering != LV_TEMPERING_NONE) {
                lv_tensor *alpha = tempering_alpha(&S, it, k, K);
                rho_new = ag_mul(&S, rho_new, alpha);
                /* log|det| = d log alpha_k, the same for every sample */
                ld_new = ag_add(&S, logdet, ag_scale(&S, ag_op(&S, LV_OP_LOG, alpha),
                                                     (double)it->dim));
            }
            break;
        }
        case LV_INTEGRATOR_QSL: {
            /* SPEC §3.2: z' = z + h rho; rho' = e^{-gamma h} rho - h g(z')
             * + s xi, s = sqrt(1 - e^{-2 gamma h}) */
            z_new = lincomb(&S, one(&S, dt), z, h, rho);
            f.step = k;
            g_new = z_new ? lv_keep(&S, force(&f, z_new)) : NULL;
            if (k == 1)
                H_start = hamiltonian(f.last_U, rho);
            lv_tensor *gh = ag_mul(&S, gamma, h);
            lv_tensor *decay = ag_op(&S, LV_OP_EXP, ag_op(&S, LV_OP_NEG, gh));
            lv_tensor *minus_h = ag_op(&S, LV_OP_NEG, h);
            if (it->noise) {
                lv_tensor *s = ag_op(&S, LV_OP_SQRT, ag_op(&S, LV_OP_NEG,
                                      ag_op(&S, LV_OP_EXPM1, ag_scale(&S, gh, -2.0))));
                lv_tensor *xi = lv_keep(&S, noise_like(gen, rho));
                rho_new = lincomb3(&S, decay, rho, minus_h, g_new, s, xi);
            } else {
                rho_new = lincomb(&S, decay, rho, minus_h, g_new);
            }
            break;
        }
        case LV_INTEGRATOR_QSL2: {
            /* SPEC §3.3: half kick, half drift, the friction-and-noise map,
             * half drift, half kick */
            lv_tensor *g_here = g;
            if (!g) {
                g_here = lv_keep(&S, force(&f, z));
                H_start = hamiltonian(f.last_U, rho);
            }
            lv_tensor *half = ag_scale(&S, h, 0.5);
            lv_tensor *minus_half = ag_scale(&S, h, -0.5);
            lv_tensor *r = lincomb(&S, one(&S, dt), rho, minus_half, g_here);
            lv_tensor *zm = lincomb(&S, one(&S, dt), z, half, r);
            lv_tensor *gh = ag_mul(&S, gamma, h);
            lv_tensor *decay = ag_op(&S, LV_OP_EXP, ag_op(&S, LV_OP_NEG, gh));
            if (it->noise) {
                lv_tensor *s = ag_op(&S, LV_OP_SQRT, ag_op(&S, LV_OP_NEG,
                                      ag_op(&S, LV_OP_EXPM1, ag_scale(&S, gh, -2.0))));
                lv_tensor *xi = lv_keep(&S, noise_like(gen, rho));
                r = lincomb(&S, decay, r, s, xi);
            } else {
                r = ag_mul(&S, decay, r);
            }
            z_new = lincomb(&S, one(&S, dt), zm, half, r);
            f.step = k;
            g_new = z_new ? lv_keep(&S, force(&f, z_new)) : NULL;
            rho_new = lincomb(&S, one(&S, dt), r, minus_half, g_new);
            break;
        }
        case LV_INTEGRATOR_EULER: {
            /* SPEC §3.4: underdamped z' = z + h rho, rho' = (1 - gamma h)
             * rho - h g(z) + sqrt(2 gamma h) xi, log|det(D_{1-gh} + D_h H
             * D_h)|; overdamped z' = z - h g + sqrt(2h) xi,
             * log|det(I - D_h H)|. */
            lv_tensor *g_here = lv_keep(&S, force(&f, z));
            if (k == 1)
                H_start = hamiltonian(f.last_U, rho);
            lv_tensor *H = g_here ? hessian(&S, &f, g_here) : NULL;
            int d = it->dim;
            lv_op_params row = {.dim = 1}, col = {.dim = 0};
            lv_tensor *h_row = ag_opp(&S, LV_OP_UNSQUEEZE, h, &row);   /* [d, 1] */
            lv_tensor *minus_h = ag_op(&S, LV_OP_NEG, h);
            if (it->overdamped) {
                lv_tensor *M = ag_sub(&S, diag(&S, one(&S, dt), d), ag_mul(&S, h_row, H));
                ld_new = ag_add(&S, logdet, batched_logdet(&S, M));
                z_new = it->noise
                    ? lincomb3(&S, one(&S, dt), z, minus_h, g_here,
                               ag_op(&S, LV_OP_SQRT, ag_scale(&S, h, 2.0)),
                               lv_keep(&S, noise_like(gen, z)))
                    : lincomb(&S, one(&S, dt), z, minus_h, g_here);
            } else {
                lv_tensor *hh = ag_mul(&S, h_row, ag_opp(&S, LV_OP_UNSQUEEZE, h, &col));
                lv_tensor *gh = ag_mul(&S, gamma, h);
                lv_tensor *damp = ag_op(&S, LV_OP_NEG, ag_add_scalar(&S, gh, -1.0));
                lv_tensor *M = ag_add(&S, diag(&S, damp, d), ag_mul(&S, hh, H));
                ld_new = ag_add(&S, logdet, batched_logdet(&S, M));
                z_new = lincomb(&S, one(&S, dt), z, h, rho);
                rho_new = it->noise
                    ? lincomb3(&S, damp, rho, minus_h, g_here,
                               ag_op(&S, LV_OP_SQRT, ag_scale(&S, gh, 2.0)),
                               lv_keep(&S, noise_like(gen, rho)))
                    : lincomb(&S, damp, rho, minus_h, g_here);
            }
            break;
        }
        case LV_INTEGRATOR_PLANAR: {
            /* SPEC §3.5: z' = z + û tanh(wᵀz + b), û = u + (m(wᵀu) - wᵀu)
             * w / |w|², m(a) = -1 + softplus(a);
             * log|det| = log|1 + (1 - tanh²(wᵀz + b)) ûᵀw| */
            /* Global: u, w [d], b []. Amortized: u, w [B, d], b [B], one
             * set per sample. Inner products run over the last dim. */
            int per_sample = it->amortized;
            lv_op_params sel = {.dim = per_sample ? 1 : 0, .start = k - 1};
            lv_tensor *u = ag_opp(&S, LV_OP_SELECT, per_sample ? planar[0] : it->planar_u, &sel);
            lv_tensor *w = ag_opp(&S, LV_OP_SELECT, per_sample ? planar[1] : it->planar_w, &sel);
            lv_tensor *b = ag_opp(&S, LV_OP_SELECT, per_sample ? planar[2] : it->planar_b, &sel);
            lv_op_params last = {.dim_mask = per_sample ? 2u : 1u};
            lv_op_params col1 = {.dim = per_sample ? 1 : 0};
            lv_tensor *wu = ag_opp(&S, LV_OP_SUM, ag_mul(&S, w, u), &last);
            lv_tensor *m = ag_add_scalar(&S, ag_op(&S, LV_OP_SOFTPLUS, wu), -1.0);
            lv_tensor *coef = ag_div(&S, ag_sub(&S, m, wu),
                                     ag_opp(&S, LV_OP_SUM, ag_mul(&S, w, w), &last));
            if (per_sample)
                coef = ag_opp(&S, LV_OP_UNSQUEEZE, coef, &col1);
            lv_tensor *u_hat = ag_add(&S, u, ag_mul(&S, coef, w));
            lv_op_params rows = {.dim_mask = 2};
            lv_tensor *act = ag_op(&S, LV_OP_TANH,
                                   ag_add(&S, ag_opp(&S, LV_OP_SUM, ag_mul(&S, z, w), &rows), b));
            lv_op_params colB = {.dim = 1};
            z_new = ag_add(&S, z, ag_mul(&S, ag_opp(&S, LV_OP_UNSQUEEZE, act, &colB),
                                         u_hat));
            lv_tensor *psi = ag_add_scalar(&S, ag_op(&S, LV_OP_NEG,
                                                     ag_op(&S, LV_OP_SQUARE, act)), 1.0);
            lv_tensor *det = ag_add_scalar(&S, ag_mul(&S, psi, ag_opp(&S, LV_OP_SUM,
                                                      ag_mul(&S, u_hat, w), &last)), 1.0);
            ld_new = ag_add(&S, logdet, ag_op(&S, LV_OP_LOG, ag_op(&S, LV_OP_ABS, det)));
            break;
        }
        default:
            break;
        }
        /* The friction's log-determinant, -sum_j gamma_j h_j per step. */
        if (it->kind == LV_INTEGRATOR_QSL || it->kind == LV_INTEGRATOR_QSL2)
            ld_new = ag_sub(&S, ld_new, ag_opp(&S, LV_OP_SUM, ag_mul(&S, gamma, h), NULL));
        status = carry(&z, z_new);
        if (status == 0 && momentum)
            status = carry(&rho, rho_new);
        if (status == 0 && g_new)
            status = carry(&g, g_new);
        if (status == 0 && ld_new != logdet)
            status = carry(&logdet, ld_new);
        if (status == 0)
            check_nonfinite(&res->stats, k, z, rho);
step_done:
        lv_scope_end(&S);
    }

    if (status == 0) {
        res->stats.delta_hamiltonian = it->kind == LV_INTEGRATOR_PLANAR
            ? (double)NAN : hamiltonian(f.last_U, rho) - H_start;
        res->z = lv_share(z);
        res->rho = momentum ? lv_share(rho) : NULL;
        res->logdet = lv_share(logdet);
        res->n_grad_evals = f.n_evals;
        /* -U(z_K) is the log-joint the ELBO needs at the end: handing it
         * back saves the caller a decoder pass. Without create_graph the
         * potential's graph is gone, so only its values are usable, and
         * only when the caller records nothing. */
        if (f.z_arg == z && f.last_U && (create_graph || !mode))
            res->U_end = create_graph ? lv_share(f.last_U) : lv_tensor_detach(f.last_U);
    }
    lv_tensor_release(z);
    lv_tensor_release(rho);
    lv_tensor_release(g);
    lv_tensor_release(logdet);
    lv_tensor_release(gamma);
    lv_tensor_release(f.last_U);
    lv_tensor_release(f.z_used);
    lv_tensor_release(f.z_arg);
    lv_grad_set_enabled(mode);
    if (status < 0) {
        lv_flow_result_clear(res);
        return -1;
    }
    return 0;
}
