// Quantized checkpoints end to end on every SmolVLA fixture case: quantize, load with Policy::load,
// compare actions with the float checkpoint on the fixture noise and check the quality gates;
// w8a8 attention precision; calibration (AWQ, GPTQ, static w8a8) and its errors.
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
#include "models/smolvla/weights.h"
#include "vlart/error.h"
#include "vlart/policy.h"

using namespace vlart;
using namespace vlart::compress;
using namespace vlart::testing::quant;
namespace fs = std::filesystem;

namespace {

// The fixture case's recorded observations and LeRobot noise, for `p`'s cameras.
void case_observations(const std::string& c, const Policy& p, std::vector<Observation>* obs,
                       std::vector<std::vector<float>>* noise) {
  const nlohmann::json cj = nlohmann::json::parse(read_file(kRoot + c + "/case.json"));
  SafetensorsFile ref = SafetensorsFile::open(kRoot + c + "/reference.safetensors");
  for (const auto& smp : cj["samples"]) {
    const std::string s = smp["name"];
    Observation o;
    for (const std::string& cam : p.camera_names()) {
      const std::string sn = cam.substr(cam.rfind('.') + 1);
      Tensor img = ref.get(s + ".input.image." + sn);
      o.images[sn] = Image{std::vector<uint8_t>(img.data<uint8_t>(), img.data<uint8_t>() + img.numel()), img.dim(0),
                           img.dim(1)};
    }
    o.state = ref.get(s + ".input.state").to_float_vector();
    o.task = smp["task"];
    obs->push_back(std::move(o));
    noise->push_back(ref.get(s + ".noise").to_float_vector());
  }
}

PolicyOptions case_options(const std::string& c) {
  PolicyOptions po;
  po.threads = 1;
  po.vlm_config_dir = kRoot + c + "/vlm";
  po.tokenizer_path = kRoot + c + "/vlm/tokenizer.json";
  return po;
}

std::vector<std::vector<float>> run_all(Policy& p, const std::vector<Observation>& obs,
                                        const std::vector<std::vector<float>>& noise) {
  std::vector<std::vector<float>> out;
  for (size_t i = 0; i < obs.size(); ++i) out.push_back(p.infer(obs[i], noise[i].data()).data);
  return out;
}

// A fixture case's float checkpoint, loaded with case_options, its observations and noise, and
// its actions on them (the reference every quantized variant is compared with).
struct FloatCase {
  std::string ck;
  PolicyOptions po;
  decltype(Policy::load(std::string(), PolicyOptions())) policy;
  std::vector<Observation> obs;
  std::vector<std::vector<float>> noise;
  std::vector<std::vector<float>> want;
};

FloatCase float_case(const std::string& c) {
  FloatCase f;
  f.ck = kRoot + c + "/checkpoint";
  f.po = case_options(c);  // one thread: robust to busy CI machines
  f.policy = Policy::load(f.ck, f.po);
  case_observations(c, *f.policy, &f.obs, &f.noise);
  f.want = run_all(*f.policy, f.obs, f.noise);
  return f;
}

}  // namespace

