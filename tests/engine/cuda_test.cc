// CUDA backend: the same small networks on the CPU and the GPU agree within
// rtol 1e-3 (FP32) and within the stated fast-math tolerance (TF32).  Without
// a GPU (or without CUDA in the build) every GPU test skips, saying why.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "medinfer/engine.h"
#include "onnx_builder.h"

using onnxb::Model;

namespace {

std::string take_msg(mi_status *st) {
  std::string s = mi_status_message(st);
  mi_status_free(st);
  return s;
}

// Empty string when a GPU is usable, else the reason.
std::string no_gpu_reason() {
  int count = 0;
  mi_status *st = mi_cuda_device_count(&count);
  if (st) return take_msg(st);
  return count > 0 ? "" : "no CUDA device";
}

#define REQUIRE_GPU()                                                     \
  do {                                                                    \
    std::string why_ = no_gpu_reason();                                   \
    if (!why_.empty()) GTEST_SKIP() << "CUDA tests skipped: " << why_;    \
  } while (0)

std::vector<float> random_floats(size_t n, unsigned seed, float lo = -1.f, float hi = 1.f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (auto &x : v) x = d(rng);
  return v;
}

// Loads `md` for the given device; *st is the load's status (nullptr: loaded).
mi_model *load_on(const Model &md, int device, int fast_math, mi_status **st) {
  auto buf = md.serialize();
  mi_options opt;
  mi_options_default(&opt);
  opt.device = device;
  opt.fast_math = fast_math;
  mi_model *m = nullptr;
  *st = mi_model_load_buffer(buf.data(), buf.size(), nullptr, "test", &opt, &m);
  return m;
}

// Runs `md` on one float input on the given device; returns output 0.
std::vector<float> run_on(const Model &md, int device, int fast_math, const std::vector<int64_t> &shape,
                          const std::vector<float> &x, std::vector<int64_t> *out_dims = nullptr) {
  mi_status *st = nullptr;
  mi_model *m = load_on(md, device, fast_math, &st);
  EXPECT_EQ(st, nullptr) << (st ? take_msg(st) : "");
  if (!m) return {};
  mi_tensor *in = nullptr;
  st = mi_tensor_wrap(MI_FLOAT, (int)shape.size(), shape.data(), const_cast<float *>(x.data()), &in);
  EXPECT_EQ(st, nullptr);
  mi_tensor *out[4] = {nullptr};
  st = mi_model_run(m, &in, 1, out, mi_model_num_outputs(m));
  EXPECT_EQ(st, nullptr) << (st ? take_msg(st) : "");
  std::vector<float> y;
  if (out[0]) {
    const float *p = (const float *)mi_tensor_cdata(out[0]);
    y.assign(p, p + mi_tensor_numel(out[0]));
    if (out_dims) out_dims->assign(mi_tensor_dims(out[0]), mi_tensor_dims(out[0]) + mi_tensor_ndim(out[0]));
  }
  for (int i = 0; i < mi_model_num_outputs(m); i++) mi_tensor_free(out[i]);
  mi_tensor_free(in);
  mi_model_free(m);
  return y;
}

void expect_close(const std::vector<float> &ref, const std::vector<float> &got, double rtol, double atol) {
  ASSERT_EQ(ref.size(), got.size());
  ASSERT_FALSE(ref.empty());
  size_t bad = 0;
  double worst = 0;
  for (size_t i = 0; i < ref.size(); i++) {
    double d = std::fabs((double)ref[i] - got[i]);
    if (d > atol + rtol * std::fabs((double)ref[i])) bad++;
    worst = std::max(worst, d);
  }
  EXPECT_EQ(bad, 0u) << "max abs difference " << worst;
}

void compare(const Model &md, const std::vector<int64_t> &shape, unsigned seed) {
  size_t n = 1;
  for (auto d : shape) n *= (size_t)d;
  auto x = random_floats(n, seed);
  std::vector<int64_t> dc, dg;
  auto ref = run_on(md, MI_DEVICE_CPU, 0, shape, x, &dc);
  auto got = run_on(md, MI_DEVICE_CUDA, 0, shape, x, &dg);
  EXPECT_EQ(dc, dg);
  expect_close(ref, got, 1e-3, 1e-5);
}

onnxb::Tensor weights(const std::string &name, std::vector<int64_t> dims, unsigned seed, float scale = 0.5f) {
  size_t n = 1;
  for (auto d : dims) n *= (size_t)d;
  return onnxb::float_tensor(name, dims, random_floats(n, seed, -scale, scale));
}

// Conv + BN + Relu, MaxPool, residual Add, GlobalAveragePool, Flatten, Gemm, Softmax.
Model resnet_block_2d() {
  Model m;
  m.inputs.push_back({"x", 1, {-1, 3, 16, 16}});
  m.outputs.push_back({"y", 1, {}});
  m.inits.push_back(weights("w1", {8, 3, 3, 3}, 1));
  m.inits.push_back(weights("b1", {8}, 2));
  m.inits.push_back(weights("s", {8}, 3));
  m.inits.push_back(weights("bb", {8}, 4));
  m.inits.push_back(weights("mu", {8}, 5));
  m.inits.push_back(onnxb::float_tensor("var", {8}, random_floats(8, 6, 0.5f, 1.5f)));
  m.inits.push_back(weights("w2", {8, 8, 3, 3}, 7));
  m.inits.push_back(weights("fc", {5, 8}, 8));
  m.inits.push_back(weights("fcb", {5}, 9));
  using onnxb::attr_ints;
  m.nodes.push_back({"Conv", "c1", {"x", "w1", "b1"}, {"c1"}, {attr_ints("pads", {1, 1, 1, 1}), attr_ints("strides", {2, 2})}});
  m.nodes.push_back({"BatchNormalization", "bn", {"c1", "s", "bb", "mu", "var"}, {"bn"}, {}});
  m.nodes.push_back({"Relu", "r1", {"bn"}, {"r1"}, {}});
  m.nodes.push_back({"Conv", "c2", {"r1", "w2"}, {"c2"}, {attr_ints("pads", {1, 1, 1, 1})}});
  m.nodes.push_back({"Add", "add", {"c2", "r1"}, {"a"}, {}});
  m.nodes.push_back({"Relu", "r2", {"a"}, {"r2"}, {}});
  m.nodes.push_back({"MaxPool", "mp", {"r2"}, {"mp"}, {attr_ints("kernel_shape", {3, 3}), attr_ints("strides", {2, 2}), attr_ints("pads", {1, 1, 1, 1})}});
  m.nodes.push_back({"GlobalAveragePool", "gap", {"mp"}, {"gap"}, {}});
  m.nodes.push_back({"Flatten", "fl", {"gap"}, {"fl"}, {}});
  m.nodes.push_back({"Gemm", "fc", {"fl", "fc", "fcb"}, {"logits"}, {onnxb::attr_int("transB", 1)}});
  m.nodes.push_back({"Softmax", "sm", {"logits"}, {"y"}, {onnxb::attr_int("axis", 1)}});
  return m;
}

// 3D U-Net step: strided Conv3d, InstanceNorm, LeakyRelu, ConvTranspose3d, Concat skip.
Model unet_3d() {
  Model m;
  m.inputs.push_back({"x", 1, {1, 2, 12, 12, 12}});
  m.outputs.push_back({"y", 1, {}});
  m.inits.push_back(weights("w1", {4, 2, 3, 3, 3}, 11));
  m.inits.push_back(weights("w2", {8, 4, 3, 3, 3}, 12));
  m.inits.push_back(weights("g", {8}, 13));
  m.inits.push_back(weights("be", {8}, 14));
  m.inits.push_back(weights("wt", {8, 4, 2, 2, 2}, 15));
  m.inits.push_back(weights("bt", {4}, 16));
  m.inits.push_back(weights("w3", {3, 8, 1, 1, 1}, 17));
  using onnxb::attr_ints;
  m.nodes.push_back({"Conv", "c1", {"x", "w1"}, {"c1"}, {attr_ints("pads", {1, 1, 1, 1, 1, 1})}});
  m.nodes.push_back({"LeakyRelu", "l1", {"c1"}, {"l1"}, {onnxb::attr_float("alpha", 0.01f)}});
  m.nodes.push_back({"Conv", "c2", {"l1", "w2"}, {"c2"}, {attr_ints("pads", {1, 1, 1, 1, 1, 1}), attr_ints("strides", {2, 2, 2})}});
  m.nodes.push_back({"InstanceNormalization", "in", {"c2", "g", "be"}, {"in"}, {}});
  m.nodes.push_back({"LeakyRelu", "l2", {"in"}, {"l2"}, {onnxb::attr_float("alpha", 0.01f)}});
  m.nodes.push_back({"ConvTranspose", "up", {"l2", "wt", "bt"}, {"up"}, {attr_ints("strides", {2, 2, 2})}});
  m.nodes.push_back({"Concat", "cat", {"up", "l1"}, {"cat"}, {onnxb::attr_int("axis", 1)}});
  m.nodes.push_back({"Conv", "c3", {"cat", "w3"}, {"y"}, {}});
  return m;
}

// Normalizations carrying what the graph passes fuse into them: InstanceNorm
// with a residual Add and LeakyRelu, BatchNorm (no Conv to fold into) with Relu.
Model fused_norms() {
  Model m;
  m.inputs.push_back({"x", 1, {-1, 4, 5, 7}});
  m.outputs.push_back({"y", 1, {}});
  m.inits.push_back(weights("g", {4}, 31));
  m.inits.push_back(weights("be", {4}, 32));
  m.inits.push_back(weights("s", {4}, 33));
  m.inits.push_back(weights("bb", {4}, 34));
  m.inits.push_back(weights("mu", {4}, 35));
  m.inits.push_back(onnxb::float_tensor("var", {4}, random_floats(4, 36, 0.5f, 1.5f)));
  m.nodes.push_back({"InstanceNormalization", "in", {"x", "g", "be"}, {"in"}, {}});
  m.nodes.push_back({"Add", "add", {"in", "x"}, {"a"}, {}});
  m.nodes.push_back({"LeakyRelu", "lr", {"a"}, {"lr"}, {onnxb::attr_float("alpha", 0.1f)}});
  m.nodes.push_back({"BatchNormalization", "bn", {"lr", "s", "bb", "mu", "var"}, {"bn"}, {}});
  m.nodes.push_back({"Relu", "r", {"bn"}, {"y"}, {}});
  return m;
}

// Bilinear Resize, Transpose, MatMul, ReduceMean, Sigmoid, Slice-free shape ops.
Model misc_ops() {
  Model m;
  m.opset = 13;
  m.inputs.push_back({"x", 1, {2, 3, 5, 7}});
  m.outputs.push_back({"y", 1, {}});
  m.inits.push_back(onnxb::float_tensor("roi", {0}, {}));
  m.inits.push_back(onnxb::float_tensor("scales", {4}, {1.f, 1.f, 2.f, 2.f}));
  m.inits.push_back(weights("mm", {14, 6}, 21));
  m.inits.push_back(onnxb::int64_tensor("axes", {1}, {1}));
  onnxb::Attr mode;
  mode.name = "mode";
  mode.type = 3;
  mode.s = "linear";
  m.nodes.push_back({"Resize", "rs", {"x", "roi", "scales"}, {"rs"}, {mode}});
  m.nodes.push_back({"Transpose", "tr", {"rs"}, {"tr"}, {onnxb::attr_ints("perm", {0, 2, 1, 3})}});
  m.nodes.push_back({"MatMul", "mm", {"tr", "mm"}, {"mmo"}, {}});
  m.nodes.push_back({"Sigmoid", "sg", {"mmo"}, {"sg"}, {}});
  m.nodes.push_back({"ReduceMean", "rm", {"sg"}, {"y"}, {onnxb::attr_ints("axes", {2}), onnxb::attr_int("keepdims", 0)}});
  return m;
}

TEST(Cuda, DeviceCountExplainsAbsence) {
  int count = -1;
  mi_status *st = mi_cuda_device_count(&count);
  if (st) {
    EXPECT_EQ(count, 0);
    EXPECT_FALSE(std::string(mi_status_message(st)).empty());
    mi_status_free(st);
  } else {
    EXPECT_GT(count, 0);
  }
}

TEST(Cuda, LoadWithoutGpuIsAClearError) {
  if (no_gpu_reason().empty()) GTEST_SKIP() << "a GPU is present: the no-GPU path is not reachable here";
  mi_status *st = nullptr;
  mi_model *m = load_on(resnet_block_2d(), MI_DEVICE_CUDA, 0, &st);
  ASSERT_NE(st, nullptr);
  EXPECT_EQ(m, nullptr);
  EXPECT_NE(std::string(mi_status_message(st)).find("CUDA"), std::string::npos) << mi_status_message(st);
  mi_status_free(st);
}

TEST(Cuda, ResNetBlockMatchesCpu) {
  REQUIRE_GPU();
  compare(resnet_block_2d(), {1, 3, 16, 16}, 101);
  compare(resnet_block_2d(), {4, 3, 16, 16}, 102); // batched GEMM path, re-planned shape
}

TEST(Cuda, UNet3dMatchesCpu) {
  REQUIRE_GPU();
  compare(unet_3d(), {1, 2, 12, 12, 12}, 103);
}

TEST(Cuda, FusedNormalizationsMatchCpu) {
  REQUIRE_GPU();
  compare(fused_norms(), {2, 4, 5, 7}, 106);
}

// Conv over random geometry (1D/2D/3D, strides, dilations, asymmetric pads,
// batches, channel counts on both sides of the implicit GEMM's 32-channel and
// 8-row K steps, output sizes not a multiple of 4, 7x5 kernels), with bias, a residual and
// LeakyRelu after it, against the CPU engine: on the implicit GEMM, and on
// im2col + cuBLAS (MEDINFER_CUDA_IGEMM, read at each call).
TEST(Cuda, ConvRandomGeometryMatchesCpu) {
  REQUIRE_GPU();
  std::mt19937 rng(20261204);
  auto pick = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  for (int trial = 0; trial < 36; trial++) {
    const int nsp = 1 + trial % 3, N = pick(1, 3), C = pick(1, 20), M = trial % 4 == 0 ? pick(33, 80) : pick(1, 40);
    std::vector<int64_t> xd = {N, C}, wd = {M, C}, yd = {N, M}, k, st, dl, pads(2 * nsp);
    const bool wide = trial % 6 == 4;  // 2D, 7x5: more taps than the kernel's 32-bit tap masks
    for (int i = 0; i < nsp; i++) {
      k.push_back(wide ? 7 - 2 * i : pick(1, 3)), st.push_back(pick(1, 2)), dl.push_back(pick(1, 3) == 3 ? 2 : 1);
      const int64_t dk = (k[i] - 1) * dl[i] + 1;
      pads[i] = pick(0, (int)std::min<int64_t>(2, dk - 1)), pads[nsp + i] = pick(0, (int)std::min<int64_t>(2, dk - 1));
      const int64_t in = std::max<int64_t>(dk, pick(nsp == 3 ? 3 : 5, nsp == 3 ? 11 : nsp == 2 ? 23 : 70));
      xd.push_back(in), wd.push_back(k[i]);
      yd.push_back((in + pads[i] + pads[nsp + i] - dk) / st[i] + 1);
    }
    size_t ny = 1;
    for (auto v : yd) ny *= (size_t)v;
    Model m;
    m.inputs.push_back({"x", 1, xd});
    m.outputs.push_back({"y", 1, {}});
    m.inits.push_back(weights("w", wd, 1000 + trial));
    m.inits.push_back(weights("b", {M}, 2000 + trial));
    m.inits.push_back(onnxb::float_tensor("r", yd, random_floats(ny, 3000 + trial)));
    using onnxb::attr_ints;
    m.nodes.push_back({"Conv", "c", {"x", "w", "b"}, {"c"},
                       {attr_ints("kernel_shape", k), attr_ints("strides", st), attr_ints("dilations", dl),
                        attr_ints("pads", pads)}});
    m.nodes.push_back({"Add", "add", {"c", "r"}, {"a"}, {}});
    m.nodes.push_back({"LeakyRelu", "lr", {"a"}, {"y"}, {onnxb::attr_float("alpha", 0.1f)}});
    for (const char *igemm : {"1", "0"}) {
      SCOPED_TRACE("trial " + std::to_string(trial) + ", MEDINFER_CUDA_IGEMM=" + igemm);
      setenv("MEDINFER_CUDA_IGEMM", igemm, 1);
      compare(m, xd, 4000 + trial);
    }
    unsetenv("MEDINFER_CUDA_IGEMM");
  }
}

// --profile on a GPU: each node's device time (events on the model's stream),
// the 3D U-Net step's convolutions with their FLOP counts.
TEST(Cuda, ProfileTimesDeviceNodes) {
  REQUIRE_GPU();
  mi_status *st = nullptr;
  mi_model *m = load_on(unet_3d(), MI_DEVICE_CUDA, 0, &st);
  ASSERT_EQ(st, nullptr) << take_msg(st);
  ASSERT_EQ(mi_model_set_profiling(m, 1), nullptr);
  const std::vector<int64_t> shape = {1, 2, 12, 12, 12};
  auto x = random_floats(2 * 12 * 12 * 12, 109);
  mi_tensor *in = nullptr;
  ASSERT_EQ(mi_tensor_wrap(MI_FLOAT, 5, shape.data(), x.data(), &in), nullptr);
  for (int r = 0; r < 2; r++) {
    mi_tensor *out[1] = {nullptr};
    st = mi_model_run(m, &in, 1, out, 1);
    ASSERT_EQ(st, nullptr) << take_msg(st);
    mi_tensor_free(out[0]);
  }
  char *text = nullptr;
  size_t len = 0;
  FILE *f = open_memstream(&text, &len);
  ASSERT_NE(f, nullptr);
  st = mi_model_write_profile(m, f, 0);
  fclose(f);
  const std::string out(text, len);
  free(text);
  ASSERT_EQ(st, nullptr) << take_msg(st);
  EXPECT_NE(out.find("profile: 2 runs"), std::string::npos) << out;
  const size_t row = out.find("  Conv ");
  ASSERT_NE(row, std::string::npos) << out;
  int nodes = 0;
  double mean = -1, best = -1;
  ASSERT_EQ(sscanf(out.c_str() + row, " Conv %d %lf %lf", &nodes, &mean, &best), 3) << out;
  EXPECT_EQ(nodes, 3);
  EXPECT_GT(best, 0.0) << out;
  EXPECT_LE(best, mean) << out;
  mi_tensor_free(in);
  mi_model_free(m);
}

TEST(Cuda, ResizeMatMulReduceMatchCpu) {
  REQUIRE_GPU();
  compare(misc_ops(), {2, 3, 5, 7}, 104);
}

TEST(Cuda, FastMathWithinStatedTolerance) {
  REQUIRE_GPU();
  // TF32 keeps 10 mantissa bits: results within rtol 1e-2 (atol 1e-3) of FP32.
  Model md = unet_3d();
  auto x = random_floats(2 * 12 * 12 * 12, 105);
  auto ref = run_on(md, MI_DEVICE_CPU, 0, {1, 2, 12, 12, 12}, x);
  auto fast = run_on(md, MI_DEVICE_CUDA, 1, {1, 2, 12, 12, 12}, x);
  expect_close(ref, fast, 1e-2, 1e-3);
}

TEST(Cuda, OperatorsWithoutKernelRunOnTheCpu) {
  REQUIRE_GPU();
  // CumSum has no CUDA kernel: it runs on the host between device nodes.
  Model m;
  m.inputs.push_back({"x", 1, {2, 6}});
  m.outputs.push_back({"y", 1, {}});
  m.nodes.push_back({"Relu", "r", {"x"}, {"r"}, {}});
  m.nodes.push_back({"CumSum", "cs", {"r", "ax"}, {"c"}, {}});
  m.nodes.push_back({"Sigmoid", "s", {"c"}, {"y"}, {}});
  m.inits.push_back(onnxb::int64_tensor("ax", {}, {1}));
  compare(m, {2, 6}, 106);
  mi_status *st = nullptr;
  mi_model *mm = load_on(m, MI_DEVICE_CUDA, 0, &st);
  ASSERT_EQ(st, nullptr) << take_msg(st);
  char host[128];
  mi_model_cpu_fallback_ops(mm, host, sizeof host);
  EXPECT_STREQ(host, "CumSum");
  mi_model_free(mm);
}

TEST(Cuda, DataDependentTailRunsOnTheCpu) {
  REQUIRE_GPU();
  // Exp on the device, then NonZero and the Gather after it (shapes known
  // only from the data) in the eager tail on the host.
  Model m;
  m.inputs.push_back({"x", 1, {8}});
  m.outputs.push_back({"y", 1, {}});
  m.nodes.push_back({"Exp", "e", {"x"}, {"ex"}, {}});
  m.nodes.push_back({"Greater", "g", {"ex", "one"}, {"mask"}, {}});
  m.nodes.push_back({"NonZero", "nz", {"mask"}, {"idx"}, {}});
  m.nodes.push_back({"Gather", "ga", {"ex", "idx"}, {"sel"}, {onnxb::attr_int("axis", 0)}});
  m.nodes.push_back({"Reshape", "rs", {"sel", "flat"}, {"y"}, {}});
  m.inits.push_back(onnxb::float_tensor("one", {}, {1.f}));
  m.inits.push_back(onnxb::int64_tensor("flat", {1}, {-1}));
  for (unsigned seed : {107u, 108u}) compare(m, {8}, seed);
}

}  // namespace
