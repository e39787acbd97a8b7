// SmolVLA parity against LeRobot 0.4.4 fixtures (tests/data/smolvla/*, made by
// tools/make_smolvla_fixtures.py): every stage compared with the recorded tensors, f32.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include "core/safetensors.h"
#include "models/smolvla/config.h"
#include "models/smolvla/model.h"
#include "smolvla_fixture.h"
#include "standalone_model.h"
#include "models/smolvla/preprocess.h"
#include "models/smolvla/weights.h"
#include "vlart/error.h"
#include "vlart/policy.h"
#include "vlart/tokenizer.h"

using namespace vlart;
using namespace vlart::smolvla;

using namespace vlart::smolvla::fixture;

TEST(SmolVLAPreprocess, MatchesRecordedTensors) {
  for (const std::string& c : kCases) {
    Case k = open_case(c);
    for (const auto& smp : k.js["samples"]) {
      const std::string s = smp["name"];
      SCOPED_TRACE(c + "/" + s);
      PrefixInputs in = make_inputs(k, s);
      const int64_t per = 3 * k.cfg.resize_h * k.cfg.resize_w;
      for (size_t i = 0; i < k.cfg.cameras.size(); ++i) {
        const std::string& cam = k.cfg.cameras[i];
        std::vector<float> ref = k.ref.get(s + ".pre.image." + cam.substr(cam.rfind('.') + 1)).to_float_vector();
        std::vector<float> got(in.images.begin() + static_cast<long>(i) * per,
                               in.images.begin() + static_cast<long>(i + 1) * per);
        EXPECT_LE(max_abs(got, ref), 2e-6) << cam;
      }
      EXPECT_LE(max_abs(in.state, k.ref.get(s + ".pre.state_padded").to_float_vector()), 1e-6);
      Tensor ids = k.ref.get(s + ".pre.lang_tokens");
      std::vector<int64_t> rid(ids.data<int64_t>(), ids.data<int64_t>() + ids.numel());
      EXPECT_EQ(in.lang_ids, rid);
      EXPECT_EQ(in.lang_mask, u8(k.ref.get(s + ".pre.lang_mask")));
      std::vector<float> tref = k.ref.get(s + ".time").to_float_vector();
      std::vector<float> eref = k.ref.get(s + ".time_emb").to_float_vector();
      const int64_t W = k.cfg.expert_hidden();
      for (size_t j = 0; j < tref.size(); ++j) {
        std::vector<float> te = time_embedding(tref[j], W, k.cfg.min_period, k.cfg.max_period);
        std::vector<float> er(eref.begin() + static_cast<long>(j) * W, eref.begin() + static_cast<long>(j + 1) * W);
        EXPECT_LE(max_abs(te, er), 1e-7);
      }
    }
  }
}

