// Ground truth files: NRRD volumes with the phantom's geometry, labels JSON.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <sstream>

#include "phantom_test_util.h"

namespace {

std::string slurp(const std::string &path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

std::string field(const std::string &header, const std::string &key) {
  size_t at = header.find("\n" + key + ": ");
  if (at == std::string::npos) return "";
  at += key.size() + 3;
  return header.substr(at, header.find('\n', at) - at);
}

}  // namespace

TEST(PhantomTruth, NrrdVolumesCarryGeometryAndVoxels) {
  mi_phantom_options o = small_options(13);
  o.orientation = MI_PHANTOM_OBLIQUE;
  o.gantry_tilt_deg = 10;
  PhantomPtr p = make_phantom(o);
  ASSERT_TRUE(p);
  TempDir dir("truth");
  mi_status *st = mi_phantom_write_truth(p.get(), dir.path().c_str());
  ASSERT_EQ(st, nullptr) << mi_status_message(st);
  EXPECT_EQ(list_dir(dir.path()), (std::vector<std::string>{"image.nrrd", "labels.json", "labels.nrrd"}));
  const mi_geometry &g = p->geometry;
  const size_t n = (size_t)(g.size[0] * g.size[1] * g.size[2]);
  for (const char *name : {"labels.nrrd", "image.nrrd"}) {
    const std::string data = slurp(dir.path() + "/" + name);
    const size_t end = data.find("\n\n");
    ASSERT_NE(end, std::string::npos);
    const std::string h = data.substr(0, end + 1);
    EXPECT_EQ(h.rfind("NRRD0004\n", 0), 0u);
    EXPECT_EQ(field(h, "sizes"), "64 56 24");
    EXPECT_EQ(field(h, "space"), "left-posterior-superior");
    EXPECT_EQ(field(h, "encoding"), "raw");
    double o3[3];
    ASSERT_EQ(std::sscanf(field(h, "space origin").c_str(), "(%lf,%lf,%lf)", &o3[0], &o3[1], &o3[2]), 3);
    for (int a = 0; a < 3; a++) EXPECT_NEAR(o3[a], g.origin[a], 1e-9);
    double d[9];
    ASSERT_EQ(std::sscanf(field(h, "space directions").c_str(), "(%lf,%lf,%lf) (%lf,%lf,%lf) (%lf,%lf,%lf)", &d[0],
                          &d[1], &d[2], &d[3], &d[4], &d[5], &d[6], &d[7], &d[8]),
              9);
    for (int axis = 0; axis < 3; axis++)
      for (int r = 0; r < 3; r++) EXPECT_NEAR(d[3 * axis + r], g.direction[3 * r + axis] * g.spacing[axis], 1e-9);
    const std::string payload = data.substr(end + 2);
    if (std::strcmp(name, "labels.nrrd") == 0) {
      EXPECT_EQ(field(h, "type"), "uint8");
      ASSERT_EQ(payload.size(), n);
      EXPECT_EQ(std::memcmp(payload.data(), p->labels, n), 0);
    } else {
      EXPECT_EQ(field(h, "type"), "int16");
      ASSERT_EQ(payload.size(), 2 * n);
      EXPECT_EQ(std::memcmp(payload.data(), p->values, 2 * n), 0);
    }
  }
}

TEST(PhantomTruth, LabelsJsonHasCodesColoursAndLesions) {
  mi_phantom_options o = small_options(14);
  o.lesions = 3;
  PhantomPtr p = make_phantom(o);
  ASSERT_TRUE(p);
  TempDir dir("json");
  mi_status *st = mi_phantom_write_study(p.get(), dir.path().c_str());
  ASSERT_EQ(st, nullptr) << mi_status_message(st);
  EXPECT_EQ(list_dir(dir.path()), (std::vector<std::string>{"dicom", "truth"}));
  EXPECT_EQ((int64_t)list_dir(dir.path() + "/dicom").size(), o.size[2]);
  const std::string j = slurp(dir.path() + "/truth/labels.json");
  EXPECT_NE(j.find("\"name\": \"Liver\", \"category\": {\"scheme\": \"SCT\", \"code\": \"123037004\", \"meaning\": "
                   "\"Anatomical Structure\"}, \"type\": {\"scheme\": \"SCT\", \"code\": \"10200004\""),
            std::string::npos)
      << j;
  EXPECT_NE(j.find(p->series_uid), std::string::npos);
  size_t lesions = 0;
  for (size_t at = 0; (at = j.find("\"center_mm\"", at)) != std::string::npos; at++) lesions++;
  EXPECT_EQ(lesions, 3u);
  // Python's json module must accept it.
  const std::string cmd = "python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert len(d[\"labels\"])==11' '" +
                          dir.path() + "/truth/labels.json'";
  EXPECT_EQ(std::system(cmd.c_str()), 0);
}
