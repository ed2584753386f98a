/* Reduce* over any set of axes, ArgMax/ArgMin and MeanVarianceNormalization
 * on the GPU.  One thread per output element walks the reduced elements
 * (accumulating in double); the reduced-axes layout is computed on the host. */
#include <math.h>
#include <string.h>
#include <type_traits>

#include "cuda_common.h"

enum { R_SUM, R_MEAN, R_MAX, R_MIN, R_PROD, R_LOGSUM, R_LOGSUMEXP, R_SUMSQ, R_MVN, R_L1, R_L2 };

static int kind_of(const char *op) {
  static const char *const names[] = {"ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd",
                                      "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare",
                                      "MeanVarianceNormalization", "ReduceL1", "ReduceL2"};
  for (int i = 0; i < 11; i++)
    if (!strcmp(op, names[i])) return i;
  return -1;
}

/* Kept dims (output order) and reduced dims with their input strides. */
typedef struct red_layout {
  int nk, nr;
  int64_t kdims[MI_MAX_DIMS], kstr[MI_MAX_DIMS], rdims[MI_MAX_DIMS], rstr[MI_MAX_DIMS];
  int64_t rcount;
} red_layout;

static mi_status *reduce_mask(const mi_node *n, const mi_tensor *const *hin, int kind, int rank, unsigned *mask,
                              bool *noop) {
  int64_t axes[MI_MAX_DIMS];
  int na = -1;
  *noop = false;
  bool axes_input = kind != R_MVN && n->opset >= (kind == R_SUM ? 13 : 18);
  bool noop_empty = mi_attr_int(n, "noop_with_empty_axes", 0) != 0;
  if (axes_input) {
    const mi_tensor *t = n->n_in > 1 ? hin[1] : NULL;
    if (n->n_in > 1 && n->in[1] >= 0 && (!t || !t->data))
      return mi_node_error(n, MI_ERR_UNSUPPORTED, "CUDA %s needs 'axes' known while planning", n->op_type);
    if (t) {
      int64_t cnt = mi_numel(t->ndim, t->dims);
      if (cnt > rank || cnt > MI_MAX_DIMS) return mi_node_error(n, MI_ERR_SHAPE, "too many axes");
      for (int64_t i = 0; i < cnt; i++) axes[i] = mi_tensor_get_i64(t, i);
      na = (int)cnt;
    }
  } else {
    const int64_t *v;
    size_t c = mi_attr_ints(n, "axes", &v);
    if (mi_node_attr(n, "axes")) {
      if (c > MI_MAX_DIMS) return mi_node_error(n, MI_ERR_SHAPE, "too many axes");
      na = (int)c;
      memcpy(axes, v, sizeof(int64_t) * c);
    } else if (kind == R_MVN) {
      na = 3;
      axes[0] = 0, axes[1] = 2, axes[2] = 3;
    }
  }
  if (na <= 0) {
    if (na == 0 && noop_empty) *noop = true;
    else if (na < 0 && noop_empty && axes_input) *noop = true;
    *mask = *noop ? 0u : (rank ? (1u << rank) - 1u : 0u);
    return NULL;
  }
  *mask = 0;
  for (int i = 0; i < na; i++) {
    int64_t ax = axes[i] < 0 ? axes[i] + rank : axes[i];
    if (ax < 0 || ax >= rank) return mi_node_error(n, MI_ERR_SHAPE, "axis out of range");
    *mask |= 1u << ax;
  }
  return NULL;
}

static void make_layout(const mi_tensor *x, unsigned mask, red_layout *L) {
  int64_t st[MI_MAX_DIMS];
  mi_cuda_contig_strides(x->ndim, x->dims, st);
  L->nk = L->nr = 0;
  L->rcount = 1;
  for (int d = 0; d < x->ndim; d++) {
    if (mask & (1u << d)) {
      L->rdims[L->nr] = x->dims[d];
      L->rstr[L->nr++] = st[d];
      L->rcount *= x->dims[d];
    } else {
      L->kdims[L->nk] = x->dims[d];
      L->kstr[L->nk++] = st[d];
    }
  }
}

