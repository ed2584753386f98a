/* CUDA backend entry points for builds without CUDA: every call explains
 * that the library was built without it. */
#include "../model.h"

static const char *why = "medinfer was built without CUDA support (nvcc was not found at build time)";

mi_status *mi_cuda_device_count(int *count) {
  if (count) *count = 0;
  return mi_error(MI_ERR_UNSUPPORTED, "%s", why);
}

mi_status *mi_cuda_model_init(mi_model *m) {
  (void)m;
  return mi_error(MI_ERR_UNSUPPORTED, "device CUDA requested, but %s", why);
}

mi_status *mi_cuda_model_run(mi_model *m, bool replanned, mi_tensor *const *inputs,
                             mi_tensor **outputs) {
  (void)m; (void)replanned; (void)inputs; (void)outputs;
  return mi_error(MI_ERR_UNSUPPORTED, "%s", why);
}

void mi_cuda_model_free(mi_model *m) { (void)m; }
