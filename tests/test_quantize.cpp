// Quantized checkpoints (src/compress/quantize.h, docs/quantization.md): quantize/dequantize error
// bounds, GPTQ, the packed layout, name patterns, the written format and malformed files. End to end
// through Policy::load and calibration: test_quantize_policy.cpp.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <random>

#include <nlohmann/json.hpp>

#include "compress/calibrate.h"
#include "compress/metrics.h"
#include "compress/quantize.h"
#include "core/safetensors.h"
#include "quant_test_util.h"
#include "backends/cpu/gemm_onednn.h"
#include "cpu/attention.h"
#include "cpu/isa.h"
#include "models/smolvla/policy_model.h"
#include "models/smolvla/weights.h"
#include "vlart/error.h"
#include "vlart/policy.h"

using namespace vlart;
using namespace vlart::compress;
using namespace vlart::testing::quant;
namespace fs = std::filesystem;

TEST(QuantScheme, ParsesEveryNameAndRejectsOthers) {
  for (const char* s : {"bf16", "int8", "w8a8", "int4-g32", "int4-g64", "int4-g128", "int4-g32-asym",
                        "int4-g64-asym", "int4-g128-asym"})
    EXPECT_EQ(parse_scheme(s).name(), s);
  EXPECT_EQ(parse_scheme("int4-g64").group_size, 64);
  EXPECT_TRUE(parse_scheme("int4-g64").symmetric);
  EXPECT_FALSE(parse_scheme("int4-g128-asym").symmetric);
  EXPECT_TRUE(parse_scheme("w8a8").act_int8);
  EXPECT_FALSE(parse_scheme("int8").act_int8);
  for (const char* s : {"int3", "int4", "int4-g16", "INT8", "", "fp8"}) {
    try {
      parse_scheme(s);
      ADD_FAILURE() << s;
    } catch (const InvalidArgument& e) {
      EXPECT_NE(std::string(e.what()).find("int4-g64"), std::string::npos) << e.what();
    }
  }
}

TEST(QuantMath, Int8ErrorIsAtMostHalfAScalePerElement) {
  const int64_t N = 37, K = 300;
  const std::vector<float> w = random_matrix(N, K, 1);
  const Int8Weight q = quantize_int8(w.data(), N, K);
  std::vector<float> d(w.size());
  dequantize_int8(q.q.data(), q.scales.data(), N, K, d.data());
  for (int64_t i = 0; i < N; ++i) {
    float amax = 0;
    for (int64_t j = 0; j < K; ++j) amax = std::max(amax, std::fabs(w[static_cast<size_t>(i * K + j)]));
    const float s = q.scales[static_cast<size_t>(i)];
    EXPECT_FLOAT_EQ(s, amax / 127.f) << "row " << i;
    int qmax = 0;
    for (int64_t j = 0; j < K; ++j) {
      const size_t x = static_cast<size_t>(i * K + j);
      ASSERT_LE(std::fabs(w[x] - d[x]), 0.5f * s * (1 + 1e-5f) + 1e-30f) << i << "," << j;
      EXPECT_GE(q.q[x], -127);
      qmax = std::max(qmax, std::abs(int(q.q[x])));
      EXPECT_EQ(d[x], s * float(q.q[x]));  // exactly scale * q
    }
    EXPECT_EQ(qmax, i == 3 ? 0 : 127) << "row " << i << ": the largest |w| maps to +-127";
  }
}

TEST(QuantMath, Int4ErrorIsAtMostHalfAScalePerGroup) {
  const int64_t N = 23;
  for (int64_t K : {128, 96, 72, 200}) {  // multiples of G and ragged last groups
    const std::vector<float> w = random_matrix(N, K, static_cast<uint64_t>(K));
    for (int64_t G : {32, 64, 128}) {
      for (bool sym : {true, false}) {
        SCOPED_TRACE("K " + std::to_string(K) + " G " + std::to_string(G) + (sym ? " sym" : " asym"));
        const int64_t ng = (K + G - 1) / G;
        const Int4Weight q = quantize_int4(w.data(), N, K, G, sym);
        ASSERT_EQ(q.packed.size(), static_cast<size_t>(N * K / 2));
        ASSERT_EQ(q.scales.size(), static_cast<size_t>(N * ng));
        ASSERT_EQ(q.zeros.size(), sym ? 0u : static_cast<size_t>(N * ng));
        std::vector<float> d(w.size());
        dequantize_int4(q.packed.data(), q.scales.data(), sym ? nullptr : q.zeros.data(), N, K, G, d.data());
        for (int64_t i = 0; i < N; ++i)
          for (int64_t j = 0; j < K; ++j) {
            const size_t x = static_cast<size_t>(i * K + j), gi = static_cast<size_t>(i * ng + j / G);
            const float s = f16_to_f32(q.scales[gi]);
            ASSERT_LE(std::fabs(w[x] - d[x]), 0.5f * s * (1 + 1e-5f) + 1e-30f) << i << "," << j;
            if (!sym) {
              ASSERT_LE(q.zeros[gi], 15);
            }
          }
      }
    }
  }
}

