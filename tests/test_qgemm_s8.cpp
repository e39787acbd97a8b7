// The exact int8 GEMM for AVX2 / AVX-VNNI CPUs (kernels/cpu/qgemm_s8.h) against scalar references:
// int32 sums bit-exact on full-range int8 (extremes included, ragged m / n / k, every layout), the
// activation quantization identical to quantize_rows_s8, and the fused epilogue (row x weight
// scale, bias, every activation, f32 / bf16 output, masked tails) within f32 rounding.
// kAvxVnni runs only on CPUs with AVX-VNNI; its layout and compensation run everywhere through
// kAvx2VnniEmu (same code, vpdpbusd emulated exactly).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <random>
#include <vector>

#include "cpu/qgemm.h"
#include "cpu/qgemm_s8.h"
#include "vlart/dtype.h"

using namespace vlart;

namespace {

std::vector<S8GemmIsa> isas() {
  static const std::vector<S8GemmIsa> v = [] {
    std::vector<S8GemmIsa> r;
    for (S8GemmIsa i : {S8GemmIsa::kAvx2, S8GemmIsa::kAvx2VnniEmu, S8GemmIsa::kAvxVnni})
      if (s8gemm_isa_supported(i))
        r.push_back(i);
      else
        std::printf("[ INFO ] s8gemm %s: not supported by this CPU, not tested\n", s8gemm_isa_name(i));
    return r;
  }();
  return v;
}

struct Aligned {
  std::vector<uint8_t> raw;
  uint8_t* p = nullptr;
  size_t n = 0;
  explicit Aligned(size_t bytes, uint8_t fill = 0) : raw(bytes + 64 + 256, fill), n(bytes) {
    p = raw.data() + (64 - reinterpret_cast<uintptr_t>(raw.data()) % 64) % 64;
  }
  // The 256 bytes after the requested size were not written.
  bool tail_intact(uint8_t fill) const {
    for (size_t i = 0; i < 256; ++i)
      if (p[n + i] != fill) return false;
    return true;
  }
};

std::vector<int8_t> random_s8(size_t count, uint32_t seed, int lo, int hi) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> d(lo, hi);
  std::vector<int8_t> v(count);
  for (auto& x : v) x = static_cast<int8_t>(d(rng));
  return v;
}

