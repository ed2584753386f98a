/* ONNX ModelProto -> mi_graph. Everything a node or value refers to is
 * checked here, so later stages can index without bounds worries. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "medinfer/hugepages.h"
#include "onnx_internal.h"

static char *xstrdup(const char *s) {
  s = s ? s : "";
  size_t n = strlen(s) + 1;
  char *d = malloc(n);
  if (d) memcpy(d, s, n);
  return d;
}

int mi_graph_add_value(mi_graph *g, const char *name) {
  if (g->n_values == g->cap_values) {
    int cap = g->cap_values ? g->cap_values * 2 : 64;
    mi_value *v = realloc(g->values, (size_t)cap * sizeof *v);
    if (!v) return -1;
    g->values = v;
    g->cap_values = cap;
  }
  mi_value *v = &g->values[g->n_values];
  memset(v, 0, sizeof *v);
  v->name = xstrdup(name);
  if (!v->name) return -1;
  v->producer = -1;
  v->decl_ndim = -1;
  v->arena_offset = -1;
  v->alias_of = -1;
  return g->n_values++;
}

static mi_node *add_node(mi_graph *g) {
  if (g->n_nodes == g->cap_nodes) {
    int cap = g->cap_nodes ? g->cap_nodes * 2 : 64;
    mi_node *n = realloc(g->nodes, (size_t)cap * sizeof *n);
    if (!n) return NULL;
    g->nodes = n;
    g->cap_nodes = cap;
  }
  mi_node *n = &g->nodes[g->n_nodes++];
  memset(n, 0, sizeof *n);
  n->fused_add = -1;
  n->room_off = -1;
  return n;
}

static void free_attr(mi_attr *a) {
  free(a->name);
  free(a->s);
  free(a->floats);
  free(a->ints);
  for (size_t i = 0; a->strings && i < a->n; i++) free(a->strings[i]);
  free(a->strings);
  mi_tensor_free(a->t);
  if (a->g) {
    mi_graph_free(a->g);
    free(a->g);
  }
}

void mi_graph_free(mi_graph *g) {
  for (int i = 0; i < g->n_nodes; i++) {
    mi_node *n = &g->nodes[i];
    if (n->priv) {
      if (n->op && n->op->destroy) n->op->destroy(n);
      else free(n->priv);
    }
    free(n->pre_affine);
    free(n->name);
    free(n->op_type);
    free(n->domain);
    free(n->in);
    free(n->out);
    for (int a = 0; a < n->n_attr; a++) free_attr(&n->attr[a]);
    free(n->attr);
  }
  for (int i = 0; i < g->n_values; i++) {
    mi_value *v = &g->values[i];
    free(v->name);
    if (v->t.owns_data) free(v->t.data);
    for (int d = 0; d < MI_MAX_DIMS; d++) free(v->decl_dim_names[d]);
  }
  free(g->values);
  free(g->nodes);
  free(g->inputs);
  free(g->outputs);
  free(g->captures);
  free(g->capture_slot);
  free(g->name);
  memset(g, 0, sizeof *g);
}

/* Subgraphs nest at most this deep (a hostile model must not exhaust the stack). */
#define MAX_GRAPH_DEPTH 8

static mi_status *build_subgraph(const Onnx__GraphProto *gp, const char *base_dir, const char *name,
                                 size_t max_bytes, int opset, int depth, mi_graph *g);

