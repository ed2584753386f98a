/* Shape and data-movement operators: Reshape, Flatten, Squeeze, Unsqueeze,
 * Identity, Dropout, Transpose, Concat, Split, Slice, Expand, Tile,
 * DepthToSpace, SpaceToDepth, Shape, Size, ConstantOfShape.
 *
 * All of them are type-generic: they move elements by their byte size.  Most
 * reduce to one strided-copy kernel (shape_util.c): Transpose permutes the
 * source strides, Slice offsets and scales them, Expand/Tile use stride 0 for
 * the broadcast/repeated dimensions, DepthToSpace is a reshape + transpose.
 * Gather*, OneHot, Cast, Range, EyeLike, Trilu and CumSum live in
 * gather.c / cast.c / generate.c and are listed in this file's table. */
#include <stdlib.h>
#include <string.h>

#include "shape_util.h"

/* ---- Reshape / Flatten / Squeeze / Unsqueeze / Identity / Dropout ------ */

/* Same bytes, new shape: nothing to do when the executor ran us in place. */
static mi_status *copy_run(mi_node *n, mi_exec *ex, mi_tensor *const *in, mi_tensor **out) {
  (void)n;
  (void)ex;
  if (out[0]->data != in[0]->data) memcpy(out[0]->data, in[0]->data, mi_tensor_nbytes(in[0]));
  return NULL;
}

static mi_status *reshape_infer(mi_node *n, mi_tensor *const *in, mi_tensor **out) {
  int64_t shape[MI_MAX_DIMS];
  int64_t ns = 0;
  if (n->opset < 5) {
    const int64_t *v;
    size_t c = mi_attr_ints(n, "shape", &v);
    if (c > MI_MAX_DIMS) return mi_node_error(n, MI_ERR_UNSUPPORTED, "rank %zu > %d", c, MI_MAX_DIMS);
    for (size_t i = 0; i < c; i++) shape[i] = v[i];
    ns = (int64_t)c;
  } else {
    if (n->n_in < 2 || !in[1]) return mi_node_error(n, MI_ERR_INVALID_MODEL, "missing 'shape' input");
    MI_TRY(shp_read_ints(n, in[1], "shape", shape, MI_MAX_DIMS, &ns));
  }
  bool allowzero = mi_attr_int(n, "allowzero", 0) != 0;
  int64_t dims[MI_MAX_DIMS];
  int neg = -1;
  int64_t prod = 1;
  for (int i = 0; i < ns; i++) {
    int64_t v = shape[i];
    if (v == 0 && !allowzero) {
      if (i >= in[0]->ndim)
        return mi_node_error(n, MI_ERR_SHAPE, "shape[%d] = 0 copies a dimension the %d-D input lacks",
                             i, in[0]->ndim);
      v = in[0]->dims[i];
    }
    if (v == -1) {
      if (neg >= 0) return mi_node_error(n, MI_ERR_SHAPE, "more than one -1 in the target shape");
      neg = i;
      dims[i] = 1;
      continue;
    }
    if (v < 0) return mi_node_error(n, MI_ERR_SHAPE, "invalid target dimension %lld", (long long)v);
    dims[i] = v;
    if (__builtin_mul_overflow(prod, v, &prod))
      return mi_node_error(n, MI_ERR_SHAPE, "target shape's size overflows at dimension %d (%lld)", i, (long long)v);
  }
  int64_t total = mi_numel(in[0]->ndim, in[0]->dims);
  if (neg >= 0) {
    if (prod == 0 || total % prod != 0)
      return mi_node_error(n, MI_ERR_SHAPE, "cannot infer the -1 dimension: %lld elements into blocks of %lld",
                           (long long)total, (long long)prod);
    dims[neg] = total / prod;
  } else if (prod != total) {
    char b[96];
    return mi_node_error(n, MI_ERR_SHAPE, "cannot reshape %s (%lld elements) into %lld elements",
                         mi_shape_str(in[0], b, sizeof b), (long long)total, (long long)prod);
  }
  mi_tensor_set_shape(out[0], in[0]->dtype, (int)ns, dims);
  return NULL;
}

static mi_status *flatten_infer(mi_node *n, mi_tensor *const *in, mi_tensor **out) {
  int r = in[0]->ndim;
  int64_t axis = mi_attr_int(n, "axis", 1);
  if (axis < 0) axis += r;
  if (axis < 0 || axis > r)
    return mi_node_error(n, MI_ERR_INVALID_MODEL, "axis %lld outside [-%d, %d]",
                         (long long)mi_attr_int(n, "axis", 1), r, r);
  int64_t dims[2] = {mi_numel((int)axis, in[0]->dims),
                     mi_numel(r - (int)axis, in[0]->dims + axis)};
  mi_tensor_set_shape(out[0], in[0]->dtype, 2, dims);
  return NULL;
}

