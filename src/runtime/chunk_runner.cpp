// ChunkRunner: triple-buffered chunk handoff from an inference thread to a wait-free controller.
#include "vlart/chunk_runner.h"

#include <semaphore.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <thread>
#include <vector>

#include "core/log.h"
#include "runtime/latency_window.h"
#include "vlart/error.h"

namespace vlart {

const char* blend_mode_name(BlendMode m) {
  switch (m) {
    case BlendMode::kWeightedAverage: return "weighted_average";
    case BlendMode::kRealTimeChunking: return "rtc";
  }
  return "unknown";
}

BlendMode parse_blend_mode(const std::string& s) {
  if (s == "weighted_average") return BlendMode::kWeightedAverage;
  if (s == "rtc") return BlendMode::kRealTimeChunking;
  throw InvalidArgument("unknown blend mode '" + s + "' (expected weighted_average or rtc)");
}

const char* action_status_name(ActionStatus s) {
  switch (s) {
    case ActionStatus::kFresh: return "fresh";
    case ActionStatus::kBlended: return "blended";
    case ActionStatus::kHoldingLast: return "holding_last";
    case ActionStatus::kEmpty: return "empty";
  }
  return "unknown";
}

namespace {

struct StampedObservation {
  Observation obs;
  uint64_t tick = 0;  // controller tick when it arrived
};

// A raw chunk from the source, as handed over by the triple buffer.
struct Slot {
  std::vector<float> data;  // [horizon, action_dim]
  uint64_t obs_tick = 0;
};

// The controller's plan: actions for the coming ticks, and whether each one involves the old plan.
struct Plan {
  std::vector<float> actions;    // [horizon, action_dim]
  std::vector<uint8_t> blended;  // [horizon]
  int64_t len = 0, pos = 0;
};

constexpr uint32_t kFreshBit = 4;  // set in mid_ when the middle slot holds an unread chunk

}  // namespace

struct ChunkRunner::Impl {
  InferFn infer;
  int64_t H, D;
  ChunkRunnerOptions opts;

  // Triple buffer. The producer owns slots[back], the consumer slots[front]; mid is exchanged.
  Slot slots[3];
  uint32_t back = 0;   // inference thread only
  uint32_t front = 1;  // controller only
  std::atomic<uint32_t> mid{2};

  // Controller-only state (plus atomics mirrored for readers).
  Plan plans[2];
  int cur = 0;
  std::vector<float> last;
  bool have_last = false;
  bool in_miss = false;
  std::atomic<uint64_t> ticks{0};
  std::atomic<int64_t> remaining{0};
  std::atomic<uint64_t> chunks_received{0}, chunks_stale{0}, misses{0}, held{0};

  // Inference request: set by the controller (then sem posted); cleared when the chunk is taken,
  // or by the inference thread when the call failed.
  std::atomic<bool> requested{false};
  sem_t sem;

  // Latest observation, guarded by obs_mu.
  std::mutex obs_mu;
  std::condition_variable obs_cv;
  std::shared_ptr<const StampedObservation> latest;
  bool stop = false;  // guarded by obs_mu
  std::atomic<bool> stop_flag{false};

  // Inference telemetry, guarded by tel_mu.
  mutable std::mutex tel_mu;
  detail::LatencyWindow latency;
  uint64_t inferences = 0, errors = 0;
  std::string last_error;

  std::thread worker;

  Impl(InferFn fn, int64_t h, int64_t d, const ChunkRunnerOptions& o)
      : infer(std::move(fn)), H(h), D(d), opts(o), latency(o.latency_window) {
    VLART_CHECK(static_cast<bool>(infer), InvalidArgument, "ChunkRunner: empty inference function");
    VLART_CHECK(h > 0 && d > 0, InvalidArgument, "ChunkRunner: horizon and action_dim must be positive, got ", h,
                " and ", d);
    VLART_CHECK(o.trigger_remaining >= 0, InvalidArgument, "ChunkRunnerOptions::trigger_remaining must be >= 0");
    VLART_CHECK(o.new_weight >= 0.f && o.new_weight <= 1.f, InvalidArgument,
                "ChunkRunnerOptions::new_weight must be in [0, 1], got ", o.new_weight);
    VLART_CHECK(o.rtc_commit >= 0 && o.rtc_crossfade >= 0, InvalidArgument,
                "ChunkRunnerOptions::rtc_commit and rtc_crossfade must be >= 0");
    VLART_CHECK(o.latency_window >= 1, InvalidArgument, "ChunkRunnerOptions::latency_window must be >= 1");
    const size_t n = static_cast<size_t>(h * d);
    for (Slot& s : slots) s.data.assign(n, 0.f);
    for (Plan& p : plans) {
      p.actions.assign(n, 0.f);
      p.blended.assign(static_cast<size_t>(h), 0);
    }
    last.assign(static_cast<size_t>(d), 0.f);
    VLART_CHECK(sem_init(&sem, 0, 0) == 0, InternalError, "ChunkRunner: sem_init failed: ", std::strerror(errno));
  }

