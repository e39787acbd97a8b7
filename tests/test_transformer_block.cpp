// Integration: a Llama-style decoder block (the SmolVLA prefix layer shape, scaled down) built as a
// graph, run by the Executor on the CPU backend, checked against a naive reference written here, and
// run with the allocation guard armed (zero vlart allocations after construction).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>

#include "core/alloc_guard.h"
#include "core/executor.h"
#include "op_harness.h"

using namespace vlart;

namespace {

struct BlockWeights {
  int64_t d, hq, hkv, hd, ffn;
  Tensor ln1, ln2, wq, wk, wv, wo, wg, wu, wd;
};

BlockWeights make_weights(int64_t d, int64_t hq, int64_t hkv, int64_t hd, int64_t ffn, DType wdt) {
  BlockWeights w{d, hq, hkv, hd, ffn, {}, {}, {}, {}, {}, {}, {}, {}, {}};
  uint32_t s = 100;
  const float sc = 1.f / std::sqrt(static_cast<float>(d));
  w.ln1 = vlart::testing::random_tensor({d}, DType::kF32, s++, 0.5f, 1.5f);
  w.ln2 = vlart::testing::random_tensor({d}, DType::kF32, s++, 0.5f, 1.5f);
  w.wq = vlart::testing::random_tensor({hq * hd, d}, wdt, s++, -sc, sc);
  w.wk = vlart::testing::random_tensor({hkv * hd, d}, wdt, s++, -sc, sc);
  w.wv = vlart::testing::random_tensor({hkv * hd, d}, wdt, s++, -sc, sc);
  w.wo = vlart::testing::random_tensor({d, hq * hd}, wdt, s++, -sc, sc);
  w.wg = vlart::testing::random_tensor({ffn, d}, wdt, s++, -sc, sc);
  w.wu = vlart::testing::random_tensor({ffn, d}, wdt, s++, -sc, sc);
  w.wd = vlart::testing::random_tensor({d, ffn}, wdt, s++, -sc, sc);
  return w;
}

// x: [1, L, d]; pos: [1, L] i64; mask: [1, L, L] bool.
Graph build_block(const BlockWeights& w, int64_t L, DType act) {
  Graph g;
  ValueId x = g.input("x", {1, L, w.d}, act);
  ValueId pos = g.input("pos", {1, L}, DType::kI64);
  ValueId mask = g.input("mask", {1, L, L}, DType::kBool);
  ValueId h = g.rms_norm(x, g.weight("ln1", w.ln1), 1e-5f);
  ValueId q = g.reshape(g.linear(h, g.weight("wq", w.wq)), {1, L, w.hq, w.hd});
  ValueId k = g.reshape(g.linear(h, g.weight("wk", w.wk)), {1, L, w.hkv, w.hd});
  ValueId v = g.reshape(g.linear(h, g.weight("wv", w.wv)), {1, L, w.hkv, w.hd});
  q = g.rope(q, pos, 10000.f);
  k = g.rope(k, pos, 10000.f);
  ValueId a = g.attention(q, k, v, mask);
  a = g.reshape(a, {1, L, w.hq * w.hd});
  ValueId x1 = g.add(x, g.linear(a, g.weight("wo", w.wo)));
  ValueId h2 = g.rms_norm(x1, g.weight("ln2", w.ln2), 1e-5f);
  ValueId m = g.swiglu(g.linear(h2, g.weight("wg", w.wg)), g.linear(h2, g.weight("wu", w.wu)));
  ValueId out = g.add(x1, g.linear(m, g.weight("wd", w.wd)));
  g.mark_output(out);
  return g;
}

std::vector<double> matvec_rows(const std::vector<double>& x, int64_t rows, int64_t in, const std::vector<float>& W,
                                int64_t out) {
  std::vector<double> y(static_cast<size_t>(rows * out));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t o = 0; o < out; ++o) {
      double acc = 0;
      for (int64_t i = 0; i < in; ++i) acc += x[static_cast<size_t>(r * in + i)] * W[static_cast<size_t>(o * in + i)];
      y[static_cast<size_t>(r * out + o)] = acc;
    }
  return y;
}

