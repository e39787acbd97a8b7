// W8A8 GEMM with exact int32 accumulation for AVX2 (vpmaddwd) and AVX-VNNI (vpdpbusd ymm) CPUs;
// see qgemm_s8.h for the layouts and the contract.
#include "cpu/qgemm_s8.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "cpu/isa.h"
#include "cpu/vec_math.h"
#include "vlart/dtype.h"
#include "vlart/error.h"

namespace vlart {

namespace {
size_t align64(size_t v) { return (v + 63) / 64 * 64; }
bool vnni_layout(S8GemmIsa isa) { return isa == S8GemmIsa::kAvxVnni || isa == S8GemmIsa::kAvx2VnniEmu; }
}  // namespace

const char* s8gemm_isa_name(S8GemmIsa isa) {
  switch (isa) {
    case S8GemmIsa::kNone: return "none";
    case S8GemmIsa::kAvx2: return "avx2-vpmaddwd";
    case S8GemmIsa::kAvxVnni: return "avx-vnni";
    case S8GemmIsa::kAvx2VnniEmu: return "avx2-vnni-emulated";
  }
  return "?";
}

#if defined(__x86_64__)

namespace {
// Through the ISA ladder (cpu/isa.h): the VLART_MAX_CPU_ISA cap applies, and AVX-VNNI is read from CPUID
// (not every compiler's __builtin_cpu_supports knows "avxvnni").
bool cpu_has_avx2() { return ::vlart::kernels::cpu_isa_max() >= ::vlart::kernels::CpuIsa::kAvx2; }
bool cpu_has_avxvnni() { return ::vlart::kernels::cpu_has_avx_vnni(); }
}  // namespace

bool s8gemm_isa_supported(S8GemmIsa isa) {
  switch (isa) {
    case S8GemmIsa::kNone: return false;
    case S8GemmIsa::kAvx2:
    case S8GemmIsa::kAvx2VnniEmu: return cpu_has_avx2();
    case S8GemmIsa::kAvxVnni: return cpu_has_avxvnni();
  }
  return false;
}

S8GemmIsa s8gemm_best_isa() {
  if (cpu_has_avxvnni()) return S8GemmIsa::kAvxVnni;
  if (cpu_has_avx2()) return S8GemmIsa::kAvx2;
  return S8GemmIsa::kNone;
}

S8GemmLayout s8gemm_layout(S8GemmIsa isa, int64_t n, int64_t k) {
  VLART_CHECK(isa != S8GemmIsa::kNone, InvalidArgument, "s8gemm: no instruction set given");
  VLART_CHECK(n >= 0 && k >= 0, InvalidArgument, "s8gemm: negative shape [", n, ", ", k, "]");
  S8GemmLayout L;
  L.isa = isa;
  L.n = n;
  L.k = k;
  L.kgroups = vnni_layout(isa) ? (k + 3) / 4 : (k + 1) / 2;
  L.panels = (n + kS8NR - 1) / kS8NR;
  const size_t data = static_cast<size_t>(L.panels) * static_cast<size_t>(L.kgroups) * kS8NR * 4;
  const size_t table = static_cast<size_t>(L.panels) * kS8NR * 4;
  L.scale_offset = align64(data);
  L.comp_offset = align64(L.scale_offset + table);
  L.total_bytes = std::max<size_t>(64, align64(L.comp_offset + table));
  return L;
}

void s8gemm_pack(const S8GemmLayout& L, const int8_t* q, const float* scales, void* dst) {
  auto* base = static_cast<uint8_t*>(dst);
  std::memset(base, 0, L.total_bytes);
  auto* sc = reinterpret_cast<float*>(base + L.scale_offset);
  auto* comp = reinterpret_cast<int32_t*>(base + L.comp_offset);
  const bool vnni = vnni_layout(L.isa);
  const int per = vnni ? 4 : 2;  // k per group
  for (int64_t r = 0; r < L.n; ++r) {
    const int64_t p = r / kS8NR, j = r % kS8NR;
    const int8_t* row = q + r * L.k;
    uint8_t* panel = base + static_cast<size_t>(p) * static_cast<size_t>(L.kgroups) * kS8NR * 4;
    int64_t sum = 0;
    for (int64_t c = 0; c < L.k; ++c) {
      const int64_t g = c / per, t = c % per;
      uint8_t* slot = panel + (g * kS8NR + j) * 4;
      if (vnni) {
        slot[t] = static_cast<uint8_t>(row[c]);
      } else {
        const int16_t v = row[c];
        std::memcpy(slot + 2 * t, &v, 2);
      }
      sum += row[c];
    }
    sc[r] = scales[r];
    // |sum| <= 128 * k: int32 for k < 2^24.
    comp[r] = vnni ? static_cast<int32_t>(-128 * sum) : 0;
  }
}

namespace {
constexpr int64_t kS8KBlockGroups = 384;  // k-groups per K block (see compute_panels)
int64_t k_block_count(const S8GemmLayout& L) {
  return std::max<int64_t>(1, (L.kgroups + kS8KBlockGroups - 1) / kS8KBlockGroups);
}
// Scratch: packed activations | row scales | widened bias | partial sums (more than one K block).
struct ScratchMap {
  size_t qa = 0, rs = 0, bias = 0, part = 0, total = 0;
};
ScratchMap scratch_map(const S8GemmLayout& L, int64_t m) {
  const int64_t tiles = (m + kS8MR - 1) / kS8MR;
  ScratchMap s;
  s.rs = align64(static_cast<size_t>(tiles) * static_cast<size_t>(L.kgroups) * kS8MR * 4);
  s.bias = s.rs + align64(static_cast<size_t>(m) * sizeof(float));
  s.part = s.bias + align64(static_cast<size_t>(L.n) * sizeof(float));
  const size_t part = k_block_count(L) > 1 ? static_cast<size_t>(tiles * L.panels) * kS8MR * kS8NR * 4 : 0;
  s.total = s.part + part + 64;
  return s;
}
}  // namespace

size_t s8gemm_scratch_bytes(const S8GemmLayout& L, int64_t m) { return scratch_map(L, m).total; }

// Everything from here to the matching pop is compiled for AVX2 + FMA (callers check the CPU first).
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#endif
namespace {

#define VLART_S8_INLINE inline __attribute__((always_inline))

// Epilogue parameters of one panel (16 columns).
struct S8TileEpi {
  const float* rs = nullptr;      // row scales [m]
  const float* ws = nullptr;      // weight scales of the panel [16] (zero padded)
  const int32_t* comp = nullptr;  // VNNI: -128 * colsum of the panel [16], else nullptr
  const float* bias = nullptr;    // f32 [n] or nullptr
  GemvAct act = GemvAct::kNone;
  void* y = nullptr;
  int64_t ldy = 0;
  bool y_bf16 = false;
  int32_t* y_s32 = nullptr;
  bool acc_in = false;   // K block after the first: continue from the partial sums
  bool acc_out = false;  // K block before the last: store the partial sums
};

// exp(x) as kernels::exp_f (same reduction, polynomial and limits): 2^n from exponent bits.
VLART_S8_INLINE __m256 exp_avx2(__m256 x) {
  x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-100.f)), _mm256_set1_ps(88.7f));
  const __m256 n =
      _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693145751953125f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(1.428606765330187e-06f), r);
  __m256 p = _mm256_set1_ps(1.f / 5040.f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.f / 720.f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.f / 120.f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.f / 24.f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.f / 6.f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.f));
  __m256i e = _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127));
  e = _mm256_max_epi32(e, _mm256_setzero_si256());
  return _mm256_mul_ps(p, _mm256_castsi256_ps(_mm256_slli_epi32(e, 23)));
}

