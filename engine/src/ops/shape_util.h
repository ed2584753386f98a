/* Helpers shared by the shape-family operator files (shape.c, gather.c,
 * cast.c, generate.c).  Private to those files. */
#ifndef MEDINFER_OPS_SHAPE_UTIL_H
#define MEDINFER_OPS_SHAPE_UTIL_H
#include "ops.h"

#define SHP_HIDDEN __attribute__((visibility("hidden")))

/* Read up to max integers of a tensor whose value must be known while
 * planning (initializer, Constant or folded); fails naming `what`. */
SHP_HIDDEN mi_status *shp_read_ints(const mi_node *n, const mi_tensor *t, const char *what,
                                    int64_t *vals, int64_t max, int64_t *count);
/* Row-major element strides of dims. */
SHP_HIDDEN void shp_strides(int ndim, const int64_t *dims, int64_t *strides);
/* dst (contiguous, shape dims) [i] = src[sum i_k * sstr[k]] for elements of
 * es bytes.  Strides may be 0 (broadcast) or negative (reversed slices). */
SHP_HIDDEN void shp_strided_copy(mi_exec *ex, size_t es, int ndim, const int64_t *dims,
                                 const int64_t *sstr, const void *src, void *dst);
/* Fill count elements of es bytes with *value. */
SHP_HIDDEN void shp_fill(mi_exec *ex, void *dst, int64_t count, const void *value, size_t es);
/* Normalize axis into [0, r); fails naming the node. */
SHP_HIDDEN mi_status *shp_axis(const mi_node *n, int64_t axis, int r, int *out);

#define SHP_OP(name)                                                                          \
  SHP_HIDDEN mi_status *name##_infer(mi_node *n, mi_tensor *const *in, mi_tensor **out);    \
  SHP_HIDDEN mi_status *name##_run(mi_node *n, mi_exec *ex, mi_tensor *const *in, mi_tensor **out);

/* gather.c */
SHP_OP(gather)
SHP_OP(gather_elements)
SHP_OP(onehot)
#define MI_OPS_GATHER                                                  \
  {"Gather", 1, 0, NULL, gather_infer, gather_run, NULL},              \
  {"GatherElements", 11, 0, NULL, gather_elements_infer, gather_elements_run, NULL}, \
  {"OneHot", 9, 0, NULL, onehot_infer, onehot_run, NULL}

/* cast.c */
SHP_OP(cast)
SHP_OP(castlike)
#define MI_OPS_CAST                                      \
  {"Cast", 1, 0, NULL, cast_infer, cast_run, NULL},      \
  {"CastLike", 15, 0, NULL, castlike_infer, castlike_run, NULL}

/* generate.c */
SHP_OP(range)
SHP_OP(eyelike)
SHP_OP(trilu)
SHP_OP(cumsum)
#define MI_OPS_GENERATE                                          \
  {"Range", 11, 0, NULL, range_infer, range_run, NULL},          \
  {"EyeLike", 9, 0, NULL, eyelike_infer, eyelike_run, NULL},     \
  {"Trilu", 14, 0, NULL, trilu_infer, trilu_run, NULL},          \
  {"CumSum", 11, 0, NULL, cumsum_infer, cumsum_run, NULL}

#endif
