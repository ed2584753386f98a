/* MaxPool / AveragePool (1-3D, pads, auto_pad, strides, dilations,
 * ceil_mode, count_include_pad, MaxPool Indices) and GlobalAverage/MaxPool on
 * the GPU; geometry as in ops/pool.c. */
#include <float.h>
#include <string.h>

#include "cuda_common.h"

enum { PAD_NOTSET, PAD_SAME_UPPER, PAD_SAME_LOWER, PAD_VALID };

typedef struct pgeom {
  int64_t in[3], k[3], s[3], d[3], pb[3], pe[3], out[3];
  int64_t in_sz, out_sz;
} pgeom;

static int64_t ints_at(const mi_node *n, const char *name, int i, int64_t def) {
  const int64_t *v;
  size_t k = mi_attr_ints(n, name, &v);
  return (size_t)i < k ? v[i] : def;
}

static mi_status *pool_geom(const mi_node *n, const mi_tensor *x, const mi_tensor *y, pgeom *g) {
  const int64_t *kern, *pads;
  int s = (int)mi_attr_ints(n, "kernel_shape", &kern), off = 3 - s;
  size_t np = mi_attr_ints(n, "pads", &pads);
  if (s < 1 || s > 3 || x->ndim != s + 2)
    return mi_node_error(n, MI_ERR_UNSUPPORTED, "CUDA pooling handles 1-3 spatial dims");
  const char *aps = mi_attr_string(n, "auto_pad", "NOTSET");
  int ap = !strcmp(aps, "SAME_UPPER") ? PAD_SAME_UPPER : !strcmp(aps, "SAME_LOWER") ? PAD_SAME_LOWER
           : !strcmp(aps, "VALID") ? PAD_VALID : PAD_NOTSET;
  for (int j = 0; j < 3; j++) {
    g->in[j] = g->k[j] = g->s[j] = g->d[j] = g->out[j] = 1;
    g->pb[j] = g->pe[j] = 0;
  }
  for (int i = 0; i < s; i++) {
    int j = off + i;
    int64_t in = x->dims[2 + i], k = kern[i];
    int64_t st = ints_at(n, "strides", i, 1), dl = ints_at(n, "dilations", i, 1);
    int64_t dk = (k - 1) * dl + 1, pb = 0, pe = 0;
    if (ap == PAD_SAME_UPPER || ap == PAD_SAME_LOWER) {
      int64_t out = (in + st - 1) / st;
      int64_t total = (out - 1) * st + dk - in;
      if (total < 0) total = 0;
      pb = ap == PAD_SAME_UPPER ? total / 2 : total - total / 2;
      pe = total - pb;
    } else if (ap == PAD_NOTSET && np == (size_t)(2 * s)) {
      pb = pads[i];
      pe = pads[s + i];
    }
    g->in[j] = in; g->k[j] = k; g->s[j] = st; g->d[j] = dl; g->pb[j] = pb; g->pe[j] = pe;
    g->out[j] = y->dims[2 + i];
  }
  g->in_sz = g->in[0] * g->in[1] * g->in[2];
  g->out_sz = g->out[0] * g->out[1] * g->out[2];
  return NULL;
}

/* Range [lo, hi) of taps t in [0, k) with 0 <= off + t*d < in. */
__device__ __forceinline__ void valid_range(int64_t k, int64_t d, int64_t off, int64_t in, int64_t *lo, int64_t *hi) {
  int64_t l = off >= 0 ? 0 : (-off + d - 1) / d;
  int64_t lim = in - 1 - off;
  int64_t h = lim < 0 ? 0 : lim / d + 1;
  if (h > k) h = k;
  if (h < l) h = l;
  *lo = l;
  *hi = h;
}

