// Linear on the CPU: y = act(x W^T + b).
//
// M <= 16 rows: the hand-written multi-row GEMV (kernels/cpu/gemv.h) streams W once for all rows,
// from a panel-packed copy made at create time (AVX-512 CPUs; others read W in place). bf16 activations meet bf16 weights in vdpbf16ps where
// the CPU has it; otherwise they are widened to f32 rows in scratch.
// M > 16 rows: a oneDNN matmul with W reordered once into the layout the primitive prefers and
// bias/activation fused. When the weight dtype differs from the activation dtype, the reorder
// converts W to the activation dtype (f32 activations with bf16 weights therefore compute in f32
// on exact bf16 values: no accuracy is lost, at 4 bytes per packed weight).
#include <omp.h>

#include "backends/cpu/gemm_onednn.h"
#include "cpu/gemv.h"
#include "vlart/error.h"

namespace vlart {
namespace {

using tag = dnnl::memory::format_tag;

GemvAct to_gemv_act(Activation a) {
  switch (a) {
    case Activation::kNone: return GemvAct::kNone;
    case Activation::kRelu: return GemvAct::kRelu;
    case Activation::kGeluErf: return GemvAct::kGeluErf;
    case Activation::kGeluTanh: return GemvAct::kGeluTanh;
    case Activation::kSilu: return GemvAct::kSilu;
  }
  return GemvAct::kNone;
}

class LinearGemvKernel final : public OpKernel {
 public:
  LinearGemvKernel(int64_t m, int64_t k, int64_t n, DType x_dt, const Value& w, bool has_bias, Activation act,
                   int threads)
      : x_bf16_(x_dt == DType::kBF16), has_bias_(has_bias) {
    const DType w_dt = w.dtype;
    p_.m = static_cast<int>(m);
    p_.k = k;
    p_.n = n;
    p_.ldx = k;
    p_.ldy = n;
    p_.x_bf16 = x_bf16_;
    p_.w_bf16 = w_dt == DType::kBF16;
    p_.y_bf16 = x_bf16_;
    p_.act = to_gemv_act(act);
    p_.threads = threads;
    // A constant weight is also packed into 16-column panels for the AVX-512 paths (one
    // sequential stream per panel, no horizontal sums); the original stays for the others.
    const GemvPack f = gemv_pack_format(x_bf16_, p_.w_bf16);
    if (f != GemvPack::kNone && w.kind == ValueKind::kWeight && w.constant.defined()) {
      const size_t bytes = gemv_packed_bytes(f, k, n);
      packed_ = Tensor::empty(Shape{static_cast<int64_t>(bytes)}, DType::kU8);
      gemv_pack(f, w.constant.contiguous().raw(), p_.w_bf16, k, n, packed_.raw());
      p_.w_packed = packed_.raw();
      p_.pack = f;
    }
  }

  size_t scratch_bytes() const override {
    return x_bf16_ || p_.w_packed ? static_cast<size_t>(gemv_work_floats(p_.m, p_.k)) * sizeof(float) : 0;
  }

  void run(const KernelArgs& a) override {
    if (p_.m == 0) return;
    GemvProblem p = p_;
    p.x = a.inputs[0]->raw();
    p.x_work = static_cast<float*>(a.scratch);  // transposed / widened activation rows
    p.w = a.inputs[1]->raw();
    if (has_bias_ && a.num_inputs > 2 && a.inputs[2]) {
      p.bias = a.inputs[2]->raw();
      p.bias_bf16 = a.inputs[2]->dtype() == DType::kBF16;
    }
    p.y = a.output->raw();
    gemv(p);
  }

