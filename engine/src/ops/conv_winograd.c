/* Winograd F(4x4, 3x3), F(3x3, 3x3) and F(2x2, 3x3) convolution (see
 * conv_winograd.h).
 *
 * Per chunk of output tiles, three passes over the thread pool:
 *   1. input transform: V_xi[plane][panel][c][NR] (B^T d B of every 6x6
 *      (4x4) patch, written straight into the SGEMM micro-kernel's B panels);
 *   2. 36 (16) products M_xi[m][t] = U_xi[m][(kz, c)] V_xi[(kz, c)][t], run as
 *      micro-kernel calls on the packed U (no packing per call);
 *   3. output transform A^T M A with the epilogue, stored to Y.
 * 2D layers fold the batch into the tile index; 3D layers run a slab of
 * output planes at a time, each reading kd consecutive transformed input
 * planes.  bf16 products (MI_WINO_BF16): pass 1 writes V as rows of
 * channel pairs, pass 2 runs each element's product as a 1x1 layer of the
 * bf16 direct kernel (bf16_job). */
#include "conv_winograd.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "../gemm/dconv.h"
#include "../gemm/wino.h"

#define NXI 36 /* the most transform elements: F(4x4)'s 6x6 */
#define CHUNK_L2 ((int64_t)1 << 20)     /* V + M of a thread's chunk: a core's L2 */
#define CHUNK_SHARED ((int64_t)16 << 20) /* V + M of a chunk all threads work on */

struct mi_wino_weights {
  mi_gemm_packed_a *u[NXI]; /* nxi of them (FP32 products) */
#ifdef MI_GEMM_X86
  mi_dconv_bf16_weights ub[NXI]; /* or, bf16: U_xi as a 1x1 layer's [M, C, kd] for the bf16 direct kernel */
#endif
  int tile, nxi;            /* 4: F(4x4, 3x3), 36 elements; 3: F(3x3, 3x3), 25; 2: F(2x2, 3x3), 16 */
  bool bf16;                /* the products in bf16 (MI_WINO_BF16): ub, not u */
  int64_t M, C, kd;
  mi_isa isa; /* the kernels U is packed for; the transforms of that level (AVX-512, AVX2), else portable */
};

/* bf16: each element's whole U_xi [M][C][kd] at once, as the pair packing
 * takes it, then packed (a 2048 -> 512 layer: 64 MB for the 16, freed here,
 * where its FP32 F(4x4) U keeps 151 MB). */
static bool make_bf16(mi_wino_weights *r, const mi_gemm_packed_a *wp) {
#ifdef MI_GEMM_X86
  const int64_t M = r->M, C = r->C, kd = r->kd, K = C * kd, rows = 16;
  float *u = malloc((size_t)(r->nxi * M * K) * sizeof(float)), *w = malloc((size_t)(rows * K * 9) * sizeof(float));
  bool ok = u && w;
  for (int64_t m0 = 0; ok && m0 < M; m0 += rows) {
    const int64_t n = M - m0 < rows ? M - m0 : rows;
    mi_gemm_packed_a_rows(wp, m0, n, w);
    for (int64_t i = 0; i < n; i++)
      for (int64_t k = 0; k < K; k++) { /* k = (c, kz): W's own order */
        float t[NXI];
        mi_wino_filter(r->tile, w + (i * K + k) * 9, t);
        for (int xi = 0; xi < r->nxi; xi++) u[(xi * M + m0 + i) * K + k] = t[xi];
      }
  }
  for (int xi = 0; ok && xi < r->nxi; xi++) ok = mi_dconv_bf16_pack(u + xi * M * K, M, C, kd, &r->ub[xi]);
  free(u);
  free(w);
  return ok;
#else
  (void)r, (void)wp;
  return false;
#endif
}

mi_wino_weights *mi_wino_weights_make(const mi_gemm_packed_a *wp, int64_t C, int64_t kd, int scheme) {
  const mi_isa isa = mi_isa_level();
  const int64_t M = mi_gemm_packed_a_view(wp).M;
  const bool bf16 = scheme & MI_WINO_BF16;
  const int tile = scheme & ~MI_WINO_BF16;
  if (isa == MI_ISA_GENERIC || M < 1 || C < 1 || kd < 1 || mi_gemm_packed_a_view(wp).K != C * kd * 9) return NULL;
  if (tile < 2 || tile > 4) return NULL;
#ifdef MI_GEMM_X86
  if (bf16 && (tile != 2 || isa != MI_ISA_AVX512 || !mi_dconv_bf16_supported())) return NULL;
#else
  if (bf16) return NULL;
#endif
  const int64_t K = kd * C;
  mi_wino_weights *r = calloc(1, sizeof *r);
  if (!r) return NULL;
  r->M = M, r->C = C, r->kd = kd, r->isa = isa, r->bf16 = bf16;
  r->tile = tile, r->nxi = (tile + 2) * (tile + 2);
  if (bf16) {
    if (make_bf16(r, wp)) return r;
    mi_wino_weights_free(r);
    return NULL;
  }
  const int nxi = r->nxi;
  bool ok = true;
  for (int xi = 0; xi < nxi && ok; xi++) ok = (r->u[xi] = mi_gemm_packed_a_alloc(isa, M, K)) != NULL;
  /* lane groups must not straddle the products' column panels */
  const int64_t mr = ok ? mi_gemm_packed_a_mr(r->u[0]) : 0;
  float *u = ok ? malloc((size_t)(nxi * mr * K) * sizeof(float)) : NULL; /* [xi][row][kz, c] of mr rows */
  float *w = ok ? malloc((size_t)(mr * K * 9) * sizeof(float)) : NULL;    /* mr rows of W */
  if (!u || !w || mi_gemm_packed_a_view(r->u[0]).nr % MI_WINO_LANES) {
    free(u);
    free(w);
    mi_wino_weights_free(r);
    return NULL;
  }
  /* A few rows at a time, straight into the packed matrices: no full-size
   * intermediate (the 2048 -> 512 3x3 head of an FCN would need 150 MB). */
  for (int64_t m0 = 0; m0 < M; m0 += mr) {
    const int64_t n = M - m0 < mr ? M - m0 : mr;
    mi_gemm_packed_a_rows(wp, m0, n, w);
    for (int64_t i = 0; i < n; i++)
      for (int64_t c = 0; c < C; c++)
        for (int64_t z = 0; z < kd; z++) {
          float t[NXI];
          mi_wino_filter(tile, w + ((i * C + c) * kd + z) * 9, t);
          for (int xi = 0; xi < nxi; xi++) u[(xi * mr + i) * K + z * C + c] = t[xi];
        }
    for (int xi = 0; xi < nxi; xi++) mi_gemm_packed_a_fill_rows(r->u[xi], m0, n, u + xi * mr * K, K);
  }
  free(u);
  free(w);
  return r;
}