namespace {
// ||X (dequant(q) - W)^T||^2 for row-major X [rows, K], W [N, K].
double output_error(const Int4Weight& q, const std::vector<float>& w, int64_t n, int64_t k, int64_t g, bool sym,
                    const std::vector<float>& x, int64_t rows) {
  std::vector<float> d(w.size());
  dequantize_int4(q.packed.data(), q.scales.data(), sym ? nullptr : q.zeros.data(), n, k, g, d.data());
  double e = 0;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t i = 0; i < n; ++i) {
      double y = 0;
      for (int64_t j = 0; j < k; ++j)
        y += double(x[static_cast<size_t>(r * k + j)]) * (double(d[static_cast<size_t>(i * k + j)]) - w[static_cast<size_t>(i * k + j)]);
      e += y * y;
    }
  return e;
}

std::vector<float> gaussian(int64_t n, int64_t k, uint64_t seed) {
  std::mt19937_64 gen(seed);
  std::normal_distribution<float> nd(0.f, 1.f);
  std::vector<float> v(static_cast<size_t>(n * k));
  for (float& x : v) x = nd(gen);
  return v;
}

// Correlated activations: x = z A with a random mixing A [K, K] and a few large input channels.
std::vector<float> correlated_rows(int64_t rows, int64_t k, uint64_t seed) {
  const std::vector<float> z = gaussian(rows, k, seed);
  const std::vector<float> a = gaussian(k, k, 777);
  std::vector<float> x(static_cast<size_t>(rows * k), 0.f);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t t = 0; t < k; ++t) {
      const float zv = z[static_cast<size_t>(r * k + t)] * (t % 17 == 0 ? 4.f : 1.f);
      for (int64_t j = 0; j < k; ++j) x[static_cast<size_t>(r * k + j)] += zv * a[static_cast<size_t>(t * k + j)] * 0.1f;
    }
  return x;
}
}  // namespace

