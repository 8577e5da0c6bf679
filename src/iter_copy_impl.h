/*
 * iter_copy_impl.h -- the copy-with-conversion loop of lv_copy_strided
 * (iter.c), written once. Included once per pair of dtypes (generic.h):
 * the includer defines T and SUFFIX for the destination, FROM and
 * FROM_SUFFIX for the source; the loop is named copy_<SUFFIX>_<FROM_SUFFIX>
 * (copy_f32_f64: f64 into f32). This file #undefs all four at its end.
 */

static void LV_PASTE(FN(copy), FROM_SUFFIX)(int64_t n, char **ptr,
                                            const int64_t *step, void *ctx)
{
    (void)ctx;
    T *dst = (T *)ptr[0];
    const FROM *src = (const FROM *)ptr[1];
    int64_t sd = step[0], ss = step[1];
    if (sd == 1 && ss == 1) {
        for (int64_t i = 0; i < n; i++)
            dst[i] = (T)src[i];
    } else {
        for (int64_t i = 0; i < n; i++)
            dst[i * sd] = (T)src[i * ss];
    }
}

#undef T
#undef SUFFIX
#undef FROM
#undef FROM_SUFFIX
