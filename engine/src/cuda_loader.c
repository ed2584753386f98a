/* The CUDA backend lives in its own module, libmedinfer_cuda.so, loaded on
 * first use: CPU-only users never map CUDA's libraries (hundreds of MB), and
 * one engine build runs on machines with and without a GPU. */
#define _GNU_SOURCE /* dladdr */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "model.h"

typedef struct backend {
  mi_status *(*device_count)(int *count);
  mi_status *(*model_init)(mi_model *m);
  mi_status *(*model_run)(mi_model *m, bool replanned, mi_tensor *const *inputs, mi_tensor **outputs);
  void (*model_free)(mi_model *m);
  void (*host_ops)(const mi_model *m, char *buf, size_t size);
  char error[1024];
} backend;

static backend be;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void load_backend(void) {
  /* Beside this library first, then the loader's search path. */
  char path[4096] = "libmedinfer_cuda.so";
  Dl_info info;
  if (dladdr((void *)load_backend, &info) && info.dli_fname) {
    const char *slash = strrchr(info.dli_fname, '/');
    if (slash)
      snprintf(path, sizeof path, "%.*s/libmedinfer_cuda.so", (int)(slash - info.dli_fname), info.dli_fname);
  }
  void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (!h) h = dlopen("libmedinfer_cuda.so", RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    const char *e = dlerror();
    snprintf(be.error, sizeof be.error,
             "the CUDA backend (libmedinfer_cuda.so) is not available: %s "
             "(medinfer was built without nvcc, or CUDA's runtime libraries are missing)",
             e ? e : "not found");
    return;
  }
  be.device_count = (mi_status * (*)(int *)) dlsym(h, "mi_cuda_backend_device_count");
  be.model_init = (mi_status * (*)(mi_model *)) dlsym(h, "mi_cuda_backend_model_init");
  be.model_run = (mi_status * (*)(mi_model *, bool, mi_tensor *const *, mi_tensor **))
      dlsym(h, "mi_cuda_backend_model_run");
  be.model_free = (void (*)(mi_model *))dlsym(h, "mi_cuda_backend_model_free");
  be.host_ops = (void (*)(const mi_model *, char *, size_t))dlsym(h, "mi_cuda_backend_host_ops");
  if (!be.device_count || !be.model_init || !be.model_run || !be.model_free || !be.host_ops) {
    snprintf(be.error, sizeof be.error, "'%s' lacks the medinfer CUDA entry points", path);
    be.device_count = NULL;
  }
}

static bool available(void) {
  pthread_once(&once, load_backend);
  return be.device_count != NULL;
}

mi_status *mi_cuda_device_count(int *count) {
  if (count) *count = 0;
  if (!available()) return mi_error(MI_ERR_UNSUPPORTED, "%s", be.error);
  return be.device_count(count);
}

/* Nodes without a CUDA kernel, and the eager tail after a data-dependent
 * shape, run on the CPU inside the backend (exec_cuda.cu). */
mi_status *mi_cuda_model_init(mi_model *m) {
  if (!available()) return mi_error(MI_ERR_UNSUPPORTED, "device CUDA requested, but %s", be.error);
  return be.model_init(m);
}

mi_status *mi_cuda_model_run(mi_model *m, bool replanned, mi_tensor *const *inputs,
                             mi_tensor **outputs) {
  if (!available()) return mi_error(MI_ERR_UNSUPPORTED, "%s", be.error);
  return be.model_run(m, replanned, inputs, outputs);
}

void mi_cuda_model_free(mi_model *m) {
  if (m->cuda && available()) be.model_free(m);
}

void mi_model_cpu_fallback_ops(const mi_model *m, char *buf, size_t size) {
  if (!buf || !size) return;
  buf[0] = 0;
  if (m && m->cuda && available()) be.host_ops(m, buf, size);
}
