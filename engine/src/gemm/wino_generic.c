/* Winograd F(4x4, 3x3) and F(2x2, 3x3) transforms in portable C (see wino.h). */
#include "wino.h"

#include <string.h>

#ifndef WINO_ISA
#define WINO_ISA(name) name##_generic
#endif

/* B^T d and A^T m of F(4x4, 3x3) (6 points, 4 outputs) and F(2x2, 3x3) (4
 * points, 2 outputs), on all lanes at once: d[i][lane] -> r[k][lane].  The
 * lane loops are innermost, so that the compiler puts lanes in vectors
 * (wino_avx2.c compiles this file again for AVX2). */
typedef float lanes[MI_WINO_LANES];

static inline __attribute__((always_inline)) void bt(const int P, const lanes *d, lanes *r) {
  for (int l = 0; l < MI_WINO_LANES; l++) {
    if (P == 6) {
      const float d0 = d[0][l], d1 = d[1][l], d2 = d[2][l], d3 = d[3][l], d4 = d[4][l], d5 = d[5][l];
      r[0][l] = 4.f * d0 - 5.f * d2 + d4;
      r[1][l] = -4.f * d1 - 4.f * d2 + d3 + d4;
      r[2][l] = 4.f * d1 - 4.f * d2 - d3 + d4;
      r[3][l] = -2.f * d1 - d2 + 2.f * d3 + d4;
      r[4][l] = 2.f * d1 - d2 - 2.f * d3 + d4;
      r[5][l] = 4.f * d1 - 5.f * d3 + d5;
    } else {
      const float d0 = d[0][l], d1 = d[1][l], d2 = d[2][l], d3 = d[3][l];
      r[0][l] = d0 - d2;
      r[1][l] = d1 + d2;
      r[2][l] = d2 - d1;
      r[3][l] = d1 - d3;
    }
  }
}

static inline __attribute__((always_inline)) void at(const int P, const lanes *m, lanes *o) {
  for (int l = 0; l < MI_WINO_LANES; l++) {
    if (P == 6) {
      const float m0 = m[0][l], m1 = m[1][l], m2 = m[2][l], m3 = m[3][l], m4 = m[4][l], m5 = m[5][l];
      o[0][l] = m0 + m1 + m2 + m3 + m4;
      o[1][l] = m1 - m2 + 2.f * (m3 - m4);
      o[2][l] = m1 + m2 + 4.f * (m3 + m4);
      o[3][l] = m1 - m2 + 8.f * (m3 - m4) + m5;
    } else {
      const float m0 = m[0][l], m1 = m[1][l], m2 = m[2][l], m3 = m[3][l];
      o[0][l] = m0 + m1 + m2;
      o[1][l] = m1 - m2 - m3;
    }
  }
}

/* The input transform of P x P patches (P = 6 or 4). */
static inline __attribute__((always_inline)) void in_lanes(const int P, const float *plane, int64_t H, int64_t W,
                                                          int64_t dy, int64_t dx, const mi_wino_in_lanes *L,
                                                          float *dst, int64_t xs) {
  lanes d[6][6], t[6][6], c[6], r[6];
  for (int l = 0; l < MI_WINO_LANES; l++)
    for (int i = 0; i < P; i++) {
      const int64_t y = (int64_t)L->y0[l] + i * dy;
      const bool row = l < L->n && y >= 0 && y < H;
      for (int j = 0; j < P; j++) {
        const int64_t x = (int64_t)L->x0[l] + j * dx;
        d[i][j][l] = row && x >= 0 && x < W ? plane[(int64_t)L->off[l] + i * dy * W + j * dx] : 0.f;
      }
    }
  for (int i = 0; i < P; i++) bt(P, d[i], t[i]); /* each patch row: t[i][k2] */
  for (int k2 = 0; k2 < P; k2++) {                /* then each column */
    for (int i = 0; i < P; i++) memcpy(c[i], t[i][k2], sizeof c[i]);
    bt(P, c, r);
    for (int k1 = 0; k1 < P; k1++) memcpy(dst + (k1 * P + k2) * xs, r[k1], sizeof r[k1]);
  }
}

/* The output transform to T x T blocks (T = P - 2) and the epilogue. */
static inline __attribute__((always_inline)) void out_lanes(const int P, const float *m, int64_t ms,
                                                           const mi_wino_out_lanes *L, int64_t Wo, int64_t dy,
                                                           int64_t dx, const mi_wino_epi *e, float *plane) {
  const int T = P - 2;
  lanes c[6], s[6][4], o[4], v[16];
  for (int k1 = 0; k1 < P; k1++) {
    for (int k2 = 0; k2 < P; k2++) memcpy(c[k2], m + (k1 * P + k2) * ms, sizeof c[k2]);
    at(P, c, s[k1]); /* s[k1][j] */
  }
  for (int j = 0; j < T; j++) {
    for (int k1 = 0; k1 < P; k1++) memcpy(c[k1], s[k1][j], sizeof c[k1]);
    at(P, c, o);
    for (int i = 0; i < T; i++)
      for (int l = 0; l < MI_WINO_LANES; l++) v[i * T + j][l] = o[i][l] + e->bias;
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

void WINO_ISA(mi_wino_in)(const float *plane, int64_t H, int64_t W, int64_t dy, int64_t dx, const mi_wino_in_lanes *L,
                          float *dst, int64_t xs) {
  in_lanes(6, plane, H, W, dy, dx, L, dst, xs);
}

void WINO_ISA(mi_wino_out)(const float *m, int64_t ms, const mi_wino_out_lanes *L, int64_t Wo, int64_t dy, int64_t dx,
                           const mi_wino_epi *e, float *plane) {
  out_lanes(6, m, ms, L, Wo, dy, dx, e, plane);
}

void WINO_ISA(mi_wino2_in)(const float *plane, int64_t H, int64_t W, int64_t dy, int64_t dx, const mi_wino_in_lanes *L,
                           float *dst, int64_t xs) {
  in_lanes(4, plane, H, W, dy, dx, L, dst, xs);
}

void WINO_ISA(mi_wino2_out)(const float *m, int64_t ms, const mi_wino_out_lanes *L, int64_t Wo, int64_t dy, int64_t dx,
                            const mi_wino_epi *e, float *plane) {
  out_lanes(4, m, ms, L, Wo, dy, dx, e, plane);
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

void mi_wino_filter(const float *g, float *u) {
  static const double G[6][3] = {{1. / 4, 0, 0},           {-1. / 6, -1. / 6, -1. / 6}, {-1. / 6, 1. / 6, -1. / 6},
                                 {1. / 24, 1. / 12, 1. / 6}, {1. / 24, -1. / 12, 1. / 6}, {0, 0, 1}};
  filter(6, G, g, u);
}

void mi_wino2_filter(const float *g, float *u) {
  static const double G[4][3] = {{1, 0, 0}, {.5, .5, .5}, {.5, -.5, .5}, {0, 0, 1}};
  filter(4, G, g, u);
}
#endif
