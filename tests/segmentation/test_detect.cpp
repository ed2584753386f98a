// Detection building blocks: IoU, class-wise NMS, slice merging, detector
// cards (fields named in errors).
#include <gtest/gtest.h>
#include <stdlib.h>

#include <fstream>
#include <string>
#include <vector>

#include "medinfer/segmentation.h"
#include "seg_test_util.h"

namespace {

mi_box box2(float x0, float y0, float x1, float y1, int z, float score, int cls = 0) {
  mi_box b{};
  b.lo[0] = x0, b.lo[1] = y0, b.hi[0] = x1, b.hi[1] = y1;
  b.lo[2] = b.hi[2] = (float)z;
  b.score = score, b.cls = cls, b.count = 1;
  return b;
}

mi_box box3(float c, float half, float score, int cls = 0) {
  mi_box b{};
  for (int a = 0; a < 3; ++a) b.lo[a] = c - half, b.hi[a] = c + half;
  b.score = score, b.cls = cls, b.count = 1;
  return b;
}

}  // namespace

TEST(Boxes, Iou) {
  mi_box a = box2(0, 0, 2, 2, 0, 1), b = box2(1, 0, 3, 2, 0, 1);
  EXPECT_NEAR(mi_box_iou(&a, &b, 2), 2.0 / 6.0, 1e-9);
  mi_box c = box2(5, 5, 6, 6, 0, 1);
  EXPECT_EQ(mi_box_iou(&a, &c, 2), 0.0);
  mi_box p = box3(0, 1, 1), q = box3(1, 1, 1);  // cubes of side 2 shifted by 1 on every axis
  EXPECT_NEAR(mi_box_iou(&p, &q, 3), 1.0 / 15.0, 1e-9);
  EXPECT_NEAR(mi_box_iou(&p, &p, 3), 1.0, 1e-12);
}

TEST(Boxes, NmsIsClassWiseAndSortsByScore) {
  std::vector<mi_box> v = {box3(0, 2, 0.6f), box3(0.2f, 2, 0.9f), box3(0.1f, 2, 0.8f, 1), box3(10, 2, 0.7f)};
  size_t n = mi_nms(v.data(), v.size(), 3, 0.5, 0);
  ASSERT_EQ(n, 3u);
  EXPECT_FLOAT_EQ(v[0].score, 0.9f);  // suppresses the 0.6 box of its class
  EXPECT_EQ(v[1].cls, 1);             // another class survives the overlap
  EXPECT_FLOAT_EQ(v[2].score, 0.7f);
  std::vector<mi_box> w = {box3(0, 2, 0.6f), box3(10, 2, 0.9f), box3(20, 2, 0.8f)};
  EXPECT_EQ(mi_nms(w.data(), w.size(), 3, 0.5, 2), 2u);
  EXPECT_FLOAT_EQ(w[1].score, 0.8f);
  EXPECT_EQ(mi_nms(nullptr, 0, 3, 0.5, 0), 0u);
}

TEST(Boxes, MergeSlicesChainsAcrossGaps) {
  // A lesion seen on slices 4, 5, 7 (slice 6 missed) and a second object of
  // another class on slice 5 at the same place; a lone box on slice 20.
  std::vector<mi_box> in = {box2(10, 10, 20, 20, 4, 0.5f), box2(9, 9, 21, 21, 5, 0.9f),
                            box2(10, 10, 20, 20, 7, 0.6f), box2(10, 10, 20, 20, 5, 0.7f, 1),
                            box2(50, 50, 55, 55, 20, 0.8f)};
  mi_box *out = nullptr;
  size_t n = 0;
  mi_status *st = mi_merge_slices(in.data(), in.size(), 0.3, 1, 1, &out, &n);
  ASSERT_EQ(st, nullptr) << mi_status_message(st);
  ASSERT_EQ(n, 3u);
  const mi_box *chain = nullptr;
  for (size_t i = 0; i < n; ++i)
    if (out[i].cls == 0 && out[i].count == 3) chain = &out[i];
  ASSERT_NE(chain, nullptr);
  EXPECT_FLOAT_EQ(chain->score, 0.9f);
  EXPECT_FLOAT_EQ(chain->lo[0], 9);
  EXPECT_FLOAT_EQ(chain->hi[0], 21);
  EXPECT_FLOAT_EQ(chain->lo[2], 3.5f);
  EXPECT_FLOAT_EQ(chain->hi[2], 7.5f);
  free(out);
  // No gap allowed: slice 7 starts a new chain; min_slices 2 drops singles.
  st = mi_merge_slices(in.data(), in.size(), 0.3, 0, 2, &out, &n);
  ASSERT_EQ(st, nullptr);
  ASSERT_EQ(n, 1u);
  EXPECT_EQ(out[0].count, 2);
  EXPECT_FLOAT_EQ(out[0].lo[2], 3.5f);
  EXPECT_FLOAT_EQ(out[0].hi[2], 5.5f);
  free(out);
  st = mi_merge_slices(in.data(), in.size(), 0.3, -1, 1, &out, &n);
  EXPECT_NE(st, nullptr);
  mi_status_free(st);
}

