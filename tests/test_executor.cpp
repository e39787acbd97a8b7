// Executor: placement with copies, liveness-planned memory, in-place reuse, zero allocations in run.
#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "core/alloc_guard.h"
#include "core/executor.h"
#include "core/memory_planner.h"
#include "vlart/error.h"

using namespace vlart;

namespace {

// Naive test backend: Add, Scale, Silu in f32 on "its device" (host memory standing in for a device,
// so placement and copies are exercised without a GPU).
class FakeBackend : public Backend {
 public:
  FakeBackend(std::string name, Device dev, std::vector<OpKind> ops, bool allocate_in_run = false)
      : name_(std::move(name)), dev_(dev), ops_(std::move(ops)), allocate_in_run_(allocate_in_run) {}
  std::string name() const override { return name_; }
  Device device() const override { return dev_; }
  Allocator* allocator() override { return &alloc_; }
  bool supports(const Graph& g, const Node& n) const override {
    if (g.value(n.output).dtype != DType::kF32) return false;
    return std::find(ops_.begin(), ops_.end(), n.op) != ops_.end();
  }
  std::unique_ptr<OpKernel> prepare(const Graph& g, const Node& n) override {
    ++prepared;
    return std::make_unique<K>(n, g, this);
  }
  void copy(const Tensor& src, Tensor& dst) override {
    ++copies;
    std::memcpy(dst.raw(), src.raw(), src.nbytes());
  }
  int prepared = 0;
  int copies = 0;
  int runs = 0;

 private:
  struct HostAlloc : Allocator {
    Device d;
    void* allocate(size_t n) override { return cpu_allocator()->allocate(n); }
    void deallocate(void* p, size_t n) override { cpu_allocator()->deallocate(p, n); }
    Device device() const override { return d; }
  };
  struct K : OpKernel {
    OpKind op;
    OpAttrs a;
    FakeBackend* owner;
    int64_t n_out;
    Shape out_shape, b_shape;
    K(const Node& n, const Graph& g, FakeBackend* o) : op(n.op), a(n.attrs), owner(o) {
      n_out = g.value(n.output).shape.numel();
      if (n.inputs.size() > 1) b_shape = g.value(n.inputs[1]).shape;
    }
    void run(const KernelArgs& args) override {
      ++owner->runs;
      if (owner->allocate_in_run_) {
        std::vector<int> oops(16);
        (void)oops;
      }
      const float* x = args.inputs[0]->data<float>();
      float* y = args.output->data<float>();
      EXPECT_EQ(args.output->device(), owner->dev_);
      for (int i = 0; i < args.num_inputs; ++i)
        if (args.inputs[i]) {
          EXPECT_EQ(args.inputs[i]->device(), owner->dev_) << "input on the wrong device";
        }
      for (int64_t i = 0; i < n_out; ++i) {
        switch (op) {
          case OpKind::kAdd: {
            const float* b = args.inputs[1]->data<float>();
            y[i] = x[i] + b[i % b_shape.numel()];  // row broadcast only
            break;
          }
          case OpKind::kScale: y[i] = x[i] * a.scale + a.shift; break;
          case OpKind::kSilu: y[i] = x[i] / (1.f + std::exp(-x[i])); break;
          default: FAIL();
        }
      }
    }
  };
  std::string name_;
  Device dev_;
  std::vector<OpKind> ops_;
  bool allocate_in_run_;
  HostAlloc alloc_;

 public:
  void fix_alloc_device() { alloc_.d = dev_; }
};

std::unique_ptr<FakeBackend> fake(const std::string& name, Device d, std::vector<OpKind> ops, bool alloc = false) {
  auto b = std::make_unique<FakeBackend>(name, d, std::move(ops), alloc);
  b->fix_alloc_device();
  return b;
}

float silu(float x) { return x / (1.f + std::exp(-x)); }

// y = silu(((x*2+1) + bias)) * 0.5 chained `depth` times.
Graph chain(int depth, int64_t n, Tensor* bias_out) {
  Graph g;
  ValueId x = g.input("x", {2, n}, DType::kF32);
  std::vector<float> bv(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) bv[static_cast<size_t>(i)] = 0.01f * static_cast<float>(i);
  *bias_out = Tensor::from_vector(bv, {n});
  ValueId bias = g.weight("bias", *bias_out);
  ValueId h = x;
  for (int d = 0; d < depth; ++d) {
    h = g.scale(h, 2.f, 1.f);
    h = g.add(h, bias);
    h = g.reshape(h, {2 * n});
    h = g.reshape(h, {2, n});
    h = g.silu(h);
    h = g.scale(h, 0.5f);
  }
  g.mark_output(h);
  return g;
}

std::vector<float> chain_ref(const std::vector<float>& x, const std::vector<float>& bias, int depth) {
  std::vector<float> y = x;
  for (int d = 0; d < depth; ++d)
    for (size_t i = 0; i < y.size(); ++i) y[i] = silu(y[i] * 2.f + 1.f + bias[i % bias.size()]) * 0.5f;
  return y;
}

}  // namespace

