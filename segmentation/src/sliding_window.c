/* Sliding-window inference as nnU-Net does it: patch positions spread evenly
 * with at least the requested overlap, each patch's activated output weighted
 * by a Gaussian importance map centred on the patch, weighted sums divided by
 * the summed weights.  2D mode is the same with one-slice patches and an
 * NCHW network. */
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "medinfer/engine.h"
#include "medinfer/hugepages.h"
#include "medinfer/vecmath.h"
#include "parallel.h"
#include "pipeline_internal.h"

/* nnU-Net's compute_steps_for_sliding_window. */
int64_t *mi_window_steps(int64_t dim, int64_t patch, double overlap, int64_t *count) {
  int64_t n = 1;
  if (dim > patch) {
    double target = patch * (1.0 - overlap);
    if (target < 1) target = 1;
    n = (int64_t)ceil((double)(dim - patch) / target) + 1;
  }
  int64_t *s = malloc((size_t)n * sizeof *s);
  if (!s) return NULL;
  double actual = n > 1 ? (double)(dim - patch) / (double)(n - 1) : 0;
  for (int64_t i = 0; i < n; ++i) s[i] = (int64_t)llround(actual * (double)i);
  *count = n;
  return s;
}

/* Separable Gaussian, 1 at the centre voxel (patch / 2); values that would
 * underflow are clamped to the smallest positive one, as nnU-Net does. */
static float *gaussian_map(const int64_t p[3], double scale) {
  int64_t n = p[0] * p[1] * p[2];
  float *g = malloc((size_t)n * sizeof *g);
  double *ax[3];
  for (int a = 0; a < 3; ++a) {
    ax[a] = malloc((size_t)p[a] * sizeof(double));
    double sigma = scale * (double)p[a], c = (double)(p[a] / 2);
    for (int64_t i = 0; ax[a] && i < p[a]; ++i)
      ax[a][i] = p[a] == 1 ? 1.0 : exp(-(i - c) * (i - c) / (2 * sigma * sigma));
  }
  if (g && ax[0] && ax[1] && ax[2]) {
    float mn = INFINITY;
    for (int64_t z = 0, v = 0; z < p[2]; ++z)
      for (int64_t y = 0; y < p[1]; ++y)
        for (int64_t x = 0; x < p[0]; ++x, ++v) {
          g[v] = (float)(ax[0][x] * ax[1][y] * ax[2][z]);
          if (g[v] > 0 && g[v] < mn) mn = g[v];
        }
    for (int64_t v = 0; v < n; ++v)
      if (!(g[v] > 0)) g[v] = mn;
  } else {
    free(g);
    g = NULL;
  }
  for (int a = 0; a < 3; ++a) free(ax[a]);
  return g;
}

/* Softmax over the channels of voxels [v0, v1) (channel stride vox) in runs
 * of voxels, channel by channel, so that the loops over a run vectorise. */
static void softmax_channels(float *o, int64_t vox, int C, int64_t v0, int64_t v1) {
  enum { RUN = 512 };
  float mx[RUN], sum[RUN];
  for (; v0 < v1; v0 += RUN) {
    const int64_t n = v1 - v0 < RUN ? v1 - v0 : RUN;
    float *p = o + v0;
    for (int64_t i = 0; i < n; ++i) mx[i] = p[i], sum[i] = 0;
    for (int c = 1; c < C; ++c)
      for (int64_t i = 0; i < n; ++i) mx[i] = p[c * vox + i] > mx[i] ? p[c * vox + i] : mx[i];
    for (int c = 0; c < C; ++c) {
      float *q = p + c * vox;
      for (int64_t i = 0; i < n; ++i) q[i] -= mx[i];
      mi_exp_floats(q, q, (size_t)n);
      for (int64_t i = 0; i < n; ++i) sum[i] += q[i];
    }
    for (int c = 0; c < C; ++c)
      for (int64_t i = 0; i < n; ++i) p[c * vox + i] /= sum[i];
  }
}

/* The activation on voxels [v0, v1) of a patch's C channels. */
static void activate(float *o, int64_t vox, int C, mi_activation act, int64_t v0, int64_t v1) {
  if (act == MI_ACTIVATION_SIGMOID) {
    for (int c = 0; c < C; ++c) mi_sigmoid_floats(o + c * vox + v0, o + c * vox + v0, (size_t)(v1 - v0));
  } else if (act == MI_ACTIVATION_SOFTMAX) {
    softmax_channels(o, vox, C, v0, v1);
  }
}

