/* The per-volume detection pipeline: model grid -> intensities -> patches
 * (3d) or slices (2d) through the network -> YOLO decoding -> class-wise NMS
 * (per slice, then slice merging, in 2d) -> findings in patient space. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "detect_internal.h"
#include "medinfer/engine.h"

struct mi_detector {
  const mi_card *card;
  mi_model *model;
  mi_segmenter_options opt;
  int out_index[MI_CARD_MAX_HEAD_OUTPUTS]; /* network output of each head output */
  int class_fields;                        /* -1: decided by the first run      */
  int fixed_batch;                         /* the network's batch when fixed     */
  int box_out[3];                          /* boxes heads: boxes, scores, labels */
  int box_input_rank;                      /* boxes heads: 3 [C,H,W] or 4 [1,C,H,W] */
  char device[256];
};

struct mi_detections {
  mi_finding *f;
  size_t n;
  mi_geometry model_geometry;
  double seconds[MI_STAGE_COUNT];
};

static int dims_of(const mi_card *c) { return c->mode_2d ? 2 : 3; }

/* Channels a head output must have: anchors x (P_c + 2 x dims box + classes);
 * a one-label head may leave the class score out. */
static mi_status *check_channels(mi_detector *d, int h, int64_t ch) {
  const mi_card *c = d->card;
  const mi_card_head_output *o = &c->det.outputs[h];
  const int64_t with = (int64_t)o->n_anchors * (1 + 2 * dims_of(c) + (int64_t)c->n_labels);
  const int64_t without = (int64_t)o->n_anchors * (1 + 2 * dims_of(c));
  int cf = ch == with ? 1 : (c->n_labels == 1 && ch == without) ? 0 : -1;
  if (cf < 0 || (d->class_fields >= 0 && cf != d->class_fields))
    return mi_error(MI_ERR_INVALID_MODEL,
                    "%s: network output '%s' has %lld channels, but the card's head gives it %d anchors x (1 "
                    "objectness + %d box + %zu class scores) = %lld channels",
                    c->path, o->name, (long long)ch, o->n_anchors, 2 * dims_of(c), c->n_labels, (long long)with);
  d->class_fields = cf;
  return NULL;
}

/* Index of the network output called `name`; the error lists them all. */
static mi_status *find_output(const mi_detector *d, const char *name, const char *field, int *index) {
  char names[512] = "";
  const int n = mi_model_num_outputs(d->model);
  for (int i = 0; i < n; ++i) {
    mi_io_info oi;
    MI_TRY(mi_model_output_info(d->model, i, &oi));
    if (!strcmp(oi.name, name)) return *index = i, NULL;
    snprintf(names + strlen(names), sizeof names - strlen(names), "%s'%s'", i ? ", " : "", oi.name);
  }
  return mi_error(MI_ERR_INVALID_MODEL, "%s: %s: the network has no output '%s' (it has %s)", d->card->path, field,
                  name, names);
}

static mi_status *bind_boxes(mi_detector *d, const mi_io_info *in) {
  const mi_card_detection *h = &d->card->det;
  if (in->ndim != -1 && in->ndim != 3 && in->ndim != 4)
    return mi_error(MI_ERR_INVALID_MODEL, "%s: the network takes a %d-D input; a boxes head needs [C, H, W] or "
                    "[1, C, H, W]", d->card->path, in->ndim);
  d->box_input_rank = in->ndim == 4 ? 4 : 3;
  const int cdim = d->box_input_rank - 3;
  if (in->ndim > 0 && in->dims[cdim] > 0 && in->dims[cdim] != h->input_channels)
    return mi_error(MI_ERR_INVALID_MODEL, "%s: the network takes %lld channels, output.head.input_channels says %d",
                    d->card->path, (long long)in->dims[cdim], h->input_channels);
  MI_TRY(find_output(d, h->boxes_output, "output.head.outputs.boxes", &d->box_out[0]));
  MI_TRY(find_output(d, h->scores_output, "output.head.outputs.scores", &d->box_out[1]));
  return find_output(d, h->labels_output, "output.head.outputs.labels", &d->box_out[2]);
}