TEST(SmolVLAModel, StagesAndActionsMatchLeRobot) {
  for (const std::string& c : kCases) {
    Case k = open_case(c);
    test_util::StandaloneModel sm(k.cfg, SmolVLAWeights::open(kRoot + c + "/checkpoint"), 2);
    SmolVLAModel& model = *sm.m;
    for (const auto& smp : k.js["samples"]) {
      const std::string s = smp["name"];
      SCOPED_TRACE(c + "/" + s);
      PrefixInputs in = make_inputs(k, s);
      // Vision: fed with the recorded preprocessed images so this stage is judged on its own.
      std::vector<float> pre;
      for (const std::string& cam : k.cfg.cameras) {
        std::vector<float> r = k.ref.get(s + ".pre.image." + cam.substr(cam.rfind('.') + 1)).to_float_vector();
        pre.insert(pre.end(), r.begin(), r.end());
      }
      Tensor last;
      Tensor conn = model.vision(pre, in.n_cams, &last);
      const int64_t T = k.cfg.tokens_per_image();
      for (size_t i = 0; i < k.cfg.cameras.size(); ++i) {
        const std::string cam = k.cfg.cameras[i].substr(k.cfg.cameras[i].rfind('.') + 1);
        std::vector<float> lr = k.ref.get(s + ".vision." + cam + ".last_hidden_state").to_float_vector();
        std::vector<float> cr = k.ref.get(s + ".vision." + cam + ".connector").to_float_vector();
        std::vector<float> lg = last.select(0, static_cast<int64_t>(i)).contiguous().to_float_vector();
        std::vector<float> cg = conn.select(0, static_cast<int64_t>(i)).contiguous().to_float_vector();
        EXPECT_LE(max_abs(lg, lr), 1e-4) << cam << " last_hidden_state";
        EXPECT_LE(max_abs(cg, cr), 1e-4) << cam << " connector";
        EXPECT_EQ(static_cast<int64_t>(cg.size()), T * k.cfg.text.hidden);
      }
      // Prefix. LeRobot appends an all -1 image with mask 0 per empty-camera placeholder after the
      // real cameras; its tokens are padding (never attended, positions skip them), so the runtime
      // leaves them out and the reference is compared on the rows it keeps (keep[p] = reference row).
      Tensor embs;
      PrefixState ps = model.prefix(in, &embs);
      const int64_t n_empty = k.js["policy"].value("empty_cameras", 0);
      const int64_t P_ref = smp["num_prefix_tokens"].get<int64_t>();
      const int64_t skip0 = in.n_cams * T, skip1 = skip0 + n_empty * T;
      std::vector<int64_t> keep;
      for (int64_t r = 0; r < P_ref; ++r)
        if (r < skip0 || r >= skip1) keep.push_back(r);
      ASSERT_EQ(ps.len, static_cast<int64_t>(keep.size()));
      if (n_empty > 0) {
        const std::vector<uint8_t> rpad = u8(k.ref.get(s + ".prefix.pad_mask"));
        for (int64_t r = skip0; r < skip1; ++r) EXPECT_EQ(rpad[static_cast<size_t>(r)], 0) << "placeholder row " << r;
      }
      auto rows = [&](const std::vector<float>& ref, int64_t width) {
        std::vector<float> out;
        for (int64_t r : keep) out.insert(out.end(), ref.begin() + r * width, ref.begin() + (r + 1) * width);
        return out;
      };
      EXPECT_LE(max_abs(embs.to_float_vector(), rows(k.ref.get(s + ".prefix.embs").to_float_vector(), k.cfg.text.hidden)),
                1e-4);
      Tensor rpos = k.ref.get(s + ".prefix.position_ids");
      const std::vector<uint8_t> rpad = u8(k.ref.get(s + ".prefix.pad_mask"));
      const std::vector<uint8_t> ratt = u8(k.ref.get(s + ".prefix.att_2d_mask"));
      std::vector<int64_t> kpos;
      std::vector<uint8_t> kpad, katt;
      for (int64_t r : keep) {
        kpos.push_back(rpos.data<int64_t>()[r]);
        kpad.push_back(rpad[static_cast<size_t>(r)]);
        for (int64_t q : keep) katt.push_back(ratt[static_cast<size_t>(r * P_ref + q)]);
      }
      EXPECT_EQ(ps.positions, kpos);
      EXPECT_EQ(ps.pad, kpad);
      EXPECT_EQ(ps.att2d, katt);
      // KV cache at valid positions (pad rows attend to nothing here but uniformly in eager PyTorch;
      // nothing ever reads them).
      const int64_t kvw = k.cfg.text.kv_heads * k.cfg.text.head_dim;
      for (int64_t l = 0; l < k.cfg.num_vlm_layers; ++l) {
        for (const char* kv : {"k", "v"}) {
          std::vector<float> r = rows(k.ref.get(s + ".kv." + std::to_string(l) + "." + kv).to_float_vector(), kvw);
          std::vector<float> g = (kv[0] == 'k' ? ps.k : ps.v)[static_cast<size_t>(l)].to_float_vector();
          ASSERT_EQ(r.size(), g.size());
          double m = 0;
          for (int64_t p = 0; p < ps.len; ++p)
            if (ps.pad[static_cast<size_t>(p)])
              for (int64_t e = 0; e < kvw; ++e)
                m = std::max(m, std::fabs(double(r[static_cast<size_t>(p * kvw + e)]) - g[static_cast<size_t>(p * kvw + e)]));
          EXPECT_LE(m, 1e-4) << "layer " << l << " " << kv;
        }
      }
      // Per-step velocity from the recorded x_t (isolates each step).
      std::vector<float> times = k.ref.get(s + ".time").to_float_vector();
      for (int64_t st = 0; st < k.cfg.num_steps; ++st) {
        const std::string p = s + ".step." + std::to_string(st);
        std::vector<float> v = model.velocity(ps, k.ref.get(p + ".x_t").to_float_vector(), times[static_cast<size_t>(st)]);
        EXPECT_LE(max_abs(v, k.ref.get(p + ".v_t").to_float_vector()), 1e-4) << "step " << st;
      }
      // End to end from the injected noise.
      std::vector<float> x0 = model.denoise(ps, k.ref.get(s + ".noise").to_float_vector(), k.cfg.num_steps);
      EXPECT_LE(max_abs(x0, k.ref.get(s + ".x0_full").to_float_vector()), 1e-4);
      std::vector<float> act = k.ref.get(s + ".actions").to_float_vector();
      const int64_t A = k.cfg.action_dim, M = k.cfg.max_action_dim;
      double m = 0;
      for (int64_t r = 0; r < k.cfg.chunk_size; ++r)
        for (int64_t a = 0; a < A; ++a) {
          const size_t ai = static_cast<size_t>(a);
          const float y = x0[static_cast<size_t>(r * M + a)] * k.stats.action_std[ai] + k.stats.action_mean[ai];
          m = std::max(m, std::fabs(double(y) - act[static_cast<size_t>(r * A + a)]));
        }
      EXPECT_LE(m, 1e-4) << "final actions";
      std::printf("[%s/%s] final actions max abs err %.3g\n", c.c_str(), s.c_str(), m);
    }
  }
}

