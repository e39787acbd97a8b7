// Operator set of the graph IR and their attributes.
//
// Each op has one front end (shape/dtype inference and validation, op_infer.cpp) and one body per
// backend. Semantics, shared by every backend (all tensors handed to a kernel are contiguous):
//
//   Linear(x[...,K], W[N,K], bias[N]?)       y = act(x W^T + b); W in PyTorch [out,in] layout.
//   MatMul(a[...,M,K], b[...,K,N])            batched, batch dims broadcast; attrs.transpose_b means
//                                             b is [...,N,K].
//   Conv2d(x[B,C,H,W], w[O,C,kh,kw], b[O]?)   attrs.stride, attrs.pad (symmetric), NCHW.
//   LayerNorm(x[...,D], w[D]?, b[D]?)         attrs.eps; no weight = scale 1, no bias = shift 0.
//   RMSNorm(x[...,D], w[D])                   y = x*rsqrt(mean(x^2)+eps) * w  (f32 math), or
//                                             * (1+w) when attrs.gemma_plus_one.
//   Rope(x[B,L,H,D], pos[B,L] i32|i64)        rotate-half; inv_freq_i = theta^(-2i/D); r = pos*inv_freq
//                                             out[:D/2] = x1 cos r - x2 sin r; out[D/2:] = x2 cos r + x1 sin r
//   Softmax(x[...,N])                         over the last dim, f32 math.
//   Attention(q[B,Lq,Hq,D], k[B,Lk,Hkv,D], v[B,Lk,Hkv,Dv], mask?, kv_len?)
//                                             out[B,Lq,Hq,Dv]; Hq % Hkv == 0, query head h uses kv head
//                                             h / (Hq/Hkv); logits scaled by attrs.scale (0 = 1/sqrt(D));
//                                             mask is bool/u8 (true = may attend) or f32/bf16 additive,
//                                             shape [B|1, Lq, Lk]; attrs.causal allows key j for query i
//                                             iff j <= i + (Lk - Lq). A query row with no allowed key
//                                             outputs zeros. Computed in key tiles with an online softmax
//                                             (no Lq x Lk score matrix).
//                                             kv_len (i32 [B], a runtime value): only keys j < kv_len[b]
//                                             exist for batch b (the filled part of a KV cache), and the
//                                             causal limit counts from it: j <= i + (kv_len[b] - Lq). A
//                                             length outside [0, Lk] is an InvalidArgument at run time.
//   KVWrite(cache[B,Lmax,...], x[B,L,...], pos[B] i32|i64)
//                                             cache[b, pos[b] + i] = x[b, i] for i < L, in place: the
//                                             output is the cache's own memory (no copy of the rest), so
//                                             the cache must be a graph input, which keeps its contents
//                                             across runs (the caller owns it: Executor::bind). pos[b] < 0
//                                             or pos[b] + L > Lmax is an InvalidArgument at run time.
//   Gelu(x)                                   erf form, or tanh form when attrs.approx_tanh.
//   Silu(x), Relu(x)
//   SwiGLU(gate, up) = silu(gate) * up;  GeGLU(gate, up) = gelu_tanh(gate) * up
//   Add(a, b), Mul(a, b), Sub(a, b), Div(a, b)  numpy broadcasting; output shape = broadcast shape
//   Tanh(x), Sigmoid(x), Exp(x)               f32 math (exp: range-reduced polynomial, ~2 ulp)
//   ArgMax(x[...,N])                          index of the largest value over the last dim, the first
//                                             one on ties; NaN counts as largest (as torch.argmax);
//                                             out[...,1] i32 (f32/bf16 input)
//   ReduceMean(x[...,N])                      mean over the last dim (f32 accumulation), out[...,1]
//   Scale(x)                                  x * attrs.scale + attrs.shift
//   Concat(xs...)                             along attrs.axis
//   Slice(x)                                  [attrs.start, attrs.end) along attrs.axis
//   Reshape(x)                                to attrs.shape (aliases its input; no kernel runs)
//   Permute(x)                                attrs.perm (materialised, contiguous output)
//   Embedding(table[V,D], ids[...] i32|i64)   out[..., D]; an id outside [0,V) is an InvalidArgument
//   PixelShuffle(x[B,N,C])                    SmolVLM/Idefics3 connector shuffle with r = attrs.factor:
//                                             N = S*S; out[B, N/r^2, C*r^2]; out token Y*(S/r)+X,
//                                             feature (j*r+k)*C+c  =  x[(r*Y+j)*S + r*X+k][c]
//   ResizeBilinear(x[B,C,H,W])                to attrs.shape = {OH, OW}; align_corners=False, no
//                                             antialias (PyTorch F.interpolate semantics)
//   Gather(x, idx[K] i32|i64)                 rows idx of x along attrs.axis: out has dim axis = K,
//                                             out[..., k, ...] = x[..., idx[k], ...]; an index outside
//                                             [0, x.shape[axis]) is an InvalidArgument at run time
//   Expand(x)                                 broadcast to attrs.shape (numpy rules: x's dims align
//                                             right, each 1 or equal to the target's), materialised
//   Cast(x)                                   to attrs.dtype
//   Copy(x)                                   to attrs.device (inserted by placement)
//
// Elementwise and norm ops accept f32 and bf16 (out dtype = in dtype, math in f32).
#pragma once

