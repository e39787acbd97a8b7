// Scheduler: exactly one answer per request under concurrent load with invalid inputs and
// deadlines, results equal to Policy::infer with the same noise, queue limits, deadline order,
// batching by size and by wait time, shutdown drain vs cancel, telemetry.
#include "vlart/scheduler.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <limits>
#include <mutex>
#include <random>
#include <thread>

#include "serve_fixture.h"
#include "vlart/error.h"

namespace vlart {
namespace {

using namespace std::chrono_literals;
using Clock = Scheduler::Clock;
using St = Scheduler::Status;

#ifdef VLART_TSAN_BUILD
constexpr int kThreads = 16, kPerThread = 30;  // TSan runs ~10x slower; the interleavings still vary
#else
constexpr int kThreads = 16, kPerThread = 200;
#endif

class SchedulerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    policy_ = testing::load_default_policy().release();
    noise_len_ = static_cast<size_t>(policy_->noise_numel());
    std::mt19937 g(123);
    std::normal_distribution<float> nd(0.f, 1.f);
    for (int k = 0; k < kObs; ++k) obs_[k] = testing::sample_observation(0.1f * static_cast<float>(k) - 0.15f);
    for (int n = 0; n < kNoise; ++n) {
      noise_[n].resize(noise_len_);
      for (float& v : noise_[n]) v = nd(g);
    }
    // References from direct, single calls (before any scheduler exists: Policy is single-threaded).
    for (int k = 0; k < kObs; ++k)
      for (int n = 0; n < kNoise; ++n) ref_[k][n] = policy_->infer(obs_[k], noise_[n].data()).data;
  }
  static void TearDownTestSuite() {
    delete policy_;
    policy_ = nullptr;
  }

  static constexpr int kObs = 3, kNoise = 3;
  static Policy* policy_;
  static size_t noise_len_;
  static Observation obs_[kObs];
  static std::vector<float> noise_[kNoise];
  static std::vector<float> ref_[kObs][kNoise];
};

Policy* SchedulerTest::policy_ = nullptr;
size_t SchedulerTest::noise_len_ = 0;
Observation SchedulerTest::obs_[kObs];
std::vector<float> SchedulerTest::noise_[kNoise];
std::vector<float> SchedulerTest::ref_[kObs][kNoise];

float max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return std::numeric_limits<float>::infinity();
  float m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::fabs(a[i] - b[i]));
  return m;
}

enum class Kind { kValidNoise, kValidNoNoise, kWrongState, kNanState, kUnknownCamera, kExpired, kShortDeadline };

struct Planned {
  Kind kind;
  int obs = 0, noise = 0;
};

