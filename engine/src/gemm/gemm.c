/* medinfer SGEMM driver, GotoBLAS/BLIS structure:
 *
 *   for jc in N step NC            B panel KC x NC packed (L3/L2)
 *     for pc in K step KC
 *       pack B panel into NR-wide micro-panels (zero-padded)
 *       for ic in M step MC        A block MC x KC packed (L2)
 *         pack A block into MR-tall micro-panels (zero-padded)
 *         for jr in NC step NR     B micro-panel KC x NR stays in L1
 *           for ir in MC step MR
 *             micro-kernel: MR x NR tile of C in registers
 *
 * The micro-kernel (kernel_*.c) is picked from CPUID at run time.  When the
 * problem's N is a poor fit for the tile width and M a better one (the 7x7
 * layers of a CNN: N = 49), C^T = op(B)^T op(A)^T is computed instead into a
 * scratch buffer and transposed back.  Threads: the engine's shared workers
 * (pool.h; no thread creation per call); each thread computes its own
 * rectangle of C, split along N in SIMD-width units (or along M in tile
 * heights when N is narrow), with its own packing buffers. */
#define _POSIX_C_SOURCE 200809L
#include "gemm.h"
#include "../pool.h"
#include "medinfer/hugepages.h"

#include <stdatomic.h>
#include <stdio.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>

#define MAX_THREADS 64

static const mi_gemm_kernel *kernel_for(mi_isa isa) {
#ifdef MI_GEMM_X86
  if (isa == MI_ISA_AVX512 && mi_isa_supported(isa)) return &mi_gemm_kernel_avx512;
  if (isa >= MI_ISA_AVX2 && mi_isa_supported(MI_ISA_AVX2)) return &mi_gemm_kernel_avx2;
#else
  (void)isa;
#endif
  return &mi_gemm_kernel_generic;
}

/* ---- buffers ---------------------------------------------------------------- */
typedef struct slot {
  float *a, *b;
  size_t na, nb; /* floats */
} slot;

static float *grow(float **p, size_t *have, size_t need) {
  if (*have >= need) return *p;
  free(*p);
  *p = NULL;
  *have = 0;
  void *q = NULL;
  if (posix_memalign(&q, 64, need * sizeof(float))) return NULL;
  *p = q;
  *have = need;
  return *p;
}

static bool slot_reserve(slot *s, const mi_gemm_kernel *kd) {
  const int kcb = kd->kc_packed > kd->kc ? kd->kc_packed : kd->kc; /* B blocks follow A's */
  size_t na = (size_t)((kd->mc + kd->mr - 1) / kd->mr * kd->mr) * (size_t)kd->kc;
  size_t nb = (size_t)((kd->nc + kd->nr - 1) / kd->nr * kd->nr) * (size_t)kcb;
  return grow(&s->a, &s->na, na) && grow(&s->b, &s->nb, nb);
}

static void slot_free(slot *s) {
  free(s->a);
  free(s->b);
  memset(s, 0, sizeof *s);
}

/* ---- packing ------------------------------------------------------------------ */
/* op(B) block kc x nc, element (k, j) at B[k*rsb + j*csb], into NR-wide
 * micro-panels, panel p's row k at dst + p * ldp + k * NR. */
