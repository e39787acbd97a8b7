// Quantized-weight GEMV/GEMM (see qgemm.h for the layout and the contract).
#include "cpu/qgemm.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif
#include <omp.h>

#include <algorithm>
#include <array>
#include <limits>
#include <cmath>
#include <cstring>

#include "cpu/gemv_internal.h"
#include "cpu/vec_math.h"
#include "vlart/error.h"

namespace vlart {
using namespace gemv_detail;

namespace {

constexpr int P = kQPanel;

size_t align64(size_t v) { return (v + 63) / 64 * 64; }

// Per-panel pointers into a packed buffer.
struct PanelRef {
  const void* data;
  const float* scale;   // [16] (int8) or [G][16]
  const float* offset;  // int4: [G][16]
};

PanelRef panel_ref(const QPackedLayout& L, const void* packed, int64_t p) {
  const auto* base = static_cast<const uint8_t*>(packed);
  PanelRef r;
  if (L.kind == QWeightKind::kInt8) {
    r.data = base + static_cast<size_t>(p) * static_cast<size_t>(L.k) * P;
    r.scale = reinterpret_cast<const float*>(base + L.scale_offset) + p * P;
    r.offset = nullptr;
  } else {
    r.data = base + static_cast<size_t>(p) * static_cast<size_t>(L.k / 2) * P;
    r.scale = reinterpret_cast<const float*>(base + L.scale_offset) + p * L.groups * P;
    r.offset = reinterpret_cast<const float*>(base + L.offset_offset) + p * L.groups * P;
  }
  return r;
}

// ---- portable path ----
// xt: block activations transposed, [k][mr]; gs: int4 group sums of x, [G][mr].
void panel_scalar(const QPackedLayout& L, const PanelRef& pr, const float* xt, const float* gs, int mr,
                  float (*out)[P]) {
  for (int i = 0; i < mr; ++i)
    for (int j = 0; j < P; ++j) out[i][j] = 0.f;
  if (L.kind == QWeightKind::kInt8) {
    const auto* w = static_cast<const int8_t*>(pr.data);
    for (int64_t kk = 0; kk < L.k; ++kk) {
      const int8_t* wr = w + kk * P;
      for (int i = 0; i < mr; ++i) {
        const float xv = xt[kk * mr + i];
        for (int j = 0; j < P; ++j) out[i][j] += xv * static_cast<float>(wr[j]);
      }
    }
    for (int i = 0; i < mr; ++i)
      for (int j = 0; j < P; ++j) out[i][j] *= pr.scale[j];
    return;
  }
  const auto* w = static_cast<const uint8_t*>(pr.data);
  const int64_t kp_total = L.k / 2, gp = L.group / 2;
  float acc[P][P];
  for (int64_t g = 0; g < L.groups; ++g) {
    for (int i = 0; i < mr; ++i)
      for (int j = 0; j < P; ++j) acc[i][j] = 0.f;
    const int64_t kp1 = std::min(kp_total, (g + 1) * gp);
    for (int64_t kp = g * gp; kp < kp1; ++kp) {
      const uint8_t* wr = w + kp * P;
      for (int i = 0; i < mr; ++i) {
        const float x0 = xt[(2 * kp) * mr + i], x1 = xt[(2 * kp + 1) * mr + i];
        for (int j = 0; j < P; ++j)
          acc[i][j] += x0 * static_cast<float>(wr[j] & 15) + x1 * static_cast<float>(wr[j] >> 4);
      }
    }
    const float* s = pr.scale + g * P;
    const float* o = pr.offset + g * P;
    for (int i = 0; i < mr; ++i)
      for (int j = 0; j < P; ++j) out[i][j] += acc[i][j] * s[j] + gs[g * mr + i] * o[j];
  }
}

// ---- AVX-512 path ----
#if defined(__x86_64__) || defined(__i386__)
#define VLART_QAVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma")))

constexpr int i8_unroll(int mr) { return mr == 1 ? 4 : mr == 2 ? 2 : 1; }

template <int MR>
VLART_QAVX512 void panel_i8_avx512(const QPackedLayout& L, const PanelRef& pr, const float* xt, const float*,
                                   float (*out)[P]) {
  constexpr int U = i8_unroll(MR);
  const auto* w = static_cast<const int8_t*>(pr.data);
  const int64_t k = L.k;
  __m512 a[MR][U];
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int u = 0; u < U; ++u) a[i][u] = _mm512_setzero_ps();
  int64_t kk = 0;
  for (; kk + U <= k; kk += U) {
#pragma GCC unroll 4
    for (int u = 0; u < U; ++u) {
      const __m512 wv = _mm512_cvtepi32_ps(
          _mm512_cvtepi8_epi32(_mm_load_si128(reinterpret_cast<const __m128i*>(w + (kk + u) * P))));
#pragma GCC unroll 16
      for (int i = 0; i < MR; ++i) a[i][u] = _mm512_fmadd_ps(_mm512_set1_ps(xt[(kk + u) * MR + i]), wv, a[i][u]);
    }
  }
  for (; kk < k; ++kk) {
    const __m512 wv =
        _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_load_si128(reinterpret_cast<const __m128i*>(w + kk * P))));
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) a[i][0] = _mm512_fmadd_ps(_mm512_set1_ps(xt[kk * MR + i]), wv, a[i][0]);
  }
  const __m512 s = _mm512_load_ps(pr.scale);
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i) {
    __m512 t = a[i][0];
#pragma GCC unroll 4
    for (int u = 1; u < U; ++u) t = _mm512_add_ps(t, a[i][u]);
    _mm512_store_ps(out[i], _mm512_mul_ps(t, s));
  }
}