/* Axes of Squeeze/Unsqueeze: attribute before opset 13, optional input after. */
static mi_status *get_axes(mi_node *n, mi_tensor *const *in, int64_t *axes, int64_t *na, bool *given) {
  *na = 0;
  *given = false;
  if (n->opset < 13) {
    const int64_t *v;
    const mi_attr *a = mi_node_attr(n, "axes");
    size_t c = mi_attr_ints(n, "axes", &v);
    if (c > MI_MAX_DIMS) return mi_node_error(n, MI_ERR_SHAPE, "too many axes (%zu)", c);
    for (size_t i = 0; i < c; i++) axes[i] = v[i];
    *na = (int64_t)c;
    *given = a != NULL;
    return NULL;
  }
  if (n->n_in < 2 || !in[1]) return NULL;
  *given = true;
  return shp_read_ints(n, in[1], "axes", axes, MI_MAX_DIMS, na);
}

static mi_status *squeeze_infer(mi_node *n, mi_tensor *const *in, mi_tensor **out) {
  int64_t axes[MI_MAX_DIMS], na;
  bool given;
  MI_TRY(get_axes(n, in, axes, &na, &given));
  int r = in[0]->ndim;
  bool drop[MI_MAX_DIMS] = {0};
  if (!given) {
    for (int i = 0; i < r; i++) drop[i] = in[0]->dims[i] == 1;
  } else {
    for (int64_t i = 0; i < na; i++) {
      int64_t a = axes[i] < 0 ? axes[i] + r : axes[i];
      if (a < 0 || a >= r)
        return mi_node_error(n, MI_ERR_INVALID_MODEL, "axis %lld outside a %d-D input", (long long)axes[i], r);
      if (in[0]->dims[a] != 1)
        return mi_node_error(n, MI_ERR_SHAPE, "cannot squeeze axis %lld of size %lld", (long long)axes[i],
                             (long long)in[0]->dims[a]);
      drop[a] = true;
    }
  }
  int64_t dims[MI_MAX_DIMS];
  int k = 0;
  for (int i = 0; i < r; i++)
    if (!drop[i]) dims[k++] = in[0]->dims[i];
  mi_tensor_set_shape(out[0], in[0]->dtype, k, dims);
  return NULL;
}

static mi_status *unsqueeze_infer(mi_node *n, mi_tensor *const *in, mi_tensor **out) {
  int64_t axes[MI_MAX_DIMS], na;
  bool given;
  MI_TRY(get_axes(n, in, axes, &na, &given));
  if (!given) return mi_node_error(n, MI_ERR_INVALID_MODEL, "missing 'axes'");
  int r = in[0]->ndim + (int)na;
  if (r > MI_MAX_DIMS) return mi_node_error(n, MI_ERR_UNSUPPORTED, "output rank %d > %d", r, MI_MAX_DIMS);
  bool ins[MI_MAX_DIMS] = {0};
  for (int64_t i = 0; i < na; i++) {
    int64_t a = axes[i] < 0 ? axes[i] + r : axes[i];
    if (a < 0 || a >= r)
      return mi_node_error(n, MI_ERR_INVALID_MODEL, "axis %lld outside a %d-D output", (long long)axes[i], r);
    if (ins[a]) return mi_node_error(n, MI_ERR_INVALID_MODEL, "axis %lld repeated", (long long)axes[i]);
    ins[a] = true;
  }
  int64_t dims[MI_MAX_DIMS];
  for (int i = 0, k = 0; i < r; i++) dims[i] = ins[i] ? 1 : in[0]->dims[k++];
  mi_tensor_set_shape(out[0], in[0]->dtype, r, dims);
  return NULL;
}

static mi_status *identity_infer(mi_node *n, mi_tensor *const *in, mi_tensor **out) {
  (void)n;
  mi_tensor_set_shape(out[0], in[0]->dtype, in[0]->ndim, in[0]->dims);
  return NULL;
}

/* Inference only: the output is the input.  The optional mask is all true
 * (bool from opset 10, the input's type before). */
static mi_status *dropout_infer(mi_node *n, mi_tensor *const *in, mi_tensor **out) {
  if (n->opset < 7 && mi_attr_int(n, "is_test", 0) == 0 && n->n_out > 1 && out[1])
    return mi_node_error(n, MI_ERR_UNSUPPORTED, "training mode (is_test=0) is not supported");
  mi_tensor_set_shape(out[0], in[0]->dtype, in[0]->ndim, in[0]->dims);
  if (n->n_out > 1 && out[1])
    mi_tensor_set_shape(out[1], n->opset >= 10 ? MI_BOOL : in[0]->dtype, in[0]->ndim, in[0]->dims);
  return NULL;
}

static mi_status *dropout_run(mi_node *n, mi_exec *ex, mi_tensor *const *in, mi_tensor **out) {
  if (n->opset >= 12 && n->n_in > 2 && in[2] && in[2]->data && mi_tensor_get_i64(in[2], 0) != 0) {
    double ratio = n->n_in > 1 && in[1] && in[1]->data ? mi_tensor_get_f64(in[1], 0) : 0.5;
    if (ratio != 0.0)
      return mi_node_error(n, MI_ERR_UNSUPPORTED, "training_mode with ratio %g is not supported", ratio);
  }
  MI_TRY(copy_run(n, ex, in, out));
  if (n->n_out > 1 && out[1]) {
    int64_t cnt = mi_numel(out[1]->ndim, out[1]->dims);
    for (int64_t i = 0; i < cnt; i++) mi_tensor_set_f64(out[1], i, 1.0);
  }
  return NULL;
}

/* ---- Transpose --------------------------------------------------------- */

