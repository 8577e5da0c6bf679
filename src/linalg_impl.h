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

/* Loads matrix b of a into dst (column-major, leading dim ld), refusing a
 * matrix with a non-finite entry before LAPACK sees it. Returns 1, or 0
 * with the error set. */
static int FN(load_finite)(T *dst, int64_t ld, const lv_tensor *a,
                           const batch_info *g, int64_t b)
{
    strided_matrix m = matrix_of(a, g->nbatch_dims, b);
    if (FN(load)(dst, ld, &m))
        return 1;
    return matrix_error(g, b, "has non-finite entries"), 0;
}

/* Each kernel below owns its results (res) and work buffers until it ends;
 * every failure jumps to `done` with ok = 0, which frees the buffers and
 * hands the results to kernel_end. */

/* L with L L^T = A, from A's lower triangle; L's upper part is zero. */
static int FN(cholesky)(lv_tensor **out, const lv_tensor *a,
                        const batch_info *g)
{
    int64_t n = g->n, ld = n > 0 ? n : 1;
    int ok = 0;
    lv_tensor *l = lv_tensor_empty(DTYPE, a->ndim, a->shape);
    T *work = l ? work_alloc(n * n, sizeof(T)) : NULL;
    if (!work)
        goto done;
    /* 0 x 0 matrices: empty output, nothing to ask LAPACK */
    int64_t count = n > 0 ? g->count : 0;
    for (int64_t b = 0; b < count; b++) {
        if (!FN(load_finite)(work, ld, a, g, b))
            goto done;
        lapack_int info = LAPACK(potrf)(LAPACK_COL_MAJOR, 'L', (lapack_int)n,
                                        work, (lapack_int)ld);
        if (!lapack_ok("potrf", info, g, b, "is not positive definite"))
            goto done;
        T *lb = (T *)lv_tensor_data(l) + b * n * n;
        for (int64_t i = 0; i < n; i++)
            for (int64_t j = 0; j < n; j++)
                lb[i * n + j] = j <= i ? work[i + j * ld] : (T)0;
    }
    ok = 1;
done:
    free(work);
    return kernel_end(out, &l, 1, ok);
}

/* log|det A| and sign(det A) from the LU factorisation P A = L U:
 * det A = (-1)^(row swaps) prod U_ii. A zero pivot gives -inf and sign 0. */
