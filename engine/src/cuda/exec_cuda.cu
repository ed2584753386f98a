/* CUDA executor: the CPU planner's shapes, folding and arena offsets, with
 * the arena in one cudaMalloc'd block, constants uploaded once, inputs and
 * outputs staged through pinned host buffers on the model's stream, and every
 * node run by a kernel from the CUDA operator table. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_common.h"

/* ---- shared helpers ------------------------------------------------------ */
mi_status *mi_cuda_err(const mi_node *n, cudaError_t e, const char *what) {
  if (n) return mi_node_error(n, MI_ERR_INTERNAL, "CUDA: %s failed: %s", what, cudaGetErrorString(e));
  return mi_error(MI_ERR_INTERNAL, "CUDA: %s failed: %s", what, cudaGetErrorString(e));
}

static const char *cublas_name(cublasStatus_t e) {
  switch (e) {
    case CUBLAS_STATUS_NOT_INITIALIZED: return "not initialized";
    case CUBLAS_STATUS_ALLOC_FAILED: return "allocation failed";
    case CUBLAS_STATUS_INVALID_VALUE: return "invalid value";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "architecture mismatch";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "execution failed";
    case CUBLAS_STATUS_INTERNAL_ERROR: return "internal error";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "not supported";
    default: return "error";
  }
}

mi_status *mi_cublas_err(const mi_node *n, cublasStatus_t e, const char *what) {
  if (n) return mi_node_error(n, MI_ERR_INTERNAL, "cuBLAS: %s failed: %s (%d)", what, cublas_name(e), (int)e);
  return mi_error(MI_ERR_INTERNAL, "cuBLAS: %s failed: %s (%d)", what, cublas_name(e), (int)e);
}

void *mi_cuda_workspace(mi_cuda_ctx *cx, const mi_node *n, size_t bytes, mi_status **st) {
  *st = NULL;
  if (bytes <= cx->ws_bytes) return cx->ws;
  cudaError_t e = cudaStreamSynchronize(cx->stream);
  if (e != cudaSuccess) {
    *st = mi_cuda_err(n, e, "cudaStreamSynchronize");
    return NULL;
  }
  if (cx->ws) cudaFree(cx->ws);
  cx->ws = NULL;
  cx->ws_bytes = 0;
  size_t want = bytes + bytes / 4;
  e = cudaMalloc(&cx->ws, want);
  if (e != cudaSuccess) {
    cudaGetLastError();
    *st = mi_node_error(n, MI_ERR_NO_MEMORY, "CUDA: cannot allocate %zu bytes of workspace: %s", want,
                        cudaGetErrorString(e));
    cx->ws = NULL;
    return NULL;
  }
  cx->ws_bytes = want;
  return cx->ws;
}

void mi_cuda_bcast_strides(const mi_tensor *t, int nd, const int64_t *dims, int64_t *strides) {
  int64_t st[MI_MAX_DIMS];
  mi_cuda_contig_strides(t->ndim, t->dims, st);
  for (int d = 0; d < nd; d++) {
    int td = d - (nd - t->ndim);
    strides[d] = (td < 0 || t->dims[td] == 1) ? 0 : st[td];
  }
}

__global__ void k_epilogue(float *y, const float *bias, const float *res, int64_t total, int64_t C,
                           int64_t inner, int kind, float a, float b) {
  CU_LOOP(i, total) {
    float v = y[i];
    if (bias) v += bias[(i / inner) % C];
    if (res) v += res[i];
    y[i] = mi_cuda_act(v, kind, a, b);
  }
}

mi_status *mi_cuda_epilogue(mi_cuda_ctx *cx, const mi_node *n, float *y, const float *bias,
                            const float *res, int64_t outer, int64_t C, int64_t inner) {
  if (!bias && !res && n->act.kind == MI_ACT_NONE) return NULL;
  int64_t total = outer * C * inner;
  if (!total) return NULL;
  k_epilogue<<<mi_cuda_grid(total, 256), 256, 0, cx->stream>>>(y, bias, res, total, C, inner, n->act.kind,
                                                              n->act.alpha, n->act.beta);
  CU_LAUNCHED(n);
  return NULL;
}

template <typename T>
__global__ void k_strided_copy(const T *in, T *out, mi_cuda_shape sh, mi_cuda_shape os, int64_t total) {
  CU_LOOP(i, total) {
    int64_t r = i, src = 0, dst = 0;
    for (int d = sh.ndim - 1; d >= 0; d--) {
      int64_t c = r % sh.dims[d];
      r /= sh.dims[d];
      src += c * sh.strides[d];
      dst += c * os.strides[d];
    }
    out[dst] = in[src];
  }
}