// End to end on every fixture case: quantize with each scheme, run with the fixture noise, compare
// with the float checkpoint's actions (action space, unnormalised).
//
// Gates. The issue asks for int8 cos >= 0.999, w8a8 >= 0.995, int4-g64 >= 0.99.
//  * bf16 and int8 are raised to what was measured (worst min-cosine over all cases and samples:
//    bf16 0.999991, int8 0.999874).
//  * w8a8 (activations quantized per token at run time, so its actions differ from int8's) is raised
//    from the issue's 0.995 to 0.999: measured worst min-cosine 0.99977.
//  * int4 does NOT reach 0.99 on these fixtures: measured int4-g64 min-cosine 0.978 .. 0.993
//    (rel L2 0.12 .. 0.17). The quantizer meets its per-element bound (QuantMath tests), and
//    int4/int8 action errors scale with the weight step (0.163 / 0.0109 ~ 15 for step ratio
//    127/7 ~ 18): the randomly initialised fixture models (uniform Kaiming weights, no redundancy)
//    amplify weight noise ~2.3x into the actions, and quantizing only the action expert already
//    gives all of it. The int4 floor asserted here is 0.95 / rel L2 0.3, a regression bound on
//    random weights, not a quality claim; the 0.99 gate is printed per case (docs/quantization.md).
//    With GPTQ rounding on calibration rows, int4-g64 meets the 0.99 gate on every case; that is
//    asserted in QuantizeCalibration.AwqGptqInt4AndStaticW8A8OnEveryFixtureCase.
TEST(QuantizeEndToEnd, GatesOnEveryFixtureCase) {
  struct Gate {
    const char* scheme;
    double min_cos;     // smallest per-observation action-space cosine similarity
    double max_rel_l2;  // action-space relative L2 over all observations
  };
  const std::vector<Gate> gates = {{"bf16", 0.99995, 0.01},    {"int8", 0.9995, 0.03},
                                   {"w8a8", 0.999, 0.03},      {"int4-g64", 0.95, 0.3},
                                   {"int4-g32", 0.95, 0.3},    {"int4-g128", 0.95, 0.3},
                                   {"int4-g64-asym", 0.95, 0.3}};
  int int4_issue_gate_pass = 0;
  for (const std::string& c : kCases) {
    const FloatCase f = float_case(c);
    const auto& [ck, po, pf, obs, noise, want] = f;
    std::map<std::string, std::vector<std::vector<float>>> actions;
    std::map<std::string, ActionError> errs;
    for (const Gate& g : gates) {
      SCOPED_TRACE(c + " " + g.scheme);
      const fs::path out = temp_dir(std::string("e2e_") + g.scheme);
      QuantizeOptions qo;
      qo.scheme = parse_scheme(g.scheme);
      const QuantizeSummary sum = quantize_checkpoint(ck, out.string(), qo);
      auto pq = Policy::load(out.string(), po);
      std::vector<std::vector<float>> got;
      for (size_t i = 0; i < obs.size(); ++i) got.push_back(pq->infer(obs[i], noise[i].data()).data);
      const ActionError e = action_error(want, got, pf->action_dim());
      std::printf("[%s] %-14s cos %.6f (min %.6f) rel L2 %.3g max abs %.3g  weights %.2f -> %.2f MiB (%lld quantized)\n",
                  c.c_str(), g.scheme, e.cosine, e.min_cosine, e.rel_l2, e.max_abs, sum.bytes_before / 1048576.0,
                  sum.bytes_after / 1048576.0, static_cast<long long>(sum.quantized));
      EXPECT_GE(e.min_cosine, g.min_cos);
      EXPECT_LE(e.rel_l2, g.max_rel_l2);
      EXPECT_GT(e.max_abs, 0.0) << "quantized weights gave exactly the float actions: were they used?";
      EXPECT_LT(sum.bytes_after, sum.bytes_before);
      actions[g.scheme] = std::move(got);
      errs[g.scheme] = e;
      fs::remove_all(out);
    }
    // w8a8 quantizes activations per token at run time (M > 16 rows), so it is not int8 weight-only,
    // where this CPU has an exact int8 product; elsewhere its weights run as int8 weight-only, exactly.
    if (w8a8_int8_compute_available()) {
      EXPECT_NE(actions["w8a8"], actions["int8"]) << c << ": w8a8 gave int8's actions: activations not quantized?";
    } else {
      std::printf("[ INFO ] %s: no exact int8 product on this CPU (ISA %s): w8a8 runs int8 weight-only\n", c.c_str(),
                  kernels::cpu_isa_name(kernels::cpu_isa_max()));
      EXPECT_EQ(actions["w8a8"], actions["int8"]) << c << ": w8a8 fallback is not int8 weight-only";
    }
    // Coarser formats cost more: bf16 < int8 < int4.
    EXPECT_LT(errs["bf16"].rel_l2, errs["int8"].rel_l2) << c;
    EXPECT_LT(3 * errs["int8"].rel_l2, errs["int4-g64"].rel_l2) << c;
    const bool pass = errs["int4-g64"].min_cosine >= 0.99;
    int4_issue_gate_pass += pass;
    std::printf("[%s] issue gate int4-g64 cos >= 0.99: %s (%.6f)\n", c.c_str(), pass ? "met" : "NOT met",
                errs["int4-g64"].min_cosine);
  }
  std::printf("issue gate int4-g64 cos >= 0.99 met on %d of %zu fixture cases (random weights; see comment)\n",
              int4_issue_gate_pass, kCases.size());
}