/* Copy a patch between buffers, flipping the axes set in `flip` (bit a). */
static void copy_flipped(const float *src, float *dst, const int64_t p[3], int flip) {
  for (int64_t z = 0; z < p[2]; ++z)
    for (int64_t y = 0; y < p[1]; ++y) {
      const int64_t sz = (flip & 4) ? p[2] - 1 - z : z, sy = (flip & 2) ? p[1] - 1 - y : y;
      const float *s = src + (sz * p[1] + sy) * p[0];
      float *d = dst + (z * p[1] + y) * p[0];
      if (flip & 1)
        for (int64_t x = 0; x < p[0]; ++x) d[x] = s[p[0] - 1 - x];
      else
        memcpy(d, s, (size_t)p[0] * sizeof *d);
    }
}

typedef struct win {
  mi_model *model;
  const mi_window_params *prm;
  const float *vol;   /* padded volume */
  int64_t dims[3];    /* padded dims */
  int64_t p[3];
  int fixed_batch;    /* the network's batch dimension if fixed, else 0 */
  int flips;          /* network runs per batch (mirroring) */
  float *gauss, *acc, *wsum;
  int C;
  int64_t done, total;
} win;

/* One batch of patches in flight: origins and the sum of its flips' outputs. */
typedef struct batch {
  int64_t (*org)[3];
  int nb;
  float *sum; /* nb * C * patch voxels, allocated once C is known */
} batch;

static int64_t patch_voxels(const win *w) { return w->p[0] * w->p[1] * w->p[2]; }
static int run_size(const win *w, int nb) { return w->fixed_batch > 0 ? w->fixed_batch : nb; }

static mi_status *make_input(const win *w, int nrun, mi_tensor **in) {
  int64_t dims[5] = {nrun, 1, w->p[2], w->p[1], w->p[0]};
  int64_t dims2[4] = {nrun, 1, w->p[1], w->p[0]};
  return w->prm->mode_2d ? mi_tensor_create(MI_FLOAT, 4, dims2, in) : mi_tensor_create(MI_FLOAT, 5, dims, in);
}

/* The network input for flip f of batch b (a fixed batch is filled with repeats). */
static void fill_input(const win *w, const batch *b, int f, mi_tensor *in, float *patch) {
  const int64_t pv = patch_voxels(w);
  const int nrun = (int)mi_tensor_dims(in)[0];
  float *ib = mi_tensor_data(in);
  for (int k = 0; k < nrun; ++k) {
    const int64_t *o = b->org[k < b->nb ? k : b->nb - 1];
    for (int64_t z = 0; z < w->p[2]; ++z)
      for (int64_t y = 0; y < w->p[1]; ++y)
        memcpy(patch + (z * w->p[1] + y) * w->p[0],
               w->vol + ((o[2] + z) * w->dims[1] + o[1] + y) * w->dims[0] + o[0], (size_t)w->p[0] * sizeof(float));
    copy_flipped(patch, ib + k * pv, w->p, f);
  }
}

/* Rows [r0, r1) (row r: z = r / p[1], y = r % p[1]) of one patch's C
 * channels (src, scaled), Gaussian-weighted into the accumulators. */
static void blend_rows(win *w, const int64_t o[3], const float *src, float scale, int64_t r0, int64_t r1) {
  const int64_t pv = patch_voxels(w), nvox = w->dims[0] * w->dims[1] * w->dims[2];
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t z = r / w->p[1], y = r % w->p[1];
    const int64_t base = ((o[2] + z) * w->dims[1] + o[1] + y) * w->dims[0] + o[0];
    const int64_t pb = r * w->p[0];
    const float *g = w->gauss + pb;
    float *ws = w->wsum + base;
    for (int64_t x = 0; x < w->p[0]; ++x) ws[x] += g[x];
    for (int c = 0; c < w->C; ++c) {
      float *a = w->acc + c * nvox + base;
      const float *sc = src + c * pv + pb;
      for (int64_t x = 0; x < w->p[0]; ++x) a[x] += sc[x] * scale * g[x];
    }
  }
}

/* One patch's activation and blending, split between the host threads. */
typedef struct patch_job {
  win *w;
  const int64_t *org;
  float *src;
  float scale;
} patch_job;

static void activate_part(void *ctx, int64_t b, int64_t e) {
  const patch_job *j = ctx;
  activate(j->src, patch_voxels(j->w), j->w->C, j->w->prm->activation, b, e);
}

