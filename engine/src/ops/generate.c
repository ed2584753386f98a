/* Operators that generate or scan values: Range, EyeLike, Trilu, CumSum. */
#include <math.h>
#include <string.h>

#include "shape_util.h"

static bool is_float(mi_dtype t) { return t == MI_FLOAT || t == MI_DOUBLE; }

static mi_status *scalar_of(const mi_node *n, const mi_tensor *t, const char *what) {
  if (!t) return mi_node_error(n, MI_ERR_INVALID_MODEL, "missing '%s'", what);
  if (mi_numel(t->ndim, t->dims) != 1) return mi_node_error(n, MI_ERR_INVALID_MODEL, "'%s' must be a scalar", what);
  return NULL;
}

/* ---- Range ------------------------------------------------------------- */

static mi_status *range_count(mi_node *n, mi_tensor *const *in, int64_t *cnt) {
  static const char *names[3] = {"start", "limit", "delta"};
  for (int i = 0; i < 3; i++) {
    MI_TRY(scalar_of(n, in[i], names[i]));
    if (!in[i]->data)
      return mi_node_error(n, MI_ERR_UNSUPPORTED, "'%s' decides the output length but is not known while planning",
                           names[i]);
    if (in[i]->dtype != in[0]->dtype) return mi_node_error(n, MI_ERR_INVALID_MODEL, "inputs differ in type");
  }
  if (is_float(in[0]->dtype)) {
    double s = mi_tensor_get_f64(in[0], 0), l = mi_tensor_get_f64(in[1], 0), d = mi_tensor_get_f64(in[2], 0);
    if (d == 0 || !isfinite(s) || !isfinite(l) || !isfinite(d))
      return mi_node_error(n, MI_ERR_INVALID_ARGUMENT, "invalid range (%g, %g, %g)", s, l, d);
    double c = ceil((l - s) / d);
    if (c > 1e15) return mi_node_error(n, MI_ERR_INVALID_ARGUMENT, "range too long");
    *cnt = c > 0 ? (int64_t)c : 0;
  } else {
    int64_t s = mi_tensor_get_i64(in[0], 0), l = mi_tensor_get_i64(in[1], 0), d = mi_tensor_get_i64(in[2], 0);
    if (d == 0) return mi_node_error(n, MI_ERR_INVALID_ARGUMENT, "delta is 0");
    /* ceil((l - s) / d) in integers, only when it is positive */
    if ((d > 0 && l <= s) || (d < 0 && l >= s)) *cnt = 0;
    else if (d > 0) *cnt = (l - s + d - 1) / d;
    else *cnt = (s - l + (-d) - 1) / (-d);
  }
  return NULL;
}

mi_status *range_infer(mi_node *n, mi_tensor *const *in, mi_tensor **out) {
  int64_t cnt;
  MI_TRY(range_count(n, in, &cnt));
  mi_dtype t = in[0]->dtype;
  if (t != MI_FLOAT && t != MI_DOUBLE && t != MI_INT16 && t != MI_INT32 && t != MI_INT64)
    return mi_node_error(n, MI_ERR_UNSUPPORTED, "Range of %s", mi_dtype_name(t));
  mi_tensor_set_shape(out[0], t, 1, &cnt);
  return NULL;
}

mi_status *range_run(mi_node *n, mi_exec *ex, mi_tensor *const *in, mi_tensor **out) {
  (void)ex;
  int64_t cnt;
  MI_TRY(range_count(n, in, &cnt));
  switch (out[0]->dtype) {
    case MI_FLOAT: { /* accumulate in float like the reference loop */
      float v = *(const float *)in[0]->data, d = *(const float *)in[2]->data;
      for (int64_t i = 0; i < cnt; i++, v += d) ((float *)out[0]->data)[i] = v;
      break;
    }
    case MI_DOUBLE: {
      double s = mi_tensor_get_f64(in[0], 0), d = mi_tensor_get_f64(in[2], 0);
      for (int64_t i = 0; i < cnt; i++) ((double *)out[0]->data)[i] = s + (double)i * d;
      break;
    }
    default: {
      int64_t s = mi_tensor_get_i64(in[0], 0), d = mi_tensor_get_i64(in[2], 0);
      for (int64_t i = 0; i < cnt; i++) mi_tensor_set_f64(out[0], i, (double)(s + i * d));
      break;
    }
  }
  return NULL;
}

/* ---- EyeLike ----------------------------------------------------------- */

mi_status *eyelike_infer(mi_node *n, mi_tensor *const *in, mi_tensor **out) {
  if (in[0]->ndim != 2) return mi_node_error(n, MI_ERR_SHAPE, "input must be 2-D, got %d-D", in[0]->ndim);
  int64_t dt = mi_attr_int(n, "dtype", in[0]->dtype);
  if (!mi_dtype_size((mi_dtype)dt) || dt < 0 || dt > 100)
    return mi_node_error(n, MI_ERR_UNSUPPORTED, "dtype %lld is not supported", (long long)dt);
  mi_tensor_set_shape(out[0], (mi_dtype)dt, 2, in[0]->dims);
  return NULL;
}

mi_status *eyelike_run(mi_node *n, mi_exec *ex, mi_tensor *const *in, mi_tensor **out) {
  (void)ex;
  (void)in;
  int64_t k = mi_attr_int(n, "k", 0), R = out[0]->dims[0], C = out[0]->dims[1];
  memset(out[0]->data, 0, mi_tensor_nbytes(out[0]));
  for (int64_t i = 0; i < R; i++) {
    int64_t j = i + k;
    if (j >= 0 && j < C) mi_tensor_set_f64(out[0], i * C + j, 1.0);
  }
  return NULL;
}

