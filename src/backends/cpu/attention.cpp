// CPU kernels for Rope and Attention: validation and shape capture at create time, the compute in
// kernels/cpu/rope.cpp and kernels/cpu/attention.cpp.
#include <memory>
#include <string>

#include "backends/cpu/cpu_backend.h"
#include "cpu/attention.h"
#include "cpu/rope.h"
#include "vlart/error.h"

namespace vlart {
namespace {

bool has_input(const Node& n, size_t i) { return i < n.inputs.size() && n.inputs[i] != kNoValue; }

[[noreturn]] void fail(const Node& n, const std::string& msg) {
  throw InvalidArgument(detail::concat("node '", n.name, "' (", op_name(n.op), ") on cpu: ", msg));
}

// Shapes are fixed when the kernel is built; a run with other shapes is a caller bug.
void check_shape(const Tensor* t, const Shape& want, const char* what) {
  VLART_CHECK(t != nullptr, InvalidArgument, what, " is missing");
  VLART_CHECK(t->shape() == want, InvalidArgument, what, ": expected shape ", want.str(), ", got ", t->shape().str());
}

// ---------------- Rope ----------------

bool rope_supports(const Graph& g, const Node& n) {
  if (n.inputs.size() != 2 || !has_input(n, 0) || !has_input(n, 1)) return false;
  const Value& x = g.value(n.inputs[0]);
  const Value& pos = g.value(n.inputs[1]);
  return is_f32_or_bf16(x.dtype) && (pos.dtype == DType::kI32 || pos.dtype == DType::kI64) && x.shape.rank() == 4 &&
         x.shape[3] % 2 == 0;
}

class RopeKernel final : public OpKernel {
 public:
  RopeKernel(const kernels::RopeParams& p, int threads, Shape x_shape, Shape pos_shape)
      : rope_(p, threads), x_shape_(x_shape), pos_shape_(pos_shape) {}
  size_t scratch_bytes() const override { return rope_.scratch_bytes(); }
  void run(const KernelArgs& a) override {
    check_shape(a.inputs[0], x_shape_, "rope x");
    check_shape(a.inputs[1], pos_shape_, "rope positions");
    rope_.run(a.inputs[0]->raw(), a.inputs[1]->raw(), a.output->raw(), a.scratch);
  }

 private:
  kernels::Rope rope_;
  Shape x_shape_, pos_shape_;
};

std::unique_ptr<OpKernel> rope_create(const Graph& g, const Node& n, CpuContext& ctx) {
  if (!rope_supports(g, n)) fail(n, "needs x f32/bf16 [B, L, H, D] with even D and i32/i64 positions");
  const Value& x = g.value(n.inputs[0]);
  const Value& pos = g.value(n.inputs[1]);
  if (pos.shape != Shape{x.shape[0], x.shape[1]})
    fail(n, "positions must be [B, L] = [" + std::to_string(x.shape[0]) + ", " + std::to_string(x.shape[1]) +
                "], got " + pos.shape.str());
  if (!(n.attrs.theta > 0.f)) fail(n, "theta must be > 0, got " + std::to_string(n.attrs.theta));
  kernels::RopeParams p;
  p.B = x.shape[0];
  p.L = x.shape[1];
  p.H = x.shape[2];
  p.D = x.shape[3];
  p.theta = n.attrs.theta;
  p.bf16 = x.dtype == DType::kBF16;
  p.pos_i64 = pos.dtype == DType::kI64;
  return std::make_unique<RopeKernel>(p, ctx.threads, x.shape, pos.shape);
}

// ---------------- Attention ----------------

bool mask_dtype_ok(DType d) {
  return d == DType::kBool || d == DType::kU8 || d == DType::kF32 || d == DType::kBF16;
}

bool attention_supports(const Graph& g, const Node& n) {
  if (n.inputs.size() < 3 || n.inputs.size() > 5) return false;
  for (size_t i = 0; i < 3; ++i)
    if (!has_input(n, i)) return false;
  const DType dt = g.value(n.inputs[0]).dtype;
  if (!is_f32_or_bf16(dt) || g.value(n.inputs[1]).dtype != dt || g.value(n.inputs[2]).dtype != dt) return false;
  if (has_input(n, 4) && g.value(n.inputs[4]).dtype != DType::kI32) return false;
  return !has_input(n, 3) || mask_dtype_ok(g.value(n.inputs[3]).dtype);
}

class AttentionKernel final : public OpKernel {
 public:
  AttentionKernel(const kernels::AttentionParams& p, int threads, const Shape (&shapes)[5], bool has_kv_len,
                  std::string node)
      : attn_(p, threads),
        has_mask_(p.mask != kernels::AttnMask::kNone),
        has_kv_len_(has_kv_len),
        lk_(p.Lk),
        node_(std::move(node)) {
    for (int i = 0; i < 5; ++i) shapes_[i] = shapes[i];
  }
  size_t scratch_bytes() const override { return attn_.scratch_bytes(); }
  void run(const KernelArgs& a) override {
    static const char* const names[5] = {"attention q", "attention k", "attention v", "attention mask",
                                         "attention kv_len"};
    for (int i = 0; i < 5; ++i)
      if (i < 3 || (i == 3 && has_mask_) || (i == 4 && has_kv_len_))
        check_shape(i < a.num_inputs ? a.inputs[i] : nullptr, shapes_[i], names[i]);
    const int32_t* kv_len = nullptr;
    if (has_kv_len_) {
      kv_len = static_cast<const int32_t*>(a.inputs[4]->raw());
      for (int64_t b = 0; b < shapes_[4][0]; ++b)
        VLART_CHECK(kv_len[b] >= 0 && kv_len[b] <= lk_, InvalidArgument, "node '", node_, "' (Attention): kv_len[",
                    b, "] = ", kv_len[b], " is outside [0, ", lk_, "] (the key length)");
    }
    attn_.run(a.inputs[0]->raw(), a.inputs[1]->raw(), a.inputs[2]->raw(), has_mask_ ? a.inputs[3]->raw() : nullptr,
              a.output->raw(), a.scratch, kv_len);
  }

