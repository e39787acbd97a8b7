#include "cpu/layout.h"

#include <algorithm>
#include <cstring>

#include "cpu/vec_math.h"

namespace vlart::kernels {
namespace {

// Rows per work item so that one item moves roughly kFlatChunk elements' worth of bytes.
int64_t rows_per_item(int64_t row_bytes) {
  return std::max<int64_t>(1, kFlatChunk * 4 / std::max<int64_t>(1, row_bytes));
}

// Tiled 2D transpose inside the permute: out[i * os + j] = in[i + j * is], i < Q, j < M.
template <typename E>
void transpose_tile(const E* in, E* out, int64_t i0, int64_t i1, int64_t M, int64_t is, int64_t os) {
  constexpr int64_t kTile = 32;
  for (int64_t jb = 0; jb < M; jb += kTile) {
    const int64_t jn = std::min(M, jb + kTile);
    for (int64_t i = i0; i < i1; ++i) {
      const E* s = in + i + jb * is;
      E* d = out + i * os + jb;
      for (int64_t j = 0; j < jn - jb; ++j) d[j] = s[j * is];
    }
  }
}

template <typename E>
void permute_transpose(const PermutePlan& p, const E* src, E* dst, int threads) {
  const int last = p.rank - 1, q = p.unit_dim;
  const int64_t M = p.shape[last], Q = p.shape[q];
  const int64_t is = p.in_stride[last], os = p.out_stride[q];
  const int64_t others = p.numel / (M * Q);
  constexpr int64_t kBlock = 32;  // rows of the tile handled per work item
  const int64_t qblocks = (Q + kBlock - 1) / kBlock;
  parallel_for(others * qblocks, kBlock * M, threads, [&](int64_t it) {
    int64_t o = it / qblocks;
    const int64_t i0 = (it % qblocks) * kBlock;
    // Offsets of this "other" index (all dims but q and last).
    int64_t in_off = 0, out_off = 0;
    for (int d = last - 1; d >= 0; --d) {
      if (d == q) continue;
      const int64_t id = o % p.shape[d];
      o /= p.shape[d];
      in_off += id * p.in_stride[d];
      out_off += id * p.out_stride[d];
    }
    transpose_tile(src + in_off, dst + out_off, i0, std::min(Q, i0 + kBlock), M, is, os);
  });
}

template <typename E>
void gather_rows(const void* table, size_t row_bytes, const E* ids, int64_t n, void* dst, int threads) {
  const auto* t = static_cast<const char*>(table);
  auto* d = static_cast<char*>(dst);
  const int64_t per = rows_per_item(static_cast<int64_t>(row_bytes));
  parallel_for((n + per - 1) / per, per * static_cast<int64_t>(row_bytes) / 4, threads, [&](int64_t it) {
    const int64_t e = std::min(n, (it + 1) * per);
    for (int64_t i = it * per; i < e; ++i)
      std::memcpy(d + i * row_bytes, t + static_cast<int64_t>(ids[i]) * static_cast<int64_t>(row_bytes),
                  row_bytes);
  });
}

template <typename E>
int64_t find_bad(const E* ids, int64_t n, int64_t V) {
  for (int64_t i = 0; i < n; ++i)
    if (ids[i] < 0 || static_cast<int64_t>(ids[i]) >= V) return i;
  return -1;
}

template <typename T>
void resize_t(const T* x, T* y, int64_t planes, int64_t H, int64_t W, const ResizeAxis& ah,
              const ResizeAxis& aw, int threads) {
  const int64_t OH = static_cast<int64_t>(ah.i0.size()), OW = static_cast<int64_t>(aw.i0.size());
  const int64_t* xi0 = aw.i0.data();
  const int64_t* xi1 = aw.i1.data();
  const float* xw0 = aw.w0.data();
  const float* xw1 = aw.w1.data();
  parallel_for(planes * OH, OW, threads, [&](int64_t row) {
    const int64_t pl = row / OH, oy = row % OH;
    const T* r0 = x + (pl * H + ah.i0[static_cast<size_t>(oy)]) * W;
    const T* r1 = x + (pl * H + ah.i1[static_cast<size_t>(oy)]) * W;
    const float wy0 = ah.w0[static_cast<size_t>(oy)], wy1 = ah.w1[static_cast<size_t>(oy)];
    T* out = y + row * OW;
    for (int64_t ox = 0; ox < OW; ++ox) {
      const float top = xw0[ox] * to_f(r0[xi0[ox]]) + xw1[ox] * to_f(r0[xi1[ox]]);
      const float bot = xw0[ox] * to_f(r1[xi0[ox]]) + xw1[ox] * to_f(r1[xi1[ox]]);
      out[ox] = from_f<T>(wy0 * top + wy1 * bot);
    }
  });
}

}  // namespace

void concat(const void* const* srcs, const int64_t* chunk_bytes, int n_inputs, int64_t outer,
            int64_t out_row_bytes, void* dst, int threads) {
  auto* d = static_cast<char*>(dst);
  parallel_for(outer * n_inputs, out_row_bytes / n_inputs / 4 + 1, threads, [&](int64_t it) {
    const int64_t o = it / n_inputs;
    const int i = static_cast<int>(it % n_inputs);
    int64_t col = 0;
    for (int k = 0; k < i; ++k) col += chunk_bytes[k];
    std::memcpy(d + o * out_row_bytes + col, static_cast<const char*>(srcs[i]) + o * chunk_bytes[i],
                static_cast<size_t>(chunk_bytes[i]));
  });
}

void slice(const void* src, void* dst, int64_t outer, int64_t in_row_bytes, int64_t offset_bytes,
           int64_t out_row_bytes, int threads) {
  const auto* s = static_cast<const char*>(src);
  auto* d = static_cast<char*>(dst);
  const int64_t per = rows_per_item(out_row_bytes);
  parallel_for((outer + per - 1) / per, per * out_row_bytes / 4, threads, [&](int64_t it) {
    const int64_t e = std::min(outer, (it + 1) * per);
    for (int64_t o = it * per; o < e; ++o)
      std::memcpy(d + o * out_row_bytes, s + o * in_row_bytes + offset_bytes, static_cast<size_t>(out_row_bytes));
  });
}

PermutePlan make_permute_plan(const Shape& in, const int* perm, size_t esize) {
  const int r = in.rank();
  int64_t st[kMaxDims];
  int64_t c = 1;
  for (int i = r - 1; i >= 0; --i) {
    st[i] = c;
    c *= in[i];
  }
  PermutePlan p;
  p.esize = esize;
  p.numel = in.numel();
  for (int k = 0; k < r; ++k) {
    const int64_t size = in[perm[k]], stride = st[perm[k]];
    if (size == 1) continue;
    const int q = p.rank - 1;
    if (q >= 0 && p.in_stride[q] == stride * size) {  // consecutive input dims: one dim
      p.shape[q] *= size;
      p.in_stride[q] = stride;
    } else {
      p.shape[p.rank] = size;
      p.in_stride[p.rank] = stride;
      ++p.rank;
    }
  }
  if (p.rank == 0) {
    p.rank = 1;
    p.shape[0] = p.numel;
    p.in_stride[0] = 1;
  }
  c = 1;
  for (int i = p.rank - 1; i >= 0; --i) {
    p.out_stride[i] = c;
    c *= p.shape[i];
  }
  if (p.in_stride[p.rank - 1] != 1)
    for (int i = 0; i < p.rank; ++i)
      if (p.in_stride[i] == 1) p.unit_dim = i;
  return p;
}

void permute(const PermutePlan& p, const void* src, void* dst, int threads) {
  if (p.numel == 0) return;
  if (p.unit_dim >= 0) {
    switch (p.esize) {
      case 1: return permute_transpose(p, static_cast<const uint8_t*>(src), static_cast<uint8_t*>(dst), threads);
      case 2: return permute_transpose(p, static_cast<const uint16_t*>(src), static_cast<uint16_t*>(dst), threads);
      case 4: return permute_transpose(p, static_cast<const uint32_t*>(src), static_cast<uint32_t*>(dst), threads);
      default: return permute_transpose(p, static_cast<const uint64_t*>(src), static_cast<uint64_t*>(dst), threads);
    }
  }
  // The innermost output dim is contiguous in the input: copy whole rows.
  const int last = p.rank - 1;
  const int64_t inner = p.shape[last];
  const int64_t row_bytes = inner * static_cast<int64_t>(p.esize);
  const int64_t rows = p.numel / inner;
  const auto* s = static_cast<const char*>(src);
  auto* d = static_cast<char*>(dst);
  if (rows == 1) {  // identity after collapsing: a flat copy, split for the threads
    const int64_t chunk = kFlatChunk * 4;
    parallel_for((row_bytes + chunk - 1) / chunk, kFlatChunk, threads, [&](int64_t it) {
      const int64_t b = it * chunk;
      std::memcpy(d + b, s + b, static_cast<size_t>(std::min(chunk, row_bytes - b)));
    });
    return;
  }
  const int64_t per = rows_per_item(row_bytes);
  parallel_for((rows + per - 1) / per, per * row_bytes / 4, threads, [&](int64_t it) {
    const int64_t r0 = it * per, r1 = std::min(rows, r0 + per);
    int64_t idx[kMaxDims];
    int64_t off = 0, rem = r0;
    for (int dd = last - 1; dd >= 0; --dd) {
      idx[dd] = rem % p.shape[dd];
      rem /= p.shape[dd];
      off += idx[dd] * p.in_stride[dd];
    }
    for (int64_t row = r0; row < r1; ++row) {
      std::memcpy(d + row * row_bytes, s + off * static_cast<int64_t>(p.esize), static_cast<size_t>(row_bytes));
      for (int dd = last - 1; dd >= 0; --dd) {  // odometer step
        off += p.in_stride[dd];
        if (++idx[dd] < p.shape[dd]) break;
        off -= idx[dd] * p.in_stride[dd];
        idx[dd] = 0;
      }
    }
  });
}

int64_t embedding_find_bad_id(const void* ids, bool ids_i64, int64_t n, int64_t V) {
  return ids_i64 ? find_bad(static_cast<const int64_t*>(ids), n, V) : find_bad(static_cast<const int32_t*>(ids), n, V);
}

void embedding(const void* table, size_t row_bytes, const void* ids, bool ids_i64, int64_t n, void* dst,
               int threads) {
  if (ids_i64)
    gather_rows(table, row_bytes, static_cast<const int64_t*>(ids), n, dst, threads);
  else
    gather_rows(table, row_bytes, static_cast<const int32_t*>(ids), n, dst, threads);
}

int64_t find_bad_index(const void* idx, bool idx_i64, int64_t k, int64_t n) {
  return idx_i64 ? find_bad(static_cast<const int64_t*>(idx), k, n) : find_bad(static_cast<const int32_t*>(idx), k, n);
}

void gather_axis(const void* src, const void* idx, bool idx_i64, int64_t outer, int64_t n, int64_t k,
                 size_t inner_bytes, void* dst, int threads) {
  const auto* s = static_cast<const char*>(src);
  auto* d = static_cast<char*>(dst);
  const auto ib = static_cast<int64_t>(inner_bytes);
  parallel_for(outer * k, ib / 4, threads, [&](int64_t t) {
    const int64_t o = t / k, j = t % k;
    const int64_t r = idx_i64 ? static_cast<const int64_t*>(idx)[j] : static_cast<const int32_t*>(idx)[j];
    std::memcpy(d + t * ib, s + (o * n + r) * ib, inner_bytes);
  });
}

int64_t kv_write(void* cache, const void* x, const void* pos, bool pos_i64, int64_t B, int64_t Lmax, int64_t L,
                 size_t row_bytes) {
  for (int64_t b = 0; b < B; ++b) {
    const int64_t p = pos_i64 ? static_cast<const int64_t*>(pos)[b] : static_cast<const int32_t*>(pos)[b];
    if (p < 0 || p > Lmax - L) return b;
  }
  const auto rb = static_cast<int64_t>(row_bytes);
  for (int64_t b = 0; b < B; ++b) {
    const int64_t p = pos_i64 ? static_cast<const int64_t*>(pos)[b] : static_cast<const int32_t*>(pos)[b];
    std::memcpy(static_cast<char*>(cache) + (b * Lmax + p) * rb, static_cast<const char*>(x) + b * L * rb,
                static_cast<size_t>(L * rb));
  }
  return -1;
}

void expand(const void* src, const Shape& in, const Shape& out, size_t esize, void* dst, int threads) {
  const int r = out.rank();
  if (r == 0) {
    std::memcpy(dst, src, esize);
    return;
  }
  // Input element stride of every output dim (0 where broadcast).
  int64_t stride[kMaxDims] = {};
  int64_t st = 1;
  for (int i = in.rank() - 1; i >= 0; --i) {
    const int o = i + r - in.rank();
    stride[o] = in[i] == 1 && out[o] != 1 ? 0 : st;
    st *= in[i];
  }
  const int64_t W = out[r - 1], rows = W > 0 ? out.numel() / W : 0;
  const auto* s = static_cast<const char*>(src);
  auto* d = static_cast<char*>(dst);
  const auto es = static_cast<int64_t>(esize);
  parallel_for(rows, W * es / 4, threads, [&](int64_t row) {
    int64_t off = 0, rem = row;
    for (int dd = r - 2; dd >= 0; --dd) {
      off += (rem % out[dd]) * stride[dd];
      rem /= out[dd];
    }
    char* o = d + row * W * es;
    if (stride[r - 1] != 0) {
      std::memcpy(o, s + off * es, static_cast<size_t>(W * es));
    } else {
      for (int64_t j = 0; j < W; ++j) std::memcpy(o + j * es, s + off * es, esize);
    }
  });
}

void pixel_shuffle(const void* x, void* dst, int64_t B, int64_t S, int64_t r, size_t token_bytes,
                   int threads) {
  const auto* s = static_cast<const char*>(x);
  auto* d = static_cast<char*>(dst);
  const int64_t side = S / r;                         // output grid side
  const int64_t tb = static_cast<int64_t>(token_bytes);
  const int64_t run = r * tb;                         // r consecutive input tokens = r*C features
  parallel_for(B * side * side, r * run / 4, threads, [&](int64_t t) {
    const int64_t b = t / (side * side), Y = (t / side) % side, X = t % side;
    char* out = d + t * r * run;
    const char* in = s + b * S * S * tb;
    for (int64_t j = 0; j < r; ++j)
      std::memcpy(out + j * run, in + ((r * Y + j) * S + r * X) * tb, static_cast<size_t>(run));
  });
}

ResizeAxis make_resize_axis(int64_t in, int64_t out) {
  ResizeAxis a;
  const size_t n = static_cast<size_t>(out);
  a.i0.resize(n);
  a.i1.resize(n);
  a.w0.resize(n);
  a.w1.resize(n);
  const float scale = static_cast<float>(in) / static_cast<float>(out);
  for (int64_t o = 0; o < out; ++o) {
    const float src = std::max(0.f, scale * (static_cast<float>(o) + 0.5f) - 0.5f);
    const int64_t i0 = std::min(static_cast<int64_t>(src), in - 1);
    const float l1 = std::min(1.f, std::max(0.f, src - static_cast<float>(i0)));
    const size_t k = static_cast<size_t>(o);
    a.i0[k] = i0;
    a.i1[k] = std::min(i0 + 1, in - 1);
    a.w0[k] = 1.f - l1;
    a.w1[k] = l1;
  }
  return a;
}

void resize_bilinear(const void* x, DType t, void* y, int64_t planes, int64_t H, int64_t W,
                     const ResizeAxis& ax_h, const ResizeAxis& ax_w, int threads) {
  if (t == DType::kF32)
    resize_t(static_cast<const float*>(x), static_cast<float*>(y), planes, H, W, ax_h, ax_w, threads);
  else
    resize_t(static_cast<const uint16_t*>(x), static_cast<uint16_t*>(y), planes, H, W, ax_h, ax_w, threads);
}

}  // namespace vlart::kernels
