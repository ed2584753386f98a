/* Softmax, LogSoftmax, Hardmax.
 *
 * The input is viewed as [outer, n, inner] and reduced over n.  Before
 * opset 13 the tensor is flattened to 2-D at `axis` (default 1), i.e.
 * n = prod(dims[axis:]) and inner = 1; from 13 the reduction runs along
 * `axis` alone (default -1).  Rows are numerically stable: the row maximum
 * is subtracted before exp.  inner == 1 takes a contiguous path; otherwise a
 * tile of up to TILE neighbouring inner positions is processed together so
 * the loops run unit-stride.  Every output element is written only after
 * its input was read, so the operators run in place. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "broadcast.h"
#include "medinfer/vecmath.h"
#include "ops.h"

enum { SM_SOFTMAX, SM_LOGSOFTMAX, SM_HARDMAX };
#define TILE 64

typedef struct sm_priv {
  int kind;
  int64_t axis;
} sm_priv;

typedef struct sm_ctx {
  int kind;
  const void *x;
  void *y;
  int64_t n, inner, ntile;
} sm_ctx;

/* e^v in place: float through the vectorised mi_exp_floats. */
static void exp_f32(float *v, int64_t n) { mi_exp_floats(v, v, (size_t)n); }
static void exp_f64(double *v, int64_t n) {
  for (int64_t j = 0; j < n; j++) v[j] = exp(v[j]);
}

#define SM_KERNELS(T, sfx)                                                                   \
  static void row_##sfx(int kind, const T *x, T *y, int64_t n) {                             \
    if (kind == SM_HARDMAX) {                                                                \
      int64_t best = 0;                                                                      \
      for (int64_t j = 1; j < n; j++)                                                        \
        if (x[j] > x[best]) best = j;                                                        \
      for (int64_t j = 0; j < n; j++) y[j] = j == best ? (T)1 : (T)0;                        \
      return;                                                                                \
    }                                                                                        \
    T m = x[0];                                                                              \
    for (int64_t j = 1; j < n; j++) m = x[j] > m ? x[j] : m;                                 \
    double s = 0;                                                                            \
    if (kind == SM_SOFTMAX) {                                                                \
      for (int64_t j = 0; j < n; j++) y[j] = x[j] - m;                                       \
      exp_##sfx(y, n);                                                                       \
      for (int64_t j = 0; j < n; j++) s += y[j];                                             \
      const T inv = (T)(1.0 / s);                                                            \
      for (int64_t j = 0; j < n; j++) y[j] *= inv;                                           \
    } else {                                                                                 \
      for (int64_t j = 0; j < n; j++) s += MI_FM(exp, x[j] - m);                             \
      /* (x - m) - log(s): x - m is exact near the maximum, keeping small results */        \
      const T ls = (T)log(s);                                                                \
      for (int64_t j = 0; j < n; j++) y[j] = (x[j] - m) - ls;                                \
    }                                                                                        \
  }                                                                                          \
  /* L (<= TILE) adjacent inner positions, each reduced over n at stride inner. */           \
  static void tile_##sfx(int kind, const T *x, T *y, int64_t n, int64_t inner, int64_t L) {  \
    T m[TILE];                                                                               \
    double s[TILE];                                                                          \
    if (kind == SM_HARDMAX) {                                                                \
      int64_t best[TILE];                                                                    \
      for (int64_t k = 0; k < L; k++) {                                                      \
        m[k] = x[k];                                                                         \
        best[k] = 0;                                                                         \
      }                                                                                      \
      for (int64_t j = 1; j < n; j++)                                                        \
        for (int64_t k = 0; k < L; k++)                                                      \
          if (x[j * inner + k] > m[k]) {                                                     \
            m[k] = x[j * inner + k];                                                         \
            best[k] = j;                                                                     \
          }                                                                                  \
      for (int64_t j = 0; j < n; j++)                                                        \
        for (int64_t k = 0; k < L; k++) y[j * inner + k] = j == best[k] ? (T)1 : (T)0;       \
      return;                                                                                \
    }                                                                                        \
    for (int64_t k = 0; k < L; k++) {                                                        \
      m[k] = x[k];                                                                           \
      s[k] = 0;                                                                              \
    }                                                                                        \
    for (int64_t j = 1; j < n; j++)                                                          \
      for (int64_t k = 0; k < L; k++) {                                                      \
        const T v = x[j * inner + k];                                                        \
        m[k] = v > m[k] ? v : m[k];                                                          \
      }                                                                                      \
    if (kind == SM_SOFTMAX) {                                                                \
      for (int64_t j = 0; j < n; j++) {                                                      \
        for (int64_t k = 0; k < L; k++) y[j * inner + k] = x[j * inner + k] - m[k];          \
        exp_##sfx(y + j * inner, L);                                                         \
        for (int64_t k = 0; k < L; k++) s[k] += y[j * inner + k];                            \
      }                                                                                      \
      T inv[TILE];                                                                           \
      for (int64_t k = 0; k < L; k++) inv[k] = (T)(1.0 / s[k]);                              \
      for (int64_t j = 0; j < n; j++)                                                        \
        for (int64_t k = 0; k < L; k++) y[j * inner + k] *= inv[k];                          \
    } else {                                                                                 \
      for (int64_t j = 0; j < n; j++)                                                        \
        for (int64_t k = 0; k < L; k++) s[k] += MI_FM(exp, x[j * inner + k] - m[k]);         \
      T ls[TILE];                                                                            \
      for (int64_t k = 0; k < L; k++) ls[k] = (T)log(s[k]);                                  \
      for (int64_t j = 0; j < n; j++)                                                        \
        for (int64_t k = 0; k < L; k++)                                                      \
          y[j * inner + k] = (x[j * inner + k] - m[k]) - ls[k];                              \
    }                                                                                        \
  }                                                                                          \
  /* Tasks [b, e): task t = (outer block t / ntile, tile t % ntile). */                      \
  static void range_##sfx(void *arg, int64_t b, int64_t e) {                                 \
    const sm_ctx *c = arg;                                                                   \
    const T *x = c->x;                                                                       \
    T *y = c->y;                                                                             \
    for (int64_t t = b; t < e; t++) {                                                        \
      if (c->inner == 1) {                                                                   \
        row_##sfx(c->kind, x + t * c->n, y + t * c->n, c->n);                                \
        continue;                                                                            \
      }                                                                                      \
      int64_t o = t / c->ntile, k0 = (t % c->ntile) * TILE;                                  \
      int64_t L = c->inner - k0 < TILE ? c->inner - k0 : TILE;                               \
      int64_t base = o * c->n * c->inner + k0;                                               \
      tile_##sfx(c->kind, x + base, y + base, c->n, c->inner, L);                            \
    }                                                                                        \
  }
