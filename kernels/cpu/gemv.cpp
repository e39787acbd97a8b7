#include "cpu/gemv.h"

#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>

namespace vlart {
namespace {

std::atomic<int> g_forced{static_cast<int>(GemvIsa::kAuto)};

GemvIsa detect_isa() {
  static const GemvIsa best = [] {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl"))
      return GemvIsa::kAvx512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return GemvIsa::kAvx2;
    return GemvIsa::kScalar;
  }();
  return best;
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

// Tile: accumulates acc[i][j] = dot(x row i, w row j) for i < mr, j < nr. `w` points at the first
// weight row of the tile (rows are k elements apart).
constexpr int kMaxMr = 4;
constexpr int kMaxNr = 4;
using TileAcc = float[kMaxMr][kMaxNr];
using TileFn = void (*)(const float* x, int64_t ldx, const void* w, int64_t k, TileAcc& acc);

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
void tile_scalar(const float* x, int64_t ldx, const void* w, int64_t k, TileAcc& acc) {
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) {
      float s = 0.f;
      for (int64_t kk = 0; kk < k; ++kk) s += x[i * ldx + kk] * load_w_scalar<BF16>(w, j * k + kk);
      acc[i][j] = s;
    }
}

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
VLART_AVX2 void tile_avx2(const float* x, int64_t ldx, const void* w, int64_t k, TileAcc& acc) {
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
VLART_AVX512 void tile_avx512(const float* x, int64_t ldx, const void* w, int64_t k, TileAcc& acc) {
  __m512 a[MR][NR];
#pragma GCC unroll 4
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int j = 0; j < NR; ++j) a[i][j] = _mm512_setzero_ps();
  const int64_t kv = k & ~int64_t{15};
  for (int64_t kk = 0; kk < kv; kk += 16) {
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

#pragma GCC diagnostic pop

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
template <int MR, int NR, bool B>
struct Avx2Tile {
  static constexpr TileFn fn = &tile_avx2<MR, NR, B>;
};
template <int MR, int NR, bool B>
struct Avx512Tile {
  static constexpr TileFn fn = &tile_avx512<MR, NR, B>;
};

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

const TileTable& table_for(GemvIsa isa) {
  static const TileTable scalar = build_table<ScalarTile, 4>();
  static const TileTable avx2 = build_table<Avx2Tile, 2>();
  static const TileTable avx512 = build_table<Avx512Tile, 4>();
  switch (isa) {
    case GemvIsa::kAvx512: return avx512;
    case GemvIsa::kAvx2: return avx2;
    default: return scalar;
  }
}

}  // namespace

void gemv_force_isa(GemvIsa isa) { g_forced.store(static_cast<int>(isa), std::memory_order_relaxed); }

GemvIsa gemv_active_isa() {
  const GemvIsa best = detect_isa();
  const auto forced = static_cast<GemvIsa>(g_forced.load(std::memory_order_relaxed));
  if (forced == GemvIsa::kAuto) return best;
  return static_cast<int>(forced) < static_cast<int>(best) ? forced : best;
}

const char* gemv_isa_name(GemvIsa isa) {
  switch (isa) {
    case GemvIsa::kAuto: return "auto";
    case GemvIsa::kScalar: return "scalar";
    case GemvIsa::kAvx2: return "avx2";
    case GemvIsa::kAvx512: return "avx512";
  }
  return "?";
}

void gemv(const GemvProblem& p) {
  if (p.m <= 0 || p.n <= 0) return;
  const TileTable& t = table_for(gemv_active_isa());
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
      t.fn[b16][mr - 1][nr - 1](p.x + m0 * p.ldx, p.ldx, w, p.k, acc);
      store_tile(p, m0, mr, n0, nr, acc);
    }
  }
}

}  // namespace vlart
