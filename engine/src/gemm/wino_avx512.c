/* Winograd F(4x4, 3x3), F(3x3, 3x3) and F(2x2, 3x3) transforms, AVX-512F: 16 tiles per
 * vector, read with masked gathers (taps outside the plane are zero) and
 * written with masked scatters (see wino.h); F(4x4) reads and writes runs
 * of tiles along a row as whole vectors.  Compiled with -mavx512f -mfma;
 * only called when CPUID reports AVX-512F. */
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

/* F(2x2, 3x3): 4 points, 2 outputs. */
static inline __attribute__((always_inline)) void bt2(__m512 r[4], const __m512 d[4]) {
  r[0] = _mm512_sub_ps(d[0], d[2]);
  r[1] = _mm512_add_ps(d[1], d[2]);
  r[2] = _mm512_sub_ps(d[2], d[1]);
  r[3] = _mm512_sub_ps(d[1], d[3]);
}

static inline __attribute__((always_inline)) void at2(__m512 o[2], const __m512 m[4]) {
  o[0] = _mm512_add_ps(_mm512_add_ps(m[0], m[1]), m[2]);
  o[1] = _mm512_sub_ps(_mm512_sub_ps(m[1], m[2]), m[3]);
}

/* F(3x3, 3x3): 5 points, 3 outputs. */
static inline __attribute__((always_inline)) void bt3(__m512 r[5], const __m512 d[5]) {
  const __m512 d3_d1 = _mm512_sub_ps(d[3], d[1]);
  r[0] = _mm512_fmadd_ps(F(2.f), _mm512_sub_ps(d[0], d[2]), d3_d1);
  r[1] = _mm512_fmadd_ps(F(-2.f), d[1], _mm512_sub_ps(d[3], d[2]));
  r[2] = _mm512_fmadd_ps(F(2.f), d[1], _mm512_fmadd_ps(F(-3.f), d[2], d[3]));
  r[3] = d3_d1;
  r[4] = _mm512_fmadd_ps(F(-2.f), d3_d1, _mm512_sub_ps(d[4], d[2]));
}

static inline __attribute__((always_inline)) void at3(__m512 o[3], const __m512 m[5]) {
  const __m512 p12 = _mm512_add_ps(m[1], m[2]);
  o[0] = _mm512_add_ps(_mm512_add_ps(m[0], p12), m[3]);
  o[1] = _mm512_fmadd_ps(F(2.f), m[3], _mm512_sub_ps(m[1], m[2]));
  o[2] = _mm512_add_ps(_mm512_fmadd_ps(F(4.f), m[3], p12), m[4]);
}

/* P points: 6 (F(4x4)), 5 (F(3x3)) or 4 (F(2x2)); a constant where these are inlined. */
static inline __attribute__((always_inline)) void btp(const int P, __m512 *r, const __m512 *d) {
  if (P == 6) bt(r, d);
  else if (P == 5) bt3(r, d);
  else bt2(r, d);
}

static inline __attribute__((always_inline)) void atp(const int P, __m512 *o, const __m512 *m) {
  if (P == 6) at(o, m);
  else if (P == 5) at3(o, m);
  else at2(o, m);
}

static inline __mmask16 lane_mask(int n) { return n >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << n) - 1); }

static inline __m512i iota(void) { return _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0); }

/* Lanes in runs of tiles side by side along one row (lane l of a run that
 * starts at lane s is 4(l - s) columns after it), at most MAX_RUNS runs (a
 * group that wraps to the next rows: 16 tiles of a 24x24 map's rows of 6
 * fall in up to 4), unit taps: rows then are read as whole vectors (masked
 * at the plane's edges), no gathers (which had taken 13 % of the FCN head's
 * time with groups of three runs). */
#define MAX_RUNS 4
/* Lanes [0, n) in at most MAX_RUNS runs, lane l joining lane l - 1's run
 * when bit l of cont is set; start[r], end[r]: run r's lanes.  0 when more. */
static int split_runs(int n, uint32_t cont, int start[MAX_RUNS], int end[MAX_RUNS]) {
  int nr = 0;
  for (int l = 0; l < n; l++) {
    if (l > 0 && (cont >> l & 1u)) continue;
    if (nr == MAX_RUNS) return 0;
    start[nr] = l;
    if (nr) end[nr - 1] = l;
    nr++;
  }
  if (nr) end[nr - 1] = n;
  return nr;
}

