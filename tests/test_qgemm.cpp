// Quantized-weight kernels (kernels/cpu/qgemm.h) and the CPU Linear kernels built on them, against
// double-precision references.
//
// Error budgets, per scheme:
//  * int8 / int4 weight-only: the kernel computes with exactly the dequantized weights, f32
//    accumulation, so against a double product with the dequantized weights the NMSE is f32
//    rounding: bound 1e-10 (f32 out) and 2e-5 (bf16 out, one rounding to 8 bits).
//  * W8A8 (M > 16): activations are quantized per row to int8. Against an emulation that applies the
//    same per-row quantization in double, the int32 accumulation is exact and only the f32 output
//    scaling rounds: NMSE bound 1e-10. Against the float product the quantization error of
//    uniform activations is ~ (amax/127)/sqrt(12) per element, rel L2 ~ 0.4%: bound 1e-2.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <memory>
#include <random>
#include <vector>

#include "backends/cpu/cpu_backend.h"
#include "backends/cpu/gemm_onednn.h"
#include "compress/quantize.h"
#include "core/alloc_guard.h"
#include "core/graph.h"
#include "cpu/gemv.h"
#include "cpu/qgemm.h"
#include "vlart/error.h"

using namespace vlart;

namespace {

std::vector<float> uniform(size_t n, uint32_t seed, float lo = -1.f, float hi = 1.f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

double nmse(const std::vector<float>& got, const std::vector<double>& ref) {
  double num = 0, den = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    num += (got[i] - ref[i]) * (got[i] - ref[i]);
    den += ref[i] * ref[i];
  }
  return den > 0 ? num / den : num;
}

double act_ref(double v, GemvAct a) {
  switch (a) {
    case GemvAct::kNone: return v;
    case GemvAct::kRelu: return v > 0 ? v : 0;
    case GemvAct::kSilu: return v / (1 + std::exp(-v));
    case GemvAct::kGeluTanh: return 0.5 * v * (1 + std::tanh(0.7978845608028654 * (v + 0.044715 * v * v * v)));
    case GemvAct::kGeluErf: return 0.5 * v * (1 + std::erf(v / std::sqrt(2.0)));
  }
  return v;
}

// A quantized weight built with the checkpoint quantizer (compress/quantize.h), as a QuantWeight.
struct QCase {
  QuantWeight::Kind kind = QuantWeight::Kind::kInt8;
  int64_t n = 0, k = 0, group = 0;
  bool symmetric = true;
};

std::shared_ptr<QuantWeight> make_weight(const QCase& c, uint32_t seed) {
  const std::vector<float> w = uniform(static_cast<size_t>(c.n * c.k), seed, -0.5f, 0.5f);
  auto q = std::make_shared<QuantWeight>();
  q->kind = c.kind;
  q->n = c.n;
  q->k = c.k;
  q->group = c.group;
  q->symmetric = c.symmetric;
  if (c.kind == QuantWeight::Kind::kInt8) {
    compress::Int8Weight iw = compress::quantize_int8(w.data(), c.n, c.k);
    q->qweight = Tensor::empty(Shape{c.n, c.k}, DType::kI8);
    std::memcpy(q->qweight.raw(), iw.q.data(), iw.q.size());
    q->scales = Tensor::from_vector(iw.scales, Shape{c.n});
  } else {
    compress::Int4Weight iw = compress::quantize_int4(w.data(), c.n, c.k, c.group, c.symmetric);
    const int64_t g = (c.k + c.group - 1) / c.group;
    q->qweight = Tensor::empty(Shape{c.n, c.k / 2}, DType::kU8);
    std::memcpy(q->qweight.raw(), iw.packed.data(), iw.packed.size());
    q->scales = Tensor::empty(Shape{c.n, g}, DType::kF16);
    std::memcpy(q->scales.raw(), iw.scales.data(), iw.scales.size() * 2);
    if (!c.symmetric) {
      q->zeros = Tensor::empty(Shape{c.n, g}, DType::kU8);
      std::memcpy(q->zeros.raw(), iw.zeros.data(), iw.zeros.size());
    }
  }
  return q;
}

std::string describe(const QCase& c, int64_t m) {
  char b[160];
  std::snprintf(b, sizeof b, "%s m=%lld n=%lld k=%lld g=%lld %s isa=%s",
                c.kind == QuantWeight::Kind::kInt8 ? "int8" : "int4", static_cast<long long>(m),
                static_cast<long long>(c.n), static_cast<long long>(c.k), static_cast<long long>(c.group),
                c.symmetric ? "sym" : "asym", gemv_isa_name(gemv_active_isa()));
  return b;
}

// Runs the packed kernel directly; returns y (f32 or widened bf16) and checks the workspace bound.
std::vector<float> run_qgemm(const QuantWeight& q, const std::vector<float>& x, int64_t m, bool bf16,
                             const std::vector<float>* bias, GemvAct act, int threads) {
  const bool int4 = q.kind == QuantWeight::Kind::kInt4;
  const QPackedLayout L = qgemm_layout(int4 ? QWeightKind::kInt4 : QWeightKind::kInt8, q.n, q.k, q.group);
  Tensor packed = Tensor::empty(Shape{static_cast<int64_t>(L.total_bytes)}, DType::kU8);
  const std::vector<float> s = q.scales_f32();
  if (int4)
    qgemm_pack_int4(L, q.qweight.data<uint8_t>(), s.data(), q.offsets_f32().data(), packed.raw());
  else
    qgemm_pack_int8(L, q.qweight.data<int8_t>(), s.data(), packed.raw());
  std::vector<uint16_t> xb;
  if (bf16)
    for (float v : x) xb.push_back(f32_to_bf16(v));
  const int64_t wf = qgemm_work_floats(L, m);
  std::vector<float> work(static_cast<size_t>(wf) + 16 + 64, 12345.f);
  float* w0 = work.data() + (16 - (reinterpret_cast<uintptr_t>(work.data()) % 64) / 4) % 16;
  std::vector<float> y(static_cast<size_t>(m * q.n));
  std::vector<uint16_t> yb(y.size());
  QGemmProblem p;
  p.m = m;
  p.x = bf16 ? static_cast<const void*>(xb.data()) : x.data();
  p.ldx = q.k;
  p.x_bf16 = bf16;
  p.bias = bias ? bias->data() : nullptr;
  p.act = act;
  p.y = bf16 ? static_cast<void*>(yb.data()) : y.data();
  p.ldy = q.n;
  p.y_bf16 = bf16;
  p.work = w0;
  p.threads = threads;
  // A first call outside the counted scope: the OpenMP runtime creates its thread team on first use
  // (an allocation that the ASan build's interposed malloc counts); qgemm itself must not allocate.
  qgemm(L, packed.raw(), p);
  {
    alloc_guard::ArmScope guard(false);
    qgemm(L, packed.raw(), p);
    EXPECT_EQ(guard.counts().allocations, 0u) << "qgemm allocated";
  }
  for (int i = 0; i < 64; ++i)
    if (w0[wf + i] != 12345.f) {
      ADD_FAILURE() << "qgemm wrote past qgemm_work_floats";
      break;
    }
  if (bf16)
    for (size_t i = 0; i < y.size(); ++i) y[i] = bf16_to_f32(yb[i]);
  return y;
}

std::vector<double> reference(const std::vector<float>& wdq, const std::vector<float>& x, int64_t m, int64_t n,
                              int64_t k, const std::vector<float>* bias, GemvAct act) {
  std::vector<double> y(static_cast<size_t>(m * n));
  for (int64_t r = 0; r < m; ++r)
    for (int64_t c = 0; c < n; ++c) {
      double s = bias ? (*bias)[static_cast<size_t>(c)] : 0.0;
      for (int64_t i = 0; i < k; ++i) s += static_cast<double>(x[r * k + i]) * wdq[c * k + i];
      y[r * n + c] = act_ref(s, act);
    }
  return y;
}

std::vector<QCase> weight_cases() {
  using K = QuantWeight::Kind;
  return {{K::kInt8, 37, 100, 0, true},  {K::kInt8, 64, 33, 0, true},    {K::kInt4, 37, 200, 64, true},
          {K::kInt4, 48, 128, 32, false}, {K::kInt4, 17, 130, 128, true}, {K::kInt4, 33, 96, 32, true}};
}

}  // namespace