static mi_status *get_perm(mi_node *n, int r, int *perm) {
  const int64_t *p;
  size_t c = mi_attr_ints(n, "perm", &p);
  if (c == 0) {
    for (int i = 0; i < r; i++) perm[i] = r - 1 - i;
    return NULL;
  }
  if ((int)c != r) return mi_node_error(n, MI_ERR_INVALID_MODEL, "perm has %zu entries for a %d-D input", c, r);
  bool seen[MI_MAX_DIMS] = {0};
  for (int i = 0; i < r; i++) {
    int64_t a = p[i] < 0 ? p[i] + r : p[i];
    if (a < 0 || a >= r || seen[a])
      return mi_node_error(n, MI_ERR_INVALID_MODEL, "perm is not a permutation of 0..%d", r - 1);
    seen[a] = true;
    perm[i] = (int)a;
  }
  return NULL;
}

static mi_status *transpose_infer(mi_node *n, mi_tensor *const *in, mi_tensor **out) {
  int perm[MI_MAX_DIMS], r = in[0]->ndim;
  MI_TRY(get_perm(n, r, perm));
  int64_t dims[MI_MAX_DIMS];
  for (int i = 0; i < r; i++) dims[i] = in[0]->dims[perm[i]];
  mi_tensor_set_shape(out[0], in[0]->dtype, r, dims);
  return NULL;
}

static mi_status *transpose_run(mi_node *n, mi_exec *ex, mi_tensor *const *in, mi_tensor **out) {
  int perm[MI_MAX_DIMS], r = in[0]->ndim;
  MI_TRY(get_perm(n, r, perm));
  int64_t st[MI_MAX_DIMS], dims[MI_MAX_DIMS], sstr[MI_MAX_DIMS];
  shp_strides(r, in[0]->dims, st);
  for (int i = 0; i < r; i++) {
    dims[i] = in[0]->dims[perm[i]];
    sstr[i] = st[perm[i]];
  }
  shp_strided_copy(ex, mi_dtype_size(in[0]->dtype), r, dims, sstr, in[0]->data, out[0]->data);
  return NULL;
}

/* ---- Concat ------------------------------------------------------------ */

static mi_status *concat_axis(mi_node *n, int r, int *axis) {
  const mi_attr *a = mi_node_attr(n, "axis");
  if (!a && n->opset >= 4) return mi_node_error(n, MI_ERR_INVALID_MODEL, "missing 'axis'");
  int64_t ax = a ? a->i : 1;
  if (ax < 0) ax += r;
  if (ax < 0 || ax >= r)
    return mi_node_error(n, MI_ERR_INVALID_MODEL, "axis %lld outside a %d-D input", (long long)(a ? a->i : 1), r);
  *axis = (int)ax;
  return NULL;
}

static mi_status *concat_infer(mi_node *n, mi_tensor *const *in, mi_tensor **out) {
  if (n->n_in < 1 || !in[0]) return mi_node_error(n, MI_ERR_INVALID_MODEL, "no inputs");
  int r = in[0]->ndim, axis = 0;
  MI_TRY(concat_axis(n, r, &axis));
  int64_t dims[MI_MAX_DIMS];
  memcpy(dims, in[0]->dims, sizeof(int64_t) * (size_t)r);
  dims[axis] = 0;
  for (int i = 0; i < n->n_in; i++) {
    const mi_tensor *t = in[i];
    if (!t) return mi_node_error(n, MI_ERR_INVALID_MODEL, "input %d omitted", i);
    if (t->dtype != in[0]->dtype || t->ndim != r)
      return mi_node_error(n, MI_ERR_SHAPE, "input %d has another type or rank than input 0", i);
    for (int d = 0; d < r; d++)
      if (d != axis && t->dims[d] != in[0]->dims[d]) {
        char b0[96], b1[96];
        return mi_node_error(n, MI_ERR_SHAPE, "input %d shape %s does not match %s off axis %d", i,
                             mi_shape_str(t, b1, sizeof b1), mi_shape_str(in[0], b0, sizeof b0), axis);
      }
    dims[axis] += t->dims[axis];
  }
  mi_tensor_set_shape(out[0], in[0]->dtype, r, dims);
  return NULL;
}

typedef struct {
  mi_tensor *const *in;
  int n_in;
  char *dst;
  size_t out_row; /* bytes of one outer row of the output */
  size_t inner;   /* bytes per unit of the axis */
  size_t total;   /* bytes of the output */
  int axis;
} concat_ctx;

/* The output in CONCAT_CHUNK-byte pieces, so that a channel concatenation
 * of one image (a single outer row) still splits across threads. */
#define CONCAT_CHUNK ((size_t)64 << 10)

static void concat_range(void *p, int64_t b, int64_t e) {
  const concat_ctx *c = p;
  size_t pos = (size_t)b * CONCAT_CHUNK, end = (size_t)e * CONCAT_CHUNK;
  if (end > c->total) end = c->total;
  while (pos < end) {
    const size_t o = pos / c->out_row, r = pos % c->out_row;
    size_t off = 0, len = 0;
    int i = 0;
    for (; i < c->n_in; i++, off += len) {
      len = (size_t)c->in[i]->dims[c->axis] * c->inner;
      if (r < off + len) break;
    }
    const size_t within = r - off, n = len - within < end - pos ? len - within : end - pos;
    const char *src = (const char *)c->in[i]->data + o * len + within;
    if (src != c->dst + pos) memcpy(c->dst + pos, src, n); /* in place already: see plan.c */
    pos += n;
  }
}