// Independent accumulator sets per row (each set has a low- and a high-nibble chain).
constexpr int i4_sets(int mr) { return mr == 1 ? 2 : 1; }

template <int MR>
VLART_QAVX512 void panel_i4_avx512(const QPackedLayout& L, const PanelRef& pr, const float* xt, const float* gs,
                                   float (*out)[P]) {
  constexpr int S = i4_sets(MR);
  constexpr bool kSplit = MR <= 8;  // separate low/high chains while registers allow
  const auto* w = static_cast<const uint8_t*>(pr.data);
  const int64_t kp_total = L.k / 2, gp = L.group / 2;
  const __m512i mask = _mm512_set1_epi32(15);
  __m512 tot[MR];
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i) tot[i] = _mm512_setzero_ps();
  for (int64_t g = 0; g < L.groups; ++g) {
    __m512 lo[MR][S], hi[MR][S];
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i)
#pragma GCC unroll 2
      for (int u = 0; u < S; ++u) {
        lo[i][u] = _mm512_setzero_ps();
        if (kSplit) hi[i][u] = _mm512_setzero_ps();
      }
    const int64_t kp0 = g * gp, kp1 = std::min(kp_total, kp0 + gp);
    int64_t kp = kp0;
    for (; kp + S <= kp1; kp += S) {
#pragma GCC unroll 2
      for (int u = 0; u < S; ++u) {
        const __m512i v = _mm512_cvtepu8_epi32(_mm_load_si128(reinterpret_cast<const __m128i*>(w + (kp + u) * P)));
        const __m512 wl = _mm512_cvtepi32_ps(_mm512_and_si512(v, mask));
        const __m512 wh = _mm512_cvtepi32_ps(_mm512_srli_epi32(v, 4));
        const float* x0 = xt + (2 * (kp + u)) * MR;
#pragma GCC unroll 16
        for (int i = 0; i < MR; ++i) {
          lo[i][u] = _mm512_fmadd_ps(_mm512_set1_ps(x0[i]), wl, lo[i][u]);
          if (kSplit)
            hi[i][u] = _mm512_fmadd_ps(_mm512_set1_ps(x0[MR + i]), wh, hi[i][u]);
          else
            lo[i][u] = _mm512_fmadd_ps(_mm512_set1_ps(x0[MR + i]), wh, lo[i][u]);
        }
      }
    }
    for (; kp < kp1; ++kp) {
      const __m512i v = _mm512_cvtepu8_epi32(_mm_load_si128(reinterpret_cast<const __m128i*>(w + kp * P)));
      const __m512 wl = _mm512_cvtepi32_ps(_mm512_and_si512(v, mask));
      const __m512 wh = _mm512_cvtepi32_ps(_mm512_srli_epi32(v, 4));
      const float* x0 = xt + (2 * kp) * MR;
#pragma GCC unroll 16
      for (int i = 0; i < MR; ++i) {
        lo[i][0] = _mm512_fmadd_ps(_mm512_set1_ps(x0[i]), wl, lo[i][0]);
        lo[i][0] = _mm512_fmadd_ps(_mm512_set1_ps(x0[MR + i]), wh, lo[i][0]);
      }
    }
    const __m512 sc = _mm512_load_ps(pr.scale + g * P);
    const __m512 of = _mm512_load_ps(pr.offset + g * P);
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      __m512 t = lo[i][0];
#pragma GCC unroll 2
      for (int u = 0; u < S; ++u) {
        if (u > 0) t = _mm512_add_ps(t, lo[i][u]);
        if (kSplit) t = _mm512_add_ps(t, hi[i][u]);
      }
      tot[i] = _mm512_fmadd_ps(t, sc, tot[i]);
      tot[i] = _mm512_fmadd_ps(_mm512_set1_ps(gs[g * MR + i]), of, tot[i]);
    }
  }
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i) _mm512_store_ps(out[i], tot[i]);
}

// ---- AVX2 path ----
// A 16-column panel is two ymm; rows are taken in chunks (6 for int8, 4 for int4) whose
// accumulators fit the 16 ymm registers, re-reading the panel (L1-resident) once per chunk.
#define VLART_QAVX2 __attribute__((target("avx2,fma")))

