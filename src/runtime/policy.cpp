#include "vlart/policy.h"
#include "runtime/policy_internal.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>

#include "core/log.h"
#include "models/smolvla/config.h"
#include "models/smolvla/model.h"
#include "models/smolvla/preprocess.h"
#include "models/smolvla/weights.h"
#include "runtime/compute_thread.h"
#include "runtime/lru_cache.h"
#include "runtime/telemetry.h"
#include "runtime/vision_reuse.h"
#include "vlart/error.h"
#include "vlart/tokenizer.h"

namespace vlart {
namespace fs = std::filesystem;
using smolvla::SmolVLAConfig;

namespace {

constexpr const char* kImagePrefix = "observation.images.";

double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

// Pad token named by tokenizer_config.json / special_tokens_map.json next to tokenizer.json
// (a plain string or an AddedToken object); -1 when none is found.
int32_t find_pad_id(const Tokenizer& tok, const fs::path& dir) {
  for (const char* f : {"tokenizer_config.json", "special_tokens_map.json"}) {
    std::ifstream in(dir / f);
    if (!in) continue;
    nlohmann::json j = nlohmann::json::parse(in, nullptr, false);
    if (j.is_discarded() || !j.contains("pad_token")) continue;
    const auto& p = j["pad_token"];
    std::string s;
    if (p.is_string()) s = p.get<std::string>();
    else if (p.is_object() && p.contains("content") && p["content"].is_string()) s = p["content"].get<std::string>();
    else continue;  // null or malformed: no pad token named here
    if (auto id = tok.token_to_id(s)) return *id;
  }
  return -1;
}

}  // namespace

// Exact vision-feature cache: connector output [1, T, D] of one camera frame, keyed by
// "robot \x1f camera:HxW:hash". With the cache on, every camera runs through the vision tower on
// its own (batch of one frame), so a hit returns exactly what a miss would compute.
using VisionCache = LruCache<Tensor>;

// Task cache: a prompt's token ids, mask and language embeddings, keyed by the task string
// ("t" + task) or the given token ids ("i" + their bytes).
struct TaskEntry {
  std::vector<int64_t> ids;
  std::vector<uint8_t> mask;
  Tensor emb;  // [1, lt, D], compute dtype
};
using TaskCache = LruCache<TaskEntry>;

// 64-bit content hash of a frame (multiply-xorshift over 8-byte words; not cryptographic).
static uint64_t frame_hash(const Image& im) {
  const size_t n = im.data.size();
  const uint8_t* p = im.data.data();
  uint64_t h = 0x9e3779b97f4a7c15ull ^ (static_cast<uint64_t>(im.height) << 32) ^ static_cast<uint64_t>(im.width);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    std::memcpy(&w, p + i, 8);
    h = (h ^ (w * 0xbf58476d1ce4e5b9ull)) * 0x94d049bb133111ebull;
    h ^= h >> 29;
  }
  for (; i < n; ++i) h = (h ^ p[i]) * 0x100000001b3ull;
  return h ^ (h >> 31);
}

struct Policy::Impl {
  std::unique_ptr<ComputeThread> compute;  // every graph run happens on this one thread
  SmolVLAConfig cfg;
  smolvla::NormStats stats;
  std::unique_ptr<smolvla::SmolVLAModel> model;
  std::unique_ptr<Tokenizer> tok;
  int32_t pad_id = -1;
  int64_t steps = 0;
  int max_batch = 1;
  std::mt19937_64 rng;
  VisionCache vcache;
  TaskCache tcache;
  VisionReuse reuse;
  bool per_camera() const { return vcache.enabled() || reuse.enabled(); }
  // Telemetry log (PolicyOptions::telemetry_log_every): stage-time sums since the last line.
  uint64_t tel_every = 0;
  LogLevel tel_level = LogLevel::kInfo;
  std::mutex tel_m;
  uint64_t tel_count = 0;
  StageTimings tel_sum;
};

