// Linear / MatMul / Conv2d on the CPU backend against naive double-precision references.
//
// Bounds: f32 paths accumulate in f32 over K <= a few hundred, NMSE ~1e-14, bound 1e-10.
// bf16 outputs are rounded once to 8 significant bits (relative error <= 2^-9, uniform), so
// NMSE ~ 2^-18/3 ~ 1.3e-6 when the reference uses the same bf16-valued inputs: bound 2e-5.
// Where a path also rounds an operand to bf16 that the reference keeps exact (bf16 activations
// with f32 weights on oneDNN), the product errors add about as much again: bound 1e-4.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "backends/cpu/cpu_backend.h"
#include "core/alloc_guard.h"
#include "cpu/gemv.h"
#include "op_harness.h"
#include "vlart/error.h"

using namespace vlart;
using vlart::testing::nmse;
using vlart::testing::random_tensor;

namespace {

constexpr double kF32Bound = 1e-10;
constexpr double kBf16Bound = 2e-5;
constexpr double kBf16MixedBound = 1e-4;

struct RunInfo {
  size_t scratch_bytes = 0;
  alloc_guard::Counts counts;
};

// Like run_last_node, but gives the kernel exactly scratch_bytes() bytes followed by a sentinel
// that must survive, and counts heap allocations made by run() alone.
Tensor run_checked(Backend& backend, const Graph& g, const std::vector<Tensor>& inputs, RunInfo* info = nullptr) {
  const Node& n = g.nodes().back();
  EXPECT_TRUE(backend.supports(g, n)) << n.name;
  std::vector<Tensor> bound(g.values().size());
  for (size_t i = 0; i < g.inputs().size(); ++i) bound[static_cast<size_t>(g.inputs()[i])] = inputs.at(i);
  for (size_t i = 0; i < g.values().size(); ++i)
    if (g.values()[i].kind == ValueKind::kWeight) bound[i] = g.values()[i].constant;
  std::unique_ptr<OpKernel> k = backend.prepare(g, n);
  std::vector<const Tensor*> in;
  for (ValueId v : n.inputs) in.push_back(v == kNoValue ? nullptr : &bound[static_cast<size_t>(v)]);
  const Value& ov = g.value(n.output);
  Tensor out = Tensor::empty(ov.shape, ov.dtype);
  const size_t sb = k->scratch_bytes();
  constexpr size_t kGuard = 256;
  std::vector<uint8_t> buf(sb + kGuard + 64);
  const size_t off = (64 - reinterpret_cast<uintptr_t>(buf.data()) % 64) % 64;
  std::fill(buf.begin() + static_cast<std::ptrdiff_t>(off + sb), buf.end(), uint8_t{0xA5});
  uint8_t* scratch = buf.data() + off;
  KernelArgs args;
  args.inputs = in.data();
  args.num_inputs = static_cast<int>(in.size());
  args.output = &out;
  args.scratch = sb ? scratch : nullptr;
  backend.begin_run();
  alloc_guard::Counts c;
  {
    alloc_guard::ArmScope guard(false);
    k->run(args);
    c = guard.counts();
  }
  backend.synchronize();
  EXPECT_EQ(c.allocations, 0u) << n.name << ": run() allocated " << c.bytes << " bytes";
  for (size_t i = 0; i < kGuard; ++i)
    if (buf[off + sb + i] != 0xA5) {
      ADD_FAILURE() << n.name << ": wrote past scratch_bytes() = " << sb << " at +" << i;
      break;
    }
  if (info) *info = {sb, c};
  return out;
}

double act_ref(double v, Activation a) {
  switch (a) {
    case Activation::kNone: return v;
    case Activation::kRelu: return v > 0 ? v : 0;
    case Activation::kGeluErf: return 0.5 * v * (1 + std::erf(v / std::sqrt(2.0)));
    case Activation::kGeluTanh:
      return 0.5 * v * (1 + std::tanh(std::sqrt(2.0 / M_PI) * (v + 0.044715 * v * v * v)));
    case Activation::kSilu: return v / (1 + std::exp(-v));
  }
  return v;
}

const char* act_str(Activation a) {
  const char* names[] = {"none", "relu", "gelu_erf", "gelu_tanh", "silu"};
  return names[static_cast<int>(a)];
}

// y[m, n] = act(sum_k x[m,k] w[n,k] + b[n]) in double, from the tensors' actual (possibly bf16) values.
std::vector<float> linear_ref(const Tensor& x, const Tensor& w, const Tensor* b, Activation act) {
  const std::vector<float> xv = x.to_float_vector(), wv = w.to_float_vector();
  std::vector<float> bv = b ? b->to_float_vector() : std::vector<float>();
  const int64_t N = w.dim(0), K = w.dim(1), M = x.numel() / K;
  std::vector<float> y(static_cast<size_t>(M * N));
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 0; n < N; ++n) {
      double s = b ? bv[static_cast<size_t>(n)] : 0.0;
      for (int64_t k = 0; k < K; ++k)
        s += static_cast<double>(xv[static_cast<size_t>(m * K + k)]) * wv[static_cast<size_t>(n * K + k)];
      y[static_cast<size_t>(m * N + n)] = static_cast<float>(act_ref(s, act));
    }
  return y;
}

