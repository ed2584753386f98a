/* Data-movement operators on the GPU: copies (Reshape, Flatten, Squeeze,
 * Unsqueeze, Identity, Dropout), Transpose, Concat, Split, Slice, Expand,
 * Tile, Pad, DepthToSpace, SpaceToDepth, Gather, Cast/CastLike, Shape, Size,
 * ConstantOfShape, Range.  Most are one strided copy (mi_cuda_strided_copy);
 * parameters that decide shapes (slice starts, pads, axes) are known while
 * planning and read from the host values (hin). */
#include <string.h>
#include <type_traits>

#include "cuda_common.h"

static int64_t get_i64(const mi_tensor *t, int64_t i) { return mi_tensor_get_i64(t, i); }

static mi_status *copy_run(mi_node *n, mi_cuda_ctx *cx, mi_tensor *const *in, const mi_tensor *const *hin,
                           mi_tensor **out) {
  size_t bytes = mi_tensor_nbytes(out[0]);
  if (bytes && in[0]->data != out[0]->data)
    CU_TRY(n, cudaMemcpyAsync(out[0]->data, in[0]->data, bytes, cudaMemcpyDeviceToDevice, cx->stream));
  if (!strcmp(n->op_type, "Dropout") && n->n_out > 1 && out[1] && mi_tensor_nbytes(out[1]))
    CU_TRY(n, cudaMemsetAsync(out[1]->data, 1, mi_tensor_nbytes(out[1]), cx->stream)); /* mask: all kept */
  return NULL;
}

static mi_status *transpose_run(mi_node *n, mi_cuda_ctx *cx, mi_tensor *const *in, const mi_tensor *const *hin,
                                mi_tensor **out) {
  const mi_tensor *x = in[0];
  int r = x->ndim;
  const int64_t *perm;
  size_t np = mi_attr_ints(n, "perm", &perm);
  int64_t st[MI_MAX_DIMS];
  mi_cuda_contig_strides(r, x->dims, st);
  mi_cuda_shape sh;
  sh.ndim = r;
  for (int d = 0; d < r; d++) {
    int64_t p = np ? perm[d] : r - 1 - d;
    if (p < 0) p += r;
    sh.dims[d] = x->dims[p];
    sh.strides[d] = st[p];
  }
  return mi_cuda_strided_copy(cx, n, x->data, 0, out[0]->data, 0, NULL, &sh, mi_dtype_size(x->dtype));
}

static int norm_axis(int64_t a, int r) { return (int)(a < 0 ? a + r : a); }

static mi_status *concat_run(mi_node *n, mi_cuda_ctx *cx, mi_tensor *const *in, const mi_tensor *const *hin,
                             mi_tensor **out) {
  mi_tensor *y = out[0];
  int r = y->ndim, ax = norm_axis(mi_attr_int(n, "axis", 0), r);
  if (ax < 0 || ax >= r) return mi_node_error(n, MI_ERR_INVALID_MODEL, "axis outside rank %d", r);
  int64_t ost[MI_MAX_DIMS];
  mi_cuda_contig_strides(r, y->dims, ost);
  size_t es = mi_dtype_size(y->dtype);
  int64_t off = 0;
  for (int i = 0; i < n->n_in; i++) {
    const mi_tensor *x = in[i];
    if (!x) continue;
    mi_cuda_shape sh;
    sh.ndim = r;
    memcpy(sh.dims, x->dims, sizeof(int64_t) * (size_t)r);
    mi_cuda_contig_strides(r, x->dims, sh.strides);
    /* an input the plan placed at its spot in the output (plan.c) is there already */
    const bool in_place = mi_numel(ax, y->dims) == 1 && (const char *)x->data == (const char *)y->data + off * ost[ax] * es;
    if (!in_place) MI_TRY(mi_cuda_strided_copy(cx, n, x->data, 0, y->data, off * ost[ax], ost, &sh, es));
    off += x->dims[ax];
  }
  return NULL;
}