template <int R>
VLART_QAVX2 void i8_rows_avx2(const QPackedLayout& L, const PanelRef& pr, const float* xt, int mr, int i0,
                              float (*out)[P]) {
  constexpr int U = R <= 2 ? 2 : 1;  // independent chains over k when few rows
  const auto* w = static_cast<const int8_t*>(pr.data);
  const int64_t k = L.k;
  __m256 a0[U][R], a1[U][R];
  for (int u = 0; u < U; ++u)
    for (int i = 0; i < R; ++i) a0[u][i] = a1[u][i] = _mm256_setzero_ps();
  int64_t kk = 0;
  for (; kk + U <= k; kk += U) {
    for (int u = 0; u < U; ++u) {
      const __m128i wb = _mm_load_si128(reinterpret_cast<const __m128i*>(w + (kk + u) * P));
      const __m256 w0 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(wb));
      const __m256 w1 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(wb, 8)));
      const float* x = xt + (kk + u) * mr + i0;
      for (int i = 0; i < R; ++i) {
        const __m256 xb = _mm256_broadcast_ss(x + i);
        a0[u][i] = _mm256_fmadd_ps(xb, w0, a0[u][i]);
        a1[u][i] = _mm256_fmadd_ps(xb, w1, a1[u][i]);
      }
    }
  }
  for (; kk < k; ++kk) {
    const __m128i wb = _mm_load_si128(reinterpret_cast<const __m128i*>(w + kk * P));
    const __m256 w0 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(wb));
    const __m256 w1 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(wb, 8)));
    const float* x = xt + kk * mr + i0;
    for (int i = 0; i < R; ++i) {
      const __m256 xb = _mm256_broadcast_ss(x + i);
      a0[0][i] = _mm256_fmadd_ps(xb, w0, a0[0][i]);
      a1[0][i] = _mm256_fmadd_ps(xb, w1, a1[0][i]);
    }
  }
  const __m256 s0 = _mm256_load_ps(pr.scale), s1 = _mm256_load_ps(pr.scale + 8);
  for (int i = 0; i < R; ++i) {
    __m256 t0 = a0[0][i], t1 = a1[0][i];
    for (int u = 1; u < U; ++u) {
      t0 = _mm256_add_ps(t0, a0[u][i]);
      t1 = _mm256_add_ps(t1, a1[u][i]);
    }
    _mm256_store_ps(out[i0 + i], _mm256_mul_ps(t0, s0));
    _mm256_store_ps(out[i0 + i] + 8, _mm256_mul_ps(t1, s1));
  }
}

template <int R>
VLART_QAVX2 void i4_rows_avx2(const QPackedLayout& L, const PanelRef& pr, const float* xt, const float* gs, int mr,
                              int i0, float (*out)[P]) {
  const auto* w = static_cast<const uint8_t*>(pr.data);
  const int64_t kp_total = L.k / 2, gp = L.group / 2;
  const __m256i mask = _mm256_set1_epi32(15);
  __m256 t0[R], t1[R];
  for (int i = 0; i < R; ++i) t0[i] = t1[i] = _mm256_setzero_ps();
  for (int64_t g = 0; g < L.groups; ++g) {
    __m256 a0[R], a1[R];
    for (int i = 0; i < R; ++i) a0[i] = a1[i] = _mm256_setzero_ps();
    const int64_t kp1 = std::min(kp_total, (g + 1) * gp);
    for (int64_t kp = g * gp; kp < kp1; ++kp) {
      const __m128i wb = _mm_load_si128(reinterpret_cast<const __m128i*>(w + kp * P));
      const __m256i v0 = _mm256_cvtepu8_epi32(wb), v1 = _mm256_cvtepu8_epi32(_mm_srli_si128(wb, 8));
      const __m256 l0 = _mm256_cvtepi32_ps(_mm256_and_si256(v0, mask));
      const __m256 l1 = _mm256_cvtepi32_ps(_mm256_and_si256(v1, mask));
      const __m256 h0 = _mm256_cvtepi32_ps(_mm256_srli_epi32(v0, 4));
      const __m256 h1 = _mm256_cvtepi32_ps(_mm256_srli_epi32(v1, 4));
      const float* x = xt + (2 * kp) * mr + i0;
      for (int i = 0; i < R; ++i) {
        const __m256 xl = _mm256_broadcast_ss(x + i), xh = _mm256_broadcast_ss(x + mr + i);
        a0[i] = _mm256_fmadd_ps(xh, h0, _mm256_fmadd_ps(xl, l0, a0[i]));
        a1[i] = _mm256_fmadd_ps(xh, h1, _mm256_fmadd_ps(xl, l1, a1[i]));
      }
    }
    const __m256 sc0 = _mm256_load_ps(pr.scale + g * P), sc1 = _mm256_load_ps(pr.scale + g * P + 8);
    const __m256 of0 = _mm256_load_ps(pr.offset + g * P), of1 = _mm256_load_ps(pr.offset + g * P + 8);
    for (int i = 0; i < R; ++i) {
      const __m256 gsum = _mm256_broadcast_ss(gs + g * mr + i0 + i);
      t0[i] = _mm256_fmadd_ps(gsum, of0, _mm256_fmadd_ps(a0[i], sc0, t0[i]));
      t1[i] = _mm256_fmadd_ps(gsum, of1, _mm256_fmadd_ps(a1[i], sc1, t1[i]));
    }
  }
  for (int i = 0; i < R; ++i) {
    _mm256_store_ps(out[i0 + i], t0[i]);
    _mm256_store_ps(out[i0 + i] + 8, t1[i]);
  }
}

