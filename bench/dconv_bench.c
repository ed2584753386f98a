/* GFLOP/s of the direct convolution kernels (engine/src/gemm/dconv*.c) alone,
 * one thread, on ResNet-50's layer shapes, against this machine's 1-thread
 * FMA peak: how near each kernel gets with nothing else of the network
 * around it.  Each shape runs with its input hot (the same buffer every run,
 * in L2 where it fits) and cold (runs rotating over copies that together
 * exceed L2, so that the input streams in from L3 as a network's previous
 * layer leaves it); the weights stay hot in both.  The best of the runs is
 * kept: on a shared machine that is the run the others slowed least.
 *
 *   cc -O3 -I engine/src -I common/include bench/dconv_bench.c engine/tools/peak.c -L build-bench/engine \
 *      -Wl,-rpath,$PWD/build-bench/engine -lmedinfer_engine -lpthread -o /tmp/dconv_bench
 *   /tmp/dconv_bench [runs [layer]]   (layer: only the shapes whose name contains it)
 *
 * "direct" is the position-vector kernel (mi_dconv_run: 8 channels x 48
 * positions per tile), "cv" the channel-vector one (mi_dconv_cv_run: 6
 * positions x 64 channels), both reading a zero-padded NCHW source in place
 * as the engine gives it to them; "cv16" the channel-vector kernel on
 * channel-blocked (NCHW16c) tensors, source and output, as the engine runs
 * it between two such layers (the source's zero-padded copy made by the
 * engine beforehand, not timed here). */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "../engine/tools/peak.h"
#include "gemm/dconv.h"

#define COLD_BYTES (8 << 20) /* cold: inputs rotate, at least this much of them (past two 2 MB L2s) */

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

/* 2 MB aligned and advised huge, as the engine's arena is. */
static float *big(size_t floats) {
  const size_t huge = (size_t)2 << 20, bytes = (floats * sizeof(float) + huge - 1) & ~(huge - 1);
  void *p = NULL;
  if (posix_memalign(&p, huge, bytes)) return NULL;
  madvise(p, bytes, MADV_HUGEPAGE);
  memset(p, 0, bytes);
  return p;
}

typedef struct shape {
  const char *name;
  int64_t M, C, H, k, d; /* output and input channels, map side, kernel side, dilation (0: 1; pad d * (k / 2),
                             stride 1) */
} shape;

static const shape shapes[] = {
    {"layer1 conv1 1x1", 64, 256, 56, 1},  {"layer2.0 conv1 1x1", 128, 256, 56, 1},
    {"layer1 conv2 3x3", 64, 64, 56, 3},   {"layer2 conv2 3x3", 128, 128, 28, 3},
    {"layer3 conv2 3x3", 256, 256, 14, 3}, {"layer4 conv2 3x3", 512, 512, 7, 3},
    /* PSPNet (ResNet-18, 192x192): its dilated last stage and the head's bottleneck */
    {"PSPNet layers.3 3x3 dil 4", 512, 512, 24, 3, 4}, {"PSPNet bottleneck 3x3", 256, 1024, 24, 3},
};

static void fail(const shape *s, const char *why) {
  fprintf(stderr, "dconv_bench: %s: %s\n", s->name, why);
  exit(1);
}

enum kernel { DIRECT, CV, CV16, KERNELS };
static const char *const kernel_name[KERNELS] = {"direct", "cv", "cv16"};

