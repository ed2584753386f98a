// Channel concatenations are planned in place: every input written straight
// into the concatenation's buffer; concatenations that extend each other (a
// DenseNet block) share the longest one's, the shorter ones its leading part
// (plan.c); a U-Net's skip and upsampled path are written where they join.  The results must be
// the unplanned graph's, with ReLUs that could run in place on a shared
// buffer, and batch 2 (not planned so: an input is not one piece there);
// and the arena must shrink (the copies' buffers are gone).
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "medinfer/engine.h"
#include "onnx_builder.h"

using onnxb::Model;

namespace {

struct Result {
  std::vector<float> y;
  size_t arena = 0;
};

Result run(const Model &md, bool optimize, std::vector<int64_t> dims, std::vector<float> x) {
  auto buf = md.serialize();
  mi_options o;
  mi_options_default(&o);
  o.optimize = optimize;
  o.threads = 2;
  mi_model *m = nullptr;
  Result r;
  mi_status *st = mi_model_load_buffer(buf.data(), buf.size(), nullptr, "dense.onnx", &o, &m);
  EXPECT_EQ(st, nullptr) << (st ? mi_status_message(st) : "");
  if (st) {
    mi_status_free(st);
    return r;
  }
  mi_tensor *in = nullptr, *out = nullptr;
  EXPECT_EQ(mi_tensor_wrap(MI_FLOAT, (int)dims.size(), dims.data(), x.data(), &in), nullptr);
  st = mi_model_run(m, &in, 1, &out, 1);
  EXPECT_EQ(st, nullptr) << (st ? mi_status_message(st) : "");
  if (!st) {
    const float *p = static_cast<const float *>(mi_tensor_cdata(out));
    r.y.assign(p, p + mi_tensor_numel(out));
    r.arena = mi_model_arena_bytes(m);
  }
  mi_status_free(st);
  mi_tensor_free(in);
  mi_tensor_free(out);
  mi_model_free(m);
  return r;
}

void conv(Model &md, const std::string &x, const std::string &y, int64_t cin, int64_t cout, int64_t k, unsigned seed) {
  md.inits.push_back(onnxb::float_tensor("w_" + y, {cout, cin, k, k}, onnxb::random_floats((size_t)(cout * cin * k * k), seed)));
  md.nodes.push_back({"Conv", "conv_" + y, {x, "w_" + y}, {y},
                      {onnxb::attr_ints("pads", {k / 2, k / 2, k / 2, k / 2})}});
}

// x -> a; y1 = f(a); c1 = [a, y1]; y2 = f(relu(c1)); c2 = [a, y1, y2];
// y3 = f(c2); c3 = [a, y1, y2, y3]; out = g(c3) + h(relu(y3)), the last
// ReLU after c3 and before c3's reader.
Model dense_model(int64_t batch) {
  Model md;
  md.inputs.push_back({"x", 1, {batch, 4, 6, 6}});
  md.outputs.push_back({"out", 1, {}});
  conv(md, "x", "a", 4, 4, 3, 1);
  conv(md, "a", "y1", 4, 3, 3, 2);
  md.nodes.push_back({"Concat", "c1", {"a", "y1"}, {"c1"}, {onnxb::attr_int("axis", 1)}});
  md.nodes.push_back({"Relu", "r1", {"c1"}, {"r1"}, {}});
  conv(md, "r1", "y2", 7, 3, 3, 3);
  md.nodes.push_back({"Concat", "c2", {"a", "y1", "y2"}, {"c2"}, {onnxb::attr_int("axis", 1)}});
  conv(md, "c2", "y3", 10, 3, 1, 4);
  md.nodes.push_back({"Concat", "c3", {"a", "y1", "y2", "y3"}, {"c3"}, {onnxb::attr_int("axis", 1)}});
  md.nodes.push_back({"Relu", "t", {"y3"}, {"t"}, {}});
  conv(md, "c3", "z", 13, 2, 3, 5);
  conv(md, "t", "u", 3, 2, 1, 6);
  md.nodes.push_back({"Add", "sum", {"z", "u"}, {"out"}, {}});
  return md;
}

void expect_same(const std::vector<float> &a, const std::vector<float> &b) {
  ASSERT_EQ(a.size(), b.size());
  ASSERT_FALSE(a.empty());
  int bad = 0;
  for (size_t i = 0; i < a.size(); i++)
    if (!(std::fabs(a[i] - b[i]) <= 1e-4f * (1.f + std::fabs(b[i]))) && bad++ < 5)
      ADD_FAILURE() << "element " << i << ": " << a[i] << " vs " << b[i];
}

// make(batch)'s model on random input of chw per image, batches 1 and 2:
// planned as the unplanned graph; with one image, an arena under `bound`
// planes of chw's map.
void check_planned(Model (*make)(int64_t), std::vector<int64_t> chw, unsigned seed, size_t bound) {
  for (int64_t batch : {1, 2}) {
    SCOPED_TRACE("batch " + std::to_string(batch));
    Model md = make(batch);
    std::vector<int64_t> dims = {batch, chw[0], chw[1], chw[2]};
    auto x = onnxb::random_floats((size_t)(batch * chw[0] * chw[1] * chw[2]), seed);
    Result on = run(md, true, dims, x), off = run(md, false, dims, x);
    expect_same(on.y, off.y);
    const size_t plane = (size_t)(chw[1] * chw[2]) * sizeof(float);
    if (batch == 1) {
      EXPECT_LT(on.arena, bound * plane) << "unplanned " << off.arena;
    }
  }
}

// One image: c1 and c2 are c3's leading part and no input has a buffer of
// its own; the unplanned graph holds c3 (13 planes) and, while it is made,
// its inputs (13 planes) at least.
TEST(ConcatInPlace, DenseBlockMatchesUnplanned) { check_planned(dense_model, {4, 6, 6}, 7, 26); }

// x -> s (skip, also read by the path down); d = pool(s) -> conv -> up
// (ConvTranspose 2x2 stride 2, ReLU fused) ; c = [s, up] -> conv.  The skip is
// read by the pooling from inside c's buffer before up is written there.
Model unet_model(int64_t batch) {
  Model md;
  md.inputs.push_back({"x", 1, {batch, 3, 8, 8}});
  md.outputs.push_back({"out", 1, {}});
  conv(md, "x", "s", 3, 4, 3, 11);
  md.nodes.push_back({"MaxPool", "pool", {"s"}, {"d"}, {onnxb::attr_ints("kernel_shape", {2, 2}),
                                                          onnxb::attr_ints("strides", {2, 2})}});
  conv(md, "d", "e", 4, 6, 3, 12);
  md.inits.push_back(onnxb::float_tensor("w_up", {6, 5, 2, 2}, onnxb::random_floats(6 * 5 * 4, 13)));
  md.nodes.push_back({"ConvTranspose", "up", {"e", "w_up"}, {"u"}, {onnxb::attr_ints("strides", {2, 2})}});
  md.nodes.push_back({"Relu", "ru", {"u"}, {"ru"}, {}});
  md.nodes.push_back({"Concat", "c", {"s", "ru"}, {"c"}, {onnxb::attr_int("axis", 1)}});
  conv(md, "c", "out", 9, 2, 3, 14);
  return md;
}

// One image: s and ru live in c (9 planes of 64); a copy would hold them
// and c at once (18 planes).
TEST(ConcatInPlace, UNetSkipMatchesUnplanned) { check_planned(unet_model, {3, 8, 8}, 15, 18); }

}  // namespace