static mi_status *split_run(mi_node *n, mi_cuda_ctx *cx, mi_tensor *const *in, const mi_tensor *const *hin,
                            mi_tensor **out) {
  const mi_tensor *x = in[0];
  int r = x->ndim, ax = norm_axis(mi_attr_int(n, "axis", 0), r);
  if (ax < 0 || ax >= r) return mi_node_error(n, MI_ERR_INVALID_MODEL, "axis outside rank %d", r);
  int64_t st[MI_MAX_DIMS];
  mi_cuda_contig_strides(r, x->dims, st);
  size_t es = mi_dtype_size(x->dtype);
  int64_t off = 0;
  for (int i = 0; i < n->n_out; i++) {
    mi_tensor *y = out[i];
    mi_cuda_shape sh;
    sh.ndim = r;
    memcpy(sh.dims, y->dims, sizeof(int64_t) * (size_t)r);
    memcpy(sh.strides, st, sizeof(int64_t) * (size_t)r);
    MI_TRY(mi_cuda_strided_copy(cx, n, x->data, off * st[ax], y->data, 0, NULL, &sh, es));
    off += y->dims[ax];
  }
  return NULL;
}

/* Slice: same clamping as ops/shape.c, from host values of the inputs. */
static mi_status *read_list(const mi_node *n, const mi_tensor *h, const char *what, int64_t *dst, int64_t *cnt) {
  if (!h || !h->data)
    return mi_node_error(n, MI_ERR_UNSUPPORTED, "CUDA %s needs '%s' known while planning", n->op_type, what);
  int64_t c = mi_numel(h->ndim, h->dims);
  if (c > MI_MAX_DIMS * 2) return mi_node_error(n, MI_ERR_INVALID_MODEL, "too many %s", what);
  for (int64_t i = 0; i < c; i++) dst[i] = get_i64(h, i);
  *cnt = c;
  return NULL;
}

static mi_status *slice_run(mi_node *n, mi_cuda_ctx *cx, mi_tensor *const *in, const mi_tensor *const *hin,
                            mi_tensor **out) {
  const mi_tensor *x = in[0];
  int r = x->ndim;
  int64_t starts[2 * MI_MAX_DIMS], ends[2 * MI_MAX_DIMS], axes[2 * MI_MAX_DIMS], steps[2 * MI_MAX_DIMS];
  int64_t ns = 0, ne = 0, na = -1, nst = -1;
  if (n->opset < 10) {
    const int64_t *v;
    size_t c = mi_attr_ints(n, "starts", &v);
    for (size_t i = 0; i < c && i < MI_MAX_DIMS; i++) starts[i] = v[i];
    ns = (int64_t)c;
    c = mi_attr_ints(n, "ends", &v);
    for (size_t i = 0; i < c && i < MI_MAX_DIMS; i++) ends[i] = v[i];
    ne = (int64_t)c;
    if (mi_node_attr(n, "axes")) {
      c = mi_attr_ints(n, "axes", &v);
      for (size_t i = 0; i < c && i < MI_MAX_DIMS; i++) axes[i] = v[i];
      na = (int64_t)c;
    }
  } else {
    MI_TRY(read_list(n, hin[1], "starts", starts, &ns));
    MI_TRY(read_list(n, hin[2], "ends", ends, &ne));
    if (n->n_in > 3 && in[3]) MI_TRY(read_list(n, hin[3], "axes", axes, &na));
    if (n->n_in > 4 && in[4]) MI_TRY(read_list(n, hin[4], "steps", steps, &nst));
  }
  if (ns != ne || ns > MI_MAX_DIMS) return mi_node_error(n, MI_ERR_INVALID_MODEL, "starts/ends counts differ");
  int64_t xst[MI_MAX_DIMS], start[MI_MAX_DIMS], step[MI_MAX_DIMS];
  mi_cuda_contig_strides(r, x->dims, xst);
  for (int d = 0; d < r; d++) {
    start[d] = 0;
    step[d] = 1;
  }
  for (int64_t i = 0; i < ns; i++) {
    int64_t a = na >= 0 ? axes[i] : i;
    if (a < 0) a += r;
    if (a < 0 || a >= r) return mi_node_error(n, MI_ERR_INVALID_MODEL, "axis outside the input");
    int64_t stp = nst >= 0 ? steps[i] : 1;
    if (stp == 0) return mi_node_error(n, MI_ERR_INVALID_MODEL, "step 0");
    int64_t d = x->dims[a], s = starts[i], e = ends[i];
    if (s < 0) s = s < -d ? -d - 1 : s, s += d;
    if (e < 0) e = e < -d ? -d - 1 : e, e += d;
    int64_t cnt;
    if (stp > 0) {
      s = s < 0 ? 0 : (s > d ? d : s);
      e = e < 0 ? 0 : (e > d ? d : e);
      cnt = e > s ? (e - s + stp - 1) / stp : 0;
    } else {
      s = s < 0 ? -1 : (s > d - 1 ? d - 1 : s);
      e = e < -1 ? -1 : (e > d - 1 ? d - 1 : e);
      cnt = s > e ? (s - e + (-stp) - 1) / (-stp) : 0;
    }
    start[a] = cnt ? s : 0;
    step[a] = stp;
  }
  mi_cuda_shape sh;
  sh.ndim = r;
  int64_t off = 0;
  for (int d = 0; d < r; d++) {
    sh.dims[d] = out[0]->dims[d];
    sh.strides[d] = step[d] * xst[d];
    off += start[d] * xst[d];
  }
  return mi_cuda_strided_copy(cx, n, x->data, off, out[0]->data, 0, NULL, &sh, mi_dtype_size(x->dtype));
}

