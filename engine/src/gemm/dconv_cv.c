/* Direct convolution with output channels in the vectors (AVX-512F; see
 * dconv.h): each k-step loads 16-64 output channels' weights and broadcasts
 * one input value per position.  Suits small maps (the 14x14 and 7x7 layers
 * of a CNN): a tile's positions are any output positions (rows need not be
 * whole or padded grids kept), the weights stream through each block in
 * order, and the few positions of a map fill whole tiles.  Compiled with
 * -mavx512f -mfma; only called when CPUID reports AVX-512F. */
#include "dconv.h"
#include "../hugepages.h"

#ifdef MI_GEMM_X86
#include <immintrin.h>
#include <stdlib.h>
#include <string.h>

#define PMAX 12 /* positions per tile: 6 with 64 channels (24 accumulators) */

bool mi_dconv_cv_pack(const float *w, int64_t M, int64_t K, mi_dconv_cv_weights *out) {
  if (M <= 0 || M % 16 || K <= 0) return false;
  const int vb = M % 64 == 0 && K <= 1152 ? 64 : M % 32 == 0 ? 32 : 16;
  float *d = aligned_alloc(64, (size_t)(M * K) * sizeof(float));
  if (!d) return false;
  mi_advise_huge(d, (size_t)(M * K) * sizeof(float));
  for (int64_t b = 0; b < M / vb; b++)
    for (int64_t i = 0; i < vb; i++) {
      const float *src = w + (b * vb + i) * K;
      float *dst = d + b * K * vb + i;
      for (int64_t k = 0; k < K; k++) dst[k * vb] = src[k];
    }
  *out = (mi_dconv_cv_weights){d, M, K, vb};
  return true;
}

void mi_dconv_cv_rows(const mi_dconv_cv_weights *w, int64_t r0, int64_t n, float *dst) {
  for (int64_t i = 0; i < n; i++) {
    const int64_t m = r0 + i, b = m / w->vb;
    const float *src = w->data + b * w->K * w->vb + m % w->vb;
    for (int64_t k = 0; k < w->K; k++) dst[i * w->K + k] = src[k * w->vb];
  }
}

static int pmax(int vb) { return vb == 64 ? 6 : PMAX; }
static int64_t positions(const mi_dconv_job *j) { return j->planes * ((j->q_end - j->cols) / j->row + 1) * j->cols; }

/* Tiles of a job: as few as hold its positions, dealt evenly (49 positions
 * are 10 + 10 + 10 + 10 + 9, not 4 x 12 + 1). */
static int64_t ntiles(const mi_dconv_job *j, int vb) { return (positions(j) + pmax(vb) - 1) / pmax(vb); }

int64_t mi_dconv_cv_items(const mi_dconv_job *j, const mi_dconv_cv_weights *w) {
  return w->M / w->vb * ntiles(j, w->vb);
}

/* np positions (source offsets q, output indices o) x V vectors of
 * channels from m0; bias and ReLU in registers, then scattered to Y. */
static inline __attribute__((always_inline)) void tile(const int V, const int NP, const mi_dconv_job *j,
                                                      const mi_dconv_cv_weights *w, int64_t m0, const int64_t *q,
                                                      const int64_t *o) {
  __m512 acc[PMAX][4];
#pragma GCC unroll 12
  for (int p = 0; p < NP; p++)
#pragma GCC unroll 4
    for (int v = 0; v < V; v++) acc[p][v] = _mm512_setzero_ps();
  const float *xs[PMAX];
#pragma GCC unroll 12
  for (int p = 0; p < NP; p++) xs[p] = j->x + q[p];
  const float *wp = w->data + m0 * w->K;
  const int32_t *t = j->toff;
  const int64_t K = w->K;
#pragma GCC unroll 2
  for (int64_t k = 0; k < K; k++, wp += 16 * V) {
    __m512 wv[4];
#pragma GCC unroll 4
    for (int v = 0; v < V; v++) wv[v] = _mm512_load_ps(wp + 16 * v);
    const int64_t tk = t[k];
#pragma GCC unroll 12
    for (int p = 0; p < NP; p++) {
      const __m512 b = _mm512_set1_ps(xs[p][tk]);
#pragma GCC unroll 4
      for (int v = 0; v < V; v++) acc[p][v] = _mm512_fmadd_ps(wv[v], b, acc[p][v]);
    }
  }
  const __m512i lanes = _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                                           _mm512_set1_epi32((int)j->ldy));
  const __m512 zero = _mm512_setzero_ps();
