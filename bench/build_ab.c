/* Two or more builds of the engine library compared in one process, their
 * runs alternating, so that a shared machine's slow spells fall on all of
 * them alike (separate processes, even interleaved, differ by more than
 * most changes are worth here).  Each build is loaded with dlmopen into its
 * own namespace; between runs the process sleeps 3 ms, so that the other
 * builds' workers have stopped spinning (MEDINFER_SPIN_US, 1 ms).
 *
 *   cc -O2 -I engine/include -I common/include bench/build_ab.c -ldl -o /tmp/build_ab
 *   cp build-a/engine/libmedinfer_engine.so.0.1.0 /tmp/a.so   (one file per build)
 *   /tmp/build_ab MODEL SHAPE RUNS /tmp/a.so /tmp/b.so [...]
 *   MEDINFER_AB_FAST=1 / MEDINFER_AB_BF16=1: the modes (medinfer-bench --fast / --bf16)
 *
 * Prints per build the minimum, first quartile and median of RUNS runs (ms),
 * 2 threads, the input as medinfer-bench makes it. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <medinfer/engine.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_BUILDS 8

typedef struct build {
  void (*options_default)(mi_options *);
  mi_status *(*load)(const char *, const mi_options *, mi_model **);
  mi_status *(*wrap)(mi_dtype, int, const int64_t *, void *, mi_tensor **);
  mi_status *(*run)(mi_model *, mi_tensor *const *, int, mi_tensor **, int);
  void (*tensor_free)(mi_tensor *);
  const char *(*message)(const mi_status *);
  mi_model *model;
  mi_tensor *input;
} build;

static double now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e3 + t.tv_nsec * 1e-6;
}

static int by_value(const void *a, const void *b) {
  const double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static int fail(const char *what, const char *lib, const char *msg) {
  fprintf(stderr, "build_ab: %s %s: %s\n", what, lib, msg ? msg : "");
  return 1;
}

int main(int argc, char **argv) {
  if (argc < 6 || argc - 4 > MAX_BUILDS) {
    fprintf(stderr, "usage: build_ab MODEL SHAPE RUNS LIB LIB [LIB...] (at most %d)\n", MAX_BUILDS);
    return 2;
  }
  int64_t dims[8];
  int nd = 0;
  size_t n = 1;
  for (char *s = strdup(argv[2]), *t = strtok(s, "x,"); t && nd < 8; t = strtok(NULL, "x,")) n *= (size_t)(dims[nd++] = atoll(t));
  const int runs = atoi(argv[3]), nb = argc - 4;
  if (nd < 1 || runs < 1) return fail("bad shape or run count", argv[2], argv[3]);
  float *x = malloc(n * sizeof *x);
  double *ms = calloc((size_t)runs * (size_t)nb, sizeof *ms);
  if (!x || !ms) return fail("out of memory", "", NULL);
  for (size_t i = 0; i < n; i++) x[i] = (float)((i * 2654435761u) % 1000) / 500.f - 1.f;
  build b[MAX_BUILDS];
  for (int k = 0; k < nb; k++) {
    void *h = dlmopen(LM_ID_NEWLM, argv[4 + k], RTLD_NOW | RTLD_LOCAL);
    if (!h) return fail("cannot load", argv[4 + k], dlerror());
    b[k] = (build){dlsym(h, "mi_options_default"), dlsym(h, "mi_model_load_file"), dlsym(h, "mi_tensor_wrap"),
                   dlsym(h, "mi_model_run"), dlsym(h, "mi_tensor_free"), dlsym(h, "mi_status_message"), NULL, NULL};
    if (!b[k].options_default || !b[k].load || !b[k].wrap || !b[k].run || !b[k].tensor_free || !b[k].message)
      return fail("missing the engine's API in", argv[4 + k], NULL);
    mi_options o;
    b[k].options_default(&o);
    o.threads = 2;
    o.fast_math = getenv("MEDINFER_AB_FAST") != NULL;
    o.bf16 = getenv("MEDINFER_AB_BF16") != NULL;
    mi_status *st = b[k].load(argv[1], &o, &b[k].model);
    if (!st) st = b[k].wrap(MI_FLOAT, nd, dims, x, &b[k].input);
    if (st) return fail("cannot run the model with", argv[4 + k], b[k].message(st));
  }
  for (int r = -3; r < runs; r++) /* three warm-up rounds */
    for (int k = 0; k < nb; k++) {
      const struct timespec pause = {0, 3000000};
      nanosleep(&pause, NULL);
      mi_tensor *out = NULL;
      const double t0 = now_ms();
      mi_status *st = b[k].run(b[k].model, &b[k].input, 1, &out, 1);
      const double dt = now_ms() - t0;
      if (st) return fail("run failed with", argv[4 + k], b[k].message(st));
      b[k].tensor_free(out);
      if (r >= 0) ms[(size_t)k * runs + r] = dt;
    }
  for (int k = 0; k < nb; k++) {
    double *v = ms + (size_t)k * runs;
    qsort(v, (size_t)runs, sizeof *v, by_value);
    printf("%-40s min %9.3f  q25 %9.3f  median %9.3f ms\n", argv[4 + k], v[0], v[runs / 4], v[runs / 2]);
  }
  return 0;
}
