#include "models/smolvla/config.h"

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "vlart/error.h"

namespace vlart::smolvla {
namespace fs = std::filesystem;
// ordered_json: objects keep the file's key order. That order carries meaning in a LeRobot config
// (input_features lists the cameras in the order the policy stacks them), so std::map-backed
// nlohmann::json (sorted keys) must not be used for it.
using json = nlohmann::ordered_json;

namespace {

json read_json(const std::string& path) {
  std::ifstream f(path);
  if (!f) throw IoError("smolvla: cannot open " + path);
  try {
    return json::parse(f);
  } catch (const std::exception& e) {
    throw FormatError("smolvla: " + path + " is not valid JSON: " + e.what());
  }
}

// Typed field access with errors naming the file and field; `def` used when absent or null.
template <typename T>
T field(const json& j, const char* key, const std::string& file, const T* def = nullptr) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) {
    if (def) return *def;
    throw FormatError("smolvla: " + file + ": missing field '" + key + "'");
  }
  try {
    return it->get<T>();
  } catch (const std::exception& e) {
    throw FormatError("smolvla: " + file + ": field '" + key + "' has the wrong type: " + e.what());
  }
}
template <typename T>
T field_or(const json& j, const char* key, const std::string& file, T def) {
  return field<T>(j, key, file, &def);
}

}  // namespace

int64_t SmolVLAConfig::expert_layer_of(int64_t vlm_layer) const {
  if (!vlm_layers.empty()) return vlm_layers.at(static_cast<size_t>(vlm_layer)).expert;
  const int64_t ne = num_expert();
  const int64_t m = num_vlm_layers / ne;
  return vlm_layer % m == 0 ? vlm_layer / m : -1;
}

bool SmolVLAConfig::is_self_attn(int64_t vlm_layer) const {
  if (!vlm_layers.empty()) return vlm_layers.at(static_cast<size_t>(vlm_layer)).self_attn;
  return self_attn_every_n_layers > 0 && vlm_layer % self_attn_every_n_layers == 0;
}

int64_t expert_intermediate_size(int64_t hidden) {
  const int64_t h = 4 * ((2 * hidden) / 3);
  return 256 * ((h + 255) / 256);
}

