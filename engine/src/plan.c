/* Planning for a set of input shapes: infer every tensor's shape, fold what
 * is computable from shapes and constants alone, and place the remaining
 * intermediate tensors in one arena by their lifetimes. */
#include <stdlib.h>
#include <string.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "medinfer/hugepages.h"
#include "model.h"

#define ARENA_ALIGN 64

static bool known(const mi_value *v) { return v->is_const || v->folded; }

static bool is_dynamic_op(const mi_node *n) { return (n->op->flags & MI_OP_DYNAMIC) != 0; }

/* Operators whose output depends only on their input's shape. */
static bool shape_only(const mi_node *n) {
  return strcmp(n->op_type, "Shape") == 0 || strcmp(n->op_type, "Size") == 0;
}

/* Tensor pointers for a node: in[] gets n_in (+1 for a fused residual). */
static void gather(mi_graph *g, mi_node *n, mi_tensor **in, mi_tensor **out) {
  for (int i = 0; i < n->n_in; i++) in[i] = n->in[i] >= 0 ? &g->values[n->in[i]].t : NULL;
  in[n->n_in] = n->fused_add >= 0 ? &g->values[n->fused_add].t : NULL;
  for (int i = 0; i < n->n_out; i++) out[i] = n->out[i] >= 0 ? &g->values[n->out[i]].t : NULL;
}

/* Outputs the kernel must write even when the graph ignores them. */
static mi_status *bind_scratch_outputs(mi_node *n, mi_tensor **out, mi_tensor *scratch) {
  for (int i = 0; i < n->n_out; i++)
    if (!out[i]) out[i] = &scratch[i];
  return NULL;
}

static mi_status *check_outputs(const mi_graph *g, const mi_node *n, mi_tensor **out,
                                size_t max_bytes) {
  for (int i = 0; i < n->n_out; i++) {
    if (n->out[i] < 0) continue;
    const mi_tensor *t = out[i];
    if (!mi_dtype_size(t->dtype) || t->ndim < 0 || t->ndim > MI_MAX_DIMS)
      return mi_node_error(n, MI_ERR_INTERNAL, "output %d has no valid type or rank", i);
    unsigned __int128 bytes = mi_dtype_size(t->dtype);
    for (int d = 0; d < t->ndim; d++) {
      if (t->dims[d] < 0)
        return mi_node_error(n, MI_ERR_SHAPE, "output '%s' would have a negative dimension",
                             g->values[n->out[i]].name);
      bytes *= (unsigned __int128)t->dims[d];
      if (bytes > (unsigned __int128)1 << 62) bytes = (unsigned __int128)1 << 62;
    }
    if (max_bytes && bytes > max_bytes)
      return mi_node_error(n, MI_ERR_NO_MEMORY,
                           "output '%s' would need %.3g bytes, over the limit of %.3g bytes",
                           g->values[n->out[i]].name, (double)bytes, (double)max_bytes);
  }
  return NULL;
}

/* Run node k now, on known inputs, storing owned outputs. */
static mi_status *fold_node(mi_model *m, int k, bool is_static) {
  mi_graph *g = &m->g;
  mi_node *n = &g->nodes[k];
  mi_tensor *in[MI_MAX_IO + 1], *out[MI_MAX_IO], scratch[MI_MAX_IO];
  memset(scratch, 0, sizeof scratch);
  gather(g, n, in, out);
  bind_scratch_outputs(n, out, scratch);
  mi_status *st = NULL;
  if (is_dynamic_op(n)) { /* it sizes and allocates its outputs itself */
    st = n->op->run(n, &m->ex, in, out);
    if (!st) st = check_outputs(g, n, out, m->opt.max_tensor_bytes);
  } else {
    MI_TRY(n->op->infer(n, in, out));
    MI_TRY(check_outputs(g, n, out, m->opt.max_tensor_bytes));
    for (int i = 0; i < n->n_out && !st; i++) st = mi_tensor_alloc(out[i], m->opt.max_tensor_bytes);
    if (!st) st = n->op->run(n, &m->ex, in, out);
  }
  for (int i = 0; i < n->n_out; i++)
    if (n->out[i] < 0 && scratch[i].owns_data) free(scratch[i].data);
  if (st) {
    for (int i = 0; i < n->n_out; i++) /* half-made outputs */
      if (n->out[i] >= 0 && out[i]->owns_data) {
        free(out[i]->data);
        out[i]->data = NULL;
        out[i]->owns_data = false;
      }
    return st;
  }
  for (int i = 0; i < n->n_out; i++) {
    if (n->out[i] < 0) continue;
    mi_value *v = &g->values[n->out[i]];
    if (is_static) v->is_const = true;
    else v->folded = true;
  }
  return NULL;
}