static int in_runs(const mi_wino_in_lanes *L, int64_t dy, int64_t dx, int start[MAX_RUNS], int end[MAX_RUNS]) {
  if (dy != 1 || dx != 1 || L->n < 1) return 0;
  uint32_t cont = 0;
  for (int l = 1; l < L->n; l++) cont |= (uint32_t)(L->y0[l] == L->y0[l - 1] && L->x0[l] == L->x0[l - 1] + 4) << l;
  return split_runs(L->n, cont, start, end);
}

/* Columns xb + 16k + i, i < 16, inside [0, W) (k < 5; the fifth: i < 2). */
static void col_masks(int64_t xb, int64_t W, __mmask16 m[5]) {
  const __m512i c = _mm512_add_epi32(_mm512_set1_epi32((int)xb), iota()), w = _mm512_set1_epi32((int)W);
  for (int k = 0; k < 5; k++) {
    const __m512i ck = _mm512_add_epi32(c, _mm512_set1_epi32(16 * k));
    m[k] = _mm512_mask_cmplt_epi32_mask(_mm512_cmpge_epi32_mask(ck, _mm512_setzero_si512()), ck, w);
  }
  m[4] &= 0x3;
}

/* A row's taps for the run: d[j] lane l = p[4l + j], j < 6, columns outside
 * the masks read as zero. */
static inline __attribute__((always_inline)) void row_taps(const float *p, const __mmask16 m[5], __m512 d[6]) {
  const __m512 v0 = _mm512_maskz_loadu_ps(m[0], p), v1 = _mm512_maskz_loadu_ps(m[1], p + 16),
               v2 = _mm512_maskz_loadu_ps(m[2], p + 32), v3 = _mm512_maskz_loadu_ps(m[3], p + 48),
               v4 = _mm512_maskz_loadu_ps(m[4], p + 64);
  const __m512i i4 = _mm512_slli_epi32(iota(), 2), m31 = _mm512_set1_epi32(31);
#pragma GCC unroll 4
  for (int j = 0; j < 4; j++) { /* lanes 0-7 from v0:v1, 8-15 from v2:v3 (index 4l + j mod 32) */
    const __m512i idx = _mm512_and_si512(_mm512_add_epi32(i4, _mm512_set1_epi32(j)), m31);
    d[j] = _mm512_mask_blend_ps(0xff00, _mm512_permutex2var_ps(v0, idx, v1), _mm512_permutex2var_ps(v2, idx, v3));
  }
  /* columns 4l + 4 and 4l + 5: the next lane's 0 and 1, the last from v4 */
  const __m512i w4 = _mm512_castps_si512(v4);
  d[4] = _mm512_castsi512_ps(_mm512_alignr_epi32(w4, _mm512_castps_si512(d[0]), 1));
  d[5] = _mm512_castsi512_ps(_mm512_alignr_epi32(_mm512_alignr_epi32(w4, w4, 1), _mm512_castps_si512(d[1]), 1));
}

/* The P rows of every lane's patch by masked gathers (taps outside the
 * plane zero), each row's B^T transform into t, transposed. */
static inline __attribute__((always_inline)) void gather_rows(const int P, const float *plane, int64_t H, int64_t W,
                                                             int64_t dy, int64_t dx, const mi_wino_in_lanes *L,
                                                             __m512 t[6][6]) {
  const __m512i off = _mm512_loadu_si512(L->off), y0 = _mm512_loadu_si512(L->y0), x0 = _mm512_loadu_si512(L->x0);
  const __m512i vh = _mm512_set1_epi32((int)H), vw = _mm512_set1_epi32((int)W);
  const __mmask16 lm = lane_mask(L->n);
  __mmask16 cm[6];
  for (int j = 0; j < P; j++) {
    const __m512i x = _mm512_add_epi32(x0, _mm512_set1_epi32((int)(j * dx)));
    cm[j] = _mm512_mask_cmplt_epi32_mask(_mm512_mask_cmpge_epi32_mask(lm, x, _mm512_setzero_si512()), x, vw);
  }
#pragma GCC unroll 6
  for (int i = 0; i < P; i++) {
    const __m512i y = _mm512_add_epi32(y0, _mm512_set1_epi32((int)(i * dy)));
    const __mmask16 rm = _mm512_mask_cmplt_epi32_mask(_mm512_cmpge_epi32_mask(y, _mm512_setzero_si512()), y, vh);
    const __m512i row = _mm512_add_epi32(off, _mm512_set1_epi32((int)(i * dy * W)));
    __m512 d[6], r[6];
#pragma GCC unroll 6
    for (int j = 0; j < P; j++)
      d[j] = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), rm & cm[j], _mm512_add_epi32(row, _mm512_set1_epi32((int)(j * dx))),
                                      plane, 4);
    btp(P, r, d);
