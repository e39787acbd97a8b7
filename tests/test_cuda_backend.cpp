// CUDA backend: Linear (cuBLASLt), RMSNorm, elementwise kernels, copies, errors.
//
// Without a usable GPU (or in a build without CUDA) the device tests skip with the reason
// make_cuda_backend gave; the factory test and the allocator bucket test always run.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/alloc_guard.h"
#include "core/backend.h"
#include "core/graph.h"
#include "op_harness.h"
#include "vlart/error.h"
#include "vlart/tensor.h"

#ifdef VLART_WITH_CUDA
#include "backends/cuda/cuda_backend.h"
#endif

using namespace vlart;
using vlart::testing::nmse;
using vlart::testing::random_tensor;

namespace {

// ---------------- always runs ----------------
TEST(CudaBackendFactory, ReturnsBackendOrReasonNeverThrows) {
  std::string why;
  std::unique_ptr<Backend> be;
  ASSERT_NO_THROW(be = make_cuda_backend({}, &why));
  if (be) {
    EXPECT_EQ(be->name(), "cuda");
    EXPECT_EQ(be->device(), Device::cuda(0));
    EXPECT_EQ(be->allocator()->device(), Device::cuda(0));
  } else {
    EXPECT_FALSE(why.empty());
    std::printf("make_cuda_backend -> nullptr: %s\n", why.c_str());
  }
  // A device index that cannot exist: nullptr with a reason, no throw.
  std::string why_bad;
  std::unique_ptr<Backend> bad;
  CudaBackendOptions opts;
  opts.device = 4096;
  ASSERT_NO_THROW(bad = make_cuda_backend(opts, &why_bad));
  EXPECT_EQ(bad, nullptr);
  EXPECT_FALSE(why_bad.empty());
  // `why` is optional.
  EXPECT_NO_THROW(make_cuda_backend(opts, nullptr));
}

#ifdef VLART_WITH_CUDA
TEST(CudaAllocatorBuckets, RoundUpWithBoundedWaste) {
  using cuda::CudaAllocator;
  EXPECT_EQ(CudaAllocator::bucket_size(0), 512u);
  EXPECT_EQ(CudaAllocator::bucket_size(1), 512u);
  EXPECT_EQ(CudaAllocator::bucket_size(512), 512u);
  EXPECT_EQ(CudaAllocator::bucket_size(513), 1024u);
  EXPECT_EQ(CudaAllocator::bucket_size(1 << 20), size_t{1} << 20);
  EXPECT_EQ(CudaAllocator::bucket_size((1 << 20) + 1), (size_t{1} << 20) + (size_t{1} << 18));
  for (size_t n = 1; n < (size_t{1} << 32); n = n * 3 + 7) {
    const size_t b = CudaAllocator::bucket_size(n);
    EXPECT_GE(b, n);
    EXPECT_LE(b, n < 512 ? 512 : n + n / 4 + 512) << n;
    EXPECT_EQ(b % 512, 0u) << n;
    EXPECT_EQ(CudaAllocator::bucket_size(b), b) << "a bucket size maps to itself: " << n;
  }
}
#endif

// ---------------- device tests ----------------
double gelu_erf_ref(double x) { return 0.5 * x * (1.0 + std::erf(x / std::sqrt(2.0))); }
double gelu_tanh_ref(double x) {
  return 0.5 * x * (1.0 + std::tanh(std::sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x)));
}
double silu_ref(double x) { return x / (1.0 + std::exp(-x)); }
double act_ref(Activation a, double x) {
  switch (a) {
    case Activation::kNone: return x;
    case Activation::kRelu: return x > 0 ? x : 0;
    case Activation::kGeluErf: return gelu_erf_ref(x);
    case Activation::kGeluTanh: return gelu_tanh_ref(x);
    case Activation::kSilu: return silu_ref(x);
  }
  return x;
}

struct LinearCase {
  int64_t m, k, n;
  bool bias;
  Activation act;
};

