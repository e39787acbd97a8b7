// CPU kernels of the elementwise family: Gelu, Silu, Relu, Tanh, Sigmoid, Exp, SwiGLU, GeGLU, Add,
// Mul, Sub, Div, Scale, Cast, and the last-dim reductions ArgMax and ReduceMean (loops in
// kernels/cpu/elementwise.cpp).
#include <memory>

#include "backends/cpu/cpu_backend.h"
#include "cpu/elementwise.h"

namespace vlart {
namespace {

DType in_dtype(const Graph& g, const Node& n, size_t i) { return g.value(n.inputs[i]).dtype; }

bool supports_float_inputs(const Graph& g, const Node& n) {
  for (size_t i = 0; i < n.inputs.size(); ++i)
    if (n.inputs[i] == kNoValue || !is_f32_or_bf16(in_dtype(g, n, i))) return false;
  return true;
}

bool supports_cast(const Graph& g, const Node& n) {
  return kernels::cast_supported(in_dtype(g, n, 0), n.attrs.dtype);
}

class UnaryKernel final : public OpKernel {
 public:
  UnaryKernel(const Graph& g, const Node& n, const CpuContext& ctx)
      : t_(in_dtype(g, n, 0)), n_(g.value(n.inputs[0]).shape.numel()), scale_(n.attrs.scale),
        shift_(n.attrs.shift), threads_(ctx.threads) {
    switch (n.op) {
      case OpKind::kGelu: op_ = n.attrs.approx_tanh ? kernels::UnaryOp::kGeluTanh : kernels::UnaryOp::kGeluErf; break;
      case OpKind::kSilu: op_ = kernels::UnaryOp::kSilu; break;
      case OpKind::kRelu: op_ = kernels::UnaryOp::kRelu; break;
      case OpKind::kTanh: op_ = kernels::UnaryOp::kTanh; break;
      case OpKind::kSigmoid: op_ = kernels::UnaryOp::kSigmoid; break;
      case OpKind::kExp: op_ = kernels::UnaryOp::kExp; break;
      default: op_ = kernels::UnaryOp::kScale; break;
    }
  }
  void run(const KernelArgs& a) override {
    kernels::unary(op_, a.inputs[0]->raw(), t_, a.output->raw(), n_, scale_, shift_, threads_);
  }

 private:
  kernels::UnaryOp op_ = kernels::UnaryOp::kRelu;
  DType t_;
  int64_t n_;
  float scale_, shift_;
  int threads_;
};

class GluKernel final : public OpKernel {
 public:
  GluKernel(const Graph& g, const Node& n, const CpuContext& ctx)
      : op_(n.op == OpKind::kSwiGLU ? kernels::GluOp::kSwiGLU : kernels::GluOp::kGeGLU),
        t_(in_dtype(g, n, 0)), n_(g.value(n.inputs[0]).shape.numel()), threads_(ctx.threads) {}
  void run(const KernelArgs& a) override {
    kernels::glu(op_, a.inputs[0]->raw(), a.inputs[1]->raw(), t_, a.output->raw(), n_, threads_);
  }

 private:
  kernels::GluOp op_;
  DType t_;
  int64_t n_;
  int threads_;
};

kernels::BinaryOp binary_op(OpKind op) {
  switch (op) {
    case OpKind::kAdd: return kernels::BinaryOp::kAdd;
    case OpKind::kSub: return kernels::BinaryOp::kSub;
    case OpKind::kDiv: return kernels::BinaryOp::kDiv;
    default: return kernels::BinaryOp::kMul;
  }
}

// ArgMax / ReduceMean over the last dim.
class RowReduceKernel final : public OpKernel {
 public:
  RowReduceKernel(const Graph& g, const Node& n, const CpuContext& ctx)
      : argmax_(n.op == OpKind::kArgMax), t_(in_dtype(g, n, 0)), threads_(ctx.threads) {
    const Shape& s = g.value(n.inputs[0]).shape;
    cols_ = s[s.rank() - 1];
    rows_ = cols_ > 0 ? s.numel() / cols_ : 0;
  }
  void run(const KernelArgs& a) override {
    if (argmax_)
      kernels::argmax_rows(a.inputs[0]->raw(), t_, rows_, cols_, a.output->data<int32_t>(), threads_);
    else
      kernels::mean_rows(a.inputs[0]->raw(), t_, rows_, cols_, a.output->raw(), threads_);
  }

