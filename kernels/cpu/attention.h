// Scaled-dot-product attention on the CPU, flash style: key tiles with an online softmax, never an
// Lq x Lk score matrix. Semantics are those of OpKind::kAttention (src/core/op.h).
#pragma once

#include <cstddef>
#include <cstdint>

#include "cpu/attention_tile.h"

namespace vlart::kernels {

enum class AttnMask : uint8_t { kNone, kBool, kF32, kBF16 };  // kBool covers bool and u8 (1 byte, !=0 = attend)

struct AttentionParams {
  int64_t B = 1, Lq = 1, Lk = 1, Hq = 1, Hkv = 1, D = 1, Dv = 1;
  float scale = 0.f;  // 0 = 1/sqrt(D)
  bool causal = false;
  bool bf16 = false;  // q, k, v and out are bf16 (else f32)
  AttnMask mask = AttnMask::kNone;
  bool mask_broadcast = false;  // mask batch dim is 1
  // Reduced-precision products (opt-in): q and k quantized to int16 per query row and per key,
  // the softmax weights and v to int16 (v per value column of a kv head), multiplied with vpdpwssd
  // into exact int32 sums; softmax statistics and the output accumulator stay f32. Twice the f32
  // FMA rate; element-wise errors ~1e-4 relative (see attention_tile.h for the ranges). Taken only
  // where the CPU has AVX512_VNNI and D and Dv are multiples of 16 (else the f32 tiles run; see
  // FlashAttention::int16()). A key excluded by the causal limit but paired with an included one
  // contributes 0 * v: finite v adds nothing, a non-finite v there would propagate.
  bool int16 = false;
  // With int16: q.k with int8 operands instead (vpdpbusd, per query row / key scales, ~0.4% of
  // the row maximum per element). Ignored without int16.
  bool qk_int8 = false;
  // With int16: p.v with int8 operands too (u8 weights in 255 steps, s8 values per column).
  bool pv_int8 = false;
};

// Whether the reduced-precision (int16 / int8 product) tiles can run on this CPU under the ISA cap
// (cpu/isa.h). Where they cannot, AttentionParams::int16 falls back to the f32 tiles, exactly.
bool attention_reduced_precision_available();
// The f32 tile kernels FlashAttention picks now: "avx512", "avx2" or "generic".
const char* attention_f32_path_name();

class FlashAttention {
 public:
  // Picks the AVX-512 tile kernels when the CPU has them unless `force_generic`.
  FlashAttention(const AttentionParams& p, int threads, bool force_generic = false);
  // Per-thread scratch (transposed query block, one score tile, accumulator, row stats, bf16 K/V
  // converted to f32: one tile, or all keys of one kv head when Lk * (D + Dv) <= 2^20; with int16
  // tiles the quantized queries and weights and one kv head's quantized K and V) times the thread
  // count.
  size_t scratch_bytes() const { return per_thread_floats_ * sizeof(float) * static_cast<size_t>(threads_); }
  // Does not allocate. `scratch` must hold scratch_bytes() bytes, 64-byte aligned. `kv_len`
  // (optional, [B], each in [0, Lk], checked by the caller): batch b has only its first kv_len[b]
  // keys, and the causal limit counts from there (OpKind::kAttention).
  void run(const void* q, const void* k, const void* v, const void* mask, void* out, void* scratch,
           const int32_t* kv_len = nullptr) const;
  const char* isa() const { return i16_ ? i16_->name : tiles_->name; }
  // Whether the int16 tiles run (requested, and available for this shape and CPU).
  bool int16() const { return i16_ != nullptr; }
  bool qk_int8() const { return qk8_; }
  bool pv_int8() const { return pv8_; }

 private:
  void run_item(int64_t item, const void* q, const void* k, const void* v, const void* mask, void* out,
                float* ws, int64_t* cached_head, const int32_t* kv_len) const;

  AttentionParams p_;
  int threads_;
  int64_t group_;      // query heads per kv head
  int64_t rows_;       // query rows per (batch, kv head) = Lq * group_
  int64_t blocks_;     // row blocks per (batch, kv head)
  size_t off_qt_, off_s_, off_acc_, off_m_, off_l_, off_alpha_, off_tmax_, off_kf_, off_vf_, per_thread_floats_;
  size_t off_q2_ = 0, off_qs_ = 0, off_p2_ = 0, off_ks_ = 0, off_vs_ = 0, off_kc_ = 0;  // int16 tiles
  bool qk8_ = false, pv8_ = false;
  bool head_cache_;     // bf16: K and V of a whole (batch, kv head) converted at once, reused across row blocks
  const AttnTileKernels* tiles_;
  const AttnI16Kernels* i16_ = nullptr;  // int16 tiles when they run
};

}  // namespace vlart::kernels