namespace {

const char *kDetCard = R"({
  "name": "d", "version": "1", "task": "detection", "model": "m.onnx",
  "applies_to": {"modality": ["CT"], "min_size": [32, 32, 16]},
  "input": {"channels": 1, "spacing": [1, 1, 2], "preprocessing": [{"type": "ct_window", "center": -600, "width": 1500}]},
  "inference": {"mode": "2d", "batch": 4},
  "output": {
    "head": {"type": "yolo", "box_coding": "yolov3", "order": "bpc",
             "outputs": [{"name": "p3", "stride": [8, 8], "anchors": [[10, 13], [16, 30]]},
                         {"name": "p4", "stride": [16, 16], "anchors": [[33, 23]]}]},
    "labels": [{"value": 1, "name": "Nodule", "color": [255, 0, 0],
                "category": {"scheme": "SCT", "value": "49755003", "meaning": "Morphologically Altered Structure"},
                "type": {"scheme": "SCT", "value": "27925004", "meaning": "Nodule"}}],
    "score_threshold": 0.4, "iou_threshold": 0.45, "max_detections": 20,
    "merge": {"iou": 0.2, "max_gap": 2, "min_slices": 2}}
})";

std::string card_error(const std::string &from, const std::string &to) {
  std::string s = kDetCard;
  size_t at = s.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  s.replace(at, from.size(), to);
  static TempDir dir("det-card");  // removed at exit
  std::string p = dir.path() + "/bad.card.json";
  std::ofstream(p) << s;
  mi_card *c = nullptr;
  mi_status *st = mi_card_load(p.c_str(), &c);
  std::string msg = st ? mi_status_message(st) : "(loaded)";
  mi_status_free(st);
  mi_card_free(c);
  return msg;
}

}  // namespace

TEST(DetectorCard, LoadsAndNamesBadFields) {
  TempDir dir("det-card");
  std::string p = dir.path() + "/d.card.json";
  std::ofstream(p) << kDetCard;
  mi_card *c = nullptr;
  mi_status *st = mi_card_load(p.c_str(), &c);
  ASSERT_EQ(st, nullptr) << mi_status_message(st);
  EXPECT_STREQ(mi_card_task(c), "detection");
  EXPECT_STREQ(mi_card_mode(c), "2d");
  EXPECT_EQ(mi_card_label_count(c), 1u);
  // The model file does not exist: creating a detector names it.
  mi_detector *d = nullptr;
  st = mi_detector_create(c, nullptr, &d);
  ASSERT_NE(st, nullptr);
  EXPECT_NE(std::string(mi_status_message(st)).find("m.onnx"), std::string::npos) << mi_status_message(st);
  mi_status_free(st);
  mi_card_free(c);

  EXPECT_NE(card_error("\"yolo\"", "\"ssd\"").find("output.head.type"), std::string::npos);
  EXPECT_NE(card_error("\"yolov3\"", "\"yolov9\"").find("output.head.box_coding"), std::string::npos);
  EXPECT_NE(card_error("[[10, 13], [16, 30]]", "[[10, 13, 4]]").find("output.head.outputs[0].anchors[0]"),
            std::string::npos);
  EXPECT_NE(card_error("\"stride\": [16, 16]", "\"stride\": [16]").find("output.head.outputs[1].stride"),
            std::string::npos);
  EXPECT_NE(card_error("\"name\": \"p4\"", "\"name\": \"p3\"").find("listed twice"), std::string::npos);
  EXPECT_NE(card_error("\"score_threshold\": 0.4", "\"score_threshold\": 1.4").find("output.score_threshold"),
            std::string::npos);
  EXPECT_NE(card_error("\"mode\": \"2d\"", "\"mode\": \"3d\", \"patch_size\": [64, 64, 64]").find("output"),
            std::string::npos);  // 2D strides/anchors or merge in a 3d card
  EXPECT_NE(card_error("\"task\": \"detection\"", "\"task\": \"classification\"").find("task"), std::string::npos);
  EXPECT_NE(card_error("\"max_detections\": 20", "\"max_detections\": 20.5")
                .find("output.max_detections: expected an integer"),
            std::string::npos);
  EXPECT_NE(card_error("\"max_gap\": 2", "\"max_gap\": 1.5").find("output.merge.max_gap: expected an integer"),
            std::string::npos);
}