/* `scope` names the node for its subgraphs' messages ("model.onnx:node"). */
static mi_status *copy_attr(const Onnx__AttributeProto *ap, mi_attr *a, const char *base_dir,
                            const char *what, const char *scope, size_t max_bytes, int opset, int depth) {
  memset(a, 0, sizeof *a);
  a->name = xstrdup(ap->name);
  if (!a->name) return mi_error(MI_ERR_NO_MEMORY, "out of memory");
  int type = ap->has_type ? (int)ap->type : 0;
  /* Old exporters omit the type: infer it from which field is set. */
  if (!type) {
    if (ap->n_ints) type = MI_ATTR_INTS;
    else if (ap->n_floats) type = MI_ATTR_FLOATS;
    else if (ap->n_strings) type = MI_ATTR_STRINGS;
    else if (ap->t) type = MI_ATTR_TENSOR;
    else if (ap->g) type = MI_ATTR_GRAPH;
    else if (ap->has_s) type = MI_ATTR_STRING;
    else if (ap->has_f) type = MI_ATTR_FLOAT;
    else type = MI_ATTR_INT;
  }
  a->type = (mi_attr_type)type;
  switch (type) {
    case MI_ATTR_FLOAT: a->f = ap->f; break;
    case MI_ATTR_INT: a->i = ap->i; break;
    case MI_ATTR_STRING:
      a->s = malloc(ap->s.len + 1);
      if (!a->s) return mi_error(MI_ERR_NO_MEMORY, "out of memory");
      if (ap->s.len) memcpy(a->s, ap->s.data, ap->s.len);
      a->s[ap->s.len] = 0;
      break;
    case MI_ATTR_FLOATS:
      a->n = ap->n_floats;
      a->floats = malloc((a->n ? a->n : 1) * sizeof(float));
      if (!a->floats) return mi_error(MI_ERR_NO_MEMORY, "out of memory");
      if (a->n) memcpy(a->floats, ap->floats, a->n * sizeof(float));
      break;
    case MI_ATTR_INTS:
      a->n = ap->n_ints;
      a->ints = malloc((a->n ? a->n : 1) * sizeof(int64_t));
      if (!a->ints) return mi_error(MI_ERR_NO_MEMORY, "out of memory");
      if (a->n) memcpy(a->ints, ap->ints, a->n * sizeof(int64_t));
      break;
    case MI_ATTR_STRINGS:
      a->n = ap->n_strings;
      a->strings = calloc(a->n ? a->n : 1, sizeof(char *));
      if (!a->strings) return mi_error(MI_ERR_NO_MEMORY, "out of memory");
      for (size_t i = 0; i < a->n; i++) {
        a->strings[i] = malloc(ap->strings[i].len + 1);
        if (!a->strings[i]) return mi_error(MI_ERR_NO_MEMORY, "out of memory");
        if (ap->strings[i].len) memcpy(a->strings[i], ap->strings[i].data, ap->strings[i].len);
        a->strings[i][ap->strings[i].len] = 0;
      }
      break;
    case MI_ATTR_TENSOR: {
      if (!ap->t) return mi_error(MI_ERR_PARSE, "%s: attribute '%s' has no tensor", what, ap->name);
      a->t = calloc(1, sizeof *a->t);
      if (!a->t) return mi_error(MI_ERR_NO_MEMORY, "out of memory");
      mi_status *st = mi_onnx_tensor_decode(ap->t, base_dir, what, max_bytes, a->t);
      if (st) {
        free(a->t);
        a->t = NULL;
        return st;
      }
      a->t->owns_data = true;
      break;
    }
    case MI_ATTR_GRAPH: {
      if (!ap->g) return mi_error(MI_ERR_PARSE, "%s: attribute '%s' has no graph", what, ap->name);
      if (depth >= MAX_GRAPH_DEPTH)
        return mi_error(MI_ERR_UNSUPPORTED, "%s: subgraphs nested deeper than %d", what, MAX_GRAPH_DEPTH);
      a->g = calloc(1, sizeof *a->g);
      if (!a->g) return mi_error(MI_ERR_NO_MEMORY, "out of memory");
      char sub[640];
      snprintf(sub, sizeof sub, "%s.%s", scope, ap->name);
      mi_status *st = build_subgraph(ap->g, base_dir, sub, max_bytes, opset, depth + 1, a->g);
      if (st) {
        free(a->g); /* build_subgraph freed its contents */
        a->g = NULL;
        return st;
      }
      break;
    }
    default:
      return mi_error(MI_ERR_UNSUPPORTED, "%s: attribute '%s' has unsupported type %d", what,
                      ap->name, type);
  }
  return NULL;
}