#include <array>
#include <cstdint>

#include "vlart/dtype.h"
#include "vlart/tensor.h"

namespace vlart {

enum class OpKind : uint8_t {
  kLinear = 0,
  kMatMul,
  kConv2d,
  kLayerNorm,
  kRMSNorm,
  kRope,
  kSoftmax,
  kAttention,
  kGelu,
  kSilu,
  kRelu,
  kSwiGLU,
  kGeGLU,
  kAdd,
  kMul,
  kScale,
  kConcat,
  kSlice,
  kReshape,
  kPermute,
  kEmbedding,
  kPixelShuffle,
  kResizeBilinear,
  kCast,
  kCopy,
  kSub,
  kDiv,
  kTanh,
  kSigmoid,
  kExp,
  kArgMax,
  kReduceMean,
  kKVWrite,
  kGather,
  kExpand,
  kCount
};

const char* op_name(OpKind op);

enum class Activation : uint8_t { kNone = 0, kRelu, kGeluErf, kGeluTanh, kSilu };

// Attention products: f32; int16 (q.k and p.v with int16-quantized operands, exact int32 sums,
// ~1e-4 relative error); int8 (q.k and p.v with int8 operands, ~1-2% relative error per output).
// Backends without such kernels compute in f32 (CPU: AVX512_VNNI, see kernels/cpu/attention.h).
enum class AttnPrecision : uint8_t { kF32 = 0, kInt16, kInt8 };

// One flat attribute record shared by all ops: no string maps on the hot path.
struct OpAttrs {
  Activation act = Activation::kNone;  // Linear post-op
  bool approx_tanh = false;            // Gelu
  bool gemma_plus_one = false;         // RMSNorm
  bool causal = false;                 // Attention
  AttnPrecision attn_precision = AttnPrecision::kF32;  // Attention products (see AttnPrecision)
  bool transpose_b = false;            // MatMul
  float eps = 1e-5f;                   // norms
  float scale = 1.f;                   // Scale, Attention (0 = 1/sqrt(D))
  float shift = 0.f;                   // Scale
  float theta = 10000.f;               // Rope
  int axis = 0;                        // Concat, Slice, Gather
  int64_t start = 0, end = 0;          // Slice
  int stride[2] = {1, 1};              // Conv2d
  int pad[2] = {0, 0};                 // Conv2d
  int factor = 1;                      // PixelShuffle
  Shape shape;                         // Reshape / Expand target, ResizeBilinear {OH, OW}
  std::array<int, kMaxDims> perm{};    // Permute
  DType dtype = DType::kF32;           // Cast target
  Device device;                       // Copy target
};

}  // namespace vlart
