/* libFuzzer target: any bytes as an ONNX model file, loaded (exact, fast or
 * bf16 mode by a hash of the bytes) and, where it loads, run on small
 * inputs.  A crash, a sanitizer report or an error without a message is a
 * finding.  Building and running it: tests/fuzz/CMakeLists.txt. */
#include <stdint.h>
#include <stdlib.h>

#include "medinfer/engine.h"
#include "run_any_model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  mi_options opt;
  mi_options_default(&opt);
  opt.threads = 1;
  opt.max_tensor_bytes = (size_t)64 << 20; /* hostile sizes refused cheaply */
  unsigned h = 0;
  for (size_t i = 0; i < size; i += 97) h = h * 31 + data[i];
  opt.fast_math = h % 3 == 1;
  opt.bf16 = h % 3 == 2;
  mi_model *m = NULL;
  mi_status *st = mi_model_load_buffer(data, size, NULL, "fuzz.onnx", &opt, &m);
  if (st) {
    if (!mi_status_message(st)[0]) abort();
    mi_status_free(st);
    return 0;
  }
  if (!mi_test_run_any(m, (int64_t)1 << 20)) abort();
  mi_model_free(m);
  return 0;
}
