/* Gemm and MatMul.  float32 goes through mi_sgemm (OpenBLAS, which threads
 * itself); float64 and integer types use plain row-parallel loops. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gemm/dconv.h"
#include "gemm/gemm.h"
#include "ops.h"
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#endif

/* ---- shared helpers ------------------------------------------------------ */

static bool gemm_dtype_ok(mi_dtype dt) {
  return dt == MI_FLOAT || dt == MI_DOUBLE || dt == MI_INT32 || dt == MI_INT64 ||
         dt == MI_UINT32 || dt == MI_UINT64;
}

/* Strides (in elements) of `t` viewed with numpy broadcasting against an
 * output of rank `nd` and dims `od`: broadcast dims get stride 0. */
static void broadcast_strides(const mi_tensor *t, int nd, const int64_t *od, int64_t *st) {
  int64_t s = 1;
  for (int i = nd - 1; i >= 0; i--) {
    int ti = i - (nd - t->ndim);
    if (ti < 0) {
      st[i] = 0;
      continue;
    }
    st[i] = t->dims[ti] == 1 && od[i] != 1 ? 0 : s;
    s *= t->dims[ti];
  }
}

/* Check `t` broadcasts unidirectionally to (nd, od). */
static bool broadcasts_to(const mi_tensor *t, int nd, const int64_t *od) {
  if (t->ndim > nd) return false;
  for (int i = 0; i < t->ndim; i++) {
    int64_t d = t->dims[i], o = od[nd - t->ndim + i];
    if (d != 1 && d != o) return false;
  }
  return true;
}

/* out[i] += r[broadcast i] for a float32 output of rank nd. */
static void add_broadcast_f32(float *out, int nd, const int64_t *od, const mi_tensor *r) {
  int64_t n = mi_numel(nd, od);
  const float *rp = r->data;
  if (mi_numel(r->ndim, r->dims) == n) {
    for (int64_t i = 0; i < n; i++) out[i] += rp[i];
    return;
  }
  int64_t st[MI_MAX_DIMS], idx[MI_MAX_DIMS] = {0};
  broadcast_strides(r, nd, od, st);
  int64_t off = 0;
  /* Odometer over all but the last dim; the last dim is the inner loop. */
  int64_t last = nd ? od[nd - 1] : 1, ls = nd ? st[nd - 1] : 0;
  for (int64_t i = 0; i < n; i += last) {
    for (int64_t j = 0; j < last; j++) out[i + j] += rp[off + j * ls];
    for (int d = nd - 2; d >= 0; d--) {
      off += st[d];
      if (++idx[d] < od[d]) break;
      off -= st[d] * od[d];
      idx[d] = 0;
    }
  }
}

/* Fused epilogue (graph passes): residual add then activation, float32. */
static mi_status *apply_epilogue(mi_node *n, mi_tensor *const *in, mi_tensor *out) {
  const mi_tensor *res = n->fused_add >= 0 ? in[n->n_in] : NULL;
  if (!res && n->act.kind == MI_ACT_NONE) return NULL;
  if (out->dtype != MI_FLOAT || (res && res->dtype != MI_FLOAT))
    return mi_node_error(n, MI_ERR_INTERNAL, "fused epilogue supports float32 only");
  if (res) {
    if (!broadcasts_to(res, out->ndim, out->dims))
      return mi_node_error(n, MI_ERR_SHAPE, "fused residual does not broadcast to the output");
    add_broadcast_f32(out->data, out->ndim, out->dims, res);
  }
  mi_activation_apply(&n->act, out->data, mi_numel(out->ndim, out->dims));
  return NULL;
}

/* Plain (non-BLAS) matrix product, rows [r0, r1): C[M,N] = A*B with element
 * strides so that transposed operands need no copy.  i-k-j order keeps the
 * inner loop contiguous over the C row (and B rows unless transposed).
 * Integers accumulate in their own type: wrap-around matches a wider
 * accumulator cast back. */