static void pack_b(const mi_gemm_kernel *kd, int64_t kc, int64_t nc, const float *B, int64_t rsb,
                   int64_t csb, float *dst, int64_t ldp) {
  const int NR = kd->nr;
  for (int64_t jr = 0; jr < nc; jr += NR, dst += ldp) {
    const int nr = nc - jr < NR ? (int)(nc - jr) : NR;
    const float *src = B + jr * csb;
    if (rsb == 1 && csb != 1 && kd->pack_b_cols) {
      kd->pack_b_cols(NR, kc, nr, src, csb, dst);
    } else if (csb == 1 && kd->pack_b_rows) {
      kd->pack_b_rows(NR, kc, nr, src, rsb, dst);
    } else if (csb == 1) {
      for (int64_t k = 0; k < kc; k++) {
        float *d = dst + k * NR;
        const float *s = src + k * rsb;
        for (int j = 0; j < nr; j++) d[j] = s[j];
        for (int j = nr; j < NR; j++) d[j] = 0.f;
      }
    } else {
      if (nr < NR)
        for (int64_t k = 0; k < kc; k++)
          for (int j = nr; j < NR; j++) dst[k * NR + j] = 0.f;
      /* Transposed B: 4 source columns at a time, each read contiguously when rsb == 1. */
      int j = 0;
      for (; j + 4 <= nr; j += 4) {
        const float *s0 = src + j * csb, *s1 = s0 + csb, *s2 = s1 + csb, *s3 = s2 + csb;
        float *d = dst + j;
        for (int64_t k = 0; k < kc; k++, d += NR) {
          d[0] = s0[k * rsb];
          d[1] = s1[k * rsb];
          d[2] = s2[k * rsb];
          d[3] = s3[k * rsb];
        }
      }
      for (; j < nr; j++) {
        const float *s = src + j * csb;
        for (int64_t k = 0; k < kc; k++) dst[k * NR + j] = s[k * rsb];
      }
    }
  }
}

/* op(A) block mc x kc, element (i, k) at A[i*rsa + k*csa], into MR-tall
 * micro-panels dst[panel][k][MR]. */
static void pack_a(const mi_gemm_kernel *kd, int64_t mc, int64_t kc, const float *A, int64_t rsa,
                   int64_t csa, float *dst) {
  const int MR = kd->mr;
  for (int64_t ir = 0; ir < mc; ir += MR, dst += kc * MR) {
    const int mr = mc - ir < MR ? (int)(mc - ir) : MR;
    const float *src = A + ir * rsa;
    if (csa == 1 && rsa != 1 && kd->pack_a_rows) {
      kd->pack_a_rows(MR, kc, mr, src, rsa, dst);
    } else if (rsa == 1) {
      for (int64_t k = 0; k < kc; k++) {
        float *d = dst + k * MR;
        const float *s = src + k * csa;
        for (int i = 0; i < mr; i++) d[i] = s[i];
        for (int i = mr; i < MR; i++) d[i] = 0.f;
      }
    } else {
      if (mr < MR)
        for (int64_t k = 0; k < kc; k++)
          for (int i = mr; i < MR; i++) dst[k * MR + i] = 0.f;
      int i = 0;
      for (; i + 4 <= mr; i += 4) {
        const float *s0 = src + i * rsa, *s1 = s0 + rsa, *s2 = s1 + rsa, *s3 = s2 + rsa;
        float *d = dst + i;
        for (int64_t k = 0; k < kc; k++, d += MR) {
          d[0] = s0[k * csa];
          d[1] = s1[k * csa];
          d[2] = s2[k * csa];
          d[3] = s3[k * csa];
        }
      }
      for (; i < mr; i++) {
        const float *s = src + i * rsa;
        for (int64_t k = 0; k < kc; k++) dst[k * MR + i] = s[k * csa];
      }
    }
  }
}

/* ---- one thread's rectangle --------------------------------------------------- */
typedef struct problem {
  const mi_gemm_kernel *kd;
  int64_t M, N, K;
  float alpha, beta;
  const float *A;
  int64_t rsa, csa;
  const float *B;
  int64_t rsb, csb;
  const float *pa; /* pre-packed op(A) (mi_gemm_pack_a layout) or NULL */
  int64_t pa_mp;   /* its rows rounded up to MR */
  mi_gemm_pack_b_fn packb; /* caller-packed op(B) (B unused) or NULL */
  void *packb_ctx;
  float *C; /* row-major, unit column stride */
  int64_t ldc;
  const mi_gemm_epilogue *epi; /* on final blocks, or NULL */
  /* thread split */
  int nt;
  bool split_n;
  int64_t unit, units;
  /* op(B) packed once for all threads (N within one NC block), block pc at
   * bsh + pc * bsh_np; NULL: each thread packs its own */
  float *bsh;
  int64_t bsh_np;
  int64_t kc; /* K block: the pre-packed A's, else the kernel's */
  /* units claimed as the threads come (mi_pool_claim), or NULL: equal
   * shares; only where no claim packs anything twice (below) */
  atomic_llong *next;
} problem;

