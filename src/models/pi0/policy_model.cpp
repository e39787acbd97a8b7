#include "models/pi0/policy_model.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>

#include "models/blocks/frames.h"
#include "models/blocks/image.h"
#include "models/blocks/lerobot_stats.h"
#include "models/blocks/prompt.h"
#include "models/pi0/config.h"
#include "models/pi0/model.h"
#include "vlart/error.h"
#include "vlart/tokenizer.h"

namespace vlart::pi0 {
namespace fs = std::filesystem;

namespace {

double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

// Python's str.strip() for the whitespace a task string carries.
std::string strip(const std::string& s) {
  const char* ws = " \t\n\r\v\f";
  const size_t a = s.find_first_not_of(ws);
  if (a == std::string::npos) return "";
  return s.substr(a, s.find_last_not_of(ws) - a + 1);
}

}  // namespace

// pi0.5's prompt (LeRobot's Pi05PrepareStateTokenizerProcessorStep): the normalised state cut into
// 256 bins over [-1, 1] (np.digitize against linspace(-1, 1, 257)[:-1], minus 1: below -1 gives -1,
// from the last edge up 255), written after the cleaned task.
std::string pi05_prompt(const std::string& task, const std::vector<float>& state_norm) {
  std::string t = strip(task);
  for (char& ch : t)
    if (ch == '_' || ch == '\n') ch = ' ';
  std::string p = "Task: " + t + ", State: ";
  for (size_t i = 0; i < state_norm.size(); ++i) {
    const double x = static_cast<double>(state_norm[i]);
    // bins[k] = -1 + k / 128 exactly in double; digitize = #edges <= x.
    int64_t bin;
    if (x < -1.0) bin = -1;
    else bin = std::min<int64_t>(255, static_cast<int64_t>(std::floor((x + 1.0) * 128.0)));
    p += (i ? " " : "") + std::to_string(bin);
  }
  return p + ";\nAction: ";
}

std::string opentau_prompt(const std::string& task, const std::vector<float>& state_norm) {
  std::string p = "Task: " + task + ", State: ";
  for (size_t i = 0; i < state_norm.size(); ++i) {
    const float c = std::min(1.f, std::max(-1.f, state_norm[i]));
    volatile float v = c + 1.f;  // torch's two float32 roundings, then truncation (.long())
    const float sc = v * 128.f;
    const int64_t bin = std::min<int64_t>(255, std::max<int64_t>(0, static_cast<int64_t>(sc)));
    p += (i ? " " : "") + std::to_string(bin);
  }
  return p + ";\n";
}

namespace {

std::string short_name(const std::string& cam) {
  return cam.rfind(kImagePrefix, 0) == 0 ? cam.substr(std::string(kImagePrefix).size()) : cam;
}

// opentau's Normalize / Unnormalize (policies/normalize.py) for one feature, float32 in its operation
// order. Statistics from model.safetensors ("<module>.buffer_<feature>.<stat>", [1, dim]); a zero
// spread (|std| or |hi - lo| < eps) is snapped to 1; from config_version 1 eps = 1e-6 and a
// zero-range band is centred on 0.
class OpentauNormalizer {
 public:
  OpentauNormalizer() = default;
  OpentauNormalizer(const PolicyWeights& w, const std::string& module, const std::string& feature,
                    const std::string& mode, int64_t dim, int64_t config_version)
      : dim_(dim), eps_(config_version >= 1 ? 1e-6f : 1e-8f), centre_(config_version >= 1) {
    if (mode == "IDENTITY") return;
    mean_std_ = mode == "MEAN_STD";
    std::string key = feature;
    for (char& ch : key)
      if (ch == '.') ch = '_';
    const std::string base = module + ".buffer_" + key + ".";
    const char* lo_name = mean_std_ ? "mean" : mode == "MIN_MAX" ? "min" : "q01";
    const char* hi_name = mean_std_ ? "std" : mode == "MIN_MAX" ? "max" : "q99";
    lo_ = stat(w, base + lo_name);
    hi_ = stat(w, base + hi_name);
    on_ = true;
  }
  void normalize(const float* x, float* y) const {
    for (int64_t i = 0; i < dim_; ++i) {
      if (!on_) {
        y[i] = x[i];
        continue;
      }
      const size_t u = static_cast<size_t>(i);
      if (mean_std_) {
        const float sd = std::fabs(hi_[u]) < eps_ ? 1.f : hi_[u];
        volatile float dev = x[i] - lo_[u];
        y[i] = dev / (sd + eps_);
      } else {
        const float r = hi_[u] - lo_[u], d = std::fabs(r) < eps_ ? 1.f : r;
        volatile float dev = x[i] - lo_[u];
        if (centre_) dev = dev + 0.5f * (d - r);
        volatile float q = dev / (d + eps_);
        volatile float q2 = q * 2.f;
        y[i] = q2 - 1.f;
      }
    }
  }
  void unnormalize(const float* x, float* y) const {
    for (int64_t i = 0; i < dim_; ++i) {
      if (!on_) {
        y[i] = x[i];
        continue;
      }
      const size_t u = static_cast<size_t>(i);
      if (mean_std_) {
        const float sd = std::fabs(hi_[u]) < eps_ ? 1.f : hi_[u];
        volatile float m = x[i] * (sd + eps_);
        y[i] = m + lo_[u];
      } else {
        const float r = hi_[u] - lo_[u], d = std::fabs(r) < eps_ ? 1.f : r;
        volatile float h = (x[i] + 1.f) / 2.f;
        volatile float m = h * (d + eps_);
        volatile float o = m + lo_[u];
        if (centre_) o = o - 0.5f * (d - r);
        y[i] = o;
      }
    }
  }