Shape x_shape_for(int64_t M, int64_t K) {
  // Rank > 2 inputs are flattened to M rows; use one where M factors.
  if (M == 64) return Shape{4, 16, K};
  return Shape{M, K};
}

struct LinearCase {
  int64_t M, K, N;
  DType xdt, wdt;
  bool bias;
  Activation act;
};

double run_linear(Backend& be, const LinearCase& c, uint32_t seed, RunInfo* info = nullptr,
                  std::vector<float>* got_out = nullptr) {
  Graph g;
  const ValueId x = g.input("x", x_shape_for(c.M, c.K), c.xdt);
  const Tensor wt = random_tensor(Shape{c.N, c.K}, c.wdt, seed + 1);
  const ValueId w = g.weight("w", wt);
  Tensor bt;
  ValueId b = kNoValue;
  if (c.bias) {
    bt = random_tensor(Shape{c.N}, c.wdt, seed + 2);
    b = g.weight("b", bt);
  }
  g.linear(x, w, b, c.act);
  g.nodes().back().name = "lin";
  const Tensor xt = random_tensor(x_shape_for(c.M, c.K), c.xdt, seed);
  const Tensor y = run_checked(be, g, {xt}, info);
  EXPECT_EQ(y.dtype(), c.xdt);
  EXPECT_EQ(y.shape().dim(-1), c.N);
  if (got_out) *got_out = y.to_float_vector();
  return nmse(y.to_float_vector(), linear_ref(xt, wt, c.bias ? &bt : nullptr, c.act));
}

std::string describe(const LinearCase& c) {
  return detail::concat("M=", c.M, " K=", c.K, " N=", c.N, " x=", dtype_name(c.xdt), " w=", dtype_name(c.wdt),
                        " bias=", c.bias, " act=", act_str(c.act));
}

const Activation kActs[] = {Activation::kNone, Activation::kRelu, Activation::kGeluErf, Activation::kGeluTanh,
                            Activation::kSilu};

}  // namespace

TEST(LinearCpu, HookInstalled) { EXPECT_TRUE(alloc_guard::hook_installed()); }

TEST(LinearCpu, F32AllActivationsBiasAndRowCounts) {
  auto be = make_cpu_backend({2});
  uint32_t seed = 10;
  for (int64_t M : {1, 3, 16, 17, 64})
    for (auto kn : {std::pair<int64_t, int64_t>{33, 17}, {64, 48}})
      for (bool bias : {false, true})
        for (Activation act : kActs) {
          const LinearCase c{M, kn.first, kn.second, DType::kF32, DType::kF32, bias, act};
          EXPECT_LE(run_linear(*be, c, seed++), kF32Bound) << describe(c);
        }
}

TEST(LinearCpu, Bf16AllActivationsBiasAndRowCounts) {
  auto be = make_cpu_backend({2});
  uint32_t seed = 500;
  for (int64_t M : {1, 3, 16, 17, 64})
    for (bool bias : {false, true})
      for (Activation act : kActs) {
        const LinearCase c{M, 33, 17, DType::kBF16, DType::kBF16, bias, act};
        EXPECT_LE(run_linear(*be, c, seed++), kBf16Bound) << describe(c);
      }
}