// w8a8 records int8 attention products in its config by default and Policy::load follows it
// (PolicyOptions::attention kAuto); kF32 overrides it, and --attention at quantize time records
// another choice. Reduced-precision attention moves actions measurably (it is really used) but
// keeps the w8a8 gate.
TEST(QuantizeEndToEnd, W8A8AttentionPrecision) {
  using AP = PolicyOptions::AttentionPrecision;
  const std::string c = kCases[0];
  const FloatCase f = float_case(c);
  const auto& [ck, po, pf, obs, noise, want] = f;
  // Float weights: int16 attention alone moves the actions by ~1e-4 (measured 1.3e-4), int8 by a
  // few 1e-3 (measured 4.6e-3).
  // Where the CPU has no reduced-precision tiles (no AVX512_VNNI, or the ISA capped below it) the
  // request falls back to f32 attention exactly, and the w8a8 comparisons below reduce to that.
  const bool reduced = kernels::attention_reduced_precision_available();
  if (!reduced)
    std::printf("[ INFO ] no reduced-precision attention tiles on this CPU (ISA %s): int16/int8 requests run f32\n",
                kernels::cpu_isa_name(kernels::cpu_isa_max()));
  for (const auto& [ap, limit] : {std::pair{AP::kInt16, 1e-3}, std::pair{AP::kInt8, 1e-2}}) {
    PolicyOptions pa = po;
    pa.attention = ap;
    const ActionError alone = action_error(want, run_all(*Policy::load(ck, pa), obs, noise), pf->action_dim());
    std::printf("[%s] float weights, %s vs f32 attention: rel L2 %.3g\n", c.c_str(),
                ap == AP::kInt16 ? "int16" : "int8", alone.rel_l2);
    if (reduced) {
      EXPECT_GT(alone.max_abs, 0.0) << "reduced-precision attention gave exactly the f32 actions: not used?";
      EXPECT_LE(alone.rel_l2, limit);
    } else {
      EXPECT_EQ(run_all(*Policy::load(ck, pa), obs, noise), run_all(*Policy::load(ck, po), obs, noise))
          << "the f32 fallback of reduced-precision attention is not the f32 path";
    }
  }

  const fs::path out = temp_dir("attn_w8a8");
  QuantizeOptions qo;
  qo.scheme = parse_scheme("w8a8");
  quantize_checkpoint(ck, out.string(), qo);
  EXPECT_EQ(read_quant_config((out / "config.json").string())->attention, "int8");
  PolicyOptions p32 = po;
  p32.attention = AP::kF32;
  const auto got_auto = run_all(*Policy::load(out.string(), po), obs, noise);
  const auto got_f32 = run_all(*Policy::load(out.string(), p32), obs, noise);
  // With int8 activations a tiny perturbation flips roundings downstream, so w8a8 with either
  // attention lands at a different point of the same error cloud: assert the total error, not
  // the distance between the two.
  const ActionError e8 = action_error(want, got_auto, pf->action_dim());
  const ActionError e32 = action_error(want, got_f32, pf->action_dim());
  std::printf("[%s] w8a8 vs float: int8 attention rel L2 %.3g cos %.6f, f32 attention rel L2 %.3g cos %.6f\n",
              c.c_str(), e8.rel_l2, e8.min_cosine, e32.rel_l2, e32.min_cosine);
  if (reduced)
    EXPECT_NE(got_auto, got_f32);
  else
    EXPECT_EQ(got_auto, got_f32);
  EXPECT_GE(e8.min_cosine, 0.999);
  EXPECT_LE(e8.rel_l2, 1.25 * e32.rel_l2 + 1e-3);

  // Recorded f32: kAuto runs f32 attention, bit for bit the override above.
  qo.attention = "f32";
  qo.force = true;
  quantize_checkpoint(ck, out.string(), qo);
  EXPECT_EQ(read_quant_config((out / "config.json").string())->attention, "f32");
  EXPECT_EQ(run_all(*Policy::load(out.string(), po), obs, noise), got_f32);
  // Recorded int16: kAuto equals the kInt16 override.
  qo.attention = "int16";
  quantize_checkpoint(ck, out.string(), qo);
  PolicyOptions p16 = po;
  p16.attention = AP::kInt16;
  EXPECT_EQ(run_all(*Policy::load(out.string(), po), obs, noise), run_all(*Policy::load(out.string(), p16), obs, noise));
  // int8 weight-only records f32; kInt8 still forces int8 q.k.
  qo.scheme = parse_scheme("int8");
  qo.attention.clear();
  quantize_checkpoint(ck, out.string(), qo);
  EXPECT_EQ(read_quant_config((out / "config.json").string())->attention, "f32");
  PolicyOptions p8 = po;
  p8.attention = AP::kInt8;
  if (reduced)
    EXPECT_NE(run_all(*Policy::load(out.string(), p8), obs, noise), run_all(*Policy::load(out.string(), po), obs, noise));
  else
    EXPECT_EQ(run_all(*Policy::load(out.string(), p8), obs, noise), run_all(*Policy::load(out.string(), po), obs, noise));

  // Bad values are named.
  qo.attention = "fp8";
  try {
    quantize_checkpoint(ck, out.string(), qo);
    ADD_FAILURE() << "attention fp8 accepted";
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("attention 'fp8'"), std::string::npos) << e.what();
  }
  qo.attention.clear();
  quantize_checkpoint(ck, out.string(), qo);
  nlohmann::json cfg = nlohmann::json::parse(read_file(out / "config.json"));
  cfg["quantization"]["attention"] = "int4";
  std::ofstream(out / "config.json") << cfg.dump();
  try {
    read_quant_config((out / "config.json").string());
    ADD_FAILURE() << "attention int4 accepted";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("attention 'int4' is not 'f32', 'int16' or 'int8'"), std::string::npos)
        << e.what();
  }
  fs::remove_all(out);
}

