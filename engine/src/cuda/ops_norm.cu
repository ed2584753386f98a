/* Normalisations and softmax on the GPU: BatchNormalization (inference),
 * InstanceNormalization, LayerNormalization, LpNormalization, Softmax,
 * LogSoftmax (float32).  Row statistics accumulate in double, split over
 * several blocks per row so that few long rows (InstanceNorm of a 3D volume)
 * still fill the GPU. */
#include <math.h>
#include <string.h>

#include "cuda_common.h"

#define RED_THREADS 256

__device__ __forceinline__ double block_sum(double v, double *sh) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  __syncthreads();
  if (lane == 0) sh[warp] = v;
  __syncthreads();
  double s = 0;
  if (threadIdx.x == 0)
    for (int w = 0; w < (int)(blockDim.x + 31) / 32; w++) s += sh[w];
  return s; /* valid in thread 0 */
}

/* Partial sums of rows: block (chunk, row) adds x[row*L + chunk range]. */
__global__ void k_row_partial(const float *x, int64_t L, int64_t chunk, double *part, int nchunks) {
  __shared__ double sh[32];
  int64_t row = blockIdx.y, c = blockIdx.x;
  int64_t b = c * chunk, e = b + chunk < L ? b + chunk : L;
  const float *p = x + row * L;
  double s = 0, q = 0;
  for (int64_t i = b + threadIdx.x; i < e; i += blockDim.x) {
    double v = p[i];
    s += v;
    q += v * v;
  }
  double ts = block_sum(s, sh);
  double tq = block_sum(q, sh);
  if (threadIdx.x == 0) {
    part[(row * nchunks + c) * 2] = ts;
    part[(row * nchunks + c) * 2 + 1] = tq;
  }
}

__global__ void k_row_finish(const double *part, int nchunks, int64_t rows, int64_t L, double eps, float *mean,
                             float *inv) {
  CU_LOOP(r, rows) {
    double s = 0, q = 0;
    for (int c = 0; c < nchunks; c++) {
      s += part[(r * nchunks + c) * 2];
      q += part[(r * nchunks + c) * 2 + 1];
    }
    double m = s / (double)L, var = q / (double)L - m * m;
    if (var < 0) var = 0;
    mean[r] = (float)m;
    inv[r] = (float)(1.0 / sqrt(var + eps));
  }
}

/* mean[row], inv[row] for rows of length L (workspace after 2*rows floats). */
static mi_status *row_stats(mi_cuda_ctx *cx, const mi_node *n, const float *x, int64_t rows, int64_t L, double eps,
                            float **mean, float **inv) {
  int64_t chunk = 1 << 16;
  int nchunks = (int)((L + chunk - 1) / chunk);
  if (nchunks < 1) nchunks = 1;
  if (rows > 65535) { /* grid.y limit: one chunk per row, rows in x */
    nchunks = 1;
    chunk = L > 0 ? L : 1;
  }
  size_t need = (size_t)rows * 2 * sizeof(float) + 16 + (size_t)rows * (size_t)nchunks * 2 * sizeof(double);
  mi_status *st = NULL;
  char *ws = (char *)mi_cuda_workspace(cx, n, need, &st);
  if (!ws) return st;
  *mean = (float *)ws;
  *inv = *mean + rows;
  double *part = (double *)(ws + (((size_t)rows * 2 * sizeof(float) + 15) & ~(size_t)15));
  if (rows > 65535) {
    for (int64_t r0 = 0; r0 < rows; r0 += 65535) {
      int64_t rn = rows - r0 < 65535 ? rows - r0 : 65535;
      k_row_partial<<<dim3(1, (unsigned)rn), RED_THREADS, 0, cx->stream>>>(x + r0 * L, L, chunk, part + r0 * 2, 1);
      CU_LAUNCHED(n);
    }
  } else {
    k_row_partial<<<dim3((unsigned)nchunks, (unsigned)rows), RED_THREADS, 0, cx->stream>>>(x, L, chunk, part, nchunks);
    CU_LAUNCHED(n);
  }
  k_row_finish<<<mi_cuda_grid(rows, 128), 128, 0, cx->stream>>>(part, nchunks, rows, L, eps, *mean, *inv);
  CU_LAUNCHED(n);
  return NULL;
}