mi_gemm_packed_a *mi_wino_weights_exact(const mi_wino_weights *w) {
  if (w->bf16) return NULL;
  const int64_t M = w->M, K = w->kd * w->C;
  const int pts = w->tile + 2; /* points per side: 6 or 4 */
  mi_gemm_packed_a *p = mi_gemm_packed_a_alloc(w->isa, M, 9 * K);
  const int64_t mr = p ? mi_gemm_packed_a_mr(p) : 0;
  float *u = p ? malloc((size_t)(w->nxi * mr * K) * sizeof(float)) : NULL, *g = u ? malloc((size_t)(mr * 9 * K) * sizeof(float)) : NULL;
  if (!g) {
    free(u);
    mi_gemm_packed_a_free(p);
    return NULL;
  }
  /* L G = I.  F(4x4): rows 0 and 5 of G are (1/4, 0, 0) and (0, 0, 1),
   * rows 2 - 1 (0, 1/3, 0); F(3x3): rows 0 and 4 (1/2, 0, 0) and (0, 0, 1),
   * 3 row 2 - row 1 (0, 1, 0); F(2x2): rows 0 and 3 (1, 0, 0) and
   * (0, 0, 1), rows 1 - 2 (0, 1, 0). */
  static const float L4[3][6] = {{4, 0, 0, 0, 0, 0}, {0, -3, 3, 0, 0, 0}, {0, 0, 0, 0, 0, 1}};
  static const float L3[3][6] = {{2, 0, 0, 0, 0}, {0, -1, 3, 0, 0}, {0, 0, 0, 0, 1}};
  static const float L2[3][6] = {{1, 0, 0, 0}, {0, 1, -1, 0}, {0, 0, 0, 1}};
  const float(*L)[6] = w->tile == 4 ? L4 : w->tile == 3 ? L3 : L2;
  for (int64_t m0 = 0; m0 < M; m0 += mr) {
    const int64_t n = M - m0 < mr ? M - m0 : mr;
    for (int xi = 0; xi < w->nxi; xi++) mi_gemm_packed_a_rows(w->u[xi], m0, n, u + xi * mr * K);
    for (int64_t i = 0; i < n; i++)
      for (int64_t k = 0; k < K; k++) { /* k = (kz, c): W's column block (c, kz) */
        const int64_t c = k % w->C, z = k / w->C;
        float *gk = g + i * 9 * K + (c * w->kd + z) * 9;
        for (int a = 0; a < 3; a++)
          for (int b = 0; b < 3; b++) {
            double s = 0;
            for (int r = 0; r < pts; r++)
              for (int q = 0; q < pts; q++)
                if (L[a][r] != 0 && L[b][q] != 0) s += (double)L[a][r] * L[b][q] * u[((r * pts + q) * mr + i) * K + k];
            gk[a * 3 + b] = (float)s;
          }
      }
    mi_gemm_packed_a_fill_rows(p, m0, n, g, 9 * K);
  }
  free(g);
  free(u);
  return p;
}

void mi_wino_weights_free(mi_wino_weights *w) {
  if (!w) return;
  for (int xi = 0; xi < NXI; xi++) {
    mi_gemm_packed_a_free(w->u[xi]);
#ifdef MI_GEMM_X86
    free(w->ub[xi].data); /* mi_alloc_huge's */
#endif
  }
  free(w);
}

int mi_wino_weights_tile(const mi_wino_weights *w) { return w->tile; }
bool mi_wino_weights_bf16(const mi_wino_weights *w) { return w->bf16; }

size_t mi_wino_weights_bytes(const mi_wino_weights *w) {
  size_t b = 0;
  for (int xi = 0; w && xi < NXI; xi++) {
    b += mi_gemm_packed_a_bytes(w->u[xi]);
#ifdef MI_GEMM_X86
    if (w->ub[xi].data) b += (size_t)(w->ub[xi].view.mp * w->ub[xi].view.K) * sizeof(uint32_t);
#endif
  }
  return b;
}

static int64_t cdiv(int64_t a, int64_t b) { return (a + b - 1) / b; }
static int64_t clamp(int64_t v, int64_t lo, int64_t hi) { return v < lo ? lo : v > hi ? hi : v; }

