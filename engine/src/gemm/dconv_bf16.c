/* The direct convolution in bf16 with fp32 accumulation (AVX512-BF16
 * vdpbf16ps; see dconv.h).  Input channels are taken in pairs: the source
 * holds, per 32-bit lane, the bf16 values of channels 2c and 2c+1 at one
 * position, the weights per lane the matching two bf16 weights, so one
 * instruction does two multiply-adds per lane.  The driver and micro-kernel
 * are dconv_avx512.c's, compiled again here with that product.  Compiled
 * with -mavx512f -mfma -mavx512bf16; only called when CPUID reports
 * AVX512-BF16 (mi_dconv_bf16_supported). */
#include "dconv.h"
#include "medinfer/hugepages.h"

#include <string.h>

/* float -> bf16, rounding to nearest even (NaN stays NaN). */
static uint32_t bf16_bits(float f) {
  uint32_t u;
  memcpy(&u, &f, sizeof u);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (u >> 16) | 0x40u;
  return (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
}

uint16_t mi_bf16_round(float f) { return (uint16_t)bf16_bits(f); }

void mi_bf16_from_f32(const float *src, int64_t n, uint16_t *dst) {
  for (int64_t i = 0; i < n; i++) dst[i] = (uint16_t)bf16_bits(src[i]);
}

#if defined(MI_GEMM_X86) && !defined(MEDINFER_HAVE_BF16)
/* The compiler cannot target AVX512-BF16: the mode is never available. */
bool mi_dconv_bf16_supported(void) { return false; }
bool mi_dconv_bf16_pack(const float *w, int64_t M, int64_t C, int64_t ksz, mi_dconv_bf16_weights *out) {
  (void)w, (void)M, (void)C, (void)ksz, (void)out;
  return false;
}
void mi_bf16_pair_lanes(const float *lo, const float *hi, int n, float *dst, int64_t ds) {
  (void)lo, (void)hi, (void)n, (void)dst, (void)ds;
}
void mi_dconv_bf16_pairs(const float *x, int64_t xstride, int64_t n, int64_t C, const float *pre, bool relu,
                         int64_t csz, float *dst, int64_t cp0, int64_t cp1) {
  (void)x, (void)xstride, (void)n, (void)C, (void)pre, (void)relu, (void)csz, (void)dst, (void)cp0, (void)cp1;
}
void mi_dconv_bf16_pairs_padded(const float *x, int64_t xstride, int64_t C, const float *pre, bool relu,
                                const mi_dconv_pad *pad, int64_t csz, bool blocked, float *dst, int64_t cp0,
                                int64_t cp1, int64_t r0, int64_t r1) {
  (void)x, (void)xstride, (void)C, (void)pre, (void)relu, (void)pad, (void)csz, (void)blocked, (void)dst, (void)cp0;
  (void)cp1, (void)r0, (void)r1;
}
bool mi_dconv_cv_pack_bf16(const float *w, int64_t M, int64_t C, int64_t ksz, bool blocked, mi_dconv_cv_weights *out) {
  (void)w, (void)M, (void)C, (void)ksz, (void)blocked, (void)out;
  return false;
}
void mi_dconv_bf16_colpairs(const float *x, int64_t H, int64_t W, int64_t top, int64_t left, int64_t hr,
                            int64_t ww, float *dst, int64_t r0, int64_t r1) {
  (void)x, (void)H, (void)W, (void)top, (void)left, (void)hr, (void)ww, (void)dst, (void)r0, (void)r1;
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

/* Row m's weights of channel pair kp / ksz at tap kp % ksz of W [M, C,
 * ksz]: channel 2c in the low half, 2c + 1 (zero past C) in the high one. */
static uint32_t weight_pair(const float *w, int64_t C, int64_t ksz, int64_t m, int64_t kp) {
  const int64_t c0 = kp / ksz * 2, t = kp % ksz;
  const float *r = w + m * C * ksz + t;
  return bf16_bits(r[c0 * ksz]) | (c0 + 1 < C ? bf16_bits(r[(c0 + 1) * ksz]) : 0u) << 16;
}

bool mi_dconv_bf16_pack(const float *w, int64_t M, int64_t C, int64_t ksz, mi_dconv_bf16_weights *out) {
  memset(out, 0, sizeof *out);
  const int64_t kp_n = (C + 1) / 2 * ksz, kc = 192, mp = (M + MR - 1) / MR * MR;
  uint32_t *d = mi_alloc_huge((size_t)(mp * kp_n) * sizeof(uint32_t));
  if (!d) return false;
  /* The SGEMM's packed layout (K blocks of kc rows, panels of MR rows), a
   * row being a channel pair at one tap. */
  for (int64_t pc = 0; pc < kp_n; pc += kc) {
    const int64_t n = kp_n - pc < kc ? kp_n - pc : kc;
    for (int64_t ir = 0; ir < mp; ir += MR)
      for (int64_t k = 0; k < n; k++)
        for (int64_t i = 0; i < MR; i++)
          d[pc * mp + ir * n + k * MR + i] = ir + i < M ? weight_pair(w, C, ksz, ir + i, pc + k) : 0;
  }
  out->data = d;
  out->view = (mi_gemm_packed_view){(const float *)d, M, kp_n, mp, MR, (int)kc, "avx512-bf16", 0, NULL};
  return true;
}

bool mi_dconv_cv_pack_bf16(const float *w, int64_t M, int64_t C, int64_t ksz, bool blocked, mi_dconv_cv_weights *out) {
  const int64_t kp_n = (C + 1) / 2 * ksz;
  uint32_t *p = malloc((size_t)(M * kp_n) * sizeof *p);
  if (!p) return false;
  /* [M][pair][tap], each a 32-bit pair; the packing moves them as floats, bits unchanged */
  for (int64_t m = 0; m < M; m++)
    for (int64_t kp = 0; kp < kp_n; kp++) p[m * kp_n + kp] = weight_pair(w, C, ksz, m, kp);
  const bool ok = mi_dconv_cv_pack((const float *)(const void *)p, M, kp_n, blocked ? ksz : 0, out);
  free(p);
  return ok;
}

/* v * s + t, then max(0, .) if relu (AFF false: v as it is). */
static inline __attribute__((always_inline)) __m512 aff16(const bool AFF, __m512 v, __m512 s, __m512 t, bool relu) {
  if (!AFF) return v;
  v = _mm512_fmadd_ps(v, s, t);
  return relu ? _mm512_max_ps(v, _mm512_setzero_ps()) : v;
}
static inline __attribute__((always_inline)) float aff1(const bool AFF, float v, float s, float t, bool relu) {
  if (!AFF) return v;
  v = v * s + t;
  return relu && !(v > 0.f) ? 0.f : v;
}

/* Two channels' 16 values as 16 pairs (nearest even). */
static inline __m512i pairs16(__m512 lo, __m512 hi) {
  return _mm512_or_si512(_mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(lo)),
                         _mm512_slli_epi32(_mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(hi)), 16));
}

