/* Pictures of the review folder (mi_findings_write_review): per finding, the
 * source slice through its centre with the box drawn, above a strip of the
 * neighbouring slices.
 *
 * Layout of finding-<n>.png (pixels, origin top left):
 *   main panel   (0, 0) .. (main_w, main_h): slice f->slice, longest side
 *                MI_REVIEW_MAIN_PX, in-plane aspect from the spacing;
 *   strip        MI_REVIEW_GAP below it: MI_REVIEW_THUMBS tiles of
 *                thumb_w x thumb_h for slices slice - 2 .. slice + 2, each
 *                MI_REVIEW_GAP apart; tiles past the volume stay empty.
 * Voxels are shown nearest-neighbour: voxel (i, j) covers display columns
 * [i * main_w / cols, (i + 1) * main_w / cols) and likewise in rows, so a box
 * edge at continuous index x lies at display (x + 0.5) * main_w / cols.  The
 * box outline is drawn just outside the box: MI_REVIEW_LINE pixels wide on
 * the main panel, 1 on the thumbnails. */
#ifndef MEDINFER_SEG_REVIEW_H
#define MEDINFER_SEG_REVIEW_H

#include <stdint.h>

#include "medinfer/segmentation.h"

#ifdef __cplusplus
extern "C" {
#endif

enum { MI_REVIEW_MAIN_PX = 512, MI_REVIEW_THUMBS = 5, MI_REVIEW_GAP = 4, MI_REVIEW_LINE = 2 };

typedef struct mi_review_layout {
  int main_w, main_h;   /* main panel                    */
  int thumb_w, thumb_h; /* one tile of the strip         */
  int width, height;    /* the whole picture             */
} mi_review_layout;

void mi_review_layout_for(const mi_geometry *g, mi_review_layout *out);

/* Where the finding's box meets slice k: the bounding rectangle, in
 * continuous (i, j) indices, of its 8 corners mapped through the inverse of
 * g's index-to-LPS map.  Returns 1 when the box's k range reaches k (the
 * rectangle is filled either way). */
int mi_review_box_on_slice(const mi_geometry *g, const mi_finding *f, double k, double lo[2], double hi[2]);

/* Render finding f's picture (layout above) windowed at (center, width) and
 * write it to path as PNG, atomically.  f->slice must lie in the volume. */
mi_status *mi_review_write_png(const mi_geometry *g, const float *volume, const mi_finding *f, const uint8_t rgb[3],
                               double window_center, double window_width, const char *path);

#ifdef __cplusplus
}
#endif
#endif
