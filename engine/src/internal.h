/* Engine internals shared by the loader, planner, executor and operators. */
#ifndef MEDINFER_ENGINE_INTERNAL_H
#define MEDINFER_ENGINE_INTERNAL_H

#include "medinfer/engine.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Most inputs or outputs one node may have (checked at load). */
#define MI_MAX_IO 256

/* ---- tensors ----------------------------------------------------------- */
struct mi_tensor {
  mi_dtype dtype;
  int ndim;
  int64_t dims[MI_MAX_DIMS];
  void *data;
  bool owns_data;
  /* NCHW16c, set by the plan on values that only convolutions and max
   * pooling read and write (plan.c, mi_op_layouts): element (n, c, y, x) of a 4D tensor
   * at (n * C + c / 16 * 16) * H * W + (y * W + x) * 16 + c % 16. */
  bool chan16;
};

int64_t mi_numel(int ndim, const int64_t *dims);
/* Set shape/dtype only (data untouched). */
void mi_tensor_set_shape(mi_tensor *t, mi_dtype dt, int ndim, const int64_t *dims);
size_t mi_tensor_nbytes(const mi_tensor *t);
/* t's size in bytes, checked: fails on a negative dimension, or over the
 * size limit (0: none; sizes past SIZE_MAX / 2 count as SIZE_MAX / 2). */
mi_status *mi_tensor_checked_nbytes(const mi_tensor *t, size_t max_bytes, size_t *nbytes);
/* Allocate owned storage for t's current shape (fails over the size limit). */
mi_status *mi_tensor_alloc(mi_tensor *t, size_t max_bytes);
/* Read element i of an integer or float tensor as int64 / double. */
int64_t mi_tensor_get_i64(const mi_tensor *t, int64_t i);
double mi_tensor_get_f64(const mi_tensor *t, int64_t i);
/* Element i set to v, converted as Cast converts (mi_f64_to_i64). */
void mi_tensor_set_f64(mi_tensor *t, int64_t i, double v);
/* A float to an integer: truncated toward zero, saturating out of range,
 * NaN -> 0, so that no conversion is undefined (to an unsigned type, a
 * negative value wraps like the signed path; narrower types then wrap like
 * a two's-complement store). */
static inline int64_t mi_f64_to_i64(double v) {
  if (!(v == v)) return 0;
  if (v >= 9223372036854775807.0) return INT64_MAX;
  if (v <= -9223372036854775808.0) return INT64_MIN;
  return (int64_t)v;
}
static inline uint64_t mi_f64_to_u64(double v) {
  if (!(v == v)) return 0;
  if (v >= 18446744073709551615.0) return UINT64_MAX;
  if (v < 0) return (uint64_t)mi_f64_to_i64(v);
  return (uint64_t)v;
}
/* Format dims as "1x3x224x224" into buf. */
const char *mi_shape_str(const mi_tensor *t, char *buf, size_t n);
/* Numpy broadcasting of a and b shapes into out. */
mi_status *mi_broadcast_shape(int na, const int64_t *a, int nb, const int64_t *b, int *nout,
                              int64_t *out);

/* ---- attributes -------------------------------------------------------- */
struct mi_graph;
typedef enum mi_attr_type {
  MI_ATTR_FLOAT = 1, MI_ATTR_INT = 2, MI_ATTR_STRING = 3, MI_ATTR_TENSOR = 4,
  MI_ATTR_GRAPH = 5, MI_ATTR_FLOATS = 6, MI_ATTR_INTS = 7, MI_ATTR_STRINGS = 8
} mi_attr_type;

typedef struct mi_attr {
  char *name;
  mi_attr_type type;
  float f;
  int64_t i;
  char *s;           /* STRING (NUL-terminated copy) */
  float *floats;     /* FLOATS */
  int64_t *ints;     /* INTS   */
  char **strings;    /* STRINGS */
  size_t n;          /* element count of floats/ints/strings */
  mi_tensor *t;      /* TENSOR (owned) */
  struct mi_graph *g; /* GRAPH (owned): a subgraph such as If's branches */
} mi_attr;

/* ---- graph ------------------------------------------------------------- */
typedef struct mi_node mi_node;
typedef struct mi_exec mi_exec;

