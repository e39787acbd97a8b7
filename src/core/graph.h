// Graph IR: values (inputs, weights, intermediates) and nodes (ops), with shape and dtype
// inference at build time. A Graph is a pure description; Executor places, plans and runs it.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/op.h"
#include "core/quant_weight.h"
#include "vlart/tensor.h"

namespace vlart {

using ValueId = int32_t;
constexpr ValueId kNoValue = -1;

enum class ValueKind : uint8_t { kInput, kWeight, kIntermediate };

struct Value {
  std::string name;
  ValueKind kind = ValueKind::kIntermediate;
  Shape shape;
  DType dtype = DType::kF32;
  Tensor constant;        // kWeight only (usually a view into an mmapped checkpoint)
  // kWeight only, instead of `constant`: a quantized weight (shape [n, k], dtype f32 as logical
  // type). Only a CPU Linear consumes it (as its W input); it repacks it at prepare time.
  std::shared_ptr<const QuantWeight> quant;
  bool is_output = false;
  ValueId producer = -1;  // node index, -1 for inputs and weights
};

struct Node {
  OpKind op = OpKind::kCount;
  std::vector<ValueId> inputs;  // kNoValue marks an absent optional input (e.g. bias)
  ValueId output = kNoValue;
  OpAttrs attrs;
  std::string name;  // for errors and profiles
};

class Graph {
 public:
  ValueId input(const std::string& name, const Shape& shape, DType dtype);
  ValueId weight(const std::string& name, const Tensor& t);
  ValueId quant_weight(const std::string& name, std::shared_ptr<const QuantWeight> q);
  void mark_output(ValueId v);
  // Marks v as an output and names it (Executor::output(name)); the name must be new in the graph.
  void mark_output(ValueId v, const std::string& name);

  // Adds a node after validating it and inferring its output. Throws InvalidArgument with the node
  // name and offending shapes when the op's contract is broken.
  ValueId add(OpKind op, std::vector<ValueId> inputs, const OpAttrs& attrs = {},
              const std::string& name = "");

  // Builders (thin wrappers over add()).
  ValueId linear(ValueId x, ValueId w, ValueId bias = kNoValue, Activation act = Activation::kNone);
  ValueId matmul(ValueId a, ValueId b, bool transpose_b = false);
  ValueId conv2d(ValueId x, ValueId w, ValueId b, int stride, int pad);
  ValueId layer_norm(ValueId x, ValueId w, ValueId b, float eps);
  ValueId rms_norm(ValueId x, ValueId w, float eps, bool gemma_plus_one = false);
  ValueId rope(ValueId x, ValueId pos, float theta);
  ValueId softmax(ValueId x);
  // precision: reduced-precision products the backend may use (AttnPrecision in op.h).
  // kv_len: i32 [B] runtime count of valid keys (a KV cache's filled length), or kNoValue = all Lk.
  ValueId attention(ValueId q, ValueId k, ValueId v, ValueId mask = kNoValue, bool causal = false,
                    float scale = 0.f, AttnPrecision precision = AttnPrecision::kF32, ValueId kv_len = kNoValue);
  // Writes x [B, L, ...] into the graph input `cache` [B, Lmax, ...] at rows pos[b].. (in place);
  // the result is the updated cache (op.h, KVWrite).
  ValueId kv_write(ValueId cache, ValueId x, ValueId pos);
  ValueId gather(ValueId x, ValueId idx, int axis);  // rows idx[K] of x along axis
  ValueId expand(ValueId x, const Shape& shape);     // numpy broadcast to shape
  ValueId gelu(ValueId x, bool approx_tanh = false);
  ValueId silu(ValueId x);
  ValueId relu(ValueId x);
  ValueId swiglu(ValueId gate, ValueId up);
  ValueId geglu(ValueId gate, ValueId up);
  ValueId add(ValueId a, ValueId b);
  ValueId mul(ValueId a, ValueId b);
  ValueId sub(ValueId a, ValueId b);
  ValueId div(ValueId a, ValueId b);
  ValueId tanh(ValueId x);
  ValueId sigmoid(ValueId x);
  ValueId exp(ValueId x);
  ValueId argmax(ValueId x);       // last dim -> [..., 1] i32
  ValueId reduce_mean(ValueId x);  // last dim -> [..., 1]
  ValueId scale(ValueId x, float s, float shift = 0.f);
  ValueId concat(const std::vector<ValueId>& xs, int axis);
  ValueId slice(ValueId x, int axis, int64_t start, int64_t end);
  ValueId reshape(ValueId x, const Shape& shape);
  ValueId permute(ValueId x, const std::vector<int>& perm);
  ValueId embedding(ValueId table, ValueId ids);
  ValueId pixel_shuffle(ValueId x, int factor);
  ValueId resize_bilinear(ValueId x, int64_t out_h, int64_t out_w);
  ValueId cast(ValueId x, DType dtype);

  const Value& value(ValueId v) const;
  Value& value(ValueId v);
  const std::vector<Value>& values() const { return values_; }
  const std::vector<Node>& nodes() const { return nodes_; }
  std::vector<Node>& nodes() { return nodes_; }
  std::vector<Value>& values() { return values_; }
  const std::vector<ValueId>& inputs() const { return inputs_; }
  const std::vector<ValueId>& outputs() const { return outputs_; }
  ValueId find(const std::string& name) const;  // kNoValue if absent

  // Appends a value with a known shape (used by placement when inserting copies).
  ValueId add_value(Value v);
  std::vector<Node> take_nodes() { return std::move(nodes_); }

 private:
  std::vector<Value> values_;
  std::vector<Node> nodes_;
  std::vector<ValueId> inputs_;
  std::vector<ValueId> outputs_;
};

// Shape/dtype inference for one node; throws InvalidArgument naming the node on a contract break.
void infer_node(const Graph& g, const Node& n, Shape* out_shape, DType* out_dtype);

}  // namespace vlart