static void gemm_rect(const problem *p, slot *s, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  const mi_gemm_kernel *kd = p->kd;
  const int MR = kd->mr, NR = kd->nr;
  const int64_t KC = p->kc, MC = kd->mc, NC = kd->nc;
  for (int64_t jc = n0; jc < n1; jc += NC) {
    const int64_t nc = n1 - jc < NC ? n1 - jc : NC;
    for (int64_t pc = 0; pc < p->K; pc += KC) {
      const int64_t kc = p->K - pc < KC ? p->K - pc : KC;
      const float beta = pc == 0 ? p->beta : 1.f;
      const mi_gemm_epilogue *epi = pc + kc >= p->K ? p->epi : NULL;
      const float *pb = p->bsh ? p->bsh + pc * p->bsh_np : s->b; /* shared: packed before the split */
      if (!p->bsh) {
        if (p->packb) p->packb(p->packb_ctx, pc, kc, jc, nc, NR, s->b, kc * NR);
        else pack_b(kd, kc, nc, p->B + pc * p->rsb + jc * p->csb, p->rsb, p->csb, s->b, kc * NR);
      }
      for (int64_t ic = m0; ic < m1; ic += MC) {
        const int64_t mc = m1 - ic < MC ? m1 - ic : MC;
        const float *pa = p->pa ? p->pa + pc * p->pa_mp + ic * kc : s->a;
        if (!p->pa) pack_a(kd, mc, kc, p->A + ic * p->rsa + pc * p->csa, p->rsa, p->csa, s->a);
        /* Shallow products (a 1x1 convolution with few input channels)
         * move more C than they compute: walk C along its rows then, so
         * the stores (and an epilogue's residual reads) stream. */
        const bool rows_first = kc == p->K && kc <= 128;
        const int64_t outer = rows_first ? mc : nc, inner = rows_first ? nc : mc;
        const int64_t ostep = rows_first ? MR : NR, istep = rows_first ? NR : MR;
        for (int64_t o = 0; o < outer; o += ostep)
          for (int64_t i = 0; i < inner; i += istep) {
            const int64_t ir = rows_first ? o : i, jr = rows_first ? i : o;
            const int mr = mc - ir < MR ? (int)(mc - ir) : MR, nr = nc - jr < NR ? (int)(nc - jr) : NR;
            float *cc = p->C + (ic + ir) * p->ldc + jc + jr;
            const float *ap = pa + (ir / MR) * kc * MR, *bp = pb + (jr / NR) * kc * NR;
            if (epi && epi->simple && kd->kern_epi &&
                kd->kern_epi(kc, ap, bp, cc, p->ldc, mr, nr, p->alpha, beta, epi->bias ? epi->bias + ic + ir : NULL,
                             epi->res ? epi->res + (cc - epi->c0) : NULL, epi->relu))
              continue;
            kd->kern(kc, ap, bp, cc, p->ldc, mr, nr, p->alpha, beta);
            if (epi) epi->fn(epi->ctx, ic + ir, mr, jc + jr, nr, cc, p->ldc);
          }
      }
    }
  }
}

static void run_units(const problem *p, slot *s, int64_t u0, int64_t u1) {
  if (p->split_n) {
    int64_t n0 = u0 * p->unit, n1 = u1 * p->unit < p->N ? u1 * p->unit : p->N;
    gemm_rect(p, s, 0, p->M, n0, n1);
  } else {
    int64_t m0 = u0 * p->unit, m1 = u1 * p->unit < p->M ? u1 * p->unit : p->M;
    gemm_rect(p, s, m0, m1, 0, p->N);
  }
}

