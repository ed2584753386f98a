/* MaxPool, AveragePool (1D/2D/3D) and GlobalAveragePool, GlobalMaxPool.
 *
 * Spatial geometry is normalised to 3 dims (leading dims of size 1) so one
 * kernel serves 1D..3D.  Work is split over the N*C planes; per output the
 * window is clipped analytically to the valid input range, so no padded copy
 * of the input is made. */
#include <float.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "chan16.h"
#include "gemm/gemm.h"
#include "ops.h"
#include "spatial.h"
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#endif

enum { POOL_MAX, POOL_AVG };

typedef struct pool_attr {
  int kind, auto_pad;
  size_t n_kernel, n_strides, n_dilations, n_pads;
  int64_t kernel[3], strides[3], dilations[3], pads[6];
  bool ceil_mode, count_include_pad, col_major;
} pool_attr;

typedef struct pgeom {
  int64_t in[3], k[3], s[3], d[3], pb[3], pe[3], out[3];
  int64_t in_sz, out_sz;
} pgeom;


static mi_status *pool_init_common(mi_node *n, int kind) {
  pool_attr *a = calloc(1, sizeof *a);
  if (!a) return mi_node_error(n, MI_ERR_NO_MEMORY, "out of memory");
  n->priv = a;
  a->kind = kind;
  MI_TRY(mi_read_auto_pad(n, &a->auto_pad));
  MI_TRY(mi_read_spatial_ints(n, "kernel_shape", 3, a->kernel, &a->n_kernel, 1));
  if (!a->n_kernel) return mi_node_error(n, MI_ERR_INVALID_MODEL, "missing kernel_shape");
  MI_TRY(mi_read_spatial_ints(n, "strides", 3, a->strides, &a->n_strides, 1));
  MI_TRY(mi_read_spatial_ints(n, "dilations", 3, a->dilations, &a->n_dilations, 1));
  MI_TRY(mi_read_spatial_ints(n, "pads", 6, a->pads, &a->n_pads, 0));
  int64_t ceil_mode = mi_attr_int(n, "ceil_mode", 0);
  if (ceil_mode != 0 && ceil_mode != 1)
    return mi_node_error(n, MI_ERR_INVALID_MODEL, "ceil_mode must be 0 or 1");
  a->ceil_mode = ceil_mode == 1;
  a->count_include_pad = mi_attr_int(n, "count_include_pad", 0) != 0;
  int64_t so = mi_attr_int(n, "storage_order", 0);
  if (so != 0 && so != 1) return mi_node_error(n, MI_ERR_INVALID_MODEL, "storage_order must be 0 or 1");
  a->col_major = so == 1;
  size_t s = a->n_kernel;
  if ((a->n_strides && a->n_strides != s) || (a->n_dilations && a->n_dilations != s) ||
      (a->n_pads && a->n_pads != 2 * s))
    return mi_node_error(n, MI_ERR_INVALID_MODEL,
                         "strides/dilations/pads lengths do not match kernel_shape (%zu dims)", s);
  for (size_t i = 0; i < s && a->n_pads; i++)
    if (a->pads[i] >= (a->kernel[i] - 1) * (a->n_dilations ? a->dilations[i] : 1) + 1 ||
        a->pads[s + i] >= (a->kernel[i] - 1) * (a->n_dilations ? a->dilations[i] : 1) + 1)
      return mi_node_error(n, MI_ERR_INVALID_MODEL, "pads along dim %zu must be smaller than the kernel", i);
  return NULL;
}

static mi_status *maxpool_init(mi_node *n, mi_graph *g) { return pool_init_common(n, POOL_MAX); }
static mi_status *avgpool_init(mi_node *n, mi_graph *g) { return pool_init_common(n, POOL_AVG); }

