/* Cast and CastLike between every supported element type.
 * float -> integer as mi_f64_to_i64 (internal.h: saturating, NaN -> 0, so
 * no conversion is undefined); integer -> narrower integer wraps like a
 * two's-complement store; anything -> bool is (x != 0). */
#include <math.h>
#include <string.h>

#include "shape_util.h"

/* ISF: source is floating point (needs mi_f64_to_i64/u64 for integer targets). */
#define TO_INT(ISF, x) ((ISF) ? mi_f64_to_i64((double)(x)) : (int64_t)(x))
#define TO_UINT(ISF, x) ((ISF) ? mi_f64_to_u64((double)(x)) : (uint64_t)(x))

#define LOOP(DT, EXPR)                                          \
  {                                                             \
    DT *d = (DT *)dst;                                          \
    for (int64_t i = b; i < e; i++) d[i] = (DT)(EXPR);          \
  }                                                             \
  break;

#define DEF_CAST_FROM(NAME, ST, ISF)                                                 \
  static void cast_from_##NAME(const void *src, void *dst, mi_dtype to, int64_t b,   \
                               int64_t e) {                                         \
    const ST *s = (const ST *)src;                                                   \
    switch (to) {                                                                    \
      case MI_FLOAT: LOOP(float, s[i])                                               \
      case MI_DOUBLE: LOOP(double, s[i])                                             \
      case MI_BOOL: LOOP(uint8_t, s[i] != 0)                                         \
      case MI_INT8: LOOP(int8_t, TO_INT(ISF, s[i]))                                  \
      case MI_INT16: LOOP(int16_t, TO_INT(ISF, s[i]))                                \
      case MI_INT32: LOOP(int32_t, TO_INT(ISF, s[i]))                                \
      case MI_INT64: LOOP(int64_t, TO_INT(ISF, s[i]))                                \
      case MI_UINT8: LOOP(uint8_t, TO_UINT(ISF, s[i]))                               \
      case MI_UINT16: LOOP(uint16_t, TO_UINT(ISF, s[i]))                             \
      case MI_UINT32: LOOP(uint32_t, TO_UINT(ISF, s[i]))                             \
      case MI_UINT64: LOOP(uint64_t, TO_UINT(ISF, s[i]))                             \
      default: break;                                                                \
    }                                                                                \
  }

DEF_CAST_FROM(f32, float, 1)
DEF_CAST_FROM(f64, double, 1)
DEF_CAST_FROM(u8, uint8_t, 0)
DEF_CAST_FROM(i8, int8_t, 0)
DEF_CAST_FROM(u16, uint16_t, 0)
DEF_CAST_FROM(i16, int16_t, 0)
DEF_CAST_FROM(u32, uint32_t, 0)
DEF_CAST_FROM(i32, int32_t, 0)
DEF_CAST_FROM(u64, uint64_t, 0)
DEF_CAST_FROM(i64, int64_t, 0)

typedef void (*cast_fn)(const void *, void *, mi_dtype, int64_t, int64_t);

static cast_fn cast_from(mi_dtype dt) {
  switch (dt) {
    case MI_FLOAT: return cast_from_f32;
    case MI_DOUBLE: return cast_from_f64;
    case MI_UINT8: case MI_BOOL: return cast_from_u8; /* bool is stored as 0/1 bytes */
    case MI_INT8: return cast_from_i8;
    case MI_UINT16: return cast_from_u16;
    case MI_INT16: return cast_from_i16;
    case MI_UINT32: return cast_from_u32;
    case MI_INT32: return cast_from_i32;
    case MI_UINT64: return cast_from_u64;
    case MI_INT64: return cast_from_i64;
    default: return NULL;
  }
}

static const char *onnx_type_name(int64_t t) {
  switch (t) {
    case 8: return "string";
    case 10: return "float16";
    case 14: return "complex64";
    case 15: return "complex128";
    case 16: return "bfloat16";
    default: return mi_dtype_name((mi_dtype)t);
  }
}

static mi_status *cast_to(mi_node *n, mi_tensor *const *in, mi_tensor **out, int64_t to) {
  if (!mi_dtype_size((mi_dtype)to) || to < 0 || to > 100)
    return mi_node_error(n, MI_ERR_UNSUPPORTED, "cast to %s (type %lld) is not supported",
                         onnx_type_name(to), (long long)to);
  if (!cast_from(in[0]->dtype))
    return mi_node_error(n, MI_ERR_UNSUPPORTED, "cast from %s is not supported", mi_dtype_name(in[0]->dtype));
  mi_tensor_set_shape(out[0], (mi_dtype)to, in[0]->ndim, in[0]->dims);
  return NULL;
}

mi_status *cast_infer(mi_node *n, mi_tensor *const *in, mi_tensor **out) {
  const mi_attr *a = mi_node_attr(n, "to");
  if (!a) return mi_node_error(n, MI_ERR_INVALID_MODEL, "missing 'to'");
  if (a->type == MI_ATTR_STRING) { /* opset 1 spelled the type as a string */
    static const struct { const char *s; mi_dtype t; } names[] = {
        {"FLOAT", MI_FLOAT}, {"DOUBLE", MI_DOUBLE}, {"UINT8", MI_UINT8}, {"INT8", MI_INT8},
        {"UINT16", MI_UINT16}, {"INT16", MI_INT16}, {"UINT32", MI_UINT32}, {"INT32", MI_INT32},
        {"UINT64", MI_UINT64}, {"INT64", MI_INT64}, {"BOOL", MI_BOOL}};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
      if (strcmp(a->s, names[i].s) == 0) return cast_to(n, in, out, names[i].t);
    return mi_node_error(n, MI_ERR_UNSUPPORTED, "cast to '%s' is not supported", a->s);
  }
  return cast_to(n, in, out, a->i);
}

mi_status *castlike_infer(mi_node *n, mi_tensor *const *in, mi_tensor **out) {
  return cast_to(n, in, out, in[1]->dtype);
}

typedef struct {
  cast_fn fn;
  const void *src;
  void *dst;
  mi_dtype to;
} cast_ctx;

static void cast_range(void *p, int64_t b, int64_t e) {
  const cast_ctx *c = p;
  c->fn(c->src, c->dst, c->to, b, e);
}

mi_status *cast_run(mi_node *n, mi_exec *ex, mi_tensor *const *in, mi_tensor **out) {
  int64_t cnt = mi_numel(in[0]->ndim, in[0]->dims);
  if (in[0]->dtype == out[0]->dtype) {
    if (out[0]->data != in[0]->data) memcpy(out[0]->data, in[0]->data, mi_tensor_nbytes(in[0]));
    return NULL;
  }
  cast_ctx c = {cast_from(in[0]->dtype), in[0]->data, out[0]->data, out[0]->dtype};
  if (!c.fn) return mi_node_error(n, MI_ERR_UNSUPPORTED, "cast from %s", mi_dtype_name(in[0]->dtype));
  mi_parallel_for(ex, cnt, 16384, cast_range, &c);
  return NULL;
}

mi_status *castlike_run(mi_node *n, mi_exec *ex, mi_tensor *const *in, mi_tensor **out) {
  return cast_run(n, ex, in, out);
}