/* y = (x - mean[row]) * inv[row] * scale + bias.  InstanceNorm: scale/bias
 * indexed by channel = row % C, then the fused residual and activation
 * (mi_node.fused_add, mi_node.act); LayerNorm: by the element's position in the
 * row through broadcast strides (sl). */
typedef struct ln_index {
  int nd;
  int64_t dims[MI_MAX_DIMS], ss[MI_MAX_DIMS], sb[MI_MAX_DIMS];
} ln_index;

__global__ void k_norm_apply_ch(const float *x, float *y, const float *mean, const float *inv, const float *sc,
                                const float *bi, int64_t total, int64_t L, int64_t C, const float *res,
                                mi_activation act) {
  CU_LOOP(i, total) {
    int64_t r = i / L, c = r % C;
    float v = (x[i] - mean[r]) * inv[r];
    v = v * (sc ? sc[c] : 1.f) + (bi ? bi[c] : 0.f);
    if (res) v += res[i];
    y[i] = mi_cuda_act(v, act.kind, act.alpha, act.beta);
  }
}

__global__ void k_norm_apply_ln(const float *x, float *y, const float *mean, const float *inv, const float *sc,
                                const float *bi, int64_t total, int64_t L, ln_index li) {
  CU_LOOP(i, total) {
    int64_t r = i / L, j = i - r * L, a = 0, b = 0, q = j;
    for (int d = li.nd - 1; d >= 0; d--) {
      int64_t c = q % li.dims[d];
      q /= li.dims[d];
      a += c * li.ss[d];
      b += c * li.sb[d];
    }
    float v = (x[i] - mean[r]) * inv[r];
    y[i] = v * (sc ? sc[a] : 1.f) + (bi ? bi[b] : 0.f);
  }
}

static mi_status *instnorm_run(mi_node *n, mi_cuda_ctx *cx, mi_tensor *const *in, const mi_tensor *const *hin,
                               mi_tensor **out) {
  const mi_tensor *x = in[0], *res = in[n->n_in];
  if (x->dtype != MI_FLOAT) return mi_node_error(n, MI_ERR_UNSUPPORTED, "CUDA InstanceNormalization supports float32 only");
  int64_t C = x->dims[1], rows = x->dims[0] * C, L = mi_numel(x->ndim - 2, x->dims + 2);
  if (!rows || !L) return NULL;
  float *mean, *inv;
  MI_TRY(row_stats(cx, n, (const float *)x->data, rows, L, mi_attr_float(n, "epsilon", 1e-5f), &mean, &inv));
  int64_t total = rows * L;
  k_norm_apply_ch<<<mi_cuda_grid(total, 256), 256, 0, cx->stream>>>((const float *)x->data, (float *)out[0]->data,
                                                                    mean, inv, (const float *)in[1]->data,
                                                                    (const float *)in[2]->data, total, L, C,
                                                                    res ? (const float *)res->data : NULL, n->act);
  CU_LAUNCHED(n);
  return NULL;
}

__global__ void k_write_stats(const float *mean, const float *inv, float *om, float *oi, int64_t rows) {
  CU_LOOP(r, rows) {
    if (om) om[r] = mean[r];
    if (oi) oi[r] = inv[r];
  }
}