mi_status *mi_cuda_strided_copy(mi_cuda_ctx *cx, const mi_node *n, const void *in, int64_t in_off,
                                void *out, int64_t out_off, const int64_t *out_full_strides,
                                const mi_cuda_shape *sh, size_t esize) {
  int64_t total = 1;
  for (int d = 0; d < sh->ndim; d++) total *= sh->dims[d];
  if (total == 0) return NULL;
  mi_cuda_shape s = *sh, os = *sh;
  if (s.ndim == 0) {
    s.ndim = os.ndim = 1;
    s.dims[0] = os.dims[0] = 1;
    s.strides[0] = 0;
    os.strides[0] = 0;
  } else if (out_full_strides) {
    memcpy(os.strides, out_full_strides, sizeof(int64_t) * (size_t)sh->ndim);
  } else {
    mi_cuda_contig_strides(sh->ndim, sh->dims, os.strides);
  }
  unsigned g = mi_cuda_grid(total, 256);
  switch (esize) {
    case 1: k_strided_copy<uint8_t><<<g, 256, 0, cx->stream>>>((const uint8_t *)in + in_off, (uint8_t *)out + out_off, s, os, total); break;
    case 2: k_strided_copy<uint16_t><<<g, 256, 0, cx->stream>>>((const uint16_t *)in + in_off, (uint16_t *)out + out_off, s, os, total); break;
    case 4: k_strided_copy<uint32_t><<<g, 256, 0, cx->stream>>>((const uint32_t *)in + in_off, (uint32_t *)out + out_off, s, os, total); break;
    case 8: k_strided_copy<uint64_t><<<g, 256, 0, cx->stream>>>((const uint64_t *)in + in_off, (uint64_t *)out + out_off, s, os, total); break;
    default: return mi_node_error(n, MI_ERR_UNSUPPORTED, "element size %zu not supported", esize);
  }
  CU_LAUNCHED(n);
  return NULL;
}

mi_status *mi_cuda_sgemm(mi_cuda_ctx *cx, const mi_node *n, bool ta, bool tb, int64_t M, int64_t N,
                         int64_t K, float alpha, const float *A, int64_t lda, int64_t sA,
                         const float *B, int64_t ldb, int64_t sB, float beta, float *C, int64_t ldc,
                         int64_t sC, int64_t batch) {
  if (M == 0 || N == 0 || batch == 0) return NULL;
  if (M > INT32_MAX || N > INT32_MAX || K > INT32_MAX || lda > INT32_MAX || ldb > INT32_MAX ||
      ldc > INT32_MAX)
    return mi_node_error(n, MI_ERR_UNSUPPORTED, "GEMM dimensions exceed cuBLAS's 32-bit limit");
  /* Row-major C = op(A) op(B)  <=>  column-major C^T = op(B)^T op(A)^T. */
  cublasOperation_t opA = tb ? CUBLAS_OP_T : CUBLAS_OP_N, opB = ta ? CUBLAS_OP_T : CUBLAS_OP_N;
  if (K == 0) { /* cuBLAS leaves C alone only when beta == 1 */
    if (beta == 1.f) return NULL;
  }
  if (batch == 1) {
    CUBLAS_TRY(n, cublasSgemm(cx->blas, opA, opB, (int)N, (int)M, (int)K, &alpha, B, (int)ldb, A, (int)lda,
                              &beta, C, (int)ldc));
  } else {
    CUBLAS_TRY(n, cublasSgemmStridedBatched(cx->blas, opA, opB, (int)N, (int)M, (int)K, &alpha, B, (int)ldb,
                                            sB, A, (int)lda, sA, &beta, C, (int)ldc, sC, (int)batch));
  }
  return NULL;
}

/* ---- operator table ------------------------------------------------------- */
static const mi_cuda_op *const families[] = {
    mi_cuda_ops_elementwise, mi_cuda_ops_conv,   mi_cuda_ops_pool,   mi_cuda_ops_norm, mi_cuda_ops_gemm,
    mi_cuda_ops_shape,       mi_cuda_ops_reduce, mi_cuda_ops_resize,
};

const mi_cuda_op *mi_cuda_op_find(const char *op_type) {
  for (size_t f = 0; f < sizeof families / sizeof families[0]; f++)
    for (const mi_cuda_op *d = families[f]; d->op_type; d++)
      if (strcmp(d->op_type, op_type) == 0) return d;
  return NULL;
}

