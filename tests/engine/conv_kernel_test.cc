// Convolution and pooling kernels against naive double-precision references
// over randomized geometry: 1D/2D/3D, odd sizes and channel counts, strides,
// dilations, asymmetric pads, groups (depthwise included), bias, and the
// fused epilogue (residual Add + Relu).  Weights come either as an
// initializer (packed once at load: the implicit-GEMM path) or as a graph
// input (the per-call im2col path), so both paths are held to the reference.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cmath>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "medinfer/cpu.h"
#include "medinfer/engine.h"
#include "onnx_builder.h"
#include "profile_text.h"

using onnxb::Model;

namespace {

struct Geo {
  int nsp;
  int64_t N, C, M, G;
  int64_t in[3], k[3], s[3], d[3], pb[3], pe[3], out[3];
};

int64_t numel(const std::vector<int64_t> &d) {
  int64_t n = 1;
  for (auto v : d) n *= v;
  return n;
}

std::vector<float> rnd(size_t n, std::mt19937 &rng) {
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  std::vector<float> v(n);
  for (auto &x : v) x = u(rng);
  return v;
}

bool g_bf16 = false;  // run with mi_options.bf16
bool g_fast = false;  // run with mi_options.fast_math (Winograd on the CPU)

// Runs the model on the given inputs (names in order); returns output 0
// (and the others in *rest when set).  With profile set, the run is
// profiled and *profile gets the report.
std::vector<float> run(const Model &md, const std::vector<std::vector<int64_t>> &dims,
                       std::vector<std::vector<float>> &data, std::string *err, std::string *profile = nullptr,
                       std::vector<std::vector<float>> *rest = nullptr) {
  auto buf = md.serialize();
  mi_options o;
  mi_options_default(&o);
  o.threads = 2;
  o.bf16 = g_bf16;
  o.fast_math = g_fast;
  mi_model *m = nullptr;
  mi_status *st = mi_model_load_buffer(buf.data(), buf.size(), nullptr, "kernel.onnx", &o, &m);
  if (st) {
    *err = mi_status_message(st);
    mi_status_free(st);
    return {};
  }
  std::vector<mi_tensor *> in(dims.size(), nullptr);
  for (size_t i = 0; i < dims.size(); i++)
    EXPECT_EQ(mi_tensor_wrap(MI_FLOAT, (int)dims[i].size(), dims[i].data(), data[i].data(), &in[i]), nullptr);
  std::vector<mi_tensor *> outs(md.outputs.size(), nullptr);
  if (profile) {
    EXPECT_EQ(mi_model_set_profiling(m, 1), nullptr);
  }
  st = mi_model_run(m, in.data(), (int)in.size(), outs.data(), (int)outs.size());
  if (profile && !st) *profile = profile_text(m);
  std::vector<float> y;
  if (st) {
    *err = mi_status_message(st);
    mi_status_free(st);
  } else {
    for (size_t i = 0; i < outs.size(); i++) {
      const float *p = static_cast<const float *>(mi_tensor_cdata(outs[i]));
      if (i == 0) y.assign(p, p + mi_tensor_numel(outs[i]));
      else if (rest) rest->emplace_back(p, p + mi_tensor_numel(outs[i]));
    }
  }
  for (auto *t : in) mi_tensor_free(t);
  for (auto *t : outs) mi_tensor_free(t);
  mi_model_free(m);
  return y;
}

// Index helpers over the 3D-normalised geometry (leading spatial dims 1).
int64_t at3(const int64_t *sz, int64_t z, int64_t y, int64_t x) { return (z * sz[1] + y) * sz[2] + x; }

// wide: a dense 2D layer with enough channels for several weight blocks
// (K > 192 rows) and channel groups (M > 64) in the kernels.
Geo random_conv(std::mt19937 &rng, bool wide = false) {
  auto pick = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  Geo g{};
  g.nsp = wide ? 2 : pick(1, 3);
  g.N = pick(1, 2);
  const int kind = wide ? 5 : pick(0, 5);  // 0: depthwise, 1: grouped, else dense
  g.G = kind == 0 ? pick(2, 9) : kind == 1 ? pick(2, 3) : 1;
  int64_t cg = kind == 0 ? 1 : pick(1, g.nsp == 3 ? 6 : 13), mg = kind == 0 ? pick(1, 2) : pick(1, 21);
  if (wide) cg = pick(20, 48), mg = pick(60, 140);
  // The channel-vector kernel's run (ctest: conv_kernel_test.cv) takes
  // dense layers whose channel count is whole vectors of 16.
  static const bool m16 = [] {
    const char *e = std::getenv("MEDINFER_CONV_CV");
    return e && std::string(e) == "1";
  }();
  if (m16 && kind >= 2) mg = 16 * ((mg + 15) / 16);
  g.C = cg * g.G;
  g.M = mg * g.G;
  for (int j = 0; j < 3; j++) {
    const bool live = j >= 3 - g.nsp;
    g.in[j] = g.k[j] = g.s[j] = g.d[j] = 1;
    g.pb[j] = g.pe[j] = 0;
    if (!live) continue;
    g.k[j] = pick(1, 3) + (g.nsp == 1 ? pick(0, 2) : 0);
    g.s[j] = pick(1, 3) == 3 ? 2 : 1;
    g.d[j] = pick(1, 4) == 4 ? 2 : 1;
    const int64_t dk = (g.k[j] - 1) * g.d[j] + 1;
    g.pb[j] = pick(0, (int)std::min<int64_t>(2, dk - 1));
    g.pe[j] = pick(0, (int)std::min<int64_t>(2, dk - 1));
    g.in[j] = std::max<int64_t>(dk, pick(g.nsp == 3 ? 3 : 5, g.nsp == 3 ? 9 : g.nsp == 2 ? (wide ? 16 : 23) : 70));
    g.out[j] = (g.in[j] + g.pb[j] + g.pe[j] - dk) / g.s[j] + 1;
  }
  for (int j = 0; j < 3 - g.nsp; j++) g.out[j] = 1;
  return g;
}

std::vector<int64_t> shape(const Geo &g, int64_t n, int64_t c, const int64_t *sp) {
  std::vector<int64_t> d = {n, c};
  for (int j = 3 - g.nsp; j < 3; j++) d.push_back(sp[j]);
  return d;
}

std::vector<int64_t> spatial(const Geo &g, const int64_t *v) {
  std::vector<int64_t> r;
  for (int j = 3 - g.nsp; j < 3; j++) r.push_back(v[j]);
  return r;
}

// ONNX pads: the begin pads, then the end pads, of the live dimensions.
std::vector<int64_t> pads_of(const Geo &g) {
  std::vector<int64_t> pads = spatial(g, g.pb);
  for (auto v : spatial(g, g.pe)) pads.push_back(v);
  return pads;
}

// The convolution's output "c" plus a residual graph input "r" (data r),
// then ReLU, as "y": a ResNet block's last layer, which the graph pass fuses.
void add_residual_relu(Model &md, const std::vector<int64_t> &yd, const std::vector<float> &r,
                       std::vector<std::vector<int64_t>> &dims, std::vector<std::vector<float>> &data) {
  md.inputs.push_back({"r", 1, yd});
  dims.push_back(yd);
  data.push_back(r);
  md.nodes.push_back({"Add", "add", {"c", "r"}, {"s"}, {}});
  md.nodes.push_back({"Relu", "relu", {"s"}, {"y"}, {}});
}

// y = relu(conv(x, w) + b + res) in double.  Each output's sum takes its
// terms in (c, kz, ky, kx) order from the bias; the loops run a weight over a
// row of outputs innermost, so the reference stays quick under the
// sanitizers (it was 92 % of this program's time there).
std::vector<float> conv_ref(const Geo &g, const std::vector<float> &x, const std::vector<float> &w,
                            const std::vector<float> &b, const std::vector<float> &res, bool relu) {
  const int64_t Cg = g.C / g.G, Mg = g.M / g.G, osz = g.out[0] * g.out[1] * g.out[2],
                isz = g.in[0] * g.in[1] * g.in[2], ksz = g.k[0] * g.k[1] * g.k[2];
  std::vector<float> y((size_t)(g.N * g.M * osz));
  std::vector<double> acc((size_t)osz);
  for (int64_t n = 0; n < g.N; n++)
    for (int64_t m = 0; m < g.M; m++) {
      std::fill(acc.begin(), acc.end(), b.empty() ? 0.0 : (double)b[m]);
      const int64_t gi = m / Mg;
      for (int64_t c = 0; c < Cg; c++) {
        const float *xc = x.data() + (n * g.C + gi * Cg + c) * isz;
        for (int64_t kz = 0; kz < g.k[0]; kz++)
          for (int64_t ky = 0; ky < g.k[1]; ky++)
            for (int64_t kx = 0; kx < g.k[2]; kx++) {
              const double wv = w[(m * Cg + c) * ksz + at3(g.k, kz, ky, kx)];
              const int64_t dx = kx * g.d[2] - g.pb[2];
              int64_t x0 = 0, x1 = g.out[2];  // outputs whose input column is inside
              while (x0 < x1 && x0 * g.s[2] + dx < 0) x0++;
              while (x1 > x0 && (x1 - 1) * g.s[2] + dx >= g.in[2]) x1--;
              for (int64_t oz = 0; oz < g.out[0]; oz++) {
                const int64_t iz = oz * g.s[0] + kz * g.d[0] - g.pb[0];
                if (iz < 0 || iz >= g.in[0]) continue;
                for (int64_t oy = 0; oy < g.out[1]; oy++) {
                  const int64_t iy = oy * g.s[1] + ky * g.d[1] - g.pb[1];
                  if (iy < 0 || iy >= g.in[1]) continue;
                  const int64_t xr = at3(g.in, iz, iy, 0) + dx;  // input row, shifted to the tap
                  double *ar = acc.data() + at3(g.out, oz, oy, 0);
                  for (int64_t ox = x0; ox < x1; ox++) ar[ox] += (double)xc[xr + ox * g.s[2]] * wv;
                }
              }
            }
      }
      for (int64_t i = 0; i < osz; i++) {
        const int64_t o = (n * g.M + m) * osz + i;
        const double s = res.empty() ? acc[i] : acc[i] + res[o];
        y[o] = (float)(relu && s < 0 ? 0 : s);
      }
    }
  return y;
}

// Sum of |products| per output: the reference on |x|, |w| (no bias), the
// scale of a rounding error.
std::vector<float> abs_products(const Geo &g, std::vector<float> x, std::vector<float> w) {
  for (auto &v : x) v = std::fabs(v);
  for (auto &v : w) v = std::fabs(v);
  return conv_ref(g, x, w, std::vector<float>((size_t)g.M, 0.f), {}, false);
}

void expect_close(const std::vector<float> &got, const std::vector<float> &want, const std::string &what,
                  float tol = 1e-4f) {
  ASSERT_EQ(got.size(), want.size()) << what;
  int bad = 0;
  for (size_t i = 0; i < got.size() && bad < 5; i++)
    if (!(std::fabs(got[i] - want[i]) <= tol + tol * std::fabs(want[i]))) {
      ADD_FAILURE() << what << ": element " << i << " is " << got[i] << ", reference " << want[i];
      bad++;
    }
}

std::string describe(const Geo &g) {
  std::string s = std::to_string(g.nsp) + "D N" + std::to_string(g.N) + " C" + std::to_string(g.C) + " M" +
                  std::to_string(g.M) + " G" + std::to_string(g.G);
  for (int j = 3 - g.nsp; j < 3; j++)
    s += " [in " + std::to_string(g.in[j]) + " k" + std::to_string(g.k[j]) + " s" + std::to_string(g.s[j]) + " d" +
         std::to_string(g.d[j]) + " p" + std::to_string(g.pb[j]) + "," + std::to_string(g.pe[j]) + "]";
  return s;
}

// One layer against the reference: weights constant (packed at load) or a
// graph input, a bias, a fused residual + ReLU, BatchNormalization (+ReLU)
// in front, which the graph pass folds into the convolution's input gather
// when the weights are constant and group is 1.
void check_conv(const Geo &g, bool const_w, bool with_bias, bool fused, bool bn_in, bool bn_relu, std::mt19937 &rng,
                const std::string &label) {
  const int64_t ksz = g.k[0] * g.k[1] * g.k[2];
  const auto xd = shape(g, g.N, g.C, g.in), yd = shape(g, g.N, g.M, g.out);
  std::vector<int64_t> wd = {g.M, g.C / g.G};
  for (auto v : spatial(g, g.k)) wd.push_back(v);
  auto x = rnd((size_t)numel(xd), rng), w = rnd((size_t)(g.M * (g.C / g.G) * ksz), rng);
  auto b = with_bias ? rnd((size_t)g.M, rng) : std::vector<float>();
  auto r = fused ? rnd((size_t)numel(yd), rng) : std::vector<float>();
  std::vector<float> gamma, beta, mean, var, xin = x;
  if (bn_in) {
    gamma = rnd((size_t)g.C, rng), beta = rnd((size_t)g.C, rng), mean = rnd((size_t)g.C, rng);
    var = rnd((size_t)g.C, rng);
    for (auto &v : var) v = v * v + 0.1f;
    const int64_t plane = numel(xd) / (g.N * g.C);
    for (int64_t i = 0; i < numel(xd); i++) {  // the reference's input: what BN(+ReLU) gives
      const int64_t c = (i / plane) % g.C;
      const double s = gamma[c] / std::sqrt((double)var[c] + 1e-5);
      const double v = (x[i] - mean[c]) * s + beta[c];
      xin[i] = (float)(bn_relu && v < 0 ? 0 : v);
    }
  }

  Model md;
  md.inputs.push_back({"x", 1, xd});
  std::vector<std::vector<int64_t>> dims = {xd};
  std::vector<std::vector<float>> data = {x};
  if (const_w) {
    md.inits.push_back(onnxb::float_tensor("w", wd, w));
  } else {
    md.inputs.push_back({"w", 1, wd});
    dims.push_back(wd);
    data.push_back(w);
  }
  std::vector<std::string> cin = {bn_in ? "xn" : "x", "w"};
  if (bn_in) {
    md.inits.push_back(onnxb::float_tensor("gamma", {g.C}, gamma));
    md.inits.push_back(onnxb::float_tensor("beta", {g.C}, beta));
    md.inits.push_back(onnxb::float_tensor("mean", {g.C}, mean));
    md.inits.push_back(onnxb::float_tensor("var", {g.C}, var));
    md.nodes.push_back({"BatchNormalization", "bn", {"x", "gamma", "beta", "mean", "var"}, {bn_relu ? "xb" : "xn"}, {}});
    if (bn_relu) md.nodes.push_back({"Relu", "bnrelu", {"xb"}, {"xn"}, {}});
  }
  if (with_bias) {
    md.inits.push_back(onnxb::float_tensor("b", {g.M}, b));
    cin.push_back("b");
  }
  const auto pads = pads_of(g);
  md.nodes.push_back({"Conv", "conv", cin, {fused ? "c" : "y"},
                      {onnxb::attr_ints("strides", spatial(g, g.s)), onnxb::attr_ints("dilations", spatial(g, g.d)),
                       onnxb::attr_ints("pads", pads), onnxb::attr_int("group", g.G)}});
  if (fused) add_residual_relu(md, yd, r, dims, data);
  md.outputs.push_back({"y", 1, yd});
  std::string err;
  auto got = run(md, dims, data, &err);
  const std::string what = label + " (" + describe(g) + (const_w ? ", packed W" : ", W input") +
                           (fused ? ", +res relu" : "") + (bn_in ? bn_relu ? ", BN+relu in" : ", BN in" : "") + ")";
  ASSERT_TRUE(err.empty()) << what << ": " << err;
  expect_close(got, conv_ref(g, xin, w, b, r, fused), what);
}

TEST(ConvKernel, RandomGeometryMatchesReference) {
  std::mt19937 rng(20261125);
  for (int trial = 0; trial < 160; trial++) {
    const Geo g = random_conv(rng, trial % 8 == 6);
    check_conv(g, trial % 2 == 0, trial % 3 != 0, trial % 4 >= 2, trial % 5 < 2, trial % 5 == 0, rng,
               "trial " + std::to_string(trial));
    if (HasFailure()) return;
  }
}

// Output rows of whole 16-position vectors on a padded grid (widths 16, 32
// and 48, the grid two columns wider): the position-vector kernel runs its
// vectors over the output rows alone, each vector inside one grid row, and
// stores them in place.  3D layers of up to 16 output channels and 2D ones
// of channel counts the channel-vector kernel does not take (not whole
// vectors) run on it by the default rules; strided ones read stride
// phases; with bias, a fused residual + ReLU and a BatchNorm prologue by
// turns; in bf16 mode too where the CPU has it (within bf16's rounding).
TEST(ConvKernel, WholeVectorRowsMatchReference) {
  std::mt19937 rng(20261206);
  struct Shape {
    int nsp;
    int64_t N, C, M, in[3], s;
  };
  const Shape shapes[] = {{3, 2, 16, 16, {5, 6, 32}, 1}, {3, 1, 5, 12, {3, 4, 48}, 1}, {3, 2, 8, 8, {4, 3, 16}, 1},
                          {3, 1, 16, 16, {6, 10, 64}, 2}, {2, 2, 24, 40, {1, 7, 32}, 1}, {2, 1, 9, 24, {1, 5, 48}, 1},
                          {2, 1, 16, 8, {1, 9, 96}, 2}};
  const bool bf16 = mi_bf16_available();
  int trial = 0;
  for (const Shape &sh : shapes) {
    Geo g{};
    g.nsp = sh.nsp, g.N = sh.N, g.G = 1, g.C = sh.C, g.M = sh.M;
    for (int j = 0; j < 3; j++) {
      const bool live = j >= 3 - sh.nsp;
      g.k[j] = live ? 3 : 1, g.d[j] = 1, g.pb[j] = g.pe[j] = live ? 1 : 0, g.in[j] = sh.in[j];
      g.s[j] = live && j > 0 ? sh.s : 1;
      g.out[j] = (g.in[j] + g.pb[j] + g.pe[j] - g.k[j]) / g.s[j] + 1;
    }
    check_conv(g, true, trial % 2 == 0, trial % 3 == 1, trial % 3 == 2, trial % 2 == 1, rng,
               "shape " + std::to_string(trial));
    if (HasFailure()) return;
    if (bf16) {  // the bf16 build of the same kernel: within 2^-7 of the sum of |products|
      const int64_t ksz = g.k[0] * g.k[1] * g.k[2];
      const auto xd = shape(g, g.N, g.C, g.in), yd = shape(g, g.N, g.M, g.out);
      std::vector<int64_t> wd = {g.M, g.C};
      for (auto v : spatial(g, g.k)) wd.push_back(v);
      auto x = rnd((size_t)numel(xd), rng), w = rnd((size_t)(g.M * g.C * ksz), rng), b = rnd((size_t)g.M, rng);
      Model md;
      md.inputs.push_back({"x", 1, xd});
      md.inits.push_back(onnxb::float_tensor("w", wd, w));
      md.inits.push_back(onnxb::float_tensor("b", {g.M}, b));
      md.nodes.push_back({"Conv", "conv", {"x", "w", "b"}, {"y"},
                          {onnxb::attr_ints("strides", spatial(g, g.s)), onnxb::attr_ints("pads", pads_of(g))}});
      md.outputs.push_back({"y", 1, yd});
      std::string err;
      std::vector<std::vector<int64_t>> dims = {xd};
      std::vector<std::vector<float>> data = {x};
      g_bf16 = true;
      auto got = run(md, dims, data, &err);
      g_bf16 = false;
      ASSERT_TRUE(err.empty()) << err;
      auto want = conv_ref(g, x, w, b, {}, false);
      auto mag = abs_products(g, x, w);
      int bad = 0;
      for (size_t i = 0; i < got.size(); i++)
        if (!(std::fabs(got[i] - want[i]) <= mag[i] / 128 + 1e-5f) && bad++ < 3)
          ADD_FAILURE() << "bf16 shape " << trial << " (" << describe(g) << "): element " << i << " is " << got[i]
                        << ", reference " << want[i];
      if (HasFailure()) return;
    }
    trial++;
  }
}

// A U-Net's stride-2 3x3x3 downsampling onto small volumes (the demo
// model's: 16 -> 32 channels to 16^3, 32 -> 64 to 8^3, 64 -> 128 to 4^3, and
// an odd-sized one), as the default rules run them: on AVX-512 and AVX2 the
// channel-vector kernel, the z stride its planes' step.
TEST(ConvKernel, StridedVolumesMatchReference) {
  std::mt19937 rng(20261206);
  struct Shape {
    int64_t N, C, M, in[3];
  };
  const Shape shapes[] = {{2, 16, 32, {32, 32, 32}}, {1, 32, 64, {16, 16, 16}}, {2, 64, 128, {8, 8, 8}},
                          {1, 24, 48, {9, 12, 15}}};
  int trial = 0;
  for (const Shape &sh : shapes) {
    Geo g{};
    g.nsp = 3, g.N = sh.N, g.G = 1, g.C = sh.C, g.M = sh.M;
    for (int j = 0; j < 3; j++) {
      g.k[j] = 3, g.s[j] = 2, g.d[j] = 1, g.pb[j] = g.pe[j] = 1, g.in[j] = sh.in[j];
      g.out[j] = (g.in[j] + 2 - 3) / 2 + 1;
    }
    check_conv(g, true, true, trial % 2 == 1, false, false, rng, "shape " + std::to_string(trial));
    trial++;
    if (HasFailure()) return;
  }
}

// 1x1 layers with a BatchNormalization (+ReLU) prologue, two threads: on
// maps small enough that the product splits the output channels between the
// threads and packs the normalised input once for both (DenseNet's layers),
// each thread packing some rows of each K block across all positions (K
// blocks of odd row counts, a last panel of a few positions, 8-row tails);
// and on a larger map (21x21) split by panels of positions claimed as the
// threads come, each packing its own.
TEST(ConvKernel, OneByOnePrologueOnSmallMapsMatchesReference) {
  std::mt19937 rng(20261206);
  const int64_t shapes[][4] = {{700, 48, 14, 14}, {1031, 40, 7, 7}, {513, 128, 5, 7}, {40, 256, 14, 14}, {96, 48, 21, 21}};
  int n = 0;
  for (const auto &sh : shapes)
    for (bool relu : {true, false}) {
      Geo g{};
      g.nsp = 2, g.N = 1, g.G = 1, g.C = sh[0], g.M = sh[1];
      for (int j = 0; j < 3; j++) g.k[j] = g.s[j] = g.d[j] = 1, g.pb[j] = g.pe[j] = 0;
      g.in[0] = g.out[0] = 1, g.in[1] = g.out[1] = sh[2], g.in[2] = g.out[2] = sh[3];
      check_conv(g, true, n % 2 == 0, n % 3 == 2, true, relu, rng, "shape " + std::to_string(n));
      n++;
      if (HasFailure()) return;
    }
}

// MaxPool / AveragePool: separable float path and the window loops.
std::vector<float> pool_ref(const Geo &g, const std::vector<float> &x, bool is_max, bool incl) {
  const int64_t osz = g.out[0] * g.out[1] * g.out[2], isz = g.in[0] * g.in[1] * g.in[2];
  std::vector<float> y((size_t)(g.N * g.C * osz));
  for (int64_t pl = 0; pl < g.N * g.C; pl++)
    for (int64_t oz = 0; oz < g.out[0]; oz++)
      for (int64_t oy = 0; oy < g.out[1]; oy++)
        for (int64_t ox = 0; ox < g.out[2]; ox++) {
          double best = -INFINITY, sum = 0;
          int64_t cnt = 0, padded = 0;
          for (int64_t kz = 0; kz < g.k[0]; kz++)
            for (int64_t ky = 0; ky < g.k[1]; ky++)
              for (int64_t kx = 0; kx < g.k[2]; kx++) {
                const int64_t iz = oz * g.s[0] + kz * g.d[0] - g.pb[0], iy = oy * g.s[1] + ky * g.d[1] - g.pb[1],
                              ix = ox * g.s[2] + kx * g.d[2] - g.pb[2];
                const bool inpad = iz >= -g.pb[0] && iz < g.in[0] + g.pe[0] && iy >= -g.pb[1] &&
                                   iy < g.in[1] + g.pe[1] && ix >= -g.pb[2] && ix < g.in[2] + g.pe[2];
                if (inpad) padded++;
                if (iz < 0 || iz >= g.in[0] || iy < 0 || iy >= g.in[1] || ix < 0 || ix >= g.in[2]) continue;
                const double v = x[pl * isz + at3(g.in, iz, iy, ix)];
                best = std::max(best, v);
                sum += v;
                cnt++;
              }
          const int64_t div = incl ? padded : cnt;
          y[pl * osz + at3(g.out, oz, oy, ox)] = (float)(is_max ? best : div ? sum / (double)div : 0);
        }
  return y;
}

TEST(PoolKernel, RandomGeometryMatchesReference) {
  std::mt19937 rng(7);
  for (int trial = 0; trial < 120; trial++) {
    Geo g = random_conv(rng);
    const bool is_max = trial % 2 == 0, incl = !is_max && trial % 4 == 1;
    g.M = g.C = g.C % 7 + 1;
    g.G = 1;
    for (int j = 3 - g.nsp; j < 3; j++) {
      if (!is_max) g.d[j] = 1;  // AveragePool dilations are opset 19
      const int64_t dk = (g.k[j] - 1) * g.d[j] + 1;
      g.pb[j] = std::min<int64_t>(g.pb[j], dk - 1 < g.k[j] - 1 ? dk - 1 : g.k[j] - 1);
      g.pe[j] = std::min<int64_t>(g.pe[j], g.k[j] - 1);
      g.out[j] = (g.in[j] + g.pb[j] + g.pe[j] - dk) / g.s[j] + 1;
    }
    const auto xd = shape(g, g.N, g.C, g.in), yd = shape(g, g.N, g.C, g.out);
    auto x = rnd((size_t)numel(xd), rng);
    const auto pads = pads_of(g);
    Model md;
    md.inputs.push_back({"x", 1, xd});
    std::vector<onnxb::Attr> at = {onnxb::attr_ints("kernel_shape", spatial(g, g.k)),
                                   onnxb::attr_ints("strides", spatial(g, g.s)), onnxb::attr_ints("pads", pads)};
    if (is_max) at.push_back(onnxb::attr_ints("dilations", spatial(g, g.d)));
    else at.push_back(onnxb::attr_int("count_include_pad", incl));
    md.nodes.push_back({is_max ? "MaxPool" : "AveragePool", "pool", {"x"}, {"y"}, at});
    md.outputs.push_back({"y", 1, yd});
    std::vector<std::vector<int64_t>> dims = {xd};
    std::vector<std::vector<float>> data = {x};
    std::string err;
    auto got = run(md, dims, data, &err);
    const std::string what = "trial " + std::to_string(trial) + " (" + (is_max ? "max " : incl ? "avg incl " : "avg ") +
                             describe(g) + ")";
    ASSERT_TRUE(err.empty()) << what << ": " << err;
    expect_close(got, pool_ref(g, x, is_max, incl), what);
    if (HasFailure()) return;
  }
}

// y = alpha * op(a) * w^T (+ beta * c): input a ([K, M] with transA), constant w [N, K] and c [N].
Model gemm_rows_model(int64_t M, int64_t K, int64_t N, bool ta, bool with_c, float alpha, float beta,
                      const std::vector<float> &w, const std::vector<float> &c) {
  Model md;
  md.inputs.push_back({"a", 1, ta ? std::vector<int64_t>{K, M} : std::vector<int64_t>{M, K}});
  md.inits.push_back(onnxb::float_tensor("w", {N, K}, w));
  std::vector<std::string> gin = {"a", "w"};
  if (with_c) {
    md.inits.push_back(onnxb::float_tensor("c", {N}, c));
    gin.push_back("c");
  }
  md.nodes.push_back({"Gemm", "gemm", gin, {"y"},
                      {onnxb::attr_int("transA", ta ? 1 : 0), onnxb::attr_int("transB", 1),
                       onnxb::attr_float("alpha", alpha), onnxb::attr_float("beta", beta)}});
  md.outputs.push_back({"y", 1, {M, N}});
  return md;
}

}  // namespace