// All mr rows of one panel, in register-sized row chunks.
VLART_QAVX2 void panel_avx2(const QPackedLayout& L, const PanelRef& pr, const float* xt, const float* gs, int mr,
                            float (*out)[P]) {
  int i = 0;
  if (L.kind == QWeightKind::kInt8) {
    for (; i + 6 <= mr; i += 6) i8_rows_avx2<6>(L, pr, xt, mr, i, out);
    switch (mr - i) {
      case 5: i8_rows_avx2<5>(L, pr, xt, mr, i, out); break;
      case 4: i8_rows_avx2<4>(L, pr, xt, mr, i, out); break;
      case 3: i8_rows_avx2<3>(L, pr, xt, mr, i, out); break;
      case 2: i8_rows_avx2<2>(L, pr, xt, mr, i, out); break;
      case 1: i8_rows_avx2<1>(L, pr, xt, mr, i, out); break;
      default: break;
    }
    return;
  }
  for (; i + 4 <= mr; i += 4) i4_rows_avx2<4>(L, pr, xt, gs, mr, i, out);
  switch (mr - i) {
    case 3: i4_rows_avx2<3>(L, pr, xt, gs, mr, i, out); break;
    case 2: i4_rows_avx2<2>(L, pr, xt, gs, mr, i, out); break;
    case 1: i4_rows_avx2<1>(L, pr, xt, gs, mr, i, out); break;
    default: break;
  }
}

using PanelFn = void (*)(const QPackedLayout&, const PanelRef&, const float*, const float*, float (*)[P]);

template <int MR>
struct I8Fn {
  static constexpr PanelFn fn = &panel_i8_avx512<MR>;
};
template <int MR>
struct I4Fn {
  static constexpr PanelFn fn = &panel_i4_avx512<MR>;
};

template <template <int> class K>
constexpr std::array<PanelFn, P + 1> make_table() {
  return {nullptr,      K<1>::fn,  K<2>::fn,  K<3>::fn,  K<4>::fn,  K<5>::fn,  K<6>::fn,  K<7>::fn, K<8>::fn,
          K<9>::fn,     K<10>::fn, K<11>::fn, K<12>::fn, K<13>::fn, K<14>::fn, K<15>::fn, K<16>::fn};
}

const std::array<PanelFn, P + 1> kI8Avx512 = make_table<I8Fn>();
const std::array<PanelFn, P + 1> kI4Avx512 = make_table<I4Fn>();

bool use_avx512() {
  const GemvIsa isa = gemv_active_isa();
  return isa == GemvIsa::kAvx512 || isa == GemvIsa::kAvx512Bf16;
}
#else   // not x86: no AVX-512 kernels, the tables stay empty and use_avx512() is false
using PanelFn = void (*)(const QPackedLayout&, const PanelRef&, const float*, const float*, float (*)[P]);
const std::array<PanelFn, P + 1> kI8Avx512{};
const std::array<PanelFn, P + 1> kI4Avx512{};
bool use_avx512() { return false; }
#endif  // x86

bool use_avx2() { return gemv_active_isa() == GemvIsa::kAvx2; }

inline float load_x(const void* x, bool bf16, int64_t i) {
  return bf16 ? bf16_to_f32(static_cast<const uint16_t*>(x)[i]) : static_cast<const float*>(x)[i];
}

// Bias, activation and store of one panel's outputs for `mr` rows starting at row r0.
void store_panel(const QGemmProblem& p, int64_t n, int64_t r0, int mr, int64_t c0, const float (*out)[P]) {
  const int nc = static_cast<int>(std::min<int64_t>(P, n - c0));
  float b[P] = {};
  if (p.bias)
    for (int j = 0; j < nc; ++j) b[j] = load_x(p.bias, p.bias_bf16, c0 + j);
  for (int i = 0; i < mr; ++i) {
    float v[P];
#pragma omp simd
    for (int j = 0; j < P; ++j) v[j] = out[i][j] + b[j];
    switch (p.act) {
      case GemvAct::kNone: break;
      case GemvAct::kRelu:
#pragma omp simd
        for (int j = 0; j < P; ++j) v[j] = v[j] > 0.f ? v[j] : 0.f;
        break;
      case GemvAct::kSilu:
#pragma omp simd
        for (int j = 0; j < P; ++j) v[j] = kernels::silu_f(v[j]);
        break;
      case GemvAct::kGeluTanh:
#pragma omp simd
        for (int j = 0; j < P; ++j) v[j] = kernels::gelu_tanh_f(v[j]);
        break;
      case GemvAct::kGeluErf:
        for (int j = 0; j < nc; ++j) v[j] = kernels::gelu_erf_f(v[j]);
        break;
    }
    const int64_t off = (r0 + i) * p.ldy + c0;
    if (p.y_bf16) {
      auto* y = static_cast<uint16_t*>(p.y) + off;
      for (int j = 0; j < nc; ++j) y[j] = f32_to_bf16(v[j]);
    } else {
      std::memcpy(static_cast<float*>(p.y) + off, v, sizeof(float) * static_cast<size_t>(nc));
    }
  }
}

}  // namespace

