/* Portable C micro-kernel (4x8, sized to fit 16 SSE registers): plain loops
 * the compiler vectorizes with the baseline ISA. */
#include <stddef.h>

#include "gemm.h"

#define MR 4
#define NR 8

static void kern_generic(int64_t kc, const float *restrict pa, const float *restrict pb, float *c,
                         int64_t ldc, int mr, int nr, float alpha, float beta) {
  float acc[MR][NR] = {{0}};
  for (int64_t k = 0; k < kc; k++) {
    const float *a = pa + k * MR, *b = pb + k * NR;
    for (int i = 0; i < MR; i++) {
      const float ai = a[i];
      for (int j = 0; j < NR; j++) acc[i][j] += ai * b[j];
    }
  }
  for (int i = 0; i < mr; i++) {
    float *ci = c + i * ldc;
    if (beta == 0.f)
      for (int j = 0; j < nr; j++) ci[j] = alpha * acc[i][j];
    else
      for (int j = 0; j < nr; j++) ci[j] = alpha * acc[i][j] + beta * ci[j];
  }
}

const mi_gemm_kernel mi_gemm_kernel_generic = {"generic", MR, NR, NR, 256, 128, 2048, kern_generic, NULL, NULL, NULL, NULL, 0, 0};
