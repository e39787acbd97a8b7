// A policy checkpoint's model.safetensors as a family reads it: tensors by name under the family's
// prefix, with shape checks, and quantized weights (vlart's own format) read transparently.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>

#include "core/quant_format.h"
#include "core/quant_weight.h"
#include "core/safetensors.h"
#include "vlart/tensor.h"

namespace vlart {

// Quantized checkpoints (config.json "quantization" section, docs/quantization.md) are read
// transparently: a weight stored as `X.qweight` + `X.scales` (+ `X.zeros`) is reported by has/info
// under its own name `X` with its logical [N, K] shape and dtype f32, and get() returns it
// dequantized to f32. get_quant() returns the stored tensors instead (zero-copy views of the mapped
// file), which the model hands to the quantized Linear kernels. Every quantized tensor is validated
// when the checkpoint is opened.
class PolicyWeights {
 public:
  // `prefix`: what the family's tensor names start with in the file ("model."); `tag` starts error
  // messages ("smolvla", "pi0").
  static PolicyWeights open(const std::string& checkpoint_dir, const std::string& prefix = "model.",
                            const std::string& tag = "smolvla");
  // Tensor `name` (the prefix added); throws NotFoundError / FormatError naming the tensor
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
  bool is_quantized(const std::string& name) const { return qinfo_.count(prefix_ + name) != 0; }
  const std::string& prefix() const { return prefix_; }
  const SafetensorsCheckpoint& checkpoint() const { return ckpt_; }
  // The stored tensors of quantized weight `name` (checked against the logical `shape` when given).
  std::shared_ptr<const QuantWeight> get_quant(const std::string& name, const Shape& shape = {}) const;

 private:
  SafetensorsCheckpoint ckpt_;
  std::string dir_;
  std::string prefix_ = "model.";
  std::string tag_ = "smolvla";
  std::optional<compress::QuantConfig> quant_;
  std::map<std::string, SafetensorsTensorInfo> qinfo_;  // full name -> logical info of quantized weights
};

}  // namespace vlart
