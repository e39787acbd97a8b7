// ChunkRunner: alignment of late chunks, both blend modes checked exactly on synthetic chunks from a
// scripted source, miss -> hold last -> counts, stale chunks, source errors, no heap allocation in
// next_action, and end-to-end runs on the bundled policy (directly and through a Scheduler).
#include "vlart/chunk_runner.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "core/alloc_guard.h"
#include "serve_fixture.h"
#include "vlart/error.h"

namespace vlart {
namespace {

using namespace std::chrono_literals;

// Chunk values: 1000 * call + 10 * step + dim, integers, so every blend with dyadic weights
// (0.25, 0.5, 0.75) is exact in float.
float val(int call, int64_t step, int64_t dim) {
  return static_cast<float>(1000 * call + 10 * step + dim);
}

// A source whose calls block until the test releases them; records the observation each call saw.
class ScriptedSource {
 public:
  ScriptedSource(int64_t h, int64_t d) : h_(h), d_(d) {}
  ActionChunk operator()(const Observation& o) {
    std::unique_lock<std::mutex> lk(mu_);
    const int call = calls_++;
    seen_state0_.push_back(o.state.empty() ? -1.f : o.state[0]);
    cv_.notify_all();
    cv_.wait(lk, [&] { return released_ > call; });
    if (fail_call_ == call) throw InvalidArgument("scripted failure");
    ActionChunk c;
    c.horizon = h_;
    c.action_dim = d_;
    c.data.resize(static_cast<size_t>(h_ * d_));
    for (int64_t i = 0; i < h_; ++i)
      for (int64_t a = 0; a < d_; ++a) c.data[static_cast<size_t>(i * d_ + a)] = val(call, i, a);
    return c;
  }
  void wait_calls(int n) {
    std::unique_lock<std::mutex> lk(mu_);
    ASSERT_TRUE(cv_.wait_for(lk, 10s, [&] { return calls_ >= n; })) << "source never called " << n << " times";
  }
  void release(int n = 1) {
    std::lock_guard<std::mutex> lk(mu_);
    released_ += n;
    cv_.notify_all();
  }
  void release_all() { release(1 << 20); }
  int calls() {
    std::lock_guard<std::mutex> lk(mu_);
    return calls_;
  }
  float seen_state0(int call) {
    std::lock_guard<std::mutex> lk(mu_);
    return seen_state0_.at(static_cast<size_t>(call));
  }
  void fail_call(int call) {
    std::lock_guard<std::mutex> lk(mu_);
    fail_call_ = call;
  }

