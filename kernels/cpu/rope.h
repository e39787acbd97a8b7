// Rotary position embedding (rotate-half), semantics of OpKind::kRope (src/core/op.h), matching the
// PyTorch reference bit for bit in f32: ts_i = theta^(2i/D), r = pos / ts_i,
// out[:D/2] = x1 cos r - x2 sin r, out[D/2:] = x2 cos r + x1 sin r.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace vlart::kernels {

struct RopeParams {
  int64_t B = 1, L = 1, H = 1, D = 2;
  float theta = 10000.f;
  bool bf16 = false;     // x and out are bf16 (else f32)
  bool pos_i64 = false;  // positions are i64 (else i32)
};

class Rope {
 public:
  Rope(const RopeParams& p, int threads);
  // One row of cos and sin values (D floats) per thread.
  size_t scratch_bytes() const { return sizeof(float) * static_cast<size_t>(p_.D) * static_cast<size_t>(threads_); }
  // Does not allocate. Positions are read at run time; only the timescales are precomputed.
  void run(const void* x, const void* pos, void* out, void* scratch) const;
  const std::vector<float>& timescales() const { return ts_; }

 private:
  RopeParams p_;
  int threads_;
  std::vector<float> ts_;  // D/2 timescales theta^(2i/D)
};

}  // namespace vlart::kernels
