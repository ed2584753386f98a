/* Elementwise operators: arithmetic, comparison, logic, unary math, variadic
 * Max/Min/Sum/Mean, Where.  Inputs broadcast with numpy rules through
 * mi_ew_run (broadcast.c).  Kernels are generated per element type by the
 * macros of broadcast.h and looked up in tables indexed by mi_dtype; a NULL
 * entry means the operator does not take that type. */
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "broadcast.h"
#include "ops.h"

typedef mi_ew_kernel ew_table[MI_EW_NDT];

/* X-macro adapters: (dtype, T, suffix, W, OP, SGN, EXPR). */
#define X_BIN(dt, T, sfx, W, OP, SGN, EXPR) MI_EW_BIN_KERNEL(OP##_##sfx, T, W, SGN, T, EXPR)
#define X_CMP(dt, T, sfx, W, OP, SGN, EXPR) MI_EW_BIN_KERNEL(OP##_##sfx, T, W, SGN, uint8_t, EXPR)
#define X_UN(dt, T, sfx, W, OP, SGN, EXPR) MI_EW_UN_KERNEL(OP##_##sfx, T, W, SGN, T, EXPR)
#define X_UNB(dt, T, sfx, W, OP, SGN, EXPR) MI_EW_UN_KERNEL(OP##_##sfx, T, W, SGN, uint8_t, EXPR)

#define TAB_ALL(OP) \
  { MI_EW_SINT(MI_EW_ENTRY, OP) MI_EW_UINT(MI_EW_ENTRY, OP) MI_EW_FLOAT(MI_EW_ENTRY, OP) }
#define TAB_SIGNED(OP) { MI_EW_SINT(MI_EW_ENTRY, OP) MI_EW_FLOAT(MI_EW_ENTRY, OP) }
#define TAB_FLOAT(OP) { MI_EW_FLOAT(MI_EW_ENTRY, OP) }

/* ---- arithmetic -------------------------------------------------------- */
/* Integers wrap around like numpy (computed in W_, never signed overflow). */
#define DEF_ARITH(OP, FEXPR, IEXPR)        \
  MI_EW_FLOAT(X_BIN, OP, 0, FEXPR)         \
  MI_EW_SINT(X_BIN, OP, 1, IEXPR)          \
  MI_EW_UINT(X_BIN, OP, 0, IEXPR)          \
  static const ew_table OP##_tab = TAB_ALL(OP);

DEF_ARITH(Add, x + y, (T_)((W_)x + (W_)y))
DEF_ARITH(Sub, x - y, (T_)((W_)x - (W_)y))
DEF_ARITH(Mul, x * y, (T_)((W_)x * (W_)y))
/* Integer division truncates like C.  x/0 gives 0 and MIN/-1 wraps instead of
 * trapping (SIGFPE): a malformed input must not kill the host. */
DEF_ARITH(Div, x / y,
          y == 0 ? (T_)0 : (sgn_ && y == (T_)-1) ? (T_)((W_)0 - (W_)x) : (T_)(x / y))

/* Max/Min propagate NaN like numpy.maximum/minimum. */
#define DEF_MINMAX(OP, CMP)                                  \
  MI_EW_FLOAT(X_BIN, OP, 0, (x CMP y || x != x) ? x : y)     \
  MI_EW_SINT(X_BIN, OP, 1, x CMP y ? x : y)                  \
  MI_EW_UINT(X_BIN, OP, 0, x CMP y ? x : y)                  \
  static const ew_table OP##_tab = TAB_ALL(OP);
DEF_MINMAX(Max, >)
DEF_MINMAX(Min, <)

/* Mod with fmod=1: C semantics (sign of the dividend). */
MI_EW_FLOAT(X_BIN, ModC, 0, MI_FM2(fmod, x, y))
MI_EW_SINT(X_BIN, ModC, 1, (y == 0 || y == (T_)-1) ? (T_)0 : (T_)(x % y))
MI_EW_UINT(X_BIN, ModC, 0, y == 0 ? (T_)0 : (T_)(x % y))
static const ew_table ModC_tab = TAB_ALL(ModC);
/* Mod with fmod=0 (integers only): Python semantics (sign of the divisor). */
MI_EW_SINT(X_BIN, ModPy, 1,
           (y == 0 || y == (T_)-1) ? (T_)0
           : (x % y != 0 && ((x % y < 0) != (y < 0))) ? (T_)(x % y + y)
                                                      : (T_)(x % y))
MI_EW_UINT(X_BIN, ModPy, 0, y == 0 ? (T_)0 : (T_)(x % y))
static const ew_table ModPy_tab = {MI_EW_SINT(MI_EW_ENTRY, ModPy) MI_EW_UINT(MI_EW_ENTRY, ModPy)};

MI_EW_FLOAT(X_BIN, PowF, 0, MI_FM2(pow, x, y))

