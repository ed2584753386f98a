/* The direct convolution in bf16 with fp32 accumulation (AVX512-BF16
 * vdpbf16ps; see dconv.h).  Input channels are taken in pairs: the source
 * holds, per 32-bit lane, the bf16 values of channels 2c and 2c+1 at one
 * position, the weights per lane the matching two bf16 weights, so one
 * instruction does two multiply-adds per lane.  The driver and micro-kernel
 * are dconv_avx512.c's, compiled again here with that product.  Compiled
 * with -mavx512f -mfma -mavx512bf16; only called when CPUID reports
 * AVX512-BF16 (mi_dconv_bf16_supported). */
#include "dconv.h"

#if defined(MI_GEMM_X86) && !defined(MEDINFER_HAVE_BF16)
/* The compiler cannot target AVX512-BF16: the mode is never available. */
bool mi_dconv_bf16_supported(void) { return false; }
bool mi_dconv_bf16_pack(const float *w, int64_t M, int64_t C, int64_t ksz, mi_dconv_bf16_weights *out) {
  (void)w, (void)M, (void)C, (void)ksz, (void)out;
  return false;
}
void mi_dconv_bf16_pairs(const float *x, int64_t xstride, int64_t n, int64_t C, int64_t csz, float *dst,
                         int64_t cp0, int64_t cp1) {
  (void)x, (void)xstride, (void)n, (void)C, (void)csz, (void)dst, (void)cp0, (void)cp1;
}
int64_t mi_dconv_items_bf16(const mi_dconv_job *j) {
  (void)j;
  return 0;
}
void mi_dconv_run_bf16(const mi_dconv_job *j, int64_t begin, int64_t end) { (void)j, (void)begin, (void)end; }
#elif defined(MI_GEMM_X86)
#include <immintrin.h>
#include <stdlib.h>
#include <string.h>

#define DC_FMA(acc, a, b) _mm512_dpbf16_ps(acc, (__m512bh)(a), (__m512bh)(b))
#define DC_NAME(x) x##_bf16
#include "dconv_avx512.c"

bool mi_dconv_bf16_supported(void) {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bf16");
}

/* float -> bf16, rounding to nearest even (NaN stays NaN). */
static uint32_t bf16_bits(float f) {
  uint32_t u;
  memcpy(&u, &f, sizeof u);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (u >> 16) | 0x40u;
  return (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
}

bool mi_dconv_bf16_pack(const float *w, int64_t M, int64_t C, int64_t ksz, mi_dconv_bf16_weights *out) {
  memset(out, 0, sizeof *out);
  const int64_t kp_n = (C + 1) / 2 * ksz, kc = 192, mp = (M + MR - 1) / MR * MR;
  void *q = NULL;
  if (posix_memalign(&q, 64, (size_t)(mp * kp_n) * sizeof(uint32_t))) return false;
  uint32_t *d = q;
  const int64_t K = C * ksz;
  /* The SGEMM's packed layout (K blocks of kc rows, panels of MR rows), a
   * row being a channel pair at one tap. */
  for (int64_t pc = 0; pc < kp_n; pc += kc) {
    const int64_t n = kp_n - pc < kc ? kp_n - pc : kc;
    for (int64_t ir = 0; ir < mp; ir += MR)
      for (int64_t k = 0; k < n; k++)
        for (int64_t i = 0; i < MR; i++) {
          const int64_t m = ir + i, kp = pc + k, cp = kp / ksz, t = kp % ksz;
          const int64_t c0 = 2 * cp, c1 = c0 + 1;
          const uint32_t lo = m < M ? bf16_bits(w[m * K + c0 * ksz + t]) : 0;
          const uint32_t hi = m < M && c1 < C ? bf16_bits(w[m * K + c1 * ksz + t]) : 0;
          d[pc * mp + ir * n + k * MR + i] = lo | hi << 16;
        }
  }
  out->data = d;
  out->view = (mi_gemm_packed_view){(const float *)q, M, kp_n, mp, MR, (int)kc, "avx512-bf16", 0, NULL};
  return true;
}

/* One row: a[i], b[i] (b NULL: zeros) as pairs into dst[0..n). */
static void pair_row(const float *a, const float *b, int64_t n, float *dst) {
  uint32_t *d = (uint32_t *)dst;
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512i lo = _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(a + i)));
    const __m512i hi = b ? _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(b + i)))
                         : _mm512_setzero_si512();
    _mm512_storeu_si512(d + i, _mm512_or_si512(lo, _mm512_slli_epi32(hi, 16)));
  }
  for (; i < n; i++) d[i] = bf16_bits(a[i]) | (b ? bf16_bits(b[i]) : 0u) << 16;
}

void mi_dconv_bf16_pairs(const float *x, int64_t xstride, int64_t n, int64_t C, int64_t csz, float *dst,
                         int64_t cp0, int64_t cp1) {
  for (int64_t cp = cp0; cp < cp1; cp++)
    pair_row(x + 2 * cp * xstride, 2 * cp + 1 < C ? x + (2 * cp + 1) * xstride : NULL, n, dst + cp * csz);
}
#endif
