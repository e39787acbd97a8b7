// CPU kernels of the norm, elementwise and layout families against plain double-precision
// references written here.
//
// Bounds: f32 results of non-transcendental float ops must reach NMSE <= 1e-10; transcendental
// ones (exp/erf/tanh based) <= 1e-11, tighter than a generic 1e-9 on purpose: the kernels use their
// own polynomial exp, and one with 1e-5 relative error would still pass 1e-9 (measured: <= 1e-12).
// Layout ops are byte copies and must be bit-exact.
// bf16 results are compared with the reference rounded to bf16, so only results that land on the
// other side of a rounding boundary differ, by one ulp (2^-8..2^-7 of the value, i.e. <= 6e-5 in
// squared relative terms). 2e-6 allows a few percent of elements to flip; the f32 internal math
// (~1e-6 relative) flips far fewer (measured: <= 2e-7), while any real bf16 mistake (rounding by
// truncation, bf16 accumulation) moves most elements and fails.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <random>
#include <thread>
#include <vector>

#include "backends/cpu/cpu_backend.h"
#include "core/alloc_guard.h"
#include "op_harness.h"
#include "vlart/error.h"

using namespace vlart;
using vlart::testing::nmse;
using vlart::testing::random_tensor;

namespace {

constexpr double kF32Exact = 1e-10;
constexpr double kF32Transc = 1e-11;
constexpr double kBf16Bound = 2e-6;

Tensor run_op(const Graph& g, const std::vector<Tensor>& inputs, int threads = 2) {
  auto be = make_cpu_backend({threads});
  return vlart::testing::run_last_node(*be, g, inputs);
}

float round_bf16(double v) { return bf16_to_f32(f32_to_bf16(static_cast<float>(v))); }

// Compares `got` (f32 or bf16) with a double reference under the dtype's bound.
void expect_close(const Tensor& got, const std::vector<double>& ref, double f32_bound, const std::string& what) {
  ASSERT_EQ(static_cast<size_t>(got.numel()), ref.size()) << what;
  const std::vector<float> g = got.to_float_vector();
  std::vector<float> r(ref.size());
  const bool bf = got.dtype() == DType::kBF16;
  for (size_t i = 0; i < ref.size(); ++i) r[i] = bf ? round_bf16(ref[i]) : static_cast<float>(ref[i]);
  for (size_t i = 0; i < g.size(); ++i)
    ASSERT_FALSE(std::isnan(g[i]) && !std::isnan(r[i])) << what << ": NaN at " << i;
  EXPECT_LE(nmse(g, r), bf ? kBf16Bound : f32_bound) << what;
}

std::vector<double> as_double(const Tensor& t) {
  const std::vector<float> f = t.to_float_vector();
  return {f.begin(), f.end()};
}

bool bytes_equal(const Tensor& a, const Tensor& b) {
  return a.dtype() == b.dtype() && a.shape() == b.shape() && a.nbytes() == b.nbytes() &&
         std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0;
}

// Tensor of any plain dtype whose elements are distinct-ish byte patterns (layout tests).
Tensor pattern_tensor(const Shape& s, DType dt, uint32_t seed) {
  Tensor t = Tensor::empty(s, dt);
  std::mt19937 rng(seed);
  auto* p = static_cast<uint8_t*>(t.raw());
  for (size_t i = 0; i < t.nbytes(); ++i) p[i] = static_cast<uint8_t>(rng());
  if (dt == DType::kBool)
    for (size_t i = 0; i < t.nbytes(); ++i) p[i] &= 1;
  return t;
}

const DType kFloatTypes[] = {DType::kF32, DType::kBF16};

}  // namespace

// ------------------------------------------------------------------------------------ norms

// set_flush_denormals(): MXCSR FTZ+DAZ on x86, FPCR.FZ on aarch64. A fresh thread starts with
// gradual underflow (so the check can fail); after the call a denormal operand counts as zero.
TEST(CpuBackend, FlushDenormalsOnTheCallingThread) {
  auto product = [](bool flush) {
    float r = -1.f;
    std::thread t([&] {
      if (flush) set_flush_denormals();
      volatile float tiny = 1e-39f;  // denormal (FLT_MIN is 1.18e-38)
      volatile float one = 1.f;
      r = tiny * one;
    });
    t.join();
    return r;
  };
  EXPECT_GT(product(false), 0.f);
  EXPECT_EQ(product(true), 0.f);
}

