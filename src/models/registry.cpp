#include "models/registry.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "models/pi0/policy_model.h"
#include "models/smolvla/policy_model.h"
#include "vlart/error.h"

namespace vlart {
namespace fs = std::filesystem;

namespace {
std::vector<ModelFamily>& registry() {
  static std::vector<ModelFamily> families = {
      {smolvla::kFamilyName, "SmolVLA (LeRobot): SigLIP + SmolLM2 prefix, flow-matching action expert",
       &smolvla::load_policy_model,
       {"flow_steps", "attention", "max_batch", "vision_cache_bytes", "visual_tokens_keep", "vision_reuse",
        "tokenizer_path", "vlm_config_dir"},
       &smolvla::family_weights, &smolvla::describe_checkpoint},
      {"pi0", "pi0 (openpi, LeRobot port): SigLIP + PaliGemma (Gemma) prefix, Gemma action expert, state token",
       &pi0::load_policy_model, {"flow_steps", "vision_cache_bytes", "tokenizer_path"}, &pi0::family_weights_pi0, &pi0::describe_checkpoint},
      {"pi05", "pi0.5 (openpi, LeRobot port): pi0 with the state as prompt tokens and adaRMS time conditioning",
       &pi0::load_policy_model, {"flow_steps", "vision_cache_bytes", "tokenizer_path"}, &pi0::family_weights_pi05, &pi0::describe_checkpoint},
      {"opentau_pi05",
       "pi0.5 as opentau (TensorAuto) writes it; with predict_response it first decodes a short text response "
       "(KV-cached greedy decode) that the action expert attends to: reason, then act",
       &pi0::load_policy_model, {"flow_steps", "vision_cache_bytes", "tokenizer_path", "response", "reason_reuse"},
       &pi0::family_weights_opentau_pi05, &pi0::describe_checkpoint},
  };
  return families;
}
}  // namespace

const std::vector<ModelFamily>& model_families() { return registry(); }

void register_model_family(ModelFamily family) {
  VLART_CHECK(!family.name.empty() && family.load != nullptr, InvalidArgument,
              "register_model_family: a family needs a name and a loader");
  for (const ModelFamily& f : registry())
    VLART_CHECK(f.name != family.name, InvalidArgument, "register_model_family: '", family.name,
                "' is already registered");
  registry().push_back(std::move(family));
}

std::string model_family_names() {
  std::string s;
  for (const ModelFamily& f : model_families()) s += (s.empty() ? "" : ", ") + f.name;
  return s;
}

const ModelFamily& detect_model_family(const std::string& dir) {
  const fs::path path = fs::path(dir) / "config.json";
  const std::string pf = path.string();
  std::ifstream in(path);
  VLART_CHECK(in.good(), IoError, "Policy::load: no readable config.json in ", dir);
  nlohmann::json j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  VLART_CHECK(!j.is_discarded(), FormatError, pf, " is not valid JSON");
  VLART_CHECK(j.is_object(), FormatError, pf, ": expected a JSON object at the top level, got ", j.type_name());
  auto t = j.find("type");
  if (t != j.end() && !t->is_null()) {
    VLART_CHECK(t->is_string(), FormatError, pf, ": field 'type' is ",
                t->is_number_integer() ? "integer " + t->dump() : std::string(t->type_name()) + " " + t->dump(),
                ", expected a string naming the policy family (vlart loads: ", model_family_names(), ")");
    std::string type = t->get<std::string>();
    // opentau writes LeRobot's type names ("pi05") with its own config schema; its configs carry
    // "opentau_version", and vlart registers them as "opentau_<type>".
    if (j.contains("opentau_version")) type = "opentau_" + type;
    for (const ModelFamily& f : model_families())
      if (f.name == type) return f;
    throw FormatError(pf + ": field 'type' is '" + type +
                      "': this policy architecture is not supported (vlart loads: " + model_family_names() + ")");
  }
  std::string found;
  auto mt = j.find("model_type");
  if (mt != j.end() && !mt->is_null()) found += "model_type " + mt->dump();
  auto ar = j.find("architectures");
  if (ar != j.end() && !ar->is_null()) found += (found.empty() ? "" : ", ") + std::string("architectures ") + ar->dump();
  throw FormatError(pf + ": no field 'type'" + (found.empty() ? "" : " but " + found) +
                    ": not a LeRobot policy config of a supported architecture (vlart loads: " + model_family_names() +
                    "; LeRobot writes e.g. \"type\": \"smolvla\")");
}

void check_family_options(const ModelFamily& family, const PolicyOptions& o) {
  const PolicyOptions d;
  struct Opt {
    const char* name;
    bool set;
  };
  const Opt opts[] = {
      {"flow_steps", o.flow_steps != d.flow_steps},
      {"attention", o.attention != d.attention},
      {"max_batch", o.max_batch != d.max_batch},
      {"vision_cache_bytes", o.vision_cache_bytes != d.vision_cache_bytes},
      {"visual_tokens_keep", o.visual_tokens_keep != d.visual_tokens_keep},
      {"vision_reuse", o.vision_reuse_bytes != d.vision_reuse_bytes ||
                           o.vision_reuse_threshold != d.vision_reuse_threshold ||
                           o.vision_reuse_max_fraction != d.vision_reuse_max_fraction ||
                           o.vision_reuse_refresh != d.vision_reuse_refresh},
      {"tokenizer_path", o.tokenizer_path != d.tokenizer_path},
      {"vlm_config_dir", o.vlm_config_dir != d.vlm_config_dir},
      {"response", o.response_max_tokens != d.response_max_tokens || o.response_stop_at_eos != d.response_stop_at_eos ||
                       o.decode_weights != d.decode_weights},
      {"reason_reuse", o.reason_every != d.reason_every || o.reason_scene_threshold != d.reason_scene_threshold},
  };
  std::string refused;
  for (const Opt& x : opts) {
    if (!x.set) continue;
    bool reads = false;
    for (const std::string& n : family.options) reads = reads || n == x.name;
    if (!reads) refused += (refused.empty() ? "" : ", ") + std::string(x.name);
  }
  VLART_CHECK(refused.empty(), InvalidArgument, "Policy::load: option(s) ", refused, " do not apply to a ",
              family.name, " policy (it reads: ",
              [&] {
                std::string s;
                for (const std::string& n : family.options) s += (s.empty() ? "" : ", ") + n;
                return s.empty() ? std::string("none of them") : s;
              }(),
              ")");
}

FamilyWeights checkpoint_weights(const std::string& dir) {
  const ModelFamily& f = detect_model_family(dir);
  VLART_CHECK(f.weights != nullptr, UnsupportedError, dir, ": the ", f.name,
              " family has no description of its weights, so vlart's tools (info, quantize, prune) do not know them");
  return f.weights();
}

CheckpointDescription describe_checkpoint(const std::string& dir, const std::string& companion_dir) {
  const ModelFamily& f = detect_model_family(dir);
  VLART_CHECK(f.describe != nullptr, UnsupportedError, dir, ": the ", f.name,
              " family has no checkpoint description, so vlart's tools (info, quantize, prune) do not know its "
              "weights");
  return f.describe(dir, companion_dir);
}

}  // namespace vlart