template <typename T, bool IS_MAX>
__global__ void k_pool(const T *x, T *y, int64_t *idx, pgeom g, int64_t planes, bool incl, bool colmaj) {
  int64_t total = planes * g.out_sz;
  CU_LOOP(i, total) {
    int64_t pl = i / g.out_sz, o = i - pl * g.out_sz;
    int64_t ox = o % g.out[2], oy = (o / g.out[2]) % g.out[1], oz = o / (g.out[2] * g.out[1]);
    int64_t sz = oz * g.s[0] - g.pb[0], sy = oy * g.s[1] - g.pb[1], sx = ox * g.s[2] - g.pb[2];
    int64_t zl, zh, yl, yh, xl, xh;
    valid_range(g.k[0], g.d[0], sz, g.in[0], &zl, &zh);
    valid_range(g.k[1], g.d[1], sy, g.in[1], &yl, &yh);
    valid_range(g.k[2], g.d[2], sx, g.in[2], &xl, &xh);
    const T *xp = x + pl * g.in_sz;
    if (IS_MAX) {
      T best = 0;
      int64_t bi = -1;
      for (int64_t kz = zl; kz < zh; kz++) {
        int64_t iz = sz + kz * g.d[0];
        for (int64_t ky = yl; ky < yh; ky++) {
          int64_t iy = sy + ky * g.d[1];
          const T *row = xp + (iz * g.in[1] + iy) * g.in[2];
          for (int64_t kx = xl; kx < xh; kx++) {
            int64_t ix = sx + kx * g.d[2];
            T v = row[ix];
            if (bi < 0 || v > best) {
              best = v;
              bi = colmaj ? iz + (iy + ix * g.in[1]) * g.in[0] : (iz * g.in[1] + iy) * g.in[2] + ix;
            }
          }
        }
      }
      y[i] = best;
      if (idx) idx[i] = bi < 0 ? -1 : pl * g.in_sz + bi;
    } else {
      double sum = 0;
      for (int64_t kz = zl; kz < zh; kz++) {
        int64_t iz = sz + kz * g.d[0];
        for (int64_t ky = yl; ky < yh; ky++) {
          int64_t iy = sy + ky * g.d[1];
          const T *row = xp + (iz * g.in[1] + iy) * g.in[2];
          for (int64_t kx = xl; kx < xh; kx++) sum += (double)row[sx + kx * g.d[2]];
        }
      }
      int64_t cnt;
      if (incl) {
        int64_t z0, z1, y0, y1, x0, x1;
        valid_range(g.k[0], g.d[0], sz + g.pb[0], g.in[0] + g.pb[0] + g.pe[0], &z0, &z1);
        valid_range(g.k[1], g.d[1], sy + g.pb[1], g.in[1] + g.pb[1] + g.pe[1], &y0, &y1);
        valid_range(g.k[2], g.d[2], sx + g.pb[2], g.in[2] + g.pb[2] + g.pe[2], &x0, &x1);
        cnt = (z1 - z0) * (y1 - y0) * (x1 - x0);
      } else {
        cnt = (zh - zl) * (yh - yl) * (xh - xl);
      }
      y[i] = cnt > 0 ? (T)(sum / (double)cnt) : (T)0;
    }
  }
}