// y = act(x W^T + b) in double from the (already rounded) inputs.
std::vector<float> linear_ref(const std::vector<float>& x, const std::vector<float>& w, const std::vector<float>* b,
                              int64_t m, int64_t k, int64_t n, Activation act) {
  std::vector<float> y(static_cast<size_t>(m * n));
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double s = b ? (*b)[static_cast<size_t>(j)] : 0.0;
      for (int64_t p = 0; p < k; ++p)
        s += static_cast<double>(x[static_cast<size_t>(i * k + p)]) * w[static_cast<size_t>(j * k + p)];
      y[static_cast<size_t>(i * n + j)] = static_cast<float>(act_ref(act, s));
    }
  return y;
}

class CudaBackendTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why;
    be_ = make_cuda_backend({}, &why);
    if (!be_) GTEST_SKIP() << "no CUDA device: " << why;
  }

  Tensor to_device(const Tensor& host) {
    Tensor d = Tensor::empty(host.shape(), host.dtype(), be_->allocator());
    be_->copy(host, d);
    return d;
  }
  Tensor to_host(const Tensor& dev) {
    Tensor h = Tensor::empty(dev.shape(), dev.dtype());
    be_->copy(dev, h);
    be_->synchronize();
    return h;
  }

  // Runs the last node of `g` with `inputs` (CPU tensors, bound to g.inputs() in order) uploaded
  // to the device; weights stay in the graph (the kernel uploads its own copy at prepare).
  Tensor run_node(const Graph& g, const std::vector<Tensor>& inputs) {
    const Node& n = g.nodes().back();
    EXPECT_TRUE(be_->supports(g, n)) << n.name;
    std::vector<Tensor> bound(g.values().size());
    for (size_t i = 0; i < g.inputs().size(); ++i) bound[static_cast<size_t>(g.inputs()[i])] = to_device(inputs.at(i));
    for (size_t i = 0; i < g.values().size(); ++i)
      if (g.values()[i].kind == ValueKind::kWeight) bound[i] = g.values()[i].constant;
    std::unique_ptr<OpKernel> k = be_->prepare(g, n);
    std::vector<const Tensor*> in;
    for (ValueId v : n.inputs) in.push_back(v == kNoValue ? nullptr : &bound[static_cast<size_t>(v)]);
    const Value& ov = g.value(n.output);
    Tensor out = Tensor::empty(ov.shape, ov.dtype, be_->allocator());
    KernelArgs args;
    args.inputs = in.data();
    args.num_inputs = static_cast<int>(in.size());
    args.output = &out;
    be_->begin_run();
    {
      alloc_guard::ArmScope arm(/*forbid=*/false);
      k->run(args);
      const auto c = arm.counts();
      EXPECT_EQ(c.allocations, 0u) << n.name << ": run() allocated on the host heap";
      if (c.exempt_allocations > 0)
        std::printf("%s: %llu exempt allocations inside library calls\n", n.name.c_str(),
                    static_cast<unsigned long long>(c.exempt_allocations));
    }
    return to_host(out);
  }

  void check_linear(DType dt, const LinearCase& c, double bound, uint32_t seed) {
    Graph g;
    // Rank-3 input when M factors, to check that leading dims are flattened.
    const Shape xs = c.m % 2 == 0 && c.m > 2 ? Shape{2, c.m / 2, c.k} : Shape{c.m, c.k};
    const ValueId x = g.input("x", xs, dt);
    const Tensor W = random_tensor({c.n, c.k}, dt, seed + 1, -0.5f, 0.5f);
    const Tensor B = random_tensor({c.n}, dt, seed + 2);
    const ValueId w = g.weight("w", W);
    const ValueId b = c.bias ? g.weight("b", B) : kNoValue;
    g.mark_output(g.linear(x, w, b, c.act));
    const Tensor X = random_tensor(xs, dt, seed);
    const std::vector<float> bv = B.to_float_vector();
    const auto ref = linear_ref(X.to_float_vector(), W.to_float_vector(), c.bias ? &bv : nullptr, c.m, c.k, c.n, c.act);
    const Tensor y = run_node(g, {X});
    ASSERT_EQ(y.dtype(), dt);
    EXPECT_LT(nmse(y.to_float_vector(), ref), bound)
        << dtype_name(dt) << " M=" << c.m << " K=" << c.k << " N=" << c.n << " bias=" << c.bias
        << " act=" << static_cast<int>(c.act);
  }

  std::unique_ptr<Backend> be_;
};