TEST(MemoryPlanner, LiveBuffersNeverOverlap) {
  std::mt19937 rng(7);
  for (int trial = 0; trial < 50; ++trial) {
    std::vector<BufferRequest> reqs;
    for (int s = 0; s < 40; ++s) {
      BufferRequest q;
      q.bytes = 64 + rng() % 5000;
      q.first = s;
      q.last = (rng() % 7 == 0) ? kPinned : s + static_cast<int>(rng() % 6);
      reqs.push_back(q);
    }
    MemoryPlan p = plan_memory(reqs, 1);
    ASSERT_LE(p.arena_bytes[0], p.naive_bytes[0]);
    for (size_t i = 0; i < reqs.size(); ++i)
      for (size_t j = i + 1; j < reqs.size(); ++j) {
        const bool live_together = reqs[j].first <= reqs[i].last && reqs[i].first <= reqs[j].last;
        if (!live_together) continue;
        const size_t ai = p.buffers[i].offset, bi = ai + reqs[i].bytes;
        const size_t aj = p.buffers[j].offset, bj = aj + reqs[j].bytes;
        EXPECT_TRUE(bi <= aj || bj <= ai) << "buffers " << i << " and " << j << " overlap while both live";
        EXPECT_LE(std::max(bi, bj), p.arena_bytes[0]);
      }
  }
}

TEST(MemoryPlanner, InPlaceReuseTakesOverTheRange) {
  std::vector<BufferRequest> reqs(3);
  reqs[0] = {1024, 0, -1, kPinned, -1};
  reqs[1] = {4096, 0, 0, 1, -1};
  reqs[2] = {4096, 0, 1, 2, 1};  // in-place on #1 at step 1
  MemoryPlan p = plan_memory(reqs, 1);
  EXPECT_EQ(p.buffers[2].offset, p.buffers[1].offset);
  reqs[2].reuse_of = 0;  // #0 is pinned: illegal
  EXPECT_THROW(plan_memory(reqs, 1), InternalError);
}

TEST(Executor, ChainMatchesReferenceAndReusesMemory) {
  auto cpu = fake("cpu-fake", Device::cpu(), {OpKind::kAdd, OpKind::kScale, OpKind::kSilu});
  Tensor bias;
  const int depth = 8;
  const int64_t n = 1000;
  Graph g = chain(depth, n, &bias);
  Executor ex(g, {cpu.get()});
  std::vector<float> x(2 * n);
  for (size_t i = 0; i < x.size(); ++i) x[i] = std::sin(static_cast<float>(i));
  std::memcpy(ex.input("x").raw(), x.data(), x.size() * 4);
  for (int rep = 0; rep < 2; ++rep) {  // twice: inputs are pinned, nothing clobbers them
    ex.run();
    const auto ref = chain_ref(x, bias.to_float_vector(), depth);
    const float* y = ex.output(0).data<float>();
    for (size_t i = 0; i < ref.size(); ++i) ASSERT_NEAR(y[i], ref[i], 1e-5f) << i;
  }
  // 4 kernels per layer * 8 layers, each output 8 KB: liveness + in-place keep it to a few buffers.
  EXPECT_LT(ex.arena_bytes(0) * 4, ex.naive_bytes(0)) << ex.arena_bytes(0) << " vs " << ex.naive_bytes(0);
  EXPECT_EQ(cpu->prepared, 4 * depth);  // reshapes are aliases, not kernels
}

TEST(Executor, PlacementInsertsCopiesBetweenDevices) {
  auto dev = fake("dev", Device::cuda(0), {OpKind::kScale});
  auto cpu = fake("cpu-fake", Device::cpu(), {OpKind::kAdd, OpKind::kScale, OpKind::kSilu});
  Tensor bias;
  Graph g = chain(2, 64, &bias);
  Executor ex(g, {dev.get(), cpu.get()});
  int copies = 0, on_dev = 0;
  for (const auto& s : ex.steps()) {
    copies += s.op == "Copy";
    on_dev += s.backend == "dev" && s.op != "Copy";
  }
  EXPECT_EQ(on_dev, 4);   // every Scale went to the preferred backend
  // x -> dev, dev -> host before Add, host -> dev before the last Scale of layer 1; layer 2's first Scale
  // reads the device value directly; then dev -> host, host -> dev, and the output back to the host.
  EXPECT_EQ(copies, 6);
  EXPECT_EQ(ex.num_device_slots(), 2);
  std::vector<float> x(128);
  for (size_t i = 0; i < x.size(); ++i) x[i] = 0.1f * static_cast<float>(i) - 3.f;
  std::memcpy(ex.input(0).raw(), x.data(), 512);
  ex.run();
  EXPECT_EQ(dev->copies, 6);
  const auto ref = chain_ref(x, bias.to_float_vector(), 2);
  for (size_t i = 0; i < ref.size(); ++i) ASSERT_NEAR(ex.output(0).data<float>()[i], ref[i], 1e-5f);
  EXPECT_TRUE(ex.output(0).device().is_cpu());
}

