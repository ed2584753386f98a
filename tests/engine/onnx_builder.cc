#include "onnx_builder.h"

#include <memory>

namespace onnxb {
namespace {

// Keeps every protobuf-c struct alive until packing is done.
struct Arena {
  std::vector<std::unique_ptr<char[]>> blobs;
  template <typename T>
  T *make(const T &init) {
    auto p = std::unique_ptr<char[]>(new char[sizeof(T)]);
    T *t = reinterpret_cast<T *>(p.get());
    std::memcpy(static_cast<void *>(t), &init, sizeof(T));
    blobs.push_back(std::move(p));
    return t;
  }
  template <typename T>
  T **array(size_t n) {
    auto p = std::unique_ptr<char[]>(new char[sizeof(T *) * (n + 1)]);
    T **a = reinterpret_cast<T **>(p.get());
    blobs.push_back(std::move(p));
    return a;
  }
  char *str(const std::string &s) {
    auto p = std::unique_ptr<char[]>(new char[s.size() + 1]);
    std::memcpy(p.get(), s.c_str(), s.size() + 1);
    char *r = p.get();
    blobs.push_back(std::move(p));
    return r;
  }
};

Onnx__TensorProto *tensor(Arena &a, const Tensor &t) {
  Onnx__TensorProto init = ONNX__TENSOR_PROTO__INIT;
  Onnx__TensorProto *tp = a.make(init);
  tp->name = a.str(t.name);
  tp->has_data_type = 1;
  tp->data_type = t.dtype;
  tp->n_dims = t.dims.size();
  tp->dims = const_cast<int64_t *>(t.dims.data());
  if (t.external) {
    tp->has_data_location = 1;
    tp->data_location = ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL;
    std::vector<std::pair<std::string, std::string>> kv = {{"location", t.location},
                                                           {"offset", std::to_string(t.offset)}};
    if (t.length >= 0) kv.push_back({"length", std::to_string(t.length)});
    tp->n_external_data = kv.size();
    tp->external_data = a.array<Onnx__StringStringEntryProto>(kv.size());
    for (size_t i = 0; i < kv.size(); i++) {
      Onnx__StringStringEntryProto e = ONNX__STRING_STRING_ENTRY_PROTO__INIT;
      tp->external_data[i] = a.make(e);
      tp->external_data[i]->key = a.str(kv[i].first);
      tp->external_data[i]->value = a.str(kv[i].second);
    }
  } else {
    tp->has_raw_data = 1;
    tp->raw_data.len = t.raw.size();
    tp->raw_data.data = const_cast<uint8_t *>(t.raw.data());
  }
  return tp;
}

Onnx__ValueInfoProto *value(Arena &a, const Value &v) {
  Onnx__ValueInfoProto vi = ONNX__VALUE_INFO_PROTO__INIT;
  Onnx__TypeProto tp = ONNX__TYPE_PROTO__INIT;
  Onnx__TypeProto__Tensor tt = ONNX__TYPE_PROTO__TENSOR__INIT;
  Onnx__TensorShapeProto sp = ONNX__TENSOR_SHAPE_PROTO__INIT;
  Onnx__ValueInfoProto *r = a.make(vi);
  r->name = a.str(v.name);
  r->type = a.make(tp);
  r->type->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
  r->type->tensor_type = a.make(tt);
  r->type->tensor_type->has_elem_type = 1;
  r->type->tensor_type->elem_type = v.dtype;
  r->type->tensor_type->shape = a.make(sp);
  Onnx__TensorShapeProto *s = r->type->tensor_type->shape;
  s->n_dim = v.dims.size();
  s->dim = a.array<Onnx__TensorShapeProto__Dimension>(v.dims.size());
  for (size_t i = 0; i < v.dims.size(); i++) {
    Onnx__TensorShapeProto__Dimension d = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__INIT;
    s->dim[i] = a.make(d);
    if (v.dims[i] >= 0) {
      s->dim[i]->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
      s->dim[i]->dim_value = v.dims[i];
    } else {
      s->dim[i]->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
      s->dim[i]->dim_param = a.str("N");
    }
  }
  return r;
}

Onnx__GraphProto *graph(Arena &a, const Model &md);

}  // namespace

std::vector<uint8_t> Model::serialize() const {
  Arena a;
  Onnx__ModelProto mi = ONNX__MODEL_PROTO__INIT;
  Onnx__OperatorSetIdProto oi = ONNX__OPERATOR_SET_ID_PROTO__INIT;
  Onnx__ModelProto *m = a.make(mi);
  m->has_ir_version = ir_version.has_value();
  m->ir_version = ir_version.value_or(0);
  std::vector<std::pair<std::string, int64_t>> opsets;
  if (import_opset) opsets.emplace_back("", opset);
  opsets.insert(opsets.end(), more_opsets.begin(), more_opsets.end());
  m->n_opset_import = opsets.size();
  m->opset_import = a.array<Onnx__OperatorSetIdProto>(opsets.size());
  for (size_t i = 0; i < opsets.size(); i++) {
    m->opset_import[i] = a.make(oi);
    m->opset_import[i]->domain = a.str(opsets[i].first.c_str());
    m->opset_import[i]->has_version = 1;
    m->opset_import[i]->version = opsets[i].second;
  }
  m->graph = graph(a, *this);
  std::vector<uint8_t> buf(onnx__model_proto__get_packed_size(m));
  onnx__model_proto__pack(m, buf.data());
  return buf;
}

namespace {

Onnx__GraphProto *graph(Arena &a, const Model &md) {
  const auto &nodes = md.nodes;
  const auto &inits = md.inits;
  const auto &inputs = md.inputs;
  const auto &outputs = md.outputs;
  Onnx__GraphProto gi = ONNX__GRAPH_PROTO__INIT;
  Onnx__GraphProto *g = a.make(gi);
  g->name = a.str("test");
  g->n_node = nodes.size();
  g->node = a.array<Onnx__NodeProto>(nodes.size());
  for (size_t k = 0; k < nodes.size(); k++) {
    const Node &n = nodes[k];
    Onnx__NodeProto ni = ONNX__NODE_PROTO__INIT;
    Onnx__NodeProto *np = a.make(ni);
    g->node[k] = np;
    np->op_type = a.str(n.op);
    np->name = a.str(n.name.empty() ? n.op + std::to_string(k) : n.name);
    np->n_input = n.in.size();
    np->input = a.array<char>(n.in.size());
    for (size_t i = 0; i < n.in.size(); i++) np->input[i] = a.str(n.in[i]);
    np->n_output = n.out.size();
    np->output = a.array<char>(n.out.size());
    for (size_t i = 0; i < n.out.size(); i++) np->output[i] = a.str(n.out[i]);
    np->n_attribute = n.attrs.size();
    np->attribute = a.array<Onnx__AttributeProto>(n.attrs.size());
    for (size_t i = 0; i < n.attrs.size(); i++) {
      const Attr &at = n.attrs[i];
      Onnx__AttributeProto ai = ONNX__ATTRIBUTE_PROTO__INIT;
      Onnx__AttributeProto *ap = a.make(ai);
      np->attribute[i] = ap;
      ap->name = a.str(at.name);
      ap->has_type = 1;
      ap->type = static_cast<Onnx__AttributeProto__AttributeType>(at.type);
      ap->has_i = at.type == 2;
      ap->i = at.i;
      ap->has_f = at.type == 1;
      ap->f = at.f;
      ap->n_ints = at.ints.size();
      ap->ints = const_cast<int64_t *>(at.ints.data());
      ap->n_floats = at.floats.size();
      ap->floats = const_cast<float *>(at.floats.data());
      if (at.type == 3) {
        ap->has_s = 1;
        ap->s.len = at.s.size();
        ap->s.data = reinterpret_cast<uint8_t *>(a.str(at.s));
      }
      if (at.type == 5 && at.g) ap->g = graph(a, *at.g);
    }
  }
  g->n_initializer = inits.size();
  g->initializer = a.array<Onnx__TensorProto>(inits.size());
  for (size_t i = 0; i < inits.size(); i++) g->initializer[i] = tensor(a, inits[i]);
  g->n_input = inputs.size();
  g->input = a.array<Onnx__ValueInfoProto>(inputs.size());
  for (size_t i = 0; i < inputs.size(); i++) g->input[i] = value(a, inputs[i]);
  g->n_output = outputs.size();
  g->output = a.array<Onnx__ValueInfoProto>(outputs.size());
  for (size_t i = 0; i < outputs.size(); i++) g->output[i] = value(a, outputs[i]);
  return g;
}

}  // namespace

}  // namespace onnxb