#define DEF_MM(NAME, T)                                                                      \
  static void NAME(const T *A, int64_t ars, int64_t acs, const T *B, int64_t brs,          \
                   int64_t bcs, T *C, int64_t r0, int64_t r1, int64_t N, int64_t K) {      \
    for (int64_t i = r0; i < r1; i++) {                                                    \
      T *c = C + i * N;                                                                    \
      for (int64_t j = 0; j < N; j++) c[j] = 0;                                            \
      for (int64_t k = 0; k < K; k++) {                                                    \
        T a = A[i * ars + k * acs];                                                        \
        const T *b = B + k * brs;                                                          \
        for (int64_t j = 0; j < N; j++) c[j] += a * b[j * bcs];                            \
      }                                                                                    \
    }                                                                                      \
  }
DEF_MM(mm_f64, double)
DEF_MM(mm_i32, int32_t)
DEF_MM(mm_i64, int64_t)
DEF_MM(mm_u32, uint32_t)
DEF_MM(mm_u64, uint64_t)

/* A batch of plain products, parallelised over rows. */
typedef struct mm_task {
  mi_dtype dt;
  const void *A, *B;
  void *C;
  int64_t ars, acs, brs, bcs, N, K;
} mm_task;

static void mm_rows(void *ctx, int64_t r0, int64_t r1) {
  const mm_task *t = ctx;
  switch (t->dt) {
    case MI_DOUBLE: mm_f64(t->A, t->ars, t->acs, t->B, t->brs, t->bcs, t->C, r0, r1, t->N, t->K); break;
    case MI_INT32: mm_i32(t->A, t->ars, t->acs, t->B, t->brs, t->bcs, t->C, r0, r1, t->N, t->K); break;
    case MI_INT64: mm_i64(t->A, t->ars, t->acs, t->B, t->brs, t->bcs, t->C, r0, r1, t->N, t->K); break;
    case MI_UINT32: mm_u32(t->A, t->ars, t->acs, t->B, t->brs, t->bcs, t->C, r0, r1, t->N, t->K); break;
    case MI_UINT64: mm_u64(t->A, t->ars, t->acs, t->B, t->brs, t->bcs, t->C, r0, r1, t->N, t->K); break;
    default: break;
  }
}

/* ---- Gemm ---------------------------------------------------------------- */

typedef struct gemm_attr {
  bool ta, tb;
  float alpha, beta;
  /* bf16 mode: the constant B (N x K, transB) held in bf16 (owned), made
   * from the graph's copy at wsrc (NULL once that is freed). */
  uint16_t *wbf;
  const float *wsrc;
  int64_t wN, wK;
} gemm_attr;

static void gemm_destroy(mi_node *n) {
  gemm_attr *a = n->priv;
  if (a) free(a->wbf);
  free(a);
  n->priv = NULL;
}

/* bf16 mode: a classifier's weights (VGG's first: 411 MB in FP32) are read
 * once per image, at memory speed; in bf16 they take half the time and
 * half the memory.  The graph's FP32 copy is freed when no other node reads
 * it (as a convolution's packed weights replace it). */
static void gemm_weights_bf16(mi_node *n, mi_graph *g, gemm_attr *a) {
  if (!g->bf16 || !a->tb || n->n_in < 2 || n->in[1] < 0) return;
  mi_value *wv = &g->values[n->in[1]];
  const mi_tensor *w = &wv->t;
  if (!wv->is_const || !w->data || w->dtype != MI_FLOAT || w->ndim != 2 || w->dims[0] < 1 || w->dims[1] < 1) return;
  const int64_t N = w->dims[0], K = w->dims[1];
  if (!(a->wbf = malloc((size_t)(N * K) * sizeof *a->wbf))) return; /* out of memory: FP32 */
  mi_bf16_from_f32(w->data, N * K, a->wbf);
  a->wsrc = w->data, a->wN = N, a->wK = K;
  if (mi_graph_free_packed_const(g, n, 1)) a->wsrc = NULL; /* gemm_run: a NULL weight input is the bf16 one */
}

