// A short benchmark of the core ops at VLA shapes, each a one-node graph run through the Executor
// (so the numbers include dispatch). Median of --reps runs after one warm-up; GFLOP/s for GEMM-like ops.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "commands.h"
#include "core/backend.h"
#include "core/executor.h"
#include "vlart/error.h"

namespace vlart::cli {
namespace {

struct Case {
  std::string name;
  double flops;  // per run (0: report only time)
  std::function<ValueId(Graph&, DType)> build;
};

Tensor rand_weight(const Shape& s, DType dt, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-0.05f, 0.05f);
  std::vector<float> v(static_cast<size_t>(s.numel()));
  for (auto& x : v) x = u(rng);
  Tensor t = Tensor::from_vector(v, s);
  return dt == DType::kF32 ? t : t.to(dt);
}

}  // namespace

int cmd_bench_ops(int argc, char** argv) {
  int threads = 0, reps = 20;
  std::string dtype_s = "f32", backend_s = "cpu";
  for (int i = 0; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      VLART_CHECK(i + 1 < argc, InvalidArgument, "option ", a, " needs a value");
      return argv[++i];
    };
    if (a == "--threads") threads = std::stoi(next());
    else if (a == "--reps") reps = std::max(1, std::stoi(next()));
    else if (a == "--dtype") dtype_s = next();
    else if (a == "--backend") backend_s = next();
    else throw InvalidArgument("bench-ops: unknown option '" + a + "'");
  }
  DType dt;
  VLART_CHECK(dtype_from_name(dtype_s, &dt) && (dt == DType::kF32 || dt == DType::kBF16), InvalidArgument,
              "--dtype must be f32 or bf16, got '", dtype_s, "'");
  std::unique_ptr<Backend> backend;
  if (backend_s == "cuda") {
    std::string why;
    backend = make_cuda_backend({}, &why);
    VLART_CHECK(backend != nullptr, UnsupportedError, "CUDA backend unavailable: ", why);
  } else {
    VLART_CHECK(backend_s == "cpu", InvalidArgument, "--backend must be cpu or cuda, got '", backend_s, "'");
  }
  CpuBackendOptions co;
  co.threads = threads;
  std::unique_ptr<Backend> cpu = make_cpu_backend(co);
  std::vector<Backend*> bs;
  if (backend) bs.push_back(backend.get());
  bs.push_back(cpu.get());

  auto linear = [](int64_t M, int64_t K, int64_t N) {
    return Case{"linear " + std::to_string(M) + "x" + std::to_string(K) + "x" + std::to_string(N),
                2.0 * M * K * N, [=](Graph& g, DType d) {
                  ValueId x = g.input("x", {M, K}, d);
                  ValueId w = g.weight("w", rand_weight({N, K}, d, 1));
                  return g.linear(x, w);
                }};
  };
  std::vector<Case> cases = {
      linear(1, 960, 2560), linear(64, 960, 2560), linear(256, 768, 3072),
      {"rms_norm 241x960", 0, [](Graph& g, DType d) {
         ValueId x = g.input("x", {241, 960}, d);
         return g.rms_norm(x, g.weight("w", rand_weight({960}, DType::kF32, 2)), 1e-5f);
       }},
      {"attention 241q/241k 15/5h d64", 4.0 * 241 * 241 * 64 * 15, [](Graph& g, DType d) {
         ValueId q = g.input("q", {1, 241, 15, 64}, d);
         ValueId k = g.input("k", {1, 241, 5, 64}, d);
         ValueId v = g.input("v", {1, 241, 5, 64}, d);
         return g.attention(q, k, v);
       }},
      {"gelu_tanh 1024x3072", 0, [](Graph& g, DType d) { return g.gelu(g.input("x", {1024, 3072}, d), true); }},
  };
  std::printf("vlart bench-ops: backend=%s dtype=%s threads=%d reps=%d (median)\n", backend_s.c_str(),
              dtype_s.c_str(), threads, reps);
  std::printf("%-34s %12s %12s  %s\n", "op", "median us", "GFLOP/s", "placed on");
  for (const Case& c : cases) {
    Graph g;
    ValueId out = c.build(g, dt);
    g.mark_output(out);
    std::unique_ptr<Executor> ex;
    try {
      ex = std::make_unique<Executor>(g, bs);
    } catch (const UnsupportedError& e) {
      std::printf("%-34s %12s %12s  %s\n", c.name.c_str(), "-", "-", "unsupported");
      continue;
    }
    for (int i = 0; i < ex->num_inputs(); ++i) {
      Tensor& t = ex->input(i);
      Tensor r = rand_weight(t.shape(), t.dtype(), 10 + static_cast<uint32_t>(i));
      std::memcpy(t.raw(), r.raw(), t.nbytes());
    }
    ex->run();
    std::vector<double> us;
    for (int r = 0; r < reps; ++r) {
      const auto t0 = std::chrono::steady_clock::now();
      ex->run();
      us.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
    }
    std::sort(us.begin(), us.end());
    const double med = us[us.size() / 2];
    std::string where;
    for (const auto& s : ex->steps())
      if (s.op != "Copy") where = s.backend;
    if (c.flops > 0)
      std::printf("%-34s %12.1f %12.1f  %s\n", c.name.c_str(), med, c.flops / med * 1e-3, where.c_str());
    else
      std::printf("%-34s %12.1f %12s  %s\n", c.name.c_str(), med, "-", where.c_str());
  }
  return 0;
}

}  // namespace vlart::cli