// Gemm with one or two rows times transposed weights (a classifier head at
// batch 1 or 2): the streaming dot-product path, odd K and N for its vector
// and four-row tails, transA, alpha, and beta with a broadcast C.
TEST(GemmKernel, RowsTimesTransposedWeightsMatchReference) {
  std::mt19937 rng(20261202);
  auto pick = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  for (int trial = 0; trial < 60; trial++) {
    const int64_t M = pick(1, 2), K = pick(1, 70), N = pick(1, 11);
    const bool ta = trial % 2 == 1, with_c = trial % 3 != 0;
    const float alpha = trial % 4 == 3 ? 0.5f : 1.f, beta = with_c ? (trial % 5 == 0 ? 2.f : 1.f) : 0.f;
    const std::vector<int64_t> ad = ta ? std::vector<int64_t>{K, M} : std::vector<int64_t>{M, K};
    auto x = rnd((size_t)(M * K), rng), w = rnd((size_t)(N * K), rng), c = rnd((size_t)N, rng);
    const Model md = gemm_rows_model(M, K, N, ta, with_c, alpha, beta, w, c);
    std::vector<std::vector<int64_t>> dims = {ad};
    std::vector<std::vector<float>> data = {x};
    std::string err;
    auto got = run(md, dims, data, &err);
    ASSERT_TRUE(err.empty()) << err;
    std::vector<float> want((size_t)(M * N));
    for (int64_t i = 0; i < M; i++)
      for (int64_t j = 0; j < N; j++) {
        double s = 0;
        for (int64_t k = 0; k < K; k++) s += (double)(ta ? x[k * M + i] : x[i * K + k]) * w[j * K + k];
        want[i * N + j] = (float)(alpha * s + (with_c ? beta * c[j] : 0.0));
      }
    expect_close(got, want, "gemm trial " + std::to_string(trial) + " M=" + std::to_string(M) + " K=" +
                                std::to_string(K) + " N=" + std::to_string(N) + (ta ? " transA" : ""));
    if (HasFailure()) return;
  }
}

