#define _POSIX_C_SOURCE 200809L
/* medinfer-bench: median latency and peak memory of a model on random input. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "medinfer/engine.h"
#include "peak.h"

static const char usage[] =
    "usage: medinfer-bench MODEL [--shape 1x3x224x224]... [--threads N] [--runs N] [--warmup N]\n"
    "       [--device cpu|cuda|cuda:N] [--fast] [--bf16] [--profile] [--peak GFLOPS] [--flush MB]\n"
    "       [--lockstep]\n"
    "Runs MODEL on random float32 input (one --shape per graph input, in order;\n"
    "fixed declared shapes are used when omitted) and prints the median latency\n"
    "and the process's peak resident memory.  --profile then repeats the runs with\n"
    "per-node timing and prints time per operator type and for the slowest nodes,\n"
    "with the GFLOP/s of convolutions and matrix products and their share of the\n"
    "machine's FP32 FMA peak (measured on the same threads unless --peak gives it;\n"
    "on a GPU each node's device time, and a share only of a --peak).\n"
    "--flush MB writes that much memory before each run: the weights then come\n"
    "from memory, as a layer's do inside a network larger than the caches.\n"
    "--lockstep: after the warmup runs print 'ready', then run once per line read\n"
    "from standard input and print 'ms TIME' after each; lines 't' are the timed\n"
    "runs (at most --runs), others untimed; end of input ends them (bench/lockstep.py\n"
    "takes turns with ONNX Runtime's ort_bench.js this way).\n";

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static int parse_shape(const char *s, int64_t *dims) {
  int n = 0;
  while (*s && n < MI_MAX_DIMS) {
    char *end;
    long long v = strtoll(s, &end, 10);
    if (end == s || v < 0) return -1;
    dims[n++] = v;
    s = end;
    if (*s == 'x' || *s == ',') s++;
    else if (*s) return -1;
  }
  return n;
}

int main(int argc, char **argv) {
  const char *model = NULL;
  int threads = 0, runs = 10, warmup = 2, nshapes = 0;
  size_t flush_n = 0; /* floats */
  int device = MI_DEVICE_CPU, device_index = 0, fast_math = 0, bf16 = 0, profile = 0, lockstep = 0;
  double peak = 0;
  int64_t shapes[16][MI_MAX_DIMS];
  int ranks[16];
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--help")) {
      fputs(usage, stdout);
      return 0;
    } else if (!strcmp(argv[i], "--shape") && i + 1 < argc && nshapes < 16) {
      ranks[nshapes] = parse_shape(argv[++i], shapes[nshapes]);
      if (ranks[nshapes] < 0) {
        fprintf(stderr, "medinfer-bench: bad shape '%s'\n", argv[i]);
        return 2;
      }
      nshapes++;
    } else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--runs") && i + 1 < argc) runs = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--fast") || !strcmp(argv[i], "--fast-math")) fast_math = 1;
    else if (!strcmp(argv[i], "--bf16")) bf16 = 1;
    else if (!strcmp(argv[i], "--profile")) profile = 1;
    else if (!strcmp(argv[i], "--lockstep")) lockstep = 1;
    else if (!strcmp(argv[i], "--peak") && i + 1 < argc) peak = atof(argv[++i]);
    else if (!strcmp(argv[i], "--device") && i + 1 < argc) {
      const char *d = argv[++i];
      if (!strcmp(d, "cpu")) device = MI_DEVICE_CPU;
      else if (!strncmp(d, "cuda", 4) && (d[4] == 0 || d[4] == ':')) {
        device = MI_DEVICE_CUDA;
        device_index = d[4] ? atoi(d + 5) : 0;
      } else {
        fprintf(stderr, "medinfer-bench: unknown device '%s' (cpu, cuda, cuda:N)\n", d);
        return 2;
      }
    }
    else if (!strcmp(argv[i], "--warmup") && i + 1 < argc) warmup = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--flush") && i + 1 < argc) {
      const int mb = atoi(argv[++i]);
      if (mb < 0 || mb > 65536) {
        fprintf(stderr, "medinfer-bench: --flush %s: want megabytes, 0 to 65536\n", argv[i]);
        return 2;
      }
      flush_n = (size_t)mb << 18;
    }
    else if (argv[i][0] == '-' || model) {
      fprintf(stderr, "medinfer-bench: unexpected argument '%s'\n%s", argv[i], usage);
      return 2;
    } else model = argv[i];
  }
  if (!model || runs < 1) {
    fputs(usage, stderr);
    return 2;
  }
  mi_options opt;
  mi_options_default(&opt);
  opt.threads = threads;
  opt.device = device;
  opt.device_index = device_index;
  opt.fast_math = fast_math;
  opt.bf16 = bf16;
  mi_model *m;
  double t0 = now_ms();
  mi_status *st = mi_model_load_file(model, &opt, &m);
  double load_ms = now_ms() - t0;
  struct rusage ru_load;
  getrusage(RUSAGE_SELF, &ru_load);
  if (st) {
    fprintf(stderr, "medinfer-bench: %s\n", mi_status_message(st));
    mi_status_free(st);
    return 1;
  }
  int nin = mi_model_num_inputs(m), nout = mi_model_num_outputs(m);
  mi_tensor *in[16] = {0}, *out[16] = {0};
  double *times = NULL;
  float *flush = NULL;
  int rc = 1; /* until the end is reached: every exit below frees what was made */
  if (nin > 16 || nout > 16) {
    fprintf(stderr, "medinfer-bench: too many inputs or outputs\n");
    nin = 0;
    goto done;
  }
  srand(1);
  for (int i = 0; i < nin; i++) {
    mi_io_info info;
    mi_model_input_info(m, i, &info);
    int64_t dims[MI_MAX_DIMS];
    int rank;
    if (i < nshapes) {
      rank = ranks[i];
      memcpy(dims, shapes[i], sizeof dims);
    } else {
      rank = info.ndim;
      for (int d = 0; d < rank; d++) dims[d] = info.dims[d];
      for (int d = 0; d < rank; d++)
        if (dims[d] < 0) {
          fprintf(stderr, "medinfer-bench: input '%s' has a free dimension: give --shape\n", info.name);
          rc = 2;
          goto done;
        }
    }
    st = mi_tensor_create(MI_FLOAT, rank, dims, &in[i]);
    if (st) goto done;
    float *p = mi_tensor_data(in[i]);
    for (int64_t k = 0; k < mi_tensor_numel(in[i]); k++) p[k] = (float)rand() / RAND_MAX * 2.f - 1.f;
  }
  times = malloc(sizeof(double) * (size_t)runs);
  /* --flush MB: that much memory written between runs, so that a run
   * finds its weights out of the caches, as a layer does in a larger network */
  flush = flush_n ? calloc(flush_n, sizeof(float)) : NULL;
  if (!times || (flush_n && !flush)) {
    fprintf(stderr, "medinfer-bench: out of memory for --flush (%zu MB)\n", flush_n >> 18);
    goto done;
  }
  int timed = 0; /* runs timed: --runs, or in lockstep those asked for */
  for (int r = -warmup; lockstep || r < runs; r++) {
    bool keep = r >= 0;
    if (lockstep && r == 0) {
      puts("ready");
      fflush(stdout);
    }
    if (lockstep && r >= 0) { /* a line per run: 't' timed, else untimed; end of input: done */
      char line[64];
      if (!fgets(line, sizeof line, stdin)) break;
      keep = line[0] == 't' && timed < runs;
    }
    for (size_t i = 0; i < flush_n; i += 16) flush[i] += 1.f;
    double s = now_ms();
    st = mi_model_run(m, in, nin, out, nout);
    double e = now_ms() - s;
    if (st) goto done;
    for (int i = 0; i < nout; i++) mi_tensor_free(out[i]);
    if (keep) times[timed++] = e;
    if (lockstep && r >= 0) {
      printf("ms %.3f\n", e);
      fflush(stdout);
    }
  }
  if (timed == 0) {
    fprintf(stderr, "medinfer-bench: no timed run (lockstep input ended first)\n");
    goto done;
  }
  runs = timed;
  qsort(times, (size_t)runs, sizeof *times, cmp_d);
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  printf("model: %s\nload: %.1f ms\npeak_rss_after_load: %.1f MB\nmedian: %.3f ms\nmin: %.3f ms\nruns: %d\narena: %.1f MB\npeak_rss: %.1f MB\n",
         model, load_ms, ru_load.ru_maxrss / 1024.0, times[runs / 2], times[0], runs, mi_model_arena_bytes(m) / 1048576.0,
         ru.ru_maxrss / 1024.0);
  if (profile) { /* separate runs: the timing above carries no profiling cost */
    /* The model's threads: --threads, or all online cores as the engine takes them
     * (on a GPU no share of a peak unless --peak gives one). */
    if (peak <= 0 && device == MI_DEVICE_CPU)
      peak = mi_bench_peak_gflops(threads > 0 ? threads : (int)sysconf(_SC_NPROCESSORS_ONLN));
    st = mi_model_set_profiling(m, 1);
    for (int r = 0; r < runs && !st; r++) {
      for (size_t i = 0; i < flush_n; i += 16) flush[i] += 1.f;
      st = mi_model_run(m, in, nin, out, nout);
      for (int i = 0; i < nout && !st; i++) mi_tensor_free(out[i]);
    }
    if (!st) st = mi_model_write_profile(m, stdout, peak);
    if (st) goto done;
  }
  rc = 0;
done:
  if (st) fprintf(stderr, "medinfer-bench: %s\n", mi_status_message(st));
  mi_status_free(st);
  free(times);
  free(flush);
  for (int i = 0; i < nin; i++) mi_tensor_free(in[i]);
  mi_model_free(m);
  return rc;
}
