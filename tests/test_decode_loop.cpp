// Autoregressive decode with a growing KV cache: a small Llama-style decoder built from the shared
// blocks (models/blocks/decoder.h), prefilled once, then 32 greedy steps through ONE decode graph
// (KVWrite at a runtime position, attention over a runtime valid length, caller-owned caches),
// against a naive full recompute (a fresh causal graph over the whole sequence at every step).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <memory>
#include <vector>

#include "core/alloc_guard.h"
#include "core/executor.h"
#include "models/blocks/decoder.h"
#include "models/kv_cache.h"
#include "op_harness.h"
#include "vlart/error.h"

using namespace vlart;

namespace {

constexpr int64_t kVocab = 61, kD = 32, kLayers = 2, kHeads = 4, kKv = 2, kHd = 8, kMlp = 48;

struct TinyDecoder {
  std::map<std::string, Tensor> w;
  blocks::DecoderSpec spec;

  int64_t cond_dim = 0;  // > 0: adaptive RMSNorm (pi0.5 expert style) conditioned on input "cond"

  explicit TinyDecoder(bool qkv_bias, bool gemma, int64_t ada_cond = 0) : cond_dim(ada_cond) {
    spec.hidden = kD;
    spec.heads = kHeads;
    spec.kv_heads = kKv;
    spec.head_dim = kHd;
    spec.mlp = kMlp;
    spec.rms_eps = 1e-6f;
    spec.rope_theta = 10000.f;
    spec.qkv_bias = qkv_bias;
    spec.gemma_norm = gemma;
    spec.gelu_mlp = gemma;
    uint32_t seed = 1000;
    auto rnd = [&](const std::string& n, const Shape& s, float lo, float hi) {
      w[n] = vlart::testing::random_tensor(s, DType::kF32, seed++, lo, hi);
    };
    const float sc = 1.f / std::sqrt(static_cast<float>(kD));
    spec.ada_cond_dim = ada_cond;
    rnd("embed_tokens.weight", {kVocab, kD}, -1.f, 1.f);
    for (int64_t i = 0; i < kLayers; ++i) {
      const std::string p = "layers." + std::to_string(i) + ".";
      rnd(p + "input_layernorm.weight", {kD}, 0.5f, 1.5f);
      rnd(p + "post_attention_layernorm.weight", {kD}, 0.5f, 1.5f);
      for (const char* n : {"input_layernorm", "post_attention_layernorm"})
        if (ada_cond > 0) {
          rnd(p + n + ".dense.weight", {3 * kD, ada_cond}, -0.3f, 0.3f);
          rnd(p + n + ".dense.bias", {3 * kD}, -0.3f, 0.3f);
        }
      rnd(p + "self_attn.q_proj.weight", {kHeads * kHd, kD}, -sc, sc);
      rnd(p + "self_attn.k_proj.weight", {kKv * kHd, kD}, -sc, sc);
      rnd(p + "self_attn.v_proj.weight", {kKv * kHd, kD}, -sc, sc);
      rnd(p + "self_attn.o_proj.weight", {kD, kHeads * kHd}, -sc, sc);
      if (qkv_bias) {
        rnd(p + "self_attn.q_proj.bias", {kHeads * kHd}, -0.1f, 0.1f);
        rnd(p + "self_attn.k_proj.bias", {kKv * kHd}, -0.1f, 0.1f);
        rnd(p + "self_attn.v_proj.bias", {kKv * kHd}, -0.1f, 0.1f);
      }
      rnd(p + "mlp.gate_proj.weight", {kMlp, kD}, -sc, sc);
      rnd(p + "mlp.up_proj.weight", {kMlp, kD}, -sc, sc);
      rnd(p + "mlp.down_proj.weight", {kD, kMlp}, -sc, sc);
    }
    rnd("norm.weight", {kD}, 0.5f, 1.5f);
    rnd("lm_head.weight", {kVocab, kD}, -3 * sc, 3 * sc);
  }