mi_status *mi_plan_fold_static(mi_model *m) {
  mi_graph *g = &m->g;
  for (int k = 0; k < g->n_nodes; k++) {
    mi_node *n = &g->nodes[k];
    bool all = n->n_in > 0 || n->n_out > 0;
    for (int i = 0; i < n->n_in && all; i++) all = n->in[i] < 0 || g->values[n->in[i]].is_const;
    if (n->fused_add >= 0) all = all && g->values[n->fused_add].is_const;
    if (!all || n->n_in == 0) continue;
    MI_TRY(fold_node(m, k, true));
    n->dead = true;
  }
  /* Folded nodes leave the schedule. */
  return mi_graph_toposort(g);
}

/* Scalars and short vectors are what shape-deciding inputs look like (Reshape
 * shapes, Resize scales, axes, Range bounds). Image tensors never are; a tiny
 * model fed such inputs only pays a re-plan when their values change. */
bool mi_plan_input_is_value(const mi_tensor *t) {
  if (t->ndim > 1 || mi_numel(t->ndim, t->dims) > 64) return false;
  return t->dtype == MI_INT64 || t->dtype == MI_INT32 || t->dtype == MI_FLOAT;
}

void mi_plan_clear(mi_model *m) {
  mi_graph *g = &m->g;
  mi_graph_release_eager(g);
  for (int k = 0; k < g->n_nodes; k++) {
    g->nodes[k].tail = false;
    g->nodes[k].scratch_need = 0;
    g->nodes[k].room_off = -1;
  }
  m->plan.recording = m->plan.recorded = false;
  m->plan.first_tail = -1;
  for (int i = 0; i < g->n_values; i++) {
    g->values[i].dynamic = false;
    mi_value *v = &g->values[i];
    if (v->folded) {
      if (v->t.owns_data) free(v->t.data);
      v->t.data = NULL;
      v->t.owns_data = false;
      v->folded = false;
    }
    if (!v->is_const) v->t.data = NULL;
    v->t.chan16 = false; /* a node folded while planning again reads and writes NCHW */
    v->arena_offset = -1;
    v->alias_of = -1;
  }
  free(m->plan.arena);
  m->plan.arena = NULL;
  m->plan.arena_bytes = 0;
  m->plan.valid = false;
}

typedef struct buffer {
  size_t size;
  int start, end; /* node indices, inclusive */
  int64_t offset;
} buffer;

static int by_size_desc(const void *a, const void *b) {
  const buffer *x = *(const buffer *const *)a, *y = *(const buffer *const *)b;
  return x->size < y->size ? 1 : x->size > y->size ? -1 : x->start - y->start;
}

static size_t round_up(size_t x) { return (x + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1); }

/* Greedy best-fit by decreasing size: each buffer goes at the lowest offset
 * not used by a placed buffer whose lifetime overlaps. */
static size_t place_buffers(buffer *bufs, int nb) {
  buffer **order = malloc(sizeof(buffer *) * (size_t)(nb + 1));
  buffer **placed = malloc(sizeof(buffer *) * (size_t)(nb + 1));
  if (!order || !placed) {
    free(order);
    free(placed);
    return (size_t)-1;
  }
  for (int i = 0; i < nb; i++) order[i] = &bufs[i];
  qsort(order, (size_t)nb, sizeof *order, by_size_desc);
  size_t total = 0;
  int np = 0;
  for (int i = 0; i < nb; i++) {
    buffer *b = order[i];
    size_t off = 0;
    bool moved = true;
    while (moved) { /* first fit among conflicts; repeat until stable */
      moved = false;
      for (int j = 0; j < np; j++) {
        buffer *p = placed[j];
        if (p->end < b->start || b->end < p->start) continue;
        size_t ps = (size_t)p->offset, pe = ps + round_up(p->size);
        if (off < pe && ps < off + round_up(b->size)) {
          off = pe;
          moved = true;
        }
      }
    }
    b->offset = (int64_t)off;
    if (off + round_up(b->size) > total) total = off + round_up(b->size);
    placed[np++] = b;
  }
  free(order);
  free(placed);
  return total;
}

