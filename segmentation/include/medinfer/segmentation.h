/* medinfer segmentation: model cards, the segmentation pipeline and the
 * study-level job behind `medinfer segment`.
 *
 *   card (models/CARD.md)  -> mi_card_load / mi_card_find / mi_card_list_installed
 *   volume + card + ONNX   -> mi_segmenter_run: resample onto the card's grid,
 *                             normalise, sliding-window inference, argmax or
 *                             thresholds, connected-component clean-up, back
 *                             onto the exact source voxel grid
 *   study folder           -> mi_seg_job_run: one DICOM SEG per applicable
 *                             series plus report.json, both written atomically
 *
 * Conventions (as in the other modules)
 * - Every fallible call returns NULL on success or an mi_status* the caller
 *   frees (medinfer/status.h); on error *out is left NULL.
 * - Handles are opaque, created here, owned by the caller and released with
 *   their _free() function (which accepts NULL).  Strings and arrays returned
 *   by accessors belong to the handle and live until it is freed.
 * - A handle may be used by one thread at a time.
 * - Volumes are float arrays laid out as medinfer/geometry.h says: voxel
 *   (i, j, k) at i + cols * (j + rows * k). */
#ifndef MEDINFER_SEGMENTATION_H
#define MEDINFER_SEGMENTATION_H

#include <stddef.h>
#include <stdint.h>

#include "medinfer/geometry.h"
#include "medinfer/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------ model cards */

typedef struct mi_card mi_card;

/* One output label of a card, with the codes written into the SEG. */
typedef struct mi_card_label {
  int value;                 /* 1..255, label value in the label map       */
  const char *name;
  uint8_t rgb[3];
  const char *category_scheme, *category_value, *category_meaning;
  const char *type_scheme, *type_value, *type_meaning;
} mi_card_label;

/* Parse and validate a card.  Errors name the file and the field, e.g.
 * "demo-organs.card.json: input.spacing: expected 3 positive numbers". */
mi_status *mi_card_load(const char *path, mi_card **out);
void mi_card_free(mi_card *c);

const char *mi_card_name(const mi_card *c);
const char *mi_card_version(const mi_card *c);
const char *mi_card_description(const mi_card *c); /* "" when absent        */
const char *mi_card_path(const mi_card *c);        /* the card file          */
const char *mi_card_model_path(const mi_card *c);  /* ONNX, beside the card  */
const char *mi_card_task(const mi_card *c);        /* "segmentation" or "detection" */
const char *mi_card_mode(const mi_card *c);        /* "3d" or "2d"           */
const double *mi_card_spacing(const mi_card *c);   /* x, y, z in mm          */
/* Accepted modalities joined by ", " ("any" when the list is empty). */
const char *mi_card_modalities(const mi_card *c);
size_t mi_card_label_count(const mi_card *c);
const mi_card_label *mi_card_label_at(const mi_card *c, size_t i);

/* Whether the card applies to a series.  modality and body_part may be NULL
 * or "" when unknown (an unknown body part is not held against the series;
 * an unknown modality is, unless the card accepts any).  size: columns, rows,
 * slices.  Returns 1 if it applies; else 0 and, when why is not NULL, a
 * reason such as "modality MR not in [CT]". */
int mi_card_applies(const mi_card *c, const char *modality, const char *body_part, const int64_t size[3],
                    char *why, size_t why_size);

/* Installed cards: every *.card.json in the folders of $MEDINFER_MODEL_PATH
 * (colon-separated; the folder itself and its immediate subfolders), then in
 * models/<any>/ of the installation (<prefix>/share/medinfer/models, found
 * from the executable) or, when the executable is not installed (no such
 * folder), of the source tree this build came from.  The
 * first card with a given name wins; later ones and invalid cards are listed
 * as problems (not fatal). */
typedef struct mi_card_list mi_card_list;
mi_status *mi_card_list_installed(mi_card_list **out);
void mi_card_list_free(mi_card_list *l);
size_t mi_card_list_count(const mi_card_list *l);
const mi_card *mi_card_list_at(const mi_card_list *l, size_t i);
size_t mi_card_list_problem_count(const mi_card_list *l);
const char *mi_card_list_problem(const mi_card_list *l, size_t i);

/* A card by installed name, or by path when name_or_path names an existing
 * file (or ends in ".json"). */
mi_status *mi_card_find(const char *name_or_path, mi_card **out);

/* ------------------------------------------------------------- progress */

/* Progress: fraction in [0, 1] of the current job and a short message.
 * Return nonzero to cancel; the call in progress then fails with
 * MI_ERR_CANCELLED soon after. */
typedef int (*mi_progress_fn)(void *user, double fraction, const char *message);

/* ------------------------------------------------------- sliding window */

