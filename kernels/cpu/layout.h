// Data-movement loops: concat, slice, permute, embedding gather, pixel shuffle, bilinear resize.
// All but resize are byte copies and work for any plain dtype (element size 1, 2, 4 or 8).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "vlart/dtype.h"
#include "vlart/tensor.h"

namespace vlart::kernels {

// out row o = [src_0 row o | src_1 row o | ...], where row o of src_i is chunk_bytes[i] bytes at
// src_i + o * chunk_bytes[i]. out_row_bytes = sum of chunk_bytes.
void concat(const void* const* srcs, const int64_t* chunk_bytes, int n_inputs, int64_t outer,
            int64_t out_row_bytes, void* dst, int threads);

// dst row o = src bytes [o * in_row_bytes + offset_bytes, + out_row_bytes).
void slice(const void* src, void* dst, int64_t outer, int64_t in_row_bytes, int64_t offset_bytes,
           int64_t out_row_bytes, int threads);

// Permutation with unit dims dropped and dims that stay adjacent merged, built once.
struct PermutePlan {
  int rank = 0;                      // collapsed rank
  int64_t shape[kMaxDims] = {};      // collapsed output shape
  int64_t in_stride[kMaxDims] = {};  // input element stride of each output dim
  int64_t out_stride[kMaxDims] = {};
  int64_t numel = 0;
  size_t esize = 0;
  int unit_dim = -1;  // output dim with input stride 1 when it is not the last (transpose mode)
};
PermutePlan make_permute_plan(const Shape& in, const int* perm, size_t esize);
void permute(const PermutePlan& p, const void* src, void* dst, int threads);

// Index of the first id outside [0, V), or -1 when all are valid.
int64_t embedding_find_bad_id(const void* ids, bool ids_i64, int64_t n, int64_t V);
// out[i, :] = table[ids[i], :] (row_bytes per row). ids must have been checked.
void embedding(const void* table, size_t row_bytes, const void* ids, bool ids_i64, int64_t n, void* dst,
               int threads);

// Index of the first index outside [0, n) of idx[k] (i32 or i64), or -1 when all are valid.
int64_t find_bad_index(const void* idx, bool idx_i64, int64_t k, int64_t n);
// dst[o, j, :] = src[o, idx[j], :] for o < outer, j < k; rows of inner_bytes, n rows per outer
// block in src. idx must have been checked.
void gather_axis(const void* src, const void* idx, bool idx_i64, int64_t outer, int64_t n, int64_t k,
                 size_t inner_bytes, void* dst, int threads);
// cache[b, pos[b] + i, :] = x[b, i, :] for b < B, i < L (rows of row_bytes; Lmax rows per batch in
// the cache). Returns the first b whose pos[b] is outside [0, Lmax - L] (nothing is written), or -1.
int64_t kv_write(void* cache, const void* x, const void* pos, bool pos_i64, int64_t B, int64_t Lmax, int64_t L,
                 size_t row_bytes);
// Numpy broadcast of src (shape `in`, right-aligned to `out`, dims 1 or equal) to out, contiguous.
void expand(const void* src, const Shape& in, const Shape& out, size_t esize, void* dst, int threads);

// x[B, S*S, C] -> out[B, S*S/r^2, C*r^2] (Idefics3 connector order, see core/op.h).
void pixel_shuffle(const void* x, void* dst, int64_t B, int64_t S, int64_t r, size_t token_bytes,
                   int threads);

// Source indices and weights along one axis (PyTorch bilinear, align_corners=False).
struct ResizeAxis {
  std::vector<int64_t> i0, i1;
  std::vector<float> w0, w1;
};
ResizeAxis make_resize_axis(int64_t in, int64_t out);
// x[planes, H, W] -> y[planes, OH, OW]; f32 or bf16.
void resize_bilinear(const void* x, DType t, void* y, int64_t planes, int64_t H, int64_t W,
                     const ResizeAxis& ax_h, const ResizeAxis& ax_w, int threads);

}  // namespace vlart::kernels
