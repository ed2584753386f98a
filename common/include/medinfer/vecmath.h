/* Elementwise math over float arrays, vectorised for the CPU it runs on. */
#ifndef MEDINFER_VECMATH_H
#define MEDINFER_VECMATH_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* y[i] = e^x[i] for i < n, within 1.5 ulp of e^x (subnormal results within
 * 1.5 units of 2^-149): 0 below -103.97, +inf above 88.72, NaN stays NaN.
 * x and y may be the same array (not otherwise overlapping). */
void mi_exp_floats(const float *x, float *y, size_t n);
/* y[i] = 1 / (1 + e^-x[i]) by the above; the same aliasing rule. */
void mi_sigmoid_floats(const float *x, float *y, size_t n);

#ifdef __cplusplus
}
#endif
#endif
