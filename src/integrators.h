/*
 * integrators.h -- the flows of SPEC §3 (leapfrog/HVAE, qsl, qsl2, euler,
 * planar) as objects holding their learnable tensors, and the K-step flow.
 *
 * Shape legend: B = batch, d = latent dim, K = steps.
 *
 * The potential U(z) [B] and its gradient g(z) = ∇U [B, d] come from the
 * caller through lv_potential_fn (the Lua binding calls a Lua function and
 * takes the gradient through the tape), so this file knows nothing of
 * Lua. Every step is written with recorded ops (op.h), so the flow's
 * outputs are differentiable -- to the step sizes, friction, tempering and,
 * through g, to whatever U depends on -- when the caller asks for a graph.
 *
 * Not here: the ELBO and estimators (lua/lvae/models.lua, estimators.c).
 */
#ifndef LV_INTEGRATORS_H
#define LV_INTEGRATORS_H

#include "op.h"
#include "rng.h"

typedef enum lv_integrator_kind {
    LV_INTEGRATOR_LEAPFROG,
    LV_INTEGRATOR_QSL,
    LV_INTEGRATOR_QSL2,
    LV_INTEGRATOR_EULER,
    LV_INTEGRATOR_PLANAR,
    LV_INTEGRATOR_COUNT
} lv_integrator_kind;

typedef enum lv_tempering {
    LV_TEMPERING_NONE,
    LV_TEMPERING_FIXED,
    LV_TEMPERING_FREE
} lv_tempering;

typedef enum lv_init_temperature {
    LV_INIT_TEMPERATURE_UNIT,       /* rho0 ~ N(0, I) */
    LV_INIT_TEMPERATURE_MATCHED,    /* T0_j = exp(2 sum_k gamma_j h_kj) */
    LV_INIT_TEMPERATURE_VALUE       /* a number T0 (learnable or not) */
} lv_init_temperature;

/* Computes U(z) [B] into *U and g(z) [B, d] into *g (new references).
 * With create_graph, g stays on the tape (so the flow can be trained
 * through it). Returns 0, or -1 with lv_error set. */
typedef int (*lv_potential_fn)(void *ctx, lv_tensor *z, int create_graph,
                               lv_tensor **U, lv_tensor **g);

typedef struct lv_integrator {
    lv_integrator_kind kind;
    int dim;
    lv_dtype dtype;
    int steps;                  /* K the per-step parameters exist for
                                   (per_step, free tempering, planar) */
    int per_step;               /* a step-size vector per step */
    double max_step;            /* h = max_step * sigmoid(step_logit) */
    int noise;                  /* stochastic (qsl, qsl2, euler) */
    int cache;                  /* leapfrog: reuse g(z') of step k */
    int overdamped;             /* euler */
    int amortized;              /* planar: u, w, b per sample, given to flow */
    double clip_force;          /* bound on |g| per sample; 0 = off */
    lv_tempering tempering;     /* leapfrog */
    lv_init_temperature init_temperature;   /* qsl, qsl2 */

    /* The learnable (or fixed) quantities; leaves owned here. */
    lv_tensor *step_logit;      /* [d] or [K, d] */
    lv_tensor *friction;        /* [d]: raw c (gamma = softplus(c)) when
                                   learned, else gamma itself */
    int learn_friction;
    lv_tensor *temper;          /* fixed: tau (T0 = 1 + e^tau), [];
                                   free: a_k (alpha_k = sigmoid(a_k)), [K];
                                   qsl value: log T0, [] */
    lv_tensor *planar_u, *planar_w, *planar_b;   /* [K, d], [K, d], [K] */
} lv_integrator;

typedef struct lv_flow_stats {
    int steps;
    double *max_grad;           /* [steps]: largest |g| over samples */
    double delta_hamiltonian;   /* mean over samples of H(end) - H(start) */
    int nonfinite_step;         /* 1-based step of the first NaN/Inf, or 0 */
    int nonfinite_sample;       /* its 1-based sample */
} lv_flow_stats;

typedef struct lv_flow_result {
    lv_tensor *z, *rho;         /* [B, d]; rho NULL for planar / overdamped */
    lv_tensor *logdet;          /* [B] */
    lv_tensor *U_end;           /* U(z) [B] when the last force was taken at
                                   the returned z (leapfrog, qsl, qsl2) and
                                   is usable: on the tape with create_graph,
                                   or plain values when the caller's grad
                                   mode is off; else NULL */
    int n_grad_evals;
    lv_flow_stats stats;
} lv_flow_result;

/* A new integrator with default options for its kind; the caller sets
 * fields and then calls lv_integrator_init_params. */
lv_integrator *lv_integrator_new(lv_integrator_kind kind, int dim,
                                 lv_dtype dtype);
/* Makes the parameter tensors from initial values (h0 = initial step,
 * gamma0 = initial friction, t0 = initial T0 or alpha); checks ranges.
 * Returns 0 or -1 with lv_error. */
int lv_integrator_init_params(lv_integrator *it, double h0, double gamma0,
                              double t0, int learn_step);
void lv_integrator_free(lv_integrator *it);

/* Step sizes h for step k (0-based) [d], friction gamma [d], and the
 * initial momentum temperature T0 ([d] or []): new references, on the tape
 * when their parameters are learned. */
lv_tensor *lv_integrator_step_size(const lv_integrator *it, int k);
lv_tensor *lv_integrator_gamma(const lv_integrator *it);
lv_tensor *lv_integrator_temperature0(const lv_integrator *it, int K);
/* Tempered leapfrog's alpha_k, k = 1..K: a 0-dim tensor (new reference). */
lv_tensor *lv_integrator_alpha(const lv_integrator *it, int k, int K);

/* Runs K steps from (z0, rho0). An amortized planar flow takes its
 * per-sample parameters in `planar` = {u [B, K', d], w [B, K', d],
 * b [B, K']} (K' >= K); NULL otherwise. The noise xi comes from gen (NULL:
 * the default generator). Returns 0 or -1 with lv_error; on
 * success the result holds new references (free with
 * lv_flow_result_clear). */
int lv_integrator_flow(const lv_integrator *it, lv_tensor *z0,
                       lv_tensor *rho0, int K, lv_potential_fn potential,
                       void *ctx, int create_graph, lv_tensor *const *planar,
                       lv_generator *gen, lv_flow_result *res);
void lv_flow_result_clear(lv_flow_result *res);

#endif
