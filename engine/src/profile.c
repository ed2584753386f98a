/* Per-node timing of mi_model_run and its report (medinfer-bench --profile). */
#define _POSIX_C_SOURCE 200809L
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"
#include "model.h"

double mi_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

mi_status *mi_model_set_profiling(mi_model *m, int on) {
  if (!m) return mi_error(MI_ERR_INVALID_ARGUMENT, "mi_model_set_profiling: NULL model");
  free(m->prof_ms);
  m->prof_ms = NULL;
  m->prof_runs = 0;
  if (!on) return NULL;
  m->prof_n = m->g.n_nodes;
  m->prof_ms = calloc(3 * (size_t)(m->g.n_nodes > 0 ? m->g.n_nodes : 1), sizeof *m->prof_ms);
  return m->prof_ms ? NULL : mi_error(MI_ERR_NO_MEMORY, "out of memory for the profile");
}

void mi_profile_commit(mi_model *m, bool ok) {
  const mi_graph *g = &m->g;
  if (!m->prof_ms || m->prof_n != g->n_nodes) return;
  if (ok) { /* a failed run adds nothing */
    for (int k = 0; k < g->n_nodes; k++) {
      const double t = m->prof_ms[g->n_nodes + k];
      double *best = &m->prof_ms[2 * g->n_nodes + k];
      m->prof_ms[k] += t;
      if (m->prof_runs == 0 || t < *best) *best = t;
    }
    m->prof_runs++;
  }
  memset(m->prof_ms + g->n_nodes, 0, sizeof(double) * (size_t)g->n_nodes);
}

static const mi_tensor *node_tensor(const mi_graph *g, const mi_node *n, bool input, int i) {
  const int v = input ? (i < n->n_in ? n->in[i] : -1) : (i < n->n_out ? n->out[i] : -1);
  return v >= 0 ? &g->values[v].t : NULL;
}

/* Multiply-adds x 2 of the compute-bound operators, from the planned shapes. */
static double node_flops(const mi_graph *g, const mi_node *n) {
  const mi_tensor *y = node_tensor(g, n, false, 0), *a = node_tensor(g, n, true, 0), *w = node_tensor(g, n, true, 1);
  if (!y || !a || !w || w->ndim < 2) return 0;
  const double ny = (double)mi_numel(y->ndim, y->dims);
  const double kin = (double)mi_numel(w->ndim - 1, w->dims + 1); /* W dims 1.. */
  if (!strcmp(n->op_type, "Conv")) return 2 * ny * (n->post_pool2 ? 4 : 1) * kin; /* before its fused pool (even maps) */
  if (!strcmp(n->op_type, "ConvTranspose")) return 2 * (double)mi_numel(a->ndim, a->dims) * kin;
  if (!strcmp(n->op_type, "MatMul") && a->ndim >= 1) return 2 * ny * (double)a->dims[a->ndim - 1];
  if (!strcmp(n->op_type, "Gemm") && a->ndim == 2)
    return 2 * ny * (double)(mi_attr_int(n, "transA", 0) ? a->dims[0] : a->dims[1]);
  return 0;
}

typedef struct prof_row {
  const char *what, *op;
  double ms, min_ms, flops; /* min_ms: the node's fastest run (an operator's: the sum of its nodes') */
  int count;
  const mi_node *node;
} prof_row;

static int by_time(const void *x, const void *y) {
  const prof_row *a = x, *b = y;
  return a->ms < b->ms ? 1 : a->ms > b->ms ? -1 : 0;
}

/* A long node name by its end ("..layer4.2/conv1/Conv"): exported networks'
 * names share long prefixes and differ at the end. */
static void print_row(FILE *out, const prof_row *r, double total, double peak) {
  const size_t len = strlen(r->what);
  const char *what = r->what, *dots = "";
  if (len > 28) what += len - 26, dots = "..";
  fprintf(out, "  %s%-*s %-14.14s %5d %9.3f %8.3f %5.1f%%", dots, (int)(28 - strlen(dots)), what, r->op, r->count,
          r->ms, r->min_ms, 100 * r->ms / total);
  if (r->flops > 0 && r->ms > 0) {
    const double gfs = r->flops / (r->ms * 1e6);
    fprintf(out, " %8.2f %8.1f", r->flops * 1e-9, gfs);
    if (peak > 0) fprintf(out, " %5.0f%%", 100 * gfs / peak);
  }
  fputc('\n', out);
}

