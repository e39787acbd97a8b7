// Host-side launchers of vlart's hand-written CUDA kernels (bodies in kernels/cuda/*.cu).
//
// Plain C++ interface so the backend's .cpp files need no nvcc. Each launcher enqueues on
// `stream` and returns cudaGetLastError() of the launch (no synchronisation, no allocation).
// All pointers are device pointers to contiguous data; element types are f32 or bf16.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace vlart::cuda {

enum class ElemType : uint8_t { kF32, kBF16 };

enum class UnaryOp : uint8_t {
  kSilu,      // x * sigmoid(x)
  kRelu,      // max(x, 0)
  kGeluErf,   // 0.5 x (1 + erf(x / sqrt 2))
  kGeluTanh,  // 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
  kScale,     // x * a + b
};

enum class BinaryOp : uint8_t {
  kAdd,     // a + b
  kMul,     // a * b
  kSwiGLU,  // silu(a) * b
  kGeGLU,   // gelu_tanh(a) * b
};

// y[i] = op(x[i]) for i < n; y may alias x. `a`, `b` are used by kScale only.
cudaError_t launch_unary(UnaryOp op, ElemType t, const void* x, void* y, int64_t n, float a, float b,
                         cudaStream_t stream);

// y[i] = op(a[i], b[i]) for i < n (same shapes); y may alias a or b.
cudaError_t launch_binary(BinaryOp op, ElemType t, const void* a, const void* b, void* y, int64_t n,
                          cudaStream_t stream);

// RMSNorm over rows of length d: y = x * rsqrt(mean(x^2) + eps) * (plus_one ? 1 + w : w), f32 math.
// `w` is f32 [d]. One block per row.
cudaError_t launch_rms_norm(ElemType t, const void* x, const float* w, void* y, int64_t rows, int64_t d,
                            float eps, bool plus_one, cudaStream_t stream);

}  // namespace vlart::cuda
