// SR writer: detections on phantom series as a TID 1500 Comprehensive 3D SR,
// checked with dciodvfy, read back with DCMTK (DSRDocument) and pydicom
// (check_sr.py), dumped with dsrdump; bad input leaves nothing behind.
#include <gtest/gtest.h>

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dctk.h>
#include <dcmtk/dcmsr/codes/dcm.h>
#include <dcmtk/dcmsr/dsrdoc.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <unistd.h>
#include <vector>

#include "helpers.h"
#include "medinfer/phantom.h"
#include "seg_check.h"
#include "../common/temp_dir.h"
#include "series_builder.h"

#ifndef MI_DICOM_TEST_DIR
#error "MI_DICOM_TEST_DIR must name tests/dicom"
#endif

namespace fs = std::filesystem;

namespace {

struct PhantomDeleter {
  void operator()(mi_phantom *p) const { mi_phantom_free(p); }
};

struct Study {
  std::unique_ptr<TempDir> tmp;
  std::string dir;
  std::unique_ptr<mi_phantom, PhantomDeleter> phantom;
  std::unique_ptr<mi_dicom_volume, VolumeDeleter> vol;
};

void make_study(const char *tag, void (*tweak)(mi_phantom_options &), Study &s) {
  mi_phantom_options o;
  mi_phantom_options_init(&o);
  o.size[0] = 48, o.size[1] = 40, o.size[2] = 24;
  o.spacing[0] = 8, o.spacing[1] = 9, o.spacing[2] = 12;
  o.lesions = 3;
  o.seed = 7;
  if (tweak) tweak(o);
  mi_phantom *p = nullptr;
  ASSERT_EQ(take(mi_phantom_generate(&o, &p)), "");
  s.phantom.reset(p);
  s.tmp = std::make_unique<TempDir>(std::string("dicom-") + tag);
  s.dir = s.tmp->path();
  const std::string dcm = s.dir + "/dicom";
  ASSERT_EQ(take(mi_phantom_write_dicom(p, dcm.c_str(), nullptr)), "");
  mi_dicom_volume *v = nullptr;
  ASSERT_EQ(take(mi_dicom_load_dir(dcm.c_str(), nullptr, nullptr, &v)), "");
  s.vol.reset(v);
}

// One finding per phantom lesion: box on the volume's axes with half-extents
// 1, 0.75 and 2.5 radii (so the ellipsoid's axis order differs from the
// input's), the slice through the centre from the geometry.
std::vector<mi_sr_finding> findings_of(const Study &s, const char *first_uid) {
  const mi_geometry *g = mi_dicom_volume_geometry(s.vol.get());
  std::vector<mi_sr_finding> fs;
  static const char *ids[] = {"Lesion 1", "Lesion 2", "Lesion 3", "Lesion 4"};
  const double scale[3] = {1.0, 0.75, 2.5};
  for (int i = 0; i < s.phantom->lesion_count && i < 4; ++i) {
    const mi_phantom_lesion &l = s.phantom->lesions[i];
    mi_sr_finding f{};
    f.type_scheme = "SCT", f.type_value = "52988006", f.type_meaning = "Lesion";
    if (i != 1) f.category_scheme = "SCT", f.category_value = "49755003", f.category_meaning = "Morphologically Altered Structure";
    f.tracking_id = ids[i];
    f.tracking_uid = i == 0 ? first_uid : nullptr;
    f.score = 0.3 + 0.2 * i + 0.0123;
    for (int a = 0; a < 3; ++a) {
      f.center[a] = l.center[a];
      for (int c = 0; c < 3; ++c) f.half_axes[a][c] = g->direction[c * 3 + a] * l.radius * scale[a];
    }
    double idx[3];
    mi_geometry_point_to_index(g, f.center, idx);
    f.center_slice = (int64_t)std::llround(idx[2]);
    fs.push_back(f);
  }
  return fs;
}

struct Ref {
  std::string sop;
  int32_t frame;
  bool operator<(const Ref &o) const { return sop != o.sop ? sop < o.sop : frame < o.frame; }
  bool operator==(const Ref &o) const { return sop == o.sop && frame == o.frame; }
};

// Slices whose plane meets the box (the box is on the volume axes here).
std::set<Ref> expected_refs(const mi_dicom_volume *v, const mi_sr_finding &f) {
  const mi_geometry *g = mi_dicom_volume_geometry(v);
  const double *d = g->direction;
  double n[3] = {d[3] * d[7] - d[6] * d[4], d[6] * d[1] - d[0] * d[7], d[0] * d[4] - d[3] * d[1]};
  const double ln = std::sqrt(n[0] * n[0] + n[1] * n[1] + n[2] * n[2]);
  double reach = 0;
  for (int a = 0; a < 3; ++a)
    reach += std::fabs((n[0] * f.half_axes[a][0] + n[1] * f.half_axes[a][1] + n[2] * f.half_axes[a][2]) / ln);
  std::set<Ref> refs;
  for (int64_t k = 0; k < g->size[2]; ++k) {
    double ipp[3];
    mi_dicom_volume_slice_position(v, k, ipp);
    const double dist = ((f.center[0] - ipp[0]) * n[0] + (f.center[1] - ipp[1]) * n[1] + (f.center[2] - ipp[2]) * n[2]) / ln;
    if (std::fabs(dist) <= reach + 1e-6 || k == f.center_slice)
      refs.insert({mi_dicom_volume_slice_sop_instance_uid(v, k), mi_dicom_volume_slice_frame(v, k)});
  }
  return refs;
}

// Ellipsoid points: centre +- the half-axes, longest first.
std::vector<double> expected_points(const mi_sr_finding &f) {
  int order[3] = {0, 1, 2};
  auto len = [&](int a) { return std::hypot(f.half_axes[a][0], f.half_axes[a][1], f.half_axes[a][2]); };
  std::stable_sort(order, order + 3, [&](int a, int b) { return len(a) > len(b); });
  std::vector<double> p;
  for (int a : order)
    for (int sign : {1, -1})
      for (int c = 0; c < 3; ++c) p.push_back(f.center[c] + sign * f.half_axes[a][c]);
  return p;
}

// What DCMTK reads back from one measurement group.
struct Group {
  std::string tracking_id, tracking_uid, finding, category, score, score_units, algorithm;
  std::vector<double> points;
  std::string frame_of_reference;
  std::set<Ref> refs;
};

std::string code_of(const DSRCodedEntryValue &c) { return std::string(c.getCodingSchemeDesignator().c_str()) + ":" + c.getCodeValue().c_str(); }

std::vector<Group> read_groups(DSRDocument &doc) {
  std::vector<Group> groups;
  DSRDocumentTree &t = doc.getTree();
  std::vector<size_t> ids;
  for (size_t id = t.gotoNamedNode(CODE_DCM_MeasurementGroup); id > 0; id = t.gotoNextNamedNode(CODE_DCM_MeasurementGroup))
    ids.push_back(id);
  for (size_t id : ids) {
    Group g;
    t.gotoNode(id);
    for (size_t c = t.gotoChild(); c > 0; c = t.gotoNext()) {
      DSRContentItem &it = t.getCurrentContentItem();
      const std::string name = code_of(it.getConceptName());
      if (name == "DCM:112039") g.tracking_id = it.getStringValue().c_str();
      else if (name == "DCM:112040") g.tracking_uid = it.getStringValue().c_str();
      else if (name == "DCM:121071") g.finding = code_of(it.getCodeValue());
      else if (name == "SCT:276214006") g.category = code_of(it.getCodeValue());
      else if (name == "DCM:121233") {
        const DSRImageReferenceValue *r = it.getImageReferencePtr();
        Sint32 frame = 0;
        if (r->getFrameList().getNumberOfItems() > 0) r->getFrameList().getItem(1, frame);
        g.refs.insert({r->getSOPInstanceUID().c_str(), frame});
      } else if (name == "DCM:121231") {
        DSRSpatialCoordinates3DValue *sc = it.getSpatialCoordinates3DPtr();
        EXPECT_EQ(sc->getGraphicType(), DSRTypes::GT3_Ellipsoid);
        g.frame_of_reference = sc->getFrameOfReferenceUID().c_str();
        for (size_t i = 1; i <= sc->getGraphicDataList().getNumberOfItems(); ++i) {
          const DSRGraphicData3DItem &p = sc->getGraphicDataList().getItem(i);
          g.points.insert(g.points.end(), {p.XCoord, p.YCoord, p.ZCoord});
        }
      } else if (name == "DCM:111012") {
        g.score = it.getNumericValuePtr()->getNumericValue().c_str();
        g.score_units = code_of(it.getNumericValuePtr()->getMeasurementUnit());
        // The algorithm that produced the value sits below the NUM (TID 4019).
        const size_t num = t.getNodeID();
        if (t.gotoNamedChildNode(CODE_DCM_AlgorithmName) > 0) g.algorithm = t.getCurrentContentItem().getStringValue().c_str();
        t.gotoNode(num);
      }
    }
    groups.push_back(g);
  }
  return groups;
}

}  // namespace

