// DICOM written by the phantom: read back with DCMTK, checked attribute by
// attribute against the in-memory phantom, and validated with dciodvfy.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>

#include "phantom_test_util.h"

namespace {

struct Written {
  PhantomPtr p;
  std::vector<std::unique_ptr<DicomFile>> files;  // in file-name order
  std::vector<std::string> names;
};

void write_and_read(const mi_phantom_options &o, const TempDir &dir, Written &w) {
  w.p = make_phantom(o);
  ASSERT_TRUE(w.p);
  int64_t count = -1;
  mi_status *st = mi_phantom_write_dicom(w.p.get(), dir.path().c_str(), &count);
  ASSERT_EQ(st, nullptr) << mi_status_message(st);
  w.names = list_dir(dir.path());
  ASSERT_EQ((int64_t)w.names.size(), count);
  for (const auto &n : w.names) {
    w.files.push_back(read_dicom(dir.path() + "/" + n));
    ASSERT_TRUE(w.files.back()->ok) << n;
  }
}

double dot(const double *a, const double *b) { return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]; }

// Which slice k a file's ImagePositionPatient designates (-1 if none within 1e-4 mm).
int64_t slice_of(const mi_phantom *p, const std::vector<double> &ipp) {
  for (int64_t k = 0; k < p->geometry.size[2]; k++) {
    double q[3];
    mi_phantom_slice_position(p, k, q);
    if (std::fabs(q[0] - ipp[0]) < 1e-4 && std::fabs(q[1] - ipp[1]) < 1e-4 && std::fabs(q[2] - ipp[2]) < 1e-4) return k;
  }
  return -1;
}

void expect_slice_pixels(DicomFile &f, const mi_phantom *p, int64_t k, const uint16_t *frame = nullptr) {
  const size_t n = (size_t)(p->geometry.size[0] * p->geometry.size[1]);
  std::vector<uint16_t> px;
  if (!frame) {
    px = f.pixels();
    ASSERT_EQ(px.size(), n) << f.path;
    frame = px.data();
  }
  size_t bad = 0;
  for (size_t i = 0; i < n; i++) bad += (double)frame[i] * p->rescale_slope + p->rescale_intercept != p->values[n * k + i];
  EXPECT_EQ(bad, 0u) << f.path << " slice " << k;
}

}  // namespace

TEST(PhantomDicom, ClassicCTSeriesMatchesThePhantom) {
  TempDir dir("ct");
  Written w;
  write_and_read(small_options(), dir, w);
  const mi_phantom *p = w.p.get();
  ASSERT_EQ((int64_t)w.files.size(), p->geometry.size[2]);
  double iop[6];
  mi_phantom_orientation_patient(p, iop);
  std::vector<int64_t> by_name;
  std::vector<int64_t> seen(p->geometry.size[2], 0);
  for (auto &f : w.files) {
    EXPECT_EQ(f->str(DCM_SOPClassUID), "1.2.840.10008.5.1.4.1.1.2");
    EXPECT_EQ(f->str(DCM_Modality), "CT");
    EXPECT_EQ(f->str(DCM_StudyInstanceUID), p->study_uid);
    EXPECT_EQ(f->str(DCM_SeriesInstanceUID), p->series_uid);
    EXPECT_EQ(f->str(DCM_FrameOfReferenceUID), p->frame_of_reference_uid);
    EXPECT_EQ(f->str(DCM_PatientID), p->patient_id);
    EXPECT_EQ(f->str(DCM_RescaleIntercept), "-1024");
    EXPECT_EQ(f->str(DCM_BitsStored), "12");
    const int64_t k = slice_of(p, f->ds_values(DCM_ImagePositionPatient));
    ASSERT_GE(k, 0) << f->path;
    seen[k]++;
    by_name.push_back(k);
    EXPECT_EQ(f->str(DCM_SOPInstanceUID), p->sop_instance_uids[k]);
    EXPECT_EQ(f->str(DCM_InstanceNumber), std::to_string(k + 1));
    auto got_iop = f->ds_values(DCM_ImageOrientationPatient);
    ASSERT_EQ(got_iop.size(), 6u);
    for (int i = 0; i < 6; i++) EXPECT_NEAR(got_iop[i], iop[i], 1e-9);
    auto ps = f->ds_values(DCM_PixelSpacing);
    ASSERT_EQ(ps.size(), 2u);
    EXPECT_NEAR(ps[0], p->geometry.spacing[1], 1e-9);
    EXPECT_NEAR(ps[1], p->geometry.spacing[0], 1e-9);
    expect_slice_pixels(*f, p, k);
  }
  for (int64_t c : seen) EXPECT_EQ(c, 1);
  // File-name order must not be spatial order, either way round.
  EXPECT_FALSE(std::is_sorted(by_name.begin(), by_name.end()));
  EXPECT_FALSE(std::is_sorted(by_name.rbegin(), by_name.rend()));
}