QPackedLayout qgemm_layout(QWeightKind kind, int64_t n, int64_t k, int64_t group, bool in_scaled) {
  VLART_CHECK(n >= 0 && k >= 0, InvalidArgument, "qgemm: negative shape [", n, ", ", k, "]");
  QPackedLayout L;
  L.kind = kind;
  L.n = n;
  L.k = k;
  L.panels = (n + P - 1) / P;
  size_t data = 0;
  if (kind == QWeightKind::kInt8) {
    L.group = k;
    L.groups = 1;
    data = static_cast<size_t>(L.panels) * static_cast<size_t>(k) * P;
    L.scale_offset = align64(data);
    L.offset_offset = L.scale_offset;
    L.total_bytes = align64(L.scale_offset + static_cast<size_t>(L.panels) * P * sizeof(float));
  } else {
    VLART_CHECK(k % 2 == 0 && group > 0 && group % 2 == 0, InvalidArgument, "qgemm: int4 needs even k and group, got k=",
                k, " group=", group);
    L.group = group;
    L.groups = k == 0 ? 0 : (k + group - 1) / group;
    data = static_cast<size_t>(L.panels) * static_cast<size_t>(k / 2) * P;
    const size_t table = static_cast<size_t>(L.panels) * static_cast<size_t>(L.groups) * P * sizeof(float);
    L.scale_offset = align64(data);
    L.offset_offset = align64(L.scale_offset + table);
    L.total_bytes = align64(L.offset_offset + table);
  }
  if (in_scaled) {
    L.in_scaled = true;
    L.in_scale_offset = L.total_bytes;
    L.total_bytes = align64(L.total_bytes + static_cast<size_t>(k) * sizeof(float));
  }
  if (L.total_bytes == 0) L.total_bytes = 64;
  return L;
}

namespace {
// Stores 1 / in_scale (the kernel multiplies x by it while transposing).
void pack_in_scale(const QPackedLayout& L, const float* in_scale, uint8_t* base) {
  if (!L.in_scaled) return;
  VLART_CHECK(in_scale != nullptr, InvalidArgument, "qgemm: layout has input scales but none were given");
  auto* inv = reinterpret_cast<float*>(base + L.in_scale_offset);
  for (int64_t c = 0; c < L.k; ++c) inv[c] = 1.f / in_scale[c];
}
}  // namespace

void qgemm_pack_int8(const QPackedLayout& L, const int8_t* q, const float* scales, void* dst, const float* in_scale) {
  auto* base = static_cast<uint8_t*>(dst);
  std::memset(base, 0, L.total_bytes);
  pack_in_scale(L, in_scale, base);
  auto* sc = reinterpret_cast<float*>(base + L.scale_offset);
  for (int64_t p = 0; p < L.panels; ++p) {
    auto* panel = reinterpret_cast<int8_t*>(base) + static_cast<size_t>(p) * static_cast<size_t>(L.k) * P;
    for (int j = 0; j < P; ++j) {
      const int64_t r = p * P + j;
      if (r >= L.n) break;
      sc[p * P + j] = scales[r];
      const int8_t* row = q + r * L.k;
      for (int64_t kk = 0; kk < L.k; ++kk) panel[kk * P + j] = row[kk];
    }
  }
}

void qgemm_pack_int4(const QPackedLayout& L, const uint8_t* q, const float* scales, const float* offsets,
                     void* dst, const float* in_scale) {
  auto* base = static_cast<uint8_t*>(dst);
  std::memset(base, 0, L.total_bytes);
  pack_in_scale(L, in_scale, base);
  auto* sc = reinterpret_cast<float*>(base + L.scale_offset);
  auto* of = reinterpret_cast<float*>(base + L.offset_offset);
  const int64_t kp = L.k / 2;
  for (int64_t p = 0; p < L.panels; ++p) {
    uint8_t* panel = base + static_cast<size_t>(p) * static_cast<size_t>(kp) * P;
    for (int j = 0; j < P; ++j) {
      const int64_t r = p * P + j;
      if (r >= L.n) break;
      const uint8_t* row = q + r * kp;
      for (int64_t i = 0; i < kp; ++i) panel[i * P + j] = row[i];
      for (int64_t g = 0; g < L.groups; ++g) {
        sc[(p * L.groups + g) * P + j] = scales[r * L.groups + g];
        of[(p * L.groups + g) * P + j] = offsets[r * L.groups + g];
      }
    }
  }
}

void qgemm_unpack(const QPackedLayout& L, const void* packed, float* w) {
  const float* inv =
      L.in_scaled ? reinterpret_cast<const float*>(static_cast<const uint8_t*>(packed) + L.in_scale_offset) : nullptr;
  for (int64_t p = 0; p < L.panels; ++p) {
    const PanelRef pr = panel_ref(L, packed, p);
    for (int j = 0; j < P; ++j) {
      const int64_t r = p * P + j;
      if (r >= L.n) break;
      for (int64_t kk = 0; kk < L.k; ++kk) {
        if (L.kind == QWeightKind::kInt8) {
          w[r * L.k + kk] = pr.scale[j] * static_cast<float>(static_cast<const int8_t*>(pr.data)[kk * P + j]);
        } else {
          const uint8_t b = static_cast<const uint8_t*>(pr.data)[(kk / 2) * P + j];
          const int64_t g = kk / L.group;
          const float u = static_cast<float>((kk & 1) ? (b >> 4) : (b & 15));
          w[r * L.k + kk] = pr.scale[g * P + j] * u + pr.offset[g * P + j];
        }
        if (inv) w[r * L.k + kk] *= inv[kk];
      }
    }
  }
}