TEST(QGemm, PackUnpackGivesTheDequantizedWeight) {
  for (const QCase& c : weight_cases()) {
    auto q = make_weight(c, 11);
    const bool int4 = c.kind == QuantWeight::Kind::kInt4;
    const QPackedLayout L = qgemm_layout(int4 ? QWeightKind::kInt4 : QWeightKind::kInt8, c.n, c.k, c.group);
    Tensor packed = Tensor::empty(Shape{static_cast<int64_t>(L.total_bytes)}, DType::kU8);
    const std::vector<float> s = q->scales_f32();
    if (int4)
      qgemm_pack_int4(L, q->qweight.data<uint8_t>(), s.data(), q->offsets_f32().data(), packed.raw());
    else
      qgemm_pack_int8(L, q->qweight.data<int8_t>(), s.data(), packed.raw());
    std::vector<float> un(static_cast<size_t>(c.n * c.k));
    qgemm_unpack(L, packed.raw(), un.data());
    // The compress reference dequantizer and QuantWeight::dequantize agree with the packed form.
    EXPECT_EQ(un, q->dequantize().to_float_vector()) << describe(c, 0);
    std::vector<float> ref(un.size());
    if (int4)
      compress::dequantize_int4(q->qweight.data<uint8_t>(), q->scales.data<uint16_t>(),
                                c.symmetric ? nullptr : q->zeros.data<uint8_t>(), c.n, c.k, c.group, ref.data());
    else
      compress::dequantize_int8(q->qweight.data<int8_t>(), s.data(), c.n, c.k, ref.data());
    EXPECT_EQ(un, ref) << describe(c, 0);
  }
}

