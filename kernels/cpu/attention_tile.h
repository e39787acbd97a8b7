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

// Plain C++ loops, any CPU.
const AttnTileKernels& attn_tile_kernels_generic();
// AVX-512F intrinsics; nullptr when this build or this CPU has no AVX-512F.
const AttnTileKernels* attn_tile_kernels_avx512();

}  // namespace vlart::kernels