TEST(Norm, LayerNormMatchesReference) {
  for (DType xt : kFloatTypes)
    for (DType wt : kFloatTypes)
      for (int64_t D : {7, 33, 1000})
        for (bool with_bias : {true, false})
          for (bool with_weight : {true, false}) {  // no weight: no affine scale
            const int64_t rows = 5;
            Graph g;
            const ValueId x = g.input("x", {rows, D}, xt);
            Tensor w = random_tensor({D}, wt, 2, 0.5f, 1.5f), b = random_tensor({D}, wt, 3);
            const ValueId y = g.layer_norm(x, with_weight ? g.weight("w", w) : kNoValue,
                                           with_bias ? g.weight("b", b) : kNoValue, 1e-5f);
            (void)y;
            // Rows with a large common offset catch one-pass variance cancellation.
            Tensor xin = random_tensor({rows, D}, xt, 1, 2.f, 6.f);
            const auto xv = as_double(xin), wv = as_double(w), bv = as_double(b);
            std::vector<double> ref(xv.size());
            for (int64_t r = 0; r < rows; ++r) {
              double mean = 0, var = 0;
              for (int64_t i = 0; i < D; ++i) mean += xv[r * D + i];
              mean /= D;
              for (int64_t i = 0; i < D; ++i) var += (xv[r * D + i] - mean) * (xv[r * D + i] - mean);
              var /= D;
              for (int64_t i = 0; i < D; ++i)
                ref[r * D + i] =
                    (xv[r * D + i] - mean) / std::sqrt(var + 1e-5) * (with_weight ? wv[i] : 1.0) +
                    (with_bias ? bv[i] : 0.0);
            }
            Tensor out = run_op(g, {xin});
            EXPECT_EQ(out.dtype(), xt);
            expect_close(out, ref, kF32Exact,
                         std::string("layernorm x=") + dtype_name(xt) + " w=" + dtype_name(wt) +
                             " D=" + std::to_string(D) + (with_bias ? " bias" : "") +
                             (with_weight ? "" : " no weight"));
          }
}

TEST(Norm, RMSNormPlainAndGemma) {
  for (DType xt : kFloatTypes)
    for (DType wt : kFloatTypes)
      for (int64_t D : {7, 33, 1000})
        for (bool gemma : {false, true}) {
          const Shape s{2, 3, D};
          Graph g;
          const ValueId x = g.input("x", s, xt);
          Tensor w = random_tensor({D}, wt, 5, -0.5f, 1.5f);
          g.rms_norm(x, g.weight("w", w), 1e-6f, gemma);
          Tensor xin = random_tensor(s, xt, 4, -3.f, 3.f);
          const auto xv = as_double(xin), wv = as_double(w);
          std::vector<double> ref(xv.size());
          for (size_t r = 0; r < xv.size() / D; ++r) {
            double ss = 0;
            for (int64_t i = 0; i < D; ++i) ss += xv[r * D + i] * xv[r * D + i];
            const double inv = 1.0 / std::sqrt(ss / D + 1e-6);
            for (int64_t i = 0; i < D; ++i) ref[r * D + i] = xv[r * D + i] * inv * (gemma ? 1.0 + wv[i] : wv[i]);
          }
          expect_close(run_op(g, {xin}), ref, kF32Exact,
                       std::string("rmsnorm x=") + dtype_name(xt) + " w=" + dtype_name(wt) +
                           " D=" + std::to_string(D) + (gemma ? " gemma" : ""));
        }
}

TEST(Norm, RejectsF16SoPlacementCanFallBack) {
  Graph g;
  const ValueId x = g.input("x", {2, 8}, DType::kF16);
  g.softmax(x);
  EXPECT_FALSE(make_cpu_backend({1})->supports(g, g.nodes().back()));
}

namespace {
std::vector<double> softmax_ref(const std::vector<double>& x, int64_t N) {
  std::vector<double> y(x.size(), 0.0);
  for (size_t r = 0; r < x.size() / N; ++r) {
    double m = -INFINITY;
    for (int64_t i = 0; i < N; ++i) m = std::max(m, x[r * N + i]);
    if (m == -INFINITY) continue;  // fully masked row: zeros
    double s = 0;
    for (int64_t i = 0; i < N; ++i) s += std::exp(x[r * N + i] - m);
    for (int64_t i = 0; i < N; ++i) y[r * N + i] = std::exp(x[r * N + i] - m) / s;
  }
  return y;
}
}  // namespace

TEST(Norm, SoftmaxWithInfAndLargeValues) {
  for (DType dt : kFloatTypes)
    for (int64_t N : {7, 33, 1000}) {
      const int64_t rows = 6;
      Graph g;
      g.softmax(g.input("x", {rows, N}, dt));
      std::vector<float> v(static_cast<size_t>(rows * N));
      std::mt19937 rng(7);
      std::uniform_real_distribution<float> ud(-8.f, 8.f);
      for (auto& e : v) e = ud(rng);
      for (int64_t i = 0; i < N; i += 3) v[static_cast<size_t>(N + i)] = -INFINITY;  // row 1: partly masked
      for (int64_t i = 0; i < N; ++i) v[static_cast<size_t>(2 * N + i)] = -INFINITY;  // row 2: fully masked
      for (int64_t i = 0; i < N; ++i) v[static_cast<size_t>(3 * N + i)] += 500.f;     // row 3: exp would overflow
      for (int64_t i = 0; i < N; ++i) v[static_cast<size_t>(4 * N + i)] -= 500.f;     // row 4: exp would underflow
      Tensor xin = Tensor::from_vector(v, {rows, N});
      if (dt == DType::kBF16) xin = xin.to(DType::kBF16);
      Tensor out = run_op(g, {xin});
      const auto ref = softmax_ref(as_double(xin), N);
      expect_close(out, ref, kF32Transc, std::string("softmax ") + dtype_name(dt) + " N=" + std::to_string(N));
      const auto o = out.to_float_vector();
      for (int64_t i = 0; i < N; ++i) {
        EXPECT_EQ(o[static_cast<size_t>(2 * N + i)], 0.f) << "fully masked row must be zeros";
        if (i % 3 == 0) {
          EXPECT_EQ(o[static_cast<size_t>(N + i)], 0.f) << "-inf entry must give exactly 0";
        }
      }
      for (int64_t r = 0; r < rows; ++r) {
        if (r == 2) continue;
        double s = 0;
        for (int64_t i = 0; i < N; ++i) s += o[static_cast<size_t>(r * N + i)];
        EXPECT_NEAR(s, 1.0, dt == DType::kF32 ? 1e-5 : 4e-3) << "row " << r;  // bf16: each term within 2^-9
      }
    }
}