// GPTQ: with H a multiple of the identity it is plain rounding, bit for bit; on correlated inputs
// it lowers the output error on the rows it fitted and on held-out rows of the same distribution;
// an input channel that is always zero gets weight 0; codes and scales keep quantize_int4's format.
TEST(QuantMath, GptqInt4) {
  const int64_t N = 24;
  for (int64_t K : {128, 200}) {
    const std::vector<float> w = random_matrix(N, K, static_cast<uint64_t>(K) + 5);
    std::vector<float> eye(static_cast<size_t>(K * K), 0.f);
    for (int64_t j = 0; j < K; ++j) eye[static_cast<size_t>(j * K + j)] = 0.5f;
    const std::vector<float> train = correlated_rows(4 * K, K, 11), test = correlated_rows(2 * K, K, 12);
    for (int64_t G : {32, 64, 128}) {
      for (bool sym : {true, false}) {
        SCOPED_TRACE("K " + std::to_string(K) + " G " + std::to_string(G) + (sym ? " sym" : " asym"));
        const Int4Weight rtn = quantize_int4(w.data(), N, K, G, sym);
        const Int4Weight same = gptq_int4(w.data(), N, K, G, sym, eye.data(), K);
        EXPECT_EQ(same.packed, rtn.packed);
        EXPECT_EQ(same.scales, rtn.scales);
        EXPECT_EQ(same.zeros, rtn.zeros);
        const Int4Weight q = gptq_int4(w.data(), N, K, G, sym, train.data(), 4 * K);
        ASSERT_EQ(q.packed.size(), rtn.packed.size());
        ASSERT_EQ(q.scales.size(), rtn.scales.size());
        ASSERT_EQ(q.zeros.size(), rtn.zeros.size());
        for (uint8_t z : q.zeros) ASSERT_LE(z, 15);
        const double fit_rtn = output_error(rtn, w, N, K, G, sym, train, 4 * K);
        const double fit_gptq = output_error(q, w, N, K, G, sym, train, 4 * K);
        const double held_rtn = output_error(rtn, w, N, K, G, sym, test, 2 * K);
        const double held_gptq = output_error(q, w, N, K, G, sym, test, 2 * K);
        std::printf("K %3lld G %3lld %s: output error fitted rows %.4g -> %.4g, held-out rows %.4g -> %.4g\n",
                    static_cast<long long>(K), static_cast<long long>(G), sym ? "sym " : "asym", fit_rtn, fit_gptq,
                    held_rtn, held_gptq);
        EXPECT_LT(fit_gptq, 0.7 * fit_rtn);
        EXPECT_LT(held_gptq, 0.8 * held_rtn);
      }
    }
  }
  // An input that is always zero: its weights are quantized to 0 and nothing else breaks.
  const int64_t K = 64;
  const std::vector<float> w = random_matrix(N, K, 3);
  std::vector<float> x = correlated_rows(256, K, 4);
  for (int64_t r = 0; r < 256; ++r) x[static_cast<size_t>(r * K + 5)] = 0.f;
  const Int4Weight q = gptq_int4(w.data(), N, K, 32, true, x.data(), 256);
  std::vector<float> d(w.size());
  dequantize_int4(q.packed.data(), q.scales.data(), nullptr, N, K, 32, d.data());
  for (int64_t i = 0; i < N; ++i) {
    EXPECT_EQ(d[static_cast<size_t>(i * K + 5)], 0.f) << i;
    for (int64_t j = 0; j < K; ++j) ASSERT_TRUE(std::isfinite(d[static_cast<size_t>(i * K + j)]));
  }
  EXPECT_THROW(gptq_int4(w.data(), N, K, 32, true, x.data(), 0), InvalidArgument);
  EXPECT_THROW(gptq_int4(w.data(), N, K, 32, true, x.data(), 256, 0.0), InvalidArgument);
}

// Hand-made matrices with known codes: the byte layout is part of the file format.
TEST(QuantMath, PackedLayoutOnATinyMatrix) {
  // int8: per-row scale = max|w| / 127; values rounded half to even.
  const std::vector<float> w8 = {127.f, -63.5f, 0.f, 2.f, 0.5f, 1.f};
  const Int8Weight q8 = quantize_int8(w8.data(), 2, 3);
  EXPECT_EQ(q8.scales, (std::vector<float>{1.f, 2.f / 127.f}));
  EXPECT_EQ(q8.q, (std::vector<int8_t>{127, -64, 0, 127, 32, 64}));

  // int4 symmetric, G = 4: row 0 scale 1 (= 7 / 7), codes q + 8; row 1 all zero (scale 0, code 8).
  const std::vector<float> w4 = {7.f, -7.f, 1.f, 0.f, 0.f, 0.f, 0.f, 0.f};
  const Int4Weight s4 = quantize_int4(w4.data(), 2, 4, 4, true);
  // Low nibble = even column: (15 | 1 << 4), (9 | 8 << 4).
  EXPECT_EQ(s4.packed, (std::vector<uint8_t>{0x1f, 0x89, 0x88, 0x88}));
  EXPECT_EQ(f16_to_f32(s4.scales[0]), 1.f);
  EXPECT_EQ(f16_to_f32(s4.scales[1]), 0.f);

  // int4 asymmetric: [-3, 4.5, 0, 1.5] has scale 7.5 / 15 = 0.5 and zero point 6:
  // codes [0, 15, 6, 9]; [0, 7.5, 1.5, 3] has scale 0.5, zero point 0: codes [0, 15, 3, 6].
  const std::vector<float> wa = {-3.f, 4.5f, 0.f, 1.5f, 0.f, 7.5f, 1.5f, 3.f};
  const Int4Weight a4 = quantize_int4(wa.data(), 2, 4, 4, false);
  EXPECT_EQ(a4.packed, (std::vector<uint8_t>{0xf0, 0x96, 0xf0, 0x63}));
  EXPECT_EQ(a4.zeros, (std::vector<uint8_t>{6, 0}));
  EXPECT_EQ(f16_to_f32(a4.scales[0]), 0.5f);
  std::vector<float> d(8);
  dequantize_int4(a4.packed.data(), a4.scales.data(), a4.zeros.data(), 2, 4, 4, d.data());
  EXPECT_EQ(d, wa);

  // Ragged last group: K = 6, G = 4 -> groups of 4 and 2 columns, 2 scales per row.
  const std::vector<float> wr = {1.f, 2.f, 3.f, 7.f, 14.f, -14.f};
  const Int4Weight r4 = quantize_int4(wr.data(), 1, 6, 4, true);
  ASSERT_EQ(r4.scales.size(), 2u);
  EXPECT_EQ(f16_to_f32(r4.scales[1]), 2.f);
  EXPECT_EQ(r4.packed[2], static_cast<uint8_t>((7 + 8) | ((-7 + 8) << 4)));
  EXPECT_THROW(quantize_int4(wr.data(), 1, 5, 4, true), InvalidArgument);
}

