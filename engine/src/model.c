/* Public model API: load, describe, run. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gemm/dconv.h"
#include "model.h"
#include "onnx_internal.h"

const char *mi_engine_version(void) { return MEDINFER_VERSION; }

size_t mi_default_max_tensor_bytes(void) {
  long pages = sysconf(_SC_PHYS_PAGES), psize = sysconf(_SC_PAGESIZE);
  if (pages <= 0 || psize <= 0) return (size_t)8 << 30;
  return (size_t)pages * (size_t)psize / 4 * 3;
}

static int online_cores(void) {
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? (int)n : 1;
}

void mi_options_default(mi_options *opt) {
  memset(opt, 0, sizeof *opt);
  opt->optimize = 1;
}

/* mi_wino_weights_make's levels: those whose SGEMM kernels' panels hold
 * whole groups of MI_WINO_LANES tiles (AVX2 16 columns, AVX-512 48). */
int mi_fast_available(void) { return mi_isa_level() != MI_ISA_GENERIC; }

int mi_bf16_available(void) {
#ifdef MI_GEMM_X86
  return mi_isa_level() == MI_ISA_AVX512 && mi_dconv_bf16_supported();
#else
  return 0;
#endif
}

const char *mi_bf16_unit(void) {
  if (!mi_bf16_available()) return NULL;
#ifdef MI_GEMM_X86
  if (mi_dconv_amx_supported()) return "AMX-BF16";
#endif
  return "AVX512-BF16";
}

static mi_status *fill_io_info(mi_model *m) {
  mi_graph *g = &m->g;
  m->in_info = calloc((size_t)g->n_inputs + 1, sizeof(mi_io_info));
  m->out_info = calloc((size_t)g->n_outputs + 1, sizeof(mi_io_info));
  if (!m->in_info || !m->out_info) return mi_error(MI_ERR_NO_MEMORY, "out of memory");
  for (int pass = 0; pass < 2; pass++) {
    int n = pass ? g->n_outputs : g->n_inputs;
    for (int i = 0; i < n; i++) {
      mi_value *v = &g->values[pass ? g->outputs[i] : g->inputs[i]];
      mi_io_info *info = pass ? &m->out_info[i] : &m->in_info[i];
      info->name = v->name;
      info->dtype = v->decl_dtype;
      info->ndim = v->decl_ndim;
      info->dims = v->decl_dims;
      info->dim_names = (const char *const *)v->decl_dim_names;
    }
  }
  return NULL;
}

/* All graph inputs have fixed declared shapes: plan now so shape errors
 * surface at load rather than at the first run. */
static mi_status *plan_if_static(mi_model *m) {
  mi_graph *g = &m->g;
  mi_tensor tmp[64], *ptr[64];
  for (int i = 0; i < g->n_inputs; i++) {
    const mi_value *v = &g->values[g->inputs[i]];
    if (v->decl_ndim < 0) return NULL;
    for (int d = 0; d < v->decl_ndim; d++)
      if (v->decl_dims[d] < 0) return NULL;
    memset(&tmp[i], 0, sizeof tmp[i]);
    mi_tensor_set_shape(&tmp[i], v->decl_dtype, v->decl_ndim, v->decl_dims);
    if (mi_plan_input_is_value(&tmp[i])) return NULL; /* needs the values */
    ptr[i] = &tmp[i];
  }
  return mi_plan_build(m, ptr);
}

