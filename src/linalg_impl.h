/*
 * linalg_impl.h -- the LAPACK kernels of linalg.c, written once with T.
 * Included once per dtype (generic.h): the includer defines T (float or
 * double), SUFFIX (f32 or f64), DTYPE (LV_DTYPE_F32 or LV_DTYPE_F64, the
 * outputs' dtype) and LAPACK(name) (LAPACKE_s##name or LAPACKE_d##name);
 * this file #undefs all four at its end.
 */

/* Copies matrix m (any dtype no wider than T, any strides) into dst,
 * column-major with leading dimension ld. Returns 1 if every entry is
 * finite, else 0 (dst is filled either way). */
static int FN(load)(T *dst, int64_t ld, const strided_matrix *m)
{
    int finite = 1;
    for (int64_t j = 0; j < m->cols; j++)
        for (int64_t i = 0; i < m->rows; i++) {
            int64_t at = i * m->rs + j * m->cs;
            T v = (T)lv_load_double(m->data, m->dtype, at);
            finite &= isfinite(v) != 0;
            dst[i + j * ld] = v;
        }
    return finite;
}

/* out (row-major, rows x cols) = work (column-major, leading dim ld). */
static void FN(store)(T *out, const T *work, int64_t ld, int64_t rows,
                      int64_t cols)
{
    for (int64_t i = 0; i < rows; i++)
        for (int64_t j = 0; j < cols; j++)
            out[i * cols + j] = work[i + j * ld];
}

/* L with L L^T = A, from A's lower triangle; L's upper part is zero. */
static int FN(cholesky)(lv_tensor **out, const lv_tensor *a,
                        const batch_info *g)
{
    int64_t n = g->n, ld = n > 0 ? n : 1;
    lv_tensor *l = lv_tensor_empty(DTYPE, a->ndim, a->shape);
    T *work = l ? work_alloc(n * n, sizeof(T)) : NULL;
    if (!work)
        goto fail;
    /* 0 x 0 matrices: empty output, nothing to ask LAPACK */
    int64_t count = n > 0 ? g->count : 0;
    for (int64_t b = 0; b < count; b++) {
        strided_matrix m = matrix_of(a, g->nbatch_dims, b);
        if (!FN(load)(work, ld, &m)) {
            matrix_error(g, b, "has non-finite entries");
            goto fail;
        }
        lapack_int info = LAPACK(potrf)(LAPACK_COL_MAJOR, 'L', (lapack_int)n,
                                        work, (lapack_int)ld);
        if (info < 0) {
            lapack_failure("potrf", info);
            goto fail;
        }
        if (info > 0) {
            matrix_error(g, b, "is not positive definite");
            goto fail;
        }
        T *lb = (T *)lv_tensor_data(l) + b * n * n;
        for (int64_t i = 0; i < n; i++)
            for (int64_t j = 0; j < n; j++)
                lb[i * n + j] = j <= i ? work[i + j * ld] : (T)0;
    }
    free(work);
    out[0] = l;
    return 1;
fail:
    free(work);
    lv_tensor_release(l);
    return -1;
}

/* log|det A| and sign(det A) from the LU factorisation P A = L U:
 * det A = (-1)^(row swaps) prod U_ii. A zero pivot gives -inf and sign 0. */
static int FN(logdet)(lv_tensor **out, const lv_tensor *a,
                      const batch_info *g)
{
    int64_t n = g->n, ld = n > 0 ? n : 1;
    lv_tensor *res[2];
    res[0] = lv_tensor_empty(DTYPE, g->nbatch_dims, a->shape);
    res[1] = res[0] ? lv_tensor_empty(DTYPE, g->nbatch_dims, a->shape) : NULL;
    T *work = res[1] ? work_alloc(n * n, sizeof(T)) : NULL;
    lapack_int *ipiv = work ? work_alloc(n, sizeof *ipiv) : NULL;
    if (!ipiv)
        goto fail;
    T *logabs = lv_tensor_data(res[0]), *sign = lv_tensor_data(res[1]);
    for (int64_t b = 0; b < g->count; b++) {
        strided_matrix m = matrix_of(a, g->nbatch_dims, b);
        if (!FN(load)(work, ld, &m)) {
            matrix_error(g, b, "has non-finite entries");
            goto fail;
        }
        lapack_int info = LAPACK(getrf)(LAPACK_COL_MAJOR, (lapack_int)n,
                                        (lapack_int)n, work, (lapack_int)ld,
                                        ipiv);
        if (info < 0) {
            lapack_failure("getrf", info);
            goto fail;
        }
        if (info > 0) {                 /* U_ii == 0 exactly: singular */
            logabs[b] = (T)-INFINITY;
            sign[b] = (T)0;
            continue;
        }
        double sum = 0.0;               /* accumulate in double even for f32 */
        int negative = 0;
        for (int64_t i = 0; i < n; i++) {
            double u = (double)work[i + i * ld];
            sum += log(fabs(u));
            negative ^= (u < 0.0) ^ (ipiv[i] != (lapack_int)(i + 1));
        }
        logabs[b] = (T)sum;
        sign[b] = negative ? (T)-1 : (T)1;
    }
    free(ipiv);
    free(work);
    out[0] = res[0];
    out[1] = res[1];
    return 2;
fail:
    free(ipiv);
    free(work);
    lv_tensor_release(res[0]);      /* NULL-tolerant */
    lv_tensor_release(res[1]);
    return -1;
}

/* X with A X = B, by LU with partial pivoting (gesv). B may be f32 while
 * T is double: load converts. */