/* A value is an edge of the graph: an input, initializer or node output. */
typedef struct mi_value {
  char *name;
  mi_tensor t;          /* shape/dtype once planned; data set at run time */
  bool is_const;        /* initializer, Constant or folded at load: t.data valid */
  bool folded;          /* computed while planning for the current input shapes */
  bool is_input;
  bool is_output;
  bool is_capture;      /* subgraph value defined in an enclosing graph */
  bool dynamic;         /* shape known only while running (eager tail) */
  int producer;         /* node index, -1 for inputs and constants */
  int last_use;         /* last consuming node index in the plan */
  int n_uses;
  /* declared type from the model (graph inputs/outputs, value_info) */
  mi_dtype decl_dtype;
  int decl_ndim;        /* -1 unknown */
  int64_t decl_dims[MI_MAX_DIMS];
  char *decl_dim_names[MI_MAX_DIMS];
  /* planning */
  int64_t arena_offset; /* -1: not in arena */
  int alias_of;         /* value index sharing its buffer (in place), -1 */
} mi_value;

/* Fused epilogue an operator applies to its output (set by graph passes). */
typedef enum mi_act_kind {
  MI_ACT_NONE = 0, MI_ACT_RELU, MI_ACT_LEAKY_RELU, MI_ACT_CLIP, MI_ACT_SIGMOID, MI_ACT_TANH
} mi_act_kind;
typedef struct mi_activation {
  mi_act_kind kind;
  float alpha, beta; /* LeakyRelu: alpha; Clip: [alpha, beta] */
} mi_activation;
void mi_activation_apply(const mi_activation *a, float *x, int64_t n);
/* LeakyReLU of n floats in place, in vectors of 8 whatever the target: the
 * product is made for every value and blended by sign, where a compiler turns
 * `v >= 0 ? v : v * alpha` into a conditional product that it vectorises only
 * with AVX-512's masks (a 3D U-Net's InstanceNorm + LeakyReLU layers: 379 ms
 * on AVX2 against 44 on AVX-512).  NaN stays NaN, -0 stays -0. */
static inline __attribute__((always_inline)) void mi_leaky_relu(float *x, int64_t n, float alpha) {
  typedef float f8 __attribute__((vector_size(32)));
  typedef int32_t i8 __attribute__((vector_size(32)));
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    f8 v;
    memcpy(&v, x + i, sizeof v);
    const f8 w = v * alpha;
    const i8 m = v >= 0.f;
    const f8 r = (f8)(((i8)v & m) | ((i8)w & ~m));
    memcpy(x + i, &r, sizeof r);
  }
  for (; i < n; i++) x[i] = x[i] >= 0.f ? x[i] : x[i] * alpha;
}
/* Monotonic clock in milliseconds (profile.c). */
double mi_now_ms(void);

typedef struct mi_op_def mi_op_def;

struct mi_node {
  char *name;
  char *op_type;
  char *domain;
  int opset;            /* opset version of the node's domain */
  int n_in, n_out;
  int *in;              /* value indices; -1 for an omitted optional input */
  int *out;
  int n_attr;
  mi_attr *attr;
  /* An attribute an operator read as another type (first one; the getters
   * return the default for it): the load fails naming it, as ONNX Runtime's. */
  const mi_attr *mistyped;
  mi_attr_type mistyped_want;
  const mi_op_def *op;
  void *priv;           /* operator state (parsed attributes, packed weights) */
  mi_activation act;    /* fused activation (only ops flagged MI_OP_FUSE_ACT) */
  int fused_add;        /* value index of a residual added before act, or -1.
                         * The executor passes its tensor as in[n_in] (one past
                         * the node's own inputs). */
  float *pre_affine;    /* input prologue (Conv, AveragePool; CPU): x' = x * pre_affine[c] +
                         * pre_affine[C + c] per input channel c, then ReLU if
                         * pre_relu; a BatchNormalization folded in (malloc'd) */
  int64_t pre_channels; /* C of pre_affine */
  bool pre_relu;
  bool post_pool2;      /* Conv (CPU): a 2x2 stride-2 MaxPool of its output fused in
                         * (mi_graph_fuse_max_pool): the node's output is the pooled one */
  bool dead;            /* removed by a graph pass */
  bool tail;            /* runs eagerly after the planned nodes (plan.c) */
  /* Kernels' scratch (plan.c, scratch.c): the most the node stacked on its
   * plan's first run (SIZE_MAX: more blocks at once than the stack holds),
   * and where its room lies in the arena (-1: none). */
  size_t scratch_need;
  int64_t room_off;
};

