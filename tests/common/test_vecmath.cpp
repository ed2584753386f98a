// mi_exp_floats against e^x in double precision.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "medinfer/cpu.h"
#include "medinfer/vecmath.h"

namespace {

float from_bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

// |got - want| in units of the last place of want as a float (2^-149 for
// subnormals).
double ulps(float got, double want) {
  const double unit = std::ldexp(1.0, std::max(std::ilogb(want) - 23, -149));
  return std::fabs((double)got - want) / unit;
}

// Every 61st bit pattern (both signs, all exponents), in arrays whose
// lengths leave tails past every vector width.
TEST(VecMath, ExpIsWithinOneAndAHalfUlpOverAllFloats) {
  const size_t chunk = 4093;
  std::vector<float> x(chunk), y(chunk);
  double worst = 0;
  float worst_x = 0;
  size_t checked = 0;
  for (uint64_t b = 0; b < (1ull << 32);) {
    size_t n = 0;
    for (; n < chunk && b < (1ull << 32); ++n, b += 61) x[n] = from_bits((uint32_t)b);
    mi_exp_floats(x.data(), y.data(), n);
    for (size_t i = 0; i < n; ++i) {
      const float v = x[i];
      if (std::isnan(v)) {
        ASSERT_TRUE(std::isnan(y[i])) << "e^NaN";
        continue;
      }
      const double want = std::exp((double)v);
      if (want > std::numeric_limits<float>::max()) {
        ASSERT_EQ(y[i], std::numeric_limits<float>::infinity()) << "e^" << v;
        continue;
      }
      if (want < std::ldexp(1.0, -150)) {
        ASSERT_EQ(y[i], 0.0f) << "e^" << v;
        continue;
      }
      const double e = ulps(y[i], want);
      ++checked;
      if (e > worst) worst = e, worst_x = v;
    }
  }
  EXPECT_GT(checked, 30000000u);
  EXPECT_LE(worst, 1.5) << "at e^" << worst_x << " (" << mi_isa_name(mi_isa_level()) << ")";
}

TEST(VecMath, ExpEdgesAndInPlace) {
  const float inf = std::numeric_limits<float>::infinity();
  std::vector<float> x = {0.0f, -0.0f, 1.0f, -1.0f, inf, -inf, 88.7228317f, 88.7228394f,
                          -103.2789f, -104.0f, std::nanf(""), 1e-30f, -87.0f};
  const size_t n = x.size();
  std::vector<float> y(n);
  mi_exp_floats(x.data(), y.data(), n);
  EXPECT_EQ(y[0], 1.0f);
  EXPECT_EQ(y[1], 1.0f);
  EXPECT_NEAR(y[2], 2.7182818f, 3e-7f);
  EXPECT_NEAR(y[3], 0.36787944f, 3e-8f);
  EXPECT_EQ(y[4], inf);
  EXPECT_EQ(y[5], 0.0f);
  EXPECT_TRUE(std::isfinite(y[6])) << "e^88.7228317 is below FLT_MAX";
  EXPECT_EQ(y[7], inf) << "e^88.7228394 is above FLT_MAX";
  EXPECT_GT(y[8], 0.0f) << "the smallest subnormal";
  EXPECT_EQ(y[9], 0.0f);
  EXPECT_TRUE(std::isnan(y[10]));
  EXPECT_EQ(y[11], 1.0f);
  EXPECT_TRUE(std::isnormal(y[12]));
  // In place gives the same values.
  mi_exp_floats(x.data(), x.data(), n);
  for (size_t i = 0; i < n; ++i) {
    if (std::isnan(y[i])) continue;
    EXPECT_EQ(x[i], y[i]) << i;
  }
}

}  // namespace