/* Record the declared type of a graph input/output/value_info. */
static void copy_decl(mi_value *v, const Onnx__ValueInfoProto *vi) {
  if (!vi->type || vi->type->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE) return;
  const Onnx__TypeProto__Tensor *tt = vi->type->tensor_type;
  if (!tt) return;
  v->decl_dtype = (mi_dtype)(tt->has_elem_type ? tt->elem_type : 0);
  if (!tt->shape || tt->shape->n_dim > MI_MAX_DIMS) return;
  v->decl_ndim = (int)tt->shape->n_dim;
  for (size_t d = 0; d < tt->shape->n_dim; d++) {
    const Onnx__TensorShapeProto__Dimension *dim = tt->shape->dim[d];
    v->decl_dims[d] = -1;
    free(v->decl_dim_names[d]); /* declared twice (an output listed again): the last one holds */
    v->decl_dim_names[d] = NULL;
    if (dim->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE && dim->dim_value >= 0)
      v->decl_dims[d] = dim->dim_value;
    else if (dim->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM)
      v->decl_dim_names[d] = xstrdup(dim->dim_param);
  }
}

/* Constant nodes become constant values right away. */
static mi_status *constant_value(const mi_node *n, mi_tensor *t) {
  memset(t, 0, sizeof *t);
  if (n->n_attr != 1)
    return mi_node_error(n, MI_ERR_INVALID_MODEL, "Constant needs exactly one value attribute");
  const mi_attr *a = &n->attr[0];
  if (strcmp(a->name, "value") == 0 && a->type == MI_ATTR_TENSOR) {
    *t = *a->t; /* steal */
    a->t->data = NULL;
    a->t->owns_data = false;
    t->owns_data = true;
    return NULL;
  }
  int64_t dim;
  if (strcmp(a->name, "value_float") == 0 && a->type == MI_ATTR_FLOAT) {
    mi_tensor_set_shape(t, MI_FLOAT, 0, NULL);
    MI_TRY(mi_tensor_alloc(t, 0));
    ((float *)t->data)[0] = a->f;
  } else if (strcmp(a->name, "value_int") == 0 && a->type == MI_ATTR_INT) {
    mi_tensor_set_shape(t, MI_INT64, 0, NULL);
    MI_TRY(mi_tensor_alloc(t, 0));
    ((int64_t *)t->data)[0] = a->i;
  } else if (strcmp(a->name, "value_floats") == 0 && a->type == MI_ATTR_FLOATS) {
    dim = (int64_t)a->n;
    mi_tensor_set_shape(t, MI_FLOAT, 1, &dim);
    MI_TRY(mi_tensor_alloc(t, 0));
    if (a->n) memcpy(t->data, a->floats, a->n * sizeof(float));
  } else if (strcmp(a->name, "value_ints") == 0 && a->type == MI_ATTR_INTS) {
    dim = (int64_t)a->n;
    mi_tensor_set_shape(t, MI_INT64, 1, &dim);
    MI_TRY(mi_tensor_alloc(t, 0));
    if (a->n) memcpy(t->data, a->ints, a->n * sizeof(int64_t));
  } else {
    return mi_node_error(n, MI_ERR_UNSUPPORTED, "Constant attribute '%s' is not supported", a->name);
  }
  return NULL;
}

/* Append to node n (the last node of g) the enclosing-scope values its
 * subgraphs capture, one input per distinct name, and record in each
 * subgraph through which input each capture arrives. */
