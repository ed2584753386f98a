// Engine API: loading, describing, running, and refusing bad models cleanly.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "../common/temp_dir.h"
#include "medinfer/engine.h"
#include "onnx_builder.h"

using onnxb::Model;
using onnxb::random_floats;
using onnxb::Node;

namespace {

struct StatusMsg {
  mi_code code = MI_OK;
  std::string msg;
};

StatusMsg take(mi_status *st) {
  StatusMsg s;
  s.code = mi_status_code(st);
  s.msg = mi_status_message(st);
  mi_status_free(st);
  return s;
}

// Conv(1->2, 3x3, pad 1) -> Relu with batch dimension "N".
Model conv_relu_model(const std::vector<float> &w, const std::vector<float> &b) {
  Model m;
  m.inputs.push_back({"x", 1, {-1, 1, 5, 5}});
  m.outputs.push_back({"y", 1, {-1, 2, 5, 5}});
  m.inits.push_back(onnxb::float_tensor("w", {2, 1, 3, 3}, w));
  m.inits.push_back(onnxb::float_tensor("b", {2}, b));
  m.nodes.push_back({"Conv", "conv", {"x", "w", "b"}, {"c"}, {onnxb::attr_ints("pads", {1, 1, 1, 1})}});
  m.nodes.push_back({"Relu", "relu", {"c"}, {"y"}, {}});
  return m;
}

std::vector<float> conv_relu_reference(const std::vector<float> &x, int batch, const std::vector<float> &w,
                                       const std::vector<float> &b) {
  std::vector<float> y(batch * 2 * 25);
  for (int n = 0; n < batch; n++)
    for (int m = 0; m < 2; m++)
      for (int i = 0; i < 5; i++)
        for (int j = 0; j < 5; j++) {
          double s = b[m];
          for (int ki = 0; ki < 3; ki++)
            for (int kj = 0; kj < 3; kj++) {
              int ii = i + ki - 1, jj = j + kj - 1;
              if (ii < 0 || jj < 0 || ii >= 5 || jj >= 5) continue;
              s += w[m * 9 + ki * 3 + kj] * x[n * 25 + ii * 5 + jj];
            }
          y[((n * 2 + m) * 5 + i) * 5 + j] = s > 0 ? (float)s : 0.f;
        }
  return y;
}

StatusMsg load(const std::vector<uint8_t> &buf, mi_model **m, const mi_options *opt = nullptr) {
  return take(mi_model_load_buffer(buf.data(), buf.size(), nullptr, "test.onnx", opt, m));
}

// Loads md expecting a refusal: no model comes back.
StatusMsg load_refused(const Model &md) {
  mi_model *m = nullptr;
  StatusMsg s = load(md.serialize(), &m);
  EXPECT_EQ(m, nullptr);
  mi_model_free(m);
  return s;
}

// Runs a one-input one-output float model; returns the output values.
StatusMsg run1(mi_model *m, std::vector<int64_t> dims, std::vector<float> &x, std::vector<float> *y,
               std::vector<int64_t> *ydims = nullptr) {
  mi_tensor *in = nullptr, *out = nullptr;
  StatusMsg s = take(mi_tensor_wrap(MI_FLOAT, (int)dims.size(), dims.data(), x.data(), &in));
  if (s.code) return s;
  s = take(mi_model_run(m, &in, 1, &out, 1));
  if (!s.code) {
    const float *p = static_cast<const float *>(mi_tensor_cdata(out));
    y->assign(p, p + mi_tensor_numel(out));
    if (ydims) ydims->assign(mi_tensor_dims(out), mi_tensor_dims(out) + mi_tensor_ndim(out));
  }
  mi_tensor_free(in);
  mi_tensor_free(out);
  return s;
}

}  // namespace

TEST(EngineApi, ConvReluMatchesReferenceForSeveralBatchSizes) {
  auto w = random_floats(18, 1), b = random_floats(2, 2);
  auto buf = conv_relu_model(w, b).serialize();
  mi_model *m = nullptr;
  ASSERT_EQ(load(buf, &m).code, MI_OK);
  for (int batch : {1, 3, 2}) {
    auto x = random_floats(batch * 25, 10 + batch);
    std::vector<float> y;
    std::vector<int64_t> yd;
    auto s = run1(m, {batch, 1, 5, 5}, x, &y, &yd);
    ASSERT_EQ(s.code, MI_OK) << s.msg;
    EXPECT_EQ(yd, (std::vector<int64_t>{batch, 2, 5, 5}));
    auto ref = conv_relu_reference(x, batch, w, b);
    ASSERT_EQ(y.size(), ref.size());
    for (size_t i = 0; i < y.size(); i++) EXPECT_NEAR(y[i], ref[i], 1e-5) << i;
  }
  mi_model_free(m);
}

TEST(EngineApi, DescribesInputsAndOutputsWithSymbolicDims) {
  auto buf = conv_relu_model(random_floats(18, 1), random_floats(2, 2)).serialize();
  mi_model *m = nullptr;
  ASSERT_EQ(load(buf, &m).code, MI_OK);
  ASSERT_EQ(mi_model_num_inputs(m), 1);
  ASSERT_EQ(mi_model_num_outputs(m), 1);
  mi_io_info info;
  ASSERT_EQ(take(mi_model_input_info(m, 0, &info)).code, MI_OK);
  EXPECT_STREQ(info.name, "x");
  EXPECT_EQ(info.dtype, MI_FLOAT);
  ASSERT_EQ(info.ndim, 4);
  EXPECT_EQ(info.dims[0], -1);
  ASSERT_NE(info.dim_names[0], nullptr);
  EXPECT_STREQ(info.dim_names[0], "N");
  EXPECT_EQ(info.dims[3], 5);
  EXPECT_EQ(take(mi_model_output_info(m, 1, &info)).code, MI_ERR_INVALID_ARGUMENT);
  mi_model_free(m);
}

