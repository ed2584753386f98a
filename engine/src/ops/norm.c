/* BatchNormalization (inference), InstanceNormalization, LayerNormalization,
 * LpNormalization.  (MeanVarianceNormalization lives in reduce.c, which owns
 * the arbitrary-axes reduction machinery it needs.)  Statistics accumulate
 * in double so float32 results stay well inside tolerance for large planes. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gemm/gemm.h"
#include "ops.h"

static bool is_float_type(mi_dtype dt) { return dt == MI_FLOAT || dt == MI_DOUBLE; }

/* Optional outputs: the executor binds scratch for ones the graph drops, so
 * infer must shape every output it is handed. */
static bool has_output(const mi_node *n, mi_tensor **out, int i) {
  return i < n->n_out && out[i];
}

/* Copy a float/double parameter tensor into a double array. */
static void load_params(const mi_tensor *t, double *dst, int64_t n) {
  if (t->dtype == MI_FLOAT) {
    const float *p = t->data;
    for (int64_t i = 0; i < n; i++) dst[i] = p[i];
  } else if (t->dtype == MI_DOUBLE) {
    memcpy(dst, t->data, (size_t)n * sizeof(double));
  } else {
    for (int64_t i = 0; i < n; i++) dst[i] = mi_tensor_get_f64(t, i);
  }
}

/* ---- BatchNormalization ------------------------------------------------- */

typedef struct bn_attr {
  float eps;
  bool spatial; /* opset < 9: false means per-(C, D1..Dn) statistics */
} bn_attr;

static mi_status *bn_init(mi_node *n, mi_graph *g) {
  (void)g;
  if (mi_attr_int(n, "training_mode", 0) != 0)
    return mi_node_error(n, MI_ERR_UNSUPPORTED,
                         "training_mode=1 (batch statistics, running-stat outputs) is not "
                         "supported: inference engine");
  if (n->opset < 7 && mi_node_attr(n, "is_test") && mi_attr_int(n, "is_test", 0) == 0 &&
      n->n_out > 1)
    return mi_node_error(n, MI_ERR_UNSUPPORTED, "is_test=0 (training) is not supported");
  for (int i = 1; i < n->n_out; i++)
    if (n->out[i] >= 0)
      return mi_node_error(n, MI_ERR_UNSUPPORTED,
                           "training outputs (running/saved mean and variance) are not "
                           "supported: inference engine");
  bn_attr *a = malloc(sizeof *a);
  if (!a) return mi_node_error(n, MI_ERR_NO_MEMORY, "out of memory");
  a->eps = mi_attr_float(n, "epsilon", 1e-5f);
  a->spatial = n->opset >= 9 || mi_attr_int(n, "spatial", 1) != 0;
  n->priv = a;
  return NULL;
}

static mi_status *bn_infer(mi_node *n, mi_tensor *const *in, mi_tensor **out) {
  const bn_attr *a = n->priv;
  if (n->n_in < 5) return mi_node_error(n, MI_ERR_INVALID_MODEL, "needs 5 inputs");
  for (int i = 0; i < 5; i++)
    if (!in[i]) return mi_node_error(n, MI_ERR_INVALID_MODEL, "input %d missing", i);
  const mi_tensor *X = in[0];
  if (!is_float_type(X->dtype))
    return mi_node_error(n, MI_ERR_UNSUPPORTED, "element type %s not supported",
                         mi_dtype_name(X->dtype));
  if (X->ndim < 2) return mi_node_error(n, MI_ERR_SHAPE, "input rank must be >= 2");
  int64_t expect = a->spatial ? X->dims[1] : mi_numel(X->ndim - 1, X->dims + 1);
  for (int i = 1; i < 5; i++) {
    if (!is_float_type(in[i]->dtype))
      return mi_node_error(n, MI_ERR_UNSUPPORTED, "parameter %d has element type %s", i,
                           mi_dtype_name(in[i]->dtype));
    if (mi_numel(in[i]->ndim, in[i]->dims) != expect)
      return mi_node_error(n, MI_ERR_SHAPE, "parameter %d has %lld elements, expected %lld", i,
                           (long long)mi_numel(in[i]->ndim, in[i]->dims), (long long)expect);
  }
  mi_tensor_set_shape(out[0], X->dtype, X->ndim, X->dims);
  /* Dropped training outputs (opset < 14 lists them as ""): shape only. */
  for (int i = 1; i < n->n_out; i++)
    if (out[i]) mi_tensor_set_shape(out[i], X->dtype, 1, &expect);
  return NULL;
}

