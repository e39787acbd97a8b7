// AVX-512F inner kernels of the tiled attention. Compiled for the baseline ISA with per-function
// target attributes and selected at run time, so one binary runs everywhere.
#include "cpu/attention_tile.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#define VLART_AVX512 __attribute__((target("avx512f")))

namespace vlart::kernels {
namespace {


constexpr int QB = kRowBlock;

// exp2(x) for x <= 0 (softmax arguments in base 2): exp2(x) = 2^n * exp2(f), n = round(x),
// f in [-1/2, 1/2], exp2(f) by a degree-6 minimax polynomial (relative error ~1e-7 in f32).
// x is clamped at -160 first, so -inf (masked keys) and anything under the smallest float give
// scalef(p, n <= -126) = exactly 0 (denormal results are flushed, FTZ is set by the backend and
// 2^-160 is below even the denormals).
VLART_AVX512 inline __m512 exp2_neg(__m512 x) {
  x = _mm512_max_ps(x, _mm512_set1_ps(-160.f));
  const __m512 n = _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m512 f = _mm512_sub_ps(x, n);
  __m512 p = _mm512_set1_ps(1.534580078e-04f);
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.339993090e-03f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(9.618489072e-03f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(5.550328642e-02f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(2.402264625e-01f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(6.931471825e-01f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.f));
  return _mm512_scalef_ps(p, n);
}

// _mm512_max_ps written through the merge-masked form: GCC 12 warns (-Wuninitialized, a false
// positive on _mm512_undefined_ps) when the plain one is inlined into the score blocks. Same vmaxps.
VLART_AVX512 inline __m512 vmax(__m512 a, __m512 b) { return _mm512_mask_max_ps(a, 0xffff, a, b); }

// NK keys x NV vectors of 16 query rows, accumulated over d in registers; the per-row max over the
// NK keys is folded into tmax (kept in memory, one load/max/store per vector and block).
template <int NK, int NV, bool MAX>
VLART_AVX512 void scores_block(const float* Qt, const float* K, int64_t ldk, int D, float* S, float* tmax) {
  __m512 acc[NK][NV];
  VLART_UNROLL
  for (int kk = 0; kk < NK; ++kk)
    VLART_UNROLL
    for (int c = 0; c < NV; ++c) acc[kk][c] = _mm512_setzero_ps();
  for (int d = 0; d < D; ++d) {
    __m512 q[NV];
    VLART_UNROLL
    for (int c = 0; c < NV; ++c) q[c] = _mm512_load_ps(Qt + d * QB + 16 * c);
    VLART_UNROLL
    for (int kk = 0; kk < NK; ++kk) {
      const __m512 kb = _mm512_set1_ps(K[kk * ldk + d]);
      VLART_UNROLL
      for (int c = 0; c < NV; ++c) acc[kk][c] = _mm512_fmadd_ps(kb, q[c], acc[kk][c]);
    }
  }
  VLART_UNROLL
  for (int kk = 0; kk < NK; ++kk)
    VLART_UNROLL
    for (int c = 0; c < NV; ++c) _mm512_store_ps(S + kk * QB + 16 * c, acc[kk][c]);
  if constexpr (MAX) {
    VLART_UNROLL
    for (int c = 0; c < NV; ++c) {
      __m512 mx = _mm512_load_ps(tmax + 16 * c);
      VLART_UNROLL
      for (int kk = 0; kk < NK; ++kk) mx = vmax(mx, acc[kk][c]);
      _mm512_store_ps(tmax + 16 * c, mx);
    }
  }
}

constexpr int kKeysPerBlock = 6;  // 6 x 4 accumulators + 4 query vectors + 1 broadcast <= 32 zmm

template <int NV, bool MAX>
VLART_AVX512 void scores_nv(const float* Qt, const float* K, int64_t ldk, int kt, int D, float* S, float* tmax) {
  if constexpr (MAX)
    VLART_UNROLL
    for (int c = 0; c < NV; ++c)
      _mm512_store_ps(tmax + 16 * c, _mm512_set1_ps(-std::numeric_limits<float>::infinity()));
  int j = 0;
  for (; j + kKeysPerBlock <= kt; j += kKeysPerBlock)
    scores_block<kKeysPerBlock, NV, MAX>(Qt, K + j * ldk, ldk, D, S + j * QB, tmax);
  const float* Kj = K + j * ldk;
  float* Sj = S + j * QB;
  switch (kt - j) {
    case 5: scores_block<5, NV, MAX>(Qt, Kj, ldk, D, Sj, tmax); break;
    case 4: scores_block<4, NV, MAX>(Qt, Kj, ldk, D, Sj, tmax); break;
    case 3: scores_block<3, NV, MAX>(Qt, Kj, ldk, D, Sj, tmax); break;
    case 2: scores_block<2, NV, MAX>(Qt, Kj, ldk, D, Sj, tmax); break;
    case 1: scores_block<1, NV, MAX>(Qt, Kj, ldk, D, Sj, tmax); break;
    default: break;
  }
}

template <bool MAX>
VLART_AVX512 void scores_max(const float* Qt, int nvec, const float* K, int64_t ldk, int kt, int D, float* S,
                             float* tmax) {
  switch (nvec) {
    case 1: scores_nv<1, MAX>(Qt, K, ldk, kt, D, S, tmax); break;
    case 2: scores_nv<2, MAX>(Qt, K, ldk, kt, D, S, tmax); break;
    case 3: scores_nv<3, MAX>(Qt, K, ldk, kt, D, S, tmax); break;
    default: scores_nv<4, MAX>(Qt, K, ldk, kt, D, S, tmax); break;
  }
}

VLART_AVX512 void scores_avx512(const float* Qt, int nvec, const float* K, int64_t ldk, int kt, int D, float* S,
                                float* tile_max) {
  if (tile_max)
    scores_max<true>(Qt, nvec, K, ldk, kt, D, S, tile_max);
  else
    scores_max<false>(Qt, nvec, K, ldk, kt, D, S, nullptr);
}
static_assert(kRowBlock == 64, "scores_avx512 dispatches on at most 4 row vectors");

// Online-softmax statistics of 16 rows for one tile: the new running max (m_old against the tile
// max, given or computed from the kt scores at s, stride kRowBlock), the base subtracted before
// exp2 and the rescale factor alpha = exp2(m_old - base). Rows with every key masked so far
// subtract 0 instead of -inf: their exp2() stays exactly 0.
VLART_AVX512 inline void softmax_stats(const float* s, int kt, const float* tile_max, const float* m, __m512* mnew,
                                       __m512* base, __m512* alpha) {
  const __m512 ninf = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
  const __m512 mold = _mm512_load_ps(m);
  __m512 mx;
  if (tile_max) {
    mx = _mm512_load_ps(tile_max);
  } else {
    mx = ninf;
    for (int j = 0; j < kt; ++j) mx = _mm512_max_ps(mx, _mm512_load_ps(s + j * QB));
  }
  *mnew = _mm512_max_ps(mold, mx);
  const __mmask16 dead = _mm512_cmp_ps_mask(*mnew, ninf, _CMP_EQ_OQ);
  *base = _mm512_mask_mov_ps(*mnew, dead, _mm512_setzero_ps());
  *alpha = exp2_neg(_mm512_sub_ps(mold, *base));
}

VLART_AVX512 void softmax_avx512(float* S, int kt, int nvec, const float* tile_max, float* m, float* l,
                                 float* alpha) {
  for (int c = 0; c < nvec; ++c) {
    float* s = S + 16 * c;
    __m512 mnew, base, a;
    softmax_stats(s, kt, tile_max ? tile_max + 16 * c : nullptr, m + 16 * c, &mnew, &base, &a);
    // Two partial sums: the adds are a dependency chain, the exps are not.
    __m512 sum0 = _mm512_setzero_ps(), sum1 = _mm512_setzero_ps();
    int j = 0;
    for (; j + 2 <= kt; j += 2) {
      const __m512 p0 = exp2_neg(_mm512_sub_ps(_mm512_load_ps(s + j * QB), base));
      const __m512 p1 = exp2_neg(_mm512_sub_ps(_mm512_load_ps(s + (j + 1) * QB), base));
      _mm512_store_ps(s + j * QB, p0);
      _mm512_store_ps(s + (j + 1) * QB, p1);
      sum0 = _mm512_add_ps(sum0, p0);
      sum1 = _mm512_add_ps(sum1, p1);
    }
    if (j < kt) {
      const __m512 p0 = exp2_neg(_mm512_sub_ps(_mm512_load_ps(s + j * QB), base));
      _mm512_store_ps(s + j * QB, p0);
      sum0 = _mm512_add_ps(sum0, p0);
    }
    _mm512_store_ps(l + 16 * c, _mm512_fmadd_ps(_mm512_load_ps(l + 16 * c), a, _mm512_add_ps(sum0, sum1)));
    _mm512_store_ps(m + 16 * c, mnew);
    _mm512_store_ps(alpha + 16 * c, a);
  }
}

// NR rows x NC vectors of 16 output columns; with TAIL the last vector is masked by `tail`. The
// mask is a template choice so that the full-width blocks (the common case) have no masked
// accesses at all: with a run-time mask on every access GCC kept the accumulator array in memory.
template <int NR, int NC, bool TAIL>
VLART_AVX512 void pv_block(const float* S, int kt, const float* V, int64_t ldv, const float* alpha, float* acc,
                           int64_t ldacc, __mmask16 tail) {
  __m512 o[NR][NC];
  VLART_UNROLL
  for (int r = 0; r < NR; ++r) {
    const __m512 a = _mm512_set1_ps(alpha[r]);
    VLART_UNROLL
    for (int c = 0; c < NC; ++c) {
      const float* src = acc + r * ldacc + 16 * c;
      o[r][c] = _mm512_mul_ps(a, TAIL && c == NC - 1 ? _mm512_maskz_loadu_ps(tail, src) : _mm512_loadu_ps(src));
    }
  }
  for (int j = 0; j < kt; ++j) {
    __m512 v[NC];
    VLART_UNROLL
    for (int c = 0; c < NC; ++c) {
      const float* src = V + j * ldv + 16 * c;
      v[c] = TAIL && c == NC - 1 ? _mm512_maskz_loadu_ps(tail, src) : _mm512_loadu_ps(src);
    }
    VLART_UNROLL
    for (int r = 0; r < NR; ++r) {
      const __m512 p = _mm512_set1_ps(S[j * QB + r]);
      VLART_UNROLL
      for (int c = 0; c < NC; ++c) o[r][c] = _mm512_fmadd_ps(p, v[c], o[r][c]);
    }
  }
  VLART_UNROLL
  for (int r = 0; r < NR; ++r)
    VLART_UNROLL
    for (int c = 0; c < NC; ++c) {
      float* dst = acc + r * ldacc + 16 * c;
      if (TAIL && c == NC - 1)
        _mm512_mask_storeu_ps(dst, tail, o[r][c]);
      else
        _mm512_storeu_ps(dst, o[r][c]);
    }
}

constexpr int kRowsPerBlock = 6;  // 6 x 4 accumulators + 4 value vectors + 1 broadcast <= 32 zmm

template <int NC, bool TAIL>
VLART_AVX512 void pv_nc(const float* S, int kt, int nr, const float* V, int64_t ldv, const float* alpha,
                        float* acc, int64_t ldacc, __mmask16 tail) {
  int r = 0;
  for (; r + kRowsPerBlock <= nr; r += kRowsPerBlock)
    pv_block<kRowsPerBlock, NC, TAIL>(S + r, kt, V, ldv, alpha + r, acc + r * ldacc, ldacc, tail);
  const float* Sr = S + r;
  const float* ar = alpha + r;
  float* accr = acc + r * ldacc;
  switch (nr - r) {
    case 5: pv_block<5, NC, TAIL>(Sr, kt, V, ldv, ar, accr, ldacc, tail); break;
    case 4: pv_block<4, NC, TAIL>(Sr, kt, V, ldv, ar, accr, ldacc, tail); break;
    case 3: pv_block<3, NC, TAIL>(Sr, kt, V, ldv, ar, accr, ldacc, tail); break;
    case 2: pv_block<2, NC, TAIL>(Sr, kt, V, ldv, ar, accr, ldacc, tail); break;
    case 1: pv_block<1, NC, TAIL>(Sr, kt, V, ldv, ar, accr, ldacc, tail); break;
    default: break;
  }
}

template <bool TAIL>
VLART_AVX512 void pv_chunk(int nc, const float* S, int kt, int nr, const float* V, int64_t ldv, const float* alpha,
                           float* acc, int64_t ldacc, __mmask16 tail) {
  switch (nc) {
    case 1: pv_nc<1, TAIL>(S, kt, nr, V, ldv, alpha, acc, ldacc, tail); break;
    case 2: pv_nc<2, TAIL>(S, kt, nr, V, ldv, alpha, acc, ldacc, tail); break;
    case 3: pv_nc<3, TAIL>(S, kt, nr, V, ldv, alpha, acc, ldacc, tail); break;
    default: pv_nc<4, TAIL>(S, kt, nr, V, ldv, alpha, acc, ldacc, tail); break;
  }
}

VLART_AVX512 void pv_avx512(const float* S, int kt, int nr, const float* V, int64_t ldv, int Dv, const float* alpha,
                            float* acc) {
  // Output columns in chunks of up to 64 (4 vectors); only a last vector short of 16 is masked.
  for (int c0 = 0; c0 < Dv; c0 += 64) {
    const int cols = Dv - c0 < 64 ? Dv - c0 : 64;
    const int nc = (cols + 15) / 16;
    const int rem = cols - 16 * (nc - 1);
    if (rem == 16)
      pv_chunk<false>(nc, S, kt, nr, V + c0, ldv, alpha, acc + c0, Dv, 0xffff);
    else
      pv_chunk<true>(nc, S, kt, nr, V + c0, ldv, alpha, acc + c0, Dv, static_cast<__mmask16>((1u << rem) - 1u));
  }
}

VLART_AVX512 void bf16_rows_avx512(const uint16_t* src, int64_t lds, int rows, int cols, float* dst) {
  for (int i = 0; i < rows; ++i) {
    const uint16_t* s = src + i * lds;
    float* o = dst + static_cast<int64_t>(i) * cols;
    int c = 0;
    for (; c + 16 <= cols; c += 16) {
      const __m512i w = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(s + c)));
      _mm512_storeu_ps(o + c, _mm512_castsi512_ps(_mm512_slli_epi32(w, 16)));
    }
    if (c < cols) {
      const __mmask16 mk = static_cast<__mmask16>((1u << (cols - c)) - 1u);
      // A masked 16-bit load needs AVX512BW; copy the short tail through a stack buffer instead.
      alignas(32) uint16_t buf[16] = {};
      for (int t = 0; t < cols - c; ++t) buf[t] = s[c + t];
      const __m512i w = _mm512_cvtepu16_epi32(_mm256_load_si256(reinterpret_cast<const __m256i*>(buf)));
      _mm512_mask_storeu_ps(o + c, mk, _mm512_castsi512_ps(_mm512_slli_epi32(w, 16)));
    }
  }
}

// ---------------------------------------------------------------- int16 dot products

#define VLART_AVX512VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni")))


// Register blocks of the integer tiles are smaller than the f32 tiles' 6 x 4: vpdpwssd / vpdpbusd
// have a single form (the accumulator is the destination), and with 24 accumulators GCC 12 copied
// them through scratch registers and spilled some.
constexpr int kI16Keys = 4;  // 4 x 4 int32 accumulators + 4 query vectors + 1 broadcast
constexpr int kI16Rows = 4;  // 4 x 4 int32 accumulators + 4 value vectors + 1 broadcast

// vcvtdq2ps through the merge-masked form (the plain one trips the same GCC 12 false -Wuninitialized
// as _mm512_max_ps, see vmax).
VLART_AVX512VNNI inline __m512 to_ps(__m512i x) { return _mm512_mask_cvtepi32_ps(_mm512_setzero_ps(), 0xffff, x); }

// Two int32 vectors (values in int16 range) as interleaved int16 pairs {a0, b0, a1, b1, ...}.
VLART_AVX512VNNI inline __m512i pair16(__m512i a, __m512i b) {
  return _mm512_or_si512(_mm512_and_si512(a, _mm512_set1_epi32(0xffff)), _mm512_slli_epi32(b, 16));
}

// round(clamp(x * inv, -lim, lim)) as int32 lanes.
VLART_AVX512VNNI inline __m512i quant16(__m512 x, __m512 inv, __m512 lim) {
  const __m512 v = _mm512_min_ps(_mm512_max_ps(_mm512_mul_ps(x, inv), _mm512_sub_ps(_mm512_setzero_ps(), lim)), lim);
  return _mm512_cvt_roundps_epi32(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}

// Scale from a max |x|: s = amax / lim (NaN and inf kept, so the products turn NaN as in f32), and
// the multiplier lim / amax (0 for a zero or non-finite amax).
VLART_AVX512VNNI inline void scale_of(__m512 amax, float lim, __m512* scale, __m512* inv) {
  const __m512 l = _mm512_set1_ps(lim);
  *scale = _mm512_div_ps(amax, l);
  const __mmask16 ok = _mm512_cmp_ps_mask(amax, _mm512_setzero_ps(), _CMP_GT_OQ) &
                       _mm512_cmp_ps_mask(amax, _mm512_set1_ps(std::numeric_limits<float>::max()), _CMP_LE_OQ);
  *inv = _mm512_maskz_div_ps(ok, l, amax);
}

VLART_AVX512VNNI inline __m512 load_row16(const void* src, bool bf16, int64_t i) {
  if (bf16) {
    const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(static_cast<const uint16_t*>(src) + i));
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
  }
  return _mm512_loadu_ps(static_cast<const float*>(src) + i);
}

// |x| with NaN kept NaN (vandps needs AVX512DQ; clear the sign bit in the integer domain).
VLART_AVX512VNNI inline __m512 abs16(__m512 x) {
  return _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(x), _mm512_set1_epi32(0x7fffffff)));
}
// max that propagates NaN from either operand (vmaxps alone returns the second one).
VLART_AVX512VNNI inline __m512 max_nan(__m512 a, __m512 b) {
  const __m512 m = _mm512_max_ps(a, b);
  return _mm512_mask_mov_ps(m, _mm512_cmp_ps_mask(a, b, _CMP_UNORD_Q), _mm512_add_ps(a, b));
}

