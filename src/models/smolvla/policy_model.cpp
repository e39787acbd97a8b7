#include "models/smolvla/policy_model.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "models/blocks/frames.h"
#include "models/smolvla/config.h"
#include "models/smolvla/model.h"
#include "models/smolvla/preprocess.h"
#include "models/smolvla/vision_reuse.h"
#include "models/smolvla/weights.h"
#include "vlart/error.h"
#include "vlart/tokenizer.h"

namespace vlart::smolvla {
namespace fs = std::filesystem;

namespace {

constexpr const char* kImagePrefix = "observation.images.";

double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

// An observation validated and preprocessed: model inputs plus the initial noise.
struct Prepared {
  PrefixInputs in;
  std::vector<std::string> cache_keys;  // per camera, when the vision cache is on
  std::vector<std::string> reuse_keys;  // per camera, when visual reuse is on
  std::vector<float> noise;
  double preprocess_ms = 0;
};

class SmolVLAPolicyModel final : public PolicyModel {
 public:
  SmolVLAPolicyModel(const std::string& dir, const ModelContext& ctx);

  const PolicyInfo& info() const override { return info_; }
  void validate(const Observation& obs, const std::string& where) const override { check(obs, where); }
  std::vector<ActionChunk> infer(const std::vector<InferItem>& items, const InferCaches& caches,
                                 const std::function<std::string(size_t)>& where) override;
  std::map<std::string, std::vector<double>> layer_cosines(const Observation& obs, const float* noise) override;
  void set_linear_observer(std::function<void(const std::string&, const Tensor&)> fn) override {
    model_->set_linear_observer(std::move(fn));
  }
  std::string profile_report() const override { return model_->profile_report(); }
  VisionReuseStats vision_reuse_stats() const override { return reuse_.stats(); }
  void clear_caches(const std::string& key_prefix) override { reuse_.clear(key_prefix); }

 private:
  std::vector<const Image*> check(const Observation& obs, const std::string& where) const;
  Prepared prepare(const Observation& obs, const float* noise, const InferCaches& caches,
                   const std::string& where);
  ActionChunk finish(const Prepared& p, const Tensor& img, double vision_ms);
  Tensor cached_vision(const Prepared& p, const InferCaches& caches);
  bool per_camera(const InferCaches& c) const { return (c.vision && c.vision->enabled()) || reuse_.enabled(); }