TEST(EngineApi, BatchNormFoldingKeepsResults) {
  Model md;
  md.inputs.push_back({"x", 1, {1, 3, 6, 6}});
  md.outputs.push_back({"y", 1, {1, 4, 6, 6}});
  md.inits.push_back(onnxb::float_tensor("w", {4, 3, 3, 3}, random_floats(108, 3)));
  md.inits.push_back(onnxb::float_tensor("scale", {4}, random_floats(4, 4)));
  md.inits.push_back(onnxb::float_tensor("bias", {4}, random_floats(4, 5)));
  md.inits.push_back(onnxb::float_tensor("mean", {4}, random_floats(4, 6)));
  md.inits.push_back(onnxb::float_tensor("var", {4}, {0.5f, 1.5f, 2.f, 0.1f}));
  md.nodes.push_back({"Conv", "conv", {"x", "w"}, {"c"}, {onnxb::attr_ints("pads", {1, 1, 1, 1})}});
  md.nodes.push_back({"BatchNormalization", "bn", {"c", "scale", "bias", "mean", "var"}, {"d"}, {}});
  md.nodes.push_back({"Relu", "relu", {"d"}, {"y"}, {}});
  auto buf = md.serialize();
  mi_options plain;
  mi_options_default(&plain);
  plain.optimize = 0;
  mi_model *folded = nullptr, *unfolded = nullptr;
  ASSERT_EQ(load(buf, &folded).code, MI_OK);
  ASSERT_EQ(load(buf, &unfolded, &plain).code, MI_OK);
  auto x = random_floats(108, 7);
  std::vector<float> a, b;
  ASSERT_EQ(run1(folded, {1, 3, 6, 6}, x, &a).code, MI_OK);
  ASSERT_EQ(run1(unfolded, {1, 3, 6, 6}, x, &b).code, MI_OK);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); i++) EXPECT_NEAR(a[i], b[i], 1e-4 + 1e-4 * std::fabs(b[i]));
  mi_model_free(folded);
  mi_model_free(unfolded);
}

TEST(EngineApi, ThreadCountDoesNotChangeResults) {
  auto w = random_floats(18, 1), b = random_floats(2, 2);
  auto buf = conv_relu_model(w, b).serialize();
  mi_model *m = nullptr;
  ASSERT_EQ(load(buf, &m).code, MI_OK);
  auto x = random_floats(4 * 25, 9);
  std::vector<float> y1, y2;
  ASSERT_EQ(take(mi_model_set_threads(m, 1)).code, MI_OK);
  ASSERT_EQ(run1(m, {4, 1, 5, 5}, x, &y1).code, MI_OK);
  ASSERT_EQ(take(mi_model_set_threads(m, 2)).code, MI_OK);
  ASSERT_EQ(run1(m, {4, 1, 5, 5}, x, &y2).code, MI_OK);
  EXPECT_EQ(y1, y2);
  EXPECT_EQ(take(mi_model_set_threads(m, -1)).code, MI_ERR_INVALID_ARGUMENT);
  mi_model_free(m);
}

TEST(EngineApi, ProfileReportsOperatorsAndFlops) {
  auto w = random_floats(18, 1), b = random_floats(2, 2);
  mi_model *m = nullptr;
  ASSERT_EQ(load(conv_relu_model(w, b).serialize(), &m).code, MI_OK);
  char *text = nullptr;
  size_t len = 0;
  FILE *f = open_memstream(&text, &len);
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(take(mi_model_write_profile(m, f, 0)).code, MI_ERR_INVALID_ARGUMENT);  // not profiling
  ASSERT_EQ(take(mi_model_set_profiling(m, 1)).code, MI_OK);
  EXPECT_EQ(take(mi_model_write_profile(m, f, 0)).code, MI_ERR_INVALID_ARGUMENT);  // no runs yet
  std::vector<float> y;
  auto x = random_floats(4 * 25, 9);
  for (int r = 0; r < 3; r++) ASSERT_EQ(run1(m, {4, 1, 5, 5}, x, &y).code, MI_OK);
  ASSERT_EQ(take(mi_model_write_profile(m, f, 100.0)).code, MI_OK);
  fclose(f);
  const std::string out(text, len);
  free(text);
  // 4 x 2 x 5 x 5 outputs (padded 3x3 conv), 9 multiply-adds each: 3600 FLOP.
  EXPECT_NE(out.find("profile: 3 runs"), std::string::npos) << out;
  EXPECT_NE(out.find("(3.6e-06 GFLOP"), std::string::npos) << out;
  EXPECT_NE(out.find("  Conv "), std::string::npos) << out;
  EXPECT_NE(out.find("% of a 100 GFLOP/s peak"), std::string::npos) << out;
  EXPECT_NE(out.find("sum of each node's fastest run: "), std::string::npos) << out;
  // The operator row: nodes, mean ms per run, then the fastest run, which is no more than the mean.
  const size_t row = out.find("  Conv ");
  ASSERT_NE(row, std::string::npos) << out;
  int nodes = 0;
  double mean = -1, best = -1;
  ASSERT_EQ(sscanf(out.c_str() + row, " Conv %d %lf %lf", &nodes, &mean, &best), 3) << out;
  EXPECT_EQ(nodes, 1);
  EXPECT_GT(best, 0.0) << out;
  EXPECT_LE(best, mean) << out;
  ASSERT_EQ(take(mi_model_set_profiling(m, 0)).code, MI_OK);
  mi_model_free(m);
}

