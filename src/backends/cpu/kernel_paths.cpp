#include "backends/cpu/kernel_paths.h"

#include <dnnl.hpp>

#include "backends/cpu/gemm_onednn.h"
#include "cpu/attention.h"
#include "cpu/gemv.h"
#include "cpu/isa.h"
#include "cpu/qgemm.h"

namespace vlart {

std::vector<std::pair<std::string, std::string>> cpu_kernel_paths() {
  using kernels::CpuIsa;
  const CpuIsa isa = kernels::cpu_isa_max();
  const std::string own = kernels::cpu_isa_name(isa);
  std::vector<std::pair<std::string, std::string>> v;
  v.emplace_back("linear M<=16 (gemv f32/bf16)", gemv_isa_name(gemv_active_isa()));
  v.emplace_back("linear M>16, matmul, conv (f32)", "oneDNN");
  v.emplace_back("bf16 compute (M>16)", onednn_bf16_supported()
                                            ? "oneDNN bf16"
                                            : "oneDNN f32 between vlart bf16<->f32 conversions (no bf16 in oneDNN here)");
  v.emplace_back("int8/int4 weight-only (qgemm)", gemv_isa_name(gemv_active_isa()));
  v.emplace_back("w8a8 (int8 activations, M>16)", w8a8_path_name());
  v.emplace_back("attention f32", kernels::attention_f32_path_name());
  v.emplace_back("attention int16/int8 products",
                 kernels::attention_reduced_precision_available() ? "avx512_vnni" : "unavailable: runs f32 attention");
  v.emplace_back("norms, rope, elementwise", own == "portable" ? "portable" : "portable, compiler-vectorised (" + own + ")");
  return v;
}

}  // namespace vlart