VLART_S8_INLINE __m256 activate_avx2(__m256 v, GemvAct act) {
  const __m256 one = _mm256_set1_ps(1.f);
  switch (act) {
    case GemvAct::kNone: return v;
    case GemvAct::kRelu: return _mm256_max_ps(v, _mm256_setzero_ps());
    case GemvAct::kSilu: return _mm256_div_ps(v, _mm256_add_ps(one, exp_avx2(_mm256_sub_ps(_mm256_setzero_ps(), v))));
    case GemvAct::kGeluTanh: {
      const __m256 x3 = _mm256_mul_ps(_mm256_mul_ps(v, v), v);
      const __m256 u =
          _mm256_mul_ps(_mm256_set1_ps(0.7978845608028654f), _mm256_fmadd_ps(_mm256_set1_ps(0.044715f), x3, v));
      return _mm256_div_ps(v, _mm256_add_ps(one, exp_avx2(_mm256_mul_ps(_mm256_set1_ps(-2.f), u))));
    }
    case GemvAct::kGeluErf: {
      alignas(32) float t[8];
      _mm256_store_ps(t, v);
      for (float& x : t) x = kernels::gelu_erf_f(x);
      return _mm256_load_ps(t);
    }
  }
  return v;
}

// f32 -> bf16 bits (round to nearest even, NaN kept quiet, as f32_to_bf16), 8 lanes in 32-bit slots.
VLART_S8_INLINE __m256i bf16_bits_avx2(__m256 v) {
  const __m256i u = _mm256_castps_si256(v);
  const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
  const __m256i r = _mm256_srli_epi32(_mm256_add_epi32(_mm256_add_epi32(u, _mm256_set1_epi32(0x7fff)), lsb), 16);
  const __m256i q = _mm256_or_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(0x40));
  const __m256i nan = _mm256_castps_si256(_mm256_cmp_ps(v, v, _CMP_UNORD_Q));
  return _mm256_blendv_epi8(r, q, nan);
}

