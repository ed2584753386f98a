/* Conv and ConvTranspose (1D/2D/3D, float); ConvInteger (uint8/int8 -> int32).
 *
 * Both are lowered to GEMM per group:
 *   Conv:          Y_g[Mg, P]      = W_g[Mg, Cg*k] * col[Cg*k, P]   (im2col)
 *   ConvTranspose: col[Mg*k, P]    = W_g^T[Mg*k, Cg] * X_g[Cg, P]   (col2im)
 * The column buffer only ever holds a tile of P spatial positions so that a
 * large 3D volume never materialises its full im2col matrix (COL_BUDGET).
 * Spatial geometry is normalised to 3 dims (leading dims of size 1), so one
 * code path serves 1D, 2D and 3D.  OpenBLAS threads the GEMM itself; the
 * im2col/col2im/epilogue loops are split with mi_parallel_for. */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "chan16.h"
#include "conv_winograd.h"
#include "gemm/convt.h"
#include "gemm/dconv.h"
#include "gemm/gemm.h"
#include "medinfer/hugepages.h"
#include "ops.h"
#include "spatial.h"

#define COL_BUDGET ((int64_t)32 << 20) /* bytes of column buffer per tile    */
#define OUT_BLOCK ((int64_t)4 << 20)   /* output bytes per tile: epilogue hot */


typedef struct conv_attr {
  int auto_pad;
  int64_t group;
  size_t n_kernel, n_strides, n_dilations, n_pads, n_out_pad, n_out_shape;
  int64_t kernel[3], strides[3], dilations[3], pads[6], out_pad[3], out_shape[5];
  bool transpose;
  /* Conv with constant weights: each group's W_g packed once at load for
   * the SGEMM (NULL: W is packed per call).  Used only while in[1] is still
   * the tensor they were packed from. */
  mi_gemm_packed_a **wpack;
  const float *wsrc;
  int64_t wM, wK;
#ifdef MI_GEMM_X86
  mi_dconv_bf16_weights wbf; /* bf16 mode: packed at its first run */
  mi_dconv_bf16_weights wstem; /* bf16 mode, a stride-2 stem in column pairs (conv_stem_pairs): the same */
  mi_dconv_amx_weights wamx; /* bf16 mode on AMX: the same */
  mi_dconv_cv_weights wcv;   /* small maps: made at the first call that takes the path, then replacing wpack */
  mi_dconv_cv_weights wcvbf; /* the same in bf16 mode (channel pairs), besides wpack */
  float *wct;                /* ConvTranspose's constant weights for gemm/convt.h, packed at load */
  const float *wct_src;      /* ... from this tensor's data, of wct_len floats */
  int64_t wct_len;
  int32_t *toff;             /* direct kernels: the last call's tap offsets, and what they depend on */
  int64_t toff_key[8];
#endif
  /* Fast mode, a 3x3 layer: Winograd weights from wpack, made at the
   * first call that takes the path (layers too small for it never do). */
  bool wino_ok;
  mi_wino_weights *wino;
} conv_attr;

/* Geometry normalised to 3 spatial dims (z, y, x). */
typedef struct geom {
  int64_t in[3], k[3], s[3], d[3], pb[3], out[3];
  int64_t in_sz, out_sz, k_sz;
} geom;

/* Whether w (M x K per output channel) is still the tensor the layer packed
 * its weights from at load, and some packed form of them is held. */
static bool own_weights(const conv_attr *a, const float *w, int64_t M, int64_t K) {
#ifdef MI_GEMM_X86
  const bool has_cv = a->wcv.data != NULL;
#else
  const bool has_cv = false;
#endif
  return (a->wpack || a->wino || has_cv) && w == a->wsrc && M == a->wM && K == a->wK;
}

/* A Winograd call's geometry (its tensors unset): N images of the layer's. */
static mi_wino_conv wino_call(const geom *g, int64_t N) {
  return (mi_wino_conv){.N = N,         .D = g->in[0],  .H = g->in[1],  .W = g->in[2],  .Do = g->out[0],
                        .Ho = g->out[1], .Wo = g->out[2], .pz = g->pb[0], .py = g->pb[1], .px = g->pb[2],
                        .dy = g->d[1],  .dx = g->d[2]};
}

static int64_t clamp64(int64_t v, int64_t lo, int64_t hi) { return v < lo ? lo : (v > hi ? hi : v); }

static mi_status *conv_init_common(mi_node *n, bool transpose) {
  conv_attr *a = calloc(1, sizeof *a);
  if (!a) return mi_node_error(n, MI_ERR_NO_MEMORY, "out of memory");
  n->priv = a;
  a->transpose = transpose;
  MI_TRY(mi_read_auto_pad(n, &a->auto_pad));
  a->group = mi_attr_int(n, "group", 1);
  if (a->group < 1) return mi_node_error(n, MI_ERR_INVALID_MODEL, "group %lld must be >= 1", (long long)a->group);
  MI_TRY(mi_read_spatial_ints(n, "kernel_shape", 3, a->kernel, &a->n_kernel, 1));
  MI_TRY(mi_read_spatial_ints(n, "strides", 3, a->strides, &a->n_strides, 1));
  MI_TRY(mi_read_spatial_ints(n, "dilations", 3, a->dilations, &a->n_dilations, 1));
  MI_TRY(mi_read_spatial_ints(n, "pads", 6, a->pads, &a->n_pads, 0));
  if (a->n_pads % 2) return mi_node_error(n, MI_ERR_INVALID_MODEL, "'pads' needs an even count, has %zu", a->n_pads);
  if (transpose) {
    MI_TRY(mi_read_spatial_ints(n, "output_padding", 3, a->out_pad, &a->n_out_pad, 0));
    MI_TRY(mi_read_spatial_ints(n, "output_shape", 5, a->out_shape, &a->n_out_shape, 1));
  }
  return NULL;
}

static void conv_destroy(mi_node *n) {
  conv_attr *a = n->priv;
  if (a && a->wpack) {
    for (int64_t gi = 0; gi < a->group; gi++) mi_gemm_packed_a_free(a->wpack[gi]);
    free(a->wpack);
  }
  if (a) mi_wino_weights_free(a->wino);
#ifdef MI_GEMM_X86
  if (a) free(a->wbf.data); /* here, not in dconv_bf16.c: that file's code needs AVX-512 to run */
  if (a) free(a->wstem.data);
  if (a) free(a->wamx.data);
  if (a) free(a->wcv.data);
  if (a) free(a->wcvbf.data);
  if (a) free(a->toff);
  if (a) free(a->wct);
#endif
  free(a);
  n->priv = NULL;
}

/* A dense layer's packed weights are all it needs (the exact path reads
 * them, bf16 and Winograd weights are made from them): free the graph's
 * copy when no other node reads it, so the weights are held once. */
static void release_packed_weights(const mi_node *n, mi_graph *g, conv_attr *a) {
  if (a->group == 1 && mi_graph_free_packed_const(g, n, 1)) a->wsrc = NULL; /* conv_run: a NULL weight input is the packed one */
}

/* Weights are constant after the graph passes (BatchNormalization folded):
 * pack each group's [Mg, Cg*k] matrix for the SGEMM now rather than on every
 * call.  Anything unusual is left to conv_run's validation and plain path. */
static void conv_prepack(mi_node *n, mi_graph *g, conv_attr *a) {
  if (!mi_gemm_prepack_enabled() || n->n_in < 2 || n->in[1] < 0) return;
  const mi_value *wv = &g->values[n->in[1]];
  const mi_tensor *w = &wv->t;
  if (!wv->is_const || !w->data || w->dtype != MI_FLOAT || w->ndim < 3 || w->ndim > 5) return;
  const int64_t M = w->dims[0], G = a->group;
  if (M < 1 || M % G || (w->dims[1] == 1 && G > 1)) return; /* depthwise: the direct kernel */
  int64_t K = 1;
  for (int i = 1; i < w->ndim; i++) K *= w->dims[i];
  const int64_t Mg = M / G;
  a->wpack = calloc((size_t)G, sizeof *a->wpack);
  if (!a->wpack) return;
  for (int64_t gi = 0; gi < G; gi++) {
    a->wpack[gi] = mi_gemm_pack_a(mi_isa_level(), false, Mg, K, (const float *)w->data + gi * Mg * K, K);
    if (!a->wpack[gi]) { /* out of memory: keep the per-call packing */
      for (int64_t j = 0; j < gi; j++) mi_gemm_packed_a_free(a->wpack[j]);
      free(a->wpack);
      a->wpack = NULL;
      return;
    }
  }
  a->wsrc = w->data;
  a->wM = M;
  a->wK = K;
  release_packed_weights(n, g, a);
}

/* Fast mode: stride-1, single-group convolutions with 3x3 (2D, dilated
 * too) or kd x 3 x 3 (3D, undilated in z) constant weights may take the
 * Winograd path;
 * each call chooses (mi_wino_wanted). */
static void conv_prepack_winograd(mi_node *n, mi_graph *g, conv_attr *a) {
  if (!g->winograd || n->n_in < 2 || n->in[1] < 0 || a->group != 1) return;
  const mi_value *wv = &g->values[n->in[1]];
  const mi_tensor *w = &wv->t;
  if (!wv->is_const || !a->wpack || w->dtype != MI_FLOAT || (w->ndim != 4 && w->ndim != 5)) return;
  if (w->dims[w->ndim - 1] != 3 || w->dims[w->ndim - 2] != 3) return;
  for (size_t i = 0; i < a->n_strides; i++)
    if (a->strides[i] != 1) return;
  if (w->ndim == 5 && a->n_dilations == 3 && a->dilations[0] != 1) return; /* kz planes are consecutive */
  a->wino_ok = true; /* the Winograd weights come from the packed ones */
}

static mi_status *conv_init(mi_node *n, mi_graph *g) {
  MI_TRY(conv_init_common(n, false));
  conv_prepack(n, g, n->priv);
  conv_prepack_winograd(n, g, n->priv);
  return NULL;
}
#ifdef MI_GEMM_X86
/* Whether this level's direct ConvTranspose kernel (gemm/convt.h) serves a
 * layer of Cg input channels a group.  AVX2 (no broadcast operands: a load
 * beside each multiply-add) only on few: 16 -> 11 channels to 64^3 1.75-1.88
 * -> 1.23-1.48 ms, 128 -> 64 to 48^3 even, 256 -> 128 to 24^3 5.2 -> 5.5. */
static bool convt_kernel_level(int64_t Cg) {
  const mi_isa isa = mi_isa_level();
  return isa == MI_ISA_AVX512 || (isa == MI_ISA_AVX2 && Cg <= 64);
}
#endif

/* ConvTranspose: constant weights whose taps along a row the direct
 * kernel takes are packed for it now (convt_direct). */
static mi_status *convt_init(mi_node *n, mi_graph *g) {
  MI_TRY(conv_init_common(n, true));
#ifdef MI_GEMM_X86
  conv_attr *a = n->priv;
  if (n->n_in < 2 || n->in[1] < 0) return NULL;
  const mi_value *wv = &g->values[n->in[1]];
  const mi_tensor *w = &wv->t;
  if (!wv->is_const || !w->data || w->dtype != MI_FLOAT || w->ndim < 3 || w->ndim > 5 || w->dims[0] % a->group ||
      !convt_kernel_level(w->dims[0] / a->group))
    return NULL;
  int64_t k[3] = {1, 1, 1};
  for (int i = 2; i < w->ndim; i++) k[3 - w->ndim + i] = w->dims[i];
  if (!mi_convt_supported(k)) return NULL;
  const int64_t Cg = w->dims[0] / a->group, per = Cg * w->dims[1] * k[0] * k[1] * k[2];
  a->wct = malloc((size_t)(per * a->group) * sizeof(float));
  if (!a->wct) return NULL; /* packed per call instead */
  for (int64_t gi = 0; gi < a->group; gi++)
    mi_convt_pack((const float *)w->data + gi * per, Cg, w->dims[1], k, a->wct + gi * per);
  a->wct_src = w->data;
  a->wct_len = per * a->group;
#endif
  return NULL;
}

/* Shared validation: X [N,C,spatial], W [.., .., kernel], attribute lengths. */
static bool is_q8(mi_dtype t) { return t == MI_UINT8 || t == MI_INT8; }

static mi_status *check_common(const mi_node *n, const conv_attr *a, mi_tensor *const *in, int *nsp,
                               bool integer) {
  const mi_tensor *x = in[0], *w = in[1];
  if (!x || !w) return mi_node_error(n, MI_ERR_INVALID_MODEL, "needs inputs X and W");
  if (integer ? !is_q8(x->dtype) || !is_q8(w->dtype) : x->dtype != MI_FLOAT || w->dtype != MI_FLOAT)
    return mi_node_error(n, MI_ERR_UNSUPPORTED, "only %s X and W are supported (got %s, %s)",
                         integer ? "uint8/int8" : "float32", mi_dtype_name(x->dtype), mi_dtype_name(w->dtype));
  if (x->ndim < 3 || x->ndim > 5)
    return mi_node_error(n, MI_ERR_SHAPE, "X must have 3..5 dims (N, C, 1-3 spatial), has %d", x->ndim);
  if (w->ndim != x->ndim)
    return mi_node_error(n, MI_ERR_SHAPE, "W has %d dims but X has %d", w->ndim, x->ndim);
  int s = x->ndim - 2;
  *nsp = s;
  if (a->n_kernel && a->n_kernel != (size_t)s)
    return mi_node_error(n, MI_ERR_SHAPE, "kernel_shape has %zu values for %d spatial dims", a->n_kernel, s);
  for (int i = 0; i < (int)a->n_kernel; i++)
    if (a->kernel[i] != w->dims[2 + i])
      return mi_node_error(n, MI_ERR_SHAPE, "kernel_shape[%d] = %lld but W has %lld", i,
                           (long long)a->kernel[i], (long long)w->dims[2 + i]);
  if (a->n_strides && a->n_strides != (size_t)s)
    return mi_node_error(n, MI_ERR_SHAPE, "strides has %zu values for %d spatial dims", a->n_strides, s);
  if (a->n_dilations && a->n_dilations != (size_t)s)
    return mi_node_error(n, MI_ERR_SHAPE, "dilations has %zu values for %d spatial dims", a->n_dilations, s);
  if (a->n_pads && a->n_pads != (size_t)(2 * s))
    return mi_node_error(n, MI_ERR_SHAPE, "pads has %zu values for %d spatial dims", a->n_pads, s);
  for (int i = 0; i < x->ndim; i++)
    if (x->dims[i] < 0 || w->dims[i] < 1)
      return mi_node_error(n, MI_ERR_SHAPE, "invalid X or W dims");
  if (x->dims[1] % a->group)
    return mi_node_error(n, MI_ERR_SHAPE, "channels %lld not divisible by group %lld",
                         (long long)x->dims[1], (long long)a->group);
  return NULL;
}

/* Fill g (3D-normalised) for a forward Conv; returns an error for empty outputs. */
static mi_status *conv_geom(const mi_node *n, const conv_attr *a, const mi_tensor *x, const mi_tensor *w,
                            geom *g) {
  int s = x->ndim - 2, off = 3 - s;
  for (int j = 0; j < 3; j++) {
    g->in[j] = g->k[j] = g->s[j] = g->d[j] = g->out[j] = 1;
    g->pb[j] = 0;
  }
  for (int i = 0; i < s; i++) {
    int j = off + i;
    int64_t in = x->dims[2 + i], k = w->dims[2 + i];
    int64_t st = a->n_strides ? a->strides[i] : 1, dl = a->n_dilations ? a->dilations[i] : 1;
    int64_t dk = (k - 1) * dl + 1, pb = 0, pe = 0, out;
    if (a->auto_pad == PAD_SAME_UPPER || a->auto_pad == PAD_SAME_LOWER) {
      out = (in + st - 1) / st;
      int64_t total = (out - 1) * st + dk - in;
      if (total < 0) total = 0;
      pb = a->auto_pad == PAD_SAME_UPPER ? total / 2 : total - total / 2;
    } else if (a->auto_pad == PAD_VALID) {
      out = in >= dk ? (in - dk) / st + 1 : 0;
    } else {
      if (a->n_pads) { pb = a->pads[i]; pe = a->pads[s + i]; }
      out = in + pb + pe >= dk ? (in + pb + pe - dk) / st + 1 : 0;
    }
    if (out < 1)
      return mi_node_error(n, MI_ERR_SHAPE, "spatial dim %d: input %lld too small for dilated kernel %lld",
                           i, (long long)in, (long long)dk);
    g->in[j] = in; g->k[j] = k; g->s[j] = st; g->d[j] = dl; g->pb[j] = pb; g->out[j] = out;
  }
  g->in_sz = g->in[0] * g->in[1] * g->in[2];
  g->k_sz = g->k[0] * g->k[1] * g->k[2];
  if (!mi_spatial_volume(g->out, &g->out_sz))
    return mi_node_error(n, MI_ERR_SHAPE, "an output of %lld x %lld x %lld positions is too large",
                         (long long)g->out[0], (long long)g->out[1], (long long)g->out[2]);
  return NULL;
}

/* ConvTranspose geometry: here g->in is X's spatial size, g->out Y's, and
 * g->pb the begin padding removed from the full (un-cropped) output. */
