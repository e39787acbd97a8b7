// SmolVLA checkpoint access: model.safetensors tensors with shape checks, and the mean/std
// normaliser stats from the policy pre/post-processor safetensors (or legacy names).
#pragma once

#include <string>
#include <vector>

#include "core/safetensors.h"
#include "vlart/tensor.h"

namespace vlart::smolvla {

struct NormStats {
  std::vector<float> state_mean, state_std, action_mean, action_std;
};

class SmolVLAWeights {
 public:
  static SmolVLAWeights open(const std::string& checkpoint_dir);
  // Tensor `name` (prefix "model." added); throws NotFoundError / FormatError naming the tensor
  // and the expected vs stored shape when `shape` is non-empty and differs.
  Tensor get(const std::string& name, const Shape& shape = {}) const;
  bool has(const std::string& name) const;
  const SafetensorsTensorInfo& info(const std::string& name) const;
  const std::string& dir() const { return dir_; }

 private:
  SafetensorsCheckpoint ckpt_;
  std::string dir_;
};

// Looks for policy_preprocessor*.safetensors / policy_postprocessor*.safetensors in the
// checkpoint dir, falling back to legacy `normalize_inputs.*` / `unnormalize_outputs.*` tensors in
// model.safetensors. Checks lengths against state_dim / action_dim.
NormStats load_norm_stats(const std::string& checkpoint_dir, int64_t state_dim, int64_t action_dim);

}  // namespace vlart::smolvla
