// pi0 / pi0.5 inference engine: SigLIP tower + linear projector per camera, the PaliGemma (Gemma)
// prefix over [image tokens; prompt tokens] with prefix-LM masks giving per-layer K/V, and the Gemma
// action expert over the suffix (pi0: [state token; action tokens], pi0.5: action tokens with adaRMS
// time conditioning), attending to the cached prefix K/V and to itself, integrated by Euler steps
// from t = 1 to 0. Each stage is a graph run by an Executor, cached per shape bucket.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/backend.h"
#include "core/executor.h"
#include "core/graph.h"
#include "core/quant_weight.h"
#include "models/blocks/decoder.h"
#include "models/kv_cache.h"
#include "models/pi0/config.h"
#include "models/policy_weights.h"
#include "models/stage_cache.h"
#include "models/stage_profile.h"

namespace vlart::pi0 {

struct PrefixState {
  int64_t len = 0;             // prefix tokens P (image tokens of the present cameras + prompt tokens)
  int64_t valid = 0;           // real (unpadded) tokens: the suffix positions start here
  std::vector<uint8_t> pad;    // [P]
  std::vector<Tensor> k, v;    // post-RoPE K / V per language-model layer, [1, P, kv_heads, head_dim]
};

// Greedy text decoding after the prefix (opentau's pi05 predict_response, infer_response): step 0
// feeds `bos`; step s feeds the argmax of the language-model head over the previous token's
// final-normed output; once a fed token is `eos` or `pad`, every later token is `pad` and masked
// (nothing attends to it). Tokens attend to the real prefix tokens, the earlier real response
// tokens and themselves; a real token's position is one past the previous real one.
struct DecodeSpec {
  int64_t max_len = 0;    // decode steps, the fed bos included (opentau's response_max_length)
  int32_t bos = -1, eos = -1, pad = -1;
  // Stop after feeding the first eos / pad instead of feeding masked pads up to max_len. The masked
  // tokens are attended by nothing, so the response K/V the action expert sees (and the actions)
  // are the same either way; only the steps are saved.
  bool stop_at_eos = true;
};
// A decoded response's K/V rows per language-model layer ([n, kv_heads, head_dim], the n fed tokens)
// and which of them are real: what reasoning reuse keeps and attaches to a later prefix.
struct ResponseKV {
  std::vector<uint8_t> valid;
  std::vector<Tensor> k, v;
};
struct DecodeResult {
  std::vector<int32_t> tokens;  // every decode step's fed token (tokens[0] = bos); max_len of them without the early stop
  std::vector<uint8_t> valid;   // per fed token: 1 real, 0 masked pad
  int64_t steps = 0;            // graph runs
};

class Pi0Model {
 public:
  // `compute`: f32, or bf16 (weights converted once per graph; activations and prefix K/V in bf16,
  // the flow state, the action/time MLPs and action_out_proj in f32).
  Pi0Model(Pi0Config cfg, PolicyWeights w, DType compute, std::vector<Backend*> placement, std::string backend_names);
  ~Pi0Model();

  const Pi0Config& config() const { return cfg_; }
  DType compute_dtype() const { return cdt_; }
  const std::string& backend_names() const { return backend_names_; }
  const std::optional<compress::QuantConfig>& quantization() const { return weights_.quantization(); }
  void set_dequantize_weights(bool on) { dequantize_ = on; }
  // The decode graph's Linear weights and tied head as int8 quantized at graph build (per row).
  void set_decode_int8(bool on) { decode_int8_ = on; }
  // At most `n` prefix graphs kept (each holds its own packed copy of the language model's weights
  // when the checkpoint's dtype is not the compute dtype: 8 GB at full size in f32).
  void set_prefix_stage_capacity(size_t n) { prefix_ = StageCache<std::pair<int64_t, int64_t>>(n); }
  void set_linear_observer(std::function<void(const std::string&, const Tensor&)> fn);
  // Per-op times by stage (PolicyOptions::profile); call before the first inference.
  void set_profiling(bool on);
  std::string profile_report() const { return profile_.report(cdt_); }

