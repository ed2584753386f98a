// Round trips through the loader: series written by series_builder in every
// orientation, order, pixel format and transfer syntax come back voxel for
// voxel with the same geometry.
#include <gtest/gtest.h>

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcuid.h>

#include <filesystem>
#include <memory>
#include <vector>

#include "../common/temp_dir.h"
#include "helpers.h"
#include "series_builder.h"

namespace fs = std::filesystem;
using testdata::Spec;

namespace {

struct Loaded {
  std::unique_ptr<TempDir> tmp;
  testdata::Series truth;
  std::unique_ptr<mi_dicom_volume, VolumeDeleter> vol;
  std::string dir, error;
};

Loaded build_and_load(const Spec &spec, const char *tag) {
  Loaded l;
  l.tmp = std::make_unique<TempDir>(std::string("dicom-") + tag);
  l.dir = l.tmp->path();
  std::string err = testdata::write_series(spec, l.dir, l.truth);
  if (!err.empty()) {
    l.error = "builder: " + err;
    return l;
  }
  mi_dicom_volume *v = nullptr;
  l.error = take(mi_dicom_load_dir(l.dir.c_str(), nullptr, nullptr, &v));
  l.vol.reset(v);
  return l;
}

void expect_round_trip(const Spec &spec, const char *tag, float tol = 0) {
  Loaded l = build_and_load(spec, tag);
  ASSERT_EQ(l.error, "");
  const mi_geometry *g = mi_dicom_volume_geometry(l.vol.get());
  expect_geometry_near(*g, l.truth.geometry);
  const float *data = mi_dicom_volume_data(l.vol.get());
  size_t mismatches = 0, first = 0;
  for (size_t i = 0; i < l.truth.values.size(); ++i)
    if (std::fabs(data[i] - l.truth.values[i]) > tol && mismatches++ == 0) first = i;
  EXPECT_EQ(mismatches, 0u) << "first at " << first << ": " << data[first] << " vs " << l.truth.values[first];
  for (int64_t k = 0; k < g->size[2]; ++k) {
    EXPECT_EQ(l.truth.sop_uids[k], mi_dicom_volume_slice_sop_instance_uid(l.vol.get(), k)) << k;
    EXPECT_EQ(l.truth.frames[k], mi_dicom_volume_slice_frame(l.vol.get(), k)) << k;
    double p[3], q[3];
    mi_dicom_volume_slice_position(l.vol.get(), k, p);
    mi_geometry_index_to_point(g, 0, 0, (double)k, q);
    for (int a = 0; a < 3; ++a) {
      EXPECT_NEAR(p[a], l.truth.positions[k][a], 1e-4);
      EXPECT_NEAR(q[a], l.truth.positions[k][a], 1e-4) << "geometry places slice " << k << " wrongly";
    }
  }
  EXPECT_EQ(std::string(mi_dicom_volume_attribute(l.vol.get(), "SeriesInstanceUID")), l.truth.series_uid);
  EXPECT_EQ(std::string(mi_dicom_volume_attribute(l.vol.get(), "PatientID")), "MI-TEST-1");
}

}  // namespace

TEST(DicomLoad, AxialRoundTrip) { expect_round_trip(Spec(), "axial"); }

TEST(DicomLoad, ReversedOrderRoundTrip) {
  Spec s;
  s.reverse = true;
  expect_round_trip(s, "reversed");
}

TEST(DicomLoad, CoronalRoundTrip) {
  Spec s;
  const double iop[6] = {1, 0, 0, 0, 0, -1};
  std::copy(iop, iop + 6, s.iop);
  expect_round_trip(s, "coronal");
}

TEST(DicomLoad, SagittalRoundTrip) {
  Spec s;
  const double iop[6] = {0, 1, 0, 0, 0, -1};
  std::copy(iop, iop + 6, s.iop);
  expect_round_trip(s, "sagittal");
}

TEST(DicomLoad, ObliqueRoundTrip) {
  Spec s;
  const double a = 20 * M_PI / 180, b = 15 * M_PI / 180;
  // axial rotated about x by a, then about z by b
  double r[3] = {std::cos(b), std::sin(b), 0};
  double c[3] = {-std::sin(b) * std::cos(a), std::cos(b) * std::cos(a), std::sin(a)};
  const double iop[6] = {r[0], r[1], r[2], c[0], c[1], c[2]};
  std::copy(iop, iop + 6, s.iop);
  expect_round_trip(s, "oblique");
}

TEST(DicomLoad, GantryTiltIsReportedAndGeometrySheared) {
  Spec s;
  s.tilt_deg = 12;
  expect_round_trip(s, "tilt");
  Loaded l = build_and_load(s, "tilt2");
  ASSERT_EQ(l.error, "");
  EXPECT_TRUE(mi_dicom_volume_issues(l.vol.get()) & MI_DICOM_ISSUE_GANTRY_TILT);
  ASSERT_GE(mi_dicom_volume_warning_count(l.vol.get()), 1u);
  EXPECT_NE(std::string(mi_dicom_volume_warning(l.vol.get(), 0)).find("tilt"), std::string::npos);
}

