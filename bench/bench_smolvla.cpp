// End-to-end SmolVLA inference through vlart::Policy (observation -> action chunk), f32 and bf16
// compute. The checkpoint is $VLART_SMOLVLA_DIR when set (e.g. the smolvla_base-shaped random
// checkpoint that tools/make_smolvla_fixtures.py --full-size writes), else the bundled tiny
// policy (assets/default_policy), so CI measures the whole path too. Frames are synthetic
// 480x640 RGB (resize-with-pad is part of the timing); noise is fixed.
// Arguments: bf16 (0/1), threads. Counters: per-stage milliseconds per inference.
// For p50/p99 per stage, peak RSS and the LeRobot comparison use `vlart bench` and
// scripts/bench_smolvla.sh.
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "bench_policy_inputs.h"
#include "vlart/policy.h"

using namespace vlart;

namespace {

using bench::policy_dir;
using bench::synthetic_obs;

void BM_SmolVLAInfer(benchmark::State& st) {
  PolicyOptions opt;
  opt.compute_dtype = st.range(0) ? DType::kBF16 : DType::kF32;
  opt.threads = static_cast<int>(st.range(1));
  std::unique_ptr<Policy> p;
  try {
    p = Policy::load(policy_dir(), opt);
  } catch (const std::exception& e) {
    st.SkipWithError(e.what());
    return;
  }
  const Observation o = synthetic_obs(*p, 7);
  std::vector<float> noise(static_cast<size_t>(p->noise_numel()));
  std::mt19937 rng(11);
  std::normal_distribution<float> nd(0.f, 1.f);
  for (float& v : noise) v = nd(rng);
  p->infer(o, noise.data());  // graph build and weight packing happen here, not in the timing
  double pre = 0, vis = 0, pref = 0, den = 0;
  for (auto _ : st) {
    const ActionChunk c = p->infer(o, noise.data());
    benchmark::DoNotOptimize(c.data.data());
    pre += c.timings.ms("preprocess");
    vis += c.timings.ms("vision");
    pref += c.timings.ms("prefix");
    den += c.timings.ms("denoise");
  }
  const double n = static_cast<double>(st.iterations());
  st.counters["cams"] = static_cast<double>(p->camera_names().size());
  st.counters["preprocess_ms"] = pre / n;
  st.counters["vision_ms"] = vis / n;
  st.counters["prefix_ms"] = pref / n;
  st.counters["denoise_ms"] = den / n;
}

}  // namespace

BENCHMARK(BM_SmolVLAInfer)
    ->ArgNames({"bf16", "threads"})
    ->Args({0, 1})
    ->Args({1, 1})
    ->Args({0, 2})
    ->Args({1, 2})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

BENCHMARK_MAIN();
