/* Reduce* (Sum, Mean, Max, Min, Prod, L1, L2, LogSum, LogSumExp, SumSquare),
 * ArgMax/ArgMin and MeanVarianceNormalization.
 *
 * A reduction over any set of axes is laid out once per run: dims of size 1
 * are dropped and adjacent kept/reduced dims merged.  If the innermost merged
 * dim is reduced it becomes a contiguous run of length L; the remaining
 * reduced dims are enumerated in a small offset table.  Each output element
 * (parallelised) then walks table x run, so trailing-axes reductions (the
 * common case: spatial means) read memory sequentially, and channel-axis
 * reductions read neighbouring addresses across neighbouring outputs. */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ops.h"

typedef enum rkind {
  R_SUM, R_MEAN, R_MAX, R_MIN, R_PROD, R_L1, R_L2, R_LOGSUM, R_LOGSUMEXP, R_SUMSQ, R_MVN
} rkind;

static const struct {
  const char *name;
  rkind kind;
} rnames[] = {
    {"ReduceSum", R_SUM},       {"ReduceMean", R_MEAN},     {"ReduceMax", R_MAX},
    {"ReduceMin", R_MIN},       {"ReduceProd", R_PROD},     {"ReduceL1", R_L1},
    {"ReduceL2", R_L2},         {"ReduceLogSum", R_LOGSUM}, {"ReduceLogSumExp", R_LOGSUMEXP},
    {"ReduceSumSquare", R_SUMSQ}, {"MeanVarianceNormalization", R_MVN},
};

typedef struct rattr {
  rkind kind;
  bool keepdims, noop_empty, axes_input;
  int n_axes;              /* from the attribute; -1: absent */
  int64_t axes[MI_MAX_DIMS];
} rattr;

static mi_status *reduce_init(mi_node *n, mi_graph *g) {
  (void)g;
  rattr *a = calloc(1, sizeof *a);
  if (!a) return mi_node_error(n, MI_ERR_NO_MEMORY, "out of memory");
  a->kind = R_SUM;
  for (size_t i = 0; i < sizeof rnames / sizeof rnames[0]; i++)
    if (strcmp(rnames[i].name, n->op_type) == 0) a->kind = rnames[i].kind;
  a->keepdims = mi_attr_int(n, "keepdims", 1) != 0;
  a->noop_empty = mi_attr_int(n, "noop_with_empty_axes", 0) != 0;
  /* Axes moved from attribute to input: ReduceSum at 13, the others at 18. */
  a->axes_input = a->kind != R_MVN && n->opset >= (a->kind == R_SUM ? 13 : 18);
  const int64_t *ax;
  size_t na = mi_attr_ints(n, "axes", &ax);
  a->n_axes = -1;
  if (a->kind == R_MVN && !mi_node_attr(n, "axes")) {
    static const int64_t def[3] = {0, 2, 3};
    ax = def;
    na = 3;
  }
  if (mi_node_attr(n, "axes")) {
    if (a->axes_input) {
      free(a);
      return mi_node_error(n, MI_ERR_INVALID_MODEL,
                           "axes is an input from this opset, not an attribute");
    }
    if (na > MI_MAX_DIMS) {
      free(a);
      return mi_node_error(n, MI_ERR_SHAPE, "too many axes (%zu)", na);
    }
  }
  if (ax && !a->axes_input) {
    a->n_axes = (int)na;
    memcpy(a->axes, ax, na * sizeof(int64_t));
  }
  n->priv = a;
  return NULL;
}

/* Reduced-axes mask for input rank `rank`; *noop when the op is an identity
 * (empty axes with noop_with_empty_axes). */