static mi_status *convt_geom(const mi_node *n, const conv_attr *a, const mi_tensor *x, const mi_tensor *w,
                             geom *g) {
  int s = x->ndim - 2, off = 3 - s;
  if (a->n_out_pad && a->n_out_pad != (size_t)s)
    return mi_node_error(n, MI_ERR_SHAPE, "output_padding has %zu values for %d spatial dims", a->n_out_pad, s);
  const int64_t *os = NULL;
  if (a->n_out_shape == (size_t)s) os = a->out_shape;
  else if (a->n_out_shape == (size_t)s + 2) os = a->out_shape + 2; /* full N,C,... form */
  else if (a->n_out_shape)
    return mi_node_error(n, MI_ERR_SHAPE, "output_shape has %zu values for %d spatial dims", a->n_out_shape, s);
  for (int j = 0; j < 3; j++) {
    g->in[j] = g->k[j] = g->s[j] = g->d[j] = g->out[j] = 1;
    g->pb[j] = 0;
  }
  for (int i = 0; i < s; i++) {
    int j = off + i;
    int64_t in = x->dims[2 + i], k = w->dims[2 + i];
    int64_t st = a->n_strides ? a->strides[i] : 1, dl = a->n_dilations ? a->dilations[i] : 1;
    int64_t op = a->n_out_pad ? a->out_pad[i] : 0;
    int64_t full = st * (in - 1) + op + (k - 1) * dl + 1; /* output before cropping pads */
    int64_t pb = 0, out;
    if (os || a->auto_pad == PAD_SAME_UPPER || a->auto_pad == PAD_SAME_LOWER) {
      out = os ? os[i] : in * st;
      int64_t total = full - out; /* may be negative: output then extends with zeros */
      int64_t half = mi_floordiv(total, 2);
      pb = a->auto_pad == PAD_SAME_UPPER ? half : total - half;
    } else if (a->auto_pad == PAD_VALID) {
      out = full;
    } else {
      if (a->n_pads) pb = a->pads[i];
      out = full - pb - (a->n_pads ? a->pads[s + i] : 0);
    }
    if (out < 1)
      return mi_node_error(n, MI_ERR_SHAPE, "spatial dim %d: output size %lld is not positive", i, (long long)out);
    g->in[j] = in; g->k[j] = k; g->s[j] = st; g->d[j] = dl; g->pb[j] = pb; g->out[j] = out;
  }
  g->in_sz = g->in[0] * g->in[1] * g->in[2];
  g->k_sz = g->k[0] * g->k[1] * g->k[2];
  if (!mi_spatial_volume(g->out, &g->out_sz))
    return mi_node_error(n, MI_ERR_SHAPE, "an output of %lld x %lld x %lld positions is too large",
                         (long long)g->out[0], (long long)g->out[1], (long long)g->out[2]);
  return NULL;
}

static mi_status *check_bias(const mi_node *n, mi_tensor *const *in, int64_t M) {
  if (n->n_in < 3 || !in[2]) return NULL;
  const mi_tensor *b = in[2];
  if (b->dtype != MI_FLOAT) return mi_node_error(n, MI_ERR_UNSUPPORTED, "bias must be float32");
  if (b->ndim != 1 || b->dims[0] != M)
    return mi_node_error(n, MI_ERR_SHAPE, "bias must have shape [%lld]", (long long)M);
  return NULL;
}

static mi_status *conv_infer(mi_node *n, mi_tensor *const *in, mi_tensor **out) {
  const conv_attr *a = n->priv;
  int s = 0;
  MI_TRY(check_common(n, a, in, &s, false));
  const mi_tensor *x = in[0], *w = in[1];
  int64_t M = w->dims[0];
  if (x->dims[1] != w->dims[1] * a->group)
    return mi_node_error(n, MI_ERR_SHAPE, "X has %lld channels but W expects %lld x group %lld",
                         (long long)x->dims[1], (long long)w->dims[1], (long long)a->group);
  if (M % a->group)
    return mi_node_error(n, MI_ERR_SHAPE, "output channels %lld not divisible by group %lld", (long long)M,
                         (long long)a->group);
  MI_TRY(check_bias(n, in, M));
  geom g;
  MI_TRY(conv_geom(n, a, x, w, &g));
  int64_t dims[5] = {x->dims[0], M};
  for (int i = 0; i < s; i++) dims[2 + i] = g.out[3 - s + i];
  if (n->post_pool2) { /* the fused 2x2 stride-2 max pool (floor) */
    if (s != 2 || dims[2] < 2 || dims[3] < 2)
      return mi_node_error(n, MI_ERR_SHAPE, "output %lldx%lld is smaller than the 2x2 window of its fused MaxPool",
                           (long long)(s == 2 ? dims[2] : 0), (long long)(s == 2 ? dims[3] : 0));
    dims[2] /= 2, dims[3] /= 2;
  }
  mi_tensor_set_shape(out[0], MI_FLOAT, x->ndim, dims);
  return NULL;
}

static mi_status *convt_infer(mi_node *n, mi_tensor *const *in, mi_tensor **out) {
  const conv_attr *a = n->priv;
  int s = 0;
  MI_TRY(check_common(n, a, in, &s, false));
  const mi_tensor *x = in[0], *w = in[1];
  if (w->dims[0] != x->dims[1])
    return mi_node_error(n, MI_ERR_SHAPE, "W dim 0 (%lld) must equal X channels (%lld)",
                         (long long)w->dims[0], (long long)x->dims[1]);
  int64_t M = w->dims[1] * a->group;
  MI_TRY(check_bias(n, in, M));
  geom g;
  MI_TRY(convt_geom(n, a, x, w, &g));
  int64_t dims[5] = {x->dims[0], M};
  for (int i = 0; i < s; i++) dims[2 + i] = g.out[3 - s + i];
  mi_tensor_set_shape(out[0], MI_FLOAT, x->ndim, dims);
  return NULL;
}

/* ---- epilogue: bias, fused residual, activation ------------------------ */
typedef struct epi_ctx {
  const mi_node *n;
  float *y;            /* first row of the block (channel m0)            */
  const float *bias;   /* per-row bias (NULL: none)                      */
  const float *res;    /* residual aligned with y (NULL: none)           */
  int64_t ld, len;     /* row stride and length of the block             */
} epi_ctx;

static void epi_rows(void *vctx, int64_t b, int64_t e) {
  const epi_ctx *c = vctx;
  for (int64_t m = b; m < e; m++) {
    float *y = c->y + m * c->ld;
    if (c->bias) {
      float bv = c->bias[m];
      for (int64_t i = 0; i < c->len; i++) y[i] += bv;
    }
    if (c->res) {
      const float *r = c->res + m * c->ld;
      for (int64_t i = 0; i < c->len; i++) y[i] += r[i];
    }
    mi_activation_apply(&c->n->act, y, c->len);
  }
}

static void epilogue(mi_exec *ex, const mi_node *n, float *y, const float *bias, const float *res,
                     int64_t rows, int64_t ld, int64_t len) {
  if (!bias && !res && n->act.kind == MI_ACT_NONE) return;
  epi_ctx c = {n, y, bias, res, ld, len};
  int64_t grain = len >= 16384 ? 1 : 16384 / (len > 0 ? len : 1);
  mi_parallel_for(ex, rows, grain, epi_rows, &c);
}

/* The same epilogue on one finished GEMM block (mi_gemm_epilogue): rows are
 * output channels, columns positions of the tile whose C starts at y0. */
typedef struct epi_block_ctx {
  const mi_node *n;
  const float *y0;   /* C of the GEMM (output tile start)            */
  const float *bias; /* per-row bias (NULL: none)                    */
  const float *r0;   /* residual aligned with y0 (NULL: none)         */
} epi_block_ctx;

/* Bias, residual and ReLU in one pass (a ResNet block's residual + ReLU). */
static inline __attribute__((always_inline)) void epi_block_simple(const epi_block_ctx *e, int64_t m0, int64_t mr,
                                                                   int64_t nr, float *c, int64_t ldc) {
  const float *r = e->r0 ? e->r0 + (c - e->y0) : NULL;
  const bool relu = e->n->act.kind == MI_ACT_RELU;
  for (int64_t i = 0; i < mr; i++) {
    float *y = c + i * ldc;
    const float bv = e->bias ? e->bias[m0 + i] : 0.f;
    const float *ri = r ? r + i * ldc : NULL;
    if (ri && relu)
      for (int64_t j = 0; j < nr; j++) {
        const float v = y[j] + bv + ri[j];
        y[j] = v > 0.f ? v : 0.f;
      }
    else if (ri)
      for (int64_t j = 0; j < nr; j++) y[j] = y[j] + bv + ri[j];
    else if (relu)
      for (int64_t j = 0; j < nr; j++) {
        const float v = y[j] + bv;
        y[j] = v > 0.f ? v : 0.f;
      }
    else
      for (int64_t j = 0; j < nr; j++) y[j] += bv;
  }
}

#if defined(__x86_64__) && defined(__GNUC__)
/* The same loop compiled for AVX-512 (this file's baseline is SSE2): it runs
 * on every 8 x 48 tile of a 1x1 layer's product. */
__attribute__((target("avx512f"))) static void epi_block_simple_avx512(const epi_block_ctx *e, int64_t m0, int64_t mr,
                                                                      int64_t nr, float *c, int64_t ldc) {
  epi_block_simple(e, m0, mr, nr, c, ldc);
}
#endif

static void epi_block(void *vctx, int64_t m0, int64_t mr, int64_t n0, int64_t nr, float *c, int64_t ldc) {
  const epi_block_ctx *e = vctx;
  (void)n0;
  const float *r = e->r0 ? e->r0 + (c - e->y0) : NULL;
  const mi_act_kind ak = e->n->act.kind;
  if (ak == MI_ACT_NONE || ak == MI_ACT_RELU) {
#if defined(__x86_64__) && defined(__GNUC__)
    if (mi_isa_level() == MI_ISA_AVX512) {
      epi_block_simple_avx512(e, m0, mr, nr, c, ldc);
      return;
    }
#endif
    epi_block_simple(e, m0, mr, nr, c, ldc);
    return;
  }
  for (int64_t i = 0; i < mr; i++) {
    float *y = c + i * ldc;
    if (e->bias) {
      const float bv = e->bias[m0 + i];
      for (int64_t j = 0; j < nr; j++) y[j] += bv;
    }
    if (r) {
      const float *ri = r + i * ldc;
      for (int64_t j = 0; j < nr; j++) y[j] += ri[j];
    }
    mi_activation_apply(&e->n->act, y, nr);
  }
}

static mi_status *get_residual(const mi_node *n, mi_tensor *const *in, const mi_tensor *y, const float **res) {
  *res = NULL;
  if (n->fused_add < 0) return NULL;
  const mi_tensor *r = in[n->n_in];
  if (!r || r->dtype != MI_FLOAT || mi_numel(r->ndim, r->dims) != mi_numel(y->ndim, y->dims))
    return mi_node_error(n, MI_ERR_SHAPE, "fused residual does not match the output shape");
  *res = r->data;
  return NULL;
}

/* ---- im2col over a range of output positions --------------------------- */
typedef struct im2col_ctx {
  const geom *g;
  const float *x; /* Cg input planes */
  float *col;     /* rows x P */
  int64_t p0, p1;
} im2col_ctx;

/* Row r of the im2col matrix (channel, kz, ky, kx) over output positions
 * [p0, p1) into dst. */
static void gather_row(const geom *g, const float *x, int64_t r, int64_t p0, int64_t p1, float *dst) {
  const int64_t o1 = g->out[1], o2 = g->out[2];
  int64_t ch = r / g->k_sz, kk = r % g->k_sz;
  int64_t kz = kk / (g->k[1] * g->k[2]), ky = (kk / g->k[2]) % g->k[1], kx = kk % g->k[2];
  int64_t offz = kz * g->d[0] - g->pb[0], offy = ky * g->d[1] - g->pb[1], offx = kx * g->d[2] - g->pb[2];
  int64_t xlo, xhi;
  mi_valid_range(o2, g->s[2], offx, g->in[2], &xlo, &xhi);
  const float *plane = x + ch * g->in_sz;
  int64_t p = p0, oz = p / (o1 * o2), oy = (p / o2) % o1, ox = p % o2;
  while (p < p1) {
    int64_t L = o2 - ox < p1 - p ? o2 - ox : p1 - p;
    int64_t iz = oz * g->s[0] + offz, iy = oy * g->s[1] + offy;
    if (iz >= 0 && iz < g->in[0] && iy >= 0 && iy < g->in[1]) {
      const float *row = plane + (iz * g->in[1] + iy) * g->in[2];
      int64_t a = clamp64(xlo, ox, ox + L), b = clamp64(xhi, a, ox + L);
      for (int64_t t = ox; t < a; t++) dst[t - ox] = 0.f;
      if (g->s[2] == 1) {
        memcpy(dst + (a - ox), row + a + offx, (size_t)(b - a) * sizeof(float));
      } else if (g->s[2] == 2) { /* constant stride: the compiler vectorises the gather */
        const float *src = row + offx;
        float *d = dst - ox;
        for (int64_t t = a; t < b; t++) d[t] = src[2 * t];
      } else {
        const int64_t st = g->s[2];
        for (int64_t t = a; t < b; t++) dst[t - ox] = row[t * st + offx];
      }
      for (int64_t t = b; t < ox + L; t++) dst[t - ox] = 0.f;
    } else {
      memset(dst, 0, (size_t)L * sizeof(float));
    }
    dst += L;
    p += L;
    ox = 0;
    if (++oy == o1) { oy = 0; oz++; }
  }
}

static void im2col_rows(void *vctx, int64_t rb, int64_t re) {
  const im2col_ctx *c = vctx;
  for (int64_t r = rb; r < re; r++) gather_row(c->g, c->x, r, c->p0, c->p1, c->col + r * (c->p1 - c->p0));
}

/* Implicit GEMM: the SGEMM's B block (rows [k0, k0+kc) of the im2col matrix,
 * positions p0 + [j0, j0+nc)) gathered straight into its NR-wide panels
 * dst[panel][k][NR]: each im2col row is a run of input-row pieces, written
 * piece by piece where the panels need them.  No column buffer. */
typedef struct colpack_ctx {
  const geom *g;
  const float *x; /* Cg input planes */
  int64_t p0;
  /* Set when x is a zero-padded copy (or needs no padding): planes of
   * pin[0] x pin[1] x pin[2] in which every tap is inside, so each run of
   * output positions is a plain strided copy, no clipping. */
  bool padded;
  int64_t pin[3];
  /* Input prologue (mi_node.pre_affine) applied while gathering, or NULL. */
  const float *pre;
  int64_t pre_c;
  bool pre_relu;
} colpack_ctx;

/* Panel-major: for each NR-wide panel, its positions as row runs (a
 * panel's worth: at most NR runs), then every im2col row k of the block
 * written as one contiguous NR-float line of the panel.  Writes stream
 * through the panel; reads stay within a few input rows per channel.
 * From a padded source (c->padded) every tap is inside, so a run is one
 * strided copy from a base offset; otherwise each run is clipped against
 * the input's edges and zero-filled outside. */
typedef struct colrun {
  int64_t oz, oy, ox, len, j; /* j: first column of the run in the panel */
  int64_t base;               /* padded source: offset of the run's first tap */
} colrun;

typedef struct colrow {
  int64_t ch, koff;           /* koff: the tap's offset in the source       */
  int64_t offz, offy, offx, xlo, xhi; /* clipped source only               */
} colrow;

#define COLPACK_MAX_NR 64  /* widest kernel tile: 48 */
#define COLPACK_MAX_KC 256 /* rows described at once (the kernels' KC is at most 256) */

/* o[t] = src[t * st] (through the input prologue when there is one), t in [lo, hi). */
static inline __attribute__((always_inline)) void copy_run(const colpack_ctx *c, int64_t ch, float *o,
                                                           const float *src, int64_t st, int64_t lo, int64_t hi) {
  if (c->pre)
    mi_prologue_copy(o, src, st, lo, hi, c->pre[ch], c->pre[c->pre_c + ch], c->pre_relu);
  else if (st == 1)
    for (int64_t t = lo; t < hi; t++) o[t] = src[t];
  else if (st == 2)
    for (int64_t t = lo; t < hi; t++) o[t] = src[2 * t];
  else
    for (int64_t t = lo; t < hi; t++) o[t] = src[t * st];
}

