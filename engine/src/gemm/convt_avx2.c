/* ConvTranspose straight into the output (convt.h): the AVX2 kernel, 8
 * positions a vector.  Compiled with -mavx2 -mfma; only called when CPUID
 * reports AVX2 and FMA. */
#include "convt.h"

#ifdef MI_GEMM_X86
#include <immintrin.h>

/* lanes set in bits (of 8) as a maskload/maskstore mask */
static inline __m256i lane_mask(uint32_t bits) {
  const __m256i lane = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
  return _mm256_cmpeq_epi32(_mm256_and_si256(_mm256_set1_epi32((int)bits), lane), lane);
}

/* Output values v (v[0]: the first 8 of the positions' KX * 8, v[1] the
 * next) stored run by run into the block row at off, with the residual and
 * ReLU. */
static inline __attribute__((always_inline)) void store_runs(float *y, const mi_convt_runs *r, int64_t off,
                                                              const __m256 v[2], const float *res, bool relu,
                                                              const int KX) {
  const __m256 zero = _mm256_setzero_ps();
  for (int s = 0; s < r->n; s++) {
    const int64_t o = off + r->o[s];
#pragma GCC unroll 2
    for (int h = 0; h < KX; h++) {
      const uint32_t bits = r->bits[s][h];
      if (!bits) continue;
      __m256 u = v[h];
      if (bits == 0xff) {
        if (res) u = _mm256_add_ps(u, _mm256_loadu_ps(res + o + 8 * h));
        if (relu) u = _mm256_max_ps(u, zero);
        _mm256_storeu_ps(y + o + 8 * h, u);
      } else {
        const __m256i mk = lane_mask(bits);
        if (res) u = _mm256_add_ps(u, _mm256_maskload_ps(res + o + 8 * h, mk));
        if (relu) u = _mm256_max_ps(u, zero);
        _mm256_maskstore_ps(y + o + 8 * h, mk, u);
      }
    }
  }
}

/* NB block rows of KX taps over input positions [p0, p1): 8 at a time,
 * accumulated over every channel in registers, then stored once. */
static inline __attribute__((always_inline)) void block_tile(const mi_convt_job *j, const mi_convt_layout *l,
                                                              int64_t p0, int64_t p1, const float *w, int64_t ws,
                                                              const mi_convt_rows *rb, const float *res, bool relu,
                                                              const int NB, const int KX) {
  const int64_t in_sz = j->in[0] * j->in[1] * j->in[2];
  mi_convt_cursor cur = mi_convt_cursor_at(l, p0);
  for (int64_t p = p0; p < p1; p += 8) {
    const int64_t n = p1 - p < 8 ? p1 - p : 8;
    const __m256i mk = lane_mask(mi_convt_span(0, n, 8));
    mi_convt_runs r;
    mi_convt_next_runs(l, n, KX, 8, &cur, &r);
    __m256 acc[MI_CONVT_MAX_ROWS][2];
#pragma GCC unroll 12
    for (int i = 0; i < NB; i++)
#pragma GCC unroll 2
      for (int c = 0; c < KX; c++) acc[i][c] = _mm256_setzero_ps();
    const float *xp = j->x + p, *wp = w;
    for (int64_t ch = 0; ch < j->C; ch++, xp += in_sz, wp += ws) {
      const __m256 xv = n == 8 ? _mm256_loadu_ps(xp) : _mm256_maskload_ps(xp, mk);
#pragma GCC unroll 12
      for (int i = 0; i < NB; i++)
#pragma GCC unroll 2
        for (int c = 0; c < KX; c++) acc[i][c] = _mm256_fmadd_ps(_mm256_broadcast_ss(wp + i * KX + c), xv, acc[i][c]);
    }
#pragma GCC unroll 12
    for (int i = 0; i < NB; i++) {
      const __m256 bv = _mm256_set1_ps(rb->bias[i]);
      __m256 v[2];
      if (KX == 1) {
        v[0] = _mm256_add_ps(acc[i][0], bv);
        v[1] = v[0];
      } else { /* lanes 0-3 (4-7) of the two taps interleaved */
        const __m256 a = _mm256_unpacklo_ps(acc[i][0], acc[i][1]), b = _mm256_unpackhi_ps(acc[i][0], acc[i][1]);
        v[0] = _mm256_add_ps(_mm256_permute2f128_ps(a, b, 0x20), bv);
        v[1] = _mm256_add_ps(_mm256_permute2f128_ps(a, b, 0x31), bv);
      }
      store_runs(j->y, &r, rb->off[i], v, res, relu, KX);
    }
  }
}

MI_CONVT_BLOCK_ENTRY(mi_convt_block_avx2, block_tile)
#endif
