// Adaptive RMSNorm with gate (models/blocks/decoder.h; pi0.5's action expert, openpi's GemmaRMSNorm
// with cond_dim): y = x * rsqrt(mean(x^2) + eps) * (1 + scale) + shift and the gated residual
// x + f * gate, with scale | shift | gate = dense(cond), against a double reference written from
// openpi's source (models_pytorch/transformers_replace/models/gemma/modeling_gemma.py).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "core/executor.h"
#include "models/blocks/decoder.h"
#include "op_harness.h"
#include "vlart/error.h"

using namespace vlart;
using vlart::testing::nmse;
using vlart::testing::random_tensor;

namespace {

TEST(AdaRms, NormAndGatedResidualMatchReference) {
  const int64_t B = 2, L = 5, D = 16, C = 12;
  const float eps = 1e-6f;
  std::map<std::string, Tensor> w;
  w["n.dense.weight"] = random_tensor({3 * D, C}, DType::kF32, 1, -0.3f, 0.3f);
  w["n.dense.bias"] = random_tensor({3 * D}, DType::kF32, 2, -0.2f, 0.2f);
  const Tensor x = random_tensor({B, L, D}, DType::kF32, 3, -2.f, 2.f);
  const Tensor f = random_tensor({B, L, D}, DType::kF32, 4, -1.f, 1.f);  // the branch output being gated
  const Tensor cond = random_tensor({B, C}, DType::kF32, 5, -1.f, 1.f);
  blocks::DecoderSpec s;
  s.hidden = D;
  s.rms_eps = eps;
  s.ada_cond_dim = C;
  Graph g;
  const blocks::WeightFn wf = [&](const std::string& n, const Shape& shape, bool) {
    const ValueId id = g.find(n);
    if (id != kNoValue) return id;
    EXPECT_EQ(w.at(n).shape(), shape) << n;
    return g.weight(n, w.at(n));
  };
  const ValueId xi = g.input("x", x.shape(), DType::kF32);
  const ValueId fi = g.input("f", f.shape(), DType::kF32);
  const ValueId ci = g.input("cond", cond.shape(), DType::kF32);
  const blocks::NormOut o = blocks::ada_rms_norm(g, xi, ci, "n", s, wf);
  g.mark_output(o.y, "y");
  g.mark_output(blocks::gated_residual(g, xi, fi, o.gate), "res");
  auto cpu = make_cpu_backend({2});
  Executor ex(g, {cpu.get()});
  std::memcpy(ex.input("x").raw(), x.raw(), x.nbytes());
  std::memcpy(ex.input("f").raw(), f.raw(), f.nbytes());
  std::memcpy(ex.input("cond").raw(), cond.raw(), cond.nbytes());
  ex.run();
  // Reference.
  const std::vector<float> xv = x.to_float_vector(), fv = f.to_float_vector(), cv = cond.to_float_vector();
  const std::vector<float> W = w["n.dense.weight"].to_float_vector(), bb = w["n.dense.bias"].to_float_vector();
  std::vector<float> y_ref, r_ref;
  for (int64_t b = 0; b < B; ++b) {
    std::vector<double> m(static_cast<size_t>(3 * D));
    for (int64_t o2 = 0; o2 < 3 * D; ++o2) {
      double acc = bb[static_cast<size_t>(o2)];
      for (int64_t c = 0; c < C; ++c) acc += double(W[static_cast<size_t>(o2 * C + c)]) * cv[static_cast<size_t>(b * C + c)];
      m[static_cast<size_t>(o2)] = acc;
    }
    for (int64_t l = 0; l < L; ++l) {
      const float* xr = xv.data() + (b * L + l) * D;
      double ms = 0;
      for (int64_t d = 0; d < D; ++d) ms += double(xr[d]) * xr[d];
      const double inv = 1.0 / std::sqrt(ms / D + eps);
      for (int64_t d = 0; d < D; ++d) {
        const double scale = m[static_cast<size_t>(d)], shift = m[static_cast<size_t>(D + d)],
                     gate = m[static_cast<size_t>(2 * D + d)];
        y_ref.push_back(static_cast<float>(xr[d] * inv * (1 + scale) + shift));
        r_ref.push_back(static_cast<float>(xr[d] + fv[static_cast<size_t>((b * L + l) * D + d)] * gate));
      }
    }
  }
  EXPECT_LE(nmse(ex.output("y").to_float_vector(), y_ref), 1e-10);
  EXPECT_LE(nmse(ex.output("res").to_float_vector(), r_ref), 1e-10);
  // Without ada_cond_dim the same call is the plain norm and no gate.
  blocks::DecoderSpec plain = s;
  plain.ada_cond_dim = 0;
  Graph g2;
  w["p.weight"] = random_tensor({D}, DType::kF32, 6, 0.5f, 1.5f);
  const blocks::WeightFn wf2 = [&](const std::string& n, const Shape&, bool) { return g2.weight(n, w.at(n)); };
  const blocks::NormOut po = blocks::ada_rms_norm(g2, g2.input("x", x.shape(), DType::kF32), kNoValue, "p", plain, wf2);
  EXPECT_EQ(po.gate, kNoValue);
  // And an adaptive norm without its conditioning is an error.
  EXPECT_THROW(blocks::ada_rms_norm(g2, g2.input("x2", x.shape(), DType::kF32), kNoValue, "n", s, wf2), InvalidArgument);
}

}  // namespace
