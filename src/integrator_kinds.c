/*
 * integrator_kinds.c -- one record per kind of integrator (SPEC §3) and
 * its step, side by side: leapfrog, qsl, qsl2, euler, planar, obabo.
 *
 * B = batch, d = latent dim; h [d] step sizes, gamma [d] friction, xi
 * [B, d] fresh N(0, I) noise.
 *
 * A kind is a record (integrators.h): its name, its options (shared ones
 * below, each with its default and its check), what it has, and three
 * functions -- setup (its own options and parameters, rarely needed),
 * coefs (what depends only on h and gamma: the flow computes it once per
 * flow when it can) and step. A step reads st->z, st->rho, st->g and the
 * coefficients, and leaves st->z_new, st->rho_new (st->g_new: the force
 * at z_new, which the next step gets as st->g; st->logdet_new). Its
 * arithmetic is ordinary recorded ops (vjp.h's ag_* helpers and
 * lv_step_lincomb), so the flow is differentiable through it.
 * README.md's "Adding an integrator" adds obabo, the last kind here.
 *
 * Not here: the flow that runs the steps, the force, the statistics
 * (integrators.c); the Lua binding (lua_integrators.c).
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "integrator_step.h"
#include "integrators.h"
#include "rng.h"
#include "vjp.h"

/* ---- the options and their checks ---------------------------------------- */

/* A number as Lua's %f writes it ("-1.0", "0.6", "-nan"): the messages
 * below were the binding's before they were the core's. */
static const char *lua_number(char *buf, size_t size, double x)
{
    int n = snprintf(buf, size, "%.14g", x);
    if (n > 0 && (size_t)n + 2 < size && buf[strspn(buf, "-0123456789")] == '\0')
        memcpy(buf + n, ".0", 3);
    return buf;
}

static int check_max_step(const lv_integrator_kind *kind, const lv_integrator_options *o)
{
    if (!(o->max_step > 0) || !isfinite(o->max_step))
        return lv_error_set(0, "max_step must be a positive number");
    return 0;
}

static int check_step(const lv_integrator_kind *kind, const lv_integrator_options *o)
{
    char a[32], b[32];
    if (check_max_step(kind, o) < 0)          /* the bound comes first */
        return -1;
    if (!(o->step > 0))
        return lv_error_set(0, "step must be > 0, got %s",
                            lua_number(a, sizeof a, o->step));
    if (o->step >= o->max_step)
        return lv_error_set(0, "step %s must be below max_step %s (h = max_step "
                            "* sigmoid(a))", lua_number(a, sizeof a, o->step),
                            lua_number(b, sizeof b, o->max_step));
    return 0;
}

static int check_friction(const lv_integrator_kind *kind, const lv_integrator_options *o)
{
    char a[32];
    if (o->friction < 0 || !isfinite(o->friction))
        return lv_error_set(0, "friction must be finite and >= 0, got %s",
                            lua_number(a, sizeof a, o->friction));
    if (o->learn_friction && o->friction == 0)
        return lv_error_set(0, "a learned friction is softplus(c) > 0; give "
                            "friction > 0 or learn = {friction = false}");
    return 0;
}

static int check_clip_force(const lv_integrator_kind *kind, const lv_integrator_options *o)
{
    if (o->clip_force < 0 || !isfinite(o->clip_force))
        return lv_error_set(0, "clip_force must be a positive number");
    if (o->clip_force > 0 && kind->needs_hessian)
        return lv_error_set(0, "clip_force is refused: a clipped force has no "
                            "Hessian where the clip bites, and the "
                            "log-determinant needs one");
    return 0;
}

static int check_T0(const lv_integrator_kind *kind, const lv_integrator_options *o)
{
    if (o->tempering == LV_TEMPERING_FIXED && (!(o->T0 > 1) || !isfinite(o->T0)))
        return lv_error_set(0, "fixed tempering needs a finite T0 > 1, got %g", o->T0);
    return 0;
}

static int check_alpha(const lv_integrator_kind *kind, const lv_integrator_options *o)
{
    if (o->tempering == LV_TEMPERING_FREE && !(o->alpha > 0 && o->alpha < 1))
        return lv_error_set(0, "free tempering needs alpha in (0, 1), got %g", o->alpha);
    return 0;
}

