// Shared helpers of the quantization suites (test_quantize, test_quantize_policy).
#pragma once

#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "vlart/error.h"

namespace vlart::testing::quant {

namespace fs = std::filesystem;

inline const std::string kRoot = std::string(VLART_TEST_DATA_DIR) + "/smolvla/";
inline const std::vector<std::string> kCases = {"a_one_cam_square", "b_three_cam_nonsquare", "c_task_lengths",
                                         "d_shallow_distilled", "e_expert_skip_all_cross"};

inline std::vector<float> random_matrix(int64_t n, int64_t k, uint64_t seed) {
  std::mt19937_64 gen(seed);
  std::normal_distribution<float> nd(0.f, 1.f);
  std::vector<float> w(static_cast<size_t>(n * k));
  for (int64_t i = 0; i < n; ++i) {
    // Rows of very different magnitudes, an outlier, and an all-zero row.
    const float mag = std::pow(10.f, static_cast<float>(i % 7) - 4.f);
    for (int64_t j = 0; j < k; ++j) w[static_cast<size_t>(i * k + j)] = i == 3 ? 0.f : mag * nd(gen);
    if (i == 5) w[static_cast<size_t>(i * k + k / 3)] = 40.f * mag;
  }
  return w;
}

// A fresh per-process temporary directory (ctest runs test cases in parallel processes).
inline fs::path temp_dir(const std::string& tag) {
  const fs::path d = fs::temp_directory_path() / ("vlart_quant_" + tag + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  return d;
}

inline std::string read_file(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

template <typename Fn>
inline std::string error_of(Fn&& fn) {
  try {
    fn();
  } catch (const FormatError& e) {
    return e.what();
  } catch (const std::exception& e) {
    return std::string("wrong exception type: ") + e.what();
  }
  return "no exception";
}


}  // namespace vlart::testing::quant
