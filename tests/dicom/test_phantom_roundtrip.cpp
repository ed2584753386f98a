// Round trips with the phantom generator: every option's DICOM output loads
// back to the generated volume voxel for voxel with the same geometry, and a
// SEG of its ground truth is valid and lands on the source slices.
#include <gtest/gtest.h>

#include <filesystem>
#include <memory>
#include <vector>

#include "helpers.h"
#include "medinfer/phantom.h"
#include "seg_check.h"
#include "../common/temp_dir.h"
#include "series_builder.h"

namespace fs = std::filesystem;

namespace {

struct Variant {
  const char *name;
  void (*apply)(mi_phantom_options &);
  bool seg;  // also write and check a SEG
};

struct PhantomDeleter {
  void operator()(mi_phantom *p) const { mi_phantom_free(p); }
};

std::vector<mi_seg_segment> segments_of(const mi_phantom &p) {
  std::vector<mi_seg_segment> segs;
  for (int i = 0; i < p.label_count; ++i) {
    const mi_phantom_label &l = p.label_table[i];
    mi_seg_segment s{};
    s.label = l.name;
    s.category_scheme = l.category_scheme, s.category_value = l.category_code, s.category_meaning = l.category_meaning;
    s.type_scheme = l.type_scheme, s.type_value = l.type_code, s.type_meaning = l.type_meaning;
    s.algorithm_type = MI_SEG_ALGO_MANUAL;  // ground truth
    for (int c = 0; c < 3; ++c) s.rgb[c] = l.rgb[c];
    segs.push_back(s);
  }
  return segs;
}

class PhantomRoundTrip : public ::testing::TestWithParam<Variant> {};

TEST_P(PhantomRoundTrip, LoadsVoxelForVoxel) {
  mi_phantom_options o;
  mi_phantom_options_init(&o);
  o.size[0] = 48, o.size[1] = 40, o.size[2] = 24;
  o.spacing[0] = 8, o.spacing[1] = 9, o.spacing[2] = 12;
  GetParam().apply(o);
  mi_phantom *raw = nullptr;
  ASSERT_EQ(take(mi_phantom_generate(&o, &raw)), "");
  std::unique_ptr<mi_phantom, PhantomDeleter> p(raw);
  TempDir tmp(std::string("dicom-") + GetParam().name);
  const std::string dir = tmp.path();
  const std::string dcm = dir + "/dicom";
  ASSERT_EQ(take(mi_phantom_write_dicom(p.get(), dcm.c_str(), nullptr)), "");

  mi_dicom_load_options lo;
  mi_dicom_load_options_init(&lo);
  mi_dicom_volume *v = nullptr;
  if (o.missing_slice >= 0) {
    std::string err = take(mi_dicom_load_dir(dcm.c_str(), nullptr, &lo, &v));
    EXPECT_NE(err.find("missing slice"), std::string::npos) << err;
    lo.allow_irregular = 1;
  }
  ASSERT_EQ(take(mi_dicom_load_dir(dcm.c_str(), nullptr, &lo, &v)), "");
  std::unique_ptr<mi_dicom_volume, VolumeDeleter> vol(v);
  const mi_geometry &g = *mi_dicom_volume_geometry(v), &t = p->geometry;
  const size_t plane = (size_t)(t.size[0] * t.size[1]);
  const float *data = mi_dicom_volume_data(v);

  if (o.missing_slice < 0) {
    expect_geometry_near(g, t);
    size_t bad = 0;
    for (size_t i = 0; i < plane * (size_t)t.size[2]; ++i) bad += data[i] != (float)p->values[i];
    EXPECT_EQ(bad, 0u);
  } else {
    // Every loaded slice equals the generated slice at the same position.
    EXPECT_EQ(g.size[2], t.size[2] - 1);
    EXPECT_TRUE(mi_dicom_volume_issues(v) & MI_DICOM_ISSUE_MISSING_SLICE);
    for (int64_t k = 0; k < g.size[2]; ++k) {
      double ipp[3];
      mi_dicom_volume_slice_position(v, k, ipp);
      double idx[3];
      mi_geometry_point_to_index(&t, ipp, idx);
      const int64_t tk = (int64_t)std::llround(idx[2]);
      ASSERT_NEAR(idx[2], (double)tk, 1e-4);
      ASSERT_NE(tk, o.missing_slice);
      for (size_t i = 0; i < plane; ++i)
        ASSERT_EQ(data[(size_t)k * plane + i], (float)p->values[(size_t)tk * plane + i]) << "slice " << k;
    }
  }

  if (GetParam().seg && o.missing_slice < 0) {
    std::vector<mi_seg_segment> segs = segments_of(*p);
    const std::string out = dir + "/seg.dcm";
    ASSERT_EQ(take(mi_dicom_write_seg_labelmap(v, p->labels, segs.data(), segs.size(), nullptr, out.c_str())), "");
    EXPECT_EQ(segcheck::dciodvfy_errors(out), "");
    EXPECT_EQ(segcheck::pydicom_check(v, p->labels, segs.size(), out, dir), "");
  }
}

#define V(name, body, seg) Variant{name, [](mi_phantom_options &o) { body; }, seg}
INSTANTIATE_TEST_SUITE_P(
    Options, PhantomRoundTrip,
    ::testing::Values(V("Axial", (void)o, true), V("Coronal", o.orientation = MI_PHANTOM_CORONAL, true),
                      V("Sagittal", o.orientation = MI_PHANTOM_SAGITTAL, true),
                      V("Oblique", o.orientation = MI_PHANTOM_OBLIQUE, true),
                      V("Reversed", o.reverse_slices = 1, true), V("GantryTilt", o.gantry_tilt_deg = 15, true),
                      V("MissingSlice", o.missing_slice = 7, false), V("Enhanced", o.enhanced = 1, true),
                      V("EnhancedCoronalReversed", (o.enhanced = 1, o.orientation = MI_PHANTOM_CORONAL,
                                                    o.reverse_slices = 1), true),
                      V("MR", o.modality = MI_PHANTOM_MR, false), V("Lesions", o.lesions = 3, true),
                      V("ImplicitLE", o.transfer_syntax = MI_PHANTOM_TS_IMPLICIT_LE, false),
                      V("ExplicitBE", o.transfer_syntax = MI_PHANTOM_TS_EXPLICIT_BE, false),
                      V("Deflated", o.transfer_syntax = MI_PHANTOM_TS_DEFLATED, false),
                      V("RLE", o.transfer_syntax = MI_PHANTOM_TS_RLE, false),
                      V("JPEGLossless", o.transfer_syntax = MI_PHANTOM_TS_JPEG_LOSSLESS, false),
                      V("JPEGLS", o.transfer_syntax = MI_PHANTOM_TS_JPEGLS_LOSSLESS, false),
                      V("EnhancedRLE", (o.enhanced = 1, o.transfer_syntax = MI_PHANTOM_TS_RLE), false)),
    [](const ::testing::TestParamInfo<Variant> &i) { return std::string(i.param.name); });

}  // namespace