// A Pad of zeros (DenseNet-121's export has one before each transition's
// pooling) is dropped at load: the profile has no Pad row, and the results
// are those of the graph run as written.  A Pad that pads stays.
TEST(EngineApi, PadOfZerosIsDropped) {
  auto w = random_floats(18, 1), b = random_floats(2, 2), x = random_floats(25, 9);
  for (int pads : {0, 1}) {
    Model md = conv_relu_model(w, b);
    md.nodes.back().out = {"r"};
    md.inits.push_back(onnxb::int64_tensor("pads", {8}, {0, 0, pads, pads, 0, 0, pads, pads}));
    md.nodes.push_back({"Pad", "pad", {"r", "pads"}, {"p"}, {}});
    md.nodes.push_back({"Sigmoid", "sigmoid", {"p"}, {"y"}, {}});  // the Pad's output not the graph's
    md.outputs[0].dims = {-1, 2, 5 + 2 * pads, 5 + 2 * pads};
    std::vector<float> y[2];
    for (int optimize = 0; optimize < 2; optimize++) {
      mi_options o;
      mi_options_default(&o);
      o.optimize = optimize;
      mi_model *m = nullptr;
      ASSERT_EQ(load(md.serialize(), &m, &o).code, MI_OK);
      ASSERT_EQ(take(mi_model_set_profiling(m, 1)).code, MI_OK);
      ASSERT_EQ(run1(m, {1, 1, 5, 5}, x, &y[optimize]).code, MI_OK);
      char *text = nullptr;
      size_t len = 0;
      FILE *f = open_memstream(&text, &len);
      ASSERT_NE(f, nullptr);
      ASSERT_EQ(take(mi_model_write_profile(m, f, 100.0)).code, MI_OK);
      fclose(f);
      const std::string out(text, len);
      free(text);
      EXPECT_EQ(out.find("  Pad ") != std::string::npos, pads || !optimize) << "pads " << pads << "\n" << out;
      mi_model_free(m);
    }
    EXPECT_EQ(y[0], y[1]) << "pads " << pads;
    ASSERT_EQ(y[1].size(), (size_t)(2 * (5 + 2 * pads) * (5 + 2 * pads)));
  }
}

TEST(EngineApi, ActivationsReuseMemory) {
  // Ten chained Relus over 1 MB tensors: buffers must be recycled.
  Model md;
  md.inputs.push_back({"x", 1, {1, 64, 64, 64}});
  md.outputs.push_back({"y", 1, {1, 64, 64, 64}});
  md.nodes.push_back({"Sigmoid", "s0", {"x"}, {"t0"}, {}});
  for (int i = 1; i < 10; i++)
    md.nodes.push_back({"Relu", "r" + std::to_string(i), {"t" + std::to_string(i - 1)}, {"t" + std::to_string(i)}, {}});
  md.nodes.push_back({"Neg", "neg", {"t9"}, {"y"}, {}});
  mi_model *m = nullptr;
  auto s = load(md.serialize(), &m);
  ASSERT_EQ(s.code, MI_OK) << s.msg;
  const size_t one = 64 * 64 * 64 * 4;
  EXPECT_GT(mi_model_arena_bytes(m), 0u);
  EXPECT_LE(mi_model_arena_bytes(m), 2 * one);
  auto x = random_floats(64 * 64 * 64, 3);
  std::vector<float> y;
  ASSERT_EQ(run1(m, {1, 64, 64, 64}, x, &y).code, MI_OK);
  for (size_t i = 0; i < y.size(); i += 997) EXPECT_NEAR(y[i], -1.f / (1.f + std::exp(-x[i])), 1e-6);
  mi_model_free(m);
}

TEST(EngineApi, WrongInputsAtRunTimeAreNamed) {
  auto buf = conv_relu_model(random_floats(18, 1), random_floats(2, 2)).serialize();
  mi_model *m = nullptr;
  ASSERT_EQ(load(buf, &m).code, MI_OK);
  auto x = random_floats(2 * 25, 1);
  std::vector<float> y;
  auto s = run1(m, {1, 2, 5, 5}, x, &y);
  EXPECT_EQ(s.code, MI_ERR_SHAPE);
  EXPECT_NE(s.msg.find("input 'x'"), std::string::npos) << s.msg;
  EXPECT_NE(s.msg.find("Nx1x5x5"), std::string::npos) << s.msg;
  mi_tensor *out[2] = {nullptr, nullptr};
  s = take(mi_model_run(m, nullptr, 0, out, 1));
  EXPECT_EQ(s.code, MI_ERR_INVALID_ARGUMENT);
  EXPECT_NE(s.msg.find("takes 1 input"), std::string::npos) << s.msg;
  mi_model_free(m);
}

// A node whose graph drops an output before the ones it keeps (an RNN's Y,
// with Y_h kept): shape inference for the dropped one saw every output bound.
// It once ran with the later outputs still pointing at the previous node's
// (here the Split's second half), whose shape it then overwrote: the mean
// read that half as 1x2x4 (the fuzzer's find, under UBSan and ASan).
TEST(EngineApi, DroppedOutputBeforeKeptOnesLeavesOtherValuesAlone) {
  Model md;
  md.inputs.push_back({"x", 1, {1, 2, 6}});
  md.outputs.push_back({"mean", 1, {1, 2, 1}});
  md.outputs.push_back({"y_h", 1, {1, 2, 4}});
  md.inits.push_back(onnxb::float_tensor("w", {1, 4, 3}, random_floats(12, 1)));
  md.inits.push_back(onnxb::float_tensor("r", {1, 4, 4}, random_floats(16, 2)));
  md.nodes.push_back({"Split", "split", {"x"}, {"a", "b"}, {onnxb::attr_int("axis", 2)}});
  md.nodes.push_back({"RNN", "rnn", {"a", "w", "r"}, {"", "y_h"}, {onnxb::attr_int("hidden_size", 4)}});
  md.nodes.push_back({"ReduceMean", "mean", {"b"}, {"mean"}, {onnxb::attr_ints("axes", {2})}});
  mi_model *m = nullptr;
  auto s = load(md.serialize(), &m);
  ASSERT_EQ(s.code, MI_OK) << s.msg;
  auto x = random_floats(12, 3);
  const int64_t dims[3] = {1, 2, 6};
  mi_tensor *in = nullptr, *out[2] = {nullptr, nullptr};
  ASSERT_EQ(take(mi_tensor_wrap(MI_FLOAT, 3, dims, x.data(), &in)).code, MI_OK);
  s = take(mi_model_run(m, &in, 1, out, 2));
  ASSERT_EQ(s.code, MI_OK) << s.msg;
  ASSERT_EQ(mi_tensor_numel(out[0]), 2);
  const float *mean = static_cast<const float *>(mi_tensor_cdata(out[0]));
  for (int r = 0; r < 2; r++)
    EXPECT_NEAR(mean[r], (x[6 * r + 3] + x[6 * r + 4] + x[6 * r + 5]) / 3, 1e-6) << "row " << r;
  EXPECT_EQ(mi_tensor_numel(out[1]), 8);
  mi_tensor_free(in);
  mi_tensor_free(out[0]);
  mi_tensor_free(out[1]);
  mi_model_free(m);
}

