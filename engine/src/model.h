/* The model object: graph, options, and the plan for the current shapes. */
#ifndef MEDINFER_MODEL_H
#define MEDINFER_MODEL_H

#include "internal.h"

typedef struct mi_plan {
  bool valid;
  int64_t in_dims[64][MI_MAX_DIMS]; /* input shapes the plan was made for */
  int in_ndim[64];
  size_t arena_bytes;
  void *arena;
  int first_tail; /* first node run eagerly after the planned ones (-1: none) */
  /* The plan's first run records its nodes' scratch (until one succeeds);
   * the next places their rooms (mi_plan_place_scratch). */
  bool recording, recorded;
} mi_plan;

struct mi_model {
  mi_graph g;
  mi_options opt;
  mi_exec ex;
  mi_plan plan;
  mi_io_info *in_info, *out_info;
  struct mi_cuda_model *cuda; /* device state when opt.device is CUDA */
  /* Per-node timing (mi_model_set_profiling): totals over prof_runs
   * successful runs in prof_ms[0..n), the current run in prof_ms[n..2n),
   * each node's fastest run in prof_ms[2n..3n). */
  double *prof_ms;
  int prof_n; /* node count prof_ms was made for */
  int64_t prof_runs;
};
/* The current run's node times into the totals when the run succeeded, then
 * cleared for the next (profile.c; the CPU and CUDA runs both end with it). */
void mi_profile_commit(mi_model *m, bool ok);

/* CUDA backend: cuda_loader.c loads libmedinfer_cuda.so (cuda/exec_cuda.cu) on first use. */
mi_status *mi_cuda_model_init(mi_model *m);
mi_status *mi_cuda_model_run(mi_model *m, bool replanned, mi_tensor *const *inputs,
                             mi_tensor **outputs);
void mi_cuda_model_free(mi_model *m);

/* Build g from an ONNX model in memory (onnx_load.c). `owned`, if not NULL,
 * is the file holding data: it is closed as soon as it is parsed. */
struct mi_file_bytes;
mi_status *mi_onnx_build_graph(const uint8_t *data, size_t size, struct mi_file_bytes *owned, const char *base_dir,
                               const char *name, size_t max_bytes, mi_graph *g);
void mi_graph_free(mi_graph *g);
/* Add a value; returns its index or -1 when out of memory. */
int mi_graph_add_value(mi_graph *g, const char *name);
/* Sort nodes topologically; fails naming a cycle or an undefined input. */
mi_status *mi_graph_toposort(mi_graph *g);

/* Graph passes (optimize.c): BatchNorm folding, activation fusion, identity removal. */
mi_status *mi_graph_optimize(mi_graph *g, size_t max_bytes);

/* Fuse Add(producer_out, residual) into producers that take a residual,
 * where the planned shapes match (needs inferred shapes). Returns the count. */
int mi_graph_fuse_residuals(mi_graph *g);

/* BatchNormalization(+ReLU) -> Conv (group 1, constant weights)  =>  Conv
 * with an input prologue (mi_node.pre_affine): the normalised tensor is never
 * written.  CPU only: the CUDA kernels do not read the prologue. */
mi_status *mi_graph_fuse_input_affine(mi_graph *g);

/* Conv 1x1 (unit strides, no padding, nothing fused after it) ->
 * AveragePool (no padding, no ceil_mode, strided)  =>  AveragePool -> Conv.
 * Both are linear and the same at every position, the pool's window
 * weights summing to one, so they commute, bias included; the convolution
 * then runs on the pooled positions (DenseNet-121's transitions: a quarter
 * of their multiply-adds).  The Conv's input prologue moves to the pool.
 * Rounding differs as any reordered sum does.  CPU only, run after
 * mi_graph_fuse_input_affine: the CUDA pooling does not read a prologue. */
mi_status *mi_graph_pool_before_pointwise(mi_graph *g);

/* Conv 3x3 (2D, unit strides and dilations, one group, no residual fused
 * into it; an activation may be) -> MaxPool 2x2 stride 2 (no padding, no
 * ceil_mode, no Indices)  =>  one Conv with mi_node.post_pool2: where the
 * Winograd path takes the layer, its output transform keeps each 2x2
 * window's maximum and the full-size output is never written (VGG's
 * blocks); elsewhere the layer runs into a scratch buffer and is pooled
 * from there.  The same values as the two nodes.  Only for graphs that
 * run Winograd (fast or bf16 mode on the CPU). */
mi_status *mi_graph_fuse_max_pool(mi_graph *g);

/* Shape planning and memory planning for given input shapes (plan.c). */
mi_status *mi_plan_build(mi_model *m, mi_tensor *const *inputs);
/* Fold nodes whose inputs are all constants, once at load. */
mi_status *mi_plan_fold_static(mi_model *m);
void mi_plan_clear(mi_model *m);
/* After the plan's first run: each node's recorded scratch gets a room in the
 * arena, live only while the node runs, and the arena is made again.  Kept
 * as it was (without rooms) when that would not fit in memory.  Arena
 * contents do not outlive a run. */
void mi_plan_place_scratch(mi_model *m);
/* Inputs whose values (not just shapes) the plan depends on. */
bool mi_plan_input_is_value(const mi_tensor *t);

#endif
