// Helpers of the detection output tests: a card with two labels, findings
// built from voxel boxes on a grid, temporary folders and file reading.
#ifndef MI_FINDINGS_TEST_UTIL_H
#define MI_FINDINGS_TEST_UTIL_H

#include <gtest/gtest.h>
#include <stdlib.h>

#include <cmath>
#include <fstream>
#include <sstream>
#include <string>

#include "medinfer/segmentation.h"
#include "seg_test_util.h"

// Label 2's name needs CSV quoting and HTML escaping.
inline const char *kFindingsCard = R"({
  "name": "test-detector", "version": "2.1", "task": "segmentation", "model": "m.onnx",
  "applies_to": {"modality": ["CT"]},
  "input": {"channels": 1, "spacing": [1, 1, 1], "orientation": "LPS", "preprocessing": []},
  "inference": {"mode": "3d", "patch_size": [16, 16, 16]},
  "output": {"activation": "sigmoid", "labels": [
    {"value": 1, "name": "Nodule", "color": [230, 40, 20],
     "category": {"scheme": "SCT", "value": "49755003", "meaning": "Morphologically Altered Structure"},
     "type": {"scheme": "SCT", "value": "27925004", "meaning": "Nodule"}},
    {"value": 3, "name": "Mass, \"solid\" <b>", "color": [20, 200, 60],
     "category": {"scheme": "SCT", "value": "49755003", "meaning": "Morphologically Altered Structure"},
     "type": {"scheme": "SCT", "value": "4147007", "meaning": "Mass"}}]}
})";

inline std::string read_text(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// The test card, loaded from a file in `dir`; freed by the caller.
inline mi_card *load_test_card(const std::string &dir) {
  std::string p = dir + "/detector.card.json";
  std::ofstream(p) << kFindingsCard;
  mi_card *c = nullptr;
  mi_status *st = mi_card_load(p.c_str(), &c);
  EXPECT_EQ(st, nullptr) << mi_status_message(st);
  mi_status_free(st);
  return c;
}

// A finding covering voxels lo..hi (inclusive) of grid g, the way the
// detector reports one: box edges half a voxel outside the voxel centres.
inline mi_finding finding_for_voxels(const mi_geometry &g, const int lo[3], const int hi[3], size_t label_index,
                                     int label, float score) {
  mi_finding f{};
  f.label_index = label_index;
  f.label = label;
  f.score = score;
  double c[3];
  for (int a = 0; a < 3; ++a) c[a] = 0.5 * (lo[a] + hi[a]);
  mi_geometry_index_to_point(&g, c[0], c[1], c[2], f.center);
  for (int a = 0; a < 3; ++a) {
    double half = 0.5 * (hi[a] - lo[a] + 1) * g.spacing[a];
    for (int r = 0; r < 3; ++r) f.axes[a][r] = g.direction[3 * r + a] * half;
    f.size_mm[a] = 2 * half;
    f.center_index[a] = c[a];
  }
  f.slice = (int)std::lround(c[2]);
  f.first_slice = lo[2], f.last_slice = hi[2];
  f.contributing_slices = hi[2] - lo[2] + 1;
  return f;
}

inline mi_geometry test_grid(int64_t nx, int64_t ny, int64_t nz, const double spacing[3], double rot_deg) {
  mi_geometry g{};
  g.size[0] = nx, g.size[1] = ny, g.size[2] = nz;
  const double o[3] = {-31.5, 12.25, -80.0};
  const double a = rot_deg * M_PI / 180, cs = std::cos(a), sn = std::sin(a);
  const double d[9] = {cs, -sn, 0, sn, cs, 0, 0, 0, 1};  // rotation about the patient z axis
  for (int i = 0; i < 3; ++i) g.origin[i] = o[i], g.spacing[i] = spacing[i];
  for (int i = 0; i < 9; ++i) g.direction[i] = d[i];
  return g;
}

#endif