// Caller's thread, after an inference, no lock held while formatting: a telemetry line when due.
static void note_telemetry(const Policy& p, Policy::Impl& m, const std::vector<ActionChunk>& chunks) {
  if (m.tel_every == 0) return;
  uint64_t n = 0;
  StageTimings sum;
  {
    std::lock_guard<std::mutex> lk(m.tel_m);
    for (const ActionChunk& c : chunks) {
      m.tel_sum.preprocess_ms += c.timings.preprocess_ms;
      m.tel_sum.vision_ms += c.timings.vision_ms;
      m.tel_sum.prefix_ms += c.timings.prefix_ms;
      m.tel_sum.denoise_ms += c.timings.denoise_ms;
      m.tel_sum.total_ms += c.timings.total_ms;
    }
    m.tel_count += chunks.size();
    if (m.tel_count < m.tel_every) return;
    n = m.tel_count;
    sum = m.tel_sum;
    m.tel_count = 0;
    m.tel_sum = StageTimings();
  }
  const spdlog::level::level_enum lvl = to_spdlog(m.tel_level);
  if (!logger().should_log(lvl)) return;
  const double k = 1.0 / static_cast<double>(n);
  logger().log(lvl,
               "policy telemetry: {} inferences, mean ms: preprocess {:.2f} vision {:.2f} prefix {:.2f} "
               "denoise {:.2f} total {:.2f}; {}",
               n, sum.preprocess_ms * k, sum.vision_ms * k, sum.prefix_ms * k, sum.denoise_ms * k,
               sum.total_ms * k, detail::format_caches(p));
}