static mi_status *bind_outputs(mi_detector *d) {
  const mi_card *c = d->card;
  if (mi_model_num_inputs(d->model) != 1)
    return mi_error(MI_ERR_INVALID_MODEL, "%s: the network has %d inputs (expected 1 image input)", c->path,
                    mi_model_num_inputs(d->model));
  mi_io_info in;
  MI_TRY(mi_model_input_info(d->model, 0, &in));
  if (c->det.kind == MI_HEAD_BOXES) return bind_boxes(d, &in);
  const int rank = c->mode_2d ? 4 : 5;
  if (in.ndim != -1 && in.ndim != rank)
    return mi_error(MI_ERR_INVALID_MODEL, "%s: the network takes a %d-D input; a %s detector needs %s", c->path,
                    in.ndim, c->mode_2d ? "2d" : "3d", c->mode_2d ? "NCHW" : "NCDHW");
  if (in.ndim > 0 && in.dims[0] > 0) d->fixed_batch = (int)in.dims[0];
  if (c->det.kind == MI_HEAD_ANCHOR_FREE) {
    MI_TRY(find_output(d, c->det.outputs[0].name, "output.head.output", &d->out_index[0]));
    mi_io_info oi;
    MI_TRY(mi_model_output_info(d->model, d->out_index[0], &oi));
    const int64_t want = 2 * dims_of(c) + (int64_t)c->n_labels;
    if (oi.ndim != -1 && (oi.ndim != 3 || (oi.dims[1] >= 0 && oi.dims[1] != want)))
      return mi_error(MI_ERR_INVALID_MODEL, "%s: network output '%s' should be [N, %lld, K] (%d box values + %zu label "
                      "scores per candidate)", c->path, oi.name, (long long)want, 2 * dims_of(c), c->n_labels);
    return NULL;
  }
  for (int h = 0; h < c->det.n_outputs; ++h) {
    char field[48];
    snprintf(field, sizeof field, "output.head.outputs[%d]", h);
    MI_TRY(find_output(d, c->det.outputs[h].name, field, &d->out_index[h]));
    mi_io_info oi;
    MI_TRY(mi_model_output_info(d->model, d->out_index[h], &oi));
    if (oi.ndim != -1 && oi.ndim != rank)
      return mi_error(MI_ERR_INVALID_MODEL, "%s: network output '%s' has rank %d (expected %d: N, channels, %s)",
                      c->path, oi.name, oi.ndim, rank, c->mode_2d ? "H, W" : "D, H, W");
    if (oi.ndim == rank && oi.dims[1] >= 0) MI_TRY(check_channels(d, h, oi.dims[1]));
  }
  return NULL;
}

mi_status *mi_detector_create(const mi_card *card, const mi_segmenter_options *opts, mi_detector **out) {
  if (!out) return mi_error(MI_ERR_INVALID_ARGUMENT, "mi_detector_create: out is NULL");
  *out = NULL;
  if (!card) return mi_error(MI_ERR_INVALID_ARGUMENT, "mi_detector_create: no card");
  if (!card->is_detection)
    return mi_error(MI_ERR_INVALID_ARGUMENT, "%s: a %s card, not a detector", card->path, card->task);
  mi_detector *d = calloc(1, sizeof *d);
  if (!d) return mi_error(MI_ERR_NO_MEMORY, "out of memory");
  if (opts) d->opt = *opts;
  d->card = card;
  d->class_fields = -1;
  mi_status *st = mi_card_open_model(card, &d->opt, &d->model, d->device, sizeof d->device);
  if (!st) st = bind_outputs(d);
  if (st) {
    mi_detector_free(d);
    return st;
  }
  *out = d;
  return NULL;
}

const char *mi_detector_device(const mi_detector *d) { return d ? d->device : ""; }

void mi_detector_free(mi_detector *d) {
  if (!d) return;
  mi_model_free(d->model);
  free(d);
}

void mi_detector_set_progress(mi_detector *d, mi_progress_fn fn, void *user) {
  if (d) d->opt.progress = fn, d->opt.progress_user = user;
}

static mi_status *report(const mi_detector *d, double f, const char *msg) {
  if (d->opt.progress && d->opt.progress(d->opt.progress_user, f, msg))
    return mi_error(MI_ERR_CANCELLED, "cancelled during %s", msg);
  return NULL;
}

/* ------------------------------------------------------------ patches */

typedef struct walk {
  mi_detector *d;
  const float *vol;   /* padded model-grid volume */
  int64_t dims[3];    /* its size                  */
  int64_t p[3];       /* patch                     */
  int64_t *steps[3], cnt[3];
  mi_box_list boxes;
} walk;

