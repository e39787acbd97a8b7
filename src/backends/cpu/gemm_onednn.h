// Helpers shared by the oneDNN-backed kernels of the GEMM family (Linear, MatMul, Conv2d).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <unordered_map>

#include <dnnl.hpp>

#include "backends/cpu/cpu_backend.h"
#include "core/graph.h"

namespace vlart {

// Kernel factories (gemm_linear.cpp, gemm_matmul.cpp, gemm_conv.cpp).
std::unique_ptr<OpKernel> create_cpu_linear(const Graph& g, const Node& n, CpuContext& ctx);
std::unique_ptr<OpKernel> create_cpu_matmul(const Graph& g, const Node& n, CpuContext& ctx);
std::unique_ptr<OpKernel> create_cpu_conv2d(const Graph& g, const Node& n, CpuContext& ctx);

// Whether the CPU Linear kernels can run this quantized weight (int8 any k; int4 even k and group).
bool quantized_linear_supported(const QuantWeight& q);

// Whether W8A8 Linear layers (M > 16) compute with int8 activations here: in oneDNN where its
// effective ISA has int8 dot products without intermediate saturation (AVX-512 VNNI, AVX2 VNNI, AMX;
// below that oneDNN multiplies through vpmaddubsw, whose 16-bit pair sums saturate for full-range
// int8 weights: measured 18% relative error), else in vlart's exact int8 GEMM on any AVX2 CPU
// (kernels/cpu/qgemm_s8.h). Only where neither exists do W8A8 weights run as int8 weight-only.
bool w8a8_int8_compute_available();
// What W8A8 Linear layers with M > 16 run here (vlart info).
std::string w8a8_path_name();

// Linear rows up to this count run on the hand-written GEMV (kernels/cpu/gemv.h); more go to oneDNN.
constexpr int64_t kLinearGemvMaxRows = 16;

dnnl::memory::data_type to_dnnl(DType d);

// Whether oneDNN creates bf16 matmul/convolution primitives on this CPU (oneDNN 2.6 needs AVX-512;
// ONEDNN_MAX_CPU_ISA can cap it lower). Probed once with a tiny matmul.
bool onednn_bf16_supported();

// The dtype a bf16/f32 graph tensor is computed in by oneDNN here: bf16 stays bf16 where oneDNN
// supports it; elsewhere bf16 tensors are widened to f32 around an f32 primitive (BF16Bridge).
inline DType onednn_compute_dtype(DType d) {
  return d == DType::kBF16 && !onednn_bf16_supported() ? DType::kF32 : d;
}

// bf16 activations through an f32 primitive (CPUs without bf16 in oneDNN): inputs are widened into
// the kernel's scratch before the call and the f32 result is rounded (nearest even) into the bf16
// output after it. The products are the same as bf16 x bf16 -> f32 accumulation (bf16 products are
// exact in f32); the conversions are O(inputs + outputs) against the primitive's O(m n k).
struct BF16Bridge {
  // Reserves `elems` f32 elements at the end of a scratch layout of `*bytes` bytes (64-aligned);
  // returns the byte offset.
  static size_t reserve(size_t* bytes, int64_t elems);
  static void widen(const void* bf16, int64_t n, float* dst, int threads);
  static void narrow(const float* src, int64_t n, void* bf16, int threads);
};

// Attributes used by every primitive here: user-managed scratchpad (the executor's arena), plus an
// optional fused activation.
dnnl::primitive_attr make_dnnl_attr(Activation act);

// "node 'name' (Op)" for error messages.
std::string node_label(const Node& n);

inline size_t align_up(size_t v, size_t a) { return (v + a - 1) / a * a; }

// `w` (a weight constant in its user layout `user_md`) in the layout `packed_md` the primitive
// chose (dtype conversion included): reordered once per backend, then shared by every kernel that
// asks for the same weight in the same layout (ctx.packed). Read-only for the kernels.
dnnl::memory reorder_weights(const Tensor& w, const dnnl::memory::desc& user_md,
                             const dnnl::memory::desc& packed_md, CpuContext& ctx);

// One prepared primitive: its argument map is built at create time; run() only rebinds the
// handles of the memories that change (see the kernels) and executes.
struct DnnlCall {
  dnnl::primitive prim;
  std::unordered_map<int, dnnl::memory> args;
  dnnl::memory scratchpad;  // bound to KernelArgs::scratch in execute()
  size_t scratchpad_bytes = 0;
  dnnl::stream stream;

  // Queries the scratchpad size from `pd` and creates the scratchpad memory (no buffer yet).
  void init_scratchpad(const dnnl::primitive_desc& pd, const dnnl::engine& eng);
  // Binds the scratchpad to `scratch` (scratchpad_bytes there) and executes. No allocation of
  // ours; oneDNN's per-call argument map is counted as exempt.
  void execute(void* scratch);
};

// The bias of Linear/Conv2d as oneDNN wants it (f32 [N]): a weight constant is converted once
// into an owned buffer; a runtime f32 bias is bound directly; a runtime bf16 bias is widened into
// the kernel's scratch at each run.
struct BiasBinding {
  bool present = false;
  bool runtime = false;
  bool runtime_bf16 = false;
  int64_t n = 0;
  dnnl::memory mem;  // f32 [n] (or [1, n]); owned when constant

  // `dims` is how the primitive describes the bias ({N} for conv, {1, N} for matmul).
  void init(const Graph& g, const Node& n, int input_index, const dnnl::memory::dims& dims,
            CpuContext& ctx);
  dnnl::memory::desc desc() const { return mem.get_desc(); }
  size_t scratch_bytes() const { return runtime_bf16 ? static_cast<size_t>(n) * 4 : 0; }
  // Rebinds for one run: `in` is the node's bias input, `scratch` scratch_bytes() bytes.
  void bind(const Tensor* in, void* scratch);
};

}  // namespace vlart