// The quantized kernels compute with exactly the dequantized weights (f32 accumulation), so a
// quantized checkpoint run on them matches the same checkpoint dequantized to f32 at load
// (PolicyOptions::dequantize_weights) up to f32 rounding, on every fixture case and scheme.
TEST(QuantizeEndToEnd, QuantizedKernelsMatchDequantizedWeights) {
  for (const std::string& c : kCases) {
    const std::string ck = kRoot + c + "/checkpoint";
    const PolicyOptions po = case_options(c);
    for (const char* scheme : {"int8", "int4-g64", "int4-g32-asym"}) {
      SCOPED_TRACE(c + " " + scheme);
      const fs::path out = temp_dir(std::string("kern_") + scheme);
      QuantizeOptions qo;
      qo.scheme = parse_scheme(scheme);
      quantize_checkpoint(ck, out.string(), qo);
      PolicyOptions pd = po;
      pd.dequantize_weights = true;
      auto pk = Policy::load(out.string(), po);
      auto pr = Policy::load(out.string(), pd);
      std::vector<Observation> obs;
      std::vector<std::vector<float>> noise;
      case_observations(c, *pk, &obs, &noise);
      const ActionError e = action_error(run_all(*pr, obs, noise), run_all(*pk, obs, noise), pk->action_dim());
      std::printf("[%s] %-14s kernels vs dequantized: rel L2 %.3g max abs %.3g\n", c.c_str(), scheme, e.rel_l2,
                  e.max_abs);
      EXPECT_LE(e.rel_l2, 1e-4);
      fs::remove_all(out);
    }
  }
}


