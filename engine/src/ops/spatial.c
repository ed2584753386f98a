#include "spatial.h"

#include <string.h>

int64_t mi_floordiv(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

void mi_valid_range(int64_t n, int64_t step, int64_t start, int64_t in, int64_t *lo, int64_t *hi) {
  int64_t l = -mi_floordiv(start, step);
  if (l < 0) l = 0;
  int64_t h = mi_floordiv(in - 1 - start, step) + 1;
  if (h > n) h = n;
  if (h < l) h = l;
  *lo = l;
  *hi = h;
}

mi_status *mi_read_spatial_ints(mi_node *n, const char *name, size_t maxn, int64_t *dst, size_t *cnt,
                                int64_t minval) {
  const int64_t *v;
  size_t k = mi_attr_ints(n, name, &v);
  if (k > maxn)
    return mi_node_error(n, MI_ERR_UNSUPPORTED, "'%s' has %zu values; at most 3 spatial dims are supported",
                         name, k);
  for (size_t i = 0; i < k; i++) {
    if (v[i] < minval)
      return mi_node_error(n, MI_ERR_INVALID_MODEL, "'%s'[%zu] = %lld must be >= %lld", name, i,
                           (long long)v[i], (long long)minval);
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
