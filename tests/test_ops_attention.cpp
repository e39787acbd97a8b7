// Rope and Attention on the CPU backend against naive references written plainly here
// (materialised scores, double softmax).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "core/alloc_guard.h"
#include "core/backend.h"
#include "core/graph.h"
#include "cpu/attention.h"
#include "cpu/isa.h"
#include "attention_ref.h"
#include "op_harness.h"
#include "vlart/error.h"

using namespace vlart;
using vlart::testing::nmse;
using vlart::testing::random_tensor;
using vlart::testing::run_last_node;
using namespace vlart::testing::attn;

namespace {

// f32: the kernel differs from the double reference only by f32 rounding (and exp polynomial error
// well below it; measured 1e-14..6e-13). bf16: inputs are the same bf16 values on both sides and the
// math is f32, so the error is the final rounding to bf16 (8 significant bits): relative error
// uniform in +-2^-8/m for mantissa m in [1, 2), mean square about 2^-16/3 * E[1/m^2] = 2.5e-6
// (measured 2.2e-6..2.9e-6). 1e-5 is four times that; a real bug (a wrong key, a lost tile) costs
// far more.
constexpr double kF32Bound = 1e-10;
constexpr double kBF16Bound = 1e-5;

// int16 products (opt-in): q and k are rounded to 1/5792 of their row / key maximum (D = 64),
// the softmax weights to 1/4095 of the running maximum and v to 1/4095 of its column maximum.
// The weight rounding dominates: ~7e-5 absolute per weight, which relative to an output that
// averages many keys is a few 1e-4; measured NMSE 1.8e-7..5.0e-7 on the f32 cases below. 2e-6 is
// four times the worst; a lost key pair or a wrong scale costs orders of magnitude more. bf16
// inputs: the bf16 bound (1e-5) applies.
constexpr double kInt16Bound = 2e-6;
// int8: q and k rounded to 1/127 of their row / key maximum (alone: NMSE 2.4e-5..5.6e-5 on the
// cases below), the weights to 1/255 of the running maximum and v to 1/127 of its column maximum:
// outputs ~1-1.7% relative, measured NMSE 1.0e-4..2.9e-4 (f32 and bf16 inputs). 1.2e-3 is four
// times the worst; a lost key group or a wrong scale costs far more (NMSE ~1).
constexpr double kInt8Bound = 1.2e-3;

double bound(DType dt) { return dt == DType::kF32 ? kF32Bound : kBF16Bound; }

struct AttnInputs {
  Tensor q, k, v, mask;
  MaskData md;
};

// `allowed(b, i, j)` builds boolean masks; additive masks are random in [-4, 0] with some -inf where
// `allowed` says no.
template <typename AllowedFn>
AttnInputs make_inputs(const AttnCase& c, uint32_t seed, AllowedFn allowed) {
  AttnInputs in;
  in.q = random_tensor({c.B, c.Lq, c.Hq, c.D}, c.dtype, seed, -2.f, 2.f);
  in.k = random_tensor({c.B, c.Lk, c.Hkv, c.D}, c.dtype, seed + 1, -2.f, 2.f);
  in.v = random_tensor({c.B, c.Lk, c.Hkv, c.dv()}, c.dtype, seed + 2);
  if (c.mask == MaskKind::kNone) return in;
  const Shape ms{c.mb(), c.Lq, c.Lk};
  const size_t n = static_cast<size_t>(ms.numel());
  if (c.mask == MaskKind::kBool || c.mask == MaskKind::kU8) {
    in.mask = Tensor::empty(ms, c.mask == MaskKind::kBool ? DType::kBool : DType::kU8);
    in.md.allowed.resize(n);
    for (int64_t b = 0; b < c.mb(); ++b)
      for (int64_t i = 0; i < c.Lq; ++i)
        for (int64_t j = 0; j < c.Lk; ++j) in.md.allowed[static_cast<size_t>((b * c.Lq + i) * c.Lk + j)] = allowed(b, i, j);
    std::memcpy(in.mask.raw(), in.md.allowed.data(), n);
  } else {
    std::mt19937 rng(seed + 3);
    std::uniform_real_distribution<float> ud(-4.f, 0.f);
    std::vector<float> add(n);
    for (int64_t b = 0; b < c.mb(); ++b)
      for (int64_t i = 0; i < c.Lq; ++i)
        for (int64_t j = 0; j < c.Lk; ++j)
          add[static_cast<size_t>((b * c.Lq + i) * c.Lk + j)] =
              allowed(b, i, j) ? ud(rng) : -std::numeric_limits<float>::infinity();
    in.mask = Tensor::from_vector(add, ms);
    if (c.mask == MaskKind::kBF16) in.mask = in.mask.to(DType::kBF16);
    in.md.add = in.mask.to_float_vector();
  }
  return in;
}

AttnInputs make_inputs(const AttnCase& c, uint32_t seed) {
  return make_inputs(c, seed, [](int64_t, int64_t, int64_t) { return true; });
}

double bound(const AttnCase& c) {
  if (c.prec == AttnPrecision::kInt8) return kInt8Bound;
  return c.prec == AttnPrecision::kInt16 && c.dtype == DType::kF32 ? kInt16Bound : bound(c.dtype);
}

Graph attention_graph(const AttnCase& c, const AttnInputs& in) {
  Graph g;
  const ValueId q = g.input("q", in.q.shape(), in.q.dtype());
  const ValueId k = g.input("k", in.k.shape(), in.k.dtype());
  const ValueId v = g.input("v", in.v.shape(), in.v.dtype());
  const ValueId m = in.mask.defined() ? g.input("mask", in.mask.shape(), in.mask.dtype()) : kNoValue;
  g.mark_output(g.attention(q, k, v, m, c.causal, c.scale, c.prec));
  return g;
}

Tensor run_attention(const AttnCase& c, const AttnInputs& in, int threads) {
  Graph g = attention_graph(c, in);
  std::vector<Tensor> inputs{in.q, in.k, in.v};
  if (in.mask.defined()) inputs.push_back(in.mask);
  return run_last_node(*make_cpu_backend({threads}), g, inputs);
}

// Runs the case with 2 threads, checks it against the reference and that 1 thread gives the same
// bits. Returns the output (as floats).
template <typename AllowedFn>
std::vector<float> check_attention(const AttnCase& c, uint32_t seed, AllowedFn allowed) {
  const AttnInputs in = make_inputs(c, seed, allowed);
  const std::vector<float> ref =
      ref_attention(c, in.q.to_float_vector(), in.k.to_float_vector(), in.v.to_float_vector(), in.md);
  const Tensor out2 = run_attention(c, in, 2);
  EXPECT_EQ(out2.shape(), (Shape{c.B, c.Lq, c.Hq, c.dv()}));
  EXPECT_EQ(out2.dtype(), c.dtype);
  const std::vector<float> got = out2.to_float_vector();
  for (float x : got) {
    EXPECT_TRUE(std::isfinite(x));
    if (!std::isfinite(x)) break;
  }
  EXPECT_LE(nmse(got, ref), bound(c)) << dtype_name(c.dtype) << " precision " << static_cast<int>(c.prec);
  const Tensor out1 = run_attention(c, in, 1);
  EXPECT_EQ(0, std::memcmp(out1.raw(), out2.raw(), out2.nbytes())) << "1 and 2 threads differ";
  return got;
}

std::vector<float> check_attention(const AttnCase& c, uint32_t seed) {
  return check_attention(c, seed, [](int64_t, int64_t, int64_t) { return true; });
}

class AttentionDT : public ::testing::TestWithParam<DType> {};

TEST_P(AttentionDT, MultiHead) {
  AttnCase c;
  c.B = 2, c.Lq = 37, c.Lk = 37, c.Hq = 4, c.Hkv = 4, c.D = 64, c.dtype = GetParam();
  check_attention(c, 1);
}

TEST_P(AttentionDT, GroupedQuerySmolVLA) {
  AttnCase c;
  c.Lq = 70, c.Lk = 70, c.Hq = 15, c.Hkv = 5, c.D = 64, c.dtype = GetParam();
  check_attention(c, 2);
}

TEST_P(AttentionDT, MultiQueryPi0) {
  AttnCase c;
  c.Lq = 20, c.Lk = 23, c.Hq = 8, c.Hkv = 1, c.D = 256, c.dtype = GetParam();
  check_attention(c, 3);
}

TEST_P(AttentionDT, FewerQueriesThanKeys) {
  AttnCase c;
  c.Lq = 50, c.Lk = 291, c.Hq = 15, c.Hkv = 5, c.D = 64, c.dtype = GetParam();
  check_attention(c, 4);
}

TEST_P(AttentionDT, CausalFewerQueriesThanKeys) {
  AttnCase c;
  c.B = 2, c.Lq = 50, c.Lk = 291, c.Hq = 6, c.Hkv = 2, c.D = 32, c.causal = true, c.dtype = GetParam();
  check_attention(c, 5);
}

TEST_P(AttentionDT, CausalSquareManyTiles) {
  AttnCase c;
  c.Lq = 200, c.Lk = 200, c.Hq = 2, c.Hkv = 1, c.D = 48, c.causal = true, c.dtype = GetParam();
  check_attention(c, 6);
}

TEST_P(AttentionDT, BoolMaskPaddingColumns) {
  // Batch b has 40 - 13 b valid keys; the rest are padding.
  AttnCase c;
  c.B = 3, c.Lq = 40, c.Lk = 40, c.Hq = 4, c.Hkv = 2, c.D = 64, c.mask = MaskKind::kBool, c.dtype = GetParam();
  check_attention(c, 7, [](int64_t b, int64_t, int64_t j) { return j < 40 - 13 * b; });
}

TEST_P(AttentionDT, U8MaskBroadcastOverBatch) {
  AttnCase c;
  c.B = 2, c.Lq = 19, c.Lk = 77, c.Hq = 3, c.Hkv = 1, c.D = 16, c.mask = MaskKind::kU8, c.mask_batch = 1,
  c.dtype = GetParam();
  check_attention(c, 8, [](int64_t, int64_t i, int64_t j) { return (i * 7 + j * 3) % 5 != 0; });
}

TEST_P(AttentionDT, BigVisionPrefixMask) {
  // make_att_2d_masks(pad, ar): token j is visible to token i iff cumsum(ar)[j] <= cumsum(ar)[i] and
  // both are real tokens. Prefix: 30 image/text tokens (ar 0) of which the last 6 are padding; suffix:
  // state token (ar 1), first action (ar 1), 9 more actions (ar 0). Padding query rows see nothing.
  const int64_t L = 41;
  std::vector<int> ar(L, 0), pad(L, 1), cum(L);
  for (int64_t t = 24; t < 30; ++t) pad[t] = 0;
  ar[30] = 1;
  ar[31] = 1;
  for (int64_t t = 0, s = 0; t < L; ++t) cum[t] = static_cast<int>(s += ar[t]);
  AttnCase c;
  c.Lq = L, c.Lk = L, c.Hq = 15, c.Hkv = 5, c.D = 64, c.mask = MaskKind::kBool, c.dtype = GetParam();
  const std::vector<float> got = check_attention(c, 9, [&](int64_t, int64_t i, int64_t j) {
    return cum[j] <= cum[i] && pad[i] && pad[j];
  });
  for (int64_t i = 24; i < 30; ++i)
    for (int64_t e = 0; e < c.Hq * c.D; ++e) ASSERT_EQ(got[static_cast<size_t>(i * c.Hq * c.D + e)], 0.f);
}

TEST_P(AttentionDT, AdditiveF32Mask) {
  AttnCase c;
  c.B = 2, c.Lq = 33, c.Lk = 130, c.Hq = 4, c.Hkv = 2, c.D = 32, c.mask = MaskKind::kF32, c.dtype = GetParam();
  check_attention(c, 10, [](int64_t b, int64_t i, int64_t j) { return j <= i + 97 - 20 * b; });
}

TEST_P(AttentionDT, AdditiveBF16MaskWithCausal) {
  AttnCase c;
  c.Lq = 70, c.Lk = 70, c.Hq = 2, c.Hkv = 2, c.D = 32, c.mask = MaskKind::kBF16, c.causal = true, c.dtype = GetParam();
  check_attention(c, 11, [](int64_t, int64_t, int64_t j) { return j % 9 != 4; });
}

// bf16 K and V are converted once per kv head when Lk * (D + Dv) <= 2^20 floats, else tile by
// tile: 4200 * 256 keeps the per-tile path covered (with a partial last tile and causal).
TEST_P(AttentionDT, KeysBeyondHeadCache) {
  AttnCase c;
  c.Lq = 20, c.Lk = 4200, c.Hq = 2, c.Hkv = 1, c.D = 128, c.dtype = GetParam();
  check_attention(c, 90);
  c.causal = true;
  check_attention(c, 91);
}

// HF-style additive masks use the lowest finite float instead of -inf. A row masked that way on
// every key has equal scores in the reference (uniform weights, not zeros); partially masked rows
// must ignore those keys.
TEST_P(AttentionDT, LowestFiniteAdditiveMask) {
  for (MaskKind mk : {MaskKind::kF32, MaskKind::kBF16}) {
    AttnCase c;
    c.Lq = 20, c.Lk = 150, c.Hq = 2, c.Hkv = 1, c.D = 16, c.mask = mk, c.dtype = GetParam();
    AttnInputs in =
        make_inputs(c, 70, [](int64_t, int64_t i, int64_t j) { return i != 3 && (i + j) % 4 != 0; });
    // The lowest finite value of the mask dtype (f32 lowest rounds to -inf in bf16).
    const float lowest = mk == MaskKind::kBF16 ? bf16_to_f32(0xff7f) : std::numeric_limits<float>::lowest();
    std::vector<float> add = in.md.add;
    for (float& a : add)
      if (std::isinf(a)) a = lowest;
    in.mask = Tensor::from_vector(add, in.mask.shape());
    if (mk == MaskKind::kBF16) in.mask = in.mask.to(DType::kBF16);
    in.md.add = in.mask.to_float_vector();
    ASSERT_EQ(in.md.add[3 * 150], lowest);
    const std::vector<float> ref =
        ref_attention(c, in.q.to_float_vector(), in.k.to_float_vector(), in.v.to_float_vector(), in.md);
    const std::vector<float> got = run_attention(c, in, 2).to_float_vector();
    EXPECT_LE(nmse(got, ref), bound(c.dtype)) << dtype_name(c.dtype);
    // Row 3 (all keys masked): the mean of v over all keys, not zeros.
    double mean0 = 0.0;
    const std::vector<float> vf = in.v.to_float_vector();
    for (int64_t j = 0; j < c.Lk; ++j) mean0 += vf[static_cast<size_t>(j * c.D)];
    EXPECT_NEAR(got[static_cast<size_t>(3 * c.Hq * c.D)], mean0 / c.Lk, 1e-2);
  }
}

// Bool/u8 masks are classified per tile and row block: tiles no row of the block may see are
// skipped, rows that see a whole tile skip the masking pass, the rest are masked 8 keys at a time.
// Here keys 128..255 (a whole tile) are masked for everyone, in batch 1 the first query rows only
// see keys >= 300, every 17th query row sees nothing, and allowed bytes are any nonzero value.
TEST_P(AttentionDT, BoolMaskSkippedTilesAndRows) {
  AttnCase c;
  c.B = 2, c.Lq = 150, c.Lk = 400, c.Hq = 4, c.Hkv = 2, c.D = 32, c.mask = MaskKind::kU8, c.dtype = GetParam();
  auto allowed = [](int64_t b, int64_t i, int64_t j) {
    if ((j >= 128 && j < 256) || i % 17 == 5) return false;
    if (b == 1 && i < 40) return j >= 300;
    return (i * 7 + j) % 11 != 0;
  };
  AttnInputs in = make_inputs(c, 80, allowed);
  uint8_t* mb = static_cast<uint8_t*>(in.mask.raw());
  for (size_t t = 0; t < in.md.allowed.size(); ++t)
    if (mb[t]) mb[t] = t % 3 == 0 ? 255 : 7;
  const std::vector<float> ref =
      ref_attention(c, in.q.to_float_vector(), in.k.to_float_vector(), in.v.to_float_vector(), in.md);
  const Tensor out2 = run_attention(c, in, 2);
  const std::vector<float> got = out2.to_float_vector();
  EXPECT_LE(nmse(got, ref), bound(c.dtype)) << dtype_name(c.dtype);
  const Tensor out1 = run_attention(c, in, 1);
  EXPECT_EQ(0, std::memcmp(out1.raw(), out2.raw(), out2.nbytes())) << "1 and 2 threads differ";
  for (int64_t b = 0; b < c.B; ++b)
    for (int64_t i = 5; i < c.Lq; i += 17)
      for (int64_t e = 0; e < c.Hq * c.D; ++e)
        ASSERT_EQ(got[static_cast<size_t>((b * c.Lq + i) * c.Hq * c.D + e)], 0.f);
}

TEST_P(AttentionDT, FullyMaskedRowsAreZero) {
  // Rows 3 and 17 allow no key at all (bool), row 5 gets -inf everywhere (additive); with causal and
  // Lq > Lk the first Lq - Lk rows have no key either.
  AttnCase c;
  c.Lq = 20, c.Lk = 20, c.Hq = 2, c.Hkv = 1, c.D = 16, c.mask = MaskKind::kBool, c.dtype = GetParam();
  auto no_rows = [](int64_t, int64_t i, int64_t) { return i != 3 && i != 17; };
  std::vector<float> got = check_attention(c, 12, no_rows);
  for (int64_t i : {3, 17})
    for (int64_t e = 0; e < c.Hq * c.D; ++e) ASSERT_EQ(got[static_cast<size_t>(i * c.Hq * c.D + e)], 0.f);

  c.mask = MaskKind::kF32;
  got = check_attention(c, 13, [](int64_t, int64_t i, int64_t) { return i != 5; });
  for (int64_t e = 0; e < c.Hq * c.D; ++e) ASSERT_EQ(got[static_cast<size_t>(5 * c.Hq * c.D + e)], 0.f);

  AttnCase cc;
  cc.Lq = 30, cc.Lk = 12, cc.Hq = 2, cc.Hkv = 1, cc.D = 16, cc.causal = true, cc.dtype = GetParam();
  got = check_attention(cc, 14);
  for (int64_t e = 0; e < 18 * cc.Hq * cc.D; ++e) ASSERT_EQ(got[static_cast<size_t>(e)], 0.f);
  EXPECT_NE(got[static_cast<size_t>(18 * cc.Hq * cc.D)], 0.f);
}

TEST_P(AttentionDT, LongSequence) {
  AttnCase c;
  c.Lq = 45, c.Lk = 1200, c.Hq = 3, c.Hkv = 1, c.D = 64, c.dtype = GetParam();
  check_attention(c, 15);
  c.Lq = 1200, c.Hq = 1, c.causal = true;
  check_attention(c, 16);
}

TEST_P(AttentionDT, OddSizes) {
  AttnCase c;
  c.Lq = 1, c.Lk = 65, c.Hq = 3, c.Hkv = 3, c.D = 72, c.dtype = GetParam();
  check_attention(c, 17);
  c.Lq = 13, c.Lk = 65, c.Hq = 6, c.Hkv = 2, c.D = 72, c.Dv = 40, c.causal = true;  // Dv != D
  check_attention(c, 18);
  c.Lq = 66, c.Lk = 1, c.Hq = 5, c.Hkv = 1, c.D = 2, c.Dv = 17, c.causal = false, c.scale = 0.37f;
  check_attention(c, 19);
}

// Key counts on both sides of the key tile (kKeyTile = 128) and of its multiples, with the head
// dims of the vision/VLM models and ones that are not multiples of 16 (masked last output vector,
// 64-column chunks plus a tail). Row counts leave a partial row block.
TEST_P(AttentionDT, KeyTileBoundariesAndHeadDims) {
  AttnCase c;
  c.Lq = 70, c.Hq = 2, c.Hkv = 1, c.dtype = GetParam();
  uint32_t seed = 40;
  for (int64_t lk : {127, 128, 129, 255, 257})
    for (int64_t d : {40, 64, 72, 80, 128}) {
      c.Lk = lk, c.D = d;
      SCOPED_TRACE("Lk=" + std::to_string(lk) + " D=" + std::to_string(d));
      check_attention(c, seed++);
    }
  // Causal diagonal and an additive mask crossing tile edges.
  c.Lq = 130, c.Lk = 257, c.D = 72, c.causal = true;
  check_attention(c, seed++);
  c.causal = false, c.mask = MaskKind::kF32;
  check_attention(c, seed++);
}

// Scores with a wide range (scale 40: logits of several hundred, nearly one-hot rows): the row max
// jumps up in later tiles (rescaling the accumulator by tiny alphas), and masked keys often carry
// scores far above every allowed key of their row, so the tile max must be taken after masking or
// all allowed keys underflow to 0 (checked: using the unmasked max fails with NMSE 0.07).
TEST_P(AttentionDT, WideScoreRangeAcrossTiles) {
  AttnCase c;
  c.Lq = 40, c.Lk = 300, c.Hq = 2, c.Hkv = 1, c.D = 16, c.scale = 40.f, c.dtype = GetParam();
  check_attention(c, 60);
  c.mask = MaskKind::kBool;
  check_attention(c, 61, [](int64_t, int64_t i, int64_t j) { return (i + j) % 3 != 0; });
}

INSTANTIATE_TEST_SUITE_P(Dtypes, AttentionDT, ::testing::Values(DType::kF32, DType::kBF16),
                         [](const ::testing::TestParamInfo<DType>& i) {
                           return std::string(dtype_name(i.param));
                         });

// The portable tile kernels must agree with the reference too (the AVX-512 ones are picked at run
// time on this machine, so call the kernel directly with force_generic).
TEST(Attention, GenericTileKernelsMatchReference) {
  for (bool bf16 : {false, true})
    for (bool masked : {true, false}) {  // unmasked: the scores kernel supplies the tile max
      AttnCase c;
      c.B = 2, c.Lq = 50, c.Lk = masked ? 150 : 257, c.Hq = 6, c.Hkv = 2, c.D = 72, c.Dv = masked ? 40 : 80,
      c.causal = masked, c.mask = masked ? MaskKind::kBool : MaskKind::kNone,
      c.dtype = bf16 ? DType::kBF16 : DType::kF32;
      const AttnInputs in =
          make_inputs(c, 20, [](int64_t b, int64_t, int64_t j) { return j < 150 - 30 * b; });
      kernels::AttentionParams p;
      p.B = c.B, p.Lq = c.Lq, p.Lk = c.Lk, p.Hq = c.Hq, p.Hkv = c.Hkv, p.D = c.D, p.Dv = c.dv();
      p.causal = masked, p.bf16 = bf16, p.mask = masked ? kernels::AttnMask::kBool : kernels::AttnMask::kNone;
      kernels::FlashAttention fa(p, 2, /*force_generic=*/true);
      EXPECT_STREQ(fa.isa(), "generic");
      std::vector<float> scratch(fa.scratch_bytes() / sizeof(float) + 16);
      float* ws = scratch.data() + (16 - reinterpret_cast<uintptr_t>(scratch.data()) / 4 % 16) % 16;
      Tensor out = Tensor::empty({c.B, c.Lq, c.Hq, c.dv()}, c.dtype);
      fa.run(in.q.raw(), in.k.raw(), in.v.raw(), masked ? in.mask.raw() : nullptr, out.raw(), ws);
      const std::vector<float> ref =
          ref_attention(c, in.q.to_float_vector(), in.k.to_float_vector(), in.v.to_float_vector(), in.md);
      EXPECT_LE(nmse(out.to_float_vector(), ref), bound(c.dtype)) << "bf16 " << bf16 << " masked " << masked;
    }
}

// Every rung of the ISA ladder this CPU has (capped with cpu_isa_cap): the tile kernels FlashAttention
// picks are the ones the rung names, and they agree with the reference on odd shapes (Dv not a multiple
// of 8 or 16, a last key tile of 1, fully masked rows through the bool mask, bf16).
TEST(Attention, EveryIsaRungPicksItsTilesAndMatchesReference) {
  using kernels::CpuIsa;
  const CpuIsa saved = kernels::cpu_isa_cap_value();
  int rungs = 0;
  for (CpuIsa rung : {CpuIsa::kPortable, CpuIsa::kAvx2, CpuIsa::kAvx512}) {
    if (rung > kernels::cpu_isa_detected()) {
      std::printf("[ INFO ] attention rung %s: not on this CPU, not run\n", kernels::cpu_isa_name(rung));
      continue;
    }
    kernels::cpu_isa_cap(rung);
    ++rungs;
    const char* want = rung == CpuIsa::kAvx512 ? "avx512" : rung == CpuIsa::kAvx2 ? "avx2" : "generic";
    for (bool bf16 : {false, true})
      for (int shape = 0; shape < 2; ++shape) {
        AttnCase c;
        c.B = 2, c.Lq = shape ? 37 : 50, c.Lk = shape ? 129 : 257, c.Hq = 6, c.Hkv = shape ? 3 : 2,
        c.D = shape ? 40 : 64, c.Dv = shape ? 21 : 72, c.causal = shape == 1,
        c.mask = shape ? MaskKind::kBool : MaskKind::kNone, c.dtype = bf16 ? DType::kBF16 : DType::kF32;
        // Batch 1 masks every key of its first rows' window: fully masked rows give zeros.
        const AttnInputs in = make_inputs(c, 31 + shape, [](int64_t b, int64_t i, int64_t j) {
          return b == 0 ? j < 100 : (i >= 3 && j % 3 != 1);
        });
        kernels::AttentionParams p;
        p.B = c.B, p.Lq = c.Lq, p.Lk = c.Lk, p.Hq = c.Hq, p.Hkv = c.Hkv, p.D = c.D, p.Dv = c.dv();
        p.causal = c.causal, p.bf16 = bf16, p.mask = shape ? kernels::AttnMask::kBool : kernels::AttnMask::kNone;
        kernels::FlashAttention fa(p, 2);
        EXPECT_STREQ(fa.isa(), want) << "rung " << kernels::cpu_isa_name(rung);
        EXPECT_STREQ(kernels::attention_f32_path_name(), want);
        std::vector<float> scratch(fa.scratch_bytes() / sizeof(float) + 16);
        float* ws = scratch.data() + (16 - reinterpret_cast<uintptr_t>(scratch.data()) / 4 % 16) % 16;
        Tensor out = Tensor::empty({c.B, c.Lq, c.Hq, c.dv()}, c.dtype);
        fa.run(in.q.raw(), in.k.raw(), in.v.raw(), shape ? in.mask.raw() : nullptr, out.raw(), ws);
        const std::vector<float> ref =
            ref_attention(c, in.q.to_float_vector(), in.k.to_float_vector(), in.v.to_float_vector(), in.md);
        EXPECT_LE(nmse(out.to_float_vector(), ref), bound(c.dtype))
            << "rung " << kernels::cpu_isa_name(rung) << " bf16 " << bf16 << " shape " << shape;
      }
  }
  kernels::cpu_isa_cap(saved);
  EXPECT_GE(rungs, 1);
}

// The NEON tile kernels (aarch64 builds) against the portable ones, function by function, on every
// tail: row vectors 1..4, head dims not a multiple of 4, key counts around the 4-key blocks and the
// tile, value widths around the 16-column blocks, masked (-inf) scores and rows with every key masked.
// On aarch64 the attention op picks them (the AttentionDT suite then runs them end to end).
TEST(Attention, NeonTileKernelsMatchGeneric) {
  const kernels::AttnTileKernels* neon = kernels::attn_tile_kernels_neon();
#if defined(__aarch64__)
  ASSERT_NE(neon, nullptr);
  {
    kernels::AttentionParams p;
    p.B = 1, p.Lq = 5, p.Lk = 9, p.Hq = 2, p.Hkv = 1, p.D = 16, p.Dv = 16;
    EXPECT_STREQ(kernels::FlashAttention(p, 1, false).isa(), "neon");
  }
#endif
  if (!neon) GTEST_SKIP() << "not an aarch64 build: no NEON tile kernels";
  const kernels::AttnTileKernels& gen = kernels::attn_tile_kernels_generic();
  constexpr int QB = kernels::kRowBlock, KT = kernels::kKeyTile;
  const float ninf = -std::numeric_limits<float>::infinity();
  std::mt19937 rng(11);
  auto uni = [&rng](float lo, float hi) { return std::uniform_real_distribution<float>(lo, hi)(rng); };
  auto close = [](float a, float b, float tol) { return std::fabs(a - b) <= tol * (1.f + std::fabs(b)); };

  for (int nvec = 1; nvec <= QB / 16; ++nvec) {
    const int nr = 16 * nvec;
    for (int D : {1, 3, 4, 7, 64, 72})
      for (int kt : {1, 3, 4, 5, 127, KT}) {
        const int64_t ldk = D + 3;
        std::vector<float> Qt(static_cast<size_t>(D) * QB), K(static_cast<size_t>(kt) * ldk);
        for (float& v : Qt) v = uni(-1.f, 1.f);
        for (float& v : K) v = uni(-1.f, 1.f);
        std::vector<float> s1(KT * QB, 0.f), s2(KT * QB, 0.f), t1(QB), t2(QB);
        gen.scores(Qt.data(), nvec, K.data(), ldk, kt, D, s1.data(), t1.data());
        neon->scores(Qt.data(), nvec, K.data(), ldk, kt, D, s2.data(), t2.data());
        int bad = 0;
        for (int r = 0; r < nr; ++r) {
          float mx = ninf;
          for (int j = 0; j < kt; ++j) {
            bad += !close(s2[j * QB + r], s1[j * QB + r], 2e-6f * D);
            mx = std::max(mx, s2[j * QB + r]);
          }
          bad += t2[r] != mx;  // the tile max is the max of the scores it wrote
        }
        EXPECT_EQ(bad, 0) << "scores nvec " << nvec << " D " << D << " kt " << kt;
        std::vector<float> s3(KT * QB, 0.f);  // without the tile max
        neon->scores(Qt.data(), nvec, K.data(), ldk, kt, D, s3.data(), nullptr);
        for (int j = 0; j < kt; ++j)
          for (int r = 0; r < nr; ++r) bad += s3[j * QB + r] != s2[j * QB + r];
        EXPECT_EQ(bad, 0) << "scores without max, nvec " << nvec << " D " << D << " kt " << kt;
      }

    for (int kt : {1, 2, 3, 128})
      for (bool given_max : {false, true}) {
        // Base-2 scores; some keys masked, rows 1 and 5 entirely masked, rows 1 and 2 with no key seen yet.
        std::vector<float> S(KT * QB, 0.f), m(QB), l(QB), tmax(QB, ninf);
        for (int r = 0; r < nr; ++r) {
          m[r] = r == 1 || r == 2 ? ninf : uni(-8.f, 8.f);
          l[r] = m[r] == ninf ? 0.f : uni(0.5f, 20.f);
          for (int j = 0; j < kt; ++j) {
            const bool masked = r == 1 || r == 5 || (j + r) % 7 == 3;
            S[j * QB + r] = masked ? ninf : uni(-30.f, 10.f);
            tmax[r] = std::max(tmax[r], S[j * QB + r]);
          }
        }
        std::vector<float> S1 = S, S2 = S, m1 = m, m2 = m, l1 = l, l2 = l, a1(QB), a2(QB);
        gen.softmax(S1.data(), kt, nvec, given_max ? tmax.data() : nullptr, m1.data(), l1.data(), a1.data());
        neon->softmax(S2.data(), kt, nvec, given_max ? tmax.data() : nullptr, m2.data(), l2.data(), a2.data());
        int bad = 0;
        for (int r = 0; r < nr; ++r) {
          bad += m2[r] != m1[r] && !(std::isinf(m1[r]) && std::isinf(m2[r]));
          bad += !close(l2[r], l1[r], 1e-6f) + !close(a2[r], a1[r], 1e-6f);
          for (int j = 0; j < kt; ++j) {
            const float p1 = S1[j * QB + r], p2 = S2[j * QB + r];
            bad += p1 == 0.f ? p2 != 0.f : !close(p2, p1, 1e-6f);
          }
        }
        EXPECT_EQ(m2[1], ninf);
        EXPECT_EQ(l2[1], 0.f);
        EXPECT_EQ(bad, 0) << "softmax nvec " << nvec << " kt " << kt << " tile max " << given_max;
      }
  }

  for (int nr : {1, 2, 3, 4, 5, 17, 63, QB})
    for (int Dv : {1, 3, 4, 5, 16, 17, 40, 64, 72})
      for (int kt : {1, 5, KT}) {
        const int64_t ldv = Dv + 1;
        std::vector<float> S(KT * QB), V(static_cast<size_t>(kt) * ldv), alpha(QB), acc(static_cast<size_t>(QB) * Dv);
        for (float& v : S) v = uni(0.f, 1.f);
        for (float& v : V) v = uni(-1.f, 1.f);
        for (float& v : alpha) v = uni(0.f, 1.f);
        for (float& v : acc) v = uni(-4.f, 4.f);
        std::vector<float> acc1 = acc, acc2 = acc;
        gen.pv(S.data(), kt, nr, V.data(), ldv, Dv, alpha.data(), acc1.data());
        neon->pv(S.data(), kt, nr, V.data(), ldv, Dv, alpha.data(), acc2.data());
        int bad = 0;
        for (size_t i = 0; i < acc.size(); ++i)
          bad += i < static_cast<size_t>(nr) * Dv ? !close(acc2[i], acc1[i], 2e-6f * kt) : acc2[i] != acc[i];
        EXPECT_EQ(bad, 0) << "pv nr " << nr << " Dv " << Dv << " kt " << kt;  // rows >= nr untouched
      }

  for (int cols : {1, 7, 8, 9, 64, 72}) {
    const int rows = 3;
    const int64_t lds = cols + 2;
    std::vector<uint16_t> src(static_cast<size_t>(rows) * lds);
    for (uint16_t& h : src) h = static_cast<uint16_t>(rng());
    std::vector<float> d1(static_cast<size_t>(rows) * cols), d2(d1.size());
    gen.bf16_rows(src.data(), lds, rows, cols, d1.data());
    neon->bf16_rows(src.data(), lds, rows, cols, d2.data());
    EXPECT_EQ(std::memcmp(d1.data(), d2.data(), d1.size() * sizeof(float)), 0) << "bf16_rows cols " << cols;
  }
}

// int16 and int8 products through the backend on every feature of the kernel: GQA, causal, bool / u8 /
// additive masks, a broadcast mask, several key tiles with an odd last tile, Dv != D, batch 2,
// bf16 inputs, fully masked rows. Also checks that the int16 tiles really ran (on AVX512_VNNI).
TEST(Attention, Int16ProductsMatchReference) {
  if (!kernels::attention_reduced_precision_available())
    GTEST_SKIP() << "no AVX512_VNNI under the ISA cap (" << kernels::cpu_isa_name(kernels::cpu_isa_max())
                 << "): int16 attention tiles not built/usable";
  struct C {
    int64_t B, Lq, Lk, Hq, Hkv, D, Dv;
    bool causal;
    MaskKind mask;
    int64_t mask_batch;
  };
  const C cases[] = {
      {1, 64, 64, 4, 4, 64, 64, false, MaskKind::kNone, -1},    // SigLIP-like, one tile
      {1, 50, 291, 15, 5, 64, 64, true, MaskKind::kBool, -1},   // expert: GQA, causal, mask, odd Lk
      {2, 37, 261, 6, 2, 32, 48, false, MaskKind::kU8, 1},      // batch 2, broadcast u8 mask, Dv != D
      {1, 40, 300, 4, 2, 64, 64, false, MaskKind::kF32, -1},    // additive f32 mask, 3 tiles
      {1, 33, 129, 2, 1, 16, 16, true, MaskKind::kBF16, -1},    // MQA, causal, additive bf16
      {1, 241, 241, 15, 5, 64, 64, false, MaskKind::kBool, -1}, // prefix-like, prefix mask
  };
  for (AttnPrecision prec : {AttnPrecision::kInt16, AttnPrecision::kInt8})
  for (DType dt : {DType::kF32, DType::kBF16}) {
    for (const C& k : cases) {
      AttnCase c;
      c.B = k.B, c.Lq = k.Lq, c.Lk = k.Lk, c.Hq = k.Hq, c.Hkv = k.Hkv, c.D = k.D, c.Dv = k.Dv, c.causal = k.causal,
      c.mask = k.mask, c.mask_batch = k.mask_batch, c.dtype = dt, c.prec = prec;
      SCOPED_TRACE(::testing::Message() << "Lq " << c.Lq << " Lk " << c.Lk << " D " << c.D << " Dv " << c.Dv << " "
                                      << dtype_name(dt) << " precision " << static_cast<int>(prec));
      kernels::AttentionParams p;
      p.B = c.B, p.Lq = c.Lq, p.Lk = c.Lk, p.Hq = c.Hq, p.Hkv = c.Hkv, p.D = c.D, p.Dv = c.dv(), p.int16 = true;
      p.qk_int8 = prec == AttnPrecision::kInt8;
      const kernels::FlashAttention fa(p, 2);
      EXPECT_TRUE(fa.int16());
      EXPECT_EQ(fa.qk_int8(), prec == AttnPrecision::kInt8);
      // Some rows see no key at all (they must be zeros), others a few.
      check_attention(c, 40, [&](int64_t b, int64_t i, int64_t j) { return i % 7 != 3 && (j + i + b) % 5 != 0; });
    }
  }
}

// Shapes the int16 tiles do not cover (D or Dv not a multiple of 16) fall back to the f32 tiles
// and keep the f32 accuracy; a NaN query row comes out as the f32 tiles make it.
TEST(Attention, Int16FallbackAndNaN) {
  kernels::AttentionParams p;
  p.Lq = 20, p.Lk = 70, p.Hq = 2, p.Hkv = 2, p.D = 72, p.Dv = 40, p.int16 = true;
  EXPECT_FALSE(kernels::FlashAttention(p, 2).int16());
  AttnCase c;
  c.Lq = 20, c.Lk = 70, c.D = 72, c.Dv = 40, c.prec = AttnPrecision::kInt8;
  const AttnInputs in = make_inputs(c, 50);
  const std::vector<float> ref =
      ref_attention(c, in.q.to_float_vector(), in.k.to_float_vector(), in.v.to_float_vector(), in.md);
  EXPECT_LE(nmse(run_attention(c, in, 2).to_float_vector(), ref), kF32Bound);
  if (!kernels::attention_reduced_precision_available())
    GTEST_SKIP() << "no AVX512_VNNI under the ISA cap: NaN check of the int16 tiles skipped";
  AttnCase n;
  n.Lq = 8, n.Lk = 40, n.Hq = 1, n.Hkv = 1, n.D = 16;
  AttnInputs ni = make_inputs(n, 51);
  ni.q.data<float>()[3 * 16 + 5] = std::numeric_limits<float>::quiet_NaN();  // query row 3
  const std::vector<float> f32 = run_attention(n, ni, 1).to_float_vector();
  n.prec = AttnPrecision::kInt8;
  const std::vector<float> i16 = run_attention(n, ni, 1).to_float_vector();
  for (size_t i = 0; i < f32.size(); ++i) {
    // Row 3 as the f32 tiles give it (bit for bit: no finite score, no weight); the others finite.
    if (i / 16 == 3) {
      EXPECT_EQ(std::isnan(f32[i]), std::isnan(i16[i])) << i;
      if (!std::isnan(f32[i])) {
        EXPECT_EQ(f32[i], i16[i]) << i;
      }
    } else {
      EXPECT_TRUE(std::isfinite(i16[i])) << i;
    }
  }
}

TEST(Attention, RunDoesNotAllocate) {
  AttnCase c;
  c.Lq = 50, c.Lk = 291, c.Hq = 15, c.Hkv = 5, c.D = 64, c.mask = MaskKind::kBool, c.causal = true;
  const AttnInputs in = make_inputs(c, 21, [](int64_t, int64_t, int64_t j) { return j != 7; });
  Graph g = attention_graph(c, in);
  auto be = make_cpu_backend({2});
  std::unique_ptr<OpKernel> k = be->prepare(g, g.nodes().back());
  std::vector<float> scratch(k->scratch_bytes() / sizeof(float) + 16);
  float* ws = scratch.data() + (16 - reinterpret_cast<uintptr_t>(scratch.data()) / 4 % 16) % 16;
  Tensor out = Tensor::empty({c.B, c.Lq, c.Hq, c.D}, c.dtype);
  const Tensor* ins[4] = {&in.q, &in.k, &in.v, &in.mask};
  KernelArgs args;
  args.inputs = ins;
  args.num_inputs = 4;
  args.output = &out;
  args.scratch = ws;
  be->begin_run();
  k->run(args);  // warm the OpenMP pool
  {
    alloc_guard::ArmScope guard(false);
    k->run(args);
    EXPECT_EQ(guard.counts().allocations, 0u);
  }
  ASSERT_TRUE(alloc_guard::hook_installed());
}

TEST(Attention, RejectsWrongRunShapeAndUnsupportedMask) {
  AttnCase c;
  const AttnInputs in = make_inputs(c, 22);
  Graph g = attention_graph(c, in);
  auto be = make_cpu_backend({1});
  std::unique_ptr<OpKernel> k = be->prepare(g, g.nodes().back());
  Tensor bad_k = random_tensor({c.B, c.Lk + 1, c.Hkv, c.D}, DType::kF32, 1);
  Tensor out = Tensor::empty({c.B, c.Lq, c.Hq, c.D}, DType::kF32);
  std::vector<float> scratch(k->scratch_bytes() / sizeof(float) + 16);
  const Tensor* ins[3] = {&in.q, &bad_k, &in.v};
  KernelArgs args;
  args.inputs = ins;
  args.num_inputs = 3;
  args.output = &out;
  args.scratch = scratch.data();
  EXPECT_THROW(k->run(args), InvalidArgument);

  // An f16 attention is valid graph-wise but not supported by this CPU kernel.
  Graph g16;
  const ValueId q = g16.input("q", {1, 4, 2, 8}, DType::kF16);
  const ValueId kk = g16.input("k", {1, 4, 2, 8}, DType::kF16);
  const ValueId v = g16.input("v", {1, 4, 2, 8}, DType::kF16);
  g16.attention(q, kk, v);
  EXPECT_FALSE(be->supports(g16, g16.nodes().back()));
  EXPECT_THROW(be->prepare(g16, g16.nodes().back()), InvalidArgument);
}

// ---------------- Rope ----------------

// The PyTorch reference, step by step in f32: ts = theta ** (2i/D), r = pos / ts.
std::vector<float> ref_rope(const std::vector<float>& x, const std::vector<int64_t>& pos, int64_t B, int64_t L,
                            int64_t H, int64_t D, float theta) {
  std::vector<float> out(x.size());
  const int64_t half = D / 2;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t l = 0; l < L; ++l)
      for (int64_t h = 0; h < H; ++h)
        for (int64_t i = 0; i < half; ++i) {
          const float ts = std::pow(theta, static_cast<float>(2 * i) / static_cast<float>(D));
          const float r = static_cast<float>(pos[static_cast<size_t>(b * L + l)]) / ts;
          const float cr = std::cos(r), sr = std::sin(r);
          const size_t o = static_cast<size_t>(((b * L + l) * H + h) * D);
          const float x1 = x[o + i], x2 = x[o + half + i];
          out[o + i] = x1 * cr - x2 * sr;
          out[o + half + i] = x2 * cr + x1 * sr;
        }
  return out;
}