static mi_status *expand_run(mi_node *n, mi_cuda_ctx *cx, mi_tensor *const *in, const mi_tensor *const *hin,
                             mi_tensor **out) {
  mi_tensor *y = out[0];
  mi_cuda_shape sh;
  sh.ndim = y->ndim;
  memcpy(sh.dims, y->dims, sizeof(int64_t) * (size_t)y->ndim);
  mi_cuda_bcast_strides(in[0], y->ndim, y->dims, sh.strides);
  return mi_cuda_strided_copy(cx, n, in[0]->data, 0, y->data, 0, NULL, &sh, mi_dtype_size(y->dtype));
}

/* Tile: view the output as [r0, d0, r1, d1, ...] with stride 0 on the
 * repeat axes. */
static mi_status *tile_run(mi_node *n, mi_cuda_ctx *cx, mi_tensor *const *in, const mi_tensor *const *hin,
                           mi_tensor **out) {
  const mi_tensor *x = in[0];
  int r = x->ndim;
  if (2 * r > MI_MAX_DIMS) {
    /* Rank above 4: tile one axis at a time is not needed by our models. */
    return mi_node_error(n, MI_ERR_UNSUPPORTED, "CUDA Tile handles rank <= %d", MI_MAX_DIMS / 2);
  }
  int64_t st[MI_MAX_DIMS];
  mi_cuda_contig_strides(r, x->dims, st);
  mi_cuda_shape sh;
  sh.ndim = 2 * r;
  for (int d = 0; d < r; d++) {
    sh.dims[2 * d] = x->dims[d] ? out[0]->dims[d] / x->dims[d] : 0;
    sh.strides[2 * d] = 0;
    sh.dims[2 * d + 1] = x->dims[d];
    sh.strides[2 * d + 1] = st[d];
  }
  return mi_cuda_strided_copy(cx, n, x->data, 0, out[0]->data, 0, NULL, &sh, mi_dtype_size(x->dtype));
}

static mi_status *d2s_run(mi_node *n, mi_cuda_ctx *cx, mi_tensor *const *in, const mi_tensor *const *hin,
                          mi_tensor **out) {
  const int64_t *d = in[0]->dims;
  int64_t b = mi_attr_int(n, "blocksize", 0);
  if (b < 1 || in[0]->ndim != 4) return mi_node_error(n, MI_ERR_INVALID_MODEL, "bad blocksize or rank");
  mi_cuda_shape sh;
  sh.ndim = 6;
  if (!strcmp(n->op_type, "DepthToSpace")) {
    int64_t C = d[1] / (b * b), H = d[2], W = d[3], HW = H * W;
    int64_t s_b1, s_b2, s_c;
    if (!strcmp(mi_attr_string(n, "mode", "DCR"), "CRD")) s_c = b * b * HW, s_b1 = b * HW, s_b2 = HW;
    else s_b1 = b * C * HW, s_b2 = C * HW, s_c = HW;
    int64_t dims[6] = {d[0], C, H, b, W, b}, sstr[6] = {d[1] * HW, s_c, W, s_b1, 1, s_b2};
    memcpy(sh.dims, dims, sizeof dims);
    memcpy(sh.strides, sstr, sizeof sstr);
  } else {
    int64_t H = d[2], W = d[3];
    int64_t dims[6] = {d[0], b, b, d[1], H / b, W / b}, sstr[6] = {d[1] * H * W, W, 1, H * W, b * W, b};
    memcpy(sh.dims, dims, sizeof dims);
    memcpy(sh.strides, sstr, sizeof sstr);
  }
  return mi_cuda_strided_copy(cx, n, in[0]->data, 0, out[0]->data, 0, NULL, &sh, mi_dtype_size(in[0]->dtype));
}