static inline __attribute__((always_inline)) void colpack_panels(const colpack_ctx *c, int64_t k0, int64_t kc,
                                                                 int64_t j0, int64_t nc, int NR, float *dst,
                                                                 int64_t ldp) {
  const geom *g = c->g;
  const int64_t o1 = g->out[1], o2 = g->out[2], st = g->s[2];
  const int64_t p1 = c->pin[1], p2 = c->pin[2], psz = c->pin[0] * p1 * p2; /* padded source */
  colrow rows[COLPACK_MAX_KC];
  colrun runs[COLPACK_MAX_NR];
  if (g->k_sz == 1 && st == 1 && g->s[0] * g->s[1] == 1 && g->in_sz == g->out_sz && (!c->padded || psz == g->in_sz)) {
    /* Positions are the input's own (a 1x1 layer with its prologue): a
     * panel is one run of the channel's plane, whatever the rows.  Channel
     * by channel, each plane's nc floats read in one sweep: panel by panel,
     * the kc planes would be kc read streams at once, more than the
     * hardware prefetchers follow (DenseNet-121: this copy's time over its
     * 3x3 layers' about 6 % less; it still waits on its loads). */
    if (nc % NR) /* the last panel's padding columns, zeroed at once (row by row, a call each) */
      memset(dst + nc / NR * ldp, 0, (size_t)(kc * NR) * sizeof(float));
    for (int64_t k = 0; k < kc; k++) {
      const float *src = c->x + (k0 + k) * g->in_sz + c->p0 + j0;
      for (int64_t q0 = 0; q0 < nc; q0 += NR)
        copy_run(c, k0 + k, dst + (q0 / NR) * ldp + k * NR, src + q0, 1, 0, nc - q0 < NR ? nc - q0 : NR);
    }
    return;
  }
  for (int64_t kb = 0; kb < kc; kb += COLPACK_MAX_KC) { /* one pass for every blocking the kernels use */
    const int64_t ke = kc - kb < COLPACK_MAX_KC ? kc : kb + COLPACK_MAX_KC;
    for (int64_t k = kb; k < ke; k++) {
      const int64_t r = k0 + k, ch = r / g->k_sz, kk = r % g->k_sz;
      const int64_t kz = kk / (g->k[1] * g->k[2]), ky = (kk / g->k[2]) % g->k[1], kx = kk % g->k[2];
      colrow *cr = &rows[k - kb];
      cr->ch = ch;
      if (c->padded) {
        cr->koff = ch * psz + (kz * g->d[0] * p1 + ky * g->d[1]) * p2 + kx * g->d[2];
      } else {
        cr->koff = ch * g->in_sz;
        cr->offz = kz * g->d[0] - g->pb[0];
        cr->offy = ky * g->d[1] - g->pb[1];
        cr->offx = kx * g->d[2] - g->pb[2];
        mi_valid_range(o2, st, cr->offx, g->in[2], &cr->xlo, &cr->xhi);
      }
    }
    for (int64_t q0 = 0; q0 < nc; q0 += NR) {
      const int64_t w = nc - q0 < NR ? nc - q0 : NR;
      for (int64_t js = 0; js < w;) { /* runs of the panel, COLPACK_MAX_NR at a time */
        int nr = 0;
        int64_t p = c->p0 + j0 + q0 + js, oz = p / (o1 * o2), oy = (p / o2) % o1, ox = p % o2;
        for (int64_t j = js; j < w && nr < COLPACK_MAX_NR;) {
          const int64_t L = o2 - ox < w - j ? o2 - ox : w - j;
          runs[nr++] = (colrun){oz, oy, ox, L, j, (oz * g->s[0] * p1 + oy * g->s[1]) * p2 + ox * st};
          j += L;
          ox = 0;
          if (++oy == o1) { oy = 0; oz++; }
        }
        const int64_t je = runs[nr - 1].j + runs[nr - 1].len;
        float *d = dst + (q0 / NR) * ldp + kb * NR;
        /* The next panel's rows are prefetched as this one's are copied, by
         * its first run's span in each row of taps (a strided 3D layer reads
         * each input row from memory once, hundreds of rows per panel: more
         * streams than the hardware prefetcher keeps).  The 3D U-Net's 96^3
         * -> 48^3 layer 76.7 -> 71.2 ms per node, its 1x1 output layer 5.1 ->
         * 4.7; ResNet-50 exact 44.3 -> 43.9 (alternating in one process). */
        int64_t pz = 0, py = 0, px = 0, pf_len = 0;
        if (js == 0 && q0 + NR < nc) {
          const int64_t pn = c->p0 + j0 + q0 + NR, L = o2 - pn % o2 < nc - q0 - NR ? o2 - pn % o2 : nc - q0 - NR;
          pz = pn / (o1 * o2), py = (pn / o2) % o1, px = pn % o2;
          pf_len = ((L < NR ? L : NR) - 1) * st + (g->k[2] - 1) * g->d[2] + 1;
        }
        for (int64_t k = kb; k < ke; k++, d += NR) {
          const colrow *cr = &rows[k - kb];
          if (pf_len && (k0 + k) % g->k[2] == 0) { /* one row of taps: kx 0 */
            const float *f = NULL;
            if (c->padded) {
              f = c->x + cr->koff + (pz * g->s[0] * p1 + py * g->s[1]) * p2 + px * st;
            } else {
              const int64_t iz = pz * g->s[0] + cr->offz, iy = py * g->s[1] + cr->offy, ix = px * st + cr->offx;
              if (iz >= 0 && iz < g->in[0] && iy >= 0 && iy < g->in[1])
                f = c->x + cr->koff + (iz * g->in[1] + iy) * g->in[2] + (ix > 0 ? ix : 0);
            }
            for (int64_t t = 0; f && t < pf_len; t += 16) __builtin_prefetch(f + t, 0, 2);
          }
          for (int i = 0; i < nr; i++) {
            const colrun *rn = &runs[i];
            if (c->padded) {
              copy_run(c, cr->ch, d + rn->j, c->x + cr->koff + rn->base, st, 0, rn->len);
              continue;
            }
            float *o = d + rn->j - rn->ox; /* indexed by output column */
            const int64_t iz = rn->oz * g->s[0] + cr->offz, iy = rn->oy * g->s[1] + cr->offy, e = rn->ox + rn->len;
            if (iz < 0 || iz >= g->in[0] || iy < 0 || iy >= g->in[1]) {
              for (int64_t t = rn->ox; t < e; t++) o[t] = 0.f;
              continue;
            }
            const int64_t a = clamp64(cr->xlo, rn->ox, e), b = clamp64(cr->xhi, a, e);
            for (int64_t t = rn->ox; t < a; t++) o[t] = 0.f;
            copy_run(c, cr->ch, o, c->x + cr->koff + (iz * g->in[1] + iy) * g->in[2] + cr->offx, st, a, b);
            for (int64_t t = b; t < e; t++) o[t] = 0.f;
          }
          if (je == w)
            for (int64_t t = w; t < NR; t++) d[t] = 0.f;
        }
        js = je;
      }
    }
  }
}

#if defined(__x86_64__) && defined(__GNUC__)
/* The same loops compiled for AVX-512: the copies move 16 floats at a time. */
__attribute__((target("avx512f"))) static void colpack_avx512(const colpack_ctx *c, int64_t k0, int64_t kc,
                                                               int64_t j0, int64_t nc, int NR, float *dst,
                                                               int64_t ldp) {
  colpack_panels(c, k0, kc, j0, nc, NR, dst, ldp);
}
#endif
static void colpack_plain(const colpack_ctx *c, int64_t k0, int64_t kc, int64_t j0, int64_t nc, int NR,
                          float *dst, int64_t ldp) {
  colpack_panels(c, k0, kc, j0, nc, NR, dst, ldp);
}

static void colpack(void *vctx, int64_t k0, int64_t kc, int64_t j0, int64_t nc, int NR, float *dst, int64_t ldp) {
  const colpack_ctx *c = vctx;
#if defined(__x86_64__) && defined(__GNUC__)
  if (mi_isa_level() == MI_ISA_AVX512) {
    colpack_avx512(c, k0, kc, j0, nc, NR, dst, ldp);
    return;
  }
#endif
  colpack_plain(c, k0, kc, j0, nc, NR, dst, ldp);
}

/* Positions per tile: column buffer within COL_BUDGET, output block within
 * OUT_BLOCK (so the epilogue finds it in cache), at least one full row. */
static int64_t tile_len(int64_t total, int64_t col_rows, int64_t out_rows, int64_t row_len) {
  int64_t by_col = col_rows > 0 ? COL_BUDGET / (4 * col_rows) : total;
  int64_t by_out = out_rows > 0 ? OUT_BLOCK / (4 * out_rows) : total;
  int64_t p = by_col < by_out ? by_col : by_out;
  if (p < row_len) p = row_len < by_col ? row_len : by_col;
  else p -= p % row_len; /* whole rows: fewer partial lines in im2col */
  if (p < 1) p = 1;
  return p > total ? total : p;
}

/* ---- depthwise direct kernel (Cg == 1, group == C) ---------------------- */
typedef struct dw_ctx {
  const geom *g;
  const mi_node *n;
  const float *x, *w, *bias, *res;
  float *y;
  int64_t C, M, mult; /* mult = M / C output channels per input channel */
} dw_ctx;

static void dw_planes(void *vctx, int64_t b, int64_t e) {
  const dw_ctx *c = vctx;
  const geom *g = c->g;
  for (int64_t pl = b; pl < e; pl++) {
    int64_t n = pl / c->M, m = pl % c->M, ch = m / c->mult;
    const float *xp = c->x + (n * c->C + ch) * g->in_sz;
    const float *wk = c->w + m * g->k_sz;
    float *yp = c->y + pl * g->out_sz;
    float bv = c->bias ? c->bias[m] : 0.f;
    for (int64_t i = 0; i < g->out_sz; i++) yp[i] = bv;
    for (int64_t oz = 0; oz < g->out[0]; oz++)
      for (int64_t oy = 0; oy < g->out[1]; oy++) {
        float *yrow = yp + (oz * g->out[1] + oy) * g->out[2];
        for (int64_t kz = 0; kz < g->k[0]; kz++) {
          int64_t iz = oz * g->s[0] + kz * g->d[0] - g->pb[0];
          if (iz < 0 || iz >= g->in[0]) continue;
          for (int64_t ky = 0; ky < g->k[1]; ky++) {
            int64_t iy = oy * g->s[1] + ky * g->d[1] - g->pb[1];
            if (iy < 0 || iy >= g->in[1]) continue;
            const float *xrow = xp + (iz * g->in[1] + iy) * g->in[2];
            const float *wrow = wk + (kz * g->k[1] + ky) * g->k[2];
            for (int64_t kx = 0; kx < g->k[2]; kx++) {
              int64_t off = kx * g->d[2] - g->pb[2], lo, hi;
              mi_valid_range(g->out[2], g->s[2], off, g->in[2], &lo, &hi);
              const float wv = wrow[kx];
              const int64_t st = g->s[2];
              if (st == 1)
                for (int64_t ox = lo; ox < hi; ox++) yrow[ox] += wv * xrow[ox + off];
              else
                for (int64_t ox = lo; ox < hi; ox++) yrow[ox] += wv * xrow[ox * st + off];
            }
          }
        }
      }
    if (c->res) {
      const float *r = c->res + pl * g->out_sz;
      for (int64_t i = 0; i < g->out_sz; i++) yp[i] += r[i];
    }
    mi_activation_apply(&c->n->act, yp, g->out_sz);
  }
}

/* ---- zero-padded input copy for the implicit GEMM ----------------------
 * Extents covering every tap, so the gather never clips.  Worth it while
 * the copy is small (2D networks); large 3D volumes keep the clipping
 * gather rather than a second copy of the volume. */
#define PAD_COPY_BUDGET ((int64_t)16 << 20) /* bytes */

/* The budget, or MEDINFER_PAD_COPY bytes (tests: 0 holds the clipping
 * gather to the reference on small inputs too, a few KB makes the direct
 * kernel work through 3D inputs in many slabs). */
static int64_t pad_copy_budget(void) {
  static atomic_llong v = -1;
  long long r = atomic_load(&v);
  if (r < 0) {
    const char *e = getenv("MEDINFER_PAD_COPY");
    r = e && *e ? atoll(e) : PAD_COPY_BUDGET;
    if (r < 0) r = 0;
    atomic_store(&v, r);
  }
  return r;
}

static void padded_extent(const geom *g, int64_t pin[3]) {
  for (int j = 0; j < 3; j++) {
    const int64_t need = (g->out[j] - 1) * g->s[j] + (g->k[j] - 1) * g->d[j] + 1; /* taps from -pb */
    pin[j] = need > g->in[j] + g->pb[j] ? need : g->in[j] + g->pb[j];
  }
}

/* The zero-padded input split into stride phases (space-to-depth): with
 * strides sy, sx each padded z-plane becomes sy*sx planes of h x w, phase
 * (py, px) holding padded rows py, py+sy, ... and columns px, px+sx, ...
 * Output position (oy, ox) then reads tap (ty, tx) at row oy + ty/sy,
 * column ox + tx/sx of phase (ty%sy, tx%sx): unit strides again, so the
 * direct kernel serves stride-2 layers (a ResNet's downsampling, its 7x7
 * stem) unchanged.  With unit strides it is the plain padded copy. */
typedef struct phase_geom {
  int64_t pin[3];  /* padded extent (padded_extent) */
  int64_t sy, sx, h, w;
  int64_t zs;      /* padded z-planes held per channel (a slab: phase_slab) */
  int64_t csz;     /* floats per channel */
} phase_geom;

/* strided: split into the stride phases (the direct kernel); otherwise one
 * phase, the plain padded copy the implicit GEMM's gather reads. */
static void phase_extent(const geom *g, bool strided, phase_geom *p) {
  padded_extent(g, p->pin);
  p->sy = strided ? g->s[1] : 1, p->sx = strided ? g->s[2] : 1;
  p->h = (p->pin[1] + p->sy - 1) / p->sy;
  p->w = (p->pin[2] + p->sx - 1) / p->sx;
  p->zs = p->pin[0];
  p->csz = p->pin[0] * p->sy * p->sx * p->h * p->w;
}

/* Hold only the padded planes of `out_planes` output z-planes per copy (the
 * direct kernel on a 3D volume works through it slab by slab). */
static void phase_slab(const geom *g, int64_t out_planes, phase_geom *p) {
  const int64_t need = (out_planes - 1) * g->s[0] + (g->k[0] - 1) * g->d[0] + 1;
  p->zs = need < p->pin[0] ? need : p->pin[0];
  p->csz = p->zs * p->sy * p->sx * p->h * p->w;
}

typedef struct phasecopy_ctx {
  const geom *g;
  const phase_geom *ph;
  const float *x;
  float *xp;
  const float *pre; /* input prologue applied while copying, or NULL */
  int64_t pre_c;
  bool pre_relu;
  int64_t z0;       /* first padded z-plane copied (ph->zs of them) */
  bool from_plain;  /* padcopy16_rows: the input NCHW */
  int64_t keep, from; /* phasecopy_planes: the first keep planes are the previous slab's planes from
                         [from, from + keep), moved rather than made again (0: none) */
} phasecopy_ctx;

/* n zeros at d: a row's padding, a float or two, by stores rather than a
 * memset call per side (a 3D layer's copy makes hundreds of thousands of
 * rows). */
static inline void zero_few(float *d, int64_t n) {
  switch (n) {
  case 2: d[1] = 0.f; /* fall through */
  case 1: d[0] = 0.f; /* fall through */
  case 0: break;
  default: memset(d, 0, (size_t)n * sizeof(float));
  }
}

/* Row r of phase (py, px) of padded z-plane z of channel ch into d (ph->w floats). */
static void phase_row(const phasecopy_ctx *c, int64_t ch, int64_t z, int64_t py, int64_t px, int64_t r, float *d) {
  const geom *g = c->g;
  const phase_geom *ph = c->ph;
  const int64_t iz = z - g->pb[0], iy = r * ph->sy + py - g->pb[1];
  if (iz < 0 || iz >= g->in[0] || iy < 0 || iy >= g->in[1]) {
    memset(d, 0, (size_t)ph->w * sizeof(float));
    return;
  }
  const float pa = c->pre ? c->pre[ch] : 1.f, pb = c->pre ? c->pre[c->pre_c + ch] : 0.f;
  const float *s = c->x + ch * g->in_sz + (iz * g->in[1] + iy) * g->in[2];
  /* column t reads input column t*sx + px - pb: inside for t in [lo, hi) */
  const int64_t off = px - g->pb[2];
  int64_t lo = off >= 0 ? 0 : (-off + ph->sx - 1) / ph->sx;
  int64_t hi = g->in[2] - off <= 0 ? 0 : (g->in[2] - off + ph->sx - 1) / ph->sx;
  if (hi > ph->w) hi = ph->w;
  if (lo > hi) lo = hi;
  zero_few(d, lo);
  const float *src = s + off + lo * ph->sx; /* input column of t = lo */
  if (c->pre) mi_prologue_copy(d + lo, src, ph->sx, 0, hi - lo, pa, pb, c->pre_relu);
  else if (ph->sx == 1) memcpy(d + lo, src, (size_t)(hi - lo) * sizeof(float));
  else
    for (int64_t t = 0; t < hi - lo; t++) d[lo + t] = src[t * ph->sx];
  zero_few(d + hi, ph->w - hi);
}

static void phasecopy_planes(void *vctx, int64_t b, int64_t e) {
  const phasecopy_ctx *c = vctx;
  const phase_geom *ph = c->ph;
  const int64_t zend = c->z0 + ph->zs < ph->pin[0] ? c->z0 + ph->zs : ph->pin[0];
  const int64_t zplane = ph->sy * ph->sx * ph->h * ph->w;
  for (int64_t ch = b; ch < e; ch++) {
    float *d = c->xp + ch * ph->csz;
    if (c->keep) memmove(d, d + c->from * zplane, (size_t)(c->keep * zplane) * sizeof(float));
    d += c->keep * zplane;
    for (int64_t z = c->z0 + c->keep; z < zend; z++)
      for (int64_t py = 0; py < ph->sy; py++)
        for (int64_t px = 0; px < ph->sx; px++)
          for (int64_t r = 0; r < ph->h; r++, d += ph->w) phase_row(c, ch, z, py, px, r, d);
  }
}

/* The zero-padded copy of a channel-blocked (NCHW16c) input, blocked the
 * same way (one phase: the channel-vector kernel reads strides on the
 * padded grid): block b's padded position P at xp[(b * csz + P) * 16].
 * Items are (block, padded row) pairs.  from_plain: made so from an NCHW
 * input (C % 16 == 0), so that the kernel reads one cache line per position
 * for 16 steps: a chain of three 512-channel dilated 24x24 layers, per-node
 * minimums, the first (on the plain input) 16.2-16.8 ms -> 14.2-14.5 (the
 * others, on blocked inputs, 13.3-14.1). */
static void padcopy16_rows(void *vctx, int64_t b, int64_t e) {
  const phasecopy_ctx *c = vctx;
  const geom *g = c->g;
  const phase_geom *ph = c->ph;
  const int64_t rows = ph->zs * ph->h, lo = g->pb[2], n = ph->w - lo < g->in[2] ? ph->w - lo : g->in[2];
  for (int64_t it = b; it < e; it++) {
    const int64_t blk = it / rows, row = it % rows, iz = c->z0 + row / ph->h - g->pb[0], iy = row % ph->h - g->pb[1];
    float *d = c->xp + (blk * ph->csz + row * ph->w) * 16;
    if (iz < 0 || iz >= g->in[0] || iy < 0 || iy >= g->in[1]) {
      memset(d, 0, (size_t)(16 * ph->w) * sizeof(float));
      continue;
    }
    memset(d, 0, (size_t)(16 * lo) * sizeof(float));
    const int64_t at = (iz * g->in[1] + iy) * g->in[2]; /* the row in a plane */
    if (c->from_plain && mi_isa_level() == MI_ISA_AVX512)
      mi_chan16_block(c->x + blk * 16 * g->in_sz + at, n, g->in_sz, NULL, false, d + 16 * lo);
    else if (c->from_plain) /* AVX2: in C (the copy is a few % of such a layer) */
      for (int64_t i = 0; i < n; i++)
        for (int64_t ch = 0; ch < 16; ch++) d[16 * (lo + i) + ch] = c->x[(blk * 16 + ch) * g->in_sz + at + i];
    else memcpy(d + 16 * lo, c->x + (blk * g->in_sz + at) * 16, (size_t)(16 * n) * sizeof(float));
    memset(d + 16 * (lo + n), 0, (size_t)(16 * (ph->w - lo - n)) * sizeof(float));
  }
}