  // ---- inference thread ----
  void fail(const std::string& msg) {
    requested.store(false, std::memory_order_release);  // let the controller ask again
    {
      std::lock_guard<std::mutex> lk(tel_mu);
      ++errors;
      last_error = msg;
    }
    logger().debug("chunk runner: inference failed: {}", msg);
  }

  void loop() {
    for (;;) {
      while (sem_wait(&sem) != 0 && errno == EINTR) {
      }
      if (stop_flag.load(std::memory_order_acquire)) return;
      std::shared_ptr<const StampedObservation> obs;
      {
        std::unique_lock<std::mutex> lk(obs_mu);
        obs_cv.wait(lk, [&] { return stop || latest != nullptr; });
        if (stop) return;
        obs = latest;
      }
      const auto t0 = std::chrono::steady_clock::now();
      {
        std::lock_guard<std::mutex> lk(tel_mu);
        ++inferences;
      }
      ActionChunk c;
      try {
        c = infer(obs->obs);
      } catch (const std::exception& e) {
        fail(e.what());
        continue;
      }
      if (c.horizon != H || c.action_dim != D || static_cast<int64_t>(c.data.size()) != H * D) {
        fail(detail::concat("chunk is ", c.horizon, " x ", c.action_dim, " (", c.data.size(), " values), expected ",
                            H, " x ", D));
        continue;
      }
      const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      {
        std::lock_guard<std::mutex> lk(tel_mu);
        latency.add(ms);
      }
      Slot& s = slots[back];
      std::copy(c.data.begin(), c.data.end(), s.data.begin());
      s.obs_tick = obs->tick;
      back = mid.exchange(back | kFreshBit, std::memory_order_acq_rel) & 3u;
    }
  }