std::vector<float> uniform(size_t n, uint32_t seed, float lo = -1.f, float hi = 1.f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

// The packed weights of q [n, k] with scales (1 by default) for isa.
struct Packed {
  S8GemmLayout L;
  Aligned buf;
  Packed(S8GemmIsa isa, const std::vector<int8_t>& q, int64_t n, int64_t k, const std::vector<float>* scales = nullptr)
      : L(s8gemm_layout(isa, n, k)), buf(L.total_bytes) {
    std::vector<float> ones(static_cast<size_t>(n), 1.f);
    s8gemm_pack(L, q.data(), scales ? scales->data() : ones.data(), buf.p);
  }
};

// Runs the problem with a scratch of exactly s8gemm_scratch_bytes and checks nothing past it changed.
void run(const S8GemmLayout& L, const void* packed, const S8GemmProblem& p) {
  const size_t sb = s8gemm_scratch_bytes(L, p.m);
  Aligned scratch(sb, 0x5A);
  s8gemm(L, packed, p, scratch.p);
  EXPECT_TRUE(scratch.tail_intact(0x5A)) << "wrote past s8gemm_scratch_bytes()";
}

std::vector<int64_t> ref_s32(const std::vector<int8_t>& a, const std::vector<int8_t>& w, int64_t m, int64_t n,
                             int64_t k) {
  std::vector<int64_t> c(static_cast<size_t>(m * n));
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      int64_t s = 0;
      for (int64_t t = 0; t < k; ++t) s += int64_t{a[i * k + t]} * int64_t{w[j * k + t]};
      c[i * n + j] = s;
    }
  return c;
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

// Checks the int32 sums of a [m, k] x w [n, k]^T for every isa and 1 / 2 threads; output rows have
// stride n + 3 and the gaps must stay untouched.
void expect_exact(const std::vector<int8_t>& a, const std::vector<int8_t>& w, int64_t m, int64_t n, int64_t k) {
  const std::vector<int64_t> ref = ref_s32(a, w, m, n, k);
  for (S8GemmIsa isa : isas()) {
    Packed pk(isa, w, n, k);
    for (int threads : {1, 2}) {
      const int64_t ldy = n + 3;
      std::vector<int32_t> y(static_cast<size_t>(m * ldy), 0x7eadbeef);
      S8GemmProblem p;
      p.m = m;
      p.xq = a.data();
      p.ldx = k;
      p.y_s32 = y.data();
      p.ldy = ldy;
      p.threads = threads;
      run(pk.L, pk.buf.p, p);
      int bad = 0;
      for (int64_t i = 0; i < m && bad < 5; ++i) {
        for (int64_t j = 0; j < n && bad < 5; ++j)
          if (y[i * ldy + j] != ref[i * n + j]) {
            ADD_FAILURE() << s8gemm_isa_name(isa) << " m=" << m << " n=" << n << " k=" << k << " thr=" << threads
                          << " at (" << i << ", " << j << "): " << y[i * ldy + j] << " != " << ref[i * n + j];
            ++bad;
          }
        for (int64_t j = n; j < ldy; ++j)
          if (y[i * ldy + j] != 0x7eadbeef) {
            ADD_FAILURE() << s8gemm_isa_name(isa) << " wrote outside the row at (" << i << ", " << j << ")";
            ++bad;
          }
      }
    }
  }
}

}  // namespace

TEST(S8Gemm, ExactInt32RaggedShapesEveryIsa) {
  ASSERT_NE(s8gemm_best_isa(), S8GemmIsa::kNone) << "this x86 test host has no AVX2";
  uint32_t seed = 1;
  for (int64_t m : {1, 3, 4, 5, 17, 38})
    for (int64_t n : {1, 7, 16, 17, 40})
      for (int64_t k : {1, 2, 3, 5, 8, 31, 33, 130}) {
        // Activations as the quantizer makes them ([-127, 127]); weights the full int8 range.
        const std::vector<int8_t> a = random_s8(static_cast<size_t>(m * k), seed++, -127, 127);
        const std::vector<int8_t> w = random_s8(static_cast<size_t>(n * k), seed++, -128, 127);
        expect_exact(a, w, m, n, k);
      }
  // Long k: several K blocks with partial int32 sums kept between them.
  for (int64_t m : {5, 38})
    for (int64_t n : {17, 40})
      for (int64_t k : {600, 1100, 2333}) {
        const std::vector<int8_t> a = random_s8(static_cast<size_t>(m * k), seed++, -127, 127);
        const std::vector<int8_t> w = random_s8(static_cast<size_t>(n * k), seed++, -128, 127);
        expect_exact(a, w, m, n, k);
      }
}

// Extremes: sums as large as int8 allows at a long k, every sign combination. A 16-bit pair sum
// (vpmaddubsw) would saturate here at 32767 per pair.
TEST(S8Gemm, ExactAtTheInt8Extremes) {
  const int64_t m = 8, n = 24, k = 2051;
  std::vector<int8_t> a(static_cast<size_t>(m * k)), w(static_cast<size_t>(n * k));
  for (int64_t i = 0; i < m; ++i)
    for (int64_t t = 0; t < k; ++t) a[i * k + t] = static_cast<int8_t>(i % 2 ? -127 : 127);
  for (int64_t j = 0; j < n; ++j)
    for (int64_t t = 0; t < k; ++t) {
      const int v = j % 3 == 0 ? -128 : j % 3 == 1 ? 127 : (t % 2 ? -128 : 127);
      w[j * k + t] = static_cast<int8_t>(v);
    }
  // One row alternating extremes against the alternating column.
  for (int64_t t = 0; t < k; ++t) a[5 * k + t] = static_cast<int8_t>(t % 2 ? -127 : 127);
  expect_exact(a, w, m, n, k);
}

