/* LSTM, GRU and RNN (float32).
 *
 * Per direction, the input projection X*W^T (+ biases) for every time step is
 * one large sgemm up front; each step then only adds H_{t-1}*R^T (another
 * sgemm, batch rows) and applies the cell's elementwise update.  Batch rows
 * are gathered per step so that sequence_lens and the reverse direction
 * (which starts at each row's own last valid step) share one code path. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ops.h"

typedef enum cell_kind { CELL_RNN, CELL_GRU, CELL_LSTM } cell_kind;

typedef enum akind {
  A_SIGMOID, A_TANH, A_RELU, A_AFFINE, A_LEAKY, A_THRELU, A_SCALEDTANH, A_HARDSIG, A_ELU,
  A_SOFTSIGN, A_SOFTPLUS
} akind;

typedef struct act {
  akind k;
  float a, b;
} act;

typedef struct rnn_attr {
  cell_kind cell;
  int G;          /* gates per cell: 1, 3, 4 */
  int nact;       /* activations per direction: 1, 2, 3 */
  int64_t H;
  int dirs;
  bool reverse;   /* direction == "reverse" (single direction) */
  int layout;
  float clip;     /* <= 0: none */
  bool lbr;       /* GRU linear_before_reset */
  bool input_forget;
  act acts[2][3];
} rnn_attr;

static const struct {
  const char *name;
  akind k;
  int nparam; /* alpha/beta values consumed from the attribute lists */
  float da, db;
} act_names[] = {
    {"Sigmoid", A_SIGMOID, 0, 0, 0},       {"Tanh", A_TANH, 0, 0, 0},
    {"Relu", A_RELU, 0, 0, 0},             {"Affine", A_AFFINE, 2, 1.f, 0.f},
    {"LeakyRelu", A_LEAKY, 1, 0.01f, 0},   {"ThresholdedRelu", A_THRELU, 1, 1.f, 0},
    {"ScaledTanh", A_SCALEDTANH, 2, 1.f, 1.f}, {"HardSigmoid", A_HARDSIG, 2, 0.2f, 0.5f},
    {"Elu", A_ELU, 1, 1.f, 0},             {"Softsign", A_SOFTSIGN, 0, 0, 0},
    {"Softplus", A_SOFTPLUS, 0, 0, 0},
};

/* x = act(clip(x)) over n values. */
static void act_apply(const act *f, float clip, float *x, int64_t n) {
  if (clip > 0)
    for (int64_t i = 0; i < n; i++) x[i] = x[i] < -clip ? -clip : (x[i] > clip ? clip : x[i]);
  switch (f->k) {
    case A_SIGMOID:
      for (int64_t i = 0; i < n; i++) x[i] = 1.f / (1.f + expf(-x[i]));
      break;
    case A_TANH:
      for (int64_t i = 0; i < n; i++) x[i] = tanhf(x[i]);
      break;
    case A_RELU:
      for (int64_t i = 0; i < n; i++) x[i] = x[i] > 0 ? x[i] : 0;
      break;
    case A_AFFINE:
      for (int64_t i = 0; i < n; i++) x[i] = f->a * x[i] + f->b;
      break;
    case A_LEAKY:
      for (int64_t i = 0; i < n; i++) x[i] = x[i] >= 0 ? x[i] : f->a * x[i];
      break;
    case A_THRELU:
      for (int64_t i = 0; i < n; i++) x[i] = x[i] > f->a ? x[i] : 0;
      break;
    case A_SCALEDTANH:
      for (int64_t i = 0; i < n; i++) x[i] = f->a * tanhf(f->b * x[i]);
      break;
    case A_HARDSIG:
      for (int64_t i = 0; i < n; i++) {
        float v = f->a * x[i] + f->b;
        x[i] = v < 0 ? 0 : (v > 1 ? 1 : v);
      }
      break;
    case A_ELU:
      for (int64_t i = 0; i < n; i++) x[i] = x[i] >= 0 ? x[i] : f->a * (expf(x[i]) - 1.f);
      break;
    case A_SOFTSIGN:
      for (int64_t i = 0; i < n; i++) x[i] = x[i] / (1.f + fabsf(x[i]));
      break;
    case A_SOFTPLUS:
      for (int64_t i = 0; i < n; i++) x[i] = log1pf(expf(x[i]));
      break;
  }
}