const std::string kPrefix = "model.";  // SmolVLA's weight prefix (FamilyWeights::weight_prefix)

TEST(QuantPatterns, GlobAndTensorNames) {
  EXPECT_TRUE(glob_match("*norm*", "a.layer_norm1.weight"));
  EXPECT_TRUE(glob_match("a?c", "abc"));
  EXPECT_FALSE(glob_match("a?c", "abbc"));
  EXPECT_TRUE(glob_match("*", ""));
  EXPECT_FALSE(glob_match("q_proj", "x.q_proj"));
  const std::string q = "model.vlm_with_expert.vlm.model.text_model.layers.0.self_attn.q_proj.weight";
  EXPECT_TRUE(pattern_matches_tensor("q_proj", q, kPrefix));
  EXPECT_TRUE(pattern_matches_tensor("self_attn.q_proj", q, kPrefix));
  EXPECT_TRUE(pattern_matches_tensor("*text_model.layers.0.*", q, kPrefix));
  EXPECT_TRUE(pattern_matches_tensor("vlm_with_expert.vlm.model.text_model.layers.0.self_attn.q_proj.weight", q, kPrefix));
  EXPECT_TRUE(pattern_matches_tensor("model.vlm_with_expert.*q_proj", q, kPrefix));
  EXPECT_FALSE(pattern_matches_tensor("k_proj", q, kPrefix));
  EXPECT_FALSE(pattern_matches_tensor("proj", q, kPrefix));  // dot-aligned, whole components only
  EXPECT_FALSE(pattern_matches_tensor("layers.1.*", q, kPrefix));
  EXPECT_TRUE(pattern_matches_tensor("action_out_proj", "model.action_out_proj.weight", kPrefix));
  EXPECT_TRUE(pattern_matches_tensor("action_out_proj", "model.action_out_proj.bias", kPrefix));
  EXPECT_TRUE(pattern_matches_tensor("vision*patch_embedding",
                                     "model.vlm_with_expert.vlm.model.vision_model.embeddings.patch_embedding.weight", kPrefix));
}

// What the defaults keep float and what they quantize, on a real SmolVLA tensor list.
TEST(QuantPatterns, DefaultsKeepNormsEmbeddingsAndActionProjections) {
  auto kept = [](const std::string& n) {
    for (const std::string& p : smolvla::family_weights().keep_float)
      if (pattern_matches_tensor(p, n, kPrefix)) return true;
    return false;
  };
  SafetensorsFile f = SafetensorsFile::open(kRoot + "a_one_cam_square/checkpoint/model.safetensors");
  int quantizable = 0;
  for (const std::string& n : f.names()) {
    const bool k = kept(n);
    for (const char* must : {"norm", "embed_tokens", "position_embedding", "patch_embedding", "state_proj",
                             "action_in_proj", "action_out_proj", "action_time_mlp", "lm_head"})
      if (n.find(must) != std::string::npos) {
        EXPECT_TRUE(k) << n;
      }
    for (const char* lin : {"q_proj", "k_proj", "v_proj", "o_proj", "out_proj", "gate_proj", "up_proj",
                            "down_proj", "fc1", "fc2", "modality_projection"})
      if (n.find(lin) != std::string::npos && n.find("action") == std::string::npos) {
        EXPECT_FALSE(k) << n;
        ++quantizable;
      }
  }
  EXPECT_GT(quantizable, 40);
}

