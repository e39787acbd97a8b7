#include "cpu/elementwise.h"

#include <algorithm>
#include <cmath>
#include <type_traits>
#include <cstring>

#include "cpu/vec_math.h"

namespace vlart::kernels {
namespace {

// Splits [0, n) into kFlatChunk pieces and runs f(begin, len) on each, in parallel when large.
template <typename F>
void flat_chunks(int64_t n, int threads, const F& f) {
  const int64_t chunks = (n + kFlatChunk - 1) / kFlatChunk;
  parallel_for(chunks, kFlatChunk, threads, [&](int64_t c) {
    const int64_t b = c * kFlatChunk;
    f(b, std::min(kFlatChunk, n - b));
  });
}

// ---------------------------------------------------------------- unary / GLU

struct GeluErf {
  float operator()(float v) const { return gelu_erf_f(v); }
};
struct GeluTanh {
  float operator()(float v) const { return gelu_tanh_f(v); }
};
struct Silu {
  float operator()(float v) const { return silu_f(v); }
};
struct Relu {
  float operator()(float v) const { return v < 0.f ? 0.f : v; }
};
struct Affine {
  float s, b;
  float operator()(float v) const { return v * s + b; }
};
struct Tanh {
  float operator()(float v) const { return std::tanh(v); }
};
struct Sigmoid {
  float operator()(float v) const { return sigmoid_f(v); }
};
struct Exp {
  float operator()(float v) const { return exp_f(v); }
};

template <typename T, typename Op>
void unary_t(const T* x, T* y, int64_t n, Op op, int threads) {
  flat_chunks(n, threads, [&](int64_t b, int64_t len) {
    const T* xs = x + b;
    T* ys = y + b;
#pragma omp simd
    for (int64_t i = 0; i < len; ++i) ys[i] = from_f<T>(op(to_f(xs[i])));
  });
}

template <typename T>
void unary_dispatch(UnaryOp op, const T* x, T* y, int64_t n, float scale, float shift, int threads) {
  switch (op) {
    case UnaryOp::kGeluErf: return unary_t(x, y, n, GeluErf{}, threads);
    case UnaryOp::kGeluTanh: return unary_t(x, y, n, GeluTanh{}, threads);
    case UnaryOp::kSilu: return unary_t(x, y, n, Silu{}, threads);
    case UnaryOp::kRelu: return unary_t(x, y, n, Relu{}, threads);
    case UnaryOp::kScale: return unary_t(x, y, n, Affine{scale, shift}, threads);
    case UnaryOp::kTanh: return unary_t(x, y, n, Tanh{}, threads);
    case UnaryOp::kSigmoid: return unary_t(x, y, n, Sigmoid{}, threads);
    case UnaryOp::kExp: return unary_t(x, y, n, Exp{}, threads);
  }
}

template <typename T, typename Act>
void glu_t(const T* g, const T* u, T* y, int64_t n, Act act, int threads) {
  flat_chunks(n, threads, [&](int64_t b, int64_t len) {
    const T* gs = g + b;
    const T* us = u + b;
    T* ys = y + b;
#pragma omp simd
    for (int64_t i = 0; i < len; ++i) ys[i] = from_f<T>(act(to_f(gs[i])) * to_f(us[i]));
  });
}

// ---------------------------------------------------------------- broadcast binary

template <BinaryOp OP>
inline float apply(float a, float b) {
  if constexpr (OP == BinaryOp::kAdd) return a + b;
  if constexpr (OP == BinaryOp::kMul) return a * b;
  if constexpr (OP == BinaryOp::kSub) return a - b;
  return a / b;
}

// One contiguous output run; A1/B1 say whether the operand advances (stride 1) or is repeated
// (stride 0), so every case is a plain vectorisable loop.
template <typename T, BinaryOp OP, bool A1, bool B1>
void run_inner(const T* a, const T* b, T* y, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) y[i] = from_f<T>(apply<OP>(to_f(a[A1 ? i : 0]), to_f(b[B1 ? i : 0])));
}

template <typename T>
using InnerFn = void (*)(const T*, const T*, T*, int64_t);

template <typename T, BinaryOp OP>
InnerFn<T> pick_inner(bool a1, bool b1) {
  if (a1) return b1 ? run_inner<T, OP, true, true> : run_inner<T, OP, true, false>;
  return b1 ? run_inner<T, OP, false, true> : run_inner<T, OP, false, false>;
}

template <typename T, BinaryOp OP>
void binary_t(const BroadcastPlan& p, const T* a, const T* b, T* y, int threads) {
  switch (p.kind) {
    case BroadcastPlan::kSame:
      flat_chunks(p.numel, threads, [&](int64_t s, int64_t len) {
        run_inner<T, OP, true, true>(a + s, b + s, y + s, len);
      });
      return;
    case BroadcastPlan::kRowB:
    case BroadcastPlan::kRowA: {
      const int64_t M = p.shape[0], N = p.shape[1];
      const bool row_b = p.kind == BroadcastPlan::kRowB;
      const int64_t group = std::max<int64_t>(1, kFlatChunk / N);
      parallel_for((M + group - 1) / group, group * N, threads, [&](int64_t it) {
        const int64_t r1 = std::min(M, (it + 1) * group);
        for (int64_t r = it * group; r < r1; ++r) {
          if (row_b)
            run_inner<T, OP, true, true>(a + r * N, b, y + r * N, N);
          else
            run_inner<T, OP, true, true>(a, b + r * N, y + r * N, N);
        }
      });
      return;
    }
    case BroadcastPlan::kGeneral:
      break;
  }
  const int r = p.rank;
  const int64_t inner = p.shape[r - 1];
  const int64_t rows = p.numel / inner;
  const bool a1 = p.sa[r - 1] != 0, b1 = p.sb[r - 1] != 0;
  const InnerFn<T> fn = pick_inner<T, OP>(a1, b1);
  // Offsets of a and b for output row `row` (index over the collapsed outer dims).
  auto offsets = [&](int64_t row, int64_t* idx, int64_t* oa, int64_t* ob) {
    *oa = *ob = 0;
    for (int d = r - 2; d >= 0; --d) {
      idx[d] = row % p.shape[d];
      row /= p.shape[d];
      *oa += idx[d] * p.sa[d];
      *ob += idx[d] * p.sb[d];
    }
  };
  if (inner >= kFlatChunk) {
    const int64_t cpr = (inner + kFlatChunk - 1) / kFlatChunk;
    parallel_for(rows * cpr, kFlatChunk, threads, [&](int64_t it) {
      const int64_t row = it / cpr, c0 = (it % cpr) * kFlatChunk;
      int64_t idx[kMaxDims], oa, ob;
      offsets(row, idx, &oa, &ob);
      fn(a + oa + (a1 ? c0 : 0), b + ob + (b1 ? c0 : 0), y + row * inner + c0,
         std::min(kFlatChunk, inner - c0));
    });
    return;
  }
  const int64_t group = std::max<int64_t>(1, kFlatChunk / inner);
  parallel_for((rows + group - 1) / group, group * inner, threads, [&](int64_t it) {
    const int64_t r0 = it * group, r1 = std::min(rows, r0 + group);
    int64_t idx[kMaxDims], oa, ob;
    offsets(r0, idx, &oa, &ob);
    for (int64_t row = r0; row < r1; ++row) {
      fn(a + oa, b + ob, y + row * inner, inner);
      // Odometer step over the outer dims.
      for (int d = r - 2; d >= 0; --d) {
        oa += p.sa[d];
        ob += p.sb[d];
        if (++idx[d] < p.shape[d]) break;
        oa -= idx[d] * p.sa[d];
        ob -= idx[d] * p.sb[d];
        idx[d] = 0;
      }
    }
  });
}

template <typename T>
void binary_dispatch(BinaryOp op, const BroadcastPlan& p, const T* a, const T* b, T* y, int threads) {
  switch (op) {
    case BinaryOp::kAdd: return binary_t<T, BinaryOp::kAdd>(p, a, b, y, threads);
    case BinaryOp::kMul: return binary_t<T, BinaryOp::kMul>(p, a, b, y, threads);
    case BinaryOp::kSub: return binary_t<T, BinaryOp::kSub>(p, a, b, y, threads);
    case BinaryOp::kDiv: return binary_t<T, BinaryOp::kDiv>(p, a, b, y, threads);
  }
}

bool is_cast_float(DType d) { return d == DType::kF32 || d == DType::kBF16 || d == DType::kF16; }

}  // namespace