// ---- Public Policy API ----
#include "vlart/policy.h"

namespace {
Observation fixture_obs(const Case& k, const std::string& s) {
  Observation o;
  for (const std::string& cam : k.cfg.cameras) {
    const std::string short_name = cam.substr(cam.rfind('.') + 1);
    Tensor img = k.ref.get(s + ".input.image." + short_name);
    Image im;
    im.height = img.dim(0);
    im.width = img.dim(1);
    im.data.assign(img.data<uint8_t>(), img.data<uint8_t>() + img.numel());
    o.images[short_name] = std::move(im);
  }
  o.state = k.ref.get(s + ".input.state").to_float_vector();
  for (const auto& smp : k.js["samples"])
    if (smp["name"] == s) o.task = smp["task"];
  return o;
}
}  // namespace

TEST(SmolVLAPolicy, InferMatchesLeRobotActions) {
  for (const std::string& c : kCases) {
    Case k = open_case(c);
    PolicyOptions opt;
    opt.threads = 2;
    auto policy = Policy::load(kRoot + c + "/checkpoint", opt);  // tokenizer found via vlm_model_name
    EXPECT_EQ(policy->action_dim(), k.cfg.action_dim);
    // Cameras listed in the checkpoint's order (LeRobot's), not sorted.
    EXPECT_EQ(policy->camera_names(), k.js["policy"]["cameras"].get<std::vector<std::string>>());
    for (const auto& smp : k.js["samples"]) {
      const std::string s = smp["name"];
      SCOPED_TRACE(c + "/" + s);
      Observation o = fixture_obs(k, s);
      const std::vector<float> noise = k.ref.get(s + ".noise").to_float_vector();
      ActionChunk a = policy->infer(o, noise.data());
      ASSERT_EQ(a.horizon, k.cfg.chunk_size);
      ASSERT_EQ(a.action_dim, k.cfg.action_dim);
      const double err = max_abs(a.data, k.ref.get(s + ".actions").to_float_vector());
      EXPECT_LE(err, 1e-4);
      std::printf("[%s/%s] Policy::infer actions max abs err %.3g\n", c.c_str(), s.c_str(), err);
      EXPECT_GT(a.timings.total_ms, 0.0);
      EXPECT_GE(a.timings.total_ms, a.timings.ms("denoise"));
      // Repeated call (cached executors) is bit-identical; pre-tokenised prompt gives the same result.
      ActionChunk b = policy->infer(o, noise.data());
      EXPECT_EQ(a.data, b.data);
      std::printf("[%s/%s] warm infer ms: preprocess %.2f vision %.2f prefix %.2f denoise %.2f total %.2f\n",
                  c.c_str(), s.c_str(), b.timings.ms("preprocess"), b.timings.ms("vision"), b.timings.ms("prefix"),
                  b.timings.ms("denoise"), b.timings.total_ms);
      Tensor ids = k.ref.get(s + ".pre.lang_tokens");
      Tensor msk = k.ref.get(s + ".pre.lang_mask");
      std::vector<int64_t> valid;
      for (int64_t i = 0; i < ids.numel(); ++i)
        if (msk.data<uint8_t>()[i]) valid.push_back(ids.data<int64_t>()[i]);
      o.token_ids = valid;
      o.task = "ignored";
      ActionChunk t = policy->infer(o, noise.data());
      EXPECT_EQ(a.data, t.data);
    }
  }
}

