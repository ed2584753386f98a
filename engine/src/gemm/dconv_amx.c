/* bf16 direct convolution on AMX tiles (see dconv.h): per work item, four
 * 16 x 16 fp32 accumulator tiles (two 16-channel weight blocks times two
 * 16-position input blocks); each step loads a weight tile (16 channels x
 * 16 channel pairs of one tap, pre-packed) and an input tile (16 pair
 * planes x 16 positions, read in place from the pair copy with the plane
 * stride) and runs tdpbf16ps.  Compiled with -mamx-tile -mamx-bf16
 * -mavx512f; only called when mi_dconv_amx_supported(). */
#include "dconv.h"

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
    r = !(e && !strcmp(e, "0")) && __get_cpuid_count(7, 0, &a, &b, &c, &d) && (d >> 22 & 1) && (d >> 24 & 1) &&
        __get_cpuid(1, &a, &b, &c, &d) && (c >> 27 & 1); /* AMX-BF16, AMX-TILE, OSXSAVE */
    if (r) { /* the OS keeps the tile state (XCR0 bits 17, 18) and lets this process use it */
      unsigned lo, hi;
      __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
      r = (lo >> 17 & 3) == 3 && syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0;
    }
    atomic_store(&ok, r); /* asking twice is harmless: the permission is per process */
  }
  return r;
}

/* float -> bf16, rounding to nearest even (NaN stays NaN). */
static uint16_t bf16(float f) {
  uint32_t u;
  memcpy(&u, &f, sizeof u);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u);
  return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

bool mi_dconv_amx_pack(const float *w, int64_t M, int64_t C, int64_t ksz, mi_dconv_amx_weights *out) {
  memset(out, 0, sizeof *out);
  const int64_t mb = (M + 31) / 32 * 2, pb = ((C + 1) / 2 + 15) / 16, K = C * ksz;
  const size_t n = (size_t)(mb * ksz * pb) * 512;
  void *q = NULL;
  if (posix_memalign(&q, 64, n * sizeof(uint16_t))) return false;
  uint16_t *d = q;
  /* [m block][tap][pair block][16 rows][16 pairs x 2] */
  for (int64_t b = 0; b < mb; b++)
    for (int64_t t = 0; t < ksz; t++)
      for (int64_t p = 0; p < pb; p++)
        for (int64_t r = 0; r < 16; r++)
          for (int64_t e = 0; e < 32; e++) {
            const int64_t m = b * 16 + r, c = (p * 16 + e / 2) * 2 + e % 2;
            *d++ = m < M && c < C ? bf16(w[m * K + c * ksz + t]) : 0;
          }
  out->data = q;
  out->M = M, out->mblocks = mb, out->taps = ksz, out->pblocks = pb;
  return true;
}

#define NB 32 /* positions per item */

static int64_t pos_blocks(const mi_dconv_job *j) { return (j->q_end + NB - 1) / NB; }

int64_t mi_dconv_items_amx(const mi_dconv_job *j, const mi_dconv_amx_weights *w) {
  return j->planes * pos_blocks(j) * (w->mblocks / 2);
}

typedef struct tilecfg {
  uint8_t palette, start;
  uint8_t pad[14];
  uint16_t colsb[16];
  uint8_t rows[16];
} tilecfg;

void mi_dconv_run_amx(const mi_dconv_job *j, const mi_dconv_amx_weights *w, int64_t begin, int64_t end) {
  tilecfg cfg __attribute__((aligned(64)));
  memset(&cfg, 0, sizeof cfg);
  cfg.palette = 1;
  for (int t = 0; t < 8; t++) cfg.colsb[t] = 64, cfg.rows[t] = 16; /* 0-3 sums, 4-5 weights, 6-7 input */
  _tile_loadconfig(&cfg);
  const int64_t nblk = pos_blocks(j), ngrp = w->mblocks / 2, ksz = w->taps, pbn = w->pblocks;
  const int64_t stride = j->csz * (int64_t)sizeof(float); /* bytes from one pair plane to the next */
  float buf[32 * NB] __attribute__((aligned(64))); /* [channel][position] */
  for (int64_t it = begin; it < end; it++) {
    int64_t g, b, z;
    if (j->group_major) g = it / (nblk * j->planes), b = it % nblk, z = (it / nblk) % j->planes;
    else g = it % ngrp, b = (it / ngrp) % nblk, z = it / (ngrp * nblk);
    const int64_t q0 = b * NB, n = j->q_end - q0 < NB ? j->q_end - q0 : NB;
    const float *x = j->x + z * j->x_plane + q0;
    const uint16_t *wa = (const uint16_t *)w->data + (2 * g) * ksz * pbn * 512, *wb = wa + ksz * pbn * 512;
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    for (int64_t t = 0; t < ksz; t++)
      for (int64_t p = 0; p < pbn; p++) {
        const float *src = x + j->toff[p * 16 * ksz + t];
        _tile_loadd(4, wa + (t * pbn + p) * 512, 64);
        _tile_loadd(5, wb + (t * pbn + p) * 512, 64);
        _tile_loadd(6, src, stride);
        _tile_loadd(7, src + 16, stride);
        _tile_dpbf16ps(0, 4, 6);
        _tile_dpbf16ps(1, 4, 7);
        _tile_dpbf16ps(2, 5, 6);
        _tile_dpbf16ps(3, 5, 7);
      }
    _tile_stored(0, buf, NB * 4);
    _tile_stored(1, buf + 16, NB * 4);
    _tile_stored(2, buf + 16 * NB, NB * 4);
    _tile_stored(3, buf + 16 * NB + 16, NB * 4);
    /* The grid's real columns into Y, run by run, with bias, residual and
     * ReLU on the way. */
    const int64_t m0 = g * 32, mr = w->M - m0 < 32 ? w->M - m0 : 32;
    for (int64_t q = q0, len, o; mi_dconv_next_run(j, z, &q, q0 + n, &len, &o); q += len) {
      float *y = j->y + m0 * j->ldy + o;
      for (int64_t i = 0; i < mr; i++) {
        const float *s = buf + i * NB + (q - q0), *rs = j->res ? j->res + (m0 + i) * j->ldy + o : NULL;
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
  }
  _tile_release();
}
#elif defined(MI_GEMM_X86)
/* The compiler cannot target AMX: never available. */
bool mi_dconv_amx_supported(void) { return false; }
bool mi_dconv_amx_pack(const float *w, int64_t M, int64_t C, int64_t ksz, mi_dconv_amx_weights *out) {
  (void)w, (void)M, (void)C, (void)ksz;
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
#endif
