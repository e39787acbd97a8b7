// Decoder-layer graph builders shared by the families (SmolVLA's VLM and action expert today;
// Gemma / PaliGemma, Qwen2 and Llama next). Each builds graph nodes and runs nothing. Weights are
// named as Hugging Face names them under a layer prefix ("<prefix>self_attn.q_proj.weight", ...)
// and fetched through the family's WeightFn, which decides dtype conversion and quantization.
//
// A layer is split where families differ: SmolVLA's expert projects only q for its cross-attention
// layers and reads K/V projected elsewhere, so project_q / project_kv / attention_residual /
// mlp_residual are separate; decoder_layer composes them for a plain self-attention layer, with or
// without a KV cache.
#pragma once

#include <functional>
#include <string>

#include "core/graph.h"
#include "models/blocks/weight_fn.h"

namespace vlart::blocks {

struct DecoderSpec {
  int64_t hidden = 0;     // model width D
  int64_t heads = 0;      // query heads of this layer
  int64_t kv_heads = 0;   // 1 = multi-query (Gemma 2B), < heads = grouped
  int64_t head_dim = 0;   // 64 SmolLM2, 256 Gemma
  int64_t mlp = 0;        // MLP width of this layer
  float rms_eps = 1e-5f;
  bool gemma_norm = false;  // RMSNorm scales by (1 + w) (Gemma)
  bool gelu_mlp = false;    // GeGLU: gelu_tanh(gate) * up (Gemma); else SwiGLU (Llama, Qwen2)
  bool qkv_bias = false;    // q/k/v projections carry a bias (Qwen2)
  float rope_theta = 10000.f;
  float attn_scale = 0.f;   // 0 = 1/sqrt(head_dim)
  AttnPrecision precision = AttnPrecision::kF32;
  // Adaptive RMSNorm (pi0.5's action expert, openpi's GemmaRMSNorm with cond_dim): > 0 = every norm
  // of the layer is <norm>.dense (Linear cond_dim -> 3 * hidden, with bias) applied to a conditioning
  // vector [B, cond_dim], split into scale | shift | gate: y = rms(x) * (1 + scale) + shift, and the
  // residual it feeds is gated: x + f(y) * gate (see ada_rms_norm).
  int64_t ada_cond_dim = 0;
};

// An adaptive RMSNorm's output and the gate for the residual it feeds (kNoValue: plain residual).
struct NormOut {
  ValueId y = kNoValue;
  ValueId gate = kNoValue;
};
// `norm_prefix` names the norm module ("<layer>input_layernorm"): its ".weight" for a plain norm
// (spec's convention), or its ".dense.weight" / ".dense.bias" with `cond` [B, ada_cond_dim].
NormOut ada_rms_norm(Graph& g, ValueId x, ValueId cond, const std::string& norm_prefix, const DecoderSpec& s,
                     const WeightFn& w);
// x + y, or x + y * gate.
ValueId gated_residual(Graph& g, ValueId x, ValueId y, ValueId gate);

// RMSNorm with the spec's eps and convention; `weight` is the full weight name.
ValueId norm(Graph& g, ValueId x, const std::string& weight, const DecoderSpec& s, const WeightFn& w);

// q = rope(q_proj(h)) as [B, L, heads, head_dim] at positions `pos` [B, L].
ValueId project_q(Graph& g, ValueId h, ValueId pos, const DecoderSpec& s, const std::string& prefix,
                  const WeightFn& w);

struct KV {
  ValueId k = kNoValue;       // rope(k_proj(h)), [B, L, kv_heads, head_dim]
  ValueId v = kNoValue;       // v_proj(h), [B, L, kv_heads, head_dim]
  ValueId k_flat = kNoValue;  // k_proj(h) before rope, [B, L, kv_heads * head_dim]
  ValueId v_flat = kNoValue;  // v_proj(h), [B, L, kv_heads * head_dim]
};
KV project_kv(Graph& g, ValueId h, ValueId pos, const DecoderSpec& s, const std::string& prefix, const WeightFn& w);

// x + o_proj(att) [* gate], att [B, L, heads, head_dim]; `gate` from the input norm (adaptive RMSNorm).
ValueId attention_residual(Graph& g, ValueId x, ValueId att, const DecoderSpec& s, const std::string& prefix,
                           const WeightFn& w, ValueId gate = kNoValue);

// x + down(glu(gate(n), up(n))) [* gate], n = post_attention_layernorm(x) (adaptive with `cond`).
ValueId mlp_residual(Graph& g, ValueId x, const DecoderSpec& s, const std::string& prefix, const WeightFn& w,
                     ValueId cond = kNoValue);

// How a self-attention layer sees its keys.
struct SelfAttention {
  ValueId mask = kNoValue;  // bool [B|1, L, Lk]
  bool causal = false;
  // KV cache (all four or none): graph inputs k_cache / v_cache [B, Lmax, kv_heads, head_dim] get this
  // step's K/V written at rows write_pos[b] (i32 [B]) and attention runs over the first kv_len[b]
  // (i32 [B]) rows of the cache (the causal limit counts from kv_len).
  ValueId k_cache = kNoValue, v_cache = kNoValue, write_pos = kNoValue, kv_len = kNoValue;
  ValueId cond = kNoValue;  // adaptive RMSNorm conditioning [B, ada_cond_dim] (DecoderSpec::ada_cond_dim > 0)
};

struct LayerOut {
  ValueId x = kNoValue;  // the layer's output hidden state
  KV kv;                 // this step's K/V (before any cache write)
};

// input_layernorm -> q/k/v (rope at pos) -> attention (own K/V, or the cache) -> o_proj residual
// -> MLP residual.
LayerOut decoder_layer(Graph& g, ValueId x, ValueId pos, const DecoderSpec& s, const std::string& prefix,
                       const WeightFn& w, const SelfAttention& a);

}  // namespace vlart::blocks
