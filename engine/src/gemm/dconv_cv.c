/* Direct convolution with output channels in the vectors (AVX-512F; see
 * dconv.h): each k-step loads 16-64 output channels' weights and broadcasts
 * one input value per position.  Suits small maps (the 14x14 and 7x7 layers
 * of a CNN): a tile's positions are any output positions (rows need not be
 * whole or padded grids kept), the weights stream through each block in
 * order, and the few positions of a map fill whole tiles.  Compiled with
 * -mavx512f -mfma; only called when CPUID reports AVX-512F.
 * dconv_cv_avx2.c compiles the driver again with CV_AVX2 defined: there a
 * tile is 16 channels (two 256-bit vectors) x up to 6 positions, and a
 * block of vb channels is vb / 16 such tiles on the same positions.
 * dconv_cv_bf16.c compiles the AVX-512 build again with CV_BF16: the
 * steps are channel pairs (vdpbf16ps). */
#include "dconv.h"
#include "medinfer/hugepages.h"

#ifdef MI_GEMM_X86
#include <immintrin.h>
#include <stdlib.h>
#include <string.h>

#if !defined(CV_AVX2) && !defined(CV_BF16)
#define CV_NAME(x) x
#endif
/* The step's product: FP32 FMAs, or (dconv_cv_bf16.c) vdpbf16ps on channel
 * pairs, weights and inputs holding two bf16 values per 32-bit lane. */
#ifdef CV_BF16
#define CV_FMA(acc, w, b) _mm512_dpbf16_ps(acc, (__m512bh)(w), (__m512bh)(b))
#else
#define CV_FMA(acc, w, b) _mm512_fmadd_ps(w, b, acc)
#endif

#define PMAX 12 /* positions per tile: 6 with 64 channels (24 accumulators) */
/* K runs in chunks of a block's weights that a group of up to GROUP_TILES
 * tiles takes in turn, each tile's sums kept in a buffer between chunks.
 * Intel (Sapphire Rapids, 48 KB L1): 8192 floats (32 KB, in L1); a tile
 * streaming its block's whole K from L2 waited on it.  Whole networks, runs
 * alternating in one process (40 each; min / quartile / median ms):
 * ResNet-50 58.6 / 65.6 / 73.1 -> 58.1 / 61.5 / 66.2, DenseNet-121 49.6 /
 * 54.4 / 56.9 -> 46.2 / 51.3 / 54.9.  AMD Zen 4 (32 KB L1) reads the weights
 * from L2 at full speed and gains by fewer round trips of the sums: 32768
 * floats (128 KB); alternating in one process against 8192 (medians): a
 * 512-channel dilated 24x24 layer -6 %, PSPNet (ResNet-18) -3.9 %,
 * FCN-ResNet50 -2.2 %, ResNet-50 and DenseNet-121 even; 65536 and the whole
 * K no better. */
#define CHUNK_FLOATS_INTEL 8192
#define CHUNK_FLOATS_AMD 32768
#define GROUP_TILES 16
#define MIN_ITEMS 8 /* work items per layer, fewer only when there are fewer tiles */

#if !defined(CV_AVX2) && !defined(CV_BF16) /* once, in the AVX-512 build: the packing serves all */
bool mi_dconv_cv_pack(const float *w, int64_t M, int64_t K, int64_t taps, mi_dconv_cv_weights *out) {
  if (M <= 0 || M % 16 || K <= 0 || (taps > 1 && K % (16 * taps))) return false;
  const int vb = M % 64 == 0 ? 64 : M % 32 == 0 ? 32 : 16;
  float *d = mi_alloc_huge((size_t)(M * K) * sizeof(float));
  if (!d) return false;
  *out = (mi_dconv_cv_weights){d, M, K, vb, taps > 1 ? taps : 0};
  for (int64_t b = 0; b < M / vb; b++)
    for (int64_t i = 0; i < vb; i++) {
      const float *src = w + (b * vb + i) * K;
      float *dst = d + b * K * vb + i;
      for (int64_t k = 0; k < K; k++) dst[k * vb] = src[mi_dconv_cv_source(out, k)];
    }
  return true;
}

