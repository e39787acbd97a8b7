// `vlart run` end to end against LeRobot: the d_shallow_distilled fixture frames written as PNG,
// its noise as .npy / safetensors, the bundled default policy (= that fixture's checkpoint), JSON
// output parsed and compared with the recorded actions.
#include <gtest/gtest.h>
#include <unistd.h>

#include <array>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/safetensors.h"

#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wunused-function"
#endif
#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb_image_write.h>
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

#ifndef VLART_CLI_PATH
#error "VLART_CLI_PATH is set by tests/cli.cmake"
#endif

namespace {

const std::string kCase = std::string(VLART_TEST_DATA_DIR) + "/smolvla/d_shallow_distilled";
const std::string kPolicy = std::string(VLART_TEST_DATA_DIR) + "/../../assets/default_policy";

// Runs a shell command, returns (exit status, stdout+stderr).
std::pair<int, std::string> run(const std::string& cmd) {
  std::string out;
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  if (!p) return {-1, ""};
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
  const int st = pclose(p);
  return {WIFEXITED(st) ? WEXITSTATUS(st) : -1, out};
}

void write_npy(const std::string& path, const std::vector<float>& v, const std::string& shape) {
  std::string h = "{'descr': '<f4', 'fortran_order': False, 'shape': " + shape + ", }";
  while ((10 + h.size() + 1) % 64) h += ' ';
  h += '\n';
  std::ofstream f(path, std::ios::binary);
  f.write("\x93NUMPY\x01\x00", 8);
  const char len[2] = {static_cast<char>(h.size() & 0xff), static_cast<char>(h.size() >> 8)};
  f.write(len, 2);
  f << h;
  f.write(reinterpret_cast<const char*>(v.data()), static_cast<long>(v.size() * 4));
}

class CliRun : public ::testing::Test {
 protected:
  void SetUp() override {
    ref_ = vlart::SafetensorsFile::open(kCase + "/reference.safetensors");
    // Per-process names: ctest runs each test case as its own process, in parallel.
    const std::string d = ::testing::TempDir() + std::to_string(getpid()) + "_";
    for (const char* cam : {"camera1", "camera2"}) {
      vlart::Tensor t = ref_.get(std::string("s0.input.image.") + cam);
      const std::string png = d + "vlart_cli_" + cam + ".png";
      ASSERT_TRUE(stbi_write_png(png.c_str(), static_cast<int>(t.dim(1)), static_cast<int>(t.dim(0)), 3,
                                 t.data<uint8_t>(), static_cast<int>(t.dim(1) * 3)));
      images_ += std::string(" --image ") + cam + "=" + png;
    }
    std::string s;
    for (float v : ref_.get("s0.input.state").to_float_vector()) {
      char b[32];
      std::snprintf(b, sizeof b, "%.9g", static_cast<double>(v));  // round-trips exactly
      s += (s.empty() ? "" : ",") + std::string(b);
    }
    state_ = " --state " + s;
    std::ifstream js(kCase + "/case.json");
    task_ = " --task '" + nlohmann::json::parse(js)["samples"][0]["task"].get<std::string>() + "'";
  }

  double max_err_vs_fixture(const std::string& extra) {
    auto [rc, out] = run(std::string(VLART_CLI_PATH) + " run " + kPolicy + images_ + state_ + task_ +
                         " --threads 1 --json" + extra);
    EXPECT_EQ(rc, 0) << out;
    const nlohmann::json j = nlohmann::json::parse(out, nullptr, false);
    EXPECT_FALSE(j.is_discarded()) << out;
    if (j.is_discarded()) return 1e9;
    EXPECT_EQ(j["horizon"], 50);
    EXPECT_EQ(j["action_dim"], 4);
    EXPECT_GT(j["timings_ms"]["total"].get<double>(), 0.0);
    const std::vector<float> want = ref_.get("s0.actions").to_float_vector();
    double m = 0;
    size_t i = 0;
    for (const auto& row : j["actions"])
      for (const auto& v : row) m = std::max(m, std::fabs(v.get<double>() - want[i++]));
    EXPECT_EQ(i, want.size());
    return m;
  }

  vlart::SafetensorsFile ref_;
  std::string images_, state_, task_;
};

}  // namespace

TEST_F(CliRun, NpyNoiseReproducesLeRobotActions) {
  const std::string npy = ::testing::TempDir() + std::to_string(getpid()) + "_vlart_cli_noise.npy";
  write_npy(npy, ref_.get("s0.noise").to_float_vector(), "(1, 50, 32)");
  EXPECT_LE(max_err_vs_fixture(" --noise " + npy), 1e-4);
  write_npy(npy, ref_.get("s0.noise").to_float_vector(), "(50, 32)");
  EXPECT_LE(max_err_vs_fixture(" --noise " + npy), 1e-4);
}

TEST_F(CliRun, SafetensorsNoiseReproducesLeRobotActions) {
  EXPECT_LE(max_err_vs_fixture(" --noise " + kCase + "/reference.safetensors --noise-key s0.noise --warmup 1"), 1e-4);
}

