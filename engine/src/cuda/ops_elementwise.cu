/* Elementwise operators on the GPU: unary math and activations, binary
 * arithmetic / comparison / logic with numpy broadcasting, the variadic
 * Max/Min/Sum/Mean, PRelu, Where.  One strided-broadcast kernel per element
 * type; the operation is a (warp-uniform) switch. */
#include <math.h>
#include <string.h>
#include <type_traits>

#include "cuda_common.h"

#define FOR_EACH_TYPE(X)                                                                    \
  X(MI_FLOAT, float) X(MI_DOUBLE, double) X(MI_INT8, int8_t) X(MI_INT16, int16_t)           \
  X(MI_INT32, int32_t) X(MI_INT64, int64_t) X(MI_UINT8, uint8_t) X(MI_UINT16, uint16_t)     \
  X(MI_UINT32, uint32_t) X(MI_UINT64, uint64_t) X(MI_BOOL, bool)

/* ---- unary ------------------------------------------------------------------ */
enum {
  U_RELU, U_LEAKY, U_SIGMOID, U_TANH, U_ELU, U_SELU, U_SOFTPLUS, U_SOFTSIGN, U_HSIGMOID, U_HSWISH,
  U_CLIP, U_CELU, U_THRELU, U_SHRINK, U_ABS, U_NEG, U_EXP, U_LOG, U_SQRT, U_RECIP, U_ERF, U_FLOOR,
  U_CEIL, U_ROUND, U_SIGN, U_SIN, U_COS, U_TAN, U_ASIN, U_ACOS, U_ATAN, U_SINH, U_COSH, U_ASINH,
  U_ACOSH, U_ATANH, U_NOT, U_ISNAN, U_ISINF, U_COPY
};

typedef struct unary_def {
  const char *name;
  int op;
  bool float_only;
  const char *a_name, *b_name;
  float a_def, b_def;
} unary_def;

static const unary_def unary_defs[] = {
    {"Relu", U_RELU, false, NULL, NULL, 0, 0},
    {"LeakyRelu", U_LEAKY, true, "alpha", NULL, 0.01f, 0},
    {"Sigmoid", U_SIGMOID, true, NULL, NULL, 0, 0},
    {"Tanh", U_TANH, true, NULL, NULL, 0, 0},
    {"Elu", U_ELU, true, "alpha", NULL, 1.0f, 0},
    {"Selu", U_SELU, true, "alpha", "gamma", 1.67326319217681884765625f, 1.05070102214813232421875f},
    {"Softplus", U_SOFTPLUS, true, NULL, NULL, 0, 0},
    {"Softsign", U_SOFTSIGN, true, NULL, NULL, 0, 0},
    {"HardSigmoid", U_HSIGMOID, true, "alpha", "beta", 0.2f, 0.5f},
    {"HardSwish", U_HSWISH, true, NULL, NULL, 1.0f / 6.0f, 0.5f},
    {"Celu", U_CELU, true, "alpha", NULL, 1.0f, 0},
    {"ThresholdedRelu", U_THRELU, true, "alpha", NULL, 1.0f, 0},
    {"Shrink", U_SHRINK, false, "lambd", "bias", 0.5f, 0.0f},
    {"Abs", U_ABS, false, NULL, NULL, 0, 0},
    {"Neg", U_NEG, false, NULL, NULL, 0, 0},
    {"Exp", U_EXP, true, NULL, NULL, 0, 0},
    {"Log", U_LOG, true, NULL, NULL, 0, 0},
    {"Sqrt", U_SQRT, true, NULL, NULL, 0, 0},
    {"Reciprocal", U_RECIP, true, NULL, NULL, 0, 0},
    {"Erf", U_ERF, true, NULL, NULL, 0, 0},
    {"Floor", U_FLOOR, true, NULL, NULL, 0, 0},
    {"Ceil", U_CEIL, true, NULL, NULL, 0, 0},
    {"Round", U_ROUND, true, NULL, NULL, 0, 0},
    {"Sign", U_SIGN, false, NULL, NULL, 0, 0},
    {"Sin", U_SIN, true, NULL, NULL, 0, 0},
    {"Cos", U_COS, true, NULL, NULL, 0, 0},
    {"Tan", U_TAN, true, NULL, NULL, 0, 0},
    {"Asin", U_ASIN, true, NULL, NULL, 0, 0},
    {"Acos", U_ACOS, true, NULL, NULL, 0, 0},
    {"Atan", U_ATAN, true, NULL, NULL, 0, 0},
    {"Sinh", U_SINH, true, NULL, NULL, 0, 0},
    {"Cosh", U_COSH, true, NULL, NULL, 0, 0},
    {"Asinh", U_ASINH, true, NULL, NULL, 0, 0},
    {"Acosh", U_ACOSH, true, NULL, NULL, 0, 0},
    {"Atanh", U_ATANH, true, NULL, NULL, 0, 0},
    {"Not", U_NOT, false, NULL, NULL, 0, 0},
    {NULL, 0, false, NULL, NULL, 0, 0},
};

