// Data-dependent shapes: NonZero, TopK with a computed k and If run in the
// eager tail after the planned nodes; results, memory and errors.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "medinfer/engine.h"
#include "onnx_builder.h"

extern "C" {
#include "model.h"
}

using onnxb::Model;

namespace {

// Inputs longer than 64 elements: smaller ones are planned with their values
// (mi_plan_input_is_value), which would fold everything and skip the tail.
constexpr int64_t N = 80;

std::vector<float> pattern(int kind) {
  std::vector<float> x(N);
  for (int64_t i = 0; i < N; i++) {
    float v = 0.25f + (float)(i % 7);
    switch (kind) {
      case 0: x[i] = i % 3 ? v : -v; break;   // two in three positive
      case 1: x[i] = i == 40 ? 0.f : -v; break; // none
      case 2: x[i] = v; break;                // all
      default: x[i] = i % 2 ? v : -v; break;  // every other
    }
  }
  return x;
}

std::string take(mi_status *st) {
  std::string s = st ? mi_status_message(st) : "";
  mi_status_free(st);
  return s;
}

mi_model *load(const Model &md, const mi_options *opt = nullptr, std::string *err = nullptr) {
  auto buf = md.serialize();
  mi_model *m = nullptr;
  std::string e = take(mi_model_load_buffer(buf.data(), buf.size(), nullptr, "dyn.onnx", opt, &m));
  if (err) *err = e;
  else EXPECT_EQ(e, "");
  return m;
}

// x [8] -> Sigmoid -> s (planned, in the arena) ; NonZero(x > 0) -> Squeeze ->
// Gather(s, idx) -> Relu -> Neg -> y [nnz] (eager tail) ; z = s * 2 (planned output).
Model gather_positive_model() {
  Model md;
  md.opset = 13;
  md.inputs.push_back({"x", 1, {N}});
  md.outputs.push_back({"y", 1, {-1}});
  md.outputs.push_back({"z", 1, {N}});
  md.inits.push_back(onnxb::float_tensor("zero", {}, {0.f}));
  md.inits.push_back(onnxb::float_tensor("two", {}, {2.f}));
  md.inits.push_back(onnxb::int64_tensor("ax0", {1}, {0}));
  md.nodes.push_back({"Sigmoid", "sig", {"x"}, {"s"}, {}});
  md.nodes.push_back({"Greater", "gt", {"x", "zero"}, {"pos"}, {}});
  md.nodes.push_back({"NonZero", "nz", {"pos"}, {"idx2"}, {}});
  md.nodes.push_back({"Squeeze", "sq", {"idx2", "ax0"}, {"idx"}, {}});
  md.nodes.push_back({"Gather", "ga", {"s", "idx"}, {"g"}, {}});
  md.nodes.push_back({"Relu", "relu", {"g"}, {"r"}, {}});
  md.nodes.push_back({"Neg", "neg", {"r"}, {"y"}, {}});
  md.nodes.push_back({"Mul", "mul", {"s", "two"}, {"z"}, {}});
  return md;
}

// Nothing computed while running may stay allocated between runs.
void expect_nothing_held(const mi_model *m) {
  for (int v = 0; v < m->g.n_values; v++) {
    const mi_value *val = &m->g.values[v];
    if (val->is_const || val->folded) continue;
    EXPECT_FALSE(val->t.owns_data) << val->name;
    EXPECT_EQ(val->t.data, nullptr) << val->name;
  }
}

}  // namespace

TEST(DynamicShapes, NonZeroCountChangesBetweenRuns) {
  mi_model *m = load(gather_positive_model());
  ASSERT_NE(m, nullptr);
  for (int rep = 0; rep < 3; rep++)
    for (int kind = 0; kind < 4; kind++) {
      std::vector<float> x = pattern(kind);
      int64_t dim = N;
      mi_tensor *in = nullptr, *out[2] = {nullptr, nullptr};
      ASSERT_EQ(take(mi_tensor_wrap(MI_FLOAT, 1, &dim, x.data(), &in)), "");
      ASSERT_EQ(take(mi_model_run(m, &in, 1, out, 2)), "");
      EXPECT_GE(m->plan.first_tail, 0);  // the eager tail did run
      std::vector<float> want;
      for (float v : x)
        if (v > 0) want.push_back(-1.f / (1.f + std::exp(-v)));
      ASSERT_EQ(mi_tensor_ndim(out[0]), 1);
      ASSERT_EQ(mi_tensor_dims(out[0])[0], (int64_t)want.size());
      const float *y = static_cast<const float *>(mi_tensor_cdata(out[0]));
      for (size_t i = 0; i < want.size(); i++) EXPECT_NEAR(y[i], want[i], 1e-6);
      const float *z = static_cast<const float *>(mi_tensor_cdata(out[1]));
      for (int i = 0; i < N; i++) EXPECT_NEAR(z[i], 2.f / (1.f + std::exp(-x[i])), 1e-6);
      expect_nothing_held(m);
      mi_tensor_free(out[0]);
      mi_tensor_free(out[1]);
      mi_tensor_free(in);
    }
  // The planned part keeps its arena: s lives to the end (the tail reads it).
  EXPECT_GT(mi_model_arena_bytes(m), 0u);
  mi_model_free(m);
}

