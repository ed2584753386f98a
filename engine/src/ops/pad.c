/* Pad: constant / reflect / edge / wrap, any rank, any element type.
 * Per axis a table maps each output coordinate to its input coordinate (or
 * -1 for the constant); each output row then copies its runs of consecutive
 * input elements with memcpy.  Negative pads crop. */
#include <stdlib.h>
#include <string.h>

#include "ops.h"

typedef enum { PAD_CONSTANT, PAD_REFLECT, PAD_EDGE, PAD_WRAP } pad_mode;

static mi_status *get_mode(mi_node *n, pad_mode *m) {
  const char *s = mi_attr_string(n, "mode", "constant");
  if (strcmp(s, "constant") == 0) *m = PAD_CONSTANT;
  else if (strcmp(s, "reflect") == 0) *m = PAD_REFLECT;
  else if (strcmp(s, "edge") == 0) *m = PAD_EDGE;
  else if (strcmp(s, "wrap") == 0) *m = PAD_WRAP;
  else return mi_node_error(n, MI_ERR_UNSUPPORTED, "mode '%s'", s);
  return NULL;
}

/* pads[0..r) begin, pads[r..2r) end, for every axis of the r-D input. */
static mi_status *get_pads(mi_node *n, mi_tensor *const *in, int64_t *pads) {
  int r = in[0]->ndim;
  int64_t raw[2 * MI_MAX_DIMS], np = 0, axes[MI_MAX_DIMS], na = -1;
  if (n->opset < 11) {
    const int64_t *v;
    size_t c = mi_attr_ints(n, n->opset < 2 ? "paddings" : "pads", &v);
    if (c == 0 && n->opset < 2) c = mi_attr_ints(n, "pads", &v);
    if (c > 2 * MI_MAX_DIMS) return mi_node_error(n, MI_ERR_INVALID_MODEL, "too many pads");
    for (size_t i = 0; i < c; i++) raw[i] = v[i];
    np = (int64_t)c;
  } else {
    const mi_tensor *p = n->n_in > 1 ? in[1] : NULL;
    if (!p) return mi_node_error(n, MI_ERR_INVALID_MODEL, "missing 'pads' input");
    if (!p->data) return mi_node_error(n, MI_ERR_UNSUPPORTED, "'pads' decides the output shape but is not known while planning");
    np = mi_numel(p->ndim, p->dims);
    if (np > 2 * MI_MAX_DIMS) return mi_node_error(n, MI_ERR_INVALID_MODEL, "too many pads");
    for (int64_t i = 0; i < np; i++) raw[i] = mi_tensor_get_i64(p, i);
    const mi_tensor *a = n->opset >= 18 && n->n_in > 3 ? in[3] : NULL;
    if (a) {
      if (!a->data) return mi_node_error(n, MI_ERR_UNSUPPORTED, "'axes' is not known while planning");
      na = mi_numel(a->ndim, a->dims);
      if (na > MI_MAX_DIMS) return mi_node_error(n, MI_ERR_INVALID_MODEL, "too many axes");
      for (int64_t i = 0; i < na; i++) axes[i] = mi_tensor_get_i64(a, i);
    }
  }
  int64_t k = na >= 0 ? na : r;
  if (np != 2 * k)
    return mi_node_error(n, MI_ERR_INVALID_MODEL, "%lld pads for %lld axes (need %lld)", (long long)np,
                         (long long)k, (long long)(2 * k));
  for (int i = 0; i < 2 * r; i++) pads[i] = 0;
  for (int64_t i = 0; i < k; i++) {
    int64_t a = na >= 0 ? axes[i] : i;
    if (a < 0) a += r;
    if (a < 0 || a >= r) return mi_node_error(n, MI_ERR_INVALID_MODEL, "axis %lld outside a %d-D input", (long long)a, r);
    pads[a] = raw[i];
    pads[r + a] = raw[k + i];
  }
  return NULL;
}

static mi_status *pad_infer(mi_node *n, mi_tensor *const *in, mi_tensor **out) {
  pad_mode mode;
  MI_TRY(get_mode(n, &mode));
  int64_t pads[2 * MI_MAX_DIMS], dims[MI_MAX_DIMS];
  MI_TRY(get_pads(n, in, pads));
  int r = in[0]->ndim;
  for (int i = 0; i < r; i++) {
    if (__builtin_add_overflow(in[0]->dims[i], pads[i], &dims[i]) ||
        __builtin_add_overflow(dims[i], pads[r + i], &dims[i]))
      return mi_node_error(n, MI_ERR_SHAPE, "pads %lld,%lld take axis %d past 2^63", (long long)pads[i],
                           (long long)pads[r + i], i);
    if (dims[i] < 0)
      return mi_node_error(n, MI_ERR_SHAPE, "pads %lld,%lld crop axis %d of size %lld below zero",
                           (long long)pads[i], (long long)pads[r + i], i, (long long)in[0]->dims[i]);
    if (mode != PAD_CONSTANT && in[0]->dims[i] == 0 && dims[i] > 0)
      return mi_node_error(n, MI_ERR_SHAPE, "cannot %s-pad empty axis %d", mi_attr_string(n, "mode", ""), i);
  }
  if (n->opset >= 11 && n->n_in > 2 && in[2] && in[2]->dtype != in[0]->dtype)
    return mi_node_error(n, MI_ERR_INVALID_MODEL, "constant_value type differs from the input's");
  mi_tensor_set_shape(out[0], in[0]->dtype, r, dims);
  return NULL;
}

