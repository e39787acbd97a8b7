// Linear throughput on the CPU: vlart's Linear kernel (through the CPU backend prepare/run) next to
// a raw oneDNN matmul (weights pre-reordered, the best oneDNN does) and, for M <= 16, the
// hand-written GEMV called directly; plus a DRAM read-bandwidth probe so GEMV weight streaming can
// be expressed as a fraction of what memory delivers.
//
// Arguments: M, K, N, bf16 (0: f32 activations and weights, 1: bf16 both), threads, cold.
// cold=1 rotates through enough weight copies (>= 192 MiB) that every call streams its weights
// from DRAM, as a real model whose layers do not fit the 32 MiB L3 does; cold=0 reuses one copy.
// Every variant has a bias and no activation. Excluded from the timing: kernel creation, weight
// reordering, input generation. Counters: GFLOP/s (2*M*K*N per call) and, for small M,
// W_GB/s (weight bytes read per second).
#include <benchmark/benchmark.h>
#include <immintrin.h>
#include <omp.h>

#include <cstring>
#include <memory>
#include <random>
#include <vector>

#include "backends/cpu/cpu_backend.h"
#include "backends/cpu/gemm_onednn.h"
#include "core/backend.h"
#include "core/graph.h"
#include "cpu/gemv.h"

using namespace vlart;

namespace {

constexpr size_t kColdBytes = size_t{192} << 20;

Tensor random_tensor(const Shape& s, DType dt, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> ud(-1.f, 1.f);
  std::vector<float> v(static_cast<size_t>(s.numel()));
  for (auto& x : v) x = ud(rng);
  Tensor t = Tensor::from_vector(v, s);
  return dt == DType::kF32 ? t : t.to(dt);
}

struct Shape6 {
  int64_t M, K, N;
  DType dt;
  int threads;
  bool cold;
  explicit Shape6(const benchmark::State& st)
      : M(st.range(0)), K(st.range(1)), N(st.range(2)), dt(st.range(3) ? DType::kBF16 : DType::kF32),
        threads(static_cast<int>(st.range(4))), cold(st.range(5) != 0) {}
  size_t wbytes() const { return static_cast<size_t>(N * K) * dtype_size(dt); }
  int copies() const { return cold ? static_cast<int>((kColdBytes + wbytes() - 1) / wbytes()) : 1; }
};

void set_counters(benchmark::State& st, const Shape6& s) {
  const double iters = static_cast<double>(st.iterations());
  st.counters["GFLOP/s"] = benchmark::Counter(2e-9 * static_cast<double>(s.M * s.K * s.N) * iters,
                                              benchmark::Counter::kIsRate);
  if (s.M <= 16)
    st.counters["W_GB/s"] = benchmark::Counter(1e-9 * static_cast<double>(s.wbytes()) * iters,
                                               benchmark::Counter::kIsRate);
}

std::vector<Tensor> weight_copies(const Shape6& s) {
  std::vector<Tensor> w;
  const Tensor w0 = random_tensor(Shape{s.N, s.K}, s.dt, 2);
  for (int i = 0; i < s.copies(); ++i) w.push_back(w0.clone());
  return w;
}

struct AlignedBuf {
  std::vector<uint8_t> raw;
  void* p = nullptr;
  explicit AlignedBuf(size_t n) : raw(n + 64) {
    p = raw.data() + (64 - reinterpret_cast<uintptr_t>(raw.data()) % 64) % 64;
  }
};

// (a) vlart's Linear kernel through the CPU backend.
void BM_VlartLinear(benchmark::State& st) {
  const Shape6 s(st);
  auto be = make_cpu_backend({s.threads});
  const std::vector<Tensor> ws = weight_copies(s);
  Graph g;
  const ValueId x = g.input("x", Shape{s.M, s.K}, s.dt);
  const ValueId w = g.weight("w", ws[0]);
  const ValueId b = g.weight("b", random_tensor(Shape{s.N}, s.dt, 3));
  g.linear(x, w, b);
  // Kernels repack their weights at create time, so one kernel per weight copy.
  std::vector<std::unique_ptr<OpKernel>> kernels;
  for (size_t i = 0; i < ws.size(); ++i) {
    g.values()[static_cast<size_t>(w)].constant = ws[i];
    kernels.push_back(be->prepare(g, g.nodes().back()));
  }
  size_t sb = 0;
  for (auto& k : kernels) sb = std::max(sb, k->scratch_bytes());
  AlignedBuf scratch(sb);
  const Tensor xt = random_tensor(Shape{s.M, s.K}, s.dt, 1);
  const Tensor bt = g.value(b).constant;
  Tensor out = Tensor::empty(Shape{s.M, s.N}, s.dt);
  be->begin_run();
  size_t i = 0;
  for (auto _ : st) {
    const Tensor* in[3] = {&xt, &ws[i], &bt};
    KernelArgs a;
    a.inputs = in;
    a.num_inputs = 3;
    a.output = &out;
    a.scratch = scratch.p;
    kernels[i]->run(a);
    i = (i + 1) % ws.size();
  }
  set_counters(st, s);
}

// (b) a raw oneDNN matmul: weights reordered once per copy into the primitive's layout.
void BM_OneDnnMatmul(benchmark::State& st) {
  const Shape6 s(st);
  using tag = dnnl::memory::format_tag;
  omp_set_num_threads(s.threads);
  set_flush_denormals();
#pragma omp parallel num_threads(s.threads)
  set_flush_denormals();
  dnnl::engine eng(dnnl::engine::kind::cpu, 0);
  dnnl::stream strm(eng);
  const auto dt = s.dt == DType::kBF16 ? dnnl::memory::data_type::bf16 : dnnl::memory::data_type::f32;
  const dnnl::memory::desc src_md({s.M, s.K}, dt, tag::ab), dst_md({s.M, s.N}, dt, tag::ab);
  const dnnl::memory::desc w_any({s.K, s.N}, dt, tag::any), w_user({s.K, s.N}, dt, tag::ba);
  const dnnl::memory::desc b_md({1, s.N}, dnnl::memory::data_type::f32, tag::ab);
  if (s.dt == DType::kBF16 && !onednn_bf16_supported()) {
    st.SkipWithError("oneDNN has no bf16 matmul on this CPU (vlart's bf16 Linear converts around an f32 one)");
    return;
  }
  const dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(src_md, w_any, b_md, dst_md), eng);
  const dnnl::matmul prim(pd);
  std::vector<Tensor> ws = weight_copies(s);
  const Tensor xt = random_tensor(Shape{s.M, s.K}, s.dt, 1);
  Tensor bt = random_tensor(Shape{s.N}, DType::kF32, 3);
  Tensor out = Tensor::empty(Shape{s.M, s.N}, s.dt);
  dnnl::memory src(src_md, eng, xt.raw()), dst(dst_md, eng, out.raw()), bias(b_md, eng, bt.raw());
  std::vector<std::unordered_map<int, dnnl::memory>> args;
  for (auto& w : ws) {
    dnnl::memory user(w_user, eng, w.raw()), packed(pd.weights_desc(), eng);
    dnnl::reorder(user, packed).execute(strm, user, packed);
    args.push_back({{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, packed}, {DNNL_ARG_BIAS, bias}, {DNNL_ARG_DST, dst}});
  }
  strm.wait();
  ws.clear();  // only the packed copies stay
  size_t i = 0;
  for (auto _ : st) {
    prim.execute(strm, args[i]);
    strm.wait();
    i = (i + 1) % args.size();
  }
  set_counters(st, s);
}

