// W8A8 Linear through the AVX2 / AVX-VNNI int8 GEMM (kernels/cpu/qgemm_s8.h): the weight is
// packed once at create time (int16 k-pairs for vpmaddwd, or s8 k-quads plus the -128 * colsum
// compensation for vpdpbusd), activations are quantized per call into the scratch, and scales,
// bias and activation are applied from the int32 accumulators.
#include "backends/cpu/gemm_linear_s8.h"

#include <vector>

#include "cpu/qgemm_s8.h"

namespace vlart {
namespace {

GemvAct gemv_act(Activation a) {
  switch (a) {
    case Activation::kNone: return GemvAct::kNone;
    case Activation::kRelu: return GemvAct::kRelu;
    case Activation::kGeluErf: return GemvAct::kGeluErf;
    case Activation::kGeluTanh: return GemvAct::kGeluTanh;
    case Activation::kSilu: return GemvAct::kSilu;
  }
  return GemvAct::kNone;
}

class W8A8S8GemmLinearKernel final : public OpKernel {
 public:
  W8A8S8GemmLinearKernel(int64_t m, const QuantWeight& q, DType x_dt, bool has_bias, Activation act,
                         CpuContext& ctx)
      : has_bias_(has_bias) {
    L_ = s8gemm_layout(s8gemm_best_isa(), q.n, q.k);
    const std::string key =
        quant_weight_key("s8gemm" + std::to_string(static_cast<int>(s8gemm_best_isa())), q);
    packed_ = ctx.packed->get(key, quant_weight_sources(q), [&] {
      PackedWeight pw;
      pw.nbytes = L_.total_bytes;
      pw.bytes = Tensor::empty(Shape{static_cast<int64_t>(L_.total_bytes)}, DType::kU8);
      const std::vector<float> s = q.scales_f32();
      s8gemm_pack(L_, q.qweight.data<int8_t>(), s.data(), pw.bytes.raw());
      return pw;
    })->bytes;
    const int threads = ctx.threads;
    p_.m = m;
    p_.ldx = q.k;
    p_.ldy = q.n;
    p_.x_bf16 = p_.y_bf16 = x_dt == DType::kBF16;
    p_.static_scale = q.act_scale;
    p_.act = gemv_act(act);
    p_.threads = threads;
  }

  size_t scratch_bytes() const override { return s8gemm_scratch_bytes(L_, p_.m); }
  bool owns_input(int i) const override { return i == 1; }

  void run(const KernelArgs& a) override {
    S8GemmProblem p = p_;
    p.x = a.inputs[0]->raw();
    if (has_bias_ && a.num_inputs > 2 && a.inputs[2]) {
      p.bias = a.inputs[2]->raw();
      p.bias_bf16 = a.inputs[2]->dtype() == DType::kBF16;
    }
    p.y = a.output->raw();
    s8gemm(L_, packed_.raw(), p, a.scratch);
  }

 private:
  S8GemmLayout L_;
  Tensor packed_;
  S8GemmProblem p_;
  bool has_bias_;
};

}  // namespace

bool w8a8_s8gemm_available() { return s8gemm_best_isa() != S8GemmIsa::kNone; }

std::unique_ptr<OpKernel> make_w8a8_s8gemm_linear(int64_t m, const QuantWeight& q, DType x_dt, bool has_bias,
                                                  Activation act, CpuContext& ctx) {
  if (!w8a8_s8gemm_available()) return nullptr;
  return std::make_unique<W8A8S8GemmLinearKernel>(m, q, x_dt, has_bias, act, ctx);
}

}  // namespace vlart
