/* medinfer engine: load an ONNX network and run it on the CPU.
 *
 * Conventions
 * - Every fallible call returns a mi_status* (see medinfer/status.h).
 * - Handles are opaque.  Objects returned through an out-parameter belong to
 *   the caller, who frees them with the matching *_free function.
 * - A mi_model may be used by one thread at a time; run it from several
 *   threads by loading it once per thread.  The worker threads are shared
 *   by the whole process: while one run uses them, a concurrent run
 *   computes on its calling thread alone.
 */
#ifndef MEDINFER_ENGINE_H
#define MEDINFER_ENGINE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "medinfer/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- tensors ----------------------------------------------------------- */
/* Element types, numbered as ONNX's TensorProto.DataType. */
typedef enum mi_dtype {
  MI_UNDEFINED = 0,
  MI_FLOAT = 1,
  MI_UINT8 = 2,
  MI_INT8 = 3,
  MI_UINT16 = 4,
  MI_INT16 = 5,
  MI_INT32 = 6,
  MI_INT64 = 7,
  MI_BOOL = 9,
  MI_DOUBLE = 11,
  MI_UINT32 = 12,
  MI_UINT64 = 13
} mi_dtype;

#define MI_MAX_DIMS 8

typedef struct mi_tensor mi_tensor;

/* New zero-filled tensor owning its data.  ndim may be 0 (a scalar). */
mi_status *mi_tensor_create(mi_dtype dtype, int ndim, const int64_t *dims, mi_tensor **out);
/* Tensor viewing caller memory; the caller keeps `data` alive and frees it. */
mi_status *mi_tensor_wrap(mi_dtype dtype, int ndim, const int64_t *dims, void *data,
                          mi_tensor **out);
/* Parse a serialized onnx.TensorProto (as in the ONNX test data sets). */
mi_status *mi_tensor_load_pb(const char *path, mi_tensor **out);
void mi_tensor_free(mi_tensor *t); /* accepts NULL; never frees wrapped data */

mi_dtype mi_tensor_dtype(const mi_tensor *t);
int mi_tensor_ndim(const mi_tensor *t);
const int64_t *mi_tensor_dims(const mi_tensor *t);
int64_t mi_tensor_numel(const mi_tensor *t);
void *mi_tensor_data(mi_tensor *t);
const void *mi_tensor_cdata(const mi_tensor *t);
const char *mi_dtype_name(mi_dtype dt);
size_t mi_dtype_size(mi_dtype dt);

/* ---- models ------------------------------------------------------------ */
typedef struct mi_model mi_model;

typedef struct mi_options {
  int threads;           /* 0: all online cores                            */
  int optimize;          /* 1 (default via mi_options_default): graph passes */
  size_t max_tensor_bytes; /* refuse any tensor larger (0: 3/4 of RAM)     */
  int device;            /* MI_DEVICE_CPU (default) or MI_DEVICE_CUDA       */
  int device_index;      /* CUDA device ordinal (0: the first GPU)          */
  int bf16;              /* CPU: 1 runs the convolutions the direct kernel
                          * takes (group 1, strides 1-2 in y and x, 1 in z)
                          * in bf16 with fp32 accumulation where the CPU has
                          * AVX512-BF16, on AMX tiles where it has AMX-BF16
                          * (about 1e-2 relative difference per layer);
                          * elsewhere, and for other layers, FP32 as usual.
                          * Without AMX, 3x3 layers of 64M multiply-adds
                          * or more where FP32 Winograd (see fast_math)
                          * saves at least 3x of them run so: faster than
                          * bf16 there, and far closer to FP32 */
  int fast_math;         /* fast mode.  CPU (where mi_fast_available()):
                          * stride-1, single-group 3x3 (and
                          * kd x 3 x 3) convolutions with constant weights
                          * run as Winograd F(4x4, 3x3) (F(3x3, 3x3) or
                          * F(2x2, 3x3) where 4x4 blocks fit the map badly)
                          * where the layer has enough positions (about 1e-5
                          * of each output's sum of |products| instead of
                          * fp32's 1e-7; the transformed weights take up to
                          * 4x those layers' weight memory).  CUDA: TF32 tensor-core GEMMs
                          * (about 1e-2 relative error instead of 1e-5).  */
} mi_options;

enum { MI_DEVICE_CPU = 0, MI_DEVICE_CUDA = 1 };

