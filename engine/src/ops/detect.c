/* Detection operators: TopK, NonMaxSuppression, RoiAlign.  Their arithmetic
 * follows the reference kernels (torchvision's CPU kernels, which ONNX
 * Runtime's agree with) operation for operation in float, so boxes kept by
 * NMS and pooled features match PyTorch's bit for bit in the common case. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "shape_util.h"

/* ---- TopK -------------------------------------------------------------- */

/* long double holds every int64 and every float exactly, so one key type
 * orders all supported element types. */
typedef struct {
  long double v;
  int64_t i;
} topk_item;

/* NaN ranks above every number (as in PyTorch); equal values keep index order. */
static int cmp_desc(const void *a, const void *b) {
  const topk_item *x = a, *y = b;
  bool xn = isnan(x->v), yn = isnan(y->v);
  if (xn != yn) return xn ? -1 : 1;
  if (!xn && x->v != y->v) return x->v > y->v ? -1 : 1;
  return x->i < y->i ? -1 : x->i > y->i;
}

static int cmp_asc(const void *a, const void *b) {
  const topk_item *x = a, *y = b;
  bool xn = isnan(x->v), yn = isnan(y->v);
  if (xn != yn) return xn ? 1 : -1;
  if (!xn && x->v != y->v) return x->v < y->v ? -1 : 1;
  return x->i < y->i ? -1 : x->i > y->i;
}

static mi_status *topk_k(mi_node *n, mi_tensor *const *in, int64_t *k) {
  if (n->opset < 10) {
    const mi_attr *a = mi_node_attr(n, "k");
    if (!a || a->type != MI_ATTR_INT) return mi_node_error(n, MI_ERR_INVALID_MODEL, "missing attribute 'k'");
    *k = a->i;
  } else {
    if (n->n_in < 2 || !in[1]) return mi_node_error(n, MI_ERR_INVALID_MODEL, "missing input 'K'");
    int64_t cnt = 0;
    MI_TRY(shp_read_ints(n, in[1], "K", k, 1, &cnt));
    if (cnt != 1) return mi_node_error(n, MI_ERR_INVALID_MODEL, "'K' must hold one value");
  }
  if (*k < 0) return mi_node_error(n, MI_ERR_INVALID_ARGUMENT, "k = %lld is negative", (long long)*k);
  return NULL;
}

static mi_status *topk_infer(mi_node *n, mi_tensor *const *in, mi_tensor **out) {
  int r = in[0]->ndim, axis;
  if (r < 1) return mi_node_error(n, MI_ERR_SHAPE, "input must have rank >= 1");
  mi_dtype t = in[0]->dtype;
  if (t != MI_FLOAT && t != MI_DOUBLE && t != MI_INT32 && t != MI_INT64 && t != MI_UINT8 && t != MI_INT8 &&
      t != MI_INT16 && t != MI_UINT16 && t != MI_UINT32)
    return mi_node_error(n, MI_ERR_UNSUPPORTED, "TopK of %s", mi_dtype_name(t));
  if (n->n_out != 2) return mi_node_error(n, MI_ERR_INVALID_MODEL, "TopK has two outputs");
  MI_TRY(shp_axis(n, mi_attr_int(n, "axis", -1), r, &axis));
  int64_t k;
  MI_TRY(topk_k(n, in, &k));
  if (k > in[0]->dims[axis])
    return mi_node_error(n, MI_ERR_INVALID_ARGUMENT, "k = %lld exceeds the axis length %lld", (long long)k,
                         (long long)in[0]->dims[axis]);
  int64_t dims[MI_MAX_DIMS];
  memcpy(dims, in[0]->dims, sizeof(int64_t) * (size_t)r);
  dims[axis] = k;
  mi_tensor_set_shape(out[0], t, r, dims);
  mi_tensor_set_shape(out[1], MI_INT64, r, dims);
  return NULL;
}

static long double get_ld(const mi_tensor *t, int64_t i) {
  switch (t->dtype) {
    case MI_FLOAT: return ((const float *)t->data)[i];
    case MI_DOUBLE: return ((const double *)t->data)[i];
    case MI_UINT32: return ((const uint32_t *)t->data)[i];
    default: return (long double)mi_tensor_get_i64(t, i);
  }
}

