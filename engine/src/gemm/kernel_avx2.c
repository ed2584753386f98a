/* AVX2+FMA micro-kernel: 6x16 tile in 12 ymm accumulators, A broadcast,
 * B loaded; narrower edges (8 columns) and masked stores for partial rows.
 * Compiled with -mavx2 -mfma; only called when CPUID reports both. */
#include "gemm.h"
#ifdef MI_GEMM_X86
#include <immintrin.h>

#define MR 6
#define NR 16
#define NV 2 /* vectors of 8 per tile row */

static inline __attribute__((always_inline)) __m256i colmask(int rem) {
  const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(rem), idx);
}

static inline __attribute__((always_inline)) void body(const int mr, const int nv, int64_t kc,
                                                      const float *restrict a,
                                                      const float *restrict b, float *c,
                                                      int64_t ldc, int nr, float alpha,
                                                      float beta) {
  __m256 acc[MR][NV];
#pragma GCC unroll 8
  for (int i = 0; i < mr; i++)
#pragma GCC unroll 4
    for (int v = 0; v < nv; v++) acc[i][v] = _mm256_setzero_ps();
#pragma GCC unroll 4
  for (int64_t k = 0; k < kc; k++) {
    __m256 b0 = _mm256_load_ps(b), b1 = nv > 1 ? _mm256_load_ps(b + 8) : b0;
#pragma GCC unroll 8
    for (int i = 0; i < mr; i++) {
      __m256 ai = _mm256_broadcast_ss(a + i);
      acc[i][0] = _mm256_fmadd_ps(ai, b0, acc[i][0]);
      if (nv > 1) acc[i][1] = _mm256_fmadd_ps(ai, b1, acc[i][1]);
    }
    a += MR;
    b += NR;
  }
  const __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
#pragma GCC unroll 4
  for (int v = 0; v < nv; v++) {
    int rem = nr - 8 * v;
    if (rem >= 8) {
#pragma GCC unroll 8
      for (int i = 0; i < mr; i++) {
        float *p = c + i * ldc + 8 * v;
        __m256 r = _mm256_mul_ps(acc[i][v], va);
        if (beta != 0.f) r = _mm256_fmadd_ps(vb, _mm256_loadu_ps(p), r);
        _mm256_storeu_ps(p, r);
      }
    } else if (rem > 0) {
      __m256i m = colmask(rem);
#pragma GCC unroll 8
      for (int i = 0; i < mr; i++) {
        float *p = c + i * ldc + 8 * v;
        __m256 r = _mm256_mul_ps(acc[i][v], va);
        if (beta != 0.f) r = _mm256_fmadd_ps(vb, _mm256_maskload_ps(p, m), r);
        _mm256_maskstore_ps(p, m, r);
      }
    }
  }
}

#define K(M, V)                                                                                \
  static void k_##M##_##V(int64_t kc, const float *a, const float *b, float *c, int64_t ldc, \
                          int nr, float alpha, float beta) {                                 \
    body(M, V, kc, a, b, c, ldc, nr, alpha, beta);                                           \
  }
#define KROW(M) K(M, 1) K(M, 2)
KROW(1) KROW(2) KROW(3) KROW(4) KROW(5) KROW(6)
#undef K
#undef KROW

typedef void (*kfn)(int64_t, const float *, const float *, float *, int64_t, int, float, float);
static const kfn table[MR][NV] = {{k_1_1, k_1_2}, {k_2_1, k_2_2}, {k_3_1, k_3_2},
                                  {k_4_1, k_4_2}, {k_5_1, k_5_2}, {k_6_1, k_6_2}};

static void kern_avx2(int64_t kc, const float *pa, const float *pb, float *c, int64_t ldc, int mr,
                      int nr, float alpha, float beta) {
  table[mr - 1][(nr + 7) / 8 - 1](kc, pa, pb, c, ldc, nr, alpha, beta);
}

const mi_gemm_kernel mi_gemm_kernel_avx2 = {"avx2", MR, NR, 8, 256, 144, 2048, kern_avx2};
#endif
