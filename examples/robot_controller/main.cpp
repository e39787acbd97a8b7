// robot_controller: a fixed-rate control loop driving a simulated arm from a VLA policy through
// vlart::ChunkRunner. Three threads, as on a robot:
//   sensor     (camera rate): sample frames (with a moving marker) + the arm's joint positions
//              -> ChunkRunner::update_observation
//   controller (control rate): ChunkRunner::next_action -> arm (joints integrate the actions)
//   inference  (owned by the runner): Policy::infer when the plan runs low
//
//   build/bin/robot_controller [--policy DIR] [--rate 50] [--duration 10] [--blend weighted_average|rtc]
//                              [--trigger 25] [--weight 0.7] [--commit 5] [--crossfade 5]
//                              [--camera-rate 30] [--threads 0] [--task "..."]
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "io/image_file.h"
#include "vlart/chunk_runner.h"
#include "vlart/error.h"

namespace {

using Clock = std::chrono::steady_clock;

struct Args {
  std::string policy = std::string(VLART_SOURCE_DIR) + "/assets/default_policy";
  std::string samples = std::string(VLART_SOURCE_DIR) + "/assets/samples";
  std::string task = "pick up the red cube";
  double rate_hz = 50, duration_s = 10, camera_hz = 30;
  int threads = 0;
  vlart::ChunkRunnerOptions runner;
};

void usage() {
  std::fprintf(stderr,
               "usage: robot_controller [--policy DIR] [--samples DIR] [--rate HZ] [--duration S] "
               "[--blend weighted_average|rtc] [--trigger N] [--weight W] [--commit N] [--crossfade N] "
               "[--camera-rate HZ] [--threads N] [--task TEXT]\n");
}

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    if (k == "-h" || k == "--help") {
      usage();
      std::exit(0);
    }
    VLART_CHECK(i + 1 < argc, InvalidArgument, k, " needs a value");
    const std::string v = argv[++i];
    auto num = [&](double lo) {
      char* end = nullptr;
      const double x = std::strtod(v.c_str(), &end);
      VLART_CHECK(end && *end == '\0' && std::isfinite(x) && x >= lo, InvalidArgument, k, " expects a number >= ", lo,
                  ", got '", v, "'");
      return x;
    };
    if (k == "--policy") a.policy = v;
    else if (k == "--samples") a.samples = v;
    else if (k == "--task") a.task = v;
    else if (k == "--rate") a.rate_hz = num(1e-3);
    else if (k == "--duration") a.duration_s = num(0);
    else if (k == "--camera-rate") a.camera_hz = num(1e-3);
    else if (k == "--threads") a.threads = static_cast<int>(num(0));
    else if (k == "--blend") a.runner.blend = vlart::parse_blend_mode(v);
    else if (k == "--trigger") a.runner.trigger_remaining = static_cast<int64_t>(num(0));
    else if (k == "--weight") a.runner.new_weight = static_cast<float>(num(0));
    else if (k == "--commit") a.runner.rtc_commit = static_cast<int64_t>(num(0));
    else if (k == "--crossfade") a.runner.rtc_crossfade = static_cast<int64_t>(num(0));
    else throw vlart::InvalidArgument("unknown option " + k);
  }
  return a;
}

// The simulated arm: joint positions integrate the commanded velocities, clamped to joint limits.
// Written by the controller, read by the sensor thread (atomics: the controller never blocks).
struct Arm {
  explicit Arm(size_t n) : q(n) {
    for (auto& x : q) x.store(0.f);
  }
  void step(const float* action, size_t n_act, double dt) {
    for (size_t i = 0; i < std::min(n_act, q.size()); ++i) {
      const float x = q[i].load(std::memory_order_relaxed) + static_cast<float>(dt) * action[i];
      q[i].store(std::clamp(x, -3.14f, 3.14f), std::memory_order_relaxed);
    }
  }
  std::vector<float> read() const {
    std::vector<float> s(q.size());
    for (size_t i = 0; i < q.size(); ++i) s[i] = q[i].load(std::memory_order_relaxed);
    return s;
  }
  std::vector<std::atomic<float>> q;
};

