/* Winograd F(4x4, 3x3), F(3x3, 3x3) and F(2x2, 3x3) transforms in portable C
 * (see wino.h). */
#include "wino.h"

#include <string.h>
#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#endif

#ifndef WINO_ISA
#define WINO_ISA(name) name##_generic
#endif

/* B^T d and A^T m of F(4x4, 3x3) (6 points, 4 outputs), F(3x3, 3x3) (5
 * points, 3 outputs) and F(2x2, 3x3) (4 points, 2 outputs), on all lanes at once: point i's lanes at d + i * ds
 * -> r[k][lane].  The lane loops are innermost, so that the compiler puts
 * lanes in vectors (wino_avx2.c compiles this file again for AVX2); the
 * points are read where they lie (a patch's columns ds apart), not copied
 * to a row of lanes first: the AVX2 build's 16-byte copies then stalled the
 * 32-byte loads that read them (12 % of its input transform's samples). */
typedef float lanes[MI_WINO_LANES];

static inline __attribute__((always_inline)) void bt(const int P, const float *d, int64_t ds, lanes *r) {
  for (int l = 0; l < MI_WINO_LANES; l++) {
    if (P == 6) {
      const float d0 = d[l], d1 = d[ds + l], d2 = d[2 * ds + l], d3 = d[3 * ds + l], d4 = d[4 * ds + l],
                  d5 = d[5 * ds + l];
      r[0][l] = 4.f * d0 - 5.f * d2 + d4;
      r[1][l] = -4.f * d1 - 4.f * d2 + d3 + d4;
      r[2][l] = 4.f * d1 - 4.f * d2 - d3 + d4;
      r[3][l] = -2.f * d1 - d2 + 2.f * d3 + d4;
      r[4][l] = 2.f * d1 - d2 - 2.f * d3 + d4;
      r[5][l] = 4.f * d1 - 5.f * d3 + d5;
    } else if (P == 5) {
      const float d0 = d[l], d1 = d[ds + l], d2 = d[2 * ds + l], d3 = d[3 * ds + l], d4 = d[4 * ds + l];
      r[0][l] = 2.f * (d0 - d2) - d1 + d3;
      r[1][l] = -2.f * d1 - d2 + d3;
      r[2][l] = 2.f * d1 - 3.f * d2 + d3;
      r[3][l] = d3 - d1;
      r[4][l] = 2.f * (d1 - d3) - d2 + d4;
    } else {
      const float d0 = d[l], d1 = d[ds + l], d2 = d[2 * ds + l], d3 = d[3 * ds + l];
      r[0][l] = d0 - d2;
      r[1][l] = d1 + d2;
      r[2][l] = d2 - d1;
      r[3][l] = d1 - d3;
    }
  }
}

static inline __attribute__((always_inline)) void at(const int P, const float *m, int64_t ms, lanes *o) {
  for (int l = 0; l < MI_WINO_LANES; l++) {
    if (P == 6) {
      const float m0 = m[l], m1 = m[ms + l], m2 = m[2 * ms + l], m3 = m[3 * ms + l], m4 = m[4 * ms + l],
                  m5 = m[5 * ms + l];
      o[0][l] = m0 + m1 + m2 + m3 + m4;
      o[1][l] = m1 - m2 + 2.f * (m3 - m4);
      o[2][l] = m1 + m2 + 4.f * (m3 + m4);
      o[3][l] = m1 - m2 + 8.f * (m3 - m4) + m5;
    } else if (P == 5) {
      const float m0 = m[l], m1 = m[ms + l], m2 = m[2 * ms + l], m3 = m[3 * ms + l], m4 = m[4 * ms + l];
      o[0][l] = m0 + m1 + m2 + m3;
      o[1][l] = m1 - m2 + 2.f * m3;
      o[2][l] = m1 + m2 + 4.f * m3 + m4;
    } else {
      const float m0 = m[l], m1 = m[ms + l], m2 = m[2 * ms + l], m3 = m[3 * ms + l];
      o[0][l] = m0 + m1 + m2;
      o[1][l] = m1 - m2 - m3;
    }
  }
}

/* Patch row i's values into d[j][l]: columns j < T from a[T l + j], the
 * others from b[T l + j - T] (T = P - 2). */