VLART_AVX512VNNI void q_pairs_i16(const float* Qt, int D, int nvec, int16_t* Qt2, float* qs) {
  const __m512 lim = _mm512_set1_ps(static_cast<float>(kI16QK(D)));
  for (int c = 0; c < nvec; ++c) {
    __m512 amax = _mm512_setzero_ps();
    for (int d = 0; d < D; ++d) amax = max_nan(amax, abs16(_mm512_load_ps(Qt + d * QB + 16 * c)));
    __m512 sc, inv;
    scale_of(amax, static_cast<float>(kI16QK(D)), &sc, &inv);
    _mm512_store_ps(qs + 16 * c, sc);
    for (int d = 0; d < D; d += 2)
      _mm512_store_si512(Qt2 + (d / 2 * QB + 16 * c) * 2,
                         pair16(quant16(_mm512_load_ps(Qt + d * QB + 16 * c), inv, lim),
                                quant16(_mm512_load_ps(Qt + (d + 1) * QB + 16 * c), inv, lim)));
  }
}

// D % 16 == 0.
VLART_AVX512VNNI void k_rows_i16(const void* src, bool src_bf16, int64_t lds, int rows, int D, int16_t* K,
                                 float* ks) {
  const float limf = static_cast<float>(kI16QK(D));
  const __m512 lim = _mm512_set1_ps(limf);
  for (int j = 0; j < rows; ++j) {
    const int64_t so = static_cast<int64_t>(j) * lds;
    __m512 amax = _mm512_setzero_ps();
    for (int d = 0; d < D; d += 16) amax = max_nan(amax, abs16(load_row16(src, src_bf16, so + d)));
    const __mmask16 nan = _mm512_cmp_ps_mask(amax, amax, _CMP_UNORD_Q);
    const float am = nan ? std::numeric_limits<float>::quiet_NaN() : _mm512_reduce_max_ps(amax);
    ks[j] = am / limf;
    const float invf = am > 0.f && am <= std::numeric_limits<float>::max() ? limf / am : 0.f;
    const __m512 inv = _mm512_set1_ps(invf);
    int16_t* o = K + static_cast<int64_t>(j) * D;
    for (int d = 0; d < D; d += 16)
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(o + d),
                          _mm512_cvtepi32_epi16(quant16(load_row16(src, src_bf16, so + d), inv, lim)));
  }
}