template <typename T>
__device__ __forceinline__ T unary_op(T x, int op, float fa, float fb) {
  if constexpr (std::is_same<T, bool>::value) {
    if (op == U_NOT) return !x;
    return x;
  } else if constexpr (std::is_floating_point<T>::value) {
    const T a = (T)fa, b = (T)fb, zero = 0, one = 1;
    switch (op) {
      case U_RELU: return x > zero ? x : zero;
      case U_LEAKY: return x >= zero ? x : x * a;
      case U_SIGMOID: return x >= zero ? one / (one + exp(-x)) : exp(x) / (one + exp(x));
      case U_TANH: return tanh(x);
      case U_ELU: return x >= zero ? x : a * expm1(x);
      case U_SELU: return x > zero ? b * x : b * a * expm1(x);
      case U_SOFTPLUS: return x > zero ? x + log1p(exp(-x)) : log1p(exp(x));
      case U_SOFTSIGN: return x / (one + fabs(x));
      case U_HSIGMOID: return fmax(zero, fmin(one, a * x + b));
      case U_HSWISH: return x * fmax(zero, fmin(one, a * x + b));
      case U_CLIP: return fmin(fmax(x, a), b);
      case U_CELU: return x > zero ? x : a * expm1(x / a);
      case U_THRELU: return x > a ? x : zero;
      case U_SHRINK: return x < -a ? x + b : x > a ? x - b : zero;
      case U_ABS: return fabs(x);
      case U_NEG: return -x;
      case U_EXP: return exp(x);
      case U_LOG: return log(x);
      case U_SQRT: return sqrt(x);
      case U_RECIP: return one / x;
      case U_ERF: return erf(x);
      case U_FLOOR: return floor(x);
      case U_CEIL: return ceil(x);
      case U_ROUND: return rint(x);
      case U_SIGN: return x > zero ? one : x < zero ? -one : zero;
      case U_SIN: return sin(x);
      case U_COS: return cos(x);
      case U_TAN: return tan(x);
      case U_ASIN: return asin(x);
      case U_ACOS: return acos(x);
      case U_ATAN: return atan(x);
      case U_SINH: return sinh(x);
      case U_COSH: return cosh(x);
      case U_ASINH: return asinh(x);
      case U_ACOSH: return acosh(x);
      case U_ATANH: return atanh(x);
      default: return x;
    }
  } else {
    const T zero = 0;
    switch (op) {
      case U_RELU: return x > zero ? x : zero;
      case U_ABS:
        if constexpr (std::is_signed<T>::value) return x < zero ? (T)-x : x;
        else return x;
      case U_NEG: return (T)(zero - x);
      case U_SIGN: return x > zero ? (T)1 : (x < zero ? (T)-1 : zero);
      case U_CLIP: return (T)x < (T)fa ? (T)fa : ((T)x > (T)fb ? (T)fb : x);
      case U_SHRINK: {
        double v = (double)x;
        return (T)(v < -fa ? v + fb : v > fa ? v - fb : 0.0);
      }
      default: return x;
    }
  }
}

template <typename T>
__global__ void k_unary(const T *x, T *y, int64_t total, int op, float a, float b) {
  CU_LOOP(i, total) y[i] = unary_op<T>(x[i], op, a, b);
}