// The same rotation in double with inv_freq = theta^(-2i/D): catches a wrong formula independently
// of f32 details.
std::vector<float> ref_rope_double(const std::vector<float>& x, const std::vector<int64_t>& pos, int64_t B,
                                   int64_t L, int64_t H, int64_t D, double theta) {
  std::vector<float> out(x.size());
  const int64_t half = D / 2;
  for (int64_t bl = 0; bl < B * L; ++bl)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t i = 0; i < half; ++i) {
        const double r = static_cast<double>(pos[static_cast<size_t>(bl)]) * std::pow(theta, -2.0 * i / D);
        const size_t o = static_cast<size_t>((bl * H + h) * D);
        const double x1 = x[o + i], x2 = x[o + half + i];
        out[o + i] = static_cast<float>(x1 * std::cos(r) - x2 * std::sin(r));
        out[o + half + i] = static_cast<float>(x2 * std::cos(r) + x1 * std::sin(r));
      }
  return out;
}

struct RopeCase {
  int64_t B, L, H, D;
  float theta;
  DType pos_dtype;
  DType dtype;
};

std::vector<float> check_rope(const RopeCase& c, const std::vector<int64_t>& pos, uint32_t seed) {
  const Tensor x = random_tensor({c.B, c.L, c.H, c.D}, c.dtype, seed);
  Tensor p = Tensor::empty({c.B, c.L}, c.pos_dtype);
  for (size_t i = 0; i < pos.size(); ++i) {
    if (c.pos_dtype == DType::kI64)
      p.data<int64_t>()[i] = pos[i];
    else
      p.data<int32_t>()[i] = static_cast<int32_t>(pos[i]);
  }
  Graph g;
  const ValueId xv = g.input("x", x.shape(), x.dtype());
  const ValueId pv = g.input("pos", p.shape(), p.dtype());
  g.mark_output(g.rope(xv, pv, c.theta));
  const Tensor out2 = run_last_node(*make_cpu_backend({2}), g, {x, p});
  const Tensor out1 = run_last_node(*make_cpu_backend({1}), g, {x, p});
  EXPECT_EQ(out2.dtype(), c.dtype);
  EXPECT_EQ(0, std::memcmp(out1.raw(), out2.raw(), out2.nbytes())) << "1 and 2 threads differ";
  const std::vector<float> xf = x.to_float_vector(), got = out2.to_float_vector();
  const std::vector<float> ref = ref_rope(xf, pos, c.B, c.L, c.H, c.D, c.theta);
  // f32: the kernel computes exactly the reference's f32 operations; bf16: output rounding only.
  EXPECT_LE(nmse(got, ref), c.dtype == DType::kF32 ? 1e-14 : kBF16Bound);
  // Positions here stay below 1000, where f32 angle rounding keeps the double formula within 1e-9.
  EXPECT_LE(nmse(got, ref_rope_double(xf, pos, c.B, c.L, c.H, c.D, c.theta)),
            c.dtype == DType::kF32 ? 1e-9 : kBF16Bound);
  return got;
}

