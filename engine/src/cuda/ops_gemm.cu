/* Gemm and MatMul on cuBLAS (FP32; TF32 tensor cores only in fast-math
 * mode).  MatMul broadcasts batch dims numpy-style: uniform batch strides go
 * through one strided-batched call, anything else one call per batch. */
#include <string.h>

#include "cuda_common.h"

static mi_status *gemm_run(mi_node *n, mi_cuda_ctx *cx, mi_tensor *const *in, const mi_tensor *const *hin,
                           mi_tensor **out) {
  const mi_tensor *a = in[0], *b = in[1], *c = n->n_in > 2 ? in[2] : NULL, *res = in[n->n_in];
  mi_tensor *y = out[0];
  if (a->dtype != MI_FLOAT || b->dtype != MI_FLOAT)
    return mi_node_error(n, MI_ERR_UNSUPPORTED, "CUDA Gemm supports float32 only");
  bool ta = mi_attr_int(n, "transA", 0) != 0, tb = mi_attr_int(n, "transB", 0) != 0;
  float alpha = mi_attr_float(n, "alpha", 1.f), beta = mi_attr_float(n, "beta", 1.f);
  int64_t M = y->dims[0], N = y->dims[1], K = ta ? a->dims[0] : a->dims[1];
  float *Y = (float *)y->data;
  float bet = 0.f;
  if (c && beta != 0.f && M * N > 0) {
    if (c->dtype != MI_FLOAT) return mi_node_error(n, MI_ERR_UNSUPPORTED, "C must be float32");
    mi_cuda_shape sh;
    sh.ndim = 2;
    sh.dims[0] = M;
    sh.dims[1] = N;
    mi_cuda_bcast_strides(c, 2, sh.dims, sh.strides);
    MI_TRY(mi_cuda_strided_copy(cx, n, c->data, 0, Y, 0, NULL, &sh, sizeof(float)));
    bet = beta;
  }
  MI_TRY(mi_cuda_sgemm(cx, n, ta, tb, M, N, K, alpha, (const float *)a->data, a->dims[1], 0,
                       (const float *)b->data, b->dims[1], 0, bet, Y, N, 0, 1));
  if (K == 0 && bet == 0.f && M * N > 0) CU_TRY(n, cudaMemsetAsync(Y, 0, sizeof(float) * (size_t)(M * N), cx->stream));
  return mi_cuda_epilogue(cx, n, Y, NULL, res ? (const float *)res->data : NULL, 1, 1, M * N);
}

static mi_status *matmul_run(mi_node *n, mi_cuda_ctx *cx, mi_tensor *const *in, const mi_tensor *const *hin,
                             mi_tensor **out) {
  const mi_tensor *a = in[0], *b = in[1], *res = in[n->n_in];
  mi_tensor *y = out[0];
  if (a->dtype != MI_FLOAT || b->dtype != MI_FLOAT)
    return mi_node_error(n, MI_ERR_UNSUPPORTED, "CUDA MatMul supports float32 only");
  if (a->ndim < 1 || b->ndim < 1) return mi_node_error(n, MI_ERR_SHAPE, "MatMul needs rank >= 1");
  int64_t M = a->ndim >= 2 ? a->dims[a->ndim - 2] : 1, K = a->dims[a->ndim - 1];
  int64_t N = b->ndim >= 2 ? b->dims[b->ndim - 1] : 1;
  /* Batch dims of the result and each operand's batch dims. */
  int na = a->ndim > 2 ? a->ndim - 2 : 0, nb = b->ndim > 2 ? b->ndim - 2 : 0;
  int nd = na > nb ? na : nb;
  int64_t bd[MI_MAX_DIMS], sa[MI_MAX_DIMS], sb[MI_MAX_DIMS];
  int64_t nbatch = 1;
  for (int d = 0; d < nd; d++) {
    int da = d - (nd - na), db = d - (nd - nb);
    int64_t ea = da >= 0 ? a->dims[da] : 1, eb = db >= 0 ? b->dims[db] : 1;
    bd[d] = ea > eb ? ea : eb;
    nbatch *= bd[d];
  }
  /* Element strides of each operand's batch index. */
  {
    int64_t s = M * K;
    for (int d = nd - 1; d >= 0; d--) {
      int da = d - (nd - na);
      int64_t e = da >= 0 ? a->dims[da] : 1;
      sa[d] = e == 1 ? 0 : s;
      s *= e;
    }
    s = K * N;
    for (int d = nd - 1; d >= 0; d--) {
      int db = d - (nd - nb);
      int64_t e = db >= 0 ? b->dims[db] : 1;
      sb[d] = e == 1 ? 0 : s;
      s *= e;
    }
  }
  const float *A = (const float *)a->data, *B = (const float *)b->data;
  float *Y = (float *)y->data;
  if (nbatch * M * N == 0) return NULL;
  if (K == 0) {
    CU_TRY(n, cudaMemsetAsync(Y, 0, sizeof(float) * (size_t)(nbatch * M * N), cx->stream));
  } else {
    /* Uniform strides: every batch offset is i * stride. */
    bool ua = true, ub = true;
    int64_t stA = 0, stB = 0;
    for (int d = 0; d < nd; d++) {
      if (sa[d]) stA = stA ? stA : sa[d];
      if (sb[d]) stB = stB ? stB : sb[d];
    }
    {
      int64_t s = 1;
      bool all0a = true, all0b = true, fulla = true, fullb = true;
      for (int d = nd - 1; d >= 0; d--) {
        if (sa[d]) all0a = false;
        if (sb[d]) all0b = false;
        if (bd[d] > 1 && sa[d] != s * M * K) fulla = false;
        if (bd[d] > 1 && sb[d] != s * K * N) fullb = false;
        s *= bd[d];
      }
      ua = all0a || fulla;
      ub = all0b || fullb;
      stA = all0a ? 0 : M * K;
      stB = all0b ? 0 : K * N;
    }
    if (ua && ub) {
      MI_TRY(mi_cuda_sgemm(cx, n, false, false, M, N, K, 1.f, A, K, stA, B, N, stB, 0.f, Y, N, M * N, nbatch));
    } else {
      for (int64_t i = 0; i < nbatch; i++) {
        int64_t r = i, oa = 0, ob = 0;
        for (int d = nd - 1; d >= 0; d--) {
          int64_t c = r % bd[d];
          r /= bd[d];
          oa += c * sa[d];
          ob += c * sb[d];
        }
        MI_TRY(mi_cuda_sgemm(cx, n, false, false, M, N, K, 1.f, A + oa, K, 0, B + ob, N, 0, 0.f, Y + i * M * N, N, 0, 1));
      }
    }
  }
  return mi_cuda_epilogue(cx, n, Y, NULL, res ? (const float *)res->data : NULL, 1, 1, nbatch * M * N);
}

extern const mi_cuda_op mi_cuda_ops_gemm[] = {
    {"Gemm", gemm_run},
    {"MatMul", matmul_run},
    {NULL, NULL},
};
