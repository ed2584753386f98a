// Conv / ConvTranspose on 3D volumes: the im2col / col2im buffer must be tiled
// (never the whole column matrix), results must match a direct reference, and
// bad geometry must be refused with a message instead of crashing.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "medinfer/engine.h"
#include "onnx_builder.h"

using onnxb::Model;
using onnxb::random_floats;

namespace {

// Peak resident set since the last reset, in bytes (-1 if unavailable).
long long peak_rss() {
  FILE *f = std::fopen("/proc/self/status", "r");
  if (!f) return -1;
  char line[256];
  long long kb = -1;
  while (std::fgets(line, sizeof line, f))
    if (std::sscanf(line, "VmHWM: %lld kB", &kb) == 1) break;
  std::fclose(f);
  return kb < 0 ? -1 : kb * 1024;
}
// Resets VmHWM to the current RSS (Linux: write "5" to clear_refs).
bool reset_peak_rss() {
  FILE *f = std::fopen("/proc/self/clear_refs", "w");
  if (!f) return false;
  bool ok = std::fputs("5", f) >= 0;
  return std::fclose(f) == 0 && ok;
}

std::string take_msg(mi_status *st, mi_code *code) {
  *code = mi_status_code(st);
  std::string s = mi_status_message(st);
  mi_status_free(st);
  return s;
}

struct Geometry {
  int C, M, D, k, stride, pad;
};

// Runs a single-node model on x; returns output (and its dims).
mi_code run_model(const Model &md, std::vector<int64_t> dims, std::vector<float> &x, std::vector<float> *y,
                  std::vector<int64_t> *yd, std::string *msg, long long *peak_growth) {
  auto buf = md.serialize();
  mi_model *m = nullptr;
  mi_code code;
  *msg = take_msg(mi_model_load_buffer(buf.data(), buf.size(), nullptr, "conv.onnx", nullptr, &m), &code);
  if (code) return code;
  mi_tensor *in = nullptr, *out = nullptr;
  *msg = take_msg(mi_tensor_wrap(MI_FLOAT, (int)dims.size(), dims.data(), x.data(), &in), &code);
  if (!code) {
    bool reset = reset_peak_rss();
    long long before = peak_rss();
    *msg = take_msg(mi_model_run(m, &in, 1, &out, 1), &code);
    long long after = peak_rss();
    if (peak_growth) *peak_growth = reset && before > 0 && after > 0 ? after - before : -1;
    if (!code) {
      const float *p = static_cast<const float *>(mi_tensor_cdata(out));
      y->assign(p, p + mi_tensor_numel(out));
      yd->assign(mi_tensor_dims(out), mi_tensor_dims(out) + mi_tensor_ndim(out));
    }
  }
  mi_tensor_free(in);
  mi_tensor_free(out);
  mi_model_free(m);
  return code;
}

Model single_node(const char *op, const std::vector<int64_t> &wdims, const std::vector<float> &w,
                  std::vector<onnxb::Attr> attrs) {
  Model md;
  md.inputs.push_back({"x", 1, {1, -1, -1, -1, -1}});
  md.outputs.push_back({"y", 1, {}});
  md.inits.push_back(onnxb::float_tensor("w", wdims, w));
  md.nodes.push_back({op, "node", {"x", "w"}, {"y"}, std::move(attrs)});
  return md;
}

}  // namespace