VLART_AVX512VNNI void v_pairs_i16(const void* src, bool src_bf16, int64_t lds, int rows, int Dv, int16_t* V2,
                                  float* vs) {
  const __m512 lim = _mm512_set1_ps(static_cast<float>(kI16PV));
  for (int c = 0; c < Dv; c += 16) {
    __m512 amax = _mm512_setzero_ps();
    for (int j = 0; j < rows; ++j) amax = max_nan(amax, abs16(load_row16(src, src_bf16, j * lds + c)));
    __m512 sc, inv;
    scale_of(amax, static_cast<float>(kI16PV), &sc, &inv);
    _mm512_storeu_ps(vs + c, sc);
    for (int j = 0; j < rows; j += 2) {
      const __m512i a = quant16(load_row16(src, src_bf16, j * lds + c), inv, lim);
      const __m512i b = j + 1 < rows ? quant16(load_row16(src, src_bf16, (j + 1) * lds + c), inv, lim)
                                     : _mm512_setzero_si512();
      _mm512_storeu_si512(V2 + (static_cast<int64_t>(j / 2) * Dv + c) * 2, pair16(a, b));
    }
  }
}

VLART_AVX512VNNI void softmax_i16(float* S, int kt, int nvec, const float* tile_max, float* m, float* l,
                                  float* alpha, int16_t* P2) {
  const __m512 pl = _mm512_set1_ps(static_cast<float>(kI16PV));
  for (int c = 0; c < nvec; ++c) {
    const float* s = S + 16 * c;
    __m512 mnew, base, a;
    softmax_stats(s, kt, tile_max ? tile_max + 16 * c : nullptr, m + 16 * c, &mnew, &base, &a);
    __m512 sum0 = _mm512_setzero_ps(), sum1 = _mm512_setzero_ps();
    int j = 0;
    for (; j + 2 <= kt; j += 2) {
      const __m512 p0 = exp2_neg(_mm512_sub_ps(_mm512_load_ps(s + j * QB), base));
      const __m512 p1 = exp2_neg(_mm512_sub_ps(_mm512_load_ps(s + (j + 1) * QB), base));
      _mm512_store_si512(P2 + (j / 2 * QB + 16 * c) * 2,
                         pair16(_mm512_cvt_roundps_epi32(_mm512_mul_ps(p0, pl), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC),
                                _mm512_cvt_roundps_epi32(_mm512_mul_ps(p1, pl), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)));
      sum0 = _mm512_add_ps(sum0, p0);
      sum1 = _mm512_add_ps(sum1, p1);
    }
    if (j < kt) {
      const __m512 p0 = exp2_neg(_mm512_sub_ps(_mm512_load_ps(s + j * QB), base));
      _mm512_store_si512(P2 + (j / 2 * QB + 16 * c) * 2,
                         pair16(_mm512_cvt_roundps_epi32(_mm512_mul_ps(p0, pl), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC),
                                _mm512_setzero_si512()));
      sum0 = _mm512_add_ps(sum0, p0);
    }
    _mm512_store_ps(l + 16 * c, _mm512_fmadd_ps(_mm512_load_ps(l + 16 * c), a, _mm512_add_ps(sum0, sum1)));
    _mm512_store_ps(m + 16 * c, mnew);
    _mm512_store_ps(alpha + 16 * c, a);
  }
}

