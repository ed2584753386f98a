/* Winograd F(4x4, 3x3) and F(2x2, 3x3) transforms in portable C (see wino.h). */
#include "wino.h"

#include <string.h>

/* B^T d (6 points). */
#define WINO_BT(r, d)                                      \
  do {                                                     \
    r[0] = 4.f * d[0] - 5.f * d[2] + d[4];                 \
    r[1] = -4.f * d[1] - 4.f * d[2] + d[3] + d[4];         \
    r[2] = 4.f * d[1] - 4.f * d[2] - d[3] + d[4];          \
    r[3] = -2.f * d[1] - d[2] + 2.f * d[3] + d[4];         \
    r[4] = 2.f * d[1] - d[2] - 2.f * d[3] + d[4];          \
    r[5] = 4.f * d[1] - 5.f * d[3] + d[5];                 \
  } while (0)

/* A^T m (6 points to 4). */
#define WINO_AT(o, m)                                      \
  do {                                                     \
    o[0] = m[0] + m[1] + m[2] + m[3] + m[4];               \
    o[1] = m[1] - m[2] + 2.f * (m[3] - m[4]);              \
    o[2] = m[1] + m[2] + 4.f * (m[3] + m[4]);              \
    o[3] = m[1] - m[2] + 8.f * (m[3] - m[4]) + m[5];       \
  } while (0)

void mi_wino_in_generic(const float *plane, int64_t H, int64_t W, int64_t dy, int64_t dx, const mi_wino_in_lanes *L,
                        float *dst, int64_t xs) {
  for (int l = 0; l < MI_WINO_LANES; l++) {
    float t[6][6], d[6], r[6];
    for (int i = 0; i < 6; i++) {
      const int64_t y = (int64_t)L->y0[l] + i * dy;
      for (int j = 0; j < 6; j++) {
        const int64_t x = (int64_t)L->x0[l] + j * dx;
        d[j] = l < L->n && y >= 0 && y < H && x >= 0 && x < W ? plane[(int64_t)L->off[l] + i * dy * W + j * dx] : 0.f;
      }
      WINO_BT(r, d);
      for (int k = 0; k < 6; k++) t[k][i] = r[k]; /* transposed: columns next */
    }
    for (int k2 = 0; k2 < 6; k2++) {
      WINO_BT(r, t[k2]);
      for (int k1 = 0; k1 < 6; k1++) dst[(k1 * 6 + k2) * xs + l] = r[k1];
    }
  }
}

void mi_wino_out_generic(const float *m, int64_t ms, const mi_wino_out_lanes *L, int64_t Wo, int64_t dy, int64_t dx,
                         const mi_wino_epi *e, float *plane) {
  float v[16][MI_WINO_LANES];
  if (L->n < MI_WINO_LANES) memset(v, 0, sizeof v); /* fn reads every lane */
  for (int l = 0; l < L->n; l++) {
    float s[4][6], c[6], o[4];
    for (int k1 = 0; k1 < 6; k1++) {
      for (int k2 = 0; k2 < 6; k2++) c[k2] = m[(k1 * 6 + k2) * ms + l];
      WINO_AT(o, c);
      for (int j = 0; j < 4; j++) s[j][k1] = o[j];
    }
    for (int j = 0; j < 4; j++) {
      WINO_AT(o, s[j]);
      for (int i = 0; i < 4; i++) {
        float y = o[i] + e->bias;
        if (e->res && i < L->rows[l] && j < L->cols[l]) y += e->res[(int64_t)L->off[l] + i * dy * Wo + j * dx];
        if (e->relu && y < 0.f) y = 0.f;
        v[i * 4 + j][l] = y;
      }
    }
  }
  if (e->fn) e->fn(e->ctx, &v[0][0], 16 * MI_WINO_LANES);
  for (int l = 0; l < L->n; l++)
    for (int i = 0; i < L->rows[l]; i++)
      for (int j = 0; j < L->cols[l]; j++) plane[(int64_t)L->off[l] + i * dy * Wo + j * dx] = v[i * 4 + j][l];
}