static mi_status *concat_run(mi_node *n, mi_exec *ex, mi_tensor *const *in, mi_tensor **out) {
  int axis = 0;
  MI_TRY(concat_axis(n, out[0]->ndim, &axis));
  concat_ctx c = {in, n->n_in, out[0]->data, 0, 0, 0, axis};
  c.inner = mi_dtype_size(out[0]->dtype) * (size_t)mi_numel(out[0]->ndim - axis - 1, out[0]->dims + axis + 1);
  c.out_row = c.inner * (size_t)out[0]->dims[axis];
  c.total = c.out_row * (size_t)mi_numel(axis, out[0]->dims);
  if (c.total == 0) return NULL;
  mi_parallel_for(ex, (int64_t)((c.total + CONCAT_CHUNK - 1) / CONCAT_CHUNK), 1, concat_range, &c);
  return NULL;
}

/* ---- Split ------------------------------------------------------------- */

static mi_status *split_sizes(mi_node *n, mi_tensor *const *in, int axis, int64_t *sizes) {
  int64_t dim = in[0]->dims[axis];
  int no = n->n_out;
  int64_t cnt = 0;
  bool have = false;
  if (n->opset < 13) {
    const int64_t *v;
    size_t c = mi_attr_ints(n, "split", &v);
    if (c) {
      if ((int)c != no) return mi_node_error(n, MI_ERR_INVALID_MODEL, "'split' has %zu entries for %d outputs", c, no);
      for (int i = 0; i < no; i++) sizes[i] = v[i];
      have = true;
    } else if (n->opset < 2 && n->n_in > 1 && in[1]) {
      MI_TRY(shp_read_ints(n, in[1], "split", sizes, no, &cnt));
      have = true;
    }
  } else if (n->n_in > 1 && in[1]) {
    if (mi_numel(in[1]->ndim, in[1]->dims) != no)
      return mi_node_error(n, MI_ERR_INVALID_MODEL, "'split' has %lld entries for %d outputs",
                           (long long)mi_numel(in[1]->ndim, in[1]->dims), no);
    MI_TRY(shp_read_ints(n, in[1], "split", sizes, no, &cnt));
    have = true;
  }
  if (have) {
    int64_t s = 0;
    for (int i = 0; i < no; i++) {
      if (sizes[i] < 0) return mi_node_error(n, MI_ERR_INVALID_MODEL, "negative split size");
      if (__builtin_add_overflow(s, sizes[i], &s))
        return mi_node_error(n, MI_ERR_SHAPE, "split sizes sum past 2^63");
    }
    if (s != dim)
      return mi_node_error(n, MI_ERR_SHAPE, "split sizes sum to %lld, axis has %lld", (long long)s, (long long)dim);
    return NULL;
  }
  if (n->opset >= 18 && mi_node_attr(n, "num_outputs")) {
    int64_t k = mi_attr_int(n, "num_outputs", 0);
    if (k != no) return mi_node_error(n, MI_ERR_INVALID_MODEL, "num_outputs %lld but %d outputs", (long long)k, no);
    /* ceil(dim / k) each, the last one smaller */
    int64_t each = (dim + no - 1) / no, left = dim;
    for (int i = 0; i < no; i++) {
      sizes[i] = left < each ? left : each;
      left -= sizes[i];
    }
    return NULL;
  }
  if (dim % no != 0)
    return mi_node_error(n, MI_ERR_SHAPE, "axis of size %lld does not split into %d equal parts", (long long)dim, no);
  for (int i = 0; i < no; i++) sizes[i] = dim / no;
  return NULL;
}

static mi_status *split_axis(mi_node *n, int r, int *axis) {
  int64_t a = mi_attr_int(n, "axis", 0);
  if (a < 0) a += r;
  if (a < 0 || a >= r)
    return mi_node_error(n, MI_ERR_INVALID_MODEL, "axis %lld outside a %d-D input", (long long)mi_attr_int(n, "axis", 0), r);
  *axis = (int)a;
  return NULL;
}

static mi_status *split_infer(mi_node *n, mi_tensor *const *in, mi_tensor **out) {
  int axis = 0;
  MI_TRY(split_axis(n, in[0]->ndim, &axis));
  int64_t *sizes = malloc(sizeof(int64_t) * (size_t)n->n_out);
  if (!sizes) return mi_node_error(n, MI_ERR_NO_MEMORY, "out of memory");
  mi_status *st = split_sizes(n, in, axis, sizes);
  for (int i = 0; !st && i < n->n_out; i++) {
    if (!out[i]) continue;
    int64_t dims[MI_MAX_DIMS];
    memcpy(dims, in[0]->dims, sizeof(int64_t) * (size_t)in[0]->ndim);
    dims[axis] = sizes[i];
    mi_tensor_set_shape(out[i], in[0]->dtype, in[0]->ndim, dims);
  }
  free(sizes);
  return st;
}