// An empty name for an input the operator's schema requires, or too few
// inputs, or no outputs at all, is refused at load, naming the node: Split,
// Resize, EyeLike, Gather, CastLike and MatMul crashed on NULL (the fuzzer's
// and omit_inputs' finds).  omitted_inputs tries every conformance model.
TEST(EngineBadInput, MissingRequiredInputOrOutputIsRefused) {
  struct Case {
    const char *op;
    std::vector<std::string> in;
    const char *why;
  };
  for (const Case &c : std::vector<Case>{{"Split", {"", "x"}, "input 0 is omitted"},
                                         {"Resize", {"", "x"}, "input 0 is omitted"},
                                         {"EyeLike", {""}, "input 0 is omitted"},
                                         {"Relu", {}, "input 0 is missing"},
                                         {"Gather", {"x", ""}, "input 1 is omitted"},
                                         {"CastLike", {"x", ""}, "input 1 is omitted"},
                                         {"Conv", {"x"}, "input 1 is missing"},
                                         {"Sum", {"x", "", "x"}, "input 1 is omitted"},
                                         {"BatchNormalization", {"x", "x", "x", "x"}, "input 4 is missing"}}) {
    Model md;
    md.inputs.push_back({"x", 1, {2, 2}});
    md.outputs.push_back({"y", 1, {2, 2}});
    md.nodes.push_back({c.op, "the_node", c.in, {"y"}, {}});
    auto s = load_refused(md);
    EXPECT_EQ(s.code, MI_ERR_INVALID_MODEL) << c.op;
    EXPECT_NE(s.msg.find("the_node"), std::string::npos) << s.msg;
    EXPECT_NE(s.msg.find(c.why), std::string::npos) << s.msg;
  }
  Model md; /* and a node without outputs: MatMul's shape inference wrote through NULL */
  md.inputs.push_back({"x", 1, {2, 2}});
  md.outputs.push_back({"x", 1, {2, 2}});
  md.nodes.push_back({"MatMul", "no_outputs", {"x", "x"}, {}, {}});
  auto s = load_refused(md);
  EXPECT_EQ(s.code, MI_ERR_INVALID_MODEL);
  EXPECT_NE(s.msg.find("no_outputs"), std::string::npos) << s.msg;
  EXPECT_NE(s.msg.find("no outputs"), std::string::npos) << s.msg;
}

// Attribute (and constant input) values no model has, at which shape
// arithmetic overflowed: DepthToSpace's blocksize^2 (a division by zero, a
// crash), and signed overflow (undefined: the sanitizer build aborts) in
// GRU's gate rows, Split's sizes, Pad's pads and Tile's repeats.  Refused at
// load, naming the node and why.  extreme_attributes and extreme_constants
// try every conformance model so.
TEST(EngineBadInput, AttributesThatOverflowShapesAreRefused) {
  const int64_t big = (int64_t)1 << 62;
  struct Case {
    const char *op;
    int64_t opset;
    std::vector<int64_t> x;
    std::vector<onnxb::Attr> attrs;
    const char *why;
  };
  for (const Case &c : std::vector<Case>{
           {"DepthToSpace", 13, {1, 4, 2, 2}, {onnxb::attr_int("blocksize", big)}, "blocksize"},
           {"Split", 11, {4, 2}, {onnxb::attr_ints("split", {big, big}), onnxb::attr_int("axis", 0)}, "sum past 2^63"},
           {"Pad", 2, {4, 2}, {onnxb::attr_ints("pads", {big, 0, big, 0})}, "past 2^63"}}) {
    Model md;
    md.opset = c.opset;
    md.inputs.push_back({"x", 1, c.x});
    md.outputs.push_back({"y", 1, {}});
    md.nodes.push_back({c.op, "the_node", {"x"}, {"y"}, c.attrs});
    if (!strcmp(c.op, "Split")) {
      md.outputs.push_back({"y2", 1, {}});
      md.nodes.back().out.push_back("y2");
    }
    auto s = load_refused(md);
    EXPECT_NE(s.msg.find("the_node"), std::string::npos) << c.op << ": " << s.msg;
    EXPECT_NE(s.msg.find(c.why), std::string::npos) << c.op << ": " << s.msg;
  }
  {
    Model md; /* Tile: a repeat (an input) that takes an axis past 2^63 */
    md.inputs.push_back({"x", 1, {4, 2}});
    md.inits.push_back(onnxb::int64_tensor("reps", {2}, {big, 1}));
    md.outputs.push_back({"y", 1, {}});
    md.nodes.push_back({"Tile", "the_tile", {"x", "reps"}, {"y"}, {}});
    auto s = load_refused(md);
    EXPECT_NE(s.msg.find("the_tile"), std::string::npos) << s.msg;
    EXPECT_NE(s.msg.find("past 2^63"), std::string::npos) << s.msg;
  }
  Model md; /* GRU: hidden_size rows times 3 gates */
  md.inputs.push_back({"x", 1, {1, 1, 2}});
  md.inputs.push_back({"w", 1, {1, 3, 2}});
  md.inputs.push_back({"r", 1, {1, 3, 1}});
  md.outputs.push_back({"y", 1, {}});
  md.nodes.push_back({"GRU", "the_gru", {"x", "w", "r"}, {"y"}, {onnxb::attr_int("hidden_size", big)}});
  auto s = load_refused(md);
  EXPECT_NE(s.msg.find("the_gru"), std::string::npos) << s.msg;
  EXPECT_NE(s.msg.find("hidden_size"), std::string::npos) << s.msg;
}

