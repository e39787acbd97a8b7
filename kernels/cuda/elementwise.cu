// Elementwise kernels: activations, Scale, and same-shape binary ops (Add, Mul, SwiGLU, GeGLU).
// Math in f32 for both f32 and bf16 storage; grid-stride loops over int64 element counts. No
// __restrict__: outputs may alias inputs (each element is read and written by the same thread).
#include "cuda/cuda_kernels.h"
#include "cuda/elem_type.cuh"

namespace vlart::cuda {
namespace {

constexpr int kThreads = 256;

__device__ __forceinline__ float silu(float x) { return x / (1.f + expf(-x)); }
// x * Phi(x) with normcdff: same as 0.5 x (1 + erf(x/sqrt 2)) without cancellation for x << 0.
__device__ __forceinline__ float gelu_erf(float x) { return x * normcdff(x); }
__device__ __forceinline__ float gelu_tanh(float x) {
  const float k = 0.79788456080286536f;  // sqrt(2/pi)
  return 0.5f * x * (1.f + tanhf(k * (x + 0.044715f * x * x * x)));
}

template <UnaryOp Op>
__device__ __forceinline__ float apply_unary(float x, float a, float b) {
  if constexpr (Op == UnaryOp::kSilu) return silu(x);
  if constexpr (Op == UnaryOp::kRelu) return x > 0.f ? x : 0.f;
  if constexpr (Op == UnaryOp::kGeluErf) return gelu_erf(x);
  if constexpr (Op == UnaryOp::kGeluTanh) return gelu_tanh(x);
  if constexpr (Op == UnaryOp::kScale) return fmaf(x, a, b);
  return x;
}

template <BinaryOp Op>
__device__ __forceinline__ float apply_binary(float x, float y) {
  if constexpr (Op == BinaryOp::kAdd) return x + y;
  if constexpr (Op == BinaryOp::kMul) return x * y;
  if constexpr (Op == BinaryOp::kSwiGLU) return silu(x) * y;
  if constexpr (Op == BinaryOp::kGeGLU) return gelu_tanh(x) * y;
  return x;
}

template <UnaryOp Op, typename T>
__global__ void unary_kernel(const T* x, T* y, long long n, float a, float b) {
  const long long stride = static_cast<long long>(gridDim.x) * blockDim.x;
  for (long long i = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    store_f(y, i, apply_unary<Op>(load_f(x, i), a, b));
}

template <BinaryOp Op, typename T>
__global__ void binary_kernel(const T* a, const T* b, T* y, long long n) {
  const long long stride = static_cast<long long>(gridDim.x) * blockDim.x;
  for (long long i = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    store_f(y, i, apply_binary<Op>(load_f(a, i), load_f(b, i)));
}

template <UnaryOp Op, typename T>
cudaError_t unary_as(const void* x, void* y, long long n, float a, float b, cudaStream_t s) {
  unary_kernel<Op, T><<<grid_for(n, kThreads), kThreads, 0, s>>>(static_cast<const T*>(x), static_cast<T*>(y), n, a, b);
  return cudaGetLastError();
}

template <UnaryOp Op>
cudaError_t unary_typed(ElemType t, const void* x, void* y, long long n, float a, float b, cudaStream_t s) {
  return t == ElemType::kF32 ? unary_as<Op, float>(x, y, n, a, b, s) : unary_as<Op, __nv_bfloat16>(x, y, n, a, b, s);
}

template <BinaryOp Op, typename T>
cudaError_t binary_as(const void* a, const void* b, void* y, long long n, cudaStream_t s) {
  binary_kernel<Op, T><<<grid_for(n, kThreads), kThreads, 0, s>>>(static_cast<const T*>(a), static_cast<const T*>(b),
                                                                  static_cast<T*>(y), n);
  return cudaGetLastError();
}

template <BinaryOp Op>
cudaError_t binary_typed(ElemType t, const void* a, const void* b, void* y, long long n, cudaStream_t s) {
  return t == ElemType::kF32 ? binary_as<Op, float>(a, b, y, n, s) : binary_as<Op, __nv_bfloat16>(a, b, y, n, s);
}

}  // namespace

cudaError_t launch_unary(UnaryOp op, ElemType t, const void* x, void* y, int64_t n, float a, float b,
                         cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  switch (op) {
    case UnaryOp::kSilu: return unary_typed<UnaryOp::kSilu>(t, x, y, n, a, b, stream);
    case UnaryOp::kRelu: return unary_typed<UnaryOp::kRelu>(t, x, y, n, a, b, stream);
    case UnaryOp::kGeluErf: return unary_typed<UnaryOp::kGeluErf>(t, x, y, n, a, b, stream);
    case UnaryOp::kGeluTanh: return unary_typed<UnaryOp::kGeluTanh>(t, x, y, n, a, b, stream);
    case UnaryOp::kScale: return unary_typed<UnaryOp::kScale>(t, x, y, n, a, b, stream);
  }
  return cudaErrorInvalidValue;
}

cudaError_t launch_binary(BinaryOp op, ElemType t, const void* a, const void* b, void* y, int64_t n,
                          cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  switch (op) {
    case BinaryOp::kAdd: return binary_typed<BinaryOp::kAdd>(t, a, b, y, n, stream);
    case BinaryOp::kMul: return binary_typed<BinaryOp::kMul>(t, a, b, y, n, stream);
    case BinaryOp::kSwiGLU: return binary_typed<BinaryOp::kSwiGLU>(t, a, b, y, n, stream);
    case BinaryOp::kGeGLU: return binary_typed<BinaryOp::kGeGLU>(t, a, b, y, n, stream);
  }
  return cudaErrorInvalidValue;
}

}  // namespace vlart::cuda
