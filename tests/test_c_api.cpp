// The C ABI (include/vlart/vlart.h) driven only through its C functions: fixture parity with
// LeRobot's actions, and every error path (status code + message, nothing thrown, outputs untouched).
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/safetensors.h"  // reads the fixture inputs only
#include "vlart/vlart.h"

namespace {

const std::string kRoot = std::string(VLART_TEST_DATA_DIR) + "/smolvla/";

struct Frame {
  std::string name;
  std::vector<uint8_t> data;
  int h = 0, w = 0;
};

struct Fixture {
  std::vector<Frame> frames;
  std::vector<float> state, noise, actions;
  std::string task;
};

Fixture load_fixture(const std::string& c, const std::string& s) {
  Fixture f;
  std::ifstream js(kRoot + c + "/case.json");
  const nlohmann::json j = nlohmann::json::parse(js);
  vlart::SafetensorsFile ref = vlart::SafetensorsFile::open(kRoot + c + "/reference.safetensors");
  for (const auto& cam : j["policy"]["cameras"]) {
    const std::string full = cam.get<std::string>();
    Frame fr;
    fr.name = full.substr(full.rfind('.') + 1);
    vlart::Tensor t = ref.get(s + ".input.image." + fr.name);
    fr.h = static_cast<int>(t.dim(0));
    fr.w = static_cast<int>(t.dim(1));
    fr.data.assign(t.data<uint8_t>(), t.data<uint8_t>() + t.numel());
    f.frames.push_back(std::move(fr));
  }
  f.state = ref.get(s + ".input.state").to_float_vector();
  f.noise = ref.get(s + ".noise").to_float_vector();
  f.actions = ref.get(s + ".actions").to_float_vector();
  for (const auto& smp : j["samples"])
    if (smp["name"] == s) f.task = smp["task"];
  return f;
}

std::vector<vlart_image> c_images(const Fixture& f) {
  std::vector<vlart_image> v;
  for (const Frame& fr : f.frames) v.push_back({fr.name.c_str(), fr.data.data(), fr.h, fr.w});
  return v;
}

bool mentions(const std::string& needle) { return std::string(vlart_last_error()).find(needle) != std::string::npos; }

class CApi : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(vlart_policy_load((kRoot + "b_three_cam_nonsquare/checkpoint").c_str(), 2, &p_), VLART_OK)
        << vlart_last_error();
    fx_ = load_fixture("b_three_cam_nonsquare", "s0");
    imgs_ = c_images(fx_);
    out_.assign(1000, -7.f);
  }
  void TearDown() override { vlart_policy_free(p_); }
  vlart_status infer(const vlart_image* im, int n, const float* st, int sl, const char* task, float* out, int cap,
                     int* h, int* a) {
    return vlart_policy_infer(p_, im, n, st, sl, task, fx_.noise.data(), out, cap, h, a);
  }
  vlart_policy* p_ = nullptr;
  Fixture fx_;
  std::vector<vlart_image> imgs_;
  std::vector<float> out_;
};

}  // namespace