static void run_part(const problem *p, slot *s, int tid) {
  int64_t u0, u1;
  if (p->next) {
    while (mi_pool_claim(p->next, p->units, 1, p->nt, &u0, &u1)) run_units(p, s, u0, u1);
    return;
  }
  u0 = p->units * tid / p->nt, u1 = p->units * (tid + 1) / p->nt;
  if (u0 < u1) run_units(p, s, u0, u1);
}

/* ---- threads -------------------------------------------------------------------------
 * The engine's shared workers (pool.h).  The packing buffers and the
 * transpose scratch belong to whoever holds the pool. */
static atomic_int g_threads = 1;
static slot g_slots[MAX_THREADS]; /* guarded by holding the pool */
static float *g_t;                /* transpose scratch, likewise */
static size_t g_nt;
static float *g_bsh;              /* op(B) packed for all threads, likewise */
static size_t g_nbsh;

void mi_gemm_set_threads(int threads) {
  atomic_store(&g_threads, threads < 1 ? 1 : threads > MAX_THREADS ? MAX_THREADS : threads);
}
int mi_gemm_threads(void) { return atomic_load(&g_threads); }

__attribute__((destructor)) static void gemm_shutdown(void) {
  for (int i = 0; i < MAX_THREADS; i++) slot_free(&g_slots[i]);
  free(g_t);
  g_t = NULL;
  g_nt = 0;
  free(g_bsh);
  g_bsh = NULL;
  g_nbsh = 0;
}

static void pool_part(void *ctx, int tid, int nt) {
  (void)nt;
  run_part(ctx, &g_slots[tid], tid);
}

static void run_pool(problem *p) { mi_pool_run(p->nt, pool_part, p); }

/* Shared op(B): thread tid packs its share of each K block's rows across
 * all of N, so a caller's gather reads each source row in one sweep (a 1x1
 * layer's channel plane: by panels it read 48 floats from each of K planes
 * in turn) and the shares are even whatever the panels (a 14x14 map's 196
 * columns are 5 panels of 48: 3 against 2). */
static void pack_shared_part(void *ctx, int tid, int nt) {
  const problem *p = ctx;
  const int64_t KC = p->kc, NR = p->kd->nr;
  for (int64_t pc = 0; pc < p->K; pc += KC) {
    const int64_t kc = p->K - pc < KC ? p->K - pc : KC, r0 = kc * tid / nt, r1 = kc * (tid + 1) / nt;
    if (r0 >= r1) continue;
    float *dst = p->bsh + pc * p->bsh_np + r0 * NR;
    if (p->packb) p->packb(p->packb_ctx, pc + r0, r1 - r0, 0, p->N, (int)NR, dst, kc * NR);
    else pack_b(p->kd, r1 - r0, p->N, p->B + (pc + r0) * p->rsb, p->rsb, p->csb, dst, kc * NR);
  }
}

/* ---- entry ------------------------------------------------------------------------------ */
static double fit(int64_t m, int64_t n, const mi_gemm_kernel *kd) {
  int64_t pm = (m + kd->mr - 1) / kd->mr * kd->mr, pn = (n + kd->vw - 1) / kd->vw * kd->vw;
  return (double)m / (double)pm * (double)n / (double)pn;
}

static void scale_c(int64_t M, int64_t N, float beta, float *C, int64_t ldc) {
  for (int64_t i = 0; i < M; i++)
    for (int64_t j = 0; j < N; j++) C[i * ldc + j] = beta == 0.f ? 0.f : beta * C[i * ldc + j];
}