void mi_options_default(mi_options *opt);

/* 1 when mi_options.fast_math's Winograd convolutions run on this CPU (an
 * x86-64 with AVX2 and FMA, or AVX-512F; MEDINFER_ISA not set to generic),
 * else 0: there fast mode runs the CPU's convolutions in FP32 as usual. */
int mi_fast_available(void);
/* 1 when mi_options.bf16 takes effect on this CPU (AVX-512F and AVX512-BF16,
 * not capped by MEDINFER_ISA), else 0. */
int mi_bf16_available(void);
/* What runs bf16 mode's products: "AMX-BF16", "AVX512-BF16", or NULL when
 * mi_bf16_available() is 0.  A static string. */
const char *mi_bf16_unit(void);

/* `opt` may be NULL for defaults.  External-data files are resolved beside
 * `path`.  An unsupported operator anywhere in the graph fails the load with
 * a message naming every such operator. */
mi_status *mi_model_load_file(const char *path, const mi_options *opt, mi_model **out);
/* `base_dir` locates external-data files (NULL: none allowed).  `name` is used
 * in messages (NULL: "<buffer>").  The buffer may be freed after the call. */
mi_status *mi_model_load_buffer(const void *data, size_t size, const char *base_dir,
                                const char *name, const mi_options *opt, mi_model **out);
void mi_model_free(mi_model *m); /* accepts NULL */

mi_status *mi_model_set_threads(mi_model *m, int threads);

/* ---- profiling --------------------------------------------------------------
 * With profiling on, mi_model_run times every node (on a GPU, its device
 * time between two events on the model's stream; nodes of the host tail are
 * not timed there).  mi_model_write_profile
 * prints, per run, the time of each operator type and of the slowest nodes,
 * with GFLOP/s of the convolutions and matrix products (2 x multiply-adds)
 * and, when peak_gflops > 0, their share of that peak.  Turning profiling
 * on clears earlier totals. */
mi_status *mi_model_set_profiling(mi_model *m, int on);
mi_status *mi_model_write_profile(const mi_model *m, FILE *out, double peak_gflops);

/* Description of a graph input or output.  Strings and arrays are owned by
 * the model and stay valid until mi_model_free.  dims[i] < 0 means unknown;
 * dim_names[i] is the symbolic name or NULL. */
typedef struct mi_io_info {
  const char *name;
  mi_dtype dtype;
  int ndim; /* -1: rank unknown */
  const int64_t *dims;
  const char *const *dim_names;
} mi_io_info;

int mi_model_num_inputs(const mi_model *m);
int mi_model_num_outputs(const mi_model *m);
mi_status *mi_model_input_info(const mi_model *m, int index, mi_io_info *out);
mi_status *mi_model_output_info(const mi_model *m, int index, mi_io_info *out);

/* Run the graph.  `inputs` are in graph-input order (n_inputs must equal
 * mi_model_num_inputs).  On success outputs[0..num_outputs-1] receive new
 * tensors the caller frees.  Shapes may change between calls. */
mi_status *mi_model_run(mi_model *m, mi_tensor *const *inputs, int n_inputs,
                        mi_tensor **outputs, int n_outputs);

/* Bytes of the activation arena planned for the last run (0 before one):
 * the intermediate tensors', and from a plan's second run on also the room
 * each layer's kernels take for their scratch while it runs. */
size_t mi_model_arena_bytes(const mi_model *m);

const char *mi_engine_version(void);

/* Number of usable CUDA devices.  When there are some, sets *count and
 * returns NULL; when there are none (CUDA not built in, no driver, no GPU)
 * sets *count to 0 and returns a status saying why (the caller frees it). */
mi_status *mi_cuda_device_count(int *count);

/* On the CUDA device, operators without a CUDA kernel and the nodes after a
 * data-dependent shape (NonZero, NonMaxSuppression, ...) run on the CPU,
 * their inputs copied from the GPU and their outputs back.  Writes those
 * operator types, comma-separated, into buf ("" when everything runs on the
 * GPU or the model is on the CPU).  Exact once a plan exists (after loading
 * a model with fixed input shapes, or after a run); before, it lists every
 * operator type without a CUDA kernel. */
void mi_model_cpu_fallback_ops(const mi_model *m, char *buf, size_t size);

#ifdef __cplusplus
}
#endif
#endif
