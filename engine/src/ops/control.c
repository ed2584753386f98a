/* Control flow: If.  The branches are subgraphs (built by the loader, with
 * the enclosing-scope values they read appended to the node's inputs); the
 * chosen one runs eagerly on each run, or once while planning when the
 * condition and everything the branch reads are known. */
#include <stdlib.h>
#include <string.h>

#include "ops.h"

typedef struct {
  mi_graph *branch[2]; /* else, then (not owned: the attributes own them) */
} if_priv;

static mi_status *if_init(mi_node *n, mi_graph *g) {
  (void)g;
  static const char *names[2] = {"else_branch", "then_branch"};
  if (n->n_in < 1 || n->in[0] < 0) return mi_node_error(n, MI_ERR_INVALID_MODEL, "missing condition input");
  if_priv *p = calloc(1, sizeof *p);
  if (!p) return mi_node_error(n, MI_ERR_NO_MEMORY, "out of memory");
  n->priv = p;
  for (int b = 0; b < 2; b++) {
    const mi_attr *a = mi_node_attr(n, names[b]);
    if (!a || a->type != MI_ATTR_GRAPH || !a->g)
      return mi_node_error(n, MI_ERR_INVALID_MODEL, "missing graph attribute '%s'", names[b]);
    mi_graph *sub = a->g;
    if (sub->n_inputs) return mi_node_error(n, MI_ERR_INVALID_MODEL, "'%s' must take no inputs", names[b]);
    if (sub->n_outputs != n->n_out)
      return mi_node_error(n, MI_ERR_INVALID_MODEL, "'%s' has %d outputs, the node %d", names[b], sub->n_outputs,
                           n->n_out);
    for (int c = 0; c < sub->n_captures; c++)
      if (sub->capture_slot[c] < 1 || sub->capture_slot[c] >= n->n_in)
        return mi_node_error(n, MI_ERR_INTERNAL, "'%s' reads a value not passed to the node", names[b]);
    sub->winograd = g->winograd;
    sub->bf16 = g->bf16;
    sub->keep_packed_only = g->keep_packed_only;
    MI_TRY(mi_graph_init_ops(sub));
    p->branch[b] = sub;
  }
  return NULL;
}

static void unbind(mi_graph *sub) {
  for (int c = 0; c < sub->n_captures; c++) {
    mi_tensor *t = &sub->values[sub->captures[c]].t;
    t->data = NULL;
    t->owns_data = false;
  }
}

static mi_status *if_run(mi_node *n, mi_exec *ex, mi_tensor *const *in, mi_tensor **out) {
  const if_priv *p = n->priv;
  const mi_tensor *cond = in[0];
  if (mi_numel(cond->ndim, cond->dims) != 1)
    return mi_node_error(n, MI_ERR_INVALID_ARGUMENT, "the condition must hold one value");
  mi_graph *sub = p->branch[mi_tensor_get_f64(cond, 0) != 0];
  /* The branch reads the enclosing values in place. */
  for (int c = 0; c < sub->n_captures; c++) {
    const mi_tensor *src = in[sub->capture_slot[c]];
    mi_tensor *t = &sub->values[sub->captures[c]].t;
    if (!src) return mi_node_error(n, MI_ERR_INTERNAL, "captured value missing");
    *t = *src;
    t->owns_data = false;
  }
  mi_status *st = mi_graph_run_eager(sub, ex, false);
  for (int i = 0; i < n->n_out && !st; i++) {
    const mi_tensor *r = &sub->values[sub->outputs[i]].t;
    mi_tensor_set_shape(out[i], r->dtype, r->ndim, r->dims);
    st = mi_tensor_alloc(out[i], ex->max_tensor_bytes);
    if (!st && mi_tensor_nbytes(r)) memcpy(out[i]->data, r->data, mi_tensor_nbytes(r));
  }
  mi_graph_release_eager(sub);
  unbind(sub);
  if (st) return mi_error_prefix(st, "node '%s' (If)", n->name);
  return NULL;
}

const mi_op_def mi_ops_control[] = {
    {"If", 1, MI_OP_DYNAMIC, if_init, NULL, if_run, NULL},
    {NULL},
};
