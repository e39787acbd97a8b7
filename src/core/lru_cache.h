// Byte-bounded LRU map from string keys to shared values, with hit/miss/eviction counters: the
// storage of Policy's caches (exact vision features, task embeddings, approximate visual reuse).
//
// Thread safety: every member takes one internal mutex, so counters and clear() may be called from
// any thread while the policy's compute thread looks entries up. Values are handed out as
// shared_ptr: an entry cleared or evicted while the compute thread still uses it stays alive until
// that use ends.
#pragma once

#include <cstddef>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "vlart/cache_stats.h"

namespace vlart {


template <class V>
class LruCache {
 public:
  explicit LruCache(size_t budget_bytes = 0) : budget_(budget_bytes) {}
  void set_budget(size_t b) {
    std::lock_guard<std::mutex> l(m_);
    budget_ = b;
  }
  bool enabled() const { return budget_ > 0; }  // budget is set once, before use

  // The entry for `key` (now the most recent), or null; counts a hit or a miss.
  std::shared_ptr<V> find(const std::string& key) {
    std::lock_guard<std::mutex> l(m_);
    auto it = index_.find(key);
    if (it == index_.end()) {
      ++c_.misses;
      return nullptr;
    }
    ++c_.hits;
    lru_.splice(lru_.begin(), lru_, it->second);
    return it->second->value;
  }
  // Looks up without counting or reordering.
  std::shared_ptr<V> peek(const std::string& key) const {
    std::lock_guard<std::mutex> l(m_);
    auto it = index_.find(key);
    return it == index_.end() ? nullptr : it->second->value;
  }
  // Inserts or replaces `key` (`bytes`: what the entry holds), evicting least recently used
  // entries to stay within the budget. An entry larger than the whole budget is not stored.
  void insert(const std::string& key, std::shared_ptr<V> v, size_t bytes) {
    std::lock_guard<std::mutex> l(m_);
    erase_locked(key);
    if (bytes > budget_) return;
    while (c_.bytes + bytes > budget_ && !lru_.empty()) {
      c_.bytes -= lru_.back().bytes;
      index_.erase(lru_.back().key);
      lru_.pop_back();
      ++c_.evictions;
    }
    lru_.push_front({key, std::move(v), bytes});
    index_[key] = lru_.begin();
    c_.bytes += bytes;
  }
  // Drops every entry whose key starts with `prefix` (all entries for an empty prefix).
  void clear(const std::string& prefix = "") {
    std::lock_guard<std::mutex> l(m_);
    for (auto it = lru_.begin(); it != lru_.end();) {
      if (it->key.compare(0, prefix.size(), prefix) == 0) {
        c_.bytes -= it->bytes;
        index_.erase(it->key);
        it = lru_.erase(it);
      } else {
        ++it;
      }
    }
  }
  CacheStats counters() const {
    std::lock_guard<std::mutex> l(m_);
    CacheStats c = c_;
    c.entries = lru_.size();
    c.budget_bytes = budget_;
    return c;
  }

 private:
  struct Entry {
    std::string key;
    std::shared_ptr<V> value;
    size_t bytes;
  };
  void erase_locked(const std::string& key) {
    auto it = index_.find(key);
    if (it == index_.end()) return;
    c_.bytes -= it->second->bytes;
    lru_.erase(it->second);
    index_.erase(it);
  }
  mutable std::mutex m_;
  size_t budget_;
  CacheStats c_;
  std::list<Entry> lru_;  // front = most recent
  std::unordered_map<std::string, typename std::list<Entry>::iterator> index_;
};

}  // namespace vlart
