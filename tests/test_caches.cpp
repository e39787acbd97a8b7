// Policy caches across control steps: the task cache (exact) and approximate visual token reuse
// (SmolVLAModel::vision_sparse, runtime/vision_reuse.*): correctness of the sparse vision pass,
// exactness at threshold 0, error bounds of a threshold sweep on a moving-square sequence,
// per-robot entries, LRU budget, counters, clearing.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <thread>

#include "models/smolvla/config.h"
#include "models/smolvla/model.h"
#include "standalone_model.h"
#include "models/smolvla/preprocess.h"
#include "models/smolvla/weights.h"
#include "reuse_sweep.h"
#include "serve_fixture.h"
#include "vlart/error.h"

using namespace vlart;
namespace vt = vlart::testing;
using vlart::testing::default_policy_dir;
using vlart::testing::SequenceSpec;

namespace {

const std::string kFixtures = std::string(VLART_TEST_DATA_DIR) + "/smolvla/";

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  double m = 0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) m = std::max(m, std::fabs(double(a[i]) - b[i]));
  return m;
}
double max_abs(const std::vector<float>& a) {
  double m = 0;
  for (float v : a) m = std::max(m, std::fabs(double(v)));
  return m;
}

std::vector<float> rows(const Tensor& t, int64_t r0, int64_t r1) {
  const std::vector<float> all = t.to_float_vector();
  const int64_t w = t.numel() / t.dim(t.rank() - 2);
  return {all.begin() + r0 * w, all.begin() + r1 * w};
}

struct Model {
  smolvla::SmolVLAConfig cfg;
  std::unique_ptr<test_util::StandaloneModel> sm;
  smolvla::SmolVLAModel* m = nullptr;
};
Model open_model(const std::string& ckpt, const std::string& vlm_cfg, DType dt = DType::kF32) {
  Model r;
  r.cfg = smolvla::load_config(ckpt, vlm_cfg);
  r.sm = std::make_unique<test_util::StandaloneModel>(r.cfg, smolvla::SmolVLAWeights::open(ckpt), 1, dt);
  r.m = r.sm->m.get();
  return r;
}

std::vector<float> frame(const smolvla::SmolVLAConfig& c, const SequenceSpec& s, int cam, int f) {
  const Image im = vt::synthetic_frame(s, cam, f);
  return smolvla::resize_with_pad(im.data.data(), im.height, im.width, c.resize_h, c.resize_w);
}

}  // namespace

// --- Task cache -------------------------------------------------------------------------------

