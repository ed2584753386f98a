/* Load-time graph passes: drop identities, fold BatchNormalization into the
 * convolution before it, and fuse activations into the producing kernel. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"

static bool is_op(const mi_node *n, const char *type) {
  return !n->dead && strcmp(n->op_type, type) == 0 && (!n->domain[0] || !strcmp(n->domain, "ai.onnx"));
}

/* Number of live nodes (and graph outputs) reading each value. */
static int *count_uses(const mi_graph *g) {
  int *uses = calloc((size_t)g->n_values + 1, sizeof(int));
  if (!uses) return NULL;
  for (int k = 0; k < g->n_nodes; k++) {
    const mi_node *n = &g->nodes[k];
    if (n->dead) continue;
    for (int i = 0; i < n->n_in; i++)
      if (n->in[i] >= 0) uses[n->in[i]]++;
    if (n->fused_add >= 0) uses[n->fused_add]++;
  }
  for (int i = 0; i < g->n_outputs; i++) uses[g->outputs[i]]++;
  return uses;
}

static int consumer(const mi_graph *g, int v) {
  for (int k = 0; k < g->n_nodes; k++) {
    const mi_node *n = &g->nodes[k];
    if (n->dead) continue;
    for (int i = 0; i < n->n_in; i++)
      if (n->in[i] == v) return k;
  }
  return -1;
}

static void replace_uses(mi_graph *g, int from, int to) {
  for (int k = 0; k < g->n_nodes; k++) {
    mi_node *n = &g->nodes[k];
    for (int i = 0; i < n->n_in; i++)
      if (n->in[i] == from) n->in[i] = to;
    if (n->fused_add == from) n->fused_add = to;
  }
}

static const float *const_f32(const mi_graph *g, int v, int64_t numel) {
  if (v < 0 || !g->values[v].is_const) return NULL;
  const mi_tensor *t = &g->values[v].t;
  if (t->dtype != MI_FLOAT || mi_numel(t->ndim, t->dims) != numel) return NULL;
  return t->data;
}

/* A constant int64 value's elements and their count (NULL: not one). */
static const int64_t *const_i64(const mi_graph *g, int v, int64_t *numel) {
  if (v < 0 || !g->values[v].is_const) return NULL;
  const mi_tensor *t = &g->values[v].t;
  if (t->dtype != MI_INT64 || !t->data) return NULL;
  *numel = mi_numel(t->ndim, t->dims);
  return t->data;
}

/* A Pad that pads nothing (DenseNet-121's export puts one of zeros before
 * each transition's pooling: copies of 0.2 ms in a 31 ms run). */
static bool pads_nothing(const mi_graph *g, const mi_node *n) {
  const int64_t *p = NULL;
  size_t np = 0;
  if (n->opset < 11) {
    np = mi_attr_ints(n, "pads", &p);
  } else if (n->n_in >= 2) {
    int64_t count = 0;
    p = const_i64(g, n->in[1], &count);
    np = (size_t)count;
  }
  if (!p || !np) return false;
  for (size_t i = 0; i < np; i++)
    if (p[i] != 0) return false;
  return true;
}

static void drop_identities(mi_graph *g) {
  for (int k = 0; k < g->n_nodes; k++) {
    mi_node *n = &g->nodes[k];
    bool ident = is_op(n, "Identity") || (is_op(n, "Pad") && pads_nothing(g, n));
    if (is_op(n, "Dropout")) /* inference: a copy, unless the mask is wanted */
      ident = n->n_out == 1 || (n->n_out == 2 && n->out[1] < 0);
    if (!ident || n->n_in < 1 || n->in[0] < 0 || n->out[0] < 0) continue;
    if (g->values[n->out[0]].is_output) continue;
    replace_uses(g, n->out[0], n->in[0]);
    n->dead = true;
  }
}

