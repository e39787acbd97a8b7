// Which code path each CPU kernel family takes on this machine (vlart info, benchmarks' headers).
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace vlart {

// {family, path} in a fixed order, after the VLART_MAX_CPU_ISA / ONEDNN_MAX_CPU_ISA caps.
std::vector<std::pair<std::string, std::string>> cpu_kernel_paths();

}  // namespace vlart