void mi_bf16_pair_lanes(const float *lo, const float *hi, int n, float *dst, int64_t ds) {
  for (int e = 0; e < n; e++)
    _mm512_storeu_si512(dst + e * ds, pairs16(_mm512_loadu_ps(lo + 16 * e),
                                              hi ? _mm512_loadu_ps(hi + 16 * e) : _mm512_setzero_ps()));
}

/* One row: a[i], b[i] (b NULL: zeros), each through its affine (AFF), as
 * pairs into dst[0..n). */
static inline __attribute__((always_inline)) void pair_row(const bool AFF, const float *a, const float *b, int64_t n,
                                                         const float *sa, const float *sb, bool relu, float *dst) {
  uint32_t *d = (uint32_t *)dst;
  const __m512 vsa = _mm512_set1_ps(sa[0]), vta = _mm512_set1_ps(sa[1]);
  const __m512 vsb = _mm512_set1_ps(sb[0]), vtb = _mm512_set1_ps(sb[1]);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512 va = aff16(AFF, _mm512_loadu_ps(a + i), vsa, vta, relu);
    const __m512 vb = b ? aff16(AFF, _mm512_loadu_ps(b + i), vsb, vtb, relu) : _mm512_setzero_ps();
    _mm512_storeu_si512(d + i, pairs16(va, vb));
  }
  for (; i < n; i++)
    d[i] = bf16_bits(aff1(AFF, a[i], sa[0], sa[1], relu)) |
           (b ? bf16_bits(aff1(AFF, b[i], sb[0], sb[1], relu)) : 0u) << 16;
}