static inline __attribute__((always_inline)) void deal_row(const int P, const float *a, const float *b, lanes *d) {
#if defined(__AVX2__) && defined(__FMA__)
  if (P == 6) { /* 4 x 4 transposes within 128-bit halves: lanes l and l + 4 share a load */
    for (int h = 0; h < MI_WINO_LANES; h += 8)
      for (int o = 0; o < 2; o++) { /* o = 0: columns 0-3 from a; o = 1: columns 4-5 from b */
        const float *s = (o ? b : a) + 4 * h;
        __m256 q[4];
        for (int u = 0; u < 4; u++) q[u] = _mm256_loadu2_m128(s + 16 + 4 * u, s + 4 * u); /* lanes h+u, h+u+4 */
        const __m256 t0 = _mm256_unpacklo_ps(q[0], q[1]), t2 = _mm256_unpacklo_ps(q[2], q[3]);
        _mm256_storeu_ps(d[4 * o] + h, _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(1, 0, 1, 0)));
        _mm256_storeu_ps(d[4 * o + 1] + h, _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(3, 2, 3, 2)));
        if (o == 0) {
          const __m256 t1 = _mm256_unpackhi_ps(q[0], q[1]), t3 = _mm256_unpackhi_ps(q[2], q[3]);
          _mm256_storeu_ps(d[2] + h, _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(1, 0, 1, 0)));
          _mm256_storeu_ps(d[3] + h, _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(3, 2, 3, 2)));
        }
      }
    return;
  }
#endif
  const int T = P - 2;
  for (int j = 0; j < P; j++)
    for (int l = 0; l < MI_WINO_LANES; l++) d[j][l] = j < T ? a[T * l + j] : b[T * l + j - T];
}

/* n floats (at most 64) from s to d: in vectors where the build has them,
 * inline (wino_avx2.c is compiled so that these loops do not become memcpy
 * calls, which took 8 % of VGG-16's fast mode at MEDINFER_ISA=avx2). */
static inline __attribute__((always_inline)) void copy_short(float *d, const float *s, int64_t n) {
  int64_t x = 0;
#if defined(__AVX2__) && defined(__FMA__)
  for (; x + 8 <= n; x += 8) _mm256_storeu_ps(d + x, _mm256_loadu_ps(s + x));
#endif
  for (; x < n; x++) d[x] = s[x];
}

/* n values of row s (W long) from column x into dst, zeros outside the row. */
static inline __attribute__((always_inline)) void span(const float *s, int64_t W, int64_t x, int64_t n, float *dst) {
  const int64_t lo = x < 0 ? (-x < n ? -x : n) : 0, hi = W - x < n ? (W - x > lo ? W - x : lo) : n;
  for (int64_t k = 0; k < lo; k++) dst[k] = 0.f;
  copy_short(dst + lo, s + x + lo, hi - lo);
  for (int64_t k = hi; k < n; k++) dst[k] = 0.f;
}