static mi_status *gemm_init(mi_node *n, mi_graph *g) {
  gemm_attr *a = calloc(1, sizeof *a);
  if (!a) return mi_node_error(n, MI_ERR_NO_MEMORY, "out of memory");
  int64_t ta = mi_attr_int(n, "transA", 0), tb = mi_attr_int(n, "transB", 0);
  a->ta = ta != 0;
  a->tb = tb != 0;
  a->alpha = mi_attr_float(n, "alpha", 1.f);
  a->beta = mi_attr_float(n, "beta", 1.f);
  /* Opset <7 `broadcast`: 0 demands an exact C shape, which broadcasting
   * accepts too, so both values are handled by the broadcasting path. */
  n->priv = a;
  gemm_weights_bf16(n, g, a);
  return NULL;
}

static mi_status *gemm_infer(mi_node *n, mi_tensor *const *in, mi_tensor **out) {
  const gemm_attr *a = n->priv;
  if (n->n_in < 2 || !in[0] || !in[1])
    return mi_node_error(n, MI_ERR_INVALID_MODEL, "needs inputs A and B");
  const mi_tensor *A = in[0], *B = in[1], *C = n->n_in > 2 ? in[2] : NULL;
  if (!gemm_dtype_ok(A->dtype))
    return mi_node_error(n, MI_ERR_UNSUPPORTED, "element type %s not supported",
                         mi_dtype_name(A->dtype));
  if (B->dtype != A->dtype || (C && C->dtype != A->dtype))
    return mi_node_error(n, MI_ERR_INVALID_MODEL, "inputs have different element types");
  if (A->ndim != 2 || B->ndim != 2)
    return mi_node_error(n, MI_ERR_SHAPE, "A and B must be 2-D (got rank %d and %d)", A->ndim,
                         B->ndim);
  int64_t M = a->ta ? A->dims[1] : A->dims[0], K = a->ta ? A->dims[0] : A->dims[1];
  int64_t Kb = a->tb ? B->dims[1] : B->dims[0], N = a->tb ? B->dims[0] : B->dims[1];
  if (K != Kb)
    return mi_node_error(n, MI_ERR_SHAPE, "inner dimensions differ (%lld vs %lld)",
                         (long long)K, (long long)Kb);
  int64_t od[2] = {M, N};
  if (C && !broadcasts_to(C, 2, od)) {
    char b[64];
    return mi_node_error(n, MI_ERR_SHAPE, "C of shape %s does not broadcast to %lldx%lld",
                         mi_shape_str(C, b, sizeof b), (long long)M, (long long)N);
  }
  mi_tensor_set_shape(out[0], A->dtype, 2, od);
  return NULL;
}

/* Y = beta*C (broadcast) into out, in double then cast: used to seed the
 * accumulation (float32) or to finish it (other types). */
#define DEF_GEMM_FINISH(NAME, T)                                                             \
  static void NAME(T *Y, const T *P, const mi_tensor *C, int64_t M, int64_t N, double alpha, \
                   double beta) {                                                          \
    int64_t st[2] = {0, 0};                                                                \
    int64_t od[2] = {M, N};                                                                \
    const T *c = C ? (const T *)C->data : NULL;                                            \
    if (C) broadcast_strides(C, 2, od, st);                                                \
    for (int64_t i = 0; i < M; i++)                                                        \
      for (int64_t j = 0; j < N; j++) {                                                    \
        double v = alpha * (double)P[i * N + j];                                           \
        if (c && beta != 0.0) v += beta * (double)c[i * st[0] + j * st[1]];                \
        Y[i * N + j] = (T)v;                                                               \
      }                                                                                    \
  }
