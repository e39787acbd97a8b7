// Structured pruning of checkpoints (`vlart prune`, docs/compression.md) over the decoder-layer stacks
// a family describes (models/checkpoint_description.h: tensor prefixes, per-layer heads and MLP
// widths, the pairing of a primary stack with a second one, the config fields that count them).
// SmolVLA is the family that has them today (primary: the VLM text layers; paired: the action
// expert); the text below uses its terms.
//
// What can be removed, and what it means:
//  - A whole VLM text layer i: the prefix skips it (the residual stream goes from layer i-1's output
//    straight into layer i+1) and its K/V is no longer produced. The expert layer paired with it
//    reads exactly that K/V (joint self-attention or cross-attention), so it is removed as well;
//    the remaining layers keep their attention kind and pairing. Dropping the last n layers is
//    LeRobot's own num_vlm_layers truncation (with the expert layers paired to them).
//  - A whole expert layer e (alone): the action tokens pass through the VLM layer it was paired
//    with, as LeRobot's num_expert_layers < num_vlm_layers skip does; that VLM layer stays.
//  - Attention heads (fraction f per layer): only query heads, the same number in every GQA group
//    (so query head groups stay uniform over the unchanged key/value heads and the K/V cache, the
//    expert's joint attention and its cross-attention projections keep their widths). A head's
//    magnitude importance is the Frobenius norm of its o_proj columns (what it can write into the
//    residual); its activation importance, E||W_o[:, head] x_head||^2 on calibration observations
//    (what it does write, on average).
//  - MLP channels (fraction f per layer): channel c's magnitude importance is
//    ||gate_proj row c|| * ||up_proj row c|| * ||down_proj column c||, its activation importance
//    E[h_c^2] * ||down_proj column c||^2 (h = act(gate) * up, the input of down_proj); the kept width
//    is rounded up to a multiple of 8 (of the original width when that is smaller).
// Kept rows/columns stay in their original order; dropped layers are renumbered away, so the
// output holds physically smaller matrices under the usual tensor names, and config.json gets
// num_vlm_layers / num_expert_layers for the kept layers plus a "pruning" section listing every
// layer's shapes and pairing (read by smolvla::load_config).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "compress/calibrate.h"

namespace vlart::compress {

constexpr int kPruneFormatVersion = 1;

struct PruneOptions {
  std::vector<int64_t> drop_vlm_layers;     // stored layer indices of the input checkpoint
  std::vector<int64_t> drop_expert_layers;  // stored expert layer indices of the input checkpoint
  double heads_frac = 0;                    // fraction of query heads removed per group, [0, 1)
  double mlp_frac = 0;                      // fraction of MLP channels removed per layer, [0, 1)
  bool vlm = true, expert = true;           // which parts heads_frac / mlp_frac apply to
  std::string vlm_config_dir;               // SmolVLM config dir (default: found as Policy::load does)
  // Activation importance for heads and MLP channels: statistics of this same checkpoint from
  // collect_prune_activations(). Null: magnitude importance (from the weights alone).
  const CalibrationData* activations = nullptr;
  bool force = false;                       // allow a non-empty out_dir (its contents are replaced)
};

struct PrunedLayer {
  int64_t source = 0;                 // index in the unpruned checkpoint
  int64_t heads_before = 0, heads = 0;
  int64_t mlp_before = 0, mlp = 0;
  int64_t expert = -1;                // VLM layers: paired expert layer (output index), -1 none
  bool self_attn = true;              // VLM layers: attention kind of the paired expert layer
};

struct PruneSummary {
  std::vector<PrunedLayer> vlm, expert;     // kept layers, output order
  std::vector<int64_t> dropped_vlm;         // input indices
  std::vector<int64_t> dropped_expert;      // input indices (with their VLM layer or on their own)
  int64_t params_before = 0, params_after = 0;  // elements of the model tensors
  uint64_t bytes_before = 0, bytes_after = 0;   // tensor data bytes
  std::string vlm_dir;                      // the SmolVLM config dir used
  bool vlm_dir_found_from_output = true;    // Policy::load(out_dir) finds it without an override
};

// Validates the options against the checkpoint in `in_dir` (InvalidArgument naming the option, the
// value and the valid range: layer index out of range or repeated, fraction outside [0, 1), every
// VLM or every expert layer dropped), then writes `out_dir` (model.safetensors, config.json with
// the "pruning" section, every other file copied). Refuses a quantized input (prune first, then
// quantize), a non-empty out_dir without opts.force, and an out_dir equal to or inside in_dir.
// An input that is already pruned is pruned further (indices refer to its stored layers; the
// section keeps "source" indices of the original checkpoint and appends this step).
PruneSummary prune_checkpoint(const std::string& in_dir, const std::string& out_dir, const PruneOptions& opts);

// Runs the float checkpoint `in_dir` on the observations (noise[i] when given) and collects what
// activation importance needs: per-channel E[x^2] of every Linear input (down_proj's is the MLP
// hidden state) and per-head second-moment blocks of every attention o_proj input.
// opts.policy.vlm_config_dir locates the SmolVLM config as for Policy::load.
CalibrationData collect_prune_activations(const std::string& in_dir, const std::vector<Observation>& obs,
                                          const std::vector<std::vector<float>>& noise, CalibrateOptions opts);

// Parses "3,5,7" (also "3-5" ranges) into indices; InvalidArgument naming `what` otherwise.
std::vector<int64_t> parse_index_list(const std::string& s, const std::string& what);

}  // namespace vlart::compress