static mi_status *topk_run(mi_node *n, mi_exec *ex, mi_tensor *const *in, mi_tensor **out) {
  int r = in[0]->ndim, axis;
  MI_TRY(shp_axis(n, mi_attr_int(n, "axis", -1), r, &axis));
  int64_t k = out[0]->dims[axis], len = in[0]->dims[axis];
  int64_t outer = mi_numel(axis, in[0]->dims), inner = mi_numel(r - axis - 1, in[0]->dims + axis + 1);
  if (k == 0 || outer == 0 || inner == 0) return NULL;
  bool largest = mi_attr_int(n, "largest", 1) != 0;
  topk_item *items = mi_exec_scratch(ex, sizeof(topk_item) * (size_t)len);
  if (!items) return mi_node_error(n, MI_ERR_NO_MEMORY, "out of memory");
  size_t es = mi_dtype_size(in[0]->dtype);
  int64_t *idx = out[1]->data;
  for (int64_t o = 0; o < outer; o++)
    for (int64_t j = 0; j < inner; j++) {
      int64_t base = o * len * inner + j;
      for (int64_t i = 0; i < len; i++) {
        items[i].v = get_ld(in[0], base + i * inner);
        items[i].i = i;
      }
      /* The output is sorted whatever `sorted` says: any order is allowed then. */
      qsort(items, (size_t)len, sizeof *items, largest ? cmp_desc : cmp_asc);
      int64_t obase = o * k * inner + j;
      for (int64_t i = 0; i < k; i++) {
        int64_t src = base + items[i].i * inner, dst = obase + i * inner;
        memcpy((char *)out[0]->data + (size_t)dst * es, (const char *)in[0]->data + (size_t)src * es, es);
        idx[dst] = items[i].i;
      }
    }
  mi_exec_scratch_release(ex, items);
  return NULL;
}

/* ---- NonMaxSuppression --------------------------------------------------- */

typedef struct {
  float score;
  int64_t i;
} nms_cand;

static int cmp_cand(const void *a, const void *b) {
  const nms_cand *x = a, *y = b;
  if (x->score != y->score) return x->score > y->score ? -1 : 1;
  return x->i < y->i ? -1 : x->i > y->i;
}

static mi_status *nms_init(mi_node *n, mi_graph *g) {
  (void)g;
  int64_t c = mi_attr_int(n, "center_point_box", 0);
  if (c != 0 && c != 1)
    return mi_node_error(n, MI_ERR_INVALID_MODEL, "center_point_box must be 0 or 1, got %lld", (long long)c);
  if (n->n_in < 2 || n->n_out != 1) return mi_node_error(n, MI_ERR_INVALID_MODEL, "needs boxes and scores, one output");
  return NULL;
}

/* Corners as (y1, x1, y2, x2) with y1 <= y2 and x1 <= x2. */
static void nms_corners(const float *b, bool center, float *c) {
  if (center) {
    c[0] = b[1] - b[3] / 2.0f;
    c[1] = b[0] - b[2] / 2.0f;
    c[2] = b[1] + b[3] / 2.0f;
    c[3] = b[0] + b[2] / 2.0f;
  } else {
    c[0] = fminf(b[0], b[2]);
    c[1] = fminf(b[1], b[3]);
    c[2] = fmaxf(b[0], b[2]);
    c[3] = fmaxf(b[1], b[3]);
  }
}

static bool nms_suppresses(const float *a, const float *b, float thr) {
  float area_a = (a[2] - a[0]) * (a[3] - a[1]), area_b = (b[2] - b[0]) * (b[3] - b[1]);
  float h = fmaxf(0.0f, fminf(a[2], b[2]) - fmaxf(a[0], b[0]));
  float w = fmaxf(0.0f, fminf(a[3], b[3]) - fmaxf(a[1], b[1]));
  float inter = w * h;
  float iou = inter / (area_a + area_b - inter);
  return iou > thr; /* NaN (two empty boxes) suppresses nothing */
}