 private:
  int64_t h_, d_;
  std::mutex mu_;
  std::condition_variable cv_;
  int calls_ = 0, released_ = 0, fail_call_ = -1;
  std::vector<float> seen_state0_;
};

// Releases every call when the test ends, even on a failed ASSERT, so the runner can join.
struct ReleaseOnExit {
  ScriptedSource& s;
  ~ReleaseOnExit() { s.release_all(); }
};

Observation obs_with(float s0) {
  Observation o;
  o.state = {s0};
  return o;
}

void wait_pending(const ChunkRunner& r) {
  const auto t0 = std::chrono::steady_clock::now();
  while (!r.chunk_pending()) {
    ASSERT_LT(std::chrono::steady_clock::now() - t0, 10s) << "no chunk arrived";
    std::this_thread::yield();
  }
}

struct Tick {
  ActionStatus st;
  std::vector<float> a;
};

Tick tick(ChunkRunner& r) {
  Tick t;
  t.a.assign(static_cast<size_t>(r.action_dim()), -12345.f);
  t.st = r.next_action(t.a.data());
  return t;
}

void expect_action(const Tick& t, ActionStatus st, std::vector<float> want, const std::string& where) {
  EXPECT_EQ(action_status_name(t.st), std::string(action_status_name(st))) << where;
  EXPECT_EQ(t.a, want) << where;
}

TEST(ChunkRunner, WeightedAverageAlignmentMissHoldAndStale) {
  constexpr int64_t H = 10, D = 2;
  ScriptedSource src(H, D);
  ChunkRunnerOptions o;
  o.trigger_remaining = 3;
  o.blend = BlendMode::kWeightedAverage;
  o.new_weight = 0.75f;
  ChunkRunner r([&src](const Observation& ob) { return src(ob); }, H, D, o);
  ReleaseOnExit release_on_exit{src};

  r.update_observation(obs_with(1.f));  // stamped at tick 0
  Tick t = tick(r);                     // tick 0: nothing yet; asks for a chunk
  EXPECT_EQ(t.st, ActionStatus::kEmpty);
  EXPECT_EQ(t.a[0], -12345.f);  // out untouched
  src.wait_calls(1);
  EXPECT_EQ(src.seen_state0(0), 1.f);
  src.release();
  wait_pending(r);
  // Tick 1: chunk 0 (observation of tick 0) arrives; its action 0 is in the past: k = 1.
  expect_action(tick(r), ActionStatus::kFresh, {val(0, 1, 0), val(0, 1, 1)}, "tick 1");
  EXPECT_EQ(r.remaining(), 8);
  r.update_observation(obs_with(2.f));  // stamped at tick 2
  for (int64_t s = 2; s <= 6; ++s) expect_action(tick(r), ActionStatus::kFresh, {val(0, s, 0), val(0, s, 1)}, "c0");
  // After tick 6, 3 actions are left (c0[7..9]) -> the second inference was requested.
  EXPECT_EQ(r.remaining(), 3);
  src.wait_calls(2);
  EXPECT_EQ(src.seen_state0(1), 2.f);  // the latest observation
  expect_action(tick(r), ActionStatus::kFresh, {val(0, 7, 0), val(0, 7, 1)}, "tick 7");
  src.release();
  wait_pending(r);
  // Tick 8: chunk 1 from the observation of tick 2: k = 6, new actions c1[6..9]; old plan has
  // c0[8], c0[9] left: overlap 2, blended 0.25 * old + 0.75 * new, then c1 alone.
  for (int64_t j = 0; j < 2; ++j)
    expect_action(tick(r), ActionStatus::kBlended,
                  {0.25f * val(0, 8 + j, 0) + 0.75f * val(1, 6 + j, 0), 0.25f * val(0, 8 + j, 1) + 0.75f * val(1, 6 + j, 1)},
                  "overlap " + std::to_string(j));
  src.wait_calls(3);  // requested when 3 were left (after tick 8)
  expect_action(tick(r), ActionStatus::kFresh, {val(1, 8, 0), val(1, 8, 1)}, "c1[8]");
  expect_action(tick(r), ActionStatus::kFresh, {val(1, 9, 0), val(1, 9, 1)}, "c1[9]");
  // Tick 12, 13: the plan ran out, chunk 2 not there: hold the last action; one miss.
  expect_action(tick(r), ActionStatus::kHoldingLast, {val(1, 9, 0), val(1, 9, 1)}, "hold 1");
  expect_action(tick(r), ActionStatus::kHoldingLast, {val(1, 9, 0), val(1, 9, 1)}, "hold 2");
  ChunkRunnerStats s = r.stats();
  EXPECT_EQ(s.misses, 1u);
  EXPECT_EQ(s.actions_held, 2u);
  EXPECT_EQ(s.chunks_received, 2u);
  EXPECT_EQ(s.remaining, 0);
  // Chunk 2 (observation of tick 2) taken at tick 14: k = 12 >= H: stale, dropped; still holding.
  src.release();
  wait_pending(r);
  r.update_observation(obs_with(3.f));  // stamped at tick 14
  expect_action(tick(r), ActionStatus::kHoldingLast, {val(1, 9, 0), val(1, 9, 1)}, "stale");
  src.wait_calls(4);
  EXPECT_EQ(src.seen_state0(3), 3.f);
  src.release();
  wait_pending(r);
  // Tick 15: chunk 3 from tick 14: k = 1; no old actions left: fresh.
  expect_action(tick(r), ActionStatus::kFresh, {val(3, 1, 0), val(3, 1, 1)}, "after miss");
  s = r.stats();
  EXPECT_EQ(s.chunks_stale, 1u);
  EXPECT_EQ(s.chunks_received, 3u);
  EXPECT_EQ(s.misses, 1u);
  EXPECT_EQ(s.actions_held, 3u);
  EXPECT_EQ(s.ticks, 16u);
  EXPECT_EQ(s.inferences, 4u);
  EXPECT_EQ(s.inference.samples, 4u);
  src.release_all();
}

TEST(ChunkRunner, RealTimeChunkingCommitThenCrossFade) {
  constexpr int64_t H = 16, D = 2;
  ScriptedSource src(H, D);
  ChunkRunnerOptions o;
  o.trigger_remaining = 10;
  o.blend = BlendMode::kRealTimeChunking;
  o.rtc_commit = 2;
  o.rtc_crossfade = 3;  // weights of the new chunk: 1/4, 2/4, 3/4
  ChunkRunner r([&src](const Observation& ob) { return src(ob); }, H, D, o);
  ReleaseOnExit release_on_exit{src};
  r.update_observation(obs_with(1.f));
  EXPECT_EQ(tick(r).st, ActionStatus::kEmpty);
  src.wait_calls(1);
  src.release();
  wait_pending(r);
  expect_action(tick(r), ActionStatus::kFresh, {val(0, 1, 0), val(0, 1, 1)}, "tick 1");
  r.update_observation(obs_with(2.f));  // tick 2
  for (int64_t s = 2; s <= 5; ++s) expect_action(tick(r), ActionStatus::kFresh, {val(0, s, 0), val(0, s, 1)}, "c0");
  EXPECT_EQ(r.remaining(), 10);  // c0[6..15]: request sent
  src.wait_calls(2);
  src.release();
  wait_pending(r);
  // Tick 6: chunk 1 (obs of tick 2): k = 4, c1[4..15]; old c0[6..15].
  // j = 0, 1: committed old; j = 2..4: cross-fade; j >= 5: new.
  expect_action(tick(r), ActionStatus::kBlended, {val(0, 6, 0), val(0, 6, 1)}, "commit 0");
  expect_action(tick(r), ActionStatus::kBlended, {val(0, 7, 0), val(0, 7, 1)}, "commit 1");
  const float wn[3] = {0.25f, 0.5f, 0.75f};
  for (int64_t j = 2; j < 5; ++j) {
    const float w = wn[j - 2];
    expect_action(tick(r), ActionStatus::kBlended,
                  {(1 - w) * val(0, 6 + j, 0) + w * val(1, 4 + j, 0), (1 - w) * val(0, 6 + j, 1) + w * val(1, 4 + j, 1)},
                  "fade " + std::to_string(j));
  }
  for (int64_t j = 5; j < 12; ++j)
    expect_action(tick(r), ActionStatus::kFresh, {val(1, 4 + j, 0), val(1, 4 + j, 1)}, "new " + std::to_string(j));
  EXPECT_EQ(r.stats().misses, 0u);
  src.release_all();
}

TEST(ChunkRunner, SourceErrorsAreCountedAndRetried) {
  constexpr int64_t H = 4, D = 1;
  ScriptedSource src(H, D);
  src.fail_call(0);
  ChunkRunnerOptions o;
  o.trigger_remaining = 1;
  ChunkRunner r([&src](const Observation& ob) { return src(ob); }, H, D, o);
  ReleaseOnExit release_on_exit{src};
  r.update_observation(obs_with(0.f));
  EXPECT_EQ(tick(r).st, ActionStatus::kEmpty);
  src.wait_calls(1);
  src.release();
  // The failed call clears the request; the next tick asks again.
  const auto t0 = std::chrono::steady_clock::now();
  while (r.stats().inference_errors == 0) {
    ASSERT_LT(std::chrono::steady_clock::now() - t0, 10s);
    std::this_thread::yield();
  }
  EXPECT_EQ(r.stats().last_error, "scripted failure");
  EXPECT_EQ(tick(r).st, ActionStatus::kEmpty);
  src.wait_calls(2);
  src.release();
  wait_pending(r);
  EXPECT_EQ(tick(r).st, ActionStatus::kFresh);
  src.release_all();

  // A mis-shaped chunk is an error, not a crash.
  ChunkRunner bad([](const Observation&) { return ActionChunk{3, 1, {1, 2, 3}, {}, {}, {}}; }, H, D, o);
  bad.update_observation(obs_with(0.f));
  float a = 0;
  EXPECT_EQ(bad.next_action(&a), ActionStatus::kEmpty);
  const auto t1 = std::chrono::steady_clock::now();
  while (bad.stats().inference_errors == 0) {
    ASSERT_LT(std::chrono::steady_clock::now() - t1, 10s);
    std::this_thread::yield();
  }
  EXPECT_NE(bad.stats().last_error.find("chunk is 3 x 1 (3 values), expected 4 x 1"), std::string::npos);
}

TEST(ChunkRunner, BadOptionsThrow) {
  auto fn = [](const Observation&) { return ActionChunk{}; };
  EXPECT_THROW(ChunkRunner(fn, 0, 4), InvalidArgument);
  ChunkRunnerOptions o;
  o.new_weight = 1.5f;
  EXPECT_THROW(ChunkRunner(fn, 10, 4, o), InvalidArgument);
  EXPECT_EQ(parse_blend_mode("rtc"), BlendMode::kRealTimeChunking);
  EXPECT_THROW(parse_blend_mode("avg"), InvalidArgument);
}

TEST(ChunkRunner, NextActionPerformsNoHeapAllocation) {
#ifdef VLART_TSAN_BUILD
  GTEST_SKIP() << "TSan build: the allocation-counting hook cannot be linked (TSan owns operator new)";
#endif
  ASSERT_TRUE(alloc_guard::hook_installed());
  constexpr int64_t H = 50, D = 4;
  std::atomic<int> calls{0};
  ChunkRunnerOptions o;
  o.trigger_remaining = 20;
  o.blend = BlendMode::kRealTimeChunking;
  ChunkRunner r(
      [&](const Observation&) {
        const int c = calls++;
        ActionChunk ch{H, D, std::vector<float>(static_cast<size_t>(H * D), static_cast<float>(c)), {}, {}, {}};
        return ch;
      },
      H, D, o);
  r.update_observation(obs_with(0.f));
  std::vector<float> out(static_cast<size_t>(D));
  alloc_guard::Counts counts;
  int blended = 0, fresh = 0;
  for (int i = 0; i < 400; ++i) {
    if (i % 5 == 0) r.update_observation(obs_with(0.f));  // the sensor side allocates: not armed
    ActionStatus st;
    {
      alloc_guard::ArmScope arm(/*forbid=*/false);  // counts this (controller) thread only
      st = r.next_action(out.data());
      const alloc_guard::Counts c = arm.counts();
      counts.allocations += c.allocations;
      counts.bytes += c.bytes;
    }
    blended += st == ActionStatus::kBlended;
    fresh += st == ActionStatus::kFresh;
    // Let a requested chunk land so that chunk handoffs and blends happen inside armed calls.
    if (r.remaining() <= o.trigger_remaining)
      for (int spin = 0; spin < 2'000'000 && !r.chunk_pending(); ++spin) std::this_thread::yield();
  }
  EXPECT_EQ(counts.allocations, 0u) << counts.bytes << " bytes";
  const ChunkRunnerStats s = r.stats();
  EXPECT_GE(s.chunks_received, 10u);
  EXPECT_GT(blended, 0);
  EXPECT_GT(fresh, 0);
}

TEST(ChunkRunner, BundledPolicyDirectAndThroughScheduler) {
  std::unique_ptr<Policy> policy = testing::load_default_policy();
  ChunkRunnerOptions o;
  o.trigger_remaining = 30;
  auto drive = [&](ChunkRunner& r) {
    r.update_observation(testing::sample_observation());
    std::vector<float> a(static_cast<size_t>(r.action_dim()));
    int got = 0;
    // 150 ticks of 1 ms, continued (up to 10 s) until the first chunk arrives: under TSan on a busy
    // machine the first inference, which builds the graphs, can take longer than 150 ms.
    for (int i = 0; i < 150 || (got == 0 && i < 10'000); ++i) {
      const ActionStatus st = r.next_action(a.data());
      if (st != ActionStatus::kEmpty) {
        ++got;
        for (float v : a) ASSERT_TRUE(std::isfinite(v));
      }
      if (i % 10 == 0) r.update_observation(testing::sample_observation(0.01f * static_cast<float>(i)));
      std::this_thread::sleep_for(1ms);
    }
    const ChunkRunnerStats s = r.stats();
    EXPECT_GT(got, 0);
    EXPECT_GE(s.chunks_received, 1u);
    EXPECT_EQ(s.inference_errors, 0u) << s.last_error;
    EXPECT_GT(s.inference.p50_ms, 0.0);
  };
  {
    ChunkRunner r(*policy, o);
    drive(r);
  }
  {
    Scheduler sched(*policy);
    ChunkRunner r(sched, policy->horizon(), policy->action_dim(), o);
    drive(r);
    // An invalid observation is reported through the scheduler's message.
    Observation bad = testing::sample_observation();
    bad.state.resize(2);
    r.update_observation(bad);
    const auto t0 = std::chrono::steady_clock::now();
    float a[4];
    while (r.stats().inference_errors == 0 && std::chrono::steady_clock::now() - t0 < 10s) {
      r.next_action(a);
      std::this_thread::sleep_for(1ms);
    }
    EXPECT_NE(r.stats().last_error.find("scheduler answered invalid"), std::string::npos) << r.stats().last_error;
  }
}

}  // namespace
}  // namespace vlart