static mi_status *pool_run(mi_node *n, mi_cuda_ctx *cx, mi_tensor *const *in, const mi_tensor *const *hin,
                           mi_tensor **out) {
  const mi_tensor *x = in[0];
  pgeom g;
  MI_TRY(pool_geom(n, x, out[0], &g));
  bool is_max = !strcmp(n->op_type, "MaxPool");
  bool incl = mi_attr_int(n, "count_include_pad", 0) != 0, colmaj = mi_attr_int(n, "storage_order", 0) == 1;
  int64_t planes = x->dims[0] * x->dims[1], total = planes * g.out_sz;
  if (!total) return NULL;
  int64_t *idx = n->n_out > 1 && out[1] ? (int64_t *)out[1]->data : NULL;
  unsigned gr = mi_cuda_grid(total, 128);
#define LAUNCH(T)                                                                                             \
  if (is_max) k_pool<T, true><<<gr, 128, 0, cx->stream>>>((const T *)x->data, (T *)out[0]->data, idx, g, planes, incl, colmaj); \
  else k_pool<T, false><<<gr, 128, 0, cx->stream>>>((const T *)x->data, (T *)out[0]->data, NULL, g, planes, incl, colmaj);
  switch (x->dtype) {
    case MI_FLOAT: LAUNCH(float) break;
    case MI_DOUBLE: LAUNCH(double) break;
    case MI_UINT8:
      if (!is_max) return mi_node_error(n, MI_ERR_UNSUPPORTED, "AveragePool of uint8 is not supported");
      k_pool<uint8_t, true><<<gr, 128, 0, cx->stream>>>((const uint8_t *)x->data, (uint8_t *)out[0]->data, idx, g, planes, incl, colmaj);
      break;
    case MI_INT8:
      if (!is_max) return mi_node_error(n, MI_ERR_UNSUPPORTED, "AveragePool of int8 is not supported");
      k_pool<int8_t, true><<<gr, 128, 0, cx->stream>>>((const int8_t *)x->data, (int8_t *)out[0]->data, idx, g, planes, incl, colmaj);
      break;
    default: return mi_node_error(n, MI_ERR_UNSUPPORTED, "element type %s is not supported on CUDA", mi_dtype_name(x->dtype));
  }
#undef LAUNCH
  CU_LAUNCHED(n);
  return NULL;
}

/* One block per plane: mean or max over the spatial extent. */
template <typename T, bool IS_MAX>
__global__ void k_gpool(const T *x, T *y, int64_t sp) {
  const T *p = x + (int64_t)blockIdx.x * sp;
  double acc = IS_MAX ? -INFINITY : 0.0;
  for (int64_t i = threadIdx.x; i < sp; i += blockDim.x) {
    double v = (double)p[i];
    acc = IS_MAX ? (v > acc || v != v ? v : acc) : acc + v;
  }
  __shared__ double sh[256];
  sh[threadIdx.x] = acc;
  __syncthreads();
  for (int s = blockDim.x / 2; s > 0; s >>= 1) {
    if ((int)threadIdx.x < s) {
      double a = sh[threadIdx.x], b = sh[threadIdx.x + s];
      sh[threadIdx.x] = IS_MAX ? (b > a || b != b ? b : a) : a + b;
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) y[blockIdx.x] = (T)(IS_MAX ? sh[0] : sh[0] / (double)sp);
}

static mi_status *gpool_run(mi_node *n, mi_cuda_ctx *cx, mi_tensor *const *in, const mi_tensor *const *hin,
                            mi_tensor **out) {
  const mi_tensor *x = in[0];
  bool is_max = !strcmp(n->op_type, "GlobalMaxPool");
  int64_t planes = x->dims[0] * x->dims[1], sp = mi_numel(x->ndim - 2, x->dims + 2);
  if (!planes) return NULL;
  if (planes > 2147483647LL) return mi_node_error(n, MI_ERR_UNSUPPORTED, "too many planes");
  if (x->dtype == MI_FLOAT) {
    if (is_max) k_gpool<float, true><<<(unsigned)planes, 256, 0, cx->stream>>>((const float *)x->data, (float *)out[0]->data, sp);
    else k_gpool<float, false><<<(unsigned)planes, 256, 0, cx->stream>>>((const float *)x->data, (float *)out[0]->data, sp);
  } else if (x->dtype == MI_DOUBLE) {
    if (is_max) k_gpool<double, true><<<(unsigned)planes, 256, 0, cx->stream>>>((const double *)x->data, (double *)out[0]->data, sp);
    else k_gpool<double, false><<<(unsigned)planes, 256, 0, cx->stream>>>((const double *)x->data, (double *)out[0]->data, sp);
  } else {
    return mi_node_error(n, MI_ERR_UNSUPPORTED, "element type %s is not supported on CUDA", mi_dtype_name(x->dtype));
  }
  CU_LAUNCHED(n);
  return NULL;
}

extern const mi_cuda_op mi_cuda_ops_pool[] = {
    {"MaxPool", pool_run},
    {"AveragePool", pool_run},
    {"GlobalAveragePool", gpool_run},
    {"GlobalMaxPool", gpool_run},
    {NULL, NULL},
};