static mi_status *scalar_opt(const mi_node *n, mi_tensor *const *in, int i, const char *what, double *v, bool *has) {
  *has = false;
  if (n->n_in <= i || !in[i]) return NULL;
  if (mi_numel(in[i]->ndim, in[i]->dims) == 0) return NULL;
  if (mi_numel(in[i]->ndim, in[i]->dims) != 1)
    return mi_node_error(n, MI_ERR_INVALID_MODEL, "'%s' must hold one value", what);
  *v = mi_tensor_get_f64(in[i], 0);
  *has = true;
  return NULL;
}

static mi_status *nms_run(mi_node *n, mi_exec *ex, mi_tensor *const *in, mi_tensor **out) {
  const mi_tensor *bx = in[0], *sc = in[1];
  if (!bx || !sc || bx->dtype != MI_FLOAT || sc->dtype != MI_FLOAT)
    return mi_node_error(n, MI_ERR_UNSUPPORTED, "boxes and scores must be float");
  if (bx->ndim != 3 || bx->dims[2] != 4 || sc->ndim != 3 || sc->dims[0] != bx->dims[0] || sc->dims[2] != bx->dims[1])
    return mi_node_error(n, MI_ERR_SHAPE, "boxes must be [B, N, 4] and scores [B, C, N]");
  double max_out_d = 0, iou_thr = 0, score_thr = 0;
  bool has_max, has_iou, has_score;
  MI_TRY(scalar_opt(n, in, 2, "max_output_boxes_per_class", &max_out_d, &has_max));
  MI_TRY(scalar_opt(n, in, 3, "iou_threshold", &iou_thr, &has_iou));
  MI_TRY(scalar_opt(n, in, 4, "score_threshold", &score_thr, &has_score));
  int64_t max_out = has_max && n->in[2] >= 0 ? mi_tensor_get_i64(in[2], 0) : 0;
  if (max_out < 0) max_out = 0;
  if (has_iou && (iou_thr < 0 || iou_thr > 1))
    return mi_node_error(n, MI_ERR_INVALID_ARGUMENT, "iou_threshold %g outside [0, 1]", iou_thr);
  int64_t B = bx->dims[0], N = bx->dims[1], C = sc->dims[1];
  bool center = mi_attr_int(n, "center_point_box", 0) == 1;
  float thr = (float)iou_thr, sthr = (float)score_thr;
  int64_t per_class = max_out < N ? max_out : N;
  /* Room for every selection: at most min(max_out, N) per (batch, class). */
  int64_t cap = B * C * per_class;
  nms_cand *cand = mi_exec_scratch(ex, sizeof(nms_cand) * (size_t)(N + 1));
  float *corner = mi_exec_scratch(ex, sizeof(float) * 4 * (size_t)(N + 1));
  int64_t *kept = mi_exec_scratch(ex, sizeof(int64_t) * (size_t)(N + 1));
  int64_t *sel = mi_exec_scratch(ex, sizeof(int64_t) * 3 * (size_t)(cap + 1));
  mi_status *st = NULL;
  if (!cand || !corner || !kept || !sel) st = mi_node_error(n, MI_ERR_NO_MEMORY, "out of memory");
  int64_t count = 0;
  for (int64_t b = 0; b < B && !st && per_class > 0; b++) {
    const float *boxes = (const float *)bx->data + b * N * 4;
    for (int64_t i = 0; i < N; i++) nms_corners(boxes + i * 4, center, corner + i * 4);
    for (int64_t c = 0; c < C; c++) {
      const float *s = (const float *)sc->data + (b * C + c) * N;
      int64_t nc = 0;
      for (int64_t i = 0; i < N; i++)
        if (!has_score || s[i] > sthr) cand[nc++] = (nms_cand){s[i], i};
      qsort(cand, (size_t)nc, sizeof *cand, cmp_cand);
      int64_t nk = 0;
      for (int64_t j = 0; j < nc && nk < per_class; j++) {
        const float *box = corner + cand[j].i * 4;
        bool keep = true;
        for (int64_t q = 0; q < nk && keep; q++) keep = !nms_suppresses(corner + kept[q] * 4, box, thr);
        if (!keep) continue;
        kept[nk++] = cand[j].i;
        sel[count * 3] = b;
        sel[count * 3 + 1] = c;
        sel[count * 3 + 2] = cand[j].i;
        count++;
      }
    }
  }
  if (!st) {
    int64_t dims[2] = {count, 3};
    mi_tensor_set_shape(out[0], MI_INT64, 2, dims);
    st = mi_tensor_alloc(out[0], ex->max_tensor_bytes);
    if (st) st = mi_error_prefix(st, "node '%s' (%s)", n->name, n->op_type);
    else if (count) memcpy(out[0]->data, sel, sizeof(int64_t) * 3 * (size_t)count);
  }
  if (sel) mi_exec_scratch_release(ex, sel);
  if (kept) mi_exec_scratch_release(ex, kept);
  if (corner) mi_exec_scratch_release(ex, corner);
  if (cand) mi_exec_scratch_release(ex, cand);
  return st;
}