TEST_F(SchedulerTest, ManyClientsEveryRequestAnsweredOnceAndCorrect) {
  SchedulerOptions so;
  so.max_batch = 8;
  so.max_wait_us = 1000;
  so.max_queue = kThreads * kPerThread;  // nothing is rejected here (queue-full is tested alone)
  Scheduler sched(*policy_, so);

  const int total = kThreads * kPerThread;
  std::vector<std::atomic<int>> answers(static_cast<size_t>(total));
  std::vector<Planned> plan(static_cast<size_t>(total));
  std::vector<Scheduler::Result> results(static_cast<size_t>(total));
  std::mutex results_mu;  // callbacks run on the worker thread
  for (auto& a : answers) a = 0;

  auto record = [&](int id, Scheduler::Result&& r) {
    answers[static_cast<size_t>(id)].fetch_add(1);
    std::lock_guard<std::mutex> lk(results_mu);
    results[static_cast<size_t>(id)] = std::move(r);
  };

  std::vector<std::thread> clients;
  for (int t = 0; t < kThreads; ++t) {
    clients.emplace_back([&, t] {
      std::mt19937 g(1000 + static_cast<unsigned>(t));
      std::vector<std::pair<int, std::future<Scheduler::Result>>> futures;
      for (int i = 0; i < kPerThread; ++i) {
        const int id = t * kPerThread + i;
        Planned p;
        const int roll = static_cast<int>(g() % 100);
        p.kind = roll < 50   ? Kind::kValidNoise
                 : roll < 60 ? Kind::kValidNoNoise
                 : roll < 67 ? Kind::kWrongState
                 : roll < 73 ? Kind::kNanState
                 : roll < 79 ? Kind::kUnknownCamera
                 : roll < 89 ? Kind::kExpired
                             : Kind::kShortDeadline;
        p.obs = static_cast<int>(g() % kObs);
        p.noise = static_cast<int>(g() % kNoise);
        plan[static_cast<size_t>(id)] = p;
        Observation o = obs_[p.obs];
        std::optional<std::vector<float>> noise = noise_[p.noise];
        std::optional<Clock::time_point> deadline;
        switch (p.kind) {
          case Kind::kValidNoise: if (g() % 2) deadline = Clock::now() + 120s; break;
          case Kind::kValidNoNoise: noise.reset(); break;
          case Kind::kWrongState: o.state.resize(3); break;
          case Kind::kNanState: o.state[2] = std::nanf(""); break;
          case Kind::kUnknownCamera: o.images["wrist"] = o.images["camera1"]; break;
          case Kind::kExpired: deadline = Clock::now() - 1ms; break;
          case Kind::kShortDeadline: deadline = Clock::now() + std::chrono::microseconds(g() % 5000); break;
        }
        if (g() % 2) {
          sched.submit(std::move(o), [&record, id](Scheduler::Result&& r) { record(id, std::move(r)); }, deadline,
                       std::move(noise));
        } else {
          futures.emplace_back(id, sched.submit(std::move(o), deadline, std::move(noise)));
        }
      }
      for (auto& f : futures) record(f.first, f.second.get());
    });
  }
  for (auto& c : clients) c.join();
  sched.shutdown(/*drain=*/true);  // callbacks of drained requests have all run once this returns

  int n_ok = 0, n_bitexact_checked = 0;
  for (int id = 0; id < total; ++id) {
    ASSERT_EQ(answers[static_cast<size_t>(id)].load(), 1) << "request " << id;
    const Planned& p = plan[static_cast<size_t>(id)];
    const Scheduler::Result& r = results[static_cast<size_t>(id)];
    switch (p.kind) {
      case Kind::kValidNoise:
      case Kind::kShortDeadline:
        if (p.kind == Kind::kShortDeadline && r.status == St::kTimeout) break;
        ASSERT_EQ(r.status, St::kOk) << id << ": " << r.message;
        EXPECT_LE(max_abs_diff(r.chunk.data, ref_[p.obs][p.noise]), 1e-5f) << "request " << id;
        if (r.batch_size == 1) {
          EXPECT_EQ(r.chunk.data, ref_[p.obs][p.noise]) << "batch of one must be bit-identical, request " << id;
          ++n_bitexact_checked;
        }
        EXPECT_GE(r.batch_size, 1);
        EXPECT_LE(r.batch_size, so.max_batch);
        ++n_ok;
        break;
      case Kind::kValidNoNoise:
        ASSERT_EQ(r.status, St::kOk) << id << ": " << r.message;
        ASSERT_EQ(r.chunk.data.size(), static_cast<size_t>(policy_->horizon() * policy_->action_dim()));
        for (float v : r.chunk.data) ASSERT_TRUE(std::isfinite(v));
        ++n_ok;
        break;
      case Kind::kWrongState:
        EXPECT_EQ(r.status, St::kInvalid);
        EXPECT_NE(r.message.find("state has 3 values, expected 5"), std::string::npos) << r.message;
        break;
      case Kind::kNanState:
        EXPECT_EQ(r.status, St::kInvalid);
        EXPECT_NE(r.message.find("state[2] is not finite"), std::string::npos) << r.message;
        break;
      case Kind::kUnknownCamera:
        EXPECT_EQ(r.status, St::kInvalid);
        EXPECT_NE(r.message.find("unknown camera 'wrist'"), std::string::npos) << r.message;
        break;
      case Kind::kExpired:
        EXPECT_EQ(r.status, St::kTimeout) << r.message;
        EXPECT_TRUE(r.chunk.data.empty());
        break;
    }
  }
  const SchedulerStats s = sched.stats();
  EXPECT_EQ(s.submitted, static_cast<uint64_t>(total));
  EXPECT_EQ(s.ok + s.timeout + s.invalid + s.rejected + s.cancelled + s.errors, s.submitted);
  EXPECT_EQ(s.ok, static_cast<uint64_t>(n_ok));
  EXPECT_EQ(s.rejected, 0u);
  EXPECT_EQ(s.errors, 0u);
  EXPECT_EQ(s.cancelled, 0u);
  EXPECT_EQ(s.queue_depth, 0u);
  uint64_t batched = 0, batches = 0;
  for (size_t b = 0; b < s.batch_size_histogram.size(); ++b) {
    batched += b * s.batch_size_histogram[b];
    batches += s.batch_size_histogram[b];
  }
  EXPECT_EQ(batched, s.ok);  // no retries: every batch succeeded
  EXPECT_EQ(batches, s.batches);
  EXPECT_EQ(s.total.samples, std::min<size_t>(s.ok, so.latency_window));
  EXPECT_LE(s.total.p50_ms, s.total.p99_ms);
  EXPECT_LE(s.total.p99_ms, s.total.max_ms);
  EXPECT_GT(s.stage("denoise").p50_ms, 0.0);
  std::printf("[ stats    ] ok=%llu timeout=%llu invalid=%llu batches=%llu (bit-exact batch-of-one checks: %d) "
              "max queue depth %zu, total p50 %.2f ms p99 %.2f ms, queue wait p50 %.2f ms p99 %.2f ms\n",
              static_cast<unsigned long long>(s.ok), static_cast<unsigned long long>(s.timeout),
              static_cast<unsigned long long>(s.invalid), static_cast<unsigned long long>(s.batches),
              n_bitexact_checked, s.max_queue_depth, s.total.p50_ms, s.total.p99_ms, s.queue_wait.p50_ms,
              s.queue_wait.p99_ms);
}