/* A strided 1x1 layer's input positions (every s-th), prologue applied. */
typedef struct subsample_ctx {
  const geom *g;
  const float *x;
  float *y;
  const float *pre;
  int64_t C;
  bool relu;
} subsample_ctx;

static void subsample_planes(void *vctx, int64_t b, int64_t e) {
  const subsample_ctx *c = vctx;
  const geom *g = c->g;
  for (int64_t p = b; p < e; p++) {
    const int64_t ch = p % c->C;
    const float pa = c->pre ? c->pre[ch] : 1.f, pb = c->pre ? c->pre[c->C + ch] : 0.f;
    const float *x = c->x + p * g->in_sz;
    float *y = c->y + p * g->out_sz;
    for (int64_t z = 0; z < g->out[0]; z++)
      for (int64_t r = 0; r < g->out[1]; r++, y += g->out[2]) {
        const float *s = x + (z * g->s[0] * g->in[1] + r * g->s[1]) * g->in[2];
        if (c->pre) mi_prologue_copy(y, s, g->s[2], 0, g->out[2], pa, pb, c->relu);
        else
          for (int64_t t = 0; t < g->out[2]; t++) y[t] = s[t * g->s[2]];
      }
  }
}

/* ---- direct kernel (gemm/dconv.h) ---------------------------------------
 * Group 1, strides of 1 or 2 (in y and x by stride phases, below; in z
 * by the planes' step), weights packed for the AVX-512 kernel, an input
 * whose zero-padded copy fits the budget.  MEDINFER_CONV_DIRECT=0 keeps
 * every convolution on the implicit GEMM, =1 sends every eligible one here
 * (tests). */
#ifdef MI_GEMM_X86
/* The position-vector kernel of the GEMM's level: AVX-512, or AVX2 (dconv_avx2.c). */
static bool dconv_avx2(void) { return mi_isa_level() == MI_ISA_AVX2; }
static int64_t dconv_count(const mi_dconv_job *j) { return dconv_avx2() ? mi_dconv_items_avx2(j) : mi_dconv_items(j); }
static void dconv_items(void *vctx, int64_t b, int64_t e) {
  if (dconv_avx2()) mi_dconv_run_avx2(vctx, b, e);
  else mi_dconv_run(vctx, b, e);
}
static void dconv_items_bf16(void *vctx, int64_t b, int64_t e) { mi_dconv_run_bf16(vctx, b, e); }
/* A job and the weights of a kernel that keeps its own layout (AMX, channel-vector). */
typedef struct job_weights {
  const mi_dconv_job *job;
  const void *w;
} job_weights;
static void dconv_items_amx(void *vctx, int64_t b, int64_t e) {
  const job_weights *c = vctx;
  mi_dconv_run_amx(c->job, c->w, b, e);
}
static void dconv_items_cv(void *vctx, int64_t b, int64_t e) {
  const job_weights *c = vctx;
  if (mi_isa_level() == MI_ISA_AVX2) mi_dconv_cv_run_avx2(c->job, c->w, b, e);
  else mi_dconv_cv_run(c->job, c->w, b, e);
}

static int64_t dconv_count_cv(const mi_dconv_job *j, const mi_dconv_cv_weights *w) {
  return mi_isa_level() == MI_ISA_AVX2 ? mi_dconv_cv_items_avx2(j, w) : mi_dconv_cv_items(j, w);
}
static void dconv_items_cv_bf16(void *vctx, int64_t b, int64_t e) {
  const job_weights *c = vctx;
  mi_dconv_cv_run_bf16(c->job, c->w, b, e);
}

/* bf16 mode on AMX tiles where the CPU has them (checked once). */
static bool direct_amx(void) {
  static atomic_int have = -1;
  int h = atomic_load(&have);
  if (h < 0) atomic_store(&have, h = mi_dconv_amx_supported());
  return h;
}

/* An env switch read once: 0 ("0"), 1 ("1") or 2 (unset or anything else: the default rule). */
static int env_switch(const char *name, atomic_int *cache) {
  int r = atomic_load(cache);
  if (r < 0) {
    const char *e = getenv(name);
    r = e && !strcmp(e, "0") ? 0 : e && !strcmp(e, "1") ? 1 : 2;
    atomic_store(cache, r);
  }
  return r;
}

static int conv_direct_mode(void) {
  static atomic_int v = -1;
  return env_switch("MEDINFER_CONV_DIRECT", &v);
}

/* MEDINFER_CONV_CV=0|1: the channel-vector kernel never, or on every
 * layer it can run (tests); else on small maps. */
static int conv_cv_mode(void) {
  static atomic_int v = -1;
  return env_switch("MEDINFER_CONV_CV", &v);
}

/* AMX's K blocks are 16 channel pairs: few channels (an RGB stem) would be
 * mostly zero padding there. */
#define AMX_MIN_C 24

/* Whether a layer of C input channels runs in bf16 (the mode is on and the
 * CPU has AVX512-BF16).  Where the CPU has AMX, the layers AMX does not take
 * stay in FP32: there vdpbf16ps ran slower than FP32 FMAs (ResNet-50 with
 * every layer on it 56.3 ms, FP32 33.0; its 7x7 RGB stem 1.84 ms, FP32 1.0). */
static bool direct_bf16(const mi_exec *ex, int64_t C) {
  static atomic_int have = -1;
  int h = atomic_load(&have);
  if (h < 0) atomic_store(&have, h = mi_bf16_available());
  return ex->bf16 && h && (C >= AMX_MIN_C || !direct_amx());
}

/* Output z-planes per input copy (a 2D layer: 1, its only plane) so that
 * the copy fits the budget, and ph set for them; 0 when not even one does.
 * phases: a strided layer's input split into its stride phases (the
 * position-vector kernels); else the plain padded grid (the channel-vector
 * kernel, which steps its positions by the strides: the phase split cost
 * it 17% of a 128-channel stride-2 layer, whose copy is now row memcpys;
 * ResNet-50's strided 3x3 layers 1.49-1.62 -> 1.33-1.41 ms). */
static int64_t direct_slab(const geom *g, int64_t C, bool bf16, bool phases, phase_geom *ph) {
  phase_extent(g, phases, ph);
  if (C * ph->csz >= INT32_MAX) return 0; /* the tap offsets are 32-bit, and an unpadded input is read whole */
  /* bf16: the pairs alone (made from the input itself), half a copy: the
   * 3D U-Net's slabs four times deeper than when the pairs counted as two
   * copies, each plane's pairs made fewer times over, 1300 -> 1172 ms */
  const int64_t per_plane = (bf16 ? (C + 1) / 2 : C) * ph->sy * ph->sx * ph->h * ph->w * (int64_t)sizeof(float);
  /* zo output planes read (zo - 1) * s[0] + (k[0] - 1) * d[0] + 1 input planes */
  const int64_t fit = pad_copy_budget() / per_plane - (g->k[0] - 1) * g->d[0] - 1;
  if (fit < 0) return 0;
  int64_t zo = fit / g->s[0] + 1;
  if (zo > g->out[0]) zo = g->out[0];
  phase_slab(g, zo, ph);
  return C * ph->csz < INT32_MAX ? zo : 0;
}

static bool direct_wanted(const mi_exec *ex, const geom *g, const conv_attr *a, int64_t C, int64_t M, bool pre) {
  const int mode = conv_direct_mode();
  const bool bf16 = direct_bf16(ex, C);
  /* The ISA first: the kernel files' code (mi_dconv_supported included) is
   * compiled for AVX-512 or AVX2 and must not run on a CPU without it. */
  const mi_isa isa = mi_isa_level();
  if ((mode == 0 && !bf16) || a->group != 1 || !a->wpack || (isa != MI_ISA_AVX512 && isa != MI_ISA_AVX2)) return false;
  const mi_gemm_packed_view v = mi_gemm_packed_a_view(a->wpack[0]);
  if (!(isa == MI_ISA_AVX2 ? mi_dconv_supported_avx2(&v) : mi_dconv_supported(&v))) return false;
  if (g->s[0] > 2 || g->s[1] > 2 || g->s[2] > 2) return false;
  phase_geom ph;
  if (!direct_slab(g, C, bf16, true, &ph)) return false;
  if (mode == 1 || bf16) return true; /* bf16: twice the multiply-adds per instruction, every layer gains */
  /* Measured on ResNet-50, DenseNet-121 and VGG-16 layers: it wins while
   * the weights are few rows (each 8-row panel rereads its input tile).  A
   * 1x1 layer takes it only when it reads its input in place: with an input
   * prologue it would need a normalised copy that the implicit GEMM's gather
   * avoids (DenseNet's 14x14 1x1 layers: 97 against 120 GFLOP/s).  3D
   * layers (stride 1 in z) take it at every width: their implicit GEMM
   * gathers 27 taps per channel, and the 3D U-Net's 3x3x3 layers ran 1.1 to
   * 1.9x faster here (the full-resolution ones most), slab by slab. */
  if (g->k_sz == 1 && (pre || g->s[1] * g->s[2] > 1)) return false;
  /* Strided in z (a 3D U-Net's downsampling): the implicit GEMM (its
   * 32 -> 64-channel 96^3 layer 78.5 ms there, 89.0 here); in bf16 the
   * direct kernel (80.1 -> 54.4 ms). */
  if (g->s[0] > 1) return false;
  if (g->out[0] > 1 && g->k[0] > 1) return true;
  /* A 64-channel group's weights past 1 MB leave L2 between tiles: PSPNet's
   * 3x3 layer of 1024 input channels (K 9216) ran 11.0 ms here, 8.2 on the SGEMM. */
  if (C * g->k_sz > 4096) return false;
  /* So few rows (an RGB 3x3 first layer: K 27) that each tile is mostly
   * its stores: VGG's 224x224 one 2.14 ms here, 1.51 on the SGEMM. */
  if (C * g->k_sz < 64) return false;
  /* AVX2 (Zen 4 with MEDINFER_ISA=avx2, ResNet-50's layers against the
   * implicit GEMM, ms per node): the 6x16 SGEMM tiles hold their own on
   * maps of 28x28 and less unless the layer is narrow (3x3 layers of 128
   * channels at 28x28 1.29 -> 1.33-1.48, of 256 at 14x14 1.31 -> 1.44, 1x1
   * ones of 128 0.51 -> 0.56); at 56x56 the direct kernel gains (3x3 of 64
   * channels 1.44 -> 1.29, the 7x7 stem 1.67 -> 1.61), but not 1x1 layers
   * wider than 64 channels (64 -> 256: 0.82-0.90 -> 0.60, 256 -> 128: 1.10
   * -> 1.01). */
  if (isa == MI_ISA_AVX2) return M <= 64 || (g->k_sz > 1 && g->out[1] * g->out[2] >= 56 * 56);
  if (g->s[1] * g->s[2] > 1) return M <= 128; /* strided: the 7x7 stem gains, 256-channel layers lose */
  return M <= 128 || (g->k_sz > 1 && M <= 256);
}

/* The channel-vector kernel (dconv_cv.c): FP32, output channels in whole
 * vectors, the map small.  There the position-vector kernel keeps whole
 * 8-channel x 16-position tiles on a padded grid (a 7x7 map: 49 of 64
 * positions real) and both threads stream the weights; here a tile is any 6
 * positions and each block's weights are read in order, once per thread
 * (a 7x7 3x3 layer of 512 channels, weights out of the caches: 1.6 ->
 * 1.2 ms, ONNX Runtime 1.2). */
static bool cv_fits(const mi_exec *ex, const geom *g, int64_t C, int64_t M, bool own) {
  const mi_isa isa = mi_isa_level();
  if (conv_cv_mode() == 0 || !own || (isa != MI_ISA_AVX512 && isa != MI_ISA_AVX2) || M % 16) return false;
  if (direct_bf16(ex, C) && (isa != MI_ISA_AVX512 || direct_amx())) return false; /* bf16: AVX-512's tile, not AMX's */
  if (g->s[0] > 2 || g->s[1] > 2 || g->s[2] > 2) return false;
  phase_geom ph;
  return direct_slab(g, C, false, false, &ph) != 0;
}

/* The channel-vector kernel's tap skips (mi_dconv_job.skip_rows, skip_cols:
 * out[1] then out[2] masks, one allocation) of a padded 2D layer of at most
 * 64 taps; NULL where no tap reads only padding (or out of memory: none
 * skipped, the same result). */
static uint64_t *padding_taps(const geom *g) {
  if (g->k[0] != 1 || g->k_sz > 64) return NULL;
  uint64_t *m = malloc((size_t)(g->out[1] + g->out[2]) * sizeof *m);
  if (!m) return NULL;
  uint64_t any = 0;
  for (int dim = 1; dim <= 2; dim++)
    for (int64_t o = 0; o < g->out[dim]; o++) {
      uint64_t bits = 0;
      for (int64_t t = 0; t < g->k_sz; t++) {
        const int64_t kt = dim == 1 ? t / g->k[2] : t % g->k[2], i = o * g->s[dim] - g->pb[dim] + kt * g->d[dim];
        if (i < 0 || i >= g->in[dim]) bits |= (uint64_t)1 << t;
      }
      m[(dim == 2 ? g->out[1] : 0) + o] = bits;
      any |= bits;
    }
  if (!any) {
    free(m);
    return NULL;
  }
  return m;
}

/* Whether the channel-vector kernel's padded copy of an NCHW input is made
 * channel-blocked (conv_direct's src16; padcopy16_rows): 2D, whole blocks
 * of 16 channels, no input prologue. */
static bool copy16_ok(const geom *g, int64_t C, bool pre) {
  return !pre && C % 16 == 0 && g->in[0] == 1 && g->k[0] == 1;
}

static bool cv_wanted(const mi_exec *ex, const geom *g, int64_t C, int64_t M, bool own, bool pre) {
  if (!cv_fits(ex, g, C, M, own)) return false;
  if (conv_cv_mode() == 1) return true;
  /* A padded 2D layer whose copy is made channel-blocked (conv_direct's
   * src16): any K, as on blocked tensors (chan16_caps).  PSPNet's head, a
   * 1024-channel 3x3 layer on a concatenation, K 9216: per-node minimum
   * 12.8 ms on the SGEMM, 11.1 here (ONNX Runtime in calm minutes: 11.1);
   * the whole network, builds alternating in one process, first quartile
   * 90.8 -> 85.0 ms. */
  int64_t pin[3]; /* taps before or after the input: a padded copy */
  padded_extent(g, pin);
  bool padded = false;
  for (int j = 0; j < 3; j++) padded = padded || g->pb[j] || pin[j] != g->in[j];
  const int64_t pos = g->out[0] * g->out[1] * g->out[2], K = C * g->k_sz;
  if (padded && copy16_ok(g, C, pre) && g->k_sz > 1 && g->s[1] * g->s[2] == 1 &&
      pos <= 1024) /* maps of up to 32x32, as measured; larger ones by the rules below */
    return true;
  /* Up to 16x16, and up to 32x32 while K is small (ResNet-50's 28x28 3x3
   * layers, K 1152: 0.90 -> 0.68 ms).  Larger maps while K <= 2304 (chains
   * of 3x3 layers, ms per chain: 64-ch 56x56 5.19 -> 4.73, 128-ch 112x112
   * 35.9 -> 31.5, 256-ch 56x56 39.6 -> 35.8): in 3D while the output stays
   * under 8 MB, in 2D at any size now that the sums are stored by channel
   * rows (VGG-16's 64-ch 224x224 layer, 12.8 MB out: 43.1 -> 48.1 ms when
   * they were scattered value by value, now 21.1 -> 17.3 ms against the
   * position-vector kernel, best of 4 alternating runs), but not with so few
   * rows that a tile is mostly its stores (VGG's RGB 3x3 first layer, K 27:
   * 1.6 -> 2.4 ms); and not strided ones, the 7x7 RGB stems (PSPNet's
   * 0.87 -> 1.46 ms).  PSPNet's dilated 24x24 layers (K 4608) took twice as
   * long here while each tile read its block's whole K, and with K in chunks
   * (dconv_cv.c) still no less (16.0-17.1 against 15.5-15.7 ms), on NCHW
   * copies (now blocked ones, above).  1x1 layers, strided ones too,
   * measured as fast or faster on the SGEMM. */
  const int64_t out_bytes = M * pos * (int64_t)sizeof(float);
  const bool strided = g->s[1] * g->s[2] > 1;
  const bool large_ok = out_bytes <= (8 << 20) || (g->out[0] == 1 && K >= 64);
  /* AVX2 (Zen 4 at MEDINFER_ISA=avx2, ResNet-50's layers, ms per node
   * against the SGEMM): the rules below, and also the 7x7 stride-2 RGB stem
   * (1.78 -> 1.40) and 1x1 layers read in place on maps of up to 16x16 that
   * narrow the channels (14x14 1024 -> 256: 0.76 -> 0.66; the widening ones
   * lost, 256 -> 1024: 0.67 -> 0.74, as did those on 28x28 and larger). */
  if (mi_isa_level() == MI_ISA_AVX2) {
    if (g->k_sz == 1) return !pre && pos <= 256 && K >= 2 * M;
    if (strided && K <= 2304 && large_ok) return true;
  }
  /* bf16 (AVX-512 without AMX: cv_fits), ResNet-50's 1x1 layers per node
   * against the position-vector kernel, whose 16-position vectors are a
   * quarter empty on a 7x7 map: at 7x7 all gain (2048 -> 512 0.41 -> 0.27
   * ms, 512 -> 2048 0.37 -> 0.31), at 14x14 those that narrow the channels
   * (1024 -> 256 0.29 -> 0.26; 256 -> 1024 lost, 0.29 -> 0.35), at 28x28
   * and more none (256 -> 512 0.27 -> 0.46).  With an input prologue too:
   * either kernel applies it while making the channel pairs (DenseNet-121
   * bf16 17.9 -> 17.2 ms, runs alternating in one process). */
  if (g->k_sz == 1 && direct_bf16(ex, C)) return !strided && (pos <= 64 || (pos <= 256 && K >= 2 * M));
  /* Not 3D layers of 16 output channels or fewer with AVX-512 (one row of
   * tiles: 12 sums a tile, as many loads as products a step).  16 -> 16
   * channels, per-node minimums against the position-vector kernel, ms: 8^3
   * 0.046 -> 0.042, 16^3 0.29 -> 0.23, 32^3 1.93 -> 1.46, 48^3 6.60 -> 4.85;
   * 32 -> 16 at 32^3 3.49 -> 2.59; bf16 at 16^3 0.16 -> 0.12, at 32^3 even.
   * With AVX2 this kernel still wins (16 -> 16 at 32^3 2.52 against 2.80). */
  if (g->out[0] > 1 && M <= 16 && mi_isa_level() == MI_ISA_AVX512) return false;
  /* 3D layers on volumes of up to 48^3 at any K (the 3D U-Net's, per node,
   * this kernel against the position-vector one, ms: its 12^3 ones 71.7 ->
   * 61.0, 35.7 -> 29.5, 34.8 -> 29.2; 24^3 127.3 -> 114.4, 60.6 -> 55.7,
   * 60.6 -> 55.5; 48^3 233 -> 224, 117 -> 113, 117 -> 112, at AVX2 260 ->
   * 241, 127 -> 120, 127 -> 119, in bf16 124.0 -> 117.7, 64.9 -> 59.3; 96^3
   * ones, 32 channels, lost: 239 -> 276 on one alone). */
  if (g->out[0] > 1 && g->k_sz > 1 && g->s[0] * g->s[1] * g->s[2] == 1 &&
      pos <= 48 * 48 * 48)
    return true;
  /* Strided in z too (a U-Net's downsampling) on outputs of up to 16^3
   * while K is small: the demo model's 16 -> 32 channels to 16^3 1.30-1.39
   * -> 0.73-0.79 ms.  The 3D U-Net's larger ones stay on the implicit GEMM
   * (64 channels at 48^3 49.9 there, 57.4 here; 128 at 24^3 and 256 at 12^3,
   * K 3456, even). */
  if (g->out[0] > 1 && g->k_sz > 1 && g->s[0] > 1 && pos <= 16 * 16 * 16 && K <= 1152) return true;
  return g->k_sz > 1 && (pos <= 256 || (pos <= 1024 && K <= 1152) || (!strided && K <= 2304 && large_ok));
}

