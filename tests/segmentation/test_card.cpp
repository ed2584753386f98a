// Model cards: a valid card, errors that name the file and the field,
// applicability, lookup by name and path.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <fstream>
#include <string>

#include "medinfer/segmentation.h"
#include "seg_test_util.h"

namespace {

const char *kCard = R"({
  "name": "t", "version": "1", "task": "segmentation", "model": "m.onnx",
  "applies_to": {"modality": ["CT"], "body_part": ["CHEST"], "min_size": [32, 32, 16]},
  "input": {"channels": 1, "spacing": [2, 2, 3], "orientation": "LPS",
            "preprocessing": [{"type": "ct_window", "center": 40, "width": 400}, {"type": "zscore"}]},
  "inference": {"mode": "3d", "patch_size": [16, 16, 8], "overlap": 0.25, "batch": 2, "mirroring": true},
  "output": {"activation": "softmax", "labels": [
    {"value": 1, "name": "Liver", "color": [1, 2, 3],
     "category": {"scheme": "SCT", "value": "123037004", "meaning": "Anatomical Structure"},
     "type": {"scheme": "SCT", "value": "10200004", "meaning": "Liver"}}],
    "postprocessing": {"largest_component": [1], "fill_holes": true}}
})";

std::string dir() {
  static TempDir d("seg-card");  // removed at exit
  return d.path();
}

std::string write(const std::string &name, const std::string &text) {
  std::string p = dir() + "/" + name;
  std::ofstream(p) << text;
  return p;
}

// Card text with `from` replaced by `to` (once).
std::string edit(const std::string &from, const std::string &to) {
  std::string s = kCard;
  size_t at = s.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  return s.replace(at, from.size(), to);
}

std::string load_error(const std::string &text) {
  std::string p = write("bad.card.json", text);
  mi_card *c = nullptr;
  mi_status *st = mi_card_load(p.c_str(), &c);
  std::string msg = st ? mi_status_message(st) : "(loaded)";
  EXPECT_EQ(c, nullptr);
  mi_status_free(st);
  mi_card_free(c);
  return msg;
}

}  // namespace

TEST(Card, ValidCardLoads) {
  std::string p = write("t.card.json", kCard);
  mi_card *c = nullptr;
  mi_status *st = mi_card_load(p.c_str(), &c);
  ASSERT_EQ(st, nullptr) << mi_status_message(st);
  EXPECT_STREQ(mi_card_name(c), "t");
  EXPECT_EQ(std::string(mi_card_model_path(c)), dir() + "/m.onnx");
  EXPECT_STREQ(mi_card_mode(c), "3d");
  EXPECT_EQ(mi_card_spacing(c)[2], 3.0);
  ASSERT_EQ(mi_card_label_count(c), 1u);
  EXPECT_STREQ(mi_card_label_at(c, 0)->type_meaning, "Liver");
  EXPECT_EQ(mi_card_label_at(c, 0)->rgb[2], 3);
  mi_card_free(c);
}

TEST(Card, ErrorsNameFileAndField) {
  struct {
    const char *from, *to, *field;
  } cases[] = {
      {"\"spacing\": [2, 2, 3]", "\"spacing\": [2, 0, 3]", "input.spacing: expected 3 positive numbers"},
      {"\"spacing\": [2, 2, 3]", "\"spacing\": [2, 2]", "input.spacing"},
      {"\"overlap\": 0.25", "\"overlap\": 1.5", "inference.overlap"},
      {"\"overlap\": 0.25", "\"overlap\": 0.999", "inference.overlap: expected a number in [0, 0.9]"},
      {"\"mode\": \"3d\"", "\"mode\": \"4d\"", "inference.mode"},
      {"\"patch_size\": [16, 16, 8]", "\"patch_size\": [16, -1, 8]", "inference.patch_size"},
      {"\"patch_size\": [16, 16, 8]", "\"patch_size\": [1024, 1024, 1024]", "inference.patch_size: expected at most 2^25"},
      {"\"patch_size\": [16, 16, 8]", "\"patch_size\": [1e300, 1, 1]", "inference.patch_size"},
      {"\"activation\": \"softmax\"", "\"activation\": \"relu\"", "output.activation"},
      {"\"meaning\": \"Liver\"", "\"meaning\": 5", "output.labels[0].type.meaning"},
      {"\"color\": [1, 2, 3]", "\"color\": [1, 2, 300]", "output.labels[0].color"},
      {"\"value\": 1, \"name\"", "\"value\": 0, \"name\"", "output.labels[0].value"},
      {"\"type\": \"ct_window\", \"center\": 40, ", "\"type\": \"ct_window\", ", "input.preprocessing[0].center"},
      {"{\"type\": \"zscore\"}", "{\"type\": \"gamma\"}", "input.preprocessing[1].type"},
      {"\"task\": \"segmentation\"", "\"task\": \"classification\"", "task"},
      {"\"channels\": 1", "\"channels\": 3", "input.channels"},
      {"\"channels\": 1", "\"channels\": 1.5", "input.channels: expected an integer"},
      {"\"min_size\": [32, 32, 16]", "\"min_size\": [32, 32]", "applies_to.min_size"},
      {"\"largest_component\": [1]", "\"largest_component\": [7]", "output.postprocessing.largest_component"},
      {"\"name\": \"t\", ", "", "name: missing"},
  };
  for (const auto &c : cases) {
    std::string msg = load_error(edit(c.from, c.to));
    EXPECT_NE(msg.find("bad.card.json: "), std::string::npos) << msg;
    EXPECT_NE(msg.find(c.field), std::string::npos) << "expected '" << c.field << "' in: " << msg;
  }
}