// ---- int8 q.k ----

VLART_AVX512VNNI void q_quads_i8(const float* Qt, int D, int nvec, uint8_t* Qt4, float* qs) {
  const __m512 lim = _mm512_set1_ps(127.f);
  const __m512i off = _mm512_set1_epi32(128);
  for (int c = 0; c < nvec; ++c) {
    __m512 amax = _mm512_setzero_ps();
    for (int d = 0; d < D; ++d) amax = max_nan(amax, abs16(_mm512_load_ps(Qt + d * QB + 16 * c)));
    __m512 sc, inv;
    scale_of(amax, 127.f, &sc, &inv);
    _mm512_store_ps(qs + 16 * c, sc);
    for (int d = 0; d < D; d += 4) {
      // Four d's of 16 rows -> 16 lanes of 4 bytes {d, d+1, d+2, d+3}.
      __m512i q[4];
      for (int t = 0; t < 4; ++t)
        q[t] = _mm512_add_epi32(quant16(_mm512_load_ps(Qt + (d + t) * QB + 16 * c), inv, lim), off);
      const __m512i lo = _mm512_or_si512(q[0], _mm512_slli_epi32(q[1], 8));
      const __m512i hi = _mm512_or_si512(_mm512_slli_epi32(q[2], 16), _mm512_slli_epi32(q[3], 24));
      _mm512_store_si512(Qt4 + (d / 4 * QB + 16 * c) * 4, _mm512_or_si512(lo, hi));
    }
  }
}