// (c) the GEMV called directly (M <= 16).
void BM_Gemv(benchmark::State& st) {
  const Shape6 s(st);
  set_flush_denormals();
  const std::vector<Tensor> ws = weight_copies(s);
  const Tensor xt = random_tensor(Shape{s.M, s.K}, s.dt, 1);
  const Tensor bt = random_tensor(Shape{s.N}, DType::kF32, 3);
  Tensor out = Tensor::empty(Shape{s.M, s.N}, s.dt);
  std::vector<float> xwork(static_cast<size_t>(gemv_work_floats(s.M, s.K)));
  GemvProblem p;
  p.m = static_cast<int>(s.M);
  p.k = s.K;
  p.n = s.N;
  p.x = xt.raw();
  p.ldx = s.K;
  p.x_bf16 = p.w_bf16 = p.y_bf16 = s.dt == DType::kBF16;
  p.x_work = xwork.data();
  p.bias = bt.raw();
  p.y = out.raw();
  p.ldy = s.N;
  p.threads = s.threads;
  // Packed copies as the Linear kernel makes them (the original rows stay for fallback paths).
  p.pack = gemv_pack_format(p.x_bf16, p.w_bf16);
  std::vector<Tensor> packed;
  if (p.pack != GemvPack::kNone)
    for (const Tensor& w : ws) {
      packed.push_back(Tensor::empty(Shape{static_cast<int64_t>(gemv_packed_bytes(p.pack, s.K, s.N))}, DType::kU8));
      gemv_pack(p.pack, w.raw(), p.w_bf16, s.K, s.N, packed.back().raw());
    }
  size_t i = 0;
  for (auto _ : st) {
    p.w = ws[i].raw();
    if (!packed.empty()) p.w_packed = packed[i].raw();
    gemv(p);
    i = (i + 1) % ws.size();
  }
  set_counters(st, s);
  st.SetLabel(gemv_isa_name(gemv_active_isa()));
}

