#include "models/smolvla/token_prune.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

#include "vlart/error.h"

namespace vlart::smolvla {

std::vector<int64_t> top_tokens_by_norm(const Tensor& img, int64_t k) {
  VLART_CHECK(img.rank() == 3, InvalidArgument, "visual token pruning: features ", img.shape().str(),
              ", expected [cameras, tokens, hidden]");
  const int64_t n = img.dim(0), T = img.dim(1), D = img.dim(2);
  VLART_CHECK(k > 0 && k <= T, InvalidArgument, "visual token pruning: keep ", k, " tokens per image, expected 1..",
              T);
  const std::vector<float> f = img.to_float_vector();
  std::vector<int64_t> out;
  out.reserve(static_cast<size_t>(n * k));
  std::vector<double> norm(static_cast<size_t>(T));
  std::vector<int64_t> order(static_cast<size_t>(T));
  for (int64_t c = 0; c < n; ++c) {
    for (int64_t t = 0; t < T; ++t) {
      const float* row = f.data() + (c * T + t) * D;
      double s = 0;
      for (int64_t d = 0; d < D; ++d) s += double(row[d]) * row[d];
      norm[static_cast<size_t>(t)] = s;
    }
    std::iota(order.begin(), order.end(), int64_t{0});
    std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
      return norm[static_cast<size_t>(a)] > norm[static_cast<size_t>(b)];
    });
    std::vector<int64_t> keep(order.begin(), order.begin() + k);
    std::sort(keep.begin(), keep.end());
    out.insert(out.end(), keep.begin(), keep.end());
  }
  return out;
}

Tensor gather_tokens(const Tensor& img, const std::vector<int64_t>& idx, int64_t k) {
  const Tensor src = img.contiguous();
  const int64_t n = src.dim(0), T = src.dim(1), D = src.dim(2);
  VLART_CHECK(static_cast<int64_t>(idx.size()) == n * k, InvalidArgument, "visual token pruning: ", idx.size(),
              " indices for ", n, " images x ", k, " tokens");
  Tensor out = Tensor::empty(Shape{n, k, D}, src.dtype());
  const size_t row = src.nbytes() / static_cast<size_t>(n * T);
  const char* s = static_cast<const char*>(src.raw());
  char* d = static_cast<char*>(out.raw());
  for (int64_t c = 0; c < n; ++c)
    for (int64_t j = 0; j < k; ++j) {
      const int64_t t = idx[static_cast<size_t>(c * k + j)];
      VLART_CHECK(t >= 0 && t < T, InvalidArgument, "visual token pruning: index ", t, " outside [0, ", T, ")");
      std::memcpy(d + static_cast<size_t>(c * k + j) * row, s + static_cast<size_t>(c * T + t) * row, row);
    }
  return out;
}

}  // namespace vlart::smolvla