void mi_dconv_cv_rows(const mi_dconv_cv_weights *w, int64_t r0, int64_t n, float *dst) {
  for (int64_t i = 0; i < n; i++) {
    const int64_t m = r0 + i, b = m / w->vb;
    const float *src = w->data + b * w->K * w->vb + m % w->vb;
    for (int64_t k = 0; k < w->K; k++) dst[i * w->K + mi_dconv_cv_source(w, k)] = src[k * w->vb];
  }
}
#endif

#ifdef CV_AVX2
#define PMAX_AVX2 6 /* positions per tile: 12 accumulators of the 16 registers */
static int pmax(int vb) { return (void)vb, PMAX_AVX2; }
#else
static int pmax(int vb) { return vb == 64 ? 6 : PMAX; }
#endif
/* Output rows per plane, and positions in all. */
static int64_t grid_rows(const mi_dconv_job *j) { return (j->q_end - j->cols) / j->row + 1; }
static int64_t positions(const mi_dconv_job *j) { return j->planes * grid_rows(j) * j->cols; }

/* Row segments (tile_skip): where a layer's border columns skip taps (its
 * padding) and are at least half a tile wide, each row is dealt as three
 * segments, the left border, the middle and the right border, so that
 * border tiles skip their columns' taps too (a dilation-4 24x24 layer: 4 +
 * 16 + 4 positions, in tiles of 4, 5 / 5 / 6 and 4).  Lengths and tiles of
 * each; false where rows are dealt as one run with the rest. */
typedef struct segs {
  int64_t len[3], tiles[3], per_row;
} segs;
static bool row_segments(const mi_dconv_job *j, const mi_dconv_cv_weights *w, segs *sg) {
  if (!j->skip_cols || w->taps <= 0 || w->taps > 64) return false;
  int64_t a = 0, b = 0;
  while (a < j->cols && j->skip_cols[a]) a++;
  while (b < j->cols - a && j->skip_cols[j->cols - 1 - b]) b++;
  const int half = (pmax(w->vb) + 1) / 2;
  if ((a && a < half) || (b && b < half) || a + b == 0) return false;
  sg->len[0] = a, sg->len[1] = j->cols - a - b, sg->len[2] = b, sg->per_row = 0;
  for (int i = 0; i < 3; i++) sg->per_row += sg->tiles[i] = (sg->len[i] + pmax(w->vb) - 1) / pmax(w->vb);
  return true;
}

/* Tiles of a job: as few as hold its positions, dealt evenly (49 positions
 * are 10 + 10 + 10 + 10 + 9, not 4 x 12 + 1), or per row segment. */
static int64_t ntiles(const mi_dconv_job *j, const mi_dconv_cv_weights *w) {
  segs sg;
  if (row_segments(j, w, &sg)) return j->planes * grid_rows(j) * sg.per_row;
  return (positions(j) + pmax(w->vb) - 1) / pmax(w->vb);
}

static int64_t chunk_floats(void) { return __builtin_cpu_is("amd") ? CHUNK_FLOATS_AMD : CHUNK_FLOATS_INTEL; }
#ifdef CV_AVX2
/* AVX2: a block's 16-channel parts take each chunk in turn (run_tile).  On
 * plain source planes (taps 0: a 1x1 layer read in place, a 3D layer's
 * padded copy) each step reads a line of another channel, and the next part
 * finds the chunk's lines still in L1 only when the chunk is short: 128
 * steps (at vb 64 its weights 32 KB).  AMD Zen 3 (32 KB L1, 512 KB L2),
 * ResNet-50's 1x1 layers, per-node minimums of interleaved runs: 2048 ->
 * 512 channels at 7x7 0.98-1.00 -> 0.73-0.78 ms, 1024 -> 256 at 14x14
 * 0.73-0.76 -> 0.65-0.75 (the whole network's sum within the runs' noise);
 * 64 and 96 steps did worse, 192 gained less.  The 3D U-Net's 3x3x3 layers
 * alone (64 channels at 48^3, 128 at 24^3, 32 at 48^3), whole-layer medians
 * in one process: -3, -2 and +1 %.  Channel-blocked sources (a line holds
 * 16 channels) keep the chunk below: with 128 steps there PSPNet's dilated
 * 24x24 layers lost 2-4 %. */
