// Multi-row GEMV for small M: y[m, n] = act(sum_k x[m, k] * w[n, k] + bias[n]), m < M <= 16.
//
// Small-M Linear layers (the action expert runs at M = 1..16) are bound by streaming the weight
// matrix from memory. Every weight element is read once per call and multiplied with all M
// activation rows while it is in registers, so the weight traffic is N*K*sizeof(w) whatever M is.
// Accumulation is f32. Work is split over N with OpenMP (static: one contiguous slab per thread).
//
// Two layouts:
//  * packed (AVX-512, weights packed once by gemv_pack into 16-column panels contiguous over K):
//    one sequential stream per panel, activations transposed into x_work and broadcast, 16
//    outputs per register, no horizontal sums. f32 weights, bf16 weights widened to f32 in
//    registers (f32 activations), or bf16 x bf16 with vdpbf16ps when the CPU has AVX512_BF16
//    (products of bf16 values are exact in f32, so nothing is lost against widening).
//  * row (w read in place, [n, k] PyTorch layout): 4x4 (AVX-512, NEON) / 4x2 (AVX2) / scalar tiles of
//    dot products; used for runtime weights and when a lower path is forced. bf16 x is widened to
//    f32 rows in x_work first (or meets bf16 w in vdpbf16ps on AVX512_BF16).
//
// gemv_force_isa() pins a lower path so tests cover every one on an AVX-512 machine.
#pragma once

#include <cstddef>
#include <cstdint>

namespace vlart {

// x86: kScalar < kAvx2 < kAvx512 < kAvx512Bf16. aarch64: kScalar < kNeon (always present there). The
// numeric order ranks paths of one architecture only: use gemv_isa_supported(), not a comparison.
enum class GemvIsa : uint8_t { kAuto = 0, kScalar, kAvx2, kAvx512, kAvx512Bf16, kNeon };
enum class GemvAct : uint8_t { kNone = 0, kRelu, kGeluErf, kGeluTanh, kSilu };

// Pins the code path used by later gemv() calls (process-wide; meant for tests and benchmarks).
// kAuto restores CPU detection. A request the CPU cannot run falls back to the best it can (an x86
// path forced on aarch64 runs NEON, kNeon forced on x86 the best x86 path).
void gemv_force_isa(GemvIsa isa);
// Whether this build on this CPU can run `isa` (kAuto and kScalar: always).
bool gemv_isa_supported(GemvIsa isa);
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