/* Tiles (blocks of tile x tile outputs) per row and per plane of one
 * image: dy x dx sub-grids of output positions (a dilated layer's
 * interleaved undilated convolutions). */
static int64_t tiles_x(const mi_wino_conv *c, int tile) { return cdiv(cdiv(c->Wo, c->dx), tile); }
static int64_t tiles_plane(const mi_wino_conv *c, int tile) {
  return c->dy * c->dx * cdiv(cdiv(c->Ho, c->dy), tile) * tiles_x(c, tile);
}

/* bf16 mode: whether F(2x2) with its products in bf16 (MI_WINO_BF16) beats
 * the rival the rules below leave, an FP32 tile (of cost best) or bf16's
 * direct kernels, by a tenth: each counted in FP32 multiply-adds per
 * channel pair and tile (a bf16 one is half), the transforms too, each
 * value about TF_MACS multiply-adds' time, TF_MACS_BF16 where it also
 * becomes a pair.  Those two fit VGG-16-BN's and ResNet-50's layers, per
 * node against the FP32 tiles or bf16's kernels (ms): 64 -> 64 channels
 * at 224x224 (F(4x4) 6.8, here 11.4), 256 at 56x56 (5.2, 6.0), 512 at
 * 28x28 (5.2, 5.0), 512 at 14x14 (bf16's kernels 2.07, here 1.69), 256 at
 * 14x14 (0.54, 0.50); the products, the bf16 direct kernel's on vectors of
 * 16 tiles, ran slower on fewer than 32 tiles (a 512-channel 7x7 layer:
 * 0.55, 0.71).  PSPNet's dilated 512-channel 24x24 layers, whose 6x6
 * sub-grids the FP32 tiles fit too badly to pass: bf16's kernels 5.5, here
 * 4.3-4.6; its undilated 512-channel 24x24 head, 36 F(4x4) tiles: 4.8,
 * here 5.7. */
#define TF_MACS 15.0
#define TF_MACS_BF16 28.0
static bool bf16_products_pay(int64_t C, int64_t M, int64_t kd, int64_t tiles, int fp32_tile, int64_t fp32_cost,
                              int64_t exact) {
  if (tiles < 32 || kd * C < 16) return false;
  const double per = (double)(C + M) / ((double)(kd * C) * (double)M); /* transform values per multiply-add */
  const double mine = (double)(cdiv(tiles, 16) * 16) * (8 + 16 * TF_MACS_BF16 * per);
  const double rival = fp32_tile ? (double)fp32_cost * (1 + TF_MACS * per) : (double)exact / 2;
  return mine * 1.1 < rival;
}

int mi_wino_wanted(int64_t C, int64_t M, int64_t kd, const mi_wino_conv *c) {
  if (c->N * C * c->D * c->H * c->W >= INT32_MAX || c->N * M * c->Do * c->Ho * c->Wo >= INT32_MAX) return 0;
  /* MEDINFER_WINOGRAD=0: none; =1: every call that can, in the scheme the
   * rules below pick or else F(4x4); =4 / =3 / =2: every call, in that
   * tile; =5: every call in F(2x2), its products in bf16 where bf16 mode
   * runs the call (tests).  Read per call, not cached: the choice is per
   * layer and per call anyway. */
  const char *f = getenv("MEDINFER_WINOGRAD");
  const int force = f && f[0] >= '0' && f[0] <= '5' && !f[1] ? f[0] - '0' : -1;
  if (c->pool2 && (kd != 1 || c->D != 1 || c->dy != 1 || c->dx != 1 || c->res || force == 3)) return 0;
  if (force == 5) return c->bf16 ? 2 | MI_WINO_BF16 : 2;
  if (force == 0 || force >= 2) return force;
  const int64_t imgs = kd == 1 && c->D == 1 ? c->N : 1, exact = imgs * c->Ho * c->Wo * 9;
  /* Against bf16's kernels, only calls of 64M multiply-adds and more: below,
   * the passes' fixed costs ate the savings (DenseNet-121's 128 -> 32
   * layers, per-node sums: 56x56 ones 4.8 -> 4.1 ms on Winograd, 28x28
   * ones 3.3 -> 4.4, 14x14 ones 1.9 -> 2.6; 115M, 29M and 7M each). */
  if (c->bf16 && c->N * c->Do * c->Ho * c->Wo * kd * 9 * C * M < ((int64_t)1 << 26)) return force == 1 ? 4 : 0;
  /* Each tile's multiply-adds per channel pair: its transform elements
   * times its tiles (those hanging over the map's edge too), as the
   * products' kernel works on them: in vectors of 16 tiles, a remainder of
   * up to 8 by its narrow kernels (a 24x24 map: F(4x4)'s 36 tiles cost 36,
   * F(3x3)'s 64 cost 64, and measured so: 16.4 against 18.3 ms on the
   * 2048 -> 512 FCN head).  Below 16 tiles the products are mostly edge
   * kernels and reading U (4x the weights) costs more than the exact path;
   * few channels: the transforms dominate.  A tile must save enough over
   * the exact convolution to be worth its weight memory (F(4x4): 4x the
   * weights, at least 2.5x fewer multiply-adds; F(3x3) 2.8x, 2.25x; F(2x2)
   * 1.8x, 1.7x: ResNet-50's 512-channel 7x7 layers, 1.72x, 1.02 -> 0.76 ms
   * each); against bf16 mode's kernels, which run at twice the FP32 rate,
   * 3.25x: at 3x (2x and 4x had given about the same) ResNet-50's 14x14
   * layers of 256 channels (F(4x4), 16 tiles: 3.06x, the products on the
   * one-vector kernel) took Winograd at 0.37-0.43 ms per node against
   * 0.34-0.40 on bf16's kernels; the network, builds alternating in one
   * process, medians, 18.10 -> 17.78 ms (VGG-16-BN's 14x14 layers even).
   * Of those, the fewest multiply-adds, the larger tile on a tie. */
  int tile = 0;
  int64_t best = 0;
  for (int t = 4; t >= 2 && kd * C >= 16; t -= c->pool2 && t == 4 ? 2 : 1) { /* pool2: tiles of even side */
    const int64_t n = tiles_plane(c, t) * imgs, cols = n % 16 > 8 ? cdiv(n, 16) * 16 : n, cost = (t + 2) * (t + 2) * cols;
    const int64_t need20 = c->bf16 ? 65 : t == 4 ? 50 : t == 3 ? 45 : 34; /* exact >= cost * need20 / 20 */
    if (n < 16 || exact * 20 < cost * need20 || (tile && cost >= best)) continue;
    tile = t, best = cost;
  }
  if (c->bf16 && bf16_products_pay(C, M, kd, tiles_plane(c, 2) * imgs, tile, best, exact)) tile = 2 | MI_WINO_BF16;
  return force == 1 && !tile ? 4 : tile;
}