/* Activation applied to each patch output before Gaussian blending. */
typedef enum mi_activation {
  MI_ACTIVATION_NONE = 0, /* raw network output (for tests and regressors) */
  MI_ACTIVATION_SOFTMAX = 1,
  MI_ACTIVATION_SIGMOID = 2
} mi_activation;

typedef struct mi_window_params {
  int mode_2d;              /* 0: 3D patches; 1: 2D slices (NCHW network)    */
  int64_t patch[3];         /* x, y, z voxels (z = 1 in 2D)                  */
  double overlap;           /* [0, 1)                                        */
  int batch;                /* patches per network call, >= 1                */
  double sigma_scale;       /* Gaussian sigma = sigma_scale * patch          */
  int mirroring;            /* average over flips along every axis            */
  float pad_value;          /* value of padding when the volume is smaller    */
  int pipelined;            /* run the network on a second thread while this
                             * one fills the next input and blends the last
                             * output (for a GPU; same result either way)    */
  mi_activation activation;
  mi_progress_fn progress;  /* may be NULL; fractions span [0, 1]            */
  void *progress_user;
  int threads;              /* host threads activating and blending each
                             * output (the engine's are idle meanwhile);
                             * 0: all online cores, as mi_options.threads   */
} mi_window_params;

struct mi_model; /* medinfer/engine.h */

/* Run `model` over `volume` (dims x, y, z; one channel) by sliding window
 * with Gaussian importance weighting.  *out receives out_channels * volume
 * voxels (channel-major, each channel laid out like the volume), allocated
 * with malloc and freed by the caller with free().  out_channels comes from
 * the network's output. */
mi_status *mi_sliding_window(struct mi_model *model, const float *volume, const int64_t dims[3],
                             const mi_window_params *p, float **out, int *out_channels);

/* ------------------------------------------------------------ segmenter */

/* Where the network runs.  AUTO takes the CUDA device when one is usable
 * and otherwise the CPU, saying why in the device description. */
enum { MI_SEG_DEVICE_CPU = 0, MI_SEG_DEVICE_CUDA = 1, MI_SEG_DEVICE_AUTO = 2 };

typedef struct mi_segmenter_options {
  int threads;        /* engine and ITK threads; 0: all cores              */
  int device;         /* MI_SEG_DEVICE_* (CUDA needs an engine built with it) */
  int device_index;   /* CUDA device ordinal                                */
  int fast_math;      /* fast mode (engine.h, mi_options.fast_math): CPU  */
                      /* Winograd 3x3 convolutions, CUDA TF32 GEMMs      */
  int bf16;           /* CPU: bf16 convolutions (engine.h, mi_options.bf16)  */
  int fractional;     /* also produce per-label probabilities on the source grid */
  mi_progress_fn progress;
  void *progress_user;
} mi_segmenter_options;

void mi_segmenter_options_init(mi_segmenter_options *o);

/* A card with its network loaded (once; reused for every series). */
typedef struct mi_segmenter mi_segmenter;
mi_status *mi_segmenter_create(const mi_card *card, const mi_segmenter_options *opts, mi_segmenter **out);
/* Where the network runs, as for mi_detector_device.  Owned by the segmenter. */
const char *mi_segmenter_device(const mi_segmenter *s);
void mi_segmenter_free(mi_segmenter *s);
/* Replace the progress callback (e.g. one per series). */
void mi_segmenter_set_progress(mi_segmenter *s, mi_progress_fn fn, void *user);

/* Pipeline stages, for timings. */
enum { MI_STAGE_PREPROCESS = 0, MI_STAGE_INFERENCE = 1, MI_STAGE_POSTPROCESS = 2, MI_STAGE_COUNT = 3 };

typedef struct mi_segmentation mi_segmentation;

/* Segment a volume on grid g (any orientation; sheared gantry-tilt grids
 * included).  The result lies voxel for voxel on g.  The card's modality and
 * size rules are not checked here (see mi_card_applies). */
mi_status *mi_segmenter_run(mi_segmenter *s, const mi_geometry *g, const float *volume, mi_segmentation **out);
/* mi_segmenter_run, calling release(user) as soon as volume is no longer
 * read (once it is resampled onto the model's grid, before inference): a
 * caller that owns a large volume can free it there (a 512x512x300 CT is
 * 315 MB of floats).  release is called at most once, and not when the run
 * fails before that point. */
mi_status *mi_segmenter_run_releasing(mi_segmenter *s, const mi_geometry *g, const float *volume,
                                      void (*release)(void *user), void *user, mi_segmentation **out);
void mi_segmentation_free(mi_segmentation *r);

/* Label map on the source grid: 0 background, else a card label value. */
const uint8_t *mi_segmentation_labels(const mi_segmentation *r);
const mi_geometry *mi_segmentation_geometry(const mi_segmentation *r);
/* Probability of card label i (index into the card's labels, not the value)
 * on the source grid, or NULL unless options.fractional was set. */
