// Scheduler: bounded deadline-ordered queue, one worker thread that batches requests into
// Policy::infer_batch, per-request answers through promises or callbacks.
#include "vlart/scheduler.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <map>
#include <mutex>
#include <random>
#include <thread>
#include <utility>

#include "core/log.h"
#include "runtime/latency_window.h"
#include "runtime/telemetry.h"
#include "vlart/error.h"

namespace vlart {

using Clock = Scheduler::Clock;
using Status = Scheduler::Status;

const char* Scheduler::status_name(Status s) {
  switch (s) {
    case Status::kOk: return "ok";
    case Status::kTimeout: return "timeout";
    case Status::kInvalid: return "invalid";
    case Status::kRejectedQueueFull: return "rejected_queue_full";
    case Status::kCancelled: return "cancelled";
    case Status::kError: return "error";
  }
  return "unknown";
}

namespace {

struct Request {
  uint64_t seq = 0;
  Observation obs;
  Clock::time_point deadline = Clock::time_point::max();  // max = none
  Clock::time_point arrival;
  std::vector<float> noise;  // empty: draw from the scheduler's generator
  std::promise<Scheduler::Result> promise;
  Scheduler::Callback callback;  // when set, used instead of the promise
};

// Queue order: earliest deadline first (none = time_point::max, last), then submission order.
struct QueueKey {
  Clock::time_point deadline;
  uint64_t seq;
  bool operator<(const QueueKey& o) const { return deadline != o.deadline ? deadline < o.deadline : seq < o.seq; }
};

constexpr int64_t kWakeGuardUs = 1000;

int64_t us_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration_cast<std::chrono::microseconds>(b - a).count();
}

Status status_for(const Error& e) {
  return e.code() == ErrorCode::kInvalidArgument || e.code() == ErrorCode::kNotFound ? Status::kInvalid
                                                                                      : Status::kError;
}

}  // namespace

struct Scheduler::Impl {
  Policy& policy;
  SchedulerOptions opts;
  size_t noise_len = 0;
  std::string noise_shape_str;  // "50 x 32", for error messages

  // Queue state, guarded by mu.
  mutable std::mutex mu;
  std::condition_variable cv;
  std::map<QueueKey, std::unique_ptr<Request>> queue;
  std::map<uint64_t, Clock::time_point> arrivals;  // seq -> arrival; begin() = oldest queued
  uint64_t next_seq = 0;
  bool stopping = false;
  bool paused = false;
  double est_batch_ms = 0;  // EWMA of batch run time: flush early enough to meet the head deadline
  std::atomic<bool> stopped_flag{false};

  std::thread worker;
  std::thread::id worker_id;  // guarded by mu (set by the worker itself)
  std::mutex join_mu;

  // Worker-only state.
  std::mt19937_64 rng;
  std::vector<float> noise_buf;
  uint64_t logged_answers = 0;  // answers counted at the last telemetry line
  Clock::time_point logged_at = Clock::now();

  // Telemetry, guarded by stats_mu.
  mutable std::mutex stats_mu;
  SchedulerStats counts;  // counters, histogram, queue depths (latency fields filled by stats())
  detail::LatencyWindow w_queue, w_total;
  std::vector<std::string> stage_names;         // PolicyInfo::stages
  std::vector<detail::LatencyWindow> w_stages;  // one per stage name

  Impl(Policy& p, const SchedulerOptions& o)
      : policy(p),
        opts(o),
        rng(o.noise_seed),
        w_queue(o.latency_window),
        w_total(o.latency_window),
        stage_names(p.info().stages) {
    for (size_t i = 0; i < stage_names.size(); ++i) w_stages.emplace_back(o.latency_window);
    counts.batch_size_histogram.assign(static_cast<size_t>(o.max_batch) + 1, 0);
    noise_len = static_cast<size_t>(p.noise_numel());
    for (int64_t d : p.info().noise_shape) noise_shape_str += (noise_shape_str.empty() ? "" : " x ") + std::to_string(d);
  }

  SchedulerStats snapshot() const {
    size_t depth = 0;
    {
      std::lock_guard<std::mutex> lk(mu);
      depth = queue.size();
    }
    std::lock_guard<std::mutex> lk(stats_mu);
    SchedulerStats s = counts;
    s.queue_depth = depth;
    s.queue_wait = w_queue.summary();
    for (size_t i = 0; i < stage_names.size(); ++i) s.stages.emplace_back(stage_names[i], w_stages[i].summary());
    s.total = w_total.summary();
    return s;
  }

