// SmolVLA inference engine: vision tower + connector, prefix (VLM layers -> per-layer K/V), and the
// action-expert denoising step, each a graph run by an Executor. Executors are cached per shape
// bucket (camera count, prompt length), so repeated inference does not rebuild graphs.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/backend.h"
#include "core/executor.h"
#include "core/graph.h"
#include "models/blocks/decoder.h"
#include "models/smolvla/config.h"
#include "models/smolvla/weights.h"
#include "models/stage_cache.h"
#include "models/stage_profile.h"

namespace vlart::smolvla {

struct PrefixInputs {
  std::vector<float> images;  // [n_cams, 3, S, S] preprocessed
  int64_t n_cams = 0;
  std::vector<int64_t> lang_ids;
  std::vector<uint8_t> lang_mask;
  std::vector<float> state;  // normalised, padded to max_state_dim
  // lang_embedding(lang_ids), when the caller has it (e.g. from a task cache); computed if undefined.
  Tensor lang_emb;
};

struct PrefixState {
  int64_t len = 0;                 // prefix tokens P
  std::vector<uint8_t> pad;        // [P]
  std::vector<int64_t> positions;  // [P]
  std::vector<uint8_t> att2d;      // [P, P]
  std::vector<Tensor> k, v;        // raw post-RoPE K / V per VLM layer, [1, P, KV, hd]
  std::vector<Tensor> ck, cv;      // expert cross-attention K / V per VLM layer (undefined if unused)
};

class SmolVLAModel {
 public:
  // `compute`: f32, or bf16 (weights converted once at graph build; activations, prefix K/V and
  // vision features in bf16 with f32 accumulation inside the kernels; the flow state x_t, the
  // action/time MLP, the final norm and action_out_proj stay f32).
  // `placement`: the backends in executor priority order (created by the runtime, which outlives
  // the model), e.g. {cuda, cpu}: GPU first, the CPU for the ops the CUDA backend does not support.
  // `backend_names` names them ("cuda+cpu").
  SmolVLAModel(SmolVLAConfig cfg, SmolVLAWeights w, DType compute, std::vector<Backend*> placement,
               std::string backend_names);
  // Backends in placement order, e.g. "cuda+cpu" or "cpu".
  std::string backend_names() const { return backend_names_; }
  ~SmolVLAModel();

  const SmolVLAConfig& config() const { return cfg_; }
  // Per-op wall time of every graph step, summed by stage and op kind (call before the first
  // inference; costs two clock reads per step). profile_report() renders the totals.
  void set_profiling(bool on);
  std::string profile_report() const;
  DType compute_dtype() const { return cdt_; }
  // Run a quantized checkpoint with its weights dequantized to f32 at load instead of the quantized
  // kernels (reference behaviour for comparisons; call before the first inference).
  void set_dequantize_weights(bool on) { dequantize_ = on; }
  // Attention products of every attention node (Graph::attention's precision; CPU with
  // AVX512_VNNI, else f32). Call before the first inference.
  void set_attention_precision(AttnPrecision p) { attn_prec_ = p; }
  AttnPrecision attention_precision() const { return attn_prec_; }
  // The checkpoint's "quantization" section (nullopt for a float checkpoint).
  const std::optional<compress::QuantConfig>& quantization() const { return weights_.quantization(); }
  // Executor hook on the inputs of every Linear (ExecutorOptions::linear_input_observer), for
  // calibration. Drops the stages built so far so that every later stage carries it.
  void set_linear_observer(std::function<void(const std::string&, const Tensor&)> fn);

  // Visual-token pruning (0 = off, the default): prefix_from_vision keeps the `k` connector tokens
  // per image with the largest L2 norm (models/smolvla/token_prune.h), in their original order, and
  // builds the prefix from those alone: positions count only the kept tokens and the masks cover
  // them, as if the image had produced k tokens. k >= tokens per image keeps all of them.
  void set_visual_tokens_keep(int64_t k);
  int64_t visual_tokens_keep() const { return vis_keep_; }

  // Connector output (before the sqrt(D) scale), [n_cams, T, D] in the compute dtype; `n_cams` may
  // cover several observations (their frames back to back). `last_hidden` optionally gets the
  // SigLIP output [n_cams, patches, Cv].
  Tensor vision(const std::vector<float>& images, int64_t n_cams, Tensor* last_hidden = nullptr);
  // Vision-tower state of one frame, kept for approximate visual reuse: per SigLIP layer the K and V
  // of every patch ([1, patches, hidden] each) and the connector output [1, T, D], compute dtype.
  struct VisionState {
    std::vector<Tensor> k, v;
    Tensor feat;
  };
  // vision(images, n) that also returns every frame's K/V per layer (the same ops, so the features
  // equal vision()'s bit for bit), one state per frame.
  std::vector<VisionState> vision_states(const std::vector<float>& images, int64_t n);
  VisionState vision_state(const std::vector<float>& image) { return std::move(vision_states(image, 1)[0]); }
  // Recomputes the connector tokens `tokens` (distinct, < T) of `image` ([3, S, S] preprocessed):
  // only their patches run through SigLIP, attending to their own new K/V and to the K/V in `st` of
  // every other patch, then post-norm, pixel shuffle and connector; their K/V rows and feature rows
  // in `st` are replaced (approximate: the other patches keep the K/V of the frame they came from).
  // One graph per token-count bucket (powers of two from max(1, T/8) up to T), built on first use.
  void vision_sparse(const std::vector<float>& image, const std::vector<int64_t>& tokens, VisionState& st);