VLART_S8_INLINE __m256i lane_mask(int left) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(left), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// Scales, bias, activation and the store of one row of a tile (columns c0 .. c0+nc-1, nc <= 16).
VLART_S8_INLINE void s8_store_row(const S8TileEpi& e, __m256i a0, __m256i a1, int64_t r, int64_t c0, int nc) {
  if (e.comp) {
    a0 = _mm256_add_epi32(a0, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(e.comp)));
    a1 = _mm256_add_epi32(a1, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(e.comp + 8)));
  }
  if (e.y_s32) {
    int32_t* y = e.y_s32 + r * e.ldy + c0;
    if (nc == kS8NR) {
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(y), a0);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(y + 8), a1);
    } else {
      _mm256_maskstore_epi32(y, lane_mask(nc), a0);
      _mm256_maskstore_epi32(y + 8, lane_mask(nc - 8), a1);
    }
    return;
  }
  const __m256 rs = _mm256_set1_ps(e.rs[r]);
  // (acc * w_scale) * row_scale + bias: the order of the oneDNN path (output scales, then epilogue).
  __m256 v0 = _mm256_mul_ps(_mm256_cvtepi32_ps(a0), _mm256_loadu_ps(e.ws));
  __m256 v1 = _mm256_mul_ps(_mm256_cvtepi32_ps(a1), _mm256_loadu_ps(e.ws + 8));
  __m256 b0 = _mm256_setzero_ps(), b1 = _mm256_setzero_ps();
  if (e.bias) {
    if (nc == kS8NR) {
      b0 = _mm256_loadu_ps(e.bias + c0);
      b1 = _mm256_loadu_ps(e.bias + c0 + 8);
    } else {
      b0 = _mm256_maskload_ps(e.bias + c0, lane_mask(nc));
      b1 = _mm256_maskload_ps(e.bias + c0 + 8, lane_mask(nc - 8));
    }
  }
  v0 = activate_avx2(_mm256_fmadd_ps(v0, rs, b0), e.act);
  v1 = activate_avx2(_mm256_fmadd_ps(v1, rs, b1), e.act);
  if (e.y_bf16) {
    // 16 bf16: pack the two 8-lane halves (packus interleaves 128-bit lanes; permute restores order).
    const __m256i pk = _mm256_permute4x64_epi64(_mm256_packus_epi32(bf16_bits_avx2(v0), bf16_bits_avx2(v1)), 0xD8);
    uint16_t* y = static_cast<uint16_t*>(e.y) + r * e.ldy + c0;
    if (nc == kS8NR) {
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(y), pk);
    } else {
      alignas(32) uint16_t t[16];
      _mm256_store_si256(reinterpret_cast<__m256i*>(t), pk);
      std::memcpy(y, t, sizeof(uint16_t) * static_cast<size_t>(nc));
    }
    return;
  }
  float* y = static_cast<float*>(e.y) + r * e.ldy + c0;
  if (nc == kS8NR) {
    _mm256_storeu_ps(y, v0);
    _mm256_storeu_ps(y + 8, v1);
  } else {
    _mm256_maskstore_ps(y, lane_mask(nc), v0);
    _mm256_maskstore_ps(y + 8, lane_mask(nc - 8), v1);
  }
}