TEST(QGemm, MatchesDequantizedReferenceEveryRowCountAndIsa) {
  const GemvIsa best = gemv_active_isa();
  uint32_t seed = 100;
  int ran = 0;
  for (GemvIsa isa : {GemvIsa::kScalar, GemvIsa::kAvx2, GemvIsa::kAvx512, GemvIsa::kNeon}) {
    if (!gemv_isa_supported(isa)) {
      // Not a gtest skip: the paths this CPU has did run.
      std::printf("[ INFO ] qgemm %s: not on this CPU (best path %s), not run\n", gemv_isa_name(isa), gemv_isa_name(best));
      continue;
    }
    gemv_force_isa(isa);
    ++ran;
    for (const QCase& c : weight_cases()) {
      auto q = make_weight(c, seed++);
      const std::vector<float> wdq = q->dequantize().to_float_vector();
      for (int64_t m : {1, 2, 3, 5, 8, 13, 16, 17, 33, 50}) {
        const std::vector<float> x = uniform(static_cast<size_t>(m * c.k), seed++);
        const std::vector<float> bias = uniform(static_cast<size_t>(c.n), seed++);
        const GemvAct act = m % 3 == 0 ? GemvAct::kGeluTanh : (m % 3 == 1 ? GemvAct::kNone : GemvAct::kSilu);
        const std::vector<float> y = run_qgemm(*q, x, m, false, &bias, act, 2);
        EXPECT_LE(nmse(y, reference(wdq, x, m, c.n, c.k, &bias, act)), 1e-10) << describe(c, m);
      }
      // bf16 activations in and out: the reference uses the same bf16-rounded inputs.
      for (int64_t m : {1, 7, 20}) {
        std::vector<float> x = uniform(static_cast<size_t>(m * c.k), seed++);
        for (float& v : x) v = bf16_to_f32(f32_to_bf16(v));
        const std::vector<float> y = run_qgemm(*q, x, m, true, nullptr, GemvAct::kRelu, 1);
        EXPECT_LE(nmse(y, reference(wdq, x, m, c.n, c.k, nullptr, GemvAct::kRelu)), 2e-5) << describe(c, m) << " bf16";
      }
    }
  }
  gemv_force_isa(GemvIsa::kAuto);
  EXPECT_GE(ran, 1);
}

TEST(QGemm, ThreadCountDoesNotChangeResults) {
  QCase c{QuantWeight::Kind::kInt4, 100, 256, 64, false};
  auto q = make_weight(c, 7);
  const std::vector<float> x = uniform(static_cast<size_t>(40 * c.k), 8);
  const std::vector<float> a = run_qgemm(*q, x, 40, false, nullptr, GemvAct::kNone, 1);
  const std::vector<float> b = run_qgemm(*q, x, 40, false, nullptr, GemvAct::kNone, 2);
  EXPECT_EQ(a, b);
}

