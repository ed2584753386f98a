/* Attribute parsing and index arithmetic shared by the windowed operators
 * (Conv, ConvTranspose, pooling). */
#ifndef MEDINFER_OPS_SPATIAL_H
#define MEDINFER_OPS_SPATIAL_H
#include "../internal.h"

enum { PAD_NOTSET, PAD_SAME_UPPER, PAD_SAME_LOWER, PAD_VALID };

/* Floor division for b > 0.  Inline: the window loops call these per row. */
static inline int64_t mi_floordiv(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }
/* Range [lo, hi) of t in [0, n) with 0 <= start + t*step < in. */
static inline void mi_valid_range(int64_t n, int64_t step, int64_t start, int64_t in, int64_t *lo, int64_t *hi) {
  int64_t l = -mi_floordiv(start, step);
  if (l < 0) l = 0;
  int64_t h = mi_floordiv(in - 1 - start, step) + 1;
  if (h > n) h = n;
  if (h < l) h = l;
  *lo = l;
  *hi = h;
}
/* The largest kernel size, stride, dilation, pad or output size an
 * attribute may give: sizes computed from them then stay far inside int64
 * (a hostile model's pads overflowed them). */
#define MI_SPATIAL_MAX ((int64_t)1 << 24)
/* d[0] * d[1] * d[2] into *v; false when it leaves int64. */
static inline bool mi_spatial_volume(const int64_t d[3], int64_t *v) {
  int64_t t;
  return !__builtin_mul_overflow(d[0], d[1], &t) && !__builtin_mul_overflow(t, d[2], v);
}
/* INTS attribute `name` (at most maxn values, each in [minval, MI_SPATIAL_MAX]) into dst. */
mi_status *mi_read_spatial_ints(mi_node *n, const char *name, size_t maxn, int64_t *dst, size_t *cnt,
                                int64_t minval);
/* The auto_pad attribute as PAD_*. */
mi_status *mi_read_auto_pad(mi_node *n, int *auto_pad);

/* ---- the input prologue (mi_node.pre_affine) of Conv and AveragePool ----
 * Channel c's values become v * a + b with a = pre[c], b = pre[C + c], then
 * ReLU if relu (a NaN gives 0). */
static inline __attribute__((always_inline)) float mi_prologue_value(float v, float a, float b, bool relu) {
  v = v * a + b;
  return relu && !(v > 0.f) ? 0.f : v;
}
/* o[t] = the prologue of src[t * st] for t in [lo, hi); relu tested once,
 * so each loop vectorises. */
static inline __attribute__((always_inline)) void mi_prologue_copy(float *o, const float *src, int64_t st, int64_t lo,
                                                                   int64_t hi, float a, float b, bool relu) {
  if (relu)
    for (int64_t t = lo; t < hi; t++) o[t] = mi_prologue_value(src[t * st], a, b, true);
  else
    for (int64_t t = lo; t < hi; t++) o[t] = mi_prologue_value(src[t * st], a, b, false);
}
/* y = the prologue on each of the n planes of x (plane floats each; plane
 * p holds channel p % C), split over the threads; y must not overlap x. */
void mi_prologue_planes(mi_exec *ex, const float *x, float *y, int64_t n, int64_t plane, const float *pre, int64_t C,
                        bool relu);

/* MaxPool 2x2 at stride 2, no padding (floor), of `planes` float planes of
 * H x W into y (Conv's fused pool, mi_node.post_pool2, where it cannot pool
 * in the Winograd transform): the MaxPool operator's own kernels. */
void mi_maxpool_2x2_planes(mi_exec *ex, const float *x, float *y, int64_t planes, int64_t H, int64_t W);

#endif
