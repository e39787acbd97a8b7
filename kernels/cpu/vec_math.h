// Scalar building blocks shared by the CPU compute loops: f32/bf16 element access, a branch-free
// exp that GCC can vectorise inside `#pragma omp simd` loops (std::exp cannot be without
// -ffast-math), the activation functions built on it, and the row-parallel loop helper.
#pragma once

#include <omp.h>

#include <cmath>
#include <cstdint>
#include <cstring>

#include "vlart/dtype.h"

namespace vlart::kernels {

// Element storage types: float is f32, uint16_t is bf16 (f16 never reaches the float kernels).
inline float to_f(float v) { return v; }
inline float to_f(uint16_t v) { return bf16_to_f32(v); }
template <typename T>
inline T from_f(float v);
template <>
inline float from_f<float>(float v) { return v; }
template <>
inline uint16_t from_f<uint16_t>(float v) { return f32_to_bf16(v); }

// Maps float bits to ints that order like the floats (and back: the map is its own inverse).
inline int32_t float_order_bits(int32_t i) { return i ^ ((i >> 31) & 0x7fffffff); }

// exp(x) with ~2 ulp relative error over the normal range; exactly 0 below about -87.7 (instead
// of a denormal, which FTZ would flush anyway; -inf gives 0) and +inf above about 88.4. NaN is
// not propagated (callers that multiply by x, like silu, still return NaN).
// Range reduction x = n ln2 + r with a two-part ln2, then the degree-7 Taylor polynomial of
// exp(r) on |r| <= ln2/2 (truncation < 6e-9), times 2^n built from exponent bits.
// Written so GCC vectorises it without -ffast-math: under the default -ftrapping-math a float
// compare-and-select followed by float math stays a branch, so the input clamp is done on
// order-preserving integer bits and the underflow to zero is an integer clamp of the exponent.
inline float exp_f(float x) {
  int32_t ix;
  std::memcpy(&ix, &x, 4);
  int32_t s = float_order_bits(ix);
  const int32_t kLo = float_order_bits(static_cast<int32_t>(0xC2C80000u));  // -100.0f
  const int32_t kHi = 0x42B16666;                                             // 88.7f: 2^128 = +inf
  s = s < kLo ? kLo : s;
  s = s > kHi ? kHi : s;
  ix = float_order_bits(s);
  float xc;
  std::memcpy(&xc, &ix, 4);
  // Round-to-nearest via the 1.5*2^23 trick (no SSE4.1 round instruction needed).
  const float magic = 12582912.f;
  const float n = (xc * 1.44269504088896341f + magic) - magic;
  const float r = (xc - n * 0.693145751953125f) - n * 1.428606765330187e-06f;
  float p = 1.f / 5040.f;
  p = p * r + 1.f / 720.f;
  p = p * r + 1.f / 120.f;
  p = p * r + 1.f / 24.f;
  p = p * r + 1.f / 6.f;
  p = p * r + 0.5f;
  p = p * r + 1.f;
  p = p * r + 1.f;
  int32_t e = static_cast<int32_t>(n) + 127;
  e = e < 0 ? 0 : e;  // biased exponent 0 with zero mantissa: 2^n becomes +0
  const int32_t bits = e << 23;
  float scale;
  std::memcpy(&scale, &bits, 4);
  return p * scale;
}

inline float sigmoid_f(float x) { return 1.f / (1.f + exp_f(-x)); }
inline float silu_f(float x) { return x / (1.f + exp_f(-x)); }
// 0.5 x (1 + tanh(u)) == x * sigmoid(2u), u = sqrt(2/pi) (x + 0.044715 x^3); no cancellation.
inline float gelu_tanh_f(float x) {
  const float u = 0.7978845608028654f * (x + 0.044715f * x * x * x);
  return x / (1.f + exp_f(-2.f * u));
}
inline float gelu_erf_f(float x) { return 0.5f * x * (1.f + std::erf(x * 0.7071067811865476f)); }

// Work below this many elements runs on the calling thread (fork/join costs more than it saves).
constexpr int64_t kParallelMinWork = 32768;

// Calls f(i) for i in [0, n), split statically over `threads` when n * work_per_item is large.
// Each item is independent, so results do not depend on the thread count.
template <typename F>
inline void parallel_for(int64_t n, int64_t work_per_item, int threads, const F& f) {
  if (threads <= 1 || n < 2 || n * work_per_item < kParallelMinWork) {
    for (int64_t i = 0; i < n; ++i) f(i);
    return;
  }
  const int nt = static_cast<int>(n < threads ? n : threads);
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int64_t i = 0; i < n; ++i) f(i);
}

// Elements per work item when a flat array is split for parallel_for.
constexpr int64_t kFlatChunk = 8192;

}  // namespace vlart::kernels