  // Language-token embeddings of a prompt, [1, lt, D] in the compute dtype (embedding lookup scaled
  // by sqrt(D)): the part of the prefix that depends on the task alone, so callers may cache it.
  Tensor lang_embedding(const std::vector<int64_t>& ids);
  // Full prefix pass; `embs` optionally receives the prefix embeddings [1, P, D].
  PrefixState prefix(const PrefixInputs& in, Tensor* embs = nullptr);
  // Same, with the connector output of vision() already computed (`in.images` is not read).
  PrefixState prefix_from_vision(const PrefixInputs& in, const Tensor& img, Tensor* embs = nullptr);
  // One velocity evaluation v_t(x_t, t) for the given prefix, [chunk, max_action_dim].
  std::vector<float> velocity(const PrefixState& p, const std::vector<float>& x_t, float t);
  // Layer importance on one observation (`vlart rank-layers`): the cosine similarity of each layer's
  // input and output hidden state (residual stream); near 1 = the layer changes little. VLM layers:
  // mean over the valid prefix tokens (the last layer's MLP, otherwise skipped, runs for this).
  // Expert layers: mean over the action tokens and the `steps` Euler steps from `noise`. Builds
  // its own graphs each call (not cached, not for the control loop).
  struct LayerCosines {
    std::vector<double> vlm, expert;  // [num_vlm_layers], [num_expert()] (stored indices)
  };
  LayerCosines layer_cosines(const PrefixInputs& in, const std::vector<float>& noise, int64_t steps);
  // Euler integration from `noise` ([chunk, max_action_dim]) with `steps` steps; returns x_0.
  std::vector<float> denoise(const PrefixState& p, const std::vector<float>& noise, int64_t steps,
                             std::vector<std::vector<float>>* velocities = nullptr);

 private:
  // Builds the stage of graph `build` fills, with the model's placement and options.
  template <class Build>
  std::unique_ptr<Stage> make_stage(Build&& build, bool release_pages = true);
  Stage& vision_stage(int64_t n_cams);
  Stage& prefix_stage(int64_t img_tokens, int64_t lang_len);
  Stage& denoise_stage(int64_t prefix_len);
  Stage& embed_stage(int64_t lang_len);
  void bind_prefix(const PrefixState& p);
  std::vector<float> step(int64_t prefix_len, const std::vector<float>& x_t, float t);
  void build_vision(Graph& g, int64_t n_cams, bool emit_kv = false) const;
  // `probe`: also output every layer's output hidden state (after the regular outputs).
  void build_prefix(Graph& g, int64_t img_tokens, int64_t lang_len, bool probe = false) const;
  void build_denoise(Graph& g, int64_t prefix_len, bool probe = false) const;
  void build_embed(Graph& g, int64_t lang_len) const;
  void build_vision_sparse(Graph& g, int64_t tokens) const;  // vision_sparse.cpp
  Stage& vision_state_stage(int64_t n_frames);
  Stage& sparse_stage(int64_t tokens);
  // Connector tokens the prefix uses (all, or the kept ones under visual-token pruning); *T per image.
  Tensor kept_visual_tokens(const Tensor& img_all, int64_t n_cams, int64_t* T) const;
  PrefixState run_prefix(Executor& ex, const PrefixInputs& in, const Tensor& img, int64_t T, Tensor* embs);
  void bind_prefix_to(Executor& ex, const PrefixState& p);
  // Weight `name` as a graph constant in dtype `dt` (default: the compute dtype).
  ValueId w(Graph& g, const std::string& name, const Shape& shape = {}, std::optional<DType> dt = {}) const;
  ValueId w_opt(Graph& g, const std::string& name) const;
  // The shared decoder blocks' view of the weights (wq for Linear W, w for the rest) and one layer's
  // shape (VLM or expert width, with that layer's heads and MLP width).
  blocks::WeightFn weight_fn(Graph& g) const;
  blocks::DecoderSpec layer_spec(int64_t hidden, int64_t heads, int64_t mlp) const;
  // The W input of a Linear: a quantized weight stays packed (QuantWeight, run by the quantized
  // kernels) unless dequantize_ is set; anything else as w().
  ValueId wq(Graph& g, const std::string& name, const Shape& shape = {}, std::optional<DType> dt = {}) const;

  SmolVLAConfig cfg_;
  SmolVLAWeights weights_;
  DType cdt_ = DType::kF32;
  bool dequantize_ = false;
  AttnPrecision attn_prec_ = AttnPrecision::kF32;
  int64_t vis_keep_ = 0;  // visual tokens kept per image, 0 = all
  ExecutorOptions exec_opts_;
  StageProfile profile_;
  void record_profile(const char* stage, const Executor& ex);
  std::vector<Backend*> placement_;  // executor priority order (not owned)
  std::string backend_names_;
  // Shape buckets, each LRU-bounded (models/stage_cache.h).
  StageCache<int64_t> vision_;
  StageCache<std::pair<int64_t, int64_t>> prefix_;  // by (image tokens, prompt length)
  StageCache<int64_t> denoise_;                     // by prefix length
  StageCache<int64_t> embed_;
  StageCache<int64_t> vision_state_;  // vision graphs with K/V outputs, by frames
  StageCache<int64_t> sparse_;        // by token-count bucket
};

}  // namespace vlart::smolvla