/* What of NCHW16c (mi_tensor.chan16: channels in blocks of 16, each
 * position's 16 one vector) this layer can read and write: the
 * channel-vector kernel's own order, which it then stores without
 * transposing and reads with one stride for every channel.  FP32 layers,
 * not bf16, the layer's own packed weights, no input prologue, the
 * activation ReLU or none, 2D, the kernel's conditions (cv_fits), so also
 * layers that cv_wanted would leave to the SGEMM on NCHW tensors (on
 * blocked ones the kernel held its own: VGG-16's 28x28 layers of K 4608,
 * 9.0 and 19.2 ms per-node minimums here against 11.2 and 22.4 with them
 * left NCHW on the SGEMM; PSPNet's dilated ones about even); reading it
 * also needs C % 16 == 0.  Fast mode's Winograd layers take them through
 * NCHW copies (MI_CHAN16_COPY, conv_winograd), for the 1x1 layers around
 * them: FCN-ResNet50 in fast mode had its 1x1 layers 10-20 % slower than in
 * exact mode, where they are blocked.
 * plan.c decides each value's layout from it; conv_run then takes the
 * kernel, or Winograd where the call pays on it. */
static bool stem_amx_wanted(const mi_exec *ex, const geom *g, int64_t C, const float *pre);

static unsigned chan16_caps(const mi_node *n, const mi_exec *ex, const conv_attr *a, const mi_tensor *x,
                            const mi_tensor *w, const geom *g) {
  const int64_t C = x->dims[1], M = w->dims[0];
  if (x->dtype != MI_FLOAT || x->ndim != 4 || a->group != 1 || n->pre_affine) return 0;
  if (mi_isa_level() != MI_ISA_AVX512) return 0; /* the blocked layout's kernels (chan16_avx512.c, the AVX-512 tile) */
  if (direct_bf16(ex, C)) return 0; /* bf16: the pairs are made from NCHW inputs */
  if (n->act.kind != MI_ACT_NONE && n->act.kind != MI_ACT_RELU) return 0;
  const bool own = own_weights(a, w->data, M, C * g->k_sz);
  if (!cv_fits(ex, g, C, M, own)) return 0;
  /* bf16 mode's RGB stem on AMX (ResNet-50's: 0.83 ms there, 1.15 on this kernel writing blocked) */
  if (stem_amx_wanted(ex, g, C, NULL)) return 0;
  /* 1x1 layers, which the kernel takes on NCHW tensors only when forced
   * (MEDINFER_CONV_CV=1), ran faster here on channel-blocked ones
   * (ResNet-50, one thread, sums of per-node minimums over runs alternating
   * in both orders: its 56x56 1x1 layers 7.20 -> 6.49 ms, 28x28 11.70 ->
   * 10.44, 14x14 15.32 -> 13.50), except unit-stride ones on maps of up to
   * 64 positions (its last stage's 7x7 512 -> 2048 layers: 3.07-3.58 ms on
   * the SGEMM, 3.86-4.06 here). */
  if (g->k_sz == 1 && g->s[1] * g->s[2] == 1 && g->out[0] * g->out[1] * g->out[2] <= 64) return 0;
  /* Fast mode's Winograd layers through NCHW copies (conv_winograd) */
  bool wino = a->wino_ok;
  if (wino) {
    const mi_wino_conv wc = wino_call(g, x->dims[0]);
    wino = mi_wino_wanted(C, M, g->k[0], &wc) != 0;
  }
  return MI_CHAN16_OUT | (C % 16 ? 0 : MI_CHAN16_IN) | (wino ? MI_CHAN16_COPY : 0);
}

typedef struct pairs_ctx {
  const float *x;
  float *dst;
  int64_t xstride, n, C, csz;
  const float *pre; /* input prologue applied on the way (NULL: none) */
  bool pre_relu;
} pairs_ctx;

static void pairs_planes(void *vctx, int64_t b, int64_t e) {
  const pairs_ctx *c = vctx;
  mi_dconv_bf16_pairs(c->x, c->xstride, c->n, c->C, c->pre, c->pre_relu, c->csz, c->dst, b, e);
}

/* The pairs of a padded (or strided) input, from the input itself
 * (mi_dconv_bf16_pairs_padded); an item is 16 pairs' padded rows
 * [PAIR_ROWS * i, ..).  AMX: in blocks of 16 (mi_dconv_amx_pairs, or
 * with pad set mi_dconv_amx_pairs_padded); an item is one block's
 * positions [AMX_PAIR_CHUNK * i, ..) */
#define PAIR_ROWS 16
#define AMX_PAIR_CHUNK 2048
typedef struct pad_pairs_ctx {
  pairs_ctx p;
  const mi_dconv_pad *pad;
  int64_t left_pbn; /* AMX, > 0: the blocks for left weights (mi_dconv_amx_pairs_cols), this many pair blocks */
  bool blocked;     /* the pairs in blocks of 16 (mi_dconv_bf16_pairs_padded) */
} pad_pairs_ctx;

static void pad_pairs_items(void *vctx, int64_t b, int64_t e) {
  const pad_pairs_ctx *a = vctx;
  const pairs_ctx *c = &a->p;
  const int64_t rows = c->n / a->pad->pw, nr = (rows + PAIR_ROWS - 1) / PAIR_ROWS, CP = (c->C + 1) / 2;
  for (int64_t it = b; it < e; it++) {
    const int64_t p = it / nr * 16, r0 = it % nr * PAIR_ROWS, r1 = r0 + PAIR_ROWS < rows ? r0 + PAIR_ROWS : rows;
    mi_dconv_bf16_pairs_padded(c->x, c->xstride, c->C, c->pre, c->pre_relu, a->pad, c->csz, a->blocked, c->dst, p,
                               p + 16 < CP ? p + 16 : CP, r0, r1);
  }
}

/* Positions a left-weights layer's pairs cover: its work items' whole 32-position tiles. */
static int64_t round32(int64_t n) { return (n + 31) / 32 * 32; }

static void amx_pairs_items(void *vctx, int64_t b, int64_t e) {
  const pad_pairs_ctx *a = vctx;
  const pairs_ctx *c = &a->p;
  const int64_t n = a->left_pbn ? round32(c->n) : c->n, nq = (n + AMX_PAIR_CHUNK - 1) / AMX_PAIR_CHUNK;
  for (int64_t it = b; it < e; it++) {
    const int64_t p = it / nq, q0 = it % nq * AMX_PAIR_CHUNK, q1 = q0 + AMX_PAIR_CHUNK < n ? q0 + AMX_PAIR_CHUNK : n;
    if (a->left_pbn)
      mi_dconv_amx_pairs_cols(c->x, c->xstride, c->C, c->pre, c->pre_relu, a->left_pbn, c->dst, p, p + 1, q0, q1, c->n);
    else if (a->pad)
      mi_dconv_amx_pairs_padded(c->x, c->xstride, c->C, c->pre, c->pre_relu, a->pad, c->csz, c->dst, p, p + 1, q0, q1);
    else
      mi_dconv_amx_pairs(c->x, c->xstride, c->C, c->pre, c->pre_relu, c->csz, c->dst, p, p + 1, q0, q1);
  }
}

/* The layer's weights as a row-major [M][K] copy, from whichever packed form
 * it holds (SGEMM, channel-vector or Winograd); the caller frees it.  NULL
 * when out of memory. */
static float *weights_rows(const conv_attr *a, int64_t M, int64_t K) {
  float *wf = mi_alloc_huge((size_t)(M * K) * sizeof(float));
  if (!wf) return NULL;
  if (a->wpack) {
    mi_gemm_packed_a_rows(a->wpack[0], 0, M, wf);
  } else if (a->wcv.data) {
    mi_dconv_cv_rows(&a->wcv, 0, M, wf);
  } else {
    mi_gemm_packed_a *p = mi_wino_weights_exact(a->wino);
    if (!p) {
      free(wf);
      return NULL;
    }
    mi_gemm_packed_a_rows(p, 0, M, wf);
    mi_gemm_packed_a_free(p);
  }
  return wf;
}

/* in16 / out16 (the channel-vector kernel only): X / Y (and the residual)
 * channel-blocked, NCHW16c (mi_conv_layouts). */