Policy::Policy(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

void PolicyInternals::set_linear_observer(Policy& p, std::function<void(const std::string&, const Tensor&)> fn) {
  Policy::Impl& m = *p.impl_;
  m.compute->run([&] { m.model->set_linear_observer(std::move(fn)); });
}
Policy::~Policy() = default;

std::unique_ptr<Policy> Policy::load(const std::string& dir, const PolicyOptions& opts) {
  VLART_CHECK(opts.compute_dtype == DType::kF32 || opts.compute_dtype == DType::kBF16, UnsupportedError,
              "Policy::load: compute dtype ", dtype_name(opts.compute_dtype), " is not supported (f32 or bf16)");
  VLART_CHECK(opts.max_batch >= 1, InvalidArgument, "Policy::load: max_batch must be >= 1, got ", opts.max_batch);
  VLART_CHECK(opts.visual_tokens_keep >= 0, InvalidArgument, "Policy::load: visual_tokens_keep must be >= 0 (0 = off), got ",
              opts.visual_tokens_keep);
  const fs::path ckpt(dir);
  VLART_CHECK(fs::exists(ckpt / "config.json"), IoError, "Policy::load: no config.json in ", dir);
  // Family check first: a config of another architecture is named as such, not reported as a
  // missing SmolVLM config.
  const std::string vlm_name = smolvla::read_vlm_model_name(dir);
  const std::string vlm_dir = smolvla::find_vlm_dir(dir, vlm_name, opts.vlm_config_dir);
  VLART_CHECK(!vlm_dir.empty() && fs::exists(fs::path(vlm_dir) / "config.json"), NotFoundError,
              "Policy::load: SmolVLM config.json not found (vlm_model_name '", vlm_name,
              "' is not a local directory); set PolicyOptions::vlm_config_dir");
  auto impl = std::make_unique<Impl>();
  impl->cfg = smolvla::load_config(dir, (fs::path(vlm_dir) / "config.json").string());
  impl->stats = smolvla::load_norm_stats(dir, impl->cfg.state_dim, impl->cfg.action_dim);
  VLART_CHECK(impl->cfg.resize_h == impl->cfg.vision.image_size && impl->cfg.resize_w == impl->cfg.vision.image_size,
              UnsupportedError, "Policy::load: resize_imgs_with_padding ", impl->cfg.resize_h, "x",
              impl->cfg.resize_w, " differs from the vision image_size ", impl->cfg.vision.image_size);
  impl->compute = std::make_unique<ComputeThread>();
  impl->compute->run([&] {
    impl->model = std::make_unique<smolvla::SmolVLAModel>(impl->cfg, smolvla::SmolVLAWeights::open(dir),
                                                         opts.threads, opts.compute_dtype, opts.backend);
  });
  impl->max_batch = opts.max_batch;
  impl->vcache.set_budget(opts.vision_cache_bytes);
  impl->tcache.set_budget(opts.task_cache_bytes);
  impl->reuse.configure(opts, impl->cfg);
  to_spdlog(opts.telemetry_log_level);  // throws InvalidArgument for a bad level
  impl->tel_every = opts.telemetry_log_every;
  impl->tel_level = opts.telemetry_log_level;
  if (opts.profile) impl->model->set_profiling(true);
  if (opts.dequantize_weights) impl->model->set_dequantize_weights(true);
  {
    using AP = PolicyOptions::AttentionPrecision;
    const auto& qc = impl->model->quantization();
    AttnPrecision prec = AttnPrecision::kF32;
    if (opts.attention == AP::kInt16 || (opts.attention == AP::kAuto && qc && qc->attention == "int16"))
      prec = AttnPrecision::kInt16;
    if (opts.attention == AP::kInt8 || (opts.attention == AP::kAuto && qc && qc->attention == "int8"))
      prec = AttnPrecision::kInt8;
    impl->model->set_attention_precision(prec);
  }
  impl->model->set_visual_tokens_keep(opts.visual_tokens_keep);
  impl->steps = opts.flow_steps > 0 ? opts.flow_steps : impl->cfg.num_steps;
  impl->rng.seed(opts.noise_seed);

  // Tokenizer: explicit override, then the checkpoint dir, then the VLM dir.
  std::vector<fs::path> cands;
  if (!opts.tokenizer_path.empty()) {
    fs::path p(opts.tokenizer_path);
    cands.push_back(fs::is_directory(p) ? p / "tokenizer.json" : p);
    VLART_CHECK(fs::exists(cands.back()), NotFoundError, "Policy::load: tokenizer override ",
                cands.back().string(), " does not exist");
  }
  cands.push_back(ckpt / "tokenizer.json");
  cands.push_back(fs::path(vlm_dir) / "tokenizer.json");
  for (const fs::path& p : cands)
    if (fs::exists(p)) {
      impl->tok = std::make_unique<Tokenizer>(Tokenizer::from_file(p.string()));
      impl->pad_id = find_pad_id(*impl->tok, p.parent_path());
      break;
    }
  return std::unique_ptr<Policy>(new Policy(std::move(impl)));
}

namespace {

// An observation validated and preprocessed: model inputs plus the initial noise.
struct Prepared {
  smolvla::PrefixInputs in;
  std::vector<std::string> cache_keys;  // per camera, when the vision cache is on
  std::vector<std::string> reuse_keys;  // per camera, when visual reuse is on
  std::vector<float> noise;
  double preprocess_ms = 0;
};

}  // namespace

// Validates `obs` and returns its frames in the checkpoint's camera order. `where` prefixes error
// messages ("Policy::infer" or "Policy::infer_batch: observation 3").
static std::vector<const Image*> check(const Policy::Impl& m, const Observation& obs, const std::string& where) {
  const SmolVLAConfig& c = m.cfg;
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
    VLART_CHECK(im.height > 0 && im.width > 0 && !im.data.empty(), InvalidArgument, where, ": camera '", cam,
                "' has an empty frame (", im.height, "x", im.width, ")");
    VLART_CHECK(static_cast<int64_t>(im.data.size()) == im.height * im.width * 3, InvalidArgument, where,
                ": camera '", cam, "' frame has ", im.data.size(), " bytes, expected ", im.height, "x", im.width,
                "x3");
    frames.push_back(&im);
  }
  VLART_CHECK(static_cast<int64_t>(obs.state.size()) == c.state_dim, InvalidArgument, where, ": state has ",
              obs.state.size(), " values, expected ", c.state_dim);
  for (size_t i = 0; i < obs.state.size(); ++i)
    VLART_CHECK(std::isfinite(obs.state[i]), InvalidArgument, where, ": state[", i, "] is not finite (",
                obs.state[i], ")");
  if (obs.token_ids) {
    VLART_CHECK(!obs.token_ids->empty(), InvalidArgument, where, ": token_ids is empty");
    VLART_CHECK(!c.pad_to_max_length || m.pad_id >= 0 ||
                    static_cast<int64_t>(obs.token_ids->size()) >= c.tokenizer_max_length,
                InvalidArgument, where, ": token_ids need padding but no pad token is known");
  } else {
    VLART_CHECK(m.tok != nullptr, NotFoundError, where, ": no tokenizer.json found (checkpoint dir, "
                "vlm_model_name dir); set PolicyOptions::tokenizer_path or pass Observation::token_ids");
    VLART_CHECK(m.pad_id >= 0 || !c.pad_to_max_length, NotFoundError, where,
                ": the tokenizer has no pad token but pad_language_to is max_length");
  }
  return frames;
}

