/* Channel-blocked (NCHW16c) tensors to and from NCHW, one 16-channel block
 * at a time (see dconv.h): for a layer that reads or writes NCHW between
 * blocked neighbours (fast mode's Winograd layers, whose transforms work
 * on rows of one channel plane).  16 positions x 16 channels at a time,
 * transposed in registers: gathers, 16 floats apart, made such a layer's
 * copies cost a fifth of its time (FCN-ResNet50's 24x24 ones).  Compiled
 * with -mavx512f; only called when CPUID reports AVX-512F. */
#include "dconv.h"

#ifdef MI_GEMM_X86
#include <immintrin.h>

/* o[j] = column j of the 16 x 16 matrix of rows r[i]. */
static inline __attribute__((always_inline)) void transpose16(const __m512 r[16], __m512 o[16]) {
  __m512 t[16], u[16];
#pragma GCC unroll 8
  for (int i = 0; i < 16; i += 2) { /* in each 128-bit lane L: rows i, i + 1 interleaved */
    t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);     /* columns 4L, 4L + 1 */
    t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]); /* columns 4L + 2, 4L + 3 */
  }
#pragma GCC unroll 4
  for (int g = 0; g < 16; g += 4) { /* u[g + j] lane L: column 4L + j of rows g .. g + 3 */
    u[g] = _mm512_shuffle_ps(t[g], t[g + 2], _MM_SHUFFLE(1, 0, 1, 0));
    u[g + 1] = _mm512_shuffle_ps(t[g], t[g + 2], _MM_SHUFFLE(3, 2, 3, 2));
    u[g + 2] = _mm512_shuffle_ps(t[g + 1], t[g + 3], _MM_SHUFFLE(1, 0, 1, 0));
    u[g + 3] = _mm512_shuffle_ps(t[g + 1], t[g + 3], _MM_SHUFFLE(3, 2, 3, 2));
  }
#pragma GCC unroll 4
  for (int j = 0; j < 4; j++) { /* column 4L + j: lane L of u[j], u[4 + j], u[8 + j], u[12 + j] */
    const __m512 v0 = _mm512_shuffle_f32x4(u[j], u[4 + j], 0x44), v1 = _mm512_shuffle_f32x4(u[j], u[4 + j], 0xee);
    const __m512 w0 = _mm512_shuffle_f32x4(u[8 + j], u[12 + j], 0x44);
    const __m512 w1 = _mm512_shuffle_f32x4(u[8 + j], u[12 + j], 0xee);
    o[j] = _mm512_shuffle_f32x4(v0, w0, 0x88);
    o[4 + j] = _mm512_shuffle_f32x4(v0, w0, 0xdd);
    o[8 + j] = _mm512_shuffle_f32x4(v1, w1, 0x88);
    o[12 + j] = _mm512_shuffle_f32x4(v1, w1, 0xdd);
  }
}

static inline __mmask16 first(int64_t k) { return k >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << k) - 1u); }

void mi_chan16_unblock(const float *blk, int64_t n, float *plain) {
  for (int64_t p = 0; p < n; p += 16) {
    const int64_t k = n - p < 16 ? n - p : 16;
    __m512 r[16], o[16];
#pragma GCC unroll 16
    for (int i = 0; i < 16; i++) r[i] = i < k ? _mm512_loadu_ps(blk + (p + i) * 16) : _mm512_setzero_ps();
    transpose16(r, o);
#pragma GCC unroll 16
    for (int c = 0; c < 16; c++) _mm512_mask_storeu_ps(plain + c * n + p, first(k), o[c]);
  }
}

void mi_chan16_block(const float *plain, int64_t n, int64_t cstride, const float *res, bool relu, float *blk) {
  const __m512 zero = _mm512_setzero_ps();
  for (int64_t p = 0; p < n; p += 16) {
    const int64_t k = n - p < 16 ? n - p : 16;
    __m512 r[16], o[16];
#pragma GCC unroll 16
    for (int c = 0; c < 16; c++) r[c] = _mm512_maskz_loadu_ps(first(k), plain + c * cstride + p);
    transpose16(r, o);
#pragma GCC unroll 16
    for (int i = 0; i < 16; i++) { /* unrolled: o stays in registers; positions past k not stored */
      __m512 v = o[i];
      if (res) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(i < k ? 0xffff : 0, res + (p + i) * 16));
      if (relu) v = _mm512_max_ps(v, zero);
      _mm512_mask_storeu_ps(blk + (p + i) * 16, i < k ? 0xffff : 0, v);
    }
  }
}
#endif
