/* The output section of a detector card: the YOLO-style head (outputs,
 * strides, anchors, box coding), thresholds and slice merging. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "card_json.h"

static mi_status *parse_head_output(const mi_cj_ctx *c, json_object *o, int i, mi_card *k) {
  char field[64], f[96];
  snprintf(field, sizeof field, "output.head.outputs[%d]", i);
  if (!json_object_is_type(o, json_type_object)) return mi_cj_bad(c, field, "expected an object");
  mi_card_head_output *h = &k->det.outputs[i];
  snprintf(f, sizeof f, "%s.name", field);
  MI_TRY(mi_cj_string(c, o, "name", f, 1, &h->name));
  const int dims = k->mode_2d ? 2 : 3;
  snprintf(f, sizeof f, "%s.stride", field);
  json_object *st = mi_cj_member(o, "stride");
  if (!st) return mi_cj_bad(c, f, "missing (expected %d positive numbers, x y%s)", dims, dims == 3 ? " z" : "");
  MI_TRY(mi_cj_vec(c, st, f, dims, 0, 1, h->stride));
  if (dims == 2) h->stride[2] = 1;
  snprintf(f, sizeof f, "%s.anchors", field);
  json_object *an = mi_cj_member(o, "anchors");
  if (!an || !json_object_is_type(an, json_type_array) || !json_object_array_length(an))
    return mi_cj_bad(c, f, "expected a non-empty list of anchor sizes [x, y%s] in model voxels",
                     dims == 3 ? ", z" : "");
  size_t na = json_object_array_length(an);
  if (na > MI_CARD_MAX_ANCHORS) return mi_cj_bad(c, f, "at most %d anchors per output", MI_CARD_MAX_ANCHORS);
  for (size_t a = 0; a < na; ++a) {
    char fa[128];
    snprintf(fa, sizeof fa, "%s[%zu]", f, a);
    MI_TRY(mi_cj_vec(c, json_object_array_get_idx(an, a), fa, dims, 0, 1, h->anchors[a]));
    if (dims == 2) h->anchors[a][2] = 1;
  }
  h->n_anchors = (int)na;
  return NULL;
}

/* A network that outputs final boxes [K, 4] (x1, y1, x2, y2 in pixels),
 * scores [K] and labels [K] for one slice. */
static mi_status *parse_boxes_head(const mi_cj_ctx *c, json_object *head, mi_card *k) {
  mi_card_detection *d = &k->det;
  d->kind = MI_HEAD_BOXES;
  if (!k->mode_2d) return mi_cj_bad(c, "output.head.type", "\"boxes\" heads run slice by slice: inference.mode must be \"2d\"");
  json_object *o = mi_cj_member(head, "outputs");
  if (!o || !json_object_is_type(o, json_type_object))
    return mi_cj_bad(c, "output.head.outputs", "expected {\"boxes\": NAME, \"scores\": NAME, \"labels\": NAME}");
  MI_TRY(mi_cj_string(c, o, "boxes", "output.head.outputs.boxes", 1, &d->boxes_output));
  MI_TRY(mi_cj_string(c, o, "scores", "output.head.outputs.scores", 1, &d->scores_output));
  MI_TRY(mi_cj_string(c, o, "labels", "output.head.outputs.labels", 1, &d->labels_output));
  MI_TRY(mi_cj_int(c, head, "label_offset", "output.head.label_offset", 1, 0, 255, "from 0 to 255", &d->label_offset));
  MI_TRY(mi_cj_int(c, head, "input_channels", "output.head.input_channels", 3, 1, 8, "from 1 to 8",
                   &d->input_channels));
  return NULL;
}

/* An anchor-free head exported with its boxes decoded, as YOLOv8/YOLO11
 * exports are: one output [N, 2 dims + labels, K] holding per candidate the
 * box centre and size in pixels, then a score per label. */
static mi_status *parse_anchor_free_head(const mi_cj_ctx *c, json_object *head, mi_card *k) {
  mi_card_detection *d = &k->det;
  d->kind = MI_HEAD_ANCHOR_FREE;
  MI_TRY(mi_cj_string(c, head, "output", "output.head.output", 1, &d->outputs[0].name));
  d->n_outputs = 1;
  return mi_cj_bool(c, head, "logits", "output.head.logits", 0, &d->logits);
}