/* ---- devices ---------------------------------------------------------------- */
extern "C" mi_status *mi_cuda_backend_device_count(int *count) {
  if (count) *count = 0;
  int c = 0;
  cudaError_t e = cudaGetDeviceCount(&c);
  if (e != cudaSuccess) {
    cudaGetLastError();
    return mi_error(MI_ERR_UNSUPPORTED, "no usable CUDA device: %s (%s)", cudaGetErrorString(e),
                    e == cudaErrorNoDevice ? "no GPU found"
                    : e == cudaErrorInsufficientDriver ? "the NVIDIA driver is missing or too old"
                                                       : "CUDA runtime error");
  }
  if (c == 0) return mi_error(MI_ERR_UNSUPPORTED, "no usable CUDA device: no GPU found");
  if (count) *count = c;
  return NULL;
}

/* ---- the model's device state --------------------------------------------- */
struct mi_cuda_model {
  mi_cuda_ctx cx;
  bool have_plan;
  void **dconst;  /* per value: device copy of a constant (kept for the model's life) */
  void **dplan;   /* per value: device buffer owned by the current plan (folded values,
                   * graph inputs and outputs) */
  void **dptr;    /* per value: where its data lives on the device this plan */
  void *arena;
  void *pinned;   /* staging for inputs and outputs */
  size_t pinned_bytes;
  const mi_cuda_op **ops; /* per node */
  /* Profiling (mi_model_set_profiling): a start and an end event per node,
   * made at the first profiled run; timed[k] when node k ran this run. */
  cudaEvent_t *prof_ev;
  bool *timed;
  int prof_nodes;
};

/* The events for a profiled run; false (no timing) when they cannot be made. */
static bool prof_events(mi_model *m) {
  mi_cuda_model *c = m->cuda;
  const int n = m->g.n_nodes;
  if (c->prof_ev && c->prof_nodes == n) return true;
  if (c->prof_ev)
    for (int i = 0; i < 2 * c->prof_nodes; i++) cudaEventDestroy(c->prof_ev[i]);
  free(c->prof_ev);
  free(c->timed);
  c->prof_nodes = 0;
  c->prof_ev = (cudaEvent_t *)calloc(2 * (size_t)(n > 0 ? n : 1), sizeof *c->prof_ev);
  c->timed = (bool *)calloc((size_t)(n > 0 ? n : 1), sizeof *c->timed);
  if (!c->prof_ev || !c->timed) return false;
  for (int i = 0; i < 2 * n; i++)
    if (cudaEventCreate(&c->prof_ev[i]) != cudaSuccess) {
      while (i-- > 0) cudaEventDestroy(c->prof_ev[i]);
      free(c->prof_ev);
      c->prof_ev = NULL;
      cudaGetLastError();
      return false;
    }
  c->prof_nodes = n;
  return true;
}

static void free_plan(mi_cuda_model *c, int nv) {
  for (int v = 0; v < nv; v++) {
    if (c->dplan[v]) cudaFree(c->dplan[v]);
    c->dplan[v] = NULL;
    c->dptr[v] = NULL;
  }
  if (c->arena) cudaFree(c->arena);
  c->arena = NULL;
  if (c->pinned) cudaFreeHost(c->pinned);
  c->pinned = NULL;
  c->pinned_bytes = 0;
  c->have_plan = false;
}

extern "C" void mi_cuda_backend_model_free(mi_model *m) {
  mi_cuda_model *c = m->cuda;
  if (!c) return;
  cudaSetDevice(c->cx.device);
  if (c->cx.stream) cudaStreamSynchronize(c->cx.stream);
  int nv = m->g.n_values;
  if (c->dplan) free_plan(c, nv);
  if (c->dconst)
    for (int v = 0; v < nv; v++)
      if (c->dconst[v]) cudaFree(c->dconst[v]);
  if (c->cx.ws) cudaFree(c->cx.ws);
  if (c->prof_ev)
    for (int i = 0; i < 2 * c->prof_nodes; i++) cudaEventDestroy(c->prof_ev[i]);
  free(c->prof_ev);
  free(c->timed);
  if (c->cx.blas) cublasDestroy(c->cx.blas);
  if (c->cx.stream) cudaStreamDestroy(c->cx.stream);
  cudaGetLastError();
  free(c->dconst);
  free(c->dplan);
  free(c->dptr);
  free(c->ops);
  free(c);
  m->cuda = NULL;
}

static bool node_skipped(const mi_graph *g, const mi_node *n) {
  if (n->dead) return true;
  bool skip = true;
  for (int i = 0; i < n->n_out && skip; i++) skip = n->out[i] < 0 || g->values[n->out[i]].folded ||
                                                   g->values[n->out[i]].is_const;
  return skip && n->n_out > 0;
}

