// findings.json, findings.csv and the Slicer markups file: values read back
// with independent readers (json-c, Python's csv and jsonschema), the ROI
// frame against the findings' boxes, and errors for bad arguments.
#include <json.h>
#include <stdio.h>
#include <sys/stat.h>

#include <cmath>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "findings_test_util.h"

namespace {

struct Fixture {
  TempDir tmp{"findings"};
  std::string dir = tmp.path();
  mi_card *card = load_test_card(dir);
  std::vector<mi_finding> f;
  Fixture(double rot_deg = 20.0, double kdir = 1.0) {
    const double sp[3] = {0.7, 0.9, 2.5};
    mi_geometry g = test_grid(64, 48, 30, sp, rot_deg);
    for (int r = 0; r < 3; ++r) g.direction[3 * r + 2] *= kdir;
    const int lo1[3] = {10, 12, 4}, hi1[3] = {19, 17, 9}, lo2[3] = {40, 30, 20}, hi2[3] = {41, 33, 20};
    f.push_back(finding_for_voxels(g, lo1, hi1, 0, 1, 0.912345f));
    f.push_back(finding_for_voxels(g, lo2, hi2, 1, 3, 0.5f));
  }
  ~Fixture() { mi_card_free(card); }
};

json_object *parse(const std::string &path) {
  json_object *j = json_object_from_file(path.c_str());
  EXPECT_NE(j, nullptr) << path << ": " << json_util_get_last_err();
  return j;
}

json_object *get(json_object *o, const char *key) {
  json_object *v = nullptr;
  EXPECT_TRUE(json_object_object_get_ex(o, key, &v)) << key;
  return v;
}

double at(json_object *arr, size_t i) { return json_object_get_double(json_object_array_get_idx(arr, i)); }

std::string str(json_object *o, const char *key) {
  json_object *v = get(o, key);
  return v ? json_object_get_string(v) : "";
}

std::string expect_error(mi_status *st, mi_code code) {
  EXPECT_NE(st, nullptr);
  std::string msg = st ? mi_status_message(st) : "";
  EXPECT_EQ(mi_status_code(st), code) << msg;
  mi_status_free(st);
  return msg;
}

// Rows of a CSV file as parsed by Python's csv module (fields joined by \x1f).
std::vector<std::vector<std::string>> python_csv(const std::string &path) {
  std::string cmd = "/usr/bin/python3 -c \"import csv,sys\n"
                    "with open(sys.argv[1], newline='') as f:\n"
                    "  for r in csv.reader(f, strict=True): sys.stdout.write(chr(31).join(r) + chr(30))\" '" +
                    path + "'";
  FILE *p = popen(cmd.c_str(), "r");
  std::string out;
  char b[4096];
  size_t n;
  while (p && (n = fread(b, 1, sizeof b, p)) > 0) out.append(b, n);
  EXPECT_TRUE(p && pclose(p) == 0) << "python csv failed on " << path;
  std::vector<std::vector<std::string>> rows;
  size_t start = 0;
  for (size_t e; (e = out.find('\x1e', start)) != std::string::npos; start = e + 1) {
    std::vector<std::string> row;
    std::string line = out.substr(start, e - start);
    size_t s = 0;
    for (size_t q; (q = line.find('\x1f', s)) != std::string::npos; s = q + 1) row.push_back(line.substr(s, q - s));
    row.push_back(line.substr(s));
    rows.push_back(row);
  }
  return rows;
}

}  // namespace