// 16 channels x 64^3 with a 3x3x3 kernel: a full im2col matrix would be
// 16*27 x 64^3 floats = 453 MB.  The tiled kernel must stay far below.
TEST(ConvMemory, Conv3dTilesItsColumnBuffer) {
  const int C = 16, M = 8, D = 64, k = 3;
  auto x = random_floats((size_t)C * D * D * D, 1);
  auto w = random_floats((size_t)M * C * k * k * k, 2);
  Model md = single_node("Conv", {M, C, k, k, k}, w, {onnxb::attr_ints("pads", {1, 1, 1, 1, 1, 1})});
  std::vector<float> y;
  std::vector<int64_t> yd;
  std::string msg;
  long long growth = -1;
  ASSERT_EQ(run_model(md, {1, C, D, D, D}, x, &y, &yd, &msg, &growth), MI_OK) << msg;
  ASSERT_EQ(yd, (std::vector<int64_t>{1, M, D, D, D}));
  const long long full_col = (long long)C * k * k * k * D * D * D * 4;
  if (growth >= 0) {
    EXPECT_LT(growth, 160LL << 20) << "peak RSS grew by " << growth << " bytes; full im2col is " << full_col;
  }
  // Spot-check against a direct double-precision reference.
  std::mt19937 rng(3);
  for (int t = 0; t < 300; t++) {
    int m = rng() % M, z = rng() % D, yy = rng() % D, xx = rng() % D;
    if (t < 8) { z = (t & 1) ? D - 1 : 0; yy = (t & 2) ? D - 1 : 0; xx = (t & 4) ? D - 1 : 0; }
    double s = 0;
    for (int c = 0; c < C; c++)
      for (int a = 0; a < k; a++)
        for (int b = 0; b < k; b++)
          for (int e = 0; e < k; e++) {
            int iz = z + a - 1, iy = yy + b - 1, ix = xx + e - 1;
            if (iz < 0 || iy < 0 || ix < 0 || iz >= D || iy >= D || ix >= D) continue;
            s += (double)w[(((size_t)m * C + c) * k + a) * k * k + b * k + e] *
                 x[(((size_t)c * D + iz) * D + iy) * D + ix];
          }
    size_t o = (((size_t)m * D + z) * D + yy) * D + xx;
    ASSERT_NEAR(y[o], s, 1e-4 + 1e-4 * std::fabs(s)) << "m" << m << " z" << z << " y" << yy << " x" << xx;
  }
}

// ConvTranspose 16 -> 16 channels, 3^3 kernel, stride 2 over 48^3: the full
// col2im buffer would be 16*27 x 48^3 floats = 191 MB.
TEST(ConvMemory, ConvTranspose3dTilesItsColumnBuffer) {
  const int C = 16, M = 16, D = 48, k = 3, s = 2, p = 1;
  const int O = (D - 1) * s - 2 * p + k + 1;  // output_padding 1
  auto x = random_floats((size_t)C * D * D * D, 4);
  auto w = random_floats((size_t)C * M * k * k * k, 5);
  Model md = single_node("ConvTranspose", {C, M, k, k, k}, w,
                         {onnxb::attr_ints("strides", {s, s, s}), onnxb::attr_ints("pads", {p, p, p, p, p, p}),
                          onnxb::attr_ints("output_padding", {1, 1, 1})});
  std::vector<float> y;
  std::vector<int64_t> yd;
  std::string msg;
  long long growth = -1;
  ASSERT_EQ(run_model(md, {1, C, D, D, D}, x, &y, &yd, &msg, &growth), MI_OK) << msg;
  ASSERT_EQ(yd, (std::vector<int64_t>{1, M, O, O, O}));
  if (growth >= 0) {
    EXPECT_LT(growth, 120LL << 20) << "peak RSS grew by " << growth << " bytes";
  }
  std::mt19937 rng(6);
  for (int t = 0; t < 300; t++) {
    int m = rng() % M, z = rng() % O, yy = rng() % O, xx = rng() % O;
    double acc = 0;
    // y[o] = sum over i, kk with i*s - p + kk == o.
    for (int c = 0; c < C; c++)
      for (int a = 0; a < k; a++) {
        int nz = z + p - a;
        if (nz < 0 || nz % s || nz / s >= D) continue;
        for (int b = 0; b < k; b++) {
          int ny = yy + p - b;
          if (ny < 0 || ny % s || ny / s >= D) continue;
          for (int e = 0; e < k; e++) {
            int nx = xx + p - e;
            if (nx < 0 || nx % s || nx / s >= D) continue;
            acc += (double)w[(((size_t)c * M + m) * k + a) * k * k + b * k + e] *
                   x[(((size_t)c * D + nz / s) * D + ny / s) * D + nx / s];
          }
        }
      }
    size_t o = (((size_t)m * O + z) * O + yy) * O + xx;
    ASSERT_NEAR(y[o], acc, 1e-4 + 1e-4 * std::fabs(acc)) << "m" << m << " z" << z << " y" << yy << " x" << xx;
  }
}

