// Multi-row GEMV for small M: y[m, n] = act(sum_k x[m, k] * w[n, k] + bias[n]), m < M <= 16.
//
// Small-M Linear layers (the action expert runs at M = 1..16) are bound by streaming the weight
// matrix from memory. This kernel reads every weight row once and multiplies it with all M
// activation rows while it is in registers / L1, so the weight traffic is N*K*sizeof(w) whatever M
// is. Activations and accumulation are f32; weights are f32 or bf16 (widened to f32 in registers).
// Work is split over N (blocks of output rows) with OpenMP.
//
// Three code paths, picked at run time from the CPU: AVX-512 (F/BW/VL), AVX2+FMA and scalar.
// gemv_force_isa() pins a lower path so tests can cover all three on an AVX-512 machine.
#pragma once

#include <cstdint>

namespace vlart {

enum class GemvIsa : uint8_t { kAuto = 0, kScalar, kAvx2, kAvx512 };
enum class GemvAct : uint8_t { kNone = 0, kRelu, kGeluErf, kGeluTanh, kSilu };

// Pins the code path used by later gemv() calls (process-wide; meant for tests and benchmarks).
// kAuto restores CPU detection. A request the CPU cannot run falls back to the best it can.
void gemv_force_isa(GemvIsa isa);
// The path the next gemv() call will take (never kAuto).
GemvIsa gemv_active_isa();
const char* gemv_isa_name(GemvIsa isa);

// Largest M handled by gemv(); larger M goes to a GEMM library.
constexpr int kGemvMaxRows = 16;

struct GemvProblem {
  int m = 1;           // activation rows, 1..kGemvMaxRows
  int64_t k = 0;       // reduction length
  int64_t n = 0;       // output features
  const float* x = nullptr;  // [m, k] with row stride ldx (elements)
  int64_t ldx = 0;
  const void* w = nullptr;   // [n, k] row-major (PyTorch Linear layout)
  bool w_bf16 = false;       // w holds bf16 (else f32)
  const void* bias = nullptr;  // [n] or nullptr
  bool bias_bf16 = false;
  GemvAct act = GemvAct::kNone;
  void* y = nullptr;         // [m, n] with row stride ldy (elements)
  int64_t ldy = 0;
  bool y_bf16 = false;       // store y as bf16 (round to nearest even), else f32
  int threads = 1;           // OpenMP threads over N
};

// Computes the problem. Does not allocate. Throws nothing; arguments are validated by the caller.
void gemv(const GemvProblem& p);

}  // namespace vlart