template <typename T>
__global__ void k_clip_typed(const T *x, T *y, int64_t total, T lo, T hi, bool has_lo, bool has_hi,
                             const T *dlo, const T *dhi) {
  if (dlo) lo = *dlo; /* bounds computed on the device */
  if (dhi) hi = *dhi;
  CU_LOOP(i, total) {
    T v = x[i];
    if (has_lo && v < lo) v = lo;
    if (has_hi && v > hi) v = hi;
    y[i] = v;
  }
}

template <typename T>
__global__ void k_isnaninf(const T *x, bool *y, int64_t total, int isinf, int pos, int neg) {
  CU_LOOP(i, total) {
    T v = x[i];
    y[i] = isinf ? ((pos && v == (T)INFINITY) || (neg && v == -(T)INFINITY)) : v != v;
  }
}

static mi_status *launch_unary(const mi_node *n, mi_cuda_ctx *cx, const mi_tensor *x, mi_tensor *y, int op,
                               float a, float b, bool float_only) {
  int64_t total = mi_numel(x->ndim, x->dims);
  if (!total) return NULL;
  unsigned g = mi_cuda_grid(total, 256);
  bool is_float = x->dtype == MI_FLOAT || x->dtype == MI_DOUBLE;
  if (float_only && !is_float)
    return mi_node_error(n, MI_ERR_UNSUPPORTED, "element type %s is not supported on CUDA",
                         mi_dtype_name(x->dtype));
  switch (x->dtype) {
#define X(DT, T)                                                                                   \
  case DT:                                                                                         \
    k_unary<T><<<g, 256, 0, cx->stream>>>((const T *)x->data, (T *)y->data, total, op, a, b);      \
    break;
    FOR_EACH_TYPE(X)
#undef X
    default: return mi_node_error(n, MI_ERR_UNSUPPORTED, "element type %s is not supported on CUDA", mi_dtype_name(x->dtype));
  }
  CU_LAUNCHED(n);
  return NULL;
}

static mi_status *unary_run(mi_node *n, mi_cuda_ctx *cx, mi_tensor *const *in, const mi_tensor *const *hin,
                            mi_tensor **out) {
  const unary_def *d = NULL;
  for (const unary_def *u = unary_defs; u->name; u++)
    if (!strcmp(u->name, n->op_type)) d = u;
  if (!d) return mi_node_error(n, MI_ERR_INTERNAL, "no CUDA unary kernel");
  float a = d->a_name ? mi_attr_float(n, d->a_name, d->a_def) : d->a_def;
  float b = d->b_name ? mi_attr_float(n, d->b_name, d->b_def) : d->b_def;
  if (d->op == U_NOT && in[0]->dtype != MI_BOOL)
    return mi_node_error(n, MI_ERR_UNSUPPORTED, "Not needs bool input");
  return launch_unary(n, cx, in[0], out[0], d->op, a, b, d->float_only);
}

static mi_status *clip_run(mi_node *n, mi_cuda_ctx *cx, mi_tensor *const *in, const mi_tensor *const *hin,
                           mi_tensor **out) {
  const mi_tensor *x = in[0];
  double lo = -INFINITY, hi = INFINITY;
  bool has_lo = false, has_hi = false;
  const void *dlo = NULL, *dhi = NULL;
  if (n->opset < 11) {
    lo = mi_attr_float(n, "min", -INFINITY);
    hi = mi_attr_float(n, "max", INFINITY);
    has_lo = has_hi = true;
  } else {
    for (int k = 1; k <= 2; k++) {
      if (n->n_in <= k || !in[k]) continue;
      if (in[k]->dtype != x->dtype) return mi_node_error(n, MI_ERR_INVALID_MODEL, "min/max type differs from the input's");
      if (!hin[k] || !hin[k]->data) { /* read the scalar on the device */
        if (k == 1) { dlo = in[k]->data; has_lo = true; }
        else { dhi = in[k]->data; has_hi = true; }
        continue;
      }
      double v = mi_tensor_get_f64(hin[k], 0);
      if (k == 1) { lo = v; has_lo = true; }
      else { hi = v; has_hi = true; }
    }
  }
  int64_t total = mi_numel(x->ndim, x->dims);
  if (!total) return NULL;
  unsigned g = mi_cuda_grid(total, 256);
  switch (x->dtype) {
#define X(DT, T)                                                                                        \
  case DT:                                                                                              \
    k_clip_typed<T><<<g, 256, 0, cx->stream>>>((const T *)x->data, (T *)out[0]->data, total, (T)lo, (T)hi, \
                                               has_lo, has_hi, (const T *)dlo, (const T *)dhi);         \
    break;
    X(MI_FLOAT, float) X(MI_DOUBLE, double) X(MI_INT8, int8_t) X(MI_INT16, int16_t) X(MI_INT32, int32_t)
    X(MI_INT64, int64_t) X(MI_UINT8, uint8_t) X(MI_UINT16, uint16_t) X(MI_UINT32, uint32_t) X(MI_UINT64, uint64_t)
#undef X
    default: return mi_node_error(n, MI_ERR_UNSUPPORTED, "element type %s is not supported on CUDA", mi_dtype_name(x->dtype));
  }
  CU_LAUNCHED(n);
  return NULL;
}

