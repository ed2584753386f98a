/* Internal stages of the segmentation pipeline (not part of the public API). */
#ifndef MEDINFER_SEG_PIPELINE_INTERNAL_H
#define MEDINFER_SEG_PIPELINE_INTERNAL_H

#include "card_internal.h"

#ifdef __cplusplus
extern "C" {
#endif

/* How channel probabilities become a label. */
typedef struct mi_decision {
  mi_activation activation; /* SOFTMAX: argmax (channel 0 background); SIGMOID: thresholds */
  float threshold;
  int channels;
  uint8_t label_of_channel[256]; /* 0 for channels that are no card label */
} mi_decision;

mi_status *mi_decision_init(const mi_card *c, int channels, mi_decision *d);
uint8_t mi_decide(const mi_decision *d, const float *p, int64_t stride);
/* Label map on the model grid from channel-major probabilities (threads as
 * mi_seg_for_range's, parallel.h). */
void mi_decide_all(const mi_decision *d, const float *probs, int64_t n, uint8_t *labels, int threads);

/* Intensity steps of the card, in place on the model grid; `source` (n_source
 * values) gives the statistics of zscore without mean/std. */
void mi_preprocess_intensities(const mi_card *c, float *v, int64_t n, const float *source, int64_t n_source);
/* Value a background voxel takes after preprocessing (the minimum). */
float mi_preprocessed_background(const mi_card *c, float raw_min, const float *source, int64_t n_source);

/* Per-label largest component / hole filling on the model grid label map
 * (ITK).  Changed voxels get one-hot probabilities, so the resampling back
 * onto the source keeps the clean-up. */
mi_status *mi_postprocess_labels(const mi_card *c, const mi_geometry *gm, uint8_t *labels, float *probs,
                                 const mi_decision *d, int threads);

/* Source-grid labels from model-grid probabilities: trilinear interpolation
 * of every channel at each source voxel centre, then the decision.  Fused so
 * the source grid needs one byte per voxel, not one float per channel. */
mi_status *mi_labels_to_source(const mi_geometry *gm, const float *probs, const uint8_t *model_labels,
                               const mi_decision *d, const mi_geometry *gs, uint8_t *out, int threads);
/* One channel interpolated linearly onto the source grid (outside: 0). */
mi_status *mi_channel_to_source(const mi_geometry *gm, const float *channel, const mi_geometry *gs, float *out,
                                int threads);

double mi_now_seconds(void);

/* The card's network on the device options ask for (model_open.c); errors
 * name the card and the model file. */
/* device: where it runs (mi_segmenter_device), written into device[0..n). */
mi_status *mi_card_open_model(const mi_card *card, const mi_segmenter_options *o, struct mi_model **out,
                              char *device, size_t n);
/* The volume resampled onto the card's model grid *gm and normalised; *bg is
 * the value of voxels outside the scan after normalisation.  *mv malloc'd. */
mi_status *mi_card_model_volume(const mi_card *c, const mi_geometry *g, const float *volume, int threads,
                                mi_geometry *gm, float **mv, float *bg);
/* Patch origins along one axis, spread evenly with at least `overlap`
 * (nnU-Net's rule); malloc'd, *count entries. */
int64_t *mi_window_steps(int64_t dim, int64_t patch, double overlap, int64_t *count);

#ifdef __cplusplus
}
#endif
#endif
