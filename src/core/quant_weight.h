// A quantized Linear weight as the graph carries it: the stored tensors of a quantized checkpoint
// (docs/quantization.md), usually zero-copy views of the mapped file. Kernels repack them once at
// prepare time; the logical weight is [n, k] f32.
#pragma once

#include <cstdint>
#include <vector>

#include "vlart/tensor.h"

namespace vlart {

struct QuantWeight {
  enum class Kind : uint8_t { kInt8, kInt4 };
  Kind kind = Kind::kInt8;
  int64_t n = 0, k = 0;
  int64_t group = 0;        // int4: values per scale along k; int8: 0 (one scale per row)
  bool symmetric = true;    // int4: false = U8 zero points in `zeros`
  bool act_int8 = false;    // W8A8: activations quantized per token at run time (int8 only)
  Tensor qweight;           // I8 [n, k] or U8 [n, k/2] (low nibble = even column)
  Tensor scales;            // F32 or F16 [n] (int8); F16 [n, ceil(k/group)] (int4)
  Tensor zeros;             // U8 [n, ceil(k/group)] (asymmetric int4), else undefined
  // Calibrated checkpoints (format version 2), optional:
  Tensor input_scales;      // F32 [k]: activation-aware scales; the stored values quantize
                            // w[:, c] * input_scales[c], so w = dequant / input_scales[c]
  float act_scale = 0.f;    // W8A8 static activation scale (calibrated range / 127); 0 = per token

  // Scales as f32, [n] (int8) or [n, groups] (int4).
  std::vector<float> scales_f32() const;
  // Per-group value of nibble 0 for int4: -8 s (symmetric) or -z s (asymmetric), [n, groups].
  std::vector<float> offsets_f32() const;
  int64_t groups() const { return kind == Kind::kInt4 && group > 0 ? (k + group - 1) / group : 1; }
  // Bytes of the stored tensors.
  size_t nbytes() const;
  // Dequantized [n, k] f32 (reference, and consumers that are not a quantized Linear).
  Tensor dequantize() const;
};

// Symmetric per-row int8 of a row-major f32 [n, k] (vlart quantize's int8 scheme): scale = max |w| / 127,
// q = clamp(round(w / scale), -127, 127), a zero row gets scale 0 and q 0. Writes q [n * k], scales [n].
void quantize_int8_rows(const float* w, int64_t n, int64_t k, int8_t* q, float* scales);
// The same as a QuantWeight (I8 qweight, F32 scales), for weights quantized at load time.
QuantWeight make_int8_weight(const float* w, int64_t n, int64_t k);

}  // namespace vlart