typedef struct mi_graph {
  mi_value *values;
  int n_values, cap_values;
  mi_node *nodes;
  int n_nodes, cap_nodes;
  int *inputs;  int n_inputs;   /* graph inputs that are not initializers */
  int *outputs; int n_outputs;
  int opset;    /* default-domain opset */
  bool residuals_fused; /* the shape-dependent residual pass has run */
  bool winograd; /* fast or bf16 mode on the CPU: 3x3 convolutions may use Winograd (conv_winograd.h) */
  bool bf16;     /* bf16 mode on a CPU that has it: a Gemm's constant weights held in bf16 (ops/gemm.c) */
  bool keep_packed_only; /* CPU: a constant that an op packed at load and alone reads may be freed */
  /* Subgraphs only: values named here but defined in the enclosing graph.
   * captures[i] is the value index here; capture_slot[i] the input index of
   * the owning node (If) through which the enclosing graph passes it. */
  int *captures, *capture_slot;
  int n_captures;
  char *name;   /* model file name for messages */
} mi_graph;

int mi_graph_find_value(const mi_graph *g, const char *name); /* -1 if absent */
/* Frees the graph's copy of constant input `in` of node n when an op holds
 * its own packed form and nothing else reads it (CPU runs: keep_packed_only;
 * the value's data is then NULL).  True when freed. */
