/* ConvTranspose with strides equal to the kernel and no padding (a U-Net's
 * upsampling), computed straight into the output (AVX-512).
 *
 * There every output value is one input position times one tap:
 *   y[m, iz*k0 + a, iy*k1 + b, ix*k2 + c] = sum_ch w[ch, m, a, b, c] * x[ch, iz, iy, ix]
 * so 16 input positions make 16 * k2 values of each output row family
 * (m, a, b), the k2 taps interleaved.  The kernel accumulates several such
 * rows over every input channel in registers and stores each value once,
 * with the epilogue, instead of a column buffer that a scatter then copies
 * into place (the demo model's last upsampling, 23 MB of output, went
 * through 46 MB more that way).  Positions run over the whole input plane,
 * so a 6-wide row (a deep upsampling) still fills the vectors; the stores
 * split at the ends of input rows.
 *
 * Only compiled for x86-64; call nothing here unless mi_gemm_isa() is
 * MI_ISA_AVX512. */
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

/* Whether the kernel takes taps k (z, y, x). */
static inline bool mi_convt_supported(const int64_t k[3]) { return k[0] >= 1 && k[1] >= 1 && (k[2] == 1 || k[2] == 2); }

/* Output rows (m, a, b) a block of the kernel computes at once: its
 * accumulators, 12 of the 32 registers. */
static inline int64_t mi_convt_block_rows(int64_t k2) { return k2 == 1 ? 12 : 6; }

/* ONNX's weights of one group, [C, M, k0, k1, k2] (w), into dst (as many
 * floats) for the kernel: block by block of output rows, each channel's
 * weights of the block's rows side by side (read from ONNX's order, one
 * channel's weights of a block are a row apart, 8 KB in a 256-channel 2x2x2
 * layer: every channel's line in the same L1 set). */
void mi_convt_pack(const float *w, int64_t C, int64_t M, const int64_t k[3], float *dst);

/* Work items of the job: its tiles of input positions. */
int64_t mi_convt_items(const mi_convt_job *j);

/* Items [b, e): every output value their input positions make.  Items are
 * independent: split them over threads. */
void mi_convt_tiles_avx512(const mi_convt_job *j, int64_t b, int64_t e);

#endif