/* ---- comparison and logic (bool output) -------------------------------- */
#define DEF_CMP(OP, CMP)                         \
  MI_EW_FLOAT(X_CMP, OP, 0, x CMP y)             \
  MI_EW_SINT(X_CMP, OP, 1, x CMP y)              \
  MI_EW_UINT(X_CMP, OP, 0, x CMP y)              \
  static const ew_table OP##_tab = {MI_EW_SINT(MI_EW_ENTRY, OP) MI_EW_UINT(MI_EW_ENTRY, OP) \
                                    MI_EW_FLOAT(MI_EW_ENTRY, OP)[MI_BOOL] = OP##_u8};
DEF_CMP(Equal, ==)
DEF_CMP(Greater, >)
DEF_CMP(Less, <)
DEF_CMP(GreaterEq, >=)
DEF_CMP(LessEq, <=)

/* bool tensors hold 0/1 bytes; != 0 keeps other nonzero bytes true. */
MI_EW_BIN_KERNEL(And_b, uint8_t, unsigned, 0, uint8_t, (x != 0) & (y != 0))
MI_EW_BIN_KERNEL(Or_b, uint8_t, unsigned, 0, uint8_t, (x != 0) | (y != 0))
MI_EW_BIN_KERNEL(Xor_b, uint8_t, unsigned, 0, uint8_t, (x != 0) ^ (y != 0))
MI_EW_UN_KERNEL(Not_b, uint8_t, unsigned, 0, uint8_t, x == 0)
static const ew_table And_tab = {[MI_BOOL] = And_b};
static const ew_table Or_tab = {[MI_BOOL] = Or_b};
static const ew_table Xor_tab = {[MI_BOOL] = Xor_b};
static const ew_table Not_tab = {[MI_BOOL] = Not_b};

/* ---- unary ------------------------------------------------------------- */
#define DEF_FMATH(OP, EXPR)        \
  MI_EW_FLOAT(X_UN, OP, 0, EXPR)   \
  static const ew_table OP##_tab = TAB_FLOAT(OP);
DEF_FMATH(Sqrt, MI_FM(sqrt, x))
DEF_FMATH(Exp, MI_FM(exp, x))
DEF_FMATH(Log, MI_FM(log, x))
DEF_FMATH(Reciprocal, (T_)1 / x)
DEF_FMATH(Erf, MI_FM(erf, x))
DEF_FMATH(Floor, MI_FM(floor, x))
DEF_FMATH(Ceil, MI_FM(ceil, x))
/* rint rounds half to even in the default rounding mode, as ONNX Round. */
DEF_FMATH(Round, MI_FM(rint, x))
DEF_FMATH(Sin, MI_FM(sin, x))
DEF_FMATH(Cos, MI_FM(cos, x))
DEF_FMATH(Tan, MI_FM(tan, x))
DEF_FMATH(Asin, MI_FM(asin, x))
DEF_FMATH(Acos, MI_FM(acos, x))
DEF_FMATH(Atan, MI_FM(atan, x))
DEF_FMATH(Sinh, MI_FM(sinh, x))
DEF_FMATH(Cosh, MI_FM(cosh, x))
DEF_FMATH(Asinh, MI_FM(asinh, x))
DEF_FMATH(Acosh, MI_FM(acosh, x))
DEF_FMATH(Atanh, MI_FM(atanh, x))

MI_EW_FLOAT(X_UN, Neg, 0, -x)
MI_EW_SINT(X_UN, Neg, 1, (T_)((W_)0 - (W_)x))
static const ew_table Neg_tab = TAB_SIGNED(Neg);

MI_EW_FLOAT(X_UN, Abs, 0, MI_FM(fabs, x))
MI_EW_SINT(X_UN, Abs, 1, x < 0 ? (T_)((W_)0 - (W_)x) : x)
MI_EW_UINT(X_UN, Abs, 0, x)
static const ew_table Abs_tab = TAB_ALL(Abs);

/* Sign keeps NaN (numpy); ints: (x > 0) - (x < 0). */
MI_EW_FLOAT(X_UN, Sign, 0, x > 0 ? (T_)1 : x < 0 ? (T_)-1 : x == 0 ? (T_)0 : x)
MI_EW_SINT(X_UN, Sign, 1, (T_)((x > 0) - (x < 0)))
MI_EW_UINT(X_UN, Sign, 0, (T_)(x != 0))
static const ew_table Sign_tab = TAB_ALL(Sign);

MI_EW_FLOAT(X_UNB, IsNaN, 0, x != x)
static const ew_table IsNaN_tab = TAB_FLOAT(IsNaN);

/* ---- operator descriptors ---------------------------------------------- */
typedef enum ew_kind {
  K_UNARY,    /* same type out (or bool when out_bool) */
  K_BINARY,   /* same-type inputs, broadcast */
  K_VARIADIC, /* Max/Min/Sum/Mean */
  K_POW,
  K_MOD,
  K_WHERE,
  K_ISINF
} ew_kind;