static void blend_part(void *ctx, int64_t b, int64_t e) {
  const patch_job *j = ctx;
  blend_rows(j->w, j->org, j->src, j->scale, b, e);
}

/* Parts of at least this many values (voxels x channels), some 100 us of
 * work (mi_seg_for_range starts a thread per part). */
#define PART_VALUES 32768

static void activate_patch(win *w, float *o) {
  patch_job j = {w, NULL, o, 0};
  if (w->prm->activation != MI_ACTIVATION_NONE)
    mi_seg_for_range(w->prm->threads, patch_voxels(w), PART_VALUES / w->C, activate_part, &j);
}

static void blend_patch(win *w, const int64_t o[3], float *src, float scale) {
  patch_job j = {w, o, src, scale};
  mi_seg_for_range(w->prm->threads, w->p[1] * w->p[2], PART_VALUES / (w->C * w->p[0]), blend_part, &j);
}

/* Checks the network's output for flip f of batch b, activates it, flips it
 * back and adds it to the batch's sum, or without flips blends it
 * (allocating the accumulators on the first output, when the channel count
 * is known). */
static mi_status *take_output(win *w, batch *b, int f, mi_tensor *out, int nrun, float **tmp) {
  const int64_t pv = patch_voxels(w);
  const int64_t *od = mi_tensor_dims(out);
  const int nd = mi_tensor_ndim(out);
  int ok = mi_tensor_dtype(out) == MI_FLOAT && nd == (w->prm->mode_2d ? 4 : 5) && od[0] == nrun && od[1] >= 1;
  if (ok && w->prm->mode_2d) ok = od[2] == w->p[1] && od[3] == w->p[0];
  if (ok && !w->prm->mode_2d) ok = od[2] == w->p[2] && od[3] == w->p[1] && od[4] == w->p[0];
  if (ok && w->C && od[1] != w->C) ok = 0;
  if (!ok) {
    char shape[128] = "";
    for (int i = 0; i < nd && i < 6; ++i)
      snprintf(shape + strlen(shape), sizeof shape - strlen(shape), "%s%lld", i ? "x" : "", (long long)od[i]);
    return mi_error(MI_ERR_SHAPE,
                    "sliding window: network output %s (%s) does not match the patch %lldx%lldx%lld (x, y, z) "
                    "with batch %d",
                    shape, mi_dtype_name(mi_tensor_dtype(out)), (long long)w->p[0], (long long)w->p[1],
                    (long long)w->p[2], nrun);
  }
  if (!w->C) {
    w->C = (int)od[1];
    const int64_t nvox = w->dims[0] * w->dims[1] * w->dims[2];
    /* written before blending reads them (hugepages.h), on huge pages */
    w->acc = mi_alloc_huge_zeroed((size_t)(nvox * w->C) * sizeof(float));
    w->wsum = mi_alloc_huge_zeroed((size_t)nvox * sizeof(float));
    if (!w->acc || !w->wsum)
      return mi_error(MI_ERR_NO_MEMORY, "sliding window: cannot allocate %d x %lld probabilities", w->C,
                      (long long)nvox);
  }
  float *ob = mi_tensor_data(out);
  if (w->flips == 1) { /* no flips to average: straight into the accumulators */
    for (int k = 0; k < b->nb; ++k) {
      float *o = ob + (int64_t)k * w->C * pv;
      activate_patch(w, o);
      blend_patch(w, b->org[k], o, 1.0f);
    }
    return NULL;
  }
  if (!*tmp && !(*tmp = malloc((size_t)(pv * w->C) * sizeof(float))))
    return mi_error(MI_ERR_NO_MEMORY, "sliding window: out of memory");
  if (!b->sum && !(b->sum = calloc((size_t)(b->nb * pv * w->C), sizeof(float))))
    return mi_error(MI_ERR_NO_MEMORY, "sliding window: out of memory");
  if (f == 0) memset(b->sum, 0, (size_t)(b->nb * pv * w->C) * sizeof(float));
  for (int k = 0; k < b->nb; ++k) {
    float *o = ob + (int64_t)k * w->C * pv;
    activate_patch(w, o);
    for (int c = 0; c < w->C; ++c) copy_flipped(o + c * pv, *tmp + c * pv, w->p, f); /* flip back */
    float *s = b->sum + (int64_t)k * w->C * pv;
    for (int64_t i = 0; i < w->C * pv; ++i) s[i] += (*tmp)[i];
  }
  return NULL;
}