static mi_status *split_run(mi_node *n, mi_exec *ex, mi_tensor *const *in, mi_tensor **out) {
  int axis = 0;
  MI_TRY(split_axis(n, in[0]->ndim, &axis));
  int64_t *sizes = malloc(sizeof(int64_t) * (size_t)n->n_out);
  if (!sizes) return mi_node_error(n, MI_ERR_NO_MEMORY, "out of memory");
  mi_status *s = split_sizes(n, in, axis, sizes);
  if (s) {
    free(sizes);
    return s;
  }
  size_t es = mi_dtype_size(in[0]->dtype);
  int64_t st[MI_MAX_DIMS], off = 0;
  shp_strides(in[0]->ndim, in[0]->dims, st);
  for (int i = 0; i < n->n_out; i++) {
    /* Each output is a slice of the input along axis: a strided copy. */
    if (out[i] && out[i]->data && mi_numel(out[i]->ndim, out[i]->dims) > 0)
      shp_strided_copy(ex, es, in[0]->ndim, out[i]->dims, st,
                       (const char *)in[0]->data + (size_t)(off * st[axis]) * es, out[i]->data);
    off += sizes[i];
  }
  free(sizes);
  return NULL;
}

/* ---- Slice ------------------------------------------------------------- */

typedef struct {
  int64_t start[MI_MAX_DIMS], step[MI_MAX_DIMS], count[MI_MAX_DIMS];
} slice_plan;

static mi_status *slice_plan_make(mi_node *n, mi_tensor *const *in, slice_plan *p) {
  int r = in[0]->ndim;
  int64_t starts[MI_MAX_DIMS], ends[MI_MAX_DIMS], axes[MI_MAX_DIMS], steps[MI_MAX_DIMS];
  int64_t ns = 0, ne = 0, na = -1, nst = -1;
  if (n->opset < 10) {
    const int64_t *v;
    size_t c = mi_attr_ints(n, "starts", &v);
    if (c > MI_MAX_DIMS) return mi_node_error(n, MI_ERR_INVALID_MODEL, "too many starts");
    for (size_t i = 0; i < c; i++) starts[i] = v[i];
    ns = (int64_t)c;
    c = mi_attr_ints(n, "ends", &v);
    if (c > MI_MAX_DIMS) return mi_node_error(n, MI_ERR_INVALID_MODEL, "too many ends");
    for (size_t i = 0; i < c; i++) ends[i] = v[i];
    ne = (int64_t)c;
    if (mi_node_attr(n, "axes")) {
      c = mi_attr_ints(n, "axes", &v);
      if (c > MI_MAX_DIMS) return mi_node_error(n, MI_ERR_INVALID_MODEL, "too many axes");
      for (size_t i = 0; i < c; i++) axes[i] = v[i];
      na = (int64_t)c;
    }
  } else {
    if (n->n_in < 3 || !in[1] || !in[2]) return mi_node_error(n, MI_ERR_INVALID_MODEL, "missing starts/ends");
    MI_TRY(shp_read_ints(n, in[1], "starts", starts, MI_MAX_DIMS, &ns));
    MI_TRY(shp_read_ints(n, in[2], "ends", ends, MI_MAX_DIMS, &ne));
    if (n->n_in > 3 && in[3]) MI_TRY(shp_read_ints(n, in[3], "axes", axes, MI_MAX_DIMS, &na));
    if (n->n_in > 4 && in[4]) MI_TRY(shp_read_ints(n, in[4], "steps", steps, MI_MAX_DIMS, &nst));
  }
  if (ns != ne) return mi_node_error(n, MI_ERR_INVALID_MODEL, "%lld starts but %lld ends", (long long)ns, (long long)ne);
  if (na >= 0 && na != ns) return mi_node_error(n, MI_ERR_INVALID_MODEL, "%lld axes for %lld starts", (long long)na, (long long)ns);
  if (nst >= 0 && nst != ns) return mi_node_error(n, MI_ERR_INVALID_MODEL, "%lld steps for %lld starts", (long long)nst, (long long)ns);
  if (na < 0 && ns > r) return mi_node_error(n, MI_ERR_INVALID_MODEL, "%lld starts for a %d-D input", (long long)ns, r);
  for (int d = 0; d < r; d++) {
    p->start[d] = 0;
    p->step[d] = 1;
    p->count[d] = in[0]->dims[d];
  }
  bool seen[MI_MAX_DIMS] = {0};
  for (int64_t i = 0; i < ns; i++) {
    int64_t a = na >= 0 ? axes[i] : i;
    if (a < 0) a += r;
    if (a < 0 || a >= r) return mi_node_error(n, MI_ERR_INVALID_MODEL, "axis %lld outside a %d-D input", (long long)(na >= 0 ? axes[i] : i), r);
    if (seen[a]) return mi_node_error(n, MI_ERR_INVALID_MODEL, "axis %lld repeated", (long long)a);
    seen[a] = true;
    int64_t step = nst >= 0 ? steps[i] : 1;
    if (step == 0) return mi_node_error(n, MI_ERR_INVALID_MODEL, "step 0 on axis %lld", (long long)a);
    int64_t d = in[0]->dims[a], s = starts[i], e = ends[i];
    /* A step past the dimension takes one element, as the dimension's own
     * length does; clamped, the arithmetic below cannot overflow. */
    if (step > d) step = d > 0 ? d : 1;
    if (step < -d) step = d > 0 ? -d : -1;
    /* Clamp like numpy; the bounds stay inside int64 because |d| is small. */
    if (s < 0) s = s < -d ? -d - 1 : s, s += d;
    if (e < 0) e = e < -d ? -d - 1 : e, e += d;
    int64_t cnt;
    if (step > 0) {
      s = s < 0 ? 0 : (s > d ? d : s);
      e = e < 0 ? 0 : (e > d ? d : e);
      cnt = e > s ? (e - s + step - 1) / step : 0;
    } else {
      s = s < 0 ? -1 : (s > d - 1 ? d - 1 : s);
      e = e < -1 ? -1 : (e > d - 1 ? d - 1 : e);
      cnt = s > e ? (s - e + (-step) - 1) / (-step) : 0;
    }
    p->start[a] = cnt ? s : 0;
    p->step[a] = step;
    p->count[a] = cnt;
  }
  return NULL;
}

