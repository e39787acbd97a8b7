// SmolVLA checkpoint access: model.safetensors tensors with shape checks, and the mean/std
// normaliser stats from the policy pre/post-processor safetensors (or legacy names).
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/quant_format.h"
#include "core/quant_weight.h"
#include "core/safetensors.h"
#include "vlart/tensor.h"

namespace vlart::smolvla {

struct NormStats {
  std::vector<float> state_mean, state_std, action_mean, action_std;
};

// Quantized checkpoints (config.json "quantization" section, docs/quantization.md) are read
// transparently: a weight stored as `X.qweight` + `X.scales` (+ `X.zeros`) is reported by has/info
// under its own name `X` with its logical [N, K] shape and dtype f32, and get() returns it
// dequantized to f32. get_quant() returns the stored tensors instead (zero-copy views of the mapped
// file), which the model hands to the quantized Linear kernels. Every quantized tensor is validated
// when the checkpoint is opened.
class SmolVLAWeights {
 public:
  static SmolVLAWeights open(const std::string& checkpoint_dir);
  // Tensor `name` (prefix "model." added); throws NotFoundError / FormatError naming the tensor
  // and the expected vs stored shape when `shape` is non-empty and differs.
  Tensor get(const std::string& name, const Shape& shape = {}) const;
  bool has(const std::string& name) const;
  const SafetensorsTensorInfo& info(const std::string& name) const;
  const std::string& dir() const { return dir_; }
  // Drops the mapped checkpoint's pages from the resident set (they fault back in if read again);
  // called after each executor build, once kernels hold their repacked copies.
  void release_resident_pages() const { ckpt_.release_resident_pages(); }
  // The checkpoint's quantization section, if any.
  const std::optional<compress::QuantConfig>& quantization() const { return quant_; }
  bool is_quantized(const std::string& name) const { return qinfo_.count("model." + name) != 0; }
  // The stored tensors of quantized weight `name` (checked against the logical `shape` when given).
  std::shared_ptr<const QuantWeight> get_quant(const std::string& name, const Shape& shape = {}) const;

 private:
  SafetensorsCheckpoint ckpt_;
  std::string dir_;
  std::optional<compress::QuantConfig> quant_;
  std::map<std::string, SafetensorsTensorInfo> qinfo_;  // full name -> logical info of quantized weights
};

// Looks for policy_preprocessor*.safetensors / policy_postprocessor*.safetensors in the
// checkpoint dir, falling back to legacy `normalize_inputs.*` / `unnormalize_outputs.*` tensors in
// model.safetensors. Checks lengths against state_dim / action_dim.
NormStats load_norm_stats(const std::string& checkpoint_dir, int64_t state_dim, int64_t action_dim);

}  // namespace vlart::smolvla
