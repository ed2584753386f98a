/* bf16 direct convolution on AMX tiles (see dconv.h): per work item, four
 * 16 x 16 fp32 accumulator tiles (two 16-position input blocks times two
 * 16-channel weight blocks); each step loads two input tiles (16 positions
 * x 16 channel pairs of one tap: 1 KB in a row of the pair-blocked copy)
 * and two weight tiles (16 pairs x 16 channels, pre-packed) and runs
 * tdpbf16ps.  Input tiles whose 16 rows were pair planes a plane apart (the
 * first layout) ran VGG's 224x224 layer at 226 GFLOP/s: rows a page or more
 * apart each.  Compiled with -mamx-tile -mamx-bf16 -mavx512f; only called
 * when mi_dconv_amx_supported(). */
#include "dconv.h"
#include "medinfer/hugepages.h"

#include <stdlib.h>
#include <string.h>

#if defined(MI_GEMM_X86) && defined(MEDINFER_HAVE_AMX)
#include <cpuid.h>
#include <immintrin.h>
#include <stdatomic.h>
#include <sys/syscall.h>
#include <unistd.h>

#define ARCH_REQ_XCOMP_PERM 0x1023
#define XFEATURE_XTILEDATA 18

bool mi_dconv_amx_supported(void) {
  static atomic_int ok = -1;
  int r = atomic_load(&ok);
  if (r < 0) {
    const char *e = getenv("MEDINFER_AMX");
    unsigned a, b, c, d;
    __builtin_cpu_init();
    r = !(e && !strcmp(e, "0")) && __get_cpuid_count(7, 0, &a, &b, &c, &d) && (d >> 22 & 1) && (d >> 24 & 1) &&
        __get_cpuid(1, &a, &b, &c, &d) && (c >> 27 & 1) && /* AMX-BF16, AMX-TILE, OSXSAVE */
        __builtin_cpu_supports("avx512bf16") && __builtin_cpu_supports("avx512bw"); /* the input's conversion */
    if (r) { /* the OS keeps the tile state (XCR0 bits 17, 18) and lets this process use it */
      unsigned lo, hi;
      __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
      r = (lo >> 17 & 3) == 3 && syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0;
    }
    atomic_store(&ok, r); /* asking twice is harmless: the permission is per process */
  }
  return r;
}

bool mi_dconv_amx_pack(const float *w, int64_t M, int64_t C, int64_t ksz, bool left, mi_dconv_amx_weights *out) {
  memset(out, 0, sizeof *out);
  const int64_t mb = (M + 31) / 32 * 2, pb = ((C + 1) / 2 + 15) / 16, K = C * ksz;
  const size_t n = (size_t)(mb * ksz * pb) * 512;
  if (left && ksz != 1) return false;
  uint16_t *const q = mi_alloc_huge(n * sizeof(uint16_t)), *d = q;
  if (!q) return false;
  /* [m block][tap][pair block][16 pairs][16 channels x 2]: a right operand;
   * left: [m block][pair block][16 channels][16 pairs x 2] */
  for (int64_t b = 0; b < mb; b++)
    for (int64_t t = 0; t < ksz; t++)
      for (int64_t p = 0; p < pb; p++)
        for (int64_t r = 0; r < 16; r++)
          for (int64_t e = 0; e < 32; e++) {
            const int64_t m = b * 16 + (left ? r : e / 2), c = (p * 16 + (left ? e / 2 : r)) * 2 + e % 2;
            *d++ = m < M && c < C ? mi_bf16_round(w[m * K + c * ksz + t]) : 0;
          }
  out->data = q;
  out->M = M, out->mblocks = mb, out->taps = ksz, out->pblocks = pb, out->left = left;
  return true;
}