VLART_AVX512VNNI void k_rows_i8(const void* src, bool src_bf16, int64_t lds, int rows, int D, int8_t* K8, float* ks,
                                int32_t* kc) {
  const __m512 lim = _mm512_set1_ps(127.f);
  for (int j = 0; j < rows; ++j) {
    const int64_t so = static_cast<int64_t>(j) * lds;
    __m512 amax = _mm512_setzero_ps();
    for (int d = 0; d < D; d += 16) amax = max_nan(amax, abs16(load_row16(src, src_bf16, so + d)));
    const __mmask16 nan = _mm512_cmp_ps_mask(amax, amax, _CMP_UNORD_Q);
    const float am = nan ? std::numeric_limits<float>::quiet_NaN() : _mm512_reduce_max_ps(amax);
    ks[j] = am / 127.f;
    const float invf = am > 0.f && am <= std::numeric_limits<float>::max() ? 127.f / am : 0.f;
    const __m512 inv = _mm512_set1_ps(invf);
    int8_t* o = K8 + static_cast<int64_t>(j) * D;
    __m512i sum = _mm512_setzero_si512();
    for (int d = 0; d < D; d += 16) {
      const __m512i q = quant16(load_row16(src, src_bf16, so + d), inv, lim);
      sum = _mm512_add_epi32(sum, q);
      _mm_storeu_si128(reinterpret_cast<__m128i*>(o + d), _mm512_cvtepi32_epi8(q));
    }
    kc[j] = 128 * _mm512_reduce_add_epi32(sum);
  }
}

