/* ConvTranspose, strides equal to the kernel, straight into the output
 * (convt.h).  Compiled with -mavx512f; only called when CPUID reports
 * AVX-512F. */
#include "convt.h"

#include <string.h>

#ifdef MI_GEMM_X86
#include <immintrin.h>

#define MAX_ROWS 12 /* mi_convt_block_rows at most */

/* lanes [0, k) and [lo, hi) of 16 */
static inline __mmask16 first(int64_t k) {
  return k >= 16 ? (__mmask16)0xffff : k <= 0 ? (__mmask16)0 : (__mmask16)((1u << k) - 1u);
}
static inline __mmask16 span(int64_t lo, int64_t hi) { return first(hi) & (__mmask16)~first(lo); }

/* A block's output rows: row i (channel m[i], taps a, b) of input row
 * (iz, iy) starts at y + off[i] + (iz * k0 * out1 + iy * k1) * ow. */
typedef struct rows_block {
  int64_t m[MAX_ROWS], off[MAX_ROWS];
  float bias[MAX_ROWS];
} rows_block;

/* Rows of the layer's geometry, for the stores. */
typedef struct layout {
  int64_t W, in1, k0, k1, out1, ow;
} layout;

/* The runs of a vector of positions along input rows: lane q (a run's
 * first) lands at output offset o of a block row's tap (0, 0), the lanes
 * of the run's values in its first (mk[0]) and second (mk[1]) vector. */
typedef struct runs {
  int n;
  int64_t o[16];
  __mmask16 mk[16][2];
} runs;

/* Input position of a tile walked along its rows, without divisions. */
typedef struct cursor {
  int64_t ix, iy, iz;
} cursor;

/* The runs of the next n positions at c, which moves past them. */
static inline void next_runs(const layout *l, int64_t n, int KX, cursor *c, runs *r) {
  r->n = 0;
  for (int64_t q = 0; q < n;) {
    const int64_t len = l->W - c->ix < n - q ? l->W - c->ix : n - q;
    r->o[r->n] = (c->iz * l->k0 * l->out1 + c->iy * l->k1) * l->ow + (c->ix - q) * KX;
    for (int h = 0; h < 2; h++) r->mk[r->n][h] = span(q * KX - 16 * h, (q + len) * KX - 16 * h);
    r->n++;
    q += len;
    if ((c->ix += len) == l->W) {
      c->ix = 0;
      if (++c->iy == l->in1) c->iy = 0, c->iz++;
    }
  }
}

/* Output values v (v[0]: the first 16 of the positions' KX * 16, v[1]
 * the next) stored run by run into the block row at off, with the
 * residual and ReLU. */