#define CV_AVX2_PLAIN_STEPS 128
#endif
/* Taps per chunk, and tiles per work item (a group takes the chunks in
 * turn): groups as even as they can be (33 tiles are 11 + 11 + 11), and
 * enough of them for the threads where a layer has few channel blocks. */
static int64_t chunk_k(const mi_dconv_cv_weights *w) {
#ifdef CV_AVX2
  if (!w->taps) return CV_AVX2_PLAIN_STEPS;
#endif
  return chunk_floats() / w->vb;
}
static int64_t group_tiles(const mi_dconv_job *j, const mi_dconv_cv_weights *w) {
  const int64_t nt = ntiles(j, w), blocks = w->M / w->vb;
  int64_t groups = (nt + GROUP_TILES - 1) / GROUP_TILES;
  if (groups * blocks < MIN_ITEMS) groups = (MIN_ITEMS + blocks - 1) / blocks;
  if (groups > nt) groups = nt;
  return (nt + groups - 1) / groups;
}

int64_t CV_NAME(mi_dconv_cv_items)(const mi_dconv_job *j, const mi_dconv_cv_weights *w) {
  const int64_t gt = group_tiles(j, w);
  return w->M / w->vb * ((ntiles(j, w) + gt - 1) / gt);
}

/* In a tile's step loop (both builds): the step's share of the prefetches,
 * two lines of the weights this thread takes next (pf, npf lines left),
 * into L2. */
#define CV_PREFETCH()                                                                \
  do {                                                                               \
    if (npf > 0) {                                                                   \
      _mm_prefetch(pf, _MM_HINT_T1);                                                 \
      _mm_prefetch(pf + 64, _MM_HINT_T1);                                            \
      pf += 128;                                                                     \
      npf -= 2;                                                                      \
    }                                                                                \
  } while (0)

#ifndef CV_AVX2
/* n <= 8 positions' vectors r[0, n) of 16 channels to 16 rows: channel
 * i's n values at y + i * ldy.  An 8 x 16 transpose in registers, then a
 * masked store per channel, in place of a scatter of each value on its own
 * (16 stores per vector): whole networks 1-2 % faster (medians, runs
 * alternating in one process: ResNet-50 58.8 -> 57.5 ms, DenseNet-121
 * 50.8 -> 49.8). */
static inline __attribute__((always_inline)) void store_rows8(const __m512 *r, int n, float *y, int64_t ldy) {
  __m512 a[8];
#pragma GCC unroll 8
  for (int p = 0; p < 8; p++) a[p] = p < n ? r[p] : _mm512_setzero_ps();
  /* in each 128-bit lane L (channels 4L .. 4L + 3): t pairs positions */
  const __m512 t0 = _mm512_unpacklo_ps(a[0], a[1]), t1 = _mm512_unpackhi_ps(a[0], a[1]);
  const __m512 t2 = _mm512_unpacklo_ps(a[2], a[3]), t3 = _mm512_unpackhi_ps(a[2], a[3]);
  const __m512 t4 = _mm512_unpacklo_ps(a[4], a[5]), t5 = _mm512_unpackhi_ps(a[4], a[5]);
  const __m512 t6 = _mm512_unpacklo_ps(a[6], a[7]), t7 = _mm512_unpackhi_ps(a[6], a[7]);
  /* u[c]: channel 4L + c at positions 0-3, u[4 + c] at positions 4-7 */
  const __m512 u[8] = {_mm512_shuffle_ps(t0, t2, _MM_SHUFFLE(1, 0, 1, 0)), _mm512_shuffle_ps(t0, t2, _MM_SHUFFLE(3, 2, 3, 2)),
                       _mm512_shuffle_ps(t1, t3, _MM_SHUFFLE(1, 0, 1, 0)), _mm512_shuffle_ps(t1, t3, _MM_SHUFFLE(3, 2, 3, 2)),
                       _mm512_shuffle_ps(t4, t6, _MM_SHUFFLE(1, 0, 1, 0)), _mm512_shuffle_ps(t4, t6, _MM_SHUFFLE(3, 2, 3, 2)),
                       _mm512_shuffle_ps(t5, t7, _MM_SHUFFLE(1, 0, 1, 0)), _mm512_shuffle_ps(t5, t7, _MM_SHUFFLE(3, 2, 3, 2))};
  /* lanes 0 and 1 (channels c, 4 + c) and lanes 2 and 3 (8 + c, 12 + c): positions 0-7 in each half */
  const __m512i lo = _mm512_set_epi32(23, 22, 21, 20, 7, 6, 5, 4, 19, 18, 17, 16, 3, 2, 1, 0);
  const __m512i hi = _mm512_set_epi32(31, 30, 29, 28, 15, 14, 13, 12, 27, 26, 25, 24, 11, 10, 9, 8);
  const __mmask16 m = (__mmask16)((1u << n) - 1u);
#pragma GCC unroll 4
  for (int c = 0; c < 4; c++) {
    const __m512 w0 = _mm512_permutex2var_ps(u[c], lo, u[4 + c]), w1 = _mm512_permutex2var_ps(u[c], hi, u[4 + c]);
    _mm512_mask_storeu_ps(y + c * ldy, m, w0);
    _mm512_mask_storeu_ps(y + (4 + c) * ldy, m, _mm512_shuffle_f32x4(w0, w0, _MM_SHUFFLE(3, 2, 3, 2)));
    _mm512_mask_storeu_ps(y + (8 + c) * ldy, m, w1);
    _mm512_mask_storeu_ps(y + (12 + c) * ldy, m, _mm512_shuffle_f32x4(w1, w1, _MM_SHUFFLE(3, 2, 3, 2)));
  }
}