// bf16 mode: a Gemm's constant transposed weights are held in bf16 (rows
// times them: the streaming path; more rows: the weights widened back for
// the SGEMM).  Only the weights are rounded (relative error 2^-9 each), so
// each output is within 2^-8 of its sum of |products|; and the rounding
// shows (the bf16 weights were used).
TEST(GemmKernel, Bf16WeightsWithinRounding) {
  if (!mi_bf16_available()) GTEST_SKIP() << "bf16 tests skipped: no AVX512-BF16 (or MEDINFER_ISA below avx512)";
  std::mt19937 rng(20261205);
  auto pick = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  double differs = 0;
  for (int trial = 0; trial < 40; trial++) {
    const int64_t M = trial % 4 == 3 ? pick(3, 6) : pick(1, 2), K = pick(1, 90), N = pick(1, 11);
    const bool ta = trial % 5 == 1, with_c = trial % 3 != 0;
    const float alpha = trial % 4 == 2 ? 0.5f : 1.f, beta = with_c ? 1.f : 0.f;
    const std::vector<int64_t> ad = ta ? std::vector<int64_t>{K, M} : std::vector<int64_t>{M, K};
    auto x = rnd((size_t)(M * K), rng), w = rnd((size_t)(N * K), rng), c = rnd((size_t)N, rng);
    const Model md = gemm_rows_model(M, K, N, ta, with_c, alpha, beta, w, c);
    std::vector<std::vector<int64_t>> dims = {ad};
    std::vector<std::vector<float>> data = {x};
    std::string err;
    g_bf16 = true;
    auto got = run(md, dims, data, &err);
    g_bf16 = false;
    ASSERT_TRUE(err.empty()) << err;
    ASSERT_EQ(got.size(), (size_t)(M * N));
    for (int64_t i = 0; i < M; i++)
      for (int64_t j = 0; j < N; j++) {
        double s = 0, mag = 0;
        for (int64_t k = 0; k < K; k++) {
          const double p = (double)(ta ? x[k * M + i] : x[i * K + k]) * w[j * K + k];
          s += p, mag += std::fabs(p);
        }
        const double want = alpha * s + (with_c ? beta * c[j] : 0.0), got_ij = got[(size_t)(i * N + j)];
        EXPECT_LE(std::fabs(got_ij - want), alpha * mag / 256 + 1e-5)
            << "trial " << trial << " M=" << M << " K=" << K << " N=" << N << (ta ? " transA" : "") << " element "
            << i << "," << j;
        differs = std::max(differs, std::fabs(got_ij - want) / (alpha * mag + 1e-30));
      }
    if (HasFailure()) return;
  }
  EXPECT_GT(differs, 1e-5) << "no bf16 rounding seen: the FP32 weights were used";
}

