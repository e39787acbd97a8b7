// GEMM family of the CPU backend: what it supports, and the registration of its kernels
// (bodies in gemm_linear.cpp, gemm_matmul.cpp, gemm_conv.cpp).
#include "backends/cpu/cpu_backend.h"
#include "backends/cpu/gemm_onednn.h"

namespace vlart {
namespace {

bool has_input(const Node& n, size_t i) { return n.inputs.size() > i && n.inputs[i] != kNoValue; }

bool is_constant(const Value& v) { return v.kind == ValueKind::kWeight && v.constant.defined(); }

// Weights are reordered (and converted) once when they are constants; a runtime weight must
// already have the activation dtype.
bool weight_ok(const Value& x, const Value& w) {
  return is_f32_or_bf16(w.dtype) && (is_constant(w) || w.dtype == x.dtype);
}

bool supports_linear(const Graph& g, const Node& n) {
  const Value& x = g.value(n.inputs[0]);
  const Value& w = g.value(n.inputs[1]);
  if (!is_f32_or_bf16(x.dtype) || !is_f32_or_bf16(w.dtype) || w.shape[1] == 0) return false;
  if (has_input(n, 2) && !is_f32_or_bf16(g.value(n.inputs[2]).dtype)) return false;
  if (w.quant) return quantized_linear_supported(*w.quant);
  const int64_t m = x.shape.numel() / w.shape[1];
  // The GEMV reads any f32/bf16 weight in place; oneDNN needs a constant or matching dtype.
  return m <= kLinearGemvMaxRows || weight_ok(x, w);
}

bool supports_matmul(const Graph& g, const Node& n) {
  const Value& a = g.value(n.inputs[0]);
  const Value& b = g.value(n.inputs[1]);
  return is_f32_or_bf16(a.dtype) && a.dtype == b.dtype && g.value(n.output).shape.numel() > 0;
}

bool supports_conv2d(const Graph& g, const Node& n) {
  const Value& x = g.value(n.inputs[0]);
  const Value& w = g.value(n.inputs[1]);
  if (!is_f32_or_bf16(x.dtype) || !weight_ok(x, w)) return false;
  if (has_input(n, 2) && !is_f32_or_bf16(g.value(n.inputs[2]).dtype)) return false;
  return true;
}

}  // namespace

void register_cpu_gemm(CpuKernelTable& t) {
  set_entry(t, OpKind::kLinear, supports_linear, create_cpu_linear);
  set_entry(t, OpKind::kMatMul, supports_matmul, create_cpu_matmul);
  set_entry(t, OpKind::kConv2d, supports_conv2d, create_cpu_conv2d);
}

}  // namespace vlart
