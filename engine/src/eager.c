/* Eager execution: nodes whose output shapes are known only once their
 * inputs' values are (the tail after NonZero, NonMaxSuppression, If...), and
 * If branches.  Each node gets its shapes inferred on real data, owned
 * outputs, and each intermediate is freed right after its last reader, so
 * the memory held is the live set rather than the sum of the tail. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* Data of v was allocated by an eager run (not a constant, a plan folding,
 * the arena, a caller's buffer or an enclosing graph's value). */
static bool eager_owned(const mi_value *v) {
  return v->t.owns_data && !v->is_const && !v->folded && !v->is_capture;
}

static void drop(mi_value *v) {
  if (eager_owned(v)) free(v->t.data);
  if (!v->is_const && !v->folded) {
    v->t.data = NULL;
    v->t.owns_data = false;
  }
}

static mi_status *check_sizes(const mi_graph *g, const mi_node *n, mi_tensor **out, size_t max_bytes) {
  for (int i = 0; i < n->n_out; i++) {
    const mi_tensor *t = out[i];
    const char *name = n->out[i] >= 0 ? g->values[n->out[i]].name : "<unused>";
    if (!mi_dtype_size(t->dtype) || t->ndim < 0 || t->ndim > MI_MAX_DIMS)
      return mi_node_error(n, MI_ERR_INTERNAL, "output '%s' has no valid type or rank", name);
    for (int d = 0; d < t->ndim; d++)
      if (t->dims[d] < 0)
        return mi_node_error(n, MI_ERR_SHAPE, "output '%s' would have a negative dimension", name);
  }
  (void)max_bytes; /* mi_tensor_alloc enforces the size limit */
  return NULL;
}

/* One node on real data.  out[i] for dropped outputs points into scratch. */
static mi_status *run_node(mi_graph *g, mi_node *n, mi_exec *ex, mi_tensor *scratch) {
  mi_tensor *in[MI_MAX_IO + 1], *out[MI_MAX_IO];
  for (int i = 0; i < n->n_in; i++) {
    in[i] = n->in[i] >= 0 ? &g->values[n->in[i]].t : NULL;
    if (in[i] && !in[i]->data && mi_numel(in[i]->ndim, in[i]->dims))
      return mi_node_error(n, MI_ERR_INTERNAL, "input '%s' has no data", g->values[n->in[i]].name);
  }
  in[n->n_in] = n->fused_add >= 0 ? &g->values[n->fused_add].t : NULL;
  for (int i = 0; i < n->n_out; i++) {
    memset(&scratch[i], 0, sizeof scratch[i]);
    if (n->out[i] >= 0) {
      mi_value *v = &g->values[n->out[i]];
      drop(v); /* a previous run's leftovers, if any */
      out[i] = &v->t;
    } else {
      out[i] = &scratch[i];
    }
  }
  if (n->op->flags & MI_OP_DYNAMIC) {
    MI_TRY(n->op->run(n, ex, in, out));
    return check_sizes(g, n, out, ex->max_tensor_bytes);
  }
  MI_TRY(n->op->infer(n, in, out));
  MI_TRY(check_sizes(g, n, out, ex->max_tensor_bytes));
  if (in[n->n_in]) { /* a residual fused at plan time must still fit */
    const mi_tensor *r = in[n->n_in];
    bool ok = r->ndim == out[0]->ndim;
    for (int d = 0; ok && d < r->ndim; d++) ok = r->dims[d] == out[0]->dims[d];
    if (!ok)
      return mi_node_error(n, MI_ERR_SHAPE, "the residual added to this node's output does not match its shape");
  }
  for (int i = 0; i < n->n_out; i++) {
    mi_status *st = mi_tensor_alloc(out[i], ex->max_tensor_bytes);
    if (st) return mi_error_prefix(st, "node '%s' (%s)", n->name, n->op_type);
  }
  return n->op->run(n, ex, in, out);
}

mi_status *mi_graph_run_eager(mi_graph *g, mi_exec *ex, bool only_tail) {
  /* Last reader of each value among the nodes that run here. */
  int *last = malloc(sizeof(int) * (size_t)(g->n_values + 1));
  mi_tensor *scratch = malloc(sizeof(mi_tensor) * MI_MAX_IO);
  if (!last || !scratch) {
    free(last);
    free(scratch);
    return mi_error(MI_ERR_NO_MEMORY, "out of memory");
  }
  for (int v = 0; v < g->n_values; v++) last[v] = -1;
  for (int k = 0; k < g->n_nodes; k++) {
    const mi_node *n = &g->nodes[k];
    if (n->dead || (only_tail && !n->tail)) continue;
    for (int i = 0; i <= n->n_in; i++) {
      int v = i < n->n_in ? n->in[i] : n->fused_add;
      if (v >= 0) last[v] = k;
    }
  }
  mi_status *st = NULL;
  for (int k = 0; k < g->n_nodes && !st; k++) {
    mi_node *n = &g->nodes[k];
    if (n->dead || (only_tail && !n->tail)) continue;
    st = run_node(g, n, ex, scratch);
    for (int i = 0; i < n->n_out; i++)
      if (n->out[i] < 0 && scratch[i].owns_data) free(scratch[i].data);
    if (st) break;
    /* Free what no later node reads (graph outputs stay for the caller). */
    for (int i = 0; i <= n->n_in; i++) {
      int v = i < n->n_in ? n->in[i] : n->fused_add;
      if (v >= 0 && last[v] == k && !g->values[v].is_output) drop(&g->values[v]);
    }
    for (int i = 0; i < n->n_out; i++) {
      int v = n->out[i];
      if (v >= 0 && last[v] < 0 && !g->values[v].is_output) drop(&g->values[v]);
    }
  }
  if (st) st = mi_error_prefix(st, "'%s'", g->name);
  if (st) mi_graph_release_eager(g);
  free(last);
  free(scratch);
  return st;
}

void mi_graph_release_eager(mi_graph *g) {
  for (int v = 0; v < g->n_values; v++)
    if (eager_owned(&g->values[v])) drop(&g->values[v]);
}