static int check_init_temperature(const lv_integrator_kind *kind,
                                  const lv_integrator_options *o)
{
    if (o->init_temperature == LV_INIT_TEMPERATURE_VALUE &&
        (!(o->init_T0 > 0) || !isfinite(o->init_T0)))
        return lv_error_set(0, "init_temperature %g must be > 0", o->init_T0);
    return 0;
}

#define AT(field) offsetof(lv_integrator_options, field)

static const lv_integrator_option opt_dim = {
    "dim", LV_OPTION_COUNT, AT(dim), .max = 1 << 24, .doc = "the latent dimension"};
static const lv_integrator_option opt_step = {
    "step", LV_OPTION_NUMBER, AT(step), .def = 0.2, .check = check_step,
    .doc = "the initial step size h, in (0, max_step)"};
static const lv_integrator_option opt_max_step = {
    "max_step", LV_OPTION_NUMBER, AT(max_step), .def = 0.5, .check = check_max_step,
    .doc = "h = max_step * sigmoid(a)"};
static const lv_integrator_option opt_friction = {
    "friction", LV_OPTION_NUMBER, AT(friction), .def = 0.5, .check = check_friction,
    .doc = "the initial friction gamma >= 0 (softplus(c) when learned)"};
static const lv_integrator_option opt_learn = {
    "learn", LV_OPTION_LEARN, AT(learn_step),
    .doc = "which parameters are learned (friction: by default where the kind can)"};
static const lv_integrator_option opt_per_step = {
    "per_step", LV_OPTION_BOOLEAN, AT(per_step),
    .doc = "a step-size vector per step (needs K)"};
static const lv_integrator_option opt_K = {
    "K", LV_OPTION_COUNT, AT(steps), .def = 1, .max = 100000,
    .doc = "the steps per-step parameters exist for"};
static const lv_integrator_option opt_noise = {
    "noise", LV_OPTION_BOOLEAN, AT(noise),
    .doc = "draw the noise xi (false: a deterministic flow)"};
static const lv_integrator_option opt_dtype = {
    "dtype", LV_OPTION_DTYPE, AT(dtype), .def = LV_DTYPE_F32, .doc = "\"f32\" or \"f64\""};
static const lv_integrator_option opt_clip_force = {
    "clip_force", LV_OPTION_NUMBER, AT(clip_force), .check = check_clip_force,
    .doc = "a bound on |g| per sample (0: none)"};

static const char *const tempering_names[] = {"none", "fixed", "free", NULL};
static const lv_integrator_option opt_tempering = {
    "tempering", LV_OPTION_CHOICE, AT(tempering), .choices = tempering_names,
    .choice_error = "unknown tempering '%s' (known: none, fixed, free)",
    .doc = "SPEC 3.1: alpha_k = 1, a fixed schedule from T0, or learned alpha_k"};
static const lv_integrator_option opt_T0 = {
    "T0", LV_OPTION_NUMBER, AT(T0), .def = 1.5, .check = check_T0,
    .doc = "fixed tempering's initial T0 > 1"};
static const lv_integrator_option opt_alpha = {
    "alpha", LV_OPTION_NUMBER, AT(alpha), .def = 0.9, .check = check_alpha,
    .doc = "free tempering's initial alpha_k in (0, 1)"};
static const lv_integrator_option opt_cache = {
    "cache", LV_OPTION_BOOLEAN, AT(cache), .def = 1,
    .doc = "reuse g(z') of step k as g(z) of step k+1 (false: 2K evaluations)"};

static const char *const temperature_names[] = {"unit", "matched", NULL};
static const lv_integrator_option opt_init_temperature = {
    "init_temperature", LV_OPTION_CHOICE_OR_NUMBER, AT(init_temperature),
    .choices = temperature_names, .number_offset = AT(init_T0),
    .choice_error = "init_temperature must be \"unit\", \"matched\" or a number",
    .check = check_init_temperature,
    .doc = "rho0 ~ N(0, T0 I): unit T0 = 1, matched T0 = exp(2 sum_k gamma h_k), or a number"};

