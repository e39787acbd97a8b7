#include "models/blocks/decoder.h"

#include <cstring>
#include <utility>

#include "vlart/error.h"

namespace vlart::blocks {
namespace {

// [B, L] of a [B, L, D] activation.
std::pair<int64_t, int64_t> batch_len(const Graph& g, ValueId h) {
  const Shape& s = g.value(h).shape;
  VLART_CHECK(s.rank() == 3, InvalidArgument, "decoder block: activations must be [B, L, D], got ", s.str());
  return {s[0], s[1]};
}

// <prefix>self_attn.<name>.weight [out, hidden] (and its bias [out] with qkv_bias).
ValueId qkv_proj(Graph& g, ValueId h, const DecoderSpec& s, const std::string& prefix, const char* name,
                 int64_t out, const WeightFn& w) {
  const std::string p = prefix + "self_attn." + name;
  const ValueId bias = s.qkv_bias ? w(p + ".bias", {out}, false) : kNoValue;
  return g.linear(h, w(p + ".weight", {out, s.hidden}, true), bias);
}

}  // namespace

ValueId norm(Graph& g, ValueId x, const std::string& weight, const DecoderSpec& s, const WeightFn& w) {
  return g.rms_norm(x, w(weight, {s.hidden}, false), s.rms_eps, s.gemma_norm);
}

NormOut ada_rms_norm(Graph& g, ValueId x, ValueId cond, const std::string& norm_prefix, const DecoderSpec& s,
                     const WeightFn& w) {
  NormOut o;
  if (s.ada_cond_dim <= 0) {
    o.y = norm(g, x, norm_prefix + ".weight", s, w);
    return o;
  }
  VLART_CHECK(cond != kNoValue, InvalidArgument, "decoder norm '", norm_prefix,
              "': adaptive RMSNorm needs a conditioning input");
  const Shape xs = g.value(x).shape;  // copies: the graph's value table grows below
  const Shape cs = g.value(cond).shape;
  VLART_CHECK(xs.rank() == 3 && cs == Shape({xs[0], s.ada_cond_dim}), InvalidArgument, "decoder norm '", norm_prefix,
              "': x ", xs.str(), " and cond ", cs.str(), " must be [B, L, D] and [B, ", s.ada_cond_dim, "]");
  const int64_t D = s.hidden;
  // rms(x) without a learned scale: RMSNorm against a zero weight in the (1 + w) form is x * rsqrt(...) * 1
  // exactly. One such constant per graph and width.
  const std::string unit_name = "blocks.ada_rms_zero_" + std::to_string(D);
  ValueId unit = g.find(unit_name);
  if (unit == kNoValue) {
    Tensor z = Tensor::empty({D}, DType::kF32);
    std::memset(z.raw(), 0, z.nbytes());
    unit = g.weight(unit_name, z);
  }
  const ValueId r = g.rms_norm(x, unit, s.rms_eps, /*gemma_plus_one=*/true);
  ValueId m = g.linear(cond, w(norm_prefix + ".dense.weight", {3 * D, s.ada_cond_dim}, true),
                       w(norm_prefix + ".dense.bias", {3 * D}, false));
  m = g.reshape(m, {xs[0], 1, 3 * D});
  const ValueId scale = g.slice(m, 2, 0, D), shift = g.slice(m, 2, D, 2 * D);
  o.gate = g.slice(m, 2, 2 * D, 3 * D);
  o.y = g.add(g.mul(r, g.scale(scale, 1.f, 1.f)), shift);
  return o;
}

ValueId gated_residual(Graph& g, ValueId x, ValueId y, ValueId gate) {
  return g.add(x, gate == kNoValue ? y : g.mul(y, gate));
}

ValueId project_q(Graph& g, ValueId h, ValueId pos, const DecoderSpec& s, const std::string& prefix,
                  const WeightFn& w) {
  const auto [B, L] = batch_len(g, h);
  const ValueId q = qkv_proj(g, h, s, prefix, "q_proj", s.heads * s.head_dim, w);
  return g.rope(g.reshape(q, {B, L, s.heads, s.head_dim}), pos, s.rope_theta);
}

KV project_kv(Graph& g, ValueId h, ValueId pos, const DecoderSpec& s, const std::string& prefix, const WeightFn& w) {
  const auto [B, L] = batch_len(g, h);
  const int64_t kvw = s.kv_heads * s.head_dim;
  KV kv;
  kv.k_flat = qkv_proj(g, h, s, prefix, "k_proj", kvw, w);
  kv.v_flat = qkv_proj(g, h, s, prefix, "v_proj", kvw, w);
  kv.k = g.rope(g.reshape(kv.k_flat, {B, L, s.kv_heads, s.head_dim}), pos, s.rope_theta);
  kv.v = g.reshape(kv.v_flat, {B, L, s.kv_heads, s.head_dim});
  return kv;
}

ValueId attention_residual(Graph& g, ValueId x, ValueId att, const DecoderSpec& s, const std::string& prefix,
                           const WeightFn& w, ValueId gate) {
  const auto [B, L] = batch_len(g, x);
  const int64_t qw = s.heads * s.head_dim;
  return gated_residual(
      g, x, g.linear(g.reshape(att, {B, L, qw}), w(prefix + "self_attn.o_proj.weight", {s.hidden, qw}, true)), gate);
}

ValueId mlp_residual(Graph& g, ValueId x, const DecoderSpec& s, const std::string& prefix, const WeightFn& w,
                     ValueId cond) {
  const NormOut n = ada_rms_norm(g, x, cond, prefix + "post_attention_layernorm", s, w);
  const ValueId gate = g.linear(n.y, w(prefix + "mlp.gate_proj.weight", {s.mlp, s.hidden}, true));
  const ValueId up = g.linear(n.y, w(prefix + "mlp.up_proj.weight", {s.mlp, s.hidden}, true));
  const ValueId m = s.gelu_mlp ? g.geglu(gate, up) : g.swiglu(gate, up);
  return gated_residual(g, x, g.linear(m, w(prefix + "mlp.down_proj.weight", {s.hidden, s.mlp}, true)), n.gate);
}

LayerOut decoder_layer(Graph& g, ValueId x, ValueId pos, const DecoderSpec& s, const std::string& prefix,
                       const WeightFn& w, const SelfAttention& a) {
  const bool cached = a.k_cache != kNoValue;
  VLART_CHECK(cached == (a.v_cache != kNoValue) && cached == (a.write_pos != kNoValue) &&
                  cached == (a.kv_len != kNoValue),
              InvalidArgument, "decoder layer '", prefix,
              "': a KV cache needs all of k_cache, v_cache, write_pos and kv_len");
  LayerOut out;
  const NormOut n = ada_rms_norm(g, x, a.cond, prefix + "input_layernorm", s, w);
  const ValueId h = n.y;
  const ValueId q = project_q(g, h, pos, s, prefix, w);
  out.kv = project_kv(g, h, pos, s, prefix, w);
  ValueId k = out.kv.k, v = out.kv.v;
  if (cached) {
    k = g.kv_write(a.k_cache, k, a.write_pos);
    v = g.kv_write(a.v_cache, v, a.write_pos);
  }
  const ValueId att = g.attention(q, k, v, a.mask, a.causal, s.attn_scale, s.precision, cached ? a.kv_len : kNoValue);
  out.x = mlp_residual(g, attention_residual(g, x, att, s, prefix, w, n.gate), s, prefix, w, a.cond);
  return out;
}

}  // namespace vlart::blocks
