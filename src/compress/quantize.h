// Weight quantization of checkpoints into vlart's quantized checkpoint format (the layout, scheme
// names and readers are in core/quant_format.h; docs/quantization.md): per-tensor math, AWQ / GPTQ
// with calibration, name patterns, and the checkpoint converter.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/quant_format.h"
#include "core/safetensors.h"
#include "vlart/tensor.h"

namespace vlart::compress {

struct CalibrationData;  // compress/calibrate.h

// ---- tensor math (row-major f32 input [N, K]) ----
struct Int8Weight {
  std::vector<int8_t> q;      // [N, K]
  std::vector<float> scales;  // [N]
};
Int8Weight quantize_int8(const float* w, int64_t n, int64_t k);

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

// ---- name patterns ----
// Glob match of the whole string; '*' matches any run of characters (dots included), '?' one.
bool glob_match(const std::string& pattern, const std::string& s);
// True when `pattern` matches the tensor name, its module name (without a trailing ".weight" or
// ".bias"), or a dot-aligned suffix of the module name; each with and without the family's weight
// prefix (FamilyWeights::weight_prefix, "model." for LeRobot policies). So "action_out_proj"
// matches "model.action_out_proj.weight" and "q_proj" every q_proj.
bool pattern_matches_tensor(const std::string& pattern, const std::string& tensor_name, const std::string& prefix);

// ---- checkpoint conversion ----
struct QuantizeOptions {
  QuantScheme scheme;
  std::vector<std::string> keep_float;  // patterns added to the family's defaults (FamilyWeights::keep_float)
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

}  // namespace vlart::compress