/* np positions (source offsets q; output indices o0, o0 + 1, ..) x V vectors of
 * channels from m0, taps [k0, k1): the sums start from buf unless first,
 * and go back to it unless last; the last chunk adds the bias and ReLU in
 * registers, then stores them to Y. */
static inline __attribute__((always_inline)) void tile(const int V, const int NP, const mi_dconv_job *j,
                                                      const mi_dconv_cv_weights *w, int64_t m0, const int64_t *q,
                                                      int64_t o0, int64_t k0, int64_t k1, float *buf,
                                                      bool first, bool last, const char *pf, int64_t npf,
                                                      uint64_t skip) {
  __m512 acc[PMAX][4];
#pragma GCC unroll 12
  for (int p = 0; p < NP; p++)
#pragma GCC unroll 4
    for (int v = 0; v < V; v++) acc[p][v] = first ? _mm512_setzero_ps() : _mm512_load_ps(buf + (p * V + v) * 16);
  const float *xs[PMAX];
#pragma GCC unroll 12
  for (int p = 0; p < NP; p++) xs[p] = j->x + q[p];
  const float *wp = w->data + m0 * w->K + k0 * 16 * V;
  const int32_t *t = j->toff;
  /* One step: the weights of V vectors of channels times each position's input value at tap offset t[k]. */
#define CV_STEP(k, wk)                                                               \
  do {                                                                               \
    CV_PREFETCH();                                                                   \
    __m512 wv[4];                                                                    \
    _Pragma("GCC unroll 4") for (int v = 0; v < V; v++) wv[v] = _mm512_load_ps((wk) + 16 * v); \
    const int64_t tk = t[k];                                                         \
    _Pragma("GCC unroll 12") for (int p = 0; p < NP; p++) {                          \
      const __m512 b = _mm512_set1_ps(xs[p][tk]);                                    \
      _Pragma("GCC unroll 4") for (int v = 0; v < V; v++) acc[p][v] = CV_FMA(acc[p][v], wv[v], b); \
    }                                                                                \
  } while (0)
  if (skip) {
    /* Channel-blocked order: steps k = (block taps + tap) 16 + channel % 16, so
     * a tap of a block is 16 steps in a row; chunks (k0, k1) and K are
     * multiples of 16 (chunk_k, and K = C taps with C % 16 == 0). */
    for (int64_t k = k0; k < k1; k += 16, wp += 16 * 16 * V) {
      if (skip >> ((k >> 4) % w->taps) & 1) {
        for (int i = 0; i < 16; i++) CV_PREFETCH(); /* the skipped steps' prefetches still issued */
        continue;
      }
#pragma GCC unroll 2
      for (int64_t i = 0; i < 16; i++) CV_STEP(k + i, wp + i * 16 * V);
    }
  } else {
    /* Each position's source 32 steps ahead into L1, once per 16 steps (a
     * line of a channel-blocked source: 16 channels).  The 1x1 layers'
     * inputs arrive from L2 in lines at a block's stride apart, which the
     * hardware prefetchers left the broadcasts waiting on: on AMD Zen 5 (two
     * 512-bit FMAs a cycle), builds alternating in one process, medians,
     * 2 threads: forty 1x1 layers of 1024 <-> 256 channels at 14x14 15.8 ->
     * 13.7 ms (ONNX Runtime 14.1-14.7), ResNet-50 27.9 -> 25.9, DenseNet-121
     * 24.9 -> 24.4, in bf16 ResNet-50 19.4 -> 19.1; 16 steps ahead 26.4.
     * On plain planes (NCHW copies, bf16 pairs) a step's line holds one
     * channel, so this covers a sixteenth of them: prefetching every step
     * there measured no gain (bf16 ResNet-50, DenseNet-121). */
    int64_t k = k0;
    for (; k + 16 <= k1; k += 16, wp += 16 * 16 * V) {
      if (k + 48 <= k1) {
        const int64_t tn = t[k + 32];
#pragma GCC unroll 12
        for (int p = 0; p < NP; p++) _mm_prefetch((const char *)(xs[p] + tn), _MM_HINT_T0);
      }
#pragma GCC unroll 2
      for (int64_t i = 0; i < 16; i++) CV_STEP(k + i, wp + i * 16 * V);
    }
#pragma GCC unroll 2
    for (; k < k1; k++, wp += 16 * V) CV_STEP(k, wp);
  }
#undef CV_STEP
  if (!last) {
#pragma GCC unroll 12
    for (int p = 0; p < NP; p++)
#pragma GCC unroll 4
      for (int v = 0; v < V; v++) _mm512_store_ps(buf + (p * V + v) * 16, acc[p][v]);
    return;
  }
  const __m512 zero = _mm512_setzero_ps();
  if (j->chan16) { /* each position's 16 channels one vector of Y, the residual read at the same place */
#pragma GCC unroll 4
    for (int v = 0; v < V; v++) {
      const __m512 bv = j->bias ? _mm512_loadu_ps(j->bias + m0 + 16 * v) : zero;
      const int64_t off = (m0 + 16 * v) * j->ldy + 16 * o0;
#pragma GCC unroll 12
      for (int p = 0; p < NP; p++) {
        __m512 r = _mm512_add_ps(acc[p][v], bv);
        if (j->res) r = _mm512_add_ps(r, _mm512_loadu_ps(j->res + off + 16 * p));
        if (j->relu) r = _mm512_max_ps(r, zero);
        _mm512_storeu_ps(j->y + off + 16 * p, r);
      }
    }
    return;
  }
#pragma GCC unroll 4
  for (int v = 0; v < V; v++) {
    const __m512 bv = j->bias ? _mm512_loadu_ps(j->bias + m0 + 16 * v) : zero;
    float *yv = j->y + (m0 + 16 * v) * j->ldy + o0;
    __m512 r[PMAX];
#pragma GCC unroll 12
    for (int p = 0; p < NP; p++) {
      r[p] = _mm512_add_ps(acc[p][v], bv);
      if (j->relu) r[p] = _mm512_max_ps(r[p], zero);
    }
    store_rows8(r, NP < 8 ? NP : 8, yv, j->ldy);
    if (NP > 8) store_rows8(r + 8, NP - 8, yv + 8, j->ldy);
  }
}