TEST(QGemm, QuantizeRowsS8) {
  const std::vector<float> x = {0.f, 0.f, 0.f, 0.f, 1.f, -2.f, 0.5f, 2.f, 0.01f, -0.01f, 0.f, 0.006f};
  std::vector<int8_t> q(12);
  std::vector<float> s(3);
  quantize_rows_s8(x.data(), false, 3, 4, 4, q.data(), s.data(), 1);
  EXPECT_EQ(s[0], 0.f);
  EXPECT_EQ(std::vector<int8_t>(q.begin(), q.begin() + 4), std::vector<int8_t>(4, 0));
  EXPECT_FLOAT_EQ(s[1], 2.f / 127.f);
  EXPECT_EQ(std::vector<int8_t>(q.begin() + 4, q.begin() + 8), (std::vector<int8_t>{64, -127, 32, 127}));
  EXPECT_FLOAT_EQ(s[2], 0.01f / 127.f);
  EXPECT_EQ(std::vector<int8_t>(q.begin() + 8, q.end()), (std::vector<int8_t>{127, -127, 0, 76}));
  // Every element is within half a step of its value.
  const std::vector<float> r = uniform(1000, 3, -3.f, 3.f);
  std::vector<int8_t> qr(1000);
  float sr = 0;
  quantize_rows_s8(r.data(), false, 1, 1000, 1000, qr.data(), &sr, 1);
  for (size_t i = 0; i < r.size(); ++i) EXPECT_LE(std::fabs(qr[i] * sr - r[i]), 0.5f * sr * 1.0001f) << i;
}

// Both code paths (AVX-512 and portable) of the per-row quantizer on row lengths with tails, bf16
// input, a NaN row, an all-zero row and a static scale that saturates; s8 and offset u8 output.
TEST(QGemm, QuantizeRowsS8EveryIsaAgrees) {
  const int64_t m = 5;
  for (int64_t k : {1, 15, 16, 17, 33, 720, 771}) {
    std::vector<float> x = uniform(static_cast<size_t>(m * k), 11, -4.f, 4.f);
    std::fill(x.begin() + k, x.begin() + 2 * k, 0.f);                  // row 1: zeros
    x[static_cast<size_t>(2 * k + k / 2)] = std::numeric_limits<float>::quiet_NaN();  // row 2: NaN
    std::vector<uint16_t> xb(x.size());
    for (size_t i = 0; i < x.size(); ++i) xb[i] = f32_to_bf16(x[i]);
    for (bool bf16 : {false, true}) {
      for (float st : {0.f, 0.01f}) {
        std::vector<std::vector<int8_t>> qs;
        std::vector<std::vector<float>> ss;
        for (GemvIsa isa : {GemvIsa::kScalar, GemvIsa::kAvx512}) {
          gemv_force_isa(isa);
          std::vector<int8_t> q(static_cast<size_t>(m * k), 99);
          std::vector<float> sc(m, -1.f);
          quantize_rows_s8(bf16 ? static_cast<const void*>(xb.data()) : x.data(), bf16, m, k, k, q.data(), sc.data(),
                           1, st);
          // The u8 form (W8A8's oneDNN operand) stores q + 128 with the same scales, NaN and zero rows
          // included (q = 0 is stored as 128).
          std::vector<int8_t> qu(static_cast<size_t>(m * k), 99);
          std::vector<float> scu(m, -1.f);
          quantize_rows_s8(bf16 ? static_cast<const void*>(xb.data()) : x.data(), bf16, m, k, k, qu.data(), scu.data(),
                           1, st, /*u8_offset=*/true);
          for (size_t i = 0; i < q.size(); ++i)
            ASSERT_EQ(static_cast<int>(static_cast<uint8_t>(qu[i])), q[i] + 128) << "isa " << static_cast<int>(isa) << " " << i;
          for (int64_t r = 0; r < m; ++r)
            ASSERT_TRUE(sc[r] == scu[r] || (std::isnan(sc[r]) && std::isnan(scu[r]))) << r;
          qs.push_back(q);
          ss.push_back(sc);
        }
        gemv_force_isa(GemvIsa::kAuto);
        SCOPED_TRACE(testing::Message() << "k " << k << " bf16 " << bf16 << " static " << st);
        EXPECT_EQ(qs[0], qs[1]);
        for (int64_t r = 0; r < m; ++r) {
          if (std::isnan(ss[0][r])) {
            EXPECT_TRUE(std::isnan(ss[1][r])) << r;
          } else {
            EXPECT_EQ(ss[0][r], ss[1][r]) << r;
          }
        }
        // Reference: round half to even of x / scale, clamped to +-127.
        for (int64_t r = 0; r < m; ++r) {
          if (st == 0.f && r == 1) {
            EXPECT_EQ(ss[1][r], 0.f);
          }
          if (r == 2) {
            EXPECT_TRUE(std::isnan(ss[1][r]));  // NaN row, per-token or static
          }
          if (std::isnan(ss[1][r]) || ss[1][r] == 0.f) continue;
          for (int64_t i = 0; i < k; ++i) {
            const double v = bf16 ? bf16_to_f32(xb[static_cast<size_t>(r * k + i)]) : x[static_cast<size_t>(r * k + i)];
            if (std::isnan(v)) continue;
            const double want = std::clamp(std::nearbyint(v * (1.0 / ss[1][r])), -127.0, 127.0);
            ASSERT_LE(std::fabs(qs[1][static_cast<size_t>(r * k + i)] - want), 1.0) << r << "," << i;
          }
        }
      }
    }
  }
}

