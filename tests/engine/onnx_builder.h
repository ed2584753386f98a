// Builds small ONNX models in memory with the engine's own protobuf-c
// bindings, so tests can craft valid and hostile graphs without files.
#pragma once

#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

extern "C" {
#include "onnx.pb-c.h"
}

namespace onnxb {

struct Tensor {
  std::string name;
  int32_t dtype = 1;
  std::vector<int64_t> dims;
  std::vector<uint8_t> raw;  // raw_data bytes
  bool external = false;     // data_location EXTERNAL with location/offset/length
  std::string location;
  int64_t offset = 0, length = -1;
};

struct Model;

struct Attr {
  std::string name;
  int type = 0;  // ONNX AttributeType
  int64_t i = 0;
  float f = 0;
  std::string s;
  std::vector<int64_t> ints;
  std::vector<float> floats;
  std::shared_ptr<Model> g;  // GRAPH (type 5): nodes, inits and outputs of a subgraph
};

struct Node {
  std::string op, name;
  std::vector<std::string> in, out;
  std::vector<Attr> attrs;
};

struct Value {
  std::string name;
  int32_t dtype = 1;
  std::vector<int64_t> dims;  // -1: symbolic "N"
};

struct Model {
  std::optional<int64_t> ir_version = 8;
  int64_t opset = 13;
  bool import_opset = true;                                 // the ai.onnx entry above
  std::vector<std::pair<std::string, int64_t>> more_opsets;  // domain, version
  std::vector<Node> nodes;
  std::vector<Tensor> inits;
  std::vector<Value> inputs, outputs;

  std::vector<uint8_t> serialize() const;
};

inline Attr attr_graph(const char *n, const Model &g) {
  Attr a; a.name = n; a.type = 5; a.g = std::make_shared<Model>(g); return a;
}
inline Attr attr_int(const char *n, int64_t v) { Attr a; a.name = n; a.type = 2; a.i = v; return a; }
inline Attr attr_float(const char *n, float v) { Attr a; a.name = n; a.type = 1; a.f = v; return a; }
inline Attr attr_ints(const char *n, std::vector<int64_t> v) {
  Attr a; a.name = n; a.type = 7; a.ints = std::move(v); return a;
}

// Uniform values in [-1, 1) from a seeded generator: weights and inputs.
inline std::vector<float> random_floats(size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(-1.f, 1.f);
  std::vector<float> v(n);
  for (auto &x : v) x = d(rng);
  return v;
}

inline Tensor float_tensor(const std::string &name, std::vector<int64_t> dims, const std::vector<float> &v) {
  Tensor t;
  t.name = name;
  t.dims = std::move(dims);
  t.raw.resize(v.size() * 4);
  if (!v.empty()) std::memcpy(t.raw.data(), v.data(), t.raw.size());
  return t;
}

inline Tensor int64_tensor(const std::string &name, std::vector<int64_t> dims, const std::vector<int64_t> &v) {
  Tensor t;
  t.name = name;
  t.dtype = 7;
  t.dims = std::move(dims);
  t.raw.resize(v.size() * 8);
  if (!v.empty()) std::memcpy(t.raw.data(), v.data(), t.raw.size());
  return t;
}

}  // namespace onnxb
