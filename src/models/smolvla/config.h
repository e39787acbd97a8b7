// SmolVLA configuration: the LeRobot policy config.json plus the SmolVLM config.json it names, with
// every size the runtime needs (read from the configs, cross-checked against tensor shapes later).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace vlart::smolvla {

struct VisionConfig {
  int64_t hidden = 0, layers = 0, heads = 0, mlp = 0, patch = 0, image_size = 0, channels = 3;
  float ln_eps = 1e-6f;
  bool gelu_tanh = true;
};

struct TextConfig {
  int64_t hidden = 0, layers = 0, heads = 0, kv_heads = 0, head_dim = 0, mlp = 0, vocab = 0;
  float rms_eps = 1e-5f;
};

// One VLM text layer as the runtime builds it. A checkpoint without a "pruning" section in its
// config.json gets uniform layers (the VLM config's sizes) paired with the expert by LeRobot's index
// rules; a pruned checkpoint (`vlart prune`, docs/compression.md) lists every layer explicitly.
struct VlmLayerSpec {
  int64_t heads = 0;      // query heads (key/value heads are never pruned: the K/V cache keeps its width)
  int64_t mlp = 0;        // MLP width (gate/up rows, down columns)
  int64_t expert = -1;    // expert layer (stored index) the action tokens run at this layer; -1: they skip it
  bool self_attn = true;  // that expert layer attends jointly to prefix + actions (true) or cross-attends
  int64_t source = 0;     // index of this layer in the unpruned checkpoint
};
struct ExpertLayerSpec {
  int64_t heads = 0, mlp = 0, source = 0;
};

struct SmolVLAConfig {
  // Policy (checkpoint config.json).
  std::vector<std::string> cameras;  // input feature names of VISUAL type, in config order
  // VISUAL features that are LeRobot's empty-camera placeholders (observation.images.empty_camera_<i>,
  // i < empty_cameras): never part of an observation, masked out by LeRobot, left out by the runtime.
  std::vector<std::string> empty_camera_features;
  int64_t state_dim = 0, action_dim = 0, max_state_dim = 32, max_action_dim = 32;
  int64_t chunk_size = 50, num_steps = 10, tokenizer_max_length = 48;
  int64_t resize_h = 512, resize_w = 512;
  int64_t empty_cameras = 0, prefix_length = 0;
  int64_t num_vlm_layers = 0, num_expert_layers = 0, self_attn_every_n_layers = 2;
  double expert_width_multiplier = 0.75, min_period = 4e-3, max_period = 4.0;
  bool pad_to_max_length = true;  // pad_language_to == "max_length" (else "longest")
  bool add_image_special_tokens = false;
  std::string vlm_model_name;
  // VLM (vlm config.json).
  int scale_factor = 4;
  VisionConfig vision;
  TextConfig text;

  // Per-layer structure, filled by load_config (uniform unless the checkpoint is pruned).
  std::vector<VlmLayerSpec> vlm_layers;       // [num_vlm_layers]
  std::vector<ExpertLayerSpec> expert_layers;  // [num_expert()]
  bool pruned = false;                         // config.json has a "pruning" section

  int64_t expert_hidden() const { return static_cast<int64_t>(text.hidden * expert_width_multiplier); }
  int64_t tokens_per_image() const {
    const int64_t g = vision.image_size / vision.patch;
    return g * g / (scale_factor * scale_factor);
  }
  // Expert layer paired with VLM layer i, or -1 when the action tokens skip that layer (from
  // vlm_layers when filled, else LeRobot's rule: VLM layer i pairs with expert layer i / m when
  // i % m == 0, m = num_vlm_layers / num_expert).
  int64_t expert_layer_of(int64_t vlm_layer) const;
  int64_t num_expert() const { return num_expert_layers > 0 ? num_expert_layers : num_vlm_layers; }
  // Whether the expert layer at VLM layer i self-attends (else cross-attends); LeRobot's rule
  // i % self_attn_every_n_layers == 0 unless vlm_layers says otherwise.
  bool is_self_attn(int64_t vlm_layer) const;
};

// LeRobot's expert MLP width for an expert of hidden size `hidden`: 4 * int(2 * hidden / 3),
// rounded up to a multiple of 256.
int64_t expert_intermediate_size(int64_t hidden);

// Reads `<checkpoint_dir>/config.json`, checks that it is a policy of a family vlart loads (LeRobot's
// "type"; a config naming another architecture by "type", "model_type" or "architectures" gets an
// UnsupportedError naming what it found and the families vlart knows) and returns its
// vlm_model_name ("" when absent). IoError / FormatError name the file and field.
std::string read_vlm_model_name(const std::string& checkpoint_dir);

// Parses `<checkpoint_dir>/config.json` and the VLM config at `vlm_config_path` (a config.json
// file), including the per-layer specs (a "pruning" section is validated: layer counts, heads a
// multiple of the kv heads, expert pairing). Objects are read in the file's key order, so `cameras`
// is the order of input_features (the order LeRobot stacks the images in). Every size is validated
// (>= 1, state/action dims within max_state_dim/max_action_dim, shapes of the right rank). Throws
// FormatError / UnsupportedError / IoError naming the file, the field, expected and got; no
// nlohmann exception escapes.
SmolVLAConfig load_config(const std::string& checkpoint_dir, const std::string& vlm_config_path);

// Finds the VLM directory: the override when non-empty, else `vlm_model_name` as a local path (as
// given, then relative to the parent directories of the checkpoint). Empty string if none exists.
std::string find_vlm_dir(const std::string& checkpoint_dir, const std::string& vlm_model_name,
                         const std::string& override_dir = "");

}  // namespace vlart::smolvla
