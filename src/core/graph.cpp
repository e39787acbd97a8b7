#include "core/graph.h"

#include "vlart/error.h"

namespace vlart {

const char* op_name(OpKind op) {
  static const char* const kNames[] = {
      "Linear", "MatMul", "Conv2d", "LayerNorm", "RMSNorm", "Rope", "Softmax", "Attention",
      "Gelu", "Silu", "Relu", "SwiGLU", "GeGLU", "Add", "Mul", "Scale", "Concat", "Slice",
      "Reshape", "Permute", "Embedding", "PixelShuffle", "ResizeBilinear", "Cast", "Copy",
      "Sub", "Div", "Tanh", "Sigmoid", "Exp", "ArgMax", "ReduceMean", "KVWrite", "Gather", "Expand"};
  static_assert(sizeof(kNames) / sizeof(kNames[0]) == static_cast<size_t>(OpKind::kCount),
                "op name table must cover every OpKind");
  const auto i = static_cast<size_t>(op);
  return i < static_cast<size_t>(OpKind::kCount) ? kNames[i] : "?";
}

const Value& Graph::value(ValueId v) const {
  VLART_CHECK(v >= 0 && static_cast<size_t>(v) < values_.size(), InvalidArgument, "invalid value id ", v);
  return values_[static_cast<size_t>(v)];
}
Value& Graph::value(ValueId v) {
  VLART_CHECK(v >= 0 && static_cast<size_t>(v) < values_.size(), InvalidArgument, "invalid value id ", v);
  return values_[static_cast<size_t>(v)];
}

ValueId Graph::add_value(Value v) {
  values_.push_back(std::move(v));
  return static_cast<ValueId>(values_.size() - 1);
}

ValueId Graph::input(const std::string& name, const Shape& shape, DType dtype) {
  for (int i = 0; i < shape.rank(); ++i)
    VLART_CHECK(shape[i] >= 0, InvalidArgument, "input '", name, "': negative dim in ", shape.str());
  Value v;
  v.name = name;
  v.kind = ValueKind::kInput;
  v.shape = shape;
  v.dtype = dtype;
  const ValueId id = add_value(std::move(v));
  inputs_.push_back(id);
  return id;
}

ValueId Graph::weight(const std::string& name, const Tensor& t) {
  VLART_CHECK(t.defined(), InvalidArgument, "weight '", name, "' is an undefined tensor");
  VLART_CHECK(t.is_contiguous(), InvalidArgument, "weight '", name, "' must be contiguous");
  Value v;
  v.name = name;
  v.kind = ValueKind::kWeight;
  v.shape = t.shape();
  v.dtype = t.dtype();
  v.constant = t;
  return add_value(std::move(v));
}

ValueId Graph::quant_weight(const std::string& name, std::shared_ptr<const QuantWeight> q) {
  VLART_CHECK(q != nullptr && q->qweight.defined() && q->scales.defined(), InvalidArgument, "quantized weight '", name,
              "' has no stored tensors");
  Value v;
  v.name = name;
  v.kind = ValueKind::kWeight;
  v.shape = Shape{q->n, q->k};
  v.dtype = DType::kF32;
  v.quant = std::move(q);
  return add_value(std::move(v));
}

void Graph::mark_output(ValueId v) {
  Value& val = value(v);
  VLART_CHECK(val.kind != ValueKind::kWeight, InvalidArgument, "weight '", val.name,
              "' cannot be a graph output");
  if (!val.is_output) {
    val.is_output = true;
    outputs_.push_back(v);
  }
}

void Graph::mark_output(ValueId v, const std::string& name) {
  VLART_CHECK(!name.empty(), InvalidArgument, "graph output name is empty");
  const ValueId other = find(name);
  VLART_CHECK(other == kNoValue || other == v, InvalidArgument, "graph output name '", name,
              "' is already the name of another value");
  VLART_CHECK(value(v).kind != ValueKind::kInput || value(v).name == name, InvalidArgument, "graph input '",
              value(v).name, "' cannot be renamed to output name '", name, "'");
  mark_output(v);
  value(v).name = name;
}

ValueId Graph::find(const std::string& name) const {
  for (size_t i = 0; i < values_.size(); ++i)
    if (values_[i].name == name) return static_cast<ValueId>(i);
  return kNoValue;
}

ValueId Graph::add(OpKind op, std::vector<ValueId> inputs, const OpAttrs& attrs, const std::string& name) {
  Node n;
  n.op = op;
  n.inputs = std::move(inputs);
  n.attrs = attrs;
  n.name = name.empty() ? std::string(op_name(op)) + "_" + std::to_string(nodes_.size()) : name;
  for (ValueId v : n.inputs)
    VLART_CHECK(v == kNoValue || (v >= 0 && static_cast<size_t>(v) < values_.size()),
                InvalidArgument, "node '", n.name, "': invalid input value id ", v);
  Value out;
  infer_node(*this, n, &out.shape, &out.dtype);
  out.name = n.name;
  out.kind = ValueKind::kIntermediate;
  out.producer = static_cast<ValueId>(nodes_.size());
  n.output = add_value(std::move(out));
  nodes_.push_back(std::move(n));
  return nodes_.back().output;
}

ValueId Graph::linear(ValueId x, ValueId w, ValueId bias, Activation act) {
  OpAttrs a;
  a.act = act;
  return add(OpKind::kLinear, {x, w, bias}, a);
}
ValueId Graph::matmul(ValueId a, ValueId b, bool transpose_b) {
  OpAttrs at;
  at.transpose_b = transpose_b;
  return add(OpKind::kMatMul, {a, b}, at);
}
ValueId Graph::conv2d(ValueId x, ValueId w, ValueId b, int stride, int pad) {
  OpAttrs a;
  a.stride[0] = a.stride[1] = stride;
  a.pad[0] = a.pad[1] = pad;
  return add(OpKind::kConv2d, {x, w, b}, a);
}
ValueId Graph::layer_norm(ValueId x, ValueId w, ValueId b, float eps) {
  OpAttrs a;
  a.eps = eps;
  return add(OpKind::kLayerNorm, {x, w, b}, a);
}
ValueId Graph::rms_norm(ValueId x, ValueId w, float eps, bool gemma_plus_one) {
  OpAttrs a;
  a.eps = eps;
  a.gemma_plus_one = gemma_plus_one;
  return add(OpKind::kRMSNorm, {x, w}, a);
}
ValueId Graph::rope(ValueId x, ValueId pos, float theta) {
  OpAttrs a;
  a.theta = theta;
  return add(OpKind::kRope, {x, pos}, a);
}
ValueId Graph::softmax(ValueId x) { return add(OpKind::kSoftmax, {x}); }
ValueId Graph::attention(ValueId q, ValueId k, ValueId v, ValueId mask, bool causal, float scale,
                         AttnPrecision precision, ValueId kv_len) {
  OpAttrs a;
  a.causal = causal;
  a.attn_precision = precision;
  a.scale = scale;
  if (kv_len == kNoValue) return add(OpKind::kAttention, {q, k, v, mask}, a);
  return add(OpKind::kAttention, {q, k, v, mask, kv_len}, a);
}
ValueId Graph::kv_write(ValueId cache, ValueId x, ValueId pos) { return add(OpKind::kKVWrite, {cache, x, pos}); }
ValueId Graph::gather(ValueId x, ValueId idx, int axis) {
  OpAttrs a;
  a.axis = axis;
  return add(OpKind::kGather, {x, idx}, a);
}
ValueId Graph::expand(ValueId x, const Shape& shape) {
  OpAttrs a;
  a.shape = shape;
  return add(OpKind::kExpand, {x}, a);
}
ValueId Graph::gelu(ValueId x, bool approx_tanh) {
  OpAttrs a;
  a.approx_tanh = approx_tanh;
  return add(OpKind::kGelu, {x}, a);
}
ValueId Graph::silu(ValueId x) { return add(OpKind::kSilu, {x}); }
ValueId Graph::relu(ValueId x) { return add(OpKind::kRelu, {x}); }
ValueId Graph::swiglu(ValueId gate, ValueId up) { return add(OpKind::kSwiGLU, {gate, up}); }
ValueId Graph::geglu(ValueId gate, ValueId up) { return add(OpKind::kGeGLU, {gate, up}); }
ValueId Graph::add(ValueId a, ValueId b) { return add(OpKind::kAdd, {a, b}); }
ValueId Graph::mul(ValueId a, ValueId b) { return add(OpKind::kMul, {a, b}); }
ValueId Graph::sub(ValueId a, ValueId b) { return add(OpKind::kSub, {a, b}); }
ValueId Graph::div(ValueId a, ValueId b) { return add(OpKind::kDiv, {a, b}); }
ValueId Graph::tanh(ValueId x) { return add(OpKind::kTanh, {x}); }
ValueId Graph::sigmoid(ValueId x) { return add(OpKind::kSigmoid, {x}); }
ValueId Graph::exp(ValueId x) { return add(OpKind::kExp, {x}); }
ValueId Graph::argmax(ValueId x) { return add(OpKind::kArgMax, {x}); }
ValueId Graph::reduce_mean(ValueId x) { return add(OpKind::kReduceMean, {x}); }
ValueId Graph::scale(ValueId x, float s, float shift) {
  OpAttrs a;
  a.scale = s;
  a.shift = shift;
  return add(OpKind::kScale, {x}, a);
}
ValueId Graph::concat(const std::vector<ValueId>& xs, int axis) {
  OpAttrs a;
  a.axis = axis;
  return add(OpKind::kConcat, xs, a);
}
ValueId Graph::slice(ValueId x, int axis, int64_t start, int64_t end) {
  OpAttrs a;
  a.axis = axis;
  a.start = start;
  a.end = end;
  return add(OpKind::kSlice, {x}, a);
}
ValueId Graph::reshape(ValueId x, const Shape& shape) {
  OpAttrs a;
  a.shape = shape;
  return add(OpKind::kReshape, {x}, a);
}
ValueId Graph::permute(ValueId x, const std::vector<int>& perm) {
  OpAttrs a;
  VLART_CHECK(perm.size() <= static_cast<size_t>(kMaxDims), InvalidArgument, "permute: too many axes");
  VLART_CHECK(static_cast<int>(perm.size()) == value(x).shape.rank(), InvalidArgument, "permute: ",
              perm.size(), " axes for a rank-", value(x).shape.rank(), " input ", value(x).shape.str());
  for (size_t i = 0; i < perm.size(); ++i) a.perm[i] = perm[i];
  return add(OpKind::kPermute, {x}, a);
}
ValueId Graph::embedding(ValueId table, ValueId ids) { return add(OpKind::kEmbedding, {table, ids}); }
ValueId Graph::pixel_shuffle(ValueId x, int factor) {
  OpAttrs a;
  a.factor = factor;
  return add(OpKind::kPixelShuffle, {x}, a);
}
ValueId Graph::resize_bilinear(ValueId x, int64_t out_h, int64_t out_w) {
  OpAttrs a;
  a.shape = Shape{out_h, out_w};
  return add(OpKind::kResizeBilinear, {x}, a);
}
ValueId Graph::cast(ValueId x, DType dtype) {
  OpAttrs a;
  a.dtype = dtype;
  return add(OpKind::kCast, {x}, a);
}

}  // namespace vlart
