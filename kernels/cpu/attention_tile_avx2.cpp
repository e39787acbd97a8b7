// AVX2+FMA inner kernels of the tiled attention (CPUs without AVX-512: AMD Zen 1-3, Intel client
// cores). Same contract and layouts as the AVX-512 ones (attention_tile.h); 8 query rows per ymm,
// so a 16-row vector of the contract is two registers. 16 ymm registers bound the blocking: scores
// keep 6 keys x 16 rows in 12 accumulators, p.v keeps 6 rows x 16 output columns.
#include "cpu/attention_tile.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#include <limits>

#include "cpu/isa.h"

#define VLART_AVX2 __attribute__((target("avx2,fma")))

namespace vlart::kernels {
namespace {

constexpr int QB = kRowBlock;

// exp2(x) for x <= 0: 2^n * exp2(f), n = round(x), f in [-1/2, 1/2], exp2(f) by the same degree-6
// polynomial as the AVX-512 kernel. x is clamped at -127: there 2^n is built with a zero exponent
// field, i.e. exactly 0, so masked keys (-inf) and anything far below get probability 0.
VLART_AVX2 inline __m256 exp2_neg(__m256 x) {
  x = _mm256_max_ps(x, _mm256_set1_ps(-127.f));
  const __m256 n = _mm256_round_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m256 f = _mm256_sub_ps(x, n);
  __m256 p = _mm256_set1_ps(1.534580078e-04f);
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.339993090e-03f));
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(9.618489072e-03f));
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(5.550328642e-02f));
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(2.402264625e-01f));
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(6.931471825e-01f));
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.f));
  const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

// NK keys x NV vectors of 8 query rows (NV <= 2), accumulated over d in registers.
template <int NK, int NV, bool MAX>
VLART_AVX2 void scores_block(const float* Qt, const float* K, int64_t ldk, int D, float* S, float* tmax) {
  __m256 acc[NK][NV];
  VLART_UNROLL
  for (int kk = 0; kk < NK; ++kk)
    VLART_UNROLL
    for (int c = 0; c < NV; ++c) acc[kk][c] = _mm256_setzero_ps();
  for (int d = 0; d < D; ++d) {
    __m256 q[NV];
    VLART_UNROLL
    for (int c = 0; c < NV; ++c) q[c] = _mm256_load_ps(Qt + d * QB + 8 * c);
    VLART_UNROLL
    for (int kk = 0; kk < NK; ++kk) {
      const __m256 kb = _mm256_broadcast_ss(K + kk * ldk + d);
      VLART_UNROLL
      for (int c = 0; c < NV; ++c) acc[kk][c] = _mm256_fmadd_ps(kb, q[c], acc[kk][c]);
    }
  }
  VLART_UNROLL
  for (int kk = 0; kk < NK; ++kk)
    VLART_UNROLL
    for (int c = 0; c < NV; ++c) _mm256_store_ps(S + kk * QB + 8 * c, acc[kk][c]);
  if constexpr (MAX) {
    VLART_UNROLL
    for (int c = 0; c < NV; ++c) {
      __m256 mx = _mm256_load_ps(tmax + 8 * c);
      VLART_UNROLL
      for (int kk = 0; kk < NK; ++kk) mx = _mm256_max_ps(mx, acc[kk][c]);
      _mm256_store_ps(tmax + 8 * c, mx);
    }
  }
}

constexpr int kKeysPerBlock = 6;  // 6 x 2 accumulators + 2 query vectors + 1 broadcast <= 16 ymm

// One 16-row vector of the contract (two ymm) against all kt keys.
template <bool MAX>
VLART_AVX2 void scores_rows16(const float* Qt, const float* K, int64_t ldk, int kt, int D, float* S, float* tmax) {
  if constexpr (MAX)
    for (int c = 0; c < 2; ++c) _mm256_store_ps(tmax + 8 * c, _mm256_set1_ps(-std::numeric_limits<float>::infinity()));
  int j = 0;
  for (; j + kKeysPerBlock <= kt; j += kKeysPerBlock)
    scores_block<kKeysPerBlock, 2, MAX>(Qt, K + j * ldk, ldk, D, S + j * QB, tmax);
  const float* Kj = K + j * ldk;
  float* Sj = S + j * QB;
  switch (kt - j) {
    case 5: scores_block<5, 2, MAX>(Qt, Kj, ldk, D, Sj, tmax); break;
    case 4: scores_block<4, 2, MAX>(Qt, Kj, ldk, D, Sj, tmax); break;
    case 3: scores_block<3, 2, MAX>(Qt, Kj, ldk, D, Sj, tmax); break;
    case 2: scores_block<2, 2, MAX>(Qt, Kj, ldk, D, Sj, tmax); break;
    case 1: scores_block<1, 2, MAX>(Qt, Kj, ldk, D, Sj, tmax); break;
    default: break;
  }
}