/* The input transform of P x P patches (P = 6, 5 or 4). */
static inline __attribute__((always_inline)) void in_lanes(const int P, const float *plane, int64_t H, int64_t W,
                                                          int64_t dy, int64_t dx, const mi_wino_in_lanes *L,
                                                          float *dst, int64_t xs) {
  lanes d[6][6], t[6][6], r[6];
  const int T = P - 2;
  if (dy == 1 && dx == 1) {
    /* Undilated: the lanes are runs of consecutive tiles along rows (x0 T
     * apart).  Each patch row is copied run by run into two lane-major
     * buffers (zeros outside the plane), then dealt to the lanes: in place
     * of a bounds check per value, on which the AVX2 build spent most of
     * its time (VGG-16 in fast mode at MEDINFER_ISA=avx2). */
    float a[MI_WINO_LANES * 4] __attribute__((aligned(32))), b[MI_WINO_LANES * 4] __attribute__((aligned(32)));
    int run0[MI_WINO_LANES + 1], nrun = 0; /* first lanes of the runs, then n */
    for (int l = 0; l < L->n; l++)
      if (!l || L->y0[l] != L->y0[l - 1] || L->x0[l] != L->x0[l - 1] + T || L->off[l] != L->off[l - 1] + T)
        run0[nrun++] = l;
    run0[nrun] = L->n;
    if (L->n < MI_WINO_LANES) {
      memset(a + T * L->n, 0, (size_t)(T * (MI_WINO_LANES - L->n)) * sizeof(float));
      memset(b + T * L->n, 0, (size_t)(T * (MI_WINO_LANES - L->n)) * sizeof(float));
    }
    /* The patch rows' lines requested together first: the copies below
     * waited on them one row at a time (AVX2, runs alternating: 3D U-Net
     * fast 1165 -> 1140 ms, VGG-16 83.5 -> 79.7) */
    for (int i = 0; i < P; i++)
      for (int q = 0; q < nrun; q++) {
        const int l0 = run0[q], nl = run0[q + 1] - l0;
        const int64_t y = (int64_t)L->y0[l0] + i;
        if (y < 0 || y >= H) continue;
        const char *s = (const char *)(plane + (int64_t)L->off[l0] + i * W);
        for (int64_t k = 0; k < (int64_t)(T * nl + 2) * 4; k += 64) __builtin_prefetch(s + k);
      }
    for (int i = 0; i < P; i++) {
      for (int q = 0; q < nrun; q++) {
        const int l0 = run0[q], nl = run0[q + 1] - l0;
        const int64_t y = (int64_t)L->y0[l0] + i, x = L->x0[l0];
        if (y < 0 || y >= H) {
          memset(a + T * l0, 0, (size_t)(T * nl) * sizeof(float));
          memset(b + T * l0, 0, (size_t)(T * nl) * sizeof(float));
          continue;
        }
        const float *s = plane + (int64_t)L->off[l0] + i * W - x; /* column 0 of row y */
        span(s, W, x, T * nl, a + T * l0);
        span(s, W, x + T, T * nl, b + T * l0);
      }
      deal_row(P, a, b, d[i]);
    }
  } else {
    for (int l = 0; l < MI_WINO_LANES; l++)
      for (int i = 0; i < P; i++) {
        const int64_t y = (int64_t)L->y0[l] + i * dy;
        const bool row = l < L->n && y >= 0 && y < H;
        for (int j = 0; j < P; j++) {
          const int64_t x = (int64_t)L->x0[l] + j * dx;
          d[i][j][l] = row && x >= 0 && x < W ? plane[(int64_t)L->off[l] + i * dy * W + j * dx] : 0.f;
        }
      }
  }
  for (int i = 0; i < P; i++) bt(P, d[i][0], MI_WINO_LANES, t[i]); /* each patch row: t[i][k2] */
  for (int k2 = 0; k2 < P; k2++) {                                  /* then each column */
    bt(P, t[0][k2], 6 * MI_WINO_LANES, r);
    for (int k1 = 0; k1 < P; k1++) memcpy(dst + (k1 * P + k2) * xs, r[k1], sizeof r[k1]);
  }
}

/* Block row i of the lanes, v[T i + j][l], into o[T l + j] (the inverse of
 * deal_row's columns). */
static inline __attribute__((always_inline)) void gather_row(const int T, const lanes *v, float *o) {
#if defined(__AVX2__) && defined(__FMA__)
  if (T == 4) { /* 4 x 4 transposes within 128-bit halves: lanes l and l + 4 share a store */
    for (int h = 0; h < MI_WINO_LANES; h += 8) {
      const __m256 v0 = _mm256_loadu_ps(v[0] + h), v1 = _mm256_loadu_ps(v[1] + h);
      const __m256 v2 = _mm256_loadu_ps(v[2] + h), v3 = _mm256_loadu_ps(v[3] + h);
      const __m256 t0 = _mm256_unpacklo_ps(v0, v1), t1 = _mm256_unpackhi_ps(v0, v1);
      const __m256 t2 = _mm256_unpacklo_ps(v2, v3), t3 = _mm256_unpackhi_ps(v2, v3);
      const __m256 q[4] = {_mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(1, 0, 1, 0)),
                           _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(3, 2, 3, 2)),
                           _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(1, 0, 1, 0)),
                           _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(3, 2, 3, 2))};
      for (int u = 0; u < 4; u++) _mm256_storeu2_m128(o + 4 * (h + u + 4), o + 4 * (h + u), q[u]);
    }
    return;
  }
#endif
  for (int l = 0; l < MI_WINO_LANES; l++)
    for (int j = 0; j < T; j++) o[T * l + j] = v[j][l];
}

/* The epilogue and stores of an undilated layer's blocks v[T i + j][l]:
 * the lanes are runs of consecutive tiles along rows, so each block row of
 * a run is one span of an output row.  The blocks go to lane-major rows
 * first (o[i][T l + j]); the residual, ReLU and activation work on those,
 * and each run's rows are stored as spans, not value by value with a bounds
 * test each (as the input transform reads them, in_lanes). */
