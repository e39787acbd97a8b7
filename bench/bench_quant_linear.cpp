// Quantized Linear next to the f32 Linear, through the CPU backend (prepare once, run), same
// process, same shapes, so ratios are read side by side:
//   scheme 0: f32 weights (the f32 path: hand-written GEMV for M <= 16, oneDNN above)
//   scheme 1: int8 weight-only          (qgemm, dequantized in registers, every M)
//   scheme 2: int4-g64 symmetric        (qgemm)
//   scheme 3: w8a8                      (M <= 16 as int8; above, per-token int8 activations and
//                                        a u8 x s8 oneDNN matmul + row-scale epilogue on VNNI CPUs,
//                                        vlart's int8 GEMM (kernels/cpu/qgemm_s8.h) on AVX2 ones)
// Arguments: scheme, M, K, N, threads, cold. cold=1 rotates through copies of the weight totalling
// >= 192 MiB of stored bytes (per scheme), so every call streams its weights from DRAM as a real
// model's layers do (M <= 16, and the expert's M = 50 shapes); cold=0 reuses one copy (M > 16,
// compute-bound).
// Counters: GFLOP/s and, for M <= 16, W_GB/s (stored weight bytes per second) and Wparam/s.
#include <benchmark/benchmark.h>

#include <cstring>
#include <memory>
#include <random>
#include <vector>

#include "backends/cpu/cpu_backend.h"
#include "compress/quantize.h"
#include "core/backend.h"
#include "core/graph.h"

using namespace vlart;