TEST(TaskCache, HitsAreBitIdenticalCountedBoundedAndCleared) {
  PolicyOptions o;
  o.threads = 1;
  o.task_cache_bytes = 0;
  auto plain = Policy::load(default_policy_dir(), o);
  o.task_cache_bytes = size_t{1} << 20;
  auto cached = Policy::load(default_policy_dir(), o);
  EXPECT_EQ(plain->task_cache_stats().budget_bytes, 0u);
  Observation a = vt::sample_observation();
  const std::vector<float> noise(static_cast<size_t>(plain->noise_numel()), 0.25f);
  const ActionChunk ref = plain->infer(a, noise.data());
  const ActionChunk miss = cached->infer(a, noise.data());
  const ActionChunk hit = cached->infer(a, noise.data());
  EXPECT_EQ(miss.data, ref.data);
  EXPECT_EQ(hit.data, ref.data);
  TaskCacheStats st = cached->task_cache_stats();
  EXPECT_EQ(st.misses, 1u);
  EXPECT_EQ(st.hits, 1u);
  EXPECT_EQ(st.entries, 1u);
  EXPECT_GT(st.bytes, 0u);
  EXPECT_EQ(plain->task_cache_stats().entries, 0u);
  // Another task misses and gives other actions; a pre-tokenised prompt has its own key.
  Observation b = a;
  b.task = "open the drawer";
  const ActionChunk other = cached->infer(b, noise.data());
  EXPECT_NE(other.data, ref.data);
  EXPECT_EQ(other.data, plain->infer(b, noise.data()).data);
  Observation c = a;
  c.token_ids = std::vector<int64_t>{5, 17, 23};
  EXPECT_EQ(cached->infer(c, noise.data()).data, plain->infer(c, noise.data()).data);
  EXPECT_EQ(cached->infer(c, noise.data()).data, plain->infer(c, noise.data()).data);
  st = cached->task_cache_stats();
  EXPECT_EQ(st.misses, 3u);
  EXPECT_EQ(st.hits, 2u);
  EXPECT_EQ(st.entries, 3u);
  // A robot's clear keeps the shared task entries; the full clear drops them.
  cached->clear_vision_cache("arm-1");
  EXPECT_EQ(cached->task_cache_stats().entries, 3u);
  cached->clear_vision_cache();
  EXPECT_EQ(cached->task_cache_stats().entries, 0u);
  EXPECT_EQ(cached->task_cache_stats().bytes, 0u);
  // A budget of one entry (entry sizes follow the prompt length): the least recently used is evicted.
  cached->infer(a, noise.data());
  const size_t bytes_a = cached->task_cache_stats().bytes;
  cached->clear_vision_cache();
  cached->infer(b, noise.data());
  const size_t bytes_b = cached->task_cache_stats().bytes;
  o.task_cache_bytes = std::max(bytes_a, bytes_b);
  ASSERT_LT(o.task_cache_bytes, bytes_a + bytes_b);
  auto small = Policy::load(default_policy_dir(), o);
  small->infer(a, noise.data());
  small->infer(b, noise.data());
  small->infer(a, noise.data());
  st = small->task_cache_stats();
  EXPECT_EQ(st.entries, 1u);
  EXPECT_LE(st.bytes, st.budget_bytes);
  EXPECT_EQ(st.evictions, 2u);
  EXPECT_EQ(st.misses, 3u);
}

// --- Sparse vision pass -----------------------------------------------------------------------

// With every token recomputed, the cached K/V are all masked out: the sparse pass is the full pass
// of the new frame (different GEMM shapes: equal to rounding). Checks the patch gather, position
// ids, mask and the pixel-shuffle order of the token groups, on a 1-layer and a 2-layer tower.
TEST(VisionSparse, AllTokensEqualsTheFullPass) {
  struct C {
    std::string ckpt, vlm;
    DType dt;
    double tol;  // relative to the largest value (bf16: K/V and features are rounded to bf16)
  };
  const std::vector<C> cases = {
      {default_policy_dir(), default_policy_dir() + "/smolvlm_tiny/config.json", DType::kF32, 1e-4},
      {kFixtures + "a_one_cam_square/checkpoint", kFixtures + "a_one_cam_square/vlm/config.json", DType::kF32,
       1e-4},
      {kFixtures + "a_one_cam_square/checkpoint", kFixtures + "a_one_cam_square/vlm/config.json",
       DType::kBF16, 2e-2}};
  for (const C& c : cases) {
    SCOPED_TRACE(c.ckpt + (c.dt == DType::kBF16 ? " bf16" : " f32"));
    Model md = open_model(c.ckpt, c.vlm, c.dt);
    SequenceSpec s;
    const std::vector<float> f0 = frame(md.cfg, s, 0, 0), f1 = frame(md.cfg, s, 1, 5);
    const int64_t T = md.cfg.tokens_per_image();
    smolvla::SmolVLAModel::VisionState st = md.m->vision_state(f0);
    // vision_state's features are vision()'s, bit for bit.
    const std::vector<float> st0_feat = st.feat.to_float_vector();
    EXPECT_EQ(st0_feat, md.m->vision(f0, 1).to_float_vector());
    std::vector<int64_t> all;
    for (int64_t t = T - 1; t >= 0; --t) all.push_back(t);  // any order
    md.m->vision_sparse(f1, all, st);
    smolvla::SmolVLAModel::VisionState want = md.m->vision_state(f1);
    const std::vector<float> got = st.feat.to_float_vector(), ref = want.feat.to_float_vector();
    EXPECT_LE(max_abs_diff(got, ref), c.tol * std::max(1.0, max_abs(ref)));
    EXPECT_GT(max_abs_diff(got, st0_feat), 1e-3 * std::max(1.0, max_abs(ref))) << "the frames hardly differ";
    for (size_t l = 0; l < want.k.size(); ++l) {
      const std::vector<float> wk = want.k[l].to_float_vector(), wv = want.v[l].to_float_vector();
      EXPECT_LE(max_abs_diff(st.k[l].to_float_vector(), wk), c.tol * std::max(1.0, max_abs(wk)))
          << "layer " << l;
      EXPECT_LE(max_abs_diff(st.v[l].to_float_vector(), wv), c.tol * std::max(1.0, max_abs(wv)))
          << "layer " << l;
    }
  }
}

