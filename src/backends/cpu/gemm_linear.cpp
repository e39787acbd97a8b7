// Linear on the CPU: y = act(x W^T + b).
//
// M <= 16 rows: the hand-written multi-row GEMV (kernels/cpu/gemv.h) streams W once for all rows,
// from a panel-packed copy made at create time (AVX-512 CPUs; others read W in place). bf16 activations meet bf16 weights in vdpbf16ps where
// the CPU has it; otherwise they are widened to f32 rows in scratch.
// M > 16 rows: a oneDNN matmul with W reordered once into the layout the primitive prefers and
// bias/activation fused. When the weight dtype differs from the activation dtype, the reorder
// converts W to the activation dtype (f32 activations with bf16 weights therefore compute in f32
// on exact bf16 values: no accuracy is lost, at 4 bytes per packed weight).
#include <algorithm>
#include <cmath>
#include <vector>

#include <omp.h>

#include "backends/cpu/gemm_linear_s8.h"
#include "backends/cpu/gemm_onednn.h"
#include "cpu/gemv.h"
#include "cpu/qgemm.h"
#include "cpu/qgemm_s8.h"
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
                   CpuContext& ctx)
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
    p_.threads = ctx.threads;
    // A constant weight is also packed into 16-column panels for the AVX-512 paths (one
    // sequential stream per panel, no horizontal sums); the original stays for the others. One
    // packed copy per backend, shared by the kernels of every executor (ctx.packed).
    const GemvPack f = gemv_pack_format(x_bf16_, p_.w_bf16);
    if (f != GemvPack::kNone && w.kind == ValueKind::kWeight && w.constant.defined()) {
      const Tensor& src = w.constant;
      const std::string key = "gemv" + std::to_string(static_cast<int>(f)) + "|" + source_key(src);
      packed_ = ctx.packed
                    ->get(key, {src},
                          [&] {
                            PackedWeight pw;
                            pw.nbytes = gemv_packed_bytes(f, k, n);
                            pw.bytes = Tensor::empty(Shape{static_cast<int64_t>(pw.nbytes)}, DType::kU8);
                            gemv_pack(f, src.contiguous().raw(), p_.w_bf16, k, n, pw.bytes.raw());
                            return pw;
                          })
                    ->bytes;
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
  Tensor packed_;  // shared panels (64-byte aligned, read-only), or undefined
  bool x_bf16_;
  bool has_bias_;
};

class LinearOneDnnKernel final : public OpKernel {
 public:
  LinearOneDnnKernel(const Graph& g, const Node& nd, int64_t m, int64_t k, int64_t n, CpuContext& ctx)
      : m_(m), k_(k), n_(n), threads_(ctx.threads) {
    const Value& xv = g.value(nd.inputs[0]);
    const Value& wv = g.value(nd.inputs[1]);
    // bf16 activations where oneDNN has no bf16 matmul: an f32 primitive between conversions.
    const DType cdt = onednn_compute_dtype(xv.dtype);
    bridge_ = cdt != xv.dtype;
    const auto xdt = to_dnnl(cdt);
    const dnnl::memory::dims src_dims{m, k}, w_dims{k, n}, dst_dims{m, n};
    const dnnl::memory::desc src_md(src_dims, xdt, tag::ab);
    const dnnl::memory::desc dst_md(dst_dims, xdt, tag::ab);
    weights_packed_ = wv.kind == ValueKind::kWeight && wv.constant.defined();
    VLART_CHECK(weights_packed_ || wv.dtype == xv.dtype, UnsupportedError, node_label(nd),
                ": a runtime weight must have the activation dtype ", dtype_name(xv.dtype), ", got ",
                dtype_name(wv.dtype));
    // A bf16 runtime weight under the bridge is widened at each run like the activations.
    w_bridge_ = bridge_ && !weights_packed_;
    // W[N, K] row-major is the K x N matrix in column-major ("ba") order.
    const dnnl::memory::desc w_user_md(w_dims, w_bridge_ ? xdt : to_dnnl(wv.dtype), tag::ba);
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
    scratch_total_ = call_.scratchpad_bytes;
    if (bias_.scratch_bytes()) {
      bias_scratch_offset_ = align_up(scratch_total_, 64);
      scratch_total_ = bias_scratch_offset_ + bias_.scratch_bytes();
    }
    if (bridge_) {
      src_f32_offset_ = BF16Bridge::reserve(&scratch_total_, m * k);
      dst_f32_offset_ = BF16Bridge::reserve(&scratch_total_, m * n);
      if (w_bridge_) w_f32_offset_ = BF16Bridge::reserve(&scratch_total_, k * n);
    }
  }