static mi_status *upload(const mi_tensor *t, void **dst) {
  size_t bytes = mi_tensor_nbytes(t);
  cudaError_t e = cudaMalloc(dst, bytes ? bytes : 1);
  if (e != cudaSuccess) {
    cudaGetLastError();
    *dst = NULL;
    return mi_error(MI_ERR_NO_MEMORY, "CUDA: cannot allocate %zu bytes: %s", bytes, cudaGetErrorString(e));
  }
  if (bytes) {
    e = cudaMemcpy(*dst, t->data, bytes, cudaMemcpyHostToDevice);
    if (e != cudaSuccess) return mi_cuda_err(NULL, e, "cudaMemcpy (upload)");
    /* A pageable copy may still be in flight when cudaMemcpy returns, and the
     * model's stream does not wait for the legacy default stream. */
    e = cudaDeviceSynchronize();
    if (e != cudaSuccess) return mi_cuda_err(NULL, e, "cudaDeviceSynchronize (upload)");
  }
  return NULL;
}

/* Operators without a CUDA kernel (and the eager tail of data-dependent
 * shapes) run on the CPU with their inputs copied to the host and their
 * outputs back (run_on_host, run_tail_on_host), as ONNX Runtime places such
 * nodes on its CPU provider.  mi_cuda_host_ops lists them. */
extern "C" mi_status *mi_cuda_backend_model_init(mi_model *m) {
  mi_graph *g = &m->g;
  int count = 0;
  mi_status *st = mi_cuda_backend_device_count(&count);
  if (st) return mi_error_prefix(st, "'%s': device CUDA", g->name);
  if (m->opt.device_index < 0 || m->opt.device_index >= count)
    return mi_error(MI_ERR_INVALID_ARGUMENT, "CUDA device %d requested, but %d device%s found",
                    m->opt.device_index, count, count == 1 ? "" : "s");
  mi_cuda_model *c = (mi_cuda_model *)calloc(1, sizeof *c);
  if (!c) return mi_error(MI_ERR_NO_MEMORY, "out of memory");
  m->cuda = c;
  int nv = g->n_values;
  c->dconst = (void **)calloc((size_t)nv + 1, sizeof(void *));
  c->dplan = (void **)calloc((size_t)nv + 1, sizeof(void *));
  c->dptr = (void **)calloc((size_t)nv + 1, sizeof(void *));
  c->ops = (const mi_cuda_op **)calloc((size_t)g->n_nodes + 1, sizeof(void *));
  if (!c->dconst || !c->dplan || !c->dptr || !c->ops) return mi_error(MI_ERR_NO_MEMORY, "out of memory");
  for (int k = 0; k < g->n_nodes; k++) c->ops[k] = mi_cuda_op_find(g->nodes[k].op_type);
  c->cx.device = m->opt.device_index;
  c->cx.fast_math = m->opt.fast_math != 0;
  CU_TRY(NULL, cudaSetDevice(c->cx.device));
  CU_TRY(NULL, cudaStreamCreateWithFlags(&c->cx.stream, cudaStreamNonBlocking));
  CU_TRY(NULL, cudaDeviceGetAttribute(&c->cx.sm_count, cudaDevAttrMultiProcessorCount, c->cx.device));
  CUBLAS_TRY(NULL, cublasCreate(&c->cx.blas));
  CUBLAS_TRY(NULL, cublasSetStream(c->cx.blas, c->cx.stream));
  CUBLAS_TRY(NULL, cublasSetMathMode(c->cx.blas, c->cx.fast_math ? CUBLAS_TF32_TENSOR_OP_MATH
                                                                  : CUBLAS_DEFAULT_MATH));
  /* Constants read by nodes that run on the device: upload once. */
  for (int k = 0; k < g->n_nodes; k++) {
    const mi_node *n = &g->nodes[k];
    if (n->dead || !c->ops[k]) continue;
    for (int i = 0; i <= n->n_in; i++) {
      int v = i < n->n_in ? n->in[i] : n->fused_add;
      if (v < 0 || !g->values[v].is_const || c->dconst[v]) continue;
      MI_TRY(mi_error_prefix(upload(&g->values[v].t, &c->dconst[v]), "'%s': constant '%s'", g->name,
                             g->values[v].name));
    }
  }
  /* The host arena of a plan made at load is not used on this device. */
  free(m->plan.arena);
  m->plan.arena = NULL;
  return NULL;
}

static mi_status *dalloc(void **p, size_t bytes, const char *what, const char *name) {
  cudaError_t e = cudaMalloc(p, bytes ? bytes : 1);
  if (e != cudaSuccess) {
    cudaGetLastError();
    *p = NULL;
    return mi_error(MI_ERR_NO_MEMORY, "CUDA: cannot allocate %zu bytes for %s '%s': %s", bytes, what, name,
                    cudaGetErrorString(e));
  }
  return NULL;
}

