// Bounded window of latency samples (ms) and its p50/p99/max, shared by the Scheduler and the
// ChunkRunner. Storage is allocated once; add() never allocates. Not thread-safe: callers lock.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <vector>

#include "vlart/scheduler.h"

namespace vlart::detail {

class LatencyWindow {
 public:
  explicit LatencyWindow(size_t capacity) : buf_(std::max<size_t>(1, capacity)) {}
  void add(double ms) {
    buf_[next_ % buf_.size()] = ms;
    ++next_;
  }
  // Nearest-rank percentiles over the samples in the window (allocates a sorted copy).
  LatencySummary summary() const {
    LatencySummary s;
    const size_t n = std::min(next_, buf_.size());
    s.samples = n;
    if (n == 0) return s;
    std::vector<double> v(buf_.begin(), buf_.begin() + static_cast<std::ptrdiff_t>(n));
    std::sort(v.begin(), v.end());
    auto rank = [&](double p) {
      const size_t r = static_cast<size_t>(std::ceil(p * static_cast<double>(n)));
      return v[std::min(n, std::max<size_t>(1, r)) - 1];
    };
    s.p50_ms = rank(0.50);
    s.p99_ms = rank(0.99);
    s.max_ms = v.back();
    return s;
  }

 private:
  std::vector<double> buf_;
  size_t next_ = 0;
};

}  // namespace vlart::detail
