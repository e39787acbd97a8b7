#include "cpu/gemv.h"
#include "cpu/gemv_internal.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>

namespace vlart {
using namespace gemv_detail;
namespace {

std::atomic<int> g_forced{static_cast<int>(GemvIsa::kAuto)};

// Tile: accumulates acc[i][j] = dot(x row i, w row j) for i < mr, j < nr. `w` points at the first
// weight row of the tile (rows are k elements apart).
constexpr int kMaxMr = 4;
constexpr int kMaxNr = 4;
using TileAcc = float[kMaxMr][kMaxNr];
// `pf`, when not null, is the first weight row of the next tile: the tile prefetches it into L2
// while it computes, one tile ahead of the hardware prefetcher's short per-row streams.
using TileFn = void (*)(const float* x, int64_t ldx, const void* w, int64_t k, const void* pf, TileAcc& acc);

// Epilogue of one tile: bias, activation, store.
void store_tile(const GemvProblem& p, int m0, int mr, int64_t n0, int nr, const TileAcc& acc) {
  for (int i = 0; i < mr; ++i) {
    const int64_t row = static_cast<int64_t>(m0 + i) * p.ldy;
    for (int j = 0; j < nr; ++j) {
      float v = acc[i][j];
      if (p.bias)
        v += p.bias_bf16 ? bf16_bits_to_f32(static_cast<const uint16_t*>(p.bias)[n0 + j])
                         : static_cast<const float*>(p.bias)[n0 + j];
      v = activate(v, p.act);
      if (p.y_bf16)
        static_cast<uint16_t*>(p.y)[row + n0 + j] = f32_to_bf16_rne(v);
      else
        static_cast<float*>(p.y)[row + n0 + j] = v;
    }
  }
}

// ---------------------------------------------------------------- scalar
template <bool BF16>
inline float load_w_scalar(const void* w, int64_t i) {
  if (BF16) return bf16_bits_to_f32(static_cast<const uint16_t*>(w)[i]);
  return static_cast<const float*>(w)[i];
}

template <int MR, int NR, bool BF16>
void tile_scalar(const float* x, int64_t ldx, const void* w, int64_t k, const void* /*pf*/, TileAcc& acc) {
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) {
      float s = 0.f;
      for (int64_t kk = 0; kk < k; ++kk) s += x[i * ldx + kk] * load_w_scalar<BF16>(w, j * k + kk);
      acc[i][j] = s;
    }
}

// x86 tiles (AVX2, AVX-512, AVX512_BF16); aarch64 builds use the NEON tiles of gemv_neon.cpp.
#if defined(__x86_64__) || defined(__i386__)
// ---------------------------------------------------------------- AVX2 + FMA
#define VLART_AVX2 __attribute__((target("avx2,fma")))

template <bool BF16>
VLART_AVX2 inline __m256 load_w8(const void* w, int64_t i) {
  if (BF16) {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(w) + i));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  }
  return _mm256_loadu_ps(static_cast<const float*>(w) + i);
}

VLART_AVX2 inline float hsum8(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// 16 ymm registers: a 4x2 tile keeps 8 accumulators + 2 weight vectors + 1 activation live.
template <int MR, int NR, bool BF16>
VLART_AVX2 void tile_avx2(const float* x, int64_t ldx, const void* w, int64_t k, const void* /*pf*/, TileAcc& acc) {
  __m256 a[MR][NR];
#pragma GCC unroll 4
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int j = 0; j < NR; ++j) a[i][j] = _mm256_setzero_ps();
  const int64_t kv = k & ~int64_t{7};
  for (int64_t kk = 0; kk < kv; kk += 8) {
    __m256 wv[NR];
#pragma GCC unroll 4
    for (int j = 0; j < NR; ++j) wv[j] = load_w8<BF16>(w, j * k + kk);
#pragma GCC unroll 4
    for (int i = 0; i < MR; ++i) {
      const __m256 xv = _mm256_loadu_ps(x + i * ldx + kk);
#pragma GCC unroll 4
      for (int j = 0; j < NR; ++j) a[i][j] = _mm256_fmadd_ps(xv, wv[j], a[i][j]);
    }
  }
#pragma GCC unroll 4
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int j = 0; j < NR; ++j) {
      float s = hsum8(a[i][j]);
      for (int64_t kk = kv; kk < k; ++kk) s += x[i * ldx + kk] * load_w_scalar<BF16>(w, j * k + kk);
      acc[i][j] = s;
    }
}

// ---------------------------------------------------------------- AVX-512
// GCC 12's AVX-512 headers implement _mm512_undefined_* as self-initialisation, which
// -Wuninitialized reports once inlined (GCC PR105593); the lanes are never read.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#define VLART_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma")))