static mi_status *layernorm_run(mi_node *n, mi_cuda_ctx *cx, mi_tensor *const *in, const mi_tensor *const *hin,
                                mi_tensor **out) {
  const mi_tensor *x = in[0];
  if (x->dtype != MI_FLOAT) return mi_node_error(n, MI_ERR_UNSUPPORTED, "CUDA LayerNormalization supports float32 only");
  int64_t ax = mi_attr_int(n, "axis", -1);
  if (ax < 0) ax += x->ndim;
  if (ax < 0 || ax >= x->ndim) return mi_node_error(n, MI_ERR_SHAPE, "axis out of range");
  int64_t rows = mi_numel((int)ax, x->dims), L = mi_numel(x->ndim - (int)ax, x->dims + ax);
  if (!rows || !L) return NULL;
  float *mean, *inv;
  MI_TRY(row_stats(cx, n, (const float *)x->data, rows, L, mi_attr_float(n, "epsilon", 1e-5f), &mean, &inv));
  ln_index li;
  li.nd = x->ndim - (int)ax;
  memcpy(li.dims, x->dims + ax, sizeof(int64_t) * (size_t)li.nd);
  mi_cuda_bcast_strides(in[1], li.nd, li.dims, li.ss);
  const mi_tensor *b = n->n_in > 2 ? in[2] : NULL;
  if (b) mi_cuda_bcast_strides(b, li.nd, li.dims, li.sb);
  int64_t total = rows * L;
  k_norm_apply_ln<<<mi_cuda_grid(total, 256), 256, 0, cx->stream>>>((const float *)x->data, (float *)out[0]->data,
                                                                    mean, inv, (const float *)in[1]->data,
                                                                    b ? (const float *)b->data : NULL, total, L, li);
  CU_LAUNCHED(n);
  float *om = n->n_out > 1 && out[1] ? (float *)out[1]->data : NULL;
  float *oi = n->n_out > 2 && out[2] ? (float *)out[2]->data : NULL;
  if (om || oi) {
    k_write_stats<<<mi_cuda_grid(rows, 128), 128, 0, cx->stream>>>(mean, inv, om, oi, rows);
    CU_LAUNCHED(n);
  }
  return NULL;
}

template <typename T>
__global__ void k_batchnorm(const T *x, T *y, const T *sc, const T *bi, const T *mu, const T *var, double eps,
                            int64_t total, int64_t C, int64_t inner, const T *res, mi_activation act) {
  CU_LOOP(i, total) {
    int64_t c = (i / inner) % C;
    double s = (double)sc[c] / sqrt((double)var[c] + eps);
    T v = (T)(((double)x[i] - (double)mu[c]) * s + (double)bi[c]);
    if (res) v += res[i];
    y[i] = mi_cuda_act(v, act.kind, act.alpha, act.beta);
  }
}

static mi_status *batchnorm_run(mi_node *n, mi_cuda_ctx *cx, mi_tensor *const *in, const mi_tensor *const *hin,
                                mi_tensor **out) {
  const mi_tensor *x = in[0], *res = in[n->n_in];
  bool spatial = n->opset >= 9 || mi_attr_int(n, "spatial", 1) != 0;
  int64_t C = x->ndim > 1 ? x->dims[1] : 1;
  int64_t inner = x->ndim > 2 ? mi_numel(x->ndim - 2, x->dims + 2) : 1;
  if (!spatial) { /* statistics per (C, D1..Dn) */
    C = C * inner;
    inner = 1;
  }
  int64_t total = mi_numel(x->ndim, x->dims);
  if (!total) return NULL;
  double eps = mi_attr_float(n, "epsilon", 1e-5f);
  unsigned g = mi_cuda_grid(total, 256);
  if (x->dtype == MI_FLOAT)
    k_batchnorm<float><<<g, 256, 0, cx->stream>>>((const float *)x->data, (float *)out[0]->data, (const float *)in[1]->data,
                                                 (const float *)in[2]->data, (const float *)in[3]->data,
                                                 (const float *)in[4]->data, eps, total, C, inner,
                                                 res ? (const float *)res->data : NULL, n->act);
  else if (x->dtype == MI_DOUBLE && res)
    return mi_node_error(n, MI_ERR_UNSUPPORTED, "a fused residual on a float64 BatchNormalization");
  else if (x->dtype == MI_DOUBLE)
    k_batchnorm<double><<<g, 256, 0, cx->stream>>>((const double *)x->data, (double *)out[0]->data, (const double *)in[1]->data,
                                                  (const double *)in[2]->data, (const double *)in[3]->data,
                                                  (const double *)in[4]->data, eps, total, C, inner,
                                                  (const double *)NULL, n->act);
  else
    return mi_node_error(n, MI_ERR_UNSUPPORTED, "element type %s is not supported on CUDA", mi_dtype_name(x->dtype));
  CU_LAUNCHED(n);
  return NULL;
}

