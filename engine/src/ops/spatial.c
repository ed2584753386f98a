#include "spatial.h"

#include <string.h>

mi_status *mi_read_spatial_ints(mi_node *n, const char *name, size_t maxn, int64_t *dst, size_t *cnt,
                                int64_t minval) {
  const int64_t *v;
  size_t k = mi_attr_ints(n, name, &v);
  if (k > maxn)
    return mi_node_error(n, MI_ERR_UNSUPPORTED, "'%s' has %zu values; at most 3 spatial dims are supported",
                         name, k);
  for (size_t i = 0; i < k; i++) {
    if (v[i] < minval || v[i] > MI_SPATIAL_MAX)
      return mi_node_error(n, MI_ERR_INVALID_MODEL, "'%s'[%zu] = %lld must be in [%lld, %lld]", name, i,
                           (long long)v[i], (long long)minval, (long long)MI_SPATIAL_MAX);
    dst[i] = v[i];
  }
  *cnt = k;
  return NULL;
}

mi_status *mi_read_auto_pad(mi_node *n, int *auto_pad) {
  const char *ap = mi_attr_string(n, "auto_pad", "NOTSET");
  if (!strcmp(ap, "NOTSET") || !ap[0]) *auto_pad = PAD_NOTSET;
  else if (!strcmp(ap, "SAME_UPPER")) *auto_pad = PAD_SAME_UPPER;
  else if (!strcmp(ap, "SAME_LOWER")) *auto_pad = PAD_SAME_LOWER;
  else if (!strcmp(ap, "VALID")) *auto_pad = PAD_VALID;
  else return mi_node_error(n, MI_ERR_INVALID_MODEL, "unknown auto_pad '%s'", ap);
  return NULL;
}

typedef struct prologue_ctx {
  const float *x;
  float *y;
  const float *pre;
  int64_t C, plane;
  bool relu;
} prologue_ctx;

static void prologue_planes(void *vctx, int64_t b, int64_t e) {
  const prologue_ctx *c = vctx;
  for (int64_t p = b; p < e; p++) {
    const int64_t ch = p % c->C;
    mi_prologue_copy(c->y + p * c->plane, c->x + p * c->plane, 1, 0, c->plane, c->pre[ch], c->pre[c->C + ch], c->relu);
  }
}

void mi_prologue_planes(mi_exec *ex, const float *x, float *y, int64_t n, int64_t plane, const float *pre, int64_t C,
                        bool relu) {
  prologue_ctx c = {x, y, pre, C, plane, relu};
  mi_parallel_for(ex, n, 1, prologue_planes, &c);
}
