/* Direct convolution micro-kernel and driver, AVX-512F (see dconv.h).
 * Compiled with -mavx512f -mfma; only called when CPUID reports AVX-512F.
 * dconv_bf16.c compiles the same code again with DC_FMA as the AVX512-BF16
 * pair product (operands holding two bf16 values per 32-bit lane). */
#include "dconv.h"

#ifndef DC_FMA
#define DC_FMA(acc, a, b) _mm512_fmadd_ps(a, b, acc)
#define DC_NAME(x) x
#endif

#ifdef MI_GEMM_X86
#include <immintrin.h>
#include <string.h>

#define MR 8      /* channels per tile: the SGEMM's packed panels */
#define NB 48     /* positions per tile: three vectors */
#define MGROUP 64 /* channels per work item */
#define KSTEP 96  /* weight rows per pass over a group (the packing's K blocks in steps of it) */

bool DC_NAME(mi_dconv_supported)(const mi_gemm_packed_view *a) {
  return a->data && a->mr == MR && !strcmp(a->kernel, "avx512");
}

/* Output rows of whole vectors (a row of 16, 32, 48.. columns on a grid
 * with extra columns): then vectors run over the output positions only,
 * each inside one grid row, and the grid's extra columns are neither
 * computed nor dropped (a 32^3 map's grid of 34 columns did 6 % more
 * products than it kept, a 96^3 one's 2 %). */
static bool DC_NAME(row_vectors)(const mi_dconv_job *j) { return j->row > j->cols && j->cols % 16 == 0; }

/* Vectors of a plane: of its grid's positions, or of its output rows. */
static int64_t DC_NAME(plane_vectors)(const mi_dconv_job *j) {
  return DC_NAME(row_vectors)(j) ? ((j->q_end - j->cols) / j->row + 1) * (j->cols / 16) : (j->q_end + 15) / 16;
}

/* A plane's positions as whole vectors, dealt evenly to tiles of at most
 * three: 61 positions are two tiles of two vectors, not 48 + 13. */
static int64_t DC_NAME(plane_tiles)(const mi_dconv_job *j) { return (DC_NAME(plane_vectors)(j) + 2) / 3; }

static int64_t DC_NAME(group)(const mi_dconv_job *j) { return j->mgroup > 0 && j->mgroup < MGROUP ? j->mgroup : MGROUP; }

int64_t DC_NAME(mi_dconv_items)(const mi_dconv_job *j) {
  return j->planes * DC_NAME(plane_tiles)(j) * ((j->a.M + DC_NAME(group)(j) - 1) / DC_NAME(group)(j));
}

/* Rows [ks, ks + kn) of the weights' K block at pc (kc rows) for channels
 * [ir, ir + MR) x positions [0, 16 NV) of the tile at x (the source at its
 * first position), the last vector limited to lane mask lm.  Partial sums
 * live in part[i * NB + ..] between calls (first: start from zero); the
 * last call adds bias and the residual rc (aligned with c; NULL: none),
 * applies ReLU and stores to c[i * ldc + ..]. */
