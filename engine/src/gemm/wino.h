/* Winograd F(4x4, 3x3) tile transforms (Lavin & Gray; interpolation points
 * 0, 1, -1, 2, -2, inf): a 6x6 input patch d becomes V = B^T d B, the
 * 36 products U .* V with the transformed 3x3 filter U = G g G^T are
 * summed over channels (36 GEMMs, ops/conv_winograd.c), and A^T M A turns
 * each 6x6 sum into a 4x4 block of outputs.  F(3x3, 3x3) (points 0, 1, -1,
 * 2, inf; the mi_wino3_ functions) does the same with 5x5 patches, 25
 * products and 3x3 blocks, and F(2x2, 3x3) (points 0, 1, -1, inf;
 * mi_wino2_) with 4x4 patches, 16 products and 2x2 blocks: for maps that
 * 4x4 blocks fit badly (a dilation-4 layer's 6x6 sub-grids, 36 blocks of a
 * 24x24 map where the products work on 16 at a time).
 *
 * The transforms work on 16 tiles ("lanes") of one channel plane at once;
 * transform element xi = alpha * row + column (alpha: 6, 5 in F(3x3), 4 in F(2x2))
 * goes to dst[xi * xs + lane].
 * wino_generic.c is portable C (wino_avx2.c the same for AVX2), wino_avx512.c
 * AVX-512F (gathers and scatters): call those only when mi_gemm_isa() is
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
 * of the 16 lanes (other activations; NULL: none). */
typedef struct mi_wino_epi {
  float bias;
  const float *res;
  bool relu;
  void (*fn)(const void *ctx, float *v, int64_t n);
  const void *ctx;
} mi_wino_epi;

void mi_wino_in_generic(const float *plane, int64_t H, int64_t W, int64_t dy, int64_t dx, const mi_wino_in_lanes *L,
                        float *dst, int64_t xs);
/* m: the 36 sums of each lane at m[xi * ms + lane]; Wo: output row length. */
void mi_wino_out_generic(const float *m, int64_t ms, const mi_wino_out_lanes *L, int64_t Wo, int64_t dy, int64_t dx,
                         const mi_wino_epi *e, float *plane);
#if defined(__x86_64__) || defined(__i386__)
void mi_wino_in_avx2(const float *plane, int64_t H, int64_t W, int64_t dy, int64_t dx, const mi_wino_in_lanes *L,
                     float *dst, int64_t xs);
void mi_wino_out_avx2(const float *m, int64_t ms, const mi_wino_out_lanes *L, int64_t Wo, int64_t dy, int64_t dx,
                      const mi_wino_epi *e, float *plane);
void mi_wino_in_avx512(const float *plane, int64_t H, int64_t W, int64_t dy, int64_t dx, const mi_wino_in_lanes *L,
                       float *dst, int64_t xs);
void mi_wino_out_avx512(const float *m, int64_t ms, const mi_wino_out_lanes *L, int64_t Wo, int64_t dy, int64_t dx,
                        const mi_wino_epi *e, float *plane);
#endif

/* U = G g G^T for one 3x3 filter g (row-major), as u[36]. */
void mi_wino_filter(const float *g, float *u);

/* F(2x2, 3x3): the same contracts, 4x4 patches, m holding 16 sums per lane. */
void mi_wino2_in_generic(const float *plane, int64_t H, int64_t W, int64_t dy, int64_t dx, const mi_wino_in_lanes *L,
                         float *dst, int64_t xs);
void mi_wino2_out_generic(const float *m, int64_t ms, const mi_wino_out_lanes *L, int64_t Wo, int64_t dy, int64_t dx,
                          const mi_wino_epi *e, float *plane);
#if defined(__x86_64__) || defined(__i386__)
void mi_wino2_in_avx2(const float *plane, int64_t H, int64_t W, int64_t dy, int64_t dx, const mi_wino_in_lanes *L,
                      float *dst, int64_t xs);
void mi_wino2_out_avx2(const float *m, int64_t ms, const mi_wino_out_lanes *L, int64_t Wo, int64_t dy, int64_t dx,
                       const mi_wino_epi *e, float *plane);
void mi_wino2_in_avx512(const float *plane, int64_t H, int64_t W, int64_t dy, int64_t dx, const mi_wino_in_lanes *L,
                        float *dst, int64_t xs);
void mi_wino2_out_avx512(const float *m, int64_t ms, const mi_wino_out_lanes *L, int64_t Wo, int64_t dy, int64_t dx,
                         const mi_wino_epi *e, float *plane);
#endif
/* U = G g G^T of F(2x2, 3x3), as u[16]. */
void mi_wino2_filter(const float *g, float *u);

/* F(3x3, 3x3): 5x5 patches, m holding 25 sums per lane. */
void mi_wino3_in_generic(const float *plane, int64_t H, int64_t W, int64_t dy, int64_t dx, const mi_wino_in_lanes *L,
                         float *dst, int64_t xs);
void mi_wino3_out_generic(const float *m, int64_t ms, const mi_wino_out_lanes *L, int64_t Wo, int64_t dy, int64_t dx,
                          const mi_wino_epi *e, float *plane);
#if defined(__x86_64__) || defined(__i386__)
void mi_wino3_in_avx2(const float *plane, int64_t H, int64_t W, int64_t dy, int64_t dx, const mi_wino_in_lanes *L,
                      float *dst, int64_t xs);
void mi_wino3_out_avx2(const float *m, int64_t ms, const mi_wino_out_lanes *L, int64_t Wo, int64_t dy, int64_t dx,
                       const mi_wino_epi *e, float *plane);
void mi_wino3_in_avx512(const float *plane, int64_t H, int64_t W, int64_t dy, int64_t dx, const mi_wino_in_lanes *L,
                        float *dst, int64_t xs);
void mi_wino3_out_avx512(const float *m, int64_t ms, const mi_wino_out_lanes *L, int64_t Wo, int64_t dy, int64_t dx,
                         const mi_wino_epi *e, float *plane);
#endif
/* U = G g G^T of F(3x3, 3x3), as u[25]. */
void mi_wino3_filter(const float *g, float *u);

#ifdef __cplusplus
}
#endif

#endif