// Geometry the kernels cannot honour is refused with a named, clear error.
// Strides equal to the kernel, no padding (a U-Net's upsampling): each output
// value is one input position times one tap, written once with bias,
// residual and activation.  Output (m, o) = b[m] + r + sum_c w[c, m, o % s]
// x[c, o / s] per axis over the channels c of m's group; the residual is a
// second such layer computed first.  Rows of 1 or 2 taps take the direct
// kernels on AVX-512 and AVX2 (gemm/convt.h; conv_memory_test.avx2): rows
// not a multiple of their vectors, channel x tap rows not a multiple of
// their blocks, groups, a batch of 2 and an activation outside their
// registers (Sigmoid) included; other taps, and the portable level
// (conv_memory_test.generic), the column path.
TEST(ConvMemory, ConvTransposeStrideEqualsKernelMatchesReference) {
  enum Post { NONE, RELU_RES, SIGMOID, SIGMOID_RES };
  struct Case {
    std::vector<int64_t> in, k;
    int C, M;
    bool bias;
    Post post;
    int group, N;
  };
  const Case cases[] = {
      {{6, 5, 7}, {2, 2, 2}, 5, 7, true, RELU_RES, 1, 1},
      {{4, 6, 5}, {1, 2, 3}, 3, 4, true, NONE, 1, 1},
      {{3, 4}, {3, 1}, 2, 3, false, NONE, 1, 1},
      {{9, 11}, {2, 2}, 4, 6, true, NONE, 1, 1},
      {{2, 5000}, {2, 2}, 2, 256, true, RELU_RES, 1, 1},  // 20 MB of columns: tiles (16 MB) shorter than a row
      {{3, 4, 21}, {2, 2, 2}, 16, 11, true, SIGMOID, 1, 2},  // rows of 42: 32 + 10 positions; 44 rows (7 blocks + 2)
      {{5, 33}, {1, 2}, 6, 13, true, SIGMOID_RES, 1, 1},     // the residual, then the Sigmoid, on each row
      {{4, 3, 17}, {2, 3, 1}, 9, 5, true, RELU_RES, 1, 1},   // one tap a row: 30 rows (2 blocks + 6)
      {{2, 3, 16}, {2, 2, 2}, 8, 6, true, NONE, 2, 2},      // 2 groups of 4 -> 3 channels
      {{7, 19}, {2, 1}, 12, 9, false, RELU_RES, 3, 1},      // 3 groups, no bias
      {{6, 6, 6}, {2, 2, 2}, 40, 24, true, RELU_RES, 1, 1}, // 6-wide rows: a vector spans 3 of them
      {{3, 5, 1}, {2, 2, 2}, 3, 2, true, SIGMOID, 1, 1},    // 1-wide rows: every lane its own row
  };
  unsigned seed = 30;
  for (const Case &cs : cases) {
    const int nd = (int)cs.in.size(), G = cs.group, Cg = cs.C / G, Mg = cs.M / G;
    SCOPED_TRACE("case with " + std::to_string(nd) + "D input, C " + std::to_string(cs.C) + ", M " +
                 std::to_string(cs.M) + ", group " + std::to_string(G));
    int64_t in_sz = 1, k_sz = 1;
    std::vector<int64_t> out(cs.in.size());
    for (int j = 0; j < nd; j++) in_sz *= cs.in[j], k_sz *= cs.k[j], out[j] = cs.in[j] * cs.k[j];
    const int64_t out_sz = in_sz * k_sz;
    auto x = random_floats(size_t(cs.N * cs.C * in_sz), seed++);
    const auto w1 = random_floats(size_t(cs.C * Mg * k_sz), seed++), w2 = random_floats(size_t(cs.C * Mg * k_sz), seed++);
    const auto b1 = random_floats(size_t(cs.M), seed++);
    std::vector<int64_t> wd = {cs.C, Mg}, xd = {cs.N, cs.C};
    wd.insert(wd.end(), cs.k.begin(), cs.k.end());
    xd.insert(xd.end(), cs.in.begin(), cs.in.end());
    Model md;
    md.inputs.push_back({"x", 1, xd});
    md.outputs.push_back({"y", 1, {}});
    md.inits.push_back(onnxb::float_tensor("w1", wd, w1));
    md.inits.push_back(onnxb::float_tensor("w2", wd, w2));
    md.inits.push_back(onnxb::float_tensor("b1", {cs.M}, b1));
    const std::vector<onnxb::Attr> attrs = {onnxb::attr_ints("strides", cs.k), onnxb::attr_int("group", G)};
    std::vector<std::string> in1 = {"x", "w1"};
    if (cs.bias) in1.push_back("b1");
    const bool res = cs.post == RELU_RES || cs.post == SIGMOID_RES;
    if (res) {
      md.nodes.push_back({"ConvTranspose", "skip", {"x", "w2"}, {"r"}, attrs});
      md.nodes.push_back({"ConvTranspose", "up", in1, {"u"}, attrs});
      md.nodes.push_back({"Add", "add", {"u", "r"}, {"s"}, {}});
      md.nodes.push_back({cs.post == RELU_RES ? "Relu" : "Sigmoid", "act", {"s"}, {"y"}, {}});
    } else if (cs.post == SIGMOID) {
      md.nodes.push_back({"ConvTranspose", "up", in1, {"u"}, attrs});
      md.nodes.push_back({"Sigmoid", "act", {"u"}, {"y"}, {}});
    } else {
      md.nodes.push_back({"ConvTranspose", "up", in1, {"y"}, attrs});
    }
    std::vector<float> y;
    std::vector<int64_t> yd;
    std::string msg;
    ASSERT_EQ(run_model(md, xd, x, &y, &yd, &msg, nullptr), MI_OK) << msg;
    std::vector<int64_t> want = {cs.N, cs.M};
    want.insert(want.end(), out.begin(), out.end());
    ASSERT_EQ(yd, want);
    int bad = 0;
    for (int b = 0; b < cs.N; b++)
      for (int m = 0; m < cs.M; m++)
        for (int64_t o = 0; o < out_sz; o++) {
          int64_t i = 0, kk = 0, rest = o;  // o's coordinates split into input position and tap
          std::vector<int64_t> oc(cs.in.size());
          for (int j = nd - 1; j >= 0; j--) oc[j] = rest % out[j], rest /= out[j];
          for (int j = 0; j < nd; j++) i = i * cs.in[j] + oc[j] / cs.k[j], kk = kk * cs.k[j] + oc[j] % cs.k[j];
          double u = cs.bias ? b1[size_t(m)] : 0, r = 0;
          for (int c = m / Mg * Cg; c < (m / Mg + 1) * Cg; c++) {
            const double xv = x[size_t((b * cs.C + c) * in_sz + i)];
            u += double(w1[size_t((c * Mg + m % Mg) * k_sz + kk)]) * xv;
            r += double(w2[size_t((c * Mg + m % Mg) * k_sz + kk)]) * xv;
          }
          const double s = res ? u + r : u;
          const double want_v = cs.post == RELU_RES ? std::max(s, 0.0) : cs.post == NONE ? s : 1 / (1 + std::exp(-s));
          const float got = y[size_t((b * cs.M + m) * out_sz + o)];
          if (!(std::fabs(got - want_v) <= 1e-4 * (1 + std::fabs(want_v))) && bad++ < 5)
            ADD_FAILURE() << "image " << b << " channel " << m << " output " << o << ": " << got << " vs " << want_v;
        }
  }
}