namespace {

constexpr size_t kColdBytes = size_t{192} << 20;

std::vector<float> uniform(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(-1.f, 1.f);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

std::shared_ptr<QuantWeight> quantize(const std::vector<float>& w, int64_t n, int64_t k, int scheme) {
  auto q = std::make_shared<QuantWeight>();
  q->n = n;
  q->k = k;
  if (scheme == 2) {
    compress::Int4Weight iw = compress::quantize_int4(w.data(), n, k, 64, true);
    q->kind = QuantWeight::Kind::kInt4;
    q->group = 64;
    q->qweight = Tensor::empty(Shape{n, k / 2}, DType::kU8);
    std::memcpy(q->qweight.raw(), iw.packed.data(), iw.packed.size());
    q->scales = Tensor::empty(Shape{n, (k + 63) / 64}, DType::kF16);
    std::memcpy(q->scales.raw(), iw.scales.data(), iw.scales.size() * 2);
  } else {
    compress::Int8Weight iw = compress::quantize_int8(w.data(), n, k);
    q->qweight = Tensor::empty(Shape{n, k}, DType::kI8);
    std::memcpy(q->qweight.raw(), iw.q.data(), iw.q.size());
    q->scales = Tensor::from_vector(iw.scales, Shape{n});
    q->act_int8 = scheme == 3;
  }
  return q;
}

struct AlignedBuf {
  std::vector<uint8_t> raw;
  void* p = nullptr;
  explicit AlignedBuf(size_t n) : raw(n + 64) { p = raw.data() + (64 - reinterpret_cast<uintptr_t>(raw.data()) % 64) % 64; }
};

void BM_Linear(benchmark::State& st) {
  const int scheme = static_cast<int>(st.range(0));
  const int64_t M = st.range(1), K = st.range(2), N = st.range(3);
  const int threads = static_cast<int>(st.range(4));
  const bool cold = st.range(5) != 0;
  const double bytes_per_w = scheme == 0 ? 4.0 : scheme == 2 ? 0.5 + 2.0 / 64 : 1.0;
  const size_t wbytes = static_cast<size_t>(static_cast<double>(N * K) * bytes_per_w);
  const int copies = cold ? static_cast<int>((kColdBytes + wbytes - 1) / wbytes) : 1;
  auto be = make_cpu_backend({threads});
  const std::vector<float> w0 = uniform(static_cast<size_t>(N * K), 2);
  Graph g;
  const ValueId x = g.input("x", Shape{M, K}, DType::kF32);
  ValueId w;
  Tensor wf;
  std::shared_ptr<QuantWeight> wq;
  if (scheme == 0) {
    wf = Tensor::from_vector(w0, Shape{N, K});
    w = g.weight("w", wf);
  } else {
    wq = quantize(w0, N, K, scheme);
    w = g.quant_weight("w", wq);
  }
  const ValueId b = g.weight("b", Tensor::from_vector(uniform(static_cast<size_t>(N), 3), Shape{N}));
  g.linear(x, w, b);
  // Kernels repack their weights when created: one kernel per copy (each its own packed buffer).
  std::vector<std::unique_ptr<OpKernel>> kernels;
  std::vector<Tensor> fcopies;
  for (int i = 0; i < copies; ++i) {
    if (scheme == 0) {
      fcopies.push_back(wf.clone());
      g.values()[static_cast<size_t>(w)].constant = fcopies.back();
    }
    kernels.push_back(be->prepare(g, g.nodes().back()));
  }
  size_t sb = 0;
  for (auto& k : kernels) sb = std::max(sb, k->scratch_bytes());
  AlignedBuf scratch(sb);
  const Tensor xt = Tensor::from_vector(uniform(static_cast<size_t>(M * K), 1), Shape{M, K});
  const Tensor bt = g.value(b).constant;
  Tensor out = Tensor::empty(Shape{M, N}, DType::kF32);
  be->begin_run();
  size_t i = 0;
  for (auto _ : st) {
    const Tensor* wt = scheme == 0 ? &fcopies[i] : nullptr;
    const Tensor* in[3] = {&xt, wt, &bt};
    KernelArgs a;
    a.inputs = in;
    a.num_inputs = 3;
    a.output = &out;
    a.scratch = scratch.p;
    kernels[i]->run(a);
    i = (i + 1) % kernels.size();
  }
  const double iters = static_cast<double>(st.iterations());
  st.counters["GFLOP/s"] = benchmark::Counter(2e-9 * static_cast<double>(M * K * N) * iters, benchmark::Counter::kIsRate);
  if (M <= 16) {
    st.counters["W_GB/s"] = benchmark::Counter(1e-9 * static_cast<double>(wbytes) * iters, benchmark::Counter::kIsRate);
    st.counters["Gparam/s"] = benchmark::Counter(1e-9 * static_cast<double>(N * K) * iters, benchmark::Counter::kIsRate);
  }
}

void args(benchmark::internal::Benchmark* b) {
  struct Mkn {
    int64_t m, k, n;
  };
  std::vector<Mkn> shapes;
  for (int64_t m : {1, 8, 16})
    for (auto kn : {std::pair<int64_t, int64_t>{960, 2560}, {720, 2048}, {2048, 720}, {720, 960}})
      shapes.push_back({m, kn.first, kn.second});
  for (Mkn s : {Mkn{50, 720, 2048}, Mkn{64, 960, 2560}, Mkn{256, 768, 3072}, Mkn{1024, 768, 3072}, Mkn{1024, 3072, 768}})
    shapes.push_back(s);
  for (const Mkn& s : shapes)
    for (int64_t threads : {1, 2})
      for (int64_t scheme : {0, 1, 2, 3}) {
        if (scheme == 3 && s.m <= 16) continue;  // same kernel as int8 there
        b->Args({scheme, s.m, s.k, s.n, threads, s.m <= 16 ? 1 : 0});
      }
  // The action expert's per-flow-step matmuls (M = 50 action tokens) with weights streamed as in the
  // model (cold): f32 against w8a8.
  for (Mkn s : {Mkn{50, 720, 960}, Mkn{50, 720, 320}, Mkn{50, 960, 720}, Mkn{50, 720, 2048}, Mkn{50, 2048, 720}})
    for (int64_t scheme : {0, 3}) b->Args({scheme, s.m, s.k, s.n, 2, 1});
  // smolvla_base's large-M Linear layers (vision tower M = 1024 per camera, connector, prefix,
  // expert), f32 against w8a8 at 1 and 2 threads. On AVX2 CPUs without VNNI, w8a8 runs vlart's exact
  // int8 GEMM (kernels/cpu/qgemm_s8.h); compare with --benchmark_enable_random_interleaving.
  for (Mkn s : {Mkn{1024, 768, 768}, Mkn{256, 768, 768}, Mkn{64, 12288, 960}, Mkn{100, 960, 960}, Mkn{100, 960, 320},
                Mkn{100, 960, 2560}, Mkn{50, 720, 720}})
    for (int64_t threads : {1, 2})
      for (int64_t scheme : {0, 3}) b->Args({scheme, s.m, s.k, s.n, threads, 0});
  b->ArgNames({"scheme", "M", "K", "N", "thr", "cold"})->UseRealTime()->Unit(benchmark::kMicrosecond);
}

}  // namespace

BENCHMARK(BM_Linear)->Apply(args);

BENCHMARK_MAIN();