// An empty reduction's identity (-inf for ReduceLogSumExp, NaN for
// ReduceMean) stored into an integer output converts as Cast converts:
// saturated, NaN to 0, never an undefined float-to-integer conversion
// (UBSan's float-cast-overflow, which the sanitizer build checks).
TEST(EngineApi, EmptyIntegerReductionsSaturate) {
  for (const char *op : {"ReduceLogSumExp", "ReduceMean"}) {
    Model md;
    md.inputs.push_back({"x", 7, {2, 0}});
    md.outputs.push_back({"y", 7, {2}});
    md.nodes.push_back({op, "r", {"x"}, {"y"}, {onnxb::attr_ints("axes", {1}), onnxb::attr_int("keepdims", 0)}});
    mi_model *m = nullptr;
    auto s = load(md.serialize(), &m);
    ASSERT_EQ(s.code, MI_OK) << op << ": " << s.msg;
    const int64_t dims[2] = {2, 0};
    int64_t none = 0;
    mi_tensor *in = nullptr, *out = nullptr;
    ASSERT_EQ(take(mi_tensor_wrap(MI_INT64, 2, dims, &none, &in)).code, MI_OK);
    s = take(mi_model_run(m, &in, 1, &out, 1));
    ASSERT_EQ(s.code, MI_OK) << op << ": " << s.msg;
    ASSERT_EQ(mi_tensor_numel(out), 2);
    const int64_t *y = static_cast<const int64_t *>(mi_tensor_cdata(out));
    const int64_t want = strcmp(op, "ReduceMean") ? INT64_MIN : 0;
    EXPECT_EQ(y[0], want) << op;
    EXPECT_EQ(y[1], want) << op;
    mi_tensor_free(in);
    mi_tensor_free(out);
    mi_model_free(m);
  }
}

TEST(EngineBadInput, TruncatedModelsFailCleanly) {
  auto buf = conv_relu_model(random_floats(18, 1), random_floats(2, 2)).serialize();
  int failures = 0;
  for (size_t len = 0; len < buf.size(); len += 7) {
    std::vector<uint8_t> cut(buf.begin(), buf.begin() + len);
    mi_model *m = nullptr;
    auto s = load(cut, &m);
    if (s.code != MI_OK) {
      failures++;
      EXPECT_NE(s.msg.find("test.onnx"), std::string::npos) << s.msg;
    }
    mi_model_free(m);
  }
  EXPECT_GT(failures, 0);
}

TEST(EngineBadInput, BitFlippedModelsNeverCrash) {
  auto buf = conv_relu_model(random_floats(18, 1), random_floats(2, 2)).serialize();
  std::mt19937 rng(42);
  int loaded = 0, refused = 0;
  for (int iter = 0; iter < 400; iter++) {
    auto mut = buf;
    for (int f = 0; f < 1 + iter % 4; f++) mut[rng() % mut.size()] ^= (uint8_t)(1u << (rng() % 8));
    mi_model *m = nullptr;
    auto s = load(mut, &m);
    if (s.code != MI_OK) {
      refused++;
      EXPECT_FALSE(s.msg.empty());
      continue;
    }
    loaded++;
    auto x = random_floats(25, iter);
    std::vector<float> y;
    run1(m, {1, 1, 5, 5}, x, &y);  // may fail with a message; must not crash
    mi_model_free(m);
  }
  EXPECT_GT(refused, 0);
  EXPECT_GT(loaded + refused, 0);
}

// Dims whose product wraps around 2^64 to the raw data's size ((2^62 + 1) x 4
// is 4 elements, modulo 2^64) once made a 16-byte tensor claiming those dims.
TEST(EngineBadInput, InitializerDimsWhoseProductWraps) {
  Model md = conv_relu_model(random_floats(18, 1), random_floats(2, 2));
  md.inits[0].dims = {(int64_t(1) << 62) + 1, 1, 2, 2};  // 2^62 + 1 output channels
  md.inits[0].raw.resize(16);
  md.inits.pop_back();  // no bias to disagree with them
  md.nodes[0].in.pop_back();
  auto s = load_refused(md);
  EXPECT_NE(s.code, MI_OK);
  EXPECT_NE(s.msg.find("initializer 'w'"), std::string::npos) << s.msg;
}

// Kernel attributes far past any image overflowed the output size's
// arithmetic; now each is refused, naming it.
TEST(EngineBadInput, HugeSpatialAttributesAreRefused) {
  const int64_t huge = int64_t(1) << 40;
  const std::vector<std::pair<std::string, std::vector<int64_t>>> cases = {
      {"pads", {huge, huge, huge, huge}},
      {"dilations", {INT64_MAX, 1}},
      {"strides", {1, huge}},
  };
  for (const auto &c : cases) {
    Model md = conv_relu_model(random_floats(18, 1), random_floats(2, 2));
    md.nodes[0].attrs = {onnxb::attr_ints(c.first.c_str(), c.second)};
    mi_model *m = nullptr;
    auto s = load(md.serialize(), &m);
    EXPECT_EQ(s.code, MI_ERR_INVALID_MODEL) << c.first;
    EXPECT_NE(s.msg.find("'" + c.first + "'"), std::string::npos) << s.msg;
    mi_model_free(m);
  }
  // Within the bound, pads that make a huge output are refused at the run, not overflowed.
  Model md = conv_relu_model(random_floats(18, 1), random_floats(2, 2));
  const int64_t big = int64_t(1) << 24;
  md.nodes[0].attrs = {onnxb::attr_ints("pads", {big, big, big, big})};
  md.outputs[0].dims = {-1, 2, -1, -1};
  mi_model *m = nullptr;
  auto s = load(md.serialize(), &m);
  if (s.code == MI_OK) {
    auto x = random_floats(25, 3);
    std::vector<float> y;
    s = run1(m, {1, 1, 5, 5}, x, &y);
  }
  EXPECT_NE(s.code, MI_OK);
  EXPECT_FALSE(s.msg.empty());
  mi_model_free(m);
}