static mi_status *add_capture_inputs(mi_graph *g, const char *what) {
  mi_node *n = &g->nodes[g->n_nodes - 1];
  int extra = 0;
  for (int a = 0; a < n->n_attr; a++)
    if (n->attr[a].g) extra += n->attr[a].g->n_captures;
  if (!extra) return NULL;
  if (n->n_in + extra >= MI_MAX_IO)
    return mi_error(MI_ERR_UNSUPPORTED, "%s: more than %d inputs with the values its subgraphs use", what,
                    MI_MAX_IO - 1);
  int *in = realloc(n->in, sizeof(int) * (size_t)(n->n_in + extra + 2));
  if (!in) return mi_error(MI_ERR_NO_MEMORY, "out of memory");
  n->in = in;
  int first = n->n_in;
  for (int a = 0; a < n->n_attr; a++) {
    mi_graph *sub = n->attr[a].g;
    for (int c = 0; sub && c < sub->n_captures; c++) {
      const char *cname = sub->values[sub->captures[c]].name;
      int slot = -1;
      for (int i = first; i < n->n_in && slot < 0; i++)
        if (strcmp(g->values[n->in[i]].name, cname) == 0) slot = i;
      if (slot < 0) {
        int idx = mi_graph_find_value(g, cname);
        if (idx < 0) { /* defined later or nowhere: as for ordinary inputs */
          idx = mi_graph_add_value(g, cname);
          if (idx < 0) return mi_error(MI_ERR_NO_MEMORY, "out of memory");
          g->values[idx].producer = -2;
          n = &g->nodes[g->n_nodes - 1];
        }
        slot = n->n_in;
        n->in[n->n_in++] = idx;
      }
      sub->capture_slot[c] = slot;
    }
  }
  return NULL;
}

/* The graph proper, shared by the model's graph and subgraphs. In a
 * subgraph, names defined nowhere inside become captures. */
