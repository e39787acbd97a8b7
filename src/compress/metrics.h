// Action-space error of a candidate policy's action chunks against a reference's (vlart compare,
// test_quantize). All inputs are unnormalised action chunks [horizon, action_dim], one per
// observation, in the same order for both.
#pragma once

#include <cstdint>
#include <vector>

namespace vlart::compress {

struct ActionError {
  double cosine = 1;      // cosine similarity of all chunks flattened and concatenated
  double min_cosine = 1;  // smallest per-observation cosine similarity
  double rel_l2 = 0;      // ||cand - ref|| / ||ref|| over everything
  double max_abs = 0;     // max |cand - ref|
  std::vector<double> dim_max_abs;  // per action dimension, over horizon and observations
  std::vector<double> dim_rel_l2;
};

// Cosine similarity of two vectors; 1 when both are zero, 0 when exactly one is.
double cosine_similarity(const std::vector<float>& a, const std::vector<float>& b);
// InvalidArgument when the counts or sizes differ or a size is not a multiple of action_dim.
ActionError action_error(const std::vector<std::vector<float>>& ref, const std::vector<std::vector<float>>& cand,
                         int64_t action_dim);

}  // namespace vlart::compress