// The W8A8 epilogue y = act(acc * row_scale + bias) on both paths against double, every activation,
// f32 and bf16 bias/output, row lengths with tails.
TEST(QGemm, RowScaleEpilogueEveryIsaAndActivation) {
  const int64_t m = 3;
  for (int64_t n : {1, 16, 37}) {
    const std::vector<float> acc = uniform(static_cast<size_t>(m * n), 21, -300.f, 300.f);
    const std::vector<float> rs = {0.01f, 0.002f, 0.f};
    const std::vector<float> bias = uniform(static_cast<size_t>(n), 22);
    std::vector<uint16_t> bias_b(bias.size());
    for (size_t i = 0; i < bias.size(); ++i) bias_b[i] = f32_to_bf16(bias[i]);
    for (GemvAct act : {GemvAct::kNone, GemvAct::kRelu, GemvAct::kSilu, GemvAct::kGeluTanh, GemvAct::kGeluErf}) {
      for (bool bf16 : {false, true}) {
        for (GemvIsa isa : {GemvIsa::kScalar, GemvIsa::kAvx512}) {
          gemv_force_isa(isa);
          std::vector<float> y(static_cast<size_t>(m * n), -7.f);
          std::vector<uint16_t> yb(static_cast<size_t>(m * n), 0);
          qgemm_row_scale_epilogue(acc.data(), n, rs.data(), m, n,
                                   bf16 ? static_cast<const void*>(bias_b.data()) : bias.data(), bf16, act,
                                   bf16 ? static_cast<void*>(yb.data()) : y.data(), n, bf16, 1);
          gemv_force_isa(GemvIsa::kAuto);
          for (int64_t r = 0; r < m; ++r) {
            for (int64_t c = 0; c < n; ++c) {
              const double b = bf16 ? bf16_to_f32(bias_b[static_cast<size_t>(c)]) : bias[static_cast<size_t>(c)];
              const double v = static_cast<double>(acc[static_cast<size_t>(r * n + c)]) * rs[static_cast<size_t>(r)] + b;
              double want = v;
              switch (act) {
                case GemvAct::kNone: break;
                case GemvAct::kRelu: want = v > 0 ? v : 0; break;
                case GemvAct::kSilu: want = v / (1 + std::exp(-v)); break;
                case GemvAct::kGeluTanh: want = 0.5 * v * (1 + std::tanh(0.7978845608028654 * (v + 0.044715 * v * v * v))); break;
                case GemvAct::kGeluErf: want = 0.5 * v * (1 + std::erf(v / std::sqrt(2.0))); break;
              }
              const size_t i = static_cast<size_t>(r * n + c);
              const double got = bf16 ? bf16_to_f32(yb[i]) : y[i];
              const double tol = (bf16 ? 4e-3 : 2e-6) * std::fabs(want) + 1e-6;
              ASSERT_LE(std::fabs(got - want), tol) << "isa " << static_cast<int>(isa) << " act "
                                                    << static_cast<int>(act) << " bf16 " << bf16 << " r " << r
                                                    << " c " << c;
            }
          }
        }
      }
    }
  }
}