/* ---- Trilu ------------------------------------------------------------- */

mi_status *trilu_infer(mi_node *n, mi_tensor *const *in, mi_tensor **out) {
  if (in[0]->ndim < 2) return mi_node_error(n, MI_ERR_SHAPE, "input must have rank >= 2");
  if (n->n_in > 1 && in[1]) MI_TRY(scalar_of(n, in[1], "k"));
  mi_tensor_set_shape(out[0], in[0]->dtype, in[0]->ndim, in[0]->dims);
  return NULL;
}

mi_status *trilu_run(mi_node *n, mi_exec *ex, mi_tensor *const *in, mi_tensor **out) {
  (void)ex;
  int64_t k = n->n_in > 1 && in[1] ? mi_tensor_get_i64(in[1], 0) : 0;
  bool upper = mi_attr_int(n, "upper", 1) != 0;
  int r = in[0]->ndim;
  int64_t R = in[0]->dims[r - 2], C = in[0]->dims[r - 1], mats = mi_numel(r - 2, in[0]->dims);
  size_t es = mi_dtype_size(in[0]->dtype);
  const char *s = in[0]->data;
  char *d = out[0]->data;
  /* Per row, the kept columns form one run: [i+k, C) upper, [0, i+k] lower. */
  for (int64_t m = 0; m < mats; m++)
    for (int64_t i = 0; i < R; i++) {
      size_t row = (size_t)((m * R + i) * C) * es;
      int64_t lo, hi;
      if (upper) lo = i + k, hi = C;
      else lo = 0, hi = i + k + 1;
      lo = lo < 0 ? 0 : (lo > C ? C : lo);
      hi = hi < 0 ? 0 : (hi > C ? C : hi);
      if (hi < lo) hi = lo;
      memset(d + row, 0, (size_t)C * es);
      if (hi > lo) memcpy(d + row + (size_t)lo * es, s + row + (size_t)lo * es, (size_t)(hi - lo) * es);
    }
  return NULL;
}

/* ---- CumSum ------------------------------------------------------------ */

mi_status *cumsum_infer(mi_node *n, mi_tensor *const *in, mi_tensor **out) {
  mi_dtype t = in[0]->dtype;
  if (t == MI_BOOL) return mi_node_error(n, MI_ERR_UNSUPPORTED, "CumSum of bool");
  if (in[0]->ndim < 1) return mi_node_error(n, MI_ERR_SHAPE, "input must have rank >= 1");
  MI_TRY(scalar_of(n, n->n_in > 1 ? in[1] : NULL, "axis"));
  mi_tensor_set_shape(out[0], t, in[0]->ndim, in[0]->dims);
  return NULL;
}

typedef struct {
  const mi_tensor *x;
  mi_tensor *y;
  int64_t len, inner;
  bool exclusive, reverse;
} cumsum_ctx;

#define CUMSUM_LINE(T, ACC)                                                      \
  {                                                                              \
    const T *xs = (const T *)c->x->data;                                         \
    T *ys = (T *)c->y->data;                                                     \
    for (int64_t line = b; line < e; line++) {                                   \
      int64_t o = line / c->inner, in_ = line % c->inner;                        \
      int64_t base = o * c->len * c->inner + in_;                                \
      ACC acc = 0;                                                               \
      for (int64_t j = 0; j < c->len; j++) {                                     \
        int64_t jj = c->reverse ? c->len - 1 - j : j;                            \
        int64_t idx = base + jj * c->inner;                                      \
        if (c->exclusive) {                                                      \
          ys[idx] = (T)acc;                                                      \
          acc += xs[idx];                                                        \
        } else {                                                                 \
          acc += xs[idx];                                                        \
          ys[idx] = (T)acc;                                                      \
        }                                                                        \
      }                                                                          \
    }                                                                            \
  }                                                                              \
  break;

static void cumsum_range(void *p, int64_t b, int64_t e) {
  const cumsum_ctx *c = p;
  switch (c->x->dtype) {
    case MI_FLOAT: CUMSUM_LINE(float, float)
    case MI_DOUBLE: CUMSUM_LINE(double, double)
    case MI_INT8: CUMSUM_LINE(int8_t, int64_t)
    case MI_INT16: CUMSUM_LINE(int16_t, int64_t)
    case MI_INT32: CUMSUM_LINE(int32_t, int64_t)
    case MI_INT64: CUMSUM_LINE(int64_t, int64_t)
    case MI_UINT8: CUMSUM_LINE(uint8_t, uint64_t)
    case MI_UINT16: CUMSUM_LINE(uint16_t, uint64_t)
    case MI_UINT32: CUMSUM_LINE(uint32_t, uint64_t)
    case MI_UINT64: CUMSUM_LINE(uint64_t, uint64_t)
    default: break;
  }
}

mi_status *cumsum_run(mi_node *n, mi_exec *ex, mi_tensor *const *in, mi_tensor **out) {
  int axis, r = in[0]->ndim;
  if (!in[1]->data) return mi_node_error(n, MI_ERR_INVALID_MODEL, "'axis' has no value");
  MI_TRY(shp_axis(n, mi_tensor_get_i64(in[1], 0), r, &axis));
  cumsum_ctx c = {in[0], out[0], in[0]->dims[axis], mi_numel(r - axis - 1, in[0]->dims + axis + 1),
                  mi_attr_int(n, "exclusive", 0) != 0, mi_attr_int(n, "reverse", 0) != 0};
  int64_t lines = mi_numel(axis, in[0]->dims) * c.inner;
  mi_parallel_for(ex, lines, 1024, cumsum_range, &c);
  return NULL;
}
