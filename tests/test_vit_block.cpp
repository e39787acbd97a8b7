// The shared ViT layer builder (models/blocks/vit.h) against a plain double-precision reference
// written here: SigLIP form (separate q/k/v, tanh GELU) and DINOv2 form (fused qkv, LayerScale, erf
// GELU, CLS + register tokens prepended), run by the Executor on the CPU backend.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "core/executor.h"
#include "models/blocks/vit.h"
#include "op_harness.h"
#include "vlart/error.h"

using namespace vlart;
using vlart::testing::nmse;
using vlart::testing::random_tensor;

namespace {

constexpr int64_t kC = 16, kHeads = 4, kMlp = 24;
constexpr float kEps = 1e-6f;

using Weights = std::map<std::string, Tensor>;

Weights make_weights(bool fused, bool layer_scale) {
  Weights w;
  uint32_t seed = 7;
  auto rnd = [&](const std::string& n, const Shape& s, float lo, float hi) {
    w[n] = random_tensor(s, DType::kF32, seed++, lo, hi);
  };
  const float sc = 1.f / std::sqrt(static_cast<float>(kC));
  const blocks::VitNames nm = fused ? blocks::VitNames::timm() : blocks::VitNames::siglip();
  for (const std::string& ln : {nm.norm1, nm.norm2}) {
    rnd(ln + ".weight", {kC}, 0.5f, 1.5f);
    rnd(ln + ".bias", {kC}, -0.2f, 0.2f);
  }
  if (fused) {
    rnd(nm.qkv + ".weight", {3 * kC, kC}, -sc, sc);
    rnd(nm.qkv + ".bias", {3 * kC}, -0.1f, 0.1f);
  } else {
    for (const std::string& p : {nm.q, nm.k, nm.v}) {
      rnd(p + ".weight", {kC, kC}, -sc, sc);
      rnd(p + ".bias", {kC}, -0.1f, 0.1f);
    }
  }
  rnd(nm.out + ".weight", {kC, kC}, -sc, sc);
  rnd(nm.out + ".bias", {kC}, -0.1f, 0.1f);
  rnd(nm.fc1 + ".weight", {kMlp, kC}, -sc, sc);
  rnd(nm.fc1 + ".bias", {kMlp}, -0.1f, 0.1f);
  rnd(nm.fc2 + ".weight", {kC, kMlp}, -sc, sc);
  rnd(nm.fc2 + ".bias", {kC}, -0.1f, 0.1f);
  if (layer_scale) {
    rnd(nm.ls1, {kC}, 0.05f, 0.5f);
    rnd(nm.ls2, {kC}, 0.05f, 0.5f);
  }
  rnd("cls", {1, 1, kC}, -1.f, 1.f);
  rnd("reg", {1, 4, kC}, -1.f, 1.f);
  return w;
}

// Row-major helpers on std::vector<double>.
std::vector<double> vec(const Tensor& t) {
  const std::vector<float> f = t.to_float_vector();
  return {f.begin(), f.end()};
}
std::vector<double> layer_norm(const std::vector<double>& x, int64_t rows, const std::vector<double>& g,
                               const std::vector<double>& b) {
  std::vector<double> y(x.size());
  for (int64_t r = 0; r < rows; ++r) {
    double m = 0, v = 0;
    for (int64_t c = 0; c < kC; ++c) m += x[r * kC + c];
    m /= kC;
    for (int64_t c = 0; c < kC; ++c) v += (x[r * kC + c] - m) * (x[r * kC + c] - m);
    v /= kC;
    for (int64_t c = 0; c < kC; ++c) y[r * kC + c] = (x[r * kC + c] - m) / std::sqrt(v + kEps) * g[c] + b[c];
  }
  return y;
}
// y[r, o] = sum_i x[r, i] W[o, i] + b[o]
std::vector<double> linear(const std::vector<double>& x, int64_t rows, int64_t in, const std::vector<double>& W,
                           const std::vector<double>& b, int64_t out) {
  std::vector<double> y(static_cast<size_t>(rows * out));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t o = 0; o < out; ++o) {
      double s = b[o];
      for (int64_t i = 0; i < in; ++i) s += x[r * in + i] * W[o * in + i];
      y[r * out + o] = s;
    }
  return y;
}
double gelu(double x, bool tanh_form) {
  if (tanh_form) return 0.5 * x * (1 + std::tanh(std::sqrt(2 / M_PI) * (x + 0.044715 * x * x * x)));
  return 0.5 * x * (1 + std::erf(x / std::sqrt(2.0)));
}

