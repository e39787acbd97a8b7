// Portable inner kernels of the tiled attention: plain loops over the query-row dimension, which
// the compiler vectorises with whatever the baseline ISA offers.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "cpu/attention_tile.h"
#include "vlart/dtype.h"

namespace vlart::kernels {
namespace {

constexpr int QB = kRowBlock;

void scores_generic(const float* Qt, int nvec, const float* K, int64_t ldk, int kt, int D, float* S,
                    float* tile_max) {
  const int nr = 16 * nvec;
  for (int j = 0; j < kt; ++j) {
    float* s = S + j * QB;
    for (int r = 0; r < nr; ++r) s[r] = 0.f;
    const float* k = K + j * ldk;
    for (int d = 0; d < D; ++d) {
      const float kd = k[d];
      const float* q = Qt + d * QB;
      for (int r = 0; r < nr; ++r) s[r] += kd * q[r];
    }
  }
  if (tile_max) {
    for (int r = 0; r < nr; ++r) tile_max[r] = -std::numeric_limits<float>::infinity();
    for (int j = 0; j < kt; ++j)
      for (int r = 0; r < nr; ++r) tile_max[r] = std::max(tile_max[r], S[j * QB + r]);
  }
}

void softmax_generic(float* S, int kt, int nvec, const float* tile_max, float* m, float* l, float* alpha) {
  const float ninf = -std::numeric_limits<float>::infinity();
  const int nr = 16 * nvec;
  for (int r = 0; r < nr; ++r) {
    float mx = ninf;
    if (tile_max)
      mx = tile_max[r];
    else
      for (int j = 0; j < kt; ++j) mx = std::max(mx, S[j * QB + r]);
    const float mnew = std::max(m[r], mx);
    const float base = mnew == ninf ? 0.f : mnew;  // all masked so far: everything stays 0
    const float a = std::exp2(m[r] - base);
    float sum = 0.f;
    for (int j = 0; j < kt; ++j) {
      const float p = std::exp2(S[j * QB + r] - base);
      S[j * QB + r] = p;
      sum += p;
    }
    l[r] = l[r] * a + sum;
    m[r] = mnew;
    alpha[r] = a;
  }
}

void pv_generic(const float* S, int kt, int nr, const float* V, int64_t ldv, int Dv, const float* alpha,
                float* acc) {
  for (int r = 0; r < nr; ++r) {
    float* o = acc + static_cast<int64_t>(r) * Dv;
    const float a = alpha[r];
    for (int c = 0; c < Dv; ++c) o[c] *= a;
    for (int j = 0; j < kt; ++j) {
      const float p = S[j * QB + r];
      const float* v = V + j * ldv;
      for (int c = 0; c < Dv; ++c) o[c] += p * v[c];
    }
  }
}

void bf16_rows_generic(const uint16_t* src, int64_t lds, int rows, int cols, float* dst) {
  for (int i = 0; i < rows; ++i)
    for (int c = 0; c < cols; ++c) dst[static_cast<int64_t>(i) * cols + c] = bf16_to_f32(src[i * lds + c]);
}

}  // namespace

const AttnTileKernels& attn_tile_kernels_generic() {
  static const AttnTileKernels k{"generic", scores_generic, softmax_generic, pv_generic, bf16_rows_generic};
  return k;
}

}  // namespace vlart::kernels
