// Activations and residual adds fused into BatchNormalization and
// InstanceNormalization (graph passes + the norm kernels' epilogue) must give
// what the unfused graph gives; so must a 1x1 convolution's average pooling
// moved before it, or a max pooling fused into a 3x3 one; a single-input-channel Conv (a 3D U-Net's stem) through
// the packed GEMM must match a direct reference.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <cstring>
#include <vector>

#include "medinfer/engine.h"
#include "onnx_builder.h"
#include "profile_text.h"

using onnxb::Model;

namespace {

std::vector<float> rnd(size_t n, unsigned seed, float lo = -1.f, float hi = 1.f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (auto &x : v) x = d(rng);
  return v;
}

// gflop: where given, the profile's total of the run (convolutions and
// matrix products, 2 x multiply-adds), and nodes its node count; fast: fast
// mode (Winograd); threads: the engine's.
std::vector<float> run(const Model &md, bool optimize, std::vector<int64_t> dims, std::vector<float> x,
                       double *gflop = nullptr, bool fast = false, int *nodes = nullptr, int threads = 2) {
  auto buf = md.serialize();
  mi_options o;
  mi_options_default(&o);
  o.optimize = optimize;
  o.fast_math = fast;
  o.threads = threads;
  mi_model *m = nullptr;
  mi_status *st = mi_model_load_buffer(buf.data(), buf.size(), nullptr, "fusion.onnx", &o, &m);
  EXPECT_EQ(st, nullptr) << (st ? mi_status_message(st) : "");
  if (st) {
    mi_status_free(st);
    return {};
  }
  mi_tensor *in = nullptr, *out = nullptr;
  EXPECT_EQ(mi_tensor_wrap(MI_FLOAT, (int)dims.size(), dims.data(), x.data(), &in), nullptr);
  if (gflop) {
    EXPECT_EQ(mi_model_set_profiling(m, 1), nullptr);
  }
  st = mi_model_run(m, &in, 1, &out, 1);
  EXPECT_EQ(st, nullptr) << (st ? mi_status_message(st) : "");
  if (gflop && !st) {
    const std::string text = profile_text(m);
    const char *at = std::strstr(text.c_str(), " nodes (");
    *gflop = at ? std::strtod(at + 8, nullptr) : -1;
    const char *in = std::strstr(text.c_str(), " per run in ");
    if (nodes) *nodes = in ? std::atoi(in + 12) : -1;
  }
  std::vector<float> y;
  if (!st) {
    const float *p = static_cast<const float *>(mi_tensor_cdata(out));
    y.assign(p, p + mi_tensor_numel(out));
  }
  mi_status_free(st);
  mi_tensor_free(in);
  mi_tensor_free(out);
  mi_model_free(m);
  return y;
}

void expect_close(const std::vector<float> &a, const std::vector<float> &b, float tol) {
  ASSERT_EQ(a.size(), b.size());
  ASSERT_FALSE(a.empty());
  int bad = 0;
  for (size_t i = 0; i < a.size(); i++)
    if (!(std::fabs(a[i] - b[i]) <= tol * (1.f + std::fabs(b[i]))) && bad++ < 5)
      ADD_FAILURE() << "element " << i << ": " << a[i] << " vs " << b[i];
}

const int64_t C = 5;
const std::vector<int64_t> kDims = {2, C, 7, 9, 11};

// act on t as "y"; "ClipInverted" is a Clip whose min is above its max
// (ONNX: every value becomes the max).
void add_activation(Model &md, const std::string &act, const std::string &t) {
  std::vector<onnxb::Attr> at;
  std::vector<std::string> in = {t};
  if (act == "LeakyRelu") at.push_back(onnxb::attr_float("alpha", 0.1f));
  if (act == "Clip" || act == "ClipInverted") {
    const bool inv = act == "ClipInverted";
    md.inits.push_back(onnxb::float_tensor("lo", {}, {inv ? 0.7f : -0.5f}));
    md.inits.push_back(onnxb::float_tensor("hi", {}, {inv ? -0.5f : 0.7f}));
    in = {t, "lo", "hi"};
  }
  md.nodes.push_back({act == "ClipInverted" ? "Clip" : act, "act", in, {"y"}, at});
}

Model norm_model(bool instance, const char *act, bool residual) {
  Model md;
  md.inputs.push_back({"x", 1, kDims});
  md.outputs.push_back({"y", 1, {}});
  md.inits.push_back(onnxb::float_tensor("s", {C}, rnd(C, 1, 0.5f, 1.5f)));
  md.inits.push_back(onnxb::float_tensor("b", {C}, rnd(C, 2)));
  std::string t = "n";
  if (instance) {
    md.nodes.push_back({"InstanceNormalization", "norm", {"x", "s", "b"}, {t}, {onnxb::attr_float("epsilon", 1e-5f)}});
  } else {
    md.inits.push_back(onnxb::float_tensor("mean", {C}, rnd(C, 3)));
    md.inits.push_back(onnxb::float_tensor("var", {C}, rnd(C, 4, 0.5f, 2.f)));
    md.nodes.push_back({"BatchNormalization", "norm", {"x", "s", "b", "mean", "var"}, {t}, {}});
  }
  if (residual) {
    md.nodes.push_back({"Add", "add", {t, "x"}, {"r"}, {}});
    t = "r";
  }
  add_activation(md, act, t);
  return md;
}

TEST(NormFusion, FusedMatchesUnfused) {
  const auto x = rnd(size_t(2 * C * 7 * 9 * 11), 9, -3.f, 3.f);
  for (bool instance : {false, true})
    for (const char *act : {"Relu", "LeakyRelu", "Sigmoid", "Clip", "ClipInverted"})
      for (bool residual : {false, true}) {
        SCOPED_TRACE(std::string(instance ? "InstanceNorm" : "BatchNorm") + " " + act +
                     (residual ? " +residual" : ""));
        Model md = norm_model(instance, act, residual);
        expect_close(run(md, true, kDims, x), run(md, false, kDims, x), 1e-5f);
      }
}

// A convolution's fused Clip (the epilogue after the kernel) as the Clip
// node's own: values clamped, and a min above the max gives the max.
TEST(NormFusion, ConvClipMatchesUnfused) {
  const std::vector<int64_t> dims = {1, 4, 6, 5};
  const auto x = rnd(size_t(4 * 6 * 5), 31, -2.f, 2.f);
  for (const char *act : {"Clip", "ClipInverted"}) {
    SCOPED_TRACE(act);
    Model md;
    md.inputs.push_back({"x", 1, dims});
    md.outputs.push_back({"y", 1, {}});
    md.inits.push_back(onnxb::float_tensor("w", {8, 4, 3, 3}, rnd(8 * 4 * 9, 32)));
    md.nodes.push_back({"Conv", "conv", {"x", "w"}, {"c"}, {onnxb::attr_ints("pads", {1, 1, 1, 1})}});
    add_activation(md, act, "c");
    expect_close(run(md, true, dims, x), run(md, false, dims, x), 1e-5f);
  }
}

// BatchNormalization + ReLU -> 1x1 Conv -> AveragePool (DenseNet's
// transition) with the pool moved before the convolution, the normalisation
// going with it: the same values as the graph as written, for windows that
// tile the input (2x2 on even and odd sizes, 2x2x2 in 3D), overlapping ones
// (3x3 stride 2, odd sizes) and ones of more than 64 taps (9x9: the window
// loops); the convolution's multiply-adds divided by the pool's positions.
// Pools with padding (here counted, so that the bias would be averaged with
// zeros) or after a fused activation stay where they are.
TEST(NormFusion, PoolBeforePointwiseConvMatchesUnfused) {
  struct Case {
    const char *what;
    std::vector<int64_t> dims, kernel, strides, pads;
    bool relu_after, moves;
  };
  const Case cases[] = {
      {"2x2", {2, 24, 14, 10}, {2, 2}, {2, 2}, {}, false, true},
      {"2x2, odd sizes", {1, 24, 15, 11}, {2, 2}, {2, 2}, {}, false, true},
      {"3x3 stride 2", {1, 24, 13, 11}, {3, 3}, {2, 2}, {}, false, true},
      {"9x9 stride 2", {1, 24, 21, 20}, {9, 9}, {2, 2}, {}, false, true},
      {"2x2x2", {1, 24, 6, 8, 10}, {2, 2, 2}, {2, 2, 2}, {}, false, true},
      {"padded", {1, 24, 14, 10}, {3, 3}, {2, 2}, {1, 1, 1, 1}, false, false},
      {"relu after the conv", {1, 24, 14, 10}, {2, 2}, {2, 2}, {}, true, false},
  };
  for (const Case &c : cases) {
    SCOPED_TRACE(c.what);
    const int64_t Cin = c.dims[1], M = 40;
    int64_t n = 1, pos = 1, pooled = 1;
    for (int64_t d : c.dims) n *= d;
    for (size_t i = 2; i < c.dims.size(); i++) {
      const int64_t in = c.dims[i] + (c.pads.empty() ? 0 : 2 * c.pads[i - 2]);
      pos *= c.dims[i];
      pooled *= (in - c.kernel[i - 2]) / c.strides[i - 2] + 1;
    }
    std::vector<int64_t> wdims = {M, Cin};
    wdims.resize(c.dims.size(), 1);
    Model md;
    md.inputs.push_back({"x", 1, c.dims});
    md.outputs.push_back({"y", 1, {}});
    md.inits.push_back(onnxb::float_tensor("s", {Cin}, rnd(size_t(Cin), 41, 0.5f, 1.5f)));
    md.inits.push_back(onnxb::float_tensor("b", {Cin}, rnd(size_t(Cin), 42)));
    md.inits.push_back(onnxb::float_tensor("mean", {Cin}, rnd(size_t(Cin), 43)));
    md.inits.push_back(onnxb::float_tensor("var", {Cin}, rnd(size_t(Cin), 44, 0.5f, 2.f)));
    md.inits.push_back(onnxb::float_tensor("w", wdims, rnd(size_t(M * Cin), 45)));
    md.inits.push_back(onnxb::float_tensor("bias", {M}, rnd(size_t(M), 46)));
    md.nodes.push_back({"BatchNormalization", "norm", {"x", "s", "b", "mean", "var"}, {"n"}, {}});
    md.nodes.push_back({"Relu", "relu", {"n"}, {"r"}, {}});
    md.nodes.push_back({"Conv", "conv", {"r", "w", "bias"}, {"c"}, {}});
    std::string t = "c";
    if (c.relu_after) {
      md.nodes.push_back({"Relu", "relu2", {"c"}, {"c2"}, {}});
      t = "c2";
    }
    std::vector<onnxb::Attr> pa = {onnxb::attr_ints("kernel_shape", c.kernel), onnxb::attr_ints("strides", c.strides)};
    if (!c.pads.empty()) {
      pa.push_back(onnxb::attr_ints("pads", c.pads));
      pa.push_back(onnxb::attr_int("count_include_pad", 1));
    }
    md.nodes.push_back({"AveragePool", "pool", {t}, {"y"}, pa});
    const auto x = rnd(size_t(n), 47, -3.f, 3.f);
    double gflop = 0;
    const auto y = run(md, true, c.dims, x, &gflop);
    expect_close(y, run(md, false, c.dims, x), 1e-5f);
    const double full = 2e-9 * double(c.dims[0] * M * Cin * pos);
    EXPECT_NEAR(gflop, c.moves ? full * double(pooled) / double(pos) : full, 1e-3 * full);
  }
}

// Fast mode: a 3x3 convolution's 2x2 stride-2 max pooling fused into it
// gives the unfused graph's values (exact mode: the Winograd rounding
// apart), through the output transform's pooled F(4x4) (rows of runs; runs
// too short: scattered) and F(2x2) blocks, and through the scratch copy
// where the Winograd tile cannot pool (F(3x3)); a pool with padding stays a
// node of its own.
TEST(NormFusion, MaxPoolFusedIntoConvMatchesUnfused) {
  struct Case {
    const char *what, *tiles; // tiles: MEDINFER_WINOGRAD (nullptr: the rules)
    std::vector<int64_t> dims, conv_pads, pool_pads;
    const char *act; // after the Conv (nullptr: none)
    bool fused;
  };
  const Case cases[] = {
      {"F(4x4), runs over two tile rows", nullptr, {2, 16, 32, 40}, {1, 1, 1, 1}, {}, "Relu", true},
      {"F(4x4), odd sizes", nullptr, {1, 16, 31, 29}, {1, 1, 1, 1}, {}, "Relu", true},
      {"F(4x4), no padding, no activation", nullptr, {1, 16, 34, 26}, {}, {}, nullptr, true},
      {"F(4x4), LeakyRelu", nullptr, {1, 16, 32, 40}, {1, 1, 1, 1}, {}, "LeakyRelu", true},
      {"F(4x4), narrow map: scattered", "4", {1, 16, 64, 8}, {1, 1, 1, 1}, {}, "Relu", true},
      {"F(2x2)", "2", {1, 16, 14, 10}, {1, 1, 1, 1}, {}, "Relu", true},
      {"F(2x2), odd sizes, LeakyRelu", "2", {1, 16, 13, 11}, {1, 1, 1, 1}, {}, "LeakyRelu", true},
      {"F(3x3) asked: pooled from a scratch copy", "3", {1, 16, 15, 13}, {1, 1, 1, 1}, {}, "Relu", true},
      {"padded pool: not fused", nullptr, {1, 16, 32, 40}, {1, 1, 1, 1}, {1, 1, 1, 1}, "Relu", false},
  };
  for (const Case &c : cases) {
    SCOPED_TRACE(c.what);
    const int64_t Cin = c.dims[1], M = 24;
    int64_t n = 1;
    for (int64_t d : c.dims) n *= d;
    Model md;
    md.inputs.push_back({"x", 1, c.dims});
    md.outputs.push_back({"y", 1, {}});
    md.inits.push_back(onnxb::float_tensor("w", {M, Cin, 3, 3}, rnd(size_t(M * Cin * 9), 51)));
    md.inits.push_back(onnxb::float_tensor("bias", {M}, rnd(size_t(M), 52)));
    std::vector<onnxb::Attr> ca = {onnxb::attr_ints("kernel_shape", {3, 3})};
    if (!c.conv_pads.empty()) ca.push_back(onnxb::attr_ints("pads", c.conv_pads));
    md.nodes.push_back({"Conv", "conv", {"x", "w", "bias"}, {"c"}, ca});
    std::string t = "c";
    if (c.act) {
      std::vector<onnxb::Attr> aa;
      if (!std::strcmp(c.act, "LeakyRelu")) aa.push_back(onnxb::attr_float("alpha", 0.1f));
      md.nodes.push_back({c.act, "act", {"c"}, {"r"}, aa});
      t = "r";
    }
    std::vector<onnxb::Attr> pa = {onnxb::attr_ints("kernel_shape", {2, 2}), onnxb::attr_ints("strides", {2, 2})};
    if (!c.pool_pads.empty()) pa.push_back(onnxb::attr_ints("pads", c.pool_pads));
    md.nodes.push_back({"MaxPool", "pool", {t}, {"y"}, pa});
    const auto x = rnd(size_t(n), 53, -3.f, 3.f);
    const auto ref = run(md, false, c.dims, x);
    double gflop = 0;
    int nodes = 0;
    if (c.tiles) setenv("MEDINFER_WINOGRAD", c.tiles, 1);
    /* one thread too: its fixed order of the blocks shows any written outside their window */
    const auto y1 = run(md, true, c.dims, x, nullptr, true, nullptr, 1);
    const auto y = run(md, true, c.dims, x, &gflop, true, &nodes);
    unsetenv("MEDINFER_WINOGRAD");
    expect_close(y1, ref, 1e-4f);
    expect_close(y, ref, 1e-4f);
    EXPECT_EQ(nodes, c.fused ? 1 : 2);
    const int64_t pad = c.conv_pads.empty() ? 0 : 2, ho = c.dims[2] + pad - 2, wo = c.dims[3] + pad - 2;
    if (ho % 2 == 0 && wo % 2 == 0) { /* the profile counts the fused layer's multiply-adds before its pool */
      const double full = 2e-9 * double(c.dims[0] * M * Cin * 9 * ho * wo);
      EXPECT_NEAR(gflop, full, 1e-3 * full);
    }
  }
}

// A fused layer whose Winograd weights were made in F(3x3) by an earlier
// call that did not pool (MEDINFER_WINOGRAD=3 here; else another input
// size): later calls that could pool in the transform keep the scratch path.
TEST(NormFusion, MaxPoolFusedIntoConvAfterUnpooledF3Weights) {
  const std::vector<int64_t> dims = {1, 16, 32, 40};
  Model md;
  md.inputs.push_back({"x", 1, dims});
  md.outputs.push_back({"y", 1, {}});
  md.inits.push_back(onnxb::float_tensor("w", {24, 16, 3, 3}, rnd(24 * 16 * 9, 71)));
  md.nodes.push_back({"Conv", "conv", {"x", "w"}, {"c"},
                      {onnxb::attr_ints("kernel_shape", {3, 3}), onnxb::attr_ints("pads", {1, 1, 1, 1})}});
  md.nodes.push_back({"Relu", "relu", {"c"}, {"r"}, {}});
  md.nodes.push_back({"MaxPool", "pool", {"r"}, {"y"},
                      {onnxb::attr_ints("kernel_shape", {2, 2}), onnxb::attr_ints("strides", {2, 2})}});
  auto x = rnd(16 * 32 * 40, 72, -3.f, 3.f);
  const auto ref = run(md, false, dims, x);
  auto buf = md.serialize();
  mi_options o;
  mi_options_default(&o);
  o.fast_math = 1;
  mi_model *m = nullptr;
  ASSERT_EQ(mi_model_load_buffer(buf.data(), buf.size(), nullptr, "f3.onnx", &o, &m), nullptr);
  for (const char *tiles : {"3", (const char *)nullptr}) {
    SCOPED_TRACE(tiles ? "F(3x3) asked" : "the rules (F(4x4) for this map)");
    if (tiles) setenv("MEDINFER_WINOGRAD", tiles, 1);
    mi_tensor *in = nullptr, *out = nullptr;
    EXPECT_EQ(mi_tensor_wrap(MI_FLOAT, 4, dims.data(), x.data(), &in), nullptr);
    mi_status *st = mi_model_run(m, &in, 1, &out, 1);
    unsetenv("MEDINFER_WINOGRAD");
    EXPECT_EQ(st, nullptr) << (st ? mi_status_message(st) : "");
    if (!st) {
      const float *p = static_cast<const float *>(mi_tensor_cdata(out));
      expect_close(std::vector<float>(p, p + mi_tensor_numel(out)), ref, 1e-4f);
    }
    mi_status_free(st);
    mi_tensor_free(in);
    mi_tensor_free(out);
  }
  mi_model_free(m);
}

// A map too small for the fused pool's window: a named error, as the
// MaxPool gives unfused.
TEST(NormFusion, MaxPoolFusedIntoConvTooSmallIsAnError) {
  Model md;
  md.inputs.push_back({"x", 1, {1, 16, 3, 3}});
  md.outputs.push_back({"y", 1, {}});
  md.inits.push_back(onnxb::float_tensor("w", {8, 16, 3, 3}, rnd(8 * 16 * 9, 61)));
  md.nodes.push_back({"Conv", "conv", {"x", "w"}, {"c"}, {onnxb::attr_ints("kernel_shape", {3, 3})}});
  md.nodes.push_back({"MaxPool", "pool", {"c"}, {"y"},
                      {onnxb::attr_ints("kernel_shape", {2, 2}), onnxb::attr_ints("strides", {2, 2})}});
  auto buf = md.serialize();
  for (bool fast : {true, false}) {
    SCOPED_TRACE(fast ? "fast" : "exact");
    mi_options o;
    mi_options_default(&o);
    o.fast_math = fast;
    mi_model *m = nullptr;
    mi_status *st = mi_model_load_buffer(buf.data(), buf.size(), nullptr, "small.onnx", &o, &m);
    if (!st) {
      std::vector<int64_t> dims = {1, 16, 3, 3};
      auto x = rnd(16 * 9, 62);
      mi_tensor *in = nullptr, *out = nullptr;
      EXPECT_EQ(mi_tensor_wrap(MI_FLOAT, 4, dims.data(), x.data(), &in), nullptr);
      st = mi_model_run(m, &in, 1, &out, 1);
      mi_tensor_free(in);
      mi_tensor_free(out);
      mi_model_free(m);
    }
    ASSERT_NE(st, nullptr);
    const std::string msg = mi_status_message(st);
    EXPECT_NE(msg.find(fast ? "'conv'" : "'pool'"), std::string::npos) << msg;
    if (fast) {
      EXPECT_NE(msg.find("smaller than the 2x2 window of its fused MaxPool"), std::string::npos) << msg;
    }
    mi_status_free(st);
  }
}

// A model whose input has more channels than the normalisation and the
// convolution take: a named error at load, with the pool moved (the pool
// checks its prologue) or not.
TEST(NormFusion, PoolBeforePointwiseConvChannelMismatchIsAnError) {
  Model md;
  md.inputs.push_back({"x", 1, {1, 8, 8, 8}});
  md.outputs.push_back({"y", 1, {}});
  for (const char *p : {"s", "b", "mean", "var"}) md.inits.push_back(onnxb::float_tensor(p, {6}, rnd(6, 51, 0.5f, 1.5f)));
  md.inits.push_back(onnxb::float_tensor("w", {4, 6, 1, 1}, rnd(24, 52)));
  md.nodes.push_back({"BatchNormalization", "norm", {"x", "s", "b", "mean", "var"}, {"n"}, {}});
  md.nodes.push_back({"Relu", "relu", {"n"}, {"r"}, {}});
  md.nodes.push_back({"Conv", "conv", {"r", "w"}, {"c"}, {}});
  md.nodes.push_back({"AveragePool", "pool", {"c"}, {"y"},
                      {onnxb::attr_ints("kernel_shape", {2, 2}), onnxb::attr_ints("strides", {2, 2})}});
  const auto buf = md.serialize();
  for (bool optimize : {true, false}) {
    mi_options o;
    mi_options_default(&o);
    o.optimize = optimize;
    mi_model *m = nullptr;
    mi_status *st = mi_model_load_buffer(buf.data(), buf.size(), nullptr, "mismatch.onnx", &o, &m);
    ASSERT_NE(st, nullptr);
    const std::string msg = mi_status_message(st);  // the pool (its prologue) or the normalisation itself
    EXPECT_NE(msg.find(optimize ? "8 channels; the BatchNormalization folded into this node" : "has 6 elements, expected 8"),
              std::string::npos)
        << msg;
    mi_status_free(st);
    mi_model_free(m);
  }
}

// A 3D U-Net's planes: many times the kernel's 4096-value moment blocks (and
// a tail), far from zero and with a trend across the plane, so that the
// blocks' means differ: the moments, combined block by block, must match a
// double-precision reference of the same float input.  The input comes
// through an Abs (positive values: unchanged) and the output leaves through
// two Negs, so that the normalization runs in place on an intermediate, as
// after a U-Net's convolutions.
TEST(NormFusion, InstanceNormLargePlanesMatchReference) {
  const int64_t N = 1, CH = 3, D = 23, H = 29, W = 31, P = D * H * W;
  std::vector<float> x = rnd(size_t(N * CH * P), 21, -0.5f, 0.5f);
  for (int64_t c = 0; c < CH; c++)
    for (int64_t k = 0; k < P; k++) x[size_t(c * P + k)] += 1000.f * float(c + 1) + 3.f * float(k) / float(P);
  const auto s = rnd(size_t(CH), 22, 0.5f, 1.5f), b = rnd(size_t(CH), 23);
  Model md;
  md.inputs.push_back({"x", 1, {N, CH, D, H, W}});
  md.outputs.push_back({"y", 1, {}});
  md.inits.push_back(onnxb::float_tensor("s", {CH}, s));
  md.inits.push_back(onnxb::float_tensor("b", {CH}, b));
  md.nodes.push_back({"Abs", "abs", {"x"}, {"a"}, {}});
  md.nodes.push_back({"InstanceNormalization", "norm", {"a", "s", "b"}, {"n"}, {onnxb::attr_float("epsilon", 1e-5f)}});
  md.nodes.push_back({"LeakyRelu", "act", {"n"}, {"l"}, {onnxb::attr_float("alpha", 0.01f)}});
  md.nodes.push_back({"Neg", "neg1", {"l"}, {"m"}, {}});
  md.nodes.push_back({"Neg", "neg2", {"m"}, {"y"}, {}});
  const auto y = run(md, true, {N, CH, D, H, W}, x);
  std::vector<float> ref(x.size());
  for (int64_t c = 0; c < CH; c++) {
    double m = 0, v = 0;
    for (int64_t k = 0; k < P; k++) m += x[size_t(c * P + k)];
    m /= double(P);
    for (int64_t k = 0; k < P; k++) v += (x[size_t(c * P + k)] - m) * (x[size_t(c * P + k)] - m);
    v /= double(P);
    for (int64_t k = 0; k < P; k++) {
      const double t = (x[size_t(c * P + k)] - m) / std::sqrt(v + 1e-5) * s[size_t(c)] + b[size_t(c)];
      ref[size_t(c * P + k)] = float(t >= 0 ? t : 0.01 * t);
    }
  }
  // |x| up to 3000 with a spread of about 1: float inputs hold 2.4e-4 of it.
  expect_close(y, ref, 2e-3f);
}

// 1 -> 6 channels, 3x3x3, pad 1, 3D: no longer the depthwise loops.
TEST(NormFusion, SingleChannelConv3dMatchesReference) {
  const int64_t M = 6, D = 9, H = 8, W = 10;
  const auto w = rnd(size_t(M * 27), 11), bias = rnd(size_t(M), 12), x = rnd(size_t(D * H * W), 13);
  Model md;
  md.inputs.push_back({"x", 1, {1, 1, D, H, W}});
  md.outputs.push_back({"y", 1, {}});
  md.inits.push_back(onnxb::float_tensor("w", {M, 1, 3, 3, 3}, w));
  md.inits.push_back(onnxb::float_tensor("bias", {M}, bias));
  md.nodes.push_back({"Conv", "conv", {"x", "w", "bias"}, {"y"}, {onnxb::attr_ints("pads", {1, 1, 1, 1, 1, 1})}});
  const auto y = run(md, true, {1, 1, D, H, W}, x);
  std::vector<float> ref(size_t(M * D * H * W));
  for (int64_t m = 0; m < M; m++)
    for (int64_t z = 0; z < D; z++)
      for (int64_t i = 0; i < H; i++)
        for (int64_t j = 0; j < W; j++) {
          double s = bias[size_t(m)];
          for (int64_t a = 0; a < 3; a++)
            for (int64_t b = 0; b < 3; b++)
              for (int64_t c = 0; c < 3; c++) {
                int64_t zz = z + a - 1, ii = i + b - 1, jj = j + c - 1;
                if (zz < 0 || zz >= D || ii < 0 || ii >= H || jj < 0 || jj >= W) continue;
                s += double(w[size_t(m * 27 + a * 9 + b * 3 + c)]) * x[size_t((zz * H + ii) * W + jj)];
              }
          ref[size_t(((m * D + z) * H + i) * W + j)] = float(s);
        }
  expect_close(y, ref, 1e-5f);
}

}  // namespace
