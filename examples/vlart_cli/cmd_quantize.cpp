// `vlart quantize <in_dir> <out_dir> --scheme S`: writes a quantized copy of a checkpoint directory
// (format: docs/quantization.md) and prints what was quantized and the bytes saved.
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "commands.h"
#include "compress/calibrate.h"
#include "compress/quantize.h"
#include "vlart/error.h"

namespace vlart::cli {
namespace {

std::vector<std::string> split_commas(const std::string& s) {
  std::vector<std::string> out;
  size_t p = 0;
  while (p <= s.size()) {
    const size_t c = s.find(',', p);
    std::string tok = s.substr(p, c == std::string::npos ? std::string::npos : c - p);
    const size_t b = tok.find_first_not_of(" \t"), e = tok.find_last_not_of(" \t");
    if (b != std::string::npos) out.push_back(tok.substr(b, e - b + 1));
    if (c == std::string::npos) break;
    p = c + 1;
  }
  return out;
}

std::string mib(uint64_t b) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f MiB", static_cast<double>(b) / (1024.0 * 1024.0));
  return buf;
}

uint64_t safetensors_bytes(const std::string& dir) {
  uint64_t s = 0;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir))
    if (e.is_regular_file() && e.path().extension() == ".safetensors") s += e.file_size();
  return s;
}

}  // namespace

