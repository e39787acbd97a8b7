// AVX-512F inner kernels of the tiled attention. Compiled for the baseline ISA with per-function
// target attributes and selected at run time, so one binary runs everywhere.
#include "cpu/attention_tile.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#include <limits>

#define VLART_AVX512 __attribute__((target("avx512f")))

namespace vlart::kernels {
namespace {

constexpr int QB = kRowBlock;

// exp(x) for x <= 0 (softmax arguments): exp(x) = 2^n * exp(f), f = x - n ln2 in [-ln2/2, ln2/2],
// exp(f) by its degree-7 Taylor polynomial (truncation < 6e-9, below f32 rounding). Inputs below
// -87.3 (result under the smallest normal float, and -inf for masked keys) give exactly 0.
VLART_AVX512 inline __m512 exp_neg(__m512 x) {
  const __mmask16 live = _mm512_cmp_ps_mask(x, _mm512_set1_ps(-87.3f), _CMP_GE_OQ);
  x = _mm512_max_ps(x, _mm512_set1_ps(-87.3f));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 f = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145751953125f), x);  // ln2 split hi/lo
  f = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.42860682030941723212e-6f), f);
  __m512 p = _mm512_set1_ps(1.f / 5040.f);
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.f / 720.f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.f / 120.f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.f / 24.f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.f / 6.f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(0.5f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.f));
  return _mm512_maskz_mov_ps(live, _mm512_scalef_ps(p, n));
}

// NK keys x NV vectors of 16 query rows, accumulated over d in registers.
template <int NK, int NV>
VLART_AVX512 void scores_block(const float* Qt, const float* K, int64_t ldk, int D, float* S) {
  __m512 acc[NK][NV];
  for (int kk = 0; kk < NK; ++kk)
    for (int c = 0; c < NV; ++c) acc[kk][c] = _mm512_setzero_ps();
  for (int d = 0; d < D; ++d) {
    __m512 q[NV];
    for (int c = 0; c < NV; ++c) q[c] = _mm512_load_ps(Qt + d * QB + 16 * c);
    for (int kk = 0; kk < NK; ++kk) {
      const __m512 kb = _mm512_set1_ps(K[kk * ldk + d]);
      for (int c = 0; c < NV; ++c) acc[kk][c] = _mm512_fmadd_ps(kb, q[c], acc[kk][c]);
    }
  }
  for (int kk = 0; kk < NK; ++kk)
    for (int c = 0; c < NV; ++c) _mm512_store_ps(S + kk * QB + 16 * c, acc[kk][c]);
}

constexpr int kKeysPerBlock = 6;  // 6 x 4 accumulators + 4 query vectors + 1 broadcast <= 32 zmm

template <int NV>
VLART_AVX512 void scores_nv(const float* Qt, const float* K, int64_t ldk, int kt, int D, float* S) {
  int j = 0;
  for (; j + kKeysPerBlock <= kt; j += kKeysPerBlock)
    scores_block<kKeysPerBlock, NV>(Qt, K + j * ldk, ldk, D, S + j * QB);
  const float* Kj = K + j * ldk;
  float* Sj = S + j * QB;
  switch (kt - j) {
    case 5: scores_block<5, NV>(Qt, Kj, ldk, D, Sj); break;
    case 4: scores_block<4, NV>(Qt, Kj, ldk, D, Sj); break;
    case 3: scores_block<3, NV>(Qt, Kj, ldk, D, Sj); break;
    case 2: scores_block<2, NV>(Qt, Kj, ldk, D, Sj); break;
    case 1: scores_block<1, NV>(Qt, Kj, ldk, D, Sj); break;
    default: break;
  }
}

VLART_AVX512 void scores_avx512(const float* Qt, int nvec, const float* K, int64_t ldk, int kt, int D, float* S) {
  switch (nvec) {
    case 1: scores_nv<1>(Qt, K, ldk, kt, D, S); break;
    case 2: scores_nv<2>(Qt, K, ldk, kt, D, S); break;
    case 3: scores_nv<3>(Qt, K, ldk, kt, D, S); break;
    default: scores_nv<4>(Qt, K, ldk, kt, D, S); break;
  }
}
static_assert(kRowBlock == 64, "scores_avx512 dispatches on at most 4 row vectors");

VLART_AVX512 void softmax_avx512(float* S, int kt, int nvec, float* m, float* l, float* alpha) {
  const __m512 ninf = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
  for (int c = 0; c < nvec; ++c) {
    float* s = S + 16 * c;
    const __m512 mold = _mm512_load_ps(m + 16 * c);
    __m512 mx = ninf;
    for (int j = 0; j < kt; ++j) mx = _mm512_max_ps(mx, _mm512_load_ps(s + j * QB));
    const __m512 mnew = _mm512_max_ps(mold, mx);
    // Rows with every key masked so far subtract 0 instead of -inf: their exp() stays exactly 0.
    const __mmask16 dead = _mm512_cmp_ps_mask(mnew, ninf, _CMP_EQ_OQ);
    const __m512 base = _mm512_mask_mov_ps(mnew, dead, _mm512_setzero_ps());
    const __m512 a = exp_neg(_mm512_sub_ps(mold, base));
    __m512 sum = _mm512_setzero_ps();
    for (int j = 0; j < kt; ++j) {
      const __m512 p = exp_neg(_mm512_sub_ps(_mm512_load_ps(s + j * QB), base));
      _mm512_store_ps(s + j * QB, p);
      sum = _mm512_add_ps(sum, p);
    }
    _mm512_store_ps(l + 16 * c, _mm512_fmadd_ps(_mm512_load_ps(l + 16 * c), a, sum));
    _mm512_store_ps(m + 16 * c, mnew);
    _mm512_store_ps(alpha + 16 * c, a);
  }
}