/* Device buffers for the current plan. */
static mi_status *setup_plan(mi_model *m) {
  mi_graph *g = &m->g;
  mi_cuda_model *c = m->cuda;
  int nv = g->n_values;
  free_plan(c, nv);
  /* Planning may rewrite the schedule (residual fusion re-sorts the nodes):
   * look the kernels up again for the nodes as they now stand. */
  free(c->ops);
  c->ops = (const mi_cuda_op **)calloc((size_t)g->n_nodes + 1, sizeof(void *));
  if (!c->ops) return mi_error(MI_ERR_NO_MEMORY, "out of memory");
  for (int k = 0; k < g->n_nodes; k++) c->ops[k] = mi_cuda_op_find(g->nodes[k].op_type);
  free(m->plan.arena); /* planned on the host, placed on the device */
  m->plan.arena = NULL;
  if (m->plan.arena_bytes) MI_TRY(dalloc(&c->arena, m->plan.arena_bytes, "the", "activation arena"));
  size_t pinned = 0;
  for (int v = 0; v < nv; v++) {
    mi_value *val = &g->values[v];
    if (val->is_const) {
      c->dptr[v] = c->dconst[v];
    } else if (val->folded) {
      if (!val->t.data && mi_tensor_nbytes(&val->t)) continue;
      MI_TRY(mi_error_prefix(upload(&val->t, &c->dplan[v]), "'%s': value '%s'", g->name, val->name));
      c->dptr[v] = c->dplan[v];
    } else if (val->arena_offset >= 0) {
      c->dptr[v] = (char *)c->arena + val->arena_offset;
    } else if (val->dynamic || (val->producer >= 0 && g->nodes[val->producer].tail)) {
      continue; /* made on the host by the eager tail */
    } else if (val->is_input || (val->is_output && val->producer >= 0)) {
      size_t bytes = mi_tensor_nbytes(&val->t);
      MI_TRY(dalloc(&c->dplan[v], bytes, val->is_input ? "input" : "output", val->name));
      c->dptr[v] = c->dplan[v];
      pinned += (bytes + 255) & ~(size_t)255;
    }
  }
  /* Constants first used by this plan (a shape-dependent branch). */
  for (int k = 0; k < g->n_nodes; k++) {
    const mi_node *n = &g->nodes[k];
    if (node_skipped(g, n) || n->tail || !c->ops[k]) continue;
    for (int i = 0; i <= n->n_in; i++) {
      int v = i < n->n_in ? n->in[i] : n->fused_add;
      if (v < 0 || !g->values[v].is_const || c->dconst[v]) continue;
      MI_TRY(upload(&g->values[v].t, &c->dconst[v]));
      c->dptr[v] = c->dconst[v];
    }
  }
  if (pinned) {
    cudaError_t e = cudaMallocHost(&c->pinned, pinned);
    if (e != cudaSuccess) {
      cudaGetLastError();
      c->pinned = NULL;
      return mi_error(MI_ERR_NO_MEMORY, "CUDA: cannot allocate %zu bytes of pinned host memory: %s", pinned,
                      cudaGetErrorString(e));
    }
    c->pinned_bytes = pinned;
  }
  c->have_plan = true;
  return NULL;
}

/* ---- nodes on the host --------------------------------------------------- */
static void host_free(mi_tensor *t, int n) {
  for (int i = 0; i < n; i++)
    if (t[i].owns_data) free(t[i].data);
}

/* A node without a CUDA kernel: its device inputs copied to the host, the
 * CPU kernel, its outputs copied back into their device buffers. */