// ---- int8 p.v ----

VLART_AVX512VNNI void softmax_i8(float* S, int kt, int nvec, const float* tile_max, float* m, float* l,
                                 float* alpha, uint8_t* P4) {
  const __m512 pl = _mm512_set1_ps(255.f);
  const __m512 inv_pl = _mm512_set1_ps(1.f / 255.f);
  for (int c = 0; c < nvec; ++c) {
    const float* s = S + 16 * c;
    __m512 mnew, base, a;
    softmax_stats(s, kt, tile_max ? tile_max + 16 * c : nullptr, m + 16 * c, &mnew, &base, &a);
    __m512i sum = _mm512_setzero_si512();
    for (int j = 0; j < kt; j += 4) {
      __m512i q[4];
      for (int t = 0; t < 4; ++t) {
        if (j + t < kt) {
          const __m512 p = exp2_neg(_mm512_sub_ps(_mm512_load_ps(s + (j + t) * QB), base));
          q[t] = _mm512_cvt_roundps_epi32(_mm512_mul_ps(p, pl), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
          sum = _mm512_add_epi32(sum, q[t]);
        } else {
          q[t] = _mm512_setzero_si512();
        }
      }
      const __m512i lo = _mm512_or_si512(q[0], _mm512_slli_epi32(q[1], 8));
      const __m512i hi = _mm512_or_si512(_mm512_slli_epi32(q[2], 16), _mm512_slli_epi32(q[3], 24));
      _mm512_store_si512(P4 + (j / 4 * QB + 16 * c) * 4, _mm512_or_si512(lo, hi));
    }
    _mm512_store_ps(l + 16 * c, _mm512_fmadd_ps(_mm512_load_ps(l + 16 * c), a, _mm512_mul_ps(to_ps(sum), inv_pl)));
    _mm512_store_ps(m + 16 * c, mnew);
    _mm512_store_ps(alpha + 16 * c, a);
  }
}

VLART_AVX512VNNI void v_quads_i8(const void* src, bool src_bf16, int64_t lds, int rows, int Dv, int8_t* V4,
                                 float* vs) {
  const __m512 lim = _mm512_set1_ps(127.f);
  for (int c = 0; c < Dv; c += 16) {
    __m512 amax = _mm512_setzero_ps();
    for (int j = 0; j < rows; ++j) amax = max_nan(amax, abs16(load_row16(src, src_bf16, j * lds + c)));
    __m512 sc, inv;
    scale_of(amax, 127.f, &sc, &inv);
    _mm512_storeu_ps(vs + c, sc);
    for (int j = 0; j < rows; j += 4) {
      __m512i q[4];
      for (int t = 0; t < 4; ++t)
        q[t] = j + t < rows ? _mm512_and_si512(quant16(load_row16(src, src_bf16, (j + t) * lds + c), inv, lim),
                                               _mm512_set1_epi32(0xff))
                            : _mm512_setzero_si512();
      const __m512i lo = _mm512_or_si512(q[0], _mm512_slli_epi32(q[1], 8));
      const __m512i hi = _mm512_or_si512(_mm512_slli_epi32(q[2], 16), _mm512_slli_epi32(q[3], 24));
      _mm512_storeu_si512(V4 + (static_cast<int64_t>(j / 4) * Dv + c) * 4, _mm512_or_si512(lo, hi));
    }
  }
}

// ---- integer q.k and p.v, shared by the int16 and int8 variants ----
// T: the operand types, how many of them share one 32-bit lane (kPack: 2 int16 for vpdpwssd, 4
// int8 for vpdpbusd, which multiplies an unsigned first operand by a signed second one: q and p
// are the first, k and v the second) and the weight step (p = integer weight * kPStep).

struct I16Dot {
  using Row = int16_t;  // q, p
  using Col = int16_t;  // k, v
  static constexpr int kPack = 2;
  static constexpr float kPStep = 1.f / static_cast<float>(kI16PV);
  VLART_AVX512VNNI static __m512i mac(__m512i acc, __m512i a, __m512i b) { return _mm512_dpwssd_epi32(acc, a, b); }
};
struct I8Dot {
  using Row = uint8_t;
  using Col = int8_t;
  static constexpr int kPack = 4;
  static constexpr float kPStep = 1.f / 255.f;
  VLART_AVX512VNNI static __m512i mac(__m512i acc, __m512i a, __m512i b) { return _mm512_dpbusd_epi32(acc, a, b); }
};

VLART_AVX512VNNI inline __m512i bcast32(const void* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm512_set1_epi32(v);
}

// S = qs[r] * ks[j] * (sum_d Q[d, r] K[j, d] - kc[j]) for NK keys x NV row vectors (kc null: 0).
template <class T, int NK, int NV, bool MAX>
VLART_AVX512VNNI void scores_int_block(const typename T::Row* Qt, const float* qs, const typename T::Col* K,
                                       const float* ks, const int32_t* kc, int D, float* S, float* tmax) {
  constexpr int P = T::kPack;
  __m512i acc[NK][NV];
  VLART_UNROLL
  for (int kk = 0; kk < NK; ++kk)
    VLART_UNROLL
    for (int c = 0; c < NV; ++c) acc[kk][c] = _mm512_setzero_si512();
  for (int d = 0; d < D; d += P) {
    __m512i q[NV];
    VLART_UNROLL
    for (int c = 0; c < NV; ++c) q[c] = _mm512_load_si512(Qt + (d / P * QB + 16 * c) * P);
    VLART_UNROLL
    for (int kk = 0; kk < NK; ++kk) {
      const __m512i kb = bcast32(K + kk * D + d);
      VLART_UNROLL
      for (int c = 0; c < NV; ++c) acc[kk][c] = T::mac(acc[kk][c], q[c], kb);
    }
  }
  VLART_UNROLL
  for (int c = 0; c < NV; ++c) {
    const __m512 qsc = _mm512_load_ps(qs + 16 * c);
    __m512 mx = MAX ? _mm512_load_ps(tmax + 16 * c) : _mm512_setzero_ps();
    VLART_UNROLL
    for (int kk = 0; kk < NK; ++kk) {
      const __m512i a = kc ? _mm512_sub_epi32(acc[kk][c], _mm512_set1_epi32(kc[kk])) : acc[kk][c];
      const __m512 sv = _mm512_mul_ps(to_ps(a), _mm512_mul_ps(qsc, _mm512_set1_ps(ks[kk])));
      _mm512_store_ps(S + kk * QB + 16 * c, sv);
      if constexpr (MAX) mx = vmax(mx, sv);
    }
    if constexpr (MAX) _mm512_store_ps(tmax + 16 * c, mx);
  }
}

template <class T, int NV, bool MAX>
VLART_AVX512VNNI void scores_int_nv(const typename T::Row* Qt, const float* qs, const typename T::Col* K,
                                    const float* ks, const int32_t* kc, int kt, int D, float* S, float* tmax) {
  if constexpr (MAX)
    VLART_UNROLL
    for (int c = 0; c < NV; ++c)
      _mm512_store_ps(tmax + 16 * c, _mm512_set1_ps(-std::numeric_limits<float>::infinity()));
  int j = 0;
  for (; j + kI16Keys <= kt; j += kI16Keys)
    scores_int_block<T, kI16Keys, NV, MAX>(Qt, qs, K + j * D, ks + j, kc ? kc + j : nullptr, D, S + j * QB, tmax);
  const int32_t* kcj = kc ? kc + j : nullptr;
  switch (kt - j) {
    case 3: scores_int_block<T, 3, NV, MAX>(Qt, qs, K + j * D, ks + j, kcj, D, S + j * QB, tmax); break;
    case 2: scores_int_block<T, 2, NV, MAX>(Qt, qs, K + j * D, ks + j, kcj, D, S + j * QB, tmax); break;
    case 1: scores_int_block<T, 1, NV, MAX>(Qt, qs, K + j * D, ks + j, kcj, D, S + j * QB, tmax); break;
    default: break;
  }
}

template <class T, bool MAX>
VLART_AVX512VNNI void scores_int_max(const typename T::Row* Qt, const float* qs, int nvec, const typename T::Col* K,
                                     const float* ks, const int32_t* kc, int kt, int D, float* S, float* tmax) {
  switch (nvec) {
    case 1: scores_int_nv<T, 1, MAX>(Qt, qs, K, ks, kc, kt, D, S, tmax); break;
    case 2: scores_int_nv<T, 2, MAX>(Qt, qs, K, ks, kc, kt, D, S, tmax); break;
    case 3: scores_int_nv<T, 3, MAX>(Qt, qs, K, ks, kc, kt, D, S, tmax); break;
    default: scores_int_nv<T, 4, MAX>(Qt, qs, K, ks, kc, kt, D, S, tmax); break;
  }
}

template <class T>
VLART_AVX512VNNI void scores_int(const typename T::Row* Qt, const float* qs, int nvec, const typename T::Col* K,
                                 const float* ks, const int32_t* kc, int kt, int D, float* S, float* tile_max) {
  if (tile_max)
    scores_int_max<T, true>(Qt, qs, nvec, K, ks, kc, kt, D, S, tile_max);
  else
    scores_int_max<T, false>(Qt, qs, nvec, K, ks, kc, kt, D, S, nullptr);
}

VLART_AVX512VNNI void scores_i16(const int16_t* Qt2, const float* qs, int nvec, const int16_t* K, const float* ks,
                                 int kt, int D, float* S, float* tile_max) {
  scores_int<I16Dot>(Qt2, qs, nvec, K, ks, nullptr, kt, D, S, tile_max);
}

VLART_AVX512VNNI void scores_i8(const uint8_t* Qt4, const float* qs, int nvec, const int8_t* K, const float* ks,
                                const int32_t* kc, int kt, int D, float* S, float* tile_max) {
  scores_int<I8Dot>(Qt4, qs, nvec, K, ks, kc, kt, D, S, tile_max);
}

// acc = alpha * acc + vs[c] * kPStep * sum_j P[j, r] V[j, c] for NR rows x NC vectors of columns;
// kg groups of kPack keys.
template <class T, int NR, int NC>
VLART_AVX512VNNI void pv_int_block(const typename T::Row* P, int kg, const typename T::Col* V, const float* vs,
                                   int Dv, const float* alpha, float* acc) {
  constexpr int PK = T::kPack;
  __m512i o[NR][NC];
  VLART_UNROLL
  for (int r = 0; r < NR; ++r)
    VLART_UNROLL
    for (int c = 0; c < NC; ++c) o[r][c] = _mm512_setzero_si512();
  for (int j = 0; j < kg; ++j) {
    __m512i v[NC];
    VLART_UNROLL
    for (int c = 0; c < NC; ++c) v[c] = _mm512_loadu_si512(V + (static_cast<int64_t>(j) * Dv + 16 * c) * PK);
    VLART_UNROLL
    for (int r = 0; r < NR; ++r) {
      const __m512i p = bcast32(P + (j * QB + r) * PK);
      VLART_UNROLL
      for (int c = 0; c < NC; ++c) o[r][c] = T::mac(o[r][c], p, v[c]);
    }
  }
  const __m512 step = _mm512_set1_ps(T::kPStep);
  VLART_UNROLL
  for (int c = 0; c < NC; ++c) {
    const __m512 sc = _mm512_mul_ps(_mm512_loadu_ps(vs + 16 * c), step);
    VLART_UNROLL
    for (int r = 0; r < NR; ++r) {
      float* dst = acc + r * Dv + 16 * c;
      _mm512_storeu_ps(dst, _mm512_fmadd_ps(to_ps(o[r][c]), sc,
                                            _mm512_mul_ps(_mm512_set1_ps(alpha[r]), _mm512_loadu_ps(dst))));
    }
  }
}

template <class T, int NC>
VLART_AVX512VNNI void pv_int_nc(const typename T::Row* P, int kg, int nr, const typename T::Col* V, const float* vs,
                                int Dv, const float* alpha, float* acc) {
  constexpr int PK = T::kPack;
  int r = 0;
  for (; r + kI16Rows <= nr; r += kI16Rows)
    pv_int_block<T, kI16Rows, NC>(P + r * PK, kg, V, vs, Dv, alpha + r, acc + r * Dv);
  const typename T::Row* Pr = P + r * PK;
  const float* ar = alpha + r;
  float* accr = acc + r * Dv;
  switch (nr - r) {
    case 3: pv_int_block<T, 3, NC>(Pr, kg, V, vs, Dv, ar, accr); break;
    case 2: pv_int_block<T, 2, NC>(Pr, kg, V, vs, Dv, ar, accr); break;
    case 1: pv_int_block<T, 1, NC>(Pr, kg, V, vs, Dv, ar, accr); break;
    default: break;
  }
}

template <class T>
VLART_AVX512VNNI void pv_int(const typename T::Row* P, int kt, int nr, const typename T::Col* V, const float* vs,
                             int Dv, const float* alpha, float* acc) {
  constexpr int PK = T::kPack;
  const int kg = (kt + PK - 1) / PK;
  for (int c0 = 0; c0 < Dv; c0 += 64) {
    const int nc = (Dv - c0 < 64 ? Dv - c0 : 64) / 16;
    switch (nc) {
      case 1: pv_int_nc<T, 1>(P, kg, nr, V + c0 * PK, vs + c0, Dv, alpha, acc + c0); break;
      case 2: pv_int_nc<T, 2>(P, kg, nr, V + c0 * PK, vs + c0, Dv, alpha, acc + c0); break;
      case 3: pv_int_nc<T, 3>(P, kg, nr, V + c0 * PK, vs + c0, Dv, alpha, acc + c0); break;
      default: pv_int_nc<T, 4>(P, kg, nr, V + c0 * PK, vs + c0, Dv, alpha, acc + c0); break;
    }
  }
}

VLART_AVX512VNNI void pv_i16(const int16_t* P2, int kt, int nr, const int16_t* V2, const float* vs, int Dv,
                             const float* alpha, float* acc) {
  pv_int<I16Dot>(P2, kt, nr, V2, vs, Dv, alpha, acc);
}

VLART_AVX512VNNI void pv_i8(const uint8_t* P4, int kt, int nr, const int8_t* V4, const float* vs, int Dv,
                            const float* alpha, float* acc) {
  pv_int<I8Dot>(P4, kt, nr, V4, vs, Dv, alpha, acc);
}

}  // namespace

const AttnI16Kernels* attn_i16_kernels_avx512vnni() {
  static const AttnI16Kernels k{"avx512_vnni_i16", q_pairs_i16, k_rows_i16, v_pairs_i16, scores_i16, softmax_i16,
                                pv_i16,          q_quads_i8, k_rows_i8,  scores_i8,  softmax_i8, v_quads_i8,
                                pv_i8};
  static const bool ok = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni");
  return ok ? &k : nullptr;
}

const AttnTileKernels* attn_tile_kernels_avx512() {
  static const AttnTileKernels k{"avx512", scores_avx512, softmax_avx512, pv_avx512, bf16_rows_avx512};
  static const bool ok = __builtin_cpu_supports("avx512f");
  return ok ? &k : nullptr;
}

}  // namespace vlart::kernels

#else

namespace vlart::kernels {
const AttnTileKernels* attn_tile_kernels_avx512() { return nullptr; }
const AttnI16Kernels* attn_i16_kernels_avx512vnni() { return nullptr; }
}  // namespace vlart::kernels

#endif
