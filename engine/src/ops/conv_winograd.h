/* Winograd F(4x4, 3x3) convolution (fast mode, mi_options.fast_math on the
 * CPU): stride-1, single-group 3x3 layers (2D, dilated too), and 3x3x3 ones
 * (undilated in z) as three 3x3 planes summed in the GEMMs' K (kz, channel).  Each output
 * 4x4 block costs 36 multiply-adds per input channel and kernel plane
 * instead of 144; where 4x4 blocks fit the map badly, F(3x3, 3x3) (25
 * instead of 81 per 3x3 block) or F(2x2, 3x3) (16 instead of 36 per 2x2
 * block).  Differences from the exact convolution are rounding: about 1e-5
 * of the output's scale per layer. */
#ifndef MEDINFER_OPS_CONV_WINOGRAD_H
#define MEDINFER_OPS_CONV_WINOGRAD_H

#include "../gemm/gemm.h"
#include "../internal.h"

/* The 36 (F(3x3): 25, F(2x2): 16) transformed filter matrices U_xi [M, kd*C] (columns
 * ordered kz, channel), packed once for the SGEMM micro-kernel (4x, 25/9x, 16/9x
 * the weights' memory, so made at the first call that takes the path). */
typedef struct mi_wino_weights mi_wino_weights;

/* A scheme: the tile (4, 3 or 2), with MI_WINO_BF16 or-ed in where the
 * products run in bf16 (bf16 mode, AVX512-BF16, tile 2 only): U and V
 * rounded to bf16, sums in FP32 (vdpbf16ps, the bf16 direct kernel's).  The
 * larger tiles' transforms spread the rounding too far for bf16 (a
 * 256-channel layer 2.1 % off FP32 in F(4x4), 1.1 % in F(3x3), against
 * 0.24 % for the direct bf16 convolution); F(2x2)'s points 0, 1, -1, inf
 * keep it near the direct one's. */
#define MI_WINO_BF16 16

/* From the layer's packed weights W [M, C, kd, 3, 3] (kd = 1: [M, C, 3, 3];
 * gemm.h), for a scheme (above).  NULL when this CPU's kernel level has no
 * Winograd path (the portable level) or no bf16 one, for another tile, or
 * out of memory; the caller then keeps the exact convolution. */
mi_wino_weights *mi_wino_weights_make(const mi_gemm_packed_a *w, int64_t C, int64_t kd, int scheme);
void mi_wino_weights_free(mi_wino_weights *w); /* accepts NULL */
/* The exact weights back from U (g = L U L^T with a left inverse L of G:
 * exact up to a few roundings), packed as mi_gemm_pack_a does; NULL when
 * out of memory or U is bf16 (then the caller keeps its own). */
mi_gemm_packed_a *mi_wino_weights_exact(const mi_wino_weights *w);
size_t mi_wino_weights_bytes(const mi_wino_weights *w);
int mi_wino_weights_tile(const mi_wino_weights *w); /* 4, 3 or 2 */
bool mi_wino_weights_bf16(const mi_wino_weights *w); /* products in bf16 (MI_WINO_BF16) */

/* One call: X [N, C, D, H, W] -> Y [N, M, Do, Ho, Wo] with leading pads
 * pz, py, px (D = Do = 1, pz = 0 for 2D) and dilations dy, dx (a dilated
 * layer is dy x dx interleaved undilated ones); then bias (NULL: none), the
 * residual res aligned with Y (NULL: none) and the node's activation unless
 * no_act (the caller applies it). */
typedef struct mi_wino_conv {
  const float *x, *bias, *res;
  float *y;
  int64_t N, D, H, W, Do, Ho, Wo, pz, py, px, dy, dx;
  bool no_act;
  bool pool2; /* then a 2x2 stride-2 max pool (2D, undilated, no residual): y is the pooled
                 [N, M, Ho / 2, Wo / 2] (floor); only tiles 4 and 2 align with it */
  bool bf16; /* bf16 mode would run the call otherwise, at twice the FP32 rate: Winograd only where it saves more */
} mi_wino_conv;

/* The scheme (tile 4, 3 or 2, in bf16 mode maybe 2 | MI_WINO_BF16) in
 * which the Winograd path pays for this call (enough tiles to fill the
 * GEMMs' column panels, enough channels, little edge waste; or
 * MEDINFER_WINOGRAD=0|1|2|3|4|5 says), 0 where it does not or its offsets
 * would not fit its 32-bit indices.  A call runs in its weights' scheme
 * (mi_wino_conv_run). */
int mi_wino_wanted(int64_t C, int64_t M, int64_t kd, const mi_wino_conv *c);
mi_status *mi_wino_conv_run(mi_exec *ex, const mi_node *n, const mi_wino_weights *w, const mi_wino_conv *c);

#endif