/* Centre boxes of patch i along an axis belong to it between the midpoints
 * to its neighbours' centres (the first and last extend to infinity). */
static void core(const walk *w, int ax, int64_t i, double *lo, double *hi) {
  const int64_t *s = w->steps[ax];
  *lo = i == 0 ? -INFINITY : 0.5 * (double)(s[i - 1] + s[i] + w->p[ax] - 1);
  *hi = i + 1 == w->cnt[ax] ? INFINITY : 0.5 * (double)(s[i] + s[i + 1] + w->p[ax] - 1);
}

static mi_status *check_output(const walk *w, int h, const mi_tensor *t, int nrun, int64_t grid[3]) {
  const mi_card *c = w->d->card;
  const mi_card_head_output *o = &c->det.outputs[h];
  const int rank = c->mode_2d ? 4 : 5;
  const int64_t *od = mi_tensor_dims(t);
  int ok = mi_tensor_dtype(t) == MI_FLOAT && mi_tensor_ndim(t) == rank && od[0] == nrun;
  for (int a = 0; ok && a < 3; ++a) {
    grid[a] = a < rank - 2 ? od[rank - 1 - a] : 1;
    /* Cells cover the patch: grid = patch / stride, rounded either way. */
    ok = grid[a] >= 1 && fabs((double)grid[a] * o->stride[a] - (double)w->p[a]) < o->stride[a];
  }
  if (!ok) {
    char shape[96] = "";
    for (int i = 0; i < mi_tensor_ndim(t) && i < 6; ++i)
      snprintf(shape + strlen(shape), sizeof shape - strlen(shape), "%s%lld", i ? "x" : "", (long long)od[i]);
    return mi_error(MI_ERR_SHAPE,
                    "%s: network output '%s' is %s (%s) for a batch of %d patches of %lldx%lldx%lld (x, y, z); "
                    "with stride %gx%gx%g the card expects N x channels x %s cells",
                    c->path, o->name, shape, mi_dtype_name(mi_tensor_dtype(t)), nrun, (long long)w->p[0],
                    (long long)w->p[1], (long long)w->p[2], o->stride[0], o->stride[1], o->stride[2],
                    c->mode_2d ? "H x W" : "D x H x W");
  }
  return NULL;
}

/* One slice through a network that outputs its final boxes. */
static mi_status *run_boxes(walk *w, const int64_t idx[3]) {
  mi_detector *d = w->d;
  const mi_card *c = d->card;
  const mi_card_detection *h = &c->det;
  const int C = h->input_channels;
  const int64_t pv = w->p[0] * w->p[1];
  const int64_t d4[4] = {1, C, w->p[1], w->p[0]};
  const int rank = d->box_input_rank;
  mi_tensor *in = NULL;
  MI_TRY(mi_tensor_create(MI_FLOAT, rank, d4 + (4 - rank), &in));
  float *ib = mi_tensor_data(in);
  const int64_t o[3] = {w->steps[0][idx[0]], w->steps[1][idx[1]], w->steps[2][idx[2]]};
  for (int64_t y = 0; y < w->p[1]; ++y)
    memcpy(ib + y * w->p[0], w->vol + (o[2] * w->dims[1] + o[1] + y) * w->dims[0] + o[0],
           (size_t)w->p[0] * sizeof(float));
  for (int ch = 1; ch < C; ++ch) memcpy(ib + ch * pv, ib, (size_t)pv * sizeof(float)); /* grey into C channels */
  const int no = mi_model_num_outputs(d->model);
  mi_tensor **outs = calloc((size_t)no, sizeof *outs);
  mi_status *st = outs ? mi_model_run(d->model, &in, 1, outs, no) : mi_error(MI_ERR_NO_MEMORY, "out of memory");
  mi_tensor_free(in);
  const mi_tensor *tb = st ? NULL : outs[d->box_out[0]], *ts = st ? NULL : outs[d->box_out[1]],
                  *tl = st ? NULL : outs[d->box_out[2]];
  int64_t K = 0;
  if (!st) {
    K = mi_tensor_numel(ts);
    const mi_dtype lt = mi_tensor_dtype(tl);
    if (mi_tensor_dtype(tb) != MI_FLOAT || mi_tensor_dtype(ts) != MI_FLOAT || mi_tensor_numel(tb) != 4 * K ||
        mi_tensor_numel(tl) != K || (lt != MI_INT64 && lt != MI_INT32))
      st = mi_error(MI_ERR_SHAPE, "%s: outputs '%s', '%s', '%s' are not boxes [K, 4] float, scores [K] float and "
                    "labels [K] integer", c->path, h->boxes_output, h->scores_output, h->labels_output);
  }
  double lo[3], hi[3];
  for (int a = 0; a < 3; ++a) core(w, a, idx[a], &lo[a], &hi[a]);
  for (int64_t k = 0; !st && k < K; ++k) {
    const float *b = (const float *)mi_tensor_cdata(tb) + 4 * k;
    const float score = ((const float *)mi_tensor_cdata(ts))[k];
    const int64_t lab = mi_tensor_dtype(tl) == MI_INT64 ? ((const int64_t *)mi_tensor_cdata(tl))[k]
                                                        : ((const int32_t *)mi_tensor_cdata(tl))[k];
    if (!(score >= (float)h->score_threshold)) continue;
    const int64_t li = lab - h->label_offset;
    if (li < 0 || li >= (int64_t)c->n_labels) {
      st = mi_error(MI_ERR_INVALID_MODEL, "%s: output '%s' holds label %lld, the card has labels %d..%d", c->path,
                    h->labels_output, (long long)lab, h->label_offset, h->label_offset + (int)c->n_labels - 1);
      break;
    }
    /* Pixel units (voxel v spans [v, v + 1)) to voxel-centre indices. */
    mi_box m = {.lo = {(float)(b[0] - 0.5 + (double)o[0]), (float)(b[1] - 0.5 + (double)o[1]), (float)o[2]},
                .hi = {(float)(b[2] - 0.5 + (double)o[0]), (float)(b[3] - 0.5 + (double)o[1]), (float)o[2]},
                .score = score, .cls = (int)li, .count = 1};
    const double cx = 0.5 * ((double)m.lo[0] + m.hi[0]), cy = 0.5 * ((double)m.lo[1] + m.hi[1]);
    if (cx >= lo[0] && cx < hi[0] && cy >= lo[1] && cy < hi[1]) st = mi_box_list_push(&w->boxes, &m);
  }
  for (int i = 0; outs && i < no; ++i) mi_tensor_free(outs[i]);
  free(outs);
  return st;
}