/* ---- Pad ------------------------------------------------------------------------ */
enum { PM_CONSTANT, PM_REFLECT, PM_EDGE, PM_WRAP };

typedef struct pad_geom {
  int nd, mode;
  int64_t odims[MI_MAX_DIMS], idims[MI_MAX_DIMS], istr[MI_MAX_DIMS], pb[MI_MAX_DIMS];
} pad_geom;

template <typename T>
__global__ void k_pad(const T *x, T *y, pad_geom g, int64_t total, T cval) {
  CU_LOOP(i, total) {
    int64_t r = i, src = 0;
    bool inside = true;
    for (int d = g.nd - 1; d >= 0; d--) {
      int64_t o = r % g.odims[d];
      r /= g.odims[d];
      int64_t k = o - g.pb[d], dd = g.idims[d];
      if (k < 0 || k >= dd) {
        if (g.mode == PM_CONSTANT) { inside = false; break; }
        if (g.mode == PM_EDGE) k = k < 0 ? 0 : dd - 1;
        else if (g.mode == PM_WRAP) k = ((k % dd) + dd) % dd;
        else if (dd == 1) k = 0;
        else {
          int64_t period = 2 * (dd - 1);
          k = ((k % period) + period) % period;
          if (k >= dd) k = period - k;
        }
      }
      src += k * g.istr[d];
    }
    y[i] = inside ? x[src] : cval;
  }
}