TEST(FindingsJson, ReadsBackTheValuesWritten) {
  Fixture x;
  std::string path = x.dir + "/findings.json";
  mi_status *st = mi_findings_write_json(x.card, x.f.data(), x.f.size(), "1.2.3.4", path.c_str());
  ASSERT_EQ(st, nullptr) << mi_status_message(st);
  json_object *root = parse(path);
  ASSERT_NE(root, nullptr);
  EXPECT_EQ(str(root, "series_uid"), "1.2.3.4");
  EXPECT_EQ(str(root, "model"), "test-detector");
  EXPECT_EQ(json_object_get_int(get(root, "count")), 2);
  json_object *list = get(root, "findings");
  ASSERT_EQ(json_object_array_length(list), 2u);
  std::set<std::string> uids;
  for (size_t i = 0; i < 2; ++i) {
    json_object *o = json_object_array_get_idx(list, i);
    const mi_finding &f = x.f[i];
    const char *label = i == 0 ? "Nodule" : "Mass, \"solid\" <b>";
    EXPECT_EQ(json_object_get_int(get(o, "index")), (int)i + 1);
    EXPECT_EQ(str(o, "label"), label);
    EXPECT_EQ(str(o, "name"), std::string(label) + " " + std::to_string(i + 1));
    EXPECT_EQ(json_object_get_int(get(o, "label_value")), f.label);
    EXPECT_NEAR(json_object_get_double(get(o, "score")), f.score, 1e-6);
    for (int a = 0; a < 3; ++a) {
      EXPECT_NEAR(at(get(o, "center_mm"), a), f.center[a], 1e-3);
      EXPECT_NEAR(at(get(o, "size_mm"), a), f.size_mm[a], 1e-3);
      EXPECT_NEAR(at(get(o, "center_index"), a), f.center_index[a], 1e-3);
      for (int r = 0; r < 3; ++r)
        EXPECT_NEAR(at(json_object_array_get_idx(get(o, "half_axes_mm"), a), r), f.axes[a][r], 1e-3);
    }
    EXPECT_EQ(json_object_get_int(get(o, "slice")), f.slice);
    EXPECT_EQ(json_object_get_int(get(o, "first_slice")), f.first_slice);
    EXPECT_EQ(json_object_get_int(get(o, "last_slice")), f.last_slice);
    EXPECT_EQ(json_object_get_int(get(o, "contributing_slices")), f.contributing_slices);
    std::string uid = str(o, "tracking_uid");
    EXPECT_TRUE(std::regex_match(uid, std::regex("2\\.25\\.(0|[1-9][0-9]*)"))) << uid;
    EXPECT_LE(uid.size(), 64u);
    uids.insert(uid);
  }
  EXPECT_EQ(uids.size(), 2u);
  json_object_put(root);
}

TEST(FindingsCsv, PythonReadsTheValuesWritten) {
  Fixture x;
  std::string path = x.dir + "/findings.csv", jpath = x.dir + "/findings.json";
  mi_status *st = mi_findings_write_csv(x.card, x.f.data(), x.f.size(), path.c_str());
  ASSERT_EQ(st, nullptr) << mi_status_message(st);
  ASSERT_EQ(mi_findings_write_json(x.card, x.f.data(), x.f.size(), "1.2", jpath.c_str()), nullptr);
  auto rows = python_csv(path);
  ASSERT_EQ(rows.size(), 3u);
  const std::vector<std::string> header = {"index",       "name",        "label",       "label_value",
                                           "score",       "center_x_mm", "center_y_mm", "center_z_mm",
                                           "size_x_mm",   "size_y_mm",   "size_z_mm",   "slice",
                                           "first_slice", "last_slice",  "contributing_slices", "tracking_uid"};
  EXPECT_EQ(rows[0], header);
  json_object *root = parse(jpath);
  for (size_t i = 0; i < 2; ++i) {
    const auto &r = rows[i + 1];
    const mi_finding &f = x.f[i];
    ASSERT_EQ(r.size(), header.size());
    const std::string label = i == 0 ? "Nodule" : "Mass, \"solid\" <b>";
    EXPECT_EQ(r[0], std::to_string(i + 1));
    EXPECT_EQ(r[1], label + " " + std::to_string(i + 1));
    EXPECT_EQ(r[2], label);
    EXPECT_EQ(std::stoi(r[3]), f.label);
    EXPECT_NEAR(std::stod(r[4]), f.score, 1e-6);
    for (int a = 0; a < 3; ++a) {
      EXPECT_NEAR(std::stod(r[5 + a]), f.center[a], 1e-3);
      EXPECT_NEAR(std::stod(r[8 + a]), f.size_mm[a], 1e-3);
    }
    EXPECT_EQ(std::stoi(r[11]), f.slice);
    EXPECT_EQ(std::stoi(r[12]), f.first_slice);
    EXPECT_EQ(std::stoi(r[13]), f.last_slice);
    EXPECT_EQ(std::stoi(r[14]), f.contributing_slices);
    // The same finding carries the same tracking UID in both files.
    EXPECT_EQ(r[15], str(json_object_array_get_idx(get(root, "findings"), i), "tracking_uid"));
  }
  json_object_put(root);
  // RFC 4180 line ends: every line ends in CRLF.
  std::string text = read_text(path);
  size_t lf = 0, crlf = 0;
  for (size_t k = 0; k < text.size(); ++k)
    if (text[k] == '\n') ++lf, crlf += k > 0 && text[k - 1] == '\r';
  EXPECT_EQ(lf, 3u);
  EXPECT_EQ(crlf, 3u);
}

TEST(FindingsOutputs, EmptyListsAreValidFiles) {
  Fixture x;
  std::string j = x.dir + "/e.json", c = x.dir + "/e.csv", m = x.dir + "/e.mrk.json";
  ASSERT_EQ(mi_findings_write_json(x.card, nullptr, 0, nullptr, j.c_str()), nullptr);
  ASSERT_EQ(mi_findings_write_csv(x.card, nullptr, 0, c.c_str()), nullptr);
  ASSERT_EQ(mi_findings_write_markups(x.card, nullptr, 0, m.c_str()), nullptr);
  json_object *root = parse(j);
  EXPECT_EQ(json_object_get_int(get(root, "count")), 0);
  EXPECT_EQ(json_object_array_length(get(root, "findings")), 0u);
  json_object_put(root);
  EXPECT_EQ(python_csv(c).size(), 1u);
  root = parse(m);
  EXPECT_EQ(json_object_array_length(get(root, "markups")), 0u);
  json_object_put(root);
}