TEST(LinearCpu, MixedWeightAndActivationDtypes) {
  auto be = make_cpu_backend({2});
  uint32_t seed = 900;
  for (int64_t M : {1, 5, 17, 64}) {
    // f32 activations with bf16 weights: both paths multiply the exact bf16 weight values in f32.
    const LinearCase a{M, 65, 31, DType::kF32, DType::kBF16, true, Activation::kGeluTanh};
    EXPECT_LE(run_linear(*be, a, seed++), kF32Bound) << describe(a);
    // bf16 activations with f32 weights: the GEMV keeps f32 weights, oneDNN converts them to bf16.
    const LinearCase b{M, 65, 31, DType::kBF16, DType::kF32, true, Activation::kSilu};
    EXPECT_LE(run_linear(*be, b, seed++), M <= 16 ? kBf16Bound : kBf16MixedBound) << describe(b);
  }
}

TEST(LinearCpu, LongReductionAndWideOutput) {
  auto be = make_cpu_backend({2});
  for (int64_t M : {2, 16, 40}) {
    const LinearCase c{M, 1000, 129, DType::kF32, DType::kF32, true, Activation::kNone};
    EXPECT_LE(run_linear(*be, c, 77), 1e-9) << describe(c);  // K = 1000: f32 sums drift a bit more
  }
}

TEST(LinearCpu, GemvForcedIsaPathsMatchReference) {
  auto be = make_cpu_backend({2});
  const GemvIsa best = gemv_active_isa();
  uint32_t seed = 1300;
  for (GemvIsa isa : {GemvIsa::kScalar, GemvIsa::kAvx2, GemvIsa::kAvx512, GemvIsa::kAvx512Bf16, GemvIsa::kNeon}) {
    if (!gemv_isa_supported(isa)) {
      // Not a gtest skip: the paths this CPU has did run.
      std::printf("[ INFO ] gemv %s: not on this CPU (best path %s), not run\n", gemv_isa_name(isa), gemv_isa_name(best));
      continue;
    }
    gemv_force_isa(isa);
    EXPECT_EQ(gemv_active_isa(), isa);
    for (int64_t M : {1, 2, 5, 16})
      for (int64_t K : {7, 33, 100, 130})
        for (DType wdt : {DType::kF32, DType::kBF16}) {  // bf16 x bf16 takes vdpbf16ps on kAvx512Bf16
          const LinearCase c{M, K, 17, DType::kF32, wdt, true, Activation::kRelu};
          EXPECT_LE(run_linear(*be, c, seed++), kF32Bound) << describe(c) << " isa=" << gemv_isa_name(isa);
          const LinearCase d{M, K, 18, DType::kBF16, wdt, false, Activation::kGeluErf};
          EXPECT_LE(run_linear(*be, d, seed++), kBf16Bound) << describe(d) << " isa=" << gemv_isa_name(isa);
        }
  }
  gemv_force_isa(GemvIsa::kAuto);
  EXPECT_EQ(gemv_active_isa(), best);
}

TEST(LinearCpu, GemvEveryRowCountAndRuntimeWeightPerIsa) {
  // Packed-panel kernels exist per row count 1..16; a runtime (non-constant) weight takes the
  // row-tile path of each ISA instead.
  auto be = make_cpu_backend({2});
  uint32_t seed = 1700;
  for (int64_t M = 1; M <= 16; ++M) {
    const LinearCase a{M, 37, 33, DType::kF32, DType::kF32, true, Activation::kNone};
    EXPECT_LE(run_linear(*be, a, seed++), kF32Bound) << describe(a);
    const LinearCase b{M, 37, 33, DType::kBF16, DType::kBF16, true, Activation::kNone};
    EXPECT_LE(run_linear(*be, b, seed++), kBf16Bound) << describe(b);
  }
  for (GemvIsa isa : {GemvIsa::kScalar, GemvIsa::kAvx2, GemvIsa::kAvx512, GemvIsa::kAvx512Bf16, GemvIsa::kNeon}) {
    if (!gemv_isa_supported(isa)) continue;
    gemv_force_isa(isa);
    for (DType dt : {DType::kF32, DType::kBF16}) {
      Graph g;
      const ValueId x = g.input("x", Shape{6, 77}, dt);
      const ValueId w = g.input("w", Shape{21, 77}, dt);
      g.linear(x, w, kNoValue, Activation::kNone);
      const Tensor xt = random_tensor(Shape{6, 77}, dt, seed++), wt = random_tensor(Shape{21, 77}, dt, seed++);
      const Tensor y = run_checked(*be, g, {xt, wt});
      EXPECT_LE(nmse(y.to_float_vector(), linear_ref(xt, wt, nullptr, Activation::kNone)),
                dt == DType::kF32 ? kF32Bound : kBf16Bound)
          << gemv_isa_name(isa) << " " << dtype_name(dt);
    }
  }
  gemv_force_isa(GemvIsa::kAuto);
}