static mi_status *reduce_mask(mi_node *n, mi_tensor *const *in, int rank, unsigned *mask,
                              bool *noop) {
  const rattr *a = n->priv;
  int64_t axes[MI_MAX_DIMS];
  int na = -1;
  *noop = false;
  if (a->axes_input) {
    const mi_tensor *t = n->n_in > 1 ? in[1] : NULL;
    if (t) {
      if (!t->data)
        return mi_node_error(n, MI_ERR_UNSUPPORTED,
                             "'axes' decides the output shape but its value is not known "
                             "while planning (it must be a constant or computed from shapes)");
      if (t->dtype != MI_INT64 && t->dtype != MI_INT32)
        return mi_node_error(n, MI_ERR_INVALID_MODEL, "axes must be int64");
      int64_t cnt = mi_numel(t->ndim, t->dims);
      if (cnt > rank || cnt > MI_MAX_DIMS)
        return mi_node_error(n, MI_ERR_SHAPE, "%lld axes for rank %d", (long long)cnt, rank);
      for (int64_t i = 0; i < cnt; i++) axes[i] = mi_tensor_get_i64(t, i);
      na = (int)cnt;
    }
  } else if (a->n_axes >= 0) {
    na = a->n_axes;
    memcpy(axes, a->axes, sizeof(int64_t) * (size_t)na);
  }
  if (na <= 0) {
    if (na == 0 && a->noop_empty) *noop = true;
    else if (na < 0 && a->noop_empty && a->axes_input) *noop = true;
    *mask = *noop ? 0u : (rank ? (1u << rank) - 1u : 0u);
    return NULL;
  }
  *mask = 0;
  for (int i = 0; i < na; i++) {
    int64_t ax = axes[i] < 0 ? axes[i] + rank : axes[i];
    if (ax < 0 || ax >= rank)
      return mi_node_error(n, MI_ERR_SHAPE, "axis %lld out of range for rank %d",
                           (long long)axes[i], rank);
    if (*mask & (1u << ax))
      return mi_node_error(n, MI_ERR_INVALID_MODEL, "axis %lld repeated", (long long)axes[i]);
    *mask |= 1u << ax;
  }
  return NULL;
}

static bool reduce_dtype_ok(mi_dtype dt) { return dt != MI_BOOL && mi_dtype_size(dt) != 0; }

static mi_status *reduce_infer(mi_node *n, mi_tensor *const *in, mi_tensor **out) {
  const rattr *a = n->priv;
  if (n->n_in < 1 || !in[0]) return mi_node_error(n, MI_ERR_INVALID_MODEL, "needs an input");
  const mi_tensor *X = in[0];
  if (!reduce_dtype_ok(X->dtype) ||
      (a->kind == R_MVN && X->dtype != MI_FLOAT && X->dtype != MI_DOUBLE))
    return mi_node_error(n, MI_ERR_UNSUPPORTED, "element type %s not supported",
                         mi_dtype_name(X->dtype));
  unsigned mask;
  bool noop;
  MI_TRY(reduce_mask(n, in, X->ndim, &mask, &noop));
  if (a->kind == R_MVN) {
    mi_tensor_set_shape(out[0], X->dtype, X->ndim, X->dims);
    return NULL;
  }
  int64_t od[MI_MAX_DIMS];
  int nd = 0;
  for (int d = 0; d < X->ndim; d++) {
    if (!(mask & (1u << d))) od[nd++] = X->dims[d];
    else if (a->keepdims) od[nd++] = 1;
    else if (X->dims[d] == 0 && (a->kind == R_MAX || a->kind == R_MIN))
      return mi_node_error(n, MI_ERR_SHAPE, "cannot take max/min over an empty axis");
  }
  mi_tensor_set_shape(out[0], X->dtype, nd, od);
  return NULL;
}

/* Layout of one reduction (see the file comment). */
typedef struct rlayout {
  int nk;                      /* kept merged dims */
  int64_t kd[MI_MAX_DIMS], ks[MI_MAX_DIMS];
  int64_t L;                   /* contiguous reduced run (1 if none) */
  int64_t *roff;               /* offsets of the other reduced elements */
  int64_t nroff;
  int64_t count;               /* reduced elements per output */
  int64_t nout;
} rlayout;