// A sequence length past the sequence is refused, naming it (the message
// once read the length from scratch memory already released: ASan's run).
TEST(EngineBadInput, RnnSequenceLengthsOutOfRange) {
  Model md;
  md.inputs.push_back({"x", 1, {2, 1, 3}});
  md.outputs.push_back({"y", 1, {2, 1, 1, 4}});
  md.inits.push_back(onnxb::float_tensor("w", {1, 4, 3}, random_floats(12, 1)));
  md.inits.push_back(onnxb::float_tensor("r", {1, 4, 4}, random_floats(16, 2)));
  onnxb::Tensor lens;
  lens.name = "lens";
  lens.dtype = 6;  // int32
  lens.dims = {1};
  const int32_t five = 5;
  lens.raw.resize(4);
  std::memcpy(lens.raw.data(), &five, 4);
  md.inits.push_back(lens);
  md.nodes.push_back({"RNN", "rnn", {"x", "w", "r", "", "lens"}, {"y"}, {onnxb::attr_int("hidden_size", 4)}});
  mi_model *m = nullptr;
  auto s = load(md.serialize(), &m);
  ASSERT_EQ(s.code, MI_OK) << s.msg;
  auto x = random_floats(6, 3);
  std::vector<float> y;
  s = run1(m, {2, 1, 3}, x, &y);
  EXPECT_EQ(s.code, MI_ERR_INVALID_ARGUMENT);
  EXPECT_NE(s.msg.find("sequence_lens[0]=5 outside 0..2"), std::string::npos) << s.msg;
  mi_model_free(m);
}

// Shape operands near int64's range: Reshape's target size overflowed; a
// Slice step past the dimension took its one element through an overflowed
// stride (UBSan's run). The step now acts as the dimension's length would.
TEST(EngineBadInput, ShapeOperandsNearInt64Limits) {
  Model rs;
  rs.inputs.push_back({"x", 1, {1, 1, 5, 5}});
  rs.outputs.push_back({"y", 1, {}});
  rs.inits.push_back(onnxb::int64_tensor("shape", {2}, {int64_t(1) << 62, int64_t(1) << 62}));
  rs.nodes.push_back({"Reshape", "reshape", {"x", "shape"}, {"y"}, {}});
  mi_model *m = nullptr;
  auto s = load(rs.serialize(), &m);
  EXPECT_EQ(s.code, MI_ERR_SHAPE);
  EXPECT_NE(s.msg.find("overflows"), std::string::npos) << s.msg;
  mi_model_free(m);

  Model sl;
  sl.inputs.push_back({"x", 1, {1, 1, 5, 5}});
  sl.outputs.push_back({"y", 1, {1, 1, 5, 1}});
  sl.inits.push_back(onnxb::int64_tensor("starts", {1}, {4}));
  sl.inits.push_back(onnxb::int64_tensor("ends", {1}, {-10}));
  sl.inits.push_back(onnxb::int64_tensor("axes", {1}, {3}));
  sl.inits.push_back(onnxb::int64_tensor("steps", {1}, {-(int64_t(1) << 62)}));
  sl.nodes.push_back({"Slice", "slice", {"x", "starts", "ends", "axes", "steps"}, {"y"}, {}});
  m = nullptr;
  s = load(sl.serialize(), &m);
  ASSERT_EQ(s.code, MI_OK) << s.msg;
  auto x = random_floats(25, 4);
  std::vector<float> y;
  s = run1(m, {1, 1, 5, 5}, x, &y);
  ASSERT_EQ(s.code, MI_OK) << s.msg;
  ASSERT_EQ(y.size(), 5u);
  for (int r = 0; r < 5; r++) EXPECT_EQ(y[r], x[r * 5 + 4]) << r;  // the last column
  mi_model_free(m);
}

// Every load error names the model once, whichever step finds it (the
// graph's checks after decoding named only the node).
TEST(EngineBadInput, LoadErrorsNameTheModelOnce) {
  Model undefined = conv_relu_model(random_floats(18, 1), random_floats(2, 2));
  undefined.nodes[1].in = {"nowhere"};
  Model cycle = conv_relu_model(random_floats(18, 1), random_floats(2, 2));
  cycle.nodes[0].in[0] = "y";
  Model short_raw = conv_relu_model(random_floats(18, 1), random_floats(2, 2));
  short_raw.inits[0].raw.resize(17 * 4);
  for (const Model *md : {&undefined, &cycle, &short_raw}) {
    mi_model *m = nullptr;
    auto s = load(md->serialize(), &m);
    EXPECT_NE(s.code, MI_OK);
    EXPECT_EQ(s.msg.rfind("'test.onnx': ", 0), 0u) << s.msg;
    EXPECT_EQ(s.msg.find("test.onnx", s.msg.find("test.onnx") + 1), std::string::npos) << "named twice: " << s.msg;
    EXPECT_EQ(m, nullptr);
  }
}

