/*
 * integrator_step.h -- what a step function sees: the state it moves, the
 * quantities it uses, and the flow's services (the force, the Hessian,
 * noise). integrator_kinds.c writes the steps; integrators.c runs them.
 * Not for the binding, which needs only integrators.h.
 *
 * B = batch, d = latent dim; a step k (1-based) of K.
 *
 * Every tensor here is borrowed or belongs to a scope: what a step makes
 * goes into st->S (vjp.h's ag_* helpers, lv_keep) and the flow keeps what it
 * carries to the next step. A failed op returns NULL and every op given a
 * NULL returns NULL, so a step needs no error checks of its own.
 */
#ifndef LV_INTEGRATOR_STEP_H
#define LV_INTEGRATOR_STEP_H

#include "integrators.h"
#include "vjp.h"

/* The most coefficients a kind's coefs function may leave in st->c. */
#define LV_STEP_MAX_COEFS 8

struct lv_step {
    /* given by the flow */
    const lv_integrator *it;
    lv_scope *S;                /* where the step's tensors live */
    int k, K;                   /* this step, 1-based, of K */
    lv_tensor *z, *rho;         /* the state [B, d]; rho NULL without momentum */
    lv_tensor *g;               /* g(z) [B, d] when the previous step left it
                                   in g_new, else NULL (first step) */
    lv_tensor *logdet;          /* sum of the steps' log|det| so far [B] */
    lv_tensor *h;               /* step sizes [d] (NULL for planar) */
    lv_tensor *gamma;           /* friction [d] (NULL without) */
    lv_tensor *one;             /* the constant 1, 0-dim */
    lv_tensor *c[LV_STEP_MAX_COEFS];   /* what the kind's coefs made */
    lv_tensor *const *params;   /* amortized planar's u, w, b, or NULL */
    /* set by the step */
    lv_tensor *z_new, *rho_new; /* the next state (rho_new with momentum) */
    lv_tensor *g_new;           /* g(z_new), for the next step; NULL: none */
    lv_tensor *logdet_new;      /* starts as logdet */
    /* the flow's own */
    struct lv_flow_run *run;
};

/* g(z) [B, d] (clipped when the integrator says so), counted as a
 * gradient evaluation; statistics file it under the step's first point
 * when z is st->z, else under its last. In st->S; NULL on failure. */
lv_tensor *lv_step_force(lv_step *st, lv_tensor *z);
/* The Hessian of U [B, d, d] at the point of the last force g, by d
 * reverse passes through g (kinds with needs_hessian). In st->S. */
lv_tensor *lv_step_hessian(lv_step *st, lv_tensor *g);
/* Fresh N(0, I) noise shaped like x, from the flow's generator. In st->S. */
lv_tensor *lv_step_noise(lv_step *st, const lv_tensor *like);

/* a x + b y, and a x + b y + c w: one fused op (LV_OP_LINCOMB) with
 * [d] (or scalar) coefficients. In st->S. */
lv_tensor *lv_step_lincomb(lv_step *st, lv_tensor *a, lv_tensor *x,
                           lv_tensor *b, lv_tensor *y);
lv_tensor *lv_step_lincomb3(lv_step *st, lv_tensor *a, lv_tensor *x,
                            lv_tensor *b, lv_tensor *y, lv_tensor *c,
                            lv_tensor *w);

#endif
