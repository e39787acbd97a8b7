#include "models/flow_matching.h"

#include <cmath>

#include "vlart/error.h"

namespace vlart {

std::vector<float> time_embedding(float t, int64_t width, double min_period, double max_period) {
  VLART_CHECK(width % 2 == 0, InvalidArgument, "time embedding: width ", width, " is odd");
  const int64_t half = width / 2;
  std::vector<float> out(static_cast<size_t>(width));
  const double step = half > 1 ? 1.0 / static_cast<double>(half - 1) : 0.0;
  for (int64_t i = 0; i < half; ++i) {
    // torch.linspace fills the second half from the end, which keeps the last value exactly 1.
    const double frac = i < half / 2 ? step * static_cast<double>(i) : 1.0 - step * static_cast<double>(half - 1 - i);
    const double period = min_period * std::pow(max_period / min_period, frac);
    const double x = (1.0 / period * 2.0 * M_PI) * static_cast<double>(t);
    out[static_cast<size_t>(i)] = static_cast<float>(std::sin(x));
    out[static_cast<size_t>(half + i)] = static_cast<float>(std::cos(x));
  }
  return out;
}

}  // namespace vlart