// The reference layer on x [B, L, C] (tokens already prepended).
std::vector<double> ref_layer(const Weights& w, const blocks::VitSpec& s, std::vector<double> x, int64_t B, int64_t L) {
  const blocks::VitNames& n = s.names;
  auto W = [&](const std::string& k) { return vec(w.at(k)); };
  const int64_t R = B * L, hd = kC / kHeads;
  const std::vector<double> h = layer_norm(x, R, W(n.norm1 + ".weight"), W(n.norm1 + ".bias"));
  std::vector<double> q, k, v;
  if (s.fused_qkv) {
    const std::vector<double> qkv = linear(h, R, kC, W(n.qkv + ".weight"), W(n.qkv + ".bias"), 3 * kC);
    for (int64_t r = 0; r < R; ++r)
      for (int64_t c = 0; c < kC; ++c) {
        q.push_back(qkv[r * 3 * kC + c]);
        k.push_back(qkv[r * 3 * kC + kC + c]);
        v.push_back(qkv[r * 3 * kC + 2 * kC + c]);
      }
  } else {
    q = linear(h, R, kC, W(n.q + ".weight"), W(n.q + ".bias"), kC);
    k = linear(h, R, kC, W(n.k + ".weight"), W(n.k + ".bias"), kC);
    v = linear(h, R, kC, W(n.v + ".weight"), W(n.v + ".bias"), kC);
  }
  std::vector<double> att(static_cast<size_t>(R * kC), 0.0);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t hh = 0; hh < kHeads; ++hh)
      for (int64_t i = 0; i < L; ++i) {
        std::vector<double> p(static_cast<size_t>(L));
        double mx = -1e300, sum = 0;
        for (int64_t j = 0; j < L; ++j) {
          double d = 0;
          for (int64_t e = 0; e < hd; ++e) d += q[(b * L + i) * kC + hh * hd + e] * k[(b * L + j) * kC + hh * hd + e];
          p[j] = d / std::sqrt(static_cast<double>(hd));
          mx = std::max(mx, p[j]);
        }
        for (int64_t j = 0; j < L; ++j) sum += (p[j] = std::exp(p[j] - mx));
        for (int64_t e = 0; e < hd; ++e) {
          double o = 0;
          for (int64_t j = 0; j < L; ++j) o += p[j] * v[(b * L + j) * kC + hh * hd + e];
          att[(b * L + i) * kC + hh * hd + e] = o / sum;
        }
      }
  std::vector<double> a = linear(att, R, kC, W(n.out + ".weight"), W(n.out + ".bias"), kC);
  const std::vector<double> ls1 = s.layer_scale ? W(n.ls1) : std::vector<double>(kC, 1.0);
  const std::vector<double> ls2 = s.layer_scale ? W(n.ls2) : std::vector<double>(kC, 1.0);
  for (int64_t r = 0; r < R; ++r)
    for (int64_t c = 0; c < kC; ++c) x[r * kC + c] += ls1[c] * a[r * kC + c];
  std::vector<double> m = linear(layer_norm(x, R, W(n.norm2 + ".weight"), W(n.norm2 + ".bias")), R, kC,
                                 W(n.fc1 + ".weight"), W(n.fc1 + ".bias"), kMlp);
  for (double& t : m) t = gelu(t, s.gelu_tanh);
  m = linear(m, R, kMlp, W(n.fc2 + ".weight"), W(n.fc2 + ".bias"), kC);
  for (int64_t r = 0; r < R; ++r)
    for (int64_t c = 0; c < kC; ++c) x[r * kC + c] += ls2[c] * m[r * kC + c];
  return x;
}

