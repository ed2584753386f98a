// The whole per-volume pipeline through an identity network: with a sigmoid
// output and zscore(mean M, std 1) the network labels voxels >= M HU, so the
// result must equal thresholding the source volume directly, voxel for voxel
// away from boundaries, for every orientation (resampling there and back,
// probabilities interpolated onto the source grid).
#include <gtest/gtest.h>
#include <stdlib.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <string>
#include <vector>

#include "medinfer/phantom.h"
#include "medinfer/segmentation.h"
#include "seg_test_util.h"

namespace {

std::string identity_card(double spacing, const char *orientation, bool lcc) {
  static TempDir dir("seg-pipe");  // removed at exit
  static int made = 0;
  const std::string path = dir.path() + "/threshold-" + std::to_string(made++) + ".card.json";
  std::ofstream(path) << R"({"name": "threshold", "version": "1", "task": "segmentation",
    "model": ")" << MI_SEG_TEST_MODELS << R"(/identity3d.onnx",
    "applies_to": {"modality": ["CT"]},
    "input": {"channels": 1, "spacing": [)" << spacing << "," << spacing << "," << spacing
                      << R"(], "orientation": ")" << orientation << R"(",
      "preprocessing": [{"type": "zscore", "mean": 150, "std": 1}]},
    "inference": {"mode": "3d", "patch_size": [32, 32, 32], "overlap": 0.5, "batch": 2},
    "output": {"activation": "sigmoid", "threshold": 0.5, "labels": [{"value": 1, "name": "Dense",
      "color": [255, 255, 255], "category": {"scheme": "SCT", "value": "123037004", "meaning": "Anatomical Structure"},
      "type": {"scheme": "SCT", "value": "421060004", "meaning": "Spinal column"}}],
      "postprocessing": {"largest_component": )" << (lcc ? "true" : "false") << R"(}}})";
  return path;
}

struct Result {
  std::vector<uint8_t> labels;
  double ml = 0;
};

// Set by a releasing run: the callback's calls and the stage reported last before it.
struct Released {
  int calls = 0;
  std::string stage, last;
  std::vector<float> *volume = nullptr;
};

int note_stage(void *user, double, const char *message) {
  if (message) static_cast<Released *>(user)->last = message;
  return 0;
}

// The volume is overwritten when released: a read after that would change the result.
void poison(void *user) {
  Released *r = static_cast<Released *>(user);
  ++r->calls;
  r->stage = r->last;
  std::fill(r->volume->begin(), r->volume->end(), std::nanf(""));
}

void run(const mi_phantom *p, const std::string &card_path, Result &out, int fractional = 0,
         Released *released = nullptr) {
  mi_card *card = nullptr;
  mi_status *st = mi_card_load(card_path.c_str(), &card);
  ASSERT_EQ(st, nullptr) << mi_status_message(st);
  mi_segmenter_options o;
  mi_segmenter_options_init(&o);
  o.threads = 2;
  o.fractional = fractional;
  mi_segmenter *s = nullptr;
  st = mi_segmenter_create(card, &o, &s);
  ASSERT_EQ(st, nullptr) << mi_status_message(st);
  const mi_geometry &g = p->geometry;
  const size_t n = (size_t)(g.size[0] * g.size[1] * g.size[2]);
  std::vector<float> v(p->values, p->values + n);
  mi_segmentation *r = nullptr;
  if (released) {
    released->volume = &v;
    mi_segmenter_set_progress(s, note_stage, released);
    st = mi_segmenter_run_releasing(s, &g, v.data(), poison, released, &r);
  } else {
    st = mi_segmenter_run(s, &g, v.data(), &r);
  }
  ASSERT_EQ(st, nullptr) << mi_status_message(st);
  out.labels.assign(mi_segmentation_labels(r), mi_segmentation_labels(r) + n);
  out.ml = mi_segmentation_volume_ml(r, 0);
  if (fractional) {
    const float *pr = mi_segmentation_probability(r, 0);
    ASSERT_NE(pr, nullptr);
    for (size_t i = 0; i < n; ++i) ASSERT_EQ(pr[i] >= 0.5f, out.labels[i] == 1) << i;
  }
  for (int k = 0; k < MI_STAGE_COUNT; ++k) EXPECT_GE(mi_segmentation_seconds(r, k), 0);
  mi_segmentation_free(r);
  mi_segmenter_free(s);
  mi_card_free(card);
}

mi_phantom *make(mi_phantom_orientation o, double tilt, int reverse) {
  mi_phantom_options opt;
  mi_phantom_options_init(&opt);
  opt.size[0] = 56, opt.size[1] = 52, opt.size[2] = 40;
  opt.orientation = o;
  opt.gantry_tilt_deg = tilt;
  opt.reverse_slices = reverse;
  opt.noise_sigma = 0;
  opt.seed = 11;
  opt.threads = 2;
  mi_phantom *p = nullptr;
  mi_status *st = mi_phantom_generate(&opt, &p);
  EXPECT_EQ(st, nullptr) << mi_status_message(st);
  mi_status_free(st);
  return p;
}

}  // namespace