// int16 pairs (kAvx2): each 32-bit lane holds (q[2g], q[2g+1]); vpmaddwd sums both products exactly.
struct Madd16Dot {
  static VLART_S8_INLINE __m256i mac(__m256i acc, __m256i a, __m256i w) {
    return _mm256_add_epi32(acc, _mm256_madd_epi16(a, w));
  }
};

// vpdpbusd (u8 a x s8 w, four products per 32-bit lane, no saturation) emulated exactly with AVX2:
// even and odd bytes widened to int16 (a zero-extended, w sign-extended), two vpmaddwd.
struct VnniEmuDot {
  static VLART_S8_INLINE __m256i mac(__m256i acc, __m256i a, __m256i w) {
    const __m256i a_even = _mm256_and_si256(a, _mm256_set1_epi16(0x00ff));
    const __m256i a_odd = _mm256_srli_epi16(a, 8);
    const __m256i w_even = _mm256_srai_epi16(_mm256_slli_epi16(w, 8), 8);
    const __m256i w_odd = _mm256_srai_epi16(w, 8);
    return _mm256_add_epi32(acc, _mm256_add_epi32(_mm256_madd_epi16(a_even, w_even), _mm256_madd_epi16(a_odd, w_odd)));
  }
};

namespace avx2 {
#include "cpu/qgemm_s8_tile.inc"
}  // namespace avx2

using TileFn = void (*)(int, const uint8_t*, const uint8_t*, int64_t, const S8TileEpi&, int64_t, int64_t, int, int32_t*);

// K blocks of at most kS8KBlockGroups k-groups (k <= 768 for kAvx2, 1536 for VNNI): up to 24 KiB of
// a panel, which stays in L1 while the tiles of a row block pass (6 KiB per row tile). Longer k keeps
// partial int32 sums in the scratch (k = 12288: 16 blocks; without them the connector's 64 x 12288
// product ran at a third of the f32 speed, every tile streaming a 384 KiB panel from L3).
int64_t k_blocks(const S8GemmLayout& L) { return k_block_count(L); }

// ---- activations: quantize and pack one row tile ----

VLART_S8_INLINE __m256 load8(const void* x, bool bf16, int64_t i) {
  if (bf16) {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(x) + i));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  }
  return _mm256_loadu_ps(static_cast<const float*>(x) + i);
}

inline float load1(const void* x, bool bf16, int64_t i) {
  return bf16 ? bf16_to_f32(static_cast<const uint16_t*>(x)[i]) : static_cast<const float*>(x)[i];
}

// max |x| over k values; NaN when any is NaN.
float row_absmax(const void* x, bool bf16, int64_t off, int64_t k) {
  const __m256 sign = _mm256_set1_ps(-0.f);
  __m256 m0 = _mm256_setzero_ps(), m1 = _mm256_setzero_ps(), nan = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= k; i += 16) {
    const __m256 a = load8(x, bf16, off + i), b = load8(x, bf16, off + i + 8);
    nan = _mm256_or_ps(nan, _mm256_or_ps(_mm256_cmp_ps(a, a, _CMP_UNORD_Q), _mm256_cmp_ps(b, b, _CMP_UNORD_Q)));
    m0 = _mm256_max_ps(m0, _mm256_andnot_ps(sign, a));
    m1 = _mm256_max_ps(m1, _mm256_andnot_ps(sign, b));
  }
  for (; i + 8 <= k; i += 8) {
    const __m256 a = load8(x, bf16, off + i);
    nan = _mm256_or_ps(nan, _mm256_cmp_ps(a, a, _CMP_UNORD_Q));
    m0 = _mm256_max_ps(m0, _mm256_andnot_ps(sign, a));
  }
  alignas(32) float t[8];
  _mm256_store_ps(t, _mm256_max_ps(m0, m1));
  bool has_nan = _mm256_movemask_ps(nan) != 0;
  float amax = 0.f;
  for (float v : t) amax = std::max(amax, v);
  for (; i < k; ++i) {
    const float v = load1(x, bf16, off + i);
    has_nan |= std::isnan(v);
    amax = std::max(amax, std::fabs(v));
  }
  return has_nan ? std::numeric_limits<float>::quiet_NaN() : amax;
}

// Stores quantized value q (in [-127, 127]) of column c of the row at `slot0` (its first group).
inline void put_q(uint8_t* slot0, bool vnni, int64_t c, int q) {
  if (vnni) {
    slot0[(c / 4) * (kS8MR * 4) + c % 4] = static_cast<uint8_t>(q + 128);
  } else {
    const auto v = static_cast<int16_t>(q);
    std::memcpy(slot0 + (c / 2) * (kS8MR * 4) + 2 * (c % 2), &v, 2);
  }
}