// Weights that are not the layer's constant (a graph input) are packed for
// the kernel on each call: the output equals that of the same weights held
// as an initializer (packed at load), value for value.
TEST(ConvMemory, ConvTransposeWeightsAsInputMatchConstant) {
  const std::vector<int64_t> xd = {2, 12, 3, 5, 7}, wd = {12, 5, 2, 2, 2};
  auto x = random_floats(size_t(2 * 12 * 3 * 5 * 7), 70);
  auto w = random_floats(size_t(12 * 5 * 8), 71);
  const auto b = random_floats(10, 72);
  std::vector<float> out[2];
  for (int as_input = 0; as_input < 2; as_input++) {
    Model md;
    md.inputs.push_back({"x", 1, xd});
    if (as_input)
      md.inputs.push_back({"w", 1, wd});
    else
      md.inits.push_back(onnxb::float_tensor("w", wd, w));
    md.inits.push_back(onnxb::float_tensor("b", {10}, b));
    md.outputs.push_back({"y", 1, {}});
    md.nodes.push_back({"ConvTranspose", "up", {"x", "w", "b"}, {"y"},
                        {onnxb::attr_ints("strides", {2, 2, 2}), onnxb::attr_int("group", 2)}});
    auto buf = md.serialize();
    mi_model *m = nullptr;
    mi_code code;
    std::string msg = take_msg(mi_model_load_buffer(buf.data(), buf.size(), nullptr, "convt.onnx", nullptr, &m), &code);
    ASSERT_EQ(code, MI_OK) << msg;
    mi_tensor *in[2] = {nullptr, nullptr}, *y = nullptr;
    ASSERT_EQ(mi_status_code(mi_tensor_wrap(MI_FLOAT, 5, xd.data(), x.data(), &in[0])), MI_OK);
    ASSERT_EQ(mi_status_code(mi_tensor_wrap(MI_FLOAT, 5, wd.data(), w.data(), &in[1])), MI_OK);
    msg = take_msg(mi_model_run(m, in, 1 + as_input, &y, 1), &code);
    ASSERT_EQ(code, MI_OK) << msg;
    const float *p = static_cast<const float *>(mi_tensor_cdata(y));
    out[as_input].assign(p, p + mi_tensor_numel(y));
    EXPECT_EQ(out[as_input].size(), size_t(2 * 10 * 6 * 10 * 14));
    mi_tensor_free(in[0]);
    mi_tensor_free(in[1]);
    mi_tensor_free(y);
    mi_model_free(m);
  }
  EXPECT_EQ(out[0], out[1]);
}