namespace {

std::string json_str(const std::string &s) { return "\"" + s + "\""; }  // UIDs, codes, ids: no escapes needed

// The expectation for check_sr.py: identity of the source and per finding
// what the report must hold ("" tracking UID: any valid, distinct UID).
void write_manifest(const std::string &path, const Study &s, const std::vector<mi_sr_finding> &fs, size_t n_instances) {
  const mi_dicom_volume *v = s.vol.get();
  std::ofstream m(path);
  m.precision(17);
  m << "{\"study\": " << json_str(mi_dicom_volume_attribute(v, "StudyInstanceUID"))
    << ", \"series\": " << json_str(mi_dicom_volume_attribute(v, "SeriesInstanceUID"))
    << ", \"frame_of_reference\": " << json_str(mi_dicom_volume_attribute(v, "FrameOfReferenceUID"))
    << ", \"patient_id\": " << json_str(mi_dicom_volume_attribute(v, "PatientID"))
    << ", \"instances\": " << n_instances << ", \"findings\": [";
  for (size_t i = 0; i < fs.size(); ++i) {
    const mi_sr_finding &f = fs[i];
    m << (i ? ", " : "") << "{\"tracking_id\": " << json_str(f.tracking_id)
      << ", \"tracking_uid\": " << json_str(f.tracking_uid ? f.tracking_uid : "") << ", \"type\": "
      << json_str(std::string(f.type_scheme) + ":" + f.type_value) << ", \"category\": "
      << json_str(f.category_value ? std::string(f.category_scheme) + ":" + f.category_value : "")
      << ", \"score_percent\": " << f.score * 100 << ", \"points\": [";
    std::vector<double> p = expected_points(f);
    for (size_t j = 0; j < p.size(); ++j) m << (j ? ", " : "") << p[j];
    m << "], \"images\": [";
    size_t j = 0;
    for (const Ref &r : expected_refs(v, f)) m << (j++ ? ", " : "") << "[" << json_str(r.sop) << ", " << r.frame << "]";
    m << "]}";
  }
  m << "]}\n";
}

// dciodvfy's warnings, to show in the test log (errors fail the tests).
std::string dciodvfy_warnings(const std::string &path) {
  std::string out, warnings;
  segcheck::run("/usr/bin/dciodvfy '" + path + "'", out);
  std::istringstream in(out);
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("Warning", 0) == 0) warnings += line + "\n";
  return warnings;
}

