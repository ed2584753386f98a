// Bad input: every failure is an mi_status naming the file and the reason,
// never a crash, and never a partially loaded volume.
#include <gtest/gtest.h>

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dctk.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <memory>

#include "helpers.h"
#include "../common/temp_dir.h"
#include "series_builder.h"

namespace fs = std::filesystem;
using testdata::Spec;

namespace {

struct Scratch {
  std::unique_ptr<TempDir> tmp;
  std::string dir;
  testdata::Series s;
  explicit Scratch(const char *tag, const Spec &spec = Spec()) {
    tmp = std::make_unique<TempDir>(std::string("dicom-") + tag);
    dir = tmp->path();
    EXPECT_EQ(testdata::write_series(spec, dir, s), "");
  }
};

// Loads dir; returns the status text and code, and checks no volume came back.
std::string load_error(const std::string &dir, mi_code *code = nullptr, const mi_dicom_load_options *o = nullptr) {
  mi_dicom_volume *v = nullptr;
  mi_status *st = mi_dicom_load_dir(dir.c_str(), nullptr, o, &v);
  if (code) *code = mi_status_code(st);
  EXPECT_TRUE(st == nullptr || v == nullptr);
  mi_dicom_volume_free(v);
  return take(st);
}

void edit(const std::string &path, const std::function<void(DcmDataset &)> &fn) {
  DcmFileFormat ff;
  ASSERT_TRUE(ff.loadFile(path.c_str()).good());
  ff.loadAllDataIntoMemory();
  fn(*ff.getDataset());
  ASSERT_TRUE(ff.saveFile(path.c_str(), EXS_LittleEndianExplicit).good());
}

// Bytes of a file, and written back.
std::vector<char> file_bytes(const std::string &path) {
  std::ifstream f(path, std::ios::binary);
  return std::vector<char>(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}
void put_bytes(const std::string &path, const std::vector<char> &b) {
  std::ofstream(path, std::ios::binary | std::ios::trunc).write(b.data(), std::streamsize(b.size()));
}

}  // namespace

TEST(DicomBadInput, TruncatedPixelDataNamesTheFile) {
  Scratch t("trunc");
  const std::string victim = t.s.files[3];
  fs::resize_file(victim, fs::file_size(victim) - 300);
  mi_code code;
  std::string err = load_error(t.dir, &code);
  EXPECT_NE(err.find(victim), std::string::npos) << err;
  EXPECT_EQ(code, MI_ERR_PARSE) << err;
}

TEST(DicomBadInput, TruncatedHeaderIsSkippedByTheIndexAndRejectedByTheLoader) {
  Scratch t("trunchdr");
  const std::string victim = t.s.files[2];
  fs::resize_file(victim, 200);
  mi_dicom_index *idx = nullptr;
  ASSERT_EQ(take(mi_dicom_index_scan(t.dir.c_str(), &idx)), "");
  bool skipped = false;
  for (size_t i = 0; i < mi_dicom_index_skipped_count(idx); ++i)
    skipped |= mi_dicom_index_skipped_path(idx, i) == victim;
  EXPECT_TRUE(skipped);
  mi_dicom_index_free(idx);
  const char *files[1] = {victim.c_str()};
  mi_dicom_volume *v = nullptr;
  std::string err = take(mi_dicom_load_files(files, 1, nullptr, &v));
  EXPECT_EQ(v, nullptr);
  EXPECT_NE(err.find(victim), std::string::npos) << err;
}

TEST(DicomBadInput, SlicesDisagreeInSize) {
  Scratch t("size");
  Spec other;
  other.rows = 21;
  other.series_uid = t.s.series_uid;
  other.origin[2] = 500;
  testdata::Series s2;
  ASSERT_EQ(testdata::write_series(other, t.dir + "/more", s2), "");
  mi_code code;
  std::string err = load_error(t.dir, &code);
  EXPECT_NE(err.find("disagree in size"), std::string::npos) << err;
  EXPECT_NE(err.find(t.dir), std::string::npos) << err;
  EXPECT_EQ(code, MI_ERR_SHAPE);
}

TEST(DicomBadInput, SlicesDisagreeInOrientation) {
  Scratch t("orient");
  edit(t.s.files[4], [](DcmDataset &d) { d.putAndInsertString(DCM_ImageOrientationPatient, "1\\0\\0\\0\\0.9\\0.43589"); });
  std::string err = load_error(t.dir);
  EXPECT_NE(err.find("disagree in orientation"), std::string::npos) << err;
  EXPECT_NE(err.find(t.s.files[4]), std::string::npos) << err;
}

// Numbers DICOM's text allows but no image has (found by fuzzing headers):
// each refused, naming the file, instead of a NaN volume or a grid of
// 1e-30 mm voxels.
TEST(DicomBadInput, UnusableNumbersAreRefused) {
  const std::vector<std::pair<void (*)(DcmDataset &), const char *>> edits = {
      {[](DcmDataset &d) { d.putAndInsertString(DCM_RescaleSlope, "NaN"); }, "RescaleSlope nan"},
      {[](DcmDataset &d) { d.putAndInsertString(DCM_RescaleIntercept, "1e300"); }, "RescaleIntercept 1e+300"},
      {[](DcmDataset &d) { d.putAndInsertString(DCM_PixelSpacing, "1e-30\\1e-30"); }, "PixelSpacing 1e-30\\1e-30 mm"},
      {[](DcmDataset &d) { d.putAndInsertString(DCM_ImagePositionPatient, "0\\inf\\0"); },
       "ImagePositionPatient 0\\inf\\0"},
      {[](DcmDataset &d) { d.putAndInsertString(DCM_ImageOrientationPatient, "1\\0\\0\\0\\nan\\0"); },
       "ImageOrientationPatient 1\\0\\0\\0\\nan\\0"},
  };
  for (size_t i = 0; i < edits.size(); ++i) {
    Scratch t("numbers");
    // every file, so that no consistency check between slices speaks first
    for (const std::string &f : t.s.files) edit(f, edits[i].first);
    std::string err = load_error(t.dir);
    EXPECT_NE(err.find(std::string(edits[i].second) + " is not a usable number"), std::string::npos) << i << ": " << err;
    EXPECT_NE(err.find(t.dir), std::string::npos) << err;
  }
}

// Pixel Data with a row or more past Rows x Columns (Rows edited down) is an
// inconsistent header, not padding.
TEST(DicomBadInput, PixelDataLongerThanItsRowsIsRefused) {
  Scratch t("long");
  for (const std::string &f : t.s.files) edit(f, [](DcmDataset &d) { d.putAndInsertUint16(DCM_Rows, 1); });
  mi_code code;
  std::string err = load_error(t.dir, &code);
  EXPECT_NE(err.find("inconsistent header"), std::string::npos) << err;
  EXPECT_EQ(code, MI_ERR_PARSE) << err;
}

TEST(DicomBadInput, MissingPixelData) {
  Scratch t("nopixels");
  edit(t.s.files[1], [](DcmDataset &d) { delete d.remove(DCM_PixelData); });
  std::string err = load_error(t.dir);
  EXPECT_NE(err.find(t.s.files[1] + ": no Pixel Data"), std::string::npos) << err;
}

TEST(DicomBadInput, Jpeg2000IsUnsupportedAndNamed) {
  Spec s;
  s.transfer_syntax = "1.2.840.10008.1.2.4.90";
  Scratch t("j2k", s);
  mi_code code;
  std::string err = load_error(t.dir, &code);
  EXPECT_EQ(code, MI_ERR_UNSUPPORTED) << err;
  EXPECT_NE(err.find("JPEG 2000"), std::string::npos) << err;
  EXPECT_NE(err.find(t.dir), std::string::npos) << err;
  mi_dicom_index *idx = nullptr;
  ASSERT_EQ(take(mi_dicom_index_scan(t.dir.c_str(), &idx)), "");
  mi_dicom_series_info info;
  ASSERT_EQ(take(mi_dicom_index_series(idx, 0, &info)), "");
  EXPECT_FALSE(info.loadable);
  EXPECT_NE(std::string(info.reason).find("JPEG 2000"), std::string::npos);
  mi_dicom_index_free(idx);
}

// A JPEG fragment with a TEM marker (FF01) before its frame header: DCMTK's
// decoder, walking the markers for the bit depth, never returns from it (a
// fuzzer's find).  The file is refused, named, before DCMTK decodes it.
TEST(DicomBadInput, JpegThatWouldHangTheDecoderIsRefused) {
  Spec s;
  s.transfer_syntax = "1.2.840.10008.1.2.4.70";
  Scratch t("tem", s);
  const std::string victim = t.s.files[2];
  std::vector<char> b = file_bytes(victim);
  const char soi[4] = {'\xff', '\xd8', '\xff', '\0'}; /* SOI, then the next marker */
  auto at = std::search(b.begin(), b.end(), soi, soi + 3);
  ASSERT_NE(at, b.end());
  at[1] = '\x01'; /* SOI -> TEM */
  put_bytes(victim, b);
  mi_code code;
  std::string err = load_error(t.dir, &code);
  EXPECT_EQ(code, MI_ERR_PARSE) << err;
  EXPECT_NE(err.find(victim), std::string::npos) << err;
  EXPECT_NE(err.find("TEM marker"), std::string::npos) << err;
}

// An element whose length field claims more bytes than the file holds: the
// header read left it on disk and reading it would first allocate the
// claimed length (1.4 GB from a 3 KB file, a fuzzer's find).  Refused as
// corrupt, naming the element, by the loader and in the index's skipped list.
TEST(DicomBadInput, ElementLongerThanItsFileIsRefused) {
  Scratch t("oversized");
  const std::string victim = t.s.files[1];
  edit(victim, [](DcmDataset &d) { d.putAndInsertString(DCM_StudyDescription, std::string(5000, 'x').c_str()); });
  std::vector<char> b = file_bytes(victim);
  const char tag[8] = {'\x08', '\0', '\x30', '\x10', 'L', 'O', '\x88', '\x13'}; /* (0008,1030) LO, length 5000 */
  auto at = std::search(b.begin(), b.end(), tag, tag + 8);
  ASSERT_NE(at, b.end());
  at[6] = '\xff', at[7] = '\x7f'; /* its length field: 32767 bytes, in a file of about 7 KB */
  put_bytes(victim, b);
  const char *one[1] = {victim.c_str()};
  mi_dicom_volume *v = nullptr;
  std::string err = take(mi_dicom_load_files(one, 1, nullptr, &v));
  EXPECT_EQ(v, nullptr);
  mi_dicom_volume_free(v);
  EXPECT_NE(err.find(victim), std::string::npos) << err;
  EXPECT_NE(err.find("element (0008,1030) claims 32767 bytes"), std::string::npos) << err;
  mi_dicom_index *idx = nullptr;
  ASSERT_EQ(take(mi_dicom_index_scan(t.dir.c_str(), &idx)), "");
  bool named = false;
  for (size_t i = 0; i < mi_dicom_index_skipped_count(idx); i++) {
    const std::string reason = mi_dicom_index_skipped_reason(idx, i);
    named = named || (mi_dicom_index_skipped_path(idx, i) == victim && reason.find("(0008,1030) claims") != std::string::npos);
  }
  EXPECT_TRUE(named) << "the index does not list " << victim << " as skipped for its oversized element";
  mi_dicom_index_free(idx);
}

TEST(DicomBadInput, MissingSliceIsRefusedUnlessAllowed) {
  Scratch t("gap");
  // the file holding ascending slice 4
  fs::remove(t.s.files[4]);
  mi_code code;
  std::string err = load_error(t.dir, &code);
  EXPECT_EQ(code, MI_ERR_SHAPE) << err;
  EXPECT_NE(err.find("missing slice"), std::string::npos) << err;
  mi_dicom_load_options o;
  mi_dicom_load_options_init(&o);
  o.allow_irregular = 1;
  mi_dicom_volume *v = nullptr;
  ASSERT_EQ(take(mi_dicom_load_dir(t.dir.c_str(), nullptr, &o, &v)), "");
  EXPECT_TRUE(mi_dicom_volume_issues(v) & MI_DICOM_ISSUE_MISSING_SLICE);
  EXPECT_EQ(mi_dicom_volume_geometry(v)->size[2], 9);
  EXPECT_NEAR(mi_dicom_volume_geometry(v)->spacing[2], 2.5, 1e-6);
  mi_dicom_volume_free(v);
}

TEST(DicomBadInput, UnevenSpacingIsRefused) {
  Scratch t("uneven");
  edit(t.s.files[9], [](DcmDataset &d) {
    Float64 z;
    d.findAndGetFloat64(DCM_ImagePositionPatient, z, 2);
    std::string v = "-10.25\\20.5\\" + std::to_string(z - 0.7);
    d.putAndInsertString(DCM_ImagePositionPatient, v.c_str());
  });
  std::string err = load_error(t.dir);
  EXPECT_NE(err.find("uneven slice spacing"), std::string::npos) << err;
}

TEST(DicomBadInput, TwoImagesAtOnePositionAreRefused) {
  Scratch t("dup");
  const std::string copy = t.dir + "/COPY";
  fs::copy_file(t.s.files[2], copy);
  edit(copy, [](DcmDataset &d) {
    char uid[100];
    d.putAndInsertString(DCM_SOPInstanceUID, dcmGenerateUniqueIdentifier(uid));
  });
  std::string err = load_error(t.dir);
  EXPECT_NE(err.find("duplicate slice position"), std::string::npos) << err;
  EXPECT_NE(err.find(copy), std::string::npos) << err;
}

// Slices at different positions sharing one SOPInstanceUID (found by
// fuzzing): a SEG's references to them would be ambiguous.
TEST(DicomBadInput, OneInstanceUidAtTwoPositionsIsRefused) {
  Scratch t("shared-uid");
  for (const std::string &f : t.s.files)
    edit(f, [](DcmDataset &d) { d.putAndInsertString(DCM_SOPInstanceUID, "1.2.826.0.1.3680043.2.1125.77"); });
  std::string err = load_error(t.dir);
  EXPECT_NE(err.find("share SOPInstanceUID 1.2.826.0.1.3680043.2.1125.77"), std::string::npos) << err;
  EXPECT_NE(err.find(t.dir), std::string::npos) << err;
}

TEST(DicomBadInput, SameInstanceTwiceIsDroppedWithAWarning) {
  Scratch t("dupsame");
  fs::copy_file(t.s.files[2], t.dir + "/COPY");
  mi_dicom_volume *v = nullptr;
  ASSERT_EQ(take(mi_dicom_load_dir(t.dir.c_str(), nullptr, nullptr, &v)), "");
  EXPECT_EQ(mi_dicom_volume_geometry(v)->size[2], 10);
  EXPECT_TRUE(mi_dicom_volume_issues(v) & MI_DICOM_ISSUE_DUPLICATE);
  mi_dicom_volume_free(v);
}

TEST(DicomBadInput, NotDicomAtAll) {
  TempDir tmp("dicom-junk");
  const std::string dir = tmp.path();
  std::ofstream(dir + "/a.txt") << "hello, this is not DICOM\n";
  const std::string f = dir + "/a.txt";
  const char *files[1] = {f.c_str()};
  mi_dicom_volume *v = nullptr;
  std::string err = take(mi_dicom_load_files(files, 1, nullptr, &v));
  EXPECT_NE(err.find(f), std::string::npos) << err;
  err = load_error(dir);
  EXPECT_NE(err.find("no DICOM image series"), std::string::npos) << err;
}

TEST(DicomBadInput, NoSuchFolder) {
  mi_code code;
  std::string err = load_error("/nonexistent/medinfer-folder", &code);
  EXPECT_EQ(code, MI_ERR_IO);
  EXPECT_NE(err.find("/nonexistent/medinfer-folder"), std::string::npos) << err;
}

TEST(DicomBadInput, NullArguments) {
  mi_dicom_volume *v = nullptr;
  EXPECT_NE(take(mi_dicom_load_files(nullptr, 0, nullptr, &v)), "");
  EXPECT_NE(take(mi_dicom_load_dir(nullptr, nullptr, nullptr, &v)), "");
  EXPECT_NE(take(mi_dicom_write_seg_labelmap(nullptr, nullptr, nullptr, 0, nullptr, "x")), "");
  mi_dicom_index *idx = nullptr;
  EXPECT_NE(take(mi_dicom_index_scan(nullptr, &idx)), "");
}

// Damaged bytes anywhere in a file give an error or a volume, never a crash
// (run under MEDINFER_SANITIZE for the full check).
TEST(DicomBadInput, CorruptedBytesNeverCrash) {
  Scratch t("corrupt");
  const std::string victim = t.s.files[0];
  const std::vector<char> original = file_bytes(victim);
  ASSERT_GT(original.size(), 1000u);
  unsigned seed = 12345, errors = 0;
  for (int trial = 0; trial < 60; ++trial) {
    std::vector<char> bytes = original;
    for (int n = 0; n < 4; ++n) {
      seed = seed * 1103515245u + 12345u;
      size_t at = 128 + (seed >> 8) % 900;  // preamble skipped: hit the header
      bytes[at] = (char)(seed >> 3);
    }
    put_bytes(victim, bytes);
    mi_dicom_volume *v = nullptr;
    mi_status *st = mi_dicom_load_dir(t.dir.c_str(), nullptr, nullptr, &v);
    if (st) {
      ++errors;
      EXPECT_STRNE(mi_status_message(st), "");
    }
    mi_status_free(st);
    mi_dicom_volume_free(v);
  }
  EXPECT_GT(errors, 0u);  // the damage was noticed at least sometimes
}

// Every header attribute the loader reads, at values no scanner writes (0,
// 65535, NaN, 1e308, empty, too few values, contradictory), in every file
// of a classic series and of an enhanced one, and in one file only: the
// index and the loader never crash, every refusal says why, and a volume
// that does load has a finite geometry and finite voxels.
TEST(DicomBadInput, HeaderValuesAtExtremesNeverCrash) {
  struct Edit {
    DcmTagKey tag;
    bool us;          // US: the number below, else the string
    Uint16 number;
    const char *text;
  };
  std::vector<Edit> edits;
  for (DcmTagKey t : {DCM_Rows, DCM_Columns, DCM_BitsAllocated, DCM_BitsStored, DCM_HighBit, DCM_PixelRepresentation,
                      DCM_SamplesPerPixel, DCM_PlanarConfiguration})
    for (Uint16 v : {0, 1, 7, 33, 65535}) edits.push_back({t, true, v, nullptr});
  const std::vector<std::pair<DcmTagKey, std::vector<const char *>>> texts = {
      {DCM_NumberOfFrames, {"0", "-1", "2147483647", "abc", ""}},
      {DCM_PixelSpacing, {"0\\0", "-1\\-1", "1e308\\1e308", "1", "", "1\\2\\3"}},
      {DCM_SliceThickness, {"0", "-1", "1e308", "nan"}},
      {DCM_SpacingBetweenSlices, {"0", "-1e308", "inf"}},
      {DCM_RescaleSlope, {"0", "-1e308", "1e-308", ""}},
      {DCM_RescaleIntercept, {"1e308", "-1e308", ""}},
      {DCM_ImagePositionPatient, {"1e308\\1e308\\1e308", "1\\2", "", "-1e308\\0\\1e308"}},
      {DCM_ImageOrientationPatient, {"0\\0\\0\\0\\0\\0", "1\\0\\0\\1\\0\\0", "1e308\\0\\0\\0\\1\\0", "1\\0\\0"}},
      {DCM_PhotometricInterpretation, {"RGB", "PALETTE COLOR", "YBR_FULL", ""}},
      {DCM_WindowCenter, {"nan"}},
      {DCM_Modality, {""}},
  };
  for (const auto &t : texts)
    for (const char *v : t.second) edits.push_back({t.first, false, 0, v});

  unsigned refused = 0, loaded = 0;
  for (bool enhanced : {false, true}) {
    Spec spec;
    spec.cols = 8, spec.rows = 6, spec.slices = 4, spec.enhanced = enhanced;
    for (bool all : {true, false}) {
      for (const Edit &e : edits) {
        Scratch t("extremes", spec);
        const std::string what = std::string(enhanced ? "enhanced" : "classic") + ", " +
                                 (all ? "every file" : "one file") + ", " + DcmTag(e.tag).getTagName() + " = " +
                                 (e.us ? std::to_string(e.number) : std::string("'") + e.text + "'");
        SCOPED_TRACE(what);
        for (size_t f = 0; f < (all ? t.s.files.size() : 1); ++f)
          edit(t.s.files[f], [&e](DcmDataset &d) {
            if (e.us) d.putAndInsertUint16(e.tag, e.number);
            else d.putAndInsertString(e.tag, e.text);
          });
        mi_dicom_index *idx = nullptr;
        mi_status *st = mi_dicom_index_scan(t.dir.c_str(), &idx);
        ASSERT_EQ(st, nullptr) << what << ": " << take(st);
        for (size_t i = 0; i < mi_dicom_index_skipped_count(idx); ++i)
          EXPECT_STRNE(mi_dicom_index_skipped_reason(idx, i), "") << what;
        for (size_t i = 0; i < mi_dicom_index_series_count(idx); ++i) {
          mi_dicom_series_info info;
          std::string err = take(mi_dicom_index_series(idx, i, &info));
          EXPECT_EQ(err, "") << what;
          mi_dicom_volume *v = nullptr;
          st = mi_dicom_load_series(idx, i, nullptr, &v);
          if (st) {
            ++refused;
            EXPECT_STRNE(mi_status_message(st), "") << what;
            EXPECT_EQ(v, nullptr) << what;
            mi_status_free(st);
            continue;
          }
          ++loaded;
          const mi_geometry *g = mi_dicom_volume_geometry(v);
          size_t n = 1;
          for (int k = 0; k < 3; ++k) {
            EXPECT_GT(g->size[k], 0) << what;
            EXPECT_TRUE(std::isfinite(g->origin[k])) << what;
            EXPECT_TRUE(std::isfinite(g->spacing[k]) && g->spacing[k] > 0) << what << ": spacing " << g->spacing[k];
            n *= (size_t)g->size[k];
          }
          for (int k = 0; k < 9; ++k) EXPECT_TRUE(std::isfinite(g->direction[k])) << what;
          const float *x = mi_dicom_volume_data(v);
          size_t bad = 0;
          for (size_t k = 0; k < n; ++k) bad += !std::isfinite(x[k]);
          EXPECT_EQ(bad, 0u) << what << ": " << bad << " voxels not finite";
          mi_dicom_volume_free(v);
        }
        mi_dicom_index_free(idx);
      }
    }
  }
  EXPECT_GT(refused, 0u);  // the edits were read
  EXPECT_GT(loaded, 0u);   // and some (a window, a modality) are harmless
  std::printf("%u loads refused with a message, %u loaded\n", refused, loaded);
}