#pragma GCC unroll 4
  for (int v = 0; v < V; v++) {
    const __m512 bv = j->bias ? _mm512_loadu_ps(j->bias + m0 + 16 * v) : zero;
    float *yv = j->y + (m0 + 16 * v) * j->ldy;
#pragma GCC unroll 12
    for (int p = 0; p < NP; p++) {
      __m512 r = _mm512_add_ps(acc[p][v], bv);
      if (j->relu) r = _mm512_max_ps(r, zero);
      _mm512_i32scatter_ps(yv + o[p], lanes, r, 4);
    }
  }
}

typedef void (*tile_fn)(const mi_dconv_job *, const mi_dconv_cv_weights *, int64_t, const int64_t *,
                        const int64_t *);
#define T(V, P)                                                                                            \
  static void t_##V##_##P(const mi_dconv_job *j, const mi_dconv_cv_weights *w, int64_t m0, const int64_t *q, \
                          const int64_t *o) {                                                              \
    tile(V, P, j, w, m0, q, o);                                                                            \
  }
#define T6(V) T(V, 1) T(V, 2) T(V, 3) T(V, 4) T(V, 5) T(V, 6)
#define T12(V) T6(V) T(V, 7) T(V, 8) T(V, 9) T(V, 10) T(V, 11) T(V, 12)
T12(1) T12(2) T6(4)
#undef T
#undef T6
#undef T12
#define ROW12(V) {t_##V##_1, t_##V##_2, t_##V##_3, t_##V##_4,  t_##V##_5,  t_##V##_6, \
                  t_##V##_7, t_##V##_8, t_##V##_9, t_##V##_10, t_##V##_11, t_##V##_12}
static const tile_fn tiles1[PMAX] = ROW12(1), tiles2[PMAX] = ROW12(2);
static const tile_fn tiles4[6] = {t_4_1, t_4_2, t_4_3, t_4_4, t_4_5, t_4_6};
#undef ROW12

void mi_dconv_cv_run(const mi_dconv_job *j, const mi_dconv_cv_weights *w, int64_t begin, int64_t end) {
  const int64_t total = positions(j), nt = ntiles(j, w->vb);
  const int64_t rows = (j->q_end - j->cols) / j->row + 1, plane = rows * j->cols;
  const tile_fn *fns = w->vb == 64 ? tiles4 : w->vb == 32 ? tiles2 : tiles1;
  for (int64_t it = begin; it < end; it++) {
    /* block first: one thread's consecutive items reuse the block's weights from L2 */
    const int64_t blk = it / nt, tile_i = it % nt, m0 = blk * w->vb;
    const int64_t t0 = tile_i * total / nt;
    const int np = (int)((tile_i + 1) * total / nt - t0);
    int64_t q[PMAX], o[PMAX];
    for (int p = 0; p < np; p++) {
      const int64_t t = t0 + p, z = t / plane, r = t % plane / j->cols, c = t % j->cols;
      q[p] = z * j->x_plane + r * j->row + c;
      o[p] = z * j->out_plane + r * j->cols + c;
    }
    fns[np - 1](j, w, m0, q, o);
    if (!j->epi) continue;
    for (int p = 0; p < np;) { /* runs of consecutive outputs */
      int e = p + 1;
      while (e < np && o[e] == o[e - 1] + 1) e++;
      j->epi->fn(j->epi->ctx, m0, w->vb, o[p], o[e - 1] - o[p] + 1, j->y + m0 * j->ldy + o[p], j->ldy);
      p = e;
    }
  }
}
#endif