static mi_status *slice_infer(mi_node *n, mi_tensor *const *in, mi_tensor **out) {
  slice_plan p;
  MI_TRY(slice_plan_make(n, in, &p));
  mi_tensor_set_shape(out[0], in[0]->dtype, in[0]->ndim, p.count);
  return NULL;
}

static mi_status *slice_run(mi_node *n, mi_exec *ex, mi_tensor *const *in, mi_tensor **out) {
  slice_plan p;
  MI_TRY(slice_plan_make(n, in, &p));
  int r = in[0]->ndim;
  int64_t st[MI_MAX_DIMS], sstr[MI_MAX_DIMS], off = 0;
  shp_strides(r, in[0]->dims, st);
  for (int d = 0; d < r; d++) {
    off += p.start[d] * st[d];
    sstr[d] = p.step[d] * st[d];
  }
  size_t es = mi_dtype_size(in[0]->dtype);
  if (mi_numel(r, p.count) == 0) return NULL;
  shp_strided_copy(ex, es, r, p.count, sstr, (const char *)in[0]->data + off * (int64_t)es, out[0]->data);
  return NULL;
}

/* ---- Expand / Tile ----------------------------------------------------- */

static mi_status *expand_infer(mi_node *n, mi_tensor *const *in, mi_tensor **out) {
  if (n->n_in < 2 || !in[1]) return mi_node_error(n, MI_ERR_INVALID_MODEL, "missing 'shape' input");
  int64_t shape[MI_MAX_DIMS], ns, dims[MI_MAX_DIMS];
  MI_TRY(shp_read_ints(n, in[1], "shape", shape, MI_MAX_DIMS, &ns));
  int nd;
  mi_status *st = mi_broadcast_shape(in[0]->ndim, in[0]->dims, (int)ns, shape, &nd, dims);
  if (st) return mi_error_prefix(st, "node '%s' (Expand)", n->name ? n->name : "");
  mi_tensor_set_shape(out[0], in[0]->dtype, nd, dims);
  return NULL;
}

static mi_status *expand_run(mi_node *n, mi_exec *ex, mi_tensor *const *in, mi_tensor **out) {
  (void)n;
  int r = out[0]->ndim, off = r - in[0]->ndim;
  int64_t st[MI_MAX_DIMS], sstr[MI_MAX_DIMS];
  shp_strides(in[0]->ndim, in[0]->dims, st);
  for (int d = 0; d < r; d++)
    sstr[d] = d < off || in[0]->dims[d - off] == 1 ? 0 : st[d - off];
  if (mi_numel(r, out[0]->dims) == 0) return NULL;
  shp_strided_copy(ex, mi_dtype_size(in[0]->dtype), r, out[0]->dims, sstr, in[0]->data, out[0]->data);
  return NULL;
}

static mi_status *tile_infer(mi_node *n, mi_tensor *const *in, mi_tensor **out) {
  if (n->n_in < 2 || !in[1]) return mi_node_error(n, MI_ERR_INVALID_MODEL, "missing 'repeats' input");
  int64_t rep[MI_MAX_DIMS], nr, dims[MI_MAX_DIMS];
  MI_TRY(shp_read_ints(n, in[1], "repeats", rep, MI_MAX_DIMS, &nr));
  if (nr != in[0]->ndim)
    return mi_node_error(n, MI_ERR_SHAPE, "%lld repeats for a %d-D input", (long long)nr, in[0]->ndim);
  for (int d = 0; d < in[0]->ndim; d++) {
    if (rep[d] < 0) return mi_node_error(n, MI_ERR_INVALID_MODEL, "negative repeat %lld", (long long)rep[d]);
    if (__builtin_mul_overflow(in[0]->dims[d], rep[d], &dims[d]))
      return mi_node_error(n, MI_ERR_SHAPE, "repeat %lld takes axis %d past 2^63", (long long)rep[d], d);
  }
  mi_tensor_set_shape(out[0], in[0]->dtype, in[0]->ndim, dims);
  return NULL;
}

