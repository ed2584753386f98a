/* Direct convolution (AVX-512): the SGEMM's packed weights times input rows
 * read in place from a zero-padded NC(D)HW source (the channel-vector
 * kernel below also from a channel-blocked NCHW16c one).
 *
 * A convolution is Y[m, p] = sum_k W[m, k] X[k-th tap of position p].  With
 * every tap inside the padded source, the tap of position p is at
 * x + toff[k] + p (unit strides), so the B operand of the product needs no
 * gathering or packing: the micro-kernel loads 16 consecutive positions of
 * a tap straight from the source.  Positions run along the padded grid,
 * rows included; the grid's extra columns are computed and dropped (a few
 * percent), which keeps tiles full on 7x7 and 14x14 layers where the
 * SGEMM's column panels are mostly edge.  Output rows of whole vectors
 * (16, 32, 48.. columns) are the exception: the AVX-512 kernel's vectors
 * then run over them alone (dconv_avx512.c).
 *
 * Only compiled for x86-64; call nothing here unless mi_isa_level() is
 * MI_ISA_AVX512 (the _avx2 functions: MI_ISA_AVX2) and the weights were
 * packed for that level. */
#ifndef MEDINFER_GEMM_DCONV_H
#define MEDINFER_GEMM_DCONV_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "gemm.h"

/* One convolution call.  Positions of plane z (z < planes) are q in
 * [0, q_end) on a grid of rows `row` apart; q is an output position when
 * q % row < cols, at output index z * out_plane + (q / row) * cols + q % row.
 * The source of plane z starts at x + z * x_plane. */
typedef struct mi_dconv_job {
  mi_gemm_packed_view a; /* weights [M, K], packed for the AVX-512 kernel */
  const float *x;
  const int32_t *toff;   /* K tap offsets into x */
  int64_t planes, x_plane, q_end, row, cols, out_plane;
  float *y;              /* [M][ldy] */
  int64_t ldy;
  const float *bias;     /* per channel, added in registers (NULL: none) */
  bool relu;             /* then max(0, .) in registers */
  const mi_gemm_epilogue *epi; /* anything else, on each stored run (NULL: none) */
  int mgroup;            /* output channels per work item: a multiple of 8 up to 64 (0: 64) */
  int64_t csz;           /* AMX: floats from one (pair) plane of x to the next */
  const float *res;      /* AMX, chan16, and the AVX-512 position-vector kernel where it stores tiles to y
                            (grid rows of 16 or more, or none dropped): residual aligned with y, added
                            before the ReLU (NULL: none) */
  bool group_major;      /* items ordered channel group first: the position tiles of one group follow
                            each other, so a thread reads the group's weights from memory once (set
                            when the weights outweigh the input; else tile first, the input tile reused) */
  int64_t sy, sx;        /* channel-vector kernel: source floats per output row step and column step over
                            row and 1 (the strides of a layer read on its plain padded grid, times 16 for a
                            channel-blocked source; 0 or 1: unit) */
  bool chan16;           /* channel-vector kernel: y (and res) channel-blocked, NCHW16c: channel m at
                            position o is y[(m / 16) * 16 * ldy + 16 * o + m % 16]; the residual res added
                            in registers before the ReLU (epi must be NULL) */
  const uint64_t *skip_rows, *skip_cols; /* channel-vector kernel, weights in channel-blocked order
                            (mi_dconv_cv_weights.taps, at most 64): per output row (grid_rows) and column
                            (cols) of a plane, the taps (bit t) that read only padding there; a tile skips
                            the taps that all its positions skip (NULL: none) */
} mi_dconv_job;

/* The next run of real output positions at or after *q, before e: positions
 * on the grid's extra columns are skipped, a run ends at a grid row.  false
 * when none is left; else *q is its first position, *len its length and *o
 * its output index (plane z).  Walk: for (q = q0; next_run(..); q += len). */
static inline bool mi_dconv_next_run(const mi_dconv_job *j, int64_t z, int64_t *q, int64_t e, int64_t *len,
                                     int64_t *o) {
  for (;;) {
    if (*q >= e) return false;
    const int64_t r = *q / j->row, c = *q % j->row;
    if (c >= j->cols) {
      *q += j->row - c;
      continue;
    }
    *len = j->cols - c < e - *q ? j->cols - c : e - *q;
    *o = z * j->out_plane + r * j->cols + c;
    return true;
  }
}

