// Packed-panel GEMV (AVX-512): weights in 16-column panels contiguous over K (see gemv.h).
//
// For one panel the kernel keeps one 16-lane accumulator per activation row (split into U
// partial accumulators over k when M is small, so the FMA latency chain does not limit a single
// row), broadcasts x[m, k] and multiplies it with the panel's 16 weights of step k. Each thread
// streams whole panels: one sequential read per panel, which the hardware prefetcher follows far
// better than several short row streams.
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

#include <algorithm>

#include "cpu/gemv.h"
#include "cpu/gemv_internal.h"

namespace vlart {
using namespace gemv_detail;

namespace {

constexpr int kPanel = 16;

// Partial accumulators per row: enough independent chains (>= 4) for small M.
constexpr int unroll_for(int mr) { return mr == 1 ? 4 : mr == 2 ? 2 : 1; }

// x is transposed ([k][M] f32, or [ceil(k/2)][M] bf16 pairs) so each k step reads one short
// contiguous run of activations, whatever M is.
using PanelFn = void (*)(const void* x, const void* panel, int64_t k, float (*out)[kPanel]);

#if defined(__x86_64__) || defined(__i386__)
#define VLART_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma")))
#define VLART_AVX512BF16 __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16,avx2,fma")))

template <bool WB>
VLART_AVX512 inline __m512 panel_row(const void* pw, int64_t kk) {
  if (WB) {
    const __m256i h = _mm256_load_si256(reinterpret_cast<const __m256i*>(static_cast<const uint16_t*>(pw) + kk * kPanel));
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
  }
  return _mm512_load_ps(static_cast<const float*>(pw) + kk * kPanel);
}

// f32 activations x f32 or bf16 (widened) panel.
template <int MR, bool WB>
VLART_AVX512 void panel_fma(const void* xv, const void* pw, int64_t k, float (*out)[kPanel]) {
  constexpr int U = unroll_for(MR);
  const float* x = static_cast<const float*>(xv);
  __m512 a[MR][U];
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int u = 0; u < U; ++u) a[i][u] = _mm512_setzero_ps();
  int64_t kk = 0;
  for (; kk + U <= k; kk += U) {
#pragma GCC unroll 4
    for (int u = 0; u < U; ++u) {
      const __m512 w = panel_row<WB>(pw, kk + u);
#pragma GCC unroll 16
      for (int i = 0; i < MR; ++i) a[i][u] = _mm512_fmadd_ps(_mm512_set1_ps(x[(kk + u) * MR + i]), w, a[i][u]);
    }
  }
  for (; kk < k; ++kk) {
    const __m512 w = panel_row<WB>(pw, kk);
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) a[i][0] = _mm512_fmadd_ps(_mm512_set1_ps(x[kk * MR + i]), w, a[i][0]);
  }
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i) {
    __m512 s = a[i][0];
#pragma GCC unroll 4
    for (int u = 1; u < U; ++u) s = _mm512_add_ps(s, a[i][u]);
    _mm512_store_ps(out[i], s);
  }
}

// bf16 activations x bf16 pair panel with vdpbf16ps (products exact, f32 accumulation).
template <int MR>
VLART_AVX512BF16 void panel_dp(const void* xv, const void* pw, int64_t k, float (*out)[kPanel]) {
  constexpr int U = unroll_for(MR);
  const uint32_t* x = static_cast<const uint32_t*>(xv);  // bf16 pairs, [ceil(k/2)][MR]
  const uint16_t* w = static_cast<const uint16_t*>(pw);
  const int64_t kp = (k + 1) / 2;  // the odd tail pair has zeros in x and w
  __m512 a[MR][U];
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int u = 0; u < U; ++u) a[i][u] = _mm512_setzero_ps();
  int64_t q = 0;
  for (; q + U <= kp; q += U) {
#pragma GCC unroll 4
    for (int u = 0; u < U; ++u) {
      const __m512bh wv = (__m512bh)_mm512_load_si512(w + (q + u) * 2 * kPanel);
#pragma GCC unroll 16
      for (int i = 0; i < MR; ++i) {
        const __m512i xb = _mm512_set1_epi32(static_cast<int>(x[(q + u) * MR + i]));
        a[i][u] = _mm512_dpbf16_ps(a[i][u], (__m512bh)xb, wv);
      }
    }
  }
  for (; q < kp; ++q) {
    const __m512bh wv = (__m512bh)_mm512_load_si512(w + q * 2 * kPanel);
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      const __m512i xb = _mm512_set1_epi32(static_cast<int>(x[q * MR + i]));
      a[i][0] = _mm512_dpbf16_ps(a[i][0], (__m512bh)xb, wv);
    }
  }
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i) {
    __m512 s = a[i][0];
#pragma GCC unroll 4
    for (int u = 1; u < U; ++u) s = _mm512_add_ps(s, a[i][u]);
    _mm512_store_ps(out[i], s);
  }
}

