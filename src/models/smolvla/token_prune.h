// Visual-token pruning at run time (PolicyOptions::visual_tokens_keep): keep the k tokens per image
// with the largest L2 norm of their connector output, in their original order. The connector
// output is already computed, so the score costs one pass over [n_cams, T, D]; a token's norm is
// what it adds to the residual stream of every VLM layer before the first norm, so low-norm tokens
// are the ones the prefix is least sensitive to dropping (a heuristic: docs/compression.md has the
// measured action error).
#pragma once

#include <cstdint>
#include <vector>

#include "vlart/tensor.h"

namespace vlart::smolvla {

// For connector output `img` [n, T, D] (any float dtype): per image, the indices (ascending, in
// [0, T)) of the `k` tokens with the largest L2 norm; ties keep the earlier token. Returns n * k
// indices, image by image. InvalidArgument unless 0 < k <= T.
std::vector<int64_t> top_tokens_by_norm(const Tensor& img, int64_t k);

// Rows `idx` (n * k indices from top_tokens_by_norm) of `img` [n, T, D] as a new tensor [n, k, D]
// of the same dtype.
Tensor gather_tokens(const Tensor& img, const std::vector<int64_t>& idx, int64_t k);

}  // namespace vlart::smolvla
