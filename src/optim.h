/*
 * optim.h -- the optimizers' updates as in-place kernels: one pass over a
 * parameter, its gradient and its state, with no temporaries.
 *
 * The formulas (PyTorch's torch.optim unless said otherwise) are those of
 * lua/lvae/optim.lua, which chooses the options, keeps the step counts and
 * calls lv_optim_update once per parameter (from one Lua call per step).
 * Every element is computed in double and stored in the parameter's
 * dtype. A NaN gradient propagates into the parameter (PyTorch's
 * behaviour): the caller stops on a non-finite loss.
 */
#ifndef LV_OPTIM_H
#define LV_OPTIM_H
#include "tensor.h"

typedef enum lv_optim_kind {
    LV_OPTIM_SGD,
    LV_OPTIM_ADAM,
    LV_OPTIM_ADAMAX,    /* SPEC §6.2: u = max(b2 u, |g|), eps outside */
    LV_OPTIM_RMSPROP,
    LV_OPTIM_KIND_COUNT
} lv_optim_kind;

typedef struct lv_optim_hyper {
    double lr, weight_decay;
    double beta1, beta2, eps;             /* Adam, Adamax; RMSProp: eps */
    double momentum, dampening;           /* SGD, RMSProp: momentum */
    double alpha;                         /* RMSProp's decay */
    int nesterov, amsgrad, centered, tf_style;
    double grad_scale;                    /* g is used as grad_scale g (clipping) */
    long long step;                       /* this update's count, from 1 */
} lv_optim_hyper;

/* The state tensors a kind keeps, in the order lv_optim_update takes
 * them; names as optim.lua's state dicts have them. */
int lv_optim_state_count(lv_optim_kind kind, const lv_optim_hyper *h);
const char *lv_optim_state_name(lv_optim_kind kind, const lv_optim_hyper *h,
                                int i);
/* The value a fresh state tensor starts at (TensorFlow's RMSProp: 1). */
double lv_optim_state_init(lv_optim_kind kind, const lv_optim_hyper *h, int i);

/* One update of p (in place) from g, with state[0..count) updated in
 * place. All tensors contiguous, of p's dtype and element count; checked.
 * first_momentum: SGD's buffer is set to the gradient instead of decayed
 * (PyTorch's first step). Returns 0, or -1 with lv_error. */
int lv_optim_update(lv_optim_kind kind, const lv_optim_hyper *h,
                    lv_tensor *p, const lv_tensor *g, lv_tensor *const *state,
                    int first_momentum);

#endif
