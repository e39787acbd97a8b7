// Executors of one graph kind per shape bucket (camera count, prompt length, ...), built on first use
// and kept, up to a bound: past `capacity` buckets the least recently used one is dropped (its
// executor and arena freed; its packed weights stay in the backend's cache), so a policy that sees
// ever new prompt lengths does not grow without bound. A dropped bucket is rebuilt on its next use
// (a graph build and kernel preparation, no weight repacking for weights the cache still holds).
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <utility>

#include "core/executor.h"
#include "core/graph.h"

namespace vlart {

struct Stage {
  Graph graph;
  std::unique_ptr<Executor> exec;
};

template <class Key>
class StageCache {
 public:
  explicit StageCache(size_t capacity = 16) : capacity_(capacity < 1 ? 1 : capacity) {}
  // The stage for `key`; `make()` returns a new std::unique_ptr<Stage> on a miss. The reference stays
  // valid until the next get() of another key on this cache.
  template <class Make>
  Stage& get(const Key& key, Make&& make) {
    auto it = m_.find(key);
    if (it == m_.end()) {
      if (m_.size() >= capacity_) {
        auto lru = m_.begin();
        for (auto j = m_.begin(); j != m_.end(); ++j)
          if (j->second.last_use < lru->second.last_use) lru = j;
        m_.erase(lru);
        ++evictions_;
      }
      it = m_.emplace(key, Slot{make(), 0}).first;
    }
    it->second.last_use = ++clock_;
    return *it->second.stage;
  }
  bool empty() const { return m_.empty(); }
  size_t size() const { return m_.size(); }
  uint64_t evictions() const { return evictions_; }
  void clear() { m_.clear(); }

 private:
  struct Slot {
    std::unique_ptr<Stage> stage;
    uint64_t last_use = 0;
  };
  size_t capacity_;
  uint64_t clock_ = 0, evictions_ = 0;
  std::map<Key, Slot> m_;
};

}  // namespace vlart