// bf16 mode (where the CPU has AVX512-BF16): dense 2D layers with constant
// weights take the bf16 direct kernel (on AMX tiles where the CPU has them;
// ctest runs it again with MEDINFER_AMX=0), some with a fused residual + ReLU.  Each output is a sum of K products
// of bf16-rounded factors (relative error 2^-8 each, fp32 accumulation):
// within 2^-7 of the sum of |products|, and the layer's output within
// cosine 0.9999 of the exact one.
TEST(ConvKernel, Bf16WithinRounding) {
  if (!mi_bf16_available()) GTEST_SKIP() << "bf16 tests skipped: no AVX512-BF16 (or MEDINFER_ISA below avx512)";
  std::mt19937 rng(20261203);
  g_bf16 = true;
  // the bf16 kernels themselves: no FP32 Winograd (Bf16TakesWinogradWhereItSavesMore)
  setenv("MEDINFER_WINOGRAD", "0", 1);
  int taken = 0;
  for (int trial = 0; trial < 40; trial++) {
    Geo g = random_conv(rng, trial % 2 == 0);
    // whole blocks of 16 channel pairs: the channel-vector kernel's blocked pairs (conv_kernel_test.bf16_cv)
    if (trial % 4 == 0) g.C = 32 * ((g.C + 31) / 32);
    if (trial % 5 == 4) {  // 3D, wide enough for AMX's 16-pair blocks (slabs: conv_kernel_test.bf16_slabs)
      auto pick = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
      // every other one 1x1x1: its pairs made from the input itself, slab by slab
      const bool pointwise = trial % 10 == 9;
      g = Geo{};
      g.nsp = 3, g.N = pick(1, 2), g.G = 1, g.C = pick(24, 40), g.M = pick(8, 40);
      for (int j = 0; j < 3; j++) {
        g.k[j] = pointwise ? 1 : 3, g.s[j] = g.d[j] = 1, g.pb[j] = g.pe[j] = pointwise ? 0 : 1;
        g.in[j] = g.out[j] = j == 0 ? pick(4, 8) : pointwise ? pick(14, 16) : pick(8, 10);  // 1x1x1: several slabs too
      }
      if (trial % 20 == 4)  // a U-Net's stride-2 3x3x3 downsampling (z stride: the planes' step)
        for (int j = 0; j < 3; j++) g.s[j] = 2, g.in[j] = pick(7, 12), g.out[j] = (g.in[j] - 1) / 2 + 1;
      if (trial % 20 == 14) g.M = 32;  // whole vectors of output channels: the channel-vector kernel's small volumes
    }
    if (trial % 10 == 7) {  // a 1x1 stride-2 layer (a ResNet's downsampling), wide enough for AMX
      g.G = 1, g.C = std::max<int64_t>(g.C, 24);
      for (int j = 3 - g.nsp; j < 3; j++) {
        g.k[j] = 1, g.d[j] = 1, g.pb[j] = g.pe[j] = 0;
        g.s[j] = j == 0 && g.nsp == 3 ? 1 : 2;
        g.out[j] = (g.in[j] - 1) / g.s[j] + 1;
      }
    }
    const int t20 = trial % 20;
    if (t20 == 11 || t20 == 12 || t20 == 17) {  // a 1x1 layer on a map of up to 8x8 (11: read in place with
      // BatchNormalization + ReLU in front, 12: without; 17: stride 2, subsampled first), whole vectors of
      // output channels: the channel-vector kernel (cv_wanted)
      auto pick = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
      g.G = 1, g.M = 32;
      for (int j = 3 - g.nsp; j < 3; j++) {
        if (t20 != 17) g.k[j] = g.s[j] = g.d[j] = 1, g.pb[j] = g.pe[j] = 0, g.in[j] = g.out[j] = pick(5, 8);
        else g.in[j] = std::min<int64_t>(g.in[j], 15), g.out[j] = (g.in[j] - 1) / g.s[j] + 1;
      }
    }
    const bool stem = trial % 10 == 3;  // an RGB 7x7 stride-2 stem (AMX: its im2col as a 1x1 layer's blocks)
    if (stem) {
      auto pick = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
      g = Geo{};
      g.nsp = 2, g.N = pick(1, 2), g.G = 1, g.C = trial % 20 == 3 ? 3 : 2, g.M = pick(8, 40);
      g.k[0] = g.s[0] = g.d[0] = 1, g.in[0] = g.out[0] = 1;
      for (int j = 1; j < 3; j++) {
        g.k[j] = 7, g.s[j] = 2, g.d[j] = 1, g.pb[j] = g.pe[j] = 3;
        g.out[j] = j == 2 ? 16 * pick(1, 2) : pick(5, 12);  // a row of whole 16-position blocks
        g.in[j] = 2 * g.out[j] - (j == 1 ? pick(0, 1) : 0);
      }
    }
    if (g.G != 1) continue;
    taken++;
    const int64_t ksz = g.k[0] * g.k[1] * g.k[2];
    const auto xd = shape(g, g.N, g.C, g.in), yd = shape(g, g.N, g.M, g.out);
    std::vector<int64_t> wd = {g.M, g.C};
    for (auto v : spatial(g, g.k)) wd.push_back(v);
    auto x = rnd((size_t)numel(xd), rng), w = rnd((size_t)(g.M * g.C * ksz), rng), b = rnd((size_t)g.M, rng);
    // BatchNormalization + ReLU in front (folded into the layer's input
    // prologue, applied while the pairs are made) on every other trial
    const bool bn_in = (trial % 2 == 1 || trial % 10 == 4) && !stem;  // 4: a padded 3D layer, wide enough for AMX
    std::vector<float> scale((size_t)g.C), shift((size_t)g.C), xin = x;
    Model md;
    md.inputs.push_back({"x", 1, xd});
    if (bn_in) {  // mean 0, variance 1 - eps: y = scale * x + shift
      scale = rnd((size_t)g.C, rng), shift = rnd((size_t)g.C, rng);
      md.inits.push_back(onnxb::float_tensor("gamma", {g.C}, scale));
      md.inits.push_back(onnxb::float_tensor("beta", {g.C}, shift));
      md.inits.push_back(onnxb::float_tensor("mean", {g.C}, std::vector<float>((size_t)g.C, 0.f)));
      md.inits.push_back(onnxb::float_tensor("var", {g.C}, std::vector<float>((size_t)g.C, 1.f - 1e-5f)));
      md.nodes.push_back({"BatchNormalization", "bn", {"x", "gamma", "beta", "mean", "var"}, {"xb"}, {}});
      md.nodes.push_back({"Relu", "bnrelu", {"xb"}, {"xn"}, {}});
      const int64_t plane = numel(xd) / (g.N * g.C);
      for (int64_t i = 0; i < numel(xd); i++) {
        const int64_t c = (i / plane) % g.C;
        xin[i] = std::max(0.f, x[i] * scale[c] + shift[c]);
      }
    }
    md.inits.push_back(onnxb::float_tensor("w", wd, w));
    md.inits.push_back(onnxb::float_tensor("b", {g.M}, b));
    const auto pads = pads_of(g);
    const bool fused = trial % 3 == 1;  // + residual, ReLU (a ResNet block's last layer)
    md.nodes.push_back({"Conv", "conv", {bn_in ? "xn" : "x", "w", "b"}, {fused ? "c" : "y"},
                        {onnxb::attr_ints("strides", spatial(g, g.s)), onnxb::attr_ints("dilations", spatial(g, g.d)),
                         onnxb::attr_ints("pads", pads)}});
    std::vector<std::vector<int64_t>> dims = {xd};
    std::vector<std::vector<float>> data = {x};
    auto r = fused ? rnd((size_t)numel(yd), rng) : std::vector<float>();
    if (fused) add_residual_relu(md, yd, r, dims, data);
    md.outputs.push_back({"y", 1, yd});
    std::string err;
    auto got = run(md, dims, data, &err);
    ASSERT_TRUE(err.empty()) << err;
    auto want = conv_ref(g, xin, w, b, r, fused);
    auto mag = abs_products(g, xin, w);
    ASSERT_EQ(got.size(), want.size());
    double ab = 0, aa = 0, bb = 0;
    int bad = 0;
    for (size_t i = 0; i < got.size(); i++) {
      ab += (double)got[i] * want[i], aa += (double)got[i] * got[i], bb += (double)want[i] * want[i];
      if (std::fabs(got[i] - want[i]) > mag[i] / 128 + 1e-5f && bad++ < 3)
        ADD_FAILURE() << "trial " << trial << " (" << describe(g) << "): element " << i << " is " << got[i]
                      << ", reference " << want[i] << ", sum of |products| " << mag[i];
    }
    EXPECT_GE(ab / std::sqrt(aa * bb), 0.9999) << "trial " << trial << " (" << describe(g) << ")";
    if (HasFailure()) break;
  }
  g_bf16 = false;
  unsetenv("MEDINFER_WINOGRAD");
  EXPECT_GT(taken, 5);
}

