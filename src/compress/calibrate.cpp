#include "compress/calibrate.h"

namespace vlart::compress {

std::vector<float> LayerActStats::mean_abs() const {
  std::vector<float> m(static_cast<size_t>(k), 0.f);
  if (rows == 0) return m;
  for (int64_t i = 0; i < k; ++i) m[static_cast<size_t>(i)] = static_cast<float>(sum_abs[static_cast<size_t>(i)] / rows);
  return m;
}

}  // namespace vlart::compress
