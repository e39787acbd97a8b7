#include "compress/quantize.h"
#include "core/quant_weight.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>

#include <Eigen/Dense>
#include <nlohmann/json.hpp>

#include "compress/calibrate.h"
#include "core/json_file.h"
#include "models/registry.h"
#include "vlart/error.h"

namespace vlart::compress {
namespace fs = std::filesystem;

namespace {

bool ends_with(const std::string& s, const std::string& suf) {
  return s.size() >= suf.size() && s.compare(s.size() - suf.size(), suf.size(), suf) == 0;
}
bool starts_with(const std::string& s, const std::string& pre) { return s.rfind(pre, 0) == 0; }

// Smallest f16 value >= x (x >= 0, finite). Rounding scales upwards keeps every value of the
// group inside the quantization grid, so the per-element error stays <= scale / 2.
uint16_t f16_ceil(float x, const std::string& what) {
  uint16_t h = f32_to_f16(x);
  if (f16_to_f32(h) < x) ++h;
  VLART_CHECK(std::isfinite(f16_to_f32(h)), InvalidArgument, "quantize: ", what, ": scale ", x,
              " does not fit in f16 (weights too large for the int4 format)");
  return h;
}

bool is_float(DType t) { return t == DType::kF32 || t == DType::kBF16 || t == DType::kF16; }

}  // namespace

// ---------------- tensor math ----------------

Int8Weight quantize_int8(const float* w, int64_t n, int64_t k) {
  Int8Weight r;
  r.q.resize(static_cast<size_t>(n * k));
  r.scales.resize(static_cast<size_t>(n));
  quantize_int8_rows(w, n, k, r.q.data(), r.scales.data());
  return r;
}

Int4Weight quantize_int4(const float* w, int64_t n, int64_t k, int64_t g, bool symmetric) {
  VLART_CHECK(g > 0 && g % 2 == 0 && k > 0 && k % 2 == 0, InvalidArgument, "quantize_int4: K = ", k,
              " and group size ", g, " must be even and positive");
  const int64_t ng = (k + g - 1) / g;  // the last group of a row may be shorter
  Int4Weight r;
  r.packed.assign(static_cast<size_t>(n * k / 2), 0);
  r.scales.resize(static_cast<size_t>(n * ng));
  if (!symmetric) r.zeros.resize(static_cast<size_t>(n * ng));
  std::vector<int> q(static_cast<size_t>(g));
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t b = 0; b < ng; ++b) {
      const float* x = w + i * k + b * g;
      const int64_t len = std::min(g, k - b * g);
      const size_t gi = static_cast<size_t>(i * ng + b);
      if (symmetric) {
        float amax = 0.f;
        for (int64_t j = 0; j < len; ++j) amax = std::max(amax, std::fabs(x[j]));
        const uint16_t h = f16_ceil(amax / 7.f, "int4 scale");
        r.scales[gi] = h;
        const float s = f16_to_f32(h);
        for (int64_t j = 0; j < len; ++j)
          q[static_cast<size_t>(j)] = s > 0.f ? static_cast<int>(std::clamp(std::nearbyint(x[j] / s), -8.f, 7.f)) + 8 : 8;
      } else {
        // The range always includes 0 so that the integer zero point lies in [0, 15].
        float lo = 0.f, hi = 0.f;
        for (int64_t j = 0; j < len; ++j) {
          lo = std::min(lo, x[j]);
          hi = std::max(hi, x[j]);
        }
        const uint16_t h = f16_ceil((hi - lo) / 15.f, "int4 scale");
        r.scales[gi] = h;
        const float s = f16_to_f32(h);
        const int z = s > 0.f ? static_cast<int>(std::clamp(std::nearbyint(-lo / s), 0.f, 15.f)) : 0;
        r.zeros[gi] = static_cast<uint8_t>(z);
        for (int64_t j = 0; j < len; ++j)
          q[static_cast<size_t>(j)] =
              s > 0.f ? std::clamp(static_cast<int>(std::nearbyint(x[j] / s)) + z, 0, 15) : z;
      }
      uint8_t* dst = r.packed.data() + (i * k + b * g) / 2;
      for (int64_t j = 0; j < len / 2; ++j)
        dst[j] = static_cast<uint8_t>(q[static_cast<size_t>(2 * j)] | (q[static_cast<size_t>(2 * j + 1)] << 4));
    }
  }
  return r;
}