int64_t qgemm_work_floats(const QPackedLayout& L, int64_t m) {
  const int64_t blocks = (m + P - 1) / P;
  // Transposed blocks (fixed stride 16 * k per block) plus int4 group sums, each block 16-aligned.
  const int64_t kx = (L.k + 15) / 16 * 16;
  const int64_t gx = (L.groups + 0) * P;
  return blocks * (kx * P + (L.kind == QWeightKind::kInt4 ? gx : 0)) + 16;
}

const char* qgemm_path_name() { return use_avx512() ? "avx512" : "scalar"; }

void qgemm(const QPackedLayout& L, const void* packed, const QGemmProblem& p) {
  if (p.m <= 0 || L.n == 0) return;
  const int64_t m = p.m, k = L.k;
  const int64_t blocks = (m + P - 1) / P;
  const int64_t kx = (k + 15) / 16 * 16;
  const int64_t block_stride = kx * P + (L.kind == QWeightKind::kInt4 ? L.groups * P : 0);
  float* work = p.work;
  const bool avx = use_avx512();
  [[maybe_unused]] const bool avx2 = !avx && use_avx2();
  const PanelFn* table = avx ? (L.kind == QWeightKind::kInt8 ? kI8Avx512.data() : kI4Avx512.data()) : nullptr;

  // Threads: not more than panels, and one for tiny problems (fork/join would dominate).
  const double flops = static_cast<double>(m) * static_cast<double>(L.n) * static_cast<double>(k);
  int nt = static_cast<int>(std::min<int64_t>(std::max(1, p.threads), L.panels));
  if (flops < 65536.0) nt = 1;

  const float* inv =
      L.in_scaled ? reinterpret_cast<const float*>(static_cast<const uint8_t*>(packed) + L.in_scale_offset) : nullptr;
  auto transpose_block = [&](int64_t b) {
    const int64_t r0 = b * P;
    const int mr = static_cast<int>(std::min<int64_t>(P, m - r0));
    float* xt = work + b * block_stride;
    for (int i = 0; i < mr; ++i) {
      const int64_t row = (r0 + i) * p.ldx;
      if (p.x_bf16) {
        const auto* xs = static_cast<const uint16_t*>(p.x) + row;
        for (int64_t kk = 0; kk < k; ++kk) xt[kk * mr + i] = bf16_to_f32(xs[kk]);
      } else {
        const auto* xs = static_cast<const float*>(p.x) + row;
        for (int64_t kk = 0; kk < k; ++kk) xt[kk * mr + i] = xs[kk];
      }
      if (inv)
        for (int64_t kk = 0; kk < k; ++kk) xt[kk * mr + i] *= inv[kk];
    }
    if (L.kind == QWeightKind::kInt4) {
      float* gs = xt + kx * P;
      for (int64_t g = 0; g < L.groups; ++g) {
        const int64_t k0 = g * L.group, k1 = std::min(k, k0 + L.group);
        for (int i = 0; i < mr; ++i) {
          float s = 0.f;
          for (int64_t kk = k0; kk < k1; ++kk) s += xt[kk * mr + i];
          gs[g * mr + i] = s;
        }
      }
    }
  };

  auto compute = [&](int tid, int nthreads) {
    const int64_t per = L.panels / nthreads, extra = L.panels % nthreads;
    const int64_t p0 = tid * per + std::min<int64_t>(tid, extra);
    const int64_t p1 = p0 + per + (tid < extra ? 1 : 0);
    alignas(64) float out[P][P];
    for (int64_t b = 0; b < blocks; ++b) {
      const int64_t r0 = b * P;
      const int mr = static_cast<int>(std::min<int64_t>(P, m - r0));
      const float* xt = work + b * block_stride;
      const float* gs = xt + kx * P;
      for (int64_t pi = p0; pi < p1; ++pi) {
        const PanelRef pr = panel_ref(L, packed, pi);
        if (avx)
          table[mr](L, pr, xt, gs, out);
#if defined(__x86_64__) || defined(__i386__)
        else if (avx2)
          panel_avx2(L, pr, xt, gs, mr, out);
#endif
        else
          panel_scalar(L, pr, xt, gs, mr, out);
        store_panel(p, L.n, r0, mr, pi * P, out);
      }
    }
  };

  if (nt <= 1) {
    for (int64_t b = 0; b < blocks; ++b) transpose_block(b);
    compute(0, 1);
    return;
  }
#pragma omp parallel num_threads(nt)
  {
    const int tid = omp_get_thread_num(), nth = omp_get_num_threads();
    for (int64_t b = tid; b < blocks; b += nth) transpose_block(b);
#pragma omp barrier
    compute(tid, nth);
  }
}