/* Fused activation on a float64 output (mi_activation_apply is float32). */
static void act_f64(const mi_activation *a, double *y, int64_t n) {
  for (int64_t i = 0; i < n; i++) {
    double v = y[i];
    switch (a->kind) {
    case MI_ACT_RELU: v = v > 0 ? v : 0; break;
    case MI_ACT_LEAKY_RELU: v = v >= 0 ? v : v * a->alpha; break;
    case MI_ACT_CLIP: /* min > max gives max, as Clip */
      v = v < a->alpha ? a->alpha : v;
      v = v > a->beta ? a->beta : v;
      break;
    case MI_ACT_SIGMOID: v = 1.0 / (1.0 + exp(-v)); break;
    case MI_ACT_TANH: v = tanh(v); break;
    default: break;
    }
    y[i] = v;
  }
}

typedef struct affine_task {
  const void *x;
  void *y;
  const double *a, *b; /* y = x*a + b, per channel (or per channel element) */
  int64_t C, inner;
  bool per_elem;       /* a/b indexed by c*inner + k */
  bool dbl;
  const float *res;    /* fused residual (float32), NULL: none */
  const mi_activation *act;
} affine_task;

static void affine_planes(void *ctx, int64_t p0, int64_t p1) {
  const affine_task *t = ctx;
  for (int64_t p = p0; p < p1; p++) {
    int64_t c = p % t->C, off = p * t->inner;
    if (t->per_elem) {
      const double *a = t->a + c * t->inner, *b = t->b + c * t->inner;
      if (t->dbl) {
        const double *x = (const double *)t->x + off;
        double *y = (double *)t->y + off;
        for (int64_t k = 0; k < t->inner; k++) y[k] = x[k] * a[k] + b[k];
      } else {
        const float *x = (const float *)t->x + off;
        float *y = (float *)t->y + off;
        for (int64_t k = 0; k < t->inner; k++) y[k] = (float)(x[k] * a[k] + b[k]);
      }
    } else if (t->dbl) {
      const double *x = (const double *)t->x + off;
      double *y = (double *)t->y + off;
      double a = t->a[c], b = t->b[c];
      for (int64_t k = 0; k < t->inner; k++) y[k] = x[k] * a + b;
    } else {
      const float *x = (const float *)t->x + off;
      float *y = (float *)t->y + off;
      float a = (float)t->a[c], b = (float)t->b[c];
      for (int64_t k = 0; k < t->inner; k++) y[k] = x[k] * a + b;
    }
    /* Fused epilogue (graph passes), on the plane while it is in cache. */
    if (t->dbl) {
      if (t->act) act_f64(t->act, (double *)t->y + off, t->inner);
    } else {
      float *y = (float *)t->y + off;
      if (t->res)
        for (int64_t k = 0; k < t->inner; k++) y[k] += t->res[off + k];
      if (t->act) mi_activation_apply(t->act, y, t->inner);
    }
  }
}