TEST(DynamicShapes, TopKWithKComputedFromDataRunsInTheTail) {
  // k = number of positive elements (a value known only while running).
  Model md;
  md.opset = 13;
  md.inputs.push_back({"x", 1, {N}});
  md.outputs.push_back({"v", 1, {-1}});
  md.outputs.push_back({"i", 7, {-1}});
  md.inits.push_back(onnxb::float_tensor("zero", {}, {0.f}));
  md.inits.push_back(onnxb::int64_tensor("shape1", {1}, {1}));
  md.nodes.push_back({"Greater", "gt", {"x", "zero"}, {"pos"}, {}});
  md.nodes.push_back({"Cast", "cast", {"pos"}, {"posi"}, {onnxb::attr_int("to", 7)}});
  md.nodes.push_back({"ReduceSum", "sum", {"posi"}, {"k0"}, {onnxb::attr_int("keepdims", 0)}});
  md.nodes.push_back({"Reshape", "rs", {"k0", "shape1"}, {"k"}, {}});
  md.nodes.push_back({"TopK", "topk", {"x", "k"}, {"v", "i"}, {}});
  mi_model *m = load(md);
  ASSERT_NE(m, nullptr);
  std::vector<float> x(N, -1.f);
  x[10] = 0.5f, x[2] = 3, x[70] = 2, x[79] = 0.25f;
  int64_t dim = N;
  mi_tensor *in = nullptr, *out[2] = {nullptr, nullptr};
  ASSERT_EQ(take(mi_tensor_wrap(MI_FLOAT, 1, &dim, x.data(), &in)), "");
  ASSERT_EQ(take(mi_model_run(m, &in, 1, out, 2)), "");
  EXPECT_EQ(m->g.nodes[m->plan.first_tail].op_type, std::string("TopK"));
  ASSERT_EQ(mi_tensor_numel(out[0]), 4);
  const float *v = static_cast<const float *>(mi_tensor_cdata(out[0]));
  const int64_t *i = static_cast<const int64_t *>(mi_tensor_cdata(out[1]));
  const float wv[4] = {3, 2, 0.5f, 0.25f};
  const int64_t wi[4] = {2, 70, 10, 79};
  for (int j = 0; j < 4; j++) {
    EXPECT_EQ(v[j], wv[j]);
    EXPECT_EQ(i[j], wi[j]);
  }
  mi_tensor_free(out[0]);
  mi_tensor_free(out[1]);
  mi_tensor_free(in);
  mi_model_free(m);
}