// Frames passed as views of the caller's memory (Image::borrow) give the actions of owned frames bit
// for bit, contiguous or with padded rows, and the vision cache keys them by content either way.
TEST(SmolVLAPolicy, BorrowedFramesWithRowStrideMatchOwnedFrames) {
  const std::string c = "b_three_cam_nonsquare";
  Case k = open_case(c);
  PolicyOptions opt;
  opt.threads = 2;
  opt.vision_cache_bytes = size_t{64} << 20;
  auto policy = Policy::load(kRoot + c + "/checkpoint", opt);
  const std::string s = k.js["samples"][0]["name"];
  const Observation owned = fixture_obs(k, s);
  const std::vector<float> noise = k.ref.get(s + ".noise").to_float_vector();
  const std::vector<float> want = policy->infer(owned, noise.data()).data;
  // Contiguous views of the same bytes, then copies into buffers with 13 bytes of padding per row
  // (filled with 0xAB: a kernel that reads the padding changes the result).
  Observation contiguous = owned, padded = owned;
  std::vector<std::vector<uint8_t>> bufs;
  for (auto& [name, im] : contiguous.images) im = Image::borrow(owned.images.at(name).data.data(), im.height, im.width);
  for (auto& [name, im] : padded.images) {
    const Image& src = owned.images.at(name);
    const int64_t stride = src.width * 3 + 13;
    bufs.emplace_back(static_cast<size_t>(stride * src.height), uint8_t{0xAB});
    for (int64_t y = 0; y < src.height; ++y)
      std::copy_n(src.data.data() + y * src.width * 3, src.width * 3, bufs.back().data() + y * stride);
    im = Image::borrow(bufs.back().data(), src.height, src.width, stride);
  }
  const VisionCacheStats s0 = policy->vision_cache_stats();
  EXPECT_EQ(policy->infer(contiguous, noise.data()).data, want);
  EXPECT_EQ(policy->vision_cache_stats().hits, s0.hits + 3) << "contiguous views hash like the owned frames";
  policy->clear_vision_cache();
  EXPECT_EQ(policy->infer(padded, noise.data()).data, want);
  const VisionCacheStats st = policy->vision_cache_stats();
  EXPECT_EQ(st.misses, s0.misses + 3) << "each padded frame is a new key after the clear";
  EXPECT_EQ(policy->infer(padded, noise.data()).data, want);
  EXPECT_EQ(policy->vision_cache_stats().hits, st.hits + 3) << "the same padded frames hit";
  // A stride shorter than a row, or bytes and a view at once: errors naming the camera.
  Observation bad = padded;
  bad.images.begin()->second.row_stride = bad.images.begin()->second.width * 3 - 1;
  EXPECT_THROW(policy->infer(bad, noise.data()), InvalidArgument);
  bad = padded;
  bad.images.begin()->second.data = {1, 2, 3};
  EXPECT_THROW(policy->infer(bad, noise.data()), InvalidArgument);
}