TEST(Executor, OutputOnDeviceIsCopiedToHostAndWeightsUploadedOnce) {
  auto dev = fake("dev", Device::cuda(0), {OpKind::kAdd});
  auto cpu = fake("cpu-fake", Device::cpu(), {OpKind::kScale});
  Graph g;
  ValueId x = g.input("x", {3, 4}, DType::kF32);
  Tensor b = Tensor::from_vector({1, 2, 3, 4}, {4});
  ValueId w = g.weight("b", b);
  ValueId y = g.add(g.add(x, w), w);
  g.mark_output(y);
  Executor ex(g, {dev.get(), cpu.get()});
  for (int i = 0; i < 12; ++i) ex.input(0).data<float>()[i] = static_cast<float>(i);
  ex.run();
  for (int i = 0; i < 12; ++i) EXPECT_EQ(ex.output(0).data<float>()[i], i + 2.f * (i % 4 + 1));
  EXPECT_EQ(dev->copies, 3);  // the weight uploaded once at build (used twice), the input in, the output out
}

TEST(Executor, UnsupportedNodeIsNamed) {
  auto cpu = fake("cpu-fake", Device::cpu(), {OpKind::kAdd});
  Graph g;
  ValueId x = g.input("x", {4}, DType::kF32);
  g.mark_output(g.add(OpKind::kGelu, {x}, {}, "mlp.act"));
  try {
    Executor ex(g, {cpu.get()});
    FAIL() << "expected UnsupportedError";
  } catch (const UnsupportedError& e) {
    EXPECT_NE(std::string(e.what()).find("mlp.act"), std::string::npos) << e.what();
  }
}

TEST(Executor, GraphBuildErrorsNameTheNode) {
  Graph g;
  ValueId x = g.input("x", {2, 8}, DType::kF32);
  Tensor w = Tensor::zeros({16, 9}, DType::kF32);
  ValueId wv = g.weight("proj.weight", w);
  try {
    g.add(OpKind::kLinear, {x, wv}, {}, "proj");
    FAIL();
  } catch (const InvalidArgument& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("proj"), std::string::npos) << m;
    EXPECT_NE(m.find("K mismatch"), std::string::npos) << m;
  }
}

TEST(Executor, RunPerformsNoHeapAllocation) {
  ASSERT_TRUE(alloc_guard::hook_installed());
  auto cpu = fake("cpu-fake", Device::cpu(), {OpKind::kAdd, OpKind::kScale, OpKind::kSilu});
  Tensor bias;
  Graph g = chain(4, 256, &bias);
  ExecutorOptions o;
  o.forbid_allocations_in_run = true;
  Executor ex(g, {cpu.get()}, o);
  ex.run();
  ex.run();
  EXPECT_EQ(ex.last_run_allocations(), 0u);
  // The counter is real: a kernel that allocates is caught and named.
  auto bad = fake("bad", Device::cpu(), {OpKind::kAdd, OpKind::kScale, OpKind::kSilu}, /*allocate_in_run=*/true);
  Executor ex2(g, {bad.get()}, o);
  try {
    ex2.run();
    FAIL() << "expected kAllocationInRun";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kAllocationInRun);
    EXPECT_NE(std::string(e.what()).find("Scale"), std::string::npos) << e.what();
  }
  ExecutorOptions count_only;
  Executor ex3(g, {bad.get()}, count_only);
  ex3.run();
  EXPECT_EQ(ex3.last_run_allocations(), 4u * 4u);  // one per kernel
}