 private:
  bool argmax_;
  DType t_;
  int64_t rows_ = 0, cols_ = 0;
  int threads_;
};

class BinaryKernel final : public OpKernel {
 public:
  BinaryKernel(const Graph& g, const Node& n, const CpuContext& ctx)
      : op_(binary_op(n.op)),
        t_(in_dtype(g, n, 0)),
        plan_(kernels::make_broadcast_plan(g.value(n.inputs[0]).shape, g.value(n.inputs[1]).shape)),
        threads_(ctx.threads) {}
  void run(const KernelArgs& a) override {
    kernels::binary(op_, plan_, a.inputs[0]->raw(), a.inputs[1]->raw(), t_, a.output->raw(), threads_);
  }

 private:
  kernels::BinaryOp op_;
  DType t_;
  kernels::BroadcastPlan plan_;
  int threads_;
};

class CastKernel final : public OpKernel {
 public:
  CastKernel(const Graph& g, const Node& n, const CpuContext& ctx)
      : from_(in_dtype(g, n, 0)), to_(n.attrs.dtype), n_(g.value(n.inputs[0]).shape.numel()),
        threads_(ctx.threads) {}
  void run(const KernelArgs& a) override {
    kernels::cast(a.inputs[0]->raw(), from_, a.output->raw(), to_, n_, threads_);
  }

 private:
  DType from_, to_;
  int64_t n_;
  int threads_;
};

std::unique_ptr<OpKernel> create_unary(const Graph& g, const Node& n, CpuContext& ctx) {
  return std::make_unique<UnaryKernel>(g, n, ctx);
}
std::unique_ptr<OpKernel> create_glu(const Graph& g, const Node& n, CpuContext& ctx) {
  return std::make_unique<GluKernel>(g, n, ctx);
}
std::unique_ptr<OpKernel> create_binary(const Graph& g, const Node& n, CpuContext& ctx) {
  return std::make_unique<BinaryKernel>(g, n, ctx);
}
std::unique_ptr<OpKernel> create_row_reduce(const Graph& g, const Node& n, CpuContext& ctx) {
  return std::make_unique<RowReduceKernel>(g, n, ctx);
}
std::unique_ptr<OpKernel> create_cast(const Graph& g, const Node& n, CpuContext& ctx) {
  return std::make_unique<CastKernel>(g, n, ctx);
}

}  // namespace

void register_cpu_elementwise(CpuKernelTable& t) {
  for (OpKind op : {OpKind::kGelu, OpKind::kSilu, OpKind::kRelu, OpKind::kScale, OpKind::kTanh, OpKind::kSigmoid,
                    OpKind::kExp})
    set_entry(t, op, supports_float_inputs, create_unary);
  for (OpKind op : {OpKind::kSub, OpKind::kDiv}) set_entry(t, op, supports_float_inputs, create_binary);
  for (OpKind op : {OpKind::kArgMax, OpKind::kReduceMean}) set_entry(t, op, supports_float_inputs, create_row_reduce);
  set_entry(t, OpKind::kSwiGLU, supports_float_inputs, create_glu);
  set_entry(t, OpKind::kGeGLU, supports_float_inputs, create_glu);
  set_entry(t, OpKind::kAdd, supports_float_inputs, create_binary);
  set_entry(t, OpKind::kMul, supports_float_inputs, create_binary);
  set_entry(t, OpKind::kCast, supports_cast, create_cast);
}

}  // namespace vlart