TEST(Rope, Theta10000I32) {
  RopeCase c{2, 21, 3, 64, 10000.f, DType::kI32, DType::kF32};
  std::vector<int64_t> pos;
  for (int64_t b = 0; b < c.B; ++b)
    for (int64_t l = 0; l < c.L; ++l) pos.push_back(l + 100 * b);
  check_rope(c, pos, 1);
}

TEST(Rope, Theta100000I64HeadDim256) {
  RopeCase c{1, 17, 2, 256, 100000.f, DType::kI64, DType::kF32};
  std::vector<int64_t> pos;
  for (int64_t l = 0; l < c.L; ++l) pos.push_back(3 * l + 900);
  check_rope(c, pos, 2);
}

TEST(Rope, NonMonotonicPaddedPositions) {
  // Left-padded batch rows repeat position 0 for padding (cumsum(mask) - 1 clipped), then count up;
  // a second row jumps backwards. Odd half-dim (D = 18) too.
  RopeCase c{2, 12, 5, 18, 10000.f, DType::kI64, DType::kF32};
  const std::vector<int64_t> pos{0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8,  //
                                 7, 3, 3, 0, 11, 2, 500, 1, 0, 9, 9, 4};
  const std::vector<float> got = check_rope(c, pos, 3);
  // Position 0 is the identity.
  const Tensor x = random_tensor({c.B, c.L, c.H, c.D}, DType::kF32, 3);
  const std::vector<float> xf = x.to_float_vector();
  for (int64_t e = 0; e < 4 * c.H * c.D; ++e) ASSERT_EQ(got[static_cast<size_t>(e)], xf[static_cast<size_t>(e)]);
}