static mi_status *bn_run(mi_node *n, mi_exec *ex, mi_tensor *const *in, mi_tensor **out) {
  const bn_attr *a = n->priv;
  const mi_tensor *X = in[0];
  int64_t N = X->dims[0], C = X->dims[1], inner = mi_numel(X->ndim - 2, X->dims + 2);
  int64_t P = a->spatial ? C : C * inner;
  double *buf = mi_exec_scratch(ex, (size_t)(P > 0 ? P : 1) * 4 * sizeof(double));
  if (!buf) return mi_node_error(n, MI_ERR_NO_MEMORY, "out of memory");
  double *sc = buf, *bi = buf + P, *mean = buf + 2 * P, *var = buf + 3 * P;
  load_params(in[1], sc, P);
  load_params(in[2], bi, P);
  load_params(in[3], mean, P);
  load_params(in[4], var, P);
  /* Fold into one multiply-add per element: y = x*s' + (b - mean*s'). */
  for (int64_t i = 0; i < P; i++) {
    double s = sc[i] / sqrt(var[i] + (double)a->eps);
    sc[i] = s;
    bi[i] = bi[i] - mean[i] * s;
  }
  const mi_tensor *res = n->fused_add >= 0 ? in[n->n_in] : NULL;
  if (res && (X->dtype != MI_FLOAT || res->dtype != MI_FLOAT ||
              mi_numel(res->ndim, res->dims) != mi_numel(X->ndim, X->dims))) {
    mi_exec_scratch_release(ex, buf);
    return mi_node_error(n, MI_ERR_SHAPE, "fused residual does not match the output");
  }
  affine_task t = {X->data, out[0]->data, sc, bi, C, inner, !a->spatial, X->dtype == MI_DOUBLE,
                   res ? res->data : NULL, n->act.kind != MI_ACT_NONE ? &n->act : NULL};
  mi_parallel_for(ex, N * C, inner >= 4096 ? 1 : 4096 / (inner + 1) + 1, affine_planes, &t);
  mi_exec_scratch_release(ex, buf);
  return NULL;
}

/* ---- InstanceNormalization ---------------------------------------------- */

static mi_status *in_infer(mi_node *n, mi_tensor *const *in, mi_tensor **out) {
  if (n->n_in < 3 || !in[0] || !in[1] || !in[2])
    return mi_node_error(n, MI_ERR_INVALID_MODEL, "needs inputs input, scale and B");
  const mi_tensor *X = in[0];
  if (!is_float_type(X->dtype))
    return mi_node_error(n, MI_ERR_UNSUPPORTED, "element type %s not supported",
                         mi_dtype_name(X->dtype));
  if (X->ndim < 2) return mi_node_error(n, MI_ERR_SHAPE, "input rank must be >= 2");
  for (int i = 1; i < 3; i++) {
    if (!is_float_type(in[i]->dtype))
      return mi_node_error(n, MI_ERR_UNSUPPORTED, "parameter %d has element type %s", i,
                           mi_dtype_name(in[i]->dtype));
    if (mi_numel(in[i]->ndim, in[i]->dims) != X->dims[1])
      return mi_node_error(n, MI_ERR_SHAPE, "%s has %lld elements, expected C=%lld",
                           i == 1 ? "scale" : "B", (long long)mi_numel(in[i]->ndim, in[i]->dims),
                           (long long)X->dims[1]);
  }
  mi_tensor_set_shape(out[0], X->dtype, X->ndim, X->dims);
  return NULL;
}

/* Mean and variance of a contiguous run, two passes in double. */
#define DEF_MOMENTS(NAME, T)                                                  \
  static void NAME(const T *x, int64_t n, double *mean, double *var) {      \
    double s = 0;                                                           \
    for (int64_t i = 0; i < n; i++) s += x[i];                              \
    double m = n ? s / (double)n : 0, v = 0;                                \
    for (int64_t i = 0; i < n; i++) {                                       \
      double d = x[i] - m;                                                  \
      v += d * d;                                                           \
    }                                                                       \
    *mean = m;                                                              \
    *var = n ? v / (double)n : 0;                                           \
  }
DEF_MOMENTS(moments_f32, float)
DEF_MOMENTS(moments_f64, double)

/* float32 moments, vectorisable: 16 independent float lanes over a block of
 * at most MOM_BLOCK elements (x less m, squared when sq), summed in double. */
