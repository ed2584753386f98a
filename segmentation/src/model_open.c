/* What the segmenter and the detector share before inference: the card's
 * network loaded on the requested device, and the volume on the model grid. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>

#include "medinfer/engine.h"
#include "pipeline_internal.h"

/* Why no CUDA device `index` can be used, or NULL when it can. */
static mi_status *cuda_unusable(int index) {
#ifdef MEDINFER_ENGINE_HAS_DEVICE
  int count = 0;
  mi_status *cs = mi_cuda_device_count(&count);
  if (cs) return cs;
  if (index < 0 || index >= count)
    return mi_error(MI_ERR_UNSUPPORTED, "there is no CUDA device %d (%d found)", index, count);
  return NULL;
#else
  (void)index;
  return mi_error(MI_ERR_UNSUPPORTED, "this build's engine has no CUDA support");
#endif
}

/* The CPU's compute modes for the device line, " (bf16, fast)" and the
 * like: those that take effect, and for each one asked for that this CPU
 * lacks (it then runs FP32) what it needs, so that the command line's
 * report and the Slicer module's log say why the mode did not run; "" for
 * plain FP32. */
static void cpu_modes(const mi_segmenter_options *o, char *s, size_t n) {
  const int bf16 = o->bf16 && mi_bf16_available(), fast = o->fast_math && mi_fast_available();
  const int no_fast = o->fast_math && !fast, no_bf16 = o->bf16 && !bf16;
  *s = '\0';
  if (!bf16 && !fast && !no_fast && !no_bf16) return;
  snprintf(s, n, " (%s%s%s)", bf16 && fast ? "bf16, fast" : bf16 ? "bf16" : fast ? "fast" : "fp32",
           no_fast ? "; fast mode needs a CPU with AVX2 or AVX-512" : "",
           no_bf16 ? "; bf16 mode needs a CPU with AVX512-BF16" : "");
}

mi_status *mi_card_open_model(const mi_card *card, const mi_segmenter_options *o, mi_model **out, char *device,
                              size_t n) {
  *out = NULL;
  if (o->device != MI_SEG_DEVICE_CPU && o->device != MI_SEG_DEVICE_CUDA && o->device != MI_SEG_DEVICE_AUTO)
    return mi_error(MI_ERR_INVALID_ARGUMENT, "unknown device %d", o->device);
  mi_options eo;
  mi_options_default(&eo);
  eo.threads = o->threads;
  eo.bf16 = o->bf16;
  eo.fast_math = o->fast_math; /* CPU: Winograd 3x3 convolutions; GPU: TF32 */
  char cpu_mode[160];
  cpu_modes(o, cpu_mode, sizeof cpu_mode);
  snprintf(device, n, "cpu%s", cpu_mode);
  if (o->device != MI_SEG_DEVICE_CPU) {
    mi_status *why = cuda_unusable(o->device_index);
    if (why && o->device == MI_SEG_DEVICE_CUDA) {
      mi_status *e = mi_error(MI_ERR_UNSUPPORTED, "--device cuda:%d: no usable CUDA device (%s); use --device cpu or auto",
                              o->device_index, mi_status_message(why));
      mi_status_free(why);
      return e;
    }
    if (why) {
      snprintf(device, n, "cpu%s (--device auto: %s)", cpu_mode, mi_status_message(why));
      mi_status_free(why);
    } else {
#ifdef MEDINFER_ENGINE_HAS_DEVICE
      eo.device = MI_DEVICE_CUDA;
      eo.device_index = o->device_index;
#endif
      snprintf(device, n, "cuda:%d%s", o->device_index, o->fast_math ? " (fast math)" : "");
    }
  }
  mi_status *st = mi_model_load_file(card->model_path, &eo, out);
  if (st) return mi_error_prefix(st, "%s: model %s", card->path, card->model_path);
#ifdef MEDINFER_ENGINE_HAS_DEVICE
  char host[160];
  mi_model_cpu_fallback_ops(*out, host, sizeof host);
  if (*host) {
    const size_t used = strlen(device);
    snprintf(device + used, n - used, " (on the CPU: %s)", host);
  }
#endif
  return NULL;
}

mi_status *mi_card_model_volume(const mi_card *c, const mi_geometry *g, const float *volume, int threads,
                                mi_geometry *gm, float **mv, float *bg) {
  *mv = NULL;
  const int64_t ns = g->size[0] * g->size[1] * g->size[2];
  /* Outside the scan: the series' minimum (air on CT, no signal on MR). */
  MI_TRY(mi_grid_for(g, c->spacing, c->lps, gm));
  const int64_t nm = gm->size[0] * gm->size[1] * gm->size[2];
  float vmin = INFINITY;
  for (int64_t i = 0; i < ns; ++i) vmin = volume[i] < vmin ? volume[i] : vmin;
  MI_TRY(mi_resample(g, volume, gm, 0, vmin, threads, mv));
  mi_preprocess_intensities(c, *mv, nm, volume, ns);
  *bg = mi_preprocessed_background(c, vmin, volume, ns);
  return NULL;
}
