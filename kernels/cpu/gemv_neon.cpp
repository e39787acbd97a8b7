// NEON row-path tiles of the small-M GEMV (gemv.h), aarch64 only: up to 4 activation rows x 4
// weight rows per tile, f32 accumulation in 4-lane registers (16 accumulators + 8 weight vectors +
// 2 activation vectors of the 32 v registers), 8 k-elements per step. bf16 weights are widened to
// f32 in registers (a bf16 value is the high half of its f32), so the weight stream stays 2 bytes
// per element. Advanced SIMD is part of the AArch64 base architecture: no run-time check needed.
#include "cpu/gemv_internal.h"

#if defined(__aarch64__)
#include <arm_neon.h>

namespace vlart::gemv_detail {
namespace {

template <bool BF16>
inline float load_w1(const void* w, int64_t i) {
  if (BF16) return bf16_bits_to_f32(static_cast<const uint16_t*>(w)[i]);
  return static_cast<const float*>(w)[i];
}

// Eight weights starting at element i as two f32 vectors.
template <bool BF16>
inline void load_w8(const void* w, int64_t i, float32x4_t* lo, float32x4_t* hi) {
  if (BF16) {
    const uint16x8_t h = vld1q_u16(static_cast<const uint16_t*>(w) + i);
    *lo = vreinterpretq_f32_u32(vshll_n_u16(vget_low_u16(h), 16));
    *hi = vreinterpretq_f32_u32(vshll_high_n_u16(h, 16));
  } else {
    const float* p = static_cast<const float*>(w) + i;
    *lo = vld1q_f32(p);
    *hi = vld1q_f32(p + 4);
  }
}

// Four weights starting at element i.
template <bool BF16>
inline float32x4_t load_w4(const void* w, int64_t i) {
  if (BF16) return vreinterpretq_f32_u32(vshll_n_u16(vld1_u16(static_cast<const uint16_t*>(w) + i), 16));
  return vld1q_f32(static_cast<const float*>(w) + i);
}

template <int MR, int NR, bool BF16>
void tile_neon(const float* x, int64_t ldx, const void* w, int64_t k, const void* pf, GemvTileAcc& acc) {
  constexpr int64_t kWs = BF16 ? 2 : 4;
  float32x4_t a[MR][NR];
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) a[i][j] = vdupq_n_f32(0.f);
  const int64_t k8 = k & ~int64_t{7};
  int64_t kk = 0;
  for (; kk < k8; kk += 8) {
    if (pf)  // one 64-byte line per weight row every 64 bytes of it (8 elements of f32, 16 of bf16)
      if (!BF16 || (kk & 15) == 0)
        for (int j = 0; j < NR; ++j) __builtin_prefetch(static_cast<const char*>(pf) + (j * k + kk) * kWs, 0, 2);
    float32x4_t w0[NR], w1[NR];
    for (int j = 0; j < NR; ++j) load_w8<BF16>(w, j * k + kk, &w0[j], &w1[j]);
    for (int i = 0; i < MR; ++i) {
      const float32x4_t x0 = vld1q_f32(x + i * ldx + kk);
      const float32x4_t x1 = vld1q_f32(x + i * ldx + kk + 4);
      for (int j = 0; j < NR; ++j) {
        a[i][j] = vfmaq_f32(a[i][j], x0, w0[j]);
        a[i][j] = vfmaq_f32(a[i][j], x1, w1[j]);
      }
    }
  }
  if (kk + 4 <= k) {
    float32x4_t w0[NR];
    for (int j = 0; j < NR; ++j) w0[j] = load_w4<BF16>(w, j * k + kk);
    for (int i = 0; i < MR; ++i) {
      const float32x4_t x0 = vld1q_f32(x + i * ldx + kk);
      for (int j = 0; j < NR; ++j) a[i][j] = vfmaq_f32(a[i][j], x0, w0[j]);
    }
    kk += 4;
  }
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) {
      float s = vaddvq_f32(a[i][j]);
      for (int64_t t = kk; t < k; ++t) s += x[i * ldx + t] * load_w1<BF16>(w, j * k + t);
      acc[i][j] = s;
    }
}

template <int MR, int NR>
void fill(GemvTileFn (&t)[2][4][4]) {
  t[0][MR - 1][NR - 1] = &tile_neon<MR, NR, false>;
  t[1][MR - 1][NR - 1] = &tile_neon<MR, NR, true>;
}

template <int MR>
void fill_row(GemvTileFn (&t)[2][4][4]) {
  fill<MR, 1>(t), fill<MR, 2>(t), fill<MR, 3>(t), fill<MR, 4>(t);
}

struct NeonTiles {
  GemvTileFn fn[2][4][4] = {};
  NeonTiles() { fill_row<1>(fn), fill_row<2>(fn), fill_row<3>(fn), fill_row<4>(fn); }
};

}  // namespace

GemvTileFn gemv_neon_tile(int mr, int nr, bool w_bf16) {
  static const NeonTiles tiles;
  if (mr < 1 || mr > 4 || nr < 1 || nr > 4) return nullptr;
  return tiles.fn[w_bf16 ? 1 : 0][mr - 1][nr - 1];
}

}  // namespace vlart::gemv_detail

#endif  // __aarch64__