TEST(PhantomDicom, ReversedOrderNumbersFromTheTop) {
  TempDir dir("rev");
  mi_phantom_options o = small_options();
  o.reverse_slices = 1;
  Written w;
  write_and_read(o, dir, w);
  const mi_phantom *p = w.p.get();
  const int64_t nz = p->geometry.size[2];
  std::vector<std::pair<int, double>> inst_pos;  // InstanceNumber, projection on the normal
  double iop[6];
  mi_phantom_orientation_patient(p, iop);
  const double nrm[3] = {iop[1] * iop[5] - iop[2] * iop[4], iop[2] * iop[3] - iop[0] * iop[5],
                         iop[0] * iop[4] - iop[1] * iop[3]};
  for (auto &f : w.files) {
    auto ipp = f->ds_values(DCM_ImagePositionPatient);
    const int64_t k = slice_of(p, ipp);
    ASSERT_GE(k, 0);
    EXPECT_EQ(f->str(DCM_InstanceNumber), std::to_string(nz - k));
    inst_pos.push_back({std::stoi(f->str(DCM_InstanceNumber)), dot(ipp.data(), nrm)});
    expect_slice_pixels(*f, p, k);
  }
  std::sort(inst_pos.begin(), inst_pos.end());
  for (size_t i = 1; i < inst_pos.size(); i++) EXPECT_LT(inst_pos[i].second, inst_pos[i - 1].second);
}

TEST(PhantomDicom, GantryTiltShowsInOrientationAndPositions) {
  TempDir dir("tilt");
  mi_phantom_options o = small_options();
  o.gantry_tilt_deg = 15;
  Written w;
  write_and_read(o, dir, w);
  std::map<int, std::vector<double>> pos;
  std::vector<double> iop;
  for (auto &f : w.files) {
    pos[std::stoi(f->str(DCM_InstanceNumber))] = f->ds_values(DCM_ImagePositionPatient);
    iop = f->ds_values(DCM_ImageOrientationPatient);
    EXPECT_NEAR(std::stod(f->str(DCM_GantryDetectorTilt)), 15, 1e-9);
  }
  ASSERT_EQ(iop.size(), 6u);
  const double nrm[3] = {iop[1] * iop[5] - iop[2] * iop[4], iop[2] * iop[3] - iop[0] * iop[5],
                         iop[0] * iop[4] - iop[1] * iop[3]};
  const double step[3] = {pos[2][0] - pos[1][0], pos[2][1] - pos[1][1], pos[2][2] - pos[1][2]};
  const double len = std::sqrt(dot(step, step));
  // The stacking direction is 15 degrees off the image normal: the slices shear.
  EXPECT_NEAR(std::acos(dot(step, nrm) / len) * 180 / M_PI, 15, 1e-6);
  EXPECT_NEAR(std::fabs(dot(step, iop.data() + 3)) / len, std::sin(15 * M_PI / 180), 1e-9);
}