static inline __attribute__((always_inline)) void out_runs(const int T, const lanes *v, const mi_wino_out_lanes *L,
                                                          int64_t Wo, const mi_wino_epi *e, float *plane) {
  float o[4 * 4 * MI_WINO_LANES] __attribute__((aligned(32))); /* T rows of T * 16 */
  const int row = T * MI_WINO_LANES;
  int run0[MI_WINO_LANES + 1], nrun = 0; /* first lanes of the runs, then n */
  for (int l = 0; l < L->n; l++)
    if (!l || L->off[l] != L->off[l - 1] + T || L->cols[l - 1] != T || L->rows[l] != L->rows[l - 1])
      run0[nrun++] = l;
  run0[nrun] = L->n;
  for (int i = 0; i < T; i++) gather_row(T, v + T * i, o + i * row);
  for (int q = 0; e->res && q < nrun; q++) {
    const int l0 = run0[q], l1 = run0[q + 1], len = T * (l1 - 1 - l0) + L->cols[l1 - 1];
    for (int i = 0; i < L->rows[l0]; i++) {
      const float *r = e->res + (int64_t)L->off[l0] + i * Wo;
      float *d = o + i * row + T * l0;
      for (int x = 0; x < len; x++) d[x] += r[x];
    }
  }
  if (e->relu)
    for (int k = 0; k < T * row; k++) o[k] = o[k] < 0.f ? 0.f : o[k];
  if (L->n < MI_WINO_LANES) /* fn reads every lane: the unused ones zero */
    for (int i = 0; i < T; i++) memset(o + i * row + T * L->n, 0, (size_t)(T * (MI_WINO_LANES - L->n)) * sizeof(float));
  if (e->fn) e->fn(e->ctx, o, T * row);
  for (int q = 0; q < nrun; q++) {
    const int l0 = run0[q], l1 = run0[q + 1], len = T * (l1 - 1 - l0) + L->cols[l1 - 1];
    for (int i = 0; i < L->rows[l0]; i++)
      copy_short(plane + (int64_t)L->off[l0] + i * Wo, o + i * row + T * l0, len);
  }
}

/* pool2: the activation on the blocks v[T i + j][l], then each 2 x 2 of
 * them to its maximum (as the MaxPool kernel compares), stored to the
 * pooled plane. */
static inline __attribute__((always_inline)) void pool_lanes(const int T, lanes *v, const mi_wino_out_lanes *L,
                                                            int64_t Wo, const mi_wino_epi *e, float *plane) {
  if (e->relu)
    for (int k = 0; k < T * T; k++)
      for (int l = 0; l < MI_WINO_LANES; l++) v[k][l] = v[k][l] < 0.f ? 0.f : v[k][l];
  if (e->fn) {
    for (int k = 0; k < T * T; k++) /* fn reads every lane: the unused ones zero */
      for (int l = L->n; l < MI_WINO_LANES; l++) v[k][l] = 0.f;
    e->fn(e->ctx, &v[0][0], T * T * MI_WINO_LANES);
  }
  const int H = T / 2;
  for (int a = 0; a < H; a++)
    for (int b = 0; b < H; b++) {
      const lanes *w[4] = {&v[2 * a * T + 2 * b], &v[2 * a * T + 2 * b + 1], &v[(2 * a + 1) * T + 2 * b],
                           &v[(2 * a + 1) * T + 2 * b + 1]};
      lanes p;
      for (int l = 0; l < MI_WINO_LANES; l++) {
        float best = (*w[0])[l];
        for (int q = 1; q < 4; q++) best = (*w[q])[l] > best ? (*w[q])[l] : best;
        p[l] = best;
      }
      for (int l = 0; l < L->n; l++)
        if (a < L->rows[l] && b < L->cols[l]) plane[(int64_t)L->off[l] + a * Wo + b] = p[l];
    }
}