// ---------------- name patterns ----------------

bool glob_match(const std::string& p, const std::string& s) {
  size_t pi = 0, si = 0, star = std::string::npos, mark = 0;
  while (si < s.size()) {
    if (pi < p.size() && (p[pi] == '?' || p[pi] == s[si])) {
      ++pi;
      ++si;
    } else if (pi < p.size() && p[pi] == '*') {
      star = pi++;
      mark = si;
    } else if (star != std::string::npos) {
      pi = star + 1;
      si = ++mark;
    } else {
      return false;
    }
  }
  while (pi < p.size() && p[pi] == '*') ++pi;
  return pi == p.size();
}

bool pattern_matches_tensor(const std::string& pattern, const std::string& name, const std::string& prefix) {
  std::vector<std::string> forms;
  const std::string bare = !prefix.empty() && starts_with(name, prefix) ? name.substr(prefix.size()) : name;
  forms.push_back(bare);
  if (!prefix.empty()) forms.push_back(prefix + bare);
  std::string module = bare;
  for (const char* suf : {".weight", ".bias"})
    if (ends_with(module, suf)) module = module.substr(0, module.size() - std::strlen(suf));
  if (module != bare) {
    forms.push_back(module);
    if (!prefix.empty()) forms.push_back(prefix + module);
  }
  for (size_t p = module.find('.'); p != std::string::npos; p = module.find('.', p + 1))
    forms.push_back(module.substr(p + 1));
  for (const std::string& f : forms)
    if (glob_match(pattern, f)) return true;
  return false;
}

// ---------------- checkpoint conversion ----------------

namespace {


// One int4 group's scale (f16 bits) and zero point from its current values, as quantize_int4.
struct GroupParams {
  uint16_t scale_bits = 0;
  float scale = 0.f;
  int zero = 0;  // asymmetric only
};
GroupParams group_params(const float* v, int64_t len, int64_t stride, bool symmetric) {
  GroupParams p;
  if (symmetric) {
    float amax = 0.f;
    for (int64_t j = 0; j < len; ++j) amax = std::max(amax, std::fabs(v[j * stride]));
    p.scale_bits = f16_ceil(amax / 7.f, "int4 scale");
  } else {
    float lo = 0.f, hi = 0.f;
    for (int64_t j = 0; j < len; ++j) {
      lo = std::min(lo, v[j * stride]);
      hi = std::max(hi, v[j * stride]);
    }
    p.scale_bits = f16_ceil((hi - lo) / 15.f, "int4 scale");
    p.scale = f16_to_f32(p.scale_bits);
    p.zero = p.scale > 0.f ? static_cast<int>(std::clamp(std::nearbyint(-lo / p.scale), 0.f, 15.f)) : 0;
  }
  p.scale = f16_to_f32(p.scale_bits);
  return p;
}

// The stored nibble of x under p (quantize_int4's rounding).
int int4_code(float x, const GroupParams& p, bool symmetric) {
  if (symmetric) return p.scale > 0.f ? static_cast<int>(std::clamp(std::nearbyint(x / p.scale), -8.f, 7.f)) + 8 : 8;
  return p.scale > 0.f ? std::clamp(static_cast<int>(std::nearbyint(x / p.scale)) + p.zero, 0, 15) : p.zero;
}

float int4_value(int code, const GroupParams& p, bool symmetric) {
  return p.scale * static_cast<float>(symmetric ? code - 8 : code - p.zero);
}

Tensor from_bytes(const void* src, size_t nbytes, const Shape& shape, DType dt) {
  Tensor t = Tensor::empty(shape, dt);
  VLART_CHECK(t.nbytes() == nbytes, InternalError, "quantize: ", nbytes, " bytes for ", t.str());
  std::memcpy(t.raw(), src, nbytes);
  return t;
}

}  // namespace

