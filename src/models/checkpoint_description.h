// What the checkpoint tools (`vlart info`, `vlart quantize`, `vlart prune`) know of a family's
// weights, read from a checkpoint directory's configs without loading the model: the tensor groups,
// which 2-D weights may be quantized and which stay float by default, and the decoder-layer stacks
// structured pruning may cut. Each family writes its own (src/models/<family>/describe.cpp); the
// tools never name a family's tensors themselves, and refuse a checkpoint whose family has none.
#pragma once

#include <cstdint>
#include <cstdio>
#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace vlart {

// printf into a std::string, for the summary lines of a description (one line, < 512 bytes).
template <typename... A>
std::string describe_fmt(const char* f, A... a) {
  char buf[512];
  std::snprintf(buf, sizeof buf, f, a...);
  return buf;
}

// A named group of tensors (glob patterns on full tensor names, '*' matching any run of characters).
struct WeightGroup {
  std::string name;                   // "vision encoder (SigLIP)"
  std::vector<std::string> patterns;  // "model.vlm_with_expert.vlm.model.vision_model.*"
};

// One stored decoder layer of a stack.
struct StackLayer {
  int64_t source = 0;   // index in the unpruned checkpoint
  int64_t heads = 0;    // query heads
  int64_t mlp = 0;      // MLP width
  int64_t paired = -1;  // primary stack: the layer of the paired stack that reads this layer's K/V
  bool self_attn = true;  // primary stack: attention kind of the paired layer
};

// Layers "<prefix><i>.self_attn.{q,k,v,o}_proj.weight" and "<prefix><i>.mlp.{gate,up,down}_proj.weight".
struct LayerStack {
  std::string name;         // "VLM", "expert" (messages and `vlart info`)
  std::string part;         // what `vlart prune --prune-parts` calls it: "vlm", "expert"
  std::string prefix;       // "model.vlm_with_expert.lm_expert.layers."
  std::string count_field;  // config.json field holding the layer count ("num_expert_layers"); "" = none (pi0)
  std::string section_key;  // key of its layer list in config.json's "pruning" section
  std::string paired_key;   // primary stack: key of a layer's paired index in that list ("expert")
  int64_t head_dim = 0, kv_heads = 0;
  std::vector<StackLayer> layers;
};

// What a family's tensors are called; needs nothing but the family (no config is read).
struct FamilyWeights {
  std::string family;                    // registry name ("smolvla")
  std::string display_name;              // "SmolVLA"
  std::string weight_prefix;             // what every model tensor name starts with ("model.")
  std::vector<WeightGroup> groups;       // in pipeline order; anything unmatched is "other"
  // Quantization: the 2-D weights the family's loader reads (anything else 2-D is unknown: the
  // converter refuses the checkpoint rather than copy it unquantized) and those kept float by
  // default (norms, embeddings, small projections; patterns also match module names, see
  // compress::pattern_matches_tensor).
  std::vector<std::string> known_2d;
  std::vector<std::string> keep_float;
};

struct CheckpointDescription {
  FamilyWeights weights;
  std::vector<std::string> summary;      // architecture, one "label: text" line each (`vlart info`)
  // Structured pruning: stacks[0] is the primary stack; dropping one of its layers drops the layer
  // of stacks[1] paired with it. Empty: the family cannot be pruned.
  std::vector<LayerStack> stacks;
  bool pruned = false;  // config.json already has a "pruning" section
  // Rough f32 activation memory per stage (`vlart info`), in bytes.
  std::vector<std::pair<std::string, double>> activation_bytes;
  // Directories the checkpoint needs beside its own (SmolVLA: the SmolVLM config dir), for
  // messages; and whether a copy written to another directory still finds them.
  std::vector<std::string> companion_dirs;
  std::function<bool(const std::string& dir)> companions_found;
};

// The tensor naming of the family of the checkpoint at `dir` (its config.json "type", as
// Policy::load detects it). UnsupportedError when the family has none.
FamilyWeights checkpoint_weights(const std::string& dir);

// The description of the checkpoint at `dir` (family from config.json, as Policy::load detects it).
// `companion_dir`: an override of where the family looks for companion configs (SmolVLA's
// --vlm-config), or "". UnsupportedError when the family has no description.
CheckpointDescription describe_checkpoint(const std::string& dir, const std::string& companion_dir = "");

}  // namespace vlart
