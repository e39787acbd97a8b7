#include "models/smolvla/weights.h"

#include <filesystem>

#include "vlart/error.h"

namespace vlart::smolvla {
namespace fs = std::filesystem;

SmolVLAWeights SmolVLAWeights::open(const std::string& checkpoint_dir) {
  SmolVLAWeights w;
  w.dir_ = checkpoint_dir;
  w.ckpt_ = SafetensorsCheckpoint::open(checkpoint_dir);
  return w;
}

bool SmolVLAWeights::has(const std::string& name) const { return ckpt_.has("model." + name); }

const SafetensorsTensorInfo& SmolVLAWeights::info(const std::string& name) const {
  const std::string full = "model." + name;
  VLART_CHECK(ckpt_.has(full), NotFoundError, "smolvla: tensor '", full, "' not in checkpoint ", dir_);
  return ckpt_.info(full);
}

Tensor SmolVLAWeights::get(const std::string& name, const Shape& shape) const {
  const SafetensorsTensorInfo& i = info(name);
  VLART_CHECK(shape.rank() == 0 || i.shape == shape, FormatError, "smolvla: tensor 'model.", name,
              "' in ", dir_, " has shape ", i.shape.str(), ", expected ", shape.str());
  return ckpt_.get("model." + name);
}

namespace {

std::vector<float> stat(const SafetensorsFile& f, const std::string& name, int64_t n) {
  VLART_CHECK(f.has(name), NotFoundError, "smolvla: ", f.path(), " has no tensor '", name, "'");
  Tensor t = f.get(name);
  VLART_CHECK(t.numel() == n, FormatError, "smolvla: ", f.path(), ": '", name, "' has ", t.numel(),
              " elements, expected ", n);
  return t.to_float_vector();
}

std::string find_file(const std::string& dir, const std::string& prefix) {
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string n = e.path().filename().string();
    if (n.rfind(prefix, 0) == 0 && e.path().extension() == ".safetensors") return e.path().string();
  }
  return "";
}

}  // namespace

NormStats load_norm_stats(const std::string& dir, int64_t state_dim, int64_t action_dim) {
  NormStats s;
  const std::string pre = find_file(dir, "policy_preprocessor");
  const std::string post = find_file(dir, "policy_postprocessor");
  if (!pre.empty() && !post.empty()) {
    SafetensorsFile a = SafetensorsFile::open(pre), b = SafetensorsFile::open(post);
    s.state_mean = stat(a, "observation.state.mean", state_dim);
    s.state_std = stat(a, "observation.state.std", state_dim);
    s.action_mean = stat(b, "action.mean", action_dim);
    s.action_std = stat(b, "action.std", action_dim);
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