typedef void (*wino_in_fn)(int, const float *, int64_t, int64_t, int64_t, int64_t, const mi_wino_in_lanes *, float *,
                           int64_t);
typedef void (*wino_out_fn)(int, const float *, int64_t, const mi_wino_out_lanes *, int64_t, int64_t, int64_t,
                            const mi_wino_epi *, float *);

/* One chunk: tiles [t0, t0 + nt) of the tile space (2D: every image's
 * tiles in a row; 3D: one plane's), output planes [z0, z0 + po) of image n. */
typedef struct wino_run {
  const mi_wino_weights *w;
  const mi_wino_conv *c;
  const mi_node *n;
  mi_gemm_packed_view uv[NXI];
  int tile, nxi;      /* the weights' (mi_wino_weights) */
  bool fold;          /* 2D: images folded into the tile index */
  int64_t TX, TY, TP; /* tiles per sub-grid row, sub-grid rows, tiles per plane */
  int64_t K, NR, np, tp; /* np panels of NR tiles, tp = np * NR */
  int64_t mb, nmb;       /* the products' items: nmb blocks of mb rows of U */
  int64_t t0, nt, groups;
  int64_t img, z0, po, pzn; /* 3D: image, first output plane, planes out, planes in */
  int64_t tc, nq, slab;     /* the plan: chunk tiles, chunks per slab, planes per slab */
  float *v, *m;
  wino_in_fn in_tf; /* the transforms of U's kernel level: AVX-512, AVX2 or portable */
  wino_out_fn out_tf;
  /* bf16 products (w->bf16): V holds rows of channel pairs, V_xi[s][pair][ps]
   * (ps: the call's chunk tiles rounded to whole vectors), and each
   * element's product is a 1x1 job of the bf16 direct kernel, toff its rows
   * (pair, kz) -> (kz pairs + pair) ps; bitems: the job's work items */
  bool bf16;
  int64_t rows, ps, bitems; /* rows: V's per plane (C, or pairs) */
  const int32_t *toff;
} wino_run;

/* Tile t of the tile space: its image, and its first output row/column
 * (its sub-grid's positions are dy rows and dx columns apart). */
static void tile_pos(const wino_run *r, int64_t t, int64_t *n, int64_t *oy, int64_t *ox) {
  *n = r->fold ? t / r->TP : r->img;
  const int64_t p = r->fold ? t % r->TP : t, sub = p / (r->TY * r->TX), q = p % (r->TY * r->TX);
  *oy = sub / r->c->dx + r->c->dy * r->tile * (q / r->TX);
  *ox = sub % r->c->dx + r->c->dx * r->tile * (q % r->TX);
}

/* Floats from one transform element's V (M) to the next, for np panels: a
 * cache line over the element's own size, which for the layers here is a
 * multiple of 4 KB; else the transforms' 16 or 36 loads and stores, one
 * per element, all fall in one L1 set (F(2x2) on a 512-channel layer: the
 * output transform 13% of the layer's samples, on those loads). */
#define SKEW 16
static int64_t v_plane(const wino_run *r, int64_t np) {
  return r->pzn * (r->bf16 ? r->ps : np * r->NR) * r->rows + SKEW;
}
static int64_t m_plane(const wino_run *r, int64_t np) { return r->po * np * r->w->M * r->NR + SKEW; }

/* Channel ch's input plane s of the chunk (3D: a padding plane reads
 * nothing: NULL). */
static const float *input_plane(const wino_run *r, int64_t ch, int64_t s) {
  const mi_wino_conv *c = r->c;
  const int64_t C = r->w->C, plane = c->H * c->W;
  if (r->fold) return c->x + ch * plane;
  const int64_t zi = r->z0 - c->pz + s;
  return zi < 0 || zi >= c->D ? NULL : c->x + ((r->img * C + ch) * c->D + zi) * plane;
}

/* The patches of the item PF_AHEAD on (the same tiles, a later channel)
 * are prefetched: a group's items step through the channels, each plane a
 * stream of its own that the hardware prefetcher does not follow (a 3D
 * layer's channels are megabytes apart: the first row loads of each call
 * hold 15 % of the input transform's samples, with the prefetches too, so
 * they cover only part of the wait).  Runs alternating in one
 * process, medians: 3D U-Net bf16 808 -> 792 ms, VGG-16 fast 65.1 -> 64.1;
 * small 2D maps even (PSPNet 30.8 / 30.7, FCN-ResNet50 109.9 / 109.2,
 * ResNet-50 32.0 / 32.1); 1 or 4 items ahead no different from 2. */