DEF_GEMM_FINISH(gfin_f64, double)
DEF_GEMM_FINISH(gfin_i32, int32_t)
DEF_GEMM_FINISH(gfin_i64, int64_t)
DEF_GEMM_FINISH(gfin_u32, uint32_t)
DEF_GEMM_FINISH(gfin_u64, uint64_t)

typedef struct gemv_task {
  const float *A, *B; /* A row i, element k at A[i*ars + k*acs]; B is N x K (ldb) */
  const uint16_t *Bh; /* or B in bf16 (ldb) */
  float *y;
  int64_t ars, acs, ldb, N, K;
  float alpha, beta;
  int64_t row;
} gemv_task;

#if defined(__x86_64__) && defined(__GNUC__)
/* 16 weights of a row from k: FP32, or bf16 widened (n < 16: the rest zero). */
__attribute__((target("avx512f,fma"), always_inline)) static inline __m512 wload(const bool BF16, const gemv_task *t,
                                                                                int64_t j, int64_t k, int n) {
  if (!BF16) {
    const float *b = t->B + j * t->ldb + k;
    return n == 16 ? _mm512_loadu_ps(b) : _mm512_maskz_loadu_ps((__mmask16)((1u << n) - 1u), b);
  }
  const uint16_t *b = t->Bh + j * t->ldb + k;
  uint16_t tail[16] = {0};
  if (n < 16) b = memcpy(tail, b, (size_t)n * sizeof *b);
  const __m512i u = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)b));
  return _mm512_castsi512_ps(_mm512_slli_epi32(u, 16));
}

/* Four weight rows at a time against one 16-float load of the input row:
 * the weights (hundreds of MB for VGG's first classifier layer) stream from
 * memory once, at memory speed rather than at a scalar loop's; in bf16 mode
 * they are bf16, widened on load. */
__attribute__((target("avx512f,fma"), always_inline)) static inline void gemv_body(const bool BF16, const gemv_task *t,
                                                                                  int64_t j0, int64_t j1) {
  const float *a = t->A + t->row * t->ars;
  float *y = t->y + t->row * t->N;
  const int64_t K = t->K, kv = K & ~(int64_t)15;
  const int rem = (int)(K & 15);
  const __mmask16 tail = (__mmask16)((1u << rem) - 1u);
  int64_t j = j0;
  for (; j + 4 <= j1; j += 4) {
    __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    for (int64_t k = 0; k < kv; k += 16) {
      const __m512 av = _mm512_loadu_ps(a + k);
      s0 = _mm512_fmadd_ps(av, wload(BF16, t, j, k, 16), s0);
      s1 = _mm512_fmadd_ps(av, wload(BF16, t, j + 1, k, 16), s1);
      s2 = _mm512_fmadd_ps(av, wload(BF16, t, j + 2, k, 16), s2);
      s3 = _mm512_fmadd_ps(av, wload(BF16, t, j + 3, k, 16), s3);
    }
    if (rem) {
      const __m512 av = _mm512_maskz_loadu_ps(tail, a + kv);
      s0 = _mm512_fmadd_ps(av, wload(BF16, t, j, kv, rem), s0);
      s1 = _mm512_fmadd_ps(av, wload(BF16, t, j + 1, kv, rem), s1);
      s2 = _mm512_fmadd_ps(av, wload(BF16, t, j + 2, kv, rem), s2);
      s3 = _mm512_fmadd_ps(av, wload(BF16, t, j + 3, kv, rem), s3);
    }
    const float d[4] = {_mm512_reduce_add_ps(s0), _mm512_reduce_add_ps(s1), _mm512_reduce_add_ps(s2),
                        _mm512_reduce_add_ps(s3)};
    for (int q = 0; q < 4; q++) y[j + q] = t->alpha * d[q] + (t->beta != 0.f ? t->beta * y[j + q] : 0.f);
  }
  for (; j < j1; j++) {
    __m512 s = _mm512_setzero_ps();
    for (int64_t k = 0; k < kv; k += 16) s = _mm512_fmadd_ps(_mm512_loadu_ps(a + k), wload(BF16, t, j, k, 16), s);
    if (rem) s = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(tail, a + kv), wload(BF16, t, j, kv, rem), s);
    y[j] = t->alpha * _mm512_reduce_add_ps(s) + (t->beta != 0.f ? t->beta * y[j] : 0.f);
  }
}