  // ---- controller thread ----
  // Merges the chunk in slots[front], taken at tick `now`, into the plan.
  void take_chunk(uint64_t now) {
    const Slot& s = slots[front];
    requested.store(false, std::memory_order_release);
    const uint64_t k64 = now >= s.obs_tick ? now - s.obs_tick : 0;
    if (k64 >= static_cast<uint64_t>(H)) {
      chunks_stale.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    const int64_t k = static_cast<int64_t>(k64);
    const Plan& old = plans[cur];
    Plan& nw = plans[1 - cur];
    const int64_t n_new = H - k;
    const int64_t n_old = old.len - old.pos;  // overlap = min(n_old, n_new)
    const float w = opts.new_weight;
    const int64_t d = opts.rtc_commit, f = opts.rtc_crossfade;
    for (int64_t j = 0; j < n_new; ++j) {
      const float* a_new = s.data.data() + (k + j) * D;
      float* dst = nw.actions.data() + j * D;
      if (j >= n_old) {
        std::copy(a_new, a_new + D, dst);
        nw.blended[static_cast<size_t>(j)] = 0;
        continue;
      }
      const float* a_old = old.actions.data() + (old.pos + j) * D;
      float wn = 0.f;  // weight of the new chunk at this tick
      if (opts.blend == BlendMode::kWeightedAverage) {
        wn = w;
      } else if (j < d) {
        wn = 0.f;
      } else if (j < d + f) {
        wn = static_cast<float>(j - d + 1) / static_cast<float>(f + 1);
      } else {
        wn = 1.f;
      }
      if (wn == 1.f) {
        std::copy(a_new, a_new + D, dst);
        nw.blended[static_cast<size_t>(j)] = 0;
      } else if (wn == 0.f) {  // committed: exactly the old action
        std::copy(a_old, a_old + D, dst);
        nw.blended[static_cast<size_t>(j)] = 1;
      } else {
        for (int64_t a = 0; a < D; ++a) dst[a] = (1.f - wn) * a_old[a] + wn * a_new[a];
        nw.blended[static_cast<size_t>(j)] = 1;
      }
    }
    nw.len = n_new;
    nw.pos = 0;
    cur = 1 - cur;
    in_miss = false;
    chunks_received.fetch_add(1, std::memory_order_relaxed);
  }

  ActionStatus next_action(float* out) {
    const uint64_t now = ticks.load(std::memory_order_relaxed);
    if (mid.load(std::memory_order_acquire) & kFreshBit) {
      front = mid.exchange(front, std::memory_order_acq_rel) & 3u;
      take_chunk(now);
    }
    Plan& p = plans[cur];
    ActionStatus st;
    if (p.pos < p.len) {
      const float* a = p.actions.data() + p.pos * D;
      std::copy(a, a + D, out);
      std::copy(a, a + D, last.data());
      have_last = true;
      st = p.blended[static_cast<size_t>(p.pos)] ? ActionStatus::kBlended : ActionStatus::kFresh;
      ++p.pos;
    } else if (have_last) {
      std::copy(last.begin(), last.end(), out);
      held.fetch_add(1, std::memory_order_relaxed);
      if (!in_miss) {
        in_miss = true;
        misses.fetch_add(1, std::memory_order_relaxed);
      }
      st = ActionStatus::kHoldingLast;
    } else {
      st = ActionStatus::kEmpty;
    }
    ticks.store(now + 1, std::memory_order_release);
    const int64_t left = p.len - p.pos;
    remaining.store(left, std::memory_order_relaxed);
    if (left <= opts.trigger_remaining && !requested.load(std::memory_order_acquire)) {
      requested.store(true, std::memory_order_release);
      sem_post(&sem);
    }
    return st;
  }
};

ChunkRunner::ChunkRunner(Policy& policy, const ChunkRunnerOptions& opts)
    : ChunkRunner([&policy](const Observation& o) { return policy.infer(o); }, policy.horizon(), policy.action_dim(),
                  opts) {}

ChunkRunner::ChunkRunner(Scheduler& sched, int64_t horizon, int64_t action_dim, const ChunkRunnerOptions& opts)
    : ChunkRunner(
          [&sched](const Observation& o) {
            Scheduler::Result r = sched.submit(o).get();
            if (r.status != Scheduler::Status::kOk)
              throw Error(r.status == Scheduler::Status::kInvalid ? ErrorCode::kInvalidArgument : ErrorCode::kInternal,
                          std::string("scheduler answered ") + Scheduler::status_name(r.status) + ": " + r.message);
            return std::move(r.chunk);
          },
          horizon, action_dim, opts) {}

ChunkRunner::ChunkRunner(InferFn infer, int64_t horizon, int64_t action_dim, const ChunkRunnerOptions& opts)
    : impl_(std::make_unique<Impl>(std::move(infer), horizon, action_dim, opts)) {
  Impl* m = impl_.get();
  m->worker = std::thread([m] { m->loop(); });
  logger().debug("chunk runner: horizon={} action_dim={} trigger_remaining={} blend={}", horizon, action_dim,
                 opts.trigger_remaining, blend_mode_name(opts.blend));
}

ChunkRunner::~ChunkRunner() {
  Impl& m = *impl_;
  {
    std::lock_guard<std::mutex> lk(m.obs_mu);
    m.stop = true;
  }
  m.stop_flag.store(true, std::memory_order_release);
  m.obs_cv.notify_all();
  sem_post(&m.sem);
  if (m.worker.joinable()) m.worker.join();
  sem_destroy(&m.sem);
}

void ChunkRunner::update_observation(Observation obs) {
  Impl& m = *impl_;
  auto p = std::make_shared<const StampedObservation>(
      StampedObservation{std::move(obs), m.ticks.load(std::memory_order_acquire)});
  std::shared_ptr<const StampedObservation> old;
  {
    std::lock_guard<std::mutex> lk(m.obs_mu);
    old = std::move(m.latest);
    m.latest = std::move(p);
  }
  m.obs_cv.notify_one();
  // `old` is released here, outside the lock (the inference thread may still hold it).
}

ActionStatus ChunkRunner::next_action(float* out) { return impl_->next_action(out); }

bool ChunkRunner::chunk_pending() const { return (impl_->mid.load(std::memory_order_acquire) & kFreshBit) != 0; }

int64_t ChunkRunner::remaining() const { return impl_->remaining.load(std::memory_order_relaxed); }

ChunkRunnerStats ChunkRunner::stats() const {
  const Impl& m = *impl_;
  ChunkRunnerStats s;
  s.ticks = m.ticks.load(std::memory_order_relaxed);
  s.chunks_received = m.chunks_received.load(std::memory_order_relaxed);
  s.chunks_stale = m.chunks_stale.load(std::memory_order_relaxed);
  s.misses = m.misses.load(std::memory_order_relaxed);
  s.actions_held = m.held.load(std::memory_order_relaxed);
  s.remaining = m.remaining.load(std::memory_order_relaxed);
  std::lock_guard<std::mutex> lk(m.tel_mu);
  s.inferences = m.inferences;
  s.inference_errors = m.errors;
  s.inference = m.latency.summary();
  s.last_error = m.last_error;
  return s;
}

int64_t ChunkRunner::horizon() const { return impl_->H; }
int64_t ChunkRunner::action_dim() const { return impl_->D; }
const ChunkRunnerOptions& ChunkRunner::options() const { return impl_->opts; }

}  // namespace vlart
