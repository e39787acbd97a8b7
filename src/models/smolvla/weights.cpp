#include "models/smolvla/weights.h"

#include <filesystem>

#include "models/blocks/lerobot_stats.h"
#include "vlart/error.h"

namespace vlart::smolvla {
namespace fs = std::filesystem;

namespace {

std::vector<float> stat(const SafetensorsFile& f, const std::string& name, int64_t n) {
  VLART_CHECK(f.has(name), NotFoundError, "smolvla: ", f.path(), " has no tensor '", name, "'");
  Tensor t = f.get(name);
  VLART_CHECK(t.numel() == n, FormatError, "smolvla: ", f.path(), ": '", name, "' has ", t.numel(),
              " elements, expected ", n);
  return t.to_float_vector();
}


}  // namespace

NormStats load_norm_stats(const std::string& dir, int64_t state_dim, int64_t action_dim) {
  NormStats s;
  // LeRobot >= 0.4: the normaliser steps of the saved processor pipelines (models/blocks/lerobot_stats.h).
  const auto pre = blocks::read_lerobot_norm_step(dir, "policy_preprocessor.json", "normalizer_processor");
  const auto post = blocks::read_lerobot_norm_step(dir, "policy_postprocessor.json", "unnormalizer_processor");
  if (pre && post) {
    auto get = [](const blocks::LeRobotNormStep& st, const std::string& feature, const char* what, int64_t n) {
      auto f = st.stats.find(feature);
      VLART_CHECK(f != st.stats.end() && f->second.count(what), NotFoundError, "smolvla: ",
                  st.state_path.empty() ? st.json_path : st.state_path, " has no tensor '", feature, ".", what, "'");
      const std::vector<float>& v = f->second.at(what);
      VLART_CHECK(static_cast<int64_t>(v.size()) == n, FormatError, "smolvla: ", st.state_path, ": '", feature, ".",
                  what, "' has ", v.size(), " elements, expected ", n);
      return v;
    };
    s.state_mean = get(*pre, "observation.state", "mean", state_dim);
    s.state_std = get(*pre, "observation.state", "std", state_dim);
    s.action_mean = get(*post, "action", "mean", action_dim);
    s.action_std = get(*post, "action", "std", action_dim);
    return s;
  }
  // Legacy LeRobot checkpoints kept the stats as buffers inside model.safetensors.
  const std::string model = (fs::path(dir) / "model.safetensors").string();
  VLART_CHECK(fs::exists(model), NotFoundError, "smolvla: no policy_preprocessor/postprocessor safetensors and no ",
              model, " for normaliser stats");
  SafetensorsFile m = SafetensorsFile::open(model);
  s.state_mean = stat(m, "normalize_inputs.buffer_observation_state.mean", state_dim);
  s.state_std = stat(m, "normalize_inputs.buffer_observation_state.std", state_dim);
  s.action_mean = stat(m, "unnormalize_outputs.buffer_action.mean", action_dim);
  s.action_std = stat(m, "unnormalize_outputs.buffer_action.std", action_dim);
  return s;
}

}  // namespace vlart::smolvla