const LinearCase kLinearCases[] = {
    {1, 1, 1, false, Activation::kNone},        {1, 7, 5, true, Activation::kNone},
    {3, 33, 17, true, Activation::kRelu},       {8, 64, 96, true, Activation::kGeluTanh},
    {5, 129, 31, false, Activation::kGeluTanh}, {6, 100, 77, true, Activation::kGeluErf},
    {7, 48, 50, true, Activation::kSilu},       {64, 960, 257, false, Activation::kRelu},
    {33, 768, 300, true, Activation::kNone},
};

TEST_F(CudaBackendTest, LinearF32MatchesDoubleReference) {
  uint32_t seed = 10;
  for (const auto& c : kLinearCases) check_linear(DType::kF32, c, 1e-10, seed += 10);
}

TEST_F(CudaBackendTest, LinearBf16MatchesDoubleReference) {
  uint32_t seed = 20;
  // bf16 output rounding alone is ~2^-9 relative (NMSE ~1e-6); fused-vs-separate activation adds one more.
  for (const auto& c : kLinearCases) check_linear(DType::kBF16, c, 2e-5, seed += 10);
}

#ifdef VLART_WITH_CUDA
TEST_F(CudaBackendTest, LinearF32WithTf32WithinLooserBound) {
  auto* cb = dynamic_cast<cuda::CudaBackend*>(be_.get());
  ASSERT_NE(cb, nullptr);
  cb->set_allow_tf32(true);
  uint32_t seed = 30;
  // TF32 keeps 10 mantissa bits of each operand: ~1e-3 relative per product.
  for (const auto& c : kLinearCases) check_linear(DType::kF32, c, 1e-5, seed += 10);
  cb->set_allow_tf32(false);
}

#endif

TEST_F(CudaBackendTest, LinearQuantizedWeightIsDequantizedAtPrepare) {
  Graph g;
  const ValueId x = g.input("x", {4, 64}, DType::kF32);
  const Tensor Wq = random_tensor({24, 64}, DType::kF32, 5).to(DType::kQ8G32);
  g.mark_output(g.linear(x, g.weight("wq", Wq), kNoValue));
  const Tensor X = random_tensor({4, 64}, DType::kF32, 6);
  const auto ref = linear_ref(X.to_float_vector(), Wq.to_float_vector(), nullptr, 4, 64, 24, Activation::kNone);
  EXPECT_LT(nmse(run_node(g, {X}).to_float_vector(), ref), 1e-10);
}

std::vector<float> rms_ref(const std::vector<float>& x, const std::vector<float>& w, int64_t rows, int64_t d, float eps,
                           bool plus_one) {
  std::vector<float> y(x.size());
  for (int64_t r = 0; r < rows; ++r) {
    double ss = 0;
    for (int64_t i = 0; i < d; ++i) ss += static_cast<double>(x[static_cast<size_t>(r * d + i)]) * x[static_cast<size_t>(r * d + i)];
    const double inv = 1.0 / std::sqrt(ss / static_cast<double>(d) + eps);
    for (int64_t i = 0; i < d; ++i) {
      const double g = plus_one ? 1.0 + w[static_cast<size_t>(i)] : w[static_cast<size_t>(i)];
      y[static_cast<size_t>(r * d + i)] = static_cast<float>(x[static_cast<size_t>(r * d + i)] * inv * g);
    }
  }
  return y;
}