/* ---- RoiAlign ------------------------------------------------------------ */

typedef struct {
  bool max_mode, half_pixel;
  int64_t oh, ow, sampling;
  float scale;
} roialign_attrs;

static mi_status *roialign_init(mi_node *n, mi_graph *g) {
  (void)g;
  roialign_attrs a;
  const char *mode = mi_attr_string(n, "mode", "avg");
  if (strcmp(mode, "avg") && strcmp(mode, "max"))
    return mi_node_error(n, MI_ERR_UNSUPPORTED, "mode '%s' (avg or max)", mode);
  a.max_mode = strcmp(mode, "max") == 0;
  /* Opset 10 had no attribute and behaved as output_half_pixel. */
  const char *ctm = mi_attr_string(n, "coordinate_transformation_mode", n->opset >= 16 ? "half_pixel" : "output_half_pixel");
  if (strcmp(ctm, "half_pixel") && strcmp(ctm, "output_half_pixel"))
    return mi_node_error(n, MI_ERR_UNSUPPORTED, "coordinate_transformation_mode '%s'", ctm);
  a.half_pixel = strcmp(ctm, "half_pixel") == 0;
  a.oh = mi_attr_int(n, "output_height", 1);
  a.ow = mi_attr_int(n, "output_width", 1);
  a.sampling = mi_attr_int(n, "sampling_ratio", 0);
  a.scale = mi_attr_float(n, "spatial_scale", 1.0f);
  if (a.oh < 1 || a.ow < 1 || a.oh > 4096 || a.ow > 4096 || a.sampling < 0 || a.sampling > 4096 || !isfinite(a.scale))
    return mi_node_error(n, MI_ERR_INVALID_MODEL, "invalid output size, sampling_ratio or spatial_scale");
  if (n->n_in != 3 || n->n_out != 1) return mi_node_error(n, MI_ERR_INVALID_MODEL, "needs X, rois, batch_indices");
  roialign_attrs *p = malloc(sizeof *p);
  if (!p) return mi_node_error(n, MI_ERR_NO_MEMORY, "out of memory");
  *p = a;
  n->priv = p;
  return NULL;
}

static mi_status *roialign_infer(mi_node *n, mi_tensor *const *in, mi_tensor **out) {
  const roialign_attrs *a = n->priv;
  if (!in[0] || !in[1] || !in[2]) return mi_node_error(n, MI_ERR_INVALID_MODEL, "missing input");
  if (in[0]->dtype != MI_FLOAT || in[1]->dtype != MI_FLOAT)
    return mi_node_error(n, MI_ERR_UNSUPPORTED, "X and rois must be float");
  if (in[2]->dtype != MI_INT64 && in[2]->dtype != MI_INT32)
    return mi_node_error(n, MI_ERR_INVALID_MODEL, "batch_indices must be int64");
  if (in[0]->ndim != 4 || in[1]->ndim != 2 || in[1]->dims[1] != 4 || in[2]->ndim != 1 ||
      in[2]->dims[0] != in[1]->dims[0])
    return mi_node_error(n, MI_ERR_SHAPE, "X must be [N, C, H, W], rois [R, 4], batch_indices [R]");
  int64_t dims[4] = {in[1]->dims[0], in[0]->dims[1], a->oh, a->ow};
  mi_tensor_set_shape(out[0], MI_FLOAT, 4, dims);
  return NULL;
}