bool mi_graph_free_packed_const(mi_graph *g, const mi_node *n, int in);
const mi_attr *mi_node_attr(const mi_node *n, const char *name);
int64_t mi_attr_int(const mi_node *n, const char *name, int64_t def);
float mi_attr_float(const mi_node *n, const char *name, float def);
const char *mi_attr_string(const mi_node *n, const char *name, const char *def);
/* INTS attribute: returns count (0 if absent) and sets *vals (not owned). */
size_t mi_attr_ints(const mi_node *n, const char *name, const int64_t **vals);
size_t mi_attr_floats(const mi_node *n, const char *name, const float **vals);
/* Error naming the node: "node 'name' (Op): <message>". */
mi_status *mi_node_error(const mi_node *n, mi_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Prefixes "'name': " unless the message already names the model: "'name'"
 * or a subgraph of it, "'name:node.branch'". Takes st; NULL stays NULL. */
mi_status *mi_error_named(mi_status *st, const char *name);

/* ---- operators --------------------------------------------------------- */
enum {
  MI_OP_INPLACE = 1u << 0,   /* output 0 may reuse input 0's buffer          */
  MI_OP_FUSE_ACT = 1u << 1,  /* honours node->act and node->fused_add        */
  /* Output shapes depend on input values (NonZero, NonMaxSuppression, If):
   * `infer` is never called; `run` sets each output's shape and allocates it
   * (mi_tensor_set_shape + mi_tensor_alloc, owned).  Unless all inputs are
   * known while planning, the node and everything depending on it run
   * eagerly after the planned part (eager.c). */
  MI_OP_DYNAMIC = 1u << 2,
  MI_OP_CHAN16 = 1u << 3,    /* may read and write NCHW16c (mi_op_layouts)  */
};

/* Operators see tensors only.  in[i] is NULL for an omitted optional input.
 * During planning `infer` is called with input shapes (and data for constant
 * inputs; data == NULL otherwise) and must set every output's dtype and
 * dims.  `run` computes outputs into preallocated out[i]->data.  An operator
 * whose inputs are all constant is run once at plan time (constant folding). */
struct mi_op_def {
  const char *op_type;
  int min_opset;          /* first opset (default domain) the kernel implements */
  unsigned flags;
  /* Once at load: validate attributes, cache them in n->priv.  May be NULL. */
  mi_status *(*init)(mi_node *n, mi_graph *g);
  mi_status *(*infer)(mi_node *n, mi_tensor *const *in, mi_tensor **out);
  mi_status *(*run)(mi_node *n, mi_exec *ex, mi_tensor *const *in, mi_tensor **out);
  void (*destroy)(mi_node *n); /* free n->priv; may be NULL (then free()) */
};
/* An MI_OP_CHAN16 node (Conv, MaxPool): which of MI_CHAN16_IN /
 * MI_CHAN16_OUT it can take for the planned shapes, X (input 0) read and Y
 * (output 0, with a fused residual) written channel-blocked
 * (mi_tensor.chan16); with MI_CHAN16_COPY it gains nothing by them itself
 * (takes them through NCHW copies, or either way alike), where the others
 * gain: the plan blocks a value only where a node without it writes or
 * reads it. */
#define MI_CHAN16_IN 1u
#define MI_CHAN16_OUT 2u
#define MI_CHAN16_COPY 4u
unsigned mi_op_layouts(const mi_node *n, const mi_exec *ex, mi_tensor *const *in);
unsigned mi_conv_layouts(const mi_node *n, const mi_exec *ex, mi_tensor *const *in);
unsigned mi_maxpool_layouts(const mi_node *n, const mi_exec *ex, mi_tensor *const *in);

const mi_op_def *mi_op_find(const char *op_type, const char *domain);
/* How many of n's leading inputs ONNX requires (n->n_in for a variadic op). */
int mi_op_required_inputs(const mi_node *n);
/* Call every node's op init (once at load; subgraphs from their owner's init). */
mi_status *mi_graph_init_ops(mi_graph *g);

/* Run nodes eagerly, each on real input data: infer, allocate owned outputs,
 * run, and free each intermediate after its last reader.  only_tail: just
 * the nodes marked tail (the rest has run); otherwise the whole graph (a
 * subgraph whose captures are bound).  Graph outputs keep their data (owned
 * unless they are constants or captures); mi_graph_release_eager frees them. */
mi_status *mi_graph_run_eager(mi_graph *g, mi_exec *ex, bool only_tail);
/* Free the data eager runs left in non-constant values. */
void mi_graph_release_eager(mi_graph *g);

/* ---- execution context ------------------------------------------------- */
/* Scratch memory and threads for kernels during a run. */
typedef struct mi_scratch_block mi_scratch_block;
typedef struct mi_scratch_stacked {
  void *p;
  size_t bytes, end; /* the block is [end - bytes, end) of the node's stack */
  size_t mapped;     /* owned: the allocation's size (bytes or more) */
  bool busy;
  bool owned; /* allocated for it (while recording), not in the room */
} mi_scratch_stacked;
#define MI_SCRATCH_STACK 16 /* blocks a node holds at once on its stack; more take kept blocks */
struct mi_exec {
  int threads;
  size_t max_tensor_bytes;
  bool bf16; /* mi_options.bf16 */
  struct mi_threadpool *pool;
  bool keep_scratch;         /* keep released blocks (not on a plan's first run) */
  mi_scratch_block *scratch; /* blocks kept between calls (scratch.c) */
  int n_scratch, cap_scratch;
  /* The running planned node's scratch, stacked (scratch.c): recorded into
   * *need (the most it held at once; NULL: not recording) on a plan's first
   * run, taken from its room in the arena (NULL: none) on later runs. */
  size_t *need;
  char *room;
  size_t room_bytes;
  mi_scratch_stacked stack[MI_SCRATCH_STACK];
  int n_stack;
  /* Recording: the largest mapped block given back, for the next request it
   * holds (scratch.c); unmapped when recording ends. */
  void *spare;
  size_t spare_bytes;
};

/* Scratch buffer (64-byte aligned) valid until released, which the kernel
 * does before it returns; NULL on failure.  Inside a node with a room, from
 * the room while it holds the request; else, with keep_scratch set, from
 * blocks the exec keeps for later calls; ex may be NULL (plain allocation).
 * Called from the thread running the model, not from workers. */
void *mi_exec_scratch(mi_exec *ex, size_t bytes);
void mi_exec_scratch_release(mi_exec *ex, void *p);
/* Enter a planned node (need: where to record its scratch, NULL: not
 * recording; room, room_bytes: its room, NULL: none), or leave it (all NULL). */
void mi_exec_scratch_node(mi_exec *ex, size_t *need, void *room, size_t room_bytes);
/* Frees the blocks the exec keeps (all released). */
void mi_exec_scratch_free(mi_exec *ex);
/* A plan's first run is over: its recorded blocks' spare goes back. */
void mi_exec_scratch_recorded(mi_exec *ex);

/* Run fn(ctx, begin, end) over [0, n) split into chunks across the pool's
 * threads.  grain: minimum items per chunk. */
typedef void (*mi_range_fn)(void *ctx, int64_t begin, int64_t end);
void mi_parallel_for(mi_exec *ex, int64_t n, int64_t grain, mi_range_fn fn, void *ctx);

/* ---- threads ----------------------------------------------------------- */
typedef struct mi_threadpool mi_threadpool;
mi_threadpool *mi_threadpool_create(int threads);
void mi_threadpool_free(mi_threadpool *p);
int mi_threadpool_size(const mi_threadpool *p);
void mi_threadpool_run(mi_threadpool *p, int64_t n, int64_t grain, mi_range_fn fn, void *ctx);

/* ---- BLAS -------------------------------------------------------------- */
/* Row-major C[M,N] = alpha*op(A)*op(B) + beta*C. */
void mi_sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
              const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C,
              int64_t ldc);
void mi_blas_set_threads(int threads);

#endif