TEST_F(SchedulerTest, BatchOfOneIsBitIdenticalToInfer) {
  SchedulerOptions so;
  so.max_batch = 1;
  Scheduler sched(*policy_, so);
  for (int k = 0; k < kObs; ++k) {
    Scheduler::Result r = sched.submit(obs_[k], std::nullopt, noise_[k]).get();
    ASSERT_EQ(r.status, St::kOk) << r.message;
    EXPECT_EQ(r.batch_size, 1);
    EXPECT_EQ(r.chunk.data, ref_[k][k]);
  }
}

TEST_F(SchedulerTest, DeadlineOrderWithSingleWorker) {
  SchedulerOptions so;
  so.max_batch = 1;
  Scheduler sched(*policy_, so);
  sched.pause();
  std::vector<int> order;  // appended on the worker thread only; read after shutdown joins it
  const auto now = Clock::now();
  // tag -> deadline offset in seconds (-1: none). Expected run order: by deadline, none last, FIFO.
  const std::vector<std::pair<int, int>> reqs = {{0, 50}, {1, 10}, {2, -1}, {3, 30}, {4, 20}, {5, -1}, {6, 40}};
  for (const auto& [tag, off] : reqs) {
    std::optional<Clock::time_point> d;
    if (off >= 0) d = now + std::chrono::seconds(off);
    sched.submit(obs_[0], [&order, tag = tag](Scheduler::Result&& r) {
      EXPECT_EQ(r.status, St::kOk) << r.message;
      order.push_back(tag);
    }, d, noise_[0]);
  }
  EXPECT_EQ(sched.stats().queue_depth, reqs.size());
  sched.resume();
  sched.shutdown(true);
  EXPECT_EQ(order, (std::vector<int>{1, 4, 3, 6, 0, 2, 5}));
}

TEST_F(SchedulerTest, ExpiredInQueueTimesOutWithoutRunning) {
  SchedulerOptions so;
  so.max_batch = 4;
  Scheduler sched(*policy_, so);
  sched.pause();
  auto late = sched.submit(obs_[0], Clock::now() + 20ms, noise_[0]);
  auto fine = sched.submit(obs_[1], std::nullopt, noise_[1]);
  std::this_thread::sleep_for(40ms);
  sched.resume();
  Scheduler::Result rl = late.get(), rf = fine.get();
  EXPECT_EQ(rl.status, St::kTimeout);
  EXPECT_NE(rl.message.find("deadline passed"), std::string::npos) << rl.message;
  EXPECT_EQ(rl.batch_size, 0);
  EXPECT_GE(rl.queue_us, 20000);
  ASSERT_EQ(rf.status, St::kOk) << rf.message;
  EXPECT_EQ(rf.batch_size, 1);  // the expired one did not take a slot in the batch
  EXPECT_EQ(rf.chunk.data, ref_[1][1]);
}