/* A batch's mean over flips, Gaussian-weighted into the accumulators. */
static void blend(win *w, const batch *b) {
  for (int k = 0; k < b->nb; ++k)
    blend_patch(w, b->org[k], b->sum + (int64_t)k * w->C * patch_voxels(w), 1.0f / (float)w->flips);
}

/* ---- the network on a second thread ---------------------------------------
 * With `pipelined`, the network runs on a runner thread while this thread
 * fills the next input and takes the previous output, so a GPU is not idle
 * while the host prepares patches (and the host not while the GPU runs). */
typedef struct runner {
  pthread_t thread;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  mi_model *model;
  mi_tensor *in;    /* submitted input (NULL: idle) */
  mi_tensor *outs[8];
  int n_out;
  mi_status *st;
  int busy, quit;
} runner;

static void *runner_main(void *arg) {
  runner *r = arg;
  pthread_mutex_lock(&r->mu);
  for (;;) {
    while (!r->busy && !r->quit) pthread_cond_wait(&r->cv, &r->mu);
    if (r->quit) break;
    mi_tensor *in = r->in;
    pthread_mutex_unlock(&r->mu);
    mi_tensor *outs[8] = {0};
    mi_status *st = mi_model_run(r->model, &in, 1, outs, r->n_out);
    pthread_mutex_lock(&r->mu);
    memcpy(r->outs, outs, sizeof outs);
    r->st = st;
    r->busy = 0;
    pthread_cond_broadcast(&r->cv);
  }
  pthread_mutex_unlock(&r->mu);
  return NULL;
}

static void runner_submit(runner *r, mi_tensor *in) {
  pthread_mutex_lock(&r->mu);
  r->in = in;
  r->busy = 1;
  pthread_cond_broadcast(&r->cv);
  pthread_mutex_unlock(&r->mu);
}

static mi_status *runner_wait(runner *r, mi_tensor **outs) {
  pthread_mutex_lock(&r->mu);
  while (r->busy) pthread_cond_wait(&r->cv, &r->mu);
  memcpy(outs, r->outs, sizeof r->outs);
  mi_status *st = r->st;
  r->st = NULL;
  pthread_mutex_unlock(&r->mu);
  return st;
}

static void free_outs(mi_tensor **outs, int n) {
  for (int i = 0; i < n; ++i) mi_tensor_free(outs[i]), outs[i] = NULL;
}

/* Every batch (bsz patches, the last may be short) through the network:
 * fill, run, take for each flip, then blend; progress after each batch. */