// ------------------------------------------------------------------------------ elementwise

namespace {
double gelu_erf_ref(double x) { return 0.5 * x * (1.0 + std::erf(x / std::sqrt(2.0))); }
double gelu_tanh_ref(double x) {
  return 0.5 * x * (1.0 + std::tanh(std::sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x)));
}
double silu_ref(double x) { return x / (1.0 + std::exp(-x)); }
}  // namespace

TEST(Elementwise, UnaryActivations) {
  struct Case {
    const char* name;
    double (*ref)(double);
    ValueId (*build)(Graph&, ValueId);
  };
  const Case cases[] = {
      {"gelu_erf", gelu_erf_ref, [](Graph& g, ValueId x) { return g.gelu(x, false); }},
      {"gelu_tanh", gelu_tanh_ref, [](Graph& g, ValueId x) { return g.gelu(x, true); }},
      {"silu", silu_ref, [](Graph& g, ValueId x) { return g.silu(x); }},
      {"relu", [](double x) { return x > 0 ? x : 0.0; }, [](Graph& g, ValueId x) { return g.relu(x); }},
      {"scale", [](double x) { return x * -1.75 + 0.5; }, [](Graph& g, ValueId x) { return g.scale(x, -1.75f, 0.5f); }},
  };
  for (const Case& c : cases)
    for (DType dt : kFloatTypes)
      for (const Shape& s : {Shape{7}, Shape{3, 33}, Shape{41, 1000}}) {
        Graph g;
        c.build(g, g.input("x", s, dt));
        Tensor xin = random_tensor(s, dt, 11, -6.f, 6.f);
        if (s.numel() > 2) {  // tails: exp overflow/underflow must not produce NaN
          Tensor f = xin.to(DType::kF32);
          f.data<float>()[0] = 120.f;
          f.data<float>()[1] = -120.f;
          xin = dt == DType::kF32 ? f : f.to(dt);
        }
        const auto xv = as_double(xin);
        std::vector<double> ref(xv.size());
        for (size_t i = 0; i < xv.size(); ++i) ref[i] = c.ref(xv[i]);
        Tensor out = run_op(g, {xin});
        EXPECT_EQ(out.dtype(), dt);
        expect_close(out, ref, kF32Transc, std::string(c.name) + " " + dtype_name(dt) + " " + s.str());
      }
}

TEST(Elementwise, GatedUnits) {
  for (DType dt : kFloatTypes)
    for (const Shape& s : {Shape{5, 7}, Shape{50, 720}})
      for (bool swi : {true, false}) {
        Graph g;
        const ValueId a = g.input("gate", s, dt), b = g.input("up", s, dt);
        swi ? g.swiglu(a, b) : g.geglu(a, b);
        Tensor gt = random_tensor(s, dt, 21, -5.f, 5.f), up = random_tensor(s, dt, 22, -2.f, 2.f);
        const auto gv = as_double(gt), uv = as_double(up);
        std::vector<double> ref(gv.size());
        for (size_t i = 0; i < gv.size(); ++i) ref[i] = (swi ? silu_ref(gv[i]) : gelu_tanh_ref(gv[i])) * uv[i];
        expect_close(run_op(g, {gt, up}), ref, kF32Transc,
                     std::string(swi ? "swiglu " : "geglu ") + dtype_name(dt) + " " + s.str());
      }
}