__attribute__((target("avx512f,fma"))) static void gemv_cols_avx512(const gemv_task *t, int64_t j0, int64_t j1) {
  gemv_body(false, t, j0, j1);
}
__attribute__((target("avx512f,fma"))) static void gemv_cols_bf16_avx512(const gemv_task *t, int64_t j0, int64_t j1) {
  gemv_body(true, t, j0, j1);
}

static void gemv_cols_bf16(void *ctx, int64_t j0, int64_t j1) { gemv_cols_bf16_avx512(ctx, j0, j1); }

/* The FP32 GEMV's four rows at a time on AVX2 (the portable loop's one row at
 * a time left VGG-16's first classifier layer, 411 MB of weights, at 17.7 ms
 * against 12.7 on AVX-512). */
__attribute__((target("avx2,fma"))) static float hsum_avx2(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
}
__attribute__((target("avx2,fma"))) static void gemv_cols_avx2(const gemv_task *t, int64_t j0, int64_t j1) {
  const float *a = t->A + t->row * t->ars;
  float *y = t->y + t->row * t->N;
  const int64_t K = t->K, kv = K & ~(int64_t)7;
  int64_t j = j0;
  for (; j < j1; j += 4) {
    const int nr = j1 - j < 4 ? (int)(j1 - j) : 4;
    const float *b[4];
    for (int q = 0; q < 4; q++) b[q] = t->B + (j + (q < nr ? q : 0)) * t->ldb; /* short groups repeat a row */
    __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    for (int64_t k = 0; k < kv; k += 8) {
      const __m256 av = _mm256_loadu_ps(a + k);
      s0 = _mm256_fmadd_ps(av, _mm256_loadu_ps(b[0] + k), s0);
      s1 = _mm256_fmadd_ps(av, _mm256_loadu_ps(b[1] + k), s1);
      s2 = _mm256_fmadd_ps(av, _mm256_loadu_ps(b[2] + k), s2);
      s3 = _mm256_fmadd_ps(av, _mm256_loadu_ps(b[3] + k), s3);
    }
    float d[4] = {hsum_avx2(s0), hsum_avx2(s1), hsum_avx2(s2), hsum_avx2(s3)};
    for (int64_t k = kv; k < K; k++)
      for (int q = 0; q < 4; q++) d[q] += a[k] * b[q][k];
    for (int q = 0; q < nr; q++) y[j + q] = t->alpha * d[q] + (t->beta != 0.f ? t->beta * y[j + q] : 0.f);
  }
}

/* B (N x K) back from bf16 into dst, for a product the GEMV does not do. */
static void widen_bf16(const uint16_t *src, int64_t n, float *dst) {
  for (int64_t i = 0; i < n; i++) {
    const uint32_t u = (uint32_t)src[i] << 16;
    memcpy(dst + i, &u, sizeof u);
  }
}
#endif

