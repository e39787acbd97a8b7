#include "models/blocks/normalize.h"

#include "vlart/error.h"

namespace vlart::blocks {

NormMode parse_norm_mode(const std::string& s) {
  if (s == "IDENTITY") return NormMode::kIdentity;
  if (s == "MEAN_STD") return NormMode::kMeanStd;
  if (s == "MIN_MAX") return NormMode::kMinMax;
  if (s == "QUANTILES") return NormMode::kQuantiles;
  if (s == "QUANTILE10") return NormMode::kQuantile10;
  throw InvalidArgument("normalization mode '" + s + "' is not one of IDENTITY, MEAN_STD, MIN_MAX, QUANTILES, QUANTILE10");
}

const char* norm_mode_name(NormMode m) {
  switch (m) {
    case NormMode::kIdentity: return "IDENTITY";
    case NormMode::kMeanStd: return "MEAN_STD";
    case NormMode::kMinMax: return "MIN_MAX";
    case NormMode::kQuantiles: return "QUANTILES";
    case NormMode::kQuantile10: return "QUANTILE10";
  }
  return "?";
}

FeatureNormalizer::FeatureNormalizer(NormMode mode, const FeatureStats& stats, int64_t dim, const std::string& feature)
    : mode_(mode), dim_(dim) {
  VLART_CHECK(dim > 0, InvalidArgument, "normaliser for '", feature, "': dimension must be positive, got ", dim);
  if (mode == NormMode::kIdentity) return;
  auto need = [&](const char* k) -> const std::vector<float>& {
    auto it = stats.find(k);
    VLART_CHECK(it != stats.end(), InvalidArgument, "normaliser for '", feature, "': mode ", norm_mode_name(mode),
                " needs the '", k, "' statistic, which the checkpoint does not have");
    VLART_CHECK(static_cast<int64_t>(it->second.size()) == dim, InvalidArgument, "normaliser for '", feature,
                "': statistic '", k, "' has ", it->second.size(), " values, expected ", dim);
    return it->second;
  };
  const char* lo_key = mode == NormMode::kMeanStd ? "mean" : mode == NormMode::kMinMax ? "min"
                       : mode == NormMode::kQuantiles ? "q01" : "q10";
  const char* hi_key = mode == NormMode::kMeanStd ? "std" : mode == NormMode::kMinMax ? "max"
                       : mode == NormMode::kQuantiles ? "q99" : "q90";
  lo_ = need(lo_key);
  const std::vector<float>& hi = need(hi_key);
  scale_ = hi;
  denom_.resize(static_cast<size_t>(dim));
  for (size_t i = 0; i < denom_.size(); ++i) {
    if (mode == NormMode::kMeanStd) {
      denom_[i] = hi[i] + kNormEps;
    } else {
      const float d = hi[i] - lo_[i];
      denom_[i] = d == 0.f ? kNormEps : d;
    }
  }
}

void FeatureNormalizer::normalize(const float* x, float* y, int64_t n) const {
  for (int64_t r = 0; r < n; ++r)
    for (int64_t i = 0; i < dim_; ++i) {
      const int64_t k = r * dim_ + i;
      const auto j = static_cast<size_t>(i);
      switch (mode_) {
        case NormMode::kIdentity: y[k] = x[k]; break;
        case NormMode::kMeanStd: y[k] = (x[k] - lo_[j]) / denom_[j]; break;
        default: y[k] = 2.f * (x[k] - lo_[j]) / denom_[j] - 1.f; break;
      }
    }
}

void FeatureNormalizer::unnormalize(const float* x, float* y, int64_t n) const {
  for (int64_t r = 0; r < n; ++r)
    for (int64_t i = 0; i < dim_; ++i) {
      const int64_t k = r * dim_ + i;
      const auto j = static_cast<size_t>(i);
      switch (mode_) {
        case NormMode::kIdentity: y[k] = x[k]; break;
        case NormMode::kMeanStd: y[k] = x[k] * scale_[j] + lo_[j]; break;
        case NormMode::kMinMax: y[k] = (x[k] + 1.f) / 2.f * denom_[j] + lo_[j]; break;
        default: y[k] = (x[k] + 1.f) * denom_[j] / 2.f + lo_[j]; break;
      }
    }
}

}  // namespace vlart::blocks
