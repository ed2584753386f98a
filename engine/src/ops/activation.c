/* Activation operators.  All are elementwise on input 0 and may run in place
 * (MI_OP_INPLACE).  Float kernels compute in the tensor's own precision with
 * the attributes hoisted into locals so the loops vectorize; PRelu
 * broadcasts its slope through mi_ew_run. */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "broadcast.h"
#include "medinfer/vecmath.h"
#include "ops.h"

typedef struct act_priv {
  const struct act_desc *d;
  float alpha, beta, gamma;
} act_priv;

/* Float activation kernel: EXPR uses x, alpha, beta, gamma (of type T). */
#define ACT_KERNEL(NAME, T, EXPR)                                                       \
  static void NAME(const void *prm, const char *const *in, const int64_t *s, char *out, \
                   int64_t n) {                                                         \
    (void)s;                                                                            \
    const act_priv *p = prm;                                                            \
    const T alpha = (T)p->alpha, beta = (T)p->beta, gamma = (T)p->gamma;                \
    (void)alpha;                                                                        \
    (void)beta;                                                                         \
    (void)gamma;                                                                        \
    const T *a = (const T *)in[0];                                                      \
    T *o = (T *)out;                                                                    \
    for (int64_t i = 0; i < n; i++) {                                                   \
      const T x = a[i];                                                                 \
      o[i] = (EXPR);                                                                    \
    }                                                                                   \
  }
static inline float clamp01f(float v) {
  v = v < 0 ? 0 : v;
  return v > 1 ? 1 : v;
}
static inline double clamp01d(double v) {
  v = v < 0 ? 0 : v;
  return v > 1 ? 1 : v;
}
#define CLAMP01(v) _Generic((v), float: clamp01f, default: clamp01d)(v)
#define X_ACT(dt, T, sfx, W, OP, EXPR) ACT_KERNEL(OP##_##sfx, T, EXPR)
#define DEF_ACT(OP, EXPR) MI_EW_FLOAT(X_ACT, OP, EXPR)

DEF_ACT(Relu, x < 0 ? 0 : x) /* NaN stays NaN */
/* Written as value selects feeding unconditional arithmetic: GCC does not
 * if-convert a conditional float multiply (-ftrapping-math), which would keep
 * the loop scalar.  Exact: one of the two terms is +0. */
DEF_ACT(LeakyRelu, (x < 0 ? 0 : x) + alpha * (x < 0 ? x : 0))
/* float through the vectorised mi_sigmoid_floats (common/vecmath.h). */
static void Sigmoid_f32(const void *prm, const char *const *in, const int64_t *s, char *out, int64_t n) {
  (void)prm;
  (void)s;
  mi_sigmoid_floats((const float *)in[0], (float *)out, (size_t)n);
}
ACT_KERNEL(Sigmoid_f64, double, 1 / (1 + exp(-x)))
DEF_ACT(Tanh, MI_FM(tanh, x))
/* expm1 keeps accuracy for small |x| where exp(x) - 1 cancels. */
DEF_ACT(Elu, x < 0 ? alpha * MI_FM(expm1, x) : x)
DEF_ACT(Selu, x <= 0 ? gamma * (alpha * MI_FM(expm1, x)) : gamma * x)
DEF_ACT(Celu, x > 0 ? x : alpha * MI_FM(expm1, x / alpha))
/* log(1 + exp(x)) without overflow for large x. */
DEF_ACT(Softplus, x > 0 ? x + MI_FM(log1p, MI_FM(exp, -x)) : MI_FM(log1p, MI_FM(exp, x)))
DEF_ACT(Softsign, x / (1 + MI_FM(fabs, x)))
DEF_ACT(HardSigmoid, CLAMP01(alpha * x + beta))
DEF_ACT(HardSwish, x * CLAMP01(alpha * x + beta))
DEF_ACT(ThresholdedRelu, x > alpha ? x : 0)
/* Shrink: alpha = lambd, beta = bias. */
DEF_ACT(Shrink, x < -alpha ? x + beta : x > alpha ? x - beta : 0)

/* Integer Relu (opset 14) and Shrink (any numeric type; bias applied in
 * double and converted back without overflow UB). */
