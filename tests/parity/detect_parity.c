/* detect-parity: run a detection case (model.onnx + test_data_set_0 with
 * input_0.pb and the reference boxes/labels/scores as output_0..2.pb) and
 * compare with the tolerances a detector's consumer cares about:
 *   same number of detections, identical labels,
 *   every box coordinate within --box-atol pixels,
 *   every score within --score-rtol of the reference (relative).
 * Prints "PASS <case> ..." or "FAIL <case> <reason>"; exit status 0 on PASS. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "medinfer/engine.h"

static int fail(const char *cs, mi_status *st, const char *what) {
  printf("FAIL %s %s: %s\n", cs, what, st ? mi_status_message(st) : "");
  mi_status_free(st);
  return 1;
}

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int main(int argc, char **argv) {
  double box_atol = 1e-2, score_rtol = 1e-3;
  int runs = 1;
  const char *dir = NULL;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--box-atol") && i + 1 < argc) box_atol = atof(argv[++i]);
    else if (!strcmp(argv[i], "--score-rtol") && i + 1 < argc) score_rtol = atof(argv[++i]);
    else if (!strcmp(argv[i], "--runs") && i + 1 < argc) runs = atoi(argv[++i]);
    else dir = argv[i];
  }
  if (!dir) {
    fprintf(stderr, "usage: detect-parity [--box-atol PX] [--score-rtol R] [--runs N] CASE_DIR\n");
    return 2;
  }
  const char *cs = strrchr(dir, '/') ? strrchr(dir, '/') + 1 : dir;
  char path[4096];
  mi_model *m = NULL;
  snprintf(path, sizeof path, "%s/model.onnx", dir);
  mi_status *st = mi_model_load_file(path, NULL, &m);
  if (st) return fail(cs, st, "load");
  mi_tensor *x = NULL, *exp[3] = {NULL, NULL, NULL}, *got[3] = {NULL, NULL, NULL};
  snprintf(path, sizeof path, "%s/test_data_set_0/input_0.pb", dir);
  if ((st = mi_tensor_load_pb(path, &x))) return fail(cs, st, "input");
  for (int i = 0; i < 3; i++) {
    snprintf(path, sizeof path, "%s/test_data_set_0/output_%d.pb", dir, i);
    if ((st = mi_tensor_load_pb(path, &exp[i]))) return fail(cs, st, "reference");
  }
  if (mi_model_num_outputs(m) != 3) return fail(cs, NULL, "the model must have 3 outputs (boxes, labels, scores)");
  /* Several runs: the eager tail must give the same answer each time. */
  double t0 = now();
  for (int r = 0; r < runs; r++) {
    for (int i = 0; i < 3; i++) mi_tensor_free(got[i]);
    if ((st = mi_model_run(m, &x, 1, got, 3))) return fail(cs, st, "run");
  }
  double secs = (now() - t0) / runs;
  int64_t n = mi_tensor_dims(exp[0])[0], gn = mi_tensor_dims(got[0])[0];
  int rc = 0;
  if (mi_tensor_ndim(got[0]) != 2 || mi_tensor_dims(got[0])[1] != 4 || mi_tensor_dtype(got[0]) != MI_FLOAT ||
      mi_tensor_dtype(got[1]) != MI_INT64 || mi_tensor_dtype(got[2]) != MI_FLOAT) {
    printf("FAIL %s outputs are not float boxes [N, 4], int64 labels, float scores\n", cs);
    return 1;
  }
  if (gn != n || mi_tensor_numel(got[1]) != n || mi_tensor_numel(got[2]) != n) {
    printf("FAIL %s %lld detections, expected %lld\n", cs, (long long)gn, (long long)n);
    return 1;
  }
  const float *gb = mi_tensor_cdata(got[0]), *eb = mi_tensor_cdata(exp[0]);
  const float *gs = mi_tensor_cdata(got[2]), *es = mi_tensor_cdata(exp[2]);
  const int64_t *gl = mi_tensor_cdata(got[1]), *el = mi_tensor_cdata(exp[1]);
  double max_box = 0, max_score = 0;
  for (int64_t i = 0; i < n && !rc; i++) {
    if (gl[i] != el[i]) {
      printf("FAIL %s detection %lld: label %lld, expected %lld\n", cs, (long long)i, (long long)gl[i],
             (long long)el[i]);
      rc = 1;
    }
    for (int k = 0; k < 4; k++) {
      double e = fabs((double)gb[i * 4 + k] - (double)eb[i * 4 + k]);
      if (!(e <= max_box)) max_box = e; /* NaN propagates */
    }
    double se = fabs((double)gs[i] - (double)es[i]) / fmax(fabs((double)es[i]), 1e-30);
    if (!(se <= max_score)) max_score = se;
  }
  if (!rc && !(max_box <= box_atol)) {
    printf("FAIL %s max box error %.3g px over %.3g\n", cs, max_box, box_atol);
    rc = 1;
  }
  if (!rc && !(max_score <= score_rtol)) {
    printf("FAIL %s max score relative error %.3g over %.3g\n", cs, max_score, score_rtol);
    rc = 1;
  }
  if (!rc)
    printf("PASS %s %lld detections, max box error %.3g px, max score rel error %.3g, %.2f s/run\n", cs,
           (long long)n, max_box, max_score, secs);
  for (int i = 0; i < 3; i++) {
    mi_tensor_free(got[i]);
    mi_tensor_free(exp[i]);
  }
  mi_tensor_free(x);
  mi_model_free(m);
  return rc;
}