// The ROI of each finding: centre, size and axes as Slicer reads them back.
static void check_markups(const Fixture &x, const std::string &path) {
  json_object *root = parse(path);
  ASSERT_NE(root, nullptr);
  // Slicer accepts @schema matching ".*markups-schema-v1\.[0-9]+\.[0-9]+\.json#*$".
  EXPECT_TRUE(std::regex_match(str(root, "@schema"), std::regex(".*markups-schema-v1\\.[0-9]+\\.[0-9]+\\.json#*")));
  json_object *list = get(root, "markups");
  ASSERT_EQ(json_object_array_length(list), x.f.size());
  for (size_t i = 0; i < x.f.size(); ++i) {
    json_object *m = json_object_array_get_idx(list, i);
    const mi_finding &f = x.f[i];
    EXPECT_EQ(str(m, "type"), "ROI");
    EXPECT_EQ(str(m, "roiType"), "Box");
    EXPECT_EQ(str(m, "coordinateSystem"), "LPS");
    EXPECT_EQ(str(m, "name"), std::string(i == 0 ? "Nodule" : "Mass, \"solid\" <b>") + " " + std::to_string(i + 1));
    EXPECT_NE(str(m, "description").find("score 0."), std::string::npos);
    json_object *c = get(m, "center"), *s = get(m, "size"), *o = get(m, "orientation");
    ASSERT_EQ(json_object_array_length(c), 3u);
    ASSERT_EQ(json_object_array_length(s), 3u);
    ASSERT_EQ(json_object_array_length(o), 9u);
    double rot[9];
    for (int k = 0; k < 9; ++k) rot[k] = at(o, k);
    for (int a = 0; a < 3; ++a) {
      EXPECT_NEAR(at(c, a), f.center[a], 1e-4);
      EXPECT_NEAR(at(s, a), f.size_mm[a], 1e-4);
    }
    // Orthonormal and right-handed, as a Box ROI's frame must be.
    double det = rot[0] * (rot[4] * rot[8] - rot[5] * rot[7]) - rot[1] * (rot[3] * rot[8] - rot[5] * rot[6]) +
                 rot[2] * (rot[3] * rot[7] - rot[4] * rot[6]);
    EXPECT_NEAR(det, 1.0, 1e-5);
    // The ROI's corners, centre +- size/2 along the orientation's columns,
    // are the finding's corners (up to their order).
    std::set<std::vector<long>> want, got;
    for (int corner = 0; corner < 8; ++corner) {
      std::vector<long> pw(3), pg(3);
      for (int r = 0; r < 3; ++r) {
        double w = f.center[r], q = at(c, r);
        for (int a = 0; a < 3; ++a) {
          double sgn = (corner >> a) & 1 ? 1.0 : -1.0;
          w += sgn * f.axes[a][r];
          q += sgn * 0.5 * at(s, a) * rot[3 * r + a];
        }
        pw[r] = std::lround(w * 100), pg[r] = std::lround(q * 100);
      }
      want.insert(pw), got.insert(pg);
    }
    EXPECT_EQ(got, want);
    json_object *color = get(get(m, "display"), "color");
    const uint8_t *rgb = mi_card_label_at(x.card, f.label_index)->rgb;
    for (int k = 0; k < 3; ++k) EXPECT_NEAR(at(color, k), rgb[k] / 255.0, 1e-5);
    json_object *score = json_object_array_get_idx(get(m, "measurements"), 0);
    EXPECT_EQ(str(score, "name"), "score");
    EXPECT_NEAR(json_object_get_double(get(score, "value")), f.score, 1e-5);
  }
  json_object_put(root);
}

TEST(FindingsMarkups, RoiPerFindingMatchesTheBoxes) {
  Fixture x;
  std::string path = x.dir + "/findings.mrk.json";
  mi_status *st = mi_findings_write_markups(x.card, x.f.data(), x.f.size(), path.c_str());
  ASSERT_EQ(st, nullptr) << mi_status_message(st);
  check_markups(x, path);
}

TEST(FindingsMarkups, LeftHandedGridGivesTheSameBox) {
  Fixture x(-35.0, -1.0);  // slices stored against the row x column normal
  std::string path = x.dir + "/lh.mrk.json";
  ASSERT_EQ(mi_findings_write_markups(x.card, x.f.data(), x.f.size(), path.c_str()), nullptr);
  check_markups(x, path);
}