TEST(PhantomDicom, MissingSliceLeavesAGap) {
  TempDir dir("gap");
  mi_phantom_options o = small_options();
  o.missing_slice = 9;
  Written w;
  write_and_read(o, dir, w);
  const mi_phantom *p = w.p.get();
  ASSERT_EQ((int64_t)w.files.size(), p->geometry.size[2] - 1);
  std::vector<int64_t> ks;
  for (auto &f : w.files) ks.push_back(slice_of(p, f->ds_values(DCM_ImagePositionPatient)));
  EXPECT_EQ(std::count(ks.begin(), ks.end(), 9), 0);
  EXPECT_EQ(std::count(ks.begin(), ks.end(), -1), 0);
  EXPECT_EQ(std::count(ks.begin(), ks.end(), 8), 1);
  EXPECT_EQ(std::count(ks.begin(), ks.end(), 10), 1);
}

TEST(PhantomDicom, EnhancedCTHasFramesAndFunctionalGroups) {
  for (int reverse : {0, 1}) {
    TempDir dir(reverse ? "enh_rev" : "enh");
    mi_phantom_options o = small_options();
    o.enhanced = 1;
    o.reverse_slices = reverse;
    o.orientation = MI_PHANTOM_OBLIQUE;
    Written w;
    write_and_read(o, dir, w);
    const mi_phantom *p = w.p.get();
    const int64_t nz = p->geometry.size[2];
    ASSERT_EQ(w.files.size(), 1u);
    DicomFile &f = *w.files[0];
    EXPECT_EQ(f.str(DCM_SOPClassUID), "1.2.840.10008.5.1.4.1.1.2.1");
    EXPECT_EQ(f.str(DCM_NumberOfFrames), std::to_string(nz));
    DcmItem *shared = nullptr;
    ASSERT_TRUE(f.ds()->findAndGetSequenceItem(DCM_SharedFunctionalGroupsSequence, shared, 0).good());
    DcmItem *orient = nullptr, *measures = nullptr, *rescale = nullptr;
    ASSERT_TRUE(shared->findAndGetSequenceItem(DCM_PlaneOrientationSequence, orient, 0).good());
    ASSERT_TRUE(shared->findAndGetSequenceItem(DCM_PixelMeasuresSequence, measures, 0).good());
    ASSERT_TRUE(shared->findAndGetSequenceItem(DCM_PixelValueTransformationSequence, rescale, 0).good());
    double iop[6];
    mi_phantom_orientation_patient(p, iop);
    auto got = ds_values_of(orient, DCM_ImageOrientationPatient);
    ASSERT_EQ(got.size(), 6u);
    for (int i = 0; i < 6; i++) EXPECT_NEAR(got[i], iop[i], 1e-9);
    EXPECT_NEAR(ds_values_of(measures, DCM_PixelSpacing).at(0), p->geometry.spacing[1], 1e-9);
    EXPECT_NEAR(ds_values_of(rescale, DCM_RescaleIntercept).at(0), -1024, 0);
    DcmSequenceOfItems *per_frame = nullptr;
    ASSERT_TRUE(f.ds()->findAndGetSequence(DCM_PerFrameFunctionalGroupsSequence, per_frame).good());
    ASSERT_EQ((int64_t)per_frame->card(), nz);
    std::vector<uint16_t> px = f.pixels();
    const size_t n = (size_t)(p->geometry.size[0] * p->geometry.size[1]);
    ASSERT_EQ(px.size(), n * (size_t)nz);
    for (int64_t fr = 0; fr < nz; fr++) {
      DcmItem *pos = nullptr;
      ASSERT_TRUE(per_frame->getItem((unsigned long)fr)->findAndGetSequenceItem(DCM_PlanePositionSequence, pos, 0).good());
      const int64_t k = slice_of(p, ds_values_of(pos, DCM_ImagePositionPatient));
      EXPECT_EQ(k, reverse ? nz - 1 - fr : fr) << "frame " << fr;
      expect_slice_pixels(f, p, k, px.data() + n * (size_t)fr);
    }
  }
}

