#include "runtime/telemetry.h"

#include <cstdio>

namespace vlart::detail {

namespace {

std::string hit_rate(const char* name, const CacheStats& c) {
  const uint64_t n = c.hits + c.misses;
  char b[160];
  std::snprintf(b, sizeof b, "%s %llu/%llu hits (%.1f%%, %zu entries, %.1f MiB)", name,
                static_cast<unsigned long long>(c.hits), static_cast<unsigned long long>(n),
                n ? 100.0 * static_cast<double>(c.hits) / static_cast<double>(n) : 0.0, c.entries,
                static_cast<double>(c.bytes) / (1024.0 * 1024.0));
  return b;
}

std::string latency(const char* name, const LatencySummary& l) {
  char b[96];
  std::snprintf(b, sizeof b, " %s %.2f/%.2f/%.2f", name, l.p50_ms, l.p99_ms, l.max_ms);
  return b;
}

}  // namespace

std::string format_caches(const Policy& p) {
  std::string out;
  auto add = [&](const std::string& s) { out += (out.empty() ? "" : ", ") + s; };
  const VisionCacheStats v = p.vision_cache_stats();
  if (v.budget_bytes > 0) add(hit_rate("vision cache", v));
  const TaskCacheStats t = p.task_cache_stats();
  if (t.budget_bytes > 0) add(hit_rate("task cache", t));
  const VisionReuseStats r = p.vision_reuse_stats();
  if (r.cache.budget_bytes > 0) {
    const uint64_t tok = r.tokens_reused + r.tokens_computed;
    char b[160];
    std::snprintf(b, sizeof b, "visual reuse %.1f%% tokens reused (frames full/sparse/reused %llu/%llu/%llu)",
                  tok ? 100.0 * static_cast<double>(r.tokens_reused) / static_cast<double>(tok) : 0.0,
                  static_cast<unsigned long long>(r.frames_full),
                  static_cast<unsigned long long>(r.frames_sparse),
                  static_cast<unsigned long long>(r.frames_reused));
    add(b);
  }
  return out.empty() ? "caches off" : out;
}

std::string format_scheduler(const SchedulerStats& s) {
  char b[320];
  std::snprintf(
      b, sizeof b,
      "submitted %llu: ok %llu, timeout %llu, invalid %llu, rejected %llu, cancelled %llu, errors %llu; "
      "batches %llu, sizes",
      static_cast<unsigned long long>(s.submitted), static_cast<unsigned long long>(s.ok),
      static_cast<unsigned long long>(s.timeout), static_cast<unsigned long long>(s.invalid),
      static_cast<unsigned long long>(s.rejected), static_cast<unsigned long long>(s.cancelled),
      static_cast<unsigned long long>(s.errors), static_cast<unsigned long long>(s.batches));
  std::string out = b;
  for (size_t i = 1; i < s.batch_size_histogram.size(); ++i)
    if (s.batch_size_histogram[i])
      out += " " + std::to_string(i) + "x" + std::to_string(s.batch_size_histogram[i]);
  std::snprintf(b, sizeof b, "; queue depth %zu (max %zu); ms p50/p99/max:", s.queue_depth,
                s.max_queue_depth);
  out += b;
  out += latency("queue", s.queue_wait);
  for (const auto& st : s.stages) out += latency(st.first.c_str(), st.second);
  out += latency("total", s.total);
  return out;
}

}  // namespace vlart::detail
