// SEG writer: validity (dciodvfy), read-back with pydicom and DCMTK, frames
// on the right source slices for every orientation, atomic output.
#include <gtest/gtest.h>

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmfg/fgplanpo.h>
#include <dcmtk/dcmfg/fgseg.h>
#include <dcmtk/dcmseg/segdoc.h>
#include <dcmtk/dcmseg/segutils.h>

#include <cmath>
#include <filesystem>
#include <unistd.h>
#include <memory>
#include <vector>

#include "helpers.h"
#include "seg_check.h"
#include "../common/temp_dir.h"
#include "series_builder.h"

namespace fs = std::filesystem;
using testdata::Spec;

namespace {

const mi_seg_segment kSegments[3] = {
    {"Liver", "round organ", "SCT", "123037004", "Anatomical Structure", "SCT", "10200004", "Liver",
     MI_SEG_ALGO_AUTOMATIC, "medinfer-test", {221, 130, 101}},
    {"Spleen", nullptr, "SCT", "123037004", "Anatomical Structure", "SCT", "78961009", "Spleen", MI_SEG_ALGO_MANUAL,
     nullptr, {157, 108, 162}},
    {"Kidney", nullptr, "SCT", "123037004", "Anatomical Structure", "SCT", "64033007", "Kidney",
     MI_SEG_ALGO_SEMIAUTOMATIC, "medinfer-test", {185, 102, 83}},  // left empty on purpose
};

// A sphere (1) and a box (2) that do not reach every slice; label 3 unused.
std::vector<uint8_t> make_labels(const mi_geometry &g) {
  std::vector<uint8_t> l((size_t)(g.size[0] * g.size[1] * g.size[2]), 0);
  for (int64_t k = 0; k < g.size[2]; ++k)
    for (int64_t j = 0; j < g.size[1]; ++j)
      for (int64_t i = 0; i < g.size[0]; ++i) {
        double di = i - g.size[0] * 0.4, dj = j - g.size[1] * 0.5, dk = (k - g.size[2] * 0.3) * 2;
        uint8_t v = 0;
        if (di * di + dj * dj + dk * dk < 36) v = 1;
        if (i >= 2 && i < 7 && j >= 3 && j < 9 && k >= g.size[2] / 2 && k < g.size[2] - 1) v = 2;
        l[(size_t)((k * g.size[1] + j) * g.size[0] + i)] = v;
      }
  return l;
}

// DCMTK's view of the SEG: every frame's mask equals the label map on the
// source slice at the frame's ImagePositionPatient.  (DCMTK 3.6.7 unpacks
// frames that are not byte aligned wrongly, so callers skip such sizes.)
void expect_dcmtk_masks(DcmSegmentation &seg, const mi_dicom_volume *v, const std::vector<uint8_t> &labels) {
  const mi_geometry *g = mi_dicom_volume_geometry(v);
  const size_t plane = (size_t)(g->size[0] * g->size[1]);
  const bool fractional = seg.getSegmentationType() == DcmSegTypes::ST_FRACTIONAL;
  for (size_t f = 0; f < seg.getNumberOfFrames(); ++f) {
    auto *fs = static_cast<FGSegmentation *>(seg.getFunctionalGroups().get((Uint32)f, DcmFGTypes::EFG_SEGMENTATION));
    auto *pp = static_cast<FGPlanePosPatient *>(seg.getFunctionalGroups().get((Uint32)f, DcmFGTypes::EFG_PLANEPOSPATIENT));
    ASSERT_TRUE(fs && pp) << "frame " << f;
    Uint16 s = 0;
    Float64 x, y, z;
    ASSERT_TRUE(fs->getReferencedSegmentNumber(s).good());
    ASSERT_TRUE(pp->getImagePositionPatient(x, y, z).good());
    int64_t k = -1;
    for (int64_t c = 0; c < g->size[2]; ++c) {
      double ipp[3];
      mi_dicom_volume_slice_position(v, c, ipp);
      if (std::fabs(ipp[0] - x) < 1e-4 && std::fabs(ipp[1] - y) < 1e-4 && std::fabs(ipp[2] - z) < 1e-4) k = c;
    }
    ASSERT_GE(k, 0) << "frame " << f << " is at no source slice position";
    const DcmIODTypes::Frame *fr = seg.getFrame(f);
    ASSERT_NE(fr, nullptr);
    std::unique_ptr<DcmIODTypes::Frame> unpacked(
        fractional ? nullptr : DcmSegUtils::unpackBinaryFrame(fr, (Uint16)g->size[1], (Uint16)g->size[0]));
    const Uint8 *px = fractional ? fr->pixData : unpacked->pixData;
    size_t bad = 0;
    for (size_t i = 0; i < plane; ++i)
      bad += (px[i] > (fractional ? 127 : 0)) != (labels[(size_t)k * plane + i] == s);
    EXPECT_EQ(bad, 0u) << "frame " << f << " segment " << s << " slice " << k;
  }
}

struct Fixture {
  std::unique_ptr<TempDir> tmp;
  std::string dir;
  testdata::Series truth;
  std::unique_ptr<mi_dicom_volume, VolumeDeleter> vol;
};

void setup(const Spec &spec, const char *tag, Fixture &f) {
  f.tmp = std::make_unique<TempDir>(std::string("dicom-") + tag);
  f.dir = f.tmp->path();
  const std::string src = f.dir + "/src";
  ASSERT_EQ(testdata::write_series(spec, src, f.truth), "");
  mi_dicom_volume *v = nullptr;
  ASSERT_EQ(take(mi_dicom_load_dir(src.c_str(), nullptr, nullptr, &v)), "");
  f.vol.reset(v);
}

void write_and_check(const Spec &spec, const char *tag, int fractional = 0) {
  Fixture f;
  setup(spec, tag, f);
  if (::testing::Test::HasFatalFailure()) return;
  const mi_geometry *g = mi_dicom_volume_geometry(f.vol.get());
  std::vector<uint8_t> labels = make_labels(*g);
  mi_seg_options o;
  mi_seg_options_init(&o);
  o.fractional = fractional;
  const std::string out = f.dir + "/seg.dcm";
  // A SEG needs the series' geometry and references, not its voxels (the job releases them first).
  mi_dicom_volume_release_data(f.vol.get());
  EXPECT_EQ(mi_dicom_volume_data(f.vol.get()), nullptr);
  ASSERT_EQ(take(mi_dicom_write_seg_labelmap(f.vol.get(), labels.data(), kSegments, 3, &o, out.c_str())), "");
  EXPECT_EQ(segcheck::dciodvfy_errors(out), "");
  EXPECT_EQ(segcheck::pydicom_check(f.vol.get(), labels.data(), 3, out, f.dir), "");

  // DCMTK reads it back with the same segments and one frame per (segment, slice) present.
  DcmSegmentation *seg = nullptr;
  ASSERT_TRUE(DcmSegmentation::loadFile(out.c_str(), seg).good());
  std::unique_ptr<DcmSegmentation> owner(seg);
  EXPECT_EQ(seg->getNumberOfSegments(), 3u);
  size_t expected_frames = 0;
  const size_t plane = (size_t)(g->size[0] * g->size[1]);
  for (int s = 1; s <= 3; ++s)
    for (int64_t k = 0; k < g->size[2]; ++k)
      for (size_t i = 0; i < plane; ++i)
        if (labels[(size_t)k * plane + i] == s) {
          ++expected_frames;
          break;
        }
  EXPECT_EQ(seg->getNumberOfFrames(), expected_frames);
  OFVector<size_t> frames;
  seg->getFramesForSegment(3, frames);
  EXPECT_TRUE(frames.empty());
  if ((g->size[0] * g->size[1]) % 8 == 0) expect_dcmtk_masks(*seg, f.vol.get(), labels);
}

const double kCoronal[6] = {1, 0, 0, 0, 0, -1}, kSagittal[6] = {0, 1, 0, 0, 0, -1};

}  // namespace