/* Conv -> BatchNormalization  =>  Conv with W' = W*s, B' = (B-mean)*s + beta. */
static mi_status *fold_batchnorm(mi_graph *g, size_t max_bytes) {
  for (int k = 0; k < g->n_nodes; k++) {
    mi_node *bn = &g->nodes[k];
    if (!is_op(bn, "BatchNormalization") || bn->n_in != 5 || bn->in[0] < 0) continue;
    if (bn->n_out > 1) {
      bool extra = false;
      for (int i = 1; i < bn->n_out; i++) extra |= bn->out[i] >= 0;
      if (extra) continue;
    }
    if (mi_attr_int(bn, "training_mode", 0)) continue;
    int x = bn->in[0];
    int pk = g->values[x].producer;
    if (pk < 0) continue;
    mi_node *conv = &g->nodes[pk];
    if (!is_op(conv, "Conv") || conv->n_in < 2 || conv->in[1] < 0 || conv->out[0] != x) continue;
    int *uses = count_uses(g);
    if (!uses) return mi_error(MI_ERR_NO_MEMORY, "out of memory");
    bool single = uses[x] == 1 && !g->values[x].is_output;
    int w_uses = uses[conv->in[1]];
    int b_uses = conv->n_in > 2 && conv->in[2] >= 0 ? uses[conv->in[2]] : 0;
    free(uses);
    if (!single) continue;
    mi_value *wv = &g->values[conv->in[1]];
    if (!wv->is_const || wv->t.dtype != MI_FLOAT || wv->t.ndim < 3) continue;
    int64_t M = wv->t.dims[0];
    int64_t per = mi_numel(wv->t.ndim, wv->t.dims) / (M ? M : 1);
    const float *scale = const_f32(g, bn->in[1], M), *beta = const_f32(g, bn->in[2], M);
    const float *mean = const_f32(g, bn->in[3], M), *var = const_f32(g, bn->in[4], M);
    const float *bias = conv->n_in > 2 && conv->in[2] >= 0 ? const_f32(g, conv->in[2], M) : NULL;
    if (!scale || !beta || !mean || !var || (conv->n_in > 2 && conv->in[2] >= 0 && !bias)) continue;
    float eps = mi_attr_float(bn, "epsilon", 1e-5f);

    /* Shared weights get a private copy; otherwise rewrite in place. */
    int wi = conv->in[1];
    if (w_uses > 1) {
      int nv = mi_graph_add_value(g, "bn_folded_weight");
      if (nv < 0) return mi_error(MI_ERR_NO_MEMORY, "out of memory");
      conv = &g->nodes[pk];
      bn = &g->nodes[k];
      mi_value *src = &g->values[wi], *dst = &g->values[nv];
      mi_tensor_set_shape(&dst->t, MI_FLOAT, src->t.ndim, src->t.dims);
      MI_TRY(mi_tensor_alloc(&dst->t, max_bytes));
      memcpy(dst->t.data, src->t.data, mi_tensor_nbytes(&src->t));
      dst->is_const = true;
      wi = nv;
      conv->in[1] = nv;
    }
    int bi = conv->n_in > 2 ? conv->in[2] : -1;
    if (bi < 0 || b_uses > 1) {
      int nv = mi_graph_add_value(g, "bn_folded_bias");
      if (nv < 0) return mi_error(MI_ERR_NO_MEMORY, "out of memory");
      conv = &g->nodes[pk];
      bn = &g->nodes[k];
      mi_value *dst = &g->values[nv];
      mi_tensor_set_shape(&dst->t, MI_FLOAT, 1, &M);
      MI_TRY(mi_tensor_alloc(&dst->t, max_bytes));
      if (bi >= 0) memcpy(dst->t.data, g->values[bi].t.data, (size_t)M * sizeof(float));
      dst->is_const = true;
      if (conv->n_in < 3) { /* conv->in has room for 2 extra entries */
        conv->in[2] = nv;
        conv->n_in = 3;
      } else {
        conv->in[2] = nv;
      }
      bi = nv;
    }
    /* Re-read the BN parameters: adding values may have moved the array. */
    scale = const_f32(g, bn->in[1], M);
    beta = const_f32(g, bn->in[2], M);
    mean = const_f32(g, bn->in[3], M);
    var = const_f32(g, bn->in[4], M);
    float *w = g->values[wi].t.data, *b = g->values[bi].t.data;
    for (int64_t m = 0; m < M; m++) {
      float s = scale[m] / sqrtf(var[m] + eps);
      for (int64_t j = 0; j < per; j++) w[m * per + j] *= s;
      b[m] = (b[m] - mean[m]) * s + beta[m];
    }
    conv->out[0] = bn->out[0];
    g->values[bn->out[0]].producer = pk;
    bn->dead = true;
  }
  return NULL;
}