// ---- through the CPU backend (Linear node with a quantized W) ----
namespace {

struct LinearRun {
  std::vector<float> y;
  bool supported = false;
};

LinearRun run_linear(const std::shared_ptr<QuantWeight>& q, const std::vector<float>& x, int64_t m, DType xdt,
                     const std::vector<float>* bias, Activation act) {
  auto be = make_cpu_backend({2});
  Graph g;
  const ValueId xi = g.input("x", Shape{m, q->k}, xdt);
  const ValueId wi = g.quant_weight("w", q);
  ValueId bi = kNoValue;
  if (bias) bi = g.weight("b", Tensor::from_vector(*bias, Shape{q->n}));
  g.mark_output(g.linear(xi, wi, bi, act));
  const Node& n = g.nodes().back();
  LinearRun r;
  r.supported = be->supports(g, n);
  if (!r.supported) return r;
  std::unique_ptr<OpKernel> k = be->prepare(g, n);
  EXPECT_TRUE(k->owns_input(1));
  Tensor xt = Tensor::from_vector(x, Shape{m, q->k});
  if (xdt == DType::kBF16) xt = xt.to(DType::kBF16);
  Tensor bt = bias ? g.value(bi).constant : Tensor();
  const Tensor* in[3] = {&xt, nullptr, bias ? &bt : nullptr};
  Tensor out = Tensor::empty(Shape{m, q->n}, xdt);
  const size_t sb = k->scratch_bytes();
  std::vector<uint8_t> buf(sb + 256 + 64, 0xA5);
  const size_t off = (64 - reinterpret_cast<uintptr_t>(buf.data()) % 64) % 64;
  KernelArgs a;
  a.inputs = in;
  a.num_inputs = 3;
  a.output = &out;
  a.scratch = sb ? buf.data() + off : nullptr;
  {
    alloc_guard::ArmScope guard(false);
    k->run(a);
    // oneDNN's per-execute argument map is the one documented exemption (alloc_guard).
    EXPECT_EQ(guard.counts().allocations, 0u) << "Linear run() allocated";
  }
  for (size_t i = off + sb; i < off + sb + 256; ++i)
    if (buf[i] != 0xA5) {
      ADD_FAILURE() << "wrote past scratch_bytes()";
      break;
    }
  r.y = out.to_float_vector();
  return r;
}

}  // namespace

TEST(QuantLinear, WeightOnlyEveryShapeThroughTheBackend) {
  uint32_t seed = 900;
  for (const QCase& c : weight_cases()) {
    auto q = make_weight(c, seed++);
    const std::vector<float> wdq = q->dequantize().to_float_vector();
    for (int64_t m : {1, 16, 17, 70}) {
      const std::vector<float> x = uniform(static_cast<size_t>(m * c.k), seed++);
      const std::vector<float> bias = uniform(static_cast<size_t>(c.n), seed++);
      LinearRun r = run_linear(q, x, m, DType::kF32, &bias, Activation::kGeluTanh);
      ASSERT_TRUE(r.supported) << describe(c, m);
      EXPECT_LE(nmse(r.y, reference(wdq, x, m, c.n, c.k, &bias, GemvAct::kGeluTanh)), 1e-10) << describe(c, m);
    }
  }
}

