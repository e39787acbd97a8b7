#include "serve/metrics.h"

#include <cstdio>

namespace vlart::serve {
namespace {

struct Writer {
  std::string out;
  void head(const char* name, const char* type, const char* help) {
    out += "# HELP ";
    out += name;
    out += ' ';
    out += help;
    out += "\n# TYPE ";
    out += name;
    out += ' ';
    out += type;
    out += '\n';
  }
  void sample(const char* name, const std::string& labels, double v) {
    char num[64];
    std::snprintf(num, sizeof num, "%.17g", v);
    out += name;
    if (!labels.empty()) out += "{" + labels + "}";
    out += ' ';
    out += num;
    out += '\n';
  }
  void counter(const char* name, const char* help, double v) {
    head(name, "counter", help);
    sample(name, "", v);
  }
  void gauge(const char* name, const char* help, double v) {
    head(name, "gauge", help);
    sample(name, "", v);
  }
  // A latency summary (ms): quantiles 0.5, 0.99 and the maximum over the scheduler's window.
  void latency(const char* name, const std::string& labels, const LatencySummary& l) {
    const std::string sep = labels.empty() ? "" : labels + ",";
    sample(name, sep + "quantile=\"0.5\"", l.p50_ms);
    sample(name, sep + "quantile=\"0.99\"", l.p99_ms);
    sample(name, sep + "quantile=\"1\"", l.max_ms);
    const std::string cname = std::string(name) + "_count";
    sample(cname.c_str(), labels, static_cast<double>(l.samples));
  }
};

// Label values: backslash, quote and newline escaped.
std::string label(const std::string& v) {
  std::string s;
  for (char c : v) {
    if (c == '\\' || c == '"') s += '\\';
    if (c == '\n') {
      s += "\\n";
      continue;
    }
    s += c;
  }
  return s;
}

}  // namespace

std::string metrics_text(const ServerStats& sv, const SchedulerStats& sc, const Policy& policy) {
  Writer w;
  w.counter("vlart_connections_total", "Websocket connections accepted.", static_cast<double>(sv.connections_total));
  w.gauge("vlart_connections_open", "Websocket connections open now.", static_cast<double>(sv.connections_open));
  w.counter("vlart_connections_refused_total", "Websocket upgrades refused (connection limit or stopping).",
            static_cast<double>(sv.connections_refused));
  w.counter("vlart_requests_total", "Observation messages received.", static_cast<double>(sv.requests));
  w.counter("vlart_responses_total", "Action responses sent.", static_cast<double>(sv.responses));
  w.counter("vlart_bad_requests_total", "Requests refused before the scheduler (decode or validation error).",
            static_cast<double>(sv.bad_requests));
  w.counter("vlart_failed_requests_total", "Requests the scheduler answered with an error.",
            static_cast<double>(sv.failed));
  w.counter("vlart_http_requests_total", "Plain HTTP requests (healthz, metrics, others).",
            static_cast<double>(sv.http_requests));
  w.counter("vlart_received_bytes_total", "Websocket message bytes received.", static_cast<double>(sv.bytes_in));
  w.counter("vlart_sent_bytes_total", "Websocket message bytes sent.", static_cast<double>(sv.bytes_out));

  w.head("vlart_scheduler_requests_total", "counter", "Scheduler answers by status.");
  const std::pair<const char*, uint64_t> by_status[] = {
      {"submitted", sc.submitted}, {"ok", sc.ok},         {"timeout", sc.timeout},   {"invalid", sc.invalid},
      {"rejected", sc.rejected},   {"cancelled", sc.cancelled}, {"error", sc.errors}};
  for (const auto& [name, v] : by_status)
    w.sample("vlart_scheduler_requests_total", std::string("status=\"") + name + "\"", static_cast<double>(v));
  w.counter("vlart_scheduler_batches_total", "Policy::infer_batch calls.", static_cast<double>(sc.batches));
  w.gauge("vlart_scheduler_queue_depth", "Requests queued now (not running).", static_cast<double>(sc.queue_depth));
  w.gauge("vlart_scheduler_queue_depth_max", "Highest queue depth seen.", static_cast<double>(sc.max_queue_depth));
  w.head("vlart_scheduler_batch_size_total", "counter", "Batches by number of requests.");
  for (size_t i = 1; i < sc.batch_size_histogram.size(); ++i)
    w.sample("vlart_scheduler_batch_size_total", "size=\"" + std::to_string(i) + "\"",
             static_cast<double>(sc.batch_size_histogram[i]));

  w.head("vlart_queue_wait_ms", "summary", "Time answered requests waited in the queue (ms, recent window).");
  w.latency("vlart_queue_wait_ms", "", sc.queue_wait);
  w.head("vlart_inference_ms", "summary", "Inference time of answered requests (ms, recent window).");
  w.latency("vlart_inference_ms", "", sc.total);
  w.head("vlart_stage_ms", "summary", "Per-stage time of answered requests (ms, recent window).");
  for (const auto& [stage, l] : sc.stages) w.latency("vlart_stage_ms", "stage=\"" + label(stage) + "\"", l);

  w.head("vlart_cache_lookups_total", "counter", "Policy cache look-ups by cache and result.");
  const std::pair<const char*, CacheStats> caches[] = {{"vision", policy.vision_cache_stats()},
                                                       {"task", policy.task_cache_stats()},
                                                       {"vision_reuse", policy.vision_reuse_stats().cache}};
  for (const auto& [name, c] : caches) {
    w.sample("vlart_cache_lookups_total", std::string("cache=\"") + name + "\",result=\"hit\"",
             static_cast<double>(c.hits));
    w.sample("vlart_cache_lookups_total", std::string("cache=\"") + name + "\",result=\"miss\"",
             static_cast<double>(c.misses));
  }
  w.head("vlart_cache_bytes", "gauge", "Bytes held by each policy cache.");
  for (const auto& [name, c] : caches)
    w.sample("vlart_cache_bytes", std::string("cache=\"") + name + "\"", static_cast<double>(c.bytes));
  w.head("vlart_policy_info", "gauge", "The served policy (labels), always 1.");
  const PolicyInfo& pi = policy.info();
  w.sample("vlart_policy_info",
           "family=\"" + label(pi.family) + "\",backend=\"" + label(pi.backend) + "\",dtype=\"" +
               dtype_name(pi.compute_dtype) + "\"",
           1);
  return w.out;
}

}  // namespace vlart::serve
