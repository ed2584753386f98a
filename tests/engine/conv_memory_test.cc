// Conv / ConvTranspose on 3D volumes: the im2col / col2im buffer must be tiled
// (never the whole column matrix), results must match a direct reference, and
// bad geometry must be refused with a message instead of crashing.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "medinfer/engine.h"
#include "onnx_builder.h"

using onnxb::Model;

namespace {

std::vector<float> random_floats(size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(-1.f, 1.f);
  std::vector<float> v(n);
  for (auto &x : v) x = d(rng);
  return v;
}

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
