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
                                                      float beta, const float *bias,
                                                      const float *res, bool relu) {
  __m256 acc[MR][NV];
#pragma GCC unroll 8
  for (int i = 0; i < mr; i++)
#pragma GCC unroll 4
    for (int v = 0; v < nv; v++) acc[i][v] = _mm256_setzero_ps();
#pragma GCC unroll 4
  for (int64_t k = 0; k < kc; k++) {
    _mm_prefetch((const char *)(a + 384), _MM_HINT_T0); /* 1.5 KB ahead: see kernel_avx512.c */
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
        if (bias) r = _mm256_add_ps(r, _mm256_set1_ps(bias[i]));
        if (res) r = _mm256_add_ps(r, _mm256_loadu_ps(res + i * ldc + 8 * v));
        if (relu) r = _mm256_max_ps(r, _mm256_setzero_ps());
        _mm256_storeu_ps(p, r);
      }
    } else if (rem > 0) {
      __m256i m = colmask(rem);
#pragma GCC unroll 8
      for (int i = 0; i < mr; i++) {
        float *p = c + i * ldc + 8 * v;
        __m256 r = _mm256_mul_ps(acc[i][v], va);
        if (beta != 0.f) r = _mm256_fmadd_ps(vb, _mm256_maskload_ps(p, m), r);
        if (bias) r = _mm256_add_ps(r, _mm256_set1_ps(bias[i]));
        if (res) r = _mm256_add_ps(r, _mm256_maskload_ps(res + i * ldc + 8 * v, m));
        if (relu) r = _mm256_max_ps(r, _mm256_setzero_ps());
        _mm256_maskstore_ps(p, m, r);
      }
    }
  }
}

#define KROW(M) MI_GEMM_TILE_FNS(M, 1) MI_GEMM_TILE_FNS(M, 2)
KROW(1) KROW(2) KROW(3) KROW(4) KROW(5) KROW(6)
#undef KROW

typedef void (*kfn)(int64_t, const float *, const float *, float *, int64_t, int, float, float);
static const kfn table[MR][NV] = {{k_1_1, k_1_2}, {k_2_1, k_2_2}, {k_3_1, k_3_2},
                                  {k_4_1, k_4_2}, {k_5_1, k_5_2}, {k_6_1, k_6_2}};

static void kern_avx2(int64_t kc, const float *pa, const float *pb, float *c, int64_t ldc, int mr,
                      int nr, float alpha, float beta) {
  table[mr - 1][(nr + 7) / 8 - 1](kc, pa, pb, c, ldc, nr, alpha, beta);
}

typedef void (*kefn)(int64_t, const float *, const float *, float *, int64_t, int, float, float, const float *,
                     const float *, bool);
static const kefn table_epi[MR][NV] = {{ke_1_1, ke_1_2}, {ke_2_1, ke_2_2}, {ke_3_1, ke_3_2},
                                       {ke_4_1, ke_4_2}, {ke_5_1, ke_5_2}, {ke_6_1, ke_6_2}};

/* The epilogue in registers (bias, residual, ReLU) before the tile's one
 * store: no second pass over C (the AVX-512 kernel's kern_epi). */
static bool kern_epi_avx2(int64_t kc, const float *pa, const float *pb, float *c, int64_t ldc, int mr, int nr,
                          float alpha, float beta, const float *bias, const float *res, bool relu) {
  table_epi[mr - 1][(nr + 7) / 8 - 1](kc, pa, pb, c, ldc, nr, alpha, beta, bias, res, relu);
  return true;
}

