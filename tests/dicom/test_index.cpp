// Series index over folders (nested, mixed with non-DICOM files) and DICOMDIR.
#include <gtest/gtest.h>

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcddirif.h>
#include <dcmtk/dcmdata/dctk.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <vector>

#include "helpers.h"
#include "../common/temp_dir.h"
#include "series_builder.h"

namespace fs = std::filesystem;
using testdata::Spec;

namespace {

struct Study {
  TempDir tmp{"dicom-index"};
  std::string dir = tmp.path();
  testdata::Series axial, coronal;
  Study() {
    Spec a;
    EXPECT_EQ(testdata::write_series(a, dir + "/S1", axial), "");
    Spec c;
    c.study_uid = axial.study_uid;
    const double iop[6] = {1, 0, 0, 0, 0, -1};
    std::copy(iop, iop + 6, c.iop);
    c.slices = 6;
    c.enhanced = true;
    EXPECT_EQ(testdata::write_series(c, dir + "/S2/DEEP", coronal), "");
    std::ofstream(dir + "/README.txt") << "not dicom";
    std::ofstream(dir + "/S1/empty");
    std::ofstream junk(dir + "/S2/junk.bin", std::ios::binary);
    for (int i = 0; i < 5000; ++i) junk.put((char)(i * 37));
  }
};

std::map<std::string, mi_dicom_series_info> by_uid(const mi_dicom_index *idx) {
  std::map<std::string, mi_dicom_series_info> m;
  for (size_t i = 0; i < mi_dicom_index_series_count(idx); ++i) {
    mi_dicom_series_info info;
    EXPECT_EQ(take(mi_dicom_index_series(idx, i, &info)), "");
    m[info.series_uid] = info;
  }
  return m;
}

void expect_study(const mi_dicom_index *idx, const Study &s) {
  auto m = by_uid(idx);
  ASSERT_EQ(m.size(), 2u);
  const mi_dicom_series_info &a = m.at(s.axial.series_uid), &c = m.at(s.coronal.series_uid);
  EXPECT_EQ(std::string(a.modality), "CT");
  EXPECT_EQ(std::string(a.orientation), "AXIAL");
  EXPECT_EQ(a.instances, 10);
  EXPECT_EQ(a.slices, 10);
  EXPECT_EQ(a.rows, 20);
  EXPECT_EQ(a.cols, 24);
  EXPECT_TRUE(a.loadable) << a.reason;
  EXPECT_EQ(std::string(a.patient_id), "MI-TEST-1");
  EXPECT_EQ(std::string(c.orientation), "CORONAL");
  EXPECT_EQ(c.instances, 1);
  EXPECT_EQ(c.slices, 6);
  EXPECT_TRUE(c.loadable) << c.reason;
  EXPECT_EQ(std::string(a.study_uid), std::string(c.study_uid));
}

}  // namespace

TEST(DicomIndex, FolderWithNonDicomFiles) {
  Study s;
  mi_dicom_index *idx = nullptr;
  ASSERT_EQ(take(mi_dicom_index_scan(s.dir.c_str(), &idx)), "");
  expect_study(idx, s);
  EXPECT_EQ(mi_dicom_index_skipped_count(idx), 3u);
  for (size_t i = 0; i < mi_dicom_index_skipped_count(idx); ++i)
    EXPECT_STRNE(mi_dicom_index_skipped_reason(idx, i), "") << mi_dicom_index_skipped_path(idx, i);
  // The index's series load.
  for (size_t i = 0; i < mi_dicom_index_series_count(idx); ++i) {
    mi_dicom_volume *v = nullptr;
    EXPECT_EQ(take(mi_dicom_load_series(idx, i, nullptr, &v)), "");
    mi_dicom_volume_free(v);
  }
  mi_dicom_index_free(idx);
}

TEST(DicomIndex, Dicomdir) {
  Study s;
  DicomDirInterface dd;
  const std::string path = s.dir + "/DICOMDIR";
  ASSERT_TRUE(dd.createNewDicomDir(DicomDirInterface::AP_GeneralPurpose, path.c_str(), "MEDINFER").good());
  dd.disableConsistencyCheck(OFTrue);
  for (const auto &f : s.axial.files)
    ASSERT_TRUE(dd.addDicomFile(fs::relative(f, s.dir).c_str(), s.dir.c_str()).good()) << f;
  ASSERT_TRUE(dd.writeDicomDir().good());
  mi_dicom_index *idx = nullptr;
  ASSERT_EQ(take(mi_dicom_index_scan(path.c_str(), &idx)), "");
  ASSERT_EQ(mi_dicom_index_series_count(idx), 1u);
  mi_dicom_series_info info;
  ASSERT_EQ(take(mi_dicom_index_series(idx, 0, &info)), "");
  EXPECT_EQ(std::string(info.series_uid), s.axial.series_uid);
  EXPECT_EQ(info.instances, 10);
  EXPECT_TRUE(info.loadable);
  mi_dicom_index_free(idx);
  // The folder scan skips the DICOMDIR itself with a reason.
  ASSERT_EQ(take(mi_dicom_index_scan(s.dir.c_str(), &idx)), "");
  bool seen = false;
  for (size_t i = 0; i < mi_dicom_index_skipped_count(idx); ++i)
    seen |= std::string(mi_dicom_index_skipped_reason(idx, i)).find("DICOMDIR") != std::string::npos;
  EXPECT_TRUE(seen);
  mi_dicom_index_free(idx);
}