namespace {
// Numpy broadcasting reference.
std::vector<double> broadcast_ref(const Tensor& a, const Tensor& b, bool add, Shape* out_shape) {
  const Shape& sa = a.shape();
  const Shape& sb = b.shape();
  const int r = std::max(sa.rank(), sb.rank());
  Shape os;
  for (int i = 0; i < r; ++i) {
    const int ia = i - (r - sa.rank()), ib = i - (r - sb.rank());
    const int64_t da = ia >= 0 ? sa[ia] : 1, db = ib >= 0 ? sb[ib] : 1;
    os.push_back(std::max(da, db));
  }
  *out_shape = os;
  const auto av = as_double(a), bv = as_double(b);
  std::vector<double> out(static_cast<size_t>(os.numel()));
  std::vector<int64_t> idx(static_cast<size_t>(r));
  for (int64_t f = 0; f < os.numel(); ++f) {
    int64_t rem = f;
    for (int d = r - 1; d >= 0; --d) {
      idx[d] = rem % os[d];
      rem /= os[d];
    }
    int64_t ia = 0, ib = 0;
    for (int d = 0; d < r; ++d) {
      const int da = d - (r - sa.rank()), db = d - (r - sb.rank());
      if (da >= 0) ia = ia * sa[da] + (sa[da] == 1 ? 0 : idx[d]);
      if (db >= 0) ib = ib * sb[db] + (sb[db] == 1 ? 0 : idx[d]);
    }
    out[static_cast<size_t>(f)] = add ? av[ia] + bv[ib] : av[ia] * bv[ib];
  }
  return out;
}
}  // namespace

TEST(Elementwise, AddMulBroadcasting) {
  const std::pair<Shape, Shape> shapes[] = {
      {{3, 5, 7}, {3, 5, 7}},          // same shape
      {{241, 960}, {960}},             // row broadcast, large enough to go parallel
      {{3, 5, 7}, {7}},                // row broadcast of b
      {{7}, {3, 5, 7}},                // row broadcast of a
      {{3, 1, 7}, {1, 5, 1}},          // both sides broadcast
      {{4, 1}, {1, 6}},                // outer product
      {{2, 3, 4, 5}, {3, 1, 5}},       // middle broadcast dim
      {{13, 33}, {1}},                 // scalar
      {{1}, {13, 33}},                 // scalar on the left
      {{8, 1, 1000}, {8, 33, 1000}},   // inner 1000 with broadcast outer, parallel
      {{2, 1, 9000}, {1, 3, 9000}},    // inner row longer than one chunk
      {{1, 1}, {1, 1}},                // single element
  };
  for (DType dt : kFloatTypes)
    for (const auto& sh : shapes)
      for (bool add : {true, false}) {
        Graph g;
        const ValueId a = g.input("a", sh.first, dt), b = g.input("b", sh.second, dt);
        add ? g.add(a, b) : g.mul(a, b);
        Tensor ta = random_tensor(sh.first, dt, 31), tb = random_tensor(sh.second, dt, 32);
        Shape os;
        const auto ref = broadcast_ref(ta, tb, add, &os);
        Tensor out = run_op(g, {ta, tb});
        EXPECT_EQ(out.shape(), os);
        expect_close(out, ref, kF32Exact,
                     std::string(add ? "add " : "mul ") + dtype_name(dt) + " " + sh.first.str() + " op " +
                         sh.second.str());
      }
}

TEST(Elementwise, CastBetweenTypes) {
  const Shape s{3, 37};
  // f32 <-> bf16 / f16 must round exactly as the scalar converters do.
  Tensor x = random_tensor(s, DType::kF32, 41, -300.f, 300.f);
  for (DType to : {DType::kBF16, DType::kF16, DType::kF32}) {
    Graph g;
    g.cast(g.input("x", s, DType::kF32), to);
    Tensor out = run_op(g, {x});
    ASSERT_EQ(out.dtype(), to);
    EXPECT_TRUE(bytes_equal(out, x.to(to))) << "f32 -> " << dtype_name(to);
  }
  for (DType from : {DType::kBF16, DType::kF16})
    for (DType to : {DType::kF32, DType::kBF16, DType::kF16}) {
      Tensor xin = x.to(from);
      Graph g;
      g.cast(g.input("x", s, from), to);
      Tensor out = run_op(g, {xin});
      EXPECT_TRUE(bytes_equal(out, xin.to(to))) << dtype_name(from) << " -> " << dtype_name(to);
    }
  // Integer ids/positions to float.
  Tensor i32 = Tensor::empty(s, DType::kI32);
  Tensor i64 = Tensor::empty(s, DType::kI64);
  for (int64_t i = 0; i < s.numel(); ++i) {
    i32.data<int32_t>()[i] = static_cast<int32_t>(i * 37 - 2000);
    i64.data<int64_t>()[i] = i * 1000003 - 70000;
  }
  for (const Tensor& t : {i32, i64})
    for (DType to : {DType::kF32, DType::kBF16}) {
      Graph g;
      g.cast(g.input("x", s, t.dtype()), to);
      Tensor out = run_op(g, {t});
      std::vector<double> ref(static_cast<size_t>(s.numel()));
      for (int64_t i = 0; i < s.numel(); ++i)
        ref[i] = t.dtype() == DType::kI32 ? t.data<int32_t>()[i] : static_cast<double>(t.data<int64_t>()[i]);
      expect_close(out, ref, 1e-14, std::string(dtype_name(t.dtype())) + " -> " + dtype_name(to));
    }
  Graph g;
  g.cast(g.input("x", s, DType::kF32), DType::kI32);
  EXPECT_FALSE(make_cpu_backend({1})->supports(g, g.nodes().back())) << "f32 -> i32 is not a CPU cast";
}

