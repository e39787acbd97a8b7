// The quantized-checkpoint format (docs/quantization.md): scheme names, the config.json
// "quantization" section, validation and dequantization of the stored tensors. In core so that
// model loaders read quantized checkpoints without the converter (compress/quantize.h).
#include "core/quant_format.h"

#include "core/json_file.h"

#include <cmath>
#include <string>

#include <nlohmann/json.hpp>

#include "core/json_file.h"
#include "vlart/error.h"

namespace vlart::compress {

std::string QuantScheme::name() const {
  switch (kind) {
    case Scheme::kBF16: return "bf16";
    case Scheme::kInt8: return "int8";
    case Scheme::kW8A8: return "w8a8";
    case Scheme::kInt4: return "int4-g" + std::to_string(group_size) + (symmetric ? "" : "-asym");
  }
  return "?";
}

QuantScheme parse_scheme(const std::string& s) {
  QuantScheme q;
  if (s == "bf16") {
    q.kind = Scheme::kBF16;
    return q;
  }
  if (s == "int8") {
    q.kind = Scheme::kInt8;
    return q;
  }
  if (s == "w8a8") {
    q.kind = Scheme::kW8A8;
    q.act_int8 = true;
    return q;
  }
  for (int g : {32, 64, 128}) {
    const std::string base = "int4-g" + std::to_string(g);
    if (s == base || s == base + "-asym") {
      q.kind = Scheme::kInt4;
      q.group_size = g;
      q.symmetric = s == base;
      return q;
    }
  }
  throw InvalidArgument("unknown quantization scheme '" + s +
                        "'; expected one of: bf16, int8, w8a8, int4-g32, int4-g64, int4-g128, int4-g32-asym, "
                        "int4-g64-asym, int4-g128-asym");
}

void dequantize_int8(const int8_t* q, const float* scales, int64_t n, int64_t k, float* out) {
  for (int64_t i = 0; i < n; ++i) {
    const float s = scales[i];
    for (int64_t j = 0; j < k; ++j) out[i * k + j] = s * static_cast<float>(q[i * k + j]);
  }
}

void dequantize_int4(const uint8_t* packed, const uint16_t* scales, const uint8_t* zeros, int64_t n, int64_t k,
                     int64_t g, float* out) {
  const int64_t ng = (k + g - 1) / g;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < k; ++j) {
      const uint8_t byte = packed[(i * k + j) / 2];
      const int u = (j & 1) ? (byte >> 4) : (byte & 0xf);
      const int64_t gi = i * ng + j / g;
      const int z = zeros ? zeros[gi] : 8;
      out[i * k + j] = f16_to_f32(scales[gi]) * static_cast<float>(u - z);
    }
}

// ---------------- reading ----------------

