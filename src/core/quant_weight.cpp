#include "core/quant_weight.h"

#include <algorithm>
#include <cmath>

#include "vlart/error.h"

namespace vlart {

void quantize_int8_rows(const float* w, int64_t n, int64_t k, int8_t* q, float* scales) {
  for (int64_t i = 0; i < n; ++i) {
    const float* row = w + i * k;
    float amax = 0.f;
    for (int64_t j = 0; j < k; ++j) amax = std::max(amax, std::fabs(row[j]));
    const float s = amax / 127.f;
    scales[i] = s;
    int8_t* qr = q + i * k;
    for (int64_t j = 0; j < k; ++j)
      qr[j] = s > 0.f ? static_cast<int8_t>(std::clamp(std::nearbyint(row[j] / s), -127.f, 127.f)) : int8_t{0};
  }
}

QuantWeight make_int8_weight(const float* w, int64_t n, int64_t k) {
  QuantWeight qw;
  qw.kind = QuantWeight::Kind::kInt8;
  qw.n = n;
  qw.k = k;
  qw.qweight = Tensor::empty(Shape{n, k}, DType::kI8);
  qw.scales = Tensor::empty(Shape{n}, DType::kF32);
  quantize_int8_rows(w, n, k, static_cast<int8_t*>(qw.qweight.raw()), qw.scales.data<float>());
  return qw;
}

std::vector<float> QuantWeight::scales_f32() const {
  return scales.to_float_vector();
}

std::vector<float> QuantWeight::offsets_f32() const {
  VLART_CHECK(kind == Kind::kInt4, InvalidArgument, "QuantWeight: offsets exist for int4 weights only");
  std::vector<float> s = scales_f32();
  const int64_t g = groups();
  std::vector<float> off(s.size());
  const uint8_t* z = zeros.defined() ? zeros.data<uint8_t>() : nullptr;
  for (int64_t r = 0; r < n; ++r)
    for (int64_t j = 0; j < g; ++j) {
      const size_t i = static_cast<size_t>(r * g + j);
      off[i] = -static_cast<float>(symmetric ? 8 : z[i]) * s[i];
    }
  return off;
}

size_t QuantWeight::nbytes() const {
  return qweight.nbytes() + scales.nbytes() + (zeros.defined() ? zeros.nbytes() : 0) +
         (input_scales.defined() ? input_scales.nbytes() : 0);
}

Tensor QuantWeight::dequantize() const {
  Tensor out = Tensor::empty(Shape{n, k}, DType::kF32);
  float* w = out.data<float>();
  const std::vector<float> s = scales_f32();
  const std::vector<float> in = input_scales.defined() ? input_scales.to_float_vector() : std::vector<float>();
  auto finish = [&]() {
    if (!in.empty())
      for (int64_t r = 0; r < n; ++r)
        for (int64_t c = 0; c < k; ++c) w[r * k + c] /= in[static_cast<size_t>(c)];
    return out;
  };
  if (kind == Kind::kInt8) {
    const int8_t* q = qweight.data<int8_t>();
    for (int64_t r = 0; r < n; ++r)
      for (int64_t c = 0; c < k; ++c) w[r * k + c] = s[static_cast<size_t>(r)] * static_cast<float>(q[r * k + c]);
    return finish();
  }
  const std::vector<float> off = offsets_f32();
  const uint8_t* q = qweight.data<uint8_t>();
  const int64_t g = groups();
  for (int64_t r = 0; r < n; ++r)
    for (int64_t c = 0; c < k; ++c) {
      const uint8_t b = q[r * (k / 2) + c / 2];
      const float u = static_cast<float>((c & 1) ? (b >> 4) : (b & 15));
      const size_t i = static_cast<size_t>(r * g + c / group);
      w[r * k + c] = s[i] * u + off[i];
    }
  return finish();
}

}  // namespace vlart