static const char *const euler_kind_names[] = {"underdamped", "overdamped", NULL};
static const lv_integrator_option opt_euler_kind = {
    "kind", LV_OPTION_CHOICE, AT(overdamped), .choices = euler_kind_names,
    .choice_error = "kind must be \"underdamped\" or \"overdamped\", got '%s'",
    .doc = "overdamped: no momentum, z' = z - h g + sqrt(2h) xi"};

static const lv_integrator_option opt_amortized = {
    "amortized", LV_OPTION_BOOLEAN, AT(amortized),
    .doc = "u, w, b per sample, from the encoder (flow's params)"};

/* What every kind with a step size takes, in the order errors list them. */
#define STEP_OPTIONS &opt_dim, &opt_step, &opt_max_step, &opt_friction, &opt_learn, \
    &opt_per_step, &opt_K, &opt_noise, &opt_dtype, &opt_clip_force

static const lv_integrator_option *const leapfrog_options[] = {
    STEP_OPTIONS, &opt_tempering, &opt_T0, &opt_alpha, &opt_cache, NULL};
static const lv_integrator_option *const langevin_options[] = {
    STEP_OPTIONS, &opt_init_temperature, NULL};
static const lv_integrator_option *const euler_options[] = {
    STEP_OPTIONS, &opt_euler_kind, NULL};
static const lv_integrator_option *const planar_options[] = {
    &opt_dim, &opt_K, &opt_amortized, &opt_dtype, NULL};

/* sqrt(1 - e^{-2 x}): the noise scale of an exact Ornstein-Uhlenbeck step
 * whose decay is e^{-x}, at unit temperature. */
static lv_tensor *ou_noise(lv_scope *S, lv_tensor *x)
{
    return ag_op(S, LV_OP_SQRT, ag_op(S, LV_OP_NEG,
                                      ag_op(S, LV_OP_EXPM1, ag_scale(S, x, -2.0))));
}

/* ---- leapfrog: SPEC §3.1 (HVAE, with tempering) --------------------------- */

enum { LEAPFROG_MINUS_HALF_H };

static void leapfrog_coefs(lv_step *st)
{
    st->c[LEAPFROG_MINUS_HALF_H] = ag_scale(st->S, st->h, -0.5);
}

/* rho½ = rho - ½h g(z); z' = z + h rho½; rho' = alpha_k (rho½ - ½h g(z')) */
static void leapfrog_step(lv_step *st)
{
    lv_scope *S = st->S;
    const lv_integrator *it = st->it;
    lv_tensor *minus_half_h = st->c[LEAPFROG_MINUS_HALF_H];
    lv_tensor *g = st->g && it->cache ? st->g : lv_step_force(st, st->z);
    lv_tensor *rho_half = lv_step_lincomb(st, st->one, st->rho, minus_half_h, g);
    st->z_new = lv_step_lincomb(st, st->one, st->z, st->h, rho_half);
    st->g_new = lv_step_force(st, st->z_new);
    st->rho_new = lv_step_lincomb(st, st->one, rho_half, minus_half_h, st->g_new);
    if (it->tempering != LV_TEMPERING_NONE) {
        lv_tensor *alpha = lv_keep(S, lv_integrator_alpha(it, st->k, st->K));
        st->rho_new = ag_mul(S, st->rho_new, alpha);
        /* log|det| = d log alpha_k, the same for every sample */
        st->logdet_new = ag_add(S, st->logdet, ag_scale(S, ag_op(S, LV_OP_LOG, alpha),
                                                        (double)it->dim));
    }
}

static const lv_integrator_kind leapfrog = {
    .name = "leapfrog", .group = "integrators",
    .summary = "the HVAE leapfrog flow (SPEC 3.1; tempering \"none\", \"fixed\" or \"free\")",
    .options = leapfrog_options,
    .has_momentum = 1,
    .coefs = leapfrog_coefs, .step = leapfrog_step,
};

/* ---- qsl: SPEC §3.2 (quasi-symplectic Langevin, the L-VAE flow) ----------- */

enum { QSL_MINUS_H, QSL_DECAY, QSL_NOISE };

