#include "backends/cpu/cpu_backend.h"

namespace vlart {

// Kernels of this family are registered here (being written; see cpu_backend.h).
void register_cpu_attention(CpuKernelTable& /*t*/) {}

}  // namespace vlart
