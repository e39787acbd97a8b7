// Helpers shared by the GEMV translation units (not part of the public kernel API).
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#include "cpu/gemv.h"
#include "cpu/isa.h"

namespace vlart::gemv_detail {

// The best GEMV path on this CPU under the process-wide ISA cap (cpu/isa.h).
inline GemvIsa detect_isa() {
#if defined(__aarch64__)
  // Advanced SIMD is part of the AArch64 base architecture; a portable cap pins the scalar path.
  return kernels::cpu_isa_cap_value() == kernels::CpuIsa::kPortable ? GemvIsa::kScalar : GemvIsa::kNeon;
#else
  switch (kernels::cpu_isa_max()) {
    case kernels::CpuIsa::kAvx512: return kernels::cpu_has_avx512_bf16() ? GemvIsa::kAvx512Bf16 : GemvIsa::kAvx512;
    case kernels::CpuIsa::kAvx2: return GemvIsa::kAvx2;
    case kernels::CpuIsa::kPortable: break;
  }
  return GemvIsa::kScalar;
#endif
}

inline float bf16_bits_to_f32(uint16_t h) {
  const uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

inline uint16_t f32_to_bf16_rne(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40u);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

inline float activate(float v, GemvAct a) {
  switch (a) {
    case GemvAct::kNone: return v;
    case GemvAct::kRelu: return v > 0.f ? v : 0.f;
    case GemvAct::kGeluErf: return 0.5f * v * (1.f + std::erf(v * 0.70710678118654752f));
    case GemvAct::kGeluTanh: {
      const float u = 0.79788456080286536f * (v + 0.044715f * v * v * v);
      return 0.5f * v * (1.f + std::tanh(u));
    }
    case GemvAct::kSilu: return v / (1.f + std::exp(-v));
  }
  return v;
}

// Packed-panel path (gemv_packed.cpp). Returns false when the problem's packed format cannot run
// on `isa` (the caller then uses the row path). `xf`/`ldx`: f32 activations (or the bf16 ones for
// the pair format).
bool gemv_packed(const GemvProblem& p, GemvIsa isa);

// Row-path tile (the layout of gemv.cpp's tiles): acc[i][j] = dot(x row i, w row j) for i < mr,
// j < nr (1..4 each), weight rows k elements apart, f32 or bf16 (w_bf16); `pf`, when not null, is
// the next tile's first weight row, to prefetch.
using GemvTileAcc = float[4][4];
using GemvTileFn = void (*)(const float* x, int64_t ldx, const void* w, int64_t k, const void* pf, GemvTileAcc& acc);
#if defined(__aarch64__)
// NEON tiles (gemv_neon.cpp).
GemvTileFn gemv_neon_tile(int mr, int nr, bool w_bf16);
#endif

}  // namespace vlart::gemv_detail