static mi_status *pool_geom(const mi_node *n, const pool_attr *a, const mi_tensor *x, pgeom *g) {
  int s = (int)a->n_kernel, off = 3 - s;
  if (x->ndim != s + 2)
    return mi_node_error(n, MI_ERR_SHAPE, "X has %d dims but kernel_shape has %d spatial dims", x->ndim, s);
  for (int j = 0; j < 3; j++) {
    g->in[j] = g->k[j] = g->s[j] = g->d[j] = g->out[j] = 1;
    g->pb[j] = g->pe[j] = 0;
  }
  for (int i = 0; i < s; i++) {
    int j = off + i;
    int64_t in = x->dims[2 + i], k = a->kernel[i];
    int64_t st = a->n_strides ? a->strides[i] : 1, dl = a->n_dilations ? a->dilations[i] : 1;
    int64_t dk = (k - 1) * dl + 1, pb = 0, pe = 0, out;
    if (a->auto_pad == PAD_SAME_UPPER || a->auto_pad == PAD_SAME_LOWER) {
      out = (in + st - 1) / st;
      int64_t total = (out - 1) * st + dk - in;
      if (total < 0) total = 0;
      pb = a->auto_pad == PAD_SAME_UPPER ? total / 2 : total - total / 2;
      pe = total - pb;
    } else if (a->auto_pad == PAD_VALID) {
      out = in >= dk ? (in - dk) / st + 1 : 0;
    } else {
      if (a->n_pads) { pb = a->pads[i]; pe = a->pads[s + i]; }
      int64_t span = in + pb + pe - dk;
      if (span < 0) out = 0;
      else if (a->ceil_mode) {
        out = (span + st - 1) / st + 1;
        /* The last window must start inside the input or the begin padding. */
        if ((out - 1) * st >= in + pb) out--;
      } else {
        out = span / st + 1;
      }
    }
    if (out < 1)
      return mi_node_error(n, MI_ERR_SHAPE, "spatial dim %d: input %lld too small for dilated kernel %lld",
                           i, (long long)in, (long long)dk);
    g->in[j] = in; g->k[j] = k; g->s[j] = st; g->d[j] = dl; g->pb[j] = pb; g->pe[j] = pe; g->out[j] = out;
  }
  g->in_sz = g->in[0] * g->in[1] * g->in[2];
  if (!mi_spatial_volume(g->out, &g->out_sz))
    return mi_node_error(n, MI_ERR_SHAPE, "an output of %lld x %lld x %lld positions is too large",
                         (long long)g->out[0], (long long)g->out[1], (long long)g->out[2]);
  return NULL;
}

static mi_status *pool_infer(mi_node *n, mi_tensor *const *in, mi_tensor **out) {
  const pool_attr *a = n->priv;
  const mi_tensor *x = in[0];
  if (!x) return mi_node_error(n, MI_ERR_INVALID_MODEL, "missing input X");
  bool ok = x->dtype == MI_FLOAT || x->dtype == MI_DOUBLE ||
            (a->kind == POOL_MAX && (x->dtype == MI_UINT8 || x->dtype == MI_INT8));
  if (!ok) return mi_node_error(n, MI_ERR_UNSUPPORTED, "element type %s not supported", mi_dtype_name(x->dtype));
  pgeom g;
  MI_TRY(pool_geom(n, a, x, &g));
  int s = (int)a->n_kernel;
  int64_t dims[5] = {x->dims[0], x->dims[1]};
  for (int i = 0; i < s; i++) dims[2 + i] = g.out[3 - s + i];
  if (n->pre_affine && (x->dtype != MI_FLOAT || x->dims[1] != n->pre_channels))
    return mi_node_error(n, MI_ERR_SHAPE,
                         "X is %s with %lld channels; the BatchNormalization folded into this node takes float32 "
                         "with %lld", mi_dtype_name(x->dtype), (long long)x->dims[1], (long long)n->pre_channels);
  mi_tensor_set_shape(out[0], x->dtype, x->ndim, dims);
  if (n->n_out > 1 && n->out[1] >= 0 && out[1]) {
    if (a->kind != POOL_MAX) return mi_node_error(n, MI_ERR_INVALID_MODEL, "only MaxPool has a second output");
    mi_tensor_set_shape(out[1], MI_INT64, x->ndim, dims);
  }
  return NULL;
}

typedef struct pool_ctx {
  const pool_attr *a;
  const pgeom *g;
  const void *x;
  void *y;
  int64_t *idx; /* MaxPool Indices or NULL */
  const float *pre; /* the input prologue (mi_node.pre_affine; average pooling of floats) or NULL */
  int64_t pre_c;
  bool pre_relu;
} pool_ctx;


/* One kernel per element type; the window loops are shared. */
#define POOL_WINDOW_BEGIN(T)                                                            \
  const pgeom *g = c->g;                                                                \
  for (int64_t pl = b; pl < e; pl++) {                                                  \
    const T *xp = (const T *)c->x + pl * g->in_sz;                                      \
    T *yp = (T *)c->y + pl * g->out_sz;                                                 \
    int64_t oi = 0;                                                                     \
    for (int64_t oz = 0; oz < g->out[0]; oz++)                                          \
      for (int64_t oy = 0; oy < g->out[1]; oy++)                                        \
        for (int64_t ox = 0; ox < g->out[2]; ox++, oi++) {                              \
          int64_t sz = oz * g->s[0] - g->pb[0], sy = oy * g->s[1] - g->pb[1],           \
                  sx = ox * g->s[2] - g->pb[2];                                         \
          int64_t zl, zh, yl, yh, xl, xh;                                               \
          mi_valid_range(g->k[0], g->d[0], sz, g->in[0], &zl, &zh);                        \
          mi_valid_range(g->k[1], g->d[1], sy, g->in[1], &yl, &yh);                        \
          mi_valid_range(g->k[2], g->d[2], sx, g->in[2], &xl, &xh);

#define POOL_WINDOW_END \
  }                     \
  }

