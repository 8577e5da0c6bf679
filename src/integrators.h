/*
 * integrators.h -- the flows of SPEC §3 (leapfrog/HVAE, qsl, qsl2, euler,
 * planar, and obabo) as objects holding their learnable tensors, and the
 * K-step flow.
 *
 * Shape legend: B = batch, d = latent dim, K = steps.
 *
 * Each kind of integrator is one record, lv_integrator_kind: its name, its
 * options (each with its default and its check), what it has (momentum,
 * noise, a learnable friction) and its step function. The Lua binding
 * reads a constructor's options, checks them and writes its help from the
 * record; the flow runs the record's step K times. The records and their
 * steps are in integrator_kinds.c; README.md's "Adding an integrator"
 * walks through one.
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

#include <stddef.h>

#include "op.h"
#include "rng.h"

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

typedef struct lv_integrator lv_integrator;
typedef struct lv_integrator_kind lv_integrator_kind;
/* One step in progress: what a step function reads and writes
 * (integrator_step.h). */
typedef struct lv_step lv_step;

/* ---- options ------------------------------------------------------------ */

/* Every option of every kind, as a constructor's table gives them. A kind
 * reads the ones its option list names; the others keep their defaults. */
typedef struct lv_integrator_options {
    int dim;                    /* d, required */
    lv_dtype dtype;
    int steps;                  /* "K": the steps per-step parameters exist for */
    int per_step;               /* a step-size vector per step */
    double step;                /* initial h */
    double max_step;            /* h = max_step * sigmoid(a) */
    double friction;            /* initial gamma */
    double clip_force;          /* bound on |g| per sample; 0 = off */
    int noise;                  /* default: the kind's has_noise */
    int learn_step, learn_friction, learn_temperature;  /* "learn" */
    int tempering;              /* lv_tempering (leapfrog) */
    double T0;                  /* fixed tempering's initial T0 */
    double alpha;               /* free tempering's initial alpha_k */
    int cache;                  /* leapfrog: reuse g(z') of step k */
    int init_temperature;       /* lv_init_temperature (qsl, qsl2, obabo) */
    double init_T0;             /* its number, for LV_INIT_TEMPERATURE_VALUE */
    int overdamped;             /* euler: kind = "overdamped" */
    int amortized;              /* planar: u, w, b per sample */
} lv_integrator_options;

typedef enum lv_option_type {
    LV_OPTION_COUNT,            /* int, 1 to max */
    LV_OPTION_NUMBER,           /* double */
    LV_OPTION_BOOLEAN,          /* int, 0 or 1 */
    LV_OPTION_CHOICE,           /* int, the index of one of choices */
    LV_OPTION_CHOICE_OR_NUMBER, /* int, an index of choices, or the last
                                   index with the number in number_offset */
    LV_OPTION_DTYPE,            /* lv_dtype */
    LV_OPTION_LEARN             /* {step, friction, temperature} booleans */
} lv_option_type;

/* One option of a constructor. The binding checks the Lua type and
 * stores the value at offset in lv_integrator_options; lv_integrator_make
 * checks the value (check, which words the error) in list order. */
typedef struct lv_integrator_option {
    const char *name;           /* the key in the constructor's table */
    lv_option_type type;
    size_t offset;              /* offsetof(lv_integrator_options, field) */
    double def;                 /* the default: a number, a count, a
                                   boolean (0/1) or a choice's index;
                                   COUNT 0 = required */
    int max;                    /* COUNT: the largest value */
    const char *const *choices; /* CHOICE*: the names, NULL-terminated */
    const char *choice_error;   /* CHOICE*: the message for another value
                                   (a format taking it as %s) */
    size_t number_offset;       /* CHOICE_OR_NUMBER: where the number goes */
    /* Checks the value (and whatever it depends on); 0, or -1 with
     * lv_error set. NULL: any value of the type will do. */
    int (*check)(const lv_integrator_kind *kind, const lv_integrator_options *o);
    const char *doc;            /* what it is, for help() */
} lv_integrator_option;

/* ---- the record of a kind ----------------------------------------------- */

struct lv_integrator_kind {
    const char *name;           /* lv.integrators.NAME (or lv.flows.NAME) */
    const char *group;          /* "integrators" or "flows" */
    const char *summary;        /* one line for help(), with its SPEC section */
    const lv_integrator_option *const *options;   /* NULL-terminated */
    int has_momentum;           /* carries rho (the default; setup may drop it) */
    int has_noise;              /* the default of the noise option */
    int learnable_friction;     /* gamma = softplus(c) learned unless
                                   learn.friction = false */
    int has_friction;           /* uses gamma (friction(), print) */
    int logdet_friction;        /* a step's log|det| is -sum_j gamma_j h_j,
                                   added by the flow; 0: the step adds its
                                   own, if any, to st->logdet_new */
    int needs_hessian;          /* the force stays on the tape (lv_step_hessian);
                                   clip_force is refused */
    /* Kind-specific options and parameters, after the common ones are
     * made (NULL: none). 0, or -1 with lv_error set. */
    int (*setup)(lv_integrator *it, const lv_integrator_options *o);
    /* What a step needs that depends only on h and gamma, into st->c[]
     * (NULL: nothing). The flow calls it once when every step has the same
     * h and nothing is recorded, else before each step. */
    void (*coefs)(lv_step *st);
    /* One step: from st->z, st->rho (and st->g) to st->z_new, st->rho_new
     * (and st->g_new, st->logdet_new). A failed op leaves NULL, which the
     * ops pass on; the flow sees it. */
    void (*step)(lv_step *st);
};