TEST(PhantomDicom, TransferSyntaxesAreAsRequestedAndLossless) {
  for (mi_phantom_transfer_syntax ts :
       {MI_PHANTOM_TS_IMPLICIT_LE, MI_PHANTOM_TS_EXPLICIT_BE, MI_PHANTOM_TS_DEFLATED, MI_PHANTOM_TS_RLE,
        MI_PHANTOM_TS_JPEG_LOSSLESS, MI_PHANTOM_TS_JPEGLS_LOSSLESS}) {
    for (int enhanced : {0, 1}) {
      TempDir dir("ts" + std::to_string((int)ts) + "_" + std::to_string(enhanced));
      mi_phantom_options o = small_options();
      o.size[2] = 6;
      o.transfer_syntax = ts;
      o.enhanced = enhanced;
      Written w;
      write_and_read(o, dir, w);
      const mi_phantom *p = w.p.get();
      for (auto &f : w.files) {
        EXPECT_EQ(f->transfer_syntax(), mi_phantom_transfer_syntax_uid(ts));
        if (!enhanced) {
          expect_slice_pixels(*f, p, slice_of(p, f->ds_values(DCM_ImagePositionPatient)));
          continue;
        }
        const std::vector<uint16_t> px = f->pixels();
        const size_t n = (size_t)(p->geometry.size[0] * p->geometry.size[1]);
        ASSERT_EQ(px.size(), n * 6) << "ts " << ts;
        for (int64_t k = 0; k < 6; k++) expect_slice_pixels(*f, p, k, px.data() + n * (size_t)k);
      }
    }
  }
}

TEST(PhantomDicom, MRSeriesHasNoRescale) {
  TempDir dir("mr");
  mi_phantom_options o = small_options();
  o.modality = MI_PHANTOM_MR;
  o.orientation = MI_PHANTOM_SAGITTAL;
  Written w;
  write_and_read(o, dir, w);
  for (auto &f : w.files) {
    EXPECT_EQ(f->str(DCM_SOPClassUID), "1.2.840.10008.5.1.4.1.1.4");
    EXPECT_EQ(f->str(DCM_Modality), "MR");
    EXPECT_EQ(f->str(DCM_RescaleIntercept), "<absent>");
    expect_slice_pixels(*f, w.p.get(), slice_of(w.p.get(), f->ds_values(DCM_ImagePositionPatient)));
  }
}

// dciodvfy: no "Error" line on a sample file of every kind.
TEST(PhantomDicom, DciodvfyFindsNoErrors) {
  struct Kind {
    const char *name;
    void (*edit)(mi_phantom_options &);
  } kinds[] = {
      {"axial", [](mi_phantom_options &) {}},
      {"coronal", [](mi_phantom_options &o) { o.orientation = MI_PHANTOM_CORONAL; }},
      {"oblique_lesions", [](mi_phantom_options &o) { o.orientation = MI_PHANTOM_OBLIQUE, o.lesions = 2; }},
      {"tilt_reversed", [](mi_phantom_options &o) { o.gantry_tilt_deg = -12, o.reverse_slices = 1; }},
      {"mr", [](mi_phantom_options &o) { o.modality = MI_PHANTOM_MR; }},
      {"enhanced", [](mi_phantom_options &o) { o.enhanced = 1; }},
      {"enhanced_jpegls", [](mi_phantom_options &o) { o.enhanced = 1, o.transfer_syntax = MI_PHANTOM_TS_JPEGLS_LOSSLESS; }},
      {"implicit", [](mi_phantom_options &o) { o.transfer_syntax = MI_PHANTOM_TS_IMPLICIT_LE; }},
      {"big_endian", [](mi_phantom_options &o) { o.transfer_syntax = MI_PHANTOM_TS_EXPLICIT_BE; }},
      {"deflated", [](mi_phantom_options &o) { o.transfer_syntax = MI_PHANTOM_TS_DEFLATED; }},
      {"rle", [](mi_phantom_options &o) { o.transfer_syntax = MI_PHANTOM_TS_RLE; }},
      {"jpeg", [](mi_phantom_options &o) { o.transfer_syntax = MI_PHANTOM_TS_JPEG_LOSSLESS; }},
      {"jpegls", [](mi_phantom_options &o) { o.transfer_syntax = MI_PHANTOM_TS_JPEGLS_LOSSLESS; }},
  };
  for (const auto &k : kinds) {
    TempDir dir(k.name);
    mi_phantom_options o = small_options();
    o.size[2] = 4;
    k.edit(o);
    PhantomPtr p = make_phantom(o);
    ASSERT_TRUE(p);
    mi_status *st = mi_phantom_write_dicom(p.get(), dir.path().c_str(), nullptr);
    ASSERT_EQ(st, nullptr) << mi_status_message(st);
    const auto names = list_dir(dir.path());
    ASSERT_FALSE(names.empty());
    const auto errors = dciodvfy_errors(dir.path() + "/" + names[0]);
    std::string all;
    for (const auto &e : errors) all += e;
    EXPECT_TRUE(errors.empty()) << k.name << ":\n" << all;
  }
}