mi_status *mi_model_write_profile(const mi_model *m, FILE *out, double peak) {
  if (!m || !out) return mi_error(MI_ERR_INVALID_ARGUMENT, "mi_model_write_profile: NULL argument");
  if (!m->prof_ms || m->prof_runs == 0 || m->prof_n != m->g.n_nodes)
    return mi_error(MI_ERR_INVALID_ARGUMENT, "no profiled runs (mi_model_set_profiling, then mi_model_run)");
  const mi_graph *g = &m->g;
  const double runs = (double)m->prof_runs;
  prof_row *nodes = calloc((size_t)g->n_nodes + 1, sizeof *nodes), *ops = calloc((size_t)g->n_nodes + 1, sizeof *ops);
  if (!nodes || !ops) {
    free(nodes);
    free(ops);
    return mi_error(MI_ERR_NO_MEMORY, "out of memory for the profile");
  }
  int nn = 0, no = 0;
  double total = 0, total_min = 0, total_flops = 0;
  for (int k = 0; k < g->n_nodes; k++) {
    const mi_node *n = &g->nodes[k];
    if (n->dead || m->prof_ms[k] <= 0) continue;
    const double ms = m->prof_ms[k] / runs, best = m->prof_ms[2 * g->n_nodes + k], fl = node_flops(g, n);
    nodes[nn++] = (prof_row){n->name && *n->name ? n->name : "(unnamed)", n->op_type, ms, best, fl, 1, n};
    total += ms;
    total_min += best;
    total_flops += fl;
    int o = 0;
    while (o < no && strcmp(ops[o].what, n->op_type)) o++;
    if (o == no) ops[no++] = (prof_row){n->op_type, "", 0, 0, 0, 0, NULL};
    ops[o].ms += ms;
    ops[o].min_ms += best;
    ops[o].flops += fl;
    ops[o].count++;
  }
  qsort(nodes, (size_t)nn, sizeof *nodes, by_time);
  qsort(ops, (size_t)no, sizeof *ops, by_time);
  fprintf(out, "profile: %.0f run%s, %.3f ms per run in %d nodes (%.4g GFLOP, %.1f GFLOP/s overall", runs,
          runs == 1 ? "" : "s", total, nn, total_flops * 1e-9, total > 0 ? total_flops / (total * 1e6) : 0.0);
  if (peak > 0) fprintf(out, ", %.0f%% of a %.0f GFLOP/s peak", total > 0 ? 100 * total_flops / (total * 1e6) / peak : 0.0, peak);
  fprintf(out, ")\n");
  /* On a shared machine a run's time moves with the neighbours' load; each
   * node's fastest run shows what the node itself costs. */
  fprintf(out, "sum of each node's fastest run: %.3f ms\n", total_min);
  int blocked = 0, layers = 0; /* the plan's layouts (plan.c): how many outputs skip the NCHW round trip */
  for (int k = 0; k < g->n_nodes; k++) {
    const mi_node *n = &g->nodes[k];
    if (n->dead || !(n->op->flags & MI_OP_CHAN16) || n->n_out < 1 || n->out[0] < 0) continue;
    layers++;
    blocked += g->values[n->out[0]].t.chan16;
  }
  if (layers)
    fprintf(out, "channel-blocked (NCHW16c) outputs: %d of %d convolution and max pooling layers\n", blocked, layers);
  fprintf(out, "  %-28s %-14s %5s %9s %8s %6s %8s %8s%s\n", "operator", "", "nodes", "ms/run", "min ms", "share",
          "GFLOP", "GFLOP/s", peak > 0 ? "  peak" : "");
  for (int i = 0; i < no; i++) print_row(out, &ops[i], total, peak);
  const char *topenv = getenv("MEDINFER_PROFILE_TOP"); /* more of the slowest nodes */
  const int want = topenv ? atoi(topenv) : 15, top = nn < want ? nn : want;
  fprintf(out, "  %-28s %-14s %5s %9s %8s %6s %8s %8s%s\n", "slowest nodes", "op", "", "ms/run", "min ms", "share",
          "GFLOP", "GFLOP/s", peak > 0 ? "  peak" : "");
  for (int i = 0; i < top; i++) print_row(out, &nodes[i], total, peak);
  free(nodes);
  free(ops);
  return NULL;
}