static mi_status *tile_run(mi_node *n, mi_exec *ex, mi_tensor *const *in, mi_tensor **out) {
  (void)n;
  /* Output viewed as [r0, d0, r1, d1, ...] with stride 0 on the repeats. */
  int r = in[0]->ndim;
  int64_t st[MI_MAX_DIMS], dims[2 * MI_MAX_DIMS], sstr[2 * MI_MAX_DIMS];
  shp_strides(r, in[0]->dims, st);
  for (int d = 0; d < r; d++) {
    int64_t reps = in[0]->dims[d] ? out[0]->dims[d] / in[0]->dims[d] : 0;
    dims[2 * d] = reps;
    sstr[2 * d] = 0;
    dims[2 * d + 1] = in[0]->dims[d];
    sstr[2 * d + 1] = st[d];
  }
  if (mi_numel(r, out[0]->dims) == 0) return NULL;
  shp_strided_copy(ex, mi_dtype_size(in[0]->dtype), 2 * r, dims, sstr, in[0]->data, out[0]->data);
  return NULL;
}

/* ---- DepthToSpace / SpaceToDepth -------------------------------------- */

static mi_status *block_size(mi_node *n, const mi_tensor *x, int64_t *b) {
  *b = mi_attr_int(n, "blocksize", 0);
  if (*b < 1) return mi_node_error(n, MI_ERR_INVALID_MODEL, "blocksize must be >= 1");
  /* beyond, blocksize^2 overflows (no map has so many rows, nor channels) */
  if (*b > INT32_MAX) return mi_node_error(n, MI_ERR_INVALID_MODEL, "blocksize %lld is too large", (long long)*b);
  if (x->ndim != 4) return mi_node_error(n, MI_ERR_SHAPE, "input must be 4-D (N,C,H,W), got %d-D", x->ndim);
  return NULL;
}

static bool d2s_crd(mi_node *n) { return strcmp(mi_attr_string(n, "mode", "DCR"), "CRD") == 0; }

static mi_status *d2s_infer(mi_node *n, mi_tensor *const *in, mi_tensor **out) {
  int64_t b;
  MI_TRY(block_size(n, in[0], &b));
  const char *mode = mi_attr_string(n, "mode", "DCR");
  if (strcmp(mode, "DCR") != 0 && strcmp(mode, "CRD") != 0)
    return mi_node_error(n, MI_ERR_UNSUPPORTED, "mode '%s'", mode);
  const int64_t *d = in[0]->dims;
  if (d[1] % (b * b)) return mi_node_error(n, MI_ERR_SHAPE, "channels %lld not divisible by blocksize^2", (long long)d[1]);
  int64_t dims[4] = {d[0], d[1] / (b * b), d[2] * b, d[3] * b};
  mi_tensor_set_shape(out[0], in[0]->dtype, 4, dims);
  return NULL;
}

static mi_status *d2s_run(mi_node *n, mi_exec *ex, mi_tensor *const *in, mi_tensor **out) {
  int64_t b;
  MI_TRY(block_size(n, in[0], &b));
  const int64_t *d = in[0]->dims;
  int64_t C = d[1] / (b * b), H = d[2], W = d[3], HW = H * W;
  /* Output order (N, C', H, b1, W, b2) read from the input's view. */
  int64_t dims[6] = {d[0], C, H, b, W, b};
  int64_t s_b1, s_b2, s_c;
  if (d2s_crd(n)) { /* input = [N, C', b1, b2, H, W] */
    s_c = b * b * HW, s_b1 = b * HW, s_b2 = HW;
  } else { /* DCR: input = [N, b1, b2, C', H, W] */
    s_b1 = b * C * HW, s_b2 = C * HW, s_c = HW;
  }
  int64_t sstr[6] = {d[1] * HW, s_c, W, s_b1, 1, s_b2};
  if (mi_numel(4, d) == 0) return NULL;
  shp_strided_copy(ex, mi_dtype_size(in[0]->dtype), 6, dims, sstr, in[0]->data, out[0]->data);
  return NULL;
}

static mi_status *s2d_infer(mi_node *n, mi_tensor *const *in, mi_tensor **out) {
  int64_t b;
  MI_TRY(block_size(n, in[0], &b));
  const int64_t *d = in[0]->dims;
  if (d[2] % b || d[3] % b) return mi_node_error(n, MI_ERR_SHAPE, "H and W must be divisible by blocksize %lld", (long long)b);
  int64_t dims[4] = {d[0], d[1] * b * b, d[2] / b, d[3] / b};
  mi_tensor_set_shape(out[0], in[0]->dtype, 4, dims);
  return NULL;
}

static mi_status *s2d_run(mi_node *n, mi_exec *ex, mi_tensor *const *in, mi_tensor **out) {
  int64_t b;
  MI_TRY(block_size(n, in[0], &b));
  const int64_t *d = in[0]->dims;
  int64_t H = d[2], W = d[3];
  /* input = [N, C, H', b1, W', b2]; output order (N, b1, b2, C, H', W'). */
  int64_t dims[6] = {d[0], b, b, d[1], H / b, W / b};
  int64_t sstr[6] = {d[1] * H * W, W, 1, H * W, b * W, b};
  if (mi_numel(4, d) == 0) return NULL;
  shp_strided_copy(ex, mi_dtype_size(in[0]->dtype), 6, dims, sstr, in[0]->data, out[0]->data);
  return NULL;
}

/* ---- Shape / Size / ConstantOfShape ----------------------------------- */