void mi_gemm_sgemm_isa(mi_isa isa, int threads, bool trans_a, bool trans_b, int64_t M, int64_t N,
                       int64_t K, float alpha, const float *A, int64_t lda, const float *B,
                       int64_t ldb, float beta, float *C, int64_t ldc) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0 || alpha == 0.f) {
    scale_c(M, N, beta, C, ldc);
    return;
  }
  const mi_gemm_kernel *kd = kernel_for(isa);
  problem p = {kd, M, N, K, alpha, beta, A, trans_a ? 1 : lda, trans_a ? lda : 1,
               B, trans_b ? 1 : ldb, trans_b ? ldb : 1, NULL, 0, NULL, NULL, C, ldc, NULL, 1, true, 1, 1, NULL, 0, kd->kc, NULL};
  /* Transposed orientation into scratch when it fills the tiles better. */
  const bool transpose = M * N <= (1 << 22) && fit(N, M, kd) > 1.05 * fit(M, N, kd);
  if (transpose) {
    p.M = N;
    p.N = M;
    p.A = B;
    p.rsa = trans_b ? ldb : 1;
    p.csa = trans_b ? 1 : ldb;
    p.B = A;
    p.rsb = trans_a ? lda : 1;
    p.csb = trans_a ? 1 : lda;
    p.beta = 0.f;
    p.ldc = M;
  }
  /* Threads: at least ~1M multiply-adds each. */
  if (threads <= 0) threads = mi_gemm_threads();
  if (threads > MAX_THREADS) threads = MAX_THREADS;
  const double macs = (double)M * (double)N * (double)K;
  int nt = threads;
  while (nt > 1 && macs < (double)nt * 1e6) nt--;

  slot local = {0};
  float *tbuf = NULL, *tlocal = NULL;
  const bool pooled = mi_pool_acquire();
  if (pooled) {
    nt = mi_pool_threads(nt);
    bool ok = true;
    for (int t = 0; t < nt && ok; t++) ok = slot_reserve(&g_slots[t], kd);
    if (transpose && ok) ok = (tbuf = grow(&g_t, &g_nt, (size_t)(M * N))) != NULL;
    if (!ok) goto fallback;
  } else {
    /* Another thread is using the pool: run on this thread alone. */
    nt = 1;
    if (!slot_reserve(&local, kd)) goto fallback;
    if (transpose && !(tbuf = tlocal = grow(&tlocal, &(size_t){0}, (size_t)(M * N)))) goto fallback;
  }
  if (transpose) p.C = tbuf;

  /* Split along N in SIMD-width units, or along M in tile heights. */
  const int64_t nunits = (p.N + kd->vw - 1) / kd->vw, munits = (p.M + kd->mr - 1) / kd->mr;
  /* Splitting N makes every thread pack all of op(A) (M*K), splitting M all
   * of op(B) (K*N): duplicate the smaller one. */
  const bool prefer_n = p.M <= p.N;
  if ((prefer_n && nunits >= nt) || munits < nt) {
    p.split_n = true;
    p.unit = kd->vw;
    p.units = nunits;
  } else {
    p.split_n = false;
    p.unit = kd->mr;
    p.units = munits;
  }
  if (p.units < nt) nt = (int)p.units;
  p.nt = nt < 1 ? 1 : nt;

  if (pooled) run_pool(&p);
  else run_part(&p, &local, 0);

  if (transpose) { /* C[i][j] = T[j][i] (+ beta C) */
    for (int64_t i = 0; i < M; i++) {
      float *c = C + i * ldc;
      const float *t = tbuf + i;
      if (beta == 0.f)
        for (int64_t j = 0; j < N; j++) c[j] = t[j * M];
      else
        for (int64_t j = 0; j < N; j++) c[j] = t[j * M] + beta * c[j];
    }
  }
  if (pooled) mi_pool_release();
  slot_free(&local);
  free(tlocal);
  return;

fallback: /* out of memory for packing buffers: naive but correct */
  if (pooled) mi_pool_release();
  slot_free(&local);
  free(tlocal);
  for (int64_t i = 0; i < M; i++)
    for (int64_t j = 0; j < N; j++) {
      double s = 0;
      for (int64_t k = 0; k < K; k++)
        s += (double)(trans_a ? A[k * lda + i] : A[i * lda + k]) *
             (double)(trans_b ? B[j * ldb + k] : B[k * ldb + j]);
      C[i * ldc + j] = beta == 0.f ? alpha * (float)s : alpha * (float)s + beta * C[i * ldc + j];
    }
}