__device__ __forceinline__ int64_t kept_base(const red_layout &L, int64_t o) {
  int64_t b = 0;
  for (int d = L.nk - 1; d >= 0; d--) {
    b += (o % L.kdims[d]) * L.kstr[d];
    o /= L.kdims[d];
  }
  return b;
}

__device__ __forceinline__ int64_t red_off(const red_layout &L, int64_t j) {
  int64_t b = 0;
  for (int d = L.nr - 1; d >= 0; d--) {
    b += (j % L.rdims[d]) * L.rstr[d];
    j /= L.rdims[d];
  }
  return b;
}

template <typename T>
__global__ void k_reduce(const T *x, T *y, red_layout L, int64_t nout, int kind) {
  CU_LOOP(o, nout) {
    int64_t base = kept_base(L, o);
    double acc = kind == R_PROD ? 1.0 : 0.0, mx = -INFINITY;
    bool first = true;
    if (kind == R_LOGSUMEXP)
      for (int64_t j = 0; j < L.rcount; j++) mx = fmax(mx, (double)x[base + red_off(L, j)]);
    for (int64_t j = 0; j < L.rcount; j++) {
      double v = (double)x[base + red_off(L, j)];
      switch (kind) {
        case R_SUM: case R_MEAN: case R_LOGSUM: acc += v; break;
        case R_SUMSQ: case R_L2: acc += v * v; break;
        case R_L1: acc += fabs(v); break;
        case R_PROD: acc *= v; break;
        case R_LOGSUMEXP: acc += exp(v - mx); break;
        case R_MAX: acc = first || v > acc || v != v ? v : acc; break;
        case R_MIN: acc = first || v < acc || v != v ? v : acc; break;
      }
      first = false;
    }
    if (kind == R_MEAN) acc /= (double)L.rcount;
    else if (kind == R_LOGSUM) acc = log(acc);
    else if (kind == R_L2) acc = sqrt(acc);
    else if (kind == R_LOGSUMEXP) acc = L.rcount ? mx + log(acc) : -INFINITY;
    else if ((kind == R_MAX || kind == R_MIN) && first) {
      if constexpr (std::is_floating_point<T>::value) acc = kind == R_MAX ? -INFINITY : INFINITY;
      else acc = 0;
    }
    y[o] = (T)acc;
  }
}

/* MVN: y = (x - mean) / (sqrt(var) + 1e-9), statistics over the reduced axes. */
template <typename T>
__global__ void k_mvn(const T *x, T *y, red_layout L, int64_t nout) {
  CU_LOOP(o, nout) {
    int64_t base = kept_base(L, o);
    double s = 0, q = 0;
    for (int64_t j = 0; j < L.rcount; j++) {
      double v = (double)x[base + red_off(L, j)];
      s += v;
      q += v * v;
    }
    double m = s / (double)L.rcount, var = q / (double)L.rcount - m * m;
    double inv = 1.0 / (sqrt(var > 0 ? var : 0) + 1e-9);
    for (int64_t j = 0; j < L.rcount; j++) {
      int64_t k = base + red_off(L, j);
      y[k] = (T)(((double)x[k] - m) * inv);
    }
  }
}