/* Best seconds of `runs` runs of one kernel on the shape; cold rotates the inputs. */
static double time_kernel(const shape *s, enum kernel kn, bool cold, int runs) {
  const int64_t d = s->d > 1 ? s->d : 1, pad = d * (s->k / 2), R = s->H + 2 * pad, plane = R * R;
  const int64_t K = s->C * s->k * s->k, ksz = s->k * s->k;
  const bool blocked = kn == CV16; /* NCHW16c: C a multiple of 16 */
  const int64_t xn = s->C * plane + 64;
  const int64_t ncopy = cold ? 1 + COLD_BYTES / (xn * (int64_t)sizeof(float)) : 1;
  float *w = big((size_t)(s->M * K)), *x = big((size_t)(xn * ncopy)), *y = big((size_t)(s->M * s->H * s->H));
  int32_t *toff = malloc((size_t)K * sizeof *toff);
  if (!w || !x || !y || !toff) fail(s, "out of memory for the operands");
  for (int64_t i = 0; i < s->M * K; i++) w[i] = (float)(i % 13) * 0.01f - 0.06f;
  /* where channel ch's padded position P (row r, column q of the R x R grid) is */
  for (int64_t c = 0; c < ncopy; c++) /* zero borders, values inside */
    for (int64_t ch = 0; ch < s->C; ch++)
      for (int64_t r = 0; r < s->H; r++)
        for (int64_t q = 0; q < s->H; q++) {
          const float v = (float)((ch + r + q) % 7) * 0.1f;
          const int64_t P = (r + pad) * R + q + pad;
          x[c * xn + (blocked ? (ch / 16 * plane + P) * 16 + ch % 16 : ch * plane + P)] = v;
        }
  mi_dconv_job j = {0};
  j.toff = toff;
  j.planes = 1;
  j.x_plane = s->C * plane;
  j.q_end = (s->H - 1) * R + s->H;
  j.row = R;
  j.cols = s->H;
  j.out_plane = s->H * s->H;
  j.y = y;
  j.ldy = s->H * s->H;
  j.relu = true;
  j.group_major = s->M * K > s->C * plane; /* as the engine orders the work items */
  j.chan16 = blocked;
  if (blocked) j.sy = j.sx = 16; /* positions 16 floats apart */
  mi_gemm_packed_a *pa = NULL;
  mi_dconv_cv_weights cw = {0};
  if (kn != DIRECT) { /* a blocked source: the steps in its order, as the engine packs them */
    if (!mi_dconv_cv_pack(w, s->M, K, blocked ? ksz : 0, &cw)) fail(s, "out of memory packing the weights");
  } else {
    pa = mi_gemm_pack_a(MI_ISA_AVX512, false, s->M, K, w, K);
    if (!pa) fail(s, "out of memory packing the weights");
    j.a = mi_gemm_packed_a_view(pa);
  }
  for (int64_t k = 0; k < K; k++) { /* the tap each step reads */
    const int64_t src = kn != DIRECT ? mi_dconv_cv_source(&cw, k) : k, ch = src / ksz, t = src % ksz;
    const int64_t tap = d * ((t / s->k) * R + t % s->k);
    toff[k] = (int32_t)(blocked ? (ch / 16 * plane + tap) * 16 + ch % 16 : ch * plane + tap);
  }
  double best = 1e30;
  for (int r = 0; r < runs; r++) {
    j.x = x + (r % ncopy) * xn;
    const double t0 = now();
    if (kn != DIRECT) mi_dconv_cv_run(&j, &cw, 0, mi_dconv_cv_items(&j, &cw));
    else mi_dconv_run(&j, 0, mi_dconv_items(&j));
    const double t = now() - t0;
    if (t < best) best = t;
  }
  mi_gemm_packed_a_free(pa);
  free(cw.data);
  free(w);
  free(x);
  free(y);
  free(toff);
  return best;
}

int main(int argc, char **argv) {
  char *end = NULL;
  const long runs = argc > 1 ? strtol(argv[1], &end, 10) : 300;
  if (argc > 3 || (argc > 1 && (*end || runs < 1 || runs > 1000000))) {
    fprintf(stderr, "usage: dconv_bench [runs [layer]]   (runs: 1 to 1000000, default 300; layer: a part of"
                    " the shapes' names)\n");
    return 2;
  }
  if (mi_isa_level() != MI_ISA_AVX512) {
    fprintf(stderr, "dconv_bench: the direct kernels need AVX-512\n");
    return 1;
  }
  const double peak = mi_bench_peak_gflops(1);
  printf("1-thread FP32 FMA peak: %.1f GFLOP/s; best of %ld runs\n\n", peak, runs);
  printf("| layer | M | C | map | kernel | input | us | GFLOP/s | peak |\n|---|---:|---:|---:|---|---|---:|---:|---:|\n");
  for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++) {
    const shape *s = &shapes[i];
    if (argc > 2 && !strstr(s->name, argv[2])) continue;
    const double flop = 2.0 * (double)(s->M * s->C * s->k * s->k * s->H * s->H);
    for (int kn = 0; kn < KERNELS; kn++)
      for (int cold = 0; cold < 2; cold++) {
        const double t = time_kernel(s, (enum kernel)kn, cold, (int)runs);
        printf("| %s | %lld | %lld | %lldx%lld | %s | %s | %.0f | %.1f | %.0f%% |\n", s->name, (long long)s->M,
               (long long)s->C, (long long)s->H, (long long)s->H, kernel_name[kn], cold ? "cold" : "hot", t * 1e6,
               flop / t * 1e-9, peak > 0 ? 100 * flop / t * 1e-9 / peak : 0.0);
      }
  }
  return 0;
}