#define X_IRELU(dt, T, sfx, W, OP) MI_EW_UN_KERNEL(Relu_##sfx, T, W, 1, T, x < 0 ? 0 : x)
MI_EW_SINT(X_IRELU, _)
#define ISHRINK_KERNEL(T, sfx)                                                               \
  static void Shrink_##sfx(const void *prm, const char *const *in, const int64_t *s,         \
                           char *out, int64_t n) {                                           \
    (void)s;                                                                                 \
    const act_priv *p = prm;                                                                 \
    const double l = p->alpha, b = p->beta;                                                  \
    const T *a = (const T *)in[0];                                                           \
    T *o = (T *)out;                                                                         \
    for (int64_t i = 0; i < n; i++) {                                                        \
      const double x = (double)a[i];                                                         \
      o[i] = x < -l ? (T)mi_ew_d2i(x + b) : x > l ? (T)mi_ew_d2i(x - b) : (T)0;              \
    }                                                                                        \
  }
#define X_ISHRINK(dt, T, sfx, W, _) ISHRINK_KERNEL(T, sfx)
MI_EW_SINT(X_ISHRINK, _)
MI_EW_UINT(X_ISHRINK, _)

typedef mi_ew_kernel act_table[MI_EW_NDT];
#define TAB_F(OP) {MI_EW_FLOAT(MI_EW_ENTRY, OP)}

static const act_table Relu_tab = {MI_EW_FLOAT(MI_EW_ENTRY, Relu) MI_EW_SINT(MI_EW_ENTRY, Relu)};
static const act_table Shrink_tab = {MI_EW_FLOAT(MI_EW_ENTRY, Shrink) MI_EW_SINT(MI_EW_ENTRY, Shrink)
                                         MI_EW_UINT(MI_EW_ENTRY, Shrink)};
#define DEF_TAB(OP) static const act_table OP##_tab = TAB_F(OP);
DEF_TAB(LeakyRelu)
DEF_TAB(Sigmoid)
DEF_TAB(Tanh)
DEF_TAB(Elu)
DEF_TAB(Selu)
DEF_TAB(Celu)
DEF_TAB(Softplus)
DEF_TAB(Softsign)
DEF_TAB(HardSigmoid)
DEF_TAB(HardSwish)
DEF_TAB(ThresholdedRelu)

typedef struct act_desc {
  const char *op_type;
  const mi_ew_kernel *tab;
  /* attribute names and defaults mapped to alpha, beta, gamma */
  const char *a_name, *b_name, *g_name;
  float a_def, b_def, g_def;
  int64_t grain;
} act_desc;

enum { G_CHEAP = MI_EW_GRAIN_CHEAP, G_MATH = MI_EW_GRAIN_MATH };

static const act_desc descs[] = {
    {"Relu", Relu_tab, NULL, NULL, NULL, 0, 0, 0, G_CHEAP},
    {"LeakyRelu", LeakyRelu_tab, "alpha", NULL, NULL, 0.01f, 0, 0, G_CHEAP},
    {"Sigmoid", Sigmoid_tab, NULL, NULL, NULL, 0, 0, 0, G_MATH},
    {"Tanh", Tanh_tab, NULL, NULL, NULL, 0, 0, 0, G_MATH},
    {"Elu", Elu_tab, "alpha", NULL, NULL, 1.0f, 0, 0, G_MATH},
    {"Selu", Selu_tab, "alpha", NULL, "gamma", 1.67326319217681884765625f, 0,
     1.05070102214813232421875f, G_MATH},
    {"Celu", Celu_tab, "alpha", NULL, NULL, 1.0f, 0, 0, G_MATH},
    {"Softplus", Softplus_tab, NULL, NULL, NULL, 0, 0, 0, G_MATH},
    {"Softsign", Softsign_tab, NULL, NULL, NULL, 0, 0, 0, G_CHEAP},
    {"HardSigmoid", HardSigmoid_tab, "alpha", "beta", NULL, 0.2f, 0.5f, 0, G_CHEAP},
    {"HardSwish", HardSwish_tab, NULL, NULL, NULL, 1.0f / 6.0f, 0.5f, 0, G_CHEAP},
    {"ThresholdedRelu", ThresholdedRelu_tab, "alpha", NULL, NULL, 1.0f, 0, 0, G_CHEAP},
    {"Shrink", Shrink_tab, "lambd", "bias", NULL, 0.5f, 0.0f, 0, G_CHEAP},
    {"PRelu", NULL, NULL, NULL, NULL, 0, 0, 0, G_CHEAP},
    {"Clip", NULL, "min", "max", NULL, -FLT_MAX, FLT_MAX, 0, G_CHEAP},
};