void unary(UnaryOp op, const void* x, DType t, void* y, int64_t n, float scale, float shift, int threads) {
  if (t == DType::kF32)
    unary_dispatch(op, static_cast<const float*>(x), static_cast<float*>(y), n, scale, shift, threads);
  else
    unary_dispatch(op, static_cast<const uint16_t*>(x), static_cast<uint16_t*>(y), n, scale, shift, threads);
}

void glu(GluOp op, const void* gate, const void* up, DType t, void* y, int64_t n, int threads) {
  if (t == DType::kF32) {
    const auto* g = static_cast<const float*>(gate);
    const auto* u = static_cast<const float*>(up);
    auto* o = static_cast<float*>(y);
    if (op == GluOp::kSwiGLU)
      glu_t(g, u, o, n, Silu{}, threads);
    else
      glu_t(g, u, o, n, GeluTanh{}, threads);
  } else {
    const auto* g = static_cast<const uint16_t*>(gate);
    const auto* u = static_cast<const uint16_t*>(up);
    auto* o = static_cast<uint16_t*>(y);
    if (op == GluOp::kSwiGLU)
      glu_t(g, u, o, n, Silu{}, threads);
    else
      glu_t(g, u, o, n, GeluTanh{}, threads);
  }
}

BroadcastPlan make_broadcast_plan(const Shape& a, const Shape& b) {
  const int r = std::max(a.rank(), b.rank());
  int64_t os[kMaxDims], as[kMaxDims], bs[kMaxDims];
  int64_t ca = 1, cb = 1;  // contiguous strides of a and b within their own shapes
  for (int i = r - 1; i >= 0; --i) {
    const int ia = i - (r - a.rank()), ib = i - (r - b.rank());
    const int64_t da = ia >= 0 ? a[ia] : 1, db = ib >= 0 ? b[ib] : 1;
    os[i] = da == 1 ? db : da;
    as[i] = da == 1 ? 0 : ca;
    bs[i] = db == 1 ? 0 : cb;
    ca *= da;
    cb *= db;
  }
  BroadcastPlan p;
  p.numel = 1;
  for (int i = 0; i < r; ++i) {
    p.numel *= os[i];
    if (os[i] == 1) continue;  // contributes nothing to addressing
    const int q = p.rank - 1;
    if (q >= 0 && p.sa[q] == as[i] * os[i] && p.sb[q] == bs[i] * os[i]) {
      p.shape[q] *= os[i];  // both operands are linear across the pair: merge
      p.sa[q] = as[i];
      p.sb[q] = bs[i];
    } else {
      p.shape[p.rank] = os[i];
      p.sa[p.rank] = as[i];
      p.sb[p.rank] = bs[i];
      ++p.rank;
    }
  }
  if (p.rank == 0) {  // every dim is 1: a single element
    p.rank = 1;
    p.shape[0] = 1;
    p.sa[0] = p.sb[0] = 1;
  }
  if (p.rank == 1 && p.sa[0] == 1 && p.sb[0] == 1)
    p.kind = BroadcastPlan::kSame;
  else if (p.rank == 2 && p.sa[0] == p.shape[1] && p.sa[1] == 1 && p.sb[0] == 0 && p.sb[1] == 1)
    p.kind = BroadcastPlan::kRowB;
  else if (p.rank == 2 && p.sb[0] == p.shape[1] && p.sb[1] == 1 && p.sa[0] == 0 && p.sa[1] == 1)
    p.kind = BroadcastPlan::kRowA;
  else
    p.kind = BroadcastPlan::kGeneral;
  return p;
}