/* ---- Concatenations in place --------------------------------------------
 * A channel concatenation of one image copies all of its inputs: a U-Net's
 * skip connection and upsampled path at full resolution (3D: 113 MB each),
 * a DenseNet block's input and every layer's output so far, once per layer
 * (Concat(x0, y1), Concat(x0, y1, y2), ...).  Instead one buffer holds the
 * concatenation: each input is written straight to its place in it, and
 * concatenations that are its prefixes are its leading part, so none of
 * them copies anything (concat_run sees its inputs in place).  The buffer
 * lives from its first input's making: the skip's own buffer did too, and
 * the copy it replaces held all three at once (3D U-Net 96^3: arena 432 ->
 * 324 MB). */

static bool is_concat(const mi_node *n) { return !strcmp(n->op_type, "Concat") && n->n_out == 1; }

/* Concat node n's axis when the dims before it multiply to one (a single
 * outer row: each input is one contiguous piece of the output), else -1. */
static int concat_axis_outer1(const mi_graph *g, const mi_node *n) {
  const mi_tensor *o = &g->values[n->out[0]].t;
  int64_t ax = mi_attr_int(n, "axis", 1);
  if (ax < 0) ax += o->ndim;
  if (ax < 0 || ax >= o->ndim || mi_numel((int)ax, o->dims) != 1) return -1;
  return (int)ax;
}

/* A value that can live inside another buffer: made by a planned node into
 * the arena, in no other slot. */
static bool slot_member_ok(const mi_graph *g, int v, const int *slot) {
  if (v < 0 || slot[v] >= 0) return false;
  const mi_value *val = &g->values[v];
  return !known(val) && !val->is_output && !val->dynamic && !val->is_input && val->producer >= 0 &&
         !g->nodes[val->producer].tail;
}

/* Whether concat p's inputs are a shorter prefix of concat n's. */
static bool concat_prefix(const mi_graph *g, const mi_node *p, const mi_node *n) {
  if (p->n_in >= n->n_in || concat_axis_outer1(g, p) < 0) return false;
  for (int i = 0; i < p->n_in; i++)
    if (p->in[i] != n->in[i]) return false;
  return true;
}

/* slot[v]: the root concat node whose output buffer holds value v (-1:
 * none), sub[v] its byte offset there. */
static void concat_slots(const mi_graph *g, int *slot, size_t *sub) {
  for (int k = g->n_nodes - 1; k >= 0; k--) {
    const mi_node *n = &g->nodes[k];
    if (!is_concat(n) || n->tail || n->n_in < 2 || !slot_member_ok(g, n->out[0], slot)) continue;
    if (concat_axis_outer1(g, n) < 0) continue;
    bool ok = true;
    for (int i = 0; i < n->n_in && ok; i++) {
      ok = slot_member_ok(g, n->in[i], slot);
      for (int j = 0; j < i && ok; j++) ok = n->in[j] != n->in[i];
    }
    if (!ok) continue;
    slot[n->out[0]] = k, sub[n->out[0]] = 0;
    size_t off = 0;
    for (int i = 0; i < n->n_in; i++) {
      slot[n->in[i]] = k, sub[n->in[i]] = off;
      off += mi_tensor_nbytes(&g->values[n->in[i]].t);
    }
    for (int j = 0; j < k; j++) {
      const mi_node *p = &g->nodes[j];
      if (is_concat(p) && !p->tail && concat_prefix(g, p, n) && slot_member_ok(g, p->out[0], slot))
        slot[p->out[0]] = k, sub[p->out[0]] = 0;
    }
  }
}

/* Channel-blocked values (mi_tensor.chan16) between nodes that take them
 * (MI_OP_CHAN16, mi_op_layouts): a value is blocked when its producer can write it so
 * and every reader reads it so, as its X, or as the fused residual of a
 * node whose own output is blocked (read at the output's index), down to a
 * fixed point; and when its producer or one of its readers takes it so
 * without copies (not between two of fast mode's Winograd layers).  Graph
 * outputs, folded and tail values, and anything another op reads stay
 * plain.  CPU only; MEDINFER_CHAN16=0 turns it off.  Every value starts
 * plain (mi_plan_clear). */
