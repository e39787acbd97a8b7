#include "models/smolvla/vision_reuse.h"

#include <cmath>
#include <cstring>

#include "vlart/error.h"

namespace vlart {

void VisionReuse::configure(const PolicyOptions& o, const smolvla::SmolVLAConfig& cfg) {
  VLART_CHECK(std::isfinite(o.vision_reuse_threshold) && o.vision_reuse_threshold >= 0.f, InvalidArgument,
              "Policy::load: vision_reuse_threshold must be >= 0 (0..255 pixel scale), got ",
              o.vision_reuse_threshold);
  VLART_CHECK(o.vision_reuse_max_fraction >= 0.f && o.vision_reuse_max_fraction <= 1.f, InvalidArgument,
              "Policy::load: vision_reuse_max_fraction must be in [0, 1], got ", o.vision_reuse_max_fraction);
  VLART_CHECK(o.vision_reuse_refresh >= 0, InvalidArgument,
              "Policy::load: vision_reuse_refresh must be >= 0, got ", o.vision_reuse_refresh);
  cache_.set_budget(o.vision_reuse_bytes);
  threshold_ = o.vision_reuse_threshold;
  max_fraction_ = o.vision_reuse_max_fraction;
  refresh_ = o.vision_reuse_refresh;
  size_ = cfg.vision.image_size;
  channels_ = cfg.vision.channels;
  region_ = cfg.vision.patch * cfg.scale_factor;
  grid_ = size_ / region_;
}

std::vector<float> VisionReuse::token_change(const float* a, const float* b) const {
  std::vector<float> out(static_cast<size_t>(grid_ * grid_));
  const double scale = 127.5 / static_cast<double>(channels_ * region_ * region_);  // [-1, 1] -> 0..255, mean
  for (int64_t ti = 0; ti < grid_; ++ti)
    for (int64_t tj = 0; tj < grid_; ++tj) {
      double sum = 0;
      for (int64_t c = 0; c < channels_; ++c)
        for (int64_t y = ti * region_; y < (ti + 1) * region_; ++y) {
          const size_t o = static_cast<size_t>((c * size_ + y) * size_ + tj * region_);
          for (int64_t x = 0; x < region_; ++x)
            sum += std::fabs(a[o + static_cast<size_t>(x)] - b[o + static_cast<size_t>(x)]);
        }
      out[static_cast<size_t>(ti * grid_ + tj)] = static_cast<float>(sum * scale);
    }
  return out;
}

void VisionReuse::store(const std::string& key, std::shared_ptr<Entry> e) {
  size_t bytes = key.size() + e->ref.size() * sizeof(float) + e->state.feat.nbytes();
  for (size_t i = 0; i < e->state.k.size(); ++i) bytes += e->state.k[i].nbytes() + e->state.v[i].nbytes();
  cache_.insert(key, std::move(e), bytes);
}

std::vector<Tensor> VisionReuse::features(smolvla::SmolVLAModel& model, const std::vector<std::string>& keys,
                                          const std::vector<const float*>& images) {
  VLART_CHECK(keys.size() == images.size(), InternalError, "VisionReuse: ", keys.size(), " keys, ",
              images.size(), " frames");
  const size_t per = static_cast<size_t>(channels_ * size_ * size_);
  const int64_t T = grid_ * grid_;
  std::vector<Tensor> out(keys.size());
  std::vector<size_t> full;  // cameras computed in full, together
  for (size_t c = 0; c < keys.size(); ++c) {
    std::shared_ptr<Entry> e = cache_.find(keys[c]);
    if (!e) {
      full.push_back(c);
      continue;
    }
    const float* image = images[c];
    std::vector<int64_t> changed;
    if (threshold_ > 0.f) {
      const std::vector<float> d = token_change(image, e->ref.data());
      for (int64_t t = 0; t < T; ++t)
        if (!(d[static_cast<size_t>(t)] < threshold_)) changed.push_back(t);
    } else {
      for (int64_t t = 0; t < T; ++t) changed.push_back(t);  // threshold 0: nothing counts as unchanged
    }
    if (changed.empty()) {
      reused_.fetch_add(1, std::memory_order_relaxed);
      tok_reused_.fetch_add(static_cast<uint64_t>(T), std::memory_order_relaxed);
      out[c] = e->state.feat.clone();
      continue;
    }
    const bool too_many =
        static_cast<double>(changed.size()) > static_cast<double>(max_fraction_) * static_cast<double>(T);
    if (too_many || (refresh_ > 0 && e->sparse_run >= refresh_)) {
      full.push_back(c);
      continue;
    }
    // Sparse: the entry is updated in place (only this, the compute thread, touches entry contents;
    // other threads only drop entries from the map, which the shared_ptr survives).
    model.vision_sparse(std::vector<float>(image, image + per), changed, e->state);
    for (int64_t t : changed) {  // the recomputed tokens' reference pixels become this frame's
      const int64_t ti = t / grid_, tj = t % grid_;
      for (int64_t ch = 0; ch < channels_; ++ch)
        for (int64_t y = ti * region_; y < (ti + 1) * region_; ++y) {
          const size_t o = static_cast<size_t>((ch * size_ + y) * size_ + tj * region_);
          std::memcpy(e->ref.data() + o, image + o, static_cast<size_t>(region_) * sizeof(float));
        }
    }
    ++e->sparse_run;
    sparse_.fetch_add(1, std::memory_order_relaxed);
    tok_computed_.fetch_add(changed.size(), std::memory_order_relaxed);
    tok_reused_.fetch_add(static_cast<uint64_t>(T) - changed.size(), std::memory_order_relaxed);
    out[c] = e->state.feat.clone();
  }
  if (!full.empty()) {
    std::vector<float> px(per * full.size());
    for (size_t i = 0; i < full.size(); ++i)
      std::memcpy(px.data() + i * per, images[full[i]], per * sizeof(float));
    std::vector<smolvla::SmolVLAModel::VisionState> st =
        model.vision_states(px, static_cast<int64_t>(full.size()));
    for (size_t i = 0; i < full.size(); ++i) {
      auto e = std::make_shared<Entry>();
      e->ref.assign(px.begin() + static_cast<std::ptrdiff_t>(i * per),
                    px.begin() + static_cast<std::ptrdiff_t>((i + 1) * per));
      e->state = std::move(st[i]);
      out[full[i]] = e->state.feat.clone();
      store(keys[full[i]], std::move(e));
    }
    full_.fetch_add(full.size(), std::memory_order_relaxed);
    tok_computed_.fetch_add(full.size() * static_cast<uint64_t>(T), std::memory_order_relaxed);
  }
  return out;
}

VisionReuseStats VisionReuse::stats() const {
  VisionReuseStats s;
  s.cache = cache_.counters();
  s.frames_full = full_.load(std::memory_order_relaxed);
  s.frames_reused = reused_.load(std::memory_order_relaxed);
  s.frames_sparse = sparse_.load(std::memory_order_relaxed);
  s.tokens_reused = tok_reused_.load(std::memory_order_relaxed);
  s.tokens_computed = tok_computed_.load(std::memory_order_relaxed);
  return s;
}

}  // namespace vlart
