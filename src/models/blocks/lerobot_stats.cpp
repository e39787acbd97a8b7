#include "models/blocks/lerobot_stats.h"

#include <filesystem>

#include "core/json_file.h"
#include "core/safetensors.h"
#include "vlart/error.h"

namespace vlart::blocks {
namespace fs = std::filesystem;

NormMode LeRobotNormStep::mode_of(const std::string& feature) const {
  auto t = feature_type.find(feature);
  if (t == feature_type.end()) return NormMode::kIdentity;
  auto m = norm_map.find(t->second);
  return m == norm_map.end() ? NormMode::kIdentity : m->second;
}

FeatureNormalizer LeRobotNormStep::normalizer(const std::string& feature, int64_t dim) const {
  static const FeatureStats kNone;
  auto it = stats.find(feature);
  const NormMode mode = mode_of(feature);
  VLART_CHECK(mode == NormMode::kIdentity || it != stats.end(), InvalidArgument, state_path, ": no statistics for '",
              feature, "' (", norm_mode_name(mode), " needs them)");
  return FeatureNormalizer(mode, it != stats.end() ? it->second : kNone, dim, feature);
}

std::optional<LeRobotNormStep> read_lerobot_norm_step(const std::string& dir, const std::string& json_name,
                                                      const std::string& registry_name) {
  const fs::path jp = fs::path(dir) / json_name;
  if (!fs::exists(jp)) return std::nullopt;
  const std::string pf = jp.string();
  const nlohmann::ordered_json j = read_json_file(pf);
  auto bad = [&](const std::string& field, const std::string& what) {
    return FormatError(pf + ": field '" + field + "' " + what);
  };
  if (!j.is_object() || !j.contains("steps") || !j["steps"].is_array()) throw bad("steps", "must be an array");
  for (size_t s = 0; s < j["steps"].size(); ++s) {
    const auto& st = j["steps"][s];
    const std::string where = "steps[" + std::to_string(s) + "]";
    if (!st.is_object() || !st.contains("registry_name") || !st["registry_name"].is_string())
      throw bad(where + ".registry_name", "must be a string");
    if (st["registry_name"].get<std::string>() != registry_name) continue;
    LeRobotNormStep out;
    out.json_path = pf;
    if (!st.contains("config") || !st["config"].is_object()) throw bad(where + ".config", "must be an object");
    const auto& cfg = st["config"];
    if (cfg.contains("eps")) {
      if (!cfg["eps"].is_number()) throw bad(where + ".config.eps", "must be a number");
      out.eps = cfg["eps"].get<float>();
    }
    if (!cfg.contains("features") || !cfg["features"].is_object())
      throw bad(where + ".config.features", "must be an object");
    for (auto it = cfg["features"].begin(); it != cfg["features"].end(); ++it) {
      const std::string f = where + ".config.features." + it.key();
      if (!it->is_object() || !it->contains("type") || !(*it)["type"].is_string()) throw bad(f + ".type", "must be a string");
      out.features.push_back(it.key());
      out.feature_type[it.key()] = (*it)["type"].get<std::string>();
      std::vector<int64_t> shape;
      if (it->contains("shape")) {
        if (!(*it)["shape"].is_array()) throw bad(f + ".shape", "must be an array of integers");
        for (const auto& d : (*it)["shape"]) {
          if (!d.is_number_integer()) throw bad(f + ".shape", "must be an array of integers");
          shape.push_back(d.get<int64_t>());
        }
      }
      out.feature_shape[it.key()] = shape;
    }
    if (cfg.contains("norm_map")) {
      if (!cfg["norm_map"].is_object()) throw bad(where + ".config.norm_map", "must be an object");
      for (auto it = cfg["norm_map"].begin(); it != cfg["norm_map"].end(); ++it) {
        if (!it->is_string()) throw bad(where + ".config.norm_map." + it.key(), "must be a string");
        try {
          out.norm_map[it.key()] = parse_norm_mode(it->get<std::string>());
        } catch (const InvalidArgument& e) {
          throw bad(where + ".config.norm_map." + it.key(), std::string("is invalid: ") + e.what());
        }
      }
    }
    if (!st.contains("state_file")) return out;  // no statistics saved
    if (!st["state_file"].is_string()) throw bad(where + ".state_file", "must be a string");
    out.state_path = (fs::path(dir) / st["state_file"].get<std::string>()).string();
    VLART_CHECK(fs::exists(out.state_path), NotFoundError, pf, ": ", where, ".state_file names ", out.state_path,
                ", which does not exist");
    const SafetensorsFile sf = SafetensorsFile::open(out.state_path);
    for (const std::string& name : sf.names()) {
      const size_t dot = name.rfind('.');
      VLART_CHECK(dot != std::string::npos && dot > 0, FormatError, out.state_path, ": tensor '", name,
                  "' is not named '<feature>.<statistic>'");
      out.stats[name.substr(0, dot)][name.substr(dot + 1)] = sf.get(name).to_float_vector();
    }
    return out;
  }
  return std::nullopt;
}

}  // namespace vlart::blocks
