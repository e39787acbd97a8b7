// Approximate visual reuse (VLA-Cache style) for the SigLIP vision tower: the full pass that keeps
// every layer's K/V, and the sparse pass that recomputes only some connector tokens.
//
// Why K/V: a SigLIP layer is row-wise except for attention, where every patch reads the K/V of
// all patches. Recomputing the patches of the changed tokens therefore needs, per layer, the K/V
// of the unchanged patches, which we keep from the frame they were last computed on. Their own
// hidden states are never needed again: their connector features are kept too. Cost of a sparse
// pass with m of T tokens changed: ~m/T of the full pass (linear layers and attention queries),
// plus copying the cached K/V into the graph (2 x layers x patches x hidden values).
//
// Sparse graph for M = bucket x r^2 patch rows (r = scale_factor; rows of a token are its r x r
// patches in row-major order, so the pixel shuffle of each group equals the global shuffle's token):
//   patches [M, 3, p, p] -> conv (patch embedding) -> + position embedding rows (gathered by id)
//   per layer: LN1 -> q, k, v of the M rows; attention over [cached K/V of all N patches ; new K/V]
//              with a mask that hides the cached rows of the recomputed patches and the padding rows
//   post-LN -> [bucket, r^2, C] -> pixel shuffle -> connector -> [bucket, 1, D]
// Outputs: per layer the new k and v rows, then the connector rows.
#include <algorithm>
#include <cstring>

#include "models/smolvla/model.h"
#include "vlart/error.h"

