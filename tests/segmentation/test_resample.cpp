// Resampling onto the LPS model grid and back lands on the source voxels:
// a phantom label volume (axial, coronal, sagittal, oblique, gantry tilt)
// taken there and back equals the original away from label boundaries.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "medinfer/phantom.h"
#include "medinfer/segmentation.h"
#include "pipeline_internal.h"
#include "seg_test_util.h"

namespace {

struct Variant {
  const char *name;
  mi_phantom_orientation orientation;
  double tilt;
};

mi_phantom *make(const Variant &v) {
  mi_phantom_options o;
  mi_phantom_options_init(&o);
  o.size[0] = 48, o.size[1] = 44, o.size[2] = 36;
  o.orientation = v.orientation;
  o.gantry_tilt_deg = v.tilt;
  o.noise_sigma = 0;
  o.seed = 5;
  o.threads = 2;
  mi_phantom *p = nullptr;
  mi_status *st = mi_phantom_generate(&o, &p);
  EXPECT_EQ(st, nullptr) << mi_status_message(st);
  mi_status_free(st);
  return p;
}

const Variant kVariants[] = {{"axial", MI_PHANTOM_AXIAL, 0},
                             {"coronal", MI_PHANTOM_CORONAL, 0},
                             {"sagittal", MI_PHANTOM_SAGITTAL, 0},
                             {"oblique", MI_PHANTOM_OBLIQUE, 0},
                             {"tilted", MI_PHANTOM_AXIAL, 15}};

}  // namespace

TEST(Resample, LpsGridCoversTheSource) {
  for (const Variant &v : kVariants) {
    mi_phantom *p = make(v);
    ASSERT_NE(p, nullptr);
    const mi_geometry &g = p->geometry;
    const double sp[3] = {3, 3, 3};
    mi_geometry gm;
    ASSERT_EQ(mi_grid_for(&g, sp, 1, &gm), nullptr);
    for (int a = 0; a < 9; ++a) EXPECT_EQ(gm.direction[a], a % 4 == 0 ? 1.0 : 0.0);
    for (int c = 0; c < 8; ++c) {
      double pt[3], idx[3];
      mi_geometry_index_to_point(&g, (c & 1) ? g.size[0] - 1 : 0, (c & 2) ? g.size[1] - 1 : 0,
                                 (c & 4) ? g.size[2] - 1 : 0, pt);
      mi_geometry_point_to_index(&gm, pt, idx);
      for (int a = 0; a < 3; ++a) {
        EXPECT_GE(idx[a], -0.5) << v.name;
        EXPECT_LE(idx[a], gm.size[a] - 0.5) << v.name;
      }
    }
    mi_phantom_free(p);
  }
}

TEST(Resample, LabelRoundTripLandsOnSourceGrid) {
  for (const Variant &v : kVariants) {
    mi_phantom *p = make(v);
    ASSERT_NE(p, nullptr);
    const mi_geometry &g = p->geometry;
    const size_t n = (size_t)(g.size[0] * g.size[1] * g.size[2]);
    std::vector<uint8_t> truth(p->labels, p->labels + n);
    std::vector<float> f(truth.begin(), truth.end());
    // Finer than the source so every source voxel's value survives.
    const double s = std::min({g.spacing[0], g.spacing[1], g.spacing[2]}) / 2;
    const double sp[3] = {s, s, s};
    mi_geometry gm;
    ASSERT_EQ(mi_grid_for(&g, sp, 1, &gm), nullptr);
    float *there = nullptr, *back = nullptr;
    ASSERT_EQ(mi_resample(&g, f.data(), &gm, 1, 0, 2, &there), nullptr);
    ASSERT_EQ(mi_resample(&gm, there, &g, 1, 255, 2, &back), nullptr);
    std::vector<char> inner = interior_mask(g, truth);
    size_t checked = 0, wrong = 0, wrong_all = 0;
    for (size_t i = 0; i < n; ++i) {
      wrong_all += (uint8_t)back[i] != truth[i];
      if (!inner[i]) continue;
      ++checked;
      wrong += (uint8_t)back[i] != truth[i];
    }
    EXPECT_EQ(wrong, 0u) << v.name << ": " << wrong << " of " << checked << " interior voxels differ";
    EXPECT_GT(checked, n / 2) << v.name;
    EXPECT_LT(wrong_all, n / 50) << v.name;
    free(there);
    free(back);
    mi_phantom_free(p);
  }
}