#pragma GCC unroll 6
    for (int k = 0; k < P; k++) t[k][i] = r[k];
  }
}

/* The columns' B^T transform of t, element xi = P * k1 + k2 to dst + xi * xs. */
static inline __attribute__((always_inline)) void store_cols(const int P, __m512 t[6][6], float *dst, int64_t xs) {
#pragma GCC unroll 6
  for (int k2 = 0; k2 < P; k2++) {
    __m512 r[6];
    btp(P, r, t[k2]);
#pragma GCC unroll 6
    for (int k1 = 0; k1 < P; k1++) _mm512_storeu_ps(dst + (k1 * P + k2) * xs, r[k1]);
  }
}

/* F(4x4): lanes in runs of unit taps read as whole rows, else gathered. */
static void in4(const float *plane, int64_t H, int64_t W, int64_t dy, int64_t dx, const mi_wino_in_lanes *L, float *dst,
                int64_t xs) {
  __m512 t[6][6];
  int rs[MAX_RUNS], re[MAX_RUNS];
  const int nruns = in_runs(L, dy, dx, rs, re);
  if (nruns) {
    __mmask16 cmk[MAX_RUNS][5], lanes[MAX_RUNS];
    const float *base[MAX_RUNS]; /* row 0 of each run's patches, at its virtual lane 0 */
    for (int q = 0; q < nruns; q++) {
      const int64_t xb = L->x0[rs[q]] - 4 * rs[q];
      col_masks(xb, W, cmk[q]);
      lanes[q] = (__mmask16)(lane_mask(re[q]) & ~lane_mask(rs[q]));
      base[q] = plane + (L->off[rs[q]] - L->x0[rs[q]]) + xb;
    }
#pragma GCC unroll 6
    for (int i = 0; i < 6; i++) {
      __m512 d[6], r[6];
#pragma GCC unroll 6
      for (int j = 0; j < 6; j++) d[j] = _mm512_setzero_ps();
      for (int q = 0; q < nruns; q++) {
        const int64_t y = L->y0[rs[q]] + i;
        if (y < 0 || y >= H) continue; /* padding row: zeros */
        __m512 e[6];
        row_taps(base[q] + i * W, cmk[q], e);
#pragma GCC unroll 6
        for (int j = 0; j < 6; j++) d[j] = _mm512_mask_blend_ps(lanes[q], d[j], e[j]);
      }
      bt(r, d);
#pragma GCC unroll 6
      for (int k = 0; k < 6; k++) t[k][i] = r[k];
    }
  } else {
    gather_rows(6, plane, H, W, dy, dx, L, t);
  }
  store_cols(6, t, dst, xs);
}

/* F(3x3) and F(2x2) take small maps and the sub-grids of dilated layers:
 * gathered, not read as runs of whole rows. */
void mi_wino_in_avx512(int tile, const float *plane, int64_t H, int64_t W, int64_t dy, int64_t dx,
                       const mi_wino_in_lanes *L, float *dst, int64_t xs) {
  __m512 t[6][6];
  if (tile == 4) {
    in4(plane, H, W, dy, dx, L, dst, xs);
  } else if (tile == 3) {
    gather_rows(5, plane, H, W, dy, dx, L, t);
    store_cols(5, t, dst, xs);
  } else {
    gather_rows(4, plane, H, W, dy, dx, L, t);
    store_cols(4, t, dst, xs);
  }
}

/* Output lanes in at most MAX_RUNS runs of tiles side by side along a row (as
 * in_runs), unit steps: rows are stored as whole vectors, masked to the
 * lanes' tiles and their columns inside the plane. */