// Epilogue of one panel (16 outputs x M rows): bias, activation, store, vectorised where cheap.
VLART_AVX512 void store_panel(const GemvProblem& p, const float (*out)[kPanel], int64_t n0) {
  const int nc = static_cast<int>(std::min<int64_t>(kPanel, p.n - n0));
  const __mmask16 mask = static_cast<__mmask16>((1u << nc) - 1u);
  __m512 bias = _mm512_setzero_ps();
  if (p.bias) {
    if (p.bias_bf16) {
      const __m256i h = _mm256_maskz_loadu_epi16(mask, static_cast<const uint16_t*>(p.bias) + n0);
      bias = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    } else {
      bias = _mm512_maskz_loadu_ps(mask, static_cast<const float*>(p.bias) + n0);
    }
  }
  for (int i = 0; i < p.m; ++i) {
    __m512 v = _mm512_add_ps(_mm512_load_ps(out[i]), bias);
    if (p.act == GemvAct::kRelu) {
      v = _mm512_max_ps(v, _mm512_setzero_ps());
    } else if (p.act != GemvAct::kNone) {
      alignas(64) float t[kPanel];
      _mm512_store_ps(t, v);
      for (int j = 0; j < nc; ++j) t[j] = activate(t[j], p.act);
      v = _mm512_load_ps(t);
    }
    const int64_t off = static_cast<int64_t>(i) * p.ldy + n0;
    if (!p.y_bf16) {
      _mm512_mask_storeu_ps(static_cast<float*>(p.y) + off, mask, v);
    } else {
      // Round to nearest even; NaN stays a (quiet) NaN.
      const __m512i u = _mm512_castps_si512(v);
      const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
      __m512i r = _mm512_srli_epi32(_mm512_add_epi32(u, _mm512_add_epi32(_mm512_set1_epi32(0x7fff), lsb)), 16);
      const __mmask16 nan = _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
      r = _mm512_mask_mov_epi32(r, nan, _mm512_or_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(0x40)));
      _mm256_mask_storeu_epi16(static_cast<uint16_t*>(p.y) + off, mask, _mm512_cvtepi32_epi16(r));
    }
  }
}

template <int... Ms>
struct PanelTables {
  PanelFn f32[sizeof...(Ms)] = {&panel_fma<Ms, false>...};
  PanelFn bf16[sizeof...(Ms)] = {&panel_fma<Ms, true>...};
  PanelFn dp[sizeof...(Ms)] = {&panel_dp<Ms>...};
};
const PanelTables<1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16> kTables;
static_assert(kGemvMaxRows == 16, "one panel kernel per row count");
#endif  // x86

int64_t panels(int64_t n) { return (n + kPanel - 1) / kPanel; }

}  // namespace

GemvPack gemv_pack_format(bool x_bf16, bool w_bf16) {
  const GemvIsa best = detect_isa();
  if (best != GemvIsa::kAvx512 && best != GemvIsa::kAvx512Bf16) return GemvPack::kNone;  // also NEON
  if (!w_bf16) return GemvPack::kF32;
  return x_bf16 && best == GemvIsa::kAvx512Bf16 ? GemvPack::kBf16Dp : GemvPack::kBf16;
}

size_t gemv_packed_bytes(GemvPack f, int64_t k, int64_t n) {
  const auto np = static_cast<size_t>(panels(n));
  switch (f) {
    case GemvPack::kNone: return 0;
    case GemvPack::kF32: return np * static_cast<size_t>(k) * kPanel * 4;
    case GemvPack::kBf16: return np * static_cast<size_t>(k) * kPanel * 2;
    case GemvPack::kBf16Dp: return np * static_cast<size_t>((k + 1) / 2) * kPanel * 2 * 2;
  }
  return 0;
}