/* 16 x 16 32-bit elements: r[i] lane j becomes r[j] lane i. */
static inline __attribute__((always_inline)) void transpose16(__m512i r[16]) {
  __m512i t[16];
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_unpacklo_epi32(r[i], r[i + 1]);
    t[i + 1] = _mm512_unpackhi_epi32(r[i], r[i + 1]);
  }
  for (int i = 0; i < 16; i += 4) {
    r[i] = _mm512_unpacklo_epi64(t[i], t[i + 2]);
    r[i + 1] = _mm512_unpackhi_epi64(t[i], t[i + 2]);
    r[i + 2] = _mm512_unpacklo_epi64(t[i + 1], t[i + 3]);
    r[i + 3] = _mm512_unpackhi_epi64(t[i + 1], t[i + 3]);
  }
  /* r[4a + c], 128-bit block L: rows 4a .. 4a + 3 at column 4L + c; a 4 x 4
   * transpose of the blocks puts column 4L + c in r[4L + c] */
  for (int i = 0; i < 4; i++) {
    t[i] = _mm512_shuffle_i32x4(r[i], r[i + 4], 0x88);
    t[i + 4] = _mm512_shuffle_i32x4(r[i], r[i + 4], 0xdd);
    t[i + 8] = _mm512_shuffle_i32x4(r[i + 8], r[i + 12], 0x88);
    t[i + 12] = _mm512_shuffle_i32x4(r[i + 8], r[i + 12], 0xdd);
  }
  for (int i = 0; i < 4; i++) {
    r[i] = _mm512_shuffle_i32x4(t[i], t[i + 8], 0x88);
    r[i + 8] = _mm512_shuffle_i32x4(t[i], t[i + 8], 0xdd);
    r[i + 4] = _mm512_shuffle_i32x4(t[i + 4], t[i + 12], 0x88);
    r[i + 12] = _mm512_shuffle_i32x4(t[i + 4], t[i + 12], 0xdd);
  }
}

/* Two channels' 16 floats to bf16 pairs (vcvtne2ps2bf16: nearest even):
 * lane j holds lo[j] in its low half, hi[j] in its high half. */
static inline __m512i pair16(__m512 lo, __m512 hi) {
  const __m512i inter = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22, 6,
                                         21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
  return _mm512_permutexvar_epi16(inter, (__m512i)_mm512_cvtne2ps_pbh(hi, lo));
}

static inline __m512 pre_f32(__m512 v, const float *pre, int64_t C, int64_t c, bool relu) {
  if (!pre) return v;
  v = _mm512_fmadd_ps(v, _mm512_set1_ps(pre[c]), _mm512_set1_ps(pre[C + c]));
  return relu ? _mm512_max_ps(v, _mm512_setzero_ps()) : v;
}

/* The transposed block's first n rows (positions) to d, 64 bytes each:
 * whole blocks as 16 vector stores (a loop of n stores, left to the
 * compiler, became a spill and a memcpy of 8-byte moves). */
static inline __attribute__((always_inline)) void store_rows(uint32_t *d, const __m512i r[16], int64_t n) {
  if (n == 16) {
#pragma GCC unroll 16
    for (int j = 0; j < 16; j++) _mm512_storeu_si512(d + j * 16, r[j]);
  } else {
    for (int64_t j = 0; j < n; j++) _mm512_storeu_si512(d + j * 16, r[j]);
  }
}

/* Where 16 padded positions from q read the input: runs along phase rows
 * (as many as rows they touch, 16 on rows of one), each a lane mask and the
 * offset (from a channel plane's start) that lane 0 would read, lane j
 * reading sx elements further than lane j - 1; with sx 2 also the mask of
 * the 32 elements from there that the lanes read (even ones); inside: all
 * their lanes. */
typedef struct pad_runs {
  int n;
  __mmask16 m[16], inside;
  __mmask32 e[16];
  int64_t off[16];
} pad_runs;

static void pad_runs_at(const mi_dconv_pad *pd, int64_t q, int n, pad_runs *pr) {
  const int64_t hw = pd->ph * pd->pw, plane = pd->sy * pd->sx * hw, sx = pd->sx;
  pr->n = 0, pr->inside = 0;
  for (int i = 0; i < n;) {
    const int64_t p = q + i, phase = p % plane / hw, py = phase / sx, px = phase % sx;
    const int64_t zz = pd->z0 + p / plane - pd->top[0], r = p % hw / pd->pw * pd->sy + py - pd->top[1];
    const int64_t t = p % pd->pw, len = pd->pw - t < n - i ? pd->pw - t : n - i, col = t * sx + px - pd->top[2];
    if (zz >= 0 && zz < pd->in[0] && r >= 0 && r < pd->in[1]) {
      /* lane i + k reads column col + k sx: inside for k in [lo, hi) */
      const int64_t lo = col >= 0 ? 0 : (-col + sx - 1) / sx;
      const int64_t rest = pd->in[2] - col <= 0 ? 0 : (pd->in[2] - col + sx - 1) / sx, hi = rest < len ? rest : len;
      if (hi > lo) {
        const __mmask16 m = (__mmask16)((((1u << (hi - lo)) - 1u) << (i + lo)) & 0xffffu);
        __mmask32 e = 0;
        for (int k = 0; k < 16; k++) e |= (__mmask32)((m >> k & 1u) << (2 * k));
        pr->m[pr->n] = m, pr->e[pr->n] = e;
        pr->off[pr->n] = (zz * pd->in[1] + r) * pd->in[2] + col - i * sx;
        pr->inside |= pr->m[pr->n++];
      }
    }
    i += (int)len;
  }
}

