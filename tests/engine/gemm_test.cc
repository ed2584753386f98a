// medinfer's own SGEMM (engine/src/gemm) at every ISA level against a
// double-precision reference: edge sizes, all transpositions, alpha/beta,
// padded leading dimensions, beta = 0 over NaN garbage, both orientations of
// the driver, blocking boundaries, threads and concurrent callers.
#include <gtest/gtest.h>

#include <cmath>
#include <algorithm>
#include <cstdint>
#include <limits>
#include <random>
#include <thread>
#include <vector>

#include "gemm/gemm.h"

namespace {

struct Case {
  bool ta, tb;
  int64_t M, N, K;
  float alpha, beta;
  int64_t pad; // extra leading-dimension columns
  int threads;
  bool packed = false; // A pre-packed with mi_gemm_pack_a, product by mi_gemm_sgemm_packed_a
};

std::vector<float> rnd(size_t n, std::mt19937 &rng) {
  std::uniform_real_distribution<float> d(-1.f, 1.f);
  std::vector<float> v(n);
  for (auto &x : v) x = d(rng);
  return v;
}

// Runs one case and checks every element of C (and that the padding of C is untouched).
void check(mi_isa isa, const Case &c, unsigned seed) {
  std::mt19937 rng(seed);
  const int64_t ar = c.ta ? c.K : c.M, ac = c.ta ? c.M : c.K; // stored A is ar x ac
  const int64_t br = c.tb ? c.N : c.K, bc = c.tb ? c.K : c.N;
  const int64_t lda = ac + c.pad, ldb = bc + c.pad, ldc = c.N + c.pad;
  std::vector<float> A = rnd(size_t(ar * lda), rng), B = rnd(size_t(br * ldb), rng);
  std::vector<float> C0 = rnd(size_t(c.M * ldc), rng);
  const float nan = std::numeric_limits<float>::quiet_NaN();
  if (c.beta == 0.f)
    for (auto &x : C0) x = nan; // must not be read
  // Padding columns of C carry a sentinel that must survive.
  for (int64_t i = 0; i < c.M; i++)
    for (int64_t j = c.N; j < ldc; j++) C0[size_t(i * ldc + j)] = 12345.f;
  std::vector<float> C = C0;
  if (c.packed) {
    mi_gemm_packed_a *pa = mi_gemm_pack_a(isa, c.ta, c.M, c.K, A.data(), lda);
    ASSERT_NE(pa, nullptr);
    EXPECT_GE(mi_gemm_packed_a_bytes(pa), size_t(c.M * c.K) * sizeof(float));
    // The packed copy is all the product reads: clobber the source.
    const std::vector<float> A0 = A;
    std::fill(A.begin(), A.end(), std::numeric_limits<float>::quiet_NaN());
    mi_gemm_sgemm_packed_a(c.threads, pa, c.tb, c.N, c.alpha, B.data(), ldb, c.beta, C.data(), ldc, nullptr);
    mi_gemm_packed_a_free(pa);
    A = A0;
  } else {
    mi_gemm_sgemm_isa(isa, c.threads, c.ta, c.tb, c.M, c.N, c.K, c.alpha, A.data(), lda, B.data(),
                      ldb, c.beta, C.data(), ldc);
  }
  int bad = 0;
  for (int64_t i = 0; i < c.M; i++) {
    for (int64_t j = 0; j < c.N; j++) {
      double s = 0, sa = 0;
      for (int64_t k = 0; k < c.K; k++) {
        double a = c.ta ? A[size_t(k * lda + i)] : A[size_t(i * lda + k)];
        double b = c.tb ? B[size_t(j * ldb + k)] : B[size_t(k * ldb + j)];
        s += a * b;
        sa += std::fabs(a * b);
      }
      double ref = double(c.alpha) * s, mag = std::fabs(double(c.alpha)) * sa;
      if (c.beta != 0.f) {
        ref += double(c.beta) * C0[size_t(i * ldc + j)];
        mag += std::fabs(double(c.beta) * C0[size_t(i * ldc + j)]);
      }
      // fp32 accumulation error bound ~ K * eps * sum|a*b|, with headroom.
      const double tol = 4.0 * (double(c.K) + 2.0) * 1.2e-7 * mag + 1e-6;
      const float got = C[size_t(i * ldc + j)];
      if (!(std::fabs(double(got) - ref) <= tol) && bad++ < 5)
        ADD_FAILURE() << mi_isa_name(isa) << " ta=" << c.ta << " tb=" << c.tb << " M=" << c.M
                      << " N=" << c.N << " K=" << c.K << " alpha=" << c.alpha << " beta=" << c.beta
                      << " pad=" << c.pad << " threads=" << c.threads << ": C[" << i << "][" << j
                      << "] = " << got << ", expected " << ref << " (tol " << tol << ")";
    }
    for (int64_t j = c.N; j < ldc; j++)
      if (C[size_t(i * ldc + j)] != 12345.f && bad++ < 5)
        ADD_FAILURE() << mi_isa_name(isa) << " M=" << c.M << " N=" << c.N << " K=" << c.K
                      << ": padding C[" << i << "][" << j << "] overwritten";
  }
  EXPECT_EQ(bad, 0);
}

class GemmIsa : public ::testing::TestWithParam<mi_isa> {
protected:
  void SetUp() override {
    if (!mi_isa_supported(GetParam()))
      GTEST_SKIP() << mi_isa_name(GetParam()) << " not supported by this CPU";
  }
};

const int64_t kSizes[] = {1, 2, 7, 15, 16, 17, 31, 33, 48, 49, 100, 257};
const float kAlpha[] = {1.f, 0.5f, -1.5f, 2.f};
const float kBeta[] = {0.f, 1.f, 0.25f, -1.f, 0.f};

TEST_P(GemmIsa, EdgeShapesAllTranspositions) {
  unsigned seed = 1;
  const int n = int(sizeof kSizes / sizeof kSizes[0]);
  for (int mi = 0; mi < n; mi++)
    for (int ni = 0; ni < n; ni++) {
      const int64_t M = kSizes[mi], N = kSizes[ni], K = kSizes[(mi * 5 + ni * 3) % n];
      for (int t = 0; t < 4; t++) {
        Case c{bool(t & 1), bool(t & 2), M, N, K, kAlpha[(mi + ni + t) % 4],
               kBeta[(mi * 3 + ni + t) % 5], int64_t((mi + ni + t) % 3 == 0 ? 0 : 3 + t),
               1 + (mi + ni) % 2};
        check(GetParam(), c, seed++);
        if (HasFailure()) return;
      }
    }
}

TEST_P(GemmIsa, DepthSweep) {
  unsigned seed = 1000;
  for (int64_t K : kSizes)
    for (int t = 0; t < 4; t++) {
      check(GetParam(), Case{bool(t & 1), bool(t & 2), 33, 100, K, 1.f, 0.f, 0, 2}, seed++);
      check(GetParam(), Case{bool(t & 1), bool(t & 2), 17, 49, K + 300, -0.5f, 1.f, 5, 1}, seed++);
      if (HasFailure()) return;
    }
}

// Crosses the KC / MC / NC cache blocks and the thread split.
TEST_P(GemmIsa, BlockingBoundaries) {
  check(GetParam(), Case{false, false, 520, 2340, 300, 1.f, 0.f, 0, 2}, 7);
  check(GetParam(), Case{true, true, 257, 300, 600, 0.75f, 0.5f, 9, 2}, 8);
  check(GetParam(), Case{false, true, 64, 3136, 147, 1.f, 0.f, 0, 2}, 9);
}

// Narrow N: the driver computes C^T and transposes back.
TEST_P(GemmIsa, NarrowN) {
  unsigned seed = 2000;
  for (int t = 0; t < 4; t++) {
    check(GetParam(), Case{bool(t & 1), bool(t & 2), 512, 49, 300, 1.f, 0.f, 0, 2}, seed++);
    check(GetParam(), Case{bool(t & 1), bool(t & 2), 200, 1, 70, 2.f, 0.5f, 4, 2}, seed++);
    check(GetParam(), Case{bool(t & 1), bool(t & 2), 1, 1000, 64, 1.f, 1.f, 0, 2}, seed++);
  }
}

TEST_P(GemmIsa, AlphaZeroAndEmptyK) {
  std::vector<float> C(6, std::numeric_limits<float>::quiet_NaN()), A(6, 1.f), B(6, 1.f);
  mi_gemm_sgemm_isa(GetParam(), 1, false, false, 2, 3, 0, 1.f, A.data(), 1, B.data(), 3, 0.f,
                    C.data(), 3);
  for (float x : C) EXPECT_EQ(x, 0.f);
  std::vector<float> D(6, 2.f);
  mi_gemm_sgemm_isa(GetParam(), 1, false, false, 2, 3, 2, 0.f, A.data(), 2, B.data(), 3, 0.5f,
                    D.data(), 3);
  for (float x : D) EXPECT_EQ(x, 1.f);
}

// Two threads calling at once: one gets the pool, the other runs alone.
TEST_P(GemmIsa, ConcurrentCallers) {
  const mi_isa isa = GetParam();
  std::thread t1([&] {
    for (int r = 0; r < 4; r++) check(isa, Case{false, false, 130, 400, 200, 1.f, 0.f, 0, 2}, 50 + r);
  });
  std::thread t2([&] {
    for (int r = 0; r < 4; r++) check(isa, Case{true, false, 90, 333, 150, 1.f, 1.f, 2, 2}, 60 + r);
  });
  t1.join();
  t2.join();
}

// Constant A packed once: edge sizes, all transpositions, K and M across the
// KC / MC blocks, narrow N (the 7x7 layers, the FC layer), both thread splits.
TEST_P(GemmIsa, PackedA) {
  unsigned seed = 3000;
  const int n = int(sizeof kSizes / sizeof kSizes[0]);
  for (int mi = 0; mi < n; mi++)
    for (int ni = 0; ni < n; ni += 2) {
      const int64_t M = kSizes[mi], N = kSizes[(ni + mi) % n], K = kSizes[(mi * 5 + ni * 3) % n];
      for (int t = 0; t < 4; t++) {
        Case c{bool(t & 1), bool(t & 2), M, N, K, kAlpha[(mi + ni + t) % 4],
               kBeta[(mi * 3 + ni + t) % 5], int64_t((mi + ni + t) % 3 == 0 ? 0 : 2 + t),
               1 + (mi + ni + t) % 2, true};
        check(GetParam(), c, seed++);
        if (HasFailure()) return;
      }
    }
  for (int t = 0; t < 4; t++) {
    check(GetParam(), Case{bool(t & 1), bool(t & 2), 520, 49, 700, 1.f, 0.f, 0, 2, true}, seed++);
    check(GetParam(), Case{bool(t & 1), bool(t & 2), 300, 196, 450, 0.5f, 1.f, 3, 2, true}, seed++);
    check(GetParam(), Case{bool(t & 1), bool(t & 2), 1000, 1, 600, 1.f, 0.f, 1, 2, true}, seed++);
    check(GetParam(), Case{bool(t & 1), bool(t & 2), 64, 2340, 147, 1.f, 0.f, 0, 2, true}, seed++);
    if (HasFailure()) return;
  }
}

// A simple epilogue (bias per row, residual, ReLU) applied by the kernel in
// registers where it can (mi_gemm_kernel.kern_epi) gives what the epilogue's
// fn gives on the stored tiles: every tile shape, edges and C^T remainders
// included, each combination of bias, residual and ReLU, beta 0 and 1.
struct EpiCtx {
  const float *bias, *res, *c0;
  bool relu;
};
void epi_fn(void *vctx, int64_t m0, int64_t mr, int64_t, int64_t nr, float *c, int64_t ldc) {
  const EpiCtx *e = static_cast<const EpiCtx *>(vctx);
  for (int64_t i = 0; i < mr; i++)
    for (int64_t j = 0; j < nr; j++) {
      float v = c[i * ldc + j];
      if (e->bias) v += e->bias[m0 + i];
      if (e->res) v += e->res[(c - e->c0) + i * ldc + j];
      c[i * ldc + j] = e->relu && !(v > 0.f) ? 0.f : v;
    }
}

TEST_P(GemmIsa, PackedEpilogueInRegisters) {
  std::mt19937 rng(4242);
  const int64_t shapes[][3] = {{8, 48, 64}, {13, 49, 70}, {64, 196, 256}, {5, 7, 9},
                               {24, 100, 300}, {256, 3136 / 4, 64}, {1, 16, 3}, {9, 41, 200}};
  for (const auto &sh : shapes)
    for (int variant = 0; variant < 8; variant++)
      for (float beta : {0.f, 1.f}) {
        const int64_t M = sh[0], N = sh[1], K = sh[2], ldc = N + 3;
        const bool has_bias = variant & 1, has_res = variant & 2, relu = variant & 4;
        std::vector<float> A = rnd(size_t(M * K), rng), B = rnd(size_t(K * N), rng);
        std::vector<float> bias = rnd(size_t(M), rng), res = rnd(size_t(M * ldc), rng), C0 = rnd(size_t(M * ldc), rng);
        mi_gemm_packed_a *pa = mi_gemm_pack_a(GetParam(), false, M, K, A.data(), K);
        ASSERT_NE(pa, nullptr);
        std::vector<float> want = C0, got = C0;
        EpiCtx ew{has_bias ? bias.data() : nullptr, has_res ? res.data() : nullptr, want.data(), relu};
        const mi_gemm_epilogue plain = {epi_fn, &ew, false, false, nullptr, nullptr, nullptr};
        mi_gemm_sgemm_packed_a(2, pa, false, N, 1.f, B.data(), N, beta, want.data(), ldc, &plain);
        EpiCtx eg{ew.bias, ew.res, got.data(), relu};
        const mi_gemm_epilogue simple = {epi_fn, &eg, true, relu, ew.bias, ew.res, got.data()};
        mi_gemm_sgemm_packed_a(2, pa, false, N, 1.f, B.data(), N, beta, got.data(), ldc, &simple);
        mi_gemm_packed_a_free(pa);
        int bad = 0;
        for (int64_t i = 0; i < M; i++)
          for (int64_t j = 0; j < ldc; j++)
            if (!(got[size_t(i * ldc + j)] == want[size_t(i * ldc + j)]) && bad++ < 3)
              ADD_FAILURE() << mi_isa_name(GetParam()) << " M=" << M << " N=" << N << " K=" << K
                            << " bias=" << has_bias << " res=" << has_res << " relu=" << relu << " beta=" << beta
                            << ": C[" << i << "][" << j << "] = " << got[size_t(i * ldc + j)] << ", expected "
                            << want[size_t(i * ldc + j)];
        if (bad) return;
      }
}

TEST(GemmPackedA, DegenerateAndConcurrent) {
  std::vector<float> A(12, 1.f);
  EXPECT_EQ(mi_gemm_pack_a(mi_isa_level(), false, 0, 3, A.data(), 3), nullptr);
  EXPECT_EQ(mi_gemm_pack_a(mi_isa_level(), false, 3, 0, A.data(), 3), nullptr);
  mi_gemm_packed_a_free(nullptr);
  // alpha == 0 scales C by beta; N == 0 leaves it alone.
  mi_gemm_packed_a *pa = mi_gemm_pack_a(mi_isa_level(), false, 3, 4, A.data(), 4);
  ASSERT_NE(pa, nullptr);
  std::vector<float> B(8, 1.f), C(6, 2.f);
  mi_gemm_sgemm_packed_a(1, pa, false, 2, 0.f, B.data(), 2, 0.5f, C.data(), 2, nullptr);
  for (float x : C) EXPECT_EQ(x, 1.f);
  mi_gemm_sgemm_packed_a(1, pa, false, 0, 1.f, B.data(), 2, 0.f, C.data(), 2, nullptr);
  for (float x : C) EXPECT_EQ(x, 1.f);
  mi_gemm_packed_a_free(pa);
  // Two packed products at once (one gets the pool, the other runs alone).
  std::thread t1([&] {
    for (int r = 0; r < 3; r++)
      check(mi_isa_level(), Case{false, false, 130, 400, 300, 1.f, 0.f, 0, 2, true}, 70 + r);
  });
  std::thread t2([&] {
    for (int r = 0; r < 3; r++)
      check(mi_isa_level(), Case{true, true, 90, 333, 150, 1.f, 1.f, 2, 2, true}, 80 + r);
  });
  t1.join();
  t2.join();
}

INSTANTIATE_TEST_SUITE_P(Isa, GemmIsa,
                         ::testing::Values(MI_ISA_GENERIC, MI_ISA_AVX2, MI_ISA_AVX512),
                         [](const ::testing::TestParamInfo<mi_isa> &i) {
                           return std::string(mi_isa_name(i.param));
                         });

TEST(GemmIsaSelect, BestLevelIsSupported) {
  EXPECT_TRUE(mi_isa_supported(mi_isa_level()));
  EXPECT_TRUE(mi_isa_supported(MI_ISA_GENERIC));
}

} // namespace