TEST(CApiParity, EveryFixtureCaseMatchesLeRobotActions) {
  for (const char* c : {"a_one_cam_square", "b_three_cam_nonsquare", "c_task_lengths", "d_shallow_distilled",
                        "e_expert_skip_all_cross", "g_two_cam_wrist_top", "h_three_cam_up_side_front",
                        "i_empty_camera"}) {
    SCOPED_TRACE(c);
    vlart_policy* p = nullptr;
    ASSERT_EQ(vlart_policy_load((kRoot + c + "/checkpoint").c_str(), 2, &p), VLART_OK) << vlart_last_error();
    int n_cam = 0, sd = 0, hz = 0, ad = 0, mad = 0;
    ASSERT_EQ(vlart_policy_dims(p, &n_cam, &sd, &hz, &ad, &mad), VLART_OK);
    std::ifstream js(kRoot + c + "/case.json");
    const nlohmann::json j = nlohmann::json::parse(js);
    EXPECT_EQ(n_cam, static_cast<int>(j["policy"]["cameras"].size()));
    for (int i = 0; i < n_cam; ++i)  // camera index i is the checkpoint's i-th camera (not sorted)
      EXPECT_EQ(std::string(vlart_policy_camera_name(p, i)), j["policy"]["cameras"][i].get<std::string>()) << i;
    EXPECT_EQ(vlart_policy_camera_name(p, n_cam), nullptr);
    EXPECT_EQ(vlart_policy_camera_name(p, -1), nullptr);
    for (const auto& smp : j["samples"]) {
      const std::string s = smp["name"];
      SCOPED_TRACE(s);
      Fixture f = load_fixture(c, s);
      ASSERT_EQ(f.noise.size(), static_cast<size_t>(hz * mad));
      std::vector<vlart_image> im = c_images(f);
      std::reverse(im.begin(), im.end());  // order of the frames does not matter, names do
      std::vector<float> out(static_cast<size_t>(hz * ad), 0.f);
      int h = 0, a = 0;
      ASSERT_EQ(vlart_policy_infer(p, im.data(), static_cast<int>(im.size()), f.state.data(),
                                   static_cast<int>(f.state.size()), f.task.c_str(), f.noise.data(), out.data(),
                                   static_cast<int>(out.size()), &h, &a),
                VLART_OK)
          << vlart_last_error();
      EXPECT_EQ(h, hz);
      EXPECT_EQ(a, ad);
      ASSERT_EQ(out.size(), f.actions.size());
      double m = 0;
      for (size_t i = 0; i < out.size(); ++i) m = std::max(m, std::fabs(double(out[i]) - f.actions[i]));
      EXPECT_LE(m, 1e-4);
    }
    vlart_policy_free(p);
  }
}

// bf16 compute through the options struct: close to, but not bit-equal with, the f32 result.
TEST(CApiOptions, LoadExBf16AndSteps) {
  const std::string dir = kRoot + "a_one_cam_square/checkpoint";
  vlart_load_options o;
  vlart_load_options_default(&o);
  EXPECT_EQ(o.compute_bf16, 0);
  o.threads = 1;
  vlart_policy *p32 = nullptr, *pb = nullptr, *p1 = nullptr;
  ASSERT_EQ(vlart_policy_load_ex(dir.c_str(), &o, &p32), VLART_OK) << vlart_last_error();
  o.compute_bf16 = 1;
  ASSERT_EQ(vlart_policy_load_ex(dir.c_str(), &o, &pb), VLART_OK) << vlart_last_error();
  o.compute_bf16 = 0;
  o.flow_steps = 1;
  ASSERT_EQ(vlart_policy_load_ex(dir.c_str(), &o, &p1), VLART_OK) << vlart_last_error();
  int ncam = 0, sd = 0, hz = 0, ad = 0, mad = 0;
  ASSERT_EQ(vlart_policy_dims(p32, &ncam, &sd, &hz, &ad, &mad), VLART_OK);
  std::vector<uint8_t> rgb(48 * 64 * 3, 100);
  std::vector<vlart_image> imgs;
  for (int i = 0; i < ncam; ++i) imgs.push_back({vlart_policy_camera_name(p32, i), rgb.data(), 48, 64});
  std::vector<float> state(static_cast<size_t>(sd), 0.25f), noise(static_cast<size_t>(hz * mad), 0.5f);
  std::vector<float> a32(static_cast<size_t>(hz * ad)), ab(a32.size()), a1(a32.size());
  int h = 0, a = 0;
  ASSERT_EQ(vlart_policy_infer(p32, imgs.data(), ncam, state.data(), sd, "go", noise.data(), a32.data(),
                               static_cast<int>(a32.size()), &h, &a), VLART_OK) << vlart_last_error();
  ASSERT_EQ(vlart_policy_infer(pb, imgs.data(), ncam, state.data(), sd, "go", noise.data(), ab.data(),
                               static_cast<int>(ab.size()), &h, &a), VLART_OK) << vlart_last_error();
  ASSERT_EQ(vlart_policy_infer(p1, imgs.data(), ncam, state.data(), sd, "go", noise.data(), a1.data(),
                               static_cast<int>(a1.size()), &h, &a), VLART_OK) << vlart_last_error();
  double m = 0, mx = 0;
  for (size_t i = 0; i < a32.size(); ++i) {
    m = std::max(m, std::fabs(double(a32[i]) - ab[i]));
    mx = std::max(mx, std::fabs(double(a32[i])));
  }
  EXPECT_GT(m, 0.0);
  EXPECT_LE(m, 0.03 * mx);
  EXPECT_NE(a32, a1);  // one flow step instead of ten
  vlart_policy_free(p32);
  vlart_policy_free(pb);
  vlart_policy_free(p1);
  vlart_policy* q = nullptr;
  o.compute_bf16 = 7;
  EXPECT_EQ(vlart_policy_load_ex(dir.c_str(), &o, &q), VLART_ERR_INVALID_ARGUMENT);
  EXPECT_TRUE(mentions("compute_bf16 must be 0 or 1, got 7")) << vlart_last_error();
  EXPECT_EQ(q, nullptr);
  ASSERT_EQ(vlart_policy_load_ex(dir.c_str(), nullptr, &q), VLART_OK) << vlart_last_error();
  vlart_policy_free(q);
}

