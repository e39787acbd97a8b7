// opentau's pi05 with predict_response (reason, then act) against opentau 0.14.0 itself, on the
// committed fixtures (tests/data/pi05_reason, written by tools/make_reason_fixtures.py from opentau's
// own PI05Policy: save_pretrained, from_pretrained, sample_actions with injected noise): Policy::load
// on the checkpoint directory as saved, Policy::infer on the raw frames, state, task and noise, the
// decoded response token ids against opentau's (exactly) and the actions (max abs <= 1e-4, f32).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>
#include <unistd.h>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/safetensors.h"
#include "vlart/error.h"
#include "vlart/policy.h"

namespace vlart {
namespace {

const std::string kRoot = std::string(VLART_TEST_DATA_DIR) + "/pi05_reason/";
const std::vector<std::string> kCases = {"a_one_cam", "b_two_cam", "c_early_eos"};

nlohmann::json case_json(const std::string& c) {
  std::ifstream f(kRoot + c + "/case.json");
  EXPECT_TRUE(f.good()) << kRoot + c + "/case.json";
  return nlohmann::json::parse(f);
}

double max_abs(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  double m = 0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) m = std::max(m, std::fabs(double(a[i]) - b[i]));
  return m;
}

struct Sample {
  std::string name;
  Observation obs;
  std::vector<float> noise, actions;
  std::vector<int64_t> fed;     // opentau's response.tokens: every decode step's token, <bos> first
  std::vector<uint8_t> valid;   // response.pad_mask
};

std::vector<Sample> samples(const std::string& c) {
  const nlohmann::json js = case_json(c);
  const SafetensorsFile ref = SafetensorsFile::open(kRoot + c + "/reference.safetensors");
  std::vector<Sample> out;
  for (const auto& s : js["samples"]) {
    Sample x;
    x.name = s["name"].get<std::string>();
    for (const auto& cam : s["cameras_present"]) {
      const Tensor t = ref.get(x.name + ".input.image." + cam.get<std::string>());
      Image im;
      im.height = t.dim(0);
      im.width = t.dim(1);
      im.data.assign(t.data<uint8_t>(), t.data<uint8_t>() + t.numel());
      x.obs.images[cam.get<std::string>()] = std::move(im);
    }
    x.obs.state = ref.get(x.name + ".input.state_padded").to_float_vector();
    x.obs.task = s["task"].get<std::string>();
    x.noise = ref.get(x.name + ".noise").to_float_vector();
    x.actions = ref.get(x.name + ".actions").to_float_vector();
    const Tensor tok = ref.get(x.name + ".response.tokens");
    x.fed.assign(tok.data<int64_t>(), tok.data<int64_t>() + tok.numel());
    const Tensor pm = ref.get(x.name + ".response.pad_mask");
    x.valid.assign(pm.data<uint8_t>(), pm.data<uint8_t>() + pm.numel());
    out.push_back(std::move(x));
  }
  return out;
}

// What vlart reports as the response: opentau's tokens after the fed <bos>, while real.
std::vector<int32_t> expected_response(const Sample& s) {
  std::vector<int32_t> r;
  for (size_t i = 1; i < s.fed.size() && s.valid[i]; ++i) r.push_back(static_cast<int32_t>(s.fed[i]));
  return r;
}

class ReasonParity : public ::testing::TestWithParam<std::string> {};

TEST_P(ReasonParity, TokensAndActionsMatchOpentauF32) {
  const std::string c = GetParam();
  PolicyOptions o;
  o.threads = 2;
  auto policy = Policy::load(kRoot + c + "/checkpoint", o);
  EXPECT_EQ(policy->info().family, "opentau_pi05");
  EXPECT_TRUE(policy->info().emits_text);
  for (const Sample& s : samples(c)) {
    const ActionChunk a = policy->infer(s.obs, s.noise.data());
    EXPECT_EQ(a.tokens, expected_response(s)) << c << " " << s.name;
    EXPECT_FALSE(a.text.empty()) << c << " " << s.name;
    ASSERT_EQ(a.data.size(), s.actions.size()) << c << " " << s.name;
    const double d = max_abs(a.data, s.actions);
    std::printf("%s %s: %zu response tokens '%s', actions max abs %.3g\n", c.c_str(), s.name.c_str(), a.tokens.size(),
                a.text.c_str(), d);
    EXPECT_LE(d, 1e-4) << c << " " << s.name;
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, ReasonParity, ::testing::ValuesIn(kCases));

ActionChunk run(const std::string& c, const PolicyOptions& o, const Observation& obs, const std::vector<float>& noise) {
  return Policy::load(kRoot + c + "/checkpoint", o)->infer(obs, noise.data());
}

// opentau feeds masked <pad> tokens up to response_max_length after an <eos>; nothing attends to
// them, so stopping at the <eos> gives the same tokens and the same actions, bit for bit.
TEST(Reason, EarlyStopAtEosGivesTheSameActions) {
  const Sample s = samples("c_early_eos").at(0);
  PolicyOptions o;
  o.threads = 1;
  const ActionChunk stop = run("c_early_eos", o, s.obs, s.noise);
  o.response_stop_at_eos = false;
  const ActionChunk full = run("c_early_eos", o, s.obs, s.noise);
  EXPECT_EQ(stop.tokens, expected_response(s));
  EXPECT_EQ(full.tokens, stop.tokens);
  EXPECT_EQ(full.data, stop.data);
  EXPECT_LE(max_abs(stop.data, s.actions), 1e-4);
}

// A shorter cap decodes the first tokens of the full response (greedy decoding is causal), and the
// action expert then attends to those only.
TEST(Reason, ResponseCapKeepsTheFirstTokens) {
  const Sample s = samples("a_one_cam").at(0);
  PolicyOptions o;
  o.threads = 1;
  const ActionChunk full = run("a_one_cam", o, s.obs, s.noise);
  o.response_max_tokens = 5;
  const ActionChunk cut = run("a_one_cam", o, s.obs, s.noise);
  ASSERT_EQ(cut.tokens.size(), 4u);
  EXPECT_TRUE(std::equal(cut.tokens.begin(), cut.tokens.end(), full.tokens.begin()));
  EXPECT_GT(max_abs(cut.data, full.data), 1e-6) << "the action expert must see the shorter response";
  o.response_max_tokens = 53;  // above the checkpoint's response_max_length
  EXPECT_THROW(Policy::load(kRoot + "a_one_cam/checkpoint", o), InvalidArgument);
}

// Reasoning reuse: a kept response serves reason_every calls of one robot (then a new decode), a
// task change or a changed scene decodes again, and robots do not share responses.
TEST(Reason, ReuseEveryNCallsPerRobotTaskAndScene) {
  const Sample s = samples("a_one_cam").at(0);
  Observation a = s.obs, b = s.obs;
  for (float& x : b.state) x = x * 0.5f + 0.3f;  // another state: other prompt bins, other prefix
  PolicyOptions fresh_o;
  fresh_o.threads = 1;
  auto fresh = Policy::load(kRoot + "a_one_cam/checkpoint", fresh_o);
  const ActionChunk fa = fresh->infer(a, s.noise.data()), fb = fresh->infer(b, s.noise.data());
  ASSERT_NE(fa.tokens, fb.tokens) << "the fixture's two states must decode different responses";

  PolicyOptions o = fresh_o;
  o.reason_every = 3;
  auto p = Policy::load(kRoot + "a_one_cam/checkpoint", o);
  const ActionChunk r1 = p->infer(a, s.noise.data());  // decodes
  EXPECT_EQ(r1.data, fa.data);
  const ActionChunk r2 = p->infer(a, s.noise.data());  // reuses; the same prefix, so exact
  EXPECT_EQ(r2.tokens, fa.tokens);
  EXPECT_EQ(r2.data, fa.data);
  const ActionChunk r3 = p->infer(b, s.noise.data());  // reuses a's response under b's prefix
  EXPECT_EQ(r3.tokens, fa.tokens);
  EXPECT_NE(r3.data, fb.data);
  const ActionChunk r4 = p->infer(b, s.noise.data());  // 3 uses done: decodes b's own
  EXPECT_EQ(r4.tokens, fb.tokens);
  EXPECT_EQ(r4.data, fb.data);
  Observation other = b;
  other.robot_id = "robot-2";  // its own first call: decodes
  EXPECT_EQ(p->infer(other, s.noise.data()).data, fb.data);
  Observation task = a;
  task.task = "a different task";
  const ActionChunk ft = fresh->infer(task, s.noise.data());
  EXPECT_EQ(p->infer(task, s.noise.data()).data, ft.data) << "a task change decodes again";

  o.reason_every = 100;
  o.reason_scene_threshold = 2.f;
  auto q = Policy::load(kRoot + "a_one_cam/checkpoint", o);
  q->infer(a, s.noise.data());
  Observation bright = a;
  for (auto& [cam, im] : bright.images)
    for (uint8_t& px : im.data) px = static_cast<uint8_t>(std::min(255, px + 40));
  const ActionChunk fbright = fresh->infer(bright, s.noise.data());
  EXPECT_EQ(q->infer(bright, s.noise.data()).data, fbright.data) << "a changed scene decodes again";
  q->clear_vision_cache();  // clears the kept responses too
}

// int8 decode weights (quantized at load, the decode graph only): on c_early_eos, whose top-2 logit
// margins are >= 0.39, the response is the same and the actions stay close to f32's.
TEST(Reason, Int8DecodeWeights) {
  const Sample s = samples("c_early_eos").at(0);
  PolicyOptions o;
  o.threads = 1;
  const ActionChunk f32 = run("c_early_eos", o, s.obs, s.noise);
  o.decode_weights = "int8";
  const ActionChunk q = run("c_early_eos", o, s.obs, s.noise);
  EXPECT_EQ(q.tokens, f32.tokens);
  const double d = max_abs(q.data, f32.data);
  std::printf("int8 decode weights: actions max abs %.3g vs f32 decode\n", d);
  EXPECT_GT(d, 0.0) << "the response K/V come from int8 weights";
  EXPECT_LE(d, 0.05);
  o.decode_weights = "int3";
  EXPECT_THROW(Policy::load(kRoot + "c_early_eos/checkpoint", o), InvalidArgument);
}

// A copy of fixture `c`'s checkpoint whose config.json is `cfg` (the other files symlinked).
std::string with_config(const std::string& c, const std::string& cfg, const std::string& tag) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::path(::testing::TempDir()) / ("vlart_reason_" + tag + "_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  for (const auto& e : fs::directory_iterator(kRoot + c + "/checkpoint"))
    if (e.path().filename() != "config.json") fs::create_symlink(fs::absolute(e.path()), dir / e.path().filename());
  std::ofstream(dir / "config.json") << cfg;
  return dir.string();
}

// Settings opentau runs that change inference, and malformed fields: each refused at load with an
// error naming the field (never ignored).
TEST(Reason, ConfigErrorsNameTheField) {
  std::ifstream f(kRoot + "b_two_cam/checkpoint/config.json");
  const nlohmann::json base = nlohmann::json::parse(f);
  struct Case {
    const char* key;
    nlohmann::json value;
    const char* needle;
  };
  const std::vector<Case> cases = {
      {"state_type", "continuous", "state_type"},
      {"use_modality_embedding", true, "use_modality_embedding"},
      {"max_delay", 2, "max_delay"},
      {"n_candidates", 4, "n_candidates"},
      {"delta_action_state_map", {{"0", 0}}, "delta_action_state_map"},
      {"resize_imgs_with_padding", nullptr, "resize_imgs_with_padding"},
      {"resize_imgs_with_padding", {56, 64}, "not square"},
      {"chunk_size", "50", "chunk_size"},
      {"response_max_length", 0, "response_max_length"},
      {"prompt_max_length", -3, "prompt_max_length"},
      {"normalization_mapping", {{"STATE", "LOG"}}, "normalization_mapping.STATE"},
      {"normalization_mapping", {{"VISUAL", "MEAN_STD"}}, "VISUAL"},
      {"input_features", nlohmann::json::object(), "input_features has no camera"},
      {"output_features", nlohmann::json::object(), "ACTION"},
      {"max_action_dim", 4, "max_action_dim"},
  };
  int i = 0;
  for (const Case& c : cases) {
    nlohmann::json j = base;
    j[c.key] = c.value;
    const std::string dir = with_config("b_two_cam", j.dump(), "cfg" + std::to_string(i++));
    try {
      Policy::load(dir, PolicyOptions());
      ADD_FAILURE() << c.key << " = " << c.value.dump() << " was accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(c.needle), std::string::npos) << c.key << ": " << e.what();
    }
  }
}

// Random edits of config.json (fields deleted, retyped, bytes cut): load either succeeds or throws
// a vlart::Error; nothing else escapes, nothing crashes (the ASan build runs this too).
TEST(Reason, ConfigMutationsOnlyThrowVlartErrors) {
  std::ifstream f(kRoot + "c_early_eos/checkpoint/config.json");
  const std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  const nlohmann::json base = nlohmann::json::parse(text);
  std::mt19937 rng(7);
  const std::vector<nlohmann::json> values = {nullptr, -1, 0, 1, 1e300, "x", true, nlohmann::json::array(),
                                              nlohmann::json::object(), {1, 2}};
  int loaded = 0, refused = 0;
  for (int it = 0; it < 120; ++it) {
    std::string cfg;
    if (it % 4 == 3) {
      cfg = text.substr(0, rng() % text.size());  // cut JSON
    } else {
      nlohmann::json j = base;
      std::vector<std::string> keys;
      for (auto k = j.begin(); k != j.end(); ++k) keys.push_back(k.key());
      for (int e = 0; e < 1 + static_cast<int>(rng() % 3); ++e) {
        const std::string& k = keys[rng() % keys.size()];
        if (rng() % 3 == 0) j.erase(k);
        else j[k] = values[rng() % values.size()];
      }
      cfg = j.dump();
    }
    const std::string dir = with_config("c_early_eos", cfg, "mut");
    try {
      PolicyOptions o;
      o.threads = 1;
      Policy::load(dir, o);
      ++loaded;
    } catch (const Error&) {
      ++refused;
    } catch (const std::exception& e) {
      ADD_FAILURE() << "non-vlart exception " << e.what() << " for config " << cfg;
    }
  }
  std::printf("config mutations: %d loaded, %d refused\n", loaded, refused);
  EXPECT_GT(refused, 0);
}

TEST(Reason, ReasonOptionsAreRefusedByOtherFamilies) {
  PolicyOptions o;
  o.reason_every = 4;
  EXPECT_THROW(Policy::load(std::string(VLART_TEST_DATA_DIR) + "/pi0/pi05_a_one_cam/checkpoint", o), InvalidArgument);
  o = PolicyOptions();
  o.response_max_tokens = 4;
  EXPECT_THROW(Policy::load(std::string(VLART_TEST_DATA_DIR) + "/pi0/pi05_a_one_cam/checkpoint", o), InvalidArgument);
}

}  // namespace
}  // namespace vlart
