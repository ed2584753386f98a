/* Conv and ConvTranspose (1D/2D/3D, float) on the GPU.  A group-1 Conv is
 * an implicit GEMM (conv_igemm.cu); 1x1 layers read in place and, in fast
 * mode (TF32 tensor cores) or with groups, the rest are lowered to cuBLAS:
 *   Conv:          Y_g[Mg, P] = W_g[Mg, Cg*k] * col[Cg*k, P]       (im2col)
 *   ConvTranspose: col[Mg*k, P] = W_g^T[Mg*k, Cg] * X_g[Cg, P]     (col2im)
 * The column buffer is tiled (COL_BUDGET) so that a large 3D volume never
 * materialises its whole im2col matrix; when whole images fit, several images
 * (or all groups of one image) go through one strided-batched GEMM.  Spatial
 * geometry is normalised to 3 dims, as in the CPU kernel (ops/conv.c). */
#include <stdlib.h>
#include <string.h>

#include "cuda_common.h"

#define COL_BUDGET ((int64_t)128 << 20)

enum { PAD_NOTSET, PAD_SAME_UPPER, PAD_SAME_LOWER, PAD_VALID };

typedef mi_cuda_geom geom;

static int64_t floordiv(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

static int auto_pad_of(const mi_node *n) {
  const char *ap = mi_attr_string(n, "auto_pad", "NOTSET");
  if (!strcmp(ap, "SAME_UPPER")) return PAD_SAME_UPPER;
  if (!strcmp(ap, "SAME_LOWER")) return PAD_SAME_LOWER;
  if (!strcmp(ap, "VALID")) return PAD_VALID;
  return PAD_NOTSET;
}

/* Attribute i of an INTS list, or def when absent. */
static int64_t ints_at(const mi_node *n, const char *name, int i, int64_t def) {
  const int64_t *v;
  size_t k = mi_attr_ints(n, name, &v);
  return (size_t)i < k ? v[i] : def;
}

static mi_status *conv_geom(const mi_node *n, const mi_tensor *x, const mi_tensor *w, geom *g) {
  int s = x->ndim - 2, off = 3 - s, ap = auto_pad_of(n);
  if (s < 1 || s > 3) return mi_node_error(n, MI_ERR_UNSUPPORTED, "CUDA Conv handles 1-3 spatial dims");
  const int64_t *pads;
  size_t np = mi_attr_ints(n, "pads", &pads);
  for (int j = 0; j < 3; j++) {
    g->in[j] = g->k[j] = g->s[j] = g->d[j] = g->out[j] = 1;
    g->pb[j] = 0;
  }
  for (int i = 0; i < s; i++) {
    int j = off + i;
    int64_t in = x->dims[2 + i], k = w->dims[2 + i];
    int64_t st = ints_at(n, "strides", i, 1), dl = ints_at(n, "dilations", i, 1);
    int64_t dk = (k - 1) * dl + 1, pb = 0, pe = 0, out;
    if (ap == PAD_SAME_UPPER || ap == PAD_SAME_LOWER) {
      out = (in + st - 1) / st;
      int64_t total = (out - 1) * st + dk - in;
      if (total < 0) total = 0;
      pb = ap == PAD_SAME_UPPER ? total / 2 : total - total / 2;
    } else if (ap == PAD_VALID) {
      out = in >= dk ? (in - dk) / st + 1 : 0;
    } else {
      if (np == (size_t)(2 * s)) { pb = pads[i]; pe = pads[s + i]; }
      out = in + pb + pe >= dk ? (in + pb + pe - dk) / st + 1 : 0;
    }
    g->in[j] = in; g->k[j] = k; g->s[j] = st; g->d[j] = dl; g->pb[j] = pb; g->out[j] = out;
  }
  g->in_sz = g->in[0] * g->in[1] * g->in[2];
  g->out_sz = g->out[0] * g->out[1] * g->out[2];
  g->k_sz = g->k[0] * g->k[1] * g->k[2];
  return NULL;
}

static mi_status *convt_geom(const mi_node *n, const mi_tensor *x, const mi_tensor *w, const mi_tensor *y,
                             geom *g) {
  int s = x->ndim - 2, off = 3 - s, ap = auto_pad_of(n);
  if (s < 1 || s > 3) return mi_node_error(n, MI_ERR_UNSUPPORTED, "CUDA ConvTranspose handles 1-3 spatial dims");
  const int64_t *pads, *os = NULL;
  size_t np = mi_attr_ints(n, "pads", &pads);
  size_t nos = mi_attr_ints(n, "output_shape", &os);
  if (nos == (size_t)s + 2) os += 2;
  else if (nos != (size_t)s) os = NULL;
  for (int j = 0; j < 3; j++) {
    g->in[j] = g->k[j] = g->s[j] = g->d[j] = g->out[j] = 1;
    g->pb[j] = 0;
  }
  for (int i = 0; i < s; i++) {
    int j = off + i;
    int64_t in = x->dims[2 + i], k = w->dims[2 + i];
    int64_t st = ints_at(n, "strides", i, 1), dl = ints_at(n, "dilations", i, 1);
    int64_t op = ints_at(n, "output_padding", i, 0);
    int64_t full = st * (in - 1) + op + (k - 1) * dl + 1;
    int64_t pb = 0, out = y->dims[2 + i];
    if (os || ap == PAD_SAME_UPPER || ap == PAD_SAME_LOWER) {
      int64_t total = full - out;
      int64_t half = floordiv(total, 2);
      pb = ap == PAD_SAME_UPPER ? half : total - half;
    } else if (ap != PAD_VALID && np == (size_t)(2 * s)) {
      pb = pads[i];
    }
    g->in[j] = in; g->k[j] = k; g->s[j] = st; g->d[j] = dl; g->pb[j] = pb; g->out[j] = out;
  }
  g->in_sz = g->in[0] * g->in[1] * g->in[2];
  g->out_sz = g->out[0] * g->out[1] * g->out[2];
  g->k_sz = g->k[0] * g->k[1] * g->k[2];
  return NULL;
}

/* col[img][c*K + kk][p] for p in [p0, p0+pt), channels [0, C), images [0, nimg)
 * (image stride img_stride elements in x). */
__global__ void k_im2col(const float *x, float *col, geom g, int64_t C, int64_t p0, int64_t pt, int64_t nimg,
                         int64_t img_stride) {
  int64_t per = C * g.k_sz * pt, total = per * nimg;
  CU_LOOP(i, total) {
    int64_t img = i / per, r = i - img * per;
    int64_t p = r % pt + p0;
    int64_t ck = r / pt;
    int64_t kk = ck % g.k_sz, c = ck / g.k_sz;
    int64_t kx = kk % g.k[2], ky = (kk / g.k[2]) % g.k[1], kz = kk / (g.k[2] * g.k[1]);
    int64_t ox = p % g.out[2], oy = (p / g.out[2]) % g.out[1], oz = p / (g.out[2] * g.out[1]);
    int64_t iz = oz * g.s[0] - g.pb[0] + kz * g.d[0];
    int64_t iy = oy * g.s[1] - g.pb[1] + ky * g.d[1];
    int64_t ix = ox * g.s[2] - g.pb[2] + kx * g.d[2];
    float v = 0.f;
    if (iz >= 0 && iz < g.in[0] && iy >= 0 && iy < g.in[1] && ix >= 0 && ix < g.in[2])
      v = x[img * img_stride + c * g.in_sz + (iz * g.in[1] + iy) * g.in[2] + ix];
    col[i] = v;
  }
}

/* The implicit GEMM where its grid fills the GPU twice over: with fewer
 * blocks each walks the whole K alone, where cuBLAS splits it (ResNet-50 at
 * batch 1 on an H200: 1.3 ms on cuBLAS, 7.5 on the implicit GEMM; at batch
 * 32 20.9 against 22.1; the 3D U-Net on a 128^3 patch 68 against 220).  In
 * fast mode cuBLAS has TF32 tensor cores, which win where the im2col matrix
 * is a few times the input (ResNet-50 at batch 32: 17.3 ms) but not at 27
 * taps (the U-Net: 205 ms). */
static bool igemm_wanted(const mi_cuda_ctx *cx, const geom *g, int64_t N, int64_t M) {
  const char *e = getenv("MEDINFER_CUDA_IGEMM"); /* 0: never, 1: wherever it fits (tests); else this rule */
  if (e && (!strcmp(e, "0") || !strcmp(e, "1"))) return e[0] == '1';
  return mi_cuda_conv_igemm_blocks(g, N, M) >= 2 * cx->sm_count && (!cx->fast_math || g->k_sz >= 27);
}

static mi_status *conv_run(mi_node *n, mi_cuda_ctx *cx, mi_tensor *const *in, const mi_tensor *const *hin,
                           mi_tensor **out) {
  const mi_tensor *x = in[0], *w = in[1], *b = n->n_in > 2 ? in[2] : NULL, *res = in[n->n_in];
  mi_tensor *y = out[0];
  if (x->dtype != MI_FLOAT || w->dtype != MI_FLOAT)
    return mi_node_error(n, MI_ERR_UNSUPPORTED, "CUDA Conv supports float32 only");
  geom g;
  MI_TRY(conv_geom(n, x, w, &g));
  int64_t N = x->dims[0], C = x->dims[1], M = w->dims[0], group = mi_attr_int(n, "group", 1);
  int64_t Cg = C / group, Mg = M / group, CK = Cg * g.k_sz, P = g.out_sz;
  const float *X = (const float *)x->data, *W = (const float *)w->data;
  float *Y = (float *)y->data;
  bool direct = g.k_sz == 1 && g.s[0] == 1 && g.s[1] == 1 && g.s[2] == 1 && g.pb[0] == 0 && g.pb[1] == 0 &&
                g.pb[2] == 0 && g.in_sz == g.out_sz;
  if (N * M * P > 0) {
    if (direct) {
      if (group == 1) {
        MI_TRY(mi_cuda_sgemm(cx, n, false, false, M, P, C, 1.f, W, C, 0, X, P, C * P, 0.f, Y, P, M * P, N));
      } else {
        for (int64_t img = 0; img < N; img++)
          MI_TRY(mi_cuda_sgemm(cx, n, false, false, Mg, P, Cg, 1.f, W, Cg, Mg * Cg, X + img * C * P, P, Cg * P,
                               0.f, Y + img * M * P, P, Mg * P, group));
      }
    } else if (group == 1 && igemm_wanted(cx, &g, N, M) && mi_cuda_conv_igemm_fits(&g, N, C, M)) {
      MI_TRY(mi_cuda_conv_igemm(cx, n, &g, X, W, Y, N, C, M));
    } else {
      int64_t col_per_p = (group == 1 ? CK : C * g.k_sz) * (int64_t)sizeof(float);
      int64_t pt = COL_BUDGET / col_per_p;
      if (pt < 1) pt = 1;
      if (pt > P) pt = P;
      int64_t nb = 1;
      if (pt == P && group == 1) {
        nb = COL_BUDGET / (col_per_p * P);
        if (nb < 1) nb = 1;
        if (nb > N) nb = N;
      }
      mi_status *st = NULL;
      float *col = (float *)mi_cuda_workspace(cx, n, (size_t)(col_per_p * pt * nb), &st);
      if (!col) return st;
      for (int64_t img = 0; img < N; img += nb) {
        int64_t ni = N - img < nb ? N - img : nb;
        for (int64_t p0 = 0; p0 < P; p0 += pt) {
          int64_t pn = P - p0 < pt ? P - p0 : pt;
          int64_t total = C * g.k_sz * pn * ni;
          k_im2col<<<mi_cuda_grid(total, 256), 256, 0, cx->stream>>>(X + img * C * g.in_sz, col, g, C, p0, pn, ni,
                                                                       C * g.in_sz);
          CU_LAUNCHED(n);
          if (group == 1)
            MI_TRY(mi_cuda_sgemm(cx, n, false, false, M, pn, CK, 1.f, W, CK, 0, col, pn, CK * pn, 0.f,
                                 Y + img * M * P + p0, P, M * P, ni));
          else
            MI_TRY(mi_cuda_sgemm(cx, n, false, false, Mg, pn, CK, 1.f, W, CK, Mg * CK, col, pn, CK * pn, 0.f,
                                 Y + img * M * P + p0, P, Mg * P, group));
        }
      }
    }
  }
  return mi_cuda_epilogue(cx, n, Y, b ? (const float *)b->data : NULL, res ? (const float *)res->data : NULL,
                          N, M, P);
}

/* Gather-form col2im: y[m][o] = sum over taps k with (o + pb - k*d) = i*s of
 * col[m*K + k][i]; m in [m0, m0 + mn). */
__global__ void k_col2im(const float *col, float *y, geom g, int64_t m0, int64_t mn) {
  int64_t total = mn * g.out_sz;
  CU_LOOP(i, total) {
    int64_t m = i / g.out_sz, o = i - m * g.out_sz;
    int64_t ox = o % g.out[2], oy = (o / g.out[2]) % g.out[1], oz = o / (g.out[2] * g.out[1]);
    float acc = 0.f;
    for (int64_t kz = 0; kz < g.k[0]; kz++) {
      int64_t tz = oz + g.pb[0] - kz * g.d[0];
      if (tz < 0 || tz % g.s[0]) continue;
      int64_t iz = tz / g.s[0];
      if (iz >= g.in[0]) continue;
      for (int64_t ky = 0; ky < g.k[1]; ky++) {
        int64_t ty = oy + g.pb[1] - ky * g.d[1];
        if (ty < 0 || ty % g.s[1]) continue;
        int64_t iy = ty / g.s[1];
        if (iy >= g.in[1]) continue;
        for (int64_t kx = 0; kx < g.k[2]; kx++) {
          int64_t tx = ox + g.pb[2] - kx * g.d[2];
          if (tx < 0 || tx % g.s[2]) continue;
          int64_t ix = tx / g.s[2];
          if (ix >= g.in[2]) continue;
          int64_t kk = (kz * g.k[1] + ky) * g.k[2] + kx;
          acc += col[(m * g.k_sz + kk) * g.in_sz + (iz * g.in[1] + iy) * g.in[2] + ix];
        }
      }
    }
    y[(m0 + m) * g.out_sz + o] = acc;
  }
}

/* Strides equal to the kernel, no padding or dilation (a U-Net's 2x2x2
 * upsampling): output o is one column entry, the tap and input position o
 * falls on, y[m][o] = col[(m*K + kk)][i]; 32-bit index math (the column tile
 * is at most COL_BUDGET, the caller checks out_sz). */
static bool convt_disjoint(const geom *g) {
  for (int j = 0; j < 3; j++)
    if (g->s[j] != g->k[j] || g->pb[j] || (g->k[j] > 1 && g->d[j] != 1) || g->out[j] != g->in[j] * g->s[j])
      return false;
  return g->out_sz < INT32_MAX;
}

__global__ void k_col2im_disjoint(const float *col, float *y, geom g, int64_t m0) {
  const int out1 = (int)g.out[1], out2 = (int)g.out[2], s0 = (int)g.s[0], s1 = (int)g.s[1], s2 = (int)g.s[2];
  const int in1 = (int)g.in[1], in2 = (int)g.in[2], osz = (int)g.out_sz, isz = (int)g.in_sz, K = (int)g.k_sz;
  const int m = blockIdx.y;
  for (int o = blockIdx.x * blockDim.x + threadIdx.x; o < osz; o += gridDim.x * blockDim.x) {
    const int ox = o % out2, t = o / out2, oy = t % out1, oz = t / out1;
    const int kk = (oz % s0 * s1 + oy % s1) * s2 + ox % s2, i = (oz / s0 * in1 + oy / s1) * in2 + ox / s2;
    y[(m0 + m) * g.out_sz + o] = col[(m * K + kk) * isz + i];
  }
}

static mi_status *convt_run(mi_node *n, mi_cuda_ctx *cx, mi_tensor *const *in, const mi_tensor *const *hin,
                            mi_tensor **out) {
  const mi_tensor *x = in[0], *w = in[1], *b = n->n_in > 2 ? in[2] : NULL, *res = in[n->n_in];
  mi_tensor *y = out[0];
  if (x->dtype != MI_FLOAT || w->dtype != MI_FLOAT)
    return mi_node_error(n, MI_ERR_UNSUPPORTED, "CUDA ConvTranspose supports float32 only");
  geom g;
  MI_TRY(convt_geom(n, x, w, y, &g));
  int64_t N = x->dims[0], C = x->dims[1], group = mi_attr_int(n, "group", 1);
  int64_t Cg = C / group, Mg = w->dims[1], M = Mg * group, K = g.k_sz, Pin = g.in_sz, Pout = g.out_sz;
  const float *X = (const float *)x->data, *W = (const float *)w->data;
  float *Y = (float *)y->data;
  if (N * M * Pout > 0) {
    int64_t row_bytes = K * Pin * (int64_t)sizeof(float); /* col bytes per output channel */
    int64_t mt = COL_BUDGET / (row_bytes > 0 ? row_bytes : 1);
    if (mt < 1) mt = 1;
    if (mt > Mg) mt = Mg;
    if (mt > 65535) mt = 65535; /* k_col2im_disjoint's grid.y */
    const bool disjoint = convt_disjoint(&g) && row_bytes * mt / (int64_t)sizeof(float) < INT32_MAX;
    mi_status *st = NULL;
    float *col = (float *)mi_cuda_workspace(cx, n, (size_t)(row_bytes * mt), &st);
    if (!col) return st;
    for (int64_t img = 0; img < N; img++)
      for (int64_t gi = 0; gi < group; gi++) {
        const float *Xg = X + (img * C + gi * Cg) * Pin, *Wg = W + gi * Cg * Mg * K;
        float *Yg = Y + (img * M + gi * Mg) * Pout;
        for (int64_t m0 = 0; m0 < Mg; m0 += mt) {
          int64_t mn = Mg - m0 < mt ? Mg - m0 : mt;
          if (Pin > 0 && Cg > 0) {
            MI_TRY(mi_cuda_sgemm(cx, n, true, false, mn * K, Pin, Cg, 1.f, Wg + m0 * K, Mg * K, 0, Xg, Pin, 0, 0.f,
                                 col, Pin, 0, 1));
          } else {
            CU_TRY(n, cudaMemsetAsync(col, 0, (size_t)(row_bytes * mn), cx->stream));
          }
          if (disjoint) {
            const dim3 grid((unsigned)((Pout + 255) / 256 < 4096 ? (Pout + 255) / 256 : 4096), (unsigned)mn);
            k_col2im_disjoint<<<grid, 256, 0, cx->stream>>>(col, Yg, g, m0);
          } else {
            k_col2im<<<mi_cuda_grid(mn * Pout, 256), 256, 0, cx->stream>>>(col, Yg, g, m0, mn);
          }
          CU_LAUNCHED(n);
        }
      }
  }
  return mi_cuda_epilogue(cx, n, Y, b ? (const float *)b->data : NULL, res ? (const float *)res->data : NULL,
                          N, M, Pout);
}

extern const mi_cuda_op mi_cuda_ops_conv[] = {
    {"Conv", conv_run},
    {"ConvTranspose", convt_run},
    {NULL, NULL},
};