void mi_dconv_bf16_colpairs(const float *x, int64_t H, int64_t W, int64_t top, int64_t left, int64_t hr,
                            int64_t ww, float *dst, int64_t r0, int64_t r1) {
  const __m512i iota = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
  const __m512i vw = _mm512_set1_epi32((int)W);
  for (int64_t R = r0; R < r1; R++) {
    const int64_t c = R / (2 * hr), py = R / hr % 2, iy = 2 * (R % hr) + py - top;
    uint32_t *d = (uint32_t *)(void *)dst + R * ww;
    if (iy < 0 || iy >= H) {
      memset(d, 0, (size_t)ww * sizeof *d);
      continue;
    }
    const float *row = x + (c * H + iy) * W;
    for (int64_t w0 = 0; w0 < ww; w0 += 16) {
      const int64_t ix = 2 * w0 - left; /* the input column of the block's first padded column */
      __mmask16 m[2];
      for (int h = 0; h < 2; h++) {
        const __m512i col = _mm512_add_epi32(iota, _mm512_set1_epi32((int)(ix + 16 * h)));
        m[h] = _mm512_mask_cmplt_epi32_mask(_mm512_cmpge_epi32_mask(col, _mm512_setzero_si512()), col, vw);
      }
      /* columns ix .. ix + 31 as 32 bf16 in order: words of two columns each */
      const __m512 lo = _mm512_maskz_loadu_ps(m[0], row + ix), hi = _mm512_maskz_loadu_ps(m[1], row + ix + 16);
      const int64_t nw = ww - w0 < 16 ? ww - w0 : 16;
      _mm512_mask_storeu_epi32(d + w0, (__mmask16)(nw == 16 ? 0xffffu : (1u << nw) - 1u),
                               (__m512i)_mm512_cvtne2ps_pbh(hi, lo));
    }
  }
}

void mi_dconv_bf16_pairs(const float *x, int64_t xstride, int64_t n, int64_t C, const float *pre, bool relu,
                         int64_t csz, float *dst, int64_t cp0, int64_t cp1) {
  for (int64_t cp = cp0; cp < cp1; cp++) {
    const int64_t c0 = 2 * cp, c1 = c0 + 1 < C ? c0 + 1 : c0;
    const float *a = x + c0 * xstride, *b = c0 + 1 < C ? x + c1 * xstride : NULL;
    if (pre) {
      const float sa[2] = {pre[c0], pre[C + c0]}, sb[2] = {pre[c1], pre[C + c1]};
      pair_row(true, a, b, n, sa, sb, relu, dst + cp * csz);
    } else {
      const float one[2] = {1.f, 0.f};
      pair_row(false, a, b, n, one, one, false, dst + cp * csz);
    }
  }
}

/* Lane t of a 16-position block of a phase row: inside for lo <= t < hi,
 * reading column t * sx + off of the input row (sx 1 or 2); zero outside,
 * the prologue on the inside only.  Masked loads: no element outside the
 * row is read. */
static inline __m512 padded_block(const float *row, int64_t t0, int64_t lo, int64_t hi, int64_t sx, int64_t off,
                                  const float *pre, int64_t C, int64_t c, bool relu) {
  const int64_t a = lo > t0 ? lo - t0 : 0, b = hi - t0 < 16 ? hi - t0 : 16;
  if (b <= a) return _mm512_setzero_ps();
  const __mmask16 m = (__mmask16)(((1u << (b - a)) - 1u) << a);
  const float *s = row + t0 * sx + off;
  __m512 v;
  if (sx == 1) {
    v = _mm512_maskz_loadu_ps(m, s);
  } else { /* the even elements of 32 */
    uint32_t e = 0;
    for (int64_t k = a; k < b; k++) e |= 1u << (2 * k);
    const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
    v = _mm512_permutex2var_ps(_mm512_maskz_loadu_ps((__mmask16)e, s), even,
                               _mm512_maskz_loadu_ps((__mmask16)(e >> 16), s + 16));
  }
  if (!pre) return v;
  v = _mm512_fmadd_ps(v, _mm512_set1_ps(pre[c]), _mm512_set1_ps(pre[C + c]));
  if (relu) v = _mm512_max_ps(v, _mm512_setzero_ps());
  return _mm512_maskz_mov_ps(m, v);
}