static mi_status *conv_direct(mi_node *n, mi_exec *ex, conv_attr *a, const geom *g, const float *x, const float *pre,
                              const float *bias, const float *res, float *y, int64_t N, int64_t C, int64_t M,
                              int64_t K, bool cv, bool in16, bool out16) {
  /* bf16: the weights in channel pairs once, the input copy converted to
   * channel pairs per call (dconv.h). */
  const bool bf16 = direct_bf16(ex, C); /* cv too (cv_fits: not on AMX) */
  const int64_t CP = (C + 1) / 2;
  const bool amx = bf16 && !cv && C >= AMX_MIN_C && direct_amx();
  /* AMX, a 1x1 layer read in place: the weights the left operand (no transposes) */
  bool left = amx && g->k_sz == 1;
  for (int j = 0; j < 3; j++) left = left && !g->pb[j] && g->s[j] == 1 && g->out[j] == g->in[j];
  if (amx && a->wamx.data && a->wamx.left != left) { /* packed for the other scheme: not expected */
    free(a->wamx.data);
    a->wamx.data = NULL;
  }
  if (bf16 && !cv && !(amx ? a->wamx.data : a->wbf.data)) { /* from the packed weights (the graph's copy may be gone) */
    float *wf = weights_rows(a, M, K);
    const bool ok = wf && (amx ? mi_dconv_amx_pack(wf, M, C, g->k_sz, left, &a->wamx)
                               : mi_dconv_bf16_pack(wf, M, C, g->k_sz, &a->wbf));
    free(wf);
    if (!ok) return mi_node_error(n, MI_ERR_NO_MEMORY, "out of memory for the bf16 weights");
  }
  /* AMX: pair planes up to whole 16-pair blocks (zeros), slack after the last */
  const int64_t CPP = amx ? a->wamx.pblocks * 16 : (C + 1) / 2;
  phase_geom ph;
  const int64_t zo = direct_slab(g, C, bf16, !cv, &ph); /* output planes per copy (direct_wanted: >= 1) */
  bool has_pad = ph.sy * ph.sx > 1;
  for (int j = 0; j < 3; j++)
    if (ph.pin[j] != g->in[j] || g->pb[j]) has_pad = true;
  if (!has_pad && !pre && !bf16) phase_extent(g, !cv, &ph); /* read in place: the whole volume */
  /* The input through a slab copy: padded (or normalised) in FP32, or in
   * bf16 the channel pairs, made from the input itself (normalised on the
   * way), padded and in its stride phases as the kernel reads them (no
   * padded FP32 copy first: the 3D U-Net's copy and pairs passes took 14 %
   * of its bf16 samples). */
  const bool copied = has_pad || pre || bf16;
  const bool pad_pairs = bf16 && has_pad;
  const bool padcopy = !bf16 && (has_pad || pre);
  /* The kernel's source channel-blocked: the input, or its padded copy made
   * so (padcopy16_rows), or in bf16 the pairs of a padded 2D layer in blocks
   * of 16 (then also its padding taps skipped) */
  const bool src16 = in16 || (cv && padcopy && copy16_ok(g, C, pre != NULL)) ||
                     (cv && pad_pairs && CP % 16 == 0 && g->in[0] == 1 && g->k[0] == 1);
  mi_dconv_cv_weights *wcv = bf16 ? &a->wcvbf : &a->wcv;
  if (cv && bf16 && !wcv->data) { /* channel pairs, from the packed weights (kept: other calls may need them) */
    float *wf = weights_rows(a, M, K);
    const bool ok = wf && mi_dconv_cv_pack_bf16(wf, M, C, g->k_sz, src16, wcv);
    free(wf);
    if (!ok) return mi_node_error(n, MI_ERR_NO_MEMORY, "out of memory for the channel-vector weights");
  }
  if (cv && !wcv->data) { /* from the packed (or Winograd) weights, which they then replace */
    float *wf = weights_rows(a, M, K);
    /* a blocked source: the steps in its order (a 1x1 layer's are already) */
    const bool ok = wf && mi_dconv_cv_pack(wf, M, K, src16 ? g->k_sz : 0, &a->wcv);
    free(wf);
    if (!ok) return mi_node_error(n, MI_ERR_NO_MEMORY, "out of memory for the channel-vector weights");
    if (a->wpack) {
      mi_gemm_packed_a_free(a->wpack[0]);
      free(a->wpack);
      a->wpack = NULL;
    }
  }
  float *xpad = padcopy ? mi_exec_scratch(ex, (size_t)(C * ph.csz) * sizeof(float)) : NULL;
  const int64_t slack = amx ? MI_DCONV_AMX_SLACK : 64;
  float *xpair = bf16 ? mi_exec_scratch(ex, (size_t)(CPP * (left ? round32(ph.csz) : ph.csz) + slack) * sizeof(float)) : NULL;
  if (xpair) /* pads (AMX: written with the blocks), slack */
    memset(xpair + (amx ? CPP : CP) * ph.csz, 0, (size_t)((amx ? 0 : (CPP - CP) * ph.csz) + slack) * sizeof(float));
  const int64_t ntap = bf16 ? CPP * g->k_sz : K; /* rows of the product */
  const int64_t zplane = ph.sy * ph.sx * ph.h * ph.w; /* one z of one channel: its phase planes */
  /* Tap offsets: kept for the next call of the same geometry (every call, in a network) */
  const int64_t order = cv ? wcv->taps : -1; /* the steps' order: the channel-vector weights' */
  const int64_t key[8] = {ntap, ph.csz, zplane, ph.w, ph.sy, ph.sx, src16, order};
  const bool same = a->toff && !memcmp(key, a->toff_key, sizeof key);
  if (!same) {
    free(a->toff);
    a->toff = malloc((size_t)ntap * sizeof *a->toff);
  }
  int32_t *toff = a->toff;
  if ((!xpad && padcopy) || (bf16 && !xpair) || !toff) {
    if (xpad) mi_exec_scratch_release(ex, xpad);
    if (xpair) mi_exec_scratch_release(ex, xpair);
    return mi_node_error(n, MI_ERR_NO_MEMORY, "out of memory for the direct kernel's input copy");
  }
  memcpy(a->toff_key, key, sizeof key);
  for (int64_t k = 0; k < ntap && !same; k++) { /* ch: a channel, or in bf16 a channel pair */
    const int64_t src = cv ? mi_dconv_cv_source(wcv, k) : k, ch = src / g->k_sz, kk = src % g->k_sz;
    const int64_t kz = kk / (g->k[1] * g->k[2]), ky = (kk / g->k[2]) % g->k[1], kx = kk % g->k[2];
    const int64_t ty = ky * g->d[1], tx = kx * g->d[2]; /* the tap in padded input coordinates */
    const int64_t phase = (ty % ph.sy) * ph.sx + tx % ph.sx;
    const int64_t tap = kz * g->d[0] * zplane + phase * ph.h * ph.w + (ty / ph.sy) * ph.w + tx / ph.sx;
    toff[k] = (int32_t)(src16 ? (ch / 16 * ph.csz + tap) * 16 + ch % 16 : ch * ph.csz + tap);
  }
  /* Bias, the residual and ReLU in the kernel's registers; anything else
   * after each store.  The AVX-512 position-vector kernel adds the residual
   * where it stores tiles straight to Y (not through a buffer: grid rows of
   * under 16), which cost bf16 mode a pass per tile (ResNet-50: 7 % of its
   * samples in that pass). */
  const bool pv_res = !cv && !amx && mi_isa_level() == MI_ISA_AVX512 && (ph.w == g->out[2] || ph.w >= 16);
  const bool simple =
      (!res || amx || out16 || pv_res) && (n->act.kind == MI_ACT_NONE || n->act.kind == MI_ACT_RELU);
  uint64_t *skip = cv && has_pad && wcv->taps > 1 ? padding_taps(g) : NULL; /* taps > 1: blocked order */
  const int64_t oplane = g->out[1] * g->out[2];
  for (int64_t b = 0; b < N; b++)
   for (int64_t z0 = 0; z0 < g->out[0]; z0 += copied ? zo : g->out[0]) {
    const float *xb = x + b * C * g->in_sz;
    const int64_t zin = z0 * g->s[0]; /* the slab's first padded z-plane */
    if (xpad) { /* the padded planes of output planes [z0, z0 + zo) */
      phasecopy_ctx pc = {g, &ph, xb, xpad, pre, C, n->pre_relu, zin, !in16, 0, 0};
      /* Planes the previous slab also held (a 3x3x3 layer's last two) are
       * moved to the front, not made again from the input: a 64 -> 32-channel
       * 96^3 layer's slab holds 6 planes for 4 output planes, so a third of
       * its input was read twice.  Its time in calm minutes even (467-470
       * ms before, 469-471 after), with an 8 MB budget 483 -> 475; it reads
       * less memory, which is what this machine's slow hours lack (a copy
       * budget of 8 MB cost that layer 604 ms in one, against 525 with 16). */
      if (z0 > 0 && !src16) {
        pc.from = zo * g->s[0];
        pc.keep = clamp64(ph.zs - pc.from, 0, ph.pin[0] - zin);
      }
      if (src16) mi_parallel_for(ex, C / 16 * ph.zs * ph.h, 1, padcopy16_rows, &pc);
      else mi_parallel_for(ex, C, 1, phasecopy_planes, &pc);
      xb = xpad;
    }
    /* bf16 pairs from the input: unpadded, the padded z-planes are input
     * planes, [zin, zend) of them in this slab; else mapped position by
     * position (pad_pairs) */
    if (bf16) {
      const int64_t zend = zin + ph.zs < ph.pin[0] ? zin + ph.zs : ph.pin[0];
      pairs_ctx pc = {xb, xpair, g->in_sz, ph.csz, C, ph.csz, pre, n->pre_relu};
      if (!pad_pairs) pc.x = xb + zin * ph.h * ph.w, pc.n = (zend - zin) * ph.h * ph.w;
      const mi_dconv_pad pad = {{g->in[0], g->in[1], g->in[2]}, {g->pb[0], g->pb[1], g->pb[2]}, ph.h, ph.w, zin, ph.sy, ph.sx};
      pad_pairs_ctx ac = {pc, pad_pairs ? &pad : NULL, left ? CPP / 16 : 0, src16};
      if (amx) {
        const int64_t np = left ? round32(pc.n) : pc.n;
        mi_parallel_for(ex, CPP / 16 * ((np + AMX_PAIR_CHUNK - 1) / AMX_PAIR_CHUNK), 1, amx_pairs_items, &ac);
      } else if (pad_pairs) {
        mi_parallel_for(ex, (CP + 15) / 16 * ((pc.n / ph.w + PAIR_ROWS - 1) / PAIR_ROWS), 1, pad_pairs_items, &ac);
      } else {
        mi_parallel_for(ex, CP, 1, pairs_planes, &pc);
      }
      xb = xpair;
    }
    float *yb = y + b * M * g->out_sz;
    epi_block_ctx ec = {n, yb, bias, res ? res + b * M * g->out_sz : NULL};
    const mi_gemm_epilogue epi = {.fn = epi_block, .ctx = &ec};
    const int64_t planes = copied && g->out[0] - z0 > zo ? zo : g->out[0] - z0;
    const int64_t xs = src16 ? 16 : 1, ys = out16 ? 16 : 1; /* floats per position */
    mi_dconv_job job = {cv ? (mi_gemm_packed_view){0} : bf16 ? a->wbf.view : mi_gemm_packed_a_view(a->wpack[0]), xb, toff, planes, zplane * xs * g->s[0],
                        (g->out[1] - 1) * ph.w + g->out[2], ph.w, g->out[2], oplane, yb + z0 * oplane * ys,
                        g->out_sz, NULL, false, NULL, 0, ph.csz, NULL, false, cv ? g->s[1] * xs : 1, cv ? g->s[2] * xs : 1,
                        out16, skip, skip ? skip + g->out[1] : NULL};
    if (simple) {
      job.bias = bias;
      job.relu = n->act.kind == MI_ACT_RELU;
      /* AMX, chan16 and the AVX-512 position-vector kernel's direct stores (simple allows it there); the slab's */
      job.res = res ? res + b * M * g->out_sz + z0 * oplane * ys : NULL;
    } else {
      job.epi = &epi;
    }
    /* Weights larger than the input (the 14x14 and 7x7 layers): each thread
     * walks its groups' tiles in turn and reads each weight from memory once
     * (on AMX too: FCN-ResNet50 bf16 45.0 -> 33.0 ms, PSPNet 18.6 -> 14.9,
     * ResNet-50 14.9 -> 13.6). */
    job.group_major = M * K > C * ph.csz;
    /* Small layers (a DenseNet's 14x14 and 7x7 ones): narrower channel
     * groups, so that every thread gets a few items. */
    for (job.mgroup = 64;
         !cv && job.mgroup > 8 && (bf16 ? mi_dconv_items_bf16(&job) : dconv_count(&job)) < 4 * ex->threads;)
      job.mgroup /= 2;
    if (cv) {
      job_weights cc = {&job, wcv};
      if (bf16) mi_parallel_for(ex, mi_dconv_cv_items_bf16(&job, wcv), 1, dconv_items_cv_bf16, &cc);
      else mi_parallel_for(ex, dconv_count_cv(&job, wcv), 1, dconv_items_cv, &cc);
    } else if (amx) {
      job_weights ac = {&job, &a->wamx};
      mi_parallel_for(ex, mi_dconv_items_amx(&job, &a->wamx), 1, dconv_items_amx, &ac);
    } else if (bf16) mi_parallel_for(ex, mi_dconv_items_bf16(&job), 1, dconv_items_bf16, &job);
    else mi_parallel_for(ex, dconv_count(&job), 1, dconv_items, &job);
  }
  free(skip);
  if (xpair) mi_exec_scratch_release(ex, xpair);
  if (xpad) mi_exec_scratch_release(ex, xpad);
  return NULL;
}
/* bf16 on AMX, a 2D layer of fewer than AMX_MIN_C channels (an RGB 7x7
 * stride-2 stem, K = 147): its im2col matrix as the pair blocks of a 1x1
 * layer of K channels with left weights (mi_dconv_amx_im2col_cols), not FP32. */
static mi_dconv_im2col stem_geom(const geom *g, int64_t C) {
  return (mi_dconv_im2col){C,       g->in[1], g->in[2], g->k[1],  g->k[2],  g->s[1],
                           g->d[1], g->pb[1], g->pb[2], g->out[1], g->out[2]};
}

static bool stem_amx_wanted(const mi_exec *ex, const geom *g, int64_t C, const float *pre) {
  if (!ex->bf16 || C >= AMX_MIN_C || C * g->k_sz < 64 || pre || g->k[0] != 1 || g->in[0] != 1 || g->s[1] > 2 ||
      !direct_amx() || !direct_bf16(ex, AMX_MIN_C) || mi_isa_level() != MI_ISA_AVX512)
    return false;
  const mi_dconv_im2col ig = stem_geom(g, C);
  return mi_dconv_amx_stem_ok(&ig, g->s[2], g->d[2]);
}

typedef struct stem_cols_ctx {
  const float *x;
  const mi_dconv_im2col *g;
  int64_t pbn, n;
  float *dst;
} stem_cols_ctx;

#define STEM_CHUNK 256 /* positions per item of the conversion */
static void stem_cols_items(void *vctx, int64_t b, int64_t e) {
  const stem_cols_ctx *c = vctx;
  for (int64_t it = b; it < e; it++) {
    const int64_t q0 = it * STEM_CHUNK, q1 = q0 + STEM_CHUNK < c->n ? q0 + STEM_CHUNK : c->n;
    mi_dconv_amx_im2col_cols(c->x, c->g, c->pbn, c->dst, q0, q1);
  }
}

static mi_status *conv_stem_amx(mi_node *n, mi_exec *ex, conv_attr *a, const geom *g, const float *x,
                                const float *bias, const float *res, float *y, int64_t N, int64_t C, int64_t M,
                                int64_t K) {
  if (!a->wamx.data) { /* the K taps as the channels of a 1x1 layer */
    float *wf = weights_rows(a, M, K);
    const bool ok = wf && mi_dconv_amx_pack(wf, M, K, 1, true, &a->wamx);
    free(wf);
    if (!ok) return mi_node_error(n, MI_ERR_NO_MEMORY, "out of memory for the bf16 weights");
  }
  /* whole 32-position tiles (OW is a multiple of 16: one more block at most) */
  const int64_t pbn = a->wamx.pblocks, np = round32(g->out_sz);
  float *xpair = mi_exec_scratch(ex, (size_t)(pbn * 16 * np) * sizeof(float));
  if (!xpair) return mi_node_error(n, MI_ERR_NO_MEMORY, "out of memory for the stem's pairs");
  if (np > g->out_sz) memset(xpair + pbn * 16 * g->out_sz, 0, (size_t)(pbn * 16 * (np - g->out_sz)) * sizeof(float));
  const mi_dconv_im2col ig = stem_geom(g, C);
  const bool simple = n->act.kind == MI_ACT_NONE || n->act.kind == MI_ACT_RELU;
  for (int64_t b = 0; b < N; b++) {
    stem_cols_ctx sc = {x + b * C * g->in_sz, &ig, pbn, g->out_sz, xpair};
    mi_parallel_for(ex, (g->out_sz + STEM_CHUNK - 1) / STEM_CHUNK, 1, stem_cols_items, &sc);
    float *yb = y + b * M * g->out_sz;
    epi_block_ctx ec = {n, yb, bias, res ? res + b * M * g->out_sz : NULL};
    const mi_gemm_epilogue epi = {.fn = epi_block, .ctx = &ec};
    mi_dconv_job job = {{0}, xpair, NULL, 1, g->out_sz, g->out_sz, g->out[2], g->out[2], g->out_sz, yb,
                        g->out_sz, NULL, false, NULL, 0, 0, NULL, false, 1, 1, false, NULL, NULL};
    if (simple) {
      job.bias = bias;
      job.relu = n->act.kind == MI_ACT_RELU;
      job.res = res ? res + b * M * g->out_sz : NULL;
    } else {
      job.epi = &epi;
    }
    job_weights ac = {&job, &a->wamx};
    mi_parallel_for(ex, mi_dconv_items_amx(&job, &a->wamx), 1, dconv_items_amx, &ac);
  }
  mi_exec_scratch_release(ex, xpair);
  return NULL;
}

/* bf16 without AMX, a 2D stride-2 layer of up to 4 channels (an RGB stem)
 * in pairs of adjacent columns (mi_dconv_bf16_colpairs) on the
 * position-vector kernel: channel pairs leave a quarter of an RGB layer's
 * products zeros and split the input into four stride phases.  Per node:
 * ResNet-50's 7x7 stem 0.92 -> 0.81 ms, PSPNet's 0.71 -> 0.57; whole
 * networks, alternating in one process: ResNet-50 20.3 -> 20.0, DenseNet-121
 * 16.8 -> 16.3, PSPNet 28.8 -> 28.4. */
static bool stem_pairs_wanted(const mi_exec *ex, const geom *g, int64_t C, const float *pre) {
  const int64_t words = 2 * C * (g->out[1] + (g->k[1] - 1) / 2) * (g->out[2] + (g->k[2] + 1) / 2 - 1);
  return ex->bf16 && !pre && C <= 4 && g->k[0] == 1 && g->in[0] == 1 && g->s[1] == 2 && g->s[2] == 2 &&
         g->d[1] == 1 && g->d[2] == 1 && g->k[2] >= 3 && words < INT32_MAX && /* the tap offsets are 32-bit */
         mi_isa_level() == MI_ISA_AVX512 && !direct_amx() && direct_bf16(ex, C);
}

typedef struct colpairs_ctx {
  const float *x;
  const geom *g;
  int64_t hr, ww;
  float *dst;
} colpairs_ctx;

static void colpairs_rows(void *vctx, int64_t b, int64_t e) {
  const colpairs_ctx *c = vctx;
  mi_dconv_bf16_colpairs(c->x, c->g->in[1], c->g->in[2], c->g->pb[1], c->g->pb[2], c->hr, c->ww, c->dst, b, e);
}

static mi_status *conv_stem_pairs(mi_node *n, mi_exec *ex, conv_attr *a, const geom *g, const float *x,
                                  const float *bias, const float *res, float *y, int64_t N, int64_t C, int64_t M,
                                  int64_t K) {
  const int64_t k1 = g->k[1], k2 = g->k[2], kxp = (k2 + 1) / 2, steps = C * k1 * kxp;
  const int64_t hr = g->out[1] + (k1 - 1) / 2, ww = g->out[2] + kxp - 1; /* rows a phase, words a row */
  if (!a->wstem.data) { /* step (c, ky, j): taps kx = 2j, 2j + 1 (zero past the kernel) as a channel pair */
    float *wf = weights_rows(a, M, K), *wp = wf ? calloc((size_t)(M * 2 * steps), sizeof *wp) : NULL;
    for (int64_t m = 0; wp && m < M; m++)
      for (int64_t i = 0; i < steps; i++)
        for (int64_t e = 0; e < 2; e++) {
          const int64_t kx = 2 * (i % kxp) + e, row = i / kxp; /* row: c * k1 + ky */
          if (kx < k2) wp[(m * steps + i) * 2 + e] = wf[m * K + row * k2 + kx];
        }
    const bool ok = wp && mi_dconv_bf16_pack(wp, M, 2 * steps, 1, &a->wstem);
    free(wp);
    free(wf);
    if (!ok) return mi_node_error(n, MI_ERR_NO_MEMORY, "out of memory for the bf16 weights");
  }
  int32_t *toff = malloc((size_t)steps * sizeof *toff);
  float *xw = mi_exec_scratch(ex, (size_t)(2 * C * hr * ww + 64) * sizeof(float));
  if (!toff || !xw) {
    free(toff);
    if (xw) mi_exec_scratch_release(ex, xw);
    return mi_node_error(n, MI_ERR_NO_MEMORY, "out of memory for the stem's column pairs");
  }
  memset(xw + 2 * C * hr * ww, 0, 64 * sizeof(float));
  for (int64_t i = 0; i < steps; i++) {
    const int64_t c = i / (k1 * kxp), ky = i / kxp % k1, j = i % kxp;
    toff[i] = (int32_t)(((c * 2 + ky % 2) * hr + ky / 2) * ww + j);
  }
  const bool simple = !res && (n->act.kind == MI_ACT_NONE || n->act.kind == MI_ACT_RELU);
  for (int64_t b = 0; b < N; b++) {
    colpairs_ctx cc = {x + b * C * g->in_sz, g, hr, ww, xw};
    mi_parallel_for(ex, 2 * C * hr, 1, colpairs_rows, &cc);
    float *yb = y + b * M * g->out_sz;
    epi_block_ctx ec = {n, yb, bias, res ? res + b * M * g->out_sz : NULL};
    const mi_gemm_epilogue epi = {.fn = epi_block, .ctx = &ec};
    mi_dconv_job job = {a->wstem.view, xw, toff, 1, 0, (g->out[1] - 1) * ww + g->out[2], ww, g->out[2], g->out_sz,
                        yb, g->out_sz, NULL, false, NULL, 0, 2 * C * hr * ww, NULL, false, 1, 1, false, NULL, NULL};
    if (simple) {
      job.bias = bias;
      job.relu = n->act.kind == MI_ACT_RELU;
    } else {
      job.epi = &epi;
    }
    for (job.mgroup = 64; job.mgroup > 8 && mi_dconv_items_bf16(&job) < 4 * ex->threads;) job.mgroup /= 2;
    mi_parallel_for(ex, mi_dconv_items_bf16(&job), 1, dconv_items_bf16, &job);
  }
  mi_exec_scratch_release(ex, xw);
  free(toff);
  return NULL;
}
#endif

/* The Winograd path (fast mode, and bf16 mode without AMX), where the layer
 * has it and this call's shape pays on it (mi_wino_wanted; in bf16 mode
 * against bf16's kernels); *ran says whether it took the call.
 * in16 / out16: X / Y (and the residual) channel-blocked, converted to and
 * from NCHW copies around it: its transforms read and write rows of one
 * channel plane, and gathering them from blocked tensors cost more than the
 * conversions (FCN-ResNet50's dilated 3x3 layers, per-node minimums: 1.68 ->
 * 1.83 ms with the transforms' gathers 16 floats apart, against about 2 %
 * for the copies). */