/* ---- packing: 8x8 transposes ---------------------------------------------- */
static inline __attribute__((always_inline)) void tr8x8(__m256 r[8]) {
  __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
  __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
  __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
  __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
  __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xEE);
  __m256 s2 = _mm256_shuffle_ps(t1, t3, 0x44), s3 = _mm256_shuffle_ps(t1, t3, 0xEE);
  __m256 s4 = _mm256_shuffle_ps(t4, t6, 0x44), s5 = _mm256_shuffle_ps(t4, t6, 0xEE);
  __m256 s6 = _mm256_shuffle_ps(t5, t7, 0x44), s7 = _mm256_shuffle_ps(t5, t7, 0xEE);
  r[0] = _mm256_permute2f128_ps(s0, s4, 0x20);
  r[1] = _mm256_permute2f128_ps(s1, s5, 0x20);
  r[2] = _mm256_permute2f128_ps(s2, s6, 0x20);
  r[3] = _mm256_permute2f128_ps(s3, s7, 0x20);
  r[4] = _mm256_permute2f128_ps(s0, s4, 0x31);
  r[5] = _mm256_permute2f128_ps(s1, s5, 0x31);
  r[6] = _mm256_permute2f128_ps(s2, s6, 0x31);
  r[7] = _mm256_permute2f128_ps(s3, s7, 0x31);
}

/* 8 source rows (stride ld) x kc  ->  dst[k*stride + 0..7]. */
static void tr_rows8(int64_t kc, const float *src, int64_t ld, float *dst, int64_t stride) {
  int64_t k = 0;
  for (; k + 8 <= kc; k += 8) {
    __m256 r[8];
    for (int i = 0; i < 8; i++) r[i] = _mm256_loadu_ps(src + i * ld + k);
    tr8x8(r);
    for (int q = 0; q < 8; q++) _mm256_storeu_ps(dst + (k + q) * stride, r[q]);
  }
  for (; k < kc; k++)
    for (int i = 0; i < 8; i++) dst[k * stride + i] = src[i * ld + k];
}

void mi_gemm_pack_a_rows_avx2(int mrmax, int64_t kc, int mr, const float *A, int64_t lda,
                              float *dst) {
  int i = 0;
  if (mrmax % 8 == 0)
    for (; i + 8 <= mr; i += 8) tr_rows8(kc, A + i * lda, lda, dst + i, mrmax);
  for (; i < mr; i++)
    for (int64_t k = 0; k < kc; k++) dst[k * mrmax + i] = A[i * lda + k];
  if (mr < mrmax)
    for (int64_t k = 0; k < kc; k++)
      for (int r = mr; r < mrmax; r++) dst[k * mrmax + r] = 0.f;
}

void mi_gemm_pack_b_cols_avx2(int nrmax, int64_t kc, int nr, const float *B, int64_t ldb,
                              float *dst) {
  int j = 0;
  if (nrmax % 8 == 0)
    for (; j + 8 <= nr; j += 8) tr_rows8(kc, B + j * ldb, ldb, dst + j, nrmax);
  for (; j < nr; j++)
    for (int64_t k = 0; k < kc; k++) dst[k * nrmax + j] = B[j * ldb + k];
  if (nr < nrmax)
    for (int64_t k = 0; k < kc; k++)
      for (int c = nr; c < nrmax; c++) dst[k * nrmax + c] = 0.f;
}

void mi_gemm_pack_b_rows_avx2(int nrmax, int64_t kc, int nr, const float *B, int64_t ldb,
                              float *dst) {
  const int full = nr / 8 * 8, rem = nr - full;
  const __m256i m = colmask(rem);
  for (int64_t k = 0; k < kc; k++) {
    const float *s = B + k * ldb;
    float *d = dst + k * nrmax;
    /* The row's next panel, into L2: a panel reads kc rows a page or more
     * apart, more streams than the hardware prefetchers follow. */
    for (int j = 0; j < nrmax; j += 16) _mm_prefetch((const char *)(s + nrmax + j), _MM_HINT_T1);
    int j = 0;
    for (; j < full; j += 8) _mm256_storeu_ps(d + j, _mm256_loadu_ps(s + j));
    if (rem) {
      _mm256_storeu_ps(d + j, _mm256_maskload_ps(s + j, m));
      j += 8;
    }
    for (; j < nrmax; j++) d[j] = 0.f;
  }
}

const mi_gemm_kernel mi_gemm_kernel_avx2 = {"avx2", MR, NR, 8, 256, 144, 2048, kern_avx2,
                                           mi_gemm_pack_a_rows_avx2, mi_gemm_pack_b_cols_avx2,
                                           mi_gemm_pack_b_rows_avx2, kern_epi_avx2, 0, 0};
#endif