// Fills the row's slots with zeros (stored values for q = 0), columns c0 .. kgroups * per - 1.
void zero_row(uint8_t* slot0, bool vnni, int64_t c0, int64_t cend) {
  for (int64_t c = c0; c < cend; ++c) put_q(slot0, vnni, c, 0);
}

// Quantizes row r of x (as quantize_rows_s8: round half to even, clamp to +-127 in float, NaN row or
// inf under a per-token scale -> zeros and a NaN scale, all-zero row -> scale 0) into its slots.
void quantize_row(const S8GemmLayout& L, const S8GemmProblem& p, int64_t r, uint8_t* slot0, float* scale) {
  const bool vnni = vnni_layout(L.isa);
  const int64_t k = L.k, cend = L.kgroups * (vnni ? 4 : 2);
  const float nanf = std::numeric_limits<float>::quiet_NaN();
  if (p.xq) {
    const int8_t* q = p.xq + r * p.ldx;
    for (int64_t c = 0; c < k; ++c) put_q(slot0, vnni, c, q[c]);
    zero_row(slot0, vnni, k, cend);
    *scale = p.xq_scales ? p.xq_scales[r] : 1.f;
    return;
  }
  const int64_t off = r * p.ldx;
  const float amax = p.static_scale > 0.f ? p.static_scale * 127.f : row_absmax(p.x, p.x_bf16, off, k);
  if (!(amax > 0.f) || !std::isfinite(amax)) {
    zero_row(slot0, vnni, 0, cend);
    *scale = amax > 0.f || std::isnan(amax) ? nanf : 0.f;
    return;
  }
  const float inv = p.static_scale > 0.f ? 1.f / p.static_scale : 127.f / amax;
  *scale = p.static_scale > 0.f ? p.static_scale : amax / 127.f;
  const __m256 vinv = _mm256_set1_ps(inv), lo = _mm256_set1_ps(-127.f), hi = _mm256_set1_ps(127.f);
  __m256 nan = _mm256_setzero_ps();
  constexpr int64_t kStep = kS8MR * 4;  // bytes between a row's consecutive groups
  int64_t c = 0;
  for (; c + 8 <= k; c += 8) {
    const __m256 xv = load8(p.x, p.x_bf16, off + c);
    nan = _mm256_or_ps(nan, _mm256_cmp_ps(xv, xv, _CMP_UNORD_Q));
    const __m256 v = _mm256_min_ps(_mm256_max_ps(_mm256_mul_ps(xv, vinv), lo), hi);
    const __m256i q = _mm256_cvtps_epi32(v);  // round half to even (default MXCSR)
    if (vnni) {
      // u8 = q + 128; 8 values = 2 groups of 4 (c is a multiple of 8, so of 4).
      const __m256i u = _mm256_add_epi32(q, _mm256_set1_epi32(128));
      const __m256i b = _mm256_packus_epi16(_mm256_packs_epi32(u, u), _mm256_setzero_si256());
      const int32_t g0 = _mm256_extract_epi32(b, 0), g1 = _mm256_extract_epi32(b, 4);
      std::memcpy(slot0 + (c / 4) * kStep, &g0, 4);
      std::memcpy(slot0 + (c / 4 + 1) * kStep, &g1, 4);
    } else {
      // int16 pairs: 8 values = 4 groups of 2.
      const __m256i h = _mm256_packs_epi32(q, q);
      const int32_t g0 = _mm256_extract_epi32(h, 0), g1 = _mm256_extract_epi32(h, 1);
      const int32_t g2 = _mm256_extract_epi32(h, 4), g3 = _mm256_extract_epi32(h, 5);
      uint8_t* s = slot0 + (c / 2) * kStep;
      std::memcpy(s, &g0, 4);
      std::memcpy(s + kStep, &g1, 4);
      std::memcpy(s + 2 * kStep, &g2, 4);
      std::memcpy(s + 3 * kStep, &g3, 4);
    }
  }
  bool has_nan = _mm256_movemask_ps(nan) != 0;
  for (; c < k; ++c) {
    const float xv = load1(p.x, p.x_bf16, off + c);
    has_nan |= std::isnan(xv);
    float v = xv * inv;
    v = v > 127.f ? 127.f : (v < -127.f ? -127.f : v);
    put_q(slot0, vnni, c, has_nan ? 0 : static_cast<int>(std::nearbyint(v)));
  }
  zero_row(slot0, vnni, k, cend);
  if (has_nan) {
    zero_row(slot0, vnni, 0, cend);
    *scale = nanf;
  }
}

