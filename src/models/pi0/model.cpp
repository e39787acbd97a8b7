#include "models/pi0/model.h"

#include <cmath>
#include <cstring>

#include "models/blocks/masks.h"
#include "models/blocks/vit.h"
#include "models/flow_matching.h"
#include "models/graph_weights.h"
#include "vlart/error.h"

namespace vlart::pi0 {

namespace {
// Tensor names under the checkpoint's "model." prefix (PolicyWeights adds it).
const std::string kVis = "paligemma_with_expert.paligemma.model.vision_tower.vision_model.";
const std::string kProj = "paligemma_with_expert.paligemma.model.multi_modal_projector.linear.";
const std::string kLm = "paligemma_with_expert.paligemma.model.language_model.";
const std::string kExp = "paligemma_with_expert.gemma_expert.model.";

void fill(Executor& ex, const std::string& name, const void* src, size_t bytes) {
  fill_input(ex, name, src, bytes, "pi0");
}
}  // namespace

Pi0Model::Pi0Model(Pi0Config cfg, PolicyWeights w, DType compute, std::vector<Backend*> placement,
                   std::string backend_names)
    : cfg_(std::move(cfg)),
      weights_(std::move(w)),
      cdt_(compute),
      placement_(std::move(placement)),
      backend_names_(std::move(backend_names)) {
  VLART_CHECK(cdt_ == DType::kF32 || cdt_ == DType::kBF16, UnsupportedError, "pi0: compute dtype ",
              dtype_name(cdt_), " is not supported (f32 or bf16)");
  VLART_CHECK(!placement_.empty(), InvalidArgument, "pi0: no backends given");
}
Pi0Model::~Pi0Model() = default;

ValueId Pi0Model::w(Graph& g, const std::string& name, const Shape& shape, std::optional<DType> dt) const {
  return graph_weight(g, weights_, name, shape, dt.value_or(cdt_));
}
ValueId Pi0Model::wq(Graph& g, const std::string& name, const Shape& shape, std::optional<DType> dt) const {
  return graph_linear_weight(g, weights_, name, shape, dt.value_or(cdt_), dequantize_);
}
blocks::WeightFn Pi0Model::weight_fn(Graph& g) const {
  return [this, &g](const std::string& name, const Shape& shape, bool linear) {
    return linear ? wq(g, name, shape) : w(g, name, shape);
  };
}
blocks::DecoderSpec Pi0Model::spec(const GemmaDims& d, int64_t layer, bool adaptive) const {
  blocks::DecoderSpec s;
  s.hidden = d.width;
  s.heads = d.layer_heads.at(static_cast<size_t>(layer));
  s.kv_heads = d.kv_heads;
  s.head_dim = d.head_dim;
  s.mlp = d.layer_mlp.at(static_cast<size_t>(layer));
  s.rms_eps = d.rms_eps;
  s.gemma_norm = true;
  s.gelu_mlp = true;
  s.rope_theta = d.rope_theta;
  s.ada_cond_dim = adaptive ? cfg_.expert.width : 0;
  return s;
}
void Pi0Model::set_linear_observer(std::function<void(const std::string&, const Tensor&)> fn) {
  exec_opts_.linear_input_observer = std::move(fn);
  vision_.clear();
  embed_.clear();
  prefix_.clear();
  denoise_.clear();
}

void Pi0Model::set_profiling(bool on) {
  VLART_CHECK(vision_.empty() && prefix_.empty() && denoise_.empty(), InvalidArgument,
              "pi0: set_profiling must be called before the first inference");
  exec_opts_.profile = on;
}

template <class Build>
std::unique_ptr<Stage> Pi0Model::make_stage(Build&& build) {
  auto s = std::make_unique<Stage>();
  build(s->graph);
  s->exec = Executor::consume(s->graph, placement_, exec_opts_);
  s->graph = Graph();
  weights_.release_resident_pages();
  return s;
}

void Pi0Model::build_vision(Graph& g, int64_t n) const {
  const SiglipDims& v = cfg_.vision;
  const int64_t S = v.image_size, L = v.tokens(), C = v.hidden;
  ValueId x = g.input("pixels", {n, 3, S, S}, DType::kF32);
  if (cdt_ != DType::kF32) x = g.cast(x, cdt_);
  x = g.conv2d(x, w(g, kVis + "embeddings.patch_embedding.weight", {C, 3, v.patch, v.patch}),
               w(g, kVis + "embeddings.patch_embedding.bias", {C}), static_cast<int>(v.patch), 0);
  x = g.permute(g.reshape(x, {n, C, L}), {0, 2, 1});
  x = g.add(x, w(g, kVis + "embeddings.position_embedding.weight", {L, C}));
  blocks::VitSpec vs;
  vs.hidden = C;
  vs.heads = v.heads;
  vs.mlp = v.mlp;
  vs.ln_eps = v.ln_eps;
  vs.gelu_tanh = true;  // SigLIP's gelu_pytorch_tanh
  const blocks::WeightFn wf = weight_fn(g);
  for (int64_t i = 0; i < v.layers; ++i)
    x = blocks::vit_layer(g, x, vs, kVis + "encoder.layers." + std::to_string(i) + ".", wf).x;
  x = g.layer_norm(x, w(g, kVis + "post_layernorm.weight", {C}), w(g, kVis + "post_layernorm.bias", {C}), v.ln_eps);
  // transformers 5's PaliGemma get_image_features: the projector output, not rescaled.
  g.mark_output(g.linear(x, wq(g, kProj + "weight", {cfg_.vlm.width, C}), w(g, kProj + "bias", {cfg_.vlm.width})));
}

ValueId Pi0Model::embed_ids(Graph& g, ValueId ids) const {
  // GemmaTextScaledWordEmbedding: lookup * sqrt(width), the scale a f32 scalar.
  const float sq = static_cast<float>(std::sqrt(static_cast<double>(cfg_.vlm.width)));
  const std::string table = cfg_.embed_name.substr(std::string(kPrefix).size());
  // A 16-bit table stays as stored and only the looked-up rows are widened (exact), instead of a
  // converted copy of the whole vocabulary (2 GiB at full size in f32 compute).
  const DType stored = weights_.info(table).dtype;
  const bool narrow = cdt_ == DType::kF32 && (stored == DType::kBF16 || stored == DType::kF16);
  ValueId e = g.embedding(w(g, table, {cfg_.vocab, cfg_.vlm.width}, narrow ? stored : cdt_), ids);
  if (narrow) e = g.cast(e, cdt_);
  return g.scale(e, sq);
}

void Pi0Model::build_embed(Graph& g, int64_t lt) const { g.mark_output(embed_ids(g, g.input("lang", {1, lt}, DType::kI64))); }

ValueId Pi0Model::decode_weight(Graph& g, const std::string& name, const Shape& shape) {
  if (!decode_int8_ || weights_.is_quantized(name) || dequantize_) return wq(g, name, shape);
  ValueId id = g.find(name);
  if (id != kNoValue) return id;
  std::shared_ptr<const QuantWeight>& q = decode_q_[name];
  if (!q) {
    Tensor t = weights_.get(name, shape);
    if (t.dtype() != DType::kF32) t = t.to(DType::kF32);
    q = std::make_shared<const QuantWeight>(make_int8_weight(t.data<float>(), shape[0], shape[1]));
  }
  return g.quant_weight(name, q);
}

void Pi0Model::build_decode(Graph& g, int64_t cap) {
  // One response token through the language model against the KV cache, then the final norm, the
  // tied head and its argmax.
  const GemmaDims& d = cfg_.vlm;
  ValueId x = embed_ids(g, g.input("tok", {1, 1}, DType::kI64));
  ValueId pos = g.input("pos", {1, 1}, DType::kI64);
  blocks::SelfAttention a;
  a.mask = g.input("mask", {1, 1, cap}, DType::kBool);
  a.write_pos = g.input("write_pos", {1}, DType::kI32);
  a.kv_len = g.input("kv_len", {1}, DType::kI32);
  const blocks::WeightFn wf = [this, &g](const std::string& name, const Shape& shape, bool linear) {
    return linear ? decode_weight(g, name, shape) : w(g, name, shape);
  };
  for (int64_t i = 0; i < d.depth; ++i) {
    a.k_cache = g.input("k" + std::to_string(i), {1, cap, d.kv_heads, d.head_dim}, cdt_);
    a.v_cache = g.input("v" + std::to_string(i), {1, cap, d.kv_heads, d.head_dim}, cdt_);
    x = blocks::decoder_layer(g, x, pos, spec(d, i, false), kLm + "layers." + std::to_string(i) + ".", wf, a).x;
  }
  x = blocks::norm(g, x, kLm + "norm.weight", spec(d, 0, false), wf);
  const std::string table = cfg_.embed_name.substr(std::string(kPrefix).size());
  ValueId logits = g.linear(x, decode_weight(g, table, {cfg_.vocab, d.width}));
  if (cdt_ != DType::kF32) logits = g.cast(logits, DType::kF32);
  g.mark_output(g.argmax(logits), "next");
}

void Pi0Model::build_prefix(Graph& g, int64_t nt, int64_t lt) const {
  const GemmaDims& d = cfg_.vlm;
  const int64_t P = nt + lt;
  ValueId img = g.input("img", {1, nt, d.width}, cdt_);
  ValueId lang = g.input("lang_emb", {1, lt, d.width}, cdt_);
  ValueId pos = g.input("pos", {1, P}, DType::kI64);
  ValueId mask = g.input("mask", {1, P, P}, DType::kBool);
  ValueId x = g.concat({img, lang}, 1);
  const blocks::WeightFn wf = weight_fn(g);
  for (int64_t i = 0; i < d.depth; ++i) {
    const blocks::DecoderSpec s = spec(d, i, false);
    const std::string p = kLm + "layers." + std::to_string(i) + ".";
    const ValueId h = blocks::norm(g, x, p + "input_layernorm.weight", s, wf);
    const ValueId q = blocks::project_q(g, h, pos, s, p, wf);
    const blocks::KV kv = blocks::project_kv(g, h, pos, s, p, wf);
    g.mark_output(kv.k, "k" + std::to_string(i));
    g.mark_output(kv.v, "v" + std::to_string(i));
    if (i + 1 == d.depth) break;  // the last layer's output is never read: only its K/V are
    const ValueId a = g.attention(q, kv.k, kv.v, mask, false, s.attn_scale, s.precision);
    x = blocks::mlp_residual(g, blocks::attention_residual(g, x, a, s, p, wf), s, p, wf);
  }
}

void Pi0Model::build_denoise(Graph& g, int64_t P) const {
  const GemmaDims& e = cfg_.expert;
  const int64_t C = cfg_.chunk_size, A = cfg_.max_action_dim, We = e.width, S = suffix_len();
  const DType f32 = DType::kF32;
  ValueId xt = g.input("x_t", {1, C, A}, f32);
  ValueId temb = g.input("temb", {1, We}, f32);
  ValueId pos = g.input("pos", {1, S}, DType::kI64);
  ValueId mask = g.input("mask", {1, S, P + S}, DType::kBool);
  ValueId a = g.linear(xt, wq(g, "action_in_proj.weight", {We, A}, f32), w(g, "action_in_proj.bias", {We}, f32));
  ValueId x, cond = kNoValue;
  if (cfg_.pi05) {
    // pi0.5: the time alone conditions every adaRMS norm; the action tokens are the suffix.
    ValueId c = g.linear(temb, wq(g, "time_mlp_in.weight", {We, We}, f32), w(g, "time_mlp_in.bias", {We}, f32),
                         Activation::kSilu);
    cond = g.linear(c, wq(g, "time_mlp_out.weight", {We, We}, f32), w(g, "time_mlp_out.bias", {We}, f32),
                    Activation::kSilu);
    if (cdt_ != f32) cond = g.cast(cond, cdt_);
    x = a;
  } else {
    // pi0: [state token; MLP(concat(action, time))].
    ValueId st = g.input("state", {1, 1, cfg_.max_state_dim}, f32);
    ValueId se = g.linear(st, wq(g, "state_proj.weight", {We, cfg_.max_state_dim}, f32),
                          w(g, "state_proj.bias", {We}, f32));
    ValueId te = g.expand(g.reshape(temb, {1, 1, We}), {1, C, We});
    ValueId at = g.linear(g.concat({a, te}, 2), wq(g, "action_time_mlp_in.weight", {We, 2 * We}, f32),
                          w(g, "action_time_mlp_in.bias", {We}, f32), Activation::kSilu);
    at = g.linear(at, wq(g, "action_time_mlp_out.weight", {We, We}, f32), w(g, "action_time_mlp_out.bias", {We}, f32));
    x = g.concat({se, at}, 1);
  }
  if (cdt_ != f32) x = g.cast(x, cdt_);
  const blocks::WeightFn wf = weight_fn(g);
  for (int64_t i = 0; i < e.depth; ++i) {
    const blocks::DecoderSpec s = spec(e, i, cfg_.pi05);
    const std::string p = kExp + "layers." + std::to_string(i) + ".";
    const std::string si = std::to_string(i);
    const blocks::NormOut n = blocks::ada_rms_norm(g, x, cond, p + "input_layernorm", s, wf);
    const ValueId q = blocks::project_q(g, n.y, pos, s, p, wf);
    const blocks::KV kv = blocks::project_kv(g, n.y, pos, s, p, wf);
    ValueId kc = g.input("k" + si, {1, P, e.kv_heads, e.head_dim}, cdt_);
    ValueId vc = g.input("v" + si, {1, P, e.kv_heads, e.head_dim}, cdt_);
    const ValueId att = g.attention(q, g.concat({kc, kv.k}, 1), g.concat({vc, kv.v}, 1), mask, false, s.attn_scale,
                                    s.precision);
    x = blocks::mlp_residual(g, blocks::attention_residual(g, x, att, s, p, wf, n.gate), s, p, wf, cond);
  }
  x = blocks::ada_rms_norm(g, x, cond, kExp + "norm", spec(e, 0, cfg_.pi05), wf).y;
  if (!cfg_.pi05) x = g.slice(x, 1, 1, S);  // the action tokens
  if (cdt_ != f32) x = g.cast(x, f32);
  g.mark_output(g.linear(x, wq(g, "action_out_proj.weight", {A, We}, f32), w(g, "action_out_proj.bias", {A}, f32)));
}

Tensor Pi0Model::vision(const std::vector<float>& images, int64_t n) {
  const int64_t S = cfg_.vision.image_size;
  VLART_CHECK(n > 0 && static_cast<int64_t>(images.size()) == n * 3 * S * S, InvalidArgument, "pi0: ", images.size(),
              " pixel values for ", n, " frames of 3x", S, "x", S);
  Stage& st = vision_.get(n, [&] { return make_stage([&](Graph& g) { build_vision(g, n); }); });
  fill(*st.exec, "pixels", images.data(), images.size() * sizeof(float));
  st.exec->run();
  if (exec_opts_.profile) profile_.record("vision", *st.exec);
  return st.exec->output(0).clone();
}

Tensor Pi0Model::lang_embedding(const std::vector<int64_t>& ids) {
  VLART_CHECK(!ids.empty(), InvalidArgument, "pi0: empty prompt (no token ids)");
  for (size_t i = 0; i < ids.size(); ++i)
    VLART_CHECK(ids[i] >= 0 && ids[i] < cfg_.vocab, InvalidArgument, "pi0: token id ", ids[i], " at ", i,
                " is outside the vocabulary [0, ", cfg_.vocab, ")");
  const int64_t lt = static_cast<int64_t>(ids.size());
  Stage& st = embed_.get(lt, [&] { return make_stage([&](Graph& g) { build_embed(g, lt); }); });
  fill(*st.exec, "lang", ids.data(), ids.size() * sizeof(int64_t));
  st.exec->run();
  if (exec_opts_.profile) profile_.record("embed", *st.exec);
  return st.exec->output(0).clone();
}

PrefixState Pi0Model::prefix(const Tensor& img, const Tensor& lang_emb, const std::vector<uint8_t>& lang_mask,
                             const std::vector<uint8_t>* lang_block_start) {
  const int64_t D = cfg_.vlm.width;
  VLART_CHECK(img.dim(img.rank() - 1) == D && img.dtype() == cdt_ && lang_emb.dtype() == cdt_ &&
                  lang_emb.numel() == static_cast<int64_t>(lang_mask.size()) * D,
              InvalidArgument, "pi0: prefix inputs ", img.str(), " / ", lang_emb.str(), " do not match width ", D,
              " and ", lang_mask.size(), " prompt tokens");
  const int64_t nt = img.numel() / D, lt = static_cast<int64_t>(lang_mask.size()), P = nt + lt;
  PrefixState ps;
  ps.len = P;
  ps.pad.assign(static_cast<size_t>(P), 1);
  for (int64_t j = 0; j < lt; ++j) ps.pad[static_cast<size_t>(nt + j)] = lang_mask[static_cast<size_t>(j)];
  // Images and prompt form one bidirectional block over the real tokens; positions skip padding.
  std::vector<uint8_t> starts(static_cast<size_t>(P), 0);
  if (lang_block_start) {
    VLART_CHECK(lang_block_start->size() == lang_mask.size(), InvalidArgument, "pi0: ", lang_block_start->size(),
                " block flags for ", lang_mask.size(), " prompt tokens");
    std::copy(lang_block_start->begin(), lang_block_start->end(), starts.begin() + nt);
  }
  const blocks::PrefixLayout lay = blocks::prefix_lm_layout(ps.pad, starts);
  for (uint8_t b : ps.pad) ps.valid += b;
  Stage& st = prefix_.get({nt, lt}, [&] { return make_stage([&](Graph& g) { build_prefix(g, nt, lt); }); });
  Executor& ex = *st.exec;
  fill(ex, "img", img.raw(), img.nbytes());
  fill(ex, "lang_emb", lang_emb.raw(), lang_emb.nbytes());
  fill(ex, "pos", lay.positions.data(), lay.positions.size() * sizeof(int64_t));
  fill(ex, "mask", lay.att2d.data(), lay.att2d.size());
  ex.run();
  if (exec_opts_.profile) profile_.record("prefix", ex);
  for (int64_t i = 0; i < cfg_.vlm.depth; ++i) {
    ps.k.push_back(ex.output("k" + std::to_string(i)).clone());
    ps.v.push_back(ex.output("v" + std::to_string(i)).clone());
  }
  return ps;
}

KVCache& Pi0Model::cache_with_prefix(const PrefixState& p, int64_t cap) {
  const GemmaDims& g = cfg_.vlm;
  VLART_CHECK(static_cast<int64_t>(p.k.size()) == g.depth && p.len > 0 && cap >= p.len, InvalidArgument,
              "pi0: a response needs a prefix's K/V of every language-model layer");
  if (!kv_ || kv_->capacity() != cap)
    kv_ = std::make_unique<KVCache>(g.depth, 1, cap, g.kv_heads, g.head_dim, cdt_);
  KVCache& kv = *kv_;
  kv.reset();
  for (int64_t i = 0; i < g.depth; ++i) {
    const size_t u = static_cast<size_t>(i);
    VLART_CHECK(p.k[u].nbytes() * static_cast<size_t>(cap) == kv.k(i).nbytes() * static_cast<size_t>(p.len) &&
                    p.v[u].nbytes() == p.k[u].nbytes(),
                InvalidArgument, "pi0: prefix K/V ", p.k[u].str(), " do not match the response cache");
    // Rows past the prefix are zero until written: rows nothing attends to must still be finite.
    const size_t rest = kv.k(i).nbytes() - p.k[u].nbytes();
    std::memcpy(kv.k(i).raw(), p.k[u].raw(), p.k[u].nbytes());
    std::memcpy(kv.v(i).raw(), p.v[u].raw(), p.v[u].nbytes());
    std::memset(static_cast<char*>(kv.k(i).raw()) + p.k[u].nbytes(), 0, rest);
    std::memset(static_cast<char*>(kv.v(i).raw()) + p.v[u].nbytes(), 0, rest);
  }
  kv.advance(p.len);
  return kv;
}

void Pi0Model::extend(PrefixState& p, int64_t cap, const std::vector<uint8_t>& valid) {
  // The action expert reads prefix + response: every row of the cache, the unfed ones masked.
  const size_t P = static_cast<size_t>(p.len);
  p.len = cap;
  p.pad.resize(static_cast<size_t>(cap), 0);
  for (size_t s = 0; s < valid.size(); ++s) {
    p.pad[P + s] = valid[s];
    p.valid += valid[s];
  }
  for (int64_t i = 0; i < cfg_.vlm.depth; ++i) {
    p.k[static_cast<size_t>(i)] = kv_->k(i);
    p.v[static_cast<size_t>(i)] = kv_->v(i);
  }
}

DecodeResult Pi0Model::decode(PrefixState& p, const DecodeSpec& d, ResponseKV* kept) {
  VLART_CHECK(d.max_len > 0 && d.bos >= 0 && d.bos < cfg_.vocab && d.eos >= 0 && d.eos < cfg_.vocab && d.pad >= 0 &&
                  d.pad < cfg_.vocab,
              InvalidArgument, "pi0: decode needs max_len > 0 and bos / eos / pad ids in [0, ", cfg_.vocab,
              "), got max_len ", d.max_len, ", bos ", d.bos, ", eos ", d.eos, ", pad ", d.pad);
  const int64_t P = p.len, cap = P + d.max_len;
  Stage& st = decode_.get(cap, [&] { return make_stage([&](Graph& gr) { build_decode(gr, cap); }); });
  Executor& ex = *st.exec;
  KVCache& kv = cache_with_prefix(p, cap);
  kv.bind(ex);
  uint8_t* mask = static_cast<uint8_t*>(ex.input("mask").raw());
  std::fill(mask, mask + cap, uint8_t{0});
  std::copy(p.pad.begin(), p.pad.end(), mask);
  DecodeResult r;
  int64_t pos = p.valid - 1;
  bool ended = false;  // an eos / pad was fed
  int32_t next = d.bos;
  for (int64_t s = 0; s < d.max_len; ++s) {
    const bool real = !ended;
    if (!real && d.stop_at_eos) break;
    const int32_t tok = real ? next : d.pad;
    const int64_t row = P + s;
    if (real) ++pos;
    // A masked pad attends to itself only (its output is never used), a real token to every real
    // key so far and itself.
    if (!real) std::fill(mask, mask + row, uint8_t{0});
    mask[row] = 1;
    const int64_t tok64 = tok;
    fill(ex, "tok", &tok64, sizeof tok64);
    fill(ex, "pos", &pos, sizeof pos);
    kv.fill_step(ex, 1);
    ex.run();
    kv.advance(1);
    if (exec_opts_.profile) profile_.record("decode", ex);
    r.tokens.push_back(tok);
    r.valid.push_back(real ? 1 : 0);
    ++r.steps;
    if (!real) mask[row] = 0;
    ended = ended || tok == d.eos || tok == d.pad;
    next = ex.output("next").data<int32_t>()[0];
  }
  if (kept) {
    kept->valid = r.valid;
    kept->k.clear();
    kept->v.clear();
    const int64_t n = r.steps, kvh = cfg_.vlm.kv_heads, hd = cfg_.vlm.head_dim;
    for (int64_t i = 0; i < cfg_.vlm.depth; ++i)
      for (int w = 0; w < 2; ++w) {
        const Tensor& src = w == 0 ? kv.k(i) : kv.v(i);
        Tensor t = Tensor::empty({n, kvh, hd}, cdt_);
        std::memcpy(t.raw(), static_cast<const char*>(src.raw()) + static_cast<size_t>(P) * (src.nbytes() / static_cast<size_t>(cap)),
                    t.nbytes());
        (w == 0 ? kept->k : kept->v).push_back(std::move(t));
      }
  }
  extend(p, cap, r.valid);
  return r;
}

void Pi0Model::attach_response(PrefixState& p, const ResponseKV& r, int64_t max_len) {
  const int64_t n = static_cast<int64_t>(r.valid.size()), P = p.len, cap = P + max_len;
  VLART_CHECK(n <= max_len && static_cast<int64_t>(r.k.size()) == cfg_.vlm.depth &&
                  static_cast<int64_t>(r.v.size()) == cfg_.vlm.depth,
              InvalidArgument, "pi0: a kept response of ", n, " tokens does not fit ", max_len, " rows");
  KVCache& kv = cache_with_prefix(p, cap);
  for (int64_t i = 0; i < cfg_.vlm.depth; ++i) {
    const size_t u = static_cast<size_t>(i);
    const size_t row = kv.k(i).nbytes() / static_cast<size_t>(cap);
    VLART_CHECK(r.k[u].nbytes() == static_cast<size_t>(n) * row && r.v[u].nbytes() == r.k[u].nbytes(),
                InvalidArgument, "pi0: kept response K/V ", r.k[u].str(), " do not match the cache");
    std::memcpy(static_cast<char*>(kv.k(i).raw()) + static_cast<size_t>(P) * row, r.k[u].raw(), r.k[u].nbytes());
    std::memcpy(static_cast<char*>(kv.v(i).raw()) + static_cast<size_t>(P) * row, r.v[u].raw(), r.v[u].nbytes());
  }
  kv.advance(n);
  extend(p, cap, r.valid);
}

std::vector<float> Pi0Model::denoise(const PrefixState& p, const std::vector<float>& state,
                                     const std::vector<float>& noise, int64_t steps,
                                     std::vector<std::vector<float>>* velocities) {
  const int64_t C = cfg_.chunk_size, A = cfg_.max_action_dim, S = suffix_len(), P = p.len, We = cfg_.expert.width;
  VLART_CHECK(static_cast<int64_t>(noise.size()) == C * A, InvalidArgument, "pi0: noise has ", noise.size(),
              " values, expected ", C, "x", A);
  VLART_CHECK(steps > 0, InvalidArgument, "pi0: flow steps must be > 0, got ", steps);
  Stage& st = denoise_.get(P, [&] { return make_stage([&](Graph& g) { build_denoise(g, P); }); });
  Executor& ex = *st.exec;
  // Suffix masks (LeRobot's make_att_2d_masks): every suffix token sees the real prefix tokens;
  // pi0's state token starts block 1 (sees itself), the action tokens block 2 (see the state and
  // each other); pi0.5's action tokens are one block. Positions continue after the real prefix.
  int64_t* pos = ex.input("pos").data<int64_t>();
  uint8_t* m = static_cast<uint8_t*>(ex.input("mask").raw());
  const int64_t first_action = cfg_.pi05 ? 0 : 1;
  for (int64_t i = 0; i < S; ++i) {
    pos[i] = p.valid + i;
    for (int64_t j = 0; j < P; ++j) m[i * (P + S) + j] = p.pad[static_cast<size_t>(j)];
    for (int64_t j = 0; j < S; ++j) {
      const int64_t bi = i < first_action ? 0 : 1, bj = j < first_action ? 0 : 1;
      m[i * (P + S) + P + j] = bj <= bi;
    }
  }
  for (int64_t i = 0; i < cfg_.expert.depth; ++i) {
    const size_t u = static_cast<size_t>(i);
    fill(ex, "k" + std::to_string(i), p.k[u].raw(), p.k[u].nbytes());
    fill(ex, "v" + std::to_string(i), p.v[u].raw(), p.v[u].nbytes());
  }
  if (!cfg_.pi05) {
    VLART_CHECK(static_cast<int64_t>(state.size()) == cfg_.max_state_dim, InvalidArgument, "pi0: state has ",
                state.size(), " values, expected ", cfg_.max_state_dim, " (padded)");
    fill(ex, "state", state.data(), state.size() * sizeof(float));
  }
  std::vector<float> x = noise;
  euler_flow(x, FlowSchedule{1.0, 0.0, steps, cfg_.opentau}, [&](const std::vector<float>& xt, float t, int64_t) {
    fill(ex, "x_t", xt.data(), xt.size() * sizeof(float));
    const std::vector<float> te = time_embedding(t, We, cfg_.min_period, cfg_.max_period);
    fill(ex, "temb", te.data(), te.size() * sizeof(float));
    ex.run();
    if (exec_opts_.profile) profile_.record("denoise", ex);
    std::vector<float> v = ex.output(0).to_float_vector();
    if (velocities) velocities->push_back(v);
    return v;
  });
  return x;
}

}  // namespace vlart::pi0