// x quantized inside s8gemm (per row, static scale, f32 and bf16 x) gives the same int8 values and
// row scales as quantize_rows_s8: the raw sums equal those of quantize_rows_s8's output.
TEST(S8Gemm, QuantizationMatchesQuantizeRowsS8) {
  uint32_t seed = 300;
  for (S8GemmIsa isa : isas())
    for (int64_t k : {5, 64, 77})
      for (float static_scale : {0.f, 1.5f / 127.f})
        for (bool bf16 : {false, true}) {
          const int64_t m = 21, n = 19;
          std::vector<float> x = uniform(static_cast<size_t>(m * k), seed++, -2.f, 2.f);
          for (int64_t t = 0; t < k; ++t) x[3 * k + t] = 0.f;  // an all-zero row
          x[4 * k + k / 2] = 60.f;                           // a row dominated by one value
          std::vector<uint16_t> xb(x.size());
          for (size_t i = 0; i < x.size(); ++i) {
            xb[i] = f32_to_bf16(x[i]);
            if (bf16) x[i] = bf16_to_f32(xb[i]);
          }
          std::vector<int8_t> q(x.size());
          std::vector<float> qs(static_cast<size_t>(m));
          quantize_rows_s8(x.data(), false, m, k, k, q.data(), qs.data(), 1, static_scale);
          const std::vector<int8_t> w = random_s8(static_cast<size_t>(n * k), seed++, -127, 127);
          const std::vector<int64_t> ref = ref_s32(q, w, m, n, k);
          Packed pk(isa, w, n, k);
          std::vector<int32_t> y(static_cast<size_t>(m * n));
          S8GemmProblem p;
          p.m = m;
          p.x = bf16 ? static_cast<const void*>(xb.data()) : x.data();
          p.x_bf16 = bf16;
          p.ldx = k;
          p.static_scale = static_scale;
          p.y_s32 = y.data();
          p.ldy = n;
          p.threads = 2;
          run(pk.L, pk.buf.p, p);
          for (size_t i = 0; i < ref.size(); ++i)
            ASSERT_EQ(y[i], ref[i]) << s8gemm_isa_name(isa) << " k=" << k << " static " << static_scale << " bf16 "
                                    << bf16 << " at " << i;
        }
}

