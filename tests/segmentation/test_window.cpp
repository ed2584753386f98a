// Sliding window with an identity network (1x1x1 convolution, weight 1): the
// Gaussian-weighted blend of overlapping patches must give the input back,
// whatever the overlap, batching, mirroring or padding, with the network run
// on this thread or pipelined on a second one.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "medinfer/engine.h"
#include "medinfer/segmentation.h"

namespace {

mi_model *load(const char *name) {
  std::string p = std::string(MI_SEG_TEST_MODELS) + "/" + name;
  mi_options o;
  mi_options_default(&o);
  o.threads = 2;
  mi_model *m = nullptr;
  mi_status *st = mi_model_load_file(p.c_str(), &o, &m);
  EXPECT_EQ(st, nullptr) << mi_status_message(st);
  mi_status_free(st);
  return m;
}

std::vector<float> random_volume(const int64_t d[3]) {
  std::mt19937 rng(42);
  std::uniform_real_distribution<float> u(-3, 3);
  std::vector<float> v((size_t)(d[0] * d[1] * d[2]));
  for (float &x : v) x = u(rng);
  return v;
}

struct Case {
  int64_t dims[3], patch[3];
  double overlap;
  int batch, mirror, mode_2d;
};

void expect_identity(mi_model *m, const Case &c, int pipelined) {
  std::vector<float> v = random_volume(c.dims);
  mi_window_params p = {};
  p.pipelined = pipelined;
  p.mode_2d = c.mode_2d;
  for (int a = 0; a < 3; ++a) p.patch[a] = c.patch[a];
  p.overlap = c.overlap;
  p.batch = c.batch;
  p.sigma_scale = 0.125;
  p.mirroring = c.mirror;
  p.pad_value = -1000;
  p.activation = MI_ACTIVATION_NONE;
  int calls = 0;
  double last = 0;
  p.progress = [](void *u, double f, const char *) {
    auto *s = static_cast<std::pair<int *, double *> *>(u);
    ++*s->first;
    EXPECT_GE(f, *s->second);
    *s->second = f;
    return 0;
  };
  std::pair<int *, double *> state{&calls, &last};
  p.progress_user = &state;
  float *out = nullptr;
  int C = 0;
  mi_status *st = mi_sliding_window(m, v.data(), c.dims, &p, &out, &C);
  ASSERT_EQ(st, nullptr) << mi_status_message(st);
  ASSERT_EQ(C, 1);
  double worst = 0;
  for (size_t i = 0; i < v.size(); ++i) worst = std::max(worst, (double)std::fabs(out[i] - v[i]));
  EXPECT_LT(worst, 1e-5) << c.dims[0] << "x" << c.dims[1] << "x" << c.dims[2] << (pipelined ? " pipelined" : "");
  EXPECT_GT(calls, 0);
  EXPECT_DOUBLE_EQ(last, 1.0);
  free(out);
}

void expect_identity(mi_model *m, const Case &c) {
  expect_identity(m, c, 0);
  expect_identity(m, c, 1);
}

}  // namespace

