// Attention at SmolVLA shapes: the tiled kernel (AVX-512 tiles and the portable tiles) against a
// naive implementation that materialises the Lq x Lk score matrix, f32 and bf16, 1 and 2 threads.
// Counter GFLOP/s = 4 * Lq * Lk * D * Hq per run (QK^T and PV, 2 flops per multiply-add).
#include <benchmark/benchmark.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <random>
#include <vector>

#include "backends/cpu/cpu_backend.h"
#include "core/backend.h"
#include "core/graph.h"
#include "cpu/attention.h"

using namespace vlart;

namespace {

struct Shape4 {
  const char* name;
  int64_t Lq, Lk, Hq, Hkv, D;
  bool mask;
};

// prefix: VLM prefix over itself (bidirectional, bool pad mask); expert: action expert queries over
// prefix + suffix keys (bool mask); siglip: vision tower self-attention, no mask.
const Shape4 kShapes[] = {
    {"prefix_241x241_15q5kv", 241, 241, 15, 5, 64, true},
    {"expert_50x291_15q5kv", 50, 291, 15, 5, 64, true},
    {"siglip_1024x1024_12h", 1024, 1024, 12, 12, 64, false},
};

enum Impl { kFlash = 0, kFlashGeneric = 1, kNaive = 2, kFlashInt16 = 3, kFlashInt8QK = 4, kFlashInt8All = 5 };

struct Inputs {
  Tensor q, k, v, mask;
};

Inputs make_inputs(const Shape4& s, DType dt) {
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> ud(-1.f, 1.f);
  auto rnd = [&](const Shape& sh) {
    std::vector<float> x(static_cast<size_t>(sh.numel()));
    for (auto& e : x) e = ud(rng);
    Tensor t = Tensor::from_vector(x, sh);
    return dt == DType::kF32 ? t : t.to(dt);
  };
  Inputs in;
  in.q = rnd({1, s.Lq, s.Hq, s.D});
  in.k = rnd({1, s.Lk, s.Hkv, s.D});
  in.v = rnd({1, s.Lk, s.Hkv, s.D});
  if (s.mask) {
    // The last 10% of keys are padding; queries see every real key.
    in.mask = Tensor::empty({1, s.Lq, s.Lk}, DType::kBool);
    uint8_t* m = in.mask.data<uint8_t>();
    for (int64_t i = 0; i < s.Lq; ++i)
      for (int64_t j = 0; j < s.Lk; ++j) m[i * s.Lk + j] = j < s.Lk * 9 / 10;
  }
  return in;
}

// The plain way: per (batch, head) materialise all scores, softmax each row, multiply by V.
struct Naive {
  Naive(const Shape4& s, int threads)
      : s_(s),
        threads_(threads),
        scores_(static_cast<size_t>(threads * s.Lq * s.Lk)),
        qf_(static_cast<size_t>(s.Lq * s.Hq * s.D)),
        kf_(static_cast<size_t>(s.Lk * s.Hkv * s.D)),
        vf_(kf_.size()) {}

  void run(const Inputs& in, Tensor& out) {
    const int64_t Lq = s_.Lq, Lk = s_.Lk, Hq = s_.Hq, Hkv = s_.Hkv, D = s_.D, G = Hq / Hkv;
    const bool bf16 = in.q.dtype() == DType::kBF16;
    const float* q = in.q.data<float>();
    const float* k = in.k.data<float>();
    const float* v = in.v.data<float>();
    if (bf16) {  // a naive implementation converts its bf16 inputs to f32 first
      dtype_traits(DType::kBF16).to_float(in.q.raw(), qf_.data(), in.q.numel());
      dtype_traits(DType::kBF16).to_float(in.k.raw(), kf_.data(), in.k.numel());
      dtype_traits(DType::kBF16).to_float(in.v.raw(), vf_.data(), in.v.numel());
      q = qf_.data(), k = kf_.data(), v = vf_.data();
    }
    const uint8_t* mask = in.mask.defined() ? in.mask.data<uint8_t>() : nullptr;
    const float scale = 1.f / std::sqrt(static_cast<float>(D));
#pragma omp parallel for num_threads(threads_) schedule(static)
    for (int64_t h = 0; h < Hq; ++h) {
      float* S = scores_.data() + static_cast<size_t>(omp_get_thread_num() * Lq * Lk);
      const int64_t g = h / G;
      for (int64_t i = 0; i < Lq; ++i) {
        const float* qi = q + (i * Hq + h) * D;
        float* si = S + i * Lk;
        float mx = -INFINITY;
        for (int64_t j = 0; j < Lk; ++j) {
          const float* kj = k + (j * Hkv + g) * D;
          float dot = 0.f;
          for (int64_t d = 0; d < D; ++d) dot += qi[d] * kj[d];
          si[j] = (mask && !mask[i * Lk + j]) ? -INFINITY : dot * scale;
          mx = std::max(mx, si[j]);
        }
        float sum = 0.f;
        for (int64_t j = 0; j < Lk; ++j) sum += (si[j] = std::exp(si[j] - mx));
        for (int64_t j = 0; j < Lk; ++j) si[j] /= sum;
      }
      for (int64_t i = 0; i < Lq; ++i) {
        float o[512] = {};
        for (int64_t j = 0; j < Lk; ++j) {
          const float p = S[i * Lk + j];
          const float* vj = v + (j * Hkv + g) * D;
          for (int64_t d = 0; d < D; ++d) o[d] += p * vj[d];
        }
        for (int64_t d = 0; d < D; ++d) {
          const int64_t oi = (i * Hq + h) * D + d;
          if (bf16)
            out.data<uint16_t>()[oi] = f32_to_bf16(o[d]);
          else
            out.data<float>()[oi] = o[d];
        }
      }
    }
  }

