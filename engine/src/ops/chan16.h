/* Whole channel-blocked (NCHW16c) tensors to and from NCHW on the thread
 * pool, one 16-channel block plane (n positions) an item: for operators
 * that take blocked tensors through NCHW copies (fast mode's Winograd
 * convolution; max pooling from an NCHW input).  blocks = N * C / 16.  x86
 * only, called where the kernels run at the AVX-512 level (the blocked
 * layouts exist only there). */
#ifndef MEDINFER_OPS_CHAN16_H
#define MEDINFER_OPS_CHAN16_H

#include "../gemm/gemm.h"
#include "../internal.h"

#ifdef MI_GEMM_X86
void mi_chan16_unblock_all(mi_exec *ex, const float *blk, int64_t blocks, int64_t n, float *plain);
/* res (blocked as blk; NULL: none) added, then max(0, .) if relu. */
void mi_chan16_block_all(mi_exec *ex, const float *plain, int64_t blocks, int64_t n, const float *res, bool relu,
                         float *blk);
#endif

#endif
