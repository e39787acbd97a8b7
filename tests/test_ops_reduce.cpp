// The small ops the next families need (pi0/pi0.5 time embeddings, adaRMS gates, OpenVLA's greedy
// action tokens): Sub, Div, Tanh, Sigmoid, Exp, ArgMax and ReduceMean on the CPU backend, each
// against a double-precision reference with an NMSE bound per dtype (f32 and bf16), plus the edge
// cases a user relies on (broadcast operand order, ties and NaN in ArgMax, shape checks).
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "backends/cpu/cpu_backend.h"
#include "op_harness.h"
#include "vlart/error.h"

using namespace vlart;
using vlart::testing::nmse;
using vlart::testing::random_tensor;
using vlart::testing::run_last_node;

namespace {

Backend& cpu() {
  static std::unique_ptr<Backend> b = make_cpu_backend({2});
  return *b;
}

// NMSE bound of a float result: f32 math stored in f32, or rounded to bf16 (2^-8 relative).
double bound(DType dt) { return dt == DType::kF32 ? 1e-12 : 1e-4; }

// Reference broadcast of a binary op, in double, on the values as stored (bf16-rounded inputs).
std::vector<float> broadcast_ref(const Tensor& a, const Tensor& b, double (*f)(double, double), Shape* out) {
  const std::vector<float> va = a.to_float_vector(), vb = b.to_float_vector();
  const int r = std::max(a.rank(), b.rank());
  std::vector<int64_t> os(static_cast<size_t>(r));
  auto dim = [&](const Tensor& t, int i) { return i - (r - t.rank()) >= 0 ? t.dim(i - (r - t.rank())) : 1; };
  for (int i = 0; i < r; ++i) os[static_cast<size_t>(i)] = std::max(dim(a, i), dim(b, i));
  *out = Shape(os);
  std::vector<float> y(static_cast<size_t>(out->numel()));
  for (int64_t e = 0; e < out->numel(); ++e) {
    int64_t rem = e, ia = 0, ib = 0, sa = 1, sb = 1;
    for (int i = r - 1; i >= 0; --i) {
      const int64_t idx = rem % os[static_cast<size_t>(i)];
      rem /= os[static_cast<size_t>(i)];
      if (dim(a, i) > 1) ia += idx * sa;
      if (dim(b, i) > 1) ib += idx * sb;
      sa *= dim(a, i);
      sb *= dim(b, i);
    }
    y[static_cast<size_t>(e)] = static_cast<float>(f(va[static_cast<size_t>(ia)], vb[static_cast<size_t>(ib)]));
  }
  return y;
}

}  // namespace

TEST(SmallOps, SubDivBroadcastKeepOperandOrder) {
  const std::pair<Shape, Shape> shapes[] = {{{3, 5, 7}, {3, 5, 7}}, {{241, 96}, {96}}, {{7}, {3, 5, 7}},
                                            {{3, 1, 7}, {1, 5, 1}}, {{13, 33}, {1}},   {{1}, {13, 33}}};
  for (DType dt : {DType::kF32, DType::kBF16})
    for (const auto& sh : shapes)
      for (bool div : {false, true}) {
        SCOPED_TRACE(std::string(div ? "div " : "sub ") + dtype_name(dt) + " " + sh.first.str() + " " +
                     sh.second.str());
        Graph g;
        const ValueId a = g.input("a", sh.first, dt), b = g.input("b", sh.second, dt);
        div ? g.div(a, b) : g.sub(a, b);
        // Divisors away from zero so the relative error stays meaningful.
        Tensor ta = random_tensor(sh.first, dt, 41), tb = random_tensor(sh.second, dt, 42, 0.5f, 2.f);
        Shape os;
        const std::vector<float> ref = broadcast_ref(
            ta, tb, div ? +[](double x, double y) { return x / y; } : +[](double x, double y) { return x - y; }, &os);
        Tensor out = run_last_node(cpu(), g, {ta, tb});
        EXPECT_EQ(out.shape(), os);
        EXPECT_EQ(out.dtype(), dt);
        EXPECT_LE(nmse(out.to_float_vector(), ref), bound(dt));
      }
  // a - b is not b - a: a row operand on the left stays on the left.
  Graph g;
  const ValueId a = g.input("a", {2}, DType::kF32), b = g.input("b", {3, 2}, DType::kF32);
  g.sub(a, b);
  Tensor out = run_last_node(cpu(), g, {Tensor::from_vector({10, 20}, {2}), Tensor::from_vector({1, 2, 3, 4, 5, 6}, {3, 2})});
  EXPECT_EQ(out.to_float_vector(), (std::vector<float>{9, 18, 7, 16, 5, 14}));
}