TEST(DicomSeg, BinaryAxialIsValidAndReadsBack) { write_and_check(Spec(), "seg-axial"); }

TEST(DicomSeg, FractionalAxialIsValidAndReadsBack) { write_and_check(Spec(), "seg-frac", 1); }

TEST(DicomSeg, CoronalReversed) {
  Spec s;
  std::copy(kCoronal, kCoronal + 6, s.iop);
  s.reverse = true;
  write_and_check(s, "seg-coronal");
}

TEST(DicomSeg, Sagittal) {
  Spec s;
  std::copy(kSagittal, kSagittal + 6, s.iop);
  write_and_check(s, "seg-sagittal");
}

TEST(DicomSeg, Oblique) {
  Spec s;
  const double a = 0.35, b = 0.26;
  const double iop[6] = {std::cos(b), std::sin(b), 0, -std::sin(b) * std::cos(a), std::cos(b) * std::cos(a), std::sin(a)};
  std::copy(iop, iop + 6, s.iop);
  write_and_check(s, "seg-oblique");
}

TEST(DicomSeg, GantryTilt) {
  Spec s;
  s.tilt_deg = 15;
  write_and_check(s, "seg-tilt");
}

TEST(DicomSeg, EnhancedSourceReferencesFrames) {
  Spec s;
  s.enhanced = true;
  write_and_check(s, "seg-enhanced");
}