std::vector<float> reference_block(const BlockWeights& w, int64_t L, const std::vector<float>& xin,
                                   const std::vector<int64_t>& pos, const std::vector<uint8_t>& mask) {
  const int64_t d = w.d, hd = w.hd;
  auto rms = [&](const std::vector<double>& x, const std::vector<float>& g) {
    std::vector<double> y(x.size());
    for (int64_t r = 0; r < L; ++r) {
      double ss = 0;
      for (int64_t i = 0; i < d; ++i) ss += x[static_cast<size_t>(r * d + i)] * x[static_cast<size_t>(r * d + i)];
      const double inv = 1.0 / std::sqrt(ss / static_cast<double>(d) + 1e-5);
      for (int64_t i = 0; i < d; ++i) y[static_cast<size_t>(r * d + i)] = x[static_cast<size_t>(r * d + i)] * inv * g[static_cast<size_t>(i)];
    }
    return y;
  };
  auto rope = [&](std::vector<double>& t, int64_t heads) {
    for (int64_t l = 0; l < L; ++l)
      for (int64_t h = 0; h < heads; ++h) {
        double* p = &t[static_cast<size_t>((l * heads + h) * hd)];
        for (int64_t i = 0; i < hd / 2; ++i) {
          const double ts = std::pow(10000.0, 2.0 * static_cast<double>(i) / static_cast<double>(hd));
          const double r = static_cast<double>(pos[static_cast<size_t>(l)]) / ts;
          const double x1 = p[i], x2 = p[i + hd / 2];
          p[i] = x1 * std::cos(r) - x2 * std::sin(r);
          p[i + hd / 2] = x2 * std::cos(r) + x1 * std::sin(r);
        }
      }
  };
  std::vector<double> x(xin.begin(), xin.end());
  std::vector<double> h = rms(x, w.ln1.to_float_vector());
  std::vector<double> q = matvec_rows(h, L, d, w.wq.to_float_vector(), w.hq * hd);
  std::vector<double> k = matvec_rows(h, L, d, w.wk.to_float_vector(), w.hkv * hd);
  std::vector<double> v = matvec_rows(h, L, d, w.wv.to_float_vector(), w.hkv * hd);
  rope(q, w.hq);
  rope(k, w.hkv);
  std::vector<double> att(static_cast<size_t>(L * w.hq * hd), 0.0);
  const int64_t group = w.hq / w.hkv;
  for (int64_t hh = 0; hh < w.hq; ++hh)
    for (int64_t i = 0; i < L; ++i) {
      std::vector<double> s(static_cast<size_t>(L), -INFINITY);
      double mx = -INFINITY;
      for (int64_t j = 0; j < L; ++j) {
        if (!mask[static_cast<size_t>(i * L + j)]) continue;
        double dot = 0;
        for (int64_t e = 0; e < hd; ++e)
          dot += q[static_cast<size_t>((i * w.hq + hh) * hd + e)] * k[static_cast<size_t>((j * w.hkv + hh / group) * hd + e)];
        s[static_cast<size_t>(j)] = dot / std::sqrt(static_cast<double>(hd));
        mx = std::max(mx, s[static_cast<size_t>(j)]);
      }
      double sum = 0;
      for (int64_t j = 0; j < L; ++j)
        if (mask[static_cast<size_t>(i * L + j)]) sum += std::exp(s[static_cast<size_t>(j)] - mx);
      for (int64_t j = 0; j < L; ++j) {
        if (!mask[static_cast<size_t>(i * L + j)]) continue;
        const double p = std::exp(s[static_cast<size_t>(j)] - mx) / sum;
        for (int64_t e = 0; e < hd; ++e)
          att[static_cast<size_t>((i * w.hq + hh) * hd + e)] += p * v[static_cast<size_t>((j * w.hkv + hh / group) * hd + e)];
      }
    }
  std::vector<double> o = matvec_rows(att, L, w.hq * hd, w.wo.to_float_vector(), d);
  for (size_t i = 0; i < x.size(); ++i) x[i] += o[i];
  std::vector<double> h2 = rms(x, w.ln2.to_float_vector());
  std::vector<double> gt = matvec_rows(h2, L, d, w.wg.to_float_vector(), w.ffn);
  std::vector<double> up = matvec_rows(h2, L, d, w.wu.to_float_vector(), w.ffn);
  for (size_t i = 0; i < gt.size(); ++i) gt[i] = gt[i] / (1.0 + std::exp(-gt[i])) * up[i];
  std::vector<double> dn = matvec_rows(gt, L, w.ffn, w.wd.to_float_vector(), d);
  std::vector<float> out(x.size());
  for (size_t i = 0; i < x.size(); ++i) out[i] = static_cast<float>(x[i] + dn[i]);
  return out;
}

