#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#elif defined(__aarch64__) && defined(__linux__)
#include <sys/auxv.h>
#endif

#include <cstring>

#include <dnnl.hpp>
#include <fstream>
#include <sstream>
#include <thread>

#include "backends/cpu/kernel_paths.h"
#include "core/backend.h"
#include "cpu/isa.h"
#include "cpu/attention_tile.h"
#include "cpu/gemv.h"
#include "cpu/qgemm.h"
#include "vlart/system.h"

namespace vlart {

std::string version() { return VLART_VERSION_STRING; }

std::string CpuFeatures::flags_str() const {
  std::ostringstream os;
  const std::pair<const char*, bool> f[] = {
      {"avx2", avx2},         {"fma", fma},           {"f16c", f16c},  {"avx_vnni", avx_vnni},
      {"avx512f", avx512f},   {"avx512bw", avx512bw}, {"avx512vl", avx512vl},
      {"avx512_vnni", avx512_vnni}, {"avx512_bf16", avx512_bf16}, {"avx512_fp16", avx512_fp16},
      {"amx_tile", amx_tile}, {"amx_bf16", amx_bf16}, {"amx_int8", amx_int8},
      {"neon", neon},         {"dotprod", asimd_dotprod}, {"fp16", asimd_fp16},
      {"bf16", bf16},         {"i8mm", i8mm},         {"sve", sve}};
  bool first = true;
  for (const auto& [name, on] : f)
    if (on) {
      os << (first ? "" : " ") << name;
      first = false;
    }
  return os.str();
}

namespace {

// /proc/cpuinfo's first line starting with `key` (its value), or "".
std::string cpuinfo_field(const char* key) {
  std::ifstream f("/proc/cpuinfo");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind(key, 0) == 0) {
      const size_t colon = line.find(':');
      return colon == std::string::npos || colon + 2 > line.size() ? std::string() : line.substr(colon + 2);
    }
  return {};
}

}  // namespace

CpuFeatures detect_cpu_features() {
  CpuFeatures c;
  c.logical_cpus = static_cast<int>(std::thread::hardware_concurrency());
#if defined(__aarch64__)
  c.arch = "aarch64";
#if defined(__linux__)
  // Bits of <asm/hwcap.h> (AT_HWCAP / AT_HWCAP2), stable kernel ABI.
  const unsigned long hw = getauxval(AT_HWCAP), hw2 = getauxval(AT_HWCAP2);
  c.neon = hw & (1ul << 1);            // HWCAP_ASIMD
  c.asimd_fp16 = hw & (1ul << 10);     // HWCAP_ASIMDHP
  c.asimd_dotprod = hw & (1ul << 20);  // HWCAP_ASIMDDP
  c.sve = hw & (1ul << 22);            // HWCAP_SVE
  c.i8mm = hw2 & (1ul << 13);          // HWCAP2_I8MM
  c.bf16 = hw2 & (1ul << 14);          // HWCAP2_BF16
#else
  c.neon = true;
#endif
  // Linux on arm64 names the core by implementer and part number; some boards add a "Model" line.
  c.vendor = cpuinfo_field("CPU implementer");
  c.model = cpuinfo_field("Model");
  if (c.model.empty()) {
    const std::string part = cpuinfo_field("CPU part");
    c.model = part.empty() ? "unknown aarch64 core" : "part " + part;
  }
  if (c.vendor.empty()) c.vendor = "implementer unknown";
  return c;
#elif defined(__x86_64__) || defined(__i386__)
  c.arch = "x86_64";
  unsigned a = 0, b = 0, cx = 0, d = 0;
  if (__get_cpuid(0, &a, &b, &cx, &d)) {
    char v[13] = {};
    std::memcpy(v, &b, 4);
    std::memcpy(v + 4, &d, 4);
    std::memcpy(v + 8, &cx, 4);
    c.vendor = v;
  }
  unsigned max_leaf = a;
  bool os_avx = false, os_avx512 = false, os_amx = false;
  if (__get_cpuid(1, &a, &b, &cx, &d)) {
    c.fma = cx & (1u << 12);
    c.f16c = cx & (1u << 29);
    const bool osxsave = cx & (1u << 27);
    if (osxsave) {
      unsigned lo, hi;
      __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
      const unsigned long long xcr0 = (static_cast<unsigned long long>(hi) << 32) | lo;
      os_avx = (xcr0 & 0x6) == 0x6;
      os_avx512 = (xcr0 & 0xe6) == 0xe6;
      os_amx = (xcr0 & 0x60000) == 0x60000;
    }
  }
  if (max_leaf >= 7) {
    __cpuid_count(7, 0, a, b, cx, d);
    c.avx2 = os_avx && (b & (1u << 5));
    c.avx512f = os_avx512 && (b & (1u << 16));
    c.avx512bw = os_avx512 && (b & (1u << 30));
    c.avx512vl = os_avx512 && (b & (1u << 31));
    c.avx512_vnni = os_avx512 && (cx & (1u << 11));
    c.avx512_fp16 = os_avx512 && (d & (1u << 23));
    c.amx_bf16 = os_amx && (d & (1u << 22));
    c.amx_tile = os_amx && (d & (1u << 24));
    c.amx_int8 = os_amx && (d & (1u << 25));
    __cpuid_count(7, 1, a, b, cx, d);
    c.avx_vnni = os_avx && (a & (1u << 4));
    c.avx512_bf16 = os_avx512 && (a & (1u << 5));
  }
  c.fma = c.fma && os_avx;
  c.f16c = c.f16c && os_avx;
  c.model = cpuinfo_field("model name");
  return c;
#else
  c.arch = "other";
  return c;
#endif
}