#define MOM_LANES 16
#define MOM_BLOCK 4096
#define AI inline __attribute__((always_inline))
static AI double block_sum(const float *x, int64_t n, float m, bool sq) {
  float acc[MOM_LANES] = {0};
  int64_t i = 0;
  if (sq)
    for (; i + MOM_LANES <= n; i += MOM_LANES)
      for (int l = 0; l < MOM_LANES; l++) {
        float d = x[i + l] - m;
        acc[l] += d * d;
      }
  else
    for (; i + MOM_LANES <= n; i += MOM_LANES)
      for (int l = 0; l < MOM_LANES; l++) acc[l] += x[i + l];
  double part = 0;
  for (int l = 0; l < MOM_LANES; l++) part += acc[l];
  for (; i < n; i++) part += sq ? (double)(x[i] - m) * (double)(x[i] - m) : (double)x[i];
  return part;
}

/* One read of x from memory: each block's sum, then its squares about its
 * own mean while it is in L1, the blocks combined in double (Chan et al.'s
 * pairwise update), as exact as two passes over the whole plane: a 96^3
 * InstanceNormalization plane is 3.5 MB, read twice before. */
static AI void moments_f32_fast(const float *x, int64_t n, double *mean, double *var) {
  double cnt = 0, m = 0, m2 = 0;
  for (int64_t b = 0; b < n; b += MOM_BLOCK) {
    const int64_t len = n - b < MOM_BLOCK ? n - b : MOM_BLOCK;
    const double bm = block_sum(x + b, len, 0.f, false) / (double)len, d0 = bm - (double)(float)bm;
    /* squares about the float mean, less the offset's share: about bm */
    const double bm2 = block_sum(x + b, len, (float)bm, true) - (double)len * d0 * d0;
    const double tot = cnt + (double)len, delta = bm - m;
    m += delta * (double)len / tot;
    m2 += (bm2 > 0 ? bm2 : 0) + delta * delta * cnt * (double)len / tot;
    cnt = tot;
  }
  *mean = m;
  *var = n ? m2 / (double)n : 0;
}

typedef struct inorm_task {
  const void *x;
  void *y;
  const double *scale, *bias;
  int64_t C, inner;
  double eps;
  bool dbl;
  const float *res;        /* fused residual (float32), NULL: none */
  const mi_activation *act;
} inorm_task;

/* One float32 plane: moments, then normalise, residual and activation a
 * cache-sized piece at a time (ReLU and LeakyReLU in the same loop). */
static AI void inorm_plane_f32(const inorm_task *t, int64_t p) {
  const int64_t c = p % t->C, off = p * t->inner;
  const float *x = (const float *)t->x + off;
  float *y = (float *)t->y + off;
  double m, v;
  moments_f32_fast(x, t->inner, &m, &v);
  const double s = t->scale[c] / sqrt(v + t->eps);
  const float sf = (float)s, bf = (float)(t->bias[c] - m * s);
  const int kind = t->act ? t->act->kind : MI_ACT_NONE;
  const float lo = t->act ? t->act->alpha : 0.f;
  const bool inline_act = kind == MI_ACT_NONE || kind == MI_ACT_RELU || kind == MI_ACT_LEAKY_RELU;
  for (int64_t k0 = 0; k0 < t->inner; k0 += MOM_BLOCK) {
    const int64_t len = t->inner - k0 < MOM_BLOCK ? t->inner - k0 : MOM_BLOCK;
    float *yk = y + k0;
    const float *xk = x + k0, *r = t->res ? t->res + off + k0 : NULL;
    if (r)
      for (int64_t k = 0; k < len; k++) yk[k] = xk[k] * sf + bf + r[k];
    else
      for (int64_t k = 0; k < len; k++) yk[k] = xk[k] * sf + bf;
    if (kind == MI_ACT_RELU)
      for (int64_t k = 0; k < len; k++) yk[k] = yk[k] > 0.f ? yk[k] : 0.f;
    else if (kind == MI_ACT_LEAKY_RELU) /* branch-free: the sign of normalised data is a coin flip */
      mi_leaky_relu(yk, len, lo);
    else if (!inline_act)
      mi_activation_apply(t->act, yk, len);
  }
}