static mi_status *parse_head(const mi_cj_ctx *c, json_object *head, mi_card *k) {
  if (!head || !json_object_is_type(head, json_type_object))
    return mi_cj_bad(c, "output.head", "missing (expected an object)");
  char *s = NULL;
  MI_TRY(mi_cj_string(c, head, "type", "output.head.type", 1, &s));
  int yolo = !strcmp(s, "yolo"), boxes = !strcmp(s, "boxes"), af = !strcmp(s, "anchor_free");
  free(s);
  if (!yolo && !boxes && !af)
    return mi_cj_bad(c, "output.head.type", "expected \"yolo\", \"anchor_free\" or \"boxes\"");
  if (boxes) return parse_boxes_head(c, head, k);
  if (af) return parse_anchor_free_head(c, head, k);
  MI_TRY(mi_cj_string(c, head, "box_coding", "output.head.box_coding", 0, &s));
  k->det.coding = MI_BOX_YOLOV3;
  if (s) {
    int v3 = !strcmp(s, "yolov3"), v5 = !strcmp(s, "yolov5");
    free(s);
    if (!v3 && !v5) return mi_cj_bad(c, "output.head.box_coding", "expected \"yolov3\" or \"yolov5\"");
    k->det.coding = v5 ? MI_BOX_YOLOV5 : MI_BOX_YOLOV3;
  }
  MI_TRY(mi_cj_string(c, head, "order", "output.head.order", 0, &s));
  if (s) {
    int pbc = !strcmp(s, "pbc"), bpc = !strcmp(s, "bpc");
    free(s);
    if (!pbc && !bpc)
      return mi_cj_bad(c, "output.head.order", "expected \"pbc\" (P_c, box, classes) or \"bpc\" (box, P_c, classes)");
    k->det.box_first = bpc;
  }
  MI_TRY(mi_cj_bool(c, head, "logits", "output.head.logits", 1, &k->det.logits));
  json_object *outs = mi_cj_member(head, "outputs");
  if (!outs || !json_object_is_type(outs, json_type_array) || !json_object_array_length(outs))
    return mi_cj_bad(c, "output.head.outputs", "expected a non-empty list of network outputs");
  size_t n = json_object_array_length(outs);
  if (n > MI_CARD_MAX_HEAD_OUTPUTS)
    return mi_cj_bad(c, "output.head.outputs", "at most %d outputs", MI_CARD_MAX_HEAD_OUTPUTS);
  for (size_t i = 0; i < n; ++i) {
    k->det.n_outputs = (int)i + 1; /* so that mi_card_free releases the name */
    MI_TRY(parse_head_output(c, json_object_array_get_idx(outs, i), (int)i, k));
    for (size_t j = 0; j < i; ++j)
      if (!strcmp(k->det.outputs[j].name, k->det.outputs[i].name)) {
        char f[64];
        snprintf(f, sizeof f, "output.head.outputs[%zu].name", i);
        return mi_cj_bad(c, f, "output \"%s\" listed twice", k->det.outputs[i].name);
      }
  }
  return NULL;
}

mi_status *mi_card_parse_detection(const mi_cj_ctx *c, json_object *out, mi_card *k) {
  if (k->mode_2d && !k->patch[0] && !k->patch[1]) k->patch[2] = 1;
  mi_card_detection *d = &k->det;
  MI_TRY(parse_head(c, mi_cj_member(out, "head"), k));
  MI_TRY(mi_cj_number(c, out, "score_threshold", "output.score_threshold", 0.5, 0, 1, "in [0, 1]",
                      &d->score_threshold));
  MI_TRY(mi_cj_number(c, out, "iou_threshold", "output.iou_threshold", 0.5, 0, 1, "in [0, 1]", &d->iou_threshold));
  MI_TRY(mi_cj_int(c, out, "max_detections", "output.max_detections", 100, 1, 100000, "from 1 to 100000",
                   &d->max_detections));
  d->merge_iou = 0.3, d->merge_gap = 1, d->merge_min_slices = 1;
  json_object *mg = mi_cj_member(out, "merge");
  if (mg) {
    if (!json_object_is_type(mg, json_type_object)) return mi_cj_bad(c, "output.merge", "expected an object");
    if (!k->mode_2d) return mi_cj_bad(c, "output.merge", "slice merging applies to 2d models only");
    MI_TRY(mi_cj_number(c, mg, "iou", "output.merge.iou", 0.3, 0, 1, "in [0, 1]", &d->merge_iou));
    MI_TRY(mi_cj_int(c, mg, "max_gap", "output.merge.max_gap", 1, 0, 100, "from 0 to 100", &d->merge_gap));
    MI_TRY(mi_cj_int(c, mg, "min_slices", "output.merge.min_slices", 1, 1, 1000, "from 1 to 1000",
                     &d->merge_min_slices));
  }
  /* Review pictures: the card's CT window when it has one, else a soft-tissue window. */
  d->review_center = 40, d->review_width = 400;
  for (int i = 0; i < k->n_steps; ++i)
    if (k->steps[i].type == MI_STEP_CT_WINDOW) d->review_center = k->steps[i].a, d->review_width = k->steps[i].b;
  json_object *rv = mi_cj_member(out, "review_window");
  if (rv) {
    json_object *a = json_object_is_type(rv, json_type_array) && json_object_array_length(rv) == 2
                         ? json_object_array_get_idx(rv, 0) : NULL;
    json_object *b = a ? json_object_array_get_idx(rv, 1) : NULL;
    if (!mi_cj_is_number(a) || !mi_cj_is_number(b) || !isfinite(json_object_get_double(a)) ||
        !(json_object_get_double(b) > 0) || !isfinite(json_object_get_double(b)))
      return mi_cj_bad(c, "output.review_window", "expected [center, width] in HU with width > 0");
    d->review_center = json_object_get_double(a), d->review_width = json_object_get_double(b);
  }
  return NULL;
}