static mi_status *run_all(win *w, const int64_t *const st_[3], const int64_t cnt[3], int bsz) {
  const int no = mi_model_num_outputs(w->model);
  if (no < 1 || no > 8)
    return mi_error(MI_ERR_INVALID_MODEL, "sliding window: the network has %d outputs (expected 1)", no);
  const int64_t nbatch = (w->total + bsz - 1) / bsz, steps = nbatch * w->flips;
  const bool pipe = w->prm->pipelined != 0;
  batch bt[2] = {{0}, {0}};
  mi_tensor *in[2] = {NULL, NULL};
  float *patch = malloc((size_t)patch_voxels(w) * sizeof(float)), *tmp = NULL;
  mi_status *st = patch ? NULL : mi_error(MI_ERR_NO_MEMORY, "sliding window: out of memory");
  for (int k = 0; k < 2 && !st; ++k) {
    bt[k].org = malloc((size_t)bsz * sizeof *bt[k].org);
    if (!bt[k].org) st = mi_error(MI_ERR_NO_MEMORY, "sliding window: out of memory");
  }
  runner r;
  memset(&r, 0, sizeof r);
  bool started = false;
  if (!st && pipe) {
    r.model = w->model, r.n_out = no;
    pthread_mutex_init(&r.mu, NULL);
    pthread_cond_init(&r.cv, NULL);
    if (pthread_create(&r.thread, NULL, runner_main, &r)) {
      pthread_mutex_destroy(&r.mu);
      pthread_cond_destroy(&r.cv);
      st = mi_error(MI_ERR_INTERNAL, "sliding window: cannot start the runner thread");
    } else {
      started = true;
    }
  }
  /* Step s = batch s / flips, flip s % flips; batch b lives in bt[b % 2]. */
  bool pending = false; /* step s - 1 submitted to the runner, not yet taken */
  for (int64_t s = 0; s <= steps && !st; ++s) {
    mi_tensor *slot = NULL;
    if (s < steps) {
      const int64_t b = s / w->flips;
      const int f = (int)(s % w->flips);
      batch *cur = &bt[b % 2];
      if (f == 0) { /* this batch's origins */
        cur->nb = (int)(w->total - b * bsz < bsz ? w->total - b * bsz : bsz);
        for (int k = 0; k < cur->nb; ++k) {
          const int64_t i = b * bsz + k;
          cur->org[k][0] = st_[0][i % cnt[0]];
          cur->org[k][1] = st_[1][(i / cnt[0]) % cnt[1]];
          cur->org[k][2] = st_[2][i / (cnt[0] * cnt[1])];
        }
      }
      const int nrun = run_size(w, cur->nb);
      slot = in[s % 2];
      if (slot && mi_tensor_dims(slot)[0] != nrun) {
        mi_tensor_free(slot);
        slot = in[s % 2] = NULL;
      }
      if (!slot && (st = make_input(w, nrun, &in[s % 2]))) break;
      slot = in[s % 2];
      fill_input(w, cur, f, slot, patch);
    }
    /* Run step s (pipelined: submit it, then take step s - 1 meanwhile). */
    mi_tensor *outs[8] = {0};
    int64_t take = -1;
    if (pipe) {
      if (pending) {
        st = runner_wait(&r, outs);
        pending = false;
        take = s - 1;
      }
      if (!st && slot) {
        runner_submit(&r, slot);
        pending = true;
      }
    } else if (slot) {
      st = mi_model_run(w->model, &slot, 1, outs, no);
      take = s;
    }
    if (!st && take >= 0) {
      const int64_t b = take / w->flips;
      const int f = (int)(take % w->flips);
      batch *tb = &bt[b % 2];
      st = take_output(w, tb, f, outs[0], run_size(w, tb->nb), &tmp);
      if (!st && f == w->flips - 1) {
        if (w->flips > 1) blend(w, tb); /* one flip: blended as it was taken */
        w->done += tb->nb;
        if (w->prm->progress) {
          char msg[64];
          snprintf(msg, sizeof msg, "inference: patch %lld/%lld", (long long)w->done, (long long)w->total);
          if (w->prm->progress(w->prm->progress_user, (double)w->done / (double)w->total, msg))
            st = mi_error(MI_ERR_CANCELLED, "cancelled during inference");
        }
      }
    }
    free_outs(outs, no);
  }
  if (started) {
    if (pending) { /* an error left a run in flight: let it finish */
      mi_tensor *outs[8] = {0};
      mi_status_free(runner_wait(&r, outs));
      free_outs(outs, no);
    }
    pthread_mutex_lock(&r.mu);
    r.quit = 1;
    pthread_cond_broadcast(&r.cv);
    pthread_mutex_unlock(&r.mu);
    pthread_join(r.thread, NULL);
    pthread_mutex_destroy(&r.mu);
    pthread_cond_destroy(&r.cv);
  }
  for (int k = 0; k < 2; ++k) {
    free(bt[k].org);
    free(bt[k].sum);
    mi_tensor_free(in[k]);
  }
  free(patch);
  free(tmp);
  return st;
}