TEST(Pipeline, ThresholdNetworkMatchesSourceEveryOrientation) {
  struct {
    const char *name;
    mi_phantom_orientation o;
    double tilt;
    const char *orient;
  } variants[] = {{"axial", MI_PHANTOM_AXIAL, 0, "LPS"},     {"coronal", MI_PHANTOM_CORONAL, 0, "LPS"},
                  {"oblique", MI_PHANTOM_OBLIQUE, 0, "LPS"}, {"tilted", MI_PHANTOM_AXIAL, 12, "LPS"},
                  {"oblique-native", MI_PHANTOM_OBLIQUE, 0, "native"}};
  for (const auto &v : variants) {
    mi_phantom *p = make(v.o, v.tilt, 0);
    ASSERT_NE(p, nullptr);
    const mi_geometry &g = p->geometry;
    const double s = std::min({g.spacing[0], g.spacing[1], g.spacing[2]}) / 2;
    Result r;
    run(p, identity_card(s, v.orient, false), r);
    const size_t n = r.labels.size();
    std::vector<uint8_t> truth(n);
    size_t count = 0;
    for (size_t i = 0; i < n; ++i) count += truth[i] = p->values[i] >= 150;
    ASSERT_GT(count, 100u) << v.name;
    std::vector<char> inner = interior_mask(g, truth);
    // Differences only where the truth has a boundary (linear interpolation
    // moves a threshold crossing by a fraction of a voxel there).
    size_t wrong = 0, voxels = 0;
    for (size_t i = 0; i < n; ++i) {
      wrong += inner[i] && r.labels[i] != truth[i];
      voxels += r.labels[i] == 1;
    }
    EXPECT_EQ(wrong, 0u) << v.name;
    const double *d = g.direction;  // sheared under gantry tilt: |det| < 1
    const double det = d[0] * (d[4] * d[8] - d[5] * d[7]) - d[1] * (d[3] * d[8] - d[5] * d[6]) +
                       d[2] * (d[3] * d[7] - d[4] * d[6]);
    const double voxel_ml = g.spacing[0] * g.spacing[1] * g.spacing[2] * std::fabs(det) / 1000;
    EXPECT_NEAR(r.ml, voxels * voxel_ml, 1e-6 * r.ml + 1e-9) << v.name;
    mi_phantom_free(p);
  }
}

// A caller may free the volume once it is resampled: the release comes once,
// before inference, and nothing reads the volume after it.
TEST(Pipeline, VolumeIsReleasedOnceResampled) {
  mi_phantom *p = make(MI_PHANTOM_OBLIQUE, 0, 0);
  ASSERT_NE(p, nullptr);
  const std::string card = identity_card(p->geometry.spacing[0], "LPS", false);
  Result kept, freed;
  Released released;
  run(p, card, kept, 1);
  run(p, card, freed, 1, &released);
  EXPECT_EQ(released.calls, 1);
  EXPECT_EQ(released.stage, "preprocess");
  EXPECT_TRUE(kept.labels == freed.labels);
  EXPECT_EQ(kept.ml, freed.ml);
  mi_phantom_free(p);
}

TEST(Pipeline, LargestComponentAndFractional) {
  mi_phantom *p = make(MI_PHANTOM_AXIAL, 0, 0);
  ASSERT_NE(p, nullptr);
  const double s = p->geometry.spacing[0];
  Result all, lcc;
  run(p, identity_card(s, "LPS", false), all, 1);
  run(p, identity_card(s, "LPS", true), lcc);
  size_t a = 0, b = 0;
  for (size_t i = 0; i < all.labels.size(); ++i) {
    a += all.labels[i];
    b += lcc.labels[i];
    ASSERT_LE(lcc.labels[i], all.labels[i]);  // only removes
  }
  EXPECT_GT(b, 0u);
  EXPECT_LE(b, a);
  mi_phantom_free(p);
}

// Output names come from the series' UID; a malformed one (a slash from a
// hostile header) must not lead the SEG or findings folder out of --output.
TEST(Job, OutputNamesStayInTheOutputFolder) {
  char buf[256];
  mi_seg_output_name("1.2.840.113619.2.55.3", buf, sizeof buf);
  EXPECT_STREQ(buf, "1.2.840.113619.2.55.3.seg.dcm");
  mi_seg_output_name("../../escaped", buf, sizeof buf);
  EXPECT_STREQ(buf, ".._.._escaped.seg.dcm");
  mi_det_output_name("/etc/x y", buf, sizeof buf);
  EXPECT_STREQ(buf, "_etc_x_y.findings");
  mi_seg_output_name("", buf, sizeof buf);
  EXPECT_STREQ(buf, "unknown.seg.dcm");
}
