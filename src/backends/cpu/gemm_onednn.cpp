#include "backends/cpu/gemm_onednn.h"

#include "core/alloc_guard.h"
#include "cpu/elementwise.h"
#include "vlart/error.h"

namespace vlart {

dnnl::memory::data_type to_dnnl(DType d) {
  switch (d) {
    case DType::kF32: return dnnl::memory::data_type::f32;
    case DType::kBF16: return dnnl::memory::data_type::bf16;
    default: break;
  }
  throw UnsupportedError(detail::concat("cpu gemm: dtype ", dtype_name(d), " is not supported (f32/bf16 only)"));
}

bool onednn_bf16_supported() {
  static const bool ok = [] {
    try {
      const dnnl::engine eng(dnnl::engine::kind::cpu, 0);
      using dt = dnnl::memory::data_type;
      const dnnl::memory::desc md({16, 16}, dt::bf16, dnnl::memory::format_tag::ab);
      dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(md, md, md), eng);
      (void)pd;
      return true;
    } catch (const dnnl::error&) {
      return false;
    }
  }();
  return ok;
}

size_t BF16Bridge::reserve(size_t* bytes, int64_t elems) {
  const size_t off = align_up(*bytes, 64);
  *bytes = off + static_cast<size_t>(elems) * sizeof(float);
  return off;
}

void BF16Bridge::widen(const void* bf16, int64_t n, float* dst, int threads) {
  kernels::cast(bf16, DType::kBF16, dst, DType::kF32, n, threads);
}

void BF16Bridge::narrow(const float* src, int64_t n, void* bf16, int threads) {
  kernels::cast(src, DType::kF32, bf16, DType::kBF16, n, threads);
}

std::string node_label(const Node& n) { return "node '" + n.name + "' (" + op_name(n.op) + ")"; }

dnnl::primitive_attr make_dnnl_attr(Activation act) {
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  if (act != Activation::kNone) {
    dnnl::algorithm alg = dnnl::algorithm::eltwise_relu;
    float alpha = 0.f;
    switch (act) {
      case Activation::kRelu: alg = dnnl::algorithm::eltwise_relu; break;
      case Activation::kGeluErf: alg = dnnl::algorithm::eltwise_gelu_erf; break;
      case Activation::kGeluTanh: alg = dnnl::algorithm::eltwise_gelu_tanh; break;
      case Activation::kSilu:  // silu(x) = x * sigmoid(1 * x) = swish with alpha 1
        alg = dnnl::algorithm::eltwise_swish;
        alpha = 1.f;
        break;
      case Activation::kNone: break;
    }
    dnnl::post_ops po;
    po.append_eltwise(1.f, alg, alpha, 0.f);
    attr.set_post_ops(po);
  }
  return attr;
}

dnnl::memory reorder_weights(const Tensor& w, const dnnl::memory::desc& user_md,
                             const dnnl::memory::desc& packed_md, CpuContext& ctx) {
  const std::string key = "dnnl|" + source_key(w) + desc_key(user_md) + desc_key(packed_md);
  return ctx.packed
      ->get(key, {w},
            [&] {
              Tensor wc = w.contiguous();
              dnnl::memory user(user_md, ctx.engine, wc.raw());
              PackedWeight p;
              p.mem = dnnl::memory(packed_md, ctx.engine);  // allocated and owned by oneDNN
              dnnl::reorder(user, p.mem).execute(ctx.stream, user, p.mem);
              ctx.stream.wait();
              p.nbytes = packed_md.get_size();
              return p;
            })
      ->mem;
}

void DnnlCall::init_scratchpad(const dnnl::primitive_desc& pd, const dnnl::engine& eng) {
  const dnnl::memory::desc md = pd.scratchpad_desc();
  scratchpad_bytes = md.get_size();
  if (scratchpad_bytes > 0) {
    scratchpad = dnnl::memory(md, eng, nullptr);
    args[DNNL_ARG_SCRATCHPAD] = scratchpad;
  }
}

void DnnlCall::execute(void* scratch) {
  if (scratchpad_bytes > 0) scratchpad.set_data_handle(scratch);
  // oneDNN copies `args` into an internal map on every execute: documented as exempt.
  alloc_guard::ExemptScope exempt;
  prim.execute(stream, args);
  stream.wait();
}

void BiasBinding::init(const Graph& g, const Node& nd, int input_index, const dnnl::memory::dims& dims,
                       CpuContext& ctx) {
  present = static_cast<int>(nd.inputs.size()) > input_index && nd.inputs[static_cast<size_t>(input_index)] != kNoValue;
  if (!present) return;
  const Value& v = g.value(nd.inputs[static_cast<size_t>(input_index)]);
  n = v.shape.numel();
  const dnnl::memory::desc md(dims, dnnl::memory::data_type::f32,
                              dims.size() == 1 ? dnnl::memory::format_tag::a : dnnl::memory::format_tag::ab);
  if (v.kind == ValueKind::kWeight && v.constant.defined()) {
    mem = dnnl::memory(md, ctx.engine);
    float* dst = static_cast<float*>(mem.get_data_handle());
    Tensor c = v.constant.contiguous();
    for (int64_t i = 0; i < n; ++i) dst[i] = load_f(c.raw(), c.dtype(), i);
    return;
  }
  runtime = true;
  runtime_bf16 = v.dtype == DType::kBF16;
  mem = dnnl::memory(md, ctx.engine, nullptr);
}

void BiasBinding::bind(const Tensor* in, void* scratch) {
  if (!present || !runtime) return;
  if (!runtime_bf16) {
    mem.set_data_handle(in->raw());
    return;
  }
  float* dst = static_cast<float*>(scratch);
  const auto* src = in->data<uint16_t>();
  for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_f32(src[i]);
  mem.set_data_handle(dst);
}

}  // namespace vlart