static mi_status *run_on_host(mi_model *m, mi_node *n) {
  mi_graph *g = &m->g;
  mi_cuda_model *c = m->cuda;
  CU_TRY(n, cudaStreamSynchronize(c->cx.stream));
  mi_tensor hin[MI_MAX_IO + 1], hout[MI_MAX_IO];
  mi_tensor *in[MI_MAX_IO + 1], *out[MI_MAX_IO];
  memset(hin, 0, sizeof hin);
  memset(hout, 0, sizeof hout);
  mi_status *st = NULL;
  for (int i = 0; i <= n->n_in && !st; i++) {
    const int v = i < n->n_in ? n->in[i] : n->fused_add;
    in[i] = NULL;
    if (v < 0) continue;
    mi_value *val = &g->values[v];
    if (val->is_const || val->folded) { /* already on the host */
      in[i] = &val->t;
      continue;
    }
    mi_tensor_set_shape(&hin[i], val->t.dtype, val->t.ndim, val->t.dims);
    st = mi_tensor_alloc(&hin[i], m->opt.max_tensor_bytes);
    const size_t bytes = mi_tensor_nbytes(&hin[i]);
    if (!st && bytes) {
      cudaError_t e = cudaMemcpy(hin[i].data, c->dptr[v], bytes, cudaMemcpyDeviceToHost);
      if (e != cudaSuccess) st = mi_cuda_err(n, e, "cudaMemcpy (to the host)");
    }
    in[i] = &hin[i];
  }
  for (int i = 0; i < n->n_out; i++) out[i] = &hout[i];
  if (!st) st = n->op->infer(n, in, out);
  for (int i = 0; i < n->n_out && !st; i++) st = mi_tensor_alloc(&hout[i], m->opt.max_tensor_bytes);
  if (!st) st = n->op->run(n, &m->ex, in, out);
  for (int i = 0; i < n->n_out && !st; i++) {
    const int v = n->out[i];
    if (v < 0 || g->values[v].folded || g->values[v].is_const || !c->dptr[v]) continue;
    const size_t bytes = mi_tensor_nbytes(&hout[i]);
    if (bytes != mi_tensor_nbytes(&g->values[v].t))
      st = mi_node_error(n, MI_ERR_SHAPE, "output '%s' has another size than planned", g->values[v].name);
    else if (bytes) { /* on the model's stream: its next kernels wait for it */
      cudaError_t e = cudaMemcpyAsync(c->dptr[v], hout[i].data, bytes, cudaMemcpyHostToDevice, c->cx.stream);
      if (e != cudaSuccess) st = mi_cuda_err(n, e, "cudaMemcpyAsync (to the device)");
    }
  }
  /* The host buffers must outlive the copies. */
  cudaError_t e = cudaStreamSynchronize(c->cx.stream);
  if (!st && e != cudaSuccess) st = mi_cuda_err(n, e, "cudaStreamSynchronize");
  host_free(hin, n->n_in + 1);
  host_free(hout, n->n_out);
  return st ? mi_error_prefix(st, "(on the CPU: no CUDA kernel)") : NULL;
}

/* The eager tail (nodes after a data-dependent shape): the values it reads
 * from the device are copied to host buffers it owns (it frees each after
 * its last reader), graph inputs are read in place, then it runs on the CPU. */
static mi_status *run_tail_on_host(mi_model *m, mi_tensor *const *inputs) {
  mi_graph *g = &m->g;
  mi_cuda_model *c = m->cuda;
  CU_TRY(NULL, cudaStreamSynchronize(c->cx.stream));
  mi_status *st = NULL;
  for (int i = 0; i < g->n_inputs; i++)
    if (!g->values[g->inputs[i]].folded) g->values[g->inputs[i]].t.data = inputs[i]->data;
  for (int k = 0; k < g->n_nodes && !st; k++) {
    const mi_node *n = &g->nodes[k];
    if (n->dead || !n->tail) continue;
    for (int i = 0; i <= n->n_in && !st; i++) {
      const int v = i < n->n_in ? n->in[i] : n->fused_add;
      if (v < 0) continue;
      mi_value *val = &g->values[v];
      if (val->is_const || val->folded || val->is_input || val->t.data) continue;
      if (val->producer >= 0 && g->nodes[val->producer].tail) continue; /* made by the tail itself */
      if (!c->dptr[v] && mi_tensor_nbytes(&val->t)) {
        st = mi_node_error(n, MI_ERR_INTERNAL, "input '%s' has no device buffer", val->name);
        break;
      }
      val->t.owns_data = false;
      st = mi_tensor_alloc(&val->t, m->opt.max_tensor_bytes);
      const size_t bytes = mi_tensor_nbytes(&val->t);
      if (!st && bytes) {
        cudaError_t e = cudaMemcpy(val->t.data, c->dptr[v], bytes, cudaMemcpyDeviceToHost);
        if (e != cudaSuccess) st = mi_cuda_err(n, e, "cudaMemcpy (to the host)");
      }
    }
  }
  if (!st) st = mi_graph_run_eager(g, &m->ex, true);
  for (int i = 0; i < g->n_inputs; i++)
    if (!g->values[g->inputs[i]].folded) g->values[g->inputs[i]].t.data = NULL;
  return st;
}

/* After the tail: whether v's data is the host's (made by the tail, or a
 * copy it read). */
static bool on_host(const mi_graph *g, const mi_value *v) {
  return (v->producer >= 0 && g->nodes[v->producer].tail) || (v->t.owns_data && v->t.data);
}