/* Producer(MI_OP_FUSE_ACT) -> activation  =>  producer with an epilogue. */
static void fuse_activations(mi_graph *g) {
  for (int k = 0; k < g->n_nodes; k++) {
    mi_node *a = &g->nodes[k];
    if (a->dead || a->n_in < 1 || a->in[0] < 0 || a->n_out < 1 || a->out[0] < 0) continue;
    mi_activation act = {MI_ACT_NONE, 0, 0};
    if (is_op(a, "Relu")) act.kind = MI_ACT_RELU;
    else if (is_op(a, "LeakyRelu")) act = (mi_activation){MI_ACT_LEAKY_RELU, mi_attr_float(a, "alpha", 0.01f), 0};
    else if (is_op(a, "Sigmoid")) act.kind = MI_ACT_SIGMOID;
    else if (is_op(a, "Tanh")) act.kind = MI_ACT_TANH;
    else if (is_op(a, "Clip")) {
      act = (mi_activation){MI_ACT_CLIP, -INFINITY, INFINITY};
      if (a->opset < 11) {
        act.alpha = mi_attr_float(a, "min", -INFINITY);
        act.beta = mi_attr_float(a, "max", INFINITY);
      } else {
        const float *lo = a->n_in > 1 && a->in[1] >= 0 ? const_f32(g, a->in[1], 1) : NULL;
        const float *hi = a->n_in > 2 && a->in[2] >= 0 ? const_f32(g, a->in[2], 1) : NULL;
        if ((a->n_in > 1 && a->in[1] >= 0 && !lo) || (a->n_in > 2 && a->in[2] >= 0 && !hi)) continue;
        if (lo) act.alpha = *lo;
        if (hi) act.beta = *hi;
      }
    }
    if (act.kind == MI_ACT_NONE) continue;
    int x = a->in[0];
    int pk = g->values[x].producer;
    if (pk < 0) continue;
    mi_node *p = &g->nodes[pk];
    if (p->dead || !p->op || !(p->op->flags & MI_OP_FUSE_ACT) || p->act.kind != MI_ACT_NONE) continue;
    if (p->out[0] != x || g->values[x].is_output || consumer(g, x) != k) continue;
    int *uses = count_uses(g);
    bool single = uses && uses[x] == 1;
    free(uses);
    if (!single) continue;
    p->act = act;
    p->out[0] = a->out[0];
    g->values[a->out[0]].producer = pk;
    a->dead = true;
  }
}

static bool same_shape(const mi_tensor *a, const mi_tensor *b) {
  if (a->ndim != b->ndim || a->dtype != b->dtype) return false;
  for (int d = 0; d < a->ndim; d++)
    if (a->dims[d] != b->dims[d]) return false;
  return true;
}

int mi_graph_fuse_residuals(mi_graph *g) {
  int *uses = count_uses(g);
  if (!uses) return 0;
  int fused = 0;
  for (int k = 0; k < g->n_nodes; k++) {
    mi_node *a = &g->nodes[k];
    if (!is_op(a, "Add") || a->n_in != 2 || a->n_out != 1 || a->out[0] < 0) continue;
    for (int side = 0; side < 2; side++) {
      int x = a->in[side], r = a->in[1 - side];
      if (x < 0 || r < 0 || x == r) continue;
      const mi_value *xv = &g->values[x], *rv = &g->values[r];
      if (xv->producer < 0 || xv->is_output || xv->folded || xv->is_const || uses[x] != 1) continue;
      /* Shapes of eagerly computed values are not known here. */
      if (xv->dynamic || rv->dynamic || g->values[a->out[0]].dynamic) continue;
      if (xv->t.dtype != MI_FLOAT || !same_shape(&xv->t, &rv->t) ||
          !same_shape(&xv->t, &g->values[a->out[0]].t))
        continue;
      mi_node *p = &g->nodes[xv->producer];
      if (p->dead || !p->op || !(p->op->flags & MI_OP_FUSE_ACT) || p->act.kind != MI_ACT_NONE ||
          p->fused_add >= 0 || p->out[0] != x)
        continue;
      p->fused_add = r;
      p->out[0] = a->out[0];
      g->values[a->out[0]].producer = xv->producer;
      a->dead = true;
      fused++;
      break;
    }
  }
  free(uses);
  if (fused) fuse_activations(g); /* a Relu after the Add joins the epilogue */
  return fused;
}