 private:
  std::vector<float> stat(const PolicyWeights& w, const std::string& name) const {
    VLART_CHECK(w.has(name), FormatError, "opentau pi05: ", w.dir(), "/model.safetensors has no statistics tensor '",
                name, "' (the normalization_mapping mode needs it)");
    const Tensor t = w.get(name);
    VLART_CHECK(t.numel() == dim_ && (t.rank() == 1 || (t.rank() == 2 && t.dim(0) == 1)), FormatError,
                "opentau pi05: ", w.dir(), "/model.safetensors: statistics tensor '", name, "' has shape ",
                t.shape().str(), ", expected [1, ", dim_, "] (one dataset's statistics of the feature)");
    std::vector<float> v = t.to_float_vector();
    for (size_t i = 0; i < v.size(); ++i)
      VLART_CHECK(std::isfinite(v[i]), FormatError, "opentau pi05: ", w.dir(), "/model.safetensors: '", name, "'[",
                  i, "] is not finite (", v[i], ")");
    return v;
  }
  int64_t dim_ = 0;
  float eps_ = 1e-6f;
  bool centre_ = true, on_ = false, mean_std_ = false;
  std::vector<float> lo_, hi_;  // MEAN_STD: mean, std; else the low and high statistic
};

struct Prepared {
  std::vector<float> images;        // present cameras, [n, 3, S, S]
  std::vector<size_t> cams;         // their indices in the checkpoint's camera list
  std::vector<std::string> cache_keys;
  std::vector<int64_t> ids;
  std::vector<uint8_t> mask;
  std::vector<uint8_t> block;  // opentau with a response: 1 on the causal "Response: " indicator tokens
  Tensor lang_emb;
  std::vector<float> state;  // pi0: normalised, padded to max_state_dim
  std::vector<float> noise;
  double preprocess_ms = 0;
};

// Reasoning reuse (PolicyOptions::reason_every): one robot's last decoded response.
struct ReasonEntry {
  std::string task;             // the task (or token ids) it was decoded for
  std::vector<size_t> cams;     // the cameras present then, and their resized frames
  std::vector<float> frames;
  ResponseKV kv;
  std::vector<int32_t> tokens;
  std::string text;
  int64_t uses = 0;             // calls that used it, the decoding one included
};

class Pi0PolicyModel final : public PolicyModel {
 public:
  Pi0PolicyModel(const std::string& dir, const ModelContext& ctx);
  const PolicyInfo& info() const override { return info_; }
  void validate(const Observation& obs, const std::string& where) const override { (void)frames(obs, where); }
  std::vector<ActionChunk> infer(const std::vector<InferItem>& items, const InferCaches& caches,
                                 const std::function<std::string(size_t)>& where) override;
  void set_linear_observer(std::function<void(const std::string&, const Tensor&)> fn) override {
    model_->set_linear_observer(std::move(fn));
  }
  std::string profile_report() const override { return model_->profile_report(); }
  void clear_caches(const std::string& key_prefix) override {
    std::lock_guard<std::mutex> l(reason_m_);
    for (auto it = reason_.begin(); it != reason_.end();)
      it = it->first.rfind(key_prefix, 0) == 0 ? reason_.erase(it) : std::next(it);
  }