 private:
  kernels::FlashAttention attn_;
  bool has_mask_, has_kv_len_;
  int64_t lk_;
  std::string node_;
  Shape shapes_[5];
};

std::unique_ptr<OpKernel> attention_create(const Graph& g, const Node& n, CpuContext& ctx) {
  if (!attention_supports(g, n))
    fail(n, "needs q, k, v of one dtype (f32 or bf16), an optional bool/u8/f32/bf16 mask and an optional i32 kv_len");
  const Shape& q = g.value(n.inputs[0]).shape;
  const Shape& k = g.value(n.inputs[1]).shape;
  const Shape& v = g.value(n.inputs[2]).shape;
  if (q.rank() != 4 || k.rank() != 4 || v.rank() != 4)
    fail(n, "q, k, v must be [B, L, H, D]; got " + q.str() + ", " + k.str() + ", " + v.str());
  if (k[0] != q[0] || v[0] != q[0] || k[3] != q[3] || v[1] != k[1] || v[2] != k[2] || k[2] <= 0 || q[2] % k[2] != 0)
    fail(n, "inconsistent shapes q " + q.str() + ", k " + k.str() + ", v " + v.str() +
                " (need same B, k/q head dim, k/v [Lk, Hkv], Hq a multiple of Hkv)");
  kernels::AttentionParams p;
  p.B = q[0];
  p.Lq = q[1];
  p.Hq = q[2];
  p.D = q[3];
  p.Lk = k[1];
  p.Hkv = k[2];
  p.Dv = v[3];
  p.scale = n.attrs.scale;
  p.causal = n.attrs.causal;
  p.bf16 = g.value(n.inputs[0]).dtype == DType::kBF16;
  p.int16 = n.attrs.attn_precision != AttnPrecision::kF32;
  p.qk_int8 = n.attrs.attn_precision == AttnPrecision::kInt8;
  p.pv_int8 = n.attrs.attn_precision == AttnPrecision::kInt8;
  Shape shapes[5] = {q, k, v, Shape{}, Shape{}};
  if (has_input(n, 4)) {
    const Value& kl = g.value(n.inputs[4]);
    if (kl.shape != Shape{q[0]}) fail(n, "kv_len must be i32 [B] = [" + std::to_string(q[0]) + "], got " + kl.shape.str());
    shapes[4] = kl.shape;
  }
  if (has_input(n, 3)) {
    const Value& m = g.value(n.inputs[3]);
    if (m.shape.rank() != 3 || (m.shape[0] != q[0] && m.shape[0] != 1) || m.shape[1] != q[1] || m.shape[2] != k[1])
      fail(n, "mask must be [B|1, Lq, Lk] = [" + std::to_string(q[0]) + ", " + std::to_string(q[1]) + ", " +
                  std::to_string(k[1]) + "], got " + m.shape.str());
    p.mask = m.dtype == DType::kF32    ? kernels::AttnMask::kF32
             : m.dtype == DType::kBF16 ? kernels::AttnMask::kBF16
                                       : kernels::AttnMask::kBool;
    p.mask_broadcast = m.shape[0] == 1 && q[0] != 1;
    shapes[3] = m.shape;
  }
  return std::make_unique<AttentionKernel>(p, ctx.threads, shapes, has_input(n, 4), n.name);
}

}  // namespace

void register_cpu_attention(CpuKernelTable& t) {
  set_entry(t, OpKind::kRope, rope_supports, rope_create);
  set_entry(t, OpKind::kAttention, attention_supports, attention_create);
}

}  // namespace vlart