/* `owned`: the file behind data when the caller hands it over. */
static mi_status *load(const void *data, size_t size, mi_file_bytes *owned, const char *base_dir,
                       const char *name, const mi_options *opt, mi_model **out) {
  *out = NULL;
  mi_model *m = calloc(1, sizeof *m);
  if (!m) {
    mi_file_bytes_close(owned);
    return mi_error(MI_ERR_NO_MEMORY, "out of memory");
  }
  m->plan.first_tail = -1;
  if (opt) m->opt = *opt;
  else mi_options_default(&m->opt);
  if (!m->opt.max_tensor_bytes) m->opt.max_tensor_bytes = mi_default_max_tensor_bytes();
  m->ex.max_tensor_bytes = m->opt.max_tensor_bytes;
  m->ex.bf16 = m->opt.bf16 != 0;
  if (!name) name = "<buffer>";
  mi_status *st = mi_onnx_build_graph(data, size, owned, base_dir, name, m->opt.max_tensor_bytes, &m->g);
  if (st) {
    free(m);
    return mi_error_named(st, name);
  }
  if (!st && m->opt.optimize) st = mi_graph_optimize(&m->g, m->opt.max_tensor_bytes);
  if (!st && m->opt.optimize && m->opt.device == MI_DEVICE_CPU) st = mi_graph_fuse_input_affine(&m->g);
  if (!st && m->opt.optimize && m->opt.device == MI_DEVICE_CPU) st = mi_graph_pool_before_pointwise(&m->g);
  m->g.bf16 = m->opt.bf16 && m->opt.device == MI_DEVICE_CPU && mi_bf16_available();
  /* bf16 mode allows bf16's rounding: FP32 Winograd, whose rounding is far
   * smaller, where it is faster than bf16's kernels (conv_winograd.h) */
  m->g.winograd = (m->opt.fast_math || m->g.bf16) && m->opt.device == MI_DEVICE_CPU;
  if (!st && m->opt.optimize && m->g.winograd) st = mi_graph_fuse_max_pool(&m->g);
  m->g.keep_packed_only = m->opt.device == MI_DEVICE_CPU; /* a GPU run uploads the graph's constants */
  if (!st) st = mi_graph_init_ops(&m->g);
  if (!st) st = mi_model_set_threads(m, m->opt.threads);
  if (!st) st = mi_plan_fold_static(m);
  if (!st) st = fill_io_info(m);
  if (!st) st = plan_if_static(m);
  if (!st && m->opt.device == MI_DEVICE_CUDA) st = mi_cuda_model_init(m);
  else if (!st && m->opt.device != MI_DEVICE_CPU)
    st = mi_error(MI_ERR_INVALID_ARGUMENT, "unknown device %d", m->opt.device);
  if (st) {
    mi_model_free(m);
    return mi_error_named(st, name);
  }
  *out = m;
  return NULL;
}

mi_status *mi_model_load_buffer(const void *data, size_t size, const char *base_dir,
                                const char *name, const mi_options *opt, mi_model **out) {
  *out = NULL;
  if (!data && size) return mi_error(MI_ERR_INVALID_ARGUMENT, "mi_model_load_buffer: data is NULL");
  return load(data, size, NULL, base_dir, name, opt, out);
}

mi_status *mi_model_load_file(const char *path, const mi_options *opt, mi_model **out) {
  *out = NULL;
  if (!path) return mi_error(MI_ERR_INVALID_ARGUMENT, "mi_model_load_file: path is NULL");
  mi_file_bytes file;
  MI_TRY(mi_file_bytes_open(path, (size_t)4 << 30, &file));
  char dir[4096];
  snprintf(dir, sizeof dir, "%s", path);
  char *slash = strrchr(dir, '/');
  if (slash) *slash = 0;
  else snprintf(dir, sizeof dir, ".");
  return load(file.data, file.size, &file, dir, path, opt, out);
}

void mi_model_free(mi_model *m) {
  if (!m) return;
  mi_cuda_model_free(m);
  mi_plan_clear(m);
  mi_graph_free(&m->g);
  mi_threadpool_free(m->ex.pool);
  mi_exec_scratch_free(&m->ex);
  free(m->prof_ms);
  free(m->in_info);
  free(m->out_info);
  free(m);
}

mi_status *mi_model_set_threads(mi_model *m, int threads) {
  if (threads < 0) return mi_error(MI_ERR_INVALID_ARGUMENT, "thread count %d is negative", threads);
  if (threads == 0) threads = online_cores();
  if (m->ex.pool && mi_threadpool_size(m->ex.pool) == threads) return NULL;
  mi_threadpool_free(m->ex.pool);
  m->ex.pool = mi_threadpool_create(threads);
  if (!m->ex.pool) return mi_error(MI_ERR_NO_MEMORY, "cannot start %d threads", threads);
  m->ex.threads = mi_threadpool_size(m->ex.pool);
  return NULL;
}

int mi_model_num_inputs(const mi_model *m) { return m->g.n_inputs; }
int mi_model_num_outputs(const mi_model *m) { return m->g.n_outputs; }

mi_status *mi_model_input_info(const mi_model *m, int index, mi_io_info *out) {
  if (index < 0 || index >= m->g.n_inputs)
    return mi_error(MI_ERR_INVALID_ARGUMENT, "input index %d outside 0..%d", index, m->g.n_inputs - 1);
  *out = m->in_info[index];
  return NULL;
}

mi_status *mi_model_output_info(const mi_model *m, int index, mi_io_info *out) {
  if (index < 0 || index >= m->g.n_outputs)
    return mi_error(MI_ERR_INVALID_ARGUMENT, "output index %d outside 0..%d", index, m->g.n_outputs - 1);
  *out = m->out_info[index];
  return NULL;
}

size_t mi_model_arena_bytes(const mi_model *m) { return m->plan.arena_bytes; }