void binary(BinaryOp op, const BroadcastPlan& p, const void* a, const void* b, DType t, void* y,
            int threads) {
  if (p.numel == 0) return;
  if (t == DType::kF32)
    binary_dispatch(op, p, static_cast<const float*>(a), static_cast<const float*>(b), static_cast<float*>(y),
                    threads);
  else
    binary_dispatch(op, p, static_cast<const uint16_t*>(a), static_cast<const uint16_t*>(b),
                    static_cast<uint16_t*>(y), threads);
}

bool cast_supported(DType from, DType to) {
  return is_cast_float(to) && (is_cast_float(from) || from == DType::kI32 || from == DType::kI64);
}

void cast(const void* x, DType from, void* y, DType to, int64_t n, int threads) {
  if (from == to) {
    const size_t es = dtype_size(from);
    flat_chunks(n, threads, [&](int64_t b, int64_t len) {
      std::memcpy(static_cast<char*>(y) + b * es, static_cast<const char*>(x) + b * es, len * es);
    });
    return;
  }
  if (from == DType::kF32 && to == DType::kBF16) {
    const auto* s = static_cast<const float*>(x);
    auto* d = static_cast<uint16_t*>(y);
    flat_chunks(n, threads, [&](int64_t b, int64_t len) {
#pragma omp simd
      for (int64_t i = b; i < b + len; ++i) d[i] = f32_to_bf16(s[i]);
    });
    return;
  }
  if (from == DType::kBF16 && to == DType::kF32) {
    const auto* s = static_cast<const uint16_t*>(x);
    auto* d = static_cast<float*>(y);
    flat_chunks(n, threads, [&](int64_t b, int64_t len) {
#pragma omp simd
      for (int64_t i = b; i < b + len; ++i) d[i] = bf16_to_f32(s[i]);
    });
    return;
  }
  // Everything else goes through f32 in small stack-resident pieces using the dtype table.
  const DTypeTraits& src = dtype_traits(from);
  const DTypeTraits& dst = dtype_traits(to);
  const size_t ss = dtype_size(from), ds = dtype_size(to);
  flat_chunks(n, threads, [&](int64_t b, int64_t len) {
    constexpr int64_t kPiece = 512;
    float buf[kPiece];
    for (int64_t o = 0; o < len; o += kPiece) {
      const int64_t m = std::min(kPiece, len - o);
      src.to_float(static_cast<const char*>(x) + (b + o) * ss, buf, m);
      dst.from_float(buf, static_cast<char*>(y) + (b + o) * ds, m);
    }
  });
}