// ----------------------------------------------------------------------------------- layout

TEST(Layout, ConcatAnyAxisAndDtype) {
  const DType types[] = {DType::kF32, DType::kBF16, DType::kI32, DType::kI64, DType::kBool, DType::kU8};
  for (DType dt : types)
    for (int axis : {0, 1, 2, -1}) {
      const Shape s0{3, 4, 5};
      Shape s1 = s0, s2 = s0;
      const int ax = axis < 0 ? axis + 3 : axis;
      s1[ax] = 2;
      s2[ax] = 7;
      Tensor t0 = pattern_tensor(s0, dt, 1), t1 = pattern_tensor(s1, dt, 2), t2 = pattern_tensor(s2, dt, 3);
      Graph g;
      g.concat({g.input("a", s0, dt), g.input("b", s1, dt), g.input("c", s2, dt)}, axis);
      Tensor out = run_op(g, {t0, t1, t2});
      // Reference: element by element with logical indices, on raw bytes.
      const size_t es = dtype_size(dt);
      Shape os = s0;
      os[ax] = s0[ax] + s1[ax] + s2[ax];
      ASSERT_EQ(out.shape(), os);
      Tensor ref = Tensor::empty(os, dt);
      const Tensor* parts[] = {&t0, &t1, &t2};
      for (int64_t i = 0; i < os[0]; ++i)
        for (int64_t j = 0; j < os[1]; ++j)
          for (int64_t k = 0; k < os[2]; ++k) {
            int64_t idx[3] = {i, j, k};
            int p = 0;
            while (idx[ax] >= parts[p]->shape()[ax]) idx[ax] -= parts[p++]->shape()[ax];
            const Shape& ps = parts[p]->shape();
            const int64_t src = (idx[0] * ps[1] + idx[1]) * ps[2] + idx[2];
            const int64_t dst = (i * os[1] + j) * os[2] + k;
            std::memcpy(static_cast<char*>(ref.raw()) + dst * es, static_cast<const char*>(parts[p]->raw()) + src * es, es);
          }
      EXPECT_TRUE(bytes_equal(out, ref)) << dtype_name(dt) << " axis " << axis;
    }
}

TEST(Layout, SliceAnyAxis) {
  for (DType dt : {DType::kF32, DType::kBF16, DType::kI64, DType::kU8})
    for (int axis : {0, 1, 2}) {
      const Shape s{4, 6, 9};
      Tensor x = pattern_tensor(s, dt, 5);
      Graph g;
      g.slice(g.input("x", s, dt), axis, 1, s[axis] - 1);
      Tensor out = run_op(g, {x});
      Tensor ref = x.slice(axis, 1, s[axis] - 1).contiguous();
      EXPECT_TRUE(bytes_equal(out, ref)) << dtype_name(dt) << " axis " << axis;
    }
}

TEST(Layout, PermuteMatchesStridedView) {
  struct Case {
    Shape s;
    std::vector<int> perm;
  };
  const Case cases[] = {
      {{2, 50, 12, 64}, {0, 2, 1, 3}},               // [B,L,H,D] -> [B,H,L,D]
      {{3, 37, 45}, {0, 2, 1}},                      // last-two transpose, odd sizes
      {{300, 130}, {1, 0}},                          // 2D transpose spanning several tiles, parallel
      {{2, 3, 4, 5, 6}, {4, 2, 0, 3, 1}},            // general rank 5
      {{2, 1, 3, 1, 4, 2, 1, 3}, {7, 6, 5, 4, 3, 2, 1, 0}},  // rank 8 with unit dims
      {{4, 5, 6}, {0, 1, 2}},                        // identity
      {{1, 7, 1}, {2, 0, 1}},                        // only unit dims move
      {{6, 10, 7}, {2, 0, 1}},                       // innermost becomes outermost
  };
  for (DType dt : {DType::kF32, DType::kBF16, DType::kI64, DType::kU8})
    for (const Case& c : cases) {
      Tensor x = pattern_tensor(c.s, dt, 9);
      Graph g;
      g.permute(g.input("x", c.s, dt), c.perm);
      Tensor out = run_op(g, {x});
      Tensor ref = x.permute(c.perm).contiguous();
      EXPECT_TRUE(bytes_equal(out, ref)) << dtype_name(dt) << " " << c.s.str();
    }
}

