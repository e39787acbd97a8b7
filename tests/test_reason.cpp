// opentau's pi05 with predict_response (reason, then act) against opentau 0.14.0 itself, on the
// committed fixtures (tests/data/pi05_reason, written by tools/make_reason_fixtures.py from opentau's
// own PI05Policy: save_pretrained, from_pretrained, sample_actions with injected noise): Policy::load
// on the checkpoint directory as saved, Policy::infer on the raw frames, state, task and noise, the
// decoded response token ids against opentau's (exactly) and the actions (max abs <= 1e-4, f32).
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
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

}  // namespace
}  // namespace vlart