TEST_F(CliRun, BadNoiseAndSeedDeterminism) {
  const std::string base =
      std::string(VLART_CLI_PATH) + " run " + kPolicy + images_ + state_ + task_ + " --threads 1 --json";
  const std::string npy = ::testing::TempDir() + std::to_string(getpid()) + "_vlart_cli_noise_bad.npy";
  write_npy(npy, std::vector<float>(50 * 4, 0.f), "(50, 4)");
  auto [rc, out] = run(base + " --noise " + npy);
  EXPECT_EQ(rc, 1);
  EXPECT_NE(out.find("shape [50, 4], expected [50, 32] or [1, 50, 32]"), std::string::npos) << out;
  std::tie(rc, out) = run(base + " --noise " + kCase + "/reference.safetensors --noise-key nope");
  EXPECT_EQ(rc, 1);
  EXPECT_NE(out.find("no tensor 'nope'"), std::string::npos) << out;
  // Same seed -> same chunk (with or without warm-up calls); another seed -> another chunk.
  const auto a = run(base + " --seed 7"), b = run(base + " --seed 7 --warmup 2"), c = run(base + " --seed 8");
  ASSERT_EQ(a.first, 0) << a.second;
  const auto acts = [](const std::string& s) { return nlohmann::json::parse(s)["actions"]; };
  EXPECT_EQ(acts(a.second), acts(b.second));
  EXPECT_NE(acts(a.second), acts(c.second));
}

// `vlart quantize` + `vlart compare` end to end: the bundled policy (= the d_shallow_distilled
// fixture checkpoint) against its int8 and int4-g64 copies, on an obs dir made from the fixture's
// frames, state, task and noise. The reference must reproduce LeRobot's actions; the candidates'
// errors must match what test_quantize measures in-process (same noise, same weights).
TEST_F(CliRun, QuantizeThenCompareReportsErrorsSizesAndTimings) {
  namespace fs = std::filesystem;
  const fs::path root = fs::path(::testing::TempDir()) / ("vlart_cli_cmp_" + std::to_string(getpid()));
  fs::remove_all(root);
  const fs::path obs = root / "obs" / "s0";
  fs::create_directories(obs);
  for (const char* cam : {"camera1", "camera2"}) {
    vlart::Tensor t = ref_.get(std::string("s0.input.image.") + cam);
    ASSERT_TRUE(stbi_write_png((obs / (std::string(cam) + ".png")).c_str(), static_cast<int>(t.dim(1)),
                               static_cast<int>(t.dim(0)), 3, t.data<uint8_t>(), static_cast<int>(t.dim(1) * 3)));
  }
  std::ofstream(obs / "state.txt") << state_.substr(std::string(" --state ").size());
  std::ifstream cj(kCase + "/case.json");
  std::ofstream(obs / "task.txt") << nlohmann::json::parse(cj)["samples"][0]["task"].get<std::string>();
  write_npy((obs / "noise.npy").string(), ref_.get("s0.noise").to_float_vector(), "(50, 32)");

  const std::string cli = VLART_CLI_PATH;
  for (const char* s : {"int8", "int4-g64"}) {
    auto [rc, out] = run(cli + " quantize " + kPolicy + " " + (root / s).string() + " --scheme " + s);
    ASSERT_EQ(rc, 0) << out;
    EXPECT_NE(out.find("quantized, "), std::string::npos) << out;
    EXPECT_TRUE(fs::exists(root / s / "smolvlm_tiny" / "tokenizer.json"));  // sub-directories copied too
  }
  auto [rc, out] = run(cli + " compare " + kPolicy + " " + (root / "int8").string() + " " +
                       (root / "int4-g64").string() + " --obs " + (root / "obs").string() +
                       " --threads 1 --iters 2 --json 2>/dev/null");
  ASSERT_EQ(rc, 0) << out;
  const nlohmann::json j = nlohmann::json::parse(out, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << out;
  EXPECT_EQ(j["observations"], 1);
  EXPECT_EQ(j["action_dim"], 4);
  const auto& m = j["models"];
  ASSERT_EQ(m.size(), 3u);
  EXPECT_EQ(m[0]["role"], "reference");
  EXPECT_EQ(m[0]["scheme"], "float");
  EXPECT_EQ(m[0]["cosine"], 1.0);
  EXPECT_EQ(m[0]["max_abs"], 0.0);
  EXPECT_EQ(m[1]["scheme"], "int8");
  EXPECT_EQ(m[2]["scheme"], "int4-g64");
  EXPECT_GE(m[1]["cosine"].get<double>(), 0.9995);
  EXPECT_GT(m[1]["max_abs"].get<double>(), 0.0);
  EXPECT_GT(m[2]["rel_l2"].get<double>(), m[1]["rel_l2"].get<double>());
  EXPECT_GE(m[2]["cosine"].get<double>(), 0.95);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_GT(m[i]["p50_ms"].get<double>(), 0.0);
    EXPECT_GT(m[i]["peak_rss_mib"].get<double>(), 1.0);
    EXPECT_GT(m[i]["speedup"].get<double>(), 0.0);
    EXPECT_EQ(m[i]["per_dim"]["max_abs"].size(), 4u);
  }
  EXPECT_LT(m[1]["size_bytes"].get<double>(), 0.5 * m[0]["size_bytes"].get<double>());
  EXPECT_LT(m[2]["size_bytes"].get<double>(), m[1]["size_bytes"].get<double>());

  // Missing camera frame: the child's error comes back with the observation and camera named.
  fs::remove(obs / "camera2.png");
  std::tie(rc, out) = run(cli + " compare " + kPolicy + " " + (root / "int8").string() + " --obs " +
                          (root / "obs").string() + " --threads 1 --iters 1");
  EXPECT_EQ(rc, 1);
  EXPECT_NE(out.find("observation 's0' has no image camera2.png"), std::string::npos) << out;
  fs::remove_all(root);
}
