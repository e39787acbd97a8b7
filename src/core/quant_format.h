// vlart's quantized checkpoint format (docs/quantization.md), as readers need it: model loaders
// (through QuantConfig and the validators) and the converter (compress/quantize.h).
//
// A quantized 2-D weight `X.weight` [N, K] is stored as plain safetensors tensors beside each other:
//   int8 / w8a8   X.weight.qweight I8 [N, K]       q = round(w / s), s = max|w_row| / 127
//                 X.weight.scales  F32 [N]          w ~= s[n] * q[n, k]
//   int4-gG sym   X.weight.qweight U8 [N, K/2]     two values per byte, low nibble = even column,
//                                                   stored as q + 8 with q in [-8, 7]
//                 X.weight.scales  F16 [N, ceil(K/G)] s = max|w_group| / 7;  w ~= s * q
//   int4-gG asym  X.weight.qweight U8 [N, K/2]     nibbles u in [0, 15]
//                 X.weight.scales  F16 [N, ceil(K/G)] s = (max - min) / 15 over the group, 0 in range
//                 X.weight.zeros   U8  [N, ceil(K/G)] z in [0, 15];  w ~= s * (u - z)
// Groups run along K; when G does not divide K the last group of each row is shorter (K mod G
// columns). K must be even for int4 (an odd K keeps the weight float).
//   bf16          X.weight         BF16 (same name and shape)
// and config.json gets a "quantization" section. Every value stays in a plain safetensors dtype, so
// any safetensors reader opens the files. Scales are rounded to their stored dtype first (F16 scales
// upwards), and values quantized against the stored scale, so |w - dequant(w)| <= s / 2 holds for
// every element (up to f32 rounding of the division itself).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/safetensors.h"
#include "vlart/tensor.h"

// Namespace compress for its callers' sake; the format lives in core so that the layers below the
// converter (models) can read it.
namespace vlart::compress {

// Newest format version this build reads and writes. Version 1: qweight/scales/zeros. Version 2
// (written only for calibrated checkpoints) adds the optional per-weight tensors
//   int4 / int8   X.weight.input_scales F32 [K]  activation-aware scales: the stored values
//                                                quantize w[:, k] * input_scales[k], so
//                                                w ~= dequant(q)[:, k] / input_scales[k]
//   w8a8          X.weight.act_scale    F32 [1]  static activation scale (calibrated max|x| / 127)
constexpr int kQuantFormatVersion = 2;
constexpr const char* kQWeightSuffix = ".qweight";
constexpr const char* kScalesSuffix = ".scales";
constexpr const char* kZerosSuffix = ".zeros";
constexpr const char* kInputScalesSuffix = ".input_scales";
constexpr const char* kActScaleSuffix = ".act_scale";

enum class Scheme : uint8_t { kBF16, kInt8, kInt4, kW8A8 };

struct QuantScheme {
  Scheme kind = Scheme::kInt8;
  int64_t group_size = 0;   // int4 only (32, 64, 128); 0 = per output channel (int8)
  bool symmetric = true;    // int4: false = asymmetric with U8 zero points
  bool act_int8 = false;    // w8a8: activations quantized to int8 per token at run time
  std::string name() const;  // "int8", "int4-g64", "int4-g64-asym", "w8a8", "bf16"
};

// "bf16", "int8", "w8a8", "int4-g32|g64|g128" (symmetric) or "int4-gG-asym". InvalidArgument
// listing the accepted names otherwise.
QuantScheme parse_scheme(const std::string& s);

// Dequantization of the stored forms (row-major [N, K] f32 output).
void dequantize_int8(const int8_t* q, const float* scales, int64_t n, int64_t k, float* out);
// zeros == nullptr: symmetric (nibble - 8).
void dequantize_int4(const uint8_t* packed, const uint16_t* scales, const uint8_t* zeros, int64_t n, int64_t k,
                     int64_t g, float* out);

// ---- reading ----
// The "quantization" section of a checkpoint's config.json.
struct QuantConfig {
  QuantScheme scheme;
  int version = 1;
  std::string calibration;  // "" (none), "awq" or "static"
  int64_t quantized = 0;
  std::vector<std::string> kept_float;
  // Attention products the checkpoint asks for: "f32" (default when absent), "int16" or "int8"
  // (PolicyOptions::AttentionPrecision::kAuto follows it).
  std::string attention = "f32";
};
// nullopt when config.json has no "quantization" key; FormatError naming the file and field for an
// unknown format/version/scheme or inconsistent fields.
std::optional<QuantConfig> read_quant_config(const std::string& config_json_path);

// Dequantizes the quantized weight `base` (e.g. "model.x.weight") of `ckpt` to an owning F32
// tensor [N, K]. Validates the stored tensors first (see validate_quantized).
Tensor dequantize_weight(const SafetensorsCheckpoint& ckpt, const std::string& base, const QuantConfig& qc);
// Checks that `base`.qweight/.scales(/.zeros) exist with the dtypes and shapes the scheme needs;
// FormatError naming the file, the tensor and expected vs got. Returns the logical shape [N, K].
// Also checks the optional version-2 tensors (input_scales, act_scale: dtype, shape, positive
// finite values, allowed for the scheme and version).
Shape validate_quantized(const SafetensorsCheckpoint& ckpt, const std::string& base, const QuantConfig& qc);
// Only qweight/scales/zeros.
Shape validate_quantized_tensors(const SafetensorsCheckpoint& ckpt, const std::string& base, const QuantConfig& qc);

}  // namespace vlart::compress
