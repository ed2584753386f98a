#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "medinfer/hugepages.h"
#include "internal.h"

size_t mi_dtype_size(mi_dtype dt) {
  switch (dt) {
    case MI_FLOAT: case MI_INT32: case MI_UINT32: return 4;
    case MI_UINT8: case MI_INT8: case MI_BOOL: return 1;
    case MI_UINT16: case MI_INT16: return 2;
    case MI_INT64: case MI_DOUBLE: case MI_UINT64: return 8;
    default: return 0;
  }
}

const char *mi_dtype_name(mi_dtype dt) {
  switch (dt) {
    case MI_FLOAT: return "float32";
    case MI_UINT8: return "uint8";
    case MI_INT8: return "int8";
    case MI_UINT16: return "uint16";
    case MI_INT16: return "int16";
    case MI_INT32: return "int32";
    case MI_INT64: return "int64";
    case MI_BOOL: return "bool";
    case MI_DOUBLE: return "float64";
    case MI_UINT32: return "uint32";
    case MI_UINT64: return "uint64";
    default: return "unsupported";
  }
}

int64_t mi_numel(int ndim, const int64_t *dims) {
  int64_t n = 1;
  for (int i = 0; i < ndim; i++) n *= dims[i];
  return n;
}

void mi_tensor_set_shape(mi_tensor *t, mi_dtype dt, int ndim, const int64_t *dims) {
  t->dtype = dt;
  t->ndim = ndim;
  for (int i = 0; i < ndim; i++) t->dims[i] = dims[i];
}

size_t mi_tensor_nbytes(const mi_tensor *t) {
  return (size_t)mi_numel(t->ndim, t->dims) * mi_dtype_size(t->dtype);
}

/* Checked size in bytes: fails on negative dims or overflow. */
static mi_status *checked_bytes(mi_dtype dt, int ndim, const int64_t *dims, size_t max_bytes,
                                size_t *out) {
  if (ndim < 0 || ndim > MI_MAX_DIMS)
    return mi_error(MI_ERR_INVALID_ARGUMENT, "tensor rank %d outside 0..%d", ndim, MI_MAX_DIMS);
  size_t es = mi_dtype_size(dt);
  if (!es) return mi_error(MI_ERR_UNSUPPORTED, "element type %d not supported", (int)dt);
  unsigned __int128 n = es;
  for (int i = 0; i < ndim; i++) {
    if (dims[i] < 0) return mi_error(MI_ERR_SHAPE, "negative dimension %lld", (long long)dims[i]);
    n *= (unsigned __int128)dims[i];
    if (n > (unsigned __int128)SIZE_MAX / 2) n = (unsigned __int128)SIZE_MAX / 2;
  }
  if (max_bytes && n > max_bytes)
    return mi_error(MI_ERR_NO_MEMORY, "tensor of %.3g bytes exceeds the limit of %.3g bytes",
                    (double)n, (double)max_bytes);
  *out = (size_t)n;
  return NULL;
}

mi_status *mi_tensor_checked_nbytes(const mi_tensor *t, size_t max_bytes, size_t *nbytes) {
  return checked_bytes(t->dtype, t->ndim, t->dims, max_bytes, nbytes);
}

/* Zeroed; blocks of 2 MB or more on huge pages, where a fresh block would
 * otherwise be faulted in 4 KB at a time by its first writer (the demo
 * model's 23 MB output: 94 ms of its first run on a 2-core VM). */
mi_status *mi_tensor_alloc(mi_tensor *t, size_t max_bytes) {
  size_t nb = 0;
  MI_TRY(checked_bytes(t->dtype, t->ndim, t->dims, max_bytes, &nb));
  if (t->owns_data) free(t->data);
  t->data = mi_alloc_huge_zeroed(nb);
  t->owns_data = t->data != NULL;
  if (!t->data) return mi_error(MI_ERR_NO_MEMORY, "cannot allocate %zu bytes", nb);
  return NULL;
}

mi_status *mi_tensor_create(mi_dtype dtype, int ndim, const int64_t *dims, mi_tensor **out) {
  *out = NULL;
  size_t nb = 0;
  MI_TRY(checked_bytes(dtype, ndim, dims, 0, &nb));
  mi_tensor *t = calloc(1, sizeof *t);
  if (!t) return mi_error(MI_ERR_NO_MEMORY, "out of memory");
  mi_tensor_set_shape(t, dtype, ndim, dims);
  mi_status *st = mi_tensor_alloc(t, 0);
  if (st) {
    free(t);
    return st;
  }
  *out = t;
  return NULL;
}

