/* Scatter family: ScatterElements, Scatter (its opset 9-10 name), ScatterND.
 * The output is a copy of data with indexed elements replaced or reduced.
 * Updates are applied one at a time in index order, so duplicate indices
 * behave as the reference (the last write wins; reductions accumulate). */
#include <math.h>
#include <string.h>

#include "shape_util.h"

typedef enum { RED_NONE, RED_ADD, RED_MUL, RED_MAX, RED_MIN } reduction;

static mi_status *parse_reduction(const mi_node *n, reduction *r) {
  const char *s = mi_attr_string(n, "reduction", "none");
  if (!strcmp(s, "none")) *r = RED_NONE;
  else if (!strcmp(s, "add")) *r = RED_ADD;
  else if (!strcmp(s, "mul")) *r = RED_MUL;
  else if (!strcmp(s, "max")) *r = RED_MAX;
  else if (!strcmp(s, "min")) *r = RED_MIN;
  else return mi_node_error(n, MI_ERR_UNSUPPORTED, "reduction '%s'", s);
  return NULL;
}

static mi_status *scatter_init(mi_node *n, mi_graph *g) {
  (void)g;
  reduction r;
  MI_TRY(parse_reduction(n, &r));
  if (n->n_in != 3 || n->n_out != 1) return mi_node_error(n, MI_ERR_INVALID_MODEL, "needs data, indices, updates");
  return NULL;
}

/* Combine update u into element dst (both of type dt). */
static void apply(mi_dtype dt, reduction r, void *dst, const void *u) {
  if (r == RED_NONE) {
    memcpy(dst, u, mi_dtype_size(dt));
    return;
  }
#define COMBINE(T)                                               \
  {                                                              \
    T a = *(T *)dst, b = *(const T *)u;                          \
    T v = r == RED_ADD   ? (T)(a + b)                            \
          : r == RED_MUL ? (T)(a * b)                            \
          : r == RED_MAX ? (a > b ? a : b)                       \
                         : (a < b ? a : b);                      \
    *(T *)dst = v;                                               \
    return;                                                      \
  }
  switch (dt) {
    case MI_FLOAT: COMBINE(float)
    case MI_DOUBLE: COMBINE(double)
    case MI_INT64: COMBINE(int64_t)
    case MI_INT32: COMBINE(int32_t)
    case MI_INT16: COMBINE(int16_t)
    case MI_INT8: COMBINE(int8_t)
    case MI_UINT8: COMBINE(uint8_t)
    case MI_UINT16: COMBINE(uint16_t)
    case MI_UINT32: COMBINE(uint32_t)
    case MI_UINT64: COMBINE(uint64_t)
    case MI_BOOL: COMBINE(uint8_t)
    default: return;
  }
#undef COMBINE
}

static mi_status *check_index_type(const mi_node *n, const mi_tensor *t) {
  if (t->dtype != MI_INT64 && t->dtype != MI_INT32)
    return mi_node_error(n, MI_ERR_INVALID_MODEL, "indices must be int32 or int64, got %s", mi_dtype_name(t->dtype));
  return NULL;
}

/* ---- ScatterElements / Scatter ------------------------------------------- */

static mi_status *scatter_elements_infer(mi_node *n, mi_tensor *const *in, mi_tensor **out) {
  const mi_tensor *d = in[0], *ix = in[1], *u = in[2];
  if (!d || !ix || !u) return mi_node_error(n, MI_ERR_INVALID_MODEL, "missing input");
  MI_TRY(check_index_type(n, ix));
  int r = d->ndim, axis;
  if (r < 1) return mi_node_error(n, MI_ERR_SHAPE, "data must have rank >= 1");
  MI_TRY(shp_axis(n, mi_attr_int(n, "axis", 0), r, &axis));
  if (u->dtype != d->dtype) return mi_node_error(n, MI_ERR_INVALID_MODEL, "updates differ in type from data");
  if (ix->ndim != r || u->ndim != r) return mi_node_error(n, MI_ERR_SHAPE, "indices and updates must have data's rank");
  for (int i = 0; i < r; i++) {
    if (ix->dims[i] != u->dims[i]) return mi_node_error(n, MI_ERR_SHAPE, "indices and updates differ in shape");
    if (i != axis && ix->dims[i] > d->dims[i])
      return mi_node_error(n, MI_ERR_SHAPE, "indices dimension %d exceeds data's", i);
  }
  mi_tensor_set_shape(out[0], d->dtype, r, d->dims);
  return NULL;
}