TEST(Card, SyntaxErrorsAndMissingFiles) {
  std::string msg = load_error("{\n\"name\": \"t\",\n  oops\n}");
  EXPECT_NE(msg.find("bad.card.json: line 3: invalid JSON"), std::string::npos) << msg;
  msg = load_error("");
  EXPECT_NE(msg.find("invalid JSON"), std::string::npos) << msg;
  msg = load_error("[1, 2]");
  EXPECT_NE(msg.find("expected a JSON object"), std::string::npos) << msg;
  mi_card *c = nullptr;
  mi_status *st = mi_card_load("/nonexistent/x.card.json", &c);
  ASSERT_NE(st, nullptr);
  EXPECT_NE(std::string(mi_status_message(st)).find("/nonexistent/x.card.json: cannot open"), std::string::npos);
  mi_status_free(st);
}

TEST(Card, Applies) {
  std::string p = write("t.card.json", kCard);
  mi_card *c = nullptr;
  ASSERT_EQ(mi_card_load(p.c_str(), &c), nullptr);
  const int64_t ok[3] = {64, 64, 20}, small[3] = {64, 64, 10};
  char why[256];
  EXPECT_EQ(mi_card_applies(c, "CT", nullptr, ok, why, sizeof why), 1);
  EXPECT_EQ(mi_card_applies(c, "CT", "chest", ok, why, sizeof why), 1);  // CS values compare case-insensitively
  EXPECT_EQ(mi_card_applies(c, "MR", nullptr, ok, why, sizeof why), 0);
  EXPECT_STREQ(why, "modality MR not in [CT]");
  EXPECT_EQ(mi_card_applies(c, "CT", "HEAD", ok, why, sizeof why), 0);
  EXPECT_NE(std::string(why).find("body part HEAD"), std::string::npos);
  EXPECT_EQ(mi_card_applies(c, "CT", nullptr, small, why, sizeof why), 0);
  EXPECT_NE(std::string(why).find("smaller than the model's minimum 32x32x16"), std::string::npos) << why;
  mi_card_free(c);
}

TEST(Card, InstalledListAndFind) {
  std::string sub = dir() + "/installed";
  std::string cmd = "mkdir -p " + sub + "/t " + sub + "/broken";
  ASSERT_EQ(system(cmd.c_str()), 0);
  std::ofstream(sub + "/t/t.card.json") << kCard;
  std::ofstream(sub + "/broken/b.card.json") << "{";
  setenv("MEDINFER_MODEL_PATH", sub.c_str(), 1);
  mi_card_list *l = nullptr;
  ASSERT_EQ(mi_card_list_installed(&l), nullptr);
  bool found = false;
  for (size_t i = 0; i < mi_card_list_count(l); ++i) found |= std::string(mi_card_name(mi_card_list_at(l, i))) == "t";
  EXPECT_TRUE(found);
  bool problem = false;
  for (size_t i = 0; i < mi_card_list_problem_count(l); ++i)
    problem |= std::string(mi_card_list_problem(l, i)).find("b.card.json") != std::string::npos;
  EXPECT_TRUE(problem);
  mi_card_list_free(l);
  mi_card *c = nullptr;
  ASSERT_EQ(mi_card_find("t", &c), nullptr);
  mi_card_free(c);
  c = nullptr;
  ASSERT_EQ(mi_card_find((sub + "/t/t.card.json").c_str(), &c), nullptr);
  mi_card_free(c);
  mi_status *st = mi_card_find("no-such-model", &c);
  ASSERT_NE(st, nullptr);
  EXPECT_NE(std::string(mi_status_message(st)).find("no installed model named \"no-such-model\""), std::string::npos);
  mi_status_free(st);
  unsetenv("MEDINFER_MODEL_PATH");
}