TEST(SmolVLAPolicy, FlowStepsOverrideAndRandomNoise) {
  const std::string c = "a_one_cam_square";
  Case k = open_case(c);
  PolicyOptions opt;
  opt.flow_steps = 1;
  opt.tokenizer_path = kRoot + c + "/vlm/tokenizer.json";
  auto policy = Policy::load(kRoot + c + "/checkpoint", opt);
  Observation o = fixture_obs(k, "s0");
  // One Euler step from the fixture noise = noise - v_0 (t = 1, the same first velocity).
  const std::vector<float> noise = k.ref.get("s0.noise").to_float_vector();
  const std::vector<float> v0 = k.ref.get("s0.step.0.v_t").to_float_vector();
  ActionChunk a = policy->infer(o, noise.data());
  double m = 0;
  for (int64_t r = 0; r < a.horizon; ++r)
    for (int64_t j = 0; j < a.action_dim; ++j) {
      const size_t i = static_cast<size_t>(r * k.cfg.max_action_dim + j), ai = static_cast<size_t>(j);
      const double want = (double(noise[i]) - double(v0[i])) * k.stats.action_std[ai] + k.stats.action_mean[ai];
      m = std::max(m, std::fabs(want - a.data[static_cast<size_t>(r * a.action_dim + j)]));
    }
  EXPECT_LE(m, 1e-4);
  ActionChunk r1 = policy->infer(o), r2 = policy->infer(o);  // drawn noise differs between calls
  EXPECT_NE(r1.data, r2.data);
  for (float v : r1.data) EXPECT_TRUE(std::isfinite(v));
}

