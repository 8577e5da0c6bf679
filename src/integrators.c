/*
 * integrators.c -- what every integrator shares: making one from its
 * kind's record and options, the quantities the steps use (h, gamma, T0,
 * alpha_k), the force, and the K-step flow that runs a kind's step.
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
 * Then, when every step has the same h, the coefficients that depend only
 * on h and gamma (a kind's coefs, the friction's log-determinant) are
 * computed once for the flow: the same ops on the same values, so the
 * same numbers. With create_graph they are recomputed at every step, so
 * that the tape -- and the gradients, to the last bit -- stay what they
 * were (one shared node would sum the steps' gradients in another order).
 *
 * Not here: the steps and the records of the kinds (integrator_kinds.c),
 * the ELBO (lua/lvae/models.lua) and the Lua binding.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "autograd.h"
#include "integrator_step.h"
#include "integrators.h"
#include "rng.h"
#include "vjp.h"

/* ---- construction ------------------------------------------------------ */

void lv_integrator_options_init(lv_integrator_options *o,
                                const lv_integrator_kind *kind)
{
    memset(o, 0, sizeof *o);
    for (const lv_integrator_option *const *p = kind->options; *p; p++) {
        const lv_integrator_option *opt = *p;
        char *slot = (char *)o + opt->offset;
        switch (opt->type) {
        case LV_OPTION_NUMBER:
            *(double *)slot = opt->def;
            break;
        case LV_OPTION_DTYPE:
            *(lv_dtype *)slot = (lv_dtype)opt->def;
            break;
        case LV_OPTION_LEARN:
            o->learn_step = 1;
            break;
        default:                  /* the int-valued types */
            *(int *)slot = (int)opt->def;
            break;
        }
    }
    o->noise = kind->has_noise;
    o->learn_friction = kind->learnable_friction;
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

/* What the binding checks with the Lua types, checked again for a C
 * caller: counts in range, choices among the choices. */
static int check_ranges(const lv_integrator_kind *kind,
                        const lv_integrator_options *o)
{
    for (const lv_integrator_option *const *p = kind->options; *p; p++) {
        const lv_integrator_option *opt = *p;
        const int *v = (const int *)(const void *)((const char *)o + opt->offset);
        int n = 0;
        switch (opt->type) {
        case LV_OPTION_COUNT:
            if (*v < 1 || *v > opt->max)
                return lv_error_set(0, "option '%s' must be a positive integer "
                                    "up to %d, got %d", opt->name, opt->max, *v);
            break;
        case LV_OPTION_CHOICE:
        case LV_OPTION_CHOICE_OR_NUMBER:
            while (opt->choices[n])
                n++;
            /* CHOICE_OR_NUMBER: index n is "the number" */
            if (*v < 0 || *v > n - (opt->type == LV_OPTION_CHOICE))
                return lv_error_set(0, "option '%s' has no choice %d", opt->name, *v);
            break;
        default:
            break;
        }
    }
    return 0;
}

/* The common parameters: step sizes, friction, and the tempering or the
 * initial temperature. */
static int make_params(lv_integrator *it, const lv_integrator_options *o)
{
    int64_t d = it->dim, K = it->steps;
    int64_t shape[2] = {K, d};
    double a = logit(o->step / it->max_step);
    it->step_logit = it->per_step ? lv_tensor_full(it->dtype, 2, shape, a)
                                  : lv_tensor_full(it->dtype, 1, &d, a);
    leaf(it->step_logit, o->learn_step);
    /* softplus^{-1}(g) = log(e^g - 1) */
    double raw = it->learn_friction ? log(expm1(o->friction)) : o->friction;
    it->friction = leaf(lv_tensor_full(it->dtype, 1, &d, raw), it->learn_friction);
    if (!it->step_logit || !it->friction)
        return -1;
    switch (it->tempering) {
    case LV_TEMPERING_FIXED:
        it->temper = leaf(lv_tensor_full(it->dtype, 0, NULL, log(o->T0 - 1)), 1);
        break;
    case LV_TEMPERING_FREE:
        it->temper = leaf(lv_tensor_full(it->dtype, 1, &K, logit(o->alpha)), 1);
        break;
    default:
        if (it->init_temperature == LV_INIT_TEMPERATURE_VALUE)
            it->temper = leaf(lv_tensor_full(it->dtype, 0, NULL, log(o->init_T0)),
                              o->learn_temperature);
        break;
    }
    if ((it->tempering != LV_TEMPERING_NONE ||
         it->init_temperature == LV_INIT_TEMPERATURE_VALUE) && !it->temper)
        return -1;
    return 0;
}

lv_integrator *lv_integrator_make(const lv_integrator_kind *kind,
                                  const lv_integrator_options *opts)
{
    lv_integrator_options o = *opts;
    o.learn_friction = o.learn_friction && kind->learnable_friction;
    if (check_ranges(kind, &o) < 0)
        return NULL;
    for (const lv_integrator_option *const *p = kind->options; *p; p++)
        if ((*p)->check && (*p)->check(kind, &o) < 0)
            return NULL;

    lv_integrator *it = lv_calloc(1, sizeof *it);
    if (!it) {
        lv_error_set(0, "out of memory");
        return NULL;
    }
    it->kind = kind;
    it->dim = o.dim;
    it->dtype = o.dtype;
    it->steps = o.steps;
    it->per_step = o.per_step;
    it->max_step = o.max_step;
    it->momentum = kind->has_momentum;
    it->noise = o.noise;
    it->cache = o.cache;
    it->overdamped = o.overdamped;
    it->amortized = o.amortized;
    it->clip_force = o.clip_force;
    it->tempering = (lv_tempering)o.tempering;
    it->init_temperature = (lv_init_temperature)o.init_temperature;
    it->learn_friction = o.learn_friction;
    int status = kind->setup ? kind->setup(it, &o) : 0;
    /* Step sizes and friction exist for the kinds that take a step. */
    if (status == 0 && lv_integrator_kind_option(kind, "step"))
        status = make_params(it, &o);
    if (status < 0) {
        lv_integrator_free(it);
        return NULL;
    }
    return it;
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
    lv_tensor *T0;
    if (it->tempering == LV_TEMPERING_FIXED) {
        T0 = ag_add_scalar(&S, ag_op(&S, LV_OP_EXP, it->temper), 1.0);
    } else if (it->tempering == LV_TEMPERING_FREE) {
        /* T0 = prod_k alpha_k^{-2} = exp(-2 sum_k log alpha_k) */
        lv_tensor *log_alpha = ag_op(&S, LV_OP_LOGSIGMOID, it->temper);
        T0 = ag_op(&S, LV_OP_EXP, ag_scale(&S, ag_opp(&S, LV_OP_SUM, log_alpha,
                                                      NULL), -2.0));
    } else if (it->init_temperature == LV_INIT_TEMPERATURE_MATCHED) {
        lv_tensor *gamma = lv_keep(&S, lv_integrator_gamma(it));
        T0 = ag_op(&S, LV_OP_EXP, ag_scale(&S, gamma_h_total(&S, it, K, gamma), 2.0));
    } else if (it->init_temperature == LV_INIT_TEMPERATURE_VALUE) {
        T0 = ag_op(&S, LV_OP_EXP, it->temper);
    } else {
        T0 = lv_keep(&S, lv_scalar(it->dtype, 1.0));
    }
    lv_tensor *result = lv_share(T0);
    lv_scope_end(&S);
    return result;
}

/* ---- the force ------------------------------------------------------------ */

/* One flow's state besides (z, rho): the potential, the statistics, and
 * the force evaluations. */
typedef struct lv_flow_run {
    const lv_integrator *it;
    lv_potential_fn potential;
    void *ctx;
    int create_graph;
    int keep_graph;               /* needs_hessian: the force must be differentiable */
    lv_generator *gen;
    int n_evals;
    lv_flow_stats *stats;
    double H_start;               /* H at the first force evaluation */
    lv_tensor *last_U;            /* owned */
    lv_tensor *z_used;            /* owned: the tensor g was taken at */
    lv_tensor *z_arg;             /* owned: the state force() was given */
} lv_flow_run;

/* Row norms of g [B]: |g_b|. */
static lv_tensor *row_norms(lv_scope *S, lv_tensor *g)
{
    lv_op_params p = {.dim_mask = 2};
    return ag_op(S, LV_OP_SQRT, ag_opp(S, LV_OP_SUM, ag_op(S, LV_OP_SQUARE, g), &p));
}

/* g(z), with z made a leaf that requires grad if it is not on the tape;
 * its largest row norm goes to stats->max_grad[point]. */
static lv_tensor *force(lv_flow_run *f, lv_tensor *z, int point)
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
    if (max && point < f->stats->steps + 1 && f->stats->max_grad)
        f->stats->max_grad[point] = lv_tensor_get_linear(max, 0);
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

/* ---- what a step may call (integrator_step.h) ----------------------------- */

lv_tensor *lv_step_force(lv_step *st, lv_tensor *z)
{
    if (!z)
        return NULL;
    lv_flow_run *f = st->run;
    lv_tensor *g = lv_keep(st->S, force(f, z, z == st->z ? st->k - 1 : st->k));
    /* H(start): U where the force was first taken, with the momentum the
     * flow was given */
    if (g && f->n_evals == 1)
        f->H_start = hamiltonian(f->last_U, st->rho);
    return g;
}

lv_tensor *lv_step_hessian(lv_step *st, lv_tensor *g)
{
    if (!g)
        return NULL;
    lv_flow_run *f = st->run;
    int d = st->it->dim;
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
        H = lv_keep(st->S, lv_apply1(LV_OP_STACK, d, rows, &p));
    }
    for (int j = 0; j < d; j++)
        lv_tensor_release(rows[j]);
    free(rows);
    return H;
}