static mi_status *isx_run(mi_node *n, mi_cuda_ctx *cx, mi_tensor *const *in, const mi_tensor *const *hin,
                          mi_tensor **out) {
  const mi_tensor *x = in[0];
  int isinf = !strcmp(n->op_type, "IsInf");
  int pos = (int)mi_attr_int(n, "detect_positive", 1), neg = (int)mi_attr_int(n, "detect_negative", 1);
  int64_t total = mi_numel(x->ndim, x->dims);
  if (!total) return NULL;
  unsigned g = mi_cuda_grid(total, 256);
  if (x->dtype == MI_FLOAT)
    k_isnaninf<float><<<g, 256, 0, cx->stream>>>((const float *)x->data, (bool *)out[0]->data, total, isinf, pos, neg);
  else if (x->dtype == MI_DOUBLE)
    k_isnaninf<double><<<g, 256, 0, cx->stream>>>((const double *)x->data, (bool *)out[0]->data, total, isinf, pos, neg);
  else
    return mi_node_error(n, MI_ERR_UNSUPPORTED, "element type %s is not supported on CUDA", mi_dtype_name(x->dtype));
  CU_LAUNCHED(n);
  return NULL;
}

/* ---- binary with broadcasting ----------------------------------------------- */
enum {
  B_ADD, B_SUB, B_MUL, B_DIV, B_POW, B_MODPY, B_MODC, B_MAX, B_MIN, B_PRELU, B_EQ, B_LT, B_GT, B_LE, B_GE,
  B_AND, B_OR, B_XOR
};

typedef struct bcast2 {
  int nd;
  int64_t dims[MI_MAX_DIMS], sa[MI_MAX_DIMS], sb[MI_MAX_DIMS];
} bcast2;

template <typename T>
__device__ __forceinline__ T bin_arith(T x, T y, int op) {
  switch (op) {
    case B_ADD: return (T)(x + y);
    case B_SUB: return (T)(x - y);
    case B_MUL: return (T)(x * y);
    case B_DIV:
      if constexpr (std::is_integral<T>::value) return y == 0 ? (T)0 : (T)(x / y);
      else return x / y;
    case B_POW:
      if constexpr (std::is_integral<T>::value) return (T)pow((double)x, (double)y);
      else return pow(x, y);
    case B_MODC:
      if constexpr (std::is_integral<T>::value) {
        if (y == 0) return 0;
        if constexpr (std::is_signed<T>::value) if (y == (T)-1) return 0;
        return (T)(x % y);
      } else return fmod(x, y);
    case B_MODPY:
      if constexpr (std::is_integral<T>::value) {
        if (y == 0) return 0;
        if constexpr (std::is_signed<T>::value) {
          if (y == (T)-1) return 0;
          T r = (T)(x % y);
          if (r != 0 && ((r < 0) != (y < 0))) r = (T)(r + y);
          return r;
        }
        return (T)(x % y);
      } else {
        T r = fmod(x, y);
        if (r != 0 && ((r < 0) != (y < 0))) r += y;
        return r;
      }
    case B_MAX:
      if constexpr (std::is_floating_point<T>::value) return (x != x || y != y) ? (T)NAN : (x > y ? x : y);
      else return x > y ? x : y;
    case B_MIN:
      if constexpr (std::is_floating_point<T>::value) return (x != x || y != y) ? (T)NAN : (x < y ? x : y);
      else return x < y ? x : y;
    case B_PRELU: return x < (T)0 ? (T)(x * y) : x;
    default: return x;
  }
}

