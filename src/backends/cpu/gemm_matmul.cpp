// MatMul on the CPU: one oneDNN matmul over all batch dims. Both operands are runtime tensors in
// plain layout; batch broadcasting (a dim of 1 on either side) and b^T (attrs.transpose_b, b stored
// [..., N, K]) are expressed through the memory descriptors' dims and strides, so no copies.
#include "backends/cpu/gemm_onednn.h"
#include "vlart/error.h"

namespace vlart {
namespace {

using dims = dnnl::memory::dims;

dims contiguous_strides_of(const dims& d) {
  dims s(d.size());
  int64_t acc = 1;
  for (size_t i = d.size(); i-- > 0;) {
    s[i] = acc;
    acc *= d[i];
  }
  return s;
}

class MatMulKernel final : public OpKernel {
 public:
  MatMulKernel(const Graph& g, const Node& nd, CpuContext& ctx) {
    const Value& av = g.value(nd.inputs[0]);
    const Value& bv = g.value(nd.inputs[1]);
    const Value& ov = g.value(nd.output);
    VLART_CHECK(av.dtype == bv.dtype, UnsupportedError, node_label(nd), ": cpu MatMul needs equal operand dtypes, got ",
                dtype_name(av.dtype), " and ", dtype_name(bv.dtype));
    const int r = ov.shape.rank();
    const bool tb = nd.attrs.transpose_b;
    // Left-pad both operands with batch dims of 1 to the output rank.
    dims ad(static_cast<size_t>(r), 1), bd(static_cast<size_t>(r), 1), od(static_cast<size_t>(r));
    for (int i = 0; i < av.shape.rank(); ++i) ad[static_cast<size_t>(r - av.shape.rank() + i)] = av.shape[i];
    for (int i = 0; i < bv.shape.rank(); ++i) bd[static_cast<size_t>(r - bv.shape.rank() + i)] = bv.shape[i];
    for (int i = 0; i < r; ++i) od[static_cast<size_t>(i)] = ov.shape[i];
    const size_t rr = static_cast<size_t>(r);
    dims b_logical = bd;  // [..., K, N]
    dims b_strides = contiguous_strides_of(bd);
    if (tb) {
      // Storage is [..., N, K]: logical (k, n) lives at n*K + k.
      std::swap(b_logical[rr - 2], b_logical[rr - 1]);
      std::swap(b_strides[rr - 2], b_strides[rr - 1]);
    }
    // bf16 operands where oneDNN has no bf16 matmul: an f32 primitive between conversions.
    const DType cdt = onednn_compute_dtype(av.dtype);
    bridge_ = cdt != av.dtype;
    const auto dt = to_dnnl(cdt);
    const dnnl::memory::desc a_md(ad, dt, contiguous_strides_of(ad));
    const dnnl::memory::desc b_md(b_logical, dt, b_strides);
    const dnnl::memory::desc o_md(od, dt, contiguous_strides_of(od));
    dnnl::matmul::primitive_desc pd;
    try {
      pd = dnnl::matmul::primitive_desc(dnnl::matmul::desc(a_md, b_md, o_md), make_dnnl_attr(Activation::kNone),
                                        ctx.engine);
    } catch (const dnnl::error& e) {
      throw BackendError(detail::concat(node_label(nd), ": oneDNN matmul ", av.shape.str(), " x ", bv.shape.str(),
                                        tb ? "^T" : "", " (", dtype_name(av.dtype), "): ", e.what()));
    }
    call_.stream = ctx.stream;
    call_.prim = dnnl::matmul(pd);
    a_ = dnnl::memory(a_md, ctx.engine, nullptr);
    b_ = dnnl::memory(b_md, ctx.engine, nullptr);
    o_ = dnnl::memory(o_md, ctx.engine, nullptr);
    call_.args = {{DNNL_ARG_SRC, a_}, {DNNL_ARG_WEIGHTS, b_}, {DNNL_ARG_DST, o_}};
    call_.init_scratchpad(pd, ctx.engine);
    scratch_total_ = call_.scratchpad_bytes;
    if (bridge_) {
      a_elems_ = av.shape.numel();
      b_elems_ = bv.shape.numel();
      o_elems_ = ov.shape.numel();
      a_off_ = BF16Bridge::reserve(&scratch_total_, a_elems_);
      b_off_ = BF16Bridge::reserve(&scratch_total_, b_elems_);
      o_off_ = BF16Bridge::reserve(&scratch_total_, o_elems_);
    }
    threads_ = ctx.threads;
  }

  size_t scratch_bytes() const override { return scratch_total_; }

  void run(const KernelArgs& a) override {
    if (bridge_) {
      // Widening the contiguous storage keeps every stride the descriptors use.
      char* s = static_cast<char*>(a.scratch);
      auto* af = reinterpret_cast<float*>(s + a_off_);
      auto* bf = reinterpret_cast<float*>(s + b_off_);
      auto* of = reinterpret_cast<float*>(s + o_off_);
      BF16Bridge::widen(a.inputs[0]->raw(), a_elems_, af, threads_);
      BF16Bridge::widen(a.inputs[1]->raw(), b_elems_, bf, threads_);
      a_.set_data_handle(af);
      b_.set_data_handle(bf);
      o_.set_data_handle(of);
      call_.execute(a.scratch);
      BF16Bridge::narrow(of, o_elems_, a.output->raw(), threads_);
      return;
    }
    a_.set_data_handle(a.inputs[0]->raw());
    b_.set_data_handle(a.inputs[1]->raw());
    o_.set_data_handle(a.output->raw());
    call_.execute(a.scratch);
  }

 private:
  DnnlCall call_;
  dnnl::memory a_, b_, o_;
  bool bridge_ = false;  // bf16 graph, f32 primitive
  int threads_ = 1;
  int64_t a_elems_ = 0, b_elems_ = 0, o_elems_ = 0;
  size_t a_off_ = 0, b_off_ = 0, o_off_ = 0, scratch_total_ = 0;
};

}  // namespace

std::unique_ptr<OpKernel> create_cpu_matmul(const Graph& g, const Node& n, CpuContext& ctx) {
  return std::make_unique<MatMulKernel>(g, n, ctx);
}

}  // namespace vlart