// The ISA ladder per architecture: x86 builds never report NEON, aarch64 builds take NEON and fall
// back to it when an x86 path is forced (and to scalar only when scalar is asked for).
TEST(LinearCpu, GemvIsaLadderOfThisArchitecture) {
  const GemvIsa best = gemv_active_isa();
  EXPECT_TRUE(gemv_isa_supported(GemvIsa::kScalar));
  EXPECT_TRUE(gemv_isa_supported(best));
#if defined(__aarch64__)
  EXPECT_EQ(best, GemvIsa::kNeon);
  for (GemvIsa x86 : {GemvIsa::kAvx2, GemvIsa::kAvx512, GemvIsa::kAvx512Bf16}) {
    EXPECT_FALSE(gemv_isa_supported(x86)) << gemv_isa_name(x86);
    gemv_force_isa(x86);
    EXPECT_EQ(gemv_active_isa(), GemvIsa::kNeon) << gemv_isa_name(x86);
  }
  EXPECT_EQ(gemv_pack_format(false, true), GemvPack::kNone);  // the packed panels are AVX-512 only
#else
  EXPECT_FALSE(gemv_isa_supported(GemvIsa::kNeon));
  gemv_force_isa(GemvIsa::kNeon);
  EXPECT_EQ(gemv_active_isa(), best);
#endif
  gemv_force_isa(GemvIsa::kScalar);
  EXPECT_EQ(gemv_active_isa(), GemvIsa::kScalar);
  gemv_force_isa(GemvIsa::kAuto);
  EXPECT_EQ(gemv_active_isa(), best);
}

TEST(LinearCpu, GemvResultDoesNotDependOnThreadCount) {
  auto be1 = make_cpu_backend({1});
  auto be2 = make_cpu_backend({2});
  const LinearCase c{9, 257, 131, DType::kF32, DType::kBF16, true, Activation::kSilu};
  std::vector<float> y1, y2;
  run_linear(*be1, c, 42, nullptr, &y1);
  run_linear(*be2, c, 42, nullptr, &y2);
  ASSERT_EQ(y1.size(), y2.size());
  // Each output is one dot product computed the same way whichever thread owns it.
  for (size_t i = 0; i < y1.size(); ++i) ASSERT_EQ(y1[i], y2[i]) << i;
}

TEST(LinearCpu, OneDnnPathUsesScratchAndDoesNotAllocate) {
  auto be = make_cpu_backend({2});
  RunInfo info;
  const LinearCase c{256, 768, 384, DType::kBF16, DType::kBF16, true, Activation::kGeluErf};
  EXPECT_LE(run_linear(*be, c, 3, &info), kBf16Bound);
  EXPECT_EQ(info.counts.allocations, 0u);
  std::printf("oneDNN linear %s: scratch_bytes=%zu, exempt allocations in execute=%llu\n", describe(c).c_str(),
              info.scratch_bytes, static_cast<unsigned long long>(info.counts.exempt_allocations));
  // The GEMV keeps its transposed / widened activation rows in scratch.
  const LinearCase d{7, 300, 40, DType::kBF16, DType::kBF16, false, Activation::kNone};
  EXPECT_LE(run_linear(*be, d, 4, &info), kBf16Bound);
  EXPECT_EQ(info.scratch_bytes, static_cast<size_t>(gemv_work_floats(7, 300)) * 4u);
  EXPECT_EQ(info.counts.exempt_allocations, 0u);  // the GEMV calls no library
}

TEST(LinearCpu, RuntimeWeightAndBf16BiasInputs) {
  // Weight and bias as graph inputs (not constants): oneDNN reads W in place, and a bf16 bias is
  // widened into scratch each run.
  auto be = make_cpu_backend({2});
  for (int64_t M : {4, 24}) {
    Graph g;
    const ValueId x = g.input("x", Shape{M, 45}, DType::kF32);
    const ValueId w = g.input("w", Shape{19, 45}, DType::kF32);
    const ValueId b = g.input("b", Shape{19}, DType::kBF16);
    g.linear(x, w, b, Activation::kRelu);
    const Tensor xt = random_tensor(Shape{M, 45}, DType::kF32, 1);
    const Tensor wt = random_tensor(Shape{19, 45}, DType::kF32, 2);
    const Tensor bt = random_tensor(Shape{19}, DType::kBF16, 3);
    RunInfo info;
    const Tensor y = run_checked(*be, g, {xt, wt, bt}, &info);
    EXPECT_LE(nmse(y.to_float_vector(), linear_ref(xt, wt, &bt, Activation::kRelu)), kF32Bound) << "M=" << M;
    if (M > 16) {
      EXPECT_GE(info.scratch_bytes, 19u * 4u);
    }
  }
}