#define PF_AHEAD 2

static void input_items(void *vctx, int64_t b, int64_t e) {
  const wino_run *r = vctx;
  const mi_wino_conv *c = r->c;
  const int64_t C = r->w->C, R = r->rows, xs = v_plane(r, r->np);
  static const mi_wino_in_lanes none; /* n = 0 */
  mi_wino_in_lanes T = {0};             /* the group's tiles, worked out once per group */
  int64_t tg = -1, ry0 = 0, ry1 = 0, cx0 = 0, cx1 = 0; /* the group's patches' rows and columns in a plane */
  const int64_t P = r->tile + 2, per = r->bf16 ? 2 : 1; /* channels per row of V */
  float pair[2][NXI * MI_WINO_LANES] __attribute__((aligned(64))); /* bf16: a pair's two transforms */
  for (int64_t it = b; it < e; it++) { /* group slowest: consecutive items share the tiles */
    const int64_t row = it % R, s = (it / R) % r->pzn, g = it / (R * r->pzn);
    const int64_t lt = g * MI_WINO_LANES; /* first tile of the group, in the chunk */
    if (g != tg) {
      tg = g;
      T.n = (int)(r->nt - lt < MI_WINO_LANES ? r->nt - lt : MI_WINO_LANES);
      ry0 = cx0 = INT64_MAX, ry1 = cx1 = INT64_MIN;
      for (int l = 0; l < T.n; l++) {
        int64_t n, oy, ox;
        tile_pos(r, r->t0 + lt + l, &n, &oy, &ox);
        T.y0[l] = (int32_t)(oy - c->py), T.x0[l] = (int32_t)(ox - c->px);
        T.off[l] = (int32_t)((r->fold ? n * C * c->H * c->W : 0) + T.y0[l] * c->W + T.x0[l]);
        ry0 = T.y0[l] < ry0 ? T.y0[l] : ry0, cx0 = T.x0[l] < cx0 ? T.x0[l] : cx0;
        ry1 = T.y0[l] > ry1 ? T.y0[l] : ry1, cx1 = T.x0[l] > cx1 ? T.x0[l] : cx1;
      }
      ry0 = clamp(ry0, 0, c->H), cx0 = clamp(cx0, 0, c->W);
      ry1 = clamp(ry1 + (P - 1) * c->dy + 1, ry0, c->H), cx1 = clamp(cx1 + (P - 1) * c->dx + 1, cx0, c->W);
    }
    const int64_t ahead = it + PF_AHEAD;
    for (int64_t h = 0; h < per; h++) {
      const int64_t ach = ahead % R * per + h;
      const float *pf = (!r->fold || c->N == 1) && ahead < e && ahead / (R * r->pzn) == g && ach < C
                            ? input_plane(r, ach, ahead / R % r->pzn)
                            : NULL;
      for (int64_t y = ry0; pf && y < ry1; y++)
        for (int64_t x = cx0; x < cx1; x += 16) __builtin_prefetch(pf + y * c->W + x, 0, 2);
    }
    /* The transforms load the lanes as vectors: from T, written a group
     * ago, not from a fresh per-item copy (a store-forwarding stall on
     * every call: 68% of F(2x2)'s input transform). */
    for (int64_t h = 0; h < per; h++) {
      const int64_t ch = row * per + h;
      if (ch >= C) break; /* an odd C's last pair: its high half zeros */
      const float *src = input_plane(r, ch, s);
      const mi_wino_in_lanes *lp = src ? &T : &none; /* padding plane: zeros */
      if (!src) src = c->x;
      if (r->bf16) r->in_tf(r->tile, src, c->H, c->W, c->dy, c->dx, lp, pair[h], MI_WINO_LANES);
      else r->in_tf(r->tile, src, c->H, c->W, c->dy, c->dx, lp,
                    r->v + ((s * r->np + lt / r->NR) * C + ch) * r->NR + lt % r->NR, xs);
    }
#ifdef MI_GEMM_X86
    if (r->bf16)
      mi_bf16_pair_lanes(pair[0], row * 2 + 1 < C ? pair[1] : NULL, r->nxi, r->v + (s * R + row) * r->ps + lt, xs);
#endif
  }
}

/* Items: (transform element, output plane, block of mb rows of U).  Each
 * packed block of U (kc x mr) is applied to every panel of tiles while it
 * is in L1, so U is read once per chunk, not once per panel (with a panel
 * per item, 64 tiles in two panels read a 2048 -> 512 layer's 105 MB of
 * F(3x3) U twice). */