static void shape_range(mi_node *n, int r, int64_t *s, int64_t *e) {
  *s = n->opset >= 15 ? mi_attr_int(n, "start", 0) : 0;
  *e = n->opset >= 15 ? mi_attr_int(n, "end", r) : r;
  if (*s < 0) *s += r;
  if (*e < 0) *e += r;
  *s = *s < 0 ? 0 : (*s > r ? r : *s);
  *e = *e < 0 ? 0 : (*e > r ? r : *e);
  if (*e < *s) *e = *s;
}

static mi_status *shape_infer(mi_node *n, mi_tensor *const *in, mi_tensor **out) {
  int64_t s, e;
  shape_range(n, in[0]->ndim, &s, &e);
  int64_t len = e - s;
  mi_tensor_set_shape(out[0], MI_INT64, 1, &len);
  return NULL;
}

static mi_status *shape_run(mi_node *n, mi_exec *ex, mi_tensor *const *in, mi_tensor **out) {
  (void)ex;
  int64_t s, e;
  shape_range(n, in[0]->ndim, &s, &e);
  for (int64_t i = s; i < e; i++) ((int64_t *)out[0]->data)[i - s] = in[0]->dims[i];
  return NULL;
}

static mi_status *size_infer(mi_node *n, mi_tensor *const *in, mi_tensor **out) {
  (void)n;
  (void)in;
  mi_tensor_set_shape(out[0], MI_INT64, 0, NULL);
  return NULL;
}

static mi_status *size_run(mi_node *n, mi_exec *ex, mi_tensor *const *in, mi_tensor **out) {
  (void)n;
  (void)ex;
  *(int64_t *)out[0]->data = mi_numel(in[0]->ndim, in[0]->dims);
  return NULL;
}

static mi_status *cos_value(mi_node *n, const mi_tensor **v) {
  const mi_attr *a = mi_node_attr(n, "value");
  *v = NULL;
  if (!a) return NULL;
  if (a->type != MI_ATTR_TENSOR || !a->t || mi_numel(a->t->ndim, a->t->dims) != 1)
    return mi_node_error(n, MI_ERR_INVALID_MODEL, "'value' must be a one-element tensor");
  if (!mi_dtype_size(a->t->dtype))
    return mi_node_error(n, MI_ERR_UNSUPPORTED, "'value' of element type %d", (int)a->t->dtype);
  *v = a->t;
  return NULL;
}

static mi_status *cos_infer(mi_node *n, mi_tensor *const *in, mi_tensor **out) {
  const mi_tensor *v;
  MI_TRY(cos_value(n, &v));
  int64_t dims[MI_MAX_DIMS], nd;
  MI_TRY(shp_read_ints(n, in[0], "shape", dims, MI_MAX_DIMS, &nd));
  for (int i = 0; i < nd; i++)
    if (dims[i] < 0) return mi_node_error(n, MI_ERR_SHAPE, "negative dimension %lld", (long long)dims[i]);
  mi_tensor_set_shape(out[0], v ? v->dtype : MI_FLOAT, (int)nd, dims);
  return NULL;
}

static mi_status *cos_run(mi_node *n, mi_exec *ex, mi_tensor *const *in, mi_tensor **out) {
  (void)in;
  const mi_tensor *v;
  MI_TRY(cos_value(n, &v));
  float zero = 0.f;
  shp_fill(ex, out[0]->data, mi_numel(out[0]->ndim, out[0]->dims), v ? v->data : &zero,
          mi_dtype_size(out[0]->dtype));
  return NULL;
}

const mi_op_def mi_ops_shape[] = {
    {"Reshape", 1, MI_OP_INPLACE, NULL, reshape_infer, copy_run, NULL},
    {"Flatten", 1, MI_OP_INPLACE, NULL, flatten_infer, copy_run, NULL},
    {"Squeeze", 1, MI_OP_INPLACE, NULL, squeeze_infer, copy_run, NULL},
    {"Unsqueeze", 1, MI_OP_INPLACE, NULL, unsqueeze_infer, copy_run, NULL},
    {"Identity", 1, MI_OP_INPLACE, NULL, identity_infer, copy_run, NULL},
    {"Dropout", 1, MI_OP_INPLACE, NULL, dropout_infer, dropout_run, NULL},
    {"Transpose", 1, 0, NULL, transpose_infer, transpose_run, NULL},
    {"Concat", 1, 0, NULL, concat_infer, concat_run, NULL},
    {"Split", 1, 0, NULL, split_infer, split_run, NULL},
    {"Slice", 1, 0, NULL, slice_infer, slice_run, NULL},
    {"Expand", 8, 0, NULL, expand_infer, expand_run, NULL},
    {"Tile", 6, 0, NULL, tile_infer, tile_run, NULL},
    {"DepthToSpace", 1, 0, NULL, d2s_infer, d2s_run, NULL},
    {"SpaceToDepth", 1, 0, NULL, s2d_infer, s2d_run, NULL},
    {"Shape", 1, 0, NULL, shape_infer, shape_run, NULL},
    {"Size", 1, 0, NULL, size_infer, size_run, NULL},
    {"ConstantOfShape", 9, 0, NULL, cos_infer, cos_run, NULL},
    MI_OPS_GATHER,
    MI_OPS_CAST,
    MI_OPS_GENERATE,
    {NULL},
};
