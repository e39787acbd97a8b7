// LeRobot normaliser steps read from the committed SmolVLA fixtures (models/blocks/lerobot_stats.h):
// features in file order, modes per type, statistics from the state file, and the errors a
// malformed pipeline file gets.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <unistd.h>

#include "core/safetensors.h"
#include "models/blocks/lerobot_stats.h"
#include "vlart/error.h"

using namespace vlart;
using namespace vlart::blocks;
namespace fs = std::filesystem;

namespace {

const std::string kCkpt = std::string(VLART_TEST_DATA_DIR) + "/smolvla/g_two_cam_wrist_top/checkpoint";

TEST(LeRobotStats, PreAndPostProcessorStepsOfAFixture) {
  const auto pre = read_lerobot_norm_step(kCkpt, "policy_preprocessor.json", "normalizer_processor");
  ASSERT_TRUE(pre.has_value());
  // The checkpoint's own order: wrist before top.
  EXPECT_EQ(pre->features, (std::vector<std::string>{"observation.images.wrist", "observation.images.top",
                                                     "observation.state", "action"}));
  EXPECT_EQ(pre->mode_of("observation.state"), NormMode::kMeanStd);
  EXPECT_EQ(pre->mode_of("observation.images.top"), NormMode::kIdentity);
  EXPECT_EQ(pre->mode_of("no.such.feature"), NormMode::kIdentity);
  EXPECT_EQ(pre->feature_shape.at("observation.state"), std::vector<int64_t>{6});
  EXPECT_FLOAT_EQ(pre->eps, 1e-8f);
  const SafetensorsFile raw = SafetensorsFile::open(pre->state_path);
  EXPECT_EQ(pre->stats.at("observation.state").at("mean"), raw.get("observation.state.mean").to_float_vector());
  const FeatureNormalizer n = pre->normalizer("observation.state", 6);
  EXPECT_EQ(n.mode(), NormMode::kMeanStd);
  const auto post = read_lerobot_norm_step(kCkpt, "policy_postprocessor.json", "unnormalizer_processor");
  ASSERT_TRUE(post.has_value());
  EXPECT_EQ(post->mode_of("action"), NormMode::kMeanStd);
  EXPECT_EQ(post->stats.at("action").at("std").size(), 5u);
  EXPECT_FALSE(read_lerobot_norm_step(kCkpt, "policy_preprocessor.json", "no_such_step").has_value());
  EXPECT_FALSE(read_lerobot_norm_step(kCkpt, "absent.json", "normalizer_processor").has_value());
}

TEST(LeRobotStats, MalformedPipelinesNameTheField) {
  const fs::path d = fs::temp_directory_path() / ("vlart_lrstats_" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  auto msg = [&](const std::string& json) {
    std::ofstream(d / "p.json") << json;
    try {
      read_lerobot_norm_step(d.string(), "p.json", "normalizer_processor");
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(msg(R"({"steps": 3})").find("'steps'"), std::string::npos);
  EXPECT_NE(msg(R"({"steps": [{"registry_name": "normalizer_processor", "config": {"features": {}, "norm_map": {"STATE": "ZSCORE"}}}]})")
                .find("norm_map.STATE"),
            std::string::npos);
  EXPECT_NE(msg(R"({"steps": [{"registry_name": "normalizer_processor", "config": {"features": {}}, "state_file": "x.safetensors"}]})")
                .find("does not exist"),
            std::string::npos);
  EXPECT_NE(msg(R"({"steps": [{"registry_name": "normalizer_processor", "config": {"features": {"a": {"shape": [1]}}}}]})")
                .find("features.a.type"),
            std::string::npos);
  fs::remove_all(d);
}

}  // namespace
