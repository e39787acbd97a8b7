// Conv2d on the CPU: oneDNN convolution forward (inference), NCHW activations, weights reordered
// once at create time into the primitive's layout (and to the activation dtype), bias fused.
#include "backends/cpu/gemm_onednn.h"
#include "vlart/error.h"

namespace vlart {
namespace {

using tag = dnnl::memory::format_tag;

class Conv2dKernel final : public OpKernel {
 public:
  Conv2dKernel(const Graph& g, const Node& nd, CpuContext& ctx) {
    const Value& xv = g.value(nd.inputs[0]);
    const Value& wv = g.value(nd.inputs[1]);
    const Value& ov = g.value(nd.output);
    // bf16 activations where oneDNN has no bf16 convolution: an f32 primitive between conversions.
    const DType cdt = onednn_compute_dtype(xv.dtype);
    bridge_ = cdt != xv.dtype;
    const auto dt = to_dnnl(cdt);
    const int64_t B = xv.shape[0], C = xv.shape[1], H = xv.shape[2], W = xv.shape[3];
    const int64_t O = wv.shape[0], KH = wv.shape[2], KW = wv.shape[3];
    const int64_t OH = ov.shape[2], OW = ov.shape[3];
    const int64_t sh = nd.attrs.stride[0], sw = nd.attrs.stride[1];
    const int64_t ph = nd.attrs.pad[0], pw = nd.attrs.pad[1];
    // Right/bottom padding that makes oneDNN's output size equal the floor formula; negative when
    // trailing input rows/cols are never reached by a window (oneDNN accepts that).
    const int64_t ph_r = (OH - 1) * sh + KH - H - ph;
    const int64_t pw_r = (OW - 1) * sw + KW - W - pw;

    const dnnl::memory::desc x_md({B, C, H, W}, dt, tag::nchw);
    const dnnl::memory::desc o_md({B, O, OH, OW}, dt, tag::nchw);
    const dnnl::memory::desc w_user_md({O, C, KH, KW}, to_dnnl(wv.dtype), tag::oihw);
    packed_ = wv.kind == ValueKind::kWeight && wv.constant.defined();
    VLART_CHECK(packed_ || (wv.dtype == xv.dtype && !bridge_), UnsupportedError, node_label(nd),
                ": a runtime conv weight must have the activation dtype",
                bridge_ ? " and cannot be bf16 on this CPU (oneDNN has no bf16 convolution here)" : "");
    const dnnl::memory::desc w_md = packed_ ? dnnl::memory::desc({O, C, KH, KW}, dt, tag::any) : w_user_md;
    bias_.init(g, nd, 2, {O}, ctx);

    dnnl::convolution_forward::primitive_desc pd;
    try {
      const dnnl::memory::dims strides{sh, sw}, pl{ph, pw}, pr{ph_r, pw_r};
      const auto prop = dnnl::prop_kind::forward_inference;
      const auto alg = dnnl::algorithm::convolution_direct;
      auto d = bias_.present
                   ? dnnl::convolution_forward::desc(prop, alg, x_md, w_md, bias_.desc(), o_md, strides, pl, pr)
                   : dnnl::convolution_forward::desc(prop, alg, x_md, w_md, o_md, strides, pl, pr);
      pd = dnnl::convolution_forward::primitive_desc(d, make_dnnl_attr(Activation::kNone), ctx.engine);
    } catch (const dnnl::error& e) {
      throw BackendError(detail::concat(node_label(nd), ": oneDNN convolution x ", xv.shape.str(), " w ",
                                        wv.shape.str(), ": ", e.what()));
    }
    call_.stream = ctx.stream;
    call_.prim = dnnl::convolution_forward(pd);
    x_ = dnnl::memory(x_md, ctx.engine, nullptr);
    o_ = dnnl::memory(o_md, ctx.engine, nullptr);
    w_ = packed_ ? reorder_weights(wv.constant, w_user_md, pd.weights_desc(), ctx)
                 : dnnl::memory(w_user_md, ctx.engine, nullptr);
    call_.args = {{DNNL_ARG_SRC, x_}, {DNNL_ARG_WEIGHTS, w_}, {DNNL_ARG_DST, o_}};
    if (bias_.present) call_.args[DNNL_ARG_BIAS] = bias_.mem;
    call_.init_scratchpad(pd, ctx.engine);
    scratch_total_ = call_.scratchpad_bytes;
    if (bias_.scratch_bytes()) {
      bias_offset_ = align_up(scratch_total_, 64);
      scratch_total_ = bias_offset_ + bias_.scratch_bytes();
    }
    if (bridge_) {
      x_elems_ = xv.shape.numel();
      o_elems_ = ov.shape.numel();
      x_off_ = BF16Bridge::reserve(&scratch_total_, x_elems_);
      o_off_ = BF16Bridge::reserve(&scratch_total_, o_elems_);
    }
    threads_ = ctx.threads;
  }

  size_t scratch_bytes() const override { return scratch_total_; }

  void run(const KernelArgs& a) override {
    char* s = static_cast<char*>(a.scratch);
    if (bridge_) {
      auto* xf = reinterpret_cast<float*>(s + x_off_);
      BF16Bridge::widen(a.inputs[0]->raw(), x_elems_, xf, threads_);
      x_.set_data_handle(xf);
      o_.set_data_handle(s + o_off_);
    } else {
      x_.set_data_handle(a.inputs[0]->raw());
      o_.set_data_handle(a.output->raw());
    }
    if (!packed_) w_.set_data_handle(a.inputs[1]->raw());
    if (bias_.present) bias_.bind(a.inputs[2], s + bias_offset_);
    call_.execute(a.scratch);
    if (bridge_)
      BF16Bridge::narrow(reinterpret_cast<const float*>(s + o_off_), o_elems_, a.output->raw(), threads_);
  }

 private:
  DnnlCall call_;
  BiasBinding bias_;
  dnnl::memory x_, w_, o_;
  bool packed_ = false;
  bool bridge_ = false;  // bf16 graph, f32 primitive
  int threads_ = 1;
  int64_t x_elems_ = 0, o_elems_ = 0;
  size_t bias_offset_ = 0, x_off_ = 0, o_off_ = 0, scratch_total_ = 0;
};

}  // namespace

std::unique_ptr<OpKernel> create_cpu_conv2d(const Graph& g, const Node& n, CpuContext& ctx) {
  return std::make_unique<Conv2dKernel>(g, n, ctx);
}

}  // namespace vlart