  // B sequences of L new tokens. cached: the K/V of these tokens go into caches k<i>/v<i>
  // [B, lmax, kv, hd] at write_pos and attention reads kv_len rows of them; else attention runs
  // causally over these L tokens alone. Outputs "logits" (the last position's, [B, 1, V]) and
  // "next" (its argmax, [B, 1, 1] i32).
  Graph build(int64_t B, int64_t L, int64_t lmax, bool cached) const {
    Graph g;
    const blocks::WeightFn wf = [this, &g](const std::string& name, const Shape& shape, bool) {
      const ValueId id = g.find(name);
      if (id != kNoValue) return id;
      const Tensor& t = w.at(name);
      EXPECT_EQ(t.shape(), shape) << name;
      return g.weight(name, t);
    };
    const ValueId ids = g.input("ids", {B, L}, DType::kI32);
    const ValueId pos = g.input("pos", {B, L}, DType::kI32);
    blocks::SelfAttention att;
    att.causal = true;
    if (cond_dim > 0) att.cond = g.input("cond", {B, cond_dim}, DType::kF32);
    if (cached) {
      att.write_pos = g.input("write_pos", {B}, DType::kI32);
      att.kv_len = g.input("kv_len", {B}, DType::kI32);
    }
    ValueId x = g.embedding(wf("embed_tokens.weight", {kVocab, kD}, false), ids);
    for (int64_t i = 0; i < kLayers; ++i) {
      if (cached) {
        att.k_cache = g.input("k" + std::to_string(i), {B, lmax, kKv, kHd}, DType::kF32);
        att.v_cache = g.input("v" + std::to_string(i), {B, lmax, kKv, kHd}, DType::kF32);
      }
      x = blocks::decoder_layer(g, x, pos, spec, "layers." + std::to_string(i) + ".", wf, att).x;
    }
    x = blocks::norm(g, g.slice(x, 1, L - 1, L), "norm.weight", spec, wf);
    const ValueId logits = g.linear(x, wf("lm_head.weight", {kVocab, kD}, true));
    g.mark_output(logits, "logits");
    g.mark_output(g.argmax(logits), "next");
    return g;
  }
};

void fill_i32(Executor& ex, const std::string& name, const std::vector<int32_t>& v) {
  Tensor& t = ex.input(name);
  ASSERT_EQ(t.nbytes(), v.size() * sizeof(int32_t)) << name;
  std::memcpy(t.raw(), v.data(), t.nbytes());
}

// The adaptive-norm conditioning of sequence b (a fixed vector per sequence, as pi0.5's time embedding
// is fixed within one denoise step).
void fill_cond(Executor& ex, const TinyDecoder& m, int64_t B) {
  if (m.cond_dim == 0) return;
  float* c = static_cast<float*>(ex.input("cond").raw());
  for (int64_t b = 0; b < B; ++b)
    for (int64_t i = 0; i < m.cond_dim; ++i) c[b * m.cond_dim + i] = 0.5f * std::sin(static_cast<float>(7 * b + i));
}

struct Decoded {
  std::vector<std::vector<int32_t>> tokens;  // per sequence, generated
  std::vector<std::vector<float>> logits;    // per step, [B * V]
};

// Prefill the prompts (equal lengths), then `steps` greedy steps through one decode graph.
Decoded decode_cached(const TinyDecoder& m, const std::vector<std::vector<int32_t>>& prompts, int64_t steps,
                      Backend& cpu) {
  const int64_t B = static_cast<int64_t>(prompts.size()), P = static_cast<int64_t>(prompts[0].size());
  const int64_t lmax = P + steps + 3;
  // Caller-owned caches (models/kv_cache.h), NaN everywhere: a row read before it was written
  // poisons the result.
  KVCache cache(kLayers, B, lmax, kKv, kHd);
  for (int64_t i = 0; i < kLayers; ++i)
    for (Tensor* t : {&cache.k(i), &cache.v(i)})
      std::fill_n(static_cast<float*>(t->raw()), t->numel(), std::numeric_limits<float>::quiet_NaN());
  Graph pg = m.build(B, P, lmax, true);
  Executor prefill(pg, {&cpu});
  cache.bind(prefill);
  std::vector<int32_t> ids, pos;
  for (const auto& p : prompts) ids.insert(ids.end(), p.begin(), p.end());
  for (int64_t b = 0; b < B; ++b)
    for (int64_t i = 0; i < P; ++i) pos.push_back(static_cast<int32_t>(i));
  fill_i32(prefill, "ids", ids);
  fill_i32(prefill, "pos", pos);
  fill_cond(prefill, m, B);
  cache.fill_step(prefill, P);
  prefill.run();
  cache.advance(P);

  ExecutorOptions eo;
  eo.forbid_allocations_in_run = alloc_guard::hook_installed();
  Graph dg = m.build(B, 1, lmax, true);
  Executor step(dg, {&cpu}, eo);
  cache.bind(step);
  fill_cond(step, m, B);
  Decoded out;
  out.tokens.resize(static_cast<size_t>(B));
  const Executor* last = &prefill;
  for (int64_t t = 0; t <= steps; ++t) {
    const int32_t* next = static_cast<const int32_t*>(last->output("next").raw());
    std::vector<int32_t> step_ids;
    for (int64_t b = 0; b < B; ++b) {
      out.tokens[static_cast<size_t>(b)].push_back(next[b]);
      step_ids.push_back(next[b]);
    }
    out.logits.push_back(last->output("logits").to_float_vector());
    if (t == steps) break;
    const int32_t p = static_cast<int32_t>(cache.length(0));  // the new token's position = rows filled so far
    EXPECT_EQ(p, P + t);
    fill_i32(step, "ids", step_ids);
    fill_i32(step, "pos", std::vector<int32_t>(static_cast<size_t>(B), p));
    cache.fill_step(step, 1);
    step.run();
    cache.advance(1);
    if (eo.forbid_allocations_in_run) {
      EXPECT_EQ(step.last_run_allocations(), 0u) << "step " << t;
    }
    last = &step;
  }
  return out;
}

// The naive reference: at every step a fresh graph over the whole sequence so far, no cache.
Decoded decode_recompute(const TinyDecoder& m, const std::vector<int32_t>& prompt, int64_t steps, Backend& cpu) {
  std::vector<int32_t> seq = prompt;
  Decoded out;
  out.tokens.resize(1);
  for (int64_t t = 0; t <= steps; ++t) {
    const int64_t L = static_cast<int64_t>(seq.size());
    Graph g = m.build(1, L, 0, false);
    Executor ex(g, {&cpu});
    std::vector<int32_t> pos(static_cast<size_t>(L));
    for (int64_t i = 0; i < L; ++i) pos[static_cast<size_t>(i)] = static_cast<int32_t>(i);
    fill_i32(ex, "ids", seq);
    fill_i32(ex, "pos", pos);
    fill_cond(ex, m, 1);
    ex.run();
    const int32_t next = *static_cast<const int32_t*>(ex.output("next").raw());
    out.tokens[0].push_back(next);
    out.logits.push_back(ex.output("logits").to_float_vector());
    seq.push_back(next);
  }
  return out;
}

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::fabs(static_cast<double>(a[i]) - b[i]));
  return m;
}

