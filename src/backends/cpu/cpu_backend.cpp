#include "backends/cpu/cpu_backend.h"

#include <omp.h>
#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
#endif

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <thread>

#include "core/log.h"
#include "vlart/error.h"

namespace vlart {

void set_flush_denormals() {
#if defined(__x86_64__) || defined(__i386__)
  // FTZ (bit 15) and DAZ (bit 6) of MXCSR.
  _mm_setcsr(_mm_getcsr() | 0x8040u);
#elif defined(__aarch64__)
  // FZ (bit 24) of FPCR: denormal inputs and results of f32/f64 arithmetic (scalar and NEON) are
  // flushed to zero, the equivalent of FTZ + DAZ.
  uint64_t fpcr;
  __asm__ __volatile__("mrs %0, fpcr" : "=r"(fpcr));
  __asm__ __volatile__("msr fpcr, %0" : : "r"(fpcr | (uint64_t{1} << 24)));
#endif
}

namespace {

class CpuBackend final : public Backend {
 public:
  explicit CpuBackend(const CpuBackendOptions& opts) {
    int n = opts.threads;
    if (n <= 0) n = static_cast<int>(std::thread::hardware_concurrency());
    ctx_.threads = n > 0 ? n : 1;
    ctx_.engine = dnnl::engine(dnnl::engine::kind::cpu, 0);
    ctx_.stream = dnnl::stream(ctx_.engine);
    register_cpu_gemm(table_);
    register_cpu_norm(table_);
    register_cpu_elementwise(table_);
    register_cpu_layout(table_);
    register_cpu_attention(table_);
    logger().info("cpu backend: {} threads", ctx_.threads);
  }

  std::string name() const override { return "cpu"; }
  Device device() const override { return Device::cpu(); }
  Allocator* allocator() override { return cpu_allocator(); }

  bool supports(const Graph& g, const Node& n) const override {
    if (n.op == OpKind::kReshape) return true;  // alias, executed by nobody
    // A quantized weight is only readable as the W input of a Linear (kernels repack it).
    for (size_t i = 0; i < n.inputs.size(); ++i)
      if (n.inputs[i] != kNoValue && g.value(n.inputs[i]).quant && !(n.op == OpKind::kLinear && i == 1)) return false;
    const auto& e = table_[static_cast<size_t>(n.op)];
    return e.supports && e.create && e.supports(g, n);
  }

  std::unique_ptr<OpKernel> prepare(const Graph& g, const Node& n) override {
    const auto& e = table_[static_cast<size_t>(n.op)];
    if (!e.create)
      throw UnsupportedError(detail::concat("cpu backend has no kernel for op ", op_name(n.op),
                                            " (node '", n.name, "')"));
    begin_run();  // primitives created here may run reorders: same thread setup as run
    return e.create(g, n, ctx_);
  }

  PackedCacheStats packed_stats() const { return ctx_.packed->stats(); }

  void begin_run() override {
    omp_set_num_threads(ctx_.threads);
    thread_local int configured_threads = 0;
    if (configured_threads != ctx_.threads) {
      // Configure every thread of this caller's OpenMP pool once.
#pragma omp parallel num_threads(ctx_.threads)
      set_flush_denormals();
      set_flush_denormals();
      configured_threads = ctx_.threads;
    }
  }

 private:
  CpuContext ctx_;
  CpuKernelTable table_{};
};

}  // namespace

PackedCacheStats cpu_packed_cache_stats(const Backend& b) {
  const auto* c = dynamic_cast<const CpuBackend*>(&b);
  return c ? c->packed_stats() : PackedCacheStats{};
}

std::string source_key(const Tensor& t) {
  if (!t.defined()) return "-|";
  char buf[96];
  std::snprintf(buf, sizeof buf, "%p:%zu:%d:%d|", t.raw(), t.nbytes(), static_cast<int>(t.dtype()),
                t.is_contiguous() ? 1 : 0);
  std::string k = buf;
  for (int64_t d : t.shape().vec()) k += std::to_string(d) + ",";
  for (int64_t s : t.strides().vec()) k += std::to_string(s) + ";";
  return k;
}

std::string desc_key(const dnnl::memory::desc& md) {
  return std::string(reinterpret_cast<const char*>(&md.data), sizeof md.data);
}

std::unique_ptr<Backend> make_cpu_backend(const CpuBackendOptions& opts) {
  return std::make_unique<CpuBackend>(opts);
}

}  // namespace vlart
