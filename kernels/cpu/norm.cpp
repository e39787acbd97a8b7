#include "cpu/norm.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>

#include "cpu/vec_math.h"

namespace vlart::kernels {
namespace {

template <typename X, typename W, typename B>
void layer_norm_t(const X* x, const W* w, const B* b, X* y, int64_t rows, int64_t D, float eps,
                  int threads) {
  const float inv_d = 1.f / static_cast<float>(D);
  parallel_for(rows, D, threads, [&](int64_t r) {
    const X* xr = x + r * D;
    X* yr = y + r * D;
    float sum = 0.f;
#pragma omp simd reduction(+ : sum)
    for (int64_t i = 0; i < D; ++i) sum += to_f(xr[i]);
    const float mean = sum * inv_d;
    // Two-pass variance: no cancellation for rows with a large mean.
    float sq = 0.f;
#pragma omp simd reduction(+ : sq)
    for (int64_t i = 0; i < D; ++i) {
      const float d = to_f(xr[i]) - mean;
      sq += d * d;
    }
    const float rstd = 1.f / std::sqrt(sq * inv_d + eps);
    if (!w) {  // no affine scale (optional weight)
      if (b) {
#pragma omp simd
        for (int64_t i = 0; i < D; ++i) yr[i] = from_f<X>((to_f(xr[i]) - mean) * rstd + to_f(b[i]));
      } else {
#pragma omp simd
        for (int64_t i = 0; i < D; ++i) yr[i] = from_f<X>((to_f(xr[i]) - mean) * rstd);
      }
    } else if (b) {
#pragma omp simd
      for (int64_t i = 0; i < D; ++i)
        yr[i] = from_f<X>((to_f(xr[i]) - mean) * rstd * to_f(w[i]) + to_f(b[i]));
    } else {
#pragma omp simd
      for (int64_t i = 0; i < D; ++i) yr[i] = from_f<X>((to_f(xr[i]) - mean) * rstd * to_f(w[i]));
    }
  });
}

template <typename X, typename W>
void rms_norm_t(const X* x, const W* w, X* y, int64_t rows, int64_t D, float eps, bool plus_one,
                int threads) {
  const float inv_d = 1.f / static_cast<float>(D);
  const float add = plus_one ? 1.f : 0.f;
  parallel_for(rows, D, threads, [&](int64_t r) {
    const X* xr = x + r * D;
    X* yr = y + r * D;
    float sq = 0.f;
#pragma omp simd reduction(+ : sq)
    for (int64_t i = 0; i < D; ++i) {
      const float v = to_f(xr[i]);
      sq += v * v;
    }
    const float s = 1.f / std::sqrt(sq * inv_d + eps);
#pragma omp simd
    for (int64_t i = 0; i < D; ++i) yr[i] = from_f<X>(to_f(xr[i]) * s * (to_f(w[i]) + add));
  });
}

template <typename X>
void softmax_t(const X* x, X* y, int64_t rows, int64_t N, float* scratch, int threads) {
  parallel_for(rows, N, threads, [&](int64_t r) {
    const X* xr = x + r * N;
    X* yr = y + r * N;
    // No `omp simd reduction(max)` here: OpenMP initialises a max reduction with the lowest finite
    // value, not -inf, which would hide an all -inf (fully masked) row from the check below.
    float m = -std::numeric_limits<float>::infinity();
    for (int64_t i = 0; i < N; ++i) m = std::max(m, to_f(xr[i]));
    if (m == -std::numeric_limits<float>::infinity()) {
      // Nothing can be attended to: zeros rather than 0/0.
      for (int64_t i = 0; i < N; ++i) yr[i] = from_f<X>(0.f);
      return;
    }
    // f32 output holds the exponentials in place; bf16 needs an f32 row per thread.
    float* e;
    if constexpr (std::is_same<X, float>::value)
      e = yr;
    else
      e = scratch + static_cast<int64_t>(omp_get_thread_num()) * N;
    float sum = 0.f;
#pragma omp simd reduction(+ : sum)
    for (int64_t i = 0; i < N; ++i) {
      const float v = exp_f(to_f(xr[i]) - m);
      e[i] = v;
      sum += v;
    }
    const float inv = 1.f / sum;
#pragma omp simd
    for (int64_t i = 0; i < N; ++i) yr[i] = from_f<X>(e[i] * inv);
  });
}

template <typename X, typename W>
void layer_norm_b(const X* x, const W* w, const void* b, DType bt, X* y, int64_t rows, int64_t D,
                  float eps, int threads) {
  if (!b)
    layer_norm_t<X, W, float>(x, w, nullptr, y, rows, D, eps, threads);
  else if (bt == DType::kF32)
    layer_norm_t(x, w, static_cast<const float*>(b), y, rows, D, eps, threads);
  else
    layer_norm_t(x, w, static_cast<const uint16_t*>(b), y, rows, D, eps, threads);
}

template <typename X>
void layer_norm_w(const X* x, const void* w, DType wt, const void* b, DType bt, X* y, int64_t rows,
                  int64_t D, float eps, int threads) {
  if (wt == DType::kF32 || !w)
    layer_norm_b(x, static_cast<const float*>(w), b, bt, y, rows, D, eps, threads);
  else
    layer_norm_b(x, static_cast<const uint16_t*>(w), b, bt, y, rows, D, eps, threads);
}

template <typename X>
void rms_norm_w(const X* x, const void* w, DType wt, X* y, int64_t rows, int64_t D, float eps,
                bool plus_one, int threads) {
  if (wt == DType::kF32)
    rms_norm_t(x, static_cast<const float*>(w), y, rows, D, eps, plus_one, threads);
  else
    rms_norm_t(x, static_cast<const uint16_t*>(w), y, rows, D, eps, plus_one, threads);
}

}  // namespace

void layer_norm(const void* x, DType xt, const void* w, DType wt, const void* b, DType bt, void* y,
                int64_t rows, int64_t D, float eps, int threads) {
  if (xt == DType::kF32)
    layer_norm_w(static_cast<const float*>(x), w, wt, b, bt, static_cast<float*>(y), rows, D, eps, threads);
  else
    layer_norm_w(static_cast<const uint16_t*>(x), w, wt, b, bt, static_cast<uint16_t*>(y), rows, D, eps,
                 threads);
}

void rms_norm(const void* x, DType xt, const void* w, DType wt, void* y, int64_t rows, int64_t D,
              float eps, bool plus_one, int threads) {
  if (xt == DType::kF32)
    rms_norm_w(static_cast<const float*>(x), w, wt, static_cast<float*>(y), rows, D, eps, plus_one, threads);
  else
    rms_norm_w(static_cast<const uint16_t*>(x), w, wt, static_cast<uint16_t*>(y), rows, D, eps, plus_one,
               threads);
}

size_t softmax_scratch_bytes(DType t, int64_t N, int threads) {
  return t == DType::kF32 ? 0 : static_cast<size_t>(N) * sizeof(float) * static_cast<size_t>(threads);
}

void softmax(const void* x, DType t, void* y, int64_t rows, int64_t N, void* scratch, int threads) {
  if (t == DType::kF32)
    softmax_t(static_cast<const float*>(x), static_cast<float*>(y), rows, N, nullptr, threads);
  else
    softmax_t(static_cast<const uint16_t*>(x), static_cast<uint16_t*>(y), rows, N,
              static_cast<float*>(scratch), threads);
}

}  // namespace vlart::kernels