static void gemv_cols(void *ctx, int64_t j0, int64_t j1) {
  const gemv_task *t = ctx;
#if defined(__x86_64__) && defined(__GNUC__)
  if (t->acs == 1 && mi_isa_level() == MI_ISA_AVX512) {
    gemv_cols_avx512(t, j0, j1);
    return;
  }
  if (t->acs == 1 && mi_isa_level() == MI_ISA_AVX2) {
    gemv_cols_avx2(t, j0, j1);
    return;
  }
#endif
  const float *a = t->A + t->row * t->ars;
  float *y = t->y + t->row * t->N;
  for (int64_t j = j0; j < j1; j++) {
    const float *b = t->B + j * t->ldb;
    float s0 = 0.f, s1 = 0.f, s2 = 0.f, s3 = 0.f; /* independent sums vectorise */
    int64_t k = 0;
    if (t->acs == 1) {
      for (; k + 4 <= t->K; k += 4) {
        s0 += a[k] * b[k];
        s1 += a[k + 1] * b[k + 1];
        s2 += a[k + 2] * b[k + 2];
        s3 += a[k + 3] * b[k + 3];
      }
    }
    for (; k < t->K; k++) s0 += a[k * t->acs] * b[k];
    float dot = (s0 + s1) + (s2 + s3);
    y[j] = t->alpha * dot + (t->beta != 0.f ? t->beta * y[j] : 0.f);
  }
}

static mi_status *gemm_run(mi_node *n, mi_exec *ex, mi_tensor *const *in, mi_tensor **out) {
  const gemm_attr *a = n->priv;
  const mi_tensor *A = in[0], *B = in[1], *C = n->n_in > 2 ? in[2] : NULL;
  mi_tensor *Y = out[0];
  int64_t M = Y->dims[0], N = Y->dims[1];
  int64_t K = a->ta ? A->dims[0] : A->dims[1];
  int64_t lda = A->dims[1], ldb = B->dims[1];
  if (M == 0 || N == 0) return NULL;
  if (Y->dtype == MI_FLOAT) {
    float *y = Y->data;
    float beta = 0.f;
    if (C && a->beta != 0.f && mi_numel(C->ndim, C->dims) > 0) {
      /* Seed Y with C (broadcast) and let sgemm scale it by beta. */
      const float *c = C->data;
      int64_t od[2] = {M, N}, st[2] = {0, 0};
      broadcast_strides(C, 2, od, st);
      for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) y[i * N + j] = c[i * st[0] + j * st[1]];
      beta = a->beta;
    }
    const bool own = a->wbf && a->tb && B->data == a->wsrc && B->dims[0] == a->wN && B->dims[1] == a->wK;
#if defined(__x86_64__) && defined(__GNUC__)
    if (own && M <= 2 && !a->ta) { /* bf16 mode: the bf16 weights, as below */
      gemv_task t = {A->data, NULL, a->wbf, y, lda, 1, ldb, N, K, a->alpha, beta, 0};
      for (t.row = 0; t.row < M; t.row++) mi_parallel_for(ex, N, 16, gemv_cols_bf16, &t);
      return apply_epilogue(n, in, Y);
    }
    if (own) { /* any other product: B widened back for the call */
      float *bw = mi_exec_scratch(ex, (size_t)(N * K) * sizeof(float));
      if (!bw) return mi_node_error(n, MI_ERR_NO_MEMORY, "out of memory for the widened bf16 weights");
      widen_bf16(a->wbf, N * K, bw);
      mi_sgemm(a->ta, true, M, N, K, a->alpha, A->data, lda, bw, K, beta, y, N);
      mi_exec_scratch_release(ex, bw);
      return apply_epilogue(n, in, Y);
    }
#endif
    if (M <= 2 && a->tb) {
      /* A row times a big weight matrix (classifier heads at batch 1): the
       * weights are streamed once by dot products instead of being packed. */
      gemv_task t = {A->data, B->data, NULL, y, a->ta ? 1 : lda, a->ta ? lda : 1, ldb, N, K, a->alpha, beta, 0};
      for (t.row = 0; t.row < M; t.row++) mi_parallel_for(ex, N, 16, gemv_cols, &t);
    } else {
      mi_sgemm(a->ta, a->tb, M, N, K, a->alpha, A->data, lda, B->data, ldb, beta, y, N);
    }
    return apply_epilogue(n, in, Y);
  }
  /* Other types: plain product into a scratch, then alpha/beta/C. */
  size_t es = mi_dtype_size(Y->dtype);
  void *P = mi_exec_scratch(ex, (size_t)(M * N) * es);
  if (!P) return mi_node_error(n, MI_ERR_NO_MEMORY, "out of memory");
  mm_task t = {Y->dtype, A->data, B->data, P, a->ta ? 1 : lda, a->ta ? lda : 1,
               a->tb ? 1 : ldb, a->tb ? ldb : 1, N, K};
  mi_parallel_for(ex, M, 4, mm_rows, &t);
  switch (Y->dtype) {
    case MI_DOUBLE: gfin_f64(Y->data, P, C, M, N, a->alpha, a->beta); break;
    case MI_INT32: gfin_i32(Y->data, P, C, M, N, a->alpha, a->beta); break;
    case MI_INT64: gfin_i64(Y->data, P, C, M, N, a->alpha, a->beta); break;
    case MI_UINT32: gfin_u32(Y->data, P, C, M, N, a->alpha, a->beta); break;
    case MI_UINT64: gfin_u64(Y->data, P, C, M, N, a->alpha, a->beta); break;
    default: break;
  }
  mi_exec_scratch_release(ex, P);
  return apply_epilogue(n, in, Y);
}

