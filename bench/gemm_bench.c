/* GFLOP/s of medinfer's SGEMM (engine/src/gemm) against OpenBLAS in the same
 * process: square 2048^3 and ResNet-50-like convolution shapes, 1 and 2
 * threads, median of repeated runs.
 *
 *   cc -O2 -I engine/src -I common/include bench/gemm_bench.c -L build-gemm/engine \
 *      -Wl,-rpath,$PWD/build-gemm/engine -lmedinfer_engine -lopenblas -lm -o /tmp/gemm_bench
 *   /tmp/gemm_bench [runs]                         (MEDINFER_ISA lowers the level)
 * The "cpu" columns divide by the calling thread's CPU time instead of wall
 * time (1 thread only): a fairer number on a machine shared with other jobs. */
#define _POSIX_C_SOURCE 200809L
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "gemm/gemm.h"

void openblas_set_num_threads(int);

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double cpu_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

typedef struct { const char *name; int M, N, K; } shape;

int main(int argc, char **argv) {
  int runs = argc > 1 ? atoi(argv[1]) : 7;
  if (runs < 1) runs = 1;
  const shape shapes[] = {
      {"square 2048^3", 2048, 2048, 2048},
      {"conv2_x 3x3 (64,3136,576)", 64, 3136, 576},
      {"conv2_x 1x1 (256,3136,64)", 256, 3136, 64},
      {"conv1 7x7 (64,12544,147)", 64, 12544, 147},
      {"conv3_x 3x3 (128,784,1152)", 128, 784, 1152},
      {"conv4_x 3x3 (256,196,2304)", 256, 196, 2304},
      {"conv5_x 3x3 (512,49,4608)", 512, 49, 4608},
      {"conv5_x 1x1 (2048,49,512)", 2048, 49, 512},
      {"conv 3x3 wide (128,12544,1152)", 128, 12544, 1152},
      {"conv 3x3 (512,3136,4608)", 512, 3136, 4608},
  };
  const mi_isa isa = mi_isa_level();
  printf("isa %s, median of %d runs, GFLOP/s\n", mi_isa_name(isa), runs);
  printf("%-32s %8s %8s %8s %8s %9s %9s\n", "shape (M,N,K)", "mi 1t", "oblas 1t", "mi 2t",
         "oblas 2t", "mi 1t-cpu", "ob 1t-cpu");
  for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
    const int M = shapes[s].M, N = shapes[s].N, K = shapes[s].K;
    float *A = malloc(sizeof(float) * M * K), *B = malloc(sizeof(float) * K * N),
          *C = malloc(sizeof(float) * M * N);
    for (long i = 0; i < (long)M * K; i++) A[i] = (float)(i % 17) * 0.01f;
    for (long i = 0; i < (long)K * N; i++) B[i] = (float)(i % 13) * 0.01f;
    double flop = 2.0 * M * N * K, res[4], cres[2];
    int reps = (int)(2e9 / flop) + 1; /* ~10 ms+ per timed sample */
    if (reps > 50) reps = 50;
    printf("%-32s", shapes[s].name);
    for (int th = 1; th <= 2; th++)
      for (int lib = 0; lib < 2; lib++) {
        double t[64], ct[64];
        openblas_set_num_threads(th);
        for (int r = -1; r < runs && r < 64; r++) {
          double t0 = now(), c0 = cpu_now();
          for (int q = 0; q < reps; q++) {
            if (lib == 0)
              mi_gemm_sgemm_isa(isa, th, false, false, M, N, K, 1.f, A, K, B, N, 0.f, C, N);
            else
              cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1.f, A, K, B, N, 0.f,
                          C, N);
          }
          if (r >= 0) t[r] = (now() - t0) / reps, ct[r] = (cpu_now() - c0) / reps;
        }
        qsort(t, (size_t)runs, sizeof(double), cmp);
        res[(th - 1) * 2 + lib] = flop / t[runs / 2] * 1e-9;
        qsort(ct, (size_t)runs, sizeof(double), cmp);
        if (th == 1) cres[lib] = flop / ct[runs / 2] * 1e-9;
      }
    printf(" %8.1f %8.1f %8.1f %8.1f %9.1f %9.1f\n", res[0], res[1], res[2], res[3], cres[0],
           cres[1]);
    fflush(stdout);
    free(A);
    free(B);
    free(C);
  }
  return 0;
}