/* [N, 2 dims + labels, K]: centre and size in pixels, then label scores. */
static mi_status *decode_anchor_free(walk *w, const mi_tensor *t, const int64_t (*idx)[3], int nb, int nrun) {
  const mi_card *c = w->d->card;
  const int dims = dims_of(c), nl = (int)c->n_labels, F = 2 * dims + nl;
  const int64_t *od = mi_tensor_dims(t);
  if (mi_tensor_dtype(t) != MI_FLOAT || mi_tensor_ndim(t) != 3 || od[0] != nrun || od[1] != F)
    return mi_error(MI_ERR_SHAPE, "%s: network output '%s' is not [%d, %d, K] float", c->path,
                    c->det.outputs[0].name, nrun, F);
  const int64_t K = od[2];
  const float thr = (float)c->det.score_threshold;
  for (int b = 0; b < nb; ++b) {
    const float *o = (const float *)mi_tensor_cdata(t) + (int64_t)b * F * K;
    double lo[3], hi[3], org[3];
    for (int a = 0; a < 3; ++a) {
      org[a] = (double)w->steps[a][idx[b][a]];
      core(w, a, idx[b][a], &lo[a], &hi[a]);
    }
    for (int64_t k = 0; k < K; ++k) {
      int best = 0;
      float bs = -INFINITY;
      for (int l = 0; l < nl; ++l) {
        float v = o[(2 * dims + l) * K + k];
        if (c->det.logits) v = 1.0f / (1.0f + expf(-v));
        if (v > bs) bs = v, best = l;
      }
      if (!(bs >= thr)) continue;
      mi_box m = {.score = bs, .cls = best, .count = 1};
      int inside = 1;
      for (int a = 0; a < 3; ++a) {
        /* Pixel units (voxel v spans [v, v + 1)) to voxel-centre indices. */
        const double ctr = a < dims ? (double)o[a * K + k] - 0.5 + org[a] : org[2];
        const double size = a < dims ? (double)o[(dims + a) * K + k] : 0;
        if (!isfinite(ctr) || !isfinite(size) || size < 0 || ctr < lo[a] || ctr >= hi[a]) inside = 0;
        m.lo[a] = (float)(ctr - size / 2), m.hi[a] = (float)(ctr + size / 2);
      }
      if (inside) MI_TRY(mi_box_list_push(&w->boxes, &m));
    }
  }
  return NULL;
}

