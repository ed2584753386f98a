/* Activations fused into an operator's output (see graph passes). */
#include <math.h>

#include "internal.h"

void mi_activation_apply(const mi_activation *a, float *x, int64_t n) {
  switch (a->kind) {
    case MI_ACT_NONE: return;
    case MI_ACT_RELU:
      for (int64_t i = 0; i < n; i++) x[i] = x[i] > 0.f ? x[i] : 0.f;
      return;
    case MI_ACT_LEAKY_RELU:
      for (int64_t i = 0; i < n; i++) x[i] = x[i] >= 0.f ? x[i] : x[i] * a->alpha;
      return;
    case MI_ACT_CLIP:
      for (int64_t i = 0; i < n; i++) x[i] = x[i] < a->alpha ? a->alpha : (x[i] > a->beta ? a->beta : x[i]);
      return;
    case MI_ACT_SIGMOID:
      for (int64_t i = 0; i < n; i++) x[i] = 1.f / (1.f + expf(-x[i]));
      return;
    case MI_ACT_TANH:
      for (int64_t i = 0; i < n; i++) x[i] = tanhf(x[i]);
      return;
  }
}