namespace {

// Uniform layers by LeRobot's rules, or the per-layer lists of a "pruning" section (written by
// compress::prune_checkpoint; format in docs/compression.md).
void fill_layer_specs(SmolVLAConfig& c, const json* pruning, const std::string& pf) {
  const TextConfig& t = c.text;
  c.vlm_layers.clear();
  c.expert_layers.clear();
  if (!pruning) {
    std::vector<VlmLayerSpec> v;  // the rules read c.vlm_layers while it is empty
    for (int64_t i = 0; i < c.num_vlm_layers; ++i) {
      VlmLayerSpec l;
      l.heads = t.heads;
      l.mlp = t.mlp;
      l.expert = c.expert_layer_of(i);
      l.self_attn = c.is_self_attn(i);
      l.source = i;
      v.push_back(l);
    }
    c.vlm_layers = std::move(v);
    for (int64_t e = 0; e < c.num_expert(); ++e)
      c.expert_layers.push_back({t.heads, expert_intermediate_size(c.expert_hidden()), e});
    return;
  }
  c.pruned = true;
  const json& pr = *pruning;
  const std::string where = pf + ": \"pruning\"";
  VLART_CHECK(pr.is_object(), FormatError, "smolvla: ", where, " is not an object");
  const std::string fmt = field<std::string>(pr, "format", where);
  VLART_CHECK(fmt == "vlart", FormatError, "smolvla: ", where, ": format is '", fmt, "', expected 'vlart'");
  const int64_t ver = field<int64_t>(pr, "version", where);
  VLART_CHECK(ver == 1, FormatError, "smolvla: ", where, ": version ", ver, " is not supported (this build reads 1)");
  VLART_CHECK(pr.contains("vlm_layers") && pr["vlm_layers"].is_array() && pr.contains("expert_layers") &&
                  pr["expert_layers"].is_array(),
              FormatError, "smolvla: ", where, ": needs arrays 'vlm_layers' and 'expert_layers'");
  const json& vl = pr["vlm_layers"];
  const json& el = pr["expert_layers"];
  VLART_CHECK(static_cast<int64_t>(vl.size()) == c.num_vlm_layers, FormatError, "smolvla: ", where, ": vlm_layers has ",
              vl.size(), " entries, expected num_vlm_layers = ", c.num_vlm_layers);
  VLART_CHECK(static_cast<int64_t>(el.size()) == c.num_expert(), FormatError, "smolvla: ", where,
              ": expert_layers has ", el.size(), " entries, expected num_expert_layers = ", c.num_expert());
  auto heads_ok = [&](int64_t h, const std::string& what) {
    VLART_CHECK(h > 0 && h <= t.heads && h % t.kv_heads == 0, FormatError, "smolvla: ", where, ": ", what, " has ", h,
                " heads, expected a multiple of num_key_value_heads ", t.kv_heads, " in [", t.kv_heads, ", ", t.heads,
                "]");
  };
  std::vector<int> used(el.size(), 0);
  for (size_t i = 0; i < vl.size(); ++i) {
    const std::string what = "vlm_layers[" + std::to_string(i) + "]";
    VlmLayerSpec l;
    l.heads = field<int64_t>(vl[i], "heads", where + "." + what);
    l.mlp = field<int64_t>(vl[i], "mlp", where + "." + what);
    l.expert = field<int64_t>(vl[i], "expert", where + "." + what);
    l.source = field<int64_t>(vl[i], "source", where + "." + what);
    const std::string att = field<std::string>(vl[i], "attention", where + "." + what);
    VLART_CHECK(att == "self" || att == "cross", FormatError, "smolvla: ", where, ": ", what, ".attention is '", att,
                "', expected 'self' or 'cross'");
    l.self_attn = att == "self";
    heads_ok(l.heads, what);
    VLART_CHECK(l.mlp > 0, FormatError, "smolvla: ", where, ": ", what, ".mlp is ", l.mlp, ", expected > 0");
    VLART_CHECK(l.expert >= -1 && l.expert < static_cast<int64_t>(el.size()), FormatError, "smolvla: ", where, ": ",
                what, ".expert is ", l.expert, ", expected -1 or an index < ", el.size());
    if (l.expert >= 0) {
      VLART_CHECK(used[static_cast<size_t>(l.expert)] == 0, FormatError, "smolvla: ", where, ": expert layer ",
                  l.expert, " is paired with more than one VLM layer");
      used[static_cast<size_t>(l.expert)] = 1;
    }
    c.vlm_layers.push_back(l);
  }
  for (size_t e = 0; e < el.size(); ++e) {
    const std::string what = "expert_layers[" + std::to_string(e) + "]";
    ExpertLayerSpec x;
    x.heads = field<int64_t>(el[e], "heads", where + "." + what);
    x.mlp = field<int64_t>(el[e], "mlp", where + "." + what);
    x.source = field<int64_t>(el[e], "source", where + "." + what);
    heads_ok(x.heads, what);
    VLART_CHECK(x.mlp > 0, FormatError, "smolvla: ", where, ": ", what, ".mlp is ", x.mlp, ", expected > 0");
    VLART_CHECK(used[e] == 1, FormatError, "smolvla: ", where, ": ", what, " is paired with no VLM layer");
    c.expert_layers.push_back(x);
  }
}

}  // namespace