static mi_status *rnn_init(mi_node *n, mi_graph *g) {
  (void)g;
  rnn_attr *a = calloc(1, sizeof *a);
  if (!a) return mi_node_error(n, MI_ERR_NO_MEMORY, "out of memory");
  n->priv = a;
  if (strcmp(n->op_type, "LSTM") == 0) {
    a->cell = CELL_LSTM;
    a->G = 4;
    a->nact = 3;
  } else if (strcmp(n->op_type, "GRU") == 0) {
    a->cell = CELL_GRU;
    a->G = 3;
    a->nact = 2;
  } else {
    a->cell = CELL_RNN;
    a->G = 1;
    a->nact = 1;
  }
  a->H = mi_attr_int(n, "hidden_size", 0);
  if (a->H <= 0) return mi_node_error(n, MI_ERR_INVALID_MODEL, "hidden_size must be > 0");
  /* R alone holds 4 H^2 values a direction: no model has H near this */
  if (a->H > INT32_MAX) return mi_node_error(n, MI_ERR_INVALID_MODEL, "hidden_size %lld is too large", (long long)a->H);
  const char *dir = mi_attr_string(n, "direction", "forward");
  if (strcmp(dir, "forward") == 0) a->dirs = 1;
  else if (strcmp(dir, "reverse") == 0) a->dirs = 1, a->reverse = true;
  else if (strcmp(dir, "bidirectional") == 0) a->dirs = 2;
  else return mi_node_error(n, MI_ERR_INVALID_MODEL, "unknown direction '%s'", dir);
  a->layout = (int)mi_attr_int(n, "layout", 0);
  if (a->layout != 0 && a->layout != 1)
    return mi_node_error(n, MI_ERR_INVALID_MODEL, "layout must be 0 or 1");
  a->clip = mi_attr_float(n, "clip", 0.f);
  if (mi_node_attr(n, "clip") && !(a->clip > 0))
    return mi_node_error(n, MI_ERR_INVALID_MODEL, "clip must be positive");
  a->lbr = mi_attr_int(n, "linear_before_reset", 0) != 0;
  a->input_forget = mi_attr_int(n, "input_forget", 0) != 0;
  if (mi_node_attr(n, "output_sequence"))
    return mi_node_error(n, MI_ERR_UNSUPPORTED, "output_sequence (opset 1) not supported");

  static const akind defaults[3][3] = {
      {A_TANH}, {A_SIGMOID, A_TANH}, {A_SIGMOID, A_TANH, A_TANH}};
  const akind *def = defaults[a->cell];
  const mi_attr *names = mi_node_attr(n, "activations");
  const float *alpha, *beta;
  size_t nal = mi_attr_floats(n, "activation_alpha", &alpha);
  size_t nbe = mi_attr_floats(n, "activation_beta", &beta);
  size_t ia = 0, ib = 0;
  if (names && (names->type != MI_ATTR_STRINGS || names->n != (size_t)(a->nact * a->dirs)))
    return mi_node_error(n, MI_ERR_INVALID_MODEL, "activations must list %d names",
                         a->nact * a->dirs);
  for (int d = 0; d < a->dirs; d++)
    for (int j = 0; j < a->nact; j++) {
      act *f = &a->acts[d][j];
      if (!names) {
        f->k = def[j];
        continue;
      }
      const char *s = names->strings[d * a->nact + j];
      size_t k = 0, nn = sizeof act_names / sizeof act_names[0];
      while (k < nn && strcasecmp(act_names[k].name, s) != 0) k++;
      if (k == nn) return mi_node_error(n, MI_ERR_UNSUPPORTED, "activation '%s' not supported", s);
      f->k = act_names[k].k;
      f->a = act_names[k].da;
      f->b = act_names[k].db;
      /* Parameters are consumed in order by the activations that take them. */
      if (act_names[k].nparam >= 1 && ia < nal) f->a = alpha[ia++];
      if (act_names[k].nparam >= 2 && ib < nbe) f->b = beta[ib++];
    }
  return NULL;
}

typedef struct rnn_dims {
  int64_t seq, batch, I;
} rnn_dims;