  // Worker, after a batch, holding no lock: one telemetry line when due (SchedulerOptions).
  void maybe_log_telemetry() {
    if (opts.telemetry_log_every == 0 && opts.telemetry_log_period.count() <= 0) return;
    const Clock::time_point now = Clock::now();
    uint64_t answers = 0;
    {
      std::lock_guard<std::mutex> lk(stats_mu);
      answers =
          counts.ok + counts.timeout + counts.invalid + counts.rejected + counts.cancelled + counts.errors;
    }
    const bool by_count =
        opts.telemetry_log_every > 0 && answers - logged_answers >= opts.telemetry_log_every;
    const bool by_time =
        opts.telemetry_log_period.count() > 0 && now - logged_at >= opts.telemetry_log_period;
    if (!by_count && !by_time) return;
    logged_answers = answers;
    logged_at = now;
    const spdlog::level::level_enum lvl = to_spdlog(opts.telemetry_log_level);
    if (!logger().should_log(lvl)) return;
    const std::string line =
        "scheduler telemetry: " + detail::format_scheduler(snapshot()) + "; " + detail::format_caches(policy);
    logger().log(lvl, "{}", line);
  }

  // Counts the answer, then hands it over (promise or callback). Never throws.
  void answer(Request& r, Result&& res) {
    {
      std::lock_guard<std::mutex> lk(stats_mu);
      switch (res.status) {
        case Status::kOk:
          ++counts.ok;
          w_queue.add(static_cast<double>(res.queue_us) / 1000.0);
          for (size_t i = 0; i < stage_names.size(); ++i) w_stages[i].add(res.chunk.timings.ms(stage_names[i]));
          w_total.add(res.chunk.timings.total_ms);
          break;
        case Status::kTimeout: ++counts.timeout; break;
        case Status::kInvalid: ++counts.invalid; break;
        case Status::kRejectedQueueFull: ++counts.rejected; break;
        case Status::kCancelled: ++counts.cancelled; break;
        case Status::kError: ++counts.errors; break;
      }
    }
    if (logger().should_log(spdlog::level::debug) && res.status != Status::kOk)
      logger().debug("scheduler: request {} {}: {}", r.seq, status_name(res.status), res.message);
    try {
      if (r.callback)
        r.callback(std::move(res));
      else
        r.promise.set_value(std::move(res));
    } catch (...) {
      // A throwing callback must not take the worker down; the request counts as answered.
    }
  }

  void answer_early(Request& r, Status st, std::string msg) {
    Result res;
    res.status = st;
    res.message = std::move(msg);
    res.queue_us = us_between(r.arrival, Clock::now());
    answer(r, std::move(res));
  }

  void submit(std::unique_ptr<Request> r, std::optional<Clock::time_point> deadline,
              std::optional<std::vector<float>> noise) {
    r->arrival = Clock::now();
    {
      std::lock_guard<std::mutex> lk(stats_mu);
      ++counts.submitted;
    }
    if (stopped_flag.load(std::memory_order_acquire))
      return answer_early(*r, Status::kCancelled, "scheduler is shut down");
    if (noise) {
      if (noise->size() != noise_len)
        return answer_early(*r, Status::kInvalid,
                            detail::concat("Scheduler::submit: noise has ", noise->size(), " values, expected ",
                                           noise_shape_str, " = ", noise_len));
      for (size_t i = 0; i < noise->size(); ++i)
        if (!std::isfinite((*noise)[i]))
          return answer_early(*r, Status::kInvalid,
                              detail::concat("Scheduler::submit: noise[", i, "] is not finite (", (*noise)[i], ")"));
      r->noise = std::move(*noise);
    }
    try {
      policy.validate(r->obs);
    } catch (const Error& e) {
      return answer_early(*r, status_for(e), e.what());
    } catch (const std::exception& e) {
      return answer_early(*r, Status::kError, e.what());
    }
    if (!deadline && opts.default_deadline) deadline = r->arrival + *opts.default_deadline;
    if (deadline) {
      if (*deadline <= r->arrival)
        return answer_early(*r, Status::kTimeout,
                            detail::concat("deadline passed ", us_between(*deadline, r->arrival),
                                           " us before submit"));
      r->deadline = *deadline;
    }
    std::unique_lock<std::mutex> lk(mu);
    if (stopping) {
      lk.unlock();
      return answer_early(*r, Status::kCancelled, "scheduler is shut down");
    }
    if (queue.size() >= opts.max_queue) {
      lk.unlock();
      return answer_early(*r, Status::kRejectedQueueFull,
                          detail::concat("queue full (max_queue = ", opts.max_queue, ")"));
    }
    r->seq = next_seq++;
    const QueueKey key{r->deadline, r->seq};
    arrivals.emplace(r->seq, r->arrival);
    queue.emplace(key, std::move(r));
    const size_t depth = queue.size();
    lk.unlock();
    cv.notify_one();
    std::lock_guard<std::mutex> slk(stats_mu);
    counts.max_queue_depth = std::max(counts.max_queue_depth, depth);
  }