#define DEF_MAXPOOL(NAME, T, LOWEST)                                                        \
  static void NAME(void *vctx, int64_t b, int64_t e) {                                      \
    const pool_ctx *c = vctx;                                                               \
    const bool colmaj = c->a->col_major;                                                    \
    POOL_WINDOW_BEGIN(T)                                                                    \
    T best = LOWEST;                                                                        \
    int64_t bi = -1;                                                                        \
    for (int64_t kz = zl; kz < zh; kz++) {                                                  \
      int64_t iz = sz + kz * g->d[0];                                                       \
      for (int64_t ky = yl; ky < yh; ky++) {                                                \
        int64_t iy = sy + ky * g->d[1];                                                     \
        const T *row = xp + (iz * g->in[1] + iy) * g->in[2];                                \
        for (int64_t kx = xl; kx < xh; kx++) {                                              \
          int64_t ix = sx + kx * g->d[2];                                                   \
          if (bi < 0 || row[ix] > best) {                                                   \
            best = row[ix];                                                                 \
            bi = colmaj ? iz + (iy + ix * g->in[1]) * g->in[0]                              \
                        : (iz * g->in[1] + iy) * g->in[2] + ix;                             \
          }                                                                                 \
        }                                                                                   \
      }                                                                                     \
    }                                                                                       \
    yp[oi] = best;                                                                          \
    if (c->idx) c->idx[pl * g->out_sz + oi] = bi < 0 ? -1 : pl * g->in_sz + bi;             \
    POOL_WINDOW_END                                                                         \
  }

DEF_MAXPOOL(maxpool_f32, float, -FLT_MAX)
DEF_MAXPOOL(maxpool_f64, double, -DBL_MAX)
DEF_MAXPOOL(maxpool_u8, uint8_t, 0)
DEF_MAXPOOL(maxpool_i8, int8_t, INT8_MIN)

#define DEF_AVGPOOL(NAME, T)                                                                \
  static void NAME(void *vctx, int64_t b, int64_t e) {                                      \
    const pool_ctx *c = vctx;                                                               \
    const bool incl = c->a->count_include_pad;                                              \
    POOL_WINDOW_BEGIN(T)                                                                    \
    double sum = 0;                                                                         \
    for (int64_t kz = zl; kz < zh; kz++) {                                                  \
      int64_t iz = sz + kz * g->d[0];                                                       \
      for (int64_t ky = yl; ky < yh; ky++) {                                                \
        int64_t iy = sy + ky * g->d[1];                                                     \
        const T *row = xp + (iz * g->in[1] + iy) * g->in[2];                                \
        for (int64_t kx = xl; kx < xh; kx++) sum += row[sx + kx * g->d[2]];                 \
      }                                                                                     \
    }                                                                                       \
    int64_t cnt;                                                                            \
    if (incl) { /* taps inside the padded extent [-pb, in+pe) */                            \
      int64_t z0, z1, y0, y1, x0, x1;                                                       \
      mi_valid_range(g->k[0], g->d[0], sz + g->pb[0], g->in[0] + g->pb[0] + g->pe[0], &z0, &z1); \
      mi_valid_range(g->k[1], g->d[1], sy + g->pb[1], g->in[1] + g->pb[1] + g->pe[1], &y0, &y1); \
      mi_valid_range(g->k[2], g->d[2], sx + g->pb[2], g->in[2] + g->pb[2] + g->pe[2], &x0, &x1); \
      cnt = (z1 - z0) * (y1 - y0) * (x1 - x0);                                              \
    } else {                                                                                \
      cnt = (zh - zl) * (yh - yl) * (xh - xl);                                              \
    }                                                                                       \
    yp[oi] = cnt > 0 ? (T)(sum / (double)cnt) : (T)0;                                       \
    POOL_WINDOW_END                                                                         \
  }

DEF_AVGPOOL(avgpool_f32, float)
DEF_AVGPOOL(avgpool_f64, double)

/* NAME(ctx, b, e): BODY compiled for AVX-512 too, that build run where the
 * CPU's kernel level is AVX-512. */
#if defined(__x86_64__) && defined(__GNUC__)
#define POOL_ISA_DISPATCH(NAME, BODY)                                                               \
  __attribute__((target("avx512f"))) static void NAME##_avx512(void *vctx, int64_t b, int64_t e) { \
    BODY(vctx, b, e);                                                                               \
  }                                                                                                 \
  static void NAME(void *vctx, int64_t b, int64_t e) {                                              \
    if (mi_isa_level() == MI_ISA_AVX512) NAME##_avx512(vctx, b, e);                                  \
    else BODY(vctx, b, e);                                                                          \
  }