/* Positions [t0, t0 + n) of padded row R of pair cp's plane into d. */
static void pair_row_padded(const float *x, int64_t xstride, int64_t C, const float *pre, bool relu,
                            const mi_dconv_pad *pad, int64_t R, int64_t cp, int64_t t0, int64_t n, uint32_t *d) {
  const int64_t sx = pad->sx, per_z = pad->sy * sx * pad->ph, c0 = 2 * cp, c1 = c0 + 1;
  const int64_t phase = R / pad->ph % (pad->sy * sx), py = phase / sx, px = phase % sx;
  const int64_t iz = pad->z0 + R / per_z - pad->top[0], iy = R % pad->ph * pad->sy + py - pad->top[1];
  if (iz < 0 || iz >= pad->in[0] || iy < 0 || iy >= pad->in[1]) {
    memset(d, 0, (size_t)n * sizeof *d);
    return;
  }
  /* column t reads input column t sx + off: inside for t in [lo, hi) */
  const int64_t off = px - pad->top[2], lo = off >= 0 ? 0 : (-off + sx - 1) / sx;
  const int64_t hi = pad->in[2] - off <= 0 ? 0 : (pad->in[2] - off + sx - 1) / sx;
  const float *a = x + c0 * xstride + (iz * pad->in[1] + iy) * pad->in[2], *b = a + xstride;
  for (int64_t t = t0; t < t0 + n; t += 16) {
    const int64_t k = t0 + n - t < 16 ? t0 + n - t : 16;
    const __m512 va = padded_block(a, t, lo, hi, sx, off, pre, C, c0, relu);
    const __m512 vb = c1 < C ? padded_block(b, t, lo, hi, sx, off, pre, C, c1, relu) : _mm512_setzero_ps();
    _mm512_mask_storeu_epi32(d + (t - t0), (__mmask16)(k == 16 ? 0xffffu : (1u << k) - 1u), pairs16(va, vb));
  }
}

void mi_dconv_bf16_pairs_padded(const float *x, int64_t xstride, int64_t C, const float *pre, bool relu,
                                const mi_dconv_pad *pad, int64_t csz, bool blocked, float *dst, int64_t cp0,
                                int64_t cp1, int64_t r0, int64_t r1) {
  const int64_t pw = pad->pw;
  uint32_t *d = (uint32_t *)dst;
  if (!blocked) {
    for (int64_t cp = cp0; cp < cp1; cp++)
      for (int64_t R = r0; R < r1; R++) pair_row_padded(x, xstride, C, pre, relu, pad, R, cp, 0, pw, d + cp * csz + R * pw);
    return;
  }
  /* 16 pairs' rows a chunk at a time, then each position's 16 pairs one 64-byte row */
  enum { CHUNK = 256 };
  uint32_t rows[16][CHUNK] __attribute__((aligned(64)));
  for (int64_t p = cp0 / 16; p < cp1 / 16; p++)
    for (int64_t R = r0; R < r1; R++)
      for (int64_t t0 = 0; t0 < pw; t0 += CHUNK) {
        const int64_t n = pw - t0 < CHUNK ? pw - t0 : CHUNK;
        for (int i = 0; i < 16; i++) pair_row_padded(x, xstride, C, pre, relu, pad, R, 16 * p + i, t0, n, rows[i]);
        mi_chan16_block((const float *)(const void *)rows, n, CHUNK, NULL, false,
                        (float *)(void *)(d + (p * csz + R * pw + t0) * 16));
      }
}
#endif