template <bool BF16>
VLART_AVX512 inline __m512 load_w16(const void* w, int64_t i) {
  if (BF16) {
    const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(static_cast<const uint16_t*>(w) + i));
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
  }
  return _mm512_loadu_ps(static_cast<const float*>(w) + i);
}

template <bool BF16>
VLART_AVX512 inline __m512 load_w16_masked(const void* w, int64_t i, __mmask16 m) {
  if (BF16) {
    const __m256i h = _mm256_maskz_loadu_epi16(m, static_cast<const uint16_t*>(w) + i);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
  }
  return _mm512_maskz_loadu_ps(m, static_cast<const float*>(w) + i);
}

// Horizontal sum without _mm512_reduce_add_ps (its GCC 12 expansion warns about undefined lanes).
VLART_AVX512 inline float hsum16(__m512 v) {
  const __m512 s = _mm512_add_ps(v, _mm512_shuffle_f32x4(v, v, 0x4E));  // fold 256-bit halves
  return hsum8(_mm512_castps512_ps256(s));
}

// 32 zmm registers: a 4x4 tile keeps 16 accumulators + 4 weight vectors + 1 activation live.
template <int MR, int NR, bool BF16>
VLART_AVX512 void tile_avx512(const float* x, int64_t ldx, const void* w, int64_t k, const void* pf,
                               TileAcc& acc) {
  __m512 a[MR][NR];
#pragma GCC unroll 4
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int j = 0; j < NR; ++j) a[i][j] = _mm512_setzero_ps();
  const int64_t kv = k & ~int64_t{15};
  constexpr int64_t kWs = BF16 ? 2 : 4;
  for (int64_t kk = 0; kk < kv; kk += 16) {
    if (pf) {
#pragma GCC unroll 4
      for (int j = 0; j < NR; ++j)
        _mm_prefetch(static_cast<const char*>(pf) + (j * k + kk) * kWs, _MM_HINT_T1);
    }
    __m512 wv[NR];
#pragma GCC unroll 4
    for (int j = 0; j < NR; ++j) wv[j] = load_w16<BF16>(w, j * k + kk);
#pragma GCC unroll 4
    for (int i = 0; i < MR; ++i) {
      const __m512 xv = _mm512_loadu_ps(x + i * ldx + kk);
#pragma GCC unroll 4
      for (int j = 0; j < NR; ++j) a[i][j] = _mm512_fmadd_ps(xv, wv[j], a[i][j]);
    }
  }
  if (kv < k) {
    const __mmask16 m = static_cast<__mmask16>((1u << (k - kv)) - 1u);
    __m512 wv[NR];
#pragma GCC unroll 4
    for (int j = 0; j < NR; ++j) wv[j] = load_w16_masked<BF16>(w, j * k + kv, m);
#pragma GCC unroll 4
    for (int i = 0; i < MR; ++i) {
      const __m512 xv = _mm512_maskz_loadu_ps(m, x + i * ldx + kv);
#pragma GCC unroll 4
      for (int j = 0; j < NR; ++j) a[i][j] = _mm512_fmadd_ps(xv, wv[j], a[i][j]);
    }
  }
#pragma GCC unroll 4
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int j = 0; j < NR; ++j) acc[i][j] = hsum16(a[i][j]);
}

// bf16 x bf16 with vdpbf16ps: each instruction adds 16 lanes of a[2i]*b[2i] + a[2i+1]*b[2i+1],
// 32 k-elements per weight vector. The x rows are bf16 here (x points at uint16_t).
#define VLART_AVX512BF16 __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16,avx2,fma")))

