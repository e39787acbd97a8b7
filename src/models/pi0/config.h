// pi0 / pi0.5 (Physical Intelligence's openpi models as LeRobot 0.6 ports them) checkpoint
// configuration: config.json as LeRobot's PI0Config / PI05Config writes it, plus the sizes that only
// the tensors carry. LeRobot builds both towers from fixed variants (gemma_2b / gemma_300m) and a
// fixed SigLIP So400m/14; config.json names the variants but the checkpoint's tensor shapes are the
// truth, so every width, depth and MLP size below is read from model.safetensors and checked for
// consistency across layers.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace vlart::pi0 {

inline constexpr const char* kPrefix = "model.";  // every model tensor's name starts with it
inline constexpr const char* kImagePrefix = "observation.images.";

// One Gemma tower (the PaliGemma language model or the action expert).
struct GemmaDims {
  int64_t width = 0, depth = 0, mlp = 0, heads = 0, kv_heads = 0, head_dim = 0;  // mlp / heads: layer 0's
  // Per layer (a checkpoint `vlart prune` cut has its own query heads and MLP width in every layer).
  std::vector<int64_t> layer_heads, layer_mlp;
  float rms_eps = 1e-6f;      // transformers' GemmaConfig default (LeRobot never sets it)
  float rope_theta = 10000.f; // GemmaConfig default
};

struct SiglipDims {
  int64_t hidden = 0, layers = 0, heads = 0, mlp = 0, patch = 0, image_size = 0;
  float ln_eps = 1e-6f;  // SiglipVisionConfig default
  int64_t tokens() const { return (image_size / patch) * (image_size / patch); }
};

struct Pi0Config {
  bool pi05 = false;  // "type": "pi05": discrete state in the prompt, adaRMS time conditioning
  std::string type;   // "pi0" / "pi05"
  std::vector<std::string> cameras;  // VISUAL input features in config.json order (LeRobot's stacking order)
  std::vector<std::string> placeholder_cameras;  // observation.images.empty_camera_<i> (never observed)
  std::string state_feature = "observation.state";
  int64_t state_dim = 0, action_dim = 0;
  int64_t max_state_dim = 32, max_action_dim = 32;
  int64_t chunk_size = 50, n_action_steps = 50, num_steps = 10;
  int64_t image_h = 224, image_w = 224;
  int64_t tokenizer_max_length = 48;
  double min_period = 4e-3, max_period = 4.0;
  std::string dtype = "float32";  // what LeRobot computes in ("bfloat16" keeps vision + norms f32)
  std::string paligemma_variant, action_expert_variant;
  SiglipDims vision;
  GemmaDims vlm, expert;
  int64_t vocab = 0;
  bool pruned = false;  // config.json has a "pruning" section (vlart prune)
  std::string embed_name;  // the language embedding table (embed_tokens, or the tied lm_head)

  // opentau (TensorAuto's pi05, PyPI opentau 0.14, load_opentau_config): its own config.json keys,
  // the normalisation statistics inside model.safetensors under the feature names below, top-left
  // image padding, the prompt "Task: <task>, State: <bins>;\n", and with predict_response the
  // "Response: " indicator tokens closing the prefix and a greedily decoded text response that the
  // action expert attends to.
  bool opentau = false;
  bool predict_response = false;
  int64_t response_max_length = 0;   // decode steps (the fed <bos> included)
  std::string action_feature = "action";
  std::string state_norm_mode = "IDENTITY", action_norm_mode = "IDENTITY";  // opentau's mode names
  int64_t config_version = 1;        // >= 1: eps 1e-6 and zero-range centring; 0: eps 1e-8
};

// Reads `<dir>/config.json` and the tensor shapes of `<dir>/model.safetensors`. FormatError naming
// the file and field (or tensor) for anything malformed or inconsistent, UnsupportedError for
// settings vlart does not run (relative actions, real-time chunking).
Pi0Config load_config(const std::string& dir);

// opentau's PI05Config (config.json with "opentau_version") and the same tensor-derived sizes.
// UnsupportedError for settings that change inference and that vlart does not run (continuous
// state, modality embeddings, delayed actions, best-of-N candidates, delta actions, several
// datasets' statistics).
Pi0Config load_opentau_config(const std::string& dir);

// True when `<dir>/config.json` is an opentau policy config (it carries "opentau_version").
bool is_opentau_config(const std::string& dir);

}  // namespace vlart::pi0