typedef void (*tile_fn)(const mi_dconv_job *, const mi_dconv_cv_weights *, int64_t, const int64_t *, int64_t,
                        int64_t, int64_t, float *, bool, bool, const char *, int64_t, uint64_t);
#define T(V, P)                                                                                            \
  static void t_##V##_##P(const mi_dconv_job *j, const mi_dconv_cv_weights *w, int64_t m0, const int64_t *q, \
                          int64_t o0, int64_t k0, int64_t k1, float *buf, bool first, bool last,             \
                          const char *pf, int64_t npf, uint64_t skip) {                                     \
    tile(V, P, j, w, m0, q, o0, k0, k1, buf, first, last, pf, npf, skip);                                   \
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

/* One tile (np positions) of the block at m0, chunk [k0, k1). */
static void run_tile(const mi_dconv_job *j, const mi_dconv_cv_weights *w, int np, int64_t m0, const int64_t *q,
                     int64_t o0, int64_t k0, int64_t k1, float *buf, bool first, bool last, const char *pf,
                     int64_t npf, uint64_t skip) {
  const tile_fn *fns = w->vb == 64 ? tiles4 : w->vb == 32 ? tiles2 : tiles1;
  fns[np - 1](j, w, m0, q, o0, k0, k1, buf, first, last, pf, npf, skip);
}
#else
/* AVX2: np positions x the 16 channels [m0 + 16 s, m0 + 16 s + 16) of the
 * block at m0 (two vectors; the weights' rows vb floats apart), taps
 * [k0, k1), sums in buf between chunks as the AVX-512 tile keeps them.  The
 * last chunk adds the bias and ReLU in registers and stores each channel's
 * np outputs as a run (plain NC(D)HW: conv.c gives this build no
 * channel-blocked jobs). */
static inline __attribute__((always_inline)) void tile(const int NP, const mi_dconv_job *j,
                                                      const mi_dconv_cv_weights *w, int64_t m0, int s,
                                                      const int64_t *q, int64_t o0, int64_t k0, int64_t k1,
                                                      float *buf, bool first, bool last, const char *pf,
                                                      int64_t npf, uint64_t skip) {
  __m256 acc[PMAX_AVX2][2];
#pragma GCC unroll 6
  for (int p = 0; p < NP; p++)
#pragma GCC unroll 2
    for (int v = 0; v < 2; v++) acc[p][v] = first ? _mm256_setzero_ps() : _mm256_load_ps(buf + (p * 2 + v) * 8);
  const float *xs[PMAX_AVX2];
#pragma GCC unroll 6
  for (int p = 0; p < NP; p++) xs[p] = j->x + q[p];
  const int64_t vb = w->vb;
  const float *wp = w->data + m0 * w->K + k0 * vb + 16 * s;
  const int32_t *t = j->toff;
#define CV_STEP(k, wk)                                                                 \
  do {                                                                                 \
    CV_PREFETCH();                                                                     \
    const __m256 w0 = _mm256_load_ps(wk), w1 = _mm256_load_ps((wk) + 8);               \
    const int64_t tk = t[k];                                                           \
    _Pragma("GCC unroll 6") for (int p = 0; p < NP; p++) {                             \
      const __m256 b = _mm256_broadcast_ss(xs[p] + tk);                                \
      acc[p][0] = _mm256_fmadd_ps(w0, b, acc[p][0]);                                   \
      acc[p][1] = _mm256_fmadd_ps(w1, b, acc[p][1]);                                   \
    }                                                                                  \
  } while (0)
  if (skip) { /* channel-blocked order: a tap of a block is 16 steps in a row */
    for (int64_t k = k0; k < k1; k += 16, wp += 16 * vb) {
      if (skip >> ((k >> 4) % w->taps) & 1) {
        for (int i = 0; i < 16; i++) CV_PREFETCH(); /* the skipped steps' prefetches still issued */
        continue;
      }
#pragma GCC unroll 2
      for (int64_t i = 0; i < 16; i++) CV_STEP(k + i, wp + i * vb);
    }
  } else {
#pragma GCC unroll 2
    for (int64_t k = k0; k < k1; k++, wp += vb) CV_STEP(k, wp);
  }
#undef CV_STEP
  if (!last) {
#pragma GCC unroll 6
    for (int p = 0; p < NP; p++)
#pragma GCC unroll 2
      for (int v = 0; v < 2; v++) _mm256_store_ps(buf + (p * 2 + v) * 8, acc[p][v]);
    return;
  }
  const __m256 zero = _mm256_setzero_ps();
  float r[PMAX_AVX2][16] __attribute__((aligned(32)));
#pragma GCC unroll 2
  for (int v = 0; v < 2; v++) {
    const __m256 bv = j->bias ? _mm256_loadu_ps(j->bias + m0 + 16 * s + 8 * v) : zero;
#pragma GCC unroll 6
    for (int p = 0; p < NP; p++) {
      __m256 o = _mm256_add_ps(acc[p][v], bv);
      if (j->relu) o = _mm256_max_ps(o, zero);
      _mm256_store_ps(r[p] + 8 * v, o);
    }
  }
  float *y = j->y + (m0 + 16 * s) * j->ldy + o0;
  for (int c = 0; c < 16; c++)
#pragma GCC unroll 6
    for (int p = 0; p < NP; p++) y[c * j->ldy + p] = r[p][c];
}

typedef void (*tile_fn)(const mi_dconv_job *, const mi_dconv_cv_weights *, int64_t, int, const int64_t *, int64_t,
                        int64_t, int64_t, float *, bool, bool, const char *, int64_t, uint64_t);
#define T(P)                                                                                                   \
  static void t_##P(const mi_dconv_job *j, const mi_dconv_cv_weights *w, int64_t m0, int s, const int64_t *q,   \
                    int64_t o0, int64_t k0, int64_t k1, float *buf, bool first, bool last, const char *pf,      \
                    int64_t npf, uint64_t skip) {                                                              \
    tile(P, j, w, m0, s, q, o0, k0, k1, buf, first, last, pf, npf, skip);                                      \
  }