typedef struct ew_desc {
  const char *op_type;
  ew_kind kind;
  const mi_ew_kernel *tab;
  bool out_bool;
  bool legacy; /* opset < 7 form takes `broadcast`/`axis` attributes */
  int64_t grain;
} ew_desc;

enum { G_CHEAP = MI_EW_GRAIN_CHEAP, G_MATH = MI_EW_GRAIN_MATH };

static const ew_desc descs[] = {
    {"Add", K_BINARY, Add_tab, false, true, G_CHEAP},
    {"Sub", K_BINARY, Sub_tab, false, true, G_CHEAP},
    {"Mul", K_BINARY, Mul_tab, false, true, G_CHEAP},
    {"Div", K_BINARY, Div_tab, false, true, G_CHEAP},
    {"Pow", K_POW, NULL, false, true, G_MATH},
    {"Mod", K_MOD, NULL, false, false, G_CHEAP},
    {"Equal", K_BINARY, Equal_tab, true, true, G_CHEAP},
    {"Greater", K_BINARY, Greater_tab, true, true, G_CHEAP},
    {"Less", K_BINARY, Less_tab, true, true, G_CHEAP},
    {"GreaterOrEqual", K_BINARY, GreaterEq_tab, true, false, G_CHEAP},
    {"LessOrEqual", K_BINARY, LessEq_tab, true, false, G_CHEAP},
    {"And", K_BINARY, And_tab, true, true, G_CHEAP},
    {"Or", K_BINARY, Or_tab, true, true, G_CHEAP},
    {"Xor", K_BINARY, Xor_tab, true, true, G_CHEAP},
    {"Not", K_UNARY, Not_tab, true, false, G_CHEAP},
    {"Max", K_VARIADIC, Max_tab, false, false, G_CHEAP},
    {"Min", K_VARIADIC, Min_tab, false, false, G_CHEAP},
    {"Sum", K_VARIADIC, Add_tab, false, false, G_CHEAP},
    {"Mean", K_VARIADIC, Add_tab, false, false, G_CHEAP},
    {"Where", K_WHERE, NULL, false, false, G_CHEAP},
    {"IsNaN", K_UNARY, IsNaN_tab, true, false, G_CHEAP},
    {"IsInf", K_ISINF, NULL, true, false, G_CHEAP},
    {"Sqrt", K_UNARY, Sqrt_tab, false, false, G_MATH},
    {"Exp", K_UNARY, Exp_tab, false, false, G_MATH},
    {"Log", K_UNARY, Log_tab, false, false, G_MATH},
    {"Neg", K_UNARY, Neg_tab, false, false, G_CHEAP},
    {"Abs", K_UNARY, Abs_tab, false, false, G_CHEAP},
    {"Reciprocal", K_UNARY, Reciprocal_tab, false, false, G_CHEAP},
    {"Erf", K_UNARY, Erf_tab, false, false, G_MATH},
    {"Floor", K_UNARY, Floor_tab, false, false, G_CHEAP},
    {"Ceil", K_UNARY, Ceil_tab, false, false, G_CHEAP},
    {"Round", K_UNARY, Round_tab, false, false, G_CHEAP},
    {"Sign", K_UNARY, Sign_tab, false, false, G_CHEAP},
    {"Sin", K_UNARY, Sin_tab, false, false, G_MATH},
    {"Cos", K_UNARY, Cos_tab, false, false, G_MATH},
    {"Tan", K_UNARY, Tan_tab, false, false, G_MATH},
    {"Asin", K_UNARY, Asin_tab, false, false, G_MATH},
    {"Acos", K_UNARY, Acos_tab, false, false, G_MATH},
    {"Atan", K_UNARY, Atan_tab, false, false, G_MATH},
    {"Sinh", K_UNARY, Sinh_tab, false, false, G_MATH},
    {"Cosh", K_UNARY, Cosh_tab, false, false, G_MATH},
    {"Asinh", K_UNARY, Asinh_tab, false, false, G_MATH},
    {"Acosh", K_UNARY, Acosh_tab, false, false, G_MATH},
    {"Atanh", K_UNARY, Atanh_tab, false, false, G_MATH},
};

typedef struct ew_priv {
  const ew_desc *d;
  int fmod;                  /* Mod */
  int detect_pos, detect_neg; /* IsInf */
} ew_priv;