static mi_status *build_body(const Onnx__GraphProto *gp, const char *base_dir, const char *name,
                             size_t max_bytes, int depth, bool is_sub, mi_graph *g) {
  char what[512];
  for (size_t i = 0; i < gp->n_initializer; i++) {
    Onnx__TensorProto *tp = gp->initializer[i];
    if (!tp->name || !tp->name[0])
      return mi_error(MI_ERR_INVALID_MODEL, "'%s': initializer %zu has no name", name, i);
    if (mi_graph_find_value(g, tp->name) >= 0)
      return mi_error(MI_ERR_INVALID_MODEL, "'%s': initializer '%s' is defined twice", name, tp->name);
    int vi = mi_graph_add_value(g, tp->name);
    if (vi < 0) return mi_error(MI_ERR_NO_MEMORY, "out of memory");
    snprintf(what, sizeof what, "'%s': initializer '%s'", name, tp->name);
    mi_value *v = &g->values[vi];
    MI_TRY(mi_onnx_tensor_decode(tp, base_dir, what, max_bytes, &v->t));
    v->t.owns_data = true;
    v->is_const = true;
  }
  if (gp->n_input > 64) return mi_error(MI_ERR_UNSUPPORTED, "'%s': more than 64 graph inputs", name);
  g->inputs = calloc(gp->n_input + 1, sizeof(int));
  g->outputs = calloc(gp->n_output + 1, sizeof(int));
  if (!g->inputs || !g->outputs) return mi_error(MI_ERR_NO_MEMORY, "out of memory");
  for (size_t i = 0; i < gp->n_input; i++) {
    const Onnx__ValueInfoProto *vi = gp->input[i];
    if (!vi->name || !vi->name[0])
      return mi_error(MI_ERR_INVALID_MODEL, "'%s': graph input %zu has no name", name, i);
    int idx = mi_graph_find_value(g, vi->name);
    if (idx >= 0 && g->values[idx].is_const) continue; /* initializer listed as input (IR < 4) */
    if (idx >= 0)
      return mi_error(MI_ERR_INVALID_MODEL, "'%s': graph input '%s' is declared twice", name, vi->name);
    idx = mi_graph_add_value(g, vi->name);
    if (idx < 0) return mi_error(MI_ERR_NO_MEMORY, "out of memory");
    g->values[idx].is_input = true;
    copy_decl(&g->values[idx], vi);
    if (!mi_dtype_size(g->values[idx].decl_dtype))
      return mi_error(MI_ERR_UNSUPPORTED, "'%s': graph input '%s' has unsupported type %s", name,
                      vi->name, mi_onnx_dtype_name(g->values[idx].decl_dtype));
    g->inputs[g->n_inputs++] = idx;
  }

  for (size_t k = 0; k < gp->n_node; k++) {
    const Onnx__NodeProto *np = gp->node[k];
    mi_node *n = add_node(g);
    if (!n) return mi_error(MI_ERR_NO_MEMORY, "out of memory");
    n->name = xstrdup(np->name && np->name[0] ? np->name : NULL);
    n->op_type = xstrdup(np->op_type);
    n->domain = xstrdup(np->domain);
    n->opset = g->opset;
    if (np->n_input >= MI_MAX_IO || np->n_output > MI_MAX_IO)
      return mi_error(MI_ERR_UNSUPPORTED, "'%s': node %zu (%s) has more than %d inputs or outputs",
                      name, k, np->op_type ? np->op_type : "", MI_MAX_IO - 1);
    n->in = calloc(np->n_input + 2, sizeof(int));
    n->out = calloc(np->n_output + 1, sizeof(int));
    n->attr = calloc(np->n_attribute + 1, sizeof(mi_attr));
    if (!n->name || !n->op_type || !n->domain || !n->in || !n->out || !n->attr)
      return mi_error(MI_ERR_NO_MEMORY, "out of memory");
    if (!n->name[0]) {
      free(n->name);
      char buf[64];
      snprintf(buf, sizeof buf, "#%zu", k);
      n->name = xstrdup(buf);
    }
    snprintf(what, sizeof what, "'%s': node '%s' (%s)", name, n->name, n->op_type);
    for (size_t a = 0; a < np->n_attribute; a++) {
      char scope[600];
      snprintf(scope, sizeof scope, "%s:%s", name, n->name);
      mi_status *st = copy_attr(np->attribute[a], &n->attr[a], base_dir, what, scope, max_bytes, g->opset, depth);
      n->n_attr = (int)a + 1;
      if (st) return st;
    }
    for (size_t i = 0; i < np->n_input; i++) {
      const char *in = np->input[i];
      if (!in || !in[0]) {
        n->in[n->n_in++] = -1;
        continue;
      }
      int idx = mi_graph_find_value(g, in);
      if (idx < 0) { /* defined later (unsorted graph) or nowhere: toposort decides */
        idx = mi_graph_add_value(g, in);
        if (idx < 0) return mi_error(MI_ERR_NO_MEMORY, "out of memory");
        g->values[idx].producer = -2; /* not yet defined */
        n = &g->nodes[g->n_nodes - 1];
      }
      n->in[n->n_in++] = idx;
    }
    for (size_t i = 0; i < np->n_output; i++) {
      const char *on = np->output[i];
      if (!on || !on[0]) {
        n->out[n->n_out++] = -1;
        continue;
      }
      int idx = mi_graph_find_value(g, on);
      if (idx >= 0 && g->values[idx].producer != -2)
        return mi_error(MI_ERR_INVALID_MODEL, "%s: output '%s' is already defined elsewhere", what, on);
      if (idx < 0) idx = mi_graph_add_value(g, on);
      if (idx < 0) return mi_error(MI_ERR_NO_MEMORY, "out of memory");
      n = &g->nodes[g->n_nodes - 1];
      g->values[idx].producer = g->n_nodes - 1;
      n->out[n->n_out++] = idx;
    }
    MI_TRY(add_capture_inputs(g, what));
  }
  for (size_t i = 0; i < gp->n_value_info; i++) {
    int idx = gp->value_info[i]->name ? mi_graph_find_value(g, gp->value_info[i]->name) : -1;
    if (idx >= 0 && !g->values[idx].is_const) copy_decl(&g->values[idx], gp->value_info[i]);
  }
  for (size_t i = 0; i < gp->n_output; i++) {
    const char *on = gp->output[i]->name;
    int idx = on ? mi_graph_find_value(g, on) : -1;
    if (is_sub && idx < 0 && on && on[0]) { /* an enclosing-scope value passed through */
      idx = mi_graph_add_value(g, on);
      if (idx < 0) return mi_error(MI_ERR_NO_MEMORY, "out of memory");
      g->values[idx].producer = -2;
    }
    if (idx < 0 || (!is_sub && g->values[idx].producer == -2))
      return mi_error(MI_ERR_INVALID_MODEL, "'%s': graph output '%s' is not produced by any node", name,
                      on ? on : "");
    copy_decl(&g->values[idx], gp->output[i]);
    g->values[idx].is_output = true;
    g->outputs[g->n_outputs++] = idx;
  }
  if (!is_sub) return NULL;
  g->captures = calloc((size_t)g->n_values + 1, sizeof(int));
  g->capture_slot = calloc((size_t)g->n_values + 1, sizeof(int));
  if (!g->captures || !g->capture_slot) return mi_error(MI_ERR_NO_MEMORY, "out of memory");
  for (int v = 0; v < g->n_values; v++) {
    if (g->values[v].producer != -2) continue;
    g->values[v].producer = -1;
    g->values[v].is_capture = true;
    g->capture_slot[g->n_captures] = -1;
    g->captures[g->n_captures++] = v;
  }
  return NULL;
}