// bf16 mode allows bf16's rounding, so a 3x3 layer of 64M multiply-adds or
// more runs as FP32 Winograd where that saves at least 3x of them (bf16's
// kernels do twice an FMA's): a 56x56 map (F(4x4): 4x) comes out within
// Winograd's rounding (4e-5 of the sum of |products|, where bf16's is about
// 4e-3) and unlike the same mode with Winograd off; a 7x7 map (F(2x2):
// 1.7x) and a smaller 28x28 layer (29M) as with it off; a 256-channel
// 24x24 layer of dilation 4, whose 6x6 sub-grids the FP32 tiles fit badly,
// in F(2x2) with bf16 products (bf16's rounding, not FP32's, and unlike
// with Winograd off).  With AMX, whose bf16 outruns FP32 Winograd, and
// where there is no Winograd path, all as with it off.
TEST(ConvKernel, Bf16TakesWinogradWhereItSavesMore) {
  if (!mi_bf16_available()) GTEST_SKIP() << "bf16 tests skipped: no AVX512-BF16 (or MEDINFER_ISA below avx512)";
  auto env_is = [](const char *k, const char *v) { return std::getenv(k) && std::string(std::getenv(k)) == v; };
  const bool has_path = !env_is("MEDINFER_PREPACK", "0") && !env_is("MEDINFER_GEMM", "openblas") &&
                        std::string(mi_bf16_unit()) == "AVX512-BF16";
  std::mt19937 rng(20261210);
  struct Case {
    int64_t hw, C, M, d;
    int winograd; /* 0: not taken, 1: FP32 Winograd, 2: F(2x2) with bf16 products */
  };
  for (const Case &c : {Case{56, 64, 48, 1, 1}, Case{7, 400, 400, 1, 0}, Case{28, 64, 32, 1, 0},
                        Case{24, 256, 256, 4, 2}}) {
    const int64_t hw = c.hw;
    Geo g{};
    g.nsp = 2, g.N = 1, g.C = c.C, g.M = c.M, g.G = 1;
    for (int j = 0; j < 3; j++) {
      const bool live = j > 0;
      g.k[j] = live ? 3 : 1, g.s[j] = 1, g.d[j] = live ? c.d : 1, g.pb[j] = g.pe[j] = live ? c.d : 0;
      g.in[j] = g.out[j] = live ? hw : 1;
    }
    const auto xd = shape(g, 1, g.C, g.in), yd = shape(g, 1, g.M, g.out);
    auto x = rnd((size_t)numel(xd), rng), w = rnd((size_t)(g.M * g.C * 9), rng), b = rnd((size_t)g.M, rng);
    Model md;
    md.inputs.push_back({"x", 1, xd});
    md.inits.push_back(onnxb::float_tensor("w", {g.M, g.C, 3, 3}, w));
    md.inits.push_back(onnxb::float_tensor("b", {g.M}, b));
    md.nodes.push_back({"Conv", "conv", {"x", "w", "b"}, {"y"},
                        {onnxb::attr_ints("pads", pads_of(g)), onnxb::attr_ints("dilations", spatial(g, g.d))}});
    md.outputs.push_back({"y", 1, yd});
    std::vector<std::vector<int64_t>> dims = {xd};
    std::vector<std::vector<float>> data = {x};
    std::string err;
    g_bf16 = true;
    auto got = run(md, dims, data, &err);
    setenv("MEDINFER_WINOGRAD", "0", 1);
    auto off = run(md, dims, data, &err);
    unsetenv("MEDINFER_WINOGRAD");
    g_bf16 = false;
    ASSERT_TRUE(err.empty()) << err;
    const std::string what = std::to_string(hw) + "x" + std::to_string(hw);
    if (c.winograd && has_path) {
      auto want = conv_ref(g, x, w, b, {}, false);
      auto mag = abs_products(g, x, w);
      double worst = 0;
      for (size_t i = 0; i < got.size(); i++) worst = std::max(worst, std::fabs(got[i] - want[i]) / (mag[i] + 1e-6));
      if (c.winograd == 1) EXPECT_LT(worst, 4e-5) << what << ": not FP32 Winograd's rounding";
      else EXPECT_TRUE(worst > 1e-4 && worst < 1.0 / 32) << what << ": not bf16 rounding (" << worst << ")";
      EXPECT_NE(got, off) << what << ": Winograd not taken";
    } else {
      EXPECT_EQ(got, off) << what << ": Winograd taken";
    }
  }
}

// A random 3x3 layer for the Winograd tests: 2D, or 3x3x3 every fourth
// trial (1x3x3 every eighth), dilated in y and x every third, padded
// anything from none to twice the dilation, 1-70 input and 1-90 output
// channels (3D: 1-20, 1-24), batches of 1-3.
Geo winograd_geometry(int trial, const std::function<int(int, int)> &pick) {
  Geo g{};
  g.nsp = trial % 4 == 3 ? 3 : 2;
  g.N = pick(1, 3), g.G = 1, g.C = pick(1, 70), g.M = pick(1, 90);
  if (g.nsp == 3) g.C = pick(1, 20), g.M = pick(1, 24);
  for (int j = 0; j < 3; j++) {
    const bool live = j >= 3 - g.nsp;
    g.k[j] = live ? 3 : 1;
    g.s[j] = 1;
    g.d[j] = live && j > 0 && trial % 3 == 2 ? pick(2, 4) : 1;  // dilated in y and x (not in z)
    g.pb[j] = live ? pick(0, 2 * (int)g.d[j]) : 0, g.pe[j] = live ? pick(0, 2 * (int)g.d[j]) : 0;
    g.in[j] = live ? pick(j == 0 ? 3 : 4, j == 0 ? 7 : (g.nsp == 3 ? 20 : 37)) + 2 * (g.d[j] - 1) : 1;
    g.out[j] = g.in[j] + g.pb[j] + g.pe[j] - (g.k[j] - 1) * g.d[j];
  }
  if (g.nsp == 3 && trial % 8 == 7) g.k[0] = 1, g.pb[0] = g.pe[0] = 0, g.out[0] = g.in[0];  // 1x3x3
  return g;
}

// Layer g as a model with epilogue epi (0 none, 1 bias, 2 bias + residual +
// ReLU, 3 bias + LeakyRelu) and, if bn_in, a BatchNormalization in front;
// its inputs, and the double reference with the sum of |products| per
// output.
struct EpilogueCase {
  Model md;
  std::vector<std::vector<int64_t>> dims;
  std::vector<std::vector<float>> data;
  std::vector<float> want, mag;
};
EpilogueCase epilogue_case(const Geo &g, int epi, bool bn_in, std::mt19937 &rng) {
  EpilogueCase k;
  const auto xd = shape(g, g.N, g.C, g.in), yd = shape(g, g.N, g.M, g.out);
  std::vector<int64_t> wd = {g.M, g.C};
  for (auto v : spatial(g, g.k)) wd.push_back(v);
  const int64_t ksz = g.k[0] * g.k[1] * g.k[2];
  auto x = rnd((size_t)numel(xd), rng), w = rnd((size_t)(g.M * g.C * ksz), rng), b = rnd((size_t)g.M, rng);
  auto r = epi == 2 ? rnd((size_t)numel(yd), rng) : std::vector<float>();
  std::vector<float> xin = x;
  k.md.inputs.push_back({"x", 1, xd});
  k.md.inits.push_back(onnxb::float_tensor("w", wd, w));
  std::vector<std::string> cin = {bn_in ? "xn" : "x", "w"};
  if (bn_in) {  // scale and shift per channel (mean 0, variance 1 - eps)
    auto scale = rnd((size_t)g.C, rng), shift = rnd((size_t)g.C, rng);
    k.md.inits.push_back(onnxb::float_tensor("gamma", {g.C}, scale));
    k.md.inits.push_back(onnxb::float_tensor("beta", {g.C}, shift));
    k.md.inits.push_back(onnxb::float_tensor("mean", {g.C}, std::vector<float>((size_t)g.C, 0.f)));
    k.md.inits.push_back(onnxb::float_tensor("var", {g.C}, std::vector<float>((size_t)g.C, 1.f - 1e-5f)));
    k.md.nodes.push_back({"BatchNormalization", "bn", {"x", "gamma", "beta", "mean", "var"}, {"xn"}, {}});
    const int64_t plane = numel(xd) / (g.N * g.C);
    for (int64_t i = 0; i < numel(xd); i++) xin[i] = x[i] * scale[(i / plane) % g.C] + shift[(i / plane) % g.C];
  }
  if (epi) {
    k.md.inits.push_back(onnxb::float_tensor("b", {g.M}, b));
    cin.push_back("b");
  }
  k.md.nodes.push_back({"Conv", "conv", cin, {epi >= 2 ? "c" : "y"},
                        {onnxb::attr_ints("pads", pads_of(g)), onnxb::attr_ints("dilations", spatial(g, g.d))}});
  k.dims = {xd};
  k.data = {x};
  if (epi == 2) {
    add_residual_relu(k.md, yd, r, k.dims, k.data);
  } else if (epi == 3) {
    k.md.nodes.push_back({"LeakyRelu", "leaky", {"c"}, {"y"}, {onnxb::attr_float("alpha", 0.1f)}});
  }
  k.md.outputs.push_back({"y", 1, yd});
  // Reference before the activation (LeakyRelu applied here)
  k.want = conv_ref(g, xin, w, epi ? b : std::vector<float>(), r, epi == 2);
  if (epi == 3)
    for (auto &v : k.want) v = v < 0 ? 0.1f * v : v;
  k.mag = abs_products(g, xin, w);
  return k;
}

// got against k's reference: each output within bound of its sum of
// |products| (the first three misses reported), the largest such ratio
// into *worst; returns the cosine of the two.
double expect_within(const std::vector<float> &got, const EpilogueCase &k, double bound, const std::string &what,
                     double *worst) {
  EXPECT_EQ(got.size(), k.want.size()) << what;
  double ab = 0, aa = 0, bb = 0;
  int bad = 0;
  for (size_t i = 0; i < got.size() && i < k.want.size(); i++) {
    ab += (double)got[i] * k.want[i], aa += (double)got[i] * got[i], bb += (double)k.want[i] * k.want[i];
    const double e = std::fabs(got[i] - k.want[i]) / (k.mag[i] + 1e-6);
    *worst = std::max(*worst, e);
    if (e > bound && bad++ < 3)
      ADD_FAILURE() << what << ": element " << i << " is " << got[i] << ", reference " << k.want[i]
                    << ", sum of |products| " << k.mag[i];
  }
  return ab / std::sqrt(aa * bb);
}

