// Packed copies of constant weights, shared by every kernel a CPU backend creates: all executors of
// all shape buckets (prompt lengths, camera counts, batch sizes) get the same packed bytes for the
// same weight in the same layout, instead of one copy each. An entry holds weak references to its
// source tensors' storage: a source whose storage is gone (its address may now belong to another
// weight) makes the entry stale; stale entries are dropped at the next miss (kernels hold their own
// references to the packed bytes, so dropping only ends the cache's share). The cache therefore
// never keeps an original alive (a repacked weight is still released) nor hands out the packed
// bytes of a dead weight.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <dnnl.hpp>

#include "vlart/tensor.h"

namespace vlart {

struct PackedWeight {
  Tensor bytes;       // vlart's own packed layouts (GEMV panels, qgemm, s8gemm), or undefined
  dnnl::memory mem;   // a oneDNN-reordered weight, or empty
  size_t nbytes = 0;  // what the entry holds
};

struct PackedCacheStats {
  uint64_t hits = 0, misses = 0;
  size_t entries = 0, bytes = 0;
};

class PackedWeightCache {
 public:
  // The entry for `key` (built with source_key() of every source plus the layout's parameters), made
  // by `make` on a miss. A source without storage cannot be tracked: then nothing is cached.
  std::shared_ptr<const PackedWeight> get(const std::string& key, const std::vector<Tensor>& sources,
                                          const std::function<PackedWeight()>& make) {
    std::vector<std::weak_ptr<const void>> refs;
    for (const Tensor& t : sources) {
      if (!t.defined()) continue;
      refs.push_back(t.storage_token());
      if (refs.back().expired()) return std::make_shared<const PackedWeight>(make());
    }
    std::lock_guard<std::mutex> lk(mu_);
    auto it = m_.find(key);
    if (it != m_.end() && !stale(it->second)) {
      ++stats_.hits;
      return it->second.packed;
    }
    ++stats_.misses;
    if (it != m_.end()) drop(it);
    sweep();
    auto p = std::make_shared<const PackedWeight>(make());
    m_.emplace(key, Entry{std::move(refs), p});
    stats_.entries = m_.size();
    stats_.bytes += p->nbytes;
    return p;
  }
  PackedCacheStats stats() const {
    std::lock_guard<std::mutex> lk(mu_);
    return stats_;
  }

 private:
  struct Entry {
    std::vector<std::weak_ptr<const void>> sources;
    std::shared_ptr<const PackedWeight> packed;
  };
  static bool stale(const Entry& e) {
    for (const auto& w : e.sources)
      if (w.expired()) return true;
    return false;
  }
  void drop(std::map<std::string, Entry>::iterator it) {
    stats_.bytes -= it->second.packed->nbytes;
    m_.erase(it);
    stats_.entries = m_.size();
  }
  // Drops stale entries. Kernels that use their packed bytes hold their own references (Tensor /
  // dnnl::memory handles), so this only ends the cache's share.
  void sweep() {
    for (auto it = m_.begin(); it != m_.end();) {
      auto next = std::next(it);
      if (stale(it->second)) drop(it);
      it = next;
    }
  }
  mutable std::mutex mu_;
  std::map<std::string, Entry> m_;
  PackedCacheStats stats_;
};

// Identity of a tensor's bytes for a cache key: address, size, dtype, shape, strides ("" when undefined).
std::string source_key(const Tensor& t);
// Identity of a oneDNN memory descriptor (its bytes; equal descriptors give equal keys).
std::string desc_key(const dnnl::memory::desc& md);

}  // namespace vlart

#include "core/quant_weight.h"

namespace vlart {
// Key of a quantized weight packed as `layout`: every tensor its packed form is made from.
inline std::string quant_weight_key(const std::string& layout, const QuantWeight& q) {
  return layout + "|" + std::to_string(q.n) + "x" + std::to_string(q.k) + "|" + source_key(q.qweight) +
         source_key(q.scales) + source_key(q.zeros) + source_key(q.input_scales);
}
inline std::vector<Tensor> quant_weight_sources(const QuantWeight& q) {
  return {q.qweight, q.scales, q.zeros, q.input_scales};
}
}  // namespace vlart