  size_t scratch_bytes() const override { return scratch_total_; }

  // A constant weight lives on in its reordered copy only.
  bool owns_input(int i) const override { return i == 1 && weights_packed_; }

  void run(const KernelArgs& a) override {
    char* scratch = static_cast<char*>(a.scratch);
    if (bridge_) {
      auto* xs = reinterpret_cast<float*>(scratch + src_f32_offset_);
      BF16Bridge::widen(a.inputs[0]->raw(), m_ * k_, xs, threads_);
      src_.set_data_handle(xs);
      dst_.set_data_handle(scratch + dst_f32_offset_);
    } else {
      src_.set_data_handle(a.inputs[0]->raw());
      dst_.set_data_handle(a.output->raw());
    }
    if (w_bridge_) {
      auto* wf = reinterpret_cast<float*>(scratch + w_f32_offset_);
      BF16Bridge::widen(a.inputs[1]->raw(), k_ * n_, wf, threads_);
      weights_.set_data_handle(wf);
    } else if (!weights_packed_) {
      weights_.set_data_handle(a.inputs[1]->raw());
    }
    if (bias_.present) bias_.bind(a.inputs[2], scratch + bias_scratch_offset_);
    call_.execute(a.scratch);
    if (bridge_)
      BF16Bridge::narrow(reinterpret_cast<const float*>(scratch + dst_f32_offset_), m_ * n_, a.output->raw(), threads_);
  }

 private:
  DnnlCall call_;
  BiasBinding bias_;
  dnnl::memory src_, weights_, dst_;
  int64_t m_, k_, n_;
  int threads_;
  bool weights_packed_ = false;
  bool bridge_ = false;    // bf16 graph, f32 primitive
  bool w_bridge_ = false;  // ... with a runtime (bf16) weight widened per run
  size_t bias_scratch_offset_ = 0, src_f32_offset_ = 0, dst_f32_offset_ = 0, w_f32_offset_ = 0, scratch_total_ = 0;
};

// Linear with a quantized weight (int8 or int4, weight-only): qgemm dequantizes in registers for
// every M (kernels/cpu/qgemm.h). Also W8A8 weights at M <= 16, where the product is memory-bound
// and reading int8 weights with float activations is both faster and more accurate.
class QuantLinearKernel final : public OpKernel {
 public:
  QuantLinearKernel(int64_t m, const QuantWeight& q, DType x_dt, bool has_bias, Activation act, CpuContext& ctx)
      : has_bias_(has_bias) {
    const bool int4 = q.kind == QuantWeight::Kind::kInt4;
    const bool in_scaled = q.input_scales.defined();
    L_ = qgemm_layout(int4 ? QWeightKind::kInt4 : QWeightKind::kInt8, q.n, q.k, q.group, in_scaled);
    packed_ = ctx.packed->get(quant_weight_key("qgemm" + std::to_string(q.group), q), quant_weight_sources(q), [&] {
      PackedWeight pw;
      pw.nbytes = L_.total_bytes;
      pw.bytes = Tensor::empty(Shape{static_cast<int64_t>(L_.total_bytes)}, DType::kU8);
      const std::vector<float> s = q.scales_f32();
      const std::vector<float> in = in_scaled ? q.input_scales.to_float_vector() : std::vector<float>();
      const float* inp = in_scaled ? in.data() : nullptr;
      if (int4)
        qgemm_pack_int4(L_, q.qweight.data<uint8_t>(), s.data(), q.offsets_f32().data(), pw.bytes.raw(), inp);
      else
        qgemm_pack_int8(L_, q.qweight.data<int8_t>(), s.data(), pw.bytes.raw(), inp);
      return pw;
    })->bytes;
    p_.m = m;
    p_.ldx = q.k;
    p_.ldy = q.n;
    p_.x_bf16 = p_.y_bf16 = x_dt == DType::kBF16;
    p_.act = to_gemv_act(act);
    p_.threads = ctx.threads;
  }