int run(const Args& a) {
  vlart::PolicyOptions po;
  po.threads = a.threads;
  auto policy = vlart::Policy::load(a.policy, po);
  const auto cams = policy->camera_names();
  std::vector<vlart::Image> frames;
  // Frames by camera name (<samples>/<short name>.png) where the samples have one, else by position
  // in the checkpoint's camera order (camera1.png for the first camera, ...).
  for (size_t i = 0; i < cams.size(); ++i) {
    const std::string by_name = a.samples + "/" + cams[i].substr(cams[i].rfind('.') + 1) + ".png";
    std::FILE* f = std::fopen(by_name.c_str(), "rb");
    if (f) std::fclose(f);
    frames.push_back(vlart::io::load_image_rgb(f ? by_name : a.samples + "/camera" + std::to_string(i + 1) + ".png"));
  }
  const int64_t D = policy->action_dim();
  Arm arm(static_cast<size_t>(policy->state_dim()));

  std::printf("robot_controller: %s | control %.1f Hz for %.1f s | camera %.1f Hz | horizon %lld | blend %s | "
              "trigger at %lld actions left\n",
              a.policy.c_str(), a.rate_hz, a.duration_s, a.camera_hz, static_cast<long long>(policy->horizon()),
              vlart::blend_mode_name(a.runner.blend), static_cast<long long>(a.runner.trigger_remaining));
  std::fflush(stdout);

  vlart::ChunkRunner runner(*policy, a.runner);
  std::atomic<bool> done{false};

  // Sensor: the sample frames with a small marker that moves every frame, plus the arm state.
  std::thread sensor([&] {
    const auto period = std::chrono::duration<double>(1.0 / a.camera_hz);
    auto next = Clock::now();
    for (int64_t n = 0; !done.load(); ++n) {
      vlart::Observation o;
      for (size_t i = 0; i < cams.size(); ++i) {
        vlart::Image im = frames[i];
        const int64_t x = n % im.width, y = im.height / 2;
        for (int c = 0; c < 3; ++c) im.data[static_cast<size_t>((y * im.width + x) * 3 + c)] = 255;
        o.images[cams[i]] = std::move(im);
      }
      o.state = arm.read();
      o.task = a.task;
      runner.update_observation(std::move(o));
      next += std::chrono::duration_cast<Clock::duration>(period);
      std::this_thread::sleep_until(next);
    }
  });

  // Controller.
  const auto period = std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(1.0 / a.rate_hz));
  const double dt = 1.0 / a.rate_hz;
  std::vector<float> action(static_cast<size_t>(D), 0.f);
  const auto t0 = Clock::now();
  const auto t_end = t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(a.duration_s));
  auto next = t0;
  Clock::time_point first_tick{}, last_tick{};
  int64_t ticks = 0, ticks_at_report = 0, empty = 0, depth_sum = 0, depth_min = INT64_MAX, depth_max = 0;
  double max_late_ms = 0;
  auto report_at = t0 + std::chrono::seconds(1);
  while (next < t_end) {
    std::this_thread::sleep_until(next);
    const auto now = Clock::now();
    if (ticks == 0) first_tick = now;
    last_tick = now;
    max_late_ms = std::max(max_late_ms, std::chrono::duration<double, std::milli>(now - next).count());
    const vlart::ActionStatus st = runner.next_action(action.data());
    if (st == vlart::ActionStatus::kEmpty) {
      ++empty;  // no plan yet: the arm stays still
    } else {
      arm.step(action.data(), action.size(), dt);
      const int64_t depth = runner.remaining();
      depth_sum += depth;
      depth_min = std::min(depth_min, depth);
      depth_max = std::max(depth_max, depth);
    }
    ++ticks;
    if (now >= report_at) {
      const vlart::ChunkRunnerStats s = runner.stats();
      std::printf("t=%5.1fs  rate %5.1f Hz  queue depth %3lld  chunks %llu  misses %llu  held %llu\n",
                  std::chrono::duration<double>(now - t0).count(), static_cast<double>(ticks - ticks_at_report),
                  static_cast<long long>(s.remaining), static_cast<unsigned long long>(s.chunks_received),
                  static_cast<unsigned long long>(s.misses), static_cast<unsigned long long>(s.actions_held));
      std::fflush(stdout);
      ticks_at_report = ticks;
      report_at += std::chrono::seconds(1);
    }
    next += period;
  }
  // Rate over the tick intervals actually run (first tick to last tick).
  const double elapsed = std::chrono::duration<double>(last_tick - first_tick).count();
  done = true;
  sensor.join();
  const vlart::ChunkRunnerStats s = runner.stats();
  const int64_t acted = ticks - empty;
  std::printf("achieved rate: %.2f Hz (%lld ticks, %.3f s first to last, target %.1f Hz), max tick lateness %.2f ms\n",
              elapsed > 0 ? static_cast<double>(ticks - 1) / elapsed : 0.0, static_cast<long long>(ticks), elapsed, a.rate_hz, max_late_ms);
  std::printf("inference latency: p50 %.2f ms  p99 %.2f ms  max %.2f ms  (%zu inferences)\n", s.inference.p50_ms,
              s.inference.p99_ms, s.inference.max_ms, s.inference.samples);
  std::printf("deadline misses: %llu  actions held: %llu  ticks before the first chunk: %lld\n",
              static_cast<unsigned long long>(s.misses), static_cast<unsigned long long>(s.actions_held),
              static_cast<long long>(empty));
  std::printf("chunks: %llu received, %llu stale, %llu inference errors%s%s\n",
              static_cast<unsigned long long>(s.chunks_received), static_cast<unsigned long long>(s.chunks_stale),
              static_cast<unsigned long long>(s.inference_errors), s.last_error.empty() ? "" : " (last: ",
              s.last_error.empty() ? "" : (s.last_error + ")").c_str());
  std::printf("queue depth (actions left): min %lld  mean %.1f  max %lld\n",
              static_cast<long long>(acted ? depth_min : 0),
              acted ? static_cast<double>(depth_sum) / static_cast<double>(acted) : 0.0,
              static_cast<long long>(depth_max));
  std::printf("blend mode: %s\n", vlart::blend_mode_name(a.runner.blend));
  const std::vector<float> q = arm.read();
  std::printf("final joints:");
  for (float x : q) std::printf(" %.3f", x);
  std::printf("\n");
  return s.inference_errors == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(parse(argc, argv));
  } catch (const vlart::Error& e) {
    std::fprintf(stderr, "robot_controller: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "robot_controller: %s\n", e.what());
    return 2;
  }
}