TEST(Layout, EmbeddingGathersRows) {
  const int64_t V = 50, D = 33;
  for (DType tt : kFloatTypes)
    for (DType it : {DType::kI32, DType::kI64}) {
      Tensor table = random_tensor({V, D}, tt, 51);
      Tensor ids = Tensor::empty({2, 7}, it);
      for (int64_t i = 0; i < 14; ++i) {
        const int64_t id = (i * 17 + 3) % V;
        if (it == DType::kI32)
          ids.data<int32_t>()[i] = static_cast<int32_t>(id);
        else
          ids.data<int64_t>()[i] = id;
      }
      Graph g;
      g.embedding(g.weight("table", table), g.input("ids", {2, 7}, it));
      Tensor out = run_op(g, {ids});
      ASSERT_EQ(out.shape(), (Shape{2, 7, D}));
      const size_t row = static_cast<size_t>(D) * dtype_size(tt);
      for (int64_t i = 0; i < 14; ++i) {
        const int64_t id = (i * 17 + 3) % V;
        EXPECT_EQ(std::memcmp(static_cast<char*>(out.raw()) + i * row, static_cast<char*>(table.raw()) + id * row, row), 0)
            << "token " << i;
      }
    }
}

TEST(Layout, EmbeddingRejectsOutOfRangeIds) {
  const int64_t V = 10;
  for (int64_t bad : {int64_t{10}, int64_t{-1}, int64_t{1} << 40}) {
    Graph g;
    g.add(OpKind::kEmbedding, {g.weight("table", random_tensor({V, 4}, DType::kF32, 1)), g.input("ids", {3}, DType::kI64)},
          {}, "tok_embed");
    Tensor ids = Tensor::empty({3}, DType::kI64);
    ids.data<int64_t>()[0] = 1;
    ids.data<int64_t>()[1] = bad;
    ids.data<int64_t>()[2] = 2;
    try {
      run_op(g, {ids});
      ADD_FAILURE() << "no error for id " << bad;
    } catch (const InvalidArgument& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find("tok_embed"), std::string::npos) << msg;
      EXPECT_NE(msg.find("id " + std::to_string(bad)), std::string::npos) << msg;
      EXPECT_NE(msg.find("V = 10"), std::string::npos) << msg;
    }
  }
}

namespace {
// x[B, S*S, C] -> out[B, S*S/r^2, C*r^2], written exactly as the op contract states it.
std::vector<float> pixel_shuffle_ref(const std::vector<float>& x, int64_t B, int64_t S, int64_t C, int64_t r) {
  const int64_t side = S / r, No = side * side, Co = C * r * r;
  std::vector<float> out(static_cast<size_t>(B * No * Co));
  for (int64_t b = 0; b < B; ++b)
    for (int64_t Y = 0; Y < side; ++Y)
      for (int64_t X = 0; X < side; ++X)
        for (int64_t j = 0; j < r; ++j)
          for (int64_t k = 0; k < r; ++k)
            for (int64_t c = 0; c < C; ++c)
              out[(b * No + Y * side + X) * Co + (j * r + k) * C + c] = x[(b * S * S + (r * Y + j) * S + r * X + k) * C + c];
  return out;
}
}  // namespace

TEST(Layout, PixelShuffleHandChecked) {
  // S=4, r=2, C=3, x[n][c] = 3n + c. Output token 1 is (Y=0, X=1): its features are input tokens
  // 2, 3 (row 0) then 6, 7 (row 1), each 3 channels.
  const int64_t S = 4, r = 2, C = 3;
  std::vector<float> v(static_cast<size_t>(S * S * C));
  std::iota(v.begin(), v.end(), 0.f);
  Graph g;
  g.pixel_shuffle(g.input("x", {1, S * S, C}, DType::kF32), static_cast<int>(r));
  Tensor out = run_op(g, {Tensor::from_vector(v, {1, S * S, C})});
  ASSERT_EQ(out.shape(), (Shape{1, 4, 12}));
  const auto o = out.to_float_vector();
  const std::vector<float> tok0 = {0, 1, 2, 3, 4, 5, 12, 13, 14, 15, 16, 17};
  const std::vector<float> tok1 = {6, 7, 8, 9, 10, 11, 18, 19, 20, 21, 22, 23};
  const std::vector<float> tok3 = {30, 31, 32, 33, 34, 35, 42, 43, 44, 45, 46, 47};
  EXPECT_EQ(std::vector<float>(o.begin(), o.begin() + 12), tok0);
  EXPECT_EQ(std::vector<float>(o.begin() + 12, o.begin() + 24), tok1);
  EXPECT_EQ(std::vector<float>(o.begin() + 36, o.begin() + 48), tok3);
  EXPECT_EQ(o, pixel_shuffle_ref(v, 1, S, C, r));
}

TEST(Layout, PixelShuffleSmolVLMShape) {
  // SmolVLM: 32x32 patch grid, r=4, C=768; C reduced here to keep the test small.
  for (DType dt : {DType::kF32, DType::kBF16}) {
    const int64_t B = 2, S = 32, r = 4, C = 12;
    Tensor x = random_tensor({B, S * S, C}, dt, 61);
    Graph g;
    g.pixel_shuffle(g.input("x", {B, S * S, C}, dt), static_cast<int>(r));
    Tensor out = run_op(g, {x});
    ASSERT_EQ(out.shape(), (Shape{B, 64, C * 16}));
    EXPECT_EQ(out.to_float_vector(), pixel_shuffle_ref(x.to_float_vector(), B, S, C, r)) << dtype_name(dt);
  }
}