/* ---- the position-vector kernels' drivers (dconv_avx512.c, dconv_avx2.c) --
 * Work item it: channel group *g, position tile *b of plane *z, in the job's
 * order (group_major or tile first) over nblk tiles a plane and ngrp groups. */
static inline void mi_dconv_item(const mi_dconv_job *j, int64_t it, int64_t nblk, int64_t ngrp, int64_t *g,
                                 int64_t *b, int64_t *z) {
  if (j->group_major) *g = it / (nblk * j->planes), *b = it % nblk, *z = (it / nblk) % j->planes;
  else *g = it % ngrp, *b = (it / ngrp) % nblk, *z = it / (ngrp * nblk);
}

/* Grid position of position p of a plane (p a vector's first lane): the
 * same where vectors run along the grid, else (rows: output rows of whole
 * vectors, dconv_avx512.c) p's output row and column on the grid. */
static inline int64_t mi_dconv_grid_q(const mi_dconv_job *j, bool rows, int64_t p) {
  return rows ? p / j->cols * j->row + p % j->cols : p;
}

/* The source rows a K step prefetches into L2, shared out over the group's
 * panels: the next step's rows of this tile (x), or at the last step the
 * first kstep rows of the next item, which in tile-first order is likely the
 * next tile.  A map's channels lie pages apart, where the hardware
 * prefetchers do not follow.  vec: positions per vector, nvec a plane's;
 * rows: the vectors run over the output rows only (dconv_avx512.c). */
typedef struct mi_dconv_prefetch {
  const float *x;
  const int32_t *toff;
  int64_t n;
} mi_dconv_prefetch;
static inline mi_dconv_prefetch mi_dconv_prefetch_of(const mi_dconv_job *j, const float *x, int64_t k_next,
                                                     int64_t kstep, int64_t it, int64_t end, int64_t nblk,
                                                     int64_t ngrp, int64_t nvec, int vec, bool rows) {
  const int64_t K = j->a.K;
  if (k_next < K) return (mi_dconv_prefetch){x, j->toff + k_next, K - k_next < kstep ? K - k_next : kstep};
  if (it + 1 >= end || j->group_major) return (mi_dconv_prefetch){x, j->toff, 0};
  const int64_t nb = (it + 1) / ngrp % nblk, nz = (it + 1) / (ngrp * nblk);
  return (mi_dconv_prefetch){j->x + nz * j->x_plane + mi_dconv_grid_q(j, rows, vec * (nb * nvec / nblk)), j->toff,
                             K < kstep ? K : kstep};
}

/* Rows [m0, m0 + mr) of a tile (positions [q0, q0 + n) of plane z) from
 * buf[i * ldb + ..] into Y, run by run (a run ends at a grid row), each run
 * through the job's epilogue. */
static inline void mi_dconv_scatter_runs(const mi_dconv_job *j, const float *buf, int64_t ldb, int64_t z, int64_t q0,
                                         int64_t n, int64_t m0, int mr) {
  for (int64_t q = q0, len, o; mi_dconv_next_run(j, z, &q, q0 + n, &len, &o); q += len) {
    float *y = j->y + m0 * j->ldy + o;
    for (int i = 0; i < mr; i++) memcpy(y + i * j->ldy, buf + i * ldb + (q - q0), (size_t)len * sizeof(float));
    if (j->epi) j->epi->fn(j->epi->ctx, m0, mr, o, len, y, j->ldy);
  }
}

/* ---- bf16 (dconv_bf16.c): the same job with channel pairs ---------------
 * x holds per 32-bit element the bf16 values of channels 2c (low half) and
 * 2c+1 at one position (mi_dconv_bf16_pairs), toff indexes channel pairs,
 * and a is mi_dconv_bf16_pack's view (K = channel pairs x taps). */
typedef struct mi_dconv_bf16_weights {
  mi_gemm_packed_view view;
  void *data; /* owned: the caller frees it with free() */
} mi_dconv_bf16_weights;

bool mi_dconv_bf16_supported(void); /* AVX-512F and AVX512-BF16 */
/* f rounded to bf16 (nearest even; NaN stays NaN), and n of them. */
uint16_t mi_bf16_round(float f);
void mi_bf16_from_f32(const float *src, int64_t n, uint16_t *dst);
/* n rows of 16 lanes of two channels (row e: lo[16 e + l], hi[16 e + l];
 * hi NULL: zeros) as 16 pairs each, row e at dst + e * ds (Winograd's
 * transformed inputs, conv_winograd.c). */
