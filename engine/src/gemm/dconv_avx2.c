/* Direct convolution micro-kernel and driver, AVX2 + FMA (see dconv.h): the
 * AVX-512 kernel's scheme (dconv_avx512.c) in sixteen 256-bit registers.  A
 * tile is 4 output channels x 24 positions (three vectors): twelve
 * accumulators, three source vectors and a broadcast weight.  The weights
 * are the AVX2 SGEMM's 6-row panels, so a tile's rows are read through a
 * pointer each and groups are whole pairs of panels (three tiles).  Four
 * rows of three vectors, not the SGEMM's six of two: the source rows start
 * anywhere (tap offsets), and six broadcasts per step to two unaligned
 * loads ran 1-2 % below the FMA peak in L1, 14 % at two of the eight
 * offsets, where four to three held it at all of them.
 * Tiles whose grid rows carry extra columns go through a buffer
 * (scatter_runs), as the AVX-512 kernel does with an epilogue.  Compiled
 * with -mavx2 -mfma; only called when the GEMM's level is AVX2. */
#include "dconv.h"

#ifdef MI_GEMM_X86
#include <immintrin.h>
#include <string.h>

#define MR 6      /* the AVX2 SGEMM's packed panels */
#define TR 4      /* channels per tile */
#define NB 24     /* positions per tile: three vectors */
#define MGROUP 48 /* channels per work item: 8 panels, 12 tiles */
#define KSTEP 96  /* weight rows per pass over a group */

bool mi_dconv_supported_avx2(const mi_gemm_packed_view *a) {
  return a->data && a->mr == MR && !strcmp(a->kernel, "avx2");
}

/* A plane's positions as whole vectors of 8, dealt evenly to tiles of at most three. */
static int64_t plane_tiles(const mi_dconv_job *j) { return ((j->q_end + 7) / 8 + 2) / 3; }

/* job.mgroup (a multiple of 8, see dconv.h) up to whole pairs of panels, at most MGROUP. */
static int64_t group(const mi_dconv_job *j) {
  const int64_t m = j->mgroup > 0 ? (j->mgroup + 2 * MR - 1) / (2 * MR) * (2 * MR) : MGROUP;
  return m < MGROUP ? m : MGROUP;
}

int64_t mi_dconv_items_avx2(const mi_dconv_job *j) {
  return j->planes * plane_tiles(j) * ((j->a.M + group(j) - 1) / group(j));
}

/* Rows [ks, ks + kn) of the weights' K block at pc (kc rows) for channels
 * [ir, ir + TR) x positions [0, 8 NV) of the tile at x, the last vector's
 * lanes limited by lm unless FULL (masked loads and above all masked stores
 * are slow on AMD: only a plane's last tile takes them).  Row i's weights
 * are at a[i] + MR k.  Partial sums in part[i * NB + ..] between calls; the
 * last call adds bias, applies ReLU and stores to c[i * ldc + ..]. */
static inline __attribute__((always_inline)) void tile(const int NV, const bool FULL, const mi_dconv_job *j, int64_t ir,
                                                      const float *const a[TR], const float *x, __m256i lm,
                                                      int64_t pc, int64_t ks, int64_t kn, float *part, bool first,
                                                      bool last, float *c, int64_t ldc, int mr, const float *pfx,
                                                      const int32_t *pft, int64_t npf) {
  __m256 acc[TR][3];
#pragma GCC unroll 4
  for (int i = 0; i < TR; i++)
#pragma GCC unroll 3
    for (int v = 0; v < NV; v++) acc[i][v] = first ? _mm256_setzero_ps() : _mm256_load_ps(part + i * NB + 8 * v);
  const float *a0 = a[0], *a1 = a[1], *a2 = a[2], *a3 = a[3];
  const int32_t *t = j->toff + pc + ks;
#pragma GCC unroll 2
  for (int64_t k = 0; k < kn; k++) {
    if (k < npf) { /* the source row of the tile's next K step, into L2 (it may straddle two lines) */
      const char *pp = (const char *)(pfx + pft[k]);
      _mm_prefetch(pp, _MM_HINT_T1);
      _mm_prefetch(pp + 32 * NV - 4, _MM_HINT_T1);
    }
    const float *xp = x + t[k];
    __m256 b[3];
#pragma GCC unroll 3
    for (int v = 0; v < NV; v++)
      b[v] = v == NV - 1 && !FULL ? _mm256_maskload_ps(xp + 8 * v, lm) : _mm256_loadu_ps(xp + 8 * v);
    const float *ak[TR] = {a0 + MR * k, a1 + MR * k, a2 + MR * k, a3 + MR * k};
#pragma GCC unroll 4
    for (int i = 0; i < TR; i++) {
      const __m256 ai = _mm256_broadcast_ss(ak[i]);
#pragma GCC unroll 3
      for (int v = 0; v < NV; v++) acc[i][v] = _mm256_fmadd_ps(ai, b[v], acc[i][v]);
    }
  }
  if (!last) {
#pragma GCC unroll 4
    for (int i = 0; i < TR; i++)
#pragma GCC unroll 3
      for (int v = 0; v < NV; v++) _mm256_store_ps(part + i * NB + 8 * v, acc[i][v]);
    return;
  }
  const __m256 zero = _mm256_setzero_ps();
#pragma GCC unroll 4
  for (int i = 0; i < TR; i++) {
    if (i >= mr) break;
    const __m256 bi = j->bias ? _mm256_set1_ps(j->bias[ir + i]) : zero;
#pragma GCC unroll 3
    for (int v = 0; v < NV; v++) {
      __m256 r = _mm256_add_ps(acc[i][v], bi);
      if (j->relu) r = _mm256_max_ps(r, zero);
      if (v == NV - 1 && !FULL) _mm256_maskstore_ps(c + i * ldc + 8 * v, lm, r);
      else _mm256_storeu_ps(c + i * ldc + 8 * v, r);
    }
  }
}