namespace {
const char* isa_name(dnnl::cpu_isa isa) {
  switch (isa) {
    case dnnl::cpu_isa::sse41: return "sse41";
    case dnnl::cpu_isa::avx: return "avx";
    case dnnl::cpu_isa::avx2: return "avx2";
    case dnnl::cpu_isa::avx2_vnni: return "avx2_vnni";
    case dnnl::cpu_isa::avx512_core: return "avx512_core";
    case dnnl::cpu_isa::avx512_core_vnni: return "avx512_core_vnni";
    case dnnl::cpu_isa::avx512_core_bf16: return "avx512_core_bf16";
    case dnnl::cpu_isa::avx512_core_amx: return "avx512_core_amx";
#if defined(__aarch64__)
    default: return "aarch64 (oneDNN names x86 ISAs only)";
#else
    default: return "other";
#endif
  }
}
}  // namespace

SystemInfo system_info() {
  SystemInfo s;
  s.vlart_version = version();
  s.cpu = detect_cpu_features();
  const dnnl_version_t* v = dnnl_version();
  s.onednn_version = std::to_string(v->major) + "." + std::to_string(v->minor) + "." + std::to_string(v->patch);
  s.onednn_isa = isa_name(dnnl::get_effective_cpu_isa());
  s.kernel_isa = kernels::cpu_isa_name(kernels::cpu_isa_max());
  s.kernel_isa_cap = kernels::cpu_isa_cap_value() >= kernels::cpu_isa_detected()
                         ? "none"
                         : kernels::cpu_isa_name(kernels::cpu_isa_cap_value());
  for (auto& [family, path] : cpu_kernel_paths()) s.kernels.push_back({family, path});
  s.backends.push_back({"cpu", true, std::to_string(s.cpu.logical_cpus) + " threads, oneDNN " + s.onednn_version +
                                         " (" + s.onednn_isa + ")"});
  std::string why;
  std::unique_ptr<Backend> cuda = make_cuda_backend({}, &why);
  if (cuda)
    s.backends.push_back({"cuda", true, cuda->device().str()});
  else
    s.backends.push_back({"cuda", false, why});
  return s;
}

}  // namespace vlart