struct Inputs {
  std::vector<float> x;
  std::vector<int64_t> pos;
  std::vector<uint8_t> mask;
};

// Prefix-style inputs: the last `pad` tokens are padding (masked as keys), positions = cumsum(valid)-1,
// and the last valid token is a "state" token only it may attend to.
Inputs make_inputs(int64_t L, int64_t d, int64_t pad) {
  Inputs in;
  std::mt19937 rng(3);
  std::normal_distribution<float> nd;
  in.x.resize(static_cast<size_t>(L * d));
  for (auto& v : in.x) v = nd(rng);
  int64_t p = -1;
  for (int64_t l = 0; l < L; ++l) {
    if (l < L - pad) ++p;
    in.pos.push_back(std::max<int64_t>(p, 0));
  }
  const int64_t state = L - pad - 1;
  for (int64_t i = 0; i < L; ++i)
    for (int64_t j = 0; j < L; ++j) {
      bool ok = j < L - pad && (j != state || i == state);
      in.mask.push_back(ok ? 1 : 0);
    }
  return in;
}

void fill(Executor& ex, const Inputs& in, DType act) {
  Tensor xt = Tensor::from_vector(in.x, ex.input("x").shape());
  if (act != DType::kF32) xt = xt.to(act);
  std::memcpy(ex.input("x").raw(), xt.raw(), xt.nbytes());
  std::memcpy(ex.input("pos").raw(), in.pos.data(), in.pos.size() * 8);
  std::memcpy(ex.input("mask").raw(), in.mask.data(), in.mask.size());
}

}  // namespace

TEST(TransformerBlock, F32MatchesNaiveReferenceWithoutAllocating) {
  const int64_t L = 37, d = 96, hq = 6, hkv = 2, hd = 16, ffn = 160;
  BlockWeights w = make_weights(d, hq, hkv, hd, ffn, DType::kF32);
  Graph g = build_block(w, L, DType::kF32);
  auto cpu = make_cpu_backend({2});
  ExecutorOptions o;
  o.forbid_allocations_in_run = true;
  Executor ex(g, {cpu.get()}, o);
  Inputs in = make_inputs(L, d, 5);
  fill(ex, in, DType::kF32);
  ex.run();
  ex.run();
  EXPECT_EQ(ex.last_run_allocations(), 0u);
  RecordProperty("onednn_exempt_allocations", static_cast<int>(ex.last_run_exempt_allocations()));
  const auto ref = reference_block(w, L, in.x, in.pos, in.mask);
  const auto got = ex.output(0).to_float_vector();
  EXPECT_LT(vlart::testing::nmse(got, ref), 1e-9);
  EXPECT_LT(ex.arena_bytes(0), ex.naive_bytes(0));
}

TEST(TransformerBlock, Bf16WeightsAndActivationsStayClose) {
  const int64_t L = 20, d = 64, hq = 4, hkv = 1, hd = 16, ffn = 128;
  BlockWeights w = make_weights(d, hq, hkv, hd, ffn, DType::kBF16);
  Graph g = build_block(w, L, DType::kBF16);
  auto cpu = make_cpu_backend({2});
  Executor ex(g, {cpu.get()});
  Inputs in = make_inputs(L, d, 3);
  fill(ex, in, DType::kBF16);
  ex.run();
  // Reference in double from the bf16-rounded weights and input.
  std::vector<float> xr = Tensor::from_vector(in.x, {1, L, d}).to(DType::kBF16).to_float_vector();
  const auto ref = reference_block(w, L, xr, in.pos, in.mask);
  const auto got = ex.output(0).to_float_vector();
  // bf16 activations between ops carry ~2^-9 relative rounding per op; ~10 ops in the chain.
  EXPECT_LT(vlart::testing::nmse(got, ref), 1e-4);
}