// Fast mode: 3x3 layers (2D, dilated too, and 3x3x3 / 1x3x3 in 3D), stride 1, group 1,
// constant weights take the Winograd F(4x4, 3x3), F(2x2, 3x3) or F(3x3, 3x3) path (by turns, four trials
// each), with every epilogue
// (bias, residual + ReLU, a LeakyRelu) and a BatchNorm prologue.  Its
// results differ from the exact convolution by rounding in the transforms:
// each output within 4e-5 of its sum of |products| (measured: 9e-6) and a cosine of 0.999999 to the reference; and they
// do differ from the exact mode's (the path was taken), except where there
// is no Winograd path (the portable kernel level, weights not pre-packed).
TEST(ConvKernel, WinogradWithinRounding) {
  std::mt19937 rng(20261204);
  auto pick = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  // No Winograd path on the portable level, nor without our packed kernels.
  auto env_is = [](const char *k, const char *v) { return std::getenv(k) && std::string(std::getenv(k)) == v; };
  const bool has_path = !env_is("MEDINFER_ISA", "generic") && !env_is("MEDINFER_PREPACK", "0") &&
                        !env_is("MEDINFER_GEMM", "openblas");
  double worst = 0;
  for (int trial = 0; trial < 48; trial++) {
    // every layer here, whatever the rules for when it pays
    static const char *const tiles[3] = {"4", "2", "3"};
    setenv("MEDINFER_WINOGRAD", tiles[trial / 4 % 3], 1);
    Geo g = winograd_geometry(trial, pick);
    const bool wide = g.d[2] == 1 && (trial % 5 == 0 || trial % 5 == 3);
    if (wide) {  // rows of 16 tiles and more: read and written as whole rows, not gathered
      g.C = pick(1, 12), g.M = pick(1, 12), g.in[2] = pick(66, 140);
      g.out[2] = g.in[2] + g.pb[2] + g.pe[2] - 2;
    }
    EpilogueCase k = epilogue_case(g, trial % 4, trial % 5 == 1 || (wide && trial % 10 == 3), rng);
    std::string err;
    g_fast = true;
    auto got = run(k.md, k.dims, k.data, &err);
    g_fast = false;
    ASSERT_TRUE(err.empty()) << err;
    auto exact = run(k.md, k.dims, k.data, &err);
    ASSERT_TRUE(err.empty()) << err;
    const std::string what = "trial " + std::to_string(trial) + " (" + describe(g) + ")";
    EXPECT_GE(expect_within(got, k, 4e-5, what, &worst), 0.999999) << what;
    if (has_path) {
      EXPECT_NE(got, exact) << what << ": fast mode gave the exact path's bits (Winograd not taken?)";
    }
    if (HasFailure()) break;
  }
  unsetenv("MEDINFER_WINOGRAD");
  std::printf("worst |error| / sum of |products|: %.3g\n", worst);
}

// bf16 mode's F(2x2) with its products in bf16 (MEDINFER_WINOGRAD=5: every
// 3x3 layer, stride 1, group 1), on the shapes WinogradWithinRounding
// takes: 2D, dilated, 3x3x3 and 1x3x3, odd channel counts (a pair's zero
// high half), batches, every epilogue and a BatchNorm prologue; and wide
// layers whose U outgrows a core's L2 (the shared chunks) next to small
// ones (each thread's own).  Rounding U and V to bf16 leaves each output
// within 2^-5 of its sum of |products| (measured: 0.014) and a cosine
// of 0.9999 to the reference; a pair or row offset wrong by one is off by
// the whole sum.  Unlike the same mode with Winograd off (the path taken),
// except without AVX512-BF16 or with AMX (no Winograd in bf16 mode there).
TEST(ConvKernel, Bf16WinogradWithinRounding) {
  if (!mi_bf16_available()) GTEST_SKIP() << "bf16 tests skipped: no AVX512-BF16 (or MEDINFER_ISA below avx512)";
  auto env_is = [](const char *k, const char *v) { return std::getenv(k) && std::string(std::getenv(k)) == v; };
  const bool has_path = !env_is("MEDINFER_PREPACK", "0") && !env_is("MEDINFER_GEMM", "openblas") &&
                        std::string(mi_bf16_unit()) == "AVX512-BF16";
  std::mt19937 rng(20261207);
  auto pick = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  double worst = 0;
  for (int trial = 0; trial < 32; trial++) {
    Geo g = winograd_geometry(trial, pick);
    if (trial % 8 == 5) {  // U of 16 x 256 x 256 bf16 pairs: 2 MB, the shared chunks
      g.nsp = 2, g.N = 1, g.C = 256 + pick(0, 1), g.M = 256 + pick(0, 8);
      for (int j = 1; j < 3; j++) g.d[j] = 1, g.pb[j] = g.pe[j] = 1, g.in[j] = g.out[j] = pick(10, 26);
    }
    EpilogueCase k = epilogue_case(g, trial % 4, trial % 5 == 1, rng);
    std::string err;
    g_bf16 = true;
    setenv("MEDINFER_WINOGRAD", "5", 1);
    auto got = run(k.md, k.dims, k.data, &err);
    setenv("MEDINFER_WINOGRAD", "0", 1);
    auto off = run(k.md, k.dims, k.data, &err);
    unsetenv("MEDINFER_WINOGRAD");
    g_bf16 = false;
    ASSERT_TRUE(err.empty()) << err;
    const std::string what = "trial " + std::to_string(trial) + " (" + describe(g) + ")";
    EXPECT_GE(expect_within(got, k, 1.0 / 32, what, &worst), 0.9999) << what;
    if (has_path) {
      EXPECT_NE(got, off) << what << ": the bf16 Winograd path not taken";
    } else {
      EXPECT_EQ(got, off) << what << ": Winograd taken";
    }
    if (HasFailure()) break;
  }
  std::printf("worst |error| / sum of |products|: %.3g\n", worst);
}

// Fast mode, one model, shapes changing between runs: a layer that took the
// Winograd path keeps only its Winograd weights, so a later input too small
// for that path runs the exact convolution on weights rebuilt from them.
// One model run on square maps of the given sizes in turn: a layer whose
// weights a path replaced (Winograd's, the channel-vector kernel's) must give
// exact results again on a map that path does not take, and after it.  In
// bf16 mode, results within bf16's rounding: 2^-5 of each output's sum of
// |products| and a cosine of 0.9999, as Bf16WinogradWithinRounding holds
// its path to.
void maps_in_turn(uint32_t seed, int64_t C, int64_t M, bool fast, const std::vector<int64_t> &sizes,
                  bool bf16 = false) {
  std::mt19937 rng(seed);
  auto w = rnd((size_t)(M * C * 9), rng), b = rnd((size_t)M, rng);
  Model md;
  md.inputs.push_back({"x", 1, {1, C, -1, -1}});
  md.inits.push_back(onnxb::float_tensor("w", {M, C, 3, 3}, w));
  md.inits.push_back(onnxb::float_tensor("b", {M}, b));
  md.nodes.push_back({"Conv", "conv", {"x", "w", "b"}, {"y"}, {onnxb::attr_ints("pads", {1, 1, 1, 1})}});
  md.outputs.push_back({"y", 1, {1, M, -1, -1}});
  auto buf = md.serialize();
  mi_options o;
  mi_options_default(&o);
  o.threads = 2;
  o.fast_math = fast;
  o.bf16 = bf16;
  mi_model *m = nullptr;
  ASSERT_EQ(mi_model_load_buffer(buf.data(), buf.size(), nullptr, "kernel.onnx", &o, &m), nullptr);
  for (int64_t hw : sizes) {
    Geo g{};
    g.nsp = 2, g.N = 1, g.C = C, g.M = M, g.G = 1;
    for (int j = 0; j < 3; j++) {
      const bool live = j > 0;
      g.k[j] = live ? 3 : 1, g.s[j] = g.d[j] = 1, g.pb[j] = g.pe[j] = live ? 1 : 0;
      g.in[j] = g.out[j] = live ? hw : 1;
    }
    const std::vector<int64_t> xd = {1, C, hw, hw};
    auto x = rnd((size_t)numel(xd), rng);
    mi_tensor *in = nullptr, *out = nullptr;
    ASSERT_EQ(mi_tensor_wrap(MI_FLOAT, 4, xd.data(), x.data(), &in), nullptr);
    mi_status *st = mi_model_run(m, &in, 1, &out, 1);
    ASSERT_EQ(st, nullptr) << mi_status_message(st);
    const float *p = static_cast<const float *>(mi_tensor_cdata(out));
    std::vector<float> got(p, p + mi_tensor_numel(out));
    const std::string what =
        std::string(fast ? "fast mode, " : bf16 ? "bf16 mode, " : "") + std::to_string(hw) + "x" + std::to_string(hw);
    const auto want = conv_ref(g, x, w, b, {}, false);
    if (bf16) {
      const auto mag = abs_products(g, x, w);
      int bad = 0;
      double ab = 0, aa = 0, bb = 0;
      for (size_t i = 0; i < got.size(); i++) {
        ab += (double)got[i] * want[i], aa += (double)got[i] * got[i], bb += (double)want[i] * want[i];
        if (!(std::fabs(got[i] - want[i]) <= mag[i] / 32) && bad++ < 3)
          ADD_FAILURE() << what << ": element " << i << " is " << got[i] << ", reference " << want[i];
      }
      EXPECT_GE(ab / std::sqrt(aa * bb), 0.9999) << what;
    } else {
      expect_close(got, want, what);
    }
    mi_tensor_free(in);
    mi_tensor_free(out);
  }
  mi_model_free(m);
}

// 20x20 takes F(4x4, 3x3); 7x7 runs in that tile too (its weights'), 5x5
// (too few tiles) on exact weights rebuilt from them.
TEST(ConvKernel, WinogradThenExactShape) { maps_in_turn(20261205, 24, 20, true, {20, 7, 20, 5}); }
// bf16 mode: 256 channels at 14x14 take F(2x2) with bf16 products (a bf16
// U, the layer's FP32 weights kept); 5x5 and 7x7 (too few tiles) run on
// bf16's kernels from those kept weights, and 14x14 again on U.
TEST(ConvKernel, Bf16WinogradThenOtherShapes) {
  if (!mi_bf16_available()) GTEST_SKIP() << "bf16 tests skipped: no AVX512-BF16 (or MEDINFER_ISA below avx512)";
  maps_in_turn(20261211, 256, 256, false, {14, 5, 14, 7}, true);
}
// A 12x12 map takes F(3x3, 3x3) (4x4 blocks would leave too few tiles), an
// 8x8 map F(2x2, 3x3), so the 7x7, 5x5 and 3x3 maps run on weights rebuilt
// from their 25 and 16 matrices.
TEST(ConvKernel, WinogradSmallTilesThenExactShape) { maps_in_turn(20261206, 24, 20, true, {12, 7, 12, 5}); }
TEST(ConvKernel, WinogradSmallestTilesThenExactShape) { maps_in_turn(20261209, 24, 20, true, {8, 5, 8, 3}); }

// Small maps take the channel-vector kernel (AVX-512, 16k channels), a
// 20x20 map does not: its weights are rebuilt from the kernel's.
TEST(ConvKernel, ChannelVectorThenLargerMap) { maps_in_turn(20261202, 24, 32, false, {7, 20, 5, 20}); }
// With 32 input channels the kernel reads a channel-blocked padded copy and
// holds its weights in that order (block, tap, channel); a 370x370 map's copy
// is past the copy budget, so the SGEMM takes it on weights put back in
// their own order.
TEST(ConvKernel, ChannelVectorBlockedOrderThenLargeMap) { maps_in_turn(20261208, 32, 16, false, {12, 370, 12}); }

