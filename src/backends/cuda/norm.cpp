// RMSNorm on the GPU (kernel in kernels/cuda/rms_norm.cu). The weight is uploaded once as f32.
#include <string>

#include "backends/cuda/cuda_backend.h"
#include "backends/cuda/cuda_check.h"
#include "vlart/error.h"

namespace vlart::cuda {
namespace {

class RmsNormKernel final : public OpKernel {
 public:
  RmsNormKernel(const Graph& g, const Node& n, const CudaContextPtr& ctx)
      : ctx_(ctx), where_(node_label(n)), dev_(Device::cuda(ctx->device)) {
    const Value& xv = g.value(n.inputs[0]);
    dtype_ = xv.dtype;
    d_ = xv.shape.dim(-1);
    rows_ = d_ > 0 ? xv.shape.numel() / d_ : 0;
    eps_ = n.attrs.eps;
    plus_one_ = n.attrs.gemma_plus_one;
    w_ = upload_constant(*ctx, g.value(n.inputs[1]).constant, DType::kF32, where_ + " weight");
  }

  // Weights (and bias) were converted and uploaded at prepare; the executor need not place them.
  bool owns_input(int i) const override { return i == 1; }

  void run(const KernelArgs& args) override {
    VLART_CHECK(args.num_inputs >= 1 && args.inputs, InvalidArgument, where_, ": no inputs");
    const Tensor* x = args.inputs[0];
    check_arg(x, dev_, dtype_, rows_ * d_, where_, "input x");
    check_arg(args.output, dev_, dtype_, rows_ * d_, where_, "output");
    VLART_CUDA_CHECK(launch_rms_norm(elem_type(dtype_), x->raw(), static_cast<const float*>(w_.get()),
                                     args.output->raw(), rows_, d_, eps_, plus_one_, ctx_->stream),
                     where_.c_str());
  }

 private:
  CudaContextPtr ctx_;
  std::string where_;
  Device dev_;
  DType dtype_ = DType::kF32;
  int64_t rows_ = 0, d_ = 0;
  float eps_ = 0.f;
  bool plus_one_ = false;
  DeviceBuffer w_;
};

bool rms_norm_supports(const Graph& g, const Node& n) {
  return n.inputs.size() == 2 && is_act_dtype(g.value(n.inputs[0]).dtype) && is_host_weight(g, n, 1) &&
         dtype_traits(g.value(n.inputs[1]).dtype).is_float;
}

std::unique_ptr<OpKernel> rms_norm_create(const Graph& g, const Node& n, const CudaContextPtr& ctx) {
  return std::make_unique<RmsNormKernel>(g, n, ctx);
}

}  // namespace

void register_cuda_norm(CudaKernelTable& t) { set_entry(t, OpKind::kRMSNorm, rms_norm_supports, rms_norm_create); }

}  // namespace vlart::cuda