void mi_wino_filter(const float *g, float *u) {
  static const double G[6][3] = {{1. / 4, 0, 0},           {-1. / 6, -1. / 6, -1. / 6}, {-1. / 6, 1. / 6, -1. / 6},
                                 {1. / 24, 1. / 12, 1. / 6}, {1. / 24, -1. / 12, 1. / 6}, {0, 0, 1}};
  double t[6][3];
  for (int i = 0; i < 6; i++)
    for (int j = 0; j < 3; j++) t[i][j] = G[i][0] * g[j] + G[i][1] * g[3 + j] + G[i][2] * g[6 + j];
  for (int i = 0; i < 6; i++)
    for (int k = 0; k < 6; k++) u[i * 6 + k] = (float)(t[i][0] * G[k][0] + t[i][1] * G[k][1] + t[i][2] * G[k][2]);
}

/* ---- F(2x2, 3x3) ---------------------------------------------------------- */

/* B^T d (4 points). */
#define WINO2_BT(r, d)      \
  do {                      \
    r[0] = d[0] - d[2];     \
    r[1] = d[1] + d[2];     \
    r[2] = d[2] - d[1];     \
    r[3] = d[1] - d[3];     \
  } while (0)

/* A^T m (4 points to 2). */
#define WINO2_AT(o, m)             \
  do {                             \
    o[0] = m[0] + m[1] + m[2];     \
    o[1] = m[1] - m[2] - m[3];     \
  } while (0)

void mi_wino2_in_generic(const float *plane, int64_t H, int64_t W, int64_t dy, int64_t dx, const mi_wino_in_lanes *L,
                         float *dst, int64_t xs) {
  for (int l = 0; l < MI_WINO_LANES; l++) {
    float t[4][4], d[4], r[4];
    for (int i = 0; i < 4; i++) {
      const int64_t y = (int64_t)L->y0[l] + i * dy;
      for (int j = 0; j < 4; j++) {
        const int64_t x = (int64_t)L->x0[l] + j * dx;
        d[j] = l < L->n && y >= 0 && y < H && x >= 0 && x < W ? plane[(int64_t)L->off[l] + i * dy * W + j * dx] : 0.f;
      }
      WINO2_BT(r, d);
      for (int k = 0; k < 4; k++) t[k][i] = r[k];
    }
    for (int k2 = 0; k2 < 4; k2++) {
      WINO2_BT(r, t[k2]);
      for (int k1 = 0; k1 < 4; k1++) dst[(k1 * 4 + k2) * xs + l] = r[k1];
    }
  }
}

void mi_wino2_out_generic(const float *m, int64_t ms, const mi_wino_out_lanes *L, int64_t Wo, int64_t dy, int64_t dx,
                          const mi_wino_epi *e, float *plane) {
  float v[4][MI_WINO_LANES];
  if (L->n < MI_WINO_LANES) memset(v, 0, sizeof v); /* fn reads every lane */
  for (int l = 0; l < L->n; l++) {
    float s[2][4], c[4], o[2];
    for (int k1 = 0; k1 < 4; k1++) {
      for (int k2 = 0; k2 < 4; k2++) c[k2] = m[(k1 * 4 + k2) * ms + l];
      WINO2_AT(o, c);
      for (int j = 0; j < 2; j++) s[j][k1] = o[j];
    }
    for (int j = 0; j < 2; j++) {
      WINO2_AT(o, s[j]);
      for (int i = 0; i < 2; i++) {
        float y = o[i] + e->bias;
        if (e->res && i < L->rows[l] && j < L->cols[l]) y += e->res[(int64_t)L->off[l] + i * dy * Wo + j * dx];
        if (e->relu && y < 0.f) y = 0.f;
        v[i * 2 + j][l] = y;
      }
    }
  }
  if (e->fn) e->fn(e->ctx, &v[0][0], 4 * MI_WINO_LANES);
  for (int l = 0; l < L->n; l++)
    for (int i = 0; i < L->rows[l]; i++)
      for (int j = 0; j < L->cols[l]; j++) plane[(int64_t)L->off[l] + i * dy * Wo + j * dx] = v[i * 2 + j][l];
}

void mi_wino2_filter(const float *g, float *u) {
  static const double G[4][3] = {{1, 0, 0}, {.5, .5, .5}, {.5, -.5, .5}, {0, 0, 1}};
  double t[4][3];
  for (int i = 0; i < 4; i++)
    for (int j = 0; j < 3; j++) t[i][j] = G[i][0] * g[j] + G[i][1] * g[3 + j] + G[i][2] * g[6 + j];
  for (int i = 0; i < 4; i++)
    for (int k = 0; k < 4; k++) u[i * 4 + k] = (float)(t[i][0] * G[k][0] + t[i][1] * G[k][1] + t[i][2] * G[k][2]);
}