/* The IR and operator-set versions say how to read the rest. As ONNX
 * Runtime does, a model must state both, in an IR no newer than it reads;
 * an ai.onnx opset below 1, or imported at two versions, names no operator
 * set. A model importing other domains only keeps opset 1 for ai.onnx. */
#define MI_ONNX_IR_MAX 10
static mi_status *read_versions(const Onnx__ModelProto *mp, const char *name, int *opset) {
  if (!mp->has_ir_version) return mi_error(MI_ERR_INVALID_MODEL, "'%s' has no ir_version", name);
  if (mp->ir_version < 1 || mp->ir_version > MI_ONNX_IR_MAX)
    return mi_error(MI_ERR_UNSUPPORTED, "'%s' has IR version %lld; medinfer reads IR versions 1 to %d", name,
                    (long long)mp->ir_version, MI_ONNX_IR_MAX);
  if (mp->n_opset_import == 0)
    return mi_error(MI_ERR_INVALID_MODEL, "'%s' imports no operator set (its opset_import is empty)", name);
  int64_t v = 0;
  for (size_t i = 0; i < mp->n_opset_import; i++) {
    const Onnx__OperatorSetIdProto *o = mp->opset_import[i];
    if (o->domain && o->domain[0] && strcmp(o->domain, "ai.onnx") != 0) continue;
    if (o->version < 1)
      return mi_error(MI_ERR_INVALID_MODEL, "'%s' imports ai.onnx opset %lld; opsets start at 1", name,
                      (long long)o->version);
    if (v && o->version != v)
      return mi_error(MI_ERR_INVALID_MODEL, "'%s' imports ai.onnx twice, as opsets %lld and %lld", name,
                      (long long)v, (long long)o->version);
    v = o->version;
  }
  if (v > 18)
    return mi_error(MI_ERR_UNSUPPORTED, "'%s' uses opset %lld; medinfer supports opsets up to 18", name,
                    (long long)v);
  *opset = v ? (int)v : 1;
  return NULL;
}

static mi_status *build_graph(Onnx__ModelProto *mp, const char *base_dir, const char *name,
                              size_t max_bytes, mi_graph *g) {
  Onnx__GraphProto *gp = mp->graph;
  if (!gp) return mi_error(MI_ERR_PARSE, "'%s' has no graph", name);
  if (!(g->name = xstrdup(name))) return mi_error(MI_ERR_NO_MEMORY, "out of memory");
  MI_TRY(read_versions(mp, name, &g->opset));
  if (gp->n_output == 0) return mi_error(MI_ERR_INVALID_MODEL, "'%s' declares no graph outputs", name);
  return build_body(gp, base_dir, name, max_bytes, 0, false, g);
}

/* Resolve Constant nodes into constant values and check every operator
 * exists, naming all unsupported ones in one message. */