static mi_status *ew_init(mi_node *n, mi_graph *g) {
  (void)g;
  const ew_desc *d = NULL;
  for (size_t i = 0; i < sizeof descs / sizeof descs[0]; i++)
    if (strcmp(descs[i].op_type, n->op_type) == 0) d = &descs[i];
  if (!d) return mi_node_error(n, MI_ERR_INTERNAL, "no elementwise kernel for this operator");
  ew_priv *p = calloc(1, sizeof *p);
  if (!p) return mi_node_error(n, MI_ERR_NO_MEMORY, "out of memory");
  p->d = d;
  p->fmod = (int)mi_attr_int(n, "fmod", 0);
  p->detect_pos = (int)mi_attr_int(n, "detect_positive", 1);
  p->detect_neg = (int)mi_attr_int(n, "detect_negative", 1);
  n->priv = p;
  if (d->kind == K_MOD && p->fmod != 0 && p->fmod != 1)
    return mi_node_error(n, MI_ERR_UNSUPPORTED, "fmod must be 0 or 1, got %d", p->fmod);
  if (d->legacy && n->opset < 7) {
    int64_t bc = mi_attr_int(n, "broadcast", 0);
    if (bc != 0 && bc != 1)
      return mi_node_error(n, MI_ERR_UNSUPPORTED, "broadcast must be 0 or 1, got %lld",
                           (long long)bc);
  }
  return NULL;
}

/* ---- shape helpers ----------------------------------------------------- */
static mi_status *need_inputs(const mi_node *n, mi_tensor *const *in, int count) {
  if (n->n_in < count)
    return mi_node_error(n, MI_ERR_INVALID_MODEL, "expects %d inputs, got %d", count, n->n_in);
  for (int i = 0; i < count; i++)
    if (!in[i]) return mi_node_error(n, MI_ERR_INVALID_MODEL, "input %d is missing", i);
  return NULL;
}

static mi_status *type_error(const mi_node *n, mi_dtype dt) {
  return mi_node_error(n, MI_ERR_UNSUPPORTED, "element type %s not supported",
                       mi_dtype_name(dt));
}

/* Input B as seen by the kernel.  Before opset 7 binary ops broadcast only
 * when `broadcast`=1, B aligned with A at `axis` (trailing when absent). */
static mi_status *effective_b(const mi_node *n, const ew_priv *p, mi_tensor *const *in,
                              mi_tensor *b) {
  *b = *in[1];
  if (!p->d->legacy || n->opset >= 7) return NULL;
  const mi_tensor *a = in[0];
  char sa[96], sb[96];
  if (mi_attr_int(n, "broadcast", 0) == 0) {
    bool same = a->ndim == b->ndim;
    for (int i = 0; same && i < a->ndim; i++) same = a->dims[i] == b->dims[i];
    if (!same)
      return mi_node_error(n, MI_ERR_SHAPE, "shapes %s and %s differ and broadcast=0",
                           mi_shape_str(a, sa, sizeof sa), mi_shape_str(b, sb, sizeof sb));
    return NULL;
  }
  if (b->ndim > a->ndim)
    return mi_node_error(n, MI_ERR_SHAPE, "B (%s) has higher rank than A (%s)",
                         mi_shape_str(b, sb, sizeof sb), mi_shape_str(a, sa, sizeof sa));
  if (mi_node_attr(n, "axis")) {
    int64_t axis = mi_attr_int(n, "axis", 0);
    if (axis < 0) axis += a->ndim;
    if (axis < 0 || axis + b->ndim > a->ndim)
      return mi_node_error(n, MI_ERR_SHAPE, "axis %lld does not fit B (%s) into A (%s)",
                           (long long)mi_attr_int(n, "axis", 0), mi_shape_str(b, sb, sizeof sb),
                           mi_shape_str(a, sa, sizeof sa));
    b->ndim = a->ndim;
    for (int i = 0; i < a->ndim; i++)
      b->dims[i] = i >= axis && i < axis + in[1]->ndim ? in[1]->dims[i - axis] : 1;
  }
  if (!mi_ew_broadcasts_to(b, a->ndim, a->dims))
    return mi_node_error(n, MI_ERR_SHAPE, "B (%s) does not broadcast to A (%s)",
                         mi_shape_str(in[1], sb, sizeof sb), mi_shape_str(a, sa, sizeof sa));
  return NULL;
}

/* Broadcast shape of k tensors into out (dtype set by the caller). */
static mi_status *broadcast_all(const mi_node *n, const mi_tensor *const *t, int k,
                                mi_tensor *out) {
  int nd = t[0]->ndim;
  int64_t dims[MI_MAX_DIMS];
  memcpy(dims, t[0]->dims, sizeof(int64_t) * (size_t)nd);
  for (int i = 1; i < k; i++) {
    int64_t tmp[MI_MAX_DIMS];
    int tn = 0;
    if (t[i]->ndim > MI_MAX_DIMS)
      return mi_node_error(n, MI_ERR_SHAPE, "rank %d too high", t[i]->ndim);
    mi_status *st = mi_broadcast_shape(nd, dims, t[i]->ndim, t[i]->dims, &tn, tmp);
    if (st) {
      mi_status_free(st);
      char s0[96], s1[96];
      mi_tensor prev = *t[0];
      prev.ndim = nd;
      memcpy(prev.dims, dims, sizeof(int64_t) * (size_t)nd);
      return mi_node_error(n, MI_ERR_SHAPE, "input %d (%s) does not broadcast with %s", i,
                           mi_shape_str(t[i], s1, sizeof s1), mi_shape_str(&prev, s0, sizeof s0));
    }
    nd = tn;
    memcpy(dims, tmp, sizeof(int64_t) * (size_t)nd);
  }
  out->ndim = nd;
  memcpy(out->dims, dims, sizeof(int64_t) * (size_t)nd);
  return NULL;
}

