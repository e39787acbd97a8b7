#include <cstdio>

#include "commands.h"
#include "vlart/system.h"

namespace vlart::cli {

int cmd_info(int argc, char** argv) {
  if (argc >= 1) return cmd_model_info(argv[0]);
  const SystemInfo s = system_info();
  std::printf("vlart %s\n", s.vlart_version.c_str());
  std::printf("cpu:       %s (%s), %d logical CPUs\n", s.cpu.model.c_str(), s.cpu.vendor.c_str(), s.cpu.logical_cpus);
  std::printf("cpu flags: %s\n", s.cpu.flags_str().c_str());
  std::printf("oneDNN:    %s, effective ISA %s\n", s.onednn_version.c_str(), s.onednn_isa.c_str());
  std::printf("cpu arch:  %s\n", s.cpu.arch.c_str());
  std::printf("kernels:   vlart %s%s%s\n", s.kernel_isa.c_str(), s.kernel_isa_cap == "none" ? "" : ", capped at ",
              s.kernel_isa_cap == "none" ? "" : s.kernel_isa_cap.c_str());
  for (const auto& k : s.kernels) std::printf("  %-32s %s\n", k.family.c_str(), k.path.c_str());
  std::printf("backends:\n");
  for (const auto& b : s.backends)
    std::printf("  %-5s %-13s %s\n", b.name.c_str(), b.available ? "available" : "unavailable", b.detail.c_str());
  return 0;
}

}  // namespace vlart::cli