T(1) T(2) T(3) T(4) T(5) T(6)
#undef T
static const tile_fn tiles[PMAX_AVX2] = {t_1, t_2, t_3, t_4, t_5, t_6};

/* One tile of the block at m0: its vb / 16 parts in turn, each with its
 * share of the prefetches and its own sums in buf. */
static void run_tile(const mi_dconv_job *j, const mi_dconv_cv_weights *w, int np, int64_t m0, const int64_t *q,
                     int64_t o0, int64_t k0, int64_t k1, float *buf, bool first, bool last, const char *pf,
                     int64_t npf, uint64_t skip) {
  const int parts = w->vb / 16;
  for (int s = 0; s < parts; s++) {
    const int64_t l0 = s * npf / parts, l1 = (s + 1) * npf / parts;
    tiles[np - 1](j, w, m0, s, q, o0, k0, k1, buf + s * PMAX_AVX2 * 16, first, last, pf ? pf + l0 * 64 : NULL,
                  l1 - l0, skip);
  }
}
#endif

/* Tile tile_i's np positions: source offsets q, and the first one's output
 * index *o0 (the output compact: consecutive positions, consecutive
 * indices).  Divisions only for the first position, the rest walked (a
 * 64-channel 48x48 3x3 layer's time outside the tiles: 3.65 -> 3.01 % of
 * its perf samples). */