TEST(DicomLoad, SignedPixels) {
  Spec s;
  s.pixel_representation = 1;
  s.bits_stored = 16;
  s.intercept = 0;
  expect_round_trip(s, "signed");
}

TEST(DicomLoad, SignedBitsStoredBelowAllocatedWithGarbageHighBits) {
  Spec s;
  s.pixel_representation = 1;
  s.bits_stored = 12;
  s.garbage_high_bits = true;
  s.slope = 2.5;
  s.intercept = 10;
  expect_round_trip(s, "signed12");
}

TEST(DicomLoad, UnsignedBitsStoredBelowAllocatedWithGarbageHighBits) {
  Spec s;
  s.garbage_high_bits = true;
  expect_round_trip(s, "unsigned12");
}

TEST(DicomLoad, EightBit) {
  Spec s;
  s.bits_allocated = 8;
  s.bits_stored = 8;
  s.intercept = 0;
  expect_round_trip(s, "eightbit");
}

TEST(DicomLoad, Monochrome1KeepsRealValues) {
  Spec s;
  s.photometric = "MONOCHROME1";
  expect_round_trip(s, "mono1");
}

TEST(DicomLoad, MRWithoutRescale) {
  Spec s;
  s.modality = "MR";
  s.slope = 1;
  s.intercept = 0;
  expect_round_trip(s, "mr");
}

TEST(DicomLoad, EnhancedMultiFrameShuffledFrames) {
  Spec s;
  s.enhanced = true;
  expect_round_trip(s, "enhanced");
}

TEST(DicomLoad, EnhancedMultiFrameCoronalReversed) {
  Spec s;
  s.enhanced = true;
  s.reverse = true;
  const double iop[6] = {1, 0, 0, 0, 0, -1};
  std::copy(iop, iop + 6, s.iop);
  expect_round_trip(s, "enhcor");
}

TEST(DicomLoad, EnhancedMRWithoutTransformation) {
  Spec s;
  s.enhanced = true;
  s.modality = "MR";
  s.sop_class = UID_EnhancedMRImageStorage;
  s.slope = 1, s.intercept = 0;
  expect_round_trip(s, "enhmr");
}

TEST(DicomLoad, LegacyConvertedWithPerFrameRescale) {
  Spec s;
  s.enhanced = true;
  s.sop_class = UID_LegacyConvertedEnhancedCTImageStorage;
  s.per_frame_rescale = true;
  s.slope = 0.5;
  const double iop[6] = {0, 1, 0, 0, 0, -1};
  std::copy(iop, iop + 6, s.iop);
  expect_round_trip(s, "legacy");
}

TEST(DicomLoad, SingleSliceUsesSliceThickness) {
  Spec s;
  s.slices = 1;
  Loaded l = build_and_load(s, "single");
  ASSERT_EQ(l.error, "");
  EXPECT_EQ(mi_dicom_volume_geometry(l.vol.get())->size[2], 1);
  EXPECT_NEAR(mi_dicom_volume_geometry(l.vol.get())->spacing[2], 2.5, 1e-9);
}

// Every transfer syntax the loader decodes, lossless ones exactly.
struct SyntaxCase {
  const char *name, *uid;
  int bits_allocated, bits_stored;
  float tolerance;  // lossy JPEG
};

class DicomTransferSyntax : public ::testing::TestWithParam<SyntaxCase> {};

TEST_P(DicomTransferSyntax, RoundTrip) {
  const SyntaxCase &c = GetParam();
  Spec s;
  s.transfer_syntax = c.uid;
  s.bits_allocated = c.bits_allocated;
  s.bits_stored = c.bits_stored;
  if (c.bits_allocated == 8) s.intercept = 0;
  expect_round_trip(s, c.name, c.tolerance);
}

INSTANTIATE_TEST_SUITE_P(
    AllSyntaxes, DicomTransferSyntax,
    ::testing::Values(SyntaxCase{"ImplicitLE", "1.2.840.10008.1.2", 16, 12, 0},
                      SyntaxCase{"ExplicitLE", "1.2.840.10008.1.2.1", 16, 12, 0},
                      SyntaxCase{"ExplicitBE", "1.2.840.10008.1.2.2", 16, 12, 0},
                      SyntaxCase{"Deflated", "1.2.840.10008.1.2.1.99", 16, 12, 0},
                      SyntaxCase{"RLE", "1.2.840.10008.1.2.5", 16, 12, 0},
                      SyntaxCase{"RLE8", "1.2.840.10008.1.2.5", 8, 8, 0},
                      SyntaxCase{"JPEGBaseline", "1.2.840.10008.1.2.4.50", 8, 8, 12},
                      SyntaxCase{"JPEGExtended", "1.2.840.10008.1.2.4.51", 16, 12, 160},
                      SyntaxCase{"JPEGLossless14", "1.2.840.10008.1.2.4.57", 16, 12, 0},
                      SyntaxCase{"JPEGLosslessSV1", "1.2.840.10008.1.2.4.70", 16, 12, 0},
                      SyntaxCase{"JPEGLSLossless", "1.2.840.10008.1.2.4.80", 16, 12, 0}),
    [](const ::testing::TestParamInfo<SyntaxCase> &i) { return std::string(i.param.name); });