static int out_runs(const mi_wino_out_lanes *L, int64_t dy, int64_t dx, int start[MAX_RUNS], int end[MAX_RUNS]) {
  if (dy != 1 || dx != 1 || L->n < 1) return 0;
  uint32_t cont = 0;
  for (int l = 1; l < L->n; l++) cont |= (uint32_t)(L->off[l] == L->off[l - 1] + 4 && L->rows[l] == L->rows[l - 1]) << l;
  return split_runs(L->n, cont, start, end);
}

/* One output row of 16 tiles: c[j] lane l is column 4l + j; o[k] holds
 * columns 16k .. 16k + 15 (tiles 4k .. 4k + 3). */
static inline __attribute__((always_inline)) void row_out(const __m512 c[4], __m512 o[4]) {
  const __m512 lo01 = _mm512_unpacklo_ps(c[0], c[1]), hi01 = _mm512_unpackhi_ps(c[0], c[1]);
  const __m512 lo23 = _mm512_unpacklo_ps(c[2], c[3]), hi23 = _mm512_unpackhi_ps(c[2], c[3]);
  /* in 128-bit block b: tile 4b (a), 4b + 1 (b), 4b + 2 (cc), 4b + 3 (d) */
  const __m512 a = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(lo01), _mm512_castps_pd(lo23)));
  const __m512 b = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(lo01), _mm512_castps_pd(lo23)));
  const __m512 cc = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(hi01), _mm512_castps_pd(hi23)));
  const __m512 d = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(hi01), _mm512_castps_pd(hi23)));
  /* a 4x4 transpose of 128-bit blocks */
  const __m512 t0 = _mm512_shuffle_f32x4(a, b, 0x44), t1 = _mm512_shuffle_f32x4(cc, d, 0x44);
  const __m512 t2 = _mm512_shuffle_f32x4(a, b, 0xee), t3 = _mm512_shuffle_f32x4(cc, d, 0xee);
  o[0] = _mm512_shuffle_f32x4(t0, t1, 0x88);
  o[1] = _mm512_shuffle_f32x4(t0, t1, 0xdd);
  o[2] = _mm512_shuffle_f32x4(t2, t3, 0x88);
  o[3] = _mm512_shuffle_f32x4(t2, t3, 0xdd);
}

/* A^T M A of each lane's P x P sums, plus the bias: v[row][column] of its
 * T x T block (T = P - 2). */
static inline __attribute__((always_inline)) void blocks(const int P, const float *m, int64_t ms, __mmask16 lm,
                                                        float bias, __m512 v[4][4]) {
  const int T = P - 2;
  __m512 s[4][6];
#pragma GCC unroll 6
  for (int k1 = 0; k1 < P; k1++) {
    __m512 c[6], o[4];
#pragma GCC unroll 6
    for (int k2 = 0; k2 < P; k2++) c[k2] = _mm512_maskz_loadu_ps(lm, m + (k1 * P + k2) * ms); /* lanes >= n: unwritten */
    atp(P, o, c);
#pragma GCC unroll 4
    for (int j = 0; j < T; j++) s[j][k1] = o[j];
  }
  const __m512 vb = _mm512_set1_ps(bias);
#pragma GCC unroll 4
  for (int j = 0; j < T; j++) {
    __m512 o[4];
    atp(P, o, s[j]);
#pragma GCC unroll 4
    for (int i = 0; i < T; i++) v[i][j] = _mm512_add_ps(o[i], vb);
  }
}

/* The activation (ReLU or fn) on T x T blocks. */
static inline __attribute__((always_inline)) void block_act(const int T, __m512 v[4][4], const mi_wino_epi *e) {
  if (e->relu)
    for (int i = 0; i < T; i++)
      for (int j = 0; j < T; j++) v[i][j] = _mm512_max_ps(v[i][j], _mm512_setzero_ps());
  if (e->fn) {
    float buf[16][16] __attribute__((aligned(64)));
    for (int i = 0; i < T; i++)
      for (int j = 0; j < T; j++) _mm512_store_ps(buf[i * T + j], v[i][j]);
    e->fn(e->ctx, &buf[0][0], T * T * 16);
    for (int i = 0; i < T; i++)
      for (int j = 0; j < T; j++) v[i][j] = _mm512_load_ps(buf[i * T + j]);
  }
}