std::optional<QuantConfig> read_quant_config(const std::string& path) {
  const nlohmann::ordered_json j = read_json_file(path);
  if (!j.is_object() || !j.contains("quantization")) return std::nullopt;
  const auto& q = j["quantization"];
  auto bad = [&](const std::string& what) { return FormatError(path + ": \"quantization\": " + what); };
  if (!q.is_object()) throw bad("is not an object");
  auto str = [&](const char* k) -> std::string {
    if (!q.contains(k) || !q[k].is_string()) throw bad(std::string("field '") + k + "' missing or not a string");
    return q[k].get<std::string>();
  };
  const std::string fmt = str("format");
  if (fmt != "vlart") throw bad("format is '" + fmt + "', expected 'vlart'");
  if (!q.contains("version") || !q["version"].is_number_integer()) throw bad("field 'version' missing or not an integer");
  const int64_t ver = q["version"].get<int64_t>();
  if (ver < 1 || ver > kQuantFormatVersion)
    throw bad("version " + std::to_string(ver) + " is not supported (this build reads versions 1 to " +
              std::to_string(kQuantFormatVersion) + ")");
  QuantConfig c;
  c.version = static_cast<int>(ver);
  if (q.contains("calibration")) {
    if (ver < 2) throw bad("field 'calibration' needs version 2, the file says version " + std::to_string(ver));
    const auto& cal = q["calibration"];
    if (!cal.is_object() || !cal.contains("method") || !cal["method"].is_string())
      throw bad("field 'calibration' must be an object with a string 'method'");
    c.calibration = cal["method"].get<std::string>();
    if (c.calibration != "awq" && c.calibration != "static" && c.calibration != "gptq")
      throw bad("calibration method '" + c.calibration + "' is not 'awq', 'gptq' or 'static'");
  }
  if (q.contains("attention")) {
    c.attention = str("attention");
    if (c.attention != "f32" && c.attention != "int16" && c.attention != "int8")
      throw bad("attention '" + c.attention + "' is not 'f32', 'int16' or 'int8'");
  }
  const std::string scheme = str("scheme");
  try {
    c.scheme = parse_scheme(scheme);
  } catch (const InvalidArgument& e) {
    throw bad(e.what());
  }
  if (q.contains("group_size")) {
    if (!q["group_size"].is_number_integer()) throw bad("field 'group_size' is not an integer");
    const int64_t g = q["group_size"].get<int64_t>();
    if (g != c.scheme.group_size)
      throw bad("group_size " + std::to_string(g) + " does not match scheme '" + scheme + "' (expected " +
                std::to_string(c.scheme.group_size) + ")");
  }
  if (q.contains("symmetric")) {
    if (!q["symmetric"].is_boolean()) throw bad("field 'symmetric' is not a boolean");
    if (q["symmetric"].get<bool>() != c.scheme.symmetric)
      throw bad(std::string("symmetric: ") + (c.scheme.symmetric ? "false" : "true") + " does not match scheme '" +
                scheme + "'");
  }
  if (q.contains("activations")) {
    const std::string a = str("activations");
    const std::string want = c.scheme.act_int8 ? "int8_per_token" : "none";
    if (a != "none" && a != "int8_per_token") throw bad("activations '" + a + "' is not 'none' or 'int8_per_token'");
    if (a != want) throw bad("activations '" + a + "' does not match scheme '" + scheme + "' (expected '" + want + "')");
  }
  if (q.contains("quantized") && q["quantized"].is_number_integer()) c.quantized = q["quantized"].get<int64_t>();
  if (q.contains("kept_float") && q["kept_float"].is_array())
    for (const auto& p : q["kept_float"])
      if (p.is_string()) c.kept_float.push_back(p.get<std::string>());
  return c;
}

namespace {
// The optional version-2 tensors of a quantized weight of logical shape [N, K].
void validate_calibration(const SafetensorsCheckpoint& ck, const std::string& base, const QuantConfig& qc, int64_t K) {
  const std::string in = base + kInputScalesSuffix, an = base + kActScaleSuffix;
  const bool w8a8 = qc.scheme.kind == Scheme::kW8A8;
  if (ck.has(in)) {
    const std::string f = ck.file_of(in).path();
    VLART_CHECK(qc.version >= 2, FormatError, f, ": tensor '", in, "' needs quantization format version 2, config says ",
                qc.version);
    VLART_CHECK(!w8a8, FormatError, f, ": tensor '", in, "' is not expected for scheme 'w8a8'");
    const SafetensorsTensorInfo& i = ck.info(in);
    VLART_CHECK(i.stored_dtype == DType::kF32 && i.shape == Shape({K}), FormatError, f, ": tensor '", in, "' is ",
                dtype_name(i.stored_dtype), " ", i.shape.str(), ", expected f32 [", K, "]");
    const Tensor t = ck.get(in);
    const float* v = t.data<float>();
    for (int64_t j = 0; j < K; ++j)
      VLART_CHECK(std::isfinite(v[j]) && v[j] > 0.f, FormatError, f, ": tensor '", in, "' holds ", v[j], " at index ",
                  j, ", expected a positive finite scale");
  }
  if (ck.has(an)) {
    const std::string f = ck.file_of(an).path();
    VLART_CHECK(qc.version >= 2, FormatError, f, ": tensor '", an, "' needs quantization format version 2, config says ",
                qc.version);
    VLART_CHECK(w8a8, FormatError, f, ": tensor '", an, "' is only expected for scheme 'w8a8', not '", qc.scheme.name(),
                "'");
    const SafetensorsTensorInfo& i = ck.info(an);
    VLART_CHECK(i.stored_dtype == DType::kF32 && i.shape.numel() == 1, FormatError, f, ": tensor '", an, "' is ",
                dtype_name(i.stored_dtype), " ", i.shape.str(), ", expected f32 [1]");
    const float v = ck.get(an).data<float>()[0];
    VLART_CHECK(std::isfinite(v) && v > 0.f, FormatError, f, ": tensor '", an, "' holds ", v,
                ", expected a positive finite scale");
  }
}
}  // namespace

