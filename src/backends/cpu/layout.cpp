// CPU kernels of the layout family: Concat, Slice, Permute, Embedding, Gather, Expand, KVWrite,
// PixelShuffle, ResizeBilinear (loops in kernels/cpu/layout.cpp). Reshape has no kernel: the executor aliases it.
#include <memory>
#include <string>
#include <vector>

#include "backends/cpu/cpu_backend.h"
#include "cpu/layout.h"
#include "vlart/error.h"

namespace vlart {
namespace {

const Value& in_value(const Graph& g, const Node& n, size_t i) { return g.value(n.inputs[i]); }

// Plain (non-quantized) element types with a byte size the copy loops handle.
bool is_plain(DType d) {
  const size_t s = dtype_size(d);
  return s == 1 || s == 2 || s == 4 || s == 8;
}

int norm_axis(int axis, int rank) { return axis < 0 ? axis + rank : axis; }

// Product of dims [from, to) of s.
int64_t dims_product(const Shape& s, int from, int to) {
  int64_t p = 1;
  for (int i = from; i < to; ++i) p *= s[i];
  return p;
}

// ---------------------------------------------------------------- Concat

bool supports_concat(const Graph& g, const Node& n) {
  for (size_t i = 0; i < n.inputs.size(); ++i)
    if (n.inputs[i] == kNoValue || !is_plain(in_value(g, n, i).dtype)) return false;
  return true;
}

class ConcatKernel final : public OpKernel {
 public:
  ConcatKernel(const Graph& g, const Node& n, const CpuContext& ctx) : threads_(ctx.threads) {
    const Shape& s0 = in_value(g, n, 0).shape;
    const int ax = norm_axis(n.attrs.axis, s0.rank());
    const int64_t es = static_cast<int64_t>(dtype_size(in_value(g, n, 0).dtype));
    outer_ = dims_product(s0, 0, ax);
    for (size_t i = 0; i < n.inputs.size(); ++i) {
      const Shape& si = in_value(g, n, i).shape;
      chunk_bytes_.push_back(dims_product(si, ax, si.rank()) * es);
      out_row_bytes_ += chunk_bytes_.back();
    }
    srcs_.resize(n.inputs.size());
  }
  void run(const KernelArgs& a) override {
    for (int i = 0; i < a.num_inputs; ++i) srcs_[static_cast<size_t>(i)] = a.inputs[i]->raw();
    if (outer_ == 0 || out_row_bytes_ == 0) return;
    kernels::concat(srcs_.data(), chunk_bytes_.data(), a.num_inputs, outer_, out_row_bytes_, a.output->raw(),
                    threads_);
  }

 private:
  int threads_;
  int64_t outer_ = 1, out_row_bytes_ = 0;
  std::vector<int64_t> chunk_bytes_;
  std::vector<const void*> srcs_;  // sized at creation; run only overwrites the entries
};

// ---------------------------------------------------------------- Slice

bool supports_plain_input(const Graph& g, const Node& n) { return is_plain(in_value(g, n, 0).dtype); }

class SliceKernel final : public OpKernel {
 public:
  SliceKernel(const Graph& g, const Node& n, const CpuContext& ctx) : threads_(ctx.threads) {
    const Value& x = in_value(g, n, 0);
    const int ax = norm_axis(n.attrs.axis, x.shape.rank());
    const int64_t es = static_cast<int64_t>(dtype_size(x.dtype));
    const int64_t inner = dims_product(x.shape, ax + 1, x.shape.rank()) * es;
    outer_ = dims_product(x.shape, 0, ax);
    in_row_ = x.shape[ax] * inner;
    offset_ = n.attrs.start * inner;
    out_row_ = (n.attrs.end - n.attrs.start) * inner;
  }
  void run(const KernelArgs& a) override {
    if (outer_ == 0 || out_row_ == 0) return;
    kernels::slice(a.inputs[0]->raw(), a.output->raw(), outer_, in_row_, offset_, out_row_, threads_);
  }

 private:
  int threads_;
  int64_t outer_ = 0, in_row_ = 0, offset_ = 0, out_row_ = 0;
};

// ---------------------------------------------------------------- Permute

class PermuteKernel final : public OpKernel {
 public:
  PermuteKernel(const Graph& g, const Node& n, const CpuContext& ctx)
      : threads_(ctx.threads),
        plan_(kernels::make_permute_plan(in_value(g, n, 0).shape, n.attrs.perm.data(),
                                         dtype_size(in_value(g, n, 0).dtype))) {}
  void run(const KernelArgs& a) override { kernels::permute(plan_, a.inputs[0]->raw(), a.output->raw(), threads_); }