#else
#define POOL_ISA_DISPATCH(NAME, BODY) \
  static void NAME(void *vctx, int64_t b, int64_t e) { BODY(vctx, b, e); }
#endif

/* float32 without Indices: separable.  For each output row the valid window
 * rows are first reduced into one input-width row (contiguous, vectorised),
 * then each output takes its taps from that row.  Max gives what the window
 * loops above give; averages are summed in float (at most SEP_MAX_TAPS taps)
 * rather than double, so they may differ from those loops by a few ulp. */
#define SEP_MAX_WIDTH 4096
#define SEP_MAX_TAPS 64

static inline __attribute__((always_inline)) void pool_sep_body(void *vctx, int64_t b, int64_t e) {
  const pool_ctx *c = vctx;
  const pgeom *g = c->g;
  const bool is_max = c->a->kind == POOL_MAX, incl = c->a->count_include_pad;
  float t[SEP_MAX_WIDTH];
  for (int64_t pl = b; pl < e; pl++) {
    const int64_t ch = c->pre ? pl % c->pre_c : 0;
    const float sa = c->pre ? c->pre[ch] : 1.f, sb = c->pre ? c->pre[c->pre_c + ch] : 0.f;
    const float *xp = (const float *)c->x + pl * g->in_sz;
    float *yp = (float *)c->y + pl * g->out_sz;
    for (int64_t oz = 0; oz < g->out[0]; oz++)
      for (int64_t oy = 0; oy < g->out[1]; oy++) {
        const int64_t sz = oz * g->s[0] - g->pb[0], sy = oy * g->s[1] - g->pb[1];
        int64_t zl, zh, yl, yh;
        mi_valid_range(g->k[0], g->d[0], sz, g->in[0], &zl, &zh);
        mi_valid_range(g->k[1], g->d[1], sy, g->in[1], &yl, &yh);
        float *yrow = yp + (oz * g->out[1] + oy) * g->out[2];
        const int64_t W = g->in[2], rows = (zh - zl) * (yh - yl);
        if (rows > 0) {
          bool first = true;
          for (int64_t kz = zl; kz < zh; kz++)
            for (int64_t ky = yl; ky < yh; ky++) {
              const float *r = xp + ((sz + kz * g->d[0]) * g->in[1] + sy + ky * g->d[1]) * W;
              if (c->pre && first)
                for (int64_t i = 0; i < W; i++) t[i] = mi_prologue_value(r[i], sa, sb, c->pre_relu);
              else if (c->pre)
                for (int64_t i = 0; i < W; i++) t[i] += mi_prologue_value(r[i], sa, sb, c->pre_relu);
              else if (first) memcpy(t, r, (size_t)W * sizeof(float));
              else if (is_max)
                for (int64_t i = 0; i < W; i++) t[i] = r[i] > t[i] ? r[i] : t[i];
              else
                for (int64_t i = 0; i < W; i++) t[i] += r[i];
              first = false;
            }
        }
        int64_t zc = 0, yc = 0; /* count_include_pad: taps inside the padded extent */
        if (!is_max && incl) {
          int64_t z0, z1, y0, y1;
          mi_valid_range(g->k[0], g->d[0], sz + g->pb[0], g->in[0] + g->pb[0] + g->pe[0], &z0, &z1);
          mi_valid_range(g->k[1], g->d[1], sy + g->pb[1], g->in[1] + g->pb[1] + g->pe[1], &y0, &y1);
          zc = z1 - z0;
          yc = y1 - y0;
        }
        /* Outputs whose taps are all inside the row: no range per output
         * (its divisions cost more than the taps; a 3x3 average of 64
         * channels at 56x56, medians over runs alternating in one process:
         * 1.02 -> 0.76 ms); the sums in the general loop's order */
        const int64_t kx1 = (g->k[2] - 1) * g->d[2], s2 = g->s[2], d2 = g->d[2];
        int64_t in_lo = (g->pb[2] + s2 - 1) / s2, in_hi = W - 1 - kx1 + g->pb[2] >= 0 ? (W - 1 - kx1 + g->pb[2]) / s2 + 1 : 0;
        if (in_hi > g->out[2]) in_hi = g->out[2];
        if (rows == 0 || in_hi < in_lo) in_lo = in_hi = 0;
        const int64_t tb = -g->pb[2]; /* t[tb + x]: input column x (an index, not t - pb: that points before t) */
        const float n_taps = (float)((incl ? zc * yc : rows) * g->k[2]);
        if (!is_max && s2 == 2 && d2 == 1 && g->k[2] == 2)
          for (int64_t ox = in_lo; ox < in_hi; ox++) yrow[ox] = (t[tb + 2 * ox] + t[tb + 2 * ox + 1]) / n_taps;
        else if (!is_max)
          for (int64_t ox = in_lo; ox < in_hi; ox++) {
            const float *q = t + (tb + ox * s2);
            float sum = q[0];
            for (int64_t kx = d2; kx <= kx1; kx += d2) sum += q[kx];
            yrow[ox] = sum / n_taps;
          }
        else if (s2 == 2 && d2 == 1 && g->k[2] == 3)
          for (int64_t ox = in_lo; ox < in_hi; ox++) {
            float best = t[tb + 2 * ox]; /* the order of the general loop (NaN taps after the first lose) */
            best = t[tb + 2 * ox + 1] > best ? t[tb + 2 * ox + 1] : best;
            yrow[ox] = t[tb + 2 * ox + 2] > best ? t[tb + 2 * ox + 2] : best;
          }
        else if (s2 == 2 && d2 == 1 && g->k[2] == 2)
          for (int64_t ox = in_lo; ox < in_hi; ox++) {
            const float a = t[tb + 2 * ox], b = t[tb + 2 * ox + 1];
            yrow[ox] = b > a ? b : a;
          }
        else
          for (int64_t ox = in_lo; ox < in_hi; ox++) {
            const float *q = t + (tb + ox * s2);
            float best = q[0];
            for (int64_t kx = d2; kx <= kx1; kx += d2) best = q[kx] > best ? q[kx] : best;
            yrow[ox] = best;
          }
        for (int64_t ox = 0; ox < g->out[2]; ox++) {
          if (ox == in_lo && in_hi > in_lo) ox = in_hi;
          if (ox >= g->out[2]) break;
          const int64_t sx = ox * g->s[2] - g->pb[2];
          int64_t xl, xh;
          mi_valid_range(g->k[2], g->d[2], sx, W, &xl, &xh);
          if (is_max) {
            float best = -FLT_MAX;
            if (rows > 0 && xh > xl) {
              best = t[sx + xl * g->d[2]];
              for (int64_t kx = xl + 1; kx < xh; kx++) {
                const float v = t[sx + kx * g->d[2]];
                best = v > best ? v : best;
              }
            }
            yrow[ox] = best;
          } else {
            float sum = 0.f;
            if (rows > 0)
              for (int64_t kx = xl; kx < xh; kx++) sum += t[sx + kx * g->d[2]];
            int64_t cnt = rows * (xh - xl);
            if (incl) {
              int64_t x0, x1;
              mi_valid_range(g->k[2], g->d[2], sx + g->pb[2], W + g->pb[2] + g->pe[2], &x0, &x1);
              cnt = zc * yc * (x1 - x0);
            }
            yrow[ox] = cnt > 0 ? sum / (float)cnt : 0.f;
          }
        }
      }
  }
}

