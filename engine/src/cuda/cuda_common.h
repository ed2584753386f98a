/* CUDA backend internals: the per-model context, the CUDA operator table and
 * helpers shared by the kernel files (compiled by nvcc as CUDA C++). */
#ifndef MEDINFER_CUDA_COMMON_H
#define MEDINFER_CUDA_COMMON_H

#include <cublas_v2.h>
#include <cuda_runtime.h>

extern "C" {
#include "../model.h"
}

/* Per-model device context: one stream, one cuBLAS handle, a workspace. */
typedef struct mi_cuda_ctx {
  int device;
  cudaStream_t stream;
  cublasHandle_t blas;
  bool fast_math;
  void *ws;        /* growable scratch (im2col columns, ...) */
  size_t ws_bytes;
  int sm_count;
} mi_cuda_ctx;

/* A CUDA kernel for one ONNX operator.  in[i]/out[i] are views whose data
 * points to device memory (in[i] NULL for an omitted optional input, in[n_in]
 * the fused residual for MI_OP_FUSE_ACT ops).  hin[i] is the host value when
 * the input is known while planning (constant or folded), else NULL: kernels
 * read small parameter inputs (axes, pads, scales) from there. */
typedef struct mi_cuda_op {
  const char *op_type;
  mi_status *(*run)(mi_node *n, mi_cuda_ctx *cx, mi_tensor *const *in, const mi_tensor *const *hin,
                    mi_tensor **out);
} mi_cuda_op;

const mi_cuda_op *mi_cuda_op_find(const char *op_type);

extern const mi_cuda_op mi_cuda_ops_elementwise[];
extern const mi_cuda_op mi_cuda_ops_conv[];
extern const mi_cuda_op mi_cuda_ops_pool[];
extern const mi_cuda_op mi_cuda_ops_norm[];
extern const mi_cuda_op mi_cuda_ops_gemm[];
extern const mi_cuda_op mi_cuda_ops_shape[];
extern const mi_cuda_op mi_cuda_ops_reduce[];
extern const mi_cuda_op mi_cuda_ops_resize[];

/* Scratch device memory valid until the next call (grows; synchronises the
 * stream before freeing the old block).  NULL with *st set on failure. */
void *mi_cuda_workspace(mi_cuda_ctx *cx, const mi_node *n, size_t bytes, mi_status **st);

/* Error for a failed CUDA runtime / cuBLAS call, naming the node. */
mi_status *mi_cuda_err(const mi_node *n, cudaError_t e, const char *what);
mi_status *mi_cublas_err(const mi_node *n, cublasStatus_t e, const char *what);