void argmax_rows(const void* x, DType t, int64_t rows, int64_t n, int32_t* out, int threads) {
  auto body = [&](auto* xs) {
    parallel_for(rows, n, threads, [&](int64_t r) {
      const auto* row = xs + r * n;
      int64_t best = 0;
      float bv = to_f(row[0]);
      if (!std::isnan(bv))
        for (int64_t j = 1; j < n; ++j) {
          const float v = to_f(row[j]);
          if (std::isnan(v)) {  // NaN is the maximum, its first occurrence wins
            best = j;
            break;
          }
          if (v > bv) {
            bv = v;
            best = j;
          }
        }
      out[r] = static_cast<int32_t>(best);
    });
  };
  if (t == DType::kBF16)
    body(static_cast<const uint16_t*>(x));
  else
    body(static_cast<const float*>(x));
}

void mean_rows(const void* x, DType t, int64_t rows, int64_t n, void* out, int threads) {
  auto body = [&](auto* xs, auto* ys) {
    parallel_for(rows, n, threads, [&](int64_t r) {
      const auto* row = xs + r * n;
      float s = 0.f;
#pragma omp simd reduction(+ : s)
      for (int64_t j = 0; j < n; ++j) s += to_f(row[j]);
      ys[r] = from_f<std::remove_cv_t<std::remove_pointer_t<decltype(ys)>>>(s / static_cast<float>(n));
    });
  };
  if (t == DType::kBF16)
    body(static_cast<const uint16_t*>(x), static_cast<uint16_t*>(out));
  else
    body(static_cast<const float*>(x), static_cast<float*>(out));
}

}  // namespace vlart::kernels
