#include "models/smolvla/model.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>

#include "models/blocks/decoder.h"
#include "models/blocks/masks.h"
#include "models/blocks/vit.h"
#include "models/flow_matching.h"
#include "models/graph_weights.h"
#include "models/smolvla/preprocess.h"
#include "models/smolvla/token_prune.h"
#include "vlart/error.h"

namespace vlart::smolvla {

namespace {
const std::string kVis = "vlm_with_expert.vlm.model.vision_model.";
const std::string kConn = "vlm_with_expert.vlm.model.connector.modality_projection.proj.weight";
const std::string kText = "vlm_with_expert.vlm.model.text_model.";
const std::string kExp = "vlm_with_expert.lm_expert.";
constexpr float kRopeTheta = 10000.f;  // LeRobot's apply_rope hard-codes it (not rope_theta)

void fill(Executor& ex, const std::string& name, const void* src, size_t bytes) {
  fill_input(ex, name, src, bytes, "smolvla");
}
}  // namespace

SmolVLAModel::SmolVLAModel(SmolVLAConfig cfg, SmolVLAWeights w, DType compute, std::vector<Backend*> placement,
                           std::string backend_names)
    : cfg_(std::move(cfg)),
      weights_(std::move(w)),
      cdt_(compute),
      placement_(std::move(placement)),
      backend_names_(std::move(backend_names)) {
  VLART_CHECK(cdt_ == DType::kF32 || cdt_ == DType::kBF16, UnsupportedError, "smolvla: compute dtype ",
              dtype_name(cdt_), " is not supported (f32 or bf16)");
  VLART_CHECK(!placement_.empty(), InvalidArgument, "smolvla: no backends given");
  // Per-layer shapes come from load_config (uniform, or a checkpoint's "pruning" section).
  VLART_CHECK(static_cast<int64_t>(cfg_.vlm_layers.size()) == cfg_.num_vlm_layers &&
                  static_cast<int64_t>(cfg_.expert_layers.size()) == cfg_.num_expert(),
              InvalidArgument, "smolvla: the config has ", cfg_.vlm_layers.size(), " VLM / ", cfg_.expert_layers.size(),
              " expert layer specs for ", cfg_.num_vlm_layers, " / ", cfg_.num_expert(),
              " layers (build configs with load_config)");
}
SmolVLAModel::~SmolVLAModel() = default;

void SmolVLAModel::set_profiling(bool on) {
  VLART_CHECK(vision_.empty() && prefix_.empty() && denoise_.empty(), InvalidArgument,
              "smolvla: set_profiling must be called before the first inference");
  exec_opts_.profile = on;
}

void SmolVLAModel::set_visual_tokens_keep(int64_t k) {
  VLART_CHECK(k >= 0, InvalidArgument, "smolvla: visual_tokens_keep must be >= 0 (0 = off), got ", k);
  vis_keep_ = k >= cfg_.tokens_per_image() ? 0 : k;
}

void SmolVLAModel::record_profile(const char* stage, const Executor& ex) { profile_.record(stage, ex); }

std::string SmolVLAModel::profile_report() const { return profile_.report(cdt_); }

ValueId SmolVLAModel::w(Graph& g, const std::string& name, const Shape& shape, std::optional<DType> dt) const {
  return graph_weight(g, weights_, name, shape, dt.value_or(cdt_));
}
void SmolVLAModel::set_linear_observer(std::function<void(const std::string&, const Tensor&)> fn) {
  exec_opts_.linear_input_observer = std::move(fn);
  vision_.clear();
  prefix_.clear();
  denoise_.clear();
  embed_.clear();
  vision_state_.clear();
  sparse_.clear();
}

ValueId SmolVLAModel::wq(Graph& g, const std::string& name, const Shape& shape, std::optional<DType> dt) const {
  return graph_linear_weight(g, weights_, name, shape, dt.value_or(cdt_), dequantize_);
}
blocks::WeightFn SmolVLAModel::weight_fn(Graph& g) const {
  return [this, &g](const std::string& name, const Shape& shape, bool linear) {
    return linear ? wq(g, name, shape) : w(g, name, shape);
  };
}
blocks::DecoderSpec SmolVLAModel::layer_spec(int64_t hidden, int64_t heads, int64_t mlp) const {
  blocks::DecoderSpec s;
  s.hidden = hidden;
  s.heads = heads;
  s.kv_heads = cfg_.text.kv_heads;
  s.head_dim = cfg_.text.head_dim;
  s.mlp = mlp;
  s.rms_eps = cfg_.text.rms_eps;
  s.rope_theta = kRopeTheta;
  s.precision = attn_prec_;
  return s;
}
ValueId SmolVLAModel::w_opt(Graph& g, const std::string& name) const {
  return weights_.has(name) ? w(g, name) : kNoValue;
}

void SmolVLAModel::build_vision(Graph& g, int64_t n, bool emit_kv) const {
  const VisionConfig& v = cfg_.vision;
  const int64_t S = v.image_size, gp = S / v.patch, L = gp * gp, C = v.hidden;
  ValueId x = g.input("pixels", {n, v.channels, S, S}, DType::kF32);
  if (cdt_ != DType::kF32) x = g.cast(x, cdt_);
  x = g.conv2d(x, w(g, kVis + "embeddings.patch_embedding.weight", {C, v.channels, v.patch, v.patch}),
               w(g, kVis + "embeddings.patch_embedding.bias", {C}), static_cast<int>(v.patch), 0);
  x = g.permute(g.reshape(x, {n, C, L}), {0, 2, 1});
  // Identity position ids (row-major), as bf16 SmolVLA and the fixtures use.
  x = g.add(x, w(g, kVis + "embeddings.position_embedding.weight", {L, C}));
  blocks::VitSpec vs;
  vs.hidden = C;
  vs.heads = v.heads;
  vs.mlp = v.mlp;
  vs.ln_eps = v.ln_eps;
  vs.gelu_tanh = v.gelu_tanh;
  vs.precision = attn_prec_;
  const blocks::WeightFn wf = weight_fn(g);
  for (int64_t i = 0; i < v.layers; ++i) {
    const blocks::VitLayerOut o = blocks::vit_layer(g, x, vs, kVis + "encoder.layers." + std::to_string(i) + ".", wf);
    if (emit_kv) {  // vision_states(): every layer's K/V, for approximate reuse (vision_sparse.cpp)
      g.mark_output(o.k);
      g.mark_output(o.v);
    }
    x = o.x;
  }
  x = g.layer_norm(x, w(g, kVis + "post_layernorm.weight", {C}), w(g, kVis + "post_layernorm.bias", {C}), v.ln_eps);
  g.mark_output(x);
  const int r = cfg_.scale_factor;
  ValueId c = g.linear(g.pixel_shuffle(x, r), wq(g, kConn, {cfg_.text.hidden, C * r * r}));
  g.mark_output(c);
}

void SmolVLAModel::build_prefix(Graph& g, int64_t nt, int64_t lt, bool probe) const {
  const TextConfig& t = cfg_.text;
  const int64_t D = t.hidden, P = nt + lt + 1, hd = t.head_dim;
  ValueId img = g.input("img", {1, nt, D}, cdt_);
  ValueId e_lang = g.input("lang_emb", {1, lt, D}, cdt_);  // lang_embedding(), already scaled
  ValueId st = g.input("state", {1, 1, cfg_.max_state_dim}, DType::kF32);
  if (cdt_ != DType::kF32) st = g.cast(st, cdt_);
  ValueId pos = g.input("pos", {1, P}, DType::kI64);
  ValueId mask = g.input("mask", {1, P, P}, DType::kBool);
  const float sq = static_cast<float>(std::sqrt(static_cast<double>(D)));
  ValueId e_img = g.scale(img, sq);
  ValueId e_st = g.linear(st, wq(g, "state_proj.weight", {D, cfg_.max_state_dim}), w(g, "state_proj.bias", {D}));
  ValueId x = g.concat({e_img, e_lang, e_st}, 1);
  g.mark_output(x);
  const blocks::WeightFn wf = weight_fn(g);
  std::vector<ValueId> hidden;  // probe: every layer's output
  for (int64_t i = 0; i < cfg_.num_vlm_layers; ++i) {
    const std::string p = kText + "layers." + std::to_string(i) + ".";
    // Per-layer sizes: a pruned checkpoint may have fewer query heads or MLP channels per layer.
    const VlmLayerSpec& ls = cfg_.vlm_layers[static_cast<size_t>(i)];
    const blocks::DecoderSpec spec = layer_spec(D, ls.heads, ls.mlp);
    const ValueId h = blocks::norm(g, x, p + "input_layernorm.weight", spec, wf);
    const ValueId q = blocks::project_q(g, h, pos, spec, p, wf);
    const blocks::KV kv = blocks::project_kv(g, h, pos, spec, p, wf);
    const ValueId k = kv.k, vf = kv.v_flat;
    g.mark_output(k);
    g.mark_output(vf);
    const int64_t e = cfg_.expert_layer_of(i);
    if (e >= 0 && !cfg_.is_self_attn(i)) {
      // Cross-attention layers project the cached VLM K/V with the expert's k/v once per inference.
      const std::string ep = kExp + "layers." + std::to_string(e) + ".self_attn.";
      // LeRobot: Linear(kv_heads * head_dim of the VLM -> the expert's kv_heads * head_dim), the same widths.
      const int64_t kvw = t.kv_heads * hd;
      ValueId kin = g.reshape(k, {1, P, kvw});
      g.mark_output(g.linear(kin, wq(g, ep + "k_proj.weight", {kvw, kvw}), w_opt(g, ep + "k_proj.bias")));
      g.mark_output(g.linear(vf, wq(g, ep + "v_proj.weight", {kvw, kvw}), w_opt(g, ep + "v_proj.bias")));
    }
    if (i + 1 == cfg_.num_vlm_layers && !probe) break;  // the last layer's output is never used
    const ValueId a = g.attention(q, k, kv.v, mask, false, spec.attn_scale, spec.precision);
    x = blocks::mlp_residual(g, blocks::attention_residual(g, x, a, spec, p, wf), spec, p, wf);
    if (probe) hidden.push_back(x);
  }
  for (ValueId h : hidden) g.mark_output(h);
}

// Task-only part of the prefix, its own small graph so the result can be cached per prompt.
void SmolVLAModel::build_embed(Graph& g, int64_t lt) const {
  const float sq = static_cast<float>(std::sqrt(static_cast<double>(cfg_.text.hidden)));
  ValueId ids = g.input("lang", {1, lt}, DType::kI64);
  g.mark_output(g.scale(g.embedding(w(g, kText + "embed_tokens.weight"), ids), sq));
}

void SmolVLAModel::build_denoise(Graph& g, int64_t P, bool probe) const {
  const TextConfig& t = cfg_.text;
  const int64_t C = cfg_.chunk_size, A = cfg_.max_action_dim, We = cfg_.expert_hidden(), hd = t.head_dim;
  ValueId xt = g.input("x_t", {1, C, A}, DType::kF32);
  ValueId temb = g.input("temb", {1, C, We}, DType::kF32);
  ValueId spos = g.input("pos", {1, C}, DType::kI64);
  ValueId cpos = g.input("cpos", {1, C}, DType::kI64);
  ValueId mself = g.input("mask_self", {1, C, P + C}, DType::kBool);
  ValueId mcross = g.input("mask_cross", {1, C, P}, DType::kBool);
  const DType f32 = DType::kF32;
  ValueId a = g.linear(xt, wq(g, "action_in_proj.weight", {We, A}, f32), w(g, "action_in_proj.bias", {We}, f32));
  ValueId x = g.linear(g.concat({a, temb}, 2), wq(g, "action_time_mlp_in.weight", {We, 2 * We}, f32),
                       w(g, "action_time_mlp_in.bias", {We}, f32), Activation::kSilu);
  x = g.linear(x, wq(g, "action_time_mlp_out.weight", {We, We}, f32), w(g, "action_time_mlp_out.bias", {We}, f32));
  if (cdt_ != f32) x = g.cast(x, cdt_);
  const blocks::WeightFn wf = weight_fn(g);
  std::vector<ValueId> hidden = {x};  // probe: the input of the first expert layer, then every layer's output
  for (int64_t i = 0; i < cfg_.num_vlm_layers; ++i) {
    const int64_t e = cfg_.expert_layer_of(i);
    if (e < 0) continue;  // action tokens skip VLM layers without an expert layer
    const std::string p = kExp + "layers." + std::to_string(e) + ".";
    const std::string si = std::to_string(i);
    const ExpertLayerSpec& es = cfg_.expert_layers[static_cast<size_t>(e)];
    const blocks::DecoderSpec spec = layer_spec(We, es.heads, es.mlp);
    const ValueId h = blocks::norm(g, x, p + "input_layernorm.weight", spec, wf);
    const int64_t kvw = t.kv_heads * hd;
    ValueId att;
    if (cfg_.is_self_attn(i)) {
      const ValueId q = blocks::project_q(g, h, spos, spec, p, wf);
      const blocks::KV kv = blocks::project_kv(g, h, spos, spec, p, wf);
      ValueId kc = g.input("k" + si, {1, P, t.kv_heads, hd}, cdt_);
      ValueId vc = g.reshape(g.input("v" + si, {1, P, kvw}, cdt_), {1, P, t.kv_heads, hd});
      att = g.attention(q, g.concat({kc, kv.k}, 1), g.concat({vc, kv.v}, 1), mself, false, spec.attn_scale,
                        spec.precision);
    } else {
      // The prefix graph projected the VLM K/V through this layer's k/v_proj ([kv_heads * hd] wide).
      const ValueId q = blocks::project_q(g, h, cpos, spec, p, wf);
      ValueId kc = g.reshape(g.input("ck" + si, {1, P, kvw}, cdt_), {1, P, t.kv_heads, hd});
      ValueId vc = g.reshape(g.input("cv" + si, {1, P, kvw}, cdt_), {1, P, t.kv_heads, hd});
      att = g.attention(q, kc, vc, mcross, false, spec.attn_scale, spec.precision);
    }
    x = blocks::mlp_residual(g, blocks::attention_residual(g, x, att, spec, p, wf), spec, p, wf);
    hidden.push_back(x);
  }
  if (cdt_ != f32) x = g.cast(x, f32);
  x = g.rms_norm(x, w(g, kExp + "norm.weight", {We}, f32), t.rms_eps);
  g.mark_output(g.linear(x, wq(g, "action_out_proj.weight", {A, We}, f32), w(g, "action_out_proj.bias", {A}, f32)));
  if (probe)
    for (ValueId h : hidden) g.mark_output(h);
}

template <class Build>
std::unique_ptr<Stage> SmolVLAModel::make_stage(Build&& build, bool release_pages) {
  auto s = std::make_unique<Stage>();
  build(s->graph);
  s->exec = Executor::consume(s->graph, placement_, exec_opts_);
  s->graph = Graph();  // kernels hold the (repacked) weights they need
  if (release_pages) weights_.release_resident_pages();
  return s;
}

Stage& SmolVLAModel::vision_stage(int64_t n) {
  return vision_.get(n, [&] { return make_stage([&](Graph& g) { build_vision(g, n); }); });
}
Stage& SmolVLAModel::prefix_stage(int64_t nt, int64_t lt) {
  return prefix_.get({nt, lt}, [&] { return make_stage([&](Graph& g) { build_prefix(g, nt, lt); }); });
}
Stage& SmolVLAModel::denoise_stage(int64_t P) {
  return denoise_.get(P, [&] { return make_stage([&](Graph& g) { build_denoise(g, P); }); });
}
Stage& SmolVLAModel::embed_stage(int64_t lt) {
  return embed_.get(lt, [&] { return make_stage([&](Graph& g) { build_embed(g, lt); }, false); });
}
Stage& SmolVLAModel::vision_state_stage(int64_t n) {
  return vision_state_.get(n, [&] { return make_stage([&](Graph& g) { build_vision(g, n, /*emit_kv=*/true); }); });
}
Stage& SmolVLAModel::sparse_stage(int64_t tokens) {
  return sparse_.get(tokens, [&] { return make_stage([&](Graph& g) { build_vision_sparse(g, tokens); }); });
}

Tensor SmolVLAModel::lang_embedding(const std::vector<int64_t>& ids) {
  VLART_CHECK(!ids.empty(), InvalidArgument, "smolvla: empty prompt (no token ids)");
  Stage& s = embed_stage(static_cast<int64_t>(ids.size()));
  fill(*s.exec, "lang", ids.data(), ids.size() * sizeof(int64_t));
  s.exec->run();
  if (exec_opts_.profile) record_profile("embed", *s.exec);
  return s.exec->output(0).clone();
}

Tensor SmolVLAModel::vision(const std::vector<float>& images, int64_t n, Tensor* last_hidden) {
  Stage& s = vision_stage(n);
  fill(*s.exec, "pixels", images.data(), images.size() * sizeof(float));
  s.exec->run();
  if (exec_opts_.profile) record_profile("vision", *s.exec);
  if (last_hidden) *last_hidden = s.exec->output(0).clone();
  return s.exec->output(1).clone();
}

PrefixState SmolVLAModel::prefix(const PrefixInputs& in, Tensor* embs) {
  return prefix_from_vision(in, vision(in.images, in.n_cams), embs);
}

Tensor SmolVLAModel::kept_visual_tokens(const Tensor& img_all, int64_t n, int64_t* T) const {
  const int64_t T0 = cfg_.tokens_per_image();
  VLART_CHECK(img_all.numel() == n * T0 * cfg_.text.hidden, InvalidArgument, "smolvla: image embeddings ",
              img_all.shape().str(), " do not match ", n, " cameras x ", T0, " tokens x ", cfg_.text.hidden);
  // Visual-token pruning: the kept tokens are all valid (pad 1) and in attention block 0, so
  // dropping the others and counting positions over what remains is the whole change.
  *T = vis_keep_ > 0 ? vis_keep_ : T0;
  if (*T == T0) return img_all;
  const Tensor feats = img_all.contiguous().reshape({n, T0, cfg_.text.hidden});
  return gather_tokens(feats, top_tokens_by_norm(feats, *T), *T);
}

PrefixState SmolVLAModel::prefix_from_vision(const PrefixInputs& in, const Tensor& img_all, Tensor* embs) {
  int64_t T = 0;
  const Tensor img = kept_visual_tokens(img_all, in.n_cams, &T);
  Stage& s = prefix_stage(in.n_cams * T, static_cast<int64_t>(in.lang_ids.size()));
  return run_prefix(*s.exec, in, img, T, embs);
}

PrefixState SmolVLAModel::run_prefix(Executor& ex, const PrefixInputs& in, const Tensor& img, int64_t T,
                                     Tensor* embs) {
  const int64_t n = in.n_cams, lt = static_cast<int64_t>(in.lang_ids.size());
  const int64_t P = n * T + lt + 1;
  VLART_CHECK(cfg_.prefix_length <= P, UnsupportedError, "smolvla: prefix_length ", cfg_.prefix_length,
              " > prefix tokens ", P, " (zero-padding the prefix is not supported)");
  VLART_CHECK(in.lang_mask.size() == in.lang_ids.size(), InvalidArgument, "smolvla: ", in.lang_ids.size(),
              " token ids but ", in.lang_mask.size(), " mask entries");
  PrefixState ps;
  ps.len = P;
  ps.pad.assign(static_cast<size_t>(P), 1);
  for (int64_t j = 0; j < lt; ++j) ps.pad[static_cast<size_t>(n * T + j)] = in.lang_mask[static_cast<size_t>(j)];
  std::vector<uint8_t> starts(static_cast<size_t>(P), 0);
  starts[static_cast<size_t>(P - 1)] = 1;  // the state token starts its own attention block
  blocks::PrefixLayout lay = blocks::prefix_lm_layout(ps.pad, starts);
  ps.positions = std::move(lay.positions);
  ps.att2d = std::move(lay.att2d);
  fill(ex, "img", img.raw(), img.nbytes());
  const Tensor lang_emb = in.lang_emb.defined() ? in.lang_emb : lang_embedding(in.lang_ids);
  VLART_CHECK(lang_emb.numel() == lt * cfg_.text.hidden && lang_emb.dtype() == cdt_, InvalidArgument,
              "smolvla: language embeddings ", lang_emb.str(), " do not match ", lt, " tokens x ",
              cfg_.text.hidden);
  fill(ex, "lang_emb", lang_emb.raw(), lang_emb.nbytes());
  fill(ex, "state", in.state.data(), in.state.size() * sizeof(float));
  fill(ex, "pos", ps.positions.data(), ps.positions.size() * sizeof(int64_t));
  fill(ex, "mask", ps.att2d.data(), ps.att2d.size());
  ex.run();
  if (exec_opts_.profile) record_profile("prefix", ex);
  int o = 0;
  if (embs) *embs = ex.output(o).clone();
  ++o;
  const TextConfig& t = cfg_.text;
  for (int64_t i = 0; i < cfg_.num_vlm_layers; ++i) {
    ps.k.push_back(ex.output(o++).clone());
    ps.v.push_back(ex.output(o++).clone().reshape({1, P, t.kv_heads, t.head_dim}));
    if (cfg_.expert_layer_of(i) >= 0 && !cfg_.is_self_attn(i)) {
      ps.ck.push_back(ex.output(o++).clone());
      ps.cv.push_back(ex.output(o++).clone());
    } else {
      ps.ck.emplace_back();
      ps.cv.emplace_back();
    }
  }
  return ps;
}

void SmolVLAModel::bind_prefix(const PrefixState& p) { bind_prefix_to(*denoise_stage(p.len).exec, p); }

void SmolVLAModel::bind_prefix_to(Executor& ex, const PrefixState& p) {
  const int64_t C = cfg_.chunk_size, P = p.len;
  int64_t nvalid = 0;
  for (uint8_t b : p.pad) nvalid += b;
  int64_t* pos = ex.input("pos").data<int64_t>();
  int64_t* cpos = ex.input("cpos").data<int64_t>();
  uint8_t* ms = static_cast<uint8_t*>(ex.input("mask_self").raw());
  uint8_t* mc = static_cast<uint8_t*>(ex.input("mask_cross").raw());
  for (int64_t i = 0; i < C; ++i) {
    pos[i] = nvalid + i;  // suffix positions continue after the valid prefix tokens
    cpos[i] = i;          // cross-attention re-bases the query positions to 0
    for (int64_t j = 0; j < P; ++j) ms[i * (P + C) + j] = mc[i * P + j] = p.pad[static_cast<size_t>(j)];
    for (int64_t j = 0; j < C; ++j) ms[i * (P + C) + P + j] = j <= i;
  }
  for (int64_t i = 0; i < cfg_.num_vlm_layers; ++i) {
    if (cfg_.expert_layer_of(i) < 0) continue;
    const std::string si = std::to_string(i);
    const size_t u = static_cast<size_t>(i);
    if (cfg_.is_self_attn(i)) {
      fill(ex, "k" + si, p.k[u].raw(), p.k[u].nbytes());
      fill(ex, "v" + si, p.v[u].raw(), p.v[u].nbytes());
    } else {
      fill(ex, "ck" + si, p.ck[u].raw(), p.ck[u].nbytes());
      fill(ex, "cv" + si, p.cv[u].raw(), p.cv[u].nbytes());
    }
  }
}

std::vector<float> SmolVLAModel::step(int64_t prefix_len, const std::vector<float>& x_t, float t) {
  const int64_t C = cfg_.chunk_size, We = cfg_.expert_hidden();
  Executor& ex = *denoise_stage(prefix_len).exec;
  fill(ex, "x_t", x_t.data(), x_t.size() * sizeof(float));
  const std::vector<float> te = time_embedding(t, We, cfg_.min_period, cfg_.max_period);
  float* tp = ex.input("temb").data<float>();
  for (int64_t r = 0; r < C; ++r) std::memcpy(tp + r * We, te.data(), te.size() * sizeof(float));
  ex.run();
  if (exec_opts_.profile) record_profile("denoise", ex);
  return ex.output(0).to_float_vector();
}

std::vector<float> SmolVLAModel::velocity(const PrefixState& p, const std::vector<float>& x_t, float t) {
  bind_prefix(p);
  return step(p.len, x_t, t);
}

std::vector<float> SmolVLAModel::denoise(const PrefixState& p, const std::vector<float>& noise, int64_t steps,
                                         std::vector<std::vector<float>>* velocities) {
  VLART_CHECK(static_cast<int64_t>(noise.size()) == cfg_.chunk_size * cfg_.max_action_dim, InvalidArgument,
              "smolvla: noise has ", noise.size(), " values, expected ", cfg_.chunk_size, "x", cfg_.max_action_dim);
  std::vector<float> x = noise;
  bind_prefix(p);  // the prefix K/V, masks and positions are the same for every step
  euler_flow(x, FlowSchedule{1.0, 0.0, steps}, [&](const std::vector<float>& xt, float t, int64_t) {
    std::vector<float> v = step(p.len, xt, t);
    if (velocities) velocities->push_back(v);
    return v;
  });
  return x;
}

namespace {
// Mean over rows of cos(a_r, b_r) for the rows r where `use` is null or use[r] != 0.
double mean_row_cosine(const std::vector<float>& a, const std::vector<float>& b, int64_t rows, int64_t width,
                       const std::vector<uint8_t>* use) {
  double sum = 0;
  int64_t n = 0;
  for (int64_t r = 0; r < rows; ++r) {
    if (use && !(*use)[static_cast<size_t>(r)]) continue;
    double ab = 0, aa = 0, bb = 0;
    for (int64_t j = 0; j < width; ++j) {
      const double x = a[static_cast<size_t>(r * width + j)], y = b[static_cast<size_t>(r * width + j)];
      ab += x * y;
      aa += x * x;
      bb += y * y;
    }
    sum += aa > 0 && bb > 0 ? ab / std::sqrt(aa * bb) : 1.0;
    ++n;
  }
  return n > 0 ? sum / static_cast<double>(n) : 1.0;
}
}  // namespace

SmolVLAModel::LayerCosines SmolVLAModel::layer_cosines(const PrefixInputs& in, const std::vector<float>& noise,
                                                       int64_t steps) {
  VLART_CHECK(static_cast<int64_t>(noise.size()) == cfg_.chunk_size * cfg_.max_action_dim && steps > 0,
              InvalidArgument, "smolvla: layer_cosines needs ", cfg_.chunk_size, "x", cfg_.max_action_dim,
              " noise values and steps > 0, got ", noise.size(), " values, ", steps, " steps");
  LayerCosines out;
  const int64_t L = cfg_.num_vlm_layers, D = cfg_.text.hidden;
  int64_t T = 0;
  const Tensor img = kept_visual_tokens(vision(in.images, in.n_cams), in.n_cams, &T);
  Graph pg;
  build_prefix(pg, in.n_cams * T, static_cast<int64_t>(in.lang_ids.size()), true);
  Executor pex(pg, placement_, exec_opts_);
  Tensor embs;
  PrefixState ps = run_prefix(pex, in, img, T, &embs);
  const int64_t P = ps.len;
  const int64_t first = pex.num_outputs() - L;  // the probe outputs come last
  std::vector<float> prev = embs.to_float_vector();
  for (int64_t i = 0; i < L; ++i) {
    std::vector<float> cur = pex.output(static_cast<int>(first + i)).to_float_vector();
    out.vlm.push_back(mean_row_cosine(prev, cur, P, D, &ps.pad));
    prev = std::move(cur);
  }
  // Expert: the denoising loop of denoise() on a probe graph, averaging over steps.
  Graph dg;
  build_denoise(dg, P, true);
  Executor dex(dg, placement_, exec_opts_);
  bind_prefix_to(dex, ps);
  std::vector<int64_t> order;  // expert layers in the order the action tokens run through them
  for (int64_t i = 0; i < L; ++i)
    if (cfg_.expert_layer_of(i) >= 0) order.push_back(cfg_.expert_layer_of(i));
  out.expert.assign(static_cast<size_t>(cfg_.num_expert()), 0.0);
  const int64_t C = cfg_.chunk_size, We = cfg_.expert_hidden();
  std::vector<float> x = noise;
  // The same sampler as denoise(), so the probe sees the states inference sees.
  euler_flow(x, FlowSchedule{1.0, 0.0, steps}, [&](const std::vector<float>& xt, float t, int64_t) {
    fill(dex, "x_t", xt.data(), xt.size() * sizeof(float));
    const std::vector<float> te = time_embedding(t, We, cfg_.min_period, cfg_.max_period);
    float* tp = dex.input("temb").data<float>();
    for (int64_t r = 0; r < C; ++r) std::memcpy(tp + r * We, te.data(), te.size() * sizeof(float));
    dex.run();
    const std::vector<float> v = dex.output(0).to_float_vector();
    std::vector<float> h = dex.output(1).to_float_vector();
    for (size_t j = 0; j < order.size(); ++j) {
      std::vector<float> h2 = dex.output(static_cast<int>(2 + j)).to_float_vector();
      out.expert[static_cast<size_t>(order[j])] += mean_row_cosine(h, h2, C, We, nullptr) / static_cast<double>(steps);
      h = std::move(h2);
    }
    return v;
  });
  return out;
}

}  // namespace vlart::smolvla