namespace {

using RowMat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// Activation-aware int4 scales for one weight: for each alpha, s[k] = mean|x_k|^alpha (normalised
// so that sqrt(max * min) = 1), quantize w * s, and measure ||X (dequant / s)^T - X w^T||^2 on the
// sampled activation rows X. Returns the best s (empty when alpha = 0, plain rounding, wins).
std::vector<float> awq_scales(const std::vector<float>& w, int64_t n, int64_t k, const QuantScheme& sc,
                              const LayerActStats& st, const std::vector<double>& alphas, double* err_plain,
                              double* err_best) {
  const Eigen::Map<const RowMat> X(st.sample.data(), st.sampled, k);
  const Eigen::Map<const RowMat> W(w.data(), n, k);
  const RowMat Y = X * W.transpose();
  const std::vector<float> mean = st.mean_abs();
  std::vector<float> best;
  double best_err = -1;
  std::vector<float> ws(w.size()), dq(w.size());
  for (double a : alphas) {
    std::vector<float> s(static_cast<size_t>(k), 1.f);
    if (a > 0) {
      float mx = 0, mn = std::numeric_limits<float>::max();
      for (int64_t i = 0; i < k; ++i) {
        s[static_cast<size_t>(i)] = std::pow(std::max(mean[static_cast<size_t>(i)], 1e-6f), static_cast<float>(a));
        mx = std::max(mx, s[static_cast<size_t>(i)]);
        mn = std::min(mn, s[static_cast<size_t>(i)]);
      }
      const float norm = std::sqrt(mx * mn);
      for (float& v : s) v = std::clamp(v / norm, 1e-4f, 1e4f);
    }
    for (int64_t r = 0; r < n; ++r)
      for (int64_t i = 0; i < k; ++i) ws[static_cast<size_t>(r * k + i)] = w[static_cast<size_t>(r * k + i)] * s[static_cast<size_t>(i)];
    const Int4Weight q = quantize_int4(ws.data(), n, k, sc.group_size, sc.symmetric);
    dequantize_int4(q.packed.data(), q.scales.data(), sc.symmetric ? nullptr : q.zeros.data(), n, k, sc.group_size,
                    dq.data());
    for (int64_t r = 0; r < n; ++r)
      for (int64_t i = 0; i < k; ++i) dq[static_cast<size_t>(r * k + i)] /= s[static_cast<size_t>(i)];
    const Eigen::Map<const RowMat> D(dq.data(), n, k);
    const double err = static_cast<double>((X * D.transpose() - Y).squaredNorm());
    if (a == 0) *err_plain = err;
    if (best_err < 0 || err < best_err) {
      best_err = err;
      best = a > 0 ? s : std::vector<float>();
    }
  }
  *err_best = best_err;
  return best;
}

}  // namespace