static mi_status *run_batch(walk *w, const int64_t (*idx)[3], int nb) {
  mi_detector *d = w->d;
  const mi_card *c = d->card;
  if (c->det.kind == MI_HEAD_BOXES) {
    for (int b = 0; b < nb; ++b) MI_TRY(run_boxes(w, idx[b]));
    return NULL;
  }
  const int nrun = d->fixed_batch > 0 ? d->fixed_batch : nb;
  const int64_t pv = w->p[0] * w->p[1] * w->p[2];
  const int64_t d5[5] = {nrun, 1, w->p[2], w->p[1], w->p[0]}, d4[4] = {nrun, 1, w->p[1], w->p[0]};
  mi_tensor *in = NULL;
  MI_TRY(c->mode_2d ? mi_tensor_create(MI_FLOAT, 4, d4, &in) : mi_tensor_create(MI_FLOAT, 5, d5, &in));
  float *ib = mi_tensor_data(in);
  for (int b = 0; b < nrun; ++b) {
    const int64_t *k = idx[b < nb ? b : nb - 1]; /* a fixed batch is filled with repeats */
    const int64_t o[3] = {w->steps[0][k[0]], w->steps[1][k[1]], w->steps[2][k[2]]};
    for (int64_t z = 0; z < w->p[2]; ++z)
      for (int64_t y = 0; y < w->p[1]; ++y)
        memcpy(ib + b * pv + (z * w->p[1] + y) * w->p[0],
               w->vol + ((o[2] + z) * w->dims[1] + o[1] + y) * w->dims[0] + o[0], (size_t)w->p[0] * sizeof(float));
  }
  const int no = mi_model_num_outputs(d->model);
  mi_tensor **outs = calloc((size_t)no, sizeof *outs);
  mi_status *st = outs ? mi_model_run(d->model, &in, 1, outs, no) : mi_error(MI_ERR_NO_MEMORY, "out of memory");
  mi_tensor_free(in);
  if (!st && c->det.kind == MI_HEAD_ANCHOR_FREE) {
    st = decode_anchor_free(w, outs[d->out_index[0]], idx, nb, nrun);
    for (int i = 0; i < no; ++i) mi_tensor_free(outs[i]);
    free(outs);
    return st;
  }
  for (int h = 0; !st && h < c->det.n_outputs; ++h) {
    const mi_tensor *t = outs[d->out_index[h]];
    int64_t grid[3];
    st = check_output(w, h, t, nrun, grid);
    if (!st) st = check_channels(d, h, mi_tensor_dims(t)[1]);
    const int64_t item = mi_tensor_dims(t)[1] * grid[0] * grid[1] * grid[2];
    for (int b = 0; !st && b < nb; ++b) {
      double origin[3], lo[3], hi[3];
      for (int a = 0; a < 3; ++a) {
        origin[a] = (double)w->steps[a][idx[b][a]];
        core(w, a, idx[b][a], &lo[a], &hi[a]);
      }
      st = mi_yolo_decode(c, h, d->class_fields, (const float *)mi_tensor_cdata(t) + b * item, grid, origin, lo, hi,
                          &w->boxes);
    }
  }
  for (int i = 0; outs && i < no; ++i) mi_tensor_free(outs[i]);
  free(outs);
  return st;
}

static mi_status *walk_volume(walk *w) {
  const mi_card *c = w->d->card;
  for (int a = 0; a < 3; ++a)
    if (!(w->steps[a] = mi_window_steps(w->dims[a], w->p[a], c->overlap, &w->cnt[a])))
      return mi_error(MI_ERR_NO_MEMORY, "out of memory");
  const int64_t total = w->cnt[0] * w->cnt[1] * w->cnt[2];
  const int bsz = w->d->fixed_batch > 0 ? w->d->fixed_batch : c->batch;
  int64_t(*idx)[3] = malloc((size_t)bsz * sizeof *idx);
  if (!idx) return mi_error(MI_ERR_NO_MEMORY, "out of memory");
  mi_status *st = NULL;
  int nb = 0;
  for (int64_t i = 0; i < total && !st; ++i) {
    idx[nb][0] = i % w->cnt[0];
    idx[nb][1] = (i / w->cnt[0]) % w->cnt[1];
    idx[nb][2] = i / (w->cnt[0] * w->cnt[1]);
    if (++nb < bsz && i + 1 < total) continue;
    st = run_batch(w, (const int64_t(*)[3])idx, nb);
    nb = 0;
    if (!st) {
      char msg[64];
      snprintf(msg, sizeof msg, "inference: %s %lld/%lld", c->mode_2d ? "slice" : "patch", (long long)(i + 1),
               (long long)total);
      st = report(w->d, 0.1 + 0.8 * (double)(i + 1) / (double)total, msg);
    }
  }
  free(idx);
  return st;
}