/* Channel plane x at those positions, zero outside, the prologue on the
 * inside only. */
static inline __m512 padded16(const float *x, const pad_runs *pr, int64_t sx, const float *pre, int64_t C, int64_t c,
                              bool relu) {
  __m512 v = _mm512_setzero_ps();
  if (sx == 1) {
    for (int k = 0; k < pr->n; k++) v = _mm512_mask_loadu_ps(v, pr->m[k], x + pr->off[k]);
  } else { /* every other element of 32: the even ones of two loads */
    const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
    for (int k = 0; k < pr->n; k++) {
      const __m512 a = _mm512_maskz_loadu_ps((__mmask16)pr->e[k], x + pr->off[k]);
      const __m512 b = _mm512_maskz_loadu_ps((__mmask16)(pr->e[k] >> 16), x + pr->off[k] + 16);
      v = _mm512_mask_mov_ps(v, pr->m[k], _mm512_permutex2var_ps(a, even, b));
    }
  }
  if (!pre) return v;
  __m512 a = _mm512_fmadd_ps(v, _mm512_set1_ps(pre[c]), _mm512_set1_ps(pre[C + c]));
  if (relu) a = _mm512_max_ps(a, _mm512_setzero_ps());
  return _mm512_mask_mov_ps(_mm512_setzero_ps(), pr->inside, a);
}

void mi_dconv_amx_pairs_padded(const float *x, int64_t xstride, int64_t C, const float *pre, bool relu,
                               const mi_dconv_pad *pad, int64_t csz, float *dst, int64_t pb0, int64_t pb1, int64_t q0,
                               int64_t q1) {
  uint32_t *d = (uint32_t *)dst;
  for (int64_t q = q0; q < q1; q += 16) {
    const int n = (int)(q1 - q < 16 ? q1 - q : 16);
    pad_runs pr;
    pad_runs_at(pad, q, n, &pr);
    for (int64_t p = pb0; p < pb1; p++) {
      __m512i r[16];
      for (int i = 0; i < 16; i++) {
        const int64_t c0 = 2 * (16 * p + i), c1 = c0 + 1;
        const __m512 lo = c0 < C ? padded16(x + c0 * xstride, &pr, pad->sx, pre, C, c0, relu) : _mm512_setzero_ps();
        const __m512 hi = c1 < C ? padded16(x + c1 * xstride, &pr, pad->sx, pre, C, c1, relu) : _mm512_setzero_ps();
        r[i] = pair16(lo, hi);
      }
      transpose16(r);
      store_rows(d + (p * csz + q) * 16, r, n);
    }
  }
}

void mi_dconv_amx_pairs(const float *x, int64_t xstride, int64_t C, const float *pre, bool relu, int64_t csz,
                        float *dst, int64_t pb0, int64_t pb1, int64_t q0, int64_t q1) {
  uint32_t *d = (uint32_t *)dst;
  for (int64_t p = pb0; p < pb1; p++)
    for (int64_t q = q0; q < q1; q += 16) {
      const int64_t n = q1 - q < 16 ? q1 - q : 16;
      const __mmask16 m = (__mmask16)(n == 16 ? 0xffffu : (1u << n) - 1u);
      __m512i r[16]; /* r[i]: pair 16p + i at positions q .. q + 15 */
      for (int i = 0; i < 16; i++) {
        const int64_t c0 = 2 * (16 * p + i), c1 = c0 + 1;
        const __m512 lo = c0 < C ? pre_f32(_mm512_maskz_loadu_ps(m, x + c0 * xstride + q), pre, C, c0, relu)
                                 : _mm512_setzero_ps();
        const __m512 hi = c1 < C ? pre_f32(_mm512_maskz_loadu_ps(m, x + c1 * xstride + q), pre, C, c1, relu)
                                 : _mm512_setzero_ps();
        r[i] = pair16(lo, hi);
      }
      transpose16(r); /* r[j]: position q + j, its 16 pairs */
      store_rows(d + (p * csz + q) * 16, r, n);
    }
}