template <typename T>
__device__ __forceinline__ bool bin_cmp(T x, T y, int op) {
  switch (op) {
    case B_EQ: return x == y;
    case B_LT: return x < y;
    case B_GT: return x > y;
    case B_LE: return x <= y;
    case B_GE: return x >= y;
    case B_AND: return x && y;
    case B_OR: return x || y;
    case B_XOR: return (bool)x != (bool)y;
    default: return false;
  }
}

__device__ __forceinline__ void bcast_index(const bcast2 &s, int64_t i, int64_t *ia, int64_t *ib) {
  int64_t a = 0, b = 0, r = i;
  for (int d = s.nd - 1; d >= 0; d--) {
    int64_t c = r % s.dims[d];
    r /= s.dims[d];
    a += c * s.sa[d];
    b += c * s.sb[d];
  }
  *ia = a;
  *ib = b;
}

template <typename T>
__global__ void k_binary(const T *A, const T *B, T *Y, bcast2 s, int64_t total, int op, int same) {
  if (same) {
    CU_LOOP(i, total) Y[i] = bin_arith<T>(A[i], B[i], op);
  } else {
    CU_LOOP(i, total) {
      int64_t ia, ib;
      bcast_index(s, i, &ia, &ib);
      Y[i] = bin_arith<T>(A[ia], B[ib], op);
    }
  }
}

template <typename T>
__global__ void k_compare(const T *A, const T *B, bool *Y, bcast2 s, int64_t total, int op) {
  CU_LOOP(i, total) {
    int64_t ia, ib;
    bcast_index(s, i, &ia, &ib);
    Y[i] = bin_cmp<T>(A[ia], B[ib], op);
  }
}

/* Pow with an exponent of another type: read it as double. */
__device__ __forceinline__ double load_f64(const void *p, int64_t i, int dt) {
  switch (dt) {
    case MI_FLOAT: return ((const float *)p)[i];
    case MI_DOUBLE: return ((const double *)p)[i];
    case MI_INT8: return ((const int8_t *)p)[i];
    case MI_INT16: return ((const int16_t *)p)[i];
    case MI_INT32: return ((const int32_t *)p)[i];
    case MI_INT64: return (double)((const int64_t *)p)[i];
    case MI_UINT8: return ((const uint8_t *)p)[i];
    case MI_UINT16: return ((const uint16_t *)p)[i];
    case MI_UINT32: return ((const uint32_t *)p)[i];
    case MI_UINT64: return (double)((const uint64_t *)p)[i];
    default: return 0;
  }
}

template <typename T>
__global__ void k_pow_mixed(const T *A, const void *B, int bdt, T *Y, bcast2 s, int64_t total) {
  CU_LOOP(i, total) {
    int64_t ia, ib;
    bcast_index(s, i, &ia, &ib);
    double e = load_f64(B, ib, bdt);
    if constexpr (std::is_floating_point<T>::value) Y[i] = (T)pow((double)A[ia], e);
    else Y[i] = (T)pow((double)A[ia], e);
  }
}

static void make_bcast(const mi_tensor *a, const mi_tensor *b, const mi_tensor *y, bcast2 *s, int *same) {
  s->nd = y->ndim;
  memcpy(s->dims, y->dims, sizeof(int64_t) * (size_t)y->ndim);
  mi_cuda_bcast_strides(a, y->ndim, y->dims, s->sa);
  mi_cuda_bcast_strides(b, y->ndim, y->dims, s->sb);
  int64_t na = mi_numel(a->ndim, a->dims), nb = mi_numel(b->ndim, b->dims), ny = mi_numel(y->ndim, y->dims);
  *same = na == ny && nb == ny;
  if (s->nd == 0) { /* scalars */
    s->nd = 1;
    s->dims[0] = 1;
    s->sa[0] = s->sb[0] = 0;
  }
}