void mi_bf16_pair_lanes(const float *lo, const float *hi, int n, float *dst, int64_t ds);
/* W [M, C, taps] (ksz taps per channel) into *out; false on out of memory. */
bool mi_dconv_bf16_pack(const float *w, int64_t M, int64_t C, int64_t ksz, mi_dconv_bf16_weights *out);
/* Channel pairs [cp0, cp1) of x (C channels, channel c's n floats at
 * x + c * xstride) into dst (planes of csz 32-bit pairs, n of each written;
 * an odd C's last pair has a zero high half).  With pre, each value is
 * first pre[c] * v + pre[C + c], then max(0, .) if relu. */
void mi_dconv_bf16_pairs(const float *x, int64_t xstride, int64_t n, int64_t C, const float *pre, bool relu,
                         int64_t csz, float *dst, int64_t cp0, int64_t cp1);
/* The pairs from the unpadded input: position q of the zero-padded slab,
 * split into sy x sx stride phases of ph x pw (phase_geom in conv.c; 1 x 1:
 * the plain padded planes) from padded plane z0, reads input (z, y, x) =
 * (z0 + q / (sy sx ph pw) - top[0], r sy + py - top[1], t sx + px - top[2])
 * where (py, px) is its phase, r = q / pw % ph and t = q % pw, of the in[0]
 * x in[1] x in[2] channel planes, zero outside (the prologue applied to the
 * inside only): no padded FP32 copy first.  sx is 1 or 2. */
typedef struct mi_dconv_pad {
  int64_t in[3], top[3], ph, pw, z0, sy, sx;
} mi_dconv_pad;
/* Pairs [cp0, cp1), padded rows [r0, r1) (pw positions each; row R is
 * phase row R % ph of phase R / ph % (sy sx) of padded plane z0 + R / (sy
 * sx ph)) of their planes (csz apart in dst), as mi_dconv_bf16_pairs makes
 * them.  blocked (cp0, cp1 multiples of 16): in blocks of 16 pairs, pair
 * 16p + i at position q at dst[(p csz + q) 16 + i] (a position's 16 pairs
 * one cache line, the channel-vector kernel's channel-blocked source). */
void mi_dconv_bf16_pairs_padded(const float *x, int64_t xstride, int64_t C, const float *pre, bool relu,
                                const mi_dconv_pad *pad, int64_t csz, bool blocked, float *dst, int64_t cp0,
                                int64_t cp1, int64_t r0, int64_t r1);
/* A stride-2 layer of few channels (an RGB stem) in pairs of adjacent
 * columns instead of channels: channel c's zero-padded row 2r + py (top
 * rows and left columns of padding) as ww words, word w holding padded
 * columns 2w (low half) and 2w + 1, at dst + ((c * 2 + py) * hr + r) * ww;
 * the rows (c * 2 + py) * hr + r in [r0, r1) of x's C planes of H x W.  The
 * tap pair (ky, kx, kx + 1), kx even, of output (oy, ox) is then word ox +
 * kx / 2 of row oy + ky / 2 of phase ky % 2: unit steps, and a 7-tap row
 * of a channel is 4 steps (RGB 7x7: 84, against 98 for channel pairs, a
 * quarter of them zeros). */
void mi_dconv_bf16_colpairs(const float *x, int64_t H, int64_t W, int64_t top, int64_t left, int64_t hr,
                            int64_t ww, float *dst, int64_t r0, int64_t r1);
int64_t mi_dconv_items_bf16(const mi_dconv_job *j);
void mi_dconv_run_bf16(const mi_dconv_job *j, int64_t begin, int64_t end);

/* ---- bf16 on AMX (dconv_amx.c): the same job, the products on AMX tiles ---
 * 32 positions x 32 output channels per work item, K in blocks of 16
 * channel pairs of one tap (tdpbf16ps, the input tile the left operand;
 * 1x1 layers read in place the other way round, mi_dconv_amx_pairs_cols).
 * x holds the pairs in blocks of 16 (mi_dconv_amx_pairs): block p's csz
 * positions of 16 pairs each, so that an input tile (16 positions x 16
 * pairs) is 1 KB in a row; MI_DCONV_AMX_SLACK elements after the last
 * block.  toff has a row per (padded pair, tap), as for the bf16 job
 * (pair 16p's row: 16p * csz + the tap's offset). */
#define MI_DCONV_AMX_SLACK 512
typedef struct mi_dconv_amx_weights {
  void *data; /* owned: free() */
  int64_t M, mblocks, taps, pblocks; /* 16-row blocks (even count), taps, 16-pair blocks */
  bool left;  /* the weights the left operand (1x1 layers, mi_dconv_amx_pairs_cols below) */
} mi_dconv_amx_weights;
/* AMX-TILE and AMX-BF16 usable (CPUID, and the kernel's permission for the
 * tile data, asked for once); MEDINFER_AMX=0 turns it off. */