static int FN(solve)(lv_tensor **out, const lv_tensor *a, const lv_tensor *rhs,
                     int64_t k, const batch_info *g)
{
    int64_t n = g->n, ld = n > 0 ? n : 1;
    lv_tensor *x = lv_tensor_empty(DTYPE, rhs->ndim, rhs->shape);
    T *wa = x ? work_alloc(n * n, sizeof(T)) : NULL;
    T *wb = wa ? work_alloc(n * k, sizeof(T)) : NULL;
    lapack_int *ipiv = wb ? work_alloc(n, sizeof *ipiv) : NULL;
    if (!ipiv)
        goto fail;
    /* 0 x 0 matrices: empty output, nothing to ask LAPACK */
    int64_t count = n > 0 ? g->count : 0;
    for (int64_t b = 0; b < count; b++) {
        strided_matrix ma = matrix_of(a, g->nbatch_dims, b);
        strided_matrix mb = matrix_of(rhs, g->nbatch_dims, b);
        if (!FN(load)(wa, ld, &ma)) {
            matrix_error(g, b, "has non-finite entries");
            goto fail;
        }
        FN(load)(wb, ld, &mb);          /* a non-finite B just gives NaNs */
        lapack_int info = LAPACK(gesv)(LAPACK_COL_MAJOR, (lapack_int)n,
                                       (lapack_int)k, wa, (lapack_int)ld,
                                       ipiv, wb, (lapack_int)ld);
        if (info < 0) {
            lapack_failure("gesv", info);
            goto fail;
        }
        if (info > 0) {
            matrix_error(g, b, "is singular");
            goto fail;
        }
        FN(store)((T *)lv_tensor_data(x) + b * n * k, wb, ld, n, k);
    }
    free(ipiv);
    free(wb);
    free(wa);
    out[0] = x;
    return 1;
fail:
    free(ipiv);
    free(wb);
    free(wa);
    lv_tensor_release(x);
    return -1;
}

/* A^-1 by LU (getrf, then getri). */
static int FN(inverse)(lv_tensor **out, const lv_tensor *a,
                       const batch_info *g)
{
    int64_t n = g->n, ld = n > 0 ? n : 1;
    lv_tensor *inv = lv_tensor_empty(DTYPE, a->ndim, a->shape);
    T *work = inv ? work_alloc(n * n, sizeof(T)) : NULL;
    lapack_int *ipiv = work ? work_alloc(n, sizeof *ipiv) : NULL;
    if (!ipiv)
        goto fail;
    /* 0 x 0 matrices: empty output, nothing to ask LAPACK */
    int64_t count = n > 0 ? g->count : 0;
    for (int64_t b = 0; b < count; b++) {
        strided_matrix m = matrix_of(a, g->nbatch_dims, b);
        if (!FN(load)(work, ld, &m)) {
            matrix_error(g, b, "has non-finite entries");
            goto fail;
        }
        lapack_int info = LAPACK(getrf)(LAPACK_COL_MAJOR, (lapack_int)n,
                                        (lapack_int)n, work, (lapack_int)ld,
                                        ipiv);
        if (info < 0) {
            lapack_failure("getrf", info);
            goto fail;
        }
        if (info > 0) {
            matrix_error(g, b, "is singular");
            goto fail;
        }
        info = LAPACK(getri)(LAPACK_COL_MAJOR, (lapack_int)n, work,
                             (lapack_int)ld, ipiv);
        if (info != 0) {                /* info > 0 cannot follow getrf's 0 */
            lapack_failure("getri", info);
            goto fail;
        }
        FN(store)((T *)lv_tensor_data(inv) + b * n * n, work, ld, n, n);
    }
    free(ipiv);
    free(work);
    out[0] = inv;
    return 1;
fail:
    free(ipiv);
    free(work);
    lv_tensor_release(inv);
    return -1;
}

/* Eigenvalues (ascending) and orthonormal eigenvectors (as columns) of the
 * symmetric matrix whose lower triangle is A's, by divide and conquer
 * (syevd). The eigenvalues are written straight into their output. */
static int FN(eigh)(lv_tensor **out, const lv_tensor *a, const batch_info *g)
{
    int64_t n = g->n, ld = n > 0 ? n : 1;
    lv_tensor *res[2];
    res[0] = lv_tensor_empty(DTYPE, a->ndim - 1, a->shape);
    res[1] = res[0] ? lv_tensor_empty(DTYPE, a->ndim, a->shape) : NULL;
    T *work = res[1] ? work_alloc(n * n, sizeof(T)) : NULL;
    if (!work)
        goto fail;
    /* 0 x 0 matrices: empty output, nothing to ask LAPACK */
    int64_t count = n > 0 ? g->count : 0;
    for (int64_t b = 0; b < count; b++) {
        strided_matrix m = matrix_of(a, g->nbatch_dims, b);
        if (!FN(load)(work, ld, &m)) {
            matrix_error(g, b, "has non-finite entries");
            goto fail;
        }
        T *w = (T *)lv_tensor_data(res[0]) + b * n;
        lapack_int info = LAPACK(syevd)(LAPACK_COL_MAJOR, 'V', 'L',
                                        (lapack_int)n, work, (lapack_int)ld, w);
        if (info < 0) {
            lapack_failure("syevd", info);
            goto fail;
        }
        if (info > 0) {
            matrix_error(g, b, "has eigenvalues that did not converge");
            goto fail;
        }
        FN(store)((T *)lv_tensor_data(res[1]) + b * n * n, work, ld, n, n);
    }
    free(work);
    out[0] = res[0];
    out[1] = res[1];
    return 2;
fail:
    free(work);
    lv_tensor_release(res[0]);      /* NULL-tolerant */
    lv_tensor_release(res[1]);
    return -1;
}

#undef T
#undef SUFFIX
#undef DTYPE
#undef LAPACK
