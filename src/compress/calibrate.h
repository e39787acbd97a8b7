// Calibration for quantization: run the float policy on recorded observations and collect, for the
// input of every Linear layer, per-input-channel mean |x| and mean x^2, the absolute maximum and a
// sample of rows. quantize_checkpoint() uses them for activation-aware int4 scales (AWQ style) and
// static w8a8 activation ranges (docs/quantization.md, "Calibration"); prune_checkpoint() for
// activation importance of heads and MLP channels (docs/compression.md).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "vlart/policy.h"

namespace vlart::compress {

struct LayerActStats {
  int64_t k = 0;                // input features
  int64_t rows = 0;             // activation rows seen
  std::vector<double> sum_abs;  // [k] sum over rows of |x|
  std::vector<double> sum_sq;   // [k] sum over rows of x^2
  float absmax = 0.f;           // max |x| over everything seen
  std::vector<float> sample;    // [sampled, k]: uniform reservoir sample of the rows seen
  int64_t sampled = 0;
  // Block-diagonal second moments (CalibrateOptions::block_moments): for block b of `block`
  // consecutive inputs, block_sq[(b * block + i) * block + j] = sum over rows of x[b*block+i] * x[b*block+j].
  int64_t block = 0;
  std::vector<double> block_sq;
  std::vector<float> mean_abs() const;  // [k]
};

struct CalibrationData {
  std::map<std::string, LayerActStats> layers;  // full tensor name ("model.<...>.weight") -> stats
  int64_t observations = 0;
};

struct CalibrateOptions {
  PolicyOptions policy;          // how the float checkpoint is loaded (threads, tokenizer, ...)
  int64_t max_rows = 64;         // rows sampled per layer (AWQ search)
  uint64_t seed = 0;             // reservoir sampling
  // Optional: block size (a divisor of the layer's input width) for which a layer's block-diagonal
  // second moments are collected, given its weight name; 0 = none. Pruning uses it for the inputs
  // of attention o_proj (block = head_dim: one block per query head).
  std::function<int64_t(const std::string& weight_name)> block_moments;
};

// Loads the float checkpoint `dir`, runs infer() once per observation (noise[i] when given, else
// drawn from the policy's seed) and returns the statistics. InvalidArgument for an empty list or a
// quantized checkpoint (calibrate the float original). The driver is part of the runtime
// (src/runtime/calibrate.cpp: it runs a Policy); the statistics types are compress's.
CalibrationData collect_calibration(const std::string& dir, const std::vector<Observation>& obs,
                                    const std::vector<std::vector<float>>& noise, const CalibrateOptions& opts);

}  // namespace vlart::compress