int cmd_quantize(int argc, char** argv) {
  std::vector<std::string> pos;
  std::string scheme;
  int64_t group = 0;
  bool asym = false;
  bool calib_rows_given = false;
  compress::QuantizeOptions o;
  std::string calib_dir;
  compress::CalibrateOptions co;
  for (int i = 0; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      VLART_CHECK(i + 1 < argc, InvalidArgument, "quantize: option ", a, " needs a value");
      return argv[++i];
    };
    if (a == "--scheme") {
      scheme = next();
    } else if (a == "--keep-float") {
      for (const std::string& p : split_commas(next())) o.keep_float.push_back(p);
    } else if (a == "--no-default-keep") {
      o.use_default_keep = false;
    } else if (a == "--force") {
      o.force = true;
    } else if (a == "--scales-f16") {
      o.scales_f16 = true;
    } else if (a == "--attention") {
      o.attention = next();
      VLART_CHECK(o.attention == "f32" || o.attention == "int16" || o.attention == "int8", InvalidArgument,
                  "quantize: --attention expects f32, int16 or int8, got '", o.attention, "'");
    } else if (a == "--group-size") {
      const std::string v = next();
      VLART_CHECK(v == "32" || v == "64" || v == "128", InvalidArgument,
                  "quantize: --group-size expects 32, 64 or 128, got '", v, "'");
      group = std::stoll(v);
    } else if (a == "--asymmetric") {
      asym = true;
    } else if (a == "--calibrate") {
      calib_dir = next();
    } else if (a == "--gptq") {
      o.gptq = true;
    } else if (a == "--calib-rows") {
      calib_rows_given = true;
      const std::string v = next();
      co.max_rows = std::atoll(v.c_str());
      VLART_CHECK(co.max_rows >= 1 && co.max_rows <= 65536, InvalidArgument,
                  "quantize: --calib-rows expects 1..65536, got '", v, "'");
    } else if (a == "--threads") {
      co.policy.threads = std::atoi(next().c_str());
    } else if (a == "--tokenizer") {
      co.policy.tokenizer_path = next();
    } else if (a == "--vlm-config") {
      co.policy.vlm_config_dir = next();
    } else if (!a.empty() && a[0] == '-') {
      throw InvalidArgument("quantize: unknown option '" + a + "'");
    } else {
      pos.push_back(a);
    }
  }
  VLART_CHECK(pos.size() == 2, InvalidArgument, "quantize: expected <in_dir> <out_dir>, got ", pos.size(),
              " positional argument(s)");
  VLART_CHECK(!scheme.empty(), InvalidArgument,
              "quantize: missing --scheme (bf16, int8, w8a8, int4-g32, int4-g64, int4-g128, int4-gG-asym)");
  // "--scheme int4 --group-size 64 [--asymmetric]" spells "int4-g64[-asym]".
  if (scheme == "int4") {
    VLART_CHECK(group > 0, InvalidArgument, "quantize: --scheme int4 needs --group-size 32|64|128 (or int4-g64)");
    scheme = "int4-g" + std::to_string(group) + (asym ? "-asym" : "");
  } else {
    VLART_CHECK(group == 0 || scheme.rfind("int4-g" + std::to_string(group), 0) == 0, InvalidArgument,
                "quantize: --group-size ", group, " contradicts --scheme ", scheme);
    if (asym && scheme.rfind("int4-g", 0) == 0 && scheme.find("-asym") == std::string::npos) scheme += "-asym";
    VLART_CHECK(!asym || scheme.rfind("int4-g", 0) == 0, InvalidArgument,
                "quantize: --asymmetric applies to int4 schemes only");
  }
  o.scheme = compress::parse_scheme(scheme);
  VLART_CHECK(!o.gptq || (o.scheme.kind == compress::Scheme::kInt4 && !calib_dir.empty()), InvalidArgument,
              "quantize: --gptq applies to int4 schemes with --calibrate OBS_DIR (got scheme ", o.scheme.name(),
              calib_dir.empty() ? ", no --calibrate" : "", ")");
  if (o.gptq && !calib_rows_given) co.max_rows = 1024;  // GPTQ fits H = X^T X on the sampled rows
  compress::CalibrationData calib;
  if (!calib_dir.empty()) {
    VLART_CHECK(o.scheme.kind == compress::Scheme::kInt4 || o.scheme.kind == compress::Scheme::kW8A8,
                InvalidArgument, "quantize: --calibrate applies to int4 (activation-aware scales) and w8a8 (static "
                "activation ranges), not to scheme ", o.scheme.name());
    std::vector<Observation> obs;
    std::vector<std::vector<float>> noise;
    {
      auto p = Policy::load(pos[0], co.policy);
      read_obs_dir(calib_dir, *p, 0, &obs, &noise);
    }
    std::printf("calibrating on %zu observation(s) from %s (%lld rows sampled per layer)...\n", obs.size(),
                calib_dir.c_str(), static_cast<long long>(co.max_rows));
    calib = compress::collect_calibration(pos[0], obs, noise, co);
    o.calibration = &calib;
  }
  const compress::QuantizeSummary s = compress::quantize_checkpoint(pos[0], pos[1], o);
  if (o.calibration) {
    if (o.scheme.kind == compress::Scheme::kW8A8)
      std::printf("calibration: static activation scales for %lld of %lld weights\n",
                  static_cast<long long>(s.calibrated), static_cast<long long>(s.quantized));
    else
      std::printf("calibration: %s for %lld of %lld weights; output error on the "
                  "sampled rows %.4g -> %.4g (%.1f%% of plain rounding)\n",
                  o.gptq ? "GPTQ rounding" : "activation-aware scales chosen", static_cast<long long>(s.calibrated), static_cast<long long>(s.quantized), s.calib_err_plain,
                  s.calib_err_chosen, s.calib_err_plain > 0 ? 100.0 * s.calib_err_chosen / s.calib_err_plain : 100.0);
  }

  std::printf("quantized %s -> %s (scheme %s%s)\n", pos[0].c_str(), pos[1].c_str(), o.scheme.name().c_str(),
              o.scheme.act_int8 ? ", activations int8 per token" : "");
  std::printf("tensors: %lld quantized, %lld kept float by pattern, %lld copied unchanged (1-D, conv, non-float)",
              static_cast<long long>(s.quantized), static_cast<long long>(s.kept_float),
              static_cast<long long>(s.other));
  if (s.skipped_shape > 0)
    std::printf(", %lld kept float because K is odd",
                static_cast<long long>(s.skipped_shape));
  std::printf("\n");
  for (const std::string& n : s.skipped_names) std::printf("  kept float (shape): %s\n", n.c_str());
  std::string kp;
  for (const std::string& p : s.kept_patterns) kp += (kp.empty() ? "" : ",") + p;
  std::printf("keep-float patterns: %s\n", kp.empty() ? "(none)" : kp.c_str());
  for (const std::string& p : s.unmatched_patterns)
    std::fprintf(stderr, "vlart: warning: --keep-float pattern '%s' matched no tensor\n", p.c_str());
  const double ratio = s.bytes_before > 0 ? static_cast<double>(s.bytes_after) / static_cast<double>(s.bytes_before) : 0;
  std::printf("weights: %s -> %s (%.1f%%)\n", mib(s.bytes_before).c_str(), mib(s.bytes_after).c_str(), 100.0 * ratio);
  std::printf("*.safetensors on disk: %s -> %s\n", mib(safetensors_bytes(pos[0])).c_str(),
              mib(safetensors_bytes(pos[1])).c_str());
  return 0;
}

}  // namespace vlart::cli