// Validates `obs` (nothing runs on a bad observation) and builds the model inputs.
static Prepared prepare(Policy::Impl& m, const Observation& obs, const float* noise, const std::string& where) {
  const SmolVLAConfig& c = m.cfg;
  const auto t0 = std::chrono::steady_clock::now();
  const std::vector<const Image*> frames = check(m, obs, where);
  Prepared p;
  if (m.vcache.enabled())
    for (size_t i = 0; i < frames.size(); ++i)
      p.cache_keys.push_back(obs.robot_id + '\x1f' + std::to_string(i) + ':' + std::to_string(frames[i]->height) +
                             'x' + std::to_string(frames[i]->width) + ':' + std::to_string(frame_hash(*frames[i])));
  if (m.reuse.enabled())
    for (size_t i = 0; i < frames.size(); ++i)
      p.reuse_keys.push_back(obs.robot_id + '\x1f' + std::to_string(i));
  smolvla::PrefixInputs& in = p.in;
  in.n_cams = static_cast<int64_t>(frames.size());
  for (const Image* im : frames) {
    std::vector<float> px = smolvla::resize_with_pad(im->data.data(), im->height, im->width, c.resize_h, c.resize_w);
    in.images.insert(in.images.end(), px.begin(), px.end());
  }
  in.state = smolvla::normalize_state(obs.state, m.stats.state_mean, m.stats.state_std, c.max_state_dim);
  std::string task_key;
  if (m.tcache.enabled()) {
    if (obs.token_ids) {
      task_key.assign(1, 'i');
      task_key.append(reinterpret_cast<const char*>(obs.token_ids->data()),
                      obs.token_ids->size() * sizeof(int64_t));
    } else {
      task_key = 't' + obs.task;
    }
    if (std::shared_ptr<TaskEntry> e = m.tcache.find(task_key)) {
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
        VLART_CHECK(m.pad_id >= 0 || static_cast<int64_t>(in.lang_ids.size()) == c.tokenizer_max_length,
                    InvalidArgument, where, ": token_ids need padding but no pad token is known");
        while (static_cast<int64_t>(in.lang_ids.size()) < c.tokenizer_max_length) {
          in.lang_ids.push_back(m.pad_id);
          in.lang_mask.push_back(0);
        }
      }
    } else {
      smolvla::LangTokens lt =
          smolvla::tokenize_task(*m.tok, obs.task, c.tokenizer_max_length, c.pad_to_max_length, m.pad_id);
      in.lang_ids = std::move(lt.ids);
      in.lang_mask = std::move(lt.mask);
    }
    in.lang_emb = m.model->lang_embedding(in.lang_ids);
    if (m.tcache.enabled()) {
      auto e = std::make_shared<TaskEntry>(TaskEntry{in.lang_ids, in.lang_mask, in.lang_emb});
      const size_t nb = task_key.size() + e->ids.size() * sizeof(int64_t) + e->mask.size() + e->emb.nbytes();
      m.tcache.insert(task_key, std::move(e), nb);
    }
  }
  const int64_t n_noise = c.chunk_size * c.max_action_dim;
  p.noise.resize(static_cast<size_t>(n_noise));
  if (noise) {
    std::copy(noise, noise + n_noise, p.noise.begin());
  } else {
    std::normal_distribution<float> nd(0.f, 1.f);
    for (float& v : p.noise) v = nd(m.rng);
  }
  p.preprocess_ms = ms_since(t0);
  return p;
}

