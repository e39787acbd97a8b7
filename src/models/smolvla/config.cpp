#include "models/smolvla/config.h"

#include "core/json_fields.h"
#include "core/json_file.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "vlart/error.h"

namespace vlart::smolvla {
namespace fs = std::filesystem;
using json = nlohmann::ordered_json;

namespace {

// ordered_json: objects keep the file's key order. That order carries meaning in a LeRobot config
// (input_features lists the cameras in the order the policy stacks them), so std::map-backed
// nlohmann::json (sorted keys) must not be used for it.
json read_json(const std::string& path) {
  json j = read_json_file(path, "smolvla");
  VLART_CHECK(j.is_object(), FormatError, "smolvla: ", path, ": expected a JSON object at the top level, got ",
              j.type_name());
  return j;
}

// The shared field readers (core/json_fields.h), with SmolVLA's message prefix.
using jsonf::got_of;
template <typename T>
T field(const json& j, const char* key, const std::string& where, const T* def = nullptr) {
  return jsonf::field<T>("smolvla", j, key, where, def);
}
template <typename T>
T field_or(const json& j, const char* key, const std::string& where, T def) {
  return jsonf::field_or<T>("smolvla", j, key, where, def);
}
int64_t int_at_least(const json& j, const char* key, const std::string& where, int64_t lo, const int64_t* def = nullptr) {
  return jsonf::int_at_least("smolvla", j, key, where, lo, def);
}
int64_t size_or(const json& j, const char* key, const std::string& where, int64_t def) {
  return jsonf::size_or("smolvla", j, key, where, def);
}
int64_t size_field(const json& j, const char* key, const std::string& where) {
  return jsonf::size_field("smolvla", j, key, where);
}
double positive_number(const json& j, const char* key, const std::string& where, double def) {
  return jsonf::positive_number("smolvla", j, key, where, def);
}
std::vector<int64_t> feature_shape(const json& feat, const std::string& path, size_t rank, const std::string& pf,
                                   const char* what) {
  return jsonf::feature_shape("smolvla", feat, path, rank, pf, what);
}

// Families vlart can load, by the name LeRobot's config.json gives in "type".
const std::vector<std::string> kFamilies = {"smolvla"};

std::string families_list() {
  std::string s;
  for (const std::string& f : kFamilies) s += (s.empty() ? "" : ", ") + f;
  return s;
}

// Checks that the policy config `j` (file `pf`) describes a SmolVLA policy. LeRobot writes "type";
// Hugging Face model configs carry "model_type" / "architectures" instead, which vlart names in the
// error so a user pointed at the wrong directory (or another architecture) sees what was found.
void check_family(const json& j, const std::string& pf) {
  auto t = j.find("type");
  if (t != j.end() && !t->is_null()) {
    VLART_CHECK(t->is_string(), FormatError, "smolvla: ", pf, ": field 'type' is ", got_of(*t),
                ", expected a string naming the policy family (", families_list(), ")");
    const std::string type = t->get<std::string>();
    VLART_CHECK(std::find(kFamilies.begin(), kFamilies.end(), type) != kFamilies.end(), UnsupportedError, pf,
                ": field 'type' is '", type, "': this policy architecture is not supported (vlart loads: ",
                families_list(), ")");
    return;
  }
  std::string found;
  auto mt = j.find("model_type");
  if (mt != j.end() && !mt->is_null()) found += "model_type " + mt->dump();
  auto ar = j.find("architectures");
  if (ar != j.end() && !ar->is_null()) found += (found.empty() ? "" : ", ") + std::string("architectures ") + ar->dump();
  VLART_CHECK(found.empty(), UnsupportedError, pf, ": no field 'type' but ", found,
              ": not a LeRobot policy config of a supported architecture (vlart loads: ", families_list(),
              "; expected \"type\": \"smolvla\")");
  // No family marker at all: read it as SmolVLA (old LeRobot configs); the fields below decide.
}

using jsonf::known_feature_type;

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

std::string read_vlm_model_name(const std::string& checkpoint_dir) {
  const std::string pf = (fs::path(checkpoint_dir) / "config.json").string();
  const json p = read_json(pf);
  check_family(p, pf);
  return field_or<std::string>(p, "vlm_model_name", pf, "");
}

SmolVLAConfig load_config(const std::string& checkpoint_dir, const std::string& vlm_config_path) {
  SmolVLAConfig c;
  const std::string pf = (fs::path(checkpoint_dir) / "config.json").string();
  const json p = read_json(pf);
  check_family(p, pf);
  // Features, in the file's order: LeRobot stacks the cameras in the order config.image_features
  // lists them, which is input_features' own (insertion) order, never sorted.
  auto inp = p.find("input_features");
  VLART_CHECK(inp != p.end() && !inp->is_null(), FormatError, "smolvla: ", pf,
              ": missing field 'input_features' (expected an object {feature name: {type, shape}})");
  VLART_CHECK(inp->is_object(), FormatError, "smolvla: ", pf, ": field 'input_features' is ", got_of(*inp),
              ", expected an object {feature name: {type, shape}}");
  {
    const int64_t zero = 0;
    c.empty_cameras = int_at_least(p, "empty_cameras", pf, 0, &zero);
  }
  // LeRobot's SmolVLAConfig.validate_features adds VISUAL features observation.images.empty_camera_<i>
  // (i < empty_cameras) to input_features, and they are saved with it. No observation has them, so
  // prepare_images appends an all -1 image with mask 0 for each: padding tokens that nothing attends
  // to and that the position ids skip. The runtime leaves them out, which gives the same actions.
  auto is_placeholder = [&](const std::string& key) {  // "<prefix><i>", i written as LeRobot does, i < empty_cameras
    const std::string pre = "observation.images.empty_camera_";
    if (key.size() <= pre.size() || key.size() > pre.size() + 18 || key.compare(0, pre.size(), pre) != 0) return false;
    const std::string idx = key.substr(pre.size());
    if (idx.find_first_not_of("0123456789") != std::string::npos || (idx.size() > 1 && idx[0] == '0')) return false;
    return std::stoll(idx) < c.empty_cameras;
  };
  std::string state_name;
  for (auto it = inp->begin(); it != inp->end(); ++it) {
    const std::string path = "input_features." + it.key();
    const json& feat = it.value();
    VLART_CHECK(feat.is_object(), FormatError, "smolvla: ", pf, ": field '", path, "' is ", got_of(feat),
                ", expected an object {type, shape}");
    const std::string t = field<std::string>(feat, "type", pf + ": " + path);
    VLART_CHECK(known_feature_type(t), FormatError, "smolvla: ", pf, ": field '", path, ".type' is '", t,
                "', expected one of VISUAL, STATE, ENV, ACTION, REWARD, LANGUAGE");
    if (t == "VISUAL") {
      const std::vector<int64_t> s = feature_shape(feat, path, 3, pf, "[3, height, width] with sizes >= 1");
      VLART_CHECK(s[0] == 3, UnsupportedError, "smolvla: ", pf, ": field '", path, ".shape' has ", s[0],
                  " channels, expected 3 (RGB)");
      (is_placeholder(it.key()) ? c.empty_camera_features : c.cameras).push_back(it.key());
    } else if (t == "STATE") {
      VLART_CHECK(state_name.empty(), UnsupportedError, "smolvla: ", pf, ": input_features has two STATE features ('",
                  state_name, "' and '", it.key(), "'); SmolVLA reads one");
      state_name = it.key();
      c.state_dim = feature_shape(feat, path, 1, pf, "[state_dim] with state_dim >= 1")[0];
    }
    // ENV / LANGUAGE / ... inputs: SmolVLA does not read them.
  }
  VLART_CHECK(!state_name.empty(), FormatError, "smolvla: ", pf,
              ": input_features has no feature of type STATE (expected 'observation.state')");
  VLART_CHECK(!c.cameras.empty(), FormatError, "smolvla: ", pf,
              ": input_features has no feature of type VISUAL (expected at least one camera)");
  auto of = p.find("output_features");
  VLART_CHECK(of != p.end() && !of->is_null(), FormatError, "smolvla: ", pf,
              ": missing field 'output_features' (expected an object holding 'action')");
  VLART_CHECK(of->is_object(), FormatError, "smolvla: ", pf, ": field 'output_features' is ", got_of(*of),
              ", expected an object holding 'action'");
  auto oa = of->find("action");
  VLART_CHECK(oa != of->end() && oa->is_object(), FormatError, "smolvla: ", pf,
              ": missing field 'output_features.action' (expected an object {type, shape})");
  {
    const std::string t = field<std::string>(*oa, "type", pf + ": output_features.action");
    VLART_CHECK(t == "ACTION", FormatError, "smolvla: ", pf, ": field 'output_features.action.type' is '", t,
                "', expected 'ACTION'");
  }
  c.action_dim = feature_shape(*oa, "output_features.action", 1, pf, "[action_dim] with action_dim >= 1")[0];
  // The runtime normalises state and actions by mean/std (the stats files hold mean and std) and
  // feeds images unnormalised: any other mapping would run silently wrong, so it is refused.
  auto nm = p.find("normalization_mapping");
  if (nm != p.end() && !nm->is_null()) {
    VLART_CHECK(nm->is_object(), FormatError, "smolvla: ", pf, ": field 'normalization_mapping' is ", got_of(*nm),
                ", expected an object {feature type: mode}");
    const std::pair<const char*, const char*> modes[] = {{"STATE", "MEAN_STD"}, {"ACTION", "MEAN_STD"},
                                                         {"VISUAL", "IDENTITY"}};
    for (const auto& [type, want] : modes) {
      const std::string mode = field_or<std::string>(*nm, type, pf + ": normalization_mapping", want);
      VLART_CHECK(mode == want, UnsupportedError, "smolvla: ", pf, ": field 'normalization_mapping.", type, "' is '",
                  mode, "', which is not supported (expected '", want, "')");
    }
  }
  c.max_state_dim = size_or(p, "max_state_dim", pf, 32);
  c.max_action_dim = size_or(p, "max_action_dim", pf, 32);
  VLART_CHECK(c.state_dim <= c.max_state_dim, FormatError, "smolvla: ", pf, ": state dim ", c.state_dim, " ('",
              state_name, "' shape) exceeds field 'max_state_dim' ", c.max_state_dim,
              ", expected state dim <= max_state_dim");
  VLART_CHECK(c.action_dim <= c.max_action_dim, FormatError, "smolvla: ", pf, ": action dim ", c.action_dim,
              " (output_features.action shape) exceeds field 'max_action_dim' ", c.max_action_dim,
              ", expected action dim <= max_action_dim");
  c.chunk_size = size_or(p, "chunk_size", pf, 50);
  {
    const int64_t n_act = size_or(p, "n_action_steps", pf, c.chunk_size);  // validated only (LeRobot's rule)
    VLART_CHECK(n_act <= c.chunk_size, FormatError, "smolvla: ", pf, ": field 'n_action_steps' is ", n_act,
                ", expected an integer <= chunk_size ", c.chunk_size);
  }
  c.num_steps = size_or(p, "num_steps", pf, 10);
  c.tokenizer_max_length = size_or(p, "tokenizer_max_length", pf, 48);
  auto rs = p.find("resize_imgs_with_padding");
  if (rs != p.end() && !rs->is_null()) {
    const char* what = "[height, width] with sizes >= 1, or null";
    VLART_CHECK(rs->is_array() && rs->size() == 2, FormatError, "smolvla: ", pf,
                ": field 'resize_imgs_with_padding' is ", rs->dump(), ", expected ", what);
    for (const json& d : *rs)
      VLART_CHECK(d.is_number_integer() && d.get<int64_t>() >= 1, FormatError, "smolvla: ", pf,
                  ": field 'resize_imgs_with_padding' is ", rs->dump(), ", expected ", what);
    c.resize_h = (*rs)[0].get<int64_t>();
    c.resize_w = (*rs)[1].get<int64_t>();
  } else {
    c.resize_h = c.resize_w = 0;  // no resize: frames must already match the vision size
  }
  c.prefix_length = field_or<int64_t>(p, "prefix_length", pf, -1);
  c.num_vlm_layers = field<int64_t>(p, "num_vlm_layers", pf);
  c.num_expert_layers = field_or<int64_t>(p, "num_expert_layers", pf, -1);
  c.self_attn_every_n_layers = field_or<int64_t>(p, "self_attn_every_n_layers", pf, 2);
  c.expert_width_multiplier = positive_number(p, "expert_width_multiplier", pf, 0.75);
  c.min_period = positive_number(p, "min_period", pf, 4e-3);
  c.max_period = positive_number(p, "max_period", pf, 4.0);
  const std::string pad = field_or<std::string>(p, "pad_language_to", pf, "longest");
  VLART_CHECK(pad == "max_length" || pad == "longest", FormatError, "smolvla: ", pf,
              ": field 'pad_language_to' is '", pad, "', expected 'max_length' or 'longest'");
  c.pad_to_max_length = pad == "max_length";
  c.add_image_special_tokens = field_or<bool>(p, "add_image_special_tokens", pf, false);
  VLART_CHECK(!c.add_image_special_tokens, UnsupportedError, "smolvla: ", pf,
              ": field 'add_image_special_tokens' is true, which is not supported (expected false)");
  const std::string mode = field_or<std::string>(p, "attention_mode", pf, "cross_attn");
  VLART_CHECK(mode == "cross_attn", UnsupportedError, "smolvla: ", pf, ": field 'attention_mode' is '", mode,
              "', which is not supported (expected 'cross_attn')");
  c.vlm_model_name = field_or<std::string>(p, "vlm_model_name", pf, "");

  const json v = read_json(vlm_config_path);
  const std::string& vf = vlm_config_path;
  {
    const int four = 4;
    c.scale_factor = field<int>(v, "scale_factor", vf, &four);
    VLART_CHECK(c.scale_factor >= 1, FormatError, "smolvla: ", vf, ": field 'scale_factor' is ", c.scale_factor,
                ", expected an integer >= 1");
  }
  for (const char* sec : {"vision_config", "text_config"}) {
    auto it = v.find(sec);
    VLART_CHECK(it != v.end() && !it->is_null(), FormatError, "smolvla: ", vf, ": missing field '", sec,
                "' (expected an object)");
    VLART_CHECK(it->is_object(), FormatError, "smolvla: ", vf, ": field '", sec, "' is ", got_of(*it),
                ", expected an object");
  }
  const json& vc = v["vision_config"];
  const std::string vcf = vf + ": vision_config";
  c.vision.hidden = size_field(vc, "hidden_size", vcf);
  c.vision.layers = size_field(vc, "num_hidden_layers", vcf);
  c.vision.heads = size_field(vc, "num_attention_heads", vcf);
  c.vision.mlp = size_field(vc, "intermediate_size", vcf);
  c.vision.patch = size_field(vc, "patch_size", vcf);
  c.vision.image_size = size_field(vc, "image_size", vcf);
  c.vision.channels = size_or(vc, "num_channels", vcf, 3);
  VLART_CHECK(c.vision.hidden % c.vision.heads == 0, FormatError, "smolvla: ", vcf, ": hidden_size ", c.vision.hidden,
              " is not a multiple of num_attention_heads ", c.vision.heads);
  c.vision.ln_eps = static_cast<float>(positive_number(vc, "layer_norm_eps", vcf, 1e-6));
  const std::string act = field_or<std::string>(vc, "hidden_act", vcf, "gelu_pytorch_tanh");
  VLART_CHECK(act == "gelu_pytorch_tanh" || act == "gelu", UnsupportedError, "smolvla: ", vcf,
              ": field 'hidden_act' is '", act, "', which is not supported (expected 'gelu_pytorch_tanh' or 'gelu')");
  c.vision.gelu_tanh = act == "gelu_pytorch_tanh";
  const json& tc = v["text_config"];
  const std::string tcf = vf + ": text_config";
  c.text.hidden = size_field(tc, "hidden_size", tcf);
  c.text.layers = size_field(tc, "num_hidden_layers", tcf);
  c.text.heads = size_field(tc, "num_attention_heads", tcf);
  c.text.kv_heads = size_or(tc, "num_key_value_heads", tcf, c.text.heads);
  c.text.head_dim = size_or(tc, "head_dim", tcf, std::max<int64_t>(1, c.text.hidden / c.text.heads));
  c.text.mlp = size_field(tc, "intermediate_size", tcf);
  {
    const int64_t zero = 0;
    c.text.vocab = int_at_least(tc, "vocab_size", tcf, 0, &zero);
  }
  c.text.rms_eps = static_cast<float>(positive_number(tc, "rms_norm_eps", tcf, 1e-5));
  VLART_CHECK(c.expert_hidden() >= 1, FormatError, "smolvla: ", pf, ": field 'expert_width_multiplier' is ",
              c.expert_width_multiplier, ", which gives an expert hidden size of ", c.expert_hidden(),
              " for text hidden_size ", c.text.hidden, " (expected >= 1)");
  if (c.num_vlm_layers <= 0) c.num_vlm_layers = c.text.layers;
  auto pr = p.find("pruning");
  const bool pruned = pr != p.end() && !pr->is_null();
  // LeRobot's pairing rule needs the multiple; a pruned checkpoint lists the pairing instead.
  VLART_CHECK(pruned || c.num_vlm_layers % c.num_expert() == 0, UnsupportedError, "smolvla: ", pf,
              ": num_vlm_layers ", c.num_vlm_layers, " not a multiple of num_expert_layers ", c.num_expert());
  VLART_CHECK(c.text.heads % c.text.kv_heads == 0, FormatError, "smolvla: ", tcf, ": num_attention_heads ",
              c.text.heads, " is not a multiple of num_key_value_heads ", c.text.kv_heads);
  fill_layer_specs(c, pruned ? &*pr : nullptr, pf);
  VLART_CHECK(c.vision.image_size % c.vision.patch == 0 &&
                  (c.vision.image_size / c.vision.patch) % c.scale_factor == 0,
              FormatError, "smolvla: ", vcf, ": image_size ", c.vision.image_size, " / patch_size ", c.vision.patch,
              " must be a whole number divisible by scale_factor ", c.scale_factor);
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