static int tile_positions(const mi_dconv_job *j, int64_t total, int64_t nt, int64_t rows, const segs *seg,
                          int64_t tile_i, int64_t *q, int64_t *o0) {
  int64_t t0 = tile_i * total / nt;
  int np = (int)((tile_i + 1) * total / nt - t0);
  if (seg) { /* row tile_i / per_row, then its segment's share */
    int64_t u = tile_i % seg->per_row, c0 = 0, i = 0;
    for (; u >= seg->tiles[i]; i++) u -= seg->tiles[i], c0 += seg->len[i];
    const int64_t L = seg->len[i], n = seg->tiles[i];
    t0 = tile_i / seg->per_row * j->cols + c0 + u * L / n;
    np = (int)((u + 1) * L / n - u * L / n);
  }
  const int64_t sy = j->sy > 1 ? j->sy : 1, sx = j->sx > 1 ? j->sx : 1, plane = rows * j->cols;
  int64_t z = t0 / plane, r = t0 % plane / j->cols, c = t0 % j->cols;
  *o0 = z * j->out_plane + r * j->cols + c;
  for (int p = 0; p < np; p++) {
    q[p] = z * j->x_plane + r * j->row * sy + c * sx;
    if (++c == j->cols) {
      c = 0;
      if (++r == rows) r = 0, z++;
    }
  }
  return np;
}

/* The taps that all np positions from output index o0 read only padding at:
 * the multiply-adds with zeros a tile leaves out (a 512-channel 24x24 layer
 * of dilation 4: its 8 border rows skip a third of their taps, 11 % of the
 * layer; a 7x7 map's first and last row, the 3x3 taps above and below). */