static mi_status *check_inputs(const mi_model *m, mi_tensor *const *inputs, int n_inputs) {
  const mi_graph *g = &m->g;
  if (n_inputs != g->n_inputs)
    return mi_error(MI_ERR_INVALID_ARGUMENT, "'%s' takes %d input%s, %d given", g->name, g->n_inputs,
                    g->n_inputs == 1 ? "" : "s", n_inputs);
  char got[128], want[160];
  for (int i = 0; i < n_inputs; i++) {
    const mi_value *v = &g->values[g->inputs[i]];
    const mi_tensor *t = inputs[i];
    if (!t || (!t->data && mi_numel(t->ndim, t->dims)))
      return mi_error(MI_ERR_INVALID_ARGUMENT, "input '%s' is missing", v->name);
    if (v->decl_dtype && t->dtype != v->decl_dtype)
      return mi_error(MI_ERR_INVALID_ARGUMENT, "input '%s' must be %s, got %s", v->name,
                      mi_dtype_name(v->decl_dtype), mi_dtype_name(t->dtype));
    if (v->decl_ndim < 0) continue;
    bool ok = t->ndim == v->decl_ndim;
    for (int d = 0; ok && d < t->ndim; d++) ok = v->decl_dims[d] < 0 || v->decl_dims[d] == t->dims[d];
    if (!ok) {
      size_t off = 0;
      want[0] = 0;
      for (int d = 0; d < v->decl_ndim && off < sizeof want; d++) {
        if (v->decl_dims[d] >= 0)
          off += (size_t)snprintf(want + off, sizeof want - off, d ? "x%lld" : "%lld",
                                  (long long)v->decl_dims[d]);
        else
          off += (size_t)snprintf(want + off, sizeof want - off, d ? "x%s" : "%s",
                                  v->decl_dim_names[d] ? v->decl_dim_names[d] : "?");
      }
      return mi_error(MI_ERR_SHAPE, "input '%s' must have shape %s, got %s", v->name,
                      v->decl_ndim ? want : "scalar", mi_shape_str(t, got, sizeof got));
    }
  }
  return NULL;
}

static bool plan_matches(const mi_model *m, mi_tensor *const *inputs) {
  if (!m->plan.valid) return false;
  for (int i = 0; i < m->g.n_inputs; i++) {
    if (inputs[i]->ndim != m->plan.in_ndim[i]) return false;
    if (inputs[i]->dtype != m->g.values[m->g.inputs[i]].t.dtype) return false;
    for (int d = 0; d < inputs[i]->ndim; d++)
      if (inputs[i]->dims[d] != m->plan.in_dims[i][d]) return false;
    const mi_value *v = &m->g.values[m->g.inputs[i]];
    if (v->folded && memcmp(v->t.data, inputs[i]->data, mi_tensor_nbytes(&v->t)) != 0) return false;
  }
  return true;
}

/* Offset off into the plan's arena; NULL where the plan needs none (every
 * value empty: no arena, and NULL + 0 is undefined). */
static void *arena_at(const mi_model *m, int64_t off) { return m->plan.arena ? (char *)m->plan.arena + off : NULL; }

