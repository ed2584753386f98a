/* Whole tensors between NCHW16c and NCHW (see chan16.h). */
#include "chan16.h"

#ifdef MI_GEMM_X86
#include "../gemm/dconv.h"

typedef struct chan16_ctx {
  const float *src, *res;
  float *dst;
  int64_t n; /* positions per plane */
  bool relu;
} chan16_ctx;

static void unblock_items(void *vctx, int64_t b, int64_t e) {
  const chan16_ctx *c = vctx;
  for (int64_t i = b; i < e; i++) mi_chan16_unblock(c->src + i * 16 * c->n, c->n, c->dst + i * 16 * c->n);
}

static void block_items(void *vctx, int64_t b, int64_t e) {
  const chan16_ctx *c = vctx;
  for (int64_t i = b; i < e; i++)
    mi_chan16_block(c->src + i * 16 * c->n, c->n, c->n, c->res ? c->res + i * 16 * c->n : NULL, c->relu,
                    c->dst + i * 16 * c->n);
}

void mi_chan16_unblock_all(mi_exec *ex, const float *blk, int64_t blocks, int64_t n, float *plain) {
  chan16_ctx c = {blk, NULL, plain, n, false};
  mi_parallel_for(ex, blocks, 1, unblock_items, &c);
}

void mi_chan16_block_all(mi_exec *ex, const float *plain, int64_t blocks, int64_t n, const float *res, bool relu,
                         float *blk) {
  chan16_ctx c = {plain, res, blk, n, relu};
  mi_parallel_for(ex, blocks, 1, block_items, &c);
}
#endif
