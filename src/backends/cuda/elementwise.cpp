// Elementwise ops on the GPU (kernels in kernels/cuda/elementwise.cu): Silu, Relu, Gelu, Scale
// (unary) and Add, Mul, SwiGLU, GeGLU on same-shape operands. Broadcasting Add/Mul and weight
// operands are not supported here (supports() says no; placement keeps them on the CPU).
#include <string>

#include "backends/cuda/cuda_backend.h"
#include "backends/cuda/cuda_check.h"
#include "vlart/error.h"

namespace vlart::cuda {
namespace {

class UnaryKernel final : public OpKernel {
 public:
  UnaryKernel(const Graph& g, const Node& n, const CudaContextPtr& ctx, UnaryOp op)
      : ctx_(ctx), where_(node_label(n)), dev_(Device::cuda(ctx->device)), op_(op) {
    const Value& xv = g.value(n.inputs[0]);
    dtype_ = xv.dtype;
    numel_ = xv.shape.numel();
    a_ = n.attrs.scale;
    b_ = n.attrs.shift;
  }

  void run(const KernelArgs& args) override {
    VLART_CHECK(args.num_inputs >= 1 && args.inputs, InvalidArgument, where_, ": no inputs");
    check_arg(args.inputs[0], dev_, dtype_, numel_, where_, "input x");
    check_arg(args.output, dev_, dtype_, numel_, where_, "output");
    VLART_CUDA_CHECK(launch_unary(op_, elem_type(dtype_), args.inputs[0]->raw(), args.output->raw(), numel_, a_, b_,
                                  ctx_->stream),
                     where_.c_str());
  }

 private:
  CudaContextPtr ctx_;
  std::string where_;
  Device dev_;
  UnaryOp op_;
  DType dtype_ = DType::kF32;
  int64_t numel_ = 0;
  float a_ = 1.f, b_ = 0.f;
};

class BinaryKernel final : public OpKernel {
 public:
  BinaryKernel(const Graph& g, const Node& n, const CudaContextPtr& ctx, BinaryOp op)
      : ctx_(ctx), where_(node_label(n)), dev_(Device::cuda(ctx->device)), op_(op) {
    const Value& av = g.value(n.inputs[0]);
    dtype_ = av.dtype;
    numel_ = av.shape.numel();
  }

  void run(const KernelArgs& args) override {
    VLART_CHECK(args.num_inputs >= 2 && args.inputs, InvalidArgument, where_, ": expects 2 inputs, got ",
                args.num_inputs);
    check_arg(args.inputs[0], dev_, dtype_, numel_, where_, "input #0");
    check_arg(args.inputs[1], dev_, dtype_, numel_, where_, "input #1");
    check_arg(args.output, dev_, dtype_, numel_, where_, "output");
    VLART_CUDA_CHECK(launch_binary(op_, elem_type(dtype_), args.inputs[0]->raw(), args.inputs[1]->raw(),
                                   args.output->raw(), numel_, ctx_->stream),
                     where_.c_str());
  }

 private:
  CudaContextPtr ctx_;
  std::string where_;
  Device dev_;
  BinaryOp op_;
  DType dtype_ = DType::kF32;
  int64_t numel_ = 0;
};

bool activation_input(const Graph& g, const Node& n, size_t i) {
  if (i >= n.inputs.size() || n.inputs[i] == kNoValue) return false;
  const Value& v = g.value(n.inputs[i]);
  return v.kind != ValueKind::kWeight && is_act_dtype(v.dtype);
}

bool unary_supports(const Graph& g, const Node& n) { return n.inputs.size() == 1 && activation_input(g, n, 0); }

bool binary_supports(const Graph& g, const Node& n) {
  if (n.inputs.size() != 2 || !activation_input(g, n, 0) || !activation_input(g, n, 1)) return false;
  const Value& a = g.value(n.inputs[0]);
  const Value& b = g.value(n.inputs[1]);
  return a.dtype == b.dtype && a.shape == b.shape;  // no broadcasting
}

UnaryOp unary_op_of(const Node& n) {
  switch (n.op) {
    case OpKind::kSilu: return UnaryOp::kSilu;
    case OpKind::kRelu: return UnaryOp::kRelu;
    case OpKind::kGelu: return n.attrs.approx_tanh ? UnaryOp::kGeluTanh : UnaryOp::kGeluErf;
    default: return UnaryOp::kScale;
  }
}

BinaryOp binary_op_of(const Node& n) {
  switch (n.op) {
    case OpKind::kAdd: return BinaryOp::kAdd;
    case OpKind::kMul: return BinaryOp::kMul;
    case OpKind::kSwiGLU: return BinaryOp::kSwiGLU;
    default: return BinaryOp::kGeGLU;
  }
}

std::unique_ptr<OpKernel> unary_create(const Graph& g, const Node& n, const CudaContextPtr& ctx) {
  return std::make_unique<UnaryKernel>(g, n, ctx, unary_op_of(n));
}
std::unique_ptr<OpKernel> binary_create(const Graph& g, const Node& n, const CudaContextPtr& ctx) {
  return std::make_unique<BinaryKernel>(g, n, ctx, binary_op_of(n));
}

}  // namespace

void register_cuda_elementwise(CudaKernelTable& t) {
  for (OpKind op : {OpKind::kSilu, OpKind::kRelu, OpKind::kGelu, OpKind::kScale})
    set_entry(t, op, unary_supports, unary_create);
  for (OpKind op : {OpKind::kAdd, OpKind::kMul, OpKind::kSwiGLU, OpKind::kGeGLU})
    set_entry(t, op, binary_supports, binary_create);
}

}  // namespace vlart::cuda