static mi_status *pad_run(mi_node *n, mi_cuda_ctx *cx, mi_tensor *const *in, const mi_tensor *const *hin,
                          mi_tensor **out) {
  const mi_tensor *x = in[0];
  mi_tensor *y = out[0];
  int r = x->ndim;
  const char *ms = mi_attr_string(n, "mode", "constant");
  pad_geom g;
  g.mode = !strcmp(ms, "reflect") ? PM_REFLECT : !strcmp(ms, "edge") ? PM_EDGE : !strcmp(ms, "wrap") ? PM_WRAP : PM_CONSTANT;
  int64_t raw[2 * MI_MAX_DIMS], np = 0, axes[2 * MI_MAX_DIMS], na = -1;
  double cval = 0;
  if (n->opset < 11) {
    const int64_t *v;
    size_t c = mi_attr_ints(n, n->opset < 2 ? "paddings" : "pads", &v);
    if (c == 0 && n->opset < 2) c = mi_attr_ints(n, "pads", &v);
    for (size_t i = 0; i < c && i < 2 * MI_MAX_DIMS; i++) raw[i] = v[i];
    np = (int64_t)c;
    cval = mi_attr_float(n, "value", 0.f);
  } else {
    MI_TRY(read_list(n, hin[1], "pads", raw, &np));
    if (n->n_in > 2 && in[2]) {
      if (!hin[2] || !hin[2]->data)
        return mi_node_error(n, MI_ERR_UNSUPPORTED, "CUDA Pad needs constant_value known while planning");
      if (mi_numel(hin[2]->ndim, hin[2]->dims) > 0) cval = mi_tensor_get_f64(hin[2], 0);
    }
    if (n->n_in > 3 && in[3]) MI_TRY(read_list(n, hin[3], "axes", axes, &na));
  }
  int64_t k = na >= 0 ? na : r;
  if (np != 2 * k) return mi_node_error(n, MI_ERR_INVALID_MODEL, "%lld pads for %lld axes", (long long)np, (long long)k);
  g.nd = r;
  for (int d = 0; d < r; d++) g.pb[d] = 0;
  for (int64_t i = 0; i < k; i++) {
    int64_t a = na >= 0 ? axes[i] : i;
    if (a < 0) a += r;
    if (a < 0 || a >= r) return mi_node_error(n, MI_ERR_INVALID_MODEL, "axis outside the input");
    g.pb[a] = raw[i];
  }
  memcpy(g.odims, y->dims, sizeof(int64_t) * (size_t)r);
  memcpy(g.idims, x->dims, sizeof(int64_t) * (size_t)r);
  mi_cuda_contig_strides(r, x->dims, g.istr);
  int64_t total = mi_numel(r, y->dims);
  if (!total) return NULL;
  if (r == 0) {
    g.nd = 1;
    g.odims[0] = g.idims[0] = 1;
    g.istr[0] = 0;
    g.pb[0] = 0;
  }
  unsigned gr = mi_cuda_grid(total, 256);
  switch (x->dtype) {
    case MI_FLOAT: k_pad<float><<<gr, 256, 0, cx->stream>>>((const float *)x->data, (float *)y->data, g, total, (float)cval); break;
    case MI_DOUBLE: k_pad<double><<<gr, 256, 0, cx->stream>>>((const double *)x->data, (double *)y->data, g, total, cval); break;
    case MI_INT32: k_pad<int32_t><<<gr, 256, 0, cx->stream>>>((const int32_t *)x->data, (int32_t *)y->data, g, total, (int32_t)cval); break;
    case MI_INT64: k_pad<int64_t><<<gr, 256, 0, cx->stream>>>((const int64_t *)x->data, (int64_t *)y->data, g, total, (int64_t)cval); break;
    case MI_UINT8: case MI_BOOL: k_pad<uint8_t><<<gr, 256, 0, cx->stream>>>((const uint8_t *)x->data, (uint8_t *)y->data, g, total, (uint8_t)cval); break;
    case MI_INT8: k_pad<int8_t><<<gr, 256, 0, cx->stream>>>((const int8_t *)x->data, (int8_t *)y->data, g, total, (int8_t)cval); break;
    default: return mi_node_error(n, MI_ERR_UNSUPPORTED, "element type %s is not supported on CUDA", mi_dtype_name(x->dtype));
  }
  CU_LAUNCHED(n);
  return NULL;
}

/* ---- Gather ---------------------------------------------------------------------- */
template <typename T>
__global__ void k_gather(const T *x, const void *idx, int idx64, T *y, int64_t outer, int64_t nidx, int64_t inner,
                         int64_t dim, int64_t total) {
  CU_LOOP(i, total) {
    int64_t in = i % inner, r = i / inner, j = r % nidx, o = r / nidx;
    int64_t v = idx64 ? ((const int64_t *)idx)[j] : (int64_t)((const int32_t *)idx)[j];
    if (v < 0) v += dim;
    if (v < 0 || v >= dim) v = 0; /* checked on the host when the indices are known */
    y[i] = x[(o * dim + v) * inner + in];
  }
}

