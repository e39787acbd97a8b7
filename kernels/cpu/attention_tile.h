// Inner kernels of the tiled (flash-style) attention, one set per instruction set.
//
// Layout of one work item (see attention.cpp): a block of up to kRowBlock query rows against key
// tiles of up to kKeyTile keys. Queries are kept transposed, Qt[d * kRowBlock + r], so the score
// tile comes out as S[j * kRowBlock + r] (key-major) and every inner loop runs over 16 query rows
// per vector without transposing K. Row statistics (running max m, running sum l) are per row.
//
// Scores are in base-2 units: the driver folds log2(e) into the query scale (and into additive
// masks), so the softmax weights are exp2(s - m) = exp(s' - m') of the natural-log scores.
#pragma once

#include <cstdint>

// Full unrolling of the register-blocked loops (trip counts are template parameters). Without it GCC 12
// keeps the accumulator arrays (__m256 acc[NK][NV]) in memory as well as in registers and stores every
// accumulator to the stack on every iteration: one store per FMA, which halved the tile kernels' rate.
#define VLART_UNROLL _Pragma("GCC unroll 16")

namespace vlart::kernels {

constexpr int kRowBlock = 64;  // query rows per work item (multiple of 16)
constexpr int kKeyTile = 128;  // keys per tile

struct AttnTileKernels {
  const char* name;
  // S[j*kRowBlock + r] = sum_d K[j*ldk + d] * Qt[d*kRowBlock + r] for j < kt, r < 16*nvec.
  // When tile_max is not null it also gets tile_max[r] = max_j S[j*kRowBlock + r] (r < 16*nvec).
  void (*scores)(const float* Qt, int nvec, const float* K, int64_t ldk, int kt, int D, float* S,
                 float* tile_max);
  // Online softmax step over the kt keys of S for rows r < 16*nvec: updates m and l, writes the
  // rescale factor alpha = exp2(m_old - m_new) and replaces S by exp2(S - m_new). A row whose keys
  // are all -inf so far keeps m = -inf, l = 0 and gets probabilities 0. tile_max is the row max of S
  // when the caller has it (from scores, nothing masked since), else null and computed here.
  void (*softmax)(float* S, int kt, int nvec, const float* tile_max, float* m, float* l, float* alpha);
  // acc[r*Dv + c] = alpha[r] * acc[r*Dv + c] + sum_j S[j*kRowBlock + r] * V[j*ldv + c], r < nr.
  void (*pv)(const float* S, int kt, int nr, const float* V, int64_t ldv, int Dv, const float* alpha,
             float* acc);
  // dst[i*cols + c] = bf16 src[i*lds + c] as f32.
  void (*bf16_rows)(const uint16_t* src, int64_t lds, int rows, int cols, float* dst);
};

// int16 dot-product variant (vpdpwssd, AVX512_VNNI): queries, keys, softmax weights and values
// are quantized to int16 with f32 scales and each instruction sums two int16 products into an
// int32 lane: twice the f32 FMA rate (on the VNNI Xeons measured, vdpbf16ps runs at a quarter of
// it, so bf16 products would be slower than f32). Ranges keep every int32 sum exact:
//   scores: |q|, |k| <= kI16QK(D) = floor(sqrt((2^31 - 1) / D)), scaled per query row and per key;
//   weights x values per key tile: |p| <= kI16PV, |v| <= kI16PV, KT * kI16PV^2 < 2^31; p in [0, 1]
//   scaled by kI16PV, v per value column (over the whole kv head).
// Layouts (int16_t, pairs interleaved so one 32-bit broadcast carries two values):
//   Qt2[(d/2 * kRowBlock + r) * 2 + d%2]  queries, transposed, D even; qs[r] row scales
//   K[j * D + d]                           keys row-major; ks[j] key scales
//   P2[(j/2 * kRowBlock + r) * 2 + j%2]    weights of one tile (an odd last key pairs with 0)
//   V2[(j/2 * Dv + c) * 2 + j%2]           values of a kv head, key pairs interleaved (an odd last
//                                          key pairs with 0); vs[c] column scales
constexpr int kI16PV = 4095;
constexpr int kI16QK(int D) { return D <= 0 ? 1 : static_cast<int>(__builtin_sqrt(2147483647.0 / D)); }

struct AttnI16Kernels {
  const char* name;
  // Qt (f32, transposed, already scaled) -> Qt2 and qs for rows < 16*nvec.
  void (*q_pairs)(const float* Qt, int D, int nvec, int16_t* Qt2, float* qs);
  // Keys of one kv head (f32 src[j*lds + d], or bf16 when src_bf16) -> K, ks; D % 16 == 0.
  void (*k_rows)(const void* src, bool src_bf16, int64_t lds, int rows, int D, int16_t* K, float* ks);
  // Values of one kv head -> V2 (layout above), vs; Dv % 16 == 0.
  void (*v_pairs)(const void* src, bool src_bf16, int64_t lds, int rows, int Dv, int16_t* V2, float* vs);
  // S[j*kRowBlock + r] = qs[r] * ks[j] * sum_d K[j, d] Qt[d, r]; tile_max as scores().
  void (*scores)(const int16_t* Qt2, const float* qs, int nvec, const int16_t* K, const float* ks, int kt, int D,
                 float* S, float* tile_max);
  // softmax() writing the weights, times kI16PV, to P2 (S keeps the scores); l sums the f32 weights.
  void (*softmax)(float* S, int kt, int nvec, const float* tile_max, float* m, float* l, float* alpha, int16_t* P2);
  // acc[r*Dv + c] = alpha[r] * acc[r*Dv + c] + vs[c] / kI16PV * sum_j P2[j, r] V2[j, c], r < nr;
  // V2 points at the tile's first key pair; Dv % 16 == 0.
  void (*pv)(const int16_t* P2, int kt, int nr, const int16_t* V2, const float* vs, int Dv, const float* alpha,
             float* acc);
  // int8 q.k (vpdpbusd, 4x the f32 FMA rate; error ~0.4% of the row / key maximum):
  //   Qt4[(d/4 * kRowBlock + r) * 4 + d%4] = round(q * 127 / max|q_r|) + 128 (u8), qs[r] = max|q_r| / 127
  //   K8[j * D + d] = round(k * 127 / max|k_j|) (s8), ks[j] = max|k_j| / 127, kc[j] = 128 * sum_d K8[j, d]
  //   S[j*kRowBlock + r] = qs[r] * ks[j] * (sum_d Qt4[d, r] K8[j, d] - kc[j]). D % 16 == 0.
  void (*q_quads)(const float* Qt, int D, int nvec, uint8_t* Qt4, float* qs);
  void (*k_rows8)(const void* src, bool src_bf16, int64_t lds, int rows, int D, int8_t* K8, float* ks, int32_t* kc);
  void (*scores8)(const uint8_t* Qt4, const float* qs, int nvec, const int8_t* K8, const float* ks, const int32_t* kc,
                  int kt, int D, float* S, float* tile_max);
  // int8 p.v (vpdpbusd): weights as u8, 255 steps of the running maximum, l summing the rounded
  // weights (so the normalisation matches what is accumulated); v per value column of the kv head
  // as s8 (vs[c] = max|v[:, c]| / 127), four keys interleaved:
  //   P4[(j/4 * kRowBlock + r) * 4 + j%4], V4[(j/4 * Dv + c) * 4 + j%4] (keys past the end pad 0).
  void (*softmax8)(float* S, int kt, int nvec, const float* tile_max, float* m, float* l, float* alpha, uint8_t* P4);
  void (*v_quads)(const void* src, bool src_bf16, int64_t lds, int rows, int Dv, int8_t* V4, float* vs);
  void (*pv8)(const uint8_t* P4, int kt, int nr, const int8_t* V4, const float* vs, int Dv, const float* alpha,
              float* acc);
};

// Plain C++ loops, any CPU.
const AttnTileKernels& attn_tile_kernels_generic();
// AVX2+FMA intrinsics; nullptr when this build or this CPU has no AVX2+FMA.
const AttnTileKernels* attn_tile_kernels_avx2();
// AVX-512F intrinsics; nullptr when this build or this CPU has no AVX-512F.
const AttnTileKernels* attn_tile_kernels_avx512();
// NEON intrinsics (attention_tile_neon.cpp); nullptr except on aarch64 builds.
const AttnTileKernels* attn_tile_kernels_neon();
// AVX512_VNNI (+BW); nullptr when this build or this CPU lacks it.
const AttnI16Kernels* attn_i16_kernels_avx512vnni();

}  // namespace vlart::kernels
