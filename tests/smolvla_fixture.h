// Shared fixture access for the SmolVLA suites (test_smolvla, test_smolvla_config): the committed
// LeRobot fixture cases under tests/data/smolvla (tools/make_smolvla_fixtures.py) and the inputs our
// preprocessing computes from their raw recordings.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/safetensors.h"
#include "models/smolvla/config.h"
#include "models/smolvla/model.h"
#include "models/smolvla/preprocess.h"
#include "vlart/tokenizer.h"

namespace vlart::smolvla::fixture {


inline const std::string kRoot = std::string(VLART_TEST_DATA_DIR) + "/smolvla/";
// Every fixture, or the comma-separated subset named by VLART_SMOLVLA_CASES (scripts/test-aarch64.sh
// runs one under qemu, where all of them take too long). A name that is not a fixture fails in open_case.
inline const std::vector<std::string> kCases = [] {
  std::vector<std::string> all = {"a_one_cam_square", "b_three_cam_nonsquare", "c_task_lengths",
                                  "d_shallow_distilled", "e_expert_skip_all_cross", "f_student",
                                  "g_two_cam_wrist_top", "h_three_cam_up_side_front", "i_empty_camera"};
  const char* env = std::getenv("VLART_SMOLVLA_CASES");
  if (!env || !*env) return all;
  std::vector<std::string> some;
  std::string cur;
  for (const char* p = env;; ++p) {
    if (*p == ',' || *p == '\0') {
      if (!cur.empty()) some.push_back(cur);
      cur.clear();
      if (*p == '\0') break;
    } else {
      cur += *p;
    }
  }
  std::fprintf(stderr, "test_smolvla: VLART_SMOLVLA_CASES=%s: %zu of %zu fixtures\n", env, some.size(), all.size());
  return some;
}();

inline nlohmann::json case_json(const std::string& c) {
  std::ifstream f(kRoot + c + "/case.json");
  return nlohmann::json::parse(f);
}

inline double max_abs(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  double m = 0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) m = std::max(m, std::fabs(double(a[i]) - b[i]));
  return m;
}

struct Case {
  std::string name;
  nlohmann::json js;
  SmolVLAConfig cfg;
  NormStats stats;
  SafetensorsFile ref;
  std::unique_ptr<Tokenizer> tok;
  int32_t pad_id = 0;
};

inline Case open_case(const std::string& c) {
  Case k;
  k.name = c;
  k.js = case_json(c);
  const std::string ck = kRoot + c + "/checkpoint";
  k.cfg = load_config(ck, kRoot + c + "/vlm/config.json");
  k.stats = load_norm_stats(ck, k.cfg.state_dim, k.cfg.action_dim);
  k.ref = SafetensorsFile::open(kRoot + c + "/reference.safetensors");
  k.tok = std::make_unique<Tokenizer>(Tokenizer::from_file(kRoot + c + "/vlm/tokenizer.json"));
  k.pad_id = *k.tok->token_to_id("<|im_end|>");
  return k;
}

inline std::vector<uint8_t> u8(const Tensor& t) {
  const uint8_t* p = t.data<uint8_t>();
  return {p, p + t.numel()};
}

// Preprocessed inputs of one sample computed by our code from the raw fixture inputs.
inline PrefixInputs make_inputs(const Case& k, const std::string& s) {
  PrefixInputs in;
  for (const std::string& cam : k.cfg.cameras) {
    const std::string short_name = cam.substr(cam.rfind('.') + 1);
    Tensor img = k.ref.get(s + ".input.image." + short_name);
    std::vector<float> px = resize_with_pad(img.data<uint8_t>(), img.dim(0), img.dim(1), k.cfg.resize_h, k.cfg.resize_w);
    in.images.insert(in.images.end(), px.begin(), px.end());
    ++in.n_cams;
  }
  const std::vector<float> st = k.ref.get(s + ".input.state").to_float_vector();
  in.state = normalize_state(st, k.stats.state_mean, k.stats.state_std, k.cfg.max_state_dim);
  std::string task;
  for (const auto& smp : k.js["samples"])
    if (smp["name"] == s) task = smp["task"];
  LangTokens lt = tokenize_task(*k.tok, task, k.cfg.tokenizer_max_length, k.cfg.pad_to_max_length, k.pad_id);
  in.lang_ids = lt.ids;
  in.lang_mask = lt.mask;
  return in;
}


}  // namespace vlart::smolvla::fixture
