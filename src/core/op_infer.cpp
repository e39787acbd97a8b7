// Front end of every op: validation and shape/dtype inference at graph build time.
#include <algorithm>

#include "core/graph.h"
#include "vlart/error.h"

namespace vlart {
namespace {

struct Ctx {
  const Graph& g;
  const Node& n;
  [[noreturn]] void fail(const std::string& msg) const {
    throw InvalidArgument("node '" + n.name + "' (" + op_name(n.op) + "): " + msg);
  }
  void need(bool cond, const std::string& msg) const {
    if (!cond) fail(msg);
  }
  size_t count() const { return n.inputs.size(); }
  bool has(size_t i) const { return i < n.inputs.size() && n.inputs[i] != kNoValue; }
  const Value& in(size_t i) const {
    if (!has(i)) fail("missing required input #" + std::to_string(i));
    return g.value(n.inputs[i]);
  }
  const Shape& s(size_t i) const { return in(i).shape; }
  DType dt(size_t i) const { return in(i).dtype; }
  void arity(size_t lo, size_t hi) const {
    need(count() >= lo && count() <= hi,
         "expects " + std::to_string(lo) + (lo == hi ? "" : ".." + std::to_string(hi)) + " inputs, got " +
             std::to_string(count()));
  }
  void float_act(size_t i) const {
    need(dt(i) == DType::kF32 || dt(i) == DType::kBF16 || dt(i) == DType::kF16,
         std::string("input #") + std::to_string(i) + " must be f32/bf16/f16, got " + dtype_name(dt(i)));
  }
};

bool is_int_index(DType d) { return d == DType::kI32 || d == DType::kI64; }

Shape broadcast(const Ctx& c, const Shape& a, const Shape& b) {
  const int r = std::max(a.rank(), b.rank());
  Shape out;
  for (int i = 0; i < r; ++i) {
    const int ia = i - (r - a.rank()), ib = i - (r - b.rank());
    const int64_t da = ia >= 0 ? a[ia] : 1, db = ib >= 0 ? b[ib] : 1;
    c.need(da == db || da == 1 || db == 1, "shapes " + a.str() + " and " + b.str() + " do not broadcast");
    out.push_back(da == 1 ? db : da);
  }
  return out;
}

}  // namespace

void infer_node(const Graph& g, const Node& n, Shape* out_shape, DType* out_dtype) {
  Ctx c{g, n};
  const OpAttrs& a = n.attrs;
  switch (n.op) {
    case OpKind::kLinear: {
      c.arity(2, 3);
      const Shape& x = c.s(0);
      const Shape& w = c.s(1);
      c.float_act(0);
      c.need(x.rank() >= 1, "x must have rank >= 1, got " + x.str());
      c.need(w.rank() == 2, "weight must be [N, K], got " + w.str());
      c.need(w[1] == x.dim(-1), "x " + x.str() + " and weight " + w.str() + ": K mismatch (expected " +
                                    std::to_string(w[1]) + ", got " + std::to_string(x.dim(-1)) + ")");
      if (c.has(2)) c.need(c.s(2) == Shape{w[0]}, "bias must be [" + std::to_string(w[0]) + "], got " + c.s(2).str());
      *out_shape = x;
      (*out_shape)[x.rank() - 1] = w[0];
      *out_dtype = c.dt(0);
      return;
    }
    case OpKind::kMatMul: {
      c.arity(2, 2);
      const Shape& A = c.s(0);
      const Shape& B = c.s(1);
      c.float_act(0);
      c.float_act(1);
      c.need(A.rank() >= 2 && B.rank() >= 2, "operands must have rank >= 2, got " + A.str() + " and " + B.str());
      const int64_t K = A.dim(-1);
      const int64_t Kb = a.transpose_b ? B.dim(-1) : B.dim(-2);
      const int64_t N = a.transpose_b ? B.dim(-2) : B.dim(-1);
      c.need(K == Kb, "inner dims differ: " + A.str() + " x " + B.str() + (a.transpose_b ? "^T" : ""));
      Shape ab = Shape::from(A.data(), A.rank() - 2), bb = Shape::from(B.data(), B.rank() - 2);
      Shape out = broadcast(c, ab, bb);
      out.push_back(A.dim(-2));
      out.push_back(N);
      *out_shape = out;
      *out_dtype = c.dt(0);
      return;
    }
    case OpKind::kConv2d: {
      c.arity(2, 3);
      const Shape& x = c.s(0);
      const Shape& w = c.s(1);
      c.float_act(0);
      c.need(x.rank() == 4, "x must be [B, C, H, W], got " + x.str());
      c.need(w.rank() == 4, "weight must be [O, C, kh, kw], got " + w.str());
      c.need(w[1] == x[1], "channels: x " + x.str() + " vs weight " + w.str());
      if (c.has(2)) c.need(c.s(2) == Shape{w[0]}, "bias must be [" + std::to_string(w[0]) + "], got " + c.s(2).str());
      c.need(a.stride[0] > 0 && a.stride[1] > 0 && a.pad[0] >= 0 && a.pad[1] >= 0, "bad stride/padding");
      const int64_t oh = (x[2] + 2 * a.pad[0] - w[2]) / a.stride[0] + 1;
      const int64_t ow = (x[3] + 2 * a.pad[1] - w[3]) / a.stride[1] + 1;
      c.need(oh > 0 && ow > 0, "kernel larger than padded input");
      *out_shape = Shape{x[0], w[0], oh, ow};
      *out_dtype = c.dt(0);
      return;
    }
    case OpKind::kLayerNorm:
    case OpKind::kRMSNorm: {
      const bool ln = n.op == OpKind::kLayerNorm;
      c.arity(2, ln ? 3 : 2);
      c.float_act(0);
      const int64_t D = c.s(0).dim(-1);
      // LayerNorm's weight is optional (kNoValue: no affine scale, as CogACT's DiT and pi0.5's adaRMS
      // base norm); RMSNorm's is required.
      if (!ln || c.has(1)) c.need(c.s(1) == Shape{D}, "weight must be [" + std::to_string(D) + "], got " + c.s(1).str());
      if (ln && c.has(2)) c.need(c.s(2) == Shape{D}, "bias must be [" + std::to_string(D) + "], got " + c.s(2).str());
      c.need(a.eps >= 0.f, "eps must be >= 0");
      *out_shape = c.s(0);
      *out_dtype = c.dt(0);
      return;
    }
    case OpKind::kRope: {
      c.arity(2, 2);
      c.float_act(0);
      const Shape& x = c.s(0);
      c.need(x.rank() == 4, "x must be [B, L, H, D], got " + x.str());
      c.need(x[3] % 2 == 0, "head dim must be even, got " + std::to_string(x[3]));
      c.need(is_int_index(c.dt(1)), std::string("positions must be i32/i64, got ") + dtype_name(c.dt(1)));
      c.need(c.s(1) == Shape{x[0], x[1]}, "positions must be [B, L] = [" + std::to_string(x[0]) + ", " +
                                               std::to_string(x[1]) + "], got " + c.s(1).str());
      c.need(a.theta > 0.f, "theta must be > 0");
      *out_shape = x;
      *out_dtype = c.dt(0);
      return;
    }
    case OpKind::kArgMax:
    case OpKind::kReduceMean: {
      c.arity(1, 1);
      c.float_act(0);
      c.need(c.s(0).rank() >= 1 && c.s(0)[c.s(0).rank() - 1] >= 1, "needs rank >= 1 and a non-empty last dim, got " +
                                                                       c.s(0).str());
      std::vector<int64_t> d = c.s(0).vec();
      d.back() = 1;
      *out_shape = Shape(d);
      *out_dtype = n.op == OpKind::kArgMax ? DType::kI32 : c.dt(0);
      return;
    }
    case OpKind::kSoftmax:
    case OpKind::kGelu:
    case OpKind::kSilu:
    case OpKind::kRelu:
    case OpKind::kTanh:
    case OpKind::kSigmoid:
    case OpKind::kExp:
    case OpKind::kScale: {
      c.arity(1, 1);
      c.float_act(0);
      c.need(c.s(0).rank() >= 1 || n.op != OpKind::kSoftmax, "softmax needs rank >= 1");
      *out_shape = c.s(0);
      *out_dtype = c.dt(0);
      return;
    }
    case OpKind::kAttention: {
      c.arity(3, 5);
      const Shape& q = c.s(0);
      const Shape& k = c.s(1);
      const Shape& v = c.s(2);
      c.float_act(0);
      c.need(q.rank() == 4 && k.rank() == 4 && v.rank() == 4,
             "q, k, v must be [B, L, H, D]; got " + q.str() + ", " + k.str() + ", " + v.str());
      c.need(k[0] == q[0] && v[0] == q[0], "batch sizes differ: " + q.str() + ", " + k.str() + ", " + v.str());
      c.need(k[3] == q[3], "q and k head dims differ: " + q.str() + " vs " + k.str());
      c.need(v[1] == k[1] && v[2] == k[2], "k and v must share [Lk, Hkv]: " + k.str() + " vs " + v.str());
      c.need(k[2] > 0 && q[2] % k[2] == 0, "query heads " + std::to_string(q[2]) +
                                               " not a multiple of kv heads " + std::to_string(k[2]));
      c.need(c.dt(1) == c.dt(0) && c.dt(2) == c.dt(0), "q, k, v dtypes must match");
      if (c.has(3)) {
        const Shape& m = c.s(3);
        const DType md = c.dt(3);
        c.need(md == DType::kBool || md == DType::kU8 || md == DType::kF32 || md == DType::kBF16,
               std::string("mask must be bool/u8 or f32/bf16 additive, got ") + dtype_name(md));
        c.need(m.rank() == 3 && (m[0] == q[0] || m[0] == 1) && m[1] == q[1] && m[2] == k[1],
               "mask must be [B|1, Lq, Lk] = [" + std::to_string(q[0]) + ", " + std::to_string(q[1]) + ", " +
                   std::to_string(k[1]) + "], got " + m.str());
      }
      if (c.has(4)) {
        c.need(c.dt(4) == DType::kI32, std::string("kv_len must be i32, got ") + dtype_name(c.dt(4)));
        c.need(c.s(4) == Shape{q[0]}, "kv_len must be [B] = [" + std::to_string(q[0]) + "], got " + c.s(4).str());
      }
      *out_shape = Shape{q[0], q[1], q[2], v[3]};
      *out_dtype = c.dt(0);
      return;
    }
    case OpKind::kKVWrite: {
      c.arity(3, 3);
      const Shape& cache = c.s(0);
      const Shape& x = c.s(1);
      c.need(c.in(0).kind == ValueKind::kInput,
             "the cache must be a graph input (it is written in place and kept across runs), got '" + c.in(0).name + "'");
      c.need(cache.rank() >= 2 && x.rank() == cache.rank(),
             "cache [B, Lmax, ...] and x [B, L, ...] must have one rank >= 2; got " + cache.str() + ", " + x.str());
      bool rest_ok = x[0] == cache[0] && x[1] <= cache[1];
      for (int i = 2; i < cache.rank(); ++i) rest_ok = rest_ok && x[i] == cache[i];
      c.need(rest_ok, "x " + x.str() + " must match the cache " + cache.str() + " except along dim 1 (L <= Lmax)");
      c.need(c.dt(1) == c.dt(0), std::string("x dtype ") + dtype_name(c.dt(1)) + " differs from the cache's " +
                                     dtype_name(c.dt(0)));
      c.need(is_int_index(c.dt(2)) && c.s(2) == Shape{cache[0]},
             "pos must be i32/i64 [B] = [" + std::to_string(cache[0]) + "], got " + dtype_name(c.dt(2)) + c.s(2).str());
      *out_shape = cache;
      *out_dtype = c.dt(0);
      return;
    }
    case OpKind::kSwiGLU:
    case OpKind::kGeGLU:
    case OpKind::kAdd:
    case OpKind::kMul:
    case OpKind::kSub:
    case OpKind::kDiv: {
      c.arity(2, 2);
      c.float_act(0);
      c.float_act(1);
      const bool glu = n.op == OpKind::kSwiGLU || n.op == OpKind::kGeGLU;
      if (glu) {
        c.need(c.s(0) == c.s(1), "gate " + c.s(0).str() + " and up " + c.s(1).str() + " shapes differ");
        *out_shape = c.s(0);
      } else {
        *out_shape = broadcast(c, c.s(0), c.s(1));
      }
      c.need(c.dt(0) == c.dt(1), std::string("dtypes differ: ") + dtype_name(c.dt(0)) + " vs " + dtype_name(c.dt(1)));
      *out_dtype = c.dt(0);
      return;
    }
    case OpKind::kConcat: {
      c.need(c.count() >= 1, "needs at least one input");
      const Shape& s0 = c.s(0);
      const int r = s0.rank();
      const int ax = a.axis < 0 ? a.axis + r : a.axis;
      c.need(ax >= 0 && ax < r, "axis " + std::to_string(a.axis) + " out of range for " + s0.str());
      Shape out = s0;
      for (size_t i = 1; i < c.count(); ++i) {
        const Shape& si = c.s(i);
        c.need(si.rank() == r && c.dt(i) == c.dt(0), "input #" + std::to_string(i) + " " + si.str() +
                                                         " incompatible with " + s0.str());
        for (int d = 0; d < r; ++d)
          if (d != ax) c.need(si[d] == s0[d], "input #" + std::to_string(i) + " " + si.str() + " vs " + s0.str());
        out[ax] += si[ax];
      }
      *out_shape = out;
      *out_dtype = c.dt(0);
      return;
    }
    case OpKind::kSlice: {
      c.arity(1, 1);
      const Shape& x = c.s(0);
      const int ax = a.axis < 0 ? a.axis + x.rank() : a.axis;
      c.need(ax >= 0 && ax < x.rank(), "axis " + std::to_string(a.axis) + " out of range for " + x.str());
      c.need(0 <= a.start && a.start <= a.end && a.end <= x[ax],
             "range [" + std::to_string(a.start) + ", " + std::to_string(a.end) + ") out of bounds for " + x.str());
      *out_shape = x;
      (*out_shape)[ax] = a.end - a.start;
      *out_dtype = c.dt(0);
      return;
    }
    case OpKind::kReshape: {
      c.arity(1, 1);
      Shape s = a.shape;
      int infer = -1;
      int64_t known = 1;
      for (int i = 0; i < s.rank(); ++i) {
        if (s[i] == -1) {
          c.need(infer < 0, "more than one -1 in " + a.shape.str());
          infer = i;
        } else {
          c.need(s[i] >= 0, "negative dim in " + a.shape.str());
          known *= s[i];
        }
      }
      const int64_t numel = c.s(0).numel();
      if (infer >= 0) {
        c.need(known > 0 && numel % known == 0, "cannot infer -1 in " + a.shape.str() + " from " + c.s(0).str());
        s[infer] = numel / known;
      }
      c.need(s.numel() == numel, c.s(0).str() + " cannot be reshaped to " + s.str());
      *out_shape = s;
      *out_dtype = c.dt(0);
      return;
    }
    case OpKind::kPermute: {
      c.arity(1, 1);
      const Shape& x = c.s(0);
      bool seen[kMaxDims] = {};
      Shape out;
      for (int i = 0; i < x.rank(); ++i) {
        const int p = a.perm[static_cast<size_t>(i)];
        c.need(p >= 0 && p < x.rank() && !seen[p], "invalid permutation for " + x.str());
        seen[p] = true;
        out.push_back(x[p]);
      }
      *out_shape = out;
      *out_dtype = c.dt(0);
      return;
    }
    case OpKind::kEmbedding: {
      c.arity(2, 2);
      const Shape& t = c.s(0);
      c.need(t.rank() == 2, "table must be [V, D], got " + t.str());
      c.need(is_int_index(c.dt(1)), std::string("ids must be i32/i64, got ") + dtype_name(c.dt(1)));
      Shape out = c.s(1);
      out.push_back(t[1]);
      *out_shape = out;
      *out_dtype = c.dt(0);
      c.need((c.dt(0) == DType::kF32 || c.dt(0) == DType::kBF16), std::string("table must be f32/bf16, got ") + dtype_name(c.dt(0)));
      return;
    }
    case OpKind::kGather: {
      c.arity(2, 2);
      const Shape& x = c.s(0);
      const int ax = a.axis < 0 ? a.axis + x.rank() : a.axis;
      c.need(ax >= 0 && ax < x.rank(), "axis " + std::to_string(a.axis) + " out of range for " + x.str());
      c.need(is_int_index(c.dt(1)) && c.s(1).rank() == 1,
             std::string("idx must be i32/i64 [K], got ") + dtype_name(c.dt(1)) + c.s(1).str());
      c.need(dtype_size(c.dt(0)) >= 1 && dtype_size(c.dt(0)) <= 8, "x must have a plain element type");
      Shape out = x;
      out[ax] = c.s(1)[0];
      *out_shape = out;
      *out_dtype = c.dt(0);
      return;
    }
    case OpKind::kExpand: {
      c.arity(1, 1);
      const Shape& x = c.s(0);
      const Shape& to = a.shape;
      c.need(to.rank() >= x.rank(), "cannot expand " + x.str() + " to the lower rank " + to.str());
      for (int i = 0; i < x.rank(); ++i) {
        const int64_t d = x[i], t = to[i + to.rank() - x.rank()];
        c.need(t >= 0 && (d == t || d == 1), "cannot expand " + x.str() + " to " + to.str() + " (dim " +
                                                 std::to_string(i) + " is " + std::to_string(d) + ")");
      }
      c.need(dtype_size(c.dt(0)) >= 1 && dtype_size(c.dt(0)) <= 8, "x must have a plain element type");
      *out_shape = to;
      *out_dtype = c.dt(0);
      return;
    }
    case OpKind::kPixelShuffle: {
      c.arity(1, 1);
      const Shape& x = c.s(0);
      c.need(x.rank() == 3, "x must be [B, N, C], got " + x.str());
      const int r = a.factor;
      c.need(r >= 1, "factor must be >= 1");
      int64_t side = 0;
      while ((side + 1) * (side + 1) <= x[1]) ++side;
      c.need(side * side == x[1], "token count " + std::to_string(x[1]) + " is not a square grid");
      c.need(side % r == 0, "grid side " + std::to_string(side) + " not divisible by factor " + std::to_string(r));
      *out_shape = Shape{x[0], x[1] / (r * r), x[2] * r * r};
      *out_dtype = c.dt(0);
      return;
    }
    case OpKind::kResizeBilinear: {
      c.arity(1, 1);
      c.float_act(0);
      const Shape& x = c.s(0);
      c.need(x.rank() == 4, "x must be [B, C, H, W], got " + x.str());
      c.need(a.shape.rank() == 2 && a.shape[0] > 0 && a.shape[1] > 0, "output size must be {OH, OW} > 0");
      c.need(x[2] > 0 && x[3] > 0, "empty input image " + x.str());
      *out_shape = Shape{x[0], x[1], a.shape[0], a.shape[1]};
      *out_dtype = c.dt(0);
      return;
    }
    case OpKind::kCast: {
      c.arity(1, 1);
      c.need(!is_quantized(a.dtype) && !is_quantized(c.dt(0)), "cast to/from quantized types is not an op");
      *out_shape = c.s(0);
      *out_dtype = a.dtype;
      return;
    }
    case OpKind::kCopy: {
      c.arity(1, 1);
      *out_shape = c.s(0);
      *out_dtype = c.dt(0);
      return;
    }
    case OpKind::kCount:
      break;
  }
  c.fail("unknown op");
}

}  // namespace vlart