// What a model says of its own format is checked as ONNX Runtime checks it
// (no IR version, an IR newer than it reads, no opset_import), and opsets
// that name no operator set are refused: 2^62 used to be read as opset 1.
TEST(EngineBadInput, FormatVersionsAreChecked) {
  struct Case {
    const char *what;
    void (*edit)(Model &);
    mi_code code;
    const char *says;
  };
  const Case cases[] = {
      {"no ir_version", [](Model &m) { m.ir_version.reset(); }, MI_ERR_INVALID_MODEL, "has no ir_version"},
      {"IR 11", [](Model &m) { m.ir_version = 11; }, MI_ERR_UNSUPPORTED, "IR version 11; medinfer reads IR versions 1 to 10"},
      {"IR -1", [](Model &m) { m.ir_version = -1; }, MI_ERR_UNSUPPORTED, "IR version -1;"},
      {"no opset_import", [](Model &m) { m.import_opset = false; }, MI_ERR_INVALID_MODEL, "imports no operator set"},
      {"opset 2^62", [](Model &m) { m.opset = int64_t(1) << 62; }, MI_ERR_UNSUPPORTED, "uses opset 4611686018427387904;"},
      {"opset 0", [](Model &m) { m.opset = 0; }, MI_ERR_INVALID_MODEL, "imports ai.onnx opset 0; opsets start at 1"},
      {"two opsets", [](Model &m) { m.more_opsets = {{"ai.onnx", 11}}; }, MI_ERR_INVALID_MODEL,
       "imports ai.onnx twice, as opsets 13 and 11"},
      {"no outputs", [](Model &m) { m.outputs.clear(); }, MI_ERR_INVALID_MODEL, "declares no graph outputs"},
  };
  for (const Case &c : cases) {
    Model md = conv_relu_model(random_floats(18, 1), random_floats(2, 2));
    c.edit(md);
    auto s = load_refused(md);
    EXPECT_EQ(s.code, c.code) << c.what << ": " << s.msg;
    EXPECT_NE(s.msg.find(c.says), std::string::npos) << c.what << ": " << s.msg;
  }
  // What is well formed still loads: the oldest IR, the same opset twice, another domain beside.
  for (auto edit : {+[](Model &m) { m.ir_version = 3; }, +[](Model &m) { m.more_opsets = {{"ai.onnx", 13}}; },
                    +[](Model &m) { m.more_opsets = {{"com.example", 1}}; }}) {
    Model md = conv_relu_model(random_floats(18, 1), random_floats(2, 2));
    edit(md);
    mi_model *m = nullptr;
    auto s = load(md.serialize(), &m);
    EXPECT_EQ(s.code, MI_OK) << s.msg;
    mi_model_free(m);
  }
}

// An output listed twice, with a symbolic dimension: the second declaration
// holds and the first one's name is freed (LeakSanitizer's run).
TEST(EngineBadInput, OutputListedTwice) {
  Model md = conv_relu_model(random_floats(18, 1), random_floats(2, 2));
  md.outputs.push_back(md.outputs[0]);
  mi_model *m = nullptr;
  auto s = load(md.serialize(), &m);
  if (s.code == MI_OK) {
    mi_io_info info;
    ASSERT_EQ(mi_model_output_info(m, 0, &info), nullptr);
    EXPECT_STREQ(info.dim_names[0], "N");
  }
  mi_model_free(m);
}

// An attribute of the wrong type (strides as FLOATS) was read as absent, so
// the Conv ran with unit strides; the load now fails naming it.
TEST(EngineBadInput, MistypedAttributesAreRefused) {
  Model md = conv_relu_model(random_floats(18, 1), random_floats(2, 2));
  onnxb::Attr strides;
  strides.name = "strides";
  strides.type = 6;  // FLOATS
  strides.floats = {2, 2};
  md.nodes[0].attrs.push_back(strides);
  mi_model *m = nullptr;
  auto s = load(md.serialize(), &m);
  EXPECT_EQ(s.code, MI_ERR_INVALID_MODEL);
  EXPECT_NE(s.msg.find("attribute 'strides' is FLOATS where INTS is expected"), std::string::npos) << s.msg;
  EXPECT_NE(s.msg.find("'conv'"), std::string::npos) << s.msg;
  EXPECT_EQ(m, nullptr);
}

TEST(EngineBadInput, InitializerSizeMismatch) {
  Model md = conv_relu_model(random_floats(18, 1), random_floats(2, 2));
  md.inits[0].raw.resize(17 * 4);
  auto s = load_refused(md);
  EXPECT_EQ(s.code, MI_ERR_PARSE);
  EXPECT_NE(s.msg.find("initializer 'w'"), std::string::npos) << s.msg;
}

TEST(EngineBadInput, HugeDimensionsAreRefusedBeforeAllocating) {
  Model md = conv_relu_model(random_floats(18, 1), random_floats(2, 2));
  md.inits[0].dims = {1 << 20, 1 << 20, 1 << 20, 3};  // would be petabytes
  mi_model *m = nullptr;
  auto s = load(md.serialize(), &m);
  EXPECT_EQ(s.code, MI_ERR_NO_MEMORY);
  EXPECT_NE(s.msg.find("exceeds the limit"), std::string::npos) << s.msg;

  Model big;
  big.inputs.push_back({"x", 1, {100000, 100000, 1000}});
  big.outputs.push_back({"y", 1, {100000, 100000, 1000}});
  big.nodes.push_back({"Relu", "relu", {"x"}, {"y"}, {}});
  s = load(big.serialize(), &m);
  EXPECT_EQ(s.code, MI_ERR_NO_MEMORY) << s.msg;
  EXPECT_NE(s.msg.find("relu"), std::string::npos) << s.msg;
}

TEST(EngineBadInput, CyclesAndUndefinedInputsAreNamed) {
  Model cyc;
  cyc.inputs.push_back({"x", 1, {1, 4}});
  cyc.outputs.push_back({"b", 1, {1, 4}});
  cyc.nodes.push_back({"Add", "first", {"x", "b"}, {"a"}, {}});
  cyc.nodes.push_back({"Relu", "second", {"a"}, {"b"}, {}});
  mi_model *m = nullptr;
  auto s = load(cyc.serialize(), &m);
  EXPECT_EQ(s.code, MI_ERR_INVALID_MODEL);
  EXPECT_NE(s.msg.find("cycle"), std::string::npos) << s.msg;

  Model undef;
  undef.inputs.push_back({"x", 1, {1, 4}});
  undef.outputs.push_back({"y", 1, {1, 4}});
  undef.nodes.push_back({"Add", "adder", {"x", "ghost"}, {"y"}, {}});
  s = load(undef.serialize(), &m);
  EXPECT_EQ(s.code, MI_ERR_INVALID_MODEL);
  EXPECT_NE(s.msg.find("'ghost'"), std::string::npos) << s.msg;
  EXPECT_NE(s.msg.find("adder"), std::string::npos) << s.msg;
}