// A constant weight that the CPU Linear repacks (oneDNN path, M > 16) is released by the executor
// once the graph is gone: a model does not keep two copies of its weights. A weight also read in
// place elsewhere (here by an Add) stays alive.
TEST(Executor, RepackedWeightsAreReleased) {
  auto cpu = make_cpu_backend({});
  const int64_t M = 32, K = 48, N = 40;
  std::vector<float> wv(static_cast<size_t>(N * K)), xv(static_cast<size_t>(M * K));
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> ud(-1.f, 1.f);
  for (float& v : wv) v = ud(rng);
  for (float& v : xv) v = ud(rng);
  auto make_weight = [&](std::weak_ptr<void>* watch) {
    auto holder = std::make_shared<std::vector<float>>(wv);
    *watch = holder;
    return Tensor::from_blob(holder->data(), Shape{N, K}, DType::kF32, Device::cpu(), holder);
  };
  std::weak_ptr<void> w1, w2;
  std::unique_ptr<Executor> ex1, ex2;
  {
    Graph g;
    ValueId x = g.input("x", {M, K}, DType::kF32);
    g.mark_output(g.linear(x, g.weight("w", make_weight(&w1))));
    ex1 = std::make_unique<Executor>(g, std::vector<Backend*>{cpu.get()});
  }
  {
    Graph g;
    ValueId x = g.input("x", {M, K}, DType::kF32);
    ValueId w = g.weight("w", make_weight(&w2));
    g.mark_output(g.linear(x, w));
    g.mark_output(g.scale(w, 2.f));  // reads the weight in place
    ex2 = std::make_unique<Executor>(g, std::vector<Backend*>{cpu.get()});
  }
  EXPECT_TRUE(w1.expired()) << "the executor kept the original of a repacked weight";
  std::memcpy(ex1->input("x").raw(), xv.data(), xv.size() * sizeof(float));
  ex1->run();
  const float* y = ex1->output(0).data<float>();
  double m = 0;
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      double r = 0;
      for (int64_t k = 0; k < K; ++k) r += double(xv[static_cast<size_t>(i * K + k)]) * wv[static_cast<size_t>(j * K + k)];
      m = std::max(m, std::fabs(r - y[i * N + j]));
    }
  EXPECT_LE(m, 1e-4);
  EXPECT_FALSE(w2.expired()) << "a weight still read in place was released";
  ex2->run();
  EXPECT_EQ(ex2->output(1).data<float>()[5], 2.f * wv[5]);
}

// Executor::consume drops the graph's reference to a repacked weight while the executor is built
// (before the next node is prepared), so a stage of converted weights never holds them all at once;
// a weight that any node reads in place stays; results equal a plain executor's.
TEST(Executor, ConsumeReleasesRepackedWeightsDuringTheBuild) {
  auto cpu = make_cpu_backend({});
  const int64_t M = 32, K = 48, N = 48;
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> ud(-1.f, 1.f);
  std::vector<float> xv(static_cast<size_t>(M * K));
  for (float& v : xv) v = ud(rng);
  std::vector<std::weak_ptr<void>> watch(3);
  auto make_weight = [&](std::weak_ptr<void>* w) {
    auto holder = std::make_shared<std::vector<float>>(static_cast<size_t>(N * K));
    for (float& v : *holder) v = ud(rng);
    *w = holder;
    return Tensor::from_blob(holder->data(), Shape{N, K}, DType::kF32, Device::cpu(), holder);
  };
  auto build = [&](Graph& g) {
    ValueId x = g.input("x", {M, K}, DType::kF32);
    ValueId w0 = g.weight("w0", make_weight(&watch[0]));
    ValueId w1 = g.weight("w1", make_weight(&watch[1]));
    ValueId w2 = g.weight("w2", make_weight(&watch[2]));
    x = g.linear(g.linear(x, w0), w1);
    g.mark_output(g.linear(x, w0));         // w0 read twice, both repacked
    g.mark_output(g.add(g.linear(x, w2), g.reshape(g.slice(w2, 0, 0, 1), {1, K})));  // w2 also read in place
  };
  rng.seed(5);
  for (float& v : xv) v = ud(rng);
  Graph ga;
  build(ga);
  Executor plain(ga, {cpu.get()});
  rng.seed(5);
  for (float& v : xv) v = ud(rng);
  Graph gb;
  build(gb);
  std::unique_ptr<Executor> consumed = Executor::consume(gb, {cpu.get()});
  EXPECT_FALSE(gb.value(gb.find("w0")).constant.defined());
  EXPECT_FALSE(gb.value(gb.find("w1")).constant.defined());
  EXPECT_TRUE(gb.value(gb.find("w2")).constant.defined()) << "a weight read in place was dropped";
  EXPECT_TRUE(watch[0].expired() && watch[1].expired()) << "repacked weights still alive after consume()";
  EXPECT_FALSE(watch[2].expired());
  for (Executor* e : {&plain, consumed.get()}) {
    std::memcpy(e->input("x").raw(), xv.data(), xv.size() * sizeof(float));
    e->run();
  }
  for (int o = 0; o < 2; ++o) {
    const Tensor a = plain.output(o), b = consumed->output(o);
    ASSERT_EQ(a.numel(), b.numel());
    EXPECT_EQ(0, std::memcmp(a.raw(), b.raw(), a.nbytes())) << "output " << o;
  }
}
