// Throughput of the CPU norm and elementwise kernels at VLA activation shapes
// ([241,960] SmolVLA expert, [1024,768] SigLIP tokens, [50,720] action chunk), f32 and bf16,
// 1 and 2 threads. Reports GB/s of activation bytes read + written (weights included).
#include <benchmark/benchmark.h>

#include <memory>
#include <random>
#include <string>
#include <vector>

#include "core/backend.h"
#include "core/graph.h"

using namespace vlart;

namespace {

Tensor filled(const Shape& s, DType dt, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> ud(-2.f, 2.f);
  std::vector<float> v(static_cast<size_t>(s.numel()));
  for (auto& x : v) x = ud(rng);
  Tensor t = Tensor::from_vector(v, s);
  return dt == DType::kF32 ? t : t.to(dt);
}

enum class Op { kRMSNorm, kLayerNorm, kSoftmax, kGeluTanh, kSwiGLU, kAdd };
const char* op_label(Op op) {
  switch (op) {
    case Op::kRMSNorm: return "RMSNorm";
    case Op::kLayerNorm: return "LayerNorm";
    case Op::kSoftmax: return "Softmax";
    case Op::kGeluTanh: return "GeluTanh";
    case Op::kSwiGLU: return "SwiGLU";
    case Op::kAdd: return "AddRowBcast";
  }
  return "?";
}

void run_case(benchmark::State& state, Op op, int64_t M, int64_t N, DType dt, int threads) {
  Graph g;
  const Shape s{M, N};
  std::vector<Tensor> inputs;
  const ValueId x = g.input("x", s, dt);
  inputs.push_back(filled(s, dt, 1));
  switch (op) {
    case Op::kRMSNorm: g.rms_norm(x, g.weight("w", filled({N}, dt, 2)), 1e-6f); break;
    case Op::kLayerNorm: g.layer_norm(x, g.weight("w", filled({N}, dt, 2)), g.weight("b", filled({N}, dt, 3)), 1e-6f); break;
    case Op::kSoftmax: g.softmax(x); break;
    case Op::kGeluTanh: g.gelu(x, true); break;
    case Op::kSwiGLU: {
      const ValueId up = g.input("up", s, dt);
      inputs.push_back(filled(s, dt, 4));
      g.swiglu(x, up);
      break;
    }
    case Op::kAdd: {
      const ValueId b = g.input("b", {N}, dt);
      inputs.push_back(filled({N}, dt, 5));
      g.add(x, b);
      break;
    }
  }
  auto be = make_cpu_backend({threads});
  const Node& n = g.nodes().back();
  if (!be->supports(g, n)) {
    state.SkipWithError("not supported");
    return;
  }
  // Bind inputs and weights in node order, as the executor would.
  std::vector<Tensor> bound(g.values().size());
  for (size_t i = 0; i < g.inputs().size(); ++i) bound[static_cast<size_t>(g.inputs()[i])] = inputs[i];
  size_t bytes = 0;
  std::vector<const Tensor*> in;
  for (ValueId v : n.inputs) {
    Tensor& t = bound[static_cast<size_t>(v)];
    if (g.value(v).kind == ValueKind::kWeight) t = g.value(v).constant;
    in.push_back(&t);
    bytes += t.nbytes();
  }
  std::unique_ptr<OpKernel> k = be->prepare(g, n);
  Tensor out = Tensor::empty(g.value(n.output).shape, g.value(n.output).dtype);
  bytes += out.nbytes();
  std::vector<uint8_t> scratch(k->scratch_bytes() + 64);
  KernelArgs args;
  args.inputs = in.data();
  args.num_inputs = static_cast<int>(in.size());
  args.output = &out;
  args.scratch = scratch.data();
  be->begin_run();
  for (auto _ : state) {
    k->run(args);
    benchmark::ClobberMemory();
  }
  state.counters["GB/s"] = benchmark::Counter(static_cast<double>(bytes) * 1e-9 * static_cast<double>(state.iterations()),
                                              benchmark::Counter::kIsRate);
}

}  // namespace

int main(int argc, char** argv) {
  const std::pair<int64_t, int64_t> shapes[] = {{241, 960}, {1024, 768}, {50, 720}};
  for (Op op : {Op::kRMSNorm, Op::kLayerNorm, Op::kSoftmax, Op::kGeluTanh, Op::kSwiGLU, Op::kAdd})
    for (const auto& sh : shapes)
      for (DType dt : {DType::kF32, DType::kBF16})
        for (int threads : {1, 2}) {
          const std::string name = std::string(op_label(op)) + "/" + std::to_string(sh.first) + "x" +
                                   std::to_string(sh.second) + "/" + dtype_name(dt) + "/t" + std::to_string(threads);
          benchmark::RegisterBenchmark(name.c_str(), [=](benchmark::State& st) {
            run_case(st, op, sh.first, sh.second, dt, threads);
          })->MinTime(0.05)->Unit(benchmark::kMicrosecond)->UseRealTime();
        }
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
