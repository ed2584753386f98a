/* Winograd F(4x4, 3x3) transforms, AVX-512F: 16 tiles per vector, read
 * with masked gathers (taps outside the plane are zero) and written with
 * masked scatters (see wino.h).  Compiled with -mavx512f -mfma; only called
 * when CPUID reports AVX-512F. */
#include "wino.h"
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

#define F(x) _mm512_set1_ps(x)

static inline __attribute__((always_inline)) void bt(__m512 r[6], const __m512 d[6]) {
  const __m512 d4_d2 = _mm512_sub_ps(d[4], d[2]);
  r[0] = _mm512_fmadd_ps(F(4.f), d[0], _mm512_fmadd_ps(F(-5.f), d[2], d[4]));
  r[1] = _mm512_fmadd_ps(F(-4.f), _mm512_add_ps(d[1], d[2]), _mm512_add_ps(d[3], d[4]));
  r[2] = _mm512_fmadd_ps(F(4.f), _mm512_sub_ps(d[1], d[2]), _mm512_sub_ps(d[4], d[3]));
  r[3] = _mm512_fmadd_ps(F(2.f), _mm512_sub_ps(d[3], d[1]), d4_d2);
  r[4] = _mm512_fmadd_ps(F(2.f), _mm512_sub_ps(d[1], d[3]), d4_d2);
  r[5] = _mm512_fmadd_ps(F(4.f), d[1], _mm512_fmadd_ps(F(-5.f), d[3], d[5]));
}

static inline __attribute__((always_inline)) void at(__m512 o[4], const __m512 m[6]) {
  const __m512 p12 = _mm512_add_ps(m[1], m[2]), m12 = _mm512_sub_ps(m[1], m[2]);
  const __m512 p34 = _mm512_add_ps(m[3], m[4]), m34 = _mm512_sub_ps(m[3], m[4]);
  o[0] = _mm512_add_ps(_mm512_add_ps(m[0], p12), p34);
  o[1] = _mm512_fmadd_ps(F(2.f), m34, m12);
  o[2] = _mm512_fmadd_ps(F(4.f), p34, p12);
  o[3] = _mm512_add_ps(_mm512_fmadd_ps(F(8.f), m34, m12), m[5]);
}

static inline __mmask16 lane_mask(int n) { return n >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << n) - 1); }

void mi_wino_in_avx512(const float *plane, int64_t H, int64_t W, int64_t dy, int64_t dx, const mi_wino_in_lanes *L,
                       float *dst, int64_t xs) {
  const __m512i off = _mm512_loadu_si512(L->off), y0 = _mm512_loadu_si512(L->y0), x0 = _mm512_loadu_si512(L->x0);
  const __m512i vh = _mm512_set1_epi32((int)H), vw = _mm512_set1_epi32((int)W);
  const __mmask16 lm = lane_mask(L->n);
  __mmask16 cm[6];
  for (int j = 0; j < 6; j++) {
    const __m512i x = _mm512_add_epi32(x0, _mm512_set1_epi32((int)(j * dx)));
    cm[j] = _mm512_mask_cmplt_epi32_mask(_mm512_mask_cmpge_epi32_mask(lm, x, _mm512_setzero_si512()), x, vw);
  }
  __m512 t[6][6];
#pragma GCC unroll 6
  for (int i = 0; i < 6; i++) {
    const __m512i y = _mm512_add_epi32(y0, _mm512_set1_epi32((int)(i * dy)));
    const __mmask16 rm = _mm512_mask_cmplt_epi32_mask(_mm512_cmpge_epi32_mask(y, _mm512_setzero_si512()), y, vh);
    const __m512i row = _mm512_add_epi32(off, _mm512_set1_epi32((int)(i * dy * W)));
    __m512 d[6], r[6];
#pragma GCC unroll 6
    for (int j = 0; j < 6; j++)
      d[j] = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), rm & cm[j], _mm512_add_epi32(row, _mm512_set1_epi32((int)(j * dx))),
                                      plane, 4);
    bt(r, d);
#pragma GCC unroll 6
    for (int k = 0; k < 6; k++) t[k][i] = r[k];
  }
#pragma GCC unroll 6
  for (int k2 = 0; k2 < 6; k2++) {
    __m512 r[6];
    bt(r, t[k2]);
#pragma GCC unroll 6
    for (int k1 = 0; k1 < 6; k1++) _mm512_storeu_ps(dst + (k1 * 6 + k2) * xs, r[k1]);
  }
}

void mi_wino_out_avx512(const float *m, int64_t ms, const mi_wino_out_lanes *L, int64_t Wo, int64_t dy, int64_t dx,
                        const mi_wino_epi *e, float *plane) {
  const __m512i off = _mm512_loadu_si512(L->off), rows = _mm512_loadu_si512(L->rows),
                cols = _mm512_loadu_si512(L->cols);
  const __mmask16 lm = lane_mask(L->n);
  __m512 s[4][6];
#pragma GCC unroll 6
  for (int k1 = 0; k1 < 6; k1++) {
    __m512 c[6], o[4];
#pragma GCC unroll 6
    for (int k2 = 0; k2 < 6; k2++) c[k2] = _mm512_maskz_loadu_ps(lm, m + (k1 * 6 + k2) * ms); /* lanes >= n: unwritten */
    at(o, c);
#pragma GCC unroll 4
    for (int j = 0; j < 4; j++) s[j][k1] = o[j];
  }
  __m512 v[4][4]; /* [row][column] */
  const __m512 bias = _mm512_set1_ps(e->bias);
#pragma GCC unroll 4
  for (int j = 0; j < 4; j++) {
    __m512 o[4];
    at(o, s[j]);
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++) v[i][j] = _mm512_add_ps(o[i], bias);
  }
  __mmask16 km[4][4];
  __m512i idx[4][4];
  for (int i = 0; i < 4; i++) {
    const __mmask16 rm = _mm512_mask_cmpgt_epi32_mask(lm, rows, _mm512_set1_epi32(i));
    for (int j = 0; j < 4; j++) {
      km[i][j] = _mm512_mask_cmpgt_epi32_mask(rm, cols, _mm512_set1_epi32(j));
      idx[i][j] = _mm512_add_epi32(off, _mm512_set1_epi32((int)(i * dy * Wo + j * dx)));
    }
  }
  if (e->res)
    for (int i = 0; i < 4; i++)
      for (int j = 0; j < 4; j++)
        v[i][j] = _mm512_add_ps(v[i][j], _mm512_mask_i32gather_ps(_mm512_setzero_ps(), km[i][j], idx[i][j], e->res, 4));
  if (e->relu)
    for (int i = 0; i < 4; i++)
      for (int j = 0; j < 4; j++) v[i][j] = _mm512_max_ps(v[i][j], _mm512_setzero_ps());
  if (e->fn) {
    float buf[16][16] __attribute__((aligned(64)));
    for (int i = 0; i < 4; i++)
      for (int j = 0; j < 4; j++) _mm512_store_ps(buf[i * 4 + j], v[i][j]);
    e->fn(e->ctx, &buf[0][0], 256);
    for (int i = 0; i < 4; i++)
      for (int j = 0; j < 4; j++) v[i][j] = _mm512_load_ps(buf[i * 4 + j]);
  }
  for (int i = 0; i < 4; i++)
    for (int j = 0; j < 4; j++) _mm512_mask_i32scatter_ps(plane, km[i][j], idx[i][j], v[i][j], 4);
}
#endif