TEST(SmolVLAPolicy, ValidationErrors) {
  const std::string c = "b_three_cam_nonsquare";
  Case k = open_case(c);
  auto policy = Policy::load(kRoot + c + "/checkpoint");
  const Observation good = fixture_obs(k, "s0");
  EXPECT_NO_THROW(policy->validate(good));
  auto expect_invalid = [&](const Observation& o, const std::string& needle) {
    EXPECT_THROW(policy->validate(o), InvalidArgument) << needle;
    try {
      policy->infer(o);
      ADD_FAILURE() << "expected InvalidArgument mentioning " << needle;
    } catch (const InvalidArgument& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  Observation o = good;
  o.images["nope"] = good.images.at("camera1");
  expect_invalid(o, "unknown camera 'nope'");
  o = good;
  o.images.erase("camera2");
  expect_invalid(o, "missing camera 'observation.images.camera2'");
  o = good;
  o.state.pop_back();
  expect_invalid(o, "state has 7 values, expected 8");
  o = good;
  o.state[3] = std::nanf("");
  expect_invalid(o, "state[3] is not finite");
  o = good;
  o.state[0] = INFINITY;
  expect_invalid(o, "state[0] is not finite");
  o = good;
  o.images["camera3"] = Image{};
  expect_invalid(o, "empty frame");
  o = good;
  o.images["camera1"].data.pop_back();
  expect_invalid(o, "bytes, expected");
  EXPECT_THROW(Policy::load(kRoot + "missing_dir"), IoError);
}

TEST(SmolVLAWeights, LegacyNormaliserNamesInModelSafetensors) {
  const std::string dir = ::testing::TempDir() + "smolvla_legacy_stats";
  std::filesystem::create_directories(dir);
  write_safetensors(dir + "/model.safetensors",
                    {{"normalize_inputs.buffer_observation_state.mean", Tensor::from_vector({1, 2}, {2})},
                     {"normalize_inputs.buffer_observation_state.std", Tensor::from_vector({3, 4}, {2})},
                     {"unnormalize_outputs.buffer_action.mean", Tensor::from_vector({5, 6, 7}, {3})},
                     {"unnormalize_outputs.buffer_action.std", Tensor::from_vector({8, 9, 10}, {3})}});
  NormStats s = load_norm_stats(dir, 2, 3);
  EXPECT_EQ(s.state_mean, (std::vector<float>{1, 2}));
  EXPECT_EQ(s.state_std, (std::vector<float>{3, 4}));
  EXPECT_EQ(s.action_mean, (std::vector<float>{5, 6, 7}));
  EXPECT_EQ(s.action_std, (std::vector<float>{8, 9, 10}));
  EXPECT_THROW(load_norm_stats(dir, 3, 3), FormatError);  // wrong state length names the tensor
}

// ---- bf16 compute, bf16 checkpoints, batched inference ----
#include <unistd.h>

namespace {
struct ErrStats {
  double rel_l2 = 0, max_abs = 0, ref_max = 0;
};
ErrStats err_stats(const std::vector<float>& got, const std::vector<float>& ref) {
  ErrStats e;
  double num = 0, den = 0;
  for (size_t i = 0; i < std::min(got.size(), ref.size()); ++i) {
    const double d = double(got[i]) - ref[i];
    num += d * d;
    den += double(ref[i]) * ref[i];
    e.max_abs = std::max(e.max_abs, std::fabs(d));
    e.ref_max = std::max(e.ref_max, std::fabs(double(ref[i])));
  }
  e.rel_l2 = den > 0 ? std::sqrt(num / den) : std::sqrt(num);
  return e;
}
}  // namespace

// The bf16 path is not expected to match LeRobot's f32 actions bit for bit; its error is measured
// on every fixture case and bounded. The bounds (rel L2 <= 2e-2, max abs <= 3% of the largest
// action) are about 3x the worst errors measured when they were set (rel L2 0.0072, max abs 0.82%
// of the largest action; printed below).
TEST(SmolVLAPolicy, Bf16PathErrorIsBounded) {
  double worst = 0;
  for (const std::string& c : kCases) {
    Case k = open_case(c);
    PolicyOptions opt;
    opt.threads = 2;
    opt.compute_dtype = DType::kBF16;
    auto policy = Policy::load(kRoot + c + "/checkpoint", opt);
    EXPECT_EQ(policy->compute_dtype(), DType::kBF16);
    for (const auto& smp : k.js["samples"]) {
      const std::string s = smp["name"];
      SCOPED_TRACE(c + "/" + s);
      const std::vector<float> noise = k.ref.get(s + ".noise").to_float_vector();
      ActionChunk a = policy->infer(fixture_obs(k, s), noise.data());
      for (float v : a.data) ASSERT_TRUE(std::isfinite(v));
      const ErrStats e = err_stats(a.data, k.ref.get(s + ".actions").to_float_vector());
      std::printf("[%s/%s] bf16 vs LeRobot f32: rel L2 %.3g, max abs %.3g (max |action| %.3g)\n", c.c_str(),
                  s.c_str(), e.rel_l2, e.max_abs, e.ref_max);
      EXPECT_LE(e.rel_l2, 2e-2);
      EXPECT_LE(e.max_abs, 0.03 * e.ref_max);
      EXPECT_GT(e.max_abs, 0.0) << "bf16 path gave f32-exact actions: is it really computing in bf16?";
      worst = std::max(worst, e.rel_l2);
    }
  }
  std::printf("bf16 worst rel L2 over all fixtures: %.3g\n", worst);
}

TEST(SmolVLAPolicy, UnsupportedComputeDtypeAndBatchOptionAreRejected) {
  const std::string c = "a_one_cam_square";
  PolicyOptions opt;
  opt.backend = "tpu";
  EXPECT_THROW(Policy::load(kRoot + c + "/checkpoint", opt), InvalidArgument);
  opt.backend = "auto";  // falls back to the CPU without a GPU
  EXPECT_NO_THROW(Policy::load(kRoot + c + "/checkpoint", opt));
  opt.backend = "cpu";
  opt.compute_dtype = DType::kF16;
  EXPECT_THROW(Policy::load(kRoot + c + "/checkpoint", opt), UnsupportedError);
  opt.compute_dtype = DType::kF32;
  opt.max_batch = 0;
  EXPECT_THROW(Policy::load(kRoot + c + "/checkpoint", opt), InvalidArgument);
}

// LeRobot's published checkpoints (smolvla_base) store bf16 weights: the same checkpoint rewritten
// in bf16 loads unchanged and, in f32 compute, gives the f32 checkpoint's actions up to the
// weights' rounding.
TEST(SmolVLAPolicy, Bf16CheckpointLoads) {
  const std::string c = "b_three_cam_nonsquare";
  Case k = open_case(c);
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("vlart_bf16_ckpt_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  for (const auto& e : fs::directory_iterator(kRoot + c + "/checkpoint"))
    if (e.path().filename() != "model.safetensors") fs::copy(e.path(), dir / e.path().filename());
  SafetensorsFile src = SafetensorsFile::open(kRoot + c + "/checkpoint/model.safetensors");
  NamedTensors ts;
  for (const std::string& n : src.names()) {
    Tensor t = src.get(n);
    ts.emplace_back(n, t.dtype() == DType::kF32 ? t.to(DType::kBF16) : t.clone());
  }
  write_safetensors((dir / "model.safetensors").string(), ts);
  PolicyOptions opt;
  opt.threads = 2;
  opt.vlm_config_dir = kRoot + c + "/vlm";
  opt.tokenizer_path = kRoot + c + "/vlm/tokenizer.json";
  auto p32 = Policy::load(kRoot + c + "/checkpoint", opt);
  auto pb = Policy::load(dir.string(), opt);
  for (const auto& smp : k.js["samples"]) {
    const std::string s = smp["name"];
    const std::vector<float> noise = k.ref.get(s + ".noise").to_float_vector();
    const Observation o = fixture_obs(k, s);
    const ErrStats e = err_stats(pb->infer(o, noise.data()).data, p32->infer(o, noise.data()).data);
    std::printf("[%s/%s] bf16 checkpoint (f32 compute) vs f32 checkpoint: rel L2 %.3g\n", c.c_str(), s.c_str(),
                e.rel_l2);
    EXPECT_LE(e.rel_l2, 2e-2);
    EXPECT_GT(e.max_abs, 0.0);
  }
  fs::remove_all(dir);
}

TEST(SmolVLAPolicy, InferBatchMatchesSingleInfer) {
  for (const std::string& c : {std::string("a_one_cam_square"), std::string("b_three_cam_nonsquare")}) {
    Case k = open_case(c);
    PolicyOptions opt;
    opt.threads = 2;
    opt.max_batch = 2;  // three observations: one group of two, one of one
    auto policy = Policy::load(kRoot + c + "/checkpoint", opt);
    std::vector<Observation> obs;
    std::vector<float> noise;
    std::vector<std::vector<float>> ref;
    for (int rep = 0; rep < 3; ++rep) {
      const auto& smp = k.js["samples"][static_cast<size_t>(rep) % k.js["samples"].size()];
      const std::string s = smp["name"];
      obs.push_back(fixture_obs(k, s));
      if (rep == 2) obs.back().state[0] += 0.5f;  // a third, distinct observation
      std::vector<float> nz = k.ref.get(s + ".noise").to_float_vector();
      if (rep == 2)
        for (float& v : nz) v = -v;
      ref.push_back(policy->infer(obs.back(), nz.data()).data);
      noise.insert(noise.end(), nz.begin(), nz.end());
    }
    std::vector<ActionChunk> out = policy->infer_batch(obs, noise.data());
    ASSERT_EQ(out.size(), obs.size());
    for (size_t i = 0; i < out.size(); ++i) {
      SCOPED_TRACE(c + " obs " + std::to_string(i));
      EXPECT_EQ(out[i].horizon, k.cfg.chunk_size);
      EXPECT_LE(max_abs(out[i].data, ref[i]), 1e-5);
      EXPECT_GT(out[i].timings.ms("vision"), 0.0);
    }
    EXPECT_NE(out[0].data, out[2].data);
    // One bad observation: the whole call throws, naming it, and nothing else runs.
    obs[1].state.pop_back();
    try {
      policy->infer_batch(obs, noise.data());
      ADD_FAILURE() << "expected InvalidArgument";
    } catch (const InvalidArgument& e) {
      EXPECT_NE(std::string(e.what()).find("observation 1"), std::string::npos) << e.what();
    }
    EXPECT_TRUE(policy->infer_batch({}).empty());
  }
}

// backend "cuda": on a machine without a usable GPU the load fails naming the reason; with one, the
// actions match LeRobot's within the f32 bound (the CUDA backend runs what it supports, the CPU the rest).
TEST(SmolVLAPolicy, CudaBackendOrClearError) {
  const std::string c = "a_one_cam_square";
  PolicyOptions opt;
  opt.backend = "cuda";
  std::unique_ptr<Policy> p;
  try {
    p = Policy::load(kRoot + c + "/checkpoint", opt);
  } catch (const UnsupportedError& e) {
    EXPECT_NE(std::string(e.what()).find("backend 'cuda'"), std::string::npos) << e.what();
    GTEST_SKIP() << "no usable CUDA device: " << e.what();
  }
  EXPECT_EQ(p->backend(), "cuda+cpu");
  Case k = open_case(c);
  for (const auto& smp : k.js["samples"]) {
    const std::string s = smp["name"];
    const std::vector<float> noise = k.ref.get(s + ".noise").to_float_vector();
    ActionChunk a = p->infer(fixture_obs(k, s), noise.data());
    EXPECT_LE(max_abs(a.data, k.ref.get(s + ".actions").to_float_vector()), 1e-3);
  }
}

// Exact vision cache: an unchanged frame reuses its features (a hit), giving bit-identical actions
// to the miss that computed them and within 1e-5 of the uncached batched vision pass; a changed
// frame misses; robots have separate entries; LRU eviction keeps the byte budget; clearing works.
TEST(SmolVLAPolicy, VisionCacheHitsAreExactAndBounded) {
  const std::string c = "b_three_cam_nonsquare";
  Case k = open_case(c);
  const Observation o = fixture_obs(k, "s0");
  const std::vector<float> noise = k.ref.get("s0.noise").to_float_vector();
  PolicyOptions opt;
  opt.threads = 2;
  auto plain = Policy::load(kRoot + c + "/checkpoint", opt);
  opt.vision_cache_bytes = size_t{64} << 20;
  auto cached = Policy::load(kRoot + c + "/checkpoint", opt);
  const ActionChunk ref = plain->infer(o, noise.data());
  const ActionChunk miss = cached->infer(o, noise.data());
  VisionCacheStats st = cached->vision_cache_stats();
  EXPECT_EQ(st.misses, 3u);
  EXPECT_EQ(st.hits, 0u);
  EXPECT_EQ(st.entries, 3u);
  EXPECT_LE(max_abs(miss.data, ref.data), 1e-5);
  EXPECT_LE(max_abs(miss.data, k.ref.get("s0.actions").to_float_vector()), 1e-4);
  const ActionChunk hit = cached->infer(o, noise.data());
  EXPECT_EQ(hit.data, miss.data);
  st = cached->vision_cache_stats();
  EXPECT_EQ(st.hits, 3u);
  EXPECT_EQ(st.misses, 3u);
  // One camera changes: one miss, two hits, and the actions change.
  Observation o2 = o;
  o2.images.begin()->second.data[7] ^= 0x40;
  const ActionChunk a2 = cached->infer(o2, noise.data());
  st = cached->vision_cache_stats();
  EXPECT_EQ(st.hits, 5u);
  EXPECT_EQ(st.misses, 4u);
  EXPECT_NE(a2.data, hit.data);
  EXPECT_LE(max_abs(a2.data, plain->infer(o2, noise.data()).data), 1e-5);
  // Another robot with the same frames has its own entries; clearing one robot keeps the other's.
  Observation r2 = o;
  r2.robot_id = "arm-2";
  cached->infer(r2, noise.data());
  EXPECT_EQ(cached->vision_cache_stats().misses, 7u);
  cached->clear_vision_cache("arm-2");
  cached->infer(o, noise.data());
  EXPECT_EQ(cached->vision_cache_stats().misses, 7u) << "robot '' lost its entries";
  cached->infer(r2, noise.data());
  EXPECT_EQ(cached->vision_cache_stats().misses, 10u);
  cached->clear_vision_cache();
  EXPECT_EQ(cached->vision_cache_stats().entries, 0u);
  EXPECT_EQ(cached->vision_cache_stats().bytes, 0u);
  // A budget of two frames' features: never above it, evictions counted.
  const size_t per = st.bytes / st.entries;
  opt.vision_cache_bytes = 2 * per;
  auto small = Policy::load(kRoot + c + "/checkpoint", opt);
  small->infer(o, noise.data());
  small->infer(o2, noise.data());
  st = small->vision_cache_stats();
  EXPECT_LE(st.bytes, 2 * per);
  EXPECT_EQ(st.entries, 2u);
  EXPECT_GE(st.evictions, 2u);
  // infer_batch goes through the cache too.
  std::vector<ActionChunk> b = cached->infer_batch({o, o2}, nullptr);
  EXPECT_EQ(b.size(), 2u);
}