/* Build the layout; roff is allocated from scratch (caller releases). */
static mi_status *make_layout(mi_node *n, mi_exec *ex, const mi_tensor *X, unsigned mask,
                              rlayout *l) {
  int m = 0;
  int64_t md[MI_MAX_DIMS], ms[MI_MAX_DIMS];
  bool mr[MI_MAX_DIMS];
  int64_t stride = 1, st[MI_MAX_DIMS];
  for (int d = X->ndim - 1; d >= 0; d--) {
    st[d] = stride;
    stride *= X->dims[d];
  }
  for (int d = 0; d < X->ndim; d++) {
    if (X->dims[d] == 1) continue;
    bool r = (mask >> d) & 1u;
    if (m > 0 && mr[m - 1] == r && ms[m - 1] == st[d] * X->dims[d]) {
      md[m - 1] *= X->dims[d];
      ms[m - 1] = st[d];
    } else {
      md[m] = X->dims[d];
      ms[m] = st[d];
      mr[m] = r;
      m++;
    }
  }
  l->nk = 0;
  l->L = 1;
  l->count = 1;
  l->nout = 1;
  int nr = 0;
  int64_t rd[MI_MAX_DIMS], rs[MI_MAX_DIMS];
  for (int i = 0; i < m; i++) {
    if (mr[i]) {
      l->count *= md[i];
      if (i == m - 1 && ms[i] == 1) l->L = md[i];
      else {
        rd[nr] = md[i];
        rs[nr++] = ms[i];
      }
    } else {
      l->kd[l->nk] = md[i];
      l->ks[l->nk++] = ms[i];
      l->nout *= md[i];
    }
  }
  l->nroff = mi_numel(nr, rd);
  l->roff = mi_exec_scratch(ex, (size_t)(l->nroff > 0 ? l->nroff : 1) * sizeof(int64_t));
  if (!l->roff) return mi_node_error(n, MI_ERR_NO_MEMORY, "out of memory");
  int64_t idx[MI_MAX_DIMS] = {0}, off = 0;
  for (int64_t t = 0; t < l->nroff; t++) {
    l->roff[t] = off;
    for (int d = nr - 1; d >= 0; d--) {
      off += rs[d];
      if (++idx[d] < rd[d]) break;
      off -= rs[d] * rd[d];
      idx[d] = 0;
    }
  }
  return NULL;
}

static inline int64_t out_base(const rlayout *l, int64_t o) {
  int64_t off = 0;
  for (int d = l->nk - 1; d >= 0; d--) {
    off += (o % l->kd[d]) * l->ks[d];
    o /= l->kd[d];
  }
  return off;
}

typedef struct rtask {
  const rlayout *l;
  rkind kind;
  const void *x;
  void *y;
} rtask;

/* Visit every reduced element v of output o (base offset `b`). */
#define FOR_REDUCED(l, x, b, v, STMT)                          \
  for (int64_t t_ = 0; t_ < (l)->nroff; t_++) {                \
    const T *p_ = (x) + (b) + (l)->roff[t_];                   \
    for (int64_t j_ = 0; j_ < (l)->L; j_++) {                  \
      T v = p_[j_];                                            \
      STMT;                                                    \
    }                                                          \
  }

/* ACC: double for floating types; long double for integers (exact on the
 * full int64/uint64 range, and no signedness warnings for abs). */
#define DEF_REDUCE(NAME, T, ACC)                                                           \
  static void NAME(void *ctx, int64_t o0, int64_t o1) {                                  \
    const rtask *k = ctx;                                                                \
    const rlayout *l = k->l;                                                             \
    const T *x = k->x;                                                                   \
    T *y = k->y;                                                                         \
    for (int64_t o = o0; o < o1; o++) {                                                  \
      int64_t b = out_base(l, o);                                                        \
      ACC r = 0;                                                                         \
      switch (k->kind) {                                                                 \
        case R_SUM: case R_MEAN: case R_LOGSUM:                                          \
          FOR_REDUCED(l, x, b, v, r += (ACC)v);                                          \
          if (k->kind == R_MEAN) r = l->count ? r / (ACC)l->count : (ACC)NAN;            \
          if (k->kind == R_LOGSUM) r = (ACC)log((double)r);                              \
          break;                                                                         \
        case R_MAX: case R_MIN: {                                                        \
          T m = x[b + l->roff[0]];                                                       \
          if (k->kind == R_MAX) { FOR_REDUCED(l, x, b, v, if (v > m) m = v); }           \
          else { FOR_REDUCED(l, x, b, v, if (v < m) m = v); }                            \
          y[o] = m;                                                                      \
          continue;                                                                      \
        }                                                                                \
        case R_PROD:                                                                     \
          r = 1;                                                                         \
          FOR_REDUCED(l, x, b, v, r *= (ACC)v);                                          \
          break;                                                                         \
        case R_L1:                                                                       \
          FOR_REDUCED(l, x, b, v, { ACC a_ = (ACC)v; r += a_ < 0 ? -a_ : a_; });         \
          break;                                                                         \
        case R_L2: case R_SUMSQ:                                                         \
          FOR_REDUCED(l, x, b, v, r += (ACC)v * (ACC)v);                                 \
          if (k->kind == R_L2) r = (ACC)sqrt((double)r);                                 \
          break;                                                                         \
        case R_LOGSUMEXP: {                                                              \
          /* Shift by the max so exp cannot overflow. */                                 \
          double m = -INFINITY, s = 0;                                                   \
          FOR_REDUCED(l, x, b, v, if ((double)v > m) m = (double)v);                     \
          if (isinf(m)) { r = (ACC)m; break; }                                           \
          FOR_REDUCED(l, x, b, v, s += exp((double)v - m));                              \
          r = (ACC)(m + log(s));                                                         \
          break;                                                                         \
        }                                                                                \
        case R_MVN: break;                                                               \
      }                                                                                  \
      y[o] = (T)r;                                                                       \
    }                                                                                    \
  }