mi_status *mi_model_run(mi_model *m, mi_tensor *const *inputs, int n_inputs, mi_tensor **outputs,
                        int n_outputs) {
  if (!m || (!inputs && n_inputs) || (!outputs && n_outputs))
    return mi_error(MI_ERR_INVALID_ARGUMENT, "mi_model_run: NULL argument");
  mi_graph *g = &m->g;
  if (n_outputs != g->n_outputs)
    return mi_error(MI_ERR_INVALID_ARGUMENT, "'%s' has %d output%s, room for %d given", g->name,
                    g->n_outputs, g->n_outputs == 1 ? "" : "s", n_outputs);
  for (int i = 0; i < n_outputs; i++) outputs[i] = NULL;
  MI_TRY(check_inputs(m, inputs, n_inputs));
  bool replanned = !plan_matches(m, inputs);
  /* A plan's first run makes the weights some kernels pack lazily: memory
   * its scratch gives back is theirs to reuse.  Later runs keep it. */
  m->ex.keep_scratch = !replanned;
  if (replanned) {
    mi_exec_scratch_free(&m->ex);
    MI_TRY(mi_plan_build(m, inputs));
  } else if (m->plan.recorded) {
    mi_plan_place_scratch(m);
  }
  mi_blas_set_threads(m->ex.threads); /* also for nodes a CUDA run leaves to the CPU */
  if (m->cuda) return mi_cuda_model_run(m, replanned, inputs, outputs);

  /* Bind buffers. */
  for (int i = 0; i < g->n_inputs; i++)
    if (!g->values[g->inputs[i]].folded) g->values[g->inputs[i]].t.data = inputs[i]->data;
  for (int v = 0; v < g->n_values; v++)
    if (g->values[v].arena_offset >= 0)
      g->values[v].t.data = arena_at(m, g->values[v].arena_offset);
  mi_status *st = NULL;
  for (int i = 0; i < g->n_outputs && !st; i++) {
    mi_value *v = &g->values[g->outputs[i]];
    if (v->dynamic) continue; /* shape known once the tail has run */
    st = mi_tensor_create(v->t.dtype, v->t.ndim, v->t.dims, &outputs[i]);
    if (st) break;
    /* Outputs that are constants, inputs or folded are copied at the end. */
    if (v->producer >= 0 && !v->is_const && !v->folded && !v->is_input) v->t.data = outputs[i]->data;
  }
  mi_tensor *in[MI_MAX_IO + 1], *out[MI_MAX_IO], scratch[MI_MAX_IO];
  for (int k = 0; k < g->n_nodes && !st; k++) {
    mi_node *n = &g->nodes[k];
    if (n->tail) continue; /* after the planned nodes, below */
    bool skip = true; /* every output folded already */
    for (int i = 0; i < n->n_out && skip; i++) skip = n->out[i] < 0 || g->values[n->out[i]].folded;
    if (skip && n->n_out > 0) continue;
    for (int i = 0; i < n->n_in; i++) in[i] = n->in[i] >= 0 ? &g->values[n->in[i]].t : NULL;
    in[n->n_in] = n->fused_add >= 0 ? &g->values[n->fused_add].t : NULL;
    memset(scratch, 0, sizeof(mi_tensor) * (size_t)n->n_out);
    bool dropped = false; /* outputs the graph drops: the kernel still needs room */
    for (int i = 0; i < n->n_out; i++) {
      out[i] = n->out[i] >= 0 ? &g->values[n->out[i]].t : &scratch[i];
      dropped = dropped || n->out[i] < 0;
    }
    if (dropped) st = n->op->infer(n, in, out); /* their shapes, with every output bound (infer sets them all) */
    for (int i = 0; i < n->n_out && !st; i++)
      if (n->out[i] < 0) st = mi_tensor_alloc(&scratch[i], m->opt.max_tensor_bytes);
    if (!st) {
      const bool prof = m->prof_ms && m->prof_n == g->n_nodes;
      const double t0 = prof ? mi_now_ms() : 0;
      mi_exec_scratch_node(&m->ex, m->plan.recording ? &n->scratch_need : NULL,
                           n->room_off >= 0 ? arena_at(m, n->room_off) : NULL, n->scratch_need);
      st = n->op->run(n, &m->ex, in, out);
      mi_exec_scratch_node(&m->ex, NULL, NULL, 0);
      if (prof) m->prof_ms[g->n_nodes + k] = mi_now_ms() - t0;
    }
    for (int i = 0; i < n->n_out; i++)
      if (scratch[i].owns_data) free(scratch[i].data);
    if (st) st = mi_error_prefix(st, "'%s'", g->name);
  }
  mi_profile_commit(m, !st);
  if (!st && m->plan.first_tail >= 0) st = mi_graph_run_eager(g, &m->ex, true);
  for (int i = 0; i < g->n_outputs && !st; i++) {
    mi_value *v = &g->values[g->outputs[i]];
    if (v->dynamic) st = mi_tensor_create(v->t.dtype, v->t.ndim, v->t.dims, &outputs[i]);
    if (st) break;
    if (v->t.data != outputs[i]->data && mi_tensor_nbytes(&v->t))
      memcpy(outputs[i]->data, v->t.data, mi_tensor_nbytes(&v->t));
  }
  mi_graph_release_eager(g);
  if (m->plan.recording) mi_exec_scratch_recorded(&m->ex);
  if (!st && m->plan.recording) m->plan.recording = false, m->plan.recorded = true;
  /* Leave no pointers to caller memory behind. */
  for (int i = 0; i < g->n_inputs; i++)
    if (!g->values[g->inputs[i]].folded) g->values[g->inputs[i]].t.data = NULL;
  for (int i = 0; i < g->n_outputs; i++) {
    mi_value *v = &g->values[g->outputs[i]];
    if (!v->is_const && !v->folded) v->t.data = NULL;
  }
  if (st) {
    for (int i = 0; i < n_outputs; i++) {
      mi_tensor_free(outputs[i]);
      outputs[i] = NULL;
    }
  }
  return st;
}
