/* medinfer's own SGEMM: GotoBLAS/BLIS-structured driver (gemm.c) over
 * register-blocked micro-kernels chosen at run time (kernel_*.c).
 * Internal to the engine; tests call mi_gemm_sgemm_isa() directly. */
#ifndef MEDINFER_GEMM_H
#define MEDINFER_GEMM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "medinfer/cpu.h"

#ifdef __cplusplus
extern "C" {
#endif


/* Micro-kernel: c[0..mr)[0..nr) = alpha * sum_k pa[k*MR+i] * pb[k*NR+j]
 *                                 + beta * c   (beta == 0: c is not read)
 * pa: packed A micro-panel (kc x MR, zero-padded rows), pb: packed B
 * micro-panel (kc x NR, zero-padded columns), both 64-byte aligned;
 * c is row-major with row stride ldc; 1 <= mr <= MR, 1 <= nr <= NR. */
typedef void (*mi_gemm_ukernel)(int64_t kc, const float *pa, const float *pb, float *c, int64_t ldc,
                                int mr, int nr, float alpha, float beta);

/* The same tile, then an epilogue in registers as it is stored: + bias[i]
 * (bias: the tile's first row's; NULL: none), + res[i * ldc + j] (res: the
 * residual of c[0], same row stride; NULL: none), then max(0, .) if relu.
 * Returns false, having done nothing, for tiles it does not take. */
typedef bool (*mi_gemm_ukernel_epi)(int64_t kc, const float *pa, const float *pb, float *c, int64_t ldc, int mr,
                                    int nr, float alpha, float beta, const float *bias, const float *res, bool relu);

/* The micro-kernel files' tile entry points over their inline body(mr, nv,
 * kc, a, b, c, ldc, nr, alpha, beta, bias, res, relu): k_M_V the plain
 * M-row, V-vector tile, ke_M_V with the epilogue in registers (kern_epi). */
#define MI_GEMM_TILE_FNS(M, V)                                                                  \
  static void k_##M##_##V(int64_t kc, const float *a, const float *b, float *c, int64_t ldc,  \
                          int nr, float alpha, float beta) {                                  \
    body(M, V, kc, a, b, c, ldc, nr, alpha, beta, NULL, NULL, false);                         \
  }                                                                                           \
  static void ke_##M##_##V(int64_t kc, const float *a, const float *b, float *c, int64_t ldc, \
                           int nr, float alpha, float beta, const float *bias,                \
                           const float *res, bool relu) {                                     \
    body(M, V, kc, a, b, c, ldc, nr, alpha, beta, bias, res, relu);                           \
  }

typedef struct mi_gemm_kernel {
  const char *name;
  int mr, nr; /* register tile */
  int vw;     /* SIMD width in floats: column granularity of the edge kernels */
  int kc, mc, nc; /* cache blocking */
  mi_gemm_ukernel kern;
  /* Optional SIMD packing (NULL: portable loops in gemm.c).
   * pack_a_rows: dst[k*MR+i] = A[i*lda+k] for i < mr (zero rows up to MR).
   * pack_b_cols: dst[k*NR+j] = B[j*ldb+k] for j < nr (zero columns up to NR).
   * pack_b_rows: dst[k*NR+j] = B[k*ldb+j] for j < nr (zero columns up to NR). */
  void (*pack_a_rows)(int MR, int64_t kc, int mr, const float *A, int64_t lda, float *dst);
  void (*pack_b_cols)(int NR, int64_t kc, int nr, const float *B, int64_t ldb, float *dst);
  void (*pack_b_rows)(int NR, int64_t kc, int nr, const float *B, int64_t ldb, float *dst);
  mi_gemm_ukernel_epi kern_epi; /* optional (NULL: kern, then the epilogue's fn) */
  /* Constant weights packed once (mi_gemm_pack_a) with K up to
   * kc_packed_max_k: K in even blocks of up to kc_packed (0: kc), so that
   * C is summed in fewer passes. */
  int kc_packed, kc_packed_max_k;
} mi_gemm_kernel;

extern const mi_gemm_kernel mi_gemm_kernel_generic;
#if defined(__x86_64__) || defined(__i386__)
#define MI_GEMM_X86 1
extern const mi_gemm_kernel mi_gemm_kernel_avx2;
extern const mi_gemm_kernel mi_gemm_kernel_avx512;
/* AVX2 packing with 8x8 transposes (kernel_avx2.c), shared by both x86 levels. */
void mi_gemm_pack_a_rows_avx2(int MR, int64_t kc, int mr, const float *A, int64_t lda, float *dst);
void mi_gemm_pack_b_cols_avx2(int NR, int64_t kc, int nr, const float *B, int64_t ldb, float *dst);
void mi_gemm_pack_b_rows_avx2(int NR, int64_t kc, int nr, const float *B, int64_t ldb, float *dst);
#endif

/* Row-major C[M,N] = alpha*op(A)*op(B) + beta*C on the given level's
 * kernels (falls back to generic when the CPU lacks it) with up to
 * `threads` threads of the gemm pool (<= 0: the mi_blas_set_threads count). */
void mi_gemm_sgemm_isa(mi_isa isa, int threads, bool trans_a, bool trans_b, int64_t M, int64_t N,
                       int64_t K, float alpha, const float *A, int64_t lda, const float *B,
                       int64_t ldb, float beta, float *C, int64_t ldc);