mi_status *mi_sliding_window(mi_model *model, const float *volume, const int64_t dims[3], const mi_window_params *prm,
                             float **out, int *out_channels) {
  if (!out || !out_channels) return mi_error(MI_ERR_INVALID_ARGUMENT, "mi_sliding_window: NULL output");
  *out = NULL, *out_channels = 0;
  if (!model || !volume || !dims || !prm) return mi_error(MI_ERR_INVALID_ARGUMENT, "mi_sliding_window: NULL argument");
  if (mi_model_num_inputs(model) != 1)
    return mi_error(MI_ERR_INVALID_MODEL, "sliding window: the network has %d inputs (expected 1 image input)",
                    mi_model_num_inputs(model));
  win w;
  memset(&w, 0, sizeof w);
  w.model = model, w.prm = prm;
  for (int a = 0; a < 3; ++a) {
    if (dims[a] < 1) return mi_error(MI_ERR_SHAPE, "sliding window: empty volume");
    w.p[a] = prm->patch[a] > 0 ? prm->patch[a] : dims[a]; /* 2D without patch: whole slice */
  }
  if (prm->mode_2d) w.p[2] = 1;
  if (prm->batch < 1 || !(prm->overlap >= 0 && prm->overlap < 1))
    return mi_error(MI_ERR_INVALID_ARGUMENT, "sliding window: batch %d, overlap %g", prm->batch, prm->overlap);
  mi_io_info info;
  MI_TRY(mi_model_input_info(model, 0, &info));
  if (info.ndim != -1 && info.ndim != (prm->mode_2d ? 4 : 5))
    return mi_error(MI_ERR_SHAPE, "sliding window: the network takes a %d-D input; %s mode needs %s", info.ndim,
                    prm->mode_2d ? "2d" : "3d", prm->mode_2d ? "NCHW" : "NCDHW");
  if (info.ndim > 0 && info.dims[0] > 0) w.fixed_batch = (int)info.dims[0];
  if (info.ndim > 1 && info.dims[1] > 0 && info.dims[1] != 1)
    return mi_error(MI_ERR_SHAPE, "sliding window: the network takes %lld input channels (1 supported)",
                    (long long)info.dims[1]);
  for (int i = 2; info.ndim > 0 && i < info.ndim; ++i) {
    int64_t want = w.p[prm->mode_2d ? 3 - i : 4 - i];
    if (info.dims[i] > 0 && info.dims[i] != want)
      return mi_error(MI_ERR_SHAPE, "sliding window: the network's input dimension %d is fixed to %lld, the patch "
                      "has %lld (inference.patch_size is x, y, z)", i, (long long)info.dims[i], (long long)want);
  }

  /* Pad volumes smaller than a patch, centred. */
  int64_t lo[3], n = 1;
  int padded = 0;
  for (int a = 0; a < 3; ++a) {
    w.dims[a] = dims[a] < w.p[a] ? w.p[a] : dims[a];
    lo[a] = (w.dims[a] - dims[a]) / 2;
    padded |= w.dims[a] != dims[a];
    n *= w.dims[a];
  }
  float *pad = NULL;
  if (padded) {
    if (!(pad = malloc((size_t)n * sizeof *pad))) return mi_error(MI_ERR_NO_MEMORY, "sliding window: out of memory");
    for (int64_t i = 0; i < n; ++i) pad[i] = prm->pad_value;
    for (int64_t z = 0; z < dims[2]; ++z)
      for (int64_t y = 0; y < dims[1]; ++y)
        memcpy(pad + ((z + lo[2]) * w.dims[1] + y + lo[1]) * w.dims[0] + lo[0], volume + (z * dims[1] + y) * dims[0],
               (size_t)dims[0] * sizeof(float));
  }
  w.vol = padded ? pad : volume;
  int64_t cnt[3];
  int64_t *st_[3] = {0};
  w.gauss = gaussian_map(w.p, prm->sigma_scale > 0 ? prm->sigma_scale : 0.125);
  mi_status *st = w.gauss ? NULL : mi_error(MI_ERR_NO_MEMORY, "sliding window: out of memory");
  for (int a = 0; a < 3 && !st; ++a)
    if (!(st_[a] = mi_window_steps(w.dims[a], w.p[a], prm->overlap, &cnt[a])))
      st = mi_error(MI_ERR_NO_MEMORY, "sliding window: out of memory");
  if (!st) {
    w.total = cnt[0] * cnt[1] * cnt[2];
    w.flips = prm->mirroring ? (prm->mode_2d ? 4 : 8) : 1;
    st = run_all(&w, (const int64_t *const *)st_, cnt, w.fixed_batch > 0 ? w.fixed_batch : prm->batch);
  }
  for (int a = 0; a < 3; ++a) free(st_[a]);
  free(w.gauss);
  free(pad);
  if (st) {
    free(w.acc), free(w.wsum);
    return st;
  }
  /* Normalise and crop the padding away. */
  const int64_t nv = dims[0] * dims[1] * dims[2];
  float *res = padded ? malloc((size_t)(nv * w.C) * sizeof *res) : w.acc;
  if (!res) {
    free(w.acc), free(w.wsum);
    return mi_error(MI_ERR_NO_MEMORY, "sliding window: out of memory");
  }
  for (int c = 0; c < w.C; ++c)
    for (int64_t z = 0; z < dims[2]; ++z)
      for (int64_t y = 0; y < dims[1]; ++y) {
        const int64_t sb = ((z + lo[2]) * w.dims[1] + y + lo[1]) * w.dims[0] + lo[0];
        const float *a = w.acc + c * n + sb, *ws = w.wsum + sb;
        float *r = res + c * nv + (z * dims[1] + y) * dims[0];
        for (int64_t x = 0; x < dims[0]; ++x) r[x] = a[x] / ws[x];
      }
  if (padded) free(w.acc);
  free(w.wsum);
  *out = res;
  *out_channels = w.C;
  return NULL;
}
