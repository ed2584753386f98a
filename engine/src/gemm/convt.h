/* ConvTranspose with strides equal to the kernel and no padding (a U-Net's
 * upsampling), computed straight into the output (AVX-512 and AVX2).
 *
 * There every output value is one input position times one tap:
 *   y[m, iz*k0 + a, iy*k1 + b, ix*k2 + c] = sum_ch w[ch, m, a, b, c] * x[ch, iz, iy, ix]
 * so a vector of input positions makes k2 vectors of each output row family
 * (m, a, b), the k2 taps interleaved.  The kernels accumulate several such
 * rows over every input channel in registers and store each value once,
 * with the epilogue, instead of a column buffer that a scatter then copies
 * into place (the demo model's last upsampling, 23 MB of output, went
 * through 46 MB more that way).  Positions run over the whole input plane,
 * so a 6-wide row (a deep upsampling) still fills the vectors; the stores
 * split at the ends of input rows.
 *
 * Only compiled for x86-64; call nothing here unless mi_isa_level() is
 * MI_ISA_AVX512 or MI_ISA_AVX2. */
#ifndef MEDINFER_GEMM_CONVT_H
#define MEDINFER_GEMM_CONVT_H

#include <stdbool.h>
#include <stdint.h>

#include "gemm.h"

/* One image and group of a layer. */
typedef struct mi_convt_job {
  const float *x;    /* C input planes of in[0] * in[1] * in[2] floats */
  const float *w;    /* one group's weights packed by mi_convt_pack */
  float *y;          /* M output planes of in_sz * k[0] * k[1] * k[2] floats */
  int64_t C, M, in[3], k[3]; /* k[2] (the taps along a row): 1 or 2 (mi_convt_supported) */
  const mi_gemm_epilogue *epi; /* NULL: none; simple ones in registers, else fn on each finished run of a row */
  int64_t tile;      /* input positions per work item: a multiple of 16 */
} mi_convt_job;

/* Whether the kernels take taps k (z, y, x). */
static inline bool mi_convt_supported(const int64_t k[3]) { return k[0] >= 1 && k[1] >= 1 && (k[2] == 1 || k[2] == 2); }

/* Output rows (m, a, b) a block of the kernels computes at once: 12
 * accumulators (of AVX-512's 32 registers, of AVX2's 16). */
static inline int64_t mi_convt_block_rows(int64_t k2) { return k2 == 1 ? 12 : 6; }

/* ONNX's weights of one group, [C, M, k0, k1, k2] (w), into dst (as many
 * floats) for the kernels: block by block of output rows, each channel's
 * weights of the block's rows side by side (read from ONNX's order, one
 * channel's weights of a block are a row apart, 8 KB in a 256-channel 2x2x2
 * layer: every channel's line in the same L1 set). */
void mi_convt_pack(const float *w, int64_t C, int64_t M, const int64_t k[3], float *dst);

/* Work items of the job: its tiles of input positions. */
int64_t mi_convt_items(const mi_convt_job *j);

/* Items [b, e): every output value their input positions make, on the
 * kernels of mi_isa_level().  Items are independent: split them over threads. */
void mi_convt_tiles(const mi_convt_job *j, int64_t b, int64_t e);

/* ---- between the driver (convt.c) and the kernels (convt_avx512.c, convt_avx2.c) */

#define MI_CONVT_MAX_ROWS 12 /* mi_convt_block_rows at most */

/* The layer's rows, for the stores. */
typedef struct mi_convt_layout {
  int64_t W, in1, k0, k1, out1, ow; /* input row length and rows a plane; taps; output rows a plane, row length */
} mi_convt_layout;

/* A block's output rows: row i (channel m[i], taps a, b) of input row
 * (iz, iy) starts at y + off[i] + (iz * k0 * out1 + iy * k1) * ow. */
typedef struct mi_convt_rows {
  int64_t m[MI_CONVT_MAX_ROWS], off[MI_CONVT_MAX_ROWS];
  float bias[MI_CONVT_MAX_ROWS];
} mi_convt_rows;

/* nb block rows of the job (rows of k2 taps) over input positions [p0, p1),
 * weights w (ws floats a channel), stored with bias, the residual res
 * (aligned with y; NULL: none) and ReLU. */
typedef void (*mi_convt_block_fn)(const mi_convt_job *j, const mi_convt_layout *l, int64_t p0, int64_t p1,
                                  const float *w, int64_t ws, const mi_convt_rows *rb, const float *res, bool relu,
                                  int nb);
void mi_convt_block_avx512(const mi_convt_job *j, const mi_convt_layout *l, int64_t p0, int64_t p1, const float *w,
                           int64_t ws, const mi_convt_rows *rb, const float *res, bool relu, int nb);
void mi_convt_block_avx2(const mi_convt_job *j, const mi_convt_layout *l, int64_t p0, int64_t p1, const float *w,
                         int64_t ws, const mi_convt_rows *rb, const float *res, bool relu, int nb);