/* ------------------------------------------------------------- boxes */

static int by_slice(const void *x, const void *y) {
  const mi_box *a = x, *b = y;
  return a->lo[2] < b->lo[2] ? -1 : a->lo[2] > b->lo[2];
}

/* 2d: NMS within each slice, then chains over slices, then 3D NMS. */
static mi_status *reduce_2d(const mi_card_detection *det, mi_box_list *l) {
  qsort(l->v, l->n, sizeof *l->v, by_slice);
  size_t kept = 0;
  for (size_t i = 0; i < l->n;) {
    size_t j = i;
    while (j < l->n && l->v[j].lo[2] == l->v[i].lo[2]) ++j;
    size_t k = mi_nms(l->v + i, j - i, 2, det->iou_threshold, 0);
    memmove(l->v + kept, l->v + i, k * sizeof *l->v);
    kept += k;
    i = j;
  }
  mi_box *m = NULL;
  size_t nm = 0;
  MI_TRY(mi_merge_slices(l->v, kept, det->merge_iou, det->merge_gap, det->merge_min_slices, &m, &nm));
  free(l->v);
  l->v = m, l->n = l->cap = nm;
  return NULL;
}

static void to_finding(const mi_card *c, const mi_geometry *gm, const mi_geometry *g, const mi_box *b, mi_finding *f) {
  double ci[3];
  for (int a = 0; a < 3; ++a) ci[a] = 0.5 * ((double)b->lo[a] + (double)b->hi[a]);
  f->label_index = (size_t)b->cls;
  f->label = c->labels[b->cls].value;
  f->score = b->score;
  mi_geometry_index_to_point(gm, ci[0], ci[1], ci[2], f->center);
  for (int a = 0; a < 3; ++a) {
    const double half = 0.5 * ((double)b->hi[a] - (double)b->lo[a]) * gm->spacing[a];
    for (int r = 0; r < 3; ++r) f->axes[a][r] = gm->direction[r * 3 + a] * half;
    f->size_mm[a] = 2 * half;
  }
  mi_geometry_point_to_index(g, f->center, f->center_index);
  double kmin = INFINITY, kmax = -INFINITY;
  for (int corner = 0; corner < 8; ++corner) {
    double p[3], idx[3];
    for (int r = 0; r < 3; ++r)
      p[r] = f->center[r] + (corner & 1 ? 1 : -1) * f->axes[0][r] + (corner & 2 ? 1 : -1) * f->axes[1][r] +
             (corner & 4 ? 1 : -1) * f->axes[2][r];
    mi_geometry_point_to_index(g, p, idx);
    kmin = idx[2] < kmin ? idx[2] : kmin;
    kmax = idx[2] > kmax ? idx[2] : kmax;
  }
  const double last = (double)(g->size[2] - 1);
  const double k = f->center_index[2];
  f->slice = (int)lround(k < 0 ? 0 : k > last ? last : k);
  f->first_slice = (int)ceil(kmin - 0.5 < 0 ? 0 : kmin - 0.5 > last ? last : kmin - 0.5);
  f->last_slice = (int)floor(kmax + 0.5 < 0 ? 0 : kmax + 0.5 > last ? last : kmax + 0.5);
  if (f->first_slice > f->slice) f->first_slice = f->slice;
  if (f->last_slice < f->slice) f->last_slice = f->slice;
  f->contributing_slices = c->mode_2d ? b->count : 0;
}