/* ---- MatMul -------------------------------------------------------------- */

/* Batch geometry shared by infer and run. */
typedef struct mm_geom {
  int nb;                    /* broadcast batch rank */
  int64_t bd[MI_MAX_DIMS];   /* batch dims */
  int64_t sa[MI_MAX_DIMS];   /* A batch strides (elements, 0 = broadcast) */
  int64_t sb[MI_MAX_DIMS];
  int64_t M, K, N, batch;
  bool a1, b1;               /* 1-D operands */
} mm_geom;

static mi_status *mm_geometry(mi_node *n, const mi_tensor *A, const mi_tensor *B, mm_geom *g) {
  if (A->ndim < 1 || B->ndim < 1)
    return mi_node_error(n, MI_ERR_SHAPE, "operands must have rank >= 1");
  g->a1 = A->ndim == 1;
  g->b1 = B->ndim == 1;
  g->M = g->a1 ? 1 : A->dims[A->ndim - 2];
  g->K = A->dims[A->ndim - 1];
  int64_t Kb = g->b1 ? B->dims[0] : B->dims[B->ndim - 2];
  g->N = g->b1 ? 1 : B->dims[B->ndim - 1];
  if (g->K != Kb) {
    char b1[64], b2[64];
    return mi_node_error(n, MI_ERR_SHAPE, "shapes %s and %s: inner dimensions differ",
                         mi_shape_str(A, b1, sizeof b1), mi_shape_str(B, b2, sizeof b2));
  }
  int na = g->a1 ? 0 : A->ndim - 2, nbb = g->b1 ? 0 : B->ndim - 2;
  mi_status *st = mi_broadcast_shape(na, A->dims, nbb, B->dims, &g->nb, g->bd);
  if (st) {
    mi_status_free(st);
    char b1[64], b2[64];
    return mi_node_error(n, MI_ERR_SHAPE, "batch dimensions of %s and %s do not broadcast",
                         mi_shape_str(A, b1, sizeof b1), mi_shape_str(B, b2, sizeof b2));
  }
  int64_t s = g->M * g->K;
  for (int i = g->nb - 1; i >= 0; i--) {
    int ai = i - (g->nb - na);
    g->sa[i] = ai < 0 || A->dims[ai] == 1 ? 0 : s;
    if (ai >= 0) s *= A->dims[ai];
  }
  s = g->K * g->N;
  for (int i = g->nb - 1; i >= 0; i--) {
    int bi = i - (g->nb - nbb);
    g->sb[i] = bi < 0 || B->dims[bi] == 1 ? 0 : s;
    if (bi >= 0) s *= B->dims[bi];
  }
  g->batch = mi_numel(g->nb, g->bd);
  return NULL;
}