Shape validate_quantized(const SafetensorsCheckpoint& ck, const std::string& base, const QuantConfig& qc) {
  const Shape sh = validate_quantized_tensors(ck, base, qc);
  validate_calibration(ck, base, qc, sh[1]);
  return sh;
}

Shape validate_quantized_tensors(const SafetensorsCheckpoint& ck, const std::string& base, const QuantConfig& qc) {
  const std::string qn = base + kQWeightSuffix, sn = base + kScalesSuffix, zn = base + kZerosSuffix;
  VLART_CHECK(ck.has(qn), NotFoundError, "quantized weight '", qn, "' not in checkpoint");
  const std::string file = ck.file_of(qn).path();
  const SafetensorsTensorInfo& qi = ck.info(qn);
  const QuantScheme& sc = qc.scheme;
  VLART_CHECK(sc.kind != Scheme::kBF16, FormatError, file, ": tensor '", qn,
              "' is quantized but the config scheme is 'bf16' (which stores plain BF16 tensors)");
  VLART_CHECK(ck.has(sn), FormatError, file, ": quantized tensor '", qn, "' has no scales tensor '", sn, "'");
  const SafetensorsTensorInfo& si = ck.info(sn);
  const std::string sfile = ck.file_of(sn).path();
  const bool int8 = sc.kind == Scheme::kInt8 || sc.kind == Scheme::kW8A8;
  VLART_CHECK(qi.shape.rank() == 2, FormatError, file, ": tensor '", qn, "' has shape ", qi.shape.str(),
              ", expected a 2-D [N, ", int8 ? "K" : "K/2", "] tensor");
  const int64_t N = qi.shape[0];
  if (int8) {
    VLART_CHECK(qi.stored_dtype == DType::kI8, FormatError, file, ": tensor '", qn, "' has dtype ",
                dtype_name(qi.stored_dtype), ", expected i8 for scheme '", sc.name(), "'");
    VLART_CHECK(si.stored_dtype == DType::kF32 || si.stored_dtype == DType::kF16, FormatError, sfile, ": tensor '", sn,
                "' has dtype ", dtype_name(si.stored_dtype), ", expected f32 or f16");
    VLART_CHECK(si.shape == Shape({N}), FormatError, sfile, ": tensor '", sn, "' has shape ", si.shape.str(),
                ", expected [", N, "] (one scale per output channel of '", qn, "' ", qi.shape.str(), ")");
    VLART_CHECK(!ck.has(zn), FormatError, ck.file_of(zn).path(), ": tensor '", zn, "' is not expected for scheme '",
                sc.name(), "' (symmetric)");
    return qi.shape;
  }
  VLART_CHECK(qi.stored_dtype == DType::kU8, FormatError, file, ": tensor '", qn, "' has dtype ",
              dtype_name(qi.stored_dtype), ", expected u8 (packed int4) for scheme '", sc.name(), "'");
  const int64_t K = qi.shape[1] * 2, G = sc.group_size;
  const Shape gs({N, (K + G - 1) / G});
  VLART_CHECK(si.stored_dtype == DType::kF16, FormatError, sfile, ": tensor '", sn, "' has dtype ",
              dtype_name(si.stored_dtype), ", expected f16");
  VLART_CHECK(si.shape == gs, FormatError, sfile, ": tensor '", sn, "' has shape ", si.shape.str(), ", expected ",
              gs.str(), " (groups of ", G, " columns, the last one possibly shorter, of '", qn, "' ", qi.shape.str(), ")");
  if (sc.symmetric) {
    VLART_CHECK(!ck.has(zn), FormatError, ck.file_of(zn).path(), ": tensor '", zn, "' is not expected for scheme '",
                sc.name(), "' (symmetric)");
  } else {
    VLART_CHECK(ck.has(zn), FormatError, file, ": quantized tensor '", qn, "' has no zero points '", zn,
                "' (scheme '", sc.name(), "' is asymmetric)");
    const SafetensorsTensorInfo& zi = ck.info(zn);
    const std::string zfile = ck.file_of(zn).path();
    VLART_CHECK(zi.stored_dtype == DType::kU8, FormatError, zfile, ": tensor '", zn, "' has dtype ",
                dtype_name(zi.stored_dtype), ", expected u8");
    VLART_CHECK(zi.shape == gs, FormatError, zfile, ": tensor '", zn, "' has shape ", zi.shape.str(), ", expected ",
                gs.str());
  }
  return Shape({N, K});
}