static mi_status *scatter_elements_run(mi_node *n, mi_exec *ex, mi_tensor *const *in, mi_tensor **out) {
  (void)ex;
  const mi_tensor *d = in[0], *ix = in[1], *u = in[2];
  int r = d->ndim, axis;
  MI_TRY(shp_axis(n, mi_attr_int(n, "axis", 0), r, &axis));
  reduction red;
  MI_TRY(parse_reduction(n, &red));
  size_t es = mi_dtype_size(d->dtype);
  if (out[0]->data != d->data) memcpy(out[0]->data, d->data, mi_tensor_nbytes(d));
  int64_t dstr[MI_MAX_DIMS], cnt = mi_numel(ix->ndim, ix->dims), dim = d->dims[axis];
  shp_strides(r, d->dims, dstr);
  for (int64_t i = 0; i < cnt; i++) {
    int64_t v = mi_tensor_get_i64(ix, i);
    if (v < -dim || v >= dim)
      return mi_node_error(n, MI_ERR_INVALID_ARGUMENT, "index %lld out of range [-%lld, %lld)", (long long)v,
                           (long long)dim, (long long)dim);
    if (v < 0) v += dim;
    int64_t rem = i, off = 0;
    for (int k = r - 1; k >= 0; k--) {
      int64_t x = rem % ix->dims[k];
      rem /= ix->dims[k];
      off += (k == axis ? v : x) * dstr[k];
    }
    apply(d->dtype, red, (char *)out[0]->data + (size_t)off * es, (const char *)u->data + (size_t)i * es);
  }
  return NULL;
}

/* ---- ScatterND ----------------------------------------------------------- */

static mi_status *scatternd_infer(mi_node *n, mi_tensor *const *in, mi_tensor **out) {
  const mi_tensor *d = in[0], *ix = in[1], *u = in[2];
  if (!d || !ix || !u) return mi_node_error(n, MI_ERR_INVALID_MODEL, "missing input");
  if (ix->dtype != MI_INT64) return mi_node_error(n, MI_ERR_INVALID_MODEL, "indices must be int64");
  if (u->dtype != d->dtype) return mi_node_error(n, MI_ERR_INVALID_MODEL, "updates differ in type from data");
  int q = ix->ndim, r = d->ndim;
  if (q < 1 || r < 1) return mi_node_error(n, MI_ERR_SHAPE, "data and indices must have rank >= 1");
  int64_t k = ix->dims[q - 1];
  if (k > r) return mi_node_error(n, MI_ERR_SHAPE, "index tuples of %lld exceed data's rank %d", (long long)k, r);
  /* updates: indices.shape[:-1] + data.shape[k:] */
  bool ok = u->ndim == q - 1 + r - (int)k;
  for (int i = 0; ok && i < q - 1; i++) ok = u->dims[i] == ix->dims[i];
  for (int i = (int)k; ok && i < r; i++) ok = u->dims[q - 1 + i - k] == d->dims[i];
  if (!ok) return mi_node_error(n, MI_ERR_SHAPE, "updates shape does not match indices and data");
  mi_tensor_set_shape(out[0], d->dtype, r, d->dims);
  return NULL;
}

static mi_status *scatternd_run(mi_node *n, mi_exec *ex, mi_tensor *const *in, mi_tensor **out) {
  (void)ex;
  const mi_tensor *d = in[0], *ix = in[1], *u = in[2];
  reduction red;
  MI_TRY(parse_reduction(n, &red));
  int q = ix->ndim, r = d->ndim;
  int64_t k = ix->dims[q - 1], tuples = mi_numel(q - 1, ix->dims);
  int64_t slice = mi_numel(r - (int)k, d->dims + k);
  size_t es = mi_dtype_size(d->dtype);
  if (out[0]->data != d->data) memcpy(out[0]->data, d->data, mi_tensor_nbytes(d));
  int64_t dstr[MI_MAX_DIMS];
  shp_strides(r, d->dims, dstr);
  const int64_t *idx = ix->data;
  for (int64_t t = 0; t < tuples; t++) {
    int64_t off = 0;
    for (int64_t j = 0; j < k; j++) {
      int64_t v = idx[t * k + j], dim = d->dims[j];
      if (v < -dim || v >= dim)
        return mi_node_error(n, MI_ERR_INVALID_ARGUMENT, "index %lld out of range [-%lld, %lld)", (long long)v,
                             (long long)dim, (long long)dim);
      off += (v < 0 ? v + dim : v) * dstr[j];
    }
    char *dst = (char *)out[0]->data + (size_t)off * es;
    const char *src = (const char *)u->data + (size_t)(t * slice) * es;
    if (red == RED_NONE) {
      memcpy(dst, src, (size_t)slice * es);
    } else {
      for (int64_t e = 0; e < slice; e++) apply(d->dtype, red, dst + (size_t)e * es, src + (size_t)e * es);
    }
  }
  return NULL;
}

const mi_op_def mi_ops_scatter[] = {
    {"ScatterElements", 11, MI_OP_INPLACE, scatter_init, scatter_elements_infer, scatter_elements_run, NULL},
    {"Scatter", 9, MI_OP_INPLACE, scatter_init, scatter_elements_infer, scatter_elements_run, NULL},
    {"ScatterND", 11, MI_OP_INPLACE, scatter_init, scatternd_infer, scatternd_run, NULL},
    {NULL},
};
