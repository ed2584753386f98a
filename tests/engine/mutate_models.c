/* Loads thousands of randomly mutated copies of real model files (bit flips,
 * byte overwrites, truncation, duplicated spans) and runs those that load.
 * Passes when nothing crashes and every error says why; run under
 * AddressSanitizer in CI.  tests/fuzz has the coverage-guided counterpart. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "medinfer/engine.h"
#include "run_any_model.h"

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t rnd(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return rng_state;
}

static void mutate(uint8_t *b, size_t *len) {
  int kind = (int)(rnd() % 4);
  size_t n = *len;
  if (!n) return;
  switch (kind) {
    case 0: /* bit flips */
      for (int i = 0, k = 1 + (int)(rnd() % 8); i < k; i++) b[rnd() % n] ^= (uint8_t)(1u << (rnd() % 8));
      break;
    case 1: /* interesting bytes: varint extremes */
      for (int i = 0, k = 1 + (int)(rnd() % 4); i < k; i++) {
        static const uint8_t v[] = {0x00, 0x01, 0x7F, 0x80, 0xFF, 0x08, 0x10, 0x1A};
        b[rnd() % n] = v[rnd() % sizeof v];
      }
      break;
    case 2: /* truncation */
      *len = rnd() % n;
      break;
    default: { /* copy a span over another */
      size_t a = rnd() % n, c = rnd() % n, l = 1 + rnd() % 16;
      if (a + l > n) l = n - a;
      if (c + l > n) l = n - c;
      memmove(b + c, b + a, l);
    }
  }
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: mutate_models ITERATIONS MODEL.onnx...\n");
    return 2;
  }
  long iters = atol(argv[1]);
  int nfiles = argc - 2;
  long loaded = 0, refused = 0;
  for (long it = 0; it < iters; it++) {
    const char *path = argv[2 + it % nfiles];
    size_t len;
    uint8_t *b = mi_test_read_file(path, &len);
    if (!b) {
      fprintf(stderr, "mutate_models: cannot read %s\n", path);
      return 2;
    }
    for (int k = 0, rounds = 1 + (int)(rnd() % 3); k < rounds; k++) mutate(b, &len);
    mi_options opt;
    mi_options_default(&opt);
    opt.threads = 1;
    opt.max_tensor_bytes = (size_t)256 << 20; /* keep hostile sizes cheap */
    opt.fast_math = it % 3 == 1;              /* the Winograd path, and bf16's kernels, on hostile models too */
    opt.bf16 = it % 3 == 2;
    mi_model *m = NULL;
    mi_status *st = mi_model_load_buffer(b, len, NULL, path, &opt, &m);
    if (st) {
      if (!mi_status_message(st)[0]) {
        fprintf(stderr, "mutate_models: an error without a message\n");
        return 1;
      }
      mi_status_free(st);
      refused++;
    } else {
      loaded++;
      if (!mi_test_run_any(m, (int64_t)1 << 22)) {
        fprintf(stderr, "mutate_models: a run error without a message\n");
        return 1;
      }
      mi_model_free(m);
    }
    free(b);
  }
  printf("%ld mutated models: %ld loaded and ran, %ld refused with a message\n", iters, loaded, refused);
  printf("%ld passed, 0 failed\n", iters);
  return 0;
}