static inline __attribute__((always_inline)) void tile(const int NV, const mi_dconv_job *j, int64_t ir,
                                                      const float *x, __mmask16 lm, int64_t pc, int64_t kc,
                                                      int64_t ks, int64_t kn, float *part, bool first, bool last,
                                                      float *c, int64_t ldc, int mr, const float *pfx,
                                                      const int32_t *pft, int64_t npf, const int64_t *soff,
                                                      const __mmask16 *smask, const float *rc, const int64_t *vq) {
  const mi_gemm_packed_view *A = &j->a;
  __m512 acc[MR][3];
#pragma GCC unroll 8
  for (int i = 0; i < MR; i++)
#pragma GCC unroll 3
    for (int v = 0; v < NV; v++) acc[i][v] = first ? _mm512_setzero_ps() : _mm512_load_ps(part + i * NB + 16 * v);
  const float *a = A->data + pc * A->mp + ir * kc + ks * MR;
  const int32_t *t = j->toff + pc + ks;
#pragma GCC unroll 2
  for (int64_t k = 0; k < kn; k++, a += MR) {
    if (k < npf) { /* the source rows of the tile's next K step, into L2 */
      const char *pp = (const char *)(pfx + pft[k]);
#pragma GCC unroll 3
      for (int v = 0; v < NV; v++) _mm_prefetch(pp + 64 * v, _MM_HINT_T1);
    }
    const float *xp = x + t[k];
    __m512 b[3];
#pragma GCC unroll 3
    for (int v = 0; v < NV; v++)
      b[v] = v == NV - 1 ? _mm512_maskz_loadu_ps(lm, xp + vq[v]) : _mm512_loadu_ps(xp + vq[v]);
#pragma GCC unroll 8
    for (int i = 0; i < MR; i++) {
      const __m512 ai = _mm512_set1_ps(a[i]);
#pragma GCC unroll 3
      for (int v = 0; v < NV; v++) acc[i][v] = DC_FMA(acc[i][v], ai, b[v]);
    }
  }
  if (!last) {
#pragma GCC unroll 8
    for (int i = 0; i < MR; i++)
#pragma GCC unroll 3
      for (int v = 0; v < NV; v++) _mm512_store_ps(part + i * NB + 16 * v, acc[i][v]);
    return;
  }
  const __m512 zero = _mm512_setzero_ps();
#pragma GCC unroll 8
  for (int i = 0; i < MR; i++) {
    if (i >= mr) break;
    const __m512 bi = j->bias ? _mm512_set1_ps(j->bias[ir + i]) : zero;
#pragma GCC unroll 3
    for (int v = 0; v < NV; v++) {
      __m512 r = _mm512_add_ps(acc[i][v], bi);
      if (rc && soff) /* the two rows' lanes: disjoint masks */
        r = _mm512_add_ps(r, _mm512_add_ps(_mm512_maskz_loadu_ps(smask[2 * v], rc + i * ldc + soff[2 * v]),
                                           _mm512_maskz_loadu_ps(smask[2 * v + 1], rc + i * ldc + soff[2 * v + 1])));
      else if (rc)
        r = _mm512_add_ps(r, _mm512_maskz_loadu_ps(v == NV - 1 ? lm : (__mmask16)0xFFFFu, rc + i * ldc + 16 * v));
      if (j->relu) r = _mm512_max_ps(r, zero);
      if (soff) { /* straight to Y: the vector's lanes on each of the (at most two) grid rows it meets */
        _mm512_mask_storeu_ps(c + i * ldc + soff[2 * v], smask[2 * v], r);
        _mm512_mask_storeu_ps(c + i * ldc + soff[2 * v + 1], smask[2 * v + 1], r);
      } else if (v == NV - 1) {
        _mm512_mask_storeu_ps(c + i * ldc + 16 * v, lm, r);
      } else {
        _mm512_storeu_ps(c + i * ldc + 16 * v, r);
      }
    }
  }
}

#define TILE_FN(NV)                                                                                            \
  static void tile##NV(const mi_dconv_job *j, int64_t ir, const float *x, __mmask16 lm, int64_t pc, int64_t kc, \
                       int64_t ks, int64_t kn, float *part, bool first, bool last, float *c, int64_t ldc,      \
                       int mr, const float *pfx, const int32_t *pft, int64_t npf, const int64_t *soff,         \
                       const __mmask16 *smask, const float *rc, const int64_t *vq) {                          \
    tile(NV, j, ir, x, lm, pc, kc, ks, kn, part, first, last, c, ldc, mr, pfx, pft, npf, soff, smask, rc, vq); \
  }
TILE_FN(1)
TILE_FN(2)
TILE_FN(3)
#undef TILE_FN

