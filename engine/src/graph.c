/* Graph lookups and node attribute accessors. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

int mi_graph_find_value(const mi_graph *g, const char *name) {
  for (int i = 0; i < g->n_values; i++)
    if (strcmp(g->values[i].name, name) == 0) return i;
  return -1;
}

bool mi_graph_free_packed_const(mi_graph *g, const mi_node *n, int in) {
  if (in >= n->n_in || n->in[in] < 0) return false;
  mi_value *v = &g->values[n->in[in]];
  if (!g->keep_packed_only || !v->t.owns_data || v->is_output) return false;
  int uses = 0;
  for (int k = 0; k < g->n_nodes; k++)
    for (int i = 0; i < g->nodes[k].n_in; i++) uses += g->nodes[k].in[i] == n->in[in];
  if (uses != 1) return false;
  free(v->t.data);
  v->t.data = NULL;
  v->t.owns_data = false;
  return true;
}

const mi_attr *mi_node_attr(const mi_node *n, const char *name) {
  for (int i = 0; i < n->n_attr; i++)
    if (strcmp(n->attr[i].name, name) == 0) return &n->attr[i];
  return NULL;
}

/* The attribute `name` if it has type `want` (or `also`); a present one of
 * another type is noted on the node (the getters are read-only otherwise). */
static const mi_attr *typed_attr(const mi_node *n, const char *name, mi_attr_type want, mi_attr_type also) {
  const mi_attr *a = mi_node_attr(n, name);
  if (!a || a->type == want || a->type == also) return a;
  if (!n->mistyped) {
    mi_node *w = (mi_node *)n;
    w->mistyped = a;
    w->mistyped_want = want;
  }
  return NULL;
}

int64_t mi_attr_int(const mi_node *n, const char *name, int64_t def) {
  const mi_attr *a = typed_attr(n, name, MI_ATTR_INT, MI_ATTR_INT);
  return a ? a->i : def;
}

float mi_attr_float(const mi_node *n, const char *name, float def) {
  const mi_attr *a = typed_attr(n, name, MI_ATTR_FLOAT, MI_ATTR_INT);
  if (!a) return def;
  return a->type == MI_ATTR_FLOAT ? a->f : (float)a->i;
}

const char *mi_attr_string(const mi_node *n, const char *name, const char *def) {
  const mi_attr *a = typed_attr(n, name, MI_ATTR_STRING, MI_ATTR_STRING);
  return a ? a->s : def;
}

size_t mi_attr_ints(const mi_node *n, const char *name, const int64_t **vals) {
  const mi_attr *a = typed_attr(n, name, MI_ATTR_INTS, MI_ATTR_INTS);
  *vals = a ? a->ints : NULL;
  return a ? a->n : 0;
}

size_t mi_attr_floats(const mi_node *n, const char *name, const float **vals) {
  const mi_attr *a = typed_attr(n, name, MI_ATTR_FLOATS, MI_ATTR_FLOATS);
  *vals = a ? a->floats : NULL;
  return a ? a->n : 0;
}

static const char *attr_type_name(int t) {
  static const char *names[] = {"UNDEFINED", "FLOAT", "INT", "STRING", "TENSOR", "GRAPH", "FLOATS", "INTS", "STRINGS"};
  return t >= 0 && t < (int)(sizeof names / sizeof names[0]) ? names[t] : "another type";
}

mi_status *mi_node_error(const mi_node *n, mi_code code, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return mi_error(code, "node '%s' (%s): %s", n->name && n->name[0] ? n->name : "<unnamed>",
                  n->op_type, msg);
}

mi_status *mi_error_named(mi_status *st, const char *name) {
  if (!st) return NULL;
  if (!name) name = "";
  const char *msg = mi_status_message(st);
  const size_t len = strlen(name);
  if (msg[0] == '\'' && !strncmp(msg + 1, name, len) && (msg[len + 1] == '\'' || msg[len + 1] == ':')) return st;
  return mi_error_prefix(st, "'%s'", name);
}

/* A subgraph's errors come back through its If node's init named by the
 * subgraph ('model:node.branch'), which the enclosing graph keeps. */
mi_status *mi_graph_init_ops(mi_graph *g) {
  for (int k = 0; k < g->n_nodes; k++) {
    mi_node *n = &g->nodes[k];
    if (n->dead || !n->op) continue;
    if (n->op->min_opset > n->opset)
      return mi_node_error(n, MI_ERR_UNSUPPORTED, "opset %d is older than the %d this kernel follows",
                           n->opset, n->op->min_opset);
    if (n->op->init) MI_TRY(mi_error_named(n->op->init(n, g), g->name));
    if (n->mistyped)
      return mi_error_named(mi_node_error(n, MI_ERR_INVALID_MODEL, "attribute '%s' is %s where %s is expected",
                                          n->mistyped->name, attr_type_name(n->mistyped->type),
                                          attr_type_name(n->mistyped_want)),
                            g->name);
  }
  return NULL;
}