TEST(CApiErrors, LoadFailuresNameThePath) {
  vlart_policy* p = reinterpret_cast<vlart_policy*>(0x1);
  EXPECT_EQ(vlart_policy_load("/no/such/vlart_dir", 1, &p), VLART_ERR_IO);
  EXPECT_EQ(p, nullptr);
  EXPECT_TRUE(mentions("/no/such/vlart_dir")) << vlart_last_error();
  EXPECT_TRUE(mentions("vlart_policy_load")) << vlart_last_error();
  EXPECT_EQ(vlart_policy_load(nullptr, 1, &p), VLART_ERR_INVALID_ARGUMENT);
  EXPECT_TRUE(mentions("dir is NULL"));
  EXPECT_EQ(vlart_policy_load((kRoot + "a_one_cam_square/checkpoint").c_str(), 1, nullptr),
            VLART_ERR_INVALID_ARGUMENT);
  EXPECT_TRUE(mentions("out is NULL"));
  // A directory with a config.json that is not a SmolVLA checkpoint: format error, not a crash.
  const std::string bad = ::testing::TempDir() + std::to_string(getpid()) + "_vlart_c_api_bad_ckpt";
  std::filesystem::create_directories(bad);
  std::ofstream(bad + "/config.json") << "{ not json";
  EXPECT_EQ(vlart_policy_load(bad.c_str(), 1, &p), VLART_ERR_FORMAT);
  EXPECT_TRUE(mentions("config.json")) << vlart_last_error();
  vlart_policy_free(nullptr);  // no-op
  EXPECT_STREQ(vlart_status_name(VLART_ERR_BUFFER_TOO_SMALL), "buffer_too_small");
  EXPECT_STREQ(vlart_status_name(1234), "unknown");
}

TEST_F(CApi, WrongStateLength) {
  int h = 0, a = 0;
  EXPECT_EQ(infer(imgs_.data(), 3, fx_.state.data(), 7, "x", out_.data(), 1000, &h, &a), VLART_ERR_INVALID_ARGUMENT);
  EXPECT_TRUE(mentions("state has 7 values, expected 8")) << vlart_last_error();
  EXPECT_EQ(out_[0], -7.f);  // nothing written on failure
  std::vector<float> st = fx_.state;
  st[2] = NAN;
  EXPECT_EQ(infer(imgs_.data(), 3, st.data(), 8, "x", out_.data(), 1000, &h, &a), VLART_ERR_INVALID_ARGUMENT);
  EXPECT_TRUE(mentions("state[2] is not finite")) << vlart_last_error();
}

