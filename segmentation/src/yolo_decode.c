/* Decoding of a YOLO-style head output: per cell and anchor the vector
 * (P_c, B_x, B_y, [B_z], B_w, B_h, [B_d], C_1..C_n) (or box first, "bpc")
 * becomes a scored, classed box in model-grid voxel coordinates. */
#include <math.h>
#include <stdlib.h>

#include "detect_internal.h"

static float act(int logits, float v) { return logits ? 1.0f / (1.0f + expf(-v)) : v; }

mi_status *mi_box_list_push(mi_box_list *l, const mi_box *b) {
  if (l->n == l->cap) {
    size_t cap = l->cap ? 2 * l->cap : 256;
    mi_box *v = realloc(l->v, cap * sizeof *v);
    if (!v) return mi_error(MI_ERR_NO_MEMORY, "detection: out of memory for %zu boxes", cap);
    l->v = v, l->cap = cap;
  }
  l->v[l->n++] = *b;
  return NULL;
}

mi_status *mi_yolo_decode(const mi_card *c, int head, int class_fields, const float *out, const int64_t grid[3],
                          const double origin[3], const double core_lo[3], const double core_hi[3],
                          mi_box_list *boxes) {
  const mi_card_detection *d = &c->det;
  const mi_card_head_output *h = &d->outputs[head];
  const int dims = c->mode_2d ? 2 : 3;
  const int nc = (int)c->n_labels;
  const int F = 1 + 2 * dims + (class_fields ? nc : 0);
  const int64_t cells = grid[0] * grid[1] * grid[2];
  const int p_at = d->box_first ? 2 * dims : 0, box_at = d->box_first ? 0 : 1, cls_at = 1 + 2 * dims;
  const float thr = (float)d->score_threshold;
  for (int a = 0; a < h->n_anchors; ++a) {
    const float *base = out + (int64_t)a * F * cells;
    for (int64_t cell = 0; cell < cells; ++cell) {
      const float pc = act(d->logits, base[p_at * cells + cell]);
      if (!(pc >= thr)) continue; /* score = P_c x class score <= P_c; also drops NaN */
      int best = 0;
      float bs = 1;
      if (class_fields) {
        bs = -1;
        for (int k = 0; k < nc; ++k) {
          const float v = act(d->logits, base[(cls_at + k) * cells + cell]);
          if (v > bs) bs = v, best = k;
        }
      }
      const float score = pc * bs;
      if (!(score >= thr)) continue;
      const int64_t idx[3] = {cell % grid[0], (cell / grid[0]) % grid[1], cell / (grid[0] * grid[1])};
      mi_box b = {.score = score, .cls = best, .count = 1};
      int inside = 1;
      for (int ax = 0; ax < 3; ++ax) {
        double ctr, size;
        if (ax < dims) {
          const float tc = base[(box_at + ax) * cells + cell], ts = base[(box_at + dims + ax) * cells + cell];
          if (d->coding == MI_BOX_YOLOV5) {
            ctr = (2.0 * act(d->logits, tc) - 0.5 + (double)idx[ax]) * h->stride[ax];
            const double s2 = 2.0 * act(d->logits, ts);
            size = h->anchors[a][ax] * s2 * s2;
          } else {
            ctr = (act(d->logits, tc) + (double)idx[ax]) * h->stride[ax];
            size = h->anchors[a][ax] * exp(ts > 30 ? 30 : ts);
          }
          /* Pixel units (voxel v spans [v, v + 1)) to voxel-centre indices. */
          ctr += origin[ax] - 0.5;
        } else { /* 2D: the slice itself */
          ctr = origin[2];
          size = 0;
        }
        if (!isfinite(ctr) || !isfinite(size) || ctr < core_lo[ax] || ctr >= core_hi[ax]) inside = 0;
        b.lo[ax] = (float)(ctr - size / 2);
        b.hi[ax] = (float)(ctr + size / 2);
      }
      if (inside) MI_TRY(mi_box_list_push(boxes, &b));
    }
  }
  return NULL;
}
