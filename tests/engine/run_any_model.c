#include "run_any_model.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

/* st's message is non-empty (st NULL: no error); frees st. */
static bool said_why(mi_status *st) {
  const bool ok = !st || mi_status_message(st)[0];
  mi_status_free(st);
  return ok;
}

bool mi_test_run_any(mi_model *m, int64_t max_numel) {
  const int nin = mi_model_num_inputs(m), nout = mi_model_num_outputs(m);
  if (nin > 8 || nout > 8) return true;
  mi_tensor *in[8] = {0}, *out[8] = {0};
  bool ok = true, run = true;
  for (int i = 0; i < nin && run; i++) {
    mi_io_info info;
    mi_status *st = mi_model_input_info(m, i, &info);
    if (st) {
      ok = said_why(st);
      run = false;
      break;
    }
    int64_t dims[MI_MAX_DIMS];
    const int nd = info.ndim < 0 ? 1 : info.ndim;
    int64_t numel = 1;
    for (int d = 0; d < nd; d++) {
      dims[d] = info.ndim < 0 || info.dims[d] < 0 ? 2 : info.dims[d];
      numel *= dims[d];
    }
    if (numel > max_numel || !info.dtype) {
      run = false;
      break;
    }
    st = mi_tensor_create(info.dtype, nd, dims, &in[i]);
    if (st) {
      ok = said_why(st);
      run = false;
    }
  }
  if (run) ok = said_why(mi_model_run(m, in, nin, out, nout));
  for (int i = 0; i < nin; i++) mi_tensor_free(in[i]);
  for (int i = 0; i < nout; i++) mi_tensor_free(out[i]);
  return ok;
}

uint8_t *mi_test_read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  rewind(f);
  uint8_t *b = malloc(n > 0 ? (size_t)n : 1);
  if (b && n > 0 && fread(b, 1, (size_t)n, f) != (size_t)n) {
    free(b);
    b = NULL;
  }
  fclose(f);
  *len = n > 0 ? (size_t)n : 0;
  return b;
}