TEST(ConvMemory, BadGeometryIsRefused) {
  struct Case {
    const char *what;
    std::vector<int64_t> wdims;
    std::vector<onnxb::Attr> attrs;
    const char *needle;
  };
  std::vector<Case> cases = {
      {"group does not divide channels", {4, 2, 3, 3, 3}, {onnxb::attr_int("group", 3)}, "group"},
      {"kernel larger than input", {4, 6, 9, 9, 9}, {}, "too small"},
      {"kernel_shape disagrees with W", {4, 6, 3, 3, 3}, {onnxb::attr_ints("kernel_shape", {3, 3, 5})}, "kernel_shape"},
      {"zero stride", {4, 6, 3, 3, 3}, {onnxb::attr_ints("strides", {1, 0, 1})}, "strides"},
      {"odd pads count", {4, 6, 3, 3, 3}, {onnxb::attr_ints("pads", {1, 1, 1})}, "pads"},
  };
  for (auto &c : cases) {
    Model md = single_node("Conv", c.wdims, std::vector<float>((size_t)c.wdims[0] * c.wdims[1] * c.wdims[2] *
                                                                    c.wdims[3] * c.wdims[4], 0.5f),
                           c.attrs);
    auto x = random_floats(6 * 5 * 5 * 5, 7);
    std::vector<float> y;
    std::vector<int64_t> yd;
    std::string msg;
    mi_code code = run_model(md, {1, 6, 5, 5, 5}, x, &y, &yd, &msg, nullptr);
    EXPECT_NE(code, MI_OK) << c.what;
    EXPECT_NE(msg.find(c.needle), std::string::npos) << c.what << ": " << msg;
  }
}