static int FN(logdet)(lv_tensor **out, const lv_tensor *a,
                      const batch_info *g)
{
    int64_t n = g->n, ld = n > 0 ? n : 1;
    int ok = 0;
    lv_tensor *res[2];
    res[0] = lv_tensor_empty(DTYPE, g->nbatch_dims, a->shape);
    res[1] = res[0] ? lv_tensor_empty(DTYPE, g->nbatch_dims, a->shape) : NULL;
    T *work = res[1] ? work_alloc(n * n, sizeof(T)) : NULL;
    lapack_int *ipiv = work ? work_alloc(n, sizeof *ipiv) : NULL;
    if (!ipiv)
        goto done;
    T *logabs = lv_tensor_data(res[0]), *sign = lv_tensor_data(res[1]);
    for (int64_t b = 0; b < g->count; b++) {
        if (!FN(load_finite)(work, ld, a, g, b))
            goto done;
        lapack_int info = LAPACK(getrf)(LAPACK_COL_MAJOR, (lapack_int)n,
                                        (lapack_int)n, work, (lapack_int)ld,
                                        ipiv);
        if (info > 0) {                 /* U_ii == 0 exactly: singular */
            logabs[b] = (T)-INFINITY;
            sign[b] = (T)0;
            continue;
        }
        if (!lapack_ok("getrf", info, g, b, NULL))
            goto done;
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
    ok = 1;
done:
    free(ipiv);
    free(work);
    return kernel_end(out, res, 2, ok);
}

/* X with A X = B, by LU with partial pivoting (gesv). B may be f32 while
 * T is double: load converts. */
static int FN(solve)(lv_tensor **out, const lv_tensor *a, const lv_tensor *rhs,
                     int64_t k, const batch_info *g)
{
    int64_t n = g->n, ld = n > 0 ? n : 1;
    int ok = 0;
    lv_tensor *x = lv_tensor_empty(DTYPE, rhs->ndim, rhs->shape);
    T *wa = x ? work_alloc(n * n, sizeof(T)) : NULL;
    T *wb = wa ? work_alloc(n * k, sizeof(T)) : NULL;
    lapack_int *ipiv = wb ? work_alloc(n, sizeof *ipiv) : NULL;
    if (!ipiv)
        goto done;
    /* 0 x 0 matrices: empty output, nothing to ask LAPACK */
    int64_t count = n > 0 ? g->count : 0;
    for (int64_t b = 0; b < count; b++) {
        if (!FN(load_finite)(wa, ld, a, g, b))
            goto done;
        strided_matrix mb = matrix_of(rhs, g->nbatch_dims, b);
        FN(load)(wb, ld, &mb);          /* a non-finite B just gives NaNs */
        lapack_int info = LAPACK(gesv)(LAPACK_COL_MAJOR, (lapack_int)n,
                                       (lapack_int)k, wa, (lapack_int)ld,
                                       ipiv, wb, (lapack_int)ld);
        if (!lapack_ok("gesv", info, g, b, "is singular"))
            goto done;
        FN(store)((T *)lv_tensor_data(x) + b * n * k, wb, ld, n, k);
    }
    ok = 1;
done:
    free(ipiv);
    free(wb);
    free(wa);
    return kernel_end(out, &x, 1, ok);
}

/* A^-1 by LU (getrf, then getri). */
static int FN(inverse)(lv_tensor **out, const lv_tensor *a,
                       const batch_info *g)
{
    int64_t n = g->n, ld = n > 0 ? n : 1;
    int ok = 0;
    lv_tensor *inv = lv_tensor_empty(DTYPE, a->ndim, a->shape);
    T *work = inv ? work_alloc(n * n, sizeof(T)) : NULL;
    lapack_int *ipiv = work ? work_alloc(n, sizeof *ipiv) : NULL;
    if (!ipiv)
        goto done;
    /* 0 x 0 matrices: empty output, nothing to ask LAPACK */
    int64_t count = n > 0 ? g->count : 0;
    for (int64_t b = 0; b < count; b++) {
        if (!FN(load_finite)(work, ld, a, g, b))
            goto done;
        lapack_int info = LAPACK(getrf)(LAPACK_COL_MAJOR, (lapack_int)n,
                                        (lapack_int)n, work, (lapack_int)ld,
                                        ipiv);
        if (!lapack_ok("getrf", info, g, b, "is singular"))
            goto done;
        info = LAPACK(getri)(LAPACK_COL_MAJOR, (lapack_int)n, work,
                             (lapack_int)ld, ipiv);
        /* info > 0 cannot follow getrf's 0: any nonzero is LAPACK's */
        if (!lapack_ok("getri", info, g, b, NULL))
            goto done;
        FN(store)((T *)lv_tensor_data(inv) + b * n * n, work, ld, n, n);
    }
    ok = 1;
done:
    free(ipiv);
    free(work);
    return kernel_end(out, &inv, 1, ok);
}

/* Eigenvalues (ascending) and orthonormal eigenvectors (as columns) of the
 * symmetric matrix whose lower triangle is A's, by divide and conquer
 * (syevd). The eigenvalues are written straight into their output. */
static int FN(eigh)(lv_tensor **out, const lv_tensor *a, const batch_info *g)
{
    int64_t n = g->n, ld = n > 0 ? n : 1;
    int ok = 0;
    lv_tensor *res[2];
    res[0] = lv_tensor_empty(DTYPE, a->ndim - 1, a->shape);
    res[1] = res[0] ? lv_tensor_empty(DTYPE, a->ndim, a->shape) : NULL;
    T *work = res[1] ? work_alloc(n * n, sizeof(T)) : NULL;
    if (!work)
        goto done;
    /* 0 x 0 matrices: empty output, nothing to ask LAPACK */
    int64_t count = n > 0 ? g->count : 0;
    for (int64_t b = 0; b < count; b++) {
        if (!FN(load_finite)(work, ld, a, g, b))
            goto done;
        T *w = (T *)lv_tensor_data(res[0]) + b * n;
        lapack_int info = LAPACK(syevd)(LAPACK_COL_MAJOR, 'V', 'L',
                                        (lapack_int)n, work, (lapack_int)ld, w);
        if (!lapack_ok("syevd", info, g, b,
                       "has eigenvalues that did not converge"))
            goto done;
        FN(store)((T *)lv_tensor_data(res[1]) + b * n * n, work, ld, n, n);
    }
    ok = 1;
done:
    free(work);
    return kernel_end(out, res, 2, ok);
}

#undef T
#undef SUFFIX
#undef DTYPE
#undef LAPACK