static mi_status *run(mi_detector *d, const mi_geometry *g, const float *volume, mi_detections *r) {
  const mi_card *c = d->card;
  double t0 = mi_now_seconds();
  MI_TRY(report(d, 0.0, "preprocess"));
  float *mv = NULL, bg = 0;
  MI_TRY(mi_card_model_volume(c, g, volume, d->opt.threads, &r->model_geometry, &mv, &bg));
  const mi_geometry *gm = &r->model_geometry;
  walk w = {.d = d};
  int64_t pad_lo[3];
  int padded = 0;
  for (int a = 0; a < 3; ++a) {
    w.p[a] = c->patch[a] > 0 ? c->patch[a] : gm->size[a]; /* 2d without patch_size: whole slices */
    if (c->mode_2d && a == 2) w.p[a] = 1;
    w.dims[a] = gm->size[a] < w.p[a] ? w.p[a] : gm->size[a];
    pad_lo[a] = (w.dims[a] - gm->size[a]) / 2;
    padded |= w.dims[a] != gm->size[a];
  }
  float *pv = NULL;
  mi_status *st = NULL;
  if (padded) { /* volumes smaller than a patch are padded, centred */
    const int64_t n = w.dims[0] * w.dims[1] * w.dims[2];
    if (!(pv = malloc((size_t)n * sizeof *pv))) st = mi_error(MI_ERR_NO_MEMORY, "detection: out of memory");
    for (int64_t i = 0; !st && i < n; ++i) pv[i] = bg;
    for (int64_t z = 0; !st && z < gm->size[2]; ++z)
      for (int64_t y = 0; y < gm->size[1]; ++y)
        memcpy(pv + ((z + pad_lo[2]) * w.dims[1] + y + pad_lo[1]) * w.dims[0] + pad_lo[0],
               mv + (z * gm->size[1] + y) * gm->size[0], (size_t)gm->size[0] * sizeof(float));
  }
  w.vol = padded ? pv : mv;
  double t1 = mi_now_seconds();
  r->seconds[MI_STAGE_PREPROCESS] = t1 - t0;
  if (!st) st = report(d, 0.1, "inference");
  if (!st) st = walk_volume(&w);
  for (int a = 0; a < 3; ++a) free(w.steps[a]);
  free(pv), free(mv);
  double t2 = mi_now_seconds();
  r->seconds[MI_STAGE_INFERENCE] = t2 - t1;
  if (!st) st = report(d, 0.9, "postprocess");
  for (size_t i = 0; !st && i < w.boxes.n; ++i)
    for (int a = 0; a < 3; ++a) w.boxes.v[i].lo[a] -= (float)pad_lo[a], w.boxes.v[i].hi[a] -= (float)pad_lo[a];
  if (!st && c->mode_2d) st = reduce_2d(&c->det, &w.boxes);
  size_t n = st ? 0 : mi_nms(w.boxes.v, w.boxes.n, 3, c->det.iou_threshold, (size_t)c->det.max_detections);
  if (!st && n && !(r->f = calloc(n, sizeof *r->f))) st = mi_error(MI_ERR_NO_MEMORY, "out of memory");
  for (size_t i = 0; !st && i < n; ++i) to_finding(c, gm, g, &w.boxes.v[i], &r->f[i]);
  if (!st) r->n = n;
  free(w.boxes.v);
  r->seconds[MI_STAGE_POSTPROCESS] = mi_now_seconds() - t2;
  if (st) return mi_error_prefix(st, "%s", c->name);
  return report(d, 1.0, "postprocess: done");
}

mi_status *mi_detector_run(mi_detector *d, const mi_geometry *g, const float *volume, mi_detections **out) {
  if (!out) return mi_error(MI_ERR_INVALID_ARGUMENT, "mi_detector_run: out is NULL");
  *out = NULL;
  if (!d || !g || !volume) return mi_error(MI_ERR_INVALID_ARGUMENT, "mi_detector_run: NULL argument");
  mi_detections *r = calloc(1, sizeof *r);
  if (!r) return mi_error(MI_ERR_NO_MEMORY, "out of memory");
  mi_status *st = run(d, g, volume, r);
  if (st) {
    mi_detections_free(r);
    return st;
  }
  *out = r;
  return NULL;
}

void mi_detections_free(mi_detections *r) {
  if (!r) return;
  free(r->f);
  free(r);
}

size_t mi_detections_count(const mi_detections *r) { return r ? r->n : 0; }
const mi_finding *mi_detections_at(const mi_detections *r, size_t i) { return r && i < r->n ? &r->f[i] : NULL; }
double mi_detections_seconds(const mi_detections *r, int stage) {
  return r && stage >= 0 && stage < MI_STAGE_COUNT ? r->seconds[stage] : 0;
}
const mi_geometry *mi_detections_model_geometry(const mi_detections *r) { return r ? &r->model_geometry : NULL; }