/* Fresh N(0, I) noise shaped like x [S B, d] (sample-major rows), from the
 * caller's generator: under a shard, this process's rows (rng.h). */
lv_tensor *lv_step_noise(lv_step *st, const lv_tensor *x)
{
    if (!x)
        return NULL;
    lv_tensor *xi = lv_tensor_empty(x->dtype, x->ndim, x->shape);
    int64_t rows = x->shape[0], numel = xi ? lv_tensor_numel(xi) : 0;
    if (xi && numel > 0
        && lv_rng_normal_rows(st->run->gen, x->dtype, lv_tensor_data(xi), rows,
                              numel / rows, 0.0, 1.0) != 0) {
        lv_tensor_release(xi);
        return NULL;
    }
    return lv_keep(st->S, xi);
}

/* a x + b y [+ c w] */
static lv_tensor *lincomb_n(lv_scope *S, int n, lv_tensor **in)
{
    for (int i = 0; i < n; i++)
        if (!in[i])
            return NULL;              /* an operand failed: so does the sum */
    return lv_keep(S, lv_apply1(LV_OP_LINCOMB, n, in, NULL));
}

lv_tensor *lv_step_lincomb(lv_step *st, lv_tensor *a, lv_tensor *x,
                           lv_tensor *b, lv_tensor *y)
{
    lv_tensor *in[4] = {a, x, b, y};
    return lincomb_n(st->S, 4, in);
}

