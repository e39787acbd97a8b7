// Approximate visual token reuse (PolicyOptions::vision_reuse_*), VLA-Cache style: per (robot,
// camera) the vision-tower state of the frame last computed (see SmolVLAModel::vision_sparse), and
// the decision, per new frame, between reusing it whole, recomputing the changed tokens only, or
// recomputing the frame. Used on the policy's compute thread; stats() and clear() from any thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "models/smolvla/model.h"
#include "core/lru_cache.h"
#include "vlart/policy.h"

namespace vlart {

class VisionReuse {
 public:
  void configure(const PolicyOptions& o, const smolvla::SmolVLAConfig& cfg);
  bool enabled() const { return cache_.enabled(); }

  // Connector features [1, T, D] (fresh copies) of the frames `images[i]` ([3, S, S] preprocessed, in
  // [-1, 1]) of the cameras keyed `keys[i]` ("robot \x1f camera"), each computed or reused as the
  // options say. The frames computed in full run through the vision tower together, as one batch
  // like Policy::infer without reuse (so threshold 0 gives the same bits).
  std::vector<Tensor> features(smolvla::SmolVLAModel& model, const std::vector<std::string>& keys,
                               const std::vector<const float*>& images);

  // Per-token mean absolute change between two preprocessed frames, on the 0..255 pixel scale
  // (each connector token covers a (patch * scale_factor)^2 square of the resized frame).
  std::vector<float> token_change(const float* a, const float* b) const;

  VisionReuseStats stats() const;
  void clear(const std::string& key_prefix = "") { cache_.clear(key_prefix); }

 private:
  struct Entry {
    std::vector<float> ref;  // per token, the pixels its cached features were computed from
    smolvla::SmolVLAModel::VisionState state;
    int sparse_run = 0;  // sparse recomputes since the last full one
  };
  void store(const std::string& key, std::shared_ptr<Entry> e);

  LruCache<Entry> cache_;
  float threshold_ = 0.f, max_fraction_ = 0.5f;
  int refresh_ = 0;
  int64_t size_ = 0, channels_ = 3, region_ = 0,
          grid_ = 0;  // image side, token side in pixels, tokens per row
  std::atomic<uint64_t> full_{0}, reused_{0}, sparse_{0}, tok_reused_{0}, tok_computed_{0};
};

}  // namespace vlart