TEST_F(SchedulerTest, DefaultDeadlineApplies) {
  SchedulerOptions so;
  so.default_deadline = std::chrono::microseconds(10000);
  Scheduler sched(*policy_, so);
  sched.pause();
  auto f = sched.submit(obs_[0]);
  std::this_thread::sleep_for(30ms);
  sched.resume();
  EXPECT_EQ(f.get().status, St::kTimeout);
}

TEST_F(SchedulerTest, FullBatchFlushesAtOnceAndPartialAfterMaxWait) {
  SchedulerOptions so;
  so.max_batch = 4;
  so.max_wait_us = 150000;
  Scheduler sched(*policy_, so);
  sched.pause();
  std::vector<std::future<Scheduler::Result>> fs;
  for (int i = 0; i < 4; ++i) fs.push_back(sched.submit(obs_[i % kObs], std::nullopt, noise_[i % kNoise]));
  sched.resume();
  for (int i = 0; i < 4; ++i) {
    Scheduler::Result r = fs[static_cast<size_t>(i)].get();
    ASSERT_EQ(r.status, St::kOk) << r.message;
    EXPECT_EQ(r.batch_size, 4);
    EXPECT_LE(max_abs_diff(r.chunk.data, ref_[i % kObs][i % kNoise]), 1e-5f);
  }
  // A lone request waits for company for max_wait_us, then runs alone.
  const auto t0 = Clock::now();
  Scheduler::Result r = sched.submit(obs_[0], std::nullopt, noise_[0]).get();
  const auto waited = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count();
  ASSERT_EQ(r.status, St::kOk);
  EXPECT_EQ(r.batch_size, 1);
  EXPECT_GE(r.queue_us, 140000);
  EXPECT_GE(waited, 140);
  const SchedulerStats s = sched.stats();
  EXPECT_EQ(s.batch_size_histogram[4], 1u);
  EXPECT_EQ(s.batch_size_histogram[1], 1u);
}

TEST_F(SchedulerTest, HeadDeadlineFlushesBeforeMaxWait) {
  SchedulerOptions so;
  so.max_batch = 8;
  so.max_wait_us = 5'000'000;  // far away: only the deadline can flush this batch in time
  Scheduler sched(*policy_, so);
  // 500 ms: the worker aims to start it 25 ms (5% of the slack) before the deadline, which leaves
  // room for a late wake-up on a loaded CI machine (200 ms with a 1 ms guard failed there once).
  auto f = sched.submit(obs_[0], Clock::now() + 500ms, noise_[0]);
  ASSERT_EQ(f.wait_for(3s), std::future_status::ready);
  EXPECT_EQ(f.get().status, St::kOk);
}

TEST_F(SchedulerTest, QueueFullRejectsAtSubmit) {
  SchedulerOptions so;
  so.max_queue = 4;
  so.max_batch = 2;
  Scheduler sched(*policy_, so);
  sched.pause();
  std::vector<std::future<Scheduler::Result>> fs;
  for (int i = 0; i < 6; ++i) fs.push_back(sched.submit(obs_[0], std::nullopt, noise_[0]));
  for (int i = 4; i < 6; ++i) {
    ASSERT_EQ(fs[static_cast<size_t>(i)].wait_for(0s), std::future_status::ready);
    Scheduler::Result r = fs[static_cast<size_t>(i)].get();
    EXPECT_EQ(r.status, St::kRejectedQueueFull);
    EXPECT_NE(r.message.find("queue full (max_queue = 4)"), std::string::npos) << r.message;
  }
  EXPECT_EQ(fs[0].wait_for(10ms), std::future_status::timeout);  // paused: still queued
  sched.resume();
  for (int i = 0; i < 4; ++i) EXPECT_EQ(fs[static_cast<size_t>(i)].get().status, St::kOk);
  const SchedulerStats s = sched.stats();
  EXPECT_EQ(s.rejected, 2u);
  EXPECT_EQ(s.ok, 4u);
  EXPECT_EQ(s.max_queue_depth, 4u);
}

