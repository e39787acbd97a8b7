// W8A8 Linear on x86 CPUs where oneDNN has no saturation-free int8 matmul (AVX2 without VNNI; also
// AVX-VNNI where oneDNN's ISA does not report it): per-token (or static-scale) int8 activations and
// the exact int32 GEMM of kernels/cpu/qgemm_s8.h, epilogue fused. See gemm_linear.cpp for routing.
#pragma once

#include <memory>

#include "backends/cpu/cpu_backend.h"
#include "core/graph.h"

namespace vlart {

// Whether this CPU can run the kernel (AVX2 + FMA, x86-64).
bool w8a8_s8gemm_available();
// The kernel for an int8 W8A8 weight (q.act_int8, kind int8, no input scales) at m rows, or nullptr
// where w8a8_s8gemm_available() is false.
std::unique_ptr<OpKernel> make_w8a8_s8gemm_linear(int64_t m, const QuantWeight& q, DType x_dt, bool has_bias,
                                                  Activation act, CpuContext& ctx);

}  // namespace vlart