#define T float
DEF_REDUCE(red_f32, float, double)
#undef T
#define T double
DEF_REDUCE(red_f64, double, double)
#undef T
#define T int8_t
DEF_REDUCE(red_i8, int8_t, long double)
#undef T
#define T uint8_t
DEF_REDUCE(red_u8, uint8_t, long double)
#undef T
#define T int16_t
DEF_REDUCE(red_i16, int16_t, long double)
#undef T
#define T uint16_t
DEF_REDUCE(red_u16, uint16_t, long double)
#undef T
#define T int32_t
DEF_REDUCE(red_i32, int32_t, long double)
#undef T
#define T uint32_t
DEF_REDUCE(red_u32, uint32_t, long double)
#undef T
#define T int64_t
DEF_REDUCE(red_i64, int64_t, long double)
#undef T
#define T uint64_t
DEF_REDUCE(red_u64, uint64_t, long double)
#undef T

/* MeanVarianceNormalization: y = (x - E[x]) / (sqrt(E[x^2] - E[x]^2) + 1e-9),
 * statistics over the layout's reduced axes, written back at the same
 * offsets. */
#define DEF_MVN(NAME, T)                                                        \
  static void NAME(void *ctx, int64_t o0, int64_t o1) {                       \
    const rtask *k = ctx;                                                     \
    const rlayout *l = k->l;                                                  \
    const T *x = k->x;                                                        \
    T *y = k->y;                                                              \
    for (int64_t o = o0; o < o1; o++) {                                       \
      int64_t b = out_base(l, o);                                             \
      double s = 0, s2 = 0;                                                   \
      FOR_REDUCED(l, x, b, v, { s += v; s2 += (double)v * v; });              \
      double m = s / (double)l->count, var = s2 / (double)l->count - m * m;   \
      double inv = 1.0 / (sqrt(var > 0 ? var : 0) + 1e-9);                    \
      for (int64_t t_ = 0; t_ < l->nroff; t_++) {                             \
        int64_t q = b + l->roff[t_];                                          \
        for (int64_t j = 0; j < l->L; j++)                                    \
          y[q + j] = (T)((x[q + j] - m) * inv);                               \
      }                                                                       \
    }                                                                         \
  }
#define T float
DEF_MVN(mvn_f32, float)
#undef T
#define T double
DEF_MVN(mvn_f64, double)
#undef T