void gemv_pack(GemvPack f, const void* w, bool w_bf16, int64_t k, int64_t n, void* dst) {
  const int64_t np = panels(n);
  auto wf = [&](int64_t row, int64_t col) -> float {
    return w_bf16 ? bf16_bits_to_f32(static_cast<const uint16_t*>(w)[row * k + col])
                  : static_cast<const float*>(w)[row * k + col];
  };
  auto wh = [&](int64_t row, int64_t col) -> uint16_t {
    if (row >= n || col >= k) return 0;
    return w_bf16 ? static_cast<const uint16_t*>(w)[row * k + col] : f32_to_bf16_rne(wf(row, col));
  };
  if (f == GemvPack::kF32) {
    float* d = static_cast<float*>(dst);
    for (int64_t p = 0; p < np; ++p)
      for (int64_t kk = 0; kk < k; ++kk)
        for (int j = 0; j < kPanel; ++j) {
          const int64_t row = p * kPanel + j;
          d[(p * k + kk) * kPanel + j] = row < n ? wf(row, kk) : 0.f;
        }
  } else if (f == GemvPack::kBf16) {
    auto* d = static_cast<uint16_t*>(dst);
    for (int64_t p = 0; p < np; ++p)
      for (int64_t kk = 0; kk < k; ++kk)
        for (int j = 0; j < kPanel; ++j) d[(p * k + kk) * kPanel + j] = wh(p * kPanel + j, kk);
  } else if (f == GemvPack::kBf16Dp) {
    auto* d = static_cast<uint16_t*>(dst);
    const int64_t kp = (k + 1) / 2;
    for (int64_t p = 0; p < np; ++p)
      for (int64_t q = 0; q < kp; ++q)
        for (int j = 0; j < kPanel; ++j)
          for (int e = 0; e < 2; ++e) d[((p * kp + q) * kPanel + j) * 2 + e] = wh(p * kPanel + j, 2 * q + e);
  }
}

namespace gemv_detail {

bool gemv_packed(const GemvProblem& p, GemvIsa isa) {
#if !defined(__x86_64__) && !defined(__i386__)
  (void)p, (void)isa;
  return false;  // the panels have AVX-512 kernels only
#else
  if ((isa != GemvIsa::kAvx512 && isa != GemvIsa::kAvx512Bf16) || p.pack == GemvPack::kNone) return false;
  if (p.pack == GemvPack::kBf16Dp && (isa != GemvIsa::kAvx512Bf16 || !p.x_bf16)) return false;
  // Transpose the few activation rows into x_work (widening bf16 for the f32 panels).
  const int m = p.m;
  if (p.pack == GemvPack::kBf16Dp) {
    auto* xt = reinterpret_cast<uint32_t*>(p.x_work);
    const auto* xs = static_cast<const uint16_t*>(p.x);
    const int64_t kp = (p.k + 1) / 2;
    for (int64_t q = 0; q < kp; ++q)
      for (int i = 0; i < m; ++i) {
        const uint16_t* r = xs + i * p.ldx + 2 * q;
        const uint32_t hi = 2 * q + 1 < p.k ? r[1] : 0;
        xt[q * m + i] = r[0] | (hi << 16);
      }
  } else if (p.x_bf16) {
    const auto* xs = static_cast<const uint16_t*>(p.x);
    for (int i = 0; i < m; ++i)
      for (int64_t kk = 0; kk < p.k; ++kk) p.x_work[kk * m + i] = bf16_bits_to_f32(xs[i * p.ldx + kk]);
  } else {
    const auto* xs = static_cast<const float*>(p.x);
    for (int i = 0; i < m; ++i)
      for (int64_t kk = 0; kk < p.k; ++kk) p.x_work[kk * m + i] = xs[i * p.ldx + kk];
  }
  const void* x = p.x_work;
  const PanelFn* table = p.pack == GemvPack::kF32 ? kTables.f32 : p.pack == GemvPack::kBf16 ? kTables.bf16 : kTables.dp;
  const PanelFn fn = table[p.m - 1];
  const size_t panel_bytes = gemv_packed_bytes(p.pack, p.k, kPanel);
  const int64_t np = panels(p.n);
#pragma omp parallel for num_threads(p.threads) schedule(static) if (p.threads > 1)
  for (int64_t pi = 0; pi < np; ++pi) {
    alignas(64) float out[kGemvMaxRows][kPanel];
    fn(x, static_cast<const char*>(p.w_packed) + static_cast<size_t>(pi) * panel_bytes, p.k, out);
    store_panel(p, out, pi * kPanel);
  }
  return true;
#endif
}

}  // namespace gemv_detail
}  // namespace vlart
