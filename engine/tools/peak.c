/* The machine's FP32 FMA peak, measured: independent FMA chains on every
 * thread for a fixed count, at the widest vector width the CPU has. */
#define _POSIX_C_SOURCE 200809L
#include "peak.h"

#include <pthread.h>
#include <time.h>

#define CHAINS 12
#define ITERS 400000000L /* / vector width: about 50 ms per thread */

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

__attribute__((target("avx512f"))) static float chains512(long iters) {
  __m512 acc[CHAINS];
  const __m512 a = _mm512_set1_ps(0.999f), b = _mm512_set1_ps(1e-3f);
  for (int i = 0; i < CHAINS; i++) acc[i] = _mm512_set1_ps((float)i);
  for (long k = 0; k < iters; k++)
    for (int i = 0; i < CHAINS; i++) acc[i] = _mm512_fmadd_ps(acc[i], a, b);
  float s = 0;
  for (int i = 0; i < CHAINS; i++) s += _mm512_reduce_add_ps(acc[i]);
  return s;
}

__attribute__((target("avx2,fma"))) static float chains256(long iters) {
  __m256 acc[CHAINS];
  const __m256 a = _mm256_set1_ps(0.999f), b = _mm256_set1_ps(1e-3f);
  for (int i = 0; i < CHAINS; i++) acc[i] = _mm256_set1_ps((float)i);
  for (long k = 0; k < iters; k++)
    for (int i = 0; i < CHAINS; i++) acc[i] = _mm256_fmadd_ps(acc[i], a, b);
  float t[8], s = 0;
  for (int i = 0; i < CHAINS; i++) {
    _mm256_storeu_ps(t, acc[i]);
    for (int j = 0; j < 8; j++) s += t[j];
  }
  return s;
}
#endif

static int g_width;
static volatile float g_sink;

static void *run(void *arg) {
  (void)arg;
#if defined(__x86_64__) && defined(__GNUC__)
  g_sink = g_width == 16 ? chains512(ITERS / 16) : chains256(ITERS / 8);
#endif
  return NULL;
}

double mi_bench_peak_gflops(int threads) {
#if defined(__x86_64__) && defined(__GNUC__)
  __builtin_cpu_init();
  g_width = __builtin_cpu_supports("avx512f") ? 16 : __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") ? 8 : 0;
  if (!g_width || threads < 1 || threads > 256) return 0;
  pthread_t th[256];
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  int started = 0;
  for (int i = 1; i < threads; i++)
    if (pthread_create(&th[started], NULL, run, NULL) == 0) started++;
  run(NULL);
  for (int i = 0; i < started; i++) pthread_join(th[i], NULL);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  const double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
  const long iters = ITERS / g_width;
  return s > 0 ? (double)(started + 1) * (double)iters * CHAINS * g_width * 2 / s * 1e-9 : 0;
#else
  (void)threads;
  return 0;
#endif
}