TEST(QuantLinear, W8A8MatchesPerTokenEmulationAndFloatWithinBudget) {
  uint32_t seed = 1900;
  for (int64_t m : {1, 16, 17, 64, 200})
    for (DType xdt : {DType::kF32, DType::kBF16}) {
      QCase c{QuantWeight::Kind::kInt8, 96, 160, 0, true};
      auto q = make_weight(c, seed++);
      q->act_int8 = true;
      std::vector<float> x = uniform(static_cast<size_t>(m * c.k), seed++, -2.f, 2.f);
      if (xdt == DType::kBF16)
        for (float& v : x) v = bf16_to_f32(f32_to_bf16(v));
      const std::vector<float> bias = uniform(static_cast<size_t>(c.n), seed++);
      LinearRun r = run_linear(q, x, m, xdt, &bias, Activation::kSilu);
      ASSERT_TRUE(r.supported);
      const std::vector<float> wdq = q->dequantize().to_float_vector();
      const std::vector<double> fl = reference(wdq, x, m, c.n, c.k, &bias, GemvAct::kSilu);
      const double bound = xdt == DType::kBF16 ? 2e-5 : 1e-10;
      if (m <= 16 || !w8a8_int8_compute_available()) {
        // Memory-bound rows run weight-only (float activations): exact up to rounding. So does
        // every M where oneDNN has no saturation-free int8 dot product (ISA capped below VNNI).
        if (m > 16) std::printf("[ INFO ] w8a8 m=%lld runs weight-only: no VNNI/AMX in oneDNN's ISA\n",
                                static_cast<long long>(m));
        EXPECT_LE(nmse(r.y, fl), bound) << "m=" << m;
        continue;
      }
      // Emulate the per-token quantization in double.
      std::vector<int8_t> qx(x.size());
      std::vector<float> sx(static_cast<size_t>(m));
      quantize_rows_s8(x.data(), false, m, c.k, c.k, qx.data(), sx.data(), 1);
      std::vector<float> xq(x.size());
      for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < c.k; ++j) xq[i * c.k + j] = static_cast<float>(qx[i * c.k + j]) * sx[i];
      EXPECT_LE(nmse(r.y, reference(wdq, xq, m, c.n, c.k, &bias, GemvAct::kSilu)), bound) << "m=" << m;
      double num = 0, den = 0;
      for (size_t i = 0; i < fl.size(); ++i) {
        num += (r.y[i] - fl[i]) * (r.y[i] - fl[i]);
        den += fl[i] * fl[i];
      }
      const double rel = std::sqrt(num / den);
      EXPECT_LE(rel, 1e-2) << "m=" << m;
      EXPECT_GT(rel, 0.0) << "activations were not quantized at m=" << m;
    }
}

TEST(QuantLinear, OtherOpsAndBackendsRejectAQuantizedWeight) {
  auto q = make_weight({QuantWeight::Kind::kInt8, 8, 16, 0, true}, 5);
  auto be = make_cpu_backend({1});
  Graph g;
  const ValueId a = g.input("a", Shape{4, 16}, DType::kF32);
  const ValueId w = g.quant_weight("w", q);
  g.mark_output(g.matmul(a, w, true));
  EXPECT_FALSE(be->supports(g, g.nodes().back()));
  // A weight without stored tensors is refused when the graph is built.
  auto empty = std::make_shared<QuantWeight>();
  EXPECT_THROW(g.quant_weight("bad", empty), InvalidArgument);
  // An odd-k int4 weight is not runnable (the format never produces one).
  auto odd = make_weight({QuantWeight::Kind::kInt4, 8, 64, 32, true}, 6);
  odd->k = 63;
  Graph g2;
  const ValueId x2 = g2.input("x", Shape{2, 63}, DType::kF32);
  g2.mark_output(g2.linear(x2, g2.quant_weight("w", odd)));
  EXPECT_FALSE(be->supports(g2, g2.nodes().back()));
}

