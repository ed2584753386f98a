/* Index-driven operators: Gather, GatherElements, OneHot. */
#include <math.h>
#include <string.h>

#include "shape_util.h"

static mi_status *check_index_type(const mi_node *n, const mi_tensor *t) {
  if (t->dtype != MI_INT64 && t->dtype != MI_INT32)
    return mi_node_error(n, MI_ERR_INVALID_MODEL, "indices must be int32 or int64, got %s",
                         mi_dtype_name(t->dtype));
  return NULL;
}

/* Validate every index against dim (negative ones count from the end). */
static mi_status *check_indices(const mi_node *n, const mi_tensor *t, int64_t dim) {
  int64_t cnt = mi_numel(t->ndim, t->dims);
  for (int64_t i = 0; i < cnt; i++) {
    int64_t v = mi_tensor_get_i64(t, i);
    if (v < -dim || v >= dim)
      return mi_node_error(n, MI_ERR_INVALID_ARGUMENT, "index %lld out of range [-%lld, %lld)",
                           (long long)v, (long long)dim, (long long)dim);
  }
  return NULL;
}

/* ---- Gather ------------------------------------------------------------ */

mi_status *gather_infer(mi_node *n, mi_tensor *const *in, mi_tensor **out) {
  int axis, r = in[0]->ndim;
  if (r < 1) return mi_node_error(n, MI_ERR_SHAPE, "data must have rank >= 1");
  MI_TRY(shp_axis(n, mi_attr_int(n, "axis", 0), r, &axis));
  MI_TRY(check_index_type(n, in[1]));
  int q = in[1]->ndim, nd = r - 1 + q;
  if (nd > MI_MAX_DIMS) return mi_node_error(n, MI_ERR_UNSUPPORTED, "output rank %d > %d", nd, MI_MAX_DIMS);
  int64_t dims[MI_MAX_DIMS];
  int k = 0;
  for (int i = 0; i < axis; i++) dims[k++] = in[0]->dims[i];
  for (int i = 0; i < q; i++) dims[k++] = in[1]->dims[i];
  for (int i = axis + 1; i < r; i++) dims[k++] = in[0]->dims[i];
  mi_tensor_set_shape(out[0], in[0]->dtype, nd, dims);
  return NULL;
}

typedef struct {
  const char *src;
  char *dst;
  const mi_tensor *idx;
  int64_t nidx, dim;
  size_t run; /* bytes below the axis */
} gather_ctx;

static void gather_range(void *p, int64_t b, int64_t e) {
  const gather_ctx *c = p;
  /* item = outer * nidx + j: copy one contiguous run per index. */
  for (int64_t it = b; it < e; it++) {
    int64_t o = it / c->nidx, j = it % c->nidx;
    int64_t v = c->idx->dtype == MI_INT64 ? ((const int64_t *)c->idx->data)[j]
                                          : ((const int32_t *)c->idx->data)[j];
    if (v < 0) v += c->dim;
    memcpy(c->dst + (size_t)it * c->run, c->src + ((size_t)o * (size_t)c->dim + (size_t)v) * c->run, c->run);
  }
}

mi_status *gather_run(mi_node *n, mi_exec *ex, mi_tensor *const *in, mi_tensor **out) {
  int axis, r = in[0]->ndim;
  MI_TRY(shp_axis(n, mi_attr_int(n, "axis", 0), r, &axis));
  int64_t dim = in[0]->dims[axis];
  MI_TRY(check_indices(n, in[1], dim));
  gather_ctx c = {in[0]->data, out[0]->data, in[1], mi_numel(in[1]->ndim, in[1]->dims), dim, 0};
  c.run = mi_dtype_size(in[0]->dtype) * (size_t)mi_numel(r - axis - 1, in[0]->dims + axis + 1);
  int64_t items = mi_numel(axis, in[0]->dims) * c.nidx;
  if (items == 0 || c.run == 0) return NULL;
  mi_parallel_for(ex, items, (int64_t)(16384 / c.run) + 1, gather_range, &c);
  return NULL;
}

/* ---- GatherElements ---------------------------------------------------- */

mi_status *gather_elements_infer(mi_node *n, mi_tensor *const *in, mi_tensor **out) {
  int axis, r = in[0]->ndim;
  if (r < 1) return mi_node_error(n, MI_ERR_SHAPE, "data must have rank >= 1");
  MI_TRY(shp_axis(n, mi_attr_int(n, "axis", 0), r, &axis));
  MI_TRY(check_index_type(n, in[1]));
  if (in[1]->ndim != r)
    return mi_node_error(n, MI_ERR_SHAPE, "indices rank %d differs from data rank %d", in[1]->ndim, r);
  for (int i = 0; i < r; i++)
    if (i != axis && in[1]->dims[i] > in[0]->dims[i])
      return mi_node_error(n, MI_ERR_SHAPE, "indices dimension %d (%lld) exceeds data's (%lld)", i,
                           (long long)in[1]->dims[i], (long long)in[0]->dims[i]);
  mi_tensor_set_shape(out[0], in[0]->dtype, r, in[1]->dims);
  return NULL;
}

typedef struct {
  const char *src;
  char *dst;
  const mi_tensor *idx;
  int r, axis;
  const int64_t *odims;
  int64_t sstr[MI_MAX_DIMS];
  size_t es;
} ge_ctx;