static mi_status *run_error(const mi_node *n) {
  return mi_node_error(n, MI_ERR_SHAPE, "input shapes do not broadcast to the output shape");
}

/* ---- unary ------------------------------------------------------------- */
static mi_status *unary_infer(mi_node *n, mi_tensor *const *in, mi_tensor **out) {
  const ew_priv *p = n->priv;
  MI_TRY(need_inputs(n, in, 1));
  mi_dtype dt = in[0]->dtype;
  if ((unsigned)dt >= MI_EW_NDT || !p->d->tab[dt]) return type_error(n, dt);
  mi_tensor_set_shape(out[0], p->d->out_bool ? MI_BOOL : dt, in[0]->ndim, in[0]->dims);
  return NULL;
}

static mi_status *unary_run(mi_node *n, mi_exec *ex, mi_tensor *const *in, mi_tensor **out) {
  const ew_priv *p = n->priv;
  const mi_tensor *ins[1] = {in[0]};
  if (!mi_ew_run(ex, out[0], 1, ins, p->d->tab[in[0]->dtype], p, p->d->grain))
    return run_error(n);
  return NULL;
}

/* IsInf honours detect_positive / detect_negative. */
#define ISINF_KERNEL(T, sfx)                                                              \
  static void IsInf_##sfx(const void *prm, const char *const *in, const int64_t *s,       \
                          char *out, int64_t n) {                                         \
    (void)s;                                                                              \
    const ew_priv *p = prm;                                                               \
    const T *a = (const T *)in[0];                                                        \
    uint8_t *o = (uint8_t *)out;                                                          \
    const T pos = p->detect_pos ? (T)INFINITY : (T)NAN, neg = p->detect_neg ? -(T)INFINITY \
                                                                             : (T)NAN;   \
    for (int64_t i = 0; i < n; i++) o[i] = (a[i] == pos) | (a[i] == neg);                 \
  }
ISINF_KERNEL(float, f32)
ISINF_KERNEL(double, f64)
static const ew_table IsInf_tab = TAB_FLOAT(IsInf);

static mi_status *isinf_infer(mi_node *n, mi_tensor *const *in, mi_tensor **out) {
  MI_TRY(need_inputs(n, in, 1));
  if (!mi_dtype_is_float(in[0]->dtype)) return type_error(n, in[0]->dtype);
  mi_tensor_set_shape(out[0], MI_BOOL, in[0]->ndim, in[0]->dims);
  return NULL;
}

static mi_status *isinf_run(mi_node *n, mi_exec *ex, mi_tensor *const *in, mi_tensor **out) {
  const mi_tensor *ins[1] = {in[0]};
  if (!mi_ew_run(ex, out[0], 1, ins, IsInf_tab[in[0]->dtype], n->priv, G_CHEAP))
    return run_error(n);
  return NULL;
}

/* ---- binary ------------------------------------------------------------ */
static const mi_ew_kernel *binary_table(const ew_priv *p) {
  if (p->d->kind == K_MOD) return p->fmod ? ModC_tab : ModPy_tab;
  return p->d->tab;
}

static mi_status *binary_infer(mi_node *n, mi_tensor *const *in, mi_tensor **out) {
  const ew_priv *p = n->priv;
  MI_TRY(need_inputs(n, in, 2));
  mi_dtype dt = in[0]->dtype;
  if (in[1]->dtype != dt)
    return mi_node_error(n, MI_ERR_INVALID_MODEL, "input types differ (%s vs %s)",
                         mi_dtype_name(dt), mi_dtype_name(in[1]->dtype));
  if (p->d->kind == K_MOD && !p->fmod && mi_dtype_is_float(dt))
    return mi_node_error(n, MI_ERR_INVALID_MODEL, "floating-point Mod requires fmod=1");
  if ((unsigned)dt >= MI_EW_NDT || !binary_table(p)[dt]) return type_error(n, dt);
  mi_tensor b;
  MI_TRY(effective_b(n, p, in, &b));
  const mi_tensor *t[2] = {in[0], &b};
  MI_TRY(broadcast_all(n, t, 2, out[0]));
  out[0]->dtype = p->d->out_bool ? MI_BOOL : dt;
  return NULL;
}

