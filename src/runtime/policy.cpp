#include "vlart/policy.h"

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>

#include <nlohmann/json.hpp>

#include "models/smolvla/config.h"
#include "models/smolvla/model.h"
#include "models/smolvla/preprocess.h"
#include "models/smolvla/weights.h"
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
    const std::string s = p.is_string() ? p.get<std::string>() : p.value("content", std::string());
    if (auto id = tok.token_to_id(s)) return *id;
  }
  return -1;
}

}  // namespace

struct Policy::Impl {
  SmolVLAConfig cfg;
  smolvla::NormStats stats;
  std::unique_ptr<smolvla::SmolVLAModel> model;
  std::unique_ptr<Tokenizer> tok;
  int32_t pad_id = -1;
  int64_t steps = 0;
  std::mt19937_64 rng;
};

Policy::Policy(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Policy::~Policy() = default;

std::unique_ptr<Policy> Policy::load(const std::string& dir, const PolicyOptions& opts) {
  VLART_CHECK(opts.compute_dtype == DType::kF32, UnsupportedError, "Policy::load: compute dtype ",
              dtype_name(opts.compute_dtype), " not supported yet (only f32)");
  const fs::path ckpt(dir);
  VLART_CHECK(fs::exists(ckpt / "config.json"), IoError, "Policy::load: no config.json in ", dir);
  std::string vlm_name;
  {
    std::ifstream f(ckpt / "config.json");
    nlohmann::json j = nlohmann::json::parse(f, nullptr, false);
    VLART_CHECK(!j.is_discarded(), FormatError, "Policy::load: ", (ckpt / "config.json").string(),
                " is not valid JSON");
    vlm_name = j.value("vlm_model_name", std::string());
  }
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
  impl->model = std::make_unique<smolvla::SmolVLAModel>(impl->cfg, smolvla::SmolVLAWeights::open(dir), opts.threads);
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

ActionChunk Policy::infer(const Observation& obs, const float* noise) {
  Impl& m = *impl_;
  const SmolVLAConfig& c = m.cfg;
  const auto t0 = std::chrono::steady_clock::now();
  ActionChunk out;

  // Validation first: nothing runs on a bad observation.
  for (const auto& kv : obs.images) {
    const std::string full = kv.first.rfind(kImagePrefix, 0) == 0 ? kv.first : kImagePrefix + kv.first;
    bool known = false;
    for (const std::string& cam : c.cameras) known = known || cam == full;
    VLART_CHECK(known, InvalidArgument, "Policy::infer: unknown camera '", kv.first, "'");
  }
  std::vector<const Image*> frames;
  for (const std::string& cam : c.cameras) {
    auto it = obs.images.find(cam);
    if (it == obs.images.end()) it = obs.images.find(cam.substr(std::string(kImagePrefix).size()));
    VLART_CHECK(it != obs.images.end(), InvalidArgument, "Policy::infer: missing camera '", cam, "'");
    const Image& im = it->second;
    VLART_CHECK(im.height > 0 && im.width > 0 && !im.data.empty(), InvalidArgument, "Policy::infer: camera '",
                cam, "' has an empty frame (", im.height, "x", im.width, ")");
    VLART_CHECK(static_cast<int64_t>(im.data.size()) == im.height * im.width * 3, InvalidArgument,
                "Policy::infer: camera '", cam, "' frame has ", im.data.size(), " bytes, expected ", im.height,
                "x", im.width, "x3");
    frames.push_back(&im);
  }
  VLART_CHECK(static_cast<int64_t>(obs.state.size()) == c.state_dim, InvalidArgument, "Policy::infer: state has ",
              obs.state.size(), " values, expected ", c.state_dim);
  for (size_t i = 0; i < obs.state.size(); ++i)
    VLART_CHECK(std::isfinite(obs.state[i]), InvalidArgument, "Policy::infer: state[", i, "] is not finite (",
                obs.state[i], ")");

  smolvla::PrefixInputs in;
  in.n_cams = static_cast<int64_t>(frames.size());
  for (const Image* im : frames) {
    std::vector<float> px = smolvla::resize_with_pad(im->data.data(), im->height, im->width, c.resize_h, c.resize_w);
    in.images.insert(in.images.end(), px.begin(), px.end());
  }
  in.state = smolvla::normalize_state(obs.state, m.stats.state_mean, m.stats.state_std, c.max_state_dim);
  if (obs.token_ids) {
    in.lang_ids = *obs.token_ids;
    VLART_CHECK(!in.lang_ids.empty(), InvalidArgument, "Policy::infer: token_ids is empty");
    if (static_cast<int64_t>(in.lang_ids.size()) > c.tokenizer_max_length)
      in.lang_ids.resize(static_cast<size_t>(c.tokenizer_max_length));
    in.lang_mask.assign(in.lang_ids.size(), 1);
    if (c.pad_to_max_length) {
      VLART_CHECK(m.pad_id >= 0 || static_cast<int64_t>(in.lang_ids.size()) == c.tokenizer_max_length,
                  InvalidArgument, "Policy::infer: token_ids need padding but no pad token is known");
      while (static_cast<int64_t>(in.lang_ids.size()) < c.tokenizer_max_length) {
        in.lang_ids.push_back(m.pad_id);
        in.lang_mask.push_back(0);
      }
    }
  } else {
    VLART_CHECK(m.tok != nullptr, NotFoundError, "Policy::infer: no tokenizer.json found (checkpoint dir, "
                "vlm_model_name dir); set PolicyOptions::tokenizer_path or pass Observation::token_ids");
    VLART_CHECK(m.pad_id >= 0 || !c.pad_to_max_length, NotFoundError,
                "Policy::infer: the tokenizer has no pad token but pad_language_to is max_length");
    smolvla::LangTokens lt =
        smolvla::tokenize_task(*m.tok, obs.task, c.tokenizer_max_length, c.pad_to_max_length, m.pad_id);
    in.lang_ids = std::move(lt.ids);
    in.lang_mask = std::move(lt.mask);
  }
  const int64_t n_noise = c.chunk_size * c.max_action_dim;
  std::vector<float> x(static_cast<size_t>(n_noise));
  if (noise) {
    std::copy(noise, noise + n_noise, x.begin());
  } else {
    std::normal_distribution<float> nd(0.f, 1.f);
    for (float& v : x) v = nd(m.rng);
  }
  out.timings.preprocess_ms = ms_since(t0);

  auto t1 = std::chrono::steady_clock::now();
  Tensor img = m.model->vision(in.images, in.n_cams);
  out.timings.vision_ms = ms_since(t1);
  t1 = std::chrono::steady_clock::now();
  smolvla::PrefixState ps = m.model->prefix_from_vision(in, img);
  out.timings.prefix_ms = ms_since(t1);
  t1 = std::chrono::steady_clock::now();
  std::vector<float> x0 = m.model->denoise(ps, x, m.steps);
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
  out.timings.total_ms = ms_since(t0);
  return out;
}

std::vector<std::string> Policy::camera_names() const { return impl_->cfg.cameras; }
int64_t Policy::state_dim() const { return impl_->cfg.state_dim; }
int64_t Policy::action_dim() const { return impl_->cfg.action_dim; }
int64_t Policy::horizon() const { return impl_->cfg.chunk_size; }
int64_t Policy::max_action_dim() const { return impl_->cfg.max_action_dim; }

}  // namespace vlart
