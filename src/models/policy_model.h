// The seam between the runtime and a model family. A family (files under src/models/<family>/ plus
// one line in models/registry.cpp) detects its checkpoints, describes itself (PolicyInfo), validates
// and preprocesses observations, builds and runs its graphs, and un-normalises the actions. The
// runtime (runtime/policy.cpp) owns what every family shares: the compute thread that runs every
// graph, the backends (created once and handed to the family), the noise generator, the caches
// shared across families and telemetry.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/backend.h"
#include "core/lru_cache.h"
#include "vlart/policy.h"
#include "vlart/tensor.h"

namespace vlart {

// Task cache entry: a prompt's token ids, attention mask and language embeddings [1, L, D] (the part
// of a prefix that depends on the task alone). Shared by every robot of a policy.
struct TaskEntry {
  std::vector<int64_t> ids;
  std::vector<uint8_t> mask;
  Tensor emb;
};
using TaskCache = LruCache<TaskEntry>;
// Exact vision-feature cache: a camera frame's vision features, keyed by robot, camera, size and
// content hash (PolicyOptions::vision_cache_bytes).
using VisionFeatureCache = LruCache<Tensor>;

// What the runtime hands a family at load.
struct ModelContext {
  const PolicyOptions* options = nullptr;  // never null during load
  std::vector<Backend*> placement;         // executor priority order, e.g. {cuda, cpu}
  std::string backend_names;               // "cuda+cpu" or "cpu"
};

// Caches owned by the runtime that a family may use during infer().
struct InferCaches {
  VisionFeatureCache* vision = nullptr;  // enabled() says whether to use it
  TaskCache* task = nullptr;
};

// One observation of a batch: the observation and its initial noise (PolicyInfo::noise_numel()
// floats, drawn by the runtime when the caller passed none; null when the policy draws no noise).
struct InferItem {
  const Observation* obs = nullptr;
  const float* noise = nullptr;
};

class PolicyModel {
 public:
  virtual ~PolicyModel() = default;

  virtual const PolicyInfo& info() const = 0;
  // Throws InvalidArgument / NotFoundError naming the problem, prefixed by `where`; runs nothing.
  // Thread-safe: reads only the immutable configuration.
  virtual void validate(const Observation& obs, const std::string& where) const = 0;
  // Runs every item (already validated; `where(i)` prefixes errors of item i) and returns one chunk
  // per item, in order, with its stage timings. Called on the runtime's compute thread only.
  virtual std::vector<ActionChunk> infer(const std::vector<InferItem>& items, const InferCaches& caches,
                                         const std::function<std::string(size_t)>& where) = 0;

  // ---- optional capabilities (the defaults say the family has none) ----
  // Per named layer stack ("vlm", "expert", ...), the mean cosine of each layer's input and output.
  virtual std::map<std::string, std::vector<double>> layer_cosines(const Observation& obs, const float* noise);
  // Calls fn(weight_name, x) before every Linear (calibration); empty fn = off.
  virtual void set_linear_observer(std::function<void(const std::string&, const Tensor&)> fn);
  virtual std::string profile_report() const { return "profiling is not available for this policy family\n"; }
  virtual VisionReuseStats vision_reuse_stats() const { return {}; }
  // Clears the family's own per-robot state (keys starting with `key_prefix`; "" = all).
  virtual void clear_caches(const std::string& key_prefix) { (void)key_prefix; }
};

}  // namespace vlart