static mi_status *conv_winograd(mi_node *n, mi_exec *ex, const geom *g, const float *x, const float *pre,
                                const float *bias, const float *res, float *y, int64_t N, int64_t C, int64_t M,
                                bool in16, bool out16, bool pool2, bool *ran) {
  conv_attr *a = n->priv;
  *ran = false;
  mi_wino_conv wc = wino_call(g, N);
  wc.x = x, wc.bias = bias, wc.res = res, wc.y = y, wc.pool2 = pool2;
#ifdef MI_GEMM_X86
  wc.bf16 = direct_bf16(ex, C); /* the call's rival: bf16's kernels at twice the FP32 rate */
  if (wc.bf16 && direct_amx()) return NULL; /* AMX's bf16 outruns FP32 Winograd */
#endif
  const int scheme = mi_wino_wanted(C, M, g->k[0], &wc);
  if (!scheme) return NULL;
  /* F(3x3) weights, made by an earlier call that did not pool (its scratch
   * path under MEDINFER_WINOGRAD=3): their 3x3 blocks straddle the 2x2 windows */
  if (pool2 && a->wino && mi_wino_weights_tile(a->wino) == 3) return NULL;
  if (!a->wino) { /* in the first call's scheme (a network's layer keeps its map size) */
    if (!a->wpack) return NULL; /* the channel-vector kernel's weights took their place: it keeps the layer */
    if (!(a->wino = mi_wino_weights_make(a->wpack[0], C, g->k[0], scheme))) {
      a->wino_ok = false; /* no Winograd path on this kernel level (or no memory): the exact one */
      return NULL;
    }
    /* held once: the exact weights come back from U if ever needed (not
     * from a bf16 U: then the packed ones stay) */
    if (!mi_wino_weights_bf16(a->wino)) {
      mi_gemm_packed_a_free(a->wpack[0]);
      free(a->wpack);
      a->wpack = NULL;
    }
  }
  /* the input prologue, or the blocked input, on an NCHW copy: the transforms read the input once */
  float *xn = NULL, *yn = NULL;
  if (pre || in16) {
    xn = mi_exec_scratch(ex, (size_t)(N * C * g->in_sz) * sizeof(float));
    if (!xn) return mi_node_error(n, MI_ERR_NO_MEMORY, "out of memory for the normalised input");
    if (in16) { /* no prologue then (chan16_caps) */
#ifdef MI_GEMM_X86
      mi_chan16_unblock_all(ex, x, N * C / 16, g->in_sz, xn);
#endif
    } else {
      mi_prologue_planes(ex, x, xn, N * C, g->in_sz, pre, C, n->pre_relu);
    }
    wc.x = xn;
  }
  if (out16) { /* the sums with their bias to an NCHW copy, the residual and the ReLU on the way back */
    yn = mi_exec_scratch(ex, (size_t)(N * M * g->out_sz) * sizeof(float));
    if (!yn) {
      if (xn) mi_exec_scratch_release(ex, xn);
      return mi_node_error(n, MI_ERR_NO_MEMORY, "out of memory for the Winograd output copy");
    }
    wc.y = yn, wc.res = NULL, wc.no_act = true;
  }
  *ran = true;
  mi_status *st = mi_wino_conv_run(ex, n, a->wino, &wc);
#ifdef MI_GEMM_X86
  if (!st && out16) {
    mi_chan16_block_all(ex, yn, N * M / 16, g->out_sz, res, n->act.kind == MI_ACT_RELU, y);
  }
#endif
  if (xn) mi_exec_scratch_release(ex, xn);
  if (yn) mi_exec_scratch_release(ex, yn);
  return st;
}

unsigned mi_conv_layouts(const mi_node *n, const mi_exec *ex, mi_tensor *const *in) {
#ifdef MI_GEMM_X86
  if (n->post_pool2) return 0; /* NCHW in and out (conv_run_pooled) */
  geom g;
  mi_status *st = conv_geom(n, n->priv, in[0], in[1], &g);
  if (st) {
    mi_status_free(st);
    return 0;
  }
  return chan16_caps(n, ex, n->priv, in[0], in[1], &g);
#else
  (void)n, (void)ex, (void)in;
  return 0;
#endif
}

/* The layer into yt (out[0], or conv_run_pooled's full-size scratch). */
static mi_status *conv_compute(mi_node *n, mi_exec *ex, mi_tensor *const *in, mi_tensor *yt) {
  const conv_attr *a = n->priv;
  const mi_tensor *xt = in[0], *wt = in[1];
  geom g;
  MI_TRY(conv_geom(n, a, xt, wt, &g));
  const float *x = xt->data, *w = wt->data;
  const float *bias = n->n_in >= 3 && in[2] ? in[2]->data : NULL;
  float *y = yt->data;
  const float *res;
  MI_TRY(get_residual(n, in, yt, &res));
  const int64_t N = xt->dims[0], C = xt->dims[1], M = wt->dims[0], G = a->group;
  const int64_t Cg = C / G, Mg = M / G, K = Cg * g.k_sz;
  if (N == 0 || g.out_sz == 0) return NULL;
  if (xt->chan16 || yt->chan16) { /* the plan's layout (mi_conv_layouts), which only this kernel reads and writes */
#ifdef MI_GEMM_X86
    const unsigned caps = chan16_caps(n, ex, a, xt, wt, &g);
    const bool fits = (!xt->chan16 || caps & MI_CHAN16_IN) && (!yt->chan16 || caps & MI_CHAN16_OUT) &&
                      (!res || in[n->n_in]->chan16 == yt->chan16);
    if (fits && a->wino_ok) { /* fast mode: Winograd where this call pays on it, else the kernel below */
      bool ran = false;
      mi_status *st = conv_winograd(n, ex, &g, x, NULL, bias, res, y, N, C, M, xt->chan16, yt->chan16, false, &ran);
      if (st || ran) return st;
    }
    if (fits) return conv_direct(n, ex, n->priv, &g, x, NULL, bias, res, y, N, C, M, K, true, xt->chan16, yt->chan16);
#endif
    return mi_node_error(n, MI_ERR_INTERNAL, "planned for channel-blocked tensors that this layer cannot take");
  }

  if (Cg == 1 && G == C && G > 1) { /* depthwise (optionally with a channel multiplier) */
    dw_ctx c = {&g, n, x, w, bias, res, y, C, M, M / C};
    mi_parallel_for(ex, N * M, 1, dw_planes, &c);
    return NULL;
  }

  const float *pre = n->pre_affine;
  /* The layer's own constant weights, packed at load (and then possibly
   * only in their Winograd form). */
  conv_attr *am = n->priv;
  const bool own = own_weights(a, w, M, K);
  if (a->wino_ok && own && G == 1) { /* in bf16 mode too, where it pays against bf16 (conv_winograd) */
    bool ran = false;
    mi_status *st = conv_winograd(n, ex, &g, x, pre, bias, res, y, N, C, M, false, false, false, &ran);
    if (st || ran) return st;
  }
#ifdef MI_GEMM_X86
  if (G == 1 && cv_wanted(ex, &g, C, M, own, pre != NULL)) {
    mi_status *st = conv_direct(n, ex, am, &g, x, pre, bias, res, y, N, C, M, K, true, false, false);
    return st;
  }
#endif
  if (own && !a->wpack) { /* a shape the Winograd or channel-vector path does not take, after one it did */
    mi_gemm_packed_a *p = NULL;
#ifdef MI_GEMM_X86
    if (a->wcv.data) { /* the channel-vector kernel's */
      float *wf = weights_rows(a, M, K);
      p = wf ? mi_gemm_pack_a(mi_isa_level(), false, M, K, wf, K) : NULL;
      free(wf);
    } else
#endif
      p = mi_wino_weights_exact(a->wino);
    am->wpack = p ? calloc(1, sizeof *am->wpack) : NULL;
    if (!am->wpack) {
      mi_gemm_packed_a_free(p);
      return mi_node_error(n, MI_ERR_NO_MEMORY, "out of memory for the exact weights");
    }
    am->wpack[0] = p;
  }
  const bool packed = a->wpack && own;

  bool pointwise = true;
  for (int j = 0; j < 3; j++)
    if (g.k[j] != 1 || g.s[j] != 1 || g.pb[j] != 0 || g.in[j] != g.out[j]) pointwise = false;
  /* Input prologue (a BatchNormalization+ReLU folded in by the graph pass):
   * applied while gathering on the packed path (a 1x1 convolution then
   * gathers too); otherwise on a transformed copy of the input. */
  float *xcopy = NULL;
  if (pre && (!packed || G != 1)) {
    xcopy = mi_exec_scratch(ex, (size_t)(N * C * g.in_sz) * sizeof(float));
    if (!xcopy) return mi_node_error(n, MI_ERR_NO_MEMORY, "out of memory for the normalised input");
    mi_prologue_planes(ex, x, xcopy, N * C, g.in_sz, pre, C, n->pre_relu);
    x = xcopy;
    pre = NULL;
  }
  if (pre) pointwise = false;
#ifdef MI_GEMM_X86
  if (packed && G == 1 && g.k_sz == 1 && g.s[0] * g.s[1] * g.s[2] > 1 && !g.pb[0] && !g.pb[1] && !g.pb[2] &&
      direct_bf16(ex, C)) {
    /* bf16: a strided 1x1 layer (a ResNet's downsampling) reads one input
     * position in s x s.  Those positions first (prologue applied), then
     * the layer unstrided, instead of a copy and pairs of every phase
     * (ResNet-50 bf16 13.6 -> 12.3 ms); on the channel-vector kernel where
     * cv_wanted takes the unstrided layer (a 7x7 output). */
    geom g1 = g;
    for (int j = 0; j < 3; j++) g1.in[j] = g.out[j], g1.s[j] = 1;
    g1.in_sz = g.out_sz;
    const bool cv = cv_wanted(ex, &g1, C, M, own, false);
    if (cv || direct_wanted(ex, &g1, a, C, M, false)) {
      float *xs = mi_exec_scratch(ex, (size_t)(N * C * g.out_sz) * sizeof(float));
      if (!xs) return mi_node_error(n, MI_ERR_NO_MEMORY, "out of memory for the subsampled input");
      subsample_ctx sc = {&g, x, xs, pre, C, n->pre_relu};
      mi_parallel_for(ex, N * C, 1, subsample_planes, &sc);
      mi_status *st = conv_direct(n, ex, n->priv, &g1, xs, NULL, bias, res, y, N, C, M, K, cv, false, false);
      mi_exec_scratch_release(ex, xs);
      return st;
    }
  }
  if (packed && G == 1 && stem_pairs_wanted(ex, &g, C, pre)) {
    mi_status *st = conv_stem_pairs(n, ex, n->priv, &g, x, bias, res, y, N, C, M, K);
    if (xcopy) mi_exec_scratch_release(ex, xcopy);
    return st;
  }
  if (packed && G == 1 && stem_amx_wanted(ex, &g, C, pre)) {
    mi_status *st = conv_stem_amx(n, ex, n->priv, &g, x, bias, res, y, N, C, M, K);
    if (xcopy) mi_exec_scratch_release(ex, xcopy);
    return st;
  }
  if (packed && G == 1 && direct_wanted(ex, &g, a, C, M, pre != NULL)) {
    mi_status *st = conv_direct(n, ex, n->priv, &g, x, pre, bias, res, y, N, C, M, K, false, false, false);
    if (xcopy) mi_exec_scratch_release(ex, xcopy);
    return st;
  }
#endif

  /* Packed weights: the epilogue runs inside the GEMM, so one tile is the whole output. */
  const int64_t P = tile_len(g.out_sz, pointwise || packed ? 0 : K, packed ? 0 : Mg, g.out[2]);
  float *col = NULL;
  if (!pointwise && !packed) {
    col = mi_exec_scratch(ex, (size_t)(K * P) * sizeof(float));
    if (!col) {
      if (xcopy) mi_exec_scratch_release(ex, xcopy);
      return mi_node_error(n, MI_ERR_NO_MEMORY, "cannot allocate %lld-byte column buffer", (long long)(K * P * 4));
    }
  }
  /* Implicit GEMM from a zero-padded copy of each group's input when it is small. */
  bool has_pad = false;
  for (int j = 0; j < 3; j++) {
    const int64_t last = (g.out[j] - 1) * g.s[j] + (g.k[j] - 1) * g.d[j] - g.pb[j];
    if (g.pb[j] > 0 || last >= g.in[j]) has_pad = true;
  }
  int64_t pin[3];
  padded_extent(&g, pin);
  float *xpad = NULL;
  if (packed && !pointwise && has_pad && Cg * pin[0] * pin[1] * pin[2] * 4 <= pad_copy_budget())
    xpad = mi_exec_scratch(ex, (size_t)(Cg * pin[0] * pin[1] * pin[2]) * sizeof(float));
  for (int64_t b = 0; b < N; b++)
    for (int64_t gi = 0; gi < G; gi++) {
      const float *xg = x + (b * C + gi * Cg) * g.in_sz;
      const float *wg = w + gi * Mg * K;
      float *yg = y + (b * M + gi * Mg) * g.out_sz;
      const float *rg = res ? res + (b * M + gi * Mg) * g.out_sz : NULL;
      for (int64_t p0 = 0; p0 < g.out_sz; p0 += P) {
        int64_t p1 = p0 + P < g.out_sz ? p0 + P : g.out_sz, len = p1 - p0;
        const bool has_epi = bias || rg || n->act.kind != MI_ACT_NONE;
        epi_block_ctx ec = {n, yg + p0, bias ? bias + gi * Mg : NULL, rg ? rg + p0 : NULL};
        const bool simple = n->act.kind == MI_ACT_NONE || n->act.kind == MI_ACT_RELU; /* epi_block_simple's */
        const mi_gemm_epilogue epi = {epi_block, &ec, simple, n->act.kind == MI_ACT_RELU, ec.bias, ec.r0, ec.y0},
                               *ep = packed && has_epi ? &epi : NULL;
        if (pointwise) {
          /* 1x1, stride 1, unpadded: the input planes already are the B matrix. */
          if (packed)
            mi_gemm_sgemm_packed_a(0, a->wpack[gi], false, len, 1.f, xg + p0, g.in_sz, 0.f, yg + p0, g.out_sz, ep);
          else
            mi_sgemm(false, false, Mg, len, K, 1.f, wg, K, xg + p0, g.in_sz, 0.f, yg + p0, g.out_sz);
        } else if (packed) {
          colpack_ctx cp = {&g, xg, p0, xpad != NULL || !has_pad, {g.in[0], g.in[1], g.in[2]}, pre, C, n->pre_relu};
          if (xpad) { /* the prologue, if any, goes into the padded copy */
            phase_geom ph;
            phase_extent(&g, false, &ph);
            phasecopy_ctx pc = {&g, &ph, xg, xpad, pre, C, n->pre_relu, 0, false, 0, 0};
            if (p0 == 0) mi_parallel_for(ex, Cg, 1, phasecopy_planes, &pc);
            cp.x = xpad;
            cp.pre = NULL;
            memcpy(cp.pin, pin, sizeof pin);
          }
          const bool ok = mi_gemm_sgemm_packed_a_fn(0, a->wpack[gi], len, 1.f, colpack, &cp, 0.f, yg + p0, g.out_sz, ep);
          if (!ok) {
            if (xpad) mi_exec_scratch_release(ex, xpad);
            if (xcopy) mi_exec_scratch_release(ex, xcopy);
            return mi_node_error(n, MI_ERR_NO_MEMORY, "out of memory for the SGEMM's packing buffers");
          }
        } else {
          im2col_ctx ic = {&g, xg, col, p0, p1};
          mi_parallel_for(ex, K, len >= 4096 ? 1 : 4096 / len, im2col_rows, &ic);
          mi_sgemm(false, false, Mg, len, K, 1.f, wg, K, col, len, 0.f, yg + p0, g.out_sz);
        }
        if (!ep) epilogue(ex, n, yg + p0, bias ? bias + gi * Mg : NULL, rg ? rg + p0 : NULL, Mg, g.out_sz, len);
      }
    }
  if (col) mi_exec_scratch_release(ex, col);
  if (xpad) mi_exec_scratch_release(ex, xpad);
  if (xcopy) mi_exec_scratch_release(ex, xcopy);
  return NULL;
}

/* mi_node.post_pool2: the Winograd path pools in its output transform;
 * any other path runs the layer into a scratch buffer, pooled from there. */
static mi_status *conv_run_pooled(mi_node *n, mi_exec *ex, mi_tensor *const *in, mi_tensor *yt) {
  const conv_attr *a = n->priv;
  const mi_tensor *xt = in[0], *wt = in[1];
  geom g;
  MI_TRY(conv_geom(n, a, xt, wt, &g));
  const int64_t N = xt->dims[0], C = xt->dims[1], M = wt->dims[0];
  const float *bias = n->n_in >= 3 && in[2] ? in[2]->data : NULL;
  if (N == 0 || g.out_sz == 0) return NULL;
  if (a->wino_ok && own_weights(a, wt->data, M, C * g.k_sz) && a->group == 1) {
    bool ran = false;
    mi_status *st = conv_winograd(n, ex, &g, xt->data, n->pre_affine, bias, NULL, yt->data, N, C, M, false, false,
                                  true, &ran);
    if (st || ran) return st;
  }
  mi_tensor full = *yt;
  full.dims[2] = g.out[1], full.dims[3] = g.out[2];
  full.data = mi_exec_scratch(ex, (size_t)(N * M * g.out_sz) * sizeof(float));
  if (!full.data) return mi_node_error(n, MI_ERR_NO_MEMORY, "out of memory for the output before its max pool");
  mi_status *st = conv_compute(n, ex, in, &full);
  if (!st) mi_maxpool_2x2_planes(ex, full.data, yt->data, N * M, g.out[1], g.out[2]);
  mi_exec_scratch_release(ex, full.data);
  return st;
}

static mi_status *conv_run(mi_node *n, mi_exec *ex, mi_tensor *const *in, mi_tensor **out) {
  return n->post_pool2 ? conv_run_pooled(n, ex, in, out[0]) : conv_compute(n, ex, in, out[0]);
}

/* ---- ConvTranspose ------------------------------------------------------ */
typedef struct col2im_ctx {
  const geom *g;
  const float *col; /* (Mg*k) x P, rows ordered (m, kz, ky, kx) */
  float *y;         /* Mg output planes */
  int64_t i0, i1;   /* input positions covered by the tile */
  /* col2im_disjoint only: the node (its activation), the group's bias and residual */
  const mi_node *n;
  const float *bias, *res;
} col2im_ctx;