static void product_items(void *vctx, int64_t b, int64_t e) {
  const wino_run *r = vctx;
  const int64_t M = r->w->M, C = r->w->C, K = r->K, NR = r->NR;
  for (int64_t it = b; it < e; it++) {
    const int64_t blk = it % r->nmb, o = (it / r->nmb) % r->po, xi = it / (r->nmb * r->po);
    const int64_t m0 = blk * r->mb, m1 = M < m0 + r->mb ? M : m0 + r->mb;
    const mi_gemm_packed_view *A = &r->uv[xi];
    float *cm = r->m + xi * m_plane(r, r->np) + o * M * r->tp;
    for (int64_t pc = 0; pc < K; pc += A->kc) {
      const int64_t kc = K - pc < A->kc ? K - pc : A->kc;
      for (int64_t ir = m0; ir < m1; ir += A->mr) {
        const float *pa = A->data + pc * A->mp + ir * kc;
        const int mr = (int)(M - ir < A->mr ? M - ir : A->mr);
        for (int64_t panel = 0; panel < r->np; panel++) {
          const int nr = (int)(r->nt - panel * NR < NR ? r->nt - panel * NR : NR); /* edge kernels for a short last panel */
          for (int64_t k = pc; k < pc + kc;) { /* pieces within one kernel plane kz */
            const int64_t kz = k / C, c0 = k - kz * C;
            const int64_t len = ((kz + 1) * C < pc + kc ? (kz + 1) * C : pc + kc) - k;
            const float *pb = r->v + xi * v_plane(r, r->np) + (((o + kz) * r->np + panel) * C + c0) * NR;
            A->kern(len, pa + (k - pc) * A->mr, pb, cm + ir * r->tp + panel * NR, r->tp, mr, nr, 1.f, k == 0 ? 0.f : 1.f);
            k += len;
          }
        }
      }
    }
  }
}

#ifdef MI_GEMM_X86
/* bf16: element xi's product for output plane o of the chunk, as a 1x1
 * layer of the bf16 direct kernel: its positions the chunk's tiles, its
 * input rows the element's pair rows of planes o .. o + kd - 1, its output
 * the element's sums M_xi [m][tp]. */
static mi_dconv_job bf16_job(const wino_run *r, int64_t xi, int64_t o) {
  mi_dconv_job j = {0};
  j.a = r->w->ub[xi].view;
  j.x = r->v + xi * v_plane(r, r->np) + o * r->rows * r->ps;
  j.toff = r->toff;
  j.planes = 1, j.q_end = r->nt, j.row = j.cols = j.out_plane = r->tp;
  j.y = r->m + xi * m_plane(r, r->np) + o * r->w->M * r->tp;
  j.ldy = r->tp;
  j.group_major = true; /* U_xi outweighs the chunk's V_xi: each thread reads its rows once */
  return j;
}

/* Items: (transform element, output plane, the job's own items). */
static void product_items_bf16(void *vctx, int64_t b, int64_t e) {
  const wino_run *r = vctx;
  for (int64_t it = b; it < e;) {
    const int64_t job = it / r->bitems, j0 = it % r->bitems;
    const int64_t j1 = r->bitems - j0 < e - it ? r->bitems : j0 + (e - it);
    const mi_dconv_job j = bf16_job(r, job / r->po, job % r->po);
    mi_dconv_run_bf16(&j, j0, j1);
    it += j1 - j0;
  }
}
#endif

/* The products of the chunk, items [b, e) (product_items' or, bf16,
 * product_items_bf16's). */
static void products(void *vctx, int64_t b, int64_t e) {
#ifdef MI_GEMM_X86
  if (((const wino_run *)vctx)->bf16) {
    product_items_bf16(vctx, b, e);
    return;
  }
#endif
  product_items(vctx, b, e);
}
static int64_t product_count(const wino_run *r) { return r->nxi * r->po * (r->bf16 ? r->bitems : r->nmb); }

static void act_fn(const void *ctx, float *v, int64_t n) { mi_activation_apply(ctx, v, n); }

/* The output transform reads each item's (P x P) sums from as many element
 * planes, a line in each, m_plane apart: more streams than the hardware
 * prefetchers follow, so the loads waited on L2 (AMD Zen 5: most of
 * mi_wino_out_avx512's samples on the first load).  The item OUT_PF
 * channels on is prefetched into L1; alternating builds in one process,
 * medians, fast mode: PSPNet (ResNet-18) 26.9 -> 26.1 ms, ResNet-50 24.9 ->
 * 24.4; FCN-ResNet50 and the 3D U-Net within noise; 2 and 8 ahead no
 * better. */
#define OUT_PF 4
static void output_items(void *vctx, int64_t b, int64_t e) {
  const wino_run *r = vctx;
  const mi_wino_conv *c = r->c;
  const int64_t M = r->w->M, ms = m_plane(r, r->np);
  /* pool2: the lanes place the pooled blocks (half the side) in the pooled planes */
  const int64_t Wy = c->pool2 ? c->Wo / 2 : c->Wo, plane = c->pool2 ? c->Ho / 2 * Wy : c->Ho * c->Wo;
  const int side = c->pool2 ? r->tile / 2 : r->tile;
  static const mi_activation none; /* MI_ACT_NONE */
  const mi_activation *act = c->no_act ? &none : &r->n->act;
  mi_wino_out_lanes L;
  int64_t tg = -1;
  for (int64_t it = b; it < e; it++) { /* group slowest, as in input_items */
    const int64_t m = it % M, o = (it / M) % r->po, g = it / (M * r->po);
    const int64_t lt = g * MI_WINO_LANES;
    if (g != tg) {
      tg = g;
      L.n = (int)(r->nt - lt < MI_WINO_LANES ? r->nt - lt : MI_WINO_LANES);
      for (int l = 0; l < L.n; l++) {
        int64_t n, oy, ox;
        tile_pos(r, r->t0 + lt + l, &n, &oy, &ox);
        int64_t rows = cdiv(c->Ho - oy, c->dy), cols = cdiv(c->Wo - ox, c->dx); /* 0 past the edge */
        if (c->pool2) /* whole windows only (floor); tiles start at even rows and columns */
          rows = (c->Ho - oy) / 2, cols = (c->Wo - ox) / 2, oy /= 2, ox /= 2;
        L.off[l] = (int32_t)((r->fold ? n * M * plane : 0) + oy * Wy + ox);
        L.rows[l] = (int32_t)(rows < side ? (rows > 0 ? rows : 0) : side);
        L.cols[l] = (int32_t)(cols < side ? (cols > 0 ? cols : 0) : side);
      }
    }
    const int64_t base = r->fold ? m * plane : ((r->img * M + m) * c->Do + r->z0 + o) * plane;
    mi_wino_epi ep = {c->bias ? c->bias[m] : 0.f, c->res ? c->res + base : NULL, act->kind == MI_ACT_RELU,
                      act->kind != MI_ACT_NONE && act->kind != MI_ACT_RELU ? act_fn : NULL, act, c->pool2};
    const float *src = r->m + (o * M + m) * r->tp + lt;
    if (m + OUT_PF < M)
      for (int k = 0; k < r->nxi; k++) __builtin_prefetch(src + OUT_PF * r->tp + k * ms, 0, 3); /* its element planes */
    r->out_tf(r->tile, src, ms, &L, Wy, c->dy, c->dx, &ep, c->y + base);
  }
}