static mi_status *reduce_run(mi_node *n, mi_exec *ex, mi_tensor *const *in, mi_tensor **out) {
  const rattr *a = n->priv;
  const mi_tensor *X = in[0];
  mi_tensor *Y = out[0];
  unsigned mask;
  bool noop;
  MI_TRY(reduce_mask(n, in, X->ndim, &mask, &noop));
  if (noop) {
    if (Y->data != X->data) memcpy(Y->data, X->data, mi_tensor_nbytes(X));
    return NULL;
  }
  rlayout l;
  MI_TRY(make_layout(n, ex, X, mask, &l));
  if (l.count == 0 && a->kind != R_MVN) {
    /* Empty reduction: the identity of each operator. */
    double id = a->kind == R_PROD ? 1.0 : a->kind == R_LOGSUM || a->kind == R_LOGSUMEXP
                                              ? -INFINITY : a->kind == R_MEAN ? NAN : 0.0;
    for (int64_t i = 0; i < l.nout; i++) mi_tensor_set_f64(Y, i, id);
    mi_exec_scratch_release(ex, l.roff);
    return NULL;
  }
  if (l.nout == 0 || l.count == 0) {
    mi_exec_scratch_release(ex, l.roff);
    return NULL;
  }
  rtask t = {&l, a->kind, X->data, Y->data};
  mi_range_fn fn = NULL;
  if (a->kind == R_MVN) {
    fn = X->dtype == MI_DOUBLE ? mvn_f64 : mvn_f32;
  } else {
    switch (X->dtype) {
      case MI_FLOAT: fn = red_f32; break;
      case MI_DOUBLE: fn = red_f64; break;
      case MI_INT8: fn = red_i8; break;
      case MI_UINT8: fn = red_u8; break;
      case MI_INT16: fn = red_i16; break;
      case MI_UINT16: fn = red_u16; break;
      case MI_INT32: fn = red_i32; break;
      case MI_UINT32: fn = red_u32; break;
      case MI_INT64: fn = red_i64; break;
      case MI_UINT64: fn = red_u64; break;
      default: break;
    }
  }
  if (!fn) {
    mi_exec_scratch_release(ex, l.roff);
    return mi_node_error(n, MI_ERR_UNSUPPORTED, "element type %s not supported",
                         mi_dtype_name(X->dtype));
  }
  int64_t grain = l.count >= 8192 ? 1 : 8192 / l.count;
  mi_parallel_for(ex, l.nout, grain, fn, &t);
  mi_exec_scratch_release(ex, l.roff);
  return NULL;
}

/* ---- ArgMax / ArgMin ------------------------------------------------------ */

typedef struct argattr {
  int64_t axis;
  bool keepdims, last, is_max;
} argattr;

static mi_status *arg_init(mi_node *n, mi_graph *g) {
  (void)g;
  argattr *a = malloc(sizeof *a);
  if (!a) return mi_node_error(n, MI_ERR_NO_MEMORY, "out of memory");
  a->axis = mi_attr_int(n, "axis", 0);
  a->keepdims = mi_attr_int(n, "keepdims", 1) != 0;
  a->last = mi_attr_int(n, "select_last_index", 0) != 0;
  a->is_max = strcmp(n->op_type, "ArgMax") == 0;
  n->priv = a;
  return NULL;
}

static mi_status *arg_infer(mi_node *n, mi_tensor *const *in, mi_tensor **out) {
  const argattr *a = n->priv;
  if (n->n_in < 1 || !in[0]) return mi_node_error(n, MI_ERR_INVALID_MODEL, "needs an input");
  const mi_tensor *X = in[0];
  if (!reduce_dtype_ok(X->dtype))
    return mi_node_error(n, MI_ERR_UNSUPPORTED, "element type %s not supported",
                         mi_dtype_name(X->dtype));
  int64_t ax = a->axis < 0 ? a->axis + X->ndim : a->axis;
  if (ax < 0 || ax >= X->ndim)
    return mi_node_error(n, MI_ERR_SHAPE, "axis %lld out of range for rank %d",
                         (long long)a->axis, X->ndim);
  if (X->dims[ax] == 0)
    return mi_node_error(n, MI_ERR_SHAPE, "cannot take arg max/min over an empty axis");
  int64_t od[MI_MAX_DIMS];
  int nd = 0;
  for (int d = 0; d < X->ndim; d++) {
    if (d != ax) od[nd++] = X->dims[d];
    else if (a->keepdims) od[nd++] = 1;
  }
  mi_tensor_set_shape(out[0], MI_INT64, nd, od);
  return NULL;
}

typedef struct argtask {
  const void *x;
  int64_t *y;
  int64_t len, inner;
  bool last, is_max;
} argtask;

