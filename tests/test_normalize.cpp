// The shared LeRobot normaliser (models/blocks/normalize.h) against LeRobot's own outputs for every
// mode (tests/data/normalizer/cases.json from tools/make_normalizer_fixtures.py), bit for bit, plus
// its errors.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "models/blocks/normalize.h"
#include "vlart/error.h"

using namespace vlart;
using namespace vlart::blocks;

namespace {

nlohmann::json cases() {
  std::ifstream f(std::string(VLART_TEST_DATA_DIR) + "/normalizer/cases.json");
  EXPECT_TRUE(f.good());
  std::stringstream ss;
  ss << f.rdbuf();
  return nlohmann::json::parse(ss.str());
}

TEST(Normalize, EveryModeMatchesLeRobotBitForBit) {
  const nlohmann::json j = cases();
  ASSERT_EQ(j["cases"].size(), 5u);
  for (const auto& c : j["cases"]) {
    const std::string mode = c["mode"];
    SCOPED_TRACE(mode);
    FeatureStats st;
    for (auto it = c["stats"].begin(); it != c["stats"].end(); ++it) st[it.key()] = it.value().get<std::vector<float>>();
    const int64_t dim = c["dim"];
    const FeatureNormalizer n(parse_norm_mode(mode), st, dim, "observation.state");
    const std::vector<float> x = c["x"].get<std::vector<float>>();
    const int64_t rows = static_cast<int64_t>(x.size()) / dim;
    std::vector<float> y(x.size()), z(x.size());
    n.normalize(x.data(), y.data(), rows);
    n.unnormalize(x.data(), z.data(), rows);
    EXPECT_EQ(y, c["normalized"].get<std::vector<float>>());
    EXPECT_EQ(z, c["unnormalized"].get<std::vector<float>>());
    std::vector<float> in_place = x;
    n.normalize(in_place.data(), in_place.data(), rows);
    EXPECT_EQ(in_place, y);
  }
}

TEST(Normalize, MissingOrMisSizedStatsNameTheFeatureAndStatistic) {
  FeatureStats st = {{"mean", {0.f, 1.f}}, {"std", {1.f, 1.f}}};
  try {
    FeatureNormalizer(NormMode::kQuantiles, st, 2, "observation.state");
    FAIL();
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("'q01'"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("observation.state"), std::string::npos) << e.what();
  }
  EXPECT_THROW(FeatureNormalizer(NormMode::kMeanStd, st, 3, "action"), InvalidArgument);
  EXPECT_THROW(parse_norm_mode("ZSCORE"), InvalidArgument);
  EXPECT_EQ(parse_norm_mode("QUANTILE10"), NormMode::kQuantile10);
  EXPECT_NO_THROW(FeatureNormalizer(NormMode::kIdentity, {}, 4, "x"));
}

}  // namespace