static void qsl_coefs(lv_step *st)
{
    lv_scope *S = st->S;
    lv_tensor *gh = ag_mul(S, st->gamma, st->h);
    st->c[QSL_DECAY] = ag_op(S, LV_OP_EXP, ag_op(S, LV_OP_NEG, gh));
    st->c[QSL_MINUS_H] = ag_op(S, LV_OP_NEG, st->h);
    if (st->it->noise)
        st->c[QSL_NOISE] = ou_noise(S, gh);
}

/* z' = z + h rho; rho' = e^{-gamma h} rho - h g(z') + s xi,
 * s = sqrt(1 - e^{-2 gamma h}); log|det| = -sum_j gamma_j h_j */
static void qsl_step(lv_step *st)
{
    st->z_new = lv_step_lincomb(st, st->one, st->z, st->h, st->rho);
    st->g_new = lv_step_force(st, st->z_new);
    if (st->it->noise)
        st->rho_new = lv_step_lincomb3(st, st->c[QSL_DECAY], st->rho, st->c[QSL_MINUS_H],
                                       st->g_new, st->c[QSL_NOISE],
                                       lv_step_noise(st, st->rho));
    else
        st->rho_new = lv_step_lincomb(st, st->c[QSL_DECAY], st->rho, st->c[QSL_MINUS_H],
                                      st->g_new);
}

static const lv_integrator_kind qsl = {
    .name = "qsl", .group = "integrators",
    .summary = "the quasi-symplectic Langevin flow of L-VAE (SPEC 3.2)",
    .options = langevin_options,
    .has_momentum = 1, .has_noise = 1, .learnable_friction = 1, .has_friction = 1,
    .logdet_friction = 1,
    .coefs = qsl_coefs, .step = qsl_step,
};

/* ---- qsl2: SPEC §3.3 (quasi-symplectic Langevin, second order) ------------ */

enum { QSL2_HALF_H, QSL2_MINUS_HALF_H, QSL2_DECAY, QSL2_NOISE };

static void qsl2_coefs(lv_step *st)
{
    lv_scope *S = st->S;
    st->c[QSL2_HALF_H] = ag_scale(S, st->h, 0.5);
    st->c[QSL2_MINUS_HALF_H] = ag_scale(S, st->h, -0.5);
    lv_tensor *gh = ag_mul(S, st->gamma, st->h);
    st->c[QSL2_DECAY] = ag_op(S, LV_OP_EXP, ag_op(S, LV_OP_NEG, gh));
    if (st->it->noise)
        st->c[QSL2_NOISE] = ou_noise(S, gh);
}

/* half kick, half drift, the friction-and-noise map, half drift, half
 * kick; log|det| = -sum_j gamma_j h_j */
static void qsl2_step(lv_step *st)
{
    lv_tensor *half_h = st->c[QSL2_HALF_H], *minus_half_h = st->c[QSL2_MINUS_HALF_H];
    lv_tensor *g = st->g ? st->g : lv_step_force(st, st->z);
    lv_tensor *r = lv_step_lincomb(st, st->one, st->rho, minus_half_h, g);
    lv_tensor *zm = lv_step_lincomb(st, st->one, st->z, half_h, r);
    if (st->it->noise)
        r = lv_step_lincomb(st, st->c[QSL2_DECAY], r, st->c[QSL2_NOISE],
                            lv_step_noise(st, st->rho));
    else
        r = ag_mul(st->S, st->c[QSL2_DECAY], r);
    st->z_new = lv_step_lincomb(st, st->one, zm, half_h, r);
    st->g_new = lv_step_force(st, st->z_new);
    st->rho_new = lv_step_lincomb(st, st->one, r, minus_half_h, st->g_new);
}

static const lv_integrator_kind qsl2 = {
    .name = "qsl2", .group = "integrators",
    .summary = "the symmetric second-order quasi-symplectic flow (SPEC 3.3)",
    .options = langevin_options,
    .has_momentum = 1, .has_noise = 1, .learnable_friction = 1, .has_friction = 1,
    .logdet_friction = 1,
    .coefs = qsl2_coefs, .step = qsl2_step,
};

/* ---- euler: SPEC §3.4 (Euler-Maruyama Langevin, needs the Hessian) -------- */

