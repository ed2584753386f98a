/* ConvTranspose straight into the output (convt.h): the AVX-512 kernel,
 * 16 positions a vector.  Compiled with -mavx512f; only called when CPUID
 * reports AVX-512F. */
#include "convt.h"

#ifdef MI_GEMM_X86
#include <immintrin.h>

/* Output values v (v[0]: the first 16 of the positions' KX * 16, v[1] the
 * next) stored run by run into the block row at off, with the residual and
 * ReLU. */
static inline __attribute__((always_inline)) void store_runs(float *y, const mi_convt_runs *r, int64_t off,
                                                              const __m512 v[2], const float *res, bool relu,
                                                              const int KX) {
  const __m512 zero = _mm512_setzero_ps();
  for (int s = 0; s < r->n; s++) {
    const int64_t o = off + r->o[s];
#pragma GCC unroll 2
    for (int h = 0; h < KX; h++) {
      const __mmask16 mk = (__mmask16)r->bits[s][h];
      if (!mk) continue;
      __m512 u = v[h];
      if (res) u = _mm512_add_ps(u, _mm512_maskz_loadu_ps(mk, res + o + 16 * h));
      if (relu) u = _mm512_max_ps(u, zero);
      _mm512_mask_storeu_ps(y + o + 16 * h, mk, u);
    }
  }
}

/* NB block rows of KX taps over input positions [p0, p1): 16 at a time,
 * accumulated over every channel in registers, then stored once. */
static inline __attribute__((always_inline)) void block_tile(const mi_convt_job *j, const mi_convt_layout *l,
                                                              int64_t p0, int64_t p1, const float *w, int64_t ws,
                                                              const mi_convt_rows *rb, const float *res, bool relu,
                                                              const int NB, const int KX) {
  /* the pairs of lanes 0-7 (8-15) of two accumulators, interleaved */
  const __m512i lo = _mm512_set_epi32(23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
  const __m512i hi = _mm512_set_epi32(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8);
  const int64_t in_sz = j->in[0] * j->in[1] * j->in[2];
  mi_convt_cursor cur = mi_convt_cursor_at(l, p0);
  for (int64_t p = p0; p < p1; p += 16) {
    const int64_t n = p1 - p < 16 ? p1 - p : 16;
    const __mmask16 mk = (__mmask16)mi_convt_span(0, n, 16);
    mi_convt_runs r;
    mi_convt_next_runs(l, n, KX, 16, &cur, &r);
    __m512 acc[MI_CONVT_MAX_ROWS][2];
#pragma GCC unroll 12
    for (int i = 0; i < NB; i++)
#pragma GCC unroll 2
      for (int c = 0; c < KX; c++) acc[i][c] = _mm512_setzero_ps();
    const float *xp = j->x + p, *wp = w;
    for (int64_t ch = 0; ch < j->C; ch++, xp += in_sz, wp += ws) {
      const __m512 xv = _mm512_maskz_loadu_ps(mk, xp);
#pragma GCC unroll 12
      for (int i = 0; i < NB; i++)
#pragma GCC unroll 2
        for (int c = 0; c < KX; c++) acc[i][c] = _mm512_fmadd_ps(_mm512_set1_ps(wp[i * KX + c]), xv, acc[i][c]);
    }
#pragma GCC unroll 12
    for (int i = 0; i < NB; i++) {
      const __m512 bv = _mm512_set1_ps(rb->bias[i]);
      __m512 v[2];
      if (KX == 1) {
        v[0] = _mm512_add_ps(acc[i][0], bv);
        v[1] = v[0];
      } else {
        v[0] = _mm512_add_ps(_mm512_permutex2var_ps(acc[i][0], lo, acc[i][1]), bv);
        v[1] = _mm512_add_ps(_mm512_permutex2var_ps(acc[i][0], hi, acc[i][1]), bv);
      }
      store_runs(j->y, &r, rb->off[i], v, res, relu, KX);
    }
  }
}

MI_CONVT_BLOCK_ENTRY(mi_convt_block_avx512, block_tile)
#endif