  size_t scratch_bytes() const override { return static_cast<size_t>(qgemm_work_floats(L_, p_.m)) * sizeof(float); }
  bool owns_input(int i) const override { return i == 1; }

  void run(const KernelArgs& a) override {
    QGemmProblem p = p_;
    p.x = a.inputs[0]->raw();
    if (has_bias_ && a.num_inputs > 2 && a.inputs[2]) {
      p.bias = a.inputs[2]->raw();
      p.bias_bf16 = a.inputs[2]->dtype() == DType::kBF16;
    }
    p.y = a.output->raw();
    p.work = static_cast<float*>(a.scratch);
    qgemm(L_, packed_.raw(), p);
  }

 private:
  QPackedLayout L_;
  Tensor packed_;
  QGemmProblem p_;
  bool has_bias_;
};

// W8A8 Linear for M > 16: activations quantized to int8 per row at run time (symmetric,
// scale = max|x_row| / 127) and stored offset by 128 as u8, a u8 x s8 oneDNN matmul (VNNI / AMX where
// the CPU has them; the u8 source is VNNI's native operand, measured 1.1-1.3x faster than s8 x s8
// on oneDNN 2.6, which shifts s8 sources itself) with the per-output-channel weight scales as output
// scales, then y = act(acc * row_scale + bias). The offset adds 128 * colsum(W[n, :]) to every
// accumulator; a bias of -128 * colsum inside the oneDNN call removes it before the scales.
class W8A8LinearKernel final : public OpKernel {
 public:
  W8A8LinearKernel(const Node& nd, int64_t m, const QuantWeight& q, DType x_dt, bool has_bias, Activation act,
                   CpuContext& ctx)
      : m_(m), k_(q.k), n_(q.n), x_bf16_(x_dt == DType::kBF16), has_bias_(has_bias), act_(to_gemv_act(act)),
        threads_(ctx.threads), static_scale_(q.act_scale) {
    using dt = dnnl::memory::data_type;
    std::vector<float> scales = q.scales_f32();
    // A static (calibrated) activation scale is the same for every row, so the whole epilogue runs
    // inside oneDNN: output scales act_scale * w_scale[n], bias (oneDNN v2 applies it before the
    // scales, so it is passed divided by them) and the activation as a post-op. Needs f32 output and
    // no zero weight scale (a zero row could not carry its bias through the division).
    fused_ = static_scale_ > 0.f && !x_bf16_ &&
             std::all_of(scales.begin(), scales.end(), [](float v) { return v != 0.f && std::isfinite(v); });
    // -128 * sum_k W[n, k]: exact in f32 (|sum| <= 127 * k < 2^24 / 128 for k < 1032; above, the
    // rounding is below 2^-24 of the offset accumulator, far under the int8 activation error).
    comp_.resize(static_cast<size_t>(n_));
    const int8_t* w = q.qweight.data<int8_t>();
    for (int64_t r = 0; r < n_; ++r) {
      int64_t sum = 0;
      for (int64_t c = 0; c < k_; ++c) sum += w[r * k_ + c];
      comp_[static_cast<size_t>(r)] = -128.f * static_cast<float>(sum);
    }
    const dnnl::memory::desc src_md({m, k_}, dt::u8, tag::ab);
    const dnnl::memory::desc dst_md({m, n_}, dt::f32, tag::ab);
    const dnnl::memory::desc w_user_md({k_, n_}, dt::s8, tag::ba);
    const dnnl::memory::desc w_md({k_, n_}, dt::s8, tag::any);
    const dnnl::memory::desc b_md({1, n_}, dt::f32, tag::ab);
    dnnl::primitive_attr attr = make_dnnl_attr(fused_ ? act : Activation::kNone);
    if (fused_) {
      inv_scale_.resize(static_cast<size_t>(n_));
      for (size_t i = 0; i < scales.size(); ++i) {
        scales[i] *= static_scale_;
        inv_scale_[i] = 1.f / scales[i];
      }
    }
    attr.set_output_scales(1 << 1, scales);
    dnnl::matmul::primitive_desc pd;
    try {
      pd = dnnl::matmul::primitive_desc(dnnl::matmul::desc(src_md, w_md, b_md, dst_md), attr, ctx.engine);
    } catch (const dnnl::error& e) {
      throw BackendError(detail::concat(node_label(nd), ": oneDNN int8 matmul ", m, "x", k_, "x", n_, ": ", e.what()));
    }
    call_.stream = ctx.stream;
    call_.prim = dnnl::matmul(pd);
    src_ = dnnl::memory(src_md, ctx.engine, nullptr);
    dst_ = dnnl::memory(dst_md, ctx.engine, nullptr);
    bias_ = dnnl::memory(b_md, ctx.engine, comp_.data());
    weights_ = reorder_weights(q.qweight, w_user_md, pd.weights_desc(), ctx);
    call_.args = {{DNNL_ARG_SRC, src_}, {DNNL_ARG_WEIGHTS, weights_}, {DNNL_ARG_DST, dst_}, {DNNL_ARG_BIAS, bias_}};
    call_.init_scratchpad(pd, ctx.engine);
    q_off_ = align_up(call_.scratchpad_bytes, 64);
    rs_off_ = align_up(q_off_ + static_cast<size_t>(m * k_), 64);
    acc_off_ = align_up(rs_off_ + static_cast<size_t>(m) * sizeof(float), 64);
    bias_off_ = align_up(acc_off_ + (x_bf16_ ? static_cast<size_t>(m * n_) * sizeof(float) : 0), 64);
    total_ = bias_off_ + (fused_ && has_bias_ ? static_cast<size_t>(n_) * sizeof(float) : 0);
  }