#if defined(__x86_64__) && defined(__GNUC__)
/* The same loops compiled for AVX-512 (this file's baseline is SSE2): a 96^3
 * plane's three passes ran at about 4 cycles a value. */
__attribute__((target("avx512f,fma"))) static void inorm_plane_avx512(const inorm_task *t, int64_t p) {
  inorm_plane_f32(t, p);
}
/* And for AVX2 (InstanceNorm + LeakyReLU on 32 x 96^3, 2 threads: 27.8 ms,
 * the SSE2 build 51). */
__attribute__((target("avx2,fma"))) static void inorm_plane_avx2(const inorm_task *t, int64_t p) {
  inorm_plane_f32(t, p);
}
#endif
static void inorm_plane_plain(const inorm_task *t, int64_t p) { inorm_plane_f32(t, p); }

static void inorm_planes(void *ctx, int64_t p0, int64_t p1) {
  const inorm_task *t = ctx;
#if defined(__x86_64__) && defined(__GNUC__)
  const bool avx512 = !t->dbl && mi_isa_level() == MI_ISA_AVX512, avx2 = !t->dbl && mi_isa_level() == MI_ISA_AVX2;
#else
  const bool avx512 = false, avx2 = false;
#endif
  for (int64_t p = p0; p < p1; p++) {
    if (!t->dbl) {
#if defined(__x86_64__) && defined(__GNUC__)
      if (avx512) {
        inorm_plane_avx512(t, p);
        continue;
      }
      if (avx2) {
        inorm_plane_avx2(t, p);
        continue;
      }
#endif
      inorm_plane_plain(t, p);
      continue;
    }
    const int64_t c = p % t->C, off = p * t->inner;
    const double *x = (const double *)t->x + off;
    double *y = (double *)t->y + off;
    double m, v;
    moments_f64(x, t->inner, &m, &v);
    double s = t->scale[c] / sqrt(v + t->eps), b = t->bias[c] - m * s;
    for (int64_t k = 0; k < t->inner; k++) y[k] = x[k] * s + b;
    if (t->act) act_f64(t->act, y, t->inner);
  }
}

static mi_status *in_run(mi_node *n, mi_exec *ex, mi_tensor *const *in, mi_tensor **out) {
  const mi_tensor *X = in[0];
  int64_t N = X->dims[0], C = X->dims[1], inner = mi_numel(X->ndim - 2, X->dims + 2);
  double *buf = mi_exec_scratch(ex, (size_t)(C > 0 ? C : 1) * 2 * sizeof(double));
  if (!buf) return mi_node_error(n, MI_ERR_NO_MEMORY, "out of memory");
  load_params(in[1], buf, C);
  load_params(in[2], buf + C, C);
  const mi_tensor *res = n->fused_add >= 0 ? in[n->n_in] : NULL;
  if (res && X->dtype != MI_FLOAT)
    return mi_node_error(n, MI_ERR_INTERNAL, "fused residual supports float32 only");
  if (res && (res->dtype != MI_FLOAT || mi_numel(res->ndim, res->dims) != mi_numel(X->ndim, X->dims)))
    return mi_node_error(n, MI_ERR_SHAPE, "fused residual does not match the output shape");
  inorm_task t = {X->data, out[0]->data, buf, buf + C, C, inner,
                  (double)mi_attr_float(n, "epsilon", 1e-5f), X->dtype == MI_DOUBLE,
                  res ? res->data : NULL, n->act.kind != MI_ACT_NONE ? &n->act : NULL};
  mi_parallel_for(ex, N * C, inner >= 4096 ? 1 : 4096 / (inner + 1) + 1, inorm_planes, &t);
  mi_exec_scratch_release(ex, buf);
  return NULL;
}

/* ---- LayerNormalization (opset 17) -------------------------------------- */