// Prefix + denoising for one prepared observation whose connector output is `img`.
static ActionChunk finish(Policy::Impl& m, const Prepared& p, const Tensor& img, double vision_ms) {
  const SmolVLAConfig& c = m.cfg;
  ActionChunk out;
  out.timings.preprocess_ms = p.preprocess_ms;
  out.timings.vision_ms = vision_ms;
  auto t1 = std::chrono::steady_clock::now();
  smolvla::PrefixState ps = m.model->prefix_from_vision(p.in, img);
  out.timings.prefix_ms = ms_since(t1);
  t1 = std::chrono::steady_clock::now();
  std::vector<float> x0 = m.model->denoise(ps, p.noise, m.steps);
  out.timings.denoise_ms = ms_since(t1);
  out.horizon = c.chunk_size;
  out.action_dim = c.action_dim;
  out.data.resize(static_cast<size_t>(c.chunk_size * c.action_dim));
  for (int64_t r = 0; r < c.chunk_size; ++r)
    for (int64_t a = 0; a < c.action_dim; ++a) {
      const size_t ai = static_cast<size_t>(a);
      out.data[static_cast<size_t>(r * c.action_dim + a)] =
          x0[static_cast<size_t>(r * c.max_action_dim + a)] * m.stats.action_std[ai] + m.stats.action_mean[ai];
    }
  out.timings.total_ms = out.timings.preprocess_ms + out.timings.vision_ms + out.timings.prefix_ms +
                         out.timings.denoise_ms;
  return out;
}

// Connector output [n_cams, T, D] of a prepared observation through the exact vision cache (camera
// by camera) and/or approximate visual reuse (the cameras it recomputes in full run together).
static Tensor cached_vision(Policy::Impl& m, const Prepared& p) {
  const int64_t n = p.in.n_cams;
  const size_t per = p.in.images.size() / static_cast<size_t>(n);
  std::vector<Tensor> feats(static_cast<size_t>(n));
  std::vector<size_t> todo;  // cameras the exact cache does not hold
  for (size_t u = 0; u < feats.size(); ++u) {
    std::shared_ptr<Tensor> hit = m.vcache.enabled() ? m.vcache.find(p.cache_keys[u]) : nullptr;
    if (hit)
      feats[u] = *hit;
    else
      todo.push_back(u);
  }
  if (m.reuse.enabled() && !todo.empty()) {
    std::vector<std::string> keys;
    std::vector<const float*> px;
    for (size_t u : todo) {
      keys.push_back(p.reuse_keys[u]);
      px.push_back(p.in.images.data() + per * u);
    }
    std::vector<Tensor> f = m.reuse.features(*m.model, keys, px);
    for (size_t i = 0; i < todo.size(); ++i) feats[todo[i]] = std::move(f[i]);
  } else {
    for (size_t u : todo)
      feats[u] = m.model->vision(
          std::vector<float>(p.in.images.begin() + static_cast<std::ptrdiff_t>(per * u),
                             p.in.images.begin() + static_cast<std::ptrdiff_t>(per * (u + 1))),
          1);
  }
  if (m.vcache.enabled())
    for (size_t u : todo)
      m.vcache.insert(p.cache_keys[u], std::make_shared<Tensor>(feats[u]), feats[u].nbytes());
  Tensor out = Tensor::empty(Shape{n, feats[0].dim(1), feats[0].dim(2)}, feats[0].dtype());
  for (size_t u = 0; u < feats.size(); ++u)
    std::memcpy(static_cast<char*>(out.raw()) + u * feats[u].nbytes(), feats[u].raw(), feats[u].nbytes());
  return out;
}

void Policy::validate(const Observation& obs) const { check(*impl_, obs, "Policy::validate"); }

static ActionChunk infer_one(Policy::Impl& m, const Observation& obs, const float* noise) {
  const auto t0 = std::chrono::steady_clock::now();
  Prepared p = prepare(m, obs, noise, "Policy::infer");
  const auto t1 = std::chrono::steady_clock::now();
  Tensor img = m.per_camera() ? cached_vision(m, p) : m.model->vision(p.in.images, p.in.n_cams);
  ActionChunk out = finish(m, p, img, ms_since(t1));
  out.timings.total_ms = ms_since(t0);
  return out;
}

