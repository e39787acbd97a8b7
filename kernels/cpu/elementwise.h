// Elementwise loops over contiguous f32/bf16 buffers (math in f32), numpy-broadcast binary ops,
// and dtype casts.
#pragma once

#include <cstdint>

#include "vlart/dtype.h"
#include "vlart/tensor.h"

namespace vlart::kernels {

enum class UnaryOp : uint8_t { kGeluErf, kGeluTanh, kSilu, kRelu, kScale, kTanh, kSigmoid, kExp };
// y = op(x); kScale is x * scale + shift.
void unary(UnaryOp op, const void* x, DType t, void* y, int64_t n, float scale, float shift, int threads);

enum class GluOp : uint8_t { kSwiGLU, kGeGLU };
// y = silu(gate) * up, or gelu_tanh(gate) * up.
void glu(GluOp op, const void* gate, const void* up, DType t, void* y, int64_t n, int threads);

enum class BinaryOp : uint8_t { kAdd, kMul, kSub, kDiv };

// Broadcast of a and b onto the output, with size-1 output dims dropped and adjacent dims merged
// wherever both operands stay linear across them. Built once at kernel creation.
struct BroadcastPlan {
  enum Kind : uint8_t {
    kSame,     // identical layouts: one flat loop
    kRowB,     // a is [M, N], b is [N] repeated over rows
    kRowA,     // b is [M, N], a is [N] repeated over rows
    kGeneral,  // anything else: odometer over outer dims, inner dim stride 0 or 1 per operand
  };
  Kind kind = kSame;
  int rank = 0;                    // collapsed rank (>= 1)
  int64_t shape[kMaxDims] = {};    // collapsed output shape
  int64_t sa[kMaxDims] = {};       // element strides of a / b in the collapsed output space (0 =
  int64_t sb[kMaxDims] = {};       // broadcast)
  int64_t numel = 0;
};
BroadcastPlan make_broadcast_plan(const Shape& a, const Shape& b);
void binary(BinaryOp op, const BroadcastPlan& p, const void* a, const void* b, DType t, void* y,
            int threads);

// Over the last dim of x viewed as [rows, n] (f32/bf16): the index of the largest value (first on
// ties, NaN largest), or the mean (f32 accumulation, written in x's dtype).
void argmax_rows(const void* x, DType t, int64_t rows, int64_t n, int32_t* out, int threads);
void mean_rows(const void* x, DType t, int64_t rows, int64_t n, void* out, int threads);

// Casts between f32/bf16/f16, and i32/i64 -> f32/bf16/f16.
bool cast_supported(DType from, DType to);
void cast(const void* x, DType from, void* y, DType to, int64_t n, int threads);

}  // namespace vlart::kernels