  size_t scratch_bytes() const override { return total_; }
  bool owns_input(int i) const override { return i == 1; }

  void run(const KernelArgs& a) override {
    char* scratch = static_cast<char*>(a.scratch);
    auto* qx = reinterpret_cast<int8_t*>(scratch + q_off_);
    auto* rs = reinterpret_cast<float*>(scratch + rs_off_);
    // f32 output: the matmul writes into y and the epilogue rescales in place.
    float* acc = x_bf16_ ? reinterpret_cast<float*>(scratch + acc_off_) : static_cast<float*>(a.output->raw());
    quantize_rows_s8(a.inputs[0]->raw(), x_bf16_, m_, k_, k_, qx, rs, threads_, static_scale_, /*u8_offset=*/true);
    src_.set_data_handle(qx);
    dst_.set_data_handle(acc);
    const Tensor* b = has_bias_ && a.num_inputs > 2 ? a.inputs[2] : nullptr;
    if (fused_) {
      if (b) {
        auto* bs = reinterpret_cast<float*>(scratch + bias_off_);
        for (int64_t i = 0; i < n_; ++i)
          bs[i] = (b->dtype() == DType::kBF16 ? bf16_to_f32(static_cast<const uint16_t*>(b->raw())[i])
                                                : static_cast<const float*>(b->raw())[i]) *
                      inv_scale_[static_cast<size_t>(i)] +
                  comp_[static_cast<size_t>(i)];
        bias_.set_data_handle(bs);
      } else {
        bias_.set_data_handle(comp_.data());
      }
      call_.execute(scratch);
      return;
    }
    call_.execute(scratch);
    qgemm_row_scale_epilogue(acc, n_, rs, m_, n_, b ? b->raw() : nullptr, b && b->dtype() == DType::kBF16, act_,
                             a.output->raw(), n_, x_bf16_, threads_);
  }