// Activation-aware weights: the stored values quantize w * in_scale (per input channel) and the
// kernel divides x by in_scale while transposing; the product equals x . dequant^T with the scaled
// dequantization, on both paths and every row count.
TEST(QGemm, InputScalesEveryRowCountAndIsa) {
  uint32_t seed = 4000;
  for (GemvIsa isa : {GemvIsa::kScalar, GemvIsa::kAvx2, GemvIsa::kAvx512, GemvIsa::kNeon}) {
    if (!gemv_isa_supported(isa)) continue;
    gemv_force_isa(isa);
    for (const QCase& c : weight_cases()) {
      auto q = make_weight(c, seed++);
      q->input_scales = Tensor::from_vector(uniform(static_cast<size_t>(c.k), seed++, 0.25f, 4.f), Shape{c.k});
      const std::vector<float> wdq = q->dequantize().to_float_vector();
      for (int64_t m : {1, 5, 16, 40}) {
        const std::vector<float> x = uniform(static_cast<size_t>(m * c.k), seed++);
        LinearRun r = run_linear(q, x, m, DType::kF32, nullptr, Activation::kNone);
        ASSERT_TRUE(r.supported);
        EXPECT_LE(nmse(r.y, reference(wdq, x, m, c.n, c.k, nullptr, GemvAct::kNone)), 1e-10) << describe(c, m);
      }
    }
  }
  gemv_force_isa(GemvIsa::kAuto);
  // The scales divide the dequantized weight.
  auto q = make_weight({QuantWeight::Kind::kInt8, 4, 6, 0, true}, 9);
  const std::vector<float> plain = q->dequantize().to_float_vector();
  q->input_scales = Tensor::from_vector({1, 2, 4, 8, 0.5f, 1}, Shape{6});
  const std::vector<float> scaled = q->dequantize().to_float_vector();
  const float div[6] = {1, 2, 4, 8, 0.5f, 1};
  for (int r = 0; r < 4; ++r)
    for (int c = 0; c < 6; ++c) EXPECT_FLOAT_EQ(scaled[r * 6 + c], plain[r * 6 + c] / div[c]);
}

// W8A8 with a calibrated static activation scale: every row is quantized with that scale
// (saturating beyond it) instead of its own max.
// Static scale: f32 activations run the whole epilogue inside oneDNN (scales, bias divided by
// them, activation post-op); bf16 activations the separate epilogue. Both against the emulation,
// with and without bias, every activation.
TEST(QuantLinear, W8A8StaticScaleMatchesEmulation) {
  QCase c{QuantWeight::Kind::kInt8, 80, 128, 0, true};
  auto q = make_weight(c, 77);
  q->act_int8 = true;
  q->act_scale = 1.5f / 127.f;  // rows reach |x| = 2: the largest values saturate
  const int64_t m = 48;
  const std::vector<float> x = uniform(static_cast<size_t>(m * c.k), 78, -2.f, 2.f);
  const std::vector<float> bias = uniform(static_cast<size_t>(c.n), 79, -3.f, 3.f);
  if (!w8a8_int8_compute_available()) {
    std::printf("[ SKIPPED ] static w8a8 scale: no VNNI/AMX in oneDNN's ISA, w8a8 runs weight-only\n");
    return;
  }
  std::vector<float> xq(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    const float v = std::nearbyint(x[i] / q->act_scale);
    xq[i] = std::clamp(v, -127.f, 127.f) * q->act_scale;
  }
  const std::vector<float> wdq = q->dequantize().to_float_vector();
  const std::pair<Activation, GemvAct> acts[] = {{Activation::kNone, GemvAct::kNone},
                                                 {Activation::kRelu, GemvAct::kRelu},
                                                 {Activation::kSilu, GemvAct::kSilu},
                                                 {Activation::kGeluTanh, GemvAct::kGeluTanh},
                                                 {Activation::kGeluErf, GemvAct::kGeluErf}};
  for (DType xdt : {DType::kF32, DType::kBF16}) {
    for (bool with_bias : {false, true}) {
      for (const auto& [act, gact] : acts) {
        SCOPED_TRACE(::testing::Message() << dtype_name(xdt) << " bias " << with_bias << " act " << static_cast<int>(act));
        // bf16 inputs: the reference sees the same bf16-rounded x before quantization.
        std::vector<float> xin = x, xqr = xq;
        if (xdt == DType::kBF16) {
          for (size_t i = 0; i < x.size(); ++i) {
            xin[i] = bf16_to_f32(f32_to_bf16(x[i]));
            xqr[i] = std::clamp(std::nearbyint(xin[i] / q->act_scale), -127.f, 127.f) * q->act_scale;
          }
        }
        LinearRun r = run_linear(q, xin, m, xdt, with_bias ? &bias : nullptr, act);
        ASSERT_TRUE(r.supported);
        const double budget = xdt == DType::kF32 ? 1e-10 : 2e-5;  // bf16 output rounding
        EXPECT_LE(nmse(r.y, reference(wdq, xqr, m, c.n, c.k, with_bias ? &bias : nullptr, gact)), budget);
      }
    }
  }
}