static mi_status *act_init(mi_node *n, mi_graph *g) {
  (void)g;
  const act_desc *d = NULL;
  for (size_t i = 0; i < sizeof descs / sizeof descs[0]; i++)
    if (strcmp(descs[i].op_type, n->op_type) == 0) d = &descs[i];
  if (!d) return mi_node_error(n, MI_ERR_INTERNAL, "no activation kernel for this operator");
  act_priv *p = calloc(1, sizeof *p);
  if (!p) return mi_node_error(n, MI_ERR_NO_MEMORY, "out of memory");
  p->d = d;
  p->alpha = d->a_name ? mi_attr_float(n, d->a_name, d->a_def) : d->a_def;
  p->beta = d->b_name ? mi_attr_float(n, d->b_name, d->b_def) : d->b_def;
  p->gamma = d->g_name ? mi_attr_float(n, d->g_name, d->g_def) : d->g_def;
  n->priv = p;
  if (strcmp(d->op_type, "Celu") == 0 && p->alpha == 0)
    return mi_node_error(n, MI_ERR_INVALID_MODEL, "alpha must be nonzero");
  if (strcmp(d->op_type, "Shrink") == 0 && !(p->alpha >= 0))
    return mi_node_error(n, MI_ERR_INVALID_MODEL, "lambd must be >= 0, got %g",
                         (double)p->alpha);
  return NULL;
}

static mi_status *need_x(const mi_node *n, mi_tensor *const *in) {
  if (n->n_in < 1 || !in[0]) return mi_node_error(n, MI_ERR_INVALID_MODEL, "input X is missing");
  return NULL;
}

static mi_status *type_error(const mi_node *n, mi_dtype dt) {
  return mi_node_error(n, MI_ERR_UNSUPPORTED, "element type %s not supported",
                       mi_dtype_name(dt));
}

static mi_status *act_infer(mi_node *n, mi_tensor *const *in, mi_tensor **out) {
  const act_priv *p = n->priv;
  MI_TRY(need_x(n, in));
  mi_dtype dt = in[0]->dtype;
  if ((unsigned)dt >= MI_EW_NDT || !p->d->tab[dt]) return type_error(n, dt);
  mi_tensor_set_shape(out[0], dt, in[0]->ndim, in[0]->dims);
  return NULL;
}

static mi_status *act_run(mi_node *n, mi_exec *ex, mi_tensor *const *in, mi_tensor **out) {
  const act_priv *p = n->priv;
  const mi_tensor *ins[1] = {in[0]};
  if (!mi_ew_run(ex, out[0], 1, ins, p->d->tab[in[0]->dtype], p, p->d->grain))
    return mi_node_error(n, MI_ERR_SHAPE, "output shape differs from the input's");
  return NULL;
}