// If whose branches read values of the enclosing graph, one of them
// computed in the tail (after NonZero), the other planned.
TEST(DynamicShapes, IfBranchesReadEnclosingValues) {
  Model then_g, else_g;
  then_g.nodes.push_back({"Relu", "t_relu", {"g"}, {"t_out"}, {}});
  then_g.outputs.push_back({"t_out", 1, {-1}});
  else_g.nodes.push_back({"Neg", "e_neg", {"s"}, {"e_out"}, {}});  // s: a planned value
  else_g.outputs.push_back({"e_out", 1, {-1}});
  Model md;
  md.opset = 13;
  md.inputs.push_back({"x", 1, {N}});
  md.inputs.push_back({"c", 9, {}});
  md.outputs.push_back({"y", 1, {-1}});
  md.inits.push_back(onnxb::float_tensor("zero", {}, {0.f}));
  md.inits.push_back(onnxb::int64_tensor("ax0", {1}, {0}));
  md.nodes.push_back({"Sigmoid", "sig", {"x"}, {"s"}, {}});
  md.nodes.push_back({"Greater", "gt", {"x", "zero"}, {"pos"}, {}});
  md.nodes.push_back({"NonZero", "nz", {"pos"}, {"idx2"}, {}});
  md.nodes.push_back({"Squeeze", "sq", {"idx2", "ax0"}, {"idx"}, {}});
  md.nodes.push_back({"Gather", "ga", {"x", "idx"}, {"g"}, {}});
  md.nodes.push_back(
      {"If", "if", {"c"}, {"y"}, {onnxb::attr_graph("then_branch", then_g), onnxb::attr_graph("else_branch", else_g)}});
  mi_model *m = load(md);
  ASSERT_NE(m, nullptr);
  std::vector<float> x = pattern(3);
  for (int cond = 0; cond < 2; cond++) {
    int64_t dim = N;
    uint8_t c = (uint8_t)cond;
    mi_tensor *in[2] = {nullptr, nullptr}, *out = nullptr;
    ASSERT_EQ(take(mi_tensor_wrap(MI_FLOAT, 1, &dim, x.data(), &in[0])), "");
    ASSERT_EQ(take(mi_tensor_wrap(MI_BOOL, 0, nullptr, &c, &in[1])), "");
    ASSERT_EQ(take(mi_model_run(m, in, 2, &out, 1)), "");
    const float *y = static_cast<const float *>(mi_tensor_cdata(out));
    if (cond) {
      ASSERT_EQ(mi_tensor_numel(out), N / 2);
      for (int64_t i = 0; i < N / 2; i++) EXPECT_EQ(y[i], x[2 * i + 1]);
    } else {
      ASSERT_EQ(mi_tensor_numel(out), N);
      for (int i = 0; i < N; i++) EXPECT_NEAR(y[i], -1.f / (1.f + std::exp(-x[i])), 1e-6);
    }
    expect_nothing_held(m);
    mi_tensor_free(out);
    mi_tensor_free(in[0]);
    mi_tensor_free(in[1]);
  }
  mi_model_free(m);
}

TEST(DynamicShapes, BadSubgraphsAreRefusedAtLoad) {
  Model then_g;
  then_g.nodes.push_back({"Relu", "t_relu", {"nowhere"}, {"t_out"}, {}});
  then_g.outputs.push_back({"t_out", 1, {-1}});
  Model md;
  md.opset = 13;
  md.inputs.push_back({"c", 9, {}});
  md.outputs.push_back({"y", 1, {-1}});
  // No else_branch.
  md.nodes.push_back({"If", "if", {"c"}, {"y"}, {onnxb::attr_graph("then_branch", then_g)}});
  std::string err;
  mi_model *m = load(md, nullptr, &err);
  EXPECT_EQ(m, nullptr);
  // 'nowhere' is captured from the enclosing graph, which does not define it either.
  EXPECT_NE(err.find("nowhere"), std::string::npos) << err;
  mi_model_free(m);
  md.nodes[0].attrs.push_back(onnxb::attr_graph("else_branch", then_g));
  md.inputs.push_back({"nowhere", 1, {2}});
  md.nodes[0].attrs.pop_back();
  m = load(md, nullptr, &err);
  EXPECT_EQ(m, nullptr);
  EXPECT_NE(err.find("else_branch"), std::string::npos) << err;
  mi_model_free(m);
  // An error inside a branch names the model and the branch once, and the node.
  Model bad_g;
  bad_g.nodes.push_back({"LeakyRelu", "t_leaky", {"nowhere"}, {"t_out"}, {onnxb::attr_ints("alpha", {1})}});
  bad_g.outputs.push_back({"t_out", 1, {-1}});
  md.nodes[0].attrs = {onnxb::attr_graph("then_branch", bad_g), onnxb::attr_graph("else_branch", bad_g)};
  m = load(md, nullptr, &err);
  EXPECT_EQ(m, nullptr);
  EXPECT_EQ(err.rfind("'dyn.onnx:if.", 0), 0u) << err;
  EXPECT_EQ(err.find("dyn.onnx", 2), std::string::npos) << "named twice: " << err;
  EXPECT_NE(err.find("_branch': node 't_leaky' (LeakyRelu): attribute 'alpha' is INTS"), std::string::npos) << err;
  mi_model_free(m);
}

TEST(DynamicShapes, CudaRunsTheTailOnTheCpu) {
  int count = 0;
  mi_status *cs = mi_cuda_device_count(&count);
  if (cs || count < 1) GTEST_SKIP() << "CUDA tests skipped: " << (cs ? take(cs) : std::string("no CUDA device"));
  mi_options opt;
  mi_options_default(&opt);
  opt.device = MI_DEVICE_CUDA;
  std::string err;
  mi_model *m = load(gather_positive_model(), &opt, &err);
  ASSERT_NE(m, nullptr) << err;
  char host[128];
  mi_model_cpu_fallback_ops(m, host, sizeof host);
  EXPECT_NE(std::string(host).find("NonZero"), std::string::npos) << host;
  mi_model_free(m);
}