TEST(EngineBadInput, EveryUnsupportedOperatorIsListed) {
  Model md;
  md.inputs.push_back({"x", 1, {1, 4}});
  md.outputs.push_back({"z", 1, {1, 4}});
  md.nodes.push_back({"FrobnicateA", "", {"x"}, {"y"}, {}});
  md.nodes.push_back({"Relu", "", {"y"}, {"y2"}, {}});
  md.nodes.push_back({"FrobnicateB", "", {"y2"}, {"z"}, {}});
  mi_model *m = nullptr;
  auto s = load(md.serialize(), &m);
  EXPECT_EQ(s.code, MI_ERR_UNSUPPORTED);
  EXPECT_NE(s.msg.find("FrobnicateA"), std::string::npos) << s.msg;
  EXPECT_NE(s.msg.find("FrobnicateB"), std::string::npos) << s.msg;
}

TEST(EngineBadInput, NotAnOnnxFile) {
  const char text[] = "this is not a protobuf, just some text in a file named model.onnx";
  std::vector<uint8_t> buf(text, text + sizeof text);
  mi_model *m = nullptr;
  auto s = load(buf, &m);
  EXPECT_NE(s.code, MI_OK);
  mi_model *m2 = nullptr;
  s = take(mi_model_load_file("/nonexistent/dir/model.onnx", nullptr, &m2));
  EXPECT_EQ(s.code, MI_ERR_IO);
  EXPECT_NE(s.msg.find("/nonexistent/dir/model.onnx"), std::string::npos) << s.msg;
}

// A folder for model files.
class ModelFolder : public ::testing::Test {
 protected:
  TempDir tmp{"ext"};
  std::string dir = tmp.path();
  void write(const std::string &name, const std::vector<uint8_t> &bytes) {
    std::ofstream f(dir + "/" + name, std::ios::binary);
    f.write(reinterpret_cast<const char *>(bytes.data()), (std::streamsize)bytes.size());
  }
  // The conv+ReLU model in `name` loads and computes its reference.
  void expect_conv_relu(const std::string &name, const std::vector<float> &w, const std::vector<float> &b) {
    mi_model *m = nullptr;
    auto s = take(mi_model_load_file((dir + "/" + name).c_str(), nullptr, &m));
    ASSERT_EQ(s.code, MI_OK) << s.msg;
    auto x = random_floats(25, 5);
    std::vector<float> y;
    EXPECT_EQ(run1(m, {1, 1, 5, 5}, x, &y).code, MI_OK);
    auto ref = conv_relu_reference(x, 1, w, b);
    ASSERT_EQ(y.size(), ref.size());
    for (size_t i = 0; i < y.size(); i++) EXPECT_NEAR(y[i], ref[i], 1e-5);
    mi_model_free(m);
  }
};

// A model file (mapped) runs as its bytes from memory do; what is not a
// regular file is refused at once, a FIFO without waiting for a writer.
TEST_F(ModelFolder, ModelFilesAreRegularFilesOnly) {
  auto w = random_floats(18, 1), b = random_floats(2, 2);
  write("model.onnx", conv_relu_model(w, b).serialize());
  expect_conv_relu("model.onnx", w, b);

  ASSERT_EQ(mkfifo((dir + "/fifo.onnx").c_str(), 0600), 0);
  ASSERT_EQ(mkdir((dir + "/folder.onnx").c_str(), 0700), 0);
  for (const char *name : {"fifo.onnx", "folder.onnx"}) {
    mi_model *m = nullptr;
    auto s = take(mi_model_load_file((dir + "/" + name).c_str(), nullptr, &m));
    EXPECT_EQ(s.code, MI_ERR_IO) << name;
    EXPECT_NE(s.msg.find(name), std::string::npos) << s.msg;
    EXPECT_NE(s.msg.find("not a regular file"), std::string::npos) << s.msg;
    EXPECT_EQ(m, nullptr);
  }
  write("empty.onnx", {});
  mi_model *m = nullptr;
  auto s = take(mi_model_load_file((dir + "/empty.onnx").c_str(), nullptr, &m));
  EXPECT_NE(s.code, MI_OK);
  EXPECT_NE(s.msg.find("empty.onnx"), std::string::npos) << s.msg;
  mi_model_free(m);
}

class ExternalData : public ModelFolder {};

TEST_F(ExternalData, WeightsBesideTheModelAreRead) {
  auto w = random_floats(18, 1), b = random_floats(2, 2);
  Model md = conv_relu_model(w, b);
  std::vector<uint8_t> blob(64, 0xEE);  // offset 64 exercises the offset key
  blob.insert(blob.end(), md.inits[0].raw.begin(), md.inits[0].raw.end());
  write("weights.bin", blob);
  md.inits[0].external = true;
  md.inits[0].location = "weights.bin";
  md.inits[0].offset = 64;
  md.inits[0].length = 72;
  write("model.onnx", md.serialize());
  expect_conv_relu("model.onnx", w, b);

  // From memory without a folder, external data cannot be resolved.
  auto buf = md.serialize();
  mi_model *m = nullptr;
  auto s = load(buf, &m);
  EXPECT_EQ(s.code, MI_ERR_INVALID_ARGUMENT);
  EXPECT_NE(s.msg.find("weights.bin"), std::string::npos) << s.msg;
}

TEST_F(ExternalData, PathsOutsideTheFolderAndShortFilesAreRefused) {
  Model md = conv_relu_model(random_floats(18, 1), random_floats(2, 2));
  md.inits[0].external = true;
  md.inits[0].location = "../../etc/passwd";
  write("model.onnx", md.serialize());
  mi_model *m = nullptr;
  auto s = take(mi_model_load_file((dir + "/model.onnx").c_str(), nullptr, &m));
  EXPECT_EQ(s.code, MI_ERR_PARSE);
  EXPECT_NE(s.msg.find("leaves the model folder"), std::string::npos) << s.msg;

  md.inits[0].location = "short.bin";
  write("short.bin", std::vector<uint8_t>(10, 0));
  write("model.onnx", md.serialize());
  s = take(mi_model_load_file((dir + "/model.onnx").c_str(), nullptr, &m));
  EXPECT_EQ(s.code, MI_ERR_IO);
  EXPECT_NE(s.msg.find("short.bin"), std::string::npos) << s.msg;
}