mi_status *mi_graph_fuse_input_affine(mi_graph *g) {
  for (int k = 0; k < g->n_nodes; k++) {
    mi_node *conv = &g->nodes[k];
    if (conv->dead || !is_op(conv, "Conv") || conv->n_in < 2 || conv->in[0] < 0 || conv->in[1] < 0) continue;
    if (mi_attr_int(conv, "group", 1) != 1 || conv->pre_affine) continue;
    const mi_value *wv = &g->values[conv->in[1]];
    if (!wv->is_const || wv->t.dtype != MI_FLOAT || wv->t.ndim < 3) continue;
    const int x = conv->in[0], pk = g->values[x].producer;
    if (pk < 0 || g->values[x].is_output) continue;
    mi_node *bn = &g->nodes[pk];
    if (bn->dead || !is_op(bn, "BatchNormalization") || bn->n_in != 5 || bn->in[0] < 0 || bn->out[0] != x ||
        bn->fused_add >= 0 || (bn->act.kind != MI_ACT_NONE && bn->act.kind != MI_ACT_RELU) ||
        mi_attr_int(bn, "training_mode", 0) || (bn->opset < 9 && mi_attr_int(bn, "spatial", 1) == 0))
      continue;
    bool extra = false;
    for (int i = 1; i < bn->n_out; i++) extra |= bn->out[i] >= 0;
    if (extra) continue;
    const int64_t C = wv->t.dims[1];
    const float *scale = const_f32(g, bn->in[1], C), *beta = const_f32(g, bn->in[2], C);
    const float *mean = const_f32(g, bn->in[3], C), *var = const_f32(g, bn->in[4], C);
    if (!scale || !beta || !mean || !var) continue;
    int *uses = count_uses(g);
    if (!uses) return mi_error(MI_ERR_NO_MEMORY, "out of memory");
    const bool single = uses[x] == 1;
    free(uses);
    if (!single) continue;
    float *pa = malloc(2 * (size_t)C * sizeof *pa);
    if (!pa) return mi_error(MI_ERR_NO_MEMORY, "out of memory");
    const float eps = mi_attr_float(bn, "epsilon", 1e-5f);
    for (int64_t c = 0; c < C; c++) { /* in double, as the BatchNormalization kernel */
      const double a = (double)scale[c] / sqrt((double)var[c] + (double)eps);
      pa[c] = (float)a;
      pa[C + c] = (float)((double)beta[c] - (double)mean[c] * a);
    }
    conv->pre_affine = pa;
    conv->pre_channels = C;
    conv->pre_relu = bn->act.kind == MI_ACT_RELU;
    conv->in[0] = bn->in[0];
    bn->dead = true;
  }
  return mi_graph_toposort(g);
}

/* Every int of attribute `name` equals v (an absent attribute: true). */
static bool ints_all(const mi_node *n, const char *name, int64_t v) {
  const int64_t *p = NULL;
  const size_t np = mi_attr_ints(n, name, &p);
  for (size_t i = 0; i < np; i++)
    if (p[i] != v) return false;
  return true;
}

/* No padding: auto_pad NOTSET or VALID, pads all zero. */
static bool unpadded(const mi_node *n) {
  const char *ap = mi_attr_string(n, "auto_pad", "NOTSET");
  return (!ap[0] || !strcmp(ap, "NOTSET") || !strcmp(ap, "VALID")) && ints_all(n, "pads", 0);
}

/* A Conv that is the same matrix at every position: kernel 1 along every
 * spatial axis, unit strides, no padding, nothing fused after it. */
static bool pointwise_conv(const mi_graph *g, const mi_node *n) {
  if (!is_op(n, "Conv") || n->n_in < 2 || n->in[0] < 0 || n->in[1] < 0 || n->n_out != 1 || n->out[0] < 0) return false;
  if (n->act.kind != MI_ACT_NONE || n->fused_add >= 0) return false;
  const mi_value *wv = &g->values[n->in[1]];
  if (!wv->is_const || wv->t.dtype != MI_FLOAT || wv->t.ndim < 3) return false;
  for (int d = 2; d < wv->t.ndim; d++)
    if (wv->t.dims[d] != 1) return false;
  return unpadded(n) && ints_all(n, "strides", 1);
}

/* An AveragePool without padding or ceil_mode (each output the plain mean of
 * its window) whose strides leave fewer positions than it reads. */