TEST(QuantizeCheckpoint, WritesPlainSafetensorsConfigSectionAndCopiesTheRest) {
  const std::string in = kRoot + "a_one_cam_square/checkpoint";
  const fs::path out = temp_dir("fmt");
  QuantizeOptions o;
  o.scheme = parse_scheme("int4-g64-asym");
  o.keep_float = {"*layers.0.mlp.*", "no_such_module"};
  const QuantizeSummary s = quantize_checkpoint(in, out.string(), o);
  EXPECT_GT(s.quantized, 40);
  EXPECT_GT(s.kept_float, 0);
  EXPECT_EQ(s.skipped_shape, 0);
  EXPECT_LT(s.bytes_after, s.bytes_before / 2);
  EXPECT_EQ(s.unmatched_patterns, std::vector<std::string>{"no_such_module"});

  // Plain safetensors: no vlart block dtypes, nothing a generic reader cannot open.
  SafetensorsFile f = SafetensorsFile::open((out / "model.safetensors").string());
  for (const auto& [k, v] : f.metadata()) EXPECT_NE(k.rfind(kSafetensorsDTypeKeyPrefix, 0), 0u) << k;
  for (const std::string& n : f.names()) EXPECT_FALSE(is_quantized(f.info(n).dtype)) << n;
  const std::string q = "model.vlm_with_expert.vlm.model.text_model.layers.1.self_attn.q_proj.weight";
  EXPECT_FALSE(f.has(q));
  EXPECT_EQ(f.info(q + ".qweight").dtype, DType::kU8);
  EXPECT_EQ(f.info(q + ".qweight").shape, Shape({96, 48}));
  EXPECT_EQ(f.info(q + ".scales").dtype, DType::kF16);
  EXPECT_EQ(f.info(q + ".scales").shape, Shape({96, 2}));  // K = 96: groups of 64 and 32
  EXPECT_EQ(f.info(q + ".zeros").dtype, DType::kU8);
  // Kept float by default and by the user pattern.
  EXPECT_EQ(f.info("model.action_out_proj.weight").dtype, DType::kF32);
  EXPECT_EQ(f.info("model.vlm_with_expert.vlm.model.text_model.layers.0.input_layernorm.weight").dtype, DType::kF32);
  EXPECT_TRUE(f.has("model.vlm_with_expert.vlm.model.text_model.layers.0.mlp.up_proj.weight"));
  EXPECT_TRUE(f.has("model.vlm_with_expert.vlm.model.text_model.layers.1.mlp.up_proj.weight.qweight"));

  // config.json: the input's fields unchanged plus the quantization section.
  nlohmann::json ci = nlohmann::json::parse(read_file(fs::path(in) / "config.json"));
  nlohmann::json co = nlohmann::json::parse(read_file(out / "config.json"));
  const nlohmann::json qs = co["quantization"];
  EXPECT_EQ(qs["format"], "vlart");
  EXPECT_EQ(qs["version"], 1);
  EXPECT_EQ(qs["scheme"], "int4-g64-asym");
  EXPECT_EQ(qs["group_size"], 64);
  EXPECT_EQ(qs["symmetric"], false);
  EXPECT_EQ(qs["activations"], "none");
  EXPECT_EQ(qs["quantized"], s.quantized);
  EXPECT_NE(std::find(qs["kept_float"].begin(), qs["kept_float"].end(), "*layers.0.mlp.*"), qs["kept_float"].end());
  co.erase("quantization");
  EXPECT_EQ(co, ci);
  const auto rq = read_quant_config((out / "config.json").string());
  ASSERT_TRUE(rq.has_value());
  EXPECT_EQ(rq->scheme.name(), "int4-g64-asym");

  // Every other file copied byte for byte, no symlinks.
  for (const auto& e : fs::directory_iterator(in)) {
    const std::string fn = e.path().filename().string();
    ASSERT_TRUE(fs::exists(out / fn)) << fn;
    EXPECT_FALSE(fs::is_symlink(out / fn)) << fn;
    if (fn != "config.json" && fn != "model.safetensors") {
      EXPECT_EQ(read_file(out / fn), read_file(e.path())) << fn;
    }
  }

  // The loader reports the logical shape and dequantizes to f32 within the per-group bound.
  smolvla::SmolVLAWeights wq = smolvla::SmolVLAWeights::open(out.string());
  smolvla::SmolVLAWeights wf = smolvla::SmolVLAWeights::open(in);
  const std::string qn = q.substr(6);
  EXPECT_TRUE(wq.has(qn));
  EXPECT_TRUE(wq.is_quantized(qn));
  EXPECT_EQ(wq.info(qn).shape, Shape({96, 96}));
  EXPECT_EQ(wq.info(qn).dtype, DType::kF32);
  const std::vector<float> a = wf.get(qn).to_float_vector(), b = wq.get(qn, {96, 96}).to_float_vector();
  const std::vector<float> sc = f.get(q + ".scales").to_float_vector();
  for (size_t i = 0; i < a.size(); ++i) {
    const float smax = sc[(i / 96) * 2 + (i % 96) / 64];
    ASSERT_LE(std::fabs(a[i] - b[i]), 0.5f * smax * (1 + 1e-5f));
  }
  EXPECT_THROW(wq.get(qn, {96, 95}), FormatError);

  // A non-empty output directory is refused without force, replaced with it.
  EXPECT_THROW(quantize_checkpoint(in, out.string(), o), InvalidArgument);
  o.force = true;
  o.scheme = parse_scheme("int8");
  EXPECT_NO_THROW(quantize_checkpoint(in, out.string(), o));
  EXPECT_EQ(read_quant_config((out / "config.json").string())->scheme.name(), "int8");
  // Quantizing a quantized checkpoint, or into the input directory, is refused.
  EXPECT_THROW(quantize_checkpoint(out.string(), (out / "again").string(), o), InvalidArgument);
  EXPECT_THROW(quantize_checkpoint(in, in + "/sub", o), InvalidArgument);
  fs::remove_all(out);
}