// DRAM read bandwidth: sum of a 1 GiB f32 array with AVX-512 (or AVX2) loads (8 independent accumulators).
__attribute__((target("avx512f"))) float sum_avx512(const float* p, int64_t n, int threads) {
  float total = 0.f;
#pragma omp parallel for num_threads(threads) schedule(static) reduction(+ : total)
  for (int64_t blk = 0; blk < n / 4096; ++blk) {
    const float* q = p + blk * 4096;
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
    for (int64_t j = 0; j < 4096; j += 128) {
      a0 = _mm512_add_ps(a0, _mm512_load_ps(q + j));
      a1 = _mm512_add_ps(a1, _mm512_load_ps(q + j + 16));
      a2 = _mm512_add_ps(a2, _mm512_load_ps(q + j + 32));
      a3 = _mm512_add_ps(a3, _mm512_load_ps(q + j + 48));
      a4 = _mm512_add_ps(a4, _mm512_load_ps(q + j + 64));
      a5 = _mm512_add_ps(a5, _mm512_load_ps(q + j + 80));
      a6 = _mm512_add_ps(a6, _mm512_load_ps(q + j + 96));
      a7 = _mm512_add_ps(a7, _mm512_load_ps(q + j + 112));
    }
    const __m512 s = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)),
                                   _mm512_add_ps(_mm512_add_ps(a4, a5), _mm512_add_ps(a6, a7)));
    alignas(64) float lanes[16];
    _mm512_store_ps(lanes, s);
    for (float v : lanes) total += v;
  }
  return total;
}

// The same with AVX2 loads (CPUs without AVX-512).
__attribute__((target("avx2"))) float sum_avx2(const float* p, int64_t n, int threads) {
  float total = 0.f;
#pragma omp parallel for num_threads(threads) schedule(static) reduction(+ : total)
  for (int64_t blk = 0; blk < n / 4096; ++blk) {
    const float* q = p + blk * 4096;
    __m256 a[8];
    for (auto& v : a) v = _mm256_setzero_ps();
    for (int64_t j = 0; j < 4096; j += 64)
      for (int u = 0; u < 8; ++u) a[u] = _mm256_add_ps(a[u], _mm256_load_ps(q + j + 8 * u));
    for (int u = 1; u < 8; ++u) a[0] = _mm256_add_ps(a[0], a[u]);
    alignas(32) float lanes[8];
    _mm256_store_ps(lanes, a[0]);
    for (float v : lanes) total += v;
  }
  return total;
}

float sum_best(const float* p, int64_t n, int threads) {
  return __builtin_cpu_supports("avx512f") ? sum_avx512(p, n, threads) : sum_avx2(p, n, threads);
}

void BM_DramRead(benchmark::State& st) {
  const int threads = static_cast<int>(st.range(0));
  const int64_t n = int64_t{1} << 28;  // 1 GiB of f32
  Tensor buf = Tensor::empty(Shape{n}, DType::kF32);
  float* p = buf.data<float>();
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t i = 0; i < n; ++i) p[i] = 1e-3f;  // first touch by the thread that reads it
  for (auto _ : st) benchmark::DoNotOptimize(sum_best(p, n, threads));
  st.counters["GB/s"] = benchmark::Counter(static_cast<double>(n) * 4e-9 * static_cast<double>(st.iterations()),
                                           benchmark::Counter::kIsRate);
}

struct Mkn {
  int64_t m, k, n;
};

void linear_args(benchmark::internal::Benchmark* b, bool small_only) {
  const Mkn main_shapes[] = {{1, 960, 2560}, {64, 960, 2560}, {256, 768, 3072}, {1024, 768, 768}};
  std::vector<Mkn> all;
  for (const Mkn& s : main_shapes) all.push_back(s);
  for (int64_t m : {1, 8, 16})
    for (auto kn : {std::pair<int64_t, int64_t>{720, 2048}, {2048, 720}, {720, 960}}) all.push_back({m, kn.first, kn.second});
  // pi0's action expert (Gemma 300M, 51 suffix rows: state + 50 actions): MLP up / down, q.
  for (auto kn : {std::pair<int64_t, int64_t>{1024, 4096}, {4096, 1024}, {1024, 2048}}) all.push_back({51, kn.first, kn.second});
  for (const Mkn& s : all) {
    if (small_only && s.m > 16) continue;
    for (int64_t bf16 : {0, 1})
      for (int64_t threads : {1, 2})
        for (int64_t cold : {0, 1})
          if (cold == 0 || s.m <= 16) b->Args({s.m, s.k, s.n, bf16, threads, cold});
  }
  b->ArgNames({"M", "K", "N", "bf16", "thr", "cold"})->UseRealTime()->Unit(benchmark::kMicrosecond);
}

}  // namespace

BENCHMARK(BM_VlartLinear)->Apply([](benchmark::internal::Benchmark* b) { linear_args(b, false); });
BENCHMARK(BM_OneDnnMatmul)->Apply([](benchmark::internal::Benchmark* b) { linear_args(b, false); });
BENCHMARK(BM_Gemv)->Apply([](benchmark::internal::Benchmark* b) { linear_args(b, true); });
BENCHMARK(BM_DramRead)->Arg(1)->Arg(2)->ArgName("thr")->UseRealTime()->Unit(benchmark::kMillisecond);

BENCHMARK_MAIN();