/* Average pooling in windows that tile the input (kernel = stride, no
 * padding or dilation, every window whole; DenseNet's 2x2 transitions): no
 * row buffer or window clipping, which on maps of 14 to 56 columns cost
 * more than the sums (DenseNet-121's three transition pools, with their
 * prologue, per-node minimums: 0.28 ms against 0.47 without it on half
 * the channels).  The input prologue, if any, on every value read; without
 * one, times 1 plus 0, which changes no value but a negative zero's sign. */
static bool pool_tiles(const pgeom *g) {
  for (int j = 0; j < 3; j++)
    if (g->k[j] != g->s[j] || g->d[j] != 1 || g->pb[j] || g->pe[j] || g->out[j] * g->k[j] > g->in[j]) return false;
  return true;
}

/* One plane; relu a constant in each instance, so the loops vectorise. */
static inline __attribute__((always_inline)) void avgpool_tiles_plane(const pgeom *g, const float *xp, float *yp,
                                                                      float sa, float sb, bool relu) {
  const int64_t H = g->in[1], W = g->in[2], kz = g->k[0], ky = g->k[1], kx = g->k[2];
  const float taps = (float)(kz * ky * kx);
  for (int64_t oz = 0; oz < g->out[0]; oz++)
    for (int64_t oy = 0; oy < g->out[1]; oy++) {
      const float *r0 = xp + (oz * kz * H + oy * ky) * W, *r1 = r0 + W;
      float *yrow = yp + (oz * g->out[1] + oy) * g->out[2];
      if (kz == 1 && ky == 2 && kx == 2)
        for (int64_t ox = 0; ox < g->out[2]; ox++)
          yrow[ox] = ((mi_prologue_value(r0[2 * ox], sa, sb, relu) +
                       mi_prologue_value(r1[2 * ox], sa, sb, relu)) +
                      (mi_prologue_value(r0[2 * ox + 1], sa, sb, relu) +
                       mi_prologue_value(r1[2 * ox + 1], sa, sb, relu))) /
                     taps;
      else
        for (int64_t ox = 0; ox < g->out[2]; ox++) {
          float sum = 0.f;
          for (int64_t z = 0; z < kz; z++)
            for (int64_t y = 0; y < ky; y++)
              for (int64_t x = 0; x < kx; x++)
                sum += mi_prologue_value(r0[(z * H + y) * W + ox * kx + x], sa, sb, relu);
          yrow[ox] = sum / taps;
        }
    }
}