/* ---- constant A packed once (weights) ------------------------------------
 * op(A) (M x K) packed into the MR-tall micro-panels of `isa`'s kernel for
 * every KC block, so that products with it skip the per-call packing:
 * block (pc, ir) at data + pc*Mp + ir*kc, Mp = M rounded up to MR.  The
 * handle is immutable and may be shared by concurrent callers. */
typedef struct mi_gemm_packed_a mi_gemm_packed_a;
/* NULL when out of memory. */
mi_gemm_packed_a *mi_gemm_pack_a(mi_isa isa, bool trans_a, int64_t M, int64_t K, const float *A,
                                 int64_t lda);
/* The same layout filled in parts: allocate (NULL when out of memory),
 * then pack rows [r0, r0 + n) of A (row-major, n rows of K) into it, r0 a
 * multiple of the kernel's mr; every row must be filled before use. */
mi_gemm_packed_a *mi_gemm_packed_a_alloc(mi_isa isa, int64_t M, int64_t K);
int mi_gemm_packed_a_mr(const mi_gemm_packed_a *p);
void mi_gemm_packed_a_fill_rows(mi_gemm_packed_a *p, int64_t r0, int64_t n, const float *A, int64_t lda);
/* Rows [r0, r0 + n) of op(A) back out of the packed layout, row-major into
 * dst [n][K] (the packed copy can stand in for the original). */
void mi_gemm_packed_a_rows(const mi_gemm_packed_a *p, int64_t r0, int64_t n, float *dst);
void mi_gemm_packed_a_free(mi_gemm_packed_a *p);
size_t mi_gemm_packed_a_bytes(const mi_gemm_packed_a *p);
/* The packed layout, for kernels that read it in place: K in blocks of kc
 * rows; block pc holds mp/mr panels of [kc][mr] floats at data + pc * mp. */
typedef struct mi_gemm_packed_view {
  const float *data;
  int64_t M, K, mp;
  int mr, kc;
  const char *kernel; /* the micro-kernel's name it was packed for */
  int nr;             /* that kernel's tile width, and the kernel itself */
  mi_gemm_ukernel kern;
} mi_gemm_packed_view;
mi_gemm_packed_view mi_gemm_packed_a_view(const mi_gemm_packed_a *p);
/* Epilogue run on each block of C as soon as it is final (all of K summed),
 * while it is still in L1: rows [m0, m0+mr), columns [n0, n0+nr) of C at c
 * (row stride ldc).  Called from several threads at once on disjoint blocks. */
typedef struct mi_gemm_epilogue {
  void (*fn)(void *ctx, int64_t m0, int64_t mr, int64_t n0, int64_t nr, float *c, int64_t ldc);
  void *ctx;
  /* simple: fn is exactly C + bias[row] + residual, then max(0, .) if relu
   * (bias and res may be NULL; res is aligned with c0, the product's C:
   * element c0[i * ldc + j] has its residual at res[i * ldc + j]).  A kernel
   * with kern_epi then applies it in registers as it stores each tile, and
   * fn is not called for those tiles (a 1x1 layer's epilogue pass: 3 % of a
   * ResNet-50 run). */
  bool simple, relu;
  const float *bias, *res, *c0;
} mi_gemm_epilogue;

/* C[M,N] = alpha * A * op(B) + beta * C with the packed A (its M and K),
 * then epi (NULL: none); threads as for mi_gemm_sgemm_isa. */
void mi_gemm_sgemm_packed_a(int threads, const mi_gemm_packed_a *A, bool trans_b, int64_t N,
                            float alpha, const float *B, int64_t ldb, float beta, float *C,
                            int64_t ldc, const mi_gemm_epilogue *epi);
/* Same product with op(B) produced by the caller straight into the packed
 * layout (implicit GEMM: a convolution gathers its im2col rows there, no
 * column buffer).  fn(ctx, k0, kc, j0, nc, NR, dst, ldp) must write the
 * block rows [k0, k0+kc) x columns [j0, j0+nc) of op(B) as NR-wide
 * micro-panels, panel p's row k at dst + p * ldp + k * NR (ldp >= kc * NR:
 * a call may fill only some rows of a taller block), zero-padding the last
 * panel's columns to NR; it is called from several threads at once.
 * Returns false when out of memory. */
typedef void (*mi_gemm_pack_b_fn)(void *ctx, int64_t k0, int64_t kc, int64_t j0, int64_t nc, int NR,
                                  float *dst, int64_t ldp);
bool mi_gemm_sgemm_packed_a_fn(int threads, const mi_gemm_packed_a *A, int64_t N, float alpha,
                               mi_gemm_pack_b_fn fn, void *ctx, float beta, float *C, int64_t ldc,
                               const mi_gemm_epilogue *epi);
/* Whether operators should pre-pack constant operands: false with
 * MEDINFER_GEMM=openblas (OpenBLAS does the products) or MEDINFER_PREPACK=0. */
bool mi_gemm_prepack_enabled(void);

/* Thread count used by mi_sgemm (set by mi_blas_set_threads). */
void mi_gemm_set_threads(int threads);
int mi_gemm_threads(void);

#ifdef __cplusplus
}
#endif

#endif
