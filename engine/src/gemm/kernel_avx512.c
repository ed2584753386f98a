/* AVX-512F micro-kernel: 8x48 tile in 24 zmm accumulators, A broadcast
 * (folded into the FMA), B loaded; 16/32-column variants for narrow edges
 * and AVX-512 masked loads/stores for partial vectors.  8 rows match the
 * channel counts of CNN layers (multiples of 8).  Compiled with -mavx512f
 * -mfma; only called when CPUID reports AVX-512F. */
#include "gemm.h"
#ifdef MI_GEMM_X86
#include <immintrin.h>

#define MR 8
#define NR 48
#define NV 3 /* vectors of 16 per tile row */
/* A's panels are read once per column panel, in order: a prefetch 2 KB
 * ahead keeps packed weights streaming from memory, where a network's
 * larger layers find them (ResNet-50: 35.8 -> 31.5 ms; a 7x7 1x1 layer of
 * 4 MB of weights, cold: 0.67 -> 0.47 ms), faster than the hardware
 * prefetcher alone brought them here. */
#define PFD 512 /* floats */

static inline __attribute__((always_inline)) void body(const int mr, const int nv, int64_t kc,
                                                      const float *restrict a,
                                                      const float *restrict b, float *c,
                                                      int64_t ldc, int nr, float alpha,
                                                      float beta, const float *bias,
                                                      const float *res, bool relu) {
  __m512 acc[MR][NV];
#pragma GCC unroll 8
  for (int i = 0; i < mr; i++)
#pragma GCC unroll 4
    for (int v = 0; v < nv; v++) acc[i][v] = _mm512_setzero_ps();
#pragma GCC unroll 4
  for (int64_t k = 0; k < kc; k++) {
    _mm_prefetch((const char *)(a + PFD), _MM_HINT_T0);
    __m512 b0 = _mm512_load_ps(b);
    __m512 b1 = nv > 1 ? _mm512_load_ps(b + 16) : b0;
    __m512 b2 = nv > 2 ? _mm512_load_ps(b + 32) : b0;
#pragma GCC unroll 8
    for (int i = 0; i < mr; i++) {
      __m512 ai = _mm512_set1_ps(a[i]);
      acc[i][0] = _mm512_fmadd_ps(ai, b0, acc[i][0]);
      if (nv > 1) acc[i][1] = _mm512_fmadd_ps(ai, b1, acc[i][1]);
      if (nv > 2) acc[i][2] = _mm512_fmadd_ps(ai, b2, acc[i][2]);
    }
    a += MR;
    b += NR;
  }
  const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
#pragma GCC unroll 4
  for (int v = 0; v < nv; v++) {
    int rem = nr - 16 * v;
    __mmask16 m = rem >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << rem) - 1u);
#pragma GCC unroll 8
    for (int i = 0; i < mr; i++) {
      float *p = c + i * ldc + 16 * v;
      __m512 r = _mm512_mul_ps(acc[i][v], va);
      if (beta != 0.f) r = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m, p), r);
      if (bias) r = _mm512_add_ps(r, _mm512_set1_ps(bias[i]));
      if (res) r = _mm512_add_ps(r, _mm512_maskz_loadu_ps(m, res + i * ldc + 16 * v));
      if (relu) r = _mm512_max_ps(r, _mm512_setzero_ps());
      _mm512_mask_storeu_ps(p, m, r);
    }
  }
}

#define KROW(M) MI_GEMM_TILE_FNS(M, 1) MI_GEMM_TILE_FNS(M, 2) MI_GEMM_TILE_FNS(M, 3)
KROW(1) KROW(2) KROW(3) KROW(4) KROW(5) KROW(6) KROW(7) KROW(8)
#undef KROW

typedef void (*kfn)(int64_t, const float *, const float *, float *, int64_t, int, float, float);
typedef void (*kefn)(int64_t, const float *, const float *, float *, int64_t, int, float, float, const float *,
                     const float *, bool);
#define ROW(M) {k_##M##_1, k_##M##_2, k_##M##_3}
static const kfn table[MR][NV] = {ROW(1), ROW(2), ROW(3), ROW(4), ROW(5), ROW(6), ROW(7), ROW(8)};
#undef ROW
#define ROW(M) {ke_##M##_1, ke_##M##_2, ke_##M##_3}
static const kefn table_epi[MR][NV] = {ROW(1), ROW(2), ROW(3), ROW(4), ROW(5), ROW(6), ROW(7), ROW(8)};
#undef ROW

