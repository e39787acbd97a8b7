// The ops an autoregressive decode needs, on the CPU backend against plain references: Attention
// over a runtime valid length (kv_len), KVWrite into a caller-owned cache, Gather and Expand; and
// the executor features around them (caller-bound inputs/outputs, named outputs).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "attention_ref.h"
#include "core/executor.h"
#include "core/graph.h"
#include "op_harness.h"
#include "vlart/error.h"

using namespace vlart;
using vlart::testing::nmse;
using vlart::testing::random_tensor;
using namespace vlart::testing::attn;

namespace {

// f32 kernel vs double reference: f32 rounding only (see test_ops_attention.cpp); bf16: the final
// rounding to bf16.
double bound(DType dt) { return dt == DType::kF32 ? 1e-10 : 1e-5; }

Tensor i32_tensor(const std::vector<int32_t>& v, const Shape& s) {
  Tensor t = Tensor::empty(s, DType::kI32);
  std::memcpy(t.raw(), v.data(), v.size() * sizeof(int32_t));
  return t;
}

// Keys past kv_len hold NaN: a kernel that reads them anywhere (scores, max, p.v) turns the output NaN.
void poison_past(Tensor& t, const std::vector<int32_t>& kv_len) {
  const Shape s = t.shape();
  const int64_t row = s[2] * s[3];
  std::vector<float> f = t.to_float_vector();
  for (int64_t b = 0; b < s[0]; ++b)
    for (int64_t j = kv_len[static_cast<size_t>(b)]; j < s[1]; ++j)
      for (int64_t e = 0; e < row; ++e) f[static_cast<size_t>((b * s[1] + j) * row + e)] = std::nanf("");
  Tensor p = Tensor::from_vector(f, s);
  t = t.dtype() == DType::kF32 ? p : p.to(t.dtype());
}

std::vector<float> run_kv_len_case(const AttnCase& c, uint32_t seed, int threads, std::vector<float>* ref) {
  Tensor q = random_tensor({c.B, c.Lq, c.Hq, c.D}, c.dtype, seed, -2.f, 2.f);
  Tensor k = random_tensor({c.B, c.Lk, c.Hkv, c.D}, c.dtype, seed + 1, -2.f, 2.f);
  Tensor v = random_tensor({c.B, c.Lk, c.Hkv, c.dv()}, c.dtype, seed + 2);
  poison_past(k, c.kv_len);
  poison_past(v, c.kv_len);
  if (ref) *ref = ref_attention(c, q.to_float_vector(), k.to_float_vector(), v.to_float_vector(), MaskData{});
  Graph g;
  const ValueId qi = g.input("q", q.shape(), q.dtype());
  const ValueId ki = g.input("k", k.shape(), k.dtype());
  const ValueId vi = g.input("v", v.shape(), v.dtype());
  const ValueId li = g.input("kv_len", {c.B}, DType::kI32);
  g.mark_output(g.attention(qi, ki, vi, kNoValue, c.causal, c.scale, c.prec, li));
  return vlart::testing::run_last_node(*make_cpu_backend({threads}), g, {q, k, v, i32_tensor(c.kv_len, {c.B})})
      .to_float_vector();
}

class KvLenDT : public ::testing::TestWithParam<DType> {};

TEST_P(KvLenDT, OnlyTheValidKeysCountAndTheCausalLimitFollowsThem) {
  struct Case {
    int64_t B, Lq, Lk, Hq, Hkv, D;
    bool causal;
    std::vector<int32_t> kv_len;
  };
  // Decode (Lq 1) and chunked prefill (Lq > 1, causal), lengths across the 64-key tile edge, a batch
  // whose cache is empty (zeros) and one that is full.
  const std::vector<Case> cases = {
      {1, 1, 96, 4, 1, 16, false, {37}},        {2, 1, 96, 4, 2, 32, true, {1, 96}},
      {3, 5, 130, 2, 2, 16, true, {64, 65, 5}}, {2, 3, 40, 6, 3, 8, false, {0, 17}},
      {1, 7, 70, 2, 1, 64, true, {70}},
  };
  for (const Case& cs : cases) {
    AttnCase c;
    c.B = cs.B;
    c.Lq = cs.Lq;
    c.Lk = cs.Lk;
    c.Hq = cs.Hq;
    c.Hkv = cs.Hkv;
    c.D = cs.D;
    c.causal = cs.causal;
    c.dtype = GetParam();
    c.kv_len = cs.kv_len;
    std::vector<float> ref;
    const std::vector<float> got2 = run_kv_len_case(c, 7, 2, &ref);
    for (float x : got2) ASSERT_TRUE(std::isfinite(x)) << "a key past kv_len was read (NaN in the output)";
    EXPECT_LE(nmse(got2, ref), bound(c.dtype)) << "B " << c.B << " Lq " << c.Lq << " Lk " << c.Lk;
    EXPECT_EQ(got2, run_kv_len_case(c, 7, 1, nullptr)) << "1 and 2 threads differ";
  }
}

TEST_P(KvLenDT, FullLengthEqualsNoKvLenBitForBit) {
  AttnCase c;
  c.B = 2;
  c.Lq = 9;
  c.Lk = 75;
  c.Hq = 4;
  c.Hkv = 2;
  c.D = 32;
  c.causal = true;
  c.dtype = GetParam();
  c.kv_len = {75, 75};
  Tensor q = random_tensor({c.B, c.Lq, c.Hq, c.D}, c.dtype, 3, -2.f, 2.f);
  Tensor k = random_tensor({c.B, c.Lk, c.Hkv, c.D}, c.dtype, 4, -2.f, 2.f);
  Tensor v = random_tensor({c.B, c.Lk, c.Hkv, c.D}, c.dtype, 5);
  auto run = [&](bool with_len) {
    Graph g;
    const ValueId qi = g.input("q", q.shape(), q.dtype());
    const ValueId ki = g.input("k", k.shape(), k.dtype());
    const ValueId vi = g.input("v", v.shape(), v.dtype());
    std::vector<Tensor> ins{q, k, v};
    ValueId li = kNoValue;
    if (with_len) {
      li = g.input("kv_len", {c.B}, DType::kI32);
      ins.push_back(i32_tensor(c.kv_len, {c.B}));
    }
    g.mark_output(g.attention(qi, ki, vi, kNoValue, true, 0.f, AttnPrecision::kF32, li));
    return vlart::testing::run_last_node(*make_cpu_backend({2}), g, ins);
  };
  const Tensor a = run(false), b = run(true);
  EXPECT_EQ(0, std::memcmp(a.raw(), b.raw(), a.nbytes()));
}

INSTANTIATE_TEST_SUITE_P(Dtypes, KvLenDT, ::testing::Values(DType::kF32, DType::kBF16),
                         [](const ::testing::TestParamInfo<DType>& i) { return std::string(dtype_name(i.param)); });

TEST(KvLen, OutOfRangeIsAnErrorNamingTheNode) {
  Graph g;
  const ValueId q = g.input("q", {1, 1, 2, 8}, DType::kF32);
  const ValueId k = g.input("k", {1, 16, 2, 8}, DType::kF32);
  const ValueId v = g.input("v", {1, 16, 2, 8}, DType::kF32);
  const ValueId l = g.input("kv_len", {1}, DType::kI32);
  g.mark_output(g.add(OpKind::kAttention, {q, k, v, kNoValue, l}, {}, "self_attn"));
  auto cpu = make_cpu_backend({1});
  Executor ex(g, {cpu.get()});
  *static_cast<int32_t*>(ex.input("kv_len").raw()) = 17;
  try {
    ex.run();
    FAIL() << "kv_len 17 > Lk 16 accepted";
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("self_attn"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("kv_len[0] = 17"), std::string::npos) << e.what();
  }
  // Build-time contract: i32 [B].
  Graph g2;
  const ValueId q2 = g2.input("q", {2, 1, 2, 8}, DType::kF32);
  const ValueId k2 = g2.input("k", {2, 4, 2, 8}, DType::kF32);
  const ValueId l2 = g2.input("kv_len", {1}, DType::kI32);
  const ValueId l3 = g2.input("kv_len64", {2}, DType::kI64);
  EXPECT_THROW(g2.attention(q2, k2, k2, kNoValue, false, 0.f, AttnPrecision::kF32, l2), InvalidArgument);
  EXPECT_THROW(g2.attention(q2, k2, k2, kNoValue, false, 0.f, AttnPrecision::kF32, l3), InvalidArgument);
}

// ---------------------------------------------------------------- KVWrite

TEST(KVWrite, AppendsInPlaceIntoACallerOwnedCacheAcrossRuns) {
  for (DType dt : {DType::kF32, DType::kBF16}) {
    const int64_t B = 2, Lmax = 6, L = 2, H = 3, D = 4;
    Graph g;
    const ValueId cache = g.input("cache", {B, Lmax, H, D}, dt);
    const ValueId x = g.input("x", {B, L, H, D}, dt);
    const ValueId pos = g.input("pos", {B}, DType::kI32);
    // The updated cache feeds a later op: here a slice of batch 1's rows, read after the write.
    const ValueId w = g.kv_write(cache, x, pos);
    g.mark_output(g.slice(w, 0, 1, 2), "batch1");
    auto cpu = make_cpu_backend({2});
  Executor ex(g, {cpu.get()});
    Tensor mine = Tensor::empty({B, Lmax, H, D}, dt);
    std::memset(mine.raw(), 0, mine.nbytes());
    ex.bind("cache", mine);
    std::vector<float> expect(static_cast<size_t>(B * Lmax * H * D), 0.f);
    const std::vector<std::vector<int32_t>> steps = {{0, 1}, {2, 4}, {4, 3}};
    uint32_t seed = 1;
    for (const auto& p : steps) {
      const Tensor xs = random_tensor({B, L, H, D}, dt, seed++);
      std::memcpy(ex.input("x").raw(), xs.raw(), xs.nbytes());
      std::memcpy(ex.input("pos").raw(), p.data(), p.size() * sizeof(int32_t));
      ex.run();
      const std::vector<float> xf = xs.to_float_vector();
      for (int64_t b = 0; b < B; ++b)
        for (int64_t i = 0; i < L; ++i)
          for (int64_t e = 0; e < H * D; ++e)
            expect[static_cast<size_t>((b * Lmax + p[static_cast<size_t>(b)] + i) * H * D + e)] =
                xf[static_cast<size_t>((b * L + i) * H * D + e)];
      ASSERT_EQ(mine.to_float_vector(), expect) << dtype_name(dt) << ": the bound cache holds what was written";
      const std::vector<float> b1 = ex.output("batch1").to_float_vector();
      ASSERT_EQ(b1, std::vector<float>(expect.begin() + Lmax * H * D, expect.end()));
    }
    // Out of range: nothing written, an error naming the node and the limits.
    const std::vector<float> before = mine.to_float_vector();
    const int32_t bad[2] = {0, 5};
    std::memcpy(ex.input("pos").raw(), bad, sizeof bad);
    try {
      ex.run();
      FAIL() << "pos 5 + 2 rows > 6 accepted";
    } catch (const InvalidArgument& e) {
      EXPECT_NE(std::string(e.what()).find("pos[1] = 5"), std::string::npos) << e.what();
    }
    EXPECT_EQ(mine.to_float_vector(), before);
  }
}

TEST(KVWrite, BuildTimeContract) {
  Graph g;
  const ValueId cache = g.input("cache", {1, 8, 2, 4}, DType::kF32);
  const ValueId x = g.input("x", {1, 2, 2, 4}, DType::kF32);
  const ValueId pos = g.input("pos", {1}, DType::kI32);
  const ValueId xb = g.input("xb", {1, 2, 2, 4}, DType::kBF16);
  const ValueId wide = g.input("wide", {1, 2, 3, 4}, DType::kF32);
  const ValueId pos2 = g.input("pos2", {1, 2}, DType::kI32);
  EXPECT_THROW(g.kv_write(g.scale(cache, 1.f), x, pos), InvalidArgument);  // not a graph input
  EXPECT_THROW(g.kv_write(cache, xb, pos), InvalidArgument);               // dtype
  EXPECT_THROW(g.kv_write(cache, wide, pos), InvalidArgument);             // head count
  EXPECT_THROW(g.kv_write(cache, x, pos2), InvalidArgument);               // pos shape
  EXPECT_NO_THROW(g.kv_write(cache, x, pos));
}

// ---------------------------------------------------------------- Gather, Expand

TEST(Gather, RowsAlongAnyAxisAndBadIndices) {
  const Tensor x = random_tensor({2, 5, 3}, DType::kF32, 11);
  const std::vector<float> xf = x.to_float_vector();
  for (int axis : {0, 1, 2, -1}) {
    const int ax = axis < 0 ? axis + 3 : axis;
    const int64_t n = x.shape()[ax];
    const std::vector<int32_t> idx = {static_cast<int32_t>(n - 1), 0, static_cast<int32_t>(n / 2), 0};
    Graph g;
    const ValueId xi = g.input("x", x.shape(), DType::kF32);
    const ValueId ii = g.input("idx", {4}, DType::kI32);
    g.mark_output(g.gather(xi, ii, axis));
    const Tensor out = vlart::testing::run_last_node(*make_cpu_backend({2}), g, {x, i32_tensor(idx, {4})});
    Shape want = x.shape();
    want[ax] = 4;
    ASSERT_EQ(out.shape(), want);
    const std::vector<float> of = out.to_float_vector();
    for (int64_t a = 0; a < want[0]; ++a)
      for (int64_t b = 0; b < want[1]; ++b)
        for (int64_t c = 0; c < want[2]; ++c) {
          int64_t s[3] = {a, b, c};
          s[ax] = idx[static_cast<size_t>(s[ax])];
          EXPECT_EQ(of[static_cast<size_t>((a * want[1] + b) * want[2] + c)],
                    xf[static_cast<size_t>((s[0] * 5 + s[1]) * 3 + s[2])]);
        }
  }
  Graph g;
  const ValueId xi = g.input("x", x.shape(), DType::kF32);
  const ValueId ii = g.input("idx", {2}, DType::kI64);
  g.mark_output(g.add(OpKind::kGather, {xi, ii}, [] {
    OpAttrs a;
    a.axis = 1;
    return a;
  }(), "pick_tokens"));
  auto cpu = make_cpu_backend({1});
  Executor ex(g, {cpu.get()});
  const int64_t bad[2] = {1, 5};
  std::memcpy(ex.input("idx").raw(), bad, sizeof bad);
  try {
    ex.run();
    FAIL() << "index 5 of 5 rows accepted";
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("pick_tokens"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("index 5"), std::string::npos) << e.what();
  }
  EXPECT_THROW(g.gather(xi, ii, 3), InvalidArgument);
}

TEST(Expand, NumpyBroadcastEveryPattern) {
  struct Case {
    Shape in, out;
  };
  const std::vector<Case> cases = {{{3, 1}, {3, 4}}, {{1, 4}, {3, 4}}, {{4}, {2, 3, 4}}, {{2, 1, 3}, {2, 5, 3}},
                                   {{1, 1}, {2, 2}}, {{2, 3}, {2, 3}}};
  for (const Case& c : cases)
    for (DType dt : {DType::kF32, DType::kBF16}) {
      const Tensor x = random_tensor(c.in, dt, 21);
      Graph g;
      g.mark_output(g.expand(g.input("x", c.in, dt), c.out));
      const Tensor out = vlart::testing::run_last_node(*make_cpu_backend({2}), g, {x});
      ASSERT_EQ(out.shape(), c.out);
      const std::vector<float> xf = x.to_float_vector(), of = out.to_float_vector();
      const int r = c.out.rank(), ri = c.in.rank();
      for (int64_t e = 0; e < c.out.numel(); ++e) {
        int64_t rem = e, src = 0, st = 1;
        for (int d = r - 1; d >= 0; --d) {
          const int64_t id = rem % c.out[d];
          rem /= c.out[d];
          const int di = d - (r - ri);
          if (di >= 0) {
            src += (c.in[di] == 1 ? 0 : id) * st;
            st *= c.in[di];
          }
        }
        ASSERT_EQ(of[static_cast<size_t>(e)], xf[static_cast<size_t>(src)]) << c.in.str() << " -> " << c.out.str();
      }
    }
  Graph g;
  const ValueId x = g.input("x", {3, 2}, DType::kF32);
  EXPECT_THROW(g.expand(x, {3, 4}), InvalidArgument);
  EXPECT_THROW(g.expand(x, {2}), InvalidArgument);
}

// ---------------------------------------------------------------- Executor binding

TEST(ExecutorBind, CallerBuffersForInputsAndOutputsAndNamedOutputs) {
  Graph g;
  const ValueId x = g.input("x", {2, 3}, DType::kF32);
  const ValueId y = g.scale(x, 2.f, 1.f);
  g.mark_output(y, "y");
  g.mark_output(g.reshape(y, {3, 2}), "y_t");  // a view of y
  auto cpu = make_cpu_backend({1});
  Executor ex(g, {cpu.get()});
  EXPECT_EQ(ex.output_index("y"), 0);
  EXPECT_EQ(ex.output_index("y_t"), 1);
  EXPECT_EQ(ex.output_name(1), "y_t");
  EXPECT_EQ(ex.output_index("nope"), -1);
  Tensor in = Tensor::from_vector(std::vector<float>{1, 2, 3, 4, 5, 6}, {2, 3});
  Tensor out = Tensor::empty({2, 3}, DType::kF32);
  ex.bind("x", in);
  ex.bind("y", out);
  ex.run();
  EXPECT_EQ(out.to_float_vector(), (std::vector<float>{3, 5, 7, 9, 11, 13}));
  EXPECT_EQ(ex.output("y_t").raw(), out.raw()) << "the view follows the bound output";
  EXPECT_EQ(ex.output("y").raw(), out.raw());
  // Rebinding takes effect on the next run.
  Tensor in2 = Tensor::from_vector(std::vector<float>{0, 0, 0, 0, 0, 1}, {2, 3});
  ex.bind("x", in2);
  ex.run();
  EXPECT_EQ(out.to_float_vector(), (std::vector<float>{1, 1, 1, 1, 1, 3}));
  // Wrong shape / dtype / name / a view: errors that say so.
  EXPECT_THROW(ex.bind("x", Tensor::empty({3, 2}, DType::kF32)), InvalidArgument);
  EXPECT_THROW(ex.bind("x", Tensor::empty({2, 3}, DType::kBF16)), InvalidArgument);
  EXPECT_THROW(ex.bind("y_t", Tensor::empty({3, 2}, DType::kF32)), InvalidArgument);
  EXPECT_THROW(ex.bind("z", in), NotFoundError);
  EXPECT_THROW(ex.output("z"), NotFoundError);
  // Output names are unique in the graph.
  EXPECT_THROW(g.mark_output(g.scale(x, 1.f), "y"), InvalidArgument);
}

}  // namespace