TEST(LinearCpu, UnsupportedDtypesAreRejected) {
  auto be = make_cpu_backend({2});
  Graph g;
  const ValueId x = g.input("x", Shape{2, 8}, DType::kF16);
  const ValueId w = g.weight("w", random_tensor(Shape{4, 8}, DType::kF32, 1));
  g.linear(x, w);
  EXPECT_FALSE(be->supports(g, g.nodes().back()));
  EXPECT_THROW(be->prepare(g, g.nodes().back()), UnsupportedError);
}

// ------------------------------------------------------------------ MatMul

namespace {

// Naive batched matmul with numpy broadcasting over the leading dims.
std::vector<float> matmul_ref(const Tensor& a, const Tensor& b, bool tb, const Shape& out) {
  const std::vector<float> av = a.to_float_vector(), bv = b.to_float_vector();
  const int r = out.rank();
  const int64_t M = a.dim(-2), K = a.dim(-1), N = out[r - 1];
  int64_t batch = 1;
  for (int i = 0; i < r - 2; ++i) batch *= out[i];
  std::vector<float> y(static_cast<size_t>(out.numel()));
  for (int64_t bi = 0; bi < batch; ++bi) {
    // Decompose the output batch index, then map to each operand (dims of 1 broadcast).
    int64_t rem = bi, aoff = 0, boff = 0, astride = M * K, bstride = K * N;
    for (int d = r - 3; d >= 0; --d) {
      const int64_t idx = rem % out[d];
      rem /= out[d];
      const int ad = d - (r - a.rank()), bd = d - (r - b.rank());
      if (ad >= 0) {
        if (a.shape()[ad] != 1) aoff += idx * astride;
        astride *= a.shape()[ad];
      }
      if (bd >= 0) {
        if (b.shape()[bd] != 1) boff += idx * bstride;
        bstride *= b.shape()[bd];
      }
    }
    for (int64_t m = 0; m < M; ++m)
      for (int64_t n = 0; n < N; ++n) {
        double s = 0;
        for (int64_t k = 0; k < K; ++k) {
          const double bval = tb ? bv[static_cast<size_t>(boff + n * K + k)] : bv[static_cast<size_t>(boff + k * N + n)];
          s += av[static_cast<size_t>(aoff + m * K + k)] * bval;
        }
        y[static_cast<size_t>(bi * M * N + m * N + n)] = static_cast<float>(s);
      }
  }
  return y;
}

}  // namespace

TEST(MatMulCpu, BroadcastBatchAndTransposeB) {
  auto be = make_cpu_backend({2});
  struct Case {
    Shape a, b;
    bool tb;
  };
  const Case cases[] = {
      {Shape{5, 7}, Shape{7, 9}, false},
      {Shape{2, 3, 5, 7}, Shape{3, 7, 4}, false},     // b broadcast over the outer batch
      {Shape{1, 5, 7}, Shape{4, 7, 9}, false},        // a broadcast
      {Shape{2, 1, 17, 33}, Shape{1, 3, 33, 6}, false},  // both broadcast
      {Shape{2, 3, 5, 7}, Shape{2, 1, 9, 7}, true},   // b^T with broadcast
      {Shape{4, 16, 64}, Shape{4, 20, 64}, true},     // attention-like q k^T
  };
  uint32_t seed = 2000;
  for (DType dt : {DType::kF32, DType::kBF16})
    for (const Case& c : cases) {
      Graph g;
      const ValueId a = g.input("a", c.a, dt);
      const ValueId b = g.input("b", c.b, dt);
      g.matmul(a, b, c.tb);
      g.nodes().back().name = "mm";
      const Tensor at = random_tensor(c.a, dt, seed++), bt = random_tensor(c.b, dt, seed++);
      const Tensor y = run_checked(*be, g, {at, bt});
      EXPECT_EQ(y.shape(), g.value(g.nodes().back().output).shape);
      const double e = nmse(y.to_float_vector(), matmul_ref(at, bt, c.tb, y.shape()));
      EXPECT_LE(e, dt == DType::kF32 ? kF32Bound : kBf16Bound)
          << c.a.str() << " x " << c.b.str() << (c.tb ? "^T " : " ") << dtype_name(dt);
    }
}

