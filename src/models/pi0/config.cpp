#include "models/pi0/config.h"

#include <filesystem>

#include "core/json_fields.h"
#include "core/json_file.h"
#include "models/policy_weights.h"
#include "vlart/error.h"

namespace vlart::pi0 {
namespace fs = std::filesystem;
using json = jsonf::json;

namespace {

constexpr const char* kWho = "pi0";
const std::string kVis = "model.paligemma_with_expert.paligemma.model.vision_tower.vision_model.";
const std::string kLm = "model.paligemma_with_expert.paligemma.model.language_model.";
const std::string kExp = "model.paligemma_with_expert.gemma_expert.model.";

template <typename T>
T field_or(const json& j, const char* key, const std::string& where, T def) {
  return jsonf::field_or<T>(kWho, j, key, where, def);
}

// Shape of tensor `name`, FormatError naming it when absent.
Shape shape_of(const PolicyWeights& ck, const std::string& name, const std::string& dir) {
  VLART_CHECK(ck.has(name), FormatError, "pi0: ", dir, "/model.safetensors has no tensor '", name,
              "' (not a LeRobot pi0 / pi05 checkpoint, or a truncated one)");
  return ck.info(name).shape;
}
Shape shape_of(const PolicyWeights& ck, const std::string& name, const std::string& dir, size_t rank) {
  Shape s = shape_of(ck, name, dir);
  VLART_CHECK(static_cast<size_t>(s.rank()) == rank, FormatError, "pi0: ", dir, "/model.safetensors: tensor '", name, "' has shape ",
              s.str(), ", expected rank ", rank);
  return s;
}
void expect_shape(const PolicyWeights& ck, const std::string& name, const Shape& want,
                  const std::string& dir) {
  const Shape s = shape_of(ck, name, dir);
  VLART_CHECK(s == want, FormatError, "pi0: ", dir, "/model.safetensors: tensor '", name, "' has shape ", s.str(),
              ", expected ", want.str());
}

int64_t count_layers(const PolicyWeights& ck, const std::string& prefix, const std::string& probe) {
  int64_t n = 0;
  while (ck.has(prefix + std::to_string(n) + "." + probe)) ++n;
  return n;
}

// A Gemma tower's sizes from its tensors. Every LeRobot variant has one K/V head (multi-query), so
// head_dim = rows of k_proj; the query heads follow from q_proj. Every layer must agree.
GemmaDims gemma_dims(const PolicyWeights& ck, const std::string& model_prefix, bool adaptive,
                     const std::string& dir, const char* what) {
  GemmaDims d;
  const std::string lp = model_prefix + "layers.";
  d.depth = count_layers(ck, lp, "self_attn.q_proj.weight");
  VLART_CHECK(d.depth > 0, FormatError, "pi0: ", dir, "/model.safetensors has no ", what, " layers (no tensor '", lp,
              "0.self_attn.q_proj.weight')");
  const Shape q = shape_of(ck, lp + "0.self_attn.q_proj.weight", dir, 2);
  const Shape k = shape_of(ck, lp + "0.self_attn.k_proj.weight", dir, 2);
  const Shape g = shape_of(ck, lp + "0.mlp.gate_proj.weight", dir, 2);
  d.width = q[1];
  d.kv_heads = 1;
  d.head_dim = k[0];
  VLART_CHECK(d.head_dim > 0 && q[0] % d.head_dim == 0 && d.head_dim % 2 == 0, FormatError, "pi0: ", dir,
              "/model.safetensors: ", what, " q_proj ", q.str(), " and k_proj ", k.str(),
              " do not give a whole number of heads of an even head_dim (one K/V head, as every LeRobot variant)");
  d.heads = q[0] / d.head_dim;
  d.mlp = g[0];
  for (int64_t i = 0; i < d.depth; ++i) {
    const std::string p = lp + std::to_string(i) + ".";
    // Each layer's own query heads and MLP width (equal in LeRobot's checkpoints; per layer after
    // `vlart prune`), then every tensor of the layer checked against them.
    const Shape qi = shape_of(ck, p + "self_attn.q_proj.weight", dir, 2);
    const Shape gi = shape_of(ck, p + "mlp.gate_proj.weight", dir, 2);
    VLART_CHECK(qi[0] > 0 && qi[0] % d.head_dim == 0, FormatError, "pi0: ", dir, "/model.safetensors: tensor '", p,
                "self_attn.q_proj.weight' has shape ", qi.str(), ", expected a multiple of head_dim ", d.head_dim,
                " rows");
    const int64_t h = qi[0] / d.head_dim, m = gi[0];
    d.layer_heads.push_back(h);
    d.layer_mlp.push_back(m);
    expect_shape(ck, p + "self_attn.q_proj.weight", {h * d.head_dim, d.width}, dir);
    expect_shape(ck, p + "self_attn.k_proj.weight", {d.kv_heads * d.head_dim, d.width}, dir);
    expect_shape(ck, p + "self_attn.v_proj.weight", {d.kv_heads * d.head_dim, d.width}, dir);
    expect_shape(ck, p + "self_attn.o_proj.weight", {d.width, h * d.head_dim}, dir);
    expect_shape(ck, p + "mlp.gate_proj.weight", {m, d.width}, dir);
    expect_shape(ck, p + "mlp.up_proj.weight", {m, d.width}, dir);
    expect_shape(ck, p + "mlp.down_proj.weight", {d.width, m}, dir);
    for (const char* n : {"input_layernorm", "post_attention_layernorm"}) {
      if (adaptive) {
        expect_shape(ck, p + n + ".dense.weight", {3 * d.width, d.width}, dir);
        expect_shape(ck, p + n + ".dense.bias", {3 * d.width}, dir);
      } else {
        expect_shape(ck, p + n + ".weight", {d.width}, dir);
      }
    }
  }
  if (adaptive) {
    expect_shape(ck, model_prefix + "norm.dense.weight", {3 * d.width, d.width}, dir);
    expect_shape(ck, model_prefix + "norm.dense.bias", {3 * d.width}, dir);
  } else {
    expect_shape(ck, model_prefix + "norm.weight", {d.width}, dir);
  }
  return d;
}

// A VISUAL feature: a camera, or one of the `empty` padding cameras LeRobot and opentau name
// observation.images.empty_camera_<i> (never observed; masked by both).
void add_camera(Pi0Config& c, const std::string& key, int64_t empty) {
  bool padding = false;
  for (int64_t i = 0; i < empty; ++i)
    padding = padding || key == std::string(kImagePrefix) + "empty_camera_" + std::to_string(i);
  (padding ? c.placeholder_cameras : c.cameras).push_back(key);
}

// Every width, depth and MLP size from the tensors (c's image size, type and features already set).
void read_sizes(Pi0Config& c, const std::string& dir, const std::string& pf) {
  // Sizes from the tensors.
  // Through PolicyWeights: a quantized copy (vlart quantize) reports its weights under their own names.
  const PolicyWeights ck = PolicyWeights::open(dir, "", "pi0");
  const Shape pe = shape_of(ck, kVis + "embeddings.patch_embedding.weight", dir, 4);
  c.vision.hidden = pe[0];
  c.vision.patch = pe[2];
  VLART_CHECK(pe[1] == 3 && pe[2] == pe[3] && pe[2] > 0, FormatError, "pi0: ", dir,
              "/model.safetensors: patch_embedding.weight has shape ", pe.str(), ", expected [hidden, 3, p, p]");
  c.vision.image_size = c.image_h;
  VLART_CHECK(c.image_h % c.vision.patch == 0, UnsupportedError, "pi0: ", pf, ": image_resolution ", c.image_h,
              " is not a multiple of the SigLIP patch ", c.vision.patch);
  expect_shape(ck, kVis + "embeddings.position_embedding.weight", {c.vision.tokens(), c.vision.hidden}, dir);
  c.vision.layers = count_layers(ck, kVis + "encoder.layers.", "self_attn.q_proj.weight");
  VLART_CHECK(c.vision.layers > 0, FormatError, "pi0: ", dir, "/model.safetensors has no SigLIP layers");
  c.vision.mlp = shape_of(ck, kVis + "encoder.layers.0.mlp.fc1.weight", dir, 2)[0];
  // LeRobot always builds PaliGemma's default SigLIP (So400m/14: 16 heads); head counts are not in
  // the tensors, so this is the one size taken from that convention.
  c.vision.heads = 16;
  VLART_CHECK(c.vision.hidden % c.vision.heads == 0, FormatError, "pi0: ", dir, "/model.safetensors: SigLIP width ",
              c.vision.hidden, " is not a multiple of its 16 heads");
  c.vlm = gemma_dims(ck, kLm, false, dir, "PaliGemma language model");
  c.expert = gemma_dims(ck, kExp, c.pi05, dir, "action expert");
  VLART_CHECK(c.vlm.depth == c.expert.depth && c.vlm.head_dim == c.expert.head_dim &&
                  c.vlm.kv_heads == c.expert.kv_heads,
              FormatError, "pi0: ", dir, "/model.safetensors: the action expert (", c.expert.depth, " layers, head_dim ",
              c.expert.head_dim, ") must match the language model (", c.vlm.depth, " layers, head_dim ",
              c.vlm.head_dim, "): expert layer i attends to language-model layer i's K/V");
  const std::string mm = "model.paligemma_with_expert.paligemma.model.multi_modal_projector.linear.";
  expect_shape(ck, mm + "weight", {c.vlm.width, c.vision.hidden}, dir);
  expect_shape(ck, mm + "bias", {c.vlm.width}, dir);
  // The embedding table: LeRobot ties it to lm_head, and safetensors keeps one of the two names.
  for (const std::string& n : {kLm + "embed_tokens.weight", std::string("model.paligemma_with_expert.paligemma.lm_head.weight")})
    if (ck.has(n)) {
      c.embed_name = n;
      break;
    }
  VLART_CHECK(!c.embed_name.empty(), FormatError, "pi0: ", dir, "/model.safetensors has neither '", kLm,
              "embed_tokens.weight' nor the tied 'paligemma.lm_head.weight'");
  const Shape emb = shape_of(ck, c.embed_name, dir, 2);
  VLART_CHECK(emb[1] == c.vlm.width, FormatError, "pi0: ", dir, "/model.safetensors: '", c.embed_name, "' has shape ",
              emb.str(), ", expected [vocab, ", c.vlm.width, "]");
  c.vocab = emb[0];
  const int64_t We = c.expert.width;
  expect_shape(ck, "model.action_in_proj.weight", {We, c.max_action_dim}, dir);
  expect_shape(ck, "model.action_out_proj.weight", {c.max_action_dim, We}, dir);
  if (c.pi05) {
    expect_shape(ck, "model.time_mlp_in.weight", {We, We}, dir);
    expect_shape(ck, "model.time_mlp_out.weight", {We, We}, dir);
  } else {
    expect_shape(ck, "model.state_proj.weight", {We, c.max_state_dim}, dir);
    expect_shape(ck, "model.action_time_mlp_in.weight", {We, 2 * We}, dir);
    expect_shape(ck, "model.action_time_mlp_out.weight", {We, We}, dir);
  }
  VLART_CHECK(We % 2 == 0, FormatError, "pi0: ", dir, ": action expert width ", We,
              " is odd (the sinusoidal time embedding needs an even width)");
}

}  // namespace

Pi0Config load_config(const std::string& dir) {
  Pi0Config c;
  const std::string pf = (fs::path(dir) / "config.json").string();
  const json p = read_json_file(pf, kWho);
  VLART_CHECK(p.is_object(), FormatError, "pi0: ", pf, ": expected a JSON object at the top level");
  c.type = jsonf::field<std::string>(kWho, p, "type", pf);
  VLART_CHECK(c.type == "pi0" || c.type == "pi05", FormatError, "pi0: ", pf, ": field 'type' is '", c.type,
              "', expected 'pi0' or 'pi05'");
  c.pi05 = c.type == "pi05";

  // Features, in the file's order (LeRobot stacks the cameras in image_features order).
  auto inp = p.find("input_features");
  VLART_CHECK(inp != p.end() && inp->is_object(), FormatError, "pi0: ", pf,
              ": missing or malformed field 'input_features' (expected an object {feature name: {type, shape}})");
  const int64_t zero = 0;
  const int64_t empty = jsonf::int_at_least(kWho, p, "empty_cameras", pf, 0, &zero);
  bool have_state = false;
  for (auto it = inp->begin(); it != inp->end(); ++it) {
    const std::string path = "input_features." + it.key();
    VLART_CHECK(it.value().is_object(), FormatError, "pi0: ", pf, ": field '", path, "' is ",
                jsonf::got_of(it.value()), ", expected an object {type, shape}");
    const std::string t = jsonf::field<std::string>(kWho, it.value(), "type", pf + ": " + path);
    VLART_CHECK(jsonf::known_feature_type(t), FormatError, "pi0: ", pf, ": field '", path, ".type' is '", t,
                "', expected one of VISUAL, STATE, ENV, ACTION, REWARD, LANGUAGE");
    if (t == "VISUAL") {
      const std::vector<int64_t> s =
          jsonf::feature_shape(kWho, it.value(), path, 3, pf, "[3, height, width] with sizes >= 1");
      VLART_CHECK(s[0] == 3, UnsupportedError, "pi0: ", pf, ": field '", path, ".shape' has ", s[0],
                  " channels, expected 3 (RGB)");
      VLART_CHECK(it.key().rfind(kImagePrefix, 0) == 0, FormatError, "pi0: ", pf, ": camera feature '", it.key(),
                  "' does not start with '", kImagePrefix, "'");
      add_camera(c, it.key(), empty);
    } else if (t == "STATE") {
      VLART_CHECK(!have_state, UnsupportedError, "pi0: ", pf, ": input_features has two STATE features ('",
                  c.state_feature, "' and '", it.key(), "'); pi0 reads one");
      have_state = true;
      c.state_feature = it.key();
      c.state_dim = jsonf::feature_shape(kWho, it.value(), path, 1, pf, "[state_dim] with state_dim >= 1")[0];
    }
  }
  VLART_CHECK(!c.cameras.empty(), FormatError, "pi0: ", pf,
              ": input_features has no camera (VISUAL feature); pi0 needs at least one");
  VLART_CHECK(have_state, FormatError, "pi0: ", pf, ": input_features has no STATE feature");
  auto out = p.find("output_features");
  VLART_CHECK(out != p.end() && out->is_object() && out->contains("action"), FormatError, "pi0: ", pf,
              ": missing field 'output_features.action'");
  c.action_dim = jsonf::feature_shape(kWho, (*out)["action"], "output_features.action", 1, pf,
                                      "[action_dim] with action_dim >= 1")[0];

  c.max_state_dim = jsonf::size_or(kWho, p, "max_state_dim", pf, 32);
  c.max_action_dim = jsonf::size_or(kWho, p, "max_action_dim", pf, 32);
  c.chunk_size = jsonf::size_or(kWho, p, "chunk_size", pf, 50);
  c.n_action_steps = jsonf::size_or(kWho, p, "n_action_steps", pf, 50);
  c.num_steps = jsonf::size_or(kWho, p, "num_inference_steps", pf, 10);
  c.tokenizer_max_length = jsonf::size_or(kWho, p, "tokenizer_max_length", pf, c.pi05 ? 200 : 48);
  // The prompt is tokenised by the saved preprocessor's tokenizer step: its settings are the truth
  // (config.json's tokenizer_max_length is what LeRobot built it from).
  {
    const std::string pp = (fs::path(dir) / "policy_preprocessor.json").string();
    if (fs::exists(pp)) {
      const json j = read_json_file(pp, kWho);
      if (j.is_object() && j.contains("steps") && j["steps"].is_array())
        for (const json& st : j["steps"]) {
          if (!st.is_object() || st.value("registry_name", json()) != "tokenizer_processor") continue;
          const json cfgj = st.contains("config") ? st["config"] : json::object();
          const std::string where = pp + ": step tokenizer_processor.config";
          c.tokenizer_max_length = jsonf::size_or(kWho, cfgj, "max_length", where, c.tokenizer_max_length);
          const std::string pad = field_or<std::string>(cfgj, "padding", where, "max_length");
          const std::string side = field_or<std::string>(cfgj, "padding_side", where, "right");
          VLART_CHECK(pad == "max_length" && side == "right" && field_or<bool>(cfgj, "truncation", where, true),
                      UnsupportedError, "pi0: ", where, ": padding '", pad, "' on the ", side,
                      " side (truncation ", field_or<bool>(cfgj, "truncation", where, true) ? "on" : "off",
                      "); vlart runs LeRobot's pi0 / pi05 setting: max_length padding on the right, truncation on");
        }
    }
  }
  c.min_period = jsonf::positive_number(kWho, p, "min_period", pf, 4e-3);
  c.max_period = jsonf::positive_number(kWho, p, "max_period", pf, 4.0);
  c.dtype = field_or<std::string>(p, "dtype", pf, "float32");
  VLART_CHECK(c.dtype == "float32" || c.dtype == "bfloat16", FormatError, "pi0: ", pf, ": field 'dtype' is '", c.dtype,
              "', expected 'float32' or 'bfloat16'");
  c.pruned = p.contains("pruning") && !p["pruning"].is_null();
  c.paligemma_variant = field_or<std::string>(p, "paligemma_variant", pf, "gemma_2b");
  c.action_expert_variant = field_or<std::string>(p, "action_expert_variant", pf, "gemma_300m");
  VLART_CHECK(c.state_dim <= c.max_state_dim, FormatError, "pi0: ", pf, ": state has ", c.state_dim,
              " values, more than max_state_dim ", c.max_state_dim);
  VLART_CHECK(c.action_dim <= c.max_action_dim, FormatError, "pi0: ", pf, ": action has ", c.action_dim,
              " values, more than max_action_dim ", c.max_action_dim);
  VLART_CHECK(c.n_action_steps <= c.chunk_size, FormatError, "pi0: ", pf, ": n_action_steps ", c.n_action_steps,
              " > chunk_size ", c.chunk_size);
  if (p.contains("image_resolution") && !p["image_resolution"].is_null()) {
    const json& r = p["image_resolution"];
    VLART_CHECK(r.is_array() && r.size() == 2 && r[0].is_number_integer() && r[1].is_number_integer() &&
                    r[0].get<int64_t>() > 0 && r[1].get<int64_t>() > 0,
                FormatError, "pi0: ", pf, ": field 'image_resolution' is ", r.dump(),
                ", expected [height, width] with sizes >= 1");
    c.image_h = r[0].get<int64_t>();
    c.image_w = r[1].get<int64_t>();
  }
  VLART_CHECK(c.image_h == c.image_w, UnsupportedError, "pi0: ", pf, ": image_resolution ", c.image_h, "x", c.image_w,
              " is not square (SigLIP's position embedding is for a square grid)");
  // Settings that change what inference computes and that vlart does not run: refused, not ignored.
  VLART_CHECK(!field_or<bool>(p, "use_relative_actions", pf, false), UnsupportedError, "pi0: ", pf,
              ": use_relative_actions is true (actions relative to the state); vlart runs absolute-action "
              "checkpoints only");
  if (p.contains("rtc_config") && p["rtc_config"].is_object())
    VLART_CHECK(!field_or<bool>(p["rtc_config"], "enabled", pf + ": rtc_config", false), UnsupportedError, "pi0: ",
                pf, ": rtc_config.enabled is true (real-time chunking guidance); vlart does not run it");

  read_sizes(c, dir, pf);
  return c;
}

bool is_opentau_config(const std::string& dir) {
  const json p = read_json_file((fs::path(dir) / "config.json").string(), kWho);
  return p.is_object() && p.contains("opentau_version");
}

Pi0Config load_opentau_config(const std::string& dir) {
  constexpr const char* who = "opentau pi05";
  Pi0Config c;
  const std::string pf = (fs::path(dir) / "config.json").string();
  const json p = read_json_file(pf, who);
  VLART_CHECK(p.is_object(), FormatError, who, ": ", pf, ": expected a JSON object at the top level");
  c.type = jsonf::field<std::string>(who, p, "type", pf);
  VLART_CHECK(c.type == "pi05", UnsupportedError, who, ": ", pf, ": field 'type' is '", c.type,
              "'; vlart runs opentau's pi05 (with or without predict_response)");
  c.pi05 = true;
  c.opentau = true;
  const int64_t zero = 0;
  const int64_t empty = jsonf::int_at_least(who, p, "empty_cameras", pf, 0, &zero);
  auto inp = p.find("input_features");
  VLART_CHECK(inp != p.end() && inp->is_object(), FormatError, who, ": ", pf,
              ": missing or malformed field 'input_features' (expected an object {feature name: {type, shape}})");
  bool have_state = false;
  for (auto it = inp->begin(); it != inp->end(); ++it) {
    const std::string path = "input_features." + it.key();
    VLART_CHECK(it.value().is_object(), FormatError, who, ": ", pf, ": field '", path, "' is ",
                jsonf::got_of(it.value()), ", expected an object {type, shape}");
    const std::string t = jsonf::field<std::string>(who, it.value(), "type", pf + ": " + path);
    VLART_CHECK(jsonf::known_feature_type(t), FormatError, who, ": ", pf, ": field '", path, ".type' is '", t,
                "', expected one of VISUAL, STATE, ENV, ACTION, REWARD, LANGUAGE");
    if (t == "VISUAL") {
      const std::vector<int64_t> s =
          jsonf::feature_shape(who, it.value(), path, 3, pf, "[3, height, width] with sizes >= 1");
      VLART_CHECK(s[0] == 3, UnsupportedError, who, ": ", pf, ": field '", path, ".shape' has ", s[0],
                  " channels, expected 3 (RGB)");
      add_camera(c, it.key(), empty);
    } else if (t == "STATE") {
      VLART_CHECK(!have_state, UnsupportedError, who, ": ", pf, ": input_features has two STATE features ('",
                  c.state_feature, "' and '", it.key(), "'); pi05 reads one");
      have_state = true;
      c.state_feature = it.key();
      c.state_dim = jsonf::feature_shape(who, it.value(), path, 1, pf, "[state_dim] with state_dim >= 1")[0];
    }
  }
  VLART_CHECK(!c.cameras.empty(), FormatError, who, ": ", pf, ": input_features has no camera (VISUAL feature)");
  VLART_CHECK(have_state, FormatError, who, ": ", pf, ": input_features has no STATE feature");
  auto out = p.find("output_features");
  VLART_CHECK(out != p.end() && out->is_object(), FormatError, who, ": ", pf, ": missing field 'output_features'");
  bool have_action = false;
  for (auto it = out->begin(); it != out->end(); ++it) {
    if (!it.value().is_object() || it.value().value("type", json()) != "ACTION") continue;
    VLART_CHECK(!have_action, UnsupportedError, who, ": ", pf, ": output_features has two ACTION features");
    have_action = true;
    c.action_feature = it.key();
    c.action_dim = jsonf::feature_shape(who, it.value(), "output_features." + it.key(), 1, pf,
                                        "[action_dim] with action_dim >= 1")[0];
  }
  VLART_CHECK(have_action, FormatError, who, ": ", pf, ": output_features has no ACTION feature");

  c.max_state_dim = jsonf::size_or(who, p, "max_state_dim", pf, 32);
  c.max_action_dim = jsonf::size_or(who, p, "max_action_dim", pf, 32);
  c.chunk_size = jsonf::size_or(who, p, "chunk_size", pf, 50);
  c.n_action_steps = jsonf::size_or(who, p, "n_action_steps", pf, 50);
  c.num_steps = jsonf::size_or(who, p, "num_steps", pf, 10);
  c.tokenizer_max_length = jsonf::size_or(who, p, "prompt_max_length", pf, 256);
  c.predict_response = jsonf::field_or<bool>(who, p, "predict_response", pf, false);
  c.response_max_length = jsonf::size_or(who, p, "response_max_length", pf, 52);
  const int64_t one = 1;
  c.config_version = jsonf::int_at_least(who, p, "config_version", pf, 0, &one);  // null: opentau's current (1)
  VLART_CHECK(c.state_dim <= c.max_state_dim, FormatError, who, ": ", pf, ": state has ", c.state_dim,
              " values, more than max_state_dim ", c.max_state_dim);
  VLART_CHECK(c.action_dim <= c.max_action_dim, FormatError, who, ": ", pf, ": action has ", c.action_dim,
              " values, more than max_action_dim ", c.max_action_dim);
  VLART_CHECK(c.n_action_steps <= c.chunk_size, FormatError, who, ": ", pf, ": n_action_steps ", c.n_action_steps,
              " > chunk_size ", c.chunk_size);
  {
    auto r = p.find("resize_imgs_with_padding");
    VLART_CHECK(r != p.end() && r->is_array() && r->size() == 2 && (*r)[0].is_number_integer() &&
                    (*r)[1].is_number_integer() && (*r)[0].get<int64_t>() > 0 && (*r)[1].get<int64_t>() > 0,
                UnsupportedError, who, ": ", pf, ": field 'resize_imgs_with_padding' is ",
                r == p.end() ? std::string("absent") : r->dump(),
                "; vlart runs opentau's resize-with-padding to [height, width] (null, frames fed as they are, is not "
                "supported)");
    c.image_h = (*r)[0].get<int64_t>();
    c.image_w = (*r)[1].get<int64_t>();
    VLART_CHECK(c.image_h == c.image_w, UnsupportedError, who, ": ", pf, ": resize_imgs_with_padding ", c.image_h,
                "x", c.image_w, " is not square (SigLIP's position embedding is for a square grid)");
  }
  const std::string st = jsonf::field_or<std::string>(who, p, "state_type", pf, "continuous");
  VLART_CHECK(st == "discrete", UnsupportedError, who, ": ", pf, ": state_type is '", st,
              "'; vlart runs opentau's discrete state (the state as prompt tokens)");
  VLART_CHECK(!jsonf::field_or<bool>(who, p, "use_modality_embedding", pf, false), UnsupportedError, who, ": ", pf,
              ": use_modality_embedding is true (learned per-modality embeddings); vlart does not run it");
  VLART_CHECK(jsonf::field_or<int64_t>(who, p, "max_delay", pf, 0) == 0, UnsupportedError, who, ": ", pf,
              ": max_delay is not 0 (delayed action prefixes); vlart does not run it");
  VLART_CHECK(jsonf::field_or<int64_t>(who, p, "n_candidates", pf, 1) == 1, UnsupportedError, who, ": ", pf,
              ": n_candidates is not 1 (best-of-N action sampling with a critic); vlart does not run it");
  VLART_CHECK(!p.contains("delta_action_state_map") || p["delta_action_state_map"].is_null(), UnsupportedError, who,
              ": ", pf, ": delta_action_state_map is set (actions relative to the state); vlart runs absolute actions");
  VLART_CHECK(!p.contains("dataset_to_norm_index") || p["dataset_to_norm_index"].is_null() ||
                  (p["dataset_to_norm_index"].is_object() && p["dataset_to_norm_index"].size() <= 1),
              UnsupportedError, who, ": ", pf,
              ": dataset_to_norm_index names several datasets' statistics; vlart runs one set");
  // Normalisation modes: STATE and ACTION (VISUAL must be identity: the frames go in as [0, 1]).
  auto nm = p.find("normalization_mapping");
  VLART_CHECK(nm != p.end() && nm->is_object(), FormatError, who, ": ", pf,
              ": missing field 'normalization_mapping' ({VISUAL, STATE, ACTION: mode})");
  const std::string nwhere = pf + ": normalization_mapping";
  auto mode = [&](const char* k) {
    const std::string m = jsonf::field_or<std::string>(who, *nm, k, nwhere, "IDENTITY");
    VLART_CHECK(m == "IDENTITY" || m == "MEAN_STD" || m == "MIN_MAX" || m == "QUANTILE", UnsupportedError, who, ": ",
                nwhere, ".", k, " is '", m, "', expected IDENTITY, MEAN_STD, MIN_MAX or QUANTILE");
    return m;
  };
  VLART_CHECK(mode("VISUAL") == "IDENTITY", UnsupportedError, who, ": ", nwhere,
              ".VISUAL is not IDENTITY; vlart feeds opentau's frames unnormalised ([0, 1] then x * 2 - 1)");
  c.state_norm_mode = mode("STATE");
  c.action_norm_mode = mode("ACTION");
  read_sizes(c, dir, pf);
  return c;
}

}  // namespace vlart::pi0
