/* Box arithmetic of the detector: IoU, class-wise non-maximum suppression
 * and the merging of 2D boxes on consecutive slices into 3D boxes. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "medinfer/segmentation.h"

double mi_box_iou(const mi_box *a, const mi_box *b, int dims) {
  double inter = 1, va = 1, vb = 1;
  for (int d = 0; d < dims; ++d) {
    const double lo = a->lo[d] > b->lo[d] ? a->lo[d] : b->lo[d];
    const double hi = a->hi[d] < b->hi[d] ? a->hi[d] : b->hi[d];
    inter *= hi > lo ? hi - lo : 0;
    va *= a->hi[d] > a->lo[d] ? a->hi[d] - a->lo[d] : 0;
    vb *= b->hi[d] > b->lo[d] ? b->hi[d] - b->lo[d] : 0;
  }
  const double uni = va + vb - inter;
  return uni > 0 ? inter / uni : 0;
}

/* Descending score; ties by position so the order does not depend on qsort. */
static int by_score(const void *x, const void *y) {
  const mi_box *a = x, *b = y;
  if (a->score != b->score) return a->score > b->score ? -1 : 1;
  for (int d = 0; d < 3; ++d)
    if (a->lo[d] != b->lo[d]) return a->lo[d] < b->lo[d] ? -1 : 1;
  return a->cls - b->cls;
}

size_t mi_nms(mi_box *boxes, size_t n, int dims, double iou, size_t max_keep) {
  if (!boxes || !n) return 0;
  qsort(boxes, n, sizeof *boxes, by_score);
  size_t kept = 0;
  for (size_t i = 0; i < n && (!max_keep || kept < max_keep); ++i) {
    int keep = 1;
    for (size_t j = 0; j < kept && keep; ++j)
      keep = boxes[j].cls != boxes[i].cls || mi_box_iou(&boxes[j], &boxes[i], dims) <= iou;
    if (keep) boxes[kept++] = boxes[i];
  }
  return kept;
}

typedef struct chain {
  mi_box last;   /* box on the chain's newest slice */
  mi_box merged; /* union in x/y, slices in z */
  int first, newest;
} chain;

static int by_slice_score(const void *x, const void *y) {
  const mi_box *a = x, *b = y;
  if (a->lo[2] != b->lo[2]) return a->lo[2] < b->lo[2] ? -1 : 1;
  return by_score(x, y);
}

mi_status *mi_merge_slices(const mi_box *boxes, size_t n, double iou, int max_gap, int min_slices, mi_box **out,
                           size_t *n_out) {
  if (!out || !n_out) return mi_error(MI_ERR_INVALID_ARGUMENT, "mi_merge_slices: NULL output");
  *out = NULL, *n_out = 0;
  if (n && !boxes) return mi_error(MI_ERR_INVALID_ARGUMENT, "mi_merge_slices: NULL boxes");
  if (max_gap < 0 || min_slices < 1) return mi_error(MI_ERR_INVALID_ARGUMENT, "mi_merge_slices: bad gap or length");
  if (!n) return NULL;
  mi_box *sorted = malloc(n * sizeof *sorted);
  chain *ch = malloc(n * sizeof *ch);
  if (!sorted || !ch) {
    free(sorted), free(ch);
    return mi_error(MI_ERR_NO_MEMORY, "out of memory");
  }
  memcpy(sorted, boxes, n * sizeof *sorted);
  qsort(sorted, n, sizeof *sorted, by_slice_score);
  size_t nc = 0;
  for (size_t i = 0; i < n; ++i) {
    const mi_box *b = &sorted[i];
    const int z = (int)lrintf(b->lo[2]);
    /* The best-overlapping chain of the class that ended on one of the
     * previous max_gap + 1 slices (not on this one: one box per slice). */
    size_t best = nc;
    double best_iou = iou;
    for (size_t c = 0; c < nc; ++c) {
      if (ch[c].merged.cls != b->cls || ch[c].newest >= z || ch[c].newest < z - 1 - max_gap) continue;
      const double v = mi_box_iou(&ch[c].last, b, 2);
      if (v >= best_iou && (best == nc || v > best_iou)) best = c, best_iou = v;
    }
    if (best == nc) {
      ch[nc].last = *b;
      ch[nc].merged = *b;
      ch[nc].merged.count = 1;
      ch[nc].first = ch[nc].newest = z;
      ++nc;
      continue;
    }
    chain *c = &ch[best];
    for (int d = 0; d < 2; ++d) {
      if (b->lo[d] < c->merged.lo[d]) c->merged.lo[d] = b->lo[d];
      if (b->hi[d] > c->merged.hi[d]) c->merged.hi[d] = b->hi[d];
    }
    if (b->score > c->merged.score) c->merged.score = b->score;
    c->merged.count++;
    c->last = *b;
    c->newest = z;
  }
  size_t k = 0;
  for (size_t c = 0; c < nc; ++c) {
    if (ch[c].merged.count < min_slices) continue;
    mi_box m = ch[c].merged;
    m.lo[2] = (float)ch[c].first - 0.5f;
    m.hi[2] = (float)ch[c].newest + 0.5f;
    sorted[k++] = m;
  }
  free(ch);
  *out = sorted;
  *n_out = k;
  return NULL;
}