// Quantizes the rows of tiles [t0, t1); the padding rows of the last tile get zeros.
void quantize_tiles(const S8GemmLayout& L, const S8GemmProblem& p, int64_t t0, int64_t t1, uint8_t* qa,
                    float* rs) {
  const bool vnni = vnni_layout(L.isa);
  const size_t tile_bytes = static_cast<size_t>(L.kgroups) * kS8MR * 4;
  for (int64_t t = t0; t < t1; ++t) {
    uint8_t* tile = qa + static_cast<size_t>(t) * tile_bytes;
    for (int i = 0; i < kS8MR; ++i) {
      const int64_t r = t * kS8MR + i;
      if (r < p.m)
        quantize_row(L, p, r, tile + 4 * i, rs + r);
      else
        zero_row(tile + 4 * i, vnni, 0, L.kgroups * (vnni ? 4 : 2));
    }
  }
}

// Panels [p0, p1) for every row. Loops: K blocks, then row blocks (their activations stay in L2),
// then panels (a panel's K block stays in L1 while every tile of the row block meets it).
// part: partial sums [tiles][panels][kS8MR][16] int32 when there is more than one K block.
void compute_panels(const S8GemmLayout& L, const void* packed, const S8GemmProblem& p, const uint8_t* qa,
                    const float* rs, const float* bias, int32_t* part, int64_t p0, int64_t p1, TileFn tile) {
  const auto* base = static_cast<const uint8_t*>(packed);
  const size_t panel_bytes = static_cast<size_t>(L.kgroups) * kS8NR * 4;
  const size_t tile_bytes = static_cast<size_t>(L.kgroups) * kS8MR * 4;
  const int64_t tiles = (p.m + kS8MR - 1) / kS8MR;
  const int64_t nkb = k_blocks(L);
  const int64_t kc = (L.kgroups + nkb - 1) / nkb;
  const int64_t block = std::max<int64_t>(1, static_cast<int64_t>((size_t{160} << 10) / (static_cast<size_t>(kc) * kS8MR * 4)));
  const bool vnni = vnni_layout(L.isa);
  S8TileEpi e;
  e.rs = rs;
  e.bias = bias;
  e.act = p.act;
  e.y = p.y;
  e.ldy = p.ldy;
  e.y_bf16 = p.y_bf16;
  e.y_s32 = p.y_s32;
  for (int64_t kb = 0; kb < nkb; ++kb) {
    const int64_t g0 = kb * kc, g1 = std::min(L.kgroups, g0 + kc);
    e.acc_in = kb > 0;
    e.acc_out = kb + 1 < nkb;
    for (int64_t tb = 0; tb < tiles; tb += block) {
      const int64_t te = std::min(tiles, tb + block);
      for (int64_t pi = p0; pi < p1; ++pi) {
        const uint8_t* w = base + static_cast<size_t>(pi) * panel_bytes + static_cast<size_t>(g0) * kS8NR * 4;
        e.ws = reinterpret_cast<const float*>(base + L.scale_offset) + pi * kS8NR;
        e.comp = vnni ? reinterpret_cast<const int32_t*>(base + L.comp_offset) + pi * kS8NR : nullptr;
        const int64_t c0 = pi * kS8NR;
        const int nc = static_cast<int>(std::min<int64_t>(kS8NR, L.n - c0));
        for (int64_t t = tb; t < te; ++t) {
          const int64_t r0 = t * kS8MR;
          const int mr = static_cast<int>(std::min<int64_t>(kS8MR, p.m - r0));
          int32_t* pt = part ? part + (t * L.panels + pi) * (kS8MR * kS8NR) : nullptr;
          tile(mr, qa + static_cast<size_t>(t) * tile_bytes + static_cast<size_t>(g0) * kS8MR * 4, w, g1 - g0, e, r0,
               c0, nc, pt);
        }
      }
    }
  }
}

}  // namespace
#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

