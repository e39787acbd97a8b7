// ChunkRunner: turns action chunks into one action per control tick, re-planning in the background.
//
//   vlart::ChunkRunner runner(*policy, opts);       // or (scheduler, opts), or (infer_fn, H, D, opts)
//   sensor thread:      runner.update_observation(obs);          // latest wins
//   controller thread:  float a[D];  runner.next_action(a);       // every tick, wait-free
//
// Threads: one controller thread calls next_action() (and remaining()/chunk_pending()); any thread
// may call update_observation() and stats(); the runner owns one inference thread that calls the
// source (Policy::infer, Scheduler::submit().get(), or the given function).
//
// Timeline: every next_action() call is one control tick. update_observation() stamps the
// observation with the current tick. A chunk inferred from an observation stamped at tick s0 holds
// the actions for ticks s0, s0+1, ...; when it is taken at tick s1 its first k = s1 - s0 actions are
// already in the past (the robot executed the old plan meanwhile) and are skipped. A chunk with
// k >= horizon is stale and dropped (counted).
//
// Blending over the overlap of the old plan's remaining actions and the aligned new chunk:
//  - kWeightedAverage (LeRobot async client "weighted_average"): (1 - w) * old + w * new over the
//    overlap (w = new_weight, 0.7 as LeRobot), the new chunk alone after it.
//  - kRealTimeChunking: the next rtc_commit actions are the old plan's, unchanged (they may already
//    be committed to the robot), then rtc_crossfade actions fade linearly from old to new
//    (weights of new: 1/(f+1), 2/(f+1), ..., f/(f+1)), then the new chunk alone.
// When the plan runs out before a new chunk arrives (a missed deadline), the last action is held
// and the miss is counted once per run-out.
//
// next_action() performs no heap allocation, takes no lock and never waits: chunks move from the
// inference thread to the controller through a triple buffer of pre-allocated slots (one atomic
// exchange), and the request for a new inference is a POSIX semaphore post.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "vlart/policy.h"
#include "vlart/scheduler.h"

namespace vlart {

enum class BlendMode { kWeightedAverage, kRealTimeChunking };
const char* blend_mode_name(BlendMode m);
// "weighted_average" | "rtc"; throws InvalidArgument otherwise.
BlendMode parse_blend_mode(const std::string& s);

enum class ActionStatus {
  kFresh,        // from the newest chunk alone
  kBlended,      // from the overlap of the old plan and a new chunk (for RTC: committed or cross-faded)
  kHoldingLast,  // the plan ran out: the last action again
  kEmpty,        // no chunk yet: `out` is left unchanged
};
const char* action_status_name(ActionStatus s);

struct ChunkRunnerOptions {
  // Request a new chunk when the plan has at most this many actions left (after the action just
  // returned). Set it above (inference latency / control period) to avoid misses.
  int64_t trigger_remaining = 25;
  BlendMode blend = BlendMode::kWeightedAverage;
  float new_weight = 0.7f;     // kWeightedAverage: weight of the new chunk in the overlap, in [0, 1]
  int64_t rtc_commit = 5;      // kRealTimeChunking: actions of the old plan kept unchanged
  int64_t rtc_crossfade = 5;   // kRealTimeChunking: length of the linear cross-fade after them
  size_t latency_window = 256;  // inference latency percentiles over this many recent inferences
};

struct ChunkRunnerStats {
  uint64_t ticks = 0;             // next_action() calls
  uint64_t chunks_received = 0;   // chunks merged into the plan
  uint64_t chunks_stale = 0;      // chunks dropped because all their actions were in the past
  uint64_t inferences = 0;        // source calls started
  uint64_t inference_errors = 0;  // source calls that threw or returned a mis-shaped chunk
  uint64_t misses = 0;            // times the plan ran out before a new chunk arrived
  uint64_t actions_held = 0;      // ticks answered kHoldingLast
  int64_t remaining = 0;          // actions left in the plan (the controller's queue depth)
  LatencySummary inference;       // source call time (trigger to chunk ready)
  std::string last_error;         // message of the latest inference error
};

class ChunkRunner {
 public:
  // Returns a chunk of exactly horizon x action_dim actions for the observation; may throw.
  using InferFn = std::function<ActionChunk(const Observation&)>;

  // The runner's inference thread calls policy.infer(); nothing else may use `policy` meanwhile.
  ChunkRunner(Policy& policy, const ChunkRunnerOptions& opts = {});
  // Submits to `sched` (which must outlive the runner) and waits on the inference thread.
  ChunkRunner(Scheduler& sched, int64_t horizon, int64_t action_dim, const ChunkRunnerOptions& opts = {});
  // Any source (tests, remote servers). Throws InvalidArgument for bad dimensions or options.
  ChunkRunner(InferFn infer, int64_t horizon, int64_t action_dim, const ChunkRunnerOptions& opts = {});
  ~ChunkRunner();  // stops the inference thread, after the source call in flight (if any) returns
  ChunkRunner(const ChunkRunner&) = delete;
  ChunkRunner& operator=(const ChunkRunner&) = delete;

  void update_observation(Observation obs);

  // Writes action_dim floats to `out` (except kEmpty). Controller thread only; wait-free,
  // allocation-free.
  ActionStatus next_action(float* out);

  // Controller-side queries, also wait-free: a new chunk is ready for the next tick / actions left.
  bool chunk_pending() const;
  int64_t remaining() const;

  ChunkRunnerStats stats() const;
  int64_t horizon() const;
  int64_t action_dim() const;
  const ChunkRunnerOptions& options() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace vlart