 private:
  DnnlCall call_;
  dnnl::memory src_, weights_, dst_, bias_;
  int64_t m_, k_, n_;
  bool x_bf16_, has_bias_;
  GemvAct act_;
  int threads_;
  float static_scale_;  // calibrated activation scale, 0 = per token
  bool fused_ = false;  // static scale: scales, bias and activation inside the oneDNN call
  std::vector<float> inv_scale_;
  std::vector<float> comp_;  // -128 * column sums of W: the u8 offset's share of each accumulator
  size_t q_off_ = 0, rs_off_ = 0, acc_off_ = 0, bias_off_ = 0, total_ = 0;
};

class NoopKernel final : public OpKernel {
 public:
  void run(const KernelArgs&) override {}
};

}  // namespace

namespace {
// oneDNN's int8 matmul is exact (no vpmaddubsw saturation) only from VNNI up.
bool onednn_int8_exact() {
  const dnnl::cpu_isa isa = dnnl::get_effective_cpu_isa();
  return isa == dnnl::cpu_isa::avx512_core_vnni || isa == dnnl::cpu_isa::avx512_core_bf16 ||
         isa == dnnl::cpu_isa::avx512_core_amx || isa == dnnl::cpu_isa::avx2_vnni;
}
}  // namespace

bool w8a8_int8_compute_available() { return onednn_int8_exact() || w8a8_s8gemm_available(); }

std::string w8a8_path_name() {
  if (onednn_int8_exact()) return "oneDNN u8 x s8 int8 matmul";
  if (w8a8_s8gemm_available()) return std::string("vlart int8 GEMM (") + s8gemm_isa_name(s8gemm_best_isa()) + ")";
  return "int8 weight-only (no exact int8 product in oneDNN on this CPU)";
}

bool quantized_linear_supported(const QuantWeight& q) {
  if (q.input_scales.defined() && q.input_scales.numel() != q.k) return false;
  if (q.kind == QuantWeight::Kind::kInt8)
    return q.qweight.dtype() == DType::kI8 && q.qweight.numel() == q.n * q.k && q.scales.numel() == q.n;
  return q.k % 2 == 0 && q.group > 0 && q.group % 2 == 0 && q.qweight.dtype() == DType::kU8 &&
         q.qweight.numel() == q.n * (q.k / 2) && q.scales.numel() == q.n * q.groups() &&
         (q.symmetric || (q.zeros.defined() && q.zeros.numel() == q.n * q.groups()));
}

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
  if (wv.quant) {
    VLART_CHECK(quantized_linear_supported(*wv.quant), UnsupportedError, node_label(n),
                ": quantized weight layout not supported (int4 needs even k and group)");
    if (wv.quant->act_int8 && wv.quant->kind == QuantWeight::Kind::kInt8 && !wv.quant->input_scales.defined() &&
        m > kLinearGemvMaxRows) {
      if (onednn_int8_exact())
        return std::make_unique<W8A8LinearKernel>(n, m, *wv.quant, xv.dtype, has_bias, n.attrs.act, ctx);
      // No exact int8 matmul in oneDNN (AVX2 without VNNI): vlart's own int8 GEMM.
      if (auto k = make_w8a8_s8gemm_linear(m, *wv.quant, xv.dtype, has_bias, n.attrs.act, ctx)) return k;
    }
    return std::make_unique<QuantLinearKernel>(m, *wv.quant, xv.dtype, has_bias, n.attrs.act, ctx);
  }
  if (m <= kLinearGemvMaxRows)
    return std::make_unique<LinearGemvKernel>(m, k, nout, xv.dtype, wv, has_bias, n.attrs.act, ctx);
  return std::make_unique<LinearOneDnnKernel>(g, n, m, k, nout, ctx);
}

}  // namespace vlart