void write_and_check(const char *tag, void (*tweak)(mi_phantom_options &), bool no_findings) {
  Study s;
  make_study(tag, tweak, s);
  if (::testing::Test::HasFatalFailure()) return;
  const mi_dicom_volume *v = s.vol.get();
  const char *uid = "1.2.826.0.1.3680043.8.498.4711";
  std::vector<mi_sr_finding> fs = no_findings ? std::vector<mi_sr_finding>{} : findings_of(s, uid);
  if (!no_findings) {
    ASSERT_EQ(fs.size(), 3u);
  }
  mi_sr_options o;
  mi_sr_options_init(&o);
  o.series_description = "Lesion detections";
  o.series_number = 777;
  o.algorithm_name = "lesion-detector";
  o.algorithm_version = "1.2";
  const std::string out = s.dir + "/sr.dcm";
  ASSERT_EQ(take(mi_dicom_write_sr_findings(v, fs.data(), fs.size(), &o, out.c_str())), "");

  EXPECT_EQ(segcheck::dciodvfy_errors(out), "");
  const std::string warnings = dciodvfy_warnings(out);
  if (!warnings.empty()) std::printf("dciodvfy warnings for %s:\n%s", tag, warnings.c_str());

  // DCMTK: document type, identity, and one group per finding as written.
  DcmFileFormat ff;
  ASSERT_TRUE(ff.loadFile(out.c_str()).good());
  DSRDocument doc;
  ASSERT_TRUE(doc.read(*ff.getDataset()).good());
  EXPECT_EQ(doc.getDocumentType(), DSRTypes::DT_Comprehensive3DSR);
  auto get = [&](OFCondition (DSRDocument::*getter)(OFString &, const signed long) const) {
    OFString value;
    (doc.*getter)(value, 0);
    return std::string(value.c_str());
  };
  EXPECT_EQ(get(&DSRDocument::getStudyInstanceUID), mi_dicom_volume_attribute(v, "StudyInstanceUID"));
  EXPECT_EQ(get(&DSRDocument::getPatientID), mi_dicom_volume_attribute(v, "PatientID"));
  EXPECT_EQ(get(&DSRDocument::getSeriesDescription), "Lesion detections");
  EXPECT_EQ(get(&DSRDocument::getSeriesNumber), "777");
  EXPECT_NE(get(&DSRDocument::getSeriesInstanceUID), mi_dicom_volume_attribute(v, "SeriesInstanceUID"));
  EXPECT_NE(get(&DSRDocument::getContentDate), "");
  EXPECT_NE(get(&DSRDocument::getContentTime), "");
  std::set<std::string> instances;
  for (int64_t k = 0; k < mi_dicom_volume_geometry(v)->size[2]; ++k) instances.insert(mi_dicom_volume_slice_sop_instance_uid(v, k));
  EXPECT_EQ(doc.getCurrentRequestedProcedureEvidence().getNumberOfInstances(), instances.size());

  std::vector<Group> groups = read_groups(doc);
  ASSERT_EQ(groups.size(), fs.size());
  std::set<std::string> uids;
  for (size_t i = 0; i < fs.size(); ++i) {
    const Group &g = groups[i];
    const mi_sr_finding &f = fs[i];
    SCOPED_TRACE(f.tracking_id);
    EXPECT_EQ(g.tracking_id, f.tracking_id);
    if (f.tracking_uid) {
      EXPECT_EQ(g.tracking_uid, f.tracking_uid);
    }
    EXPECT_TRUE(DcmUniqueIdentifier::checkStringValue(g.tracking_uid.c_str(), "1").good()) << g.tracking_uid;
    uids.insert(g.tracking_uid);
    EXPECT_EQ(g.finding, "SCT:52988006");
    EXPECT_EQ(g.category, f.category_value ? "SCT:49755003" : "");
    EXPECT_NEAR(std::stod(g.score), f.score * 100, 1e-9);
    EXPECT_EQ(g.score_units, "UCUM:%");
    EXPECT_EQ(g.algorithm, "lesion-detector");
    EXPECT_EQ(g.frame_of_reference, mi_dicom_volume_attribute(v, "FrameOfReferenceUID"));
    std::vector<double> p = expected_points(f);
    ASSERT_EQ(g.points.size(), p.size());
    for (size_t j = 0; j < p.size(); ++j) EXPECT_NEAR(g.points[j], p[j], 1e-3) << "coordinate " << j;
    EXPECT_EQ(g.refs, expected_refs(v, f));
    EXPECT_TRUE(g.refs.count({mi_dicom_volume_slice_sop_instance_uid(v, f.center_slice),
                              mi_dicom_volume_slice_frame(v, f.center_slice)}));
  }
  EXPECT_EQ(uids.size(), fs.size());  // generated tracking UIDs are distinct

  // pydicom, independently of DCMTK.
  const std::string manifest = s.dir + "/expected.json";
  write_manifest(manifest, s, fs, instances.size());
  std::string py;
  EXPECT_EQ(segcheck::run("/usr/bin/python3 " MI_DICOM_TEST_DIR "/check_sr.py '" + out + "' '" + manifest + "'", py), 0)
      << py;

  // DCMTK's own command line reader, when installed.
  if (access("/usr/bin/dsrdump", X_OK) == 0) {
    std::string dump;
    EXPECT_EQ(segcheck::run("/usr/bin/dsrdump '" + out + "'", dump), 0) << dump;
    EXPECT_NE(dump.find("Imaging Measurement Report"), std::string::npos) << dump;
    EXPECT_NE(dump.find("Comprehensive 3D SR"), std::string::npos) << dump;
    for (const mi_sr_finding &f : fs) EXPECT_NE(dump.find(f.tracking_id), std::string::npos) << dump;
    EXPECT_EQ(dump.find("error"), std::string::npos) << dump;
  }
}

}  // namespace

