/* GEMM: medinfer's own kernels (src/gemm/), OpenBLAS as the reference and
 * for comparison (MEDINFER_GEMM=openblas).  OpenBLAS is loaded only then:
 * linked in, its worker thread starts with every process and spins for
 * ~0.1 s on the cores the engine's pool uses (a 0.3 ms layer measured 2.7 ms
 * in that window). */
#define _POSIX_C_SOURCE 200809L
#include <cblas.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <time.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "gemm/gemm.h"
#include "internal.h"

static atomic_int g_use_openblas = -1;
static __typeof__(&cblas_sgemm) g_cblas_sgemm;
static void (*g_openblas_set_num_threads)(int);
static pthread_once_t g_openblas_once = PTHREAD_ONCE_INIT;

static void load_openblas(void) {
  void *h = dlopen("libopenblas.so.0", RTLD_NOW | RTLD_LOCAL);
  if (h) {
    *(void **)&g_cblas_sgemm = dlsym(h, "cblas_sgemm");
    *(void **)&g_openblas_set_num_threads = dlsym(h, "openblas_set_num_threads");
  }
  if (!g_cblas_sgemm || !g_openblas_set_num_threads) {
    fprintf(stderr, "medinfer: MEDINFER_GEMM=openblas, but OpenBLAS (libopenblas.so.0) cannot be loaded (%s): "
                    "medinfer's own kernels run instead\n", h ? "no cblas_sgemm" : dlerror());
    g_cblas_sgemm = NULL;
  }
}

static atomic_int g_trace = -1;

/* MEDINFER_GEMM_TRACE=1: one stderr line per call with its shape and time. */
static bool trace(void) {
  int v = atomic_load(&g_trace);
  if (v < 0) {
    const char *e = getenv("MEDINFER_GEMM_TRACE");
    v = e && *e && strcmp(e, "0");
    atomic_store(&g_trace, v);
  }
  return v;
}

static double now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec * 1e-3;
}

static bool use_openblas(void) {
  int v = atomic_load(&g_use_openblas);
  if (v < 0) {
    const char *e = getenv("MEDINFER_GEMM");
    v = e && !strcmp(e, "openblas");
    if (v) {
      pthread_once(&g_openblas_once, load_openblas);
      v = g_cblas_sgemm != NULL;
    }
    atomic_store(&g_use_openblas, v);
  }
  return v;
}

static void sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
              const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C,
              int64_t ldc) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0) {
    for (int64_t i = 0; i < M; i++)
      for (int64_t j = 0; j < N; j++) C[i * ldc + j] = beta == 0.f ? 0.f : beta * C[i * ldc + j];
    return;
  }
  /* cblas takes int dimensions: larger problems always use our kernels. */
  if (use_openblas() && M < INT32_MAX && N < INT32_MAX && K < INT32_MAX && lda < INT32_MAX &&
      ldb < INT32_MAX && ldc < INT32_MAX) {
    g_cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                trans_b ? CblasTrans : CblasNoTrans, (blasint)M, (blasint)N, (blasint)K, alpha, A,
                (blasint)lda, B, (blasint)ldb, beta, C, (blasint)ldc);
    return;
  }
  mi_gemm_sgemm_isa(mi_isa_level(), 0, trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C,
                    ldc);
}

void mi_sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
              const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C,
              int64_t ldc) {
  if (!trace()) {
    sgemm(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return;
  }
  double t0 = now_us();
  sgemm(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  double us = now_us() - t0;
  fprintf(stderr, "sgemm %c%c M=%lld N=%lld K=%lld %.1f us %.1f GFLOP/s\n", trans_a ? 'T' : 'N',
          trans_b ? 'T' : 'N', (long long)M, (long long)N, (long long)K, us,
          us > 0 ? 2e-3 * (double)M * (double)N * (double)K / us : 0.0);
}

void mi_blas_set_threads(int threads) {
  if (threads < 1) threads = 1;
  if (use_openblas()) g_openblas_set_num_threads(threads);
  mi_gemm_set_threads(threads);
}