static int ln_axis(const mi_node *n, int rank) {
  int64_t ax = mi_attr_int(n, "axis", -1);
  if (ax < 0) ax += rank;
  return ax < 0 || ax >= rank ? -1 : (int)ax;
}

static mi_status *ln_init(mi_node *n, mi_graph *g) {
  (void)g;
  int64_t st = mi_attr_int(n, "stash_type", 1);
  if (st != MI_FLOAT && st != MI_DOUBLE)
    return mi_node_error(n, MI_ERR_UNSUPPORTED, "stash_type %lld not supported", (long long)st);
  return NULL;
}

static mi_status *ln_infer(mi_node *n, mi_tensor *const *in, mi_tensor **out) {
  if (n->n_in < 2 || !in[0] || !in[1])
    return mi_node_error(n, MI_ERR_INVALID_MODEL, "needs inputs X and Scale");
  const mi_tensor *X = in[0];
  if (!is_float_type(X->dtype))
    return mi_node_error(n, MI_ERR_UNSUPPORTED, "element type %s not supported",
                         mi_dtype_name(X->dtype));
  int ax = ln_axis(n, X->ndim);
  if (ax < 0)
    return mi_node_error(n, MI_ERR_SHAPE, "axis %lld out of range for rank %d",
                         (long long)mi_attr_int(n, "axis", -1), X->ndim);
  /* Scale and B broadcast unidirectionally to X.shape[axis:]. */
  int nr = X->ndim - ax;
  for (int i = 1; i < 3 && i < n->n_in; i++) {
    const mi_tensor *p = in[i];
    if (!p) continue;
    if (!is_float_type(p->dtype))
      return mi_node_error(n, MI_ERR_UNSUPPORTED, "%s has element type %s",
                           i == 1 ? "Scale" : "B", mi_dtype_name(p->dtype));
    bool ok = p->ndim <= nr;
    for (int d = 0; ok && d < p->ndim; d++) {
      int64_t pd = p->dims[d], xd = X->dims[X->ndim - p->ndim + d];
      ok = pd == 1 || pd == xd;
    }
    if (!ok) {
      char b1[64], b2[64];
      return mi_node_error(n, MI_ERR_SHAPE, "%s of shape %s does not broadcast to the "
                           "normalized shape of %s (axis %d)", i == 1 ? "Scale" : "B",
                           mi_shape_str(p, b1, sizeof b1), mi_shape_str(X, b2, sizeof b2), ax);
    }
  }
  mi_tensor_set_shape(out[0], X->dtype, X->ndim, X->dims);
  int64_t sd[MI_MAX_DIMS];
  for (int d = 0; d < X->ndim; d++) sd[d] = d < ax ? X->dims[d] : 1;
  mi_dtype st = (mi_dtype)mi_attr_int(n, "stash_type", 1);
  for (int i = 1; i < 3; i++)
    if (has_output(n, out, i)) mi_tensor_set_shape(out[i], st, X->ndim, sd);
  return NULL;
}

/* Expand a parameter broadcast over the normalized shape (rank nr, dims nd)
 * into a dense array of `inner` doubles. */
static void expand_param(const mi_tensor *p, int nr, const int64_t *nd, double *dst,
                         int64_t inner) {
  if (!p) return;
  int64_t pn = mi_numel(p->ndim, p->dims);
  if (pn == inner) {
    load_params(p, dst, inner);
    return;
  }
  int64_t st[MI_MAX_DIMS], s = 1;
  for (int d = nr - 1; d >= 0; d--) {
    int pd = d - (nr - p->ndim);
    st[d] = pd < 0 || p->dims[pd] == 1 ? 0 : s;
    if (pd >= 0) s *= p->dims[pd];
  }
  for (int64_t i = 0; i < inner; i++) {
    int64_t rem = i, off = 0;
    for (int d = nr - 1; d >= 0; d--) {
      off += (rem % nd[d]) * st[d];
      rem /= nd[d];
    }
    dst[i] = mi_tensor_get_f64(p, off);
  }
}