TEST(QuantizeCheckpoint, NoDefaultKeepQuantizesEverythingTwoDimensional) {
  const std::string in = kRoot + "a_one_cam_square/checkpoint";
  const fs::path out = temp_dir("nodef");
  QuantizeOptions o;
  o.scheme = parse_scheme("int8");
  o.use_default_keep = false;
  o.keep_float = {"action_out_proj"};
  const QuantizeSummary s = quantize_checkpoint(in, out.string(), o);
  SafetensorsFile f = SafetensorsFile::open((out / "model.safetensors").string());
  EXPECT_TRUE(f.has("model.state_proj.weight.qweight"));
  EXPECT_TRUE(f.has("model.vlm_with_expert.vlm.model.text_model.embed_tokens.weight.qweight"));
  EXPECT_TRUE(f.has("model.action_out_proj.weight"));
  EXPECT_EQ(f.info("model.state_proj.weight.scales").dtype, DType::kF32);
  EXPECT_EQ(s.kept_float, 1);
  // 1-D norms and the 4-D patch-embedding conv are never quantized.
  EXPECT_TRUE(f.has("model.vlm_with_expert.vlm.model.vision_model.embeddings.patch_embedding.weight"));
  EXPECT_TRUE(f.has("model.vlm_with_expert.vlm.model.text_model.norm.weight"));

  // --scales-f16: F16 per-row scales, values requantized against them, still within half a step.
  o.force = true;
  o.scales_f16 = true;
  quantize_checkpoint(in, out.string(), o);
  SafetensorsFile h = SafetensorsFile::open((out / "model.safetensors").string());
  const std::string q = "model.vlm_with_expert.lm_expert.layers.0.mlp.down_proj.weight";
  EXPECT_EQ(h.info(q + ".scales").dtype, DType::kF16);
  const std::vector<float> sc = h.get(q + ".scales").to_float_vector();
  const std::vector<float> a = smolvla::SmolVLAWeights::open(in).get(q.substr(6)).to_float_vector();
  const std::vector<float> b = smolvla::SmolVLAWeights::open(out.string()).get(q.substr(6)).to_float_vector();
  const size_t K = a.size() / sc.size();
  for (size_t i = 0; i < a.size(); ++i) ASSERT_LE(std::fabs(a[i] - b[i]), 0.5f * sc[i / K] * (1 + 1e-5f)) << i;
  fs::remove_all(out);
}