static mi_status *binary_run(mi_node *n, mi_exec *ex, mi_tensor *const *in, mi_tensor **out) {
  const ew_priv *p = n->priv;
  mi_tensor b;
  MI_TRY(effective_b(n, p, in, &b));
  const mi_tensor *t[2] = {in[0], &b};
  if (!mi_ew_run(ex, out[0], 2, t, binary_table(p)[in[0]->dtype], p, p->d->grain))
    return run_error(n);
  return NULL;
}

/* ---- Pow --------------------------------------------------------------- */
/* Same-type float Pow uses PowF_*; every other type pair goes through this
 * generic kernel reading both operands by dtype.  Integer ^ integer is exact
 * (repeated squaring, wrapping like numpy); anything with a float is
 * computed in double and converted to the base type. */
typedef struct pow_param {
  mi_dtype ta, tb, to;
} pow_param;

static double ld_f64(mi_dtype t, const char *p, int64_t i) {
  switch (t) {
    case MI_FLOAT: return ((const float *)p)[i];
    case MI_DOUBLE: return ((const double *)p)[i];
    case MI_UINT64: return (double)((const uint64_t *)p)[i];
    default: break;
  }
  mi_tensor t1 = {.dtype = t, .data = (void *)p};
  return (double)mi_tensor_get_i64(&t1, i);
}

static int64_t ld_i64(mi_dtype t, const char *p, int64_t i) {
  mi_tensor t1 = {.dtype = t, .data = (void *)p};
  return mi_tensor_get_i64(&t1, i);
}

static int64_t ipow(int64_t base, int64_t e) {
  if (e < 0) return base == 1 ? 1 : base == -1 ? ((e & 1) ? -1 : 1) : 0;
  uint64_t r = 1, b = (uint64_t)base;
  while (e) {
    if (e & 1) r *= b;
    b *= b;
    e >>= 1;
  }
  return (int64_t)r;
}

/* Store an int64 into an integer tensor element, wrapping like a C cast to
 * the unsigned type (never an out-of-range signed conversion). */
static void st_i64(mi_dtype t, char *p, int64_t i, int64_t v) {
  switch (t) {
    case MI_INT64: ((int64_t *)p)[i] = v; break;
    case MI_UINT64: ((uint64_t *)p)[i] = (uint64_t)v; break;
    case MI_INT32: ((int32_t *)p)[i] = (int32_t)(uint32_t)v; break;
    case MI_UINT32: ((uint32_t *)p)[i] = (uint32_t)v; break;
    case MI_INT16: ((int16_t *)p)[i] = (int16_t)(uint16_t)v; break;
    case MI_UINT16: ((uint16_t *)p)[i] = (uint16_t)v; break;
    case MI_INT8: ((int8_t *)p)[i] = (int8_t)(uint8_t)v; break;
    case MI_UINT8: ((uint8_t *)p)[i] = (uint8_t)v; break;
    default: break;
  }
}

static void pow_generic(const void *prm, const char *const *in, const int64_t *s, char *out,
                        int64_t n) {
  const pow_param *p = prm;
  if (!mi_dtype_is_float(p->ta) && !mi_dtype_is_float(p->tb)) {
    for (int64_t i = 0; i < n; i++)
      st_i64(p->to, out, i, ipow(ld_i64(p->ta, in[0], i * s[0]), ld_i64(p->tb, in[1], i * s[1])));
    return;
  }
  for (int64_t i = 0; i < n; i++) {
    double v = pow(ld_f64(p->ta, in[0], i * s[0]), ld_f64(p->tb, in[1], i * s[1]));
    if (p->to == MI_FLOAT) ((float *)out)[i] = (float)v;
    else if (p->to == MI_DOUBLE) ((double *)out)[i] = v;
    else st_i64(p->to, out, i, mi_ew_d2i(v));
  }
}

static bool numeric(mi_dtype t) { return mi_dtype_is_float(t) || mi_dtype_is_int(t); }

static mi_status *pow_infer(mi_node *n, mi_tensor *const *in, mi_tensor **out) {
  const ew_priv *p = n->priv;
  MI_TRY(need_inputs(n, in, 2));
  if (!numeric(in[0]->dtype)) return type_error(n, in[0]->dtype);
  if (!numeric(in[1]->dtype)) return type_error(n, in[1]->dtype);
  mi_tensor b;
  MI_TRY(effective_b(n, p, in, &b));
  const mi_tensor *t[2] = {in[0], &b};
  MI_TRY(broadcast_all(n, t, 2, out[0]));
  out[0]->dtype = in[0]->dtype; /* the result has the base's type */
  return NULL;
}