typedef struct ln_task {
  const void *x;
  void *y, *mean, *istd; /* mean/istd may be NULL */
  const double *scale, *bias;
  int64_t inner;
  double eps;
  bool dbl, stat_dbl;
} ln_task;

static void ln_rows(void *ctx, int64_t r0, int64_t r1) {
  const ln_task *t = ctx;
  for (int64_t r = r0; r < r1; r++) {
    int64_t off = r * t->inner;
    double m, v;
    if (t->dbl) {
      const double *x = (const double *)t->x + off;
      double *y = (double *)t->y + off;
      moments_f64(x, t->inner, &m, &v);
      double is = 1.0 / sqrt(v + t->eps);
      for (int64_t k = 0; k < t->inner; k++)
        y[k] = (x[k] - m) * is * t->scale[k] + (t->bias ? t->bias[k] : 0.0);
      v = is;
    } else {
      const float *x = (const float *)t->x + off;
      float *y = (float *)t->y + off;
      moments_f32(x, t->inner, &m, &v);
      double is = 1.0 / sqrt(v + t->eps);
      for (int64_t k = 0; k < t->inner; k++)
        y[k] = (float)((x[k] - m) * is * t->scale[k] + (t->bias ? t->bias[k] : 0.0));
      v = is;
    }
    if (t->mean) {
      if (t->stat_dbl) ((double *)t->mean)[r] = m;
      else ((float *)t->mean)[r] = (float)m;
    }
    if (t->istd) {
      if (t->stat_dbl) ((double *)t->istd)[r] = v;
      else ((float *)t->istd)[r] = (float)v;
    }
  }
}

static mi_status *ln_run(mi_node *n, mi_exec *ex, mi_tensor *const *in, mi_tensor **out) {
  const mi_tensor *X = in[0];
  int ax = ln_axis(n, X->ndim);
  int64_t outer = mi_numel(ax, X->dims), inner = mi_numel(X->ndim - ax, X->dims + ax);
  const mi_tensor *B = n->n_in > 2 ? in[2] : NULL;
  double *buf = mi_exec_scratch(ex, (size_t)(inner > 0 ? inner : 1) * 2 * sizeof(double));
  if (!buf) return mi_node_error(n, MI_ERR_NO_MEMORY, "out of memory");
  expand_param(in[1], X->ndim - ax, X->dims + ax, buf, inner);
  expand_param(B, X->ndim - ax, X->dims + ax, buf + inner, inner);
  ln_task t = {X->data,
               out[0]->data,
               has_output(n, out, 1) ? out[1]->data : NULL,
               has_output(n, out, 2) ? out[2]->data : NULL, /* NULL data: not bound */
               buf,
               B ? buf + inner : NULL,
               inner,
               (double)mi_attr_float(n, "epsilon", 1e-5f),
               X->dtype == MI_DOUBLE,
               mi_attr_int(n, "stash_type", 1) == MI_DOUBLE};
  mi_parallel_for(ex, outer, inner >= 4096 ? 1 : 4096 / (inner + 1) + 1, ln_rows, &t);
  mi_exec_scratch_release(ex, buf);
  return NULL;
}

/* ---- LpNormalization ------------------------------------------------------ */

static mi_status *lp_init(mi_node *n, mi_graph *g) {
  (void)g;
  int64_t p = mi_attr_int(n, "p", 2);
  if (p != 1 && p != 2)
    return mi_node_error(n, MI_ERR_UNSUPPORTED, "p=%lld (only 1 and 2 are defined)",
                         (long long)p);
  return NULL;
}

static int lp_axis(const mi_node *n, int rank) {
  int64_t ax = mi_attr_int(n, "axis", -1);
  if (ax < 0) ax += rank;
  return ax < 0 || ax >= rank ? -1 : (int)ax;
}