/* The epilogue on T x T blocks, each scattered to its rows[l] x cols[l]
 * positions inside the output. */
static inline __attribute__((always_inline)) void scatter_blocks(const int T, __m512 v[4][4], const mi_wino_out_lanes *L,
                                                                int64_t Wo, int64_t dy, int64_t dx,
                                                                const mi_wino_epi *e, float *plane) {
  const __m512i off = _mm512_loadu_si512(L->off), rows = _mm512_loadu_si512(L->rows),
                cols = _mm512_loadu_si512(L->cols);
  const __mmask16 lm = lane_mask(L->n);
  __mmask16 km[4][4];
  __m512i idx[4][4];
  for (int i = 0; i < T; i++) {
    const __mmask16 rm = _mm512_mask_cmpgt_epi32_mask(lm, rows, _mm512_set1_epi32(i));
    for (int j = 0; j < T; j++) {
      km[i][j] = _mm512_mask_cmpgt_epi32_mask(rm, cols, _mm512_set1_epi32(j));
      idx[i][j] = _mm512_add_epi32(off, _mm512_set1_epi32((int)(i * dy * Wo + j * dx)));
    }
  }
  if (e->res)
    for (int i = 0; i < T; i++)
      for (int j = 0; j < T; j++)
        v[i][j] = _mm512_add_ps(v[i][j], _mm512_mask_i32gather_ps(_mm512_setzero_ps(), km[i][j], idx[i][j], e->res, 4));
  block_act(T, v, e);
  for (int i = 0; i < T; i++)
    for (int j = 0; j < T; j++) _mm512_mask_i32scatter_ps(plane, km[i][j], idx[i][j], v[i][j], 4);
}

static void out4(const float *m, int64_t ms, const mi_wino_out_lanes *L, int64_t Wo, int64_t dy, int64_t dx,
                 const mi_wino_epi *e, float *plane) {
  __m512 v[4][4]; /* [row][column] */
  blocks(6, m, ms, lane_mask(L->n), e->bias, v);
  int rs[MAX_RUNS], re[MAX_RUNS];
  const int nruns = out_runs(L, dy, dx, rs, re);
  if (nruns) { /* each row of a run: 64 columns at its virtual lane 0, 4 vectors */
    __m512 o[4][4]; /* [row][vector] */
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++) row_out(v[i], o[i]);
    for (int q = 0; q < nruns; q++) {
      uint64_t cm = 0; /* column 4l + j of the run's 64: lane l in the run, j < its columns */
      for (int l = rs[q]; l < re[q]; l++) cm |= ((1ull << L->cols[l]) - 1) << (4 * l);
      const int64_t ob = L->off[rs[q]] - 4 * rs[q];
      for (int i = 0; i < L->rows[rs[q]]; i++)
#pragma GCC unroll 4
        for (int k = 0; k < 4; k++) {
          const __mmask16 m = (__mmask16)(cm >> (16 * k));
          if (!m) continue;
          const int64_t at = ob + i * dy * Wo + 16 * k;
          __m512 r = o[i][k];
          if (e->res) r = _mm512_add_ps(r, _mm512_maskz_loadu_ps(m, e->res + at));
          if (e->relu) r = _mm512_max_ps(r, _mm512_setzero_ps());
          if (e->fn) { /* elementwise, after the residual */
            float buf[16] __attribute__((aligned(64)));
            _mm512_store_ps(buf, r);
            e->fn(e->ctx, buf, 16);
            r = _mm512_load_ps(buf);
          }
          _mm512_mask_storeu_ps(plane + at, m, r);
        }
    }
    return;
  }
  scatter_blocks(4, v, L, Wo, dy, dx, e, plane);
}

/* pool2 (wino.h): the activation on T x T blocks (T 4 or 2), each 2 x 2 to
 * its maximum (max_ps keeps the running maximum where either is NaN, as the
 * MaxPool kernel compares), the pooled blocks stored: runs of tiles side by
 * side as rows of whole vectors (F(4x4): two tiles' two columns each
 * interleaved), else scattered. */
