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

/* Inputs ONNX's schemas require (from opset 1 unless the count changed:
 * Reshape's shape was an attribute before opset 5, and so on); the
 * kernels read them without checking for an omitted ("") one, which the
 * load refuses instead.  ALL: every given input (variadic operators).
 * Operators not listed require their first input only. */
enum { ALL = -1 };
static const struct {
  const char *op;
  int since, n;
} required[] = {
    {"Conv", 1, 2}, {"ConvTranspose", 1, 2}, {"ConvInteger", 1, 2},
    {"Add", 1, 2}, {"Sub", 1, 2}, {"Mul", 1, 2}, {"Div", 1, 2}, {"Pow", 1, 2}, {"Mod", 1, 2},
    {"Equal", 1, 2}, {"Greater", 1, 2}, {"Less", 1, 2}, {"GreaterOrEqual", 1, 2},
    {"LessOrEqual", 1, 2}, {"And", 1, 2}, {"Or", 1, 2}, {"Xor", 1, 2}, {"PRelu", 1, 2},
    {"Where", 1, 3}, {"Max", 1, ALL}, {"Min", 1, ALL}, {"Sum", 1, ALL}, {"Mean", 1, ALL},
    {"Concat", 1, ALL},
    {"BatchNormalization", 1, 5}, {"InstanceNormalization", 1, 3}, {"LayerNormalization", 1, 2},
    {"Gemm", 1, 2}, {"MatMul", 1, 2},
    {"LSTM", 1, 3}, {"GRU", 1, 3}, {"RNN", 1, 3},
    {"Reshape", 5, 2}, {"Unsqueeze", 13, 2}, {"Slice", 10, 3}, {"Expand", 1, 2}, {"Tile", 6, 2},
    {"Pad", 11, 2}, {"Upsample", 9, 2}, {"Resize", 10, 2}, {"Resize", 11, 1}, {"TopK", 10, 2},
    {"Gather", 1, 2}, {"GatherElements", 1, 2}, {"OneHot", 1, 3}, {"CastLike", 1, 2},
    {"Range", 1, 3}, {"CumSum", 1, 2},
    {"NonMaxSuppression", 1, 2}, {"RoiAlign", 1, 3},
    {"Scatter", 1, 3}, {"ScatterElements", 1, 3}, {"ScatterND", 1, 3},
};

int mi_op_required_inputs(const mi_node *n) {
  int best = 1, since = 0;
  for (size_t k = 0; k < sizeof required / sizeof required[0]; k++)
    if (strcmp(required[k].op, n->op_type) == 0 && required[k].since <= n->opset && required[k].since >= since) {
      since = required[k].since;
      best = required[k].n == ALL ? n->n_in : required[k].n;
    }
  return best;
}

unsigned mi_op_layouts(const mi_node *n, const mi_exec *ex, mi_tensor *const *in) {
  if (!(n->op->flags & MI_OP_CHAN16)) return 0;
  if (strcmp(n->op->op_type, "Conv") == 0) return mi_conv_layouts(n, ex, in);
  if (strcmp(n->op->op_type, "MaxPool") == 0) return mi_maxpool_layouts(n, ex, in);
  return 0; /* flagged, but no layouts function here yet */
}