static mi_status *run_nodes(mi_model *m) {
  mi_graph *g = &m->g;
  mi_cuda_model *c = m->cuda;
  mi_tensor dv[MI_MAX_IO + 1], dout[MI_MAX_IO];
  mi_tensor *in[MI_MAX_IO + 1], *out[MI_MAX_IO];
  const mi_tensor *hin[MI_MAX_IO + 1];
  void *scratch[MI_MAX_IO];
  const bool prof = m->prof_ms && m->prof_n == g->n_nodes && prof_events(m);
  if (prof) memset(c->timed, 0, sizeof(bool) * (size_t)g->n_nodes);
  for (int k = 0; k < g->n_nodes; k++) {
    mi_node *n = &g->nodes[k];
    if (node_skipped(g, n) || n->tail) continue;
    if (prof) cudaEventRecord(c->prof_ev[2 * k], c->cx.stream), c->timed[k] = true;
    if (!c->ops[k]) {
      MI_TRY(mi_error_prefix(run_on_host(m, n), "'%s' (CUDA)", g->name));
      if (prof) cudaEventRecord(c->prof_ev[2 * k + 1], c->cx.stream);
      continue;
    }
    for (int i = 0; i <= n->n_in; i++) {
      int v = i < n->n_in ? n->in[i] : n->fused_add;
      if (v < 0) {
        in[i] = NULL;
        hin[i] = NULL;
        continue;
      }
      const mi_value *val = &g->values[v];
      dv[i] = val->t;
      dv[i].data = c->dptr[v];
      dv[i].owns_data = false;
      in[i] = &dv[i];
      hin[i] = (val->is_const || val->folded) ? &val->t : NULL;
    }
    mi_status *st = NULL;
    int n_scratch = 0;
    for (int i = 0; i < n->n_out && !st; i++) {
      scratch[i] = NULL;
      if (n->out[i] >= 0) {
        dout[i] = g->values[n->out[i]].t;
        dout[i].data = c->dptr[n->out[i]];
        dout[i].owns_data = false;
        out[i] = &dout[i];
        continue;
      }
      /* An output the graph drops: the kernel still needs room. */
      memset(&dout[i], 0, sizeof dout[i]);
      out[i] = &dout[i];
      mi_tensor *hostin[MI_MAX_IO + 1];
      for (int j = 0; j <= n->n_in; j++) {
        int v = j < n->n_in ? n->in[j] : n->fused_add;
        hostin[j] = v >= 0 ? &g->values[v].t : NULL;
      }
      mi_tensor *hout[MI_MAX_IO];
      mi_tensor tmp[MI_MAX_IO];
      memset(tmp, 0, sizeof(mi_tensor) * (size_t)n->n_out);
      for (int j = 0; j < n->n_out; j++) hout[j] = n->out[j] >= 0 ? &g->values[n->out[j]].t : &tmp[j];
      st = n->op->infer(n, hostin, hout);
      if (st) break;
      dout[i] = tmp[i];
      dout[i].data = NULL;
      cudaError_t e = cudaMallocAsync(&scratch[i], mi_tensor_nbytes(&tmp[i]) + 1, c->cx.stream);
      if (e != cudaSuccess) st = mi_cuda_err(n, e, "cudaMallocAsync (dropped output)");
      dout[i].data = scratch[i];
      n_scratch = i + 1;
    }
    if (!st) st = c->ops[k]->run(n, &c->cx, in, hin, out);
    if (prof) cudaEventRecord(c->prof_ev[2 * k + 1], c->cx.stream);
    for (int i = 0; i < n_scratch; i++)
      if (scratch[i]) cudaFreeAsync(scratch[i], c->cx.stream);
    if (st) return mi_error_prefix(st, "'%s' (CUDA)", g->name);
  }
  return NULL;
}