// A 2D layer of geometry g (one image, one group) with bias, then ReLU or a
// residual Add and ReLU, on random data: the engine's result against conv_ref.
void check_layer_2d(const Geo &g, std::mt19937 &rng, bool with_res, const std::string &what) {
  const auto xd = shape(g, 1, g.C, g.in), yd = shape(g, 1, g.M, g.out);
  auto x = rnd((size_t)numel(xd), rng), w = rnd((size_t)(g.M * g.C * g.k[1] * g.k[2]), rng);
  auto b = rnd((size_t)g.M, rng);
  auto r = with_res ? rnd((size_t)numel(yd), rng) : std::vector<float>();
  Model md;
  md.inputs.push_back({"x", 1, xd});
  md.inits.push_back(onnxb::float_tensor("w", {g.M, g.C, g.k[1], g.k[2]}, w));
  md.inits.push_back(onnxb::float_tensor("b", {g.M}, b));
  md.nodes.push_back({"Conv", "conv", {"x", "w", "b"}, {"c"},
                      {onnxb::attr_ints("pads", pads_of(g)), onnxb::attr_ints("strides", {g.s[1], g.s[2]}),
                       onnxb::attr_ints("dilations", {g.d[1], g.d[2]})}});
  std::vector<std::vector<int64_t>> dims = {xd};
  std::vector<std::vector<float>> data = {x};
  if (with_res) add_residual_relu(md, yd, r, dims, data);
  else md.nodes.push_back({"Relu", "relu", {"c"}, {"y"}, {}});
  md.outputs.push_back({"y", 1, yd});
  std::string err;
  auto got = run(md, dims, data, &err);
  ASSERT_TRUE(err.empty()) << err;
  expect_close(got, conv_ref(g, x, w, b, r, true), what);
}

// The channel-vector kernel (a small map) with K 2160 in chunks of 128, 256
// or 512 steps (64, 32 or 16 channels a block; 512, 1024 or 2048 on AMD),
// the last chunk partial, tiles in groups that keep their sums between
// chunks; bias + ReLU in registers, or a residual added by the epilogue after
// the last chunk.
TEST(ConvKernel, ChannelVectorChunkedTaps) {
  std::mt19937 rng(20261207);
  for (int64_t M : {64, 96, 48}) {
    const bool with_res = M != 64;
    Geo g{};
    g.nsp = 2, g.N = 1, g.C = 240, g.M = M, g.G = 1;
    const int64_t hw[3] = {1, 13, 11};
    for (int j = 0; j < 3; j++) {
      const bool live = j > 0;
      g.k[j] = live ? 3 : 1, g.s[j] = g.d[j] = 1, g.pb[j] = g.pe[j] = live ? 1 : 0;
      g.in[j] = g.out[j] = hw[j];
    }
    check_layer_2d(g, rng, with_res, "M " + std::to_string(M) + (with_res ? ", residual" : ""));
  }
}

// Padded 2D layers on the channel-vector kernel in its channel-blocked order
// (whole blocks of 16 channels): tiles whose positions all read only padding
// at some taps leave those taps out (border rows of a dilated 24x24 layer, a
// 7x7 map's first and last rows, strided and asymmetric pads, a 7x7 kernel
// of 49 taps); results as the reference's, with a residual on some.
TEST(ConvKernel, ChannelVectorSkipsPaddingTaps) {
  struct Case {
    int64_t C, M, h, w, k, s, d, pt, pl, pb, pr;
  };
  const Case cases[] = {{32, 64, 24, 24, 3, 1, 4, 4, 4, 4, 4}, {48, 32, 7, 7, 3, 1, 1, 1, 1, 1, 1},
                        {16, 16, 13, 11, 3, 2, 1, 1, 1, 1, 1}, {32, 48, 9, 10, 3, 1, 2, 0, 2, 3, 1},
                        {16, 32, 7, 7, 7, 1, 1, 3, 3, 3, 3},   {64, 64, 12, 12, 3, 1, 6, 6, 6, 6, 6}};
  std::mt19937 rng(20261204);
  int i = 0;
  for (const Case &c : cases) {
    const bool with_res = i++ % 2 == 1;
    Geo g{};
    g.nsp = 2, g.N = 1, g.C = c.C, g.M = c.M, g.G = 1;
    const int64_t in[3] = {1, c.h, c.w}, pb[3] = {0, c.pt, c.pl}, pe[3] = {0, c.pb, c.pr};
    for (int j = 0; j < 3; j++) {
      const bool live = j > 0;
      g.k[j] = live ? c.k : 1, g.s[j] = live ? c.s : 1, g.d[j] = live ? c.d : 1;
      g.pb[j] = pb[j], g.pe[j] = pe[j], g.in[j] = in[j];
      g.out[j] = (in[j] + pb[j] + pe[j] - g.d[j] * (g.k[j] - 1) - 1) / g.s[j] + 1;
    }
    check_layer_2d(g, rng, with_res,
                   "case " + std::to_string(i) + ": " + std::to_string(c.h) + "x" + std::to_string(c.w) + " k" +
                       std::to_string(c.k) + " s" + std::to_string(c.s) + " d" + std::to_string(c.d));
  }
}

// Whether the plan keeps values channel-blocked in this run: AVX-512 in use (the public query that says so) and no
// knob that takes the blocked layouts away (the runs with those check the numbers only).
bool blocked_layouts_expected() {
  const char *cv_env = std::getenv("MEDINFER_CONV_CV");
  const char *c16_env = std::getenv("MEDINFER_CHAN16");
  return mi_bf16_available() && !(cv_env && std::string(cv_env) == "0") && !(c16_env && std::string(c16_env) == "0") &&
         !std::getenv("MEDINFER_PREPACK") && !std::getenv("MEDINFER_PAD_COPY") && !std::getenv("MEDINFER_GEMM");
}

// A 2D layer's geometry: square kernel k, stride st, dilation dl, pad p on every side.
Geo layer2d(int64_t N, int64_t C, int64_t M, int64_t H, int64_t W, int64_t k, int64_t st, int64_t dl, int64_t p) {
  Geo g{};
  g.nsp = 2, g.N = N, g.C = C, g.M = M, g.G = 1;
  const int64_t in[3] = {1, H, W};
  for (int j = 0; j < 3; j++) {
    const bool live = j > 0;
    g.in[j] = in[j], g.k[j] = live ? k : 1, g.s[j] = live ? st : 1, g.d[j] = live ? dl : 1;
    g.pb[j] = g.pe[j] = live ? p : 0;
    g.out[j] = (g.in[j] + 2 * g.pb[j] - (g.k[j] - 1) * g.d[j] - 1) / g.s[j] + 1;
  }
  return g;
}

// A ResNet-shaped chain whose inner values the plan keeps channel-blocked
// (NCHW16c) between the channel-vector kernel's layers: A reads the plain
// input and writes blocked, B reads it through the blocked padded copy
// (dilated, sometimes strided), C is a 1x1 layer read in place that adds A's
// blocked output as its residual in registers, D reads blocked and writes
// the plain graph output.  A value stays plain where a reader cannot take it
// blocked: B's or A's output when it is also a graph output (A's then
// leaves C's plain, as C adds it), C's when D's output channels are not
// whole vectors of 16 (nor then A's, C's residual), and around a 1x1 layer
// that the kernel leaves to the SGEMM (a small map).  Against the double
// reference, layer by layer; where the CPU has AVX-512 and AVX512-BF16 (the
// public query that says AVX-512 is in use) the profile must count the
// blocked outputs.  Every other trial runs in fast mode with Winograd forced
// on the stride-1 3x3 layers, which take blocked values through NCHW copies
// (the residual added on the way back: C is then sometimes a 3x3 layer):
// a value between two such layers stays plain.
TEST(ConvKernel, ChannelBlockedChainMatchesReference) {
  std::mt19937 rng(20261203);
  auto pick = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  // The count is checked with the kernel choices at their defaults (the
  // channel-vector kernel forced on changes nothing here); the runs with
  // knobs that take the blocked layouts away check the numbers only.
  const bool blocked_expected = blocked_layouts_expected();
  for (int trial = 0; trial < 16; trial++) {
    const int64_t N = pick(1, 2), C0 = 8 * pick(1, 6), M1 = 16 * pick(1, 4), M2 = 16 * pick(1, 5);
    const int64_t M3 = trial % 3 == 2 ? pick(5, 40) : 16 * pick(1, 3);
    const int64_t H = pick(6, 30), W = pick(6, 30), kA = pick(0, 1) ? 3 : 1, sA = pick(1, 3) == 3 ? 2 : 1;
    const int64_t dB = pick(1, 2), sB = trial % 4 == 3 ? 2 : 1, kD = pick(0, 1) ? 3 : 1;
    const bool tap_b = trial % 5 == 4, tap_a = trial % 7 == 5, fast = trial % 2 == 1;
    const Geo gA = layer2d(N, C0, M1, H, W, kA, sA, 1, kA / 2);
    const Geo gB = layer2d(N, M1, M2, gA.out[1], gA.out[2], 3, sB, dB, dB);
    const int64_t kC = trial % 8 == 1 ? 3 : 1;  // fast mode: then C a Winograd layer adding A's output
    const Geo gC = layer2d(N, M2, M1, gB.out[1], gB.out[2], kC, 1, 1, kC / 2);
    const bool res = sB == 1;  // C's output has A's shape only when B keeps it
    const Geo gD = layer2d(N, M1, M3, gC.out[1], gC.out[2], kD, pick(1, 2), 1, kD / 2);
    const auto xd = shape(gA, N, C0, gA.in), yd = shape(gD, N, M3, gD.out), bd = shape(gB, N, M2, gB.out);
    auto x = rnd((size_t)numel(xd), rng);
    auto wA = rnd((size_t)(M1 * C0 * kA * kA), rng), wB = rnd((size_t)(M2 * M1 * 9), rng);
    auto wC = rnd((size_t)(M1 * M2 * kC * kC), rng), wD = rnd((size_t)(M3 * M1 * kD * kD), rng);
    auto bA = rnd((size_t)M1, rng), bB = rnd((size_t)M2, rng), bD = rnd((size_t)M3, rng);
    for (auto *w : {&wB, &wC}) for (auto &v : *w) v *= 0.25f;  // keep the chain's values near 1
    Model md;
    md.inputs.push_back({"x", 1, xd});
    md.inits.push_back(onnxb::float_tensor("wA", {M1, C0, kA, kA}, wA));
    md.inits.push_back(onnxb::float_tensor("wB", {M2, M1, 3, 3}, wB));
    md.inits.push_back(onnxb::float_tensor("wC", {M1, M2, kC, kC}, wC));
    md.inits.push_back(onnxb::float_tensor("wD", {M3, M1, kD, kD}, wD));
    md.inits.push_back(onnxb::float_tensor("bA", {M1}, bA));
    md.inits.push_back(onnxb::float_tensor("bB", {M2}, bB));
    md.inits.push_back(onnxb::float_tensor("bD", {M3}, bD));
    auto conv = [&](const char *name, std::vector<std::string> in, const char *out, const Geo &g) {
      md.nodes.push_back({"Conv", name, in, {out},
                          {onnxb::attr_ints("strides", spatial(g, g.s)), onnxb::attr_ints("dilations", spatial(g, g.d)),
                           onnxb::attr_ints("pads", pads_of(g))}});
    };
    conv("A", {"x", "wA", "bA"}, "a0", gA);
    md.nodes.push_back({"Relu", "ra", {"a0"}, {"a"}, {}});
    conv("B", {"a", "wB", "bB"}, "b0", gB);
    md.nodes.push_back({"Relu", "rb", {"b0"}, {"b"}, {}});
    conv("C", {"b", "wC"}, res ? "c0" : "c1", gC);
    if (res) md.nodes.push_back({"Add", "add", {"c0", "a"}, {"c1"}, {}});
    md.nodes.push_back({"Relu", "rc", {"c1"}, {"c"}, {}});
    conv("D", {"c", "wD", "bD"}, "y", gD);
    md.outputs.push_back({"y", 1, yd});
    if (tap_b) md.outputs.push_back({"b", 1, bd});
    if (tap_a) md.outputs.push_back({"a", 1, shape(gA, N, M1, gA.out)});
    std::vector<std::vector<int64_t>> dims = {xd};
    std::vector<std::vector<float>> data = {x};
    std::string err, profile;
    std::vector<std::vector<float>> rest;
    if (fast) setenv("MEDINFER_WINOGRAD", trial % 4 == 1 ? "4" : "2", 1);
    g_fast = fast;
    auto got = run(md, dims, data, &err, &profile, &rest);
    g_fast = false;
    unsetenv("MEDINFER_WINOGRAD");
    const std::string what = "trial " + std::to_string(trial) + (fast ? ", fast" : "") + " (A: " + describe(gA) +
                             "; B: " + describe(gB) + "; C: " + describe(gC) + "; D: " + describe(gD) +
                             (res ? ", residual" : "") + (tap_b ? ", B an output" : "") +
                             (tap_a ? ", A an output" : "") + ")";
    ASSERT_TRUE(err.empty()) << what << ": " << err;
    const auto a = conv_ref(gA, x, wA, bA, {}, true), b = conv_ref(gB, a, wB, bB, {}, true);
    const auto c = conv_ref(gC, b, wC, {}, res ? a : std::vector<float>(), true);
    const float tol = fast ? 1e-3f : 1e-4f;  // Winograd's rounding, four layers deep
    expect_close(got, conv_ref(gD, c, wD, bD, {}, false), what, tol);
    ASSERT_EQ(rest.size(), (size_t)(tap_b + tap_a)) << what;
    if (tap_b) expect_close(rest[0], b, what + ", output b", tol);
    if (tap_a) expect_close(rest[tap_b], a, what + ", output a", tol);
    if (blocked_expected) {
      // 1x1 unit-stride layers on maps of up to 64 positions stay on the SGEMM
      auto takes = [](const Geo &g) { return !(g.k[2] == 1 && g.s[2] == 1 && g.out[1] * g.out[2] <= 64); };
      auto wino = [&](const Geo &g) { return fast && g.k[2] == 3 && g.s[2] == 1; };
      // A's output plain (a graph output, or between two Winograd layers) leaves C's plain too when it is C's
      // residual
      const bool a_plain = tap_a || (wino(gA) && wino(gB));
      const bool c16 = takes(gC) && takes(gD) && M3 % 16 == 0 && !(wino(gC) && wino(gD)) && !(res && a_plain);
      const bool a16 = takes(gA) && !a_plain && (res ? c16 : true);
      const bool b16 = !tap_b && takes(gC) && !(wino(gB) && wino(gC));
      const std::string want = "channel-blocked (NCHW16c) outputs: " + std::to_string(a16 + b16 + c16) + " of 4";
      EXPECT_NE(profile.find(want), std::string::npos) << what << ": wanted '" << want << "' in\n" << profile;
    }
    if (HasFailure()) return;
  }
}

