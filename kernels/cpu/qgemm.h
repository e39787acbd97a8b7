// Quantized-weight matrix products on the CPU: y[m, n] = act(sum_k x[m, k] * w[n, k] + bias[n])
// with w stored as int8 (one scale per output row) or int4 (one scale and one offset per group of
// `group` consecutive k), dequantized on the fly in registers. Activations stay f32 (bf16 inputs
// are widened), accumulation is f32, so the only error against an f32 product with the
// dequantized weights is f32 rounding.
//
// One packed layout serves every M and every ISA: column panels of 16 output features, each
// contiguous over K (the f32 GEMV's layout, see gemv.h), so one sequential stream per panel:
//   int8:  int8  [P][k][16]                      + scale f32 [P][16]
//   int4:  uint8 [P][k/2][16]  (byte = two k: low nibble even k, high nibble odd k)
//          + scale f32 [P][G][16] + offset f32 [P][G][16],  w = scale * nibble + offset
// with P = ceil(n/16), G = ceil(k/group); padding columns have zero weights and scales.
// Rows of x are processed in blocks of 16: a block is transposed into the workspace ([k][rows]),
// then every thread streams its share of the panels once per block. At M <= 16 that is a
// memory-bound GEMV reading 1 (int8) or 0.5 (int4) bytes per weight; at large M the block's
// activations stay in L2 while the panels (4-8x smaller than f32) are re-read from cache.
//
// Three code paths over the same layout: AVX-512 (int8 -> f32 via vpmovsxbd/vcvtdq2ps, nibbles
// unpacked with vpand/vpsrld), AVX2+FMA (the same with a panel as two ymm, rows in chunks of 6/4)
// and portable scalar C++; gemv_force_isa() (gemv.h) or the ISA cap (cpu/isa.h) pins a lower one.
//
// W8A8 helpers: dynamic per-row int8 quantization of activations and the row-scale epilogue for
// an int8 x int8 -> f32 product (the product itself runs in oneDNN, backends/cpu).
#pragma once

#include <cstddef>
#include <cstdint>

#include "cpu/gemv.h"

namespace vlart {

enum class QWeightKind : uint8_t { kInt8 = 0, kInt4 };

constexpr int kQPanel = 16;

struct QPackedLayout {
  QWeightKind kind = QWeightKind::kInt8;
  int64_t n = 0, k = 0;
  int64_t group = 0;    // int4: values per (scale, offset) along k (even); int8: k
  int64_t panels = 0;   // ceil(n / 16)
  int64_t groups = 0;   // int4: ceil(k / group); int8: 1
  bool in_scaled = false;  // activation-aware: x[:, c] is divided by in_scale[c] before the product
  size_t scale_offset = 0, offset_offset = 0, in_scale_offset = 0, total_bytes = 0;  // byte offsets
};

// Layout for an [n, k] weight. int4 needs k and group even (InvalidArgument otherwise).
// `in_scaled`: the weight carries per-input-channel scales (activation-aware quantization, AWQ
// style): the stored values quantize w[r, c] * in_scale[c], and the kernel divides x[:, c] by
// in_scale[c] while transposing it (free), so the product is still x w^T.
QPackedLayout qgemm_layout(QWeightKind kind, int64_t n, int64_t k, int64_t group = 0, bool in_scaled = false);

// q: [n, k] int8 row-major; scales: [n]; w[r, c] = scales[r] * q[r, c] / in_scale[c] (in_scale:
// [k] when L.in_scaled, else nullptr). dst: L.total_bytes, 64-byte aligned.
void qgemm_pack_int8(const QPackedLayout& L, const int8_t* q, const float* scales, void* dst,
                     const float* in_scale = nullptr);
// q: [n, k/2] bytes (element 2i in the low nibble of byte i, unsigned 0..15); scales, offsets:
// [n, G]; w[r, c] = (scales[r, c / group] * nibble + offsets[r, c / group]) / in_scale[c].
void qgemm_pack_int4(const QPackedLayout& L, const uint8_t* q, const float* scales, const float* offsets,
                     void* dst, const float* in_scale = nullptr);
// Dequantizes packed weights back to f32 [n, k] (tests, debugging).
void qgemm_unpack(const QPackedLayout& L, const void* packed, float* w);

struct QGemmProblem {
  int64_t m = 0;
  const void* x = nullptr;  // [m, k], row stride ldx elements
  int64_t ldx = 0;
  bool x_bf16 = false;
  const void* bias = nullptr;  // [n] or nullptr
  bool bias_bf16 = false;
  GemvAct act = GemvAct::kNone;
  void* y = nullptr;  // [m, n], row stride ldy elements
  int64_t ldy = 0;
  bool y_bf16 = false;
  float* work = nullptr;  // qgemm_work_floats(L, m) floats, 64-byte aligned
  int threads = 1;
};

int64_t qgemm_work_floats(const QPackedLayout& L, int64_t m);
// Computes the problem. No allocation; arguments are validated by the caller.
void qgemm(const QPackedLayout& L, const void* packed, const QGemmProblem& p);
// The path qgemm() takes now ("avx512", "neon" or "scalar"; follows gemv_force_isa()).
const char* qgemm_path_name();

// Symmetric per-row int8 quantization: scale[r] = max|x[r, :]| / 127, q = round(x / scale) in
// [-127, 127] (an all-zero row gets scale 0 and q = 0; a row with a NaN, or an inf under a per-token
// scale, gets q = 0 and a NaN scale). With static_scale > 0 (a calibrated range)
// every row uses that scale instead (values beyond 127 steps saturate). With u8_offset the bytes
// stored are q + 128 read as uint8 (in [1, 255], 128 for zero): the u8 operand of a u8 x s8 VNNI
// product, whose sum exceeds the s8 x s8 one by 128 * (sum of the weight column).
void quantize_rows_s8(const void* x, bool x_bf16, int64_t m, int64_t k, int64_t ldx, int8_t* q, float* scales,
                      int threads, float static_scale = 0.f, bool u8_offset = false);
// y[r, c] = act(acc[r, c] * row_scale[r] + bias[c]); acc may alias y when y is f32 with ldy == ldacc.
void qgemm_row_scale_epilogue(const float* acc, int64_t ldacc, const float* row_scale, int64_t m, int64_t n,
                              const void* bias, bool bias_bf16, GemvAct act, void* y, int64_t ldy, bool y_bf16,
                              int threads);

}  // namespace vlart