static mi_status *gather_run(mi_node *n, mi_cuda_ctx *cx, mi_tensor *const *in, const mi_tensor *const *hin,
                             mi_tensor **out) {
  const mi_tensor *x = in[0], *ix = in[1];
  int r = x->ndim, ax = norm_axis(mi_attr_int(n, "axis", 0), r);
  if (ax < 0 || ax >= r) return mi_node_error(n, MI_ERR_INVALID_MODEL, "axis outside rank %d", r);
  if (ix->dtype != MI_INT64 && ix->dtype != MI_INT32)
    return mi_node_error(n, MI_ERR_UNSUPPORTED, "indices must be int32 or int64");
  int64_t dim = x->dims[ax], nidx = mi_numel(ix->ndim, ix->dims);
  if (hin[1] && hin[1]->data)
    for (int64_t j = 0; j < nidx; j++) {
      int64_t v = get_i64(hin[1], j);
      if (v < -dim || v >= dim)
        return mi_node_error(n, MI_ERR_INVALID_MODEL, "index %lld outside [-%lld, %lld)", (long long)v,
                             (long long)dim, (long long)dim);
    }
  int64_t outer = mi_numel(ax, x->dims), inner = mi_numel(r - ax - 1, x->dims + ax + 1);
  int64_t total = outer * nidx * inner;
  if (!total) return NULL;
  unsigned g = mi_cuda_grid(total, 256);
  int i64 = ix->dtype == MI_INT64;
  switch (mi_dtype_size(x->dtype)) {
    case 1: k_gather<uint8_t><<<g, 256, 0, cx->stream>>>((const uint8_t *)x->data, ix->data, i64, (uint8_t *)out[0]->data, outer, nidx, inner, dim, total); break;
    case 2: k_gather<uint16_t><<<g, 256, 0, cx->stream>>>((const uint16_t *)x->data, ix->data, i64, (uint16_t *)out[0]->data, outer, nidx, inner, dim, total); break;
    case 4: k_gather<uint32_t><<<g, 256, 0, cx->stream>>>((const uint32_t *)x->data, ix->data, i64, (uint32_t *)out[0]->data, outer, nidx, inner, dim, total); break;
    case 8: k_gather<uint64_t><<<g, 256, 0, cx->stream>>>((const uint64_t *)x->data, ix->data, i64, (uint64_t *)out[0]->data, outer, nidx, inner, dim, total); break;
    default: return mi_node_error(n, MI_ERR_UNSUPPORTED, "element type not supported");
  }
  CU_LAUNCHED(n);
  return NULL;
}

/* GatherElements: out[i] = x[i with its axis coordinate replaced by idx[i]]. */
template <typename T>
__global__ void k_gather_el(const T *x, const void *idx, int idx64, T *y, mi_cuda_shape ish, int ax,
                            int64_t xdim, int64_t xstride_ax, mi_cuda_shape xst, int64_t total) {
  CU_LOOP(i, total) {
    int64_t r = i, src = 0;
    for (int d = ish.ndim - 1; d >= 0; d--) {
      int64_t c = r % ish.dims[d];
      r /= ish.dims[d];
      if (d != ax) src += c * xst.strides[d];
    }
    int64_t v = idx64 ? ((const int64_t *)idx)[i] : (int64_t)((const int32_t *)idx)[i];
    if (v < 0) v += xdim;
    if (v < 0 || v >= xdim) v = 0;
    y[i] = x[src + v * xstride_ax];
  }
}

static mi_status *gather_el_run(mi_node *n, mi_cuda_ctx *cx, mi_tensor *const *in, const mi_tensor *const *hin,
                                mi_tensor **out) {
  const mi_tensor *x = in[0], *ix = in[1];
  int r = x->ndim, ax = norm_axis(mi_attr_int(n, "axis", 0), r);
  if (ax < 0 || ax >= r || ix->ndim != r) return mi_node_error(n, MI_ERR_INVALID_MODEL, "bad axis or indices rank");
  if (ix->dtype != MI_INT64 && ix->dtype != MI_INT32)
    return mi_node_error(n, MI_ERR_UNSUPPORTED, "indices must be int32 or int64");
  int64_t total = mi_numel(ix->ndim, ix->dims);
  if (!total) return NULL;
  if (hin[1] && hin[1]->data)
    for (int64_t j = 0; j < total; j++) {
      int64_t v = get_i64(hin[1], j);
      if (v < -x->dims[ax] || v >= x->dims[ax]) return mi_node_error(n, MI_ERR_INVALID_MODEL, "index out of range");
    }
  mi_cuda_shape ish, xst;
  ish.ndim = xst.ndim = r;
  memcpy(ish.dims, ix->dims, sizeof(int64_t) * (size_t)r);
  mi_cuda_contig_strides(r, x->dims, xst.strides);
  unsigned g = mi_cuda_grid(total, 256);
  int i64 = ix->dtype == MI_INT64;
  switch (mi_dtype_size(x->dtype)) {
#define X(S, T) case S: k_gather_el<T><<<g, 256, 0, cx->stream>>>((const T *)x->data, ix->data, i64, (T *)out[0]->data, ish, ax, x->dims[ax], xst.strides[ax], xst, total); break;
    X(1, uint8_t) X(2, uint16_t) X(4, uint32_t) X(8, uint64_t)
#undef X
    default: return mi_node_error(n, MI_ERR_UNSUPPORTED, "element type not supported");
  }
  CU_LAUNCHED(n);
  return NULL;
}