namespace {

// ---- per-row quantization and the W8A8 epilogue, AVX-512 ----
#if defined(__x86_64__) || defined(__i386__)

VLART_QAVX512 inline __m512 load16(const void* x, bool bf16, int64_t i, __mmask16 m) {
  if (bf16) {
    const __m256i h = _mm256_maskz_loadu_epi16(m, static_cast<const uint16_t*>(x) + i);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
  }
  return _mm512_maskz_loadu_ps(m, static_cast<const float*>(x) + i);
}

VLART_QAVX512 inline __mmask16 tail_mask(int64_t left) {
  return left >= 16 ? static_cast<__mmask16>(0xffff) : static_cast<__mmask16>((1u << left) - 1u);
}

// max |x| over a row; NaN when any element is NaN (as the scalar max would not reliably say).
VLART_QAVX512 float row_absmax_avx512(const void* x, bool bf16, int64_t off, int64_t k) {
  __m512 m0 = _mm512_setzero_ps(), m1 = _mm512_setzero_ps();
  __mmask16 nan = 0;
  int64_t i = 0;
  for (; i + 32 <= k; i += 32) {
    const __m512 a = load16(x, bf16, off + i, 0xffff), b = load16(x, bf16, off + i + 16, 0xffff);
    nan |= _mm512_cmp_ps_mask(a, a, _CMP_UNORD_Q) | _mm512_cmp_ps_mask(b, b, _CMP_UNORD_Q);
    m0 = _mm512_max_ps(m0, _mm512_abs_ps(a));
    m1 = _mm512_max_ps(m1, _mm512_abs_ps(b));
  }
  for (; i < k; i += 16) {
    const __m512 a = load16(x, bf16, off + i, tail_mask(k - i));
    nan |= _mm512_cmp_ps_mask(a, a, _CMP_UNORD_Q);
    m0 = _mm512_max_ps(m0, _mm512_abs_ps(a));
  }
  if (nan) return std::numeric_limits<float>::quiet_NaN();
  return _mm512_reduce_max_ps(_mm512_max_ps(m0, m1));
}

// q = clamp(round_half_even(x * inv), -127, 127); the clamp is done in float so out-of-range
// values (static scales) saturate instead of converting to INT_MIN. Stores q + offset (0 or 128; the
// stored byte of q + 128 is q's with the sign bit flipped). Returns false when x has a NaN.
VLART_QAVX512 bool quantize_row_avx512(const void* x, bool bf16, int64_t off, int64_t k, float inv, int8_t* q,
                                       int offset) {
  const __m512 vinv = _mm512_set1_ps(inv), lo = _mm512_set1_ps(-127.f), hi = _mm512_set1_ps(127.f);
  const __m512i voff = _mm512_set1_epi32(offset);
  __mmask16 nan = 0;
  for (int64_t i = 0; i < k; i += 16) {
    const __mmask16 m = tail_mask(k - i);
    const __m512 xv = load16(x, bf16, off + i, m);
    nan |= _mm512_cmp_ps_mask(xv, xv, _CMP_UNORD_Q);
    __m512 v = _mm512_mul_ps(xv, vinv);
    v = _mm512_min_ps(_mm512_max_ps(v, lo), hi);
    const __m512i iv = _mm512_cvt_roundps_epi32(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    _mm512_mask_cvtepi32_storeu_epi8(q + i, m, _mm512_add_epi32(iv, voff));  // truncating store
  }
  return nan == 0;
}

// exp(x): x = n ln2 + r (two-part ln2), degree-7 Taylor polynomial of exp(r), scaled by 2^n
// (vscalefps: +inf above the range, 0 below it). Same reduction as the scalar exp_f (~2 ulp).
VLART_QAVX512 inline __m512 exp_avx512(__m512 x) {
  x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-100.f)), _mm512_set1_ps(100.f));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145751953125f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.428606765330187e-06f), r);
  __m512 p = _mm512_set1_ps(1.f / 5040.f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f / 720.f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f / 120.f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f / 24.f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f / 6.f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f));
  return _mm512_scalef_ps(p, n);
}

VLART_QAVX512 inline __m512 activate_avx512(__m512 v, GemvAct act) {
  const __m512 one = _mm512_set1_ps(1.f);
  switch (act) {
    case GemvAct::kNone: return v;
    case GemvAct::kRelu: return _mm512_max_ps(v, _mm512_setzero_ps());
    case GemvAct::kSilu: return _mm512_div_ps(v, _mm512_add_ps(one, exp_avx512(_mm512_sub_ps(_mm512_setzero_ps(), v))));
    case GemvAct::kGeluTanh: {
      // x * sigmoid(2u), u = sqrt(2/pi) (x + 0.044715 x^3), as gelu_tanh_f.
      const __m512 x3 = _mm512_mul_ps(_mm512_mul_ps(v, v), v);
      const __m512 u = _mm512_mul_ps(_mm512_set1_ps(0.7978845608028654f),
                                     _mm512_fmadd_ps(_mm512_set1_ps(0.044715f), x3, v));
      return _mm512_div_ps(v, _mm512_add_ps(one, exp_avx512(_mm512_mul_ps(_mm512_set1_ps(-2.f), u))));
    }
    case GemvAct::kGeluErf: break;  // handled by the caller (scalar erf)
  }
  return v;
}

// f32 -> bf16, round to nearest even, NaN kept quiet (as f32_to_bf16).
VLART_QAVX512 inline __m256i to_bf16_avx512(__m512 v) {
  const __m512i u = _mm512_castps_si512(v);
  const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
  __m512i r = _mm512_srli_epi32(_mm512_add_epi32(_mm512_add_epi32(u, _mm512_set1_epi32(0x7fff)), lsb), 16);
  const __mmask16 nan = _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
  r = _mm512_mask_mov_epi32(r, nan, _mm512_or_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(0x40)));
  return _mm512_cvtepi32_epi16(r);
}