static inline __attribute__((always_inline)) void avgpool_tiles_body(void *vctx, int64_t b, int64_t e) {
  const pool_ctx *c = vctx;
  const pgeom *g = c->g;
  for (int64_t pl = b; pl < e; pl++) {
    const int64_t ch = c->pre ? pl % c->pre_c : 0;
    const float sa = c->pre ? c->pre[ch] : 1.f, sb = c->pre ? c->pre[c->pre_c + ch] : 0.f;
    const float *xp = (const float *)c->x + pl * g->in_sz;
    float *yp = (float *)c->y + pl * g->out_sz;
    if (c->pre && c->pre_relu) avgpool_tiles_plane(g, xp, yp, sa, sb, true);
    else avgpool_tiles_plane(g, xp, yp, sa, sb, false);
  }
}

POOL_ISA_DISPATCH(avgpool_tiles, avgpool_tiles_body)

/* The same loops compiled for AVX-512: 16 floats at a time, the stride-2
 * taps by permutes (ResNet-50's 3x3 stride-2 max pooling, per-node minimum
 * over interleaved runs: 0.264 -> 0.225 ms). */
POOL_ISA_DISPATCH(pool_sep_f32, pool_sep_body)

#if defined(__x86_64__) && defined(__GNUC__)
/* ---- 2D max pooling on channel-blocked (NCHW16c) tensors -----------------
 * Between blocked convolutions (VGG's stages, a ResNet's stem pool before
 * its first stage): each position's 16 channels one vector, the window's
 * maximum a vector max per tap; the output blocked, or NCHW from blocked
 * input (a network's last pool before its classifier).  NCHW input to a
 * blocked output goes through the NCHW kernel and a blocked copy. */
typedef struct pool16_ctx {
  const pgeom *g;
  const float *x;
  float *y;
  bool out16;
} pool16_ctx;

/* Items: output rows of one image's channel block. */
__attribute__((target("avx512f"))) static void maxpool16_rows(void *vctx, int64_t b, int64_t e) {
  const pool16_ctx *c = vctx;
  const pgeom *g = c->g;
  const int64_t H = g->in[1], W = g->in[2], OH = g->out[1], OW = g->out[2];
  for (int64_t it = b; it < e; it++) {
    const int64_t plane = it / OH, oy = it % OH; /* plane: image n's block (n C / 16 + block) */
    const float *xb = c->x + plane * 16 * H * W;
    const int64_t sy = oy * g->s[1] - g->pb[1];
    int64_t yl, yh;
    mi_valid_range(g->k[1], g->d[1], sy, H, &yl, &yh);
    for (int64_t ox = 0; ox < OW; ox++) {
      const int64_t sx = ox * g->s[2] - g->pb[2];
      int64_t xl, xh;
      mi_valid_range(g->k[2], g->d[2], sx, W, &xl, &xh);
      /* as maxpool_f32: the first tap, then each one above it (a NaN first stays, later ones lose); an empty
       * window the lowest float */
      __m512 v = _mm512_set1_ps(-FLT_MAX);
      for (int64_t ky = yl; ky < yh; ky++) {
        const float *row = xb + (sy + ky * g->d[1]) * W * 16;
        for (int64_t kx = xl; kx < xh; kx++) {
          const __m512 t = _mm512_loadu_ps(row + (sx + kx * g->d[2]) * 16);
          v = ky == yl && kx == xl ? t : _mm512_max_ps(t, v); /* max_ps: the second operand where either is NaN */
        }
      }
      const int64_t o = oy * OW + ox;
      if (c->out16) {
        _mm512_storeu_ps(c->y + (plane * OH * OW + o) * 16, v);
      } else { /* channel 16 block + i of image n at (n C + 16 block + i) planes: plane * 16 + i */
        float t[16];
        _mm512_storeu_ps(t, v);
        for (int i = 0; i < 16; i++) c->y[(plane * 16 + i) * OH * OW + o] = t[i];
      }
    }
  }
}

#endif

/* MaxPool: 2D FP32 without Indices, whole blocks of 16 channels, on
 * AVX-512.  It gains nothing by the layout itself (MI_CHAN16_COPY): a value
 * between it and a layer that takes blocked tensors through copies (fast
 * mode's Winograd ones, around VGG's pools) stays NCHW. */