namespace {

// ---- AVX-VNNI: the same tile with vpdpbusd ymm (VEX encoding). Untested on hardware. ----
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma,avxvnni"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma,avxvnni")
#endif
namespace vnni {
struct VnniDot {
  static VLART_S8_INLINE __m256i mac(__m256i acc, __m256i a, __m256i w) { return _mm256_dpbusd_avx_epi32(acc, a, w); }
};
#include "cpu/qgemm_s8_tile.inc"
}  // namespace vnni
#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

TileFn tile_fn(S8GemmIsa isa) {
  switch (isa) {
    case S8GemmIsa::kAvx2: return &avx2::s8_tile_any<Madd16Dot>;
    case S8GemmIsa::kAvx2VnniEmu: return &avx2::s8_tile_any<VnniEmuDot>;
    case S8GemmIsa::kAvxVnni: return &vnni::s8_tile_any<vnni::VnniDot>;
    case S8GemmIsa::kNone: break;
  }
  return nullptr;
}

}  // namespace

void s8gemm(const S8GemmLayout& L, const void* packed, const S8GemmProblem& p, void* scratch) {
  VLART_CHECK(s8gemm_isa_supported(L.isa), UnsupportedError, "s8gemm: this CPU cannot run ", s8gemm_isa_name(L.isa));
  if (p.m <= 0 || L.n == 0) return;
  const TileFn tile = tile_fn(L.isa);
  const int64_t tiles = (p.m + kS8MR - 1) / kS8MR;
  const ScratchMap sm = scratch_map(L, p.m);
  auto* qa = static_cast<uint8_t*>(scratch);
  auto* rs = reinterpret_cast<float*>(qa + sm.rs);
  int32_t* part = k_blocks(L) > 1 ? reinterpret_cast<int32_t*>(qa + sm.part) : nullptr;
  float* bias = nullptr;
  if (p.bias) {
    bias = reinterpret_cast<float*>(qa + sm.bias);
    if (p.bias_bf16)
      for (int64_t c = 0; c < L.n; ++c) bias[c] = bf16_to_f32(static_cast<const uint16_t*>(p.bias)[c]);
    else
      std::memcpy(bias, p.bias, static_cast<size_t>(L.n) * sizeof(float));
  }
  const double macs = static_cast<double>(p.m) * static_cast<double>(L.n) * static_cast<double>(L.k);
  int nt = static_cast<int>(std::min<int64_t>(std::max(1, p.threads), L.panels));
  if (macs < 262144.0) nt = 1;
  auto split = [](int64_t total, int tid, int nth, int64_t& b, int64_t& e) {
    const int64_t per = total / nth, extra = total % nth;
    b = tid * per + std::min<int64_t>(tid, extra);
    e = b + per + (tid < extra ? 1 : 0);
  };
  if (nt <= 1) {
    quantize_tiles(L, p, 0, tiles, qa, rs);
    compute_panels(L, packed, p, qa, rs, bias, part, 0, L.panels, tile);
    return;
  }
#pragma omp parallel num_threads(nt)
  {
    const int tid = omp_get_thread_num(), nth = omp_get_num_threads();
    int64_t b = 0, e = 0;
    split(tiles, tid, nth, b, e);
    quantize_tiles(L, p, b, e, qa, rs);
#pragma omp barrier
    split(L.panels, tid, nth, b, e);
    compute_panels(L, packed, p, qa, rs, bias, part, b, e, tile);
  }
}

#else  // not x86-64: no kernel here

bool s8gemm_isa_supported(S8GemmIsa) { return false; }
S8GemmIsa s8gemm_best_isa() { return S8GemmIsa::kNone; }
S8GemmLayout s8gemm_layout(S8GemmIsa isa, int64_t, int64_t) {
  VLART_CHECK(false, UnsupportedError, "s8gemm: ", s8gemm_isa_name(isa), " needs an x86-64 CPU");
  return {};
}
void s8gemm_pack(const S8GemmLayout&, const int8_t*, const float*, void*) {
  VLART_CHECK(false, UnsupportedError, "s8gemm: needs an x86-64 CPU");
}
size_t s8gemm_scratch_bytes(const S8GemmLayout&, int64_t) { return 0; }
void s8gemm(const S8GemmLayout&, const void*, const S8GemmProblem&, void*) {
  VLART_CHECK(false, UnsupportedError, "s8gemm: needs an x86-64 CPU");
}

#endif

}  // namespace vlart