bool mi_dconv_amx_supported(void);
bool mi_dconv_amx_pack(const float *w, int64_t M, int64_t C, int64_t ksz, bool left, mi_dconv_amx_weights *out);
/* FP32 channel planes (channel c's values at x + c * xstride, through the
 * prologue pre as for mi_dconv_bf16_pairs) into the pair blocks of dst:
 * pair 16p + i at position q is dst[(p * csz + q) * 16 + i].  Writes
 * blocks [pb0, pb1), positions [q0, q1); pairs past C are zeros. */
void mi_dconv_amx_pairs(const float *x, int64_t xstride, int64_t C, const float *pre, bool relu, int64_t csz,
                        float *dst, int64_t pb0, int64_t pb1, int64_t q0, int64_t q1);
/* The same from the unpadded input (mi_dconv_pad, above). */
void mi_dconv_amx_pairs_padded(const float *x, int64_t xstride, int64_t C, const float *pre, bool relu,
                               const mi_dconv_pad *pad, int64_t csz, float *dst, int64_t pb0, int64_t pb1, int64_t q0,
                               int64_t q1);
/* A 1x1 layer read in place (no padding, unit strides; left weights): the
 * products the other way round, the weights the left operand and the input
 * the right one, so that neither the pairs nor the sums are transposed:
 * the pairs as blocks of 16 positions x 16 pairs, each pair's 16 positions
 * one 64-byte row: pair 16p + r at position 16b + i is dst[((b * pbn + p) *
 * 16 + r) * 16 + i] (pbn pair blocks).  Writes blocks [pb0, pb1) of the
 * 16-position blocks covering [q0, q1) (q0 a multiple of 16), zeros at
 * positions from n and for pairs past C.  The job's positions are then
 * planes * q_end consecutive ones, output index = position. */
void mi_dconv_amx_pairs_cols(const float *x, int64_t xstride, int64_t C, const float *pre, bool relu, int64_t pbn,
                             float *dst, int64_t pb0, int64_t pb1, int64_t q0, int64_t q1, int64_t n);
/* A layer of few channels (an RGB stem: AMX's pair blocks would be mostly
 * zeros) as a 1x1 layer of its K = C kh kw taps: the same blocks, of its
 * im2col matrix, made from the 2D input: row k = (c, ky, kx) at output
 * position q = oy OW + ox reads x[c][oy sy + ky dy - pt][2 ox + kx - pl],
 * zero outside the input.  Column stride 2, no column dilation, OW a
 * multiple of 16, kw <= 17 and K <= MI_DCONV_STEM_MAXK (a 7x7 stride-2
 * stem; mi_dconv_amx_stem_ok says). */
#define MI_DCONV_STEM_MAXK 256
typedef struct mi_dconv_im2col {
  int64_t C, H, W, kh, kw, sy, dy, pt, pl, OH, OW;
} mi_dconv_im2col;
bool mi_dconv_amx_stem_ok(const mi_dconv_im2col *g, int64_t sx, int64_t dx);
void mi_dconv_amx_im2col_cols(const float *x, const mi_dconv_im2col *g, int64_t pbn, float *dst, int64_t q0,
                              int64_t q1);
int64_t mi_dconv_items_amx(const mi_dconv_job *j, const mi_dconv_amx_weights *w);
void mi_dconv_run_amx(const mi_dconv_job *j, const mi_dconv_amx_weights *w, int64_t begin, int64_t end);

/* ---- output channels in the vectors (dconv_cv.c): the same job on small maps --
 * Weights in blocks of vb (64, 32 or 16) output channels, [block][K][vb];
 * a tile is up to 6 (vb 64) or 12 consecutive positions, each broadcast
 * from x at its source offset plus the tap's; each channel's outputs stored
 * as one run (chan16: each position's 16 channels as one vector), so the
 * output must be compact (out_plane = rows x cols, the rows (q_end - cols) /
 * row + 1).  The job's a, mgroup and csz are unused, and res unless
 * chan16. */