static void plan_layouts(mi_model *m) {
  mi_graph *g = &m->g;
  const char *env = getenv("MEDINFER_CHAN16");
  if (!m->opt.optimize || m->opt.device != MI_DEVICE_CPU || (env && !strcmp(env, "0"))) return;
  unsigned *caps = calloc((size_t)g->n_nodes + 1, sizeof *caps);
  bool *native = calloc((size_t)g->n_values + 1, sizeof *native); /* a layer takes it blocked without copies */
  if (!caps || !native) { /* plain layouts need nothing */
    free(caps);
    free(native);
    return;
  }
  for (int k = 0; k < g->n_nodes; k++) {
    mi_node *n = &g->nodes[k];
    if (n->dead || n->tail || !(n->op->flags & MI_OP_CHAN16) || n->n_out != 1 || n->out[0] < 0) continue;
    mi_tensor *in[MI_MAX_IO + 1], *out[MI_MAX_IO];
    gather(g, n, in, out);
    caps[k] = mi_op_layouts(n, &m->ex, in);
    if (caps[k] & MI_CHAN16_COPY) continue;
    if (caps[k] & MI_CHAN16_OUT) native[n->out[0]] = true;
    if (caps[k] & MI_CHAN16_IN) native[n->in[0]] = true;
  }
  for (int k = 0; k < g->n_nodes; k++) {
    const mi_node *n = &g->nodes[k];
    if (!caps[k]) continue;
    mi_value *o = &g->values[n->out[0]];
    o->t.chan16 = (caps[k] & MI_CHAN16_OUT) && native[n->out[0]] && !known(o) && !o->is_output && !o->dynamic;
  }
  for (bool changed = true; changed;) {
    changed = false;
    for (int k = 0; k < g->n_nodes; k++) {
      const mi_node *n = &g->nodes[k];
      if (n->dead) continue;
      const bool out16 = n->n_out == 1 && n->out[0] >= 0 && g->values[n->out[0]].t.chan16;
      for (int i = 0; i <= n->n_in; i++) {
        const int v = i < n->n_in ? n->in[i] : n->fused_add;
        if (v < 0) continue;
        mi_tensor *t = &g->values[v].t;
        const bool ok = i == n->n_in ? out16 : i == 0 && !n->tail && (caps[k] & MI_CHAN16_IN);
        if (t->chan16 && !ok) t->chan16 = false, changed = true;
        /* a blocked output adds a plain residual nowhere: the output goes plain */
        if (i == n->n_in && out16 && !t->chan16) g->values[n->out[0]].t.chan16 = false, changed = true;
      }
    }
  }
  free(caps);
  free(native);
}

/* A node's recorded scratch that gets a room: SIZE_MAX says it held more
 * blocks at once than the stack tracks (scratch.c). */
static bool wants_room(const mi_node *n) { return n->scratch_need > 0 && n->scratch_need != SIZE_MAX; }

/* Places the planned tensors (and, with rooms, each node's recorded scratch,
 * live only while the node runs) in a new arena by their lifetimes. */