static std::vector<ActionChunk> infer_many(Policy::Impl& m, const std::vector<Observation>& obs,
                                           const float* noise) {
  const SmolVLAConfig& c = m.cfg;
  const int64_t n_noise = c.chunk_size * c.max_action_dim;
  std::vector<Prepared> prep;
  prep.reserve(obs.size());
  for (size_t i = 0; i < obs.size(); ++i)
    prep.push_back(prepare(m, obs[i], noise ? noise + static_cast<int64_t>(i) * n_noise : nullptr,
                           "Policy::infer_batch: observation " + std::to_string(i)));
  std::vector<ActionChunk> out;
  out.reserve(obs.size());
  if (m.per_camera()) {  // frames go through the caches one by one
    for (const Prepared& p : prep) {
      const auto t1 = std::chrono::steady_clock::now();
      Tensor img = cached_vision(m, p);
      out.push_back(finish(m, p, img, ms_since(t1)));
    }
    return out;
  }
  const size_t group = static_cast<size_t>(std::max(1, m.max_batch));
  for (size_t b0 = 0; b0 < prep.size(); b0 += group) {
    const size_t b1 = std::min(prep.size(), b0 + group);
    const int64_t cams = prep[b0].in.n_cams;
    std::vector<float> px;
    px.reserve(prep[b0].in.images.size() * (b1 - b0));
    for (size_t i = b0; i < b1; ++i) px.insert(px.end(), prep[i].in.images.begin(), prep[i].in.images.end());
    const auto t1 = std::chrono::steady_clock::now();
    Tensor img = m.model->vision(px, cams * static_cast<int64_t>(b1 - b0));
    const double vision_ms = ms_since(t1);
    for (size_t i = b0; i < b1; ++i) {
      const int64_t r0 = static_cast<int64_t>(i - b0) * cams;
      out.push_back(finish(m, prep[i], img.slice(0, r0, r0 + cams), vision_ms));
    }
  }
  return out;
}

std::vector<std::string> Policy::camera_names() const { return impl_->cfg.cameras; }
int64_t Policy::state_dim() const { return impl_->cfg.state_dim; }
int64_t Policy::action_dim() const { return impl_->cfg.action_dim; }
int64_t Policy::horizon() const { return impl_->cfg.chunk_size; }
int64_t Policy::max_action_dim() const { return impl_->cfg.max_action_dim; }
DType Policy::compute_dtype() const { return impl_->model->compute_dtype(); }
ActionChunk Policy::infer(const Observation& obs, const float* noise) {
  ActionChunk out;
  impl_->compute->run([&] { out = infer_one(*impl_, obs, noise); });
  if (impl_->tel_every > 0) note_telemetry(*this, *impl_, {out});
  return out;
}

std::vector<ActionChunk> Policy::infer_batch(const std::vector<Observation>& obs, const float* noise) {
  std::vector<ActionChunk> out;
  impl_->compute->run([&] { out = infer_many(*impl_, obs, noise); });
  note_telemetry(*this, *impl_, out);
  return out;
}

static CacheStats to_stats(const LruCounters& c) {
  return {c.hits, c.misses, c.evictions, c.entries, c.bytes, c.budget_bytes};
}
VisionCacheStats Policy::vision_cache_stats() const { return to_stats(impl_->vcache.counters()); }
TaskCacheStats Policy::task_cache_stats() const { return to_stats(impl_->tcache.counters()); }
VisionReuseStats Policy::vision_reuse_stats() const { return impl_->reuse.stats(); }
void Policy::clear_vision_cache() {
  impl_->vcache.clear();
  impl_->reuse.clear();
  impl_->tcache.clear();
}
void Policy::clear_vision_cache(const std::string& robot_id) {
  impl_->vcache.clear(robot_id + '\x1f');
  impl_->reuse.clear(robot_id + '\x1f');
}

LayerCosines Policy::layer_cosines(const Observation& obs, const float* noise) {
  LayerCosines r;
  impl_->compute->run([&] {
    const Prepared p = prepare(*impl_, obs, noise, "Policy::layer_cosines");
    smolvla::SmolVLAModel::LayerCosines c = impl_->model->layer_cosines(p.in, p.noise, impl_->steps);
    r.vlm = std::move(c.vlm);
    r.expert = std::move(c.expert);
  });
  return r;
}

std::string Policy::backend() const { return impl_->model->backend_names(); }
std::string Policy::profile_report() const { return impl_->model->profile_report(); }

}  // namespace vlart
