// Resampling onto the LPS model grid and back lands on the source voxels:
// a phantom label volume (axial, coronal, sagittal, oblique, gantry tilt)
// taken there and back equals the original away from label boundaries.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
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

// The LPS model grid of spacing s covering g.
bool coarse_grid(const mi_geometry &g, double s, mi_geometry *gm) {
  const double sp[3] = {s, s, s};
  mi_status *st = mi_grid_for(&g, sp, 1, gm);
  EXPECT_EQ(st, nullptr) << mi_status_message(st);
  mi_status_free(st);
  return st == nullptr;
}

// Softmax over C channels, threshold 0.5, channel c labelled first + c.
mi_decision softmax_decision(int C, int first) {
  mi_decision d = {};
  d.activation = MI_ACTIVATION_SOFTMAX;
  d.threshold = 0.5f;
  d.channels = C;
  for (int c = 0; c < C; ++c) d.label_of_channel[c] = (uint8_t)(first + c);
  return d;
}

// Model-grid probabilities (d.channels of them, none 0) back on the source
// grid g, by mi_labels_to_source (from the model grid's decisions) against
// the decision on each channel by mi_channel_to_source: voxels that differ
// (outside the model grid, where every channel is 0, the label must be 0),
// voxels outside, and voxels whose label is not the first voxel's.
struct OnSource {
  size_t n, wrong, outside, varied;
};
OnSource back_on_source(const mi_geometry &gm, const mi_geometry &g, const std::vector<float> &probs,
                        const mi_decision &d) {
  const int64_t nm = gm.size[0] * gm.size[1] * gm.size[2], n = g.size[0] * g.size[1] * g.size[2];
  std::vector<uint8_t> model_labels((size_t)nm), labels((size_t)n);
  std::vector<float> chan((size_t)(d.channels * n));
  mi_decide_all(&d, probs.data(), nm, model_labels.data(), 2);
  EXPECT_EQ(mi_labels_to_source(&gm, probs.data(), model_labels.data(), &d, &g, labels.data(), 2), nullptr);
  for (int c = 0; c < d.channels; ++c)
    EXPECT_EQ(mi_channel_to_source(&gm, probs.data() + c * nm, &g, chan.data() + c * n, 2), nullptr);
  OnSource r = {(size_t)n, 0, 0, 0};
  for (int64_t i = 0; i < n; ++i) {
    bool out = true;
    for (int c = 0; c < d.channels && out; ++c) out = chan[(size_t)(c * n + i)] == 0;
    r.outside += out;
    r.wrong += labels[(size_t)i] != (out ? 0 : mi_decide(&d, chan.data() + i, n));
    r.varied += labels[(size_t)i] != labels[0];
  }
  return r;
}

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

// Slices kilometres apart (consistent, so the series loads) would make a
// model grid of billions of voxels: refused by its extent, in both grid
// kinds, also where the extent overflows a double.
TEST(Resample, GridsOverTwoToTheThirtyOneVoxelsAreRefused) {
  mi_geometry g{};
  g.size[0] = g.size[1] = 64, g.size[2] = 40;
  for (int a = 0; a < 3; ++a) g.spacing[a] = 1, g.direction[4 * a] = 1;
  const double sp[3] = {3, 3, 3};
  mi_geometry gm;
  for (double slices : {1e7, 1e306}) {
    g.spacing[2] = slices;
    for (int lps : {1, 0}) {
      mi_status *st = mi_grid_for(&g, sp, lps, &gm);
      ASSERT_NE(st, nullptr) << slices << " " << lps;
      EXPECT_EQ(mi_status_code(st), MI_ERR_SHAPE);
      EXPECT_NE(std::string(mi_status_message(st)).find("more than 2^31 voxels"), std::string::npos)
          << mi_status_message(st);
      mi_status_free(st);
    }
  }
  g.spacing[2] = 1000;  // 40 m: 64 x 64 x 13334 at 3 mm is allowed
  ASSERT_EQ(mi_grid_for(&g, sp, 1, &gm), nullptr);
  EXPECT_EQ(gm.size[2], 13334);
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
// (mi_channel_to_source, channel by channel), and 0 off the model grid.  A
// model grid 2.5 times coarser than the source, so source rows share cells
// (which mi_labels_to_source reuses), on every orientation: axis-aligned
// (axial), permuted (coronal, sagittal) or neither (oblique and tilted rows
// cross cells along y and z too).  Three channels: in blocks of 4 model
// voxels with noise; then a label for every model voxel (cells whose corners
// all agree but one are common, and voxels near that corner take its label)
// on a model grid shifted off the low third of each axis.
TEST(Resample, LabelsToSourceAreTheInterpolatedDecision) {
  for (const bool single : {false, true})
    for (const Variant &v : kVariants) {
      SCOPED_TRACE(std::string(v.name) + (single ? ", a label per model voxel" : ", blocks of labels"));
      mi_phantom *p = make(v);
      ASSERT_NE(p, nullptr);
      const mi_geometry &g = p->geometry;
      const double s = 2.5 * std::min({g.spacing[0], g.spacing[1], g.spacing[2]});
      mi_geometry gm;
      ASSERT_TRUE(coarse_grid(g, s, &gm));
      if (single)
        for (int a = 0; a < 3; ++a) gm.origin[a] += 0.3 * s * (double)gm.size[a];
      const int C = 3;
      const int64_t nm = gm.size[0] * gm.size[1] * gm.size[2];
      std::vector<float> probs((size_t)(C * nm));
      std::mt19937 rng(11);
      std::uniform_int_distribution<int> pick(0, C - 1);
      std::uniform_real_distribution<float> noise(0, single ? 0.05f : 0.3f);
      for (int64_t z = 0; z < gm.size[2]; ++z)
        for (int64_t y = 0; y < gm.size[1]; ++y)
          for (int64_t x = 0; x < gm.size[0]; ++x) {
            const int64_t i = (z * gm.size[1] + y) * gm.size[0] + x;
            const int l = single ? pick(rng) : (int)((x / 4 + 2 * (y / 4) + z / 4) % C);
            for (int c = 0; c < C; ++c)
              probs[(size_t)(c * nm + i)] = (c == l ? (single ? 0.9f : 0.5f) : (single ? 0.05f : 0.2f)) + noise(rng);
          }
      const OnSource r = back_on_source(gm, g, probs, softmax_decision(C, single ? 1 : 0));
      EXPECT_EQ(r.wrong, 0u) << r.wrong << " of " << r.n << " voxels";
      EXPECT_GT(r.varied, r.n / 4) << "the labels hardly vary";
      if (single) {
        EXPECT_GT(r.outside, r.n / 10);
        EXPECT_LT(r.outside, r.n * 9 / 10);
      } else {
        EXPECT_EQ(r.outside, 0u);
      }
      mi_phantom_free(p);
    }
}