TEST(SmallOps, TanhSigmoidExp) {
  for (DType dt : {DType::kF32, DType::kBF16})
    for (int op = 0; op < 3; ++op) {
      SCOPED_TRACE(std::string(op == 0 ? "tanh " : op == 1 ? "sigmoid " : "exp ") + dtype_name(dt));
      Graph g;
      const ValueId x = g.input("x", {37, 129}, dt);
      op == 0 ? g.tanh(x) : op == 1 ? g.sigmoid(x) : g.exp(x);
      Tensor tx = random_tensor({37, 129}, dt, 7, -12.f, 12.f);
      const std::vector<float> v = tx.to_float_vector();
      std::vector<float> ref(v.size());
      for (size_t i = 0; i < v.size(); ++i) {
        const double d = v[i];
        ref[i] = static_cast<float>(op == 0 ? std::tanh(d) : op == 1 ? 1.0 / (1.0 + std::exp(-d)) : std::exp(d));
      }
      Tensor out = run_last_node(cpu(), g, {tx});
      EXPECT_EQ(out.shape(), tx.shape());
      const std::vector<float> got = out.to_float_vector();
      EXPECT_LE(nmse(got, ref), dt == DType::kF32 ? 1e-11 : 1e-4);
      // Saturation ends: tanh(+-12) = +-1, sigmoid stays in [0, 1], exp stays positive and finite.
      for (float y : got) {
        EXPECT_TRUE(std::isfinite(y));
        if (op == 0) EXPECT_LE(std::fabs(y), 1.f);
        if (op == 1) EXPECT_TRUE(y >= 0.f && y <= 1.f);
        if (op == 2) EXPECT_GT(y, 0.f);
      }
    }
}

TEST(SmallOps, ArgMaxFirstOnTiesNaNLargest) {
  // Rows: plain, tie (first index wins), NaN (largest, first NaN), all -inf, single max at the end.
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  const std::vector<float> v = {0.1f, 0.9f, 0.3f, 0.2f,  //
                                5.f,  1.f,  5.f,  2.f,   //
                                1.f,  nan,  9.f,  nan,   //
                                -inf, -inf, -inf, -inf,  //
                                -3.f, -2.f, -1.f, 0.f};
  for (DType dt : {DType::kF32, DType::kBF16}) {
    SCOPED_TRACE(dtype_name(dt));
    Graph g;
    const ValueId x = g.input("x", {5, 4}, dt);
    g.argmax(x);
    EXPECT_EQ(g.values()[static_cast<size_t>(g.nodes().back().output)].dtype, DType::kI32);
    Tensor tx = Tensor::from_vector(v, {5, 4});
    if (dt != DType::kF32) tx = tx.to(dt);
    Tensor out = run_last_node(cpu(), g, {tx});
    EXPECT_EQ(out.shape(), Shape({5, 1}));
    const int32_t* o = out.data<int32_t>();
    EXPECT_EQ(std::vector<int32_t>(o, o + 5), (std::vector<int32_t>{1, 0, 1, 0, 3}));
  }
  // A vocabulary-sized row (Gemma's 257152 logits) against a scan in double.
  const int64_t V = 257152;
  Graph g;
  const ValueId x = g.input("x", {2, V}, DType::kF32);
  g.argmax(x);
  Tensor tx = random_tensor({2, V}, DType::kF32, 9);
  Tensor out = run_last_node(cpu(), g, {tx});
  const std::vector<float> xv = tx.to_float_vector();
  for (int r = 0; r < 2; ++r) {
    int64_t best = 0;
    for (int64_t j = 1; j < V; ++j)
      if (xv[static_cast<size_t>(r * V + j)] > xv[static_cast<size_t>(r * V + best)]) best = j;
    EXPECT_EQ(out.data<int32_t>()[r], best);
  }
}

TEST(SmallOps, ReduceMeanLastDim) {
  for (DType dt : {DType::kF32, DType::kBF16})
    for (const Shape& s : {Shape({64, 720}), Shape({3, 4, 5}), Shape({7}), Shape({5, 1})}) {
      SCOPED_TRACE(std::string(dtype_name(dt)) + " " + s.str());
      Graph g;
      const ValueId x = g.input("x", s, dt);
      g.reduce_mean(x);
      Tensor tx = random_tensor(s, dt, 5, -2.f, 3.f);
      const std::vector<float> v = tx.to_float_vector();
      const int64_t n = s[s.rank() - 1], rows = s.numel() / n;
      std::vector<float> ref(static_cast<size_t>(rows));
      for (int64_t r = 0; r < rows; ++r) {
        double sum = 0;
        for (int64_t j = 0; j < n; ++j) sum += v[static_cast<size_t>(r * n + j)];
        ref[static_cast<size_t>(r)] = static_cast<float>(sum / static_cast<double>(n));
      }
      Tensor out = run_last_node(cpu(), g, {tx});
      std::vector<int64_t> os = s.vec();
      os.back() = 1;
      EXPECT_EQ(out.shape(), Shape(os));
      EXPECT_EQ(out.dtype(), dt);
      EXPECT_LE(nmse(out.to_float_vector(), ref), dt == DType::kF32 ? 1e-12 : 1e-4);
    }
}

TEST(SmallOps, ShapeAndDtypeChecks) {
  Graph g;
  const ValueId a = g.input("a", {3, 4}, DType::kF32), b = g.input("b", {3, 5}, DType::kF32);
  EXPECT_THROW(g.sub(a, b), InvalidArgument);  // not broadcastable
  const ValueId c = g.input("c", {3, 4}, DType::kBF16);
  EXPECT_THROW(g.div(a, c), InvalidArgument);  // dtypes differ
  const ValueId e = g.input("e", {3, 0}, DType::kF32);
  EXPECT_THROW(g.argmax(e), InvalidArgument);  // empty last dim
  const ValueId i = g.input("i", {3, 4}, DType::kI32);
  EXPECT_THROW(g.reduce_mean(i), InvalidArgument);  // not a float activation
}