VLART_AVX2 void scores_avx2(const float* Qt, int nvec, const float* K, int64_t ldk, int kt, int D, float* S,
                            float* tile_max) {
  for (int v = 0; v < nvec; ++v) {
    if (tile_max)
      scores_rows16<true>(Qt + 16 * v, K, ldk, kt, D, S + 16 * v, tile_max + 16 * v);
    else
      scores_rows16<false>(Qt + 16 * v, K, ldk, kt, D, S + 16 * v, nullptr);
  }
}

// Online-softmax statistics of 8 rows (see the AVX-512 kernel): new max, the base subtracted
// before exp2 (0 for rows with every key masked so far) and alpha = exp2(m_old - base).
VLART_AVX2 inline void softmax_stats(const float* s, int kt, const float* tile_max, const float* m, __m256* mnew,
                                     __m256* base, __m256* alpha) {
  const __m256 ninf = _mm256_set1_ps(-std::numeric_limits<float>::infinity());
  const __m256 mold = _mm256_load_ps(m);
  __m256 mx;
  if (tile_max) {
    mx = _mm256_load_ps(tile_max);
  } else {
    mx = ninf;
    for (int j = 0; j < kt; ++j) mx = _mm256_max_ps(mx, _mm256_load_ps(s + j * QB));
  }
  *mnew = _mm256_max_ps(mold, mx);
  const __m256 dead = _mm256_cmp_ps(*mnew, ninf, _CMP_EQ_OQ);
  *base = _mm256_andnot_ps(dead, *mnew);
  *alpha = exp2_neg(_mm256_sub_ps(mold, *base));
}

VLART_AVX2 void softmax_avx2(float* S, int kt, int nvec, const float* tile_max, float* m, float* l, float* alpha) {
  for (int c = 0; c < 2 * nvec; ++c) {
    float* s = S + 8 * c;
    __m256 mnew, base, a;
    softmax_stats(s, kt, tile_max ? tile_max + 8 * c : nullptr, m + 8 * c, &mnew, &base, &a);
    __m256 sum0 = _mm256_setzero_ps(), sum1 = _mm256_setzero_ps();
    int j = 0;
    for (; j + 2 <= kt; j += 2) {
      const __m256 p0 = exp2_neg(_mm256_sub_ps(_mm256_load_ps(s + j * QB), base));
      const __m256 p1 = exp2_neg(_mm256_sub_ps(_mm256_load_ps(s + (j + 1) * QB), base));
      _mm256_store_ps(s + j * QB, p0);
      _mm256_store_ps(s + (j + 1) * QB, p1);
      sum0 = _mm256_add_ps(sum0, p0);
      sum1 = _mm256_add_ps(sum1, p1);
    }
    if (j < kt) {
      const __m256 p0 = exp2_neg(_mm256_sub_ps(_mm256_load_ps(s + j * QB), base));
      _mm256_store_ps(s + j * QB, p0);
      sum0 = _mm256_add_ps(sum0, p0);
    }
    _mm256_store_ps(l + 8 * c, _mm256_fmadd_ps(_mm256_load_ps(l + 8 * c), a, _mm256_add_ps(sum0, sum1)));
    _mm256_store_ps(m + 8 * c, mnew);
    _mm256_store_ps(alpha + 8 * c, a);
  }
}

// Lane mask for the first `n` (0..8) floats of a ymm.
VLART_AVX2 inline __m256i tail_mask(int n) {
  const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), idx);
}

