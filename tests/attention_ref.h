// Naive attention reference shared by the attention op tests: materialised Lq x Lk scores per
// (batch, head) in double, softmax in double, OpKind::kAttention semantics (src/core/op.h).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "core/op.h"
#include "vlart/dtype.h"

namespace vlart::testing::attn {

enum class MaskKind { kNone, kBool, kU8, kF32, kBF16 };

struct AttnCase {
  int64_t B = 1, Lq = 8, Lk = 8, Hq = 2, Hkv = 2, D = 16, Dv = -1;  // Dv -1 = D
  bool causal = false;
  float scale = 0.f;
  MaskKind mask = MaskKind::kNone;
  int64_t mask_batch = -1;  // -1 = B
  DType dtype = DType::kF32;
  AttnPrecision prec = AttnPrecision::kF32;  // Graph::attention's precision
  int64_t dv() const { return Dv < 0 ? D : Dv; }
  int64_t mb() const { return mask_batch < 0 ? B : mask_batch; }
  // Runtime valid key count per batch (Attention's kv_len input); empty = all Lk keys.
  std::vector<int32_t> kv_len;
};

// Mask values as the reference sees them: allowed[] for boolean masks, add[] for additive ones.
struct MaskData {
  std::vector<uint8_t> allowed;
  std::vector<float> add;
};

// Naive attention: full Lq x Lk scores per (b, h) in double, softmax in double.
inline std::vector<float> ref_attention(const AttnCase& c, const std::vector<float>& q, const std::vector<float>& k,
                                 const std::vector<float>& v, const MaskData& m) {
  const int64_t Dv = c.dv(), G = c.Hq / c.Hkv;
  const double scale = c.scale != 0.f ? c.scale : 1.0 / std::sqrt(static_cast<double>(c.D));
  std::vector<float> out(static_cast<size_t>(c.B * c.Lq * c.Hq * Dv), 0.f);
  std::vector<double> s(static_cast<size_t>(c.Lk));
  std::vector<bool> ok(static_cast<size_t>(c.Lk));
  for (int64_t b = 0; b < c.B; ++b)
    for (int64_t h = 0; h < c.Hq; ++h)
      for (int64_t i = 0; i < c.Lq; ++i) {
        const int64_t g = h / G;
        const int64_t Lv = c.kv_len.empty() ? c.Lk : c.kv_len[static_cast<size_t>(b)];
        const int64_t mrow = ((c.mb() == 1 ? 0 : b) * c.Lq + i) * c.Lk;
        double mx = -std::numeric_limits<double>::infinity();
        for (int64_t j = 0; j < c.Lk; ++j) {
          double dot = 0;
          for (int64_t d = 0; d < c.D; ++d)
            dot += static_cast<double>(q[((b * c.Lq + i) * c.Hq + h) * c.D + d]) *
                   k[((b * c.Lk + j) * c.Hkv + g) * c.D + d];
          dot *= scale;
          bool allowed = true;
          if (!m.allowed.empty()) allowed = m.allowed[mrow + j] != 0;
          if (!m.add.empty()) dot += m.add[mrow + j];
          if (c.causal && j > i + (Lv - c.Lq)) allowed = false;
          if (j >= Lv) allowed = false;
          if (std::isinf(dot) && dot < 0) allowed = false;
          s[j] = dot;
          ok[j] = allowed;
          if (allowed) mx = std::max(mx, dot);
        }
        if (std::isinf(mx)) continue;  // no allowed key: zeros
        double sum = 0;
        for (int64_t j = 0; j < c.Lk; ++j) {
          s[j] = ok[j] ? std::exp(s[j] - mx) : 0.0;  // (a key past kv_len is never read: 0, even if v is NaN)
          sum += s[j];
        }
        for (int64_t e = 0; e < Dv; ++e) {
          double o = 0;
          for (int64_t j = 0; j < c.Lk; ++j)
            if (ok[j]) o += s[j] * v[((b * c.Lk + j) * c.Hkv + g) * Dv + e];
          out[((b * c.Lq + i) * c.Hq + h) * Dv + e] = static_cast<float>(o / sum);
        }
      }
  return out;
}

}  // namespace vlart::testing::attn
