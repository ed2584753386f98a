/* Numpy-broadcasting elementwise driver.
 *
 * Every input gets a per-output-dimension element stride (0 where it is
 * broadcast).  Output dimensions of size 1 are dropped and neighbours that are
 * contiguous for every input are merged, so same-shape operands collapse to
 * one flat run and per-channel operands ([N,C,H,W] with [1,C,1,1]) to runs of
 * H*W with a constant operand.  The innermost run goes to a typed kernel that
 * only has to distinguish stride 1 from stride 0. */
#include <string.h>

#include "broadcast.h"

typedef struct ew_plan {
  int nin, ndim;
  int64_t dims[MI_MAX_DIMS];
  int64_t str[MI_EW_MAXIN][MI_MAX_DIMS];
  size_t esz[MI_EW_MAXIN], oesz;
  const char *in[MI_EW_MAXIN];
  char *out;
  mi_ew_kernel kernel;
  const void *param;
} ew_plan;

bool mi_ew_broadcasts_to(const mi_tensor *in, int out_ndim, const int64_t *out_dims) {
  if (in->ndim > out_ndim) return false;
  int off = out_ndim - in->ndim;
  for (int d = 0; d < in->ndim; d++)
    if (in->dims[d] != 1 && in->dims[d] != out_dims[off + d]) return false;
  return true;
}

static bool plan_init(ew_plan *p, mi_tensor *out, int nin, const mi_tensor *const *in) {
  int r = out->ndim;
  int64_t str[MI_EW_MAXIN][MI_MAX_DIMS];
  p->nin = nin;
  for (int k = 0; k < nin; k++) {
    const mi_tensor *t = in[k];
    if (!mi_ew_broadcasts_to(t, r, out->dims)) return false;
    int off = r - t->ndim;
    int64_t s = 1;
    for (int d = r - 1; d >= 0; d--) {
      int j = d - off;
      if (j < 0 || t->dims[j] == 1) {
        str[k][d] = 0;
      } else {
        str[k][d] = s;
        s *= t->dims[j];
      }
    }
    p->esz[k] = mi_dtype_size(t->dtype);
    p->in[k] = (const char *)t->data;
  }
  /* Drop size-1 output dims, then merge dim d into the previous kept one when
   * every input is contiguous across the pair. */
  int nd = 0;
  for (int d = 0; d < r; d++) {
    if (out->dims[d] == 1) continue;
    bool merge = nd > 0;
    for (int k = 0; k < nin && merge; k++)
      merge = p->str[k][nd - 1] == str[k][d] * out->dims[d];
    if (merge) {
      p->dims[nd - 1] *= out->dims[d];
      for (int k = 0; k < nin; k++) p->str[k][nd - 1] = str[k][d];
    } else {
      p->dims[nd] = out->dims[d];
      for (int k = 0; k < nin; k++) p->str[k][nd] = str[k][d];
      nd++;
    }
  }
  if (nd == 0) { /* every dim is 1: a single element */
    p->dims[0] = 1;
    for (int k = 0; k < nin; k++) p->str[k][0] = 0;
    nd = 1;
  }
  p->ndim = nd;
  p->oesz = mi_dtype_size(out->dtype);
  p->out = (char *)out->data;
  return true;
}

/* Output elements [begin, end): walk rows of the innermost dim, keeping a
 * multi-index and per-input row offsets updated by carry (no divisions). */
static void plan_range(void *ctx, int64_t begin, int64_t end) {
  const ew_plan *p = ctx;
  const int nd = p->ndim, nin = p->nin;
  const int64_t inner = p->dims[nd - 1];
  int64_t idx[MI_MAX_DIMS], row_off[MI_EW_MAXIN], s[MI_EW_MAXIN];
  int64_t row = begin / inner, col = begin % inner;
  for (int k = 0; k < nin; k++) {
    row_off[k] = 0;
    s[k] = p->str[k][nd - 1];
  }
  for (int d = nd - 2; d >= 0; d--) {
    idx[d] = row % p->dims[d];
    row /= p->dims[d];
    for (int k = 0; k < nin; k++) row_off[k] += idx[d] * p->str[k][d];
  }
  const char *ptr[MI_EW_MAXIN];
  int64_t pos = begin;
  while (pos < end) {
    int64_t len = inner - col;
    if (len > end - pos) len = end - pos;
    for (int k = 0; k < nin; k++)
      ptr[k] = p->in[k] + (size_t)(row_off[k] + col * s[k]) * p->esz[k];
    p->kernel(p->param, ptr, s, p->out + (size_t)pos * p->oesz, len);
    pos += len;
    col = 0;
    for (int d = nd - 2; d >= 0; d--) {
      for (int k = 0; k < nin; k++) row_off[k] += p->str[k][d];
      if (++idx[d] < p->dims[d]) break;
      for (int k = 0; k < nin; k++) row_off[k] -= p->str[k][d] * p->dims[d];
      idx[d] = 0;
    }
  }
}

bool mi_ew_run(mi_exec *ex, mi_tensor *out, int nin, const mi_tensor *const *in,
               mi_ew_kernel kernel, const void *param, int64_t grain) {
  if (nin < 1 || nin > MI_EW_MAXIN) return false;
  ew_plan p;
  memset(&p, 0, sizeof p);
  if (!plan_init(&p, out, nin, in)) return false;
  p.kernel = kernel;
  p.param = param;
  int64_t total = mi_numel(out->ndim, out->dims);
  if (total <= 0) return true;
  mi_parallel_for(ex, total, grain, plan_range, &p);
  return true;
}