// One layer: a patch's K/V depend on that patch alone, so recomputing the tokens that changed gives
// exactly their full-pass features (to rounding), and the other tokens keep their old ones.
TEST(VisionSparse, ChangedTokensMatchTheFullPassOnOneLayer) {
  Model md = open_model(default_policy_dir(), default_policy_dir() + "/smolvlm_tiny/config.json");
  ASSERT_EQ(md.cfg.vision.layers, 1);
  const int64_t T = md.cfg.tokens_per_image(), S = md.cfg.vision.image_size;
  ASSERT_EQ(T, 4);
  SequenceSpec s;
  const std::vector<float> f0 = frame(md.cfg, s, 0, 0);
  std::vector<float> f1 = f0;
  // Change the pixels of token 2 only (bottom-left square of the 2x2 token grid).
  const int64_t R = S / 2;
  for (int64_t c = 0; c < 3; ++c)
    for (int64_t y = R; y < S; ++y)
      for (int64_t x = 0; x < R; ++x) f1[static_cast<size_t>((c * S + y) * S + x)] *= -0.5f;
  smolvla::SmolVLAModel::VisionState st = md.m->vision_state(f0);
  const Tensor old_feat = st.feat.clone();
  md.m->vision_sparse(f1, {2}, st);
  const Tensor full = md.m->vision_state(f1).feat;
  const int64_t D = md.cfg.text.hidden;
  ASSERT_EQ(full.numel(), T * D);
  EXPECT_LE(max_abs_diff(rows(st.feat, 2, 3), rows(full, 2, 3)), 1e-4);
  EXPECT_GT(max_abs_diff(rows(old_feat, 2, 3), rows(full, 2, 3)), 1e-3) << "token 2 did not change";
  for (int64_t t : {0, 1, 3}) EXPECT_EQ(rows(st.feat, t, t + 1), rows(old_feat, t, t + 1)) << "token " << t;
}

TEST(VisionSparse, RejectsBadTokenLists) {
  Model md = open_model(default_policy_dir(), default_policy_dir() + "/smolvlm_tiny/config.json");
  SequenceSpec s;
  const std::vector<float> f0 = frame(md.cfg, s, 0, 0);
  smolvla::SmolVLAModel::VisionState st = md.m->vision_state(f0);
  EXPECT_THROW(md.m->vision_sparse(f0, {}, st), InvalidArgument);
  EXPECT_THROW(md.m->vision_sparse(f0, {1, 1}, st), InvalidArgument);
  EXPECT_THROW(md.m->vision_sparse(f0, {4}, st), InvalidArgument);
  EXPECT_THROW(md.m->vision_sparse(std::vector<float>(7), {0}, st), InvalidArgument);
}

// --- Policy-level reuse -----------------------------------------------------------------------

TEST(VisionReuse, OptionsAreValidated) {
  PolicyOptions o;
  o.vision_reuse_bytes = 1 << 20;
  o.vision_reuse_threshold = -1.f;
  EXPECT_THROW(Policy::load(default_policy_dir(), o), InvalidArgument);
  o.vision_reuse_threshold = 4.f;
  o.vision_reuse_max_fraction = 1.5f;
  EXPECT_THROW(Policy::load(default_policy_dir(), o), InvalidArgument);
  o.vision_reuse_max_fraction = 0.5f;
  o.vision_reuse_refresh = -1;
  EXPECT_THROW(Policy::load(default_policy_dir(), o), InvalidArgument);
}

