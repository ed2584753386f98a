/* Winograd F(tile x tile, 3x3) tile transforms (Lavin & Gray).  F(4x4, 3x3)
 * (interpolation points 0, 1, -1, 2, -2, inf): a 6x6 input patch d becomes
 * V = B^T d B, the 36 products U .* V with the transformed 3x3 filter
 * U = G g G^T are summed over channels (36 GEMMs, ops/conv_winograd.c), and
 * A^T M A turns each 6x6 sum into a 4x4 block of outputs.  F(3x3, 3x3)
 * (points 0, 1, -1, 2, inf) does the same with 5x5 patches, 25 products and
 * 3x3 blocks, F(2x2, 3x3) (points 0, 1, -1, inf) with 4x4 patches, 16
 * products and 2x2 blocks: for maps that 4x4 blocks fit badly (a
 * dilation-4 layer's 6x6 sub-grids, 12x12 and 7x7 maps).
 *
 * The transforms work on 16 tiles ("lanes") of one channel plane at once;
 * transform element xi = P * row + column (P = tile + 2 points) goes to
 * dst[xi * xs + lane].
 * wino_generic.c is portable C (wino_avx2.c the same for AVX2), wino_avx512.c
 * AVX-512F (gathers and scatters): call those only when mi_isa_level() is
 * their level. */
#ifndef MEDINFER_GEMM_WINO_H
#define MEDINFER_GEMM_WINO_H

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MI_WINO_LANES 16

/* Input tiles: lane l's patch starts at plane + off[l] (row y0[l], column
 * x0[l] of an H x W plane) and takes every dy-th row and dx-th column (a
 * dilated convolution's taps); taps outside the plane read zero.  Lanes
 * >= n are written as zeros. */
typedef struct mi_wino_in_lanes {
  int32_t off[MI_WINO_LANES], y0[MI_WINO_LANES], x0[MI_WINO_LANES];
  int n;
} mi_wino_in_lanes;

/* Output tiles: lane l's 4x4 (3x3, 2x2) block starts at plane + off[l],
 * every dy-th row and dx-th column (dilated: one of the interleaved
 * sub-grids), of which rows[l] x cols[l] (0 up to the block's side each)
 * lie inside the output.
 * Lanes >= n are skipped. */
typedef struct mi_wino_out_lanes {
  int32_t off[MI_WINO_LANES], rows[MI_WINO_LANES], cols[MI_WINO_LANES];
  int n;
} mi_wino_out_lanes;

/* What the output transform applies before storing: bias, a residual read
 * at the same offsets (NULL: none), then ReLU, or fn on the block's values
 * of the 16 lanes (other activations; NULL: none).  pool2 (tile 4 or 2,
 * undilated, no residual): then a 2x2 stride-2 max pool of each block, and
 * the (tile / 2)^2 maxima are what is stored: the lanes' off, rows and cols
 * then place the pooled blocks in the pooled plane (Wo its row length). */
typedef struct mi_wino_epi {
  float bias;
  const float *res;
  bool relu;
  void (*fn)(const void *ctx, float *v, int64_t n);
  const void *ctx;
  bool pool2;
} mi_wino_epi;

/* The transforms of F(tile x tile, 3x3), tile 4, 3 or 2: P = tile + 2
 * points, patches of P x P, m holding P^2 sums per lane at m[xi * ms +
 * lane]; Wo: the output's row length. */
void mi_wino_in_generic(int tile, const float *plane, int64_t H, int64_t W, int64_t dy, int64_t dx,
                        const mi_wino_in_lanes *L, float *dst, int64_t xs);
void mi_wino_out_generic(int tile, const float *m, int64_t ms, const mi_wino_out_lanes *L, int64_t Wo, int64_t dy,
                         int64_t dx, const mi_wino_epi *e, float *plane);
#if defined(__x86_64__) || defined(__i386__)
void mi_wino_in_avx2(int tile, const float *plane, int64_t H, int64_t W, int64_t dy, int64_t dx,
                     const mi_wino_in_lanes *L, float *dst, int64_t xs);
void mi_wino_out_avx2(int tile, const float *m, int64_t ms, const mi_wino_out_lanes *L, int64_t Wo, int64_t dy,
                      int64_t dx, const mi_wino_epi *e, float *plane);
void mi_wino_in_avx512(int tile, const float *plane, int64_t H, int64_t W, int64_t dy, int64_t dx,
                       const mi_wino_in_lanes *L, float *dst, int64_t xs);
void mi_wino_out_avx512(int tile, const float *m, int64_t ms, const mi_wino_out_lanes *L, int64_t Wo, int64_t dy,
                        int64_t dx, const mi_wino_epi *e, float *plane);
#endif

/* U = G g G^T for one 3x3 filter g (row-major), as u[(tile + 2)^2]. */
void mi_wino_filter(int tile, const float *g, float *u);

#ifdef __cplusplus
}
#endif

#endif