typedef struct {
  const roialign_attrs *a;
  const float *x, *rois;
  const mi_tensor *bidx;
  float *y;
  int64_t C, H, W;
} roialign_ctx;

/* Bilinear sample at (y, x): four positions and weights, zero outside. */
static void bilinear(float y, float x, int64_t H, int64_t W, int64_t pos[4], float w[4]) {
  if (!(y >= -1.0f && y <= (float)H && x >= -1.0f && x <= (float)W)) { /* outside, or NaN */
    pos[0] = pos[1] = pos[2] = pos[3] = 0;
    w[0] = w[1] = w[2] = w[3] = 0;
    return;
  }
  if (y <= 0) y = 0;
  if (x <= 0) x = 0;
  int64_t yl = (int64_t)y, xl = (int64_t)x, yh, xh;
  if (yl >= H - 1) {
    yh = yl = H - 1;
    y = (float)yl;
  } else {
    yh = yl + 1;
  }
  if (xl >= W - 1) {
    xh = xl = W - 1;
    x = (float)xl;
  } else {
    xh = xl + 1;
  }
  float ly = y - (float)yl, lx = x - (float)xl, hy = 1.0f - ly, hx = 1.0f - lx;
  pos[0] = yl * W + xl;
  pos[1] = yl * W + xh;
  pos[2] = yh * W + xl;
  pos[3] = yh * W + xh;
  w[0] = hy * hx;
  w[1] = hy * lx;
  w[2] = ly * hx;
  w[3] = ly * lx;
}

static void roialign_range(void *p, int64_t b, int64_t e) {
  const roialign_ctx *c = p;
  const roialign_attrs *a = c->a;
  int64_t bins = a->oh * a->ow;
  for (int64_t r = b; r < e; r++) {
    const float *roi = c->rois + r * 4;
    const float *img = c->x + mi_tensor_get_i64(c->bidx, r) * c->C * c->H * c->W;
    float *y = c->y + r * c->C * bins;
    float off = a->half_pixel ? 0.5f : 0.0f;
    float sw = roi[0] * a->scale - off, sh = roi[1] * a->scale - off;
    float ew = roi[2] * a->scale - off, eh = roi[3] * a->scale - off;
    float rw = ew - sw, rh = eh - sh;
    if (!a->half_pixel) { /* legacy: rois at least one pixel */
      rw = fmaxf(rw, 1.0f);
      rh = fmaxf(rh, 1.0f);
    }
    float bh = rh / (float)a->oh, bw = rw / (float)a->ow;
    /* Adaptive grids: NaN or absurd rois get no samples rather than an
     * undefined float-to-int conversion or an endless loop. */
    float fgh = ceilf(rh / (float)a->oh), fgw = ceilf(rw / (float)a->ow);
    int64_t gh = a->sampling > 0 ? a->sampling : (fgh >= 0 && fgh <= 4096 ? (int64_t)fgh : 0);
    int64_t gw = a->sampling > 0 ? a->sampling : (fgw >= 0 && fgw <= 4096 ? (int64_t)fgw : 0);
    float count = (float)(gh * gw > 1 ? gh * gw : 1);
    for (int64_t ph = 0; ph < a->oh; ph++)
      for (int64_t pw = 0; pw < a->ow; pw++) {
        float *yo = y + ph * a->ow + pw;
        for (int64_t ch = 0; ch < c->C; ch++) yo[ch * bins] = 0;
        bool first = true;
        for (int64_t iy = 0; iy < gh; iy++) {
          float yy = sh + (float)ph * bh + ((float)iy + 0.5f) * bh / (float)gh;
          for (int64_t ix = 0; ix < gw; ix++) {
            float xx = sw + (float)pw * bw + ((float)ix + 0.5f) * bw / (float)gw;
            int64_t pos[4];
            float w[4];
            bilinear(yy, xx, c->H, c->W, pos, w);
            for (int64_t ch = 0; ch < c->C; ch++) {
              const float *v = img + ch * c->H * c->W;
              if (!a->max_mode) {
                yo[ch * bins] += w[0] * v[pos[0]] + w[1] * v[pos[1]] + w[2] * v[pos[2]] + w[3] * v[pos[3]];
              } else {
                float m = fmaxf(fmaxf(fmaxf(w[0] * v[pos[0]], w[1] * v[pos[1]]), w[2] * v[pos[2]]), w[3] * v[pos[3]]);
                yo[ch * bins] = first ? m : fmaxf(yo[ch * bins], m);
              }
            }
            first = false;
          }
        }
        if (!a->max_mode)
          for (int64_t ch = 0; ch < c->C; ch++) yo[ch * bins] /= count;
      }
  }
}

