/* From channel probabilities to a label: softmax argmax or sigmoid
 * thresholds (overlaps go to the most probable label), as CARD.md says. */
#include <string.h>

#include "parallel.h"
#include "pipeline_internal.h"

mi_status *mi_decision_init(const mi_card *c, int channels, mi_decision *d) {
  memset(d, 0, sizeof *d);
  d->activation = c->activation;
  d->threshold = (float)c->threshold;
  d->channels = channels;
  int need = 0;
  for (size_t i = 0; i < c->n_labels; ++i) {
    int ch = c->activation == MI_ACTIVATION_SOFTMAX ? c->labels[i].value : c->labels[i].value - 1;
    if (ch + 1 > need) need = ch + 1;
    if (ch < channels && ch < 256) d->label_of_channel[ch] = (uint8_t)c->labels[i].value;
  }
  if (channels < need || channels > 256)
    return mi_error(MI_ERR_SHAPE,
                    "%s: output.labels: the network gives %d output channels but %s with label values up to %d "
                    "needs %d",
                    c->path, channels, c->activation == MI_ACTIVATION_SOFTMAX ? "softmax" : "sigmoid",
                    c->activation == MI_ACTIVATION_SOFTMAX ? need - 1 : need, need);
  return NULL;
}

uint8_t mi_decide(const mi_decision *d, const float *p, int64_t stride) {
  int best = -1;
  float bp = 0;
  if (d->activation == MI_ACTIVATION_SIGMOID) {
    for (int c = 0; c < d->channels; ++c) {
      float v = p[c * stride];
      if (v >= d->threshold && (best < 0 || v > bp)) best = c, bp = v;
    }
    return best < 0 ? 0 : d->label_of_channel[best];
  }
  for (int c = 0; c < d->channels; ++c) {
    float v = p[c * stride];
    if (best < 0 || v > bp) best = c, bp = v;
  }
  return d->label_of_channel[best];
}

typedef struct job {
  const mi_decision *d;
  const float *probs;
  int64_t n;
  uint8_t *labels;
} job;

static void decide_part(void *ctx, int64_t lo, int64_t hi) {
  const job *j = ctx;
  for (int64_t v = lo; v < hi; ++v) j->labels[v] = mi_decide(j->d, j->probs + v, j->n);
}

void mi_decide_all(const mi_decision *d, const float *probs, int64_t n, uint8_t *labels, int threads) {
  job j = {d, probs, n, labels};
  mi_seg_for_range(threads, n, 1 << 16, decide_part, &j);
}