static mi_status *reduce_run(mi_node *n, mi_cuda_ctx *cx, mi_tensor *const *in, const mi_tensor *const *hin,
                             mi_tensor **out) {
  const mi_tensor *x = in[0];
  int kind = kind_of(n->op_type);
  unsigned mask;
  bool noop;
  MI_TRY(reduce_mask(n, hin, kind, x->ndim, &mask, &noop));
  if (noop) mask = 0;
  red_layout L;
  make_layout(x, mask, &L);
  int64_t nout = 1;
  for (int d = 0; d < L.nk; d++) nout *= L.kdims[d];
  if (kind == R_MVN) nout = mi_numel(x->ndim, x->dims) ? nout : 0;
  else nout = mi_numel(out[0]->ndim, out[0]->dims);
  if (!nout) return NULL;
  unsigned g = mi_cuda_grid(nout, 128);
  if (kind == R_MVN) {
    if (x->dtype == MI_FLOAT) k_mvn<float><<<g, 128, 0, cx->stream>>>((const float *)x->data, (float *)out[0]->data, L, nout);
    else if (x->dtype == MI_DOUBLE) k_mvn<double><<<g, 128, 0, cx->stream>>>((const double *)x->data, (double *)out[0]->data, L, nout);
    else return mi_node_error(n, MI_ERR_UNSUPPORTED, "element type %s is not supported on CUDA", mi_dtype_name(x->dtype));
    CU_LAUNCHED(n);
    return NULL;
  }
  switch (x->dtype) {
#define X(DT, T) case DT: k_reduce<T><<<g, 128, 0, cx->stream>>>((const T *)x->data, (T *)out[0]->data, L, nout, kind); break;
    X(MI_FLOAT, float) X(MI_DOUBLE, double) X(MI_INT32, int32_t) X(MI_INT64, int64_t) X(MI_UINT8, uint8_t)
    X(MI_INT8, int8_t) X(MI_UINT32, uint32_t) X(MI_UINT64, uint64_t)
#undef X
    default: return mi_node_error(n, MI_ERR_UNSUPPORTED, "element type %s is not supported on CUDA", mi_dtype_name(x->dtype));
  }
  CU_LAUNCHED(n);
  return NULL;
}

template <typename T>
__global__ void k_arg(const T *x, int64_t *y, int64_t outer, int64_t L, int64_t inner, int is_max, int last) {
  int64_t total = outer * inner;
  CU_LOOP(i, total) {
    int64_t o = i / inner, in = i - o * inner;
    const T *p = x + o * L * inner + in;
    int64_t best = 0;
    T bv = p[0];
    for (int64_t j = 1; j < L; j++) {
      T v = p[j * inner];
      bool better = is_max ? (last ? v >= bv : v > bv) : (last ? v <= bv : v < bv);
      if (better) {
        bv = v;
        best = j;
      }
    }
    y[i] = best;
  }
}

static mi_status *arg_run(mi_node *n, mi_cuda_ctx *cx, mi_tensor *const *in, const mi_tensor *const *hin,
                          mi_tensor **out) {
  const mi_tensor *x = in[0];
  int r = x->ndim;
  int64_t ax = mi_attr_int(n, "axis", 0);
  if (ax < 0) ax += r;
  if (ax < 0 || ax >= r) return mi_node_error(n, MI_ERR_SHAPE, "axis out of range");
  int64_t outer = mi_numel((int)ax, x->dims), L = x->dims[ax], inner = mi_numel(r - (int)ax - 1, x->dims + ax + 1);
  if (!outer || !inner) return NULL;
  if (!L) return mi_node_error(n, MI_ERR_SHAPE, "cannot take the arg of an empty axis");
  int is_max = !strcmp(n->op_type, "ArgMax"), last = mi_attr_int(n, "select_last_index", 0) != 0;
  unsigned g = mi_cuda_grid(outer * inner, 128);
  int64_t *y = (int64_t *)out[0]->data;
  switch (x->dtype) {
#define X(DT, T) case DT: k_arg<T><<<g, 128, 0, cx->stream>>>((const T *)x->data, y, outer, L, inner, is_max, last); break;
    X(MI_FLOAT, float) X(MI_DOUBLE, double) X(MI_INT32, int32_t) X(MI_INT64, int64_t) X(MI_UINT8, uint8_t)
    X(MI_INT8, int8_t)
#undef X
    default: return mi_node_error(n, MI_ERR_UNSUPPORTED, "element type %s is not supported on CUDA", mi_dtype_name(x->dtype));
  }
  CU_LAUNCHED(n);
  return NULL;
}

extern const mi_cuda_op mi_cuda_ops_reduce[] = {
    {"ReduceSum", reduce_run}, {"ReduceMean", reduce_run}, {"ReduceMax", reduce_run},
    {"ReduceMin", reduce_run}, {"ReduceProd", reduce_run}, {"ReduceLogSum", reduce_run},
    {"ReduceLogSumExp", reduce_run}, {"ReduceSumSquare", reduce_run}, {"ReduceL1", reduce_run},
    {"ReduceL2", reduce_run},
    {"MeanVarianceNormalization", reduce_run}, {"ArgMax", arg_run}, {"ArgMin", arg_run},
    {NULL, NULL},
};