static mi_status *launch_binary(const mi_node *n, mi_cuda_ctx *cx, const mi_tensor *a, const mi_tensor *b,
                                mi_tensor *y, int op) {
  int64_t total = mi_numel(y->ndim, y->dims);
  if (!total) return NULL;
  bcast2 s;
  int same;
  make_bcast(a, b, y, &s, &same);
  unsigned g = mi_cuda_grid(total, 256);
  if (op == B_POW && a->dtype != b->dtype) {
    switch (a->dtype) {
      case MI_FLOAT: k_pow_mixed<float><<<g, 256, 0, cx->stream>>>((const float *)a->data, b->data, b->dtype, (float *)y->data, s, total); break;
      case MI_DOUBLE: k_pow_mixed<double><<<g, 256, 0, cx->stream>>>((const double *)a->data, b->data, b->dtype, (double *)y->data, s, total); break;
      case MI_INT32: k_pow_mixed<int32_t><<<g, 256, 0, cx->stream>>>((const int32_t *)a->data, b->data, b->dtype, (int32_t *)y->data, s, total); break;
      case MI_INT64: k_pow_mixed<int64_t><<<g, 256, 0, cx->stream>>>((const int64_t *)a->data, b->data, b->dtype, (int64_t *)y->data, s, total); break;
      default: return mi_node_error(n, MI_ERR_UNSUPPORTED, "Pow of %s is not supported on CUDA", mi_dtype_name(a->dtype));
    }
    CU_LAUNCHED(n);
    return NULL;
  }
  if (a->dtype != b->dtype)
    return mi_node_error(n, MI_ERR_SHAPE, "operand types differ (%s, %s)", mi_dtype_name(a->dtype),
                         mi_dtype_name(b->dtype));
  bool cmp = op >= B_EQ;
  if (!cmp && a->dtype == MI_BOOL)
    return mi_node_error(n, MI_ERR_UNSUPPORTED, "bool arithmetic is not supported");
  switch (a->dtype) {
#define X(DT, T)                                                                                        \
  case DT:                                                                                              \
    if (cmp)                                                                                            \
      k_compare<T><<<g, 256, 0, cx->stream>>>((const T *)a->data, (const T *)b->data, (bool *)y->data, s, \
                                              total, op);                                               \
    else if constexpr (!std::is_same<T, bool>::value)                                                   \
      k_binary<T><<<g, 256, 0, cx->stream>>>((const T *)a->data, (const T *)b->data, (T *)y->data, s,   \
                                             total, op, same);                                          \
    break;
    FOR_EACH_TYPE(X)
#undef X
    default: return mi_node_error(n, MI_ERR_UNSUPPORTED, "element type %s is not supported on CUDA", mi_dtype_name(a->dtype));
  }
  CU_LAUNCHED(n);
  return NULL;
}

static int binary_op_of(const mi_node *n) {
  static const struct { const char *name; int op; } t[] = {
      {"Add", B_ADD}, {"Sub", B_SUB}, {"Mul", B_MUL}, {"Div", B_DIV}, {"Pow", B_POW}, {"PRelu", B_PRELU},
      {"Equal", B_EQ}, {"Less", B_LT}, {"Greater", B_GT}, {"LessOrEqual", B_LE}, {"GreaterOrEqual", B_GE},
      {"And", B_AND}, {"Or", B_OR}, {"Xor", B_XOR}, {"Max", B_MAX}, {"Min", B_MIN}, {"Sum", B_ADD},
      {"Mean", B_ADD}};
  for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
    if (!strcmp(t[i].name, n->op_type)) return t[i].op;
  if (!strcmp(n->op_type, "Mod")) return mi_attr_int(n, "fmod", 0) ? B_MODC : B_MODPY;
  return -1;
}