/* A separate function, so that a third term that failed (NULL) can never
 * pass for one left out. */
lv_tensor *lv_step_lincomb3(lv_step *st, lv_tensor *a, lv_tensor *x,
                            lv_tensor *b, lv_tensor *y, lv_tensor *c,
                            lv_tensor *w)
{
    lv_tensor *in[6] = {a, x, b, y, c, w};
    return lincomb_n(st->S, 6, in);
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

/* The friction's log-determinant of one step, sum_j gamma_j h_j (SPEC
 * §3.2: the flow subtracts it). */
static lv_tensor *friction_logdet(lv_scope *S, lv_tensor *gamma, lv_tensor *h)
{
    return ag_opp(S, LV_OP_SUM, ag_mul(S, gamma, h), NULL);
}

static int check_flow_args(const lv_integrator *it, lv_tensor *z0,
                           lv_tensor *rho0, int K, lv_tensor *const *planar)
{
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
    if (it->momentum && (!rho0 || rho0->ndim != 2 ||
                         rho0->shape[0] != z0->shape[0] || rho0->shape[1] != it->dim))
        return lv_error_set(2, "rho0 must be [B, %d] like z0, got %s", it->dim,
                            rho0 ? lv_shape_format(buf, sizeof buf, rho0->ndim,
                                                   rho0->shape) : "nil");
    if ((it->per_step || it->tempering == LV_TEMPERING_FREE || it->planar_u) &&
        K > it->steps)
        return lv_error_set(4, "this integrator has parameters for %d steps "
                            "(per-step sizes, free tempering or planar "
                            "layers); K = %d", it->steps, K);
    if (z0->dtype != it->dtype || (it->momentum && rho0->dtype != it->dtype))
        return lv_error_set(1, "z0 and rho0 must be %s like the integrator",
                            lv_dtype_name(it->dtype));
    return 0;
}

int lv_integrator_flow(const lv_integrator *it, lv_tensor *z0, lv_tensor *rho0,
                       int K, lv_potential_fn potential, void *ctx,
                       int create_graph, lv_tensor *const *planar,
                       lv_generator *gen, lv_flow_result *res)
{
    memset(res, 0, sizeof *res);
    if (check_flow_args(it, z0, rho0, K, planar) < 0)
        return -1;
    res->stats.steps = K;
    res->stats.max_grad = lv_calloc((size_t)K + 1, sizeof(double));
    if (!res->stats.max_grad)
        return lv_error_set(0, "out of memory");
    for (int k = 0; k <= K; k++)
        res->stats.max_grad[k] = NAN;

    const lv_integrator_kind *kind = it->kind;
    int mode = lv_grad_set_enabled(create_graph);
    lv_flow_run f = {.it = it, .potential = potential, .ctx = ctx,
                     .create_graph = create_graph, .keep_graph = kind->needs_hessian,
                     .gen = gen ? gen : lv_generator_default(),
                     .stats = &res->stats, .H_start = NAN};
    int64_t B = z0->shape[0];
    /* The state, each an owned reference carried from step to step. */
    lv_tensor *z = lv_share(z0), *rho = it->momentum ? lv_share(rho0) : NULL;
    lv_tensor *g = NULL, *logdet = lv_tensor_zeros(it->dtype, 1, &B);
    lv_tensor *gamma = it->friction ? lv_integrator_gamma(it) : NULL;

    /* What every step shares; with one h for all steps and nothing
     * recorded, the coefficients too (see the top of the file). */
    lv_scope flow_scope = {0};
    lv_step shared = {.it = it, .S = &flow_scope, .K = K, .gamma = gamma,
                      .params = planar, .run = &f};
    shared.one = lv_keep(&flow_scope, lv_scalar(it->dtype, 1.0));
    int once = it->step_logit && !it->per_step && !create_graph;
    lv_tensor *friction_ld = NULL;
    int status = logdet && (!it->friction || gamma) && shared.one ? 0 : -1;
    if (status == 0 && once) {
        shared.h = lv_keep(&flow_scope, lv_integrator_step_size(it, 0));
        if (shared.h && kind->coefs)
            kind->coefs(&shared);
        if (shared.h && kind->logdet_friction)
            friction_ld = friction_logdet(&flow_scope, gamma, shared.h);
        status = shared.h ? 0 : -1;
    }

    for (int k = 1; k <= K && status == 0; k++) {
        lv_scope S = {0};
        lv_step st = shared;
        st.S = &S;
        st.k = k;
        st.z = z;
        st.rho = rho;
        st.g = g;
        st.logdet = st.logdet_new = logdet;
        if (it->step_logit && !once) {
            st.h = lv_keep(&S, lv_integrator_step_size(it, k - 1));
            if (!st.h) {
                status = -1;
                goto step_done;
            }
            if (kind->coefs)
                kind->coefs(&st);
        }
        kind->step(&st);
        if (kind->logdet_friction)
            st.logdet_new = ag_sub(&S, st.logdet_new,
                                   once ? friction_ld : friction_logdet(&S, gamma, st.h));
        status = carry(&z, st.z_new);
        if (status == 0 && it->momentum)
            status = carry(&rho, st.rho_new);
        if (status == 0 && st.g_new)
            status = carry(&g, st.g_new);
        if (status == 0 && st.logdet_new != logdet)
            status = carry(&logdet, st.logdet_new);
        if (status == 0)
            check_nonfinite(&res->stats, k, z, rho);
step_done:
        lv_scope_end(&S);
    }
    lv_scope_end(&flow_scope);

    if (status == 0) {
        /* NaN when no force was taken (planar) */
        res->stats.delta_hamiltonian = hamiltonian(f.last_U, rho) - f.H_start;
        res->z = lv_share(z);
        res->rho = it->momentum ? lv_share(rho) : NULL;
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