const float *mi_segmentation_probability(const mi_segmentation *r, size_t label_index);
/* Volume of card label i in millilitres, and its voxel count. */
double mi_segmentation_volume_ml(const mi_segmentation *r, size_t label_index);
int64_t mi_segmentation_voxel_count(const mi_segmentation *r, size_t label_index);
/* Seconds spent in stage MI_STAGE_*. */
double mi_segmentation_seconds(const mi_segmentation *r, int stage);
/* The model grid the network saw (for tests and reports). */
const mi_geometry *mi_segmentation_model_geometry(const mi_segmentation *r);

/* ----------------------------------------------- resampling (ITK inside) */

/* Grid the card would resample g onto: orientation "LPS" gives an
 * axis-aligned grid covering g's bounding box at `spacing`; "native" keeps
 * g's axes and extent and changes only the spacing. */
mi_status *mi_grid_for(const mi_geometry *g, const double spacing[3], int lps, mi_geometry *out);
/* Linear (or, with nearest != 0, nearest-neighbour) resampling of `src` on
 * grid gs onto grid gd; voxels outside gs take `outside`.  *out is malloc'd
 * (caller frees). */
mi_status *mi_resample(const mi_geometry *gs, const float *src, const mi_geometry *gd, int nearest, float outside,
                       int threads, float **out);

/* ------------------------------------------------------------- the job */

/* Per-series events of mi_seg_job_run for a user interface. */
typedef struct mi_seg_job_event {
  size_t index, count;     /* series index (0-based) among those considered */
  const char *series_uid, *description;
  const char *status;      /* NULL while running; "ok", "skipped" or "error" at the end */
  const char *reason;      /* for skipped and error                          */
  double fraction;         /* of this series while running                    */
  const char *message;     /* stage message while running                     */
} mi_seg_job_event;
/* Return nonzero to cancel the job (the series in progress is abandoned,
 * nothing partial is written). */
typedef int (*mi_seg_job_event_fn)(void *user, const mi_seg_job_event *ev);

typedef struct mi_seg_job_options {
  const char *const *inputs; /* folders, DICOMDIR files or DICOM files      */
  size_t n_inputs;
  const char *output_dir;    /* created if missing; must not be an input     */
  const char *series_uid;    /* only this series (NULL: every applicable one) */
  int force;                 /* rewrite SEGs that exist                       */
  mi_segmenter_options seg;  /* threads, device, fractional                  */
  mi_seg_job_event_fn on_event;
  void *user;
} mi_seg_job_options;

void mi_seg_job_options_init(mi_seg_job_options *o);

typedef struct mi_seg_job_summary {
  size_t ok;         /* SEG written                                        */
  size_t existing;   /* SEG already there (skipped without --force)        */
  size_t skipped;    /* model does not apply                               */
  size_t failed;     /* errors: unreadable series, inference or write error */
  int cancelled;
} mi_seg_job_summary;

/* Segment every applicable series of the inputs with `card`, write
 * <output_dir>/<SeriesInstanceUID>.seg.dcm per series and
 * <output_dir>/report.json (rewritten atomically after every series).  A bad
 * series is reported and the job goes on; the returned status is for errors
 * that stop the whole job (no inputs, model load failure, unwritable
 * output). */
mi_status *mi_seg_job_run(const mi_card *card, const mi_seg_job_options *o, mi_seg_job_summary *summary);

/* SEG file name for a series: "<SeriesInstanceUID>.seg.dcm" (characters a
 * UID may not hold, such as '/', become '_': the name never leaves the folder). */
void mi_seg_output_name(const char *series_uid, char *buf, size_t size);
/* Detection output folder for a series: "<SeriesInstanceUID>.findings". */
void mi_det_output_name(const char *series_uid, char *buf, size_t size);

/* ------------------------------------------------------------ detection */
/* Detector cards ("task": "detection", models/CARD.md) describe a YOLO-style
 * head.  mi_detector_run resamples and normalises the volume like the
 * segmenter, runs the network slice by slice (2d) or patch by patch (3d),
 * decodes every cell's vector (objectness P_c, box B_x B_y [B_z] B_w B_h [B_d],
 * class scores C_1..C_n), keeps boxes over the score threshold, applies
 * class-wise non-maximum suppression, merges 2D boxes of adjacent slices into
 * 3D findings, and reports each finding in patient coordinates. */

/* One finding.  The box is aligned with the model grid's axes (the patient
 * axes for "LPS" cards); axes[a] is the half-extent vector along model axis a
 * in LPS mm, so the corners are center +- axes[0] +- axes[1] +- axes[2]. */