// Malformed quantized checkpoints: FormatError naming the file, the tensor and expected vs got.
// The converter knows a family's weights from its description: a 2-D weight it does not know is
// refused (never copied float or quantized silently) unless the user keeps it float by name, and a
// checkpoint of a family without a description is refused outright.
TEST(QuantizeCheckpoint, UnknownWeightsAndFamiliesAreRefused) {
  const fs::path src = kRoot + "a_one_cam_square/checkpoint";
  const fs::path d = temp_dir("unknown_in"), out = temp_dir("unknown_out");
  fs::copy(src, d, fs::copy_options::recursive);
  {
    SafetensorsFile f = SafetensorsFile::open((src / "model.safetensors").string());
    NamedTensors ts;
    for (const std::string& n : f.names()) ts.emplace_back(n, f.get(n));
    ts.emplace_back("model.mystery_head.proj.weight", Tensor::from_vector(random_matrix(4, 8, 3), {4, 8}));
    write_safetensors((d / "model.safetensors").string(), ts);
  }
  QuantizeOptions o;
  o.scheme = parse_scheme("int8");
  try {
    quantize_checkpoint(d.string(), out.string(), o);
    ADD_FAILURE() << "an unknown 2-D weight was accepted";
  } catch (const UnsupportedError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("model.mystery_head.proj.weight"), std::string::npos) << m;
    EXPECT_NE(m.find("smolvla"), std::string::npos) << m;
    EXPECT_NE(m.find("--keep-float"), std::string::npos) << m;
  }
  o.keep_float = {"mystery_head.proj"};
  o.force = true;
  const QuantizeSummary sum = quantize_checkpoint(d.string(), out.string(), o);
  EXPECT_GT(sum.quantized, 0);
  EXPECT_TRUE(SafetensorsCheckpoint::open(out.string()).has("model.mystery_head.proj.weight"));
  // A family vlart does not know at all.
  nlohmann::json c = nlohmann::json::parse(read_file(d / "config.json"));
  c["type"] = "groot";
  std::ofstream(d / "config.json") << c.dump();
  const fs::path out2 = temp_dir("unknown_out2");
  EXPECT_THROW(quantize_checkpoint(d.string(), out2.string(), o), FormatError);
  fs::remove_all(d);
  fs::remove_all(out);
  fs::remove_all(out2);
}