TEST_F(CudaBackendTest, RmsNormBothFormsF32AndBf16) {
  const struct { int64_t rows, d; } shapes[] = {{1, 1}, {3, 7}, {5, 33}, {4, 960}, {2, 2304}, {3, 4099}};
  uint32_t seed = 100;
  for (DType dt : {DType::kF32, DType::kBF16})
    for (bool plus_one : {false, true})
      for (const auto& s : shapes) {
        Graph g;
        const ValueId x = g.input("x", {s.rows, s.d}, dt);
        const Tensor W = random_tensor({s.d}, dt, ++seed, 0.5f, 1.5f);
        g.mark_output(g.rms_norm(x, g.weight("w", W), 1e-6f, plus_one));
        const Tensor X = random_tensor({s.rows, s.d}, dt, ++seed, -2.f, 2.f);
        const auto ref = rms_ref(X.to_float_vector(), W.to_float_vector(), s.rows, s.d, 1e-6f, plus_one);
        EXPECT_LT(nmse(run_node(g, {X}).to_float_vector(), ref), dt == DType::kF32 ? 1e-11 : 1e-5)
            << dtype_name(dt) << " rows=" << s.rows << " d=" << s.d << " plus_one=" << plus_one;
      }
}

TEST_F(CudaBackendTest, UnaryElementwiseKernels) {
  const int64_t sizes[] = {1, 255, 1000003};
  uint32_t seed = 200;
  for (DType dt : {DType::kF32, DType::kBF16})
    for (int64_t n : sizes)
      for (int op = 0; op < 5; ++op) {
        Graph g;
        const ValueId x = g.input("x", {n}, dt);
        ValueId y = kNoValue;
        std::function<double(double)> f;
        switch (op) {
          case 0: y = g.silu(x); f = silu_ref; break;
          case 1: y = g.relu(x); f = [](double v) { return v > 0 ? v : 0; }; break;
          case 2: y = g.gelu(x, false); f = gelu_erf_ref; break;
          case 3: y = g.gelu(x, true); f = gelu_tanh_ref; break;
          default: y = g.scale(x, 1.5f, -0.25f); f = [](double v) { return v * 1.5 - 0.25; }; break;
        }
        g.mark_output(y);
        const Tensor X = random_tensor({n}, dt, ++seed, -6.f, 6.f);
        std::vector<float> ref = X.to_float_vector();
        for (auto& v : ref) v = static_cast<float>(f(v));
        EXPECT_LT(nmse(run_node(g, {X}).to_float_vector(), ref), dt == DType::kF32 ? 1e-11 : 1e-5)
            << dtype_name(dt) << " n=" << n << " op#" << op;
      }
}

TEST_F(CudaBackendTest, BinaryElementwiseKernels) {
  uint32_t seed = 300;
  for (DType dt : {DType::kF32, DType::kBF16})
    for (int64_t n : {int64_t{1}, int64_t{257}, int64_t{300007}})
      for (OpKind op : {OpKind::kAdd, OpKind::kMul, OpKind::kSwiGLU, OpKind::kGeGLU}) {
        Graph g;
        const Shape s{n};
        const ValueId a = g.input("a", s, dt);
        const ValueId b = g.input("b", s, dt);
        g.mark_output(g.add(op, {a, b}));
        const Tensor A = random_tensor(s, dt, ++seed, -4.f, 4.f);
        const Tensor B = random_tensor(s, dt, ++seed, -4.f, 4.f);
        const auto av = A.to_float_vector(), bv = B.to_float_vector();
        std::vector<float> ref(av.size());
        for (size_t i = 0; i < av.size(); ++i) {
          const double x = av[i], y = bv[i];
          const double r = op == OpKind::kAdd ? x + y
                           : op == OpKind::kMul ? x * y
                           : op == OpKind::kSwiGLU ? silu_ref(x) * y
                                                   : gelu_tanh_ref(x) * y;
          ref[i] = static_cast<float>(r);
        }
        EXPECT_LT(nmse(run_node(g, {A, B}).to_float_vector(), ref), dt == DType::kF32 ? 1e-11 : 1e-5)
            << dtype_name(dt) << " n=" << n << " " << op_name(op);
      }
}