namespace {
Tensor apply_input_scales(const SafetensorsCheckpoint& ck, const std::string& base, Tensor w) {
  if (!ck.has(base + kInputScalesSuffix)) return w;
  const Tensor in = ck.get(base + kInputScalesSuffix);
  const float* s = in.data<float>();
  float* p = w.data<float>();
  const int64_t n = w.dim(0), k = w.dim(1);
  for (int64_t r = 0; r < n; ++r)
    for (int64_t c = 0; c < k; ++c) p[r * k + c] /= s[c];
  return w;
}
}  // namespace

Tensor dequantize_weight(const SafetensorsCheckpoint& ck, const std::string& base, const QuantConfig& qc) {
  const Shape sh = validate_quantized(ck, base, qc);
  const int64_t N = sh[0], K = sh[1];
  Tensor out = Tensor::empty(sh, DType::kF32);
  const Tensor q = ck.get(base + kQWeightSuffix).contiguous();
  const Tensor s = ck.get(base + kScalesSuffix);
  if (qc.scheme.kind == Scheme::kInt8 || qc.scheme.kind == Scheme::kW8A8) {
    const std::vector<float> sf = s.to_float_vector();
    dequantize_int8(q.data<int8_t>(), sf.data(), N, K, out.data<float>());
    return apply_input_scales(ck, base, out);
  }
  const Tensor sc = s.contiguous();
  Tensor z;
  if (!qc.scheme.symmetric) {
    z = ck.get(base + kZerosSuffix).contiguous();
    const uint8_t* zp = z.data<uint8_t>();
    for (int64_t i = 0; i < z.numel(); ++i)
      VLART_CHECK(zp[i] <= 15, FormatError, ck.file_of(base + kZerosSuffix).path(), ": tensor '", base, kZerosSuffix,
                  "' holds zero point ", int(zp[i]), " at index ", i, ", expected a value in [0, 15]");
  }
  dequantize_int4(q.data<uint8_t>(), sc.data<uint16_t>(), z.defined() ? z.data<uint8_t>() : nullptr, N, K,
                  qc.scheme.group_size, out.data<float>());
  return apply_input_scales(ck, base, out);
}

}  // namespace vlart::compress