void expect_same_decode(bool qkv_bias, bool gemma, int64_t ada_cond = 0) {
  const TinyDecoder m(qkv_bias, gemma, ada_cond);
  auto cpu = make_cpu_backend({2});
  const std::vector<int32_t> prompt = {3, 17, 42, 8, 60};
  constexpr int64_t kSteps = 32;
  const Decoded ref = decode_recompute(m, prompt, kSteps, *cpu);
  const Decoded got = decode_cached(m, {prompt}, kSteps, *cpu);
  ASSERT_EQ(got.tokens[0].size(), static_cast<size_t>(kSteps + 1));
  EXPECT_EQ(got.tokens[0], ref.tokens[0]) << "greedy tokens differ from the full recompute";
  // Same math in another association order (M = 1 vs M = L products): f32 rounding only.
  double worst = 0;
  for (size_t t = 0; t < ref.logits.size(); ++t) worst = std::max(worst, max_abs_diff(got.logits[t], ref.logits[t]));
  EXPECT_LT(worst, 1e-4) << "logits drift from the recompute";
  // The test decodes something: not one token repeated.
  std::vector<int32_t> distinct = got.tokens[0];
  std::sort(distinct.begin(), distinct.end());
  EXPECT_GE(std::unique(distinct.begin(), distinct.end()) - distinct.begin(), 3);
}