static mi_status *pow_run(mi_node *n, mi_exec *ex, mi_tensor *const *in, mi_tensor **out) {
  const ew_priv *p = n->priv;
  mi_tensor b;
  MI_TRY(effective_b(n, p, in, &b));
  const mi_tensor *t[2] = {in[0], &b};
  mi_dtype ta = in[0]->dtype, tb = in[1]->dtype;
  pow_param pp = {ta, tb, out[0]->dtype};
  bool ok;
  if (ta == tb && ta == MI_FLOAT)
    ok = mi_ew_run(ex, out[0], 2, t, PowF_f32, NULL, G_MATH);
  else if (ta == tb && ta == MI_DOUBLE)
    ok = mi_ew_run(ex, out[0], 2, t, PowF_f64, NULL, G_MATH);
  else
    ok = mi_ew_run(ex, out[0], 2, t, pow_generic, &pp, G_MATH);
  return ok ? NULL : run_error(n);
}

/* ---- variadic Max/Min/Sum/Mean ----------------------------------------- */
/* out = op(in0, in1), then out = op(out, ink) for the rest: every step is
 * elementwise at the same index, so out may alias in0 (in place). */
static mi_status *variadic_infer(mi_node *n, mi_tensor *const *in, mi_tensor **out) {
  const ew_priv *p = n->priv;
  if (n->n_in < 1) return mi_node_error(n, MI_ERR_INVALID_MODEL, "needs at least one input");
  MI_TRY(need_inputs(n, in, n->n_in));
  mi_dtype dt = in[0]->dtype;
  for (int i = 1; i < n->n_in; i++)
    if (in[i]->dtype != dt)
      return mi_node_error(n, MI_ERR_INVALID_MODEL, "input %d has type %s, input 0 %s", i,
                           mi_dtype_name(in[i]->dtype), mi_dtype_name(dt));
  if ((unsigned)dt >= MI_EW_NDT || !p->d->tab[dt]) return type_error(n, dt);
  if (strcmp(p->d->op_type, "Mean") == 0 && !mi_dtype_is_float(dt)) return type_error(n, dt);
  MI_TRY(broadcast_all(n, (const mi_tensor *const *)in, n->n_in, out[0]));
  out[0]->dtype = dt;
  return NULL;
}

MI_EW_FLOAT(X_UN, MeanDiv, 0, x / *(const T_ *)prm)

static mi_status *variadic_run(mi_node *n, mi_exec *ex, mi_tensor *const *in, mi_tensor **out) {
  const ew_priv *p = n->priv;
  mi_tensor *o = out[0];
  mi_ew_kernel k = p->d->tab[in[0]->dtype];
  /* In place, a later input that is input 0 again (Sum(x, y, x)) shares
   * out's buffer and would be read after the first step overwrote it: fold
   * a copy of it instead. */
  mi_tensor saved_t;
  void *saved = NULL;
  for (int i = 2; i < n->n_in && !saved; i++)
    if (in[i]->data == o->data && mi_tensor_nbytes(in[i])) {
      saved = mi_exec_scratch(ex, mi_tensor_nbytes(in[i]));
      if (!saved) return mi_node_error(n, MI_ERR_NO_MEMORY, "out of scratch memory");
      memcpy(saved, in[i]->data, mi_tensor_nbytes(in[i]));
      saved_t = *in[i];
      saved_t.data = saved;
    }
  mi_status *st = NULL;
  if (n->n_in == 1) {
    if (o->data != in[0]->data) memmove(o->data, in[0]->data, mi_tensor_nbytes(o));
  } else {
    const mi_tensor *t[2] = {in[0], in[1]};
    if (!mi_ew_run(ex, o, 2, t, k, p, p->d->grain)) st = run_error(n);
    for (int i = 2; i < n->n_in && !st; i++) {
      const mi_tensor *u[2] = {o, saved && in[i]->data == o->data ? &saved_t : in[i]};
      if (!mi_ew_run(ex, o, 2, u, k, p, p->d->grain)) st = run_error(n);
    }
  }
  if (saved) mi_exec_scratch_release(ex, saved);
  if (!st && strcmp(p->d->op_type, "Mean") == 0 && n->n_in > 1) {
    const mi_tensor *u[1] = {o};
    float cf = (float)n->n_in;
    double cd = (double)n->n_in;
    bool f32 = o->dtype == MI_FLOAT;
    if (!mi_ew_run(ex, o, 1, u, f32 ? MeanDiv_f32 : MeanDiv_f64, f32 ? (const void *)&cf : &cd,
                   G_CHEAP))
      st = run_error(n);
  }
  return st;
}

/* ---- Where ------------------------------------------------------------- */
/* Selection only moves bytes, so one kernel per element size serves every
 * type. */
#define WHERE_KERNEL(T, sz)                                                              \
  static void where_##sz(const void *prm, const char *const *in, const int64_t *s,       \
                         char *out, int64_t n) {                                         \
    (void)prm;                                                                           \
    const uint8_t *c = (const uint8_t *)in[0];                                           \
    const T *x = (const T *)in[1], *y = (const T *)in[2];                                \
    T *o = (T *)out;                                                                     \
    if (s[0] && s[1] && s[2]) {                                                          \
      for (int64_t i = 0; i < n; i++) o[i] = c[i] ? x[i] : y[i];                         \
    } else {                                                                             \
      const int64_t s0 = s[0], s1 = s[1], s2 = s[2];                                     \
      for (int64_t i = 0; i < n; i++) o[i] = c[i * s0] ? x[i * s1] : y[i * s2];          \
    }                                                                                    \
  }
