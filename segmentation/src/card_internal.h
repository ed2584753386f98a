/* The parsed model card, shared by the pipeline's source files. */
#ifndef MEDINFER_SEG_CARD_INTERNAL_H
#define MEDINFER_SEG_CARD_INTERNAL_H

#include "medinfer/segmentation.h"

#define MI_CARD_MAX_STEPS 8
#define MI_CARD_MAX_LABELS 255
#define MI_CARD_MAX_CHANNELS 8

#define MI_CARD_MAX_HEAD_OUTPUTS 8
#define MI_CARD_MAX_ANCHORS 16

/* Box coding of a YOLO-style head: "yolov3": centre (sigmoid(t) + cell) *
 * stride, size anchor * exp(t); "yolov5": centre (2 sigmoid(t) - 0.5 + cell)
 * * stride, size anchor * (2 sigmoid(t))^2. */
typedef enum mi_box_coding { MI_BOX_YOLOV3, MI_BOX_YOLOV5 } mi_box_coding;

typedef struct mi_card_head_output {
  char *name;                             /* network output                 */
  double stride[3];                       /* model voxels per cell, x y z   */
  int n_anchors;
  double anchors[MI_CARD_MAX_ANCHORS][3]; /* box size in model voxels x y z */
} mi_card_head_output;

/* Head kinds: YOLO-style anchor grids decoded here; anchor-free heads
 * exported with their boxes decoded (YOLOv8-style [N, 2 dims + labels, K]);
 * networks that output their final boxes, labels and scores (torchvision's
 * Faster R-CNN exports). */
typedef enum mi_head_kind { MI_HEAD_YOLO, MI_HEAD_BOXES, MI_HEAD_ANCHOR_FREE } mi_head_kind;

typedef struct mi_card_detection {
  mi_head_kind kind;
  /* MI_HEAD_BOXES: output names, the network label of the card's first
   * label (torchvision: 1, 0 is background) and the input channels the grey
   * slice is repeated into (torchvision: 3, one [C, H, W] image per run). */
  char *boxes_output, *scores_output, *labels_output;
  /* MI_HEAD_ANCHOR_FREE: the output's name (outputs[0].name) and whether
   * its label scores are logits (logits). */
  int label_offset, input_channels;
  mi_box_coding coding;
  int box_first;   /* per anchor: box, P_c, classes ("bpc"); else P_c, box, classes ("pbc") */
  int logits;      /* the network emits logits: sigmoid applied when decoding */
  mi_card_head_output outputs[MI_CARD_MAX_HEAD_OUTPUTS];
  int n_outputs;
  double score_threshold, iou_threshold;
  int max_detections;
  double merge_iou;                 /* 2d: slice merging */
  int merge_gap, merge_min_slices;
  double review_center, review_width; /* window of the review pictures */
} mi_card_detection;

typedef enum mi_step_type { MI_STEP_CT_WINDOW, MI_STEP_ZSCORE, MI_STEP_MEAN_SUBTRACT } mi_step_type;

typedef struct mi_card_step {
  mi_step_type type;
  double a, b;      /* ct_window: center, width; zscore: mean, std */
  int has_stats;    /* zscore: mean and std given                 */
  int n_means;
  double means[MI_CARD_MAX_CHANNELS], scale[MI_CARD_MAX_CHANNELS];
} mi_card_step;

struct mi_card {
  char *path, *model_path, *name, *version, *description, *task;
  char **modality;
  size_t n_modality;
  char *modality_text;
  char **body_part;
  size_t n_body_part;
  int64_t min_size[3];
  int channels;
  double spacing[3];
  int lps;            /* orientation "LPS" (else "native") */
  mi_card_step steps[MI_CARD_MAX_STEPS];
  int n_steps;
  int mode_2d;
  int64_t patch[3];   /* x, y, z; 0 in 2D without patch_size: whole slice */
  double overlap;
  int batch;
  double sigma_scale;
  int mirroring;
  mi_activation activation;
  double threshold;
  mi_card_label labels[MI_CARD_MAX_LABELS];
  size_t n_labels;
  int lcc_all;                         /* largest_component: true        */
  uint8_t lcc[256];                    /* per label value (list form)    */
  int fill_holes;
  int is_detection;     /* task "detection": det is set, activation/postprocessing unused */
  mi_card_detection det;
};

#endif