static mi_status *resolve_ops(mi_graph *g) {
  char missing[2048] = "";
  size_t off = 0;
  int n_missing = 0;
  for (int k = 0; k < g->n_nodes; k++) {
    mi_node *n = &g->nodes[k];
    if (strcmp(n->op_type, "Constant") == 0 && (!n->domain[0] || !strcmp(n->domain, "ai.onnx"))) {
      if (n->n_out != 1 || n->out[0] < 0)
        return mi_node_error(n, MI_ERR_INVALID_MODEL, "Constant needs one output");
      mi_value *v = &g->values[n->out[0]];
      MI_TRY(mi_error_prefix(constant_value(n, &v->t), "'%s'", g->name));
      v->is_const = true;
      v->producer = -1;
      n->dead = true;
      continue;
    }
    if (!n->op_type[0]) return mi_node_error(n, MI_ERR_INVALID_MODEL, "node has no operator type");
    n->op = mi_op_find(n->op_type, n->domain);
    /* The kernels read required inputs unchecked (none here has an optional
     * one first, as Loop's M) and write a first output (dropped, "", it
     * still gets room): an empty name or none would reach them as NULL */
    if (n->op) {
      int need = mi_op_required_inputs(n);
      for (int i = 0; i < need; i++)
        if (i >= n->n_in || n->in[i] < 0)
          return mi_node_error(n, MI_ERR_INVALID_MODEL, "%s needs %d input%s, and input %d is %s", n->op_type,
                               need, need > 1 ? "s" : "", i, i >= n->n_in ? "missing" : "omitted (named \"\")");
    }
    if (n->op && n->n_out < 1) return mi_node_error(n, MI_ERR_INVALID_MODEL, "it has no outputs");
    if (n->op) continue;
    char full[256];
    snprintf(full, sizeof full, "%s%s%s", n->domain[0] ? n->domain : "", n->domain[0] ? "." : "",
             n->op_type);
    bool dup = false; /* list each op once */
    for (int j = 0; j < k && !dup; j++)
      dup = !g->nodes[j].op && !g->nodes[j].dead && strcmp(g->nodes[j].op_type, n->op_type) == 0 &&
            strcmp(g->nodes[j].domain, n->domain) == 0;
    if (dup) continue;
    if (off < sizeof missing - 1)
      off += (size_t)snprintf(missing + off, sizeof missing - off, "%s%s", n_missing ? ", " : "", full);
    n_missing++;
  }
  if (n_missing)
    return mi_error(MI_ERR_UNSUPPORTED, "'%s': unsupported operator%s: %s", g->name,
                    n_missing > 1 ? "s" : "", missing);
  return NULL;
}

mi_status *mi_graph_toposort(mi_graph *g) {
  int nn = g->n_nodes;
  int *indeg = calloc((size_t)nn + 1, sizeof(int));
  int *order = calloc((size_t)nn + 1, sizeof(int));
  int *ready = calloc((size_t)g->n_values + 1, sizeof(int));
  mi_status *st = NULL;
  if (!indeg || !order || !ready) {
    st = mi_error(MI_ERR_NO_MEMORY, "out of memory");
    goto done;
  }
  for (int v = 0; v < g->n_values; v++)
    ready[v] = g->values[v].is_const || g->values[v].is_input || g->values[v].is_capture;
  for (int k = 0; k < nn; k++) {
    const mi_node *n = &g->nodes[k];
    if (n->dead) continue;
    for (int i = 0; i < n->n_in; i++) {
      int v = n->in[i];
      if (v < 0) continue;
      if (g->values[v].producer == -2) {
        st = mi_node_error(n, MI_ERR_INVALID_MODEL, "input '%s' is not defined in the graph",
                           g->values[v].name);
        goto done;
      }
    }
  }
  /* Repeated sweeps keep the model's own order where it is already valid. */
  int placed = 0;
  bool *done_node = calloc((size_t)nn + 1, sizeof(bool));
  if (!done_node) {
    st = mi_error(MI_ERR_NO_MEMORY, "out of memory");
    goto done;
  }
  int live = 0;
  for (int k = 0; k < nn; k++) live += !g->nodes[k].dead;
  bool progress = true;
  while (placed < live && progress) {
    progress = false;
    for (int k = 0; k < nn; k++) {
      const mi_node *n = &g->nodes[k];
      if (n->dead || done_node[k]) continue;
      bool ok = true;
      for (int i = 0; i < n->n_in && ok; i++) ok = n->in[i] < 0 || ready[n->in[i]];
      if (n->fused_add >= 0) ok = ok && ready[n->fused_add];
      if (!ok) continue;
      for (int i = 0; i < n->n_out; i++)
        if (n->out[i] >= 0) ready[n->out[i]] = 1;
      done_node[k] = true;
      order[placed++] = k;
      progress = true;
    }
  }
  if (placed < live) {
    for (int k = 0; k < nn; k++)
      if (!g->nodes[k].dead && !done_node[k]) {
        st = mi_node_error(&g->nodes[k], MI_ERR_INVALID_MODEL,
                           "the graph has a cycle through this node (its inputs depend on its outputs)");
        break;
      }
    free(done_node);
    goto done;
  }
  free(done_node);
  /* Rebuild the node array in order, dropping dead nodes. */
  mi_node *nodes = calloc((size_t)live + 1, sizeof(mi_node));
  if (!nodes) {
    st = mi_error(MI_ERR_NO_MEMORY, "out of memory");
    goto done;
  }
  for (int i = 0; i < placed; i++) nodes[i] = g->nodes[order[i]];
  for (int k = 0; k < nn; k++) {
    if (!g->nodes[k].dead) continue;
    mi_node *n = &g->nodes[k]; /* dead nodes are dropped here */
    if (n->priv) {
      if (n->op && n->op->destroy) n->op->destroy(n);
      else free(n->priv);
    }
    free(n->pre_affine);
    free(n->name); free(n->op_type); free(n->domain); free(n->in); free(n->out);
    for (int a = 0; a < n->n_attr; a++) free_attr(&n->attr[a]);
    free(n->attr);
  }
  free(g->nodes);
  g->nodes = nodes;
  g->n_nodes = g->cap_nodes = live;
  if (!live) g->cap_nodes = 0;
  for (int v = 0; v < g->n_values; v++)
    if (g->values[v].producer >= 0) g->values[v].producer = -1;
  for (int k = 0; k < live; k++)
    for (int i = 0; i < g->nodes[k].n_out; i++)
      if (g->nodes[k].out[i] >= 0) g->values[g->nodes[k].out[i]].producer = k;
done:
  free(indeg);
  free(order);
  free(ready);
  return st;
}

