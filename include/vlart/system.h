// What this machine and this build of vlart can do: CPU features, backends, library versions.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace vlart {

struct CpuFeatures {
  std::string vendor;
  std::string model;
  int logical_cpus = 0;
  bool avx2 = false, fma = false, f16c = false, avx_vnni = false;
  bool avx512f = false, avx512bw = false, avx512vl = false, avx512_vnni = false, avx512_bf16 = false,
       avx512_fp16 = false;
  bool amx_tile = false, amx_bf16 = false, amx_int8 = false;
  // aarch64 (from the kernel's HWCAP bits): Advanced SIMD, its int8 dot product (SDOT/UDOT), fp16
  // arithmetic, BF16 and I8MM instructions, SVE.
  bool neon = false, asimd_dotprod = false, asimd_fp16 = false, bf16 = false, i8mm = false, sve = false;
  std::string arch;               // "x86_64", "aarch64", ...
  std::string flags_str() const;  // "avx2 fma avx512f ..." / "neon dotprod ..." (present ones)
};

CpuFeatures detect_cpu_features();

struct BackendInfo {
  std::string name;
  bool available = false;
  std::string detail;  // device / ISA, or why unavailable
};

// The code path one CPU kernel family takes on this machine (under VLART_MAX_CPU_ISA /
// ONEDNN_MAX_CPU_ISA caps), e.g. {"attention f32", "avx2"}.
struct KernelPathInfo {
  std::string family;
  std::string path;
};

struct SystemInfo {
  std::string vlart_version;
  CpuFeatures cpu;
  std::string onednn_version;
  std::string onednn_isa;  // effective ISA oneDNN dispatches to
  std::string kernel_isa;  // vlart's own kernels: portable | avx2 | avx512 (after any cap)
  std::string kernel_isa_cap;  // the cap in force ("none" when uncapped)
  std::vector<KernelPathInfo> kernels;
  std::vector<BackendInfo> backends;
  // Code path each hand-written CPU kernel family takes on this machine ("gemv" -> "avx512", ...).
  std::vector<std::pair<std::string, std::string>> kernel_paths;
};

SystemInfo system_info();
std::string version();

}  // namespace vlart