  void worker_loop() {
    std::unique_lock<std::mutex> lk(mu);
    worker_id = std::this_thread::get_id();
    for (;;) {
      if (queue.empty()) {
        if (stopping) return;
        cv.wait(lk);
        continue;
      }
      if (paused && !stopping) {
        cv.wait(lk);
        continue;
      }
      Clock::time_point now = Clock::now();
      if (!stopping && queue.size() < static_cast<size_t>(opts.max_batch)) {
        Clock::time_point flush_at = arrivals.begin()->second + std::chrono::microseconds(opts.max_wait_us);
        const Clock::time_point head = queue.begin()->first.deadline;
        if (head != Clock::time_point::max()) {
          // Start the head request early enough to finish by its deadline (estimated batch time),
          // plus a guard for the wake-up latency of wait_until: at least kWakeGuardUs, and 5% of
          // the head request's slack (a loaded machine can wake the worker milliseconds late, and a
          // request that waited 200 ms for company must not then miss its start by one).
          const int64_t slack_us = std::chrono::duration_cast<std::chrono::microseconds>(
                                       head - queue.begin()->second->arrival).count();
          const int64_t guard_us = std::max<int64_t>(kWakeGuardUs, slack_us / 20);
          const auto service = std::chrono::microseconds(static_cast<int64_t>(est_batch_ms * 1000.0) + guard_us);
          flush_at = std::min(flush_at, head - service);
        }
        if (now < flush_at) {
          cv.wait_until(lk, flush_at);
          continue;
        }
      }
      std::vector<std::unique_ptr<Request>> batch, expired;
      while (!queue.empty() && batch.size() < static_cast<size_t>(opts.max_batch)) {
        auto it = queue.begin();
        arrivals.erase(it->second->seq);
        (it->first.deadline <= now ? expired : batch).push_back(std::move(it->second));
        queue.erase(it);
      }
      lk.unlock();
      for (auto& r : expired)
        answer_early(*r, Status::kTimeout,
                     detail::concat("deadline passed before the request could start (queued ",
                                    us_between(r->arrival, r->deadline), " us until its deadline)"));
      const auto t0 = Clock::now();
      if (!batch.empty()) run_batch(batch);
      const double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
      maybe_log_telemetry();
      lk.lock();
      if (!batch.empty()) est_batch_ms = est_batch_ms == 0 ? ms : 0.8 * est_batch_ms + 0.2 * ms;
    }
  }

  void run_batch(std::vector<std::unique_ptr<Request>>& batch) {
    const size_t n = batch.size();
    const Clock::time_point start = Clock::now();
    std::vector<Observation> obs;
    obs.reserve(n);
    noise_buf.resize(n * noise_len);
    std::normal_distribution<float> nd(0.f, 1.f);
    for (size_t i = 0; i < n; ++i) {
      obs.push_back(std::move(batch[i]->obs));
      float* dst = noise_buf.data() + i * noise_len;
      if (!batch[i]->noise.empty())
        std::copy(batch[i]->noise.begin(), batch[i]->noise.end(), dst);
      else
        for (size_t j = 0; j < noise_len; ++j) dst[j] = nd(rng);
    }
    {
      std::lock_guard<std::mutex> lk(stats_mu);
      ++counts.batches;
      ++counts.batch_size_histogram[n];
    }
    auto ok = [&](Request& r, ActionChunk&& c, int bs) {
      Result res;
      res.status = Status::kOk;
      res.chunk = std::move(c);
      res.queue_us = us_between(r.arrival, start);
      res.batch_size = bs;
      answer(r, std::move(res));
    };
    auto failed = [&](Request& r, Status st, std::string msg, int bs) {
      Result res;
      res.status = st;
      res.message = std::move(msg);
      res.queue_us = us_between(r.arrival, start);
      res.batch_size = bs;
      answer(r, std::move(res));
    };
    std::string batch_error;
    try {
      std::vector<ActionChunk> chunks = policy.infer_batch(obs, noise_buf.data());
      VLART_CHECK(chunks.size() == n, InternalError, "infer_batch returned ", chunks.size(), " chunks for ", n,
                  " observations");
      for (size_t i = 0; i < n; ++i) ok(*batch[i], std::move(chunks[i]), static_cast<int>(n));
      return;
    } catch (const std::exception& e) {
      batch_error = e.what();
    }
    // The batch failed although every request passed validate(): rerun one by one so that only the
    // culprit fails, with its error classified by type (a batch of one simply runs again).
    logger().debug("scheduler: batch of {} failed ({}); retrying one by one", n, batch_error);
    for (size_t i = 0; i < n; ++i) {
      std::vector<Observation> one;
      one.push_back(std::move(obs[i]));
      try {
        std::vector<ActionChunk> c = policy.infer_batch(one, noise_buf.data() + i * noise_len);
        ok(*batch[i], std::move(c.at(0)), 1);
      } catch (const Error& e) {
        failed(*batch[i], status_for(e), e.what(), 1);
      } catch (const std::exception& e) {
        failed(*batch[i], Status::kError, e.what(), 1);
      } catch (...) {
        failed(*batch[i], Status::kError, "unknown exception from Policy::infer_batch", 1);
      }
    }
  }
};