/* A [d] vector (or a scalar) as a [d, d] diagonal matrix: diag(v) = I * v. */
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

enum { EULER_MINUS_H, EULER_H_ROW, EULER_DIAG, EULER_HH, EULER_DAMP, EULER_NOISE };

/* underdamped: D_{1-gamma h}, D_h . D_h, 1 - gamma h, sqrt(2 gamma h);
 * overdamped: I, sqrt(2h) */
static void euler_coefs(lv_step *st)
{
    lv_scope *S = st->S;
    const lv_integrator *it = st->it;
    lv_op_params row = {.dim = 1}, col = {.dim = 0};
    st->c[EULER_H_ROW] = ag_opp(S, LV_OP_UNSQUEEZE, st->h, &row);   /* [d, 1] */
    st->c[EULER_MINUS_H] = ag_op(S, LV_OP_NEG, st->h);
    if (it->overdamped) {
        st->c[EULER_DIAG] = diag(S, st->one, it->dim);
        if (it->noise)
            st->c[EULER_NOISE] = ag_op(S, LV_OP_SQRT, ag_scale(S, st->h, 2.0));
        return;
    }
    st->c[EULER_HH] = ag_mul(S, st->c[EULER_H_ROW], ag_opp(S, LV_OP_UNSQUEEZE, st->h, &col));
    lv_tensor *gh = ag_mul(S, st->gamma, st->h);
    st->c[EULER_DAMP] = ag_op(S, LV_OP_NEG, ag_add_scalar(S, gh, -1.0));
    st->c[EULER_DIAG] = diag(S, st->c[EULER_DAMP], it->dim);
    if (it->noise)
        st->c[EULER_NOISE] = ag_op(S, LV_OP_SQRT, ag_scale(S, gh, 2.0));
}

/* underdamped z' = z + h rho, rho' = (1 - gamma h) rho - h g(z) +
 * sqrt(2 gamma h) xi, log|det(D_{1-gh} + D_h H D_h)|; overdamped
 * z' = z - h g + sqrt(2h) xi, log|det(I - D_h H)|. */
static void euler_step(lv_step *st)
{
    lv_scope *S = st->S;
    const lv_integrator *it = st->it;
    lv_tensor *g = lv_step_force(st, st->z);
    lv_tensor *H = lv_step_hessian(st, g);
    lv_tensor *minus_h = st->c[EULER_MINUS_H];
    if (it->overdamped) {
        lv_tensor *M = ag_sub(S, st->c[EULER_DIAG], ag_mul(S, st->c[EULER_H_ROW], H));
        st->logdet_new = ag_add(S, st->logdet, batched_logdet(S, M));
        st->z_new = it->noise
            ? lv_step_lincomb3(st, st->one, st->z, minus_h, g, st->c[EULER_NOISE],
                               lv_step_noise(st, st->z))
            : lv_step_lincomb(st, st->one, st->z, minus_h, g);
        return;
    }
    lv_tensor *M = ag_add(S, st->c[EULER_DIAG], ag_mul(S, st->c[EULER_HH], H));
    st->logdet_new = ag_add(S, st->logdet, batched_logdet(S, M));
    st->z_new = lv_step_lincomb(st, st->one, st->z, st->h, st->rho);
    st->rho_new = it->noise
        ? lv_step_lincomb3(st, st->c[EULER_DAMP], st->rho, minus_h, g,
                           st->c[EULER_NOISE], lv_step_noise(st, st->rho))
        : lv_step_lincomb(st, st->c[EULER_DAMP], st->rho, minus_h, g);
}

static int euler_setup(lv_integrator *it, const lv_integrator_options *o)
{
    if (o->overdamped) {
        it->momentum = 0;
        it->learn_friction = 0;       /* no momentum: the friction is unused */
    }
    return 0;
}

static const lv_integrator_kind euler = {
    .name = "euler", .group = "integrators",
    .summary = "the Euler-Maruyama Langevin flow (SPEC 3.4; kind = \"overdamped\" too)",
    .options = euler_options,
    .has_momentum = 1, .has_noise = 1, .learnable_friction = 1, .has_friction = 1,
    .needs_hessian = 1,
    .setup = euler_setup, .coefs = euler_coefs, .step = euler_step,
};