void mi_dconv_amx_pairs_cols(const float *x, int64_t xstride, int64_t C, const float *pre, bool relu, int64_t pbn,
                             float *dst, int64_t pb0, int64_t pb1, int64_t q0, int64_t q1, int64_t n) {
  uint32_t *d = (uint32_t *)dst;
  for (int64_t p = pb0; p < pb1; p++)
    for (int64_t q = q0; q < q1; q += 16) {
      const int64_t k = n - q < 16 ? (n - q > 0 ? n - q : 0) : 16;
      const __mmask16 m = (__mmask16)(k == 16 ? 0xffffu : (1u << k) - 1u);
      uint32_t *row = d + ((q / 16 * pbn + p) * 16) * 16;
#pragma GCC unroll 4
      for (int i = 0; i < 16; i++) { /* pair 16p + i at positions q .. q + 15 */
        const int64_t c0 = 2 * (16 * p + i), c1 = c0 + 1;
        const __m512 lo = c0 < C ? pre_f32(_mm512_maskz_loadu_ps(m, x + c0 * xstride + q), pre, C, c0, relu)
                                 : _mm512_setzero_ps();
        const __m512 hi = c1 < C ? pre_f32(_mm512_maskz_loadu_ps(m, x + c1 * xstride + q), pre, C, c1, relu)
                                 : _mm512_setzero_ps();
        /* the prologue's shift would make the positions past n nonzero: they stay zero */
        _mm512_store_si512(row + i * 16, _mm512_maskz_mov_epi32(m, pair16(lo, hi)));
      }
    }
}

bool mi_dconv_amx_stem_ok(const mi_dconv_im2col *g, int64_t sx, int64_t dx) {
  return sx == 2 && (dx == 1 || g->kw == 1) && g->OW % 16 == 0 && g->kw <= 17 &&
         g->C * g->kh * g->kw <= MI_DCONV_STEM_MAXK;
}