Scheduler::Scheduler(Policy& policy, const SchedulerOptions& opts) {
  VLART_CHECK(opts.max_batch >= 1, InvalidArgument, "SchedulerOptions::max_batch must be >= 1, got ", opts.max_batch);
  VLART_CHECK(opts.max_wait_us >= 0, InvalidArgument, "SchedulerOptions::max_wait_us must be >= 0, got ",
              opts.max_wait_us);
  VLART_CHECK(opts.max_queue >= 1, InvalidArgument, "SchedulerOptions::max_queue must be >= 1");
  VLART_CHECK(opts.latency_window >= 1, InvalidArgument, "SchedulerOptions::latency_window must be >= 1");
  VLART_CHECK(opts.telemetry_log_period.count() >= 0, InvalidArgument,
              "SchedulerOptions::telemetry_log_period must be >= 0");
  to_spdlog(opts.telemetry_log_level);  // throws InvalidArgument for a bad level
  VLART_CHECK(!opts.default_deadline || opts.default_deadline->count() > 0, InvalidArgument,
              "SchedulerOptions::default_deadline must be positive");
  impl_ = std::make_unique<Impl>(policy, opts);
  Impl* m = impl_.get();
  m->worker = std::thread([m] { m->worker_loop(); });
  logger().debug("scheduler: max_batch={} max_wait_us={} max_queue={}", opts.max_batch, opts.max_wait_us,
                 opts.max_queue);
}

Scheduler::~Scheduler() { shutdown(true); }

std::future<Scheduler::Result> Scheduler::submit(Observation obs, std::optional<Clock::time_point> deadline,
                                                 std::optional<std::vector<float>> noise) {
  auto r = std::make_unique<Request>();
  r->obs = std::move(obs);
  std::future<Result> f = r->promise.get_future();
  impl_->submit(std::move(r), deadline, std::move(noise));
  return f;
}

void Scheduler::submit(Observation obs, Callback done, std::optional<Clock::time_point> deadline,
                       std::optional<std::vector<float>> noise) {
  VLART_CHECK(static_cast<bool>(done), InvalidArgument, "Scheduler::submit: empty callback");
  auto r = std::make_unique<Request>();
  r->obs = std::move(obs);
  r->callback = std::move(done);
  impl_->submit(std::move(r), deadline, std::move(noise));
}

void Scheduler::shutdown(bool drain) {
  Impl& m = *impl_;
  std::vector<std::unique_ptr<Request>> cancelled;
  bool on_worker = false;
  {
    std::lock_guard<std::mutex> lk(m.mu);
    on_worker = std::this_thread::get_id() == m.worker_id;
    m.stopping = true;
    m.stopped_flag.store(true, std::memory_order_release);
    if (!drain) {
      for (auto& kv : m.queue) cancelled.push_back(std::move(kv.second));
      m.queue.clear();
      m.arrivals.clear();
    }
  }
  m.cv.notify_all();
  for (auto& r : cancelled) m.answer_early(*r, Status::kCancelled, "cancelled by Scheduler::shutdown");
  if (on_worker) return;  // called from a callback: the destructor (on another thread) joins
  std::lock_guard<std::mutex> jl(m.join_mu);
  if (m.worker.joinable()) m.worker.join();
}

void Scheduler::pause() {
  std::lock_guard<std::mutex> lk(impl_->mu);
  impl_->paused = true;
}

void Scheduler::resume() {
  {
    std::lock_guard<std::mutex> lk(impl_->mu);
    impl_->paused = false;
  }
  impl_->cv.notify_all();
}

SchedulerStats Scheduler::stats() const { return impl_->snapshot(); }

const SchedulerOptions& Scheduler::options() const { return impl_->opts; }

}  // namespace vlart
