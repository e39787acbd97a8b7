// CPU backend internals: the context kernels share and the per-op kernel table.
//
// Each op family registers its kernels from its own file (register_cpu_* below); cpu_backend.cpp
// calls every registration function once. A kernel family supplies `supports` (pure check of
// dtypes/shapes) and `create` (validation, weight repacking, primitive creation).
#pragma once

#include <array>
#include <memory>

#include <dnnl.hpp>

#include "core/backend.h"

#include "backends/cpu/packed_cache.h"

namespace vlart {

struct CpuContext {
  int threads = 1;
  dnnl::engine engine;
  dnnl::stream stream;
  // Packed weights shared by every kernel of this backend (all executors and shape buckets).
  std::shared_ptr<PackedWeightCache> packed = std::make_shared<PackedWeightCache>();
};

// Counters of a CPU backend's packed-weight cache (zeros for another backend).
PackedCacheStats cpu_packed_cache_stats(const Backend& b);

using CpuSupportsFn = bool (*)(const Graph& g, const Node& n);
using CpuCreateFn = std::unique_ptr<OpKernel> (*)(const Graph& g, const Node& n, CpuContext& ctx);

struct CpuKernelEntry {
  CpuSupportsFn supports = nullptr;
  CpuCreateFn create = nullptr;
};

using CpuKernelTable = std::array<CpuKernelEntry, static_cast<size_t>(OpKind::kCount)>;

inline void set_entry(CpuKernelTable& t, OpKind op, CpuSupportsFn s, CpuCreateFn c) {
  t[static_cast<size_t>(op)] = {s, c};
}

// Registration, one per op family (each defined in src/backends/cpu/<family>.cpp).
void register_cpu_gemm(CpuKernelTable& t);         // Linear, MatMul, Conv2d
void register_cpu_norm(CpuKernelTable& t);         // LayerNorm, RMSNorm, Softmax
void register_cpu_elementwise(CpuKernelTable& t);  // Gelu, Silu, Relu, SwiGLU, GeGLU, Add, Mul, Scale, Cast
void register_cpu_layout(CpuKernelTable& t);       // Concat, Slice, Permute, Embedding, Gather, Expand, KVWrite, PixelShuffle, ResizeBilinear
void register_cpu_attention(CpuKernelTable& t);    // Rope, Attention

// Sets flush-to-zero and denormals-are-zero on the calling thread (denormals make oneDNN f32
// 20-200x slower).
void set_flush_denormals();

// Convenience for kernels: element i of an f32 or bf16 buffer as float, and the store back.
inline float load_f(const void* p, DType dt, int64_t i) {
  return dt == DType::kF32 ? static_cast<const float*>(p)[i]
                           : bf16_to_f32(static_cast<const uint16_t*>(p)[i]);
}
inline void store_f(void* p, DType dt, int64_t i, float v) {
  if (dt == DType::kF32)
    static_cast<float*>(p)[i] = v;
  else
    static_cast<uint16_t*>(p)[i] = f32_to_bf16(v);
}
inline bool is_f32_or_bf16(DType d) { return d == DType::kF32 || d == DType::kBF16; }

}  // namespace vlart
