// Counters of one byte-bounded LRU cache (the policy's vision, task and visual-reuse caches).
#pragma once

#include <cstddef>
#include <cstdint>

namespace vlart {

struct CacheStats {
  uint64_t hits = 0, misses = 0, evictions = 0;
  size_t entries = 0, bytes = 0, budget_bytes = 0;
};

}  // namespace vlart
