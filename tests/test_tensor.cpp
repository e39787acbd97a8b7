#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "vlart/error.h"
#include "vlart/tensor.h"

using namespace vlart;

TEST(DType, TraitsCoverEveryType) {
  for (int i = 0; i < static_cast<int>(DType::kCount); ++i) {
    const auto& tr = dtype_traits(static_cast<DType>(i));
    EXPECT_NE(tr.name, nullptr);
    EXPECT_GE(tr.block_size, 1);
    EXPECT_GT(tr.block_bytes, 0u);
    EXPECT_NE(tr.to_float, nullptr);
    DType back;
    ASSERT_TRUE(dtype_from_name(tr.name, &back));
    EXPECT_EQ(static_cast<int>(back), i);
  }
  EXPECT_EQ(dtype_nbytes(DType::kQ4G32, 64), 36u);
  EXPECT_EQ(dtype_nbytes(DType::kQ4ZG128, 256), 136u);
  EXPECT_THROW(dtype_nbytes(DType::kQ8G32, 33), InvalidArgument);
}

TEST(DType, HalfConversionsRoundTrip) {
  // Every finite f16 pattern survives f16 -> f32 -> f16.
  for (uint32_t h = 0; h < 0x10000; ++h) {
    if ((h & 0x7c00) == 0x7c00) continue;
    EXPECT_EQ(f32_to_f16(f16_to_f32(static_cast<uint16_t>(h))), h) << std::hex << h;
  }
  EXPECT_EQ(f32_to_bf16(1.0f), 0x3f80);
  EXPECT_EQ(bf16_to_f32(0x3f80), 1.0f);
  EXPECT_EQ(f32_to_bf16(1.00390625f), 0x3f80);  // tie rounds to even
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(NAN))));
  EXPECT_EQ(f16_to_f32(f32_to_f16(65504.f)), 65504.f);
  EXPECT_TRUE(std::isinf(f16_to_f32(f32_to_f16(1e6f))));
}

TEST(DType, QuantizedBlocksWithinBudget) {
  std::mt19937 rng(1);
  std::normal_distribution<float> nd;
  std::vector<float> x(1024);
  for (auto& v : x) v = nd(rng);
  // Relative RMS error budget per format (int8 ~ 1/127 of the group max, int4 ~ 1/7..1/15).
  const struct { DType t; double budget; } cases[] = {
      {DType::kQ8G32, 0.01}, {DType::kQ8G128, 0.015}, {DType::kQ4G32, 0.16},
      {DType::kQ4G128, 0.2}, {DType::kQ4ZG32, 0.1},  {DType::kQ4ZG64, 0.12}};
  for (const auto& c : cases) {
    const auto& tr = dtype_traits(c.t);
    std::vector<uint8_t> buf(dtype_nbytes(c.t, 1024));
    tr.from_float(x.data(), buf.data(), 1024);
    std::vector<float> y(1024);
    tr.to_float(buf.data(), y.data(), 1024);
    double num = 0, den = 0;
    for (size_t i = 0; i < x.size(); ++i) {
      num += (x[i] - y[i]) * (x[i] - y[i]);
      den += x[i] * x[i];
    }
    EXPECT_LT(std::sqrt(num / den), c.budget) << tr.name;
  }
}

TEST(Tensor, ViewsShareStorageAndKeepShapes) {
  Tensor t = Tensor::empty({2, 3, 4}, DType::kF32);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(t.raw()) % kTensorAlignment, 0u);
  for (int i = 0; i < 24; ++i) t.data<float>()[i] = static_cast<float>(i);
  Tensor r = t.reshape({6, -1});
  EXPECT_EQ(r.shape(), (Shape{6, 4}));
  EXPECT_EQ(r.raw(), t.raw());
  Tensor s = t.slice(1, 1, 3);
  EXPECT_EQ(s.shape(), (Shape{2, 2, 4}));
  EXPECT_FALSE(s.is_contiguous());
  EXPECT_EQ(s.to_float_vector()[0], 4.f);
  Tensor p = t.permute({2, 0, 1});
  EXPECT_EQ(p.shape(), (Shape{4, 2, 3}));
  const auto pv = p.to_float_vector();
  EXPECT_EQ(pv[1], 4.f);  // p[0,0,1] = t[0,1,0]
  Tensor sel = t.select(0, 1);
  EXPECT_EQ(sel.shape(), (Shape{3, 4}));
  EXPECT_EQ(sel.to_float_vector()[0], 12.f);
}

TEST(Tensor, BadArgumentsThrowNamedErrors) {
  Tensor t = Tensor::empty({2, 3}, DType::kF32);
  EXPECT_THROW(t.reshape({4, 2}), InvalidArgument);
  EXPECT_THROW(t.slice(0, 1, 3), InvalidArgument);
  EXPECT_THROW(t.permute({0, 0}), InvalidArgument);
  EXPECT_THROW(Tensor::empty({2, 33}, DType::kQ4G32), InvalidArgument);
  try {
    t.reshape({5});
    FAIL();
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("[2, 3]"), std::string::npos) << e.what();
  }
}

TEST(Tensor, ConversionBf16AndQuantized) {
  Tensor t = Tensor::from_vector({1.f, -2.5f, 3.25f, 0.f}, {1, 4});
  Tensor b = t.to(DType::kBF16);
  EXPECT_EQ(b.dtype(), DType::kBF16);
  EXPECT_EQ(b.to_float_vector(), t.to_float_vector());
  std::vector<float> big(64, 0.5f);
  Tensor q = Tensor::from_vector(big, {2, 32}).to(DType::kQ8G32);
  EXPECT_EQ(q.nbytes(), 68u);
  for (float v : q.to_float_vector()) EXPECT_NEAR(v, 0.5f, 1e-3f);
}