// A pointwise network gives every patch the same value at a voxel, so the
// blend is the network's softmax there: three channels (x, 0.25 - x, x / 2),
// patches of 47 x 40 x 24 voxels (the softmax's runs of voxels end short,
// whole or in thirds), with and without mirroring, on this thread and
// pipelined, activated and blended by one host thread or split between three.
TEST(SlidingWindow, SoftmaxOfAPointwiseNetwork) {
  mi_model *m = load("pointwise3.onnx");
  ASSERT_NE(m, nullptr);
  const int64_t dims[3] = {70, 60, 40};
  std::vector<float> v = random_volume(dims);
  const size_t nv = v.size();
  for (int mirror = 0; mirror < 2; ++mirror)
    for (int pipelined = 0; pipelined < 2; ++pipelined)
      for (int threads : {1, 3}) {
        mi_window_params p = {};
        p.pipelined = pipelined;
        p.threads = threads;
        p.patch[0] = 47, p.patch[1] = 40, p.patch[2] = 24;
        p.overlap = 0.5;
        p.batch = 2;
        p.sigma_scale = 0.125;
        p.mirroring = mirror;
        p.activation = MI_ACTIVATION_SOFTMAX;
        float *out = nullptr;
        int C = 0;
        mi_status *st = mi_sliding_window(m, v.data(), dims, &p, &out, &C);
        ASSERT_EQ(st, nullptr) << mi_status_message(st);
        ASSERT_EQ(C, 3);
        double worst = 0;
        for (size_t i = 0; i < nv; ++i) {
          const double l[3] = {v[i], 0.25 - v[i], 0.5 * v[i]};
          const double mx = std::max(l[0], std::max(l[1], l[2]));
          const double e[3] = {std::exp(l[0] - mx), std::exp(l[1] - mx), std::exp(l[2] - mx)};
          for (int c = 0; c < 3; ++c)
            worst = std::max(worst, std::fabs(out[c * nv + i] - e[c] / (e[0] + e[1] + e[2])));
        }
        EXPECT_LT(worst, 1e-5) << (mirror ? "mirrored" : "") << (pipelined ? " pipelined " : " ") << threads
                               << " threads";
        free(out);
      }
  mi_model_free(m);
}

TEST(SlidingWindow, Identity3D) {
  mi_model *m = load("identity3d.onnx");
  ASSERT_NE(m, nullptr);
  expect_identity(m, {{37, 29, 23}, {16, 16, 8}, 0.5, 3, 0, 0});
  expect_identity(m, {{37, 29, 23}, {16, 12, 8}, 0.0, 1, 0, 0});
  expect_identity(m, {{37, 29, 23}, {16, 16, 8}, 0.75, 4, 1, 0});  // mirroring
  expect_identity(m, {{10, 9, 5}, {16, 16, 8}, 0.5, 2, 0, 0});     // smaller than a patch: padded
  expect_identity(m, {{16, 16, 8}, {16, 16, 8}, 0.5, 2, 1, 0});    // exactly one patch
  mi_model_free(m);
}

TEST(SlidingWindow, Identity2D) {
  mi_model *m = load("identity2d.onnx");
  ASSERT_NE(m, nullptr);
  expect_identity(m, {{33, 27, 6}, {12, 12, 1}, 0.5, 4, 0, 1});
  expect_identity(m, {{33, 27, 6}, {0, 0, 1}, 0.5, 2, 1, 1});  // whole slices, mirrored
  mi_model_free(m);
}

TEST(SlidingWindow, CancelAndBadShapes) {
  mi_model *m = load("identity3d.onnx");
  ASSERT_NE(m, nullptr);
  const int64_t d[3] = {40, 40, 20};
  std::vector<float> v = random_volume(d);
  mi_window_params p = {};
  p.patch[0] = p.patch[1] = 16, p.patch[2] = 8;
  p.overlap = 0.5, p.batch = 1, p.sigma_scale = 0.125;
  p.progress = [](void *, double f, const char *) { return f > 0.2 ? 1 : 0; };
  float *out = nullptr;
  int C = 0;
  for (int pipelined : {0, 1}) {  // pipelined: cancelled with the next batch in flight
    p.pipelined = pipelined;
    mi_status *st = mi_sliding_window(m, v.data(), d, &p, &out, &C);
    ASSERT_NE(st, nullptr);
    EXPECT_EQ(mi_status_code(st), MI_ERR_CANCELLED);
    EXPECT_EQ(out, nullptr);
    mi_status_free(st);
  }
  p.pipelined = 0;
  mi_status *st = nullptr;
  p.progress = nullptr;
  p.mode_2d = 1;  // a 3D network in 2D mode
  st = mi_sliding_window(m, v.data(), d, &p, &out, &C);
  ASSERT_NE(st, nullptr);
  EXPECT_NE(std::string(mi_status_message(st)).find("5-D input"), std::string::npos) << mi_status_message(st);
  mi_status_free(st);
  mi_model_free(m);
}