// Fast mode: Winograd's weights first (20x20), then the channel-vector
// kernel's made from them (7x7), then both again.
TEST(ConvKernel, WinogradThenChannelVector) { maps_in_turn(20261203, 24, 32, true, {20, 7, 20, 7}); }

// Max pooling between channel-blocked layers: A (3x3, blocked output) ->
// MaxPool -> B (3x3, reads blocked), the pool reading and writing blocked
// tensors (random window, stride, asymmetric pads, dilation, ceil mode); its output NCHW when it
// is also a graph output; and a pool on the graph input (NCHW) writing
// blocked for B (a ResNet's stem pool before its first stage, when the stem
// writes NCHW).  Against the double reference; where AVX-512 is in use the
// profile counts the blocked outputs.
TEST(PoolKernel, ChannelBlockedMaxPoolMatchesReference) {
  std::mt19937 rng(20261204);
  auto pick = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  const bool blocked_expected = blocked_layouts_expected();
  for (int trial = 0; trial < 12; trial++) {
    const bool from_input = trial % 3 == 2, tap_p = trial % 4 == 1, ceil = trial % 2 == 1;
    const int64_t N = pick(1, 2), C0 = 8 * pick(1, 4), C = 16 * pick(1, 3), M = 16 * pick(1, 2);
    const int64_t H = pick(7, 26), W = pick(7, 26);
    const Geo gA = layer2d(N, C0, C, H, W, 3, 1, 1, 1);
    Geo gP{};  // the pool: C channels in and out
    gP.nsp = 2, gP.N = N, gP.C = gP.M = C, gP.G = 1;
    for (int j = 0; j < 3; j++) {
      const bool live = j > 0;
      gP.in[j] = live ? (j == 1 ? H : W) : 1;
      gP.k[j] = live ? pick(2, 3) : 1, gP.s[j] = live ? pick(1, 2) : 1, gP.d[j] = live ? pick(1, 2) : 1;
      const int64_t dk = (gP.k[j] - 1) * gP.d[j] + 1, pmax = std::min<int64_t>(gP.k[j] - 1, dk / 2);
      gP.pb[j] = live ? pick(0, (int)pmax) : 0, gP.pe[j] = live ? pick(0, (int)pmax) : 0;  // asymmetric too
      const int64_t span = gP.in[j] + gP.pb[j] + gP.pe[j] - dk;
      gP.out[j] = (ceil ? (span + gP.s[j] - 1) / gP.s[j] : span / gP.s[j]) + 1;
      if (ceil && (gP.out[j] - 1) * gP.s[j] >= gP.in[j] + gP.pb[j]) gP.out[j]--;  // a last window inside
    }
    const Geo gB = layer2d(N, C, M, gP.out[1], gP.out[2], 3, 1, 1, 1);
    auto x = rnd((size_t)(N * (from_input ? C : C0) * H * W), rng);
    auto wA = rnd((size_t)(C * C0 * 9), rng), wB = rnd((size_t)(M * C * 9), rng);
    auto bA = rnd((size_t)C, rng), bB = rnd((size_t)M, rng);
    Model md;
    const std::vector<int64_t> xd = {N, from_input ? C : C0, H, W}, pd = {N, C, gP.out[1], gP.out[2]};
    md.inputs.push_back({"x", 1, xd});
    md.inits.push_back(onnxb::float_tensor("wB", {M, C, 3, 3}, wB));
    md.inits.push_back(onnxb::float_tensor("bB", {M}, bB));
    if (!from_input) {
      md.inits.push_back(onnxb::float_tensor("wA", {C, C0, 3, 3}, wA));
      md.inits.push_back(onnxb::float_tensor("bA", {C}, bA));
      md.nodes.push_back({"Conv", "A", {"x", "wA", "bA"}, {"a"}, {onnxb::attr_ints("pads", {1, 1, 1, 1})}});
    }
    md.nodes.push_back({"MaxPool", "pool", {from_input ? "x" : "a"}, {"p"},
                        {onnxb::attr_ints("kernel_shape", spatial(gP, gP.k)), onnxb::attr_ints("strides", spatial(gP, gP.s)),
                         onnxb::attr_ints("dilations", spatial(gP, gP.d)), onnxb::attr_ints("pads", pads_of(gP)),
                         onnxb::attr_int("ceil_mode", ceil)}});
    md.nodes.push_back({"Conv", "B", {"p", "wB", "bB"}, {"y"}, {onnxb::attr_ints("pads", {1, 1, 1, 1})}});
    md.outputs.push_back({"y", 1, {N, M, gB.out[1], gB.out[2]}});
    if (tap_p) md.outputs.push_back({"p", 1, pd});
    std::vector<std::vector<int64_t>> dims = {xd};
    std::vector<std::vector<float>> data = {x};
    std::string err, profile;
    std::vector<std::vector<float>> rest;
    auto got = run(md, dims, data, &err, &profile, &rest);
    const std::string what = "trial " + std::to_string(trial) + " (pool " + describe(gP) + (ceil ? ", ceil" : "") +
                             (from_input ? ", on the input" : ", after A") + (tap_p ? ", an output" : "") + ")";
    ASSERT_TRUE(err.empty()) << what << ": " << err;
    const auto a = from_input ? x : conv_ref(gA, x, wA, bA, {}, false);
    const auto p = pool_ref(gP, a, true, false);
    expect_close(got, conv_ref(gB, p, wB, bB, {}, false), what);
    ASSERT_EQ(rest.size(), (size_t)tap_p) << what;
    if (tap_p) expect_close(rest[0], p, what + ", output p");
    if (blocked_expected) {  // A's output (read by the pool), the pool's unless a graph output; B's is one
      const int blocked = (from_input ? 0 : 1) + (tap_p ? 0 : 1), layers = from_input ? 2 : 3;
      const std::string want = "channel-blocked (NCHW16c) outputs: " + std::to_string(blocked) + " of " +
                               std::to_string(layers);
      EXPECT_NE(profile.find(want), std::string::npos) << what << ": wanted '" << want << "' in\n" << profile;
    }
    if (HasFailure()) return;
  }
}

// MEDINFER_ISA=avx512 on a CPU without it runs the next level down, which
// other variants of this test cover already: exit 77, which ctest counts as
// skipped (SKIP_RETURN_CODE of those variants).
int main(int argc, char **argv) {
  ::testing::InitGoogleTest(&argc, argv);
  const char *isa = std::getenv("MEDINFER_ISA");
  if (isa && std::string(isa) == "avx512" && !mi_isa_supported(MI_ISA_AVX512)) {
    std::printf("MEDINFER_ISA=avx512: this CPU has no AVX-512; skipped\n");
    return 77;
  }
  return RUN_ALL_TESTS();
}