TEST(QuantizeCheckpoint, MalformedFilesNameTheTensor) {
  const std::string in = kRoot + "a_one_cam_square/checkpoint";
  const fs::path good = temp_dir("mal_good");
  QuantizeOptions o;
  o.scheme = parse_scheme("int4-g64");
  quantize_checkpoint(in, good.string(), o);
  const std::string q = "model.vlm_with_expert.vlm.model.text_model.layers.1.self_attn.q_proj.weight";
  SafetensorsFile src = SafetensorsFile::open((good / "model.safetensors").string());

  // Rewrites model.safetensors of a copy of `good` through `edit`, returns the open error.
  auto broken = [&](const std::string& tag, auto edit) {
    const fs::path d = temp_dir("mal_" + tag);
    fs::copy(good, d, fs::copy_options::recursive);
    NamedTensors ts;
    for (const std::string& n : src.names()) ts.emplace_back(n, src.get(n));
    edit(ts);
    write_safetensors((d / "model.safetensors").string(), ts);
    const std::string msg = error_of([&] { smolvla::SmolVLAWeights::open(d.string()); });
    fs::remove_all(d);
    return msg;
  };
  auto erase = [](NamedTensors& ts, const std::string& n) {
    ts.erase(std::remove_if(ts.begin(), ts.end(), [&](const auto& p) { return p.first == n; }), ts.end());
  };
  auto replace = [](NamedTensors& ts, const std::string& n, Tensor t) {
    for (auto& p : ts)
      if (p.first == n) p.second = t;
  };

  std::string m = broken("noscales", [&](NamedTensors& ts) { erase(ts, q + ".scales"); });
  EXPECT_NE(m.find(q + ".qweight' has no scales tensor '" + q + ".scales'"), std::string::npos) << m;
  EXPECT_NE(m.find("model.safetensors"), std::string::npos) << m;

  m = broken("shape", [&](NamedTensors& ts) { replace(ts, q + ".scales", Tensor::zeros({96, 3}, DType::kF16)); });
  EXPECT_NE(m.find(q + ".scales' has shape [96, 3], expected [96, 2]"), std::string::npos) << m;

  m = broken("dtype", [&](NamedTensors& ts) { replace(ts, q + ".qweight", Tensor::zeros({96, 48}, DType::kI8)); });
  EXPECT_NE(m.find(q + ".qweight' has dtype i8, expected u8"), std::string::npos) << m;

  m = broken("sdtype", [&](NamedTensors& ts) { replace(ts, q + ".scales", Tensor::zeros({96, 2}, DType::kF32)); });
  EXPECT_NE(m.find(q + ".scales' has dtype f32, expected f16"), std::string::npos) << m;

  m = broken("orphan", [&](NamedTensors& ts) { erase(ts, q + ".qweight"); });
  EXPECT_NE(m.find(q + ".scales' has no quantized weight '" + q + ".qweight'"), std::string::npos) << m;

  m = broken("both", [&](NamedTensors& ts) { ts.emplace_back(q, Tensor::zeros({96, 96}, DType::kF32)); });
  EXPECT_NE(m.find("'" + q + "' is stored both as float and as"), std::string::npos) << m;

  m = broken("zeros", [&](NamedTensors& ts) { ts.emplace_back(q + ".zeros", Tensor::zeros({96, 2}, DType::kU8)); });
  EXPECT_NE(m.find(q + ".zeros' is not expected for scheme 'int4-g64'"), std::string::npos) << m;

  // config.json problems.
  auto with_config = [&](const std::string& tag, auto edit) {
    const fs::path d = temp_dir("cfg_" + tag);
    fs::copy(good, d, fs::copy_options::recursive);
    nlohmann::json c = nlohmann::json::parse(read_file(d / "config.json"));
    edit(c);
    std::ofstream(d / "config.json") << c.dump();
    const std::string msg = error_of([&] { smolvla::SmolVLAWeights::open(d.string()); });
    fs::remove_all(d);
    return msg;
  };
  m = with_config("ver", [](nlohmann::json& c) { c["quantization"]["version"] = 3; });
  EXPECT_NE(m.find("version 3 is not supported (this build reads versions 1 to 2)"), std::string::npos) << m;
  m = with_config("scheme", [](nlohmann::json& c) { c["quantization"]["scheme"] = "int3"; });
  EXPECT_NE(m.find("unknown quantization scheme 'int3'"), std::string::npos) << m;
  m = with_config("fmt", [](nlohmann::json& c) { c["quantization"]["format"] = "gptq"; });
  EXPECT_NE(m.find("format is 'gptq', expected 'vlart'"), std::string::npos) << m;
  m = with_config("group", [](nlohmann::json& c) { c["quantization"]["group_size"] = 128; });
  EXPECT_NE(m.find("group_size 128 does not match scheme 'int4-g64'"), std::string::npos) << m;
  m = with_config("none", [](nlohmann::json& c) { c.erase("quantization"); });
  EXPECT_NE(m.find("is quantized but"), std::string::npos) << m;
  EXPECT_NE(m.find("has no \"quantization\" section"), std::string::npos) << m;
  // A config claiming int8 over int4 tensors.
  m = with_config("kind", [](nlohmann::json& c) {
    c["quantization"]["scheme"] = "int8";
    c["quantization"]["group_size"] = 0;
  });
  EXPECT_NE(m.find("has dtype u8, expected i8 for scheme 'int8'"), std::string::npos) << m;
  // Policy::load surfaces the same error.
  {
    const fs::path d = temp_dir("cfg_policy");
    fs::copy(good, d, fs::copy_options::recursive);
    nlohmann::json c = nlohmann::json::parse(read_file(d / "config.json"));
    c["quantization"]["version"] = 7;
    std::ofstream(d / "config.json") << c.dump();
    PolicyOptions po;
    po.vlm_config_dir = kRoot + "a_one_cam_square/vlm";
    po.tokenizer_path = kRoot + "a_one_cam_square/vlm/tokenizer.json";
    EXPECT_THROW(Policy::load(d.string(), po), FormatError);
    fs::remove_all(d);
  }
  fs::remove_all(good);
}