VLART_QAVX512 void epilogue_row_avx512(const float* a, float s, int64_t n, const void* bias, bool bias_bf16,
                                       GemvAct act, void* y, int64_t yoff, bool y_bf16) {
  const __m512 vs = _mm512_set1_ps(s);
  for (int64_t c = 0; c < n; c += 16) {
    const __mmask16 m = tail_mask(n - c);
    const __m512 b = bias ? load16(bias, bias_bf16, c, m) : _mm512_setzero_ps();
    __m512 v = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + c), vs, b);
    if (act == GemvAct::kGeluErf) {
      alignas(64) float t[16];
      _mm512_store_ps(t, v);
      for (int j = 0; j < 16; ++j) t[j] = kernels::gelu_erf_f(t[j]);
      v = _mm512_load_ps(t);
    } else {
      v = activate_avx512(v, act);
    }
    if (y_bf16)
      _mm256_mask_storeu_epi16(static_cast<uint16_t*>(y) + yoff + c, m, to_bf16_avx512(v));
    else
      _mm512_mask_storeu_ps(static_cast<float*>(y) + yoff + c, m, v);
  }
}
#endif  // x86

}  // namespace

void quantize_rows_s8(const void* x, bool x_bf16, int64_t m, int64_t k, int64_t ldx, int8_t* q, float* scales,
                      int threads, float static_scale, bool u8_offset) {
  [[maybe_unused]] const bool avx = use_avx512();
  const float nanf = std::numeric_limits<float>::quiet_NaN();
  const int offset = u8_offset ? 128 : 0;
  const auto zero = static_cast<int8_t>(static_cast<uint8_t>(offset));  // the stored byte of q = 0
  kernels::parallel_for(m, k, threads, [&](int64_t r) {
    int8_t* qr = q + r * k;
    // A row that cannot be represented (NaN, or inf under a per-token scale) becomes zeros with a
    // NaN scale, so the product is NaN as the float path's would be; an all-zero row gets scale 0.
    auto unrepresentable = [&](float scale) {
      std::fill(qr, qr + k, zero);
      scales[r] = scale;
    };
    float amax = 0.f;
    if (static_scale > 0.f) {
      amax = static_scale * 127.f;
#if defined(__x86_64__) || defined(__i386__)
    } else if (avx) {
      amax = row_absmax_avx512(x, x_bf16, r * ldx, k);
#endif
    } else {
      bool nan = false;
      for (int64_t kk = 0; kk < k; ++kk) {
        const float v = load_x(x, x_bf16, r * ldx + kk);
        nan |= std::isnan(v);
        amax = std::max(amax, std::fabs(v));
      }
      if (nan) amax = nanf;
    }
    if (!(amax > 0.f) || !std::isfinite(amax)) {
      unrepresentable(amax > 0.f || std::isnan(amax) ? nanf : 0.f);
      return;
    }
    const float inv = static_scale > 0.f ? 1.f / static_scale : 127.f / amax;
    scales[r] = static_scale > 0.f ? static_scale : amax / 127.f;
#if defined(__x86_64__) || defined(__i386__)
    if (avx) {
      if (!quantize_row_avx512(x, x_bf16, r * ldx, k, inv, qr, offset)) unrepresentable(nanf);
      return;
    }
#endif
    for (int64_t i = 0; i < k; ++i) {
      // Clamp in float (static scales can put values far outside), then round half to even.
      const float xv = load_x(x, x_bf16, r * ldx + i);
      if (std::isnan(xv)) {
        unrepresentable(nanf);
        return;
      }
      float v = xv * inv;
      v = v > 127.f ? 127.f : (v < -127.f ? -127.f : v);
      qr[i] = static_cast<int8_t>(static_cast<uint8_t>(static_cast<int>(std::nearbyint(v)) + offset));
    }
  });
}

void qgemm_row_scale_epilogue(const float* acc, int64_t ldacc, const float* row_scale, int64_t m, int64_t n,
                              const void* bias, bool bias_bf16, GemvAct act, void* y, int64_t ldy, bool y_bf16,
                              int threads) {
  [[maybe_unused]] const bool avx = use_avx512();
  kernels::parallel_for(m, n * 4, threads, [&](int64_t r) {
    const float s = row_scale[r];
    const float* a = acc + r * ldacc;
#if defined(__x86_64__) || defined(__i386__)
    if (avx) {
      epilogue_row_avx512(a, s, n, bias, bias_bf16, act, y, r * ldy, y_bf16);
      return;
    }
#endif
    float buf[256];
    for (int64_t c0 = 0; c0 < n; c0 += 256) {
      const int64_t len = std::min<int64_t>(256, n - c0);
      for (int64_t j = 0; j < len; ++j) buf[j] = (bias ? load_x(bias, bias_bf16, c0 + j) : 0.f) + a[c0 + j] * s;
      for (int64_t j = 0; j < len; ++j) buf[j] = activate(buf[j], act);
      if (y_bf16) {
        auto* yr = static_cast<uint16_t*>(y) + r * ldy + c0;
        for (int64_t j = 0; j < len; ++j) yr[j] = f32_to_bf16(buf[j]);
      } else {
        std::memcpy(static_cast<float*>(y) + r * ldy + c0, buf, sizeof(float) * static_cast<size_t>(len));
      }
    }
  });
}

}  // namespace vlart