/* Scatter-add: output channel m only receives its own rows, so splitting over
 * m is race-free. */
static void col2im_channels(void *vctx, int64_t mb, int64_t me) {
  const col2im_ctx *c = vctx;
  const geom *g = c->g;
  const int64_t P = c->i1 - c->i0, i1d = g->in[1], i2d = g->in[2];
  for (int64_t m = mb; m < me; m++) {
    float *yp = c->y + m * g->out_sz;
    for (int64_t kk = 0; kk < g->k_sz; kk++) {
      int64_t kz = kk / (g->k[1] * g->k[2]), ky = (kk / g->k[2]) % g->k[1], kx = kk % g->k[2];
      int64_t offz = kz * g->d[0] - g->pb[0], offy = ky * g->d[1] - g->pb[1], offx = kx * g->d[2] - g->pb[2];
      int64_t xlo, xhi; /* input x positions landing inside the output */
      mi_valid_range(i2d, g->s[2], offx, g->out[2], &xlo, &xhi);
      const float *src = c->col + (m * g->k_sz + kk) * P;
      int64_t p = c->i0, iz = p / (i1d * i2d), iy = (p / i2d) % i1d, ix = p % i2d;
      while (p < c->i1) {
        int64_t L = i2d - ix < c->i1 - p ? i2d - ix : c->i1 - p;
        int64_t oz = iz * g->s[0] + offz, oy = iy * g->s[1] + offy;
        if (oz >= 0 && oz < g->out[0] && oy >= 0 && oy < g->out[1]) {
          float *row = yp + (oz * g->out[1] + oy) * g->out[2];
          int64_t a = clamp64(xlo, ix, ix + L), b = clamp64(xhi, a, ix + L);
          const int64_t st = g->s[2];
          for (int64_t t = a; t < b; t++) row[t * st + offx] += src[t - ix];
        }
        src += L;
        p += L;
        ix = 0;
        if (++iy == i1d) { iy = 0; iz++; }
      }
    }
  }
}

/* Strides equal to the kernel, no padding or dilation (a U-Net's 2x2x2
 * upsampling): every output value comes from one input position and one
 * tap, so each output row is written once, whole (its taps interleaved),
 * with bias, residual and activation while it is in L1; no zeroed output
 * first, no epilogue pass (a 32-channel 96^3 output is 113 MB). */
static bool convt_disjoint(const geom *g) {
  for (int j = 0; j < 3; j++)
    if (g->s[j] != g->k[j] || g->pb[j] || (g->k[j] > 1 && g->d[j] != 1) || g->out[j] != g->in[j] * g->s[j])
      return false;
  return true;
}

static void col2im_disjoint(void *vctx, int64_t mb, int64_t me) {
  const col2im_ctx *c = vctx;
  const geom *g = c->g;
  const int64_t P = c->i1 - c->i0, i1d = g->in[1], i2d = g->in[2], s2 = g->s[2];
  for (int64_t m = mb; m < me; m++) {
    float *yp = c->y + m * g->out_sz;
    const float *rp = c->res ? c->res + m * g->out_sz : NULL;
    const float bv = c->bias ? c->bias[m] : 0.f;
    int64_t p = c->i0, iz = p / (i1d * i2d), iy = (p / i2d) % i1d, ix = p % i2d;
    while (p < c->i1) {
      const int64_t L = i2d - ix < c->i1 - p ? i2d - ix : c->i1 - p;
      for (int64_t kz = 0; kz < g->k[0]; kz++)
        for (int64_t ky = 0; ky < g->k[1]; ky++) {
          const int64_t o = ((iz * g->s[0] + kz) * g->out[1] + iy * g->s[1] + ky) * g->out[2] + ix * s2;
          float *row = yp + o;
          const float *src = c->col + (m * g->k_sz + (kz * g->k[1] + ky) * g->k[2]) * P + (p - c->i0);
          if (s2 == 2) /* one pass, the two taps' values interleaved in registers */
            for (int64_t t = 0; t < L; t++) row[2 * t] = src[t] + bv, row[2 * t + 1] = src[P + t] + bv;
          else
            for (int64_t kx = 0; kx < s2; kx++)
              for (int64_t t = 0; t < L; t++) row[t * s2 + kx] = src[kx * P + t] + bv;
          const int64_t len = L * s2;
          if (rp)
            for (int64_t i = 0; i < len; i++) row[i] += rp[o + i];
          mi_activation_apply(&c->n->act, row, len);
        }
      p += L;
      ix = 0;
      if (++iy == i1d) iy = 0, iz++;
    }
  }
}

#ifdef MI_GEMM_X86
static void convt_tiles(void *vctx, int64_t b, int64_t e) { mi_convt_tiles(vctx, b, e); }

/* A disjoint layer straight into its output (gemm/convt.h), the epilogue
 * on each run as it is stored: the demo model's last upsampling (16 -> 11
 * channels to 2x64^3) took 3.1-3.6 ms through columns and their scatter. */
static mi_status *convt_direct(const mi_node *n, mi_exec *ex, const geom *g, const float *x, const float *w,
                               const float *bias, const float *res, float *y, int64_t N, int64_t C, int64_t G,
                               int64_t Mg) {
  const conv_attr *a = n->priv;
  const int64_t Cg = C / G, M = Mg * G, per = Cg * Mg * g->k_sz;
  float *wp = NULL; /* the weights packed for this call: not the layer's constant ones */
  if (!(a->wct && w == a->wct_src && a->wct_len == per * G)) {
    wp = mi_exec_scratch(ex, (size_t)(per * G) * sizeof(float));
    if (!wp) return mi_node_error(n, MI_ERR_NO_MEMORY, "out of memory for the packed weights");
    for (int64_t gi = 0; gi < G; gi++) mi_convt_pack(w + gi * per, Cg, Mg, g->k, wp + gi * per);
  }
  const float *wk = wp ? wp : a->wct;
  /* A tile's input (every channel) stays in L2 while each block of rows
   * sweeps it; the weights are read once a tile, so tiles no smaller than
   * needed for two items a thread. */
  int64_t tile = ((int64_t)128 << 10) / (4 * Cg), parts = 2 * (ex->threads > 1 ? ex->threads : 1);
  if (tile > (g->in_sz + parts - 1) / parts) tile = (g->in_sz + parts - 1) / parts;
  tile = tile < 16 ? 16 : (tile + 15) / 16 * 16;
  for (int64_t b = 0; b < N; b++)
    for (int64_t gi = 0; gi < G; gi++) {
      float *yg = y + (b * M + gi * Mg) * g->out_sz;
      const float *rg = res ? res + (b * M + gi * Mg) * g->out_sz : NULL, *bg = bias ? bias + gi * Mg : NULL;
      epi_block_ctx ec = {n, yg, bg, rg};
      const bool simple = n->act.kind == MI_ACT_NONE || n->act.kind == MI_ACT_RELU; /* epi_block_simple's */
      const mi_gemm_epilogue epi = {epi_block, &ec, simple, n->act.kind == MI_ACT_RELU, bg, rg, yg};
      mi_convt_job j = {x + (b * C + gi * Cg) * g->in_sz, wk + gi * per, yg, Cg, Mg,
                        {g->in[0], g->in[1], g->in[2]}, {g->k[0], g->k[1], g->k[2]}, &epi, tile};
      mi_parallel_for(ex, mi_convt_items(&j), 1, convt_tiles, &j);
    }
  if (wp) mi_exec_scratch_release(ex, wp);
  return NULL;
}
#endif

static mi_status *convt_run(mi_node *n, mi_exec *ex, mi_tensor *const *in, mi_tensor **out) {
  const conv_attr *a = n->priv;
  const mi_tensor *xt = in[0], *wt = in[1];
  geom g;
  MI_TRY(convt_geom(n, a, xt, wt, &g));
  const float *x = xt->data, *w = wt->data;
  const float *bias = n->n_in >= 3 && in[2] ? in[2]->data : NULL;
  float *y = out[0]->data;
  const float *res;
  MI_TRY(get_residual(n, in, out[0], &res));
  const int64_t N = xt->dims[0], C = xt->dims[1], G = a->group;
  const int64_t Cg = C / G, Mg = wt->dims[1], M = Mg * G, K2 = Mg * g.k_sz;
  if (N == 0) return NULL;
  const bool disjoint = convt_disjoint(&g);
#ifdef MI_GEMM_X86
  /* Not where an image's output is far past the last-level cache: the 3D
   * U-Net's last upsampling (32 channels to 96^3, 113 MB) 19.3-21.4 ms
   * here, 16.7-18.8 through columns (whose scatter writes one plane at a
   * time); its 28 MB one 8.8 against 9.0-9.4. */
  if (disjoint && convt_kernel_level(Cg) && mi_convt_supported(g.k) && M * g.out_sz <= ((int64_t)16 << 20))
    return convt_direct(n, ex, &g, x, w, bias, res, y, N, C, G, Mg);
#endif
  if (!disjoint) memset(y, 0, (size_t)(N * M * g.out_sz) * sizeof(float));
  /* Disjoint: tiles of up to 16 MB of columns.  Each tile is a product and
   * a scatter, a hand-over between the threads each: with 1 MB ones (the
   * columns kept in L2 for the scatter) the 3D U-Net's four upsamplings took
   * 64-71 ms, with 16 MB 47 (4 MB: 57-61). */
  int64_t P = g.in_sz > 0 ? tile_len(g.in_sz, K2, 0, g.in[2]) : 1;
  const int64_t p_cap = ((int64_t)16 << 20) / (4 * (K2 > 0 ? K2 : 1));
  if (disjoint && P > p_cap) P = p_cap >= g.in[2] ? p_cap - p_cap % g.in[2] : (p_cap > 0 ? p_cap : 1);
  float *col = g.in_sz > 0 ? mi_exec_scratch(ex, (size_t)(K2 * P) * sizeof(float)) : NULL;
  if (g.in_sz > 0 && !col)
    return mi_node_error(n, MI_ERR_NO_MEMORY, "cannot allocate %lld-byte column buffer", (long long)(K2 * P * 4));
  for (int64_t b = 0; b < N; b++)
    for (int64_t gi = 0; gi < G; gi++) {
      const float *xg = x + (b * C + gi * Cg) * g.in_sz;
      const float *wg = w + gi * Cg * K2; /* W is [C, Mg, k]: rows of group gi */
      float *yg = y + (b * M + gi * Mg) * g.out_sz;
      for (int64_t i0 = 0; i0 < g.in_sz; i0 += P) {
        int64_t i1 = i0 + P < g.in_sz ? i0 + P : g.in_sz, len = i1 - i0;
        mi_sgemm(true, false, K2, len, Cg, 1.f, wg, K2, xg + i0, g.in_sz, 0.f, col, len);
        col2im_ctx cc = {&g, col, yg, i0, i1, n, bias ? bias + gi * Mg : NULL,
                         res ? res + (b * M + gi * Mg) * g.out_sz : NULL};
        mi_parallel_for(ex, Mg, 1, disjoint ? col2im_disjoint : col2im_channels, &cc);
      }
      /* Output positions collect from every input tile: epilogue at the end. */
      if (!disjoint)
        epilogue(ex, n, yg, bias ? bias + gi * Mg : NULL, res ? res + (b * M + gi * Mg) * g.out_sz : NULL, Mg,
               g.out_sz, g.out_sz);
    }
  if (col) mi_exec_scratch_release(ex, col);
  return NULL;
}

/* ---- ConvInteger (opset 10): int32 = sum (x - x_zp) * (w - w_zp) ---------
 * Exact int32 arithmetic (a float GEMM would round once K > 258), so this is
 * a direct kernel over (n, m) planes on zero-point-shifted int32 copies. */
static mi_status *convint_init(mi_node *n, mi_graph *g) { return conv_init_common(n, false); }

static mi_status *check_zp(const mi_node *n, const mi_tensor *zp, const mi_tensor *of, int64_t per_channel,
                           const char *what) {
  if (!zp) return NULL;
  if (zp->dtype != of->dtype)
    return mi_node_error(n, MI_ERR_INVALID_MODEL, "%s must have the element type of its input", what);
  int64_t k = mi_numel(zp->ndim, zp->dims);
  if (k != 1 && k != per_channel)
    return mi_node_error(n, MI_ERR_UNSUPPORTED, "%s must be a scalar%s", what,
                         per_channel > 1 ? " or have one value per output channel" : "");
  return NULL;
}

static mi_status *convint_infer(mi_node *n, mi_tensor *const *in, mi_tensor **out) {
  const conv_attr *a = n->priv;
  int s = 0;
  MI_TRY(check_common(n, a, in, &s, true));
  const mi_tensor *x = in[0], *w = in[1];
  int64_t M = w->dims[0];
  if (x->dims[1] != w->dims[1] * a->group || M % a->group)
    return mi_node_error(n, MI_ERR_SHAPE, "X channels %lld / W %lld x %lld do not fit group %lld",
                         (long long)x->dims[1], (long long)M, (long long)w->dims[1], (long long)a->group);
  MI_TRY(check_zp(n, n->n_in > 2 ? in[2] : NULL, x, 1, "x_zero_point"));
  MI_TRY(check_zp(n, n->n_in > 3 ? in[3] : NULL, w, M, "w_zero_point"));
  geom g;
  MI_TRY(conv_geom(n, a, x, w, &g));
  int64_t dims[5] = {x->dims[0], M};
  for (int i = 0; i < s; i++) dims[2 + i] = g.out[3 - s + i];
  mi_tensor_set_shape(out[0], MI_INT32, x->ndim, dims);
  return NULL;
}

typedef struct cint_ctx {
  const geom *g;
  const int32_t *x, *w; /* zero-point-shifted copies */
  int32_t *y;
  int64_t C, M, Cg, Mg;
} cint_ctx;

static void cint_planes(void *vctx, int64_t b, int64_t e) {
  const cint_ctx *c = vctx;
  const geom *g = c->g;
  for (int64_t pl = b; pl < e; pl++) {
    int64_t n = pl / c->M, m = pl % c->M, gi = m / c->Mg;
    int32_t *yp = c->y + pl * g->out_sz;
    memset(yp, 0, (size_t)g->out_sz * sizeof(int32_t));
    for (int64_t ch = 0; ch < c->Cg; ch++) {
      const int32_t *xp = c->x + (n * c->C + gi * c->Cg + ch) * g->in_sz;
      const int32_t *wk = c->w + (m * c->Cg + ch) * g->k_sz;
      for (int64_t oz = 0; oz < g->out[0]; oz++)
        for (int64_t oy = 0; oy < g->out[1]; oy++) {
          int32_t *yrow = yp + (oz * g->out[1] + oy) * g->out[2];
          for (int64_t kz = 0; kz < g->k[0]; kz++) {
            int64_t iz = oz * g->s[0] + kz * g->d[0] - g->pb[0];
            if (iz < 0 || iz >= g->in[0]) continue;
            for (int64_t ky = 0; ky < g->k[1]; ky++) {
              int64_t iy = oy * g->s[1] + ky * g->d[1] - g->pb[1];
              if (iy < 0 || iy >= g->in[1]) continue;
              const int32_t *xrow = xp + (iz * g->in[1] + iy) * g->in[2];
              const int32_t *wrow = wk + (kz * g->k[1] + ky) * g->k[2];
              for (int64_t kx = 0; kx < g->k[2]; kx++) {
                int64_t off = kx * g->d[2] - g->pb[2], lo, hi;
                mi_valid_range(g->out[2], g->s[2], off, g->in[2], &lo, &hi);
                const int32_t wv = wrow[kx];
                for (int64_t ox = lo; ox < hi; ox++) yrow[ox] += wv * xrow[ox * g->s[2] + off];
              }
            }
          }
        }
    }
  }
}

static void shift_q8(const mi_tensor *t, const mi_tensor *zp, int64_t per, int32_t *dst) {
  int64_t n = mi_numel(t->ndim, t->dims), nzp = zp ? mi_numel(zp->ndim, zp->dims) : 0;
  for (int64_t i = 0; i < n; i++) {
    int32_t z = nzp == 0 ? 0 : (int32_t)mi_tensor_get_i64(zp, nzp == 1 ? 0 : i / per);
    int32_t v = t->dtype == MI_UINT8 ? ((const uint8_t *)t->data)[i] : ((const int8_t *)t->data)[i];
    dst[i] = v - z;
  }
}

static mi_status *convint_run(mi_node *n, mi_exec *ex, mi_tensor *const *in, mi_tensor **out) {
  const conv_attr *a = n->priv;
  const mi_tensor *xt = in[0], *wt = in[1];
  geom g;
  MI_TRY(conv_geom(n, a, xt, wt, &g));
  const int64_t N = xt->dims[0], C = xt->dims[1], M = wt->dims[0];
  int64_t nx = mi_numel(xt->ndim, xt->dims), nw = mi_numel(wt->ndim, wt->dims);
  int32_t *buf = mi_exec_scratch(ex, (size_t)(nx + nw) * sizeof(int32_t));
  if (!buf) return mi_node_error(n, MI_ERR_NO_MEMORY, "cannot allocate the shifted input copies");
  shift_q8(xt, n->n_in > 2 ? in[2] : NULL, 1, buf);
  shift_q8(wt, n->n_in > 3 ? in[3] : NULL, nw / M, buf + nx); /* per-channel zp: one per W row block */
  cint_ctx c = {&g, buf, buf + nx, out[0]->data, C, M, C / a->group, M / a->group};
  mi_parallel_for(ex, N * M, 1, cint_planes, &c);
  mi_exec_scratch_release(ex, buf);
  return NULL;
}

const mi_op_def mi_ops_conv[] = {
    {"Conv", 1, MI_OP_FUSE_ACT | MI_OP_CHAN16, conv_init, conv_infer, conv_run, conv_destroy},
    {"ConvTranspose", 1, MI_OP_FUSE_ACT, convt_init, convt_infer, convt_run, conv_destroy},
    {"ConvInteger", 10, 0, convint_init, convint_infer, convint_run, NULL},
    {NULL},
};