 private:
  GemvProblem p_;
  Tensor packed_;  // owned panels (64-byte aligned), or undefined
  bool x_bf16_;
  bool has_bias_;
};

class LinearOneDnnKernel final : public OpKernel {
 public:
  LinearOneDnnKernel(const Graph& g, const Node& nd, int64_t m, int64_t k, int64_t n, CpuContext& ctx) {
    const Value& xv = g.value(nd.inputs[0]);
    const Value& wv = g.value(nd.inputs[1]);
    const auto xdt = to_dnnl(xv.dtype);
    const dnnl::memory::dims src_dims{m, k}, w_dims{k, n}, dst_dims{m, n};
    const dnnl::memory::desc src_md(src_dims, xdt, tag::ab);
    const dnnl::memory::desc dst_md(dst_dims, xdt, tag::ab);
    // W[N, K] row-major is the K x N matrix in column-major ("ba") order.
    const dnnl::memory::desc w_user_md(w_dims, to_dnnl(wv.dtype), tag::ba);
    weights_packed_ = wv.kind == ValueKind::kWeight && wv.constant.defined();
    VLART_CHECK(weights_packed_ || wv.dtype == xv.dtype, UnsupportedError, node_label(nd),
                ": a runtime weight must have the activation dtype ", dtype_name(xv.dtype), ", got ",
                dtype_name(wv.dtype));
    const dnnl::memory::desc w_md =
        weights_packed_ ? dnnl::memory::desc(w_dims, xdt, tag::any) : w_user_md;

    bias_.init(g, nd, 2, {1, n}, ctx);
    const dnnl::primitive_attr attr = make_dnnl_attr(nd.attrs.act);
    dnnl::matmul::primitive_desc pd;
    try {
      pd = bias_.present ? dnnl::matmul::primitive_desc(dnnl::matmul::desc(src_md, w_md, bias_.desc(), dst_md), attr,
                                                        ctx.engine)
                         : dnnl::matmul::primitive_desc(dnnl::matmul::desc(src_md, w_md, dst_md), attr, ctx.engine);
    } catch (const dnnl::error& e) {
      throw BackendError(detail::concat(node_label(nd), ": oneDNN matmul ", m, "x", k, "x", n, " (",
                                        dtype_name(xv.dtype), "): ", e.what()));
    }
    call_.stream = ctx.stream;
    call_.prim = dnnl::matmul(pd);
    src_ = dnnl::memory(src_md, ctx.engine, nullptr);
    dst_ = dnnl::memory(dst_md, ctx.engine, nullptr);
    if (weights_packed_)
      weights_ = reorder_weights(wv.constant, w_user_md, pd.weights_desc(), ctx);
    else
      weights_ = dnnl::memory(w_user_md, ctx.engine, nullptr);
    call_.args = {{DNNL_ARG_SRC, src_}, {DNNL_ARG_WEIGHTS, weights_}, {DNNL_ARG_DST, dst_}};
    if (bias_.present) call_.args[DNNL_ARG_BIAS] = bias_.mem;
    call_.init_scratchpad(pd, ctx.engine);
    bias_scratch_offset_ = align_up(call_.scratchpad_bytes, 64);
  }

  size_t scratch_bytes() const override {
    return bias_.scratch_bytes() ? bias_scratch_offset_ + bias_.scratch_bytes() : call_.scratchpad_bytes;
  }

  // A constant weight lives on in its reordered copy only.
  bool owns_input(int i) const override { return i == 1 && weights_packed_; }

  void run(const KernelArgs& a) override {
    src_.set_data_handle(a.inputs[0]->raw());
    if (!weights_packed_) weights_.set_data_handle(a.inputs[1]->raw());
    if (bias_.present) bias_.bind(a.inputs[2], static_cast<char*>(a.scratch) + bias_scratch_offset_);
    dst_.set_data_handle(a.output->raw());
    call_.execute(a.scratch);
  }

 private:
  DnnlCall call_;
  BiasBinding bias_;
  dnnl::memory src_, weights_, dst_;
  bool weights_packed_ = false;
  size_t bias_scratch_offset_ = 0;
};

class NoopKernel final : public OpKernel {
 public:
  void run(const KernelArgs&) override {}
};

}  // namespace

std::unique_ptr<OpKernel> create_cpu_linear(const Graph& g, const Node& n, CpuContext& ctx) {
  const Value& xv = g.value(n.inputs[0]);
  const Value& wv = g.value(n.inputs[1]);
  VLART_CHECK(is_f32_or_bf16(xv.dtype) && is_f32_or_bf16(wv.dtype), UnsupportedError, node_label(n),
              ": cpu Linear takes f32/bf16 activations and weights, got x ", dtype_name(xv.dtype), " and W ",
              dtype_name(wv.dtype));
  const int64_t k = wv.shape[1];
  const int64_t nout = wv.shape[0];
  const int64_t m = k > 0 ? xv.shape.numel() / k : 0;
  if (m == 0 || nout == 0) return std::make_unique<NoopKernel>();
  const bool has_bias = n.inputs.size() > 2 && n.inputs[2] != kNoValue;
  if (m <= kLinearGemvMaxRows)
    return std::make_unique<LinearGemvKernel>(m, k, nout, xv.dtype, wv, has_bias, n.attrs.act, ctx.threads);
  return std::make_unique<LinearOneDnnKernel>(g, n, m, k, nout, ctx);
}

}  // namespace vlart
