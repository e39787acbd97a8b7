// Executor overhead per node: a chain of N tiny Scale nodes run through Executor::run, side by side
// with the same prepared kernels invoked directly in a loop. The difference per node is the cost of
// the executor's dispatch (step loop, argument binding, backend hooks).
#include <benchmark/benchmark.h>

#include <memory>

#include "core/backend.h"
#include "core/executor.h"

using namespace vlart;

namespace {

Graph tiny_chain(int n_nodes, int64_t width) {
  Graph g;
  ValueId h = g.input("x", {1, width}, DType::kF32);
  for (int i = 0; i < n_nodes; ++i) h = g.scale(h, 1.0001f, 0.f);
  g.mark_output(h);
  return g;
}

void BM_ExecutorRun(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  auto cpu = make_cpu_backend({1});
  Graph g = tiny_chain(n, 16);
  Executor ex(g, {cpu.get()});
  ex.run();
  for (auto _ : state) ex.run();
  state.counters["time_per_node"] = benchmark::Counter(static_cast<double>(n), benchmark::Counter::kIsIterationInvariantRate |
                                                                             benchmark::Counter::kInvert);
}

void BM_DirectKernels(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  auto cpu = make_cpu_backend({1});
  Graph g = tiny_chain(n, 16);
  std::vector<std::unique_ptr<OpKernel>> ks;
  for (const Node& node : g.nodes()) ks.push_back(cpu->prepare(g, node));
  Tensor a = Tensor::zeros({1, 16}, DType::kF32), b = Tensor::zeros({1, 16}, DType::kF32);
  const Tensor* in_a = &a;
  const Tensor* in_b = &b;
  KernelArgs ab{&in_a, 1, &b, nullptr}, ba{&in_b, 1, &a, nullptr};
  cpu->begin_run();
  for (auto _ : state) {
    for (int i = 0; i < n; ++i) ks[static_cast<size_t>(i)]->run(i % 2 ? ba : ab);
    benchmark::DoNotOptimize(a.raw());
  }
  state.counters["time_per_node"] = benchmark::Counter(static_cast<double>(n), benchmark::Counter::kIsIterationInvariantRate |
                                                                             benchmark::Counter::kInvert);
}

}  // namespace

BENCHMARK(BM_ExecutorRun)->Arg(100)->Arg(1000);
BENCHMARK(BM_DirectKernels)->Arg(100)->Arg(1000);
BENCHMARK_MAIN();