namespace vlart::smolvla {

namespace {
const std::string kVis = "vlm_with_expert.vlm.model.vision_model.";
const std::string kConn = "vlm_with_expert.vlm.model.connector.modality_projection.proj.weight";

// Bucket (graph size in tokens) for m changed tokens of T: powers of two from max(1, T/8) to T.
int64_t bucket_for(int64_t m, int64_t T) {
  int64_t b = std::max<int64_t>(1, T / 8);
  while (b < m && b < T) b *= 2;
  return std::min(b, T);
}
}  // namespace

void SmolVLAModel::build_vision_sparse(Graph& g, int64_t tokens) const {
  const VisionConfig& v = cfg_.vision;
  const int64_t S = v.image_size, gp = S / v.patch, N = gp * gp, C = v.hidden, hd = C / v.heads;
  const int r = cfg_.scale_factor;
  const int64_t M = tokens * r * r;
  ValueId x = g.input("patches", {M, v.channels, v.patch, v.patch}, DType::kF32);
  ValueId ids = g.input("patch_ids", {1, M}, DType::kI64);
  ValueId mask = g.input("mask", {1, M, N + M}, DType::kBool);
  if (cdt_ != DType::kF32) x = g.cast(x, cdt_);
  x = g.conv2d(x, w(g, kVis + "embeddings.patch_embedding.weight", {C, v.channels, v.patch, v.patch}),
               w(g, kVis + "embeddings.patch_embedding.bias", {C}), static_cast<int>(v.patch), 0);
  x = g.reshape(x, {1, M, C});
  x = g.add(x, g.embedding(w(g, kVis + "embeddings.position_embedding.weight", {N, C}), ids));
  const Shape hs{1, M, v.heads, hd}, cs{1, N, v.heads, hd};
  for (int64_t i = 0; i < v.layers; ++i) {
    const std::string si = std::to_string(i);
    const std::string p = kVis + "encoder.layers." + si + ".";
    ValueId h =
        g.layer_norm(x, w(g, p + "layer_norm1.weight", {C}), w(g, p + "layer_norm1.bias", {C}), v.ln_eps);
    auto proj = [&](const char* nm) {
      return g.linear(h, wq(g, p + "self_attn." + nm + ".weight", {C, C}),
                      w(g, p + "self_attn." + nm + ".bias", {C}));
    };
    const ValueId q = proj("q_proj"), k = proj("k_proj"), val = proj("v_proj");
    g.mark_output(k);
    g.mark_output(val);
    const ValueId kc = g.reshape(g.input("k" + si, {1, N, C}, cdt_), cs);
    const ValueId vc = g.reshape(g.input("v" + si, {1, N, C}, cdt_), cs);
    ValueId a = g.attention(g.reshape(q, hs), g.concat({kc, g.reshape(k, hs)}, 1),
                            g.concat({vc, g.reshape(val, hs)}, 1), mask, false, 0.f, attn_prec_);
    a = g.linear(g.reshape(a, {1, M, C}), wq(g, p + "self_attn.out_proj.weight", {C, C}),
                 w(g, p + "self_attn.out_proj.bias", {C}));
    x = g.add(x, a);
    h = g.layer_norm(x, w(g, p + "layer_norm2.weight", {C}), w(g, p + "layer_norm2.bias", {C}), v.ln_eps);
    const int64_t mw = weights_.info(p + "mlp.fc1.weight").shape[0];
    h = g.linear(h, wq(g, p + "mlp.fc1.weight", {mw, C}), w(g, p + "mlp.fc1.bias", {mw}),
                 v.gelu_tanh ? Activation::kGeluTanh : Activation::kGeluErf);
    h = g.linear(h, wq(g, p + "mlp.fc2.weight", {C, mw}), w(g, p + "mlp.fc2.bias", {C}));
    x = g.add(x, h);
  }
  x = g.layer_norm(x, w(g, kVis + "post_layernorm.weight", {C}), w(g, kVis + "post_layernorm.bias", {C}),
                   v.ln_eps);
  x = g.reshape(x, {tokens, static_cast<int64_t>(r) * r, C});
  g.mark_output(g.linear(g.pixel_shuffle(x, r), wq(g, kConn, {cfg_.text.hidden, C * r * r})));
}

std::vector<SmolVLAModel::VisionState> SmolVLAModel::vision_states(const std::vector<float>& images,
                                                                   int64_t n) {
  const VisionConfig& v = cfg_.vision;
  VLART_CHECK(n >= 1 && static_cast<int64_t>(images.size()) == n * v.channels * v.image_size * v.image_size,
              InvalidArgument, "smolvla: vision_states needs ", n, " x [", v.channels, ", ", v.image_size,
              ", ", v.image_size, "] frames, got ", images.size(), " values");
  Stage& s = vision_state_stage(n);
  Executor& ex = *s.exec;
  std::memcpy(ex.input("pixels").raw(), images.data(), images.size() * sizeof(float));
  ex.run();
  if (exec_opts_.profile) record_profile("vision", ex);
  std::vector<VisionState> st(static_cast<size_t>(n));
  int o = 0;
  for (int64_t l = 0; l < v.layers; ++l, o += 2)
    for (int64_t i = 0; i < n; ++i) {
      st[static_cast<size_t>(i)].k.push_back(ex.output(o).slice(0, i, i + 1).clone());
      st[static_cast<size_t>(i)].v.push_back(ex.output(o + 1).slice(0, i, i + 1).clone());
    }
  ++o;  // post-layernorm hidden states
  for (int64_t i = 0; i < n; ++i) st[static_cast<size_t>(i)].feat = ex.output(o).slice(0, i, i + 1).clone();
  return st;
}

void SmolVLAModel::vision_sparse(const std::vector<float>& image, const std::vector<int64_t>& tokens,
                                 VisionState& st) {
  const VisionConfig& v = cfg_.vision;
  const int64_t S = v.image_size, P = v.patch, gp = S / P, N = gp * gp, C = v.hidden, ch = v.channels;
  const int64_t r = cfg_.scale_factor, tg = gp / r, T = tg * tg, D = cfg_.text.hidden;
  const int64_t m = static_cast<int64_t>(tokens.size());
  VLART_CHECK(static_cast<int64_t>(image.size()) == ch * S * S, InvalidArgument,
              "smolvla: vision_sparse needs one [", ch, ", ", S, ", ", S, "] frame, got ", image.size(),
              " values");
  VLART_CHECK(m >= 1 && m <= T, InvalidArgument, "smolvla: vision_sparse needs 1..", T, " tokens, got ", m);
  VLART_CHECK(static_cast<int64_t>(st.k.size()) == v.layers &&
                  static_cast<int64_t>(st.v.size()) == v.layers && st.feat.defined() &&
                  st.feat.numel() == T * D,
              InvalidArgument, "smolvla: vision_sparse: the cached state does not match this model");
  std::vector<uint8_t> is_changed(static_cast<size_t>(T), 0);
  for (int64_t t : tokens) {
    VLART_CHECK(t >= 0 && t < T && !is_changed[static_cast<size_t>(t)], InvalidArgument,
                "smolvla: vision_sparse: token ", t, " is out of range or repeated");
    is_changed[static_cast<size_t>(t)] = 1;
  }
  const int64_t bucket = bucket_for(m, T), M = bucket * r * r, rows = m * r * r;
  Stage& s = sparse_stage(bucket);
  Executor& ex = *s.exec;
  // Patch pixels and ids of the changed tokens' patches (row-major within each token); padding rows
  // get zero pixels and id 0 and are masked out as keys.
  float* px = ex.input("patches").data<float>();
  int64_t* ids = ex.input("patch_ids").data<int64_t>();
  std::memset(px, 0, static_cast<size_t>(M * ch * P * P) * sizeof(float));
  std::vector<int64_t> patch_of_row(static_cast<size_t>(rows));
  int64_t row = 0;
  for (int64_t t : tokens) {
    const int64_t ti = t / tg, tj = t % tg;
    for (int64_t a = 0; a < r; ++a)
      for (int64_t b = 0; b < r; ++b, ++row) {
        const int64_t pi = ti * r + a, pj = tj * r + b;
        patch_of_row[static_cast<size_t>(row)] = pi * gp + pj;
        ids[row] = pi * gp + pj;
        for (int64_t c = 0; c < ch; ++c)
          for (int64_t y = 0; y < P; ++y)
            std::memcpy(px + ((row * ch + c) * P + y) * P, image.data() + (c * S + pi * P + y) * S + pj * P,
                        static_cast<size_t>(P) * sizeof(float));
      }
  }
  for (int64_t i = rows; i < M; ++i) ids[i] = 0;
  // Mask: every query row sees the cached K/V of the patches not recomputed and the new K/V of the
  // real rows (padding query rows get the same mask: their outputs are dropped).
  uint8_t* mk = static_cast<uint8_t*>(ex.input("mask").raw());
  std::vector<uint8_t> keep(static_cast<size_t>(N + M), 1);
  for (int64_t i = 0; i < rows; ++i) keep[static_cast<size_t>(patch_of_row[static_cast<size_t>(i)])] = 0;
  for (int64_t i = rows; i < M; ++i) keep[static_cast<size_t>(N + i)] = 0;
  for (int64_t i = 0; i < M; ++i) std::memcpy(mk + i * (N + M), keep.data(), keep.size());
  for (int64_t l = 0; l < v.layers; ++l) {
    const std::string sl = std::to_string(l);
    const size_t u = static_cast<size_t>(l);
    Tensor& kin = ex.input("k" + sl);
    Tensor& vin = ex.input("v" + sl);
    VLART_CHECK(kin.nbytes() == st.k[u].nbytes() && vin.nbytes() == st.v[u].nbytes(), InvalidArgument,
                "smolvla: vision_sparse: cached K/V of layer ", l, " has the wrong size");
    std::memcpy(kin.raw(), st.k[u].raw(), kin.nbytes());
    std::memcpy(vin.raw(), st.v[u].raw(), vin.nbytes());
  }
  ex.run();
  if (exec_opts_.profile) record_profile("vision_sparse", ex);
  // Write back the recomputed rows.
  const size_t row_bytes = static_cast<size_t>(C) * dtype_size(cdt_);
  int o = 0;
  for (int64_t l = 0; l < v.layers; ++l) {
    const size_t u = static_cast<size_t>(l);
    const char* kn = static_cast<const char*>(ex.output(o++).raw());
    const char* vn = static_cast<const char*>(ex.output(o++).raw());
    char* kd = static_cast<char*>(st.k[u].raw());
    char* vd = static_cast<char*>(st.v[u].raw());
    for (int64_t i = 0; i < rows; ++i) {
      const size_t dst = static_cast<size_t>(patch_of_row[static_cast<size_t>(i)]) * row_bytes;
      std::memcpy(kd + dst, kn + static_cast<size_t>(i) * row_bytes, row_bytes);
      std::memcpy(vd + dst, vn + static_cast<size_t>(i) * row_bytes, row_bytes);
    }
  }
  const size_t feat_bytes = static_cast<size_t>(D) * dtype_size(cdt_);
  const char* fn = static_cast<const char*>(ex.output(o).raw());
  char* fd = static_cast<char*>(st.feat.raw());
  for (int64_t i = 0; i < m; ++i)
    std::memcpy(fd + static_cast<size_t>(tokens[static_cast<size_t>(i)]) * feat_bytes,
                fn + static_cast<size_t>(i) * feat_bytes, feat_bytes);
}

}  // namespace vlart::smolvla