/* ---- constant A packed once ---------------------------------------------------------------- */
struct mi_gemm_packed_a {
  const mi_gemm_kernel *kd;
  int64_t M, K, mp, kc; /* kc: its K blocks (packed_kc) */
  float *data;
};

/* Up to kc_packed_max_k (the AVX-512 kernel's 4608: a ResNet's 1x1 layers,
 * 3x3 ones of 512 channels) packed weights take the kernel's kc_packed
 * blocks: FCN-ResNet50's 1x1 layers of K 512 and 1024 at 24x24 ran
 * 9.1-9.6 -> 7.7-8.2 and 17.9 -> 14.6 ms with blocks of 512 instead of 192
 * (C summed in 1 and 2 passes, not 3 and 6); its 3x3 head of K 18432 ran
 * slower (63.6 -> 66.4). */
static int64_t packed_kc(const mi_gemm_kernel *kd, int64_t K) {
  if (kd->kc_packed <= 0 || K > kd->kc_packed_max_k) return kd->kc;
  const int64_t blocks = (K + kd->kc_packed - 1) / kd->kc_packed;
  return (K + blocks - 1) / blocks; /* even: 576 is 288 + 288, not 512 + 64 */
}

mi_gemm_packed_a *mi_gemm_packed_a_alloc(mi_isa isa, int64_t M, int64_t K) {
  if (M <= 0 || K <= 0) return NULL;
  mi_gemm_packed_a *p = calloc(1, sizeof *p);
  if (!p) return NULL;
  p->kd = kernel_for(isa);
  p->M = M;
  p->K = K;
  p->mp = (M + p->kd->mr - 1) / p->kd->mr * p->kd->mr;
  p->kc = packed_kc(p->kd, K);
  void *q = mi_alloc_huge((size_t)p->mp * (size_t)K * sizeof(float));
  if (!q) {
    free(p);
    return NULL;
  }
  p->data = q;
  return p;
}

int mi_gemm_packed_a_mr(const mi_gemm_packed_a *p) { return p->kd->mr; }

static void fill_rows(mi_gemm_packed_a *p, int64_t r0, int64_t n, const float *A, int64_t rsa, int64_t csa) {
  const int64_t KC = p->kc;
  for (int64_t pc = 0; pc < p->K; pc += KC) {
    const int64_t kc = p->K - pc < KC ? p->K - pc : KC;
    pack_a(p->kd, n, kc, A + pc * csa, rsa, csa, p->data + pc * p->mp + r0 * kc);
  }
}

void mi_gemm_packed_a_fill_rows(mi_gemm_packed_a *p, int64_t r0, int64_t n, const float *A, int64_t lda) {
  fill_rows(p, r0, n, A, lda, 1);
}

mi_gemm_packed_a *mi_gemm_pack_a(mi_isa isa, bool trans_a, int64_t M, int64_t K, const float *A,
                                 int64_t lda) {
  if (!A) return NULL;
  mi_gemm_packed_a *p = mi_gemm_packed_a_alloc(isa, M, K);
  if (p) fill_rows(p, 0, M, A, trans_a ? 1 : lda, trans_a ? lda : 1);
  return p;
}

void mi_gemm_packed_a_rows(const mi_gemm_packed_a *p, int64_t r0, int64_t n, float *dst) {
  const int MR = p->kd->mr;
  const int64_t KC = p->kc;
  for (int64_t pc = 0; pc < p->K; pc += KC) {
    const int64_t kc = p->K - pc < KC ? p->K - pc : KC;
    for (int64_t i = 0; i < n; i++) {
      const int64_t r = r0 + i;
      const float *s = p->data + pc * p->mp + r / MR * MR * kc + r % MR;
      float *d = dst + i * p->K + pc;
      for (int64_t k = 0; k < kc; k++) d[k] = s[k * MR];
    }
  }
}

void mi_gemm_packed_a_free(mi_gemm_packed_a *p) {
  if (!p) return;
  free(p->data);
  free(p);
}

