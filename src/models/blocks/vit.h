// Vision-transformer (pre-LN ViT) graph builders shared by the families: SigLIP as SmolVLA and
// PaliGemma use it (Hugging Face names: layer_norm1, self_attn.{q,k,v,out}_proj, mlp.fc1/fc2), with
// options for DINOv2-style towers (timm names: a fused qkv, LayerScale on both residual branches,
// CLS and register tokens prepended after the position embedding) and for stopping at a layer.
// Builders run nothing; weights come through the family's WeightFn.
#pragma once

#include <string>
#include <vector>

#include "core/graph.h"
#include "models/blocks/weight_fn.h"

namespace vlart::blocks {

// Weight names of one layer, relative to its prefix (without ".weight" / ".bias").
struct VitNames {
  std::string norm1 = "layer_norm1", norm2 = "layer_norm2";
  std::string q = "self_attn.q_proj", k = "self_attn.k_proj", v = "self_attn.v_proj";
  std::string qkv = "attn.qkv";  // fused [3 * hidden, hidden], rows q | k | v (fused_qkv)
  std::string out = "self_attn.out_proj";
  std::string fc1 = "mlp.fc1", fc2 = "mlp.fc2";
  std::string ls1 = "ls1.gamma", ls2 = "ls2.gamma";  // LayerScale [hidden] (layer_scale)

  static VitNames siglip() { return {}; }
  static VitNames timm() {
    VitNames n;
    n.norm1 = "norm1";
    n.norm2 = "norm2";
    n.out = "attn.proj";
    n.fc1 = "mlp.fc1";
    n.fc2 = "mlp.fc2";
    return n;
  }
};

struct VitSpec {
  int64_t hidden = 0, heads = 0, mlp = 0;
  float ln_eps = 1e-6f;
  bool gelu_tanh = false;    // MLP activation: tanh GELU (SigLIP), else erf GELU (DINOv2)
  bool fused_qkv = false;    // one qkv projection instead of three
  bool layer_scale = false;  // x += ls1 * attn(...), x += ls2 * mlp(...)
  AttnPrecision precision = AttnPrecision::kF32;
  VitNames names;
};

struct VitLayerOut {
  ValueId x = kNoValue;                        // the layer's output [B, L, hidden]
  ValueId k = kNoValue, v = kNoValue;          // its K and V before the head split, [B, L, hidden]
};

// One pre-LN layer: x + [ls1 *] out(attn(qkv(norm1 x))), then + [ls2 *] fc2(gelu(fc1(norm2 x))).
VitLayerOut vit_layer(Graph& g, ValueId x, const VitSpec& s, const std::string& prefix, const WeightFn& w);

// Prepends learned tokens (each [1, n_i, hidden], e.g. DINOv2's CLS [1, 1, D] and registers
// [1, 4, D]) to every image of x [B, L, hidden], in the order given.
ValueId prepend_tokens(Graph& g, ValueId x, const std::vector<ValueId>& tokens);

}  // namespace vlart::blocks
