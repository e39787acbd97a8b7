// Approximate visual reuse, measured: a synthetic camera sequence with small motion (a square moving
// over a static textured background, plus per-frame sensor noise) run through a policy with
// PolicyOptions::vision_reuse_* at several thresholds and through the same policy without it, with
// the same initial noise; action-space error and time per threshold. Shared by test_caches (bundled
// tiny policy, bounds asserted) and bench_vision_reuse (any checkpoint, a printed table).
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "compress/metrics.h"
#include "vlart/policy.h"

namespace vlart::testing {

struct SequenceSpec {
  int64_t height = 64, width = 64;
  int frames = 12;
  int square = 12;     // side of the moving square, pixels
  int step = 3;        // its motion per frame (pixels, diagonal)
  double noise = 2.0;  // sensor noise sigma on 0..255 (independent per frame and pixel)
  unsigned seed = 1;
  unsigned noise_seed = 0;  // another value: the same scene and motion with another noise draw
};

// Frame `f` of camera `cam`: a fixed texture (smooth gradient plus fixed random grain, different per
// camera); camera 0 also shows a square moving diagonally `step` px per frame; other cameras are
// static. Then fresh Gaussian noise.
inline Image synthetic_frame(const SequenceSpec& s, int cam, int f) {
  Image im;
  im.height = s.height;
  im.width = s.width;
  im.data.resize(static_cast<size_t>(s.height * s.width * 3));
  std::mt19937 grain(s.seed * 7919u + static_cast<unsigned>(cam));
  std::mt19937 noise(s.seed * 104729u + s.noise_seed * 15485863u + static_cast<unsigned>(cam) * 1009u +
                     static_cast<unsigned>(f));
  std::uniform_int_distribution<int> g(-20, 20);
  std::normal_distribution<double> nd(0.0, s.noise);
  const int64_t x0 = (static_cast<int64_t>(f) * s.step) % std::max<int64_t>(1, s.width - s.square);
  const int64_t y0 = (static_cast<int64_t>(f) * s.step) % std::max<int64_t>(1, s.height - s.square);
  for (int64_t y = 0; y < s.height; ++y)
    for (int64_t x = 0; x < s.width; ++x)
      for (int c = 0; c < 3; ++c) {
        double v =
            60.0 +
            120.0 * (static_cast<double>(x + (c + cam) * y) / static_cast<double>(s.width + 3 * s.height)) +
            g(grain);
        if (cam == 0 && x >= x0 && x < x0 + s.square && y >= y0 && y < y0 + s.square)
          v = c == 0 ? 230.0 : 30.0;
        if (s.noise > 0) v += nd(noise);
        im.data[static_cast<size_t>((y * s.width + x) * 3 + c)] =
            static_cast<uint8_t>(std::clamp(std::lround(v), 0L, 255L));
      }
  return im;
}

inline std::vector<Observation> synthetic_sequence(const Policy& p, const SequenceSpec& s) {
  std::vector<Observation> seq;
  const std::vector<std::string> cams = p.camera_names();
  for (int f = 0; f < s.frames; ++f) {
    Observation o;
    for (size_t c = 0; c < cams.size(); ++c) o.images[cams[c]] = synthetic_frame(s, static_cast<int>(c), f);
    o.state.assign(static_cast<size_t>(p.state_dim()), 0.f);
    for (size_t i = 0; i < o.state.size(); ++i)
      o.state[i] = 0.1f * std::sin(0.3f * static_cast<float>(f + i));
    o.task = "pick up the red cube";
    seq.push_back(std::move(o));
  }
  return seq;
}

struct SweepRow {
  float threshold = 0;
  compress::ActionError err;  // vs the same policy without reuse
  bool bit_identical = false;
  // Mean per inference (first frame excluded), with reuse and without it, measured interleaved
  // frame by frame in the same loop so both see the same machine load.
  double vision_ms = 0, total_ms = 0, ref_vision_ms = 0, ref_total_ms = 0;
  VisionReuseStats stats;
};

struct SweepResult {
  std::vector<SweepRow> rows;
  // The sensor-noise floor: the reference's actions on the same sequence with another noise draw,
  // against its actions on this one (what the actions move by from the noise alone).
  compress::ActionError noise_floor;
};

// Loads `dir` once without reuse and once per threshold (vision_reuse_bytes = `budget`), runs the
// sequence (one inference per frame, the same noise per frame) through the reference and the
// candidate alternately, and compares.
inline SweepResult run_reuse_sweep(const std::string& dir, PolicyOptions base, const SequenceSpec& spec,
                                   const std::vector<float>& thresholds, size_t budget = size_t{1} << 30) {
  base.vision_reuse_bytes = 0;
  base.vision_cache_bytes = 0;
  auto ref = Policy::load(dir, base);
  const std::vector<Observation> seq = synthetic_sequence(*ref, spec);
  const size_t nn = static_cast<size_t>(ref->noise_numel());
  std::vector<std::vector<float>> noise(seq.size(), std::vector<float>(nn));
  std::mt19937 rng(spec.seed);
  std::normal_distribution<float> nd(0.f, 1.f);
  for (auto& v : noise)
    for (float& x : v) x = nd(rng);
  SweepResult res;
  {
    SequenceSpec other = spec;
    other.noise_seed = spec.noise_seed + 1;
    const std::vector<Observation> seq2 = synthetic_sequence(*ref, other);
    std::vector<std::vector<float>> a, b;
    for (size_t f = 0; f < seq.size(); ++f) {
      a.push_back(ref->infer(seq[f], noise[f].data()).data);
      b.push_back(ref->infer(seq2[f], noise[f].data()).data);
    }
    res.noise_floor = compress::action_error(a, b, ref->action_dim());
  }
  for (float thr : thresholds) {
    PolicyOptions o = base;
    o.vision_reuse_bytes = budget;
    o.vision_reuse_threshold = thr;
    auto p = Policy::load(dir, o);
    SweepRow row;
    row.threshold = thr;
    std::vector<std::vector<float>> want, got;
    const double w = 1.0 / static_cast<double>(std::max<size_t>(1, seq.size() - 1));
    for (size_t f = 0; f < seq.size(); ++f) {
      ActionChunk a = ref->infer(seq[f], noise[f].data());
      ActionChunk b = p->infer(seq[f], noise[f].data());
      if (f > 0) {
        row.ref_vision_ms += w * a.timings.ms("vision");
        row.ref_total_ms += w * a.timings.total_ms;
        row.vision_ms += w * b.timings.ms("vision");
        row.total_ms += w * b.timings.total_ms;
      }
      want.push_back(std::move(a.data));
      got.push_back(std::move(b.data));
    }
    row.err = compress::action_error(want, got, ref->action_dim());
    row.bit_identical = got == want;
    row.stats = p->vision_reuse_stats();
    res.rows.push_back(row);
  }
  return res;
}

}  // namespace vlart::testing