SmolVLAConfig load_config(const std::string& checkpoint_dir, const std::string& vlm_config_path) {
  SmolVLAConfig c;
  const std::string pf = (fs::path(checkpoint_dir) / "config.json").string();
  const json p = read_json(pf);
  const std::string type = field_or<std::string>(p, "type", pf, "smolvla");
  VLART_CHECK(type == "smolvla", FormatError, "smolvla: ", pf, ": type is '", type, "', expected 'smolvla'");
  // LeRobot stacks the cameras in the order config.image_features lists them, which is
  // input_features' own (insertion) order, never sorted.
  const json& in = p.at("input_features");
  for (auto it = in.begin(); it != in.end(); ++it) {
    const std::string t = field<std::string>(it.value(), "type", pf);
    if (t == "VISUAL") c.cameras.push_back(it.key());
    if (t == "STATE") c.state_dim = it.value().at("shape").at(0).get<int64_t>();
  }
  auto of = p.find("output_features");
  VLART_CHECK(of != p.end() && of->contains("action"), FormatError, "smolvla: ", pf,
              ": output_features.action missing");
  c.action_dim = (*of)["action"].at("shape").at(0).get<int64_t>();
  VLART_CHECK(c.state_dim > 0, FormatError, "smolvla: ", pf, ": no STATE input feature");
  c.max_state_dim = field_or<int64_t>(p, "max_state_dim", pf, 32);
  c.max_action_dim = field_or<int64_t>(p, "max_action_dim", pf, 32);
  c.chunk_size = field_or<int64_t>(p, "chunk_size", pf, 50);
  c.num_steps = field_or<int64_t>(p, "num_steps", pf, 10);
  c.tokenizer_max_length = field_or<int64_t>(p, "tokenizer_max_length", pf, 48);
  auto rs = p.find("resize_imgs_with_padding");
  if (rs != p.end() && !rs->is_null()) {
    c.resize_h = rs->at(0).get<int64_t>();
    c.resize_w = rs->at(1).get<int64_t>();
  } else {
    c.resize_h = c.resize_w = 0;  // no resize: frames must already match the vision size
  }
  c.empty_cameras = field_or<int64_t>(p, "empty_cameras", pf, 0);
  c.prefix_length = field_or<int64_t>(p, "prefix_length", pf, -1);
  c.num_vlm_layers = field<int64_t>(p, "num_vlm_layers", pf);
  c.num_expert_layers = field_or<int64_t>(p, "num_expert_layers", pf, -1);
  c.self_attn_every_n_layers = field_or<int64_t>(p, "self_attn_every_n_layers", pf, 2);
  c.expert_width_multiplier = field_or<double>(p, "expert_width_multiplier", pf, 0.75);
  c.min_period = field_or<double>(p, "min_period", pf, 4e-3);
  c.max_period = field_or<double>(p, "max_period", pf, 4.0);
  const std::string pad = field_or<std::string>(p, "pad_language_to", pf, "longest");
  VLART_CHECK(pad == "max_length" || pad == "longest", FormatError, "smolvla: ", pf,
              ": pad_language_to must be 'max_length' or 'longest', got '", pad, "'");
  c.pad_to_max_length = pad == "max_length";
  c.add_image_special_tokens = field_or<bool>(p, "add_image_special_tokens", pf, false);
  VLART_CHECK(!c.add_image_special_tokens, UnsupportedError, "smolvla: ", pf,
              ": add_image_special_tokens=true is not supported");
  const std::string mode = field_or<std::string>(p, "attention_mode", pf, "cross_attn");
  VLART_CHECK(mode == "cross_attn", UnsupportedError, "smolvla: ", pf, ": attention_mode '", mode,
              "' not supported (only cross_attn)");
  c.vlm_model_name = field_or<std::string>(p, "vlm_model_name", pf, "");

  const json v = read_json(vlm_config_path);
  const std::string& vf = vlm_config_path;
  c.scale_factor = field_or<int>(v, "scale_factor", vf, 4);
  VLART_CHECK(v.contains("vision_config") && v.contains("text_config"), FormatError, "smolvla: ", vf,
              ": missing vision_config or text_config");
  const json& vc = v["vision_config"];
  c.vision.hidden = field<int64_t>(vc, "hidden_size", vf);
  c.vision.layers = field<int64_t>(vc, "num_hidden_layers", vf);
  c.vision.heads = field<int64_t>(vc, "num_attention_heads", vf);
  c.vision.mlp = field<int64_t>(vc, "intermediate_size", vf);
  c.vision.patch = field<int64_t>(vc, "patch_size", vf);
  c.vision.image_size = field<int64_t>(vc, "image_size", vf);
  c.vision.channels = field_or<int64_t>(vc, "num_channels", vf, 3);
  c.vision.ln_eps = static_cast<float>(field_or<double>(vc, "layer_norm_eps", vf, 1e-6));
  const std::string act = field_or<std::string>(vc, "hidden_act", vf, "gelu_pytorch_tanh");
  VLART_CHECK(act == "gelu_pytorch_tanh" || act == "gelu", UnsupportedError, "smolvla: ", vf,
              ": vision hidden_act '", act, "' not supported");
  c.vision.gelu_tanh = act == "gelu_pytorch_tanh";
  const json& tc = v["text_config"];
  c.text.hidden = field<int64_t>(tc, "hidden_size", vf);
  c.text.layers = field<int64_t>(tc, "num_hidden_layers", vf);
  c.text.heads = field<int64_t>(tc, "num_attention_heads", vf);
  c.text.kv_heads = field_or<int64_t>(tc, "num_key_value_heads", vf, c.text.heads);
  c.text.head_dim = field_or<int64_t>(tc, "head_dim", vf, c.text.hidden / c.text.heads);
  c.text.mlp = field<int64_t>(tc, "intermediate_size", vf);
  c.text.vocab = field_or<int64_t>(tc, "vocab_size", vf, 0);
  c.text.rms_eps = static_cast<float>(field_or<double>(tc, "rms_norm_eps", vf, 1e-5));
  if (c.num_vlm_layers <= 0) c.num_vlm_layers = c.text.layers;
  auto pr = p.find("pruning");
  const bool pruned = pr != p.end() && !pr->is_null();
  // LeRobot's pairing rule needs the multiple; a pruned checkpoint lists the pairing instead.
  VLART_CHECK(pruned || c.num_vlm_layers % c.num_expert() == 0, UnsupportedError, "smolvla: ", pf,
              ": num_vlm_layers ", c.num_vlm_layers, " not a multiple of num_expert_layers ", c.num_expert());
  VLART_CHECK(c.text.heads % c.text.kv_heads == 0, FormatError, "smolvla: ", vf, ": num_attention_heads ",
              c.text.heads, " is not a multiple of num_key_value_heads ", c.text.kv_heads);
  fill_layer_specs(c, pruned ? &*pr : nullptr, pf);
  VLART_CHECK(c.vision.image_size % c.vision.patch == 0 &&
                  (c.vision.image_size / c.vision.patch) % c.scale_factor == 0,
              FormatError, "smolvla: ", vf, ": image_size/patch_size not divisible by scale_factor");
  return c;
}

std::string find_vlm_dir(const std::string& checkpoint_dir, const std::string& vlm_model_name,
                         const std::string& override_dir) {
  if (!override_dir.empty()) return override_dir;
  if (vlm_model_name.empty()) return "";
  std::error_code ec;
  if (fs::is_directory(vlm_model_name, ec)) return vlm_model_name;
  // LeRobot stores the name relative to wherever training ran: try each ancestor of the checkpoint.
  fs::path base = fs::absolute(checkpoint_dir, ec);
  while (!base.empty()) {
    const fs::path cand = base / vlm_model_name;
    if (fs::is_directory(cand, ec)) return cand.string();
    if (base == base.parent_path()) break;
    base = base.parent_path();
  }
  return "";
}

}  // namespace vlart::smolvla