  SmolVLAConfig cfg_;
  NormStats stats_;
  std::unique_ptr<SmolVLAModel> model_;
  std::unique_ptr<Tokenizer> tok_;
  int32_t pad_id_ = -1;
  int64_t steps_ = 0;
  int max_batch_ = 1;
  VisionReuse reuse_;
  PolicyInfo info_;
};

SmolVLAPolicyModel::SmolVLAPolicyModel(const std::string& dir, const ModelContext& ctx) {
  const PolicyOptions& opts = *ctx.options;
  VLART_CHECK(opts.visual_tokens_keep >= 0, InvalidArgument,
              "Policy::load: visual_tokens_keep must be >= 0 (0 = off), got ", opts.visual_tokens_keep);
  const fs::path ckpt(dir);
  // Family check first: a config of another architecture is named as such, not reported as a
  // missing SmolVLM config.
  const std::string vlm_name = read_vlm_model_name(dir);
  const std::string vlm_dir = find_vlm_dir(dir, vlm_name, opts.vlm_config_dir);
  VLART_CHECK(!vlm_dir.empty() && fs::exists(fs::path(vlm_dir) / "config.json"), NotFoundError,
              "Policy::load: SmolVLM config.json not found (vlm_model_name '", vlm_name,
              "' is not a local directory); set PolicyOptions::vlm_config_dir");
  cfg_ = load_config(dir, (fs::path(vlm_dir) / "config.json").string());
  stats_ = load_norm_stats(dir, cfg_.state_dim, cfg_.action_dim);
  VLART_CHECK(cfg_.resize_h == cfg_.vision.image_size && cfg_.resize_w == cfg_.vision.image_size, UnsupportedError,
              "Policy::load: resize_imgs_with_padding ", cfg_.resize_h, "x", cfg_.resize_w,
              " differs from the vision image_size ", cfg_.vision.image_size);
  model_ = std::make_unique<SmolVLAModel>(cfg_, SmolVLAWeights::open(dir), opts.compute_dtype, ctx.placement,
                                          ctx.backend_names);
  max_batch_ = opts.max_batch;
  reuse_.configure(opts, cfg_);
  if (opts.profile) model_->set_profiling(true);
  if (opts.dequantize_weights) model_->set_dequantize_weights(true);
  {
    using AP = PolicyOptions::AttentionPrecision;
    const auto& qc = model_->quantization();
    AttnPrecision prec = AttnPrecision::kF32;
    if (opts.attention == AP::kInt16 || (opts.attention == AP::kAuto && qc && qc->attention == "int16"))
      prec = AttnPrecision::kInt16;
    if (opts.attention == AP::kInt8 || (opts.attention == AP::kAuto && qc && qc->attention == "int8"))
      prec = AttnPrecision::kInt8;
    model_->set_attention_precision(prec);
  }
  model_->set_visual_tokens_keep(opts.visual_tokens_keep);
  steps_ = opts.flow_steps > 0 ? opts.flow_steps : cfg_.num_steps;

  // Tokenizer: explicit override, then the checkpoint dir, then the VLM dir.
  blocks::FoundTokenizer ft =
      blocks::find_tokenizer(opts.tokenizer_path, {ckpt / "tokenizer.json", fs::path(vlm_dir) / "tokenizer.json"});
  tok_ = std::move(ft.tok);
  pad_id_ = ft.pad_id;

  info_.family = kFamilyName;
  for (const std::string& cam : cfg_.cameras)
    info_.cameras.push_back({cam, cam.substr(std::string(kImagePrefix).size()), cfg_.resize_h, cfg_.resize_w, false});
  info_.state_dim = cfg_.state_dim;
  info_.action_dim = cfg_.action_dim;
  info_.horizon = cfg_.chunk_size;
  info_.noise_shape = {cfg_.chunk_size, cfg_.max_action_dim};
  info_.flow_steps = steps_;
  info_.has_language = true;
  info_.emits_text = false;
  info_.stages = {"preprocess", "vision", "prefix", "denoise"};
  info_.compute_dtype = model_->compute_dtype();
  info_.backend = model_->backend_names();
}

// Validates `obs` and returns its frames in the checkpoint's camera order. `where` prefixes error
// messages ("Policy::infer" or "Policy::infer_batch: observation 3").
std::vector<const Image*> SmolVLAPolicyModel::check(const Observation& obs, const std::string& where) const {
  const SmolVLAConfig& c = cfg_;
  for (const auto& kv : obs.images) {
    const std::string full = kv.first.rfind(kImagePrefix, 0) == 0 ? kv.first : kImagePrefix + kv.first;
    bool known = false;
    for (const std::string& cam : c.cameras) known = known || cam == full;
    VLART_CHECK(known, InvalidArgument, where, ": unknown camera '", kv.first, "'");
  }
  std::vector<const Image*> frames;
  for (const std::string& cam : c.cameras) {
    auto it = obs.images.find(cam);
    if (it == obs.images.end()) it = obs.images.find(cam.substr(std::string(kImagePrefix).size()));
    VLART_CHECK(it != obs.images.end(), InvalidArgument, where, ": missing camera '", cam, "'");
    const Image& im = it->second;
    blocks::check_frame(im, cam, where);
    frames.push_back(&im);
  }
  VLART_CHECK(static_cast<int64_t>(obs.state.size()) == c.state_dim, InvalidArgument, where, ": state has ",
              obs.state.size(), " values, expected ", c.state_dim);
  for (size_t i = 0; i < obs.state.size(); ++i)
    VLART_CHECK(std::isfinite(obs.state[i]), InvalidArgument, where, ": state[", i, "] is not finite (",
                obs.state[i], ")");
  if (obs.token_ids) {
    VLART_CHECK(!obs.token_ids->empty(), InvalidArgument, where, ": token_ids is empty");
    VLART_CHECK(!c.pad_to_max_length || pad_id_ >= 0 ||
                    static_cast<int64_t>(obs.token_ids->size()) >= c.tokenizer_max_length,
                InvalidArgument, where, ": token_ids need padding but no pad token is known");
  } else {
    VLART_CHECK(tok_ != nullptr, NotFoundError, where, ": no tokenizer.json found (checkpoint dir, "
                "vlm_model_name dir); set PolicyOptions::tokenizer_path or pass Observation::token_ids");
    VLART_CHECK(pad_id_ >= 0 || !c.pad_to_max_length, NotFoundError, where,
                ": the tokenizer has no pad token but pad_language_to is max_length");
  }
  return frames;
}

// Validates `obs` (nothing runs on a bad observation) and builds the model inputs.
Prepared SmolVLAPolicyModel::prepare(const Observation& obs, const float* noise, const InferCaches& caches,
                                     const std::string& where) {
  const SmolVLAConfig& c = cfg_;
  const auto t0 = std::chrono::steady_clock::now();
  const std::vector<const Image*> frames = check(obs, where);
  Prepared p;
  if (caches.vision && caches.vision->enabled())
    for (size_t i = 0; i < frames.size(); ++i)
      p.cache_keys.push_back(obs.robot_id + '\x1f' + std::to_string(i) + ':' + std::to_string(frames[i]->height) +
                             'x' + std::to_string(frames[i]->width) + ':' + std::to_string(blocks::frame_hash(*frames[i])));
  if (reuse_.enabled())
    for (size_t i = 0; i < frames.size(); ++i) p.reuse_keys.push_back(obs.robot_id + '\x1f' + std::to_string(i));
  PrefixInputs& in = p.in;
  in.n_cams = static_cast<int64_t>(frames.size());
  for (const Image* im : frames) {
    std::vector<float> px = resize_with_pad(im->pixels(), im->height, im->width, c.resize_h, c.resize_w, im->stride());
    in.images.insert(in.images.end(), px.begin(), px.end());
  }
  in.state = normalize_state(obs.state, stats_.state_mean, stats_.state_std, c.max_state_dim);
  TaskCache* tcache = caches.task && caches.task->enabled() ? caches.task : nullptr;
  std::string task_key;
  if (tcache) {
    if (obs.token_ids) {
      task_key.assign(1, 'i');
      task_key.append(reinterpret_cast<const char*>(obs.token_ids->data()), obs.token_ids->size() * sizeof(int64_t));
    } else {
      task_key = 't' + obs.task;
    }
    if (std::shared_ptr<TaskEntry> e = tcache->find(task_key)) {
      in.lang_ids = e->ids;
      in.lang_mask = e->mask;
      in.lang_emb = e->emb;
    }
  }
  if (!in.lang_emb.defined()) {
    if (obs.token_ids) {
      in.lang_ids = *obs.token_ids;
      if (static_cast<int64_t>(in.lang_ids.size()) > c.tokenizer_max_length)
        in.lang_ids.resize(static_cast<size_t>(c.tokenizer_max_length));
      in.lang_mask.assign(in.lang_ids.size(), 1);
      if (c.pad_to_max_length) {
        VLART_CHECK(pad_id_ >= 0 || static_cast<int64_t>(in.lang_ids.size()) == c.tokenizer_max_length,
                    InvalidArgument, where, ": token_ids need padding but no pad token is known");
        while (static_cast<int64_t>(in.lang_ids.size()) < c.tokenizer_max_length) {
          in.lang_ids.push_back(pad_id_);
          in.lang_mask.push_back(0);
        }
      }
    } else {
      LangTokens lt = tokenize_task(*tok_, obs.task, c.tokenizer_max_length, c.pad_to_max_length, pad_id_);
      in.lang_ids = std::move(lt.ids);
      in.lang_mask = std::move(lt.mask);
    }
    in.lang_emb = model_->lang_embedding(in.lang_ids);
    if (tcache) {
      auto e = std::make_shared<TaskEntry>(TaskEntry{in.lang_ids, in.lang_mask, in.lang_emb});
      const size_t nb = task_key.size() + e->ids.size() * sizeof(int64_t) + e->mask.size() + e->emb.nbytes();
      tcache->insert(task_key, std::move(e), nb);
    }
  }
  VLART_CHECK(noise != nullptr, InternalError, where, ": no initial noise");
  p.noise.assign(noise, noise + info_.noise_numel());
  p.preprocess_ms = ms_since(t0);
  return p;
}

// Prefix + denoising for one prepared observation whose connector output is `img`.
ActionChunk SmolVLAPolicyModel::finish(const Prepared& p, const Tensor& img, double vision_ms) {
  const SmolVLAConfig& c = cfg_;
  ActionChunk out;
  out.timings.set("preprocess", p.preprocess_ms);
  out.timings.set("vision", vision_ms);
  auto t1 = std::chrono::steady_clock::now();
  PrefixState ps = model_->prefix_from_vision(p.in, img);
  const double prefix_ms = ms_since(t1);
  out.timings.set("prefix", prefix_ms);
  t1 = std::chrono::steady_clock::now();
  std::vector<float> x0 = model_->denoise(ps, p.noise, steps_);
  const double denoise_ms = ms_since(t1);
  out.timings.set("denoise", denoise_ms);
  out.horizon = c.chunk_size;
  out.action_dim = c.action_dim;
  out.data.resize(static_cast<size_t>(c.chunk_size * c.action_dim));
  for (int64_t r = 0; r < c.chunk_size; ++r)
    for (int64_t a = 0; a < c.action_dim; ++a) {
      const size_t ai = static_cast<size_t>(a);
      out.data[static_cast<size_t>(r * c.action_dim + a)] =
          x0[static_cast<size_t>(r * c.max_action_dim + a)] * stats_.action_std[ai] + stats_.action_mean[ai];
    }
  out.timings.total_ms = p.preprocess_ms + vision_ms + prefix_ms + denoise_ms;
  return out;
}

// Connector output [n_cams, T, D] of a prepared observation through the exact vision cache (camera
// by camera) and/or approximate visual reuse (the cameras it recomputes in full run together).
Tensor SmolVLAPolicyModel::cached_vision(const Prepared& p, const InferCaches& caches) {
  VisionFeatureCache* vcache = caches.vision && caches.vision->enabled() ? caches.vision : nullptr;
  const int64_t n = p.in.n_cams;
  const size_t per = p.in.images.size() / static_cast<size_t>(n);
  std::vector<Tensor> feats(static_cast<size_t>(n));
  std::vector<size_t> to_compute;  // cameras the exact cache does not hold
  for (size_t u = 0; u < feats.size(); ++u) {
    std::shared_ptr<Tensor> hit = vcache ? vcache->find(p.cache_keys[u]) : nullptr;
    if (hit)
      feats[u] = *hit;
    else
      to_compute.push_back(u);
  }
  if (reuse_.enabled() && !to_compute.empty()) {
    std::vector<std::string> keys;
    std::vector<const float*> px;
    for (size_t u : to_compute) {
      keys.push_back(p.reuse_keys[u]);
      px.push_back(p.in.images.data() + per * u);
    }
    std::vector<Tensor> f = reuse_.features(*model_, keys, px);
    for (size_t i = 0; i < to_compute.size(); ++i) feats[to_compute[i]] = std::move(f[i]);
  } else {
    for (size_t u : to_compute)
      feats[u] = model_->vision(std::vector<float>(p.in.images.begin() + static_cast<std::ptrdiff_t>(per * u),
                                                   p.in.images.begin() + static_cast<std::ptrdiff_t>(per * (u + 1))),
                                1);
  }
  if (vcache)
    for (size_t u : to_compute) vcache->insert(p.cache_keys[u], std::make_shared<Tensor>(feats[u]), feats[u].nbytes());
  Tensor out = Tensor::empty(Shape{n, feats[0].dim(1), feats[0].dim(2)}, feats[0].dtype());
  for (size_t u = 0; u < feats.size(); ++u)
    std::memcpy(static_cast<char*>(out.raw()) + u * feats[u].nbytes(), feats[u].raw(), feats[u].nbytes());
  return out;
}

std::vector<ActionChunk> SmolVLAPolicyModel::infer(const std::vector<InferItem>& items, const InferCaches& caches,
                                                   const std::function<std::string(size_t)>& where) {
  std::vector<ActionChunk> out;
  out.reserve(items.size());
  if (items.size() == 1) {  // Policy::infer: total_ms is the whole call
    const auto t0 = std::chrono::steady_clock::now();
    Prepared p = prepare(*items[0].obs, items[0].noise, caches, where(0));
    const auto t1 = std::chrono::steady_clock::now();
    Tensor img = per_camera(caches) ? cached_vision(p, caches) : model_->vision(p.in.images, p.in.n_cams);
    out.push_back(finish(p, img, ms_since(t1)));
    out.back().timings.total_ms = ms_since(t0);
    return out;
  }
  std::vector<Prepared> prep;
  prep.reserve(items.size());
  for (size_t i = 0; i < items.size(); ++i) prep.push_back(prepare(*items[i].obs, items[i].noise, caches, where(i)));
  if (per_camera(caches)) {  // frames go through the caches one by one
    for (const Prepared& p : prep) {
      const auto t1 = std::chrono::steady_clock::now();
      Tensor img = cached_vision(p, caches);
      out.push_back(finish(p, img, ms_since(t1)));
    }
    return out;
  }
  const size_t group = static_cast<size_t>(std::max(1, max_batch_));
  for (size_t b0 = 0; b0 < prep.size(); b0 += group) {
    const size_t b1 = std::min(prep.size(), b0 + group);
    const int64_t cams = prep[b0].in.n_cams;
    std::vector<float> px;
    px.reserve(prep[b0].in.images.size() * (b1 - b0));
    for (size_t i = b0; i < b1; ++i) px.insert(px.end(), prep[i].in.images.begin(), prep[i].in.images.end());
    const auto t1 = std::chrono::steady_clock::now();
    Tensor img = model_->vision(px, cams * static_cast<int64_t>(b1 - b0));
    const double vision_ms = ms_since(t1);
    for (size_t i = b0; i < b1; ++i) {
      const int64_t r0 = static_cast<int64_t>(i - b0) * cams;
      out.push_back(finish(prep[i], img.slice(0, r0, r0 + cams), vision_ms));
    }
  }
  return out;
}

std::map<std::string, std::vector<double>> SmolVLAPolicyModel::layer_cosines(const Observation& obs,
                                                                              const float* noise) {
  const Prepared p = prepare(obs, noise, InferCaches{}, "Policy::layer_cosines");
  SmolVLAModel::LayerCosines c = model_->layer_cosines(p.in, p.noise, steps_);
  return {{"vlm", std::move(c.vlm)}, {"expert", std::move(c.expert)}};
}

}  // namespace

std::unique_ptr<PolicyModel> load_policy_model(const std::string& dir, const ModelContext& ctx) {
  return std::make_unique<SmolVLAPolicyModel>(dir, ctx);
}

}  // namespace vlart::smolvla