unsigned mi_maxpool_layouts(const mi_node *n, const mi_exec *ex, mi_tensor *const *in) {
  (void)ex;
#if defined(__x86_64__) && defined(__GNUC__)
  const mi_tensor *x = in[0];
  if (!x || x->dtype != MI_FLOAT || x->ndim != 4 || x->dims[1] % 16 || mi_isa_level() != MI_ISA_AVX512) return 0;
  if (n->n_out > 1 && n->out[1] >= 0) return 0;
  return MI_CHAN16_IN | MI_CHAN16_OUT | MI_CHAN16_COPY;
#else
  (void)n, (void)in;
  return 0;
#endif
}

static mi_status *pool_run(mi_node *n, mi_exec *ex, mi_tensor *const *in, mi_tensor **out) {
  const pool_attr *a = n->priv;
  const mi_tensor *x = in[0];
  pgeom g;
  MI_TRY(pool_geom(n, a, x, &g));
  if (x->chan16 || out[0]->chan16) { /* the plan's layouts (mi_maxpool_layouts) */
#if defined(__x86_64__) && defined(__GNUC__)
    const bool takes = mi_maxpool_layouts(n, ex, in) != 0;
    if (takes && x->chan16) {
      pool16_ctx c = {&g, x->data, out[0]->data, out[0]->chan16};
      mi_parallel_for(ex, x->dims[0] * x->dims[1] / 16 * g.out[1], 1, maxpool16_rows, &c);
      return NULL;
    }
    if (takes) { /* NCHW in, blocked out: through an NCHW copy */
      const int64_t planes = x->dims[0] * x->dims[1];
      float *yn = mi_exec_scratch(ex, (size_t)(planes * g.out_sz) * sizeof(float));
      if (!yn) return mi_node_error(n, MI_ERR_NO_MEMORY, "out of memory for the pooled copy");
      pool_ctx c = {a, &g, x->data, yn, NULL, NULL, 0, false};
      const bool sep = g.in[2] <= SEP_MAX_WIDTH && g.k[1] * g.k[2] <= SEP_MAX_TAPS;
      mi_parallel_for(ex, planes, 1, sep ? pool_sep_f32 : maxpool_f32, &c);
      mi_chan16_block_all(ex, yn, planes / 16, g.out_sz, NULL, false, out[0]->data);
      mi_exec_scratch_release(ex, yn);
      return NULL;
    }
#endif
    return mi_node_error(n, MI_ERR_INTERNAL, "planned for channel-blocked tensors that this layer cannot take");
  }
  int64_t planes = x->dims[0] * x->dims[1];
  int64_t *idx = n->n_out > 1 && n->out[1] >= 0 && out[1] ? out[1]->data : NULL;
  pool_ctx c = {a, &g, x->data, out[0]->data, idx, n->pre_affine, x->dims[1], n->pre_relu};
  mi_range_fn fn = NULL;
  if (a->kind == POOL_MAX) {
    switch (x->dtype) {
      case MI_FLOAT: fn = maxpool_f32; break;
      case MI_DOUBLE: fn = maxpool_f64; break;
      case MI_UINT8: fn = maxpool_u8; break;
      case MI_INT8: fn = maxpool_i8; break;
      default: break;
    }
  } else {
    if (x->dtype == MI_FLOAT) fn = avgpool_f32;
    else if (x->dtype == MI_DOUBLE) fn = avgpool_f64;
  }
  if (!fn) return mi_node_error(n, MI_ERR_UNSUPPORTED, "element type %s not supported", mi_dtype_name(x->dtype));
  if (x->dtype == MI_FLOAT && !idx && g.in[2] <= SEP_MAX_WIDTH && g.k[0] * g.k[1] * g.k[2] <= SEP_MAX_TAPS)
    fn = pool_sep_f32;
  if (x->dtype == MI_FLOAT && a->kind == POOL_AVG && pool_tiles(&g)) fn = avgpool_tiles;
  float *xp = NULL; /* the prologue applied to a copy, for the window loops */
  if (c.pre && fn != pool_sep_f32 && fn != avgpool_tiles) {
    if (!(xp = mi_exec_scratch(ex, (size_t)(planes * g.in_sz) * sizeof(float))))
      return mi_node_error(n, MI_ERR_NO_MEMORY, "out of memory for the normalised input");
    mi_prologue_planes(ex, x->data, xp, planes, g.in_sz, c.pre, c.pre_c, c.pre_relu);
    c.x = xp, c.pre = NULL;
  }
  int64_t work = g.out_sz * g.k[0] * g.k[1] * g.k[2];
  mi_parallel_for(ex, planes, work >= 8192 ? 1 : 8192 / (work > 0 ? work : 1), fn, &c);
  if (xp) mi_exec_scratch_release(ex, xp);
  return NULL;
}