TEST(DicomSeg, OddFrameSizeBitPacking) {
  Spec s;
  s.cols = 13;
  s.rows = 11;  // 143 bits per frame: frames are not byte aligned
  write_and_check(s, "seg-odd");
}

TEST(DicomSeg, MasksFractional) {
  Fixture f;
  setup(Spec(), "seg-masks", f);
  if (::testing::Test::HasFatalFailure()) return;
  const mi_geometry *g = mi_dicom_volume_geometry(f.vol.get());
  const size_t n = (size_t)(g->size[0] * g->size[1] * g->size[2]);
  std::vector<float> m1(n, 0.f), m2(n, 0.f);
  m1[5] = 0.5f, m1[n - 1] = 1.f, m2[7] = 0.25f;  // overlapping-capable masks
  const float *masks[2] = {m1.data(), m2.data()};
  mi_seg_options o;
  mi_seg_options_init(&o);
  o.fractional = 1;
  const std::string out = f.dir + "/frac.dcm";
  ASSERT_EQ(take(mi_dicom_write_seg_masks(f.vol.get(), masks, kSegments, 2, &o, out.c_str())), "");
  EXPECT_EQ(segcheck::dciodvfy_errors(out), "");
  DcmSegmentation *seg = nullptr;
  ASSERT_TRUE(DcmSegmentation::loadFile(out.c_str(), seg).good());
  std::unique_ptr<DcmSegmentation> owner(seg);
  ASSERT_EQ(seg->getNumberOfFrames(), 3u);  // slice 0 (seg 1), last slice (seg 1), slice 0 (seg 2)
  const DcmIODTypes::Frame *fr = seg->getFrame(0);
  ASSERT_NE(fr, nullptr);
  EXPECT_EQ(fr->pixData[5], 128);
}

// BINARY from float masks: a pixel is set from 0.5 up (NaN and below: not),
// packed into the stream whether frames start on a byte (24x20) or not (13x11).
TEST(DicomSeg, MasksBinaryMatchTheirLabels) {
  for (const bool odd : {false, true}) {
    SCOPED_TRACE(odd ? "13x11" : "24x20");
    Spec spec;
    if (odd) spec.cols = 13, spec.rows = 11;
    Fixture f;
    setup(spec, odd ? "seg-masks-bin-odd" : "seg-masks-bin", f);
    if (::testing::Test::HasFatalFailure()) return;
    const mi_geometry *g = mi_dicom_volume_geometry(f.vol.get());
    const std::vector<uint8_t> labels = make_labels(*g);
    std::vector<float> m1(labels.size()), m2(labels.size());
    for (size_t i = 0; i < labels.size(); ++i) {
      m1[i] = labels[i] == 1 ? (i % 3 ? 0.5f : 1.f) : i % 5 == 0 ? 0.49f : i % 7 == 0 ? NAN : 0.f;
      m2[i] = labels[i] == 2 ? 0.75f : i % 4 == 0 ? -1.f : 0.f;
    }
    const float *masks[2] = {m1.data(), m2.data()};
    const std::string out = f.dir + "/bin.dcm";
    ASSERT_EQ(take(mi_dicom_write_seg_masks(f.vol.get(), masks, kSegments, 2, nullptr, out.c_str())), "");
    EXPECT_EQ(segcheck::dciodvfy_errors(out), "");
    EXPECT_EQ(segcheck::pydicom_check(f.vol.get(), labels.data(), 2, out, f.dir), "");
  }
}

TEST(DicomSeg, UnwritableFolderIsNamedAndLeavesNothing) {
  Fixture f;
  setup(Spec(), "seg-ro", f);
  if (::testing::Test::HasFatalFailure()) return;
  std::vector<uint8_t> labels = make_labels(*mi_dicom_volume_geometry(f.vol.get()));
  const std::string ro = f.dir + "/readonly";
  fs::create_directory(ro);
  fs::permissions(ro, fs::perms::owner_read | fs::perms::owner_exec);
  const std::string out = ro + "/seg.dcm";
  std::string err;
  if (access(ro.c_str(), W_OK) == 0) {
    // root ignores permissions; use a folder that does not exist instead
    err = take(mi_dicom_write_seg_labelmap(f.vol.get(), labels.data(), kSegments, 3, nullptr,
                                           (f.dir + "/no/such/dir/seg.dcm").c_str()));
    EXPECT_NE(err.find("no/such/dir"), std::string::npos) << err;
  } else {
    err = take(mi_dicom_write_seg_labelmap(f.vol.get(), labels.data(), kSegments, 3, nullptr, out.c_str()));
    EXPECT_NE(err.find(out), std::string::npos) << err;
  }
  EXPECT_NE(err, "");
  EXPECT_TRUE(fs::is_empty(ro));
  fs::permissions(ro, fs::perms::owner_all);
}