/* A kernel file's block entry NAME (an mi_convt_block_fn), calling its
 * always-inline TILE(j, l, p0, p1, w, ws, rb, res, relu, nb, k2) with the
 * block's size and taps constant, so that the accumulators are registers. */
#define MI_CONVT_ROWS_CASE(nr, kx, TILE) \
  case nr:                               \
    TILE(j, l, p0, p1, w, ws, rb, res, relu, nr, kx); \
    break;
#define MI_CONVT_BLOCK_ENTRY(NAME, TILE)                                                                        \
  void NAME(const mi_convt_job *j, const mi_convt_layout *l, int64_t p0, int64_t p1, const float *w, int64_t ws, \
            const mi_convt_rows *rb, const float *res, bool relu, int nb) {                                      \
    if (j->k[2] == 1) {                                                                                         \
      switch (nb) {                                                                                             \
        MI_CONVT_ROWS_CASE(1, 1, TILE) MI_CONVT_ROWS_CASE(2, 1, TILE) MI_CONVT_ROWS_CASE(3, 1, TILE)            \
        MI_CONVT_ROWS_CASE(4, 1, TILE) MI_CONVT_ROWS_CASE(5, 1, TILE) MI_CONVT_ROWS_CASE(6, 1, TILE)            \
        MI_CONVT_ROWS_CASE(7, 1, TILE) MI_CONVT_ROWS_CASE(8, 1, TILE) MI_CONVT_ROWS_CASE(9, 1, TILE)            \
        MI_CONVT_ROWS_CASE(10, 1, TILE) MI_CONVT_ROWS_CASE(11, 1, TILE) MI_CONVT_ROWS_CASE(12, 1, TILE)         \
      }                                                                                                         \
    } else {                                                                                                    \
      switch (nb) {                                                                                             \
        MI_CONVT_ROWS_CASE(1, 2, TILE) MI_CONVT_ROWS_CASE(2, 2, TILE) MI_CONVT_ROWS_CASE(3, 2, TILE)            \
        MI_CONVT_ROWS_CASE(4, 2, TILE) MI_CONVT_ROWS_CASE(5, 2, TILE) MI_CONVT_ROWS_CASE(6, 2, TILE)            \
      }                                                                                                         \
    }                                                                                                           \
  }

/* Input position of a tile walked along its rows, without divisions. */
typedef struct mi_convt_cursor {
  int64_t ix, iy, iz;
} mi_convt_cursor;

static inline mi_convt_cursor mi_convt_cursor_at(const mi_convt_layout *l, int64_t p) {
  return (mi_convt_cursor){p % l->W, p / l->W % l->in1, p / l->W / l->in1};
}

/* Positions left in the cursor's input row, at most n. */
static inline int64_t mi_convt_run_len(const mi_convt_layout *l, const mi_convt_cursor *c, int64_t n) {
  return l->W - c->ix < n ? l->W - c->ix : n;
}

/* Output offset of the cursor's position in a block row's taps (0, 0). */
static inline int64_t mi_convt_out_offset(const mi_convt_layout *l, const mi_convt_cursor *c, int KX) {
  return (c->iz * l->k0 * l->out1 + c->iy * l->k1) * l->ow + c->ix * KX;
}

/* The cursor moved len positions on, within its row. */
static inline void mi_convt_advance(const mi_convt_layout *l, mi_convt_cursor *c, int64_t len) {
  if ((c->ix += len) == l->W) {
    c->ix = 0;
    if (++c->iy == l->in1) c->iy = 0, c->iz++;
  }
}

/* The runs of a vector of positions along input rows: lane q (a run's
 * first) lands at output offset o of a block row's taps (0, 0); of the
 * run's k2 * len values, bits[h] the lanes in vector h of k2. */
typedef struct mi_convt_runs {
  int n;
  int64_t o[16];
  uint32_t bits[16][2];
} mi_convt_runs;

/* lanes [lo, hi) of V */
static inline uint32_t mi_convt_span(int64_t lo, int64_t hi, int V) {
  lo = lo < 0 ? 0 : lo, hi = hi > V ? V : hi;
  return hi <= lo ? 0 : (uint32_t)(((1ull << hi) - 1) & ~((1ull << lo) - 1));
}

/* The runs of the next n positions (n <= V lanes) at c, which moves past them. */
static inline void mi_convt_next_runs(const mi_convt_layout *l, int64_t n, int KX, int V, mi_convt_cursor *c,
                                      mi_convt_runs *r) {
  r->n = 0;
  for (int64_t q = 0; q < n;) {
    const int64_t len = mi_convt_run_len(l, c, n - q);
    r->o[r->n] = mi_convt_out_offset(l, c, KX) - q * KX;
    for (int h = 0; h < 2; h++) r->bits[r->n][h] = mi_convt_span(q * KX - V * h, (q + len) * KX - V * h, V);
    r->n++;
    q += len;
    mi_convt_advance(l, c, len);
  }
}

#endif
