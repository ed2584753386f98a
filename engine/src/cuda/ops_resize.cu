/* Resize / Upsample on the GPU (nearest, linear, cubic; every coordinate
 * transformation of ops/resize.c).  Per-axis tap tables (input offset and
 * weight, K = 1, 2 or 4 taps) are built on the host exactly as the CPU kernel
 * builds them, uploaded, and one thread per output element combines the taps
 * of all axes. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_common.h"

enum { RM_NEAREST, RM_LINEAR, RM_CUBIC };
enum { CT_HALF_PIXEL, CT_PYTORCH_HALF_PIXEL, CT_ALIGN_CORNERS, CT_ASYMMETRIC, CT_TF_HALF_PIXEL, CT_TF_CROP,
       CT_HALF_PIXEL_SYMMETRIC };
enum { NM_ROUND_PREFER_FLOOR, NM_ROUND_PREFER_CEIL, NM_FLOOR, NM_CEIL, NM_SIMPLE };
enum { KA_STRETCH, KA_NOT_LARGER, KA_NOT_SMALLER };

typedef struct rs_attrs {
  bool upsample;
  int mode, coord, nearest, keep;
  float cubic_a, extrapolation;
  bool exclude_outside, antialias;
  int naxes;
  int64_t axes[MI_MAX_DIMS];
} rs_attrs;

static int pick(const mi_node *n, const char *attr, const char *def, const char *const *names, int count) {
  const char *s = mi_attr_string(n, attr, def);
  for (int i = 0; i < count; i++)
    if (!strcmp(s, names[i])) return i;
  return -1;
}

static mi_status *rs_attrs_read(const mi_node *n, rs_attrs *a) {
  memset(a, 0, sizeof *a);
  a->upsample = !strcmp(n->op_type, "Upsample");
  static const char *const modes[] = {"nearest", "linear", "cubic", "bilinear"};
  int v = pick(n, "mode", "nearest", modes, a->upsample ? 4 : 3);
  if (v < 0) return mi_node_error(n, MI_ERR_UNSUPPORTED, "unknown mode '%s'", mi_attr_string(n, "mode", ""));
  a->mode = v == 3 ? RM_LINEAR : v;
  a->cubic_a = mi_attr_float(n, "cubic_coeff_a", -0.75f);
  a->extrapolation = mi_attr_float(n, "extrapolation_value", 0.f);
  a->exclude_outside = mi_attr_int(n, "exclude_outside", 0) != 0;
  a->naxes = -1;
  if (a->upsample || n->opset < 11) {
    a->coord = CT_ASYMMETRIC;
    a->nearest = NM_SIMPLE;
    return NULL;
  }
  static const char *const coords[] = {"half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric",
                                       "tf_half_pixel_for_nearest", "tf_crop_and_resize", "half_pixel_symmetric"};
  a->coord = pick(n, "coordinate_transformation_mode", "half_pixel", coords, 7);
  static const char *const nms[] = {"round_prefer_floor", "round_prefer_ceil", "floor", "ceil"};
  a->nearest = pick(n, "nearest_mode", "round_prefer_floor", nms, 4);
  if (a->coord < 0 || a->nearest < 0) return mi_node_error(n, MI_ERR_UNSUPPORTED, "unknown resize mode");
  if (a->coord == CT_HALF_PIXEL_SYMMETRIC)
    return mi_node_error(n, MI_ERR_UNSUPPORTED, "coordinate_transformation_mode half_pixel_symmetric");
  if (n->opset >= 18) {
    static const char *const keeps[] = {"stretch", "not_larger", "not_smaller"};
    a->keep = pick(n, "keep_aspect_ratio_policy", "stretch", keeps, 3);
    if (a->keep < 0) return mi_node_error(n, MI_ERR_UNSUPPORTED, "unknown keep_aspect_ratio_policy");
    a->antialias = mi_attr_int(n, "antialias", 0) != 0;
    const int64_t *ax;
    size_t c = mi_attr_ints(n, "axes", &ax);
    if (mi_node_attr(n, "axes")) {
      if (c > MI_MAX_DIMS) return mi_node_error(n, MI_ERR_INVALID_MODEL, "too many axes");
      a->naxes = (int)c;
      for (size_t i = 0; i < c; i++) a->axes[i] = ax[i];
    }
  }
  return NULL;
}

typedef struct rs_geom {
  int r;
  int64_t out[MI_MAX_DIMS];
  double scale[MI_MAX_DIMS], roi0[MI_MAX_DIMS], roi1[MI_MAX_DIMS];
} rs_geom;

static mi_status *rs_geometry(const mi_node *n, const rs_attrs *a, const mi_tensor *x,
                              const mi_tensor *const *hin, rs_geom *g) {
  int r = x->ndim;
  g->r = r;
  const mi_tensor *roi = NULL, *scales = NULL, *sizes = NULL;
  const float *scale_attr = NULL;
  size_t n_scale_attr = 0;
  if (a->upsample) {
    if (n->opset < 9) n_scale_attr = mi_attr_floats(n, "scales", &scale_attr);
    else scales = n->n_in > 1 ? hin[1] : NULL;
  } else if (n->opset < 11) {
    scales = n->n_in > 1 ? hin[1] : NULL;
  } else {
    roi = n->n_in > 1 ? hin[1] : NULL;
    scales = n->n_in > 2 ? hin[2] : NULL;
    sizes = n->n_in > 3 ? hin[3] : NULL;
  }
  if (roi && mi_numel(roi->ndim, roi->dims) == 0) roi = NULL;
  if (scales && mi_numel(scales->ndim, scales->dims) == 0) scales = NULL;
  if (sizes && mi_numel(sizes->ndim, sizes->dims) == 0) sizes = NULL;
  if ((scales && !scales->data) || (sizes && !sizes->data))
    return mi_node_error(n, MI_ERR_UNSUPPORTED, "scales/sizes are not known while planning");
  if (!!scales + !!sizes + !!scale_attr != 1)
    return mi_node_error(n, MI_ERR_UNSUPPORTED, "CUDA Resize needs scales or sizes known while planning");
  int na = a->naxes >= 0 ? a->naxes : r;
  int axis_of[MI_MAX_DIMS];
  for (int i = 0; i < na; i++) {
    int64_t ax = a->naxes >= 0 ? a->axes[i] : i;
    if (ax < 0) ax += r;
    if (ax < 0 || ax >= r) return mi_node_error(n, MI_ERR_INVALID_MODEL, "bad axis %lld", (long long)ax);
    axis_of[i] = (int)ax;
  }
  for (int d = 0; d < r; d++) {
    g->out[d] = x->dims[d];
    g->scale[d] = 1.0;
    g->roi0[d] = 0.0;
    g->roi1[d] = 1.0;
  }
  const mi_tensor *vals = scales ? scales : sizes;
  int64_t count = vals ? mi_numel(vals->ndim, vals->dims) : (int64_t)n_scale_attr;
  if (count != na) return mi_node_error(n, MI_ERR_INVALID_MODEL, "scales/sizes count differs from the axes");
  if (!sizes) {
    for (int i = 0; i < na; i++) {
      int d = axis_of[i];
      double s = scale_attr ? scale_attr[i] : mi_tensor_get_f64(scales, i);
      g->scale[d] = s;
      g->out[d] = (int64_t)floor((double)x->dims[d] * s);
    }
  } else {
    double common = a->keep == KA_NOT_LARGER ? INFINITY : 0.0;
    for (int i = 0; i < na; i++) {
      int d = axis_of[i];
      int64_t s = mi_tensor_get_i64(sizes, i);
      double sc = (double)s / (double)x->dims[d];
      g->out[d] = s;
      g->scale[d] = sc;
      if (a->keep == KA_NOT_LARGER) common = sc < common ? sc : common;
      if (a->keep == KA_NOT_SMALLER) common = sc > common ? sc : common;
    }
    if (a->keep != KA_STRETCH)
      for (int i = 0; i < na; i++) {
        int d = axis_of[i];
        g->scale[d] = common;
        g->out[d] = (int64_t)floor((double)x->dims[d] * common + 0.5);
      }
  }
  if (a->coord == CT_TF_CROP) {
    if (!roi || !roi->data || mi_numel(roi->ndim, roi->dims) != 2 * na)
      return mi_node_error(n, MI_ERR_UNSUPPORTED, "tf_crop_and_resize needs roi known while planning");
    for (int i = 0; i < na; i++) {
      g->roi0[axis_of[i]] = mi_tensor_get_f64(roi, i);
      g->roi1[axis_of[i]] = mi_tensor_get_f64(roi, na + i);
    }
  }
  return NULL;
}

static double source_coord(const rs_attrs *a, double x, int64_t in_len, double scale, double r0, double r1) {
  double ol = (double)in_len * scale;
  switch (a->coord) {
    case CT_HALF_PIXEL: return (x + 0.5) / scale - 0.5;
    case CT_PYTORCH_HALF_PIXEL: return ol > 1 ? (x + 0.5) / scale - 0.5 : 0.0;
    case CT_ALIGN_CORNERS: return ol > 1 ? x * (double)(in_len - 1) / (ol - 1) : 0.0;
    case CT_ASYMMETRIC: return x / scale;
    case CT_TF_HALF_PIXEL: return (x + 0.5) / scale;
    case CT_TF_CROP:
      return ol > 1 ? r0 * (double)(in_len - 1) + x * (r1 - r0) * (double)(in_len - 1) / (ol - 1)
                    : 0.5 * (r0 + r1) * (double)(in_len - 1);
    default: return x / scale;
  }
}

static int64_t clampi(int64_t v, int64_t hi) { return v < 0 ? 0 : (v > hi ? hi : v); }

static void cubic_coeffs(double t, double A, double c[4]) {
  double x0 = t + 1, x1 = t, x2 = 1 - t, x3 = 2 - t;
  c[0] = ((A * x0 - 5 * A) * x0 + 8 * A) * x0 - 4 * A;
  c[1] = ((A + 2) * x1 - (A + 3)) * x1 * x1 + 1;
  c[2] = ((A + 2) * x2 - (A + 3)) * x2 * x2 + 1;
  c[3] = ((A * x3 - 5 * A) * x3 + 8 * A) * x3 - 4 * A;
}

/* Taps of one axis into idx/w (4 slots per output), outside flags. */
static int axis_build(const rs_attrs *a, int64_t in_len, int64_t out_len, double scale, double r0, double r1,
                      int64_t stride, int64_t *idx, float *wt, uint8_t *outside) {
  int K = a->mode == RM_NEAREST ? 1 : a->mode == RM_LINEAR ? 2 : 4;
  bool identity = in_len == out_len && scale == 1.0 && a->coord != CT_TF_CROP;
  for (int64_t o = 0; o < out_len; o++) {
    int64_t *ix = idx + o * 4;
    float *w = wt + o * 4;
    double x = source_coord(a, (double)o, in_len, scale, r0, r1);
    outside[o] = a->coord == CT_TF_CROP && (x < 0 || x > (double)(in_len - 1));
    double fl = floor(x), fr = x - fl;
    int64_t base = (int64_t)fl;
    for (int k = 0; k < 4; k++) {
      ix[k] = 0;
      w[k] = 0.f;
    }
    if (identity) {
      ix[0] = o * stride;
      w[0] = 1.f;
      continue;
    }
    if (a->mode == RM_NEAREST) {
      int64_t i;
      switch (a->nearest) {
        case NM_ROUND_PREFER_FLOOR: i = fr == 0.5 ? base : (int64_t)floor(x + 0.5); break;
        case NM_ROUND_PREFER_CEIL: i = (int64_t)floor(x + 0.5); break;
        case NM_FLOOR: i = base; break;
        case NM_CEIL: i = (int64_t)ceil(x); break;
        default: i = scale < 1 ? (int64_t)ceil(x) : (int64_t)x; break;
      }
      ix[0] = clampi(i, in_len - 1) * stride;
      w[0] = 1.f;
      continue;
    }
    double c[4];
    int64_t first;
    if (a->mode == RM_LINEAR) {
      c[0] = 1 - fr, c[1] = fr;
      first = base;
    } else {
      cubic_coeffs(fr, a->cubic_a, c);
      first = base - 1;
    }
    if (a->exclude_outside) {
      double s = 0;
      for (int k = 0; k < K; k++) {
        int64_t i = first + k;
        if (i < 0 || i >= in_len) c[k] = 0;
        s += c[k];
      }
      for (int k = 0; k < K; k++) c[k] = s != 0 ? c[k] / s : 0;
    }
    for (int k = 0; k < K; k++) {
      ix[k] = clampi(first + k, in_len - 1) * stride;
      w[k] = (float)c[k];
    }
  }
  return identity ? 1 : K;
}