namespace {
// PyTorch F.interpolate(mode='bilinear', align_corners=False, antialias=False), in double.
std::vector<double> resize_ref(const std::vector<double>& x, int64_t P, int64_t H, int64_t W, int64_t OH, int64_t OW) {
  auto axis = [](int64_t in, int64_t out, int64_t o, int64_t* i0, int64_t* i1, double* l1) {
    const double src = std::max(0.0, (o + 0.5) * static_cast<double>(in) / out - 0.5);
    *i0 = std::min(static_cast<int64_t>(src), in - 1);
    *i1 = std::min(*i0 + 1, in - 1);
    *l1 = src - *i0;
  };
  std::vector<double> y(static_cast<size_t>(P * OH * OW));
  for (int64_t p = 0; p < P; ++p)
    for (int64_t oy = 0; oy < OH; ++oy)
      for (int64_t ox = 0; ox < OW; ++ox) {
        int64_t y0, y1, x0, x1;
        double ly, lx;
        axis(H, OH, oy, &y0, &y1, &ly);
        axis(W, OW, ox, &x0, &x1, &lx);
        auto at = [&](int64_t yy, int64_t xx) { return x[(p * H + yy) * W + xx]; };
        y[(p * OH + oy) * OW + ox] = (1 - ly) * ((1 - lx) * at(y0, x0) + lx * at(y0, x1)) +
                                     ly * ((1 - lx) * at(y1, x0) + lx * at(y1, x1));
      }
  return y;
}
}  // namespace

TEST(Layout, ResizeBilinearHandChecked) {
  {  // 2x2 -> 4x4: the classic PyTorch example.
    Graph g;
    g.resize_bilinear(g.input("x", {1, 1, 2, 2}, DType::kF32), 4, 4);
    Tensor out = run_op(g, {Tensor::from_vector({1, 2, 3, 4}, {1, 1, 2, 2})});
    const std::vector<float> want = {1.0f, 1.25f, 1.75f, 2.0f, 1.5f, 1.75f, 2.25f, 2.5f,
                                     2.5f, 2.75f, 3.25f, 3.5f, 3.0f, 3.25f, 3.75f, 4.0f};
    const auto o = out.to_float_vector();
    ASSERT_EQ(o.size(), want.size());
    for (size_t i = 0; i < o.size(); ++i) EXPECT_NEAR(o[i], want[i], 1e-6) << i;
  }
  {  // 3x5 -> 2x7 with x[h][w] = 5h + w: bilinear is exact on a linear ramp, so out = 5*sy + sx
     // with the clamped source coordinates sy = {0.25, 1.75}, sx = {0, 4/7, 9/7, 2, 19/7, 24/7, 4}.
    std::vector<float> v(15);
    std::iota(v.begin(), v.end(), 0.f);
    Graph g;
    g.resize_bilinear(g.input("x", {1, 1, 3, 5}, DType::kF32), 2, 7);
    Tensor out = run_op(g, {Tensor::from_vector(v, {1, 1, 3, 5})});
    const double sy[2] = {0.25, 1.75};
    const double sx[7] = {0, 4.0 / 7, 9.0 / 7, 2, 19.0 / 7, 24.0 / 7, 4};
    const auto o = out.to_float_vector();
    const auto ref = resize_ref({v.begin(), v.end()}, 1, 3, 5, 2, 7);
    for (int y = 0; y < 2; ++y)
      for (int x = 0; x < 7; ++x) {
        EXPECT_NEAR(o[y * 7 + x], 5 * sy[y] + sx[x], 2e-6) << y << "," << x;
        EXPECT_NEAR(ref[y * 7 + x], 5 * sy[y] + sx[x], 1e-12) << "reference formula";
      }
  }
}

TEST(Layout, ResizeBilinearUpAndDown) {
  struct Case {
    Shape s;
    int64_t oh, ow;
  };
  const Case cases[] = {{{2, 3, 17, 23}, 32, 9}, {{1, 3, 64, 48}, 24, 100}, {{1, 2, 5, 5}, 5, 5}, {{1, 1, 1, 3}, 4, 1}};
  for (DType dt : kFloatTypes)
    for (const Case& c : cases) {
      Tensor x = random_tensor(c.s, dt, 71);
      Graph g;
      g.resize_bilinear(g.input("x", c.s, dt), c.oh, c.ow);
      Tensor out = run_op(g, {x});
      ASSERT_EQ(out.shape(), (Shape{c.s[0], c.s[1], c.oh, c.ow}));
      const auto ref = resize_ref(as_double(x), c.s[0] * c.s[1], c.s[2], c.s[3], c.oh, c.ow);
      expect_close(out, ref, kF32Exact, std::string("resize ") + dtype_name(dt) + " " + c.s.str());
    }
}

// ------------------------------------------------------------------------------ threading

