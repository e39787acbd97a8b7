// Approximate visual reuse and the task cache, measured on any checkpoint (a plain program, not a
// Google Benchmark suite: each row needs a whole sequence).
//
//   build/bench/bench_vision_reuse [checkpoint_dir] [--frames N] [--thresholds 0,1,2,4,8,16]
//       [--size HxW] [--square PX] [--step PX] [--noise SIGMA] [--threads N] [--bf16] [--task-reps N]
//
// Default checkpoint: $VLART_SMOLVLA_DIR or the bundled tiny policy. Prints, per threshold, the
// action error against the same checkpoint without reuse (same frames, same initial noise), the
// sensor-noise floor, and vision/total time per inference with and without reuse, measured
// interleaved frame by frame. Then the task cache: preprocessing time with the cache off and on.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <string>
#include <vector>

#include "../tests/reuse_sweep.h"
#include "bench_policy_inputs.h"

using namespace vlart;

int main(int argc, char** argv) {
  std::string dir = bench::policy_dir();
  testing::SequenceSpec spec;
  spec.height = 480;
  spec.width = 640;
  spec.frames = 8;
  spec.square = 48;
  spec.step = 8;
  std::vector<float> thr = {0, 1, 2, 4, 8, 16};
  PolicyOptions o;
  o.threads = 2;
  int task_reps = 20;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--frames") {
      spec.frames = std::atoi(next().c_str());
    } else if (a == "--thresholds") {
      thr.clear();
      std::stringstream ss(next());
      for (std::string t; std::getline(ss, t, ',');) thr.push_back(std::stof(t));
    } else if (a == "--size") {
      const std::string v = next();
      if (std::sscanf(v.c_str(), "%ldx%ld", &spec.height, &spec.width) != 2) {
        std::fprintf(stderr, "--size wants HxW, got %s\n", v.c_str());
        return 2;
      }
    } else if (a == "--square") {
      spec.square = std::atoi(next().c_str());
    } else if (a == "--step") {
      spec.step = std::atoi(next().c_str());
    } else if (a == "--noise") {
      spec.noise = std::atof(next().c_str());
    } else if (a == "--threads") {
      o.threads = std::atoi(next().c_str());
    } else if (a == "--bf16") {
      o.compute_dtype = DType::kBF16;
    } else if (a == "--task-reps") {
      task_reps = std::atoi(next().c_str());
    } else if (!a.empty() && a[0] != '-') {
      dir = a;
    } else {
      std::fprintf(stderr, "unknown option %s\n", a.c_str());
      return 2;
    }
  }
  if (spec.frames < 2) {
    std::fprintf(stderr, "--frames must be >= 2\n");
    return 2;
  }
  std::printf(
      "checkpoint %s, %d frames %ldx%ld, square %d px moving %d px/frame, noise sigma %.1f, %d threads, %s\n",
      dir.c_str(), spec.frames, static_cast<long>(spec.height), static_cast<long>(spec.width), spec.square,
      spec.step, spec.noise, o.threads, dtype_name(o.compute_dtype));
  const testing::SweepResult res = testing::run_reuse_sweep(dir, o, spec, thr);
  std::printf("sensor-noise floor (another noise draw, no reuse): max_abs %.4f  rel_l2 %.4f  cosine %.5f\n\n",
              res.noise_floor.max_abs, res.noise_floor.rel_l2, res.noise_floor.cosine);
  std::printf(
      "| threshold | max abs | rel L2 | cosine | frames full/sparse/reused | tokens reused | vision ms "
      "(no reuse) | vision speed-up | total ms (no reuse) | total speed-up |\n");
  std::printf("|---|---|---|---|---|---|---|---|---|---|\n");
  for (const auto& r : res.rows) {
    const double tok = static_cast<double>(r.stats.tokens_reused + r.stats.tokens_computed);
    std::printf(
        "| %g | %.4f | %.4f | %.5f | %llu/%llu/%llu | %.0f%% | %.1f (%.1f) | %.2fx | %.1f (%.1f) | %.2fx "
        "|%s\n",
        r.threshold, r.err.max_abs, r.err.rel_l2, r.err.cosine,
        static_cast<unsigned long long>(r.stats.frames_full),
        static_cast<unsigned long long>(r.stats.frames_sparse),
        static_cast<unsigned long long>(r.stats.frames_reused),
        tok > 0 ? 100.0 * static_cast<double>(r.stats.tokens_reused) / tok : 0.0, r.vision_ms,
        r.ref_vision_ms, r.vision_ms > 0 ? r.ref_vision_ms / r.vision_ms : 0.0, r.total_ms, r.ref_total_ms,
        r.total_ms > 0 ? r.ref_total_ms / r.total_ms : 0.0, r.bit_identical ? " bit-identical" : "");
  }
  // Task cache: the same observation with the cache off and on, interleaved; preprocessing holds the
  // tokenizer and the embedding lookup (the only task-dependent work outside the VLM layers).
  if (task_reps > 0) {
    PolicyOptions off = o, on = o;
    off.task_cache_bytes = 0;
    auto p_off = Policy::load(dir, off);
    auto p_on = Policy::load(dir, on);
    const Observation ob = bench::synthetic_obs(*p_off, 3);
    double pre_off = 0, pre_on = 0, tot_off = 0, tot_on = 0;
    p_off->infer(ob);
    p_on->infer(ob);
    for (int i = 0; i < task_reps; ++i) {
      const ActionChunk a = p_off->infer(ob);
      const ActionChunk b = p_on->infer(ob);
      pre_off += a.timings.ms("preprocess") / task_reps;
      pre_on += b.timings.ms("preprocess") / task_reps;
      tot_off += a.timings.total_ms / task_reps;
      tot_on += b.timings.total_ms / task_reps;
    }
    const TaskCacheStats st = p_on->task_cache_stats();
    std::printf(
        "\ntask cache (%d reps, interleaved): preprocess %.3f ms off, %.3f ms on (saves %.3f ms = %.2f%% of "
        "the %.1f ms total); hits %llu, misses %llu, %zu bytes\n",
        task_reps, pre_off, pre_on, pre_off - pre_on,
        tot_off > 0 ? 100.0 * (pre_off - pre_on) / tot_off : 0.0, tot_off,
        static_cast<unsigned long long>(st.hits), static_cast<unsigned long long>(st.misses), st.bytes);
  }
  return 0;
}