/* ---- along one axis: [outer, L, inner] ---------------------------------------- */
/* Softmax (mode 0), LogSoftmax (1), Lp norm p=1 (2), p=2 (3); thread per
 * (outer, inner) column. */
__global__ void k_axis_col(const float *x, float *y, int64_t outer, int64_t L, int64_t inner, int mode) {
  int64_t cols = outer * inner;
  CU_LOOP(c, cols) {
    int64_t o = c / inner, in = c - o * inner;
    const float *p = x + o * L * inner + in;
    float *q = y + o * L * inner + in;
    if (mode == 4) { /* Hardmax: 1 at the first maximum */
      int64_t best = 0;
      for (int64_t j = 1; j < L; j++)
        if (p[j * inner] > p[best * inner]) best = j;
      for (int64_t j = 0; j < L; j++) q[j * inner] = j == best ? 1.f : 0.f;
    } else if (mode <= 1) {
      float m = -INFINITY;
      for (int64_t j = 0; j < L; j++) m = fmaxf(m, p[j * inner]);
      double s = 0;
      for (int64_t j = 0; j < L; j++) s += exp((double)(p[j * inner] - m));
      if (mode == 0) {
        for (int64_t j = 0; j < L; j++) q[j * inner] = (float)(exp((double)(p[j * inner] - m)) / s);
      } else {
        float ls = (float)log(s);
        for (int64_t j = 0; j < L; j++) q[j * inner] = p[j * inner] - m - ls;
      }
    } else {
      double s = 0;
      for (int64_t j = 0; j < L; j++) s += mode == 2 ? fabs((double)p[j * inner]) : (double)p[j * inner] * p[j * inner];
      double nrm = mode == 2 ? s : sqrt(s);
      for (int64_t j = 0; j < L; j++) q[j * inner] = nrm > 0 ? (float)(p[j * inner] / nrm) : 0.f;
    }
  }
}

/* inner == 1: block per row. */
__global__ void k_softmax_row(const float *x, float *y, int64_t L, int log_mode) {
  __shared__ float shm[32];
  __shared__ double shs[32];
  const float *p = x + (int64_t)blockIdx.x * L;
  float *q = y + (int64_t)blockIdx.x * L;
  float m = -INFINITY;
  for (int64_t j = threadIdx.x; j < L; j += blockDim.x) m = fmaxf(m, p[j]);
  for (int o = 16; o > 0; o >>= 1) m = fmaxf(m, __shfl_down_sync(0xffffffffu, m, o));
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = (blockDim.x + 31) / 32;
  if (lane == 0) shm[warp] = m;
  __syncthreads();
  if (threadIdx.x == 0) {
    float t = -INFINITY;
    for (int w = 0; w < nw; w++) t = fmaxf(t, shm[w]);
    shm[0] = t;
  }
  __syncthreads();
  m = shm[0];
  double s = 0;
  for (int64_t j = threadIdx.x; j < L; j += blockDim.x) s += exp((double)(p[j] - m));
  for (int o = 16; o > 0; o >>= 1) s += __shfl_down_sync(0xffffffffu, s, o);
  if (lane == 0) shs[warp] = s;
  __syncthreads();
  if (threadIdx.x == 0) {
    double t = 0;
    for (int w = 0; w < nw; w++) t += shs[w];
    shs[0] = t;
  }
  __syncthreads();
  s = shs[0];
  if (log_mode) {
    float ls = (float)log(s);
    for (int64_t j = threadIdx.x; j < L; j += blockDim.x) q[j] = p[j] - m - ls;
  } else {
    for (int64_t j = threadIdx.x; j < L; j += blockDim.x) q[j] = (float)(exp((double)(p[j] - m)) / s);
  }
}

