// pi0 / pi0.5 checkpoint descriptions (models/checkpoint_description.h): the configs and tensor shapes
// summarised, the tensors by part as LeRobot names them, what quantization keeps float, and the two
// Gemma stacks for `vlart prune`: the PaliGemma language model (primary) and the action expert, whose
// layer i attends to language-model layer i's K/V (so dropping one drops the other; the loader reads
// every layer's heads and MLP width from its tensors, and config.json has no layer counts to update).
#include <cstdio>
#include <string>

#include "models/checkpoint_description.h"
#include "models/pi0/config.h"
#include "models/pi0/policy_model.h"

namespace vlart::pi0 {
namespace {

template <typename... A>
std::string fmt(const char* f, A... a) {
  return describe_fmt(f, a...);
}

const std::string kPg = "model.paligemma_with_expert.paligemma.";
const std::string kExpert = "model.paligemma_with_expert.gemma_expert.";

FamilyWeights weights_of(const char* family, const char* display) {
  FamilyWeights w;
  w.family = family;
  w.display_name = display;
  w.weight_prefix = "model.";
  w.groups = {{"vision encoder (SigLIP)", {"*.vision_tower.*"}},
              {"projector", {"*.multi_modal_projector.*"}},
              {"token embeddings", {"*.embed_tokens.*", "*.paligemma.lm_head.*"}},
              {"PaliGemma language model", {"*.language_model.*"}},
              {"action expert (Gemma)", {"*.gemma_expert.*"}},
              {"state/action/time projections", {"model.state_proj.*", "model.action_*", "model.time_mlp_*"}}};
  w.known_2d = {kPg + "model.vision_tower.*",  kPg + "model.multi_modal_projector.*",
                kPg + "model.language_model.*", kPg + "lm_head.*",
                kExpert + "*",                  "model.state_proj.*",
                "model.action_in_proj.*",       "model.action_out_proj.*",
                "model.action_time_mlp_*",      "model.time_mlp_*"};
  w.keep_float = {"*norm*",          "*embed_tokens*",  "*position_embedding*", "*patch_embedding*",
                  "*lm_head*",       "state_proj",      "action_in_proj",       "action_out_proj",
                  "action_time_mlp_*", "time_mlp_*"};
  return w;
}

}  // namespace

FamilyWeights family_weights_pi0() { return weights_of("pi0", "pi0"); }
FamilyWeights family_weights_pi05() { return weights_of("pi05", "pi0.5"); }
FamilyWeights family_weights_opentau_pi05() {
  FamilyWeights w = weights_of("opentau_pi05", "opentau pi0.5");
  // opentau also saves its normalisation statistics ([1, dim], read at load) and the training-only
  // discrete-action (FAST) head and embedding; all stay as stored.
  w.groups.push_back({"statistics, training-only heads",
                      {"normalize_*", "unnormalize_*", "*.da_head.*", "*.discrete_action_embedding.*"}});
  for (const char* p : {"normalize_*", "unnormalize_*", "*.da_head.*", "*.discrete_action_embedding.*"})
    w.keep_float.push_back(p);
  return w;
}

CheckpointDescription describe_checkpoint(const std::string& dir, const std::string& /*companion_dir*/) {
  const Pi0Config c = is_opentau_config(dir) ? load_opentau_config(dir) : load_config(dir);
  CheckpointDescription d;
  d.weights = c.opentau ? family_weights_opentau_pi05() : c.pi05 ? family_weights_pi05() : family_weights_pi0();
  auto ll = [](int64_t x) { return static_cast<long long>(x); };
  const SiglipDims& v = c.vision;
  d.summary.push_back(fmt("vision:       SigLIP width %lld, %lld layers, %lld heads, mlp %lld, patch %lld, image %lldx%lld"
                          " -> %lld tokens per camera",
                          ll(v.hidden), ll(v.layers), ll(v.heads), ll(v.mlp), ll(v.patch), ll(v.image_size),
                          ll(v.image_size), ll(v.tokens())));
  d.summary.push_back(fmt("PaliGemma:    width %lld, %lld layers, %lld heads / %lld kv heads, head dim %lld, mlp %lld, "
                          "vocab %lld (config names %s)",
                          ll(c.vlm.width), ll(c.vlm.depth), ll(c.vlm.heads), ll(c.vlm.kv_heads), ll(c.vlm.head_dim),
                          ll(c.vlm.mlp), ll(c.vocab), c.paligemma_variant.c_str()));
  d.summary.push_back(fmt("expert:       width %lld, %lld layers, %lld heads, mlp %lld%s (config names %s)",
                          ll(c.expert.width), ll(c.expert.depth), ll(c.expert.heads), ll(c.expert.mlp),
                          c.pi05 ? ", adaRMS time conditioning" : "", c.action_expert_variant.c_str()));
  d.summary.push_back(fmt("actions:      chunk %lld x %lld (padded to %lld), %lld flow steps", ll(c.chunk_size),
                          ll(c.action_dim), ll(c.max_action_dim), ll(c.num_steps)));
  d.summary.push_back(fmt("state:        %lld (%s)", ll(c.state_dim),
                          c.pi05 ? "256-bin tokens in the prompt" : "one suffix token, padded"));
  std::string cams;
  for (const std::string& cam : c.cameras) cams += (cams.empty() ? "" : ", ") + cam;
  d.summary.push_back(fmt("cameras:      %zu: %s (checkpoint order; %s resize with padding to %lldx%lld)",
                          c.cameras.size(), cams.c_str(), c.opentau ? "top-left" : "centred", ll(c.image_h),
                          ll(c.image_w)));
  if (!c.placeholder_cameras.empty())
    d.summary.push_back(fmt("              + %zu empty-camera placeholder(s) (empty_cameras; masked in LeRobot, not run)",
                            c.placeholder_cameras.size()));
  d.summary.push_back(fmt("language:     up to %lld tokens, padded to max_length", ll(c.tokenizer_max_length)));
  if (c.predict_response)
    d.summary.push_back(fmt("response:     greedy text decode, up to %lld tokens (the fed <bos> included), KV-cached; "
                            "the action expert attends to it",
                            ll(c.response_max_length)));
  LayerStack vs;
  vs.name = "PaliGemma";
  vs.part = "vlm";
  vs.prefix = kPg + "model.language_model.layers.";
  vs.section_key = "vlm_layers";
  vs.paired_key = "expert";
  vs.head_dim = c.vlm.head_dim;
  vs.kv_heads = c.vlm.kv_heads;
  for (int64_t i = 0; i < c.vlm.depth; ++i)
    vs.layers.push_back({i, c.vlm.layer_heads[size_t(i)], c.vlm.layer_mlp[size_t(i)], i, true});
  LayerStack es;
  es.name = "expert";
  es.part = "expert";
  es.prefix = kExpert + "model.layers.";
  es.section_key = "expert_layers";
  es.head_dim = c.expert.head_dim;
  es.kv_heads = c.expert.kv_heads;
  for (int64_t i = 0; i < c.expert.depth; ++i)
    es.layers.push_back({i, c.expert.layer_heads[size_t(i)], c.expert.layer_mlp[size_t(i)], -1, true});
  d.stacks = {vs, es};
  d.pruned = c.pruned;

  const double f = 4, n = static_cast<double>(c.cameras.size()), L = static_cast<double>(v.tokens());
  const double P = n * L + static_cast<double>(c.tokenizer_max_length + (c.predict_response ? c.response_max_length + 8 : 0)), H = static_cast<double>(c.chunk_size + 1);
  d.activation_bytes = {
      {"vision", n * (L * (4.0 * v.hidden + v.mlp) + v.heads * L * L) * f},
      {"prefix", (P * (4.0 * c.vlm.width + 2.0 * c.vlm.mlp) + c.vlm.heads * P * P) * f},
      {"prefix KV cache", 2.0 * c.vlm.depth * P * c.vlm.kv_heads * c.vlm.head_dim * f},
      {"denoise step", (H * (4.0 * c.expert.width + 2.0 * c.expert.mlp) + c.expert.heads * H * (P + H)) * f}};
  return d;
}

}  // namespace vlart::pi0