static inline __attribute__((always_inline)) void pool_blocks(const int T, __m512 v[4][4], const mi_wino_out_lanes *L,
                                                             int64_t Wo, const mi_wino_epi *e, float *plane) {
  block_act(T, v, e);
  const int H = T / 2;
  __m512 p[2][2];
  for (int a = 0; a < H; a++)
    for (int b = 0; b < H; b++) {
      __m512 best = v[2 * a][2 * b];
      best = _mm512_max_ps(v[2 * a][2 * b + 1], best);
      best = _mm512_max_ps(v[2 * a + 1][2 * b], best);
      p[a][b] = _mm512_max_ps(v[2 * a + 1][2 * b + 1], best);
    }
  uint32_t cont = 0; /* lane l continues lane l - 1's run of pooled blocks */
  for (int l = 1; l < L->n; l++) cont |= (uint32_t)(L->off[l] == L->off[l - 1] + H && L->rows[l] == L->rows[l - 1]) << l;
  int rs[MAX_RUNS], re[MAX_RUNS];
  const int nruns = L->n > 0 ? split_runs(L->n, cont, rs, re) : 0;
  if (nruns) {
    /* F(4x4): row a's columns 2l + b; vector k holds tiles 8k .. 8k + 7 */
    const __m512i i0 = _mm512_set_epi32(23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    const __m512i i1 = _mm512_set_epi32(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8);
    __m512 o[2][2] = {{_mm512_setzero_ps(), _mm512_setzero_ps()}, {_mm512_setzero_ps(), _mm512_setzero_ps()}};
    for (int a = 0; a < H; a++) {
      if (H == 1) {
        o[a][0] = p[a][0];
      } else {
        o[a][0] = _mm512_permutex2var_ps(p[a][0], i0, p[a][1]);
        o[a][1] = _mm512_permutex2var_ps(p[a][0], i1, p[a][1]);
      }
    }
    for (int q = 0; q < nruns; q++) {
      uint32_t cm = 0; /* column H l + b of the run's 16 H: lane l in the run, b < its columns */
      for (int l = rs[q]; l < re[q]; l++) cm |= ((1u << L->cols[l]) - 1u) << (H * l);
      const int64_t ob = L->off[rs[q]] - H * rs[q];
      for (int a = 0; a < L->rows[rs[q]]; a++)
        for (int k = 0; k < H; k++) {
          const __mmask16 m = (__mmask16)(cm >> (16 * k));
          if (m) _mm512_mask_storeu_ps(plane + ob + a * Wo + 16 * k, m, o[a][k]);
        }
    }
    return;
  }
  const __m512i off = _mm512_loadu_si512(L->off), rows = _mm512_loadu_si512(L->rows),
                cols = _mm512_loadu_si512(L->cols);
  for (int a = 0; a < H; a++) {
    const __mmask16 rm = _mm512_mask_cmpgt_epi32_mask(lane_mask(L->n), rows, _mm512_set1_epi32(a));
    for (int b = 0; b < H; b++)
      _mm512_mask_i32scatter_ps(plane, _mm512_mask_cmpgt_epi32_mask(rm, cols, _mm512_set1_epi32(b)),
                                _mm512_add_epi32(off, _mm512_set1_epi32((int)(a * Wo + b))), p[a][b], 4);
  }
}

void mi_wino_out_avx512(int tile, const float *m, int64_t ms, const mi_wino_out_lanes *L, int64_t Wo, int64_t dy,
                        int64_t dx, const mi_wino_epi *e, float *plane) {
  __m512 v[4][4];
  if (e->pool2 && tile == 4) {
    blocks(6, m, ms, lane_mask(L->n), e->bias, v);
    pool_blocks(4, v, L, Wo, e, plane);
  } else if (e->pool2) {
    blocks(4, m, ms, lane_mask(L->n), e->bias, v);
    pool_blocks(2, v, L, Wo, e, plane);
  } else if (tile == 4) {
    out4(m, ms, L, Wo, dy, dx, e, plane);
  } else if (tile == 3) {
    blocks(5, m, ms, lane_mask(L->n), e->bias, v);
    scatter_blocks(3, v, L, Wo, dy, dx, e, plane);
  } else {
    blocks(4, m, ms, lane_mask(L->n), e->bias, v);
    scatter_blocks(2, v, L, Wo, dy, dx, e, plane);
  }
}
#endif
