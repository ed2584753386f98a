/* The segmentation task of the job: segment a series and write its SEG. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "job_internal.h"
#include "pipeline_internal.h"

void mi_seg_output_name(const char *series_uid, char *buf, size_t size) {
  char stem[128];
  mi_job_uid_stem(series_uid, stem, sizeof stem);
  snprintf(buf, size, "%s.seg.dcm", stem);
}


static mi_status *write_seg(mi_job *j, const mi_dicom_volume *v, const mi_segmentation *r, const char *path) {
  const mi_card *c = j->card;
  mi_seg_segment *segs = calloc(c->n_labels, sizeof *segs);
  if (!segs) return mi_error(MI_ERR_NO_MEMORY, "out of memory");
  uint8_t remap[256] = {0};
  int identity = 1;
  for (size_t i = 0; i < c->n_labels; ++i) {
    const mi_card_label *l = &c->labels[i];
    segs[i] = (mi_seg_segment){.label = l->name, .description = NULL, .category_scheme = l->category_scheme,
                               .category_value = l->category_value, .category_meaning = l->category_meaning,
                               .type_scheme = l->type_scheme, .type_value = l->type_value,
                               .type_meaning = l->type_meaning, .algorithm_type = MI_SEG_ALGO_AUTOMATIC,
                               .algorithm_name = c->name};
    memcpy(segs[i].rgb, l->rgb, 3);
    remap[l->value] = (uint8_t)(i + 1);
    identity &= l->value == (int)(i + 1);
  }
  mi_seg_options so;
  mi_seg_options_init(&so);
  char desc[80]; /* SeriesDescription is LO: 64 characters */
  snprintf(desc, sizeof desc, "%.51s segmentation", c->name);
  so.series_description = desc;
  so.fractional = j->o->seg.fractional ? 1 : 0;
  const mi_geometry *g = mi_segmentation_geometry(r);
  const int64_t n = g->size[0] * g->size[1] * g->size[2];
  mi_status *st = NULL;
  if (j->o->seg.fractional) {
    const float **masks = calloc(c->n_labels, sizeof *masks);
    if (!masks) st = mi_error(MI_ERR_NO_MEMORY, "out of memory");
    for (size_t i = 0; !st && i < c->n_labels; ++i) masks[i] = mi_segmentation_probability(r, i);
    if (!st) st = mi_dicom_write_seg_masks(v, masks, segs, c->n_labels, &so, path);
    free(masks);
  } else if (identity) {
    st = mi_dicom_write_seg_labelmap(v, mi_segmentation_labels(r), segs, c->n_labels, &so, path);
  } else {
    /* SEG segment numbers are 1..n; card label values need not be. */
    uint8_t *lm = malloc((size_t)n);
    if (!lm) st = mi_error(MI_ERR_NO_MEMORY, "out of memory");
    const uint8_t *src = mi_segmentation_labels(r);
    for (int64_t i = 0; !st && i < n; ++i) lm[i] = remap[src[i]];
    if (!st) st = mi_dicom_write_seg_labelmap(v, lm, segs, c->n_labels, &so, path);
    free(lm);
  }
  free(segs);
  return st;
}

static void add_results(mi_job *j, json_object *e, const mi_segmentation *r, double t_read, double t_write) {
  json_object *labels = json_object_new_array();
  for (size_t i = 0; i < j->card->n_labels; ++i) {
    json_object *l = json_object_new_object();
    json_object_object_add(l, "value", json_object_new_int(j->card->labels[i].value));
    json_object_object_add(l, "name", mi_job_string(j->card->labels[i].name));
    json_object_object_add(l, "volume_ml", json_object_new_double(mi_segmentation_volume_ml(r, i)));
    json_object_object_add(l, "voxels", json_object_new_int64(mi_segmentation_voxel_count(r, i)));
    json_object_array_add(labels, l);
  }
  json_object_object_add(e, "labels", labels);
  mi_job_add_seconds(e, t_read, mi_segmentation_seconds(r, MI_STAGE_PREPROCESS),
                     mi_segmentation_seconds(r, MI_STAGE_INFERENCE), mi_segmentation_seconds(r, MI_STAGE_POSTPROCESS),
                     t_write);
  const mi_geometry *gm = mi_segmentation_model_geometry(r);
  char grid[96];
  snprintf(grid, sizeof grid, "%lldx%lldx%lld", (long long)gm->size[0], (long long)gm->size[1], (long long)gm->size[2]);
  json_object_object_add(e, "model_grid", mi_job_string(grid));
}

static mi_status *open_segmenter(mi_job *j) {
  const mi_segmenter_options so = mi_job_pipeline_options(j);
  mi_segmenter *s = NULL;
  MI_TRY(mi_segmenter_create(j->card, &so, &s));
  j->state = s;
  j->device = mi_segmenter_device(s);
  return NULL;
}

static void close_segmenter(mi_job *j) {
  mi_segmenter_free(j->state);
  j->state = NULL;
}

static void release_voxels(void *v) { mi_dicom_volume_release_data(v); }

static mi_status *segment(mi_job *j, mi_dicom_volume *v, const char *path, json_object *e, double t_read) {
  mi_segmentation *r = NULL;
  /* The SEG needs the series' geometry and references, not its voxels:
   * they go once resampled (a 512x512x300 CT: 315 MB of 560 MB at peak). */
  MI_TRY(mi_segmenter_run_releasing(j->state, mi_dicom_volume_geometry(v), mi_dicom_volume_data(v), release_voxels, v,
                                    &r));
  mi_status *st = NULL;
  if (mi_job_emit(j, NULL, NULL, 0.9, "write")) j->cancelled = 1;
  int empty = 1;
  for (size_t i = 0; i < j->card->n_labels; ++i) empty &= mi_segmentation_voxel_count(r, i) == 0;
  double t_write = 0;
  if (!j->cancelled && !empty) {
    double t1 = mi_now_seconds();
    st = write_seg(j, v, r, path);
    t_write = mi_now_seconds() - t1;
  }
  if (!st && !j->cancelled) {
    add_results(j, e, r, t_read, t_write);
    if (empty) {
      /* A SEG needs at least one frame; an empty result is still a result. */
      json_object_object_del(e, "seg");
      json_object_object_add(e, "note", mi_job_string("no voxel of any label: no SEG written"));
    }
  }
  mi_segmentation_free(r);
  return st;
}

const mi_job_task mi_job_segment_task = {
    .output_key = "seg", .what = "SEG", .output_name = mi_seg_output_name,
    .open = open_segmenter, .process = segment, .close = close_segmenter};
