// Multi-row GEMV for small M: y[m, n] = act(sum_k x[m, k] * w[n, k] + bias[n]), m < M <= 16.
//
// Small-M Linear layers (the action expert runs at M = 1..16) are bound by streaming the weight
// matrix from memory. This kernel reads every weight row once and multiplies it with all M
// activation rows while it is in registers / L1, so the weight traffic is N*K*sizeof(w) whatever M
// is. Accumulation is f32. Weights are f32 or bf16; bf16 weights are widened to f32 in registers
// and multiplied with f32 activations, except when activations are bf16 too and the CPU has
// AVX512_BF16: then vdpbf16ps multiplies bf16 pairs directly (products of bf16 values are exact in
// f32, so this loses nothing and halves the instruction count, which matters at M = 8..16).
// Work is split over N (blocks of output rows) with OpenMP.
//
// Code paths, picked at run time from the CPU: AVX-512 with BF16 dot products, AVX-512 (F/BW/VL),
// AVX2+FMA and scalar. gemv_force_isa() pins a lower path so tests cover all of them.
#pragma once

#include <cstddef>
#include <cstdint>

namespace vlart {

enum class GemvIsa : uint8_t { kAuto = 0, kScalar, kAvx2, kAvx512, kAvx512Bf16 };
enum class GemvAct : uint8_t { kNone = 0, kRelu, kGeluErf, kGeluTanh, kSilu };

// Pins the code path used by later gemv() calls (process-wide; meant for tests and benchmarks).
// kAuto restores CPU detection. A request the CPU cannot run falls back to the best it can.
void gemv_force_isa(GemvIsa isa);
// The path the next gemv() call will take (never kAuto).
GemvIsa gemv_active_isa();
const char* gemv_isa_name(GemvIsa isa);

// Largest M handled by gemv(); larger M goes to a GEMM library.
constexpr int kGemvMaxRows = 16;

// Optional packed weight layout for the AVX-512 paths: column panels of 16 output features,
// each panel contiguous over K, so every thread reads one sequential stream and the kernel
// accumulates 16 outputs per register (activation broadcast, no horizontal sums):
//   kF32:    float    [ceil(n/16)][k][16]
//   kBf16:   uint16_t [ceil(n/16)][k][16]         (widened to f32 in registers)
//   kBf16Dp: uint16_t [ceil(n/16)][ceil(k/2)][16][2]  (k pairs for vdpbf16ps; bf16 x only)
// Padding (n up to a multiple of 16, odd k) is zero.
enum class GemvPack : uint8_t { kNone = 0, kF32, kBf16, kBf16Dp };
// The packed format the best path on this CPU wants for these dtypes (kNone without AVX-512).
GemvPack gemv_pack_format(bool x_bf16, bool w_bf16);
size_t gemv_packed_bytes(GemvPack f, int64_t k, int64_t n);
// Packs w ([n, k] row-major, f32 or bf16 as w_bf16 says; kF32 needs f32, the others bf16).
void gemv_pack(GemvPack f, const void* w, bool w_bf16, int64_t k, int64_t n, void* dst);

struct GemvProblem {
  int m = 1;           // activation rows, 1..kGemvMaxRows
  int64_t k = 0;       // reduction length
  int64_t n = 0;       // output features
  const void* x = nullptr;   // [m, k] with row stride ldx (elements)
  int64_t ldx = 0;
  bool x_bf16 = false;       // x holds bf16 (else f32)
  // Workspace of gemv_work_floats(m, k) floats: the packed path transposes x into it, and bf16 x
  // on a path without bf16 dot products is widened into it. Required when x_bf16 or w_packed.
  float* x_work = nullptr;
  const void* w = nullptr;   // [n, k] row-major (PyTorch Linear layout)
  bool w_bf16 = false;       // w holds bf16 (else f32)
  // Packed copy of w (gemv_pack), used when the active path can read it; w must still be valid
  // for the paths that cannot (forced lower ISA).
  const void* w_packed = nullptr;
  GemvPack pack = GemvPack::kNone;
  const void* bias = nullptr;  // [n] or nullptr
  bool bias_bf16 = false;
  GemvAct act = GemvAct::kNone;
  void* y = nullptr;         // [m, n] with row stride ldy (elements)
  int64_t ldy = 0;
  bool y_bf16 = false;       // store y as bf16 (round to nearest even), else f32
  int threads = 1;           // OpenMP threads over N
};

inline int64_t gemv_work_floats(int64_t m, int64_t k) { return m * (k + 1); }

// Computes the problem. Does not allocate. Throws nothing; arguments are validated by the caller.
void gemv(const GemvProblem& p);

}  // namespace vlart