/* The output transform to T x T blocks (T = P - 2) and the epilogue. */
static inline __attribute__((always_inline)) void out_lanes(const int P, const float *m, int64_t ms,
                                                           const mi_wino_out_lanes *L, int64_t Wo, int64_t dy,
                                                           int64_t dx, const mi_wino_epi *e, float *plane) {
  const int T = P - 2;
  lanes s[6][4], o[4], v[16];
  for (int k1 = 0; k1 < P; k1++) at(P, m + k1 * P * ms, ms, s[k1]); /* s[k1][j] */
  for (int j = 0; j < T; j++) {
    at(P, s[0][j], 4 * MI_WINO_LANES, o);
    for (int i = 0; i < T; i++)
      for (int l = 0; l < MI_WINO_LANES; l++) v[i * T + j][l] = o[i][l] + e->bias;
  }
  if (e->pool2) {
    pool_lanes(T, v, L, Wo, e, plane);
    return;
  }
  if (dy == 1 && dx == 1) {
    out_runs(T, v, L, Wo, e, plane);
    return;
  }
  if (e->res)
    for (int l = 0; l < L->n; l++)
      for (int i = 0; i < L->rows[l]; i++)
        for (int j = 0; j < L->cols[l]; j++) v[i * T + j][l] += e->res[(int64_t)L->off[l] + i * dy * Wo + j * dx];
  if (e->relu)
    for (int k = 0; k < T * T; k++)
      for (int l = 0; l < MI_WINO_LANES; l++) v[k][l] = v[k][l] < 0.f ? 0.f : v[k][l];
  if (L->n < MI_WINO_LANES) /* fn reads every lane: the unused ones zero */
    for (int k = 0; k < T * T; k++)
      for (int l = L->n; l < MI_WINO_LANES; l++) v[k][l] = 0.f;
  if (e->fn) e->fn(e->ctx, &v[0][0], T * T * MI_WINO_LANES);
  for (int l = 0; l < L->n; l++)
    for (int i = 0; i < L->rows[l]; i++)
      for (int j = 0; j < L->cols[l]; j++) plane[(int64_t)L->off[l] + i * dy * Wo + j * dx] = v[i * T + j][l];
}

void WINO_ISA(mi_wino_in)(int tile, const float *plane, int64_t H, int64_t W, int64_t dy, int64_t dx,
                          const mi_wino_in_lanes *L, float *dst, int64_t xs) {
  if (tile == 4) in_lanes(6, plane, H, W, dy, dx, L, dst, xs);
  else if (tile == 3) in_lanes(5, plane, H, W, dy, dx, L, dst, xs);
  else in_lanes(4, plane, H, W, dy, dx, L, dst, xs);
}

void WINO_ISA(mi_wino_out)(int tile, const float *m, int64_t ms, const mi_wino_out_lanes *L, int64_t Wo, int64_t dy,
                           int64_t dx, const mi_wino_epi *e, float *plane) {
  if (tile == 4) out_lanes(6, m, ms, L, Wo, dy, dx, e, plane);
  else if (tile == 3) out_lanes(5, m, ms, L, Wo, dy, dx, e, plane);
  else out_lanes(4, m, ms, L, Wo, dy, dx, e, plane);
}

#ifndef WINO_ISA_ONLY /* the filters once, in the portable build */
/* U = G g G^T for P interpolation points. */
static void filter(const int P, const double (*G)[3], const float *g, float *u) {
  double t[6][3];
  for (int i = 0; i < P; i++)
    for (int j = 0; j < 3; j++) t[i][j] = G[i][0] * g[j] + G[i][1] * g[3 + j] + G[i][2] * g[6 + j];
  for (int i = 0; i < P; i++)
    for (int k = 0; k < P; k++) u[i * P + k] = (float)(t[i][0] * G[k][0] + t[i][1] * G[k][1] + t[i][2] * G[k][2]);
}

void mi_wino_filter(int tile, const float *g, float *u) {
  static const double G4[6][3] = {{1. / 4, 0, 0},           {-1. / 6, -1. / 6, -1. / 6}, {-1. / 6, 1. / 6, -1. / 6},
                                  {1. / 24, 1. / 12, 1. / 6}, {1. / 24, -1. / 12, 1. / 6}, {0, 0, 1}};
  static const double G3[5][3] = {
      {1. / 2, 0, 0}, {-1. / 2, -1. / 2, -1. / 2}, {-1. / 6, 1. / 6, -1. / 6}, {1. / 6, 1. / 3, 2. / 3}, {0, 0, 1}};
  static const double G2[4][3] = {{1, 0, 0}, {.5, .5, .5}, {.5, -.5, .5}, {0, 0, 1}};
  filter(tile + 2, tile == 4 ? G4 : tile == 3 ? G3 : G2, g, u);
}
#endif
