/* Operator lookup: each family file exports a table ending in {NULL}. */
#include <string.h>

#include "../internal.h"
#include "ops.h"

static const mi_op_def *const families[] = {
    mi_ops_conv, mi_ops_pool, mi_ops_elementwise, mi_ops_activation, mi_ops_softmax,
    mi_ops_norm, mi_ops_gemm, mi_ops_reduce, mi_ops_rnn, mi_ops_shape, mi_ops_pad,
    mi_ops_resize, mi_ops_detect, mi_ops_scatter, mi_ops_control,
};

const mi_op_def *mi_op_find(const char *op_type, const char *domain) {
  if (domain && domain[0] && strcmp(domain, "ai.onnx") != 0) return NULL;
  for (size_t f = 0; f < sizeof families / sizeof families[0]; f++)
    for (const mi_op_def *d = families[f]; d->op_type; d++)
      if (strcmp(d->op_type, op_type) == 0) return d;
  return NULL;
}

unsigned mi_op_layouts(const mi_node *n, const mi_exec *ex, mi_tensor *const *in) {
  if (!(n->op->flags & MI_OP_CHAN16)) return 0;
  if (strcmp(n->op->op_type, "Conv") == 0) return mi_conv_layouts(n, ex, in);
  if (strcmp(n->op->op_type, "MaxPool") == 0) return mi_maxpool_layouts(n, ex, in);
  return 0; /* flagged, but no layouts function here yet */
}