TEST(DecodeLoop, LlamaBlock32GreedyStepsMatchFullRecompute) { expect_same_decode(false, false); }
TEST(DecodeLoop, Qwen2QkvBias32GreedyStepsMatchFullRecompute) { expect_same_decode(true, false); }
TEST(DecodeLoop, GemmaNormAndGeGLU32GreedyStepsMatchFullRecompute) { expect_same_decode(false, true); }
TEST(DecodeLoop, AdaptiveRmsNormWithGate32GreedyStepsMatchFullRecompute) { expect_same_decode(false, true, 12); }

TEST(DecodeLoop, BatchedSequencesDecodeAsIfAlone) {
  const TinyDecoder m(false, false);
  auto cpu = make_cpu_backend({2});
  const std::vector<std::vector<int32_t>> prompts = {{3, 17, 42, 8}, {59, 1, 1, 30}};
  constexpr int64_t kSteps = 12;
  const Decoded both = decode_cached(m, prompts, kSteps, *cpu);
  for (size_t b = 0; b < prompts.size(); ++b) {
    const Decoded alone = decode_cached(m, {prompts[b]}, kSteps, *cpu);
    EXPECT_EQ(both.tokens[b], alone.tokens[0]) << "sequence " << b;
  }
}

TEST(DecodeLoop, KVCacheRefusesToOverflowAndResets) {
  KVCache c(2, 1, 4, 1, 8);
  Graph g;
  g.input("write_pos", {1}, DType::kI32);  // the step inputs a cached decode graph has
  g.input("kv_len", {1}, DType::kI32);
  g.mark_output(g.scale(g.input("x", {1}, DType::kF32), 1.f));
  auto cpu = make_cpu_backend({1});
  Executor ex(g, {cpu.get()});
  c.fill_step(ex, 3);
  EXPECT_EQ(static_cast<const int32_t*>(ex.input("kv_len").raw())[0], 3);
  c.advance(3);
  EXPECT_THROW(c.fill_step(ex, 2), InvalidArgument);  // 3 + 2 > 4
  c.fill_step(ex, 1);
  EXPECT_EQ(static_cast<const int32_t*>(ex.input("write_pos").raw())[0], 3);
  c.reset();
  EXPECT_EQ(c.length(0), 0);
  EXPECT_THROW(KVCache(0, 1, 4, 1, 8), InvalidArgument);
}

TEST(DecodeLoop, CacheOverflowIsAnErrorNotAWrite) {
  const TinyDecoder m(false, false);
  auto cpu = make_cpu_backend({1});
  Graph g = m.build(1, 1, 4, true);
  Executor ex(g, {cpu.get()});
  fill_i32(ex, "ids", {5});
  fill_i32(ex, "pos", {4});
  fill_i32(ex, "write_pos", {4});
  fill_i32(ex, "kv_len", {5});
  EXPECT_THROW(ex.run(), InvalidArgument);
}

}  // namespace