size_t mi_gemm_packed_a_bytes(const mi_gemm_packed_a *p) {
  return p ? (size_t)p->mp * (size_t)p->K * sizeof(float) + sizeof *p : 0;
}

mi_gemm_packed_view mi_gemm_packed_a_view(const mi_gemm_packed_a *p) {
  return (mi_gemm_packed_view){p->data, p->M, p->K, p->mp, p->kd->mr, (int)p->kc, p->kd->name, p->kd->nr, p->kd->kern};
}

bool mi_gemm_prepack_enabled(void) {
  static atomic_int v = -1;
  int r = atomic_load(&v);
  if (r < 0) {
    const char *g = getenv("MEDINFER_GEMM"), *e = getenv("MEDINFER_PREPACK");
    r = !(g && !strcmp(g, "openblas")) && !(e && !strcmp(e, "0"));
    atomic_store(&v, r);
  }
  return r;
}

static bool trace_on(void) {
  static atomic_int v = -1;
  int r = atomic_load(&v);
  if (r < 0) {
    const char *e = getenv("MEDINFER_GEMM_TRACE");
    r = e && *e && strcmp(e, "0");
    atomic_store(&v, r);
  }
  return r;
}

static double now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec * 1e-3;
}

static bool sgemm_packed(int threads, const mi_gemm_packed_a *pk, bool trans_b, int64_t N,
                         float alpha, const float *B, int64_t ldb, mi_gemm_pack_b_fn fn, void *ctx,
                         float beta, float *C, int64_t ldc, const mi_gemm_epilogue *epi) {
  const int64_t M = pk->M, K = pk->K;
  if (N <= 0) return true;
  if (alpha == 0.f) {
    scale_c(M, N, beta, C, ldc);
    if (epi)
      for (int64_t i = 0; i < M; i++) epi->fn(epi->ctx, i, 1, 0, N, C + i * ldc, ldc);
    return true;
  }
  const mi_gemm_kernel *kd = pk->kd;
  problem p = {kd, M, N, K, alpha, beta, NULL, 0, 0, B, trans_b ? 1 : ldb, trans_b ? ldb : 1,
               pk->data, pk->mp, fn, ctx, C, ldc, epi, 1, true, 1, 1, NULL, 0, pk->kc, NULL};
  if (threads <= 0) threads = mi_gemm_threads();
  if (threads > MAX_THREADS) threads = MAX_THREADS;
  const double macs = (double)M * (double)N * (double)K;
  int nt = threads;
  while (nt > 1 && macs < (double)nt * 1e6) nt--;
  slot local = {0};
  const bool pooled = mi_pool_acquire();
  bool ok = true;
  if (pooled) {
    nt = mi_pool_threads(nt);
    for (int t = 0; t < nt && ok; t++) ok = slot_reserve(&g_slots[t], kd);
  } else {
    nt = 1;
    ok = slot_reserve(&local, kd);
  }
  if (!ok) { /* no packing buffers: naive but correct, from the packed layout */
    if (pooled) mi_pool_release();
    slot_free(&local);
    if (fn) return false;
    const int MR = kd->mr;
    for (int64_t i = 0; i < M; i++)
      for (int64_t j = 0; j < N; j++) {
        double s = 0;
        for (int64_t pc = 0; pc < K; pc += pk->kc) {
          const int64_t kc = K - pc < pk->kc ? K - pc : pk->kc;
          const float *a = pk->data + pc * pk->mp + (i / MR) * MR * kc + i % MR;
          for (int64_t k = 0; k < kc; k++)
            s += (double)a[k * MR] * (double)(trans_b ? B[j * ldb + pc + k] : B[(pc + k) * ldb + j]);
        }
        C[i * ldc + j] = beta == 0.f ? alpha * (float)s : alpha * (float)s + beta * C[i * ldc + j];
      }
    if (epi)
      for (int64_t i = 0; i < M; i++) epi->fn(epi->ctx, i, 1, 0, N, C + i * ldc, ldc);
    return true;
  }
  /* Split along N (A is shared, nothing is packed twice) unless N is the
   * narrow side: then along M, every thread packing the small op(B). */
  const int64_t nunits = (N + kd->vw - 1) / kd->vw, munits = (M + kd->mr - 1) / kd->mr;
  /* A caller's packer is the expensive part, unless N is so narrow (the
   * 7x7 and 14x14 layers of a CNN) that N-slices would be a tile or two
   * each, badly balanced and mostly edge kernels. */
  const bool narrow = N < 4 * (int64_t)kd->nr * nt && munits >= 2 * nt;
  const bool prefer_n = (fn || M <= N) && !narrow;
  if ((prefer_n && nunits >= nt) || munits < nt) {
    p.split_n = true;
    p.unit = kd->vw;
    p.units = nunits;
  } else {
    p.split_n = false;
    p.unit = kd->mr;
    p.units = munits;
  }
  if (p.units < nt) nt = (int)p.units;
  p.nt = nt < 1 ? 1 : nt;
  atomic_llong next = 0;
  if (pooled) {
    /* Split along M, every thread would pack all of op(B) (a caller's
     * gather with its prologue included): pack it once, together. */
    const int64_t np = (N + kd->nr - 1) / kd->nr * kd->nr;
    if (!p.split_n && p.nt > 1 && N <= kd->nc && grow(&g_bsh, &g_nbsh, (size_t)(np * K))) {
      p.bsh = g_bsh;
      p.bsh_np = np;
      mi_pool_run(p.nt, pack_shared_part, &p);
    }
    /* A packed once, and op(B) shared or packed by N-slices: claims as the
     * threads come cost no packing twice (N in whole panels: a claim's
     * last panel is then full). */
    if (p.nt > 1 && (p.split_n || p.bsh)) {
      if (p.split_n) p.unit = kd->nr, p.units = (N + kd->nr - 1) / kd->nr;
      p.next = &next;
    }
    run_pool(&p);
    mi_pool_release();
  } else {
    run_part(&p, &local, 0);
    slot_free(&local);
  }
  return true;
}