mi_status *mi_tensor_wrap(mi_dtype dtype, int ndim, const int64_t *dims, void *data,
                          mi_tensor **out) {
  *out = NULL;
  size_t nb = 0;
  MI_TRY(checked_bytes(dtype, ndim, dims, 0, &nb));
  if (!data && nb) return mi_error(MI_ERR_INVALID_ARGUMENT, "mi_tensor_wrap: data is NULL");
  mi_tensor *t = calloc(1, sizeof *t);
  if (!t) return mi_error(MI_ERR_NO_MEMORY, "out of memory");
  mi_tensor_set_shape(t, dtype, ndim, dims);
  t->data = data;
  *out = t;
  return NULL;
}

void mi_tensor_free(mi_tensor *t) {
  if (!t) return;
  if (t->owns_data) free(t->data);
  free(t);
}

mi_dtype mi_tensor_dtype(const mi_tensor *t) { return t->dtype; }
int mi_tensor_ndim(const mi_tensor *t) { return t->ndim; }
const int64_t *mi_tensor_dims(const mi_tensor *t) { return t->dims; }
int64_t mi_tensor_numel(const mi_tensor *t) { return mi_numel(t->ndim, t->dims); }
void *mi_tensor_data(mi_tensor *t) { return t->data; }
const void *mi_tensor_cdata(const mi_tensor *t) { return t->data; }

int64_t mi_tensor_get_i64(const mi_tensor *t, int64_t i) {
  switch (t->dtype) {
    case MI_INT64: return ((const int64_t *)t->data)[i];
    case MI_INT32: return ((const int32_t *)t->data)[i];
    case MI_UINT32: return ((const uint32_t *)t->data)[i];
    case MI_INT16: return ((const int16_t *)t->data)[i];
    case MI_UINT16: return ((const uint16_t *)t->data)[i];
    case MI_INT8: return ((const int8_t *)t->data)[i];
    case MI_UINT8: case MI_BOOL: return ((const uint8_t *)t->data)[i];
    case MI_UINT64: return (int64_t)((const uint64_t *)t->data)[i];
    case MI_FLOAT: return (int64_t)((const float *)t->data)[i];
    case MI_DOUBLE: return (int64_t)((const double *)t->data)[i];
    default: return 0;
  }
}

double mi_tensor_get_f64(const mi_tensor *t, int64_t i) {
  switch (t->dtype) {
    case MI_FLOAT: return ((const float *)t->data)[i];
    case MI_DOUBLE: return ((const double *)t->data)[i];
    case MI_UINT64: return (double)((const uint64_t *)t->data)[i];
    default: return (double)mi_tensor_get_i64(t, i);
  }
}

void mi_tensor_set_f64(mi_tensor *t, int64_t i, double v) {
  switch (t->dtype) {
    case MI_FLOAT: ((float *)t->data)[i] = (float)v; break;
    case MI_DOUBLE: ((double *)t->data)[i] = v; break;
    case MI_INT64: ((int64_t *)t->data)[i] = mi_f64_to_i64(v); break;
    case MI_INT32: ((int32_t *)t->data)[i] = (int32_t)mi_f64_to_i64(v); break;
    case MI_UINT32: ((uint32_t *)t->data)[i] = (uint32_t)mi_f64_to_u64(v); break;
    case MI_INT16: ((int16_t *)t->data)[i] = (int16_t)mi_f64_to_i64(v); break;
    case MI_UINT16: ((uint16_t *)t->data)[i] = (uint16_t)mi_f64_to_u64(v); break;
    case MI_INT8: ((int8_t *)t->data)[i] = (int8_t)mi_f64_to_i64(v); break;
    case MI_UINT8: ((uint8_t *)t->data)[i] = (uint8_t)mi_f64_to_u64(v); break;
    case MI_BOOL: ((uint8_t *)t->data)[i] = v != 0; break;
    case MI_UINT64: ((uint64_t *)t->data)[i] = mi_f64_to_u64(v); break;
    default: break;
  }
}

const char *mi_shape_str(const mi_tensor *t, char *buf, size_t n) {
  size_t off = 0;
  buf[0] = 0;
  if (t->ndim == 0) {
    snprintf(buf, n, "scalar");
    return buf;
  }
  for (int i = 0; i < t->ndim && off < n; i++)
    off += (size_t)snprintf(buf + off, n - off, i ? "x%lld" : "%lld", (long long)t->dims[i]);
  return buf;
}

mi_status *mi_broadcast_shape(int na, const int64_t *a, int nb, const int64_t *b, int *nout,
                              int64_t *out) {
  int n = na > nb ? na : nb;
  for (int i = 0; i < n; i++) {
    int64_t da = i < n - na ? 1 : a[i - (n - na)];
    int64_t db = i < n - nb ? 1 : b[i - (n - nb)];
    if (da != db && da != 1 && db != 1)
      return mi_error(MI_ERR_SHAPE, "shapes cannot be broadcast (dimension %d: %lld vs %lld)", i,
                      (long long)da, (long long)db);
    out[i] = da == 1 ? db : da;
  }
  *nout = n;
  return NULL;
}
