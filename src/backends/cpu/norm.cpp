// CPU kernels of the norm family: LayerNorm, RMSNorm, Softmax (loops in kernels/cpu/norm.cpp).
#include <memory>

#include "backends/cpu/cpu_backend.h"
#include "cpu/norm.h"

namespace vlart {
namespace {

const Value& in_value(const Graph& g, const Node& n, size_t i) { return g.value(n.inputs[i]); }
bool has_input(const Node& n, size_t i) { return i < n.inputs.size() && n.inputs[i] != kNoValue; }

bool supports_norm(const Graph& g, const Node& n) {
  if (!is_f32_or_bf16(in_value(g, n, 0).dtype)) return false;
  for (size_t i = 1; i < n.inputs.size(); ++i)
    if (has_input(n, i) && !is_f32_or_bf16(in_value(g, n, i).dtype)) return false;
  return true;
}

class NormKernel final : public OpKernel {
 public:
  NormKernel(const Graph& g, const Node& n, const CpuContext& ctx)
      : op_(n.op), attrs_(n.attrs), threads_(ctx.threads) {
    const Value& x = in_value(g, n, 0);
    xt_ = x.dtype;
    D_ = x.shape.rank() > 0 ? x.shape.dim(-1) : 1;
    rows_ = D_ > 0 ? x.shape.numel() / D_ : 0;
    if (has_input(n, 1)) wt_ = in_value(g, n, 1).dtype;
    if (has_input(n, 2)) bt_ = in_value(g, n, 2).dtype;
  }

  size_t scratch_bytes() const override {
    return op_ == OpKind::kSoftmax ? kernels::softmax_scratch_bytes(xt_, D_, threads_) : 0;
  }

  void run(const KernelArgs& a) override {
    const void* x = a.inputs[0]->raw();
    void* y = a.output->raw();
    if (rows_ == 0 || D_ == 0) return;
    switch (op_) {
      case OpKind::kLayerNorm: {
        const Tensor* w = a.num_inputs > 1 ? a.inputs[1] : nullptr;
        const Tensor* b = a.num_inputs > 2 ? a.inputs[2] : nullptr;
        kernels::layer_norm(x, xt_, w ? w->raw() : nullptr, wt_, b ? b->raw() : nullptr, bt_, y, rows_, D_,
                            attrs_.eps, threads_);
        break;
      }
      case OpKind::kRMSNorm:
        kernels::rms_norm(x, xt_, a.inputs[1]->raw(), wt_, y, rows_, D_, attrs_.eps, attrs_.gemma_plus_one,
                          threads_);
        break;
      default:
        kernels::softmax(x, xt_, y, rows_, D_, a.scratch, threads_);
        break;
    }
  }

 private:
  OpKind op_;
  OpAttrs attrs_;
  int threads_;
  DType xt_ = DType::kF32, wt_ = DType::kF32, bt_ = DType::kF32;
  int64_t rows_ = 0, D_ = 0;
};

std::unique_ptr<OpKernel> create_norm(const Graph& g, const Node& n, CpuContext& ctx) {
  return std::make_unique<NormKernel>(g, n, ctx);
}

}  // namespace

void register_cpu_norm(CpuKernelTable& t) {
  set_entry(t, OpKind::kLayerNorm, supports_norm, create_norm);
  set_entry(t, OpKind::kRMSNorm, supports_norm, create_norm);
  set_entry(t, OpKind::kSoftmax, supports_norm, create_norm);
}

}  // namespace vlart