void mi_maxpool_2x2_planes(mi_exec *ex, const float *x, float *y, int64_t planes, int64_t H, int64_t W) {
  const pool_attr a = {.kind = POOL_MAX, .n_kernel = 2, .n_strides = 2, .kernel = {2, 2}, .strides = {2, 2}};
  const pgeom g = {.in = {1, H, W}, .k = {1, 2, 2}, .s = {1, 2, 2}, .d = {1, 1, 1}, .out = {1, H / 2, W / 2},
                   .in_sz = H * W, .out_sz = (H / 2) * (W / 2)};
  pool_ctx c = {&a, &g, x, y, NULL, NULL, 0, false};
  mi_parallel_for(ex, planes, 1, W <= SEP_MAX_WIDTH ? pool_sep_f32 : maxpool_f32, &c);
}

/* ---- global pooling ----------------------------------------------------- */
static mi_status *gpool_infer(mi_node *n, mi_tensor *const *in, mi_tensor **out) {
  const mi_tensor *x = in[0];
  if (!x) return mi_node_error(n, MI_ERR_INVALID_MODEL, "missing input X");
  if (x->dtype != MI_FLOAT && x->dtype != MI_DOUBLE)
    return mi_node_error(n, MI_ERR_UNSUPPORTED, "element type %s not supported", mi_dtype_name(x->dtype));
  if (x->ndim < 3) return mi_node_error(n, MI_ERR_SHAPE, "X must be N x C x spatial, has %d dims", x->ndim);
  int64_t dims[MI_MAX_DIMS];
  for (int i = 0; i < x->ndim; i++) dims[i] = i < 2 ? x->dims[i] : 1;
  if (mi_numel(x->ndim - 2, x->dims + 2) == 0)
    return mi_node_error(n, MI_ERR_SHAPE, "empty spatial extent");
  mi_tensor_set_shape(out[0], x->dtype, x->ndim, dims);
  return NULL;
}

typedef struct gpool_ctx {
  const void *x;
  void *y;
  int64_t sp;
  bool is_max, is_double;
} gpool_ctx;

static void gpool_planes(void *vctx, int64_t b, int64_t e) {
  const gpool_ctx *c = vctx;
  for (int64_t pl = b; pl < e; pl++) {
    if (c->is_double) {
      const double *x = (const double *)c->x + pl * c->sp;
      double r = x[0];
      if (c->is_max) for (int64_t i = 1; i < c->sp; i++) r = x[i] > r ? x[i] : r;
      else { for (int64_t i = 1; i < c->sp; i++) r += x[i]; r /= (double)c->sp; }
      ((double *)c->y)[pl] = r;
    } else {
      const float *x = (const float *)c->x + pl * c->sp;
      if (c->is_max) {
        float r = x[0];
        for (int64_t i = 1; i < c->sp; i++) r = x[i] > r ? x[i] : r;
        ((float *)c->y)[pl] = r;
      } else {
        double r = 0; /* double accumulation: large volumes stay accurate */
        for (int64_t i = 0; i < c->sp; i++) r += x[i];
        ((float *)c->y)[pl] = (float)(r / (double)c->sp);
      }
    }
  }
}

static mi_status *gpool_run_kind(mi_node *n, mi_exec *ex, mi_tensor *const *in, mi_tensor **out, bool is_max) {
  const mi_tensor *x = in[0];
  gpool_ctx c = {x->data, out[0]->data, mi_numel(x->ndim - 2, x->dims + 2), is_max, x->dtype == MI_DOUBLE};
  int64_t planes = x->dims[0] * x->dims[1];
  mi_parallel_for(ex, planes, c.sp >= 8192 ? 1 : 8192 / c.sp, gpool_planes, &c);
  return NULL;
}
static mi_status *gavg_run(mi_node *n, mi_exec *ex, mi_tensor *const *in, mi_tensor **out) {
  return gpool_run_kind(n, ex, in, out, false);
}
static mi_status *gmax_run(mi_node *n, mi_exec *ex, mi_tensor *const *in, mi_tensor **out) {
  return gpool_run_kind(n, ex, in, out, true);
}

const mi_op_def mi_ops_pool[] = {
    {"MaxPool", 1, MI_OP_CHAN16, maxpool_init, pool_infer, pool_run, NULL},
    {"AveragePool", 1, 0, avgpool_init, pool_infer, pool_run, NULL},
    {"GlobalAveragePool", 1, 0, NULL, gpool_infer, gavg_run, NULL},
    {"GlobalMaxPool", 1, 0, NULL, gpool_infer, gmax_run, NULL},
    {NULL},
};