static void ge_range(void *p, int64_t b, int64_t e) {
  const ge_ctx *c = p;
  for (int64_t i = b; i < e; i++) {
    int64_t rem = i, off = 0;
    for (int k = c->r - 1; k >= 0; k--) {
      int64_t x = rem % c->odims[k];
      rem /= c->odims[k];
      if (k != c->axis) off += x * c->sstr[k];
    }
    int64_t v = c->idx->dtype == MI_INT64 ? ((const int64_t *)c->idx->data)[i]
                                          : ((const int32_t *)c->idx->data)[i];
    off += v * c->sstr[c->axis];
    memcpy(c->dst + (size_t)i * c->es, c->src + (size_t)off * c->es, c->es);
  }
}

mi_status *gather_elements_run(mi_node *n, mi_exec *ex, mi_tensor *const *in, mi_tensor **out) {
  int axis, r = in[0]->ndim;
  MI_TRY(shp_axis(n, mi_attr_int(n, "axis", 0), r, &axis));
  int64_t dim = in[0]->dims[axis];
  MI_TRY(check_indices(n, in[1], dim));
  /* Normalizing negative indices in place would alter the caller's data, so
   * fold them into a copy only when there are any. */
  int64_t cnt = mi_numel(in[1]->ndim, in[1]->dims);
  int64_t *norm = NULL;
  mi_tensor tmp = *in[1];
  for (int64_t i = 0; i < cnt; i++)
    if (mi_tensor_get_i64(in[1], i) < 0) {
      norm = mi_exec_scratch(ex, (size_t)cnt * sizeof(int64_t));
      if (!norm) return mi_node_error(n, MI_ERR_NO_MEMORY, "out of memory");
      for (int64_t j = 0; j < cnt; j++) {
        int64_t v = mi_tensor_get_i64(in[1], j);
        norm[j] = v < 0 ? v + dim : v;
      }
      tmp.dtype = MI_INT64;
      tmp.data = norm;
      tmp.owns_data = false;
      break;
    }
  ge_ctx c = {in[0]->data, out[0]->data, &tmp, r, axis, out[0]->dims, {0}, mi_dtype_size(in[0]->dtype)};
  shp_strides(r, in[0]->dims, c.sstr);
  mi_parallel_for(ex, cnt, 4096, ge_range, &c);
  if (norm) mi_exec_scratch_release(ex, norm);
  return NULL;
}

/* ---- OneHot ------------------------------------------------------------ */

static mi_status *onehot_depth(mi_node *n, const mi_tensor *d, int64_t *depth) {
  if (!d->data)
    return mi_node_error(n, MI_ERR_UNSUPPORTED, "'depth' decides the output shape but is not known while planning");
  if (mi_numel(d->ndim, d->dims) != 1) return mi_node_error(n, MI_ERR_INVALID_MODEL, "'depth' must have one element");
  double v = mi_tensor_get_f64(d, 0);
  if (!(v >= 1) || v > 1e12) return mi_node_error(n, MI_ERR_INVALID_MODEL, "invalid depth %g", v);
  *depth = (int64_t)v;
  return NULL;
}

mi_status *onehot_infer(mi_node *n, mi_tensor *const *in, mi_tensor **out) {
  int64_t depth = 0;
  MI_TRY(onehot_depth(n, in[1], &depth));
  if (mi_numel(in[2]->ndim, in[2]->dims) != 2)
    return mi_node_error(n, MI_ERR_INVALID_MODEL, "'values' must hold [off_value, on_value]");
  int r = in[0]->ndim + 1, axis;
  if (r > MI_MAX_DIMS) return mi_node_error(n, MI_ERR_UNSUPPORTED, "output rank %d > %d", r, MI_MAX_DIMS);
  MI_TRY(shp_axis(n, mi_attr_int(n, "axis", -1), r, &axis));
  int64_t dims[MI_MAX_DIMS];
  for (int i = 0, k = 0; i < r; i++) dims[i] = i == axis ? depth : in[0]->dims[k++];
  mi_tensor_set_shape(out[0], in[2]->dtype, r, dims);
  return NULL;
}

mi_status *onehot_run(mi_node *n, mi_exec *ex, mi_tensor *const *in, mi_tensor **out) {
  int64_t depth = 0;
  MI_TRY(onehot_depth(n, in[1], &depth));
  int r = out[0]->ndim, axis;
  MI_TRY(shp_axis(n, mi_attr_int(n, "axis", -1), r, &axis));
  size_t es = mi_dtype_size(out[0]->dtype);
  const char *vals = in[2]->data;
  shp_fill(ex, out[0]->data, mi_numel(r, out[0]->dims), vals, es);
  /* indices viewed as [outer, inner]; output as [outer, depth, inner]. */
  int64_t outer = mi_numel(axis, out[0]->dims);
  int64_t inner = mi_numel(r - axis - 1, out[0]->dims + axis + 1);
  char *dst = out[0]->data;
  for (int64_t o = 0; o < outer; o++)
    for (int64_t i = 0; i < inner; i++) {
      double fv = mi_tensor_get_f64(in[0], o * inner + i);
      if (!(fv > -(double)depth - 1 && fv < (double)depth)) continue; /* NaN, far out */
      int64_t v = (int64_t)fv;
      if (v < 0) v += depth;
      if (v < 0 || v >= depth) continue; /* out of range: all off_value */
      memcpy(dst + (size_t)((o * depth + v) * inner + i) * es, vals + es, es);
    }
  return NULL;
}