void mi_dconv_amx_im2col_cols(const float *x, const mi_dconv_im2col *g, int64_t pbn, float *dst, int64_t q0,
                              int64_t q1) {
  uint32_t *d = (uint32_t *)dst;
  const int64_t K = g->C * g->kh * g->kw;
  const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
  const __m512i odd = _mm512_set_epi32(31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1);
  __m512 vals[MI_DCONV_STEM_MAXK + 32]; /* row k of the block: its 16 positions */
  for (int64_t i = K; i < pbn * 32; i++) vals[i] = _mm512_setzero_ps();
  for (int64_t q = q0; q < q1; q += 16) { /* 16 positions of one output row (OW a multiple of 16) */
    const int64_t oy = q / g->OW, ox = q % g->OW, c0 = 2 * ox - g->pl;
    /* the row's columns c0 .. c0 + 47 that are inside the input */
    const int64_t lo = c0 >= 0 ? 0 : -c0, hi = g->W - c0 < 48 ? g->W - c0 : 48;
    const uint64_t m48 = hi > lo ? ((hi >= 64 ? ~0ull : (1ull << hi) - 1) & ~((1ull << lo) - 1)) : 0;
    for (int64_t c = 0; c < g->C; c++)
      for (int64_t ky = 0; ky < g->kh; ky++) {
        __m512 *v = vals + (c * g->kh + ky) * g->kw;
        const int64_t iy = oy * g->sy + ky * g->dy - g->pt;
        if (iy < 0 || iy >= g->H || !m48) {
          for (int64_t kx = 0; kx < g->kw; kx++) v[kx] = _mm512_setzero_ps();
          continue;
        }
        const float *r = x + (c * g->H + iy) * g->W + c0;
        const __m512 w0 = _mm512_maskz_loadu_ps((__mmask16)m48, r), w1 = _mm512_maskz_loadu_ps((__mmask16)(m48 >> 16), r + 16);
        const __m512 w2 = _mm512_maskz_loadu_ps((__mmask16)(m48 >> 32), r + 32);
        /* columns c0 + 2j (+ 1), and in lanes 0 .. 7 c0 + 32 + 2j (+ 1) */
        const __m512i e0 = _mm512_castps_si512(_mm512_permutex2var_ps(w0, even, w1));
        const __m512i e1 = _mm512_castps_si512(_mm512_permutex2var_ps(w2, even, w2));
        const __m512i o0 = _mm512_castps_si512(_mm512_permutex2var_ps(w0, odd, w1));
        const __m512i o1 = _mm512_castps_si512(_mm512_permutex2var_ps(w2, odd, w2));
        for (int64_t kx = 0; kx < g->kw; kx++) { /* tap kx: columns c0 + 2j + kx */
          const __m512i a = kx % 2 ? o0 : e0, b = kx % 2 ? o1 : e1;
          __m512i t;
          switch (kx / 2) { /* lanes j + kx / 2 of (a, b) */
          case 0: t = a; break;
          case 1: t = _mm512_alignr_epi32(b, a, 1); break;
          case 2: t = _mm512_alignr_epi32(b, a, 2); break;
          case 3: t = _mm512_alignr_epi32(b, a, 3); break;
          case 4: t = _mm512_alignr_epi32(b, a, 4); break;
          case 5: t = _mm512_alignr_epi32(b, a, 5); break;
          case 6: t = _mm512_alignr_epi32(b, a, 6); break;
          case 7: t = _mm512_alignr_epi32(b, a, 7); break;
          default: t = _mm512_alignr_epi32(b, a, 8); break;
          }
          v[kx] = _mm512_castsi512_ps(t);
        }
      }
    for (int64_t p = 0; p < pbn; p++) {
      uint32_t *row = d + ((q / 16 * pbn + p) * 16) * 16;
      for (int i = 0; i < 16; i++) _mm512_store_si512(row + i * 16, pair16(vals[2 * (16 * p + i)], vals[2 * (16 * p + i) + 1]));
    }
  }
}

#define NB 32 /* positions per item */

static int64_t pos_blocks(const mi_dconv_job *j) { return (j->q_end + NB - 1) / NB; }

/* Left weights: one run of planes * q_end positions (pairs_cols) */
static int64_t left_blocks(const mi_dconv_job *j) { return (j->planes * j->q_end + NB - 1) / NB; }

int64_t mi_dconv_items_amx(const mi_dconv_job *j, const mi_dconv_amx_weights *w) {
  return (w->left ? left_blocks(j) : j->planes * pos_blocks(j)) * (w->mblocks / 2);
}

typedef struct tilecfg {
  uint8_t palette, start;
  uint8_t pad[14];
  uint16_t colsb[16];
  uint8_t rows[16];
} tilecfg;

/* Output rows [m0, m0 + mr) of a run of len positions at output index o,
 * from src[channel * NB + ..], into Y with bias, residual and ReLU on the
 * way, then the job's epilogue on it. */
static inline __attribute__((always_inline)) void store_sums(const mi_dconv_job *j, const float *src, int64_t m0,
                                                            int64_t mr, int64_t len, int64_t o) {
  float *y = j->y + m0 * j->ldy + o;
  for (int64_t i = 0; i < mr; i++) {
    const float *s = src + i * NB, *rs = j->res ? j->res + (m0 + i) * j->ldy + o : NULL;
    const __m512 bv = _mm512_set1_ps(j->bias ? j->bias[m0 + i] : 0.f);
    float *yi = y + i * j->ldy;
    for (int64_t k = 0; k < len; k += 16) {
      const __mmask16 lm = (__mmask16)(len - k >= 16 ? 0xffffu : (1u << (len - k)) - 1u);
      __m512 v = _mm512_add_ps(_mm512_maskz_loadu_ps(lm, s + k), bv);
      if (rs) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(lm, rs + k));
      if (j->relu) v = _mm512_max_ps(v, _mm512_setzero_ps());
      _mm512_mask_storeu_ps(yi + k, lm, v);
    }
  }
  if (j->epi) j->epi->fn(j->epi->ctx, m0, mr, o, len, y, j->ldy);
}

