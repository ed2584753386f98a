/* Winograd F(4x4, 3x3) and F(2x2, 3x3) transforms in portable C (see wino.h). */
#include "wino.h"

#include <string.h>

/* B^T d and A^T m of F(4x4, 3x3) (6 points, 4 outputs) and F(2x2, 3x3) (4 points, 2 outputs). */
typedef void (*tf_fn)(float *r, const float *d);

static void bt6(float *r, const float *d) {
  r[0] = 4.f * d[0] - 5.f * d[2] + d[4];
  r[1] = -4.f * d[1] - 4.f * d[2] + d[3] + d[4];
  r[2] = 4.f * d[1] - 4.f * d[2] - d[3] + d[4];
  r[3] = -2.f * d[1] - d[2] + 2.f * d[3] + d[4];
  r[4] = 2.f * d[1] - d[2] - 2.f * d[3] + d[4];
  r[5] = 4.f * d[1] - 5.f * d[3] + d[5];
}

static void at6(float *o, const float *m) {
  o[0] = m[0] + m[1] + m[2] + m[3] + m[4];
  o[1] = m[1] - m[2] + 2.f * (m[3] - m[4]);
  o[2] = m[1] + m[2] + 4.f * (m[3] + m[4]);
  o[3] = m[1] - m[2] + 8.f * (m[3] - m[4]) + m[5];
}

static void bt4(float *r, const float *d) {
  r[0] = d[0] - d[2];
  r[1] = d[1] + d[2];
  r[2] = d[2] - d[1];
  r[3] = d[1] - d[3];
}

static void at4(float *o, const float *m) {
  o[0] = m[0] + m[1] + m[2];
  o[1] = m[1] - m[2] - m[3];
}

/* The input transform of P x P patches (P = 6 or 4). */
static inline __attribute__((always_inline)) void in_lanes(const int P, tf_fn bt, const float *plane, int64_t H,
                                                          int64_t W, int64_t dy, int64_t dx,
                                                          const mi_wino_in_lanes *L, float *dst, int64_t xs) {
  for (int l = 0; l < MI_WINO_LANES; l++) {
    float t[6][6], d[6], r[6];
    for (int i = 0; i < P; i++) {
      const int64_t y = (int64_t)L->y0[l] + i * dy;
      for (int j = 0; j < P; j++) {
        const int64_t x = (int64_t)L->x0[l] + j * dx;
        d[j] = l < L->n && y >= 0 && y < H && x >= 0 && x < W ? plane[(int64_t)L->off[l] + i * dy * W + j * dx] : 0.f;
      }
      bt(r, d);
      for (int k = 0; k < P; k++) t[k][i] = r[k]; /* transposed: columns next */
    }
    for (int k2 = 0; k2 < P; k2++) {
      bt(r, t[k2]);
      for (int k1 = 0; k1 < P; k1++) dst[(k1 * P + k2) * xs + l] = r[k1];
    }
  }
}

/* The output transform to T x T blocks (T = P - 2) and the epilogue. */
static inline __attribute__((always_inline)) void out_lanes(const int P, tf_fn at, const float *m, int64_t ms,
                                                           const mi_wino_out_lanes *L, int64_t Wo, int64_t dy,
                                                           int64_t dx, const mi_wino_epi *e, float *plane) {
  const int T = P - 2;
  float v[16][MI_WINO_LANES];
  if (L->n < MI_WINO_LANES) memset(v, 0, sizeof v); /* fn reads every lane */
  for (int l = 0; l < L->n; l++) {
    float s[4][6], c[6], o[4];
    for (int k1 = 0; k1 < P; k1++) {
      for (int k2 = 0; k2 < P; k2++) c[k2] = m[(k1 * P + k2) * ms + l];
      at(o, c);
      for (int j = 0; j < T; j++) s[j][k1] = o[j];
    }
    for (int j = 0; j < T; j++) {
      at(o, s[j]);
      for (int i = 0; i < T; i++) {
        float y = o[i] + e->bias;
        if (e->res && i < L->rows[l] && j < L->cols[l]) y += e->res[(int64_t)L->off[l] + i * dy * Wo + j * dx];
        if (e->relu && y < 0.f) y = 0.f;
        v[i * T + j][l] = y;
      }
    }
  }
  if (e->fn) e->fn(e->ctx, &v[0][0], T * T * MI_WINO_LANES);
  for (int l = 0; l < L->n; l++)
    for (int i = 0; i < L->rows[l]; i++)
      for (int j = 0; j < L->cols[l]; j++) plane[(int64_t)L->off[l] + i * dy * Wo + j * dx] = v[i * T + j][l];
}

void mi_wino_in_generic(const float *plane, int64_t H, int64_t W, int64_t dy, int64_t dx, const mi_wino_in_lanes *L,
                        float *dst, int64_t xs) {
  in_lanes(6, bt6, plane, H, W, dy, dx, L, dst, xs);
}

void mi_wino_out_generic(const float *m, int64_t ms, const mi_wino_out_lanes *L, int64_t Wo, int64_t dy, int64_t dx,
                         const mi_wino_epi *e, float *plane) {
  out_lanes(6, at6, m, ms, L, Wo, dy, dx, e, plane);
}

void mi_wino2_in_generic(const float *plane, int64_t H, int64_t W, int64_t dy, int64_t dx, const mi_wino_in_lanes *L,
                         float *dst, int64_t xs) {
  in_lanes(4, bt4, plane, H, W, dy, dx, L, dst, xs);
}

void mi_wino2_out_generic(const float *m, int64_t ms, const mi_wino_out_lanes *L, int64_t Wo, int64_t dy, int64_t dx,
                          const mi_wino_epi *e, float *plane) {
  out_lanes(4, at4, m, ms, L, Wo, dy, dx, e, plane);
}

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