// Labels on the source grid from model-grid probabilities: wherever the 8
// corners' labels agree their label, elsewhere the decision on the channels
// interpolated there, so everywhere the decision on the interpolated channels
// (mi_channel_to_source, channel by channel).  Three channels in blocks of 4
// model voxels with noise, a model grid 2.5 times coarser than the source, so
// source rows share cells (which mi_labels_to_source reuses), on every
// orientation (oblique and tilted rows cross cells along y and z too).
TEST(Resample, LabelsToSourceAreTheInterpolatedDecision) {
  for (const Variant &v : kVariants) {
    mi_phantom *p = make(v);
    ASSERT_NE(p, nullptr);
    const mi_geometry &g = p->geometry;
    const double s = 2.5 * std::min({g.spacing[0], g.spacing[1], g.spacing[2]});
    const double sp[3] = {s, s, s};
    mi_geometry gm;
    ASSERT_EQ(mi_grid_for(&g, sp, 1, &gm), nullptr);
    const int C = 3;
    const int64_t nm = gm.size[0] * gm.size[1] * gm.size[2];
    std::vector<float> probs((size_t)(C * nm));
    std::mt19937 rng(11);
    std::uniform_real_distribution<float> noise(0, 0.3f);
    for (int64_t z = 0; z < gm.size[2]; ++z)
      for (int64_t y = 0; y < gm.size[1]; ++y)
        for (int64_t x = 0; x < gm.size[0]; ++x) {
          const int64_t i = (z * gm.size[1] + y) * gm.size[0] + x;
          const int block = (int)((x / 4 + 2 * (y / 4) + z / 4) % C);
          for (int c = 0; c < C; ++c) probs[(size_t)(c * nm + i)] = (c == block ? 0.5f : 0.2f) + noise(rng);
        }
    mi_decision d = {};
    d.activation = MI_ACTIVATION_SOFTMAX;
    d.threshold = 0.5f;
    d.channels = C;
    for (int c = 0; c < C; ++c) d.label_of_channel[c] = (uint8_t)c;
    std::vector<uint8_t> model_labels((size_t)nm);
    mi_decide_all(&d, probs.data(), nm, model_labels.data(), 2);
    const size_t n = (size_t)(g.size[0] * g.size[1] * g.size[2]);
    std::vector<uint8_t> labels(n);
    ASSERT_EQ(mi_labels_to_source(&gm, probs.data(), model_labels.data(), &d, &g, labels.data(), 2), nullptr);
    std::vector<float> chan((size_t)C * n);
    for (int c = 0; c < C; ++c)
      ASSERT_EQ(mi_channel_to_source(&gm, probs.data() + c * nm, &g, chan.data() + c * n, 2), nullptr);
    size_t wrong = 0, mixed = 0;
    for (size_t i = 0; i < n; ++i) {
      wrong += labels[i] != mi_decide(&d, chan.data() + i, (int64_t)n);
      mixed += labels[i] != labels[0];
    }
    EXPECT_EQ(wrong, 0u) << v.name << ": " << wrong << " of " << n << " voxels";
    EXPECT_GT(mixed, n / 4) << v.name << ": the labels hardly vary";
    mi_phantom_free(p);
  }
}

// The same contract with a label for every model voxel (cells whose corners
// all agree but one are common, and voxels near that corner take its
// label) and a model grid shifted off part of the source (voxels outside it
// are 0): on each orientation, whose mappings are axis-aligned (axial),
// permuted (coronal, sagittal) or neither (oblique, tilted).
TEST(Resample, LabelsToSourceOnSingleVoxelLabelsAndAPartialGrid) {
  for (const Variant &v : kVariants) {
    mi_phantom *p = make(v);
    ASSERT_NE(p, nullptr);
    const mi_geometry &g = p->geometry;
    const double s = 2.5 * std::min({g.spacing[0], g.spacing[1], g.spacing[2]});
    const double sp[3] = {s, s, s};
    mi_geometry gm;
    ASSERT_EQ(mi_grid_for(&g, sp, 1, &gm), nullptr);
    for (int a = 0; a < 3; ++a) gm.origin[a] += 0.3 * s * (double)gm.size[a];  // the low third of each axis outside
    const int C = 3;
    const int64_t nm = gm.size[0] * gm.size[1] * gm.size[2];
    std::vector<float> probs((size_t)(C * nm));
    std::mt19937 rng(12);
    std::uniform_int_distribution<int> pick(0, C - 1);
    std::uniform_real_distribution<float> noise(0, 0.05f);
    for (int64_t i = 0; i < nm; ++i) {
      const int l = pick(rng);
      for (int c = 0; c < C; ++c) probs[(size_t)(c * nm + i)] = (c == l ? 0.9f : 0.05f) + noise(rng);
    }
    mi_decision d = {};
    d.activation = MI_ACTIVATION_SOFTMAX;
    d.threshold = 0.5f;
    d.channels = C;
    for (int c = 0; c < C; ++c) d.label_of_channel[c] = (uint8_t)(c + 1);
    std::vector<uint8_t> model_labels((size_t)nm);
    mi_decide_all(&d, probs.data(), nm, model_labels.data(), 2);
    const size_t n = (size_t)(g.size[0] * g.size[1] * g.size[2]);
    std::vector<uint8_t> labels(n);
    ASSERT_EQ(mi_labels_to_source(&gm, probs.data(), model_labels.data(), &d, &g, labels.data(), 2), nullptr);
    std::vector<float> chan((size_t)C * n);
    for (int c = 0; c < C; ++c)
      ASSERT_EQ(mi_channel_to_source(&gm, probs.data() + c * nm, &g, chan.data() + c * n, 2), nullptr);
    size_t wrong = 0, outside = 0;
    for (size_t i = 0; i < n; ++i) {
      const bool out = chan[i] == 0 && chan[n + i] == 0 && chan[2 * n + i] == 0;  // inside, every channel >= 0.05
      outside += out;
      wrong += labels[i] != (out ? 0 : mi_decide(&d, chan.data() + i, (int64_t)n));
    }
    EXPECT_EQ(wrong, 0u) << v.name << ": " << wrong << " of " << n << " voxels";
    EXPECT_GT(outside, n / 10) << v.name;
    EXPECT_LT(outside, n * 9 / 10) << v.name;
    mi_phantom_free(p);
  }
}