/* Outputs o = (outer, inner); neighbouring o read neighbouring addresses. */
#define DEF_ARG(NAME, T)                                                           \
  static void NAME(void *ctx, int64_t o0, int64_t o1) {                          \
    const argtask *k = ctx;                                                      \
    const T *x = k->x;                                                           \
    for (int64_t o = o0; o < o1; o++) {                                          \
      int64_t oi = o / k->inner, ii = o % k->inner;                              \
      const T *p = x + oi * k->len * k->inner + ii;                              \
      T best = p[0];                                                             \
      int64_t bi = 0;                                                            \
      for (int64_t i = 1; i < k->len; i++) {                                     \
        T v = p[i * k->inner];                                                   \
        bool better = k->is_max ? (k->last ? v >= best : v > best)               \
                                : (k->last ? v <= best : v < best);              \
        if (better) {                                                            \
          best = v;                                                              \
          bi = i;                                                                \
        }                                                                        \
      }                                                                          \
      k->y[o] = bi;                                                              \
    }                                                                            \
  }
DEF_ARG(arg_f32, float)
DEF_ARG(arg_f64, double)
DEF_ARG(arg_i8, int8_t)
DEF_ARG(arg_u8, uint8_t)
DEF_ARG(arg_i16, int16_t)
DEF_ARG(arg_u16, uint16_t)
DEF_ARG(arg_i32, int32_t)
DEF_ARG(arg_u32, uint32_t)
DEF_ARG(arg_i64, int64_t)
DEF_ARG(arg_u64, uint64_t)

static mi_status *arg_run(mi_node *n, mi_exec *ex, mi_tensor *const *in, mi_tensor **out) {
  const argattr *a = n->priv;
  const mi_tensor *X = in[0];
  int ax = (int)(a->axis < 0 ? a->axis + X->ndim : a->axis);
  argtask t = {X->data, out[0]->data, X->dims[ax], mi_numel(X->ndim - ax - 1, X->dims + ax + 1),
               a->last, a->is_max};
  int64_t nout = mi_numel(ax, X->dims) * t.inner;
  mi_range_fn fn = NULL;
  switch (X->dtype) {
    case MI_FLOAT: fn = arg_f32; break;
    case MI_DOUBLE: fn = arg_f64; break;
    case MI_INT8: fn = arg_i8; break;
    case MI_UINT8: fn = arg_u8; break;
    case MI_INT16: fn = arg_i16; break;
    case MI_UINT16: fn = arg_u16; break;
    case MI_INT32: fn = arg_i32; break;
    case MI_UINT32: fn = arg_u32; break;
    case MI_INT64: fn = arg_i64; break;
    case MI_UINT64: fn = arg_u64; break;
    default:
      return mi_node_error(n, MI_ERR_UNSUPPORTED, "element type %s not supported",
                           mi_dtype_name(X->dtype));
  }
  if (nout == 0) return NULL;
  mi_parallel_for(ex, nout, t.len >= 4096 ? 1 : 4096 / t.len, fn, &t);
  return NULL;
}

const mi_op_def mi_ops_reduce[] = {
    {"ReduceSum", 1, 0, reduce_init, reduce_infer, reduce_run, NULL},
    {"ReduceMean", 1, 0, reduce_init, reduce_infer, reduce_run, NULL},
    {"ReduceMax", 1, 0, reduce_init, reduce_infer, reduce_run, NULL},
    {"ReduceMin", 1, 0, reduce_init, reduce_infer, reduce_run, NULL},
    {"ReduceProd", 1, 0, reduce_init, reduce_infer, reduce_run, NULL},
    {"ReduceL1", 1, 0, reduce_init, reduce_infer, reduce_run, NULL},
    {"ReduceL2", 1, 0, reduce_init, reduce_infer, reduce_run, NULL},
    {"ReduceLogSum", 1, 0, reduce_init, reduce_infer, reduce_run, NULL},
    {"ReduceLogSumExp", 1, 0, reduce_init, reduce_infer, reduce_run, NULL},
    {"ReduceSumSquare", 1, 0, reduce_init, reduce_infer, reduce_run, NULL},
    {"MeanVarianceNormalization", 9, 0, reduce_init, reduce_infer, reduce_run, NULL},
    {"ArgMax", 1, 0, arg_init, arg_infer, arg_run, NULL},
    {"ArgMin", 1, 0, arg_init, arg_infer, arg_run, NULL},
    {NULL},
};
