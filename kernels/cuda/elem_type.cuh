// Loads and stores of f32 / bf16 elements as float, shared by the .cu kernels.
#pragma once

#include <cuda_bf16.h>

namespace vlart::cuda {

__device__ __forceinline__ float load_f(const float* p, long long i) { return p[i]; }
__device__ __forceinline__ float load_f(const __nv_bfloat16* p, long long i) { return __bfloat162float(p[i]); }
__device__ __forceinline__ void store_f(float* p, long long i, float v) { p[i] = v; }
__device__ __forceinline__ void store_f(__nv_bfloat16* p, long long i, float v) { p[i] = __float2bfloat16_rn(v); }

// Grid for a grid-stride loop over n elements with `threads` per block.
inline unsigned grid_for(long long n, int threads) {
  const long long want = (n + threads - 1) / threads;
  constexpr long long kMaxBlocks = 65536;  // enough to fill any current GPU; the loop covers the rest
  return static_cast<unsigned>(want < 1 ? 1 : (want > kMaxBlocks ? kMaxBlocks : want));
}

}  // namespace vlart::cuda