/* Sizes of a chunk's buffers (floats) for nt tiles. */
static int64_t v_floats(const wino_run *r, int64_t nt) { return r->nxi * v_plane(r, cdiv(nt, r->NR)); }
static int64_t m_floats(const wino_run *r, int64_t nt) { return r->nxi * m_plane(r, cdiv(nt, r->NR)); }

/* Chunk idx of the plan: its tiles and planes (r->tc tiles per chunk, r->nq
 * chunks per plane slab, r->slab output planes per slab). */
static void chunk_at(wino_run *r, int64_t idx) {
  const mi_wino_conv *c = r->c;
  if (r->fold) {
    const int64_t total = c->N * r->TP;
    r->t0 = idx * r->tc;
    r->nt = total - r->t0 < r->tc ? total - r->t0 : r->tc;
    r->img = 0, r->z0 = 0, r->po = 1, r->pzn = 1;
  } else {
    const int64_t q = idx % r->nq, slabs = cdiv(c->Do, r->slab), s = (idx / r->nq) % slabs;
    r->img = idx / (r->nq * slabs);
    r->t0 = q * r->tc;
    r->nt = r->TP - r->t0 < r->tc ? r->TP - r->t0 : r->tc;
    r->z0 = s * r->slab;
    r->po = c->Do - r->z0 < r->slab ? c->Do - r->z0 : r->slab;
    r->pzn = r->po + r->w->kd - 1;
  }
  r->np = cdiv(r->nt, r->NR);
  r->tp = r->np * r->NR;
  r->groups = cdiv(r->nt, MI_WINO_LANES);
#ifdef MI_GEMM_X86
  if (r->bf16) {
    const mi_dconv_job j = bf16_job(r, 0, 0);
    r->bitems = mi_dconv_items_bf16(&j);
  }
#endif
}

/* Many chunks: each thread takes whole chunks (its buffers stay in its
 * cache from transform to product to output). */
typedef struct slot_ctx {
  const wino_run *base;
  int64_t chunks;
  _Atomic int64_t next;
  _Atomic bool oom;
} slot_ctx;

static void slot_items(void *vctx, int64_t b, int64_t e) {
  slot_ctx *s = vctx;
  wino_run r = *s->base;
  float *buf = malloc((size_t)(v_floats(&r, r.tc) + m_floats(&r, r.tc)) * sizeof(float) + 64);
  if (!buf) {
    s->oom = true;
    return;
  }
  r.v = (float *)(((uintptr_t)buf + 63) & ~(uintptr_t)63);
  r.m = r.v + v_floats(&r, r.tc);
  for (int64_t i = b; i < e; i++)
    for (int64_t idx; (idx = atomic_fetch_add(&s->next, 1)) < s->chunks;) {
      chunk_at(&r, idx);
      input_items(&r, 0, r.pzn * r.rows * r.groups);
      products(&r, 0, product_count(&r));
      output_items(&r, 0, r.po * r.w->M * r.groups);
    }
  free(buf);
}

/* bf16: the pair rows' stride for chunks of r->tc tiles, and the products'
 * row offsets, in scratch (NULL: out of memory). */
static int32_t *bf16_rows(mi_exec *ex, wino_run *r) {
  const int64_t kd = r->w->kd;
  r->ps = cdiv(r->tc, MI_WINO_LANES) * MI_WINO_LANES;
  int32_t *t = mi_exec_scratch(ex, (size_t)(r->rows * kd) * sizeof *t);
  for (int64_t p = 0; t && p < r->rows; p++) /* row (pair p, kz) of U_xi's packing */
    for (int64_t z = 0; z < kd; z++) t[p * kd + z] = (int32_t)((z * r->rows + p) * r->ps);
  r->toff = t;
  return t;
}