template <int MR, int NR, bool BF16_UNUSED>
VLART_AVX512BF16 void tile_dpbf16(const float* xf, int64_t ldx, const void* w, int64_t k, const void* pf,
                                   TileAcc& acc) {
  const auto* x = reinterpret_cast<const uint16_t*>(xf);
  const auto* wh = static_cast<const uint16_t*>(w);
  __m512 a[MR][NR];
#pragma GCC unroll 4
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int j = 0; j < NR; ++j) a[i][j] = _mm512_setzero_ps();
  const int64_t kv = k & ~int64_t{31};
  for (int64_t kk = 0; kk < kv; kk += 32) {
    if (pf) {
#pragma GCC unroll 4
      for (int j = 0; j < NR; ++j) _mm_prefetch(reinterpret_cast<const char*>(static_cast<const uint16_t*>(pf) + j * k + kk), _MM_HINT_T1);
    }
    __m512bh wv[NR];
#pragma GCC unroll 4
    for (int j = 0; j < NR; ++j) wv[j] = (__m512bh)_mm512_loadu_si512(wh + j * k + kk);
#pragma GCC unroll 4
    for (int i = 0; i < MR; ++i) {
      const __m512bh xv = (__m512bh)_mm512_loadu_si512(x + i * ldx + kk);
#pragma GCC unroll 4
      for (int j = 0; j < NR; ++j) a[i][j] = _mm512_dpbf16_ps(a[i][j], xv, wv[j]);
    }
  }
  if (kv < k) {
    // Masked-off elements load as +0.0, contributing nothing.
    const __mmask32 m = static_cast<__mmask32>((uint64_t{1} << (k - kv)) - 1u);
    __m512bh wv[NR];
#pragma GCC unroll 4
    for (int j = 0; j < NR; ++j) wv[j] = (__m512bh)_mm512_maskz_loadu_epi16(m, wh + j * k + kv);
#pragma GCC unroll 4
    for (int i = 0; i < MR; ++i) {
      const __m512bh xv = (__m512bh)_mm512_maskz_loadu_epi16(m, x + i * ldx + kv);
#pragma GCC unroll 4
      for (int j = 0; j < NR; ++j) a[i][j] = _mm512_dpbf16_ps(a[i][j], xv, wv[j]);
    }
  }
#pragma GCC unroll 4
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int j = 0; j < NR; ++j) acc[i][j] = hsum16(a[i][j]);
}

#pragma GCC diagnostic pop
#endif  // x86

// ---------------------------------------------------------------- dispatch
// Table of tile functions indexed [bf16][mr-1][nr-1] for one ISA.
struct TileTable {
  int nr = 1;  // widest tile in N this ISA uses
  TileFn fn[2][kMaxMr][kMaxNr] = {};
};

template <int MR, int NR, bool B>
struct ScalarTile {
  static constexpr TileFn fn = &tile_scalar<MR, NR, B>;
};
#if defined(__x86_64__) || defined(__i386__)
template <int MR, int NR, bool B>
struct Avx2Tile {
  static constexpr TileFn fn = &tile_avx2<MR, NR, B>;
};
template <int MR, int NR, bool B>
struct Avx512Tile {
  static constexpr TileFn fn = &tile_avx512<MR, NR, B>;
};

template <int MR, int NR, bool B>
struct DpBf16Tile {
  static constexpr TileFn fn = &tile_dpbf16<MR, NR, B>;
};
#endif  // x86

template <template <int, int, bool> class F, int MR, int NR>
void fill_one(TileTable& t) {
  t.fn[0][MR - 1][NR - 1] = F<MR, NR, false>::fn;
  t.fn[1][MR - 1][NR - 1] = F<MR, NR, true>::fn;
}

template <template <int, int, bool> class F, int NRMAX>
TileTable build_table() {
  TileTable t;
  t.nr = NRMAX;
  fill_one<F, 1, 1>(t), fill_one<F, 2, 1>(t), fill_one<F, 3, 1>(t), fill_one<F, 4, 1>(t);
  fill_one<F, 1, 2>(t), fill_one<F, 2, 2>(t), fill_one<F, 3, 2>(t), fill_one<F, 4, 2>(t);
  if constexpr (NRMAX >= 3) {
    fill_one<F, 1, 3>(t), fill_one<F, 2, 3>(t), fill_one<F, 3, 3>(t), fill_one<F, 4, 3>(t);
  }
  if constexpr (NRMAX >= 4) {
    fill_one<F, 1, 4>(t), fill_one<F, 2, 4>(t), fill_one<F, 3, 4>(t), fill_one<F, 4, 4>(t);
  }
  return t;
}

#if defined(__aarch64__)
TileTable neon_table() {
  TileTable t;
  t.nr = kMaxNr;
  for (int b = 0; b < 2; ++b)
    for (int mr = 1; mr <= kMaxMr; ++mr)
      for (int nr = 1; nr <= kMaxNr; ++nr) t.fn[b][mr - 1][nr - 1] = gemv_neon_tile(mr, nr, b == 1);
  return t;
}
#endif

const TileTable& table_for(GemvIsa isa) {
  static const TileTable scalar = build_table<ScalarTile, 4>();
#if defined(__x86_64__) || defined(__i386__)
  static const TileTable avx2 = build_table<Avx2Tile, 2>();
  static const TileTable avx512 = build_table<Avx512Tile, 4>();
  static const TileTable dpbf16 = build_table<DpBf16Tile, 4>();
  switch (isa) {
    case GemvIsa::kAvx512Bf16: return dpbf16;
    case GemvIsa::kAvx512: return avx512;
    case GemvIsa::kAvx2: return avx2;
    default: return scalar;
  }
#elif defined(__aarch64__)
  static const TileTable neon = neon_table();
  return isa == GemvIsa::kNeon ? neon : scalar;
#else
  (void)isa;
  return scalar;
#endif
}

}  // namespace