TEST(Threads, OneAndTwoThreadsAgreeBitwise) {
  // Shapes large enough to cross the parallel threshold; each row/chunk is computed by one thread
  // in the same order, so results must be identical, not just close.
  std::vector<Graph> graphs(7);
  std::vector<std::vector<Tensor>> ins(7);
  const Shape s{241, 960};
  const DType dt = DType::kBF16;
  {
    Graph& g = graphs[0];
    g.rms_norm(g.input("x", s, dt), g.weight("w", random_tensor({960}, DType::kF32, 2)), 1e-6f);
    ins[0] = {random_tensor(s, dt, 1)};
  }
  {
    Graph& g = graphs[1];
    g.softmax(g.input("x", s, dt));
    ins[1] = {random_tensor(s, dt, 3, -10.f, 10.f)};
  }
  {
    Graph& g = graphs[2];
    // Separate statements: argument evaluation order would otherwise decide the input order.
    const ValueId a = g.input("a", {8, 1, 1000}, DType::kF32);
    const ValueId b = g.input("b", {8, 33, 1000}, DType::kF32);
    g.add(a, b);
    ins[2] = {random_tensor({8, 1, 1000}, DType::kF32, 4), random_tensor({8, 33, 1000}, DType::kF32, 5)};
  }
  {
    Graph& g = graphs[3];
    g.gelu(g.input("x", s, DType::kF32), true);
    ins[3] = {random_tensor(s, DType::kF32, 6, -4.f, 4.f)};
  }
  {
    Graph& g = graphs[4];
    g.permute(g.input("x", {2, 256, 12, 64}, DType::kF32), {0, 2, 1, 3});
    ins[4] = {random_tensor({2, 256, 12, 64}, DType::kF32, 7)};
  }
  {
    Graph& g = graphs[5];
    g.layer_norm(g.input("x", {1024, 768}, DType::kF32), g.weight("w", random_tensor({768}, DType::kF32, 8)),
                 g.weight("b", random_tensor({768}, DType::kF32, 9)), 1e-6f);
    ins[5] = {random_tensor({1024, 768}, DType::kF32, 10)};
  }
  {
    Graph& g = graphs[6];
    g.resize_bilinear(g.input("x", {1, 3, 480, 640}, DType::kF32), 384, 384);
    ins[6] = {random_tensor({1, 3, 480, 640}, DType::kF32, 11)};
  }
  for (size_t i = 0; i < graphs.size(); ++i) {
    Tensor a = run_op(graphs[i], ins[i], 1), b = run_op(graphs[i], ins[i], 2);
    EXPECT_TRUE(bytes_equal(a, b)) << op_name(graphs[i].nodes().back().op);
  }
}

// ---------------------------------------------------------------------------- no allocation

TEST(NoAlloc, RunDoesNotTouchTheHeap) {
  ASSERT_TRUE(alloc_guard::hook_installed());
  auto be = make_cpu_backend({2});
  const Shape s{64, 1000};  // large enough that the parallel paths run
  std::vector<Graph> graphs(6);
  graphs[0].softmax(graphs[0].input("x", s, DType::kBF16));
  graphs[1].rms_norm(graphs[1].input("x", s, DType::kF32), graphs[1].weight("w", random_tensor({1000}, DType::kBF16, 1)), 1e-6f);
  {
    Graph& g = graphs[2];
    const ValueId a = g.input("a", {64, 1, 1000}, DType::kF32);
    const ValueId b = g.input("b", {1, 8, 1000}, DType::kF32);
    g.add(a, b);
  }
  {
    Graph& g = graphs[3];
    const ValueId a = g.input("a", s, DType::kF32);
    const ValueId b = g.input("b", s, DType::kF32);
    g.concat({a, b}, 1);
  }
  graphs[4].permute(graphs[4].input("x", {4, 64, 8, 64}, DType::kF32), {0, 2, 1, 3});
  graphs[5].resize_bilinear(graphs[5].input("x", {1, 3, 100, 120}, DType::kF32), 64, 64);
  for (Graph& g : graphs) {
    const Node& n = g.nodes().back();
    std::vector<Tensor> bound;
    std::vector<const Tensor*> in;
    bound.reserve(n.inputs.size());
    for (ValueId v : n.inputs) {
      const Value& val = g.value(v);
      bound.push_back(val.kind == ValueKind::kWeight ? val.constant : random_tensor(val.shape, val.dtype, 3));
      in.push_back(&bound.back());
    }
    auto k = be->prepare(g, n);
    Tensor out = Tensor::empty(g.value(n.output).shape, g.value(n.output).dtype);
    std::vector<uint8_t> scratch(k->scratch_bytes() + 1);
    KernelArgs args;
    args.inputs = in.data();
    args.num_inputs = static_cast<int>(in.size());
    args.output = &out;
    args.scratch = scratch.data();
    be->begin_run();
    k->run(args);  // warm-up: the OpenMP pool is created outside the guard
    alloc_guard::ArmScope guard(/*forbid=*/true);
    EXPECT_NO_THROW(k->run(args)) << op_name(n.op);
    EXPECT_EQ(guard.counts().allocations, 0u) << op_name(n.op);
  }
}