Int4Weight gptq_int4(const float* w, int64_t n, int64_t k, int64_t g, bool symmetric, const float* x, int64_t rows,
                     double damp) {
  VLART_CHECK(g > 0 && g % 2 == 0 && k > 0 && k % 2 == 0, InvalidArgument, "gptq_int4: K = ", k, " and group size ",
              g, " must be even and positive");
  VLART_CHECK(rows > 0 && damp > 0.0 && std::isfinite(damp), InvalidArgument, "gptq_int4: needs rows > 0 and damp > 0, got ",
              rows, " rows, damp ", damp);
  using MatF = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::ColMajor>;
  // H = X^T X / rows + damp * mean(diag) * I in float (as the reference GPTQ), two K x K matrices at
  // most: for the connector (K = 12288) that is 1.2 GB.
  const Eigen::Map<const RowMat> X(x, rows, k);
  MatF A = X.transpose() * X;
  A /= static_cast<float>(rows);
  MatF W = Eigen::Map<const RowMat>(w, n, k);  // column-major copy: columns are updated in place
  double mean_diag = 0;
  for (int64_t j = 0; j < k; ++j) {
    if (!(A(j, j) > 0.f)) {  // an input that is always zero: its weights never contribute
      A(j, j) = 1.f;
      W.col(j).setZero();
    }
    mean_diag += A(j, j);
  }
  mean_diag /= static_cast<double>(k);
  A.diagonal().array() += static_cast<float>(damp * mean_diag);
  // U, the upper Cholesky factor of H^-1 (H^-1 = U^T U), from one factorisation and one triangular
  // inverse: with J the order reversal and J H J = M M^T (lower M), H = R R^T for the upper
  // R = J M J, so H^-1 = R^-T R^-1 and U = R^-1 = J M^-1 J.
  A.reverseInPlace();
  Eigen::LLT<Eigen::Ref<MatF>> llt(A);  // in place: M in A's lower triangle
  VLART_CHECK(llt.info() == Eigen::Success, InvalidArgument, "gptq_int4: H is not positive definite (damp ", damp, ")");
  MatF U = MatF::Identity(k, k);
  A.triangularView<Eigen::Lower>().solveInPlace(U);  // M^-1
  U.reverseInPlace();

  const int64_t ng = (k + g - 1) / g;
  std::vector<int> codes(static_cast<size_t>(n * k));
  std::vector<GroupParams> params(static_cast<size_t>(n * ng));
  const int64_t B = std::max<int64_t>(1, 128 / g) * g;  // lazy-batch block, a multiple of the group
  MatF err(n, B);
  for (int64_t b0 = 0; b0 < k; b0 += B) {
    const int64_t b1 = std::min(k, b0 + B);
    for (int64_t j = b0; j < b1; ++j) {
      if (j % g == 0) {
        const int64_t len = std::min(g, k - j);
        for (int64_t r = 0; r < n; ++r)
          params[static_cast<size_t>(r * ng + j / g)] = group_params(&W(r, j), len, W.outerStride(), symmetric);
      }
      const float d = U(j, j);
      for (int64_t r = 0; r < n; ++r) {
        const GroupParams& p = params[static_cast<size_t>(r * ng + j / g)];
        const int c = int4_code(W(r, j), p, symmetric);
        codes[static_cast<size_t>(r * k + j)] = c;
        err(r, j - b0) = (W(r, j) - int4_value(c, p, symmetric)) / d;
      }
      // The rest of the block now; the columns after it once per block.
      if (j + 1 < b1)
        W.block(0, j + 1, n, b1 - j - 1).noalias() -= err.col(j - b0) * U.block(j, j + 1, 1, b1 - j - 1);
    }
    if (b1 < k) W.rightCols(k - b1).noalias() -= err.leftCols(b1 - b0) * U.block(b0, b1, b1 - b0, k - b1);
  }
  Int4Weight out;
  out.packed.assign(static_cast<size_t>(n * k / 2), 0);
  out.scales.resize(static_cast<size_t>(n * ng));
  if (!symmetric) out.zeros.resize(static_cast<size_t>(n * ng));
  for (int64_t r = 0; r < n; ++r) {
    for (int64_t b = 0; b < ng; ++b) {
      out.scales[static_cast<size_t>(r * ng + b)] = params[static_cast<size_t>(r * ng + b)].scale_bits;
      if (!symmetric) out.zeros[static_cast<size_t>(r * ng + b)] = static_cast<uint8_t>(params[static_cast<size_t>(r * ng + b)].zero);
    }
    for (int64_t j = 0; j < k; j += 2)
      out.packed[static_cast<size_t>((r * k + j) / 2)] =
          static_cast<uint8_t>(codes[static_cast<size_t>(r * k + j)] | (codes[static_cast<size_t>(r * k + j + 1)] << 4));
  }
  return out;
}