static mi_status *axis_split(const mi_node *n, const mi_tensor *x, int64_t ax, bool coerce, int64_t *outer,
                             int64_t *L, int64_t *inner) {
  if (ax < 0) ax += x->ndim;
  if (ax < 0 || (ax >= x->ndim && !(coerce && ax == x->ndim)) || (x->ndim == 0))
    return mi_node_error(n, MI_ERR_INVALID_MODEL, "axis outside the tensor's rank %d", x->ndim);
  *outer = mi_numel((int)ax, x->dims);
  if (coerce) {
    *L = mi_numel(x->ndim - (int)ax, x->dims + ax);
    *inner = 1;
  } else {
    *L = x->dims[ax];
    *inner = mi_numel(x->ndim - (int)ax - 1, x->dims + ax + 1);
  }
  return NULL;
}

static mi_status *softmax_run(mi_node *n, mi_cuda_ctx *cx, mi_tensor *const *in, const mi_tensor *const *hin,
                              mi_tensor **out) {
  const mi_tensor *x = in[0];
  if (x->dtype != MI_FLOAT) return mi_node_error(n, MI_ERR_UNSUPPORTED, "CUDA %s supports float32 only", n->op_type);
  int log_mode = !strcmp(n->op_type, "LogSoftmax"), hard = !strcmp(n->op_type, "Hardmax");
  int64_t outer, L, inner;
  MI_TRY(axis_split(n, x, mi_attr_int(n, "axis", n->opset >= 13 ? -1 : 1), n->opset < 13, &outer, &L, &inner));
  if (!outer || !L || !inner) return NULL;
  if (!hard && inner == 1 && outer <= 2147483647LL && L >= 64) {
    k_softmax_row<<<(unsigned)outer, 256, 0, cx->stream>>>((const float *)x->data, (float *)out[0]->data, L, log_mode);
  } else {
    k_axis_col<<<mi_cuda_grid(outer * inner, 128), 128, 0, cx->stream>>>((const float *)x->data, (float *)out[0]->data,
                                                                        outer, L, inner, hard ? 4 : log_mode);
  }
  CU_LAUNCHED(n);
  return NULL;
}

static mi_status *lpnorm_run(mi_node *n, mi_cuda_ctx *cx, mi_tensor *const *in, const mi_tensor *const *hin,
                             mi_tensor **out) {
  const mi_tensor *x = in[0];
  if (x->dtype != MI_FLOAT) return mi_node_error(n, MI_ERR_UNSUPPORTED, "CUDA LpNormalization supports float32 only");
  int64_t p = mi_attr_int(n, "p", 2);
  if (p != 1 && p != 2) return mi_node_error(n, MI_ERR_UNSUPPORTED, "p must be 1 or 2");
  int64_t outer, L, inner;
  MI_TRY(axis_split(n, x, mi_attr_int(n, "axis", -1), false, &outer, &L, &inner));
  if (!outer || !L || !inner) return NULL;
  k_axis_col<<<mi_cuda_grid(outer * inner, 128), 128, 0, cx->stream>>>((const float *)x->data, (float *)out[0]->data,
                                                                      outer, L, inner, p == 1 ? 2 : 3);
  CU_LAUNCHED(n);
  return NULL;
}

extern const mi_cuda_op mi_cuda_ops_norm[] = {
    {"BatchNormalization", batchnorm_run},
    {"InstanceNormalization", instnorm_run},
    {"LayerNormalization", layernorm_run},
    {"LpNormalization", lpnorm_run},
    {"Softmax", softmax_run},
    {"LogSoftmax", softmax_run},
    {"Hardmax", softmax_run},
    {NULL, NULL},
};