TEST(MatMulCpu, MixedDtypesAreRejected) {
  auto be = make_cpu_backend({2});
  Graph g;
  const ValueId a = g.input("a", Shape{3, 4}, DType::kF32);
  const ValueId b = g.input("b", Shape{4, 5}, DType::kBF16);
  g.matmul(a, b);
  EXPECT_FALSE(be->supports(g, g.nodes().back()));
}

// ------------------------------------------------------------------ Conv2d

namespace {

std::vector<float> conv_ref(const Tensor& x, const Tensor& w, const Tensor* b, int s, int p, const Shape& out) {
  const std::vector<float> xv = x.to_float_vector(), wv = w.to_float_vector();
  const std::vector<float> bv = b ? b->to_float_vector() : std::vector<float>();
  const int64_t B = x.dim(0), C = x.dim(1), H = x.dim(2), W = x.dim(3);
  const int64_t O = w.dim(0), KH = w.dim(2), KW = w.dim(3), OH = out[2], OW = out[3];
  std::vector<float> y(static_cast<size_t>(out.numel()));
  for (int64_t bi = 0; bi < B; ++bi)
    for (int64_t o = 0; o < O; ++o)
      for (int64_t oy = 0; oy < OH; ++oy)
        for (int64_t ox = 0; ox < OW; ++ox) {
          double acc = b ? bv[static_cast<size_t>(o)] : 0.0;
          for (int64_t c = 0; c < C; ++c)
            for (int64_t ky = 0; ky < KH; ++ky)
              for (int64_t kx = 0; kx < KW; ++kx) {
                const int64_t iy = oy * s - p + ky, ix = ox * s - p + kx;
                if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
                acc += static_cast<double>(xv[static_cast<size_t>(((bi * C + c) * H + iy) * W + ix)]) *
                       wv[static_cast<size_t>(((o * C + c) * KH + ky) * KW + kx)];
              }
          y[static_cast<size_t>(((bi * O + o) * OH + oy) * OW + ox)] = static_cast<float>(acc);
        }
  return y;
}

}  // namespace

TEST(Conv2dCpu, PatchEmbeddingAndPaddedStride2) {
  auto be = make_cpu_backend({2});
  struct Case {
    Shape x, w;
    int stride, pad;
    bool bias;
  };
  const Case cases[] = {
      {Shape{2, 3, 32, 48}, Shape{8, 3, 16, 16}, 16, 0, true},   // patch embedding
      {Shape{1, 3, 40, 35}, Shape{5, 3, 16, 16}, 16, 0, false},  // leftover rows/cols never covered
      {Shape{1, 4, 15, 15}, Shape{6, 4, 3, 3}, 2, 1, true},       // 3x3 pad 1 stride 2, odd size
      {Shape{2, 5, 16, 12}, Shape{7, 5, 3, 3}, 2, 1, false},      // even size
  };
  uint32_t seed = 3000;
  for (DType dt : {DType::kF32, DType::kBF16})
    for (const Case& c : cases) {
      Graph g;
      const ValueId x = g.input("x", c.x, dt);
      const Tensor wt = random_tensor(c.w, dt, seed++);
      const Tensor bt = random_tensor(Shape{c.w[0]}, dt, seed++);
      const ValueId w = g.weight("w", wt);
      const ValueId b = c.bias ? g.weight("b", bt) : kNoValue;
      g.conv2d(x, w, b, c.stride, c.pad);
      g.nodes().back().name = "conv";
      const Tensor xt = random_tensor(c.x, dt, seed++);
      const Tensor y = run_checked(*be, g, {xt});
      const double e = nmse(y.to_float_vector(), conv_ref(xt, wt, c.bias ? &bt : nullptr, c.stride, c.pad, y.shape()));
      EXPECT_LE(e, dt == DType::kF32 ? kF32Bound : kBf16Bound)
          << "x " << c.x.str() << " w " << c.w.str() << " s" << c.stride << " p" << c.pad << " " << dtype_name(dt);
    }
}
