// Backend interface, split as in ggml-backend / ONNX Runtime execution providers:
//   device (what it is), allocator (its buffer type), stream (ordering and sync),
//   supports(node) (decided at graph build), prepare(node) -> OpKernel (weights repacked once),
//   OpKernel::run (the hot path: must not allocate).
#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "core/graph.h"
#include "vlart/tensor.h"

namespace vlart {

// Arguments of one kernel invocation. All tensors are contiguous and live on the backend's device.
struct KernelArgs {
  const Tensor* const* inputs = nullptr;  // inputs[i] is nullptr for an absent optional input
  int num_inputs = 0;
  Tensor* output = nullptr;
  void* scratch = nullptr;  // scratch_bytes() bytes on the backend's device, reused between nodes
};

class OpKernel {
 public:
  virtual ~OpKernel() = default;
  // Workspace this kernel needs during run(); the executor plans it in the arena.
  virtual size_t scratch_bytes() const { return 0; }
  // Executes the op. Must not allocate host heap memory (see alloc_guard.h).
  virtual void run(const KernelArgs& args) = 0;
  // True when the kernel took its own (repacked/uploaded) copy of input `i` at prepare time, so the
  // executor need not place that weight on the backend's device.
  virtual bool owns_input(int /*i*/) const { return false; }
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;
  virtual Device device() const = 0;
  // Buffer type: where this backend's activations and repacked weights live.
  virtual Allocator* allocator() = 0;
  // Whether this backend can run node `n` of `g` with its current input dtypes and shapes.
  virtual bool supports(const Graph& g, const Node& n) const = 0;
  // Builds the kernel for `n`: validates, repacks/uploads weights, creates library primitives.
  // Called once per node at executor construction.
  virtual std::unique_ptr<OpKernel> prepare(const Graph& g, const Node& n) = 0;
  // Blocks until all work queued on this backend's stream has finished.
  virtual void synchronize() {}
  // Copies between host memory and this backend's memory (same-device copies too).
  virtual void copy(const Tensor& src, Tensor& dst);
  // Called by the executor before each run (e.g. to set thread-local CPU state).
  virtual void begin_run() {}
};

struct CpuBackendOptions {
  int threads = 0;  // 0 = all hardware threads
};

// The CPU backend (oneDNN + Eigen + vlart kernels). Never null.
std::unique_ptr<Backend> make_cpu_backend(const CpuBackendOptions& opts = {});

struct CudaBackendOptions {
  int device = 0;
};
// The CUDA backend, or nullptr when vlart was built without CUDA or no usable GPU is present
// (`why`, if given, receives the reason).
std::unique_ptr<Backend> make_cuda_backend(const CudaBackendOptions& opts = {}, std::string* why = nullptr);

}  // namespace vlart