/* ---- PRelu ------------------------------------------------------------- */
#define X_PRELU_F(dt, T, sfx, W, _) \
  MI_EW_BIN_KERNEL(PRelu_##sfx, T, W, 0, T, (x < 0 ? 0 : x) + y * (x < 0 ? x : 0))
#define X_PRELU_S(dt, T, sfx, W, _) \
  MI_EW_BIN_KERNEL(PRelu_##sfx, T, W, 1, T, x < 0 ? (T_)((W_)y * (W_)x) : x)
#define X_PRELU_U(dt, T, sfx, W, _) MI_EW_BIN_KERNEL(PRelu_##sfx, T, W, 0, T, ((void)y, x)) /* x >= 0 */
MI_EW_FLOAT(X_PRELU_F, _)
MI_EW_SINT(X_PRELU_S, _)
MI_EW_UINT(X_PRELU_U, _)
static const act_table PRelu_tab = {MI_EW_FLOAT(MI_EW_ENTRY, PRelu) MI_EW_SINT(MI_EW_ENTRY, PRelu)
                                        MI_EW_UINT(MI_EW_ENTRY, PRelu)};

/* Slope as broadcast to X.  Opset < 7 PRelu (PyTorch exports) gives a 1-D
 * per-channel slope of length C for X of shape [N, C, ...]. */
static mi_status *prelu_slope(const mi_node *n, mi_tensor *const *in, mi_tensor *slope) {
  const mi_tensor *x = in[0];
  *slope = *in[1];
  if (n->opset < 7 && slope->ndim == 1 && x->ndim >= 2 && slope->dims[0] == x->dims[1] &&
      slope->dims[0] != 1) {
    slope->ndim = x->ndim - 1;
    for (int i = 1; i < slope->ndim; i++) slope->dims[i] = 1;
  }
  if (!mi_ew_broadcasts_to(slope, x->ndim, x->dims)) {
    char sx[96], ss[96];
    return mi_node_error(n, MI_ERR_SHAPE, "slope (%s) does not broadcast to X (%s)",
                         mi_shape_str(in[1], ss, sizeof ss), mi_shape_str(x, sx, sizeof sx));
  }
  return NULL;
}

static mi_status *prelu_infer(mi_node *n, mi_tensor *const *in, mi_tensor **out) {
  MI_TRY(need_x(n, in));
  if (n->n_in < 2 || !in[1]) return mi_node_error(n, MI_ERR_INVALID_MODEL, "slope is missing");
  mi_dtype dt = in[0]->dtype;
  if (in[1]->dtype != dt)
    return mi_node_error(n, MI_ERR_INVALID_MODEL, "slope type %s differs from X's %s",
                         mi_dtype_name(in[1]->dtype), mi_dtype_name(dt));
  if ((unsigned)dt >= MI_EW_NDT || !PRelu_tab[dt]) return type_error(n, dt);
  mi_tensor slope;
  MI_TRY(prelu_slope(n, in, &slope));
  mi_tensor_set_shape(out[0], dt, in[0]->ndim, in[0]->dims);
  return NULL;
}

static mi_status *prelu_run(mi_node *n, mi_exec *ex, mi_tensor *const *in, mi_tensor **out) {
  mi_tensor slope;
  MI_TRY(prelu_slope(n, in, &slope));
  const mi_tensor *t[2] = {in[0], &slope};
  if (!mi_ew_run(ex, out[0], 2, t, PRelu_tab[in[0]->dtype], NULL, G_CHEAP))
    return mi_node_error(n, MI_ERR_SHAPE, "slope does not broadcast to X");
  return NULL;
}

/* ---- Clip -------------------------------------------------------------- */
/* Bounds come from attributes before opset 11 and from optional scalar
 * inputs from 11.  y = min(max(x, lo), hi), so lo > hi gives hi (ONNX). */
#define X_CLIP(dt, T, sfx, W, _)                                                          \
  static void Clip_##sfx(const void *prm, const char *const *in, const int64_t *s,        \
                         char *out, int64_t n) {                                          \
    (void)s;                                                                              \
    const T lo = ((const T *)prm)[0], hi = ((const T *)prm)[1];                           \
    const T *a = (const T *)in[0];                                                        \
    T *o = (T *)out;                                                                      \
    for (int64_t i = 0; i < n; i++) {                                                     \
      const T v = a[i] < lo ? lo : a[i];                                                  \
      o[i] = v > hi ? hi : v;                                                             \
    }                                                                                     \
  }
MI_EW_FLOAT(X_CLIP, _)
MI_EW_SINT(X_CLIP, _)
MI_EW_UINT(X_CLIP, _)
static const act_table Clip_tab = {MI_EW_FLOAT(MI_EW_ENTRY, Clip) MI_EW_SINT(MI_EW_ENTRY, Clip)
                                       MI_EW_UINT(MI_EW_ENTRY, Clip)};

static mi_status *clip_infer(mi_node *n, mi_tensor *const *in, mi_tensor **out) {
  MI_TRY(need_x(n, in));
  mi_dtype dt = in[0]->dtype;
  if ((unsigned)dt >= MI_EW_NDT || !Clip_tab[dt]) return type_error(n, dt);
  if (n->opset >= 11) {
    for (int i = 1; i < n->n_in && i < 3; i++) {
      if (!in[i]) continue;
      if (in[i]->dtype != dt)
        return mi_node_error(n, MI_ERR_INVALID_MODEL, "%s has type %s, input %s",
                             i == 1 ? "min" : "max", mi_dtype_name(in[i]->dtype),
                             mi_dtype_name(dt));
      if (mi_numel(in[i]->ndim, in[i]->dims) != 1)
        return mi_node_error(n, MI_ERR_SHAPE, "%s must be a scalar", i == 1 ? "min" : "max");
    }
  }
  mi_tensor_set_shape(out[0], dt, in[0]->ndim, in[0]->dims);
  return NULL;
}

/* Bound i (0: min, 1: max) written as type dt into dst. */
static void clip_bound(const mi_node *n, const act_priv *p, mi_tensor *const *in, int i,
                       mi_dtype dt, void *dst) {
  const mi_tensor *t = n->opset >= 11 && n->n_in > i + 1 ? in[i + 1] : NULL;
  if (t) {
    memcpy(dst, t->data, mi_dtype_size(dt));
    return;
  }
  bool attr = n->opset < 11 && mi_node_attr(n, i ? "max" : "min");
  double v = i ? (attr ? p->beta : INFINITY) : (attr ? p->alpha : -INFINITY);
  mi_tensor tmp = {.dtype = dt, .data = dst};
  if (mi_dtype_is_float(dt)) {
    mi_tensor_set_f64(&tmp, 0, v);
    return;
  }
  /* Integer type: saturate the bound to the type's range. */
  int64_t lo, hi;
  uint64_t uhi = 0;
  switch (dt) {
    case MI_INT8: lo = INT8_MIN, hi = INT8_MAX; break;
    case MI_INT16: lo = INT16_MIN, hi = INT16_MAX; break;
    case MI_INT32: lo = INT32_MIN, hi = INT32_MAX; break;
    case MI_UINT8: lo = 0, hi = UINT8_MAX; break;
    case MI_UINT16: lo = 0, hi = UINT16_MAX; break;
    case MI_UINT32: lo = 0, hi = UINT32_MAX; break;
    case MI_UINT64: lo = 0, hi = INT64_MAX, uhi = UINT64_MAX; break;
    default: lo = INT64_MIN, hi = INT64_MAX; break;
  }
  if (dt == MI_UINT64 && v >= 18446744073709551615.0) {
    *(uint64_t *)dst = uhi;
    return;
  }
  int64_t iv = mi_ew_d2i(v < (double)lo ? (double)lo : v);
  if (iv > hi) iv = hi;
  if (iv < lo) iv = lo;
  if (dt == MI_UINT64) *(uint64_t *)dst = (uint64_t)iv;
  else mi_tensor_set_f64(&tmp, 0, (double)iv);
}

static mi_status *clip_run(mi_node *n, mi_exec *ex, mi_tensor *const *in, mi_tensor **out) {
  const act_priv *p = n->priv;
  mi_dtype dt = in[0]->dtype;
  size_t es = mi_dtype_size(dt);
  _Alignas(8) unsigned char bounds[16];
  clip_bound(n, p, in, 0, dt, bounds);
  clip_bound(n, p, in, 1, dt, bounds + es);
  const mi_tensor *ins[1] = {in[0]};
  if (!mi_ew_run(ex, out[0], 1, ins, Clip_tab[dt], bounds, G_CHEAP))
    return mi_node_error(n, MI_ERR_SHAPE, "output shape differs from the input's");
  return NULL;
}

#define ACT(name, opset) {name, opset, MI_OP_INPLACE, act_init, act_infer, act_run, NULL}

const mi_op_def mi_ops_activation[] = {
    ACT("Relu", 6),
    ACT("LeakyRelu", 6),
    ACT("Sigmoid", 6),
    ACT("Tanh", 6),
    ACT("Elu", 6),
    ACT("Selu", 6),
    ACT("Celu", 12),
    ACT("Softplus", 1),
    ACT("Softsign", 1),
    ACT("HardSigmoid", 6),
    ACT("HardSwish", 14),
    ACT("ThresholdedRelu", 10),
    ACT("Shrink", 9),
    {"PRelu", 6, MI_OP_INPLACE, act_init, prelu_infer, prelu_run, NULL},
    {"Clip", 6, MI_OP_INPLACE, act_init, clip_infer, clip_run, NULL},
    {NULL},
};
