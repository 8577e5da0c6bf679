/*
 * gemm.h -- C = alpha op(A) op(B) + beta C in row-major storage on
 * OpenBLAS, for either dtype: the one place the ops call cblas_?gemm.
 */
#ifndef LV_GEMM_H
#define LV_GEMM_H
#include <cblas.h>

#include "tensor.h"

static inline void lv_gemm(lv_dtype dtype, CBLAS_TRANSPOSE ta,
                           CBLAS_TRANSPOSE tb, int64_t m, int64_t n,
                           int64_t k, const void *a, int64_t lda,
                           const void *b, int64_t ldb, double beta, void *c,
                           int64_t ldc)
{
    if (dtype == LV_DTYPE_F64)
        cblas_dgemm(CblasRowMajor, ta, tb, (int)m, (int)n, (int)k, 1.0, a,
                    (int)lda, b, (int)ldb, beta, c, (int)ldc);
    else
        cblas_sgemm(CblasRowMajor, ta, tb, (int)m, (int)n, (int)k, 1.0f, a,
                    (int)lda, b, (int)ldb, (float)beta, c, (int)ldc);
}

#endif
