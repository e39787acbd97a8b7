// Linear on the GPU through cuBLASLt: y[M,N] = act(x[M,K] W[N,K]^T + b).
//
// Row-major y = x W^T is, in cuBLASLt's column-major terms, y^T[N,M] = W[K,N]^T x^T[K,M]:
// A = W (op T, K x N, ld K), B = x (op N, K x M, ld K), C = D = y (N x M, ld N). The bias then runs
// along D's rows, which is what CUBLASLT_EPILOGUE_BIAS broadcasts.
// Everything except the cublasLtMatmul call is built at prepare: the weight (converted to the
// activation dtype and uploaded once), bias, descriptors, layouts, the algorithm and workspace.
// Activations cuBLASLt cannot fuse (erf GELU, SiLU) run as one elementwise pass over y afterwards.
#include <string>

#include "backends/cuda/cuda_backend.h"
#include "backends/cuda/cuda_check.h"
#include "core/alloc_guard.h"
#include "vlart/error.h"

namespace vlart::cuda {
namespace {

class LinearKernel final : public OpKernel {
 public:
  LinearKernel(const CudaContextPtr& ctx, const Node& n) : ctx_(ctx), where_(node_label(n)) {}

  // Separate from the constructor so that the destructor releases whatever was created when a
  // later step throws.
  void init(const Graph& g, const Node& n) {
    const CudaContextPtr& ctx = ctx_;
    const Value& xv = g.value(n.inputs[0]);
    const Value& wv = g.value(n.inputs[1]);
    dtype_ = xv.dtype;
    k_ = xv.shape.dim(-1);
    n_ = wv.shape[0];
    m_ = k_ > 0 ? xv.shape.numel() / k_ : 0;
    dev_ = Device::cuda(ctx->device);

    w_ = upload_constant(*ctx, wv.constant, dtype_, where_ + " weight");
    const bool has_bias = n.inputs.size() > 2 && n.inputs[2] != kNoValue;
    if (has_bias) bias_ = upload_constant(*ctx, g.value(n.inputs[2]).constant, dtype_, where_ + " bias");
    if (m_ == 0 || n_ == 0) return;  // nothing to compute; run() is a no-op
    // K == 0 is a valid empty reduction (y = act(b)); cuBLASLt rejects it, so it is not supported.

    workspace_ = ctx->lt_workspace();
    const cudaDataType_t dt = dtype_ == DType::kF32 ? CUDA_R_32F : CUDA_R_16BF;
    const cublasComputeType_t compute =
        dtype_ == DType::kF32 && ctx->allow_tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
    const char* w = where_.c_str();
    VLART_CUBLAS_CHECK(cublasLtMatmulDescCreate(&desc_, compute, CUDA_R_32F), w);
    const cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    VLART_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc_, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof(ta)), w);
    VLART_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc_, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof(tb)), w);
    VLART_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&a_, dt, static_cast<uint64_t>(k_), static_cast<uint64_t>(n_), k_), w);
    VLART_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&b_, dt, static_cast<uint64_t>(k_), static_cast<uint64_t>(m_), k_), w);
    VLART_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&c_, dt, static_cast<uint64_t>(n_), static_cast<uint64_t>(m_), n_), w);
    if (has_bias) {
      const void* bp = bias_.get();
      VLART_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc_, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bp, sizeof(bp)), w);
    }
    VLART_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref_), w);
    const uint64_t ws = workspace_->size();
    VLART_CUBLAS_CHECK(
        cublasLtMatmulPreferenceSetAttribute(pref_, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws)), w);
    // The executor's arena may hand out activations aligned to less than cuBLASLt's default
    // assumption of 256 bytes; ask only for 16 and check that in run().
    const uint32_t align = kAlign;
    for (auto attr : {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
                      CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES})
      VLART_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref_, attr, &align, sizeof(align)), w);

    // Prefer the fused epilogue; if cuBLASLt has no algorithm for it, fuse only the bias (or
    // nothing) and apply the activation in a separate pass.
    const Activation act = n.attrs.act;
    // cuBLASLt documents its GELU epilogue only as "approximated by tanh", not its accuracy (fast
    // tanh approximations are ~1e-3 relative): fine below bf16/TF32 resolution, but plain f32
    // applies GELU in vlart's own kernel to keep f32 accuracy.
    const bool low_precision = dtype_ == DType::kBF16 || compute == CUBLAS_COMPUTE_32F_FAST_TF32;
    const bool fusable = act == Activation::kNone || act == Activation::kRelu ||
                         (act == Activation::kGeluTanh && low_precision);
    if (!(fusable && pick_algo(fused_epilogue(act, has_bias)))) {
      VLART_CHECK(pick_algo(has_bias ? CUBLASLT_EPILOGUE_BIAS : CUBLASLT_EPILOGUE_DEFAULT), BackendError, where_,
                  ": cuBLASLt found no algorithm for ", dtype_name(dtype_), " M=", m_, " N=", n_, " K=", k_);
      post_act_ = act != Activation::kNone;
      switch (act) {
        case Activation::kRelu: post_op_ = UnaryOp::kRelu; break;
        case Activation::kGeluErf: post_op_ = UnaryOp::kGeluErf; break;
        case Activation::kGeluTanh: post_op_ = UnaryOp::kGeluTanh; break;
        case Activation::kSilu: post_op_ = UnaryOp::kSilu; break;
        case Activation::kNone: break;
      }
    }
  }

  ~LinearKernel() override {
    if (pref_) cublasLtMatmulPreferenceDestroy(pref_);
    if (c_) cublasLtMatrixLayoutDestroy(c_);
    if (b_) cublasLtMatrixLayoutDestroy(b_);
    if (a_) cublasLtMatrixLayoutDestroy(a_);
    if (desc_) cublasLtMatmulDescDestroy(desc_);
    // w_/bias_ return to the allocator: freed blocks are only reused by later work on the stream.
  }

  // Weights (and bias) were converted and uploaded at prepare; the executor need not place them.
  bool owns_input(int i) const override { return i == 1 || i == 2; }

  void run(const KernelArgs& args) override {
    VLART_CHECK(args.num_inputs >= 1 && args.inputs, InvalidArgument, where_, ": no inputs");
    const Tensor* x = args.inputs[0];
    check_arg(x, dev_, dtype_, m_ * k_, where_, "input x");
    check_arg(args.output, dev_, dtype_, m_ * n_, where_, "output");
    if (m_ == 0 || n_ == 0) return;
    VLART_CHECK(reinterpret_cast<uintptr_t>(x->raw()) % kAlign == 0 &&
                    reinterpret_cast<uintptr_t>(args.output->raw()) % kAlign == 0,
                InvalidArgument, where_, ": x and y must be ", kAlign, "-byte aligned");
    void* y = args.output->raw();
    cublasStatus_t s;
    {
      // cuBLASLt is a library call vlart cannot avoid: anything it allocates is counted as exempt.
      alloc_guard::ExemptScope exempt;
      s = cublasLtMatmul(ctx_->lt, desc_, &alpha_, w_.get(), a_, x->raw(), b_, &beta_, y, c_, y, c_, &algo_,
                         workspace_->get(), workspace_->size(), ctx_->stream);
    }
    check_cublas(s, "cublasLtMatmul", where_.c_str());
    if (post_act_)
      VLART_CUDA_CHECK(launch_unary(post_op_, elem_type(dtype_), y, y, m_ * n_, 1.f, 0.f, ctx_->stream),
                       where_.c_str());
  }

 private:
  static constexpr uint32_t kAlign = 16;

  static cublasLtEpilogue_t fused_epilogue(Activation act, bool bias) {
    switch (act) {
      case Activation::kRelu: return bias ? CUBLASLT_EPILOGUE_RELU_BIAS : CUBLASLT_EPILOGUE_RELU;
      case Activation::kGeluTanh: return bias ? CUBLASLT_EPILOGUE_GELU_BIAS : CUBLASLT_EPILOGUE_GELU;  // tanh form
      default: return bias ? CUBLASLT_EPILOGUE_BIAS : CUBLASLT_EPILOGUE_DEFAULT;
    }
  }

  // Sets the epilogue and asks the heuristic for the best algorithm; false if there is none.
  bool pick_algo(cublasLtEpilogue_t epi) {
    VLART_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc_, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof(epi)),
                       where_.c_str());
    cublasLtMatmulHeuristicResult_t res{};
    int found = 0;
    const cublasStatus_t s =
        cublasLtMatmulAlgoGetHeuristic(ctx_->lt, desc_, a_, b_, c_, c_, pref_, 1, &res, &found);
    if (s == CUBLAS_STATUS_NOT_SUPPORTED || (s == CUBLAS_STATUS_SUCCESS && found == 0)) return false;
    VLART_CUBLAS_CHECK(s, where_.c_str());
    if (res.state != CUBLAS_STATUS_SUCCESS) return false;
    algo_ = res.algo;
    return true;
  }

  CudaContextPtr ctx_;
  std::string where_;
  Device dev_;
  DType dtype_ = DType::kF32;
  int64_t m_ = 0, n_ = 0, k_ = 0;
  DeviceBuffer w_, bias_;
  std::shared_ptr<DeviceBuffer> workspace_;
  cublasLtMatmulDesc_t desc_ = nullptr;
  cublasLtMatrixLayout_t a_ = nullptr, b_ = nullptr, c_ = nullptr;
  cublasLtMatmulPreference_t pref_ = nullptr;
  cublasLtMatmulAlgo_t algo_{};
  bool post_act_ = false;
  UnaryOp post_op_ = UnaryOp::kRelu;
  const float alpha_ = 1.f, beta_ = 0.f;
};

bool linear_supports(const Graph& g, const Node& n) {
  if (n.inputs.size() < 2 || !is_act_dtype(g.value(n.inputs[0]).dtype)) return false;
  if (!is_host_weight(g, n, 1)) return false;  // uploaded once at prepare
  const DType wd = g.value(n.inputs[1]).dtype;
  if (!dtype_traits(wd).is_float && !is_quantized(wd)) return false;  // converted on the host at prepare
  if (n.inputs.size() > 2 && n.inputs[2] != kNoValue) {
    if (!is_host_weight(g, n, 2) || !dtype_traits(g.value(n.inputs[2]).dtype).is_float) return false;
  }
  return g.value(n.inputs[0]).shape.dim(-1) > 0;
}

std::unique_ptr<OpKernel> linear_create(const Graph& g, const Node& n, const CudaContextPtr& ctx) {
  auto k = std::make_unique<LinearKernel>(ctx, n);
  k->init(g, n);
  return k;
}

}  // namespace

void register_cuda_linear(CudaKernelTable& t) { set_entry(t, OpKind::kLinear, linear_supports, linear_create); }

}  // namespace vlart::cuda