TEST_F(CudaBackendTest, CopyRoundTripHostDeviceHost) {
  for (DType dt : {DType::kF32, DType::kBF16, DType::kI32})
    for (int64_t n : {int64_t{0}, int64_t{1}, int64_t{1000003}}) {
      Tensor h = Tensor::empty({n}, dt);
      for (size_t i = 0; i < h.nbytes(); ++i) static_cast<uint8_t*>(h.raw())[i] = static_cast<uint8_t>(i * 131 + 7);
      Tensor d1 = to_device(h);
      EXPECT_EQ(d1.device(), Device::cuda(0));
      Tensor d2 = Tensor::empty({n}, dt, be_->allocator());
      be_->copy(d1, d2);  // device -> device
      Tensor back = to_host(d2);
      ASSERT_EQ(back.nbytes(), h.nbytes());
      EXPECT_EQ(std::memcmp(back.raw(), h.raw(), h.nbytes()), 0) << dtype_name(dt) << " n=" << n;
    }
}

#ifdef VLART_WITH_CUDA
TEST_F(CudaBackendTest, AllocatorReusesFreedBlocks) {
  auto* cb = dynamic_cast<cuda::CudaBackend*>(be_.get());
  ASSERT_NE(cb, nullptr);
  cuda::CudaAllocator* a = cb->cuda_allocator();
  void* p = a->allocate(100000);
  ASSERT_NE(p, nullptr);
  a->deallocate(p, 100000);
  const auto before = a->stats();
  void* q = a->allocate(99000);  // same bucket
  EXPECT_EQ(q, p);
  EXPECT_EQ(a->stats().cache_hits, before.cache_hits + 1);
  a->deallocate(q, 99000);
}

#endif

TEST_F(CudaBackendTest, BadArgumentsAreReported) {
  Graph g;
  const ValueId x = g.input("x", {4, 16}, DType::kF32);
  const ValueId w = g.weight("w", random_tensor({8, 16}, DType::kF32, 1));
  g.add(OpKind::kLinear, {x, w}, {}, "proj_in");
  std::unique_ptr<OpKernel> k = be_->prepare(g, g.nodes().back());

  // Input left on the host: InvalidArgument naming the node and the device.
  Tensor host_x = random_tensor({4, 16}, DType::kF32, 2);
  Tensor out = Tensor::empty({4, 8}, DType::kF32, be_->allocator());
  const Tensor* in[] = {&host_x, nullptr};
  KernelArgs args;
  args.inputs = in;
  args.num_inputs = 2;
  args.output = &out;
  try {
    k->run(args);
    FAIL() << "expected InvalidArgument";
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("proj_in"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("cuda:0"), std::string::npos) << e.what();
  }
  // Wrong element count for the prepared shape.
  Tensor dev_x = to_device(random_tensor({5, 16}, DType::kF32, 3));
  in[0] = &dev_x;
  EXPECT_THROW(k->run(args), InvalidArgument);

  // Copy between different sizes.
  Tensor small = Tensor::empty({3}, DType::kF32, be_->allocator());
  EXPECT_THROW(be_->copy(host_x, small), InvalidArgument);

  // Ops without a CUDA kernel, and broadcasting Add, are not supported; prepare says so.
  Graph g2;
  const ValueId a = g2.input("a", {4, 16}, DType::kF32);
  const ValueId b = g2.input("b", {16}, DType::kF32);
  g2.add(a, b);
  EXPECT_FALSE(be_->supports(g2, g2.nodes().back()));
  EXPECT_THROW(be_->prepare(g2, g2.nodes().back()), UnsupportedError);
  g2.softmax(a);
  EXPECT_FALSE(be_->supports(g2, g2.nodes().back()));
  EXPECT_THROW(be_->prepare(g2, g2.nodes().back()), UnsupportedError);
}

}  // namespace