static mi_status *roialign_run(mi_node *n, mi_exec *ex, mi_tensor *const *in, mi_tensor **out) {
  int64_t R = in[1]->dims[0], N = in[0]->dims[0];
  for (int64_t r = 0; r < R; r++) {
    int64_t b = mi_tensor_get_i64(in[2], r);
    if (b < 0 || b >= N)
      return mi_node_error(n, MI_ERR_INVALID_ARGUMENT, "batch index %lld outside [0, %lld)", (long long)b, (long long)N);
  }
  if (in[0]->dims[2] == 0 || in[0]->dims[3] == 0) {
    memset(out[0]->data, 0, mi_tensor_nbytes(out[0]));
    return NULL;
  }
  roialign_ctx c = {n->priv, in[0]->data, in[1]->data, in[2], out[0]->data, in[0]->dims[1], in[0]->dims[2],
                    in[0]->dims[3]};
  if (R) mi_parallel_for(ex, R, 1, roialign_range, &c);
  return NULL;
}

/* ---- NonZero ------------------------------------------------------------- */

static mi_status *nonzero_run(mi_node *n, mi_exec *ex, mi_tensor *const *in, mi_tensor **out) {
  const mi_tensor *x = in[0];
  if (!x) return mi_node_error(n, MI_ERR_INVALID_MODEL, "missing input");
  if (!mi_dtype_size(x->dtype)) return mi_node_error(n, MI_ERR_UNSUPPORTED, "NonZero of %s", mi_dtype_name(x->dtype));
  int r = x->ndim > 0 ? x->ndim : 1; /* a scalar counts as one element of a vector */
  int64_t total = mi_numel(x->ndim, x->dims), nnz = 0;
  for (int64_t i = 0; i < total; i++) nnz += mi_tensor_get_f64(x, i) != 0;
  int64_t dims[2] = {r, nnz};
  mi_tensor_set_shape(out[0], MI_INT64, 2, dims);
  mi_status *st = mi_tensor_alloc(out[0], ex->max_tensor_bytes);
  if (st) return mi_error_prefix(st, "node '%s' (%s)", n->name, n->op_type);
  int64_t *o = out[0]->data, j = 0;
  for (int64_t i = 0; i < total; i++) {
    if (mi_tensor_get_f64(x, i) == 0) continue;
    int64_t rem = i;
    for (int d = x->ndim - 1; d >= 0; d--) {
      o[d * nnz + j] = rem % x->dims[d];
      rem /= x->dims[d];
    }
    if (x->ndim == 0) o[j] = 0;
    j++;
  }
  return NULL;
}

const mi_op_def mi_ops_detect[] = {
    {"TopK", 1, 0, NULL, topk_infer, topk_run, NULL},
    {"NonMaxSuppression", 10, MI_OP_DYNAMIC, nms_init, NULL, nms_run, NULL},
    {"RoiAlign", 10, 0, roialign_init, roialign_infer, roialign_run, NULL},
    {"NonZero", 9, MI_OP_DYNAMIC, NULL, NULL, nonzero_run, NULL},
    {NULL},
};