TEST(FindingsMarkups, ValidatesAgainstTheSchema) {
  if (std::system("/usr/bin/python3 -c 'import jsonschema' 2>/dev/null") != 0)
    GTEST_SKIP() << "python3-jsonschema is not installed (scripts/install-deps.sh installs it)";
  Fixture x;
  std::string path = x.dir + "/v.mrk.json";
  ASSERT_EQ(mi_findings_write_markups(x.card, x.f.data(), x.f.size(), path.c_str()), nullptr);
  std::vector<std::string> schemas = {std::string(MI_SEG_TEST_SRC) + "/markups_roi_schema.json"};
  // Slicer's own schema (Modules/Loadable/Markups/Resources/Schema) when a
  // copy is at hand.
  if (const char *s = getenv("MEDINFER_SLICER_MARKUPS_SCHEMA")) schemas.push_back(s);
  for (const auto &schema : schemas) {
    std::string cmd = "/usr/bin/python3 -c \"import json,sys,jsonschema\n"
                      "jsonschema.validate(json.load(open(sys.argv[1])), json.load(open(sys.argv[2])))\" '" +
                      path + "' '" + schema + "'";
    EXPECT_EQ(std::system(cmd.c_str()), 0) << "schema " << schema;
  }
  // The schema test can fail: a markup without a centre does not validate.
  std::string bad = x.dir + "/bad.mrk.json";
  std::ofstream(bad) << R"({"@schema": "x/markups-schema-v1.0.3.json#", "markups": [{"type": "ROI", "roiType": "Box",
    "coordinateSystem": "LPS", "name": "n", "size": [1, 2], "orientation": [1,0,0,0,1,0,0,0,1]}]})";
  std::string cmd = "/usr/bin/python3 -c \"import json,sys,jsonschema\n"
                    "jsonschema.validate(json.load(open(sys.argv[1])), json.load(open(sys.argv[2])))\" '" +
                    bad + "' '" + schemas[0] + "' 2>/dev/null";
  EXPECT_NE(std::system(cmd.c_str()), 0);
}

TEST(FindingsOutputs, BadArgumentsAreErrors) {
  Fixture x;
  std::string p = x.dir + "/out.json";
  const mi_finding *f = x.f.data();
  expect_error(mi_findings_write_json(nullptr, f, 2, "1", p.c_str()), MI_ERR_INVALID_ARGUMENT);
  expect_error(mi_findings_write_json(x.card, f, 2, "1", nullptr), MI_ERR_INVALID_ARGUMENT);
  expect_error(mi_findings_write_csv(x.card, nullptr, 2, p.c_str()), MI_ERR_INVALID_ARGUMENT);
  expect_error(mi_findings_write_markups(x.card, f, 2, ""), MI_ERR_INVALID_ARGUMENT);
  mi_finding bad = x.f[0];
  bad.label_index = 7;
  std::string msg = expect_error(mi_findings_write_csv(x.card, &bad, 1, p.c_str()), MI_ERR_INVALID_ARGUMENT);
  EXPECT_NE(msg.find("finding 1: label index 7"), std::string::npos) << msg;
  bad = x.f[1];
  bad.center[1] = NAN;
  msg = expect_error(mi_findings_write_markups(x.card, &bad, 1, p.c_str()), MI_ERR_INVALID_ARGUMENT);
  EXPECT_NE(msg.find("not finite"), std::string::npos) << msg;
  struct stat s;
  EXPECT_NE(stat(p.c_str(), &s), 0) << "nothing is written on bad arguments";

  // Unwritable place: a folder path running through a regular file (fails
  // for root too).
  std::string file = x.dir + "/plain";
  std::ofstream(file) << "x";
  std::string under = file + "/findings.json";
  msg = expect_error(mi_findings_write_json(x.card, f, 2, "1", under.c_str()), MI_ERR_IO);
  EXPECT_NE(msg.find(under), std::string::npos) << msg;
  EXPECT_NE(msg.find("Not a directory"), std::string::npos) << msg;
}

TEST(FindingsOutputs, RewriteIsAtomicAndLeavesNoTemporaryFiles) {
  Fixture x;
  std::string p = x.dir + "/f.csv";
  ASSERT_EQ(mi_findings_write_csv(x.card, x.f.data(), 2, p.c_str()), nullptr);
  ASSERT_EQ(mi_findings_write_csv(x.card, x.f.data(), 1, p.c_str()), nullptr);
  EXPECT_EQ(python_csv(p).size(), 2u);
  std::string ls = "ls -a '" + x.dir + "' | grep -c tmp-";
  FILE *q = popen(ls.c_str(), "r");
  char b[16] = {0};
  fread(b, 1, sizeof b - 1, q);
  pclose(q);
  EXPECT_EQ(std::atoi(b), 0);
}
