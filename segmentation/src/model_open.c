/* What the segmenter and the detector share before inference: the card's
 * network loaded on the requested device, and the volume on the model grid. */
#include <math.h>
#include <stdlib.h>

#include "medinfer/engine.h"
#include "pipeline_internal.h"

mi_status *mi_card_open_model(const mi_card *card, const mi_segmenter_options *o, mi_model **out) {
  *out = NULL;
  mi_options eo;
  mi_options_default(&eo);
  eo.threads = o->threads;
#ifdef MEDINFER_ENGINE_HAS_DEVICE
  eo.device = o->device ? MI_DEVICE_CUDA : MI_DEVICE_CPU;
  if (o->device) {
    int count = 0;
    mi_status *cs = mi_cuda_device_count(&count);
    if (cs || count < 1) {
      mi_status *e = mi_error(MI_ERR_UNSUPPORTED, "--device cuda: no usable CUDA device (%s)",
                              cs ? mi_status_message(cs) : "none found");
      mi_status_free(cs);
      return e;
    }
  }
#else
  if (o->device)
    return mi_error(MI_ERR_UNSUPPORTED, "--device cuda: this build's engine has no CUDA support (use --device cpu)");
#endif
  mi_status *st = mi_model_load_file(card->model_path, &eo, out);
  if (st) return mi_error_prefix(st, "%s: model %s", card->path, card->model_path);
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