typedef struct rs_dev {
  int r, integer;
  int64_t odims[MI_MAX_DIMS];
  int K[MI_MAX_DIMS];
  int64_t off[MI_MAX_DIMS]; /* offset of axis d's table (in outputs) */
  double extrap;
} rs_dev;

template <typename T>
__global__ void k_resize(const T *x, T *y, const int64_t *idx, const float *wt, const uint8_t *outside, rs_dev g,
                         int64_t total) {
  CU_LOOP(i, total) {
    int64_t o[MI_MAX_DIMS], r = i;
    bool out = false;
    for (int d = g.r - 1; d >= 0; d--) {
      o[d] = r % g.odims[d];
      r /= g.odims[d];
      out = out || outside[g.off[d] + o[d]];
    }
    if (out) {
      y[i] = (T)g.extrap;
      continue;
    }
    /* Mixed-radix walk over the taps of every axis. */
    int t[MI_MAX_DIMS];
    int ncombo = 1;
    for (int d = 0; d < g.r; d++) {
      t[d] = 0;
      ncombo *= g.K[d];
    }
    double acc = 0;
    for (int c = 0; c < ncombo; c++) {
      int64_t src = 0;
      double w = 1;
      for (int d = 0; d < g.r; d++) {
        int64_t e = (g.off[d] + o[d]) * 4 + t[d];
        src += idx[e];
        w *= (double)wt[e];
      }
      if (w != 0) acc += w * (double)x[src];
      for (int d = g.r - 1; d >= 0; d--) {
        if (++t[d] < g.K[d]) break;
        t[d] = 0;
      }
    }
    if (g.integer) acc = rint(acc);
    y[i] = (T)acc;
  }
}