mi_status *mi_wino_conv_run(mi_exec *ex, const mi_node *n, const mi_wino_weights *w, const mi_wino_conv *c) {
  wino_run r = {.w = w, .c = c, .n = n, .tile = w->tile, .nxi = w->nxi, .bf16 = w->bf16};
  for (int xi = 0; xi < w->nxi && !w->bf16; xi++) r.uv[xi] = mi_gemm_packed_a_view(w->u[xi]);
  const int64_t C = w->C, M = w->M, threads = ex->threads > 0 ? ex->threads : 1, nxi = w->nxi;
  r.NR = w->bf16 ? MI_WINO_LANES : r.uv[0].nr;
  r.rows = w->bf16 ? (C + 1) / 2 : C; /* bf16: a pair in one 32-bit word */
  r.in_tf = mi_wino_in_generic, r.out_tf = mi_wino_out_generic;
#ifdef MI_GEMM_X86
  if (w->isa == MI_ISA_AVX512) r.in_tf = mi_wino_in_avx512, r.out_tf = mi_wino_out_avx512;
  else if (w->isa == MI_ISA_AVX2) r.in_tf = mi_wino_in_avx2, r.out_tf = mi_wino_out_avx2;
#endif
  r.K = w->kd * C;
  r.TX = tiles_x(c, r.tile);
  r.TY = cdiv(cdiv(c->Ho, c->dy), r.tile);
  r.TP = tiles_plane(c, r.tile);
  r.fold = w->kd == 1 && c->D == 1;
  /* Chunks whose buffers fit a core's L2, in whole lane groups; 3D slabs
   * of four output planes, each reading kd transformed input planes: a
   * slab transforms slab + kd - 1 planes, so each input plane 1.5 times for
   * a 3x3x3 layer, where slabs of two did it twice (the 3D U-Net in fast
   * mode, alternating: 907 -> 889 ms; at MEDINFER_ISA=avx2 1157 -> 1108
   * first quartile; six planes no better). */
  r.slab = r.fold ? 1 : (c->Do < 4 ? c->Do : 4);
  const int64_t space = r.fold ? c->N * r.TP : r.TP, zin = r.fold ? 1 : r.slab + w->kd - 1;
  int64_t tc = CHUNK_L2 / (nxi * (zin * r.rows + r.slab * M) * (int64_t)sizeof(float));
  tc = tc < r.NR ? r.NR : tc / r.NR * r.NR;
  int64_t nq = cdiv(space, tc);
  tc = cdiv(cdiv(space, nq), MI_WINO_LANES) * MI_WINO_LANES; /* even chunks */
  r.tc = tc, r.nq = r.fold ? 1 : nq, r.po = r.slab, r.pzn = zin;
  r.mb = M, r.nmb = 1;
  const int64_t chunks = r.fold ? nq : c->N * cdiv(c->Do, r.slab) * nq;
  /* bf16: a U of more than a core's L2 is read once per chunk of the
   * shared path below, not once per (smaller) chunk of each thread's own
   * (PSPNet's dilated 512-channel 24x24 layers, 8 MB of U: nine chunks of
   * 16 tiles each read it whole). */
  const bool u_big = r.bf16 && (int64_t)mi_wino_weights_bytes(w) > CHUNK_L2;
  int32_t *toff = NULL;
  if (!u_big && (chunks >= 2 * threads || threads == 1)) {
    if (r.bf16 && !(toff = bf16_rows(ex, &r)))
      return mi_node_error(n, MI_ERR_NO_MEMORY, "out of memory for the Winograd transforms");
    slot_ctx sc = {&r, chunks, 0, false};
    mi_parallel_for(ex, threads, 1, slot_items, &sc);
    if (toff) mi_exec_scratch_release(ex, toff);
    if (sc.oom) return mi_node_error(n, MI_ERR_NO_MEMORY, "out of memory for the Winograd transforms");
    return NULL;
  }
  /* Few chunks (small maps, wide layers): larger ones (each rereads the nxi
   * U matrices), one at a time, each pass split over the threads (the
   * products by transform element and blocks of U's rows: 16 items a
   * thread at least; bf16: by element and the job's own items). */
  const int64_t mr = r.bf16 ? 1 : r.uv[0].mr, blocks = cdiv(16 * threads, nxi * r.slab);
  r.mb = cdiv(cdiv(M, blocks), mr) * mr, r.nmb = cdiv(M, r.mb);
  tc = CHUNK_SHARED / (nxi * (zin * r.rows + r.slab * M) * (int64_t)sizeof(float));
  tc = tc < r.NR ? r.NR : tc / r.NR * r.NR;
  nq = cdiv(space, tc);
  tc = cdiv(cdiv(space, nq), MI_WINO_LANES) * MI_WINO_LANES;
  r.tc = tc, r.nq = r.fold ? 1 : nq;
  const int64_t shared_chunks = r.fold ? nq : c->N * cdiv(c->Do, r.slab) * nq;
  if (r.bf16 && !(toff = bf16_rows(ex, &r)))
    return mi_node_error(n, MI_ERR_NO_MEMORY, "out of memory for the Winograd transforms");
  r.v = mi_exec_scratch(ex, (size_t)v_floats(&r, tc) * sizeof(float));
  r.m = mi_exec_scratch(ex, (size_t)m_floats(&r, tc) * sizeof(float));
  if (!r.v || !r.m) {
    if (r.v) mi_exec_scratch_release(ex, r.v);
    if (r.m) mi_exec_scratch_release(ex, r.m);
    if (toff) mi_exec_scratch_release(ex, toff);
    return mi_node_error(n, MI_ERR_NO_MEMORY, "out of memory for the Winograd transforms");
  }
  for (int64_t idx = 0; idx < shared_chunks; idx++) {
    chunk_at(&r, idx);
    mi_parallel_for(ex, r.pzn * r.rows * r.groups, 4, input_items, &r);
    mi_parallel_for(ex, product_count(&r), 1, products, &r);
    mi_parallel_for(ex, r.po * M * r.groups, 4, output_items, &r);
  }
  mi_exec_scratch_release(ex, r.m);
  mi_exec_scratch_release(ex, r.v);
  if (toff) mi_exec_scratch_release(ex, toff);
  return NULL;
}
