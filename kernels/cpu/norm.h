// Row-wise normalisation loops (LayerNorm, RMSNorm, Softmax) over contiguous [rows, D] buffers.
// Element types: f32 or bf16 for x/y; norm weights and bias may each be f32 or bf16. Math in f32.
#pragma once

#include <cstdint>

#include "vlart/dtype.h"

namespace vlart::kernels {

// y = (x - mean) / sqrt(var + eps) * w + b   (b may be nullptr).
void layer_norm(const void* x, DType xt, const void* w, DType wt, const void* b, DType bt, void* y,
                int64_t rows, int64_t D, float eps, int threads);

// y = x * rsqrt(mean(x^2) + eps) * w, or * (1 + w) when plus_one (Gemma).
void rms_norm(const void* x, DType xt, const void* w, DType wt, void* y, int64_t rows, int64_t D,
              float eps, bool plus_one, int threads);

// Softmax over the last dim. Rows that are entirely -inf give zeros. For bf16 output `scratch`
// must hold threads * N floats (see softmax_scratch_bytes); f32 needs none.
size_t softmax_scratch_bytes(DType t, int64_t N, int threads);
void softmax(const void* x, DType t, void* y, int64_t rows, int64_t N, void* scratch, int threads);

}  // namespace vlart::kernels