TEST(DicomSeg, RefusesToOverwriteASourceImage) {
  Fixture f;
  setup(Spec(), "seg-overwrite", f);
  if (::testing::Test::HasFatalFailure()) return;
  std::vector<uint8_t> labels = make_labels(*mi_dicom_volume_geometry(f.vol.get()));
  const std::string victim = f.truth.files[0];
  const auto before = fs::file_size(victim);
  std::string err = take(mi_dicom_write_seg_labelmap(f.vol.get(), labels.data(), kSegments, 3, nullptr, victim.c_str()));
  EXPECT_NE(err.find("source image"), std::string::npos) << err;
  EXPECT_EQ(fs::file_size(victim), before);
}

TEST(DicomSeg, LabelBeyondSegmentCountIsRejected) {
  Fixture f;
  setup(Spec(), "seg-badlabel", f);
  if (::testing::Test::HasFatalFailure()) return;
  std::vector<uint8_t> labels = make_labels(*mi_dicom_volume_geometry(f.vol.get()));
  labels[3] = 9;
  const std::string out = f.dir + "/seg.dcm";
  std::string err = take(mi_dicom_write_seg_labelmap(f.vol.get(), labels.data(), kSegments, 3, nullptr, out.c_str()));
  EXPECT_NE(err.find("label value 9"), std::string::npos) << err;
  EXPECT_FALSE(fs::exists(out));
}

// A source UID DCMTK cannot reference (a '?' in the series UID) fails the
// write, saying which, and leaves no file (its reference leaked before).
TEST(DicomSeg, UnreferenceableSourceUidIsNamed) {
  Spec spec;
  spec.series_uid = "1.2.3?4";
  Fixture f;
  setup(spec, "seg-baduid", f);
  if (::testing::Test::HasFatalFailure()) return;
  std::vector<uint8_t> labels = make_labels(*mi_dicom_volume_geometry(f.vol.get()));
  const std::string out = f.dir + "/seg.dcm";
  std::string err = take(mi_dicom_write_seg_labelmap(f.vol.get(), labels.data(), kSegments, 3, nullptr, out.c_str()));
  EXPECT_NE(err.find("cannot be referenced"), std::string::npos) << err;
  EXPECT_NE(err.find("1.2.3?4"), std::string::npos) << err;
  EXPECT_FALSE(fs::exists(out));
}

TEST(DicomSeg, CielabColourMatchesDcmtk) {
  const uint8_t white[3] = {255, 255, 255};
  uint16_t lab[3];
  mi_seg_rgb_to_dicom_lab(white, lab);
  EXPECT_NEAR(lab[0], 65535, 2);     // L = 100
  EXPECT_NEAR(lab[1], 32896, 200);   // a = 0 (0x8080)
  EXPECT_NEAR(lab[2], 32896, 200);
}

// A result present on one slice only, among several segments: dcmseg alone
// cannot encode fewer frames than segments, so the writer adds one empty
// frame per empty segment.
TEST(DicomSeg, SingleSliceResultAmongSeveralSegments) {
  Fixture f;
  setup(Spec(), "seg-one-slice", f);
  if (::testing::Test::HasFatalFailure()) return;
  const mi_geometry *g = mi_dicom_volume_geometry(f.vol.get());
  const size_t plane = (size_t)(g->size[0] * g->size[1]);
  std::vector<uint8_t> labels(plane * (size_t)g->size[2], 0);
  const int64_t k = g->size[2] / 2;
  for (size_t i = plane / 3; i < plane / 3 + 5; ++i) labels[(size_t)k * plane + i] = 2;
  const std::string out = f.dir + "/seg.dcm";
  ASSERT_EQ(take(mi_dicom_write_seg_labelmap(f.vol.get(), labels.data(), kSegments, 3, nullptr, out.c_str())), "");
  EXPECT_EQ(segcheck::dciodvfy_errors(out), "");
  EXPECT_EQ(segcheck::pydicom_check(f.vol.get(), labels.data(), 3, out, f.dir), "");
  DcmSegmentation *seg = nullptr;
  ASSERT_TRUE(DcmSegmentation::loadFile(out.c_str(), seg).good());
  std::unique_ptr<DcmSegmentation> owner(seg);
  EXPECT_EQ(seg->getNumberOfFrames(), 3u);
  if (plane % 8 == 0) expect_dcmtk_masks(*seg, f.vol.get(), labels);
}