// NR rows x NC vectors of 16 output columns (the last one masked by `tail`).
template <int NR, int NC>
VLART_AVX512 void pv_block(const float* S, int kt, const float* V, int64_t ldv, const float* alpha, float* acc,
                           int64_t ldacc, __mmask16 tail) {
  __m512 o[NR][NC];
  for (int r = 0; r < NR; ++r) {
    const __m512 a = _mm512_set1_ps(alpha[r]);
    for (int c = 0; c < NC; ++c) {
      const __mmask16 mk = c == NC - 1 ? tail : static_cast<__mmask16>(0xffff);
      o[r][c] = _mm512_mul_ps(a, _mm512_maskz_loadu_ps(mk, acc + r * ldacc + 16 * c));
    }
  }
  for (int j = 0; j < kt; ++j) {
    __m512 v[NC];
    for (int c = 0; c < NC; ++c) {
      const __mmask16 mk = c == NC - 1 ? tail : static_cast<__mmask16>(0xffff);
      v[c] = _mm512_maskz_loadu_ps(mk, V + j * ldv + 16 * c);
    }
    for (int r = 0; r < NR; ++r) {
      const __m512 p = _mm512_set1_ps(S[j * QB + r]);
      for (int c = 0; c < NC; ++c) o[r][c] = _mm512_fmadd_ps(p, v[c], o[r][c]);
    }
  }
  for (int r = 0; r < NR; ++r)
    for (int c = 0; c < NC; ++c) {
      const __mmask16 mk = c == NC - 1 ? tail : static_cast<__mmask16>(0xffff);
      _mm512_mask_storeu_ps(acc + r * ldacc + 16 * c, mk, o[r][c]);
    }
}

constexpr int kRowsPerBlock = 6;  // 6 x 4 accumulators + 4 value vectors + 1 broadcast <= 32 zmm

template <int NC>
VLART_AVX512 void pv_nc(const float* S, int kt, int nr, const float* V, int64_t ldv, const float* alpha,
                        float* acc, int64_t ldacc, __mmask16 tail) {
  int r = 0;
  for (; r + kRowsPerBlock <= nr; r += kRowsPerBlock)
    pv_block<kRowsPerBlock, NC>(S + r, kt, V, ldv, alpha + r, acc + r * ldacc, ldacc, tail);
  const float* Sr = S + r;
  const float* ar = alpha + r;
  float* accr = acc + r * ldacc;
  switch (nr - r) {
    case 5: pv_block<5, NC>(Sr, kt, V, ldv, ar, accr, ldacc, tail); break;
    case 4: pv_block<4, NC>(Sr, kt, V, ldv, ar, accr, ldacc, tail); break;
    case 3: pv_block<3, NC>(Sr, kt, V, ldv, ar, accr, ldacc, tail); break;
    case 2: pv_block<2, NC>(Sr, kt, V, ldv, ar, accr, ldacc, tail); break;
    case 1: pv_block<1, NC>(Sr, kt, V, ldv, ar, accr, ldacc, tail); break;
    default: break;
  }
}

VLART_AVX512 void pv_avx512(const float* S, int kt, int nr, const float* V, int64_t ldv, int Dv, const float* alpha,
                            float* acc) {
  // Output columns in chunks of up to 64 (4 vectors); the last vector of the last chunk is masked.
  for (int c0 = 0; c0 < Dv; c0 += 64) {
    const int cols = Dv - c0 < 64 ? Dv - c0 : 64;
    const int nc = (cols + 15) / 16;
    const int rem = cols - 16 * (nc - 1);
    const __mmask16 tail = static_cast<__mmask16>(rem == 16 ? 0xffff : (1u << rem) - 1u);
    switch (nc) {
      case 1: pv_nc<1>(S, kt, nr, V + c0, ldv, alpha, acc + c0, Dv, tail); break;
      case 2: pv_nc<2>(S, kt, nr, V + c0, ldv, alpha, acc + c0, Dv, tail); break;
      case 3: pv_nc<3>(S, kt, nr, V + c0, ldv, alpha, acc + c0, Dv, tail); break;
      default: pv_nc<4>(S, kt, nr, V + c0, ldv, alpha, acc + c0, Dv, tail); break;
    }
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

}  // namespace

const AttnTileKernels* attn_tile_kernels_avx512() {
  static const AttnTileKernels k{"avx512", scores_avx512, softmax_avx512, pv_avx512, bf16_rows_avx512};
  static const bool ok = __builtin_cpu_supports("avx512f");
  return ok ? &k : nullptr;
}

}  // namespace vlart::kernels

#else

namespace vlart::kernels {
const AttnTileKernels* attn_tile_kernels_avx512() { return nullptr; }
}  // namespace vlart::kernels

#endif