static mi_status *check_shape(mi_node *n, const mi_tensor *t, const char *what, int nd,
                              const int64_t *want) {
  bool ok = t->ndim == nd;
  for (int i = 0; ok && i < nd; i++) ok = t->dims[i] == want[i];
  if (!ok) {
    char got[64], exp[96];
    size_t off = 0;
    for (int i = 0; i < nd; i++)
      off += (size_t)snprintf(exp + off, sizeof exp - off, i ? "x%lld" : "%lld",
                              (long long)want[i]);
    return mi_node_error(n, MI_ERR_SHAPE, "%s has shape %s, expected %s", what,
                         mi_shape_str(t, got, sizeof got), exp);
  }
  if (t->dtype != MI_FLOAT)
    return mi_node_error(n, MI_ERR_UNSUPPORTED, "%s: element type %s not supported (float32 "
                         "only)", what, mi_dtype_name(t->dtype));
  return NULL;
}

static const mi_tensor *opt_in(const mi_node *n, mi_tensor *const *in, int i) {
  return i < n->n_in ? in[i] : NULL;
}

static mi_status *rnn_infer(mi_node *n, mi_tensor *const *in, mi_tensor **out) {
  const rnn_attr *a = n->priv;
  if (n->n_in < 3 || !in[0] || !in[1] || !in[2])
    return mi_node_error(n, MI_ERR_INVALID_MODEL, "needs inputs X, W and R");
  const mi_tensor *X = in[0];
  if (X->ndim != 3) return mi_node_error(n, MI_ERR_SHAPE, "X must be 3-D");
  if (X->dtype != MI_FLOAT)
    return mi_node_error(n, MI_ERR_UNSUPPORTED, "element type %s not supported (float32 only)",
                         mi_dtype_name(X->dtype));
  int64_t seq = a->layout ? X->dims[1] : X->dims[0], batch = a->layout ? X->dims[0] : X->dims[1];
  int64_t I = X->dims[2], H = a->H, GH = a->G * H, D = a->dirs;
  int64_t w[3] = {D, GH, I}, r[3] = {D, GH, H}, b[2] = {D, 2 * GH}, p[2] = {D, 3 * H};
  int64_t st[3] = {D, batch, H};
  if (a->layout) st[0] = batch, st[1] = D;
  MI_TRY(check_shape(n, in[1], "W", 3, w));
  MI_TRY(check_shape(n, in[2], "R", 3, r));
  if (opt_in(n, in, 3)) MI_TRY(check_shape(n, in[3], "B", 2, b));
  const mi_tensor *sl = opt_in(n, in, 4);
  if (sl && (sl->ndim != 1 || sl->dims[0] != batch ||
             (sl->dtype != MI_INT32 && sl->dtype != MI_INT64)))
    return mi_node_error(n, MI_ERR_SHAPE, "sequence_lens must be int32 of shape [%lld]",
                         (long long)batch);
  if (opt_in(n, in, 5)) MI_TRY(check_shape(n, in[5], "initial_h", 3, st));
  if (a->cell == CELL_LSTM) {
    if (opt_in(n, in, 6)) MI_TRY(check_shape(n, in[6], "initial_c", 3, st));
    if (opt_in(n, in, 7)) MI_TRY(check_shape(n, in[7], "P", 2, p));
  }
  int64_t y[4] = {seq, D, batch, H};
  if (a->layout) y[0] = batch, y[1] = seq, y[2] = D;
  int nout = a->cell == CELL_LSTM ? 3 : 2;
  if (n->n_out > nout) return mi_node_error(n, MI_ERR_INVALID_MODEL, "too many outputs");
  if (n->n_out > 0 && out[0]) mi_tensor_set_shape(out[0], MI_FLOAT, 4, y);
  for (int i = 1; i < n->n_out; i++)
    if (out[i]) mi_tensor_set_shape(out[i], MI_FLOAT, 3, st);
  return NULL;
}