TEST(PhantomDicom, UnwritableFolderIsANamedError) {
  PhantomPtr p = make_phantom(small_options());
  ASSERT_TRUE(p);
  TempDir dir("file");
  const std::string file = dir.path() + "/plain_file";
  std::ofstream(file) << "x";
  for (const std::string &target : {file, file + "/sub", std::string("/proc/mi_phantom_cannot_exist")}) {
    mi_status *st = mi_phantom_write_dicom(p.get(), target.c_str(), nullptr);
    ASSERT_NE(st, nullptr) << target;
    EXPECT_EQ(mi_status_code(st), MI_ERR_IO);
    EXPECT_NE(std::string(mi_status_message(st)).find(target), std::string::npos) << mi_status_message(st);
    mi_status_free(st);
  }
}

// A write that fails part-way removes what it wrote and leaves no temporaries.
TEST(PhantomDicom, FailedWriteLeavesNothingBehind) {
  mi_phantom_options o = small_options();
  o.threads = 1;
  PhantomPtr p = make_phantom(o);
  ASSERT_TRUE(p);
  TempDir dir("partial");
  // A non-empty folder where one slice file must go makes that rename fail.
  const std::string blocker = dir.path() + "/IM00005.dcm";
  ASSERT_EQ(mkdir(blocker.c_str(), 0755), 0);
  std::ofstream(blocker + "/keep") << "x";
  mi_status *st = mi_phantom_write_dicom(p.get(), dir.path().c_str(), nullptr);
  ASSERT_NE(st, nullptr);
  EXPECT_EQ(mi_status_code(st), MI_ERR_IO);
  EXPECT_NE(std::string(mi_status_message(st)).find("IM00005.dcm"), std::string::npos) << mi_status_message(st);
  mi_status_free(st);
  EXPECT_EQ(list_dir(dir.path()), std::vector<std::string>{"IM00005.dcm"});
}

// The dciodvfy check above must be able to fail: break a valid file on purpose.
TEST(PhantomDicom, DciodvfyCheckDetectsABrokenFile) {
  TempDir dir("broken");
  mi_phantom_options o = small_options();
  o.size[2] = 3;
  PhantomPtr p = make_phantom(o);
  ASSERT_TRUE(p);
  ASSERT_EQ(mi_phantom_write_dicom(p.get(), dir.path().c_str(), nullptr), nullptr);
  const std::string path = dir.path() + "/" + list_dir(dir.path())[0];
  ASSERT_TRUE(dciodvfy_errors(path).empty());
  auto f = read_dicom(path);
  delete f->ds()->remove(DCM_ImageType);  // type 1 in the CT Image module
  ASSERT_TRUE(f->ff.saveFile(path.c_str(), EXS_LittleEndianExplicit).good());
  EXPECT_FALSE(dciodvfy_errors(path).empty());
}