static bool shrinking_mean(const mi_node *n, int spatial) {
  if (!is_op(n, "AveragePool") || n->n_out != 1 || n->out[0] < 0 || n->pre_affine) return false;
  if (!unpadded(n) || mi_attr_int(n, "ceil_mode", 0) != 0) return false;
  const int64_t *k = NULL, *s = NULL;
  if (mi_attr_ints(n, "kernel_shape", &k) != (size_t)spatial) return false;
  const size_t ns = mi_attr_ints(n, "strides", &s);
  if (ns != (size_t)spatial) return false; /* absent: unit strides, nothing saved */
  int64_t fewer = 1;
  for (int i = 0; i < spatial; i++) fewer *= s[i] > 0 ? s[i] : 1;
  return fewer >= 2;
}

mi_status *mi_graph_pool_before_pointwise(mi_graph *g) {
  int *uses = count_uses(g);
  if (!uses) return mi_error(MI_ERR_NO_MEMORY, "out of memory");
  bool moved = false;
  for (int k = 0; k < g->n_nodes; k++) {
    mi_node *conv = &g->nodes[k];
    if (!pointwise_conv(g, conv)) continue;
    const int v = conv->out[0];
    if (g->values[v].is_output || uses[v] != 1) continue;
    const int pk = consumer(g, v);
    if (pk < 0) continue;
    mi_node *pool = &g->nodes[pk];
    if (!shrinking_mean(pool, g->values[conv->in[1]].t.ndim - 2) || pool->in[0] != v) continue;
    const int x = conv->in[0], y = pool->out[0];
    pool->in[0] = x, pool->out[0] = v, conv->in[0] = v, conv->out[0] = y;
    g->values[v].producer = pk;
    g->values[y].producer = k;
    pool->pre_affine = conv->pre_affine, pool->pre_channels = conv->pre_channels, pool->pre_relu = conv->pre_relu;
    conv->pre_affine = NULL, conv->pre_channels = 0, conv->pre_relu = false;
    moved = true;
  }
  free(uses);
  return moved ? mi_graph_toposort(g) : NULL;
}

/* A 2D MaxPool of 2x2 windows at stride 2, no padding, dilation or
 * ceil_mode, without the Indices output. */
static bool max_pool_2x2(const mi_node *n) {
  if (!is_op(n, "MaxPool") || n->n_in != 1 || n->in[0] < 0 || n->out[0] < 0) return false;
  if (n->n_out > 1 && n->out[1] >= 0) return false;
  const int64_t *k = NULL, *s = NULL;
  if (mi_attr_ints(n, "kernel_shape", &k) != 2 || k[0] != 2 || k[1] != 2) return false;
  if (mi_attr_ints(n, "strides", &s) != 2 || s[0] != 2 || s[1] != 2) return false;
  return unpadded(n) && ints_all(n, "dilations", 1) && mi_attr_int(n, "ceil_mode", 0) == 0;
}

mi_status *mi_graph_fuse_max_pool(mi_graph *g) {
  int *uses = count_uses(g);
  if (!uses) return mi_error(MI_ERR_NO_MEMORY, "out of memory");
  for (int k = 0; k < g->n_nodes; k++) {
    mi_node *conv = &g->nodes[k];
    if (!is_op(conv, "Conv") || conv->n_in < 2 || conv->in[0] < 0 || conv->in[1] < 0 || conv->n_out != 1 ||
        conv->out[0] < 0 || conv->post_pool2)
      continue;
    if (conv->fused_add >= 0) continue; /* any activation: the pool takes its output */
    const mi_value *wv = &g->values[conv->in[1]];
    if (!wv->is_const || wv->t.dtype != MI_FLOAT || wv->t.ndim != 4 || wv->t.dims[2] != 3 || wv->t.dims[3] != 3)
      continue;
    if (mi_attr_int(conv, "group", 1) != 1 || !ints_all(conv, "strides", 1) || !ints_all(conv, "dilations", 1))
      continue;
    const int v = conv->out[0];
    if (g->values[v].is_output || uses[v] != 1) continue;
    const int pk = consumer(g, v);
    if (pk < 0 || !max_pool_2x2(&g->nodes[pk])) continue;
    mi_node *pool = &g->nodes[pk];
    conv->out[0] = pool->out[0];
    g->values[conv->out[0]].producer = k;
    g->values[v].producer = -1; /* the full-size output: no longer a value of the graph */
    conv->post_pool2 = true;
    pool->dead = true;
  }
  free(uses);
  return mi_graph_toposort(g);
}

mi_status *mi_graph_optimize(mi_graph *g, size_t max_bytes) {
  drop_identities(g);
  MI_TRY(fold_batchnorm(g, max_bytes));
  fuse_activations(g);
  return mi_graph_toposort(g);
}
