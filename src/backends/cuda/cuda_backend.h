// CUDA backend internals: the context kernels share, the per-op kernel table, and the backend
// class (exposed so benchmarks and tests can reach its stream and options).
//
// Everything the backend enqueues goes to ONE non-blocking stream; the cuBLAS / cuBLASLt handles
// are bound to it. Kernels keep the context alive through a shared_ptr, so a kernel may outlive
// the Backend object that prepared it.
#pragma once

#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <array>
#include <memory>
#include <string>

#include "backends/cuda/cuda_allocator.h"
#include "core/backend.h"
#include "cuda/cuda_kernels.h"

namespace vlart::cuda {

struct CudaContext {
  int device = 0;
  cudaStream_t stream = nullptr;
  cublasHandle_t blas = nullptr;
  cublasLtHandle_t lt = nullptr;
  CudaAllocator* alloc = nullptr;
  // Linear kernels prepared while this is set use TF32 tensor cores for f32 (faster, ~1e-3
  // relative error); off by default so f32 means f32.
  bool allow_tf32 = false;

  // cuBLASLt workspace, shared by all Linear kernels of this context: their work is serialised on
  // the one stream, so one buffer suffices (a private 32 MiB per Linear would cost GBs per model).
  static constexpr size_t kLtWorkspaceBytes = size_t{32} << 20;
  std::shared_ptr<DeviceBuffer> lt_workspace();

  CudaContext() = default;
  CudaContext(const CudaContext&) = delete;
  CudaContext& operator=(const CudaContext&) = delete;
  ~CudaContext();

 private:
  std::shared_ptr<DeviceBuffer> lt_workspace_;
};
using CudaContextPtr = std::shared_ptr<CudaContext>;

using CudaSupportsFn = bool (*)(const Graph& g, const Node& n);
using CudaCreateFn = std::unique_ptr<OpKernel> (*)(const Graph& g, const Node& n, const CudaContextPtr& ctx);
struct CudaKernelEntry {
  CudaSupportsFn supports = nullptr;
  CudaCreateFn create = nullptr;
};
using CudaKernelTable = std::array<CudaKernelEntry, static_cast<size_t>(OpKind::kCount)>;
inline void set_entry(CudaKernelTable& t, OpKind op, CudaSupportsFn s, CudaCreateFn c) {
  t[static_cast<size_t>(op)] = {s, c};
}

// Registration, one per op family (src/backends/cuda/<family>.cpp).
void register_cuda_linear(CudaKernelTable& t);       // Linear (cuBLASLt)
void register_cuda_norm(CudaKernelTable& t);         // RMSNorm
void register_cuda_elementwise(CudaKernelTable& t);  // Silu, Relu, Gelu, Scale, Add, Mul, SwiGLU, GeGLU

// ---- helpers shared by the kernel families ----
inline bool is_act_dtype(DType d) { return d == DType::kF32 || d == DType::kBF16; }
inline ElemType elem_type(DType d) { return d == DType::kF32 ? ElemType::kF32 : ElemType::kBF16; }
// "node 'name' (Op)" for error messages; built once at prepare.
std::string node_label(const Node& n);
// True when input `i` of `n` is present and a weight with a CPU constant.
bool is_host_weight(const Graph& g, const Node& n, size_t i);
// Converts a CPU constant to `dtype` and uploads it (synchronously; prepare time only).
DeviceBuffer upload_constant(const CudaContext& ctx, const Tensor& host, DType dtype, const std::string& where);
// Hot-path argument check: tensor present, on `dev`, contiguous, `numel` elements of `dtype`.
// Allocates only when it throws (InvalidArgument naming `where` and `what`).
void check_arg(const Tensor* t, Device dev, DType dtype, int64_t numel, const std::string& where, const char* what);

class CudaBackend final : public Backend {
 public:
  // Takes ownership of a fully initialised context (see make_cuda_backend).
  explicit CudaBackend(CudaContextPtr ctx);
  ~CudaBackend() override;

  std::string name() const override { return "cuda"; }
  Device device() const override { return Device::cuda(ctx_->device); }
  Allocator* allocator() override { return ctx_->alloc; }
  bool supports(const Graph& g, const Node& n) const override;
  std::unique_ptr<OpKernel> prepare(const Graph& g, const Node& n) override;
  void synchronize() override;
  void copy(const Tensor& src, Tensor& dst) override;
  void begin_run() override;

  cudaStream_t stream() const { return ctx_->stream; }
  CudaAllocator* cuda_allocator() const { return ctx_->alloc; }
  // Applies to Linear kernels prepared afterwards.
  void set_allow_tf32(bool on) { ctx_->allow_tf32 = on; }

 private:
  CudaContextPtr ctx_;
  CudaKernelTable table_{};
};

}  // namespace vlart::cuda