static mi_status *lay_out(mi_model *m, bool rooms) {
  mi_graph *g = &m->g;
  /* Lifetimes. */
  int nv = g->n_values;
  int *buf_of = malloc(sizeof(int) * (size_t)(nv + 1));
  buffer *bufs = calloc((size_t)(nv + g->n_nodes) + 1, sizeof *bufs); /* tensors, then rooms */
  int *slot = malloc(sizeof(int) * (size_t)(nv + 1)), *slot_buf = malloc(sizeof(int) * (size_t)(g->n_nodes + 1));
  size_t *sub = calloc((size_t)nv + 1, sizeof *sub);
  if (!buf_of || !bufs || !slot || !slot_buf || !sub) {
    free(buf_of);
    free(bufs);
    free(slot);
    free(slot_buf);
    free(sub);
    return mi_error(MI_ERR_NO_MEMORY, "out of memory");
  }
  for (int v = 0; v < nv; v++) {
    buf_of[v] = -1;
    g->values[v].last_use = -1;
    g->values[v].n_uses = 0;
  }
  m->plan.first_tail = -1;
  for (int k = 0; k < g->n_nodes; k++) {
    mi_node *n = &g->nodes[k];
    if (n->tail && m->plan.first_tail < 0) m->plan.first_tail = k;
    for (int i = 0; i <= n->n_in; i++) {
      int v = i < n->n_in ? n->in[i] : n->fused_add;
      if (v < 0) continue;
      /* The tail runs after every planned node: what it reads stays live. */
      if (n->tail) g->values[v].last_use = g->n_nodes;
      else if (g->values[v].last_use < k) g->values[v].last_use = k;
      g->values[v].n_uses++;
    }
  }
  for (int v = 0; v < nv; v++) slot[v] = -1;
  for (int k = 0; k < g->n_nodes; k++) slot_buf[k] = -1;
  if (m->opt.optimize) concat_slots(g, slot, sub);
  int nb = 0;
  for (int k = 0; k < g->n_nodes; k++) {
    mi_node *n = &g->nodes[k];
    for (int i = 0; i < n->n_out; i++) {
      int v = n->out[i];
      if (v < 0) continue;
      mi_value *val = &g->values[v];
      if (known(val) || val->is_output || val->dynamic) continue;
      int end = val->last_use > k ? val->last_use : k;
      if (slot[v] >= 0) { /* in its concatenation's buffer: made at its first member, kept to the last use of any */
        const int r = slot[v];
        if (slot_buf[r] < 0) {
          slot_buf[r] = nb;
          bufs[nb].size = mi_tensor_nbytes(&g->values[g->nodes[r].out[0]].t);
          bufs[nb].start = k;
          bufs[nb].end = end;
          nb++;
        }
        buf_of[v] = slot_buf[r];
        if (bufs[buf_of[v]].end < end) bufs[buf_of[v]].end = end;
        continue;
      }
      int a = i == 0 && (n->op->flags & MI_OP_INPLACE) && n->n_in > 0 ? n->in[0] : -1;
      if (a >= 0 && slot[a] >= 0) a = -1; /* the others in its buffer are still read */
      for (int j = 1; a >= 0 && j < n->n_in; j++)
        if (n->in[j] == a) a = -1; /* read again after the output is written */
      if (a >= 0 && buf_of[a] >= 0 && g->values[a].last_use == k &&
          mi_tensor_nbytes(&g->values[a].t) == mi_tensor_nbytes(&val->t) && n->fused_add != a) {
        buffer *b = &bufs[buf_of[a]];
        if (b->end <= k) { /* nobody else still reads that buffer */
          buf_of[v] = buf_of[a];
          b->end = end;
          val->alias_of = a;
          continue;
        }
      }
      buf_of[v] = nb;
      bufs[nb].size = mi_tensor_nbytes(&val->t);
      bufs[nb].start = k;
      bufs[nb].end = end;
      nb++;
    }
  }
  const int n_tensors = nb;
  for (int k = 0; rooms && k < g->n_nodes; k++) {
    if (wants_room(&g->nodes[k])) bufs[nb++] = (buffer){g->nodes[k].scratch_need, k, k, 0};
  }
  size_t total = place_buffers(bufs, nb);
  mi_status *st = NULL;
  if (total == (size_t)-1) st = mi_error(MI_ERR_NO_MEMORY, "out of memory");
  else if (m->opt.max_tensor_bytes && total > m->opt.max_tensor_bytes)
    st = mi_error(MI_ERR_NO_MEMORY, "'%s': activations need %.3g bytes, over the limit of %.3g bytes",
                  g->name, (double)total, (double)m->opt.max_tensor_bytes);
  void *arena = NULL;
  if (!st) {
    arena = total ? aligned_alloc(ARENA_ALIGN, total) : NULL;
    mi_advise_huge(arena, total);
    if (total && !arena)
      st = mi_error(MI_ERR_NO_MEMORY, "'%s': cannot allocate %zu bytes for activations", g->name, total);
  }
  if (!st) {
    for (int v = 0; v < nv; v++)
      if (buf_of[v] >= 0) g->values[v].arena_offset = bufs[buf_of[v]].offset + (int64_t)sub[v];
    for (int b = n_tensors; b < nb; b++) g->nodes[bufs[b].start].room_off = bufs[b].offset;
    free(m->plan.arena);
    m->plan.arena = arena;
    m->plan.arena_bytes = total;
    m->plan.valid = true;
  }
  free(buf_of);
  free(bufs);
  free(slot);
  free(slot_buf);
  free(sub);
  return st;
}

