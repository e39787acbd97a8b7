// LeRobot's feature normalisation (NormalizerProcessorStep / UnnormalizerProcessorStep), every mode,
// with LeRobot's float32 operation order so that results match it bit for bit
// (tests/data/normalizer/cases.json, made by tools/make_normalizer_fixtures.py from LeRobot itself):
//   MEAN_STD    (x - mean) / (std + eps)                  inverse  x * std + mean
//   MIN_MAX     2 * (x - min) / d - 1, d = max - min       inverse  (x + 1) / 2 * d + min
//   QUANTILES   2 * (x - q01) / d - 1, d = q99 - q01       inverse  (x + 1) * d / 2 + q01
//   QUANTILE10  as QUANTILES with q10 / q90
//   IDENTITY    x
// where a zero range d is replaced by eps (1e-8).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace vlart::blocks {

enum class NormMode { kIdentity, kMeanStd, kMinMax, kQuantiles, kQuantile10 };

// "MEAN_STD", "MIN_MAX", "QUANTILES", "QUANTILE10", "IDENTITY" (LeRobot's names); InvalidArgument
// listing them otherwise.
NormMode parse_norm_mode(const std::string& s);
const char* norm_mode_name(NormMode m);

// A feature's statistics by LeRobot's names ("mean", "std", "min", "max", "q01", "q99", "q10", "q90").
using FeatureStats = std::map<std::string, std::vector<float>>;

class FeatureNormalizer {
 public:
  FeatureNormalizer() = default;
  // `feature` names the feature in errors. InvalidArgument when a statistic the mode needs is
  // missing or not `dim` long.
  FeatureNormalizer(NormMode mode, const FeatureStats& stats, int64_t dim, const std::string& feature);
  NormMode mode() const { return mode_; }
  int64_t dim() const { return dim_; }
  // x and y hold n * dim values (rows of dim); y may alias x.
  void normalize(const float* x, float* y, int64_t n) const;
  void unnormalize(const float* x, float* y, int64_t n) const;

 private:
  NormMode mode_ = NormMode::kIdentity;
  int64_t dim_ = 0;
  std::vector<float> lo_, scale_;  // MEAN_STD: mean, std; others: low quantile / min, and range d
  std::vector<float> denom_;       // MEAN_STD: std + eps; others: d (eps where d == 0)
};

constexpr float kNormEps = 1e-8f;

}  // namespace vlart::blocks
