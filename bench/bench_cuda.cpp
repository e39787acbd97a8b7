// GPU Linear (cuBLASLt through the CUDA backend) at VLA-policy shapes, timed with CUDA events.
// Without a usable GPU every benchmark reports "no CUDA device ..." and skips.
#include <benchmark/benchmark.h>

#include <memory>
#include <string>

#include "core/backend.h"
#include "core/graph.h"
#include "vlart/tensor.h"

#ifdef VLART_WITH_CUDA
#include <cuda_runtime_api.h>

#include <random>
#include <vector>

#include "backends/cuda/cuda_backend.h"
#endif

using namespace vlart;

namespace {

enum Mode : int { kF32 = 0, kTF32 = 1, kBF16 = 2 };

void BM_CudaLinear(benchmark::State& state) {
  const int64_t M = state.range(0), K = state.range(1), N = state.range(2);
  const Mode mode = static_cast<Mode>(state.range(3));
  state.SetLabel(mode == kF32 ? "f32" : mode == kTF32 ? "f32-tf32" : "bf16");
#ifndef VLART_WITH_CUDA
  (void)M, (void)K, (void)N;
  state.SkipWithError("no CUDA device: vlart was built without CUDA");
#else
  std::string why;
  std::unique_ptr<Backend> be = make_cuda_backend({}, &why);
  if (!be) {
    state.SkipWithError(("no CUDA device: " + why).c_str());
    return;
  }
  auto* cb = dynamic_cast<cuda::CudaBackend*>(be.get());
  cb->set_allow_tf32(mode == kTF32);
  const DType dt = mode == kBF16 ? DType::kBF16 : DType::kF32;

  std::mt19937 rng(1);
  std::uniform_real_distribution<float> ud(-1.f, 1.f);
  auto rand_tensor = [&](const Shape& s) {
    std::vector<float> v(static_cast<size_t>(s.numel()));
    for (auto& x : v) x = ud(rng);
    Tensor t = Tensor::from_vector(v, s);
    return dt == DType::kF32 ? t : t.to(dt);
  };
  Graph g;
  const ValueId x = g.input("x", {M, K}, dt);
  const ValueId w = g.weight("w", rand_tensor({N, K}));
  const ValueId b = g.weight("b", rand_tensor({N}));
  g.mark_output(g.linear(x, w, b));
  std::unique_ptr<OpKernel> k = be->prepare(g, g.nodes().back());

  Tensor xh = rand_tensor({M, K});
  Tensor xd = Tensor::empty({M, K}, dt, be->allocator());
  Tensor yd = Tensor::empty({M, N}, dt, be->allocator());
  be->copy(xh, xd);
  const Tensor* in[] = {&xd, nullptr, nullptr};
  KernelArgs args;
  args.inputs = in;
  args.num_inputs = 3;
  args.output = &yd;
  be->begin_run();
  for (int i = 0; i < 10; ++i) k->run(args);  // warm-up (first-call setup, clocks)
  be->synchronize();

  cudaEvent_t start, stop;
  cudaEventCreate(&start);
  cudaEventCreate(&stop);
  double total_s = 0;
  for (auto _ : state) {
    cudaEventRecord(start, cb->stream());
    k->run(args);
    cudaEventRecord(stop, cb->stream());
    cudaEventSynchronize(stop);
    float ms = 0.f;
    cudaEventElapsedTime(&ms, start, stop);
    state.SetIterationTime(ms * 1e-3);
    total_s += ms * 1e-3;
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  const double flops = 2.0 * static_cast<double>(M) * static_cast<double>(N) * static_cast<double>(K);
  if (total_s > 0) state.counters["GFLOP/s"] = flops * static_cast<double>(state.iterations()) / total_s * 1e-9;
#endif
}

void linear_args(benchmark::internal::Benchmark* b) {
  const int64_t shapes[][3] = {{1, 960, 2560}, {64, 960, 2560}, {256, 768, 3072}, {1024, 768, 768}};
  for (int mode : {kF32, kTF32, kBF16})
    for (const auto& s : shapes) b->Args({s[0], s[1], s[2], mode});
  b->ArgNames({"M", "K", "N", "mode"});
}

BENCHMARK(BM_CudaLinear)->Apply(linear_args)->UseManualTime()->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