TEST_F(SchedulerTest, ShutdownCancelAnswersQueuedAndLaterSubmits) {
  Scheduler sched(*policy_);
  sched.pause();
  std::vector<std::future<Scheduler::Result>> fs;
  for (int i = 0; i < 5; ++i) fs.push_back(sched.submit(obs_[0], std::nullopt, noise_[0]));
  std::atomic<int> cb_calls{0};
  sched.submit(obs_[0], [&](Scheduler::Result&& r) {
    EXPECT_EQ(r.status, St::kCancelled);
    ++cb_calls;
  });
  sched.shutdown(/*drain=*/false);
  for (auto& f : fs) {
    Scheduler::Result r = f.get();
    EXPECT_EQ(r.status, St::kCancelled);
    EXPECT_NE(r.message.find("cancelled by Scheduler::shutdown"), std::string::npos);
  }
  EXPECT_EQ(cb_calls.load(), 1);
  Scheduler::Result after = sched.submit(obs_[0]).get();
  EXPECT_EQ(after.status, St::kCancelled);
  EXPECT_NE(after.message.find("shut down"), std::string::npos);
  sched.shutdown(true);  // idempotent
  const SchedulerStats s = sched.stats();
  EXPECT_EQ(s.cancelled, 7u);
  EXPECT_EQ(s.submitted, 7u);
  EXPECT_EQ(s.batches, 0u);
}

TEST_F(SchedulerTest, ShutdownDrainRunsQueuedEvenWhenPaused) {
  std::vector<std::future<Scheduler::Result>> fs;
  {
    SchedulerOptions so;
    so.max_wait_us = 10'000'000;  // draining does not wait for batches to fill
    Scheduler sched(*policy_, so);
    sched.pause();
    for (int i = 0; i < 5; ++i) fs.push_back(sched.submit(obs_[i % kObs], std::nullopt, noise_[0]));
    sched.shutdown(/*drain=*/true);
    EXPECT_EQ(sched.stats().ok, 5u);
  }
  for (int i = 0; i < 5; ++i) {
    Scheduler::Result r = fs[static_cast<size_t>(i)].get();
    ASSERT_EQ(r.status, St::kOk) << r.message;
    EXPECT_LE(max_abs_diff(r.chunk.data, ref_[i % kObs][0]), 1e-5f);
  }
}

TEST_F(SchedulerTest, DestructorDrains) {
  std::vector<std::future<Scheduler::Result>> fs;
  {
    Scheduler sched(*policy_);
    for (int i = 0; i < 3; ++i) fs.push_back(sched.submit(obs_[0], std::nullopt, noise_[0]));
  }
  for (auto& f : fs) EXPECT_EQ(f.get().status, St::kOk);
}

TEST_F(SchedulerTest, BadNoiseAndBadOptions) {
  Scheduler sched(*policy_);
  Scheduler::Result r = sched.submit(obs_[0], std::nullopt, std::vector<float>(7, 0.f)).get();
  EXPECT_EQ(r.status, St::kInvalid);
  EXPECT_NE(r.message.find("noise has 7 values, expected 50 x"), std::string::npos) << r.message;
  std::vector<float> nan_noise = noise_[0];
  nan_noise[11] = std::numeric_limits<float>::infinity();
  r = sched.submit(obs_[0], std::nullopt, nan_noise).get();
  EXPECT_EQ(r.status, St::kInvalid);
  EXPECT_NE(r.message.find("noise[11] is not finite"), std::string::npos) << r.message;

  SchedulerOptions bad;
  bad.max_batch = 0;
  EXPECT_THROW(Scheduler(*policy_, bad), InvalidArgument);
  bad = {};
  bad.max_queue = 0;
  EXPECT_THROW(Scheduler(*policy_, bad), InvalidArgument);
}

TEST_F(SchedulerTest, ShutdownFromCallbackDoesNotDeadlock) {
  Scheduler sched(*policy_);
  std::promise<void> done;
  sched.submit(obs_[0], [&](Scheduler::Result&& r) {
    EXPECT_EQ(r.status, St::kOk);
    sched.shutdown(/*drain=*/false);
    done.set_value();
  }, std::nullopt, noise_[0]);
  ASSERT_EQ(done.get_future().wait_for(10s), std::future_status::ready);
  EXPECT_EQ(sched.submit(obs_[0]).get().status, St::kCancelled);
}

TEST_F(SchedulerTest, ThrowingCallbackDoesNotStopTheWorker) {
  Scheduler sched(*policy_);
  sched.submit(obs_[0], [](Scheduler::Result&&) { throw std::runtime_error("client bug"); }, std::nullopt,
               noise_[0]);
  Scheduler::Result r = sched.submit(obs_[1], std::nullopt, noise_[1]).get();
  EXPECT_EQ(r.status, St::kOk);
  sched.shutdown(true);
  EXPECT_EQ(sched.stats().ok, 2u);
}

}  // namespace
}  // namespace vlart
