/* ConvTranspose straight into the output (convt.h): the weights' packing
 * and the driver over tiles and blocks of rows, for both kernels. */
#include "convt.h"

#include <string.h>

#ifdef MI_GEMM_X86

void mi_convt_pack(const float *w, int64_t C, int64_t M, const int64_t k[3], float *dst) {
  const int64_t KX = k[2], R = M * k[0] * k[1], NB = mi_convt_block_rows(KX);
  for (int64_t r0 = 0; r0 < R; r0 += NB) {
    const int64_t nb = R - r0 < NB ? R - r0 : NB;
    for (int64_t c = 0; c < C; c++)
      memcpy(dst + r0 * KX * C + c * nb * KX, w + (c * R + r0) * KX, (size_t)(nb * KX) * sizeof(float));
  }
}

int64_t mi_convt_items(const mi_convt_job *j) {
  const int64_t in_sz = j->in[0] * j->in[1] * j->in[2];
  return (in_sz + j->tile - 1) / j->tile;
}

void mi_convt_tiles(const mi_convt_job *j, int64_t b, int64_t e) {
  const mi_convt_block_fn block = mi_isa_level() == MI_ISA_AVX512 ? mi_convt_block_avx512 : mi_convt_block_avx2;
  const int64_t k0 = j->k[0], k1 = j->k[1], KX = j->k[2], taps = k0 * k1, R = j->M * taps;
  const int64_t in_sz = j->in[0] * j->in[1] * j->in[2], out_sz = in_sz * taps * KX;
  const mi_convt_layout l = {j->in[2], j->in[1], k0, k1, j->in[1] * k1, j->in[2] * KX};
  const mi_gemm_epilogue *epi = j->epi;
  const bool simple = !epi || epi->simple, relu = epi && epi->simple && epi->relu;
  /* the residual, read at the output's offsets */
  const float *res = simple && epi && epi->res ? epi->res + (j->y - epi->c0) : NULL;
  const int NB = (int)mi_convt_block_rows(KX);
  for (int64_t it = b; it < e; it++) {
    const int64_t p0 = it * j->tile, p1 = p0 + j->tile < in_sz ? p0 + j->tile : in_sz;
    for (int64_t r0 = 0; r0 < R; r0 += NB) {
      const int nb = (int)(R - r0 < NB ? R - r0 : NB);
      mi_convt_rows rb;
      for (int i = 0; i < nb; i++) {
        const int64_t r = r0 + i, m = r / taps, a = r % taps / k1, bb = r % k1;
        rb.m[i] = m;
        rb.off[i] = m * out_sz + (a * l.out1 + bb) * l.ow;
        rb.bias[i] = simple && epi && epi->bias ? epi->bias[m] : 0.f;
      }
      block(j, &l, p0, p1, j->w + r0 * KX * j->C, nb * KX, &rb, res, relu, nb);
      if (!simple) { /* the rest of the epilogue, run by run, while the rows are in the caches */
        mi_convt_cursor c = mi_convt_cursor_at(&l, p0);
        for (int64_t p = p0; p < p1;) {
          const int64_t len = mi_convt_run_len(&l, &c, p1 - p), o = mi_convt_out_offset(&l, &c, (int)KX);
          for (int i = 0; i < nb; i++) {
            const int64_t at = rb.off[i] + o;
            epi->fn(epi->ctx, rb.m[i], 1, at - rb.m[i] * out_sz, len * KX, j->y + at, out_sz);
          }
          p += len;
          mi_convt_advance(&l, &c, len);
        }
      }
    }
  }
}
#endif