extern "C" mi_status *mi_cuda_backend_model_run(mi_model *m, bool replanned, mi_tensor *const *inputs,
                                        mi_tensor **outputs) {
  mi_graph *g = &m->g;
  mi_cuda_model *c = m->cuda;
  CU_TRY(NULL, cudaSetDevice(c->cx.device));
  if (replanned || !c->have_plan) {
    mi_status *st = setup_plan(m);
    if (st) {
      free_plan(c, g->n_values);
      return st;
    }
  }
  mi_status *st = NULL;
  const bool tail = m->plan.first_tail >= 0;
  for (int i = 0; i < g->n_outputs && !st; i++) {
    const mi_value *v = &g->values[g->outputs[i]];
    if (v->dynamic) continue; /* shaped by the tail */
    st = mi_tensor_create(v->t.dtype, v->t.ndim, v->t.dims, &outputs[i]);
  }
  /* Inputs: host -> pinned -> device, asynchronously on the model's stream. */
  size_t poff = 0;
  for (int i = 0; i < g->n_inputs && !st; i++) {
    int v = g->inputs[i];
    if (g->values[v].folded || !c->dplan[v]) continue;
    size_t bytes = mi_tensor_nbytes(&g->values[v].t);
    char *stage = (char *)c->pinned + poff;
    poff += (bytes + 255) & ~(size_t)255;
    memcpy(stage, inputs[i]->data, bytes);
    cudaError_t e = cudaMemcpyAsync(c->dplan[v], stage, bytes, cudaMemcpyHostToDevice, c->cx.stream);
    if (e != cudaSuccess) st = mi_cuda_err(NULL, e, "cudaMemcpyAsync (input)");
  }
  if (!st) st = run_nodes(m);
  if (!st && tail) st = run_tail_on_host(m, inputs);
  /* Outputs: device -> pinned, then one synchronisation. */
  size_t out_off[64 + 1];
  for (int i = 0; i < g->n_outputs && !st; i++) {
    int v = g->outputs[i];
    const mi_value *val = &g->values[v];
    out_off[i < 64 ? i : 64] = (size_t)-1;
    if (val->is_const || val->folded || val->is_input || (tail && on_host(g, val)) || !c->dplan[v]) continue;
    size_t bytes = mi_tensor_nbytes(&val->t);
    if (i < 64) out_off[i] = poff;
    cudaError_t e = cudaMemcpyAsync((char *)c->pinned + poff, c->dplan[v], bytes, cudaMemcpyDeviceToHost,
                                    c->cx.stream);
    poff += (bytes + 255) & ~(size_t)255;
    if (e != cudaSuccess) st = mi_cuda_err(NULL, e, "cudaMemcpyAsync (output)");
  }
  cudaError_t e = cudaStreamSynchronize(c->cx.stream);
  if (!st && e != cudaSuccess)
    st = mi_error(MI_ERR_INTERNAL, "'%s': CUDA: a kernel failed while running: %s", g->name,
                  cudaGetErrorString(e));
  if (m->prof_ms && m->prof_n == g->n_nodes) { /* device time per node, between its two events */
    const bool timed = c->prof_ev && c->prof_nodes == g->n_nodes;
    for (int k = 0; k < g->n_nodes && timed && !st; k++) {
      float ms = 0;
      if (c->timed[k] && cudaEventElapsedTime(&ms, c->prof_ev[2 * k], c->prof_ev[2 * k + 1]) == cudaSuccess)
        m->prof_ms[g->n_nodes + k] = ms;
    }
    mi_profile_commit(m, timed && !st);
  }
  for (int i = 0; i < g->n_outputs && !st; i++) {
    int v = g->outputs[i];
    const mi_value *val = &g->values[v];
    if (val->dynamic) st = mi_tensor_create(val->t.dtype, val->t.ndim, val->t.dims, &outputs[i]);
    if (st) break;
    size_t bytes = mi_tensor_nbytes(&val->t);
    if (!bytes) continue;
    if (val->is_const || val->folded || (tail && !val->is_input && on_host(g, val))) {
      memcpy(outputs[i]->data, val->t.data, bytes);
    } else if (val->is_input) {
      for (int j = 0; j < g->n_inputs; j++)
        if (g->inputs[j] == v) memcpy(outputs[i]->data, inputs[j]->data, bytes);
    } else if (i < 64 && out_off[i] != (size_t)-1) {
      memcpy(outputs[i]->data, (char *)c->pinned + out_off[i], bytes);
    } else {
      st = mi_error(MI_ERR_INTERNAL, "'%s': output '%s' has no device buffer", g->name, val->name);
    }
  }
  if (tail) mi_graph_release_eager(g);
  if (st) {
    for (int i = 0; i < g->n_outputs; i++) {
      mi_tensor_free(outputs[i]);
      outputs[i] = NULL;
    }
  }
  return st;
}

/* Operator types of the graph that run on the CPU under this backend (no
 * CUDA kernel, or in the eager tail), comma-separated into buf. */
extern "C" void mi_cuda_backend_host_ops(const mi_model *m, char *buf, size_t size) {
  const mi_graph *g = &m->g;
  size_t off = 0;
  if (size) buf[0] = 0;
  /* Before a plan exists (input shapes not fixed at load) folded nodes and
   * the tail are not known yet: every live node without a kernel counts. */
  const bool planned = m->plan.valid;
  for (int k = 0; k < g->n_nodes; k++) {
    const mi_node *n = &g->nodes[k];
    if (n->dead || (planned && node_skipped(g, n)) || (mi_cuda_op_find(n->op_type) && !n->tail)) continue;
    bool seen = false;
    for (int j = 0; j < k && !seen; j++) {
      const mi_node *p = &g->nodes[j];
      seen = !p->dead && !(planned && node_skipped(g, p)) && (!mi_cuda_op_find(p->op_type) || p->tail) &&
             !strcmp(p->op_type, n->op_type);
    }
    if (!seen && off + strlen(n->op_type) + 3 < size)
      off += (size_t)snprintf(buf + off, size - off, "%s%s", off ? ", " : "", n->op_type);
  }
}
