#include "cpu/rope.h"

#include <omp.h>

#include <cmath>

#include "vlart/dtype.h"

namespace vlart::kernels {

Rope::Rope(const RopeParams& p, int threads) : p_(p), threads_(threads > 0 ? threads : 1) {
  const int64_t half = p_.D / 2;
  ts_.resize(static_cast<size_t>(half));
  for (int64_t i = 0; i < half; ++i)
    ts_[static_cast<size_t>(i)] = std::pow(p_.theta, static_cast<float>(2 * i) / static_cast<float>(p_.D));
}

void Rope::run(const void* x, const void* pos, void* out, void* scratch) const {
  const int64_t rows = p_.B * p_.L, H = p_.H, D = p_.D, half = D / 2;
  const float* ts = ts_.data();
  float* base = static_cast<float*>(scratch);
#pragma omp parallel for num_threads(threads_) schedule(static)
  for (int64_t row = 0; row < rows; ++row) {
    float* cs = base + static_cast<size_t>(omp_get_thread_num()) * static_cast<size_t>(D);  // cos | sin
    const float ps = p_.pos_i64 ? static_cast<float>(static_cast<const int64_t*>(pos)[row])
                                : static_cast<float>(static_cast<const int32_t*>(pos)[row]);
    // One cos/sin row per position, shared by all heads.
    for (int64_t i = 0; i < half; ++i) {
      const float r = ps / ts[i];
      cs[i] = std::cos(r);
      cs[half + i] = std::sin(r);
    }
    for (int64_t h = 0; h < H; ++h) {
      const int64_t o = (row * H + h) * D;
      if (p_.bf16) {
        const uint16_t* xi = static_cast<const uint16_t*>(x) + o;
        uint16_t* yo = static_cast<uint16_t*>(out) + o;
        for (int64_t i = 0; i < half; ++i) {
          const float x1 = bf16_to_f32(xi[i]), x2 = bf16_to_f32(xi[half + i]);
          yo[i] = f32_to_bf16(x1 * cs[i] - x2 * cs[half + i]);
          yo[half + i] = f32_to_bf16(x2 * cs[i] + x1 * cs[half + i]);
        }
      } else {
        const float* xi = static_cast<const float*>(x) + o;
        float* yo = static_cast<float*>(out) + o;
        for (int64_t i = 0; i < half; ++i) {
          const float x1 = xi[i], x2 = xi[half + i];
          yo[i] = x1 * cs[i] - x2 * cs[half + i];
          yo[half + i] = x2 * cs[i] + x1 * cs[half + i];
        }
      }
    }
  }
}

}  // namespace vlart::kernels