/* ---- Cast -------------------------------------------------------------------------- */
template <typename S, typename D>
__global__ void k_cast(const S *x, D *y, int64_t total) {
  CU_LOOP(i, total) {
    if constexpr (std::is_same<D, bool>::value) y[i] = x[i] != (S)0;
    else y[i] = (D)x[i];
  }
}

template <typename S>
static mi_status *cast_from(const mi_node *n, mi_cuda_ctx *cx, const S *x, void *y, mi_dtype to, int64_t total) {
  unsigned g = mi_cuda_grid(total, 256);
  switch (to) {
#define X(DT, T) case DT: k_cast<S, T><<<g, 256, 0, cx->stream>>>(x, (T *)y, total); break;
    X(MI_FLOAT, float) X(MI_DOUBLE, double) X(MI_INT8, int8_t) X(MI_INT16, int16_t) X(MI_INT32, int32_t)
    X(MI_INT64, int64_t) X(MI_UINT8, uint8_t) X(MI_UINT16, uint16_t) X(MI_UINT32, uint32_t) X(MI_UINT64, uint64_t)
    X(MI_BOOL, bool)
#undef X
    default: return mi_node_error(n, MI_ERR_UNSUPPORTED, "Cast to %s is not supported on CUDA", mi_dtype_name(to));
  }
  CU_LAUNCHED(n);
  return NULL;
}

static mi_status *cast_run(mi_node *n, mi_cuda_ctx *cx, mi_tensor *const *in, const mi_tensor *const *hin,
                           mi_tensor **out) {
  const mi_tensor *x = in[0];
  mi_dtype to = out[0]->dtype;
  int64_t total = mi_numel(x->ndim, x->dims);
  if (!total) return NULL;
  if (to == x->dtype) {
    CU_TRY(n, cudaMemcpyAsync(out[0]->data, x->data, mi_tensor_nbytes(x), cudaMemcpyDeviceToDevice, cx->stream));
    return NULL;
  }
  switch (x->dtype) {
#define X(DT, T) case DT: return cast_from<T>(n, cx, (const T *)x->data, out[0]->data, to, total);
    X(MI_FLOAT, float) X(MI_DOUBLE, double) X(MI_INT8, int8_t) X(MI_INT16, int16_t) X(MI_INT32, int32_t)
    X(MI_INT64, int64_t) X(MI_UINT8, uint8_t) X(MI_UINT16, uint16_t) X(MI_UINT32, uint32_t) X(MI_UINT64, uint64_t)
    X(MI_BOOL, bool)
#undef X
    default: return mi_node_error(n, MI_ERR_UNSUPPORTED, "Cast from %s is not supported on CUDA", mi_dtype_name(x->dtype));
  }
}

/* ---- values computed from shapes or parameters ------------------------------------- */
static mi_status *shape_run(mi_node *n, mi_cuda_ctx *cx, mi_tensor *const *in, const mi_tensor *const *hin,
                            mi_tensor **out) {
  /* Usually folded while planning; when not, the values come from the host shape. */
  const mi_tensor *x = in[0];
  int64_t vals[MI_MAX_DIMS + 1];
  int64_t cnt = mi_numel(out[0]->ndim, out[0]->dims);
  if (!strcmp(n->op_type, "Size")) {
    vals[0] = mi_numel(x->ndim, x->dims);
  } else {
    int64_t s = mi_attr_int(n, "start", 0), r = x->ndim;
    if (s < 0) s += r;
    if (s < 0) s = 0;
    for (int64_t i = 0; i < cnt && s + i < r; i++) vals[i] = x->dims[s + i];
  }
  CU_TRY(n, cudaMemcpyAsync(out[0]->data, vals, sizeof(int64_t) * (size_t)cnt, cudaMemcpyHostToDevice, cx->stream));
  CU_TRY(n, cudaStreamSynchronize(cx->stream)); /* vals lives on this stack */
  return NULL;
}