void gemv_force_isa(GemvIsa isa) { g_forced.store(static_cast<int>(isa), std::memory_order_relaxed); }

GemvIsa gemv_active_isa() {
  const GemvIsa best = detect_isa();
  const auto forced = static_cast<GemvIsa>(g_forced.load(std::memory_order_relaxed));
  if (forced == GemvIsa::kAuto) return best;
  // A path of the other architecture's family cannot run here: the best one that can.
  if (!gemv_isa_supported(forced)) return best;
  return static_cast<int>(forced) < static_cast<int>(best) ? forced : best;
}

bool gemv_isa_supported(GemvIsa isa) {
  const GemvIsa best = detect_isa();
  switch (isa) {
    case GemvIsa::kAuto:
    case GemvIsa::kScalar: return true;
    case GemvIsa::kNeon: return best == GemvIsa::kNeon;
    case GemvIsa::kAvx2:
    case GemvIsa::kAvx512:
    case GemvIsa::kAvx512Bf16:
      return best != GemvIsa::kNeon && static_cast<int>(isa) <= static_cast<int>(best);
  }
  return false;
}

const char* gemv_isa_name(GemvIsa isa) {
  switch (isa) {
    case GemvIsa::kAuto: return "auto";
    case GemvIsa::kScalar: return "scalar";
    case GemvIsa::kAvx2: return "avx2";
    case GemvIsa::kAvx512: return "avx512";
    case GemvIsa::kAvx512Bf16: return "avx512bf16";
    case GemvIsa::kNeon: return "neon";
  }
  return "?";
}

void gemv(const GemvProblem& p) {
  if (p.m <= 0 || p.n <= 0) return;
  GemvIsa isa = gemv_active_isa();
  if (p.w_packed && gemv_packed(p, isa)) return;
  const bool dot_bf16 = isa == GemvIsa::kAvx512Bf16 && p.x_bf16 && p.w_bf16;
  if (isa == GemvIsa::kAvx512Bf16 && !dot_bf16) isa = GemvIsa::kAvx512;
  const float* xf = static_cast<const float*>(p.x);
  int64_t ldx = p.ldx;
  if (p.x_bf16 && !dot_bf16) {
    // This path multiplies in f32: widen the few activation rows once.
    for (int i = 0; i < p.m; ++i) {
      const auto* src = static_cast<const uint16_t*>(p.x) + i * p.ldx;
      float* dst = p.x_work + i * p.k;
      for (int64_t kk = 0; kk < p.k; ++kk) dst[kk] = bf16_bits_to_f32(src[kk]);
    }
    xf = p.x_work;
    ldx = p.k;
  }
  const TileTable& t = table_for(isa);
  const size_t xsize = dot_bf16 ? 2 : 4;
  const int nrmax = t.nr;
  const int b16 = p.w_bf16 ? 1 : 0;
  const size_t wsize = p.w_bf16 ? 2 : 4;
  const int64_t nblocks = (p.n + nrmax - 1) / nrmax;
  // Static schedule: each thread streams one contiguous slab of weight rows.
#pragma omp parallel for num_threads(p.threads) schedule(static) if (p.threads > 1)
  for (int64_t b = 0; b < nblocks; ++b) {
    const int64_t n0 = b * nrmax;
    const int nr = static_cast<int>(std::min<int64_t>(nrmax, p.n - n0));
    const void* w = static_cast<const char*>(p.w) + static_cast<size_t>(n0 * p.k) * wsize;
    // All M rows meet these nr weight rows while they are still in L1/L2.
    for (int m0 = 0; m0 < p.m; m0 += kMaxMr) {
      const int mr = std::min(kMaxMr, p.m - m0);
      TileAcc acc;
      // Tiles take the x row block as a float pointer; the bf16-dot tile reinterprets it.
      const float* xb = reinterpret_cast<const float*>(reinterpret_cast<const char*>(xf) +
                                                       static_cast<size_t>(m0 * ldx) * xsize);
      const void* pf = m0 == 0 ? static_cast<const char*>(w) + static_cast<size_t>(nr * p.k) * wsize : nullptr;
      t.fn[b16][mr - 1][nr - 1](xb, ldx, w, p.k, pf, acc);
      store_tile(p, m0, mr, n0, nr, acc);
    }
  }
}

}  // namespace vlart