void mi_gemm_sgemm_packed_a(int threads, const mi_gemm_packed_a *pk, bool trans_b, int64_t N,
                            float alpha, const float *B, int64_t ldb, float beta, float *C,
                            int64_t ldc, const mi_gemm_epilogue *epi) {
  if (!trace_on()) {
    sgemm_packed(threads, pk, trans_b, N, alpha, B, ldb, NULL, NULL, beta, C, ldc, epi);
    return;
  }
  double t0 = now_us();
  sgemm_packed(threads, pk, trans_b, N, alpha, B, ldb, NULL, NULL, beta, C, ldc, epi);
  double us = now_us() - t0;
  fprintf(stderr, "sgemm P%c M=%lld N=%lld K=%lld %.1f us %.1f GFLOP/s\n", trans_b ? 'T' : 'N',
          (long long)pk->M, (long long)N, (long long)pk->K, us,
          us > 0 ? 2e-3 * (double)pk->M * (double)N * (double)pk->K / us : 0.0);
}

bool mi_gemm_sgemm_packed_a_fn(int threads, const mi_gemm_packed_a *pk, int64_t N, float alpha,
                               mi_gemm_pack_b_fn fn, void *ctx, float beta, float *C, int64_t ldc,
                               const mi_gemm_epilogue *epi) {
  if (!trace_on()) return sgemm_packed(threads, pk, false, N, alpha, NULL, 0, fn, ctx, beta, C, ldc, epi);
  double t0 = now_us();
  bool ok = sgemm_packed(threads, pk, false, N, alpha, NULL, 0, fn, ctx, beta, C, ldc, epi);
  double us = now_us() - t0;
  fprintf(stderr, "sgemm PI M=%lld N=%lld K=%lld %.1f us %.1f GFLOP/s\n", (long long)pk->M,
          (long long)N, (long long)pk->K, us,
          us > 0 ? 2e-3 * (double)pk->M * (double)N * (double)pk->K / us : 0.0);
  return ok;
}
