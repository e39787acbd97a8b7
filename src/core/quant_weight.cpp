#include "core/quant_weight.h"

#include "vlart/error.h"

namespace vlart {

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