 private:
  int threads_;
  kernels::PermutePlan plan_;
};

// ---------------------------------------------------------------- Embedding

bool supports_embedding(const Graph& g, const Node& n) {
  const DType t = in_value(g, n, 0).dtype, i = in_value(g, n, 1).dtype;
  return is_f32_or_bf16(t) && (i == DType::kI32 || i == DType::kI64);
}

class EmbeddingKernel final : public OpKernel {
 public:
  EmbeddingKernel(const Graph& g, const Node& n, const CpuContext& ctx) : name_(n.name), threads_(ctx.threads) {
    const Value& t = in_value(g, n, 0);
    const Value& ids = in_value(g, n, 1);
    V_ = t.shape[0];
    row_bytes_ = static_cast<size_t>(t.shape[1]) * dtype_size(t.dtype);
    n_ = ids.shape.numel();
    i64_ = ids.dtype == DType::kI64;
  }
  void run(const KernelArgs& a) override {
    const void* ids = a.inputs[1]->raw();
    // Checked on the calling thread first: an exception must not leave an OpenMP region.
    const int64_t bad = kernels::embedding_find_bad_id(ids, i64_, n_, V_);
    if (bad >= 0) {
      const int64_t id = i64_ ? static_cast<const int64_t*>(ids)[bad] : static_cast<const int32_t*>(ids)[bad];
      throw InvalidArgument(detail::concat("node '", name_, "' (Embedding): id ", id, " at position ", bad,
                                           " is outside the table's [0, ", V_, ") rows (V = ", V_, ")"));
    }
    kernels::embedding(a.inputs[0]->raw(), row_bytes_, ids, i64_, n_, a.output->raw(), threads_);
  }

 private:
  std::string name_;
  int threads_;
  int64_t V_ = 0, n_ = 0;
  size_t row_bytes_ = 0;
  bool i64_ = false;
};

// ---------------------------------------------------------------- Gather

bool supports_gather(const Graph& g, const Node& n) {
  const DType i = in_value(g, n, 1).dtype;
  return is_plain(in_value(g, n, 0).dtype) && (i == DType::kI32 || i == DType::kI64);
}

class GatherKernel final : public OpKernel {
 public:
  GatherKernel(const Graph& g, const Node& n, const CpuContext& ctx) : name_(n.name), threads_(ctx.threads) {
    const Value& x = in_value(g, n, 0);
    const Value& idx = in_value(g, n, 1);
    const int ax = norm_axis(n.attrs.axis, x.shape.rank());
    outer_ = dims_product(x.shape, 0, ax);
    n_ = x.shape[ax];
    k_ = idx.shape[0];
    inner_bytes_ = static_cast<size_t>(dims_product(x.shape, ax + 1, x.shape.rank())) * dtype_size(x.dtype);
    i64_ = idx.dtype == DType::kI64;
  }
  void run(const KernelArgs& a) override {
    const void* idx = a.inputs[1]->raw();
    const int64_t bad = kernels::find_bad_index(idx, i64_, k_, n_);
    if (bad >= 0) {
      const int64_t v = i64_ ? static_cast<const int64_t*>(idx)[bad] : static_cast<const int32_t*>(idx)[bad];
      throw InvalidArgument(detail::concat("node '", name_, "' (Gather): index ", v, " at position ", bad,
                                           " is outside [0, ", n_, ")"));
    }
    if (outer_ == 0 || k_ == 0 || inner_bytes_ == 0) return;
    kernels::gather_axis(a.inputs[0]->raw(), idx, i64_, outer_, n_, k_, inner_bytes_, a.output->raw(), threads_);
  }

 private:
  std::string name_;
  int threads_;
  int64_t outer_ = 1, n_ = 0, k_ = 0;
  size_t inner_bytes_ = 0;
  bool i64_ = false;
};

// ---------------------------------------------------------------- Expand

class ExpandKernel final : public OpKernel {
 public:
  ExpandKernel(const Graph& g, const Node& n, const CpuContext& ctx)
      : threads_(ctx.threads), in_(in_value(g, n, 0).shape), out_(n.attrs.shape),
        esize_(dtype_size(in_value(g, n, 0).dtype)) {}
  void run(const KernelArgs& a) override {
    if (out_.numel() == 0) return;
    kernels::expand(a.inputs[0]->raw(), in_, out_, esize_, a.output->raw(), threads_);
  }

