/* Strided copy, fill and constant-input helpers for the shape operators. */
#include <string.h>

#include "shape_util.h"

mi_status *shp_read_ints(const mi_node *n, const mi_tensor *t, const char *what, int64_t *vals,
                         int64_t max, int64_t *count) {
  if (!t) return mi_node_error(n, MI_ERR_INVALID_MODEL, "missing '%s' input", what);
  if (!t->data)
    return mi_node_error(n, MI_ERR_UNSUPPORTED,
                         "'%s' decides the output shape but its value is not known while planning "
                         "(it must be a constant or computed from shapes)", what);
  if (t->dtype != MI_INT64 && t->dtype != MI_INT32 && t->dtype != MI_INT16 && t->dtype != MI_INT8 &&
      t->dtype != MI_UINT8 && t->dtype != MI_UINT16 && t->dtype != MI_UINT32 && t->dtype != MI_UINT64)
    return mi_node_error(n, MI_ERR_INVALID_MODEL, "'%s' must be an integer tensor, got %s", what,
                         mi_dtype_name(t->dtype));
  if (t->ndim > 1) return mi_node_error(n, MI_ERR_INVALID_MODEL, "'%s' must be 1-D", what);
  int64_t c = mi_numel(t->ndim, t->dims);
  if (c > max) return mi_node_error(n, MI_ERR_UNSUPPORTED, "'%s' has %lld values, at most %lld handled", what,
                                    (long long)c, (long long)max);
  for (int64_t i = 0; i < c; i++) vals[i] = mi_tensor_get_i64(t, i);
  *count = c;
  return NULL;
}

mi_status *shp_axis(const mi_node *n, int64_t axis, int r, int *out) {
  int64_t a = axis < 0 ? axis + r : axis;
  if (a < 0 || a >= r)
    return mi_node_error(n, MI_ERR_INVALID_MODEL, "axis %lld outside a %d-D tensor", (long long)axis, r);
  *out = (int)a;
  return NULL;
}

void shp_strides(int ndim, const int64_t *dims, int64_t *strides) {
  int64_t s = 1;
  for (int i = ndim - 1; i >= 0; i--) {
    strides[i] = s;
    s *= dims[i];
  }
}

#define SC_MAX (2 * MI_MAX_DIMS)
typedef struct {
  int nd;                   /* outer dims (the innermost run excluded) */
  int64_t dims[SC_MAX], str[SC_MAX];
  int64_t inner, istr;      /* innermost run length and source stride */
  size_t es;
  const char *src;
  char *dst;
} sc_ctx;

static void sc_row(const sc_ctx *c, const char *s, char *d) {
  int64_t n = c->inner, st = c->istr;
  if (st == 1) {
    memcpy(d, s, (size_t)n * c->es);
    return;
  }
  switch (c->es) {
#define SC_CASE(T)                                                     \
  {                                                                    \
    const T *sp = (const T *)(const void *)s;                          \
    T *dp = (T *)(void *)d;                                            \
    for (int64_t i = 0; i < n; i++) dp[i] = sp[i * st];                \
    return;                                                            \
  }
    case 1: SC_CASE(uint8_t)
    case 2: SC_CASE(uint16_t)
    case 4: SC_CASE(uint32_t)
    case 8: SC_CASE(uint64_t)
#undef SC_CASE
    default:
      for (int64_t i = 0; i < n; i++) memcpy(d + (size_t)i * c->es, s + i * st * (int64_t)c->es, c->es);
  }
}

static void sc_range(void *p, int64_t b, int64_t e) {
  const sc_ctx *c = p;
  int64_t idx[SC_MAX], off = 0, r = b;
  /* Multi-index of row b, then an odometer over the outer dims. */
  for (int k = c->nd - 1; k >= 0; k--) {
    idx[k] = r % c->dims[k];
    r /= c->dims[k];
    off += idx[k] * c->str[k];
  }
  int64_t es = (int64_t)c->es;
  for (int64_t row = b; row < e; row++) {
    sc_row(c, c->src + off * es, c->dst + row * c->inner * es);
    for (int k = c->nd - 1; k >= 0; k--) {
      off += c->str[k];
      if (++idx[k] < c->dims[k]) break;
      off -= idx[k] * c->str[k];
      idx[k] = 0;
    }
  }
}

void shp_strided_copy(mi_exec *ex, size_t es, int ndim, const int64_t *dims, const int64_t *sstr,
                      const void *src, void *dst) {
  /* Drop size-1 dims and merge neighbours that are contiguous in the source
   * (the destination is always contiguous), so runs become long memcpys. */
  int64_t d[SC_MAX], s[SC_MAX];
  int m = 0;
  for (int i = 0; i < ndim; i++) {
    if (dims[i] == 0) return;
    if (dims[i] == 1) continue;
    if (m > 0 && s[m - 1] == sstr[i] * dims[i]) {
      d[m - 1] *= dims[i];
      s[m - 1] = sstr[i];
    } else {
      d[m] = dims[i];
      s[m] = sstr[i];
      m++;
    }
  }
  sc_ctx c;
  c.es = es;
  c.src = src;
  c.dst = dst;
  if (m == 0) {
    memcpy(dst, src, es);
    return;
  }
  c.inner = d[m - 1];
  c.istr = s[m - 1];
  c.nd = m - 1;
  for (int i = 0; i < c.nd; i++) {
    c.dims[i] = d[i];
    c.str[i] = s[i];
  }
  int64_t rows = mi_numel(c.nd, c.dims);
  int64_t row_bytes = c.inner * (int64_t)es;
  mi_parallel_for(ex, rows, 32768 / (row_bytes + 16) + 1, sc_range, &c);
}

typedef struct {
  char *dst;
  const void *value;
  size_t es;
} fill_ctx;

static void fill_range(void *p, int64_t b, int64_t e) {
  const fill_ctx *c = p;
  char *d = c->dst + (size_t)b * c->es;
  int64_t n = e - b;
  /* Zero is the common case; otherwise double the filled prefix. */
  bool zero = true;
  for (size_t i = 0; i < c->es; i++) zero = zero && ((const unsigned char *)c->value)[i] == 0;
  if (zero) {
    memset(d, 0, (size_t)n * c->es);
    return;
  }
  if (n <= 0) return;
  memcpy(d, c->value, c->es);
  size_t done = c->es, total = (size_t)n * c->es;
  while (done < total) {
    size_t k = done < total - done ? done : total - done;
    memcpy(d + done, d, k);
    done += k;
  }
}

void shp_fill(mi_exec *ex, void *dst, int64_t count, const void *value, size_t es) {
  fill_ctx c = {dst, value, es};
  mi_parallel_for(ex, count, 65536, fill_range, &c);
}