typedef struct mi_dconv_cv_weights {
  float *data; /* owned: free() */
  int64_t M, K;
  int vb;
  int64_t taps; /* > 0: K in channel-blocked order (mi_dconv_cv_source), taps per channel; 0: W's own */
} mi_dconv_cv_weights;
/* W [M, K] (M a multiple of 16; K = C taps, channel c's taps at columns
 * [c taps, (c + 1) taps)) into *out; false when M is not or out of memory.
 * taps > 1 (K a multiple of 16 taps): the steps in the order of a
 * channel-blocked source, block of 16 channels, tap, channel in the block,
 * so that 16 steps in a row read one position's 16 channels, one cache line
 * (PSPNet's dilated 24x24 layers, one thread: 124 -> 128 GFLOP/s). */
bool mi_dconv_cv_pack(const float *w, int64_t M, int64_t K, int64_t taps, mi_dconv_cv_weights *out);
/* The column of W that step k of the packed weights holds. */
static inline int64_t mi_dconv_cv_source(const mi_dconv_cv_weights *w, int64_t k) {
  if (w->taps <= 1) return k;
  const int64_t per_block = 16 * w->taps, r = k % per_block;
  return (k / per_block * 16 + r % 16) * w->taps + r / 16;
}
/* Rows [r0, r0 + n) back out, row-major into dst [n][K]. */
void mi_dconv_cv_rows(const mi_dconv_cv_weights *w, int64_t r0, int64_t n, float *dst);
int64_t mi_dconv_cv_items(const mi_dconv_job *j, const mi_dconv_cv_weights *w);
void mi_dconv_cv_run(const mi_dconv_job *j, const mi_dconv_cv_weights *w, int64_t begin, int64_t end);
/* The same on AVX2 + FMA (dconv_cv_avx2.c; where mi_isa_level() is
 * MI_ISA_AVX2): the same packed weights, plain NC(D)HW jobs only (chan16
 * false, no channel-blocked source). */
int64_t mi_dconv_cv_items_avx2(const mi_dconv_job *j, const mi_dconv_cv_weights *w);
void mi_dconv_cv_run_avx2(const mi_dconv_job *j, const mi_dconv_cv_weights *w, int64_t begin, int64_t end);
/* bf16 mode (dconv_cv_bf16.c; where mi_dconv_bf16_supported()): the
 * steps are channel pairs at a tap, x the pair planes of
 * mi_dconv_bf16_pairs and toff indexing them, the weights from
 * mi_dconv_cv_pack_bf16 (W [M, C, taps] as K = pairs x taps steps, in W's
 * own order or, blocked, in the order of a source of blocked pairs
 * (mi_dconv_bf16_pairs_padded), as mi_dconv_cv_pack's taps > 1, skipped
 * taps then allowed); plain NC(D)HW outputs (chan16 false). */
bool mi_dconv_cv_pack_bf16(const float *w, int64_t M, int64_t C, int64_t ksz, bool blocked, mi_dconv_cv_weights *out);
int64_t mi_dconv_cv_items_bf16(const mi_dconv_job *j, const mi_dconv_cv_weights *w);
void mi_dconv_cv_run_bf16(const mi_dconv_job *j, const mi_dconv_cv_weights *w, int64_t begin, int64_t end);

/* ---- NCHW16c <-> NCHW (chan16_avx512.c), one 16-channel block of n
 * positions: channel c's values at plain + c * n (mi_chan16_block: plain +
 * c * cstride), position p's 16 channels at blk + 16 p.  mi_chan16_block
 * adds res (blocked as blk; NULL: none), then max(0, .) if relu. */
void mi_chan16_unblock(const float *blk, int64_t n, float *plain);
void mi_chan16_block(const float *plain, int64_t n, int64_t cstride, const float *res, bool relu, float *blk);

/* Whether the packed weights suit the kernel (AVX-512 layout). */
bool mi_dconv_supported(const mi_gemm_packed_view *a);
/* Work items of a job, and running a range of them (any split over threads). */
int64_t mi_dconv_items(const mi_dconv_job *j);
void mi_dconv_run(const mi_dconv_job *j, int64_t begin, int64_t end);

/* ---- the same job on AVX2 + FMA (dconv_avx2.c): weights packed for the
 * AVX2 SGEMM (6-row panels), tiles of 4 channels x 24 positions; mgroup is
 * taken up to whole pairs of panels (8 -> 12, 16 -> 24, ...).  Only where
 * mi_isa_level() is MI_ISA_AVX2. */
bool mi_dconv_supported_avx2(const mi_gemm_packed_view *a);
int64_t mi_dconv_items_avx2(const mi_dconv_job *j);
void mi_dconv_run_avx2(const mi_dconv_job *j, int64_t begin, int64_t end);

#endif