static inline __attribute__((always_inline)) void store_runs(float *y, const runs *r, int64_t off, const __m512 v[2],
                                                              const float *res, bool relu, const int KX) {
  const __m512 zero = _mm512_setzero_ps();
  for (int s = 0; s < r->n; s++) {
    const int64_t o = off + r->o[s];
#pragma GCC unroll 2
    for (int h = 0; h < KX; h++) {
      const __mmask16 mk = r->mk[s][h];
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
static inline __attribute__((always_inline)) void block_tile(const mi_convt_job *j, const layout *l, int64_t p0,
                                                              int64_t p1, const float *w, int64_t ws,
                                                              const rows_block *rb, const float *res, bool relu,
                                                              const int NB, const int KX) {
  /* the pairs of lanes 0-7 (8-15) of two accumulators, interleaved */
  const __m512i lo = _mm512_set_epi32(23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
  const __m512i hi = _mm512_set_epi32(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8);
  const int64_t in_sz = j->in[0] * j->in[1] * j->in[2];
  cursor cur = {p0 % l->W, p0 / l->W % l->in1, p0 / l->W / l->in1};
  for (int64_t p = p0; p < p1; p += 16) {
    const int64_t n = p1 - p < 16 ? p1 - p : 16;
    const __mmask16 mk = first(n);
    runs r;
    next_runs(l, n, KX, &cur, &r);
    __m512 acc[MAX_ROWS][2];
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

void mi_convt_pack(const float *w, int64_t C, int64_t M, const int64_t k[3], float *dst) {
  const int64_t KX = k[2], R = M * k[0] * k[1], NB = mi_convt_block_rows(KX);
  for (int64_t r0 = 0; r0 < R; r0 += NB) {
    const int64_t nb = R - r0 < NB ? R - r0 : NB;
    for (int64_t c = 0; c < C; c++)
      memcpy(dst + r0 * KX * C + c * nb * KX, w + (c * R + r0) * KX, (size_t)(nb * KX) * sizeof(float));
  }
}

int64_t mi_convt_items(const mi_convt_job *j) {
  const int64_t in_sz = j->in[0] * j->in[1] * j->in[2];
  return (in_sz + j->tile - 1) / j->tile;
}

void mi_convt_tiles_avx512(const mi_convt_job *j, int64_t b, int64_t e) {
  const int64_t k0 = j->k[0], k1 = j->k[1], KX = j->k[2], taps = k0 * k1, R = j->M * taps;
  const int64_t in_sz = j->in[0] * j->in[1] * j->in[2], out_sz = in_sz * taps * KX;
  const layout l = {j->in[2], j->in[1], k0, k1, j->in[1] * k1, j->in[2] * KX};
  const mi_gemm_epilogue *epi = j->epi;
  const bool simple = !epi || epi->simple, relu = epi && epi->simple && epi->relu;
  /* the residual, read at the output's offsets */
  const float *res = simple && epi && epi->res ? epi->res + (j->y - epi->c0) : NULL;
  const int NB = (int)mi_convt_block_rows(KX);
  for (int64_t it = b; it < e; it++) {
    const int64_t p0 = it * j->tile, p1 = p0 + j->tile < in_sz ? p0 + j->tile : in_sz;
    for (int64_t r0 = 0; r0 < R; r0 += NB) {
      const int nb = (int)(R - r0 < NB ? R - r0 : NB);
      rows_block rb;
      for (int i = 0; i < nb; i++) {
        const int64_t r = r0 + i, m = r / taps, a = r % taps / k1, bb = r % k1;
        rb.m[i] = m;
        rb.off[i] = m * out_sz + (a * l.out1 + bb) * l.ow;
        rb.bias[i] = simple && epi && epi->bias ? epi->bias[m] : 0.f;
      }
      const float *w = j->w + r0 * KX * j->C;
      const int64_t ws = nb * KX;
#define ROWS(nr, kx)                                                  \
  case nr:                                                            \
    block_tile(j, &l, p0, p1, w, ws, &rb, res, relu, nr, kx);         \
    break
      if (KX == 1) {
        switch (nb) {
          ROWS(1, 1); ROWS(2, 1); ROWS(3, 1); ROWS(4, 1); ROWS(5, 1); ROWS(6, 1);
          ROWS(7, 1); ROWS(8, 1); ROWS(9, 1); ROWS(10, 1); ROWS(11, 1); ROWS(12, 1);
        }
      } else {
        switch (nb) { ROWS(1, 2); ROWS(2, 2); ROWS(3, 2); ROWS(4, 2); ROWS(5, 2); ROWS(6, 2); }
      }
#undef ROWS
      if (!simple) /* the rest of the epilogue, run by run, while the rows are in the caches */
        for (int64_t p = p0; p < p1;) {
          const int64_t ix = p % l.W, len = l.W - ix < p1 - p ? l.W - ix : p1 - p;
          const int64_t row = p / l.W, o = (row / l.in1 * k0 * l.out1 + row % l.in1 * k1) * l.ow + ix * KX;
          for (int i = 0; i < nb; i++) {
            const int64_t at = rb.off[i] + o;
            epi->fn(epi->ctx, rb.m[i], 1, at - rb.m[i] * out_sz, len * KX, j->y + at, out_sz);
          }
          p += len;
        }
    }
  }
}
#endif