 private:
  // The present cameras' frames in checkpoint order (null where absent), after validating `obs`.
  std::vector<const Image*> frames(const Observation& obs, const std::string& where) const;
  Prepared prepare(const Observation& obs, const float* noise, const InferCaches& caches, const std::string& where);
  Tensor vision(const Prepared& p, const InferCaches& caches);

  void normalize_state(const std::vector<float>& x, std::vector<float>& y) const;
  // The response for this call: decoded (and kept when reuse is on) or the robot's kept one attached.
  void respond(const Observation& obs, const Prepared& p, PrefixState& ps, ActionChunk& c);
  void unnormalize_actions(const float* x, float* y) const;
  std::string response_text(const std::vector<int32_t>& ids) const;

  Pi0Config cfg_;
  blocks::FeatureNormalizer state_norm_, action_norm_;   // LeRobot
  OpentauNormalizer ot_state_norm_, ot_action_norm_;     // opentau
  std::unique_ptr<Pi0Model> model_;
  std::unique_ptr<Tokenizer> tok_;
  int32_t pad_id_ = -1;
  std::vector<int64_t> indicator_;  // opentau predict_response: "Response: " without special tokens
  DecodeSpec decode_;
  int64_t reason_every_ = 0;
  size_t prompt_keep_ = 0;  // opentau: prompt tokens kept of prompt_max_length (largest so far)
  float reason_scene_threshold_ = 0.f;
  std::mutex reason_m_;  // reason_: used on the compute thread, cleared from any
  std::map<std::string, std::shared_ptr<ReasonEntry>> reason_;  // by robot_id + '\x1f' 
  int64_t steps_ = 0;
  PolicyInfo info_;
};

Pi0PolicyModel::Pi0PolicyModel(const std::string& dir, const ModelContext& ctx) {
  const PolicyOptions& opts = *ctx.options;
  cfg_ = is_opentau_config(dir) ? load_opentau_config(dir) : load_config(dir);
  if (cfg_.opentau) {
    // opentau keeps its statistics in model.safetensors (normalize_inputs / unnormalize_outputs).
    const PolicyWeights all = PolicyWeights::open(dir, "", "opentau pi05");
    ot_state_norm_ = OpentauNormalizer(all, "normalize_inputs", cfg_.state_feature, cfg_.state_norm_mode,
                                       cfg_.state_dim, cfg_.config_version);
    ot_action_norm_ = OpentauNormalizer(all, "unnormalize_outputs", cfg_.action_feature, cfg_.action_norm_mode,
                                        cfg_.action_dim, cfg_.config_version);
  } else {
    const auto pre = blocks::read_lerobot_norm_step(dir, "policy_preprocessor.json", "normalizer_processor");
    const auto post = blocks::read_lerobot_norm_step(dir, "policy_postprocessor.json", "unnormalizer_processor");
    VLART_CHECK(pre && post, NotFoundError, "pi0: ", dir,
                " lacks policy_preprocessor.json / policy_postprocessor.json with the normaliser steps "
                "(LeRobot's save_pretrained of the pre/post-processors writes them)");
    state_norm_ = pre->normalizer(cfg_.state_feature, cfg_.state_dim);
    action_norm_ = post->normalizer("action", cfg_.action_dim);
  }
  model_ = std::make_unique<Pi0Model>(cfg_, PolicyWeights::open(dir, kPrefix, "pi0"), opts.compute_dtype,
                                      ctx.placement, ctx.backend_names);
  if (opts.dequantize_weights) model_->set_dequantize_weights(true);
  if (cfg_.opentau) model_->set_prefix_stage_capacity(1);
  if (opts.profile) model_->set_profiling(true);
  steps_ = opts.flow_steps > 0 ? opts.flow_steps : cfg_.num_steps;

  // The PaliGemma tokenizer: the override, then beside the checkpoint (LeRobot names the hub repo
  // google/paligemma-3b-pt-224 and downloads it; vlart never downloads).
  blocks::FoundTokenizer ft = blocks::find_tokenizer(
      opts.tokenizer_path, {fs::path(dir) / "tokenizer.json", fs::path(dir) / "tokenizer" / "tokenizer.json"}, "<pad>");
  tok_ = std::move(ft.tok);
  pad_id_ = ft.pad_id;
  if (cfg_.predict_response) {
    // opentau: bos_token_id, convert_tokens_to_ids(eos_token), pad_token_id of the PaliGemma tokenizer.
    VLART_CHECK(tok_ != nullptr, NotFoundError, "opentau pi05: ", dir,
                ": predict_response decodes text, which needs the PaliGemma tokenizer.json (checkpoint dir or its "
                "tokenizer/ folder, or PolicyOptions::tokenizer_path)");
    const std::optional<int32_t> bos = tok_->token_to_id("<bos>"), eos = tok_->token_to_id("<eos>");
    VLART_CHECK(bos && eos && pad_id_ >= 0, FormatError, "opentau pi05: the tokenizer lacks ",
                !bos ? "'<bos>'" : !eos ? "'<eos>'" : "'<pad>'", " (the response decode starts at <bos> and ends at "
                "<eos> / <pad>)");
    VLART_CHECK(opts.response_max_tokens >= 0 && opts.response_max_tokens <= cfg_.response_max_length,
                InvalidArgument, "opentau pi05: response_max_tokens ", opts.response_max_tokens,
                " is outside [0, response_max_length ", cfg_.response_max_length, "] (0 = the checkpoint's)");
    VLART_CHECK(opts.reason_every >= 0 && opts.reason_scene_threshold >= 0.f, InvalidArgument,
                "opentau pi05: reason_every (", opts.reason_every, ") and reason_scene_threshold (",
                opts.reason_scene_threshold, ") must be >= 0");
    decode_.max_len = opts.response_max_tokens > 0 ? opts.response_max_tokens : cfg_.response_max_length;
    decode_.stop_at_eos = opts.response_stop_at_eos;
    VLART_CHECK(opts.decode_weights.empty() || opts.decode_weights == "int8", InvalidArgument,
                "opentau pi05: decode_weights '", opts.decode_weights, "' is not one of '' (as stored), 'int8'");
    model_->set_decode_int8(opts.decode_weights == "int8");
    reason_every_ = opts.reason_every;
    reason_scene_threshold_ = opts.reason_scene_threshold;
    decode_.bos = *bos;
    decode_.eos = *eos;
    decode_.pad = pad_id_;
    for (int32_t id : tok_->encode("Response: ", /*add_special_tokens=*/false)) indicator_.push_back(id);
    for (int64_t id : indicator_)
      VLART_CHECK(id >= 0 && id < cfg_.vocab, FormatError, "opentau pi05: the tokenizer encodes 'Response: ' to id ",
                  id, ", outside the model's vocabulary [0, ", cfg_.vocab, ")");
  }

  const PolicyOptions defaults;
  VLART_CHECK(cfg_.predict_response ||
                  (opts.response_max_tokens == defaults.response_max_tokens && opts.decode_weights.empty() &&
                   opts.response_stop_at_eos == defaults.response_stop_at_eos && opts.reason_every == defaults.reason_every &&
                   opts.reason_scene_threshold == defaults.reason_scene_threshold),
              InvalidArgument, "opentau pi05: ", dir,
              " has predict_response false (no text response): the response_* and reason_* options do not apply");
  info_.family = cfg_.opentau ? "opentau_pi05" : cfg_.type;
  for (const std::string& cam : cfg_.cameras)
    info_.cameras.push_back({cam, short_name(cam), cfg_.image_h, cfg_.image_w, true});
  info_.state_dim = cfg_.state_dim;
  info_.action_dim = cfg_.action_dim;
  info_.horizon = cfg_.chunk_size;
  info_.noise_shape = {cfg_.chunk_size, cfg_.max_action_dim};
  info_.flow_steps = steps_;
  info_.has_language = true;
  info_.emits_text = cfg_.predict_response;
  info_.stages = cfg_.predict_response ? std::vector<std::string>{"preprocess", "vision", "prefix", "decode", "denoise"}
                                       : std::vector<std::string>{"preprocess", "vision", "prefix", "denoise"};
  info_.compute_dtype = model_->compute_dtype();
  info_.backend = model_->backend_names();
}

std::vector<const Image*> Pi0PolicyModel::frames(const Observation& obs, const std::string& where) const {
  for (const auto& kv : obs.images) {
    bool known = false;
    for (const std::string& cam : cfg_.cameras) known = known || cam == kv.first || short_name(cam) == kv.first;
    VLART_CHECK(known, InvalidArgument, where, ": unknown camera '", kv.first, "'");
  }
  std::vector<const Image*> out;
  bool any = false;
  for (const std::string& cam : cfg_.cameras) {
    auto it = obs.images.find(cam);
    if (it == obs.images.end()) it = obs.images.find(short_name(cam));
    if (it == obs.images.end()) {
      out.push_back(nullptr);  // LeRobot: an all -1 image with mask 0, i.e. tokens nothing attends to
      continue;
    }
    blocks::check_frame(it->second, cam, where);
    out.push_back(&it->second);
    any = true;
  }
  VLART_CHECK(any, InvalidArgument, where, ": no camera frame given (", cfg_.type, " needs at least one of ",
              cfg_.cameras.size(), " cameras)");
  VLART_CHECK(static_cast<int64_t>(obs.state.size()) == cfg_.state_dim, InvalidArgument, where, ": state has ",
              obs.state.size(), " values, expected ", cfg_.state_dim);
  for (size_t i = 0; i < obs.state.size(); ++i)
    VLART_CHECK(std::isfinite(obs.state[i]), InvalidArgument, where, ": state[", i, "] is not finite (",
                obs.state[i], ")");
  if (obs.token_ids) {
    VLART_CHECK(!obs.token_ids->empty(), InvalidArgument, where, ": token_ids is empty");
    for (size_t i = 0; i < obs.token_ids->size(); ++i)
      VLART_CHECK((*obs.token_ids)[i] >= 0 && (*obs.token_ids)[i] < cfg_.vocab, InvalidArgument, where,
                  ": token_ids[", i, "] = ", (*obs.token_ids)[i], " is outside the vocabulary [0, ", cfg_.vocab, ")");
    VLART_CHECK(pad_id_ >= 0 || static_cast<int64_t>(obs.token_ids->size()) >= cfg_.tokenizer_max_length,
                InvalidArgument, where, ": token_ids need padding but no pad token is known");
  } else {
    VLART_CHECK(tok_ != nullptr, NotFoundError, where,
                ": no PaliGemma tokenizer.json found (checkpoint dir or its tokenizer/ folder); set "
                "PolicyOptions::tokenizer_path or pass Observation::token_ids");
    VLART_CHECK(pad_id_ >= 0, NotFoundError, where, ": the tokenizer has no pad token ('<pad>')");
  }
  return out;
}

Prepared Pi0PolicyModel::prepare(const Observation& obs, const float* noise, const InferCaches& caches,
                                 const std::string& where) {
  const auto t0 = std::chrono::steady_clock::now();
  const std::vector<const Image*> fr = frames(obs, where);
  Prepared p;
  blocks::ResizePad rp;
  rp.out_h = cfg_.image_h;
  rp.out_w = cfg_.image_w;
  // LeRobot 0.6.1 centres the resized frame, opentau puts it at the bottom right (padding top and
  // left); both pad float frames with 0 (black), then map x * 2 - 1.
  rp.place = cfg_.opentau ? blocks::PadPlace::kTopLeft : blocks::PadPlace::kCenter;
  rp.pad = 0.f;
  for (size_t i = 0; i < fr.size(); ++i) {
    if (!fr[i]) continue;
    const Image& im = *fr[i];
    std::vector<float> px = blocks::resize_with_pad(im.pixels(), im.height, im.width, im.stride(), rp);
    p.images.insert(p.images.end(), px.begin(), px.end());
    p.cams.push_back(i);
    if (caches.vision && caches.vision->enabled())
      p.cache_keys.push_back(obs.robot_id + '\x1f' + std::to_string(i) + ':' + std::to_string(im.height) + 'x' +
                             std::to_string(im.width) + ':' + std::to_string(blocks::frame_hash(im)));
  }
  std::vector<float> sn(static_cast<size_t>(cfg_.state_dim));
  normalize_state(obs.state, sn);
  std::string text;
  if (cfg_.opentau) {
    text = opentau_prompt(obs.task, sn);
  } else if (cfg_.pi05) {
    text = pi05_prompt(obs.task, sn);
  } else {
    p.state.assign(static_cast<size_t>(cfg_.max_state_dim), 0.f);
    std::copy(sn.begin(), sn.end(), p.state.begin());
    text = blocks::with_trailing_newline(obs.task);  // LeRobot's Pi0NewLineProcessor
  }
  TaskCache* tcache = caches.task && caches.task->enabled() ? caches.task : nullptr;
  std::string key;
  if (obs.token_ids) {
    key.assign(1, 'i');
    key.append(reinterpret_cast<const char*>(obs.token_ids->data()), obs.token_ids->size() * sizeof(int64_t));
  } else {
    key = 't' + text;
  }
  // opentau: the entry's length depends on the prompt length kept so far (it only grows).
  const std::string base_key = key;
  if (cfg_.opentau) key += '\x1f' + std::to_string(prompt_keep_);
  if (tcache)
    if (std::shared_ptr<TaskEntry> e = tcache->find(key)) {
      p.ids = e->ids;
      p.mask = e->mask;
      p.lang_emb = e->emb;
    }
  if (!p.lang_emb.defined()) {
    if (obs.token_ids) {
      p.ids = *obs.token_ids;
      if (static_cast<int64_t>(p.ids.size()) > cfg_.tokenizer_max_length)
        p.ids.resize(static_cast<size_t>(cfg_.tokenizer_max_length));
      p.mask.assign(p.ids.size(), 1);
      while (static_cast<int64_t>(p.ids.size()) < cfg_.tokenizer_max_length) {
        p.ids.push_back(pad_id_);
        p.mask.push_back(0);
      }
    } else {
      blocks::PromptTokens t = blocks::tokenize_prompt(*tok_, text, cfg_.tokenizer_max_length, true, pad_id_);
      p.ids = std::move(t.ids);
      p.mask = std::move(t.mask);
    }
    if (cfg_.opentau) {
      // The prompt is right-padded to prompt_max_length (256 by default) and the padding is masked:
      // nothing attends to it and positions skip it, so cutting it changes no result. Cut to a
      // multiple of 32 tokens (a few prefix graphs instead of one per prompt length).
      size_t real = 0;
      while (real < p.mask.size() && p.mask[real]) ++real;
      // The kept length only grows (one prefix graph, rebuilt when a longer prompt arrives).
      const size_t keep = std::min(p.mask.size(), std::max(prompt_keep_, (real + 31) / 32 * 32));
      prompt_keep_ = keep;
      if (std::all_of(p.mask.begin() + static_cast<std::ptrdiff_t>(real), p.mask.end(), [](uint8_t m) { return m == 0; })) {
        p.ids.resize(keep);
        p.mask.resize(keep);
      }
    }
    // opentau's prefix closes with the "Response: " indicator: real tokens, each its own block.
    p.ids.insert(p.ids.end(), indicator_.begin(), indicator_.end());
    p.mask.resize(p.ids.size(), 1);
    p.lang_emb = model_->lang_embedding(p.ids);
    if (tcache) {
      auto e = std::make_shared<TaskEntry>(TaskEntry{p.ids, p.mask, p.lang_emb});  // indicator included
      const size_t nb = key.size() + e->ids.size() * sizeof(int64_t) + e->mask.size() + e->emb.nbytes();
      if (cfg_.opentau) key = base_key + '\x1f' + std::to_string(prompt_keep_);
      tcache->insert(key, std::move(e), nb);
    }
  }
  if (!indicator_.empty()) {
    p.block.assign(p.ids.size(), 0);
    std::fill(p.block.end() - static_cast<std::ptrdiff_t>(indicator_.size()), p.block.end(), uint8_t{1});
  }
  VLART_CHECK(noise != nullptr, InternalError, where, ": no initial noise");
  p.noise.assign(noise, noise + info_.noise_numel());
  p.preprocess_ms = ms_since(t0);
  return p;
}

// Projector output of the present cameras [n, T, D], camera by camera through the exact vision cache
// when it is on, else all frames in one run.
Tensor Pi0PolicyModel::vision(const Prepared& p, const InferCaches& caches) {
  const int64_t n = static_cast<int64_t>(p.cams.size());
  VisionFeatureCache* vc = caches.vision && caches.vision->enabled() ? caches.vision : nullptr;
  if (!vc) return model_->vision(p.images, n);
  const size_t per = p.images.size() / static_cast<size_t>(n);
  std::vector<Tensor> feats;
  for (size_t u = 0; u < p.cams.size(); ++u) {
    if (std::shared_ptr<Tensor> hit = vc->find(p.cache_keys[u])) {
      feats.push_back(*hit);
      continue;
    }
    Tensor f = model_->vision(std::vector<float>(p.images.begin() + static_cast<std::ptrdiff_t>(per * u),
                                                 p.images.begin() + static_cast<std::ptrdiff_t>(per * (u + 1))),
                              1);
    vc->insert(p.cache_keys[u], std::make_shared<Tensor>(f), f.nbytes());
    feats.push_back(std::move(f));
  }
  Tensor out = Tensor::empty(Shape{n, feats[0].dim(1), feats[0].dim(2)}, feats[0].dtype());
  for (size_t u = 0; u < feats.size(); ++u)
    std::memcpy(static_cast<char*>(out.raw()) + u * feats[u].nbytes(), feats[u].raw(), feats[u].nbytes());
  return out;
}

std::vector<ActionChunk> Pi0PolicyModel::infer(const std::vector<InferItem>& items, const InferCaches& caches,
                                               const std::function<std::string(size_t)>& where) {
  std::vector<ActionChunk> out;
  for (size_t i = 0; i < items.size(); ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    const Prepared p = prepare(*items[i].obs, items[i].noise, caches, where(i));
    ActionChunk c;
    c.timings.set("preprocess", p.preprocess_ms);
    auto t1 = std::chrono::steady_clock::now();
    const Tensor img = vision(p, caches);
    c.timings.set("vision", ms_since(t1));
    t1 = std::chrono::steady_clock::now();
    PrefixState ps = model_->prefix(img, p.lang_emb, p.mask, p.block.empty() ? nullptr : &p.block);
    c.timings.set("prefix", ms_since(t1));
    if (cfg_.predict_response) {
      t1 = std::chrono::steady_clock::now();
      respond(*items[i].obs, p, ps, c);
      c.timings.set("decode", ms_since(t1));
    }
    t1 = std::chrono::steady_clock::now();
    const std::vector<float> x0 = model_->denoise(ps, p.state, p.noise, steps_);
    c.timings.set("denoise", ms_since(t1));
    const int64_t C = cfg_.chunk_size, A = cfg_.action_dim, M = cfg_.max_action_dim;
    c.horizon = C;
    c.action_dim = A;
    c.data.resize(static_cast<size_t>(C * A));
    for (int64_t r = 0; r < C; ++r) unnormalize_actions(x0.data() + r * M, c.data.data() + r * A);
    c.timings.total_ms = ms_since(t0);
    out.push_back(std::move(c));
  }
  return out;
}

void Pi0PolicyModel::respond(const Observation& obs, const Prepared& p, PrefixState& ps, ActionChunk& c) {
  const bool reuse_on = reason_every_ > 1;
  const std::string key = obs.robot_id + '\x1f';
  const std::string task = obs.token_ids ? std::string("i") + std::to_string(obs.token_ids->size()) + ':' +
                                               std::string(reinterpret_cast<const char*>(obs.token_ids->data()),
                                                           obs.token_ids->size() * sizeof(int64_t))
                                         : 't' + obs.task;
  std::shared_ptr<ReasonEntry> e;
  if (reuse_on) {
    std::lock_guard<std::mutex> l(reason_m_);
    auto it = reason_.find(key);
    if (it != reason_.end()) e = it->second;
  }
  bool reuse = e && e->uses < reason_every_ && e->task == task && e->cams == p.cams &&
               e->frames.size() == p.images.size() && e->kv.valid.size() <= static_cast<size_t>(decode_.max_len);
  if (reuse && reason_scene_threshold_ > 0.f) {
    // Mean absolute change of the resized frames since the decode, on the 0..255 scale ([-1, 1] * 127.5).
    double sum = 0;
    for (size_t i = 0; i < p.images.size(); ++i) sum += std::fabs(static_cast<double>(p.images[i]) - e->frames[i]);
    reuse = sum / static_cast<double>(std::max<size_t>(1, p.images.size())) * 127.5 <= reason_scene_threshold_;
  }
  if (reuse) {
    model_->attach_response(ps, e->kv, decode_.max_len);
    ++e->uses;
    c.tokens = e->tokens;
    c.text = e->text;
    return;
  }
  auto fresh = reuse_on ? std::make_shared<ReasonEntry>() : nullptr;
  const DecodeResult r = model_->decode(ps, decode_, fresh ? &fresh->kv : nullptr);
  // The response as the model wrote it: the tokens after the fed <bos>, up to and with <eos>.
  for (size_t s = 1; s < r.tokens.size() && r.valid[s]; ++s) c.tokens.push_back(r.tokens[s]);
  c.text = response_text(c.tokens);
  if (fresh) {
    fresh->task = task;
    fresh->cams = p.cams;
    fresh->frames = p.images;
    fresh->tokens = c.tokens;
    fresh->text = c.text;
    fresh->uses = 1;
    std::lock_guard<std::mutex> l(reason_m_);
    reason_[key] = std::move(fresh);
  }
}

void Pi0PolicyModel::normalize_state(const std::vector<float>& x, std::vector<float>& y) const {
  if (cfg_.opentau) ot_state_norm_.normalize(x.data(), y.data());
  else state_norm_.normalize(x.data(), y.data(), 1);
}
void Pi0PolicyModel::unnormalize_actions(const float* x, float* y) const {
  if (cfg_.opentau) ot_action_norm_.unnormalize(x, y);
  else action_norm_.unnormalize(x, y, 1);
}

// The decoded response as text, special tokens (<eos>) left out; ids the tokenizer does not know (a
// checkpoint whose vocabulary is larger than its tokenizer's) are written as <id N>.
std::string Pi0PolicyModel::response_text(const std::vector<int32_t>& ids) const {
  std::string out;
  std::vector<int32_t> run;
  auto flush = [&] {
    if (!run.empty()) out += tok_->decode(run, /*skip_special_tokens=*/true);
    run.clear();
  };
  for (int32_t id : ids) {
    if (id >= 0 && static_cast<size_t>(id) < tok_->id_upper_bound() && tok_->id_to_token(id)) {
      run.push_back(id);
      continue;
    }
    flush();
    out += "<id " + std::to_string(id) + ">";
  }
  flush();
  return out;
}

}  // namespace

std::unique_ptr<PolicyModel> load_policy_model(const std::string& dir, const ModelContext& ctx) {
  return std::make_unique<Pi0PolicyModel>(dir, ctx);
}

}  // namespace vlart::pi0