typedef void (*tile_fn)(const mi_dconv_job *j, int64_t ir, const float *const a[TR], const float *x, __m256i lm,
                        int64_t pc, int64_t ks, int64_t kn, float *part, bool first, bool last, float *c,
                        int64_t ldc, int mr, const float *pfx, const int32_t *pft, int64_t npf);
#define TILE_FN(NAME, NV, FULL)                                                                                  \
  static void NAME(const mi_dconv_job *j, int64_t ir, const float *const a[TR], const float *x, __m256i lm,      \
                   int64_t pc, int64_t ks, int64_t kn, float *part, bool first, bool last, float *c, int64_t ldc, \
                   int mr, const float *pfx, const int32_t *pft, int64_t npf) {                                  \
    tile(NV, FULL, j, ir, a, x, lm, pc, ks, kn, part, first, last, c, ldc, mr, pfx, pft, npf);                   \
  }
TILE_FN(tile1, 1, false)
TILE_FN(tile2, 2, false)
TILE_FN(tile3, 3, false)
TILE_FN(tile1_full, 1, true)
TILE_FN(tile2_full, 2, true)
TILE_FN(tile3_full, 3, true)
#undef TILE_FN

void mi_dconv_run_avx2(const mi_dconv_job *j, int64_t begin, int64_t end) {
  const int64_t M = j->a.M, K = j->a.K, nblk = plane_tiles(j), grp = group(j);
  const int64_t ngrp = (M + grp - 1) / grp, mp = (M + MR - 1) / MR * MR; /* rows in whole panels */
  const int64_t nvec = (j->q_end + 7) / 8;
  const bool in_place = j->row == j->cols; /* no grid columns to drop */
  static const tile_fn run_fn[2][3] = {{tile1, tile2, tile3}, {tile1_full, tile2_full, tile3_full}};
  float buf[TR * NB] __attribute__((aligned(32)));
  float part[MGROUP * NB] __attribute__((aligned(32)));
  for (int64_t it = begin; it < end; it++) {
    int64_t g, b, z;
    mi_dconv_item(j, it, nblk, ngrp, &g, &b, &z);
    const int64_t v0 = b * nvec / nblk, v1 = (b + 1) * nvec / nblk, q0 = 8 * v0;
    const int64_t n = 8 * v1 < j->q_end ? 8 * v1 - q0 : j->q_end - q0;
    const int nv = (int)(v1 - v0), rem = (int)(n - 8 * (nv - 1));
    const __m256i lm = _mm256_cmpgt_epi32(_mm256_set1_epi32(rem), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    const tile_fn run = run_fn[rem == 8][nv - 1];
    const float *x = j->x + z * j->x_plane + q0;
    const int64_t m0 = g * grp, me = m0 + grp < M ? m0 + grp : M, tiles = (me - m0 + TR - 1) / TR;
    for (int64_t pc = 0; pc < K; pc += j->a.kc) {
      const int64_t kc = K - pc < j->a.kc ? K - pc : j->a.kc;
      for (int64_t ks = 0; ks < kc; ks += KSTEP) {
        const int64_t kn = kc - ks < KSTEP ? kc - ks : KSTEP;
        const bool first = pc == 0 && ks == 0, last = pc + ks + kn >= K;
        const mi_dconv_prefetch pf = mi_dconv_prefetch_of(j, x, pc + ks + kn, KSTEP, it, end, nblk, ngrp, nvec, 8, false);
        for (int64_t ir = m0; ir < me; ir += TR) {
          const int mr = me - ir < TR ? (int)(me - ir) : TR;
          /* row r's weights: panel r / MR, lane r % MR; rows past the panels read row ir (not stored) */
          const float *a[TR];
          for (int i = 0; i < TR; i++) {
            const int64_t r = ir + i < mp ? ir + i : ir;
            a[i] = j->a.data + pc * j->a.mp + r / MR * MR * kc + ks * MR + r % MR;
          }
          float *c = in_place ? j->y + ir * j->ldy + z * j->out_plane + q0 : buf;
          const int64_t ldc = in_place ? j->ldy : NB;
          float *pp = part + (ir - m0) * NB;
          const int64_t ti = (ir - m0) / TR, f0 = ti * pf.n / tiles, np = (ti + 1) * pf.n / tiles - f0;
          run(j, ir, a, x, lm, pc, ks, kn, pp, first, last, c, ldc, mr, pf.x, pf.toff + f0, np);
          if (!last) continue;
          if (!in_place) mi_dconv_scatter_runs(j, buf, NB, z, q0, n, ir, mr);
          else if (j->epi) j->epi->fn(j->epi->ctx, ir, mr, z * j->out_plane + q0, n, c, j->ldy);
        }
      }
    }
  }
}
#endif