template <typename T>
__global__ void k_fill(T *y, int64_t total, T v) {
  CU_LOOP(i, total) y[i] = v;
}

static mi_status *cos_run(mi_node *n, mi_cuda_ctx *cx, mi_tensor *const *in, const mi_tensor *const *hin,
                          mi_tensor **out) {
  const mi_attr *a = mi_node_attr(n, "value");
  mi_tensor *y = out[0];
  int64_t total = mi_numel(y->ndim, y->dims);
  if (!total) return NULL;
  size_t es = mi_dtype_size(y->dtype);
  unsigned char v[8] = {0};
  if (a && a->t && mi_tensor_nbytes(a->t) >= es) memcpy(v, a->t->data, es);
  unsigned g = mi_cuda_grid(total, 256);
  switch (es) {
    case 1: k_fill<uint8_t><<<g, 256, 0, cx->stream>>>((uint8_t *)y->data, total, *(uint8_t *)v); break;
    case 2: k_fill<uint16_t><<<g, 256, 0, cx->stream>>>((uint16_t *)y->data, total, *(uint16_t *)v); break;
    case 4: k_fill<uint32_t><<<g, 256, 0, cx->stream>>>((uint32_t *)y->data, total, *(uint32_t *)v); break;
    case 8: k_fill<uint64_t><<<g, 256, 0, cx->stream>>>((uint64_t *)y->data, total, *(uint64_t *)v); break;
    default: return mi_node_error(n, MI_ERR_UNSUPPORTED, "element type not supported");
  }
  CU_LAUNCHED(n);
  return NULL;
}

template <typename T>
__global__ void k_range(T *y, int64_t total, double start, double delta) {
  CU_LOOP(i, total) y[i] = (T)(start + (double)i * delta);
}

static mi_status *range_run(mi_node *n, mi_cuda_ctx *cx, mi_tensor *const *in, const mi_tensor *const *hin,
                            mi_tensor **out) {
  if (!hin[0] || !hin[0]->data || !hin[2] || !hin[2]->data)
    return mi_node_error(n, MI_ERR_UNSUPPORTED, "CUDA Range needs start and delta known while planning");
  mi_tensor *y = out[0];
  int64_t total = mi_numel(y->ndim, y->dims);
  if (!total) return NULL;
  unsigned g = mi_cuda_grid(total, 256);
  double s = mi_tensor_get_f64(hin[0], 0), d = mi_tensor_get_f64(hin[2], 0);
  switch (y->dtype) {
    case MI_FLOAT: k_range<float><<<g, 256, 0, cx->stream>>>((float *)y->data, total, s, d); break;
    case MI_DOUBLE: k_range<double><<<g, 256, 0, cx->stream>>>((double *)y->data, total, s, d); break;
    case MI_INT32: k_range<int32_t><<<g, 256, 0, cx->stream>>>((int32_t *)y->data, total, s, d); break;
    case MI_INT64: k_range<int64_t><<<g, 256, 0, cx->stream>>>((int64_t *)y->data, total, s, d); break;
    case MI_INT16: k_range<int16_t><<<g, 256, 0, cx->stream>>>((int16_t *)y->data, total, s, d); break;
    default: return mi_node_error(n, MI_ERR_UNSUPPORTED, "element type not supported");
  }
  CU_LAUNCHED(n);
  return NULL;
}

extern const mi_cuda_op mi_cuda_ops_shape[] = {
    {"Reshape", copy_run}, {"Flatten", copy_run}, {"Squeeze", copy_run}, {"Unsqueeze", copy_run},
    {"Identity", copy_run}, {"Dropout", copy_run}, {"Transpose", transpose_run}, {"Concat", concat_run},
    {"Split", split_run}, {"Slice", slice_run}, {"Expand", expand_run}, {"Tile", tile_run},
    {"DepthToSpace", d2s_run}, {"SpaceToDepth", d2s_run}, {"Pad", pad_run}, {"Gather", gather_run},
    {"GatherElements", gather_el_run},
    {"Cast", cast_run}, {"CastLike", cast_run}, {"Shape", shape_run}, {"Size", shape_run},
    {"ConstantOfShape", cos_run}, {"Range", range_run},
    {NULL, NULL},
};