static mi_status *binary_run(mi_node *n, mi_cuda_ctx *cx, mi_tensor *const *in, const mi_tensor *const *hin,
                             mi_tensor **out) {
  int op = binary_op_of(n);
  if (op < 0 || !in[0] || !in[1]) return mi_node_error(n, MI_ERR_INVALID_MODEL, "needs two inputs");
  if ((op == B_MODPY) && (in[0]->dtype == MI_FLOAT || in[0]->dtype == MI_DOUBLE))
    return mi_node_error(n, MI_ERR_INVALID_MODEL, "floating-point Mod requires fmod=1");
  if (op == B_PRELU) {
    /* PRelu slope broadcasts unidirectionally; older opsets allow a [C] slope
     * against N x C x ...: align it to the channel axis. */
    mi_tensor slope = *in[1];
    const mi_tensor *x = in[0];
    if (slope.ndim == 1 && x->ndim >= 2 && slope.dims[0] == x->dims[1] && slope.dims[0] != x->dims[x->ndim - 1]) {
      slope.ndim = x->ndim - 1;
      for (int d = 0; d < slope.ndim; d++) slope.dims[d] = d == 0 ? x->dims[1] : 1;
    }
    return launch_binary(n, cx, x, &slope, out[0], op);
  }
  return launch_binary(n, cx, in[0], in[1], out[0], op);
}

template <typename T>
__global__ void k_scale(T *y, int64_t total, double s) {
  CU_LOOP(i, total) y[i] = (T)((double)y[i] * s);
}

/* Max/Min/Sum/Mean over any number of inputs, broadcasting. */
static mi_status *variadic_run(mi_node *n, mi_cuda_ctx *cx, mi_tensor *const *in, const mi_tensor *const *hin,
                               mi_tensor **out) {
  int op = binary_op_of(n);
  mi_tensor *y = out[0];
  int k0 = 0;
  if (n->n_in < 1 || !in[0]) return mi_node_error(n, MI_ERR_INVALID_MODEL, "needs inputs");
  if (n->n_in >= 2) {
    MI_TRY(launch_binary(n, cx, in[0], in[1], y, op));
    k0 = 2;
  } else {
    mi_cuda_shape sh;
    sh.ndim = y->ndim;
    memcpy(sh.dims, y->dims, sizeof(int64_t) * (size_t)y->ndim);
    mi_cuda_bcast_strides(in[0], y->ndim, y->dims, sh.strides);
    if (in[0]->data != y->data)
      MI_TRY(mi_cuda_strided_copy(cx, n, in[0]->data, 0, y->data, 0, NULL, &sh, mi_dtype_size(y->dtype)));
    k0 = 1;
  }
  for (int k = k0; k < n->n_in; k++) MI_TRY(launch_binary(n, cx, y, in[k], y, op));
  if (!strcmp(n->op_type, "Mean") && n->n_in > 1) {
    int64_t total = mi_numel(y->ndim, y->dims);
    if (!total) return NULL;
    unsigned g = mi_cuda_grid(total, 256);
    if (y->dtype == MI_FLOAT) k_scale<float><<<g, 256, 0, cx->stream>>>((float *)y->data, total, 1.0 / n->n_in);
    else if (y->dtype == MI_DOUBLE) k_scale<double><<<g, 256, 0, cx->stream>>>((double *)y->data, total, 1.0 / n->n_in);
    else return mi_node_error(n, MI_ERR_UNSUPPORTED, "Mean of %s is not supported on CUDA", mi_dtype_name(y->dtype));
    CU_LAUNCHED(n);
  }
  return NULL;
}

/* ---- Where -------------------------------------------------------------------- */
typedef struct bcast3 {
  int nd;
  int64_t dims[MI_MAX_DIMS], sc[MI_MAX_DIMS], sx[MI_MAX_DIMS], sy[MI_MAX_DIMS];
} bcast3;

template <typename T>
__global__ void k_where(const bool *C, const T *X, const T *Y, T *O, bcast3 s, int64_t total) {
  CU_LOOP(i, total) {
    int64_t c = 0, x = 0, y = 0, r = i;
    for (int d = s.nd - 1; d >= 0; d--) {
      int64_t k = r % s.dims[d];
      r /= s.dims[d];
      c += k * s.sc[d];
      x += k * s.sx[d];
      y += k * s.sy[d];
    }
    O[i] = C[c] ? X[x] : Y[y];
  }
}

