/* Intensity steps of a card (CARD.md input.preprocessing), in order. */
#include <math.h>

#include "pipeline_internal.h"

static void source_stats(const float *s, int64_t n, double *mean, double *sd) {
  double sum = 0, sq = 0;
  for (int64_t i = 0; i < n; ++i) sum += s[i];
  double m = n ? sum / n : 0;
  for (int64_t i = 0; i < n; ++i) sq += (s[i] - m) * (s[i] - m);
  *mean = m;
  *sd = n > 1 ? sqrt(sq / n) : 1;
  if (!(*sd > 1e-8)) *sd = 1; /* constant volume: keep values finite */
}

/* Affine form x -> x * mul + add of step s (clip bounds for ct_window). */
static void step_affine(const mi_card_step *s, const float *source, int64_t n_source, double *mul, double *add,
                        double *lo, double *hi) {
  *lo = -INFINITY, *hi = INFINITY, *mul = 1, *add = 0;
  switch (s->type) {
    case MI_STEP_CT_WINDOW:
      *lo = s->a - s->b / 2, *hi = s->a + s->b / 2;
      *mul = 1 / s->b, *add = -*lo / s->b;
      break;
    case MI_STEP_ZSCORE: {
      double m = s->a, sd = s->b;
      /* Without mean/std: the series' own statistics, taken on the source
       * voxels (the resampled grid also holds voxels outside the scan). */
      if (!s->has_stats) source_stats(source, n_source, &m, &sd);
      *mul = 1 / sd, *add = -m / sd;
      break;
    }
    case MI_STEP_MEAN_SUBTRACT:
      *mul = s->scale[0], *add = -s->means[0] * s->scale[0];
      break;
  }
}

void mi_preprocess_intensities(const mi_card *c, float *v, int64_t n, const float *source, int64_t n_source) {
  for (int k = 0; k < c->n_steps; ++k) {
    double mul, add, lo, hi;
    step_affine(&c->steps[k], source, n_source, &mul, &add, &lo, &hi);
    const float fl = (float)lo, fh = (float)hi, fm = (float)mul, fa = (float)add;
    if (c->steps[k].type == MI_STEP_CT_WINDOW)
      for (int64_t i = 0; i < n; ++i) {
        float x = v[i] < fl ? fl : v[i] > fh ? fh : v[i];
        v[i] = x * fm + fa;
      }
    else
      for (int64_t i = 0; i < n; ++i) v[i] = v[i] * fm + fa;
  }
}

float mi_preprocessed_background(const mi_card *c, float raw_min, const float *source, int64_t n_source) {
  float x = raw_min;
  mi_preprocess_intensities(c, &x, 1, source, n_source);
  return x;
}