TEST(DicomSr, AxialFindingsReadBack) { write_and_check("sr-axial", nullptr, false); }

TEST(DicomSr, ObliqueFindingsReadBack) {
  write_and_check("sr-oblique", [](mi_phantom_options &o) { o.orientation = MI_PHANTOM_OBLIQUE; }, false);
}

// Multi-frame source: image references carry the frame number.
TEST(DicomSr, EnhancedSourceReferencesFrames) {
  write_and_check("sr-enhanced", [](mi_phantom_options &o) { o.enhanced = 1; }, false);
}

TEST(DicomSr, NoFindingsIsStillAValidReport) { write_and_check("sr-empty", nullptr, true); }

// ------------------------------------------------------------- bad input

namespace {

struct BadCase {
  const char *name;
  void (*spoil)(mi_sr_finding &);
  const char *expect;  // in the message
};

}  // namespace

TEST(DicomSr, BadInputIsRefusedAndLeavesNothing) {
  Study s;
  make_study("sr-bad", nullptr, s);
  if (::testing::Test::HasFatalFailure()) return;
  const mi_dicom_volume *v = s.vol.get();
  const std::vector<mi_sr_finding> good = findings_of(s, nullptr);
  ASSERT_FALSE(good.empty());
  const std::string out = s.dir + "/sr.dcm";
  auto nothing_written = [&] {
    for (const auto &e : fs::directory_iterator(s.dir))
      if (e.is_regular_file()) return "found " + e.path().string();
    return std::string();
  };

  std::string err = take(mi_dicom_write_sr_findings(nullptr, good.data(), good.size(), nullptr, out.c_str()));
  EXPECT_NE(err.find("no source volume"), std::string::npos) << err;
  err = take(mi_dicom_write_sr_findings(v, good.data(), good.size(), nullptr, nullptr));
  EXPECT_NE(err.find("no output path"), std::string::npos) << err;
  err = take(mi_dicom_write_sr_findings(v, good.data(), good.size(), nullptr, ""));
  EXPECT_NE(err.find("no output path"), std::string::npos) << err;
  err = take(mi_dicom_write_sr_findings(v, nullptr, 2, nullptr, out.c_str()));
  EXPECT_NE(err.find("no array"), std::string::npos) << err;

  const BadCase cases[] = {
      {"score above 1", [](mi_sr_finding &f) { f.score = 1.5; }, "score 1.5 is not in [0, 1]"},
      {"score below 0", [](mi_sr_finding &f) { f.score = -0.01; }, "is not in [0, 1]"},
      {"score NaN", [](mi_sr_finding &f) { f.score = NAN; }, "is not in [0, 1]"},
      {"centre infinite", [](mi_sr_finding &f) { f.center[1] = INFINITY; }, "not finite"},
      {"axis NaN", [](mi_sr_finding &f) { f.half_axes[2][0] = NAN; }, "not finite"},
      {"axis zero", [](mi_sr_finding &f) { f.half_axes[1][0] = f.half_axes[1][1] = f.half_axes[1][2] = 0; }, "is zero"},
      {"axes skew", [](mi_sr_finding &f) { f.half_axes[0][0] += f.half_axes[1][0] + 1, f.half_axes[0][1] += 3; },
       "not perpendicular"},
      {"no type", [](mi_sr_finding &f) { f.type_value = nullptr; }, "type code"},
      {"half a category", [](mi_sr_finding &f) { f.category_meaning = nullptr; }, "incomplete category"},
      {"no tracking id", [](mi_sr_finding &f) { f.tracking_id = ""; }, "tracking identifier"},
      {"bad tracking UID", [](mi_sr_finding &f) { f.tracking_uid = "1.2.abc"; }, "not a valid UID"},
      {"slice out of range", [](mi_sr_finding &f) { f.center_slice = 1000; }, "slice 1000 is not in"},
      {"wrong slice", [](mi_sr_finding &f) { f.center_slice = f.center_slice > 3 ? f.center_slice - 3 : f.center_slice + 3; },
       "is nearer"},
  };
  for (const BadCase &c : cases) {
    std::vector<mi_sr_finding> fs = good;
    c.spoil(fs.back());
    err = take(mi_dicom_write_sr_findings(v, fs.data(), fs.size(), nullptr, out.c_str()));
    EXPECT_NE(err.find(c.expect), std::string::npos) << c.name << ": " << err;
    EXPECT_NE(err.find(out), std::string::npos) << c.name << ": the message names the file: " << err;
    EXPECT_EQ(err.rfind("1: ", 0), 0u) << c.name << ": invalid argument expected: " << err;
    EXPECT_EQ(nothing_written(), "") << c.name;
  }
  {  // the same explicit tracking UID twice
    std::vector<mi_sr_finding> fs = good;
    for (auto &f : fs) f.tracking_uid = "1.2.3.4";
    err = take(mi_dicom_write_sr_findings(v, fs.data(), fs.size(), nullptr, out.c_str()));
    EXPECT_NE(err.find("repeats tracking UID 1.2.3.4"), std::string::npos) << err;
    EXPECT_EQ(nothing_written(), "");
  }

  // A missing folder is named; a read-only one too (unless root ignores it).
  err = take(mi_dicom_write_sr_findings(v, good.data(), good.size(), nullptr, (s.dir + "/no/such/dir/sr.dcm").c_str()));
  EXPECT_NE(err.find("no/such/dir"), std::string::npos) << err;
  const std::string ro = s.dir + "/readonly";
  fs::create_directory(ro);
  fs::permissions(ro, fs::perms::owner_read | fs::perms::owner_exec);
  if (access(ro.c_str(), W_OK) != 0) {
    err = take(mi_dicom_write_sr_findings(v, good.data(), good.size(), nullptr, (ro + "/sr.dcm").c_str()));
    EXPECT_NE(err.find(ro + "/sr.dcm"), std::string::npos) << err;
    EXPECT_NE(err.find("cannot write"), std::string::npos) << err;
  }
  fs::permissions(ro, fs::perms::owner_all);
  EXPECT_TRUE(fs::is_empty(ro));

  // The output may not be a source file, which stays as it was.
  const std::string src_file = mi_dicom_volume_slice_file(v, 0);
  const auto size = fs::file_size(src_file);
  const auto time = fs::last_write_time(src_file);
  err = take(mi_dicom_write_sr_findings(v, good.data(), good.size(), nullptr, src_file.c_str()));
  EXPECT_NE(err.find("refusing to overwrite"), std::string::npos) << err;
  EXPECT_NE(err.find(src_file), std::string::npos) << err;
  EXPECT_EQ(fs::file_size(src_file), size);
  EXPECT_EQ(fs::last_write_time(src_file), time);
  // ...also when reached through another spelling of its path.
  const std::string other = fs::path(src_file).parent_path().string() + "/./" + fs::path(src_file).filename().string();
  err = take(mi_dicom_write_sr_findings(v, good.data(), good.size(), nullptr, other.c_str()));
  EXPECT_NE(err.find("refusing to overwrite"), std::string::npos) << err;
  EXPECT_EQ(nothing_written(), "");

  // And with everything right, the same call succeeds.
  EXPECT_EQ(take(mi_dicom_write_sr_findings(v, good.data(), good.size(), nullptr, out.c_str())), "");
  EXPECT_TRUE(fs::exists(out));
}