static mi_status *where_run(mi_node *n, mi_cuda_ctx *cx, mi_tensor *const *in, const mi_tensor *const *hin,
                            mi_tensor **out) {
  mi_tensor *o = out[0];
  int64_t total = mi_numel(o->ndim, o->dims);
  if (!total) return NULL;
  if (in[0]->dtype != MI_BOOL) return mi_node_error(n, MI_ERR_INVALID_MODEL, "condition must be bool");
  bcast3 s;
  s.nd = o->ndim;
  memcpy(s.dims, o->dims, sizeof(int64_t) * (size_t)o->ndim);
  mi_cuda_bcast_strides(in[0], o->ndim, o->dims, s.sc);
  mi_cuda_bcast_strides(in[1], o->ndim, o->dims, s.sx);
  mi_cuda_bcast_strides(in[2], o->ndim, o->dims, s.sy);
  if (s.nd == 0) {
    s.nd = 1;
    s.dims[0] = 1;
    s.sc[0] = s.sx[0] = s.sy[0] = 0;
  }
  unsigned g = mi_cuda_grid(total, 256);
  const bool *c = (const bool *)in[0]->data;
  switch (mi_dtype_size(o->dtype)) {
    case 1: k_where<uint8_t><<<g, 256, 0, cx->stream>>>(c, (const uint8_t *)in[1]->data, (const uint8_t *)in[2]->data, (uint8_t *)o->data, s, total); break;
    case 2: k_where<uint16_t><<<g, 256, 0, cx->stream>>>(c, (const uint16_t *)in[1]->data, (const uint16_t *)in[2]->data, (uint16_t *)o->data, s, total); break;
    case 4: k_where<uint32_t><<<g, 256, 0, cx->stream>>>(c, (const uint32_t *)in[1]->data, (const uint32_t *)in[2]->data, (uint32_t *)o->data, s, total); break;
    case 8: k_where<uint64_t><<<g, 256, 0, cx->stream>>>(c, (const uint64_t *)in[1]->data, (const uint64_t *)in[2]->data, (uint64_t *)o->data, s, total); break;
    default: return mi_node_error(n, MI_ERR_UNSUPPORTED, "element type not supported");
  }
  CU_LAUNCHED(n);
  return NULL;
}

#define UN(name) {name, unary_run}
extern const mi_cuda_op mi_cuda_ops_elementwise[] = {
    UN("Relu"), UN("LeakyRelu"), UN("Sigmoid"), UN("Tanh"), UN("Elu"), UN("Selu"), UN("Softplus"),
    UN("Softsign"), UN("HardSigmoid"), UN("HardSwish"), UN("Celu"), UN("ThresholdedRelu"), UN("Shrink"),
    UN("Abs"), UN("Neg"), UN("Exp"), UN("Log"), UN("Sqrt"), UN("Reciprocal"), UN("Erf"), UN("Floor"),
    UN("Ceil"), UN("Round"), UN("Sign"), UN("Sin"), UN("Cos"), UN("Tan"), UN("Asin"), UN("Acos"),
    UN("Atan"), UN("Sinh"), UN("Cosh"), UN("Asinh"), UN("Acosh"), UN("Atanh"), UN("Not"),
    {"Clip", clip_run}, {"IsNaN", isx_run}, {"IsInf", isx_run},
    {"Add", binary_run}, {"Sub", binary_run}, {"Mul", binary_run}, {"Div", binary_run},
    {"Pow", binary_run}, {"Mod", binary_run}, {"PRelu", binary_run}, {"Equal", binary_run},
    {"Less", binary_run}, {"Greater", binary_run}, {"LessOrEqual", binary_run},
    {"GreaterOrEqual", binary_run}, {"And", binary_run}, {"Or", binary_run}, {"Xor", binary_run},
    {"Max", variadic_run}, {"Min", variadic_run}, {"Sum", variadic_run}, {"Mean", variadic_run},
    {"Where", where_run},
    {NULL, NULL},
};