/* ---- planar: SPEC §3.5 (Rezende & Mohamed's normalising flow) ------------- */

/* z' = z + û tanh(wᵀz + b), û = u + (m(wᵀu) - wᵀu) w / |w|²,
 * m(a) = -1 + softplus(a); log|det| = log|1 + (1 - tanh²(wᵀz + b)) ûᵀw|.
 * Global: u, w [d], b [] from the integrator. Amortized: u, w [B, d], b
 * [B], one set per sample, from the flow's params. Inner products run
 * over the last dim. */
static void planar_step(lv_step *st)
{
    lv_scope *S = st->S;
    const lv_integrator *it = st->it;
    lv_tensor *z = st->z;
    int per_sample = it->amortized;
    lv_op_params sel = {.dim = per_sample ? 1 : 0, .start = st->k - 1};
    lv_tensor *u = ag_opp(S, LV_OP_SELECT, per_sample ? st->params[0] : it->planar_u, &sel);
    lv_tensor *w = ag_opp(S, LV_OP_SELECT, per_sample ? st->params[1] : it->planar_w, &sel);
    lv_tensor *b = ag_opp(S, LV_OP_SELECT, per_sample ? st->params[2] : it->planar_b, &sel);
    lv_op_params last = {.dim_mask = per_sample ? 2u : 1u};
    lv_op_params col1 = {.dim = per_sample ? 1 : 0};
    lv_tensor *wu = ag_opp(S, LV_OP_SUM, ag_mul(S, w, u), &last);
    lv_tensor *m = ag_add_scalar(S, ag_op(S, LV_OP_SOFTPLUS, wu), -1.0);
    lv_tensor *coef = ag_div(S, ag_sub(S, m, wu),
                             ag_opp(S, LV_OP_SUM, ag_mul(S, w, w), &last));
    if (per_sample)
        coef = ag_opp(S, LV_OP_UNSQUEEZE, coef, &col1);
    lv_tensor *u_hat = ag_add(S, u, ag_mul(S, coef, w));
    lv_op_params rows = {.dim_mask = 2};
    lv_tensor *act = ag_op(S, LV_OP_TANH,
                           ag_add(S, ag_opp(S, LV_OP_SUM, ag_mul(S, z, w), &rows), b));
    lv_op_params colB = {.dim = 1};
    st->z_new = ag_add(S, z, ag_mul(S, ag_opp(S, LV_OP_UNSQUEEZE, act, &colB), u_hat));
    lv_tensor *psi = ag_add_scalar(S, ag_op(S, LV_OP_NEG, ag_op(S, LV_OP_SQUARE, act)), 1.0);
    lv_tensor *det = ag_add_scalar(S, ag_mul(S, psi, ag_opp(S, LV_OP_SUM,
                                                            ag_mul(S, u_hat, w), &last)), 1.0);
    st->logdet_new = ag_add(S, st->logdet, ag_op(S, LV_OP_LOG, ag_op(S, LV_OP_ABS, det)));
}

/* Global u, w ~ N(0, 0.1²), b = 0 (SPEC §3.5); amortized: none, they come
 * with each flow call. */
static int planar_setup(lv_integrator *it, const lv_integrator_options *o)
{
    if (it->amortized)
        return 0;
    int64_t K = it->steps, shape[2] = {it->steps, it->dim};
    it->planar_u = lv_tensor_empty(it->dtype, 2, shape);
    it->planar_w = lv_tensor_empty(it->dtype, 2, shape);
    it->planar_b = lv_tensor_zeros(it->dtype, 1, &K);
    if (!it->planar_u || !it->planar_w || !it->planar_b)
        return -1;
    it->planar_u->requires_grad = it->planar_w->requires_grad = 1;
    it->planar_b->requires_grad = 1;
    lv_rng_normal(lv_generator_default(), it->dtype, lv_tensor_data(it->planar_u),
                  K * it->dim, 0.0, 0.1);
    lv_rng_normal(lv_generator_default(), it->dtype, lv_tensor_data(it->planar_w),
                  K * it->dim, 0.0, 0.1);
    return 0;
}

