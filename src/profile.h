/*
 * profile.h -- an opt-in count of where a computation's time goes, op by
 * op: every lv_apply (the one door of op.c) adds its wall time, its call
 * count and its output elements to its op's row while profiling is on.
 *
 * The rows say what the tape does, not what the Lua code says: a VJP is
 * made of ops, so the backward pass shows as the ops it applies. Time
 * spent inside an op that applies other ops (a dtype widening, say) is
 * counted in both rows; `self` excludes the inner ops.
 *
 * Off, it costs one branch per op. Not thread-safe: ops are applied from
 * one thread (the kernels' own threads never apply ops).
 */
#ifndef LV_PROFILE_H
#define LV_PROFILE_H
#include <stdint.h>

#include "op.h"
#include "tensor.h"

typedef struct lv_profile_row {
    int64_t calls;
    double seconds;         /* wall time, inner ops included */
    double self_seconds;    /* wall time, inner ops excluded */
    int64_t elements;       /* output elements produced */
    double flops;           /* multiply-adds x 2 of the products (matmul,
                               linear, convolutions); 0 for other ops */
} lv_profile_row;

extern int lv_profile_on;

/* Starts counting from zero (on = 1) or stops (on = 0, rows kept). */
void lv_profile_enable(int on);
/* The row of op (zeros if it never ran). */
lv_profile_row lv_profile_get(lv_op_id op);

/* lv_apply's hooks: begin returns a token for end. */
double lv_profile_begin(void);
void lv_profile_end(lv_op_id op, double started, lv_tensor *const *in,
                    int n_in, const lv_tensor *out);

#endif