// NR rows x NC vectors of 8 output columns; with TAIL the last vector is masked by `tail`.
template <int NR, int NC, bool TAIL>
VLART_AVX2 void pv_block(const float* S, int kt, const float* V, int64_t ldv, const float* alpha, float* acc,
                         int64_t ldacc, __m256i tail) {
  __m256 o[NR][NC];
  VLART_UNROLL
  for (int r = 0; r < NR; ++r) {
    const __m256 a = _mm256_set1_ps(alpha[r]);
    VLART_UNROLL
    for (int c = 0; c < NC; ++c) {
      const float* src = acc + r * ldacc + 8 * c;
      o[r][c] = _mm256_mul_ps(a, TAIL && c == NC - 1 ? _mm256_maskload_ps(src, tail) : _mm256_loadu_ps(src));
    }
  }
  for (int j = 0; j < kt; ++j) {
    __m256 v[NC];
    VLART_UNROLL
    for (int c = 0; c < NC; ++c) {
      const float* src = V + j * ldv + 8 * c;
      v[c] = TAIL && c == NC - 1 ? _mm256_maskload_ps(src, tail) : _mm256_loadu_ps(src);
    }
    VLART_UNROLL
    for (int r = 0; r < NR; ++r) {
      const __m256 p = _mm256_broadcast_ss(S + j * QB + r);
      VLART_UNROLL
      for (int c = 0; c < NC; ++c) o[r][c] = _mm256_fmadd_ps(p, v[c], o[r][c]);
    }
  }
  VLART_UNROLL
  for (int r = 0; r < NR; ++r)
    VLART_UNROLL
    for (int c = 0; c < NC; ++c) {
      float* dst = acc + r * ldacc + 8 * c;
      if (TAIL && c == NC - 1)
        _mm256_maskstore_ps(dst, tail, o[r][c]);
      else
        _mm256_storeu_ps(dst, o[r][c]);
    }
}

constexpr int kRowsPerBlock = 6;  // 6 x 2 accumulators + 2 value vectors + 1 broadcast <= 16 ymm

template <int NC, bool TAIL>
VLART_AVX2 void pv_nc(const float* S, int kt, int nr, const float* V, int64_t ldv, const float* alpha, float* acc,
                      int64_t ldacc, __m256i tail) {
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

VLART_AVX2 void pv_avx2(const float* S, int kt, int nr, const float* V, int64_t ldv, int Dv, const float* alpha,
                        float* acc) {
  // Output columns in chunks of 16 (2 vectors); only a last vector short of 8 is masked.
  for (int c0 = 0; c0 < Dv; c0 += 16) {
    const int cols = Dv - c0 < 16 ? Dv - c0 : 16;
    const int nc = (cols + 7) / 8;
    const int rem = cols - 8 * (nc - 1);
    const __m256i tail = tail_mask(rem);
    if (rem == 8) {
      if (nc == 2)
        pv_nc<2, false>(S, kt, nr, V + c0, ldv, alpha, acc + c0, Dv, tail);
      else
        pv_nc<1, false>(S, kt, nr, V + c0, ldv, alpha, acc + c0, Dv, tail);
    } else {
      if (nc == 2)
        pv_nc<2, true>(S, kt, nr, V + c0, ldv, alpha, acc + c0, Dv, tail);
      else
        pv_nc<1, true>(S, kt, nr, V + c0, ldv, alpha, acc + c0, Dv, tail);
    }
  }
}

VLART_AVX2 void bf16_rows_avx2(const uint16_t* src, int64_t lds, int rows, int cols, float* dst) {
  for (int i = 0; i < rows; ++i) {
    const uint16_t* s = src + i * lds;
    float* o = dst + static_cast<int64_t>(i) * cols;
    int c = 0;
    for (; c + 8 <= cols; c += 8) {
      const __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(s + c)));
      _mm256_storeu_ps(o + c, _mm256_castsi256_ps(_mm256_slli_epi32(w, 16)));
    }
    for (; c < cols; ++c) {
      const uint32_t u = static_cast<uint32_t>(s[c]) << 16;
      float f;
      __builtin_memcpy(&f, &u, 4);
      o[c] = f;
    }
  }
}

}  // namespace

const AttnTileKernels* attn_tile_kernels_avx2() {
  static const AttnTileKernels k{"avx2", scores_avx2, softmax_avx2, pv_avx2, bf16_rows_avx2};
  return cpu_isa_detected() >= CpuIsa::kAvx2 ? &k : nullptr;
}

}  // namespace vlart::kernels

#else

namespace vlart::kernels {
const AttnTileKernels* attn_tile_kernels_avx2() { return nullptr; }
}  // namespace vlart::kernels

#endif