TEST_F(CApi, CapacityTooSmallReportsTheSize) {
  int h = 0, a = 0;
  const int need = 50 * 7;
  EXPECT_EQ(infer(imgs_.data(), 3, fx_.state.data(), 8, "x", out_.data(), need - 1, &h, &a),
            VLART_ERR_BUFFER_TOO_SMALL);
  EXPECT_EQ(h, 50);
  EXPECT_EQ(a, 7);
  EXPECT_TRUE(mentions("out_capacity is 349 floats, the action chunk needs 350 (50 x 7)")) << vlart_last_error();
  EXPECT_EQ(out_[0], -7.f);
  // Exactly enough is fine, and nothing past it is written.
  EXPECT_EQ(infer(imgs_.data(), 3, fx_.state.data(), 8, fx_.task.c_str(), out_.data(), need, &h, &a), VLART_OK)
      << vlart_last_error();
  EXPECT_EQ(out_[static_cast<size_t>(need)], -7.f);
  EXPECT_NE(out_[0], -7.f);
}

TEST_F(CApi, NullPointersAndBadCounts) {
  int h = 0, a = 0;
  float* o = out_.data();
  const float* st = fx_.state.data();
  EXPECT_EQ(vlart_policy_infer(nullptr, imgs_.data(), 3, st, 8, "x", nullptr, o, 1000, &h, &a),
            VLART_ERR_INVALID_ARGUMENT);
  EXPECT_TRUE(mentions("policy is NULL"));
  EXPECT_EQ(infer(nullptr, 3, st, 8, "x", o, 1000, &h, &a), VLART_ERR_INVALID_ARGUMENT);
  EXPECT_TRUE(mentions("images is NULL"));
  EXPECT_EQ(infer(imgs_.data(), -1, st, 8, "x", o, 1000, &h, &a), VLART_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(infer(imgs_.data(), 3, nullptr, 8, "x", o, 1000, &h, &a), VLART_ERR_INVALID_ARGUMENT);
  EXPECT_TRUE(mentions("state is NULL"));
  EXPECT_EQ(infer(imgs_.data(), 3, st, 8, nullptr, o, 1000, &h, &a), VLART_ERR_INVALID_ARGUMENT);
  EXPECT_TRUE(mentions("task is NULL"));
  EXPECT_EQ(infer(imgs_.data(), 3, st, 8, "x", nullptr, 1000, &h, &a), VLART_ERR_INVALID_ARGUMENT);
  EXPECT_TRUE(mentions("out_actions is NULL"));
  std::vector<vlart_image> im = imgs_;
  im[1].data = nullptr;
  EXPECT_EQ(infer(im.data(), 3, st, 8, "x", o, 1000, &h, &a), VLART_ERR_INVALID_ARGUMENT);
  EXPECT_TRUE(mentions("images[1] ('camera2') data is NULL")) << vlart_last_error();
  im = imgs_;
  im[0].name = nullptr;
  EXPECT_EQ(infer(im.data(), 3, st, 8, "x", o, 1000, &h, &a), VLART_ERR_INVALID_ARGUMENT);
  EXPECT_TRUE(mentions("images[0].name is NULL"));
  im = imgs_;
  im[2].width = 0;
  EXPECT_EQ(infer(im.data(), 3, st, 8, "x", o, 1000, &h, &a), VLART_ERR_INVALID_ARGUMENT);
  EXPECT_TRUE(mentions("is 200x0")) << vlart_last_error();
  EXPECT_EQ(vlart_policy_dims(nullptr, nullptr, nullptr, nullptr, nullptr, nullptr), VLART_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(vlart_policy_dims(p_, nullptr, nullptr, nullptr, nullptr, nullptr), VLART_OK);
  // Optional outputs may be NULL on success.
  EXPECT_EQ(infer(imgs_.data(), 3, st, 8, "x", o, 1000, nullptr, nullptr), VLART_OK) << vlart_last_error();
}

TEST_F(CApi, CameraErrors) {
  int h = 0, a = 0;
  const float* st = fx_.state.data();
  EXPECT_EQ(infer(imgs_.data(), 2, st, 8, "x", out_.data(), 1000, &h, &a), VLART_ERR_INVALID_ARGUMENT);
  EXPECT_TRUE(mentions("missing camera 'observation.images.camera3'")) << vlart_last_error();
  std::vector<vlart_image> im = imgs_;
  im[0].name = "front";
  EXPECT_EQ(infer(im.data(), 3, st, 8, "x", out_.data(), 1000, &h, &a), VLART_ERR_INVALID_ARGUMENT);
  EXPECT_TRUE(mentions("unknown camera 'front'")) << vlart_last_error();
  im = imgs_;
  im[2].name = "camera1";
  EXPECT_EQ(infer(im.data(), 3, st, 8, "x", out_.data(), 1000, &h, &a), VLART_ERR_INVALID_ARGUMENT);
  EXPECT_TRUE(mentions("camera 'camera1' given twice")) << vlart_last_error();
  // Short and full camera names both work.
  im = imgs_;
  im[1].name = "observation.images.camera2";
  EXPECT_EQ(infer(im.data(), 3, st, 8, "x", out_.data(), 1000, &h, &a), VLART_OK) << vlart_last_error();
}

TEST_F(CApi, RandomNoiseWhenNullIsFiniteAndVaries) {
  int h = 0, a = 0;
  std::vector<float> o1(350), o2(350);
  ASSERT_EQ(vlart_policy_infer(p_, imgs_.data(), 3, fx_.state.data(), 8, "x", nullptr, o1.data(), 350, &h, &a),
            VLART_OK);
  ASSERT_EQ(vlart_policy_infer(p_, imgs_.data(), 3, fx_.state.data(), 8, "x", nullptr, o2.data(), 350, &h, &a),
            VLART_OK);
  EXPECT_NE(o1, o2);
  for (float v : o1) EXPECT_TRUE(std::isfinite(v));
}

// Versioned options and the result handle: vlart_policy_open + vlart_policy_infer_ex give the same
// actions as vlart_policy_infer, name the stages, check the noise length, and read only struct_size
// bytes of the options (an older, shorter struct keeps the defaults of the fields it lacks).
TEST(CApiVersioned, OpenInferExAndResultHandle) {
  const std::string c = "h_three_cam_up_side_front";
  const Fixture f = load_fixture(c, "s0");
  const std::vector<vlart_image> im = c_images(f);
  vlart_policy_options o;
  vlart_policy_options_init(&o);
  EXPECT_EQ(o.struct_size, sizeof(vlart_policy_options));
  o.threads = 2;
  o.backend = "cpu";
  vlart_policy* p = nullptr;
  ASSERT_EQ(vlart_policy_open((kRoot + c + "/checkpoint").c_str(), &o, &p), VLART_OK) << vlart_last_error();
  EXPECT_STREQ(vlart_policy_family(p), "smolvla");
  int nl = 0, hz = 0, ad = 0, mad = 0;
  ASSERT_EQ(vlart_policy_noise_len(p, &nl), VLART_OK);
  ASSERT_EQ(vlart_policy_dims(p, nullptr, nullptr, &hz, &ad, &mad), VLART_OK);
  EXPECT_EQ(nl, hz * mad);
  ASSERT_EQ(f.noise.size(), static_cast<size_t>(nl));

  std::vector<float> ref(static_cast<size_t>(hz * ad));
  int h = 0, a = 0;
  ASSERT_EQ(vlart_policy_infer(p, im.data(), static_cast<int>(im.size()), f.state.data(),
                               static_cast<int>(f.state.size()), f.task.c_str(), f.noise.data(), ref.data(),
                               static_cast<int>(ref.size()), &h, &a),
            VLART_OK)
      << vlart_last_error();
  vlart_result* r = nullptr;
  ASSERT_EQ(vlart_policy_infer_ex(p, im.data(), static_cast<int>(im.size()), f.state.data(),
                                  static_cast<int>(f.state.size()), f.task.c_str(), f.noise.data(), nl, &r),
            VLART_OK)
      << vlart_last_error();
  const float* acts = vlart_result_actions(r, &h, &a);
  ASSERT_NE(acts, nullptr);
  EXPECT_EQ(h, hz);
  EXPECT_EQ(a, ad);
  EXPECT_EQ(std::vector<float>(acts, acts + h * a), ref);  // bit for bit
  double m = 0;
  for (size_t i = 0; i < ref.size(); ++i) m = std::max(m, std::fabs(double(acts[i]) - f.actions[i]));
  EXPECT_LE(m, 1e-4);
  EXPECT_STREQ(vlart_result_text(r), "");
  int nt = -1;
  vlart_result_tokens(r, &nt);
  EXPECT_EQ(nt, 0);
  const char* want[] = {"preprocess", "vision", "prefix", "denoise"};
  ASSERT_EQ(vlart_result_stage_count(r), 4);
  for (int i = 0; i < 4; ++i) {
    EXPECT_STREQ(vlart_result_stage_name(r, i), want[i]);
    EXPECT_GE(vlart_result_stage_ms(r, i), 0.0);
  }
  EXPECT_EQ(vlart_result_stage_name(r, 4), nullptr);
  EXPECT_GT(vlart_result_total_ms(r), 0.0);
  vlart_result_free(r);
  vlart_result_free(nullptr);

  // A wrong noise length is refused before anything runs, and *out stays NULL.
  r = reinterpret_cast<vlart_result*>(&o);
  EXPECT_EQ(vlart_policy_infer_ex(p, im.data(), static_cast<int>(im.size()), f.state.data(),
                                  static_cast<int>(f.state.size()), f.task.c_str(), f.noise.data(), nl - 1, &r),
            VLART_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(r, nullptr);
  EXPECT_TRUE(mentions("noise_len is " + std::to_string(nl - 1))) << vlart_last_error();
  // A bad observation: the policy's message, no result.
  EXPECT_EQ(vlart_policy_infer_ex(p, im.data(), 1, f.state.data(), static_cast<int>(f.state.size()),
                                  f.task.c_str(), nullptr, 0, &r),
            VLART_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(r, nullptr);
  EXPECT_TRUE(mentions("missing camera")) << vlart_last_error();
  vlart_policy_free(p);

  // struct_size: an older caller's shorter struct (no backend / tokenizer fields) loads with their
  // defaults; a too-small or a newer, larger struct is refused.
  vlart_policy_options old;
  vlart_policy_options_init(&old);
  old.threads = 2;
  old.backend = "no-such-backend";  // beyond the old struct_size: must not be read
  old.struct_size = static_cast<uint32_t>(offsetof(vlart_policy_options, backend));
  ASSERT_EQ(vlart_policy_open((kRoot + c + "/checkpoint").c_str(), &old, &p), VLART_OK) << vlart_last_error();
  vlart_policy_free(p);
  old.struct_size = 2;
  EXPECT_EQ(vlart_policy_open((kRoot + c + "/checkpoint").c_str(), &old, &p), VLART_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(p, nullptr);
  old.struct_size = sizeof(vlart_policy_options) + 8;
  EXPECT_EQ(vlart_policy_open((kRoot + c + "/checkpoint").c_str(), &old, &p), VLART_ERR_UNSUPPORTED);
  EXPECT_TRUE(mentions("newer vlart.h")) << vlart_last_error();
  // The backend string is read and checked when it is within struct_size.
  o.backend = "tpu";
  EXPECT_EQ(vlart_policy_open((kRoot + c + "/checkpoint").c_str(), &o, &p), VLART_ERR_INVALID_ARGUMENT);
  EXPECT_TRUE(mentions("backend 'tpu'")) << vlart_last_error();
}