static mi_status *resize_run(mi_node *n, mi_cuda_ctx *cx, mi_tensor *const *in, const mi_tensor *const *hin,
                             mi_tensor **out) {
  const mi_tensor *x = in[0];
  mi_tensor *y = out[0];
  rs_attrs a;
  MI_TRY(rs_attrs_read(n, &a));
  rs_geom g;
  MI_TRY(rs_geometry(n, &a, x, hin, &g));
  int r = x->ndim;
  if (a.antialias && a.mode != RM_NEAREST)
    for (int d = 0; d < r; d++)
      if (g.scale[d] < 1) return mi_node_error(n, MI_ERR_UNSUPPORTED, "antialiased downsampling is not supported");
  int64_t total = mi_numel(r, y->dims);
  if (!total) return NULL;
  if (r == 0) {
    CU_TRY(n, cudaMemcpyAsync(y->data, x->data, mi_dtype_size(x->dtype), cudaMemcpyDeviceToDevice, cx->stream));
    return NULL;
  }
  for (int d = 0; d < r; d++)
    if (x->dims[d] == 0) return mi_node_error(n, MI_ERR_SHAPE, "cannot resize empty axis %d", d);
  int64_t len = 0;
  rs_dev dv;
  dv.r = r;
  dv.extrap = a.extrapolation;
  dv.integer = x->dtype != MI_FLOAT && x->dtype != MI_DOUBLE && a.mode != RM_NEAREST;
  for (int d = 0; d < r; d++) {
    dv.odims[d] = y->dims[d];
    dv.off[d] = len;
    len += y->dims[d];
  }
  size_t bytes = (size_t)len * (4 * sizeof(int64_t) + 4 * sizeof(float) + 1);
  char *host = (char *)malloc(bytes);
  if (!host) return mi_node_error(n, MI_ERR_NO_MEMORY, "out of memory");
  int64_t *ip = (int64_t *)host;
  float *wp = (float *)(host + (size_t)len * 4 * sizeof(int64_t));
  uint8_t *op = (uint8_t *)(host + (size_t)len * (4 * sizeof(int64_t) + 4 * sizeof(float)));
  int64_t stride = 1;
  int64_t ncombo = 1;
  for (int d = r - 1; d >= 0; d--) {
    dv.K[d] = axis_build(&a, x->dims[d], y->dims[d], g.scale[d], g.roi0[d], g.roi1[d], stride, ip + dv.off[d] * 4,
                         wp + dv.off[d] * 4, op + dv.off[d]);
    stride *= x->dims[d];
    ncombo *= dv.K[d];
  }
  if (ncombo > 4096) {
    free(host);
    return mi_node_error(n, MI_ERR_UNSUPPORTED, "too many interpolated axes");
  }
  mi_status *st = NULL;
  char *dev = (char *)mi_cuda_workspace(cx, n, bytes, &st);
  if (!dev) {
    free(host);
    return st;
  }
  cudaError_t e = cudaMemcpyAsync(dev, host, bytes, cudaMemcpyHostToDevice, cx->stream);
  if (e == cudaSuccess) e = cudaStreamSynchronize(cx->stream); /* host tables freed next */
  free(host);
  if (e != cudaSuccess) return mi_cuda_err(n, e, "cudaMemcpyAsync (resize tables)");
  const int64_t *didx = (const int64_t *)dev;
  const float *dw = (const float *)(dev + (size_t)len * 4 * sizeof(int64_t));
  const uint8_t *dout = (const uint8_t *)(dev + (size_t)len * (4 * sizeof(int64_t) + 4 * sizeof(float)));
  unsigned gr = mi_cuda_grid(total, 256);
  switch (x->dtype) {
#define X(DT, T) case DT: k_resize<T><<<gr, 256, 0, cx->stream>>>((const T *)x->data, (T *)y->data, didx, dw, dout, dv, total); break;
    X(MI_FLOAT, float) X(MI_DOUBLE, double) X(MI_INT8, int8_t) X(MI_INT16, int16_t) X(MI_INT32, int32_t)
    X(MI_INT64, int64_t) X(MI_UINT8, uint8_t) X(MI_UINT16, uint16_t)
#undef X
    default: return mi_node_error(n, MI_ERR_UNSUPPORTED, "element type %s is not supported on CUDA", mi_dtype_name(x->dtype));
  }
  CU_LAUNCHED(n);
  return NULL;
}

extern const mi_cuda_op mi_cuda_ops_resize[] = {
    {"Resize", resize_run},
    {"Upsample", resize_run},
    {NULL, NULL},
};