/* Narrow column remainder (1..8 columns): the 8 rows of the A micro-panel
 * in one ymm, one broadcast B element per column, i.e. C^T tiles.  nr ymm
 * FMAs per k instead of 8 zmm FMAs whose lanes are mostly idle (N = 49:
 * 48 + 1 columns, N = 196: 192 + 4).  U interleaved k chains hide the FMA
 * latency when there are few columns. */
static inline __attribute__((always_inline)) void body_cols(const int nr, const int U, int64_t kc,
                                                           const float *restrict a,
                                                           const float *restrict b, float *c,
                                                           int64_t ldc, int mr, float alpha,
                                                           float beta) {
  __m256 acc[4][8];
#pragma GCC unroll 4
  for (int u = 0; u < U; u++)
#pragma GCC unroll 8
    for (int j = 0; j < nr; j++) acc[u][j] = _mm256_setzero_ps();
  int64_t k = 0;
  for (; k + U <= kc; k += U) {
#pragma GCC unroll 4
    for (int u = 0; u < U; u++) {
      const __m256 av = _mm256_load_ps(a + (k + u) * MR);
      const float *bk = b + (k + u) * NR;
#pragma GCC unroll 8
      for (int j = 0; j < nr; j++) acc[u][j] = _mm256_fmadd_ps(av, _mm256_broadcast_ss(bk + j), acc[u][j]);
    }
  }
  for (; k < kc; k++) {
    const __m256 av = _mm256_load_ps(a + k * MR);
#pragma GCC unroll 8
    for (int j = 0; j < nr; j++) acc[0][j] = _mm256_fmadd_ps(av, _mm256_broadcast_ss(b + k * NR + j), acc[0][j]);
  }
  const __m256 va = _mm256_set1_ps(alpha);
#pragma GCC unroll 8
  for (int j = 0; j < nr; j++) {
    __m256 r = acc[0][j];
#pragma GCC unroll 4
    for (int u = 1; u < U; u++) r = _mm256_add_ps(r, acc[u][j]);
    float t[8];
    _mm256_storeu_ps(t, _mm256_mul_ps(r, va));
    if (beta == 0.f)
      for (int i = 0; i < mr; i++) c[i * ldc + j] = t[i];
    else
      for (int i = 0; i < mr; i++) c[i * ldc + j] = t[i] + beta * c[i * ldc + j];
  }
}

#define KC_(N, U)                                                                              \
  static void kc_##N(int64_t kc, const float *a, const float *b, float *c, int64_t ldc, int mr, \
                     float alpha, float beta) {                                               \
    body_cols(N, U, kc, a, b, c, ldc, mr, alpha, beta);                                        \
  }
KC_(1, 4) KC_(2, 4) KC_(3, 4) KC_(4, 2) KC_(5, 2) KC_(6, 2) KC_(7, 2) KC_(8, 2)
#undef KC_
typedef void (*cfn)(int64_t, const float *, const float *, float *, int64_t, int, float, float);
static const cfn cols_table[8] = {kc_1, kc_2, kc_3, kc_4, kc_5, kc_6, kc_7, kc_8};

static void kern_avx512(int64_t kc, const float *pa, const float *pb, float *c, int64_t ldc,
                        int mr, int nr, float alpha, float beta) {
  const int full = nr & ~15, rem = nr & 15;
  if (rem == 0 || rem > 8) {
    table[mr - 1][(nr + 15) / 16 - 1](kc, pa, pb, c, ldc, nr, alpha, beta);
    return;
  }
  if (full) table[mr - 1][full / 16 - 1](kc, pa, pb, c, ldc, full, alpha, beta);
  cols_table[rem - 1](kc, pa, pb + full, c + full, ldc, mr, alpha, beta);
}

/* Whole vectors and masked ones; a narrow remainder (1..8 columns, the
 * C^T tiles) is left to kern and the epilogue's fn. */
static bool kern_epi_avx512(int64_t kc, const float *pa, const float *pb, float *c, int64_t ldc, int mr, int nr,
                            float alpha, float beta, const float *bias, const float *res, bool relu) {
  const int rem = nr & 15;
  if (rem != 0 && rem <= 8) return false;
  table_epi[mr - 1][(nr + 15) / 16 - 1](kc, pa, pb, c, ldc, nr, alpha, beta, bias, res, relu);
  return true;
}

const mi_gemm_kernel mi_gemm_kernel_avx512 = {"avx512", MR, NR, 16, 192, 512, 2304, kern_avx512,
                                             mi_gemm_pack_a_rows_avx2, mi_gemm_pack_b_cols_avx2,
                                             mi_gemm_pack_b_rows_avx2, kern_epi_avx512, 512, 4608};
#endif