/* Left weights (1x1): C = weights x input, the sums [channel][position]
 * as the tiles hold them; no transposes. */
static void run_amx_left(const mi_dconv_job *j, const mi_dconv_amx_weights *w, int64_t begin, int64_t end) {
  const int64_t nblk = left_blocks(j), ngrp = w->mblocks / 2, pbn = w->pblocks, total = j->planes * j->q_end;
  const uint32_t *xb = (const uint32_t *)j->x;
  float buf[32 * NB] __attribute__((aligned(64))); /* [channel][position] */
  for (int64_t it = begin; it < end; it++) {
    const int64_t g = j->group_major ? it / nblk : it % ngrp, b = j->group_major ? it % nblk : it / ngrp;
    const int64_t q0 = b * NB, n = total - q0 < NB ? total - q0 : NB;
    const uint16_t *wa = (const uint16_t *)w->data + (2 * g) * pbn * 512, *wb = wa + pbn * 512;
    const uint32_t *x0 = xb + (q0 / 16) * pbn * 256, *x1 = x0 + pbn * 256;
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    for (int64_t p = 0; p < pbn; p++) {
      _tile_loadd(4, wa + p * 512, 64);
      _tile_loadd(5, wb + p * 512, 64);
      _tile_loadd(6, x0 + p * 256, 64);
      _tile_loadd(7, x1 + p * 256, 64);
      _tile_dpbf16ps(0, 4, 6);
      _tile_dpbf16ps(1, 4, 7);
      _tile_dpbf16ps(2, 5, 6);
      _tile_dpbf16ps(3, 5, 7);
    }
    _tile_stored(0, buf, NB * 4);
    _tile_stored(1, buf + 16, NB * 4);
    _tile_stored(2, buf + 16 * NB, NB * 4);
    _tile_stored(3, buf + 16 * NB + 16, NB * 4);
    const int64_t m0 = g * 32, mr = w->M - m0 < 32 ? w->M - m0 : 32;
    store_sums(j, buf, m0, mr, n, q0);
  }
}