SM_KERNELS(float, f32)
SM_KERNELS(double, f64)

static mi_status *sm_init(mi_node *n, mi_graph *g) {
  (void)g;
  sm_priv *p = calloc(1, sizeof *p);
  if (!p) return mi_node_error(n, MI_ERR_NO_MEMORY, "out of memory");
  p->kind = strcmp(n->op_type, "Softmax") == 0      ? SM_SOFTMAX
            : strcmp(n->op_type, "LogSoftmax") == 0 ? SM_LOGSOFTMAX
                                                    : SM_HARDMAX;
  p->axis = mi_attr_int(n, "axis", n->opset >= 13 ? -1 : 1);
  n->priv = p;
  return NULL;
}

/* Normalized axis, or an error when it is outside [-r, r-1]. */
static mi_status *sm_axis(const mi_node *n, const mi_tensor *x, int *axis) {
  const sm_priv *p = n->priv;
  int r = x->ndim;
  if (r < 1) return mi_node_error(n, MI_ERR_SHAPE, "input must have rank >= 1");
  if (p->axis < -r || p->axis >= r)
    return mi_node_error(n, MI_ERR_INVALID_MODEL, "axis %lld outside [-%d, %d]",
                         (long long)p->axis, r, r - 1);
  *axis = (int)(p->axis < 0 ? p->axis + r : p->axis);
  return NULL;
}

static mi_status *sm_infer(mi_node *n, mi_tensor *const *in, mi_tensor **out) {
  if (n->n_in < 1 || !in[0]) return mi_node_error(n, MI_ERR_INVALID_MODEL, "input is missing");
  if (!mi_dtype_is_float(in[0]->dtype))
    return mi_node_error(n, MI_ERR_UNSUPPORTED, "element type %s not supported",
                         mi_dtype_name(in[0]->dtype));
  int axis = 0;
  MI_TRY(sm_axis(n, in[0], &axis));
  mi_tensor_set_shape(out[0], in[0]->dtype, in[0]->ndim, in[0]->dims);
  return NULL;
}

static mi_status *sm_run(mi_node *n, mi_exec *ex, mi_tensor *const *in, mi_tensor **out) {
  const sm_priv *p = n->priv;
  const mi_tensor *x = in[0];
  int axis = 0;
  MI_TRY(sm_axis(n, x, &axis));
  int64_t outer = mi_numel(axis, x->dims), len, inner;
  if (n->opset < 13) {
    len = mi_numel(x->ndim - axis, x->dims + axis);
    inner = 1;
  } else {
    len = x->dims[axis];
    inner = mi_numel(x->ndim - axis - 1, x->dims + axis + 1);
  }
  if (outer == 0 || len == 0 || inner == 0) return NULL;
  sm_ctx c = {p->kind, x->data, out[0]->data, len, inner, (inner + TILE - 1) / TILE};
  int64_t tasks = inner == 1 ? outer : outer * c.ntile;
  int64_t per_task = len * (inner < TILE ? inner : TILE);
  int64_t grain = 16384 / per_task;
  mi_parallel_for(ex, tasks, grain < 1 ? 1 : grain, x->dtype == MI_FLOAT ? range_f32 : range_f64,
                  &c);
  return NULL;
}

#define SM(name, opset) {name, opset, MI_OP_INPLACE, sm_init, sm_infer, sm_run, NULL}
const mi_op_def mi_ops_softmax[] = {
    SM("Softmax", 1),
    SM("LogSoftmax", 1),
    SM("Hardmax", 1),
    {NULL},
};
