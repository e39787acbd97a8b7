// NEON inner kernels of the tiled attention (aarch64; Advanced SIMD is part of the base
// architecture, so no run-time check). Same contracts as attention_tile.h; the structure follows
// the AVX-512 kernels with 4-lane registers:
//  * scores: 16 query rows (4 vectors) x up to 4 keys per register block; four d steps per load of
//    each key row (vfmaq_laneq_f32 takes K[j, d..d+3] from one register).
//  * softmax: per vector of 4 rows, exp2 by range reduction and a polynomial.
//  * pv: 4 rows x 16 value columns per block; the 4 rows' weights of key j are one load from S
//    (rows are contiguous there) and enter the FMAs by lane.
#include "cpu/attention_tile.h"

#if defined(__aarch64__)
#include <arm_neon.h>

#include <cmath>
#include <limits>

#include "vlart/dtype.h"

namespace vlart::kernels {
namespace {

constexpr int QB = kRowBlock;
static_assert(kRowBlock % 16 == 0, "row vectors of 16 rows");

// exp2(x) for x <= 0 (or -inf): exp2(x) = 2^n * exp2(f), n = round(x), f in [-1/2, 1/2], exp2(f) by
// a degree-6 minimax polynomial (relative error ~1e-7). x is clamped at -127 first, where 2^n is
// built as the float with biased exponent 0, i.e. exactly 0: masked keys (-inf) and anything
// below 2^-126.5 give 0 (the AVX-512 kernel flushes there too). NaN stays NaN.
inline float32x4_t exp2_neg(float32x4_t x) {
  x = vmaxq_f32(x, vdupq_n_f32(-127.f));
  const float32x4_t n = vrndnq_f32(x);
  const float32x4_t f = vsubq_f32(x, n);
  float32x4_t p = vdupq_n_f32(1.534580078e-04f);
  p = vfmaq_f32(vdupq_n_f32(1.339993090e-03f), p, f);
  p = vfmaq_f32(vdupq_n_f32(9.618489072e-03f), p, f);
  p = vfmaq_f32(vdupq_n_f32(5.550328642e-02f), p, f);
  p = vfmaq_f32(vdupq_n_f32(2.402264625e-01f), p, f);
  p = vfmaq_f32(vdupq_n_f32(6.931471825e-01f), p, f);
  p = vfmaq_f32(vdupq_n_f32(1.f), p, f);
  const int32x4_t e = vshlq_n_s32(vaddq_s32(vcvtq_s32_f32(n), vdupq_n_s32(127)), 23);
  return vmulq_f32(p, vreinterpretq_f32_s32(e));
}

// acc[kk][c] += K[kk, d + L] * Qt[d + L, rows of vector c], the key values in lane L of kv[kk].
template <int NK, int L>
inline void scores_step(const float* q, const float32x4_t* kv, float32x4_t (*acc)[4]) {
  float32x4_t qv[4];
  for (int c = 0; c < 4; ++c) qv[c] = vld1q_f32(q + L * QB + 4 * c);
  VLART_UNROLL
  for (int kk = 0; kk < NK; ++kk)
    for (int c = 0; c < 4; ++c) acc[kk][c] = vfmaq_laneq_f32(acc[kk][c], qv[c], kv[kk], L);
}

// NK keys x 16 query rows (Qt, S and tmax already offset to the row vector).
template <int NK, bool MAX>
void scores_block(const float* Qt, const float* K, int64_t ldk, int D, float* S, float* tmax) {
  float32x4_t acc[NK][4];
  VLART_UNROLL
  for (int kk = 0; kk < NK; ++kk)
    for (int c = 0; c < 4; ++c) acc[kk][c] = vdupq_n_f32(0.f);
  int d = 0;
  for (; d + 4 <= D; d += 4) {
    float32x4_t kv[NK];
    VLART_UNROLL
    for (int kk = 0; kk < NK; ++kk) kv[kk] = vld1q_f32(K + kk * ldk + d);
    const float* q = Qt + d * QB;
    scores_step<NK, 0>(q, kv, acc);
    scores_step<NK, 1>(q, kv, acc);
    scores_step<NK, 2>(q, kv, acc);
    scores_step<NK, 3>(q, kv, acc);
  }
  for (; d < D; ++d) {
    float32x4_t qv[4];
    for (int c = 0; c < 4; ++c) qv[c] = vld1q_f32(Qt + d * QB + 4 * c);
    VLART_UNROLL
    for (int kk = 0; kk < NK; ++kk)
      for (int c = 0; c < 4; ++c) acc[kk][c] = vfmaq_n_f32(acc[kk][c], qv[c], K[kk * ldk + d]);
  }
  VLART_UNROLL
  for (int kk = 0; kk < NK; ++kk)
    for (int c = 0; c < 4; ++c) vst1q_f32(S + kk * QB + 4 * c, acc[kk][c]);
  if constexpr (MAX) {
    for (int c = 0; c < 4; ++c) {
      float32x4_t mx = vld1q_f32(tmax + 4 * c);
      VLART_UNROLL
      for (int kk = 0; kk < NK; ++kk) mx = vmaxq_f32(mx, acc[kk][c]);
      vst1q_f32(tmax + 4 * c, mx);
    }
  }
}

template <bool MAX>
void scores_rows16(const float* Qt, const float* K, int64_t ldk, int kt, int D, float* S, float* tmax) {
  if constexpr (MAX)
    for (int c = 0; c < 4; ++c) vst1q_f32(tmax + 4 * c, vdupq_n_f32(-std::numeric_limits<float>::infinity()));
  int j = 0;
  for (; j + 4 <= kt; j += 4) scores_block<4, MAX>(Qt, K + j * ldk, ldk, D, S + j * QB, tmax);
  switch (kt - j) {
    case 3: scores_block<3, MAX>(Qt, K + j * ldk, ldk, D, S + j * QB, tmax); break;
    case 2: scores_block<2, MAX>(Qt, K + j * ldk, ldk, D, S + j * QB, tmax); break;
    case 1: scores_block<1, MAX>(Qt, K + j * ldk, ldk, D, S + j * QB, tmax); break;
    default: break;
  }
}

void scores_neon(const float* Qt, int nvec, const float* K, int64_t ldk, int kt, int D, float* S, float* tile_max) {
  for (int v = 0; v < nvec; ++v) {
    if (tile_max)
      scores_rows16<true>(Qt + 16 * v, K, ldk, kt, D, S + 16 * v, tile_max + 16 * v);
    else
      scores_rows16<false>(Qt + 16 * v, K, ldk, kt, D, S + 16 * v, nullptr);
  }
}

void softmax_neon(float* S, int kt, int nvec, const float* tile_max, float* m, float* l, float* alpha) {
  const float32x4_t ninf = vdupq_n_f32(-std::numeric_limits<float>::infinity());
  for (int r = 0; r < 16 * nvec; r += 4) {
    float* s = S + r;
    const float32x4_t mold = vld1q_f32(m + r);
    float32x4_t mx;
    if (tile_max) {
      mx = vld1q_f32(tile_max + r);
    } else {
      mx = ninf;
      for (int j = 0; j < kt; ++j) mx = vmaxq_f32(mx, vld1q_f32(s + j * QB));
    }
    const float32x4_t mnew = vmaxq_f32(mold, mx);
    // Rows with every key masked so far subtract 0 instead of -inf: their exp2() stays exactly 0.
    const uint32x4_t dead = vceqq_f32(mnew, ninf);
    const float32x4_t base = vbslq_f32(dead, vdupq_n_f32(0.f), mnew);
    const float32x4_t a = exp2_neg(vsubq_f32(mold, base));
    // Two partial sums: the adds are a dependency chain, the exps are not.
    float32x4_t sum0 = vdupq_n_f32(0.f), sum1 = vdupq_n_f32(0.f);
    int j = 0;
    for (; j + 2 <= kt; j += 2) {
      const float32x4_t p0 = exp2_neg(vsubq_f32(vld1q_f32(s + j * QB), base));
      const float32x4_t p1 = exp2_neg(vsubq_f32(vld1q_f32(s + (j + 1) * QB), base));
      vst1q_f32(s + j * QB, p0);
      vst1q_f32(s + (j + 1) * QB, p1);
      sum0 = vaddq_f32(sum0, p0);
      sum1 = vaddq_f32(sum1, p1);
    }
    if (j < kt) {
      const float32x4_t p0 = exp2_neg(vsubq_f32(vld1q_f32(s + j * QB), base));
      vst1q_f32(s + j * QB, p0);
      sum0 = vaddq_f32(sum0, p0);
    }
    vst1q_f32(l + r, vfmaq_f32(vaddq_f32(sum0, sum1), vld1q_f32(l + r), a));
    vst1q_f32(m + r, mnew);
    vst1q_f32(alpha + r, a);
  }
}

// o[rr][c] += V[j, 4c..4c+3] * (weight of row rr), the 4 rows' weights in one register.
template <int NR, int NC>
inline void pv_step(const float32x4_t* v, float32x4_t s, float32x4_t (*o)[4]) {
  VLART_UNROLL
  for (int c = 0; c < NC; ++c) {
    if (NR > 0) o[0][c] = vfmaq_laneq_f32(o[0][c], v[c], s, 0);
    if (NR > 1) o[1][c] = vfmaq_laneq_f32(o[1][c], v[c], s, 1);
    if (NR > 2) o[2][c] = vfmaq_laneq_f32(o[2][c], v[c], s, 2);
    if (NR > 3) o[3][c] = vfmaq_laneq_f32(o[3][c], v[c], s, 3);
  }
}

// NR (<= 4) rows starting at S column r0, NC vectors of 4 output columns starting at column c0.
// The S load reads 4 rows even when NR < 4 (r0 + 4 <= kRowBlock, inside the tile; extra lanes unused).
template <int NR, int NC>
void pv_block(const float* S, int kt, int r0, const float* V, int64_t ldv, int c0, const float* alpha, float* acc,
              int64_t ldacc) {
  float32x4_t o[4][4];
  VLART_UNROLL
  for (int r = 0; r < NR; ++r)
    VLART_UNROLL
    for (int c = 0; c < NC; ++c) o[r][c] = vmulq_n_f32(vld1q_f32(acc + (r0 + r) * ldacc + c0 + 4 * c), alpha[r0 + r]);
  for (int j = 0; j < kt; ++j) {
    float32x4_t v[4];
    VLART_UNROLL
    for (int c = 0; c < NC; ++c) v[c] = vld1q_f32(V + j * ldv + c0 + 4 * c);
    pv_step<NR, NC>(v, vld1q_f32(S + j * QB + r0), o);
  }
  VLART_UNROLL
  for (int r = 0; r < NR; ++r)
    VLART_UNROLL
    for (int c = 0; c < NC; ++c) vst1q_f32(acc + (r0 + r) * ldacc + c0 + 4 * c, o[r][c]);
}

template <int NR>
void pv_rows(const float* S, int kt, int r0, const float* V, int64_t ldv, int Dv, const float* alpha, float* acc) {
  int c0 = 0;
  for (; c0 + 16 <= Dv; c0 += 16) pv_block<NR, 4>(S, kt, r0, V, ldv, c0, alpha, acc, Dv);
  switch ((Dv - c0) / 4) {
    case 3: pv_block<NR, 3>(S, kt, r0, V, ldv, c0, alpha, acc, Dv); break;
    case 2: pv_block<NR, 2>(S, kt, r0, V, ldv, c0, alpha, acc, Dv); break;
    case 1: pv_block<NR, 1>(S, kt, r0, V, ldv, c0, alpha, acc, Dv); break;
    default: break;
  }
  c0 += (Dv - c0) / 4 * 4;
  // Last Dv % 4 columns.
  for (int r = r0; r < r0 + NR; ++r) {
    float* o = acc + static_cast<int64_t>(r) * Dv;
    for (int c = c0; c < Dv; ++c) {
      float t = o[c] * alpha[r];
      for (int j = 0; j < kt; ++j) t += S[j * QB + r] * V[j * ldv + c];
      o[c] = t;
    }
  }
}

void pv_neon(const float* S, int kt, int nr, const float* V, int64_t ldv, int Dv, const float* alpha, float* acc) {
  int r = 0;
  for (; r + 4 <= nr; r += 4) pv_rows<4>(S, kt, r, V, ldv, Dv, alpha, acc);
  switch (nr - r) {
    case 3: pv_rows<3>(S, kt, r, V, ldv, Dv, alpha, acc); break;
    case 2: pv_rows<2>(S, kt, r, V, ldv, Dv, alpha, acc); break;
    case 1: pv_rows<1>(S, kt, r, V, ldv, Dv, alpha, acc); break;
    default: break;
  }
}

void bf16_rows_neon(const uint16_t* src, int64_t lds, int rows, int cols, float* dst) {
  for (int i = 0; i < rows; ++i) {
    const uint16_t* s = src + i * lds;
    float* o = dst + static_cast<int64_t>(i) * cols;
    int c = 0;
    for (; c + 8 <= cols; c += 8) {
      const uint16x8_t h = vld1q_u16(s + c);
      vst1q_f32(o + c, vreinterpretq_f32_u32(vshll_n_u16(vget_low_u16(h), 16)));
      vst1q_f32(o + c + 4, vreinterpretq_f32_u32(vshll_high_n_u16(h, 16)));
    }
    for (; c < cols; ++c) o[c] = bf16_to_f32(s[c]);
  }
}

}  // namespace

const AttnTileKernels* attn_tile_kernels_neon() {
  static const AttnTileKernels k{"neon", scores_neon, softmax_neon, pv_neon, bf16_rows_neon};
  return &k;
}

}  // namespace vlart::kernels

#else

namespace vlart::kernels {
const AttnTileKernels* attn_tile_kernels_neon() { return nullptr; }
}  // namespace vlart::kernels

#endif