// The threshold sweep on the bundled tiny policy (2 cameras of 4 tokens; camera 1 shows a 12 px
// square moving 3 px per frame, camera 2 is static; sensor noise sigma 2 on both). Noise alone
// changes a token by ~2.3 on average, so thresholds <= 2 recompute everything (and must be
// bit-identical to no reuse), while 4+ reuse static camera 2 and the tokens the square is not in.
TEST(VisionReuse, ThresholdSweepOnMovingSquare) {
  PolicyOptions o;
  o.threads = 1;
  SequenceSpec s;
  s.frames = 12;
  const std::vector<float> thr = {0.f, 1.f, 2.f, 4.f, 8.f, 16.f};
  const vt::SweepResult res = vt::run_reuse_sweep(default_policy_dir(), o, s, thr);
  const std::vector<vt::SweepRow>& rows = res.rows;
  ASSERT_EQ(rows.size(), thr.size());
  std::printf("sensor-noise floor (another noise draw, no reuse): max_abs %.3e rel_l2 %.3e cosine %.5f\n",
              res.noise_floor.max_abs, res.noise_floor.rel_l2, res.noise_floor.cosine);
  std::printf(
      "threshold  max_abs    rel_l2     cosine   frames full/sparse/reused  tokens reused  vision ms "
      "(ref)\n");
  for (const auto& r : rows)
    std::printf("%9.1f  %.3e  %.3e  %.5f  %4llu/%4llu/%4llu  %13llu  %.3f (%.3f)\n", r.threshold,
                r.err.max_abs, r.err.rel_l2, r.err.cosine,
                static_cast<unsigned long long>(r.stats.frames_full),
                static_cast<unsigned long long>(r.stats.frames_sparse),
                static_cast<unsigned long long>(r.stats.frames_reused),
                static_cast<unsigned long long>(r.stats.tokens_reused), r.vision_ms, r.ref_vision_ms);
  const uint64_t frames = static_cast<uint64_t>(s.frames) * 2;  // two cameras
  for (const auto& r : rows) {
    EXPECT_EQ(r.stats.frames_full + r.stats.frames_sparse + r.stats.frames_reused, frames) << r.threshold;
    EXPECT_EQ(r.stats.cache.misses, 2u) << r.threshold;  // the first frame of each camera
    EXPECT_EQ(r.stats.cache.entries, 2u) << r.threshold;
    if (r.threshold <= 2.f) {
      EXPECT_TRUE(r.bit_identical) << "threshold " << r.threshold << " max abs " << r.err.max_abs;
      EXPECT_EQ(r.stats.tokens_reused, 0u) << r.threshold;
    } else {
      EXPECT_GT(r.stats.tokens_reused, 0u) << r.threshold;
      EXPECT_GT(r.stats.frames_reused + r.stats.frames_sparse, 0u) << r.threshold;
    }
    // Bounds with margin over the measured errors (rel L2 0.026 / 0.036 / 0.055 at 4 / 8 / 16, the
    // noise floor 0.011; see docs/serving.md): a coarse grid (each token is a quarter of the frame).
    EXPECT_LE(r.err.rel_l2, 0.1) << r.threshold;
    EXPECT_LE(r.err.rel_l2, 8 * res.noise_floor.rel_l2) << r.threshold;
    EXPECT_GE(r.err.cosine, 0.995) << r.threshold;
  }
  // More reuse at higher thresholds.
  for (size_t i = 1; i < rows.size(); ++i)
    EXPECT_GE(rows[i].stats.tokens_reused, rows[i - 1].stats.tokens_reused);
}