#define CU_TRY(n, call)                                       \
  do {                                                        \
    cudaError_t cu_e_ = (call);                               \
    if (cu_e_ != cudaSuccess) return mi_cuda_err(n, cu_e_, #call); \
  } while (0)
#define CUBLAS_TRY(n, call)                                   \
  do {                                                        \
    cublasStatus_t cb_e_ = (call);                            \
    if (cb_e_ != CUBLAS_STATUS_SUCCESS) return mi_cublas_err(n, cb_e_, #call); \
  } while (0)
/* After a kernel launch: report a launch failure naming the node. */
#define CU_LAUNCHED(n) CU_TRY(n, cudaGetLastError())

/* Grid size for a grid-stride loop over `total` items. */
static inline unsigned mi_cuda_grid(int64_t total, int block) {
  int64_t g = (total + block - 1) / block;
  if (g < 1) g = 1;
  if (g > 65535LL * 32) g = 65535LL * 32;
  return (unsigned)g;
}

#define CU_LOOP(i, total) \
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < (total); i += (int64_t)gridDim.x * blockDim.x)

/* Shapes passed to kernels by value. */
typedef struct mi_cuda_shape {
  int ndim;
  int64_t dims[MI_MAX_DIMS];
  int64_t strides[MI_MAX_DIMS]; /* element strides of the source for each output dim */
} mi_cuda_shape;

/* Strides (elements) of tensor `t` broadcast to an output of rank nd/dims:
 * 0 along broadcast dims. */
void mi_cuda_bcast_strides(const mi_tensor *t, int nd, const int64_t *dims, int64_t *strides);

/* A fused activation (mi_node.act) of one element. */
template <typename T>
static __device__ __forceinline__ T mi_cuda_act(T v, int kind, float a, float b) {
  switch (kind) {
    case MI_ACT_RELU: return v > (T)0 ? v : (T)0;
    case MI_ACT_LEAKY_RELU: return v >= (T)0 ? v : v * (T)a;
    case MI_ACT_CLIP: v = v < (T)a ? (T)a : v; return v > (T)b ? (T)b : v; /* min > max gives max, as Clip */
    case MI_ACT_SIGMOID: return (T)1 / ((T)1 + exp(-v));
    case MI_ACT_TANH: return tanh(v);
    default: return v;
  }
}

/* Convolution geometry normalised to 3 spatial dims (z, y, x), as in the CPU
 * kernel (ops/conv.c): leading dims of 1 for 1D and 2D. */
typedef struct mi_cuda_geom {
  int64_t in[3], k[3], s[3], d[3], pb[3], out[3];
  int64_t in_sz, out_sz, k_sz;
} mi_cuda_geom;

/* Implicit-GEMM convolution, group 1 (conv_igemm.cu): y[N][M][out] from
 * x[N][C][in] and W[M][C k_sz], nothing else (bias and the rest are the
 * caller's epilogue).  Only where mi_cuda_conv_igemm_fits (32-bit offsets
 * within an image). */
bool mi_cuda_conv_igemm_fits(const mi_cuda_geom *g, int64_t N, int64_t C, int64_t M);
int64_t mi_cuda_conv_igemm_blocks(const mi_cuda_geom *g, int64_t N, int64_t M); /* thread blocks of a call */
mi_status *mi_cuda_conv_igemm(mi_cuda_ctx *cx, const mi_node *n, const mi_cuda_geom *g, const float *x,
                              const float *w, float *y, int64_t N, int64_t C, int64_t M);

/* Fused epilogue: y = act(y + bias[c] + res), over [outer, C, inner].
 * bias and res may be NULL. */
mi_status *mi_cuda_epilogue(mi_cuda_ctx *cx, const mi_node *n, float *y, const float *bias,
                            const float *res, int64_t outer, int64_t C, int64_t inner);

/* Copy `numel` elements of `esize` bytes: out[i] = in[map(i)] where the
 * output is shaped sh.dims and sh.strides are the source's strides (0 for
 * broadcast).  `in_off` is an element offset into in.  Used for Transpose,
 * Expand, Slice, Concat, Split, ... */
mi_status *mi_cuda_strided_copy(mi_cuda_ctx *cx, const mi_node *n, const void *in, int64_t in_off,
                                void *out, int64_t out_off, const int64_t *out_full_strides,
                                const mi_cuda_shape *sh, size_t esize);

/* cuBLAS row-major GEMM: C[M,N] = alpha*op(A)*op(B) + beta*C, batched with
 * strides (batch 1 for a plain GEMM). */
mi_status *mi_cuda_sgemm(mi_cuda_ctx *cx, const mi_node *n, bool ta, bool tb, int64_t M, int64_t N,
                         int64_t K, float alpha, const float *A, int64_t lda, int64_t sA,
                         const float *B, int64_t ldb, int64_t sB, float beta, float *C, int64_t ldc,
                         int64_t sC, int64_t batch);

/* Contiguous row-major strides. */
static inline void mi_cuda_contig_strides(int nd, const int64_t *dims, int64_t *st) {
  int64_t s = 1;
  for (int d = nd - 1; d >= 0; d--) {
    st[d] = s;
    s *= dims[d];
  }
}

#endif
