/* The per-volume pipeline: model grid -> intensities -> sliding window ->
 * labels + clean-up -> back onto the source grid -> volumes. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "medinfer/engine.h"
#include "medinfer/hugepages.h"
#include "pipeline_internal.h"

struct mi_segmenter {
  const mi_card *card;
  mi_model *model;
  mi_segmenter_options opt;
  char device[256];
};

struct mi_segmentation {
  mi_geometry geometry, model_geometry;
  uint8_t *labels;
  float **probs; /* per card label, NULL unless fractional */
  size_t n_labels;
  double *ml;
  int64_t *voxels;
  double seconds[MI_STAGE_COUNT];
};

double mi_now_seconds(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

void mi_segmenter_options_init(mi_segmenter_options *o) {
  if (o) memset(o, 0, sizeof *o);
}

mi_status *mi_segmenter_create(const mi_card *card, const mi_segmenter_options *opts, mi_segmenter **out) {
  if (!out) return mi_error(MI_ERR_INVALID_ARGUMENT, "mi_segmenter_create: out is NULL");
  *out = NULL;
  if (!card) return mi_error(MI_ERR_INVALID_ARGUMENT, "mi_segmenter_create: no card");
  mi_segmenter *s = calloc(1, sizeof *s);
  if (!s) return mi_error(MI_ERR_NO_MEMORY, "out of memory");
  if (opts) s->opt = *opts;
  s->card = card;
  mi_status *st = mi_card_open_model(card, &s->opt, &s->model, s->device, sizeof s->device);
  if (st) {
    free(s);
    return st;
  }
  *out = s;
  return NULL;
}

const char *mi_segmenter_device(const mi_segmenter *s) { return s ? s->device : ""; }

void mi_segmenter_free(mi_segmenter *s) {
  if (!s) return;
  mi_model_free(s->model);
  free(s);
}

void mi_segmenter_set_progress(mi_segmenter *s, mi_progress_fn fn, void *user) {
  if (s) s->opt.progress = fn, s->opt.progress_user = user;
}

/* Progress of the inference stage mapped into the whole run. */
typedef struct span {
  const mi_segmenter *s;
  double lo, hi;
} span;

static int span_progress(void *u, double f, const char *msg) {
  span *sp = u;
  return sp->s->opt.progress(sp->s->opt.progress_user, sp->lo + (sp->hi - sp->lo) * f, msg);
}

static mi_status *report(const mi_segmenter *s, double f, const char *msg) {
  if (s->opt.progress && s->opt.progress(s->opt.progress_user, f, msg))
    return mi_error(MI_ERR_CANCELLED, "cancelled during %s", msg);
  return NULL;
}

void mi_segmentation_free(mi_segmentation *r) {
  if (!r) return;
  free(r->labels);
  for (size_t i = 0; r->probs && i < r->n_labels; ++i) free(r->probs[i]);
  free(r->probs), free(r->ml), free(r->voxels), free(r);
}

static double det3(const double *d) {
  return d[0] * (d[4] * d[8] - d[5] * d[7]) - d[1] * (d[3] * d[8] - d[5] * d[6]) + d[2] * (d[3] * d[7] - d[4] * d[6]);
}

static mi_status *run(mi_segmenter *s, const mi_geometry *g, const float *volume, void (*release)(void *),
                      void *user, mi_segmentation *r) {
  const mi_card *c = s->card;
  const int threads = s->opt.threads;
  const int64_t ns = g->size[0] * g->size[1] * g->size[2];
  double t0 = mi_now_seconds();
  MI_TRY(report(s, 0.0, "preprocess"));
  float *mv = NULL, bg = 0;

  MI_TRY(mi_card_model_volume(c, g, volume, threads, &r->model_geometry, &mv, &bg));
  if (release) release(user);
  const mi_geometry *gm = &r->model_geometry;
  const int64_t nm = gm->size[0] * gm->size[1] * gm->size[2];
  double t1 = mi_now_seconds();
  r->seconds[MI_STAGE_PREPROCESS] = t1 - t0;

  mi_window_params wp;
  memset(&wp, 0, sizeof wp);
  wp.mode_2d = c->mode_2d;
  memcpy(wp.patch, c->patch, sizeof wp.patch);
  wp.overlap = c->overlap;
  wp.batch = c->batch;
  wp.sigma_scale = c->sigma_scale;
  wp.mirroring = c->mirroring;
  wp.pad_value = bg;
  wp.activation = c->activation;
  wp.pipelined = !strncmp(s->device, "cuda", 4); /* the host prepares patches while the GPU runs */
  wp.threads = threads;
  span sp = {s, 0.1, 0.9};
  if (s->opt.progress) wp.progress = span_progress, wp.progress_user = &sp;
  float *probs = NULL;
  int C = 0;
  mi_status *st = report(s, 0.1, "inference");
  if (!st) st = mi_sliding_window(s->model, mv, gm->size, &wp, &probs, &C);
  free(mv);
  if (st) return mi_error_prefix(st, "%s", c->name);
  double t2 = mi_now_seconds();
  r->seconds[MI_STAGE_INFERENCE] = t2 - t1;

  mi_decision d;
  uint8_t *ml = malloc((size_t)nm);
  st = ml ? mi_decision_init(c, C, &d) : mi_error(MI_ERR_NO_MEMORY, "out of memory");
  if (!st) st = report(s, 0.9, "postprocess");
  if (!st) {
    mi_decide_all(&d, probs, nm, ml, threads > 0 ? threads : 2);
    st = mi_postprocess_labels(c, gm, ml, probs, &d, threads);
  }
  if (!st && !(r->labels = mi_alloc_huge((size_t)ns))) st = mi_error(MI_ERR_NO_MEMORY, "out of memory");
  if (!st) st = mi_labels_to_source(gm, probs, ml, &d, g, r->labels, threads);
  if (!st && s->opt.fractional) {
    r->probs = calloc(c->n_labels, sizeof *r->probs);
    if (!r->probs) st = mi_error(MI_ERR_NO_MEMORY, "out of memory");
    for (size_t i = 0; !st && i < c->n_labels; ++i) {
      int ch = c->activation == MI_ACTIVATION_SOFTMAX ? c->labels[i].value : c->labels[i].value - 1;
      if (!(r->probs[i] = malloc((size_t)ns * sizeof(float))))
        st = mi_error(MI_ERR_NO_MEMORY, "--fractional: cannot allocate %lld probabilities per label", (long long)ns);
      else
        st = mi_channel_to_source(gm, probs + (int64_t)ch * nm, g, r->probs[i], threads);
    }
  }
  free(probs);
  free(ml);
  if (st) return st;
  /* Volumes: voxel count x voxel volume (|det| covers sheared tilt grids). */
  const double voxel_ml = g->spacing[0] * g->spacing[1] * g->spacing[2] * fabs(det3(g->direction)) / 1000.0;
  int64_t counts[256] = {0};
  for (int64_t i = 0; i < ns; ++i) ++counts[r->labels[i]];
  for (size_t i = 0; i < c->n_labels; ++i) {
    r->voxels[i] = counts[c->labels[i].value];
    r->ml[i] = (double)r->voxels[i] * voxel_ml;
  }
  r->seconds[MI_STAGE_POSTPROCESS] = mi_now_seconds() - t2;
  return report(s, 1.0, "postprocess: done");
}

mi_status *mi_segmenter_run_releasing(mi_segmenter *s, const mi_geometry *g, const float *volume,
                                      void (*release)(void *user), void *user, mi_segmentation **out) {
  if (!out) return mi_error(MI_ERR_INVALID_ARGUMENT, "mi_segmenter_run: out is NULL");
  *out = NULL;
  if (!s || !g || !volume) return mi_error(MI_ERR_INVALID_ARGUMENT, "mi_segmenter_run: NULL argument");
  mi_segmentation *r = calloc(1, sizeof *r);
  if (!r) return mi_error(MI_ERR_NO_MEMORY, "out of memory");
  r->geometry = *g;
  r->n_labels = s->card->n_labels;
  r->ml = calloc(r->n_labels, sizeof *r->ml);
  r->voxels = calloc(r->n_labels, sizeof *r->voxels);
  mi_status *st = r->ml && r->voxels ? run(s, g, volume, release, user, r) : mi_error(MI_ERR_NO_MEMORY, "out of memory");
  if (st) {
    mi_segmentation_free(r);
    return st;
  }
  *out = r;
  return NULL;
}

mi_status *mi_segmenter_run(mi_segmenter *s, const mi_geometry *g, const float *volume, mi_segmentation **out) {
  return mi_segmenter_run_releasing(s, g, volume, NULL, NULL, out);
}

const uint8_t *mi_segmentation_labels(const mi_segmentation *r) { return r ? r->labels : NULL; }
const mi_geometry *mi_segmentation_geometry(const mi_segmentation *r) { return r ? &r->geometry : NULL; }
const mi_geometry *mi_segmentation_model_geometry(const mi_segmentation *r) {
  return r ? &r->model_geometry : NULL;
}
const float *mi_segmentation_probability(const mi_segmentation *r, size_t i) {
  return r && r->probs && i < r->n_labels ? r->probs[i] : NULL;
}
double mi_segmentation_volume_ml(const mi_segmentation *r, size_t i) {
  return r && i < r->n_labels ? r->ml[i] : 0;
}
int64_t mi_segmentation_voxel_count(const mi_segmentation *r, size_t i) {
  return r && i < r->n_labels ? r->voxels[i] : 0;
}
double mi_segmentation_seconds(const mi_segmentation *r, int stage) {
  return r && stage >= 0 && stage < MI_STAGE_COUNT ? r->seconds[stage] : 0;
}