/* Input coordinate of output coordinate o, or -1 for the constant. */
static int64_t map_coord(pad_mode m, int64_t o, int64_t pb, int64_t d) {
  int64_t i = o - pb;
  if (i >= 0 && i < d) return i;
  switch (m) {
    case PAD_CONSTANT: return -1;
    case PAD_EDGE: return i < 0 ? 0 : d - 1;
    case PAD_WRAP: return ((i % d) + d) % d;
    case PAD_REFLECT: {
      if (d == 1) return 0;
      int64_t period = 2 * (d - 1);
      i = ((i % period) + period) % period;
      return i < d ? i : period - i;
    }
  }
  return -1;
}

typedef struct {
  int r;
  const int64_t *odims;
  int64_t *tbl[MI_MAX_DIMS]; /* per axis: output coord -> input coord or -1 */
  int64_t istr[MI_MAX_DIMS];
  const char *src;
  char *dst;
  size_t es;
  unsigned char value[16];
} pad_ctx;

static void fill_const(const pad_ctx *c, char *d, int64_t n) {
  for (int64_t i = 0; i < n; i++) memcpy(d + (size_t)i * c->es, c->value, c->es);
}

static void pad_rows(void *p, int64_t b, int64_t e) {
  const pad_ctx *c = p;
  int r = c->r;
  int64_t W = c->odims[r - 1];
  const int64_t *lt = c->tbl[r - 1];
  size_t es = c->es;
  for (int64_t row = b; row < e; row++) {
    char *d = c->dst + (size_t)(row * W) * es;
    int64_t rem = row, off = 0;
    bool constant = false;
    for (int k = r - 2; k >= 0; k--) {
      int64_t x = rem % c->odims[k];
      rem /= c->odims[k];
      int64_t ix = c->tbl[k][x];
      if (ix < 0) constant = true;
      off += ix * c->istr[k];
    }
    if (constant) {
      fill_const(c, d, W);
      continue;
    }
    const char *s = c->src + (size_t)off * es;
    for (int64_t o = 0; o < W;) {
      if (lt[o] < 0) {
        int64_t q = o;
        while (q < W && lt[q] < 0) q++;
        fill_const(c, d + (size_t)o * es, q - o);
        o = q;
        continue;
      }
      int64_t q = o + 1;
      while (q < W && lt[q] == lt[q - 1] + 1) q++;
      memcpy(d + (size_t)o * es, s + (size_t)lt[o] * es, (size_t)(q - o) * es);
      o = q;
    }
  }
}

static mi_status *pad_run(mi_node *n, mi_exec *ex, mi_tensor *const *in, mi_tensor **out) {
  pad_mode mode;
  MI_TRY(get_mode(n, &mode));
  int64_t pads[2 * MI_MAX_DIMS];
  MI_TRY(get_pads(n, in, pads));
  int r = in[0]->ndim;
  size_t es = mi_dtype_size(in[0]->dtype);
  int64_t total = mi_numel(r, out[0]->dims);
  if (total == 0) return NULL;
  if (r == 0) {
    memcpy(out[0]->data, in[0]->data, es);
    return NULL;
  }
  pad_ctx c;
  memset(&c, 0, sizeof c);
  c.r = r;
  c.odims = out[0]->dims;
  c.src = in[0]->data;
  c.dst = out[0]->data;
  c.es = es;
  if (mode == PAD_CONSTANT) {
    if (n->opset >= 11) {
      if (n->n_in > 2 && in[2] && mi_numel(in[2]->ndim, in[2]->dims) > 0) memcpy(c.value, in[2]->data, es);
    } else {
      mi_tensor v = {.dtype = in[0]->dtype, .ndim = 0, .data = c.value};
      mi_tensor_set_f64(&v, 0, mi_attr_float(n, "value", 0.f));
    }
  }
  int64_t tsize = 0;
  for (int k = 0; k < r; k++) tsize += out[0]->dims[k];
  int64_t *tables = mi_exec_scratch(ex, (size_t)tsize * sizeof(int64_t));
  if (!tables) return mi_node_error(n, MI_ERR_NO_MEMORY, "out of memory");
  int64_t *t = tables;
  for (int k = 0; k < r; k++) {
    c.tbl[k] = t;
    for (int64_t o = 0; o < out[0]->dims[k]; o++) t[o] = map_coord(mode, o, pads[k], in[0]->dims[k]);
    t += out[0]->dims[k];
  }
  int64_t s = 1;
  for (int k = r - 1; k >= 0; k--) {
    c.istr[k] = s;
    s *= in[0]->dims[k];
  }
  int64_t W = out[0]->dims[r - 1];
  mi_parallel_for(ex, total / W, 65536 / (W * (int64_t)es + 1) + 1, pad_rows, &c);
  mi_exec_scratch_release(ex, tables);
  return NULL;
}

const mi_op_def mi_ops_pad[] = {
    {"Pad", 1, 0, NULL, pad_infer, pad_run, NULL},
    {NULL},
};