void mi_dconv_run_amx(const mi_dconv_job *j, const mi_dconv_amx_weights *w, int64_t begin, int64_t end) {
  tilecfg cfg __attribute__((aligned(64)));
  memset(&cfg, 0, sizeof cfg);
  cfg.palette = 1;
  for (int t = 0; t < 8; t++) cfg.colsb[t] = 64, cfg.rows[t] = 16; /* 0-3 sums, 4-5 weights, 6-7 input */
  _tile_loadconfig(&cfg);
  if (w->left) {
    run_amx_left(j, w, begin, end);
    _tile_release();
    return;
  }
  const int64_t nblk = pos_blocks(j), ngrp = w->mblocks / 2, ksz = w->taps, pbn = w->pblocks, csz = j->csz;
  const uint32_t *xb = (const uint32_t *)j->x;
  float pc[NB * 32] __attribute__((aligned(64)));  /* [position][channel], as the tiles hold it */
  float buf[32 * NB] __attribute__((aligned(64))); /* [channel][position] */
  for (int64_t it = begin; it < end; it++) {
    int64_t g, b, z;
    if (j->group_major) g = it / (nblk * j->planes), b = it % nblk, z = (it / nblk) % j->planes;
    else g = it % ngrp, b = (it / ngrp) % nblk, z = it / (ngrp * nblk);
    const int64_t q0 = b * NB, n = j->q_end - q0 < NB ? j->q_end - q0 : NB;
    const int64_t base = z * j->x_plane + q0; /* the item's first position in a block's planes */
    const uint16_t *wa = (const uint16_t *)w->data + (2 * g) * ksz * pbn * 512, *wb = wa + ksz * pbn * 512;
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    for (int64_t t = 0; t < ksz; t++)
      for (int64_t p = 0; p < pbn; p++) {
        const int64_t s = j->toff[p * 16 * ksz + t] - 16 * p * csz; /* the tap's offset in a plane */
        const uint32_t *src = xb + (p * csz + base + s) * 16;
        _tile_loadd(4, wa + (t * pbn + p) * 512, 64);
        _tile_loadd(5, wb + (t * pbn + p) * 512, 64);
        _tile_loadd(6, src, 64);
        _tile_loadd(7, src + 16 * 16, 64);
        _tile_dpbf16ps(0, 6, 4);
        _tile_dpbf16ps(1, 7, 4);
        _tile_dpbf16ps(2, 6, 5);
        _tile_dpbf16ps(3, 7, 5);
      }
    _tile_stored(0, pc, 32 * 4);
    _tile_stored(2, pc + 16, 32 * 4);
    _tile_stored(1, pc + 16 * 32, 32 * 4);
    _tile_stored(3, pc + 16 * 32 + 16, 32 * 4);
    for (int bq = 0; bq < 2; bq++) /* [position][channel] -> [channel][position], 16 x 16 at a time */
      for (int bc = 0; bc < 2; bc++) {
        __m512i r[16];
        for (int i = 0; i < 16; i++) r[i] = _mm512_load_si512(pc + (16 * bq + i) * 32 + 16 * bc);
        transpose16(r);
        for (int i = 0; i < 16; i++) _mm512_store_si512(buf + (16 * bc + i) * NB + 16 * bq, r[i]);
      }
    /* The grid's real columns into Y, run by run, with bias, residual and
     * ReLU on the way. */
    const int64_t m0 = g * 32, mr = w->M - m0 < 32 ? w->M - m0 : 32;
    for (int64_t q = q0, len, o; mi_dconv_next_run(j, z, &q, q0 + n, &len, &o); q += len)
      store_sums(j, buf + (q - q0), m0, mr, len, o);
  }
  _tile_release();
}
#elif defined(MI_GEMM_X86)
/* The compiler cannot target AMX: never available. */
bool mi_dconv_amx_supported(void) { return false; }
bool mi_dconv_amx_pack(const float *w, int64_t M, int64_t C, int64_t ksz, bool left, mi_dconv_amx_weights *out) {
  (void)w, (void)M, (void)C, (void)ksz, (void)left;
  memset(out, 0, sizeof *out);
  return false;
}
int64_t mi_dconv_items_amx(const mi_dconv_job *j, const mi_dconv_amx_weights *w) {
  (void)j, (void)w;
  return 0;
}
void mi_dconv_run_amx(const mi_dconv_job *j, const mi_dconv_amx_weights *w, int64_t begin, int64_t end) {
  (void)j, (void)w, (void)begin, (void)end;
}
void mi_dconv_amx_pairs(const float *x, int64_t xstride, int64_t C, const float *pre, bool relu, int64_t csz,
                        float *dst, int64_t pb0, int64_t pb1, int64_t q0, int64_t q1) {
  (void)x, (void)xstride, (void)C, (void)pre, (void)relu, (void)csz, (void)dst, (void)pb0, (void)pb1, (void)q0, (void)q1;
}
void mi_dconv_amx_pairs_cols(const float *x, int64_t xstride, int64_t C, const float *pre, bool relu, int64_t pbn,
                             float *dst, int64_t pb0, int64_t pb1, int64_t q0, int64_t q1, int64_t n) {
  (void)x, (void)xstride, (void)C, (void)pre, (void)relu, (void)pbn, (void)dst, (void)pb0, (void)pb1, (void)q0, (void)q1;
  (void)n;
}
bool mi_dconv_amx_stem_ok(const mi_dconv_im2col *g, int64_t sx, int64_t dx) {
  (void)g, (void)sx, (void)dx;
  return false;
}
void mi_dconv_amx_im2col_cols(const float *x, const mi_dconv_im2col *g, int64_t pbn, float *dst, int64_t q0,
                              int64_t q1) {
  (void)x, (void)g, (void)pbn, (void)dst, (void)q0, (void)q1;
}
void mi_dconv_amx_pairs_padded(const float *x, int64_t xstride, int64_t C, const float *pre, bool relu,
                               const mi_dconv_pad *pad, int64_t csz, float *dst, int64_t pb0, int64_t pb1, int64_t q0,
                               int64_t q1) {
  (void)x, (void)xstride, (void)C, (void)pre, (void)relu, (void)pad, (void)csz, (void)dst, (void)pb0, (void)pb1;
  (void)q0, (void)q1;
}
#endif