QuantizeSummary quantize_checkpoint(const std::string& in_dir, const std::string& out_dir,
                                    const QuantizeOptions& opts) {
  const fs::path in(in_dir), out(out_dir);
  VLART_CHECK(opts.attention.empty() || opts.attention == "f32" || opts.attention == "int16" ||
                  opts.attention == "int8",
              InvalidArgument, "quantize: attention '", opts.attention, "' is not 'f32', 'int16' or 'int8'");
  VLART_CHECK(fs::is_directory(in), NotFoundError, "quantize: input checkpoint directory ", in_dir,
              " does not exist");
  VLART_CHECK(fs::exists(in / "config.json"), NotFoundError, "quantize: no config.json in ", in_dir);
  nlohmann::ordered_json cfg = read_json_file((in / "config.json").string(), "quantize");
  VLART_CHECK(cfg.is_object() && !cfg.contains("quantization"), InvalidArgument, "quantize: ",
              (in / "config.json").string(), " already has a \"quantization\" section (scheme ",
              cfg.is_object() && cfg.contains("quantization") ? cfg["quantization"].value("scheme", "?") : "?",
              "); quantize the float checkpoint instead");
  const fs::path in_c = fs::weakly_canonical(in), out_c = fs::weakly_canonical(out);
  {
    const std::string a = in_c.string() + "/", b = out_c.string() + "/";
    VLART_CHECK(!starts_with(b, a), InvalidArgument, "quantize: output directory ", out_dir,
                " is the input directory or inside it");
  }
  if (fs::exists(out)) {
    VLART_CHECK(fs::is_directory(out), InvalidArgument, "quantize: output ", out_dir, " exists and is not a directory");
    const bool empty = fs::directory_iterator(out) == fs::directory_iterator();
    VLART_CHECK(empty || opts.force, InvalidArgument, "quantize: output directory ", out_dir,
                " is not empty (pass --force to replace its contents)");
    for (const auto& e : fs::directory_iterator(out)) fs::remove_all(e.path());
  }
  fs::create_directories(out);

  const SafetensorsCheckpoint ck = SafetensorsCheckpoint::open(in_dir);
  // Files that make up the model weights are rewritten; everything else is copied.
  std::set<std::string> weight_files = {"model.safetensors"};
  if (!ck.index_path().empty()) weight_files.insert(fs::path(ck.index_path()).filename().string());
  for (const SafetensorsFile& f : ck.shards()) weight_files.insert(fs::path(f.path()).filename().string());
  for (const auto& e : fs::directory_iterator(in)) {
    const std::string fn = e.path().filename().string();
    if (fn == "config.json" || weight_files.count(fn)) continue;
    // Default options follow symlinks: the output holds regular files and directories only.
    fs::copy(e.path(), out / fn, fs::copy_options::recursive);
  }

  QuantizeSummary sum;
  const QuantScheme& sc = opts.scheme;
  // The family says what its tensors are called: the weight prefix, the 2-D weights its loader
  // reads, and what stays float by default.
  const FamilyWeights fw = checkpoint_weights(in_dir);
  const std::string& prefix = fw.weight_prefix;
  if (opts.use_default_keep) sum.kept_patterns = fw.keep_float;
  for (const std::string& p : opts.keep_float)
    if (!p.empty() && std::find(sum.kept_patterns.begin(), sum.kept_patterns.end(), p) == sum.kept_patterns.end())
      sum.kept_patterns.push_back(p);
  auto kept = [&](const std::string& n) {
    for (const std::string& p : sum.kept_patterns)
      if (pattern_matches_tensor(p, n, prefix)) return true;
    return false;
  };
  auto known = [&](const std::string& n) {
    for (const std::string& p : fw.known_2d)
      if (glob_match(p, n)) return true;
    return false;
  };

  NamedTensors outs;
  for (const std::string& n : ck.names()) {
    Tensor t = ck.get(n);
    sum.bytes_before += t.nbytes();
    VLART_CHECK(!ends_with(n, kQWeightSuffix), InvalidArgument, "quantize: ", in_dir, " already holds quantized tensor '",
                n, "'");
    const bool model_float = starts_with(n, prefix) && is_float(t.dtype());
    if (!model_float) {
      ++sum.other;
      outs.emplace_back(n, t);
      continue;
    }
    // A 2-D weight the family does not know is refused (unless the user keeps it float by name):
    // copying it unquantized, or quantizing what no loader reads, would both pass silently.
    VLART_CHECK(t.rank() != 2 || !ends_with(n, ".weight") || kept(n) || known(n), UnsupportedError, "quantize: ",
                in_dir, ": tensor '", n, "' ", t.shape().str(), " is not a weight the ", fw.family,
                " family's loader knows; refusing to convert a checkpoint with unknown weights (keep it float with "
                "--keep-float ", n, " if it belongs there)");
    if (sc.kind == Scheme::kBF16) {
      if (kept(n)) {
        ++sum.kept_float;
        outs.emplace_back(n, t);
      } else if (t.dtype() != DType::kBF16) {
        ++sum.quantized;
        outs.emplace_back(n, t.to(DType::kBF16));
      } else {
        ++sum.other;
        outs.emplace_back(n, t);
      }
      continue;
    }
    if (t.rank() != 2 || !ends_with(n, ".weight")) {
      ++sum.other;
      outs.emplace_back(n, t);
      continue;
    }
    if (kept(n)) {
      ++sum.kept_float;
      outs.emplace_back(n, t);
      continue;
    }
    const int64_t N = t.dim(0), K = t.dim(1);
    if (sc.kind == Scheme::kInt4 && K % 2 != 0) {  // two values per byte: odd rows stay float
      ++sum.skipped_shape;
      sum.skipped_names.push_back(n);
      outs.emplace_back(n, t);
      continue;
    }
    const std::vector<float> wf = t.to_float_vector();
    const LayerActStats* st = nullptr;
    if (opts.calibration) {
      auto it = opts.calibration->layers.find(n);
      if (it != opts.calibration->layers.end() && it->second.k == K && it->second.sampled > 0) st = &it->second;
    }
    if (sc.kind == Scheme::kW8A8 && st && st->absmax > 0.f) {
      const float a = st->absmax / 127.f;
      outs.emplace_back(n + kActScaleSuffix, Tensor::from_vector({a}, {1}));
      ++sum.calibrated;
    }
    if (sc.kind == Scheme::kInt8 || sc.kind == Scheme::kW8A8) {
      Int8Weight q = quantize_int8(wf.data(), N, K);
      outs.emplace_back(n + kQWeightSuffix, from_bytes(q.q.data(), q.q.size(), {N, K}, DType::kI8));
      Tensor s = from_bytes(q.scales.data(), q.scales.size() * 4, {N}, DType::kF32);
      if (opts.scales_f16) {
        // Round the scales first, then requantize against the stored values.
        std::vector<float> sf(q.scales.size());
        for (size_t i = 0; i < sf.size(); ++i) sf[i] = f16_to_f32(f16_ceil(q.scales[i], n));
        for (int64_t i = 0; i < N; ++i)
          for (int64_t j = 0; j < K; ++j) {
            const float sv = sf[static_cast<size_t>(i)];
            q.q[static_cast<size_t>(i * K + j)] =
                sv > 0.f ? static_cast<int8_t>(std::clamp(std::nearbyint(wf[static_cast<size_t>(i * K + j)] / sv),
                                                          -127.f, 127.f))
                         : int8_t{0};
          }
        outs.back().second = from_bytes(q.q.data(), q.q.size(), {N, K}, DType::kI8);
        s = Tensor::from_vector(sf, {N}).to(DType::kF16);
      }
      outs.emplace_back(n + kScalesSuffix, s);
    } else {
      std::vector<float> in_scales;
      Int4Weight q;
      if (st && opts.gptq) {
        q = gptq_int4(wf.data(), N, K, sc.group_size, sc.symmetric, st->sample.data(), st->sampled, opts.gptq_damp);
        // Output error on the sampled rows (the rows GPTQ fitted): plain rounding vs GPTQ.
        const Int4Weight rtn = quantize_int4(wf.data(), N, K, sc.group_size, sc.symmetric);
        const Eigen::Map<const RowMat> X(st->sample.data(), st->sampled, K);
        const Eigen::Map<const RowMat> W(wf.data(), N, K);
        std::vector<float> dq(wf.size());
        for (int pass = 0; pass < 2; ++pass) {
          const Int4Weight& iw = pass == 0 ? rtn : q;
          dequantize_int4(iw.packed.data(), iw.scales.data(), sc.symmetric ? nullptr : iw.zeros.data(), N, K,
                          sc.group_size, dq.data());
          const Eigen::Map<const RowMat> D(dq.data(), N, K);
          (pass == 0 ? sum.calib_err_plain : sum.calib_err_chosen) +=
              static_cast<double>((X * (D - W).transpose()).squaredNorm());
        }
        ++sum.calibrated;
      } else {
        if (st) {
          double e0 = 0, e1 = 0;
          in_scales = awq_scales(wf, N, K, sc, *st, opts.awq_alphas, &e0, &e1);
          sum.calib_err_plain += e0;
          sum.calib_err_chosen += e1;
        }
        std::vector<float> wq = wf;
        if (!in_scales.empty()) {
          for (int64_t r = 0; r < N; ++r)
            for (int64_t i = 0; i < K; ++i) wq[static_cast<size_t>(r * K + i)] *= in_scales[static_cast<size_t>(i)];
          outs.emplace_back(n + kInputScalesSuffix, Tensor::from_vector(in_scales, {K}));
          ++sum.calibrated;
        }
        q = quantize_int4(wq.data(), N, K, sc.group_size, sc.symmetric);
      }
      const int64_t ng = (K + sc.group_size - 1) / sc.group_size;
      outs.emplace_back(n + kQWeightSuffix, from_bytes(q.packed.data(), q.packed.size(), {N, K / 2}, DType::kU8));
      outs.emplace_back(n + kScalesSuffix, from_bytes(q.scales.data(), q.scales.size() * 2, {N, ng}, DType::kF16));
      if (!sc.symmetric)
        outs.emplace_back(n + kZerosSuffix, from_bytes(q.zeros.data(), q.zeros.size(), {N, ng}, DType::kU8));
    }
    ++sum.quantized;
  }
  for (const auto& [name, t] : outs) sum.bytes_after += t.nbytes();
  const std::vector<std::string> names = ck.names();
  for (const std::string& p : opts.keep_float) {
    bool any = false;
    for (const std::string& n : names) any = any || pattern_matches_tensor(p, n, prefix);
    if (!p.empty() && !any) sum.unmatched_patterns.push_back(p);
  }

  write_safetensors((out / "model.safetensors").string(), outs,
                    {{"format", "pt"}, {"vlart.quantization", sc.name()}});
  nlohmann::ordered_json q;
  q["format"] = "vlart";
  q["version"] = sum.calibrated > 0 ? 2 : 1;
  q["scheme"] = sc.name();
  q["group_size"] = sc.kind == Scheme::kInt4 ? sc.group_size : 0;
  q["symmetric"] = sc.symmetric;
  q["activations"] = sc.act_int8 ? "int8_per_token" : "none";
  q["quantized"] = sum.quantized;
  q["kept_float"] = sum.kept_patterns;
  q["attention"] = opts.attention.empty() ? (sc.kind == Scheme::kW8A8 ? "int8" : "f32") : opts.attention;
  if (sum.calibrated > 0) {
    nlohmann::ordered_json c;
    c["method"] = sc.kind == Scheme::kW8A8 ? "static" : opts.gptq ? "gptq" : "awq";
    c["observations"] = opts.calibration->observations;
    c["layers"] = sum.calibrated;
    if (sc.kind != Scheme::kW8A8 && !opts.gptq) c["alphas"] = opts.awq_alphas;
    if (sc.kind != Scheme::kW8A8 && opts.gptq) c["damp"] = opts.gptq_damp;
    q["calibration"] = c;
  }
  cfg["quantization"] = q;
  const fs::path cfg_out = out / "config.json";
  std::ofstream f(cfg_out);
  VLART_CHECK(f.good(), IoError, "quantize: cannot write ", cfg_out.string());
  f << cfg.dump(4) << "\n";
  VLART_CHECK(f.good(), IoError, "quantize: writing ", cfg_out.string(), " failed");
  return sum;
}

}  // namespace vlart::compress