static mi_status *lp_infer(mi_node *n, mi_tensor *const *in, mi_tensor **out) {
  if (n->n_in < 1 || !in[0]) return mi_node_error(n, MI_ERR_INVALID_MODEL, "needs an input");
  if (!is_float_type(in[0]->dtype))
    return mi_node_error(n, MI_ERR_UNSUPPORTED, "element type %s not supported",
                         mi_dtype_name(in[0]->dtype));
  if (lp_axis(n, in[0]->ndim) < 0)
    return mi_node_error(n, MI_ERR_SHAPE, "axis %lld out of range for rank %d",
                         (long long)mi_attr_int(n, "axis", -1), in[0]->ndim);
  mi_tensor_set_shape(out[0], in[0]->dtype, in[0]->ndim, in[0]->dims);
  return NULL;
}

typedef struct lp_task {
  const void *x;
  void *y;
  double *norm; /* outer*inner accumulators */
  int64_t len, inner;
  int p;
  bool dbl;
} lp_task;

/* One outer slice [len, inner]: accumulate norms row by row so memory is
 * walked contiguously, then scale. */
static void lp_outer(void *ctx, int64_t o0, int64_t o1) {
  const lp_task *t = ctx;
  for (int64_t o = o0; o < o1; o++) {
    double *nrm = t->norm + o * t->inner;
    int64_t base = o * t->len * t->inner;
    for (int64_t i = 0; i < t->inner; i++) nrm[i] = 0;
    for (int64_t l = 0; l < t->len; l++)
      for (int64_t i = 0; i < t->inner; i++) {
        double v = t->dbl ? ((const double *)t->x)[base + l * t->inner + i]
                          : ((const float *)t->x)[base + l * t->inner + i];
        nrm[i] += t->p == 1 ? fabs(v) : v * v;
      }
    for (int64_t i = 0; i < t->inner; i++) {
      double s = t->p == 1 ? nrm[i] : sqrt(nrm[i]);
      nrm[i] = s > 0 ? 1.0 / s : 0.0; /* an all-zero vector stays zero */
    }
    for (int64_t l = 0; l < t->len; l++)
      for (int64_t i = 0; i < t->inner; i++) {
        int64_t k = base + l * t->inner + i;
        if (t->dbl) ((double *)t->y)[k] = ((const double *)t->x)[k] * nrm[i];
        else ((float *)t->y)[k] = (float)(((const float *)t->x)[k] * nrm[i]);
      }
  }
}

static mi_status *lp_run(mi_node *n, mi_exec *ex, mi_tensor *const *in, mi_tensor **out) {
  const mi_tensor *X = in[0];
  int ax = lp_axis(n, X->ndim);
  int64_t outer = mi_numel(ax, X->dims), len = X->dims[ax];
  int64_t inner = mi_numel(X->ndim - ax - 1, X->dims + ax + 1);
  if (outer * inner == 0) return NULL;
  double *nrm = mi_exec_scratch(ex, (size_t)(outer * inner) * sizeof(double));
  if (!nrm) return mi_node_error(n, MI_ERR_NO_MEMORY, "out of memory");
  lp_task t = {X->data, out[0]->data, nrm, len, inner, (int)mi_attr_int(n, "p", 2),
               X->dtype == MI_DOUBLE};
  mi_parallel_for(ex, outer, 1, lp_outer, &t);
  mi_exec_scratch_release(ex, nrm);
  return NULL;
}

const mi_op_def mi_ops_norm[] = {
    {"BatchNormalization", 6, MI_OP_FUSE_ACT, bn_init, bn_infer, bn_run, NULL},
    /* in place: each plane's moments are taken before it is written (a 3D
     * U-Net's 32 x 96^3 output is then not a second 113 MB buffer) */
    {"InstanceNormalization", 1, MI_OP_FUSE_ACT | MI_OP_INPLACE, NULL, in_infer, in_run, NULL},
    {"LayerNormalization", 17, 0, ln_init, ln_infer, ln_run, NULL},
    {"LpNormalization", 1, 0, lp_init, lp_infer, lp_run, NULL},
    {NULL},
};
