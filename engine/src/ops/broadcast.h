/* Broadcasting elementwise driver shared by elementwise.c and activation.c. */
#ifndef MEDINFER_OPS_BROADCAST_H
#define MEDINFER_OPS_BROADCAST_H
#include "../internal.h"

/* Highest mi_dtype value + 1: kernel tables are indexed by dtype. */
#define MI_EW_NDT 14
#define MI_EW_MAXIN 3

/* Processes n consecutive output elements.  in[k] points at input k's first
 * element of the run; s[k] is 1 when input k advances with the output and 0
 * when it is broadcast along the run (one value reused n times).  out may be
 * the very buffer of in[0] (in place): kernels read element i before writing
 * it and never touch other elements. */
typedef void (*mi_ew_kernel)(const void *param, const char *const *in, const int64_t *s,
                             char *out, int64_t n);

/* out = kernel(in[0], .., in[nin-1]) with numpy broadcasting of every input to
 * out's shape (already inferred).  Work is split over ex's threads in chunks
 * of at least `grain` elements.  Returns false (doing nothing) if an input
 * does not broadcast to out's shape. */
bool mi_ew_run(mi_exec *ex, mi_tensor *out, int nin, const mi_tensor *const *in,
               mi_ew_kernel kernel, const void *param, int64_t grain);

/* True if `in` broadcasts (numpy rules) to exactly `out_ndim`/`out_dims`. */
bool mi_ew_broadcasts_to(const mi_tensor *in, int out_ndim, const int64_t *out_dims);

/* Grain sizes: cheap arithmetic vs transcendental functions. */
#define MI_EW_GRAIN_CHEAP 32768
#define MI_EW_GRAIN_MATH 4096

static inline bool mi_dtype_is_float(mi_dtype t) { return t == MI_FLOAT || t == MI_DOUBLE; }
static inline bool mi_dtype_is_int(mi_dtype t) {
  return t == MI_INT8 || t == MI_INT16 || t == MI_INT32 || t == MI_INT64 || t == MI_UINT8 ||
         t == MI_UINT16 || t == MI_UINT32 || t == MI_UINT64;
}
static inline bool mi_dtype_is_signed_int(mi_dtype t) {
  return t == MI_INT8 || t == MI_INT16 || t == MI_INT32 || t == MI_INT64;
}

/* double -> int64 without the undefined behaviour of an out-of-range cast
 * (NaN gives 0, out of range saturates). */
static inline int64_t mi_ew_d2i(double v) {
  if (!(v == v)) return 0;
  if (v >= 9223372036854775807.0) return INT64_MAX;
  if (v <= -9223372036854775808.0) return INT64_MIN;
  return (int64_t)v;
}

/* Element type lists for generating typed kernels: each calls
 * X(dtype, C type, suffix, W, ...) where W is a wide unsigned type for
 * wrap-around integer arithmetic (no signed overflow, no promotion to int)
 * and ... passes the caller's extra arguments through. */
#define MI_EW_SINT(X, ...)                                                              \
  X(MI_INT8, int8_t, i8, unsigned, __VA_ARGS__) X(MI_INT16, int16_t, i16, unsigned, __VA_ARGS__) \
  X(MI_INT32, int32_t, i32, unsigned, __VA_ARGS__) X(MI_INT64, int64_t, i64, uint64_t, __VA_ARGS__)
#define MI_EW_UINT(X, ...)                                                                \
  X(MI_UINT8, uint8_t, u8, unsigned, __VA_ARGS__) X(MI_UINT16, uint16_t, u16, unsigned, __VA_ARGS__) \
  X(MI_UINT32, uint32_t, u32, unsigned, __VA_ARGS__) X(MI_UINT64, uint64_t, u64, uint64_t, __VA_ARGS__)
#define MI_EW_FLOAT(X, ...) \
  X(MI_FLOAT, float, f32, float, __VA_ARGS__) X(MI_DOUBLE, double, f64, double, __VA_ARGS__)

/* ---- typed kernel generators ------------------------------------------- */
/* Binary kernel NAME: out[i] = EXPR, where EXPR may use x (in[0]), y (in[1]),
 * the element type T_, its wide unsigned type W_, sgn_ (1 for signed
 * integers) and prm (the param pointer).  The four stride cases are separate
 * loops so that each one vectorizes.  Outputs are not `restrict`: in-place
 * runs alias in[0]. */
#define MI_EW_BIN_KERNEL(NAME, T, W, SGN, TO, EXPR)                                         \
  static void NAME(const void *prm, const char *const *in, const int64_t *s, char *out,    \
                   int64_t n) {                                                             \
    typedef T T_;                                                                           \
    typedef W W_;                                                                           \
    enum { sgn_ = SGN };                                                                    \
    (void)prm;                                                                              \
    (void)sizeof(W_);                                                                       \
    (void)sgn_;                                                                             \
    const T_ *a = (const T_ *)in[0], *b = (const T_ *)in[1];                               \
    TO *o = (TO *)out;                                                                      \
    if (s[0] && s[1]) {                                                                     \
      for (int64_t i = 0; i < n; i++) {                                                     \
        const T_ x = a[i], y = b[i];                                                        \
        o[i] = (TO)(EXPR);                                                                  \
      }                                                                                     \
    } else if (s[0]) {                                                                      \
      const T_ y = b[0];                                                                    \
      for (int64_t i = 0; i < n; i++) {                                                     \
        const T_ x = a[i];                                                                  \
        o[i] = (TO)(EXPR);                                                                  \
      }                                                                                     \
    } else if (s[1]) {                                                                      \
      const T_ x = a[0];                                                                    \
      for (int64_t i = 0; i < n; i++) {                                                     \
        const T_ y = b[i];                                                                  \
        o[i] = (TO)(EXPR);                                                                  \
      }                                                                                     \
    } else {                                                                                \
      const T_ x = a[0], y = b[0];                                                          \
      const TO r = (TO)(EXPR);                                                              \
      for (int64_t i = 0; i < n; i++) o[i] = r;                                             \
    }                                                                                       \
  }

/* Unary kernel NAME: out[i] = EXPR(x).  Unary runs are always contiguous. */
#define MI_EW_UN_KERNEL(NAME, T, W, SGN, TO, EXPR)                                          \
  static void NAME(const void *prm, const char *const *in, const int64_t *s, char *out,    \
                   int64_t n) {                                                             \
    typedef T T_;                                                                           \
    typedef W W_;                                                                           \
    enum { sgn_ = SGN };                                                                    \
    (void)prm;                                                                              \
    (void)s;                                                                                \
    (void)sizeof(W_);                                                                       \
    (void)sgn_;                                                                             \
    const T_ *a = (const T_ *)in[0];                                                        \
    TO *o = (TO *)out;                                                                      \
    for (int64_t i = 0; i < n; i++) {                                                       \
      const T_ x = a[i];                                                                    \
      o[i] = (TO)(EXPR);                                                                    \
    }                                                                                       \
  }

/* Type-generic libm call on a float or double expression. */
#define MI_FM(fn, x) _Generic((x), float: fn##f, default: fn)(x)
#define MI_FM2(fn, x, y) _Generic((x), float: fn##f, default: fn)((x), (y))

/* Table entry [dtype] = OP_<suffix>, for use with the type lists. */
#define MI_EW_ENTRY(dt, T, sfx, W, OP) [dt] = OP##_##sfx,

#endif