void DC_NAME(mi_dconv_run)(const mi_dconv_job *j, int64_t begin, int64_t end) {
  const int64_t M = j->a.M, K = j->a.K, nblk = DC_NAME(plane_tiles)(j), grp = DC_NAME(group)(j);
  const int64_t ngrp = (M + grp - 1) / grp;
  const bool rows = DC_NAME(row_vectors)(j);
  const int64_t nvec = DC_NAME(plane_vectors)(j);
  /* no grid columns to drop: Y's positions in the tile's order */
  const bool in_place = j->row == j->cols || rows;
  float buf[MR * NB] __attribute__((aligned(64)));
  float part[MGROUP * NB] __attribute__((aligned(64)));
  for (int64_t it = begin; it < end; it++) {
    int64_t g, b, z;
    mi_dconv_item(j, it, nblk, ngrp, &g, &b, &z);
    const int64_t v0 = b * nvec / nblk, v1 = (b + 1) * nvec / nblk, q0 = 16 * v0;
    /* q0: the tile's first position, in Y's order (the grid's unless rows) */
    const int64_t end_q = rows ? 16 * nvec : j->q_end;
    const int64_t n = 16 * v1 < end_q ? 16 * v1 - q0 : end_q - q0;
    const int nv = (int)(v1 - v0), rem = (int)(n - 16 * (nv - 1));
    const __mmask16 lm = (__mmask16)(rem >= 16 ? 0xFFFFu : (1u << rem) - 1u);
    const int64_t g0 = mi_dconv_grid_q(j, rows, q0); /* its source: grid position g0 on */
    int64_t vq[3];
    for (int v = 0; v < 3; v++) vq[v] = mi_dconv_grid_q(j, rows, q0 + 16 * v) - g0;
    const float *x = j->x + z * j->x_plane + g0;
    const int64_t m0 = g * grp, me = m0 + grp < M ? m0 + grp : M, panels = (me - m0 + MR - 1) / MR;
    /* A grid with extra columns and no epilogue: the tile's vectors go
     * straight to Y by masked stores, lane l of vector v (grid position
     * p = q0 + 16 v + l, row r) to output z * out_plane + p - r * (row -
     * cols) when p % row < cols; else through buf (scatter_runs). */
    int64_t soff[6];
    __mmask16 smask[6];
    const bool direct = !in_place && !j->epi && j->row >= 16;
    for (int v = 0; direct && v < nv; v++) {
      const int64_t p0 = q0 + 16 * v, r0 = p0 / j->row;
      const unsigned valid = v == nv - 1 ? lm : 0xFFFFu;
      for (int h = 0; h < 2; h++) {
        const int64_t r = r0 + h, c0 = r * j->row - p0; /* lane of the row's first column (may be negative) */
        unsigned m = 0;
        for (int l = 0; l < 16; l++) {
          const int64_t c = l - c0;
          if (c >= 0 && c < j->cols) m |= 1u << l;
        }
        smask[2 * v + h] = (__mmask16)(m & valid);
        soff[2 * v + h] = z * j->out_plane + p0 - r * (j->row - j->cols);
      }
    }
    /* K in steps of KSTEP rows: the tile's source rows, the weights' panel
     * rows and the group's partial sums stay in L1 across the group. */
    for (int64_t pc = 0; pc < K; pc += j->a.kc) {
      const int64_t kc = K - pc < j->a.kc ? K - pc : j->a.kc;
      for (int64_t ks = 0; ks < kc; ks += KSTEP) {
        const int64_t kn = kc - ks < KSTEP ? kc - ks : KSTEP;
        const bool first = pc == 0 && ks == 0, last = pc + ks + kn >= K;
        /* The next rows into L2 (mi_dconv_prefetch_of), the group's panels
         * sharing them out, a few per k: issued all from the first panel they
         * held its loads up behind the misses (a 1x1 layer of 256 -> 64
         * channels at 56x56, input from L3, one thread, best of 8 rounds:
         * 1013 -> 940 us; whole networks within this machine's noise). */
        const mi_dconv_prefetch pf = mi_dconv_prefetch_of(j, x, pc + ks + kn, KSTEP, it, end, nblk, ngrp, nvec, 16, rows);
        const float *pfx = pf.x;
        const int32_t *pft = pf.toff;
        const int64_t npf = pf.n;
        for (int64_t ir = m0; ir < me; ir += MR) {
          const int mr = me - ir < MR ? (int)(me - ir) : MR;
          float *c = in_place ? j->y + ir * j->ldy + z * j->out_plane + q0 : direct ? j->y + ir * j->ldy : buf;
          const int64_t ldc = in_place || direct ? j->ldy : NB;
          float *pp = part + (ir - m0) * NB;
          const int64_t pi = (ir - m0) / MR, f0 = pi * npf / panels, np = (pi + 1) * npf / panels - f0;
          const int32_t *pft_i = pft + f0;
          const int64_t *so = direct ? soff : NULL;
          const float *rc = j->res && (in_place || direct) ? j->res + (c - j->y) : NULL; /* else epi (conv.c) */
          if (nv == 3) tile3(j, ir, x, lm, pc, kc, ks, kn, pp, first, last, c, ldc, mr, pfx, pft_i, np, so, smask, rc, vq);
          else if (nv == 2) tile2(j, ir, x, lm, pc, kc, ks, kn, pp, first, last, c, ldc, mr, pfx, pft_i, np, so, smask, rc, vq);
          else tile1(j, ir, x, lm, pc, kc, ks, kn, pp, first, last, c, ldc, mr, pfx, pft_i, np, so, smask, rc, vq);
          if (!last) continue;
          if (!in_place && !direct) mi_dconv_scatter_runs(j, buf, NB, z, q0, n, ir, mr);
          else if (j->epi) j->epi->fn(j->epi->ctx, ir, mr, z * j->out_plane + q0, n, c, j->ldy);
        }
      }
    }
  }
}
#endif
