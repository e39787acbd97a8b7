// RMSNorm: one block per row; each thread accumulates x^2 over a strided slice of the row, the
// block reduces with warp shuffles (then one warp over the per-warp sums), and the row is
// rescaled in a second pass (it is re-read from L1/L2, not kept in registers, so any d works).
#include "cuda/cuda_kernels.h"
#include "cuda/elem_type.cuh"

namespace vlart::cuda {
namespace {

__device__ __forceinline__ float warp_sum(float v) {
  for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
  return v;
}

// Sum of v over the block; every thread gets the result. blockDim.x must be a multiple of 32.
// Safe to call again right away: the shared slots are only rewritten after the next call's first
// barrier, which every thread reaches after it has read `total`.
__device__ float block_sum(float v) {
  __shared__ float partial[32];
  __shared__ float total;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  v = warp_sum(v);
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  if (warp == 0) {
    const int nwarps = blockDim.x >> 5;
    float s = lane < nwarps ? partial[lane] : 0.f;
    s = warp_sum(s);
    if (lane == 0) total = s;
  }
  __syncthreads();
  return total;
}

template <typename T>
__global__ void rms_norm_kernel(const T* x, const float* __restrict__ w, T* y, long long rows, long long d,
                                float eps, bool plus_one) {
  for (long long row = blockIdx.x; row < rows; row += gridDim.x) {
    const T* xr = x + row * d;
    T* yr = y + row * d;
    float ss = 0.f;
    for (long long i = threadIdx.x; i < d; i += blockDim.x) {
      const float v = load_f(xr, i);
      ss = fmaf(v, v, ss);
    }
    const float r = rsqrtf(block_sum(ss) / static_cast<float>(d) + eps);
    for (long long i = threadIdx.x; i < d; i += blockDim.x) {
      const float g = plus_one ? 1.f + w[i] : w[i];
      store_f(yr, i, load_f(xr, i) * r * g);
    }
  }
}

template <typename T>
cudaError_t rms_norm_as(const void* x, const float* w, void* y, long long rows, long long d, float eps,
                        bool plus_one, cudaStream_t s) {
  // About four elements per thread, between one warp and 1024 threads, a multiple of 32.
  long long threads = (d + 3) / 4;
  threads = (threads + 31) / 32 * 32;
  if (threads < 32) threads = 32;
  if (threads > 1024) threads = 1024;
  constexpr long long kMaxBlocks = 1 << 20;  // rows beyond this are covered by the row loop
  const unsigned blocks = static_cast<unsigned>(rows < kMaxBlocks ? rows : kMaxBlocks);
  rms_norm_kernel<T><<<blocks, static_cast<unsigned>(threads), 0, s>>>(
      static_cast<const T*>(x), w, static_cast<T*>(y), rows, d, eps, plus_one);
  return cudaGetLastError();
}

}  // namespace

cudaError_t launch_rms_norm(ElemType t, const void* x, const float* w, void* y, int64_t rows, int64_t d,
                            float eps, bool plus_one, cudaStream_t stream) {
  if (rows <= 0 || d <= 0) return cudaSuccess;
  return t == ElemType::kF32 ? rms_norm_as<float>(x, w, y, rows, d, eps, plus_one, stream)
                             : rms_norm_as<__nv_bfloat16>(x, w, y, rows, d, eps, plus_one, stream);
}

}  // namespace vlart::cuda
