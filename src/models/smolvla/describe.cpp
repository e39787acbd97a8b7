// SmolVLA's checkpoint description (models/checkpoint_description.h): its configs summarised, its
// tensors by part as LeRobot names them, what quantization keeps float, and the two decoder stacks
// (VLM text layers, action expert) with their pairing.
#include <cstdio>
#include <filesystem>
#include <string>

#include "models/checkpoint_description.h"
#include "models/smolvla/config.h"
#include "models/smolvla/policy_model.h"
#include "vlart/error.h"

namespace vlart::smolvla {
namespace {
namespace fs = std::filesystem;

template <typename... A>
std::string fmt(const char* f, A... a) {
  return describe_fmt(f, a...);
}

const std::string kVlm = "model.vlm_with_expert.vlm.";
const std::string kExpert = "model.vlm_with_expert.lm_expert.";

}  // namespace

FamilyWeights family_weights() {
  FamilyWeights w;
  w.family = kFamilyName;
  w.display_name = "SmolVLA";
  w.weight_prefix = "model.";
  w.groups = {{"vision encoder (SigLIP)", {"*.vision_model.*"}},
              {"connector (pixel shuffle + proj)", {"*.connector.*"}},
              {"token embeddings", {"*.embed_tokens.*"}},
              {"VLM text layers", {"*.text_model.*"}},
              {"action expert", {"*.lm_expert.*"}},
              {"state/action/time projections", {"*state_proj*", "*action_*"}},
              {"lm_head (unused at inference)", {"*.lm_head.*"}},
              {"normaliser stats", {"*normalize*", "*buffer_*"}}};
  w.known_2d = {kVlm + "model.vision_model.*", kVlm + "model.connector.*", kVlm + "model.text_model.*",
                kVlm + "lm_head.*",           kExpert + "*",                "model.state_proj.*",
                "model.action_in_proj.*",      "model.action_out_proj.*",     "model.action_time_mlp_*"};
  w.keep_float = {"*norm*",          "*embed_tokens*", "*position_embedding*", "*patch_embedding*", "state_proj",
                  "action_in_proj", "action_out_proj", "action_time_mlp_*",   "*lm_head*"};

  return w;
}

CheckpointDescription describe_checkpoint(const std::string& dir, const std::string& vlm_config_dir) {
  const std::string vlm_name = read_vlm_model_name(dir);
  const std::string vlm_dir = find_vlm_dir(dir, vlm_name, vlm_config_dir);
  VLART_CHECK(!vlm_dir.empty() && fs::exists(fs::path(vlm_dir) / "config.json"), NotFoundError, "smolvla: SmolVLM config.json not found (vlm_model_name '", vlm_name,
              "' is not a local directory next to or above ", dir, "); pass --vlm-config DIR");
  const SmolVLAConfig c = load_config(dir, (fs::path(vlm_dir) / "config.json").string());
  const VisionConfig& v = c.vision;
  const TextConfig& t = c.text;

  CheckpointDescription d;
  d.weights = family_weights();
  d.companion_dirs = {vlm_dir};
  d.companions_found = [vlm_name](const std::string& out) {
    const std::string found = find_vlm_dir(out, vlm_name, "");
    return !found.empty() && fs::exists(fs::path(found) / "config.json");
  };
  d.pruned = c.pruned;

  auto ll = [](int64_t x) { return static_cast<long long>(x); };
  d.summary.push_back("vlm config:   " + vlm_dir);
  d.summary.push_back(fmt("vision:       width %lld, %lld layers, %lld heads, mlp %lld, patch %lld, image %lldx%lld",
                          ll(v.hidden), ll(v.layers), ll(v.heads), ll(v.mlp), ll(v.patch), ll(v.image_size),
                          ll(v.image_size)));
  d.summary.push_back(fmt("              pixel-shuffle scale %d -> %lld tokens per image", c.scale_factor,
                          ll(c.tokens_per_image())));
  d.summary.push_back(fmt("VLM text:     width %lld, %lld of %lld layers kept, %lld heads / %lld kv heads, head dim "
                          "%lld, mlp %lld, vocab %lld",
                          ll(t.hidden), ll(c.num_vlm_layers), ll(t.layers), ll(t.heads), ll(t.kv_heads),
                          ll(t.head_dim), ll(t.mlp), ll(t.vocab)));
  std::string pattern;
  for (int64_t l = 0; l < c.num_vlm_layers; ++l) {
    if (!pattern.empty()) pattern += ' ';
    pattern += c.expert_layer_of(l) < 0 ? '-' : (c.is_self_attn(l) ? 'S' : 'C');
  }
  d.summary.push_back(fmt("expert:       width %lld (x%.3g), %lld layers; per VLM layer: %s  (S self, C cross, - skipped)",
                          ll(c.expert_hidden()), c.expert_width_multiplier, ll(c.num_expert()), pattern.c_str()));
  d.summary.push_back(fmt("actions:      chunk %lld x %lld (padded to %lld), %lld flow steps", ll(c.chunk_size),
                          ll(c.action_dim), ll(c.max_action_dim), ll(c.num_steps)));
  d.summary.push_back(fmt("state:        %lld (padded to %lld)", ll(c.state_dim), ll(c.max_state_dim)));
  std::string cams;
  for (const std::string& cam : c.cameras) cams += (cams.empty() ? "" : ", ") + cam;
  d.summary.push_back(fmt("cameras:      %zu: %s (checkpoint order; resized with padding to %lldx%lld)",
                          c.cameras.size(), cams.c_str(), ll(c.resize_h), ll(c.resize_w)));
  if (!c.empty_camera_features.empty())
    d.summary.push_back(fmt("              + %zu empty-camera placeholder(s) (empty_cameras; masked in LeRobot, not run)",
                            c.empty_camera_features.size()));
  d.summary.push_back(fmt("language:     up to %lld tokens, padding to %s", ll(c.tokenizer_max_length),
                          c.pad_to_max_length ? "max_length" : "longest"));

  LayerStack vs;
  vs.name = "VLM";
  vs.part = "vlm";
  vs.prefix = kVlm + "model.text_model.layers.";
  vs.count_field = "num_vlm_layers";
  vs.section_key = "vlm_layers";
  vs.paired_key = "expert";
  vs.head_dim = t.head_dim;
  vs.kv_heads = t.kv_heads;
  for (const VlmLayerSpec& l : c.vlm_layers) vs.layers.push_back({l.source, l.heads, l.mlp, l.expert, l.self_attn});
  LayerStack es;
  es.name = "expert";
  es.part = "expert";
  es.prefix = kExpert + "layers.";
  es.count_field = "num_expert_layers";
  es.section_key = "expert_layers";
  es.head_dim = t.head_dim;
  es.kv_heads = t.kv_heads;
  for (const ExpertLayerSpec& l : c.expert_layers) es.layers.push_back({l.source, l.heads, l.mlp, -1, true});
  d.stacks = {vs, es};

  // Rough f32 activation estimate: the largest live buffers of each stage (not an exact plan).
  const double f = 4;
  const double n_cam = static_cast<double>(c.cameras.size());
  const double np = static_cast<double>((v.image_size / v.patch) * (v.image_size / v.patch));
  const double P = n_cam * static_cast<double>(c.tokens_per_image()) + static_cast<double>(c.tokenizer_max_length) + 1;
  const double H = static_cast<double>(c.chunk_size), We = static_cast<double>(c.expert_hidden());
  d.activation_bytes = {
      {"vision", n_cam * (np * (4.0 * v.hidden + v.mlp) + v.heads * np * np) * f},
      {"prefix", (P * (4.0 * t.hidden + 2.0 * t.mlp) + t.heads * P * P) * f},
      {"prefix KV cache", 2.0 * c.num_vlm_layers * P * t.kv_heads * t.head_dim * f},
      {"denoise step", (H * (4.0 * We + 2.0 * We * 4) + t.heads * H * (P + H)) * f}};
  d.summary.push_back(fmt("f32 activations: estimated for a prefix of up to %.0f tokens", P));
  return d;
}

}  // namespace vlart::smolvla