// Calibration (--calibrate): statistics are collected for every quantizable Linear; int4 gets
// activation-aware input scales that lower the layer output error on the sampled rows (alpha 0,
// plain rounding, is one of the candidates, so never higher), the checkpoint is written as format
// version 2 and loads and runs; w8a8 gets static activation ranges and still meets its gate.
TEST(QuantizeCalibration, AwqGptqInt4AndStaticW8A8OnEveryFixtureCase) {
  for (const std::string& c : kCases) {
    SCOPED_TRACE(c);
    const FloatCase f = float_case(c);
    const auto& [ck, po, pf, obs, noise, want] = f;
    CalibrateOptions co;
    co.policy = po;
    co.max_rows = 64;
    const CalibrationData cal = collect_calibration(ck, obs, noise, co);
    EXPECT_EQ(cal.observations, static_cast<int64_t>(obs.size()));
    ASSERT_FALSE(cal.layers.empty());
    for (const auto& [name, st] : cal.layers) {
      EXPECT_EQ(name.rfind("model.", 0), 0u) << name;
      EXPECT_GT(st.rows, 0) << name;
      EXPECT_EQ(st.sampled, std::min<int64_t>(st.rows, 64)) << name;
      EXPECT_GT(st.absmax, 0.f) << name;
    }
    std::map<std::string, ActionError> errs;
    for (const char* scheme : {"int4-g64", "w8a8"}) {
      for (bool calibrated : {false, true}) {
        const std::string tag = std::string(scheme) + (calibrated ? "+calib" : "");
        const fs::path out = temp_dir("calib_" + tag);
        QuantizeOptions qo;
        qo.scheme = parse_scheme(scheme);
        if (calibrated) qo.calibration = &cal;
        const QuantizeSummary sum = quantize_checkpoint(ck, out.string(), qo);
        auto qc = read_quant_config((out / "config.json").string());
        ASSERT_TRUE(qc.has_value());
        if (calibrated) {
          EXPECT_GT(sum.calibrated, 0);
          EXPECT_EQ(qc->version, 2);
          EXPECT_EQ(qc->calibration, qo.scheme.act_int8 ? "static" : "awq");
          if (!qo.scheme.act_int8) {
            EXPECT_LE(sum.calib_err_chosen, sum.calib_err_plain);
          }
        } else {
          EXPECT_EQ(qc->version, 1);
        }
        auto pq = Policy::load(out.string(), po);
        const ActionError e = action_error(want, run_all(*pq, obs, noise), pf->action_dim());
        std::printf("[%s] %-16s cos %.6f (min %.6f) rel L2 %.4g max abs %.3g  (%lld calibrated; layer error %.4g -> %.4g)\n",
                    c.c_str(), tag.c_str(), e.cosine, e.min_cosine, e.rel_l2, e.max_abs,
                    static_cast<long long>(sum.calibrated), sum.calib_err_plain, sum.calib_err_chosen);
        errs[tag] = e;
        fs::remove_all(out);
      }
    }
    EXPECT_GE(errs["w8a8+calib"].min_cosine, 0.995);  // the issue's w8a8 gate
    EXPECT_GE(errs["int4-g64+calib"].min_cosine, 0.95);
    // GPTQ rounding (int4 + --gptq) on every sampled row: recorded as method "gptq", no extra
    // tensors (plain int4 layout), lower layer output error on the rows it fitted.
    co.max_rows = 1024;
    const CalibrationData cal_rows = collect_calibration(ck, obs, noise, co);
    const fs::path out = temp_dir("calib_gptq");
    QuantizeOptions qo;
    qo.scheme = parse_scheme("int4-g64");
    qo.calibration = &cal_rows;
    qo.gptq = true;
    const QuantizeSummary sum = quantize_checkpoint(ck, out.string(), qo);
    auto qc = read_quant_config((out / "config.json").string());
    ASSERT_TRUE(qc.has_value());
    EXPECT_EQ(qc->calibration, "gptq");
    EXPECT_LT(sum.calib_err_chosen, 0.9 * sum.calib_err_plain);
    const SafetensorsCheckpoint qck = SafetensorsCheckpoint::open(out.string());
    int64_t with_stats = 0;  // every quantized weight the policy ran (the last VLM layer's o_proj/MLP never do)
    for (const std::string& n : qck.names()) {
      EXPECT_EQ(n.find(".input_scales"), std::string::npos) << n;
      const std::string suffix = ".qweight";
      if (n.size() > suffix.size() && n.compare(n.size() - suffix.size(), suffix.size(), suffix) == 0)
        with_stats += cal_rows.layers.count(n.substr(0, n.size() - suffix.size())) ? 1 : 0;
    }
    EXPECT_GT(with_stats, 0);
    EXPECT_EQ(sum.calibrated, with_stats);
    auto pq = Policy::load(out.string(), po);
    const ActionError e = action_error(want, run_all(*pq, obs, noise), pf->action_dim());
    std::printf("[%s] %-16s cos %.6f (min %.6f) rel L2 %.4g max abs %.3g  (%lld calibrated; layer error %.4g -> %.4g)\n",
                c.c_str(), "int4-g64+gptq", e.cosine, e.min_cosine, e.rel_l2, e.max_abs,
                static_cast<long long>(sum.calibrated), sum.calib_err_plain, sum.calib_err_chosen);
    EXPECT_GE(e.min_cosine, 0.99);  // the issue's int4-g64 gate (measured 0.9905 .. 0.9992)
    EXPECT_LT(e.rel_l2, errs["int4-g64"].rel_l2);  // better than plain rounding on every case
    fs::remove_all(out);
  }
}