  Shape4 s_;
  int threads_;
  std::vector<float> scores_, qf_, kf_, vf_;
};

void BM_Attention(benchmark::State& state) {
  const Shape4& s = kShapes[state.range(0)];
  const DType dt = state.range(1) ? DType::kBF16 : DType::kF32;
  const int threads = static_cast<int>(state.range(2));
  const Impl impl = static_cast<Impl>(state.range(3));
  const Inputs in = make_inputs(s, dt);
  Tensor out = Tensor::empty({1, s.Lq, s.Hq, s.D}, dt);

  auto be = make_cpu_backend({threads});
  be->begin_run();  // denormal flags and the OpenMP pool, as the executor does
  std::unique_ptr<OpKernel> kernel;
  std::unique_ptr<kernels::FlashAttention> generic;
  std::unique_ptr<Naive> naive;
  std::vector<float> scratch;
  const Tensor* ins[4] = {&in.q, &in.k, &in.v, &in.mask};
  KernelArgs args;
  args.inputs = ins;
  args.num_inputs = s.mask ? 4 : 3;
  args.output = &out;
  float* ws = nullptr;
  auto aligned_scratch = [&](size_t bytes) {
    scratch.assign(bytes / sizeof(float) + 16, 0.f);
    return scratch.data() + (16 - reinterpret_cast<uintptr_t>(scratch.data()) / 4 % 16) % 16;
  };
  if (impl == kFlash) {
    Graph g;
    const ValueId q = g.input("q", in.q.shape(), dt);
    const ValueId k = g.input("k", in.k.shape(), dt);
    const ValueId v = g.input("v", in.v.shape(), dt);
    const ValueId m = s.mask ? g.input("mask", in.mask.shape(), DType::kBool) : kNoValue;
    g.attention(q, k, v, m);
    kernel = be->prepare(g, g.nodes().back());
    args.scratch = aligned_scratch(kernel->scratch_bytes());
  } else if (impl == kFlashGeneric || impl == kFlashInt16 || impl == kFlashInt8QK || impl == kFlashInt8All) {
    kernels::AttentionParams p;
    p.Lq = s.Lq, p.Lk = s.Lk, p.Hq = s.Hq, p.Hkv = s.Hkv, p.D = s.D, p.Dv = s.D;
    p.bf16 = dt == DType::kBF16;
    p.mask = s.mask ? kernels::AttnMask::kBool : kernels::AttnMask::kNone;
    p.int16 = impl == kFlashInt16 || impl == kFlashInt8QK || impl == kFlashInt8All;
    p.qk_int8 = impl == kFlashInt8QK || impl == kFlashInt8All;
    p.pv_int8 = impl == kFlashInt8All;
    generic = std::make_unique<kernels::FlashAttention>(p, threads, /*force_generic=*/impl == kFlashGeneric);
    if ((impl == kFlashInt16 || impl == kFlashInt8QK || impl == kFlashInt8All) && !generic->int16()) {
      state.SkipWithError("int16 attention tiles not available on this CPU");
      return;
    }
    ws = aligned_scratch(generic->scratch_bytes());
  } else {
    naive = std::make_unique<Naive>(s, threads);
  }

  for (auto _ : state) {
    if (kernel)
      kernel->run(args);
    else if (generic)
      generic->run(in.q.raw(), in.k.raw(), in.v.raw(), s.mask ? in.mask.raw() : nullptr, out.raw(), ws);
    else
      naive->run(in, out);
    benchmark::DoNotOptimize(out.raw());
  }
  const double flops = 4.0 * s.Lq * s.Lk * s.D * s.Hq;
  state.counters["GFLOP/s"] = benchmark::Counter(flops / 1e9, benchmark::Counter::kIsIterationInvariantRate);
  static const char* const impl_names[] = {"flash", "flash_generic", "naive", "flash_int16", "flash_int16_qk8", "flash_int8"};
  state.SetLabel(std::string(s.name) + (dt == DType::kF32 ? " f32 " : " bf16 ") + impl_names[impl] + " t" +
                 std::to_string(threads));
}

BENCHMARK(BM_Attention)
    ->ArgNames({"shape", "bf16", "threads", "impl"})
    ->ArgsProduct({{0, 1, 2}, {0, 1}, {1, 2}, {kFlash, kFlashGeneric, kNaive, kFlashInt16, kFlashInt8QK, kFlashInt8All}})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