static mi_status *rnn_run(mi_node *n, mi_exec *ex, mi_tensor *const *in, mi_tensor **out) {
  const rnn_attr *a = n->priv;
  const mi_tensor *X = in[0], *B = opt_in(n, in, 3), *SL = opt_in(n, in, 4);
  const mi_tensor *H0 = opt_in(n, in, 5);
  const mi_tensor *C0 = a->cell == CELL_LSTM ? opt_in(n, in, 6) : NULL;
  const mi_tensor *P = a->cell == CELL_LSTM ? opt_in(n, in, 7) : NULL;
  const int64_t seq = a->layout ? X->dims[1] : X->dims[0];
  const int64_t batch = a->layout ? X->dims[0] : X->dims[1];
  const int64_t I = X->dims[2], H = a->H, G = a->G, GH = G * H, D = a->dirs;
  float *Y = n->n_out > 0 && out[0] ? out[0]->data : NULL;
  float *Yh = n->n_out > 1 && out[1] ? out[1]->data : NULL;
  float *Yc = n->n_out > 2 && out[2] ? out[2]->data : NULL;

  /* Scratch: XW [seq*batch, GH], gates [batch, GH], h, c, tmp, tmp2 [batch, H],
   * bias [GH], rbh [H]; lens [batch]. */
  size_t nf = (size_t)(seq * batch * GH + batch * GH + 4 * batch * H + GH + H);
  /* lens first: the scratch block is aligned for int64 at its start. */
  int64_t *lens = mi_exec_scratch(ex, (size_t)(batch + 1) * sizeof(int64_t) + nf * sizeof(float));
  if (!lens) return mi_node_error(n, MI_ERR_NO_MEMORY, "out of memory");
  float *buf = (float *)(lens + batch + 1);
  float *XW = buf, *gates = XW + seq * batch * GH, *h = gates + batch * GH, *c = h + batch * H;
  float *tmp = c + batch * H, *tmp2 = tmp + batch * H, *bias = tmp2 + batch * H, *rbh = bias + GH;
  for (int64_t b = 0; b < batch; b++) {
    const int64_t len = SL ? mi_tensor_get_i64(SL, b) : seq;
    if (len < 0 || len > seq) {
      mi_exec_scratch_release(ex, lens);
      return mi_node_error(n, MI_ERR_INVALID_ARGUMENT, "sequence_lens[%lld]=%lld outside 0..%lld",
                           (long long)b, (long long)len, (long long)seq);
    }
    lens[b] = len;
  }
  if (Y) memset(Y, 0, mi_tensor_nbytes(out[0])); /* steps past a row's length stay 0 */
  const float *x = X->data;

  for (int64_t d = 0; d < D; d++) {
    bool rev = a->reverse || d == 1;
    const float *W = (const float *)in[1]->data + d * GH * I;
    const float *R = (const float *)in[2]->data + d * GH * H;
    const act *f = a->acts[d];
    /* Biases: Wb + Rb, except GRU's Rbh which sits inside the reset product
     * when linear_before_reset is set. */
    const float *Bd = B ? (const float *)B->data + d * 2 * GH : NULL;
    for (int64_t j = 0; j < GH; j++) {
      bool keep_r = !(a->cell == CELL_GRU && a->lbr && j >= 2 * H);
      bias[j] = Bd ? Bd[j] + (keep_r ? Bd[GH + j] : 0.f) : 0.f;
    }
    for (int64_t j = 0; j < H; j++) rbh[j] = Bd && a->cell == CELL_GRU ? Bd[GH + 2 * H + j] : 0.f;
    /* Input projection of every step at once (rows in X's memory order). */
    mi_sgemm(false, true, seq * batch, GH, I, 1.f, x, I, W, I, 0.f, XW, GH);
    for (int64_t r = 0; r < seq * batch; r++)
      for (int64_t j = 0; j < GH; j++) XW[r * GH + j] += bias[j];
    /* Initial state. */
    for (int64_t b = 0; b < batch; b++) {
      int64_t so = a->layout ? (b * D + d) * H : (d * batch + b) * H;
      for (int64_t j = 0; j < H; j++) {
        h[b * H + j] = H0 ? ((const float *)H0->data)[so + j] : 0.f;
        c[b * H + j] = C0 ? ((const float *)C0->data)[so + j] : 0.f;
      }
    }
    const float *Pd = P ? (const float *)P->data + d * 3 * H : NULL;
    for (int64_t s = 0; s < seq; s++) {
      /* Gather each active row's projected input for its own time step. */
      for (int64_t b = 0; b < batch; b++) {
        if (s >= lens[b]) continue;
        int64_t t = rev ? lens[b] - 1 - s : s;
        int64_t row = a->layout ? b * seq + t : t * batch + b;
        memcpy(gates + b * GH, XW + row * GH, sizeof(float) * (size_t)GH);
      }
      int64_t rec = a->cell == CELL_GRU ? 2 * H : GH; /* GRU's h gate comes later */
      mi_sgemm(false, true, batch, rec, H, 1.f, h, H, R, H, 1.f, gates, GH);
      if (a->cell == CELL_GRU) {
        const float *Rh = R + 2 * H * H;
        if (a->lbr) {
          mi_sgemm(false, true, batch, H, H, 1.f, h, H, Rh, H, 0.f, tmp2, H);
        } else {
          /* (r .* h) * Rh^T needs r first. */
          for (int64_t b = 0; b < batch; b++) act_apply(&f[0], a->clip, gates + b * GH + H, H);
          for (int64_t i = 0; i < batch * H; i++)
            tmp[i] = gates[(i / H) * GH + H + i % H] * h[i];
          mi_sgemm(false, true, batch, H, H, 1.f, tmp, H, Rh, H, 0.f, tmp2, H);
        }
      }
      for (int64_t b = 0; b < batch; b++) {
        if (s >= lens[b]) continue;
        int64_t t = rev ? lens[b] - 1 - s : s;
        float *g = gates + b * GH, *hb = h + b * H, *cb = c + b * H;
        if (a->cell == CELL_RNN) {
          act_apply(&f[0], a->clip, g, H);
          memcpy(hb, g, sizeof(float) * (size_t)H);
        } else if (a->cell == CELL_GRU) {
          float *z = g, *rg = g + H, *hh = g + 2 * H, *hr = tmp2 + b * H;
          act_apply(&f[0], a->clip, z, H);
          if (a->lbr) {
            act_apply(&f[0], a->clip, rg, H);
            for (int64_t j = 0; j < H; j++) hh[j] += rg[j] * (hr[j] + rbh[j]);
          } else {
            for (int64_t j = 0; j < H; j++) hh[j] += hr[j];
          }
          act_apply(&f[1], a->clip, hh, H);
          for (int64_t j = 0; j < H; j++) hb[j] = (1.f - z[j]) * hh[j] + z[j] * hb[j];
        } else {
          /* LSTM gate order i, o, f, c; peepholes P = [Pi, Po, Pf]. */
          float *gi = g, *go = g + H, *gf = g + 2 * H, *gc = g + 3 * H;
          if (Pd)
            for (int64_t j = 0; j < H; j++) {
              gi[j] += Pd[j] * cb[j];
              gf[j] += Pd[2 * H + j] * cb[j];
            }
          act_apply(&f[0], a->clip, gi, H);
          if (a->input_forget)
            for (int64_t j = 0; j < H; j++) gf[j] = 1.f - gi[j];
          else
            act_apply(&f[0], a->clip, gf, H);
          act_apply(&f[1], a->clip, gc, H);
          for (int64_t j = 0; j < H; j++) cb[j] = gf[j] * cb[j] + gi[j] * gc[j];
          if (Pd)
            for (int64_t j = 0; j < H; j++) go[j] += Pd[H + j] * cb[j];
          act_apply(&f[0], a->clip, go, H);
          memcpy(gi, cb, sizeof(float) * (size_t)H); /* gi is free now: h(c) */
          act_apply(&f[2], 0.f, gi, H);
          for (int64_t j = 0; j < H; j++) hb[j] = go[j] * gi[j];
        }
        if (Y) {
          int64_t yo = a->layout ? ((b * seq + t) * D + d) * H : ((t * D + d) * batch + b) * H;
          memcpy(Y + yo, hb, sizeof(float) * (size_t)H);
        }
      }
    }
    for (int64_t b = 0; b < batch; b++) {
      int64_t so = a->layout ? (b * D + d) * H : (d * batch + b) * H;
      if (Yh) memcpy(Yh + so, h + b * H, sizeof(float) * (size_t)H);
      if (Yc) memcpy(Yc + so, c + b * H, sizeof(float) * (size_t)H);
    }
  }
  mi_exec_scratch_release(ex, lens);
  return NULL;
}

const mi_op_def mi_ops_rnn[] = {
    {"LSTM", 7, 0, rnn_init, rnn_infer, rnn_run, NULL},
    {"GRU", 7, 0, rnn_init, rnn_infer, rnn_run, NULL},
    {"RNN", 7, 0, rnn_init, rnn_infer, rnn_run, NULL},
    {NULL},
};