static mi_status *build_subgraph(const Onnx__GraphProto *gp, const char *base_dir, const char *name,
                                 size_t max_bytes, int opset, int depth, mi_graph *g) {
  memset(g, 0, sizeof *g);
  g->name = xstrdup(name);
  g->opset = opset;
  mi_status *st = g->name ? NULL : mi_error(MI_ERR_NO_MEMORY, "out of memory");
  if (!st) st = build_body(gp, base_dir, name, max_bytes, depth, true, g);
  if (!st) st = resolve_ops(g);
  if (!st) st = mi_graph_toposort(g);
  if (st) mi_graph_free(g);
  return st;
}

/* The decoder's blocks of 2 MB or more (weights) on huge pages: each 2 MB is
 * then one page fault instead of 512 (ResNet-50's decoding 545 -> 133 ms on a
 * 2-core VM).  free()-able: the tensors take the weights' blocks over. */
static void *decoded_alloc(void *unused, size_t n) {
  (void)unused;
  return n < MI_HUGE_PAGE_BYTES ? malloc(n ? n : 1) : mi_alloc_huge(n); /* small: no 64-byte padding */
}
static void decoded_free(void *unused, void *p) {
  (void)unused;
  free(p);
}

mi_status *mi_onnx_build_graph(const uint8_t *data, size_t size, mi_file_bytes *owned, const char *base_dir,
                               const char *name, size_t max_bytes, mi_graph *g) {
  memset(g, 0, sizeof *g);
  ProtobufCAllocator alloc = {decoded_alloc, decoded_free, NULL};
  Onnx__ModelProto *mp = onnx__model_proto__unpack(&alloc, size, data);
  mi_file_bytes_close(owned); /* the unpacked copy is all that is needed from here */
  if (!mp)
    return mi_error(MI_ERR_PARSE, "'%s' is not a valid ONNX model (protobuf decoding failed: the file is truncated or corrupt)",
                    name);
  mi_status *st = build_graph(mp, base_dir, name, max_bytes, g);
  onnx__model_proto__free_unpacked(mp, &alloc);
  if (!st) st = resolve_ops(g);
  if (!st) st = mi_graph_toposort(g);
  if (st) mi_graph_free(g);
  return st;
}
