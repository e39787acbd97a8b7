#include "compress/prune.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <numeric>
#include <set>

#include <nlohmann/json.hpp>

#include "core/safetensors.h"
#include "core/json_file.h"
#include "models/registry.h"
#include "vlart/error.h"

namespace vlart::compress {
namespace fs = std::filesystem;
using ojson = nlohmann::ordered_json;

namespace {


bool starts_with(const std::string& s, const std::string& p) { return s.rfind(p, 0) == 0; }


// Splits "<prefix><index>.<rest>" into (index, rest); false when `name` is not under `prefix`.
bool split_layer(const std::string& name, const std::string& prefix, int64_t* index, std::string* rest) {
  if (!starts_with(name, prefix)) return false;
  const size_t dot = name.find('.', prefix.size());
  VLART_CHECK(dot != std::string::npos && dot > prefix.size(), FormatError, "prune: tensor '", name,
              "' has no layer index after '", prefix, "'");
  const std::string num = name.substr(prefix.size(), dot - prefix.size());
  VLART_CHECK(num.find_first_not_of("0123456789") == std::string::npos, FormatError, "prune: tensor '", name,
              "' has layer index '", num, "', expected a number");
  *index = std::stoll(num);
  *rest = name.substr(dot + 1);
  return true;
}

size_t elem_bytes(const Tensor& t) { return t.numel() > 0 ? t.nbytes() / static_cast<size_t>(t.numel()) : 1; }

// Rows `idx` of `t` (any rank >= 1), same dtype.
Tensor take_rows(const Tensor& t0, const std::vector<int64_t>& idx) {
  const Tensor t = t0.contiguous();
  std::vector<int64_t> dims = t.shape().vec();
  const size_t row = t.nbytes() / static_cast<size_t>(dims[0]);
  dims[0] = static_cast<int64_t>(idx.size());
  Tensor out = Tensor::empty(Shape(dims), t.dtype());
  const char* s = static_cast<const char*>(t.raw());
  char* d = static_cast<char*>(out.raw());
  for (size_t i = 0; i < idx.size(); ++i) std::memcpy(d + i * row, s + static_cast<size_t>(idx[i]) * row, row);
  return out;
}

// Columns `idx` of the 2-D `t`, same dtype.
Tensor take_cols(const Tensor& t0, const std::vector<int64_t>& idx) {
  const Tensor t = t0.contiguous();
  const int64_t R = t.dim(0), C = t.dim(1);
  const size_t e = elem_bytes(t);
  Tensor out = Tensor::empty(Shape{R, static_cast<int64_t>(idx.size())}, t.dtype());
  const char* s = static_cast<const char*>(t.raw());
  char* d = static_cast<char*>(out.raw());
  for (int64_t r = 0; r < R; ++r)
    for (size_t j = 0; j < idx.size(); ++j)
      std::memcpy(d + (static_cast<size_t>(r) * idx.size() + j) * e, s + static_cast<size_t>(r * C + idx[j]) * e, e);
  return out;
}

// Indices of the `k` largest scores, ascending (ties keep the earlier index).
std::vector<int64_t> top_k_sorted(const std::vector<double>& score, int64_t k) {
  std::vector<int64_t> order(score.size());
  std::iota(order.begin(), order.end(), int64_t{0});
  std::stable_sort(order.begin(), order.end(),
                   [&](int64_t a, int64_t b) { return score[static_cast<size_t>(a)] > score[static_cast<size_t>(b)]; });
  order.resize(static_cast<size_t>(k));
  std::sort(order.begin(), order.end());
  return order;
}

// Number removed out of n for fraction f (floor, so a small f on a small n removes nothing).
int64_t removed(double f, int64_t n) { return static_cast<int64_t>(std::floor(f * static_cast<double>(n) + 1e-9)); }

using LayerTensors = std::map<std::string, Tensor>;  // name after "layers.<i>." -> tensor

const Tensor& need(const LayerTensors& m, const std::string& rest, const std::string& prefix, int64_t layer) {
  auto it = m.find(rest);
  VLART_CHECK(it != m.end(), FormatError, "prune: checkpoint has no tensor '", prefix, layer, ".", rest, "'");
  return it->second;
}

void check_shape(const Tensor& t, const Shape& want, const std::string& name) {
  VLART_CHECK(t.shape() == want, FormatError, "prune: tensor '", name, "' has shape ", t.shape().str(), ", expected ",
              want.str());
}

// Calibration statistics of the input of `prefix<layer>.<rest>` (activation importance), checked
// against the width the weight has; null without activations. `*unobserved` is set for a weight the
// policy never runs (the last VLM layer's o_proj and MLP: only that layer's K/V is read, so its
// heads and channels write nothing that reaches the actions and all score 0).
const LayerActStats* act_stats(const PruneOptions& o, const std::string& prefix, int64_t layer, const std::string& rest,
                               int64_t k, int64_t block, bool last_vlm_layer, bool* unobserved) {
  *unobserved = false;
  if (!o.activations) return nullptr;
  const std::string name = prefix + std::to_string(layer) + "." + rest;
  auto it = o.activations->layers.find(name);
  if (last_vlm_layer && (it == o.activations->layers.end() || it->second.rows == 0)) {
    *unobserved = true;
    return nullptr;
  }
  VLART_CHECK(it != o.activations->layers.end() && it->second.rows > 0, InvalidArgument,
              "prune: activation importance: no calibration statistics for '", name,
              "' (collect them with collect_prune_activations on this checkpoint)");
  const LayerActStats& st = it->second;
  VLART_CHECK(st.k == k && static_cast<int64_t>(st.sum_sq.size()) == k, InvalidArgument,
              "prune: activation importance: statistics for '", name, "' have ", st.k, " inputs, the weight has ", k);
  VLART_CHECK(block == 0 || (st.block == block && static_cast<int64_t>(st.block_sq.size()) == k * block),
              InvalidArgument, "prune: activation importance: statistics for '", name,
              "' have no per-head second moments of block ", block, " (block ", st.block, ")");
  return &st;
}

// Removes query heads (the same number from every kv group), by o_proj column norm or, with
// activation statistics `st` of the o_proj input, by E||W_o[:, head] x_head||^2. Returns the kept
// head count.
int64_t prune_heads(LayerTensors& m, const std::string& prefix, int64_t layer, int64_t heads, int64_t kv_heads,
                    int64_t hd, double frac, const PruneOptions& opts, bool last_vlm_layer) {
  const std::string pl = prefix + std::to_string(layer) + ".";
  const Tensor& q = need(m, "self_attn.q_proj.weight", prefix, layer);
  const Tensor& o = need(m, "self_attn.o_proj.weight", prefix, layer);
  VLART_CHECK(q.rank() == 2 && q.dim(0) == heads * hd, FormatError, "prune: tensor '", pl,
              "self_attn.q_proj.weight' has shape ", q.shape().str(), ", expected [", heads * hd, ", *] (", heads,
              " heads x head_dim ", hd, " from config.json)");
  check_shape(o, Shape{o.dim(0), heads * hd}, pl + "self_attn.o_proj.weight");
  const int64_t g = heads / kv_heads;
  const int64_t gk = std::max<int64_t>(1, g - removed(frac, g));
  if (gk == g) return heads;
  const std::vector<float> of = o.to_float_vector();
  const int64_t R = o.dim(0), C = heads * hd;
  bool unobserved = false;
  const LayerActStats* st = act_stats(opts, prefix, layer, "self_attn.o_proj.weight", C, hd, last_vlm_layer, &unobserved);
  std::vector<int64_t> rows, cols;
  std::vector<double> gram(static_cast<size_t>(hd * hd));
  for (int64_t grp = 0; grp < kv_heads; ++grp) {
    std::vector<double> score(static_cast<size_t>(g), 0.0);
    for (int64_t j = 0; j < g; ++j) {
      const int64_t h = grp * g + j;
      double s = 0;
      if (unobserved) {
        s = 0;
      } else if (!st) {
        for (int64_t r = 0; r < R; ++r)
          for (int64_t d = 0; d < hd; ++d) {
            const double v = of[static_cast<size_t>(r * C + h * hd + d)];
            s += v * v;
          }
      } else {
        // E||W_h x_h||^2 = sum_{d,e} (W_h^T W_h)[d, e] * E[x_d x_e] over the head's columns.
        std::fill(gram.begin(), gram.end(), 0.0);
        for (int64_t r = 0; r < R; ++r) {
          const float* w = of.data() + r * C + h * hd;
          for (int64_t d = 0; d < hd; ++d)
            for (int64_t e = 0; e < hd; ++e) gram[static_cast<size_t>(d * hd + e)] += double(w[d]) * w[e];
        }
        const double* mo = st->block_sq.data() + h * hd * hd;
        for (int64_t i = 0; i < hd * hd; ++i) s += gram[static_cast<size_t>(i)] * mo[i];
        s /= static_cast<double>(st->rows);
      }
      score[static_cast<size_t>(j)] = s;
    }
    for (int64_t j : top_k_sorted(score, gk))
      for (int64_t d = 0; d < hd; ++d) rows.push_back((grp * g + j) * hd + d);
  }
  cols = rows;
  m["self_attn.q_proj.weight"] = take_rows(q, rows);
  if (m.count("self_attn.q_proj.bias")) m["self_attn.q_proj.bias"] = take_rows(m["self_attn.q_proj.bias"], rows);
  m["self_attn.o_proj.weight"] = take_cols(o, cols);
  return gk * kv_heads;
}

// Removes MLP channels by ||gate row|| * ||up row|| * ||down column|| or, with activation
// statistics of the down_proj input, by E[h_c^2] * ||down column||^2. Returns the kept width.
int64_t prune_mlp(LayerTensors& m, const std::string& prefix, int64_t layer, int64_t width, double frac,
                  const PruneOptions& opts, bool last_vlm_layer) {
  const std::string pl = prefix + std::to_string(layer) + ".";
  const Tensor& gt = need(m, "mlp.gate_proj.weight", prefix, layer);
  const Tensor& up = need(m, "mlp.up_proj.weight", prefix, layer);
  const Tensor& dn = need(m, "mlp.down_proj.weight", prefix, layer);
  VLART_CHECK(gt.rank() == 2 && gt.dim(0) == width, FormatError, "prune: tensor '", pl, "mlp.gate_proj.weight' has shape ",
              gt.shape().str(), ", expected [", width, ", *] (MLP width from config.json)");
  check_shape(up, gt.shape(), pl + "mlp.up_proj.weight");
  check_shape(dn, Shape{dn.dim(0), width}, pl + "mlp.down_proj.weight");
  int64_t keep = width - removed(frac, width);
  if (width >= 8) keep = std::min(width, (keep + 7) / 8 * 8);
  keep = std::max<int64_t>(1, keep);
  if (keep == width) return width;
  const std::vector<float> gf = gt.to_float_vector(), uf = up.to_float_vector(), df = dn.to_float_vector();
  const int64_t K = gt.dim(1), R = dn.dim(0);
  bool unobserved = false;
  const LayerActStats* st = act_stats(opts, prefix, layer, "mlp.down_proj.weight", width, 0, last_vlm_layer, &unobserved);
  std::vector<double> score(static_cast<size_t>(width), 0.0);
  for (int64_t c = 0; c < width && !unobserved; ++c) {
    double sg = 0, su = 0, sd = 0;
    if (st) {
      for (int64_t r = 0; r < R; ++r) sd += double(df[static_cast<size_t>(r * width + c)]) * df[static_cast<size_t>(r * width + c)];
      score[static_cast<size_t>(c)] = sd * st->sum_sq[static_cast<size_t>(c)] / static_cast<double>(st->rows);
      continue;
    }
    for (int64_t k = 0; k < K; ++k) {
      sg += double(gf[static_cast<size_t>(c * K + k)]) * gf[static_cast<size_t>(c * K + k)];
      su += double(uf[static_cast<size_t>(c * K + k)]) * uf[static_cast<size_t>(c * K + k)];
    }
    for (int64_t r = 0; r < R; ++r) sd += double(df[static_cast<size_t>(r * width + c)]) * df[static_cast<size_t>(r * width + c)];
    score[static_cast<size_t>(c)] = std::sqrt(sg) * std::sqrt(su) * std::sqrt(sd);
  }
  const std::vector<int64_t> idx = top_k_sorted(score, keep);
  m["mlp.gate_proj.weight"] = take_rows(gt, idx);
  m["mlp.up_proj.weight"] = take_rows(up, idx);
  for (const char* b : {"mlp.gate_proj.bias", "mlp.up_proj.bias"})
    if (m.count(b)) m[b] = take_rows(m[b], idx);
  m["mlp.down_proj.weight"] = take_cols(dn, idx);
  return keep;
}

std::vector<int64_t> check_indices(const std::vector<int64_t>& v, int64_t n, const std::string& opt,
                                   const std::string& what) {
  std::set<int64_t> seen;
  for (int64_t i : v) {
    VLART_CHECK(i >= 0 && i < n, InvalidArgument, "prune: ", opt, ": layer ", i, " is out of range (the checkpoint has ",
                n, " ", what, " layers: 0..", n - 1, ")");
    VLART_CHECK(seen.insert(i).second, InvalidArgument, "prune: ", opt, ": layer ", i, " is listed twice");
  }
  return {seen.begin(), seen.end()};
}

// A stack's layers for the "pruning" section; `paired_key` non-empty: the primary stack, whose layers
// also record their paired layer and its attention kind.
ojson layers_json(const std::vector<PrunedLayer>& v, const std::string& paired_key) {
  ojson a = ojson::array();
  for (const PrunedLayer& l : v) {
    ojson x;
    x["source"] = l.source;
    x["heads"] = l.heads;
    x["mlp"] = l.mlp;
    if (!paired_key.empty()) {
      x[paired_key] = l.expert;
      x["attention"] = l.self_attn ? "self" : "cross";
    }
    a.push_back(x);
  }
  return a;
}

}  // namespace

std::vector<int64_t> parse_index_list(const std::string& s, const std::string& what) {
  std::vector<int64_t> out;
  size_t p = 0;
  auto num = [&](const std::string& tok) {
    const size_t b = tok.find_first_not_of(" \t"), e = tok.find_last_not_of(" \t");
    const std::string t = b == std::string::npos ? "" : tok.substr(b, e - b + 1);
    errno = 0;
    char* end = nullptr;
    const long long v = std::strtoll(t.c_str(), &end, 10);
    VLART_CHECK(!t.empty() && *end == '\0' && errno == 0 && v >= 0, InvalidArgument, what, ": '", t,
                "' is not a layer index (expected non-negative integers like 3,5 or a range 2-4)");
    return static_cast<int64_t>(v);
  };
  while (p <= s.size()) {
    const size_t c = s.find(',', p);
    const std::string tok = s.substr(p, c == std::string::npos ? std::string::npos : c - p);
    const size_t dash = tok.find('-');
    if (dash != std::string::npos && dash > 0) {
      const int64_t a = num(tok.substr(0, dash)), b = num(tok.substr(dash + 1));
      VLART_CHECK(a <= b, InvalidArgument, what, ": range '", tok, "' is empty");
      for (int64_t i = a; i <= b; ++i) out.push_back(i);
    } else {
      out.push_back(num(tok));
    }
    if (c == std::string::npos) break;
    p = c + 1;
  }
  return out;
}

CalibrationData collect_prune_activations(const std::string& in_dir, const std::vector<Observation>& obs,
                                          const std::vector<std::vector<float>>& noise, CalibrateOptions opts) {
  const fs::path in(in_dir);
  VLART_CHECK(fs::exists(in / "config.json"), NotFoundError, "prune: no config.json in ", in_dir);
  const ojson cfg = read_json_file((in / "config.json").string(), "prune");
  VLART_CHECK(cfg.is_object(), FormatError, "prune: ", (in / "config.json").string(), " is not a JSON object");
  // The family's decoder stacks: their o_proj inputs get per-head second-moment blocks.
  const std::vector<LayerStack> stacks = describe_checkpoint(in_dir, opts.policy.vlm_config_dir).stacks;
  VLART_CHECK(!stacks.empty(), UnsupportedError, "prune: ", in_dir, ": this family has no prunable layer stacks");
  opts.block_moments = [stacks](const std::string& name) -> int64_t {
    const std::string suffix = ".self_attn.o_proj.weight";
    const bool o_proj = name.size() > suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
    for (const LayerStack& st : stacks)
      if (o_proj && starts_with(name, st.prefix)) return st.head_dim;
    return 0;
  };
  opts.max_rows = 1;  // the row sample is not used
  return collect_calibration(in_dir, obs, noise, opts);
}

PruneSummary prune_checkpoint(const std::string& in_dir, const std::string& out_dir, const PruneOptions& opts) {
  const fs::path in(in_dir), out(out_dir);
  VLART_CHECK(fs::is_directory(in), NotFoundError, "prune: input checkpoint directory ", in_dir, " does not exist");
  VLART_CHECK(fs::exists(in / "config.json"), NotFoundError, "prune: no config.json in ", in_dir);
  for (const auto& [v, opt] : {std::make_pair(opts.heads_frac, "--prune-heads-frac"),
                               std::make_pair(opts.mlp_frac, "--prune-mlp-frac")})
    VLART_CHECK(std::isfinite(v) && v >= 0.0 && v < 1.0, InvalidArgument, "prune: ", opt, " is ", v,
                ", expected a fraction in [0, 1)");
  ojson cfg = read_json_file((in / "config.json").string(), "prune");
  VLART_CHECK(cfg.is_object(), FormatError, "prune: ", (in / "config.json").string(), " is not a JSON object");
  VLART_CHECK(!cfg.contains("quantization"), InvalidArgument, "prune: ", (in / "config.json").string(),
              " has a \"quantization\" section; prune the float checkpoint, then quantize the pruned one");

  PruneSummary sum;
  // The family's description names the stacks: the primary one (SmolVLA: the VLM text layers) and
  // the one paired with it (the action expert; dropping a primary layer drops its paired layer).
  const CheckpointDescription desc = describe_checkpoint(in_dir, opts.vlm_config_dir);
  VLART_CHECK(desc.stacks.size() == 2, UnsupportedError, "prune: ", in_dir, ": the ", desc.weights.family,
              " family describes ", desc.stacks.size(), " layer stacks; structured pruning needs a primary stack and "
              "the stack paired with it");
  const LayerStack& S0 = desc.stacks[0];
  const LayerStack& S1 = desc.stacks[1];
  sum.vlm_dir = desc.companion_dirs.empty() ? "" : desc.companion_dirs[0];
  const int64_t nv = static_cast<int64_t>(S0.layers.size()), ne = static_cast<int64_t>(S1.layers.size());

  const std::vector<int64_t> dv = check_indices(opts.drop_vlm_layers, nv, "--drop-vlm-layers", "VLM");
  const std::vector<int64_t> de_opt = check_indices(opts.drop_expert_layers, ne, "--drop-expert-layers", "expert");
  std::set<int64_t> drop_v(dv.begin(), dv.end()), drop_e(de_opt.begin(), de_opt.end());
  for (int64_t i : dv)
    if (S0.layers[static_cast<size_t>(i)].paired >= 0) drop_e.insert(S0.layers[static_cast<size_t>(i)].paired);
  VLART_CHECK(static_cast<int64_t>(drop_v.size()) < nv, InvalidArgument, "prune: --drop-vlm-layers removes all ", nv,
              " VLM layers; at least one must stay");
  VLART_CHECK(static_cast<int64_t>(drop_e.size()) < ne, InvalidArgument, "prune: the dropped layers remove all ", ne,
              " expert layers (dropping a VLM layer drops its paired expert layer); at least one must stay");

  // Output directory checks (as quantize).
  {
    const std::string a = fs::weakly_canonical(in).string() + "/", b = fs::weakly_canonical(out).string() + "/";
    VLART_CHECK(!starts_with(b, a), InvalidArgument, "prune: output directory ", out_dir,
                " is the input directory or inside it");
  }
  if (fs::exists(out)) {
    VLART_CHECK(fs::is_directory(out), InvalidArgument, "prune: output ", out_dir, " exists and is not a directory");
    const bool empty = fs::directory_iterator(out) == fs::directory_iterator();
    VLART_CHECK(empty || opts.force, InvalidArgument, "prune: output directory ", out_dir,
                " is not empty (pass --force to replace its contents)");
  }

  // New indices of the kept layers.
  std::vector<int64_t> vmap(static_cast<size_t>(nv), -1), emap(static_cast<size_t>(ne), -1);
  for (int64_t i = 0, k = 0; i < nv; ++i)
    if (!drop_v.count(i)) vmap[static_cast<size_t>(i)] = k++;
  for (int64_t e = 0, k = 0; e < ne; ++e)
    if (!drop_e.count(e)) emap[static_cast<size_t>(e)] = k++;

  const SafetensorsCheckpoint ck = SafetensorsCheckpoint::open(in_dir);
  NamedTensors outs;
  std::map<int64_t, LayerTensors> vlm_t, exp_t;
  for (const std::string& n : ck.names()) {
    Tensor t = ck.get(n);
    sum.bytes_before += t.nbytes();
    sum.params_before += t.numel();
    int64_t li = 0;
    std::string rest;
    if (split_layer(n, S0.prefix, &li, &rest)) {
      VLART_CHECK(li < nv, FormatError, "prune: tensor '", n, "' belongs to VLM layer ", li, " but num_vlm_layers is ", nv);
      vlm_t[li][rest] = t;
    } else if (split_layer(n, S1.prefix, &li, &rest)) {
      VLART_CHECK(li < ne, FormatError, "prune: tensor '", n, "' belongs to expert layer ", li,
                  " but the config has ", ne, " expert layers");
      exp_t[li][rest] = t;
    } else {
      outs.emplace_back(n, t);
    }
  }
  const bool heads_v = opts.vlm && opts.heads_frac > 0, heads_e = opts.expert && opts.heads_frac > 0;
  const bool mlp_v = opts.vlm && opts.mlp_frac > 0, mlp_e = opts.expert && opts.mlp_frac > 0;
  for (int64_t i = 0; i < nv; ++i) {
    if (drop_v.count(i)) {
      sum.dropped_vlm.push_back(i);
      continue;
    }
    const StackLayer& s = S0.layers[static_cast<size_t>(i)];
    LayerTensors& m = vlm_t[i];
    VLART_CHECK(!m.empty(), FormatError, "prune: ", in_dir, " has no tensors '", S0.prefix, i, ".*' for VLM layer ", i);
    PrunedLayer l;
    l.source = s.source;
    l.heads_before = s.heads;
    l.mlp_before = s.mlp;
    l.heads = heads_v ? prune_heads(m, S0.prefix, i, s.heads, S0.kv_heads, S0.head_dim, opts.heads_frac, opts, i + 1 == nv)
                      : s.heads;
    l.mlp = mlp_v ? prune_mlp(m, S0.prefix, i, s.mlp, opts.mlp_frac, opts, i + 1 == nv) : s.mlp;
    l.expert = s.paired >= 0 ? emap[static_cast<size_t>(s.paired)] : -1;
    l.self_attn = s.self_attn;
    sum.vlm.push_back(l);
    const std::string p = S0.prefix + std::to_string(vmap[static_cast<size_t>(i)]) + ".";
    for (auto& [rest, t] : m) outs.emplace_back(p + rest, t);
  }
  for (int64_t e = 0; e < ne; ++e) {
    if (drop_e.count(e)) {
      sum.dropped_expert.push_back(e);
      continue;
    }
    const StackLayer& s = S1.layers[static_cast<size_t>(e)];
    LayerTensors& m = exp_t[e];
    VLART_CHECK(!m.empty(), FormatError, "prune: ", in_dir, " has no tensors '", S1.prefix, e, ".*' for expert layer ",
                e);
    PrunedLayer l;
    l.source = s.source;
    l.heads_before = s.heads;
    l.mlp_before = s.mlp;
    l.heads = heads_e ? prune_heads(m, S1.prefix, e, s.heads, S1.kv_heads, S1.head_dim, opts.heads_frac, opts, false)
                      : s.heads;
    l.mlp = mlp_e ? prune_mlp(m, S1.prefix, e, s.mlp, opts.mlp_frac, opts, false) : s.mlp;
    sum.expert.push_back(l);
    const std::string p = S1.prefix + std::to_string(emap[static_cast<size_t>(e)]) + ".";
    for (auto& [rest, t] : m) outs.emplace_back(p + rest, t);
  }
  for (const auto& [n, t] : outs) {
    sum.bytes_after += t.nbytes();
    sum.params_after += t.numel();
  }

  // Write: every non-weight file copied, then model.safetensors and config.json.
  if (fs::exists(out))
    for (const auto& e : fs::directory_iterator(out)) fs::remove_all(e.path());
  fs::create_directories(out);
  std::set<std::string> weight_files = {"model.safetensors"};
  if (!ck.index_path().empty()) weight_files.insert(fs::path(ck.index_path()).filename().string());
  for (const SafetensorsFile& f : ck.shards()) weight_files.insert(fs::path(f.path()).filename().string());
  for (const auto& e : fs::directory_iterator(in)) {
    const std::string fn = e.path().filename().string();
    if (fn == "config.json" || weight_files.count(fn)) continue;
    fs::copy(e.path(), out / fn, fs::copy_options::recursive);
  }
  write_safetensors((out / "model.safetensors").string(), outs, {{"format", "pt"}, {"vlart.pruning", "1"}});

  ojson step;
  step["drop_vlm_layers"] = sum.dropped_vlm;
  step["drop_expert_layers"] = std::vector<int64_t>(de_opt.begin(), de_opt.end());
  step["dropped_expert_layers"] = sum.dropped_expert;
  step["heads_frac"] = opts.heads_frac;
  step["mlp_frac"] = opts.mlp_frac;
  step["parts"] = std::string(opts.vlm ? "vlm" : "") + (opts.vlm && opts.expert ? "," : "") + (opts.expert ? "expert" : "");
  step["importance"] =
      opts.activations
          ? "activation (" + std::to_string(opts.activations->observations) +
                " calibration observations): query heads by E|o_proj[:, head] x_head|^2 (same count per kv group), "
                "MLP channels by E[h_c^2] * |down column|^2"
          : std::string("magnitude: query heads by o_proj column norm (same count per kv group), MLP channels by "
                        "|gate row| * |up row| * |down column|");
  ojson steps = ojson::array();
  if (cfg.contains("pruning") && cfg["pruning"].is_object() && cfg["pruning"].contains("steps") &&
      cfg["pruning"]["steps"].is_array())
    steps = cfg["pruning"]["steps"];
  steps.push_back(step);
  ojson pr;
  pr["format"] = "vlart";
  pr["version"] = kPruneFormatVersion;
  pr[S0.section_key] = layers_json(sum.vlm, S0.paired_key);
  pr[S1.section_key] = layers_json(sum.expert, "");
  pr["steps"] = steps;
  // A family whose loader counts the layers from the tensors (pi0) names no count field.
  if (!S0.count_field.empty()) cfg[S0.count_field] = static_cast<int64_t>(sum.vlm.size());
  if (!S1.count_field.empty()) cfg[S1.count_field] = static_cast<int64_t>(sum.expert.size());
  cfg["pruning"] = pr;
  const fs::path cfg_out = out / "config.json";
  std::ofstream f(cfg_out);
  VLART_CHECK(f.good(), IoError, "prune: cannot write ", cfg_out.string());
  f << cfg.dump(4) << "\n";
  f.close();
  VLART_CHECK(f.good(), IoError, "prune: writing ", cfg_out.string(), " failed");
  sum.vlm_dir_found_from_output = !desc.companions_found || desc.companions_found(out_dir);
  return sum;
}

}  // namespace vlart::compress