static uint64_t tile_skip(const mi_dconv_job *j, const mi_dconv_cv_weights *w, int64_t rows, int64_t o0, int np) {
  if (!j->skip_rows || w->taps <= 0 || w->taps > 64) return 0;
  uint64_t s = ~(uint64_t)0;
  int64_t r = o0 / j->cols % rows, c = o0 % j->cols;
  for (int p = 0; p < np && s; p++) {
    s &= j->skip_rows[r] | j->skip_cols[c];
    if (++c == j->cols) c = 0, r = r + 1 == rows ? 0 : r + 1;
  }
  return s;
}

void CV_NAME(mi_dconv_cv_run)(const mi_dconv_job *j, const mi_dconv_cv_weights *w, int64_t begin, int64_t end) {
  const int64_t total = positions(j), nt = ntiles(j, w), gt = group_tiles(j, w), ng = (nt + gt - 1) / gt;
  segs sg;
  const segs *seg = row_segments(j, w, &sg) ? &sg : NULL;
  const int64_t rows = grid_rows(j), kch = chunk_k(w);
  float buf[GROUP_TILES][PMAX * 32] __attribute__((aligned(64))); /* a tile's sums: 6 x 64, 12 x 32 or 12 x 16 */
  const int64_t nb = w->M / w->vb;
  for (int64_t it = begin; it < end; it++) {
    /* Block first where the weights outweigh the input: one thread's
     * consecutive items reuse the block's weights from L2.  Else positions
     * first: the blocks of a tile group follow each other on its input, and
     * each thread reads only its share of the input (a 64 -> 256-channel
     * 56x56 layer, block first, had both threads stream all of it). */
    const int64_t blk = j->group_major ? it / ng : it % nb, gi = j->group_major ? it % ng : it / nb;
    const int64_t g0 = gi * gt, g1 = g0 + gt < nt ? g0 + gt : nt, m0 = blk * w->vb;
    int64_t q[GROUP_TILES][PMAX], o0[GROUP_TILES];
    int np[GROUP_TILES];
    uint64_t skip[GROUP_TILES];
    for (int64_t ti = g0; ti < g1; ti++) {
      np[ti - g0] = tile_positions(j, total, nt, rows, seg, ti, q[ti - g0], &o0[ti - g0]);
      skip[ti - g0] = tile_skip(j, w, rows, o0[ti - g0], np[ti - g0]);
    }
    for (int64_t k0 = 0; k0 < w->K; k0 += kch) {
      const int64_t k1 = k0 + kch < w->K ? k0 + kch : w->K;
      /* The weights taken next (this block's next chunk, else the next
       * item's first) are prefetched into L2 while this chunk runs, shared
       * out among the group's tiles: the hardware prefetcher left the first
       * tile of each chunk waiting on memory.  ResNet-50's 3x3 layers, per
       * node minimum over interleaved runs: 21.2 -> 18.6 ms in all (its 7x7
       * ones 1.39-1.45 -> 1.11-1.13); layers whose weights stay in L2 as
       * they were. */
      const float *next = NULL;
      int64_t next_k = 0;
      if (k1 < w->K) {
        next = w->data + m0 * w->K + k1 * w->vb, next_k = (k1 + kch < w->K ? k1 + kch : w->K) - k1;
      } else if (it + 1 < end) {
        const int64_t nblk = j->group_major ? (it + 1) / ng : (it + 1) % nb;
        next = w->data + nblk * w->vb * w->K, next_k = kch < w->K ? kch : w->K;
      }
      const int64_t lines = next ? next_k * w->vb / 16 : 0, nt_g = g1 - g0, share = (lines + nt_g - 1) / nt_g;
      for (int64_t g = 0; g < nt_g; g++) {
        const int64_t l0 = g * share < lines ? g * share : lines, l1 = l0 + share < lines ? l0 + share : lines;
        run_tile(j, w, np[g], m0, q[g], o0[g], k0, k1, buf[g], k0 == 0, k1 == w->K,
                 next ? (const char *)next + l0 * 64 : NULL, l1 - l0, skip[g]);
        if (j->epi && k1 == w->K)
          j->epi->fn(j->epi->ctx, m0, w->vb, o0[g], np[g], j->y + m0 * j->ldy + o0[g], j->ldy);
      }
    }
  }
}
#endif