typedef struct mi_finding {
  size_t label_index;     /* into the card's labels (mi_card_label_at)      */
  int label;              /* that label's value                             */
  float score;            /* [0, 1]                                          */
  double center[3];       /* LPS mm                                          */
  double axes[3][3];      /* half-extent vectors, LPS mm                     */
  double size_mm[3];      /* full extent along the model axes, mm            */
  double center_index[3]; /* continuous voxel index (i, j, k) on the source grid */
  int slice;              /* source slice nearest the centre (k, clamped)    */
  int first_slice, last_slice; /* source slices the box touches (clamped)  */
  int contributing_slices;/* 2d models: model-grid slices merged; 3d: 0     */
} mi_finding;

typedef struct mi_detector mi_detector;
/* Load the card's network and check its outputs against the card's head
 * (anchors and classes per output); mismatches name the output and the
 * expected channel count.  Options as for the segmenter (fractional unused). */
mi_status *mi_detector_create(const mi_card *card, const mi_segmenter_options *opts, mi_detector **out);
void mi_detector_free(mi_detector *d);
/* Where the network runs: "cpu", "cuda:N", or for MI_SEG_DEVICE_AUTO without
 * a usable GPU "cpu (--device auto: ...why...)".  On the CPU the compute
 * modes follow, "cpu (bf16, fast)", and a mode asked for that the CPU lacks
 * is named with what it needs: "cpu (fp32; bf16 mode needs a CPU with
 * AVX512-BF16)".  Owned by the detector. */
const char *mi_detector_device(const mi_detector *d);
void mi_detector_set_progress(mi_detector *d, mi_progress_fn fn, void *user);

typedef struct mi_detections mi_detections;
/* Detect on a volume on grid g.  A volume smaller than the card's min_size or
 * than one patch after resampling is padded; the card's applies_to rules
 * are checked by the job, not here. */
mi_status *mi_detector_run(mi_detector *d, const mi_geometry *g, const float *volume, mi_detections **out);
void mi_detections_free(mi_detections *r);
size_t mi_detections_count(const mi_detections *r);
/* Findings sorted by descending score. */
const mi_finding *mi_detections_at(const mi_detections *r, size_t i);
double mi_detections_seconds(const mi_detections *r, int stage); /* MI_STAGE_* */
const mi_geometry *mi_detections_model_geometry(const mi_detections *r);

/* Building blocks, public for tests and other front ends.  Boxes are in
 * continuous voxel coordinates of one grid: lo/hi per axis (x, y, z); 2D
 * boxes have lo[2] == hi[2] == slice. */
typedef struct mi_box {
  float lo[3], hi[3];
  float score;
  int cls;   /* index into the card's labels */
  int count; /* boxes merged into this one (slice merging), else 1 */
} mi_box;
/* Intersection over union of two boxes in `dims` (2 or 3) dimensions. */
double mi_box_iou(const mi_box *a, const mi_box *b, int dims);
/* Sort by descending score and suppress, per class, every box whose IoU with
 * a kept box of the same class exceeds `iou`.  Keeps at most max_keep boxes
 * (0: all) at the front of `boxes`; returns their count. */
size_t mi_nms(mi_box *boxes, size_t n, int dims, double iou, size_t max_keep);
/* Merge 2D boxes of consecutive slices (lo[2] == hi[2] == slice) into 3D
 * boxes: a box joins a chain of the same class whose last box lies within
 * max_gap + 1 slices and overlaps it with 2D IoU >= iou.  The merged box is
 * the union of the chain in x/y and spans its slices in z (+-0.5); its score
 * is the chain's highest.  Chains shorter than min_slices are dropped.
 * Writes into *out (malloc'd, caller frees). */
mi_status *mi_merge_slices(const mi_box *boxes, size_t n, double iou, int max_gap, int min_slices, mi_box **out,
                           size_t *n_out);

/* Output files of a detection (the job writes all of them per series). */
/* findings.json / findings.csv: one record per finding (index, label, score,
 * centre and size in mm, slices, tracking uid). */
mi_status *mi_findings_write_json(const mi_card *card, const mi_finding *f, size_t n, const char *series_uid,
                                  const char *path);
mi_status *mi_findings_write_csv(const mi_card *card, const mi_finding *f, size_t n, const char *path);
/* Slicer markups: one ROI markup per finding (name "<label> <n>", score in
 * the description) in one .mrk.json file, LPS coordinates. */
mi_status *mi_findings_write_markups(const mi_card *card, const mi_finding *f, size_t n, const char *path);
/* Review folder: <dir>/index.html listing every finding with its picture,
 * score and size, and <dir>/finding-<n>.png: the source slice through the
 * finding's centre windowed at (window_center, window_width) with the box
 * drawn, and a strip of the neighbouring slices.  Opens without a server. */
mi_status *mi_findings_write_review(const mi_card *card, const mi_finding *f, size_t n, const mi_geometry *g,
                                    const float *volume, double window_center, double window_width,
                                    const char *title, const char *dir);

#ifdef __cplusplus
}
#endif
#endif