static const lv_integrator_kind planar = {
    .name = "planar", .group = "flows",
    .summary = "K planar layers (SPEC 3.5, Rezende & Mohamed); amortized takes u, w, b per sample",
    .options = planar_options,
    .setup = planar_setup, .step = planar_step,
};

/* ---- obabo: leapfrog between two half steps of friction and noise -------- */

/* O: rho ← e^{-γh/2} ⊙ rho + s ⊙ ξ,  s = sqrt(1 - e^{-γh})   (half a step)
 * B: rho ← rho - ½h ⊙ g(z)
 * A: z ← z + h ⊙ rho
 * B: rho ← rho - ½h ⊙ g(z)
 * O: rho ← e^{-γh/2} ⊙ rho + s ⊙ ξ'                          (ξ, ξ' fresh)
 * Bussi & Parrinello's Langevin splitting (2007): HVAE's leapfrog with a
 * partial refresh of the momentum around each step (Horowitz 1991), and
 * exactly leapfrog when γ = 0 and noise = false. The O steps contract rho
 * by e^{-γh/2} each, so log|det| = -Σ_j γ_j h_j (logdet_friction);
 * gradient evaluations K + 1 (g(z') of step k is g(z) of step k+1). */
enum { OBABO_MINUS_HALF_H, OBABO_DECAY, OBABO_NOISE };

static void obabo_coefs(lv_step *st)
{
    lv_scope *S = st->S;
    lv_tensor *half_gh = ag_scale(S, ag_mul(S, st->gamma, st->h), 0.5);
    st->c[OBABO_MINUS_HALF_H] = ag_scale(S, st->h, -0.5);
    st->c[OBABO_DECAY] = ag_op(S, LV_OP_EXP, ag_op(S, LV_OP_NEG, half_gh));
    if (st->it->noise)
        st->c[OBABO_NOISE] = ou_noise(S, half_gh);
}

/* O: half the friction, and its noise. */
static lv_tensor *obabo_o(lv_step *st, lv_tensor *rho)
{
    if (!st->it->noise)
        return ag_mul(st->S, st->c[OBABO_DECAY], rho);
    return lv_step_lincomb(st, st->c[OBABO_DECAY], rho, st->c[OBABO_NOISE],
                           lv_step_noise(st, rho));
}

static void obabo_step(lv_step *st)
{
    lv_tensor *minus_half_h = st->c[OBABO_MINUS_HALF_H];
    lv_tensor *g = st->g ? st->g : lv_step_force(st, st->z);   /* the last step's g(z') */
    lv_tensor *rho = obabo_o(st, st->rho);                              /* O */
    rho = lv_step_lincomb(st, st->one, rho, minus_half_h, g);           /* B */
    st->z_new = lv_step_lincomb(st, st->one, st->z, st->h, rho);        /* A */
    st->g_new = lv_step_force(st, st->z_new);
    rho = lv_step_lincomb(st, st->one, rho, minus_half_h, st->g_new);   /* B */
    st->rho_new = obabo_o(st, rho);                                     /* O */
}

static const lv_integrator_kind obabo = {
    .name = "obabo", .group = "integrators",
    .summary = "leapfrog between two half steps of friction and noise "
               "(OBABO; README, Adding an integrator)",
    .options = langevin_options,
    .has_momentum = 1, .has_noise = 1, .learnable_friction = 1, .has_friction = 1,
    .logdet_friction = 1,
    .coefs = obabo_coefs, .step = obabo_step,
};

/* ---- the table ------------------------------------------------------------- */

const lv_integrator_kind *const lv_integrator_kinds[] = {
    &leapfrog, &qsl, &qsl2, &euler, &planar, &obabo, NULL};

const lv_integrator_kind *lv_integrator_kind_find(const char *name)
{
    for (const lv_integrator_kind *const *k = lv_integrator_kinds; *k; k++)
        if (strcmp((*k)->name, name) == 0)
            return *k;
    return NULL;
}

const lv_integrator_option *lv_integrator_kind_option(const lv_integrator_kind *kind,
                                                      const char *name)
{
    for (const lv_integrator_option *const *p = kind->options; *p; p++)
        if (strcmp((*p)->name, name) == 0)
            return *p;
    return NULL;
}
