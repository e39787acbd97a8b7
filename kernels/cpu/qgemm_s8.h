// W8A8 GEMM for x86 CPUs without AVX-512 VNNI: y[m, n] = act(row_scale[m] * w_scale[n] *
// sum_k qa[m, k] * qw[n, k] + bias[n]), qa the int8 activations (quantized here, per row or with
// one static scale, exactly as quantize_rows_s8 does), qw the int8 weights (one scale per output
// row). The sum is exact int32 arithmetic: no 16-bit saturation (oneDNN's AVX2 int8 path multiplies
// u8 x s8 through vpmaddubsw, whose pair sums saturate for full-range operands).
//
// Two dot products, chosen once per weight (S8GemmIsa) at pack time:
//  * kAvx2: both operands widened to int16 (weights at pack time, activations when quantized),
//    vpmaddwd: 16 exact MACs per instruction, int16 x int16 pair sums <= 2 * 128 * 127 < 2^31.
//    Weights [P][ceil(k/2)][16][2] int16, activations [T][ceil(k/2)][kS8MR][2] int16.
//  * kAvxVnni: AVX-VNNI vpdpbusd ymm (VEX; Intel Alder Lake and later): activations stored as
//    u8 = q + 128, s8 weights in groups of 4 k, 32 MACs per instruction; the offset adds
//    128 * colsum(W[n, :]) to every accumulator, removed by an exact int32 compensation
//    (-128 * colsum, stored with the weights). Weights [P][ceil(k/4)][16][4] s8, activations
//    [T][ceil(k/4)][kS8MR][4] u8. UNTESTED ON HARDWARE (no AVX-VNNI CPU was available): the layout
//    and compensation are tested through kAvx2VnniEmu, which runs the same code with vpdpbusd
//    replaced by an exact AVX2 emulation (test-only, slower than kAvx2).
// P = ceil(n / 16) column panels (padding columns have zero weights and scales), T = ceil(m / kS8MR)
// row tiles. The micro-kernel keeps a kS8MR x 16 int32 tile in registers over a K block (up to 768 k
// for kAvx2, 1536 for VNNI; longer k carries partial int32 sums in the scratch between blocks) and
// applies the epilogue (scales, bias, activation, f32/bf16 store) from registers after the last one.
// Rows are quantized and packed once per call into the caller's scratch; the product is split
// over column panels with OpenMP (`threads`). No allocation.
//
// The file is compiled only on x86-64 (elsewhere s8gemm_best_isa() is kNone and the other entry
// points throw).
#pragma once

#include <cstddef>
#include <cstdint>

#include "cpu/gemv.h"

namespace vlart {

enum class S8GemmIsa : uint8_t { kNone = 0, kAvx2, kAvxVnni, kAvx2VnniEmu };

// kAvxVnni where the CPU has AVX-VNNI, kAvx2 with AVX2 + FMA, else kNone.
S8GemmIsa s8gemm_best_isa();
bool s8gemm_isa_supported(S8GemmIsa isa);
const char* s8gemm_isa_name(S8GemmIsa isa);

constexpr int kS8MR = 4;   // rows per register tile
constexpr int kS8NR = 16;  // columns per panel (two ymm of int32)

struct S8GemmLayout {
  S8GemmIsa isa = S8GemmIsa::kNone;
  int64_t n = 0, k = 0;
  int64_t kgroups = 0;  // ceil(k / 2) (kAvx2) or ceil(k / 4) (VNNI layouts)
  int64_t panels = 0;   // ceil(n / 16)
  size_t scale_offset = 0, comp_offset = 0, total_bytes = 0;  // byte offsets into the packed buffer
};

// Layout of an [n, k] int8 weight for `isa` (InvalidArgument for kNone or a negative shape).
S8GemmLayout s8gemm_layout(S8GemmIsa isa, int64_t n, int64_t k);
// q: [n, k] int8 row-major (any value, -128 included); scales: [n]. dst: L.total_bytes, 64-byte aligned.
void s8gemm_pack(const S8GemmLayout& L, const int8_t* q, const float* scales, void* dst);

struct S8GemmProblem {
  int64_t m = 0;
  const void* x = nullptr;  // [m, k] f32 or bf16, row stride ldx elements
  int64_t ldx = 0;
  bool x_bf16 = false;
  float static_scale = 0.f;  // > 0: every row quantized with this scale; else per row (max|x| / 127)
  // Tests: already-quantized activations ([m, k] int8 row-major, stride ldx, values in [-127, 127])
  // and their row scales, used instead of x.
  const int8_t* xq = nullptr;
  const float* xq_scales = nullptr;
  const void* bias = nullptr;  // [n] or nullptr
  bool bias_bf16 = false;
  GemvAct act = GemvAct::kNone;
  void* y = nullptr;  // [m, n], row stride ldy elements
  int64_t ldy = 0;
  bool y_bf16 = false;
  // Tests: when set, the raw int32 sums sum_k qa * qw are stored here ([m, n], stride ldy)
  // instead of the epilogue's output.
  int32_t* y_s32 = nullptr;
  int threads = 1;
};

// Scratch for s8gemm: the packed activations, the row scales, a widened bias and, for k beyond one K
// block, the partial sums (m x n int32, padded to tiles).
size_t s8gemm_scratch_bytes(const S8GemmLayout& L, int64_t m);
// Computes the problem. scratch: s8gemm_scratch_bytes(L, p.m) bytes, 64-byte aligned.
void s8gemm(const S8GemmLayout& L, const void* packed, const S8GemmProblem& p, void* scratch);

}  // namespace vlart
