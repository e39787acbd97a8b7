// Weight quantization of checkpoints into vlart's quantized checkpoint format (docs/quantization.md).
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

struct CalibrationData;  // compress/calibrate.h

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

// ---- tensor math (row-major f32 input [N, K]) ----
struct Int8Weight {
  std::vector<int8_t> q;      // [N, K]
  std::vector<float> scales;  // [N]
};
Int8Weight quantize_int8(const float* w, int64_t n, int64_t k);
void dequantize_int8(const int8_t* q, const float* scales, int64_t n, int64_t k, float* out);

struct Int4Weight {
  std::vector<uint8_t> packed;    // [N, K/2]
  std::vector<uint16_t> scales;   // [N, ceil(K/G)] f16 bits
  std::vector<uint8_t> zeros;     // [N, ceil(K/G)] (asymmetric only, else empty)
};
// k and g must be even (InvalidArgument otherwise); the last group of a row may be shorter.
Int4Weight quantize_int4(const float* w, int64_t n, int64_t k, int64_t g, bool symmetric);
// GPTQ (Frantar et al. 2022) for int4 with groups: columns are quantized left to right and each
// column's rounding error, divided by the pivot of the Cholesky factor U of H^-1 (H^-1 = U^T U),
// is pushed onto the columns not yet quantized as err * U[j, j+1:], which minimises the output error
// ||X (Wq - W)^T||^2 on the rows x [rows, K] column by column (H = X^T X / rows + damp * mean(diag) * I).
// A group's scale (and zero point) is taken from its columns as they stand when the group starts.
// Same output format and scale rounding as quantize_int4; with H a multiple of I it equals
// quantize_int4 exactly. Columns whose inputs are always zero get weight 0 (they never contribute).
Int4Weight gptq_int4(const float* w, int64_t n, int64_t k, int64_t g, bool symmetric, const float* x, int64_t rows,
                     double damp = 0.01);
// zeros == nullptr: symmetric (nibble - 8).
void dequantize_int4(const uint8_t* packed, const uint16_t* scales, const uint8_t* zeros, int64_t n, int64_t k,
                     int64_t g, float* out);

// ---- name patterns ----
// Glob match of the whole string; '*' matches any run of characters (dots included), '?' one.
bool glob_match(const std::string& pattern, const std::string& s);
// True when `pattern` matches the tensor name, its module name (without a trailing ".weight" or
// ".bias"), or a dot-aligned suffix of the module name; each with and without the "model." prefix.
// So "action_out_proj" matches "model.action_out_proj.weight" and "q_proj" every q_proj.
bool pattern_matches_tensor(const std::string& pattern, const std::string& tensor_name);
// Modules that stay float unless --no-default-keep: norms, embeddings, the patch-embedding conv,
// the state/action/time projections and lm_head.
const std::vector<std::string>& default_keep_float();

// ---- checkpoint conversion ----
struct QuantizeOptions {
  QuantScheme scheme;
  std::vector<std::string> keep_float;  // patterns added to the defaults
  bool use_default_keep = true;
  bool force = false;                   // allow a non-empty out_dir (its contents are replaced)
  bool scales_f16 = false;              // int8: F16 instead of F32 per-row scales
  // Optional activation statistics (collect_calibration): int4 weights get activation-aware
  // input scales (per layer the best of an alpha grid on the sampled rows; alpha 0 = plain
  // rounding, so never worse on them), w8a8 weights a static activation scale. Layers without
  // statistics are quantized as without calibration.
  const CalibrationData* calibration = nullptr;
  std::vector<double> awq_alphas = {0.0, 0.25, 0.5, 0.75, 1.0};
  // int4 with calibration: GPTQ rounding (gptq_int4) on the sampled rows instead of the AWQ scale
  // search; gptq_damp is the fraction of H's mean diagonal added to it.
  bool gptq = false;
  double gptq_damp = 0.01;
  // Attention products recorded in the config ("f32", "int16" or "int8", see
  // PolicyOptions::AttentionPrecision); empty = the scheme's default: int8 for w8a8 (its matmul
  // inputs are already int8), f32 for the weight-only schemes.
  std::string attention;
};

struct QuantizeSummary {
  int64_t quantized = 0;        // tensors converted to the scheme
  int64_t kept_float = 0;       // float tensors matched by a keep pattern
  int64_t other = 0;            // everything else copied unchanged (1-D, 4-D, non-float, non-weight...)
  int64_t skipped_shape = 0;    // 2-D weights left float because K is odd (int4 packs pairs)
  uint64_t bytes_before = 0;    // tensor data bytes of the model weights, before and after
  uint64_t bytes_after = 0;
  std::vector<std::string> kept_patterns;      // effective keep patterns
  std::vector<std::string> unmatched_patterns;  // user patterns that matched no tensor
  std::vector<std::string> skipped_names;       // tensors of skipped_shape
  // Calibration: weights that got input scales / a static activation scale, and the summed squared
  // output error on the sampled rows with plain rounding vs the chosen scales (int4).
  int64_t calibrated = 0;
  double calib_err_plain = 0, calib_err_chosen = 0;
};

// Reads the checkpoint in `in_dir` (model.safetensors or an index of shards), writes
// `out_dir/model.safetensors` and `out_dir/config.json` (with the "quantization" section), and
// copies every other file and directory unchanged (symlinks are copied as the files they point to).
// Refuses a non-empty out_dir without opts.force, an out_dir equal to or inside in_dir, and an
// already quantized input.
QuantizeSummary quantize_checkpoint(const std::string& in_dir, const std::string& out_dir,
                                    const QuantizeOptions& opts);

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