// Entries per (robot, camera); LRU within the byte budget; clearing one robot or all.
TEST(VisionReuse, PerRobotEntriesBudgetAndClear) {
  PolicyOptions o;
  o.threads = 1;
  o.vision_reuse_bytes = size_t{64} << 20;
  o.vision_reuse_threshold = 8.f;
  auto p = Policy::load(default_policy_dir(), o);
  SequenceSpec s;
  std::vector<Observation> seq = vt::synthetic_sequence(*p, s);
  const std::vector<float> noise(static_cast<size_t>(p->noise_numel()), 0.1f);
  p->infer(seq[0], noise.data());
  VisionReuseStats st = p->vision_reuse_stats();
  EXPECT_EQ(st.cache.misses, 2u);
  EXPECT_EQ(st.cache.entries, 2u);
  EXPECT_EQ(st.frames_full, 2u);
  const size_t per = st.cache.bytes / 2;
  // The same frames again: every token unchanged (noise is the same frame's), reused whole.
  const ActionChunk a0 = p->infer(seq[0], noise.data());
  st = p->vision_reuse_stats();
  EXPECT_EQ(st.frames_reused, 2u);
  EXPECT_EQ(st.cache.hits, 2u);
  // Another robot gets its own entries and never reuses arm-0's.
  Observation r2 = seq[0];
  r2.robot_id = "arm-2";
  const ActionChunk b0 = p->infer(r2, noise.data());
  EXPECT_EQ(b0.data, a0.data);
  st = p->vision_reuse_stats();
  EXPECT_EQ(st.cache.entries, 4u);
  EXPECT_EQ(st.frames_full, 4u);
  p->clear_vision_cache("arm-2");
  EXPECT_EQ(p->vision_reuse_stats().cache.entries, 2u);
  p->infer(seq[1], noise.data());
  EXPECT_EQ(p->vision_reuse_stats().cache.misses, 4u) << "robot '' lost its entries";
  p->clear_vision_cache();
  EXPECT_EQ(p->vision_reuse_stats().cache.entries, 0u);
  EXPECT_EQ(p->vision_reuse_stats().cache.bytes, 0u);
  // A budget of three cameras' state (+ slack for the longer keys of arm-2): two robots (four
  // cameras) never exceed it.
  o.vision_reuse_bytes = 3 * per + 64;
  auto small = Policy::load(default_policy_dir(), o);
  small->infer(seq[0], noise.data());
  small->infer(r2, noise.data());
  st = small->vision_reuse_stats();
  EXPECT_LE(st.cache.bytes, 3 * per + 64);
  EXPECT_EQ(st.cache.entries, 3u);
  EXPECT_EQ(st.cache.evictions, 1u);
  // Stats and clear from another thread while inferences run (TSan checks the locking).
  std::thread reader([&] {
    for (int i = 0; i < 50; ++i) {
      (void)small->vision_reuse_stats();
      (void)small->task_cache_stats();
      if (i % 10 == 0) small->clear_vision_cache("arm-2");
    }
  });
  for (int i = 0; i < 6; ++i) small->infer(seq[static_cast<size_t>(i)], noise.data());
  reader.join();
  // infer_batch goes through the reuse path too.
  EXPECT_EQ(small->infer_batch({seq[0], seq[1]}).size(), 2u);
}

// The refresh bound: with refresh = 1, every sparse recompute of a camera is followed by a full one
// before the next sparse one; with max_fraction 0 every change recomputes the camera in full.
TEST(VisionReuse, RefreshAndMaxFraction) {
  PolicyOptions o;
  o.threads = 1;
  o.vision_reuse_bytes = size_t{64} << 20;
  o.vision_reuse_threshold = 8.f;
  o.vision_reuse_refresh = 0;
  SequenceSpec s;
  s.noise = 0;
  s.frames = 10;
  auto run = [&](const PolicyOptions& opt) {
    auto p = Policy::load(default_policy_dir(), opt);
    for (const auto& ob : vt::synthetic_sequence(*p, s)) p->infer(ob);
    return p->vision_reuse_stats();
  };
  const VisionReuseStats never = run(o);
  // Camera 2 is static (no noise): after its first frame it is always reused whole.
  EXPECT_GE(never.frames_reused, static_cast<uint64_t>(s.frames - 1));
  EXPECT_GT(never.frames_sparse, 1u);
  o.vision_reuse_refresh = 1;
  const VisionReuseStats every = run(o);
  EXPECT_GT(every.frames_sparse, 0u);
  EXPECT_LE(every.frames_sparse, every.frames_full - 1);  // camera 2 has one full frame
  EXPECT_LT(every.frames_sparse, never.frames_sparse);
  o.vision_reuse_max_fraction = 0.f;
  const VisionReuseStats none = run(o);
  EXPECT_EQ(none.frames_sparse, 0u);
  EXPECT_GT(none.frames_reused, 0u);
}