WHERE_KERNEL(uint8_t, 1)
WHERE_KERNEL(uint16_t, 2)
WHERE_KERNEL(uint32_t, 4)
WHERE_KERNEL(uint64_t, 8)

static mi_status *where_infer(mi_node *n, mi_tensor *const *in, mi_tensor **out) {
  MI_TRY(need_inputs(n, in, 3));
  if (in[0]->dtype != MI_BOOL)
    return mi_node_error(n, MI_ERR_INVALID_MODEL, "condition must be bool, got %s",
                         mi_dtype_name(in[0]->dtype));
  if (in[1]->dtype != in[2]->dtype)
    return mi_node_error(n, MI_ERR_INVALID_MODEL, "X and Y types differ (%s vs %s)",
                         mi_dtype_name(in[1]->dtype), mi_dtype_name(in[2]->dtype));
  if (!mi_dtype_size(in[1]->dtype)) return type_error(n, in[1]->dtype);
  MI_TRY(broadcast_all(n, (const mi_tensor *const *)in, 3, out[0]));
  out[0]->dtype = in[1]->dtype;
  return NULL;
}

static mi_status *where_run(mi_node *n, mi_exec *ex, mi_tensor *const *in, mi_tensor **out) {
  const mi_tensor *t[3] = {in[0], in[1], in[2]};
  mi_ew_kernel k;
  switch (mi_dtype_size(in[1]->dtype)) {
    case 1: k = where_1; break;
    case 2: k = where_2; break;
    case 4: k = where_4; break;
    case 8: k = where_8; break;
    default: return type_error(n, in[1]->dtype);
  }
  return mi_ew_run(ex, out[0], 3, t, k, NULL, G_CHEAP) ? NULL : run_error(n);
}

/* ---- registry ---------------------------------------------------------- */
#define UNARY(name, opset, flags) {name, opset, flags, ew_init, unary_infer, unary_run, NULL}
#define BINARY(name, opset, flags) {name, opset, flags, ew_init, binary_infer, binary_run, NULL}
#define VARIADIC(name, opset) \
  {name, opset, MI_OP_INPLACE, ew_init, variadic_infer, variadic_run, NULL}
enum { IP = MI_OP_INPLACE };

/* min_opset: the oldest version with these semantics (opset 1-5 arithmetic
 * had consumed_inputs; opset < 7 broadcast/axis attributes are handled). */
const mi_op_def mi_ops_elementwise[] = {
    BINARY("Add", 6, IP),
    BINARY("Sub", 6, IP),
    BINARY("Mul", 6, IP),
    BINARY("Div", 6, IP),
    {"Pow", 1, IP, ew_init, pow_infer, pow_run, NULL},
    BINARY("Mod", 10, IP),
    BINARY("Equal", 1, 0),
    BINARY("Greater", 1, 0),
    BINARY("Less", 1, 0),
    BINARY("GreaterOrEqual", 12, 0),
    BINARY("LessOrEqual", 12, 0),
    BINARY("And", 1, IP),
    BINARY("Or", 1, IP),
    BINARY("Xor", 1, IP),
    UNARY("Not", 1, IP),
    VARIADIC("Max", 6),
    VARIADIC("Min", 6),
    VARIADIC("Sum", 6),
    VARIADIC("Mean", 6),
    {"Where", 9, 0, ew_init, where_infer, where_run, NULL},
    UNARY("IsNaN", 9, 0),
    {"IsInf", 10, 0, ew_init, isinf_infer, isinf_run, NULL},
    UNARY("Sqrt", 6, IP),
    UNARY("Exp", 6, IP),
    UNARY("Log", 6, IP),
    UNARY("Neg", 6, IP),
    UNARY("Abs", 6, IP),
    UNARY("Reciprocal", 6, IP),
    UNARY("Erf", 9, IP),
    UNARY("Floor", 6, IP),
    UNARY("Ceil", 6, IP),
    UNARY("Round", 11, IP),
    UNARY("Sign", 9, IP),
    UNARY("Sin", 7, IP),
    UNARY("Cos", 7, IP),
    UNARY("Tan", 7, IP),
    UNARY("Asin", 7, IP),
    UNARY("Acos", 7, IP),
    UNARY("Atan", 7, IP),
    UNARY("Sinh", 9, IP),
    UNARY("Cosh", 9, IP),
    UNARY("Asinh", 9, IP),
    UNARY("Acosh", 9, IP),
    UNARY("Atanh", 9, IP),
    {NULL},
};
