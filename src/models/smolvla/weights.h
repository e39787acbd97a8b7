// SmolVLA checkpoint access: model.safetensors tensors with shape checks, and the mean/std
// normaliser stats from the policy pre/post-processor safetensors (or legacy names).
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "models/policy_weights.h"
#include "vlart/tensor.h"

namespace vlart::smolvla {

struct NormStats {
  std::vector<float> state_mean, state_std, action_mean, action_std;
};

// The SmolVLA checkpoint's tensors (prefix "model.", messages "smolvla: ...").
using SmolVLAWeights = PolicyWeights;

// Looks for policy_preprocessor*.safetensors / policy_postprocessor*.safetensors in the
// checkpoint dir, falling back to legacy `normalize_inputs.*` / `unnormalize_outputs.*` tensors in
// model.safetensors. Checks lengths against state_dim / action_dim.
NormStats load_norm_stats(const std::string& checkpoint_dir, int64_t state_dim, int64_t action_dim);

}  // namespace vlart::smolvla