 private:
  int threads_;
  Shape in_, out_;
  size_t esize_;
};

// ---------------------------------------------------------------- KVWrite
// In place: the executor binds the output to the cache input's memory, so only x's rows move.

bool supports_kv_write(const Graph& g, const Node& n) {
  const DType p = in_value(g, n, 2).dtype;
  return is_plain(in_value(g, n, 0).dtype) && (p == DType::kI32 || p == DType::kI64);
}

class KVWriteKernel final : public OpKernel {
 public:
  KVWriteKernel(const Graph& g, const Node& n, const CpuContext&) : name_(n.name) {
    const Value& c = in_value(g, n, 0);
    const Value& x = in_value(g, n, 1);
    B_ = c.shape[0];
    Lmax_ = c.shape[1];
    L_ = x.shape[1];
    row_bytes_ = static_cast<size_t>(dims_product(c.shape, 2, c.shape.rank())) * dtype_size(c.dtype);
    i64_ = in_value(g, n, 2).dtype == DType::kI64;
  }
  void run(const KernelArgs& a) override {
    VLART_CHECK(a.output->raw() == a.inputs[0]->raw(), InternalError, "node '", name_,
                "' (KVWrite): the output is not the cache's memory (the executor runs it in place)");
    const void* pos = a.inputs[2]->raw();
    const int64_t bad = kernels::kv_write(a.output->raw(), a.inputs[1]->raw(), pos, i64_, B_, Lmax_, L_, row_bytes_);
    if (bad >= 0) {
      const int64_t p = i64_ ? static_cast<const int64_t*>(pos)[bad] : static_cast<const int32_t*>(pos)[bad];
      throw InvalidArgument(detail::concat("node '", name_, "' (KVWrite): pos[", bad, "] = ", p, " with ", L_,
                                           " new rows does not fit the cache's ", Lmax_,
                                           " rows (need 0 <= pos <= ", Lmax_ - L_, ")"));
    }
  }

 private:
  std::string name_;
  int64_t B_ = 0, Lmax_ = 0, L_ = 0;
  size_t row_bytes_ = 0;
  bool i64_ = false;
};

// ---------------------------------------------------------------- PixelShuffle

class PixelShuffleKernel final : public OpKernel {
 public:
  PixelShuffleKernel(const Graph& g, const Node& n, const CpuContext& ctx) : threads_(ctx.threads) {
    const Value& x = in_value(g, n, 0);
    B_ = x.shape[0];
    while ((S_ + 1) * (S_ + 1) <= x.shape[1]) ++S_;  // op_infer guarantees a square grid
    r_ = n.attrs.factor;
    token_bytes_ = static_cast<size_t>(x.shape[2]) * dtype_size(x.dtype);
  }
  void run(const KernelArgs& a) override {
    if (B_ == 0 || S_ == 0 || token_bytes_ == 0) return;
    kernels::pixel_shuffle(a.inputs[0]->raw(), a.output->raw(), B_, S_, r_, token_bytes_, threads_);
  }

 private:
  int threads_;
  int64_t B_ = 0, S_ = 0, r_ = 1;
  size_t token_bytes_ = 0;
};

// ---------------------------------------------------------------- ResizeBilinear

bool supports_resize(const Graph& g, const Node& n) { return is_f32_or_bf16(in_value(g, n, 0).dtype); }

class ResizeKernel final : public OpKernel {
 public:
  ResizeKernel(const Graph& g, const Node& n, const CpuContext& ctx) : threads_(ctx.threads) {
    const Value& x = in_value(g, n, 0);
    t_ = x.dtype;
    planes_ = x.shape[0] * x.shape[1];
    H_ = x.shape[2];
    W_ = x.shape[3];
    ah_ = kernels::make_resize_axis(H_, n.attrs.shape[0]);
    aw_ = kernels::make_resize_axis(W_, n.attrs.shape[1]);
  }
  void run(const KernelArgs& a) override {
    kernels::resize_bilinear(a.inputs[0]->raw(), t_, a.output->raw(), planes_, H_, W_, ah_, aw_, threads_);
  }

 private:
  int threads_;
  DType t_ = DType::kF32;
  int64_t planes_ = 0, H_ = 0, W_ = 0;
  kernels::ResizeAxis ah_, aw_;
};

template <typename K>
std::unique_ptr<OpKernel> create(const Graph& g, const Node& n, CpuContext& ctx) {
  return std::make_unique<K>(g, n, ctx);
}

}  // namespace

void register_cpu_layout(CpuKernelTable& t) {
  set_entry(t, OpKind::kConcat, supports_concat, create<ConcatKernel>);
  set_entry(t, OpKind::kSlice, supports_plain_input, create<SliceKernel>);
  set_entry(t, OpKind::kPermute, supports_plain_input, create<PermuteKernel>);
  set_entry(t, OpKind::kEmbedding, supports_embedding, create<EmbeddingKernel>);
  set_entry(t, OpKind::kPixelShuffle, supports_plain_input, create<PixelShuffleKernel>);
  set_entry(t, OpKind::kResizeBilinear, supports_resize, create<ResizeKernel>);
  set_entry(t, OpKind::kGather, supports_gather, create<GatherKernel>);
  set_entry(t, OpKind::kExpand, supports_plain_input, create<ExpandKernel>);
  set_entry(t, OpKind::kKVWrite, supports_kv_write, create<KVWriteKernel>);
}

}  // namespace vlart