TEST(QuantizeCalibration, RejectsQuantizedInputAndEmptyObservations) {
  const std::string c = "a_one_cam_square";
  const std::string ck = kRoot + c + "/checkpoint";
  CalibrateOptions co;
  co.policy = case_options(c);
  EXPECT_THROW(collect_calibration(ck, {}, {}, co), InvalidArgument);
  const fs::path out = temp_dir("calib_reject");
  QuantizeOptions qo;
  qo.scheme = parse_scheme("int8");
  quantize_checkpoint(ck, out.string(), qo);
  auto pf = Policy::load(ck, co.policy);
  std::vector<Observation> obs;
  std::vector<std::vector<float>> noise;
  case_observations(c, *pf, &obs, &noise);
  const std::string msg = error_of([&] { collect_calibration(out.string(), obs, noise, co); });
  EXPECT_NE(msg.find("already quantized"), std::string::npos) << msg;
  fs::remove_all(out);
}

// Version-2 tensors are validated when the checkpoint opens: values, dtype/shape, scheme, version.
TEST(QuantizeCalibration, MalformedCalibrationTensorsNameTheTensor) {
  const std::string c = "a_one_cam_square";
  const std::string ck = kRoot + c + "/checkpoint";
  const PolicyOptions po = case_options(c);
  auto pf = Policy::load(ck, po);
  std::vector<Observation> obs;
  std::vector<std::vector<float>> noise;
  case_observations(c, *pf, &obs, &noise);
  CalibrateOptions co;
  co.policy = po;
  const CalibrationData cal = collect_calibration(ck, obs, noise, co);
  const fs::path out = temp_dir("calib_bad");
  QuantizeOptions qo;
  qo.scheme = parse_scheme("int4-g64");
  qo.calibration = &cal;
  quantize_checkpoint(ck, out.string(), qo);
  const fs::path st = out / "model.safetensors";
  const std::string cfg = read_file(out / "config.json");
  // Rewrites model.safetensors with `edit` applied to the tensor list (and config.json as given).
  auto rewrite = [&](const std::function<void(NamedTensors&)>& edit, const std::string& config) {
    SafetensorsFile f = SafetensorsFile::open(st.string());
    NamedTensors ts;
    for (const std::string& n : f.names()) ts.emplace_back(n, f.get(n).clone());
    edit(ts);
    f = SafetensorsFile();
    write_safetensors(st.string(), ts);
    std::ofstream(out / "config.json") << config;
  };
  SafetensorsFile orig = SafetensorsFile::open(st.string());
  NamedTensors keep;
  for (const std::string& n : orig.names()) keep.emplace_back(n, orig.get(n).clone());
  orig = SafetensorsFile();
  std::string in_name;
  for (const auto& [n, t] : keep)
    if (n.size() > 13 && n.compare(n.size() - 13, 13, ".input_scales") == 0) in_name = n;
  ASSERT_FALSE(in_name.empty()) << "no input_scales written";
  auto restore = [&](NamedTensors& ts) { ts = keep; };

  rewrite([&](NamedTensors& ts) {
    restore(ts);
    for (auto& [n, t] : ts)
      if (n == in_name) {
        t = t.clone();  // `keep` shares the storage of the restored tensors
        t.data<float>()[3] = -1.f;
      }
  }, cfg);
  std::string msg = error_of([&] { Policy::load(out.string(), po); });
  EXPECT_NE(msg.find(in_name + "' holds -1 at index 3, expected a positive finite scale"), std::string::npos) << msg;

  rewrite([&](NamedTensors& ts) {
    restore(ts);
    const std::string base = in_name.substr(0, in_name.size() - 13);
    ts.emplace_back(base + ".act_scale", Tensor::from_vector({0.1f}, {1}));
  }, cfg);
  msg = error_of([&] { Policy::load(out.string(), po); });
  EXPECT_NE(msg.find(".act_scale' is only expected for scheme 'w8a8', not 'int4-g64'"), std::string::npos) << msg;

  std::string v1 = cfg;
  const size_t vp = v1.find("\"version\": 2");
  ASSERT_NE(vp, std::string::npos);
  v1.replace(vp, 12, "\"version\": 1");
  rewrite(restore, v1);
  msg = error_of([&] { Policy::load(out.string(), po); });
  EXPECT_NE(msg.find("'calibration' needs version 2"), std::string::npos) << msg;
  fs::remove_all(out);
}

