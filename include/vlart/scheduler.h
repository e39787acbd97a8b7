// Batching scheduler: many clients (robots, threads) share one Policy.
//
//   vlart::Scheduler sched(*policy, opts);              // starts one worker thread
//   auto fut = sched.submit(obs, Clock::now() + 50ms);  // from any thread
//   vlart::Scheduler::Result r = fut.get();             // r.status, r.chunk
//
// Guarantees (see docs/serving.md):
//  - Exactly one worker thread calls the Policy (Policy is not thread-safe); submit() and stats()
//    are safe from any number of threads.
//  - Every submitted request gets exactly one answer (future value or callback call), including
//    requests rejected at submit, cancelled by shutdown, or submitted after shutdown.
//  - A request is validated on its own (Policy::validate at submit, on the caller's thread); a bad
//    request is answered kInvalid with the policy's message and never enters a batch. If a batch
//    still fails, its requests are retried one by one so that only the failing one fails.
//  - The queue is bounded (max_queue): a full queue answers kRejectedQueueFull at once.
//  - Queued requests run earliest deadline first (no deadline = last, FIFO among equals). A
//    deadline is the latest time a request may *start*: a request still queued at its deadline is
//    answered kTimeout without running. A request that started in time is answered kOk even if its
//    batch ends after the deadline (the chunk is still usable by a runner that aligns chunks).
//  - Noise: a request may carry its own [horizon, max_action_dim] initial noise. Requests without
//    noise get noise drawn from the scheduler's own generator (seeded by noise_seed), so a batch
//    always runs with explicit noise and mixed batches are never split. Consequently results of
//    noise-free requests depend on the order in which the worker served them.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "vlart/log.h"
#include "vlart/policy.h"

namespace vlart {

struct SchedulerOptions {
  int max_batch = 8;                // most requests per Policy::infer_batch call (>= 1)
  // Flush a partial batch this long after its oldest request arrived. Default 0: the worker starts
  // as soon as it is free, so a lone client pays no waiting, and requests that arrive while a
  // batch runs form the next batch. A wait only pays off when a larger batch is cheaper per
  // request (on the CPU today it is not: Policy::infer_batch runs observations one by one).
  int64_t max_wait_us = 0;
  size_t max_queue = 1024;          // queued (not yet running) requests; more are rejected (>= 1)
  // Deadline given to requests submitted without one, relative to submit time (nullopt: none).
  std::optional<std::chrono::microseconds> default_deadline;
  uint64_t noise_seed = 0;          // seed of the generator for requests submitted without noise
  size_t latency_window = 4096;     // latency percentiles are over the most recent this many requests
  // Telemetry log (off by default): after a batch, when at least telemetry_log_every requests were
  // answered since the last line (0 = never by count) or telemetry_log_period has passed since it
  // (0 = never by time), the worker logs one line on the "vlart" spdlog logger at
  // telemetry_log_level: stats() (answers by status, batches and their sizes, queue depth, p50/p99/max
  // of queue wait and every stage) and the policy's cache hit rates. Checked only after batches (an
  // idle scheduler logs nothing), formatted outside every lock, skipped without formatting when the
  // logger's level filters it out (the logger starts at warn: set_log_level, or VLART_LOG_LEVEL in
  // the CLI).
  uint64_t telemetry_log_every = 0;
  std::chrono::milliseconds telemetry_log_period{0};
  LogLevel telemetry_log_level = LogLevel::kInfo;
};

// p50/p99/max over the most recent SchedulerOptions::latency_window samples (ms).
struct LatencySummary {
  double p50_ms = 0, p99_ms = 0, max_ms = 0;
  size_t samples = 0;
};

struct SchedulerStats {
  // Every submit() call counts once in `submitted` and, once answered, in exactly one of the others:
  // submitted == ok + timeout + invalid + rejected + cancelled + errors + (queued or running).
  uint64_t submitted = 0, ok = 0, timeout = 0, invalid = 0, rejected = 0, cancelled = 0, errors = 0;
  uint64_t batches = 0;                        // Policy::infer_batch calls
  std::vector<uint64_t> batch_size_histogram;  // [max_batch + 1]: index = requests in the batch
  size_t queue_depth = 0;                      // queued now (not counting the running batch)
  size_t max_queue_depth = 0;                  // highest queue_depth seen
  // Per answered-kOk request: time queued, the stages of its ActionChunk::timings (the policy's
  // PolicyInfo::stages, in that order) and the total.
  LatencySummary queue_wait, total;
  std::vector<std::pair<std::string, LatencySummary>> stages;
  // The named stage's summary (an empty one when the policy has no such stage).
  LatencySummary stage(const std::string& name) const {
    for (const auto& s : stages)
      if (s.first == name) return s.second;
    return {};
  }
};

class Scheduler {
 public:
  using Clock = std::chrono::steady_clock;

  enum class Status { kOk, kTimeout, kInvalid, kRejectedQueueFull, kCancelled, kError };
  static const char* status_name(Status s);

  struct Result {
    Status status = Status::kError;
    std::string message;  // empty for kOk; otherwise why (the policy's message for kInvalid)
    ActionChunk chunk;    // filled for kOk
    int64_t queue_us = 0;   // submit -> start of its batch (or -> the answer, if it never ran)
    int batch_size = 0;     // requests in the batch it ran in (0 if it never ran)
  };
  // Called exactly once, on the worker thread, or on the submitting thread when the request is
  // answered at submit (invalid, queue full, after shutdown). It must not block for long (it delays
  // the whole queue) and must not destroy the scheduler; it may call shutdown(), which then returns
  // without waiting for the worker (the destructor joins it). Exceptions it throws are swallowed.
  using Callback = std::function<void(Result&&)>;

  // `policy` must outlive the scheduler; nothing else may call it while the scheduler runs.
  // Throws InvalidArgument for bad options.
  explicit Scheduler(Policy& policy, const SchedulerOptions& opts = {});
  ~Scheduler();  // shutdown(/*drain=*/true)
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // `noise`: [horizon * max_action_dim] floats (a wrong size or a non-finite value is kInvalid).
  std::future<Result> submit(Observation obs, std::optional<Clock::time_point> deadline = std::nullopt,
                             std::optional<std::vector<float>> noise = std::nullopt);
  void submit(Observation obs, Callback done, std::optional<Clock::time_point> deadline = std::nullopt,
              std::optional<std::vector<float>> noise = std::nullopt);

  // Stops accepting work (later submits are answered kCancelled). drain=true: queued requests run
  // (without waiting for batches to fill); drain=false: every queued request is answered kCancelled.
  // The running batch always completes. Returns when the worker has exited. Idempotent.
  void shutdown(bool drain = true);

  // While paused the worker starts no batch (queued requests wait, deadlines keep running). For
  // maintenance and for tests that need a deterministic queue. shutdown() overrides a pause.
  void pause();
  void resume();

  SchedulerStats stats() const;
  const SchedulerOptions& options() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace vlart