TEST(DicomIndex, UnloadableSeriesSaysWhy) {
  TempDir tmp("dicom-index-gap");
  const std::string dir = tmp.path();
  testdata::Series s;
  ASSERT_EQ(testdata::write_series(Spec(), dir, s), "");
  fs::remove(s.files[5]);
  mi_dicom_index *idx = nullptr;
  ASSERT_EQ(take(mi_dicom_index_scan(dir.c_str(), &idx)), "");
  mi_dicom_series_info info;
  ASSERT_EQ(take(mi_dicom_index_series(idx, 0, &info)), "");
  EXPECT_FALSE(info.loadable);
  EXPECT_NE(std::string(info.reason).find("missing slice"), std::string::npos) << info.reason;
  mi_dicom_index_free(idx);
}

TEST(DicomIndex, SegBesideItsSourceIsANonLoadableSeries) {
  TempDir tmp("dicom-index-seg");
  const std::string dir = tmp.path();
  testdata::Series s;
  ASSERT_EQ(testdata::write_series(Spec(), dir, s), "");
  mi_dicom_volume *v = nullptr;
  ASSERT_EQ(take(mi_dicom_load_dir(dir.c_str(), nullptr, nullptr, &v)), "");
  const mi_geometry *g = mi_dicom_volume_geometry(v);
  std::vector<uint8_t> labels((size_t)(g->size[0] * g->size[1] * g->size[2]), 0);
  labels[100] = 1;
  const mi_seg_segment seg = {"Liver", nullptr, "SCT", "123037004", "Anatomical Structure", "SCT", "10200004", "Liver",
                              MI_SEG_ALGO_MANUAL, nullptr, {200, 100, 100}};
  ASSERT_EQ(take(mi_dicom_write_seg_labelmap(v, labels.data(), &seg, 1, nullptr, (dir + "/seg.dcm").c_str())), "");
  mi_dicom_volume_free(v);
  mi_dicom_index *idx = nullptr;
  ASSERT_EQ(take(mi_dicom_index_scan(dir.c_str(), &idx)), "");
  auto m = by_uid(idx);
  ASSERT_EQ(m.size(), 2u);
  EXPECT_TRUE(m.at(s.series_uid).loadable);
  for (auto &e : m)
    if (e.first != s.series_uid) {
      EXPECT_EQ(std::string(e.second.modality), "SEG");
      EXPECT_FALSE(e.second.loadable);
      EXPECT_NE(std::string(e.second.reason).find("SEG"), std::string::npos) << e.second.reason;
    }
  mi_dicom_index_free(idx);
  // Without a UID the folder still loads: the CT is its only loadable series.
  ASSERT_EQ(take(mi_dicom_load_dir(dir.c_str(), nullptr, nullptr, &v)), "");
  EXPECT_EQ(std::string(mi_dicom_volume_attribute(v, "SeriesInstanceUID")), s.series_uid);
  mi_dicom_volume_free(v);
}

// Texts come out in UTF-8 from the series' character set, and as Latin-1
// where the files declare none: reports and JSON need valid UTF-8 (raw
// ISO_IR 100 bytes reached report.json; found by fuzzing headers).
TEST(DicomIndex, TextsAreUtf8) {
  struct {
    const char *charset, *description, *name, *want_description, *want_name;
  } cases[] = {
      {"ISO_IR 100", "Th\xe9rax", "M\xfcller^J", "Th\xc3\xa9rax", "M\xc3\xbcller^J"},
      {nullptr, "Th\xe9rax", "M\xfcller^J", "Th\xc3\xa9rax", "M\xc3\xbcller^J"},
      {"ISO_IR 126", "\xd4\xe5\xf3\xf4", "\xc1\xe8\xe7\xe1^\xd3", "\xce\xa4\xce\xb5\xcf\x83\xcf\x84",
       "\xce\x91\xce\xb8\xce\xb7\xce\xb1^\xce\xa3"},
  };
  for (const auto &c : cases) {
    TempDir tmp{"dicom-charset"};
    testdata::Series s;
    ASSERT_EQ(testdata::write_series(Spec(), tmp.path() + "/S", s), "");
    for (const std::string &f : s.files) {
      DcmFileFormat ff;
      ASSERT_TRUE(ff.loadFile(f.c_str()).good());
      ff.loadAllDataIntoMemory();
      DcmDataset &d = *ff.getDataset();
      if (c.charset) d.putAndInsertString(DCM_SpecificCharacterSet, c.charset);
      d.putAndInsertString(DCM_SeriesDescription, c.description);
      d.putAndInsertString(DCM_PatientName, c.name);
      ASSERT_TRUE(ff.saveFile(f.c_str(), EXS_LittleEndianExplicit).good());
    }
    mi_dicom_index *idx = nullptr;
    ASSERT_EQ(take(mi_dicom_index_scan(tmp.path().c_str(), &idx)), "");
    ASSERT_EQ(mi_dicom_index_series_count(idx), 1u);
    mi_dicom_series_info info;
    ASSERT_EQ(take(mi_dicom_index_series(idx, 0, &info)), "");
    EXPECT_STREQ(info.series_description, c.want_description) << (c.charset ? c.charset : "none");
    EXPECT_STREQ(info.patient_name, c.want_name) << (c.charset ? c.charset : "none");
    mi_dicom_index_free(idx);
  }
}
