/* Activations fused into an operator's output (see graph passes). */
#include <math.h>

#include "internal.h"
#include "medinfer/vecmath.h"

/* Parameters are copied into locals: through `a` they might alias x, which
 * keeps the compiler from vectorising; selects instead of branches. */
void mi_activation_apply(const mi_activation *a, float *x, int64_t n) {
  const float alpha = a->alpha, beta = a->beta;
  switch (a->kind) {
    case MI_ACT_NONE: return;
    case MI_ACT_RELU:
      for (int64_t i = 0; i < n; i++) {
        const float v = x[i];
        x[i] = v > 0.f ? v : 0.f;
      }
      return;
    case MI_ACT_LEAKY_RELU: mi_leaky_relu(x, n, alpha); return;
    case MI_ACT_CLIP:
      for (int64_t i = 0; i < n; i++) {
        const float v = x[i] < alpha ? alpha : x[i]; /* then the max: min > max gives max, as Clip; NaN stays */
        x[i] = v > beta ? beta : v;
      }
      return;
    case MI_ACT_SIGMOID:
      mi_sigmoid_floats(x, x, (size_t)n);
      return;
    case MI_ACT_TANH:
      for (int64_t i = 0; i < n; i++) x[i] = tanhf(x[i]);
      return;
  }
}
