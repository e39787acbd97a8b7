#include "cpu/isa.h"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cstdlib>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

namespace vlart::kernels {
namespace {

#if defined(__x86_64__) || defined(__i386__)
// CPUID.(EAX=7, ECX=1):EAX bit 4 (not every compiler's __builtin_cpu_supports knows "avxvnni").
bool cpuid_avx_vnni() {
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (!__get_cpuid(0, &a, &b, &c, &d) || a < 7) return false;
  __cpuid_count(7, 1, a, b, c, d);
  return (a >> 4) & 1u;
}
bool cpu_init() {
  __builtin_cpu_init();
  return true;
}
#define VLART_HAS(f) (cpu_init() && __builtin_cpu_supports(f))
#else
#define VLART_HAS(f) false
#endif

CpuIsa detect() {
  if (VLART_HAS("avx512f") && VLART_HAS("avx512bw") && VLART_HAS("avx512vl")) return CpuIsa::kAvx512;
  if (VLART_HAS("avx2") && VLART_HAS("fma")) return CpuIsa::kAvx2;
  return CpuIsa::kPortable;
}

CpuIsa env_cap() {
  const char* e = std::getenv("VLART_MAX_CPU_ISA");
  CpuIsa c = CpuIsa::kAvx512;
  if (e && *e && !cpu_isa_from_name(e, &c)) c = CpuIsa::kAvx512;  // unknown value: no cap
  return c;
}

std::atomic<int>& cap_slot() {
  static std::atomic<int> cap{static_cast<int>(env_cap())};
  return cap;
}

}  // namespace

const char* cpu_isa_name(CpuIsa isa) {
  switch (isa) {
    case CpuIsa::kPortable: return "portable";
    case CpuIsa::kAvx2: return "avx2";
    case CpuIsa::kAvx512: return "avx512";
  }
  return "?";
}

bool cpu_isa_from_name(const std::string& s, CpuIsa* out) {
  std::string l;
  for (char ch : s) l += static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  if (l == "portable" || l == "scalar" || l == "generic" || l == "sse41" || l == "none") {
    *out = CpuIsa::kPortable;
  } else if (l == "avx2" || l == "avx2_vnni") {
    *out = CpuIsa::kAvx2;
  } else if (l == "avx512" || l == "avx512_core" || l == "avx512_core_vnni" || l == "avx512_core_bf16" ||
             l == "avx512_core_amx" || l == "all") {
    *out = CpuIsa::kAvx512;
  } else {
    return false;
  }
  return true;
}

CpuIsa cpu_isa_detected() {
  static const CpuIsa d = detect();
  return d;
}

CpuIsa cpu_isa_cap_value() { return static_cast<CpuIsa>(cap_slot().load(std::memory_order_relaxed)); }

CpuIsa cpu_isa_max() { return std::min(cpu_isa_detected(), cpu_isa_cap_value()); }

void cpu_isa_cap(CpuIsa cap) { cap_slot().store(static_cast<int>(cap), std::memory_order_relaxed); }

bool cpu_has_avx512_vnni() {
  static const bool h = VLART_HAS("avx512vnni");
  return h && cpu_isa_max() >= CpuIsa::kAvx512;
}

bool cpu_has_avx512_bf16() {
  static const bool h = VLART_HAS("avx512bf16");
  return h && cpu_isa_max() >= CpuIsa::kAvx512;
}

bool cpu_has_avx_vnni() {
#if defined(__x86_64__) || defined(__i386__)
  static const bool h = cpuid_avx_vnni() && VLART_HAS("avx2");
#else
  static const bool h = false;
#endif
  return h && cpu_isa_max() >= CpuIsa::kAvx2;
}

}  // namespace vlart::kernels