// The fused epilogue: y = act(sum * w_scale[c] * row_scale[r] + bias[c]) for every activation, with
// and without bias (f32 / bf16), f32 / bf16 output, ragged n, row stride ldy > n (gaps untouched).
TEST(S8Gemm, EpilogueEveryActivationBiasAndOutputDtype) {
  for (const int64_t k : {45, 1500}) {  // one K block, several
  const int64_t m = 23, n = 37, ldy = n + 5;
  const std::vector<int8_t> a = random_s8(static_cast<size_t>(m * k), 11, -127, 127);
  const std::vector<int8_t> w = random_s8(static_cast<size_t>(n * k), 12, -127, 127);
  const std::vector<float> ws = uniform(static_cast<size_t>(n), 13, 1e-4f, 2e-3f * 45.f / static_cast<float>(k));
  const std::vector<float> rs = uniform(static_cast<size_t>(m), 14, 1e-3f, 2e-2f);
  std::vector<float> bias = uniform(static_cast<size_t>(n), 15, -2.f, 2.f);
  std::vector<uint16_t> bias_b(bias.size());
  for (size_t i = 0; i < bias.size(); ++i) {
    bias_b[i] = f32_to_bf16(bias[i]);
    bias[i] = bf16_to_f32(bias_b[i]);  // the same values in both dtypes
  }
  const std::vector<int64_t> acc = ref_s32(a, w, m, n, k);
  for (S8GemmIsa isa : isas()) {
    Packed pk(isa, w, n, k, &ws);
    for (GemvAct act : {GemvAct::kNone, GemvAct::kRelu, GemvAct::kSilu, GemvAct::kGeluTanh, GemvAct::kGeluErf})
      for (int bias_mode : {0, 1, 2})  // none, f32, bf16
        for (bool y_bf16 : {false, true}) {
          SCOPED_TRACE(::testing::Message() << s8gemm_isa_name(isa) << " act " << static_cast<int>(act) << " bias "
                                            << bias_mode << " y_bf16 " << y_bf16);
          std::vector<float> yf(static_cast<size_t>(m * ldy), -777.f);
          std::vector<uint16_t> yb(static_cast<size_t>(m * ldy), 0xBEEF);
          S8GemmProblem p;
          p.m = m;
          p.xq = a.data();
          p.xq_scales = rs.data();
          p.ldx = k;
          p.bias = bias_mode == 0 ? nullptr : bias_mode == 1 ? static_cast<const void*>(bias.data()) : bias_b.data();
          p.bias_bf16 = bias_mode == 2;
          p.act = act;
          p.y = y_bf16 ? static_cast<void*>(yb.data()) : yf.data();
          p.ldy = ldy;
          p.y_bf16 = y_bf16;
          p.threads = 2;
          run(pk.L, pk.buf.p, p);
          double num = 0, den = 0;
          for (int64_t i = 0; i < m; ++i) {
            for (int64_t j = 0; j < n; ++j) {
              const double pre = static_cast<double>(acc[i * n + j]) * ws[j] * rs[i] + (bias_mode ? bias[j] : 0.0);
              const double ref = act_ref(pre, act);
              const double got = y_bf16 ? bf16_to_f32(yb[i * ldy + j]) : yf[i * ldy + j];
              num += (got - ref) * (got - ref);
              den += ref * ref;
            }
            for (int64_t j = n; j < ldy; ++j) {
              if (y_bf16)
                ASSERT_EQ(yb[i * ldy + j], 0xBEEF) << "row gap written at (" << i << ", " << j << ")";
              else
                ASSERT_EQ(yf[i * ldy + j], -777.f) << "row gap written at (" << i << ", " << j << ")";
            }
          }
          EXPECT_LE(num / den, y_bf16 ? 2e-5 : 1e-10);
        }
  }
  }
}

// Rows that int8 cannot represent follow quantize_rows_s8: NaN in x -> a NaN output row; an
// all-zero row -> act(bias); the other rows are unaffected.
TEST(S8Gemm, NanAndZeroRows) {
  const int64_t m = 9, n = 20, k = 40;
  std::vector<float> x = uniform(static_cast<size_t>(m * k), 21);
  x[2 * k + 7] = std::numeric_limits<float>::quiet_NaN();
  for (int64_t t = 0; t < k; ++t) x[5 * k + t] = 0.f;
  const std::vector<int8_t> w = random_s8(static_cast<size_t>(n * k), 22, -127, 127);
  const std::vector<float> ws(static_cast<size_t>(n), 0.01f);
  const std::vector<float> bias = uniform(static_cast<size_t>(n), 23);
  for (S8GemmIsa isa : isas()) {
    Packed pk(isa, w, n, k, &ws);
    std::vector<float> y(static_cast<size_t>(m * n));
    S8GemmProblem p;
    p.m = m;
    p.x = x.data();
    p.ldx = k;
    p.bias = bias.data();
    p.y = y.data();
    p.ldy = n;
    run(pk.L, pk.buf.p, p);
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) {
        const float v = y[i * n + j];
        if (i == 2)
          EXPECT_TRUE(std::isnan(v)) << s8gemm_isa_name(isa) << " (" << i << ", " << j << ")";
        else if (i == 5)
          EXPECT_EQ(v, bias[j]) << s8gemm_isa_name(isa) << " (" << i << ", " << j << ")";
        else
          EXPECT_TRUE(std::isfinite(v));
      }
  }
}
