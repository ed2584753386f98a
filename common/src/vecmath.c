/* e^x as Cephes's expf does it (x = n ln2 + r, |r| <= ln2 / 2, a degree-7
 * polynomial for e^r) in branch-free float and int arithmetic that the
 * compiler vectorises, once per instruction set level (mi_isa_level picks).
 * Built with -fno-trapping-math, without which the selects below keep the
 * loop scalar below AVX-512. */
#include "medinfer/vecmath.h"

#include <stdint.h>
#include <string.h>

#include "medinfer/cpu.h"

static inline float from_bits(uint32_t u) {
  float f;
  memcpy(&f, &u, sizeof f);
  return f;
}

static inline uint32_t to_bits(float f) {
  uint32_t u;
  memcpy(&u, &f, sizeof u);
  return u;
}

static inline __attribute__((always_inline)) void exp_loop(const float *x, float *y, size_t n) {
  const float lo = -103.972084f, hi = 88.7228394f; /* e^lo rounds to 0, e^hi overflows */
  const float magic = 12582912.0f;                 /* 1.5 * 2^23: adding it rounds to an integer */
  for (size_t i = 0; i < n; ++i) {
    const float v = x[i];
    float a = v >= lo ? v : lo; /* so NaN takes lo here, and is put back at the end */
    a = a <= hi ? a : hi;
    const float t = a * 1.44269504088896341f + magic;
    const int32_t k = (int32_t)(to_bits(t) - to_bits(magic)); /* round(a / ln2), -150..128 */
    const float fk = t - magic;
    float r = a - fk * 0.693359375f;
    r = r - fk * -2.12194440e-4f;
    const float r2 = r * r;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r2 + r + 1.0f;
    /* 2^k in two normal factors, so k from -150 (subnormal results) to 128 */
    const int32_t k1 = k >> 1, k2 = k - k1;
    const float e = p * from_bits((uint32_t)(k1 + 127) << 23) * from_bits((uint32_t)(k2 + 127) << 23);
    y[i] = v == v ? e : v;
  }
}

static void exp_generic(const float *x, float *y, size_t n) { exp_loop(x, y, n); }

#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__)
__attribute__((target("avx2,fma"))) static void exp_avx2(const float *x, float *y, size_t n) { exp_loop(x, y, n); }
__attribute__((target("avx512f,fma"))) static void exp_avx512(const float *x, float *y, size_t n) {
  exp_loop(x, y, n);
}
#endif

void mi_exp_floats(const float *x, float *y, size_t n) {
#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__)
  switch (mi_isa_level()) {
  case MI_ISA_AVX512: exp_avx512(x, y, n); return;
  case MI_ISA_AVX2: exp_avx2(x, y, n); return;
  default: break;
  }
#endif
  exp_generic(x, y, n);
}

void mi_sigmoid_floats(const float *x, float *y, size_t n) {
  for (size_t i = 0; i < n; ++i) y[i] = -x[i];
  mi_exp_floats(y, y, n);
  for (size_t i = 0; i < n; ++i) y[i] = 1.0f / (1.0f + y[i]);
}
