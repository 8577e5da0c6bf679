/*
 * generic.h -- how a kernel is written once for both dtypes (see
 * docs/ARCHITECTURE.md, "Writing a kernel for both dtypes").
 *
 * The kernels of a concern live in a `<concern>_impl.h` written with a
 * type T. Its includer defines T and SUFFIX, includes it, and does it
 * again for the other dtype:
 *
 *     #define T float
 *     #define SUFFIX f32
 *     #include "ops_reduce_impl.h"
 *     #define T double
 *     #define SUFFIX f64
 *     #include "ops_reduce_impl.h"
 *
 * Inside, FN(name) names a function name_f32 or name_f64, and the file
 * ends by #undef-ing T, SUFFIX and whatever else it asked for, so that the
 * next inclusion starts clean. One switch on the dtype per op then picks
 * the _f32 or _f64 symbol.
 */
#ifndef LV_GENERIC_H
#define LV_GENERIC_H

#define LV_PASTE_(a, b) a##_##b
#define LV_PASTE(a, b) LV_PASTE_(a, b)
#define FN(name) LV_PASTE(name, SUFFIX)

#endif