  // Projector output for `n` preprocessed frames ([n, 3, S, S] in [-1, 1]): [n, T, width], compute dtype.
  Tensor vision(const std::vector<float>& images, int64_t n);
  // Prompt embeddings (table lookup * sqrt(width)), [1, L, width], compute dtype.
  Tensor lang_embedding(const std::vector<int64_t>& ids);
  // Prefix pass over [img tokens; prompt tokens]; `img` is [n, T, width] (the present cameras).
  // `lang_block_start` (optional, one flag per prompt token): 1 where a token starts a new attention
  // block (opentau's causal "Response: " indicator tokens); absent = one bidirectional block.
  PrefixState prefix(const Tensor& img, const Tensor& lang_emb, const std::vector<uint8_t>& lang_mask,
                     const std::vector<uint8_t>* lang_block_start = nullptr);
  // Decodes the response after the prefix `p` and extends `p` in place: p.len grows by d.max_len
  // (rows of steps not run are zero and masked), p.pad and p.valid count the real response tokens,
  // and p.k / p.v hold prefix + response K/V, ready for denoise(). Needs the checkpoint's final
  // language-model norm and (tied) head.
  // `kept` (optional) receives a copy of the response's K/V rows for reuse.
  DecodeResult decode(PrefixState& p, const DecodeSpec& d, ResponseKV* kept = nullptr);
  // Extends the prefix `p` as decode() does, with a response decoded earlier (reasoning reuse) in
  // place of a new decode: its rows follow the prefix rows, capacity p.len + max_len.
  void attach_response(PrefixState& p, const ResponseKV& r, int64_t max_len);
  // Euler integration from `noise` ([chunk, max_action_dim]); `state` is the normalised state padded
  // to max_state_dim (pi0's state token; unused by pi0.5). Returns x_0. `velocities` optionally gets v_t per step.
  std::vector<float> denoise(const PrefixState& p, const std::vector<float>& state, const std::vector<float>& noise,
                             int64_t steps, std::vector<std::vector<float>>* velocities = nullptr);

 private:
  template <class Build>
  std::unique_ptr<Stage> make_stage(Build&& build);
  void build_vision(Graph& g, int64_t n) const;
  void build_embed(Graph& g, int64_t lt) const;
  void build_prefix(Graph& g, int64_t nt, int64_t lt) const;
  void build_denoise(Graph& g, int64_t P) const;
  void build_decode(Graph& g, int64_t cap);
  ValueId embed_ids(Graph& g, ValueId ids) const;  // table lookup * sqrt(width), compute dtype
  ValueId decode_weight(Graph& g, const std::string& name, const Shape& shape);  // int8 at build when asked
  KVCache& cache_with_prefix(const PrefixState& p, int64_t cap);  // kv_ holding p's rows, the rest zero
  void extend(PrefixState& p, int64_t cap, const std::vector<uint8_t>& valid);  // p over kv_ rows [0, cap)
  ValueId w(Graph& g, const std::string& name, const Shape& shape = {}, std::optional<DType> dt = {}) const;
  ValueId wq(Graph& g, const std::string& name, const Shape& shape = {}, std::optional<DType> dt = {}) const;
  blocks::WeightFn weight_fn(Graph& g) const;
  blocks::DecoderSpec spec(const GemmaDims& d, int64_t layer, bool adaptive) const;
  int64_t suffix_len() const { return cfg_.chunk_size + (cfg_.pi05 ? 0 : 1); }

  Pi0Config cfg_;
  PolicyWeights weights_;
  DType cdt_ = DType::kF32;
  bool dequantize_ = false;
  bool decode_int8_ = false;
  std::map<std::string, std::shared_ptr<const QuantWeight>> decode_q_;  // int8 decode weights, built once
  ExecutorOptions exec_opts_;
  StageProfile profile_;
  std::vector<Backend*> placement_;
  std::string backend_names_;
  StageCache<int64_t> vision_;                      // by frames
  StageCache<int64_t> embed_;                       // by prompt length
  StageCache<std::pair<int64_t, int64_t>> prefix_;  // by (image tokens, prompt length)
  StageCache<int64_t> denoise_;                     // by prefix length
  StageCache<int64_t> decode_;                      // by KV capacity (prefix + response length)
  std::unique_ptr<KVCache> kv_;                     // the decode's K/V, reused while the capacity holds
};

}  // namespace vlart::pi0
