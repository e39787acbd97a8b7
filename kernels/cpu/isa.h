// The CPU instruction-set ladder of vlart's own kernels.
//
// Every kernel family has a portable path (plain C++, vectorised by the compiler for the build's
// baseline), an AVX2+FMA path and an AVX-512 path (VNNI / BF16 where present), picked at run time.
// The ladder can be capped process-wide, so the lower paths run (and are tested) on any machine:
//   * environment: VLART_MAX_CPU_ISA=portable|avx2|avx512 (read once, at first use), the analogue
//     of oneDNN's ONEDNN_MAX_CPU_ISA (set both to cap the whole runtime);
//   * code: cpu_isa_cap() (tests, benchmarks).
// A cap above what the CPU has changes nothing.
#pragma once

#include <cstdint>
#include <string>

namespace vlart::kernels {

enum class CpuIsa : uint8_t { kPortable = 0, kAvx2 = 1, kAvx512 = 2 };

const char* cpu_isa_name(CpuIsa isa);
// Parses "portable" / "scalar" / "generic", "avx2", "avx512" (case-insensitive). False if unknown.
bool cpu_isa_from_name(const std::string& s, CpuIsa* out);

// What this CPU (and this build) can run: AVX-512 = AVX512F+BW+VL, AVX2 = AVX2+FMA.
CpuIsa cpu_isa_detected();
// The highest path kernels may take now: min(detected, cap).
CpuIsa cpu_isa_max();
// Caps the ladder (process-wide; kAvx512 lifts a cap). Not meant to change while kernels run.
void cpu_isa_cap(CpuIsa cap);
// The cap in force (from VLART_MAX_CPU_ISA or cpu_isa_cap; kAvx512 when none).
CpuIsa cpu_isa_cap_value();

// Individual features, false above the cap (e.g. avx512_vnni is false under an avx2 cap).
bool cpu_has_avx512_vnni();
bool cpu_has_avx512_bf16();
bool cpu_has_avx_vnni();  // AVX-VNNI (VEX vpdpbusd on ymm): Intel 12th gen and later

}  // namespace vlart::kernels
