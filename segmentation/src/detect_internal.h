/* Internal pieces of the detector (not part of the public API). */
#ifndef MEDINFER_SEG_DETECT_INTERNAL_H
#define MEDINFER_SEG_DETECT_INTERNAL_H

#include "pipeline_internal.h"

typedef struct mi_box_list {
  mi_box *v;
  size_t n, cap;
} mi_box_list;

mi_status *mi_box_list_push(mi_box_list *l, const mi_box *b);

/* Decode head output `head` of the card for one batch item: `out` holds
 * anchors x fields channels of grid[0] x grid[1] x grid[2] cells (x fastest;
 * grid[2] = 1 in 2d).  class_fields: whether the vector carries the class
 * scores (a one-label head may omit them).  Boxes go to `boxes` in model
 * voxel indices: the patch origin is added, and only boxes whose centre lies
 * in [core_lo, core_hi) are kept, so that overlapping patches report each
 * object once.  In 2d the box's z is origin[2] (lo = hi). */
mi_status *mi_yolo_decode(const mi_card *c, int head, int class_fields, const float *out, const int64_t grid[3],
                          const double origin[3], const double core_lo[3], const double core_hi[3],
                          mi_box_list *boxes);

#endif
