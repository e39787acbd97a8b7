// The CUDA backend: device selection, stream and library handles, copies, kernel dispatch.
#include "backends/cuda/cuda_backend.h"

#include <cstring>
#include <string>

#include "backends/cuda/cuda_check.h"
#include "vlart/error.h"

namespace vlart {
namespace cuda {

namespace {
// The function name of a stringified call, "cudaMalloc(&p, n)" -> "cudaMalloc".
std::string call_name(const char* call) {
  const char* paren = std::strchr(call, '(');
  return paren ? std::string(call, static_cast<size_t>(paren - call)) : std::string(call);
}
}  // namespace

void throw_cuda_error(const char* call, cudaError_t e, const char* where) {
  (void)cudaGetLastError();  // reset the (non-sticky) last error so later checks do not see it again
  throw BackendError(detail::concat(where, ": ", call_name(call), " failed: ", cudaGetErrorString(e), " (",
                                    cudaGetErrorName(e), ", ", static_cast<int>(e), ")"));
}

void throw_cublas_error(const char* call, cublasStatus_t s, const char* where) {
  throw BackendError(detail::concat(where, ": ", call_name(call), " failed: ", cublasGetStatusString(s), " (",
                                    cublasGetStatusName(s), ", ", static_cast<int>(s), ")"));
}

std::string node_label(const Node& n) { return detail::concat("node '", n.name, "' (", op_name(n.op), ")"); }

bool is_host_weight(const Graph& g, const Node& n, size_t i) {
  if (i >= n.inputs.size() || n.inputs[i] == kNoValue) return false;
  const Value& v = g.value(n.inputs[i]);
  return v.kind == ValueKind::kWeight && v.constant.defined() && v.constant.device().is_cpu();
}

DeviceBuffer upload_constant(const CudaContext& ctx, const Tensor& host, DType dtype, const std::string& where) {
  VLART_CHECK(host.defined() && host.device().is_cpu(), InvalidArgument, where, ": weight must be a CPU tensor, got ",
              host.defined() ? host.str() : std::string("an undefined tensor"));
  const Tensor conv = host.dtype() == dtype ? host.contiguous() : host.to(dtype);
  DeviceBuffer buf(ctx.alloc, conv.nbytes());
  if (conv.nbytes() > 0) {
    VLART_CUDA_CHECK(cudaMemcpyAsync(buf.get(), conv.raw(), conv.nbytes(), cudaMemcpyHostToDevice, ctx.stream),
                     where.c_str());
    // `conv` may be a temporary: wait until the copy has read it.
    VLART_CUDA_CHECK(cudaStreamSynchronize(ctx.stream), where.c_str());
  }
  return buf;
}

void check_arg(const Tensor* t, Device dev, DType dtype, int64_t numel, const std::string& where, const char* what) {
  if (t && t->defined() && t->device() == dev && t->dtype() == dtype && t->numel() == numel && t->is_contiguous())
    return;
  if (!t || !t->defined()) throw InvalidArgument(detail::concat(where, ": ", what, " is missing"));
  throw InvalidArgument(detail::concat(where, ": ", what, " must be a contiguous ", dtype_name(dtype), " tensor of ",
                                       numel, " elements on ", dev.str(), ", got ", t->str(),
                                       t->is_contiguous() ? "" : " (non-contiguous)"));
}

std::shared_ptr<DeviceBuffer> CudaContext::lt_workspace() {
  if (!lt_workspace_) lt_workspace_ = std::make_shared<DeviceBuffer>(alloc, kLtWorkspaceBytes);
  return lt_workspace_;
}

CudaContext::~CudaContext() {
  // Best effort, no throwing from a destructor: finish queued work, then release the handles.
  if (stream) (void)cudaStreamSynchronize(stream);
  lt_workspace_.reset();
  if (lt) (void)cublasLtDestroy(lt);
  if (blas) (void)cublasDestroy(blas);
  if (stream) (void)cudaStreamDestroy(stream);
}

// ---------------- backend ----------------
CudaBackend::CudaBackend(CudaContextPtr ctx) : ctx_(std::move(ctx)) {
  register_cuda_linear(table_);
  register_cuda_norm(table_);
  register_cuda_elementwise(table_);
}

CudaBackend::~CudaBackend() {
  (void)cudaStreamSynchronize(ctx_->stream);
  // Kernels may still hold the context (and their buffers); only free blocks nobody uses.
  ctx_->alloc->empty_cache();
}

bool CudaBackend::supports(const Graph& g, const Node& n) const {
  if (n.op == OpKind::kReshape) return true;  // alias, executed by nobody
  // No quantized-weight kernels on the GPU yet: such Linear nodes stay on the CPU.
  for (ValueId v : n.inputs)
    if (v != kNoValue && g.value(v).quant) return false;
  const auto& e = table_[static_cast<size_t>(n.op)];
  return e.supports && e.create && e.supports(g, n);
}

std::unique_ptr<OpKernel> CudaBackend::prepare(const Graph& g, const Node& n) {
  const auto& e = table_[static_cast<size_t>(n.op)];
  if (!e.create || !e.supports || !e.supports(g, n))
    throw UnsupportedError(detail::concat("cuda backend cannot run ", node_label(n),
                                          e.create ? " with these dtypes/shapes/inputs" : ": no kernel for this op"));
  begin_run();
  return e.create(g, n, ctx_);
}

void CudaBackend::begin_run() {
  // Kernel launches and cuBLAS go to the calling thread's current device.
  int cur = -1;
  if (cudaGetDevice(&cur) != cudaSuccess || cur != ctx_->device)
    VLART_CUDA_CHECK(cudaSetDevice(ctx_->device), "cuda backend begin_run");
}

void CudaBackend::synchronize() { VLART_CUDA_CHECK(cudaStreamSynchronize(ctx_->stream), "cuda backend synchronize"); }

void CudaBackend::copy(const Tensor& src, Tensor& dst) {
  const Device me = device();
  VLART_CHECK(src.defined() && dst.defined(), InvalidArgument, "cuda copy: undefined tensor");
  VLART_CHECK(src.nbytes() == dst.nbytes() && src.dtype() == dst.dtype(), InvalidArgument, "cuda copy: ",
              src.str(), " to ", dst.str(), ": sizes or dtypes differ");
  VLART_CHECK(src.is_contiguous() && dst.is_contiguous(), InvalidArgument, "cuda copy: ", src.str(), " to ",
              dst.str(), ": both tensors must be contiguous");
  const bool s_host = src.device().is_cpu(), d_host = dst.device().is_cpu();
  VLART_CHECK((s_host || src.device() == me) && (d_host || dst.device() == me), UnsupportedError,
              "cuda backend on ", me.str(), " cannot copy ", src.str(), " to ", dst.str());
  if (src.nbytes() == 0) return;
  if (s_host && d_host) {
    std::memcpy(dst.raw(), src.raw(), src.nbytes());
    return;
  }
  const cudaMemcpyKind kind = s_host ? cudaMemcpyHostToDevice
                              : d_host ? cudaMemcpyDeviceToHost
                                       : cudaMemcpyDeviceToDevice;
  begin_run();
  // Ordered on the backend stream; from/to pageable memory the runtime stages the copy, so the
  // host buffer may be reused once this returns (D2H results are visible after synchronize()).
  VLART_CUDA_CHECK(cudaMemcpyAsync(dst.raw(), src.raw(), src.nbytes(), kind, ctx_->stream), "cuda backend copy");
}

}  // namespace cuda

std::unique_ptr<Backend> make_cuda_backend(const CudaBackendOptions& opts, std::string* why) {
  auto fail = [&](const std::string& reason) -> std::unique_ptr<Backend> {
    if (why) *why = reason;
    return nullptr;
  };
  try {
    int count = 0;
    const cudaError_t ce = cudaGetDeviceCount(&count);
    if (ce != cudaSuccess) {
      (void)cudaGetLastError();
      return fail(detail::concat("cudaGetDeviceCount failed: ", cudaGetErrorString(ce), " (", cudaGetErrorName(ce),
                                 ") - no usable NVIDIA driver or GPU"));
    }
    if (count == 0) return fail("no CUDA device present");
    if (opts.device < 0 || opts.device >= count)
      return fail(detail::concat("CUDA device ", opts.device, " requested, but ", count, " device(s) present"));

    auto ctx = std::make_shared<cuda::CudaContext>();
    ctx->device = opts.device;
    const std::string where = detail::concat("creating the cuda backend on cuda:", opts.device);
    VLART_CUDA_CHECK(cudaSetDevice(opts.device), where.c_str());
    VLART_CUDA_CHECK(cudaStreamCreateWithFlags(&ctx->stream, cudaStreamNonBlocking), where.c_str());
    VLART_CUBLAS_CHECK(cublasCreate(&ctx->blas), where.c_str());
    VLART_CUBLAS_CHECK(cublasSetStream(ctx->blas, ctx->stream), where.c_str());
    VLART_CUBLAS_CHECK(cublasLtCreate(&ctx->lt), where.c_str());
    ctx->alloc = cuda::device_allocator(opts.device);
    return std::make_unique<cuda::CudaBackend>(std::move(ctx));
  } catch (const std::exception& e) {
    return fail(e.what());
  }
}

}  // namespace vlart
