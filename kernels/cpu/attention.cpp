#include "cpu/attention.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "cpu/isa.h"
#include "vlart/dtype.h"

namespace vlart::kernels {
namespace {

constexpr int QB = kRowBlock;
constexpr int KT = kKeyTile;

constexpr int64_t kHeadCacheFloats = int64_t{1} << 20;  // 4 MiB per thread for converted K and V

constexpr float kLog2e = 1.44269504088896341f;

// An additive mask value in the base-2 units of the scores. Finite values that would overflow (the
// "finfo.min" masks of HF models, -3.4e38 * log2 e) stay finite at -FLT_MAX: a row whose keys are all
// masked that way keeps the reference behaviour (equal scores, uniform weights) instead of turning
// into a -inf row (zeros).
inline float to_log2(float a) {
  const float v = a * kLog2e;
  return std::isinf(v) && !std::isinf(a) ? std::copysign(std::numeric_limits<float>::max(), a) : v;
}

enum : uint8_t { kAllAllowed, kSomeMasked, kAllMasked };

// Whether a bool/u8 mask row segment allows all, some or none of its n keys; 8 bytes per step.
inline uint8_t classify_bool_row(const uint8_t* m, int n) {
  constexpr uint64_t kLow = 0x0101010101010101ull, kHigh = 0x8080808080808080ull;
  bool any_allowed = false, any_masked = false;
  int j = 0;
  for (; j + 8 <= n; j += 8) {
    uint64_t w;
    std::memcpy(&w, m + j, 8);
    any_allowed |= w != 0;
    any_masked |= ((w - kLow) & ~w & kHigh) != 0;  // some byte is zero
  }
  for (; j < n; ++j) {
    any_allowed |= m[j] != 0;
    any_masked |= m[j] == 0;
  }
  return !any_masked ? kAllAllowed : any_allowed ? kSomeMasked : kAllMasked;
}

// s[j * kRowBlock] = -inf where m[j] == 0, skipping 8-byte runs without a zero.
inline void mask_bool_row(const uint8_t* m, int n, float* s) {
  constexpr uint64_t kLow = 0x0101010101010101ull, kHigh = 0x8080808080808080ull;
  const float ninf = -std::numeric_limits<float>::infinity();
  int j = 0;
  for (; j + 8 <= n; j += 8) {
    uint64_t w;
    std::memcpy(&w, m + j, 8);
    if (((w - kLow) & ~w & kHigh) == 0) continue;
    for (int t = j; t < j + 8; ++t)
      if (!m[t]) s[t * QB] = ninf;
  }
  for (; j < n; ++j)
    if (!m[j]) s[j * QB] = ninf;
}

size_t round16(size_t n) { return (n + 15) / 16 * 16; }  // keeps every region 64-byte aligned

}  // namespace

bool attention_reduced_precision_available() {
  return cpu_isa_max() >= CpuIsa::kAvx512 && cpu_has_avx512_vnni() && attn_i16_kernels_avx512vnni() != nullptr;
}

const char* attention_f32_path_name() {
  const CpuIsa isa = cpu_isa_max();
  const AttnTileKernels* fast = isa >= CpuIsa::kAvx512 ? attn_tile_kernels_avx512() : nullptr;
  if (!fast && isa >= CpuIsa::kAvx2) fast = attn_tile_kernels_avx2();
  if (!fast && cpu_isa_cap_value() != CpuIsa::kPortable) fast = attn_tile_kernels_neon();
  return (fast ? fast : &attn_tile_kernels_generic())->name;
}

FlashAttention::FlashAttention(const AttentionParams& p, int threads, bool force_generic)
    : p_(p), threads_(threads > 0 ? threads : 1) {
  if (p_.scale == 0.f) p_.scale = 1.f / std::sqrt(static_cast<float>(p_.D));
  group_ = p_.Hq / p_.Hkv;
  rows_ = p_.Lq * group_;
  blocks_ = (rows_ + QB - 1) / QB;
  size_t o = 0;
  auto take = [&o](size_t n) {
    const size_t at = o;
    o += round16(n);
    return at;
  };
  off_qt_ = take(static_cast<size_t>(p_.D) * QB);
  off_s_ = take(static_cast<size_t>(KT) * QB);
  off_acc_ = take(static_cast<size_t>(QB) * p_.Dv);
  off_m_ = take(QB);
  off_l_ = take(QB);
  off_alpha_ = take(QB);
  off_tmax_ = take(QB);
  const CpuIsa isa = force_generic ? CpuIsa::kPortable : cpu_isa_max();
  const AttnI16Kernels* i16 =
      p_.int16 && !force_generic && attention_reduced_precision_available() ? attn_i16_kernels_avx512vnni() : nullptr;
  // int16 tiles keep one kv head's quantized K and V (pairs interleaved) and their scales per thread.
  const int64_t i16_cache_floats = (p_.Lk * p_.D + 1) / 2 + p_.Lk + (p_.Lk + 1) / 2 * p_.Dv + p_.Dv;
  if (i16 && p_.D % 16 == 0 && p_.Dv % 16 == 0 && i16_cache_floats <= kHeadCacheFloats) {
    i16_ = i16;
    head_cache_ = false;
    off_q2_ = take(static_cast<size_t>(p_.D) * QB / 2);
    off_qs_ = take(QB);
    off_p2_ = take(static_cast<size_t>(KT) * QB / 2);
    off_kf_ = take(static_cast<size_t>(p_.Lk * p_.D + 1) / 2);
    off_ks_ = take(static_cast<size_t>(p_.Lk));
    off_vf_ = take(static_cast<size_t>((p_.Lk + 1) / 2 * p_.Dv));
    off_vs_ = take(static_cast<size_t>(p_.Dv));
    qk8_ = p_.qk_int8;
    pv8_ = p_.pv_int8;
    off_kc_ = take(qk8_ ? static_cast<size_t>(p_.Lk) : 0);
  } else {
    // bf16 K and V are converted to f32 once per (batch, kv head) and thread when all of them fit the
    // cap, else tile by tile (each row block converting its tiles again).
    head_cache_ = p_.bf16 && p_.Lk * (p_.D + p_.Dv) <= kHeadCacheFloats;
    const size_t kv_rows = head_cache_ ? static_cast<size_t>(p_.Lk) : p_.bf16 ? static_cast<size_t>(KT) : 0;
    off_kf_ = take(kv_rows * p_.D);
    off_vf_ = take(kv_rows * p_.Dv);
  }
  per_thread_floats_ = o;
  const AttnTileKernels* fast = isa >= CpuIsa::kAvx512 ? attn_tile_kernels_avx512() : nullptr;
  if (!fast && isa >= CpuIsa::kAvx2) fast = attn_tile_kernels_avx2();
  // NEON (aarch64 only; nullptr elsewhere) unless generic is forced or the ladder capped to portable.
  if (!fast && !force_generic && cpu_isa_cap_value() != CpuIsa::kPortable) fast = attn_tile_kernels_neon();
  tiles_ = fast ? fast : &attn_tile_kernels_generic();
}

void FlashAttention::run(const void* q, const void* k, const void* v, const void* mask, void* out,
                         void* scratch, const int32_t* kv_len) const {
  const int64_t items = p_.B * p_.Hkv * blocks_;
  float* base = static_cast<float*>(scratch);
#pragma omp parallel num_threads(threads_)
  {
    float* ws = base + static_cast<size_t>(omp_get_thread_num()) * per_thread_floats_;
    int64_t cached_head = -1;  // (batch, kv head) whose converted K and V this thread's scratch holds
    if (p_.causal || head_cache_ || !i16_) {
      // Dynamic schedule: with causal masks the row blocks near the end see many more keys.
#pragma omp for schedule(dynamic, 1)
      for (int64_t it = 0; it < items; ++it) run_item(it, q, k, v, mask, out, ws, &cached_head, kv_len);
    } else {
      // Equal work per item: contiguous runs, so each thread quantizes the K / V of its own kv
      // heads once instead of every thread converting every head.
#pragma omp for schedule(static)
      for (int64_t it = 0; it < items; ++it) run_item(it, q, k, v, mask, out, ws, &cached_head, kv_len);
    }
  }
}

void FlashAttention::run_item(int64_t item, const void* q, const void* k, const void* v, const void* mask,
                              void* out, float* ws, int64_t* cached_head, const int32_t* kv_len) const {
  const int64_t D = p_.D, Dv = p_.Dv, Lq = p_.Lq, Lk = p_.Lk, Hq = p_.Hq, Hkv = p_.Hkv, G = group_;
  const int64_t blk = item % blocks_;
  const int64_t g = (item / blocks_) % Hkv;
  const int64_t b = item / (blocks_ * Hkv);
  // Keys that exist for this batch: all Lk, or the filled part of a KV cache (rows past it are
  // never read, whatever they hold). Memory strides stay those of Lk.
  const int64_t Lv = kv_len ? std::clamp<int64_t>(kv_len[b], 0, Lk) : Lk;
  // Row r of the block is query position i = (r0 + r) / G of query head g*G + (r0 + r) % G: the G heads
  // sharing kv head g are adjacent in q's memory and share one pass over K and V.
  const int64_t r0 = blk * QB;
  const int nr = static_cast<int>(std::min<int64_t>(QB, rows_ - r0));
  const int nvec = (nr + 15) / 16;
  const int64_t i_first = r0 / G, i_last = (r0 + nr - 1) / G;

  float* Qt = ws + off_qt_;
  float* S = ws + off_s_;
  float* acc = ws + off_acc_;
  float* m = ws + off_m_;
  float* l = ws + off_l_;
  float* alpha = ws + off_alpha_;
  float* tmax = ws + off_tmax_;
  const float ninf = -std::numeric_limits<float>::infinity();

  // Queries, pre-scaled and transposed; padding rows are zero. The scale includes log2(e): the tile
  // kernels work in base 2 (exp2 is cheaper than exp), additive masks are scaled to match.
  const float qscale = p_.scale * kLog2e;
  // Gathered d-major (each d reads one element of every row, writes one contiguous run of Qt): the
  // row-major order stored with a 256-byte stride and stalled on its own loads (4K aliasing), and
  // touching all rows at once keeps many cache misses on q in flight.
  int64_t qrow[QB];
  for (int r = 0; r < nr; ++r) {
    const int64_t i = (r0 + r) / G, h = g * G + (r0 + r) % G;
    qrow[r] = ((b * Lq + i) * Hq + h) * D;
  }
  for (int64_t d = 0; d < D; ++d) {
    float* qt = Qt + d * QB;
    if (p_.bf16) {
      const uint16_t* qb = static_cast<const uint16_t*>(q) + d;
      for (int r = 0; r < nr; ++r) qt[r] = bf16_to_f32(qb[qrow[r]]) * qscale;
    } else {
      const float* qf = static_cast<const float*>(q) + d;
      for (int r = 0; r < nr; ++r) qt[r] = qf[qrow[r]] * qscale;
    }
    for (int r = nr; r < 16 * nvec; ++r) qt[r] = 0.f;
  }
  for (int r = 0; r < 16 * nvec; ++r) {
    m[r] = ninf;
    l[r] = 0.f;
  }
  std::fill(acc, acc + static_cast<int64_t>(nr) * Dv, 0.f);

  // Causal: query i sees keys j <= i + off, so keys past i_last + off are masked for the whole block.
  const int64_t off = Lv - Lq;
  const int64_t kend = p_.causal ? std::max<int64_t>(0, std::min(Lv, i_last + off + 1)) : Lv;
  const int64_t mb = p_.mask_broadcast ? 0 : b;
  const int64_t ldk = p_.bf16 ? D : Hkv * D, ldv = p_.bf16 ? Dv : Hkv * Dv;
  float* kf = ws + off_kf_;
  float* vf = ws + off_vf_;
  auto* K16 = reinterpret_cast<int16_t*>(kf);
  auto* V16 = reinterpret_cast<int16_t*>(vf);
  auto* Q2 = reinterpret_cast<int16_t*>(ws + off_q2_);
  auto* P2 = reinterpret_cast<int16_t*>(ws + off_p2_);
  float* qs = ws + off_qs_;
  float* ks = ws + off_ks_;
  float* vs = ws + off_vs_;
  if (i16_) {
    if (qk8_)
      i16_->q_quads(Qt, static_cast<int>(D), nvec, reinterpret_cast<uint8_t*>(Q2), qs);
    else
      i16_->q_pairs(Qt, static_cast<int>(D), nvec, Q2, qs);
    if (*cached_head != b * Hkv + g) {
      const int64_t o = (b * Lk * Hkv + g);
      const void* ksrc = p_.bf16 ? static_cast<const void*>(static_cast<const uint16_t*>(k) + o * D)
                                 : static_cast<const void*>(static_cast<const float*>(k) + o * D);
      const void* vsrc = p_.bf16 ? static_cast<const void*>(static_cast<const uint16_t*>(v) + o * Dv)
                                 : static_cast<const void*>(static_cast<const float*>(v) + o * Dv);
      if (qk8_)
        i16_->k_rows8(ksrc, p_.bf16, Hkv * D, static_cast<int>(Lv), static_cast<int>(D),
                      reinterpret_cast<int8_t*>(K16), ks, reinterpret_cast<int32_t*>(ws + off_kc_));
      else
        i16_->k_rows(ksrc, p_.bf16, Hkv * D, static_cast<int>(Lv), static_cast<int>(D), K16, ks);
      if (pv8_)
        i16_->v_quads(vsrc, p_.bf16, Hkv * Dv, static_cast<int>(Lv), static_cast<int>(Dv),
                      reinterpret_cast<int8_t*>(V16), vs);
      else
        i16_->v_pairs(vsrc, p_.bf16, Hkv * Dv, static_cast<int>(Lv), static_cast<int>(Dv), V16, vs);
      *cached_head = b * Hkv + g;
    }
  }
  if (head_cache_ && *cached_head != b * Hkv + g) {
    const int64_t o = (b * Lk * Hkv + g);
    tiles_->bf16_rows(static_cast<const uint16_t*>(k) + o * D, Hkv * D, static_cast<int>(Lv), static_cast<int>(D), kf);
    tiles_->bf16_rows(static_cast<const uint16_t*>(v) + o * Dv, Hkv * Dv, static_cast<int>(Lv), static_cast<int>(Dv),
                      vf);
    *cached_head = b * Hkv + g;
  }

  uint8_t row_state[QB];  // bool mask, per row of this tile: kAllAllowed / kSomeMasked / kAllMasked
  for (int64_t j0 = 0; j0 < kend; j0 += KT) {
    const int kt = static_cast<int>(std::min<int64_t>(KT, kend - j0));
    // A bool mask is classified first, 8 bytes at a time: a tile that no row of the block may see is
    // skipped outright (exact: it would leave m, l and acc unchanged), and rows that see all of it
    // need no masking pass at all.
    bool mask_changes_scores = p_.mask != AttnMask::kNone;
    if (p_.mask == AttnMask::kBool) {
      bool any_allowed = false, any_masked = false;
      for (int r = 0; r < nr; ++r) {
        const uint8_t* mr = static_cast<const uint8_t*>(mask) + (mb * Lq + (r0 + r) / G) * Lk + j0;
        row_state[r] = classify_bool_row(mr, kt);
        any_allowed |= row_state[r] != kAllMasked;
        any_masked |= row_state[r] != kAllAllowed;
      }
      if (!any_allowed) continue;
      mask_changes_scores = any_masked;
    }
    const int64_t ko = ((b * Lk + j0) * Hkv + g) * D, vo = ((b * Lk + j0) * Hkv + g) * Dv;
    const float *K = nullptr, *V = nullptr;
    if (i16_) {
      // quantized K / V of this kv head are in the thread's cache (K16, V16)
    } else if (head_cache_) {
      K = kf + j0 * D;
      V = vf + j0 * Dv;
    } else if (p_.bf16) {
      tiles_->bf16_rows(static_cast<const uint16_t*>(k) + ko, Hkv * D, kt, static_cast<int>(D), kf);
      tiles_->bf16_rows(static_cast<const uint16_t*>(v) + vo, Hkv * Dv, kt, static_cast<int>(Dv), vf);
      K = kf;
      V = vf;
    } else {
      K = static_cast<const float*>(k) + ko;
      V = static_cast<const float*>(v) + vo;
    }
    // Causal diagonal: only tiles reaching past the first row's last allowed key need masking.
    const bool diag = p_.causal && j0 + kt - 1 > i_first + off;
    // Without masking the scores kernel also yields the row maxima, saving the softmax a pass.
    const bool fused_max = !mask_changes_scores && !diag;
    if (qk8_)
      i16_->scores8(reinterpret_cast<const uint8_t*>(Q2), qs, nvec, reinterpret_cast<const int8_t*>(K16) + j0 * D,
                    ks + j0, reinterpret_cast<const int32_t*>(ws + off_kc_) + j0, kt, static_cast<int>(D), S,
                    fused_max ? tmax : nullptr);
    else if (i16_)
      i16_->scores(Q2, qs, nvec, K16 + j0 * D, ks + j0, kt, static_cast<int>(D), S, fused_max ? tmax : nullptr);
    else
      tiles_->scores(Qt, nvec, K, ldk, kt, static_cast<int>(D), S, fused_max ? tmax : nullptr);

    if (mask_changes_scores) {
      for (int r = 0; r < nr; ++r) {
        const int64_t i = (r0 + r) / G;
        const int64_t mo = (mb * Lq + i) * Lk + j0;
        if (p_.mask == AttnMask::kBool) {
          if (row_state[r] != kAllAllowed) mask_bool_row(static_cast<const uint8_t*>(mask) + mo, kt, S + r);
        } else if (p_.mask == AttnMask::kF32) {
          const float* mr = static_cast<const float*>(mask) + mo;
          for (int j = 0; j < kt; ++j) S[j * QB + r] += to_log2(mr[j]);
        } else {
          const uint16_t* mr = static_cast<const uint16_t*>(mask) + mo;
          for (int j = 0; j < kt; ++j) S[j * QB + r] += to_log2(bf16_to_f32(mr[j]));
        }
      }
    }
    if (diag) {
      for (int r = 0; r < nr; ++r) {
        const int64_t first_masked = (r0 + r) / G + off + 1 - j0;
        for (int64_t j = std::max<int64_t>(first_masked, 0); j < kt; ++j) S[j * QB + r] = ninf;
      }
    }
    if (pv8_) {
      auto* P4 = reinterpret_cast<uint8_t*>(P2);
      i16_->softmax8(S, kt, nvec, fused_max ? tmax : nullptr, m, l, alpha, P4);
      i16_->pv8(P4, kt, nr, reinterpret_cast<const int8_t*>(V16) + j0 * Dv, vs, static_cast<int>(Dv), alpha, acc);
    } else if (i16_) {
      i16_->softmax(S, kt, nvec, fused_max ? tmax : nullptr, m, l, alpha, P2);
      i16_->pv(P2, kt, nr, V16 + j0 * Dv, vs, static_cast<int>(Dv), alpha, acc);
    } else {
      tiles_->softmax(S, kt, nvec, fused_max ? tmax : nullptr, m, l, alpha);
      tiles_->pv(S, kt, nr, V, ldv, static_cast<int>(Dv), alpha, acc);
    }
  }

  // Normalise; rows that saw no allowed key (l == 0) output zeros.
  for (int r = 0; r < nr; ++r) {
    const int64_t i = (r0 + r) / G, h = g * G + (r0 + r) % G;
    const int64_t oo = ((b * Lq + i) * Hq + h) * Dv;
    const float inv = l[r] > 0.f ? 1.f / l[r] : 0.f;
    const float* a = acc + static_cast<int64_t>(r) * Dv;
    if (p_.bf16) {
      uint16_t* o = static_cast<uint16_t*>(out) + oo;
      for (int64_t c = 0; c < Dv; ++c) o[c] = f32_to_bf16(a[c] * inv);
    } else {
      float* o = static_cast<float*>(out) + oo;
      for (int64_t c = 0; c < Dv; ++c) o[c] = a[c] * inv;
    }
  }
}

}  // namespace vlart::kernels