static mi_status *matmul_infer(mi_node *n, mi_tensor *const *in, mi_tensor **out) {
  if (n->n_in < 2 || !in[0] || !in[1])
    return mi_node_error(n, MI_ERR_INVALID_MODEL, "needs inputs A and B");
  const mi_tensor *A = in[0], *B = in[1];
  if (!gemm_dtype_ok(A->dtype))
    return mi_node_error(n, MI_ERR_UNSUPPORTED, "element type %s not supported",
                         mi_dtype_name(A->dtype));
  if (B->dtype != A->dtype)
    return mi_node_error(n, MI_ERR_INVALID_MODEL, "inputs have different element types");
  mm_geom g;
  MI_TRY(mm_geometry(n, A, B, &g));
  int64_t od[MI_MAX_DIMS + 2];
  int nd = g.nb;
  memcpy(od, g.bd, sizeof(int64_t) * (size_t)g.nb);
  if (!g.a1) od[nd++] = g.M;
  if (!g.b1) od[nd++] = g.N;
  if (nd > MI_MAX_DIMS) return mi_node_error(n, MI_ERR_SHAPE, "output rank too large");
  mi_tensor_set_shape(out[0], A->dtype, nd, od);
  return NULL;
}

static mi_status *matmul_run(mi_node *n, mi_exec *ex, mi_tensor *const *in, mi_tensor **out) {
  const mi_tensor *A = in[0], *B = in[1];
  mi_tensor *Y = out[0];
  mm_geom g;
  MI_TRY(mm_geometry(n, A, B, &g));
  int64_t M = g.M, K = g.K, N = g.N;
  if (mi_numel(Y->ndim, Y->dims) == 0) return NULL;
  size_t es = mi_dtype_size(Y->dtype);
  if (K == 0) {
    memset(Y->data, 0, (size_t)mi_numel(Y->ndim, Y->dims) * es);
    return apply_epilogue(n, in, Y);
  }
  /* B shared by every batch and A batches contiguous: one tall product. */
  bool b_shared = true, a_dense = true;
  int64_t expect = M * K;
  for (int i = g.nb - 1; i >= 0; i--) {
    if (g.sb[i] != 0) b_shared = false;
    if (g.bd[i] != 1 && g.sa[i] != expect) a_dense = false;
    expect *= g.bd[i];
  }
  if (b_shared && a_dense) {
    M *= g.batch;
    g.batch = 1;
    g.nb = 0;
  }
  int64_t idx[MI_MAX_DIMS] = {0}, oa = 0, ob = 0;
  for (int64_t b = 0; b < g.batch; b++) {
    const char *pa = (const char *)A->data + (size_t)oa * es;
    const char *pb = (const char *)B->data + (size_t)ob * es;
    char *py = (char *)Y->data + (size_t)(b * M * N) * es;
    if (Y->dtype == MI_FLOAT) {
      /* A 1-D B is a K x 1 column: lda/ldb stay row-major. */
      mi_sgemm(false, false, M, N, K, 1.f, (const float *)pa, K, (const float *)pb, N, 0.f,
               (float *)py, N);
    } else {
      mm_task t = {Y->dtype, pa, pb, py, K, 1, N, 1, N, K};
      mi_parallel_for(ex, M, 4, mm_rows, &t);
    }
    for (int d = g.nb - 1; d >= 0; d--) {
      oa += g.sa[d];
      ob += g.sb[d];
      if (++idx[d] < g.bd[d]) break;
      oa -= g.sa[d] * g.bd[d];
      ob -= g.sb[d] * g.bd[d];
      idx[d] = 0;
    }
  }
  return apply_epilogue(n, in, Y);
}

const mi_op_def mi_ops_gemm[] = {
    {"Gemm", 1, MI_OP_FUSE_ACT, gemm_init, gemm_infer, gemm_run, gemm_destroy},
    {"MatMul", 1, MI_OP_FUSE_ACT, NULL, matmul_infer, matmul_run, NULL},
    {NULL},
};