void check_form(bool dinov2) {
  const Weights w = make_weights(dinov2, dinov2);
  blocks::VitSpec s;
  s.hidden = kC;
  s.heads = kHeads;
  s.mlp = kMlp;
  s.ln_eps = kEps;
  s.gelu_tanh = !dinov2;
  s.fused_qkv = dinov2;
  s.layer_scale = dinov2;
  s.names = dinov2 ? blocks::VitNames::timm() : blocks::VitNames::siglip();
  const int64_t B = 2, P = 6, L = dinov2 ? P + 5 : P;
  const Tensor patches = random_tensor({B, P, kC}, DType::kF32, 99, -2.f, 2.f);
  Graph g;
  const blocks::WeightFn wf = [&](const std::string& name, const Shape& shape, bool) {
    const ValueId id = g.find(name);
    if (id != kNoValue) return id;
    const Tensor& t = w.at(name);
    EXPECT_EQ(t.shape(), shape) << name;
    return g.weight(name, t);
  };
  ValueId x = g.input("x", {B, P, kC}, DType::kF32);
  if (dinov2) x = blocks::prepend_tokens(g, x, {wf("cls", {1, 1, kC}, false), wf("reg", {1, 4, kC}, false)});
  const blocks::VitLayerOut o = blocks::vit_layer(g, x, s, "", wf);
  g.mark_output(o.x, "out");
  auto cpu = make_cpu_backend({2});
  Executor ex(g, {cpu.get()});
  std::memcpy(ex.input("x").raw(), patches.raw(), patches.nbytes());
  ex.run();
  // Reference input: [cls, reg x4, patches] per image.
  std::vector<double> xin;
  const std::vector<double> pv = vec(patches), cls = vec(w.at("cls")), reg = vec(w.at("reg"));
  for (int64_t b = 0; b < B; ++b) {
    if (dinov2) {
      xin.insert(xin.end(), cls.begin(), cls.end());
      xin.insert(xin.end(), reg.begin(), reg.end());
    }
    xin.insert(xin.end(), pv.begin() + b * P * kC, pv.begin() + (b + 1) * P * kC);
  }
  const std::vector<double> ref = ref_layer(w, s, xin, B, L);
  const std::vector<float> got = ex.output("out").to_float_vector();
  ASSERT_EQ(got.size(), ref.size());
  const std::vector<float> reff(ref.begin(), ref.end());
  // f32 kernels vs a double reference: rounding only (measured ~1e-14).
  EXPECT_LE(nmse(got, reff), 1e-10) << (dinov2 ? "DINOv2 form" : "SigLIP form");
  EXPECT_EQ(ex.output("out").shape(), (Shape{B, L, kC}));
}

TEST(VitBlock, SiglipFormMatchesReference) { check_form(false); }
TEST(VitBlock, Dinov2FusedQkvLayerScaleAndPrefixTokensMatchReference) { check_form(true); }

TEST(VitBlock, ContractErrors) {
  Graph g;
  const ValueId x = g.input("x", {1, 4, 8}, DType::kF32);
  blocks::VitSpec s;
  s.hidden = 16;
  s.heads = 4;
  s.mlp = 8;
  const blocks::WeightFn none = [](const std::string&, const Shape&, bool) -> ValueId { return kNoValue; };
  EXPECT_THROW(blocks::vit_layer(g, x, s, "l.", none), InvalidArgument);  // width mismatch
  const ValueId t = g.input("t", {1, 1, 7}, DType::kF32);
  EXPECT_THROW(blocks::prepend_tokens(g, x, {t}), InvalidArgument);
}

}  // namespace