TEST(Rope, BF16) {
  RopeCase c{2, 9, 4, 64, 10000.f, DType::kI32, DType::kBF16};
  std::vector<int64_t> pos;
  for (int64_t i = 0; i < c.B * c.L; ++i) pos.push_back((i * 37) % 250);
  check_rope(c, pos, 4);
  c.theta = 100000.f;
  c.pos_dtype = DType::kI64;
  check_rope(c, pos, 5);
}

TEST(Rope, RunDoesNotAllocate) {
  const Tensor x = random_tensor({1, 50, 15, 64}, DType::kF32, 6);
  Tensor p = Tensor::empty({1, 50}, DType::kI32);
  for (int i = 0; i < 50; ++i) p.data<int32_t>()[i] = i;
  Tensor out = Tensor::empty(x.shape(), DType::kF32);
  Graph g;
  g.mark_output(g.rope(g.input("x", x.shape(), x.dtype()), g.input("pos", p.shape(), p.dtype()), 10000.f));
  auto be = make_cpu_backend({2});
  std::unique_ptr<OpKernel> k = be->prepare(g, g.nodes().back());
  std::vector<float> scratch(k->scratch_bytes() / sizeof(float) + 16);
  const Tensor* ins[2] = {&x, &p};
  KernelArgs args;
  args.inputs = ins;
  args.num_inputs = 2;
  args.output = &out;
  args.scratch = scratch.data();
  be->begin_run();
  k->run(args);
  alloc_guard::ArmScope guard(false);
  k->run(args);
  EXPECT_EQ(guard.counts().allocations, 0u);
}

}  // namespace
