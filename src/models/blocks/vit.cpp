#include "models/blocks/vit.h"

#include "vlart/error.h"

namespace vlart::blocks {

VitLayerOut vit_layer(Graph& g, ValueId x, const VitSpec& s, const std::string& prefix, const WeightFn& w) {
  const Shape xs = g.value(x).shape;
  VLART_CHECK(xs.rank() == 3 && xs[2] == s.hidden, InvalidArgument, "vit layer '", prefix, "': x must be [B, L, ",
              s.hidden, "], got ", xs.str());
  VLART_CHECK(s.heads > 0 && s.hidden % s.heads == 0, InvalidArgument, "vit layer '", prefix, "': ", s.heads,
              " heads do not divide width ", s.hidden);
  const int64_t B = xs[0], L = xs[1], C = s.hidden, hd = C / s.heads;
  const VitNames& n = s.names;
  auto W = [&](const std::string& m, const Shape& shape) { return w(prefix + m + ".weight", shape, true); };
  auto b = [&](const std::string& m, int64_t len) { return w(prefix + m + ".bias", {len}, false); };
  auto ln = [&](ValueId in, const std::string& m) {
    return g.layer_norm(in, w(prefix + m + ".weight", {C}, false), b(m, C), s.ln_eps);
  };
  VitLayerOut out;
  ValueId h = ln(x, n.norm1);
  ValueId q, k, v;
  if (s.fused_qkv) {
    const ValueId qkv = g.linear(h, W(n.qkv, {3 * C, C}), b(n.qkv, 3 * C));
    q = g.slice(qkv, 2, 0, C);
    k = g.slice(qkv, 2, C, 2 * C);
    v = g.slice(qkv, 2, 2 * C, 3 * C);
  } else {
    q = g.linear(h, W(n.q, {C, C}), b(n.q, C));
    k = g.linear(h, W(n.k, {C, C}), b(n.k, C));
    v = g.linear(h, W(n.v, {C, C}), b(n.v, C));
  }
  out.k = k;
  out.v = v;
  const Shape hs{B, L, s.heads, hd};
  ValueId a = g.attention(g.reshape(q, hs), g.reshape(k, hs), g.reshape(v, hs), kNoValue, false, 0.f, s.precision);
  a = g.linear(g.reshape(a, {B, L, C}), W(n.out, {C, C}), b(n.out, C));
  if (s.layer_scale) a = g.mul(a, w(prefix + n.ls1, {C}, false));
  x = g.add(x, a);
  h = ln(x, n.norm2);
  h = g.linear(h, W(n.fc1, {s.mlp, C}), b(n.fc1, s.mlp), s.gelu_tanh ? Activation::kGeluTanh : Activation::kGeluErf);
  h = g.linear(h, W(n.fc2, {C, s.mlp}), b(n.fc2, C));
  if (s.layer_scale) h = g.mul(h, w(prefix + n.ls2, {C}, false));
  out.x = g.add(x, h);
  return out;
}

ValueId prepend_tokens(Graph& g, ValueId x, const std::vector<ValueId>& tokens) {
  const Shape xs = g.value(x).shape;  // a copy: expand() below grows the graph's value table
  VLART_CHECK(xs.rank() == 3, InvalidArgument, "prepend_tokens: x must be [B, L, D], got ", xs.str());
  std::vector<ValueId> parts;
  for (ValueId t : tokens) {
    const Shape ts = g.value(t).shape;
    VLART_CHECK(ts.rank() == 3 && ts[0] == 1 && ts[2] == xs[2], InvalidArgument,
                "prepend_tokens: a token block must be [1, n, ", xs[2], "], got ", ts.str());
    parts.push_back(xs[0] == 1 ? t : g.expand(t, {xs[0], ts[1], xs[2]}));
  }
  parts.push_back(x);
  return g.concat(parts, 1);
}

}  // namespace vlart::blocks