/* Every kind, NULL-terminated (integrator_kinds.c). */
extern const lv_integrator_kind *const lv_integrator_kinds[];
/* The kind called name, or NULL. */
const lv_integrator_kind *lv_integrator_kind_find(const char *name);
/* The option of kind called name, or NULL. */
const lv_integrator_option *lv_integrator_kind_option(const lv_integrator_kind *kind,
                                                      const char *name);

/* ---- an integrator ------------------------------------------------------ */

struct lv_integrator {
    const lv_integrator_kind *kind;
    int dim;
    lv_dtype dtype;
    int steps;                  /* K the per-step parameters exist for
                                   (per_step, free tempering, planar) */
    int per_step;               /* a step-size vector per step */
    double max_step;            /* h = max_step * sigmoid(step_logit) */
    int momentum;               /* carries rho */
    int noise;                  /* stochastic */
    int cache;                  /* leapfrog: reuse g(z') of step k */
    int overdamped;             /* euler */
    int amortized;              /* planar: u, w, b per sample, given to flow */
    double clip_force;          /* bound on |g| per sample; 0 = off */
    lv_tempering tempering;     /* leapfrog */
    lv_init_temperature init_temperature;   /* qsl, qsl2, obabo */

    /* The learnable (or fixed) quantities; leaves owned here. */
    lv_tensor *step_logit;      /* [d] or [K, d] */
    lv_tensor *friction;        /* [d]: raw c (gamma = softplus(c)) when
                                   learned, else gamma itself (every kind
                                   with step sizes has one: leapfrog's is
                                   unused but in its checkpoints) */
    int learn_friction;
    lv_tensor *temper;          /* fixed: tau (T0 = 1 + e^tau), [];
                                   free: a_k (alpha_k = sigmoid(a_k)), [K];
                                   init_temperature value: log T0, [] */
    lv_tensor *planar_u, *planar_w, *planar_b;   /* [K, d], [K, d], [K] */
};

typedef struct lv_flow_stats {
    int steps;
    double *max_grad;           /* [steps]: largest |g| over samples */
    double delta_hamiltonian;   /* mean over samples of H(end) - H(start) */
    int nonfinite_step;         /* 1-based step of the first NaN/Inf, or 0 */
    int nonfinite_sample;       /* its 1-based sample */
} lv_flow_stats;

typedef struct lv_flow_result {
    lv_tensor *z, *rho;         /* [B, d]; rho NULL without momentum */
    lv_tensor *logdet;          /* [B] */
    lv_tensor *U_end;           /* U(z) [B] when the last force was taken at
                                   the returned z (leapfrog, qsl, qsl2,
                                   obabo) and is usable: on the tape with
                                   create_graph, or plain values when the
                                   caller's grad mode is off; else NULL */
    int n_grad_evals;
    lv_flow_stats stats;
} lv_flow_result;

/* The Lua-independent defaults of kind's options (the noise and the
 * learned friction are the kind's). */
void lv_integrator_options_init(lv_integrator_options *o,
                                const lv_integrator_kind *kind);
/* A new integrator of kind: checks every option of the kind in list order,
 * then makes its parameters from the initial values. Returns NULL with
 * lv_error set (an option's message) on failure. */
lv_integrator *lv_integrator_make(const lv_integrator_kind *kind,
                                  const lv_integrator_options *o);
void lv_integrator_free(lv_integrator *it);

/* Step sizes h for step k (0-based) [d], friction gamma [d], and the
 * initial momentum temperature T0 ([d] or []): new references, on the tape
 * when their parameters are learned. */
lv_tensor *lv_integrator_step_size(const lv_integrator *it, int k);
lv_tensor *lv_integrator_gamma(const lv_integrator *it);
lv_tensor *lv_integrator_temperature0(const lv_integrator *it, int K);
/* Tempered leapfrog's alpha_k, k = 1..K: a 0-dim tensor (new reference). */
lv_tensor *lv_integrator_alpha(const lv_integrator *it, int k, int K);

/* Computes U(z) [B] into *U and g(z) [B, d] into *g (new references).
 * With create_graph, g stays on the tape (so the flow can be trained
 * through it). Returns 0, or -1 with lv_error set. */
typedef int (*lv_potential_fn)(void *ctx, lv_tensor *z, int create_graph,
                               lv_tensor **U, lv_tensor **g);

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