mi_status *mi_plan_build(mi_model *m, mi_tensor *const *inputs) {
  mi_graph *g = &m->g;
  mi_plan_clear(m);
  for (int i = 0; i < g->n_inputs; i++) {
    mi_value *v = &g->values[g->inputs[i]];
    mi_tensor_set_shape(&v->t, inputs[i]->dtype, inputs[i]->ndim, inputs[i]->dims);
    v->t.data = NULL;
    /* Small integer inputs (shapes, axes, sizes) decide shapes: plan with
     * their values; a run with other values plans again. */
    if (mi_plan_input_is_value(&v->t)) {
      mi_status *st = mi_tensor_alloc(&v->t, 0);
      if (st) return st;
      memcpy(v->t.data, inputs[i]->data, mi_tensor_nbytes(&v->t));
      v->folded = true;
    }
    m->plan.in_ndim[i] = inputs[i]->ndim;
    memcpy(m->plan.in_dims[i], inputs[i]->dims, sizeof(int64_t) * MI_MAX_DIMS);
  }
  /* Shapes, folding shape arithmetic on the way. */
  for (int k = 0; k < g->n_nodes; k++) {
    mi_node *n = &g->nodes[k];
    bool all = true, dyn_in = false;
    for (int i = 0; i <= n->n_in; i++) {
      int v = i < n->n_in ? n->in[i] : n->fused_add;
      if (v < 0) continue;
      all = all && known(&g->values[v]);
      dyn_in = dyn_in || g->values[v].dynamic;
    }
    mi_status *st = NULL;
    bool tail = dyn_in || (is_dynamic_op(n) && !(all && n->n_in > 0));
    if (tail) {
    } else if ((all && n->n_in > 0) || shape_only(n)) {
      st = fold_node(m, k, false);
    } else {
      mi_tensor *in[MI_MAX_IO + 1], *out[MI_MAX_IO], scratch[MI_MAX_IO];
      memset(scratch, 0, sizeof scratch);
      gather(g, n, in, out);
      bind_scratch_outputs(n, out, scratch);
      st = n->op->infer(n, in, out);
      if (!st) st = check_outputs(g, n, out, m->opt.max_tensor_bytes);
      /* A shape read from a value computed only at run time (a TopK k or a
       * Reshape shape derived from data): this node joins the eager tail,
       * where its inputs are real.  Real errors surface there as well. */
      if (st && mi_status_code(st) == MI_ERR_UNSUPPORTED) {
        bool unknown_in = false;
        for (int i = 0; i < n->n_in; i++)
          unknown_in = unknown_in || (n->in[i] >= 0 && !g->values[n->in[i]].t.data);
        if (unknown_in) {
          mi_status_free(st);
          st = NULL;
          tail = true;
        }
      }
    }
    if (tail) {
      n->tail = true;
      for (int i = 0; i < n->n_out; i++)
        if (n->out[i] >= 0) g->values[n->out[i]].dynamic = true;
      if (m->plan.first_tail < 0) m->plan.first_tail = k;
    }
    if (st) {
      mi_plan_clear(m);
      return mi_error_prefix(st, "'%s'", g->name);
    }
  }
  /* Residual adds join their producer's epilogue once shapes are known; the
   * rewrite is kept for later plans, which check that it still fits. */
  if (m->opt.optimize && !g->residuals_fused) {
    g->residuals_fused = true;
    if (mi_graph_fuse_residuals(g) > 0) {
      mi_status *st = mi_graph_toposort(g);
      if (st) {
        mi_plan_clear(m);
        return st;
      }
    }
  }
  for (int k = 0; k < g->n_nodes; k++) {
    const mi_node *n = &g->nodes[k];
    if (n->fused_add < 0 || n->out[0] < 0 || n->tail) continue;
    const mi_tensor *r = &g->values[n->fused_add].t, *o = &g->values[n->out[0]].t;
    bool ok = r->ndim == o->ndim;
    for (int d = 0; ok && d < r->ndim; d++) ok = r->dims[d] == o->dims[d];
    if (!ok) {
      mi_plan_clear(m);
      return mi_node_error(n, MI_ERR_SHAPE,
                           "the residual added to this node's output no longer matches its shape");
    }
  }
  plan_layouts(m);
  mi_status *st = lay_out(m, false);
  if (st) mi_plan_clear(m);
  else m->plan.recording = !m->cuda; /* a GPU's kernels take no scratch */
  return st;
}

void mi_plan_place_scratch(mi_model *m) {
  m->plan.recording = m->plan.recorded = false;
  bool any = false;
  for (int k = 0; k < m->g.n_nodes; k++) any = any || wants_room(&m->g.nodes[k]);
  if (!any) return;
  mi_status *st = lay_out(m, true); /* on failure the arena and offsets stay, without rooms */
  mi_status_free(st);
#ifdef __GLIBC__
  malloc_trim(0); /* the first run's scratch, freed, stays resident in the C library's heap */
#endif
}
